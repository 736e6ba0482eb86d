#!/bin/bash
# t_crash: the durability promise (docs/operations.md), by SIGKILL of recfsd under a
# write / overwrite / delete load on the device engine, then a restart on
# the same storage file.  crash_writer.c logs every acknowledgement (F =
# written and fsync()ed, W = written and closed, D = unlinked) and checks,
# after the restart, that every record is one whole version that was
# written (never torn or mixed), that nothing acknowledged before the
# durable point is lost or rolled back (the last fsync, or flush-max-ms plus
# a slack before the kill), that no delete followed by a durable point comes
# back, that every file reads without EIO and the listing matches; a
# second load on what the cold start rebuilt (tombstones reclaimed, write
# blocks reused) is killed and checked the same way; then a clean restart
# keeps exactly that state and recfs-check finds the file clean.  Several
# seeds; the seed is in every failure message.  Then the
# POSIX way to make an unlink, a rename or a mkdir durable (fsync of the
# directory) is held to the same promise.
# CRASH_SEEDS="4 5 6" make check TESTS=... runs other seeds.  With
# ITEST_ENGINE=memory (t_shadow_crash.sh) the namespace is a memory
# namespace with a shadow file instead, held to the same promise.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

CW=$ITEST_BIN/crash_writer
CHECK=$top_builddir/recfs-check
[ -x "$CW" ] || fail "$CW not built (make check builds it)"
[ -x "$CHECK" ] || fail "$CHECK not built"
DAT=$T/test.dat
SEEDS=${CRASH_SEEDS:-"1 2 3"}
# Beyond flush-max-ms, what a flush may take on a loaded machine: a write
# acknowledged longer than flush-max-ms + SLACK_MS before the kill must be
# on storage.
SLACK_MS=${CRASH_SLACK_MS:-1000}

# load_and_kill SEED RUN DELAY_MS [WRITER-ARGS...]: run the writer on the
# set (log $W.RUN.log), SIGKILL the daemon DELAY_MS after the writer's
# first acknowledgements (on a loaded machine the mount may take a while to
# get going: 20 s at most), detach the dead mount; sets KILL_NS.
load_and_kill() {
	local seed=$1 run=$2 delay_ms=$3 wpid wrc
	shift 3
	timeout -k 5 60 "$CW" write "$@" -k 200 -d 40 "$S" "$seed" "$W.$run.log" \
		>"$W.$run.out" 2>"$W.$run.err" &
	wpid=$!
	wait_acked "$W.$run.log" 50 20 ||
		bad "seed $seed run $run: fewer than 50 ops acknowledged in 20 s: $(cat "$W.$run.err")"
	sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
	if ! kill -0 "$wpid" 2>/dev/null; then
		bad "seed $seed run $run: the writer ended before the kill: $(cat "$W.$run.out" "$W.$run.err")"
		note "the daemon's warnings: $(grep -E ' (WARN|ERROR) ' "$LOG" | tail -5)"
		note "$(grep -E '^(stop_writes|free_wblocks|defrag_q|write_q|data_used_bytes|data_avail_pct|fail_)' \
			"$MNT/.info/namespace/test" 2>/dev/null | tr '\n' ' ')"
	fi
	KILL_NS=$(date +%s%N)
	crash_daemon || fail "seed $seed run $run: could not detach the dead mount $MNT"
	wait "$wpid"
	wrc=$?
	note "seed $seed run $run: writer: $(cat "$W.$run.out")"
	# The writer must have been stopped by the dead mount, nothing earlier.
	check_eq "seed $seed run $run: the writer stopped when the daemon died" "$wrc" 2
	if ! grep -Eq 'Transport endpoint is not connected|Software caused connection abort' "$W.$run.err"; then
		bad "seed $seed run $run: the writer failed with something else than the dead mount: $(cat "$W.$run.err")"
	fi
}

# verify_run SEED RUN WHEN [VERIFY-ARGS...]: check the set against the log
# of run RUN; WHEN says at which point, for the messages.
verify_run() {
	local seed=$1 run=$2 when=$3
	shift 3
	if run "$CW" verify "$@" "$S" "$W.$run.log" >"$W.v" 2>"$W.verr"; then
		pass "seed $seed run $run: $when: every record is a whole, allowed version"
	else
		bad "seed $seed run $run: $when: $(head -20 "$W.verr")"
	fi
	note "seed $seed run $run: $(cat "$W.v")"
}

