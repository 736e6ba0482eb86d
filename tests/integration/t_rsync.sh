#!/bin/bash
# t_rsync: rsync and cp stay cheap and clean (issue 14 item 7, recfsd(8)
# EXTENDED ATTRIBUTES).  listxattr lists a record's bins only; the user.recfs.*
# metadata is read by name.  So a copy out of the mount carries no
# user.recfs.* attributes, and a second `rsync -aX` of 500 files - from a
# local tree, and from a tree copied out of the mount - writes nothing
# (client_write_success unchanged).  Writing a read-only user.recfs.* name
# with the value it already has stores nothing either.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mount_default

N=500
L=$T/local
mkdir -p "$L" || fail "mkdir $L"
HAVE_LOCAL_XATTR=no
touch "$L/.probe" && setfattr -n user.probe -v 1 "$L/.probe" 2>/dev/null && HAVE_LOCAL_XATTR=yes
rm -f "$L/.probe"
i=0
while [ $i -lt $N ]; do
	printf 'file %d\n' $i >"$L/f$i"
	i=$((i + 1))
done
# a few files with a user attribute of their own (a bin once copied in)
if [ $HAVE_LOCAL_XATTR = yes ]; then
	for i in 1 2 3; do setfattr -n user.color -v "c$i" "$L/f$i"; done
else
	note "no user xattrs in $T: bins are set through the mount instead"
fi
touch -d '2020-02-02 02:02:02 UTC' "$L"/f*

writes() { node_value client_write_success; }

# ---- listxattr lists bins, the metadata is read by name ---------------------------------------
S=$MNT/test/xl
mkdir "$S" || fail "mkdir $S"
echo content >"$S/r"
expect_ok "setfattr user.color on a record" setfattr -n user.color -v blue "$S/r"
names=$(run getfattr --absolute-names -d -m - "$S/r" 2>/dev/null | grep -v '^#' | grep . | cut -d= -f1 | tr '\n' ' ')
check_eq "getfattr -d -m - lists the bins only" "$names" "user.color "
if [ "$HAVE_PYTHON" = yes ]; then
	check_eq "os.listxattr: the bins only" \
		"$(run python3 -c 'import os, sys; print(sorted(os.listxattr(sys.argv[1])))' "$S/r")" "['user.color']"
fi
for m in generation ttl void_time last_update digest partition; do
	check_true "user.recfs.$m still read by name" -n "$(getx user.recfs.$m "$S/r")"
done
check_eq "a record without bins lists nothing" \
	"$(echo x >"$S/plain"; run getfattr --absolute-names -d -m - "$S/plain" 2>/dev/null | grep -c '^user')" 0

# a read-only name written with the value it has: no new generation, no write
g=$(getx user.recfs.generation "$S/r")
w0=$(writes)
expect_ok "setfattr user.recfs.generation with its own value" setfattr -n user.recfs.generation -v "$g" "$S/r"
expect_ok "setfattr user.recfs.digest with its own value" \
	setfattr -n user.recfs.digest -v "$(getx user.recfs.digest "$S/r")" "$S/r"
check_eq "generation unchanged" "$(getx user.recfs.generation "$S/r")" "$g"
check_eq "client_write_success unchanged by read-only names" "$(writes)" "$w0"

# ---- rsync -aX of a local tree, twice -------------------------------------------------------
A=$MNT/test/rsa
expect_ok "rsync -aX of $N files into a set" rsync -aX "$L/" "$A/"
check_eq "rsync -aX: $N records" "$(ls "$A" | wc -l)" $N
check_eq "rsync -aX: diff -r" "$(diff -r "$L" "$A" 2>&1 && echo same)" same
[ $HAVE_LOCAL_XATTR = yes ] && check_eq "rsync -aX: a file's attribute became a bin" "$(getx user.color "$A/f2")" c2
g=$(getx user.recfs.generation "$A/f2")
w0=$(writes)
out=$(run rsync -aXi "$L/" "$A/" 2>&1)
check_eq "second rsync -aX: client_write_success unchanged" "$(writes)" "$w0"
check_eq "second rsync -aX: nothing itemized ($(printf '%s' "$out" | head -n 3 | tr '\n' ' '))" \
	"$(printf '%s' "$out" | grep -c .)" 0
check_eq "second rsync -aX: generation of a record unchanged" "$(getx user.recfs.generation "$A/f2")" "$g"

# ---- copies out of the mount carry no user.recfs.* ------------------------------------------
B=$T/copied
expect_ok "cp -a of the set out of the mount" cp -a "$A" "$B"
check_eq "cp -a out: $N files" "$(ls "$B" | wc -l)" $N
if [ $HAVE_LOCAL_XATTR = yes ]; then
	check_eq "cp -a out: no user.recfs.* on the copies" \
		"$(run getfattr --absolute-names -R -d -m - "$B" 2>/dev/null | grep -c '^user\.recfs\.')" 0
	check_eq "cp -a out: the bins came along" "$(getfattr --absolute-names --only-values -n user.color "$B/f3" 2>/dev/null)" c3
	R=$T/rsynced
	expect_ok "rsync -aX of the set out of the mount" rsync -aX "$A/" "$R/"
	check_eq "rsync -aX out: no user.recfs.* on the copies" \
		"$(run getfattr --absolute-names -R -d -m - "$R" 2>/dev/null | grep -c '^user\.recfs\.')" 0
fi

# ---- rsync -aX of the copied tree back in, twice --------------------------------------------
C=$MNT/test/rsc
expect_ok "rsync -aX of the copied tree into another set" rsync -aX "$B/" "$C/"
check_eq "copied tree: diff -r" "$(diff -r "$B" "$C" 2>&1 && echo same)" same
w0=$(writes)
expect_ok "second rsync -aX of the copied tree" rsync -aX "$B/" "$C/"
check_eq "second rsync -aX of the copied tree: client_write_success unchanged" "$(writes)" "$w0"

# a change is still copied, and costs one write
echo changed >"$L/f7"
w0=$(writes)
expect_ok "rsync -aX after one change" rsync -aX "$L/" "$A/"
check_eq "the changed file is copied" "$(cat "$A/f7")" changed
check_true "one changed file: at most 10 writes (a temp file, its content, mode, owner, times, rename), not $N ($(( $(writes) - w0 )))" $(( $(writes) - w0 )) -le 10

assert_serving
finish
