#!/bin/bash
# t_cluster_model: the seeded model test (model_test.c) through two
# different nodes' mounts of one cluster (issue 12).  Three nodes at
# replication-factor 2 on 127.0.0.1; one model_test runs through n1's mount
# (set ma and the null set), another at the same time through n2's (set mb
# and the null set): about two thirds of their operations are proxied to
# another node, every write is replicated, renames between a set and the
# null set cross masters.  Each compares every byte, size and xattr with
# its model after every close and at the end.  Listings are left out (-x l):
# a listing shows what the node it runs on stores until listings are
# cluster-wide.  Each file is used through one mount only: two mounts keep
# their own open-file state (a file open on two mounts is close-to-open
# consistent, not shared as the model's handles are).
ITEST_TIMEOUT=${ITEST_TIMEOUT:-240}
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"

MT=$ITEST_BIN/model_test
[ -x "$MT" ] || fail "$MT not built (make check builds it)"

CLUSTER_RF=2
export CLUSTER_RF
cluster_start 3
cluster_wait_agree 3 || fail "no cluster of 3"
M1=$(cluster_mnt n1)/test
M2=$(cluster_mnt n2)/test
mkdir "$M1/ma" || fail "mkdir ma through n1"
mkdir "$M2/mb" || fail "mkdir mb through n2"

OPS=${MODEL_OPS:-4000}
timeout -k 5 150 "$MT" -s 11 -n "$OPS" -x l "$M1/ma" "$M1" >"$T/m1" 2>&1 &
P1=$!
timeout -k 5 150 "$MT" -s 22 -n "$OPS" -x l "$M2/mb" "$M2" >"$T/m2" 2>&1 &
P2=$!
for p in "$P1:m1:n1" "$P2:m2:n2"; do
	IFS=: read -r pid f n <<<"$p"
	if wait "$pid"; then
		pass "through $n: $(tail -n 1 "$T/$f")"
	else
		bad "model_test through $n failed:"
		head -n 40 "$T/$f"
	fi
done
stat_of() {  # stat_of nK NAME: NAME in nK's .info/statistics
	run cat "$(cluster_mnt "$1")/.info/statistics" | awk -F= -v k="$2" '$1 == k { print $2; exit }'
}
for n in n1 n2; do
	note "$n: $(stat_of $n proxy_completed) proxied operations, $(stat_of $n replica_writes_acked) replica writes acknowledged"
	check_true "$n proxied operations" "$(stat_of $n proxy_completed)" -gt 100
	check_eq "$n: no proxied operation timed out or failed" \
		"$(( $(stat_of $n proxy_timed_out) + $(stat_of $n proxy_failed) ))" 0
done
finish
