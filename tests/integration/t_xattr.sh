#!/bin/bash
# t_xattr: bins as user.* xattrs and record metadata as user.recfs.* through
# setfattr/getfattr (recfsd(8), EXTENDED ATTRIBUTES).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mount_default

S=$MNT/test/xa
mkdir "$S" || fail "mkdir $S"
F=$S/rec
echo content >"$F"

# ---- create, replace, remove --------------------------------------------------
expect_ok "setfattr user.b" setfattr -n user.b -v 42 "$F"
check_eq "getfattr user.b" "$(getx user.b "$F")" 42
expect_ok "setfattr user.b again (replace)" setfattr -n user.b -v 4242 "$F"
check_eq "replaced value" "$(getx user.b "$F")" 4242
expect_ok "setfattr user.color" setfattr -n user.color -v blue "$F"
check_eq "getfattr --absolute-names -d lists the bins" "$(run getfattr --absolute-names -d "$F" 2>/dev/null | grep -E '^user\.(b|color)=' | sort | tr '\n' ' ')" 'user.b="4242" user.color="blue" '
check_eq "getfattr --absolute-names -d -e hex" "$(run getfattr --absolute-names -d -e hex -n user.b "$F" 2>/dev/null | grep '^user.b=')" "user.b=0x34323432"
check_eq "content untouched by xattrs" "$(cat "$F")" content
check_eq "size untouched by xattrs" "$(stat -c %s "$F")" 8
check_eq "file bin is not listed as an xattr" "$(run getfattr --absolute-names -d -m - "$F" 2>/dev/null | grep -c '^user.data=')" 0
expect_ok "setfattr -x user.b" setfattr -x user.b "$F"
expect_err "getfattr after remove" "No such attribute" getfattr --absolute-names -n user.b "$F"
expect_err "setfattr -x twice" "No such attribute" setfattr -x user.b "$F"
check_eq "other bin kept" "$(getx user.color "$F")" blue
expect_err "getfattr of a bin never set" "No such attribute" getfattr --absolute-names -n user.nope "$F"
expect_ok "empty value" setfattr -n user.empty "$F"
check_eq "empty value reads back empty" "$(run getfattr --absolute-names -e hex -n user.empty "$F" 2>/dev/null | grep '^user.empty')" 'user.empty=0x'
expect_ok "binary value from hex" setfattr -n user.bin -v 0x00ff7f80 "$F"
check_eq "binary value back" "$(run getfattr --absolute-names -e hex -n user.bin "$F" 2>/dev/null | grep '^user.bin=')" "user.bin=0x00ff7f80"

# xattrs survive rewriting the content
echo "new content" >"$F"
check_eq "xattr kept across a content rewrite" "$(getx user.color "$F")" blue
echo more >>"$F"
check_eq "xattr kept across an append" "$(getx user.color "$F")" blue
truncate -s 2 "$F"
check_eq "xattr kept across truncate" "$(getx user.color "$F")" blue

