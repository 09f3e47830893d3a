#!/bin/sh
# An audit event that waits for its session's next write (an
# authentication, queued without waking the store writer) reaches the
# audit file within moments even when that write does not come soon: a
# phone that stalls before its CSR still has its authentication on file,
# and a capfd killed with SIGKILL meanwhile keeps it.
set -u
. "$(dirname "$0")/lib.sh"

D=SEP00000000A701
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $D >/dev/null || fail "mkmic"
start_capfd
ctl device add $D >/dev/null || fail "device add"

# The phone authenticates by its MIC, then waits 20 s before its CSR.
enroll $D --stall csr:20000 --timeout 60 >"$tmp/phone.out" 2>&1 &
phone_pid=$!

# Its authentication is in the audit file while the session still waits.
found=0
i=0
while [ $i -lt 50 ]; do
	if ctl audit show -d "$tmp/state" --device $D 2>/dev/null | grep -q " auth-ok "; then
		found=1
		break
	fi
	i=$((i + 1))
	sleep 0.1
done
kill -0 "$phone_pid" 2>/dev/null || { cat "$tmp/phone.out"; fail "the phone's session ended early"; }
[ $found -eq 1 ] || {
	ctl audit show -d "$tmp/state" 2>&1 | tail -5
	fail "no audit entry of the authentication after 5 s while the session waits"
}
ctl audit show -d "$tmp/state" --device $D >"$tmp/before" 2>&1

# Killed: the entry was written, not only queued.
kill -KILL "$capfd_pid"
wait "$capfd_pid" 2>/dev/null
capfd_pid=""
kill "$phone_pid" 2>/dev/null
wait "$phone_pid" 2>/dev/null
start_capfd
ctl audit show -d "$tmp/state" --device $D >"$tmp/after" 2>&1 || { cat "$tmp/after"; fail "audit show"; }
grep " auth-ok " "$tmp/before" | while read -r line; do
	grep -qF "$line" "$tmp/after" || { echo "$line"; exit 1; }
done || fail "an audit entry written before the kill is gone after it"
ctl audit verify -d "$tmp/state" >"$tmp/verify" 2>&1 || { cat "$tmp/verify"; fail "audit verify"; }
stop_capfd
echo "PASS: a stalled session's authentication is on file at once and survives SIGKILL"
