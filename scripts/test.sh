#!/bin/sh
# README command 2: build (installing missing packages first) and run the
# whole test suite: unit tests, integration tests on real mounts, fuzz
# drivers.  Options (CI gives both):
#   --sanitize  the suite runs again in an ASan+UBSan build in build-asan/
#   --tsan      the unit tests, the cold-start fuzz drivers and the threaded
#               integration tests (TSAN_TESTS below) run in a ThreadSanitizer
#               build in build-tsan/; any report fails the run
#   --tsan-only the TSan run alone
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)

# One closing line per run, from automake's test-suite.log; $3 = failures
# found outside it (TSan reports), added to the failed count.
summary() {
	pass=$(sed -n 's/^# PASS: *//p' "$1/test-suite.log" | head -1)
	fail=$(sed -n 's/^# FAIL: *//p' "$1/test-suite.log" | head -1)
	err=$(sed -n 's/^# ERROR: *//p' "$1/test-suite.log" | head -1)
	skip=$(sed -n 's/^# SKIP: *//p' "$1/test-suite.log" | head -1)
	echo "$2: ${pass:-0} passed, $(( ${fail:-0} + ${err:-0} + ${3:-0} )) failed, ${skip:-0} skipped"
}
sanitize=no
tsan=no
main=yes
for arg in "$@"; do
	case $arg in
	--sanitize) sanitize=yes ;;
	--tsan) tsan=yes ;;
	--tsan-only) tsan=yes; main=no ;;
	*) echo "test.sh: unknown option '$arg' (known: --sanitize --tsan --tsan-only)" >&2; exit 2 ;;
	esac
done
if [ "$main" = yes ]; then
	# fault points compiled in (t_migrate_persistfail arms them; unarmed, a
	# check is one pthread_once and an empty loop)
	CONFIGURE_FLAGS="--enable-werror --enable-fault-injection" BUILD_DIR="$top/build" "$top/scripts/build.sh"
	cd "$top/build"
	make -j"$(nproc)" check || { tail -100 test-suite.log 2>/dev/null; summary . tests; exit 1; }
	summary . tests
fi
if [ "$main" = yes ] && [ "$sanitize" = yes ]; then
	CONFIGURE_FLAGS="--enable-werror --enable-asan --enable-ubsan --enable-fault-injection" \
	    BUILD_DIR="$top/build-asan" "$top/scripts/build.sh"
	cd "$top/build-asan"
	ASAN_OPTIONS=detect_leaks=1 make -j"$(nproc)" check ||
	    { tail -100 test-suite.log 2>/dev/null; summary . sanitized; exit 1; }
	summary . sanitized
fi
if [ "$tsan" = yes ]; then
	# TSan slows code 5-15x: every unit test, and of the integration tests
	# those where most threads meet (parallel clients, restarts with
	# multi-threaded cold start, defrag, the shadow flusher, nsup), not
	# the ones that mostly wait (t_ttl) or repeat one path many times
	# (t_many).  About 2 minutes on 2 busy CPUs.
	tsan_tests=""
	for f in "$top"/tests/unit/test_*.c; do
		tsan_tests="$tsan_tests tests/unit/$(basename "$f" .c)"
	done
	tsan_tests="$tsan_tests tests/fuzz/fuzz_scan_device tests/fuzz/fuzz_scan_shadow"
	for t in basic concurrency model sets handles durable damaged defrag shadow_crash evict \
	    stopwrites service network peers partition cluster_tls cluster_sets cluster_data large; do
		tsan_tests="$tsan_tests tests/integration/t_$t.sh"
	done
	CONFIGURE_FLAGS="--enable-werror --enable-tsan" \
	    BUILD_DIR="$top/build-tsan" "$top/scripts/build.sh"
	cd "$top/build-tsan"
	# Every process (tests, recfsd, helpers) writes its reports to
	# tsan-logs/tsan.PID and stops at the first one with status 66, so the
	# test fails; a report in a process whose status no test checks is
	# still found in the directory.
	rm -rf tsan-logs
	mkdir tsan-logs
	rc=0
	# tests/tsan.supp: library reports only, each with its reason.
	TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 log_path=$PWD/tsan-logs/tsan suppressions=$top/tests/tsan.supp" \
	    make -j"$(nproc)" check TESTS="$tsan_tests" || rc=1
	reports=$(find tsan-logs -type f | wc -l)
	if [ "$reports" -ne 0 ]; then
		for f in tsan-logs/*; do
			echo "---- $f"
			head -60 "$f"
		done
		echo "test.sh: $reports ThreadSanitizer report file(s) in $PWD/tsan-logs"
	fi
	[ $rc -eq 0 ] || tail -100 test-suite.log 2>/dev/null
	summary . tsan "$reports"
	[ $rc -eq 0 ] && [ "$reports" -eq 0 ] || exit 1
fi
