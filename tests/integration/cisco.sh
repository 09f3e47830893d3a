#!/bin/sh
# Cisco CAPF v3 on its own listener, driven by capf-phone enroll --protocol cisco: every
# operation and authentication mode through the same core as the native
# protocol, the key policy (RSA and EC), and the refusals of malformed or
# hostile sessions, each with its END_SESSION reason and the store left as
# it was.
set -u
. "$(dirname "$0")/lib.sh"

command -v certtool >/dev/null || { echo "SKIP: certtool (gnutls-bin) not installed"; exit 77; }
command -v openssl >/dev/null || { echo "SKIP: openssl not installed"; exit 77; }

A=SEP00C15C000001
B=SEP00C15C000002
S=SEP00C15C000003
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $A $B $S >/dev/null || fail "mkmic"
cat >"$tmp/c.conf" <<EOF
[cisco]
enabled = yes
port = 0
max_in_progress = 3
[auth]
max_failures = 2
lockout = 2
EOF
start_capfd -c "$tmp/c.conf"
cport=$(sed -n 's/^cisco_port=//p' "$tmp/ready")
[ -n "$cport" ] || fail "no cisco_port in the ready file"
grep -q "Cisco CAPF v3 on 127.0.0.1 port $cport" "$tmp/capfd.log" || fail "no listener log line"

# cisco NAME [options...]: one session; output in $tmp/out, status in rc.
cisco() {
	n=$1
	shift
	rc=0
	"$CAPF_PHONE" enroll --protocol cisco --name "$n" --ca "$capf_ca" --port "$cport" \
		--out-cert "$tmp/$n.lsc.pem" --out-key "$tmp/$n.lsc.key" "$@" >"$tmp/out" 2>&1 || rc=$?
}
mic() {
	echo "--mic $tmp/mfg/$1.pem --mic-key $tmp/mfg/$1.key"
}
reason() {
	grep -q "^end: reason $1" "$tmp/out" || { cat "$tmp/out"; fail "$2: expected reason $1"; }
}
state() {
	ctl --json device show "$1" >"$tmp/show.json" || fail "device show $1"
}
certs_count() {
	ctl device show "$1" | sed -n 's/^certificates: *//p'
}
verify() {
	certtool --verify --load-ca-certificate "$capf_ca" --infile "$1" >"$tmp/verify" 2>&1 ||
		{ cat "$tmp/verify"; fail "certtool --verify $1"; }
	openssl verify -CAfile "$capf_ca" "$1" >/dev/null 2>&1 || fail "openssl verify $1"
}

# ---- refusals first: each changes nothing --------------------------------
cisco SEPNOSUCHDEVICE $(mic $A)
reason 9 "unknown device"
ctl device add $A --op none --auth mic >/dev/null || fail "device add $A"
cisco $A $(mic $A)
reason 0 "nothing scheduled"
ctl device set $A --op install --auth mic --key ec-p256 >/dev/null || fail "device set $A"
cisco $A $(mic $B)
reason 7 "the MIC of another device"
grep -q "device \"$A\": .*CAPF_EIDENTITY" "$tmp/capfd.log" || fail "no identity log line"
cisco $A $(mic $A) --bad-signature
reason 7 "a signature that does not verify"
cisco $A
reason 7 "no certificate at all"
cisco $A $(mic $A) --bad-session-id
reason 7 "wrong session id"
grep -q "Cisco CAPF: wrong session id" "$tmp/capfd.log" || fail "no session id log line"
cisco $A $(mic $A) --name-without-nul
reason 7 "a name without NUL"
grep -q "DEVICE_NAME not a NUL-terminated name" "$tmp/capfd.log" || fail "no name log line"
cisco $A $(mic $A) --wrong-key rsa-2048
reason 7 "a key of the wrong type"
cisco $A $(mic $A) --in-progress 4
reason 7 "REQUEST_IN_PROGRESS without end"
grep -q "too many REQUEST_IN_PROGRESS" "$tmp/capfd.log" || fail "no in-progress log line"
cisco $A $(mic $A) --malform header
reason 7 "a bad header byte"
grep -q "Cisco CAPF: bad header byte" "$tmp/capfd.log" || fail "no header log line"
cisco $A $(mic $A) --malform element
reason 7 "an element longer than the body"
grep -q "Cisco CAPF: element length beyond the body" "$tmp/capfd.log" || fail "no element log line"
cisco $A $(mic $A) --malform no-name
reason 7 "no DEVICE_NAME"
grep -q "Cisco CAPF: AUTH_RESPONSE without DEVICE_NAME" "$tmp/capfd.log" || fail "no DEVICE_NAME log line"
cisco $A $(mic $A) --malform body
grep -q "^closed inside the message" "$tmp/out" || { cat "$tmp/out"; fail "the phone did not hang up"; }
i=0
until grep -q "Cisco CAPF: closed inside a message" "$tmp/capfd.log"; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "no log line for a body longer than the message"
	sleep 0.05
done
[ "$(certs_count $A)" = 0 ] || fail "a refusal issued a certificate"
state $A
grep -q '"status":"pending"' "$tmp/show.json" || fail "a refusal changed the status"

