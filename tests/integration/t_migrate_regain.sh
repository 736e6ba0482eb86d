#!/bin/bash
# t_migrate_regain: a partition a node dropped and then regained before
# defragmentation reached the dropped copies does not bring back what was
# deleted meanwhile (issue 13).  Three nodes, replication-factor 2: n1 on
# the device engine with defragmentation off (defrag-lwm-pct 0: the bytes of
# what it drops stay on its file), n2 and n3 in memory (tomb-raider-period
# 1 s, eligible-age 0: tombstones go as soon as the raider passes).
#   - files written through n2; n4 (memory) joins: n1 drops its copies of
#     the partitions n4 takes over;
#   - half of the files n1 dropped are deleted through n2, and their
#     tombstones reclaimed on every replica (n1 is not one: it never sees
#     them);
#   - n4 leaves for good: n1 is a replica of those partitions again and
#     migration brings it the files left (their last-update times are older
#     than its drop);
#   - n1 is killed (SIGKILL) and restarted, then stopped cleanly and
#     restarted: each time its cold start skips the stale copies
#     (cold_start_dropped_records: at least one per deleted file), none of
#     the deleted files comes back on any node, n1 holds every file it is a
#     replica of and stores none of the copies migration sends it again
#     (apply_not_newer = migrate_records_received: its cold start loaded
#     the regained copies), and recfs-check on its stopped file agrees (its
#     -v listing shows the regained files' copies live with their mark);
#   - n2 and n3 stop: n1 alone still serves every regained file with its
#     content.
# On main (before the regain marks) the version stored at the regain ended
# the drop: the first restart loaded the stale copies and the deleted files
# came back through every node.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"

[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3"; exit 77; }

CLUSTER_RF=2
CLUSTER_ENGINE=memory
CLUSTER_ENGINE_SETTINGS="data-size:64M write-block-size:1M tomb-raider-period:1 tomb-raider-eligible-age:0"
CLUSTER_ENGINE_n1=device
CLUSTER_ENGINE_SETTINGS_n1="filesize:64M write-block-size:1M tomb-raider-period:1 tomb-raider-eligible-age:0 defrag-lwm-pct:0"
CLUSTER_SETTLE_POLL=0.05
export CLUSTER_RF CLUSTER_ENGINE CLUSTER_ENGINE_SETTINGS CLUSTER_ENGINE_n1 CLUSTER_ENGINE_SETTINGS_n1
N=400
CHECK=$top_builddir/recfs-check

placement() {  # placement: "name replica,replica" per file, read through n2
	run python3 - "$(cluster_mnt n2)/test" "$N" <<'PY'
import os, sys
m, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    name = "f%04d" % i
    try:
        r = os.getxattr(os.path.join(m, name), "user.recfs.replicas").decode()
    except FileNotFoundError:
        continue
    print(name, r)
PY
}
contents_ok() {  # contents_ok MOUNT NAMES...: each file there with its content
	run python3 - "$@" <<'PY'
import os, sys
m, names, bad = sys.argv[1], sys.argv[2:], 0
for name in names:
    i = int(name[1:])
    want = ("file %d\n" % i).encode() * (1 + i % 7)
    try:
        with open(os.path.join(m, name), "rb") as fh:
            got = fh.read()
    except OSError as e:
        got = repr(e).encode()
    if got != want:
        bad += 1
        if bad <= 5:
            print("%s: %r" % (name, got[:40]), file=sys.stderr)
print(len(names) - bad)
PY
}
objects_sum() {
	local s=0 n
	for n in "$@"; do
		s=$((s + $(cluster_ns_stat $n objects)))
	done
	echo $s
}
none_back() {  # none_back WHEN NODES...: no deleted file listed through each
	local n back when=$1
	shift
	for n in "$@"; do
		back=$(run ls "$(cluster_mnt $n)/test" | grep -c -F -x -f <(echo $deleted | tr ' ' '\n'))
		check_eq "$when: no deleted file back through $n" "$back" 0
	done
}

cluster_start 3
cluster_wait_agree 3 || fail "no cluster of 3"
run python3 - "$(cluster_mnt n2)/test" "$N" <<'PY' || fail "writing through n2"
import os, sys
m, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(m, "f%04d" % i), "wb") as fh:
        fh.write(("file %d\n" % i).encode() * (1 + i % 7))
PY
cluster_settled n1 n2 n3
id1=$(cluster_id n1)
before=$(placement)

cluster_add_node
cluster_wait_agree 4 || fail "n4 did not join"
cluster_settled n1 n2 n3 n4
after=$(placement)
dropped=$(join <(echo "$before" | grep "$id1" | cut -d' ' -f1) \
	<(echo "$after" | grep -v "$id1" | cut -d' ' -f1) | tr '\n' ' ')
