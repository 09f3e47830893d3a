#!/bin/sh
# Install and upgrade for every key type: a first LSC by MIC, then an
# upgrade by that LSC alone (lsc-or-mic), for RSA 2048/3072/4096 and EC
# P-256/P-384 (P-521: ops_p521.sh); key orders against the keys a phone says it can make;
# a CSR of another key type or size; a version 1 phone; per-device
# validity. Every LSC verifies against the trust bundle (certtool and
# openssl) and the store says what the phone got.
set -u
. "$(dirname "$0")/lib.sh"

command -v certtool >/dev/null || { echo "SKIP: certtool (gnutls-bin) not installed"; exit 77; }
command -v openssl >/dev/null || { echo "SKIP: openssl not installed"; exit 77; }

keys="rsa-2048 rsa-3072 rsa-4096 ec-p256 ec-p384"
# The upgrade of each device makes the next key of the list.
next_key() {
	case $1 in
	rsa-2048) echo rsa-3072 ;; rsa-3072) echo rsa-4096 ;; rsa-4096) echo ec-p256 ;;
	ec-p256) echo ec-p384 ;; ec-p384) echo rsa-2048 ;;
	esac
}
# key_of FILE: the key of a certificate, as capf names it.
key_of() {
	openssl x509 -in "$1" -noout -text >"$tmp/text" 2>&1
	if grep -q "Public-Key: (2048 bit)" "$tmp/text" && grep -q rsaEncryption "$tmp/text"; then
		echo rsa-2048
	elif grep -q "Public-Key: (3072 bit)" "$tmp/text"; then echo rsa-3072
	elif grep -q "Public-Key: (4096 bit)" "$tmp/text"; then echo rsa-4096
	elif grep -q "prime256v1" "$tmp/text"; then echo ec-p256
	elif grep -q "secp384r1" "$tmp/text"; then echo ec-p384
	elif grep -q "secp521r1" "$tmp/text"; then echo ec-p521
	else echo unknown; fi
}
dev_of() { echo "SEP00000000D0$1"; }

devs=""
n=0
for k in $keys; do
	n=$((n + 1))
	devs="$devs $(dev_of $n)"
done
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $devs SEP00000000D0A1 SEP00000000D0A2 SEP00000000D0A3 \
	SEP00000000D0A4 SEP00000000D0A5 >/dev/null || fail "mkmic"
start_capfd
bundle

n=0
for k in $keys; do
	n=$((n + 1))
	d=$(dev_of $n)
	ctl device add "$d" --op install --auth mic --key "$k" >/dev/null || fail "device add $d"

	# 1. Install by MIC.
	enroll "$d" >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$d: install $k by MIC"; }
	lsc="$tmp/$d.lsc.pem"
	verify_lsc "$lsc"
	[ "$(key_of "$lsc")" = "$k" ] || fail "$d: asked for $k, got $(key_of "$lsc")"
	s1=$(lsc_serial "$lsc")
	json "$d"
	jhas '"op":"none"' "$d: operation not cleared after install"
	jhas '"status":"success"' "$d: status after install"
	jhas "\"lsc_serial\":\"$s1\"" "$d: the store does not have the LSC the phone got"
	ctl cert show "$s1" >"$tmp/cert" || fail "$d: cert show $s1"
	grep -q "^device: *$d$" "$tmp/cert" || { cat "$tmp/cert"; fail "$d: cert show device"; }
	grep -q "^state: *active$" "$tmp/cert" || { cat "$tmp/cert"; fail "$d: cert not active"; }
	cp "$lsc" "$tmp/$d.first.pem"
	cp "$tmp/$d.lsc.key" "$tmp/$d.first.key"

	# 2. Upgrade by that LSC alone: no MIC is presented at all.
	k2=$(next_key "$k")
	ctl device set "$d" --op install --auth lsc-or-mic --key "$k2" >/dev/null ||
		fail "$d: device set upgrade"
	phone "$d" --lsc "$tmp/$d.first.pem" --lsc-key "$tmp/$d.first.key" >"$tmp/out" 2>&1 ||
		{ cat "$tmp/out"; fail "$d: upgrade to $k2 by LSC"; }
	verify_lsc "$lsc"
	[ "$(key_of "$lsc")" = "$k2" ] || fail "$d: upgrade asked for $k2, got $(key_of "$lsc")"
	s2=$(lsc_serial "$lsc")
	[ "$s1" != "$s2" ] || fail "$d: the upgrade kept the serial"
	json "$d"
	jhas "\"lsc_serial\":\"$s2\"" "$d: the store does not have the upgraded LSC"
	jhas "\"role\":\"past\",\"serial\":\"$s1\",\"state\":\"revoked\"" "$d: first LSC not revoked"
	jhas '"reason":"superseded"' "$d: first LSC not superseded"
	# The superseded LSC no longer authenticates, even for the same device.
	ctl device set "$d" --op install --auth lsc-or-mic >/dev/null || fail "$d: device set"
	refused 1026 phone "$d" --lsc "$tmp/$d.first.pem" --lsc-key "$tmp/$d.first.key" \
		--out-cert "$tmp/x.pem" --out-key "$tmp/x.key"
	ctl device set "$d" --op none >/dev/null || fail "$d: device set --op none"
