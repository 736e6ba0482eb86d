#!/bin/sh
# fuzz.sh - build a libFuzzer target with clang and run it for a while.
#
#   scripts/fuzz.sh [SECONDS] [TARGET] [-- LIBFUZZER_ARGS...]
#
# SECONDS defaults to 30 (CI's short run), TARGET to "record".  Targets:
#   record       the flat record decoder (tests/fuzz/fuzz_record.c)
#   fabric_msg   the fabric's frame, message and hello decoders (fuzz_fabric_msg.c)
#   rpc_msg      the rpc request/answer decoder (fuzz_rpc_msg.c)
#   proxy_msg    the data path's proxy request and answer decoders (fuzz_proxy_msg.c)
#   set_msg      the cluster's set and listing bodies (fuzz_set_msg.c)
#   migrate_msg  the migration bodies: versions exchange, record batches (fuzz_migrate_msg.c)
#   chunk_map    a large file's chunk map, chunk keys, reclaimer gather pages (fuzz_chunk_map.c)
#   scan-device  cold start of a wblock image, device engine
#   scan-shadow  the same, memory engine with a shadow file
#                (both tests/fuzz/fuzz_cold_start.c: real open, list, read, close)
#   pversion     the partition versions of a device file (tests/fuzz/fuzz_pversion.c:
#                real open, load, one slot stored, load, close)
#   config       the YAML configuration loader (tests/fuzz/fuzz_config.c)
#   apply        a record arriving encoded from a peer, applied to a memory
#                namespace (tests/fuzz/fuzz_apply.c: namespace_apply_flat)
# The target is compiled straight from the sources with
# -fsanitize=fuzzer,address,undefined (no configure needed), seeded by its
# plain driver (tests/fuzz/fuzz_main.c for record, fuzz_fabric_main.c for
# fabric_msg, fuzz_driver.c for the others, rpc_msg among them;
# --write-corpus), and run with the corpus in
# $FUZZ_DIR/corpus-TARGET (default build-fuzz/ in the source tree), which
# persists between runs.  Crashes land in $FUZZ_DIR as crash-*; replay one
# with the plain driver of a build: tests/fuzz/fuzz_record FILE (fuzz_scan_device,
# fuzz_scan_shadow, fuzz_config, fuzz_fabric_msg, fuzz_rpc_msg, fuzz_proxy_msg, fuzz_set_msg,
# fuzz_migrate_msg, fuzz_chunk_map, fuzz_apply, fuzz_pversion).
#
# Exit status: 0 when the run ends without a finding, libFuzzer's otherwise.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-30}
target=${2:-record}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift

# The whole engine, for the targets that open a namespace or load a config.
engine=""
for f in "$top"/src/*/*.c; do
	engine="$engine src/${f#"$top"/src/}"
done
engine_libs="-luring -lyaml -lssl -lcrypto -lm"
libs=""
driver=tests/fuzz/fuzz_driver.c
defines=""
max_len=""
case $target in
record)
	# digest.c: record_flat_salvage proves a damaged copy's name by its digest.
	sources="tests/fuzz/fuzz_record.c src/record/record.c src/record/record_format.c
	    src/base/crc32c.c src/base/digest.c"
	libs=$(pkg-config --libs libcrypto 2>/dev/null || echo -lcrypto)
	driver=tests/fuzz/fuzz_main.c
	;;
scan-device|scan-shadow)
	sources="tests/fuzz/fuzz_cold_start.c $engine"
	libs=$engine_libs
	[ "$target" = scan-shadow ] && defines=-DFUZZ_SHADOW
	# up to two 128 KiB wblocks and a bit of a third
	max_len=-max_len=300000
	;;
config)
	sources="tests/fuzz/fuzz_config.c $engine"
	libs=$engine_libs
	;;
pversion)
	sources="tests/fuzz/fuzz_pversion.c $engine"
	libs=$engine_libs
	# the 128 KiB pmeta area (device format 3) and a bit
	max_len=-max_len=135000
	;;
apply)
	sources="tests/fuzz/fuzz_apply.c $engine"
	libs=$engine_libs
	;;
fabric_msg)
	# the fabric's frame, message and hello decoders, heartbeat pulses, clustering messages; own seed writer
	sources="tests/fuzz/fuzz_fabric_msg.c src/fabric/fabric_msg.c src/cluster/heartbeat_pulse.c src/cluster/clustering_msg.c"
	libs=""
	driver=tests/fuzz/fuzz_fabric_main.c
	;;
rpc_msg)
	sources="tests/fuzz/fuzz_rpc_msg.c src/fabric/fabric_msg.c src/cluster/rpc_msg.c"
	libs=""
	;;
proxy_msg)
	sources="tests/fuzz/fuzz_proxy_msg.c src/fabric/fabric_msg.c src/txn/remote_msg.c"
	libs=""
	;;
set_msg)
	sources="tests/fuzz/fuzz_set_msg.c src/txn/set_msg.c"
	libs=""
	;;
migrate_msg)
	sources="tests/fuzz/fuzz_migrate_msg.c src/txn/migrate_msg.c"
	libs=""
	;;
chunk_map)
	sources="tests/fuzz/fuzz_chunk_map.c $engine"
	libs=$engine_libs
	;;
*)
	echo "fuzz.sh: unknown target '$target' (known: record fabric_msg rpc_msg proxy_msg set_msg migrate_msg chunk_map scan-device scan-shadow config apply pversion)" >&2
	exit 2
	;;
esac

CC_FUZZ=${CC_FUZZ:-clang}
CC_SEED=${CC:-cc}
out=${FUZZ_DIR:-$top/build-fuzz}
corpus=$out/corpus-$target
mkdir -p "$out" "$corpus"

cd "$top"
flags="-std=gnu11 -g -O1 -D_GNU_SOURCE -Isrc -fno-omit-frame-pointer $defines"
# shellcheck disable=SC2086 # word splitting of the lists is intended
$CC_FUZZ $flags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-o "$out/fuzz_$target" $sources -pthread $libs
# The seed writer is the plain driver, built without libFuzzer.
# shellcheck disable=SC2086
$CC_SEED $flags -o "$out/seed_$target" $sources $driver -pthread $libs
"$out/seed_$target" --write-corpus "$corpus" 64

echo "fuzz.sh: running fuzz_$target for ${seconds}s (corpus $corpus)"
cd "$out"
# shellcheck disable=SC2086
exec "./fuzz_$target" -max_total_time="$seconds" -print_final_stats=1 \
	-timeout=10 -rss_limit_mb=2048 $max_len "$@" "$corpus"
