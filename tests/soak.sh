#!/bin/sh
# Soak: every operation, admin change and fault at once, for a while, then
# the store compared with everything that phones and admins were told.
#
#   SOAK_MINUTES=10 tests/soak.sh      (from the build directory; default 10)
#   SOAK_SECONDS=N                     overrides SOAK_MINUTES (make check runs
#                                      a short one: tests/hostile/soak_short.sh)
#
# What runs meanwhile (all on loopback, every loop bounded by the deadline
# and by a count):
#   - native phones (capf-phone enroll, two workers, 10 devices each; the
#     second's present their LSC once they have one) and Cisco phones
#     (capf-phone cisco, 6 devices): each session does what the server
#     asks: install (an upgrade once the device has an LSC),
#     delete or fetch; a phone told there is nothing to do schedules a
#     random operation for itself (capfctl device set --op);
#   - capf-phone load rounds of new devices (--record);
#   - an admin worker on devices of its own: device add, set --lsc-days,
#     del, schedule --where, bulk import, store compact;
#   - faults, every 1 to 3 s at random: store writes failing (ENOSPC, EIO,
#     the fault seam) for a moment, the signer killed (SIGKILL), capfd
#     killed (SIGKILL: the stopped store is checked, then capfd restarts),
#     a compaction.
# Then, capfd stopped by SIGTERM (exit 0) and started again:
#   - store check and audit verify are clean;
#   - every LSC a phone received (read from the session's transcript, so
#     a delivery cut short counts too) is in the store as its device's;
#   - every device's current LSC is the last one its phone was told was
#     installed, or none if a delete was the last thing it was told, or
#     one it received after that (a session cut between the phone's
#     acknowledgement and the server's answer may or may not have
#     completed);
#   - every LSC that a told delete removed is revoked;
#   - every admin change that returned success is there (lsc_days, the
#     device present or removed), as of the last one of each device; a
#     change whose answer was lost leaves that device unchecked until
#     the next change that succeeds.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/tests/hostile/lib.sh"
: "${CAPF_REPLAY:=$(pwd)/capf-replay}"
[ -x "$CAPF_REPLAY" ] || fail "$CAPF_REPLAY is not built"
secs=${SOAK_SECONDS:-$((${SOAK_MINUTES:-10} * 60))}
[ "$secs" -ge 5 ] && [ "$secs" -le 86400 ] || fail "SOAK_SECONDS must be 5..86400"

