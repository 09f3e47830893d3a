#!/bin/sh
# [log] syslog = yes: lines go to /dev/log; when syslog cannot be
# reached, capfd says so once on standard error and logs there instead.
set -u
. "$(dirname "$0")/lib.sh"

d=SEP0000000L0001
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $d >/dev/null 2>&1 || fail "mkmic"
printf '[log]\nsyslog = yes\n' >"$tmp/capfd.conf"
start_capfd -c "$tmp/capfd.conf"
ctl device add $d >/dev/null || fail "device add"
enroll $d >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "enroll"; }
stop_capfd
if [ -S /dev/log ]; then
	# Reached: the lines are not on standard error.
	grep -q "LSC installed" "$tmp/capfd.log" && fail "a line went to stderr with syslog reachable"
	grep -q "cannot log to syslog" "$tmp/capfd.log" && fail "syslog said unreachable"
	echo "PASS: syslog reached at /dev/log"
else
	[ "$(grep -c "cannot log to syslog (/dev/log: " "$tmp/capfd.log")" -ge 1 ] ||
		fail "no word that syslog cannot be reached"
	# Once per process (capfd and its signer), not once per line.
	[ "$(grep -c "cannot log to syslog" "$tmp/capfd.log")" -le 2 ] || fail "said more than once"
	grep -q "info: .*device \"$d\": LSC installed" "$tmp/capfd.log" ||
		fail "the lines did not fall back to stderr"
	echo "PASS: no /dev/log: said once, logged to stderr"
fi
