#!/bin/bash
# t_model: the seeded randomized model test (model_test.c) through the mount:
# 3 seeds x 10,000 ops over two sets and the null set, every byte, size, xattr
# and listing compared with an in-memory model.  MODEL_SEEDS / MODEL_OPS
# override the defaults (e.g. MODEL_SEEDS="$RANDOM" for exploring).
ITEST_TIMEOUT=${ITEST_TIMEOUT:-240}
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

MT=$ITEST_BIN/model_test
[ -x "$MT" ] || fail "$MT not built (make check builds it)"

mount_default

mkdir "$MNT/test/ma" "$MNT/test/mb" || fail "mkdir sets"
for seed in ${MODEL_SEEDS:-11 22 33}; do
	if out=$(timeout -k 5 60 "$MT" -s "$seed" -n "${MODEL_OPS:-10000}" \
		"$MNT/test/ma" "$MNT/test/mb" "$MNT/test" 2>&1); then
		pass "$out"
	else
		bad "model_test seed $seed (rc $?):"
		printf '%s\n' "$out" | head -n 40
		daemon_serving || fail "daemon died during model_test seed $seed"
	fi
done

# every record the model left behind is counted once
check_eq "objects match the records left" "$(stat_value test objects)" "$(find "$MNT/test" -type f | wc -l)"

assert_serving
finish
