#!/bin/sh
# capfctl bulk import against a running capfd: a file with bad lines
# (each reported with its number, nothing imported), the Tool's columns
# with a BOM, CRLF and quoted fields, generated strings to a file, an
# idempotent re-import, --continue, standard input, --dry-run, and
# 100,000 devices listed through pages.
set -u
. "$(dirname "$0")/lib.sh"

"$CAPF_PHONE" mkmic --dir "$tmp/mfg" SEP0000000D0001 >/dev/null 2>&1 || fail "mkmic"
start_capfd
count() { ctl device list --count "$@" || fail "device list --count $*"; }

# Bad lines: every one reported with its line number, nothing imported.
cat >"$tmp/bad.csv" <<'CSV'
device name,operation,authentication mode,authentication string,key size
SEP0000000D0001,install,mic,,
bad name,install,mic,,
SEP0000000D0002,frobnicate,mic,,
SEP0000000D0003,install,sometimes,,
SEP0000000D0004,install,mic,,1024
SEP0000000D0005,install
SEP0000000D0001,install,mic,,
CSV
rc=0
ctl bulk import "$tmp/bad.csv" >"$tmp/out" 2>"$tmp/err" || rc=$?
[ "$rc" -eq 1 ] || fail "a file with bad lines: exit $rc"
for want in "bad.csv:3: 'bad name' is not a device name" \
	"bad.csv:4: unknown operation 'frobnicate'" \
	"bad.csv:5: unknown authentication mode 'sometimes'" \
	"bad.csv:6: unknown RSA key size '1024'" \
	"bad.csv:7: 2 fields where the header has 5" \
	"bad.csv:8: device SEP0000000D0001 is on line 2 already" \
	"6 bad lines; nothing imported"; do
	grep -q "$want" "$tmp/err" || { cat "$tmp/err"; fail "not reported: $want"; }
done
[ "$(count)" = 0 ] || fail "a file with bad lines imported devices"
# An unknown column stops at the header.
printf 'device name,colour\nSEP1,blue\n' >"$tmp/col.csv"
ctl bulk import "$tmp/col.csv" >/dev/null 2>"$tmp/err" && fail "an unknown column"
grep -q "col.csv:1: unknown column 'colour'" "$tmp/err" || fail "unknown column: $(cat "$tmp/err")"

# --continue skips the bad lines and imports the others.
ctl bulk import --continue "$tmp/bad.csv" >"$tmp/out" 2>/dev/null && fail "--continue exits 0"
grep -q "1 added, 0 changed, 0 unchanged, 6 refused" "$tmp/out" || fail "--continue: $(cat "$tmp/out")"
[ "$(count)" = 1 ] || fail "--continue imported $(count) devices"

# The Tool's columns and values, a BOM, CRLF, quoted fields (one with a
# comma and one with a quote in its string), generated strings.
printf '\357\273\277Device Name,Operation,Authentication Mode,Authentication String,Key Order,Key Size,EC Key Size,Operation Completes By\r\n' >"$tmp/bat.csv"
printf 'SEP0000000E0001,Install/Upgrade,By Null String,,EC Preferred RSA Backup,2048,256,2030:01:31:12\r\n' >>"$tmp/bat.csv"
printf '"SEP0000000E0002",Troubleshoot,By Authentication String,generate,,,,\r\n' >>"$tmp/bat.csv"
printf 'SEP0000000E0003,Install/Upgrade,"By Existing Certificate (Precedence to LSC)",,,,384,\r\n' >>"$tmp/bat.csv"
printf 'SEP0000000E0004,,"By Authentication String","12,""34",,,,\r\n' >>"$tmp/bat.csv"
printf 'SEP0000000E0005,Install/Upgrade,By Authentication String,generate,,,,\r\n' >>"$tmp/bat.csv"
ctl bulk import "$tmp/bat.csv" >/dev/null 2>"$tmp/err" && fail "generate without --strings-out"
grep -q "give --strings-out" "$tmp/err" || fail "generate without --strings-out: $(cat "$tmp/err")"
ctl bulk import --dry-run "$tmp/bat.csv" >"$tmp/out" || fail "bulk import --dry-run"
grep -q "5 devices: 5 to add, 0 to change, 0 unchanged, 0 refused" "$tmp/out" || fail "dry run: $(cat "$tmp/out")"
[ "$(count)" = 1 ] || fail "--dry-run imported"
ctl bulk import --strings-out "$tmp/strings.csv" "$tmp/bat.csv" >"$tmp/out" ||
	fail "bulk import: $(cat "$tmp/out")"
