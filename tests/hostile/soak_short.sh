#!/bin/sh
# tests/soak.sh for 20 seconds (SOAK_SECONDS), as make check runs it: every
# operation, admin change and fault at once, then the store against what
# phones and admins were told. By hand, longer: SOAK_MINUTES=10 tests/soak.sh.
: "${SOAK_SECONDS:=20}"
export SOAK_SECONDS
exec sh "$top_srcdir/tests/soak.sh"
