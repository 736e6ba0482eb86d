#!/bin/bash
# t_large: files larger than one record (issue 15, item 1): a head record at
# the file's name plus chunk records of file-chunk-size (docs/storage-format.md,
# Large files):
#   - the default file-chunk-size fills a 1 MiB write block: 1020 KiB;
#   - dd bs=1M count=64 and cmp; its size; 65 chunks, a commit per bound of
#     dirty chunks, daemon memory for dirty chunks bounded, and a sequential
#     read fetches each chunk about once, most of them ahead of the reader
#     in the background (fuse_chunk_prefetches), the reader waiting for few
#     of them, and for the chunks of a read after a jump
#     (fuse_chunk_read_waits, fuse_chunk_read_wait_time);
#   - a log appended line by line past several chunks, cmp;
#   - overwriting the middle (dd conv=notrunc), truncating down and up
#     (zeros), punching a hole: the same bytes as a local copy changed alike,
#     and the replaced chunks are gone;
#   - truncated and grown again before a commit: zeros where the cut chunks
#     were;
#   - rename keeps the chunks (none written), unlink and O_TRUNC drop them;
#   - a small file stays one record;
#   - sqlite3 grows a database past 20 MiB, PRAGMA integrity_check ok.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mount_default
S=$MNT/test/big
L=$T/local
mkdir "$S" "$L" || fail "mkdir"

ns() { stat_value test "$1"; }
fuse() { node_value "$1"; }

# ---- the default chunk size ----------------------------------------------------------------
# The largest multiple of 4K whose chunk record (header, key, bin) fits a
# 1M write block: one chunk per block, not a 512K chunk in a half-empty one.
check_eq "default file-chunk-size with 1M write blocks" \
	"$(run cat "$MNT/.info/config/namespaces/test/file-chunk-size")" 1020K
CS=$((1020 << 10))

# ---- dd 64 MiB -----------------------------------------------------------------------------
head -c $((64 << 20)) /dev/urandom >"$L/dd" || fail "random data"
c0=$(ns chunk_writes)
k0=$(fuse fuse_large_commits)
f0=$(fuse fuse_timed_stores)
expect_ok "dd bs=1M count=64 into the mount" dd if="$L/dd" of="$S/dd" bs=1M count=64 status=none
check_eq "its size" "$(stat -c %s "$S/dd")" $((64 << 20))
check_eq "64 MiB of 1020 KiB chunks: 65 chunk records" "$(ns objects_chunks)" 65
check_eq "objects_files counts the head once" "$(ns objects_files)" 1
# A commit at the dirty-chunk bound leaves the chunk being filled for the
# next one; a store by the flush-max-ms timer (a slow build) stores it too.
timed=$(( $(fuse fuse_timed_stores) - f0 ))
writes=$(( $(ns chunk_writes) - c0 ))
note "chunk writes: $writes, timed stores meanwhile: $timed"
check_true "every chunk written once (one more per timed store)" \
	"$writes" -ge 65 -a "$writes" -le $((65 + timed))
commits=$(( $(fuse fuse_large_commits) - k0 ))
note "commits while writing 64 MiB: $commits"
check_true "dirty chunks bounded: a commit per 8 MiB of dirty chunks (8 of 1020 KiB), not one at close" \
	"$commits" -ge 7
check_eq "no dirty chunk left after close" "$(fuse fuse_dirty_chunk_bytes)" 0
r0=$(ns chunk_reads)
p0=$(fuse fuse_chunk_prefetches)
w0=$(fuse fuse_chunk_read_waits)
u0=$(fuse fuse_chunk_read_wait_time)
expect_ok "cmp reads back what dd wrote" cmp "$L/dd" "$S/dd"
reads=$(( $(ns chunk_reads) - r0 ))
ahead=$(( $(fuse fuse_chunk_prefetches) - p0 ))
waits=$(( $(fuse fuse_chunk_read_waits) - w0 ))
waited_us=$(( $(fuse fuse_chunk_read_wait_time) - u0 ))
note "the reader waited for $waits of 65 chunks, $waited_us us in all"
check_true "the reader waits for its first chunk (read by its request), not for every chunk ($waits)" \
	"$waits" -ge 1 -a "$waits" -lt 65
check_true "the time it waited is counted ($waited_us us)" "$waited_us" -gt 0
# A jump (its pages dropped from the kernel's cache first): the request
# reads its chunks itself, and waits for them.
w0=$(fuse fuse_chunk_read_waits)
expect_ok "a 1 MiB read at 40 MiB, after a jump" python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
assert len(os.pread(fd, 1 << 20, 40 << 20)) == 1 << 20
os.close(fd)' "$S/dd"
waits=$(( $(fuse fuse_chunk_read_waits) - w0 ))
check_true "a read after a jump waits for its chunks (1-4: the kernel's read-ahead may add one; $waits)" \
	"$waits" -ge 1 -a "$waits" -le 4
