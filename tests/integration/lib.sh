# lib.sh - shared harness for recfs integration tests (sourced, not run).
#
# Every test sources this file, calls mount_default (or write_config +
# start_daemon), checks what a user would check from the shell, and ends with
# `finish`.  The harness owns everything it starts:
#
#   - a private temp dir ($T) holding the mount point ($MNT), the config
#     ($CONF), the daemon's work directory and log, so tests run in parallel
#     (make check -j) without sharing anything;
#   - the daemon, started in the foreground mode (-f) in the background of
#     this shell and known by pid ($DAEMON_PID);
#   - a watchdog that, if the test exceeds $ITEST_TIMEOUT seconds, kills the
#     daemon (which aborts any FUSE call the test is blocked in) and then
#     the test;
#   - an EXIT/INT/TERM trap that unmounts (fusermount3 -u, then lazy), stops
#     the daemon (TERM, then KILL after a bounded wait), prints the daemon's
#     log tail when the test failed, and removes $T.
# A test may set ITEST_FAIL_SUMMARY to a file whose first 60 lines the
# cleanup prints last when the test failed (CI shows the tail of the output).
# ITEST_KEEP_ON_FAIL=1 (environment) keeps $T of a failed test (logs, work
# directories; the daemons are stopped and unmounted all the same) and
# says where: a rare failure's node logs survive the run.  While the
# cleanup runs, ITEST_RC is the test's exit status (a test's
# itest_before_stop hook reads it: 0 for a passing test).
#
# Assertions: `bad MSG` records a failure and goes on (so one run reports
# every broken behaviour), `fail MSG` stops the test.  A test exits 1 if any
# assertion failed, 77 only when /dev/fuse or fusermount3 is missing or
# /dev/fuse cannot be opened by this user.

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
export top_srcdir top_builddir

ITEST_NAME=$(basename "$0" .sh)
: "${ITEST_TIMEOUT:=120}"     # seconds for the whole test
: "${RUN_TIMEOUT:=30}"        # seconds for one command run through `run`
RECFSD=$top_builddir/recfsd
ITEST_BIN=$top_builddir/tests/integration
FAILS=0
ITEST_RC=0
# Extra file systems a test mounted (a small tmpfs to fill up): unmounted by
# the cleanup once the daemon is gone.  Append: EXTRA_MOUNTS="$EXTRA_MOUNTS dir"
EXTRA_MOUNTS=
# Loop devices a test attached (losetup): detached by the cleanup after the
# mounts.  EXTRA_LOOPS="$EXTRA_LOOPS /dev/loopN"
EXTRA_LOOPS=
DAEMON_PID=
WATCHDOG_PID=

# ---- skipping -------------------------------------------------------------

