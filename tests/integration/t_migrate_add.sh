#!/bin/bash
# t_migrate_add: a node added to a running 3-node cluster (replication-factor
# 2) under write load receives its share (issue 13).  Four nodes are
# configured; n4 is stopped before any record is written, so it comes back
# empty.  Files are written through n1, then a writer through n2 keeps
# writing (with fsync) while n4 joins, first with sending paused
# (migrate-threads 0 on the old nodes: n4 shows partitions in state D and
# a file reads through n4 from the node still serving it), then resumed
# with receiving paused on n4 (migrate-max-num-incoming 0: no record
# arrives), then both resumed.  Afterwards, on every node,
# migrate_partitions_remaining reaches 0; n4 masters partitions and holds
# records (objects > 0) it did not get from a client; every node holds only
# the partitions it is a replica of (objects summed over the nodes = 2 x
# files: no copy left on a non-replica); every acknowledged file reads back
# identical through n4; the rebalance and "all migrations done" lines are
# logged and the migration statistics moved.  Then n2 is killed for good:
# once migrations end, the 3 nodes left hold 2 copies of every file again.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"

[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3"; exit 77; }

CLUSTER_RF=2
export CLUSTER_RF
N_FILES=400

ns_stat() {  # ns_stat nK NAME: NAME in nK's .info/namespace/test
	run cat "$(cluster_mnt "$1")/.info/namespace/test" | awk -F= -v k="$2" '$1 == k { print $2; exit }'
}

cluster_start_n4_away

python3 - "$(cluster_mnt n1)/test" "$N_FILES" <<'PY' || fail "writing through n1"
import os, sys
m, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(m, "f%05d" % i), "wb") as fh:
        fh.write(("file %d\n" % i).encode() * (1 + i % 7))
PY
note "$N_FILES files written through n1"

