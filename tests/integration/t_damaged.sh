#!/bin/bash
# t_damaged: a damaged newest copy never hides behind an older one (issue 10
# part 3), through the mount with real daemons, on the device engine and on
# the memory engine's shadow file.  A file is written and fsync'd twice (two
# copies on storage), the daemon stops, a few bytes inside the newest copy's
# content are overwritten in the storage file, and the daemon starts again:
# `cat` fails with EIO and never shows the older content, `ls` and `stat`
# still work, .info/namespace/test counts it (damaged_records), the log and
# recfs-check name it (set, key, file, offset); overwriting it (`echo x >`)
# clears the mark, also across a restart.  torn ENGINE: the same damage in a
# write the daemon had not made durable when it was killed (a torn write: no
# fsync, SIGKILL right after it reached the storage file) is not damage:
# after the restart `cat` shows the first (fsync'd) version, the record is
# not damaged and cold_start_torn_writes counts it (on main: EIO); a new
# file g whose content write was torn the same way is back as its create
# stored it, empty; recfs-check says TORN WRITE for both.
# Before the fix an older copy was
# served as the file's content without an error (here the empty copy that
# the second write's O_TRUNC open stored): "cat of the damaged file fails"
# and the recfs-check and damaged_records checks fail on that build.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

CHECK=$top_builddir/recfs-check
[ -x "$CHECK" ] || fail "$CHECK not built"

# sh_ok DESC "$WRITE_FSYNC" FILE TEXT BYTES: FILE holds TEXT followed by 'x'
# up to BYTES, written and fsync'd (dd conv=fsync), as an editor saving would.
WRITE_FSYNC='{ printf "%s" "$2"; head -c $(( $3 - ${#2} )) /dev/zero | tr "\0" x; } |
	dd of="$1" bs=64K conv=fsync status=none'

