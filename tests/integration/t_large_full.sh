#!/bin/bash
# t_large_full: the large-file checks of issue 15 at full size, run by hand
# (not in make check's list: about 3-5 minutes and 6 GiB of disk):
#   top_srcdir=. top_builddir=build tests/integration/t_large_full.sh
# On the device engine (a sparse 16 GiB storage file in LARGE_DIR, default
# /var/tmp: a disk, for O_DIRECT; post-write-cache 0, max-write-cache 8M):
#   - a 4 GiB file written with dd bs=1M from a seeded stream (openssl
#     aes-128-ctr of zeros) and read back with cmp against the same stream;
#     the daemon's peak RSS (VmHWM) grows by less than 24 MiB over its RSS
#     before the write (the bound t_large_memory asserts for 512 MiB);
#   - sqlite3 grows a database past 200 MiB (inserts, an index, updates,
#     deletes), PRAGMA integrity_check ok, the row count as computed;
#   - a log appended to 1 GiB by a program that opens it O_APPEND and
#     writes 1 KiB lines, flushing every 256: its sha256 equals the lines'.
# The rates are printed (dd's own figures, the read's with the file's pages
# dropped first), for docs/benchmarks.md; the
# comparison with fio is recfs-bench's `large` group.
ITEST_TIMEOUT=${ITEST_TIMEOUT:-1200}
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

command -v openssl >/dev/null 2>&1 || { echo "SKIP: $ITEST_NAME needs openssl"; exit 77; }
command -v sqlite3 >/dev/null 2>&1 || { echo "SKIP: $ITEST_NAME needs sqlite3"; exit 77; }
[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3"; exit 77; }
DIR=$(mktemp -d "${LARGE_DIR:-/var/tmp}/recfs-large-full.XXXXXX") || fail "mktemp in ${LARGE_DIR:-/var/tmp}"
# the storage file is this test's to remove, also on failure (the cleanup
# gets the test's exit status)
trap 'rc=$?; rm -rf "$DIR"; (exit $rc); itest_cleanup' EXIT
write_device_config "$DIR/test.dat" "filesize: 16G" "post-write-cache: 0" "max-write-cache: 8M"
start_daemon
S=$MNT/test/big
mkdir "$S" || fail "mkdir $S"
kib() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$DAEMON_PID/status"; }
stream() { openssl enc -aes-128-ctr -nosalt -pass pass:t_large_full -pbkdf2 </dev/zero 2>/dev/null; }

# ---- 4 GiB with dd ---------------------------------------------------------------------------
rss0=$(kib VmRSS)
out=$( { stream | dd of="$S/f4g" bs=1M count=4096 iflag=fullblock; } 2>&1)
rc=$?
check_eq "dd bs=1M count=4096 into the mount" "$rc" 0
note "write: $(echo "$out" | tail -n 1)"
check_eq "its size" "$(stat -c %s "$S/f4g")" $((4096 << 20))
hwm_w=$(kib VmHWM)
# its pages out of the kernel's cache, then a sequential read for the rate
python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$S/f4g"
out=$(dd if="$S/f4g" of=/dev/null bs=1M 2>&1) || bad "dd read of the 4 GiB file"
note "read: $(echo "$out" | tail -n 1)"
if cmp <(stream | head -c $((4096 << 20))) "$S/f4g"; then
	pass "cmp reads the 4 GiB back, every byte as written"
else
	bad "cmp of the 4 GiB file"
fi
hwm_r=$(kib VmHWM)
note "RSS before ${rss0} KiB; peak writing ${hwm_w} KiB, peak reading ${hwm_r} KiB"
if sanitized_build; then
	note "sanitizer build: RSS bound not checked"
else
	check_true "peak RSS grows < 24 MiB over 4 GiB written and read (grew $(( (hwm_r - rss0) >> 10 )) MiB)" \
		$((hwm_r - rss0)) -lt $((24 << 10))
fi
expect_ok "rm of the 4 GiB file" rm "$S/f4g"

# ---- sqlite past 200 MiB ---------------------------------------------------------------------
DB=$S/test.db
expect_ok "sqlite3 grows a database past 200 MiB" sqlite3 "$DB" \
	"CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
	 WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000)
	 INSERT INTO t(v) SELECT randomblob(4500) FROM c;
	 CREATE INDEX tv ON t(substr(v, 1, 16));
	 UPDATE t SET v = randomblob(4000) WHERE id % 7 = 0;
	 DELETE FROM t WHERE id % 11 = 0;"
size=$(stat -c %s "$DB")
note "database size: $size bytes"
check_true "the database is past 200 MiB" "$size" -gt $((200 << 20))
check_eq "PRAGMA integrity_check" "$(run sqlite3 "$DB" 'PRAGMA integrity_check;')" ok
check_eq "its rows (50000 - 4545 deleted)" "$(run sqlite3 "$DB" 'SELECT count(*) FROM t;')" 45455

# ---- a log appended to 1 GiB -------------------------------------------------------------------
sum=$(python3 - "$S/app.log" <<'PY'
import hashlib, os, sys
h = hashlib.sha256()
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
buf = []
for i in range(1 << 20):                     # 1 KiB lines: 1 GiB
    line = b"%010d " % i + b"x" * 1012 + b"\n"
    h.update(line)
    buf.append(line)
    if len(buf) == 256:
        os.write(fd, b"".join(buf))
        buf = []
os.close(fd)
print(h.hexdigest())
PY
)
check_eq "the log is 1 GiB" "$(stat -c %s "$S/app.log")" $((1 << 30))
check_eq "the log's sha256 is that of the lines appended" "$(run sha256sum <"$S/app.log" | cut -c1-64)" "$sum"

check_eq "no dirty chunk left" "$(node_value fuse_dirty_chunk_bytes)" 0
stop_daemon || bad "clean shutdown"
finish
