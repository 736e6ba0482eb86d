#!/bin/bash
# t_bench_smoke: recfs-bench --quick runs to the end, prints its table and a
# valid JSON document with every benchmark row, and leaves nothing behind
# (no mount, no daemon, no temp dir) - also when interrupted with SIGINT
# in the middle of the mount part, of the cluster part (3 recfsd nodes
# and a single one) and of the migration part (storage files removed too).  Figures are not checked: timing belongs
# to the benchmark, never to a test (docs/benchmarks.md).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

BENCH=$top_builddir/recfs-bench
[ -x "$BENCH" ] || fail "$BENCH not built"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: the mount part mounts a tmpfs (needs root)"; exit 77; }

# The bench makes its temp dir under TMPDIR: ours, so leftovers are ours.
BT=$T/benchtmp
mkdir -p "$BT"

# leftovers: mounts, processes or files the bench left under $BT.
leftovers() {
	grep -F " $BT/" /proc/self/mounts
	pgrep -f -- "$BT/" 2>/dev/null | sed 's/^/pid /'
	ls -A "$BT"
}

# scrub: after a failure, undo what the bench left, so lib.sh's rm -rf of
# $T never walks into a live mount.  Only our own pids and mounts.
scrub() {
	local p m
	for p in $(pgrep -f -- "$BT/" 2>/dev/null); do
		kill -KILL "$p" 2>/dev/null
	done
	for m in $(awk -v p="$BT/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r); do
		umount -l "$m" 2>/dev/null || fusermount3 -u -z "$m" 2>/dev/null
	done
}

# ---- a whole quick run ------------------------------------------------------
RUN_TIMEOUT=120 run env TMPDIR="$BT" "$BENCH" --quick --recfsd "$RECFSD" --json "$T/bench.json" \
	>"$T/bench.out" 2>"$T/bench.err"
rc=$?
if [ $rc -eq 0 ]; then
	pass "recfs-bench --quick exits 0"
else
	bad "recfs-bench --quick exited $rc: $(tail -n 5 "$T/bench.err")"
fi
check_true "table header printed" -n "$(grep '^benchmark .* result$' "$T/bench.out")"
for row in "write, 50,000 keys" "read, random keys" "mixed 50% write + 50% read" \
	"index bytes per record - key" "1 KiB write, device engine" "128 KiB write, device engine" \
	"cold start scan (node_open)" "random 1 KiB read, not in RAM" "4 KiB overwrite, 50% fill" \
	"create+write 4K+close recfs/passthrough" "open+read 4K+close recfs/passthrough" \
	"64 B round trip, fabric" "64 B round trip, plain TCP" "round trips/s fabric/TCP" \
	"round trip p50 fabric/TCP" "64 B round trip, fabric over TLS" "round trip p50 TLS fabric/TCP" "64 KiB messages streamed, fabric" "64 KiB writes streamed, plain TCP" "stream MB/s fabric/TCP" \
	"1 KiB write, single node" "1 KiB write, node A of 3, RF 1" "1 KiB write RF 2/single" \
	"128 KiB write RF 1/single" "128 KiB write RF 2/single" "1 KiB read RF 2/single" \
	"128 KiB read RF 2/single" "1 KiB read, A masters the name" "1 KiB read, another node masters it" \
	"proxied p50 - local p50, in TCP RTTs" "1 KiB txn_write RF 2/single" "128 KiB txn_write RF 2/single" \
	"1 KiB RF 2/single, at most" "128 KiB RF 2/single, at most" \
	"1 KiB write RF 1/single, at most" "1 KiB write RF 2/single, at most" \
	"128 KiB write RF 1/single, at most" "128 KiB write RF 2/single, at most" \
	"1 KiB write RF 2/single, 8 writers" "128 KiB write RF 2/single, 8 writers" \
	"records moved/s, D joins, no client" "bytes moved/s (fabric, all nodes)" "moved / min(fio, TCP)" \
	"moved / min(fio, TCP), writers on" \
	"writes during / before" "1 MiB writes of one file, then close" "1 MiB reads of that file, checked" \
	"recfsd peak RSS (VmHWM)"; do
	check_true "table row '$row'" -n "$(grep -F "  $row " "$T/bench.out")"
done
check_true "cluster RF 2 mount writes judged" \
	"$(grep -cE '(PASS|MISS) target RF 2 writes through the mount >= 0.7x' "$T/bench.out")" -eq 2
check_true "cluster embedded writes judged" \
	"$(grep -cE '(PASS|MISS) target RF 2 embedded writes >= 0.5x' "$T/bench.out")" -eq 2
# Proxied reads: a figure judged against the target, or (no data path in
# this build) the row saying so - never a figure of reads that stayed on A.
check_true "proxied read judged or explained" -n "$(grep -E '  proxied p50 - local p50, in TCP RTTs .*((PASS|MISS) target proxied p50 <= local p50 \+ 2 x TCP RTT|SKIP no proxied reads: data path not in this build)' "$T/bench.out")"
# The migration rate: judged against both targets, or (no migration in this
# build, or storage on tmpfs) the rows saying why.
check_true "migration rate judged or explained" -n "$(grep -E '  moved / min\(fio, TCP\) .*((PASS|MISS) target moved / min\(fio, TCP\) >= 0.5|SKIP (migration not in this build|migration never moved|storage dir .* tmpfs|no storage peer without fio))' "$T/bench.out")"
check_true "writes during migration judged or explained" -n "$(grep -E '  writes during / before .*((PASS|MISS) target writes during / before >= 0.7|SKIP (migration not in this build|migration never moved|storage dir .* tmpfs))' "$T/bench.out")"
# The large file: both ratios judged against fio, or (storage on tmpfs, no
# fio) the rows saying why.
check_true "large file write judged or explained" -n "$(grep -E '  large file write / fio write .*((PASS|MISS) target write >= 0.5x fio sequential write|SKIP fio not found)|  large file through the mount .*SKIP storage dir .* tmpfs' "$T/bench.out")"
check_true "large file read judged or explained" -n "$(grep -E '  large file read / fio read .*((PASS|MISS) target read >= 0.7x fio sequential read|SKIP fio not found)|  large file through the mount .*SKIP storage dir .* tmpfs' "$T/bench.out")"
check_true "memory target judged" -n "$(grep -E '(PASS|MISS) target >= 1,000,000 ops/s' "$T/bench.out")"
check_true "no ERROR rows" -z "$(grep -E '  ERROR' "$T/bench.out")"
check_true "summary line" -n "$(grep '^result: .* 0 not measured (ERROR)$' "$T/bench.out")"

if [ "$HAVE_PYTHON" = yes ]; then
	expect_ok "JSON is valid" python3 -m json.tool "$T/bench.json"
	got=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
ids = [r["id"] for r in d["rows"]]
need = ["memory.write", "memory.read", "memory.mixed", "index.memory.per_record_minus_key",
        "mount.create.ratio.t1", "mount.create.ratio.t2", "mount.read.ratio.t1", "mount.read.ratio.t2",
        "fabric.rtt", "fabric.tcp_rtt", "fabric.rtt_ratio", "fabric.rtt_p50_ratio", "fabric.tls_rtt", "fabric.tls_rtt_p50_ratio", "fabric.stream", "fabric.tcp_stream",
        "fabric.stream_ratio"]
need += ["cluster.mount.%s_%s.%s" % (op, size, c) for op in ("write", "read")
         for size in ("1k", "128k") for c in ("single", "rf1", "rf2", "rf1_ratio", "rf2_ratio")]
need += ["cluster.mount.write_%s.%s" % (size, c) for size in ("1k", "128k")
         for c in ("rf1_bound", "rf2_bound", "rf2_ratio_t8")]
need += ["cluster.proxy.local", "cluster.proxy.tcp_rtt", "cluster.proxy.remote", "cluster.proxy.check"]
need += ["cluster.embedded.write_%s.%s" % (size, c) for size in ("1k", "128k")
         for c in ("single", "rf2", "rf2_ratio", "rf2_bound")]
need += ["cluster.migrate." + r for r in ("records", "bytes", "cpu_per_mb", "threads", "ratio", "ratio_clients",
                                          "write_ratio")]
if "cluster.migrate.records" not in {r["id"] for r in d["rows"] if r["verdict"] == "SKIP"}:
    need += ["cluster.migrate." + r for r in ("load", "fio", "tcp_stream", "tcp_cpu_per_mb", "write_before",
                                              "write_during", "write_p99_ratio", "yield")]
# Device rows, unless a whole device benchmark was a SKIP (temp dir on tmpfs:
# no O_DIRECT); without fio their fio/ratio rows are SKIPs but present.
skipped = {r["id"] for r in d["rows"] if r["verdict"] == "SKIP"}
for b, rows in (("device.write", ("memory", "device", "ratio")),
                ("device.write_large", ("engine", "fio", "ratio")),
                ("device.cold_start", ("engine", "fio", "ratio")),
                ("device.read", ("engine", "fio", "ratio")),
                ("device.defrag", ("defrag", "no_defrag", "ratio", "fio", "needed"))):
    if b not in skipped:
        need += [b + "." + r for r in rows]
if "large" not in skipped:
    need += ["large." + r for r in ("write", "write_ratio", "read", "read_ratio", "rss", "read_cpu",
                                    "read_requests")]
missing = [n for n in need if n not in ids]
# The counted work of the large read was measured: CPU time spent, and about
# one FUSE read or more per MiB (1 MiB requests at most; a few pages the
# write left in the page cache are not asked for: 255 reads for 256 MiB).
missing += [r["id"] + "=" + str(r["value"]) for r in d["rows"] if
            (r["id"] == "large.read_cpu" and not r["value"] > 0) or
            (r["id"] == "large.read_requests" and not r["value"] >= 0.95)]
bad = [r["id"] for r in d["rows"] if r["verdict"] == "ERROR" or
       (r["unit"] in ("ops/s", "MB/s", "x") and r["id"].startswith(("memory", "fabric")) and
        not r["value"] > 0) or (r["unit"] == "ops/s" and not r["value"] > 0) or
       (r["id"] in ("large.write", "large.read", "large.rss") and not r["value"] > 0) or
       (r["id"] == "cluster.migrate.cpu_per_mb" and r["verdict"] != "SKIP" and not r["value"] > 0) or
       # the second join, with the writers: a rate shown, never judged
       (r["id"] == "cluster.migrate.ratio_clients" and r["verdict"] != "SKIP" and
        not (r["value"] > 0 and r["verdict"] is None and "not judged" in r["note"])) or
       # the writers latency during the move next to before it, and the
       # pauses of the emigration threads for them (migrate_tx_yield_time)
       (r["id"] in ("cluster.migrate.write_p99_ratio", "cluster.migrate.yield") and r["verdict"] != "SKIP" and
        not r["value"] > 0) or
       (r["id"] == "cluster.migrate.write_ratio" and r["verdict"] != "SKIP" and
        not all(s in r["note"] for s in ("p50 ", "p99 "))) or
       (r["id"].endswith(("_bound", "_ratio_t8")) and not 0 < r["value"] < 100) or
       # the mount bounds name their terms and the share of them measured
       (r["id"].startswith("cluster.mount.") and r["id"].endswith("_bound") and
        not all(s in r["note"] for s in ("single ", "net ", " RTT x ", "% of it"))) or
       (r["id"] == "cluster.migrate.tcp_cpu_per_mb" and r["verdict"] != "SKIP" and
        not (r["value"] > 0 and " cores at this" in r["note"])) or
       # by thread: the threads that move the data worked, and each is named in the note
       (r["id"] == "cluster.migrate.threads" and r["verdict"] != "SKIP" and
        not (r["value"] > 0 and all(" %s " % t in r["note"] for t in ("fabric", "migrate-tx", "rpc-bulk"))))]
print("ok" if d["completed"] and not missing and not bad else "missing=%s bad=%s" % (missing, bad))
' "$T/bench.json" 2>&1)
	check_eq "JSON has every row with a figure" "$got" ok
else
	check_true "JSON has rows" -n "$(grep '"rows": \[' "$T/bench.json")"
	check_true "JSON completed" -n "$(grep '"completed": true' "$T/bench.json")"
fi
check_eq "nothing left behind after a run" "$(leftovers)" ""
[ -z "$(leftovers)" ] || scrub

# ---- SIGINT in the middle of the mount part ---------------------------------
# Not --quick: phases of several seconds, so the signal lands inside one.
env TMPDIR="$BT" "$BENCH" --threads 1 --duration 5 --only mount --recfsd "$RECFSD" \
	>"$T/int.out" 2>"$T/int.err" &
BPID=$!
i=0
while [ $i -lt 300 ] && [ "$(grep -c " $BT/.* fuse" /proc/self/mounts)" -lt 2 ]; do
	sleep 0.1
	i=$((i + 1))
done
check_eq "bench mounted recfsd and passthrough_ll under its temp dir" \
	"$(grep -c " $BT/.* fuse" /proc/self/mounts)" 2
sleep 1
kill -INT "$BPID"
i=0
while [ $i -lt 300 ] && kill -0 "$BPID" 2>/dev/null; do
	sleep 0.1
	i=$((i + 1))
done
if kill -0 "$BPID" 2>/dev/null; then
	bad "recfs-bench did not exit within 30 s of SIGINT"
	kill -KILL "$BPID"
	scrub
fi
wait "$BPID"
check_eq "exit status after SIGINT" "$?" 130
check_eq "nothing left behind after SIGINT" "$(leftovers)" ""
[ -z "$(leftovers)" ] || scrub

# ---- SIGINT in the middle of the cluster part --------------------------------
# The single node and the three cluster nodes mounted: 4 FUSE mounts.
env TMPDIR="$BT" "$BENCH" --threads 1 --duration 5 --only cluster --recfsd "$RECFSD" \
	>"$T/cint.out" 2>"$T/cint.err" &
BPID=$!
i=0
while [ $i -lt 300 ] && [ "$(grep -c " $BT/.* fuse" /proc/self/mounts)" -lt 4 ]; do
	sleep 0.1
	i=$((i + 1))
done
check_eq "bench mounted a single recfsd and 3 cluster nodes under its temp dir" \
	"$(grep -c " $BT/.* fuse" /proc/self/mounts)" 4
sleep 0.5
kill -INT "$BPID"
i=0
while [ $i -lt 300 ] && kill -0 "$BPID" 2>/dev/null; do
	sleep 0.1
	i=$((i + 1))
done
if kill -0 "$BPID" 2>/dev/null; then
	bad "recfs-bench (cluster) did not exit within 30 s of SIGINT"
	kill -KILL "$BPID"
	scrub
fi
wait "$BPID"
check_eq "exit status after SIGINT in the cluster part" "$?" 130
check_eq "nothing left behind after SIGINT in the cluster part" "$(leftovers)" ""
[ -z "$(leftovers)" ] || scrub

# ---- SIGINT in the middle of the migration part ------------------------------
# Not --quick: the 1 GiB data set is being written when the signal lands.
env TMPDIR="$BT" "$BENCH" --threads 1 --only cluster.migrate --recfsd "$RECFSD" \
	>"$T/mint.out" 2>"$T/mint.err" &
BPID=$!
sent=no
i=0
while [ $i -lt 300 ] && [ "$(grep -c " $BT/.* fuse" /proc/self/mounts)" -lt 3 ]; do
	sleep 0.1
	i=$((i + 1))
done
if grep -q 'SKIP' "$T/mint.out" 2>/dev/null || ! kill -0 "$BPID" 2>/dev/null; then
	note "the migration part ended before 3 mounts were seen (SKIP: $(grep -o 'SKIP [^;]*' "$T/mint.out" | head -n 1))"
else
	check_eq "bench mounted 3 migration nodes under its temp dir" \
		"$(grep -c " $BT/.* fuse" /proc/self/mounts)" 3
	sleep 1
	kill -INT "$BPID"
	sent=yes
fi
i=0
while [ $i -lt 300 ] && kill -0 "$BPID" 2>/dev/null; do
	sleep 0.1
	i=$((i + 1))
done
if kill -0 "$BPID" 2>/dev/null; then
	bad "recfs-bench (migration) did not exit within 30 s of SIGINT"
	kill -KILL "$BPID"
	scrub
fi
wait "$BPID"
rc=$?
if [ $sent = yes ]; then
	check_eq "exit status after SIGINT in the migration part" "$rc" 130
else
	check_eq "exit status of the migration part without migration" "$rc" 0
fi
check_eq "nothing left behind after SIGINT in the migration part" "$(leftovers)" ""
[ -z "$(leftovers)" ] || scrub

finish
