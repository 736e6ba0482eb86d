#!/bin/bash
# t_cluster_tombs: the tomb raider in a cluster (issue 12, "expiration,
# eviction and the tombstone reclaimer act on masters only and replicate").
# Three nodes, replication-factor 2, device engine (16 MiB files, 128 KiB
# write blocks, tomb-raider-period 1 s, tomb-raider-eligible-age 0):
#   - 60 records written and deleted through n1 leave 120 tombstones: one
#     on each of a record's two replicas;
#   - with n3's tomb raider off, once the deleted copies are gone from
#     storage (other files rewritten until every write block was reused),
#     n1 and n2 keep exactly the tombstones of records n3 also holds:
#     a replica does not reclaim alone, and a master keeps its tombstone
#     while a replica has not checked its own;
#   - n3's raider on again: every tombstone goes on all three nodes; each
#     node's tombstones_reclaimed is the number it held, the masters sent
#     reclaims (tomb_reclaims_sent) and the replicas received them;
#   - the deleted names stay ENOENT through every node, also after n1
#     restarts (its cold start reads its storage again).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"

[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3"; exit 77; }

CLUSTER_RF=2
CLUSTER_ENGINE=device
CLUSTER_ENGINE_SETTINGS="filesize:16M write-block-size:128K tomb-raider-period:1 tomb-raider-eligible-age:0"
export CLUSTER_RF CLUSTER_ENGINE CLUSTER_ENGINE_SETTINGS
cluster_start 3
cluster_wait_agree 3 || fail "no cluster of 3"

M1=$(cluster_mnt n1)/test
id1=$(cluster_id n1)
id2=$(cluster_id n2)
id3=$(cluster_id n3)

ns_stat() {  # ns_stat nK NAME: NAME in nK's .info/namespace/test
	run cat "$(cluster_mnt "$1")/.info/namespace/test" | awk -F= -v k="$2" '$1 == k { print $2; exit }'
}
raider_period() {  # raider_period nK SECONDS
	run sh -c "echo $2 > '$(cluster_mnt "$1")/.info/config/namespaces/test/tomb-raider-period'" ||
		fail "cannot set tomb-raider-period on $1"
}
# churn: rewrite 40 files of 64 KiB through n1 ten times (each node stores
# about 17 MiB of it: every write block of its 16 MiB file is reused).
churn() {
	run python3 - "$M1" <<'PY' || fail "churn writes through n1"
import os, sys
m = sys.argv[1]
for r in range(10):
    for i in range(40):
        with open(os.path.join(m, "churn%02d" % i), "wb") as f:
            f.write(bytes([r]) * 65536)
PY
}

raider_period n3 0
# 60 records through n1; note which nodes hold each, then delete them.
placement=$(run python3 - "$M1" <<'PY'
import os, sys
m = sys.argv[1]
for i in range(60):
    p = os.path.join(m, "d%02d" % i)
    with open(p, "wb") as f:
        f.write(b"deleted later %d\n" % i)
    print(os.getxattr(p, "user.recfs.replicas").decode())
for i in range(60):
    os.unlink(os.path.join(m, "d%02d" % i))
PY
) || fail "writes and deletes through n1"
holds() {  # holds A [B]: records whose replicas include A (and B)
	echo "$placement" | awk -F, -v a="$1" -v b="${2:-$1}" '($1 == a || $2 == a) && ($1 == b || $2 == b)' | wc -l
}
total=0
for k in 1 2 3; do
	total=$((total + $(ns_stat n$k tombstones)))
done
check_eq "60 deletes at RF 2: 120 tombstones on the three nodes" "$total" 120
for k in 1 2 3; do
	id=$(cluster_id n$k)
	check_eq "n$k holds a tombstone of each deleted record it is a replica of" \
		"$(ns_stat n$k tombstones)" "$(holds "$id")"
done

# Phase 1: n3 does not run its raider.
churn
want1=$(holds "$id1" "$id3")
want2=$(holds "$id2" "$id3")
want3=$(holds "$id3")
i=0
while { [ "$(ns_stat n1 tombstones)" -gt "$want1" ] || [ "$(ns_stat n2 tombstones)" -gt "$want2" ]; } &&
	[ $i -lt 40 ]; do
	churn
	i=$((i + 1))
done
sleep 2.5   # two more passes on n1 and n2: nothing else may go
check_eq "n3's raider off: n1 keeps the tombstones of records n3 holds too" "$(ns_stat n1 tombstones)" "$want1"
check_eq "n3's raider off: n2 keeps the tombstones of records n3 holds too" "$(ns_stat n2 tombstones)" "$want2"
check_eq "n3's raider off: n3 keeps all of its own" "$(ns_stat n3 tombstones)" "$want3"
check_eq "n3 reclaimed nothing" "$(ns_stat n3 tombstones_reclaimed)" 0
check_true "n1 and n2 kept tombstones a replica (n3) had not checked (tomb_reclaims_refused)" \
	"$(( $(ns_stat n1 tomb_reclaims_refused) + $(ns_stat n2 tomb_reclaims_refused) ))" -gt 0
check_true "n3 was asked (tomb_reclaims_received)" "$(ns_stat n3 tomb_reclaims_received)" -gt 0

# Phase 2: n3's raider on: everything goes, on every node.
raider_period n3 1
i=0
while [ "$(( $(ns_stat n1 tombstones) + $(ns_stat n2 tombstones) + $(ns_stat n3 tombstones) ))" -gt 0 ] &&
	[ $i -lt 100 ]; do
	sleep 0.2
	i=$((i + 1))
done
for k in 1 2 3; do
	id=$(cluster_id n$k)
	check_eq "n$k: no tombstone left" "$(ns_stat n$k tombstones)" 0
	check_eq "n$k reclaimed each tombstone it held" "$(ns_stat n$k tombstones_reclaimed)" "$(holds "$id")"
	check_true "n$k sent reclaims as master" "$(ns_stat n$k tomb_reclaims_sent)" -gt 0
	check_true "n$k received reclaims as replica" "$(ns_stat n$k tomb_reclaims_received)" -gt 0
done

gone() {  # gone nK: how many of d00..d59 exist through nK
	run python3 - "$(cluster_mnt "$1")/test" <<'PY'
import os, sys
print(sum(os.path.exists(os.path.join(sys.argv[1], "d%02d" % i)) for i in range(60)))
PY
}
for k in 1 2 3; do
	check_eq "deleted names stay deleted through n$k" "$(gone n$k)" 0
done
cluster_restart n1
cluster_wait_agree 3 || fail "n1 did not rejoin"
check_eq "n1 restarted: its cold start brings no deleted record back" "$(ns_stat n1 objects)" \
	"$(run python3 - "$M1" "$id1" <<'PY'
import os, sys
print(sum(os.getxattr(os.path.join(sys.argv[1], "churn%02d" % i), "user.recfs.replicas").decode().find(sys.argv[2]) >= 0 for i in range(40)))
PY
)"
for k in 1 2 3; do
	check_eq "after n1's restart deleted names stay deleted through n$k" "$(gone n$k)" 0
done
finish
