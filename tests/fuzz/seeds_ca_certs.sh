#!/bin/sh
# seeds_ca_certs.sh [FUZZDIR]: make the fixture of fuzz_ca_certs and the
# seeds that reach deep with openssl, once: FUZZDIR/ca_certs_fixture.h
# (the CAPF CA, the pending request and the enterprise chain the target
# builds its CA directory from, and the time it runs at) and
# FUZZDIR/corpus/fuzz_ca_certs/ (LSCs of that CA, enterprise-signed CAPF
# certificates for the pending key, trust store files, and variants that
# each fail one late check). FUZZDIR defaults to the script's directory.
# The keys are new on every run, so the header and the seeds are
# committed together; running it again replaces both.
set -eu
fuzz=$(cd "${1:-$(dirname "$0")}" && pwd)
out=$fuzz/corpus/fuzz_ca_certs
header=$fuzz/ca_certs_fixture.h
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/capf-seeds.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

# The target's clock (2027-01-01T00:00:00Z): every validity below is
# placed around it, so that a seed means the same whenever it runs.
now=1798761600
# What a valid certificate spans: the CAs and enterprise-signed
# certificates about 100 years, an LSC one year, as capf issues them.
ca_start=20260101000000Z
ca_end=21251231235959Z
lsc_start=20260601000000Z
lsc_end=20270601000000Z
# The serial the target records as revoked, and the LSC that carries it.
revoked_serial=5a11ed0000000000000000000000beef

