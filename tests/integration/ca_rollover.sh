#!/bin/sh
# CAPF CA rollover: a new CA issues at once, the old one stays trusted for
# the overlap. LSCs of both verify against the trust bundle with certtool
# and openssl; new ones come from the new CA; capfctl ca status shows
# both with expiry; it survives a restart.
set -u
. "$(dirname "$0")/lib.sh"

command -v certtool >/dev/null || { echo "SKIP: certtool (gnutls-bin) not installed"; exit 77; }
command -v openssl >/dev/null || { echo "SKIP: openssl not installed"; exit 77; }

old=SEP0000000A0001
new=SEP0000000A0002
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $old $new >/dev/null || fail "mkmic"
start_capfd
cp "$capf_ca" "$tmp/old-ca.pem"
ctl device add $old $new >/dev/null || fail "device add"

# An LSC from the first CA.
enroll $old >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "enroll $old"; }

# Roll over to an RSA-3072 CA with a 10-day overlap.
ctl ca rollover --key-type rsa-3072 --overlap-days 10 >"$tmp/out" 2>&1 ||
	{ cat "$tmp/out"; fail "ca rollover"; }
cmp -s "$capf_ca" "$tmp/old-ca.pem" && fail "ca.pem did not change"
ctl ca status >"$tmp/status" || fail "ca status"
grep -q "current CAPF CA" "$tmp/status" && grep -q "previous CAPF CA" "$tmp/status" ||
	{ cat "$tmp/status"; fail "status does not show both CAs"; }
grep -q "key:          rsa-3072 (file)" "$tmp/status" || { cat "$tmp/status"; fail "new key type"; }
grep -q "expires:" "$tmp/status" || fail "status shows no expiry"
ctl --json ca status >"$tmp/status.json" || fail "ca status --json"
until_day=$(date -u -d "+10 days" +%Y-%m-%d)
grep -q "\"trusted_until\":\"$until_day" "$tmp/status.json" ||
	{ cat "$tmp/status.json"; fail "overlap end is not in 10 days"; }
ctl --csv ca status | head -n 1 | grep -q "^role,id,subject" || fail "ca status --csv"

# The trust bundle: both CAs.
ctl ca bundle --out "$tmp/bundle.pem" || fail "ca bundle"
[ "$(grep -c BEGIN "$tmp/bundle.pem")" -eq 2 ] || fail "the bundle does not hold both CAs"
ctl ca bundle --der --out "$tmp/bundle.p7b" || fail "ca bundle --der"
[ "$(openssl pkcs7 -inform DER -in "$tmp/bundle.p7b" -print_certs | grep -c BEGIN)" -eq 2 ] ||
	fail "the DER bundle does not hold both CAs"

# A new LSC, from the new CA; the phone trusts the bundle.
enroll $new --ca "$tmp/bundle.pem" >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "enroll $new"; }

keyid() { openssl x509 -in "$1" -noout -ext "$2" | tail -n 1 | tr -d ' ' | sed 's/^keyid://'; }
new_ski=$(keyid "$capf_ca" subjectKeyIdentifier)
old_ski=$(keyid "$tmp/old-ca.pem" subjectKeyIdentifier)
[ "$(keyid "$tmp/$new.lsc.pem" authorityKeyIdentifier)" = "$new_ski" ] ||
	fail "the new LSC is not from the new CA"
[ "$(keyid "$tmp/$old.lsc.pem" authorityKeyIdentifier)" = "$old_ski" ] ||
	fail "the old LSC's issuer changed?"
openssl x509 -in "$tmp/$new.lsc.pem" -noout -text | grep -q "sha256WithRSAEncryption" ||
	fail "the new LSC is not signed by the RSA CA"

# Each generation is named on its own, and carries AKI = SKI.
[ "$(openssl x509 -noout -subject -in "$capf_ca")" != "$(openssl x509 -noout -subject -in "$tmp/old-ca.pem")" ] ||
	fail "two CA generations share a subject"