grep -q "5 devices: 5 added, 0 changed, 0 unchanged, 0 refused" "$tmp/out" || fail "import: $(cat "$tmp/out")"
[ "$(stat -c %a "$tmp/strings.csv")" = 600 ] || fail "the strings file is not mode 0600"
[ "$(head -1 "$tmp/strings.csv")" = "device name,authentication string" ] || fail "strings header"
[ "$(wc -l <"$tmp/strings.csv")" -eq 3 ] || fail "strings: $(cat "$tmp/strings.csv")"
s2=$(sed -n 's/^SEP0000000E0002,//p' "$tmp/strings.csv")
[ -n "$s2" ] || fail "no string for SEP0000000E0002"
json SEP0000000E0001
jhas '"op":"install"' "bat: op"
jhas '"auth":"null"' "bat: auth"
jhas '"key":"rsa-2048"' "bat: key size"
jhas '"ec_key":"ec-p256"' "bat: ec key"
jhas '"key_order":"ec-preferred"' "bat: key order"
jhas '"deadline":"2030-01-31T12:00:00Z"' "bat: completes by"
json SEP0000000E0002
jhas '"op":"fetch"' "bat: troubleshoot"
jhas '"auth":"string"' "bat: auth string"
jhas '"auth_string_set":true' "bat: the generated string"
json SEP0000000E0003
jhas '"auth":"lsc-or-mic"' "bat: precedence to LSC"
jhas '"key":"ec-p384"' "bat: curve"
json SEP0000000E0004
jhas '"auth_string_set":true' "bat: a quoted string"

# The same file again changes nothing (and generates no string).
ctl --json device list >"$tmp/before"
ctl bulk import --strings-out "$tmp/strings2.csv" "$tmp/bat.csv" >"$tmp/out" ||
	fail "re-import: $(cat "$tmp/out")"
grep -q "0 added, 0 changed, 5 unchanged, 0 refused" "$tmp/out" || fail "re-import: $(cat "$tmp/out")"
[ "$(wc -l <"$tmp/strings2.csv")" -eq 1 ] || fail "a re-import generated strings"
ctl --json device list >"$tmp/after"
cmp -s "$tmp/before" "$tmp/after" || fail "a re-import changed records"
# The generated string authenticates the phone.
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" SEP0000000E0005 >/dev/null 2>&1
ctl device set SEP0000000E0002 --op install >/dev/null || fail "device set E0002"
phone SEP0000000E0002 --no-mic --auth-string "$s2" >"$tmp/out" 2>&1 ||
	{ cat "$tmp/out"; fail "the generated string does not authenticate"; }

# Standard input, and a change applied by a later file.
printf 'name,op\nSEP0000000E0001,fetch\n' | ctl bulk import - >"$tmp/out" || fail "import -"
grep -q "0 added, 1 changed, 0 unchanged" "$tmp/out" || fail "import -: $(cat "$tmp/out")"

# An atomic import with a line the server refuses imports nothing.
printf 'name,auth\nSEP0000000F0001,mic\nSEP0000000F0002,string\n' >"$tmp/atomic.csv"
ctl bulk import "$tmp/atomic.csv" >/dev/null 2>"$tmp/err" && fail "atomic: a refused line"
grep -q "atomic.csv:3: CAPF_EAUTH" "$tmp/err" || fail "atomic: $(cat "$tmp/err")"
[ "$(count --where 'name prefix SEP0000000F')" = 0 ] || fail "atomic: part imported"

# CSV output: a field a spreadsheet would run is exported as text.
printf 'name,string\n-SEP1,=1+2\n' >"$tmp/f.csv"
ctl bulk import --strings-out "$tmp/fs.csv" "$tmp/f.csv" >/dev/null 2>&1 || true
ctl --csv device list --where 'name = -SEP1' >"$tmp/out" 2>&1
if grep -q "SEP1" "$tmp/out"; then
	grep -q "^'-SEP1," "$tmp/out" || fail "a name starting with - exported as is"
fi

# 100,000 devices from one file, listed through pages.
n=100000
{
	echo "device name,operation,authentication mode"
	i=0
	awk -v n=$n 'BEGIN { for (i = 1; i <= n; i++) printf "SEPC%011d,install,mic\n", i }'
} >"$tmp/big.csv"
ctl bulk import "$tmp/big.csv" >"$tmp/out" || fail "100k import: $(cat "$tmp/out")"
grep -q "$n added" "$tmp/out" || fail "100k import: $(cat "$tmp/out")"
[ "$(count --where 'name prefix SEPC')" = $n ] || fail "100k: the count"
[ "$(ctl --csv device list --page-size 5000 --where 'name prefix SEPC' | wc -l)" -eq $((n + 1)) ] ||
	fail "100k: the paged CSV list"
ctl bulk import "$tmp/big.csv" >"$tmp/out" || fail "100k re-import"
grep -q "$n unchanged" "$tmp/out" || fail "100k re-import: $(cat "$tmp/out")"
stop_capfd
echo "PASS"
