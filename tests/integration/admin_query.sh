#!/bin/sh
# Queries against a running capfd: device list with --where filters in
# every output format and through small pages, schedule by query with
# --dry-run, device del (its LSC revoked, or kept), cert list by device,
# state and expiry, and the reports.
set -u
. "$(dirname "$0")/lib.sh"

a=SEP0000000A0001
b=SEP0000000A0002
c=SEP0000000B0001
d=SEP0000000B0002
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $a $b $c $d >/dev/null 2>&1 || fail "mkmic"
start_capfd
ctl device add $a $b $c >/dev/null || fail "device add"
ctl device add $d --auth null >/dev/null || fail "device add null"
enroll $a >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "enroll $a"; }
enroll $b >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "enroll $b"; }
sa=$(lsc_serial "$tmp/$a.lsc.pem")

count() { ctl device list --count "$@" || fail "device list --count $*"; }
[ "$(count)" = 4 ] || fail "4 devices, not $(count)"
[ "$(count --where 'has lsc')" = 2 ] || fail "has lsc"
[ "$(count --where 'no lsc')" = 2 ] || fail "no lsc"
[ "$(count --where 'name prefix SEP0000000B')" = 2 ] || fail "name prefix"
[ "$(count --where 'name like *A000?')" = 2 ] || fail "name like"
[ "$(count --where "name = $c")" = 1 ] || fail "name ="
[ "$(count --where 'status = pending')" = 2 ] || fail "status = pending"
[ "$(count --where 'status=success,failed')" = 2 ] || fail "status=success,failed"
[ "$(count --where 'auth = null')" = 1 ] || fail "auth = null"
[ "$(count --where 'op = install and no lsc')" = 2 ] || fail "op and no lsc"
[ "$(count --where 'expires within 400d')" = 2 ] || fail "expires within 400d"
[ "$(count --where 'expires within 10d')" = 0 ] || fail "expires within 10d"
[ "$(count --where 'expires before 2000-01-01')" = 0 ] || fail "expires before"
[ "$(count --where 'expires after 2000-01-01' --where 'name prefix SEP0000000A')" = 2 ] ||
	fail "two --where"
ctl device list --where 'frobnicate' >/dev/null 2>"$tmp/err" && fail "a bad --where is accepted"
grep -q "cannot read the condition" "$tmp/err" || fail "bad --where: $(cat "$tmp/err")"

# Every output format, and pages of one device give the same listing.
ctl device list >"$tmp/table" || fail "list"
ctl device list --page-size 1 >"$tmp/table1" || fail "list by pages of 1"
head -1 "$tmp/table" | grep -q "^NAME  *OP  *AUTH  *KEY  *STATUS  *LSC SERIAL  *LSC EXPIRES$" ||
	fail "table header: $(head -1 "$tmp/table")"
[ "$(wc -l <"$tmp/table")" -eq 5 ] || fail "table rows"
[ "$(awk '{print $1}' "$tmp/table")" = "$(awk '{print $1}' "$tmp/table1")" ] ||
	fail "pages of 1 list other devices"
grep -q "^$a  *none  *mic  *ec-p256  *success  *$sa  *20" "$tmp/table" || fail "table row of $a"
ctl --json device list --where "name = $a" >"$tmp/json" || fail "list --json"
for k in '"name":"'$a'"' '"status":"success"' '"lsc_serial":"'$sa'"' '"state":"active"' \
	'"revision":' '"op_generation":' '"mic_fingerprint":"' '"fetched_count":0' \
	'"auth_string_set":false' '"subject":"CN='$a'"'; do
	grep -q -- "$k" "$tmp/json" || { cat "$tmp/json"; fail "json lacks $k"; }
done
python3 -c 'import json,sys; l=json.load(open(sys.argv[1])); assert len(l)==1' "$tmp/json" \
	2>/dev/null || { command -v python3 >/dev/null && fail "list --json is not valid JSON"; }
ctl device list --json --page-size 1 >"$tmp/json4" || fail "list --json by pages"
if command -v python3 >/dev/null; then
	python3 -c 'import json,sys; l=json.load(open(sys.argv[1])); assert len(l)==4' \
		"$tmp/json4" || fail "paged --json is not one valid array of 4"
