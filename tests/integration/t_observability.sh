#!/bin/bash
# t_observability: the rest of /.info (SPEC section 8): per-set statistics
# files, every namespace statistic the spec names, latencies, Prometheus
# metrics, and the per-parameter config files (read, write a dynamic one,
# refuse bad values and static ones).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mount_default

I=$MNT/.info

# ---- .info/sets/<ns>/<set> ----------------------------------------------------------------
mkdir "$MNT/test/s1" "$MNT/test/s2" || fail "mkdir sets"
check_eq ".info/sets lists the namespaces" "$(ls "$I/sets" 2>&1 | tr '\n' ' ')" "other test "
check_eq ".info/sets/test lists the (empty) sets" "$(ls "$I/sets/test" 2>&1 | tr '\n' ' ')" "s1 s2 "
check_eq "empty set: objects 0" "$(set_value test s1 objects)" 0
for i in 1 2 3 4 5; do echo "rec $i" >"$MNT/test/s1/r$i"; done
head -c 200000 /dev/urandom >"$MNT/test/s1/big"
check_eq "set objects = 6" "$(set_value test s1 objects)" 6
check_eq "other set untouched" "$(set_value test s2 objects)" 0
check_true "set data_used_bytes >= 200000" "$(set_value test s1 data_used_bytes)" -ge 200000
rm "$MNT/test/s1/r5"
check_eq "set objects = 5 after rm" "$(set_value test s1 objects)" 5
check_true "set tombstones named" -n "$(set_value test s1 tombstones)"
check_eq "set file: stat size matches cat" "$(stat -c %s "$I/sets/test/s1" 2>&1)" "$(cat "$I/sets/test/s1" 2>/dev/null | wc -c)"
rmdir "$MNT/test/s2"
check_true "removed set gone from .info/sets" ! -e "$I/sets/test/s2"

# ---- every namespace statistic SPEC 8 names ----------------------------------------------------------
missing=""
for n in objects tombstones data_used_bytes data_total_bytes data_avail_pct stop_writes \
	expired_objects evicted_objects client_read_success client_write_success client_delete_success \
	write_q defrag_q defrag_reads defrag_writes free_wblocks cache_read_pct shadow_write_q; do
	[ -n "$(stat_value test "$n")" ] || missing="$missing $n"
done
check_eq "namespace stats SPEC 8 names (missing:$missing)" "$missing" ""
for n in uptime cluster_size objects; do
	check_true "node stat $n" -n "$(node_value "$n")"
done

# ---- latencies and metrics ----------------------------------------------------------------------------
check_true ".info/latencies exists" -f "$I/latencies"
lat=$(cat "$I/latencies" 2>/dev/null)
check_true ".info/latencies has p50/p99 values" "$(printf '%s\n' "$lat" | grep -ciE 'p50|p99')" -ge 2
check_true ".info/latencies has >1ms buckets" "$(printf '%s\n' "$lat" | grep -ciE '1ms')" -ge 1
check_true ".info/metrics exists" -f "$I/metrics"
met=$(cat "$I/metrics" 2>/dev/null)
check_true ".info/metrics has # TYPE lines" "$(printf '%s\n' "$met" | grep -c '^# TYPE ')" -ge 3
check_true ".info/metrics has objects per namespace" "$(printf '%s\n' "$met" | grep -cE 'objects\{.*namespace="test"')" -ge 1
check_eq ".info/metrics lines are Prometheus text" "$(printf '%s\n' "$met" | grep -v '^#' | grep -cvE '^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.eE+-]+$|^$')" 0

# ---- .info/config ----------------------------------------------------------------------------------------
C=$I/config/namespaces/test
check_true ".info/config/service has files" "$(ls "$I/config/service" 2>/dev/null | wc -l)" -ge 3
check_true ".info/config/namespaces/test has the namespace's parameters" "$(ls "$C" 2>/dev/null | wc -l)" -ge 10
wbs=$(cat "$C/write-block-size" 2>&1)
check_true "write-block-size reads 1M ($wbs)" "$(printf '%s\n' "$wbs" | grep -cxE '1M|1048576')" -eq 1
check_eq "data-size reads 256M" "$(cat "$C/data-size" 2>&1 | grep -cxE '256M|268435456')" 1
sh_ok "write a dynamic parameter (defrag-lwm-pct 40)" 'echo 40 > "$1"' "$C/defrag-lwm-pct"
check_eq "the dynamic parameter changed" "$(cat "$C/defrag-lwm-pct" 2>&1)" 40
check_true "the namespace stats show it" "$(grep -cE '^(storage-engine\.)?defrag-lwm-pct=40$' "$I/namespace/test")" -eq 1
sh_err "write an out-of-range value (defrag-lwm-pct 150)" "Invalid argument" 'echo 150 > "$1"' "$C/defrag-lwm-pct"
check_eq "a refused value changes nothing" "$(cat "$C/defrag-lwm-pct" 2>&1)" 40
sh_err "write garbage to a dynamic parameter" "Invalid argument" 'echo lots > "$1"' "$C/defrag-lwm-pct"
sh_err "write a static parameter (write-block-size)" "Permission denied" 'echo 2M > "$1"' "$C/write-block-size"
check_true "the static parameter is unchanged" "$(cat "$C/write-block-size" 2>&1 | grep -cxE '1M|1048576')" -eq 1
sh_ok "write a dynamic service parameter (ticker-interval 5)" 'echo 5 > "$1"' "$I/config/service/ticker-interval"
check_eq "ticker-interval changed" "$(cat "$I/config/service/ticker-interval" 2>&1)" 5
sh_err "a parameter file cannot be created" "" 'echo 1 > "$1"' "$C/no-such-parameter"
run rm -f "$C/defrag-lwm-pct" 2>/dev/null
check_true "a parameter file cannot be removed" -f "$C/defrag-lwm-pct"

assert_serving "config writes"
finish
