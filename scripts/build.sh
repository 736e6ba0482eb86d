#!/bin/sh
# Builds recfs in build/ (or $BUILD_DIR) with the given configure options.
# Re-runs autogen/configure only when needed.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
"$top/scripts/install-deps.sh"
[ -x "$top/configure" ] || "$top/autogen.sh"
mkdir -p "$build"
cd "$build"
if [ ! -f Makefile ] || [ "$top/configure" -nt Makefile ] || [ -n "${CONFIGURE_FLAGS:-}" ]; then
	"$top/configure" -q ${CONFIGURE_FLAGS:-}
fi
make -j"$(nproc)" -s