note "chunk reads for a sequential read of 65 chunks: $reads, of them fetched ahead and used: $ahead"
check_true "a sequential read fetches each chunk about once (readahead)" "$reads" -le 130
check_true "a sequential reader's chunks are fetched ahead in the background (most of 65)" \
	"$ahead" -ge 33

# ---- a log appended past several chunks ------------------------------------------------------
for i in $(seq 1 4000); do
	printf 'log line %05d %0200d\n' "$i" 0
done >"$L/log"
while IFS= read -r line; do printf '%s\n' "$line" >>"$S/log"; done <"$L/log"
expect_ok "a log of 4000 appends (~830 KB, still one record) reads back" cmp "$L/log" "$S/log"
for i in $(seq 1 3); do cat "$L/log"; done >>"$L/log.3"
cat "$L/log.3" >>"$S/log"
cat "$L/log.3" >>"$L/log"
expect_ok "appended past several chunks (3.3 MB, 4 chunks) reads back" cmp "$L/log" "$S/log"

# ---- the head's chunk map is no xattr -------------------------------------------------------------
check_eq "getfattr -d lists no internal bin" "$(getfattr --absolute-names -d "$S/dd" 2>&1)" ""
expect_err "setfattr of an internal bin name is refused" "Operation not permitted" \
	setfattr -n user./chunks -v x "$S/dd"
expect_err "getfattr of it: no such attribute" "No such attribute" \
	getfattr --absolute-names -n user./chunks "$S/dd"
expect_ok "the file still reads right" cmp "$L/dd" "$S/dd"

# ---- changes in place ---------------------------------------------------------------------------
n0=$(ns objects_chunks)
head -c 3000000 /dev/urandom >"$L/patch"
dd if="$L/patch" of="$L/dd" bs=1000 seek=20000 conv=notrunc status=none
expect_ok "overwrite 3 MB in the middle (dd conv=notrunc)" \
	dd if="$L/patch" of="$S/dd" bs=1000 seek=20000 conv=notrunc status=none
expect_ok "the overwritten file equals its local copy" cmp "$L/dd" "$S/dd"
check_eq "replaced chunk versions are deleted (same number of chunks)" "$(ns objects_chunks)" "$n0"
truncate -s 10000001 "$L/dd"
expect_ok "truncate down to 10000001 bytes" truncate -s 10000001 "$S/dd"
check_eq "truncated size" "$(stat -c %s "$S/dd")" 10000001
check_eq "the chunks past the end are dropped" "$(ns objects_chunks)" $((n0 - 65 + (10000001 + CS - 1) / CS))
truncate -s 12000000 "$L/dd"
expect_ok "extend to 12000000 bytes" truncate -s 12000000 "$S/dd"
expect_ok "truncated then extended: zeros past the old end, as locally" cmp "$L/dd" "$S/dd"
fallocate -p -o 1000000 -l 2000000 "$L/dd"
expect_ok "punch a hole of 2 MB" fallocate -p -o 1000000 -l 2000000 "$S/dd"
expect_ok "the hole reads as zeros, as locally" cmp "$L/dd" "$S/dd"

# ---- truncated and grown again before a commit -------------------------------------------------------
# The committed chunks the truncation cut off read as zeros when the file
# grows over them again, before and after the commit (they were read back
# with their old bytes, and named again by the commit).
head -c $((5 << 20)) /dev/urandom >"$L/tg"
cp "$L/tg" "$S/tg" || bad "write a 5 MiB file"
out=$(run python3 - "$S/tg" "$L/tg" <<'PY'
import os, sys
res = []
for p in sys.argv[1:3]:
    fd = os.open(p, os.O_RDWR)
    os.ftruncate(fd, 400000)
    os.pwrite(fd, b"x", 3211836)
    os.ftruncate(fd, 2429179)
    before = os.pread(fd, 3 << 20, 0)
    os.fsync(fd)
    os.close(fd)
    res.append((before, open(p, "rb").read()))
print("same" if res[0] == res[1] else "differ")
PY
)
check_eq "truncated, grown by a write, truncated again: zeros where the cut chunks were" "$out" same
expect_ok "after the commit too (cmp)" cmp "$L/tg" "$S/tg"
expect_ok "rm it" rm "$S/tg"

