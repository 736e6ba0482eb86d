#!/bin/bash
# t_tools: POSIX metadata is stored (chmod, chown, touch -d) and the tools
# users copy data with round-trip it: cp -a, rsync -a / -aX / --inplace,
# tar -x, python shutil.copy2, find, xargs, du.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mount_default

S=$MNT/test/tools
mkdir "$S" || fail "mkdir $S"

# ---- chmod, chown, touch -d: stored and visible -------------------------------------
echo data >"$S/k"
expect_ok "chmod 600" chmod 600 "$S/k"
check_eq "mode after chmod" "$(stat -c %a "$S/k")" 600
expect_ok "chmod 4755 (setuid bit)" chmod 4755 "$S/k"
check_eq "mode with setuid" "$(stat -c %a "$S/k")" 4755
chmod 640 "$S/k"
if [ "$(id -u)" -eq 0 ]; then
	expect_ok "chown nobody:nogroup" chown 65534:65534 "$S/k"
else
	note "not root: chown stands in for a chgrp to our own group"
	chown "$(id -u):$(id -g)" "$S/k"
fi
OWNER=$(stat -c %u:%g "$S/k")
check_eq "owner after chown" "$OWNER" "$([ "$(id -u)" -eq 0 ] && echo 65534:65534 || echo "$(id -u):$(id -g)")"
expect_ok "touch -d 2010-01-01" touch -d '2010-01-01 12:00:00 UTC' "$S/k"
check_eq "mtime stored" "$(stat -c %Y "$S/k")" "$(date -d '2010-01-01 12:00:00 UTC' +%s)"
expect_ok "touch -m -d with nanoseconds" touch -m -d '2011-02-03 04:05:06.123456789 UTC' "$S/k"
check_eq "mtime with ns" "$(stat -c %y "$S/k" | cut -c1-29)" "$(TZ=UTC0 date -d '2011-02-03 04:05:06.123456789 UTC' '+%Y-%m-%d %H:%M:%S.%N' | cut -c1-29)"
sleep 1.2 # past attr-timeout: the values now come from the daemon
check_eq "mode from the daemon" "$(stat -c %a "$S/k")" 640
check_eq "owner from the daemon" "$(stat -c %u:%g "$S/k")" "$OWNER"
check_eq "mtime from the daemon" "$(stat -c %Y "$S/k")" "$(date -d '2011-02-03 04:05:06 UTC' +%s)"
check_eq "content untouched by metadata" "$(cat "$S/k")" data
echo more >>"$S/k"
check_eq "mode kept across a write" "$(stat -c %a "$S/k")" 640
check_eq "owner kept across a write" "$(stat -c %u:%g "$S/k")" "$OWNER"
check_true "a write moves mtime to now" "$(stat -c %Y "$S/k")" -gt "$(date -d '2020-01-01' +%s)"
expect_ok "touch (now)" touch "$S/k"
check_true "touch sets mtime to now" $(($(date +%s) - $(stat -c %Y "$S/k"))) -lt 60
old_ctime=$(stat -c %Z "$S/k")
check_true "ctime is set" "$old_ctime" -gt 1600000000
chmod 444 "$S/k"
check_eq "mode 444" "$(stat -c %a "$S/k")" 444
chmod 644 "$S/k"

# ---- cp -a from a local file -------------------------------------------------------
L=$T/local
mkdir -p "$L"
head -c 50000 /dev/urandom >"$L/a.bin"
echo "text file" >"$L/b.txt"
: >"$L/empty"
chmod 751 "$L/a.bin"
touch -d '2015-05-05 05:05:05' "$L/a.bin"
HAVE_LOCAL_XATTR=no
if setfattr -n user.color -v blue "$L/a.bin" 2>/dev/null; then
	HAVE_LOCAL_XATTR=yes
	setfattr -n user.size -v 50000 "$L/a.bin"
fi
expect_ok "cp -a a local file into a set" cp -a "$L/a.bin" "$S/"
check_eq "cp -a: content" "$(cmp "$L/a.bin" "$S/a.bin" 2>&1 && echo same)" same
check_eq "cp -a: mode kept" "$(stat -c %a "$S/a.bin")" 751
check_eq "cp -a: mtime kept" "$(stat -c %Y "$S/a.bin")" "$(stat -c %Y "$L/a.bin")"
check_eq "cp -a: owner kept" "$(stat -c %u:%g "$S/a.bin")" "$(stat -c %u:%g "$L/a.bin")"
if [ $HAVE_LOCAL_XATTR = yes ]; then
	check_eq "cp -a: user.* xattrs kept" "$(getx user.color "$S/a.bin")" blue
	check_eq "cp -a: second xattr kept" "$(getx user.size "$S/a.bin")" 50000
