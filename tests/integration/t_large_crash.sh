#!/bin/bash
# t_large_crash: large files (issue 15, item 1) on the device engine across
# a SIGKILL and a restart:
#   - SIGKILL while 3 large files are rewritten over and over: after the
#     restart each file is one of its committed versions (by content hash),
#     never a mix of two; the chunks the crash left unnamed are reclaimed at
#     the start (chunks_reclaimed; objects_chunks = what the heads name) and
#     recfs-check finds the storage clean with no orphaned chunk;
#   - a chunk that fails its check: EIO for that chunk's range (logged, with
#     the chunk's key), the rest of the file is served.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

CHECK=$top_builddir/recfs-check
[ -x "$CHECK" ] || fail "$CHECK not built"
DAT=$T/test.dat
V=$T/versions
mkdir "$V" || fail "mkdir"
# flush-max-ms 60000: only close commits a file (a version this test knows).
write_device_config "$DAT" "filesize: 256M" "flush-max-ms: 60000"
start_daemon
S=$MNT/test/crash
mkdir "$S" || fail "mkdir $S"
ns() { stat_value test "$1"; }

# ---- SIGKILL during rewrites --------------------------------------------------------------
# 3 files of 3 MiB (6 chunks of 512 KiB), 8 versions each.
for f in a b c; do
	for i in 0 1 2 3 4 5 6 7; do
		head -c $((3 << 20)) /dev/urandom >"$V/$f.$i"
		sha256sum <"$V/$f.$i" | cut -c1-64 >>"$V/$f.sums"
	done
	cp "$V/$f.0" "$S/$f" || bad "write version 0 of $f"
done
sync "$S/a" "$S/b" "$S/c"
# Rewrite in place (the chunks change, the file id stays) and by O_TRUNC.
rewrite() {
	local f=$1 i
	while :; do
		for i in 1 2 3 4 5 6 7; do
			if [ $((i % 2)) = 0 ]; then
				cp "$V/$f.$i" "$S/$f" 2>/dev/null || return 0
			else
				dd if="$V/$f.$i" of="$S/$f" bs=1M conv=notrunc status=none 2>/dev/null || return 0
			fi
		done
	done
}
rewrite a & RA=$!
rewrite b & RB=$!
rewrite c & RC=$!
sleep 2
w=$(ns chunk_writes)
note "chunk writes before the kill: $w"
check_true "the rewriters committed chunks" "${w:-0}" -gt 60
crash_daemon || fail "could not detach the dead mount"
wait $RA $RB $RC
orphans=$("$CHECK" "$DAT" 2>&1 | sed -n 's/.*orphaned chunks: \([0-9]*\).*/\1/p')
note "recfs-check after the kill: ${orphans:-?} orphaned chunks"
start_daemon
for f in a b c; do
	h=$(run sha256sum <"$S/$f" | cut -c1-64)
	if grep -qx "$h" "$V/$f.sums"; then
		pass "$f after SIGKILL is one of its committed versions"
	else
		bad "$f after SIGKILL is no committed version (size $(stat -c %s "$S/$f"))"
	fi
done
# The reclaimer runs at the start: wait for it (5 s at most).
for i in $(seq 1 50); do [ "$(ns objects_chunks)" = 18 ] && break; sleep 0.1; done
check_eq "only the chunks the 3 heads name are left (3 x 6)" "$(ns objects_chunks)" 18
note "chunks reclaimed at the start: $(ns chunks_reclaimed)"
check_eq "the reclaimer deleted exactly the orphans recfs-check reported" "$(ns chunks_reclaimed)" "$orphans"
stop_daemon || bad "clean stop"
out=$("$CHECK" "$DAT" 2>&1)
check_eq "recfs-check: clean after the reclaim" "$?" 0
check_true "recfs-check: 18 chunks, no orphaned chunk" "$(echo "$out" | grep -c 'chunks: 18, orphaned chunks: 0')" -eq 1
note "$(echo "$out" | grep -i chunk)"

# ---- a chunk that fails its check ---------------------------------------------------------
start_daemon
# 4 chunks; chunk 2 starts with a marker the test finds on storage.
python3 -c '
import os, sys
data = bytearray(os.urandom(2 << 20))
data[1 << 20:(1 << 20) + 32] = b"recfs-t_large_crash-chunk-2-mark"
open(sys.argv[1], "wb").write(data)' "$T/dmg" || fail "python3"
cp "$T/dmg" "$S/dmg" || bad "write the file to damage"
stop_daemon || bad "clean stop"
python3 -c '
import sys
mark = b"recfs-t_large_crash-chunk-2-mark"
with open(sys.argv[1], "r+b") as f:
    data = f.read()
    at = data.find(mark)
    if at < 0 or data.find(mark, at + 1) >= 0:
        sys.exit("marker found %d times" % data.count(mark))
    f.seek(at + 1000)
    b = f.read(1)
    f.seek(at + 1000)
    f.write(bytes([b[0] ^ 0xff]))' "$DAT" || fail "could not damage the chunk on storage"
start_daemon
expect_err "reading the damaged chunk's range: EIO" "Input/output error" \
	dd if="$S/dmg" of=/dev/null bs=64k skip=16 count=8 status=none
expect_ok "the range before it is served" sh -c "dd if='$S/dmg' bs=1M count=1 status=none | cmp -n 1048576 - '$T/dmg'"
dd if="$T/dmg" of="$T/dmg.tail" bs=512k skip=3 status=none
expect_ok "the range after it is served" sh -c \
	"dd if='$S/dmg' bs=512k skip=3 status=none | cmp - '$T/dmg.tail'"
check_true "the damaged chunk is logged with its key" \
	"$(grep -c 'chunk /k[0-9a-f]*/00000002\.[0-9a-f]* .*cannot be read' "$LOG")" -ge 1
check_true "chunk_read_errors counted" "$(ns chunk_read_errors)" -ge 1
expect_ok "overwriting the damaged range heals the file" \
	dd if="$T/dmg" of="$S/dmg" bs=512k skip=2 seek=2 count=1 conv=notrunc status=none
expect_ok "then the whole file reads" cmp "$T/dmg" "$S/dmg"
assert_serving
finish
