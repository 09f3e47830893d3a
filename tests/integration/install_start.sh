#!/bin/sh
# The installed unit starts: `make install` into a DESTDIR, then
# systemd-run starts the installed capfd with the [Service] settings of
# the installed capfd.service (its sandbox, DynamicUser, StateDirectory,
# Type=notify) on a loopback port; it must become active (READY=1 sent),
# serve capfctl status, and stop cleanly. Needs systemd as PID 1 (not so
# in most containers): skipped, with that reason, otherwise.
set -u
. "$(dirname "$0")/lib.sh"

if [ "$(cat /proc/1/comm 2>/dev/null)" != systemd ] || ! command -v systemd-run >/dev/null; then
	echo "SKIP: PID 1 is $(cat /proc/1/comm 2>/dev/null || echo '?'), not systemd: systemd-run cannot start the unit here"
	exit 77
fi
[ "$(id -u)" = 0 ] || { echo "SKIP: systemd-run of a system service needs root"; exit 77; }
builddir=$(dirname "$CAPFD")
# Not under /tmp: the unit has PrivateTmp=yes.
dest="$(cd "$builddir" && pwd)/tests/install-start.$$"
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES || true
trap 'rm -rf "$dest"; cleanup' EXIT INT TERM
command make --no-print-directory -s -C "$builddir" install DESTDIR="$dest" >"$tmp/out" 2>&1 ||
	{ tail -20 "$tmp/out"; fail "make install"; }
set -- $(command make --no-print-directory -s -C "$builddir" -f Makefile -f - print-dirs <<'MK' 2>/dev/null
print-dirs:
	@echo $(sbindir) $(sysconfdir) $(systemdsystemunitdir)
MK
)
[ $# -eq 3 ] || fail "cannot read the installation directories"
sbin=$1 etc=$2 unitdir=$3
unit="$dest$unitdir/capfd.service"
name="capfd-test-$$"
chmod -R a+rX "$dest" # the dynamic user reads the installed tree
# The [Service] settings as properties, but the commands (ours below).
props=""
sed -n '/^\[Service\]/,/^\[/p' "$unit" | grep -E '^[A-Z][A-Za-z]*=' |
	grep -vE '^(ExecStart|ExecStartPre|ExecReload|StateDirectory)=' >"$tmp/props"
while IFS= read -r p; do props="$props -p $p"; done <"$tmp/props"
# shellcheck disable=SC2086
systemd-run --unit="$name" $props -p StateDirectory="$name" -p TimeoutStartSec=30 \
	"$dest$sbin/capfd" -c "$dest$etc/capf/capfd.conf" -d "/var/lib/$name" -l 127.0.0.1 -p 0 \
	-s "/var/lib/$name/capfd.sock" >"$tmp/out" 2>&1 ||
	{ cat "$tmp/out"; journalctl -u "$name" --no-pager | tail -20; fail "systemd-run"; }
stop_unit() {
	systemctl stop "$name" 2>/dev/null || true
	rm -rf "/var/lib/private/$name" "/var/lib/$name" "$dest"
}
trap 'stop_unit; cleanup' EXIT INT TERM
[ "$(systemctl is-active "$name")" = active ] ||
	{ journalctl -u "$name" --no-pager | tail -20; fail "the service is not active"; }
"$CAPFCTL" -s "/var/lib/$name/capfd.sock" status >"$tmp/status" 2>&1 ||
	{ cat "$tmp/status"; fail "capfctl status against the service"; }
systemctl stop "$name" || fail "systemctl stop"
journalctl -u "$name" --no-pager >"$tmp/journal" 2>&1
grep -q "stopped: 0 enrollments, 0 failures" "$tmp/journal" ||
	{ tail -20 "$tmp/journal"; fail "the service did not stop cleanly"; }
echo "PASS"
