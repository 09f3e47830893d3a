#!/bin/sh
# EC P-521 LSCs: install by MIC, upgrade by LSC, and the ec-only key order
# with P-521, each verified against the trust bundle.
set -u
. "$(dirname "$0")/lib.sh"

command -v certtool >/dev/null || { echo "SKIP: certtool (gnutls-bin) not installed"; exit 77; }
command -v openssl >/dev/null || { echo "SKIP: openssl not installed"; exit 77; }

d=SEP00000000F521
e=SEP00000000F522
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $d $e >/dev/null || fail "mkmic"
start_capfd
bundle
curve() { openssl x509 -in "$1" -noout -text | grep -q "secp521r1" || fail "$1: not P-521"; }

ctl device add $d --key ec-p521 >/dev/null || fail "device add $d"
enroll $d >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$d: install P-521 by MIC"; }
verify_lsc "$tmp/$d.lsc.pem"
curve "$tmp/$d.lsc.pem"
cp "$tmp/$d.lsc.pem" "$tmp/first.pem"
cp "$tmp/$d.lsc.key" "$tmp/first.key"
ctl device set $d --op install --auth lsc-or-mic >/dev/null || fail "device set $d"
phone $d --lsc "$tmp/first.pem" --lsc-key "$tmp/first.key" >"$tmp/out" 2>&1 ||
	{ cat "$tmp/out"; fail "$d: upgrade P-521 by LSC"; }
verify_lsc "$tmp/$d.lsc.pem"
curve "$tmp/$d.lsc.pem"

ctl device add $e --key-order ec-only --ec-key ec-p521 >/dev/null || fail "device add $e"
enroll $e --supported-keys ec-p521,rsa-2048 >"$tmp/out" 2>&1 ||
	{ cat "$tmp/out"; fail "$e: ec-only P-521"; }
curve "$tmp/$e.lsc.pem"
json $e
jhas '"status":"success"' "$e: status"
stop_capfd
echo "PASS: P-521 install, upgrade and key order"
exit 0
