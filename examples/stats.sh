#!/bin/sh
# stats.sh - a summary of a recfs mount, read from its statistics files.
#
# Usage: stats.sh MOUNTPOINT
#
# Every file under MOUNTPOINT/.info is plain "name=value" lines, built when it
# is opened, so any tool reads it: cat, grep, awk, a monitoring agent.  This
# script prints one line per namespace:
#
#   namespace  objects  used_bytes  total_bytes  used_pct  avail_pct  defrag_q
#
# and the node's uptime.  Names follow Aerospike's statistics
# (docs/statistics.md lists them all).
set -eu

mnt=${1:?usage: stats.sh MOUNTPOINT}
info=$mnt/.info
[ -r "$info/namespaces" ] || { echo "stats.sh: $mnt is not a recfs mount" >&2; exit 1; }

# value FILE NAME: the value of NAME in a name=value file
value() {
	awk -v k="$2" 'index($0, "=") > 0 {
		n = substr($0, 1, index($0, "=") - 1)
		if (n == k) { print substr($0, index($0, "=") + 1); found = 1; exit }
	} END { if (!found) print "-" }' "$1"
}

printf '%-16s %10s %14s %14s %8s %9s %11s\n' \
	namespace objects used_bytes total_bytes used_pct avail_pct defrag_q
while read -r ns; do
	[ -n "$ns" ] || continue
	f=$info/namespace/$ns
	# one awk pass per namespace: pick the few names we print
	awk -v ns="$ns" 'index($0, "=") > 0 {
		v[substr($0, 1, index($0, "=") - 1)] = substr($0, index($0, "=") + 1)
	} END {
		# Byte counts are printed as the file has them (strings): mawk, the
		# default awk on Debian, prints a number past 2^31 as 4.29497e+09.
		used = v["data_used_bytes"]; total = v["data_total_bytes"]
		if (used == "") used = 0
		if (total == "") total = 0
		printf "%-16s %10s %14s %14s %7.1f%% %8s%% %11s\n", ns, v["objects"], used, total,
			total + 0 ? 100 * used / total : 0, v["data_avail_pct"], v["defrag_q"]
	}' "$f"
done <"$info/namespaces"

echo "uptime: $(value "$info/statistics" uptime) s, objects: $(value "$info/statistics" objects)"
