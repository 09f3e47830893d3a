#!/bin/sh
# The filesystem fails under load: the state directory is an ext4 image on
# a loop device (mount -o loop,errors=remount-ro, in a mount namespace of
# the test's own), and while phones enroll the kernel is made to find an
# error in it (/sys/fs/ext4/loopN/trigger_fs_error): ext4 aborts its
# journal and turns read-only, so capfd's writes fail for real, with EIO
# (files already open) and EROFS (files to create).
#   - Every phone of the load is either given an LSC or refused with 1016
#     (CAPF_ERETRY); after the error every phone is refused so, an admin
#     change is refused with CAPF_EIO, a compaction fails; the log names
#     the file and the error; reads are served and capfd stays up, and
#     stops on SIGTERM.
#   - Then the filesystem is checked (e2fsck -fy) and mounted again, as an
#     operator would: every LSC that a phone received is in the store as
#     its device's (what was synced before the error survived the
#     aborted journal); store check and audit verify are clean before
#     capfd starts (the audit file's unsynced end, if lost, is read from
#     the segment's copies) and after; the refused phones enroll.
# (The fault seam's EIO is tests/integration/store_fault.sh; dm-error is
# not used: device-mapper is often missing in containers.) SKIP without a
# mount namespace, a loop device, mkfs.ext4/e2fsck or trigger_fs_error.
set -u
. "$top_srcdir/tests/hostile/lib.sh"
in_mount_ns "$@"
. "$top_srcdir/tests/integration/lib.sh"
for t in mkfs.ext4 e2fsck findmnt; do
	command -v $t >/dev/null || skip "$t is not installed (e2fsprogs, util-linux)"
done
[ -e /dev/loop-control ] || skip "no loop devices here (/dev/loop-control)"

img="$tmp/state.img"
truncate -s 64m "$img" && mkfs.ext4 -q -F "$img" >"$tmp/mkfs.out" 2>&1 ||
	{ cat "$tmp/mkfs.out"; fail "mkfs.ext4"; }
mkdir -p "$tmp/state"
# mount_state: the image at $tmp/state; sets loopdev.
mount_state() {
	mount -o loop,errors=remount-ro "$img" "$tmp/state" 2>"$tmp/mount.err" ||
		skip "cannot mount an ext4 image on a loop device: $(cat "$tmp/mount.err")"
	loopdev=$(findmnt -n -o SOURCE "$tmp/state")
}
mount_state
# The loop device goes with the mount (mount -o loop sets autoclear); a
# lazy unmount would keep it while capfd lives, so capfd goes first.
trap 'if [ -n "$capfd_pid" ]; then kill -KILL "$capfd_pid" 2>/dev/null; wait "$capfd_pid" 2>/dev/null; fi
	umount "$tmp/state" 2>/dev/null || umount -l "$tmp/state" 2>/dev/null; capfd_pid=""; cleanup' \
	EXIT INT TERM
trigger=/sys/fs/ext4/$(basename "$loopdev")/trigger_fs_error
[ -w "$trigger" ] || skip "no $trigger to make ext4 fail (kernel without it)"

"$CAPF_PHONE" mkmic --dir "$tmp/mfg" SEPFSE0001 SEPFSE0003 >/dev/null || fail "mkmic"
start_capfd
ctl device add SEPFSE0001 SEPFSE0003 >/dev/null || fail "device add"
enroll SEPFSE0001 >/dev/null 2>&1 || fail "no enrollment before the error"
: >"$tmp/received"
echo "SEPFSE0001 $(lsc_serial "$tmp/SEPFSE0001.lsc.pem")" >"$tmp/received"

# ---- the error under load -------------------------------------------------------
"$CAPF_PHONE" load --count 300 --concurrency 8 --mfg-dir "$tmp/mfg" --ca "$capf_ca" \
	--socket "$sock" --host 127.0.0.1 --port "$port" --prefix SEPFSL --timeout 60 \
	--record "$tmp/received" >"$tmp/load" 2>&1 &
load_pid=$!
# Once a third of them are in, the filesystem fails.
i=0
while [ "$(wc -l <"$tmp/received")" -lt 100 ]; do
	i=$((i + 1))
	kill -0 $load_pid 2>/dev/null || { cat "$tmp/load"; fail "the load ended early"; }
	[ $i -lt 400 ] || fail "100 phones did not enroll in 20 s"
	sleep 0.05
