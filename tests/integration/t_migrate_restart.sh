#!/bin/bash
# t_migrate_restart: a node killed and restarted on its storage (device
# engine) after writes, overwrites and deletes elsewhere ends with the same
# listing and content as the others, and no deleted record comes back
# (issue 13).  Three nodes, replication-factor 2.  Files are written through
# n1; n3's copies are synced to its device and n3 is SIGKILLed; through n1
# a third of them are deleted, a third overwritten, and new ones created;
# n3 restarts on its device file (its cold start loads every old copy, its
# versions are subsets: never trusted as complete); once migrations end on every node, every node lists the
# same names, every file reads the newest content through every node, the
# deleted ones are absent everywhere, and the live records over all nodes
# are 2 x files (no stale copy left on a non-replica).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"

[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3"; exit 77; }

CLUSTER_RF=2
CLUSTER_ENGINE=device
export CLUSTER_RF CLUSTER_ENGINE
N=300


cluster_start 3
cluster_wait_agree 3 || fail "no cluster of 3"
python3 - "$(cluster_mnt n1)/test" "$N" <<'PY' || fail "writing through n1"
import os, sys
m, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(m, "f%04d" % i), "wb") as fh:
        fh.write(("old %d\n" % i).encode() * (1 + i % 5))
PY
cluster_settled n1 n2 n3
# The old copies n3 comes back with are those on its device: without a
# sync, a SIGKILL loses its partly filled write buffer (flush-max-ms), and
# under load that was every record (n3 then declared no partition holding
# data and sent nothing).  An fsync of the directory writes n3's buffer
# out, so all its copies (about two thirds of the records) come back.
held=$(cluster_ns_stat n3 objects)
run python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd); os.close(fd)' \
	"$(cluster_mnt n3)/test" || fail "fsync of n3's directory"
cluster_kill n3
cluster_wait_agree 2 n1 n2 || fail "no cluster of 2 after the kill"
python3 - "$(cluster_mnt n1)/test" "$N" <<'PY' || fail "changes through n1"
import os, sys
m, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    p = os.path.join(m, "f%04d" % i)
    if i % 3 == 0:
        os.unlink(p)
    elif i % 3 == 1:
        with open(p, "wb") as fh:
            fh.write(("new %d\n" % i).encode() * (2 + i % 3))
for i in range(n // 3):
    with open(os.path.join(m, "g%04d" % i), "wb") as fh:
        fh.write(("created %d\n" % i).encode())
PY
cluster_settled n1 n2
note "n1, n2: tombstones $(cluster_ns_stat n1 tombstones), $(cluster_ns_stat n2 tombstones) after the deletes"
# n3 comes back with sending paused (network.migrate-threads 0 in its
# configuration): its old copies are subsets, so the others must also
# receive from it; they show partitions in state D until it sends.
CLUSTER_EXTRA_YAML_n3="  migrate-threads: 0"
cluster_restart n3
check_true "n3 held copies before the kill" "$held" -gt 0
check_eq "n3's cold start loads every copy it held" \
	"$(sed -n 's/.*{test} cold start done: \([0-9]*\) records.*/\1/p' "$(cluster_log n3)" | tail -n 1)" "$held"
cluster_wait_agree 3 || fail "no cluster of 3 after n3 came back"
sleep 1
check_true "paused: n3 has migrations left" "$(cluster_info n3 migrate_partitions_remaining)" -gt 0
check_true "paused: n1 still receives partitions (state D)" \
	"$(run cat "$(cluster_mnt n1)/.info/partitions" | grep -c ' state=D ')" -gt 0
run sh -c "echo 1 > '$(cluster_mnt n3)/.info/config/network/migrate-threads'" || bad "n3: migrate-threads 1"
cluster_settled n1 n2 n3
for n in n1 n2 n3; do
	check_eq "settled: no partition in state D or Z on $n" \
		"$(run cat "$(cluster_mnt $n)/.info/partitions" | grep -c ' state=[DZ] ')" 0
done

expected=$(python3 - "$N" <<'PY'
import sys
n = int(sys.argv[1])
names = ["f%04d" % i for i in range(n) if i % 3 != 0] + ["g%04d" % i for i in range(n // 3)]
print(" ".join(sorted(names)))
PY
)
live=$(echo "$expected" | wc -w)
for n in n1 n2 n3; do
	got=$(run ls "$(cluster_mnt $n)/test" | tr '\n' ' ')
	check_eq "$n lists the same names (no deleted one back)" "$got" "$expected "
	out=$(run python3 - "$(cluster_mnt $n)/test" "$N" <<'PY'
import os, sys
m, n = sys.argv[1], int(sys.argv[2])
bad = 0
want = {}
for i in range(n):
    if i % 3 == 1:
        want["f%04d" % i] = ("new %d\n" % i).encode() * (2 + i % 3)
    elif i % 3 == 2:
        want["f%04d" % i] = ("old %d\n" % i).encode() * (1 + i % 5)
    else:
        want["f%04d" % i] = None
for i in range(n // 3):
    want["g%04d" % i] = ("created %d\n" % i).encode()
for name, data in want.items():
    p = os.path.join(m, name)
    try:
        with open(p, "rb") as fh:
            ok = data is not None and fh.read() == data
    except FileNotFoundError:
        ok = data is None
    except OSError:
        ok = False
    if not ok:
        bad += 1
        if bad < 5:
            try:
                got = open(p, "rb").read()[:40]
            except OSError as e:
                got = e.strerror
            print("wrong:", name, "got", got, "want", None if data is None else data[:40], file=sys.stderr)
print(bad)
PY
)
	check_eq "every file has its newest content through $n, the deleted ones absent" "$out" 0
done
sum=0
for n in n1 n2 n3; do
	o=$(cluster_ns_stat $n objects)
	note "$n: objects=$o tombstones=$(cluster_ns_stat $n tombstones) rx=$(cluster_ns_stat $n migrate_rx_partitions_initial) tx=$(cluster_ns_stat $n migrate_tx_partitions_initial) received=$(cluster_ns_stat $n migrate_records_received)"
	sum=$((sum + o))
done
check_eq "objects over all nodes = 2 x live files" "$sum" $((2 * live))
check_true "n3 received migrations" "$(cluster_ns_stat n3 migrate_records_received)" -gt 0
grep -qE '\{test\} [1-9][0-9]* partitions with a stored version' "$(cluster_log n3)" ||
	bad "n3 came back with the partition versions it had stored (as subsets)"
finish
