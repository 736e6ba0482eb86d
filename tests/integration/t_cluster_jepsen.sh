#!/bin/bash
# t_cluster_jepsen: the fault-injection test in the style of Jepsen
# (issue 13; docs/cluster.md, "Fault-injection test").  Clients
# (jepsen_client.c), one through each node's mount, write (with fsync),
# overwrite and delete the names k000..k<KEYS-1> of one set, logging every
# operation and its outcome; a seeded nemesis injects faults, one node at a
# time; then every fault is healed, the cluster of the live nodes must form
# and finish its migrations, and the checker (jepsen_check.py) compares
# what every node shows with the logs: no acknowledged write lost, no
# deleted name back, no ENOENT for a name with an acknowledged write, no
# create (open O_CREAT) answered ENOENT, the same view on every node; and
# every record on RF nodes only.
#
# Settings (environment):
#   JEPSEN_SCHEDULE  ci (default): 4 nodes on 127.0.0.1, SIGSTOP/SIGCONT
#                    shorter than the heartbeat timeout and one SIGKILL
#                    without restart: what a cluster without migration
#                    survives;
#                    full: 4 nodes in network namespaces (root): SIGKILL then
#                    restart, SIGSTOP past the heartbeat timeout then
#                    SIGCONT, isolation then heal, a node added, a node
#                    removed for good, in a seeded order;
#                    split: 5 nodes in network namespaces (root): 3+2 split
#                    with writes on both sides, then healed; the checker
#                    lists the acknowledged writes the other side replaced.
#   JEPSEN_NODES     nodes at the start of the full schedule (4; 3 to 6)
#   JEPSEN_SEED      the seed of the clients and the nemesis (default: from
#                    the clock; printed, so a run can be repeated)
#   JEPSEN_DURATION_S  seconds the clients run (ci 45, full 120, split 40)
#   JEPSEN_KEYS      names in the key space (200)
#   JEPSEN_PAUSE_MS  a client's mean pause between operations (10; full and
#                    split 20, so that a name written during the last
#                    fault is often not written again before the end)
#   JEPSEN_RF        replication-factor (2)
#   JEPSEN_OUT       a directory that receives the clients' logs, the views,
#                    the nemesis's log, the checker's whole output and its
#                    arguments (check.args: one per line), the nodes' logs
: "${JEPSEN_SCHEDULE:=ci}"
case $JEPSEN_SCHEDULE in
ci) : "${JEPSEN_DURATION_S:=45}" ;;
full) : "${JEPSEN_DURATION_S:=120}" ;;
split) : "${JEPSEN_DURATION_S:=40}" ;;
*) echo "FATAL: JEPSEN_SCHEDULE is ci, full or split, not '$JEPSEN_SCHEDULE'" >&2; exit 99 ;;
esac
ITEST_TIMEOUT=${ITEST_TIMEOUT:-$((JEPSEN_DURATION_S + 180))}
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"

[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3"; exit 77; }
JC=$ITEST_BIN/jepsen_client
CHECK=$top_srcdir/tests/integration/jepsen_check.py
[ -x "$JC" ] || fail "$JC not built (make check builds it)"
: "${JEPSEN_SEED:=$(($(date +%s%N) / 1000 % 1000000))}"
: "${JEPSEN_KEYS:=200}"
: "${JEPSEN_RF:=2}"
if [ "$JEPSEN_SCHEDULE" = ci ]; then : "${JEPSEN_PAUSE_MS:=10}"; else : "${JEPSEN_PAUSE_MS:=20}"; fi
SEED=$JEPSEN_SEED
case ${JEPSEN_NODES:-4} in
3 | 4 | 5 | 6) ;;
*) echo "FATAL: JEPSEN_NODES is 3 to 6, not '$JEPSEN_NODES'" >&2; exit 99 ;;
esac
DURATION=$JEPSEN_DURATION_S
note "schedule $JEPSEN_SCHEDULE, seed $SEED (JEPSEN_SEED=$SEED JEPSEN_SCHEDULE=$JEPSEN_SCHEDULE" \
	"JEPSEN_DURATION_S=$DURATION repeats it), $JEPSEN_KEYS names, RF $JEPSEN_RF"

