#!/bin/bash
# t_default: recfsd with no -c runs on the built-in default (recfsd(8)): one
# namespace `test` on the device engine, a sparse 4 GiB file test.dat in
# the work directory (/var/lib/recfs for root); what is written there comes
# back after a restart.  As root the default work directory is the
# system's, so the daemon runs in a private mount namespace with an empty
# tmpfs over /var/lib: the test never touches the real one.  What it checks
# depends only on what it did itself (a recfsd of the host on the real
# /var/lib/recfs changes nothing): a marker file and the node id made
# inside the namespace are not on the real /var/lib.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null 2>&1; then
	echo "SKIP: $ITEST_NAME needs root and unshare (a private /var/lib)"
	exit 77
fi
if ! unshare --mount --propagation private true 2>/dev/null; then
	echo "SKIP: $ITEST_NAME: no mount namespaces here"
	exit 77
fi

# Runs inside the namespace; prints "ok: ..." / "FAIL: ..." lines and
# ends the daemon it started whatever happens (bounded waits only).
cat >"$T/inside.sh" <<'EOF'
#!/bin/bash
RECFSD=$1 MNT=$2 OUT=$3 MARK=$4
DPID=
say() { echo "$1: $2"; }
stop() {
	[ -n "$DPID" ] || return 0
	timeout 10 fusermount3 -u "$MNT" 2>/dev/null
	for i in $(seq 1 100); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$DPID" 2>/dev/null
	wait "$DPID" 2>/dev/null
	DPID=
}
trap stop EXIT
start() {
	"$RECFSD" -f "$MNT" >>"$OUT" 2>&1 &
	DPID=$!
	for i in $(seq 1 100); do
		timeout 2 test -e "$MNT/.info/build" 2>/dev/null && return 0
		kill -0 "$DPID" 2>/dev/null || { say FAIL "recfsd without -c exited: $(tail -3 "$OUT")"; exit 1; }
		sleep 0.1
	done
	say FAIL "recfsd without -c did not mount within 10 s"
	exit 1
}
mount -t tmpfs -o size=64m recfs-t-default /var/lib || { say FAIL "tmpfs over /var/lib"; exit 1; }
: >"/var/lib/$MARK" || { say FAIL "marker on the tmpfs"; exit 1; }
start
say ok "recfsd without -c mounted"
[ -d "$MNT/test" ] && say ok "namespace test is there" || say FAIL "no namespace test: $(ls "$MNT")"
ns=$(timeout 5 cat "$MNT/.info/namespace/test")
size=$(echo "$ns" | sed -n 's/^data_total_bytes=//p')
[ "$size" = 4294967296 ] && say ok "4 GiB of storage" || say FAIL "data_total_bytes '$size'"
wb=$(echo "$ns" | sed -n 's/^total_wblocks=//p')
[ "$wb" = 4088 ] && say ok "device engine: 4088 wblocks of 1 MiB after the 8 MiB header" || say FAIL "total_wblocks '$wb'"
F=/var/lib/recfs/test.dat
[ "$(stat -c %s "$F" 2>/dev/null)" = 4294967296 ] && say ok "$F is 4 GiB" || say FAIL "$F: $(ls -l "$F" 2>&1)"
[ "$(stat -f -c %T "$F")" = tmpfs ] && say ok "... on the private tmpfs" || say FAIL "$F is on $(stat -f -c %T "$F")"
kb=$(du -k "$F" | cut -f1)
[ "$kb" -lt 65536 ] && say ok "... and sparse ($kb KiB allocated)" || say FAIL "$F not sparse: $kb KiB allocated"
mkdir "$MNT/test/demo" && echo hello >"$MNT/test/demo/greeting" || say FAIL "write through the default mount"
stop
start
[ "$(timeout 5 cat "$MNT/test/demo/greeting")" = hello ] && say ok "the file came back after a restart" ||
	say FAIL "after a restart: '$(timeout 5 cat "$MNT/test/demo/greeting" 2>&1)'"
stop
[ -e /var/lib/recfs/node_id ] && say ok "the node id is kept in the work directory" || say FAIL "no node_id"
echo "node: $(cat /var/lib/recfs/node_id)"
EOF
chmod +x "$T/inside.sh"
MARK=recfs-t-default.$$.$RANDOM
timeout -k 5 90 unshare --mount --propagation private "$T/inside.sh" "$RECFSD" "$MNT" "$T/daemon-default.out" \
	"$MARK" >"$T/inside.log" 2>&1
rc=$?
cat "$T/inside.log"
check_eq "the run inside the namespace ended normally" "$rc" 0
check_true "it reported its checks" "$(grep -c '^ok: ' "$T/inside.log")" -ge 9
check_eq "no check failed inside" "$(grep -c '^FAIL: ' "$T/inside.log")" 0
# What the test made inside must not be on the real /var/lib.
check_true "the marker made inside is not on the real /var/lib" ! -e "/var/lib/$MARK"
node=$(sed -n 's/^node: //p' "$T/inside.log")
check_true "the node id made inside ($node) ..." -n "$node"
check_true "... is not the real /var/lib/recfs's" "$(cat /var/lib/recfs/node_id 2>/dev/null)" != "$node"
finish
