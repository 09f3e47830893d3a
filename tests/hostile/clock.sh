#!/bin/sh
# The wall clock jumps while capfd runs. capfd (and its signer) run under
# libfaketime (Debian's faketime package) with a FAKETIME control file
# that the test rewrites: each call to the wall clock reads it
# (FAKETIME_NO_CACHE), and the monotonic clock is left alone
# (FAKETIME_DONT_FAKE_MONOTONIC), as a real clock step leaves it.
#   (a) A forward jump past an operation's deadline: the phone is refused
#       with 1030 (CAPF_EDEADLINE), logged, and its log line bears the
#       jumped time; back to the true time, the same phone enrolls.
#   (b) LSC validity follows the wall clock: 400 days ahead (the phone's
#       clock too), the LSC starts 300 s before the jumped time and lasts
#       [ca] lsc_days from it; 30 minutes back, it ends lsc_days after the
#       clock that was set back (and starts no earlier than its CA); a day
#       back, the phone's MIC is not yet valid on the server's clock: 1015
#       (CAPF_EEXPIRED).
#   (c) Timeouts use the monotonic clock: with the clock jumping a day
#       forward, then a day back, while connections wait in their TLS
#       handshake and a phone pauses before its CSR, the handshakes are
#       closed after handshake_timeout (not at the jump, not never) and
#       the phone, within idle_timeout, enrolls.
# The store checks clean. SKIP without libfaketime.
set -u
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/tests/hostile/lib.sh"
: "${HOLD:=$(pwd)/tests/hostile/hold}"
[ -x "$HOLD" ] || fail "$HOLD is not built"
lib=""
for d in /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib "/usr/lib/$(uname -m)-linux-gnu"; do
	[ -f "$d/faketime/libfaketimeMT.so.1" ] && { lib="$d/faketime/libfaketimeMT.so.1"; break; }
done
[ -n "$lib" ] || skip "libfaketime is not installed (Debian package faketime)"

ft="$tmp/faketime"
echo "+0" >"$ft"
FAKE="env LD_PRELOAD=$lib FAKETIME_TIMESTAMP_FILE=$ft FAKETIME_NO_CACHE=1 FAKETIME_DONT_FAKE_MONOTONIC=1"
# The preload works, or nothing below means anything.
echo "+400d" >"$ft"
y=$($FAKE date -u +%Y)
[ "$y" -gt "$(date -u +%Y)" ] || skip "libfaketime does not take effect here ($FAKE date: $y)"
echo "+0" >"$ft"

A=SEPCLK000001 B=SEPCLK000002 C=SEPCLK000003 S=SEPCLK000004
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $A $B $C $S >/dev/null || fail "mkmic"
cat >"$tmp/c.conf" <<EOF
[limits]
handshake_timeout = 3
idle_timeout = 3
EOF
CAPFD_WRAPPER=$FAKE start_capfd -c "$tmp/c.conf"
ctl device add $A $B $C $S >/dev/null || fail "device add"

# fake_phone NAME [options...]: enroll NAME with the phone's clock jumped
# as the server's.
fake_phone() {
	n=$1
	shift
	$FAKE "$CAPF_PHONE" enroll --name "$n" --mic "$tmp/mfg/$n.pem" --mic-key "$tmp/mfg/$n.key" \
		--ca "$capf_ca" --port "$port" --out-cert "$tmp/$n.lsc.pem" --out-key "$tmp/$n.lsc.key" "$@"
}
# cert_time FILE start|end: a certificate's notBefore or notAfter, unix time.
cert_time() {
	date -u -d "$(openssl x509 -in "$1" -noout -"$2"date | sed 's/^[^=]*=//')" +%s
}
# near A B SLACK WHAT: |A - B| <= SLACK, else fail.
near() {
	d=$(($1 - $2))
	[ "${d#-}" -le "$3" ] || fail "$4: off by $d s"
}
lsc_days=365

# ---- (a) a deadline passes on a forward jump --------------------------------------
ctl device set $A --deadline "$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)" >/dev/null ||
	fail "(a) device set --deadline"
