#!/bin/bash
# t_cluster_large: large files in a cluster (issue 15, item 1).  Three
# nodes, replication-factor 2, on 127.0.0.1: a large file written through
# one node reads identically through the others (its chunks are ordinary
# records spread over the partitions, so over the nodes, and the head's
# attributes say its size everywhere); rewritten in the middle through
# another node, every node reads the new version; unlinked through a third,
# its chunks are gone on every node.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"

CLUSTER_RF=2
export CLUSTER_RF
cluster_start 3
cluster_wait_agree 3 || fail "no cluster of 3"

M1=$(cluster_mnt n1)/test
M2=$(cluster_mnt n2)/test
M3=$(cluster_mnt n3)/test
L=$T/local
mkdir "$L" || fail "mkdir"
# objects_chunks of namespace test on node nK (its copies, master or replica).
chunks() {
	run cat "$(cluster_mnt "$1")/.info/namespace/test" 2>/dev/null |
		awk -F= '$1 == "objects_chunks" { print $2; exit }'
}

head -c $((12 << 20)) /dev/urandom >"$L/f" || fail "random data"
run mkdir "$M1/big" || fail "mkdir"
expect_ok "12 MiB written through n1 (dd bs=1M)" dd if="$L/f" of="$M1/big/f" bs=1M status=none
for n in 2 3; do
	M=$(cluster_mnt n$n)/test
	check_eq "n$n: its size" "$(stat -c %s "$M/big/f")" $((12 << 20))
	expect_ok "n$n reads what n1 wrote" cmp "$L/f" "$M/big/f"
done
total=0
for n in n1 n2 n3; do
	c=$(chunks $n)
	note "$n holds ${c:-?} chunk copies"
	check_true "$n holds chunks of the file (they spread over the nodes)" "${c:-0}" -gt 0
	total=$((total + ${c:-0}))
done
check_eq "13 chunks of 1020 KiB, 2 copies each" "$total" 26

head -c 3000000 /dev/urandom >"$L/patch"
dd if="$L/patch" of="$L/f" bs=1000 seek=5000 conv=notrunc status=none
expect_ok "3 MB rewritten in the middle through n2" \
	dd if="$L/patch" of="$M2/big/f" bs=1000 seek=5000 conv=notrunc status=none
for n in 1 2 3; do
	expect_ok "n$n reads the new version" cmp "$L/f" "$(cluster_mnt n$n)/test/big/f"
done
# Renames through n1 to names mastered elsewhere (one of them, at least,
# by another node than the old name's: the rename runs across masters).
for i in 1 2 3 4; do
	expect_ok "rename $i through n1" mv "$M1/big/f" "$M1/big/f$i"
	run mv "$M1/big/f$i" "$M1/big/f" || bad "rename back $i"
done
total=0
for n in n1 n2 n3; do total=$((total + $(chunks $n))); done
check_eq "renames keep the chunks (13 x 2)" "$total" 26
for n in 1 2 3; do
	expect_ok "n$n reads it after the renames" cmp "$L/f" "$(cluster_mnt n$n)/test/big/f"
done
expect_ok "rm through n3" rm "$M3/big/f"
total=0
for n in n1 n2 n3; do total=$((total + $(chunks $n))); done
check_eq "no chunk left on any node" "$total" 0
finish
