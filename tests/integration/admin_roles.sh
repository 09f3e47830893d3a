#!/bin/sh
# Roles on the admin socket, from the peer's credentials: a user the
# [admin] settings do not name is refused everything, a read-only user
# lists and shows but changes nothing, a member of admin_group changes,
# and the log and the audit log name who changed what.
set -u
. "$(dirname "$0")/lib.sh"

command -v setpriv >/dev/null || { echo "SKIP: setpriv not installed"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root to run capfctl as other users"; exit 77; }

# Other users must reach the socket: outside the state directory (0700).
chmod 0755 "$tmp"
asock="$tmp/admin.sock"
cat >"$tmp/capfd.conf" <<CONF
[server]
admin_socket = $asock
admin_mode = 0666
[admin]
readonly_users = 4242
admin_group = 4343
CONF
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" SEP0000000R0001 >/dev/null 2>&1 || fail "mkmic"
start_capfd -c "$tmp/capfd.conf"
sock=$asock
ctl device add SEP0000000R0001 >/dev/null || fail "root: device add"

as() {
	uid=$1
	gid=$2
	shift 2
	setpriv --reuid="$uid" --regid="$gid" --clear-groups "$CAPFCTL" -s "$sock" "$@"
}

# Not named anywhere: refused, whatever it asks.
rc=0
as 65534 65534 status >/dev/null 2>"$tmp/err" || rc=$?
[ "$rc" -eq 1 ] || fail "nobody: status exit $rc"
grep -q "CAPF_EACCES: user nobody (uid 65534) may not use the admin socket" "$tmp/err" ||
	fail "nobody: $(cat "$tmp/err")"
as 65534 65534 device list >/dev/null 2>&1 && fail "nobody can list"
as 65534 65534 device add SEP0000000R0009 >/dev/null 2>&1 && fail "nobody can add"

# Read-only: reads, and is refused every change.
as 4242 4242 status >/dev/null || fail "read-only: status"
as 4242 4242 device list >"$tmp/out" || fail "read-only: device list"
grep -q "^SEP0000000R0001 " "$tmp/out" || fail "read-only: the list"
as 4242 4242 device show SEP0000000R0001 >/dev/null || fail "read-only: device show"
as 4242 4242 report >/dev/null || fail "read-only: report"
as 4242 4242 cert list >/dev/null || fail "read-only: cert list"
as 4242 4242 schedule --op fetch --where 'name prefix SEP' --dry-run >/dev/null ||
	fail "read-only: schedule --dry-run"
rc=0
as 4242 4242 device add SEP0000000R0002 >/dev/null 2>"$tmp/err" || rc=$?
[ "$rc" -eq 1 ] || fail "read-only: device add exit $rc"
grep -q "CAPF_EACCES: .*may only read: device-put is refused" "$tmp/err" ||
	fail "read-only: $(cat "$tmp/err")"
as 4242 4242 schedule --op fetch --where 'name prefix SEP' >/dev/null 2>&1 &&
	fail "read-only: schedule"
as 4242 4242 device del SEP0000000R0001 >/dev/null 2>&1 && fail "read-only: device del"
as 4242 4242 store compact >/dev/null 2>&1 && fail "read-only: store compact"
[ "$(ctl device list --count)" = 1 ] || fail "a read-only user changed the devices"

# A member of admin_group administers, and is named.
as 4444 4343 device add SEP0000000R0003 >/dev/null || fail "admin_group: device add"
as 4444 4343 device set SEP0000000R0001 --op fetch >/dev/null || fail "admin_group: device set"
grep -q "device SEP0000000R0003 recorded by uid 4444" "$tmp/capfd.log" ||
	fail "the log does not name who added the device"
grep -q "read-only: device-put is refused\|may only read" "$tmp/capfd.log" ||
	fail "the refusal is not logged"
ctl audit show -d "$tmp/state" --device SEP0000000R0003 >"$tmp/audit" 2>&1 ||
	{ cat "$tmp/audit"; fail "audit show"; }
grep -q "uid=4444" "$tmp/audit" || { cat "$tmp/audit"; fail "the audit log does not name uid 4444"; }
stop_capfd

# admin_mode 0666 without any role is refused at start-up.
cat >"$tmp/open.conf" <<CONF
[server]
admin_mode = 0666
CONF
"$CAPFD" -c "$tmp/open.conf" -d "$tmp/state2" -p 0 >"$tmp/out" 2>&1 && fail "0666 without roles"
grep -q "needs the \[admin\] roles" "$tmp/out" || fail "0666 without roles: $(cat "$tmp/out")"
echo "PASS"
