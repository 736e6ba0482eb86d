#!/bin/bash
# t_config: recfsd's command line and config validation (recfsd(8),
# docs/configuration.md): --help, --version, --check-config on good and bad files (errors
# name the file, the line and the key; recfsd refuses to start on them),
# a mount whose config is fine keeps serving, and a mount point that is a
# file or missing is refused with its name.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

# ---- --help, --version ------------------------------------------------------------------
out=$(run "$RECFSD" --help 2>&1)
check_eq "--help exits 0" $? 0
check_true "--help shows usage" "$(printf '%s' "$out" | grep -ci 'usage')" -ge 1
for opt in -c -f --check-config --version; do
	check_true "--help mentions $opt" "$(printf '%s' "$out" | grep -c -- "$opt")" -ge 1
done
# recfsd's own -h/-V lines, not libfuse's beside them; libfuse's other options stay
check_eq "--help lists -h/--help once" "$(printf '%s\n' "$out" | grep -cE '^ *-h[ ,]')" 1
check_eq "--help lists -V/--version once" "$(printf '%s\n' "$out" | grep -cE '^ *-V[ ,]')" 1
check_true "--help still lists libfuse's -o allow_other and -s" \
	"$(printf '%s\n' "$out" | grep -cE '^ *(-o allow_other|-s) ')" -eq 2
out=$(run "$RECFSD" --version 2>&1)
check_eq "--version exits 0" $? 0
check_true "--version prints a version ($out)" "$(printf '%s' "$out" | grep -cE '[0-9]+\.[0-9]+')" -ge 1
expect_err "unknown option" "" "$RECFSD" --no-such-option

# ---- --check-config on a good file ---------------------------------------------------------
write_config
out=$(run "$RECFSD" --check-config -c "$CONF" 2>&1)
rc=$?
check_eq "--check-config of a good file exits 0" $rc 0
[ $rc -ne 0 ] && note "$out"
check_true "--check-config prints the namespaces" "$(printf '%s' "$out" | grep -cE 'name: *(test|other)')" -ge 2
check_true "--check-config prints defaults (file-bin)" "$(printf '%s' "$out" | grep -c 'file-bin')" -ge 1
check_true "--check-config prints sizes" "$(printf '%s' "$out" | grep -c 'data-size')" -ge 1
# the effective config it prints is itself a valid config
printf '%s\n' "$out" | sed -n '/^[a-z]/,$p' >"$T/effective.yaml"
expect_ok "the printed config checks again" "$RECFSD" --check-config -c "$T/effective.yaml"

# ---- bad files: each must fail, naming file, line and key ------------------------------------
# bad_config DESC LINE KEY YAML: YAML is a complete config with its error on LINE
bad_config() {
	local d=$1 line=$2 key=$3 f=$T/bad-$RANDOM.yaml out rc
	printf '%s\n' "$4" >"$f"
	out=$(run "$RECFSD" --check-config -c "$f" 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then
		bad "$d: --check-config exited 0"
		return
	fi
	check_true "$d: message names the file ($out)" "$(printf '%s' "$out" | grep -cF "$(basename "$f")")" -ge 1
	check_true "$d: message names line $line ($out)" "$(printf '%s' "$out" | grep -cE ":($line)[:,) ]|line ($line)")" -ge 1
	[ -n "$key" ] && check_true "$d: message names key $key ($out)" "$(printf '%s' "$out" | grep -cF -- "$key")" -ge 1
	# and the daemon refuses to start on it
	mkdir -p "$T/badmnt"
	timeout -k 2 10 "$RECFSD" -f -c "$f" "$T/badmnt" >"$T/bad.out" 2>&1
	rc=$?
	check_true "$d: recfsd refuses to start (rc $rc)" $rc -ne 0 -a $rc -ne 124
	if grep -qF " $T/badmnt " /proc/self/mounts; then
		bad "$d: recfsd mounted anyway"
		fusermount3 -u "$T/badmnt"
	fi
}

NSLINES="namespaces:
  - name: test
    storage-engine:
      type: memory
      data-size: 64M"
bad_config "YAML syntax error (bad indentation)" "3|4" "" "service:
  work-directory: $WORK
 cluster-name: x