rand() {
	r=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
	echo $(($1 + r % ($2 - $1 + 1)))
}
pick() {
	shift $(rand 0 $(($# - 1)))
	echo "$1"
}

N0="" N1="" C="" A=""
for i in 00 01 02 03 04 05 06 07 08 09; do
	N0="$N0 SEPSKN0$i" N1="$N1 SEPSKN1$i"
done
for i in 00 01 02 03 04 05; do C="$C SEPSKC0$i"; done
for i in 00 01 02 03 04 05 06 07 08 09 10 11; do A="$A SEPSKA0$i"; done
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $N0 $N1 $C >/dev/null || fail "mkmic"
cat >"$tmp/c.conf" <<EOF
[cisco]
enabled = yes
port = 0
[signer]
timeout_ms = 2000
[testing]
fault_injection = yes
EOF

# start: capfd, and the ports in $tmp/ports for the workers.
start() {
	start_capfd -c "$tmp/c.conf"
	printf 'port=%s\ncport=%s\n' "$port" "$(cisco_port)" >"$tmp/ports.new"
	mv "$tmp/ports.new" "$tmp/ports"
}
start
ctl device add $N0 $C --auth mic >/dev/null || fail "device add"
# The second worker's phones present their LSC once they have one: an
# upgrade authenticated by the LSC it replaces.
ctl device add $N1 --auth lsc-or-mic >/dev/null || fail "device add"
end=$(($(date +%s) + secs))
# Each worker stops at the deadline, or when told, or after this many rounds.
max_rounds=$((secs * 50))

# ---- native phones -----------------------------------------------------------------
# Events, one a line, in the order they happened to each device (a device
# belongs to one worker): R DEV SERIAL received; I DEV SERIAL told
# installed; D DEV told deleted; F DEV told fetched; N DEV CODE told
# not done; U DEV no answer (anything may have happened, within what it
# received).
native_worker() {
	w="$tmp/w$1"
	mkdir -p "$w"
	: >"$w/events"
	k=0
	while [ $k -lt $max_rounds ] && [ "$(date +%s)" -lt $end ] && [ ! -e "$tmp/stop" ]; do
		k=$((k + 1))
		. "$tmp/ports"
		d=$(pick $2)
		rm -f "$w/t.jsonl"
		cred="--mic $tmp/mfg/$d.pem --mic-key $tmp/mfg/$d.key"
		[ "$1" = 1 ] && [ -s "$w/$d.pem" ] && cred="--lsc $w/$d.pem --lsc-key $w/$d.key"
		rc=0
		"$CAPF_PHONE" enroll --name "$d" $cred --ca "$capf_ca" --port "$port" \
			--out-cert "$w/$d.pem" --out-key "$w/$d.key" \
			--timeout 5 --record "$w/t.jsonl" >"$w/out" 2>&1 || rc=$?
		if [ -s "$w/t.jsonl" ]; then
			s=$("$CAPF_REPLAY" show "$w/t.jsonl" 2>/dev/null |
				awk '/<- CertificateDelivery/ { f = 1 } f && $1 == "serial:" { print $2; exit }')
			[ -n "$s" ] && echo "R $d $s" >>"$w/events"
		fi
		code=$(grep -o 'server \(ended the session:\|error\) [0-9]*' "$w/out" | grep -o '[0-9]*$')
		case $rc in
		0)
			case $(sed -n 's/^operation:  //p' "$w/out") in
			install) echo "I $d $(lsc_serial "$w/$d.pem")" ;;
			delete) echo "D $d" ;;
			fetch) echo "F $d" ;;
			*) echo "U $d" ;;
			esac
			;;
		1) if [ -n "$code" ]; then echo "N $d $code"; else echo "U $d"; fi ;;
		*) echo "U $d" ;;
		esac >>"$w/events"
		case $code in
		1026 | 1029)
			# Its LSC was superseded by one whose answer it never
			# got: back to its MIC.
			rm -f "$w/$d.pem" "$w/$d.key"
			;;
		esac
		if [ "$code" = 1007 ]; then
			"$CAPFCTL" -s "$sock" device set "$d" --op "$(pick install install delete fetch)" \
				>/dev/null 2>&1 || true
		fi
		sleep 0.0$(rand 1 9)
	done
}

# ---- Cisco phones --------------------------------------------------------------------
# The same events; a Cisco transcript does not show the serial, so a
# session that got STORE_CERTIFICATE_REQUEST and no success is X DEV:
# it may have left any certificate of the device current.
cisco_worker() {
	w="$tmp/wc"
	mkdir -p "$w"
	: >"$w/events"
	k=0
	while [ $k -lt $max_rounds ] && [ "$(date +%s)" -lt $end ] && [ ! -e "$tmp/stop" ]; do
		k=$((k + 1))
		. "$tmp/ports"
		d=$(pick $C)
		rm -f "$w/$d.new.pem"
		report=""
		[ -s "$w/$d.pem" ] && report="--report $w/$d.pem"
		rc=0
		"$CAPF_PHONE" cisco --name "$d" --mic "$tmp/mfg/$d.pem" --mic-key "$tmp/mfg/$d.key" \
			--ca "$capf_ca" --port "$cport" --out-cert "$w/$d.new.pem" --out-key "$w/$d.key" \
			--timeout 5 $report >"$w/out" 2>&1 || rc=$?
		store=0
		grep -q "received STORE_CERTIFICATE_REQUEST" "$w/out" && store=1
		if [ $rc -eq 0 ] && grep -q "^end: reason 1" "$w/out"; then
			if [ $store -eq 1 ] && [ -s "$w/$d.new.pem" ]; then
				mv "$w/$d.new.pem" "$w/$d.pem"
				s=$(lsc_serial "$w/$d.pem")
				echo "R $d $s"
				echo "I $d $s"
			elif grep -q "received DELETE_CERTIFICATE_REQUEST" "$w/out"; then
				rm -f "$w/$d.pem"
				echo "D $d"
			else
				echo "U $d"
			fi
		elif [ $rc -eq 0 ] && grep -q "received FETCH_CERTIFICATE_REQUEST" "$w/out"; then
			echo "F $d"
		elif [ $rc -eq 0 ] && grep -q "nothing to do" "$w/out"; then
			echo "N $d 1007"
			"$CAPFCTL" -s "$sock" device set "$d" --op "$(pick install install delete fetch)" \
				>/dev/null 2>&1 || true
		elif [ $store -eq 1 ]; then
			echo "X $d"
		elif grep -q "received RETRY_LATER" "$w/out"; then
			echo "N $d 1016"
		else
			echo "U $d"
		fi >>"$w/events"
		sleep 0.0$(rand 1 9)
	done
}

