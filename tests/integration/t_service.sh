#!/bin/bash
# t_service: what running recfsd as a service relies on, without systemd
# (docs/operations.md, "Running as a service"):
#   - readiness: through a fake $NOTIFY_SOCKET (a python3 datagram
#     listener, path and abstract), "STATUS=cold start..." comes before the
#     mount and READY=1 only once the mount serves with the cold start done
#     (the records written before the restart are all indexed), STOPPING=1
#     at shutdown;
#   - the unit's CapabilityBoundingSet= (read from examples/recfsd.service.in)
#     is enough to mount, serve and stop cleanly (setpriv, as root);
#   - logging.file in a directory that does not exist: created 0750, and
#     SIGHUP reopens the file after a rotation; one that cannot be created
#     is refused with a message naming it, before any storage file;
#   - examples/device.yaml starts as its comment says on a machine with no
#     /var/lib/recfs nor /var/log/recfs (private mount namespace);
#   - a user who cannot open /dev/fuse (nobody, via setpriv) is told so and
#     how to fix it, and no storage file, lock or node id is created.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

command -v python3 >/dev/null 2>&1 || fail "python3 missing (scripts/install-deps.sh installs it)"

# ---- the fake service manager ----------------------------------------------------------------
# notify.py SOCKET MNT OUT: receive notifications until STOPPING=1 (60 s at
# most); one line per datagram: "mounted=0|1 objects=N|- MESSAGE" where
# objects is the namespace's count read through the mount when READY=1
# arrives (proof the mount serves and the cold start is done).
cat >"$T/notify.py" <<'EOF'
import os, socket, subprocess, sys, time
path, mnt, out = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + path[1:] if path.startswith("@") else path)
open(out + ".listening", "w").close()
s.settimeout(1.0)
end = time.time() + 60
def mounted():
    with open("/proc/self/mounts") as f:
        return any(l.split()[1] == mnt and l.split()[2].startswith("fuse") for l in f)
with open(out, "a", buffering=1) as f:
    while time.time() < end:
        try:
            msg = s.recv(4096).decode()
        except socket.timeout:
            continue
        objects = "-"
        if "READY=1" in msg.split("\n"):
            r = subprocess.run(["timeout", "5", "cat", mnt + "/.info/namespace/test"],
                               capture_output=True, text=True)
            for line in r.stdout.splitlines():
                if line.startswith("objects="):
                    objects = line.split("=", 1)[1]
        f.write("mounted=%d objects=%s %s\n" % (mounted(), objects, msg.replace("\n", "|")))
        if "STOPPING=1" in msg.split("\n"):
            break
EOF

LISTENER_PID=
# listen SOCKET: start the listener on SOCKET, output in $T/notify.out.
listen() {
	rm -f "$T/notify.out" "$T/notify.out.listening"
	python3 "$T/notify.py" "$1" "$MNT" "$T/notify.out" &
	LISTENER_PID=$!
	for _ in $(seq 1 50); do
		[ -e "$T/notify.out.listening" ] && return 0
		sleep 0.1
	done
	fail "the notify listener did not start"
}
# listener_done: wait (10 s at most) for the listener to see STOPPING=1 and exit.
listener_done() {
	for _ in $(seq 1 100); do
		kill -0 "$LISTENER_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -TERM "$LISTENER_PID" 2>/dev/null
	wait "$LISTENER_PID" 2>/dev/null
	LISTENER_PID=
}
itest_before_stop() {
	[ -n "$LISTENER_PID" ] && kill -TERM "$LISTENER_PID" 2>/dev/null
	return 0
}
# wait_line PATTERN: until a line of notify.out matches (10 s at most).
wait_line() {
	for _ in $(seq 1 100); do
		grep -q -- "$1" "$T/notify.out" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# ---- readiness -------------------------------------------------------------------------------
note "readiness: a device store with 40 records, restarted under a fake NOTIFY_SOCKET"
write_device_config "$T/store.dat" "filesize: 64M"
start_daemon
for i in $(seq 1 40); do echo "record $i" >"$MNT/test/r$i"; done
stop_daemon || bad "first run did not stop cleanly"

listen "$T/notify.sock"
export NOTIFY_SOCKET=$T/notify.sock
start_daemon
unset NOTIFY_SOCKET
if wait_line 'READY=1'; then
	ready=$(grep 'READY=1' "$T/notify.out" | head -n 1)
	check_eq "READY=1 arrives once the mount is up" "$(echo "$ready" | cut -d' ' -f1)" mounted=1
	check_eq "at READY=1 the mount serves the whole cold start (objects)" \
		"$(echo "$ready" | cut -d' ' -f2)" objects=40
	first=$(head -n 1 "$T/notify.out")
	case $first in
	"mounted=0 objects=- STATUS=cold start"*) pass "STATUS=cold start comes first, before the mount" ;;
	*) bad "first notification is not the cold start status before the mount: $first" ;;
	esac
	check_true "READY=1 is sent once" "$(grep -c 'READY=1' "$T/notify.out")" -eq 1
