#!/bin/bash
# t_cluster_model: the seeded model test (model_test.c) through two
# different nodes' mounts of one cluster (issue 12).  Three nodes at
# replication-factor 2 on 127.0.0.1; one model_test runs through n1's mount
# (sets ma and mc), another at the same time through n2's (sets mb and md):
# about two thirds of their operations are proxied to another node, every
# write is replicated, renames between the two sets cross masters, and
# listings gather each partition from its master.  Each compares every
# byte, size, xattr and listing with its model after every close and at
# the end.  Each file and set is used through one mount only: two mounts
# keep their own open-file state (a file open on two mounts is
# close-to-open consistent, not shared as the model's handles are).
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
for d in ma mc; do mkdir "$M1/$d" || fail "mkdir $d through n1"; done
for d in mb md; do mkdir "$M2/$d" || fail "mkdir $d through n2"; done

OPS=${MODEL_OPS:-4000}
timeout -k 5 150 "$MT" -s 11 -n "$OPS" "$M1/ma" "$M1/mc" >"$T/m1" 2>&1 &
P1=$!
timeout -k 5 150 "$MT" -s 22 -n "$OPS" "$M2/mb" "$M2/md" >"$T/m2" 2>&1 &
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
