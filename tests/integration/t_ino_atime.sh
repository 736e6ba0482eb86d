#!/bin/bash
# t_ino_atime: a file's st_ino is kept with its record (recfsd(8), issue 10
# part 9): the same before and after mv (within a set, between sets, to the
# null set, over an existing file) and after a clean restart and a SIGKILL;
# a new file created at the old name gets another one, so no two live
# files share an inode number.  Before, st_ino came from the name and
# changed with every mv.  An atime set by utimensat (touch -a) is stored
# and survives restarts; reads never update it (noatime); an atime never
# set shows the mtime.  Device engine and memory+shadow.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

fsync_path() {
	run python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' "$1"
}

engine_round() {
	local engine=$1 N i1 i2 i3 iq before
	local DAT=$T/$engine.dat
	note "engine: $engine"
	if [ "$engine" = device ]; then
		write_device_config "$DAT" "filesize: 64M" "write-block-size: 1M"
	else
		write_shadow_config "$DAT" "filesize: 64M" "write-block-size: 1M"
	fi
	start_daemon
	N=$MNT/test
	mkdir "$N/s" "$N/t" || fail "$engine: mkdir"

	sh_ok "$engine: write s/f" 'echo one > "$1"' "$N/s/f"
	i1=$(run stat -c %i "$N/s/f")
	expect_ok "$engine: mv s/f s/g" mv "$N/s/f" "$N/s/g"
	check_eq "$engine: st_ino the same after mv within a set" "$(run stat -c %i "$N/s/g")" "$i1"
	check_eq "$engine: ls -i (readdir) shows it too" "$(ls -i "$N/s" | awk '$2 == "g" { print $1 }')" "$i1"
	sh_ok "$engine: a new file at the old name" 'echo new > "$1"' "$N/s/f"
	i2=$(run stat -c %i "$N/s/f")
	check_true "$engine: the new file has another st_ino ($i2 vs $i1)" "$i2" != "$i1"
	expect_ok "$engine: mv s/g t/g (between sets)" mv "$N/s/g" "$N/t/g"
	check_eq "$engine: st_ino the same after mv between sets" "$(run stat -c %i "$N/t/g")" "$i1"
	expect_ok "$engine: mv t/g to the null set" mv "$N/t/g" "$N/top"
	check_eq "$engine: st_ino the same in the null set" "$(run stat -c %i "$N/top")" "$i1"
	sh_ok "$engine: write t/q" 'echo q > "$1"' "$N/t/q"
	iq=$(run stat -c %i "$N/t/q")
	expect_ok "$engine: mv top over t/q" mv "$N/top" "$N/t/q"
	check_eq "$engine: the moved file keeps its st_ino over a replaced one" \
		"$(run stat -c %i "$N/t/q")" "$i1"
	check_eq "$engine: content moved with it" "$(cat "$N/t/q")" one
	sh_ok "$engine: rewrite t/q" 'echo two > "$1"' "$N/t/q"
	check_eq "$engine: a rewrite keeps st_ino" "$(run stat -c %i "$N/t/q")" "$i1"
	check_eq "$engine: no two files share an st_ino" \
		"$(find "$N" -type f -printf '%i\n' | sort | uniq -d | wc -l)" 0

	# atime: never set shows the mtime; touch -a is stored; reads leave it.
	check_eq "$engine: an atime never set is the mtime" "$(run stat -c %X "$N/s/f")" \
		"$(run stat -c %Y "$N/s/f")"
	before=$(run stat -c %.9Y "$N/t/q")
	expect_ok "$engine: touch -a -d @1000000000" touch -a -d @1000000000 "$N/t/q"
	check_eq "$engine: stat %X shows the atime set" "$(run stat -c %X "$N/t/q")" 1000000000
	check_eq "$engine: touch -a left the mtime" "$(run stat -c %.9Y "$N/t/q")" "$before"
	cat "$N/t/q" >/dev/null
	check_eq "$engine: a read does not update the atime" "$(run stat -c %X "$N/t/q")" 1000000000
	expect_ok "$engine: touch -a -d on a set" touch -a -d @1100000000 "$N/t"
	check_eq "$engine: a set's atime too" "$(run stat -c %X "$N/t")" 1100000000

	i3=$(run stat -c %i "$N/s/f")
	stop_daemon
	start_daemon
	check_eq "$engine: st_ino of the moved file after a clean restart" "$(run stat -c %i "$N/t/q")" "$i1"
	check_eq "$engine: st_ino of the new file after a clean restart" "$(run stat -c %i "$N/s/f")" "$i3"
	check_eq "$engine: atime after a clean restart" "$(run stat -c %X "$N/t/q")" 1000000000
	check_eq "$engine: a set's atime after a clean restart" "$(run stat -c %X "$N/t")" 1100000000
	expect_ok "$engine: mv t/q s/r" mv "$N/t/q" "$N/s/r"
	fsync_path "$N/s" || bad "$engine: fsync of the set"
	crash_daemon || fail "$engine: dead mount not detached"
	start_daemon
	check_eq "$engine: st_ino after mv and a SIGKILL" "$(run stat -c %i "$N/s/r")" "$i1"
	check_eq "$engine: atime after mv and a SIGKILL" "$(run stat -c %X "$N/s/r")" 1000000000
	check_eq "$engine: the new file's st_ino after a SIGKILL" "$(run stat -c %i "$N/s/f")" "$i3"
	assert_serving "$engine"
	stop_daemon
}

if [ "$HAVE_PYTHON" != yes ]; then
	echo "SKIP: $ITEST_NAME needs python3 (fsync of a directory)"
	exit 77
fi
engine_round device
engine_round memory
finish
