#!/bin/sh
# Revocation: capfctl cert revoke records it (store and audit log), the
# CRL (DER, PEM on request) signed by the CAPF CA lists it with its reason
# and nextUpdate, openssl refuses the LSC with the CRL, the CRL is made
# again on a schedule, and a revocation whose store write failed is
# completed at the next start.
set -u
. "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null || { echo "SKIP: openssl not installed"; exit 77; }

a=SEP0000000B0001
b=SEP0000000B0002
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $a $b >/dev/null || fail "mkmic"
cat >"$tmp/capfd.conf" <<'CONF'
[ca]
crl_days = 2
crl_refresh = 1
[testing]
fault_injection = yes
CONF
start_capfd -c "$tmp/capfd.conf"
ctl device add $a $b >/dev/null || fail "device add"
for d in $a $b; do
	enroll $d >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "enroll $d"; }
done
serial() { openssl x509 -in "$tmp/$1.lsc.pem" -noout -serial | sed 's/^serial=//'; }
sa=$(serial $a)
sb=$(serial $b)

# Usage and refusals first.
ctl cert revoke "$sa" >/dev/null 2>&1
[ $? -eq 2 ] || fail "revoke without --reason is not a usage error"
ctl cert revoke "$sa" --reason certificateHold >/dev/null 2>&1
[ $? -eq 2 ] || fail "an unsupported reason is not a usage error"
ctl cert revoke 0123456789abcdef --reason superseded >"$tmp/out" 2>&1
[ $? -eq 1 ] || fail "revoking an unknown serial did not fail"
grep -q "CAPF_ENOENT" "$tmp/out" || { cat "$tmp/out"; fail "unknown serial: wrong error"; }

# Revoke a's LSC.
ctl cert revoke "$sa" --reason keyCompromise >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "revoke"; }
ctl cert revoke "$sa" --reason superseded >"$tmp/out" 2>&1 && fail "revoked twice"
grep -q "CAPF_EEXIST" "$tmp/out" || { cat "$tmp/out"; fail "second revoke: wrong error"; }
ctl --json cert show "$sa" | tr -d ' \n' >"$tmp/show"
grep -q '"state":"revoked"' "$tmp/show" || { cat "$tmp/show"; fail "record not revoked"; }
grep -q '"reason":"keyCompromise"' "$tmp/show" || { cat "$tmp/show"; fail "reason not recorded"; }
ctl --json cert show "$sb" | tr -d ' \n' | grep -q '"state":"active"' || fail "$b changed"

# The CRL: DER by default, signed by the CA, with the reason and nextUpdate.
ctl crl --out "$tmp/crl.der" || fail "crl"
openssl crl -inform DER -in "$tmp/crl.der" -CAfile "$capf_ca" -noout >"$tmp/v" 2>&1 ||
	{ cat "$tmp/v"; fail "the CRL signature does not verify"; }
grep -q "verify OK" "$tmp/v" || { cat "$tmp/v"; fail "CRL: no verify OK"; }
openssl crl -inform DER -in "$tmp/crl.der" -noout -text >"$tmp/crl.txt" || fail "crl -text"
grep -qi "Serial Number: $sa" "$tmp/crl.txt" || { cat "$tmp/crl.txt"; fail "the CRL lacks $sa"; }
grep -qi "$sb" "$tmp/crl.txt" && fail "the CRL lists $sb"
grep -q "Key Compromise" "$tmp/crl.txt" || fail "the CRL lacks the reason"
grep -q "Next Update:" "$tmp/crl.txt" || fail "the CRL lacks nextUpdate"
grep -q "Version 2" "$tmp/crl.txt" || fail "not a v2 CRL"
# crl_refresh = 1 signs it again every second: compare a fresh fetch, and
# once more if a refresh came between the fetch and the comparison.
i=0
until ctl crl --out "$tmp/crl-now.der" && cmp -s "$tmp/crl-now.der" "$tmp/state/ca/crl.der"; do
	i=$((i + 1))
	[ $i -lt 3 ] || fail "crl.der in the CA directory differs"
done
ctl crl --pem --out "$tmp/crl.pem" || fail "crl --pem"
grep -q "BEGIN X509 CRL" "$tmp/crl.pem" || fail "crl --pem is not PEM"

# Verifiers refuse the revoked LSC with the CRL, and accept the other.
openssl verify -crl_check -CAfile "$capf_ca" -CRLfile "$tmp/crl.pem" "$tmp/$a.lsc.pem" \
	>"$tmp/v" 2>&1 && fail "openssl accepted the revoked LSC"
grep -q "certificate revoked" "$tmp/v" || { cat "$tmp/v"; fail "openssl: not 'revoked'"; }
openssl verify -crl_check -CAfile "$capf_ca" -CRLfile "$tmp/crl.pem" "$tmp/$b.lsc.pem" \
	>/dev/null 2>&1 || fail "openssl refused the valid LSC"

# On a schedule (crl_refresh = 1 s): a new CRL with a higher number.
num() { openssl crl -inform DER -in "$1" -noout -crlnumber | sed 's/.*=//'; }
n1=$(num "$tmp/crl.der")
sleep 2.2
n2=$(num "$tmp/state/ca/crl.der")
[ "$(($n2))" -gt "$(($n1))" ] || fail "the CRL was not made again on schedule ($n1, $n2)"

# The audit log has the revocation.
if "$CAPFCTL" audit show -d "$tmp/state" --kind revoke >"$tmp/audit" 2>&1; then
	grep -qi "$sa" "$tmp/audit" || { cat "$tmp/audit"; fail "no revoke audit entry"; }
fi

# The store cannot write: the revocation holds (CA list, CRL) and the
# answer says the record is completed at the next start.
ctl store fault EIO >/dev/null 2>&1 || fail "store fault"
ctl cert revoke "$sb" --reason superseded >"$tmp/out" 2>&1 && fail "revoke with a failing store succeeded"
grep -q "completes the record at its next start" "$tmp/out" || { cat "$tmp/out"; fail "store fault: message"; }
ctl crl --out "$tmp/crl2.der" || fail "crl after the fault"
openssl crl -inform DER -in "$tmp/crl2.der" -noout -text | grep -qi "$sb" ||
	fail "the CRL does not list the revocation whose store write failed"
ctl store fault off >/dev/null 2>&1 || fail "store fault off"
stop_capfd

start_capfd -c "$tmp/capfd.conf"
ctl --json cert show "$sb" | tr -d ' \n' >"$tmp/show"
grep -q '"state":"revoked"' "$tmp/show" || { cat "$tmp/show"; fail "the store record was not completed"; }
grep -q '"reason":"superseded"' "$tmp/show" || { cat "$tmp/show"; fail "completed record: reason"; }
ctl crl --pem --out "$tmp/crl3.pem" || fail "crl after restart"
openssl crl -in "$tmp/crl3.pem" -noout -text >"$tmp/crl3.txt"
grep -qi "$sa" "$tmp/crl3.txt" && grep -qi "$sb" "$tmp/crl3.txt" ||
	fail "a revocation was lost across the restart"
stop_capfd
echo "PASS: revocation recorded, CRL signed with reasons and nextUpdate, completed after a failed write"
