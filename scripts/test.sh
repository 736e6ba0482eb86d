#!/bin/sh
# README command 2: build (installing missing packages first) and run the
# whole test suite: unit tests, integration tests on real mounts, fuzz
# drivers.  With --sanitize (CI does this too) the suite runs again in an
# ASan+UBSan build in build-asan/.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)

# One closing line per run, from automake's test-suite.log.
summary() {
	pass=$(sed -n 's/^# PASS: *//p' "$1/test-suite.log" | head -1)
	fail=$(sed -n 's/^# FAIL: *//p' "$1/test-suite.log" | head -1)
	err=$(sed -n 's/^# ERROR: *//p' "$1/test-suite.log" | head -1)
	skip=$(sed -n 's/^# SKIP: *//p' "$1/test-suite.log" | head -1)
	echo "$2: ${pass:-0} passed, $(( ${fail:-0} + ${err:-0} )) failed, ${skip:-0} skipped"
}
sanitize=no
[ "${1:-}" = "--sanitize" ] && sanitize=yes
CONFIGURE_FLAGS="--enable-werror" BUILD_DIR="$top/build" "$top/scripts/build.sh"
cd "$top/build"
make -j"$(nproc)" check || { tail -100 test-suite.log 2>/dev/null; summary . tests; exit 1; }
summary . tests
if [ "$sanitize" = yes ]; then
	CONFIGURE_FLAGS="--enable-werror --enable-asan --enable-ubsan" \
	    BUILD_DIR="$top/build-asan" "$top/scripts/build.sh"
	cd "$top/build-asan"
	ASAN_OPTIONS=detect_leaks=1 make -j"$(nproc)" check ||
	    { tail -100 test-suite.log 2>/dev/null; summary . sanitized; exit 1; }
	summary . sanitized
fi
