#!/usr/bin/env python3
"""jepsen_check.py - the checker of the fault-injection test
(t_cluster_jepsen.sh; docs/cluster.md, "Fault-injection test").

  jepsen_check.py view DIR KEYS > VIEW
      One node's final view of the names k000 .. k<KEYS-1> of DIR (a set
      seen through that node's mount): a line "NAME STATE" per name, STATE
      being absent, empty, value VID (the value id in the content),
      bad HEX (content no client writes) or error ERRNO; then "ls NAME..."
      with what a listing of DIR shows.

  jepsen_check.py check [--all] [--t0 NS] [--split START_NS[,CUT_NS] END_NS A B]...
                        --view NODE=VIEW ... LOG ...
      Reads the clients' logs (jepsen_client.c) and the views, and checks
      every name as a register:

      * an operation is acknowledged (ok), failed without effect (ENOENT of
        an overwrite or a delete: the master answered that the name was
        absent, so nothing was written or deleted), or indeterminate (any
        other failure, a timeout, or a "begin" without its "end": in AP a
        failed write may still have been stored); a timeout's or a missing
        end is infinity, another failure ends when the client got it (a
        copy of it run later than that, allowed in AP, would show as LOST
        or RESURRECTED: none seen so far);
      * S is the latest start of an acknowledged operation on the name.
        The final state may be that of any acknowledged or indeterminate
        operation that had not ended when S came (so the last acknowledged
        one, or one concurrent with it, or one that started later); an
        indeterminate write may also have left the file empty (created or
        truncated at open, never written); with no acknowledged operation
        at all the name may also be absent (its state before the test);
      * anything else is an anomaly: LOST (an acknowledged write is
        missing: absent, empty, or an older value instead), RESURRECTED
        (the last acknowledged operation is a delete, and a value written
        before it shows), STALE (an overwrite or delete answered ENOENT
        although an acknowledged write ended before it started and no
        delete may have run in between: the master had lost the write or
        not received it, or a delete routed again after its master went
        down did not know its own tombstone - see docs/cluster.md, Proxy,
        for what an operation routed again answers and its limits), BOGUS (a
        value no operation that may have taken effect wrote, content no
        client writes, or a read error), DIVERGED (nodes show different
        states of a name, or a node's listing disagrees with its reads),
        CREATE-ENOENT (a write, whose open has O_CREAT, answered ENOENT:
        the set directory exists, so a create never does; judged above as
        indeterminate all the same).

      --split START_NS[,CUT_NS] END_NS A B, once per split (an isolated
      node, or one restarted or paused until it is back in the cluster, is
      a split of one): from when the nodes A and B (comma-separated names)
      started to part until they formed one cluster again.  CUT_NS (default
      START_NS): when the cut was complete (a split's drops go in one
      namespace after another); until then an operation through one side
      may still reach a master on the other, so it belongs to neither side.
      Each side serves on its own (AP): for every name, each side's last
      operation started after the cut is the version that side holds at
      the heal, and the later one wins (later last-update time).  When the losing side's last
      operation is an acknowledged write, it is reported as SUPERSEDED by
      the other side's: Aerospike AP's outcome of a conflict, not an
      anomaly (the final state is still judged as above: the winner
      started later).  Likewise an ENOENT answered during the split (the
      operation ended after START_NS) for a name written before the cut or
      only through the other side is what AP serves there: listed as
      "STALE in the split", not an anomaly.  A STALE in
      the split's last second or after it that missed a write made during
      it is marked "at or after the merge of a split" (the merged cluster
      answered from a copy that lacked it: before migration reconciled
      the two sides).

      Times print in ms from --t0 (default: the first operation's start).
      Prints counts, then each anomaly (20 of each kind; --all: every
      one) with the operations that decide it; exits 1 on any anomaly, 0
      otherwise, 2 on unreadable input.

tests/integration/t_jepsen_checker.sh runs hand-made histories through
"check" (each anomaly found, clean histories pass).
"""
import errno
import os
import sys

INF = float("inf")
MERGE_SLACK_NS = 1000 * 1000000


class Op:
    __slots__ = ("client", "op", "name", "kind", "value", "start", "end", "outcome", "node")

    def __init__(self, client, op, name, kind, value, start):
        self.client, self.op, self.name, self.kind = client, op, name, kind
        self.value = None if value == "-" else value
        self.start = start
        self.end = INF
        self.outcome = "unknown:no-end"
        self.node = "?"

    @property
    def acked(self):
        return self.outcome == "ok"

    @property
    def no_effect(self):
        return self.outcome == "fail:ENOENT" and self.kind in ("overwrite", "delete")

    @property
    def possible(self):
        """acknowledged, or may have taken effect"""
        return not self.no_effect

    def state(self):
        return "absent" if self.kind == "delete" else "value " + self.value


