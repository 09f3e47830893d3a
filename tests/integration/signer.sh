#!/bin/sh
# The signer process: every CA key lives in it, never in capfd.
#   (a) kill -KILL the signer while phones enroll: capfd logs the restart
#       and keeps serving; with --retry the phones all enroll, and every
#       certificate a phone received is in the store. A signer that hangs
#       (SIGSTOP) fails handshakes with an alert and a log line, within
#       [signer] timeout_ms, and they succeed again once it runs.
#       Without retries, the sessions in flight fail with 1016 or a
#       handshake alert and nothing else (a2).
#   (b) with [testing] signer_delay_ms = 1500 and one worker, a phone
#       that waits for its signatures (the handshake's, the LSC's) does
#       not hold the loop: peers sending non-TLS bytes meanwhile are
#       refused at once.
#   (c) after enrollments, the CA's private key is in the signer's memory
#       and not in capfd's (read through /proc/PID/mem; skipped, and said
#       so, where that is not permitted).
set -u
. "$(dirname "$0")/lib.sh"

"$CAPF_PHONE" mkmic --dir "$tmp/mfg" SEPSIGNA SEPSIGNB >/dev/null || fail "mkmic"

signer_pid() {
	pgrep -P "$capfd_pid" | head -n 1
}

# Every certificate recorded in $tmp/received is in the store (offline).
check_received_stored() {
	"$CAPFCTL" store dump -d "$tmp/state" --json >"$tmp/dump" 2>&1 ||
		{ cat "$tmp/dump"; fail "$1: store dump"; }
	tr -d ' \n' <"$tmp/dump" | sed 's/},{/}\n{/g' | grep '"type":"certificate"' |
		sed 's/.*"serial":"\([0-9a-f]*\)","device":"\([^"]*\)".*/\2 \1/' | sort >"$tmp/stored"
	sort -u "$tmp/received" >"$tmp/received.sorted"
	missing=$(comm -23 "$tmp/received.sorted" "$tmp/stored" | wc -l)
	[ "$missing" -eq 0 ] || fail "$1: $missing certificates phones received are not in the store"
	[ -s "$tmp/received.sorted" ] || fail "$1: no phone received a certificate"
}

# ---- (a) the signer dies under load -----------------------------------------
cat >"$tmp/a.conf" <<EOF
[signer]
timeout_ms = 1000
EOF
start_capfd -c "$tmp/a.conf"
pid1=$(signer_pid)
[ -n "$pid1" ] || fail "(a) no signer process under capfd $capfd_pid"
[ "$(cat /proc/"$pid1"/comm)" = "capfd-signer" ] || fail "(a) capfd's child is not the signer"
: >"$tmp/received"
"$CAPF_PHONE" load --count 120 --concurrency 8 --mfg-dir "$tmp/mfg" --ca "$capf_ca" \
	--socket "$sock" --host 127.0.0.1 --port "$port" --prefix SEPKILL --timeout 60 \
	--retry 30 --record "$tmp/received" >"$tmp/load.a" 2>&1 &
load_pid=$!
sleep 0.4
kill -KILL "$pid1" || fail "(a) cannot kill the signer"
wait_log "signer exited on signal 9; restarting" "(a) restart"
sleep 0.3
kill -KILL "$(signer_pid)" 2>/dev/null || true
rc=0
wait "$load_pid" || rc=$?
kill -0 "$capfd_pid" 2>/dev/null || fail "(a) capfd died with its signer"
[ "$rc" -eq 0 ] || { cat "$tmp/load.a"; fail "(a) not every phone enrolled (exit $rc)"; }
# The last restart may still be under way.
i=0
until pid2=$(signer_pid) && [ -n "$pid2" ] && [ "$pid2" != "$pid1" ] &&
	[ "$(cat /proc/"$pid2"/comm 2>/dev/null)" = "capfd-signer" ]; do
	i=$((i + 1))
	[ $i -lt 200 ] || fail "(a) no new signer"
	sleep 0.05
done
retries=$(sed -n 's/^retries: //p' "$tmp/load.a")
echo "ok: (a) signer killed twice during 120 enrollments: all enrolled (${retries:-0}" \
	"retries after retry-later or a failed handshake); signer $pid1 -> $pid2"