else
	bad "no READY=1 on \$NOTIFY_SOCKET within 10 s: $(cat "$T/notify.out" 2>&1)"
fi
check_eq "a record through the ready mount" "$(cat "$MNT/test/r7" 2>&1)" "record 7"
stop_daemon || bad "second run did not stop cleanly"
if wait_line 'STOPPING=1'; then pass "STOPPING=1 at shutdown"; else bad "no STOPPING=1: $(cat "$T/notify.out")"; fi
listener_done

note "readiness on an abstract socket (@name), as systemd may hand out"
listen "@recfs-itest-$$-notify"
NOTIFY_SOCKET="@recfs-itest-$$-notify" start_daemon
if wait_line 'mounted=1 objects=40 READY=1'; then pass "READY=1 on an abstract socket"; else
	bad "no READY=1 on the abstract socket: $(cat "$T/notify.out" 2>&1)"; fi
stop_daemon
listener_done

# ---- the unit's capabilities ----------------------------------------------------------------
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$top_srcdir/examples/recfsd.service.in")
[ -n "$caps" ] || bad "examples/recfsd.service.in has no CapabilityBoundingSet="
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1 && [ -n "$caps" ]; then
	bset=-all
	for c in $caps; do
		c=${c#CAP_}
		bset="$bset,+$(echo "$c" | tr 'A-Z' 'a-z')"
	done
	note "the unit's bounding set: $bset, no new privileges"
	REAL_RECFSD=$RECFSD
	printf '#!/bin/sh\nexec setpriv --no-new-privs --bounding-set=%s --inh-caps=-all %s "$@"\n' \
		"$bset" "$REAL_RECFSD" >"$T/capped-recfsd"
	chmod +x "$T/capped-recfsd"
	RECFSD=$T/capped-recfsd
	start_daemon
	echo capped >"$MNT/test/capped"
	check_eq "with the unit's capabilities: write and read back" "$(cat "$MNT/test/capped" 2>&1)" capped
	bnd=$(sed -n 's/^CapBnd:[[:space:]]*//p' "/proc/$DAEMON_PID/status")
	# What setpriv can give: the unit's set within this shell's own bounding
	# set (a container may lack some).  Capability numbers: linux/capability.h.
	want=$(python3 - "$(sed -n 's/^CapBnd:[[:space:]]*//p' /proc/$$/status)" $caps <<'EOF'
import sys
num = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
       "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_NET_BIND_SERVICE": 10,
       "CAP_NET_ADMIN": 12, "CAP_IPC_LOCK": 14, "CAP_SYS_RAWIO": 17, "CAP_SYS_ADMIN": 21,
       "CAP_SYS_NICE": 23, "CAP_SYS_RESOURCE": 24, "CAP_MKNOD": 27}
mask = sum(1 << num[c] for c in sys.argv[2:])
print("%016x" % (mask & int(sys.argv[1], 16)))
EOF
)
	check_eq "with the unit's capabilities: the daemon's bounding set is the unit's" "$bnd" "$want"
	stop_daemon
	check_eq "with the unit's capabilities: clean stop" $? 0
	check_true "with the unit's capabilities: 'stopped cleanly' logged" "$(grep -c 'stopped cleanly' "$LOG")" -ge 1
	# The emulation bites: no capabilities at all, no mount.
	printf '#!/bin/sh\nexec setpriv --no-new-privs --bounding-set=-all --inh-caps=-all %s "$@"\n' \
		"$REAL_RECFSD" >"$T/nocap-recfsd"
	chmod +x "$T/nocap-recfsd"
	run "$T/nocap-recfsd" -f -c "$CONF" "$MNT" >"$T/nocap.out" 2>&1
	check_eq "without CAP_SYS_ADMIN the mount fails (the bounding set is what counts)" $? 1
	RECFSD=$REAL_RECFSD