# ---- large values ----------------------------------------------------------------
head -c 5000 /dev/urandom >"$T/v5000"
expect_ok "setfattr of a 5000-byte value from a file" setfattr -n user.big --value="0x$(od -An -tx1 -v "$T/v5000" | tr -d ' \n')" "$F"
check_eq "5000-byte value back" "$(run getfattr --absolute-names -e hex --only-values -n user.big "$F" 2>/dev/null | od -An -tx1 -v | tr -d ' \n' | wc -c)" 10000
if [ "$HAVE_PYTHON" = yes ]; then
	out=$(run python3 - "$F" "$T/v5000" <<'EOF' 2>&1
import os, sys
f, vf = sys.argv[1], sys.argv[2]
v = open(vf, "rb").read()
os.setxattr(f, "user.big2", v)
got = os.getxattr(f, "user.big2")
assert got == v, "value differs (%d bytes back)" % len(got)
names = os.listxattr(f)
assert "user.big2" in names and "user.big" in names, names
# size probing: getxattr(size=0) returns the size, a short buffer ERANGE
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
n = libc.getxattr(f.encode(), b"user.big2", None, 0)
assert n == 5000, "size probe gave %d" % n
buf = ctypes.create_string_buffer(100)
r = libc.getxattr(f.encode(), b"user.big2", buf, 100)
assert r == -1 and ctypes.get_errno() == errno.ERANGE, "short buffer: %d errno %d" % (r, ctypes.get_errno())
n = libc.listxattr(f.encode(), None, 0)
assert n > 0, "listxattr size probe gave %d" % n
buf = ctypes.create_string_buffer(2)
r = libc.listxattr(f.encode(), buf, 2)
assert r == -1 and ctypes.get_errno() == errno.ERANGE, "short list buffer: %d" % r
# XATTR_CREATE / XATTR_REPLACE
try:
    os.setxattr(f, "user.big2", b"x", os.XATTR_CREATE); raise SystemExit("XATTR_CREATE on existing succeeded")
except FileExistsError: pass
try:
    os.setxattr(f, "user.fresh", b"x", os.XATTR_REPLACE); raise SystemExit("XATTR_REPLACE on missing succeeded")
except OSError as e:
    assert e.errno == errno.ENODATA, e
os.setxattr(f, "user.fresh", b"x", os.XATTR_CREATE)
os.setxattr(f, "user.fresh", b"yy", os.XATTR_REPLACE)
assert os.getxattr(f, "user.fresh") == b"yy"
# a value at the Linux limit (64 KiB)
os.setxattr(f, "user.max", bytes(range(256)) * 256)
assert os.getxattr(f, "user.max") == bytes(range(256)) * 256
print("OK")
EOF
)
	check_eq "python: 5000-byte value, size probing, CREATE/REPLACE, 64 KiB value" "$out" OK
fi
expect_ok "many bins on one record" sh -c 'for i in $(seq 1 100); do setfattr -n user.n$i -v v$i "$1" || exit 1; done' sh "$F"
check_eq "100 bins listed" "$(run getfattr --absolute-names -d "$F" 2>/dev/null | grep -c '^user\.n[0-9]*=')" 100
check_eq "bin 77" "$(getx user.n77 "$F")" v77

# ---- record metadata: user.recfs.* ----------------------------------------------------
G=$S/meta
echo v1 >"$G"
g1=$(getx user.recfs.generation "$G")
check_true "generation is a number >= 1 ($g1)" "${g1:-0}" -ge 1
echo v2 >"$G"
g2=$(getx user.recfs.generation "$G")
check_true "generation grows on rewrite ($g1 -> $g2)" "${g2:-0}" -gt "${g1:-0}"
setfattr -n user.x -v 1 "$G"
g3=$(getx user.recfs.generation "$G")
check_true "generation grows on setxattr ($g2 -> $g3)" "${g3:-0}" -gt "${g2:-0}"
cat "$G" >/dev/null
check_eq "generation unchanged by a read" "$(getx user.recfs.generation "$G")" "$g3"

d=$(getx user.recfs.digest "$G")
check_true "digest is 40 hex chars ($d)" "$(printf '%s' "$d" | grep -cxE '[0-9a-fA-F]{40}')" -eq 1
p=$(getx user.recfs.partition "$G")
check_true "partition in 0..4095 ($p)" "$(printf '%s' "$p" | grep -cxE '[0-9]+')" -eq 1 -a "${p:-99999}" -le 4095
if command -v openssl >/dev/null 2>&1 && printf x | openssl dgst -ripemd160 >/dev/null 2>&1; then
	# Aerospike's digest: RIPEMD-160(set + key type 3 (string) + key)
	want=$(printf 'xa\003meta' | openssl dgst -ripemd160 -r | cut -d' ' -f1)
	check_eq "digest is Aerospike's RIPEMD-160(set, 3, key)" "$(printf '%s' "$d" | tr A-F a-f)" "$want"
	wantp=$(( (0x${want:0:2} | (0x${want:2:2} << 8)) & 0xFFF ))
	check_eq "partition from digest bytes 0..3 & 0xFFF" "$p" "$wantp"
	echo nullset >"$MNT/test/nullkey"
	want=$(printf '\003nullkey' | openssl dgst -ripemd160 -r | cut -d' ' -f1)
	check_eq "null-set digest" "$(getx user.recfs.digest "$MNT/test/nullkey" | tr A-F a-f)" "$want"
