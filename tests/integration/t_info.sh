#!/bin/bash
# t_info: the /.info statistics files (docs/statistics.md) - read-only,
# name=value lines, sizes that match what cat returns (so cp, rsync and tar
# copy them whole), df/df -i from the namespace's storage, and counters that
# move by exactly what a user did.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mount_default

I=$MNT/.info

# ---- the files -----------------------------------------------------------------
for f in statistics build node namespaces namespace/test namespace/other; do
	check_true ".info/$f exists" -f "$I/$f"
done
check_true ".info/build names the version" "$(run cat "$I/build" | grep -c '[0-9]\.[0-9]')" -ge 1
check_true ".info/node has a node id" "$(run cat "$I/node" | grep -ciE '[0-9a-f]{16}')" -ge 1
check_eq ".info/namespace lists both" "$(ls "$I/namespace" | tr '\n' ' ')" "other test "
for f in statistics namespace/test namespace/other; do
	txt=$(run cat "$I/$f")
	check_true ".info/$f is not empty" "$(printf '%s\n' "$txt" | wc -l)" -gt 3
	check_eq ".info/$f is name=value lines" "$(printf '%s\n' "$txt" | grep -cvE '^[][A-Za-z0-9_.:-]+=')" 0
	check_eq ".info/$f: stat size matches cat" "$(size_matches "$I/$f")" ok
done

# ---- read-only ----------------------------------------------------------------------
sh_err "echo x > .info/statistics" "Permission denied" 'echo x > "$1"' "$I/statistics"
expect_err "rm .info/statistics" "" rm -f "$I/statistics"
expect_err "rm .info/namespace/test" "" rm -f "$I/namespace/test"
expect_err "mv .info/build" "" mv "$I/build" "$I/build2"
check_true "files still there" -f "$I/statistics" -a -f "$I/namespace/test" -a -f "$I/build"

# ---- copying them whole ---------------------------------------------------------------
C=$T/copies
mkdir -p "$C"
expect_ok "cp .info/build" cp "$I/build" "$C/build.cp"
check_eq "cp gives the whole build file" "$(cat "$C/build.cp")" "$(run cat "$I/build")"
expect_ok "cp .info/statistics" cp "$I/statistics" "$C/stat.cp"
check_true "cp of statistics is not empty" -s "$C/stat.cp"
check_eq "cp of statistics: same names as cat" "$(cut -d= -f1 "$C/stat.cp")" "$(run cat "$I/statistics" | cut -d= -f1)"
expect_ok "rsync .info/statistics" rsync "$I/statistics" "$C/stat.rsync"
check_true "rsync of statistics is not empty" -s "$C/stat.rsync"
check_eq "rsync of statistics: same names as cat" "$(cut -d= -f1 "$C/stat.rsync")" "$(run cat "$I/statistics" | cut -d= -f1)"
expect_ok "tar -c .info" tar -cf "$C/info.tar" -C "$MNT" .info
mkdir -p "$C/untar" && tar -xf "$C/info.tar" -C "$C/untar"
check_true "tar of statistics is not empty" -s "$C/untar/.info/statistics"
check_eq "tar of statistics: same names as cat" "$(cut -d= -f1 "$C/untar/.info/statistics")" "$(run cat "$I/statistics" | cut -d= -f1)"
check_eq "tar of namespace/test: same names as cat" "$(cut -d= -f1 "$C/untar/.info/namespace/test")" "$(run cat "$I/namespace/test" | cut -d= -f1)"
# While a stats file is open, stat and fstat report the length of what the
# open descriptor reads, however the statistics move meanwhile (tar compares
# st_size before and after reading a file).
if [ "$HAVE_PYTHON" = yes ]; then
	mkdir -p "$MNT/test/open_snap"
	expect_ok "stat of an open stats file = what its descriptor reads" python3 -c '
import os, sys
path, d = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDONLY)
before = os.fstat(fd).st_size
for i in range(200):    # counters grow by digits, latency buckets appear
    with open("%s/r%d" % (d, i), "w") as f:
        f.write("x" * i)
mid = os.stat(path).st_size
data = b""
while True:
    b = os.read(fd, 65536)
    if not b:
        break
    data += b
after = os.fstat(fd).st_size
os.close(fd)
if not (before == mid == after == len(data)):
    sys.exit("sizes: at open %d, stat %d, fstat after reading %d, read %d" % (before, mid, after, len(data)))
' "$I/latencies" "$MNT/test/open_snap"
	rm -rf "$MNT/test/open_snap"
fi
check_eq "grep works on the stats file" "$(grep -c '^objects=' "$I/namespace/test")" 1
check_eq "head -c reads a prefix" "$(head -c 8 "$I/namespace/test" | wc -c)" 8

# ---- the main names of docs/statistics.md ----------------------------------------------
missing=""
# (every row of the table: t_observability)
for n in objects tombstones data_used_bytes data_total_bytes data_avail_pct \
	client_read_success client_write_success client_delete_success; do
	[ -n "$(stat_value test "$n")" ] || missing="$missing $n"
done
check_eq "namespace stats present (missing:$missing)" "$missing" ""
missing=""
for n in uptime cluster_size objects; do
	[ -n "$(node_value "$n")" ] || missing="$missing $n"
done
check_eq "node stats present (missing:$missing)" "$missing" ""
check_true "node stats have client_* counters" "$(run cat "$I/statistics" | grep -c '^client_')" -ge 1
check_true "node stats have fuse_* counters" "$(run cat "$I/statistics" | grep -c '^fuse_')" -ge 1
check_true "namespace stats include config (data-size or file-bin)" "$(run cat "$I/namespace/test" | grep -cE '(data-size|data_size|file-bin|file_bin)=')" -ge 1
check_eq "cluster_size 1" "$(node_value cluster_size)" 1
check_true "data_total_bytes > 0" "$(stat_value test data_total_bytes)" -gt 0
check_true "data_total_bytes of test >= 256M" "$(stat_value test data_total_bytes)" -ge 268435456
up1=$(node_value uptime)
sleep 1.1
check_true "uptime moves" "$(node_value uptime)" -gt "${up1:-0}"

