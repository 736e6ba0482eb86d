#!/bin/bash
# t_partition: the partition table as a user sees it (docs/cluster.md,
# Partitions).
#   1. A single node (no network section, replication-factor 2): every
#      record's user.recfs.master and user.recfs.replicas are the node's own
#      id (.info/node); effective_replication_factor is 1, the node masters
#      all 4096 partitions; the log says "{test} rebalanced"; the names are
#      readable but not listed, and a write to them is accepted and ignored;
#      .info/partitions: 4096 lines per namespace, all mastered here.
#   2. 3 nodes on loopback, RF 2: the same 300 names written through each
#      node's mount (each node stores its own copy: no data path yet) show
#      the same master and replicas on all 3 mounts; 2 distinct replicas,
#      master first; each node masters 25-42% of the names;
#      effective_replication_factor is 2 everywhere and the nodes' master
#      and prole partitions add up to 4096 each.
#      .info/partitions has a line per partition: the same replicas on
#      all 3 nodes, those of each name's user.recfs.partition, and as many
#      master and prole lines as the statistics say.
#   3. SIGKILL of n3: once n1 and n2 agree on a cluster of 2 and logged the
#      rebalance, both show the same placement again, n3 is no name's master
#      or replica, and only the names n3 mastered changed master (to their
#      first replica).
ITEST_TIMEOUT=90
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"
[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3"; exit 77; }

N_NAMES=300

# placement MNT: "name master replicas partition" per name, sorted
placement() {
	run python3 - "$1" "$N_NAMES" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    p = "%s/test/p%03d" % (d, i)
    m = os.getxattr(p, "user.recfs.master").decode()
    r = os.getxattr(p, "user.recfs.replicas").decode()
    pid = os.getxattr(p, "user.recfs.partition").decode()
    print("p%03d %s %s %s" % (i, m, r, pid))
EOF
}

# pinfo MNT: .info/partitions of namespace test as "pid replicas", by pid
pinfo() {
	run cat "$1/.info/partitions" | awk '$1 == "ns=test" { sub(/^pid=/, "", $2); sub(/^replicas=/, "", $5); print $2, $5 }'
}
# by_partition PLACEMENT: "pid replicas" of each name's partition, unique
by_partition() {
	echo "$1" | awk '{ print $4, $3 }' | sort -u
}

# write_names MNT: the N_NAMES files, through that mount
write_names() {
	run python3 - "$1" "$N_NAMES" <<'EOF'
import sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open("%s/test/p%03d" % (d, i), "w") as f:
        f.write("record %d\n" % i)
EOF
}

# ---- 1. a single node ----------------------------------------------------------

write_config
sed -i '0,/replication-factor: 1/s//replication-factor: 2/' "$CONF"
start_daemon
SELF=$(info_value node node_id)
check_true "the node has an id" -n "$SELF"
sh_ok "write a record" 'echo one > "$1/test/single"' "$MNT"
check_eq "single node: master is this node" "$(getx user.recfs.master "$MNT/test/single")" "$SELF"
check_eq "single node: replicas is this node" "$(getx user.recfs.replicas "$MNT/test/single")" "$SELF"
check_eq "single node: effective_replication_factor (configured 2)" \
	"$(stat_value test effective_replication_factor)" 1
check_eq "single node: master_partitions" "$(stat_value test master_partitions)" 4096
check_eq "single node: prole_partitions" "$(stat_value test prole_partitions)" 0
check_true "single node: the rebalance is logged" "$(grep -c "{test} rebalanced: cluster-key 0000000000000000 nodes 1 replication-factor 1 master-partitions 4096 prole-partitions 0" "$LOG")" -ge 1
GEN=$(getx user.recfs.generation "$MNT/test/single")
expect_ok "setxattr user.recfs.master is accepted" setfattr -n user.recfs.master -v 0000000000000009 "$MNT/test/single"
check_eq "... and ignored" "$(getx user.recfs.master "$MNT/test/single")" "$SELF"
check_eq "... the record was not rewritten" "$(getx user.recfs.generation "$MNT/test/single")" "$GEN"
LIST=$(run getfattr --absolute-names -d -m - "$MNT/test/single" 2>/dev/null)
check_eq "listxattr does not list master/replicas" "$(echo "$LIST" | grep -c 'recfs\.\(master\|replicas\)')" 0
PI=$(run cat "$MNT/.info/partitions")
check_eq "single node: .info/partitions has 4096 lines per namespace" \
	"$(echo "$PI" | awk '{ print $1 }' | sort | uniq -c | awk '{ print $2 "=" $1 }' | tr '\n' ' ')" \
	"ns=other=4096 ns=test=4096 "
check_eq "single node: every partition mastered here" \
	"$(echo "$PI" | grep -vc " role=master state=S replicas=$SELF working_master=$SELF\$")" 0
check_eq "single node: pids 0..4095" "$(echo "$PI" | awk '$1 == "ns=test" { print $2 }' | head -1)/$(echo "$PI" | awk '$1 == "ns=test" { print $2 }' | tail -1)" "pid=0/pid=4095"
check_eq ".info/partitions: st_size is what cat reads" "$(stat -c %s "$MNT/.info/partitions")" "$(run cat "$MNT/.info/partitions" | wc -c)"
stop_daemon || bad "single node: clean stop"

# ---- 2. three nodes, RF 2 ------------------------------------------------------------

CLUSTER_RF=2 cluster_start 3
cluster_wait_agree 3 || fail "3 nodes do not agree"
for n in n1 n2 n3; do
	cluster_wait_log "$n" "\{test\} rebalanced: cluster-key [0-9a-f]{16} nodes 3 replication-factor 2 " ||
		bad "$n: no rebalance to 3 nodes logged"
done
for n in n1 n2 n3; do
	write_names "$(cluster_mnt "$n")" || fail "$n: writing $N_NAMES names"
done
P1=$(placement "$(cluster_mnt n1)")
P2=$(placement "$(cluster_mnt n2)")
P3=$(placement "$(cluster_mnt n3)")
check_eq "n1 reads $N_NAMES placements" "$(echo "$P1" | grep -c .)" "$N_NAMES"
check_eq "n2 shows n1's placement" "$P2" "$P1"
check_eq "n3 shows n1's placement" "$P3" "$P1"
ID1=$(cluster_id n1) ID2=$(cluster_id n2) ID3=$(cluster_id n3)
BADL=$(echo "$P1" | awk -v a="$ID1" -v b="$ID2" -v c="$ID3" '{
	n = split($3, r, ",");
	ok = n == 2 && r[1] == $2 && r[1] != r[2];
	for (i = 1; i <= n; i++) ok = ok && (r[i] == a || r[i] == b || r[i] == c);
	if (!ok) print }')
check_eq "2 distinct replicas of the 3 nodes, master first" "$BADL" ""
for n in n1 n2 n3; do
	id=$(cluster_id "$n")
	m=$(echo "$P1" | awk -v id="$id" '$2 == id' | wc -l)
	note "$n masters $m of $N_NAMES names"
	check_true "$n masters 25-42% of the names ($m)" "$m" -ge $((N_NAMES * 25 / 100)) -a "$m" -le $((N_NAMES * 42 / 100))
	check_eq "$n: effective_replication_factor" "$(MNT=$(cluster_mnt "$n") stat_value test effective_replication_factor)" 2
done
SUM_M=0 SUM_P=0
for n in n1 n2 n3; do
	SUM_M=$((SUM_M + $(MNT=$(cluster_mnt "$n") stat_value test master_partitions)))
	SUM_P=$((SUM_P + $(MNT=$(cluster_mnt "$n") stat_value test prole_partitions)))
done
check_eq "master_partitions of the 3 nodes add up" "$SUM_M" 4096
check_eq "prole_partitions of the 3 nodes add up (RF 2)" "$SUM_P" 4096
I1=$(pinfo "$(cluster_mnt n1)")
check_eq "n1: .info/partitions has 4096 lines for test" "$(echo "$I1" | grep -c .)" 4096
check_eq "n2: .info/partitions shows n1's replicas" "$(pinfo "$(cluster_mnt n2)")" "$I1"
check_eq "n3: .info/partitions shows n1's replicas" "$(pinfo "$(cluster_mnt n3)")" "$I1"
check_eq "each name's partition line has the name's replicas" \
	"$(join <(by_partition "$P1" | sort -k1,1) <(echo "$I1" | sort -k1,1) | awk '$2 != $3')" ""
for n in n1 n2 n3; do
	R=$(run cat "$(cluster_mnt "$n")/.info/partitions" | awk '$1 == "ns=test" { print $3 }' | sort | uniq -c | awk '{ print $2 "=" $1 }' | tr '\n' ' ')
	check_eq "$n: .info/partitions roles match the statistics" "$R" \
		"role=master=$(MNT=$(cluster_mnt "$n") stat_value test master_partitions) role=none=$((4096 - $(MNT=$(cluster_mnt "$n") stat_value test master_partitions) - $(MNT=$(cluster_mnt "$n") stat_value test prole_partitions))) role=prole=$(MNT=$(cluster_mnt "$n") stat_value test prole_partitions) "
done

# ---- 3. SIGKILL of n3 --------------------------------------------------------------

M1=$(cluster_mark n1) M2=$(cluster_mark n2)
cluster_kill n3
cluster_wait_agree 2 n1 n2 || fail "n1 and n2 do not agree on 2 nodes"
cluster_wait_log n1 "\{test\} rebalanced: cluster-key [0-9a-f]{16} nodes 2 replication-factor 2 " "$M1" ||
	bad "n1: no rebalance to 2 nodes logged"
cluster_wait_log n2 "\{test\} rebalanced: cluster-key [0-9a-f]{16} nodes 2 replication-factor 2 " "$M2" ||
	bad "n2: no rebalance to 2 nodes logged"
Q1=$(placement "$(cluster_mnt n1)")
Q2=$(placement "$(cluster_mnt n2)")
check_eq "after the kill n1 reads $N_NAMES placements" "$(echo "$Q1" | grep -c .)" "$N_NAMES"
check_eq "after the kill n2 shows n1's placement" "$Q2" "$Q1"
check_eq "no name is placed on the dead node" "$(echo "$Q1" | grep -c "$ID3")" 0
MOVED=$(join <(echo "$P1") <(echo "$Q1") | awk -v dead="$ID3" '{
	split($3, r, ",");
	if ($2 != dead && $5 != $2) print "kept master moved:", $0;
	if ($2 == dead && $5 != r[2]) print "not to its first replica:", $0 }')
check_eq "only the dead node's names changed master, to their first replica" "$MOVED" ""
for n in n1 n2; do
	check_eq "$n after the kill: effective_replication_factor" "$(MNT=$(cluster_mnt "$n") stat_value test effective_replication_factor)" 2
done
SUM_M=$(($(MNT=$(cluster_mnt n1) stat_value test master_partitions) + $(MNT=$(cluster_mnt n2) stat_value test master_partitions)))
check_eq "master_partitions of the 2 survivors add up" "$SUM_M" 4096

finish
