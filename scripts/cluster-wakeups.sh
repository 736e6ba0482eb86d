#!/bin/bash
# cluster-wakeups.sh - counted work per proxied read and per RF 2 create
# through one node's mount (docs/benchmarks.md, "The cluster"): wake-ups
# are the figure that a loaded 2-vCPU machine does not blur.
#
#   top_srcdir=. top_builddir=build scripts/cluster-wakeups.sh [strace]
#
# Starts 3 recfsd nodes (replication-factor 2, loopback) with
# tests/integration/cluster_lib.sh, using $top_builddir/recfsd (point
# top_builddir at a directory holding another recfsd to compare builds),
# writes 1500 1 KiB files through n1 and sorts them by user.recfs.master and
# user.recfs.replicas, then through n1's mount, one thread:
#   read_remote  open + read + close of each name n1 holds no copy of (once)
#   read_local   the same for each name n1 masters
#   create_1k    1000 creates of a new 1 KiB file (open O_CREAT, write, close)
#   create_128k  200 creates of a new 128 KiB file (one 128 KiB write)
# and prints per operation: voluntary and involuntary context switches of
# every thread of the 3 daemons (/proc/PID/task/*/status; the voluntary ones
# also by thread name: recfsd are the FUSE threads), their CPU time,
# p50 latency, and the rpc counters that moved (.info/statistics).  With
# "strace": strace -c -f of n1 during each phase (syscalls per phase; the
# figures under strace are slower and the switch counts include strace's).
# With "perf": perf stat --per-thread of n1 during each phase, its syscalls,
# futex calls, epoll_wait/epoll_ctl/poll calls and sched_switch events per
# operation by thread name (tracepoints: no strace slowdown; needs perf).
# With "copies": the daemons run with scripts/count_copies.c preloaded (built
# here with cc) and, once stopped, the user-space memcpy/memmove calls of at
# least 16 KiB of the 3 daemons are printed per create_128k (the other phases
# move 1 KiB files: none of theirs are that large).
# With "classes": 300 creates of 1 KiB and 100 of 128 KiB only, each one's
# counters read before and after it (n1's FUSE requests, every node's rpc
# calls, proxied and replica writes), the names then sorted by
# user.recfs.master/replicas into "n1 masters", "n1 replica" and "neither":
# FUSE requests and rpc calls per create by class (docs/benchmarks.md, the
# floor of round trips per create the rf2_bound row assumes).
# Needs root (FUSE), python3, strace for the strace mode, perf for the perf mode.
# the strace mode takes a few times longer than the plain one (~15 s)
: "${ITEST_TIMEOUT:=200}"
: "${RUN_TIMEOUT:=150}"
. "${top_srcdir:-.}/tests/integration/cluster_lib.sh"
CLUSTER_RF=2
export CLUSTER_RF
if [ "${1:-}" = copies ]; then
	cc -O2 -shared -fPIC -o "$T/count_copies.so" "${top_srcdir:-.}/scripts/count_copies.c" -ldl ||
		fail "cannot build count_copies.so"
	export LD_PRELOAD="$T/count_copies.so" COPIES_OUT="$T/copies"
fi
cluster_start 3
cluster_wait_agree 3 || fail "no cluster of 3"
M1=$(cluster_mnt n1)/test
mkdir "$M1/s" || fail "mkdir $M1/s"
run python3 - "$M1/s" "$(cluster_pid n1)" "$(cluster_pid n2)" "$(cluster_pid n3)" \
    "${1:-}" "$T" "$(cluster_id n1)" <<'PY' || fail "the measurement failed"
import os, subprocess, sys, time
d, pids, mode, T, nid = sys.argv[1], sys.argv[2:5], sys.argv[5], sys.argv[6], sys.argv[7]
COUNTERS = ("rpc_calls", "proxy_sent", "replica_writes_sent", "rpc_requests_received",
            "rpc_requests_inline")
