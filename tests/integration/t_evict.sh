#!/bin/bash
# t_evict: eviction (docs/operations.md) keeps used space under evict-used-pct under a
# steady write load of records with a TTL, evicting the soonest to expire
# first and never the records without a TTL; evicted_objects counts them.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

cat >"$CONF" <<EOF
service: { work-directory: $WORK, ticker-interval: 0 }
logging: { file: $LOG, level: info }
namespaces:
  - name: test
    nsup-period: 1
    default-ttl: 3600
    evict-used-pct: 30
    stop-writes-used-pct: 90
    storage-engine: { type: memory, data-size: 16M, write-block-size: 1M }
EOF
start_daemon
S=$MNT/test/ev
mkdir "$S" || fail "mkdir $S"
head -c 32768 /dev/urandom >"$T/blob"
# Ten files that never expire.
for i in $(seq 1 10); do
	cp "$T/blob" "$S/keep$i" && setfattr -n user.recfs.ttl -v -1 "$S/keep$i" || fail "keep$i"
done
total=$(stat_value test data_total_bytes)
max_pct=0
seen_breach=no
check_eq "evict_void_time is 0 before any eviction" "$(stat_value test evict_void_time)" 0
# A steady load of about 2 MB/s: 500 files of 32 KiB (~16 MiB, more than
# the namespace holds), each with a TTL that grows with its number.
for i in $(seq 1 500); do
	cp "$T/blob" "$S/f$i" || fail "write f$i: $(tail -3 "$LOG")"
	setfattr -n user.recfs.ttl -v $((1000 + i)) "$S/f$i" || fail "ttl f$i"
	if [ $((i % 10)) -eq 0 ]; then
		pct=$(($(stat_value test data_used_bytes) * 100 / total))
		[ $pct -gt $max_pct ] && max_pct=$pct
		[ "$(stat_value test hwm_breached)" = true ] && seen_breach=yes
		sleep 0.1
	fi
done
for i in $(seq 1 30); do
	pct=$(($(stat_value test data_used_bytes) * 100 / total))
	[ $pct -le 30 ] && break
	sleep 0.1
done
note "used space peaked at $max_pct% during the load, $pct% after"
check_true "used space back under evict-used-pct ($pct% <= 30%)" $pct -le 30
check_true "eviction kept it near the mark during the load (peak $max_pct% <= 50%)" $max_pct -le 50
check_true "evicted_objects counted" "$(stat_value test evicted_objects)" -gt 0
check_eq "hwm_breached read true while used space was over the mark" $seen_breach yes
# nsup re-evaluates it at its next pass (every nsup-period, 1 s here).
for i in $(seq 1 30); do
	[ "$(stat_value test hwm_breached)" = false ] && break
	sleep 0.1
done
check_eq "hwm_breached reads false once back under it" "$(stat_value test hwm_breached)" false
check_true "evict_void_time names the last threshold" "$(stat_value test evict_void_time)" -gt 0
kept=0
for i in $(seq 1 10); do cmp -s "$T/blob" "$S/keep$i" && kept=$((kept + 1)); done
check_eq "records without a TTL are never evicted" $kept 10
check_true "the soonest to expire went first (f1 gone)" ! -e "$S/f1"
check_true "the latest stays (f500 here)" -e "$S/f500"
assert_serving
finish
