#!/bin/bash
# t_jepsen_checker: the fault-injection test's checker (jepsen_check.py) on
# hand-made histories, no mount: every anomaly it knows (LOST, RESURRECTED,
# STALE, DIVERGED, BOGUS, CREATE-ENOENT) is found with the operations that
# decide it, histories where concurrent or indeterminate operations win
# pass, and a split's acknowledged writes replaced from the other side are
# reported as SUPERSEDED without failing.  Each case is a few log lines in the format
# jepsen_client.c writes and one view per node.
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
command -v python3 >/dev/null 2>&1 || { echo "SKIP: t_jepsen_checker needs python3"; exit 77; }
CHECK=$top_srcdir/tests/integration/jepsen_check.py
D=$(mktemp -d "${TMPDIR:-/tmp}/recfs-t_jepsen_checker.XXXXXX") || exit 99
trap 'rm -rf "$D"' EXIT
FAILS=0
BASE=1700000000000000000

bad() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }

# new_case: empty logs and views; clients 1 and 2 through n1 and n2, client
# 3 through n3.
new_case() {
	rm -f "$D"/*.log "$D"/*.view
	local c
	for c in 1 2 3; do echo "client $c node n$c seed 1 keys 4 pid $((100 + c))" >"$D/c$c.log"; done
}
# op C N NAME KIND VALUE START_MS END_MS OUTCOME (END_MS "-": no end line)
op() {
	local s=$((BASE + $6 * 1000000)) e
	echo "begin $1 $2 $3 $4 $5 $s" >>"$D/c$1.log"
	[ "$7" = - ] && return
	e=$((BASE + $7 * 1000000))
	echo "end $1 $2 $3 $4 $5 $s $e $8" >>"$D/c$1.log"
}
# view NODE "NAME STATE" ...: the listing is every name not absent
view() {
	local n=$1 l ls=""
	shift
	for l in "$@"; do
		echo "$l"
		case $l in *" absent" | *" error "*) ;; *) ls="$ls ${l%% *}" ;; esac
	done >"$D/$n.view"
	echo "ls$ls" >>"$D/$n.view"
}
# expect DESC RC [PATTERN...]: run the checker on the case; exit status RC
# and every PATTERN (extended regex) in its output
expect() {
	local d=$1 want=$2 out rc p v args=()
	shift 2
	for v in "$D"/*.view; do args+=(--view "$(basename "$v" .view)=$v"); done
	out=$(python3 "$CHECK" check "${CHECK_EXTRA[@]}" "${args[@]}" "$D"/c*.log 2>&1)
	rc=$?
	if [ "$rc" != "$want" ]; then
		bad "$d: exit $rc, expected $want"
		echo "$out" | sed 's/^/#   /'
		return
	fi
	for p in "$@"; do
		if ! echo "$out" | grep -Eq -- "$p"; then
			bad "$d: no line matching '$p' in:"
			echo "$out" | sed 's/^/#   /'
			return
		fi
	done
	echo "ok: $d"
}
CHECK_EXTRA=()

# ---- clean histories ---------------------------------------------------------
new_case
op 1 1 k000 write 1.1 0 10 ok
op 2 1 k000 overwrite 2.1 20 30 ok            # after 1.1: wins
op 1 2 k001 write 1.2 0 10 ok
op 2 2 k001 delete - 20 30 ok                 # k001 deleted
op 1 3 k002 write 1.3 0 50 ok
op 2 3 k002 write 2.3 10 40 ok                # concurrent with 1.3: either wins
op 1 4 k003 overwrite 1.4 0 5 fail:ENOENT     # no effect, k003 never existed
op 3 1 k001 delete - 40 45 fail:ENOENT
for n in n1 n2 n3; do view $n "k000 value 2.1" "k001 absent" "k002 value 1.3" "k003 absent"; done
expect "a clean history passes" 0 "^LOST 0" "^RESURRECTED 0" "^DIVERGED 0" "^BOGUS 0" "RESULT ok" \
	"acknowledged 6, failed without effect \(ENOENT\) 2"

new_case
op 1 1 k000 write 1.1 0 10 ok
op 2 1 k000 write 2.1 20 30 fail:EIO          # indeterminate after the ack: may win
op 1 2 k001 write 1.2 0 10 ok
op 3 1 k001 write 3.1 20 - x                  # no end (client killed): may win
op 1 3 k002 write 1.3 0 10 ok
op 3 2 k002 write 3.2 20 9999 unknown:timeout # may have left the file empty
op 2 2 k003 write 2.2 0 10 fail:EIO           # only a failed write: absent, empty or 2.2
for n in n1 n2; do view $n "k000 value 2.1" "k001 value 3.1" "k002 empty" "k003 value 2.2"; done
expect "indeterminate operations after the last acknowledged one may win" 0 "RESULT ok" \
	"failed \(indeterminate\) 2, unknown 2"
new_case
op 2 2 k003 write 2.2 0 10 fail:ENOTCONN
for n in n1 n2; do view $n "k003 absent"; done
expect "a failed write may also have had no effect" 0 "RESULT ok"

# ---- LOST --------------------------------------------------------------------
new_case
op 1 1 k000 write 1.1 0 10 ok
op 1 2 k001 write 1.2 0 10 ok
op 2 1 k001 overwrite 2.1 20 30 ok
op 1 3 k002 write 1.3 0 10 ok
op 2 2 k002 write 2.2 20 30 fail:EIO          # acked 3.1 came after it ended
op 3 1 k002 write 3.1 40 50 ok
for n in n1 n2 n3; do view $n "k000 absent" "k001 value 1.2" "k002 value 2.2"; done
expect "an acknowledged write missing or replaced by an older value is LOST" 1 "^LOST 3" \
	"^LOST k000: acknowledged value 1.1 missing: shows absent \(n1,n2,n3\)" \
	"^LOST k001: acknowledged value 2.1 missing: shows value 1.2" \
	"^LOST k002: acknowledged value 3.1 missing: shows value 2.2" \
	"c2#1 overwrite 2.1 via n2 \[20.0 .. 30.0 ms\] ok" "RESULT 3 anomalies"

new_case
op 1 1 k000 write 1.1 0 10 ok
for n in n1 n2; do view $n "k000 empty"; done
expect "an acknowledged write read back empty is LOST" 1 "^LOST k000: .*shows empty"

# ---- RESURRECTED ---------------------------------------------------------------
new_case
op 1 1 k000 write 1.1 0 10 ok
op 2 1 k000 delete - 20 30 ok
op 1 2 k001 write 1.2 0 10 ok
op 2 2 k001 write 2.2 12 15 fail:EIO
op 3 1 k001 delete - 20 30 ok
for n in n1 n2; do view $n "k000 value 1.1" "k001 value 2.2"; done
expect "a value written before an acknowledged delete is RESURRECTED" 1 "^RESURRECTED 2" \
	"^RESURRECTED k000: deleted \(acknowledged\) but shows value 1.1" "^RESURRECTED k001" \
	"c3#1 delete - via n3"

# ---- STALE -----------------------------------------------------------------------------
new_case
op 1 1 k000 write 1.1 0 10 ok
op 2 1 k000 overwrite 2.1 20 30 fail:ENOENT   # 1.1 was acknowledged before: lost for a while
op 1 2 k000 write 1.2 40 50 ok
op 1 3 k001 write 1.3 0 10 ok
op 2 2 k001 delete - 5 25 ok                  # concurrent delete: absent is possible
op 3 1 k001 overwrite 3.1 20 30 fail:ENOENT
op 1 4 k002 write 1.4 0 10 ok
op 2 3 k002 delete - 12 15 fail:EIO           # may have deleted it
op 3 2 k002 delete - 20 30 fail:ENOENT
op 1 5 k003 write 1.5 0 30 ok                 # not ended when the delete started
op 3 3 k003 delete - 20 25 fail:ENOENT
for n in n1 n2; do view $n "k000 value 1.2" "k001 absent" "k002 absent" "k003 value 1.5"; done
expect "ENOENT after an acknowledged write with no delete in between is STALE" 1 "^STALE 1" \
	"^STALE k000: overwrite answered ENOENT at 20.0 ms after acknowledged value 1.1 \(via n2\)" "^LOST 0"

# ---- DIVERGED ----------------------------------------------------------------------
new_case
op 1 1 k000 write 1.1 0 50 ok
op 2 1 k000 write 2.1 10 40 ok
op 1 2 k001 write 1.2 0 10 ok
view n1 "k000 value 1.1" "k001 value 1.2"
view n2 "k000 value 2.1" "k001 value 1.2"
expect "nodes showing different values (each one allowed) DIVERGED" 1 "^DIVERGED 1" \
	"^DIVERGED k000: nodes differ: n1 value 1.1, n2 value 2.1" "^LOST 0"
new_case
op 1 1 k000 write 1.1 0 10 ok
view n1 "k000 value 1.1"
view n2 "k000 value 1.1"
echo "ls" >"$D/n2.view"
sed -i '1i k000 value 1.1' "$D/n2.view"
expect "a listing that disagrees with the reads is DIVERGED" 1 \
	"^DIVERGED k000: n2: reads value 1.1 but its listing does not show it"

# ---- BOGUS ----------------------------------------------------------------------------
new_case
op 1 1 k000 write 1.1 0 10 ok
op 1 2 k001 overwrite 1.2 0 10 fail:ENOENT
for n in n1 n2; do view $n "k000 value 9.9" "k001 value 1.2" "k002 bad 6a756e6b" "k003 error EIO"; done
expect "values nobody wrote, garbage and read errors are BOGUS" 1 "^BOGUS 4" \
	"^BOGUS k000: shows value 9.9, which no operation" "^BOGUS k001: .*failed without effect" \
	"^BOGUS k002: shows bad" "^BOGUS k003: shows error EIO"

# ---- CREATE-ENOENT ---------------------------------------------------------------------
new_case
op 1 1 k000 write 1.1 0 10 ok
op 2 1 k000 delete - 20 30 ok
op 1 2 k000 write 1.2 40 41 fail:ENOENT      # open(O_CREAT) of a name deleted elsewhere
op 2 2 k001 write 2.2 0 10 ok
for n in n1 n2; do view $n "k000 absent" "k001 value 2.2"; done
expect "a write (O_CREAT) answered ENOENT is CREATE-ENOENT" 1 "^CREATE-ENOENT 1" \
	"^CREATE-ENOENT k000: a write \(open with O_CREAT\) answered ENOENT \(via n1\)" \
	"c1#2 write 1.2 via n1" "^LOST 0" "RESULT 1 anomalies"

# ---- split ----------------------------------------------------------------------------
new_case
op 1 1 k000 write 1.1 100 110 ok        # side A, during the split
op 3 1 k000 write 3.1 150 160 ok        # side B, later: supersedes 1.1
op 1 2 k001 write 1.2 100 110 ok        # side A
op 2 1 k001 write 2.1 120 130 ok        # side A again: an ordinary overwrite
op 1 3 k002 write 1.3 10 20 ok          # before the split
op 3 2 k002 write 3.2 150 160 ok
op 3 3 k001 overwrite 3.3 200 210 fail:ENOENT   # side B never saw side A's 1.2, 2.1
op 3 4 k002 delete - 140 145 fail:ENOENT        # nor 1.3, written before the split
for n in n1 n2 n3; do view $n "k000 value 3.1" "k001 value 2.1" "k002 value 3.2"; done
CHECK_EXTRA=(--split $((BASE + 50 * 1000000)) $((BASE + 500 * 1000000)) n1,n2 n3)
expect "a split: writes replaced from the other side are SUPERSEDED, not lost" 0 "^SUPERSEDED 1 " \
	"^SUPERSEDED k000: c1#1 write 1.1 via n1 .* by  c3#1 write 3.1 via n3" "RESULT ok" \
	"^STALE in the split 2 " "^STALE 0"
new_case
op 1 1 k000 write 1.1 100 110 ok
op 2 1 k000 delete - 120 130 fail:ENOENT        # same side, after 1.1: an anomaly
op 1 2 k001 write 1.2 100 110 ok
op 1 3 k001 delete - 600 610 fail:ENOENT        # after the heal: an anomaly
for n in n1 n2 n3; do view $n "k000 value 1.1" "k001 value 1.2"; done
expect "a split: ENOENT on the side that wrote it, or after the heal, is STALE" 1 "^STALE 2" \
	"^STALE in the split 0 "
new_case
op 1 1 k000 write 1.1 0 10 ok
op 3 1 k000 overwrite 3.1 120 130 fail:ENOENT   # n3 isolated (first window)
op 1 2 k000 write 1.2 300 310 ok
op 2 1 k000 delete - 700 710 fail:ENOENT        # n2 isolated (second window)
op 3 2 k001 write 3.2 650 660 ok                # through the other side: excused
op 2 2 k001 delete - 720 730 fail:ENOENT
op 2 3 k002 write 2.3 650 660 ok                # through n2 itself: STALE
op 2 4 k002 delete - 720 730 fail:ENOENT
op 3 3 k003 write 3.3 650 660 ok                # the other side's, missed after the merge
op 2 5 k003 overwrite 2.5 2900 2910 fail:ENOENT
op 2 6 k004 write 2.6 2000 2010 ok              # the split's own side, missed in its last second
op 2 7 k004 delete - 2500 2510 fail:ENOENT
for n in n1 n2 n3; do
	view $n "k000 value 1.2" "k001 value 3.2" "k002 value 2.3" "k003 value 3.3" "k004 value 2.6"
done
CHECK_EXTRA=(--split $((BASE + 100 * 1000000)) $((BASE + 200 * 1000000)) n3 n1,n2
	--split $((BASE + 600 * 1000000)) $((BASE + 2800 * 1000000)) n2 n1,n3)
expect "isolations, one window each: ENOENTs in each excused, the isolated side's STALE, one after the merge" 1 \
	"^STALE 3" "^STALE k004: delete .* \[at or after the merge" "^STALE k002: delete answered ENOENT .* after acknowledged value 2.3 \(via n2\)$" \
	"^STALE k003: overwrite .* \(via n2\) \[at or after the merge of a split: missed a write made during it\]" "^STALE in the split 3 "
new_case
op 1 1 k000 write 1.1 100 110 ok
op 3 1 k000 write 3.1 150 160 ok
for n in n1 n2 n3; do view $n "k000 value 1.1"; done
expect "a split: the earlier write winning the conflict is LOST" 1 "^LOST k000: acknowledged value 3.1 missing"
# The cut goes in from 50 to 80 ms: a write through n1 in between may have
# reached a master on n3's side (so n2's ENOENT is allowed and n1's write
# is not side A's for SUPERSEDED); an operation that started before the
# split and was answered during it is the split's too.
new_case
op 1 1 k000 write 1.1 60 65 ok                  # during the cut: neither side's
op 2 1 k000 overwrite 2.1 200 210 fail:ENOENT
op 1 2 k001 write 1.2 10 20 ok                  # before the split
op 3 1 k001 delete - 45 120 fail:ENOENT         # answered by n3's side
op 1 3 k002 write 1.3 70 75 ok                  # during the cut
op 3 2 k002 write 3.2 150 160 ok
for n in n1 n2 n3; do view $n "k000 value 1.1" "k001 value 1.2" "k002 value 3.2"; done
CHECK_EXTRA=(--split $((BASE + 50 * 1000000)),$((BASE + 80 * 1000000)) $((BASE + 500 * 1000000)) n1,n2 n3)
expect "a split's cut: operations before it are no side's, ENOENTs answered during the split excused" 0 \
	"^STALE 0" "^STALE in the split 2 " "^SUPERSEDED 0 " "RESULT ok"
CHECK_EXTRA=(--split $((BASE + 50 * 1000000)) $((BASE + 500 * 1000000)) n1,n2 n3)
expect "the same split with its cut at its start: the write through n1 is side A's" 1 \
	"^STALE 1" "^STALE k000: overwrite answered ENOENT .* \(via n2\)" "^STALE in the split 1 " \
	"^SUPERSEDED 1 " "^SUPERSEDED k002: c1#3 write 1.3 via n1 .* by  c3#2 write 3.2 via n3"
CHECK_EXTRA=(--split $((BASE + 80 * 1000000)),$((BASE + 50 * 1000000)) $((BASE + 500 * 1000000)) n1,n2 n3)
expect "a cut before the split's start is refused" 2 "CUT_NS must not be before START_NS"
CHECK_EXTRA=()

# ---- bad input ----------------------------------------------------------------------------
new_case
echo "end 1 9 k000 write 1.9 1 2 ok" >>"$D/c1.log"
view n1 "k000 absent"
expect "an end without its begin is refused" 2 "an end without its begin"

if [ $FAILS -ne 0 ]; then
	echo "# $FAILS checks failed"
	exit 1
fi
echo "# all checks passed"
exit 0
