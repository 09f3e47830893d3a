#!/bin/sh
# A device's records as capfctl shows them: every certificate the device
# was issued (current, past, revoked) with its role, the record's revision
# and operation generation, in the table and in --json; admin writes keep
# what the phone session recorded; all of it survives a restart.
set -u
. "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null || { echo "SKIP: openssl not installed"; exit 77; }

d=SEP0000000C0001
other=SEP0000000C0002
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $d $other >/dev/null || fail "mkmic"
start_capfd
ctl device add $d $other >/dev/null || fail "device add"
serial() { openssl x509 -in "$tmp/$1.lsc.pem" -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f'; }
show() { ctl device show $d >"$tmp/show" 2>&1 || { cat "$tmp/show"; fail "device show"; }; }
json() { ctl --json device show $d | tr -d ' \n' >"$tmp/json" || fail "device show --json"; }
has() { grep -qi -- "$1" "$tmp/$2" || { cat "$tmp/$2"; fail "$3"; }; }

# Before any enrollment: no certificate, revision 1, generation 1.
show
has "^certificates: *0$" show "a new device lists certificates"
has "^revision: *1$" show "a new device is not at revision 1"
has "^op generation: *1$" show "a new device is not at generation 1"
json
has '"revision":1,"op_generation":1,' json "json: revision"
has '"certificates":\[\]' json "json: certificates of a new device"

enroll $d >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "first enrollment"; }
s1=$(serial $d)
enroll $other >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "enrollment of $other"; }
show
has "^certificates: *1$" show "one enrollment, not one certificate"
has "^  current  *$s1  *active " show "the LSC is not listed as current"

# Scheduling again: the admin's fields change, a new generation, status
# pending, and what the session recorded (the LSC) stays.
ctl device set $d --op install --key ec-p384 >/dev/null || fail "device set"
show
has "^status: *pending$" show "rescheduled, not pending"
has "^key type: *ec-p384$" show "key type not set"
has "^op generation: *2$" show "rescheduling did not start a new generation"
has "^lsc serial: *$s1$" show "the admin write lost the LSC"

enroll $d >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "second enrollment"; }
s2=$(serial $d)
[ "$s1" != "$s2" ] || fail "the same serial twice"
# The acknowledged second LSC supersedes the first: revoked by the server.
show
has "^certificates: *2$" show "two enrollments, not two certificates"
has "^  past  *$s1  *revoked .* superseded$" show "the first LSC is not past and revoked"
has "^  current  *$s2  *active " show "the second LSC is not current"
# (The order, oldest first, is the store's; both were issued within one
# second here, so tests/test_store.c checks it.)
json
has "\"role\":\"past\",\"serial\":\"$s1\",\"state\":\"revoked\"" json "json: the past LSC"
has '"reason":"superseded"' json "json: the reason"
has "\"role\":\"current\",\"serial\":\"$s2\",\"state\":\"active\"" json "json: the current LSC"
has '"op_generation":2,' json "json: generation"
has '"pending_serial":null' json "json: pending serial"
# The other device's certificate is not this one's.
ctl device show $other >"$tmp/show2" || fail "device show $other"
has "^certificates: *1$" show2 "$other lists another device's certificates"

# Admin writes racing each other: each one that loses re-reads and tries
# again, so every one is applied and none is lost.
rev0=$(sed -n 's/^revision: *//p' "$tmp/show")
gen0=$(sed -n 's/^op generation: *//p' "$tmp/show")
pids=""
for k in ec-p256 ec-p384 rsa-2048 rsa-3072 ec-p256 ec-p384 rsa-2048 rsa-3072; do
	ctl device set $d --op install --key $k >"$tmp/race.$k.$$" 2>&1 &
	pids="$pids $!"
done
for p in $pids; do
	wait "$p" || { cat "$tmp"/race.*; fail "a concurrent device set failed"; }
done
show
[ "$(sed -n 's/^revision: *//p' "$tmp/show")" -eq $((rev0 + 8)) ] ||
	{ cat "$tmp/show"; fail "concurrent device set: revisions lost (from $rev0)"; }
# A new generation for each write that asked for another key type than
# the one before it (which one came first is the race's).
gen1=$(sed -n 's/^op generation: *//p' "$tmp/show")
[ "$gen1" -gt "$gen0" ] && [ "$gen1" -le $((gen0 + 8)) ] ||
	{ cat "$tmp/show"; fail "concurrent device set: generation $gen1 (from $gen0)"; }
has "^lsc serial: *$s2$" show "concurrent device set lost the LSC"

# The records and the index come back from the files.
stop_capfd
start_capfd
show
has "^certificates: *2$" show "certificates lost on restart"
has "^  past  *$s1  *revoked " show "the past LSC after restart"
has "^  current  *$s2  *active " show "the current LSC after restart"
ctl store compact >/dev/null || fail "store compact"
stop_capfd
start_capfd
show
has "^certificates: *2$" show "certificates lost after compaction"
stop_capfd
echo "PASS: device show lists every certificate of a device with its role"
exit 0