else
	note "local temp dir has no user xattrs: cp -a xattr check skipped"
fi

# record -> record copies carry the read-only user.recfs.* names along
expect_ok "cp -a record to record" cp -a "$S/a.bin" "$S/a.copy"
check_eq "cp -a record->record content" "$(cmp "$S/a.bin" "$S/a.copy" 2>&1 && echo same)" same
[ $HAVE_LOCAL_XATTR = yes ] && check_eq "cp -a record->record xattr" "$(getx user.color "$S/a.copy")" blue
expect_ok "rsync -aX record to record" rsync -aX "$S/a.bin" "$S/a.rsync"
check_eq "rsync -aX record->record content" "$(cmp "$S/a.bin" "$S/a.rsync" 2>&1 && echo same)" same
[ $HAVE_LOCAL_XATTR = yes ] && check_eq "rsync -aX record->record xattr" "$(getx user.color "$S/a.rsync")" blue
expect_ok "cp -a a record out to a local dir" cp -a "$S/a.bin" "$T/out.bin"
check_eq "cp -a out: content" "$(cmp "$L/a.bin" "$T/out.bin" 2>&1 && echo same)" same
check_eq "cp -a out: mtime" "$(stat -c %Y "$T/out.bin")" "$(stat -c %Y "$L/a.bin")"

if [ "$HAVE_PYTHON" = yes ]; then
	expect_ok "python shutil.copy2 into a set" python3 -c 'import shutil, sys; shutil.copy2(sys.argv[1], sys.argv[2])' "$L/a.bin" "$S/py.bin"
	check_eq "shutil.copy2: content" "$(cmp "$L/a.bin" "$S/py.bin" 2>&1 && echo same)" same
	check_eq "shutil.copy2: mtime" "$(stat -c %Y "$S/py.bin")" "$(stat -c %Y "$L/a.bin")"
fi

# a tree with a sub directory goes into a set (directories inside sets)
mkdir -p "$L/tree/sub"
echo leaf >"$L/tree/sub/leaf"
echo top >"$L/tree/top"
expect_ok "cp -a of a tree with a sub dir" cp -a "$L/tree" "$S/tree"
check_eq "cp -a of a tree: diff -r" "$(diff -r "$L/tree" "$S/tree" 2>&1 && echo same)" same
check_eq "cp -a of a tree: sub dir mtime kept" "$(stat -c %Y "$S/tree/sub")" "$(stat -c %Y "$L/tree/sub")"

# ---- rsync -a of a flat dir ------------------------------------------------------------
F=$T/flat
mkdir -p "$F"
for i in $(seq 1 50); do head -c $((i * 997)) /dev/urandom >"$F/file$i"; done
touch -d '2012-12-12' "$F/file7"
chmod 600 "$F/file8"
mkdir "$MNT/test/rs" || fail "mkdir rs"
expect_ok "rsync -a flat dir into a set" rsync -a "$F/" "$MNT/test/rs/"
check_eq "rsync -a: diff -r" "$(diff -r "$F" "$MNT/test/rs" 2>&1 && echo same)" same
check_eq "rsync -a: mtime kept" "$(stat -c %Y "$MNT/test/rs/file7")" "$(stat -c %Y "$F/file7")"
check_eq "rsync -a: mode kept" "$(stat -c %a "$MNT/test/rs/file8")" 600
check_eq "rsync -a: no temp files left" "$(ls -A "$MNT/test/rs" | grep -c '^\.')" 0
check_eq "rsync -a: second run transfers nothing" "$(rsync -ai "$F/" "$MNT/test/rs/" 2>&1 | grep -c '^>f')" 0
head -c 3000 /dev/urandom >"$F/file3"
expect_ok "rsync -a after a change" rsync -a "$F/" "$MNT/test/rs/"
check_eq "rsync -a: changed file updated" "$(cmp "$F/file3" "$MNT/test/rs/file3" 2>&1 && echo same)" same
expect_ok "rsync -a --delete" sh -c 'rm "$1/file50" && rsync -a --delete "$1/" "$2/"' sh "$F" "$MNT/test/rs"
check_true "rsync --delete removed the record" ! -e "$MNT/test/rs/file50"
expect_ok "rsync -rt --inplace" rsync -rt --inplace "$F/" "$MNT/test/rs/"
check_eq "rsync --inplace: diff -r" "$(diff -r "$F" "$MNT/test/rs" 2>&1 && echo same)" same
expect_ok "rsync -a out of the set" rsync -a "$MNT/test/rs/" "$T/back/"
check_eq "rsync -a back out: diff -r" "$(diff -r "$F" "$T/back" 2>&1 && echo same)" same
mkdir "$MNT/test/rs2"
out=$(run rsync -a "$L/tree/" "$MNT/test/rs2/" 2>&1)
rc=$?
check_eq "rsync -a of a tree with a sub dir: rc 0 ($out)" "$rc" 0
check_eq "rsync -a of a tree: diff -r" "$(diff -r "$L/tree" "$MNT/test/rs2" 2>&1 && echo same)" same

