#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Every source file names its licence in its head (first three lines), and
# the licence is there.
set -u
: "${SRCDIR:=.}"
rc=0
[ -f "$SRCDIR/LICENSE" ] || { echo "no LICENSE"; rc=1; }
for f in "$SRCDIR"/src/*.c "$SRCDIR"/src/*.h "$SRCDIR"/tests/*.c \
         "$SRCDIR"/tests/*.py "$SRCDIR"/tests/*.sh "$SRCDIR"/tests/fuzz/*.c \
         "$SRCDIR"/bench/*.c "$SRCDIR"/bench/*.py "$SRCDIR"/bench/*.sh \
         "$SRCDIR"/scripts/*.sh "$SRCDIR"/man/*.[0-9]* "$SRCDIR"/etc/*.ini* \
         "$SRCDIR"/etc/*.service* "$SRCDIR"/configure.ac \
         "$SRCDIR"/Makefile.am; do
    [ -e "$f" ] || continue
    if ! head -n 3 "$f" | grep -q "SPDX-License-Identifier: BSD-3-Clause"; then
        echo "no licence line: $f"
        rc=1
    fi
done
[ $rc -eq 0 ] && echo "ok: every source file names BSD-3-Clause"
exit $rc