T0 = [0]


def fmt_ns(t):
    return "inf" if t == INF else "%.1f" % ((t - T0[0]) / 1e6)


def fmt_op(o):
    return "c%d#%d %s %s %s [%s .. %s ms] %s" % (
        o.client, o.op, o.kind, o.value or "-", "via " + o.node,
        fmt_ns(o.start), fmt_ns(o.end), o.outcome)


def die(msg):
    print("jepsen_check: " + msg, file=sys.stderr)
    sys.exit(2)


# ---- view -------------------------------------------------------------------

def view(d, keys):
    for i in range(keys):
        name = "k%03d" % i
        try:
            with open(os.path.join(d, name), "rb") as f:
                data = f.read()
        except OSError as e:
            if e.errno == errno.ENOENT:
                print(name, "absent")
            else:
                print(name, "error", errno.errorcode.get(e.errno, str(e.errno)))
            continue
        w = data.split()
        if not data:
            print(name, "empty")
        elif (len(w) == 5 and w[0] == b"jepsen" and w[1] == b"value" and w[3] == b"name"
              and w[4].decode(errors="replace") == name
              and data == b"jepsen value %s name %s\n" % (w[2], w[4])):
            print(name, "value", w[2].decode())
        else:
            print(name, "bad", data[:64].hex())
    try:
        names = sorted(os.listdir(d))
    except OSError as e:
        names = ["<error:%s>" % errno.errorcode.get(e.errno, str(e.errno))]
    print("ls", *names)


# ---- check ------------------------------------------------------------------

def read_logs(paths):
    ops = {}
    nodes = {}
    for p in paths:
        try:
            lines = open(p).read().split("\n")
        except OSError as e:
            die("%s: %s" % (p, e))
        for ln, line in enumerate(lines, 1):
            f = line.split()
            if not f:
                continue
            try:
                if f[0] == "client":
                    nodes[int(f[1])] = f[3]
                elif f[0] == "note":
                    pass
                elif f[0] == "begin":
                    c, n = int(f[1]), int(f[2])
                    ops[(c, n)] = Op(c, n, f[3], f[4], f[5], int(f[6]))
                elif f[0] == "end":
                    c, n = int(f[1]), int(f[2])
                    o = ops.get((c, n))
                    if o is None:
                        die("%s:%d: an end without its begin" % (p, ln))
                    o.end = int(f[7])
                    o.outcome = f[8]
                else:
                    die("%s:%d: unknown line %r" % (p, ln, line))
            except (IndexError, ValueError):
                die("%s:%d: bad line %r" % (p, ln, line))
    for o in ops.values():
        if o.kind not in ("write", "overwrite", "delete"):
            die("unknown kind %r" % o.kind)
        o.node = nodes.get(o.client, "?")
        if o.outcome.startswith("unknown"):
            o.end = INF
    return list(ops.values())


def read_view(spec):
    if "=" not in spec:
        die("--view NODE=FILE, not %r" % spec)
    node, path = spec.split("=", 1)
    states, ls = {}, None
    try:
        lines = open(path).read().split("\n")
    except OSError as e:
        die("%s: %s" % (path, e))
    for line in lines:
        f = line.split()
        if not f:
            continue
        if f[0] == "ls":
            ls = set(f[1:])
        else:
            states[f[0]] = " ".join(f[1:])
    if ls is None:
        die("%s: no ls line" % path)
    return node, states, ls


class Report:
    def __init__(self):
        self.items = {"LOST": [], "RESURRECTED": [], "STALE": [], "BOGUS": [], "DIVERGED": [],
                      "CREATE-ENOENT": []}

    def add(self, kind, name, text, ops):
        self.items[kind].append((name, text, ops))


