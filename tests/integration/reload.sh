#!/bin/sh
# SIGHUP: a bad configuration is refused with every bad line reported and
# the running one kept; a good one applies the log level, the [admin]
# roles, the metrics listener, the limits and [auth], the [trust] MIC
# patterns, the TLS priority, [ca] supersede_grace (the sweep of
# superseded LSCs re-armed: on, shorter, off) and crl_refresh (the CRL
# timer set again), says which other changes wait for a restart and why,
# and drops no connection (a session that stalls across the reloads
# completes).
set -u
. "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null || { echo "SKIP: openssl not installed"; exit 77; }

d=SEP0000000H0001
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $d >/dev/null 2>&1 || fail "mkmic"
conf="$tmp/capfd.conf"
printf '[log]\nlevel = info\n[limits]\nidle_timeout = 30\n' >"$conf"
start_capfd -c "$conf"
ctl device add $d >/dev/null || fail "device add"

# A session that waits 3 s before its CSR, across both reloads.
enroll $d --stall csr:3000 >"$tmp/enroll" 2>&1 &
phone_pid=$!
sleep 0.5

# Bad: refused, every problem named with its line, the old one kept.
printf '[log]\nlevel = chatty\n[limits]\nidle_timeout = 0\n[metrics]\nlisten = x:y\n' >"$conf"
kill -HUP "$capfd_pid"
wait_log "reload refused" "no answer to SIGHUP" 5
grep -q "capfd.conf:2: \[log\] level must be" "$tmp/capfd.log" || fail "bad level not reported"
grep -q "capfd.conf:4: \[limits\] idle_timeout must be" "$tmp/capfd.log" ||
	fail "bad idle_timeout not reported"
grep -q "capfd.conf:6: \[metrics\] listen: must be" "$tmp/capfd.log" || fail "bad listen not reported"
ctl status >/dev/null || fail "capfd does not serve after a refused reload"

# Good: the log level now debug, a metrics listener, a limit, and a
# store option for later.
printf '[log]\nlevel = debug\n[limits]\nidle_timeout = 20\n[metrics]\nlisten = 127.0.0.1:0\n[admin]\nreadonly_users = 4242\n[store]\nqueue = 64\n' >"$conf"
kill -HUP "$capfd_pid"
wait_log "configuration reloaded" "no reload" 5
grep -q "configuration reloaded from .*: 4 changes applied, 1 at the next restart" "$tmp/capfd.log" ||
	fail "reload summary: $(grep reload "$tmp/capfd.log")"
grep -q "reload: \[limits\] idle_timeout changed: new sessions use it" "$tmp/capfd.log" ||
	fail "the live limit is not named"
grep -q "reload: \[store\] queue changed: it takes effect when capfd restarts (the store is opened with it at start)" \
	"$tmp/capfd.log" || fail "the restart-only change is not named with its reason"
ctl status >/dev/null || fail "status after the reload"
grep -q "debug: admin: status by uid" "$tmp/capfd.log" || fail "the log level was not applied"
grep -q "metrics on http://127.0.0.1:0/metrics" "$tmp/capfd.log" || fail "no metrics listener"
ctl stats --prometheus | grep -q "^capf_connections_total" || fail "stats after the reload"

# The session that ran across both reloads completes.
wait "$phone_pid" || { cat "$tmp/enroll"; fail "a session did not survive the reloads"; }
json $d
jhas '"status":"success"' "the session across the reloads"

# Live: [auth], [trust] and the TLS priority. Before: no null string, the
# MIC of any name from the test manufacturer, TLS 1.3 allowed.
n=SEP0000000H0002
m=SEP0000000H0003
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $m >/dev/null 2>&1 || fail "mkmic $m"
ctl device add $n --auth null >/dev/null || fail "device add $n"
ctl device add $m >/dev/null || fail "device add $m"
phone $n --no-mic >"$tmp/out" 2>&1 && fail "a null string before [auth] allow_null_string"
grep -q "1021 (CAPF_EAUTH)" "$tmp/out" || { cat "$tmp/out"; fail "a null string before: not 1021"; }
fpr=$(ctl trust list --mfg | awk '$1 == "mfg" { print $2; exit }')
[ -n "$fpr" ] || { ctl trust list --mfg; fail "no manufacturer root fingerprint"; }
openssl s_client -connect 127.0.0.1:$port -tls1_3 </dev/null >"$tmp/s13" 2>&1 ||
	true
