#!/bin/sh
# Transcripts: capf-phone enroll and cisco --record write the format of
# doc/transcript.md (a header with the TLS parameters and the channel
# binding, every message both ways in order, the outcome), sessions append
# to one file, capf-replay show prints them, and a transcript that is not
# one is refused with its line.
set -u
. "$top_srcdir/tests/integration/lib.sh"
: "${CAPF_REPLAY:=$(pwd)/capf-replay}"
[ -x "$CAPF_REPLAY" ] || fail "$CAPF_REPLAY is not built"

A=SEP00000000D001
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $A >/dev/null || fail "mkmic"
cat >"$tmp/c.conf" <<CONF
[cisco]
enabled = yes
port = 0
CONF
start_capfd -c "$tmp/c.conf"
cport=$(sed -n 's/^cisco_port=//p' "$tmp/ready")
tr="$tmp/t.jsonl"

ctl device add $A --auth mic >/dev/null || fail "device add"
enroll $A --record "$tr" >/dev/null 2>&1 || fail "enroll --record"
[ "$(wc -l <"$tr")" -eq 8 ] || { cat "$tr"; fail "not 8 lines (header, 6 messages, end)"; }
head -n 1 "$tr" | grep -q '^{"transcript":1,"kind":"session","protocol":"native","tool":"capf-phone enroll","device":"'$A'","server":"127.0.0.1:'$port'",' ||
	fail "header: $(head -n 1 "$tr")"
for f in '"client_cert":"mic"' '"client_cert_sha256":"[0-9a-f]\{64\}"' '"tls_version":"TLS1.3"' \
	'"tls_cipher":"TLS_AES_[0-9]*_GCM_SHA[0-9]*"' '"tls_group":"[A-Z0-9]*"' \
	'"server_cert_sha256":"[0-9a-f]\{64\}"' '"binding":"[0-9a-f]\{64\}"'; do
	head -n 1 "$tr" | grep -q "$f" || fail "header has no $f: $(head -n 1 "$tr")"
done
types=$(sed -n 's/.*"kind":"msg","i":\([0-9]*\),"t":[0-9.]*,"dir":"\([a-z]*\)","type":"\([A-Za-z]*\)".*/\1 \2 \3/p' "$tr" | tr '\n' ,)
[ "$types" = "0 phone Hello,1 server OperationRequest,2 phone CsrSubmit,3 server CertificateDelivery,4 phone StoreAck,5 server End," ] ||
	fail "messages: $types"
tail -n 1 "$tr" | grep -q '"kind":"end",.*"result":0,"result_name":"OK","server_code":0,"text":"certificate installed"' ||
	fail "end: $(tail -n 1 "$tr")"

# A refused session appends, with the server's code in its end line.
enroll $A --record "$tr" >/dev/null 2>&1 && fail "a second install without an operation succeeded"
[ "$(grep -c '"kind":"session"' "$tr")" -eq 2 ] || fail "the second session was not appended"
tail -n 1 "$tr" | grep -q '"result":-1007,"result_name":"CAPF_ENO_OPERATION","server_code":1007' ||
	fail "refused end: $(tail -n 1 "$tr")"

"$CAPF_REPLAY" show "$tr" >"$tmp/show" || fail "show"
grep -q "^session 1 ($tr line 1): native, capf-phone enroll, device $A$" "$tmp/show" ||
	{ cat "$tmp/show"; fail "show: session line"; }
grep -q "binding: [0-9a-f]* (this session's)" "$tmp/show" || fail "show: the CSR's binding"
grep -q "certificate: CN=$A" "$tmp/show" || fail "show: the LSC"
grep -q "code 1007 (CAPF_ENO_OPERATION)" "$tmp/show" || fail "show: the refusal"

# ---- Cisco: the same format, whole Cisco messages as payloads ------------------
ctl device set $A --op install --auth mic >/dev/null || fail "device set"
"$CAPF_PHONE" cisco --name $A --ca "$capf_ca" --port "$cport" --cert "$tmp/mfg/$A.pem" \
	--cert-key "$tmp/mfg/$A.key" --out-cert "$tmp/c.pem" --out-key "$tmp/c.key" \
	--record "$tmp/c.jsonl" >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "cisco --record"; }
head -n 1 "$tmp/c.jsonl" | grep -q '"protocol":"cisco","tool":"capf-phone cisco"' ||
	fail "cisco header: $(head -n 1 "$tmp/c.jsonl")"
grep -q '"dir":"server","type":"AUTH_REQUEST","len":[0-9]*,"payload":"55' "$tmp/c.jsonl" ||
	fail "cisco: no AUTH_REQUEST from the server"