for c in "$capf_ca" "$tmp/old-ca.pem"; do
	ski=$(openssl x509 -noout -ext subjectKeyIdentifier -in "$c" | tail -n 1 | tr -d ' ')
	aki=$(openssl x509 -noout -ext authorityKeyIdentifier -in "$c" | tail -n 1 | tr -d ' ' | sed 's/^keyid://')
	[ -n "$ski" ] && [ "$ski" = "$aki" ] || fail "$c: AKI ($aki) is not its SKI ($ski)"
done
# The bundle in the other order verifies just as well.
awk '/BEGIN/{n++} {print > ("'"$tmp"'/part" n ".pem")}' "$tmp/bundle.pem"
cat "$tmp/part2.pem" "$tmp/part1.pem" >"$tmp/bundle-rev.pem"

# Both LSCs verify against the bundle, in either order, with both tools.
for d in $old $new; do
	for b in "$tmp/bundle-rev.pem"; do
		openssl verify -CAfile "$b" -purpose sslclient "$tmp/$d.lsc.pem" >/dev/null 2>&1 ||
			fail "$d: openssl verify against the reversed bundle"
		certtool --verify --load-ca-certificate "$b" --infile "$tmp/$d.lsc.pem" >"$tmp/v" 2>&1 ||
			{ cat "$tmp/v"; fail "$d: certtool --verify against the reversed bundle"; }
	done
	lsc="$tmp/$d.lsc.pem"
	certtool --verify --load-ca-certificate "$tmp/bundle.pem" --infile "$lsc" >"$tmp/v" 2>&1 ||
		{ cat "$tmp/v"; fail "$d: certtool --verify against the bundle"; }
	grep -q "Chain verification output: Verified" "$tmp/v" || fail "$d: not verified"
	issuer="$tmp/old-ca.pem"
	[ $d = $new ] && issuer="$capf_ca"
	cat "$lsc" "$issuer" >"$tmp/chain.pem"
	certtool --verify-chain --infile "$tmp/chain.pem" >"$tmp/v" 2>&1 ||
		{ cat "$tmp/v"; fail "$d: certtool --verify-chain"; }
	openssl verify -CAfile "$tmp/bundle.pem" -purpose sslclient "$lsc" >/dev/null 2>&1 ||
		fail "$d: openssl verify against the bundle"
done
# The CA certificates themselves, also against the whole bundle.
for c in "$capf_ca" "$tmp/old-ca.pem"; do
	certtool --verify-chain --infile "$c" >/dev/null 2>&1 || fail "$c: certtool --verify-chain"
	openssl verify -CAfile "$c" "$c" >/dev/null 2>&1 || fail "$c: openssl verify"
	for b in "$tmp/bundle.pem" "$tmp/bundle-rev.pem"; do
		openssl verify -CAfile "$b" "$c" >/dev/null 2>&1 || fail "$c: openssl verify against $b"
	done
done

# The CRL is signed by each CA still trusted.
ctl crl --pem --out "$tmp/crl.pem" || fail "crl --pem"
[ "$(grep -c "BEGIN X509 CRL" "$tmp/crl.pem")" -eq 2 ] || fail "not one CRL per trusted CA"

# A restart keeps both; the old LSC still verifies (TLS and the store too).
stop_capfd
start_capfd
ctl ca status | grep -q "previous CAPF CA" || fail "the previous CA is gone after a restart"
cmp -s "$capf_ca" "$tmp/state/ca/gen/$(readlink "$tmp/state/ca/current" | sed 's,gen/,,')/cert.pem" ||
	fail "ca.pem is not the current CA"
ctl --json device show $old | tr -d ' \n' | grep -q '"state":"active"' || fail "$old: record"
stop_capfd
echo "PASS: rollover: old LSCs still verify against the bundle, new ones come from the new CA"
