#!/bin/sh
# Hostile clients: slowloris at thousands, and the connection limits.
#
#   (a) 3,000 connections (SLOWLORIS_CONNECTIONS) that never finish: 1/3
#       silent, 1/3 stopped inside a TLS record header, 1/5 after a whole
#       ClientHello (capfd answers and signs its flight), and the rest
#       after a whole TLS handshake, halfway into their first frame (some
#       stopped, some dripping one byte a second); spread over 140
#       addresses so that no per-source limit stops them. Meanwhile real
#       phones (capf-phone load) enroll, each in time. Every held
#       connection is closed by capfd, none at once: the unfinished
#       handshakes when [limits] handshake_timeout is over (no message),
#       the unfinished frames when idle_timeout is over, with Error 1020
#       (CAPF_ETIMEOUT), the drip included (bytes that end no message do
#       not count as activity).
#   (b) max_connections: with the server full, every further connection is
#       closed at once, before TLS, without a message; a phone then fails
#       to connect (capf-phone exits 3); the log says "connection limit (N)
#       reached"; the admin socket answers all the while; once the held
#       connections time out, the phone enrolls.
#   (c) max_per_source: from one address, exactly the connections over the
#       limit are closed at once, the others at the handshake timeout; the
#       log says "per-source connection limit (N) reached"; a phone from
#       another address enrolls meanwhile.
#   (d) max_connections above the open-files limit: capfd warns at start,
#       and a flood past the limit is dropped at accept; capfd stays up,
#       and afterwards the admin socket answers and the phone enrolls.
# Then: every device record says what its phone was told, every LSC a
# phone received is that device's in the store, store check and audit
# verify clean.
#
# Needs about 3,400 open files in capfd: the test raises the soft
# RLIMIT_NOFILE (ulimit -n) to 8192, and is a SKIP if the hard limit is lower.
set -u
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/tests/hostile/lib.sh"
: "${HOLD:=$(pwd)/tests/hostile/hold}"
[ -x "$HOLD" ] || fail "$HOLD is not built"
N=${SLOWLORIS_CONNECTIONS:-3000}
raise_nofile 8192

P=SEP0000000000F1
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $P >/dev/null || fail "mkmic"
HS=4
cat >"$tmp/a.conf" <<CONF
[limits]
handshake_timeout = $HS
idle_timeout = $HS
max_per_source = 40
max_connections = $((N + 500))
CONF
start_capfd -c "$tmp/a.conf"
ctl device add $P --auth mic >/dev/null || fail "device add"
: >"$tmp/received"

# active: the phone connections open now, as capfd counts them.
active() {
	ctl stats | sed -n 's/^capf_connections_active //p'
}

# hold_bg NAME COUNT SOURCES MODE FIRST: a hold in the background,
# watching for long enough, its report in $tmp/NAME.
hold_bg() {
	"$HOLD" 127.0.0.1 "$port" "$2" $((HS + 12)) "$3" "$4" "$5" >"$tmp/$1" 2>"$tmp/$1.err" &
}

# check_held NAME COUNT LO HI [CODE]: the report of hold NAME: COUNT
# opened, all closed by capfd between LO and HI ms after opening (so none
# at once), and with CODE every one told so in an Error message.
check_held() {
	read -r _ opened _ refused _ closed _ early _ max _ min _ errors _ code <"$tmp/$1" ||
		fail "$1: no report ($(cat "$tmp/$1.err"))"
	[ "$opened" -eq "$2" ] || fail "$1: opened $opened of $2 ($(cat "$tmp/$1") $(head -n 3 "$tmp/$1.err"))"
	[ "$closed" -eq "$opened" ] || fail "$1: capfd closed $closed of $opened held connections"
	[ "$early" -eq 0 ] || fail "$1: $early closed at once, under no limit"
	[ "$min" -ge "$3" ] && [ "$max" -le "$4" ] ||
		fail "$1: closed from $min to $max ms after opening, not within $3..$4 ms"
	if [ -n "${5:-}" ]; then
		[ "$errors" -eq "$opened" ] && [ "$code" -eq "$5" ] ||
			fail "$1: $errors of $opened connections told Error $5 (last code $code)"
	fi
}

