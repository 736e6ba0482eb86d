#!/bin/bash
# t_concurrency: threads and processes writing and reading the same record
# and their own records at once (concurrency_test.c), while the shell lists
# the set; shell jobs writing the same file.  No errors, every read is one
# whole version, the final content is one whole version, counts are right.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

CT=$ITEST_BIN/concurrency_test
[ -x "$CT" ] || fail "$CT not built (make check builds it)"

mount_default

# phase MODE SET: 3 processes x 4 threads on one set (shared written MODE:
# rename = temp name + rename, inplace = O_TRUNC + write + close by several
# writers at once), ls running alongside; then the checks.
phase() {
	local mode=$1 S=$MNT/test/$2 pids="" p i rc f files=0 listings=0 dups=0 deadline alive
	mkdir "$S" || fail "mkdir $S"
	for p in 1 2 3; do
		timeout -k 5 60 "$CT" -m "$mode" -t 4 -i 250 -d 25 -s $p "$S" >"$T/ct$p.out" 2>"$T/ct$p.err" &
		pids="$pids $!"
	done
	# 'shared' exists throughout once the first process has made it.
	for i in $(seq 1 200); do
		[ -e "$S/shared" ] && break
		sleep 0.05
	done
	deadline=$(($(date +%s) + 40))
	while [ $listings -lt 200 ] && [ "$(date +%s)" -lt $deadline ]; do
		run ls -f "$S" >"$T/listing" 2>"$T/ls.err" || bad "$mode: ls during the run: $(cat "$T/ls.err")"
		grep -qx shared "$T/listing" || bad "$mode: listing $listings lacks 'shared' (it exists throughout)"
		[ "$(sort "$T/listing" | uniq -d | wc -l)" -eq 0 ] || dups=$((dups + 1))
		listings=$((listings + 1))
		alive=0
		for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive -eq 0 ] && break
		sleep 0.05
	done
	note "$mode: $listings listings during the run"
	check_eq "$mode: listings with a name twice" $dups 0
	i=1
	for p in $pids; do
		wait "$p"
		rc=$?
		cat "$T/ct$i.out"
		check_eq "$mode: process $i exit status (errors above)" $rc 0
		if [ $rc -ne 0 ]; then
			sed 's/: version w=.*/: .../' "$T/ct$i.err" | sort | uniq -c | sort -rn | head -n 5
			head -n 5 "$T/ct$i.err"
		fi
		f=$(sed -n 's/.* files \([0-9]*\)$/\1/p' "$T/ct$i.out")
		files=$((files + ${f:-0}))
		i=$((i + 1))
	done
	expect_ok "$mode: shared is one whole version at the end" "$CT" -c "$S"
	check_eq "$mode: records in the set = own records left + shared" "$(ls "$S" | grep -cv '^\.tmp-')" $((files + 1))
	check_eq "$mode: no temp names left behind" "$(ls -A "$S" | grep -c '^\.tmp-')" 0
	check_eq "$mode: objects stat matches" "$(stat_value test objects)" "$(find "$MNT/test" -type f | wc -l)"
}
# Readers must always get one whole version (in-place writers and readers
# coordinate with flock, as on a local file system: concurrency_test.c).
phase rename conc_r
phase inplace conc_i
S=$MNT/test/conc_i

# ---- shell jobs: 8 writers of one file, each write a whole line set --------------------------
F=$S/lines
writer() { # writer N: 50 times, replace the file with 200 lines "N i"
	local i
	for i in $(seq 1 50); do
		seq -f "$1 %g" 1 200 >"$F" || return 1
	done
}
pids=""
for w in 1 2 3 4 5 6 7 8; do
	writer $w &
	pids="$pids $!"
done
torn=0
for r in $(seq 1 100); do
	content=$(cat "$F" 2>/dev/null)
	[ -z "$content" ] && continue
	n=$(printf '%s\n' "$content" | awk '{ print $1 }' | sort -u | wc -l)
	l=$(printf '%s\n' "$content" | wc -l)
	if [ "$n" -ne 1 ] || [ "$l" -ne 200 ]; then
		torn=$((torn + 1))
		[ $torn -eq 1 ] && note "torn read: $l lines from $n writers"
	fi
done
rcs=0
for p in $pids; do wait "$p" || rcs=$((rcs + 1)); done
check_eq "shell writers failed" $rcs 0
check_eq "reads mixing writers or partial (of 100)" $torn 0
final=$(cat "$F")
check_eq "final file: one writer" "$(printf '%s\n' "$final" | awk '{ print $1 }' | sort -u | wc -l)" 1
check_eq "final file: 200 lines" "$(printf '%s\n' "$final" | wc -l)" 200

# ---- parallel writers of different files in two namespaces ----------------------------------------
mkdir "$MNT/other/par" || fail "mkdir other/par"
pids=""
for w in 1 2 3 4; do
	(
		for i in $(seq 1 100); do
			echo "t $w $i" >"$S/p$w-$i" || exit 1
			echo "o $w $i" >"$MNT/other/par/p$w-$i" || exit 1
		done
	) &
	pids="$pids $!"
done
rcs=0
for p in $pids; do wait "$p" || rcs=$((rcs + 1)); done
check_eq "parallel writers failed" $rcs 0
check_eq "400 records in other/par" "$(ls "$MNT/other/par" | wc -l)" 400
check_eq "other objects" "$(stat_value other objects)" 400
check_eq "content of p3-77 in test" "$(cat "$S/p3-77")" "t 3 77"
check_eq "content of p3-77 in other" "$(cat "$MNT/other/par/p3-77")" "o 3 77"
bad_content=0
for w in 1 2 3 4; do
	for i in $(seq 1 100); do
		[ "$(cat "$MNT/other/par/p$w-$i")" = "o $w $i" ] || bad_content=$((bad_content + 1))
	done
done
check_eq "records with wrong content" $bad_content 0

assert_serving
finish
