#!/bin/sh
# Record the replay corpus: start a fresh capfd with the configuration of
# cases.sh, run each session of cases.sh with capf-phone enroll --record
# (native) or capf-phone cisco --record (Cisco CAPF v3), check that each
# ended with the code or reason it names, and write tests/replay/corpus/
# (the transcripts and the MICs they used) anew. Run from the build
# directory after make: tests/replay/record.sh [CORPUS-DIR]
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
cport=$(sed -n 's/^cisco_port=//p' "$tmp/ready")
[ -n "$cport" ] || fail "no cisco_port in the ready file"

# phone_args DEVICE ARGS...: the capf-phone options for cases.sh's words.
phone_args() {
	dev=$1
	shift
	lsc="$tmp/lsc/$dev-lsc"
	args="--name $dev --ca $capf_ca --host 127.0.0.1"
	args="$args --out-cert $lsc.pem --out-key $lsc.key"
	for a in "$@"; do
		case $a in
		mic) args="$args --mic $corpus/mics/$dev.pem --mic-key $corpus/mics/$dev.key" ;;
		mic:*) args="$args --mic $corpus/mics/${a#mic:}.pem --mic-key $corpus/mics/${a#mic:}.key" ;;
		lsc) args="$args --lsc $lsc.pem --lsc-key $lsc.key" ;;
		old-lsc) args="$args --lsc $tmp/lsc/$dev-old.pem --lsc-key $tmp/lsc/$dev-old.key" ;;
		reuse) args="$args --reuse-key $lsc.key" ;;
		sudi) args="$args --sudi $corpus/mics/$dev.pem --sudi-key $corpus/mics/$dev.key" ;;
		sudi:*) args="$args --sudi $corpus/mics/${a#sudi:}.pem --sudi-key $corpus/mics/${a#sudi:}.key" ;;
		report-lsc) args="$args --report $lsc.pem" ;;
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
	out=$("$CAPF_PHONE" enroll $args --port "$port" --record "$corpus/$file.jsonl" 2>&1) || rc=$?
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

# A Cisco session; the LSC the device had before a session that gave it a
# new one is kept as DEVICE-old (cases.sh's old-lsc).
cisco_record() {
	file=$1 reason=$2 dev=$3
	shift 2
	phone_args "$@"
	lsc="$tmp/lsc/$dev-lsc"
	rm -f "$tmp/lsc/snap.pem" "$tmp/lsc/snap.key"
	[ -f "$lsc.pem" ] && cp "$lsc.pem" "$tmp/lsc/snap.pem" && cp "$lsc.key" "$tmp/lsc/snap.key"
	rc=0
	# shellcheck disable=SC2086 # the words are options
	out=$("$CAPF_PHONE" cisco $args --port "$cport" --record "$corpus/$file.jsonl" 2>&1) || rc=$?
	if [ "$reason" = - ]; then
		echo "$out" | grep -q "^closed inside the message" ||
			fail "$file: the phone did not hang up: $out"
	else
		echo "$out" | grep -q "^end: reason $reason\(:\|$\)" ||
			fail "$file: expected reason $reason (exit status $rc): $out"
	fi
	if [ -f "$tmp/lsc/snap.pem" ] && ! cmp -s "$lsc.pem" "$tmp/lsc/snap.pem"; then
		mv "$tmp/lsc/snap.pem" "$tmp/lsc/$dev-old.pem"
		mv "$tmp/lsc/snap.key" "$tmp/lsc/$dev-old.key"
	fi
	echo "recorded $file (reason $reason)"
}
cisco_session() { cisco_record "$@"; }
cisco_session_part() { cisco_record "$@"; }

run_cases
stop_capfd