# ---- load rounds of new devices ------------------------------------------------------
: >"$tmp/received.load"
load_worker() {
	k=0
	while [ $k -lt $max_rounds ] && [ $k -lt 4095 ] && [ "$(date +%s)" -lt $end ] &&
		[ ! -e "$tmp/stop" ]; do
		k=$((k + 1))
		. "$tmp/ports"
		"$CAPF_PHONE" load --count 10 --concurrency 2 --mfg-dir "$tmp/mfg" --ca "$capf_ca" \
			--socket "$sock" --host 127.0.0.1 --port "$port" \
			--prefix "SEPSKL$(printf '%03X' $k)" --timeout 10 \
			--record "$tmp/received.load" >"$tmp/load.out" 2>&1 || true
		sleep 0.$(rand 1 5)
	done
}

# ---- admin changes -------------------------------------------------------------------
# A DEV WHAT VALUE RESULT: WHAT is add, set, del; RESULT ok (exit 0), no
# (refused with a capf code: nothing changed) or unk (no answer).
admin_result() {
	if [ "$1" -eq 0 ]; then
		echo ok
	elif [ "$1" -eq 1 ] && grep -q "CAPF_E" "$tmp/admin.out"; then
		echo no
	else
		echo unk
	fi
}
admin_worker() {
	: >"$tmp/admin.events"
	. "$tmp/ports"
	{
		echo "device name,operation,lsc days"
		for d in $A; do echo "$d,none,30"; done
	} >"$tmp/bulk0.csv"
	rc=0
	"$CAPFCTL" -s "$sock" bulk import "$tmp/bulk0.csv" >"$tmp/admin.out" 2>&1 || rc=$?
	r=$(admin_result $rc)
	[ "$r" = ok ] || r=unk
	for d in $A; do echo "A $d add 30 $r"; done >>"$tmp/admin.events"
	k=0
	while [ $k -lt $max_rounds ] && [ "$(date +%s)" -lt $end ] && [ ! -e "$tmp/stop" ]; do
		k=$((k + 1))
		d=$(pick $A)
		n=$(rand 1 3650)
		rc=0
		case $(rand 0 9) in
		0 | 1 | 2 | 3)
			"$CAPFCTL" -s "$sock" device set "$d" --lsc-days $n >"$tmp/admin.out" 2>&1 || rc=$?
			echo "A $d set $n $(admin_result $rc)"
			;;
		4)
			"$CAPFCTL" -s "$sock" device del "$d" >"$tmp/admin.out" 2>&1 || rc=$?
			echo "A $d del 0 $(admin_result $rc)"
			;;
		5 | 6)
			"$CAPFCTL" -s "$sock" device add "$d" --op none --lsc-days $n >"$tmp/admin.out" 2>&1 ||
				rc=$?
			echo "A $d add $n $(admin_result $rc)"
			;;
		7)
			"$CAPFCTL" -s "$sock" schedule --op none --lsc-days $n --where "name like SEPSKA*" \
				>"$tmp/admin.out" 2>&1 || rc=$?
			# Page by page: a failure may have changed some devices.
			r=$(admin_result $rc)
			[ "$r" = ok ] || r=unk
			echo "A * sched $n $r"
			;;
		8)
			e1=$(pick $A) e2=$(pick $A)
			[ "$e1" = "$e2" ] && e2=""
			printf 'device name,operation,lsc days\n%s,none,%s\n' "$e1" $n >"$tmp/bulk.csv"
			[ -n "$e2" ] && printf '%s,none,%s\n' "$e2" $((n + 1)) >>"$tmp/bulk.csv"
			"$CAPFCTL" -s "$sock" bulk import "$tmp/bulk.csv" >"$tmp/admin.out" 2>&1 || rc=$?
			r=$(admin_result $rc)
			[ "$r" = ok ] || r=unk
			echo "A $e1 add $n $r"
			[ -n "$e2" ] && echo "A $e2 add $((n + 1)) $r"
			;;
		9)
			"$CAPFCTL" -s "$sock" store compact >/dev/null 2>&1 || true
			;;
		esac >>"$tmp/admin.events"
		sleep 0.0$(rand 2 9)
	done
}