ndropped=$(echo $dropped | wc -w)
check_true "n1 dropped copies when n4 joined" "$ndropped" -gt 10
# every other dropped file deleted, the rest kept
deleted=$(echo $dropped | tr ' ' '\n' | awk 'NR % 2 == 1' | tr '\n' ' ')
kept=$(echo $dropped | tr ' ' '\n' | awk 'NR % 2 == 0' | tr '\n' ' ')
ndeleted=$(echo $deleted | wc -w)
note "n1 dropped $ndropped files; $ndeleted of them deleted"
(cd "$(cluster_mnt n2)/test" && run rm -f $deleted) || fail "rm through n2"
left=x
for ((i = 0; i < 200; i++)); do
	left=$(( $(cluster_ns_stat n2 tombstones) + $(cluster_ns_stat n3 tombstones) + $(cluster_ns_stat n4 tombstones) ))
	[ "$left" = 0 ] && break
	sleep 0.1
done
check_eq "the tombstones of the deleted files are reclaimed on n2, n3, n4" "$left" 0
check_eq "n1 holds no tombstone" "$(cluster_ns_stat n1 tombstones)" 0

# n4 leaves for good: n1 regains partitions it dropped.
cluster_down n4
cluster_wait_agree 3 n1 n2 n3 || fail "n4 did not leave"
cluster_settled n1 n2 n3
final=$(placement)
owned=$(echo "$final" | grep -c "$id1")
regained=$(join <(echo $kept | tr ' ' '\n') <(echo "$final" | grep "$id1" | cut -d' ' -f1) | tr '\n' ' ')
nregained=$(echo $regained | wc -w)
note "n1 is a replica of $owned files again, $nregained of them kept files it had dropped"
check_true "n1 regained files it had dropped" "$nregained" -gt 5
check_eq "n1's objects = the files it is a replica of" "$(cluster_ns_stat n1 objects)" "$owned"
# the regain's copies reach the file before the kill: a partly filled
# buffer is written once flush-max-ms (1000) has passed - wait for that
# write (at most 10 s: none comes if nothing was left to write)
pw=$(cluster_ns_stat n1 partial_writes)
for ((i = 0; i < 100; i++)); do
	[ "$(cluster_ns_stat n1 partial_writes)" -gt "$pw" ] && [ "$(cluster_ns_stat n1 write_q)" = 0 ] && break
	sleep 0.1
done

for how in SIGKILL clean; do
	if [ $how = SIGKILL ]; then
		cluster_kill n1
		cluster_start_node n1
	else
		cluster_restart n1
	fi
	cluster_wait_agree 3 n1 n2 n3 || fail "n1 did not come back ($how)"
	cluster_settled n1 n2 n3
	skipped=$(cluster_ns_stat n1 cold_start_dropped_records)
	note "$how restart: n1's cold start skipped $skipped copies"
	check_true "$how restart: n1's cold start skipped the copies of the deleted files" \
		"${skipped:-0}" -ge "$ndeleted"
	none_back "$how restart" n1 n2 n3
	# what the others send it again is not newer than what it loaded
	received=$(cluster_ns_stat n1 migrate_records_received)
	note "$how restart: n1 received $received records by migration"
	check_eq "$how restart: n1 stored none of the records migration sent it (it had them all)" \
		"$(cluster_ns_stat n1 apply_not_newer)" "$received"
	check_eq "$how restart: n1's objects = the files it is a replica of" \
		"$(cluster_ns_stat n1 objects)" "$owned"
	check_eq "$how restart: objects over all nodes = 2 x the files left" \
		"$(objects_sum n1 n2 n3)" $((2 * (N - ndeleted)))
done

# recfs-check on n1's stopped file: the live records are its objects, the
# deleted files' copies among the stale ones.
cluster_down n1
out=$(run "$CHECK" --json "$(cluster_dir n1)/work/test.dat") || note "recfs-check exit $?"
live=$(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["total"]["live"])' 2>/dev/null)
stale=$(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["total"]["dropped_partition_copies"])' 2>/dev/null)
check_eq "recfs-check: n1's file holds the files it is a replica of, live" "$live" "$owned"
check_true "recfs-check: the deleted files' copies are stale" "${stale:-0}" -ge "$ndeleted"
# -v: the regained files' live copies carry the regain's mark, and only they
marked=$(run "$CHECK" -v "$(cluster_dir n1)/work/test.dat" | grep -c ' mark=[0-9]* live$')
check_eq "recfs-check -v: the live copies with a regain mark are the regained files" "$marked" "$nregained"
cluster_start_node n1
cluster_wait_agree 3 n1 n2 n3 || fail "n1 did not come back after recfs-check"
cluster_settled n1 n2 n3

# n1 alone: every regained file is there with its content.
cluster_down n2
cluster_down n3
cluster_wait_agree 1 n1 || fail "n1 not alone"
check_eq "n1 alone serves every regained file with its content" \
	"$(contents_ok "$(cluster_mnt n1)/test" $regained)" "$nregained"
none_back "n1 alone" n1
finish
