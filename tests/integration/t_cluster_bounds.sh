#!/bin/bash
# t_cluster_bounds: in-flight replication and proxy state stays bounded
# while calls time out (issue 12: "in-flight replication and proxy state is
# bounded (a figure, measured under load)").
#
# Three nodes, RF 2, memory engine (16 MiB each), transaction-max-ms 300,
# heartbeat timeout 10 s (a stopped node stays a member, so the calls to
# it wait for their deadline).  After a warm-up that touches all of each
# node's storage, n3 is SIGSTOPped and 8 writers (4 through n1, 4 through
# n2) overwrite 64 KiB files for 4 s: writes whose partition has n3 as
# master or replica fail with EIO after 300 ms, the others succeed.
# Every 100 ms the test reads, on n1 and n2, the rpc gauges (calls in
# flight, requests queued or running, requests kept for at-most-once), the
# bytes the fabric has queued for n3, and the daemon's resident memory.
# Asserted: both kinds of write happened; calls in flight never exceed
# what the FUSE threads and rpc workers can start (4 + 16 per node); the
# queue for n3 stays within the fabric's per-peer bound (4 MiB); requests
# kept stay within what 2 x transaction-max-ms of writes can leave; the
# resident memory of n1 and n2 grows by less than 16 MiB (plain builds; a
# sanitizer build prints it: its allocator's caches are not ours).  The figures
# are printed (docs/cluster.md quotes them).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"

[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3"; exit 77; }

# ASan builds: freed memory is not held in the sanitizer's quarantine
# (256 MiB by default), or resident memory would measure that.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1"
CLUSTER_RF=2
CLUSTER_HB_TIMEOUT_COUNT=100
CLUSTER_ENGINE_SETTINGS="data-size:16M write-block-size:1M"
export CLUSTER_RF CLUSTER_ENGINE_SETTINGS
cluster_start 3
cluster_wait_agree 3 || fail "no cluster of 3"
for n in n1 n2 n3; do
	run sh -c "echo 300 > '$(cluster_mnt $n)/.info/config/service/transaction-max-ms'" ||
		fail "cannot set transaction-max-ms on $n"
done

# warm-up: 8 x 64 files of 64 KiB through n1 (each node stores ~21 MiB:
# every write block of its 16 MiB is used at least once)
run python3 - "$(cluster_mnt n1)/test" <<'PY' || fail "warm-up writes"
import os, sys
for r in range(8):
    for i in range(64):
        with open(os.path.join(sys.argv[1], "w%d-%02d" % (i % 8, i // 8)), "wb") as f:
            f.write(bytes([r]) * 65536)
PY

cluster_stop n3
out=$(run python3 - "$(cluster_mnt n1)" "$(cluster_mnt n2)" "$(cluster_pid n1)" "$(cluster_pid n2)" \
	"$(cluster_id n3)" <<'PY'
import os, sys, threading, time
m1, m2, p1, p2, id3 = sys.argv[1:6]
mnts, pids = [m1, m2], [p1, p2]
stop = time.monotonic() + 4.0
ok = [0] * 8
eio = [0] * 8
other = []
def writer(w):
    m = mnts[w // 4]
    data = bytes([w]) * 65536
    i = 0
    while time.monotonic() < stop:
        p = os.path.join(m, "test", "w%d-%02d" % (w, i % 8))
        i += 1
        try:
            with open(p, "wb") as f:
                f.write(data)
            ok[w] += 1
        except OSError as e:
            if e.errno == 5:
                eio[w] += 1
            else:
                other.append(str(e))
def stats(m):
    v = {}
    with open(os.path.join(m, ".info/statistics")) as f:
        for line in f:
            k, _, x = line.strip().partition("=")
            v[k] = x
    q = 0
    with open(os.path.join(m, ".info/peers")) as f:
        for line in f:
            if id3 in line:
                for w in line.split():
                    if w.startswith("queued_bytes="):
                        q = int(w.split("=")[1])
    return int(v["rpc_calls_in_flight"]), int(v["rpc_requests_in_progress"]), int(v["rpc_requests_kept"]), q
def rss(pid):
    with open("/proc/%s/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
rss0 = [rss(p) for p in pids]
mx = [[0, 0, 0, 0, 0] for _ in mnts]
ts = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
for t in ts:
    t.start()
while any(t.is_alive() for t in ts):
    for n in range(2):
        s = stats(mnts[n]) + (rss(pids[n]) - rss0[n],)
        mx[n] = [max(a, b) for a, b in zip(mx[n], s)]
    time.sleep(0.1)
for t in ts:
    t.join()
print("writes ok %d eio %d other %d" % (sum(ok), sum(eio), len(other)))
for e in other[:3]:
    print("error: " + e)
for n in range(2):
    print("n%d max calls_in_flight %d requests_in_progress %d requests_kept %d queued_to_n3 %d rss_growth %d" %
          (n + 1, mx[n][0], mx[n][1], mx[n][2], mx[n][3], mx[n][4]))
PY
)
rc=$?
cluster_cont n3
echo "$out" | sed 's/^/# /'
check_eq "the load ran" "$rc" 0
read -r _ _ okn _ eion _ othern <<<"$(echo "$out" | grep '^writes ok')"
check_true "writes not involving n3 succeeded ($okn)" "${okn:-0}" -gt 0
check_true "writes involving the stopped n3 failed with EIO ($eion)" "${eion:-0}" -gt 0
check_eq "no other errors" "${othern:-x}" 0
for k in 1 2; do
	line=$(echo "$out" | grep "^n$k max")
	val() { echo "$line" | awk -v k="$1" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }'; }
	check_true "n$k: calls in flight <= 20 (4 FUSE threads + 16 rpc workers): $(val calls_in_flight)" \
		"$(val calls_in_flight)" -le 20
	check_true "n$k: requests queued or running <= 16 + its queue: $(val requests_in_progress)" \
		"$(val requests_in_progress)" -le 272
	check_true "n$k: requests kept <= 4096 (2 x 300 ms of this load): $(val requests_kept)" \
		"$(val requests_kept)" -le 4096
	check_true "n$k: bytes queued for n3 within the fabric's 4 MiB per peer: $(val queued_to_n3)" \
		"$(val queued_to_n3)" -le $((4 * 1024 * 1024))
	# The memory bound is the product's, measured on the plain build (growth
	# 2-3 MiB); an ASan build's allocator keeps per-thread caches and
	# redzones of its own (n1 grew 17-18 MiB there), as t_large_memory.
	if sanitized_build; then
		note "n$k: resident memory grew $(val rss_growth) bytes (sanitizer build: not checked)"
	else
		check_true "n$k: resident memory grew < 16 MiB under the load: $(val rss_growth)" \
			"$(val rss_growth)" -lt $((16 * 1024 * 1024))
	fi
done
finish