# A signer that hangs: the handshake fails with an alert, one log line.
kill -STOP "$pid2"
lines=$(wc -l <"$tmp/capfd.log")
ctl device add SEPSIGNA >/dev/null || fail "(a) device add"
rc=0
out=$(enroll SEPSIGNA --timeout 10 2>&1) || rc=$?
kill -CONT "$pid2"
[ "$rc" -ne 0 ] || fail "(a) a phone enrolled while the signer was stopped"
echo "$out" | grep -qi "alert" || fail "(a) no TLS alert when the signer hangs: $out"
n=$(tail -n +"$((lines + 1))" "$tmp/capfd.log" | grep -c "the signer could not sign")
[ "$n" -eq 1 ] || fail "(a) expected one log line for the failed handshake, got $n"
enroll SEPSIGNA >/dev/null || fail "(a) no enrollment after the signer resumed"
echo "SEPSIGNA $(openssl x509 -in "$tmp/SEPSIGNA.lsc.pem" -noout -serial | sed 's/.*=//' |
	tr 'A-F' 'a-f')" >>"$tmp/received"
echo "ok: (a) a hanging signer: handshake alert and one log line; enrolls once it runs"
stop_capfd
check_received_stored "(a)"
echo "ok: (a) every certificate a phone received is in the store"

# ---- (a2) the sessions in flight when it dies ---------------------------------
# Without --retry, and with each signature slowed down so that some are
# always in flight: the signer killed three times, each logged and
# followed by a new one. Every phone that fails, fails cleanly: 1016
# (CAPF_ERETRY) when its LSC's signature was lost, or its handshake closed
# with an alert (the phone sees the connection reset; capfd logs that the
# signer could not sign); no other code. A second pass enrolls them all.
cat >"$tmp/a2.conf" <<EOF
[signer]
timeout_ms = 1000
[testing]
fault_injection = yes
signer_delay_ms = 50
EOF
start_capfd -c "$tmp/a2.conf"
lines=$(wc -l <"$tmp/capfd.log")
: >"$tmp/received"
"$CAPF_PHONE" load --count 100 --concurrency 16 --mfg-dir "$tmp/mfg" --ca "$capf_ca" \
	--socket "$sock" --host 127.0.0.1 --port "$port" --prefix SEPINFL --timeout 60 \
	--record "$tmp/received" >"$tmp/load.a2" 2>&1 &
load_pid=$!
sleep 0.5
for k in 1 2 3; do
	spid=$(signer_pid)
	[ -n "$spid" ] && kill -KILL "$spid" 2>/dev/null
	sleep 0.3
done
wait "$load_pid"
kill -0 "$capfd_pid" 2>/dev/null || fail "(a2) capfd died with its signer"
n=$(tail -n +"$((lines + 1))" "$tmp/capfd.log" | grep -c "signer exited on signal 9; restarting")
[ "$n" -ge 3 ] || fail "(a2) $n restarts logged for 3 kills"
failed=$(sed -n 's/^enrollments: [0-9]* ok, \([0-9]*\) failed.*/\1/p' "$tmp/load.a2")
[ "${failed:-0}" -gt 0 ] || { cat "$tmp/load.a2"; fail "(a2) no session was in flight at a kill"; }
others=$(grep "^  failed with" "$tmp/load.a2" | grep -v "CAPF_ERETRY (1016)\|CAPF_ECONNRESET (104)" ||
	true)
[ -z "$others" ] || { cat "$tmp/load.a2"; fail "(a2) sessions failed otherwise: $others"; }
if grep -q "CAPF_ECONNRESET" "$tmp/load.a2"; then
	grep -q "TLS handshake failed: the signer could not sign" "$tmp/capfd.log" ||
		fail "(a2) handshakes failed without a log line naming the signer"
fi
# The second pass once the last restart is done (it may still be waiting
# out its back-off).
i=0
until [ "$(tail -n +"$((lines + 1))" "$tmp/capfd.log" | grep -c "signer started")" -ge "$n" ]; do
	i=$((i + 1))
	[ $i -lt 200 ] || fail "(a2) no signer after the last kill"
	sleep 0.05
done
"$CAPF_PHONE" load --count 100 --concurrency 16 --mfg-dir "$tmp/mfg" --ca "$capf_ca" \
	--socket "$sock" --host 127.0.0.1 --port "$port" --prefix SEPINFL --timeout 60 \
	--record "$tmp/received" >"$tmp/load.a2b" 2>&1 ||
	{ cat "$tmp/load.a2b"; fail "(a2) the second pass did not enroll every phone"; }
