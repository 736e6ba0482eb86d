#!/bin/bash
# t_cluster_failover: no acknowledged write is lost when a node dies
# (issue 12).  Three nodes, replication-factor 2, on 127.0.0.1.  Two writers,
# one through n1's mount and one through n2's, each create files and fsync
# them in a loop; n3 is SIGKILLed while they run.  Afterwards every file
# whose fsync returned 0 reads back identical through both survivors.  The
# longest single write (open, write, fsync, close) during the failover is
# printed and bounded by heartbeat timeout + quiet period +
# transaction-max-ms (+ slack for a loaded machine): writes stall, then go
# on.  Writes that failed (EIO) are counted and printed; they were not
# acknowledged, so nothing is promised of them.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"

[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3"; exit 77; }

CLUSTER_RF=2
export CLUSTER_RF
HB_MS=$((CLUSTER_HB_INTERVAL_MS * CLUSTER_HB_TIMEOUT_COUNT))
QUIET_MS=$((CLUSTER_HB_INTERVAL_MS * (CLUSTER_HB_TIMEOUT_COUNT + 2)))   # clustering's quantum
TMAX_MS=1000
SLACK_MS=1500
BOUND_MS=$((HB_MS + QUIET_MS + TMAX_MS + SLACK_MS))

cluster_start 3
cluster_wait_agree 3 || fail "no cluster of 3"

writer() {  # writer MOUNT PREFIX SECONDS: "name" lines of acknowledged writes, then "max_ms N failed N"
	python3 - "$1" "$2" "$3" <<'PY'
import os, sys, time
m, prefix, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
end = time.monotonic() + secs
i = worst = failed = 0
acked = []
while time.monotonic() < end:
    name = "%s%05d" % (prefix, i)
    data = ("%s written and fsynced\n" % name).encode() * (1 + i % 5)
    t = time.monotonic()
    try:
        fd = os.open(os.path.join(m, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        acked.append(name)
    except OSError:
        failed += 1
    worst = max(worst, time.monotonic() - t)
    i += 1
for n in acked:
    print(n)
print("max_ms %d failed %d" % (worst * 1000, failed))
PY
}

writer "$(cluster_mnt n1)/test" a 5 >"$T/w1" &
W1=$!
writer "$(cluster_mnt n2)/test" b 5 >"$T/w2" &
W2=$!
sleep 1.5
cluster_kill n3
t_kill=$(date +%s%N)
wait $W1 || bad "writer through n1 failed"
wait $W2 || bad "writer through n2 failed"
cluster_wait_agree 2 n1 n2 || bad "no cluster of 2 after the kill"
note "cluster of 2 after $(( ($(date +%s%N) - t_kill) / 1000000 )) ms (writers ran 3.5 s past the kill)"

for w in w1 w2; do
	summary=$(tail -n 1 "$T/$w")
	note "$w: $(($(wc -l <"$T/$w") - 1)) acknowledged writes, $summary"
	max=$(echo "$summary" | awk '{ print $2 }')
	check_true "$w: longest write $max ms <= heartbeat timeout + quiet period + transaction-max-ms + slack ($BOUND_MS)" \
		"$max" -le "$BOUND_MS"
	check_true "$w: writes went on after the failover" "$(($(wc -l <"$T/$w") - 1))" -ge 20
done
for n in n1 n2; do
	out=$(run python3 - "$(cluster_mnt $n)/test" "$T/w1" "$T/w2" <<'PY'
import os, sys
m = sys.argv[1]
bad = total = 0
for f in sys.argv[2:]:
    names = open(f).read().split("\n")[:-2]
    for name in names:
        i = int(name[1:])
        want = ("%s written and fsynced\n" % name).encode() * (1 + i % 5)
        total += 1
        try:
            with open(os.path.join(m, name), "rb") as fh:
                ok = fh.read() == want
        except OSError:
            ok = False
        if not ok:
            bad += 1
            if bad < 5:
                print("lost or different:", name, file=sys.stderr)
print(bad, total)
PY
)
	check_eq "every acknowledged write reads back identical through $n (of ${out#* })" "${out% *}" 0
done
finish
