#!/bin/bash
# t_cluster_harness: the cluster harness (cluster_lib.sh) itself, with what
# the nodes do today: the mesh heartbeat logs arrivals and departures, and
# clustering shows the agreed cluster in .info/cluster (cluster_wait_agree,
# cluster_wait_size).
#
# The test runs itself three times as an inner test, each with its own
# lib.sh temp dir, trap and watchdog:
#   loopback - 3 nodes on 127.0.0.1 hear each other; SIGSTOP of one makes
#              the others log its departure, SIGCONT brings it back;
#              SIGKILL and cluster_restart likewise; cluster_add_node
#              makes a cluster of 4; cluster_wait_size is bounded;
#   netns    - 3 nodes in network namespaces hear each other; isolating one
#              (link down, and one way with nftables) and splitting 2+1
#              make the others log departures, healing brings them back;
#              cluster_add_node puts n4 in a namespace of its own;
#   failing  - a test that fails half-way through (with a SIGSTOPped node
#              and a split);
#   watchdog - a test blocked in a read of a SIGSTOPped node's mount, until
#              lib.sh's watchdog (8 s) kills the nodes and the test.
# After each, this outer test checks that nothing is left: no recfsd of the
# inner run, no mount, no namespace of its prefix (veths, bridge and nft
# tables live only inside those namespaces).
if [ "${1:-}" = --inner ]; then
	PHASE=$2
	ITEST_TIMEOUT=${INNER_TIMEOUT:-45}
	. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"
	echo "$T" >"$CLUSTER_RECORD/t"
	arrived() { echo "heartbeat: node $(cluster_id "$1") at $(cluster_addr "$1") arrived"; }
	departed() { echo "heartbeat: node $(cluster_id "$1") departed"; }
	# mark: remembers every node's log length; the waits below look only
	# at what was logged after it.
	declare -A M
	mark() {
		local n
		for n in $(cluster_nodes); do M[$n]=$(cluster_mark "$n"); done
	}
	# hears A B...: A logged the arrival of each of B... since the mark
	hears() {
		local a=$1 b
		shift
		for b in "$@"; do
			cluster_wait_log "$a" "$(arrived "$b")" "${M[$a]:-0}" || return 1
		done
	}
	all_hear() {
		local a
		for a in $(cluster_nodes); do
			# shellcheck disable=SC2046
			hears "$a" $(cluster_nodes | grep -vx "$a") || return 1
		done
	}
	# gone A B: A logged B's departure since the mark
	gone() { cluster_wait_log "$1" "$(departed "$2")" "${M[$1]:-0}"; }

	case $PHASE in
	loopback)
		cluster_start 3
		cluster_pid n1 >"$CLUSTER_RECORD/pids"
		cluster_pid n2 >>"$CLUSTER_RECORD/pids"
		cluster_pid n3 >>"$CLUSTER_RECORD/pids"
		all_hear && pass "3 loopback nodes hear each other" || bad "3 loopback nodes do not all hear each other"
		if cluster_wait_agree 3; then pass "3 loopback nodes agree on one cluster"; else bad "3 loopback nodes form no cluster"; fi
		sh_ok "n2's mount serves" 'echo x > "$1/test/f" && grep -q x "$1/test/f"' "$(cluster_mnt n2)"

		mark
		cluster_stop n2
		if gone n1 n2 && gone n3 n2; then pass "SIGSTOP of n2: n1 and n3 log its departure"; else bad "SIGSTOP of n2: no departure logged"; fi
		if cluster_wait_agree 2 n1 n3; then pass "SIGSTOP of n2: n1 and n3 are a cluster of 2"; else bad "SIGSTOP of n2: the cluster did not shrink"; fi
		mark
		cluster_cont n2
		if hears n1 n2 && hears n3 n2; then pass "SIGCONT of n2: it arrives again"; else bad "SIGCONT of n2: no second arrival"; fi
		if cluster_wait_agree 3; then pass "SIGCONT of n2: one cluster of 3 again"; else bad "SIGCONT of n2: no cluster of 3"; fi

		mark
		cluster_kill n3
		check_true "SIGKILL of n3: its mount is detached" "$(grep -cF " $(cluster_mnt n3) fuse" /proc/self/mounts)" -eq 0
		if gone n1 n3 && gone n2 n3; then pass "SIGKILL of n3: n1 and n2 log its departure"; else bad "SIGKILL of n3: no departure logged"; fi
		mark
		cluster_restart n3
		cluster_pid n3 >>"$CLUSTER_RECORD/pids"
		if hears n1 n3 && hears n2 n3; then pass "n3 restarted: it arrives again"; else bad "n3 restarted: no second arrival"; fi
		if cluster_wait_agree 3; then pass "n3 restarted: one cluster of 3 again"; else bad "n3 restarted: no cluster of 3"; fi
		sh_ok "n3 restarted serves its mount" 'echo y > "$1/test/g" && grep -q y "$1/test/g"' "$(cluster_mnt n3)"
		cluster_add_node
		cluster_pid n4 >>"$CLUSTER_RECORD/pids"
		check_eq "cluster_add_node starts n4" "$CLUSTER_N" 4
		if cluster_wait_agree 4; then pass "n4 added: one cluster of 4"; else bad "n4 added: no cluster of 4"; fi
		sh_ok "n4 added serves its mount" 'grep -q y "$1/test/g"' "$(cluster_mnt n4)"

		size=$(cluster_info n1 cluster_size)
		check_true "n1's .info/cluster has a cluster_size" -n "$size"
		if cluster_wait_size "$size"; then pass "cluster_wait_size $size"; else bad "cluster_wait_size $size did not return 0"; fi
		if cluster_wait_agree "$size" n1; then pass "cluster_wait_agree $size n1"; else bad "cluster_wait_agree $size n1 did not return 0"; fi
		t0=$(date +%s)
		CLUSTER_WAIT_S=2 cluster_wait_size 99 n1 && bad "cluster_wait_size 99 returned 0"
		check_true "cluster_wait_size 99 gives up within its bound" $(($(date +%s) - t0)) -le 4
		cluster_stop n1   # left stopped: the cleanup must cope
		;;
	netns)
		cluster_start 3 --netns
		for n in n1 n2 n3; do cluster_pid $n; done >"$CLUSTER_RECORD/pids"
		check_eq "n2's fabric address is in its namespace" "$(cluster_addr n2)" 10.213.0.3:3001
		all_hear && pass "3 nodes in namespaces hear each other" || bad "3 nodes in namespaces do not all hear each other"
		if cluster_wait_agree 3; then pass "3 nodes in namespaces agree on one cluster"; else bad "3 nodes in namespaces form no cluster"; fi
		check_true "n1 listens inside its namespace only" \
			"$(nsenter --net=/run/netns/"$(cluster_ns n1)" ss -ltnH 'sport = :3001' | wc -l)" -eq 1
		sh_ok "n1's mount is visible to the test" 'echo x > "$1/test/f" && grep -q x "$1/test/f"' "$(cluster_mnt n1)"

		mark
		cluster_isolate n2
		if gone n1 n2 && gone n3 n2 && gone n2 n1 && gone n2 n3; then
			pass "isolating n2: both sides log departures"
		else
			bad "isolating n2: departures not logged"
		fi
		if cluster_wait_agree 2 n1 n3 && cluster_wait_size 1 n2; then
			pass "isolating n2: n1 and n3 are a cluster of 2, n2 alone"
		else
			bad "isolating n2: the cluster did not split 2+1"
		fi
		sh_ok "isolated n2 still serves its mount" 'cat "$1/.info/build" >/dev/null' "$(cluster_mnt n2)"
		mark
		cluster_heal n2
		if hears n1 n2 && hears n3 n2 && hears n2 n1 n3; then pass "healing n2: it arrives again"; else bad "healing n2: no second arrival"; fi
		if cluster_wait_agree 3; then pass "healing n2: one cluster of 3 again"; else bad "healing n2: no cluster of 3"; fi

		mark
		cluster_isolate n3 --oneway
		if gone n3 n1 && gone n3 n2; then pass "one-way isolation of n3: n3 hears no one"; else bad "one-way isolation of n3: n3 logs no departure"; fi
		mark
		cluster_heal n3
		if hears n3 n1 n2; then pass "healing n3: it hears the others again"; else bad "healing n3: no arrival"; fi

		mark
		cluster_split "n1 n2" "n3"
		if gone n3 n1 && gone n3 n2 && gone n1 n3 && gone n2 n3; then
			pass "split n1 n2 | n3: each side logs the other's departure"
		else
			bad "split n1 n2 | n3: departures not logged"
		fi
		if cluster_wait_agree 2 n1 n2 && cluster_wait_size 1 n3; then
			pass "split n1 n2 | n3: a cluster of 2 and one of 1"
		else
			bad "split n1 n2 | n3: not a cluster of 2 and one of 1"
		fi
		sleep 1   # 2 heartbeat timeouts; then no wait: the log as it is
		if CLUSTER_WAIT_S=0 gone n1 n2 || CLUSTER_WAIT_S=0 gone n2 n1; then bad "split: n1 and n2 lost each other"; else pass "split: n1 and n2 still hear each other"; fi
		mark
		cluster_heal_all
		if hears n3 n1 n2 && hears n1 n3 && hears n2 n3; then pass "healed split: n3 arrives again"; else bad "healed split: no arrival"; fi
		if cluster_wait_agree 3; then pass "healed split: one cluster of 3 again"; else bad "healed split: no cluster of 3"; fi
		cluster_add_node
		cluster_pid n4 >>"$CLUSTER_RECORD/pids"
		if cluster_wait_agree 4; then pass "n4 added in its own namespace: one cluster of 4"; else bad "n4 added in its namespace: no cluster of 4"; fi
		cluster_isolate n1   # left isolated, and n2 stopped: the cleanup must cope
		cluster_stop n2
		;;
	failing)
		cluster_start 3 --netns
		for n in n1 n2 n3; do cluster_pid $n; done >"$CLUSTER_RECORD/pids"
		cluster_stop n2
		cluster_split "n1" "n3"
		fail "failing on purpose, with n2 stopped and n1|n3 split"
		;;
	watchdog)
		cluster_start 3 --netns
		for n in n1 n2 n3; do cluster_pid $n; done >"$CLUSTER_RECORD/pids"
		cluster_isolate n3
		cluster_stop n2
		# a read of the stopped node's mount hangs until the watchdog
		# kills the nodes (no `run`: nothing else bounds it)
		cat "$(cluster_mnt n2)/.info/build" >/dev/null 2>&1
		sleep 30
		;;
	esac
	finish
