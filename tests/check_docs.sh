#!/bin/sh
# Fails when docs/configuration.md is not exactly what tools/gen-config-doc
# prints from the parameter table, so the document cannot go stale.
# make check passes $top_srcdir and $top_builddir (see AM_TESTS_ENVIRONMENT).
top_srcdir=${top_srcdir:-$(dirname "$0")/..}
top_builddir=${top_builddir:-$top_srcdir}
gen="$top_builddir/tools/gen-config-doc"
doc="$top_srcdir/docs/configuration.md"

if [ ! -x "$gen" ]; then
	echo "check_docs: $gen not built" >&2
	exit 99     # hard error for the automake harness: the check could not run
fi
if [ ! -f "$doc" ]; then
	echo "check_docs: $doc missing; run: tools/gen-config-doc > docs/configuration.md" >&2
	exit 1
fi
if ! "$gen" | cmp -s - "$doc"; then
	"$gen" | diff -u "$doc" - >&2
	echo "check_docs: docs/configuration.md is stale; run: tools/gen-config-doc > docs/configuration.md" >&2
	exit 1
fi
exit 0