echo "+2h" >"$ft"
refused 1030 enroll $A
# The outcome line may follow the Error on the wire by a little.
wait_log "device \"$A\": the operation's deadline has passed (CAPF_EDEADLINE)" "(a) the deadline"
grep "device \"$A\": the operation's deadline has passed (CAPF_EDEADLINE)" "$tmp/capfd.log" >"$tmp/line"
logged=$(date -u -d "$(cut -c1-19 "$tmp/line" | tr T ' ')" +%s)
near "$logged" $(($(date +%s) + 7200)) 60 "(a) the log line's time is not the jumped clock's"
echo "+0" >"$ft"
enroll $A >/dev/null 2>&1 || fail "(a) back to the true time, the phone cannot enroll"
echo "ok: (a) 2 hours ahead the deadline had passed (1030, logged at the jumped time);" \
	"back to the true time, it enrolled"

# ---- (b) LSC validity follows the wall clock ----------------------------------------
echo "+400d" >"$ft"
now=$(($(date +%s) + 400 * 86400))
fake_phone $B >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "(b) no enrollment 400 days ahead"; }
near "$(cert_time "$tmp/$B.lsc.pem" start)" $((now - 300)) 30 "(b) 400 days ahead: notBefore"
near "$(cert_time "$tmp/$B.lsc.pem" end)" $((now + lsc_days * 86400)) 30 \
	"(b) 400 days ahead: notAfter"
echo "-30m" >"$ft"
now=$(($(date +%s) - 1800))
enroll $C >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "(b) no enrollment 30 minutes back"; }
near "$(cert_time "$tmp/$C.lsc.pem" end)" $((now + lsc_days * 86400)) 30 \
	"(b) 30 minutes back: notAfter"
[ "$(cert_time "$tmp/$C.lsc.pem" start)" -ge "$(cert_time "$capf_ca" start)" ] ||
	fail "(b) 30 minutes back: the LSC starts before its CA"
echo "-1d" >"$ft"
ctl device set $C --op install >/dev/null || fail "(b) device set"
refused 1015 enroll $C
wait_log "device \"$C\": certificate expired or not yet valid (CAPF_EEXPIRED)" \
	"(b) the MIC not yet valid"
echo "+0" >"$ft"
echo "ok: (b) the LSC's validity follows the wall clock 400 days ahead and 30 minutes back;" \
	"a day back the MIC was not yet valid (1015)"

# ---- (c) timeouts ignore the wall clock ---------------------------------------------
"$HOLD" 127.0.0.1 "$port" 40 10 4 0 >"$tmp/held" &
hp=$!
fake_phone $S --stall csr:2000 >"$tmp/stall.out" 2>&1 &
sp=$!
# Both jumps, and the way back, come while they wait (the phone's CSR
# after them: an LSC made on a day-old clock would not verify on the
# phone's).
sleep 0.3
echo "+1d" >"$ft"
sleep 0.6
echo "-1d" >"$ft"
sleep 0.6
echo "+0" >"$ft"
rc=0
wait $sp || rc=$?
[ $rc -eq 0 ] || { cat "$tmp/stall.out"; fail "(c) the pausing phone failed across the jumps"; }
wait $hp
read -r _ opened _ refused_n _ closed _ early _ max _ min _ errors _ code <"$tmp/held"
[ "$opened" -eq 40 ] && [ "$closed" -eq 40 ] || fail "(c) held: $(cat "$tmp/held")"
[ "$min" -ge 2900 ] && [ "$max" -le 4500 ] ||
	fail "(c) handshakes closed from $min to $max ms, not at handshake_timeout = 3 s"
json $S
jhas '"status":"success"' "(c) the pausing phone's install is not recorded"
echo "ok: (c) a day forward and back: 40 handshakes closed after ${min}..${max} ms, a phone" \
	"paused 2 s of idle_timeout = 3 s and enrolled"

kill -0 "$capfd_pid" || fail "capfd died"
stop_capfd
offline_checks "after the clock jumps"
echo "PASS"
