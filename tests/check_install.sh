#!/bin/sh
# check_install: `make install DESTDIR=...` puts every file where the
# autotools conventions (and systemd) look for it, prints the tree, and
# `make uninstall` takes it all back.  Then the installed pieces are checked
# as an operator would use them: the installed recfsd runs, the installed
# /etc/recfs/recfs.yaml is valid (and is the built-in default written out),
# the systemd units name the installed recfsd with -f and Type=notify and
# pass `systemd-analyze verify` (that one check is skipped, and says so,
# only where systemd is not installed: scripts/install-deps.sh installs it),
# and a reinstall keeps an edited recfs.yaml.
# make check passes $top_srcdir and $top_builddir (see AM_TESTS_ENVIRONMENT).
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
rc=0
bad() {
	echo "FAIL: $*"
	rc=1
}
ok() {
	echo "ok: $*"
}

# A nested make: not part of the outer make's job server.
unset MAKEFLAGS MFLAGS MAKELEVEL
mk() {
	make -C "$top_builddir" --no-print-directory "$@"
}
# var NAME: a make variable of this build, fully expanded (${prefix}...).
var() {
	mk -s --eval='print-var-%: ; @echo $($*)' "print-var-$1"
}

D=$(mktemp -d "${TMPDIR:-/tmp}/recfs-check-install.XXXXXX") || exit 99
trap 'rm -rf "$D"' EXIT
DEST=$D/root

if ! mk -s install DESTDIR="$DEST" >"$D/install.log" 2>&1; then
	cat "$D/install.log"
	echo "check_install: make install DESTDIR=$DEST failed" >&2
	exit 1
fi
echo "# the installed tree (DESTDIR=$DEST):"
(cd "$DEST" && find . \( -type f -o -type l \) | sort | sed 's|^\.|#   |')

sbindir=$(var sbindir)
bindir=$(var bindir)
mandir=$(var mandir)
sysconfdir=$(var sysconfdir)
docdir=$(var docdir)
unitdir=$(var systemdsystemunitdir)
logrotatedir=$(var logrotatedir)
[ -n "$sbindir" ] && [ -n "$unitdir" ] || { echo "check_install: cannot read the install dirs" >&2; exit 99; }

for f in "$sbindir/recfsd" "$bindir/recfs-check" "$bindir/recfs-bench"; do
	if [ -x "$DEST$f" ]; then ok "program $f"; else bad "program $f missing or not executable"; fi
done
for f in "$mandir/man8/recfsd.8" "$mandir/man1/recfs-check.1" "$mandir/man1/recfs-bench.1" \
	"$sysconfdir/recfs/recfs.yaml" "$logrotatedir/recfs" \
	"$unitdir/recfsd.service" "$unitdir/recfsd@.service" \
	"$docdir/README.md" "$docdir/operations.md" "$docdir/configuration.md" \
	"$docdir/statistics.md" "$docdir/architecture.md" "$docdir/storage-format.md" \
	"$docdir/benchmarks.md" "$docdir/cluster.md" \
	"$docdir/examples/device.yaml" "$docdir/examples/memory.yaml" \
	"$docdir/examples/memory-shadow.yaml" "$docdir/examples/recfs.yaml" \
	"$docdir/examples/records.c" "$docdir/examples/stats.sh" "$docdir/examples/shell-session.sh" \
	"$docdir/examples/cluster.yaml" "$docdir/examples/cluster-demo.sh"; do
	if [ -f "$DEST$f" ]; then ok "file $f"; else bad "file $f missing"; fi
done
case $logrotatedir in
*/logrotate.d) ok "logrotate snippet in $logrotatedir" ;;
*) bad "logrotate snippet in $logrotatedir, not a logrotate.d" ;;
esac

# The installed programs run; the installed config is valid and is the
# built-in default written out (what recfsd runs on without -c).
RECFSD=$DEST$sbindir/recfsd
if "$RECFSD" --version | grep -q '^recfsd '; then ok "installed recfsd --version"; else bad "installed recfsd --version"; fi
"$RECFSD" --check-config -c "$DEST$sysconfdir/recfs/recfs.yaml" >"$D/conf.out" 2>&1 ||
	bad "installed recfs.yaml fails --check-config: $(cat "$D/conf.out")"
