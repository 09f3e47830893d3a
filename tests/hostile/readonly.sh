#!/bin/sh
# A read-only state directory at start: a read-only bind mount (in a mount
# namespace of the test's own; root ignores permission bits, not a
# read-only mount) of the state of a capfd that ran before, and of an
# empty directory. capfd refuses to start: exit status 1 within seconds,
# a log line naming the file and "Read-only file system", then "capfd not
# started"; nothing is made in the empty one, and the state it refused is
# unchanged (store check, audit verify, the same records). Once the
# directory is writable again, capfd starts on it and the phone enrolls.
# (Read-only while running is tests/hostile/fs_error.sh: a mount with files
# open for writing cannot be made read-only, except by the filesystem
# itself, after an error.)
set -u
. "$top_srcdir/tests/hostile/lib.sh"
in_mount_ns "$@"
. "$top_srcdir/tests/integration/lib.sh"

P=SEPRO0000001
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $P SEPRO0000002 >/dev/null || fail "mkmic"
start_capfd
ctl device add $P SEPRO0000002 >/dev/null || fail "device add"
enroll $P >/dev/null 2>&1 || fail "first enrollment"
serial=$(lsc_serial "$tmp/$P.lsc.pem")
ctl device set $P --op install >/dev/null || fail "device set"
stop_capfd
"$CAPFCTL" store dump -d "$tmp/state" >"$tmp/dump.before" || fail "store dump"

# ro_mount DIR: DIR becomes a read-only bind mount of itself.
ro_mount() {
	mount --bind "$1" "$1" 2>"$tmp/mount.err" &&
		mount -o remount,bind,ro "$1" 2>>"$tmp/mount.err" ||
		skip "cannot make a read-only bind mount: $(cat "$tmp/mount.err")"
	unmount_on_exit "$1"
}

# refused_start DIR WHAT: capfd on DIR exits 1 in time and says why.
refused_start() {
	: >"$tmp/start.log"
	"$CAPFD" -d "$1" -l 127.0.0.1 -p 0 -w 2 -m "$tmp/mfg/mfg-ca.pem" -r "$tmp/ready.ro" \
		>"$tmp/start.log" 2>&1 &
	pid=$!
	i=0
	while kill -0 $pid 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 200 ] || { kill -KILL $pid; fail "$2: capfd still running after 10 s"; }
		sleep 0.05
	done
	rc=0
	wait $pid || rc=$?
	[ $rc -eq 1 ] || { cat "$tmp/start.log"; fail "$2: capfd exited $rc (1 expected)"; }
	grep -q "error: .*$1/.*: Read-only file system" "$tmp/start.log" ||
		{ cat "$tmp/start.log"; fail "$2: no log line naming the file and EROFS"; }
	grep -q "capfd not started" "$tmp/start.log" || fail "$2: no 'capfd not started'"
	[ -e "$tmp/ready.ro" ] && fail "$2: a ready file was written"
	echo "ok: $2: exit 1: $(grep -o 'error: .*Read-only file system' "$tmp/start.log" | head -n 1)"
}

ro_mount "$tmp/state"
refused_start "$tmp/state" "the state of an earlier run, read-only"
mkdir -p "$tmp/empty"
ro_mount "$tmp/empty"
refused_start "$tmp/empty" "an empty state directory, read-only"
[ -z "$(ls -A "$tmp/empty")" ] || fail "something was made in the read-only empty directory"

umount "$tmp/state" || fail "umount"
offline_checks "after the refused start"
"$CAPFCTL" store dump -d "$tmp/state" >"$tmp/dump.after" || fail "store dump"
cmp -s "$tmp/dump.before" "$tmp/dump.after" || fail "the refused start changed the records"
start_capfd
json $P
jhas "\"lsc_serial\":\"$serial\"" "the LSC recorded before is not current any more"
enroll $P >/dev/null 2>&1 || fail "no enrollment once the directory is writable"
json $P
jhas '"status":"success"' "not recorded"
stop_capfd
offline_checks "at the end"
echo "PASS"