CLUSTER_RF=$JEPSEN_RF
case $JEPSEN_SCHEDULE in
ci)
	# a pause of at most 300 ms stays well inside the 1 s heartbeat timeout
	# on a loaded machine
	CLUSTER_HB_TIMEOUT_COUNT=10
	NODES=4
	NETNS=
	;;
full | split)
	if [ "$(id -u)" -ne 0 ] || ! command -v nft >/dev/null 2>&1; then
		[ -n "${CI:-}" ] && fail "CI must run $ITEST_NAME $JEPSEN_SCHEDULE (root and nft)"
		echo "SKIP: $ITEST_NAME $JEPSEN_SCHEDULE needs root and nft (network namespaces)"
		exit 77
	fi
	NODES=${JEPSEN_NODES:-4}
	[ "$JEPSEN_SCHEDULE" = split ] && NODES=5
	NETNS=--netns
	;;
esac
HB_MS=$((CLUSTER_HB_INTERVAL_MS * CLUSTER_HB_TIMEOUT_COUNT))
export CLUSTER_RF

# ---- the nemesis's PRNG (its own, so nothing else that draws $RANDOM
# changes the schedule) ---------------------------------------------------
RNG=$((SEED * 7919 + 17))
rnd() { # rnd N: 0..N-1 in RND
	RNG=$(((RNG * 1103515245 + 12345) % 2147483648))
	RND=$(((RNG >> 8) % $1))
}
now_ns() { date +%s%N; }
T_START=$(now_ns)
nemesis_note() {
	local line
	line="$(printf '%6d' $((($(now_ns) - T_START) / 1000000))) ms  $*"
	echo "$line" >>"$T/nemesis.log"
	note "nemesis: $line"
}
live_nodes() {
	local n
	for n in $(cluster_nodes); do [ -n "$(cluster_pid "$n")" ] && echo "$n"; done
}
pick_live() { # PICK: a random running node
	local all
	mapfile -t all < <(live_nodes)
	rnd "${#all[@]}"
	PICK=${all[RND]}
}
wait_live_cluster() { # every running node in one cluster; bad if not
	local want
	want=$(live_nodes | wc -l)
	if cluster_wait_agree "$want"; then
		nemesis_note "cluster of $want: $(live_nodes | tr '\n' ' ')"
	else
		bad "no cluster of the $want running nodes after '$1' (CLUSTER_WAIT_S=$CLUSTER_WAIT_S)"
	fi
}
sleep_ms() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }

# ---- start -------------------------------------------------------------------
# shellcheck disable=SC2086 # NETNS is empty or one option
cluster_start "$NODES" $NETNS
cluster_wait_agree "$NODES" || fail "no cluster of $NODES"
mkdir "$(cluster_mnt n1)/test/jepsen" || fail "mkdir of the set through n1"
for n in $(cluster_nodes); do
	for ((i = 0; i < 50; i++)); do
		[ -d "$(cluster_mnt "$n")/test/jepsen" ] && break
		sleep 0.1
	done
	[ -d "$(cluster_mnt "$n")/test/jepsen" ] || fail "the set is not seen through $n after 5 s"
done

declare -a CLIENT_PID=()
# the clients' bound, first: a call that a stopped node holds ends the
# client (exit 3) with the operation logged unknown:timeout; its log is
# checked with the others (client 0)
"$JC" -c 0 -n n2 -s "$SEED" -d 30 -k "$JEPSEN_KEYS" -t 300 -p 2 -o "$T/c0.log" \
	"$(cluster_mnt n2)/test/jepsen" >"$T/client0.out" 2>&1 &
CLIENT_PID[0]=$!
sleep 0.5
cluster_stop n2
for ((i = 0; i < 50; i++)); do
	grep -q "unknown:timeout" "$T/c0.log" && break
	sleep 0.1