fi
ctl device list --csv --page-size 3 >"$tmp/csv" || fail "list --csv"
head -1 "$tmp/csv" | grep -q "^name,op,auth,key,deadline,status," || fail "csv header"
[ "$(wc -l <"$tmp/csv")" -eq 5 ] || fail "csv: a header and 4 rows"
grep -q "^$a,none,mic,ec-p256,,success,,$sa,CN=$a," "$tmp/csv" || fail "csv row of $a"

# schedule: --dry-run says which devices would change and changes none.
ctl schedule --op fetch --where 'has lsc' --dry-run >"$tmp/dry" || fail "schedule --dry-run"
grep -q "^would-change $a$" "$tmp/dry" || fail "dry run: $a"
grep -q "^would-change $b$" "$tmp/dry" || fail "dry run: $b"
grep -q "^2 devices match, 2 would change, 0 refused$" "$tmp/dry" || fail "dry run summary"
[ "$(count --where 'op = fetch')" = 0 ] || fail "a dry run changed devices"
ctl schedule --op fetch --where 'has lsc' --deadline 2030-01-31 >"$tmp/sched" || fail "schedule"
grep -q "^2 devices match, 2 changed, 0 refused$" "$tmp/sched" || fail "schedule summary"
[ "$(count --where 'op = fetch and status = pending')" = 2 ] || fail "schedule: op fetch pending"
json $a
jhas '"op":"fetch"' "schedule: op"
jhas '"deadline":"2030-01-31T23:59:59Z"' "schedule: deadline"
jhas '"auth":"mic"' "schedule changed a setting it was not given"
# The same schedule again changes nothing.
ctl --csv schedule --op fetch --where 'has lsc' --deadline 2030-01-31 >"$tmp/sched" ||
	fail "schedule again"
grep -q "^$a,unchanged,ok," "$tmp/sched" || fail "schedule again: $(cat "$tmp/sched")"
ctl schedule --op none --where 'has lsc' >/dev/null || fail "schedule none"
ctl schedule --op install >/dev/null 2>&1 && fail "a schedule without --where"
ctl schedule --where 'has lsc' >/dev/null 2>&1 && fail "a schedule without --op"
ctl --json schedule --op install --auth string --where "name = $c" >"$tmp/sched" 2>/dev/null &&
	fail "auth string without a string is scheduled"
grep -q '"result":"CAPF_EAUTH"' "$tmp/sched" || fail "auth string: $(cat "$tmp/sched")"

# Reports.
ctl report >"$tmp/report" || fail "report"
head -1 "$tmp/report" | grep -q "^NAME  *OP  *STATUS  *AUTH  *LSC SERIAL  *LSC EXPIRES  *LAST ATTEMPT  *RESULT$" ||
	fail "report header"
# (Scheduled and cleared again: pending, no result yet.)
grep -q "^$a  *none  *pending  *mic  *$sa  *20[^ ]*  *20[^ ]*  *-$" "$tmp/report" ||
	{ cat "$tmp/report"; fail "report row of $a"; }
ctl --csv report --expiring 400d >"$tmp/report" || fail "report --expiring"
[ "$(wc -l <"$tmp/report")" -eq 3 ] || fail "report --expiring: $(cat "$tmp/report")"
ctl --json report --failed >"$tmp/report" || fail "report --failed"
[ "$(cat "$tmp/report")" = "[]" ] || fail "report --failed: $(cat "$tmp/report")"
ctl --csv report --stale >"$tmp/report" || fail "report --stale"
[ "$(wc -l <"$tmp/report")" -eq 1 ] || fail "report --stale: $(cat "$tmp/report")"
# An LSC issued and never acknowledged is stale.
ctl device set $c --op install >/dev/null || fail "device set $c"
enroll $c --no-ack >"$tmp/out" 2>&1 || true
ctl --csv report --stale >"$tmp/report" || fail "report --stale"
grep -q "^$c," "$tmp/report" || fail "report --stale lacks $c: $(cat "$tmp/report")"
[ "$(count --where unacknowledged)" = 1 ] || fail "where unacknowledged"
[ "$(count --where failed)" = 0 ] || fail "where failed: a device that needs no attention"
# Needing attention: a wrong string (its last result), a deadline passed.
ctl device set $d --op install --auth string --auth-string 4711 >/dev/null || fail "device set $d"
enroll $d --auth-string 1234 >"$tmp/out" 2>&1 && fail "a wrong string enrolled"
ctl device set $b --op install --deadline 2000-01-01 >/dev/null || fail "device set $b deadline"
ctl --csv report --failed >"$tmp/report" || fail "report --failed"
grep -q "^$d,install,pending,string,,,20[^,]*,CAPF_EAUTH$" "$tmp/report" ||
	fail "report --failed lacks $d: $(cat "$tmp/report")"
