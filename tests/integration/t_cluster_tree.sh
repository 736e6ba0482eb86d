#!/bin/bash
# t_cluster_tree: a tree inside a set is the cluster's (issue 15; docs/
# architecture.md, "The tree").  Three real nodes on 127.0.0.1, RF 2:
#   - a tree made through n1 (nested directories, files, symbolic links, a
#     directory of 150 entries: more than one listing page) lists the same
#     through n1, n2 and n3 (names, types, modes, link targets, content);
#   - each node's directory index holds only the entries of its own
#     partitions (and replicas), and a listing asks every master once per
#     page (list_pages_sent moves);
#   - rmdir through n2 of a directory whose only entry was made through n3
#     is ENOTEMPTY; once that entry is gone it works everywhere;
#   - a directory renamed through n3 keeps its subtree, seen from n1.
# The kernel caches lookups for entry-timeout (1 s): checks of a name
# another node changed are polled, up to 3 s (within3).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"

CLUSTER_RF=2
cluster_start 3
cluster_wait_agree 3 || fail "no cluster of 3"

m1=$(cluster_mnt n1)/test
m2=$(cluster_mnt n2)/test
m3=$(cluster_mnt n3)/test

ns_value() {
	run cat "$(cluster_mnt "$1")/.info/namespace/test" 2>/dev/null |
		awk -v k="$2" 'index($0, "=") { n = substr($0, 1, index($0, "=") - 1);
			if (n == k) { print substr($0, index($0, "=") + 1); exit } }'
}
# within3 CMD...: true once CMD succeeds, polled every 0.1 s for 3 s.
within3() {
	local i
	for ((i = 0; i < 30; i++)); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}
# tree_of DIR: every entry with its type, mode, link target and content sum.
tree_of() {
	(cd "$1" && find . -printf '%p %y %m %l\n' | LC_ALL=C sort &&
		find . -type f -exec md5sum {} + | LC_ALL=C sort)
}

expect_ok "mkdir of a set through n1" mkdir "$m1/t"
sh_ok "a tree through n1" 'set -e
	mkdir -p "$1/t/a/b/c" "$1/t/big" "$1/t/empty"
	chmod 0750 "$1/t/a/b"
	echo hello >"$1/t/a/b/c/f"
	ln -s ../b/c/f "$1/t/a/b/lnk"
	ln -s /nowhere "$1/t/dangling"
	for i in $(seq 1 150); do echo "$i" >"$1/t/big/f$i"; done
	for i in 1 2 3; do mkdir "$1/t/big/d$i"; done' "$m1"
want=$(tree_of "$m1/t")
check_true "the tree has its 160 entries" "$(printf '%s\n' "$want" | grep -c ' [fdl] ')" -ge 160
sent0=$(ns_value n2 list_pages_sent)
for n in n2 n3; do
	check_eq "the tree lists the same through $n" "$(tree_of "$(cluster_mnt $n)/test/t")" "$want"
done
check_true "listings through n2 asked the other nodes" "$(ns_value n2 list_pages_sent)" -gt "$sent0"
check_eq "readlink through n3" "$(readlink "$m3/t/a/b/lnk")" "../b/c/f"
check_eq "a file through its link, through n2" "$(cat "$m2/t/a/b/lnk")" "hello"
check_eq "ls of a 153-entry directory through n3" "$(ls "$m3/t/big" | wc -l)" 153
# Each node indexes only what it holds: no node holds every directory's
# entries alone... and every directory with entries is on some node.
for n in n1 n2 n3; do
	check_true "$n's directory index has directories" "$(ns_value $n directory_index_directories)" -gt 0
done
check_eq "objects_directories counted on the nodes (RF 2: twice each of 8)" \
	"$(( $(ns_value n1 objects_directories) + $(ns_value n2 objects_directories) + $(ns_value n3 objects_directories) ))" 16

# rmdir is ENOTEMPTY cluster-wide.
# (no wait: rmdir goes to the daemon, which asks every node)
expect_ok "an entry in empty/ through n3" mkdir "$m3/t/empty/sub"
expect_err "rmdir through n2 of a directory with an entry made through n3" "Directory not empty" \
	rmdir "$m2/t/empty"
expect_ok "rmdir of that entry through n3" rmdir "$m3/t/empty/sub"
expect_ok "then rmdir through n2 works" rmdir "$m2/t/empty"
gone() { ! run test -e "$1"; }
within3 gone "$m1/t/empty"
check_true "it is gone through n1 (within 3 s)" ! -e "$m1/t/empty"

# A renamed directory keeps its subtree.
expect_ok "rename of a/ through n3" mv "$m3/t/a" "$m3/t/renamed"
has_hello() { [ "$(run cat "$1" 2>/dev/null)" = hello ]; }
within3 has_hello "$m1/t/renamed/b/c/f"
check_eq "its subtree, seen through n1 (within 3 s)" "$(run cat "$m1/t/renamed/b/c/f")" "hello"
within3 gone "$m1/t/a"
check_true "the old name is gone through n1 (within 3 s)" ! -e "$m1/t/a"

finish
