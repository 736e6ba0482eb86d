#!/bin/bash
# t_handles: all handles of one record share one open-file state (recfsd(8),
# issue 10 part 2) and the POSIX details of the FUSE layer (part 9):
#   - 4 processes x 1,000 O_APPEND lines into one file: 4,000 whole lines
#     (share_test.c), and the same with shell >> loops;
#   - bytes written through one descriptor are read through another before
#     any close; ftruncate through one is seen through the other;
#   - ftruncate + close: stat shows the new ctime at once, even with a long
#     attr-timeout;
#   - fallocate mode 0, -n (KEEP_SIZE), -p (PUNCH_HOLE), EOPNOTSUPP, and
#     past max-record-size (a large file);
#   - another user's write through an O_WRONLY descriptor clears
#     set-user-ID and set-group-ID (and through O_RDWR, as before);
#   - a failed store (stop-writes) is reported by fsync and by the close of
#     every descriptor that wrote, not by one that did not;
#   - a file kept open and dirty is stored after flush-max-ms: it survives
#     a SIGKILL of the daemon once that time has passed; fsync'd data as
#     before; files written and closed in a stream do not wake the timer
#     thread once each.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

ST=$ITEST_BIN/share_test
[ -x "$ST" ] || fail "$ST not built (make check builds it)"

# Another user reaches the mount (allow_other) through the test's directory.
chmod 755 "$T"
RECFSD_OPTS="-o allow_other"
write_config
# A long attribute timeout: what the kernel cached must be refreshed by the
# daemon, not by time.
sed -i 's/^  threads: 8$/  threads: 8\n  attr-timeout: 60/' "$CONF"
start_daemon
S=$MNT/test/h
mkdir "$S" || fail "mkdir $S"

# ---- O_APPEND from several processes ---------------------------------------------
puts0=$(node_value fuse_record_puts)
expect_ok "4 processes x 1000 O_APPEND lines: 4000 whole lines" "$ST" append "$S/app" 4 1000
puts1=$(node_value fuse_record_puts)
note "stores for 4 appending processes: $((puts1 - puts0))"
check_true "4 appending processes cost a handful of stores (put on close)" $((puts1 - puts0)) -le 8

# The same with shell loops (open, append, close per line).
shell_appender() { # shell_appender P: 1000 lines "p<P> l<L> " padded with dots to 32 bytes
	local l line
	for l in $(seq 1 1000); do
		line="p$1 l$l ...................................."
		printf '%s\n' "${line:0:31}" >>"$S/shapp" || return 1
	done
}
pids=""
for p in 1 2 3 4; do
	shell_appender $p &
	pids="$pids $!"
done
rcs=0
for p in $pids; do wait "$p" || rcs=$((rcs + 1)); done
check_eq "shell >> loops failed" $rcs 0
expect_ok "4 shell >> loops x 1000 lines: 4000 whole lines" "$ST" check-lines "$S/shapp" 4 1000

# ---- one descriptor sees another's writes and truncates --------------------------
expect_ok "reads through one descriptor see writes and ftruncate through another" \
	"$ST" see "$S/see"
expect_ok "a page-cached reader that read before the writer opened sees its writes" \
	"$ST" see-cached "$S/seec"

# ---- ctime after ftruncate + close, attr-timeout 60 -------------------------------
echo "some content" >"$S/ct"
stat "$S/ct" >/dev/null
expect_ok "ftruncate + close moves the ctime stat shows at once" "$ST" ctime "$S/ct"