done
# capfd is stopped while the error is made, and goes on after it: an
# fdatasync() that races ext4's turn to read-only can return 0 and lose
# what it was to sync (Linux 6.18, seen here: a whole synced group gone
# after e2fsck), which no program can tell; stopped, capfd has no call
# in flight, and each of its syncs comes wholly before or after the error.
kill -STOP "$capfd_pid"
i=0
while grep -qv '^[0-9]* ([^)]*) [tT] ' /proc/"$capfd_pid"/task/*/stat 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 200 ] || { kill -CONT "$capfd_pid"; fail "capfd's threads do not stop"; }
	sleep 0.01
done
echo "capf test: ext4 error under load" >"$trigger" || fail "cannot trigger the ext4 error"
kill -CONT "$capfd_pid"
wait $load_pid
got=$(sort -u "$tmp/received" | wc -l)
failed=$(sed -n 's/^enrollments: [0-9]* ok, \([0-9]*\) failed.*/\1/p' "$tmp/load")
[ -n "$failed" ] || { cat "$tmp/load"; fail "no load report"; }
[ "$failed" -gt 0 ] || { cat "$tmp/load"; fail "no phone failed: the error did not reach capfd"; }
load_failures "$tmp/load" >"$tmp/fails"
others=$(grep -v "^CAPF_ERETRY " "$tmp/fails" || true)
[ -z "$others" ] || { cat "$tmp/load"; fail "phones failed otherwise than with 1016: $others"; }
kill -0 "$capfd_pid" || fail "capfd died when its filesystem failed"

# After it: phones 1016, admin writes CAPF_EIO, reads served.
ctl device add SEPFSE0002 >"$tmp/out" 2>&1 && fail "device add on a failed filesystem"
grep -q "CAPF_EIO" "$tmp/out" || { cat "$tmp/out"; fail "device add: not CAPF_EIO"; }
n=$(ctl --csv device list | grep -c '^SEPFSL.*,install,')
[ "$n" -ge 1 ] || fail "no device of the load is still to install"
rc=0
enroll SEPFSE0003 >"$tmp/out" 2>&1 || rc=$?
[ $rc -eq 1 ] && grep -q " 1016 (CAPF_ERETRY)" "$tmp/out" ||
	{ cat "$tmp/out"; fail "a phone after the error: exit $rc, not 1016"; }
ctl store compact >"$tmp/out" 2>&1 && fail "a compaction succeeded on a failed filesystem"
ctl status >/dev/null || fail "status after the error"
grep -q "store: write to $tmp/state/.* failed: \(Input/output error\|Read-only file system\);" \
	"$tmp/capfd.log" || fail "no log line naming the file and the error"
grep "store: write to" "$tmp/capfd.log" | grep -q "injected" && fail "the fault came from the seam"
echo "ok: ext4 failed under load: $got LSCs received, $failed phones refused with 1016," \
	"admin writes CAPF_EIO, reads served"
stop_capfd

# ---- checked and mounted again ---------------------------------------------------
umount "$tmp/state" || fail "umount"
rc=0
e2fsck -fy "$img" >"$tmp/fsck.out" 2>&1 || rc=$?
[ $rc -le 1 ] || { cat "$tmp/fsck.out"; fail "e2fsck exit $rc"; }
mount_state
# The audit file is written without a sync of its own (the segment holds
# a copy of each audit group: doc/store-format.md): its unsynced end may
# be lost, as in a power cut. store check and audit verify read it as a
# start leaves it, restored from the copies: clean before capfd starts.
offline_checks "after the ext4 error, before a start"
received_stored "after the ext4 error"
start_capfd
stop_capfd
offline_checks "after the ext4 error and a start"
start_capfd
"$CAPF_PHONE" load --count 300 --concurrency 8 --mfg-dir "$tmp/mfg" --ca "$capf_ca" \
	--socket "$sock" --host 127.0.0.1 --port "$port" --prefix SEPFSL --timeout 60 \
	--record "$tmp/received" >"$tmp/load2" 2>&1
# The load schedules its devices again (device set where they exist) and
# enrolls all 300.
n=$(ctl --csv device list | grep -c '^SEPFSL.*,success,')
[ "$n" -eq 300 ] || { cat "$tmp/load2"; fail "$n of 300 phones enrolled once the filesystem was back"; }
ctl device add SEPFSE0002 >/dev/null || fail "device add once the filesystem was back"
enroll SEPFSE0003 >/dev/null 2>&1 || fail "the refused phone once the filesystem was back"
echo "SEPFSE0003 $(lsc_serial "$tmp/SEPFSE0003.lsc.pem")" >>"$tmp/received"
stop_capfd
offline_checks "at the end"
received_stored "at the end"
echo "PASS"
