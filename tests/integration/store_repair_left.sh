#!/bin/sh
# `capfctl store repair` exits 0 only when it leaves a directory that
# `store check` calls clean. The case: a segment whose header has flags
# other than 0 (refused, as doc/store-format.md says). A bad header is
# damage, never a torn tail (a header is synced before the file is
# used), so the segment's entries are not dropped: repair says it cannot
# mend the file, leaves it as it was and exits non-zero, and capfd
# refuses the directory rather than start without the device record.
# Found by tests/fuzz/fuzz_store_dir.
set -u
. "$(dirname "$0")/lib.sh"

"$CAPF_PHONE" mkmic --dir "$tmp/mfg" SEP0000000000E1 >/dev/null || fail "mkmic"
start_capfd
ctl device add SEP0000000000E1 --auth mic >/dev/null || fail "device add"
stop_capfd
seg="$tmp/state/log.0000000001"
[ -f "$seg" ] || fail "no first segment"
# flags (offset 12, 4 bytes) = 0xeeeeeeee
printf '\356\356\356\356' | dd of="$seg" bs=1 seek=12 conv=notrunc 2>/dev/null
"$CAPFCTL" store check -d "$tmp/state" >"$tmp/out" 2>&1 && fail "store check passed a bad header"
grep -q "unknown flags in the header" "$tmp/out" || { cat "$tmp/out"; fail "check: not the header"; }

cp "$seg" "$tmp/seg.before"
rc=0
"$CAPFCTL" store repair -d "$tmp/state" >"$tmp/repair" 2>&1 || rc=$?
cat "$tmp/repair"
[ $rc -ne 0 ] || fail "store repair exited 0 and left a segment whose header does not check"
grep -q "bad header (unknown flags in the header): not repaired" "$tmp/repair" || fail "repair: no word about the header"
grep -q "CAPF_ECORRUPT: .*damaged regions are left" "$tmp/repair" || fail "repair: no error saying damage is left"
grep -q "torn tail" "$tmp/repair" && fail "repair called a bad header a torn tail"
cmp -s "$seg" "$tmp/seg.before" || fail "repair changed a file it says it did not mend"
rc=0
timeout 30 "$CAPFD" -d "$tmp/state" -l 127.0.0.1 -p 0 -w 1 -m "$tmp/mfg/mfg-ca.pem" >"$tmp/refused" 2>&1 || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "capfd started on a segment whose header does not check (status $rc)"
grep -q "log.0000000001" "$tmp/refused" || { cat "$tmp/refused"; fail "capfd: the refusal does not name the segment"; }
echo "PASS"
