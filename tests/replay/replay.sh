#!/bin/sh
# Replay the committed corpus (tests/replay/corpus/, recorded by
# record.sh) against a fresh capfd set up as cases.sh says: every session,
# native and Cisco, must get the answers it got when it was recorded,
# masked where they must differ. Then the channel binding: the recorded
# bytes of an install, replayed raw on a new connection, are refused with
# 1013 (CAPF_EBINDING); the recorded bytes of a Cisco install carry the
# recorded session id, which the server refuses (reason 7).
set -u
. "$top_srcdir/tests/integration/lib.sh"
: "${CAPF_REPLAY:=$(pwd)/capf-replay}"
[ -x "$CAPF_REPLAY" ] || fail "$CAPF_REPLAY is not built"
corpus="$top_srcdir/tests/replay/corpus"
. "$top_srcdir/tests/replay/cases.sh"

mkdir -p "$tmp/mfg" "$tmp/lsc"
cp "$corpus/mics/mfg-ca.pem" "$tmp/mfg/"
printf '%s' "$CONF" >"$tmp/capfd.conf"
start_capfd -c "$tmp/capfd.conf"
cport=$(sed -n 's/^cisco_port=//p' "$tmp/ready")
[ -n "$cport" ] || fail "no cisco_port in the ready file"

replay() {
	"$CAPF_REPLAY" run --server "127.0.0.1:$port" --cisco-server "127.0.0.1:$cport" \
		--ca "$capf_ca" --mic-dir "$corpus/mics" --lsc-dir "$tmp/lsc" "$@"
}

n=0
session() {
	file=$1
	n=$((n + 1))
	# --pace: the lockout and the stalls depend on the recorded timing.
	replay --pace "$corpus/$file.jsonl" >"$tmp/out" 2>&1 ||
		{ cat "$tmp/out"; fail "$file: the replay differs from the recording"; }
}
session_part() { :; }
cisco_session() { session "$@"; }
cisco_session_part() { :; }

run_cases
echo "replayed $n corpus files"
ls "$corpus"/*.jsonl | wc -l | grep -q "^$n$" || fail "cases.sh does not name every corpus file"

# ---- a difference is found and reported precisely ---------------------------
# The install by null string replayed again: nothing is pending any more,
# so the server's OperationRequest is replaced by End 1007 at message 1.
rc=0
replay "$corpus/60-install-null.jsonl" >"$tmp/out" 2>&1 || rc=$?
[ $rc -eq 1 ] || { cat "$tmp/out"; fail "a differing replay: exit status $rc, not 1"; }
grep -q "DIFFERS: message 1 (OperationRequest): type: recorded OperationRequest, got End 1007 (CAPF_ENO_OPERATION)" \
	"$tmp/out" || { cat "$tmp/out"; fail "the difference is not reported precisely"; }
replay --json "$corpus/60-install-null.jsonl" >"$tmp/out" 2>&1
grep -q '"result":"differs","messages":2,.*"index":1,"type":"OperationRequest","field":"type"' \
	"$tmp/out" || { cat "$tmp/out"; fail "--json: the difference"; }

# ---- a recorded CSR replayed byte for byte is refused: channel binding -------
# (The install of $D_MIC is pending again since 06-no-certificate.)
rc=0
replay --raw "$corpus/01-install-mic.jsonl" >"$tmp/out" 2>&1 || rc=$?
[ $rc -eq 1 ] || { cat "$tmp/out"; fail "raw replay: exit status $rc, not 1"; }
grep -q "message 3 (CertificateDelivery): type: recorded CertificateDelivery, got Error 1013 (CAPF_EBINDING)" \
	"$tmp/out" || { cat "$tmp/out"; fail "a raw replay of a recorded CSR was not refused with 1013"; }
# Refused and nothing changed: the install is still pending, and the same
# session replayed with a CSR bound to its own session succeeds.
replay "$corpus/01-install-mic.jsonl" >"$tmp/out" 2>&1 ||
	{ cat "$tmp/out"; fail "after the refused raw replay, a fresh replay differs"; }

# ---- load: bounded in count and in time ---------------------------------------
ctl device set $D_NUL --op install >/dev/null || fail "device set"
"$CAPF_REPLAY" load "$corpus/60-install-null.jsonl" "$corpus/02-nothing-to-do.jsonl" \
	"$corpus/30-version-unknown.jsonl" --server "127.0.0.1:$port" --ca "$capf_ca" \
	--mic-dir "$corpus/mics" --concurrency 4 --count 40 --duration 20 >"$tmp/out" 2>&1 ||
	{ cat "$tmp/out"; fail "load"; }
grep -q "^sessions: [0-9]* same, [0-9]* differ, 0 failed of 40 run (40 asked)$" "$tmp/out" ||
	{ cat "$tmp/out"; fail "load: counts"; }
grep -q "^latency (ms, sessions run to the end): p50 [0-9.]* p90 [0-9.]* p99 [0-9.]* max [0-9.]*$" \
	"$tmp/out" || { cat "$tmp/out"; fail "load: latency"; }
grep -q '^{"sessions":40,"same":[0-9]*,"differ":[0-9]*,"failed":0,"concurrency":4,"wall_s":' \
	"$tmp/out" || { cat "$tmp/out"; fail "load: the JSON line"; }
# The duration bounds it too: a count it cannot reach in 1 s.
"$CAPF_REPLAY" load "$corpus/02-nothing-to-do.jsonl" --server "127.0.0.1:$port" \
	--ca "$capf_ca" --mic-dir "$corpus/mics" --concurrency 2 --count 1000000 --duration 1 \
	>"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "load --duration"; }
sed -n 's/^wall time: \([0-9]*\)\..*/\1/p' "$tmp/out" | grep -q '^[12]$' ||
	{ cat "$tmp/out"; fail "load --duration 1 ran for longer"; }

stop_capfd
"$CAPFCTL" store check -d "$tmp/state" >"$tmp/out" 2>&1 ||
	{ cat "$tmp/out"; fail "store check after the replays"; }
echo "PASS"
