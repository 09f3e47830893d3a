#!/bin/sh
# capf-replay load: the open loop (--rate) holds its rate within 10 %
# whatever the sessions take (slow ones are started on time, several at
# once), says how late starts were when too few may run at once, prints
# the latency percentiles (text and JSON), and mixes native and Cisco
# sessions; the closed loop mixes them too. Every load is bounded in count
# and in time. The sessions replayed are refused before any device is
# claimed (an unknown version, a message out of order, a Cisco message
# spoilt): they change nothing and never meet another session of their
# device (which the server refuses with 16, CAPF_EBUSY), so each is the
# same every time.
set -u
. "$top_srcdir/tests/integration/lib.sh"
: "${CAPF_REPLAY:=$(pwd)/capf-replay}"
[ -x "$CAPF_REPLAY" ] || fail "$CAPF_REPLAY is not built"
corpus="$top_srcdir/tests/replay/corpus"
. "$top_srcdir/tests/replay/cases.sh"

mkdir -p "$tmp/mfg"
cp "$corpus/mics/mfg-ca.pem" "$tmp/mfg/"
printf '%s' "$CONF" >"$tmp/capfd.conf"
start_capfd -c "$tmp/capfd.conf"
cport=$(sed -n 's/^cisco_port=//p' "$tmp/ready")
[ -n "$cport" ] || fail "no cisco_port in the ready file"
mix="$corpus/30-version-unknown.jsonl $corpus/43-out-of-order.jsonl"
mix="$mix $corpus/cisco-10-malform-header.jsonl $corpus/cisco-11-malform-element.jsonl"

load() {
	rc=0
	# shellcheck disable=SC2086 # files and options
	"$CAPF_REPLAY" load --server "127.0.0.1:$port" --cisco-server "127.0.0.1:$cport" \
		--ca "$capf_ca" --mic-dir "$corpus/mics" --timeout 10 "$@" >"$tmp/out" 2>&1 || rc=$?
	[ $rc -eq 0 ] || { cat "$tmp/out"; fail "load $*: exit status $rc"; }
}
# key NAME: the value of NAME in the JSON line.
key() {
	sed -n 's/^{.*"'"$1"'":"\{0,1\}\([^,"}]*\)"\{0,1\}[,}].*/\1/p' "$tmp/out"
}
# within VALUE LOW HIGH WHAT: LOW <= VALUE <= HIGH (decimals), else fail.
within() {
	awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(v != "" && v >= lo && v <= hi) }' ||
		{ cat "$tmp/out"; fail "$4: $1 is not within $2..$3"; }
}
percentiles() {
	grep -q "^latency (ms, sessions run to the end): p50 [0-9.]* p90 [0-9.]* p99 [0-9.]* max [0-9.]*$" \
		"$tmp/out" || { cat "$tmp/out"; fail "$1: no latency percentiles"; }
	for k in p50_ms p90_ms p99_ms max_ms; do
		[ -n "$(key $k)" ] || { cat "$tmp/out"; fail "$1: no $k in the JSON line"; }
	done
	awk -v a="$(key p50_ms)" -v b="$(key p90_ms)" -v c="$(key p99_ms)" -v d="$(key max_ms)" \
		'BEGIN { exit !(a > 0 && a <= b && b <= c && c <= d) }' ||
		{ cat "$tmp/out"; fail "$1: the percentiles are not in order"; }
}

# ---- open loop: 25 sessions/s for 2 s, native and Cisco in turn --------------
# shellcheck disable=SC2086
load $mix --rate 25 --duration 2
grep -q "^sessions: 50 same, 0 differ, 0 failed of 50 run (50 asked)$" "$tmp/out" ||
	{ cat "$tmp/out"; fail "open loop: not 50 sessions, all the same"; }
# Session i is the mix's i modulo 4: 13 + 13 native, 12 + 12 Cisco.
grep -q "^protocols: 26 native, 24 cisco$" "$tmp/out" || { cat "$tmp/out"; fail "open loop: the mix"; }
[ "$(key loop)" = open ] || { cat "$tmp/out"; fail "open loop: not said in the JSON line"; }
within "$(key start_rate)" 22.5 27.5 "open loop: the start rate of --rate 25"
within "$(key wall_s)" 1.9 6 "open loop: 50 sessions at 25/s"
grep -q "^open loop: 25.0 sessions/s asked, [0-9.]* started/s, start lag (ms) p50 [0-9.]* p99 [0-9.]* max [0-9.]*, [0-9]* late (more than 10 ms), at most [0-9]* at once$" \
	"$tmp/out" || { cat "$tmp/out"; fail "open loop: no line of its own"; }
percentiles "open loop"

# ---- open loop, whatever the sessions take: each 0.4 s (the recorded Hello
# delayed, replayed with --pace), 20 started per second all the same -----------
sed 's/"i":0,"t":[0-9.]*,/"i":0,"t":0.400000,/; s/"i":1,"t":[0-9.]*,/"i":1,"t":0.401000,/' \
	"$corpus/30-version-unknown.jsonl" >"$tmp/slow.jsonl"
load "$tmp/slow.jsonl" --rate 20 --duration 2 --pace
grep -q "^sessions: 40 same, 0 differ, 0 failed of 40 run (40 asked)$" "$tmp/out" ||
	{ cat "$tmp/out"; fail "slow sessions: not 40, all the same"; }
within "$(key start_rate)" 18 22 "slow sessions: the start rate of --rate 20"
within "$(key in_flight_max)" 6 64 "slow sessions: at most at once (0.4 s at 20/s: 8)"
within "$(key p50_ms)" 400 5000 "slow sessions: the latency of a 0.4 s session"
percentiles "slow sessions"
# Only 2 at once: the starts fall behind, and the report says so.
load "$tmp/slow.jsonl" --rate 20 --count 8 --concurrency 2 --pace
within "$(key late)" 4 8 "2 at once for 8 sessions of 0.4 s at 20/s: late starts"
within "$(key start_rate)" 0 10 "2 at once: the start rate reached"

# ---- closed loop: the same mix, each thread in turn ------------------------------
# shellcheck disable=SC2086
load $mix --concurrency 2 --count 16 --duration 20
grep -q "^sessions: 16 same, 0 differ, 0 failed of 16 run (16 asked)$" "$tmp/out" ||
	{ cat "$tmp/out"; fail "closed loop: not 16 sessions, all the same"; }
# Each thread goes through the mix from its own starting point.
within "$(key native)" 1 15 "closed loop: native sessions"
within "$(key cisco)" 1 15 "closed loop: Cisco sessions"
[ "$(key loop)" = closed ] || { cat "$tmp/out"; fail "closed loop: not said in the JSON line"; }
percentiles "closed loop"

stop_capfd
echo "PASS"