$NSLINES"
bad_config "YAML syntax error (unclosed flow)" "3|4" "" "service:
  work-directory: $WORK
  cluster-name: [unclosed
$NSLINES"
bad_config "unknown top-level key" 3 "colour" "service:
  work-directory: $WORK
colour: blue
$NSLINES"
bad_config "unknown service key" 3 "no-such-key" "service:
  work-directory: $WORK
  no-such-key: 1
$NSLINES"
bad_config "unknown namespace key" 5 "replication-fator" "service:
  work-directory: $WORK
namespaces:
  - name: test
    replication-fator: 1
    storage-engine:
      type: memory
      data-size: 64M"
bad_config "write-block-size out of range" 8 "write-block-size" "service:
  work-directory: $WORK
namespaces:
  - name: test
    storage-engine:
      type: memory
      data-size: 64M
      write-block-size: 64K"
bad_config "write-block-size not a power of 2" 8 "write-block-size" "service:
  work-directory: $WORK
namespaces:
  - name: test
    storage-engine:
      type: memory
      data-size: 64M
      write-block-size: 3M"
bad_config "percentage over 100" 5 "stop-writes-used-pct" "service:
  work-directory: $WORK
namespaces:
  - name: test
    stop-writes-used-pct: 150
    storage-engine:
      type: memory
      data-size: 64M"
bad_config "wrong type (text for a number)" 5 "default-ttl" "service:
  work-directory: $WORK
namespaces:
  - name: test
    default-ttl: soon
    storage-engine:
      type: memory
      data-size: 64M"
bad_config "bad size suffix" 7 "data-size" "service:
  work-directory: $WORK
namespaces:
  - name: test
    storage-engine:
      type: memory
      data-size: 64Q"
bad_config "bad engine type" 6 "type" "service:
  work-directory: $WORK
namespaces:
  - name: test
    storage-engine:
      type: floppy
      data-size: 64M"
bad_config "bad namespace name" 4 "name" "service:
  work-directory: $WORK
namespaces:
  - name: bad/name
    storage-engine:
      type: memory
      data-size: 64M"
bad_config "namespace name too long" 4 "name" "service:
  work-directory: $WORK
namespaces:
  - name: $(printf 'n%.0s' $(seq 32))
    storage-engine:
      type: memory
      data-size: 64M"
bad_config "duplicate namespace" 8 "name" "service:
  work-directory: $WORK
namespaces:
  - name: test
    storage-engine:
      type: memory
      data-size: 64M
  - name: test
    storage-engine:
      type: memory
      data-size: 64M"
bad_config "bad file-mode" 3 "file-mode" "fuse:
  threads: 4
  file-mode: \"0999\"
service:
  work-directory: $WORK
$NSLINES"
bad_config "bad boolean" 8 "commit-to-device" "service:
  work-directory: $WORK
namespaces:
  - name: test
    storage-engine:
      type: memory
      data-size: 64M
      commit-to-device: perhaps"

out=$(run "$RECFSD" --check-config -c "$T/does-not-exist.yaml" 2>&1)
check_true "missing config file fails" $? -ne 0
check_true "missing config file: message names it ($out)" "$(printf '%s' "$out" | grep -c 'does-not-exist.yaml')" -ge 1
: >"$T/empty.yaml"
out=$(run "$RECFSD" --check-config -c "$T/empty.yaml" 2>&1)
note "empty config file: rc $? ($out)"

# ---- a good config mounts; the mount serves; a clean unmount ends the daemon -----------------------
write_config
start_daemon
echo hello >"$MNT/test/cfg" || bad "write after mount"
check_eq "read after mount" "$(cat "$MNT/test/cfg" 2>&1)" hello
check_true "the log file is written" -s "$LOG"
# SIGHUP reopens the log file (logrotate moves it away first)
mv "$LOG" "$LOG.1"
kill -HUP "$DAEMON_PID"
i=0
while [ ! -e "$LOG" ] && [ $i -lt 25 ]; do sleep 0.2; i=$((i + 1)); done
check_true "SIGHUP reopened the log file" -e "$LOG"
assert_serving "SIGHUP"
# The shipped logrotate snippet, pointed at this log: it rotates the file
# and its postrotate makes recfsd write to the new one (pkill -HUP reaches
# other tests' daemons too, which only reopen their logs).
if command -v logrotate >/dev/null 2>&1; then
	echo "before rotation" >>"$LOG"
	sed "s|/var/log/recfs/\*.log|$LOG|" "$top_srcdir/examples/logrotate.d/recfs" >"$T/logrotate.conf"
	out=$(run logrotate -f -s "$T/logrotate.state" "$T/logrotate.conf" 2>&1)
	check_eq "logrotate with the shipped snippet: exit status ($out)" $? 0
	check_true "logrotate moved the log away" "$(grep -c "before rotation" "$LOG.1" 2>/dev/null || echo 0)" -eq 1
	i=0
	while ! grep -q "reopen" "$LOG" 2>/dev/null && [ $i -lt 25 ]; do sleep 0.2; i=$((i + 1)); done
	check_true "after logrotate recfsd writes to the new log ($(cat "$LOG" 2>/dev/null | head -2))" \
	    "$(grep -c "reopen" "$LOG" 2>/dev/null || echo 0)" -ge 1
else
	note "no logrotate: the shipped snippet is not run"
fi
# exited_after WHAT: recfsd ends within 10 s of WHAT, with exit status 0
# (then it is no longer the harness's to stop); 1 if it is still running.
exited_after() {
	local i=0
	while kill -0 "$DAEMON_PID" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
	if kill -0 "$DAEMON_PID" 2>/dev/null; then
		bad "recfsd still running 10 s after $1"
		return 1
	fi
	wait "$DAEMON_PID"
	check_eq "recfsd exit status after $1" $? 0
	DAEMON_PID=
}
expect_ok "fusermount3 -u" fusermount3 -u "$MNT"
exited_after "fusermount3 -u"
# SIGTERM is a clean shutdown too
start_daemon
kill -TERM "$DAEMON_PID"
exited_after SIGTERM &&
	check_true "SIGTERM unmounted" "$(grep -cF " $MNT fuse" /proc/self/mounts)" -eq 0
# SIGTERM while a directory is open (an `ls` in progress): the session ends
# without its release, recfsd releases the handle itself at exit (in a
# sanitizer build a leak report would make the exit status 1)
start_daemon
if exec 9<"$MNT/test"; then
	# other requests after it (so nothing of the open's reply is left
	# where a leak check would find the handle)
	for i in $(seq 1 32); do echo "$i" >"$MNT/test/f$i"; ls "$MNT/test" >/dev/null; done
	kill -TERM "$DAEMON_PID"
	exited_after "SIGTERM with a directory open"
	exec 9<&-
	timeout 10 fusermount3 -u -z "$MNT" 2>/dev/null || timeout 10 umount -l "$MNT" 2>/dev/null
else
	bad "open of the namespace directory"
fi

# ---- a mount point that is not a directory, or missing ------------------------------------
# Regression: on a regular file recfsd said "mounted" and every access gave EIO.
: >"$T/plainfile"
for mode in -f ""; do
	out=$(run "$RECFSD" $mode -c "$CONF" "$T/plainfile" 2>&1)
	rc=$?
	check_true "mount point is a file (${mode:-background}): refused (exit $rc)" $rc -ne 0 -a $rc -ne 124
	check_true "... saying so ($out)" -n "$(printf '%s' "$out" | grep -F "mount point $T/plainfile is not a directory")"
	if grep -qF " $T/plainfile fuse" /proc/self/mounts; then
		bad "... but mounted it"
		timeout 10 fusermount3 -u "$T/plainfile"
	fi
	out=$(run "$RECFSD" $mode -c "$CONF" "$T/no-such-dir" 2>&1)
	rc=$?
	check_true "missing mount point (${mode:-background}): refused (exit $rc)" $rc -ne 0 -a $rc -ne 124
	check_true "... naming it ($out)" -n "$(printf '%s' "$out" | grep -F "$T/no-such-dir" | grep -F "No such file or directory")"
done
check_true "nothing mounted on either" -z "$(grep -F -e " $T/plainfile " -e " $T/no-such-dir " /proc/self/mounts)"
finish
