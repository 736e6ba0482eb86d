#!/bin/bash
# t_stopwrites: a namespace driven past stop-writes-used-pct (SPEC 6.5)
# answers ENOSPC to writes and creates, keeps serving reads, reads back
# stop_writes=true, and accepts writes again by itself after deletes.
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
assert_serving
finish
