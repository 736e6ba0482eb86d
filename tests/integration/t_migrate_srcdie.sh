#!/bin/bash
# t_migrate_srcdie: a migration source that dies mid-partition (issue 13,
# "Bad input": a source that dies mid-partition, a node that comes back
# with an older storage file).  Three nodes (ids 1, 2, 3), replication-
# factor 2, device engine.  The names are chosen from the placement
# (docs/cluster.md, "Placement": the same rendezvous hash, in Python, a
# record's partition from its digest) so that the test holds the state it
# needs instead of hoping for it:
#   - 48 files of 64 KiB in one partition P whose master is n1 before and
#     after n4 joins and whose new replica is n4: n1 alone sends P to n4,
#     in several messages of at most 1 MiB;
#   - 300 small files in partitions n1 holds none of, or to which n4 is no
#     new replica: n1 sends n4 nothing but P.
# n1's sending is paused (network.migrate-threads 0) while n4 joins; n2
# and n3 send their share.  Then n1 resumes with migrate-sleep 200 ms per
# record (a message of P's 16 records, then 3.2 s asleep); once n4 has
# received P's first records and P is still in state D on n4 (its
# migrate_rx_partitions_remaining 1: P alone), n1 is SIGKILLed: mid-
# partition.  The cluster of n2, n3, n4 rebalances from the copies left
# (P's other replica): every file reads back through n4, no partition
# stays in state D or Z, and the objects over the live nodes are
# 2 x files.  n1 then restarts on its file (older than the cluster's: it
# missed the rebalance): the same holds for all four nodes.
# Before, the test relied on migrate-sleep stretching a migration of 300
# small files and checked that n4 still had partitions to receive after
# its first record: once small partitions were read and sent together (up
# to 64 in a message) that window could close before the check.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"

[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3"; exit 77; }
python3 -c 'import hashlib; hashlib.new("ripemd160")' 2>/dev/null ||
	{ echo "SKIP: $ITEST_NAME needs python3's ripemd160 (record digests)"; exit 77; }

CLUSTER_RF=2
CLUSTER_ENGINE=device
CLUSTER_SETTLE_POLL=0.05
export CLUSTER_RF CLUSTER_ENGINE
N=300          # small files
M=48           # 64 KiB files in P
for k in 1 2 3 4; do   # the placement below is for node ids 1 to 4
	var=CLUSTER_ID_n$k
	[ -z "${!var:-}" ] || fail "the placement below assumes node ids 1-4"
done

# The names: "P pid", then M lines "b name", then N lines "f name".
python3 - "$N" "$M" >"$T/names" <<'PY' || fail "placement"
import hashlib, sys
n_small, n_big = int(sys.argv[1]), int(sys.argv[2])
M64 = (1 << 64) - 1
def fnv(b):
    h = 0xcbf29ce484222325
    for x in b:
        h = ((h ^ x) * 0x100000001b3) & M64
    return h
def jenkins(b):
    h = 0
    for x in b:
        h = (h + x) & M64
        h = (h + (h << 10)) & M64
        h ^= h >> 6
    h = (h + (h << 3)) & M64
    h ^= h >> 11
    return (h + (h << 15)) & M64
def order(ids, pid):
    # src/cluster/partition.c: succession descending, score's low 6 bits
    # the index there, highest score first
    hp = fnv(pid.to_bytes(4, "little"))
    sc = [((jenkins(fnv(n.to_bytes(8, "little")).to_bytes(8, "little") + hp.to_bytes(8, "little"))
           & ~63 & M64) | i, n) for i, n in enumerate(sorted(ids, reverse=True))]
    return [n for s, n in sorted(sc, reverse=True)]
def pid_of(name):   # null set: RIPEMD-160(key type 3 || key)
    d = hashlib.new("ripemd160", b"\x03" + name.encode()).digest()
    return (d[0] | d[1] << 8) & 0xFFF
old = {p: order([1, 2, 3], p)[:2] for p in range(4096)}
new = {p: order([1, 2, 3, 4], p)[:2] for p in range(4096)}
big = next(p for p in range(4096) if old[p][0] == 1 and new[p] == [1, 4])
print("P", big)
names, i = [], 0
while len(names) < n_big:
    if pid_of("b%06d" % i) == big:
        names.append("b%06d" % i)
    i += 1
for x in names:
    print("b", x)
k = i = 0
while k < n_small:
    name = "f%05d" % i
    p = pid_of(name)
    if p != big and not (1 in old[p] and 4 in new[p]):
        print("f", name)
        k += 1
    i += 1
PY
P=$(awk '$1 == "P" { print $2 }' "$T/names")
B0=$(awk '$1 == "b" { print $2; exit }' "$T/names")
note "P = partition $P ($M files of 64 KiB, first $B0)"

# content of a name: small "file NAME\n" x (1 + i % 5), big 64 KiB
cat >"$T/content.py" <<'PY'
def content(kind, name, i):
    if kind == "b":
        return (("%s " % name) * 8192).encode()[:65536]
    return ("file %s\n" % name).encode() * (1 + i % 5)
PY

verify() {  # verify NODES...: states, content through the last node, objects
	local n sum=0 last out
	for n in "$@"; do
		check_eq "$n: no partition in state D or Z" \
			"$(run cat "$(cluster_mnt $n)/.info/partitions" | grep -c ' state=[DZ] ')" 0
		sum=$((sum + $(cluster_ns_stat $n objects)))
		last=$n
	done
	check_eq "objects over $* = 2 x files" "$sum" $((2 * (N + M)))
	out=$(run python3 - "$(cluster_mnt $last)/test" "$T" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[2])
from content import content
m = sys.argv[1]
bad = i = 0
for line in open(os.path.join(sys.argv[2], "names")):
    kind, name = line.split()
    if kind == "P":
        continue
    try:
        with open(os.path.join(m, name), "rb") as fh:
            ok = fh.read() == content(kind, name, i)
    except OSError:
        ok = False
    bad += not ok
    i += 1
print(bad)
PY
)
	check_eq "every file reads back through $last" "$out" 0
}