# ---- (a) thousands held while phones enroll ----------------------------------------
n0=$((N / 3)) n1=$((N / 3)) n2=$((N / 5))
n3=$(((N - n0 - n1 - n2) / 2))
n4=$((N - n0 - n1 - n2 - n3))
t0=$(date +%s%N)
hold_bg silent $n0 40 0 1
h0=$!
hold_bg partial $n1 40 1 41
h1=$!
hold_bg hello $n2 40 2 81
h2=$!
hold_bg frame $n3 10 3 121
h3=$!
hold_bg drip $n4 10 4 131
h4=$!
# The phones start once the connections are held (hold opens them all
# first, then watches).
i=0
until [ "$(active)" -ge $((N * 9 / 10)) ] 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 200 ] || fail "(a) the held connections do not show in capfd's status"
	sleep 0.05
done
t1=$(date +%s%N)
setup_ms=$(((t1 - t0) / 1000000))
enroll $P >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "(a) a real phone could not enroll under slowloris"; }
t2=$(date +%s%N)
ms=$(((t2 - t1) / 1000000))
[ $ms -lt 3000 ] || fail "(a) the real phone took $ms ms under slowloris"
echo "$P $(lsc_serial "$tmp/$P.lsc.pem")" >>"$tmp/received"
"$CAPF_PHONE" load --count 24 --concurrency 4 --mfg-dir "$tmp/mfg" --ca "$capf_ca" \
	--socket "$sock" --host 127.0.0.1 --port "$port" --prefix SEPSLOW --timeout 30 \
	--record "$tmp/received" >"$tmp/load.a" 2>&1 || { cat "$tmp/load.a"; fail "(a) load under slowloris"; }
t3=$(date +%s%N)
load_ms=$(((t3 - t2) / 1000000))
held=$(active)
[ "$held" -ge $((N * 9 / 10)) ] ||
	fail "(a) only $held connections were still held once the phones were done: the test proved nothing"
wait $h0 $h1 $h2 $h3 $h4
# capfd starts each timer from its loop's cached time, which lags behind
# while one loop iteration accepts hundreds of connections: a timeout may
# end up to a few hundred ms early under this flood (never at once).
lo=$((HS * 1000 - 1000)) hi=$((HS * 1000 + 3000))
check_held silent $n0 $lo $hi
check_held partial $n1 $lo $hi
check_held hello $n2 $lo $hi
check_held frame $n3 $lo $hi 1020
check_held drip $n4 $lo $hi 1020
grep -q "TLS handshake timed out" "$tmp/capfd.log" || fail "(a) no log line for the handshake timeouts"
echo "ok: (a) $N connections held (set up in $setup_ms ms, $held still open after the phones):" \
	"a phone enrolled in $ms ms, 24 more in $load_ms ms; capfd closed every one after" \
	"${HS} s, the $((n3 + n4)) unfinished frames with Error 1020"

# ---- (b) max_connections ------------------------------------------------------------
stop_capfd
MAXC=$((N * 2 / 3))
cat >"$tmp/b.conf" <<CONF
[limits]
handshake_timeout = $HS
max_per_source = 40
max_connections = $MAXC
CONF
start_capfd -c "$tmp/b.conf"
ctl device set $P --op install >/dev/null || fail "(b) device set"
hold_bg full $MAXC 100 0 1
hf=$!
i=0
until [ "$(active)" -ge $MAXC ] 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 200 ] || fail "(b) the server does not fill up"
	sleep 0.05
done
"$HOLD" 127.0.0.1 "$port" 200 2 100 0 101 >"$tmp/over" || fail "(b) hold"
read -r _ opened _ refused _ closed _ early _ max _ min _ errors _ code <"$tmp/over"
[ "$early" -eq "$opened" ] && [ "$opened" -eq 200 ] ||
	fail "(b) over max_connections: $early of $opened closed at once ($(cat "$tmp/over"))"
rc=0
out=$(enroll $P --timeout 5 2>&1) || rc=$?
[ "$rc" -eq 3 ] || fail "(b) a phone over max_connections: exit $rc (3 expected): $out"
ctl status >/dev/null || fail "(b) the admin socket does not answer with the server full"
grep -q "connection limit ($MAXC) reached, refusing" "$tmp/capfd.log" ||
	fail "(b) no log line for max_connections"
wait $hf
check_held full $MAXC $lo $hi
enroll $P >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "(b) the phone cannot enroll once the server has room"; }
echo "$P $(lsc_serial "$tmp/$P.lsc.pem")" >>"$tmp/received"
echo "ok: (b) $MAXC held: 200 more closed at once, a phone refused (exit 3), the admin socket" \
	"answered; enrolled once they timed out"