stop_capfd
check_received_stored "(a2)"
echo "ok: (a2) signer killed 3 times under load without retries: $failed sessions failed," \
	"each with 1016 or a handshake alert; all enrolled on a second pass"

# ---- (b) a slow signature does not hold the loop -----------------------------
cat >"$tmp/b.conf" <<EOF
[server]
workers = 1
[testing]
fault_injection = true
signer_delay_ms = 1500
EOF
start_capfd -c "$tmp/b.conf" -w 1
ctl device add SEPSIGNB >/dev/null || fail "(b) device add"
t0=$(date +%s%N)
enroll SEPSIGNB --timeout 30 >"$tmp/enroll.b" 2>&1 &
phone_pid=$!
# The phone waits for two signatures of 1.5 s: its handshake's, then its
# LSC's. Every 200 ms meanwhile, a peer that sends HTTP instead of TLS
# must be refused in a fraction of that; a loop held by either signature
# would keep one of them waiting for most of it.
sleep 0.3
probes=0
max_ms=0
while kill -0 "$phone_pid" 2>/dev/null; do
	t1=$(date +%s%N)
	timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3;
		cat <&3 >/dev/null" 2>/dev/null || true
	t2=$(date +%s%N)
	ms=$(((t2 - t1) / 1000000))
	[ "$ms" -gt "$max_ms" ] && max_ms=$ms
	probes=$((probes + 1))
	[ "$ms" -lt 600 ] ||
		fail "(b) a non-TLS peer took $ms ms to be refused: the loop waited for a signature"
	sleep 0.2
done
rc=0
wait "$phone_pid" || rc=$?
t3=$(date +%s%N)
[ "$rc" -eq 0 ] || { cat "$tmp/enroll.b"; fail "(b) the slow phone did not enroll"; }
phone_ms=$(((t3 - t0) / 1000000))
[ "$phone_ms" -ge 3000 ] || fail "(b) the enrollment took $phone_ms ms: the delay did not apply"
[ "$probes" -ge 8 ] || fail "(b) only $probes probes during the enrollment"
echo "ok: (b) during the phone's two 1500 ms signatures, $probes non-TLS peers on the same" \
	"worker were each refused within $max_ms ms; the phone enrolled in $phone_ms ms"

# ---- (c) the key is in the signer's memory, not in capfd's -------------------
key=$(ls "$tmp"/state/ca/gen/*/key.pem | head -n 1)
[ -f "$key" ] || fail "(c) no CA key file"
if [ "$(id -u)" -ne 0 ] || ! command -v python3 >/dev/null 2>&1; then
	stop_capfd
	echo "ok: (c) skipped: reading another process's memory needs root and python3"
	exit 0
fi
# The EC private scalar of the PKCS#8 key, in hex.
d=$(openssl pkey -in "$key" -outform DER 2>/dev/null | od -An -v -tx1 | tr -d ' \n' |
	sed -n 's/.*0201010420\([0-9a-f]\{64\}\).*/\1/p')
[ ${#d} -eq 64 ] || fail "(c) cannot read the private scalar of $key"
# memhas PID: 0 if the scalar (big- or little-endian, as bignum libraries
# keep it) is anywhere in the process's readable memory.
memhas() {
	python3 - "$1" "$d" <<'EOF'
import re, sys
pid, d = sys.argv[1], bytes.fromhex(sys.argv[2])
pats = (d, d[::-1])
found = False
with open("/proc/%s/maps" % pid) as maps, open("/proc/%s/mem" % pid, "rb", 0) as mem:
    for line in maps:
        m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
        if m is None or m.group(3)[0] != "r" or "[vvar]" in line or "[vsyscall]" in line:
            continue
        lo, hi = int(m.group(1), 16), int(m.group(2), 16)
        try:
            mem.seek(lo)
            chunk = mem.read(hi - lo)
        except (OSError, ValueError):
            continue
        if any(p in chunk for p in pats):
            found = True
            break
sys.exit(0 if found else 1)
EOF
}
spid=$(signer_pid)
memhas "$spid" || fail "(c) the key is not found in the signer's memory: the check cannot work"
if memhas "$capfd_pid"; then
	fail "(c) the CA private key is in capfd's memory"
fi
stop_capfd
echo "ok: (c) the CA private key is in the signer's memory (pid $spid), not in capfd's"
exit 0
