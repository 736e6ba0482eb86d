#!/bin/bash
# t_rename: mv within a set, between sets, to and from the null set, onto an
# existing record, across namespaces (EXDEV, mv copies) and of a whole set
# directory (EXDEV, mv copies) - content, metadata and user xattrs kept.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mount_default

A=$MNT/test/seta
B=$MNT/test/setb
mkdir "$A" "$B" || fail "mkdir sets"

mk() { # mk PATH CONTENT: a record with a bin, a mode and an mtime
	printf '%s' "$2" >"$1" && setfattr -n user.tag -v "$2" "$1" &&
		chmod 640 "$1" && touch -d '2014-04-04 04:04:04 UTC' "$1"
}
# same PATH CONTENT: content, bin, mode and mtime as mk made them
same() {
	local d=$1 p=$2 c=$3
	check_eq "$d: content" "$(cat "$p" 2>&1)" "$c"
	check_eq "$d: user.tag" "$(getx user.tag "$p")" "$c"
	check_eq "$d: mode" "$(stat -c %a "$p" 2>&1)" 640
	check_eq "$d: mtime" "$(stat -c %Y "$p" 2>&1)" "$(date -d '2014-04-04 04:04:04 UTC' +%s)"
}

# ---- within a set -----------------------------------------------------------------
mk "$A/k" one
expect_ok "mv k k2 within a set" mv "$A/k" "$A/k2"
check_true "old name gone" ! -e "$A/k"
same "renamed within a set" "$A/k2" one
check_eq "listing after rename" "$(ls "$A" | tr '\n' ' ')" "k2 "

# ---- onto an existing record --------------------------------------------------------
mk "$A/t" two
expect_ok "mv onto an existing record" mv -f "$A/k2" "$A/t"
same "replaced target" "$A/t" one
check_true "source gone after replacing" ! -e "$A/k2"
check_eq "one record left" "$(ls "$A" | wc -l)" 1

# ---- between sets, to the null set and back ---------------------------------------------
expect_ok "mv to another set" mv "$A/t" "$B/"
same "moved between sets" "$B/t" one
check_true "gone from the old set" ! -e "$A/t"
expect_ok "mv to the null set" mv "$B/t" "$MNT/test/nullt"
same "moved to the null set" "$MNT/test/nullt" one
expect_ok "mv from the null set into a set" mv "$MNT/test/nullt" "$A/back"
same "moved back from the null set" "$A/back" one
check_eq "namespace lists only the sets" "$(ls "$MNT/test" | tr '\n' ' ')" "seta setb "
expect_ok "mv -n onto a free name" mv -n "$A/back" "$A/free"
mk "$A/taken" taken
run mv -n "$A/free" "$A/taken" 2>/dev/null # rc differs between coreutils versions
check_eq "mv -n kept the target" "$(cat "$A/taken")" taken
check_eq "mv -n kept the source" "$(cat "$A/free" 2>&1)" one

# a record opened before the rename keeps reading its content
mk "$A/open" opened
exec 7<"$A/open"
expect_ok "mv of an open record" mv "$A/open" "$A/opened"
check_eq "open handle reads after mv" "$(timeout 5 cat <&7)" opened
exec 7<&-
# a writer that renames before closing writes the new name (like a log rotated)
exec 8>"$A/w"
echo "first" >&8
mv "$A/w" "$A/w.1"
echo "second" >&8
exec 8>&-
check_eq "writes after a rename land in the new name" "$(cat "$A/w.1" 2>&1)" "$(printf 'first\nsecond')"
check_true "the old name did not come back" ! -e "$A/w"

# ---- across namespaces: EXDEV, mv copies + deletes ------------------------------------------
mk "$A/x" cross
mkdir "$MNT/other/o" || fail "mkdir other/o"
expect_ok "mv across namespaces" mv "$A/x" "$MNT/other/o/"
same "moved across namespaces" "$MNT/other/o/x" cross
check_true "source gone after a cross-namespace mv" ! -e "$A/x"
expect_ok "mv across namespaces to the null set" mv "$MNT/other/o/x" "$MNT/other/x"
same "moved across to the null set" "$MNT/other/x" cross
expect_ok "mv back across namespaces" mv "$MNT/other/x" "$B/x"
same "moved back across" "$B/x" cross

# ---- a set directory: EXDEV, mv copies the set ---------------------------------------------------
for i in 1 2 3 4 5; do mk "$B/r$i" "rec$i"; done
expect_ok "mv of a set dir (rename)" mv "$B" "$MNT/test/setc"
check_true "old set gone" ! -e "$B"
for i in 1 2 3 4 5; do same "set moved: r$i" "$MNT/test/setc/r$i" "rec$i"; done
check_eq "moved set has all records" "$(ls "$MNT/test/setc" | wc -l)" 6
expect_ok "mv of a set to another namespace" mv "$MNT/test/setc" "$MNT/other/"
same "set moved across namespaces: r3" "$MNT/other/setc/r3" rec3
check_true "set gone from the first namespace" ! -e "$MNT/test/setc"
expect_ok "mv of an empty set" sh -c 'mkdir "$1" && mv "$1" "$2"' sh "$MNT/test/emptyset" "$MNT/test/emptyset2"
check_true "empty set renamed" -d "$MNT/test/emptyset2"
check_true "old empty set gone" ! -e "$MNT/test/emptyset"

# ---- stats follow: objects count the records, not the moves ------------------------------------
check_eq "objects in test after the moves" "$(stat_value test objects)" "$(find "$MNT/test" -type f | wc -l)"
check_eq "objects in other after the moves" "$(stat_value other objects)" "$(find "$MNT/other" -type f | wc -l)"

assert_serving
finish
