#!/bin/bash
# t_large_readahead: the mount's read-ahead window (fuse.read-ahead,
# docs/architecture.md, Large files).  The kernel gives a FUSE mount 128 KiB
# of read-ahead whatever the daemon asks at INIT, so `cat` of a large file
# was 4-8 FUSE reads per MiB; recfsd (as root) sets the window in sysfs:
#   - by default 1 MiB: /sys/class/bdi/MAJOR:MINOR/read_ahead_kb of the mount
#     is 1024, the statistic fuse_read_ahead_bytes says so, the log too;
#   - a sequential `cat` of a 48 MiB large file (on a fresh mount: nothing
#     of it cached) is about one FUSE read per MiB, and the kernel's requests
#     in flight, answered in any order by the daemon's threads, still fetch
#     each chunk once, nearly all of them ahead of the reader;
#   - fuse.read-ahead: 2M gives 2048; 0 leaves the kernel's 128;
#   - where the write is refused (as for a user other than root; here /sys
#     read-only in a mount namespace of the test's own), the mount comes up
#     all the same with the kernel's 128 KiB, and the log says why.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

[ "$(id -u)" -eq 0 ] || { echo "SKIP: $ITEST_NAME: only root may set a mount's read_ahead_kb"; exit 77; }

if [ "${1:-}" = --sys-read-only ]; then
	# Run by the end of this test inside `unshare -m` with /sys read-only.
	mount_default
	check_eq "refused: read_ahead_kb stays the kernel's" \
		"$(cat "/sys/class/bdi/$(mountpoint -d "$MNT")/read_ahead_kb")" 128
	check_eq "refused: fuse_read_ahead_bytes says so" "$(node_value fuse_read_ahead_bytes)" $((128 << 10))
	check_eq "refused: logged once" "$(grep -c 'read-ahead: cannot write /sys/class/bdi/.*the kernel.s 128 KiB stays' "$LOG")" 1
	echo data >"$MNT/test/f" && check_eq "refused: the mount serves" "$(run cat "$MNT/test/f")" data
	stop_daemon || bad "clean shutdown"
	finish
fi

DAT=$T/test.dat
L=$T/local
mkdir "$L" || fail "mkdir"
write_device_config "$DAT" "filesize: 512M" "post-write-cache: 0"
start_daemon
S=$MNT/test/big
mkdir "$S" || fail "mkdir $S"
ra_kb() { cat "/sys/class/bdi/$(mountpoint -d "$MNT")/read_ahead_kb"; }
# set_read_ahead VALUE: the config with fuse.read-ahead VALUE
set_read_ahead() {
	sed -i "/^  read-ahead:/d; s/^  threads: 8\$/  threads: 8\n  read-ahead: $1/" "$CONF"
}

check_eq "read_ahead_kb of the mount by default" "$(ra_kb)" 1024
check_eq "fuse_read_ahead_bytes says it" "$(node_value fuse_read_ahead_bytes)" $((1 << 20))
check_true "the log says what was set" "$(grep -c 'read-ahead: 1024 KiB set in /sys/class/bdi/' "$LOG")" -ge 1

head -c $((48 << 20)) /dev/urandom >"$L/f" || fail "random data"
expect_ok "dd bs=1M of 48 MiB into the mount" dd if="$L/f" of="$S/f" bs=1M status=none
# A fresh mount: none of the file in the kernel's page cache.
stop_daemon || bad "clean shutdown"
start_daemon
r0=$(node_value fuse_read)
k0=$(stat_value test chunk_reads)
p0=$(node_value fuse_chunk_prefetches)
expect_ok "cat reads the 48 MiB back (cmp)" sh -c "cat '$S/f' | cmp - '$L/f'"
reads=$(( $(node_value fuse_read) - r0 ))
chunks=$(( $(stat_value test chunk_reads) - k0 ))
ahead=$(( $(node_value fuse_chunk_prefetches) - p0 ))
note "cat of 48 MiB: $reads FUSE reads, $chunks chunk reads (49 chunks), $ahead of them fetched ahead"
check_true "about one FUSE read per MiB, not 4-8 ($reads for 48 MiB)" "$reads" -le 60
check_true "each of the 49 chunks read once, in-flight requests answered in any order ($chunks)" \
	"$chunks" -le 51
check_true "nearly all chunks fetched ahead of the reader ($ahead of 49)" "$ahead" -ge 45
stop_daemon || bad "clean shutdown"

set_read_ahead 2M
start_daemon
check_eq "fuse.read-ahead: 2M" "$(ra_kb)" 2048
check_eq "fuse_read_ahead_bytes with 2M" "$(node_value fuse_read_ahead_bytes)" $((2 << 20))
stop_daemon || bad "clean shutdown"

set_read_ahead 0
start_daemon
check_eq "fuse.read-ahead: 0 leaves the kernel's 128 KiB" "$(ra_kb)" 128
check_eq "fuse_read_ahead_bytes with 0" "$(node_value fuse_read_ahead_bytes)" $((128 << 10))
check_eq "/.info/config shows it" "$(run cat "$MNT/.info/config/fuse/read-ahead")" 0
stop_daemon || bad "clean shutdown"

if command -v unshare >/dev/null 2>&1; then
	# A bind remount changes this namespace's view of /sys only.
	expect_ok "a daemon that may not write read_ahead_kb mounts all the same (/sys read-only)" \
		timeout 60 unshare -m --propagation private sh -c \
		'mount -o remount,bind,ro /sys && exec bash "$0" --sys-read-only' "$0"
else
	bad "unshare(1) missing: the refused write is not checked"
fi
finish
