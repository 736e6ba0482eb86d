#!/bin/bash
# t_cluster_sets: sets are cluster-wide (docs/cluster.md, "Sets and
# listings").  Three real nodes on 127.0.0.1:
#   - mkdir on n1 is visible at once on n2 and n3 (ls of the namespace
#     directory, stat of the set with the mode mkdir gave it); a chmod of
#     the set on n2 reaches n1 and n3;
#   - rmdir on n3 removes it everywhere;
#   - rmdir of a set holding a record written on another node: ENOTEMPTY,
#     the set stays everywhere; once the record is gone rmdir works;
#   - a node killed just before a mkdir: the mkdir waits for the cluster
#     without it and succeeds (no EIO for a set that was made);
#   - a node restarted (memory storage: it comes back empty) sees the sets
#     created while it was away, and a set removed meanwhile stays gone;
#     a node stopped while a set was removed (it still has it) drops it
#     when it is back, and does not bring it back to the others;
#   - a node that does not answer (SIGSTOP): mkdir fails with EIO within
#     about transaction-max-ms, and once the node answers again it gets
#     the set (the set tables are sent again);
#   - ls of a set whose records were written through different nodes (each
#     through its master: user.recfs.master) lists the same sorted names on
#     all three, also past one page (fuse asks 64 at a time), and so does
#     ls of the namespace directory (null-set records and sets);
#   - a node that does not answer makes ls fail with EIO (not a shorter
#     listing);
#   - a node killed just before an ls: the page is asked again and, once
#     the cluster is without it, of the new masters: every record listed;
#   - the counters set_changes_* and list_pages_* move;
#   - a set made by a write alone (an embedded-API member writes records
#     into it, on itself and n1 only) is listed by ls and .info/sets on
#     n2 and n3 too, with per-node counts, and goes with its last record.
# The kernel caches lookups and attributes for entry-timeout and
# attr-timeout (1 s): a check of a name another node changed after this
# node looked it up waits up to 3 s; ls (readdir) is never cached.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"

[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3"; exit 77; }

# RF 2: once writes are replicated, a record is on two nodes and a listing
# must still show it once (it asks only masters).
CLUSTER_RF=2
# Heartbeat timeout 2 s (100 ms x 20), past transaction-max-ms (1 s): a
# node stopped (SIGSTOP) is still a member when the ls or mkdir that needs
# it fails (stopped_op below), also when the daemons run slowly (TSan).
CLUSTER_HB_TIMEOUT_COUNT=20

cluster_start 3
cluster_wait_agree 3 || fail "no cluster of 3"

m1=$(cluster_mnt n1)/test
m2=$(cluster_mnt n2)/test
m3=$(cluster_mnt n3)/test

# ns_value nK NAME: from nK's .info/namespace/test
ns_value() {
	run cat "$(cluster_mnt "$1")/.info/namespace/test" 2>/dev/null |
		awk -v k="$2" 'index($0, "=") { n = substr($0, 1, index($0, "=") - 1);
			if (n == k) { print substr($0, index($0, "=") + 1); exit } }'
}
# lists NODE: the namespace directory's entries on that node, one line
lists() { run ls "$(cluster_mnt "$1")/test" | tr '\n' ' '; }
# eventually DESC WANT CMD...: CMD's output becomes WANT within 3 s
eventually() {
	local d=$1 want=$2 got i
	shift 2
	for ((i = 0; i < 30; i++)); do
		got=$("$@" 2>&1)
		[ "$got" = "$want" ] && break
		sleep 0.1
	done
	check_eq "$d" "$got" "$want"
}
mode_of() { run stat -c %a "$1" 2>&1; }

sent0=$(ns_value n1 set_changes_sent)
recv0=$(ns_value n2 set_changes_received)

# ---- mkdir everywhere -------------------------------------------------------
expect_ok "mkdir -m 750 on n1" mkdir -m 750 "$m1/alpha"
check_eq "ls on n2 shows it at once" "$(lists n2)" "alpha "
check_eq "ls on n3 shows it at once" "$(lists n3)" "alpha "
check_eq "stat on n2: the mode mkdir gave" "$(mode_of "$m2/alpha")" "750"
check_eq "stat on n3: the mode mkdir gave" "$(mode_of "$m3/alpha")" "750"
expect_errno "mkdir of the same name on n3: EEXIST" EEXIST 'os.mkdir(sys.argv[1])' "$m3/alpha"
check_true "n1 counted set changes sent" "$(ns_value n1 set_changes_sent)" -ge $((sent0 + 2))
check_true "n2 counted set changes received" "$(ns_value n2 set_changes_received)" -ge $((recv0 + 1))