# crash_round SEED: one storage file; a load killed by SIGKILL, a restart
# (cold start: tombstones are reclaimed), a second load on what it found,
# killed too, a restart; then a clean unmount, recfs-check and a clean
# restart that must keep exactly that state.
# The seed also picks the variant: 30% of writes fsync()ed (the durable
# point is nearly the kill); none, on a 16M file whose 8 MiB of data space
# the load overwrites many times (the durable point comes from
# flush-max-ms, the time bound; defrag frees and reuses write blocks all
# along); or 5% with flush-max-ms 5000 (durability rests on fsync alone).
crash_round() {
	local seed=$1 flush fpct size d1 d2 window S=$MNT/test/crash W=$T/w$1 files objects crc
	case $((seed % 3)) in
	1) flush=100 fpct=30 size=64M ;;
	2) flush=100 fpct=0 size=16M ;;
	0) flush=5000 fpct=5 size=64M ;;
	esac
	window=$((flush + SLACK_MS))
	RANDOM=$seed
	d1=$((1000 + RANDOM % 2000))
	d2=$((500 + RANDOM % 1500))
	note "seed $seed: filesize $size, flush-max-ms $flush, $fpct% fsync, kills after $d1 and $d2 ms"
	rm -f "$DAT"
	storage_config "$DAT" "filesize: $size" "write-block-size: 128K" \
		"flush-max-ms: $flush" "defrag-sleep: 0"
	start_daemon
	check_eq "seed $seed: storage engine" "$(stat_value test type)" "${ITEST_ENGINE:-device}"
	mkdir "$S" || fail "seed $seed: mkdir $S"

	load_and_kill "$seed" 1 "$d1" -m mixed -f "$fpct"
	# What the crash left, as recfs-check sees it (for the log only: the
	# header says unclean).
	run "$CHECK" -q "$DAT" >"$W.check0" 2>&1
	note "seed $seed: recfs-check after the crash exits $?: $(grep -E '^result|live|corrupt' "$W.check0" | tr -s ' \n' ' ')"
	start_daemon
	verify_run "$seed" 1 "after the crash" -t "$KILL_NS" -w $window -o "$W.state1"
	files=$(ls "$S" | wc -l)
	objects=$(stat_value test objects)
	check_eq "seed $seed: objects after cold start = files listed" "$objects" "$files"
	if grep -q '^A [0-9]* F ' "$W.1.log"; then
		check_true "seed $seed: the set survives (an fsync followed its mkdir)" -d "$S"
	fi
	assert_serving "seed $seed: cold start"

	# Crash again, on what the cold start rebuilt: versions from 1000000 on.
	load_and_kill "$seed" 2 "$d2" -m mixed -f "$fpct" -b 1000000
	start_daemon
	verify_run "$seed" 2 "after the second crash" -i "$W.state1" -t "$KILL_NS" -w $window \
		-o "$W.state2"
	check_eq "seed $seed: objects after the second cold start = files listed" \
		"$(stat_value test objects)" "$(ls "$S" | wc -l)"

	# A clean shutdown keeps that state, and leaves a clean file.
	stop_daemon
	check_eq "seed $seed: recfsd exits 0 at unmount after recovery" "$?" 0
	run "$CHECK" "$DAT" >"$W.check" 2>&1
	crc=$?
	check_eq "seed $seed: recfs-check exits 0 after a clean unmount" "$crc" 0
	[ "$crc" -eq 0 ] || head -20 "$W.check"
	start_daemon
	verify_run "$seed" 2 "after a clean restart" -i "$W.state1" -t "$KILL_NS" -w $window \
		-o "$W.state3"
	if cmp -s "$W.state2" "$W.state3"; then
		pass "seed $seed: a clean restart kept the recovered state"
	else
		bad "seed $seed: state changed across a clean restart: $(diff "$W.state2" "$W.state3" | head -5 | tr '\n' ' ')"
	fi
	stop_daemon
}

# dirsync_round: the POSIX idioms that make a name change durable - unlink,
# rename over a file, mkdir, each followed by fsync() of the directory -
# with flush-max-ms so long that only those fsyncs can have stored them.
dirsync_round() {
	local D=$MNT/test/dsync
	if [ "$HAVE_PYTHON" != yes ]; then
		note "no python3: fsync of a directory not tested"
		return 0
	fi
	rm -f "$DAT"
	storage_config "$DAT" "filesize: 64M" "write-block-size: 128K" "flush-max-ms: 60000"
	start_daemon
	expect_ok "dirsync: mkdir, write, fsync, unlink, rename, fsync of the directories" \
		python3 -c '
import os, sys
ns, d = sys.argv[1], sys.argv[1] + "/dsync"
def put(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    os.fsync(fd)
    os.close(fd)
def dsync(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)
    os.close(fd)
os.mkdir(d)
put(d + "/keep", b"keep\n")
put(d + "/gone", b"gone\n")
put(d + "/target", b"old\n")
put(d + "/target.tmp", b"new\n")
# No file is fsync()ed after this point.
os.rename(d + "/target.tmp", d + "/target")
os.unlink(d + "/gone")
os.mkdir(ns + "/dsync2")
dsync(d)
dsync(ns)
' "$MNT/test"
	crash_daemon || fail "dirsync: could not detach the dead mount $MNT"
	start_daemon
	check_eq "dirsync: an fsync()ed file survives" "$(run cat "$D/keep" 2>&1)" keep
	check_true "dirsync: unlink + fsync of the directory: the file stays deleted" ! -e "$D/gone"
	check_eq "dirsync: rename over a file + fsync of the directory: the new content" \
		"$(run cat "$D/target" 2>&1)" new
	check_true "dirsync: ... and the temp name is gone" ! -e "$D/target.tmp"
	check_true "dirsync: mkdir + fsync of the parent: the set exists" -d "$MNT/test/dsync2"
	stop_daemon
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
	crash_round "$seed"
done
dirsync_round
note "$(echo "$SEEDS" | wc -w) seeds in $(($(date +%s) - start)) s"
finish
