#!/bin/bash
# t_large_readers: many readers of one large file at once, on the device
# engine with the post-write cache off (docs/architecture.md, Large files:
# chunks fetched ahead, replies sent from their slots without the inode
# lock while fetches end):
#   - 4 sequential readers (1 MiB reads, each its own open, pages dropped
#     first) and 2 random readers (256 KiB at random offsets) of one 40 MiB
#     file at once: every byte as written;
#   - the same while a writer rewrites random ranges of the file with the
#     bytes they already hold, with an fsync after each (every fsync a commit
#     replacing chunks the readers' snapshots name: they move to the new
#     head): every byte as written, no chunk read error, the daemon serves
#     on and stops cleanly.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

DAT=$T/test.dat
L=$T/local
mkdir "$L" || fail "mkdir"
write_device_config "$DAT" "filesize: 512M" "post-write-cache: 0"
start_daemon
S=$MNT/test/big
mkdir "$S" || fail "mkdir $S"
head -c $((40 << 20)) /dev/urandom >"$L/f" || fail "random data"
expect_ok "dd bs=1M of 40 MiB into the mount" dd if="$L/f" of="$S/f" bs=1M status=none
# A fresh mount: nothing of the file in the kernel's page cache.
stop_daemon || bad "clean shutdown"
start_daemon

cat >"$T/reader.py" <<'EOF'
import os, random, sys
mode, path, local = sys.argv[1], sys.argv[2], sys.argv[3]
want = open(local, "rb").read()
fd = os.open(path, os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
if mode == "seq":
    off = 0
    while off < len(want):
        got = os.pread(fd, 1 << 20, off)
        if got != want[off:off + len(got)] or not got:
            sys.exit("sequential read differs at %d" % off)
        off += len(got)
else:
    rnd = random.Random(int(sys.argv[4]))
    for _ in range(120):
        off = rnd.randrange(0, len(want) - (256 << 10))
        if os.pread(fd, 256 << 10, off) != want[off:off + (256 << 10)]:
            sys.exit("random read differs at %d" % off)
os.close(fd)
EOF
cat >"$T/rewriter.py" <<'EOF'
import os, random, sys
path, local = sys.argv[1], sys.argv[2]
want = open(local, "rb").read()
rnd = random.Random(7)
fd = os.open(path, os.O_WRONLY)
for _ in range(12):
    off = rnd.randrange(0, len(want) - (3 << 20))
    os.pwrite(fd, want[off:off + (3 << 20)], off)
    os.fsync(fd)
os.close(fd)
EOF

# readers [WRITER]: start the readers (and the rewriter), wait for each by pid.
readers() {
	local pids="" p i failed=0
	for i in 1 2 3 4; do
		run python3 "$T/reader.py" seq "$S/f" "$L/f" &
		pids="$pids $!"
	done
	for i in 1 2; do
		run python3 "$T/reader.py" rnd "$S/f" "$L/f" "$i" &
		pids="$pids $!"
	done
	if [ -n "${1:-}" ]; then
		run python3 "$T/rewriter.py" "$S/f" "$L/f" &
		pids="$pids $!"
	fi
	for p in $pids; do
		wait "$p" || failed=$((failed + 1))
	done
	echo "$failed"
}

e0=$(stat_value test chunk_read_errors)
p0=$(node_value fuse_chunk_prefetches)
check_eq "4 sequential and 2 random readers at once read what was written (failed readers)" \
	"$(readers)" 0
ahead=$(( $(node_value fuse_chunk_prefetches) - p0 ))
note "chunks fetched ahead and used: $ahead"
check_true "chunks were fetched ahead for them ($ahead)" "$ahead" -ge 20
c0=$(node_value fuse_large_commits)
check_eq "the same while a writer commits rewrites of the bytes there (failed readers and writer)" \
	"$(readers write)" 0
commits=$(( $(node_value fuse_large_commits) - c0 ))
check_true "the writer committed meanwhile ($commits commits)" "$commits" -ge 12
check_eq "no chunk read error" "$(( $(stat_value test chunk_read_errors) - e0 ))" 0
expect_ok "the file reads back identical afterwards" cmp "$L/f" "$S/f"
stop_daemon || bad "clean shutdown"
finish
