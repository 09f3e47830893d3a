#!/bin/sh
# seeds_issue.sh OUTDIR: make the seed inputs of fuzz_issue with openssl:
# a real key of every type a phone may have (P-256, P-384, P-521, RSA
# 2048/3072/4096), each as a bare SubjectPublicKeyInfo and as a request
# bound to the binding fuzz_issue checks (0x00 ... 0x1f), in front of the
# header that picks the CA, the validity and the device name.
set -eu
out=$1
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/capf-seeds.XXXXXX")
trap 'rm -rf "$work"' EXIT
byte() { printf "\\$(printf '%03o' "$1")"; }
binding=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f

# header FLAGS DAYS NAME: byte 0 (the CA, a request, the time shift), the
# days (2 bytes), the name's length and the name
header() {
	byte "$1"
	byte $(($2 >> 8 & 255)); byte $(($2 & 255))
	byte ${#3}
	printf '%s' "$3"
}

cat >"$work/req.cnf" <<EOF
[req]
distinguished_name = dn
attributes = attrs
prompt = no
[dn]
CN = anything-the-phone-says
[attrs]
challengePassword = $binding
EOF

i=0
for k in ec-p256 ec-p384 ec-p521 rsa-2048 rsa-3072 rsa-4096; do
	case $k in
	ec-p256) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/$k.pem" ;;
	ec-p384) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$work/$k.pem" ;;
	ec-p521) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521 -out "$work/$k.pem" ;;
	rsa-*) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:${k#rsa-} -out "$work/$k.pem" ;;
	esac 2>/dev/null
	openssl pkey -in "$work/$k.pem" -pubout -outform DER -out "$work/$k.spki"
	openssl req -new -key "$work/$k.pem" -config "$work/req.cnf" -sha256 -outform DER \
		-out "$work/$k.csr"
	# Each key from a different CA in turn, as a bare key and as a request.
	ca=$((i % 4))
	{ header $ca 0 SEP001122334455; cat "$work/$k.spki"; } >"$out/spki-$k-ca$ca"
	{ header $((ca | 4)) 0 SEP001122334455; cat "$work/$k.csr"; } >"$out/csr-$k-ca$ca"
	i=$((i + 1))
done
# Every CA at least once for both kinds, the longest validity (past 2049,
# GeneralizedTime), one over the limit, and names that need a UTF8String.
{ header 1 36500 SEP00AABBCCDDEE; cat "$work/ec-p256.spki"; } >"$out/spki-ec-p256-ca1-36500-days"
{ header 6 7 'CP-8865-SEP*_01'; cat "$work/ec-p384.csr"; } >"$out/csr-ec-p384-ca2-utf8-name"
{ header 3 36501 SEP001122334455; cat "$work/rsa-2048.spki"; } >"$out/spki-rsa-2048-ca3-too-long"
{ header 7 30 SEP0011223344FF; cat "$work/ec-p521.csr"; } >"$out/csr-ec-p521-ca3-30-days"
{ header 0 1 "$(printf 'S%.0s' $(seq 64))"; cat "$work/rsa-3072.spki"; } >"$out/spki-rsa-3072-ca0-name-64"
{ header 4 1 "$(printf 'S%.0s' $(seq 65))"; cat "$work/ec-p256.csr"; } >"$out/csr-ec-p256-ca0-name-65"
{ header 0 0 ''; cat "$work/ec-p256.spki"; } >"$out/spki-ec-p256-no-name"
# An LSC that would outlive the RSA CA (3650 days), issuing times before
# the CAs' start (8 hours, and 128 hours with a validity that ends before
# it), and a name with a control character.
{ header 3 36500 SEP001122334455; cat "$work/ec-p384.spki"; } >"$out/spki-ec-p384-ca3-outlives-ca"
{ header $((0xf8 | 5)) 30 SEP001122334455; cat "$work/rsa-2048.csr"; } >"$out/csr-rsa-2048-ca1-before-ca"
{ header $((0x80 | 2)) 1 SEP001122334455; cat "$work/ec-p521.spki"; } >"$out/spki-ec-p521-ca2-ends-before-ca"
{ header 0 0 "$(printf 'SEP\001tab')"; cat "$work/ec-p256.spki"; } >"$out/spki-ec-p256-ca0-control-name"
