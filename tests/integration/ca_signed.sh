#!/bin/sh
# The CAPF CA signed by an enterprise CA: request, chain first (the
# certificate before its chain is refused), import while phones enroll,
# then every LSC verifies up to the enterprise root with certtool and
# openssl, and the server presents the new chain.
set -u
. "$(dirname "$0")/lib.sh"

command -v certtool >/dev/null || { echo "SKIP: certtool (gnutls-bin) not installed"; exit 77; }
command -v openssl >/dev/null || { echo "SKIP: openssl not installed"; exit 77; }

"$CAPF_PHONE" mkmic --dir "$tmp/mfg" SEP00000000E001 SEP00000000E002 SEP00000000E003 >/dev/null || fail "mkmic"

# An enterprise PKI: a root and an issuing CA.
cat >"$tmp/ext.cnf" <<'CNF'
[v3_sub]
basicConstraints = critical,CA:TRUE,pathlen:1
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_capf]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
CNF
ossl() { openssl "$@" >>"$tmp/openssl.log" 2>&1 || fail "openssl $1 failed: $(tail -n 3 "$tmp/openssl.log")"; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/root.key" \
	-out "$tmp/root.pem" -days 30 -subj "/O=Example/CN=Example Root CA" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
ossl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/sub.key" \
	-out "$tmp/sub.csr" -subj "/O=Example/CN=Example Issuing CA"
ossl x509 -req -in "$tmp/sub.csr" -CA "$tmp/root.pem" -CAkey "$tmp/root.key" \
	-set_serial 0x1001 -days 30 -extfile "$tmp/ext.cnf" -extensions v3_sub -out "$tmp/sub.pem"

start_capfd
old_ca="$tmp/old-ca.pem"
cp "$capf_ca" "$old_ca"

ctl ca import "$tmp/root.pem" >"$tmp/out" 2>&1 && fail "import without a request succeeded"
grep -q "CAPF_ENOENT" "$tmp/out" || { cat "$tmp/out"; fail "import without a request: wrong error"; }

# 1. The request.
ctl ca csr --out "$tmp/capf.csr" --subject "CN=CAPF Enterprise,O=Example" 2>/dev/null ||
	fail "ca csr"
openssl req -in "$tmp/capf.csr" -noout -verify >/dev/null 2>&1 || fail "the CSR does not verify"
openssl req -in "$tmp/capf.csr" -noout -text >"$tmp/csr.txt" 2>&1
grep -q "CA:TRUE, pathlen:0" "$tmp/csr.txt" || { cat "$tmp/csr.txt"; fail "CSR lacks CA:TRUE pathlen 0"; }
grep -q "Certificate Sign, CRL Sign" "$tmp/csr.txt" || fail "CSR lacks keyCertSign/cRLSign"
ctl ca status | grep -q "pending request" || fail "status does not show the pending request"

# 2. The enterprise CA signs it; another request's certificate is made too.
ossl x509 -req -in "$tmp/capf.csr" -CA "$tmp/sub.pem" -CAkey "$tmp/sub.key" -set_serial 0x2002 \
	-days 20 -extfile "$tmp/ext.cnf" -extensions v3_capf -out "$tmp/capf.pem"
ossl x509 -req -in "$tmp/capf.csr" -CA "$tmp/sub.pem" -CAkey "$tmp/sub.key" -set_serial 0x2003 \
	-days 20 -extfile "$tmp/ext.cnf" -extensions v3_leaf -out "$tmp/capf-leaf.pem"

# 3. The certificate before its chain: refused, saying what to do.
ctl ca import "$tmp/capf.pem" >"$tmp/out" 2>&1 && fail "import before the chain succeeded"
grep -q "import the chain first" "$tmp/out" || { cat "$tmp/out"; fail "no hint to import the chain"; }
# The issuing CA alone: its issuer is unknown.
ctl trust add --chain "$tmp/sub.pem" >"$tmp/out" 2>&1 && fail "intermediate without root accepted"
grep -q "add the issuer first" "$tmp/out" || { cat "$tmp/out"; fail "intermediate: wrong error"; }
# The chain, in any order.
cat "$tmp/sub.pem" "$tmp/root.pem" >"$tmp/chain.pem"
ctl trust add --chain "$tmp/chain.pem" | grep -q "added 2" || fail "trust add --chain"
ctl --json trust list --chain >"$tmp/tl" || fail "trust list"
grep -q '"anchor":true' "$tmp/tl" || { cat "$tmp/tl"; fail "no anchor listed"; }
# Not a CA certificate: refused.
ctl ca import "$tmp/capf-leaf.pem" >"$tmp/out" 2>&1 && fail "a non-CA certificate was imported"
grep -q "not a CA certificate" "$tmp/out" || { cat "$tmp/out"; fail "non-CA: wrong error"; }
# Signed with SHA-1 by an issuer that is there: refused, saying why, not
# that the chain is missing.
ossl x509 -req -in "$tmp/capf.csr" -CA "$tmp/sub.pem" -CAkey "$tmp/sub.key" -set_serial 0x2004 \
	-days 20 -sha1 -extfile "$tmp/ext.cnf" -extensions v3_capf -out "$tmp/capf-sha1.pem"
ctl ca import "$tmp/capf-sha1.pem" >"$tmp/out" 2>&1 && fail "a SHA-1 signed certificate was imported"
grep -q "its issuer is in the trust store, but .*does not verify it: .*insecure" "$tmp/out" ||
	{ cat "$tmp/out"; fail "SHA-1: the reason is not given"; }
# A serial of 21 bytes: refused before anything moves (the real import
# below still finds the pending key).
ossl x509 -req -in "$tmp/capf.csr" -CA "$tmp/sub.pem" -CAkey "$tmp/sub.key" \
	-set_serial 0x7f0102030405060708090a0b0c0d0e0f1011121314 -days 20 -extfile "$tmp/ext.cnf" \
	-extensions v3_capf -out "$tmp/capf-serial.pem"
ctl ca import "$tmp/capf-serial.pem" >"$tmp/out" 2>&1 && fail "a 21-byte serial was imported"
grep -q "CAPF_EPOLICY.*serial number" "$tmp/out" || { cat "$tmp/out"; fail "long serial: wrong error"; }
ossl x509 -req -in "$tmp/sub.csr" -CA "$tmp/root.pem" -CAkey "$tmp/root.key" \
	-set_serial 0x1002 -days 30 -sha1 -extfile "$tmp/ext.cnf" -extensions v3_sub \
	-out "$tmp/sub-sha1.pem"
ctl trust add --chain "$tmp/sub-sha1.pem" >"$tmp/out" 2>&1 && fail "a SHA-1 intermediate was added"
grep -q "does not verify with its issuer, .*insecure" "$tmp/out" ||
	{ cat "$tmp/out"; fail "SHA-1 intermediate: the reason is not given"; }

# 4. Import while phones enroll: sessions in flight are not disturbed.
# The phones trust the old CA and the new chain, as phones told in
# advance would.
cat "$old_ca" "$tmp/capf.pem" "$tmp/sub.pem" "$tmp/root.pem" >"$tmp/phone-trust.pem"
"$CAPF_PHONE" load --count 150 --concurrency 4 --mfg-dir "$tmp/mfg" --ca "$tmp/phone-trust.pem" \
	--socket "$sock" --host 127.0.0.1 --port "$port" --timeout 60 >"$tmp/load" 2>&1 &
load_pid=$!
i=0
until grep -q "LSC installed" "$tmp/capfd.log"; do
	i=$((i + 1))
	[ $i -lt 400 ] || fail "no enrollment started"
	sleep 0.05
done
ctl ca import "$tmp/capf.pem" >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "ca import"; }
wait "$load_pid" || { cat "$tmp/load"; fail "enrollments failed across the import"; }
before=$(sed -n '/imported the enterprise-signed/q;/LSC installed/p' "$tmp/capfd.log" | wc -l)
after=$(sed -n '/imported the enterprise-signed/,$p' "$tmp/capfd.log" | grep -c "LSC installed")
echo "enrolled: $before before the import, $after after"

