#!/bin/bash
# t_stopwrites: a namespace driven past stop-writes-used-pct (docs/operations.md)
# answers ENOSPC to writes and creates, keeps serving reads, reads back
# stop_writes=true, and accepts writes again by itself after deletes; a burst
# of writes stops at the threshold (decided on the write path), not at
# storage full.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

cat >"$CONF" <<EOF
service: { work-directory: $WORK, ticker-interval: 0 }
logging: { file: $LOG, level: info }
namespaces:
  - name: test
    nsup-period: 1
    stop-writes-used-pct: 40
    storage-engine: { type: memory, data-size: 16M, write-block-size: 1M }
EOF
start_daemon
S=$MNT/test/sw
mkdir "$S" || fail "mkdir $S"
head -c 65536 /dev/urandom >"$T/blob"
n=0
err=
for i in $(seq 1 400); do
	if ! err=$(cp "$T/blob" "$S/f$i" 2>&1); then
		break
	fi
	n=$i
	# nsup re-checks every 100 ms: give it the chance a slower writer would.
	[ $((i % 8)) -eq 0 ] && sleep 0.05
done
note "$n files of 64 KiB written before the refusal: $err"
check_true "writes were refused with ENOSPC" -n "$(echo "$err" | grep 'No space left on device')"
check_eq "stop_writes reads true" "$(stat_value test stop_writes)" true
check_true "fail_stop_writes counted" "$(stat_value test fail_stop_writes)" -ge 1
check_true "it stopped at about 40% of 16M (n=$n)" "$n" -ge 60 -a "$n" -le 140
# Creates fail too, reads go on.
expect_err "an empty create is refused too" "No space left on device" touch "$S/new-empty"
ok=0
for i in $(seq 1 $n); do cmp -s "$T/blob" "$S/f$i" && ok=$((ok + 1)); done
check_eq "every file written before is intact and readable" $ok $n
# Deletes go on, and writes resume by themselves.
for i in $(seq 1 $((n / 2))); do rm "$S/f$i" || fail "rm f$i"; done
resumed=no
for i in $(seq 1 50); do
	if cp "$T/blob" "$S/again" 2>/dev/null; then
		resumed=yes
		break
	fi
	sleep 0.1
done
check_eq "writes resume after deletes" $resumed yes
check_eq "stop_writes reads false" "$(stat_value test stop_writes)" false

# ---- a burst engages stop-writes at the threshold ------------------------------------------
# Stop-writes is decided on the write path from the live counters, not only
# by nsup's periodic check: 4 writers of 256 KiB files as fast as they can,
# into 64 MiB with stop-writes-used-pct 50, stop at 50% (plus at most one
# record per writer) with ENOSPC from stop-writes, never storage full.
stop_daemon || bad "first daemon exit status"
cat >"$CONF" <<EOF
service: { work-directory: $WORK, ticker-interval: 0 }
logging: { file: $LOG, level: info }
namespaces:
  - name: test
    stop-writes-used-pct: 50
    storage-engine: { type: memory, data-size: 64M, write-block-size: 1M }
EOF
start_daemon
B=$MNT/test/burst
mkdir "$B" || fail "mkdir $B"
if [ "$HAVE_PYTHON" = yes ]; then
	out=$(run python3 - "$B" <<'PY'
import errno, os, sys
from concurrent.futures import ThreadPoolExecutor
d, blob = sys.argv[1], os.urandom(256 * 1024)
def writer(w):
    for i in range(400):
        try:
            with open('%s/w%d-%d' % (d, w, i), 'wb') as f:
                f.write(blob)
        except OSError as e:
            return errno.errorcode.get(e.errno, str(e.errno))
    return 'no error'
with ThreadPoolExecutor(4) as ex:
    print(' '.join(sorted(set(ex.map(writer, range(4))))))
PY
)
	check_eq "burst of 256 KiB writes: every writer ends with ENOSPC" "$out" ENOSPC
	check_eq "burst: stop_writes reads true at once" "$(stat_value test stop_writes)" true
	check_eq "burst: refused by stop-writes, never storage full (fail_out_of_space)" \
		"$(stat_value test fail_out_of_space)" 0
	check_true "burst: fail_stop_writes counted" "$(stat_value test fail_stop_writes)" -ge 4
	used=$(stat_value test data_used_bytes)
	total=$(stat_value test data_total_bytes)
	check_true "burst: stopped at the threshold: used $used of $total <= 50% + 4 records" \
		"$used" -le $((total / 2 + 4 * 262144 + 4096))
	check_true "burst: ... and not far below it" "$used" -ge $((total / 2 - 262144 - 4096))
	# a file whose create was stored before the refusal and whose close was
	# refused is empty; every other one is whole
	stored=$(ls "$B" | wc -l)
	ok=0
	for f in "$B"/*; do
		case $(stat -c %s "$f") in 262144 | 0) ok=$((ok + 1)) ;; esac
	done
	check_eq "burst: every stored file is whole or empty ($stored)" $ok "$stored"
else
	note "no python3: burst check skipped"
fi
assert_serving
finish
