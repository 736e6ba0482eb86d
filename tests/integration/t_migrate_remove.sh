#!/bin/bash
# t_migrate_remove: a node removed for good has its partitions
# re-replicated, and a node's cold start after a migration loads every
# copy it received (issue 13).  Five nodes on 127.0.0.1, replication-factor
# 2, device engine.  Files are written through every mount and a quarter of
# them deleted.  Every check of "where the copies are" reads each file's
# user.recfs.replicas (final master first) and compares, node by node, the
# records a node must hold with its `objects`:
#   1. 5 nodes settled: every live file has 2 distinct replicas, and each
#      node's objects = the files naming it;
#   2. n3 stopped cleanly and never restarted: once migrations end on the
#      4 left, every live file has 2 distinct replicas among them (none is
#      n3), each node's objects = the files naming it, no partition is in
#      state D or Z, the 4 received at least the records n3 held, and every
#      file reads back identical through every node, the deleted ones absent;
#   3. cold start after that migration: the node that received the most,
#      R, is stopped and started on its storage as a cluster of its own
#      (another cluster-name): it holds the same objects and tombstones as
#      before, lists exactly the files naming it, with their content, and
#      none of the deleted ones;
#   4. R started again with the others: its listing is the one it showed
#      before it stopped, every file reads identical through it, and once
#      migrations end the copies are where (1) says again.
ITEST_TIMEOUT=180   # the watchdog (lib.sh); the test takes about 40 s
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"