# scenario ENGINE: the whole story on one engine (device, or memory with a
# shadow file).
scenario() {
	local engine=$1 dat=$T/$1.dat out=$T/$1.check pos hits
	note "---- $engine"
	if [ "$engine" = memory ]; then
		write_shadow_config "$dat" "filesize: 64M" "write-block-size: 128K"
	else
		write_device_config "$dat" "filesize: 64M" "write-block-size: 128K"
	fi
	: >"$LOG"
	start_daemon
	expect_ok "$engine: mkdir a set" mkdir "$MNT/test/s"
	sh_ok "$engine: write f, fsync" "$WRITE_FSYNC" "$MNT/test/s/f" "first-version-$engine-" 2304
	sh_ok "$engine: write g, fsync" "$WRITE_FSYNC" "$MNT/test/s/g" "neighbour-$engine-" 1000
	sh_ok "$engine: write f again, fsync" "$WRITE_FSYNC" "$MNT/test/s/f" "second-version-$engine-" 2304
	check_eq "$engine: f reads the second version" "$(run head -c 22 "$MNT/test/s/f")" \
		"second-version-$engine-"
	stop_daemon
	check_eq "$engine: recfsd exited cleanly" "$?" 0

	# Both versions are on storage; damage the newest copy's content.
	check_eq "$engine: the first version is still on storage" \
		"$(grep -aoc "first-version-$engine-" "$dat")" 1
	hits=$(grep -aob "second-version-$engine-" "$dat" | cut -d: -f1)
	check_eq "$engine: the second version is stored once" "$(echo "$hits" | grep -c .)" 1
	pos=$(echo "$hits" | head -1)
	[ -n "$pos" ] || fail "$engine: the second version not found in $dat"
	printf 'XXXX' | dd of="$dat" bs=1 seek=$((pos + 100)) conv=notrunc status=none ||
		fail "dd into $dat"

	# recfs-check names the record and says what recfsd will do.
	run "$CHECK" "$dat" >"$out" 2>&1
	check_eq "$engine: recfs-check exits 1" "$?" 1
	local line
	line=$(grep '^DAMAGED RECORD ' "$out")
	check_eq "$engine: recfs-check names one damaged record" "$(echo "$line" | grep -c .)" 1
	check_true "$engine: ... by set and key" -n "$(echo "$line" | grep -F 'DAMAGED RECORD set=s key=f:')"
	check_true "$engine: ... with its file and offset" -n "$(echo "$line" | grep -F "($dat offset ")"
	check_true "$engine: ... and what recfsd does" -n "$(echo "$line" | grep -F 'reads fail with EIO')"
	check_true "$engine: the summary counts it" \
		-n "$(grep -E '^ +newest copy damaged +1$' "$out")"

	start_daemon
	expect_err "$engine: cat of the damaged file fails" "Input/output error" cat "$MNT/test/s/f"
	check_true "$engine: never the older content" \
		-z "$(run cat "$MNT/test/s/f" 2>/dev/null | grep -a first-version)"
	check_eq "$engine: it is listed" "$(run ls "$MNT/test/s" | tr '\n' ' ')" "f g "
	expect_ok "$engine: stat works" stat "$MNT/test/s/f"
	check_eq "$engine: the neighbour is intact" "$(run head -c 16 "$MNT/test/s/g")" \
		"$(printf 'neighbour-%s-x' "$engine" | head -c 16)"
	check_eq "$engine: damaged_records" "$(stat_value test damaged_records)" 1
	check_true "$engine: the log names the record, file and offset" \
		-n "$(grep -F "$dat offset" "$LOG" | grep -F 'record s/f (generation' | grep -F 'newest copy is damaged')"
	expect_err "$engine: chmod would keep part of it: EIO" "Input/output error" chmod 600 "$MNT/test/s/f"

	# Overwriting clears the mark, for good.
	sh_ok "$engine: overwrite it" 'echo x > "$1"' "$MNT/test/s/f"
	check_eq "$engine: it reads the new content" "$(run cat "$MNT/test/s/f")" x
	check_eq "$engine: damaged_records back to 0" "$(stat_value test damaged_records)" 0
	expect_ok "$engine: sync" sync
	stop_daemon
	start_daemon
	check_eq "$engine: after a restart, the new content" "$(run cat "$MNT/test/s/f")" x
	check_eq "$engine: after a restart, damaged_records 0" "$(stat_value test damaged_records)" 0

	# Unlinking clears it too: damage g's content, in every copy of it (a
	# copy defrag left behind is the same version, intact, and would be
	# served: recfs-check -v lists them all).
	stop_daemon
	hits=$(run "$CHECK" -v "$dat" 2>&1 | grep -E ' set=s key=g gen=[0-9]+ size=[0-9]+ ' |
		sed -n 's/^[^ ]*:\([0-9]*\) .*/\1/p')
	[ -n "$hits" ] || fail "$engine: g's copies not found by recfs-check -v"
	for pos in $hits; do
		printf 'XXXX' | dd of="$dat" bs=1 seek=$((pos + 200)) conv=notrunc status=none ||
			fail "dd into $dat"
	done
	start_daemon
	check_eq "$engine: g damaged" "$(stat_value test damaged_records)" 1
	expect_err "$engine: cat g fails" "Input/output error" cat "$MNT/test/s/g"
	expect_ok "$engine: rm g" rm "$MNT/test/s/g"
	check_eq "$engine: damaged_records 0 after rm" "$(stat_value test damaged_records)" 0
	check_eq "$engine: g is gone" "$(run ls "$MNT/test/s" | tr '\n' ' ')" "f "
	stop_daemon
	start_daemon
	check_eq "$engine: g stays gone after a restart" "$(run ls "$MNT/test/s" | tr '\n' ' ')" "f "
	check_eq "$engine: damaged_records 0 after a restart" "$(stat_value test damaged_records)" 0
	stop_daemon
}

# torn ENGINE: f written and fsync'd, then written again in place without
# fsync (dd conv=notrunc: no O_TRUNC, so no empty version in between); once
# that second version is in the storage file (flush-max-ms 100) the daemon
# is killed and the second version's content damaged, as a power cut in the
# middle of its write would leave it.
torn() {
	local engine=$1 dat=$T/torn-$1.dat pos hits i
	note "---- torn write, $engine"
	if [ "$engine" = memory ]; then
		write_shadow_config "$dat" "filesize: 64M" "write-block-size: 128K" "flush-max-ms: 100"
	else
		write_device_config "$dat" "filesize: 64M" "write-block-size: 128K" "flush-max-ms: 100"
	fi
	: >"$LOG"
	start_daemon
	sh_ok "$engine: write f, fsync" "$WRITE_FSYNC" "$MNT/test/f" "first-torn-$engine-" 2304
	sh_ok "$engine: write f again, no fsync" \
		'{ printf "%s" "$2"; head -c $(( $3 - ${#2} )) /dev/zero | tr "\0" y; } |
		dd of="$1" bs=64K conv=notrunc status=none' "$MNT/test/f" "second-torn-$engine-" 2304
	# A new file, never fsync'd: its create stored it empty, then its content.
	sh_ok "$engine: create g, no fsync" 'printf "%s" "$2" > "$1"' "$MNT/test/g" "new-torn-$engine-"
	i=0
	while [ $i -lt 50 ] && ! { grep -aq "second-torn-$engine-" "$dat" &&
		grep -aq "new-torn-$engine-" "$dat"; }; do
		sleep 0.1
		i=$((i + 1))
	done
	crash_daemon || fail "$engine: could not detach the dead mount $MNT"
	hits=$(grep -aob "second-torn-$engine-" "$dat" | cut -d: -f1)
	check_eq "$engine: the second version reached the storage file once" "$(echo "$hits" | grep -c .)" 1
	pos=$(echo "$hits" | head -1)
	[ -n "$pos" ] || fail "$engine: the second version not found in $dat"
	printf 'XXXX' | dd of="$dat" bs=1 seek=$((pos + 100)) conv=notrunc status=none ||
		fail "dd into $dat"
	pos=$(grep -aob "new-torn-$engine-" "$dat" | cut -d: -f1 | head -1)
	[ -n "$pos" ] || fail "$engine: g's content not found in $dat"
	printf 'XXXX' | dd of="$dat" bs=1 seek=$((pos + 2)) conv=notrunc status=none ||
		fail "dd into $dat"

	# recfs-check tells the torn write from a damaged record.
	run "$CHECK" --flush-max-ms 100 "$dat" >"$T/torn.check" 2>&1
	check_eq "$engine: recfs-check exits 1" "$?" 1
	check_true "$engine: recfs-check: a torn write, the previous version kept" -n "$(grep -F \
		'TORN WRITE set= key=f: ' "$T/torn.check" | grep -F "($dat offset " |
		grep -F 'recfsd keeps the previous version')"
	check_true "$engine: recfs-check: no damaged record" -z "$(grep '^DAMAGED RECORD' "$T/torn.check")"
	check_true "$engine: recfs-check: the summary counts it" \
		-n "$(grep -E '^ +torn write \(unclean\) +2$' "$T/torn.check")"

	start_daemon
	check_eq "$engine: after the crash, f reads the first version" \
		"$(run head -c 17 "$MNT/test/f")" "$(printf 'first-torn-%s-xxx' "$engine" | head -c 17)"
	check_eq "$engine: all of it" "$(run cat "$MNT/test/f" | wc -c)" 2304
	check_eq "$engine: not damaged" "$(stat_value test damaged_records)" 0
	check_eq "$engine: cold_start_torn_writes" "$(stat_value test cold_start_torn_writes)" 2
	check_eq "$engine: g is back as its create left it: empty" "$(run stat -c %s "$MNT/test/g")" 0
	check_true "$engine: the log names the torn write, file and offset" \
		-n "$(grep -F "torn write at $dat offset" "$LOG" | grep -F '(record f, generation' |
			grep -F 'previous version kept')"
	stop_daemon
	check_eq "$engine: recfsd exited cleanly" "$?" 0
	start_daemon
	check_eq "$engine: after a clean restart, still the first version" \
		"$(run head -c 17 "$MNT/test/f")" "$(printf 'first-torn-%s-xxx' "$engine" | head -c 17)"
	check_eq "$engine: after a clean restart, not damaged" "$(stat_value test damaged_records)" 0
	stop_daemon
}

