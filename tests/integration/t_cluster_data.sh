#!/bin/bash
# t_cluster_data: every mount serves the whole cluster (issue 12, data path).
# Three nodes, replication-factor 2, on 127.0.0.1:
#   - 1,000 records written through n1 (content, a user xattr, mode, mtime)
#     read back byte-identical through n2 and n3;
#   - each node masters about a third of them (user.recfs.master);
#   - an overwrite through n2 is read through n3; a delete through n3 is
#     ENOENT through n1 and n2; renames through n1, across two masters or
#     on one, keep content, xattr and inode number, read through n3;
#   - ls shows the same names through every node;
#   - the counters show proxied operations and replica writes, on every node.
# Then the master of one record is SIGSTOPped, and a write to it through
# another node fails with EIO within transaction-max-ms (+ margin) - the
# heartbeat timeout is set far above it, so the node is still a member: the
# proxy gets no answer.  And a write to a partition whose replica (not its
# master) is stopped fails with EIO likewise: never a silent success.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"

[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3"; exit 77; }

TMAX_MS=800
CLUSTER_RF=2
# 100 ms x 60: a stopped node stays a member for 6 s, long past TMAX_MS.
CLUSTER_HB_TIMEOUT_COUNT=60
CLUSTER_EXTRA_YAML=""
export CLUSTER_RF
cluster_start 3
cluster_wait_agree 3 || fail "no cluster of 3"
# transaction-max-ms is dynamic: set it on the running nodes.
for n in n1 n2 n3; do
	run sh -c "echo $TMAX_MS > '$(cluster_mnt $n)/.info/config/service/transaction-max-ms'" ||
		fail "cannot set transaction-max-ms on $n through .info/config"
done

M1=$(cluster_mnt n1)/test
M2=$(cluster_mnt n2)/test
M3=$(cluster_mnt n3)/test

stat_of() {  # stat_of nK NAME: NAME in nK's .info/statistics
	run cat "$(cluster_mnt "$1")/.info/statistics" | awk -F= -v k="$2" '$1 == k { print $2; exit }'
}

t0=$(date +%s%N)
run python3 - "$M1" <<'PY' || bad "writes through n1"
import os, sys
m = sys.argv[1]
for i in range(1000):
    p = os.path.join(m, "r%04d" % i)
    with open(p, "wb") as f:
        f.write(("content of record %d\n" % i).encode() * (1 + i % 7))
    os.setxattr(p, "user.tag", b"tag-%d" % i)
    os.chmod(p, 0o600 + (i % 64))
    os.utime(p, ns=(1600000000_000000000 + i, 1600000000_000000000 + i * 1000))
PY
t1=$(date +%s%N)
note "1000 writes (+ xattr, chmod, utime) through n1: $(( (t1 - t0) / 1000000 )) ms"

for n in n2 n3; do
	out=$(run python3 - "$(cluster_mnt $n)/test" <<'PY'
import os, sys
m = sys.argv[1]
bad = 0
for i in range(1000):
    p = os.path.join(m, "r%04d" % i)
    try:
        with open(p, "rb") as f:
            data = f.read()
        st = os.stat(p)
        ok = (data == ("content of record %d\n" % i).encode() * (1 + i % 7)
              and os.getxattr(p, "user.tag") == b"tag-%d" % i
              and (st.st_mode & 0o7777) == 0o600 + (i % 64)
              and st.st_mtime_ns == 1600000000_000000000 + i * 1000)
    except OSError as e:
        ok = False
    if not ok:
        bad += 1
        if bad < 5:
            print("mismatch", p, file=sys.stderr)
print(bad)
PY
)
	check_eq "1000 records written through n1 read back identical through $n" "$out" 0
done

# Masters: each node about a third (of 1000; 4096 partitions over 3 nodes).
masters=$(run python3 - "$M2" <<'PY'
import os, sys, collections
m = sys.argv[1]
c = collections.Counter(os.getxattr(os.path.join(m, "r%04d" % i), "user.recfs.master").decode()
                        for i in range(1000))
print(" ".join("%s:%d" % kv for kv in sorted(c.items())))
PY
)
note "masters of the 1000 records: $masters"
check_eq "three masters" "$(echo "$masters" | wc -w)" 3
for kv in $masters; do
	check_true "node ${kv%%:*} masters about a third (${kv##*:})" "${kv##*:}" -ge 250 -a "${kv##*:}" -le 420
done

# Overwrite on n2, read on n3; delete on n3, gone on n1 and n2.
printf 'overwritten on n2\n' >"$M2/r0007" || bad "overwrite through n2"
check_eq "overwrite through n2 read through n3" "$(run cat "$M3/r0007")" "overwritten on n2"
run rm "$M3/r0008" || bad "delete through n3"
# n2 looked the name up just above: its kernel may keep that lookup for
# entry-timeout (1 s), as for any change made through another mount.
sleep 1.1
for n in n1 n2 n3; do
	if run test -e "$(cluster_mnt $n)/test/r0008"; then bad "r0008 still visible through $n"; else pass "r0008 is gone through $n"; fi
done
run cat "$M1/r0008" 2>"$T/err" && bad "read of a deleted record through n1 succeeded"
grep -q "No such file" "$T/err" && pass "read of the deleted record through n1: ENOENT" || bad "n1: $(cat "$T/err")"

# Renames through n1, read through n3: same master or not, the content,
# xattr and inode number travel, the old name is gone everywhere.
out=$(run python3 - "$M1" "$M3" <<'PY'
import os, sys
m1, m3 = sys.argv[1], sys.argv[2]
cross = same = bad = 0
for i in range(20, 40):
    src, dst = "r%04d" % i, "moved%04d" % i
    want = ("content of record %d\n" % i).encode() * (1 + i % 7)
    sm = os.getxattr(os.path.join(m1, src), "user.recfs.master")
    ino = os.stat(os.path.join(m1, src)).st_ino
    os.rename(os.path.join(m1, src), os.path.join(m1, dst))
    dm = os.getxattr(os.path.join(m1, dst), "user.recfs.master")
    if sm != dm: cross += 1
    else: same += 1
    p = os.path.join(m3, dst)
    with open(p, "rb") as f:
        ok = f.read() == want
    ok = ok and os.getxattr(p, "user.tag") == b"tag-%d" % i and os.stat(p).st_ino == ino
    ok = ok and not os.path.exists(os.path.join(m3, src)) and not os.path.exists(os.path.join(m1, src))
    if not ok:
        bad += 1
        print("rename", src, dst, "differs", file=sys.stderr)
print(bad, cross, same)
PY
)
read -r rbad rcross rsame <<<"$out"
note "20 renames through n1: $rcross across two masters, $rsame on one"
check_eq "renames through n1 read through n3 (content, xattr, inode, old name gone)" "$rbad" 0
check_true "some renames crossed masters" "${rcross:-0}" -ge 3

# ls is the same through every node (listings ask each partition's master).
ls1=$(run ls "$M1" | md5sum) n1count=$(run ls "$M1" | wc -l)
check_eq "ls through n2 is n1's ($n1count names)" "$(run ls "$M2" | md5sum)" "$ls1"
check_eq "ls through n3 is n1's" "$(run ls "$M3" | md5sum)" "$ls1"
check_eq "ls shows 999 names (1000, one deleted)" "$n1count" 999

# Counters: every node proxied and received, sent and applied replica writes.
for n in n1 n2 n3; do
	for s in proxy_sent proxy_completed proxy_received replica_writes_sent replica_writes_acked rpc_requests_inline \
		replica_writes_received replica_writes_applied; do
		v=$(stat_of $n $s)
		check_true "$n: $s > 0 ($v)" "${v:-0}" -gt 0
	done
	for s in proxy_failed proxy_timed_out replica_writes_failed replica_writes_timed_out; do
		check_eq "$n: $s" "$(stat_of $n $s)" 0
	done
done
note "n1 proxied $(stat_of n1 proxy_completed) operations and sent $(stat_of n1 replica_writes_sent) replica writes"
# Writes through n1 whose other replica is n1: their masters handed the
# version back in the answer instead of sending n1 a replica write.
for n in n2 n3; do
	v=$(stat_of $n replica_writes_returned)
	check_true "$n: replica_writes_returned > 0 ($v)" "${v:-0}" -gt 0
done

# Memory: each node's resident size after all that (a figure, not a bound).
for n in n1 n2 n3; do
	note "$n: $(grep VmRSS /proc/"$(cluster_pid $n)"/status | tr -s ' \t' ' '), $(stat_of $n rpc_requests_kept) rpc requests kept"
done

# An unreachable master or replica: EIO within transaction-max-ms, never a
# silent success.  Records by placement (looked up before the stop):
# mastered by n3; mastered by n1 with n3 its replica; on n1 and n2 only.
id1=$(cluster_id n1) id2=$(cluster_id n2) id3=$(cluster_id n3)
pick() {  # pick REPLICAS: the first of the 1000 names with that placement
	run python3 - "$M1" "$1" <<'PY'
import os, sys
m, want = sys.argv[1], sys.argv[2]
for i in range(1000):
    p = os.path.join(m, "r%04d" % i)
    if os.path.exists(p) and os.getxattr(p, "user.recfs.replicas").decode() == want:
        print(os.path.basename(p))
        break
PY
}
R_M3=$(pick "$id3,$id1")
R_R3=$(pick "$id1,$id3")
R_OK=$(pick "$id2,$id1")
[ -n "$R_M3" ] && [ -n "$R_R3" ] && [ -n "$R_OK" ] || fail "no records of the placements wanted ($R_M3/$R_R3/$R_OK)"
# try_write NAME: "rc ms" of writing and fsyncing NAME through n1
try_write() {
	run python3 - "$M1/$1" <<'PY'
import errno, os, sys, time
t = time.monotonic()
rc = 0
try:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, b"written while a node is stopped\n")
        os.fsync(fd)
    finally:
        os.close(fd)
except OSError as e:
    rc = e.errno
print(errno.errorcode.get(rc, rc) if rc else 0, int((time.monotonic() - t) * 1000))
PY
}
# msgs_from nK ID: the messages nK's fabric counted from node ID (.info/peers)
msgs_from() {
	run cat "$(cluster_mnt "$1")/.info/peers" |
		awk -v id="node_id=$2" '$1 == id { for (i = 2; i <= NF; i++) if (sub(/^msgs_received=/, "", $i)) print $i }'
}
# stop_drained nK: SIGSTOP nK, then wait (bounded) until n1 has counted
# everything nK sent before the stop: its count from nK still for 300 ms.
stop_drained() {
	local id c0 c i=0 still=0
	id=$(cluster_id "$1")
	cluster_stop "$1"
	c0=$(msgs_from n1 "$id")
	while [ $still -lt 6 ] && [ $i -lt 60 ]; do
		sleep 0.05
		c=$(msgs_from n1 "$id")
		if [ "$c" = "$c0" ]; then still=$((still + 1)); else still=0 c0=$c; fi
		i=$((i + 1))
	done
	[ -n "$c0" ] || fail "no msgs_received of $1 ($id) in n1's .info/peers"
	if [ $still -ge 6 ]; then
		note "$1 stopped: n1 counted $c0 messages from it, the last $((i * 50 - 300)) ms or less after the stop"
	else
		note "n1 still counting messages from the stopped $1 after 3 s ($c0)"
	fi
}
# n1's statistics the write below moves, one line (to tell which step waited)
ST_W="proxy_sent proxy_timed_out rpc_calls rpc_calls_timed_out rpc_calls_failed_silent rpc_retransmits"
stats_w() { for s in $ST_W; do printf '%s=%s ' "$s" "$(stat_of n1 "$s")"; done; }
# Past entry-timeout (1 s) since the names were looked up: the open's path
# walk revalidates the dentry with a LOOKUP, which (proxied to the stopped
# master) fails after transaction-max-ms, and the kernel then looks the
# name up afresh: a second LOOKUP.  That one user operation once took two
# deadlines (1604 ms against 1500); a master that let a call time out
# without a word since is not waited on again.  The rule is "without a
# word since the call began": a message n3 sent just before the stop and
# n1 counted after the LOOKUP's call began is such a word, and the second
# LOOKUP then rightly waits again.  So the write is timed once n1 has
# counted all n3 sent (stop_drained), not right after the SIGSTOP.
sleep 1.2
stop_drained n3
st_before=$(stats_w)
out_m3=$(try_write "$R_M3")
st_after=$(stats_w)
out_r3=$(try_write "$R_R3")
out_ok=$(try_write "$R_OK")
silent=$(stat_of n1 rpc_calls_failed_silent)
cluster_cont n3
note "n3 stopped: write to $R_M3 (master n3): $out_m3; to $R_R3 (replica n3): $out_r3; to $R_OK (n1, n2): $out_ok"
note "n1 around the write to $R_M3: before: $st_before"
note "n1 around the write to $R_M3: after:  $st_after"
# n3 let the first write's call time out without a word: the second failed
# at once (silent node).  Once n3 is heard again (a pulse) that is
# forgotten: stopped again, a write waits for its replica's answer again.
sleep 0.5
stop_drained n3
out_r3b=$(try_write "$R_R3")
cluster_cont n3
note "n3 stopped again: write to $R_R3 (replica n3): $out_r3b"
# the slack for the stop to be noticed and the answer to come back: 700 ms;
# 2100 ms in a sanitizer build (TSan runs the daemons 5-15x slower: 1603 ms
# measured once in CI against 1500)
SLACK_MS=700
sanitized_build && SLACK_MS=2100
BOUND=$((TMAX_MS + SLACK_MS))
check_eq "write through n1 to a record mastered by the stopped n3: EIO" "${out_m3% *}" EIO
check_true "... within transaction-max-ms + $SLACK_MS ms (${out_m3#* } ms)" "${out_m3#* }" -le $BOUND
check_eq "write through n1 to a record whose replica n3 is stopped: EIO" "${out_r3% *}" EIO
check_true "... within transaction-max-ms + $SLACK_MS ms (${out_r3#* } ms)" "${out_r3#* }" -le $BOUND
check_true "... at once: n3 was silent since the first timeout (${out_r3#* } ms)" "${out_r3#* }" -lt "$TMAX_MS"
check_true "n1 counted the calls failed at once to the silent n3" "$silent" -ge 1
check_eq "n3 heard again and stopped again: the replica write is EIO" "${out_r3b% *}" EIO
check_true "... after waiting for it, not at once (${out_r3b#* } ms)" "${out_r3b#* }" -ge $((TMAX_MS / 2))
check_true "... and no longer (${out_r3b#* } ms)" "${out_r3b#* }" -le $BOUND
check_eq "write to a record on n1 and n2 meanwhile: succeeds" "${out_ok% *}" 0
check_true "n1 counted a proxy timeout" "$(stat_of n1 proxy_timed_out)" -ge 1
check_true "n1 counted a replica write timeout" "$(stat_of n1 replica_writes_timed_out)" -ge 1
check_eq "the cluster is still 3 nodes" "$(cluster_info n1 cluster_size)" 3

finish