[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3"; exit 77; }

CLUSTER_RF=2
CLUSTER_ENGINE=device
export CLUSTER_RF CLUSTER_ENGINE
N=500

# content of file i (f0000 .. f<N-1>): distinct per file
want_py='
def want(i):
    return ("file %d of the removal test\n" % i).encode() * (1 + i % 9)
def live(i):
    return i % 4 != 3
'
# where NODE NODES...: reads user.recfs.replicas of every live file through
# NODE's mount; prints per node of NODES "nK=COUNT" (the live files naming
# it) and a line "bad N" (files whose replicas are not 2 distinct nodes of
# NODES); the replica lists go to $T/replicas
where() {
	local via=$1 n ids=""
	shift
	for n in "$@"; do ids="$ids $n=$(cluster_id "$n")"; done
	run python3 - "$(cluster_mnt "$via")/test" "$N" "$T/replicas" $ids <<PY
import os, sys
$want_py
d, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
node = dict(a.split("=") for a in sys.argv[4:])
byid = {v: k for k, v in node.items()}
count = {k: 0 for k in node}
bad = 0
with open(out, "w") as f:
    for i in range(n):
        if not live(i):
            continue
        name = "f%04d" % i
        try:
            reps = os.getxattr(os.path.join(d, name), "user.recfs.replicas").decode().strip("\0\n").split(",")
        except OSError as e:
            reps = ["error:" + str(e.errno)]
        f.write("%s %s\n" % (name, ",".join(byid.get(r, r) for r in reps)))
        if len(reps) != 2 or len(set(reps)) != 2 or not all(r in byid for r in reps):
            bad += 1
            if bad <= 5:
                print("%s: replicas %s" % (name, ",".join(reps)), file=sys.stderr)
            continue
        for r in reps:
            count[byid[r]] += 1
for k in sorted(count):
    print("%s=%d" % (k, count[k]))
print("bad %d" % bad)
PY
}
# copies_where NODES...: each node's objects = the live files naming it
# (by where, through the first node)
copies_where() {
	local out n want got sum=0 what=$*
	out=$(where "$1" "$@") || { bad "reading user.recfs.replicas through $1"; return; }
	check_eq "[$what] every live file has 2 distinct replicas among them" "$(echo "$out" | sed -n 's/^bad //p')" 0
	for n in "$@"; do
		want=$(echo "$out" | sed -n "s/^$n=//p")
		got=$(cluster_ns_stat "$n" objects)
		check_eq "[$what] $n holds exactly the files naming it (objects)" "$got" "$want"
		sum=$((sum + ${got:-0}))
	done
	check_eq "[$what] objects over the nodes = 2 x live files" "$sum" $((2 * LIVE))
}
# same_content NODE: every file reads what was written through NODE, the
# deleted ones absent; prints the number of wrong ones
same_content() {
	run python3 - "$(cluster_mnt "$1")/test" "$N" <<PY
import os, sys
$want_py
d, n = sys.argv[1], int(sys.argv[2])
wrong = 0
for i in range(n):
    p = os.path.join(d, "f%04d" % i)
    try:
        with open(p, "rb") as f:
            ok = live(i) and f.read() == want(i)
    except FileNotFoundError:
        ok = not live(i)
    except OSError:
        ok = False
    if not ok:
        wrong += 1
        if wrong <= 5:
            print("wrong: f%04d" % i, file=sys.stderr)
print(wrong)
PY
}

cluster_start 5
cluster_wait_agree 5 || fail "no cluster of 5"
mnts=()
for n in n1 n2 n3 n4 n5; do mnts+=("$(cluster_mnt $n)/test"); done
run python3 - "$N" "${mnts[@]}" <<PY || fail "writing and deleting through the 5 mounts"
import os, sys
$want_py
n, m = int(sys.argv[1]), sys.argv[2:]
for i in range(n):
    with open(os.path.join(m[i % 5], "f%04d" % i), "wb") as f:
        f.write(want(i))
for i in range(n):
    if not live(i):
        os.unlink(os.path.join(m[(i + 2) % 5], "f%04d" % i))
PY
LIVE=$(python3 -c "
$want_py
print(sum(live(i) for i in range($N)))")
note "$N files written through the 5 mounts, $((N - LIVE)) deleted: $LIVE live"
cluster_settled n1 n2 n3 n4 n5
copies_where n1 n2 n3 n4 n5

# ---- 2. n3 removed for good ---------------------------------------------------
held=$(cluster_ns_stat n3 objects)
rx0=0
for n in n1 n2 n4 n5; do rx0=$((rx0 + $(cluster_ns_stat $n migrate_records_received))); done
mark=$(date +%s%N)
cluster_down n3 || bad "n3's clean stop"
cluster_wait_agree 4 n1 n2 n4 n5 || fail "no cluster of 4 after n3 left"
cluster_settled n1 n2 n4 n5
note "re-replication done $((($(date +%s%N) - mark) / 1000000)) ms after n3's stop"
copies_where n1 n2 n4 n5
for n in n1 n2 n4 n5; do
	check_eq "after n3 left: no partition in state D or Z on $n" \
		"$(run cat "$(cluster_mnt $n)/.info/partitions" | grep -c ' state=[DZ] ')" 0
done
rx=0
best=n1
best_rx=-1
for n in n1 n2 n4 n5; do
	r=$(cluster_ns_stat $n migrate_records_received)
	rx=$((rx + r))
	[ "$r" -gt "$best_rx" ] && best=$n best_rx=$r
done
check_true "the 4 received at least the $held records n3 held ($((rx - rx0)))" $((rx - rx0)) -ge "$held"
for n in n1 n2 n4 n5; do
	check_eq "after n3 left: every file reads back through $n, the deleted ones absent" "$(same_content $n)" 0
done

# ---- 3. cold start of R after that migration, alone ----------------------------------
R=$best
r_objects=$(cluster_ns_stat $R objects)
r_tombs=$(cluster_ns_stat $R tombstones)
r_names=$(awk -v r="$R" '{ split($2, a, ","); if (a[1] == r || a[2] == r) print $1 }' "$T/replicas" | sort | tr '\n' ' ')
listing=$(run ls "$(cluster_mnt $R)/test" | tr '\n' ' ')
note "$R received $best_rx records; holds $r_objects objects, $r_tombs tombstones"
check_eq "before the stop: $R lists every live file" "$(echo "$listing" | wc -w)" "$LIVE"
cluster_down $R || bad "$R's clean stop"
declare "CLUSTER_NAME_$R=alone"
cluster_restart $R
cluster_wait_size 1 $R || bad "$R did not come back as a cluster of its own"
check_eq "$R alone: objects after its cold start = before its stop" "$(cluster_ns_stat $R objects)" "$r_objects"
check_eq "$R alone: tombstones after its cold start = before its stop" "$(cluster_ns_stat $R tombstones)" "$r_tombs"
check_eq "$R alone lists exactly the files naming it" "$(run ls "$(cluster_mnt $R)/test" | tr '\n' ' ')" "$r_names"
out=$(run python3 - "$(cluster_mnt $R)/test" "$r_names" <<PY
import os, sys
$want_py
d, names = sys.argv[1], sys.argv[2].split()
wrong = 0
for name in names:
    try:
        with open(os.path.join(d, name), "rb") as f:
            ok = f.read() == want(int(name[1:]))
    except OSError:
        ok = False
    wrong += not ok
print(wrong)
PY
)
check_eq "$R alone: each of its files reads its content" "$out" 0
dead=$(python3 -c "
$want_py
print(' '.join('f%04d' % i for i in range($N) if not live(i)))")
back=0
for f in $dead; do [ -e "$(cluster_mnt $R)/test/$f" ] && back=$((back + 1)); done
check_eq "$R alone: no deleted file back" "$back" 0

# ---- 4. R back with the others ----------------------------------------------------
unset "CLUSTER_NAME_$R"
cluster_restart $R
cluster_wait_agree 4 n1 n2 n4 n5 || fail "no cluster of 4 after $R came back"
check_eq "$R back: it lists what it listed before it stopped" "$(run ls "$(cluster_mnt $R)/test" | tr '\n' ' ')" "$listing"
check_eq "$R back: every file reads back through it, the deleted ones absent" "$(same_content $R)" 0
cluster_settled n1 n2 n4 n5
copies_where n1 n2 n4 n5
finish
