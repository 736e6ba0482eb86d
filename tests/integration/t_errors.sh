#!/bin/bash
# t_errors: every row of recfsd(8)'s ERRORS table, as the shell shows it,
# and the daemon keeps serving (and keeps what it stored) after each error.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mount_default

S=$MNT/test/err
mkdir "$S" || fail "mkdir $S"
echo keep >"$S/keep"

# still_ok WHAT: after an error the daemon serves and nothing stored is lost.
still_ok() {
	if [ "$(timeout 5 cat "$S/keep" 2>&1)" = keep ] && daemon_serving; then
		pass "serving after $1"
	else
		bad "daemon not serving (or lost data) after $1"
	fi
}

# ---- name too long ----------------------------------------------------------
k255=$(printf 'k%.0s' $(seq 255))
k256=$(printf 'k%.0s' $(seq 256))
sh_ok "key of 255 bytes" 'echo max > "$1"' "$S/$k255"
check_eq "255-byte key reads back" "$(cat "$S/$k255" 2>&1)" max
check_eq "255-byte key listed" "$(ls "$S" | grep -cx "$k255")" 1
sh_err "key of 256 bytes" "File name too long" 'echo x > "$1"' "$S/$k256"
expect_err "stat of a 256-byte key" "File name too long" stat "$S/$k256"
expect_err "touch of a 256-byte key" "File name too long" touch "$S/$k256"
still_ok "ENAMETOOLONG on a key"

s63=$(printf 's%.0s' $(seq 63))
s64=$(printf 's%.0s' $(seq 64))
expect_ok "set name of 63 bytes" mkdir "$MNT/test/$s63"
sh_ok "record in a 63-byte set" 'echo in63 > "$1"' "$MNT/test/$s63/r"
check_eq "record in a 63-byte set reads back" "$(cat "$MNT/test/$s63/r" 2>&1)" in63
expect_err "set name of 64 bytes" "File name too long" mkdir "$MNT/test/$s64"
check_true "no 64-byte set appeared" ! -e "$MNT/test/$s64"
still_ok "ENAMETOOLONG on a set"

# bin names: xattr names over 15 bytes are ERANGE
expect_ok "bin name of 15 bytes" setfattr -n "user.$(printf 'b%.0s' $(seq 15))" -v 1 "$S/keep"
expect_err "bin name of 16 bytes" "Numerical result out of range" \
	setfattr -n "user.$(printf 'b%.0s' $(seq 16))" -v 1 "$S/keep"
expect_err "bin name with a dot" "Invalid argument" setfattr -n user.a.b -v 1 "$S/keep"
still_ok "ERANGE on a bin"

# ---- invalid names ------------------------------------------------------------
expect_err "mkdir at the root (no namespace creation)" "Operation not permitted" mkdir "$MNT/newns"
expect_err "mkdir at the root, bad namespace chars" "Operation not permitted" mkdir "$MNT/bad*ns"
expect_err "mkdir below a file" "Not a directory" mkdir "$S/keep/sub"
expect_ok "mkdir -p a nested path (directories inside a set)" mkdir -p "$MNT/test/p1/p2/p3"
expect_err "a name of 237 bytes inside a directory of a set" "File name too long" \
	mkdir "$MNT/test/p1/p2/$(printf 'n%.0s' $(seq 237))"
expect_ok "a name of 236 bytes there" touch "$MNT/test/p1/p2/$(printf 'n%.0s' $(seq 236))"
expect_err "a symlink target of 4096 bytes" "File name too long" \
	ln -s "$(printf 'x%.0s' $(seq 4096))" "$MNT/test/p1/p2/l"
expect_err "rmdir of a non-empty directory inside a set" "Directory not empty" rmdir "$MNT/test/p1/p2"
expect_err "rename of a directory into its own subtree" "Invalid argument" \
	python3 -c 'import os, sys; os.rename(sys.argv[1], sys.argv[2])' "$MNT/test/p1/p2" \
	"$MNT/test/p1/p2/p3/x"
expect_err "rename of a directory over a file" "Not a directory" \
	python3 -c 'import os, sys; os.rename(sys.argv[1], sys.argv[2])' "$MNT/test/p1/p2/p3" \
	"$MNT/test/p1/p2/$(printf 'n%.0s' $(seq 236))"
expect_err "rename of a directory to another set" "" \
	python3 -c 'import os, sys; os.rename(sys.argv[1], sys.argv[2])' "$MNT/test/p1/p2" "$S/p2"
check_true "the directory stayed" -d "$MNT/test/p1/p2/p3"
expect_ok "rm -r of the nested directories" rm -r "$MNT/test/p1"
expect_err "stat a missing namespace" "No such file or directory" stat "$MNT/nons"
sh_err "create a file at the root" "" 'echo x > "$1"' "$MNT/rootfile"
check_true "no file appeared at the root" ! -e "$MNT/rootfile"
expect_err "rmdir a namespace" "" rmdir "$MNT/other"
check_true "namespace still there" -d "$MNT/other"
still_ok "EPERM/EINVAL on names"

