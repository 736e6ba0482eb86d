#!/bin/bash
# t_basic: records as files from the shell - write, read, append, truncate,
# dd of a large file, stat (size, links, stable inode), open handles across
# rm, stat of a file a writer still holds open (recfsd(8), THE TREE).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mount_default

# ---- the tree -------------------------------------------------------------
check_eq "root lists the namespaces" "$(ls "$MNT" | tr '\n' ' ')" "other test "
check_eq "root dir nlink" "$(stat -c %h "$MNT/test")" 2
check_true ".info/build is not empty" -s "$MNT/.info/build"
check_eq ".info/namespaces" "$(run cat "$MNT/.info/namespaces" | sort | tr '\n' ' ')" "other test "

S=$MNT/test/basic
expect_ok "mkdir makes a set" mkdir "$S"
check_true "set is a directory" -d "$S"
check_eq "empty set lists nothing" "$(ls -A "$S" | wc -l)" 0

# ---- write and read -------------------------------------------------------
sh_ok "echo > k" 'echo one > "$1"' "$S/k"
check_eq "cat k" "$(run cat "$S/k")" one
check_eq "stat size of k" "$(stat -c %s "$S/k")" 4
check_eq "k is a regular file" "$(stat -c %F "$S/k")" "regular file"
check_eq "k has 1 link" "$(stat -c %h "$S/k")" 1
sh_ok "echo >> k appends" 'echo two >> "$1"' "$S/k"
check_eq "append kept the old content" "$(run cat "$S/k")" "$(printf 'one\ntwo')"
check_eq "size after append" "$(stat -c %s "$S/k")" 8
sh_ok ": > k truncates" ': > "$1"' "$S/k"
check_eq "size after : >" "$(stat -c %s "$S/k")" 0
check_eq "empty k reads empty" "$(run cat "$S/k" | wc -c)" 0
check_true "empty k still exists" -f "$S/k"

# creat() alone makes the record
expect_ok "touch creates" touch "$S/empty"
check_eq "touched record is empty" "$(stat -c %s "$S/empty")" 0
check_eq "touched record listed" "$(ls "$S" | grep -cx empty)" 1

# ---- truncate: grow zero-filled, shrink -----------------------------------
printf 'abc' >"$S/t"
expect_ok "truncate -s 10" truncate -s 10 "$S/t"
check_eq "size after grow" "$(stat -c %s "$S/t")" 10
check_eq "grown bytes are zeros" "$(run od -An -tx1 "$S/t" | tr -s ' \n' ' ')" " 61 62 63 00 00 00 00 00 00 00 "
expect_ok "truncate -s 3" truncate -s 3 "$S/t"
check_eq "size after shrink" "$(stat -c %s "$S/t")" 3
check_eq "content after shrink" "$(run cat "$S/t")" abc
expect_ok "truncate -s 100000 (sparse growth)" truncate -s 100000 "$S/t"
check_eq "sparse size" "$(stat -c %s "$S/t")" 100000
check_eq "sparse tail is zeros" "$(run tail -c 99997 "$S/t" | tr -d '\0' | wc -c)" 0
expect_ok "truncate -s 0" truncate -s 0 "$S/t"
check_eq "size after truncate 0" "$(stat -c %s "$S/t")" 0

# ---- a 3 MiB file through dd ----------------------------------------------
run head -c $((3 * 1024 * 1024)) /dev/urandom >"$T/r3m"
# 3 MiB is over max-record-size of "test" (1M write blocks): "other" has 4M.
O=$MNT/other
expect_ok "dd 3 MiB into a record (4M write blocks)" dd if="$T/r3m" of="$O/big" bs=1M status=none
check_eq "3 MiB size" "$(stat -c %s "$O/big")" $((3 * 1024 * 1024))
check_eq "3 MiB sha256" "$(run sha256sum <"$O/big" | cut -d' ' -f1)" "$(sha256sum <"$T/r3m" | cut -d' ' -f1)"
check_eq "cmp 3 MiB" "$(run cmp "$T/r3m" "$O/big" 2>&1 && echo same)" same
expect_ok "dd with bs=4k" dd if="$T/r3m" of="$O/big4k" bs=4k status=none
check_eq "bs=4k copy equal" "$(run cmp "$T/r3m" "$O/big4k" 2>&1 && echo same)" same
expect_ok "dd conv=notrunc overwrite in the middle" dd if=/dev/zero of="$O/big" bs=1k count=1 seek=1000 conv=notrunc status=none
check_eq "size kept after notrunc overwrite" "$(stat -c %s "$O/big")" $((3 * 1024 * 1024))
check_eq "overwritten range is zeros" "$(run dd if="$O/big" bs=1k skip=1000 count=1 status=none | tr -d '\0' | wc -c)" 0
check_eq "bytes before the range kept" "$(run head -c 1024000 "$O/big" | sha256sum)" "$(head -c 1024000 "$T/r3m" | sha256sum)"
check_eq "bytes after the range kept" "$(run tail -c +1025025 "$O/big" | sha256sum)" "$(tail -c +1025025 "$T/r3m" | sha256sum)"

