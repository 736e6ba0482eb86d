#!/bin/bash
# t_sets: sets are the directories of a namespace - mkdir creates one (empty
# sets persist and list), rmdir removes an empty one, rm -rf removes a full
# one, nothing else is a directory (recfsd(8), Sets).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mount_default

NS=$MNT/test
expect_ok "mkdir a set" mkdir "$NS/s1"
check_eq "set listed" "$(ls "$NS" | tr '\n' ' ')" "s1 "
check_eq "set nlink" "$(stat -c %h "$NS/s1")" 2
check_eq "set is a directory" "$(stat -c %F "$NS/s1")" directory
check_eq "set mode (dir-mode default 0755)" "$(stat -c %a "$NS/s1")" 755
sleep 1.2
check_eq "an empty set still lists after attr/entry timeouts" "$(ls "$NS" | tr '\n' ' ')" "s1 "

expect_ok "mkdir -p of an existing set" mkdir -p "$NS/s1"
expect_ok "mkdir two sets at once" mkdir "$NS/s2" "$NS/s3"
check_eq "three sets" "$(ls "$NS" | wc -l)" 3
expect_ok "mkdir of the same set name in another namespace" mkdir "$MNT/other/s1"
echo in-other >"$MNT/other/s1/r"
echo in-test >"$NS/s1/r"
check_eq "same set+key in two namespaces are different records" "$(cat "$MNT/other/s1/r") $(cat "$NS/s1/r")" "in-other in-test"

expect_ok "rmdir an empty set" rmdir "$NS/s3"
check_true "removed set gone" ! -e "$NS/s3"
check_eq "removed set not listed" "$(ls "$NS" | grep -cx s3)" 0
expect_ok "mkdir of a removed set name" mkdir "$NS/s3"
check_eq "re-created set is empty" "$(ls -A "$NS/s3" | wc -l)" 0

expect_err "rmdir of a non-empty set" "Directory not empty" rmdir "$NS/s1"
check_eq "non-empty set kept its record" "$(cat "$NS/s1/r")" in-test
for i in $(seq 1 30); do echo "$i" >"$NS/s2/r$i"; done
expect_ok "rm -rf a set with 30 records" rm -rf "$NS/s2"
check_true "rm -rf'd set gone" ! -e "$NS/s2"
expect_ok "mkdir the rm -rf'd name again" mkdir "$NS/s2"
check_eq "no record came back" "$(ls -A "$NS/s2" | wc -l)" 0

expect_ok "mkdir inside a set (a directory record)" mkdir "$NS/s1/sub"
expect_ok "rmdir of it" rmdir "$NS/s1/sub"
expect_err "mkdir at the root" "Operation not permitted" mkdir "$MNT/newns"
expect_err "mkdir in .info" "" mkdir "$MNT/.info/sub"

# a name is either a set or a null-set record
echo rec >"$NS/both"
expect_err "mkdir over a null-set record" "File exists" mkdir "$NS/both"
sh_err "a null-set record over a set" "Is a directory" 'echo x > "$1"' "$NS/s1"

# the set dir of an empty set supports ls -la, stat, find, cd
expect_ok "cd into a set" sh -c 'cd "$1" && pwd' sh "$NS/s3"
check_eq "ls -la of an empty set shows . and .." "$(ls -la "$NS/s3" | awk 'NR > 1 { print $NF }' | tr '\n' ' ')" ". .. "
check_eq "find of an empty set" "$(find "$NS/s3" | wc -l)" 1

# many sets
for i in $(seq 1 100); do mkdir "$NS/many$i" || { bad "mkdir many$i"; break; }; done
check_eq "100 more sets listed" "$(ls "$NS" | grep -c '^many')" 100
for i in $(seq 1 100); do rmdir "$NS/many$i" || { bad "rmdir many$i"; break; }; done
check_eq "100 sets removed" "$(ls "$NS" | grep -c '^many')" 0

# chmod/utime on a set dir: stored (rsync -a and tar set them; t_set_attrs
# covers restarts and the namespace directories)
expect_ok "touch a set dir" touch "$NS/s1"
expect_ok "chmod a set dir" chmod 700 "$NS/s1"
check_eq "the set dir's mode is stored" "$(stat -c %a "$NS/s1")" 700

assert_serving
finish
