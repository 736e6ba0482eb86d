#!/bin/bash
# t_durable: commit-to-device (docs/operations.md): every write, overwrite and
# delete acknowledged through the mount - plain write()+close() and
# unlink(), no fsync - survives a SIGKILL of recfsd, so does a mkdir and a
# rename; with flush-max-ms at its maximum, only the commits can have put
# them on storage.  crash_writer.c logs the acknowledgements and checks, after
# a restart on the same file, that each record holds its last acknowledged
# state (or the one the interrupted operation was making), whole.  The
# seed is in every failure message.  CRASH_SEEDS="3 4" runs other seeds.
# Last, group commit: eight concurrent writers' commits share device writes.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

CW=$ITEST_BIN/crash_writer
CHECK=$top_builddir/recfs-check
[ -x "$CW" ] || fail "$CW not built (make check builds it)"
[ -x "$CHECK" ] || fail "$CHECK not built"
DAT=$T/test.dat
SEEDS=${CRASH_SEEDS:-"1 2"}

durable_round() {
	local seed=$1 delay_ms wpid wrc S=$MNT/test/durable W=$T/w$1
	RANDOM=$seed
	delay_ms=$((1000 + RANDOM % 1500))
	note "seed $seed: commit-to-device, kill after $delay_ms ms"
	rm -f "$DAT"
	write_device_config "$DAT" "filesize: 64M" "write-block-size: 128K" \
		"flush-max-ms: 60000" "commit-to-device: true" "defrag-sleep: 0"
	start_daemon
	check_eq "seed $seed: .info shows commit-to-device" "$(stat_value test commit-to-device)" true
	mkdir "$S" || fail "seed $seed: mkdir $S"
	# Names changed through the mount are commits too.
	mkdir "$MNT/test/made" || fail "seed $seed: mkdir made"
	echo renamed >"$MNT/test/made/before" || fail "seed $seed: write made/before"
	mv "$MNT/test/made/before" "$MNT/test/made/after" || fail "seed $seed: mv"

	timeout -k 5 60 "$CW" write -m plain -k 100 -d 40 "$S" "$seed" "$W.log" \
		>"$W.out" 2>"$W.err" &
	wpid=$!
	# The seeded delay, counted from the writer's first acknowledgements
	# (on a loaded machine the mount may take a while to get going; 20 s
	# at most).
	wait_acked "$W.log" 20 20 || bad "seed $seed: fewer than 20 ops acknowledged in 20 s: $(cat "$W.err")"
	sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
	if ! kill -0 "$wpid" 2>/dev/null; then
		bad "seed $seed: the writer ended before the kill: $(cat "$W.out" "$W.err")"
	fi
	crash_daemon || fail "seed $seed: could not detach the dead mount $MNT"
	wait "$wpid"
	wrc=$?
	note "seed $seed: writer: $(cat "$W.out")"
	check_eq "seed $seed: the writer stopped when the daemon died" "$wrc" 2
	if ! grep -Eq 'Transport endpoint is not connected|Software caused connection abort' "$W.err"; then
		bad "seed $seed: the writer failed with something else than the dead mount: $(cat "$W.err")"
	fi

	start_daemon
	# -a: every acknowledged operation is on storage.
	if run "$CW" verify -a "$S" "$W.log" >"$W.v" 2>"$W.verr"; then
		pass "seed $seed: every acknowledged write and delete survived the kill"
	else
		bad "seed $seed: acknowledged operations lost: $(head -20 "$W.verr")"
	fi
	note "seed $seed: $(cat "$W.v")"
	check_eq "seed $seed: the renamed file is there" "$(run cat "$MNT/test/made/after" 2>&1)" renamed
	check_true "seed $seed: its old name is gone" ! -e "$MNT/test/made/before"
	check_eq "seed $seed: objects after cold start = files listed" "$(stat_value test objects)" \
		$(($(ls "$S" | wc -l) + 1))
	assert_serving "seed $seed: cold start"
	stop_daemon
	check_eq "seed $seed: recfsd exits 0 at unmount after recovery" "$?" 0
	run "$CHECK" "$DAT" >"$W.check" 2>&1
	local crc=$?
	check_eq "seed $seed: recfs-check exits 0 after a clean unmount" "$crc" 0
	[ "$crc" -eq 0 ] || head -20 "$W.check"
}

# wait_acked LOG N SECONDS: wait until LOG holds N acknowledgements.
wait_acked() {
	local i=0
	local n
	while n=$(grep -c '^A ' "$1" 2>/dev/null); [ "${n:-0}" -lt "$2" ]; do
		[ $i -ge $(($3 * 10)) ] && return 1
		sleep 0.1
		i=$((i + 1))
	done
}

start=$(date +%s)
for seed in $SEEDS; do
	durable_round "$seed"
done
note "$(echo "$SEEDS" | wc -w) seeds in $(($(date +%s) - start)) s"

# Group commit: concurrent commits share device writes.  One writer at a
# time costs a device write (and sync) per commit; eight writers at once
# need fewer than that, because the I/O thread writes what all the waiting
# commits placed in one batch with one fdatasync.
rm -f "$DAT"
write_device_config "$DAT" "filesize: 64M" "write-block-size: 128K" \
	"flush-max-ms: 60000" "commit-to-device: true"
start_daemon
G=$MNT/test/group
mkdir "$G" || fail "mkdir $G"
dev_writes() { echo $(( $(stat_value test partial_writes) + $(stat_value test storage_writes) )); }
w0=$(dev_writes)
for i in $(seq 1 40); do echo "s$i" >"$G/s$i" || bad "write s$i"; done
seq_writes=$(( $(dev_writes) - w0 ))
check_true "one writer: at least one device write per file's commits ($seq_writes for 40)" \
	$((seq_writes / 40)) -ge 1
pids=
for t in 1 2 3 4 5 6 7 8; do
	# each in its own set: the kernel serializes creates in one directory
	mkdir "$MNT/test/group$t" || fail "mkdir group$t"
done
w1=$(dev_writes)
for t in 1 2 3 4 5 6 7 8; do
	( for i in $(seq 1 25); do echo "p$i" >"$MNT/test/group$t/p$i" || exit 1; done ) &
	pids="$pids $!"
done
for p in $pids; do wait "$p" || bad "a parallel writer failed"; done
w2=$(dev_writes)
check_true "eight writers: their commits shared device writes ($((w2 - w1)) for 200 files, one writer needed $seq_writes for 40)" \
	$(( (w2 - w1) * 40 )) -lt $(( seq_writes * 200 ))
check_eq "every file is there" "$(( $(ls "$G" | wc -l) + $(cat "$MNT"/test/group[1-8]/p* | wc -l) ))" 240
stop_daemon
finish
