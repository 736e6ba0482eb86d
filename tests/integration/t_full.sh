#!/bin/bash
# t_full: a device-engine namespace filled up through the mount (recfsd(8)
# ERRORS, docs/operations.md Storage full: "nothing already stored is lost").  Files are written
# until a write reports ENOSPC ("No space left on device"); then every
# file written before is intact, the failed file holds no partial content,
# an overwrite either fails and keeps the old content or succeeds whole,
# reads, listings and .info keep working, and the namespace statistics say
# why (fail_out_of_space, free_wblocks, data_used_bytes).  Deleting the
# older half of the files lets new writes succeed again (after defrag, with
# bounded retries), and a clean restart serves exactly the survivors.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

CHECK=$top_builddir/recfs-check
[ -x "$CHECK" ] || fail "$CHECK not built"
DAT=$T/test.dat
SZ=40000          # three files per 128K write block
MAXF=400          # bound: 400 x 40000 bytes is twice the data space
POOL=$T/pool
S=$MNT/test/full
WBS=131072

# slice I: the content of file I (bytes I*SZ .. of the pool).
slice() {
	dd if="$POOL" bs=$SZ skip="$1" count=1 status=none
}
# same_as_slice FILE I: FILE holds exactly slice I.
same_as_slice() {
	[ "$(run cat "$1" 2>/dev/null | sha256sum)" = "$(slice "$2" | sha256sum)" ]
}
# check_files DESC FIRST LAST [STEP]: files fFIRST..fLAST are intact.
check_files() {
	local d=$1 i=$2 broken=""
	while [ "$i" -le "$3" ]; do
		same_as_slice "$S/f$i" "$i" || broken="$broken f$i"
		i=$((i + ${4:-1}))
	done
	if [ -z "$broken" ]; then
		pass "$d"
	else
		bad "$d: differ or unreadable:$(echo "$broken" | cut -c1-200)"
	fi
}

head -c $((MAXF * SZ)) /dev/urandom >"$POOL" || fail "making $POOL"
write_device_config "$DAT" "filesize: 16M" "write-block-size: 128K" "flush-max-ms: 100" \
	"defrag-sleep: 0"
start_daemon
fl=$(daemon_fd_flags "$DAT")
has_o_direct "$fl"
check_eq "direct-io (default true): the storage file is open with O_DIRECT (flags $fl)" "$?" 0
mkdir "$S" || fail "mkdir $S"
TOTAL_WB=$(stat_value test total_wblocks)
note "data space: $TOTAL_WB write blocks of $WBS bytes"
check_true "total_wblocks is reported" -n "$TOTAL_WB"
FREE0=$(stat_value test free_wblocks)

# ---- what an empty store costs (docs/operations.md, "What a store holds") -----------
# df shows the file's size; used on an empty store is the 8 MiB header plus
# the one write block open for writes (it holds the set's marker); avail is
# the free write blocks, the reserve included.
df_out=$(run df -B1 --output=size,used,avail "$MNT/test" | tail -n 1)
check_eq "df size: the storage file's size" "$(echo $df_out | cut -d' ' -f1)" 16777216
check_eq "df used on an empty store: 8 MiB header + one open write block" \
	"$(echo $df_out | cut -d' ' -f2)" $((8388608 + WBS))
check_eq "df avail: the free write blocks ($FREE0)" "$(echo $df_out | cut -d' ' -f3)" $((FREE0 * WBS))
check_eq "total_wblocks: (16 MiB - the 8 MiB header) / 128K" "$TOTAL_WB" 64
RESERVE=4   # 1/16 of the write blocks, at least 2, at most 8

# ---- fill until ENOSPC ------------------------------------------------------------
N=0
FULL=
while [ $N -lt $MAXF ]; do
	if ! run dd if="$POOL" of="$S/f$N" bs=$SZ skip=$N count=1 status=none 2>"$T/dd.err"; then
		FULL=$N
		break
	fi
	N=$((N + 1))
done
[ -n "$FULL" ] || fail "wrote $MAXF files of $SZ bytes ($((MAXF * SZ / 1048576)) MiB) into 8 MiB without an error"
note "file f$N failed: $(cat "$T/dd.err")"
check_true "the write that did not fit fails with ENOSPC" -n "$(grep 'No space left on device' "$T/dd.err")"
check_true "at least half the data space was usable ($N files of $SZ)" \
	$((N * SZ)) -ge $((${TOTAL_WB:-64} * WBS / 2))
# all the write blocks but the reserve hold records, whole records only
# (three of 40000 bytes per 128K block)
check_true "the store held (write blocks - reserve) x 3 files, give or take one block ($N)" \
	"$N" -ge $(( (TOTAL_WB - RESERVE - 1) * 3 )) -a "$N" -le $(( (TOTAL_WB - RESERVE) * 3 ))
if [ -e "$S/f$N" ]; then
	check_eq "the failed file holds nothing partial (it may exist, empty)" "$(stat -c %s "$S/f$N")" 0
else
	pass "the failed file does not exist"
fi
assert_serving "ENOSPC"
check_files "every file written before ENOSPC is intact" 0 $((N - 1))

# Still full: a shell redirection gets the error from close().
slice 0 >"$T/one"
sh_err "cat > a new 40000-byte file while full" "No space left on device" \
	'cat "$1" > "$2"' "$T/one" "$S/g_full"
# An overwrite either fails and keeps the old content, or stores the new
# one whole: nothing already stored is lost.
slice $((MAXF - 1)) >"$T/last"
if run sh -c 'cat "$1" > "$2"' sh "$T/last" "$S/f1" 2>"$T/ow.err"; then
	check_eq "overwrite while full succeeded: new content whole" \
		"$(run cat "$S/f1" | sha256sum)" "$(sha256sum <"$T/last")"
	OW=new
