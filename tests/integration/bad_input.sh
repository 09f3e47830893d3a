#!/bin/sh
# Bad input: each case gets its specific error code on the wire, a log
# line naming it, and leaves the store exactly as it was.
set -u
. "$(dirname "$0")/lib.sh"

"$CAPF_PHONE" mkmic --dir "$tmp/mfg" SEPGOOD SEPIDLE SEPATTACKER SEPVICTIM SEPUNKNOWN \
	>/dev/null || fail "mkmic"
"$CAPF_PHONE" mkmic --dir "$tmp/rogue" SEPGOOD >/dev/null || fail "mkmic rogue"

start_capfd
ctl device add SEPGOOD SEPVICTIM SEPATTACKER >/dev/null || fail "device add"
ctl device add SEPIDLE --op none >/dev/null || fail "device add --op none"

# What the store holds: every device record (all fields) and the number
# of certificates. Bad input must change none of it; only the audit log
# (which records each attempt) may grow.
store_digest() {
	{
		ctl --json device list || fail "device list"
		ctl status | grep -E '^(devices|certificates):' || fail "status"
	} | md5sum
}
# expect CODE NAME DESCRIPTION -- enroll arguments...
expect() {
	code=$1 ename=$2 what=$3
	shift 4
	before=$(store_digest)
	lines=$(wc -l <"$tmp/capfd.log")
	rc=0
	out=$("$@" 2>&1) || rc=$?
	[ "$rc" -eq 1 ] || fail "$what: capf-phone exit $rc (expected 1): $out"
	echo "$out" | grep -q "$code" || fail "$what: expected error $code, got: $out"
	echo "$out" | grep -q "$ename" || fail "$what: expected $ename, got: $out"
	# The log line may follow the phone's exit by a moment.
	i=0
	until tail -n +"$((lines + 1))" "$tmp/capfd.log" | grep -q "$ename"; do
		i=$((i + 1))
		[ $i -lt 40 ] || fail "$what: no log line with $ename"
		sleep 0.05
	done
	[ "$(store_digest)" = "$before" ] || fail "$what: the store changed"
	echo "ok: $what -> $code $ename"
}

phone() {
	"$CAPF_PHONE" enroll --ca "$capf_ca" --host 127.0.0.1 --port "$port" \
		--out-cert "$tmp/out.pem" --out-key "$tmp/out.key" "$@"
}
mic() {
	echo --name "$2" --mic "$tmp/$1/$2.pem" --mic-key "$tmp/$1/$2.key"
}

expect 1006 CAPF_EUNKNOWN_DEVICE "unknown device" -- phone $(mic mfg SEPUNKNOWN)
expect 1007 CAPF_ENO_OPERATION "no pending operation" -- phone $(mic mfg SEPIDLE)
expect 1009 CAPF_EUNTRUSTED "MIC from an untrusted CA" -- phone $(mic rogue SEPGOOD)
expect 1010 CAPF_EIDENTITY "MIC of another device" -- phone $(mic mfg SEPATTACKER) --claim SEPVICTIM
expect 1013 CAPF_EBINDING "CSR bound to another session" -- phone $(mic mfg SEPGOOD) --bad-binding
expect 1012 CAPF_ECSRSIG "CSR with a bad signature" -- phone $(mic mfg SEPGOOD) --bad-csr-signature
expect 1001 CAPF_EFRAME_TOO_BIG "oversized frame" -- phone $(mic mfg SEPGOOD) --oversized-frame
expect 1005 CAPF_EORDER "message out of order" -- phone $(mic mfg SEPGOOD) --out-of-order
expect 1014 CAPF_EPOLICY "key of the wrong type" -- phone $(mic mfg SEPGOOD) --key-type ec-p384

# Nothing above disturbed the device: it still enrolls.
phone $(mic mfg SEPGOOD) >/dev/null 2>&1 || fail "SEPGOOD cannot enroll after the bad input"
cp "$tmp/out.key" "$tmp/good.key"
# Another device's key: SEPGOOD's LSC holds it, so SEPCOPY gets none.
ctl device add SEPCOPY >/dev/null || fail "device add SEPCOPY"
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" SEPCOPY >/dev/null || fail "mkmic SEPCOPY"
expect 1032 CAPF_EKEYINUSE "a key certified for another device" -- \
	phone $(mic mfg SEPCOPY) --reuse-key "$tmp/good.key"
ctl --json device show SEPGOOD | tr -d ' \n' | grep -q '"status":"success"' ||
	fail "SEPGOOD not recorded as success"

# A phone that takes its certificate but never acknowledges it leaves a
# recorded, unconfirmed certificate and a pending operation.
ctl device add SEPNOACK >/dev/null || fail "device add SEPNOACK"
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" SEPNOACK >/dev/null || fail "mkmic SEPNOACK"
phone $(mic mfg SEPNOACK) --no-ack >/dev/null 2>&1
ctl --json device show SEPNOACK | tr -d ' \n' | grep -q '"status":"issued"' ||
	fail "SEPNOACK: certificate not recorded as issued"

# Garbage instead of TLS and a silent client: the server stays up.
timeout 5 bash -c "printf 'GET / HTTP/1.0\\r\\n\\r\\n' > /dev/tcp/127.0.0.1/$port" 2>/dev/null || true
ctl status >/dev/null || fail "capfd not answering after garbage"

# Many sessions from one address failing before they authenticate: the
# audit log counts them, it does not grow with each (one entry per source
# and interval, written at the latest when capfd stops).
i=0
while [ $i -lt 40 ]; do
	phone $(mic mfg SEPUNKNOWN) >/dev/null 2>&1
	i=$((i + 1))
done
stop_capfd
"$CAPFCTL" audit show -d "$tmp/state" --kind auth-fail >"$tmp/authfail" ||
	fail "audit show --kind auth-fail"
[ "$(wc -l <"$tmp/authfail")" -le 3 ] ||
	{ cat "$tmp/authfail"; fail "each unauthenticated failure has its own audit entry"; }
grep -q "4[0-9] failures (auth-fail) from 127.0.0.1 since" "$tmp/authfail" ||
	{ cat "$tmp/authfail"; fail "the count of unauthenticated failures is not in the audit log"; }
"$CAPFCTL" audit verify -d "$tmp/state" >/dev/null || fail "audit verify"
echo "PASS: bad input rejected with specific codes, store unchanged"
exit 0