# ---- tar -x ------------------------------------------------------------------------------
(cd "$F" && tar -cf "$T/flat.tar" file1 file2 file3 file7 file8)
mkdir "$MNT/test/tar" || fail "mkdir tar"
expect_ok "tar -xf into a set" tar -xf "$T/flat.tar" -C "$MNT/test/tar"
for f in file1 file2 file3 file7 file8; do
	cmp -s "$F/$f" "$MNT/test/tar/$f" || bad "tar -x: $f differs"
done
check_eq "tar -x: mtime kept" "$(stat -c %Y "$MNT/test/tar/file7")" "$(stat -c %Y "$F/file7")"
check_eq "tar -x: mode kept" "$(stat -c %a "$MNT/test/tar/file8")" 600
expect_ok "tar -xf --no-same-owner" tar -xf "$T/flat.tar" --no-same-owner -C "$MNT/test/tar"
expect_ok "tar -cf of a set" tar -cf "$T/back.tar" -C "$MNT/test/tar" .
check_eq "tar -c of a set lists its records" "$(tar -tf "$T/back.tar" | grep -c 'file')" 5
expect_ok "tar -xf over existing records" tar -xf "$T/flat.tar" -C "$MNT/test/tar"

# ---- find, xargs, du ------------------------------------------------------------------------
N=$MNT/test/find
mkdir "$N"
head -c 150000 /dev/urandom >"$N/big1"
head -c 300000 /dev/urandom >"$N/big2"
head -c 1000 /dev/urandom >"$N/small1"
sleep 0.1
echo x >"$N/small2"
sleep 0.1
: >"$N/zero"
want=$((150000 + 300000 + 1000 + 2))
check_eq "find | xargs cat | wc -c" "$(run find "$N" -type f -print0 | xargs -0 cat | wc -c)" "$want"
check_eq "find -size +100k" "$(run find "$N" -type f -size +100k -printf '%f\n' | sort | tr '\n' ' ')" "big1 big2 "
check_eq "find -size -2k" "$(run find "$N" -type f -size -2k -printf '%f\n' | sort | tr '\n' ' ')" "small1 small2 zero "
check_eq "find -empty" "$(run find "$N" -type f -empty -printf '%f\n')" "zero"
check_eq "find -name" "$(run find "$MNT/test" -name 'big*' -printf '%f\n' | sort | tr '\n' ' ')" "big1 big2 "
# The set itself is newer too: creating zero moved its mtime, as a directory's.
check_eq "find -newer" "$(run find "$N" -newer "$N/small2" -printf '%f\n' | sort | tr '\n' ' ')" "find zero "
check_eq "find -type d on the namespace" "$(run find "$MNT/test" -mindepth 1 -type d -printf '%f\n' | sort | tr '\n' ' ')" "find rs rs2 sub sub tar tools tree "
check_eq "du --apparent-size -sb" "$(run du -sb --apparent-size "$N" | cut -f1)" $((want + $(stat -c %s "$N")))
du_k=$(run du -sk "$N" | cut -f1)
check_true "du -sk ~ data size ($du_k KiB for $((want / 1024)) KiB)" "${du_k:-0}" -ge $((want / 1024)) -a "${du_k:-0}" -le $((want / 1024 + 64))
check_eq "stat %b of a 150000-byte record" "$(stat -c %b "$N/big1")" $(((150000 + 511) / 512))
check_eq "ls -l size" "$(ls -l "$N/big2" | awk '{ print $5 }')" 300000
check_eq "wc -c through the mount" "$(run wc -c <"$N/big2")" 300000

# ---- ls -l and stat of every kind -----------------------------------------------------------
check_eq "ls -l of a set lists records with sizes" "$(ls -l "$N" | awk 'NR > 1 { s += $5 } END { print s }')" "$want"
check_eq "stat of a set: directory" "$(stat -c %F "$N")" directory
check_eq "stat of a namespace: directory" "$(stat -c %F "$MNT/test")" directory

assert_serving
finish