# A writer through n2 while n4 joins: names of acknowledged (fsynced) files.
python3 - "$(cluster_mnt n2)/test" 4 >"$T/w2" <<'PY' &
import os, sys, time
m, secs = sys.argv[1], float(sys.argv[2])
end = time.monotonic() + secs
i = failed = 0
while time.monotonic() < end:
    name = "w%05d" % i
    try:
        fd = os.open(os.path.join(m, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, ("%s\n" % name).encode() * (1 + i % 5))
            os.fsync(fd)
        finally:
            os.close(fd)
        print(name, flush=True)
    except OSError:
        failed += 1
    i += 1
print("failed %d" % failed)
PY
W2=$!
sleep 0.5
# Sending paused (network.migrate-threads 0, dynamic) while n4 joins.
for n in n1 n2 n3; do
	run sh -c "echo 0 > '$(cluster_mnt $n)/.info/config/network/migrate-threads'" ||
		bad "$n: migrate-threads 0"
done
mark=$(date +%s%N)
cluster_restart n4
cluster_wait_agree 4 || fail "no cluster of 4 after n4 came back"
sleep 1
check_true "paused: n4 still has migrations to receive" "$(cluster_info n4 migrate_partitions_remaining)" -gt 0
pi=$(run cat "$(cluster_mnt n4)/.info/partitions")
check_true "paused: n4 shows partitions it still receives (state D)" \
	"$(echo "$pi" | grep -c ' state=D ')" -gt 0
check_eq "paused: n4 serves none of them (their working master is another node)" \
	"$(echo "$pi" | grep ' state=D ' | grep -c ' role=master ')" 0
check_eq "paused: a file written before n4 joined reads through n4" \
	"$(run cat "$(cluster_mnt n4)/test/f00007")" "file 7"
# Receiving paused (migrate-max-num-incoming 0 on n4, dynamic), sending
# resumed: n4 takes no partition, not even one sent whole in one message.
run sh -c "echo 0 > '$(cluster_mnt n4)/.info/config/network/migrate-max-num-incoming'" ||
	bad "n4: migrate-max-num-incoming 0"
for n in n1 n2 n3; do
	run sh -c "echo 1 > '$(cluster_mnt $n)/.info/config/network/migrate-threads'" ||
		bad "$n: migrate-threads 1"
done
sleep 1
check_eq "receiving paused: n4 received no record" "$(ns_stat n4 migrate_records_received)" 0
check_true "receiving paused: n4 still has migrations to receive" \
	"$(cluster_info n4 migrate_partitions_remaining)" -gt 0
run sh -c "echo 4 > '$(cluster_mnt n4)/.info/config/network/migrate-max-num-incoming'" ||
	bad "n4: migrate-max-num-incoming 4"
wait $W2 || bad "the writer through n2 failed"
acked=$(grep -c '^w' "$T/w2")
note "writer through n2: $acked acknowledged, $(tail -n 1 "$T/w2")"
check_true "the writer went on while n4 joined" "$acked" -ge 10

# Migrations end on every node (bounded wait).
for n in n1 n2 n3 n4; do
	left=x
	for ((i = 0; i < 300; i++)); do
		left=$(cluster_info $n migrate_partitions_remaining)
		[ "$left" = 0 ] && break
		sleep 0.1
	done
	check_eq "$n: migrate_partitions_remaining reaches 0" "$left" 0
done
note "migrations done $(( ($(date +%s%N) - mark) / 1000000 )) ms after n4 was started"

total=$((N_FILES + acked))
sum=0
for n in n1 n2 n3 n4; do
	o=$(ns_stat $n objects)
	note "$n: objects=$o master_partitions=$(ns_stat $n master_partitions) prole_partitions=$(ns_stat $n prole_partitions) tx=$(ns_stat $n migrate_tx_partitions_initial) rx=$(ns_stat $n migrate_rx_partitions_initial) sent=$(ns_stat $n migrate_records_transmitted) received=$(ns_stat $n migrate_records_received)"
	sum=$((sum + o))
done
check_eq "objects over all nodes = replication-factor x files (no copy on a non-replica)" "$sum" $((2 * total))

check_true "n4 masters partitions" "$(ns_stat n4 master_partitions)" -gt 800
check_true "n4 holds records it received" "$(ns_stat n4 objects)" -gt 0
check_true "n4 received migrations" "$(ns_stat n4 migrate_rx_partitions_initial)" -gt 0
check_eq "n4 has none left to receive" "$(ns_stat n4 migrate_rx_partitions_remaining)" 0
check_eq "n4 receives none now" "$(ns_stat n4 migrate_rx_partitions_active)" 0
check_true "n4 received records" "$(ns_stat n4 migrate_records_received)" -gt 0
check_true "n4 had fresh partitions (empty ones: nothing to migrate)" "$(ns_stat n4 migrate_fresh_partitions)" -gt 0
tx=0
for n in n1 n2 n3; do
	tx=$((tx + $(ns_stat $n migrate_records_transmitted)))
	check_eq "$n: none left to send" "$(ns_stat $n migrate_tx_partitions_remaining)" 0
	check_eq "$n: none being sent" "$(ns_stat $n migrate_tx_partitions_active)" 0
done
check_true "the old nodes sent records" "$tx" -gt 0
check_true "n1 sent migrations" "$(ns_stat n1 migrate_tx_partitions_initial)" -gt 0

out=$(run python3 - "$(cluster_mnt n4)/test" "$N_FILES" "$T/w2" <<'PY'
import os, sys
m, n, wf = sys.argv[1], int(sys.argv[2]), sys.argv[3]
bad = 0
want = {}
for i in range(n):
    want["f%05d" % i] = ("file %d\n" % i).encode() * (1 + i % 7)
for name in open(wf).read().split():
    if name.startswith("w"):
        i = int(name[1:])
        want[name] = ("%s\n" % name).encode() * (1 + i % 5)
for name, data in want.items():
    try:
        with open(os.path.join(m, name), "rb") as fh:
            ok = fh.read() == data
    except OSError:
        ok = False
    if not ok:
        bad += 1
        if bad < 5:
            print("lost or different:", name, file=sys.stderr)
print(bad, len(want))
PY
)
check_eq "every file reads back identical through n4 (of ${out#* })" "${out% *}" 0
listed=$(ls "$(cluster_mnt n4)/test" | wc -l)
check_eq "n4 lists every file" "$listed" "$total"
pi=$(run cat "$(cluster_mnt n4)/.info/partitions")
check_eq "settled: no partition in state D or Z on n4" "$(echo "$pi" | grep -c ' state=[DZ] ')" 0
check_eq "settled: n4 is the working master of every partition it is final master of" \
	"$(echo "$pi" | awk -v me="$(cluster_id n4)" '{ split($5, r, /[=,]/); if (r[2] == me && $6 != "working_master=" me) n++ } END { print n + 0 }')" 0

grep -qE '\{test\} rebalanced: expected-migrations \([0-9]+,[0-9]+\) fresh-partitions [0-9]+' "$(cluster_log n4)" ||
	bad "n4 logs its rebalance"
grep -qE 'all migrations of cluster-key [0-9a-f]{16} done' "$(cluster_log n1)" ||
	bad "n1 logs when all migrations of the change are done"

# ---- a node removed for good: its partitions are re-replicated ----------------
cluster_kill n2
cluster_wait_agree 3 n1 n3 n4 || fail "no cluster of 3 after n2 was killed"
for n in n1 n3 n4; do
	left=x
	for ((i = 0; i < 300; i++)); do
		left=$(cluster_info $n migrate_partitions_remaining)
		[ "$left" = 0 ] && break
		sleep 0.1
	done
	check_eq "after n2 left, $n: migrate_partitions_remaining reaches 0" "$left" 0
done
sum=0
for n in n1 n3 n4; do
	sum=$((sum + $(ns_stat $n objects)))
done
check_eq "after n2 left: objects over the 3 nodes = replication-factor x files again" "$sum" $((2 * total))
listed=$(ls "$(cluster_mnt n1)/test" | wc -l)
check_eq "after n2 left: n1 lists every file" "$listed" "$total"
finish
