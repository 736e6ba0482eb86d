#!/bin/bash
# t_migrate_coldtomb: a clustered node's cold start keeps its tombstones
# (issue 13: "0 deleted records resurrected").  A tombstone is what keeps
# a node that was away with an old copy from bringing a deleted record
# back; only the tomb raider reclaims it, after tomb-raider-eligible-age
# and with the master asking every replica (docs/cluster.md, "Write path
# with replication").  The cold start used to drop every tombstone with no
# older copy on the node's own storage, as a single node may.
#
# Three nodes configured, two running (n3 stopped at once), replication-
# factor 2, device engine (16 MiB files, 128 KiB write blocks): 10 files
# are written through n1 (on n1 and n2), n2 stops holding them, n1 deletes
# them (tombstones) and writes other files until the old copies' write
# blocks were all reused (its cold start finds no older copy), n1
# restarts: it must still hold the 10 tombstones, and once n2 is back and
# migrations end, the 10 files stay deleted through both nodes.
# Without the fix: 10 tombstones reclaimed at n1's cold start, and all 10
# files back.
ITEST_TIMEOUT=120   # the watchdog (lib.sh); the test takes about 15 s
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"

[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3"; exit 77; }

CLUSTER_RF=2
CLUSTER_ENGINE=device
CLUSTER_ENGINE_SETTINGS="filesize:16M write-block-size:128K"
export CLUSTER_RF CLUSTER_ENGINE CLUSTER_ENGINE_SETTINGS

victims() {  # victims nK: how many of the 10 deleted files nK's mount lists
	run ls "$(cluster_mnt "$1")/test" | grep -c '^victim' || true
}

cluster_start 3
cluster_down n3
cluster_wait_agree 2 n1 n2 || fail "no cluster of n1 and n2"
M1=$(cluster_mnt n1)/test
for i in 0 1 2 3 4 5 6 7 8 9; do
	echo "victim $i" >"$M1/victim$i" || fail "writing victim$i through n1"
done
check_eq "n2 holds the 10 files (replication-factor 2 on 2 nodes)" "$(cluster_ns_stat n2 objects)" 10
cluster_down n2
cluster_wait_size 1 n1 || fail "n1 alone after n2 stopped"
rm "$M1"/victim* || fail "deleting through n1"
check_eq "n1 holds 10 tombstones" "$(cluster_ns_stat n1 tombstones)" 10
# Rewrite 40 files of 64 KiB 60 times (150 MiB through a 16 MiB file):
# every write block that held a victim's copy is written again.
run python3 - "$M1" <<'PY' || fail "churn through n1"
import os, sys
m = sys.argv[1]
for r in range(60):
    for i in range(40):
        with open(os.path.join(m, "churn%02d" % i), "wb") as f:
            f.write(bytes([r]) * 65536)
PY
mark=$(wc -l <"$(cluster_log n1)")
cluster_restart n1
done_line=$(tail -n +"$mark" "$(cluster_log n1)" | grep -m1 'cold start done')
note "n1: ${done_line#*INFO }"
case $done_line in
*" 0 tombstones reclaimed"*) pass "n1's cold start reclaims no tombstone" ;;
*) bad "n1's cold start reclaims no tombstone: $done_line" ;;
esac
check_eq "n1 still holds the 10 tombstones after its cold start" "$(cluster_ns_stat n1 tombstones)" 10
check_eq "n1 alone: the deleted files stay deleted" "$(victims n1)" 0

cluster_restart n2
cluster_wait_agree 2 n1 n2 || fail "no cluster of n1 and n2 after n2 came back"
cluster_settled n1 n2
check_eq "n2 back with its old copies: the deleted files stay deleted through n1" "$(victims n1)" 0
check_eq "n2 back with its old copies: the deleted files stay deleted through n2" "$(victims n2)" 0
check_eq "n2 holds no live copy of them (objects = the 40 other files)" "$(cluster_ns_stat n2 objects)" 40
finish