# ---- (c) max_per_source: 200 from one address, 40 allowed --------------------------
ctl device set $P --op install >/dev/null || fail "(c) device set"
"$HOLD" 127.0.0.1 "$port" 200 $((HS + 4)) 1 1 200 >"$tmp/one" &
ho=$!
sleep 1
enroll $P >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "(c) a phone from another address"; }
echo "$P $(lsc_serial "$tmp/$P.lsc.pem")" >>"$tmp/received"
wait $ho
read -r _ opened _ refused _ closed _ early _ max _ min _ errors _ code <"$tmp/one"
[ "$opened" -eq 200 ] && [ "$early" -eq 160 ] ||
	fail "per source: $early of $opened closed at once, 160 expected ($(cat "$tmp/one"))"
[ "$closed" -eq "$opened" ] || fail "(c) $closed of $opened closed"
[ "$max" -ge $lo ] || fail "(c) the 40 allowed were closed after $max ms"
grep -q "per-source connection limit (40) reached" "$tmp/capfd.log" ||
	fail "(c) no log line for the per-source limit"
echo "ok: (c) 200 from one address: 160 closed at once, 40 at the handshake timeout"

# ---- (d) max_connections above the open-files limit ----------------------------------
# capfd under a limit of 1024 files with max_connections = 4000: it says so
# at start and takes at most 960 phone connections; of a flood of 1,500
# what is over that is closed at once (logged), accept() never fails, the
# rest time out, capfd stays up, the admin socket answers and the phone
# enrolls.
grep -q "open-files limit" "$tmp/capfd.log" &&
	fail "(a)..(c): a warning about the open-files limit, which was high enough"
stop_capfd
if command -v prlimit >/dev/null; then
	cat >"$tmp/d.conf" <<CONF
[limits]
handshake_timeout = $HS
max_per_source = 100
max_connections = 4000
CONF
	CAPFD_WRAPPER="prlimit --nofile=1024:1024" start_capfd -c "$tmp/d.conf"
	grep -q "warning: the open-files limit (1024) is below \[limits\] max_connections (4000)" \
		"$tmp/capfd.log" || fail "(d) no warning that max_connections cannot be reached"
	ctl device set $P --op install >/dev/null || fail "(d) device set"
	"$HOLD" 127.0.0.1 "$port" 1500 $((HS + 6)) 40 0 1 >"$tmp/nofile" || fail "(d) hold"
	read -r _ opened _ refused _ closed _ early _ max _ min _ errors _ code <"$tmp/nofile"
	[ "$closed" -eq "$opened" ] || fail "(d) $closed of $opened closed ($(cat "$tmp/nofile"))"
	[ "$early" -ge 500 ] || fail "(d) 1,500 connections for 960: only $early dropped at once"
	grep -q "connection limit (960, set by the open-files limit) reached, refusing" \
		"$tmp/capfd.log" || fail "(d) the refusals over the open-files limit are not logged"
	grep -q "accept failed: too many open files" "$tmp/capfd.log" &&
		fail "(d) accept ran out of descriptors"
	kill -0 "$capfd_pid" || fail "(d) capfd died when it ran out of descriptors"
	ctl status >/dev/null || fail "(d) the admin socket does not answer after the flood"
	enroll $P >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "(d) no enrollment after the flood"; }
	echo "$P $(lsc_serial "$tmp/$P.lsc.pem")" >>"$tmp/received"
	echo "ok: (d) 1,024 files for max_connections = 4000: warned at start; of 1,500" \
		"connections $early dropped at once, the rest timed out; capfd up, the phone enrolled"
else
	start_capfd -c "$tmp/a.conf"
	echo "ok: (d) skipped: no prlimit (util-linux) to start capfd with a lower open-files limit"
fi

# ---- the store -----------------------------------------------------------------------
json $P
jhas '"status":"success"' "the phone's last install is not recorded"
jhas "\"lsc_serial\":\"$(lsc_serial "$tmp/$P.lsc.pem")\"" "the phone's LSC is not its current one"
ctl --csv device list >"$tmp/list" || fail "device list"
ok=$(grep -c '^SEPSLOW.*,success,' "$tmp/list")
[ "$ok" -eq 24 ] || { cat "$tmp/list"; fail "$ok of the 24 loaded phones recorded as success"; }
kill -0 "$capfd_pid" || fail "capfd died"
stop_capfd
offline_checks "after slowloris"
received_stored "after slowloris"
echo "PASS"
