#!/bin/sh
# In a state directory that holds an audit log and no segment (the
# segments were lost or moved away), `capfctl store check` reports a
# damaged audit entry. `capfctl store repair` cannot mend it (the anchor
# that says where the log ends lives in a segment), so it must not exit
# 0: it says damage is left, and the audit file stays as it was. With a
# segment beside it the same damage is repaired (store_repair.sh). Found
# by tests/fuzz/fuzz_store_dir (its input is in the corpus).
set -u
. "$(dirname "$0")/lib.sh"

"$CAPF_PHONE" mkmic --dir "$tmp/mfg" SEP0000000000E2 >/dev/null || fail "mkmic"
start_capfd
ctl device add SEP0000000000E2 --auth mic >/dev/null || fail "device add"
enroll SEP0000000000E2 >/dev/null || fail "enroll"
stop_capfd
rm -f "$tmp/state"/log.* "$tmp/state"/snapshot.*
a="$tmp/state/audit.0000000001.log"
[ -f "$a" ] || { ls "$tmp/state"; fail "no first audit file"; }
[ "$(wc -c <"$a")" -gt 400 ] || fail "the audit log is too short to damage in its middle"
# One byte inside the second entry.
printf '\001' | dd of="$a" bs=1 seek=300 conv=notrunc 2>/dev/null
"$CAPFCTL" store check -d "$tmp/state" >"$tmp/out" 2>&1 && fail "store check passed a damaged audit entry"
grep -q "payload CRC32C does not match" "$tmp/out" || { cat "$tmp/out"; fail "check: not the CRC"; }

cp "$a" "$tmp/audit.before"
rc=0
"$CAPFCTL" store repair -d "$tmp/state" >"$tmp/repair" 2>&1 || rc=$?
cat "$tmp/repair"
if [ $rc -eq 0 ]; then
	"$CAPFCTL" store check -d "$tmp/state" >"$tmp/out" 2>&1 ||
		{ cat "$tmp/out"; fail "store repair exited 0 and left the audit damage that store check reports"; }
else
	grep -q "CAPF_ECORRUPT: .*damaged regions are left" "$tmp/repair" || fail "repair: no error saying damage is left"
	cmp -s "$a" "$tmp/audit.before" || fail "repair changed the audit file and still failed"
fi
echo "PASS"
