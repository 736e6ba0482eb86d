#!/bin/bash
# t_cluster_faults: issue 11's "What it must show" and "Bad input" with 5
# real recfsd daemons, each in its own network namespace (cluster_lib.sh
# --netns; needs root, ip and nft):
#   1. started in a scrambled order, each seeding only one other node, they
#      form one cluster (same size, key and principal = n5 on every mount)
#      within interval x timeout + quantum + 5 intervals of the last start;
#   2. a 3+2 split gives two clusters, each of its own side only (sizes 3
#      and 2, two keys, principals n3 and n5); healing gives one of 5;
#   3. SIGSTOP of n2 past the timeout shrinks the others to 4; SIGCONT
#      brings 5 back;
#   4. a rolling restart of all 5 (each right after the previous mounted)
#      ends in one cluster of 5;
#   5. a node with the wrong secret (n6) and a raw TCP client sending
#      random bytes and an oversized length prefix are refused and counted
#      in fabric_refused_*; cluster_key and cluster_changes do not move on
#      any node meanwhile;
#   6. idle cost: each recfsd's utime+stime over 10 s is under 1% of a core
#      (3% in a sanitizer build; figures, RSS and the threads' split printed);
#   7. unreachable seeds: n7, whose seeds (n4, n5) are down, serves its
#      mount alone, keeps dialing them (backoff: 100 ms doubling to 5 s),
#      says so once per seed and then at most once a minute, and joins
#      when n4 comes back.
# Timings: 100 ms x 5, quantum 100 x (5 + 2) = 700 ms.  The bound of 1 is
# interval x timeout + quantum + 5 intervals = 1700 ms: formation takes
# a quantum after the last node's arrival (about 700-730 ms after it
# mounted) plus the time to read 5 mounts; docs/cluster.md ("Timings
# measured") has the figures: 744-965 ms, ASan under load included.  The
# 5 intervals of slack are for CI, which runs this under ASan on 2 busy
# cores; a regression of a quantum or more still fails.
ITEST_TIMEOUT=150   # the watchdog (lib.sh) reads it when sourced; the test takes ~40 s
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"
[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3"; exit 77; }
if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null || ! command -v nft >/dev/null; then
	[ -n "${CI:-}" ] && fail "CI must run $ITEST_NAME (root, ip and nft)"
	echo "SKIP: $ITEST_NAME needs root, ip and nft (network namespaces)"
	exit 77
fi

IV=$CLUSTER_HB_INTERVAL_MS TC=$CLUSTER_HB_TIMEOUT_COUNT
QUANTUM=$((IV * (TC + 2)))
BOUND_MS=$((IV * TC + QUANTUM + 5 * IV))
now_ms() { echo $(($(date +%s%N) / 1000000)); }
v() { MNT=$(cluster_mnt "$1") node_value "$2"; }
changes() {
	local c
	c=$(cluster_info "$1" cluster_changes)
	[ -n "$c" ] || c=$(v "$1" cluster_changes)
	echo "$c"
}
principal() {
	local p
	p=$(cluster_info "$1" principal)
	[ -n "$p" ] || p=$(cluster_info "$1" cluster_principal)
	echo "$p"
}
# refused NODE: the sum of NODE's fabric_refused_* rows (not by_peer)
refused() {
	run cat "$(cluster_mnt "$1")/.info/statistics" |
		awk -F= '$1 ~ /^fabric_refused_/ && $1 != "fabric_refused_by_peer" { s += $2 } END { print s + 0 }'
}
wait_for() {
	local d=$1 c=$2 i
	for ((i = 0; i < 100; i++)); do
		if eval "$c"; then pass "$d"; return 0; fi
		sleep 0.1
	done
	bad "$d (not within 10 s)"
}
FIVE="n1 n2 n3 n4 n5"

printf 'a-wrong-secret-0123456789abcdef\n' >"$T/wrong.secret"
chmod 600 "$T/wrong.secret"
# each node seeds only one other, a ring in no order of ids:
# n1 -> n3 -> n4 -> n2 -> n5 -> n1; the rest of the mesh is learnt from
# adjacency lists
CLUSTER_SEEDS_n1="n3" CLUSTER_SEEDS_n2="n5" CLUSTER_SEEDS_n3="n4"
CLUSTER_SEEDS_n4="n2" CLUSTER_SEEDS_n5="n1"
CLUSTER_SEEDS_n6="n5" CLUSTER_SECRET_n6=$T/wrong.secret
CLUSTER_SEEDS_n7="n4 n5"

# cluster_start, with 7 configured nodes and only n1..n5 started, in the
# order n3 n1 n5 n2 n4 (n6 and n7 come later)
CLUSTER_N=7
CLUSTER_NETNS=yes
mkdir -p "$CLUSTER_DIR" || fail "mkdir $CLUSTER_DIR"
printf 'itest-cluster-secret-%s\n' "$$-$RANDOM$RANDOM" >"$CLUSTER_DIR/secret"
chmod 600 "$CLUSTER_DIR/secret"
for ((k = 1; k <= CLUSTER_N; k++)); do
	mkdir -p "$CLUSTER_DIR/n$k/mnt" "$CLUSTER_DIR/n$k/work"
	CL_ADDR[k]=$CLUSTER_SUBNET.$((k + 1)):$CLUSTER_NETNS_PORT
	CL_PID[k]=
done
cluster_netns_setup
for ((k = 1; k <= CLUSTER_N; k++)); do cluster_write_config "$k"; done

# ---- 1. scrambled start -------------------------------------------------
for n in n3 n1 n5 n2 n4; do cluster_start_node $n; done
t0=$(now_ms)
# fails if a node stays apart (seeds not followed through adjacency lists),
# if two principals remain, or if agreement takes longer than the bound
if cluster_wait_agree 5 $FIVE; then
	ms=$(($(now_ms) - t0))
	note "scrambled start: one cluster of 5 ${ms} ms after the last node mounted (bound ${BOUND_MS} ms)"
	check_true "scrambled start agrees within interval x timeout + quantum + 5 intervals ($ms <= $BOUND_MS ms)" "$ms" -le "$BOUND_MS"
	for n in $FIVE; do
		check_eq "$n: principal is n5, the highest id" "$(principal $n)" "$(cluster_id n5)"
		check_eq "$n: succession n5..n1" "$(cluster_info $n cluster_succession)" \
			"$(for m in n5 n4 n3 n2 n1; do cluster_id $m; done | paste -sd,)"
	done
else
	bad "scrambled start: no single cluster of 5"
fi
sh_ok "n1's mount serves" 'echo x > "$1/test/f" && grep -q x "$1/test/f"' "$(cluster_mnt n1)"

# ---- 2. split 3+2, heal ---------------------------------------------------
t0=$(now_ms)
cluster_split "n1 n2 n3" "n4 n5"
# fails if either side still counts the other, or both sides share a key
if cluster_wait_agree 3 n1 n2 n3 && cluster_wait_agree 2 n4 n5; then
	note "split 3+2: two clusters in $(($(now_ms) - t0)) ms"
	check_eq "split: the side of 3 has principal n3" "$(principal n1)" "$(cluster_id n3)"
	check_eq "split: the side of 2 has principal n5" "$(principal n4)" "$(cluster_id n5)"
	k3=$(cluster_info n1 cluster_key) k2=$(cluster_info n4 cluster_key)
	check_true "split: the two clusters have different keys ($k3, $k2)" "$k3" != "$k2"
	check_eq "split: n3's succession is its own side" "$(cluster_info n3 cluster_succession)" \
		"$(for m in n3 n2 n1; do cluster_id $m; done | paste -sd,)"
	check_eq "split: n5's succession is its own side" "$(cluster_info n5 cluster_succession)" \
		"$(for m in n5 n4; do cluster_id $m; done | paste -sd,)"
else
	bad "split 3+2: not two clusters of 3 and 2"
fi
t0=$(now_ms)
cluster_heal_all
if cluster_wait_agree 5 $FIVE; then
	note "heal: one cluster of 5 in $(($(now_ms) - t0)) ms"
	pass "healed split: one cluster of 5"
else
	bad "healed split: no cluster of 5"
fi

# ---- 3. SIGSTOP / SIGCONT ---------------------------------------------------
t0=$(now_ms)
cluster_stop n2
# fails if a stopped node is kept in the cluster past the timeout
if cluster_wait_agree 4 n1 n3 n4 n5; then
	note "SIGSTOP n2: the others are 4 after $(($(now_ms) - t0)) ms"
	pass "SIGSTOP of n2: the others agree on 4"
else
	bad "SIGSTOP of n2: the others do not shrink to 4"
fi
t0=$(now_ms)
cluster_cont n2
if cluster_wait_agree 5 $FIVE; then
	note "SIGCONT n2: 5 again after $(($(now_ms) - t0)) ms"
	pass "SIGCONT of n2: one cluster of 5"
else
	bad "SIGCONT of n2: no cluster of 5"
fi

# ---- 4. rolling restart ------------------------------------------------------
t0=$(now_ms)
for n in $FIVE; do cluster_restart $n; done
# fails if a restarted node stays an orphan or the cluster ends split
if cluster_wait_agree 5 $FIVE; then
	note "rolling restart: one cluster of 5, $(($(now_ms) - t0)) ms after the first restart"
	pass "rolling restart of all 5: one cluster of 5"
else
	bad "rolling restart: no cluster of 5"
fi
sh_ok "n3's mount serves after its restart" 'echo y > "$1/test/g" && grep -q y "$1/test/g"' "$(cluster_mnt n3)"

# ---- 5. garbage -------------------------------------------------------------------
declare -A KEY0 CH0
for n in $FIVE; do KEY0[$n]=$(cluster_info $n cluster_key) CH0[$n]=$(changes $n); done
r0=$(refused n5) a0=$(v n5 fabric_refused_auth)
cluster_start_node n6
# fails if the wrong secret is not counted as an auth refusal on its seed
wait_for "n6's wrong secret is counted on n5 (fabric_refused_auth)" '[ "$(v n5 fabric_refused_auth)" -gt "$a0" ]'
# a raw TCP client, from n6's namespace, at n5's fabric port
garbage() {
	run nsenter --net=/run/netns/"$(cluster_ns n6)" python3 - "${1%:*}" "${1##*:}" <<'EOF'
import os, socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
def send(data):
    s = socket.create_connection((host, port), timeout=8)
    s.sendall(data)
    try:
        while s.recv(4096):
            pass
    except OSError:
        pass
    s.close()
for _ in range(3):
    send(os.urandom(4096))
send(struct.pack(">HBBI", 0x5246, 2, 1, 0xFFFFFFF0))  # version: FABRIC_PROTOCOL_VERSION (2)
EOF
}
r1=$(refused n5)
garbage "$(cluster_addr n5)" || bad "the raw client did not run"
# fails if a connection of random bytes is dropped without a refusal count
wait_for "4 garbage connections refused and counted on n5 (fabric_refused_*)" '[ "$(refused n5)" -ge $((r1 + 4)) ]'
check_true "n5 counts an oversized length prefix" "$(v n5 fabric_refused_oversized)" -ge 1
note "n5 refused $(($(refused n5) - r0)) connections: $(run cat "$(cluster_mnt n5)/.info/statistics" | grep '^fabric_refused_' | grep -v '=0$' | tr '\n' ' ')"
sleep $(((QUANTUM + 999) / 1000 + 1))   # a quantum and more: a change would show
# fails if the refused node or the garbage made any node install a change
for n in $FIVE; do
	check_eq "$n: cluster_key unchanged during the garbage" "$(cluster_info $n cluster_key)" "${KEY0[$n]}"
	check_eq "$n: cluster_changes unchanged during the garbage" "$(changes $n)" "${CH0[$n]}"
done
check_eq "n6 (wrong secret) is alone" "$(cluster_info n6 cluster_size)" 1
sh_ok "n5's mount serves after the garbage" 'cat "$1/test/f" >/dev/null 2>&1 || echo z > "$1/test/f"' "$(cluster_mnt n5)"
cluster_down n6 || bad "n6: clean stop failed"

# ---- 6. idle cost ------------------------------------------------------------------
# The promise (under 1% of a core per node) is for the product build.  An
# ASan/UBSan or TSan build instruments every memory access and costs 2-3x
# the CPU for the same work (measured: 0.4-0.6% normal, 0.5-0.9% ASan on
# the same machine), so there the bound is 3%: it still fails if a node
# polls (a 1 ms poll alone is several % of a core).
cluster_wait_agree 5 $FIVE || bad "idle: no cluster of 5 to measure"
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "$1"; }
IDLE_MAX_MS=100 IDLE_BUILD=product
if sanitized_build; then IDLE_MAX_MS=300 IDLE_BUILD=sanitized; fi
declare -A C0 T0 W0
# wakes TASKDIR: the task's voluntary context switches (sleeps ended)
wakes() { awk '/^voluntary_ctxt_switches/ { print $2 }' "$1/status" 2>/dev/null; }
HZ=$(getconf CLK_TCK)
for n in $FIVE; do
	pid=$(cluster_pid $n)
	C0[$n]=$(cpu_ticks "/proc/$pid/stat")
	for t in /proc/"$pid"/task/*; do
		T0[$n:${t##*/}]=$(cpu_ticks "$t/stat")
		W0[$n:${t##*/}]=$(wakes "$t")
	done
done
sleep 10
for n in $FIVE; do
	pid=$(cluster_pid $n)
	ms=$((($(cpu_ticks "/proc/$pid/stat") - C0[$n]) * 1000 / HZ))
	rss=$(awk '/^VmRSS/ { print $2 " " $3 }' "/proc/$pid/status")
	# which named thread (docs/architecture.md, "Threads and locks") spent it
	split="" defrag_wakes=0
	for t in /proc/"$pid"/task/*; do
		t0=${T0[$n:${t##*/}]:-0}
		tms=$((($(cpu_ticks "$t/stat" 2>/dev/null || echo "$t0") - t0) * 1000 / HZ))
		[ "$tms" -gt 0 ] && split="$split $(cat "$t/comm" 2>/dev/null)=${tms}ms"
		if [ "$(cat "$t/comm" 2>/dev/null)" = defrag ]; then
			w=$(wakes "$t")
			defrag_wakes=$((defrag_wakes + ${w:-0} - ${W0[$n:${t##*/}]:-0}))
		fi
	done
	# fails if the memory engine's defrag thread polls with nothing queued
	# (it woke every 50 ms: about 200 times in 10 s)
	check_true "idle $n: the defrag thread sleeps ($defrag_wakes wakes in 10 s)" "$defrag_wakes" -le 5
	note "idle $n: ${ms} ms of CPU in 10 s ($(awk -v m="$ms" 'BEGIN { printf "%.2f%%", m / 100 }') of a core), RSS $rss;${split:- no thread above a tick}"
	# fails if a node polls (1% of a core = 100 ms in 10 s)
	check_true "idle $n uses under $((IDLE_MAX_MS / 100))% of a core in a $IDLE_BUILD build ($ms ms in 10 s)" "$ms" -lt "$IDLE_MAX_MS"
done

# ---- 7. unreachable seeds -------------------------------------------------------
cluster_down n4 || bad "n4: clean stop failed"
cluster_down n5 || bad "n5: clean stop failed"
cluster_wait_agree 3 n1 n2 n3 || bad "n4 and n5 down: the others are not 3"
cluster_write_config 7
cluster_start_node n7
sh_ok "n7 with its seeds down serves its mount" 'echo w > "$1/test/alone" && grep -q w "$1/test/alone"' "$(cluster_mnt n7)"
wait_for "n7 alone is a cluster of one" '[ "$(cluster_info n7 cluster_size)" = 1 ] && [ "$(principal n7)" = "$(cluster_id n7)" ]'
sleep 3
f7=$(v n7 fabric_connect_failures)
sleep 6
# fails if it gave up dialing: the statistic counts every failed attempt
check_true "n7 keeps trying its seeds (fabric_connect_failures $f7 -> $(v n7 fabric_connect_failures))" \
	"$(v n7 fabric_connect_failures)" -gt "${f7:-0}"
# At the default log level: a warning per seed at its first failure, then
# at most one a minute (fabric.c dialer_failed).  Fails if nothing is said
# (0) or every retry is logged (about 16 lines in 9 s for 2 seeds).
c7=$(grep -c 'cannot connect to' "$(cluster_log n7)")
note "n7: $c7 failed-connect lines in 9 s for 2 seeds, $(v n7 fabric_connect_failures) attempts"
check_true "n7 says it cannot reach its seeds (a line per seed: $c7)" "$c7" -ge 2
check_true "n7 logs its failed connects at a bounded rate ($c7 <= 4 in 9 s)" "$c7" -le 4
t0=$(now_ms)
cluster_restart n4
# fails if n7 stopped dialing its seeds
if cluster_wait_agree 5 n1 n2 n3 n4 n7; then
	note "n4 back: n7 joined, one cluster of 5, after $(($(now_ms) - t0)) ms"
	check_eq "n7 joined: it is the principal (highest id)" "$(principal n1)" "$(cluster_id n7)"
else
	bad "n4 back: n7 did not join"
fi
sh_ok "n7 still has its file" 'grep -q w "$1/test/alone"' "$(cluster_mnt n7)"
finish
