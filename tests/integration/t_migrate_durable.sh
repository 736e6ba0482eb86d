#!/bin/bash
# t_migrate_durable: a record a joining node acknowledged by a migration is
# on its device by then.  The receiver stored a partition's version (the
# sender may drop its copy once answered) while the records were still in
# its write buffer, written only when the buffer filled or flush-max-ms
# after: with flush-max-ms 60000 and less than a write block of data, n4
# answered every partition with none of its 311 records on its device
# (recfs-check: 0 records, 2042 partitions with a version).  Four nodes,
# replication-factor 2, device engine; 600 files written while n4 was down;
# once n4 has received everything (migrate_partitions_remaining 0), the
# records recfs-check finds live on n4's storage file, checked while it
# runs, are every record n4 holds.  Its stores of the versions wrote at
# most whole tables (partition_version_pages).  Its bulk workers left the
# messages ending partitions pending, answered by the persister once
# durable (rpc_requests_pending; a device namespace has no other such
# request).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"
[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3"; exit 77; }
CLUSTER_RF=2
CLUSTER_ENGINE=device
CLUSTER_ENGINE_SETTINGS="filesize:128M write-block-size:1M flush-max-ms:60000"
export CLUSTER_RF CLUSTER_ENGINE CLUSTER_ENGINE_SETTINGS
ns_stat() {  # ns_stat nK NAME: NAME in nK's .info/namespace/test
	run cat "$(cluster_mnt "$1")/.info/namespace/test" | awk -F= -v k="$2" '$1 == k { print $2; exit }'
}
node_stat() {  # node_stat nK NAME: NAME in nK's .info/statistics
	run cat "$(cluster_mnt "$1")/.info/statistics" | awk -F= -v k="$2" '$1 == k { print $2; exit }'
}
cluster_start_n4_away
run python3 - "$(cluster_mnt n1)/test" <<'PY' || fail "writing through n1"
import os, sys
for i in range(600):
    with open(os.path.join(sys.argv[1], "f%05d" % i), "wb") as fh:
        fh.write(b"x" * (1000 + i))
PY
cluster_restart n4
cluster_wait_agree 4 || fail "no cluster of 4 after n4 came back"
left=x
for ((i = 0; i < 300; i++)); do
	left=$(cluster_info n4 migrate_partitions_remaining)
	[ "$left" = 0 ] && break
	sleep 0.1
done
check_eq "n4: migrate_partitions_remaining reaches 0" "$left" 0
objects=$(ns_stat n4 objects)
syncs=$(ns_stat n4 partition_version_syncs)
pages=$(ns_stat n4 partition_version_pages)
note "n4: objects=$objects received=$(ns_stat n4 migrate_records_received) partition_version_syncs=$syncs partition_version_pages=$pages"
check_true "n4 received records" "$(ns_stat n4 migrate_records_received)" -gt 0
check_eq "n4 answered no partition's end with an error" "$(ns_stat n4 migrate_rx_ends_failed)" 0
check_true "n4 answered the ends later, its bulk workers free (rpc_requests_pending)" \
    "$(node_stat n4 rpc_requests_pending)" -gt 0
# A store writes the pages that changed, at most the 32 of the table
# (test_pversion checks which).
check_true "n4 wrote pages of its version table" "${pages:-0}" -gt 0
check_true "n4's version stores wrote at most whole tables" "${pages:-0}" -le $((32 * ${syncs:-0}))
out=$("$top_builddir/recfs-check" --force -q "$(cluster_dir n4)/work/test.dat" 2>&1)
live=$(echo "$out" | awk '$1 == "live" { print $2; exit }')
note "recfs-check of n4's file: $(echo "$out" | grep -E '^ *(partition versions|records|live) ' | tr -s ' ' | tr '\n' ';')"
check_eq "every record n4 holds is on its device once received" "$live" "$objects"
finish
