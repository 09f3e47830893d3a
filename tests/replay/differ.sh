#!/bin/sh
# A replay reports the first difference precisely: sessions of the corpus
# with one server answer altered in the recording (so that the server's
# real answer must differ from it there) are replayed against a fresh
# capfd, and the report must name the message, its type, the field or
# Cisco element, and both values; the session stops there. Then the
# recorded bytes of a Cisco install sent raw: they carry the recorded
# session id, which the server refuses; made anew, the same session runs.
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

# differs FILE WANT [options...]: replaying FILE must differ, reported as WANT.
differs() {
	f=$1 want=$2
	shift 2
	rc=0
	"$CAPF_REPLAY" run --server "127.0.0.1:$port" --cisco-server "127.0.0.1:$cport" \
		--ca "$capf_ca" --mic-dir "$corpus/mics" --lsc-dir "$tmp/lsc" "$@" "$f" \
		>"$tmp/out" 2>&1 || rc=$?
	[ $rc -eq 1 ] || { cat "$tmp/out"; fail "$f: exit status $rc, not 1"; }
	grep -qF -- "$want" "$tmp/out" || { cat "$tmp/out"; fail "$f: not reported as: $want"; }
}
same() {
	"$CAPF_REPLAY" run --server "127.0.0.1:$port" --cisco-server "127.0.0.1:$cport" \
		--ca "$capf_ca" --mic-dir "$corpus/mics" --lsc-dir "$tmp/lsc" "$1" >"$tmp/out" 2>&1 ||
		{ cat "$tmp/out"; fail "$1: differs"; }
}
# alter FILE TYPE SED: a copy of FILE with the line of its server message
# TYPE changed by the sed commands SED, into $tmp/altered.jsonl.
alter() {
	sed "/\"dir\":\"server\",\"type\":\"$2\"/ { $3 }" "$corpus/$1.jsonl" >"$tmp/altered.jsonl"
	cmp -s "$corpus/$1.jsonl" "$tmp/altered.jsonl" && fail "$1: $2 was not altered"
	:
}

# ---- Cisco: an element's value, in the middle of a session -------------------
ctl device add $D_C1 --auth mic --key ec-p256 >/dev/null || fail "device add"
# KEY_GENERATE_REQUEST {KEY_TYPE 1, CURVE 0}: recorded as CURVE 1 (P-384).
alter cisco-20-install-mic KEY_GENERATE_REQUEST 's/120001\(00\)"/12000101"/'
differs "$tmp/altered.jsonl" \
	"DIFFERS: message 2 (KEY_GENERATE_REQUEST): CURVE: recorded 1 (P-384), got 0 (P-256)"
grep -q "(line 1, $D_C1): DIFFERS" "$tmp/out" || { cat "$tmp/out"; fail "not the session's line"; }
# --json: the same difference, field by field; the phone stopped there
# (two messages exchanged), so the install is still pending.
differs "$tmp/altered.jsonl" '"result":"differs","messages":3,' --json
grep -qF '"index":2,"type":"KEY_GENERATE_REQUEST","field":"CURVE","recorded":"1 (P-384)","got":"0 (P-256)"' \
	"$tmp/out" || { cat "$tmp/out"; fail "--json: the difference"; }
json $D_C1
jhas '"op":"install"' "a replay that stopped at a difference completed the install"

# ---- Cisco: the last answer (END_SESSION's REASON) ---------------------------
alter cisco-20-install-mic END_SESSION 's/01000101"}$/01000107"}/'
differs "$tmp/altered.jsonl" \
	"DIFFERS: message 8 (END_SESSION): REASON: recorded 7 (failure), got 1 (success)"
# ---- Cisco: an element the server did not send --------------------------------
ctl device set $D_C1 --op install --auth mic --key ec-p256 >/dev/null || fail "device set"
alter cisco-20-install-mic AUTH_REQUEST \
	's/0008070001030800010\(0\)"/000c07000103080001000200010a"/; s/"len":16,/"len":20,/'
differs "$tmp/altered.jsonl" \
	"DIFFERS: message 0 (AUTH_REQUEST): elements: recorded VERSION,AUTH_TYPE,REASON_INFO, got VERSION,AUTH_TYPE"
# ---- Cisco: another command -------------------------------------------------------
# STORE_CERTIFICATE_REQUEST (9) recorded as DELETE_CERTIFICATE_REQUEST (13).
alter cisco-20-install-mic STORE_CERTIFICATE_REQUEST 's/"5509/"550d/'
differs "$tmp/altered.jsonl" \
	"DIFFERS: message 6 (STORE_CERTIFICATE_REQUEST): command: recorded DELETE_CERTIFICATE_REQUEST, got STORE_CERTIFICATE_REQUEST"

# ---- Cisco raw: the recorded session id is refused ---------------------------
ctl device set $D_C1 --op install --auth mic --key ec-p256 >/dev/null || fail "device set"
differs "$corpus/cisco-20-install-mic.jsonl" \
	"DIFFERS: message 2 (KEY_GENERATE_REQUEST): command: recorded KEY_GENERATE_REQUEST, got END_SESSION reason 7 (failure)" \
	--raw
grep -q "Cisco CAPF: wrong session id" "$tmp/capfd.log" || fail "no log line of the wrong session id"
json $D_C1
jhas '"op":"install"' "a raw replay changed the record"
same "$corpus/cisco-20-install-mic.jsonl"

# ---- native: an altered expectation, as for Cisco ----------------------------
ctl device add $D_MIC --auth mic >/dev/null || fail "device add"
# OperationRequest {version 2, op install, key_type 1}: recorded as key_type 2.
alter 01-install-mic OperationRequest 's/"payload":"1206080210011801"/"payload":"1206080210011802"/'
differs "$tmp/altered.jsonl" \
	"DIFFERS: message 1 (OperationRequest): key_type: recorded ec-p384, got ec-p256"
# End {code 0, text}: recorded with another text.
alter 01-install-mic End \
	's/"len":25,"payload":"3217[0-9a-f]*"}$/"len":23,"payload":"3215121363657274696669636174652072656675736564"}/'
differs "$tmp/altered.jsonl" \
	"DIFFERS: message 5 (End): text: recorded certificate refused, got certificate installed"

stop_capfd
echo "PASS"
