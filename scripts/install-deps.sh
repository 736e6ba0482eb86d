#!/bin/sh
# Installs the Debian 12 packages recfs needs to build, test and benchmark,
# but only those that are missing (so a second run costs nothing).
# libsystemd-dev: sd_notify readiness (optional at configure time);
# mawk: examples/stats.sh is tested under Debian's default awk;
# logrotate: t_config runs the shipped logrotate snippet;
# systemd: systemd-analyze verify of the units in tests/check_install.sh;
# iproute2, nftables: the cluster harness's network namespaces and faults
# (tests/integration/cluster_lib.sh); openssl: the TLS tests make their
# certificates with it (test_fabric, t_cluster_tls); sqlite3: t_large grows
# a database on the mount.
set -eu
PKGS="build-essential autoconf automake libtool pkg-config \
libfuse3-dev fuse3 liburing-dev libyaml-dev libcmocka-dev libssl-dev openssl \
fio attr rsync tar git python3 clang mawk logrotate sqlite3 \
libsystemd-dev systemd iproute2 nftables"
missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
if [ -n "$missing" ]; then
	echo "installing:$missing"
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -q
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi

# promtool lints .info/metrics in t_observability.  Debian ships it only
# inside the prometheus server package, whose install would also start a
# Prometheus server: take the one binary out of the package instead.
if ! command -v promtool >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
	tmp=$(mktemp -d)
	if (cd "$tmp" && apt-get download -q prometheus >/dev/null 2>&1); then
		dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb |
		    tar -x -C "$tmp" ./usr/bin/promtool &&
		    install -m 0755 "$tmp/usr/bin/promtool" /usr/local/bin/promtool &&
		    echo "installed: promtool (from Debian's prometheus package)"
	else
		echo "install-deps: promtool not available; t_observability lints with prom_check.py only"
	fi
	rm -rf "$tmp"
fi
