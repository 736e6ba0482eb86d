#!/bin/bash
# t_defrag: defragmentation under a steady overwrite load (docs/operations.md,
# Defragmentation).
# A device-engine namespace is filled to about half its data space with
# files of 20-60 KB, then the same files are overwritten at random for a
# bounded time - many times the data space in all - through the mount.
# No write may fail (no ENOSPC: defrag must keep up at 50% fill), and the
# free space sampled during the second half of the load stays, at its
# median, above a tenth of the device; at the
# end every file holds its last written content, data_used_bytes is about
# the live data, the defrag counters in .info/namespace/test went up, and
# after a clean restart every file still holds its last content and
# recfs-check finds the file clean; then, idle, the defrag thread sleeps
# (no wake every 50 ms).  crash_writer.c (mode overwrite)
# writes and checks the content.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

CW=$ITEST_BIN/crash_writer
CHECK=$top_builddir/recfs-check
[ -x "$CW" ] || fail "$CW not built (make check builds it)"
[ -x "$CHECK" ] || fail "$CHECK not built"
DAT=$T/test.dat
S=$MNT/test/defrag
WBS=131072
SECONDS_LOAD=${DEFRAG_SECONDS:-15}
KEYS=300          # x 40 KB average = 12 MB, half of 24 MiB of data space
SEED=${DEFRAG_SEED:-1}

# live_bytes: the sum of the sizes of the files in the set.
live_bytes() {
	ls -l "$S" | awk '$1 ~ /^-/ { s += $5 } END { print s + 0 }'
}
# stats_line: the figures this test watches, one line.
stats_line() {
	run cat "$MNT/.info/namespace/test" | grep -E \
		'^(objects|data_used_bytes|free_wblocks|defrag_q|defrag_reads|defrag_writes|defrag_records|fail_out_of_space|write_waits)=' |
		tr '\n' ' '
}

write_device_config "$DAT" "filesize: 32M" "write-block-size: 128K" "flush-max-ms: 100" \
	"defrag-sleep: 0"
start_daemon
mkdir "$S" || fail "mkdir $S"
TOTAL_WB=$(stat_value test total_wblocks)
note "data space: $TOTAL_WB write blocks of $WBS bytes; seed $SEED"

# ---- fill to about 50% -----------------------------------------------------------------
# The first KEYS operations of mode overwrite write every key once; the
# content of each version is derived from (key, version), 20000-60000 bytes.
run "$CW" write -m overwrite -z 20000:60000 -k $KEYS -n $KEYS "$S" "$SEED" "$T/fill.log" \
	>"$T/fill.out" 2>&1
check_eq "fill: $KEYS files written ($(cat "$T/fill.out"))" "$?" 0
LIVE=$(live_bytes)
FILL_PCT=$((LIVE * 100 / (${TOTAL_WB:-1} * WBS)))
note "fill: $LIVE bytes live, $FILL_PCT% of the data space; $(stats_line)"
check_true "the fill is about half the data space ($FILL_PCT%)" "$FILL_PCT" -ge 40 -a "$FILL_PCT" -le 60
D_READS0=$(stat_value test defrag_reads)
D_WRITES0=$(stat_value test defrag_writes)
D_RECS0=$(stat_value test defrag_records)
OOS0=$(stat_value test fail_out_of_space)

# ---- overwrite for a bounded time ------------------------------------------------------
# Same seed and keys: the load starts by writing the fill again (the same
# versions: every file overwritten once), so its log alone says what each
# file must hold; then random overwrites.  -n bounds it on a fast machine.
start=$(date +%s)
# The space in use is sampled during the load (free_wblocks, twice a second).
( for i in $(seq 1 $(( (SECONDS_LOAD + 70) * 2 ))); do
	v=$(stat_value test free_wblocks)
	[ -n "$v" ] && echo "$v" >>"$T/free.samples"
	sleep 0.5
done ) &
SAMPLER=$!
timeout -k 5 $((SECONDS_LOAD + 60)) "$CW" write -m overwrite -z 20000:60000 -k $KEYS \
	-d "$SECONDS_LOAD" -n 200000 "$S" "$SEED" "$T/load.log" >"$T/load.out" 2>"$T/load.err"