fi
lu=$(getx user.recfs.last_update "$G")
check_true "last_update is a number ($lu)" "$(printf '%s' "$lu" | grep -cxE '[0-9]+')" -eq 1
echo v3 >"$G"
lu2=$(getx user.recfs.last_update "$G")
check_true "last_update does not go back on rewrite ($lu -> $lu2)" "${lu2:-0}" -ge "${lu:-1}"

# TTL: -1 = never (no default-ttl), writing N sets it, kept across rewrites
check_eq "ttl of a record without TTL" "$(getx user.recfs.ttl "$G")" -1
check_eq "void_time of a record without TTL" "$(getx user.recfs.void_time "$G")" 0
expect_ok "setfattr user.recfs.ttl 3600" setfattr -n user.recfs.ttl -v 3600 "$G"
ttl=$(getx user.recfs.ttl "$G")
check_true "ttl after setting 3600 ($ttl)" "${ttl:--5}" -gt 3500 -a "${ttl:--5}" -le 3600
check_true "void_time set after a TTL ($(getx user.recfs.void_time "$G"))" "$(getx user.recfs.void_time "$G")" -gt 0
echo v4 >"$G"
ttl=$(getx user.recfs.ttl "$G")
check_true "ttl kept across a rewrite ($ttl)" "${ttl:--5}" -gt 3500 -a "${ttl:--5}" -le 3600
check_eq "content after TTL" "$(cat "$G")" v4
expect_ok "setfattr user.recfs.ttl -1" setfattr -n user.recfs.ttl -v -1 "$G"
check_eq "ttl back to never" "$(getx user.recfs.ttl "$G")" -1
expect_ok "setfattr user.recfs.ttl 0 (namespace default = never here)" setfattr -n user.recfs.ttl -v 0 "$G"
check_eq "ttl 0 gives the namespace default (never)" "$(getx user.recfs.ttl "$G")" -1
expect_err "setfattr user.recfs.ttl garbage" "Invalid argument" setfattr -n user.recfs.ttl -v abc "$G"

# a short TTL makes the record vanish
echo short >"$S/short"
expect_ok "setfattr user.recfs.ttl 1" setfattr -n user.recfs.ttl -v 1 "$S/short"
i=0
while [ -e "$S/short" ] && [ $i -lt 40 ]; do sleep 0.2; i=$((i + 1)); done
check_true "record with TTL 1 s is gone within 8 s" ! -e "$S/short"
check_eq "expired record not listed" "$(ls "$S" | grep -cx short)" 0

# read-only metadata: writes accepted and ignored
gen=$(getx user.recfs.generation "$G")
expect_ok "write to user.recfs.generation accepted" setfattr -n user.recfs.generation -v 999 "$G"
check_true "generation not set to 999" "$(getx user.recfs.generation "$G")" != 999
expect_ok "write to user.recfs.digest accepted" setfattr -n user.recfs.digest -v 00 "$G"
check_eq "digest unchanged" "$(getx user.recfs.digest "$G")" "$d"
expect_ok "write to user.recfs.partition accepted" setfattr -n user.recfs.partition -v 1 "$G"
check_eq "partition unchanged" "$(getx user.recfs.partition "$G")" "$p"
expect_ok "write to user.recfs.last_update accepted" setfattr -n user.recfs.last_update -v 1 "$G"
expect_ok "write to user.recfs.void_time accepted" setfattr -n user.recfs.void_time -v 1 "$G"

# metadata follows rename; digest follows the name
mv "$G" "$S/meta2"
check_true "digest changes with the key" "$(getx user.recfs.digest "$S/meta2")" != "$d"
check_eq "bins follow a rename" "$(getx user.x "$S/meta2")" 1

# other xattr namespaces
expect_err "trusted.x" "Operation not supported" setfattr -n trusted.x -v 1 "$F"
expect_err "security.x" "Operation not supported" setfattr -n security.x -v 1 "$F"
expect_err "system.x" "Operation not supported" setfattr -n system.x -v 1 "$F"
expect_err "getfattr trusted.x" "" getfattr --absolute-names -n trusted.x "$F"

# xattrs on set directories and on .info are not records
expect_err "getfattr of a bin on a set dir" "" getfattr --absolute-names -n user.b "$S"

assert_serving
finish