# ---- fallocate ----------------------------------------------------------------------
printf '0123456789' >"$S/fa"
expect_ok "fallocate -l 8192 (mode 0)" fallocate -l 8192 "$S/fa"
check_eq "mode 0 extends the size" "$(stat -c %s "$S/fa")" 8192
check_eq "mode 0 keeps the content" "$(head -c 10 "$S/fa")" 0123456789
check_eq "mode 0 extends with zeros" "$(tail -c +11 "$S/fa" | tr -d '\0' | wc -c)" 0
expect_ok "fallocate -n -l 100000 (KEEP_SIZE)" fallocate -n -l 100000 "$S/fa"
check_eq "KEEP_SIZE keeps the size" "$(stat -c %s "$S/fa")" 8192
expect_ok "fallocate -p -o 2 -l 4 (PUNCH_HOLE)" fallocate -p -o 2 -l 4 "$S/fa"
check_eq "PUNCH_HOLE keeps the size" "$(stat -c %s "$S/fa")" 8192
check_eq "PUNCH_HOLE zeroes the range" "$(head -c 10 "$S/fa" | od -An -c | tr -s ' ')" \
	" 0 1 \0 \0 \0 \0 6 7 8 9"
expect_ok "fallocate -p past the end" fallocate -p -o 8000 -l 10000 "$S/fa"
check_eq "PUNCH_HOLE past the end: size" "$(stat -c %s "$S/fa")" 8192
check_eq "content stored at close" "$(head -c 2 "$S/fa")" 01
expect_err "fallocate --zero-range" "Operation not supported" fallocate -z -l 10 "$S/fa"
expect_err "fallocate --collapse-range" "Operation not supported" fallocate -c -l 4096 "$S/fa"
check_eq "size after the refusals" "$(stat -c %s "$S/fa")" 8192
expect_ok "fallocate -n past max-record-size (KEEP_SIZE)" fallocate -n -l 2M "$S/fa"
check_eq "KEEP_SIZE past max-record-size keeps the size" "$(stat -c %s "$S/fa")" 8192
expect_ok "fallocate past max-record-size: a large file" fallocate -l 2M "$S/fa"
check_eq "its size" "$(stat -c %s "$S/fa")" $((2 << 20))
check_eq "its first bytes kept, zeros after" "$(head -c 2 "$S/fa")$(tail -c +8193 "$S/fa" | tr -d '\0' | wc -c)" 010

# ---- set-user-ID and set-group-ID cleared by another user's write -----------------
U=4242
AS_USER="setpriv --reuid=$U --regid=$U --clear-groups"
for how in wronly rdwr; do
	F=$S/suid-$how
	echo original >"$F"
	chown $U:$U "$F" && chmod 6755 "$F" || bad "$how: chown/chmod"
	check_eq "$how: mode before" "$(stat -c %a "$F")" 6755
	if [ $how = wronly ]; then
		expect_ok "$how: write as uid $U" $AS_USER sh -c 'echo more >>"$1"' sh "$F"
	else
		expect_ok "$how: write as uid $U" $AS_USER sh -c 'printf X 1<>"$1"' sh "$F"
	fi
	check_eq "$how: set-user-ID and set-group-ID cleared" "$(stat -c %a "$F")" 755
	check_eq "$how: content" "$(head -c 1 "$F")" "$([ $how = wronly ] && echo o || echo X)"
done
F=$S/suid-root
echo original >"$F"
chown $U:$U "$F" && chmod 6755 "$F" || bad "root: chown/chmod"
echo more >>"$F"
check_eq "root's write keeps set-user-ID and set-group-ID" "$(stat -c %a "$F")" 6755
F=$S/sgid-noexec
echo original >"$F"
chown $U:$U "$F" && chmod 2745 "$F" || bad "sgid: chown/chmod"
expect_ok "sgid without group execute: write as uid $U" \
	$AS_USER sh -c 'echo more >>"$1"' sh "$F"
