#!/bin/sh
# README command 1: build (installing missing packages first) and start
# recfsd on the built-in default configuration, mounted at a directory it
# prints.  Stop it with: fusermount3 -u <that directory>
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/build.sh"
mnt=${1:-${RECFS_MOUNT:-$HOME/recfs}}
mkdir -p "$mnt"
if mountpoint -q "$mnt"; then
	echo "recfs: $mnt is already a mount point" >&2
	exit 1
fi
"$top/build/recfsd" "$mnt"
echo "recfs is mounted at $mnt"
echo "  try:   mkdir $mnt/test/demo && echo hello > $mnt/test/demo/greeting && cat $mnt/.info/namespace/test"
echo "  stop:  fusermount3 -u $mnt   (recfsd then flushes and exits; a new start waits for it)"