expect_ok "chmod 700 of the set on n2" chmod 700 "$m2/alpha"
eventually "n1 sees the chmod" 700 mode_of "$m1/alpha"
eventually "n3 sees the chmod" 700 mode_of "$m3/alpha"

# ---- rmdir everywhere -------------------------------------------------------
expect_ok "rmdir on n3" rmdir "$m3/alpha"
check_eq "ls on n1 after rmdir on n3" "$(lists n1)" ""
check_eq "ls on n2 after rmdir on n3" "$(lists n2)" ""
eventually "stat on n1: gone" "No such file or directory" \
	sh -c 'stat -c %a "$1" 2>&1 | grep -o "No such file or directory"' sh "$m1/alpha"
expect_ok "mkdir of the name again on n2" mkdir "$m2/alpha"
check_eq "ls on n1 shows it again" "$(lists n1)" "alpha "

# ---- not empty: decided by every node ---------------------------------------
expect_ok "mkdir beta on n1" mkdir "$m1/beta"
sh_ok "a record in beta written through n2" 'echo hello > "$1"' "$m2/beta/r1"
expect_errno "rmdir beta on n1: ENOTEMPTY (the record is on n2)" ENOTEMPTY \
	'os.rmdir(sys.argv[1])' "$m1/beta"
expect_errno "rmdir beta on n3: ENOTEMPTY" ENOTEMPTY 'os.rmdir(sys.argv[1])' "$m3/beta"
check_eq "beta still on n1" "$(lists n1)" "alpha beta "
check_eq "beta still on n3" "$(lists n3)" "alpha beta "
expect_ok "rm of the record through n2" rm "$m2/beta/r1"
expect_ok "now rmdir beta on n1 works" rmdir "$m1/beta"
check_eq "beta gone on n2" "$(lists n2)" "alpha "

# ---- listings gathered from the masters ---------------------------------------
# node_of ID: the node name whose id that is
node_of() {
	local n
	for n in n1 n2 n3; do [ "$(cluster_id "$n")" = "$1" ] && echo "$n"; done
}
expect_ok "mkdir recs on n1" mkdir "$m1/recs"
names=""
declare -A by_node=()
for ((i = 0; i < 150; i++)); do
	name=$(printf 'r%03d' "$i")
	# Where it belongs: written once here to read its master, then
	# written through that node (the only copy until the data path
	# routes writes: then every node's write goes there anyway).
	echo probe >"$m1/recs/$name" || fail "write $name"
	master=$(getx user.recfs.master "$m1/recs/$name")
	rm -f "$m1/recs/$name"
	node=$(node_of "$master")
	[ -n "$node" ] || fail "$name: master '$master' is no node"
	echo "content of $name" >"$(cluster_mnt "$node")/test/recs/$name" || fail "write $name on $node"
	by_node[$node]=$((${by_node[$node]:-0} + 1))
	names="$names$name "
done
note "records by master: n1 ${by_node[n1]:-0}, n2 ${by_node[n2]:-0}, n3 ${by_node[n3]:-0}"
check_true "every node masters some of them" "${by_node[n1]:-0}" -gt 0 -a "${by_node[n2]:-0}" -gt 0 -a "${by_node[n3]:-0}" -gt 0
lp0=$(ns_value n2 list_pages_sent)
lr0=$(ns_value n1 list_pages_received)
for n in n1 n2 n3; do
	check_eq "ls of the set on $n: all 150, sorted" \
		"$(run ls "$(cluster_mnt "$n")/test/recs" | tr '\n' ' ')" "$names"
done
check_eq "ls -l on n3 shows a record written on n1 with its size" \
	"$(run ls -l "$m3/recs" | awk '$NF == "r000" { print $5 }')" 16
check_true "n2 counted listing pages sent (150 records: 3 pages x 2 nodes)" \
	"$(ns_value n2 list_pages_sent)" -ge $((lp0 + 6))
check_true "n1 counted listing pages received" "$(ns_value n1 list_pages_received)" -gt "$lr0"
# null-set records: in the namespace directory, next to the sets
echo probe >"$m1/topfile" || fail "write topfile"
tmaster=$(node_of "$(getx user.recfs.master "$m1/topfile")")
rm -f "$m1/topfile"
echo top >"$(cluster_mnt "$tmaster")/test/topfile" || fail "write topfile on $tmaster"
for n in n1 n2 n3; do
	check_eq "ls of the namespace dir on $n shows $tmaster's null-set record" "$(lists $n)" \
		"alpha recs topfile "
