#!/bin/bash
# t_observability_device: the statistics only the device engine moves
# (issue #5): partial writes, and flush-max-ms changed through .info/config
# taking effect at once; defrag-lwm-pct raised at run time sweeping the
# device's write blocks into defrag; tombstones (namespace, set, node) and tomb raider
# passes; reads served from RAM (cache_read_pct); the error counters, each made to
# move the way it does in production: a record corrupted on disk
# (checksum_errors), the storage file cut short under the daemon
# (read_errors), and a file system that fills up under the storage file
# (write_errors, then client_write_error and client_delete_error as the
# device refuses writes).  Every failure must also be an errno the user sees.
# Last, the queues, made to fill by freezing the file system under the
# storage file (write_q, write_waits, and shadow_write_q for the memory
# engine's shadow file), and a writer failing with EIO once it has waited
# 10 s for the full write cache.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

DAT=$WORK/dev.dat
write_device_config "$DAT" "filesize: 128M" "write-block-size: 1M" "flush-max-ms: 60000" \
	"post-write-cache: 0" "tomb-raider-period: 1" "defrag-lwm-pct: 0"
start_daemon

I=$MNT/.info
C=$I/config/namespaces/test
delta() { echo $(( $(stat_value test "$1") - $2 )); }

# ---- flush-max-ms through .info/config: partial writes ------------------------------------
S=$MNT/test/s
mkdir "$S"
echo small >"$S/p1"
pw0=$(stat_value test partial_writes)
sleep 1.2
check_eq "flush-max-ms 60000: the partly filled buffer waits" "$(stat_value test partial_writes)" "$pw0"
sh_ok "flush-max-ms 100" 'echo 100 > "$1"' "$C/flush-max-ms"
check_true "the change is logged" "$(grep -c 'config: {test} flush-max-ms: 60000 -> 100' "$LOG")" -eq 1
i=0
while [ "$(stat_value test partial_writes)" -le "$pw0" ] && [ $i -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
check_true "flush-max-ms 100: the buffer is written within a moment ($pw0 -> $(stat_value test partial_writes))" \
	"$(stat_value test partial_writes)" -gt "$pw0"

# ---- reads from RAM -------------------------------------------------------------------------
sr0=$(stat_value test storage_reads)
cat "$S/p1" >/dev/null
check_eq "cat: storage_reads +1" "$(delta storage_reads "$sr0")" 1
check_true "a read of the buffer being filled comes from RAM: cache_read_pct > 0 ($(stat_value test cache_read_pct))" \
	"$(stat_value test cache_read_pct)" -gt 0

# ---- defrag-lwm-pct raised through .info/config: the device's wblocks are swept -----------
D=$MNT/test/lwm
mkdir "$D"
# 100 KB records, about 10 per 1 MiB write block; 3 of 10 deleted: ~70% live.
for i in $(seq 1 100); do head -c 100000 /dev/urandom >"$D/r$i"; done
for i in $(seq 1 100); do [ $((i % 10)) -lt 3 ] && rm "$D/r$i"; done
cp "$D/r5" "$T/r5"
dr0=$(stat_value test defrag_reads); drc0=$(stat_value test defrag_records)
check_eq "defrag-lwm-pct 0: nothing queued" "$(stat_value test defrag_q)" 0
sh_ok "defrag-lwm-pct 90" 'echo 90 > "$1"' "$C/defrag-lwm-pct"
i=0
while [ "$(delta defrag_reads "$dr0")" -lt 5 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
check_true "raising it queues the 70%-live write blocks at once (defrag_reads +$(delta defrag_reads "$dr0"))" \
	"$(delta defrag_reads "$dr0")" -ge 5
i=0
while [ "$(stat_value test defrag_q)" -gt 0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
check_eq "defrag_q drains" "$(stat_value test defrag_q)" 0
check_true "their records moved (defrag_records +$(delta defrag_records "$drc0"))" "$(delta defrag_records "$drc0")" -ge 30
run cmp -s "$D/r5" "$T/r5"
check_eq "a moved record reads back byte for byte" "$?" 0
sh_ok "defrag-lwm-pct back to 0" 'echo 0 > "$1"' "$C/defrag-lwm-pct"

# ---- tombstones and the tomb raider ---------------------------------------------------------
echo doomed >"$S/doomed"
t0=$(stat_value test tombstones); nt0=$(node_value tombstones); st0=$(set_value test s tombstones)
tp0=$(stat_value test tomb_raider_passes)
rm "$S/doomed"
check_eq "rm on the device engine: tombstones +1" "$(delta tombstones "$t0")" 1
check_eq "rm: node tombstones +1" $(( $(node_value tombstones) - nt0 )) 1
check_eq "rm: set tombstones +1" $(( $(set_value test s tombstones) - st0 )) 1
i=0
while [ "$(stat_value test tomb_raider_passes)" -le "$tp0" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
check_true "tomb-raider-period 1: a pass ran ($tp0 -> $(stat_value test tomb_raider_passes))" \
	"$(stat_value test tomb_raider_passes)" -gt "$tp0"

# ---- a record corrupted on disk: checksum_errors ---------------------------------------------
marker="MARKER-$$-$RANDOM"
E=$MNT/test/e
mkdir "$E"
{ printf '%s' "$marker"; head -c 20000 /dev/zero; } >"$E/victim"
yes "far-away-$$" | head -c 20000 >"$E/far"
# (defrag-lwm-pct 0 above: defrag would copy them into a buffer in RAM.)
# Fill their write block so that it is not the one still being filled, then
# restart (clean shutdown, cold start): no copy of them is left in RAM, not
# in the kernel's page cache, the daemon's snapshots or its write buffers.
for i in 1 2 3; do head -c 1000000 /dev/zero >"$E/fill$i"; done
stop_daemon
start_daemon
offs=$(grep -boa "$marker" "$DAT" | cut -d: -f1)
check_true "the record is on disk (offset $offs)" -n "$offs"
ce0=$(stat_value test checksum_errors); re0=$(stat_value test client_read_error)
if [ -n "$offs" ]; then
	# every copy (defrag may have moved it, leaving the old one behind)
	for off in $offs; do
		printf 'Z' | dd of="$DAT" bs=1 seek=$((off + 3)) conv=notrunc status=none
	done
	expect_err "cat of a corrupt record" "Input/output error" cat "$E/victim"
	check_true "checksum_errors moved" "$(delta checksum_errors "$ce0")" -ge 1
	check_true "client_read_error moved" "$(delta client_read_error "$re0")" -ge 1
	check_true "the log names the file and offset" "$(grep -c "$DAT offset" "$LOG")" -ge 1
fi

# ---- the storage file cut short: read_errors -------------------------------------------------
rde0=$(stat_value test read_errors); re0=$(stat_value test client_read_error)
truncate -s 8M "$DAT"   # the header only: every record is gone from under the daemon
expect_err "cat of a record whose storage is gone" "Input/output error" cat "$E/far"
check_true "read_errors moved" "$(delta read_errors "$rde0")" -ge 1
check_true "client_read_error moved" "$(delta client_read_error "$re0")" -ge 1
assert_serving "read errors"
stop_daemon

# ---- a file system that fills up: write_errors -------------------------------------------------
SMALL=$T/small
mkdir -p "$SMALL"
if mount -t tmpfs -o size=12m recfs-itest "$SMALL" 2>/dev/null; then
	EXTRA_MOUNTS="$EXTRA_MOUNTS $SMALL"
	write_device_config "$SMALL/dev.dat" "filesize: 64M" "write-block-size: 1M" \
		"flush-max-ms: 100" "direct-io: false"
	start_daemon
	F=$MNT/test/f
	mkdir "$F"
	echo keep >"$F/keep"
	we0=$(stat_value test write_errors)
	i=0
	while [ "$(stat_value test write_errors)" -le "$we0" ] && [ $i -lt 30 ]; do
		i=$((i + 1))
		head -c 1000000 /dev/zero >"$F/big$i" 2>/dev/null
		sleep 0.1
	done
	check_true "the file system filled up: write_errors moved" "$(delta write_errors "$we0")" -ge 1
	check_true "the log says the device write failed" "$(grep -c 'device write failed' "$LOG")" -ge 1
	cwe0=$(stat_value test client_write_error); cde0=$(stat_value test client_delete_error)
	sh_err "a write to the failed device" "" 'echo x > "$1"' "$F/after"
	check_true "client_write_error moved" "$(delta client_write_error "$cwe0")" -ge 1
	expect_err "a delete on the failed device" "" rm "$F/keep"
	check_true "client_delete_error moved" "$(delta client_delete_error "$cde0")" -ge 1
	check_eq "what was stored before the failure is still served" "$(run cat "$F/keep")" keep
	# Defrag stops on a failed device: moving records would free wblocks
	# whose records may be nowhere else (their copies' write failed).
	dw0=$(stat_value test defrag_writes); dr0=$(stat_value test defrag_records)
	sleep 1
	check_eq "no defrag writes on the failed device" "$(stat_value test defrag_writes)" "$dw0"
	check_eq "no records moved on the failed device" "$(stat_value test defrag_records)" "$dr0"
	assert_serving "a failed device"
	stop_daemon
else
	note "cannot mount a tmpfs (not root?): write_errors part skipped"
fi

# ---- queues: the storage's file system frozen under the daemon ------------------------------
# fsfreeze holds every write to the file system, so full buffers queue up
# (write_q, or shadow_write_q for a memory namespace's shadow file) and,
# past max-write-cache, writers wait (write_waits) until it thaws.
IMG=$T/ext4.img
LM=$T/ext4
# queue_while_frozen STAT DIR: freeze, write 1 MB records into DIR until STAT
# shows 3 queued buffers, thaw.  Sets Q_SEEN (the last STAT seen while
# frozen) and W_FROZEN (write_waits just before the thaw).
queue_while_frozen() {
	local stat=$1 dir=$2 q=0 i=0 pid
	fsfreeze -f "$LM" || return 1
	( for r in 1 2 3 4 5 6 7; do head -c 1000000 /dev/zero >"$dir/r$r"; done ) &
	pid=$!
	while [ "$q" -lt 3 ] && [ $i -lt 100 ]; do
		q=$(stat_value test "$stat")
		sleep 0.1
		i=$((i + 1))
	done
	Q_SEEN=$q
	# let the last writer reach the full write cache
	sleep 0.5
	W_FROZEN=$(stat_value test write_waits)
	fsfreeze -u "$LM"
	wait "$pid"
}
thaw() { fsfreeze -u "$LM" 2>/dev/null; }
if command -v fsfreeze >/dev/null 2>&1 && truncate -s 300M "$IMG" &&
	mkfs.ext4 -q -F "$IMG" >/dev/null 2>&1 && mkdir -p "$LM" &&
	mount -o loop "$IMG" "$LM" 2>/dev/null; then
	EXTRA_MOUNTS="$EXTRA_MOUNTS $LM"
	itest_before_stop() { thaw; }
	# the device engine: write_q, write_waits
	write_device_config "$LM/dev.dat" "filesize: 128M" "write-block-size: 1M" "max-write-cache: 3M"
	start_daemon
	mkdir "$MNT/test/q"
	echo warm >"$MNT/test/q/warm"
	ww0=$(stat_value test write_waits)
	queue_while_frozen write_q "$MNT/test/q"
	check_true "frozen file system: write_q rose to 3 buffers ($Q_SEEN)" "${Q_SEEN:-0}" -ge 3
	check_true "past max-write-cache 3M the next writer waited (write_waits $ww0 -> $W_FROZEN)" \
		"${W_FROZEN:-0}" -gt "$ww0"
	check_eq "after the thaw every record is stored" "$(ls "$MNT/test/q" | wc -l)" 8
	i=0
	while [ "$(stat_value test write_q)" -gt 0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	check_eq "the write queue drains" "$(stat_value test write_q)" 0
	check_eq "no device write queue shows as a shadow queue" "$(stat_value test shadow_write_q)" 0
	# Frozen for longer than writers wait (10 s): the one that finds the
	# write cache still full fails with EIO; the others and the node go on.
	cwe0=$(stat_value test client_write_error)
	fsfreeze -f "$LM"
	( for r in 1 2 3 4 5 6; do
		sh -c 'head -c 1000000 /dev/zero >"$1"' sh "$MNT/test/q/e$r" 2>>"$T/eio.err" ||
			echo "e$r failed" >>"$T/eio.err"
	done ) &
	pid=$!
	i=0
	while ! grep -q failed "$T/eio.err" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
	thaw
	wait "$pid"
	check_true "a writer kept waiting 10 s for the full write cache failed with EIO: $(tr '\n' ' ' <"$T/eio.err")" \
		-n "$(grep 'Input/output error' "$T/eio.err")"
	check_true "... logged as a write queue too deep" "$(grep -c 'write queue too deep' "$LOG")" -ge 1
	check_true "... counted in client_write_error" "$(delta client_write_error "$cwe0")" -ge 1
	echo after >"$MNT/test/q/after" || bad "write after the thaw"
	check_eq "after the thaw writes work again" "$(run cat "$MNT/test/q/after")" after
	stop_daemon
	# the memory engine with a shadow file: shadow_write_q
	cat >"$CONF" <<EOF
service:
  work-directory: $WORK
  ticker-interval: 0
logging:
  file: $LOG
namespaces:
  - name: test
    storage-engine:
      type: memory
      data-size: 64M
      files: [$LM/shadow.dat]
      filesize: 64M
      write-block-size: 1M
EOF
	start_daemon
	mkdir "$MNT/test/q"
	echo warm >"$MNT/test/q/warm"
	queue_while_frozen shadow_write_q "$MNT/test/q"
	check_true "frozen file system: shadow_write_q rose to 3 buffers ($Q_SEEN)" "${Q_SEEN:-0}" -ge 3
	check_eq "a memory namespace has no device write queue" "$(stat_value test write_q)" 0
	i=0
	while [ "$(stat_value test shadow_write_q)" -gt 0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	check_eq "the shadow queue drains" "$(stat_value test shadow_write_q)" 0
	check_eq "after the thaw every record is stored" "$(ls "$MNT/test/q" | wc -l)" 8
	stop_daemon
else
	note "cannot make and freeze a loop-mounted ext4 (not root, no loop devices?): queue part skipped"
fi

finish
