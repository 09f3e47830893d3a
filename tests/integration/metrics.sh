#!/bin/sh
# Observability: capfctl status (uptime, pending operations,
# unacknowledged LSCs, CA expiry), capfctl stats --prometheus, and the
# [metrics] HTTP listener scraped with curl and parsed as the Prometheus
# text format.
set -u
. "$(dirname "$0")/lib.sh"

command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 77; }

a=SEP0000000M0001
b=SEP0000000M0002
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $a $b >/dev/null 2>&1 || fail "mkmic"
printf '[metrics]\nlisten = 127.0.0.1:0\n' >"$tmp/capfd.conf"
start_capfd -c "$tmp/capfd.conf"
mport=$(sed -n 's/^metrics_port=//p' "$tmp/ready")
[ -n "$mport" ] && [ "$mport" -gt 0 ] || fail "no metrics_port in the ready file"
ctl device add $a $b >/dev/null || fail "device add"
enroll $a >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "enroll"; }

ctl status >"$tmp/status" || fail "status"
for k in "^uptime: *0d 00h" "^pending: *1$" "^unacknowledged: *0$" "^ca expires: *20" \
	"^enrollments: *1$"; do
	grep -q "$k" "$tmp/status" || { cat "$tmp/status"; fail "status lacks $k"; }
done
ctl --json status | grep -q '"pending_operations":1,"unacknowledged":0,"ca_not_after":"20' ||
	fail "status --json"

# The text format, from the admin socket.
ctl stats --prometheus >"$tmp/prom" || fail "stats --prometheus"
# Every line is a comment (HELP/TYPE) or NAME[{LABELS}] VALUE, every
# sample's family has a TYPE, and the values are numbers.
check_format() {
	awk '
	/^# HELP [a-z_]+ / { next }
	/^# TYPE [a-z_]+ (counter|gauge|histogram|summary|untyped)$/ { typed[$3] = 1; next }
	/^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+]+$/ {
		name = $1; sub(/\{.*/, "", name)
		if (!(name in typed)) { print "untyped: " $0; bad = 1 }
		n++; next
	}
	{ print "bad line: " $0; bad = 1 }
	END { if (n < 20) { print "only " n " samples"; bad = 1 } exit bad }' "$1"
}
check_format "$tmp/prom" || fail "stats --prometheus is not the text format"
value() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }
[ "$(value 'capf_sessions_total{result="success"}' "$tmp/prom")" = 1 ] || fail "sessions success"
[ "$(value 'capf_pending_operations{op="install"}' "$tmp/prom")" = 1 ] || fail "pending install"
[ "$(value 'capf_certificates{state="active"}' "$tmp/prom")" = 1 ] || fail "active certificates"
[ "$(value 'capf_devices{status="success"}' "$tmp/prom")" = 1 ] || fail "devices by status"
grep -q '^capf_ca_not_after_timestamp_seconds{id="[0-9a-f]*",current="yes"} [0-9]' "$tmp/prom" ||
	fail "CA expiry"
[ "$(value capf_lsc_soonest_expiry_timestamp_seconds "$tmp/prom")" -gt 0 ] || fail "LSC expiry"
grep -q '^capf_store_group_commit_size [0-9.]*$' "$tmp/prom" || fail "group commit size"
ctl stats >"$tmp/plain" || fail "stats"
grep -q "^#" "$tmp/plain" && fail "stats without --prometheus prints comments"

# The HTTP listener: the same families (rendered every few seconds).
curl -sf "http://127.0.0.1:$mport/metrics" -o "$tmp/scrape" -D "$tmp/headers" ||
	fail "cannot scrape the metrics listener"
grep -qi "^content-type: text/plain; version=0.0.4" "$tmp/headers" || fail "content type"
check_format "$tmp/scrape" || fail "the scrape is not the text format"
grep -q "^capf_connections_total " "$tmp/scrape" || fail "scrape: connections"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$mport/other")
[ "$code" = 404 ] || fail "another path: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$mport/metrics")
[ "$code" = 405 ] || fail "POST: $code"
stop_capfd

# A bad listen value is refused at start-up.
printf '[metrics]\nlisten = localhost:abc\n' >"$tmp/bad.conf"
"$CAPFD" -c "$tmp/bad.conf" -d "$tmp/state2" -p 0 >"$tmp/out" 2>&1 && fail "a bad [metrics] listen"
grep -q "\[metrics\] listen: must be" "$tmp/out" || fail "bad listen: $(cat "$tmp/out")"
echo "PASS"
