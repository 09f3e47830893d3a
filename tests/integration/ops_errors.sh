#!/bin/sh
# Error codes that no other script provokes (doc/errors.md lists them all
# with the case that provokes each): an unsupported protocol version, a
# Hello that fails validation, no client certificate, two sessions of one
# device, an operation changed by the administrator in mid-session, and a
# server shutting down under a session; and too many connections from one
# address, which are closed before TLS, without a code.
set -u
. "$(dirname "$0")/lib.sh"

cat >"$tmp/capfd.conf" <<'CONF'
[limits]
max_per_source = 2
shutdown_timeout = 0
CONF
V=SEP00000000C001 # versions and validation
C=SEP00000000C002 # no certificate
B=SEP00000000C003 # busy
X=SEP00000000C004 # cancelled
Z=SEP00000000C005 # shutdown
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $V $C $B $X $Z >/dev/null || fail "mkmic"
start_capfd -c "$tmp/capfd.conf"
ctl device add $V $C $B $X $Z >/dev/null || fail "device add"

# 1004: a version this server does not speak.
refused 1004 enroll $V --protocol-version 3
# 1003: a Hello whose authentication string is longer than 128 bytes.
long=$(printf '%0200d' 7)
refused 1003 enroll $V --auth-string "$long"
json $V
jhas '"op":"install","auth":"mic"' "$V: refusals changed the record"
jhas '"status":"pending"' "$V: refusals changed the status"

# 1008: mode mic and no client certificate at all.
refused 1008 phone $C --no-mic

# 16: a second session of a device while the first one runs.
enroll $B --stall csr:1500 >"$tmp/b1" 2>&1 &
b1=$!
sleep 0.5
refused 16 enroll $B --out-cert "$tmp/x.pem" --out-key "$tmp/x.key"
wait $b1 || { cat "$tmp/b1"; fail "$B: the first session failed"; }
json $B
jhas '"status":"success"' "$B: the first session did not complete"
ctl device show $B | grep -q "^certificates: *1$" || fail "$B: the second session issued"

# A third connection from one address with max_per_source = 2 is closed
# before TLS: no code on the wire, the phone sees a connection failure.
enroll $B --stall hello:1500 --out-cert "$tmp/x.pem" --out-key "$tmp/x.key" >/dev/null 2>&1 &
p1=$!
enroll $C --stall hello:1500 --out-cert "$tmp/x.pem" --out-key "$tmp/x.key" >/dev/null 2>&1 &
p2=$!
sleep 0.5
rc=0
out=$(enroll $V 2>&1) || rc=$?
wait $p1 $p2 2>/dev/null
[ $rc -eq 3 ] || fail "a third connection from one address: status $rc: $out"

# 1028: the administrator cancels the operation while the phone works.
enroll $X --stall csr:1000 >"$tmp/x1" 2>&1 &
x1=$!
sleep 0.4
ctl device set $X --op none >/dev/null || fail "$X: device set --op none"
rc=0
wait $x1 || rc=$?
[ $rc -eq 1 ] && grep -q " 1028 (CAPF_ECANCELED)" "$tmp/x1" || { cat "$tmp/x1"; fail "$X: not cancelled"; }
json $X
jhas '"lsc_serial":null' "$X: a cancelled install issued"

# 1025: the server stops under a session.
enroll $Z --stall csr:1500 >"$tmp/z1" 2>&1 &
z1=$!
sleep 0.5
stop_capfd
rc=0
wait $z1 || rc=$?
[ $rc -ne 0 ] || { cat "$tmp/z1"; fail "$Z: a session completed across the shutdown"; }
grep -q " 1025 (CAPF_ESHUTDOWN)" "$tmp/z1" || { cat "$tmp/z1"; fail "$Z: no 1025"; }
echo "PASS: 1003, 1004, 1008, 16, 1028 and 1025 provoked; the per-source limit closes"
exit 0