if mode == "classes":
    COUNTERS += ("fuse_lookup", "fuse_getattr", "fuse_create", "fuse_open", "fuse_write",
                 "fuse_flush", "fuse_release", "fuse_setattr", "fuse_getxattr",
                 "replica_writes_returned")

def switches():
    v = n = 0
    by = {}
    for p in pids:
        for t in os.listdir(f"/proc/{p}/task"):
            try:
                comm = open(f"/proc/{p}/task/{t}/comm").read().strip()
                for l in open(f"/proc/{p}/task/{t}/status"):
                    if l.startswith("voluntary_ctxt_switches"):
                        v += int(l.split()[1])
                        by[comm] = by.get(comm, 0) + int(l.split()[1])
                    elif l.startswith("nonvoluntary_ctxt_switches"):
                        n += int(l.split()[1])
            except OSError:
                pass
    return v, n, by

def cpu_s():
    s = 0
    for p in pids:
        f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        s += int(f[11]) + int(f[12])
    return s / os.sysconf("SC_CLK_TCK")

def counters():
    out = {}
    for k, n in enumerate(("n1", "n2", "n3")):
        for l in open(os.path.join(T, "cl", n, "mnt", ".info", "statistics")):
            key, _, v = l.strip().partition("=")
            if key in COUNTERS:
                out[f"{n}.{key}"] = int(v)
    return out

PERF_EVENTS = ",".join(["raw_syscalls:sys_enter", "syscalls:sys_enter_futex",
                        "syscalls:sys_enter_epoll_wait", "syscalls:sys_enter_epoll_ctl",
                        "syscalls:sys_enter_poll", "sched:sched_switch"])

def perf_print(path, k):
    names = {t: open(f"/proc/{pids[0]}/task/{t}/comm").read().strip()
             for t in os.listdir(f"/proc/{pids[0]}/task")}
    agg = {}
    for l in open(path):
        f = l.strip().split(",")
        if len(f) < 4 or not f[1].isdigit() or "-" not in f[0]:
            continue
        comm = names.get(f[0].rsplit("-", 1)[1], f[0].rsplit("-", 1)[0])
        ev = f[3].split(":")[-1].replace("sys_enter_", "").replace("sys_enter", "syscalls")
        agg.setdefault(comm, {})
        agg[comm][ev] = agg[comm].get(ev, 0) + int(f[1])
    print("  n1 per op, by thread (perf):")
    for comm in sorted(agg, key=lambda c: -agg[c].get("syscalls", 0)):
        a = agg[comm]
        if a.get("syscalls", 0) + a.get("sched_switch", 0) < 0.05 * k:
            continue
        print(f"    {comm:12s} " + " ".join(f"{e} {a.get(e, 0) / k:.2f}" for e in
              ("syscalls", "futex", "epoll_wait", "epoll_ctl", "poll", "sched_switch")))

def phase(label, fn, items):
    tr = None
    if mode == "strace":
        tr = subprocess.Popen(["strace", "-c", "-f", "-q", "-o", f"{T}/strace.{label}",
                               "-p", pids[0]])
        time.sleep(1.0)
    pf = None
    if mode == "perf":
        pf = subprocess.Popen(["perf", "stat", "--per-thread", "-x,", "-e", PERF_EVENTS,
                               "-p", pids[0], "-o", f"{T}/perf.{label}"])
        time.sleep(1.0)
    c0 = counters(); v0, n0, b0 = switches(); t0 = cpu_s()
    lat = []
    for i in items:
        a = time.monotonic(); fn(i); lat.append(time.monotonic() - a)
    v1, n1, b1 = switches(); t1 = cpu_s(); c1 = counters()
    if tr:
        tr.send_signal(2); tr.wait()
    if pf:
        pf.send_signal(2); pf.wait()
    k = len(items)
    lat.sort()
    print(f"{label}: {k} ops, per op: {(v1 - v0) / k:.2f} voluntary + {(n1 - n0) / k:.2f} "
          f"involuntary switches, {1e6 * (t1 - t0) / k:.0f} us CPU, p50 {1e6 * lat[k // 2]:.0f} us")
    print("  " + " ".join(f"{c}={(c1[c] - c0[c]) / k:.2f}" for c in sorted(c0) if c1[c] != c0[c]))
    # threads that exited meanwhile (FUSE threads) are not in b1: their part is left out
    print("  voluntary switches by thread name, 3 daemons: " + " ".join(
        f"{c} {(b1[c] - b0.get(c, 0)) / k:.2f}" for c in sorted(b1, key=lambda c: b0.get(c, 0) - b1[c])
        if b1[c] != b0.get(c, 0)))
    if tr:
        print(open(f"{T}/strace.{label}").read())
    if pf:
        perf_print(f"{T}/perf.{label}", k)