if [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null 2>&1; then
	echo "SKIP: $ITEST_NAME needs /dev/fuse and fusermount3"
	exit 77
fi
# A user who may not open it cannot mount (recfsd says so and exits).
if ! (exec 3<>/dev/fuse) 2>/dev/null; then
	echo "SKIP: $ITEST_NAME: /dev/fuse cannot be opened by $(id -un) (docs/operations.md, \"Running as a non-root user\")"
	exit 77
fi
if [ ! -x "$RECFSD" ]; then
	echo "FATAL: $RECFSD not built (top_builddir=$top_builddir)" >&2
	exit 99
fi

# ---- assertions -----------------------------------------------------------

note() { echo "# $*"; }
pass() { echo "ok: $*"; }
FAILED_CHECKS=""
bad() {
	echo "FAIL: $*"
	FAILS=$((FAILS + 1))
	# Repeated by finish: CI shows only the tail of a long log.
	FAILED_CHECKS="$FAILED_CHECKS
#   $(printf '%s' "$*" | head -c 600)"
}
fail() {
	echo "FATAL: $*" >&2
	exit 1
}

# run CMD...: the command under a timeout (a hung FUSE call cannot hang make
# check; the watchdog covers shell built-ins and redirections).
run() {
	timeout -k 5 "$RUN_TIMEOUT" "$@"
}

# check_eq DESC GOT WANT
check_eq() {
	if [ "$2" = "$3" ]; then
		pass "$1"
	else
		bad "$1: expected '$3', got '$2'"
	fi
}

# check_true DESC TEST-ARGS...   e.g. check_true "size > 0" "$n" -gt 0
check_true() {
	local d=$1
	shift
	if [ "$@" ] 2>/dev/null; then
		pass "$d"
	else
		bad "$d: [ $* ] is false"
	fi
}

# expect_ok DESC CMD...: the command exits 0.
expect_ok() {
	local d=$1 out rc
	shift
	out=$(run "$@" 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then
		pass "$d"
	else
		bad "$d: '$*' exited $rc: $out"
	fi
	return $rc
}

# expect_err DESC TEXT CMD...: the command fails and its stderr names TEXT
# (the strerror text a user sees, e.g. "Operation not permitted").
expect_err() {
	local d=$1 text=$2 err rc
	shift 2
	err=$(run "$@" 2>&1 >/dev/null)
	rc=$?
	if [ $rc -eq 0 ]; then
		bad "$d: '$*' succeeded, expected failure '$text'"
		return 1
	elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
		bad "$d: '$*' timed out (expected '$text')"
		return 1
	elif ! printf '%s' "$err" | grep -qF -- "$text"; then
		bad "$d: '$*' exited $rc, expected '$text', got: $err"
		return 1
	fi
	pass "$d ($text)"
	return 0
}

# sh_ok / sh_err: like expect_ok / expect_err for a shell snippet (needed for
# redirections: `echo x > file`).  Positional args are passed to the snippet.
sh_ok() {
	local d=$1 s=$2
	shift 2
	expect_ok "$d" sh -c "$s" sh "$@"
}
sh_err() {
	local d=$1 text=$2 s=$3
	shift 3
	expect_err "$d" "$text" sh -c "$s" sh "$@"
}

# getx NAME FILE: an xattr's value as text (nothing, rc 1 if absent).
getx() {
	run getfattr --absolute-names --only-values -n "$1" "$2" 2>/dev/null
}

# size_matches FILE: "ok" when stat's size of FILE equals what cat reads,
# else "stat N, cat M" of the last try.  A statistics file's numbers keep
# moving (uptime, cycle times), so a size taken at stat may be a digit off
# by the time cat reads (.info/peers' heartbeat ages move every ms): up to
# 10 tries, each pairing a stat with the read right after it; a size that
# is wrong every time still fails.
size_matches() {
	local i s c
	for ((i = 0; i < 10; i++)); do
		s=$(stat -c %s "$1" 2>&1)
		c=$(run cat "$1" 2>/dev/null | wc -c)
		[ "$s" = "$c" ] && { echo ok; return; }
	done
	echo "stat $s, cat $c"
}

# sanitized_build: true when recfsd is an ASan/UBSan or TSan build.  Such a
# build runs 2-15x slower, so a test's timing bounds (not its results)
# get their documented slack there.
sanitized_build() {
	ldd "$RECFSD" 2>/dev/null | grep -Eq 'lib(a|t)san'
}

HAVE_PYTHON=no
command -v python3 >/dev/null 2>&1 && HAVE_PYTHON=yes

# free_port [TAKEN...]: a TCP port on 127.0.0.1 that nothing listens on now,
# for a daemon to bind later, and none of the ports TAKEN (those picked for
# daemons that are not listening yet: a cluster's nodes get their ports
# before the first one starts, and two equal draws made the later node fail
# with EADDRINUSE).  Drawn below the kernel's ephemeral range
# (ip_local_port_range, 32768-60999 by default): a port the kernel hands
# out for bind(0) is in that range, where any outgoing connection (a fabric
# dialer of another node, another test) may take it before the daemon
# binds it.  Tries up to 200 random ports in 20000-32767 (needs python3).
free_port() {
	python3 -c '
import random, socket, sys
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
taken = set(int(a) for a in sys.argv[1:])
for _ in range(200):
    p = random.randrange(20000, min(lo, 32768))
    if p in taken:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    break
else:
    raise SystemExit("free_port: no free port in 20000-%d" % min(lo, 32768))
' "$@"
}

# py_errno CODE [ARGS...]: run a python3 snippet (sys.argv holds ARGS) and
# print OK, or the errno name of the OSError it raised (EXDEV, EEXIST, ...).
py_errno() {
	local code=$1
	shift
	run python3 -c "
import os, sys, errno, ctypes
try:
$(printf '%s\n' "$code" | sed 's/^/    /')
    print('OK')
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
" "$@" 2>&1
}

# expect_errno DESC WANT CODE [ARGS...]: python snippet ends with errno WANT
# (or OK).
expect_errno() {
	local d=$1 want=$2 code=$3 got
	shift 3
	if [ "$HAVE_PYTHON" != yes ]; then
		note "no python3: skipped '$d'"
		return 0
	fi
	got=$(py_errno "$code" "$@")
	check_eq "$d" "$got" "$want"
}

# ---- statistics ------------------------------------------------------------

# stat_value NS NAME: the value of NAME in MNT/.info/namespace/NS ("" if absent).
stat_value() {
	run cat "$MNT/.info/namespace/$1" 2>/dev/null |
		awk -v k="$2" 'index($0, "=") { n = substr($0, 1, index($0, "=") - 1);
			if (n == k) { print substr($0, index($0, "=") + 1); exit } }'
}
# node_value NAME: the value of NAME in MNT/.info/statistics.
node_value() {
	run cat "$MNT/.info/statistics" 2>/dev/null |
		awk -v k="$1" 'index($0, "=") { n = substr($0, 1, index($0, "=") - 1);
			if (n == k) { print substr($0, index($0, "=") + 1); exit } }'
}
# info_value FILE NAME: the value of NAME in MNT/.info/FILE (any .info file).
info_value() {
	run cat "$MNT/.info/$1" 2>/dev/null |
		awk -v k="$2" 'index($0, "=") { n = substr($0, 1, index($0, "=") - 1);
			if (n == k) { print substr($0, index($0, "=") + 1); exit } }'
}
# stat_names SECTION: the names of a section of the statistics table
# (NODE, FUSE, NAMESPACE, SET, CLUSTER, ...; see docs/statistics.md).
stat_names() {
	"$top_builddir/tools/gen-stats-doc" --names "$1"
}
# set_value NS SET NAME: from MNT/.info/sets/NS/SET.
set_value() {
	run cat "$MNT/.info/sets/$1/$2" 2>/dev/null |
		awk -v k="$3" 'index($0, "=") { n = substr($0, 1, index($0, "=") - 1);
			if (n == k) { print substr($0, index($0, "=") + 1); exit } }'
}