def judge(name, state, ops):
    """None if state is allowed for name, else (KIND, text, ops that decide)"""
    acked = [o for o in ops if o.acked]
    s = max((o.start for o in acked), default=None)
    cands = [o for o in ops if o.possible and (s is None or o.end > s)]
    allowed = set(o.state() for o in cands)
    if any(o.kind != "delete" and not o.acked for o in cands):
        allowed.add("empty")
    if s is None:
        allowed.add("absent")
    if state in allowed:
        return None
    last = sorted((o for o in acked if o.end > s), key=lambda o: o.start)
    writer = [o for o in ops if o.kind != "delete" and state == o.state()]
    shown = last + [o for o in writer if o not in last]
    if state.startswith(("bad", "error")) or (state.startswith("value") and not writer):
        return ("BOGUS", "shows %s, which no operation on it wrote" % state, shown)
    if state.startswith("value") and not any(o.possible for o in writer):
        return ("BOGUS", "shows %s, written only by an operation that failed without effect" % state, shown)
    dels = [o for o in last if o.kind == "delete"]
    if dels and state != "absent" and (
            state == "empty" or all(w.end <= max(d.start for d in dels) for w in writer)):
        return ("RESURRECTED", "deleted (acknowledged) but shows %s" % state, shown)
    wr = [o for o in last if o.kind != "delete"]
    return ("LOST", "acknowledged %s missing: shows %s" % (
        ", ".join("value " + o.value for o in wr) or "write", state), shown)


def stale(x, ops):
    """None if the ENOENT that x (an overwrite or delete) got is allowed,
    else (text, ops that decide): the name may be absent while x runs when
    no acknowledged operation ended before x started, or when a delete
    that may have taken effect started before x ended and was not
    superseded by then"""
    before = [a for a in ops if a.acked and a is not x and a.end < x.start]
    if not before:
        return None
    s2 = max(a.start for a in before)
    if any(o.kind == "delete" and o.possible and o is not x and o.start < x.end and o.end > s2
           for o in ops):
        return None
    last = sorted((a for a in before if a.end > s2), key=lambda o: o.start)
    return ("%s answered ENOENT at %s ms after acknowledged %s" % (
        x.kind, fmt_ns(x.start), ", ".join(o.state() for o in last)), last + [x])


def split_excuses(splits, x, last):
    """x, answered during a split, missed only writes made before its cut
    or through the other side: what AP serves on each side of a split"""
    for t0, cut, t1, a, b in splits:
        if not (x.end > t0 and x.start < t1) or x.node not in a | b:
            continue
        mine = a if x.node in a else b
        if not any(o.node in mine and o.start >= cut for o in last):
            return True
    return False


def merge_note(splits, x, last):
    """a note when x came at or after the end of a split and missed a
    write made during it: the merged cluster served x from a copy that
    lacked it.  "At": the nemesis sees the cluster formed again up to
    about a second after it formed (it polls every mount), so the last
    second of a split counts as its merge."""
    for t0, _, t1, a, b in splits:
        if x.start >= t1 - MERGE_SLACK_NS and any(t0 <= o.start < t1 and o.node in a | b for o in last):
            return " [at or after the merge of a split: missed a write made during it]"
    return ""


