#!/bin/bash
# t_migrate_yield: the migration gives clients the CPU first and still
# finishes (issue 13: a large migration never stops the mount from serving;
# docs/cluster.md, "Throttles").  Three nodes at replication-factor 2 hold
# files; two writers keep creating files through n1 and n2 the whole time
# (continuous client load on every node: proxied and replica writes).
#   1. network.migrate-yield-pct at its maximum (1000, dynamic; 1001 is
#      refused and the value stays) on every node, then n4 joins: the
#      emigration threads pause for the clients (migrate_tx_yields and
#      migrate_tx_yield_time move, no pause longer than 100 ms), the writers
#      keep being acknowledged during the move, and migrate_partitions_remaining
#      still reaches 0 on all four within a bound while they write: the move
#      has a floor, it is never starved.
#   2. migrate-yield-pct 0 on every node, then n3 is killed: the
#      re-replication under the same writers takes no pause.
# Then the writers stop, every acknowledged file is listed and every node
# holds only what it owns: objects over the nodes = 2 x files.
#   3. The default (300) again, n3 comes back with no client running: its
#      migrations take no pause.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"

[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3"; exit 77; }

CLUSTER_RF=2
export CLUSTER_RF
N_FILES=1200
DONE_S=60     # bound on each migration under the writers

set_all() {  # set_all VALUE NODES...: network.migrate-yield-pct
	local v=$1 n
	shift
	for n in "$@"; do
		run sh -c "echo $v > '$(cluster_mnt $n)/.info/config/network/migrate-yield-pct'" ||
			bad "$n: migrate-yield-pct $v"
	done
}

sum_stat() {  # sum_stat NAME NODES...: NAME of .info/namespace/test summed
	local name=$1 n s=0 v
	shift
	for n in "$@"; do
		v=$(cluster_ns_stat $n "$name")
		s=$((s + ${v:-0}))
	done
	echo $s
}

wait_settled() {  # wait_settled WHAT NODES...: migrate_partitions_remaining 0 on all, bounded
	local what=$1 n left i end
	shift
	end=$(( $(date +%s) + DONE_S ))
	for n in "$@"; do
		left=x
		while [ "$(date +%s)" -le $end ]; do
			left=$(cluster_info $n migrate_partitions_remaining)
			[ "$left" = 0 ] && break
			sleep 0.1
		done
		check_eq "$what: $n: migrate_partitions_remaining reaches 0 within ${DONE_S} s while clients write" "$left" 0
	done
}

acked() {  # acked: creates acknowledged so far by both writers
	echo $(( $(grep -c '^w' "$T/w1") + $(grep -c '^w' "$T/w2") ))
}

cluster_start_n4_away

python3 - "$(cluster_mnt n1)/test" "$N_FILES" <<'PY' || fail "writing through n1"
import os, sys
m, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(m, "f%05d" % i), "wb") as fh:
        fh.write(b"%06d" % i * 2731)
PY
note "$N_FILES files of 16 KiB written through n1"

# The writers: create files until $T/stop exists (at most 120 s), one name
# per acknowledged create.
for w in 1 2; do
	python3 - "$(cluster_mnt n$w)/test" "$w" "$T/stop" >"$T/w$w" <<'PY' &
import os, sys, time
m, w, stop = sys.argv[1], sys.argv[2], sys.argv[3]
end = time.monotonic() + 120
i = failed = 0
while time.monotonic() < end and not os.path.exists(stop):
    name = "w%s-%06d" % (w, i)
    try:
        with open(os.path.join(m, name), "wb") as fh:
            fh.write(name.encode() * 100)
        print(name, flush=True)
    except OSError:
        failed += 1
    i += 1
    # at most ~300 creates/s each: with migrate-sleep stretching the moves
    # (below), unpaced writers filled the 64M namespaces to stop-writes
    time.sleep(0.003)
print("failed %d" % failed)
PY
	eval "W$w=\$!"
done
sleep 1
check_true "the writers write" "$(acked)" -gt 0

# ---- 1. clients first, at the most: the move still finishes --------------------
check_eq "migrate-yield-pct is 300 by default" \
	"$(run cat "$(cluster_mnt n1)/.info/config/network/migrate-yield-pct")" 300
set_all 1000 n1 n2 n3
check_eq "migrate-yield-pct reads back 1000" \
	"$(run cat "$(cluster_mnt n1)/.info/config/network/migrate-yield-pct")" 1000
if run sh -c "echo 1001 > '$(cluster_mnt n1)/.info/config/network/migrate-yield-pct'" 2>/dev/null; then
	bad "migrate-yield-pct 1001 accepted"
else
	pass "migrate-yield-pct 1001 refused"
fi
check_eq "the refused value left 1000" \
	"$(run cat "$(cluster_mnt n1)/.info/config/network/migrate-yield-pct")" 1000