# daemon_fd_flags PATH: the open flags (octal, from /proc/PID/fdinfo) of
# the daemon's I/O descriptor for PATH ("" if it has none).  The engine
# also holds a descriptor that only carries the store's lock: it is the
# one whose fdinfo lists locks, and is skipped.
daemon_fd_flags() {
	local fd info
	for fd in /proc/"$DAEMON_PID"/fd/*; do
		if [ "$(readlink "$fd" 2>/dev/null)" = "$1" ]; then
			info=/proc/$DAEMON_PID/fdinfo/${fd##*/}
			grep -q '^lock:' "$info" 2>/dev/null && continue
			sed -n 's/^flags:[[:space:]]*//p' "$info"
			return 0
		fi
	done
}
# has_o_direct FLAGS: the octal flags include O_DIRECT (040000 on Linux x86/arm).
has_o_direct() {
	[ -n "$1" ] && [ $(( 0$1 & 040000 )) -ne 0 ]
}

# ---- the daemon -----------------------------------------------------------

T=$(mktemp -d "${TMPDIR:-/tmp}/recfs-$ITEST_NAME.XXXXXX") || fail "mktemp"
MNT=$T/mnt
CONF=$T/recfs.yaml
WORK=$T/work
LOG=$T/recfsd.log
DAEMON_OUT=$T/daemon.out
mkdir -p "$MNT" "$WORK" || fail "mkdir $MNT"

is_mounted() {
	grep -qF " $MNT fuse" /proc/self/mounts 2>/dev/null
}

# write_config [EXTRA_TEST_NS_YAML]: the default test config: namespaces
# "test" (256M, 1M write blocks, so max-record-size is about 1 MiB) and
# "other" (64M, 4M write blocks, for files of a few MiB), memory engine.  EXTRA lines are added to the storage
# engine of "test" (indented 6 spaces by the caller).
write_config() {
	cat >"$CONF" <<EOF
# generated by tests/integration/lib.sh for $ITEST_NAME
service:
  cluster-name: itest
  work-directory: $WORK
  ticker-interval: 0
logging:
  file: $LOG
  level: info
fuse:
  threads: 8
namespaces:
  - name: test
    replication-factor: 1
    storage-engine:
      type: memory
      data-size: 256M
      write-block-size: 1M
${1:-}
  - name: other
    replication-factor: 1
    storage-engine:
      type: memory
      data-size: 64M
      write-block-size: 4M
EOF
}

