#!/bin/bash
# t_migrate_dupres: right after a healed split, before any migration has
# moved a record, a read through any node returns every acknowledged write
# of either side (duplicate resolution, docs/cluster.md), and overwrites
# and deletes of them find them (issue 13: "a read during migration never
# returns an older version than one already acknowledged").
#
# Three nodes in network namespaces (needs root, ip), replication-factor 2,
# device engine,
# migrate-threads 0 on every node (dynamic): nothing migrates until the end,
# so only duplicate resolution can make the other side's copies visible.
# 2 x 150 files are written through n1; n3 is isolated; the a* files are
# written again through n1 (the majority side: n3 lacks these versions,
# and is working master again of the partitions it is final master of)
# and the b* files through n3 alone (the other side: n1 and n2 lack
# them); the link comes back and, as soon as the cluster of 3 has
# rebalanced, every name is read through every node: each has the content
# its side wrote last, not the first version nor ENOENT.  Half of the majority's
# names are then overwritten (O_TRUNC without O_CREAT: ENOENT if the serving
# node missed them) and half of n3's deleted through n1.  Then migrations
# run; after they settle every node shows the same, and there are 2 copies
# of every live file.
ITEST_TIMEOUT=120
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"
[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3"; exit 77; }
if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null; then
	[ -n "${CI:-}" ] && fail "CI must run $ITEST_NAME (root, ip)"
	echo "SKIP: $ITEST_NAME needs root and ip (network namespaces)"
	exit 77
fi

CLUSTER_RF=2
CLUSTER_ENGINE=device   # tombstones: a delete during the window stays a delete
CLUSTER_EXTRA_YAML="  migrate-threads: 0"
CLUSTER_HB_TIMEOUT_COUNT=10   # 1 s: n3 stopped for a stat's deadline stays a member
export CLUSTER_RF CLUSTER_ENGINE CLUSTER_EXTRA_YAML CLUSTER_HB_TIMEOUT_COUNT
N=150

ns_stat() {  # ns_stat nK NAME: NAME in nK's .info/namespace/test
	run cat "$(cluster_mnt "$1")/.info/namespace/test" | awk -F= -v k="$2" '$1 == k { print $2; exit }'
}
fabric_stat() {  # fabric_stat nK NAME: NAME in nK's .info/statistics
	run cat "$(cluster_mnt "$1")/.info/statistics" | awk -F= -v k="$2" '$1 == k { print $2; exit }'
}
rebalanced() {  # rebalanced nK: nK has planned the migrations of the cluster of 3 (bounded):
	# with migrate-threads 0 none of them ends, so it shows some remaining
	local i left
	for ((i = 0; i < 100; i++)); do
		left=$(cluster_info "$1" migrate_partitions_remaining)
		[ -n "$left" ] && [ "$left" -gt 0 ] && return 0
		sleep 0.1
	done
	return 1
}
# check NODE PHASE: every name has its expected content through NODE
# (expected: majority a*, minority b*; after the changes: a* with an even
# number overwritten, b* with an even number deleted).
check_all() {
	local out
	out=$(run python3 - "$(cluster_mnt "$1")/test" "$N" "$2" <<'PY'
import os, sys
m, n, phase = sys.argv[1], int(sys.argv[2]), sys.argv[3]
bad = 0
for side in "ab":
    for i in range(n):
        name = "%s%04d" % (side, i)
        want = ("%s %d\n" % (side, i)).encode()
        if phase == "changed" and i % 2 == 0:
            want = ("new %s %d\n" % (side, i)).encode() if side == "a" else None
        try:
            with open(os.path.join(m, name), "rb") as fh:
                got = fh.read()
        except FileNotFoundError:
            got = None
        except OSError as e:
            got = e.strerror
        if got != want:
            bad += 1
            if bad <= 3:
                print("wrong:", name, "got", got, "want", want, file=sys.stderr)
print(bad)
PY
)
	check_eq "$1 ($2): every acknowledged write of either side reads back" "$out" 0
}

cluster_start 3 --netns
cluster_wait_agree 3 || fail "no cluster of 3"
# every name first, through n1, so that both sides hold the partitions
run python3 - "$(cluster_mnt n1)/test" "$N" <<'PY' || fail "writing the first versions through n1"
import os, sys
m, n = sys.argv[1], int(sys.argv[2])
for side in "ab":
    for i in range(n):
        with open(os.path.join(m, "%s%04d" % (side, i)), "wb") as fh:
            fh.write(("old %s %d\n" % (side, i)).encode())
PY
cluster_isolate n3
cluster_wait_agree 2 n1 n2 || fail "no cluster of n1 n2 after isolating n3"
cluster_wait_size 1 n3 || fail "n3 alone is no cluster of 1"
# the cut link: connections closed once nothing was acknowledged for the
# ack timeout (the heartbeat's, 1 s here), counted by reason
acks=x
for ((i = 0; i < 100; i++)); do
	acks=$(( $(fabric_stat n1 fabric_closed_ack_timeout) + $(fabric_stat n2 fabric_closed_ack_timeout) ))
	[ "$acks" -gt 0 ] && break
	sleep 0.1
done
check_true "n1, n2: fabric connections to n3 closed by the ack timeout" "$acks" -gt 0
# each side writes its names again; every write is acknowledged (fsync'd)
for w in "n1 a" "n3 b"; do
	set -- $w
	run python3 - "$(cluster_mnt $1)/test" "$N" "$2" <<'PY' || fail "writing through $1"
import os, sys
m, n, side = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for i in range(n):
    with open(os.path.join(m, "%s%04d" % (side, i)), "wb") as fh:
        fh.write(("%s %d\n" % (side, i)).encode())
        os.fsync(fh.fileno())
PY
done
cluster_heal n3
cluster_wait_agree 3 || fail "no cluster of 3 after the heal"
for n in n1 n2 n3; do rebalanced $n || fail "$n did not rebalance for the cluster of 3"; done
note "migrate_partitions_remaining: n1 $(cluster_info n1 migrate_partitions_remaining)" \
	"n2 $(cluster_info n2 migrate_partitions_remaining) n3 $(cluster_info n3 migrate_partitions_remaining)"
for n in n1 n2 n3; do check_all $n healed; done
# the working masters asked the other side first, and took its newer copies
run_sum=0 won_sum=0
for n in n1 n2 n3; do
	note "$n: dup_res_run=$(ns_stat $n dup_res_run) dup_res_won=$(ns_stat $n dup_res_won)" \
		"dup_res_failed=$(ns_stat $n dup_res_failed)"
	run_sum=$((run_sum + $(ns_stat $n dup_res_run)))
	won_sum=$((won_sum + $(ns_stat $n dup_res_won)))
	check_eq "$n: no duplicate resolution failed" "$(ns_stat $n dup_res_failed)" 0
done
check_true "duplicate resolutions ran" "$run_sum" -ge "$N"
check_true "copies of the other side won some of them" "$won_sum" -gt 0
# A holder that does not answer in time fails the resolution (EIO): n3
# stopped for well under the heartbeat timeout (1 s here) while n1, with
# transaction-max-ms 200, stats names until one fails; n3 stays a member.
run sh -c "echo 200 > '$(cluster_mnt n1)/.info/config/service/transaction-max-ms'" ||
	fail "n1: transaction-max-ms 200"
sleep 1.2   # the kernel's cached entries expire (fuse.entry-timeout)
failed0=$(ns_stat n1 dup_res_failed)
out=$(run python3 - "$(cluster_mnt n1)/test" "$N" "$(cluster_pid n3)" <<'PY'
import errno, os, signal, sys
m, n, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
eio = 0
os.kill(pid, signal.SIGSTOP)
try:
    for side in "ab":
        for i in range(n):
            try:
                os.stat(os.path.join(m, "%s%04d" % (side, i)))
            except OSError as e:
                if e.errno == errno.EIO:
                    eio += 1
                    break
        if eio:
            break
finally:
    os.kill(pid, signal.SIGCONT)
print(eio)
PY
)
run sh -c "echo 1000 > '$(cluster_mnt n1)/.info/config/service/transaction-max-ms'" ||
	fail "n1: transaction-max-ms 1000"
check_eq "n1: a stat whose duplicate holder (n3, stopped) did not answer is EIO" "$out" 1
# (a lookup may ask twice: once per FUSE request it makes)
check_true "n1: dup_res_failed counts it" "$(ns_stat n1 dup_res_failed)" -gt "$failed0"
cluster_wait_agree 3 || fail "n3 did not stay in the cluster"
# overwrites (no O_CREAT) of the majority's names, deletes of n3's, through n1
out=$(run python3 - "$(cluster_mnt n1)/test" "$N" <<'PY'
import os, sys
m, n = sys.argv[1], int(sys.argv[2])
failed = 0
for i in range(0, n, 2):
    try:
        fd = os.open(os.path.join(m, "a%04d" % i), os.O_WRONLY | os.O_TRUNC)
        os.write(fd, ("new a %d\n" % i).encode())
        os.fsync(fd)
        os.close(fd)
        os.unlink(os.path.join(m, "b%04d" % i))
    except OSError as e:
        failed += 1
        if failed <= 3:
            print("failed:", i, e, file=sys.stderr)
print(failed)
PY
)
check_eq "overwrites and deletes through n1 find every name" "$out" 0
# n2 and n3 looked these names up a moment ago: their kernels may show the
# cached entry for fuse.entry-timeout (1 s, docs/operations.md)
sleep 1.2
for n in n1 n2 n3; do check_all $n changed; done
note "n1 before migration: migrate_partitions_remaining=$(cluster_info n1 migrate_partitions_remaining)"
# now let migrations run; the result stays
for n in n1 n2 n3; do
	run sh -c "echo 1 > '$(cluster_mnt $n)/.info/config/network/migrate-threads'" || bad "$n: migrate-threads 1"
done
for n in n1 n2 n3; do
	left=x
	for ((i = 0; i < 300; i++)); do
		left=$(cluster_info $n migrate_partitions_remaining)
		[ "$left" = 0 ] && break
		sleep 0.1
	done
	check_eq "$n: migrate_partitions_remaining reaches 0" "$left" 0
done
sum=0
for n in n1 n2 n3; do
	sum=$((sum + $(ns_stat $n objects)))
done
for n in n1 n2 n3; do check_all $n changed; done
check_eq "objects over all nodes = 2 x live files" "$sum" $((2 * (N + N / 2)))
finish