grep -q "^New, TLSv1.3" "$tmp/s13" || { cat "$tmp/s13"; fail "TLS 1.3 before the reload"; }
# A session open across this reload keeps what it started with.
ctl device set $d --op install >/dev/null || fail "device set $d"
enroll $d --stall csr:2000 >"$tmp/enroll2" 2>&1 &
phone_pid=$!
sleep 0.3
printf '[log]\nlevel = debug\n[limits]\nidle_timeout = 20\n[metrics]\nlisten = 127.0.0.1:0\n[admin]\nreadonly_users = 4242\n[store]\nqueue = 64\n[auth]\nallow_null_string = yes\n[trust]\nmic_patterns = %s=SEPFFFF*\n[tls]\npriority = -VERS-TLS1.3\n' "$fpr" >"$conf"
kill -HUP "$capfd_pid"
i=0
until [ "$(grep -c "configuration reloaded" "$tmp/capfd.log")" -ge 2 ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "no second reload"; sleep 0.05
done
grep -q "reload: \[auth\] allow_null_string changed: new sessions use it" "$tmp/capfd.log" ||
	fail "[auth] not applied"
grep -q "reload: \[trust\] read again" "$tmp/capfd.log" || fail "[trust] not applied"
phone $n --no-mic >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "a null string after allow_null_string = yes"; }
enroll $m >"$tmp/out" 2>&1 && fail "a MIC outside the new [trust] mic_patterns enrolled"
grep -q "CAPF_EIDENTITY" "$tmp/out" || { cat "$tmp/out"; fail "mic_patterns: not CAPF_EIDENTITY"; }
openssl s_client -connect 127.0.0.1:$port -tls1_3 </dev/null >"$tmp/s13" 2>&1 &&
	grep -q "^New, TLSv1.3" "$tmp/s13" && fail "TLS 1.3 after [tls] priority = -VERS-TLS1.3"
openssl s_client -connect 127.0.0.1:$port -tls1_2 </dev/null >"$tmp/s12" 2>&1 || true
grep -q "^New, TLSv1.2" "$tmp/s12" || { cat "$tmp/s12"; fail "TLS 1.2 after the reload"; }
wait "$phone_pid" || { cat "$tmp/enroll2"; fail "a session did not survive the third reload"; }

# [ca] supersede_grace, live: turned on, shortened (the sweep re-armed
# with the new grace brings the revocation forward), turned off (the LSC
# still in its grace revoked at once).
reloads=2
reload() {
	kill -HUP "$capfd_pid"
	reloads=$((reloads + 1))
	i=0
	until [ "$(grep -c "configuration reloaded" "$tmp/capfd.log")" -ge $reloads ]; do
		i=$((i + 1)); [ $i -lt 100 ] || fail "no answer to reload $reloads"; sleep 0.05
	done
}
# cert_state SERIAL STATE SECONDS: the record of SERIAL gets STATE within SECONDS.
cert_state() {
	i=0
	while :; do
		json $g
		grep -q "\"serial\":\"$1\",\"state\":\"$2\"" "$tmp/json" && return 0
		i=$((i + 1))
		[ $i -lt $(($3 * 10)) ] || { cat "$tmp/json"; echo; fail "$1 is not $2 after $3 s"; }
		sleep 0.1
	done
}
rekey() {
	ctl device set $g --op install >/dev/null || fail "device set $g"
	enroll $g >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$g: install $1"; }
	cp "$tmp/$g.lsc.pem" "$tmp/G$1.pem"
}
g=SEP0000000H0004
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $g >/dev/null 2>&1 || fail "mkmic $g"
printf '[ca]\nsupersede_grace = 3600\n' >"$conf"
reload
grep -q "reload: \[ca\] supersede_grace changed: new sessions use it" "$tmp/capfd.log" ||
	fail "supersede_grace is not applied live"
grep -q "supersede_grace changed: it takes effect when capfd restarts" "$tmp/capfd.log" &&
	fail "supersede_grace still waits for a restart"
ctl device add $g >/dev/null || fail "device add $g"
rekey 1
rekey 2
g1=$(lsc_serial "$tmp/G1.pem")
cert_state "$g1" active 1 # superseded, inside the grace of an hour
# Shortened to 2 s: revoked within seconds, not at the end of the hour.
printf '[ca]\nsupersede_grace = 2\n' >"$conf"
reload
# The sweep runs from its timer once the reload is done, and the record
# of the acknowledgement that scheduled the revocation may still be on its
# way to the store: wait for it.
wait_log "superseded LSCs now end their grace within \[ca\] supersede_grace (2 s)" \
	"the shorter grace does not bring the revocation forward" 5
cert_state "$g1" revoked 8
jhas '"reason":"superseded"' "$g: the reason of the swept LSC"
# Off: an LSC superseded under a grace of an hour is revoked at once.
printf '[ca]\nsupersede_grace = 3600\n' >"$conf"
reload
rekey 3
g2=$(lsc_serial "$tmp/G2.pem")
cert_state "$g2" active 1
printf '[ca]\nsupersede_grace = 0\n' >"$conf"
reload
cert_state "$g2" revoked 3
# And with the grace off, the next one is revoked as it is superseded.
rekey 4
cert_state "$(lsc_serial "$tmp/G3.pem")" revoked 1

# [ca] crl_refresh, live: the CRL timer set again, the CRL signed anew
# every second.
printf '[ca]\ncrl_refresh = 1\n' >"$conf"
reload
grep -q "reload: the CRLs are signed again every 1 s" "$tmp/capfd.log" ||
	fail "crl_refresh is not applied live"
ctl crl --out "$tmp/crl1.der" >/dev/null 2>&1 || fail "crl"
sleep 2.2
ctl crl --out "$tmp/crl2.der" >/dev/null 2>&1 || fail "crl again"
cmp -s "$tmp/crl1.der" "$tmp/crl2.der" && fail "the CRL was not signed again after crl_refresh = 1"
stop_capfd
echo "PASS"
