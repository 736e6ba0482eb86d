#!/bin/bash
# t_ttl: TTLs through the mount (recfsd(8) user.recfs.ttl; docs/operations.md): a record with
# a 2-second TTL disappears from ls, stat and cat about when its void time
# passes and nsup counts it in expired_objects; the TTL set on a record is
# kept across rewrites; -1 never expires; touch refreshes the void time;
# the namespace default-ttl applies to records without one of their own;
# a record that expires under a name the kernel still caches reads empty
# and cannot be removed (client_read_not_found, client_delete_not_found);
# a record that expires while the daemon is down is not shown after the
# start, nsup deletes it, and it stays gone.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

cat >"$CONF" <<EOF
service: { work-directory: $WORK, ticker-interval: 0 }
logging: { file: $LOG, level: info }
namespaces:
  - name: test
    nsup-period: 1
    storage-engine: { type: memory, data-size: 64M }
  - name: dflt
    nsup-period: 1
    default-ttl: 2
    storage-engine: { type: memory, data-size: 16M }
EOF
start_daemon
S=$MNT/test/ttl
mkdir "$S" || fail "mkdir $S"

# 2-second TTL: gone from ls, stat and cat within a second or so of its void time.
echo short >"$S/short" || fail "write short"
echo keep >"$S/keep" || fail "write keep"
setfattr -n user.recfs.ttl -v 2 "$S/short" || fail "setfattr ttl 2"
t0=$(date +%s%N)
ttl=$(getx user.recfs.ttl "$S/short")
check_true "remaining TTL read back (1 or 2): $ttl" "$ttl" -ge 1 -a "$ttl" -le 2
check_eq "no TTL reads -1" "$(getx user.recfs.ttl "$S/keep")" -1
expired0=$(stat_value test expired_objects)
gone_ms=
for i in $(seq 1 100); do
	if ! ls "$S" | grep -qx short && ! stat "$S/short" >/dev/null 2>&1 && ! cat "$S/short" >/dev/null 2>&1; then
		gone_ms=$((($(date +%s%N) - t0) / 1000000))
		break
	fi
	sleep 0.05
done
check_true "the 2 s record disappeared from ls, stat and cat (after ${gone_ms:-never} ms)" -n "$gone_ms"
check_true "not before its void time (${gone_ms:-0} ms >= 900)" "${gone_ms:-0}" -ge 900
check_true "within about a second of it (${gone_ms:-0} ms <= 3500)" "${gone_ms:-99999}" -le 3500
check_eq "the other file stays" "$(cat "$S/keep")" keep
for i in $(seq 1 60); do
	[ "$(stat_value test expired_objects)" -gt "$expired0" ] && break
	sleep 0.1
done
check_eq "nsup counted it in expired_objects" "$(stat_value test expired_objects)" $((expired0 + 1))
d=$(stat_value test nsup_cycle_duration)
check_true "nsup_cycle_duration is the last pass in ms ($d)" -n "$d" -a "$d" -ge 0 -a "$d" -lt 1000

# The TTL set on a record is kept when the file is rewritten.
{ echo v1 >"$S/kept" && setfattr -n user.recfs.ttl -v 100 "$S/kept"; } || fail "ttl 100"
echo v2 >"$S/kept" || fail "rewrite"
ttl=$(getx user.recfs.ttl "$S/kept")
check_true "TTL kept across a rewrite ($ttl)" "$ttl" -ge 98 -a "$ttl" -le 100
setfattr -n user.recfs.ttl -v -1 "$S/kept" || fail "ttl -1"
check_eq "-1: never expires" "$(getx user.recfs.ttl "$S/kept")" -1

# touch refreshes the void time.  Void times are whole seconds: a TTL of N
# set at second s voids at s+N, between N-1 and N seconds later, so the
# touch 2 s on keeps a margin of 2 s on a loaded machine (a touch after
# the void time would create a new empty record, with no TTL).
{ echo t >"$S/touched" && setfattr -n user.recfs.ttl -v 5 "$S/touched"; } || fail "ttl 5"
v0=$(getx user.recfs.void_time "$S/touched")
sleep 2
check_true "touch comes before the void time ($(date +%s) < $v0)" "$(date +%s)" -lt "$v0"
touch "$S/touched" || fail "touch"
v1=$(getx user.recfs.void_time "$S/touched")
ttl=$(getx user.recfs.ttl "$S/touched")
check_true "touch moved the void time by the 2 s slept ($v0 -> $v1)" "$v1" -ge $((v0 + 2))
check_true "touch refreshed the TTL ($ttl)" "$ttl" -ge 3 -a "$ttl" -le 5
for i in $(seq 1 150); do
	[ "$(date +%s)" -ge "$v0" ] && break
	sleep 0.05
