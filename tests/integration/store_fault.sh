#!/bin/sh
# The store fails closed: while its writes fail (the fault-injection seam,
# as a full disk or an I/O error would), no certificate is issued and the
# phone is told to retry later (CAPF_ERETRY, 1016); everything that needs
# no write goes on working; the fault is logged once per interval, not
# once per phone; and when writes work again the same phone enrolls, with
# nothing to restart. The audit log keeps every attempt, in order.
set -u
. "$(dirname "$0")/lib.sh"

"$CAPF_PHONE" mkmic --dir "$tmp/mfg" SEPFAULT00001 SEPFAULT00002 SEPFAULT00004 >/dev/null ||
	fail "mkmic"

# Without [testing] fault_injection the seam stays shut.
start_capfd
ctl device add SEPFAULT00001 SEPFAULT00002 >/dev/null || fail "device add"
out=$(ctl store fault ENOSPC 2>&1) && fail "store fault accepted without fault_injection"
echo "$out" | grep -q "fault_injection" || fail "refusal does not say what to set: $out"
stop_capfd

printf '[testing]\nfault_injection = yes\n' >"$tmp/capfd.conf"
start_capfd -c "$tmp/capfd.conf"
ctl store fault bogus >/dev/null 2>&1 && fail "an unknown fault was accepted"
ctl store fault ENOSPC >/dev/null || fail "store fault ENOSPC"
ctl --json store info | grep -q '"fault":"ENOSPC"' || fail "store info does not show the fault"

# Three phones try: each gets 1016, none gets a certificate.
for i in 1 2 3; do
	rc=0
	out=$(enroll SEPFAULT00001 2>&1) || rc=$?
	[ "$rc" -eq 1 ] || fail "enrollment $i during the fault: exit $rc: $out"
	echo "$out" | grep -q "1016" || fail "enrollment $i: expected 1016, got: $out"
	echo "$out" | grep -q "CAPF_ERETRY" || fail "enrollment $i: expected CAPF_ERETRY: $out"
	[ -s "$tmp/SEPFAULT00001.lsc.pem" ] && fail "a certificate was written during the fault"
done

# Reads need no write: they work.
ctl --json device show SEPFAULT00001 | tr -d ' \n' | grep -q '"status":"pending"' ||
	fail "device show during the fault"
ctl device list >/dev/null || fail "device list during the fault"
ctl status >/dev/null || fail "status during the fault"
ctl --json store info | tr -d ' \n' | grep -q '"write_failures":[1-9]' ||
	fail "store info does not count the failures"
# An admin change that needs a write is refused, and says why.
out=$(ctl device add SEPFAULT00003 2>&1) && fail "device add succeeded during the fault"
echo "$out" | grep -qi "space" || fail "device add refusal: $out"

# The fault is logged once for the interval, not once per phone.
n=$(grep -c "store: write to .* failed: No space left on device" "$tmp/capfd.log")
[ "$n" -eq 1 ] || fail "the fault was logged $n times (expected once per interval)"

# Writes work again: the same phone enrolls, without a restart.
ctl store fault off >/dev/null || fail "store fault off"
enroll SEPFAULT00001 >"$tmp/enroll.out" 2>&1 || { cat "$tmp/enroll.out"; fail "enroll after the fault"; }
[ -s "$tmp/SEPFAULT00001.lsc.pem" ] || fail "no certificate after the fault"
ctl --json device show SEPFAULT00001 | tr -d ' \n' | grep -q '"status":"success"' ||
	fail "not recorded as success"
i=0
until grep -q "store: writes succeed again" "$tmp/capfd.log"; do
	i=$((i + 1))
	[ $i -lt 40 ] || fail "no log line saying that writes work again"
	sleep 0.05
done
enroll SEPFAULT00002 >/dev/null 2>&1 || fail "another phone after the fault"

# EIO is handled the same way.
ctl device add SEPFAULT00004 >/dev/null || fail "device add SEPFAULT00004"
ctl store fault EIO >/dev/null || fail "store fault EIO"
out=$(enroll SEPFAULT00004 2>&1) && fail "enrollment succeeded during EIO"
echo "$out" | grep -q "CAPF_ERETRY" || fail "during EIO: expected CAPF_ERETRY, got: $out"
grep -q "store: write to .* failed: Input/output error" "$tmp/capfd.log" || fail "EIO not logged"
ctl store fault off >/dev/null || fail "store fault off (EIO)"
enroll SEPFAULT00004 >/dev/null 2>&1 || fail "enroll after EIO"

# The audit log has every attempt: the three failures (written once the
# disk took them), then the issuance and its acknowledgement.
"$CAPFCTL" audit show -d "$tmp/state" --device SEPFAULT00001 --json >"$tmp/audit.json" ||
	fail "audit show"
tr -d ' \n' <"$tmp/audit.json" >"$tmp/audit1"
[ "$(grep -o '"kind":"enroll-fail","device":"SEPFAULT00001"' "$tmp/audit1" | wc -l)" -eq 3 ] ||
	{ cat "$tmp/audit.json"; fail "the failed attempts are not in the audit log"; }
grep -q '"code":1016' "$tmp/audit1" || fail "the audit log lacks code 1016"
grep -q '"kind":"issue","device":"SEPFAULT00001"' "$tmp/audit1" || fail "no issue entry"
grep -q '"kind":"ack","device":"SEPFAULT00001"' "$tmp/audit1" || fail "no ack entry"
"$CAPFCTL" audit show -d "$tmp/state" --kind store | grep -q "fault injection" ||
	fail "the fault injection is not audited"
"$CAPFCTL" audit verify -d "$tmp/state" >"$tmp/verify" || { cat "$tmp/verify"; fail "audit verify"; }

stop_capfd
"$CAPFCTL" store check -d "$tmp/state" >"$tmp/check" || { cat "$tmp/check"; fail "store check"; }
echo "PASS: no certificate while the store failed, reads served, fault logged once, recovered"
exit 0