ctl ca status >"$tmp/status" || fail "ca status"
grep -q "issuer:       O=Example,CN=Example Issuing CA\|issuer:       CN=Example Issuing CA,O=Example" \
	"$tmp/status" || { cat "$tmp/status"; fail "status: not the enterprise issuer"; }
grep -q "previous CAPF CA" "$tmp/status" || fail "status: the old CA is not kept for the overlap"
grep -q "pending request" "$tmp/status" && fail "status: the request is still pending"
cmp -s "$capf_ca" "$tmp/capf.pem" || fail "ca.pem is not the imported certificate"
# The chain the CAPF CA depends on cannot be removed.
fpr=$(openssl x509 -in "$tmp/sub.pem" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' |
	tr 'A-F' 'a-f')
ctl trust remove --chain "$fpr" >"$tmp/out" 2>&1 && fail "removed a chain certificate in use"
grep -q "CAPF_EBUSY" "$tmp/out" || { cat "$tmp/out"; fail "trust remove: wrong error"; }

# 5. The server presents the new chain; new LSCs chain to the root.
ctl ca bundle --out "$tmp/bundle.pem" || fail "ca bundle"
[ "$(grep -c BEGIN "$tmp/bundle.pem")" -eq 4 ] || fail "bundle: not old CA + new CA + chain"
openssl s_client -connect "127.0.0.1:$port" -showcerts </dev/null >"$tmp/sclient" 2>&1
grep -q "i:O = Example, CN = Example Issuing CA" "$tmp/sclient" ||
	{ head -20 "$tmp/sclient"; fail "TLS does not present the enterprise chain"; }
