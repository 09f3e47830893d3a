#!/bin/sh
# Record the replay corpus: start a fresh capfd with the configuration of
# cases.sh, run each session of cases.sh with capf-phone enroll --record,
# check that each ended with the code it names, and write
# tests/replay/corpus/ (the transcripts and the MICs they used). Run from
# the build directory after make: tests/replay/record.sh [CORPUS-DIR]
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../integration/lib.sh"
corpus=${1:-$here/corpus}
. "$here/cases.sh"

rm -rf "$corpus"
mkdir -p "$corpus/mics" "$tmp/lsc"
"$CAPF_PHONE" mkmic --dir "$corpus/mics" $D_ALL >/dev/null || fail "mkmic"
# The manufacturer CA's key is not needed to replay.
rm -f "$corpus/mics/mfg-ca.key"
mkdir -p "$tmp/mfg"
cp "$corpus/mics/mfg-ca.pem" "$tmp/mfg/"
printf '%s' "$CONF" >"$tmp/capfd.conf"
start_capfd -c "$tmp/capfd.conf"

# phone_args DEVICE ARGS...: the capf-phone options for cases.sh's words.
phone_args() {
	dev=$1
	shift
	args="--name $dev --ca $capf_ca --host 127.0.0.1 --port $port"
	args="$args --out-cert $tmp/lsc/$dev-lsc.pem --out-key $tmp/lsc/$dev-lsc.key"
	for a in "$@"; do
		case $a in
		mic) args="$args --mic $corpus/mics/$dev.pem --mic-key $corpus/mics/$dev.key" ;;
		lsc) args="$args --lsc $tmp/lsc/$dev-lsc.pem --lsc-key $tmp/lsc/$dev-lsc.key" ;;
		reuse) args="$args --reuse-key $tmp/lsc/$dev-lsc.key" ;;
		*) args="$args $a" ;;
		esac
	done
}

record() {
	file=$1 code=$2
	shift 2
	phone_args "$@"
	rc=0
	# shellcheck disable=SC2086 # the words are options
	out=$("$CAPF_PHONE" enroll $args --record "$corpus/$file.jsonl" 2>&1) || rc=$?
	if [ "$code" = 0 ]; then
		[ $rc -eq 0 ] || fail "$file: exit status $rc: $out"
	else
		[ $rc -eq 1 ] || fail "$file: exit status $rc where $code was expected: $out"
		echo "$out" | grep -q " $code (CAPF_" || fail "$file: expected $code, got: $out"
	fi
	echo "recorded $file ($code)"
}
session() { record "$@"; }
session_part() { record "$@"; }

run_cases
stop_capfd
