#!/bin/sh
# Keeps the dependency direction of docs/architecture.md (Layers): base <- config/record <- index/storage
# <- namespace <- cluster <- txn <- fuse/tools, and base <- fabric (the transport)
# beside them, used by cluster.
# Fails if a lower layer includes a higher one, if the fabric includes anything
# but base/ (it knows no records), if the storage side includes the fabric, or
# if the daemon reaches past the transaction layer into storage.
top=${top_srcdir:-$(dirname "$0")/..}
rank() {
	case "$1" in
	base) echo 0 ;; config|record|fabric) echo 1 ;; index|storage) echo 2 ;;
	namespace) echo 3 ;; cluster) echo 4 ;; txn) echo 5 ;; *) echo 9 ;;
	esac
}
fail=0
for f in $(find "$top/src" -name '*.[ch]'); do
	own=$(basename "$(dirname "$f")")
	r=$(rank "$own")
	for inc in $(sed -n 's/^#include "\.\.\/\([a-z_]*\)\/.*/\1/p' "$f"); do
		if [ "$(rank "$inc")" -gt "$r" ]; then
			echo "layering: $f ($own) includes $inc" >&2
			fail=1
		fi
	done
done
for f in $(find "$top/src/fabric" -name '*.[ch]'); do
	if grep -nE '#include "(\.\./)*(src/)?(config|record|index|storage|namespace|txn|cluster)/' "$f" >&2; then
		echo "layering: $f (fabric) includes more than base/" >&2
		fail=1
	fi
done
for d in config record index storage namespace; do
	for f in $(find "$top/src/$d" -name '*.[ch]'); do
		if grep -nE '#include "(\.\./)*(src/)?fabric/' "$f" >&2; then
			echo "layering: $f ($d) includes the fabric" >&2
			fail=1
		fi
	done
done
for f in $(find "$top/fuse" -name '*.[ch]'); do
	if grep -nE '#include "(\.\./)*(src/)?(index|storage|namespace)/' "$f" >&2; then
		echo "layering: $f reaches past the transaction layer" >&2
		fail=1
	fi
done
exit $fail