set_cfg() {  # set_cfg nK PATH VALUE: a dynamic setting under .info/config
	run sh -c "echo $3 > '$(cluster_mnt $1)/.info/config/$2'" || fail "$1: $2 $3"
}

cluster_start 3
cluster_wait_agree 3 || fail "no cluster of 3"
run python3 - "$(cluster_mnt n2)/test" "$T" <<'PY' || fail "writing through n2"
import os, sys
sys.path.insert(0, sys.argv[2])
from content import content
i = 0
for line in open(os.path.join(sys.argv[2], "names")):
    kind, name = line.split()
    if kind == "P":
        continue
    with open(os.path.join(sys.argv[1], name), "wb") as fh:
        fh.write(content(kind, name, i))
    i += 1
PY
cluster_settled n1 n2 n3
check_eq "P's master is n1 (the placement above is the daemon's)" \
	"$(getx user.recfs.master "$(cluster_mnt n2)/test/$B0")" "$(cluster_id n1)"
check_eq "P's records are in partition $P" \
	"$(getx user.recfs.partition "$(cluster_mnt n2)/test/$B0")" "$P"

# n1 sends nothing while n4 joins; n2 and n3 send their share
set_cfg n1 network/migrate-threads 0
cluster_add_node
cluster_wait_agree 4 || fail "n4 did not join"
check_eq "P's replicas now: n1, n4" "$(getx user.recfs.replicas "$(cluster_mnt n2)/test/$B0")" \
	"$(cluster_id n1),$(cluster_id n4)"
for n in n2 n3; do
	left=x
	for ((i = 0; i < 300; i++)); do
		left=$(cluster_ns_stat $n migrate_tx_partitions_remaining)
		[ "$left" = 0 ] && break
		sleep 0.1
	done
	check_eq "$n: sent its share to n4 (migrate_tx_partitions_remaining 0)" "$left" 0
done
check_eq "n1 paused: P is all it has to send" "$(cluster_ns_stat n1 migrate_tx_partitions_remaining)" 1
check_eq "n4: P is all it has to receive" "$(cluster_ns_stat n4 migrate_rx_partitions_remaining)" 1
got0=$(cluster_ns_stat n4 migrate_records_received)

# n1 resumes, slowly: each message of P (16 records) then 3.2 s asleep
set_cfg n1 namespaces/test/migrate-sleep 200000
set_cfg n1 network/migrate-threads 1
got=$got0
for ((i = 0; i < 200; i++)); do   # the paused thread looks again each second
	got=$(cluster_ns_stat n4 migrate_records_received)
	[ "${got:-0}" -gt "$got0" ] && break
	sleep 0.05
done
left=$(cluster_ns_stat n4 migrate_rx_partitions_remaining)
state=$(run cat "$(cluster_mnt n4)/.info/partitions" | awk -v p="pid=$P" '$2 == p { print $4 }')
cluster_kill n1
note "n4 had received $((got - got0)) of P's $M records, P $state there, $left partition(s) to receive, when n1 was killed"
check_true "n4 had received some of P" "$((got - got0))" -gt 0
check_true "and not all of it" "$((got - got0))" -lt "$M"
check_eq "P was still being received (state D, 1 partition left)" "$state $left" "state=D 1"
cluster_wait_agree 3 n2 n3 n4 || fail "no cluster of 3 after n1 was killed"
cluster_settled n2 n3 n4
verify n2 n3 n4
cluster_restart n1
cluster_wait_agree 4 || fail "n1 did not come back"
cluster_settled n1 n2 n3 n4
verify n2 n3 n4 n1
finish