# ---- install by MIC (EC P-256), split across records, SHA-1 signed -------
cisco $A $(mic $A) --split --sha1 --in-progress 2
reason 1 "install by MIC"
[ "$rc" -eq 0 ] || fail "install by MIC: exit $rc"
verify "$tmp/$A.lsc.pem"
certtool -i --infile "$tmp/$A.lsc.pem" | grep -q "Subject: CN=$A\$" || fail "LSC subject"
certtool -i --infile "$tmp/$A.lsc.pem" | grep -q "SECP256R1" || fail "LSC key not P-256"
state $A
grep -q '"status":"success"' "$tmp/show.json" || fail "install not recorded as success"
grep -q '"op":"none"' "$tmp/show.json" || fail "install left the operation pending"
[ "$(certs_count $A)" = 1 ] || fail "one install, not one certificate"

# ---- upgrade by LSC, to RSA 2048; then by LSC the superseded one fails ---
cp "$tmp/$A.lsc.pem" "$tmp/$A.old.pem"
cp "$tmp/$A.lsc.key" "$tmp/$A.old.key"
ctl device set $A --op install --auth lsc-or-mic --key rsa-2048 >/dev/null || fail "set rsa"
cisco $A --cert "$tmp/$A.old.pem" --cert-key "$tmp/$A.old.key"
reason 1 "upgrade by LSC"
verify "$tmp/$A.lsc.pem"
certtool -i --infile "$tmp/$A.lsc.pem" | grep -q "Subject Public Key Algorithm: RSA" ||
	fail "upgraded LSC is not RSA"
[ "$(certs_count $A)" = 2 ] || fail "the upgrade did not add a certificate"
ctl device show $A | grep -q "past .* revoked .*superseded" || fail "old LSC not superseded"
ctl device set $A --op install --auth lsc-or-mic --key ec-p384 >/dev/null || fail "set p384"
cisco $A --cert "$tmp/$A.old.pem" --cert-key "$tmp/$A.old.key"
reason 7 "a superseded LSC"
grep -q "device \"$A\": .*CAPF_EREVOKED" "$tmp/capfd.log" || fail "no revoked log line"
# Nothing scheduled: the phone is authenticated first (a failure is 7),
# and only then told there is nothing to do (0).
ctl device set $A --op none >/dev/null || fail "set none"
cisco $A --cert "$tmp/$A.old.pem" --cert-key "$tmp/$A.old.key"
reason 7 "a superseded LSC, nothing scheduled"
cisco $A $(mic $B)
reason 7 "another device's MIC, nothing scheduled"
cisco $A --cert "$tmp/$A.lsc.pem" --cert-key "$tmp/$A.lsc.key"
reason 0 "the current LSC, nothing scheduled"
ctl device set $A --op install --auth lsc-or-mic --key ec-p384 >/dev/null || fail "set p384 again"

# ---- by the SUDI alone (the manufacturer identity over this session) -----
ctl device add $B --op install --auth mic --key ec-p256 >/dev/null || fail "device add $B"
cisco $B --sudi "$tmp/mfg/$A.pem" --sudi-key "$tmp/mfg/$A.key"
reason 7 "another device's SUDI"
cisco $B --sudi "$tmp/mfg/$B.pem" --sudi-key "$tmp/mfg/$B.key"
reason 1 "install by SUDI"
verify "$tmp/$B.lsc.pem"

# ---- EC P-384 by the current LSC; fetch; delete (refused, then done) -----
cisco $A --cert "$tmp/$A.lsc.pem" --cert-key "$tmp/$A.lsc.key"
reason 1 "P-384 by the current LSC"
certtool -i --infile "$tmp/$A.lsc.pem" | grep -q "SECP384R1" || fail "LSC key not P-384"
ctl device set $A --op fetch --auth mic >/dev/null || fail "set fetch"
cisco $A $(mic $A) --report "$tmp/$A.lsc.pem"
reason 0 "fetch"
state $A
grep -q '"op":"none"' "$tmp/show.json" || fail "fetch left the operation pending"
grep -q "device \"$A\": certificates reported" "$tmp/capfd.log" || fail "fetch not logged"
ctl device show $A | grep -qi "fetched\|reported" || fail "fetch report not shown"
ctl device set $A --op delete --auth mic >/dev/null || fail "set delete"
cisco $A $(mic $A) --refuse-delete
reason 7 "a refused delete"
state $A
grep -q '"op":"delete"' "$tmp/show.json" || fail "a refused delete was recorded"
cisco $A $(mic $A)
reason 1 "delete"
ctl device show $A | grep -q "cessationOfOperation\|cessation" || fail "deleted LSC not revoked"
state $A
grep -q '"op":"none"' "$tmp/show.json" || fail "delete left the operation pending"

# ---- by authentication string, with the lockout --------------------------
ctl device add $S --op install --auth string --auth-string 135791 --key ec-p256 >/dev/null ||
	fail "device add $S"
cisco $S --auth-string 000000
reason 7 "a wrong string"
cisco $S --auth-string 000000
reason 7 "a second wrong string"
cisco $S --auth-string 135791
reason 7 "the right string while locked out"
grep -q "device \"$S\": .*CAPF_ELOCKOUT" "$tmp/capfd.log" || fail "no lockout log line"
sleep 2.2
cisco $S --auth-string 135791
reason 1 "the right string after the lockout"
verify "$tmp/$S.lsc.pem"

# ---- a removed device is unknown (reason 9), its LSC revoked ------------
ctl device del $B >/dev/null || fail "device del $B"
cisco $B $(mic $B)
reason 9 "a removed device"

stop_capfd
echo "PASS: Cisco CAPF v3 through the same core: operations, modes, keys, refusals"
exit 0
