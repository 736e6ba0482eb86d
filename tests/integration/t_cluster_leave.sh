#!/bin/bash
# t_cluster_leave: a node that stops cleanly tells its peers, so they re-form
# the cluster at once, not after the heartbeat timeout, and a writer on
# another node sees no error.  Three nodes, replication-factor 2, heartbeat
# 200 ms x 15 (a 3 s timeout, a 3.4 s quantum).  n3 (the principal) is
# unmounted while a writer creates and fsyncs small files through n1's
# mount; n1 and n2 must show a cluster of 2 within 1.5 s of the unmount,
# half the timeout (by the timeout alone it takes 3 s + the 3.4 s quantum;
# 0.3-0.4 s with the notice on a plain build, 0.9 s seen under ASan at
# load 14), each counting one
# heartbeat_departures_announced and logging "departed: it is stopping",
# and the writer must see no EIO.  n3 started again is an ordinary arrival.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"

[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3"; exit 77; }

CLUSTER_RF=2
CLUSTER_HB_INTERVAL_MS=200
CLUSTER_HB_TIMEOUT_COUNT=15
export CLUSTER_RF CLUSTER_HB_INTERVAL_MS CLUSTER_HB_TIMEOUT_COUNT
BOUND_MS=1500

v() { MNT=$(cluster_mnt "$1") node_value "$2"; }

cluster_start 3
cluster_wait_agree 3 || fail "no cluster of 3"
cluster_settled n1 n2 n3

# writer MOUNT SECONDS: "acked N failed N max_ms N" (small files, fsync)
python3 - "$(cluster_mnt n1)/test" 2 >"$T/w" <<'PY' &
import os, sys, time
m, secs = sys.argv[1], float(sys.argv[2])
end = time.monotonic() + secs
i = worst = failed = acked = 0
while time.monotonic() < end:
    name = "f%05d" % i
    t = time.monotonic()
    try:
        fd = os.open(os.path.join(m, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, b"written and fsynced\n" * (1 + i % 5))
            os.fsync(fd)
        finally:
            os.close(fd)
        acked += 1
    except OSError as e:
        failed += 1
        print("error:", name, e, file=sys.stderr)
    worst = max(worst, time.monotonic() - t)
    i += 1
print("acked %d failed %d max_ms %d" % (acked, failed, worst * 1000))
PY
W=$!
sleep 0.5
t0=$(date +%s%N)
timeout 10 fusermount3 -u "$(cluster_mnt n3)" || bad "n3 not unmounted"
# both survivors at a cluster of 2 (polled every 50 ms, at most 8 s)
ms=
for ((i = 0; i < 160; i++)); do
	if [ "$(cluster_info n1 cluster_size)" = 2 ] && [ "$(cluster_info n2 cluster_size)" = 2 ]; then
		ms=$((($(date +%s%N) - t0) / 1000000))
		break
	fi
	sleep 0.05
done
note "cluster of 2 on n1 and n2 ${ms:-never (8 s)} ms after n3's unmount ($(cat /proc/loadavg))"
check_true "cluster of 2 within $BOUND_MS ms of a clean stop (timeout alone: 3000 ms + quantum)" \
	"${ms:-99999}" -lt "$BOUND_MS"
cluster_down n3
check_eq "n3's clean stop exits 0" "$?" 0
wait $W || bad "the writer failed"
note "writer through n1: $(cat "$T/w")"
check_eq "the writer saw no error during the stop" "$(awk '{ print $4 }' "$T/w")" 0
check_true "the writer went on" "$(awk '{ print $2 }' "$T/w")" -ge 10
for n in n1 n2; do
	cluster_wait_log $n "node $(cluster_id n3) departed: it is stopping" "" ||
		bad "$n: no 'departed: it is stopping' for n3"
	check_eq "$n: heartbeat_departures_announced" "$(v $n heartbeat_departures_announced)" 1
	check_eq "$n: heartbeat_departures" "$(v $n heartbeat_departures)" 1
done
grep -q "told 2 nodes that this node is stopping" "$(cluster_log n3)" || bad "n3 did not log its notice"

# back again: an ordinary arrival
a0=$(v n1 heartbeat_arrivals)
cluster_start_node n3
cluster_wait_agree 3 || bad "n3 did not rejoin"
check_eq "n1: n3's return counted as an arrival" "$(v n1 heartbeat_arrivals)" $((a0 + 1))
finish
