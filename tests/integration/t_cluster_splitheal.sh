#!/bin/bash
# t_cluster_splitheal: a healed split merges within seconds, with traffic.
# 5 recfsd daemons, each in its own network namespace (cluster_lib.sh
# --netns; needs root, ip and nft), writers on every mount:
#   0. 3 s of writers without a fault: no connection is
#      closed for silence and the cluster does not change (the ack timeout
#      does not flap loaded connections);
#   1. split 3+2 (nftables drops) for SPLIT_S (14) seconds, far past the
#      heartbeat timeout, while each mount keeps writing (the fabric's
#      queues and the sockets' unacknowledged bytes are not empty);
#   2. heal: one cluster of 5 within the bound below, measured from the
#      heal, and the cut connections were closed for silence.  A fabric
#      connection that outlived the split used to keep its pulses in TCP's
#      retransmission back-off (200 ms doubling: retransmissions about
#      6.4, 12.8 and 25.6 s into the split, so a heal about 15 s in waited
#      some 10 s: 12.1 and 12.5 s measured);
#   3. the same for an isolation of n2 (link down both ways) for 6 s (a
#      heal about 7 s in waited for the 12.8 s retransmission: 7.2 s).
# Bound: the fabric closes a connection whose bytes stay unacknowledged for
# the heartbeat timeout (interval x timeout-count) and dials a lost node at
# least that often, then the nodes pulse and a quantum passes: interval x
# timeout-count + quantum + 15 intervals = 2700 ms.  Measured 1.1-1.9 s
# (ASan build included), 2.6 s once with a compile running on the same 2
# cores: the slack is for busy CI cores; a regression to TCP's back-off
# takes 7 s and more (docs/cluster.md, fabric "Connections and threads").
ITEST_TIMEOUT=120   # the watchdog (lib.sh); the test takes about 35 s
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"
if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null || ! command -v nft >/dev/null; then
	[ -n "${CI:-}" ] && fail "CI must run $ITEST_NAME (root, ip and nft)"
	echo "SKIP: $ITEST_NAME needs root, ip and nft (network namespaces)"
	exit 77
fi

: "${SPLIT_S:=14}" "${ISO_S:=6}"
IV=$CLUSTER_HB_INTERVAL_MS TC=$CLUSTER_HB_TIMEOUT_COUNT
QUANTUM=$((IV * (TC + 2)))
BOUND_MS=$((IV * TC + QUANTUM + 15 * IV))
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

# tcp_state NODES: the retransmission back-off of each node's established
# sockets ("ss -ti" in its namespace; "backoff:6" is a retransmission
# timer of 200 ms x 2^6), on one line
tcp_state() {
	local n
	for n in "$@"; do
		printf '%s:%s; ' "$n" "$(ip netns exec "$(cluster_ns $n)" ss -tin state established 2>/dev/null |
			grep -oE 'backoff:[0-9]+' | sort | uniq -c | tr -s ' \n' ' ')"
	done
}
sent() { MNT=$(cluster_mnt "$1") node_value fabric_sent_bytes; }
# timeline T0 MARKS...: where the time after the heal went, from the logs
# after each node's mark (nK=MARK): each node's last arrival and the
# cluster's installation, in ms after T0
timeline() {
	local t0=$1 n m out="" a c
	shift
	for nm in "$@"; do
		n=${nm%%=*} m=${nm#*=}
		a=$(tail -n +$((m + 1)) "$(cluster_log $n)" | grep ' arrived$' | tail -n 1 | cut -d' ' -f1)
		c=$(tail -n +$((m + 1)) "$(cluster_log $n)" | grep 'clustering: cluster key' | tail -n 1 | cut -d' ' -f1)
		[ -n "$a" ] && a=$(($(date -d "$a" +%s%3N) - t0))
		[ -n "$c" ] && c=$(($(date -d "$c" +%s%3N) - t0))
		out="$out $n: arrival +${a:-?} installed +${c:-?};"
	done
	echo "$out"
}
marks() {
	local n
	for n in $FIVE; do echo "$n=$(cluster_mark $n)"; done
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
b0=$(sent n1)
sleep 3
b1=$(sent n1)
note "writers, no fault: n1 sent $(((b1 - b0) / 1024)) KiB over the fabric in 3 s"
# fails if the writers do not reach other nodes (no queues to fill)
check_true "writers, no fault: n1 sends file data over the fabric ($((b1 - b0)) bytes in 3 s)" "$((b1 - b0))" -gt 1048576
check_eq "writers, no fault: no connection closed for silence" "$(silent_all)" 0
check_eq "writers, no fault: the cluster did not change" "$(cluster_info n1 cluster_key)" "$key0"

# ---- 1 and 2: split 3+2 with traffic, heal ---------------------------------
cluster_split "n1 n2 n3" "n4 n5"
cluster_wait_agree 3 n1 n2 n3 || bad "split: no cluster of n1 n2 n3"
cluster_wait_agree 2 n4 n5 || bad "split: no cluster of n4 n5"
sleep "$SPLIT_S"
note "before the heal: $(tcp_state $FIVE)"
M=$(marks)
t0=$(now_ms)
cluster_heal_all
if cluster_wait_agree 5 $FIVE; then
	ms=$(($(now_ms) - t0))
	note "after the heal:$(timeline $t0 $M)"
	note "split 3+2 of ${SPLIT_S} s with writers, healed: one cluster of 5 in ${ms} ms (bound ${BOUND_MS} ms)"
	check_true "healed split: one cluster of 5 within timeout + quantum + 15 intervals ($ms <= $BOUND_MS ms)" "$ms" -le "$BOUND_MS"
else
	note "20 s after the heal: $(tcp_state $FIVE)"
	bad "healed split: no cluster of 5 within ${CLUSTER_WAIT_S} s"
fi

check_true "the split's cut connections were closed for silence ($(silent_all) times)" "$(silent_all)" -ge 1

# ---- 3. isolation of one node with traffic, heal -------------------------------
cluster_isolate n2
cluster_wait_agree 4 n1 n3 n4 n5 || bad "isolation: the others are not 4"
sleep "$ISO_S"
M=$(marks)
t0=$(now_ms)
cluster_heal n2
if cluster_wait_agree 5 $FIVE; then
	ms=$(($(now_ms) - t0))
	note "after the heal:$(timeline $t0 $M)"
	note "isolation of n2 for ${ISO_S} s with writers, healed: one cluster of 5 in ${ms} ms (bound ${BOUND_MS} ms)"
	check_true "healed isolation: one cluster of 5 within timeout + quantum + 15 intervals ($ms <= $BOUND_MS ms)" "$ms" -le "$BOUND_MS"
else
	bad "healed isolation: no cluster of 5 within ${CLUSTER_WAIT_S} s"
fi
note "connections closed for silence: $(for n in $FIVE; do printf '%s=%s ' $n "$(silent $n)"; done)"

writers_stop
finish
