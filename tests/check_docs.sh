#!/bin/sh
# Fails when docs/configuration.md or docs/statistics.md is not exactly what
# tools/gen-config-doc / tools/gen-stats-doc print from the parameter and
# statistics tables, so the documents cannot go stale.
# make check passes $top_srcdir and $top_builddir (see AM_TESTS_ENVIRONMENT).
top_srcdir=${top_srcdir:-$(dirname "$0")/..}
top_builddir=${top_builddir:-$top_srcdir}
rc=0

# check_doc GENERATOR DOC
check_doc() {
	gen="$top_builddir/tools/$1"
	doc="$top_srcdir/docs/$2"
	if [ ! -x "$gen" ]; then
		echo "check_docs: $gen not built" >&2
		exit 99     # hard error for the automake harness: the check could not run
	fi
	if [ ! -f "$doc" ]; then
		echo "check_docs: $doc missing; run: tools/$1 > docs/$2" >&2
		rc=1
	elif ! "$gen" | cmp -s - "$doc"; then
		"$gen" | diff -u "$doc" - >&2
		echo "check_docs: docs/$2 is stale; run: tools/$1 > docs/$2" >&2
		rc=1
	fi
}

check_doc gen-config-doc configuration.md
check_doc gen-stats-doc statistics.md
exit $rc