data = os.urandom(1024)
N = 1500
for i in range(N):
    with open(f"{d}/f{i}", "wb") as f:
        f.write(data)
local, remote = [], []
for i in range(N):
    m = os.getxattr(f"{d}/f{i}", "user.recfs.master").decode()
    r = os.getxattr(f"{d}/f{i}", "user.recfs.replicas").decode()
    if m == nid:
        local.append(i)
    elif nid not in r:
        remote.append(i)
print(f"n1: {len(local)} names mastered here, {len(remote)} with no copy here, of {N}")
# past entry-timeout and attr-timeout (1 s): each open's path walk asks the
# daemon (a LOOKUP), as a cold open does
time.sleep(1.2)

def read(i):
    with open(f"{d}/f{i}", "rb") as f:
        assert f.read() == data

def create(i):
    with open(f"{d}/c{i}", "wb") as f:
        f.write(data)

big = os.urandom(128 * 1024)

def create_big(i):
    with open(f"{d}/b{i}", "wb") as f:
        f.write(big)

def classes(prefix, content, n):
    per = []
    for i in range(n):
        c0 = counters()
        t0 = time.monotonic()
        # as recfs-bench's cluster.mount does: no fstat (Python's open has one)
        fd = os.open(f"{d}/{prefix}{i}", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        assert os.write(fd, content) == len(content)
        os.close(fd)
        t1 = time.monotonic()
        c1 = counters()
        per.append({c: c1[c] - c0[c] for c in c0})
        per[-1]["us"] = 1e6 * (t1 - t0)
    rows = {}
    for i in range(n):
        m = os.getxattr(f"{d}/{prefix}{i}", "user.recfs.master").decode()
        r = os.getxattr(f"{d}/{prefix}{i}", "user.recfs.replicas").decode()
        cls = "n1 masters" if m == nid else "n1 replica" if nid in r.split(",") else "neither"
        rows.setdefault(cls, []).append(per[i])
    print(f"{prefix}: {n} creates of {len(content)} B, per create by class of name")
    for cls in ("n1 masters", "n1 replica", "neither"):
        lst = rows.get(cls, [])
        if not lst:
            continue
        keys = sorted(k for k in lst[0] if k != "us" and any(x[k] for x in lst))
        us = sorted(x["us"] for x in lst)
        print(f"  {cls:10s} {len(lst):4d}: p50 {us[len(us) // 2]:.0f} us " +
              " ".join(f"{k}={sum(x[k] for x in lst) / len(lst):.2f}" for k in keys))

if mode == "classes":
    classes("k", data, 300)
    classes("K", big, 100)
    sys.exit(0)
phase("read_remote", read, remote)
phase("read_local", read, local)
phase("create_1k", create, range(1000))
phase("create_128k", create_big, range(200))
PY
echo "loadavg $(cat /proc/loadavg)"
if [ "${1:-}" = copies ]; then
	unset LD_PRELOAD
	for n in n1 n2 n3; do cluster_down $n; done
	[ "$(wc -l < "$T/copies")" -eq 3 ] || fail "not every daemon reported its copies"
	awk '{ c += $2; b += $3 } END { printf "copies of >= 16 KiB per create_128k (3 daemons): %.2f calls, %.2f x 128 KiB\n", c / 200, b / 200 / 131072 }' "$T/copies"
fi
finish
