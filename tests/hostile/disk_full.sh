#!/bin/sh
# A real full disk (ENOSPC from the kernel, not the fault seam): the state
# directory is a tmpfs of 8 MiB, mounted in a mount namespace of the
# test's own (so nothing outside sees it), and filled up by a file beside
# the store while capfd runs.
#   - Writes that still fit in the last pages of the store's files go
#     through (that is how a real disk fills up); every phone is either
#     given an LSC that is then in the store, or refused with 1016
#     (CAPF_ERETRY; a Cisco phone: RETRY_LATER) and given nothing; once
#     nothing fits, every phone is refused so, and an admin change is
#     refused with CAPF_ENOSPC. The log names the file and "No space left
#     on device" (not "injected"). Reads (device show, list, status) are
#     served; a compaction fails with CAPF_ENOSPC and leaves no temporary
#     file; capfd stays up.
#   - Space freed (the file removed): the refused phones enroll, without
#     a restart, the log says that writes succeed again, a compaction
#     works. Every LSC a phone received is in the store as its device's;
#     store check and audit verify are clean.
# SKIP where no mount namespace or tmpfs can be had.
set -u
. "$top_srcdir/tests/hostile/lib.sh"
in_mount_ns "$@"
. "$top_srcdir/tests/integration/lib.sh"

mkdir -p "$tmp/state"
mount -t tmpfs -o size=8m,mode=0700 capf-test "$tmp/state" 2>"$tmp/mount.err" ||
	skip "cannot mount a tmpfs in a mount namespace: $(cat "$tmp/mount.err")"
unmount_on_exit "$tmp/state"
D="SEPDF0001 SEPDF0002 SEPDF0003 SEPDF0004 SEPDF0005 SEPDF0006"
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $D SEPDFC001 >/dev/null || fail "mkmic"
cat >"$tmp/c.conf" <<EOF
[cisco]
enabled = yes
port = 0
EOF
start_capfd -c "$tmp/c.conf"
cport=$(cisco_port)
ctl device add $D SEPDFC001 >/dev/null || fail "device add"
: >"$tmp/received"

# attempt NAME: one native enrollment; sets result to ok or retry, or
# fails the test on any other outcome. A certificate received goes to
# received.
attempt() {
	rm -f "$tmp/$1.lsc.pem"
	rc=0
	enroll "$1" >"$tmp/out" 2>&1 || rc=$?
	if [ $rc -eq 0 ]; then
		[ -s "$tmp/$1.lsc.pem" ] || fail "$1: success without an LSC"
		echo "$1 $(lsc_serial "$tmp/$1.lsc.pem")" >>"$tmp/received"
		result=ok
		return
	fi
	[ $rc -eq 1 ] && grep -q " 1016 (CAPF_ERETRY)" "$tmp/out" ||
		{ cat "$tmp/out"; fail "$1 on a full disk: exit $rc, neither an LSC nor 1016"; }
	[ -s "$tmp/$1.lsc.pem" ] && fail "$1: refused with 1016, and an LSC written all the same"
	result=retry
}

attempt SEPDF0001
[ "$result" = ok ] || fail "no enrollment before the disk filled"
df -k "$tmp/state" >"$tmp/df.before"

# ---- fill it up ------------------------------------------------------------------
dd if=/dev/zero of="$tmp/state/filler" bs=64k >/dev/null 2>&1
dd if=/dev/zero of="$tmp/state/filler2" bs=4k >/dev/null 2>&1
avail=$(df -k "$tmp/state" | awk 'NR == 2 { print $4 }')
[ "$avail" -eq 0 ] || fail "the tmpfs is not full: $avail KiB left"

# Phones until three in a row are refused (what fits in the files' last
# pages is taken first); devices that got an LSC are scheduled again when
# that can be written, so that each attempt wants a write.
refused_row=0 oks=0 tries=0
while [ $refused_row -lt 3 ]; do
	tries=$((tries + 1))
	[ $tries -le 60 ] || fail "60 phones on a full disk and still no three refusals in a row"
	d=SEPDF000$((tries % 5 + 2))
	attempt $d
	if [ "$result" = ok ]; then
		oks=$((oks + 1))
		refused_row=0
		ctl device set $d --op install >/dev/null 2>&1 || true
	else
		refused_row=$((refused_row + 1))
	fi
