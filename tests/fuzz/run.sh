#!/bin/sh
# make fuzz: build every fuzz target with clang -fsanitize=fuzzer,address,
# undefined out of tree, run each for FUZZ_TIME seconds on a scratch copy
# of its corpus, and print per target the executions and what it found.
#
#   tests/fuzz/run.sh SRCDIR DISTDIR-MAKER-DIR
#
# Environment: FUZZ_TIME (seconds per target, default 60), FUZZ_DIR (work
# directory, default $TMPDIR/capf-fuzz.<name of the source directory>), FUZZ_ONLY (names, default all of
# tests/fuzz/fuzz_*.c), FUZZ_JOBS (targets run at once, default 1).
# Findings (crash-*, leak-*, timeout-*) stay in FUZZ_DIR/run/TARGET/; the
# exit status is 1 when there is one.
set -u
src=$(cd "$1" && pwd)
build_from=$(cd "$2" && pwd)
: "${FUZZ_TIME:=60}"
: "${FUZZ_DIR:=${TMPDIR:-/tmp}/capf-fuzz.$(basename "$src")}"
: "${FUZZ_JOBS:=1}"
command -v clang >/dev/null || { echo "make fuzz: clang is needed (apt-get install clang)"; exit 1; }

# The sources as the dist tarball has them (generated files included),
# configured and built on their own: the tree's own build stays as it is.
mkdir -p "$FUZZ_DIR"
rm -rf "$FUZZ_DIR/src"
make -s -C "$build_from" distdir distdir="$FUZZ_DIR/src" >/dev/null || exit 1
cd "$FUZZ_DIR/src" || exit 1
san="-fsanitize=address,undefined -fno-sanitize-recover=all"
./configure -q CC=clang CFLAGS="-g -O1 -fsanitize=fuzzer-no-link $san" >/dev/null || exit 1
make -s -j"$(nproc)" paths.h libcapfproto.a libcapfca.a libcapfstore.a libcapftools.a libcapfd.a \
	>/dev/null || exit 1
libs="libcapfd.a libcapftools.a libcapfca.a libcapfstore.a libcapfproto.a"
syslibs="$(pkg-config --libs gnutls libuv libprotobuf-c inih) -lpthread"

targets=${FUZZ_ONLY:-$(cd "$src/tests/fuzz" && ls fuzz_*.c | sed 's/\.c$//')}
for t in $targets; do
	clang -g -O1 -fsanitize=fuzzer $san -DCAPF_LIBFUZZER -I. -Iproto \
		$(pkg-config --cflags gnutls libuv libprotobuf-c) \
		-o "$FUZZ_DIR/$t" "tests/fuzz/$t.c" $libs $syslibs || exit 1
done

run_one() {
	t=$1
	dir="$FUZZ_DIR/run/$t"
	rm -rf "$dir"
	mkdir -p "$dir/corpus"
	cp "$src/tests/fuzz/corpus/$t/"* "$dir/corpus/" 2>/dev/null
	(cd "$dir" && TMPDIR="$dir" "$FUZZ_DIR/$t" -max_total_time="$FUZZ_TIME" -max_len=65536 \
		-print_final_stats=1 -timeout=25 -rss_limit_mb=2048 corpus >log 2>&1)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log")
	cov=$(grep -o 'cov: [0-9]*' "$dir/log" | tail -n 1)
	found=$(cd "$dir" && ls crash-* leak-* timeout-* oom-* 2>/dev/null | tr '\n' ' ')
	printf '%-20s %10s executions %7s/s  %-10s %s\n' "$t" "${execs:-?}" "${rate:-?}" \
		"${cov:-cov: ?}" "${found:-no finding}"
}

status=0
running=0
for t in $targets; do
	run_one "$t" >"$FUZZ_DIR/$t.result" &
	running=$((running + 1))
	if [ $running -ge "$FUZZ_JOBS" ]; then
		wait
		running=0
	fi
done
wait
for t in $targets; do
	cat "$FUZZ_DIR/$t.result"
	grep -q "no finding" "$FUZZ_DIR/$t.result" || status=1
done
exit $status