native_worker 0 "$N0" &
p0=$!
native_worker 1 "$N1" &
p1=$!
cisco_worker &
pc=$!
load_worker &
pl=$!
admin_worker &
pa=$!

# ---- faults ----------------------------------------------------------------------------
nf_spc=0 nf_eio=0 nf_signer=0 nf_kill=0 nf_compact=0
k=0
while [ $k -lt $((secs * 2)) ] && [ "$(date +%s)" -lt $((end - 2)) ]; do
	k=$((k + 1))
	sleep "$(rand 1 2).$(rand 0 9)"
	kill -0 "$capfd_pid" 2>/dev/null || fail "capfd died (not by the test)"
	case $(rand 0 5) in
	0 | 1)
		f=$(pick ENOSPC EIO)
		ctl store fault $f >/dev/null || fail "store fault $f"
		sleep 0.$(rand 3 9)
		ctl store fault off >/dev/null || fail "store fault off"
		if [ $f = EIO ]; then nf_eio=$((nf_eio + 1)); else nf_spc=$((nf_spc + 1)); fi
		;;
	2)
		s=$(pgrep -P "$capfd_pid" | head -n 1)
		[ -n "$s" ] && kill -KILL "$s" 2>/dev/null && nf_signer=$((nf_signer + 1))
		;;
	3 | 4)
		kill -KILL "$capfd_pid"
		wait "$capfd_pid" 2>/dev/null
		capfd_pid=""
		nf_kill=$((nf_kill + 1))
		"$CAPFCTL" store check -d "$tmp/state" >"$tmp/check.kill" 2>&1 ||
			{ cat "$tmp/check.kill"; fail "store check after SIGKILL $nf_kill"; }
		start
		;;
	5)
		ctl store compact >/dev/null 2>&1 && nf_compact=$((nf_compact + 1))
		;;
	esac
done

# ---- the end: stop, check ------------------------------------------------------------
touch "$tmp/stop"
i=0
for p in $p0 $p1 $pc $pl $pa; do
	while kill -0 $p 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 1200 ] || fail "a worker does not stop"
		sleep 0.05
	done
	wait $p
done
kill -0 "$capfd_pid" 2>/dev/null || fail "capfd died (not by the test)"
stop_capfd
offline_checks "after the soak"
cat "$tmp"/w0/events "$tmp"/w1/events "$tmp"/wc/events >"$tmp/events"
{
	grep '^R ' "$tmp/events" | cut -d' ' -f2-
	cat "$tmp/received.load"
} >"$tmp/received"
received_stored "after the soak"
# Revoked certificates, from the stopped store.
tr -d ' \n' <"$tmp/dump" | sed 's/},{/}\n{/g' | grep '"type":"certificate"' |
	grep '"state":"revoked"' | sed 's/.*"serial":"\([0-9a-f]*\)".*/\1/' | sort >"$tmp/revoked"

start
# Each phone's device: what its current LSC may be, and what must be
# revoked, from its events in order.
awk '
	$1 == "R" { cand[$2] = cand[$2] " " $3 }
	$1 == "I" { cand[$2] = " " $3; cur[$2] = $3; known[$2] = 1 }
	$1 == "D" { if (known[$2] && cur[$2] != "") print "revoked", $2, cur[$2]
		    cand[$2] = " -"; cur[$2] = ""; known[$2] = 1 }
	$1 == "X" { cand[$2] = cand[$2] " *"; known[$2] = 0 }
	$1 == "U" || $1 == "R" { known[$2] = 0 }
	END { for (d in cand) print "cand", d, cand[d] }
