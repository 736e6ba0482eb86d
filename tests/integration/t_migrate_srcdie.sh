#!/bin/bash
# t_migrate_srcdie: a migration source that dies mid-partition (issue 13,
# "Bad input": a source that dies mid-partition, a node that comes back
# with an older storage file).  Three nodes, replication-factor 2, device
# engine; namespace migrate-sleep 100 ms (slept once per batch, between a
# partition's START and its INSERT: an emigration spends most of its time
# inside a partition).  n4 joins; while it still has partitions to receive
# n1, one of the sources, is SIGKILLed.  The cluster of n2, n3, n4
# rebalances from the copies left: every file reads back its content
# through n4, no partition stays in state D or Z, and the objects over the
# live nodes are 2 x files.  n1 then restarts on its file (older than the
# cluster's: it missed the rebalance): the same holds for all four nodes.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"

[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3"; exit 77; }

CLUSTER_RF=2
CLUSTER_ENGINE=device
CLUSTER_SETTLE_POLL=0.05
export CLUSTER_RF CLUSTER_ENGINE
N=300

verify() {  # verify NODES...: states, content through the last node, objects
	local n sum=0 last out
	for n in "$@"; do
		check_eq "$n: no partition in state D or Z" \
			"$(run cat "$(cluster_mnt $n)/.info/partitions" | grep -c ' state=[DZ] ')" 0
		sum=$((sum + $(cluster_ns_stat $n objects)))
		last=$n
	done
	check_eq "objects over $* = 2 x files" "$sum" $((2 * N))
	out=$(run python3 - "$(cluster_mnt $last)/test" "$N" <<'PY'
import os, sys
m, n = sys.argv[1], int(sys.argv[2])
bad = 0
for i in range(n):
    try:
        with open(os.path.join(m, "f%04d" % i), "rb") as fh:
            ok = fh.read() == ("file %d\n" % i).encode() * (1 + i % 5)
    except OSError:
        ok = False
    bad += not ok
print(bad)
PY
)
	check_eq "every file reads back through $last" "$out" 0
}

cluster_start 3
cluster_wait_agree 3 || fail "no cluster of 3"
run python3 - "$(cluster_mnt n2)/test" "$N" <<'PY' || fail "writing through n2"
import os, sys
m, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(m, "f%04d" % i), "wb") as fh:
        fh.write(("file %d\n" % i).encode() * (1 + i % 5))
PY
cluster_settled n1 n2 n3
for n in n1 n2 n3; do
	run sh -c "echo 100000 > '$(cluster_mnt $n)/.info/config/namespaces/test/migrate-sleep'" ||
		fail "$n: migrate-sleep"
done
cluster_add_node
cluster_wait_agree 4 || fail "n4 did not join"
# n4 has started receiving, and has more to receive
got=x
for ((i = 0; i < 200; i++)); do
	got=$(cluster_ns_stat n4 migrate_records_received)
	[ "${got:-0}" -gt 0 ] && break
	sleep 0.05
done
left=$(cluster_ns_stat n4 migrate_rx_partitions_remaining)
tx1=$(cluster_ns_stat n1 migrate_tx_partitions_active)
note "n4: received $got records, $left partitions to receive; n1 sending $tx1 partitions now"
check_true "n4 receives, partitions left" "${left:-0}" -gt 0
cluster_kill n1
cluster_wait_agree 3 n2 n3 n4 || fail "no cluster of 3 after n1 was killed"
for n in n2 n3 n4; do
	run sh -c "echo 0 > '$(cluster_mnt $n)/.info/config/namespaces/test/migrate-sleep'" ||
		fail "$n: migrate-sleep 0"
done
cluster_settled n2 n3 n4
verify n2 n3 n4
CLUSTER_EXTRA_YAML_n1=""
cluster_restart n1
cluster_wait_agree 4 || fail "n1 did not come back"
cluster_settled n1 n2 n3 n4
verify n2 n3 n4 n1
finish
