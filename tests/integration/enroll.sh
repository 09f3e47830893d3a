#!/bin/sh
# End to end: capfd on loopback, devices scheduled with capfctl, phones
# enrolled with capf-phone, every LSC checked with certtool and openssl
# against the CAPF CA and field by field; records survive a restart.
set -u
. "$(dirname "$0")/lib.sh"

command -v certtool >/dev/null || { echo "SKIP: certtool (gnutls-bin) not installed"; exit 77; }
command -v openssl >/dev/null || { echo "SKIP: openssl not installed"; exit 77; }

devices="SEP001122334455 SEP00AABBCCDDEE SEPA1B2C3D4E5F6"
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $devices >/dev/null || fail "mkmic"
# A MIC named the way manufacturers do: model prefix, then the device name.
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" --cn-prefix "CP-8865-" SEP0000000000EF >/dev/null ||
	fail "mkmic with prefix"
devices="$devices SEP0000000000EF"

start_capfd

for d in $devices; do
	ctl device add "$d" --op install --auth mic >/dev/null || fail "device add $d"
done
ctl device add SEP001122334455 >/dev/null 2>&1 && fail "adding an existing device succeeded"

for d in $devices; do
	enroll "$d" >"$tmp/$d.out" 2>&1 || { cat "$tmp/$d.out"; fail "enroll $d"; }
	lsc="$tmp/$d.lsc.pem"

	# The chain: the LSC verifies against the CAPF CA, with both tools.
	certtool --verify --load-ca-certificate "$capf_ca" --infile "$lsc" >"$tmp/verify" 2>&1 ||
		{ cat "$tmp/verify"; fail "$d: certtool --verify"; }
	grep -q "Chain verification output: Verified" "$tmp/verify" || fail "$d: not verified"
	openssl verify -CAfile "$capf_ca" -purpose sslclient "$lsc" >/dev/null 2>&1 ||
		fail "$d: openssl verify"

	# Field by field (doc/certificate-profile.md).
	certtool -i --infile "$lsc" >"$tmp/info" 2>&1 || fail "$d: certtool -i"
	info() { grep -q -- "$1" "$tmp/info" || { cat "$tmp/info"; fail "$d: LSC lacks: $1"; }; }
	info "Version: 3"
	info "Subject: CN=$d\$"
	info "Signature Algorithm: ECDSA-SHA256"
	info "Basic Constraints (critical):"
	info "Certificate Authority (CA): FALSE"
	info "Key Usage (critical):"
	info "Digital signature."
	info "Key Purpose (not critical):"
	info "TLS WWW Server."
	info "TLS WWW Client."
	info "Subject Key Identifier"
	info "Authority Key Identifier"
	grep -q "Key encipherment" "$tmp/info" && fail "$d: EC LSC has keyEncipherment"
	serial=$(openssl x509 -in "$lsc" -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f')
	[ ${#serial} -eq 32 ] || fail "$d: serial $serial is not 16 bytes"
	ca_subject=$(openssl x509 -in "$capf_ca" -noout -subject -nameopt RFC2253)
	issuer=$(openssl x509 -in "$lsc" -noout -issuer -nameopt RFC2253)
	[ "${issuer#issuer=}" = "${ca_subject#subject=}" ] || fail "$d: issuer $issuer"
	# notBefore is backdated, notAfter one year (default lsc_days) ahead.
	nb=$(date -d "$(openssl x509 -in "$lsc" -noout -startdate | cut -d= -f2)" +%s)
	na=$(date -d "$(openssl x509 -in "$lsc" -noout -enddate | cut -d= -f2)" +%s)
	now=$(date +%s)
	[ $((now - nb)) -ge 240 ] && [ $((now - nb)) -le 400 ] || fail "$d: notBefore not backdated"
	[ $((na - nb)) -ge $((365 * 86400)) ] && [ $((na - nb)) -le $((365 * 86400 + 400)) ] ||
		fail "$d: validity $((na - nb)) s"
	# The key in the certificate is the phone's key.
	[ "$(openssl x509 -in "$lsc" -noout -pubkey)" = "$(openssl pkey -in "$tmp/$d.lsc.key" -pubout)" ] ||
		fail "$d: LSC key is not the phone's key"
	[ "$(stat -c %a "$tmp/$d.lsc.key")" = 600 ] || fail "$d: LSC key file not mode 0600"

	# The record: operation cleared, success, current LSC = this serial.
	ctl --json device show "$d" >"$tmp/show" || fail "$d: device show"
	tr -d ' \n' <"$tmp/show" >"$tmp/show1"
	grep -q '"op":"none"' "$tmp/show1" || { cat "$tmp/show"; fail "$d: op not cleared"; }
	grep -q '"status":"success"' "$tmp/show1" || { cat "$tmp/show"; fail "$d: status"; }
	grep -qi "$serial" "$tmp/show1" || { cat "$tmp/show"; fail "$d: serial not recorded"; }
	echo "$d" "$serial" >>"$tmp/serials"
done

# Serials are unique.
[ "$(cut -d' ' -f2 "$tmp/serials" | sort -u | wc -l)" -eq 4 ] || fail "duplicate serials"

# Done is done: the same phone gets no second certificate.
out=$(enroll SEP001122334455 2>&1) && fail "second enrollment succeeded"
echo "$out" | grep -q "CAPF_ENO_OPERATION" || fail "second enrollment: $out"

# Everything survives a restart.
stop_capfd
start_capfd
ctl --json device list >"$tmp/list" || fail "device list after restart"
while read -r d serial; do
	tr -d ' \n' <"$tmp/list" | grep -qi "$serial" || fail "$d: serial $serial lost on restart"
done <"$tmp/serials"
ctl device list >/dev/null || fail "device list (table)"
ctl --csv device list | head -n 1 | grep -qi "name" || fail "csv header"

# A short load run: 24 phones, 4 at a time, all must enroll.
"$CAPF_PHONE" load --count 24 --concurrency 4 --mfg-dir "$tmp/mfg" --ca "$capf_ca" \
	--socket "$sock" --host 127.0.0.1 --port "$port" --timeout 60 >"$tmp/load" 2>&1 ||
	{ cat "$tmp/load"; fail "load run"; }
grep -qi "enrollments/s" "$tmp/load" || { cat "$tmp/load"; fail "load output"; }
# Each phone thread (4, each of which may have had work or not) verifies
# the server's chain once, then recognises it; every LSC's signature is
# checked by default.
grep -q "the signature of every one (--verify-every 1)" "$tmp/load" ||
	{ cat "$tmp/load"; fail "load: not every LSC checked"; }
full=$(sed -n "s/.*the server's chain verified in \([0-9]*\) handshakes, recognised in \([0-9]*\).*/\1/p" "$tmp/load")
seen=$(sed -n "s/.*the server's chain verified in \([0-9]*\) handshakes, recognised in \([0-9]*\).*/\2/p" "$tmp/load")
[ -n "$full" ] && [ "$full" -ge 1 ] && [ "$full" -le 4 ] && [ $((full + seen)) -eq 24 ] ||
	{ cat "$tmp/load"; fail "load: the server's chain verified $full times, recognised $seen"; }
# A server the phones do not trust is refused by every one of them, the
# cache notwithstanding; 1 in 4 LSC signatures checked is said so.
"$CAPF_PHONE" load --count 8 --concurrency 2 --prefix SEPNOTRUST --mfg-dir "$tmp/mfg" \
	--ca "$tmp/mfg/mfg-ca.pem" --socket "$sock" --host 127.0.0.1 --port "$port" \
	--timeout 60 >"$tmp/load" 2>&1 && fail "load against an untrusted server succeeded"
grep -q "failed with CAPF_EUNTRUSTED (1009): 8" "$tmp/load" || { cat "$tmp/load"; fail "load: untrusted"; }
"$CAPF_PHONE" load --count 8 --concurrency 2 --prefix SEPSAMPLE --mfg-dir "$tmp/mfg" \
	--ca "$capf_ca" --socket "$sock" --host 127.0.0.1 --port "$port" --verify-every 4 \
	--timeout 60 >"$tmp/load" 2>&1 || { cat "$tmp/load"; fail "load --verify-every 4"; }
grep -q "the signature of 1 in N (--verify-every 4)" "$tmp/load" || { cat "$tmp/load"; fail "load: sample"; }

stop_capfd
grep -q "LSC installed" "$tmp/capfd.log" || fail "no success line in the log"
echo "PASS: $(echo $devices | wc -w) phones enrolled and verified, 24 more under load"
exit 0