done
cluster_cont n2
wait "${CLIENT_PID[0]}"
rc=$?
unset 'CLIENT_PID[0]'
check_eq "a call held by a stopped node ends its client with 3" "$rc" 3
check_eq "that call is logged unknown:timeout" "$(tail -n 1 "$T/c0.log" | awk '{ print $NF }')" unknown:timeout
cluster_wait_agree $NODES || fail "no cluster of $NODES after n2's pause"

T_START=$(now_ns)
for n in $(cluster_nodes); do
	c=${n#n}
	"$JC" -c "$c" -n "$n" -s "$SEED" -d "$DURATION" -k "$JEPSEN_KEYS" -p "$JEPSEN_PAUSE_MS" -o "$T/c$c.log" \
		"$(cluster_mnt "$n")/test/jepsen" >"$T/client$c.out" 2>&1 &
	CLIENT_PID[c]=$!
done
# the clients are the test's to stop, also when it fails
cluster_test_before_stop() {
	local p n i
	# a client blocked in a call a stopped node already took ends only
	# when the node answers: continue the nodes first, and wait 10 s at most
	for n in $(live_nodes); do kill -CONT "$(cluster_pid "$n")" 2>/dev/null; done
	for p in "${CLIENT_PID[@]}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null; done
	for p in "${CLIENT_PID[@]}"; do
		[ -n "$p" ] || continue
		for ((i = 0; i < 100; i++)); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$p" 2>/dev/null || wait "$p" 2>/dev/null
	done
	CLIENT_PID=()
}
nemesis_note "clients started: $(cluster_nodes | tr '\n' ' ')"

# ---- the nemesis -------------------------------------------------------------------
SPLIT_ARGS=()
# faults end a few seconds before the clients do, so that what the last
# fault left is not all written over before the checker reads it
deadline=$((T_START + (DURATION - 4) * 1000000000))
sleep 3
case $JEPSEN_SCHEDULE in
ci)
	# the kill is the 6th to 9th fault (of about 17): seeded, not timed
	rnd 4
	kill_event=$((6 + RND))
	event=0
	while [ "$(now_ns)" -lt "$deadline" ]; do
		event=$((event + 1))
		if [ $event -eq $kill_event ]; then
			pick_live
			nemesis_note "kill $PICK (not restarted)"
			cluster_kill "$PICK"
			wait_live_cluster "kill $PICK"
		else
			pick_live
			rnd 201
			ms=$((100 + RND))
			nemesis_note "pause $PICK for $ms ms (heartbeat timeout $HB_MS ms)"
			cluster_stop "$PICK"
			sleep_ms $ms
			cluster_cont "$PICK"
		fi
		rnd 2001
		sleep_ms $((1000 + RND))
	done
	;;
