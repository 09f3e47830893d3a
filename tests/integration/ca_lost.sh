#!/bin/sh
# A CA directory lost or replaced under a store that holds certificates:
# capfd refuses to start and says why, instead of making a new CA that
# none of the LSCs in the field chains to. With the right CA back, it
# starts again.
set -u
. "$(dirname "$0")/lib.sh"

d=SEP0000000D0001
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $d >/dev/null || fail "mkmic"
start_capfd
ctl device add $d >/dev/null || fail "device add"
enroll $d >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "enrollment"; }
stop_capfd

# run_capfd DIR: capfd in the foreground on DIR; its exit status.
run_capfd() {
	rm -f "$tmp/ready.run"
	timeout 30 "$CAPFD" -d "$1" -l 127.0.0.1 -p 0 -w 1 -m "$tmp/mfg/mfg-ca.pem" \
		-r "$tmp/ready.run" >"$tmp/run.log" 2>&1 &
	run_pid=$!
	i=0
	while [ ! -s "$tmp/ready.run" ] && kill -0 "$run_pid" 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 600 ] || break
		sleep 0.05
	done
	if [ -s "$tmp/ready.run" ]; then
		kill -TERM "$run_pid"
		wait "$run_pid"
		return 0
	fi
	rc=0
	wait "$run_pid" || rc=$?
	return $rc
}

# The CA directory is gone (a power cut before its entries were durable,
# a restore that left it out): refused, and no new CA is made.
mv "$tmp/state/ca" "$tmp/ca.lost"
if run_capfd "$tmp/state"; then
	cat "$tmp/run.log"
	fail "capfd started without the CA that signed the store's certificates"
fi
grep -q "holds 1 certificates, but the CA directory .* has no CA" "$tmp/run.log" ||
	{ cat "$tmp/run.log"; fail "the refusal does not say why"; }
[ ! -e "$tmp/state/ca/current" ] || fail "a new CA was made over the store"

# Another CAPF's CA directory in its place: refused too.
run_capfd "$tmp/other" || { cat "$tmp/run.log"; fail "a second capfd on an empty directory"; }
rm -rf "$tmp/state/ca"
cp -a "$tmp/other/ca" "$tmp/state/ca"
rm -f "$tmp/state/ca/"*.sock
if run_capfd "$tmp/state"; then
	cat "$tmp/run.log"
	fail "capfd started with another CA than the one that signed the certificates"
fi
grep -q "none of the 1 certificates in the store .* was issued by a CA that" "$tmp/run.log" ||
	{ cat "$tmp/run.log"; fail "the refusal of another CA does not say why"; }

# The right CA back: it starts, and the phone's LSC is still ours.
rm -rf "$tmp/state/ca"
mv "$tmp/ca.lost" "$tmp/state/ca"
start_capfd
ctl device show $d >"$tmp/show" 2>&1 || { cat "$tmp/show"; fail "device show"; }
grep -q "^certificates: *1$" "$tmp/show" || { cat "$tmp/show"; fail "the certificate is gone"; }
stop_capfd
echo "PASS: a lost or replaced CA directory stops capfd with a reason"
exit 0