done
check_eq "still there past its first void time" "$(cat "$S/touched" 2>/dev/null)" t

# The namespace default-ttl (2 s here) applies to records without one.
echo d >"$MNT/dflt/gone" || fail "write in dflt"
ttl=$(getx user.recfs.ttl "$MNT/dflt/gone")
check_true "default-ttl applies ($ttl)" "$ttl" -ge 1 -a "$ttl" -le 2
for i in $(seq 1 80); do
	[ -e "$MNT/dflt/gone" ] || break
	sleep 0.05
done
check_true "gone after its default TTL" ! -e "$MNT/dflt/gone"
assert_serving

# A record that expires while the kernel still holds its name (a long
# entry-timeout): cat and rm reach the engine, which no longer has it: cat
# reads an empty file, rm fails with ENOENT, counted in
# client_read_not_found and client_delete_not_found.  (Through a single mount these counters move
# only this way: otherwise the kernel finds a missing name first.)
stop_daemon
cat >"$CONF" <<EOF
service: { work-directory: $WORK, ticker-interval: 0 }
logging: { file: $LOG, level: info }
fuse: { entry-timeout: 60, attr-timeout: 60 }
namespaces:
  - name: test
    nsup-period: 1
    storage-engine: { type: memory, data-size: 64M }
EOF
start_daemon
S=$MNT/test/gone
mkdir "$S" || fail "mkdir $S"
# TTL 3: both names must still be there when stat runs on a loaded machine.
for f in r d; do
	{ echo "$f" >"$S/$f" && setfattr -n user.recfs.ttl -v 3 "$S/$f"; } || fail "write $f with TTL 3"
done
# A full stat: every attribute cached for 60 s (a close and a setxattr
# invalidate some), so the open and the read below reach the daemon
# without a getattr first (which would answer ENOENT).
stat "$S/r" "$S/d" >/dev/null
check_eq "both names known to the kernel" "$(stat -c %s "$S/r" "$S/d" | tr '\n' ' ')" "2 2 "
for i in $(seq 1 100); do
	[ "$(stat_value test objects)" -eq 0 ] && break
	sleep 0.1
done
check_eq "both expired (objects 0)" "$(stat_value test objects)" 0
rnf0=$(stat_value test client_read_not_found); dnf0=$(stat_value test client_delete_not_found)
# The open succeeds (the kernel holds the inode); the read finds no record
# and, as for a file truncated by someone else, returns end of file.
check_eq "cat of a record expired under a cached name reads nothing" "$(run cat "$S/r" 2>&1)" ""
check_eq "client_read_not_found moved by one" $(( $(stat_value test client_read_not_found) - rnf0 )) 1
expect_err "rm of a record expired under a cached name: ENOENT" "No such file or directory" rm "$S/d"
check_eq "client_delete_not_found moved by one" $(( $(stat_value test client_delete_not_found) - dnf0 )) 1
assert_serving

# Records that expire while the daemon is down (device engine): the cold
# start indexes the copy (so no older copy can win) but nothing shows it;
# nsup then deletes it durably, and it stays gone at the next start.
stop_daemon
cat >"$CONF" <<EOF
service: { work-directory: $WORK, ticker-interval: 0 }
logging: { file: $LOG, level: info }
namespaces:
  - name: test
    nsup-period: 1
    storage-engine: { type: device, files: [ $T/ttl.dat ], filesize: 64M, write-block-size: 128K, direct-io: false }
EOF
start_daemon
fl=$(daemon_fd_flags "$T/ttl.dat")
check_true "direct-io: false - the storage file is open, without O_DIRECT (flags $fl)" -n "$fl"
has_o_direct "$fl"
check_eq "... no O_DIRECT" "$?" 1
S=$MNT/test/down
mkdir "$S" || fail "mkdir $S"
echo keep >"$S/keep" || fail "write keep"
{ echo old >"$S/old" && setfattr -n user.recfs.ttl -v 2 "$S/old"; } || fail "write old with TTL 2"
stop_daemon
sleep 3
start_daemon
check_eq "expired while down: not listed" "$(ls "$S" | tr '\n' ' ')" "keep "
check_true "expired while down: no stat" ! -e "$S/old"
for i in $(seq 1 60); do
	[ "$(stat_value test expired_objects)" -ge 1 ] && break
	sleep 0.1
done
check_true "nsup deleted it after the start (expired_objects $(stat_value test expired_objects))" \
	"$(stat_value test expired_objects)" -ge 1
stop_daemon
start_daemon
check_eq "still gone after another restart" "$(ls "$S" | tr '\n' ' ')" "keep "
check_eq "the other file is intact" "$(run cat "$S/keep")" keep
assert_serving
finish
