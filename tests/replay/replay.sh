#!/bin/sh
# Replay the committed corpus (tests/replay/corpus/, recorded by
# record.sh) against a fresh capfd set up as cases.sh says: every session
# must get the answers it got when it was recorded, masked where they must
# differ. Then the channel binding: the recorded bytes of an install,
# replayed raw on a new connection, are refused with 1013 (CAPF_EBINDING).
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

replay() {
	"$CAPF_REPLAY" run --server "127.0.0.1:$port" --ca "$capf_ca" --mic-dir "$corpus/mics" \
		--lsc-dir "$tmp/lsc" "$@"
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

stop_capfd
"$CAPFCTL" store check -d "$tmp/state" >"$tmp/out" 2>&1 ||
	{ cat "$tmp/out"; fail "store check after the replays"; }
echo "PASS"
