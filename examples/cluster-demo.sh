#!/bin/sh
# cluster-demo.sh - three recfsd nodes on this machine, from cluster.yaml:
# a file written through node 1's mount is read through node 3's, and each
# node shows the same cluster.  Everything lives under a temporary
# directory and is removed at the end (also on Ctrl-C).
#
#   sh cluster-demo.sh [PATH-TO-RECFSD]      (default: recfsd in $PATH)
#
# Needs /dev/fuse and fusermount3 (or root).  Ports 3101-3103 on 127.0.0.1
# must be free.
set -u
RECFSD=${1:-recfsd}
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d /tmp/recfs-demo.XXXXXX) || exit 1
pids=""

cleanup() {
	for k in 1 2 3; do
		fusermount3 -u "$dir/mnt$k" 2>/dev/null || umount "$dir/mnt$k" 2>/dev/null
	done
	for p in $pids; do
		i=0
		while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
		kill -9 "$p" 2>/dev/null
	done
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

head -c 32 /dev/urandom | base64 >"$dir/secret"
chmod 600 "$dir/secret"
for k in 1 2 3; do
	# node k: its own port, work directory and mount; the two others as seeds
	seeds=$(for j in 1 2 3; do [ $j = $k ] || printf '"127.0.0.1:310%s", ' $j; done)
	sed -e "s|work-directory: .*|work-directory: $dir/work$k|" \
	    -e "s|port: 3101|port: 310$k|" \
	    -e "s|seeds: .*|seeds: [ ${seeds%, } ]|" \
	    -e "s|cluster-secret-file: .*|cluster-secret-file: $dir/secret|" \
	    -e "s|file: stderr|file: $dir/node$k.log|" \
	    "$here/cluster.yaml" >"$dir/node$k.yaml"
	mkdir -p "$dir/mnt$k"
	"$RECFSD" -f -c "$dir/node$k.yaml" "$dir/mnt$k" >>"$dir/node$k.log" 2>&1 &
	pids="$pids $!"
done

# until every mount shows a cluster of 3 (at most 20 s)
i=0
until [ "$(for k in 1 2 3; do grep -h '^cluster_size=' "$dir/mnt$k/.info/cluster" 2>/dev/null; done | grep -c '=3$')" = 3 ]; do
	i=$((i + 1))
	[ $i -le 200 ] || { echo "cluster-demo: no cluster of 3 within 20 s; logs in $dir" >&2; cat "$dir"/node*.log >&2; exit 1; }
	sleep 0.1
done
echo "cluster formed:"
grep -E '^cluster_(size|key|principal)=' "$dir/mnt1/.info/cluster"

mkdir "$dir/mnt1/shared/notes"
echo "written through node 1" >"$dir/mnt1/shared/notes/hello"
echo "read through node 3:   $(cat "$dir/mnt3/shared/notes/hello")"
echo "its master and replicas: $(getfattr --only-values -n user.recfs.replicas "$dir/mnt3/shared/notes/hello" 2>/dev/null)"
echo "ls through node 2:     $(ls "$dir/mnt2/shared/notes")"
