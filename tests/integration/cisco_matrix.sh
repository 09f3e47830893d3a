#!/bin/sh
# Cisco CAPF v3: every operation x authentication mode x key type through
# capf-phone enroll --protocol cisco. Install by MIC, by authentication
# string and by null string in each of the six key types; upgrade in each
# key type by the LSC (mode lsc-or-mic) and by the MIC (mode mic-or-lsc);
# fetch and delete in each mode. Each LSC is checked: its key type and
# size, its chain to the CAPF CA, and the store's record of it.
set -u
. "$(dirname "$0")/lib.sh"

command -v certtool >/dev/null || { echo "SKIP: certtool (gnutls-bin) not installed"; exit 77; }

KEYS="ec-p256 ec-p384 ec-p521 rsa-2048 rsa-3072 rsa-4096"
cat >"$tmp/c.conf" <<CONF
[cisco]
enabled = yes
port = 0
[auth]
allow_null_string = yes
CONF

# Six phones per key type, named by their number.
n=0
names=""
for k in $KEYS; do
	for m in mic string null; do
		n=$((n + 1))
		names="$names $(printf 'SEP00C15D%06X' $n)"
	done
done
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $names >/dev/null || fail "mkmic"
start_capfd -c "$tmp/c.conf"
cport=$(sed -n 's/^cisco_port=//p' "$tmp/ready")
[ -n "$cport" ] || fail "no cisco_port in the ready file"

# cisco NAME WHAT [options...]: one session that must end with reason 1.
cisco() {
	d=$1
	what=$2
	shift 2
	rc=0
	"$CAPF_PHONE" enroll --protocol cisco --name "$d" --ca "$capf_ca" --port "$cport" \
		--out-cert "$tmp/$d.lsc.pem" --out-key "$tmp/$d.lsc.key" "$@" >"$tmp/out" 2>&1 || rc=$?
	grep -q "^end: reason 1" "$tmp/out" && [ $rc -eq 0 ] ||
		{ cat "$tmp/out"; fail "$d: $what: not done (exit $rc)"; }
}
# key_is FILE TYPE: the certificate's key is of that type and size.
key_is() {
	certtool -i --infile "$1" >"$tmp/info" 2>&1 || fail "certtool -i $1"
	case $2 in
	ec-p256) grep -q "SECP256R1" "$tmp/info" ;;
	ec-p384) grep -q "SECP384R1" "$tmp/info" ;;
	ec-p521) grep -q "SECP521R1" "$tmp/info" ;;
	rsa-*) grep -q "Subject Public Key Algorithm: RSA" "$tmp/info" &&
		grep -q "(${2#rsa-} bits)" "$tmp/info" ;;
	esac || { cat "$tmp/info"; fail "$1: not a key $2"; }
	certtool --verify --load-ca-certificate "$capf_ca" --infile "$1" >/dev/null 2>&1 ||
		fail "$1 does not verify against the CAPF CA"
}
# current NAME SERIAL-FILE: the device's current LSC is the one in FILE.
current_is() {
	serial=$(certtool -i --infile "$2" | sed -n 's/^[[:space:]]*Serial Number (hex): //p')
	ctl --json device show "$1" >"$tmp/show.json" || fail "device show $1"
	grep -qi "\"lsc_serial\":\"$serial\"" "$tmp/show.json" ||
		{ cat "$tmp/show.json"; fail "$1: the current LSC is not serial $serial"; }
	grep -q '"op":"none"' "$tmp/show.json" || fail "$1: the operation is still pending"
}

# ---- install: by MIC, by authentication string, by null string ---------
n=0
for k in $KEYS; do
	for m in mic string null; do
		n=$((n + 1))
		d=$(printf 'SEP00C15D%06X' $n)
		case $m in
		mic)
			ctl device add $d --auth mic --key $k >/dev/null || fail "add $d"
			cisco $d "install $k by MIC" --mic "$tmp/mfg/$d.pem" --mic-key "$tmp/mfg/$d.key" ;;
		string)
			ctl device add $d --auth string --auth-string "7531$n" --key $k >/dev/null ||
				fail "add $d"
			cisco $d "install $k by string" --auth-string "7531$n" ;;
		null)
			ctl device add $d --auth null --key $k >/dev/null || fail "add $d"
			cisco $d "install $k by null string" ;;
		esac
		key_is "$tmp/$d.lsc.pem" $k
		current_is $d "$tmp/$d.lsc.pem"
	done