for d in SEP00000000E001 SEP00000000E002; do
	ctl device add "$d" >/dev/null || fail "device add $d"
	enroll "$d" --ca "$tmp/bundle.pem" >"$tmp/$d.out" 2>&1 || { cat "$tmp/$d.out"; fail "enroll $d"; }
	lsc="$tmp/$d.lsc.pem"
	cat "$lsc" "$tmp/capf.pem" "$tmp/sub.pem" "$tmp/root.pem" >"$tmp/$d.chain"
	certtool --verify-chain --infile "$tmp/$d.chain" >"$tmp/v" 2>&1 ||
		{ cat "$tmp/v"; fail "$d: certtool --verify-chain"; }
	certtool --verify --load-ca-certificate "$tmp/bundle.pem" --infile "$lsc" >"$tmp/v" 2>&1 ||
		{ cat "$tmp/v"; fail "$d: certtool --verify against the bundle"; }
	openssl verify -CAfile "$tmp/bundle.pem" -purpose sslclient "$lsc" >/dev/null 2>&1 ||
		fail "$d: openssl verify against the bundle"
	openssl verify -CAfile "$tmp/root.pem" -untrusted "$tmp/capf.pem" -untrusted "$tmp/sub.pem" \
		"$lsc" >/dev/null 2>&1 || fail "$d: openssl verify up to the enterprise root"
	aki=$(openssl x509 -in "$lsc" -noout -ext authorityKeyIdentifier | tail -n 1 | tr -d ' ')
	: "$aki"
done
# The certificate comes with its chain: a phone that trusts only the
# enterprise root verifies its LSC from what it was given.
for d in SEP00000000E003; do
	ctl device add "$d" >/dev/null || fail "device add $d"
	enroll "$d" --ca "$tmp/root.pem" >"$tmp/$d.out" 2>&1 ||
		{ cat "$tmp/$d.out"; fail "enroll $d trusting only the enterprise root"; }
done
for d in SEP00000000E001 SEP00000000E002; do
	lsc="$tmp/$d.lsc.pem"
	aki=$(openssl x509 -in "$lsc" -noout -ext authorityKeyIdentifier | tail -n 1 | tr -d ' ')
	ski=$(openssl x509 -in "$tmp/capf.pem" -noout -ext subjectKeyIdentifier | tail -n 1 | tr -d ' ')
	[ "${aki#keyid:}" = "$ski" ] || fail "$d: AKI $aki is not the imported CA's SKI $ski"
done

# 6. A restart keeps it all.
stop_capfd
start_capfd
cmp -s "$capf_ca" "$tmp/capf.pem" || fail "the imported CA is not current after a restart"
ctl ca status | grep -q "previous CAPF CA" || fail "the old CA is gone after a restart"
stop_capfd
echo "PASS: enterprise-signed CAPF CA imported after its chain; LSCs chain to the root"
