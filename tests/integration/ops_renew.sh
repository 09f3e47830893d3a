#!/bin/sh
# The renewal window and expired LSCs. LSCs are clamped to the validity
# of the CAPF CA, so a CAPF CA signed by an enterprise root for 25
# minutes issues LSCs that are, from the start, inside a 99 % renewal
# window: a phone presenting such a current LSC with nothing scheduled is
# re-keyed; a year-long LSC, a MIC, or the window switched off get "nothing
# to do". Then a CAPF CA valid for a few seconds: its LSC, once expired,
# authenticates nothing.
set -u
. "$(dirname "$0")/lib.sh"

command -v certtool >/dev/null || { echo "SKIP: certtool (gnutls-bin) not installed"; exit 77; }
command -v openssl >/dev/null || { echo "SKIP: openssl not installed"; exit 77; }

cat >"$tmp/renew.conf" <<'CONF'
[ca]
renew_window = 99
CONF
cat >"$tmp/off.conf" <<'CONF'
[ca]
renew_window = 0
CONF
Y=SEP00000000B001 # a year-long LSC
R=SEP00000000B002 # a short LSC, renewed
X=SEP00000000B003 # an LSC that expires
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $Y $R $X >/dev/null || fail "mkmic"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/root.key" \
	-out "$tmp/root.pem" -days 30 -subj "/O=Example/CN=Example Root CA" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	>/dev/null 2>&1 || fail "enterprise root"

# enterprise_ca SERIAL SECONDS: a new CAPF CA, signed by the root, valid for
# SECONDS from now, imported; the phones' trust becomes the bundle.
enterprise_ca() {
	ctl ca csr --out "$tmp/capf.csr" --subject "CN=CAPF $1,O=Example" >/dev/null 2>&1 ||
		fail "ca csr"
	cat >"$tmp/tpl" <<TPL
serial = $1
activation_date = "$(date -u -d @$(($(date +%s) - 600)) '+%Y-%m-%d %H:%M:%S')"
expiration_date = "$(date -u -d @$(($(date +%s) + $2)) '+%Y-%m-%d %H:%M:%S')"
ca
cert_signing_key
crl_signing_key
signing_key
path_len = 0
TPL
	certtool --generate-certificate --load-request "$tmp/capf.csr" \
		--load-ca-certificate "$tmp/root.pem" --load-ca-privkey "$tmp/root.key" \
		--template "$tmp/tpl" --outfile "$tmp/capf.pem" >"$tmp/certtool.log" 2>&1 ||
		{ cat "$tmp/certtool.log"; fail "certtool --generate-certificate"; }
	ctl ca import "$tmp/capf.pem" >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "ca import"; }
	bundle
	capf_ca="$tmp/bundle.pem"
}
life() {
	nb=$(date -d "$(openssl x509 -in "$1" -noout -startdate | cut -d= -f2)" +%s)
	na=$(date -d "$(openssl x509 -in "$1" -noout -enddate | cut -d= -f2)" +%s)
	echo $((na - nb))
}

start_capfd -c "$tmp/renew.conf"
ctl device add $Y $R $X >/dev/null || fail "device add"
enroll $Y >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$Y: install"; }
ctl trust add --chain "$tmp/root.pem" >/dev/null || fail "trust add --chain"
enterprise_ca 0x3003 1500

enroll $R >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$R: install"; }
verify_lsc "$tmp/$R.lsc.pem"
[ "$(life "$tmp/$R.lsc.pem")" -le 2400 ] || fail "$R: the LSC is not clamped to the CAPF CA"
cp "$tmp/$R.lsc.pem" "$tmp/R1.pem"
cp "$tmp/$R.lsc.key" "$tmp/R1.key"
s1=$(lsc_serial "$tmp/R1.pem")
json $R
jhas '"op":"none"' "$R: operation after install"

# Nothing scheduled, the current LSC inside the window: a new LSC.
phone $R --lsc "$tmp/R1.pem" --lsc-key "$tmp/R1.key" >"$tmp/out" 2>&1 ||
	{ cat "$tmp/out"; fail "$R: renewal by LSC"; }
grep -q "^operation: *install$" "$tmp/out" || { cat "$tmp/out"; fail "$R: not an install"; }
verify_lsc "$tmp/$R.lsc.pem"
s2=$(lsc_serial "$tmp/$R.lsc.pem")
[ "$s1" != "$s2" ] || fail "$R: the renewal kept the serial"
json $R
jhas "\"lsc_serial\":\"$s2\"" "$R: the renewed LSC is not current"
jhas '"op":"none"' "$R: the renewal scheduled something"
jhas "\"serial\":\"$s1\",\"state\":\"revoked\"" "$R: the renewed LSC was not superseded"
# The MIC does not renew; a year-long LSC is not in the window.
out=$(enroll $R --out-cert "$tmp/x.pem" --out-key "$tmp/x.key" 2>&1) && fail "$R: renewal by MIC"
echo "$out" | grep -q " 1007 (CAPF_ENO_OPERATION)" || fail "$R: MIC: $out"
out=$(phone $Y --lsc "$tmp/$Y.lsc.pem" --lsc-key "$tmp/$Y.lsc.key" --out-cert "$tmp/x.pem" \
	--out-key "$tmp/x.key" 2>&1) && fail "$Y: a fresh year-long LSC was renewed"
echo "$out" | grep -q " 1007 (CAPF_ENO_OPERATION)" || fail "$Y: $out"
[ ! -e "$tmp/x.pem" ] || fail "an LSC outside the window"

# The window off: the same short LSC gets nothing.
stop_capfd
start_capfd -c "$tmp/off.conf"
out=$(phone $R --lsc "$tmp/$R.lsc.pem" --lsc-key "$tmp/$R.lsc.key" --out-cert "$tmp/x.pem" \
	--out-key "$tmp/x.key" 2>&1) && fail "$R: renewed with renew_window = 0"
echo "$out" | grep -q " 1007 (CAPF_ENO_OPERATION)" || fail "$R: window off: $out"

# An expired LSC: issued by a CAPF CA that expires 8 seconds from now,
# which a self-signed CA then replaces.
enterprise_ca 0x3004 8
enroll $X >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$X: install"; }
[ "$(life "$tmp/$X.lsc.pem")" -le 320 ] || fail "$X: the LSC outlives its CA"
ctl ca rollover >/dev/null 2>&1 || fail "ca rollover"
bundle
cat "$tmp/bundle.pem" "$tmp/root.pem" >"$tmp/trust.pem"
capf_ca="$tmp/trust.pem"
ctl device set $X --op fetch --auth lsc-or-mic >/dev/null || fail "$X: device set"
na=$(date -d "$(openssl x509 -in "$tmp/$X.lsc.pem" -noout -enddate | cut -d= -f2)" +%s)
while [ "$(date +%s)" -le "$na" ]; do sleep 0.5; done
sleep 1
rc=0
out=$(phone $X --lsc "$tmp/$X.lsc.pem" --lsc-key "$tmp/$X.lsc.key" 2>&1) || rc=$?
[ $rc -eq 1 ] || fail "$X: an expired LSC: status $rc: $out"
echo "$X: expired LSC: $out"
echo "$out" | grep -q " 1015 (CAPF_EEXPIRED)\| 1009 (CAPF_EUNTRUSTED)" || fail "$X: expired: $out"
json $X
jhas '"op":"fetch"' "$X: an expired LSC completed the fetch"
jhas '"fetched":\[\]' "$X: an expired LSC reported certificates"
stop_capfd
echo "PASS: the renewal window renews by a current LSC only; expired LSCs do not authenticate"
exit 0