def check(args):
    splits = []
    show_all = False
    t0_arg = None
    views = []
    logs = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--split":
            if i + 4 >= len(args):
                die("--split START_NS[,CUT_NS] END_NS NODES_A NODES_B")
            start = [int(v) for v in args[i + 1].split(",")]
            if len(start) > 2 or start[-1] < start[0]:
                die("--split START_NS[,CUT_NS]: CUT_NS must not be before START_NS")
            splits.append((start[0], start[-1], int(args[i + 2]),
                           set(args[i + 3].split(",")), set(args[i + 4].split(","))))
            i += 5
        elif a == "--t0":
            if i + 1 >= len(args):
                die("--t0 NS")
            t0_arg = int(args[i + 1])
            i += 2
        elif a == "--all":
            show_all = True
            i += 1
        elif a == "--view":
            if i + 1 >= len(args):
                die("--view NODE=FILE")
            views.append(read_view(args[i + 1]))
            i += 2
        else:
            logs.append(a)
            i += 1
    if not views or not logs:
        die("usage: check [--split START[,CUT] END A B] --view NODE=FILE ... LOG ...")
    ops = read_logs(logs)
    T0[0] = t0_arg if t0_arg is not None else min((o.start for o in ops), default=0)
    by_name = {}
    for o in ops:
        by_name.setdefault(o.name, []).append(o)
    for lst in by_name.values():
        lst.sort(key=lambda o: o.start)
    names = set(by_name)
    for _, states, _ in views:
        names |= set(states)

    rep = Report()
    superseded = []
    split_stale = []
    for name in sorted(names):
        lst = by_name.get(name, [])
        per_node = {}
        for node, states, ls in views:
            st = states.get(name, "absent")
            per_node[node] = st
            listed = name in ls
            present = st not in ("absent",) and not st.startswith("error")
            if listed != present:
                rep.add("DIVERGED", name, "%s: reads %s but its listing %s it" % (
                    node, st, "shows" if listed else "does not show"), [])
        distinct = sorted(set(per_node.values()))
        if len(distinct) > 1:
            rep.add("DIVERGED", name, "nodes differ: " + ", ".join(
                "%s %s" % (n, per_node[n]) for n in sorted(per_node)), [])
        for st in distinct:
            bad = judge(name, st, lst)
            if bad:
                who = ",".join(sorted(n for n in per_node if per_node[n] == st))
                rep.add(bad[0], name, "%s (%s)" % (bad[1], who), bad[2])
        for x in lst:
            if x.kind == "write" and x.outcome == "fail:ENOENT":
                rep.add("CREATE-ENOENT", name, "a write (open with O_CREAT) answered ENOENT "
                        "(via %s): the set exists, so a create never does" % x.node, [x])
            if x.no_effect:
                bad = stale(x, lst)
                if bad and split_excuses(splits, x, bad[1][:-1]):
                    split_stale.append((name, x, bad[0]))
                elif bad:
                    rep.add("STALE", name, "%s (via %s)%s" % (
                        bad[0], x.node, merge_note(splits, x, bad[1][:-1])), bad[1])
        for split in splits:
            # each side's last operation on the name during the split is the
            # version that side holds at the heal; the later one wins the
            # conflict (later last-update time), so the other side's, when
            # it is an acknowledged write, is replaced (an operation started
            # before the cut may have reached either side: neither's)
            t0, cut, t1, a, b = split
            last = {}
            for side in (0, 1):
                mine = [o for o in lst if o.possible and o.node in split[3 + side] and cut <= o.start < t1]
                last[side] = mine[-1] if mine else None
            for side in (0, 1):
                w, o = last[side], last[1 - side]
                if w and o and w.acked and w.kind != "delete" and o.start > w.start:
                    superseded.append((name, w, o))

    n_ack = sum(o.acked for o in ops)
    n_noeff = sum(o.no_effect for o in ops)
    n_unknown = sum(o.outcome.startswith("unknown") for o in ops)
    n_fail = len(ops) - n_ack - n_noeff - n_unknown
    print("operations %d: acknowledged %d, failed without effect (ENOENT) %d, "
          "failed (indeterminate) %d, unknown %d" % (len(ops), n_ack, n_noeff, n_fail, n_unknown))
    errs = {}
    for o in ops:
        if not o.acked:
            errs[o.outcome] = errs.get(o.outcome, 0) + 1
    print("  not acknowledged: " + (", ".join(
        "%s %d" % (k, errs[k]) for k in sorted(errs, key=lambda k: -errs[k])) or "none"))
    lat = sorted(o.end - o.start for o in ops if o.acked)
    if lat:
        print("  acknowledged latency ms: median %.1f, 99%% %.1f, max %.1f" % (
            lat[len(lat) // 2] / 1e6, lat[len(lat) * 99 // 100] / 1e6, lat[-1] / 1e6))
    for k in ("write", "overwrite", "delete"):
        ko = [o for o in ops if o.kind == k]
        print("  %-9s %d: acknowledged %d" % (k, len(ko), sum(o.acked for o in ko)))
    present = sum(1 for n in names if views[0][1].get(n, "absent") != "absent")
    print("names %d, present at the end (%s) %d, views %s" % (
        len(names), views[0][0], present, " ".join(v[0] for v in views)))
    total = 0
    for kind, items in rep.items.items():
        print("%s %d" % (kind, len(items)))
        total += len(items)
    for kind, items in rep.items.items():
        for name, text, ops_ in (items if show_all else items[:20]):
            print("%s %s: %s" % (kind, name, text))
            for o in ops_[:8]:
                print("    " + fmt_op(o))
        if not show_all and len(items) > 20:
            print("(%d more %s not shown; --all shows them)" % (len(items) - 20, kind))
    if splits:
        print("SUPERSEDED %d (acknowledged writes of one side replaced by an operation "
              "of the other side during the split; not anomalies)" % len(superseded))
        for name, w, o in superseded:
            print("SUPERSEDED %s: %s  by  %s%s" % (name, fmt_op(w), fmt_op(o),
                                                  "  (concurrent)" if o.start < w.end else ""))
        print("STALE in the split %d (ENOENT on one side for a name written before the split "
              "or through the other side; not anomalies)" % len(split_stale))
        for name, x, text in (split_stale if show_all else split_stale[:10]):
            print("  %s: %s (via %s)" % (name, text, x.node))
    print("RESULT %s" % ("ok" if total == 0 else "%d anomalies" % total))
    return 1 if total else 0


def main():
    a = sys.argv[1:]
    if len(a) == 3 and a[0] == "view":
        view(a[1], int(a[2]))
        return 0
    if a and a[0] == "check":
        return check(a[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