# ---- stat: links, inode stability -----------------------------------------
echo hello >"$S/a"
echo world >"$S/b"
ia=$(stat -c %i "$S/a")
check_eq "inode stable across re-stat" "$(stat -c %i "$S/a")" "$ia"
sleep 1.2 # past attr-timeout, so the kernel asks the daemon again
check_eq "inode stable after attr timeout" "$(stat -c %i "$S/a")" "$ia"
echo rewritten >"$S/a"
check_eq "inode stable across rewrite" "$(stat -c %i "$S/a")" "$ia"
rm "$S/a"
echo again >"$S/a"
check_eq "inode of a re-created record is the same (digest)" "$(stat -c %i "$S/a")" "$ia"
check_true "different records, different inodes" "$(stat -c %i "$S/b")" != "$ia"
check_eq "ls -i agrees with stat" "$(ls -i "$S" | awk '$2 == "a" { print $1 }')" "$ia"
check_true "st_blocks covers the size" "$(stat -c %b "$S/b")" -ge 1
check_true "mtime is set" "$(stat -c %Y "$S/b")" -gt 1600000000
now=$(date +%s)
check_true "mtime is recent" $((now - $(stat -c %Y "$S/b"))) -lt 60

# ---- open handles ---------------------------------------------------------
echo "old content" >"$S/h"
exec 7<"$S/h"
rm "$S/h"
check_true "name gone after rm" ! -e "$S/h"
check_eq "open handle reads old content after rm" "$(timeout 5 cat <&7)" "old content"
exec 7<&-
check_true "rm'd record stays gone" ! -e "$S/h"

# a writer holds 12345 bytes, not closed yet
exec 8>"$S/w"
head -c 12345 /dev/zero >&8
check_eq "size while the writer holds it open" "$(stat -c %s "$S/w")" 12345
exec 8>&-
check_eq "size after close" "$(stat -c %s "$S/w")" 12345
sleep 1.2
check_eq "size after close, attrs from the daemon" "$(stat -c %s "$S/w")" 12345

# writes at an offset leave a hole of zeros
printf 'X' | run dd of="$S/off" bs=1 seek=5000 status=none
check_eq "write at offset 5000: size" "$(stat -c %s "$S/off")" 5001
check_eq "hole is zeros" "$(run head -c 5000 "$S/off" | tr -d '\0' | wc -c)" 0
check_eq "byte at 5000" "$(run tail -c 1 "$S/off")" X

# two writers in sequence: the last close wins
echo first >"$S/two"
echo second >"$S/two"
check_eq "last close wins" "$(run cat "$S/two")" second

# binary content with every byte value
run python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256))*17)' >"$T/bin" 2>/dev/null ||
	for i in $(seq 0 255); do printf "\\$(printf %03o "$i")"; done >"$T/bin"
cp "$T/bin" "$S/bin"
check_eq "binary content round-trips" "$(cmp "$T/bin" "$S/bin" 2>&1 && echo same)" same

# names with odd characters are keys too
for n in 'with space' 'dash-and_under' 'ünïcödé' 'x.y.z' '.hidden' 'a=b;c'; do
	printf '%s' "$n" >"$S/$n" || bad "create '$n'"
	check_eq "key '$n' round-trips" "$(cat "$S/$n" 2>&1)" "$n"
done
check_eq "ls -A shows the dot-name" "$(ls -A "$S" | grep -cx '.hidden')" 1

# null-set record next to sets
echo nullset >"$MNT/test/nullrec"
check_eq "null-set record" "$(cat "$MNT/test/nullrec")" nullset
check_eq "namespace lists set and null-set record" "$(ls "$MNT/test" | tr '\n' ' ')" "basic nullrec "
check_eq "ls -l shows the set as a dir" "$(ls -ld "$MNT/test/basic" | cut -c1)" d
check_eq "ls -l shows the record as a file" "$(ls -l "$MNT/test" | awk '$NF == "nullrec" { print substr($1, 1, 1) }')" -

# O_TRUNC with nothing written: the empty file is what the next reader
# sees as soon as close() returned (the kernel's release comes later).
if [ "$HAVE_PYTHON" = yes ]; then
	expect_ok "O_TRUNC + close: empty at once, 300 times" python3 -c '
import os, sys
p = sys.argv[1]
for i in range(300):
    with open(p, "wb") as f:
        f.write(b"x" * (100 + i))
    fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
    os.close(fd)
    with open(p, "rb") as f:
        got = f.read()
    if got:
        sys.exit("round %d: %d bytes after O_TRUNC + close" % (i, len(got)))
    if os.stat(p).st_size != 0:
        sys.exit("round %d: stat size %d after O_TRUNC + close" % (i, os.stat(p).st_size))
' "$S/trunc_close"
fi

assert_serving
finish
