#!/bin/sh
# Crash test: capfd is killed with SIGKILL at random moments while phones
# enroll (capf-phone load) and compactions run, then restarted. After each
# kill:
#   - capfctl store check finds no damage (a torn tail is allowed: it is
#     what a kill in the middle of a write leaves, and the start drops it);
#   - every certificate that any phone received is in the store (the
#     write-ahead rule), looked up by serial in capfctl store dump;
#   - the restart's time is printed, and the audit chain verifies.
#
# Rounds and load (all bounded; loopback only):
#   CRASH_ROUNDS       kills, default 3 (make check); by hand e.g.
#                      CRASH_ROUNDS=50 make check TESTS=tests/integration/crash.sh
#   CRASH_PHONES       phones per round, default 200
#   CRASH_CONCURRENCY  phones at once, default 16
#   CRASH_MAX_DELAY_MS the kill comes 100 ms to this long after the load
#                      starts, default 1200
set -u
. "$(dirname "$0")/lib.sh"

rounds=${CRASH_ROUNDS:-3}
phones=${CRASH_PHONES:-200}
conc=${CRASH_CONCURRENCY:-16}
max_delay=${CRASH_MAX_DELAY_MS:-1200}

"$CAPF_PHONE" mkmic --dir "$tmp/mfg" SEPCRASHSEED >/dev/null || fail "mkmic"
: >"$tmp/received"

# A random number in [lo, hi] from /dev/urandom (POSIX sh has no $RANDOM).
rand_between() {
	r=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
	echo $(($1 + r % ($2 - $1 + 1)))
}

start_timed() {
	t0=$(date +%s%N)
	start_capfd "$@"
	t1=$(date +%s%N)
	restart_ms=$(((t1 - t0) / 1000000))
}

start_timed
total_restart=0
max_restart=0
for round in $(seq 1 "$rounds"); do
	prefix="SEPCR$(printf '%03X' "$round")"
	# The load in the background, and compactions now and then, so that
	# a kill may land in the middle of a snapshot too.
	"$CAPF_PHONE" load --count "$phones" --concurrency "$conc" --mfg-dir "$tmp/mfg" \
		--ca "$capf_ca" --socket "$sock" --host 127.0.0.1 --port "$port" \
		--prefix "$prefix" --timeout 30 --record "$tmp/received" \
		>"$tmp/load.$round" 2>&1 &
	load_pid=$!
	(
		while kill -0 "$capfd_pid" 2>/dev/null; do
			sleep 0.$(rand_between 1 4)
			"$CAPFCTL" -s "$sock" store compact >/dev/null 2>&1 || true
		done
	) &
	compact_pid=$!

	delay=$(rand_between 100 "$max_delay")
	sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
	kill -KILL "$capfd_pid" 2>/dev/null || fail "round $round: capfd died before the kill"
	wait "$capfd_pid" 2>/dev/null
	capfd_pid=""
	# Without a server the phones fail fast; the load ends on its own.
	i=0
	while kill -0 "$load_pid" 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 600 ] || { kill "$load_pid"; fail "round $round: the load does not end"; }
		sleep 0.1
	done
	wait "$load_pid" 2>/dev/null
	wait "$compact_pid" 2>/dev/null

	# Offline, before the restart repairs anything: no damage.
	"$CAPFCTL" store check -d "$tmp/state" >"$tmp/check.$round" 2>&1 ||
		{ cat "$tmp/check.$round"; fail "round $round: store check after the kill"; }
	torn=$(grep -c "torn tail" "$tmp/check.$round")

	# Every certificate a phone received is in the store.
	"$CAPFCTL" store dump -d "$tmp/state" --json >"$tmp/dump.$round" 2>&1 ||
		{ cat "$tmp/dump.$round"; fail "round $round: store dump"; }
	tr -d ' \n' <"$tmp/dump.$round" | sed 's/},{/}\n{/g' | grep '"type":"certificate"' |
		sed 's/.*"serial":"\([0-9a-f]*\)","device":"\([^"]*\)".*/\2 \1/' | sort >"$tmp/stored"
	sort -u "$tmp/received" >"$tmp/received.sorted"
	missing=$(comm -23 "$tmp/received.sorted" "$tmp/stored" | wc -l)
	[ "$missing" -eq 0 ] || {
		comm -23 "$tmp/received.sorted" "$tmp/stored" | head
		fail "round $round: $missing certificates that phones received are not in the store"
	}
	got=$(wc -l <"$tmp/received.sorted")

	start_timed
	[ "$restart_ms" -gt "$max_restart" ] && max_restart=$restart_ms
	total_restart=$((total_restart + restart_ms))
	loaded=$(grep "loaded in" "$tmp/capfd.log" | tail -n 1 | sed 's/.*loaded in //')
	echo "round $round: killed after ${delay} ms; $got certificates received so far, all in" \
		"the store; torn tails: $torn; restart ${restart_ms} ms (store loaded in $loaded)"
	"$CAPFCTL" audit verify -d "$tmp/state" >"$tmp/verify.$round" 2>&1 ||
		{ cat "$tmp/verify.$round"; fail "round $round: audit verify"; }
done

# After all that, the server still enrolls.
"$CAPF_PHONE" load --count 4 --concurrency 2 --mfg-dir "$tmp/mfg" --ca "$capf_ca" \
	--socket "$sock" --host 127.0.0.1 --port "$port" --prefix SEPCRFIN --timeout 30 \
	>"$tmp/load.final" 2>&1 || { cat "$tmp/load.final"; fail "enrollment after the crashes"; }
stop_capfd
"$CAPFCTL" store check -d "$tmp/state" >"$tmp/check.final" ||
	{ cat "$tmp/check.final"; fail "store check at the end"; }
echo "PASS: $rounds kills, $(wc -l <"$tmp/received.sorted") certificates received and all" \
	"recorded; restart mean $((total_restart / rounds)) ms, max $max_restart ms"
exit 0
