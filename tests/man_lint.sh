#!/bin/sh
# Lints the man pages: groff must have nothing to say about them.
set -u
: "${SRCDIR:=.}"
: "${GROFF:=groff}"
command -v "$GROFF" >/dev/null 2>&1 || { echo "groff not found"; exit 77; }
rc=0
for page in "$SRCDIR/man/mcring.8" "$SRCDIR/man/mcring.ini.5"; do
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