else
	check_true "overwrite while full fails with ENOSPC" -n "$(grep 'No space left on device' "$T/ow.err")"
	check_true "... and f1 keeps its old content" -n "$(same_as_slice "$S/f1" 1 && echo same)"
	OW=old
fi

# ---- what the statistics say ------------------------------------------------------
OOS=$(stat_value test fail_out_of_space)
FREE=$(stat_value test free_wblocks)
USED=$(stat_value test data_used_bytes)
AVAIL=$(stat_value test data_avail_pct)
WERR=$(stat_value test client_write_error)
note "full: fail_out_of_space=$OOS free_wblocks=$FREE (of $TOTAL_WB, $FREE0 at start) data_used_bytes=$USED data_avail_pct=$AVAIL client_write_error=$WERR"
check_true "fail_out_of_space counts the refused writes" "${OOS:-0}" -ge 2
check_true "client_write_error counts them too" "${WERR:-0}" -ge 2
check_true "free_wblocks is down to the reserve (<= 10% of $TOTAL_WB)" \
	"${FREE:-999}" -le $((${TOTAL_WB:-0} / 10))
check_true "data_avail_pct is low" "${AVAIL:-100}" -le 10
check_true "data_used_bytes covers the files ($N x $SZ)" "${USED:-0}" -ge $((N * SZ))
check_true "data_used_bytes is no more than the files plus headers" \
	"${USED:-0}" -le $((N * (SZ + 512) + 65536))
check_eq "objects = files" "$(stat_value test objects)" "$(ls "$S" | wc -l)"
DF_AVAIL=$(df -B1 --output=avail "$MNT/test" | tail -1 | tr -d ' ')
DF_SIZE=$(df -B1 --output=size "$MNT/test" | tail -1 | tr -d ' ')
check_true "df shows the size" "${DF_SIZE:-0}" -gt 0
check_true "df shows little available" "${DF_AVAIL:-999999999}" -le $((${TOTAL_WB:-0} * WBS / 10))
check_true "ls works while full" "$(ls "$S" | wc -l)" -ge "$N"

# ---- deleting makes room again ----------------------------------------------------
HALF=$((N / 2))
RM_FAIL=0
for i in $(seq 0 $((HALF - 1))); do
	run rm "$S/f$i" 2>>"$T/rm.err" || RM_FAIL=$((RM_FAIL + 1))
done
check_eq "rm of the older half (f0..f$((HALF - 1))) succeeds while full" "$RM_FAIL" 0
[ "$RM_FAIL" -eq 0 ] || note "rm: $(head -3 "$T/rm.err")"
check_true "the removed files are gone" ! -e "$S/f0"
USED_RM=$(stat_value test data_used_bytes)
check_true "data_used_bytes went down by the removed files" \
	"${USED_RM:-0}" -le $((USED - HALF * SZ + 65536))

# New files, a quarter of the data space, each retried for a bounded time
# while defrag gives the space back.
NEW=$((TOTAL_WB * WBS / 4 / SZ))
NEW_FAIL=0
RETRIES=0
deadline=$(($(date +%s) + 30))
for j in $(seq 0 $((NEW - 1))); do
	k=$((MAXF - 2 - j)) # pool slices the fill never used
	while ! run dd if="$POOL" of="$S/g$j" bs=$SZ skip=$k count=1 status=none 2>"$T/dd.err"; do
		RETRIES=$((RETRIES + 1))
		if [ "$(date +%s)" -ge $deadline ]; then
			NEW_FAIL=$((NEW_FAIL + 1))
			note "g$j still fails: $(cat "$T/dd.err")"
			break
		fi
		sleep 0.2
	done
done
note "$NEW new files after the rm: $RETRIES retries"
check_eq "new writes succeed again after deleting (within 30 s)" "$NEW_FAIL" 0
NEW_BAD=""
for j in $(seq 0 $((NEW - 1))); do
	same_as_slice "$S/g$j" $((MAXF - 2 - j)) || NEW_BAD="$NEW_BAD g$j"
done
check_eq "the new files are intact" "$NEW_BAD" ""
check_files "the kept older files are intact" $HALF $((N - 1))
check_true "free_wblocks came back up" "$(stat_value test free_wblocks)" -gt "${FREE:-0}"
note "after: $(run cat "$MNT/.info/namespace/test" | grep -E '^(free_wblocks|data_used_bytes|defrag_reads|defrag_writes|defrag_records|fail_out_of_space)=' | tr '\n' ' ')"
assert_serving "refilling"

# ---- a clean restart serves the survivors -----------------------------------------
FILES=$(ls "$S" | wc -l)
stop_daemon
check_eq "recfsd exits 0 at unmount" "$?" 0
run "$CHECK" "$DAT" >"$T/check.out" 2>&1
check_eq "recfs-check exits 0 on the file filled up" "$?" 0
start_daemon
check_eq "after a restart: the same number of files" "$(ls "$S" | wc -l)" "$FILES"
check_true "after a restart: removed files stay removed" ! -e "$S/f$((HALF - 1))"
check_files "after a restart: the kept older files are intact" $HALF $((N - 1))
if [ "$OW" = new ]; then
	check_eq "after a restart: f1 is gone (it was removed)" "$(ls "$S" | grep -cx f1)" 0
fi
NEW_BAD=""
for j in $(seq 0 $((NEW - 1))); do
	same_as_slice "$S/g$j" $((MAXF - 2 - j)) || NEW_BAD="$NEW_BAD g$j"
done
check_eq "after a restart: the new files are intact" "$NEW_BAD" ""
finish