' "$tmp/events" >"$tmp/expect"
ndev=0
for d in $N0 $N1 $C; do
	json $d
	cur=$(sed -n 's/.*"lsc_serial":"\([0-9a-f]*\)".*/\1/p' "$tmp/json")
	line=$(grep "^cand $d " "$tmp/expect" | cut -d' ' -f3-)
	# A device never told anything has no LSC, or one it received.
	[ -n "$line" ] || line="-"
	case " $line " in
	*" * "*) ;;
	*" ${cur:--} "*) ;;
	*) fail "$d: its current LSC is ${cur:-none}, not one of: $line" ;;
	esac
	ndev=$((ndev + 1))
done
nrev=0
grep '^revoked ' "$tmp/expect" | while read -r _ d s; do
	grep -qx "$s" "$tmp/revoked" || fail "$d: $s was deleted by its phone, and is not revoked"
done || exit 1
nrev=$(grep -c '^revoked ' "$tmp/expect")
# What the phones were refused with: nothing to do, retry later (a
# fault, the signer gone), an LSC superseded or revoked by one whose
# answer the phone never got (the phones that present theirs), and no
# other code: nothing they sent was wrong, and nobody else changed their
# devices under them.
codes=$(awk '$1 == "N" { n[$3]++ } END { for (c in n) printf "%s:%d ", c, n[c] }' "$tmp/events")
others=$(awk '$1 == "N" && $3 != 1007 && $3 != 1016 &&
	!(($3 == 1026 || $3 == 1029) && $2 ~ /^SEPSKN1/) { print $2, $3 }' "$tmp/events" | head -n 5)
[ -z "$others" ] || fail "phones refused with unexpected codes (code:count $codes): $others"
# Admin changes: replay them, and compare with what capfd says now.
awk '
	{ d = $2; what = $3; v = $4; r = $5 }
	d == "*" {
		for (x in present) if (present[x] != "0") { days[x] = (r == "ok") ? v : "?" }
		next
	}
	r == "no" { next }
	# No answer: a set may have changed the days, an add or a del the
	# presence too.
	r == "unk" { days[d] = "?"; if (what != "set") present[d] = "?"; next }
	# An add that succeeded made the device (bulk import: or updated it).
	what == "add" { present[d] = "1"; days[d] = v }
	what == "set" { days[d] = v }
	what == "del" { present[d] = "0"; days[d] = "?" }
	END { for (d in present) print d, present[d], days[d] }
' "$tmp/admin.events" >"$tmp/admin.expect"
nadm=0
while read -r d pres days; do
	rc=0
	ctl --json device show "$d" >"$tmp/json" 2>&1 || rc=$?
	case $pres in
	0)
		[ $rc -ne 0 ] && grep -q "CAPF_ENOENT" "$tmp/json" ||
			fail "$d: removed by a device del that succeeded, and still there"
		;;
	1)
		[ $rc -eq 0 ] || fail "$d: added by a change that succeeded, and missing: $(cat "$tmp/json")"
		if [ "$days" != "?" ]; then
			tr -d ' \n' <"$tmp/json" | grep -q "\"lsc_days\":$days," ||
				fail "$d: lsc_days $days was set with success, and is not what capfd says"
		fi
		;;
	esac
	nadm=$((nadm + 1))
done <"$tmp/admin.expect"
stop_capfd
offline_checks "at the end"

count() { grep -c "$1" "$2" || true; }
echo "soak: $secs s: $(grep -c . "$tmp/events") phone events (installs told $(count '^I ' "$tmp/events")," \
	"deletes $(count '^D ' "$tmp/events"), fetches $(count '^F ' "$tmp/events"), refused" \
	"$(count '^N ' "$tmp/events") [$codes], unanswered $(count '^[UX] ' "$tmp/events")); load phones" \
	"received $(grep -c . "$tmp/received.load"); admin changes $(grep -c . "$tmp/admin.events")" \
	"($(count ' ok$' "$tmp/admin.events") ok)"
echo "soak: sessions authenticated by an LSC: $(count 'authenticated by lsc' "$tmp/capfd.log")," \
	"by a MIC: $(count 'authenticated by mic' "$tmp/capfd.log") (Cisco ones among them)"
echo "soak: faults: ENOSPC $nf_spc, EIO $nf_eio, signer killed $nf_signer, capfd killed $nf_kill," \
	"compactions $nf_compact"
echo "PASS: $(sort -u "$tmp/received" | wc -l) LSCs received, all in the store; $ndev phones'" \
	"current LSCs as told; $nrev told deletes revoked; $nadm admin devices as told"
