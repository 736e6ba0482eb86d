#!/bin/bash
# t_migrate_persistfail: a receiver that cannot make a partition durable
# answers the end of its migration with the error, and the sender keeps its
# copy and sends the partition again.  Before, the receiver took the end
# (the partition done, its version in RAM), only logged the failed sync or
# store, and answered 0: the sender dropped its copy while the records were
# still in the receiver's write buffer, and the same end sent again was
# "done already".  Four nodes, replication-factor 2, device engine with
# flush-max-ms 60000 (records stay in the write buffer until a sync); 600
# files written while n4 was down; n4 restarted with two fault points armed
# while a file exists (needs --enable-fault-injection, else skipped):
#   1. the records' sync fails: n4 answers every end with an error
#      (migrate_rx_ends_failed), completes no partition, and n1..n3 keep
#      both copies of every record (1200 objects between them);
#   2. the sync passes but the version store fails: the same;
#   3. both cleared, in the same process: the senders' retries complete the
#      join, every record n4 holds is on its device (recfs-check), every
#      file reads back whole through n4, and once the copies no longer
#      needed are dropped the cluster holds 1200 objects.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"
[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3"; exit 77; }
if ! grep -q '^#define RECFS_FAULT_INJECTION 1' "$top_builddir/config.h" 2>/dev/null; then
	echo "SKIP: $ITEST_NAME needs a build configured with --enable-fault-injection"
	exit 77
fi
CLUSTER_RF=2
CLUSTER_ENGINE=device
CLUSTER_ENGINE_SETTINGS="filesize:128M write-block-size:1M flush-max-ms:60000"
export CLUSTER_RF CLUSTER_ENGINE CLUSTER_ENGINE_SETTINGS
ns_stat() {  # ns_stat nK NAME: NAME in nK's .info/namespace/test
	run cat "$(cluster_mnt "$1")/.info/namespace/test" | awk -F= -v k="$2" '$1 == k { print $2; exit }'
}
objects_sum() {  # objects_sum NODES...: their objects added
	local n s=0 o
	for n in "$@"; do
		o=$(ns_stat "$n" objects)
		s=$((s + ${o:-0}))
	done
	echo "$s"
}
# wait_failed_above N: n4's migrate_rx_ends_failed above N (30 s at most)
wait_failed_above() {
	local i f=0
	for ((i = 0; i < 300; i++)); do
		f=$(ns_stat n4 migrate_rx_ends_failed)
		[ "${f:-0}" -gt "$1" ] && break
		sleep 0.1
	done
	echo "${f:-0}"
}
fail_sync=$T/fail-records-sync
fail_store=$T/fail-versions-store

cluster_start_n4_away
run python3 - "$(cluster_mnt n1)/test" <<'PY' || fail "writing through n1"
import os, sys
for i in range(600):
    with open(os.path.join(sys.argv[1], "f%05d" % i), "wb") as fh:
        fh.write(b"x" * (1000 + i))
PY
cluster_settled n1 n2 n3
check_eq "n1..n3 hold two copies of each record" "$(objects_sum n1 n2 n3)" 1200

touch "$fail_sync"
export RECFS_FAULT="migrate.records_sync:EIO:$fail_sync,migrate.versions_store:EIO:$fail_store"
cluster_restart n4
unset RECFS_FAULT
cluster_wait_agree 4 || fail "no cluster of 4 after n4 came back"

# 1. the records cannot be made durable
failed=$(wait_failed_above 20)
initial=$(ns_stat n4 migrate_rx_partitions_initial)
note "records' sync failing: n4 migrate_rx_ends_failed=$failed rx initial=$initial" \
    "remaining=$(ns_stat n4 migrate_rx_partitions_remaining) received=$(ns_stat n4 migrate_records_received)"
check_true "n4 answered ends with an error while its syncs failed" "$failed" -gt 20
check_true "n4 expects partitions" "${initial:-0}" -gt 0
check_eq "n4 completed no partition while its syncs failed" \
    "$(ns_stat n4 migrate_rx_partitions_remaining)" "$initial"
check_eq "n1..n3 kept every copy while n4's syncs failed" "$(objects_sum n1 n2 n3)" 1200

# 2. the records are durable, the versions cannot be stored
touch "$fail_store"
rm -f "$fail_sync"
failed=$(wait_failed_above $((failed + 10)))
note "versions' store failing: n4 migrate_rx_ends_failed=$failed" \
    "remaining=$(ns_stat n4 migrate_rx_partitions_remaining)"
check_true "n4 answered ends with an error while its version stores failed" "$failed" -gt 30
check_eq "n4 completed no partition while its version stores failed" \
    "$(ns_stat n4 migrate_rx_partitions_remaining)" "$initial"
check_eq "n1..n3 kept every copy while n4's version stores failed" "$(objects_sum n1 n2 n3)" 1200

# 3. cleared: the retries complete the join in the same process
rm -f "$fail_store"
cluster_settled n4 n1 n2 n3
objects=$(ns_stat n4 objects)
out=$("$top_builddir/recfs-check" --force -q "$(cluster_dir n4)/work/test.dat" 2>&1)
live=$(echo "$out" | awk '$1 == "live" { print $2; exit }')
note "n4: objects=$objects received=$(ns_stat n4 migrate_records_received); recfs-check:" \
    "$(echo "$out" | grep -E '^ *(partition versions|records|live) ' | tr -s ' ' | tr '\n' ';')"
check_true "n4 received records once the faults cleared" "${objects:-0}" -gt 0
check_eq "every record n4 holds is on its device" "$live" "$objects"
bad_files=$(run python3 - "$(cluster_mnt n4)/test" <<'PY'
import os, sys
bad = 0
for i in range(600):
    try:
        with open(os.path.join(sys.argv[1], "f%05d" % i), "rb") as fh:
            if fh.read() != b"x" * (1000 + i):
                bad += 1
    except OSError:
        bad += 1
print(bad)
PY
)
check_eq "every file reads back whole through n4" "$bad_files" 0
total=x
for ((i = 0; i < 100; i++)); do
	total=$(objects_sum n1 n2 n3 n4)
	[ "$total" = 1200 ] && break
	sleep 0.1
done
check_eq "two copies of each record in the cluster once the copies not needed are dropped" "$total" 1200
finish