# (The built-in work directory is /var/lib/recfs for root only.)
"$RECFSD" --check-config >"$D/default.out" 2>&1
wd=$(sed -n 's/^  work-directory: //p' "$D/default.out")
[ -n "$wd" ] && sed -i "s|$wd|/var/lib/recfs|g" "$D/default.out"
if [ "$(sed 1d "$D/conf.out")" = "$(sed 1d "$D/default.out")" ]; then
	ok "recfs.yaml is the built-in default written out"
else
	bad "recfs.yaml differs from the built-in default: $(sed 1d "$D/default.out" | diff - "$D/conf.out" | head -20)"
fi

# The units: the installed recfsd, in the foreground, Type=notify.
for u in recfsd.service recfsd@.service; do
	f=$DEST$unitdir/$u
	grep -q "^ExecStart=$sbindir/recfsd -f " "$f" && ok "$u runs $sbindir/recfsd -f" ||
		bad "$u: ExecStart is not '$sbindir/recfsd -f ...': $(grep '^ExecStart' "$f")"
	grep -q '^Type=notify$' "$f" && ok "$u is Type=notify" || bad "$u: no Type=notify"
	grep -q '^ExecStop=.*fusermount3 -u ' "$f" && ok "$u unmounts on stop" || bad "$u: no ExecStop unmount"
	grep -q '^StateDirectory=recfs$' "$f" && ok "$u creates /var/lib/recfs" || bad "$u: no StateDirectory=recfs"
	grep -q "$sysconfdir/recfs/" "$f" && ok "$u reads its config in $sysconfdir/recfs" ||
		bad "$u: config not in $sysconfdir/recfs"
	if grep -q '@[a-zA-Z_]*@' "$f"; then bad "$u: unsubstituted $(grep -o '@[a-zA-Z_]*@' "$f" | head -1)"; fi
done

# systemd-analyze verify: the units as installed, with the paths of this
# DESTDIR (verify wants ExecStart's program to exist and Documentation's man
# page to be found).
if command -v systemd-analyze >/dev/null 2>&1; then
	mkdir -p "$D/units"
	for u in recfsd.service recfsd@.service; do
		sed -e "s|=$sbindir/|=$DEST$sbindir/|g" "$DEST$unitdir/$u" >"$D/units/$u"
	done
	for u in recfsd.service recfsd@test.service; do
		out=$(cd "$D/units" && MANPATH="$DEST$mandir" SYSTEMD_LOG_COLOR=0 \
			timeout 60 systemd-analyze verify "$D/units/$u" 2>&1)
		st=$?
		if [ $st -eq 0 ] && [ -z "$out" ]; then
			ok "systemd-analyze verify $u: clean"
		else
			bad "systemd-analyze verify $u (status $st): $out"
		fi
	done
else
	echo "SKIP (this check only): systemd-analyze verify: systemd not installed (scripts/install-deps.sh installs it)"
fi

# A reinstall keeps an edited configuration; uninstall removes the shipped one.
echo "# edited" >>"$DEST$sysconfdir/recfs/recfs.yaml"
mk -s install DESTDIR="$DEST" >"$D/install2.log" 2>&1 || bad "second make install failed: $(tail "$D/install2.log")"
if tail -n 1 "$DEST$sysconfdir/recfs/recfs.yaml" | grep -q '^# edited$'; then
	ok "a reinstall keeps an edited recfs.yaml"
else
	bad "a reinstall overwrote the edited recfs.yaml"
fi
cp "$top_srcdir/examples/recfs.yaml" "$DEST$sysconfdir/recfs/recfs.yaml"
if ! mk -s uninstall DESTDIR="$DEST" >"$D/uninstall.log" 2>&1; then
	bad "make uninstall failed: $(tail "$D/uninstall.log")"
fi
left=$(cd "$DEST" && find . \( -type f -o -type l \) | sort)
if [ -z "$left" ]; then ok "make uninstall removes every file"; else bad "make uninstall left: $left"; fi

[ $rc -eq 0 ] && echo "# check_install: all checks passed"
exit $rc
