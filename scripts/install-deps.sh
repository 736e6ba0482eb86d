#!/bin/sh
# Installs the Debian 12 packages recfs needs to build, test and benchmark,
# but only those that are missing (so a second run costs nothing).
# libsystemd-dev: sd_notify readiness (optional at configure time);
# mawk: examples/stats.sh is tested under Debian's default awk;
# systemd: systemd-analyze verify of the units in tests/check_install.sh.
set -eu
PKGS="build-essential autoconf automake libtool pkg-config \
libfuse3-dev fuse3 liburing-dev libyaml-dev libcmocka-dev libssl-dev \
fio attr rsync tar python3 clang mawk \
libsystemd-dev systemd"
missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
