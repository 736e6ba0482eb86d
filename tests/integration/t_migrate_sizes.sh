#!/bin/bash
# t_migrate_sizes: a node joining receives partitions of every size the
# sender reads differently (docs/cluster.md, "Migration protocol"): small
# partitions read together, several per storage read and per message, and
# partitions holding a record larger than a message's batch (1 MiB), which
# the sender sends alone, the batch it was reading cut short before them.
# Three nodes at replication-factor 2 (memory engine, 4 MiB write blocks
# and records) hold 300 small files and 24 files of 1.5 MiB (one record
# each) written while n4 was down; n4 joins; migrations end on every node
# (bounded wait), the copies are where the plan puts them (objects over the
# nodes = 2 x files) and every file reads back identical through n4.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"
[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3"; exit 77; }
CLUSTER_RF=2
CLUSTER_ENGINE_SETTINGS="data-size:256M write-block-size:4M max-record-size:4M"
export CLUSTER_RF CLUSTER_ENGINE_SETTINGS
N_SMALL=300
N_BIG=24
ns_stat() {  # ns_stat nK NAME: NAME in nK's .info/namespace/test
	run cat "$(cluster_mnt "$1")/.info/namespace/test" | awk -F= -v k="$2" '$1 == k { print $2; exit }'
}
cluster_start_n4_away

# The files, written through n1; each one's content from its name.
cat >"$T/files.py" <<'PY'
import os, sys
def content(name):
    i = int(name[1:])
    if name[0] == "b":
        return (("big %d " % i).encode() * 200000)[:1536 * 1024]
    return ("small %d\n" % i).encode() * (1 + 97 * (i % 11))
def names(n_small, n_big):
    return ["s%05d" % i for i in range(n_small)] + ["b%05d" % i for i in range(n_big)]
m, what, n_small, n_big = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
bad = 0
for name in names(n_small, n_big):
    path = os.path.join(m, name)
    if what == "write":
        with open(path, "wb") as fh:
            fh.write(content(name))
        continue
    try:
        with open(path, "rb") as fh:
            ok = fh.read() == content(name)
    except OSError:
        ok = False
    if not ok:
        bad += 1
        if bad < 5:
            print("lost or different:", name, file=sys.stderr)
if what != "write":
    print(bad)
PY
run python3 "$T/files.py" "$(cluster_mnt n1)/test" write $N_SMALL $N_BIG ||
	fail "writing through n1"
total=$((N_SMALL + N_BIG))
note "$N_SMALL small files and $N_BIG of 1.5 MiB written through n1"

mark=$(date +%s%N)
cluster_restart n4
cluster_wait_agree 4 || fail "no cluster of 4 after n4 came back"
for n in n1 n2 n3 n4; do
	left=x
	for ((i = 0; i < 300; i++)); do
		left=$(cluster_info $n migrate_partitions_remaining)
		[ "$left" = 0 ] && break
		sleep 0.1
	done
	check_eq "$n: migrate_partitions_remaining reaches 0" "$left" 0
done
note "migrations done $(( ($(date +%s%N) - mark) / 1000000 )) ms after n4 was started"

sum=0
for n in n1 n2 n3 n4; do
	o=$(ns_stat $n objects)
	note "$n: objects=$o sent=$(ns_stat $n migrate_records_transmitted) received=$(ns_stat $n migrate_records_received)"
	sum=$((sum + o))
done
check_eq "objects over all nodes = replication-factor x files (no copy lost or left behind)" "$sum" $((2 * total))
check_true "n4 received records" "$(ns_stat n4 migrate_records_received)" -gt 0
check_eq "n4 refused no record" "$(ns_stat n4 migrate_records_refused)" 0
check_eq "n4 has none left to receive" "$(ns_stat n4 migrate_rx_partitions_remaining)" 0
bad=$(run python3 "$T/files.py" "$(cluster_mnt n4)/test" check $N_SMALL $N_BIG)
check_eq "every file reads back identical through n4 (of $total)" "$bad" 0
check_eq "n4 lists every file" "$(ls "$(cluster_mnt n4)/test" | wc -l)" "$total"
finish