full)
	added=0
	removed=0
	while [ "$(now_ns)" -lt "$deadline" ]; do
		rnd 6
		live=$(live_nodes | wc -l)
		case $RND in
		0 | 1)
			pick_live
			nemesis_note "kill $PICK"
			cluster_kill "$PICK"
			wait_live_cluster "kill $PICK"
			sleep 1
			nemesis_note "restart $PICK"
			t0=$(now_ns)
			cluster_restart "$PICK"
			# alone until it joins: a split of one
			wait_live_cluster "restart $PICK"
			SPLIT_ARGS+=(--split "$t0" "$(now_ns)" "$PICK" "$(live_nodes | grep -vx "$PICK" | paste -sd,)")
			;;
		2)
			pick_live
			ms=$((HB_MS * 3))
			nemesis_note "pause $PICK for $ms ms (heartbeat timeout $HB_MS ms)"
			t0=$(now_ns)
			cluster_stop "$PICK"
			sleep_ms $ms
			cluster_cont "$PICK"
			nemesis_note "continue $PICK"
			# the others went on without it; it is apart until it rejoins
			wait_live_cluster "continue $PICK"
			SPLIT_ARGS+=(--split "$t0" "$(now_ns)" "$PICK" "$(live_nodes | grep -vx "$PICK" | paste -sd,)")
			;;
		3)
			pick_live
			nemesis_note "isolate $PICK"
			t0=$(now_ns)
			cluster_isolate "$PICK"
			cut=$(now_ns)   # (as for the split)
			others=$(live_nodes | grep -vx "$PICK")
			# shellcheck disable=SC2086 # a list of node names
			cluster_wait_agree "$(echo "$others" | wc -l)" $others ||
				bad "the others did not form a cluster without the isolated $PICK"
			nemesis_note "cluster of the others: $(echo "$others" | tr '\n' ' ')"
			sleep_ms $((HB_MS * 2))
			nemesis_note "heal $PICK"
			cluster_heal "$PICK"
			# a split of one, until the cluster forms again
			wait_live_cluster "heal $PICK"
			SPLIT_ARGS+=(--split "$t0,$cut" "$(now_ns)" "$PICK" "$(echo "$others" | paste -sd,)")
			;;
		4)
			[ $added -lt 2 ] && [ "$CLUSTER_N" -lt 8 ] || continue
			cluster_add_node
			added=$((added + 1))
			nemesis_note "added n$CLUSTER_N"
			;;
		5)
			[ "$live" -gt 3 ] && [ $removed -lt 1 ] || continue
			pick_live
			nemesis_note "remove $PICK for good"
			# a clean stop exits 0 (a sanitizer report would not)
			cluster_down "$PICK"
			rc=$?
			check_eq "$PICK removed for good: recfsd's exit status" "$rc" 0
			[ "$rc" -eq 0 ] || tail -n 40 "$(cluster_dir "$PICK")/daemon.out" | sed "s/^/# $PICK: /"
			removed=$((removed + 1))
			;;
		esac
		wait_live_cluster "the last fault"
		rnd 3001
		sleep_ms $((2000 + RND))
	done
	;;
split)
	sleep 2
	nemesis_note "split n1 n2 n3 | n4 n5"
	SPLIT_T0=$(now_ns)
	cluster_split "n1 n2 n3" "n4 n5"
	# the drops go in one namespace after another (one nft call each: 0.1
	# to 0.6 s); until the last, an operation through one side may still
	# reach a master on the other (a write through n3 acknowledged by n5
	# and n4): the checker gives it to neither side
	SPLIT_CUT=$(now_ns)
	nemesis_note "cut in place"
	cluster_wait_agree 3 n1 n2 n3 || bad "no cluster of n1 n2 n3 in the split"
	cluster_wait_agree 2 n4 n5 || bad "no cluster of n4 n5 in the split"
	nemesis_note "two clusters: n1 n2 n3 and n4 n5"
	# writes on both sides until 4 s before the clients end
	hold=$(((deadline - $(now_ns)) / 1000000))
	[ $hold -gt 0 ] && sleep_ms $hold
	nemesis_note "heal"
	cluster_heal_all
	# the split lasts until one cluster forms again
	wait_live_cluster "heal of the split"
	# shellcheck disable=SC2054 # the checker's lists of nodes
	SPLIT_ARGS=(--split "$SPLIT_T0,$SPLIT_CUT" "$(now_ns)" n1,n2,n3 n4,n5)
	;;
esac

# ---- heal, stop the clients, converge -------------------------------------------------
nemesis_note "schedule done: heal and continue everything"
for n in $(live_nodes); do cluster_cont "$n"; done
[ "$CLUSTER_NETNS" = yes ] && cluster_heal_all
for c in "${!CLIENT_PID[@]}"; do
	p=${CLIENT_PID[c]}
	# a client ends at its duration; a stuck one after its 15 s operation
	# timeout; after that it is killed (its last operation stays unknown)
	for ((i = 0; i < 300; i++)); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$p" 2>/dev/null; then
		bad "client $c still running 30 s after the schedule: killed"
		kill -KILL "$p" 2>/dev/null
	fi
	wait "$p"
	rc=$?
	[ $rc -eq 0 ] || [ $rc -eq 3 ] || bad "client $c exited $rc: $(tail -n 3 "$T/client$c.out")"
	note "$(tail -n 1 "$T/client$c.out")"