done
other=n1
[ "$tmaster" = n1 ] && other=n2
expect_errno "mkdir topfile on $other: EEXIST (a null-set record on $tmaster)" EEXIST \
	'os.mkdir(sys.argv[1])' "$(cluster_mnt "$other")/test/topfile"
rm -f "$(cluster_mnt "$tmaster")/test/topfile"

# ---- a node away, killed during a mkdir ----------------------------------------
# n3 is killed (SIGKILL) and at once, before anything noticed, n1 runs a
# mkdir: made on n1, sent to n2 and n3; n3's call fails once the fabric
# reports it down (its 500 ms grace).  The set is made on every node
# still in the cluster: mkdir waits (heartbeat timeout + quiet period at
# most, as a write waits for a master that went down) for the cluster
# without n3 and succeeds - it used to fail with EIO after about 500 ms
# although the set was made, and the caller's retry then said EEXIST for
# its own mkdir.  n3, restarted empty, gets the set with the tables.
# (mkdir first asks the master of the null-set record of its name; with
# that master gone the check waits for it to leave the cluster and asks
# the next master - test_data_path covers that.  Here the name is one n3
# does not master, so what is measured is the wait of the set's send; the
# node ids are fixed, and so is that.)
# killed_op NODE OP PATH [MODE]: SIGKILL to NODE, then at once OP on PATH,
# from one python process (see stopped_op below); prints the outcome and
# the ms OP took (ls: "OK <count>").
killed_op() {
	run python3 - "$(cluster_pid "$1")" "$2" "$3" "${4:-755}" <<'PY'
import errno, os, signal, sys, time
pid, op, path, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4], 8)
os.kill(pid, signal.SIGKILL)
t0 = time.monotonic()
try:
    if op == "ls":
        out = "OK %d" % len(os.listdir(path))
    else:
        os.mkdir(path, mode) if op == "mkdir" else os.rmdir(path)
        out = "OK"
except OSError as e:
    out = errno.errorcode.get(e.errno, str(e.errno))
print(out, int((time.monotonic() - t0) * 1000))
PY
}
expect_ok "mkdir gamma on n1" mkdir "$m1/gamma"
echo probe >"$m1/delta" || fail "write delta"
check_true "delta's null-set record is not mastered by n3 (fixed node ids)" \
	"$(getx user.recfs.master "$m1/delta")" != "$(cluster_id n3)"