done
# Now nothing fits: every phone, and an admin write, is refused.
for d in SEPDF0002 SEPDF0003 SEPDF0004; do
	json $d
	grep -q '"op":"install"' "$tmp/json" || continue
	attempt $d
	[ "$result" = retry ] || fail "$d enrolled after three refusals in a row"
done
rc=0
"$CAPF_PHONE" enroll --protocol cisco --name SEPDFC001 --ca "$capf_ca" --port "$cport" \
	--mic "$tmp/mfg/SEPDFC001.pem" --mic-key "$tmp/mfg/SEPDFC001.key" \
	--out-cert "$tmp/SEPDFC001.lsc.pem" --out-key "$tmp/SEPDFC001.lsc.key" >"$tmp/cisco.out" 2>&1 ||
	rc=$?
grep -qi "retry" "$tmp/cisco.out" ||
	{ cat "$tmp/cisco.out"; fail "a Cisco phone on a full disk was not told RETRY_LATER (exit $rc)"; }
[ -s "$tmp/SEPDFC001.lsc.pem" ] && fail "a Cisco phone got an LSC on a full disk"
out=$(ctl device add SEPDFNEW 2>&1) && fail "device add on a full disk: $out"
echo "$out" | grep -q "CAPF_ENOSPC" || fail "device add on a full disk: not CAPF_ENOSPC: $out"
grep -q "store: write to $tmp/state/.* failed: No space left on device;" "$tmp/capfd.log" ||
	fail "no log line naming the file and ENOSPC"
grep "No space left on device" "$tmp/capfd.log" | grep -q "injected" &&
	fail "the ENOSPC came from the fault seam"
# Reads are served; a compaction fails cleanly.
ctl --json device show SEPDF0001 | tr -d ' \n' | grep -q '"status":"success"' ||
	fail "device show on a full disk"
ctl device list >/dev/null || fail "device list on a full disk"
ctl status >/dev/null || fail "status on a full disk"
out=$(ctl store compact 2>&1) && fail "a compaction succeeded on a full disk: $out"
echo "$out" | grep -q "CAPF_ENOSPC" || fail "compaction on a full disk: $out"
ls "$tmp/state" | grep -q '\.tmp$' && { ls -l "$tmp/state"; fail "a failed compaction left a .tmp"; }
kill -0 "$capfd_pid" || fail "capfd died on a full disk"
echo "ok: full disk: $oks phones enrolled in the space left in the files' last pages, then" \
	"every phone 1016 (Cisco: RETRY_LATER), admin writes and compaction CAPF_ENOSPC, reads served"

# ---- space freed -------------------------------------------------------------------
rm -f "$tmp/state/filler" "$tmp/state/filler2"
for d in SEPDF0002 SEPDF0003 SEPDF0004 SEPDF0005 SEPDF0006; do
	json $d
	grep -q '"op":"install"' "$tmp/json" || continue
	attempt $d
	[ "$result" = ok ] || { cat "$tmp/out"; fail "$d: no enrollment once space was freed"; }
done
"$CAPF_PHONE" enroll --protocol cisco --name SEPDFC001 --ca "$capf_ca" --port "$cport" \
	--mic "$tmp/mfg/SEPDFC001.pem" --mic-key "$tmp/mfg/SEPDFC001.key" \
	--out-cert "$tmp/SEPDFC001.lsc.pem" --out-key "$tmp/SEPDFC001.lsc.key" >"$tmp/cisco.out" 2>&1 ||
	{ cat "$tmp/cisco.out"; fail "the Cisco phone once space was freed"; }
echo "SEPDFC001 $(lsc_serial "$tmp/SEPDFC001.lsc.pem")" >>"$tmp/received"
ctl device add SEPDFNEW >/dev/null || fail "device add once space was freed"
wait_log "store: writes succeed again" "space freed"
ctl store compact >/dev/null || fail "compaction once space was freed"
# Every device: its current LSC is the last one its phone received.
for d in $D SEPDFC001; do
	json $d
	last=$(grep "^$d " "$tmp/received" | tail -n 1 | cut -d' ' -f2)
	[ -n "$last" ] || fail "$d never enrolled"
	jhas '"status":"success"' "$d: not recorded as success"
	jhas "\"lsc_serial\":\"$last\"" "$d: its current LSC is not the last one it received"
done
stop_capfd
offline_checks "after the full disk"
received_stored "after the full disk"
echo "PASS"
