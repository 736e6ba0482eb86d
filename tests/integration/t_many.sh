#!/bin/bash
# t_many: 2,000 records in one set - ls, find, cat all back, stats; and
# listings taken while other processes create and delete records never show
# a name twice and never miss a record that existed throughout (recfsd(8),
# Listings).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mount_default

N=2000
S=$MNT/test/many
L=$T/local
mkdir "$S" "$L" || fail "mkdir"

# local copies first, then one shell loop through the mount
for i in $(seq 1 $N); do
	printf 'record %d %s\n' "$i" "$(printf '%*s' $((i % 97)) '' | tr ' ' x)" >"$L/f$i"
done
start=$(date +%s)
for i in $(seq 1 $N); do
	cat "$L/f$i" >"$S/f$i" || { bad "create f$i"; break; }
done
note "created $N records in $(($(date +%s) - start)) s"

check_eq "ls | wc -l" "$(run ls "$S" | wc -l)" $N
check_eq "ls -f (unsorted) | wc -l" "$(run ls -f "$S" | grep -cv '^\.\.\?$')" $N
check_eq "ls has no duplicates" "$(run ls -f "$S" | sort | uniq -d | wc -l)" 0
check_eq "find -type f | wc -l" "$(run find "$S" -type f | wc -l)" $N
check_eq "ls -l lists every size" "$(run ls -l "$S" | awk 'NR > 1 { s += $5 } END { print s }')" "$(cat "$L"/f* | wc -c)"
check_eq "diff -r against the local copies" "$(run diff -r "$L" "$S" 2>&1 | head -n 5; echo end)" end
check_eq "cat of all records" "$(cd "$S" && run cat $(seq -f 'f%g' 1 $N) | sha256sum)" "$(cd "$L" && cat $(seq -f 'f%g' 1 $N) | sha256sum)"
check_eq "objects stat" "$(stat_value test objects)" $N
check_eq "ls of the sorted names" "$(run ls "$S" | sort | sha256sum)" "$(ls "$L" | sort | sha256sum)"

# ---- listings during concurrent creates and deletes -------------------------------------
# f1..f1000 stay the whole time; churn processes create and delete c* names
# and delete+recreate nothing else.
seq -f 'f%g' 1 1000 | sort >"$T/stable"
churn() { # churn TAG COUNT
	local i
	for i in $(seq 1 "$2"); do
		echo "$1 $i" >"$S/c$1-$i" || return 1
		[ $((i % 3)) -eq 0 ] && { rm "$S/c$1-$((i - 1))" || return 1; }
	done
	return 0
}
for i in $(seq 1001 $N); do rm "$S/f$i" || { bad "rm f$i"; break; }; done
check_eq "1000 left after deletes" "$(run ls "$S" | wc -l)" 1000
churn a 1500 &
c1=$!
churn b 1500 &
c2=$!
listings=0
dups=0
missing=0
deadline=$(($(date +%s) + 40))
while [ $listings -lt 60 ] && [ "$(date +%s)" -lt $deadline ]; do
	run ls -f "$S" | grep -v '^\.\.\?$' >"$T/listing" || bad "ls -f failed during churn"
	d=$(sort "$T/listing" | uniq -d | wc -l)
	m=$(sort -u "$T/listing" | comm -23 "$T/stable" - | wc -l)
	[ "$d" -ne 0 ] && { dups=$((dups + 1)); note "listing $listings: $d duplicate names: $(sort "$T/listing" | uniq -d | head -n 3 | tr '\n' ' ')"; }
	[ "$m" -ne 0 ] && { missing=$((missing + 1)); note "listing $listings: $m stable records missing: $(sort -u "$T/listing" | comm -23 "$T/stable" - | head -n 3 | tr '\n' ' ')"; }
	listings=$((listings + 1))
	kill -0 $c1 2>/dev/null || kill -0 $c2 2>/dev/null || break
done
wait $c1
r1=$?
wait $c2
r2=$?
note "$listings listings taken during the churn"
check_true "at least 2 listings overlapped the churn" $listings -ge 2
check_eq "churn a had no errors" $r1 0
check_eq "churn b had no errors" $r2 0
check_eq "listings with duplicate names" $dups 0
check_eq "listings missing stable records" $missing 0
# c*-i survives unless i+1 is a multiple of 3 (deleted when i+1 was written)
want=$((1000 + 2 * (1500 - 1500 / 3)))
check_eq "records after the churn" "$(run ls "$S" | wc -l)" $want
check_eq "objects after the churn" "$(stat_value test objects)" $want
check_eq "a churned record's content" "$(cat "$S/ca-1" 2>&1)" "a 1"
check_true "a deleted churn record is gone" ! -e "$S/ca-2"

# ---- find / ls -R over the whole namespace -------------------------------------------------
check_eq "find over the namespace" "$(run find "$MNT/test" -type f | wc -l)" $want
check_eq "du --inodes" "$(run du --inodes -s "$S" | cut -f1)" $((want + 1))
expect_ok "rm -rf of the big set" rm -rf "$S"
check_eq "objects 0 after rm -rf" "$(stat_value test objects)" 0

assert_serving
finish