rm -f "$m1/delta"
failed0=$(ns_value n1 set_changes_failed)
got=$(killed_op n3 mkdir "$m1/delta" 711)
cluster_kill n3
ms=${got##* }
note "mkdir with n3 killed: ${got% *} after $ms ms (heartbeat timeout 2000 ms; + quiet period 2200 ms at most)"
check_eq "mkdir delta on n1 while n3 dies: made on the cluster without n3, no EIO" "${got% *}" OK
check_true "within heartbeat timeout + quiet period + transaction-max-ms + 1 s" "$ms" -le 6200
check_true "n1 counted the change n3 did not take" "$(ns_value n1 set_changes_failed)" -gt "$failed0"
# (n3, the highest id, is the principal: n1 and n2 are orphans without it
# at the heartbeat timeout, then form a cluster a quiet period later)
cluster_wait_size 2 n1 n2 || fail "n1, n2 did not see n3 go"
check_eq "delta on n2" "$(lists n2)" "alpha delta gamma recs "
expect_errno "a second mkdir of delta on n2: EEXIST" EEXIST 'os.mkdir(sys.argv[1])' "$m2/delta"
expect_ok "rmdir gamma on n2 while n3 is away" rmdir "$m2/gamma"
cluster_restart n3
cluster_wait_agree 3 || fail "n3 did not rejoin"
eventually "n3, restarted empty, lists the sets created while it was away" "alpha delta recs " lists n3
check_eq "delta's mode on n3" "$(mode_of "$m3/delta")" "711"

# a node that missed a removal (stopped, not restarted: it still has the set)
expect_ok "mkdir zeta on n1" mkdir "$m1/zeta"
check_eq "zeta on n3" "$(lists n3)" "alpha delta recs zeta "
cluster_stop n3
cluster_wait_size 2 n1 n2 || fail "n1, n2 did not see n3 go"
expect_ok "rmdir zeta on n2 while n3 is stopped" rmdir "$m2/zeta"
cluster_cont n3
cluster_wait_agree 3 || fail "n3 did not come back"
eventually "n3, which missed the rmdir, drops zeta" "alpha delta recs " lists n3
check_eq "and zeta does not come back on n1" "$(lists n1)" "alpha delta recs "

# ---- a node that does not answer ---------------------------------------------
# n2_mastering: n1's partition table names n2 the working master of every
# partition whose final master it is (none left to a migration's acting
# master), and there are some.  Only then does a listing on n1 need n2:
# just after n2 came back, while migrations run, n1 and n3 master all.
n2_mastering() {
	run cat "$(cluster_mnt n1)/.info/partitions" | awk -v id="$(cluster_id n2)" '
		$1 == "ns=test" { if ($NF == "working_master=" id) w++
			if (index($5, "replicas=" id) == 1) f++ }
		END { print (w > 0 && w == f) ? "yes" : "no (" w + 0 " of " f + 0 ")" }'
}
# wait_n2_mastering DESC: until n2_mastering says yes (CLUSTER_WAIT_S at most)
wait_n2_mastering() {
	local got i
	for ((i = 0; i < CLUSTER_WAIT_S * 10; i++)); do
		got=$(n2_mastering)
		[ "$got" = yes ] && break
		sleep 0.1
	done
	check_eq "$1" "$got" yes
}
# stopped_op OP PATH: SIGSTOP to n2, then at once OP on PATH (through n1),
# both from one python process, so that its start-up (seconds on a loaded
# machine, longer than the heartbeat timeout: n1 had dropped n2 before an ls
# or mkdir started from the shell reached it, and then they rightly
# succeeded) is not between the two.  Prints the outcome and the ms OP
# took.  OPs: ls (os.listdir: "OK <count>" or the errno), mkdir.  n2 stays
# stopped: cluster_cont n2 after.  (An ls fails only while n1 still counts
# n2 in its cluster: its first readdir waits out n2, replies "." and "..",
# and the next one, asking again, fails at once; had n1 dropped n2 by then,
# the remaining masters would list everything, rightly.)
stopped_op() {
	run python3 - "$(cluster_pid n2)" "$1" "$2" <<'PY'
import errno, os, signal, sys, time
pid, op, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def name(e):
    return errno.errorcode.get(e, str(e))
os.kill(pid, signal.SIGSTOP)
t0 = time.monotonic()
try:
    if op == "ls":
        out = "OK %d" % len(os.listdir(path))
    else:
        os.mkdir(path)
        out = "OK"
except OSError as e:
    out = name(e.errno)
print(out, int((time.monotonic() - t0) * 1000))
PY
}
wait_n2_mastering "n1's table: n2 masters its partitions"
got=$(stopped_op ls "$m1/recs")
cluster_cont n2
check_eq "ls of the set on n1 while n2 does not answer: EIO" "${got% *}" EIO
cluster_wait_agree 3 || fail "n2 did not come back"
failed0=$(ns_value n1 set_changes_failed)
got=$(stopped_op mkdir "$m1/eps")
cluster_cont n2
ms=${got##* }
check_eq "mkdir on n1 while n2 does not answer: EIO" "${got% *}" EIO
note "mkdir with n2 stopped failed after $ms ms (transaction-max-ms 1000)"
check_true "EIO within transaction-max-ms + 1 s" "$ms" -le 2000
check_true "n1 counted the change n2 did not take" "$(ns_value n1 set_changes_failed)" -gt "$failed0"
check_eq "eps is on n3 (it answered)" "$(lists n3)" "alpha delta eps recs "
cluster_wait_agree 3 || fail "n2 did not come back"
eventually "n2 gets eps once it answers again" "alpha delta eps recs " lists n2

# ---- a node killed during an ls --------------------------------------------------
# n2 masters some of recs' partitions again; it is killed and at once n1
# lists recs.  n2's page fails once the fabric reports n2 down (its 500 ms
# grace): the page is asked again, and once the cluster is without n2 its
# partitions are asked of their new masters (RF 2: n1 and n3 hold every
# record) - all 150 names, where the listing failed with EIO at once.
wait_n2_mastering "n1's table: n2 masters its partitions again"
got=$(killed_op n2 ls "$m1/recs")
cluster_kill n2
ms=${got##* }
note "ls with n2 killed: ${got% *} after $ms ms (heartbeat timeout 2000 ms + quiet period 2200 ms)"
check_eq "ls of recs on n1 while n2 dies: every record, no EIO" "${got% *}" "OK 150"
check_true "within the fabric's grace + heartbeat timeout + quiet period + transaction-max-ms + 1 s" \
	"$ms" -le 6700
cluster_restart n2
cluster_wait_agree 3 || fail "n2 did not rejoin"

# ---- a set made by a write alone (no mkdir) ------------------------------------
# Through a mount a set is always made by mkdir, so a fourth member that
# uses the embedded API (tests/integration/embedded_member.c) writes 20
# records into set "solo", each on the member and n1 only (RF 2): n2 and n3
# hold none of them, yet list the set.
MD=$T/member
MID=00000000000000a0
mkdir -p "$MD/work"
sed -e "s|^  node-id: .*|  node-id: $MID|" -e "s|^  work-directory: .*|  work-directory: $MD/work|" \
	-e "s|^  file: .*|  file: $MD/recfsd.log|" \
	-e "s|^  fabric: .*|  fabric: { address: 127.0.0.1, port: $(cluster_free_port) }|" \
	-e "s|^  seeds: .*|  seeds: [ \"$(cluster_addr n1)\" ]|" "$(cluster_dir n1)/recfs.yaml" >"$MD/recfs.yaml"
cluster_test_before_stop() {
	if [ -n "${MPID:-}" ] && kill -0 "$MPID" 2>/dev/null; then
		kill -KILL "$MPID" 2>/dev/null
		wait "$MPID" 2>/dev/null
	fi
}
coproc MEMBER { exec "$top_builddir/tests/integration/embedded_member" "$MD/recfs.yaml" "$MID" \
	"$(cluster_id n1)" test solo 20 4 2>"$MD/err"; }
MPID=$!   # (bash's own MEMBER_PID goes when the coprocess ends)
MIN=${MEMBER[0]}
MOUT=${MEMBER[1]}
# member_report: on a failure, the member's exit status (if it ended),
# its whole stderr and the end of its log, so that a run in CI says why.
member_report() {
	local i st=running
	[ -n "$MPID" ] || st="ended, status reported above"
	for ((i = 0; i < 20; i++)); do kill -0 "$MPID" 2>/dev/null || break; sleep 0.1; done
	if [ -n "$MPID" ] && ! kill -0 "$MPID" 2>/dev/null; then
		wait "$MPID"
		st="exited $?"
		MPID=
	fi
	note "the member ($st); its stderr:"
	sed 's/^/#   /' "$MD/err"
	note "the end of its log ($MD/recfsd.log):"
	tail -n 40 "$MD/recfsd.log" 2>/dev/null | sed 's/^/#   /'
}
line=""
read -t 40 -r line <&"$MIN"
check_eq "the member wrote 20 records into solo (no mkdir)" "$line" "written 20"
[ "$line" = "written 20" ] || member_report
has_solo() { run ls "$1" | grep -cx solo; }
eventually "n2 lists solo, whose records are on the member and n1 only" 1 has_solo "$m2"
eventually "n3 lists solo" 1 has_solo "$m3"
check_eq "n1 (holding its records) lists solo" "$(has_solo "$m1")" 1
eventually ".info/sets/test/ on n2 lists solo" 1 has_solo "$(cluster_mnt n2)/.info/sets/test"
check_eq ".info/sets/test/ on n3 lists solo" "$(has_solo "$(cluster_mnt n3)/.info/sets/test")" 1
sobj() { MNT=$(cluster_mnt "$1") set_value test solo objects; }
check_eq ".info/sets/test/solo on n2: none of its records here (per node)" "$(sobj n2)" 0
check_eq ".info/sets/test/solo on n1: all 20 here" "$(sobj n1)" 20
check_eq "stat of solo on n3: a directory" "$(run stat -c %F "$m3/solo" 2>&1)" "directory"
check_eq "ls of solo on n3 gathers its 20 records" "$(run ls "$m3/solo" | wc -l)" 20
echo delete >&"$MOUT"
line=""
read -t 20 -r line <&"$MIN"
check_eq "the member deleted them" "$line" "deleted 20"
[ "$line" = "deleted 20" ] || member_report
eventually "solo gone on n2 with its last record" 0 has_solo "$m2"
eventually "solo gone on n3" 0 has_solo "$m3"
eventually "solo gone on n1" 0 has_solo "$m1"
exec {MOUT}>&-
for ((i = 0; i < 100; i++)); do kill -0 "$MPID" 2>/dev/null || break; sleep 0.1; done
mrc=gone
[ -n "$MPID" ] && { wait "$MPID"; mrc=$?; }
check_eq "the member left cleanly" "$mrc" 0
[ "$mrc" = 0 ] || member_report
MPID=

finish