fi

. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"
ITEST_TIMEOUT=150

# inner PHASE WANT_RC: runs a phase, then checks that it left nothing
inner() {
	local phase=$1 want=$2 rc prefix=rcfsh$$$1 pid left
	mkdir -p "$T/$phase"
	CLUSTER_RECORD=$T/$phase CLUSTER_NS_PREFIX=$prefix INNER_TIMEOUT=${3:-45} \
		timeout -k 5 80 bash "$0" --inner "$phase" >"$T/$phase/out" 2>&1
	rc=$?
	sed "s/^/  [$phase] /" "$T/$phase/out"
	check_eq "$phase: inner test's exit status" "$rc" "$want"
	left=""
	for pid in $(cat "$T/$phase/pids" 2>/dev/null); do
		kill -0 "$pid" 2>/dev/null && left="$left $pid"
	done
	check_eq "$phase: no node left running" "$left" ""
	check_true "$phase: the nodes were recorded" "$(wc -l <"$T/$phase/pids" 2>/dev/null || echo 0)" -ge 3
	local it
	it=$(cat "$T/$phase/t" 2>/dev/null)
	check_true "$phase: the inner temp dir is known" -n "$it"
	check_eq "$phase: no mount left" "$(grep -cF " $it/" /proc/self/mounts)" 0
	check_eq "$phase: inner temp dir removed" "$(test -e "$it" && echo present)" ""
	if [ "$(id -u)" -eq 0 ]; then
		check_eq "$phase: no namespace left" "$(ip netns list | grep -c "^$prefix-")" 0
	fi
}

inner loopback 0
if [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null && command -v nft >/dev/null; then
	inner netns 0
	inner failing 1
	inner watchdog 143 8
	check_true "watchdog: the inner test said why it stopped" \
		"$(grep -c 'exceeded 8s' "$T/watchdog/out")" -eq 1
	check_eq "no veth or bridge of the harness in the host's namespace" \
		"$(ip -o link show | grep -cE ': (v[0-9]+|br0|eth0)@')" 0
else
	note "not root or no ip/nft: the --netns phases need both (scripts/install-deps.sh)"
	[ -n "${CI:-}" ] && bad "CI must run the --netns phases"
fi
finish