# ---- content past max-record-size: a large file; EFBIG for bins ---------------------
# (1M write blocks.)  A file whose content outgrows one record becomes a
# large file (a head and chunk records, t_large); what cannot grow past a
# record are its other bins (xattrs): EFBIG.
head -c 1000 /dev/urandom >"$T/old"
cp "$T/old" "$S/big"
expect_ok "a 900 KiB record fits" dd if=/dev/zero of="$S/fits" bs=64k count=14 status=none
check_eq "900 KiB size" "$(stat -c %s "$S/fits")" $((64 * 1024 * 14))
expect_ok "2 MiB with dd conv=notrunc: a large file" \
	dd if=/dev/zero of="$S/big" bs=64k count=32 conv=notrunc status=none
check_eq "2 MiB size" "$(stat -c %s "$S/big")" $((2 << 20))
expect_ok "2 MiB appended" sh -c 'head -c 2097152 /dev/zero >> "$1"' sh "$S/big"
check_eq "4 MiB size" "$(stat -c %s "$S/big")" $((4 << 20))
expect_ok "truncate -s 2M of a 900 KiB record" truncate -s 2M "$S/fits"
check_eq "truncated up to 2 MiB" "$(stat -c %s "$S/fits")" $((2 << 20))
expect_ok "and back to 900 KiB" truncate -s $((64 * 1024 * 14)) "$S/fits"
rm -f "$S/fits"
expect_ok "a 900 KiB record again" dd if=/dev/zero of="$S/fits" bs=64k count=14 status=none
expect_errno "xattrs pushing the record over max-record-size" EFBIG '
for i in range(8):
    os.setxattr(sys.argv[1], "user.pad%d" % i, bytes(30000))' "$S/fits"
check_eq "content intact after the xattr EFBIG" "$(head -c 917504 /dev/zero | cmp - "$S/fits" 2>&1 && echo same)" same
still_ok "EFBIG"

# The exact limit, as README.md states it: content + 118 + file-bin name +
# set name + key (+ 6 + name + value per other bin), rounded up to 16 bytes,
# at most max-record-size; and .info shows the limit in effect, not 0.
check_eq ".info/namespace/test: max-record-size in effect (1M), not 0" \
	"$(stat_value test max-record-size)" 1M
check_eq ".info/config: max-record-size in effect" \
	"$(cat "$MNT/.info/config/namespaces/test/max-record-size" 2>&1)" 1M
lim=$((1048576 - 118 - 4 - 3 - 4))   # file-bin "data", set "err", key "edge"
expect_ok "content of exactly the limit ($lim bytes) fits" sh -c 'head -c "$1" /dev/zero >"$2"' sh $lim "$S/edge"
check_eq "limit-sized record stored" "$(stat -c %s "$S/edge")" $lim
c0=$(stat_value test objects_chunks)
expect_ok "one byte more: a large file" sh -c 'head -c "$1" /dev/zero >"$2"' sh $((lim + 1)) "$S/edge"
check_eq "... of 2 chunks of 1020 KiB" $(( $(stat_value test objects_chunks) - c0 )) 2
check_eq "... and its size" "$(stat -c %s "$S/edge")" $((lim + 1))
rm -f "$S/edge"
head -c $((lim - 12)) /dev/zero >"$S/edge" || bad "write $((lim - 12)) bytes"
expect_ok "a bin of 3 bytes named tag costs 6 + 3 + 3 = 12 bytes" setfattr -n user.tag -v abc "$S/edge"
expect_ok "... and then one more byte of content makes it a large file" \
	sh -c 'printf x | dd of="$1" oflag=append conv=notrunc status=none' sh "$S/edge"
check_eq "... of the size written" "$(stat -c %s "$S/edge")" $((lim - 11))
check_eq "... which keeps its bin" "$(getfattr --absolute-names --only-values -n user.tag "$S/edge" 2>&1)" abc
rm -f "$S/edge"

# ---- /.info is read-only ----------------------------------------------------------
sh_err "echo x > .info/statistics" "Permission denied" 'echo x > "$1"' "$MNT/.info/statistics"
sh_err "echo x >> .info/statistics" "Permission denied" 'echo x >> "$1"' "$MNT/.info/statistics"
sh_err "create in .info" "" 'echo x > "$1"' "$MNT/.info/newfile"
check_true "no new file in .info" ! -e "$MNT/.info/newfile"
expect_err "rm .info/statistics" "" rm -f "$MNT/.info/statistics"
check_true ".info/statistics still there" -s "$MNT/.info/statistics"
expect_err "rm -rf .info" "" rm -rf "$MNT/.info"
check_true ".info/build still there" -s "$MNT/.info/build"
expect_err "truncate .info/build" "" truncate -s 0 "$MNT/.info/build"
expect_err "mkdir in .info" "" mkdir "$MNT/.info/x"
expect_err "chmod .info/build" "" chmod 777 "$MNT/.info/build"
expect_err "setfattr on .info/build" "" setfattr -n user.x -v 1 "$MNT/.info/build"
still_ok "EACCES on .info"

