#!/bin/sh
# capfctl's command line: every command and subcommand has its own --help
# (exit 0, a Usage line), a mistyped command or option gets the nearest
# one as a hint and exit status 2, an unreachable socket exit status 3,
# and the bash completion offers the commands and their options.
set -u
. "$(dirname "$0")/lib.sh"

for cmd in "device" "device add" "device set" "device show" "device list" "device del" \
	"status" "stats" "schedule" "report" "bulk" "bulk import" "ca" "ca status" "ca csr" \
	"ca import" "ca rollover" "ca bundle" "trust" "trust add" "trust list" "trust remove" \
	"cert" "cert show" "cert revoke" "cert list" "crl" "store" "audit"; do
	"$CAPFCTL" $cmd --help >"$tmp/help" 2>&1 || fail "$cmd --help: exit status $?"
	grep -q "^Usage: capfctl" "$tmp/help" || fail "$cmd --help: $(head -2 "$tmp/help")"
done

usage() {
	want=$1
	shift
	rc=0
	"$CAPFCTL" -s "$tmp/none.sock" "$@" >/dev/null 2>"$tmp/err" || rc=$?
	[ "$rc" -eq 2 ] || fail "$*: exit status $rc, not 2"
	grep -q -- "$want" "$tmp/err" || fail "$*: $(cat "$tmp/err")"
}
usage "did you mean 'device'?" devcie list
usage "did you mean 'list'?" device lsit
usage "did you mean 'schedule'?" schedul
usage "did you mean '--json'?" device list --jsn
usage "did you mean '--dry-run'?" schedule --op fetch --where 'no lsc' --dryrun
usage "did you mean '--prometheus'?" stats --prometeus
usage "did you mean 'compact'?" store compcat
usage "one output format at a time" --json device list --csv
usage "one output format at a time" --csv --json status
# A mistyped value: the nearest name, or all of them.
usage "--op: unknown value 'instal'; did you mean 'install'?" schedule --op instal --where 'no lsc'
usage "did you mean 'ec-p256'?" device add SEP000000000001 --key ec-p25
usage "did you mean 'mic-or-lsc'?" device set SEP000000000001 --auth mic-or-lcs
usage "--rsa-key: unknown value 'ec-p256' (rsa-2048, rsa-3072, rsa-4096)" schedule --op install \
	--where 'no lsc' --rsa-key ec-p256
usage "--key-order: unknown value 'ec' (rsa-only, ec-only, ec-preferred)" device add SEP000000000001 \
	--key-order ec
usage "option '--where' needs a value" device list --where
usage "unknown command 'frobnicate'$" frobnicate
rc=0
"$CAPFCTL" -s "$tmp/none.sock" status >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 3 ] || fail "an unreachable socket: exit status $rc, not 3"

if command -v bash >/dev/null; then
	src=${top_srcdir:-$(dirname "$0")/../..}
	comp() {
		bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _capfctl; echo "${COMPREPLY[*]}"' \
			_ "$src/tools/capfctl.bash-completion" "$@"
	}
	comp capfctl sch | grep -qw schedule || fail "completion: schedule"
	comp capfctl device "" | grep -qw del || fail "completion: device del"
	comp capfctl schedule --dr | grep -q -- "--dry-run" || fail "completion: --dry-run"
	comp capfctl device add NAME --auth "" | grep -qw lsc-or-mic || fail "completion: --auth"
fi
echo "PASS"