grep -q '"dir":"phone","type":"KEY_GENERATE_RESPONSE"' "$tmp/c.jsonl" ||
	fail "cisco: no KEY_GENERATE_RESPONSE"
tail -n 1 "$tmp/c.jsonl" | grep -q '"kind":"end",.*"result":0,' || fail "cisco end"
"$CAPF_REPLAY" show "$tmp/c.jsonl" >"$tmp/show" || fail "show: cisco"
# Element by element, in the order sent: the phone's name, certificate and
# signature (checked), the key asked for and the key sent, the LSC.
for l in "^      VERSION 3\$" "^      AUTH_TYPE 0 (none)\$" "^      DEVICE_NAME \"$A\"\$" \
	"^      PASSWORD none\$" "^      CERTIFICATE_TYPE 2 (MIC)\$" "^      CERTIFICATE: CN=$A\$" \
	"^        issuer: CN=capf test manufacturer CA\$" \
	"^      SHA2_SIGNED_DATA: hash 3 (SHA-512), [0-9]* bytes: verifies over the name and the certificate\$" \
	"^      KEY_TYPE 1 (EC)\$" "^      CURVE 0 (P-256)\$" "^      PUBLIC_KEY ec-SECP256R1 key\$" \
	"^      CERTIFICATE_TYPE 1 (LSC)\$" "^      REASON 1 (success)\$" \
	"^  end  *+[0-9.]* result 0 (OK), server code 1\$"; do
	grep -q "$l" "$tmp/show" || { cat "$tmp/show"; fail "show: cisco: no line $l"; }
done
[ "$(grep -c "^      session id [0-9a-f]\{8\}\$" "$tmp/show")" -eq 7 ] ||
	{ cat "$tmp/show"; fail "show: cisco: not 7 messages of the session's id"; }
# Replayed as the phone: the install is done, so the server says so where it
# asked for a key then.
rc=0
"$CAPF_REPLAY" run "$tmp/c.jsonl" --server "127.0.0.1:$port" --cisco-server "127.0.0.1:$cport" \
	--ca "$capf_ca" --mic-dir "$tmp/mfg" >"$tmp/out" 2>&1 || rc=$?
[ $rc -eq 1 ] && grep -q "DIFFERS: message 2 (KEY_GENERATE_REQUEST): command: recorded KEY_GENERATE_REQUEST, got END_SESSION reason 0 (no action)" "$tmp/out" ||
	{ cat "$tmp/out"; fail "run of a cisco session done: status $rc"; }
ctl device set $A --op install --auth mic >/dev/null || fail "device set"
"$CAPF_REPLAY" run "$tmp/c.jsonl" --server "127.0.0.1:$port" --cisco-server "127.0.0.1:$cport" \
	--ca "$capf_ca" --mic-dir "$tmp/mfg" >"$tmp/out" 2>&1 ||
	{ cat "$tmp/out"; fail "run of a cisco session pending again"; }

# ---- capf-phone load --transcripts DIR: one file per phone ------------------------
mkdir "$tmp/tr"
"$CAPF_PHONE" load --count 4 --concurrency 2 --mfg-dir "$tmp/mfg" --ca "$capf_ca" \
	--socket "$sock" --host 127.0.0.1 --port "$port" --prefix SEPLOADT --timeout 30 \
	--transcripts "$tmp/tr" >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "load --transcripts"; }
[ "$(ls "$tmp/tr" | wc -l)" -eq 4 ] || { ls "$tmp/tr"; fail "load: not 4 transcripts"; }
for f in "$tmp"/tr/*.jsonl; do
	head -n 1 "$f" | grep -q '"tool":"capf-phone load","device":"SEPLOADT' || fail "$f: header"
	tail -n 1 "$f" | grep -q '"kind":"end",.*"result":0,' || fail "$f: not a whole session"
done
"$CAPF_REPLAY" show "$tmp"/tr/*.jsonl >/dev/null || fail "show of the load transcripts"

# ---- what is not a transcript -----------------------------------------------
printf '%s\n' '{"transcript":1,"kind":"msg","i":0}' >"$tmp/bad.jsonl"
rc=0
"$CAPF_REPLAY" show "$tmp/bad.jsonl" >"$tmp/out" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q "bad.jsonl: line 1: a record before any session header" "$tmp/out" ||
	{ cat "$tmp/out"; fail "a bad transcript: status $rc"; }
head -n 3 "$tr" >"$tmp/cut.jsonl"
sed -n 5p "$tr" >>"$tmp/cut.jsonl"
"$CAPF_REPLAY" show "$tmp/cut.jsonl" >"$tmp/out" 2>&1 && fail "a message missing in the middle"
grep -q "line 4: message index out of sequence" "$tmp/out" || { cat "$tmp/out"; fail "gap"; }

stop_capfd
echo "PASS"
