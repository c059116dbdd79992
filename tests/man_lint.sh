#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Lints the man pages: groff must have nothing to say about them.
set -u
: "${SRCDIR:=.}"
: "${GROFF:=groff}"
command -v "$GROFF" >/dev/null 2>&1 || { echo "groff not found"; exit 77; }
rc=0
: "${MANDIR:=man}"
for page in "$MANDIR/mcring.8" "$MANDIR/mcring.ini.5"; do
    out=$("$GROFF" -man -ww -z "$page" 2>&1)
    if [ -n "$out" ]; then
        echo "$page:"
        echo "$out"
        rc=1
    else
        echo "ok: $page"
    fi
done
exit $rc