grep -q "^$b,install,pending," "$tmp/report" || fail "report --failed lacks $b: $(cat "$tmp/report")"
[ "$(wc -l <"$tmp/report")" -eq 3 ] || fail "report --failed: $(cat "$tmp/report")"
[ "$(count --where 'failed and auth = string')" = 1 ] || fail "where failed and auth"
ctl device set $b --op none --deadline none >/dev/null || fail "device set $b back"

# cert list.
ctl cert list >"$tmp/certs" || fail "cert list"
grep -q "^$sa  *$a  *active " "$tmp/certs" || fail "cert list: $a"
[ "$(ctl --csv cert list --device $b | wc -l)" -eq 2 ] || fail "cert list --device"
[ "$(ctl --csv cert list --state active --page-size 1 | wc -l)" -eq 3 ] ||
	fail "cert list --state active by pages"
[ "$(ctl --csv cert list --state unconfirmed | wc -l)" -eq 2 ] || fail "cert list unconfirmed"
[ "$(ctl --csv cert list --expires-within 10d | wc -l)" -eq 1 ] || fail "cert list --expires-within"
ctl --json cert list --device $a | grep -q "\"serial\":\"$sa\",\"device\":\"$a\",\"state\":\"active\"" ||
	fail "cert list --json"

# device del: the LSC revoked (cessationOfOperation), the device gone.
ctl device del $a >"$tmp/out" || fail "device del $a"
grep -q "^removed $a, revoked $sa$" "$tmp/out" || fail "device del: $(cat "$tmp/out")"
ctl device show $a >/dev/null 2>&1 && fail "a removed device is shown"
[ "$(count)" = 3 ] || fail "a removed device is listed"
ctl --csv cert list --device $a | grep -q ",revoked,.*,cessationOfOperation$" ||
	fail "the LSC of a removed device is not revoked for cessationOfOperation"
# Its phone is an unknown device (1006), not one with nothing to do.
enroll $a >"$tmp/out" 2>&1 && fail "the phone of a removed device enrolled"
grep -q "1006 (CAPF_EUNKNOWN_DEVICE)" "$tmp/out" || { cat "$tmp/out"; fail "a removed device's phone: not 1006"; }
ctl device del $a >/dev/null 2>"$tmp/err" && fail "a removed device is removed again"
grep -q "CAPF_ENOENT" "$tmp/err" || fail "del of an unknown device: $(cat "$tmp/err")"
# --keep-cert leaves the LSC as it is.
sb=$(lsc_serial "$tmp/$b.lsc.pem")
ctl device del --keep-cert $b >/dev/null || fail "device del --keep-cert"
ctl --csv cert list --device $b | grep -q "^$sb,$b,active," || fail "--keep-cert revoked the LSC"
# A removed device can be added again; its phone enrolls.
ctl device add $a >/dev/null || fail "device add after del"
enroll $a >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "enroll after del and add"; }
# The removal is in the audit log, naming who.
ctl audit show -d "$tmp/state" >"$tmp/audit" 2>&1 || true
grep -q "device del" "$tmp/audit" || { tail -5 "$tmp/audit"; fail "no audit entry of device del"; }

# Help for every new command.
for cmd in "device list" "device del" "schedule" "report" "cert list" "bulk import"; do
	ctl $cmd --help >"$tmp/help" || fail "$cmd --help"
	grep -q "^Usage: capfctl" "$tmp/help" || fail "$cmd --help: no usage"
done
stop_capfd
echo "PASS"