# A thread looks for clients when it sends a message once it has worked a
# slice (20 ms) since its last look; since partition ends are answered
# without holding the receiver's workers (h-mrate) this join's move took
# ~130 ms over several threads on a quiet machine, so no thread's stream
# lasted a slice and none looked (0 pauses: a failure of the test, not of
# the product).  migrate-sleep 1 ms per record on the senders stretches
# each stream over several slices whatever the machine's speed - in every
# part, so that the "no pause" checks below look at moves long enough to
# have paused.
set_sleep() {  # set_sleep US NODES...: namespaces/test/migrate-sleep
	local v=$1 n
	shift
	for n in "$@"; do
		run sh -c "echo $v > '$(cluster_mnt $n)/.info/config/namespaces/test/migrate-sleep'" ||
			bad "$n: migrate-sleep $v"
	done
}
set_sleep 1000 n1 n2 n3
y0=$(sum_stat migrate_tx_yields n1 n2 n3)
us0=$(sum_stat migrate_tx_yield_time n1 n2 n3)
CLUSTER_EXTRA_YAML_n4="  migrate-yield-pct: 1000"
export CLUSTER_EXTRA_YAML_n4
a0=$(acked)
mark=$(date +%s%N)
cluster_restart n4
cluster_wait_agree 4 || fail "no cluster of 4 after n4 came back"
wait_settled "join" n1 n2 n3 n4
ms=$(( ($(date +%s%N) - mark) / 1000000 ))
a1=$(acked)
running=0
kill -0 $W1 2>/dev/null && kill -0 $W2 2>/dev/null && running=1
check_eq "both writers were still writing when the migrations ended" $running 1
# A sender pauses after its last message too (the look comes with each
# send), so a pause may still run when remaining is 0: read the counters
# once they stay the same over 250 ms (more than a pause), within 5 s.
y1=-1 us1=-1
for ((i = 0; i < 20; i++)); do
	y=$(sum_stat migrate_tx_yields n1 n2 n3 n4)
	us=$(sum_stat migrate_tx_yield_time n1 n2 n3 n4)
	[ "$y" = "$y1" ] && [ "$us" = "$us1" ] && break
	y1=$y us1=$us
	sleep 0.25
done
note "join: migrations done $ms ms after n4 was started; $((a1 - a0)) creates acknowledged meanwhile; $((y1 - y0)) pauses, $(((us1 - us0) / 1000)) ms"
check_true "join: the writers' creates were acknowledged during the move" $((a1 - a0)) -gt 20
check_true "join: the emigration threads paused for the clients (migrate_tx_yields)" $((y1 - y0)) -gt 0
check_true "join: and for some time (migrate_tx_yield_time)" $((us1 - us0)) -gt 0
check_true "join: no pause longer than 100 ms" $((us1 - us0)) -le $(((y1 - y0) * 100000))
check_true "n4 received records" "$(cluster_ns_stat n4 migrate_records_received)" -gt 0

# ---- 2. no pause at 0 --------------------------------------------------------
set_all 0 n1 n2 n3 n4
set_sleep 1000 n4
y0=$(sum_stat migrate_tx_yields n1 n2 n4)
us0=$(sum_stat migrate_tx_yield_time n1 n2 n4)
tx0=$(sum_stat migrate_records_transmitted n1 n2 n4)
cluster_kill n3
cluster_wait_agree 3 n1 n2 n4 || fail "no cluster of 3 after n3 was killed"
wait_settled "n3 gone" n1 n2 n4
check_true "n3 gone: records were sent again (re-replication)" \
	"$(sum_stat migrate_records_transmitted n1 n2 n4)" -gt "$tx0"
check_eq "n3 gone, migrate-yield-pct 0: no pause (migrate_tx_yields)" "$(sum_stat migrate_tx_yields n1 n2 n4)" "$y0"
check_eq "n3 gone, migrate-yield-pct 0: migrate_tx_yield_time unchanged" "$(sum_stat migrate_tx_yield_time n1 n2 n4)" "$us0"

touch "$T/stop"
wait $W1 || bad "writer 1 failed"
wait $W2 || bad "writer 2 failed"
note "writers: $(tail -n 1 "$T/w1"), $(tail -n 1 "$T/w2")"
wait_settled "writers stopped" n1 n2 n4
total=$((N_FILES + $(acked)))
listed=$(ls "$(cluster_mnt n1)/test" | wc -l)
check_true "n1 lists every acknowledged file ($listed >= $total)" "$listed" -ge "$total"
check_eq "objects over the 3 nodes = replication-factor x files listed" "$(sum_stat objects n1 n2 n4)" $((2 * listed))

# ---- 3. no client, no pause --------------------------------------------------
# The default (300) again; n3 comes back while nothing writes or reads
# the files: its migrations pause nowhere.
set_all 300 n1 n2 n4
unset CLUSTER_EXTRA_YAML_n4
y0=$(sum_stat migrate_tx_yields n1 n2 n4)
tx0=$(sum_stat migrate_records_transmitted n1 n2 n4)
cluster_restart n3
cluster_wait_agree 4 || fail "no cluster of 4 after n3 came back"
wait_settled "n3 back, no client" n1 n2 n3 n4
check_true "n3 back: records were sent" "$(sum_stat migrate_records_transmitted n1 n2 n4)" -gt "$tx0"
check_eq "n3 back, no client: no pause (migrate_tx_yields)" "$(sum_stat migrate_tx_yields n1 n2 n3 n4)" "$y0"
finish
