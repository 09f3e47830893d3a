#!/bin/sh
# make check-sanitizers: the unit tests and the fuzz corpus replays once
# more, built with ./configure --enable-sanitizers (ASan and UBSan, the
# first report fatal) in a build of their own, from the same sources as
# the dist tarball has them: the tree's own build stays as it is.
#
#   tests/sanitizers.sh BUILDDIR
#
# SAN_DIR (default $TMPDIR/capf-asan.<name of the source directory>) is
# the work directory; it is kept, so that a second run rebuilds only what
# changed.
set -u
build=$(cd "$1" && pwd)
: "${SAN_DIR:=${TMPDIR:-/tmp}/capf-asan.$(basename "$build")}"
jobs=$(nproc)
mkdir -p "$SAN_DIR"
# distdir writes a fresh copy; keep the objects of the last run beside it.
rm -rf "$SAN_DIR/new"
make -s -C "$build" distdir distdir="$SAN_DIR/new" >/dev/null || exit 1
if [ -d "$SAN_DIR/src" ]; then
	# Only files that changed get a new time stamp, so make rebuilds them only.
	(cd "$SAN_DIR/new" && find . -type f) | while read -r f; do
		cmp -s "$SAN_DIR/new/$f" "$SAN_DIR/src/$f" ||
			{ mkdir -p "$(dirname "$SAN_DIR/src/$f")"; cp -p "$SAN_DIR/new/$f" "$SAN_DIR/src/$f"; }
	done
	rm -rf "$SAN_DIR/new"
else
	mv "$SAN_DIR/new" "$SAN_DIR/src"
fi
cd "$SAN_DIR/src" || exit 1
if [ ! -f Makefile ] || [ configure.ac -nt config.status ]; then
	./configure -q --enable-sanitizers --enable-werror >/dev/null || exit 1
fi
unit="tests/test_proto tests/test_ca tests/test_store tests/test_enroll tests/test_core \
	tests/test_tools tests/test_signer tests/test_tls_prio"
fuzz=$(cd tests/fuzz && ls fuzz_*.c | sed 's|^|tests/fuzz/|; s|\.c$||' | tr '\n' ' ')
# Leaks are errors too (LeakSanitizer runs at exit).
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
	make -s -j"$jobs" check TESTS="$unit $fuzz" >make.out 2>&1
rc=$?
grep -E '^(# |FAIL|ERROR)' make.out
if [ $rc -ne 0 ]; then
	for f in $unit $fuzz; do
		grep -q '^:test-result: \(FAIL\|ERROR\)' "$f.trs" 2>/dev/null || continue
		echo "===== $f.log (sanitizer build in $SAN_DIR/src)"
		tail -n 60 "$f.log"
	done
fi
exit $rc
