#!/bin/sh
# shell-session.sh - a walk through recfs with nothing but shell tools.
#
# Usage: shell-session.sh MOUNTPOINT [NAMESPACE]
#
# Run it against a mounted recfs (for instance `recfsd -f -c memory.yaml
# /tmp/recfs` in another terminal, then `shell-session.sh /tmp/recfs cache`).
# Each step prints the command and what it shows; read along to learn the
# layout:
#
#   MOUNT/<namespace>/<set>/<key>   a record is a regular file
#   MOUNT/<namespace>/<key>         a record of the "null set"
#   MOUNT/.info/...                 statistics, read-only name=value files
#
# It works in a set named demo-<pid> and removes it at the end.
set -eu

mnt=${1:?usage: shell-session.sh MOUNTPOINT [NAMESPACE]}
ns=${2:-$(head -n 1 "$mnt/.info/namespaces")}
set_dir=$mnt/$ns/demo-$$

step() { printf '\n$ %s\n' "$*"; }

# 1. Namespaces come from the config; sets are directories you make.
step "ls $mnt"
ls "$mnt"
step "mkdir $set_dir"
mkdir "$set_dir"

# 2. Records are files: write with any tool, read with any tool.  A file is
#    stored as one record write when it is closed.
step "echo 'hello, recfs' > $set_dir/greeting"
echo 'hello, recfs' >"$set_dir/greeting"
step "cat $set_dir/greeting"
cat "$set_dir/greeting"
step "echo 'second line' >> $set_dir/greeting    (append)"
echo 'second line' >>"$set_dir/greeting"
cat "$set_dir/greeting"
step "stat -c '%s bytes, mode %a, inode %i' $set_dir/greeting"
stat -c '%s bytes, mode %a, inode %i' "$set_dir/greeting"

# 3. Other bins of a record are user.* extended attributes (getfattr -d
#    lists them); the record's metadata (generation, TTL, digest,
#    partition) is read by name as user.recfs.*, never listed, so copies
#    do not carry it.
step "setfattr -n user.lang -v en $set_dir/greeting"
setfattr -n user.lang -v en "$set_dir/greeting"
step "getfattr -d $set_dir/greeting"
getfattr -d "$set_dir/greeting" 2>/dev/null | sed -n 's/^user\./user./p'
step "getfattr -n user.recfs.generation --only-values $set_dir/greeting"
getfattr -n user.recfs.generation --only-values "$set_dir/greeting"
echo
step "getfattr -n user.recfs.digest --only-values $set_dir/greeting"
getfattr -n user.recfs.digest --only-values "$set_dir/greeting"
echo
step "getfattr -n user.recfs.partition --only-values $set_dir/greeting"
getfattr -n user.recfs.partition --only-values "$set_dir/greeting"
echo
# A TTL in seconds makes the record expire (-1 = never).
step "setfattr -n user.recfs.ttl -v 86400 $set_dir/greeting"
setfattr -n user.recfs.ttl -v 86400 "$set_dir/greeting"
step "getfattr -n user.recfs.ttl --only-values $set_dir/greeting"
getfattr -n user.recfs.ttl --only-values "$set_dir/greeting"
echo

# 4. Copy tools work: cp -a keeps mode, times and user.* attributes.
step "cp -a $set_dir/greeting $set_dir/copy"
cp -a "$set_dir/greeting" "$set_dir/copy"
step "getfattr -n user.lang --only-values $set_dir/copy"
getfattr -n user.lang --only-values "$set_dir/copy"
echo
step "for i in 1 2 3; do echo record \$i > $set_dir/r\$i; done; ls $set_dir"
for i in 1 2 3; do echo "record $i" >"$set_dir/r$i"; done
ls "$set_dir"
step "mv $set_dir/r3 $set_dir/renamed"
mv "$set_dir/r3" "$set_dir/renamed"
ls "$set_dir"

# 5. Statistics are files too.
step "grep -E '^(objects|data_used_bytes)=' $mnt/.info/namespace/$ns"
grep -E '^(objects|data_used_bytes)=' "$mnt/.info/namespace/$ns"
step "cat $mnt/.info/sets/$ns/demo-$$"
cat "$mnt/.info/sets/$ns/demo-$$" 2>/dev/null | head -n 5 || true
step "df -h $mnt"
df -h "$mnt"

# 6. Directories and symbolic links inside a set; what is not a record or
#    a tree (hard links, .info files) is refused with a clear error.
step "mkdir $set_dir/sub && ln -s ../greeting $set_dir/sub/link"
mkdir "$set_dir/sub" && ln -s ../greeting "$set_dir/sub/link"
step "cat $set_dir/sub/link"
cat "$set_dir/sub/link"
step "ln $set_dir/greeting $set_dir/hardlink    (one name per record)"
ln "$set_dir/greeting" "$set_dir/hardlink" 2>&1 || true
step "echo x > $mnt/.info/statistics"
(echo x >"$mnt/.info/statistics") 2>&1 || true

# 7. Clean up: rm -rf removes the records and the set.
step "rm -rf $set_dir"
rm -rf "$set_dir"
step "ls $mnt/$ns"
ls "$mnt/$ns"
echo
echo "done."
