#!/bin/bash
# t_cluster_splitheal: a healed split merges within seconds, with traffic.
# 5 recfsd daemons, each in its own network namespace (cluster_lib.sh
# --netns; needs root, ip and nft), writers on every mount:
#   1. split 3+2 (nftables drops) for SPLIT_S seconds, far past the
#      heartbeat timeout, while each mount keeps writing (the fabric's
#      queues and the sockets' unacknowledged bytes are not empty);
#   2. heal: one cluster of 5 within the bound below, measured from the
#      heal.  A fabric connection that outlived the split used to keep its
#      data in TCP's retransmission back-off (the timeout doubling from
#      200 ms: after a 12 s split the next retransmission comes about 13 s
#      after the heal), and its pulses with it;
#   3. the same for an isolation of one node (both ways, link down).
# Bound: the fabric closes a connection whose bytes stay unacknowledged for
# the heartbeat timeout (interval x timeout-count) and redials within that
# same time, then the nodes pulse and a quantum passes: interval x
# timeout-count (redial) + quantum + 10 intervals of slack for the busy CI
# cores (docs/cluster.md, fabric "Connections and threads", has figures).
ITEST_TIMEOUT=120   # the watchdog (lib.sh); the test takes about 35 s
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"
if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null || ! command -v nft >/dev/null; then
	[ -n "${CI:-}" ] && fail "CI must run $ITEST_NAME (root, ip and nft)"
	echo "SKIP: $ITEST_NAME needs root, ip and nft (network namespaces)"
	exit 77
fi

: "${SPLIT_S:=12}" "${ISO_S:=8}"
IV=$CLUSTER_HB_INTERVAL_MS TC=$CLUSTER_HB_TIMEOUT_COUNT
QUANTUM=$((IV * (TC + 2)))
BOUND_MS=$((IV * TC + QUANTUM + 10 * IV))
now_ms() { echo $(($(date +%s%N) / 1000000)); }
FIVE="n1 n2 n3 n4 n5"

# writers: one per mount, 64 KiB files over 32 names, until stopped (by pid)
WRITERS=""
writers_start() {
	local n
	for n in $FIVE; do
		(
			i=0 mnt=$(cluster_mnt $n)
			while :; do
				head -c 65536 /dev/urandom >"$mnt/test/w-$n-$((i % 32))" 2>/dev/null
				i=$((i + 1))
				sleep 0.01
			done
		) &
		WRITERS="$WRITERS $!"
	done
}
writers_stop() {
	local p
	for p in $WRITERS; do kill -KILL "$p" 2>/dev/null; done
	for p in $WRITERS; do wait "$p" 2>/dev/null; done
	WRITERS=""
}
cluster_test_before_stop() { writers_stop; }

# unacked SIDE: the largest number of unacknowledged segments and
# retransmission back-off among the fabric sockets of the nodes on SIDE
# towards the others ("ss -ti" in each namespace)
tcp_state() {
	local n
	for n in "$@"; do
		echo "$n: $(ip netns exec "$(cluster_ns $n)" ss -tin state established 2>/dev/null |
			grep -oE 'backoff:[0-9]+|unacked:[0-9]+|retrans:[0-9]+/[0-9]+' | sort | uniq -c | tr -s ' \n' ' ')"
	done
}

# silent N: how many fabric connections nK closed because nothing was
# acknowledged for the heartbeat timeout (fabric.c sock_why's log line)
silent() { grep -c 'nothing acknowledged for' "$(cluster_log "$1")"; }
silent_all() {
	local n s=0
	for n in $FIVE; do s=$((s + $(silent $n))); done
	echo $s
}

cluster_start 5 --netns
cluster_wait_agree 5 $FIVE || fail "no cluster of 5 at the start"
key0=$(cluster_info n1 cluster_key)
writers_start

# ---- 0. load without a fault: no connection is closed ----------------------
# fails if the ack timeout drops healthy connections under load (the
# writers fill the fabric's queues; every node acknowledges what it gets)
sleep 4
check_eq "writers, no fault: no connection closed for silence" "$(silent_all)" 0
check_eq "writers, no fault: the cluster did not change" "$(cluster_info n1 cluster_key)" "$key0"

# ---- 1 and 2: split 3+2 with traffic, heal ---------------------------------
cluster_split "n1 n2 n3" "n4 n5"
cluster_wait_agree 3 n1 n2 n3 || bad "split: no cluster of n1 n2 n3"
cluster_wait_agree 2 n4 n5 || bad "split: no cluster of n4 n5"
sleep "$SPLIT_S"
note "before the heal: $(tcp_state $FIVE)"
t0=$(now_ms)
cluster_heal_all
if cluster_wait_agree 5 $FIVE; then
	ms=$(($(now_ms) - t0))
	note "split 3+2 of ${SPLIT_S} s with writers, healed: one cluster of 5 in ${ms} ms (bound ${BOUND_MS} ms)"
	check_true "healed split: one cluster of 5 within timeout + quantum + 10 intervals ($ms <= $BOUND_MS ms)" "$ms" -le "$BOUND_MS"
else
	note "20 s after the heal: $(tcp_state $FIVE)"
	bad "healed split: no cluster of 5 within ${CLUSTER_WAIT_S} s"
fi

check_true "the split's cut connections were closed for silence ($(silent_all) times)" "$(silent_all)" -ge 1

# ---- 3. isolation of one node with traffic, heal -------------------------------
cluster_isolate n2
cluster_wait_agree 4 n1 n3 n4 n5 || bad "isolation: the others are not 4"
sleep "$ISO_S"
t0=$(now_ms)
cluster_heal n2
if cluster_wait_agree 5 $FIVE; then
	ms=$(($(now_ms) - t0))
	note "isolation of n2 for ${ISO_S} s with writers, healed: one cluster of 5 in ${ms} ms (bound ${BOUND_MS} ms)"
	check_true "healed isolation: one cluster of 5 within timeout + quantum + 10 intervals ($ms <= $BOUND_MS ms)" "$ms" -le "$BOUND_MS"
else
	bad "healed isolation: no cluster of 5 within ${CLUSTER_WAIT_S} s"
fi
note "connections closed for silence: $(for n in $FIVE; do printf '%s=%s ' $n "$(silent $n)"; done)"

writers_stop
finish