# ---- link, symlink, mknod, mkfifo: EPERM ------------------------------------------
expect_err "ln (hard link)" "Operation not permitted" ln "$S/keep" "$S/hard"
expect_err "ln -s in a namespace directory (links live inside sets)" "Operation not permitted" \
	ln -s "$S/keep" "$MNT/test/soft"
expect_err "mkfifo" "Operation not permitted" mkfifo "$S/fifo"
expect_err "mknod b" "Operation not permitted" mknod "$S/blk" b 1 1
expect_err "mknod c" "Operation not permitted" mknod "$S/chr" c 1 3
check_eq "none of them left a name" "$(ls "$S" | grep -cE '^(hard|soft|fifo|blk|chr)$')" 0
expect_err "fallocate of a mode recfs lacks (zero range)" "Operation not supported" fallocate -z -l 4096 "$S/keep"
still_ok "EPERM on links and nodes"

# ---- xattr namespaces --------------------------------------------------------------
expect_err "setfattr trusted.x" "Operation not supported" setfattr -n trusted.x -v 1 "$S/keep"
expect_err "setfattr security.x" "Operation not supported" setfattr -n security.x -v 1 "$S/keep"
expect_err "getfattr of a missing user attr" "No such attribute" getfattr --absolute-names -n user.nope "$S/keep"
expect_err "setfattr -x of a missing attr" "No such attribute" setfattr -x user.nope "$S/keep"
still_ok "EOPNOTSUPP/ENODATA"

# ---- directories ---------------------------------------------------------------------
expect_err "rmdir a non-empty set" "Directory not empty" rmdir "$S"
check_eq "set kept after a failed rmdir" "$(cat "$S/keep" 2>&1)" keep
expect_err "rm of a set without -r" "Is a directory" rm "$S"
expect_err "unlink of a missing record" "No such file or directory" rm "$S/missing"
expect_err "cat of a missing record" "No such file or directory" cat "$S/missing"
expect_err "mkdir of an existing set" "File exists" mkdir "$S"
echo n >"$MNT/test/nullname"
expect_err "mkdir over a null-set record name" "File exists" mkdir "$MNT/test/nullname"
check_eq "null-set record intact" "$(cat "$MNT/test/nullname" 2>&1)" n
expect_errno "record under a regular file" ENOTDIR 'open(sys.argv[1], "w")' "$S/keep/x"
expect_err "open a set for writing" "Is a directory" sh -c 'echo x > "$1"' sh "$S"
still_ok "directory errors"

# ---- rename errors ----------------------------------------------------------------------
expect_errno "rename across namespaces is EXDEV" EXDEV 'os.rename(sys.argv[1], sys.argv[2])' "$S/keep" "$MNT/other/keep"
expect_errno "rename of a set dir is EXDEV" EXDEV 'os.rename(sys.argv[1], sys.argv[2])' "$S" "$MNT/test/err2"
echo target >"$S/target"
expect_errno "RENAME_NOREPLACE onto an existing record is EEXIST" EEXIST '
libc = ctypes.CDLL(None, use_errno=True)
if libc.renameat2(-100, sys.argv[1].encode(), -100, sys.argv[2].encode(), 1) != 0:
    e = ctypes.get_errno(); raise OSError(e, os.strerror(e))' "$S/keep" "$S/target"
check_eq "NOREPLACE left the target" "$(cat "$S/target")" target
expect_errno "RENAME_NOREPLACE onto a free name works" OK '
libc = ctypes.CDLL(None, use_errno=True)
if libc.renameat2(-100, sys.argv[1].encode(), -100, sys.argv[2].encode(), 1) != 0:
    e = ctypes.get_errno(); raise OSError(e, os.strerror(e))' "$S/target" "$S/target2"
check_eq "NOREPLACE rename moved the record" "$(cat "$S/target2" 2>&1)" target
expect_err "mv of a missing record" "No such file or directory" mv "$S/missing" "$S/m2"
still_ok "rename errors"

# ---- the whole time, earlier records are intact --------------------------------------------
check_eq "255-byte key still there" "$(cat "$S/$k255" 2>&1)" max
check_eq "900 KiB record still there" "$(stat -c %s "$S/fits")" $((64 * 1024 * 14))
assert_serving "every error"
finish
