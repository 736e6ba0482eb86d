#!/bin/bash
# t_cluster_memtomb: no deleted record comes back through a migration on a
# memory namespace (issue 13, "0 deleted records resurrected").  Three
# nodes, replication-factor 2, memory engine (no shadow):
#   - 60 files written through n1; n3 holds a copy of about two thirds;
#   - n3 SIGSTOPped past the heartbeat timeout; n1 and n2 form a cluster of
#     2 and migrate; the 60 files are deleted through n1: each leaves a
#     tombstone on both of n1 and n2 (a memory namespace in a cluster
#     keeps them; counted in `tombstones`, not in `objects`);
#   - n3 continued: the three rejoin and migrate; then no deleted name is
#     listed or readable through any node, and n3's old copies are gone;
#   - tomb-raider-eligible-age and tomb-raider-period lowered to 1 s through
#     .info/config: every tombstone is reclaimed on every node.
# Without the tombstones (the delete dropping the entry, as a memory
# namespace alone still does), n3's copies migrate back.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"

[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3"; exit 77; }

CLUSTER_RF=2
CLUSTER_WAIT_S=40
export CLUSTER_RF CLUSTER_WAIT_S
cluster_start 3
cluster_wait_agree 3 || fail "no cluster of 3"

M1=$(cluster_mnt n1)/test

ns_stat() {  # ns_stat nK NAME: NAME in nK's .info/namespace/test
	run cat "$(cluster_mnt "$1")/.info/namespace/test" | awk -F= -v k="$2" '$1 == k { print $2; exit }'
}
remaining() {  # remaining nK: migrate_partitions_remaining in nK's .info/cluster
	local v
	v=$(cluster_info "$1" migrate_partitions_remaining)
	echo "${v:-absent}"
}
# settled NODES...: migrate_partitions_remaining 0 on every node in two
# reads 0.5 s apart (bounded: 60 s)
settled() {
	local i zeros=0 left
	for ((i = 0; i < 120; i++)); do
		left=$(for n in "$@"; do echo "$n=$(remaining "$n")"; done | tr '\n' ' ')
		if echo "$left" | grep -Eq '=([1-9]|absent)'; then
			zeros=0
		else
			zeros=$((zeros + 1))
			[ $zeros -ge 2 ] && return 0
		fi
		sleep 0.5
	done
	note "migrations not done within 60 s: $left"
	return 1
}
settled n1 n2 n3 || fail "no settled cluster of 3 to start from"

run python3 - "$M1" <<'PY' || fail "writing 60 files through n1"
import os, sys
for i in range(60):
    with open(os.path.join(sys.argv[1], "d%02d" % i), "w") as f:
        f.write("deleted while n3 was away %d\n" % i)
PY
objects3=$(ns_stat n3 objects)
note "n3 holds $objects3 of the 60 records"
check_true "n3 holds copies of some of the files" "${objects3:-0}" -gt 10

cluster_stop n3
cluster_wait_size 2 n1 n2 || fail "n1, n2 did not see n3 go"
settled n1 n2 || fail "n1, n2 did not finish migrating without n3"
t1=$(ns_stat n1 tombstones)
t2=$(ns_stat n2 tombstones)
expect_ok "rm of the 60 files through n1 while n3 is stopped" \
	sh -c "rm -f '$M1'/d[0-5][0-9]"
check_eq "120 tombstones on n1 and n2 (one per replica)" \
	$(($(ns_stat n1 tombstones) + $(ns_stat n2 tombstones) - t1 - t2)) 120
check_eq "no live record left on n1 and n2" $(($(ns_stat n1 objects) + $(ns_stat n2 objects))) 0

cluster_cont n3
cluster_wait_agree 3 || fail "n3 did not come back"
settled n1 n2 n3 || bad "migrations after n3's return did not finish"

for n in n1 n2 n3; do
	m=$(cluster_mnt "$n")/test
	check_eq "no deleted name listed through $n" "$(run ls "$m" | grep -c '^d[0-5][0-9]$')" 0
	readable=$(run python3 - "$m" <<'PY'
import os, sys
n = 0
for i in range(60):
    try:
        with open(os.path.join(sys.argv[1], "d%02d" % i)) as f:
            f.read()
        n += 1
    except FileNotFoundError:
        pass
print(n)
PY
)
	check_eq "no deleted file readable through $n" "$readable" 0
	check_eq "no live record on $n" "$(ns_stat "$n" objects)" 0
done
note "tombstones after the heal: n1 $(ns_stat n1 tombstones) n2 $(ns_stat n2 tombstones) n3 $(ns_stat n3 tombstones)"
check_eq "the tombstones stay (younger than tomb-raider-eligible-age)" \
	$(($(ns_stat n1 tombstones) + $(ns_stat n2 tombstones) + $(ns_stat n3 tombstones) > 0)) 1

# Both settings lowered through .info/config (dynamic): every tombstone goes.
for n in n1 n2 n3; do
	for kv in tomb-raider-eligible-age=1 tomb-raider-period=1; do
		run sh -c "echo ${kv#*=} > '$(cluster_mnt "$n")/.info/config/namespaces/test/${kv%=*}'" ||
			fail "cannot set ${kv%=*} on $n"
	done
done
check_eq "tomb-raider-eligible-age reads back" \
	"$(run cat "$(cluster_mnt n2)/.info/config/namespaces/test/tomb-raider-eligible-age")" 1
left=x
for ((i = 0; i < 60; i++)); do
	left=$(($(ns_stat n1 tombstones) + $(ns_stat n2 tombstones) + $(ns_stat n3 tombstones)))
	[ "$left" = 0 ] && break
	sleep 0.5
done
check_eq "every tombstone reclaimed within 30 s once older than the age" "$left" 0
for n in n1 n2 n3; do
	check_eq "still no deleted name listed through $n" \
		"$(run ls "$(cluster_mnt "$n")/test" | grep -c '^d[0-5][0-9]$')" 0
done
finish