# ---- the largest file ------------------------------------------------------------------------------
# (1 MiB records, 1020 KiB chunks: the head's map names (1048576 - 600 - 32) / 4
# chunks, about 254 GiB.)
expect_err "truncate -s 300G: past what a chunk map can name" "File too large" truncate -s 300G "$S/dd"
expect_err "a byte written at 300 GiB" "File too large" \
	dd if=/dev/zero of="$S/dd" bs=1 count=1 seek=$((300 << 30)) conv=notrunc status=none
check_eq "the file is unchanged" "$(stat -c %s "$S/dd")" 12000000
expect_ok "a byte at 250 GiB (a sparse file: holes cost no chunk)" \
	dd if=/dev/zero of="$S/sparse" bs=1 count=1 seek=$((250 << 30)) conv=notrunc status=none
check_eq "its size" "$(stat -c %s "$S/sparse")" $(((250 << 30) + 1))
expect_ok "rm it" rm "$S/sparse"

# ---- rename, unlink, O_TRUNC ---------------------------------------------------------------------
n1=$(ns objects_chunks)
w1=$(ns chunk_writes)
expect_ok "rename a large file" mv "$S/dd" "$S/dd2"
check_eq "rename writes no chunk" "$(ns chunk_writes)" "$w1"
check_eq "rename keeps its chunks" "$(ns objects_chunks)" "$n1"
expect_ok "the renamed file reads the same" cmp "$L/dd" "$S/dd2"
cp "$L/log" "$S/victim"
n2=$(ns objects_chunks)
expect_ok "rename over another large file" mv "$S/victim" "$S/log"
check_true "the replaced file's chunks are dropped" "$(ns objects_chunks)" -lt "$n2"
expect_ok "the file renamed over it reads right" cmp "$L/log" "$S/log"
expect_ok "O_TRUNC of a large file (: >)" sh -c ": > '$S/dd2'"
check_eq "O_TRUNC: size 0" "$(stat -c %s "$S/dd2")" 0
expect_ok "rm the log" rm "$S/log"
check_eq "after O_TRUNC and unlink no chunk is left" "$(ns objects_chunks)" 0

# ---- unlinked or replaced while open -----------------------------------------------------------
# As on a local file system, a descriptor keeps reading the file it opened.
head -c $((5 << 20)) /dev/urandom >"$L/open"
cp "$L/open" "$S/open1"
cp "$L/open" "$S/open2"
head -c 1000 /dev/urandom >"$S/repl"
n3=$(ns objects_chunks)
out=$(run python3 - "$S/open1" "$S/open2" "$S/repl" "$L/open" <<'PY'
import os, sys
a, b, repl, want = sys.argv[1:5]
want = open(want, "rb").read()
fa, fb = open(a, "rb"), open(b, "rb")
head = fa.read(4096) + fb.read(4096)
os.unlink(a)                  # unlinked under its reader
os.rename(repl, b)            # replaced under its reader
ok = fa.read() == want[4096:] and fb.read() == want[4096:] and head == want[:4096] * 2
fa.close(); fb.close()
print("same" if ok else "differ")
PY
)
check_eq "readers of a large file unlinked or replaced under them read it whole" "$out" same
check_eq "its chunks are gone once they closed (2 x 6)" "$(ns objects_chunks)" $((n3 - 12))

# ---- a small file stays one record -------------------------------------------------------------
o0=$(ns objects)
head -c 100000 /dev/urandom >"$L/small"
cp "$L/small" "$S/small"
check_eq "a 100 KB file is one record" $(( $(ns objects) - o0 )) 1
check_eq "and has no chunk" "$(ns objects_chunks)" 0
expect_ok "its content" cmp "$L/small" "$S/small"

# ---- sqlite ----------------------------------------------------------------------------------------
if command -v sqlite3 >/dev/null 2>&1; then
	DB=$S/test.db
	expect_ok "sqlite3 grows a database past 20 MiB" sqlite3 "$DB" \
		"CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
		 WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000)
		 INSERT INTO t(v) SELECT randomblob(4500) FROM c;
		 CREATE INDEX tv ON t(substr(v, 1, 16));
		 UPDATE t SET v = randomblob(4000) WHERE id % 7 = 0;
		 DELETE FROM t WHERE id % 11 = 0;"
	size=$(stat -c %s "$DB")
	note "database size: $size bytes"
	check_true "the database is past 20 MiB" "$size" -gt $((20 << 20))
	check_eq "PRAGMA integrity_check" "$(run sqlite3 "$DB" 'PRAGMA integrity_check;')" ok
	check_eq "its rows (5000 - 454 deleted)" "$(run sqlite3 "$DB" 'SELECT count(*) FROM t;')" 4546
else
	bad "sqlite3 is not installed (scripts/install-deps.sh installs it)"
fi
assert_serving
finish
