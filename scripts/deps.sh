#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Installs what mcring needs to build, test and benchmark on Debian 12.
# Run as root. Quiet unless something fails.
set -eu
PKGS="build-essential autoconf automake pkg-config libevent-dev \
libxxhash-dev libinih-dev libmd-dev libjansson-dev libsystemd-dev libssl-dev check memcached \
python3 groff-base \
nutcracker libmemcached-tools netcat-openbsd \
python3-pymemcache python3-memcache libcache-memcached-perl \
libcache-memcached-fast-perl python3-prometheus-client clang \
libclang-rt-14-dev debhelper lintian liburing-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# The Debian package starts a memcached on 11211; mcring's tests start
# their own on free ports and do not need it.
