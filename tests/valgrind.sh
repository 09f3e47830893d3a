#!/bin/sh
# make check-valgrind: every unit test binary under valgrind memcheck; any
# error, or a definite or indirect leak, fails. Run after make check (the
# binaries must be built).
#
#   tests/valgrind.sh SRCDIR
set -u
srcdir=$1
command -v valgrind >/dev/null || { echo "check-valgrind: valgrind is not installed (apt-get install valgrind)"; exit 1; }
rc=0
for t in tests/test_proto tests/test_ca tests/test_store tests/test_enroll tests/test_core \
	tests/test_tools tests/test_signer tests/test_tls_prio; do
	[ -x "$t" ] || { echo "FAIL: $t is not built (run make check first)"; rc=1; continue; }
	log="$t.valgrind.log"
	if srcdir="$srcdir" valgrind -q --error-exitcode=99 --leak-check=full \
		--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
		--log-file="$log" "$t" >"$t.valgrind.out" 2>&1; then
		echo "PASS: $t"
	else
		echo "FAIL: $t (see $log and $t.valgrind.out)"
		tail -n 40 "$log"
		rc=1
	fi
done
exit $rc
