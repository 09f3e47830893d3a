#!/bin/sh
# make check-valgrind: every unit test binary under valgrind memcheck, and
# capfd itself under two integration scripts; any error, or a definite or
# indirect leak, fails. Run after make check (the
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
# capfd itself under memcheck, through the integration scripts that drive
# sessions, stalls, refusals, a shutdown under a session and a SIGKILL
# (its allocator is tcmalloc unless built --without-tcmalloc: memcheck
# replaces it). Its reports go to tests/capfd.valgrind.*.log.
rm -f tests/capfd.valgrind.*.log
for s in tests/integration/ops_errors.sh tests/integration/audit_timely.sh; do
	if CAPFD_WRAPPER="valgrind -q --error-exitcode=99 --leak-check=full \
		--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
		--soname-synonyms=somalloc=libtcmalloc_minimal.so.4 \
		--suppressions=$srcdir/tests/valgrind.supp \
		--log-file=tests/capfd.valgrind.%p.log" \
		sh "$srcdir/$s" >"$s.valgrind.out" 2>&1; then
		echo "PASS: capfd under $s"
	else
		echo "FAIL: capfd under $s (see $s.valgrind.out and tests/capfd.valgrind.*.log)"
		tail -n 20 "$s.valgrind.out"
		rc=1
	fi
done
exit $rc