# start_daemon [CONF]: start recfsd on $MNT and wait (10 s at most) until
# the mount serves /.info/build.  RECFSD_OPTS: extra options (-o allow_other).
start_daemon() {
	local conf=${1:-$CONF} i
	# shellcheck disable=SC2086 # RECFSD_OPTS is a list of words
	"$RECFSD" -f -c "$conf" ${RECFSD_OPTS:-} "$MNT" >>"$DAEMON_OUT" 2>&1 &
	DAEMON_PID=$!
	echo "$DAEMON_PID" >"$T/daemon.pid"
	i=0
	while [ $i -lt 200 ]; do   # every 50 ms, 10 s at most
		if is_mounted && timeout 2 test -e "$MNT/.info/build"; then
			note "recfsd pid $DAEMON_PID mounted at $MNT"
			return 0
		fi
		if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
			wait "$DAEMON_PID"
			local rc=$?
			DAEMON_PID=
			rm -f "$T/daemon.pid"
			fail "recfsd exited with $rc before mounting: $(tail -n 20 "$DAEMON_OUT" 2>/dev/null)"
		fi
		sleep 0.05
		i=$((i + 1))
	done
	fail "recfsd did not mount $MNT within 10 s"
}

mount_default() {
	write_config "$@"
	start_daemon
}

# stop_daemon: unmount as a user would (fusermount3 -u = clean shutdown) and
# wait for the daemon to exit; KILL after 10 s.  Returns the daemon's status.
stop_daemon() {
	# polled every 50 ms (most daemons are gone within one or two): TERM
	# after 4 s, KILL after 10 s
	local i rc=0 grace=80
	is_mounted || grace=0 # nothing to unmount: TERM at once
	if is_mounted; then
		timeout 10 fusermount3 -u "$MNT" 2>/dev/null ||
			timeout 10 umount -l "$MNT" 2>/dev/null ||
			timeout 10 fusermount3 -u -z "$MNT" 2>/dev/null
	fi
	if [ -n "$DAEMON_PID" ]; then
		i=0
		while kill -0 "$DAEMON_PID" 2>/dev/null && [ $i -lt 200 ]; do
			[ $i -eq $grace ] && kill -TERM "$DAEMON_PID" 2>/dev/null
			sleep 0.05
			i=$((i + 1))
		done
		if kill -0 "$DAEMON_PID" 2>/dev/null; then
			echo "# recfsd $DAEMON_PID did not exit: KILL" >&2
			kill -KILL "$DAEMON_PID" 2>/dev/null
		fi
		wait "$DAEMON_PID" 2>/dev/null
		rc=$?
		DAEMON_PID=
		rm -f "$T/daemon.pid"
	fi
	return $rc
}

