#!/bin/sh
# SIGHUP: a bad configuration is refused with every bad line reported and
# the running one kept; a good one applies the log level, the [admin]
# roles and the metrics listener at once, says which other changes wait
# for a restart, and drops no connection (a session that stalls across
# both reloads completes).
set -u
. "$(dirname "$0")/lib.sh"

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
i=0
until grep -q "reload refused" "$tmp/capfd.log"; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "no answer to SIGHUP"; sleep 0.05
done
grep -q "capfd.conf:2: \[log\] level must be" "$tmp/capfd.log" || fail "bad level not reported"
grep -q "capfd.conf:4: \[limits\] idle_timeout must be" "$tmp/capfd.log" ||
	fail "bad idle_timeout not reported"
grep -q "capfd.conf:6: \[metrics\] listen: must be" "$tmp/capfd.log" || fail "bad listen not reported"
ctl status >/dev/null || fail "capfd does not serve after a refused reload"

# Good: the log level now debug, a metrics listener, a limit for later.
printf '[log]\nlevel = debug\n[limits]\nidle_timeout = 20\n[metrics]\nlisten = 127.0.0.1:0\n[admin]\nreadonly_users = 4242\n' >"$conf"
kill -HUP "$capfd_pid"
i=0
until grep -q "configuration reloaded" "$tmp/capfd.log"; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "no reload"; sleep 0.05
done
grep -q "configuration reloaded from .*: 3 changes applied, 1 at the next restart" "$tmp/capfd.log" ||
	fail "reload summary: $(grep reload "$tmp/capfd.log")"
grep -q "reload: \[limits\] idle_timeout changed: it takes effect when capfd restarts" \
	"$tmp/capfd.log" || fail "the restart-only change is not named"
ctl status >/dev/null || fail "status after the reload"
grep -q "debug: admin: status by uid" "$tmp/capfd.log" || fail "the log level was not applied"
grep -q "metrics on http://127.0.0.1:0/metrics" "$tmp/capfd.log" || fail "no metrics listener"
ctl stats --prometheus | grep -q "^capf_connections_total" || fail "stats after the reload"

# The session that ran across both reloads completes.
wait "$phone_pid" || { cat "$tmp/enroll"; fail "a session did not survive the reloads"; }
json $d
jhas '"status":"success"' "the session across the reloads"
stop_capfd
echo "PASS"
