#!/bin/bash
# t_set_attrs: a set directory keeps its mode, owner and times (recfsd(8) Sets,
# issue 10 part 4).  Before, chmod, chown and touch on a set returned 0 and
# changed nothing, and a set's mtime never moved.  Now: mkdir stores the
# mode and owner it is given; chmod, chown and touch are stored and
# survive a clean restart and a SIGKILL, on the device engine and on a
# memory namespace with a shadow file; creating, deleting and renaming a
# record in a set moves its mtime and ctime (rewriting a record does not);
# a crash never moves them backwards.  Namespace directories and the root
# cannot store anything: chmod, chown and touch there fail with EPERM.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

# attrs PATH: what the checks compare (mode, owner, mtime, ctime in ns).
attrs() {
	run stat -c '%a %u %g %.9Y %.9Z' "$1"
}
# gt A B: A > B for "seconds.nanoseconds" values (9 digits after the dot).
gt() {
	local as=${1%.*} bs=${2%.*}
	[ "$as" -gt "$bs" ] || { [ "$as" -eq "$bs" ] && [ "${1#*.}" \> "${2#*.}" ]; }
}

TOUCHED=981173106.123456789    # 2001-02-03 04:05:06.123456789 UTC

engine_round() {
	local engine=$1 S a b m0 c0 m1 c1 m2 c2 m3 m4 want
	local DAT=$T/$engine.dat
	note "engine: $engine"
	if [ "$engine" = device ]; then
		write_device_config "$DAT" "filesize: 64M" "write-block-size: 1M"
	else
		write_shadow_config "$DAT" "filesize: 64M" "write-block-size: 1M"
	fi
	start_daemon
	check_eq "$engine: storage engine" "$(stat_value test type)" "$engine"
	S=$MNT/test/dir

	expect_ok "$engine: mkdir -m 0750" mkdir -m 0750 "$S"
	check_eq "$engine: mkdir stored its mode and the caller as owner" \
		"$(run stat -c '%a %u %g' "$S")" "750 $(id -u) $(id -g)"
	expect_ok "$engine: chmod 0700 on a set" chmod 0700 "$S"
	expect_ok "$engine: chown 1234:5678 on a set" chown 1234:5678 "$S"
	expect_ok "$engine: touch -d on a set" touch -d "@$TOUCHED" "$S"
	a=$(attrs "$S")
	check_eq "$engine: stat shows mode, owner and mtime" "${a% *}" "700 1234 5678 $TOUCHED"
	c0=${a##* }
	gt "$c0" "$TOUCHED" && pass "$engine: ctime is the chmod/touch's, not the mtime set" ||
		bad "$engine: ctime $c0 after touch -d @$TOUCHED"

	# Entries change: mtime and ctime move, as a directory's do.  LUTs are
	# milliseconds: 20 ms between changes keeps them apart.
	sleep 0.02
	sh_ok "$engine: create a record in the set" 'echo one > "$1"' "$S/f"
	a=$(attrs "$S")
	m1=$(echo "$a" | cut -d' ' -f4)
	c1=$(echo "$a" | cut -d' ' -f5)
	gt "$m1" "$c0" && pass "$engine: create moved mtime" || bad "$engine: create: mtime $m1, was $TOUCHED (ctime $c0)"
	gt "$c1" "$c0" && pass "$engine: create moved ctime" || bad "$engine: create: ctime $c1, was $c0"
	check_eq "$engine: create kept mode and owner" "$(echo "$a" | cut -d' ' -f1-3)" "700 1234 5678"
	sleep 0.02
	sh_ok "$engine: rewrite the record" 'echo two > "$1"' "$S/f"
	check_eq "$engine: rewriting a record moves neither time" "$(attrs "$S")" "$a"
	sleep 0.02
	expect_ok "$engine: rm the record" rm "$S/f"
	a=$(attrs "$S")
	m2=$(echo "$a" | cut -d' ' -f4)
	c2=$(echo "$a" | cut -d' ' -f5)
	gt "$m2" "$m1" && pass "$engine: delete moved mtime" || bad "$engine: delete: mtime $m2, was $m1"
	gt "$c2" "$c1" && pass "$engine: delete moved ctime" || bad "$engine: delete: ctime $c2, was $c1"
	sh_ok "$engine: create g" 'echo g > "$1"' "$S/g"
	m3=$(attrs "$S" | cut -d' ' -f4)
	sleep 0.02
	expect_ok "$engine: mv within the set" mv "$S/g" "$S/h"
	m4=$(attrs "$S" | cut -d' ' -f4)
	gt "$m4" "$m3" && pass "$engine: rename moved mtime" || bad "$engine: rename: mtime $m4, was $m3"

	# A clean restart keeps everything exactly.
	want=$(attrs "$S")
	stop_daemon
	start_daemon
	check_eq "$engine: mode, owner, mtime, ctime after a clean restart" "$(attrs "$S")" "$want"
	check_eq "$engine: records after the restart" "$(ls "$S" | tr '\n' ' ')" "h "

	# SIGKILL: the last chmod/touch is kept; a record written after it
	# (fsync'd: durable) moves the times to its newest write, which may be
	# later than its creation (the cold start cannot tell them apart): never
	# earlier than before the crash.
	expect_ok "$engine: chmod 0711" chmod 0711 "$S"
	expect_ok "$engine: touch -d again" touch -d "@$TOUCHED" "$S"
	expect_ok "$engine: fsync the set (durable)" python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' "$S"
	want=$(attrs "$S")
	crash_daemon || fail "$engine: dead mount not detached"
	start_daemon
	check_eq "$engine: chmod and touch after a SIGKILL" "$(attrs "$S")" "$want"
	sleep 0.02
	sh_ok "$engine: create k" 'echo k > "$1"' "$S/k"
	expect_ok "$engine: fsync k" python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' "$S/k"
	want=$(attrs "$S")
	crash_daemon || fail "$engine: dead mount not detached"
	start_daemon
	a=$(attrs "$S")
	check_eq "$engine: mode and owner after a SIGKILL" "$(echo "$a" | cut -d' ' -f1-3)" "711 1234 5678"
	m4=$(echo "$a" | cut -d' ' -f4)
	check_eq "$engine: mtime after a SIGKILL is k's last write (its ctime)" "$m4" \
		"$(run stat -c %.9Z "$S/k")"
	check_eq "$engine: ctime after a SIGKILL too" "$(echo "$a" | cut -d' ' -f5)" "$m4"
	m3=$(echo "$want" | cut -d' ' -f4)
	[ "$m4" = "$m3" ] || gt "$m4" "$m3" && pass "$engine: mtime did not move back at the SIGKILL" ||
		bad "$engine: mtime $m4 after the SIGKILL, $m3 before"

	# Namespace directories and the root store nothing: never a silent no-op.
	expect_err "$engine: chmod on a namespace dir" "Operation not permitted" chmod 0700 "$MNT/test"
	expect_err "$engine: chown on a namespace dir" "Operation not permitted" chown 1234 "$MNT/test"
	expect_err "$engine: touch on a namespace dir" "Operation not permitted" touch "$MNT/test"
	expect_err "$engine: chmod on the root" "Operation not permitted" chmod 0700 "$MNT"
	check_eq "$engine: namespace dir mode unchanged" "$(run stat -c %a "$MNT/test")" 755
	expect_err "$engine: truncate of a set" "Is a directory" truncate -s 0 "$S"
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
