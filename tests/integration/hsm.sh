#!/bin/sh
# The CAPF CA key in a PKCS#11 token (SoftHSM2, through p11-kit): capfd
# makes its CA with the token key ([ca] key = pkcs11:...), issues LSCs and
# CRLs with it, and the key never leaves the token: it is sensitive and
# never extractable, and no private key is written to the state
# directory. A rollover to a second token key works the same way.
set -u
. "$(dirname "$0")/lib.sh"

for t in softhsm2-util p11tool certtool openssl; do
	command -v $t >/dev/null || { echo "SKIP: $t not installed (tools/setup installs it)"; exit 77; }
done

# A token of our own, in a temporary directory.
mkdir -p "$tmp/tokens"
cat >"$tmp/softhsm2.conf" <<CONF
directories.tokendir = $tmp/tokens
objectstore.backend = file
log.level = ERROR
CONF
SOFTHSM2_CONF="$tmp/softhsm2.conf"
export SOFTHSM2_CONF
softhsm2-util --init-token --free --label capf-test --pin 4321 --so-pin 87654321 \
	>"$tmp/softhsm.log" 2>&1 || { cat "$tmp/softhsm.log"; fail "softhsm2-util --init-token"; }
token="pkcs11:token=capf-test"
p11tool --list-tokens 2>/dev/null | grep -q "token=capf-test" ||
	{ echo "SKIP: GnuTLS does not see the SoftHSM2 token (p11-kit module not registered)"; exit 77; }
GNUTLS_PIN=4321
export GNUTLS_PIN
p11tool --login --generate-privkey ecdsa --curve secp256r1 --label capf-ca \
	"$token" >"$tmp/genkey.log" 2>&1 || { cat "$tmp/genkey.log"; fail "p11tool --generate-privkey"; }
unset GNUTLS_PIN
key_uri="$token;object=capf-ca;type=private;pin-value=4321"

"$CAPF_PHONE" mkmic --dir "$tmp/mfg" SEP00000000C001 SEP00000000C002 SEP00000000C003 \
	>/dev/null || fail "mkmic"
cat >"$tmp/capfd.conf" <<CONF
[ca]
key = $key_uri
subject = CN=CAPF HSM CA,O=capf test
CONF
start_capfd -c "$tmp/capfd.conf"

# The CA uses the token key: its certificate holds the token's public key.
GNUTLS_PIN=4321 p11tool --login --export-pubkey "$token;object=capf-ca;type=private" \
	--outfile "$tmp/token-pub.pem" >"$tmp/export.log" 2>&1 ||
	{ cat "$tmp/export.log"; fail "p11tool --export-pubkey"; }
[ "$(openssl x509 -in "$capf_ca" -noout -pubkey)" = "$(openssl pkey -pubin -in "$tmp/token-pub.pem")" ] ||
	fail "the CA certificate does not hold the token's key"
ctl ca status >"$tmp/status" || fail "ca status"
grep -q "key:          ec-p256 (pkcs11)" "$tmp/status" || { cat "$tmp/status"; fail "status: key store"; }

# Phones enroll; every LSC verifies against the CA.
for d in SEP00000000C001 SEP00000000C002; do
	ctl device add $d >/dev/null || fail "device add $d"
	enroll $d >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "enroll $d"; }
	cat "$tmp/$d.lsc.pem" "$capf_ca" >"$tmp/chain.pem"
	certtool --verify-chain --infile "$tmp/chain.pem" >"$tmp/v" 2>&1 ||
		{ cat "$tmp/v"; fail "$d: certtool --verify-chain"; }
	openssl verify -CAfile "$capf_ca" -purpose sslclient "$tmp/$d.lsc.pem" >/dev/null 2>&1 ||
		fail "$d: openssl verify"
done
# The CRL is signed in the token too.
ctl crl --out "$tmp/crl.der" || fail "crl"
openssl crl -inform DER -in "$tmp/crl.der" -CAfile "$capf_ca" -noout 2>&1 | grep -q "verify OK" ||
	fail "the CRL made with the token key does not verify"

# The key never left the token.
GNUTLS_PIN=4321 p11tool --login --list-all-privkeys "$token" >"$tmp/privkeys" 2>&1 ||
	{ cat "$tmp/privkeys"; fail "p11tool --list-all-privkeys"; }
[ "$(grep -c "Type: Private key" "$tmp/privkeys")" -eq 1 ] || { cat "$tmp/privkeys"; fail "private keys in the token"; }
grep -q "CKA_SENSITIVE" "$tmp/privkeys" || { cat "$tmp/privkeys"; fail "the key is not sensitive"; }
grep -q "CKA_NEVER_EXTRACTABLE" "$tmp/privkeys" || { cat "$tmp/privkeys"; fail "the key was extractable"; }
grep -q "CKA_EXTRACTABLE" "$tmp/privkeys" && fail "the key is extractable"
if grep -rlq "PRIVATE KEY" "$tmp/state"; then
	fail "a private key was written to the state directory: $(grep -rl "PRIVATE KEY" "$tmp/state")"
fi
gen="$tmp/state/ca/$(readlink "$tmp/state/ca/current")"
[ -f "$gen/key.ref" ] && [ ! -e "$gen/key.pem" ] || fail "the CA directory should record the key's URI only"
[ "$(stat -c %a "$gen/key.ref")" = 600 ] || fail "key.ref is not mode 0600 (it holds the PIN)"
grep -q "4321" "$tmp/capfd.log" && fail "the PIN appears in the log"

# A restart opens the same token key again.
stop_capfd
start_capfd -c "$tmp/capfd.conf"
[ "$(openssl x509 -in "$capf_ca" -noout -pubkey)" = "$(openssl pkey -pubin -in "$tmp/token-pub.pem")" ] ||
	fail "a restart made another CA"

# A rollover to a second key in the token.
GNUTLS_PIN=4321 p11tool --login --generate-privkey ecdsa --curve secp384r1 --label capf-ca-2 \
	"$token" >"$tmp/genkey2.log" 2>&1 || { cat "$tmp/genkey2.log"; fail "second key"; }
ctl ca rollover --key "$token;object=capf-ca-2;type=private;pin-value=4321" >"$tmp/out" 2>&1 ||
	{ cat "$tmp/out"; fail "rollover to a token key"; }
ctl ca status >"$tmp/status" || fail "ca status after the rollover"
grep -q "key:          ec-p384 (pkcs11)" "$tmp/status" || { cat "$tmp/status"; fail "status: new key"; }
ctl ca bundle --out "$tmp/bundle.pem" || fail "bundle"
d=SEP00000000C003
ctl device add $d >/dev/null || fail "device add $d"
enroll $d --ca "$tmp/bundle.pem" >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "enroll after the rollover"; }
openssl x509 -in "$tmp/$d.lsc.pem" -noout -text | grep -q "ecdsa-with-SHA384" ||
	fail "the LSC is not signed by the P-384 token key"
for x in SEP00000000C001 $d; do
	openssl verify -CAfile "$tmp/bundle.pem" "$tmp/$x.lsc.pem" >/dev/null 2>&1 ||
		fail "$x: openssl verify against the bundle"
	certtool --verify --load-ca-certificate "$tmp/bundle.pem" --infile "$tmp/$x.lsc.pem" \
		>/dev/null 2>&1 || fail "$x: certtool verify against the bundle"
done
if grep -rlq "PRIVATE KEY" "$tmp/state"; then
	fail "a private key was written to the state directory"
fi
stop_capfd
echo "PASS: CA key in a SoftHSM2 token: LSCs and CRLs signed there, the key never left it"
