# Shared by the hostile tests and tests/soak.sh, on top of
# tests/integration/lib.sh (source that first; wait_log is there):
# raising the open-files limit, the offline checks of the state directory
# and the comparison of the store with what the phones were told.

# skip REASON: the test cannot run here; say why and exit 77.
skip() {
	echo "SKIP: $*"
	exit 77
}

# raise_nofile N: the soft open-files limit of this shell, and so of the
# capfd and the clients it starts, becomes at least N; SKIP if the hard
# limit does not allow it (a process cannot raise that without
# CAP_SYS_RESOURCE).
raise_nofile() {
	cur=$(ulimit -n)
	[ "$cur" = unlimited ] && return 0
	[ "$cur" -ge "$1" ] && return 0
	ulimit -n "$1" 2>/dev/null ||
		skip "the open-files limit is $cur (hard $(ulimit -Hn)) and cannot be raised to $1"
	echo "note: raised the soft open-files limit (RLIMIT_NOFILE) from $cur to $1"
}

# offline_checks WHAT: capfd is stopped; store check and audit verify of
# $tmp/state must be clean.
offline_checks() {
	"$CAPFCTL" store check -d "$tmp/state" >"$tmp/check.out" 2>&1 ||
		{ cat "$tmp/check.out"; fail "$1: store check"; }
	"$CAPFCTL" audit verify -d "$tmp/state" >"$tmp/verify.out" 2>&1 ||
		{ cat "$tmp/verify.out"; fail "$1: audit verify"; }
}

# stored_certs: "DEVICE SERIAL" of every certificate record of the stopped
# store, sorted, into $tmp/stored.
stored_certs() {
	"$CAPFCTL" store dump -d "$tmp/state" --json >"$tmp/dump" 2>&1 ||
		{ cat "$tmp/dump"; fail "store dump"; }
	tr -d ' \n' <"$tmp/dump" | sed 's/},{/}\n{/g' | grep '"type":"certificate"' |
		sed 's/.*"serial":"\([0-9a-f]*\)","device":"\([^"]*\)".*/\2 \1/' | sort >"$tmp/stored"
}

# received_stored WHAT [FILE]: every "DEVICE SERIAL" in FILE (default
# $tmp/received: what capf-phone load --record wrote, one line for each
# certificate a phone received) is a certificate of that device in the
# stopped store (the write-ahead rule). FILE must not be empty.
received_stored() {
	f=${2:-$tmp/received}
	[ -s "$f" ] || fail "$1: no phone received a certificate"
	stored_certs
	sort -u "$f" >"$tmp/received.sorted"
	missing=$(comm -23 "$tmp/received.sorted" "$tmp/stored" | wc -l)
	[ "$missing" -eq 0 ] || {
		comm -23 "$tmp/received.sorted" "$tmp/stored" | head
		fail "$1: $missing certificates that phones received are not in the store"
	}
}

# load_failures FILE: the "failed with NAME (CODE): N" lines of a
# capf-phone load report, as "NAME N", one a line.
load_failures() {
	sed -n 's/^  failed with \(.*\) ([0-9]*): \([0-9]*\)$/\1 \2/p' "$1"
}

# in_mount_ns "$@": run this script again in a mount namespace of its own
# (unshare -m, private propagation), where it may mount a tmpfs or make a
# bind mount read-only without touching the host's mounts; SKIP where
# unshare is missing or not permitted. Call before sourcing
# tests/integration/lib.sh (its temporary directory belongs to the run
# inside).
in_mount_ns() {
	[ -n "${CAPF_IN_MOUNT_NS:-}" ] && return 0
	command -v unshare >/dev/null || skip "unshare (util-linux) is not installed"
	unshare -m --propagation private true 2>/dev/null ||
		skip "no mount namespace can be made here (unshare -m: not permitted)"
	CAPF_IN_MOUNT_NS=1 exec unshare -m --propagation private sh "$0" "$@"
}

# unmount_on_exit DIR...: on exit, before the state is removed, the
# mounts at DIR are detached (lazily: capfd may still hold files there).
unmount_on_exit() {
	hostile_mounts="$* ${hostile_mounts:-}"
	trap 'for m in $hostile_mounts; do umount -l "$m" 2>/dev/null; done; cleanup' EXIT INT TERM
}

# cisco_port: the Cisco listener's port from the ready file.
cisco_port() {
	sed -n 's/^cisco_port=//p' "$tmp/ready"
}
