#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Builds the Debian package from a copy of the source tree (the tracked
# files as they are now), in a temporary directory:
#   dpkg-buildpackage -us -uc -b   ->  mcring_VERSION_ARCH.deb
# and checks it with lintian (no errors). With --install (CI; as root) it
# then installs it with dpkg -i and tries the installed daemon: the files
# where Debian puts them, the mcring user, the unit, a request served by
# /usr/sbin/mcring as mcring, and an edited /etc/mcring/mcring.ini kept
# across an upgrade that changes the sample. It purges an mcring package
# installed before. Each step is a test case: the last line is
# "N passed, N failed". Leaves the .deb in $MCRING_DEB_DIR if set.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
install=no
[ "${1:-}" = "--install" ] && install=yes
passed=0
failed=0
ok() { echo "ok: $1"; passed=$((passed + 1)); }
bad() { echo "FAILED: $1"; failed=$((failed + 1)); }
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
    exit $?
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mcring-deb.XXXXXX")
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
version=$(sed -n '1s/^mcring (\([^)]*\)).*/\1/p' "$top/debian/changelog")
src="$tmp/mcring-$version"
mkdir -p "$src"
if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$top" && git ls-files -z | tar --null -T - -cf -) | tar -xf - -C "$src"
else
    (cd "$top" && tar --exclude='./build*' --exclude=./debian/build -cf - .) |
        tar -xf - -C "$src"
fi

if (cd "$src" && timeout 1200 dpkg-buildpackage -us -uc -b) \
        >"$tmp/build.log" 2>&1; then
    ok "dpkg-buildpackage -us -uc -b"
else
    tail -n 60 "$tmp/build.log"
    bad "dpkg-buildpackage -us -uc -b"
    finish
fi
deb=$(ls "$tmp"/mcring_"$version"_*.deb 2>/dev/null | head -n 1)
if [ -n "$deb" ]; then
    ok "built $(basename "$deb")"
else
    bad "no mcring_${version}_*.deb"
    finish
fi
if [ -n "${MCRING_DEB_DIR:-}" ]; then
    cp "$deb" "$MCRING_DEB_DIR/"
fi
if lintian --fail-on error "$deb" >"$tmp/lintian.log" 2>&1; then
    ok "lintian: no errors ($(grep -c '^W:' "$tmp/lintian.log") warnings)"
else
    cat "$tmp/lintian.log"
    bad "lintian"
fi
sed -n 's/^\([EW]\): /lintian \1: /p' "$tmp/lintian.log" | head -n 20

[ "$install" = yes ] || finish

# ---- installed (from a clean state: an mcring package of an earlier
# run is purged first)
if dpkg -s mcring >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive dpkg --purge mcring >/dev/null 2>&1
fi
if DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" >"$tmp/dpkg.log" 2>&1; then
    ok "dpkg -i"
else
    cat "$tmp/dpkg.log"
    bad "dpkg -i"
    finish
fi
check() {
    what=$1
    shift
    if "$@" >"$tmp/check.log" 2>&1; then ok "$what"; else
        cat "$tmp/check.log"; bad "$what"; fi
}
check "/usr/sbin/mcring runs" /usr/sbin/mcring -V
check "conffile /etc/mcring/mcring.ini" \
    sh -c 'dpkg-query -W -f="\${Conffiles}" mcring | grep -q " /etc/mcring/mcring.ini "'
check "the installed config passes -t" \
    /usr/sbin/mcring -t -c /etc/mcring/mcring.ini
check "default config path is /etc/mcring/mcring.ini" \
    sh -c '/usr/sbin/mcring -h | grep -q "default /etc/mcring/mcring.ini"'
check "man pages" test -f /usr/share/man/man8/mcring.8.gz -a \
    -f /usr/share/man/man5/mcring.ini.5.gz
check "dashboard" test -f /usr/share/mcring/mcring.json
check "the mcring system user" id -u mcring
check "the unit is installed" test -f /lib/systemd/system/mcring.service
check "the unit is enabled" test -L \
    /etc/systemd/system/multi-user.target.wants/mcring.service
check "systemd-analyze verify of the installed unit" \
    systemd-analyze verify /lib/systemd/system/mcring.service

# A request through the installed daemon, run as the unit runs it (as
# mcring), in front of a memcached of our own.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
mport=$(port)
pport=$(port)
memcached -u nobody -l 127.0.0.1 -p "$mport" -U 0 -m 16 >"$tmp/mc.log" 2>&1 &
pids="$pids $!"
cat >"$tmp/smoke.ini" <<INI
[proxy]
listen = 127.0.0.1:$pport
[backends]
m1 = 127.0.0.1:$mport
INI
chmod 644 "$tmp/smoke.ini"
chmod 755 "$tmp"
/usr/sbin/mcring -c "$tmp/smoke.ini" -u mcring >"$tmp/mcring.log" 2>&1 &
pids="$pids $!"
smoke() {
    python3 - "$pport" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
deadline = time.monotonic() + 15


def ask(data, want):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(data)
    got = b""
    while not got.endswith(b"\r\n") or len(got) < len(want):
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    s.close()
    return got


# until mcring listens and has found its backend UP
while True:
    try:
        got = ask(b"set smoke 0 0 5\r\nhello\r\n", b"STORED\r\n")
        if got == b"STORED\r\n":
            break
    except OSError:
        got = None
    if time.monotonic() > deadline:
        sys.exit("no STORED: %r" % got)
    time.sleep(0.05)
want = b"VALUE smoke 0 5\r\nhello\r\nEND\r\n"
got = ask(b"get smoke\r\n", want)
assert got == want, got
PY
}
check "a set and a get through the installed mcring (-u mcring)" smoke
check "it runs as mcring" sh -c "grep -q 'running as mcring' '$tmp/mcring.log'"

# The operator's edit survives an upgrade whose package changed the
# sample too: a later version made from this one (the sample edited, the
# version raised), installed as apt would without a terminal.
echo "; edited by the operator" >>/etc/mcring/mcring.ini
up="$tmp/upgrade"
dpkg-deb -R "$deb" "$up"
echo "# changed in the next version" >>"$up/etc/mcring/mcring.ini"
sed -i "s/^Version: .*/Version: $version+next/" "$up/DEBIAN/control"
(cd "$up" && find . -path ./DEBIAN -prune -o -type f -print |
    sed 's|^\./||' | sort | xargs md5sum >DEBIAN/md5sums)
check "an upgrade package" dpkg-deb --root-owner-group -b "$up" "$tmp/next.deb"
check "upgrade (dpkg -i --force-confold, as apt without a terminal)" \
    sh -c "DEBIAN_FRONTEND=noninteractive dpkg -i --force-confdef --force-confold '$tmp/next.deb'"
check "the operator's edit is kept" \
    grep -q "^; edited by the operator" /etc/mcring/mcring.ini
check "the new sample is beside it" \
    grep -q "^# changed in the next version" /etc/mcring/mcring.ini.dpkg-dist
check "the upgraded mcring runs" /usr/sbin/mcring -t -c /etc/mcring/mcring.ini
rm -f /etc/mcring/mcring.ini.dpkg-dist
finish
