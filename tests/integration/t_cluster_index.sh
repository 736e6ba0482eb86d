#!/bin/bash
# t_cluster_index: index memory per record on every node of a cluster at
# replication-factor 2 (issue 12: "the index stays <= 100 B + key per
# record on every node at RF 2; a replica is an ordinary record").
#
# Three nodes, RF 2, memory engine.  Records with 200-byte keys are
# written through n1; every node stores about two thirds of them (as
# master or replica).  The index takes memory in 1 MiB chunks per entry
# size class (src/index/index_slab.c), so index_used_bytes moves in 1 MiB
# steps: the records a node stored between two steps are what one chunk
# holds, and 1 MiB / that count is the index memory per record, whole.
# After every 60 writes each node's .info/namespace/test is read
# (index_used_bytes, objects); a step seen between two reads is placed
# within those reads' object counts, so the figure is bounded from above:
#   per record <= 1 MiB / (objects just before the second step
#                          - objects just after the first + 1)
# and must be <= 100 + 200 bytes on each node.  (All keys have one length:
# one size class.)
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"

[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3"; exit 77; }

CLUSTER_RF=2
export CLUSTER_RF
cluster_start 3
cluster_wait_agree 3 || fail "no cluster of 3"

KEY_LEN=200
out=$(run python3 - "$KEY_LEN" "$(cluster_mnt n1)" "$(cluster_mnt n2)" "$(cluster_mnt n3)" <<'PY'
import os, sys
key_len = int(sys.argv[1])
mnts = sys.argv[2:]
def stats(m):
    v = {}
    with open(os.path.join(m, ".info/namespace/test")) as f:
        for line in f:
            k, _, x = line.strip().partition("=")
            v[k] = x
    return int(v["index_used_bytes"]), int(v["objects"])
prev = [stats(m) for m in mnts]
steps = [[] for _ in mnts]     # per node: (objects before, objects after) around each step
i = 0
while min(len(s) for s in steps) < 2 and i < 40000:
    for _ in range(60):
        name = ("k" * (key_len - 9)) + "%09d" % i
        with open(os.path.join(mnts[0], "test", name), "wb") as f:
            f.write(b"x")
        i += 1
    for n, m in enumerate(mnts):
        cur = stats(m)
        if cur[0] > prev[n][0]:
            if cur[0] - prev[n][0] != 1 << 20:
                print("node %d: index grew by %d bytes at once" % (n + 1, cur[0] - prev[n][0]))
            steps[n].append((prev[n][1], cur[1]))
        prev[n] = cur
print("writes %d" % i)
prev = [stats(m) for m in mnts]
for n in range(len(mnts)):
    if len(steps[n]) < 2:
        print("node %d: %d steps" % (n + 1, len(steps[n])))
        continue
    (a0, a1), (b0, b1) = steps[n][0], steps[n][1]
    low = b0 - a1 + 1           # records stored between the two steps, at least
    high = b1 - a0              # at most
    print("node %d: objects %d, records per 1 MiB chunk %d..%d, per record %.1f..%.1f bytes, bound %d" %
          (n + 1, prev[n][1], low, high, (1 << 20) / high, (1 << 20) / low, (1 << 20) // low))
PY
)
rc=$?
echo "$out" | sed 's/^/# /'
check_eq "writes and stats reads ran" "$rc" 0
writes=$(echo "$out" | awk '$1 == "writes" { print $2 }')
sum=0
for k in 1 2 3; do
	line=$(echo "$out" | grep "^node $k: objects")
	bound=${line##* bound }
	check_true "n$k: index memory per record <= 100 B + key ($((100 + KEY_LEN))) at RF 2: $bound" \
		"${bound:-99999}" -le $((100 + KEY_LEN))
	objects=$(echo "$line" | awk '{ print $4 }' | tr -d ,)
	sum=$((sum + ${objects:-0}))
done
check_eq "every record is an index entry on two nodes (master and replica)" "$sum" $((2 * ${writes:-0}))
check_eq "the index grew in whole 1 MiB chunks only" "$(echo "$out" | grep -c 'grew by')" 0
finish