rc=$?
kill "$SAMPLER" 2>/dev/null
wait "$SAMPLER" 2>/dev/null
OPS=$(grep -c '^A ' "$T/load.log")
# Converges: over the second half of the load (many passes over the data
# space) the free space typically stays a good share of the device - its
# median; momentary dips while defrag catches up are normal (writers then
# wait, and "no write refused for space" below covers running out).  The
# first half is only reported: how soon the steady state comes depends on
# the machine's speed.
N_S=$(wc -l <"$T/free.samples")
H=$((N_S / 2))
MIN1=$(head -n "$H" "$T/free.samples" | sort -n | head -1)
MIN2=$(tail -n +$((H + 1)) "$T/free.samples" | sort -n | head -1)
MED2=$(tail -n +$((H + 1)) "$T/free.samples" | sort -n | sed -n "$(( (N_S - H + 1) / 2 ))p")
note "free_wblocks during the load: $N_S samples, lowest $MIN1 in the first half; second half lowest $MIN2, median $MED2"
check_true "free space sampled during the load ($N_S samples)" "$N_S" -ge 10
check_true "the second half's median free space ($MED2) keeps a tenth of the device" \
	"${MED2:-0}" -ge $((${TOTAL_WB:-0} / 10))

note "load: $(cat "$T/load.out") in $(($(date +%s) - start)) s; $(stats_line)"
check_eq "the overwrite load ran without a failed write" "$rc" 0
[ $rc -eq 0 ] || note "writer: $(cat "$T/load.err")"
check_true "the load wrote more than twice the data space ($OPS writes of ~40 KB)" \
	$((OPS * 40000)) -gt $((2 * ${TOTAL_WB:-0} * WBS))
check_eq "no write refused for space" "$(stat_value test fail_out_of_space)" "$OOS0"

# ---- the result -------------------------------------------------------------------------
if run "$CW" verify -a "$S" "$T/load.log" >"$T/v1" 2>"$T/v1err"; then
	pass "every file holds its last written content"
else
	bad "after the overwrite load: $(head -20 "$T/v1err")"
fi
note "$(cat "$T/v1")"
LIVE=$(live_bytes)
USED=$(stat_value test data_used_bytes)
OBJ=$(stat_value test objects)
check_eq "objects = files" "$OBJ" $KEYS
# Each record adds its header, key, metadata and rounding to 16 bytes.
check_true "data_used_bytes ($USED) is about the live data ($LIVE)" \
	"${USED:-0}" -ge "$LIVE" -a "${USED:-0}" -le $((LIVE + KEYS * 256 + 65536))
check_true "defrag_reads went up (${D_READS0} -> $(stat_value test defrag_reads))" \
	"$(stat_value test defrag_reads)" -gt "${D_READS0:-0}"
check_true "defrag_writes went up (${D_WRITES0} -> $(stat_value test defrag_writes))" \
	"$(stat_value test defrag_writes)" -gt "${D_WRITES0:-0}"
check_true "defrag_records went up (${D_RECS0} -> $(stat_value test defrag_records))" \
	"$(stat_value test defrag_records)" -gt "${D_RECS0:-0}"
FREE=$(stat_value test free_wblocks)
# Live data is about half; what defrag leaves (blocks under defrag-lwm-pct
# get emptied) must keep a good share free.
check_true "free_wblocks ($FREE of $TOTAL_WB) keeps a share of the space free" \
	"${FREE:-0}" -ge $((${TOTAL_WB:-0} / 10))
assert_serving "the overwrite load"

# ---- a clean restart --------------------------------------------------------------------
stop_daemon
check_eq "recfsd exits 0 at unmount" "$?" 0
run "$CHECK" "$DAT" >"$T/check.out" 2>&1
crc=$?
check_eq "recfs-check exits 0 after the load" "$crc" 0
[ $crc -eq 0 ] || head -20 "$T/check.out"
start_daemon
if run "$CW" verify -a "$S" "$T/load.log" >"$T/v2" 2>"$T/v2err"; then
	pass "after a restart every file holds its last written content"
else
	bad "after a restart: $(head -20 "$T/v2err")"
fi
check_eq "after a restart: objects = files" "$(stat_value test objects)" $KEYS
USED2=$(stat_value test data_used_bytes)
check_true "after a restart: data_used_bytes ($USED2) is the same live data" \
	"${USED2:-0}" -ge "$LIVE" -a "${USED2:-0}" -le $((LIVE + KEYS * 256 + 65536))

# Idle, the defrag thread sleeps until a wblock is queued: it woke every
# 50 ms before (about 60 times in 3 s).  After a restart the cold start may
# have queued wblocks: they settle and are taken first.
defrag_tid() {
	for t in /proc/"$DAEMON_PID"/task/*; do
		[ "$(cat "$t/comm" 2>/dev/null)" = defrag ] && { echo "$t"; return; }
	done
}
sleep 1
dt=$(defrag_tid)
if [ -n "$dt" ]; then
	w0=$(awk '/^voluntary_ctxt_switches/ { print $2 }' "$dt/status")
	sleep 3
	w1=$(awk '/^voluntary_ctxt_switches/ { print $2 }' "$dt/status")
	check_true "idle: the device's defrag thread sleeps ($((w1 - w0)) wakes in 3 s)" $((w1 - w0)) -le 3
else
	bad "no thread named defrag in recfsd $DAEMON_PID"
fi
finish
