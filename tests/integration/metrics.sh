#!/bin/sh
# Observability: capfctl status (uptime, pending operations,
# unacknowledged LSCs, CA expiry), capfctl stats --prometheus, and the
# [metrics] HTTP listener scraped with curl and parsed as the Prometheus
# text format.
set -u
. "$(dirname "$0")/lib.sh"

command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 77; }
command -v certtool >/dev/null || { echo "SKIP: certtool (gnutls-bin) not installed"; exit 77; }

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

# One line per outcome: device, operation, result, serial, key, duration, peer.
sa=$(certtool -i --infile "$tmp/$a.lsc.pem" | sed -n 's/^[[:space:]]*Serial Number (hex): //p' |
	tr a-f A-F)
grep -q "^.* info: 127.0.0.1:[0-9]*: device \"$a\": LSC installed (authenticated by mic); op install, serial $sa, key ec-p256, [0-9.]* s$" "$tmp/capfd.log" ||
	fail "no outcome line with operation, serial, key and duration"
# A failure, counted by its code: device b with the MIC of device a.
"$CAPF_PHONE" enroll --name $b --mic "$tmp/mfg/$a.pem" --mic-key "$tmp/mfg/$a.key" \
	--ca "$capf_ca" --port "$port" --out-cert "$tmp/x.pem" --out-key "$tmp/x.key" \
	>"$tmp/out" 2>&1 && fail "device b enrolled with the MIC of device a"
# The phone may have its answer before the server has logged the session.
i=0
until grep -q "device \"$b\": .*(CAPF_EIDENTITY); op .*, serial -, key .*, [0-9.]* s$" "$tmp/capfd.log"; do
	i=$((i + 1))
	[ $i -lt 50 ] || fail "no outcome line for the failure"
	sleep 0.1
done

# The text format, from the admin socket.
ctl stats --prometheus >"$tmp/prom" || fail "stats --prometheus"
# Every line is a comment (HELP/TYPE) or NAME[{LABELS}] VALUE, every
# sample's family has a TYPE, and the values are numbers.
check_format() {
	awk '
	/^# HELP [a-z_]+ / { next }
	/^# TYPE [a-z_]+ (counter|gauge|histogram|summary|untyped)$/ { typed[$3] = $4; next }
	/^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+]+$/ {
		name = $1; sub(/\{.*/, "", name)
		# Samples of a histogram: NAME_bucket{le=...}, NAME_sum, NAME_count.
		base = name; sub(/_(bucket|sum|count)$/, "", base)
		if (!(name in typed) && typed[base] != "histogram") { print "untyped: " $0; bad = 1 }
		if (name ~ /_bucket$/ && $1 !~ /le="/) { print "bucket without le: " $0; bad = 1 }
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
[ "$(value 'capf_enrollments_total{op="install",result="success"}' "$tmp/prom")" = 1 ] ||
	fail "enrollments by operation and result"
[ "$(value 'capf_failures_total{code="CAPF_EIDENTITY"}' "$tmp/prom")" = 1 ] || fail "failures by code"
[ "$(value 'capf_session_duration_seconds_count' "$tmp/prom")" = 2 ] || fail "session histogram count"
[ "$(value 'capf_session_duration_seconds_bucket{le="+Inf"}' "$tmp/prom")" = 2 ] ||
	fail "session histogram +Inf"
[ "$(value 'capf_tls_handshake_duration_seconds_count' "$tmp/prom")" -ge 2 ] ||
	fail "handshake histogram"
[ "$(value 'capf_store_commit_duration_seconds_count' "$tmp/prom")" -ge 1 ] ||
	fail "commit latency histogram"
[ "$(value 'capf_store_fdatasync_duration_seconds_count' "$tmp/prom")" -ge 1 ] ||
	fail "fdatasync latency histogram"
# Each synced group is in the size histogram, and its txns in the sum.
[ "$(value 'capf_store_group_commit_txns_count' "$tmp/prom")" = \
	"$(value capf_store_syncs_total "$tmp/prom")" ] || fail "group size histogram count"
[ "$(value 'capf_store_group_commit_txns_sum' "$tmp/prom" | cut -d. -f1)" -ge \
	"$(value 'capf_store_group_commit_txns_count' "$tmp/prom")" ] || fail "group size histogram sum"
# Buckets only grow.
awk '/^capf_session_duration_seconds_bucket/ { if ($2 < last) bad = 1; last = $2 }
	END { exit bad }' "$tmp/prom" || fail "histogram buckets are not cumulative"
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