done
CLIENT_PID=()
nemesis_note "clients done"
wait_live_cluster "the heal"

# migrations: migrate_partitions_remaining 0 on every node (bounded)
remaining() {
	local v
	v=$(cluster_info "$1" migrate_partitions_remaining)
	[ -n "$v" ] || v=$(run cat "$(cluster_mnt "$1")/.info/statistics" 2>/dev/null |
		awk -F= '$1 == "migrate_partitions_remaining" { print $2; exit }')
	echo "${v:-absent}"
}
# (0 on every node in two reads 0.5 s apart: a node that has not yet
# planned the last change's migrations cannot pass for done)
zeros=0
for ((i = 0; i < 120; i++)); do
	left=$(for n in $(live_nodes); do echo "$n=$(remaining "$n")"; done | tr '\n' ' ')
	if echo "$left" | grep -Eq '=[1-9]'; then
		zeros=0
	else
		zeros=$((zeros + 1))
		[ $zeros -ge 2 ] && break
	fi
	sleep 0.5
done
if echo "$left" | grep -Eq '=[1-9]'; then
	bad "migrations not done 60 s after the heal: $left"
else
	nemesis_note "migrate_partitions_remaining: $left"
fi

# ---- the final view and the checker ------------------------------------------------------
VIEWS=()
for n in $(live_nodes); do
	run python3 "$CHECK" view "$(cluster_mnt "$n")/test/jepsen" "$JEPSEN_KEYS" >"$T/view.$n" ||
		bad "reading the final view through $n failed"
	VIEWS+=(--view "$n=$T/view.$n")
done
# every node's partition table, after the views (kept with JEPSEN_OUT): the
# running nodes agree on every partition's replicas and working master, and
# none is still receiving or holding a copy it must drop (state D or Z)
for n in $(live_nodes); do
	run cat "$(cluster_mnt "$n")/.info/partitions" >"$T/partitions.$n" ||
		bad "reading .info/partitions through $n failed"
done
tables=$(for n in $(live_nodes); do
	awk '$1 == "ns=test" { print $2, $5, $6 }' "$T/partitions.$n" | md5sum
done | sort -u | wc -l)
check_eq "the running nodes have one partition table (replicas and working master of every partition)" "$tables" 1
if [ "$tables" != 1 ]; then
	first=$(live_nodes | head -n 1)
	for n in $(live_nodes | tail -n +2); do
		diff <(awk '$1 == "ns=test" { print $2, $5, $6 }' "$T/partitions.$first") \
			<(awk '$1 == "ns=test" { print $2, $5, $6 }' "$T/partitions.$n") |
			grep '^[<>]' | head -n 6 | sed "s/^/# $first|$n /"
	done
fi
check_eq "no partition in state D or Z on any running node" \
	"$(cat "$T"/partitions.* | grep -c ' state=[DZ] ')" 0
python3 "$CHECK" check --all --t0 "$T_START" "${SPLIT_ARGS[@]}" "${VIEWS[@]}" "$T"/c*.log >"$T/check.out" 2>&1
rc=$?
echo "---- nemesis"
cat "$T/nemesis.log"
echo "---- checker (seed $SEED, schedule $JEPSEN_SCHEDULE; 20 anomalies of each kind)"
python3 "$CHECK" check --t0 "$T_START" "${SPLIT_ARGS[@]}" "${VIEWS[@]}" "$T"/c*.log 2>&1 | head -n 400
if [ -n "${JEPSEN_OUT:-}" ]; then
	printf '%s\n' --t0 "$T_START" "${SPLIT_ARGS[@]}" >"$T/check.args"
	mkdir -p "$JEPSEN_OUT" &&
		cp "$T"/c*.log "$T"/view.* "$T"/partitions.* "$T/nemesis.log" "$T/check.out" "$T/check.args" "$JEPSEN_OUT"/ &&
		for n in $(cluster_nodes); do cp "$(cluster_log "$n")" "$JEPSEN_OUT/$n.recfsd.log"; done &&
		note "logs, views and the checker's output copied to $JEPSEN_OUT"