scenario device
scenario memory
torn device
torn memory

# ---- order conflicts: recfs-check says what recfsd does ---------------------
# A copy of a record with a higher generation but an earlier last-update
# time (what a record written again after its tombstone was reclaimed, or
# after its generation wrapped, leaves on storage), crafted with python
# into the zeros after the wblock's last record: recfs-check's warning must
# name the copy recfsd then serves (the later update), from the same rule.
if [ "$HAVE_PYTHON" = yes ]; then
	note "---- order conflict"
	dat=$T/conflict.dat
	write_device_config "$dat" "filesize: 64M" "write-block-size: 128K"
	: >"$LOG"
	start_daemon
	sh_ok "write c, fsync" "$WRITE_FSYNC" "$MNT/test/c" "later-update-" 500
	stop_daemon
	pos=$(grep -aob "later-update-" "$dat" | cut -d: -f1 | head -1)
	[ -n "$pos" ] || fail "c's content not found in $dat"
	out=$(python3 - "$dat" "$pos" <<'PY' 2>&1
import struct, sys
def crc32c(data, crc=0):
    crc ^= 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xffffffff
path, pos = sys.argv[1], int(sys.argv[2])
f = open(path, "r+b")
start = pos - pos % 16
while True:                       # the record holding the content
    f.seek(start); head = f.read(64)
    if head[:4] == b"FRC1" and head[8] == 2:
        break
    start -= 16
size, = struct.unpack_from("<I", head, 4)
f.seek(start); rec = bytearray(f.read(size))
gen, = struct.unpack_from("<H", rec, 10)
lut, = struct.unpack_from("<Q", rec, 32)
end, = struct.unpack_from("<I", rec, 56)
struct.pack_into("<H", rec, 10, gen + 100)      # higher generation...
struct.pack_into("<Q", rec, 32, lut - 60000)    # ...a minute earlier
i = rec.find(b"later-update-")
rec[i:i + 13] = b"EARLIER-write"
struct.pack_into("<I", rec, 60, crc32c(bytes(rec[:60])))
struct.pack_into("<I", rec, end + 4, crc32c(bytes(rec[:end + 4])))
wbs = 128 * 1024
tail = start + size
while True:                       # zeros after the last record
    f.seek(tail)
    if f.read(size) == bytes(size):
        break
    tail += 16
assert tail // wbs == start // wbs
f.seek(tail); f.write(rec); f.close()
print(start, tail)
PY
)
	check_true "crafted a conflicting copy ($out)" -n "$(echo "$out" | grep -E '^[0-9]+ [0-9]+$')"
	orig=${out% *}
	run "$CHECK" "$dat" >"$T/conflict.check" 2>&1
	check_eq "recfs-check: an order conflict is no corruption" "$?" 0
	line=$(grep '^WARNING order conflict' "$T/conflict.check")
	check_true "recfs-check warns of the order conflict" -n "$line"
	check_true "... saying what recfsd keeps, by its rule, and which copy" -n "$(echo "$line" |
		grep -F "recfsd keeps the copy with the later last-update time, then the higher generation: the one at $dat offset $orig")"
	start_daemon
	check_eq "recfsd serves the copy recfs-check named" "$(run head -c 13 "$MNT/test/c")" "later-update-"
	stop_daemon
fi

finish
