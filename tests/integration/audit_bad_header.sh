#!/bin/sh
# An audit file whose header does not check (unknown flags, a known
# version) holds no entry anyone can trust: `capfctl audit verify` and
# `store check` report it as damage, as `audit show` does, instead of
# counting an intact log of no entries. Found by
# tests/fuzz/fuzz_audit_verify (its input is in the corpus).
set -u
. "$(dirname "$0")/lib.sh"

"$CAPF_PHONE" mkmic --dir "$tmp/mfg" SEP0000000000E3 >/dev/null || fail "mkmic"
start_capfd
ctl device add SEP0000000000E3 --auth mic >/dev/null || fail "device add"
enroll SEP0000000000E3 >/dev/null || fail "enroll"
stop_capfd
a="$tmp/state/audit.0000000001.log"
[ -f "$a" ] || { ls "$tmp/state"; fail "no first audit file"; }
"$CAPFCTL" audit verify -d "$tmp/state" >/dev/null 2>&1 || fail "the audit log does not verify before the edit"
# A flag bit in the header's flags word (bytes 12-15).
printf '\002' | dd of="$a" bs=1 seek=15 conv=notrunc 2>/dev/null
"$CAPFCTL" audit verify -d "$tmp/state" >"$tmp/out" 2>&1 && { cat "$tmp/out"; fail "audit verify passed a bad header"; }
grep -q "bad header: unknown flags" "$tmp/out" || { cat "$tmp/out"; fail "verify: not the header"; }
"$CAPFCTL" audit verify "$a" >"$tmp/out" 2>&1 && { cat "$tmp/out"; fail "audit verify FILE passed a bad header"; }
"$CAPFCTL" store check -d "$tmp/state" >"$tmp/out" 2>&1 && { cat "$tmp/out"; fail "store check passed a bad audit header"; }
grep -q "bad header" "$tmp/out" || { cat "$tmp/out"; fail "check: not the header"; }
"$CAPFCTL" audit show -d "$tmp/state" >"$tmp/out" 2>&1 && fail "audit show read a bad header"
echo "PASS"
