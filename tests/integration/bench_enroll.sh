#!/bin/sh
# capf-bench enroll --quick: a smoke test of the enrollment benchmark (its
# figures are not checked, only that each one is printed), bounded in
# time. The benchmark starts its own capfd in a directory of its own.
set -u
: "${CAPF_BENCH:=$(pwd)/capf-bench}"
if [ ! -x "$CAPF_BENCH" ]; then
	echo "FAIL: $CAPF_BENCH is not built"
	exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/capf-it-bench-XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
fail() {
	echo "FAIL: $*"
	sed -n 1,60p "$tmp/out"
	exit 1
}

# The keys in a file of this run, not in the user's cache.
timeout 60 "$CAPF_BENCH" enroll --quick --keys "$tmp/keys" \
	--build "$(dirname "$CAPF_BENCH")" >"$tmp/out" 2>&1 ||
	fail "capf-bench enroll --quick failed"
for field in "pure crypto" "server " "ratio" "per CPU-second" "saturated" "client " \
	"fdatasyncs" "group commits" "peak RSS" "key exchange"; do
	grep -q "^  $field" "$tmp/out" || fail "no '$field' line"
done
json=$(grep '^{"bench":"enroll","variant":"p256-native"' "$tmp/out") || fail "no JSON line"
grep -q "^  pure crypto .* again after the run: the baseline" "$tmp/out" ||
	fail "the crypto was not measured again after the run"
for key in crypto_ms crypto_before_ms crypto_after_ms server_cpu_ms server_user_ms server_sys_ms ratio per_cpu_second rate \
	p50_ms p99_ms fdatasyncs_per_enrollment group_commits_per_enrollment peak_rss_kib \
	client_cpu_ms kx_x25519_ms kx_p256_ms; do
	echo "$json" | grep -q "\"$key\":" || fail "no $key in the JSON line"
done
grep -q '"server_cpu_ms":[0-9]' "$tmp/out" || fail "no server CPU figure"
grep -q "^  key exchange .* 100 X25519" "$tmp/out" || fail "the phones did not use X25519"
echo "PASS: capf-bench enroll --quick prints every figure"
