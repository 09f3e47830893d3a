#!/bin/sh
# An import larger than one request is still all or none: a file of
# 200,000 devices (about 20 MiB of records) goes to capfd in parts that it checks and keeps, and the
# last part writes them all as one store txn (several segment entries of
# one group commit). A line the server refuses near the end, or a write
# that fails, leaves no device imported; the good file then imports whole,
# in one audit entry, and survives a SIGKILL.
set -u
. "$(dirname "$0")/lib.sh"

printf '[testing]\nfault_injection = yes\n' >"$tmp/capfd.conf"
mkdir -p "$tmp/mfg"
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" SEPA00000000001 >/dev/null 2>&1 || fail "mkmic"
start_capfd -c "$tmp/capfd.conf"
count() { ctl device list --count --where 'name prefix SEPA' || fail "device list --count"; }

n=200000
# Long names and every column: records large enough that the txn takes
# more than one 16 MiB entry.
awk -v n=$n 'BEGIN { print "device name,operation,authentication mode,key order,key size,ec key size,operation completes by";
	for (i = 1; i <= n; i++)
		printf "SEPA-rack-%02d-shelf-%02d-site-northwest-campus-%011d,install,mic,ec-preferred,3072,384,2031-06-30\n", i % 97, i % 31, i }' >"$tmp/good.csv"

# A line the server refuses (string authentication, no string) in the
# last part: every part is checked, the line is named, nothing imported.
awk -v n=$n 'NR == n - 5 { sub(/,mic,/, ",string,") } { print }' "$tmp/good.csv" >"$tmp/bad.csv"
rc=0
ctl bulk import "$tmp/bad.csv" >"$tmp/out" 2>"$tmp/err" || rc=$?
[ "$rc" -eq 1 ] || fail "a refused line: exit $rc"
grep -q "bad.csv:$((n - 5)): CAPF_EAUTH" "$tmp/err" || fail "refused line not named: $(cat "$tmp/err")"
grep -q "nothing imported" "$tmp/err" || fail "refusal: $(cat "$tmp/err")"
[ "$(count)" = 0 ] || fail "a refused import left $(count) devices"

# A write that fails: nothing of the 200,000 is written.
ctl store fault EIO >/dev/null || fail "store fault EIO"
rc=0
ctl bulk import "$tmp/good.csv" >"$tmp/out" 2>"$tmp/err" || rc=$?
[ "$rc" -ne 0 ] || fail "an import during a write fault succeeded"
ctl store fault off >/dev/null || fail "store fault off"
[ "$(count)" = 0 ] || fail "a failed write left $(count) devices"

# The good file: all of it, as one txn with one audit entry.
ctl bulk import "$tmp/good.csv" >"$tmp/out" 2>"$tmp/err" || fail "import: $(cat "$tmp/err")"
grep -q "$n added" "$tmp/out" || fail "import: $(cat "$tmp/out")"
[ "$(count)" = $n ] || fail "import: $(count) devices"
kill -KILL "$capfd_pid"
wait "$capfd_pid" 2>/dev/null
capfd_pid=""
start_capfd -c "$tmp/capfd.conf"
[ "$(count)" = $n ] || fail "after SIGKILL: $(count) devices"
ctl bulk import "$tmp/good.csv" >"$tmp/out" 2>"$tmp/err" || fail "re-import: $(cat "$tmp/err")"
grep -q "$n unchanged" "$tmp/out" || fail "re-import: $(cat "$tmp/out")"
stop_capfd
ctl audit show -d "$tmp/state" >"$tmp/audit" 2>&1 || { cat "$tmp/audit"; fail "audit show"; }
[ "$(grep -c "device batch (atomic, $n devices in 13 parts): $n added" "$tmp/audit")" = 1 ] ||
	{ grep "device batch" "$tmp/audit"; fail "not one audit entry for the import"; }
# It was larger than one segment entry (16 MiB): the store cut it.
big=$(for f in "$tmp"/state/log.*; do wc -c <"$f"; done | sort -n | tail -1)
[ "$big" -gt 16777216 ] || fail "the import took $big bytes: not more than one entry"
ctl store check -d "$tmp/state" >/dev/null 2>&1 || fail "store check"
echo "PASS"