# daemon_serving: the daemon is alive and answers a read.
daemon_serving() {
	[ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null &&
		timeout 5 cat "$MNT/.info/build" >/dev/null 2>&1
}
assert_serving() {
	if daemon_serving; then
		pass "daemon still serving${1:+ after $1}"
	else
		fail "daemon no longer serving${1:+ after $1}"
	fi
}

# write_device_config DAT [SETTING...]: a config whose one namespace "test"
# is on the device engine, in the storage file DAT; each SETTING is one
# "key: value" line of its storage-engine (filesize, write-block-size,
# flush-max-ms, commit-to-device...).  Same service and logging as
# write_config.
write_device_config() {
	local dat=$1 s
	shift
	{
		cat <<EOF
# generated by tests/integration/lib.sh (write_device_config) for $ITEST_NAME
service:
  cluster-name: itest
  work-directory: $WORK
  ticker-interval: 0
logging:
  file: $LOG
  level: info
fuse:
  threads: 8
namespaces:
  - name: test
    replication-factor: 1
    storage-engine:
      type: device
      files: [$dat]
EOF
		for s in "$@"; do
			echo "      $s"
		done
	} >"$CONF"
}

# write_shadow_config DAT [SETTING...]: like write_device_config, but the
# namespace is on the memory engine with DAT as its shadow file (docs/storage-format.md);
# data-size is the filesize given (default 64M).
write_shadow_config() {
	local dat=$1 s size=64M
	shift
	for s in "$@"; do
		case $s in filesize:*) size=${s#filesize: } ;; esac
	done
	write_device_config "$dat" "$@"
	sed -i "s|^      type: device\$|      type: memory\n      data-size: $size|" "$CONF"
}

# storage_config DAT [SETTING...]: write_device_config, or
# write_shadow_config when ITEST_ENGINE=memory (tests run on both).
storage_config() {
	if [ "${ITEST_ENGINE:-device}" = memory ]; then
		write_shadow_config "$@"
	else
		write_device_config "$@"
	fi
}

# crash_daemon: SIGKILL the daemon - no clean shutdown, what a crash or the
# OOM killer leaves - reap it, and detach its dead mount (lazily: the FUSE
# connection is gone), so that start_daemon can mount $MNT again on the
# same storage.  Fails if the mount could not be detached.
crash_daemon() {
	if [ -n "$DAEMON_PID" ]; then
		kill -KILL "$DAEMON_PID" 2>/dev/null
		wait "$DAEMON_PID" 2>/dev/null
		DAEMON_PID=
		rm -f "$T/daemon.pid"
	fi
	if is_mounted; then
		timeout 10 fusermount3 -u -z "$MNT" 2>/dev/null ||
			timeout 10 umount -l "$MNT" 2>/dev/null
	fi
	! is_mounted
}

itest_cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$WATCHDOG_PID" ]; then
		kill -TERM "$WATCHDOG_PID" 2>/dev/null
		wait "$WATCHDOG_PID" 2>/dev/null
	fi
	cd / || true
	[ $rc -eq 0 ] && [ "$FAILS" -ne 0 ] && rc=1
	ITEST_RC=$rc
	# a test's own undo before the daemon stops (thaw a frozen file system)
	if type itest_before_stop >/dev/null 2>&1; then
		itest_before_stop
	fi
	stop_daemon
	for m in $EXTRA_MOUNTS; do
		timeout 10 umount "$m" 2>/dev/null || timeout 10 umount -l "$m" 2>/dev/null
	done
	for l in $EXTRA_LOOPS; do
		timeout 10 losetup -d "$l" 2>/dev/null || echo "# could not detach $l" >&2
	done
	[ $rc -eq 0 ] && [ "$FAILS" -ne 0 ] && rc=1
	if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
		for f in "$DAEMON_OUT" "$LOG"; do
			if [ -s "$f" ]; then
				echo "---- last lines of $f"
				tail -n 30 "$f"
			fi
		done
		# a test's own account of its failure, last: CI shows the tail
		if [ -n "${ITEST_FAIL_SUMMARY:-}" ] && [ -s "$ITEST_FAIL_SUMMARY" ]; then
			echo "---- $ITEST_NAME: what failed"
			head -n 60 "$ITEST_FAIL_SUMMARY"
		fi
	fi
	if is_mounted; then
		echo "# $MNT still mounted; leaving $T" >&2
	elif [ $rc -ne 0 ] && [ $rc -ne 77 ] && [ "${ITEST_KEEP_ON_FAIL:-0}" = 1 ]; then
		echo "# ITEST_KEEP_ON_FAIL: $ITEST_NAME's files are kept in $T" >&2
	else
		rm -rf "$T"
	fi
	exit $rc
}
trap itest_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The watchdog: one bounded sleep, then kill the daemon (unblocking any FUSE
# call) and the test.  Cleanup kills it (and its sleep) by pid.
(
	trap 'kill $sp 2>/dev/null; exit 0' TERM
	sleep "$ITEST_TIMEOUT" &
	sp=$!
	wait $sp
	echo "FATAL: $ITEST_NAME exceeded ${ITEST_TIMEOUT}s" >&2
	# the daemon, and the nodes of cluster_lib.sh
	for dp in $(cat "$T/daemon.pid" "$T/cluster.pid" 2>/dev/null); do
		kill -KILL "$dp" 2>/dev/null
	done
	kill -TERM $$
) &
WATCHDOG_PID=$!

# finish: end of a test.
finish() {
	# (the seconds since the test started: CI's time per test, in its log)
	if [ "$FAILS" -ne 0 ]; then
		echo "# $ITEST_NAME: $FAILS check(s) failed in ${SECONDS} s:$FAILED_CHECKS"
		exit 1
	fi
	echo "# $ITEST_NAME: all checks passed in ${SECONDS} s"
	exit 0
}
