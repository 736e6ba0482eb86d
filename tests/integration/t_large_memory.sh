#!/bin/bash
# t_large_memory: large files (issue 15, item 1) are written and read with
# bounded daemon memory beyond the caches (docs/architecture.md, Large files):
#   - the default chunk fills a 1 MiB write block: a 4 MiB file takes 5
#     write blocks (4 chunks of 1020 KiB, one of 16 KiB and the head), not 8
#     half-empty ones as 512 KiB chunks did;
#   - on the device engine with its caches small (post-write-cache 0,
#     max-write-cache 8M), dd writes a 512 MiB file (1020 KiB chunks,
#     1 MiB FUSE writes) and reads it back: the daemon's peak RSS (VmHWM)
#     grows by less than 24 MiB over its RSS before the write - the dirty
#     chunks (8 MiB per file), the free-buffer pool and the engine's write
#     buffers, not glibc heaps keeping the freed chunk-sized buffers of
#     every layer (before the periodic trim: +40 MiB for 512 MiB, +58 MiB
#     for 1 GiB, growing with the size);
#   - the file reads back identical (cmp).
# In a sanitizer build the RSS figures are printed, not checked: ASan keeps
# freed memory in its own quarantine (256 MiB) whatever glibc would do.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

DAT=$T/test.dat
L=$T/local
mkdir "$L" || fail "mkdir"
write_device_config "$DAT" "filesize: 2G" "post-write-cache: 0" "max-write-cache: 8M"
start_daemon
S=$MNT/test/big
mkdir "$S" || fail "mkdir $S"
kib() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$DAEMON_PID/status"; }

head -c $((512 << 20)) /dev/urandom >"$L/f" || fail "random data"
# One small large file first: the pool and the engine's buffers exist.
free0=$(stat_value test free_wblocks)
expect_ok "dd of a 4 MiB file (warm-up)" dd if="$L/f" of="$S/warm" bs=1M count=4 status=none
used=$((free0 - $(stat_value test free_wblocks)))
note "write blocks taken by a 4 MiB file: $used"
check_true "a 4 MiB file takes 4-5 write blocks of 1 MiB (one chunk fills one), not 7-8 ($used)" \
	"$used" -ge 4 -a "$used" -le 5
rss0=$(kib VmRSS)
expect_ok "dd bs=1M of 512 MiB into the mount" dd if="$L/f" of="$S/f" bs=1M status=none
hwm_w=$(kib VmHWM)
rss_w=$(kib VmRSS)
expect_ok "cmp reads the 512 MiB back" cmp "$L/f" "$S/f"
hwm_r=$(kib VmHWM)
rss_r=$(kib VmRSS)
note "RSS before ${rss0} KiB; writing 512 MiB: peak ${hwm_w} KiB, after ${rss_w} KiB;" \
	"reading it: peak ${hwm_r} KiB, after ${rss_r} KiB"
if sanitized_build; then
	note "sanitizer build: RSS bounds not checked (ASan's quarantine holds freed memory)"
else
	check_true "peak RSS while writing 512 MiB grows < 24 MiB (grew $(( (hwm_w - rss0) >> 10 )) MiB)" \
		$((hwm_w - rss0)) -lt $((24 << 10))
	check_true "peak RSS while reading it back grows < 24 MiB (grew $(( (hwm_r - rss0) >> 10 )) MiB)" \
		$((hwm_r - rss0)) -lt $((24 << 10))
	check_true "RSS after both back within 24 MiB of before (now $(( (rss_r - rss0) >> 10 )) MiB more)" \
		$((rss_r - rss0)) -lt $((24 << 10))
fi
check_eq "no dirty chunk left after close" "$(node_value fuse_dirty_chunk_bytes)" 0

stop_daemon || bad "clean shutdown"
finish
