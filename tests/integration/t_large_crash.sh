#!/bin/bash
# t_large_crash: large files (issue 15, item 1) on the device engine across
# a SIGKILL and a restart:
#   - SIGKILL while 3 large files are rewritten over and over: after the
#     restart each file is one of its committed versions (by content hash),
#     never a mix of two; the chunks the crash left unnamed are reclaimed at
#     the start (chunks_reclaimed; objects_chunks = what the heads name) and
#     recfs-check finds the storage clean with no orphaned chunk;
#   - a chunk that fails its check: EIO for that chunk's range (logged, with
#     the chunk's key), the rest of the file is served; a sequential reader
#     reaching it (the chunk was fetched ahead in the background) fails once,
#     counted once in chunk_read_errors and logged once.
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
# 3 files of 3 MiB (4 chunks of 1020 KiB, the last one 12 KiB), 8 versions each.
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
for i in $(seq 1 50); do [ "$(ns objects_chunks)" = 12 ] && break; sleep 0.1; done
check_eq "only the chunks the 3 heads name are left (3 x 4)" "$(ns objects_chunks)" 12
note "chunks reclaimed at the start: $(ns chunks_reclaimed)"
check_eq "the reclaimer deleted exactly the orphans recfs-check reported" "$(ns chunks_reclaimed)" "$orphans"
stop_daemon || bad "clean stop"
out=$("$CHECK" "$DAT" 2>&1)
check_eq "recfs-check: clean after the reclaim" "$?" 0
check_true "recfs-check: 12 chunks, no orphaned chunk" "$(echo "$out" | grep -c 'chunks: 12, orphaned chunks: 0')" -eq 1
note "$(echo "$out" | grep -i chunk)"

# ---- a chunk that fails its check ---------------------------------------------------------
start_daemon
CS=$(run cat "$MNT/.info/config/namespaces/test/file-chunk-size")
check_eq "the default chunk size" "$CS" 1020K
CS=$((1020 << 10))
# 5 chunks; chunk 2 starts with a marker the test finds on storage.
python3 -c '
import os, sys
cs = int(sys.argv[2])
data = bytearray(os.urandom(5 * cs))
data[2 * cs:2 * cs + 32] = b"recfs-t_large_crash-chunk-2-mark"
open(sys.argv[1], "wb").write(data)' "$T/dmg" "$CS" || fail "python3"
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
logged() { grep -c 'chunk /k[0-9a-f]*/00000002\.[0-9a-f]* .*cannot be read' "$LOG"; }
# A sequential reader, one chunk per read(2) without the page cache: chunk 0,
# then chunk 1 starts fetching 2.. ahead in the background; the read of
# chunk 2 takes that fetch's failure.
e0=$(ns chunk_read_errors)
r0=$(ns chunk_reads)
expect_err "a sequential read stops at the damaged chunk with EIO" "Input/output error" \
	dd if="$S/dmg" of="$T/seq" bs=$CS iflag=direct status=none
check_eq "the chunks before it were read" "$(stat -c %s "$T/seq")" $((2 * CS))
# Chunks 3 and 4, never asked for, are fetched ahead with chunk 2 - unless
# the reader's close after its EIO came first (4 fetchers: one of them was
# dropped once, CI); chunk 2's failure is no read.
for i in $(seq 1 20); do [ $(( $(ns chunk_reads) - r0 )) -ge 4 ] && break; sleep 0.1; done
reads=$(( $(ns chunk_reads) - r0 ))
note "chunk reads for the sequential read: $reads (0, 1 and what was fetched ahead of 3, 4)"
check_true "chunks 0 and 1 read, at most 3 and 4 besides (chunk_reads: never chunk 2; $reads)" \
	"$reads" -ge 2 -a "$reads" -le 4
check_eq "one failed chunk read counts once in chunk_read_errors" $(( $(ns chunk_read_errors) - e0 )) 1
check_eq "and is logged once" "$(logged)" 1
expect_err "reading the damaged chunk's range: EIO" "Input/output error" \
	dd if="$S/dmg" of=/dev/null bs=4k skip=$((2 * CS / 4096 + 16)) count=8 status=none
expect_ok "the range before it is served" sh -c \
	"dd if='$S/dmg' bs=$CS count=2 status=none | cmp -n $((2 * CS)) - '$T/dmg'"
dd if="$T/dmg" of="$T/dmg.tail" bs=$CS skip=3 status=none
expect_ok "the range after it is served" sh -c \
	"dd if='$S/dmg' bs=$CS skip=3 status=none | cmp - '$T/dmg.tail'"
check_true "the damaged chunk is logged with its key" "$(logged)" -ge 2
check_true "chunk_read_errors counted" "$(ns chunk_read_errors)" -ge 2
expect_ok "overwriting the damaged range heals the file" \
	dd if="$T/dmg" of="$S/dmg" bs=$CS skip=2 seek=2 count=1 conv=notrunc status=none
expect_ok "then the whole file reads" cmp "$T/dmg" "$S/dmg"
assert_serving
finish
