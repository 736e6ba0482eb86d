#!/bin/bash
# t_damaged: a damaged newest copy never hides behind an older one (issue 10
# part 3), through the mount with real daemons, on the device engine and on
# the memory engine's shadow file.  A file is written and fsync'd twice (two
# copies on storage), the daemon stops, a few bytes inside the newest copy's
# content are overwritten in the storage file, and the daemon starts again:
# `cat` fails with EIO and never shows the older content, `ls` and `stat`
# still work, .info/namespace/test counts it (damaged_records), the log and
# recfs-check name it (set, key, file, offset); overwriting it (`echo x >`)
# clears the mark, also across a restart.  Before the fix an older copy was
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

	# Unlinking clears it too: damage g's content, every copy of it (defrag
	# may have moved g, leaving its old copy behind until reused).
	stop_daemon
	hits=$(grep -aob "neighbour-$engine-" "$dat" | cut -d: -f1)
	[ -n "$hits" ] || fail "$engine: g's content not found in $dat"
	note "$engine: copies of g's content on storage: $(echo $hits | wc -w)"
	for pos in $hits; do
		printf 'XXXX' | dd of="$dat" bs=1 seek=$((pos + 100)) conv=notrunc status=none ||
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

scenario device
scenario memory

finish
