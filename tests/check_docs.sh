#!/bin/sh
# Fails when docs/configuration.md or docs/statistics.md is not exactly what
# tools/gen-config-doc / tools/gen-stats-doc print from the parameter and
# statistics tables, so the documents cannot go stale; when recfsd(8)
# does not render cleanly at 80 columns; and when a comment cites a document
# that is not in the repository.
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

# check_man PAGE: the man page renders at 80 columns (what `MANWIDTH=80 man`
# does: 78n of text) without a groff warning ("table wider than line
# width") and without a line past 80 columns.  Needs groff (groff-base, which
# man-db depends on).
check_man() {
	page="$top_srcdir/docs/$1"
	if ! command -v groff >/dev/null 2>&1; then
		echo "check_docs: no groff: docs/$1 not rendered (install groff-base)" >&2
		return
	fi
	warn=$(groff -t -man -Tascii -ww -rLL=78n "$page" 2>&1 >/dev/null)
	if [ -n "$warn" ]; then
		printf '%s\n' "$warn" >&2
		echo "check_docs: docs/$1 warns at 80 columns" >&2
		rc=1
	fi
	long=$(groff -t -man -Tascii -rLL=78n "$page" 2>/dev/null | sed 's/.\x08//g' | awk 'length > 80')
	if [ -n "$long" ]; then
		printf '%s\n' "$long" >&2
		echo "check_docs: docs/$1 has lines wider than 80 columns" >&2
		rc=1
	fi
}
check_man recfsd.8

# Comments and docs cite what is in the repository (docs/, the man pages),
# not the specification or notes the project was built from.
cited=$(cd "$top_srcdir" && grep -rnw -e SPEC -e STYLE -e fuse-notes --exclude=check_docs.sh \
	src fuse tools tests examples scripts docs README.md 2>/dev/null)
if [ -n "$cited" ]; then
	printf '%s\n' "$cited" >&2
	echo "check_docs: the lines above cite documents that are not in the repository; point them at docs/" >&2
	rc=1
fi
exit $rc