done

# Key orders: the server picks among the keys the phone can make.
d=SEP00000000D0A1
ctl device add $d --key-order ec-preferred --ec-key ec-p384 --rsa-key rsa-2048 >/dev/null ||
	fail "device add $d"
json $d
jhas '"key_order":"ec-preferred","ec_key":"ec-p384"' "$d: key order not recorded"
jhas '"key":"rsa-2048"' "$d: RSA key of the order not recorded"
enroll $d --supported-keys rsa-2048,rsa-3072 >"$tmp/out" 2>&1 ||
	{ cat "$tmp/out"; fail "$d: ec-preferred, RSA-only phone"; }
[ "$(key_of "$tmp/$d.lsc.pem")" = rsa-2048 ] || fail "$d: ec-preferred without EC: not RSA 2048"
ctl device set $d --op install >/dev/null || fail "device set $d"
enroll $d --supported-keys rsa-2048,ec-p384 >"$tmp/out" 2>&1 ||
	{ cat "$tmp/out"; fail "$d: ec-preferred, EC phone"; }
[ "$(key_of "$tmp/$d.lsc.pem")" = ec-p384 ] || fail "$d: ec-preferred with EC: not P-384"
verify_lsc "$tmp/$d.lsc.pem"

d=SEP00000000D0A2
ctl device add $d --key-order ec-only --ec-key ec-p384 >/dev/null || fail "device add $d"
refused 1014 enroll $d --supported-keys rsa-2048
json $d
jhas '"op":"install"' "$d: a refused key order cleared the operation"
jhas '"lsc_serial":null' "$d: an LSC after a refusal"
enroll $d --supported-keys ec-p384 >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$d: ec-only P-384"; }
[ "$(key_of "$tmp/$d.lsc.pem")" = ec-p384 ] || fail "$d: ec-only: not P-384"
ctl device set $d --op install --key-order rsa-only --rsa-key rsa-3072 >/dev/null ||
	fail "device set $d rsa-only"
# A CSR of another type or size than asked for is refused, store unchanged.
refused 1014 enroll $d --key ec-p256
refused 1014 enroll $d --key rsa-2048
json $d
jhas '"key_order":"rsa-only"' "$d: rsa-only not recorded"
jhas '"status":"pending"' "$d: a wrong key changed the status"
enroll $d >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$d: rsa-only 3072"; }
[ "$(key_of "$tmp/$d.lsc.pem")" = rsa-3072 ] || fail "$d: rsa-only: not RSA 3072"

# A version 1 phone installs as before; per-device validity.
d=SEP00000000D0A3
ctl device add $d --lsc-days 10 >/dev/null || fail "device add $d"
enroll $d --protocol-version 1 >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$d: version 1 install"; }
verify_lsc "$tmp/$d.lsc.pem"
nb=$(date -d "$(openssl x509 -in "$tmp/$d.lsc.pem" -noout -startdate | cut -d= -f2)" +%s)
na=$(date -d "$(openssl x509 -in "$tmp/$d.lsc.pem" -noout -enddate | cut -d= -f2)" +%s)
[ $((na - nb)) -ge $((10 * 86400)) ] && [ $((na - nb)) -le $((10 * 86400 + 400)) ] ||
	fail "$d: --lsc-days 10 gave $((na - nb)) s"
json $d
jhas '"lsc_days":10' "$d: lsc_days not recorded"
# device set keeps what it is not told to change.
ctl device set $d --op install >/dev/null || fail "device set $d"
json $d
jhas '"lsc_days":10' "$d: device set lost lsc_days"

stop_capfd
echo "PASS: install by MIC and upgrade by LSC for five key types, key orders, wrong keys, version 1"
exit 0