# ---- counters move by what the user did -----------------------------------------------------
S=$MNT/test/st
mkdir "$S"
check_eq "objects 0 in a fresh namespace" "$(stat_value test objects)" 0
w0=$(stat_value test client_write_success)
u0=$(stat_value test data_used_bytes)
for i in 1 2 3 4 5; do echo "rec $i" >"$S/r$i"; done
check_eq "objects = 5 after 5 creates" "$(stat_value test objects)" 5
check_eq "node objects = 5" "$(node_value objects)" 5
w1=$(stat_value test client_write_success)
check_true "5 creates count 5..10 writes ($w0 -> $w1)" $((w1 - w0)) -ge 5 -a $((w1 - w0)) -le 10
u1=$(stat_value test data_used_bytes)
check_true "data_used_bytes grows with 5 records ($u0 -> $u1)" "${u1:-0}" -gt "${u0:-0}"

# one rewrite of an existing record = one write
w0=$(stat_value test client_write_success)
run python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.write(b"REC"); f.close()' "$S/r1"
check_eq "one open/write/close = 1 write" "$(($(stat_value test client_write_success) - w0))" 1
check_eq "the rewrite took" "$(cat "$S/r1")" "REC 1"

# one cat = one read
r0=$(stat_value test client_read_success)
cat "$S/r2" >/dev/null
check_eq "one cat = 1 read" "$(($(stat_value test client_read_success) - r0))" 1
r0=$(stat_value test client_read_success)
stat "$S/r3" >/dev/null
ls -l "$S" >/dev/null
check_eq "stat and ls -l read no record (index only)" "$(($(stat_value test client_read_success) - r0))" 0
r0=$(stat_value test client_read_success)
cat "$I/namespace/test" "$I/statistics" >/dev/null
check_eq "reading .info counts no client read" "$(($(stat_value test client_read_success) - r0))" 0

# one rm = one delete
d0=$(stat_value test client_delete_success)
rm "$S/r5"
check_eq "one rm = 1 delete" "$(($(stat_value test client_delete_success) - d0))" 1
check_eq "objects = 4 after rm" "$(stat_value test objects)" 4

# data_used_bytes follows the data
u0=$(stat_value test data_used_bytes)
head -c 500000 /dev/urandom >"$S/big"
u1=$(stat_value test data_used_bytes)
check_true "data_used_bytes grows by >= 500000 ($u0 -> $u1)" $((u1 - u0)) -ge 500000
check_true "data_used_bytes grows by < 600000 ($u0 -> $u1)" $((u1 - u0)) -lt 600000
rm "$S/big"
u2=$(stat_value test data_used_bytes)
check_true "data_used_bytes falls after rm ($u1 -> $u2)" "${u2:-0}" -lt "${u1:-0}"
check_eq "other namespace untouched" "$(stat_value other objects)" 0
pct=$(stat_value test data_avail_pct)
check_true "data_avail_pct in 0..100 ($pct)" "${pct:--1}" -ge 0 -a "${pct:--1}" -le 100

# a failing op counts an error, not a success
: >"$S/toobig"
setfattr -n user.a -v "$(head -c 60000 /dev/zero | tr '\0' a)" "$S/toobig" || bad "setfattr 60 KB"
w0=$(stat_value test client_write_success)
# 60 KB values until the record exceeds max-record-size: EFBIG
python3 -c '
import os, sys
try:
    for i in range(20):
        os.setxattr(sys.argv[1], "user.p%d" % i, bytes(60000))
except OSError:
    pass' "$S/toobig"
check_true "an EFBIG write is not a write success" "$(($(stat_value test client_write_success) - w0))" -le 16
ftb=$(stat_value test fail_record_too_big)
cwe=$(stat_value test client_write_error)
check_true "fail_record_too_big ($ftb) or client_write_error ($cwe) counted" $((${ftb:-0} + ${cwe:-0})) -ge 1

# ---- df and df -i ------------------------------------------------------------------------------
read -r total used avail <<<"$(df -B1 --output=size,used,avail "$MNT" | tail -n 1)"
check_true "df size of the mount > 0 ($total)" "${total:-0}" -gt 0
check_true "df avail of the mount > 0 ($avail)" "${avail:-0}" -gt 0
check_true "df size of the mount = sum of namespaces (>= 320M)" "${total:-0}" -ge $((320 * 1024 * 1024))
read -r nst nsa <<<"$(stat -f -c '%b %a' "$MNT/test" | awk '{ print $1, $2 }')"
bs=$(stat -f -c %S "$MNT/test")
check_true "statfs of a namespace > 0" "${nst:-0}" -gt 0
check_true "namespace size <= the mount's size" $((nst * bs)) -le "${total:-0}"
check_true "namespace test is about 256M" $((nst * bs)) -ge $((200 * 1024 * 1024))
oth=$(( $(stat -f -c '%b' "$MNT/other") * $(stat -f -c %S "$MNT/other") ))
check_true "namespace other is smaller than test" "$oth" -lt $((nst * bs))
read -r itotal iused <<<"$(df --output=itotal,iused "$MNT" | tail -n 1)"
check_true "df -i inodes > 0 ($itotal)" "${itotal:-0}" -gt 0
check_true "df -i used counts the records ($iused)" "${iused:-0}" -ge 4
check_true "df -h prints the mount" "$(df -h "$MNT" | grep -c "$MNT")" -eq 1

assert_serving
finish
