#!/bin/sh
# Hostile clients: hundreds of connections that never finish the TLS
# handshake (some silent, some stopped inside a record), spread over
# addresses so that no per-source limit stops them, while a real phone
# enrolls: the phone gets its LSC in time, and capfd closes every held
# connection once [limits] handshake_timeout is over. Then the per-source
# limit: the connections of one address over max_per_source are closed
# at once. The store checks clean afterwards.
set -u
. "$top_srcdir/tests/integration/lib.sh"
: "${HOLD:=$(pwd)/tests/hostile/hold}"
[ -x "$HOLD" ] || fail "$HOLD is not built"
N=${SLOWLORIS_CONNECTIONS:-400}
[ "$(ulimit -n)" -gt $((N + 200)) ] 2>/dev/null || ulimit -n $((N + 512)) 2>/dev/null ||
	{ echo "SKIP: cannot open $N files"; exit 77; }

P=SEP0000000000F1
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $P >/dev/null || fail "mkmic"
cat >"$tmp/c.conf" <<CONF
[limits]
handshake_timeout = 3
max_per_source = 40
max_connections = 4000
CONF
start_capfd -c "$tmp/c.conf"
ctl device add $P --auth mic >/dev/null || fail "device add"

# Half silent, half stopped after a record header; 20 addresses.
"$HOLD" 127.0.0.1 "$port" $((N / 2)) 8 20 0 >"$tmp/silent" &
h1=$!
"$HOLD" 127.0.0.1 "$port" $((N / 2)) 8 20 1 >"$tmp/partial" &
h2=$!
sleep 1
t0=$(date +%s%N)
enroll $P >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "a real phone could not enroll under slowloris"; }
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
[ $ms -lt 3000 ] || fail "the real phone took $ms ms under slowloris"
wait $h1
wait $h2
for f in silent partial; do
	read -r _ opened _ refused _ closed _ early _ max <"$tmp/$f"
	[ "$opened" -eq $((N / 2)) ] || fail "$f: opened $opened of $((N / 2)) ($(cat "$tmp/$f"))"
	[ "$closed" -eq "$opened" ] || fail "$f: capfd closed $closed of $opened held connections"
	[ "$early" -eq 0 ] || fail "$f: $early closed at once, under no limit"
	[ "$max" -ge 2500 ] && [ "$max" -le 6000 ] ||
		fail "$f: closed after up to $max ms with handshake_timeout = 3"
done
echo "ok: $N held connections closed by the handshake timeout; a phone enrolled in $ms ms"

# ---- max_per_source: 50 from one address, 40 allowed -----------------------------
"$HOLD" 127.0.0.1 "$port" 50 5 1 0 >"$tmp/one"
read -r _ opened _ refused _ closed _ early _ max <"$tmp/one"
[ "$early" -ge 10 ] || fail "per source: only $early of 50 closed at once ($(cat "$tmp/one"))"
[ "$closed" -eq "$opened" ] || fail "per source: $closed of $opened closed"
grep -q "per-source connection limit (40) reached" "$tmp/capfd.log" ||
	{ tail -n 20 "$tmp/capfd.log"; fail "no log line for the per-source limit"; }

json $P
jhas '"status":"success"' "the phone's install is not recorded"
stop_capfd
"$CAPFCTL" store check -d "$tmp/state" >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "store check"; }
echo "PASS"