cat >openssl.cnf <<EOF
[req]
distinguished_name = dn
prompt = no
string_mask = nombstr
[dn]
CN = unused
[ca]
default_ca = fixture
[fixture]
database = $work/index.txt
new_certs_dir = $work/new
serial = $work/serial
default_md = sha256
policy = anything
unique_subject = no
email_in_dn = no
[anything]
commonName = optional
# The CAPF CA of the CA directory, as capf makes its own.
[capf_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
# What capf asks the enterprise CA for (ca_csr()).
[capf_req]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
# An LSC: the extensions of ca/issue.c for an EC key.
[lsc]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[lsc_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
# The enterprise root and intermediates under it.
[root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[intermediate]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[intermediate_last]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
# The enterprise-signed CAPF certificate, and the same with one thing
# missing.
[capf_signed]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[capf_no_crlsign]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[capf_no_certsign]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,cRLSign,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[capf_no_digsig]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[capf_no_usage]
basicConstraints = critical,CA:TRUE,pathlen:0
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[capf_unknown_critical]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
1.3.6.1.4.1.55555.1 = critical,ASN1:NULL
[capf_not_ca]
basicConstraints = critical,CA:FALSE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
export OPENSSL_CONF=$work/openssl.cnf
mkdir new
: >index.txt

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
# req KEY SUBJECT [EXTENSIONS]: a request in req.pem
req() {
	openssl req -new -key "$1" -subj "$2" ${3:+-reqexts "$3"} -sha256 -out req.pem
}
# sign OUT SIGNER-CERT SIGNER-KEY EXTENSIONS START END [MD [SERIAL]]: sign
# req.pem into OUT (PEM), with a random positive 16-byte serial unless one
# is given. SIGNER-CERT "-" is a self-signed certificate.
sign() {
	serial=${8:-$(openssl rand -hex 16 | sed 's/^./4/')}
	echo "$serial" >serial
	if [ "$2" = - ]; then
		set -- "$1" -selfsign "$3" "$4" "$5" "$6" "${7:-sha256}"
	else
		set -- "$1" "-cert $2" "$3" "$4" "$5" "$6" "${7:-sha256}"
	fi
	# shellcheck disable=SC2086
	openssl ca -batch -notext -preserveDN $2 -keyfile "$3" -in req.pem -extensions "$4" \
		-startdate "$5" -enddate "$6" -md "$7" -out "$1" 2>/dev/null
}
der() { openssl x509 -in "$1" -outform DER -out "$2"; }

# The fixture: the CAPF CA (ca.pem, ca.key), the pending request
# (pending/key.pem, pending/csr.pem, with the CAPF CA's subject as
# 'capfctl ca csr' gives it by default), the enterprise chain: the root,
# an intermediate that may issue no further CA (pathlen 0) and yet issued
# one, and an expired intermediate.
key ca.key
req ca.key "/CN=CAPF fuzz CA/O=capf" capf_ca
sign ca.pem - ca.key capf_ca $ca_start $ca_end
key pending.key
req pending.key "/CN=CAPF fuzz CA/O=capf" capf_req
cp req.pem pending.csr
key root.key
req root.key "/CN=Enterprise fuzz root/O=capf"
sign root.pem - root.key root $ca_start $ca_end
# intermediate NAME KEY-AND-CERT SIGNER EXTENSIONS [START END]
intermediate() {
	key "$2.key"
	req "$2.key" "/CN=$1/O=capf"
	sign "$2.pem" "$3.pem" "$3.key" "$4" "${5:-$ca_start}" "${6:-$ca_end}"
}
intermediate "Enterprise fuzz intermediate" sub root intermediate_last
intermediate "Enterprise fuzz CA beyond the path length" deep sub intermediate
intermediate "Enterprise fuzz expired intermediate" expired root intermediate \
	20200101000000Z 20260601000000Z
cat root.pem sub.pem deep.pem expired.pem >chain.pem
# Not in the chain store: a second intermediate, and a CA under it.
intermediate "Enterprise fuzz second intermediate" second root intermediate
intermediate "Enterprise fuzz third level" third second intermediate

# LSCs of the CAPF CA for a phone's key.
key phone.key
lsc() { # lsc NAME SEED [EXTENSIONS START END SERIAL]
	req phone.key "/CN=$1"
	sign lsc.pem ca.pem ca.key "${3:-lsc}" "${4:-$lsc_start}" "${5:-$lsc_end}" sha256 ${6:+"$6"}
	der lsc.pem "$out/$2"
}
lsc SEP001122334455 lsc-SEP001122334455.der
lsc SEP00AABBCCDDEE lsc-other-device.der
lsc SEP001122334455 lsc-expired.der lsc 20250101000000Z 20260101000000Z
lsc SEP001122334455 lsc-not-yet-valid.der lsc 20270601000000Z 20280601000000Z
lsc SEP001122334455 lsc-ca-true.der lsc_ca
lsc SEP001122334455 lsc-revoked.der lsc "" "" $revoked_serial
req phone.key "/CN=SEP001122334455/O=capf"
sign lsc.pem ca.pem ca.key lsc $lsc_start $lsc_end
der lsc.pem "$out/lsc-two-attributes.der"
# Signed by the enterprise root instead: the same names, another issuer.
req phone.key "/CN=SEP001122334455"
sign lsc.pem root.pem root.key lsc $lsc_start $lsc_end
der lsc.pem "$out/lsc-wrong-issuer.der"

# Enterprise-signed CAPF certificates for the pending key.
req pending.key "/CN=CAPF fuzz CA/O=capf" capf_req
sign "$out/import-signed.pem" root.pem root.key capf_signed $ca_start $ca_end
der "$out/import-signed.pem" "$out/import-signed.der"
sign "$out/import-sha384.pem" root.pem root.key capf_signed $ca_start $ca_end sha384
sign "$out/import-no-usage.pem" root.pem root.key capf_no_usage $ca_start $ca_end
sign "$out/import-no-crlsign.pem" root.pem root.key capf_no_crlsign $ca_start $ca_end
sign "$out/import-no-certsign.pem" root.pem root.key capf_no_certsign $ca_start $ca_end
sign "$out/import-no-digsig.pem" root.pem root.key capf_no_digsig $ca_start $ca_end
sign "$out/import-not-ca.pem" root.pem root.key capf_not_ca $ca_start $ca_end
sign "$out/import-sha1.pem" root.pem root.key capf_signed $ca_start $ca_end sha1
sign "$out/import-sha224.pem" root.pem root.key capf_signed $ca_start $ca_end sha224
sign "$out/import-expired.pem" root.pem root.key capf_signed 20200101000000Z 20260601000000Z
sign "$out/import-not-yet-valid.pem" root.pem root.key capf_signed 20300101000000Z $ca_end
sign "$out/import-unknown-critical-extension.pem" root.pem root.key capf_unknown_critical \
	$ca_start $ca_end
# A serial of 24 bytes, longer than RFC 5280 allows (20).
sign "$out/import-long-serial.pem" root.pem root.key capf_signed $ca_start $ca_end sha256 \
	4"$(openssl rand -hex 24 | cut -c2-)"
# Under each intermediate of the chain store, and under one it lacks.
sign "$out/import-under-intermediate.pem" sub.pem sub.key capf_signed $ca_start $ca_end
sign "$out/import-beyond-path-length.pem" deep.pem deep.key capf_signed $ca_start $ca_end
sign "$out/import-under-expired-intermediate.pem" expired.pem expired.key capf_signed \
	$ca_start $ca_end
sign "$out/import-under-unknown-intermediate.pem" second.pem second.key capf_signed \
	$ca_start $ca_end
# For another key than the pending one.
req phone.key "/CN=CAPF fuzz CA/O=capf" capf_req
sign "$out/import-other-key.pem" root.pem root.key capf_signed $ca_start $ca_end

# Trust store files: the enterprise root (already in the chain store, new
# to the manufacturer roots), the second intermediate (signed by the
# root there), and a bundle of two certificates that are not there, the
# one signed by the other first.
cp root.pem "$out/trust-enterprise-root.pem"
cp second.pem "$out/trust-intermediate.pem"
cat third.pem second.pem >"$out/trust-bundle-two-intermediates.pem"

# The header: each file as a C string.
cstring() { # cstring NAME FILE COMMENT
	printf '/* %s */\nstatic const char %s[] =\n' "$3" "$1"
	sed 's/.*/\t"&\\n"/' "$2"
	printf ';\n\n'
}
{
	cat <<EOF
/*
 * The fixture of fuzz_ca_certs: test material made by seeds_ca_certs.sh
 * with openssl (do not edit; run it again to replace the fixture and its
 * seeds together). The keys are test keys, published here on purpose.
 */
#ifndef CAPF_TESTS_FUZZ_CA_CERTS_FIXTURE_H
#define CAPF_TESTS_FUZZ_CA_CERTS_FIXTURE_H

#include <stdint.h>
#include <time.h>

/* The target's clock: 2027-01-01T00:00:00Z. */
#define FIXTURE_NOW ((time_t)$now)

EOF
	cstring fixture_ca_pem ca.pem \
		"The CAPF CA, self-signed, P-256, $ca_start to $ca_end: ca.pem"
	cstring fixture_ca_key ca.key "Its key: ca.key"
	cstring fixture_pending_key pending.key "The key of the pending request: pending/key.pem"
	cstring fixture_pending_csr pending.csr "The pending request: pending/csr.pem"
	cstring fixture_chain_pem chain.pem \
		"The chain store at setup: the root, an intermediate of pathlen 0, a CA under it, one expired"
	printf '/* The serial of lsc-revoked.der, revoked at setup. */\n'
	printf 'static const uint8_t fixture_revoked_serial[] = {\n'
	echo "$revoked_serial" | sed 's/\(..\)/0x\1, /g' | fold -w 48 | sed 's/^/\t/; s/ $//'
	printf '};\n\n#endif /* CAPF_TESTS_FUZZ_CA_CERTS_FIXTURE_H */\n'
} >"$header"