else
	note "not root or no setpriv: the unit's capability set is not exercised"
fi

# ---- logging.file's directory -----------------------------------------------------------------
note "logging.file in a directory that does not exist"
LOG=$T/logs/recfs/recfsd.log
write_config
start_daemon
check_eq "the log directory is created, mode 0750" "$(stat -c %a "$T/logs/recfs" 2>&1)" 750
check_true "the log file is written" "$(grep -c 'mounted on' "$LOG" 2>/dev/null)" -ge 1
mv "$LOG" "$LOG.1"
kill -HUP "$DAEMON_PID"
for _ in $(seq 1 50); do grep -q 'log reopened' "$LOG" 2>/dev/null && break; sleep 0.1; done
check_true "SIGHUP after a rotation: the new file is written" "$(grep -c 'SIGHUP: log reopened' "$LOG" 2>/dev/null)" -eq 1
stop_daemon
check_true "the rotated file is not written after SIGHUP" "$(grep -c 'stopped cleanly' "$LOG.1")" -eq 0

note "logging.file whose directory cannot be created"
: >"$T/plainfile"
mkdir -p "$T/w2"
cat >"$T/badlog.yaml" <<EOF
service:
  work-directory: $T/w2
logging:
  file: $T/plainfile/sub/recfsd.log
namespaces:
  - name: test
    storage-engine:
      type: device
      files: [ $T/w2/store.dat ]
      filesize: 64M
EOF
out=$(run "$RECFSD" -f -c "$T/badlog.yaml" "$MNT" 2>&1)
check_eq "unusable log directory: exit status" $? 1
check_true "unusable log directory: the message names logging.file and why" \
	"$(printf '%s' "$out" | grep -c "logging.file $T/plainfile/sub/recfsd.log: Not a directory")" -eq 1
check_true "unusable log directory: no storage file created" "$(ls "$T/w2" | grep -c 'store.dat')" -eq 0
is_mounted && bad "unusable log directory: mounted anyway"

# ---- examples/device.yaml on a fresh machine -------------------------------------------------
# As its "Start:" line says, as root, with no /var/lib/recfs and no
# /var/log/recfs: in a private mount namespace with empty tmpfs over
# /var/lib and /var/log (the real ones are never touched).
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null 2>&1 &&
	unshare --mount --propagation private true 2>/dev/null; then
	note "examples/device.yaml with no /var/lib/recfs and no /var/log/recfs"
	cat >"$T/fresh.sh" <<'EOF'
#!/bin/bash
RECFSD=$1 MNT=$2 CONF=$3 OUT=$4
DPID=
stop() {
	[ -n "$DPID" ] || return 0
	timeout 10 fusermount3 -u "$MNT" 2>/dev/null
	for _ in $(seq 1 100); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$DPID" 2>/dev/null
	wait "$DPID" 2>/dev/null
	DPID=
}
trap stop EXIT
mount -t tmpfs -o size=64m recfs-t-service /var/lib || { echo "FAIL: tmpfs over /var/lib"; exit 1; }
mount -t tmpfs -o size=16m recfs-t-service /var/log || { echo "FAIL: tmpfs over /var/log"; exit 1; }
"$RECFSD" -f -c "$CONF" "$MNT" >"$OUT" 2>&1 &
DPID=$!
for _ in $(seq 1 100); do
	timeout 2 test -e "$MNT/.info/build" 2>/dev/null && break
	kill -0 "$DPID" 2>/dev/null || { echo "FAIL: recfsd -c device.yaml exited: $(tail -3 "$OUT")"; DPID=; exit 1; }
	sleep 0.1