fi
check_eq "checker: nothing acknowledged lost, nothing deleted back, one view on every node" "$rc" 0
# on failure, the counts and the anomalies (not the superseded writes) close the output
if [ "$rc" -ne 0 ]; then
	ITEST_FAIL_SUMMARY=$T/check.summary
	{
		echo "seed $SEED, schedule $JEPSEN_SCHEDULE"
		awk '/^SUPERSEDED [0-9]/ { skip = 1 } /^RESULT/ { skip = 0 } !skip' "$T/check.out"
		echo "nemesis:"
		cat "$T/nemesis.log"
	} >"$ITEST_FAIL_SUMMARY"
fi
acked=$(awk '/^operations/ { sub(",", "", $4); print $4 }' "$T/check.out")
check_true "clients had operations acknowledged ($acked)" "${acked:-0}" -gt 100

# every record on exactly RF nodes: sum of the nodes' objects
present=$(grep -Evc '^ls|absent$' "$T/view.$(live_nodes | head -n 1)")
objects=0
for n in $(live_nodes); do
	o=$(run cat "$(cluster_mnt "$n")/.info/namespace/test" | awk -F= '$1 == "objects" { print $2; exit }')
	objects=$((objects + ${o:-0}))
done
if [ "$JEPSEN_SCHEDULE" = ci ]; then
	# without migration a killed node's records keep one copy: shown, not asserted
	note "copies: $objects records on the live nodes for $present names (RF $JEPSEN_RF: $((present * JEPSEN_RF)))"
else
	check_eq "every name has RF copies and non-replicas hold none (objects summed over the live nodes)" \
		"$objects" "$((present * JEPSEN_RF))"
	# node by node: each holds exactly the names whose user.recfs.replicas
	# name it (RF distinct running nodes each)
	ids=()
	for n in $(live_nodes); do ids+=("$n=$(cluster_id "$n")"); done
	first=$(live_nodes | head -n 1)
	per=$(run python3 - "$(cluster_mnt "$first")/test/jepsen" "$T/view.$first" "$JEPSEN_RF" "${ids[@]}" <<'PY'
import os, sys
d, view, rf = sys.argv[1], sys.argv[2], int(sys.argv[3])
byid = {v: k for k, v in (a.split("=") for a in sys.argv[4:])}
count = {k: 0 for k in byid.values()}
bad = []
for line in open(view):
    name, state = line.split()[0], line.split()[1]
    if name == "ls" or state == "absent":
        continue
    try:
        reps = os.getxattr(os.path.join(d, name), "user.recfs.replicas").decode().strip("\0\n").split(",")
    except OSError as e:
        reps = ["error:%d" % e.errno]
    if len(reps) != rf or len(set(reps)) != rf or not all(r in byid for r in reps):
        bad.append("%s:%s" % (name, ",".join(reps)))
        continue
    for r in reps:
        count[byid[r]] += 1
print("bad %d %s" % (len(bad), " ".join(bad[:5])))
for k in sorted(count):
    print("%s %d" % (k, count[k]))
PY
)
	note "names per node by user.recfs.replicas: $(echo "$per" | awk '$1 != "bad" { printf "%s=%s ", $1, $2 }')"
	check_eq "every name's replicas are $JEPSEN_RF distinct running nodes" "$(echo "$per" | awk '$1 == "bad" { print $2 }')" 0
	for n in $(live_nodes); do
		o=$(run cat "$(cluster_mnt "$n")/.info/namespace/test" | awk -F= '$1 == "objects" { print $2; exit }')
		check_eq "$n holds exactly the names that name it as a replica (objects)" "$o" \
			"$(echo "$per" | awk -v n="$n" '$1 == n { print $2 }')"
	done
fi
finish