check_eq "set-group-ID without group execute stays (as on Linux)" "$(stat -c %a "$F")" 2745
# ---- a failed store reaches every descriptor that wrote --------------------------
# stop-writes-avail-pct 100: writes fail while any space is in use.
PCT=$MNT/.info/config/namespaces/test/stop-writes-avail-pct
# wait_stop_writes VALUE: nsup sets the flag within about 100 ms (5 s at most).
wait_stop_writes() {
	local i
	for i in $(seq 1 50); do
		[ "$(stat_value test stop_writes)" = "$1" ] && return 0
		sleep 0.1
	done
	return 1
}
mkfifo "$T/ctl" || fail "mkfifo"
timeout -k 5 60 "$ST" errors "$S/err" <"$T/ctl" >"$T/err.out" 2>&1 &
EPID=$!
exec 6>"$T/ctl"
for i in $(seq 1 100); do grep -q written "$T/err.out" && break; sleep 0.1; done
check_eq "two writers wrote" "$(head -n 1 "$T/err.out")" written
echo 100 >"$PCT" || bad "set stop-writes-avail-pct 100"
wait_stop_writes true || bad "stop_writes did not turn true"
echo go >&6
for i in $(seq 1 100); do grep -q closed "$T/err.out" && break; sleep 0.1; done
echo 5 >"$PCT" || bad "set stop-writes-avail-pct 5"
wait_stop_writes false || bad "stop_writes did not turn false"
echo go >&6
exec 6>&-
wait "$EPID"
check_eq "store errors: fsync and each writer's close say ENOSPC, the others 0 (share_test)" \
	"$?" 0
grep FAIL "$T/err.out"
check_true "fuse_put_failures counted the failed store" "$(node_value fuse_put_failures)" -ge 1
assert_serving "the shared-state checks"
stop_daemon || bad "daemon exit status"

# ---- flush-max-ms: a file kept open and dirty is stored ---------------------------
RECFSD_OPTS=
DAT=$T/dev.dat
write_device_config "$DAT" "filesize: 64M" "write-block-size: 128K" "flush-max-ms: 200"
start_daemon
S=$MNT/test/h
mkdir "$S" || fail "mkdir $S (device)"
timed0=$(node_value fuse_timed_stores)
exec 5< <(exec timeout -k 5 60 "$ST" hold "$S/held" "kept open and never closed")
read -r -t 10 line <&5
check_eq "holder wrote" "$line" written
python3 -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"fsynced while open")
os.fsync(fd)
print("synced", flush=True)
time.sleep(60)' "$S/synced" >"$T/synced.out" &
SYNC_PID=$!
for i in $(seq 1 100); do grep -q synced "$T/synced.out" && break; sleep 0.1; done
check_eq "fsync'd writer ready" "$(cat "$T/synced.out")" synced
check_eq "size of the held file while open" "$(stat -c %s "$S/held")" 26
# 200 ms to store the open file, 200 ms more for its write buffer, and room.
sleep 1.5
timed1=$(node_value fuse_timed_stores)
check_true "fuse_timed_stores counted the store (was $timed0, now $timed1)" \
	"${timed1:-0}" -ge $((${timed0:-0} + 1))
# A stream of files written and closed within flush-max-ms wakes the timer
# thread about once per flush-max-ms, not once per file (each file is on
# its list while dirty, and looked at again once per 1024 files listed).
tid=$(grep -lx flush-timer /proc/"$DAEMON_PID"/task/*/comm | head -n 1 | cut -d/ -f5)
check_true "the timer thread is named flush-timer" -n "$tid"
sw0=$(awk '/^voluntary_ctxt_switches/ { print $2 }' /proc/"$DAEMON_PID"/task/"$tid"/status)
python3 -c '
import sys
for i in range(2500):
    with open("%s/stream%d" % (sys.argv[1], i), "wb") as f:
        f.write(b"x" * 1000)' "$S" || bad "the stream of files"
sw1=$(awk '/^voluntary_ctxt_switches/ { print $2 }' /proc/"$DAEMON_PID"/task/"$tid"/status)
check_true "2500 files written and closed woke the timer thread $((sw1 - sw0)) times (< 40)" \
	$((sw1 - sw0)) -lt 40
check_eq "the stream's last file" "$(head -c 3 "$S/stream2499")" xxx
crash_daemon || fail "could not detach the dead mount"
kill "$SYNC_PID" 2>/dev/null
wait "$SYNC_PID" 2>/dev/null
exec 5<&-
start_daemon
check_eq "the held file survived a SIGKILL after flush-max-ms" "$(cat "$S/held")" \
	"kept open and never closed"
check_eq "the fsync'd file survived" "$(cat "$S/synced")" "fsynced while open"
assert_serving
finish