done
echo "install: 6 key types x 3 modes"

# ---- upgrade: by the LSC (lsc-or-mic), then by the MIC (mic-or-lsc) -----
# The MIC-installed phone of each key type moves on to the next type.
n=0
prev=rsa-4096
for k in $KEYS; do
	n=$((n + 1))
	d=$(printf 'SEP00C15D%06X' $((3 * n - 2)))
	cp "$tmp/$d.lsc.pem" "$tmp/$d.old.pem"
	cp "$tmp/$d.lsc.key" "$tmp/$d.old.key"
	ctl device set $d --op install --auth lsc-or-mic --key $prev >/dev/null || fail "set $d"
	cisco $d "upgrade to $prev by LSC" --lsc "$tmp/$d.old.pem" --lsc-key "$tmp/$d.old.key"
	key_is "$tmp/$d.lsc.pem" $prev
	current_is $d "$tmp/$d.lsc.pem"
	ctl device set $d --op install --auth mic-or-lsc --key $k >/dev/null || fail "set $d"
	cisco $d "upgrade to $k by MIC" --mic "$tmp/mfg/$d.pem" --mic-key "$tmp/mfg/$d.key"
	key_is "$tmp/$d.lsc.pem" $k
	current_is $d "$tmp/$d.lsc.pem"
	prev=$k
done
echo "upgrade: 6 key types x 2 modes"

# ---- fetch and delete in each mode --------------------------------------
# fetch_delete NAME MODE [options...]
fetch_delete() {
	d=$1
	m=$2
	shift 2
	extra=""
	[ "$m" = string ] && extra="--auth-string 8642$d"
	ctl device set $d --op fetch --auth $m $extra >/dev/null || fail "set fetch $d"
	rc=0
	"$CAPF_PHONE" enroll --protocol cisco --name "$d" --ca "$capf_ca" --port "$cport" \
		--report "$tmp/$d.lsc.pem" "$@" >"$tmp/out" 2>&1 || rc=$?
	grep -q "^end: reason 0" "$tmp/out" || { cat "$tmp/out"; fail "$d: fetch by $m"; }
	ctl device show $d >"$tmp/show.txt" || fail "device show $d"
	grep -qi "fetched" "$tmp/show.txt" || { cat "$tmp/show.txt"; fail "$d: fetch by $m: nothing kept"; }
	[ "$m" = string ] && extra="--auth-string 9753$d"
	ctl device set $d --op delete --auth $m $extra >/dev/null || fail "set delete $d"
	[ "$m" = string ] && set -- --auth-string "9753$d"
	cisco $d "delete by $m" "$@"
	ctl --json device show "$d" >"$tmp/show.json" || fail "device show $d"
	grep -q '"op":"none"' "$tmp/show.json" || fail "$d: delete left the operation pending"
	ctl device show $d | grep -q "cessation" || fail "$d: the deleted LSC is not revoked"
}
d1=$(printf 'SEP00C15D%06X' 1)
d2=$(printf 'SEP00C15D%06X' 2)
d3=$(printf 'SEP00C15D%06X' 3)
d4=$(printf 'SEP00C15D%06X' 4)
d7=$(printf 'SEP00C15D%06X' 7)
fetch_delete $d1 mic --mic "$tmp/mfg/$d1.pem" --mic-key "$tmp/mfg/$d1.key"
fetch_delete $d2 string --auth-string "8642$d2"
fetch_delete $d3 null
fetch_delete $d4 lsc-or-mic --lsc "$tmp/$d4.lsc.pem" --lsc-key "$tmp/$d4.lsc.key"
fetch_delete $d7 mic-or-lsc --mic "$tmp/mfg/$d7.pem" --mic-key "$tmp/mfg/$d7.key"
echo "fetch and delete: 5 modes"

stop_capfd
echo "PASS: Cisco CAPF v3: every operation x mode x key type"