done
timeout 2 test -e "$MNT/.info/build" || { echo "FAIL: not mounted within 10 s"; exit 1; }
echo "ok: recfsd -c examples/device.yaml mounted"
echo fresh >"$MNT/data/hello" && [ "$(timeout 5 cat "$MNT/data/hello")" = fresh ] &&
	echo "ok: a record written and read back" || echo "FAIL: write through the mount"
[ "$(stat -c %a /var/log/recfs 2>&1)" = 750 ] && echo "ok: /var/log/recfs created, mode 0750" ||
	echo "FAIL: /var/log/recfs: $(stat -c %a /var/log/recfs 2>&1)"
grep -q 'mounted on' /var/log/recfs/recfsd.log && echo "ok: the log is in /var/log/recfs/recfsd.log" ||
	echo "FAIL: /var/log/recfs/recfsd.log: $(ls -l /var/log/recfs 2>&1)"
stop
grep -q 'stopped cleanly' /var/log/recfs/recfsd.log && echo "ok: stopped cleanly" || echo "FAIL: no clean stop"
EOF
	chmod +x "$T/fresh.sh"
	timeout -k 5 60 unshare --mount --propagation private "$T/fresh.sh" "$RECFSD" "$MNT" \
		"$top_srcdir/examples/device.yaml" "$T/fresh.out" >"$T/fresh.log" 2>&1
	st=$?
	cat "$T/fresh.log"
	check_eq "device.yaml on a fresh machine: the run ended normally" $st 0
	check_eq "device.yaml on a fresh machine: every check passed" \
		"$(grep -c '^ok: ' "$T/fresh.log")/$(grep -c '^FAIL: ' "$T/fresh.log")" 5/0
else
	note "not root or no mount namespaces: examples/device.yaml on a fresh machine is not exercised"
fi

# ---- a user who cannot use FUSE ---------------------------------------------------------------
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1 && getent passwd nobody >/dev/null; then
	NB=$T/nobody
	mkdir -p "$NB/work" "$NB/mnt"
	chown -R nobody "$NB"
	chmod 711 "$T"
	cat >"$NB/recfs.yaml" <<EOF
service:
  work-directory: $NB/work
logging:
  file: stderr
namespaces:
  - name: test
    storage-engine:
      type: device
      files: [ $NB/work/store.dat ]
      filesize: 64M
EOF
	chmod 644 "$NB/recfs.yaml"
	as_nobody="setpriv --reuid=nobody --regid=$(id -g nobody) --clear-groups"
	if $as_nobody sh -c 'exec 3<>/dev/fuse' 2>/dev/null; then
		# /dev/fuse is open to everyone here: hide it from this one run
		# behind a root-only file, in a private mount namespace.
		note "/dev/fuse is usable by nobody here: a root-only one in a private mount namespace"
		: >"$T/nofuse"
		chmod 600 "$T/nofuse"
		out=$(run unshare --mount --propagation private sh -c \
			'mount --bind "$1" /dev/fuse && shift && exec "$@"' sh "$T/nofuse" \
			$as_nobody "$RECFSD" -f -c "$NB/recfs.yaml" "$NB/mnt" 2>&1)
	else
		out=$(run $as_nobody "$RECFSD" -f -c "$NB/recfs.yaml" "$NB/mnt" 2>&1)
	fi
	st=$?
	note "recfsd as nobody said: $out"
	check_eq "as nobody without /dev/fuse: exit status" $st 1
	check_true "as nobody: says it cannot open /dev/fuse, for which user" \
		"$(printf '%s' "$out" | grep -c 'cannot open /dev/fuse: Permission denied: user nobody')" -eq 1
	check_true "as nobody: says how to fix it" "$(printf '%s' "$out" | grep -c 'fix: .*chmod 0666 /dev/fuse')" -eq 1
	check_eq "as nobody: nothing created in the work directory (no storage file, lock, node id)" \
		"$(ls -A "$NB/work")" ""
	grep -qF " $NB/mnt " /proc/self/mounts && bad "as nobody: something got mounted"
	chmod 700 "$T"
else
	note "not root or no setpriv/nobody: the non-root start is not exercised"
fi

finish
