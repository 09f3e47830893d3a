#!/bin/sh
# Install, delete, fetch and "nothing to do" under every authentication
# mode (mic, lsc-or-mic, mic-or-lsc, string, null), a refused delete, version 1
# phones, and one device's MIC or LSC used for another device: each
# checked in the store with capfctl afterwards.
set -u
. "$(dirname "$0")/lib.sh"

command -v certtool >/dev/null || { echo "SKIP: certtool (gnutls-bin) not installed"; exit 77; }
command -v openssl >/dev/null || { echo "SKIP: openssl not installed"; exit 77; }

cat >"$tmp/capfd.conf" <<'CONF'
[auth]
allow_null_string = yes
CONF
devs="SEP00000000E101 SEP00000000E102 SEP00000000E103 SEP00000000E104 SEP00000000E105"
devs="$devs SEP00000000E106 SEP00000000E107 SEP00000000E108 SEP00000000E109 SEP00000000E10A"
devs="$devs SEP00000000E10B SEP00000000E10C"
idevs="SEP00000000E111 SEP00000000E112 SEP00000000E113 SEP00000000E114 SEP00000000E115"
A=SEP00000000E1A0
B=SEP00000000E1B0
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $devs $idevs $A $B >/dev/null || fail "mkmic"
start_capfd -c "$tmp/capfd.conf"
bundle

# first_lsc NAME: add NAME and install its first LSC by MIC; keeps a copy
# in $tmp/NAME.first.pem/.key and its serial in $s1.
first_lsc() {
	ctl device add "$1" >/dev/null || fail "device add $1"
	enroll "$1" >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$1: first install"; }
	cp "$tmp/$1.lsc.pem" "$tmp/$1.first.pem"
	cp "$tmp/$1.lsc.key" "$tmp/$1.first.key"
	s1=$(lsc_serial "$tmp/$1.first.pem")
}
# creds NAME MODE: the phone's credentials for MODE: the MIC, the LSC
# (presented), a string, or nothing at all.
creds() {
	case $2 in
	mic) echo "--mic $tmp/mfg/$1.pem --mic-key $tmp/mfg/$1.key" ;;
	lsc-or-mic) echo "--lsc $tmp/$1.lsc.pem --lsc-key $tmp/$1.lsc.key" ;;
	mic-or-lsc) echo "--mic $tmp/mfg/$1.pem --mic-key $tmp/mfg/$1.key --lsc $tmp/$1.lsc.pem --lsc-key $tmp/$1.lsc.key --present-mic" ;;
	string) echo "--no-mic --auth-string 314159265358" ;;
	null) echo "--no-mic" ;;
	esac
}
auth_opts() {
	case $1 in
	string) echo "--auth string --auth-string 314159265358" ;;
	*) echo "--auth $1" ;;
	esac
}

# ---- install, under each mode (a second LSC for the certificate modes) ----
set -- $idevs
for mode in mic lsc-or-mic mic-or-lsc string null; do
	d=$1
	shift
	first_lsc $d
	ctl device set $d --op install $(auth_opts $mode) >/dev/null || fail "$d: schedule install"
	# shellcheck disable=SC2046
	phone $d $(creds $d $mode) >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$d: install by $mode"; }
	grep -q "^operation: *install$" "$tmp/out" || { cat "$tmp/out"; fail "$d: not an install"; }
	verify_lsc "$tmp/$d.lsc.pem"
	s2=$(lsc_serial "$tmp/$d.lsc.pem")
	[ "$s2" != "$s1" ] || fail "$d: install by $mode kept the serial"
	json $d
	jhas '"op":"none"' "$d: install by $mode: operation not cleared"
	jhas '"status":"success"' "$d: install by $mode: status"
	jhas "\"lsc_serial\":\"$s2\"" "$d: install by $mode: not the LSC the phone got"
	ctl cert show "$s2" | grep -q "^device: *$d$" || fail "$d: cert show $s2"
done

# ---- delete, under each mode --------------------------------------------
set -- $devs
for mode in mic lsc-or-mic mic-or-lsc string null; do
	d=$1
	shift
	first_lsc $d
	ctl device set $d --op delete $(auth_opts $mode) >/dev/null || fail "$d: schedule delete"
	# shellcheck disable=SC2046
	phone $d $(creds $d $mode) >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$d: delete by $mode"; }
	grep -q "^operation: *delete$" "$tmp/out" || { cat "$tmp/out"; fail "$d: not a delete"; }
	[ ! -e "$tmp/$d.lsc.pem" ] || fail "$d: the phone kept its LSC file after the delete"
	json $d
	jhas '"op":"none"' "$d: delete by $mode: operation not cleared"
	jhas '"status":"success"' "$d: delete by $mode: status"
	jhas '"lsc_serial":null' "$d: delete by $mode: the record still has an LSC"
	jhas "\"serial\":\"$s1\",\"state\":\"revoked\"" "$d: delete by $mode: LSC not revoked"
	jhas '"reason":"cessationOfOperation"' "$d: delete by $mode: revocation reason"
	ctl cert show "$s1" >"$tmp/cert" || fail "$d: cert show"
	grep -q "^reason: *cessationOfOperation$" "$tmp/cert" || { cat "$tmp/cert"; fail "$d: cert show"; }
	# The deleted LSC authenticates nothing any more.
	if [ $mode = lsc-or-mic ]; then
		ctl device set $d --op fetch >/dev/null || fail "$d: schedule fetch"
		refused 1026 phone $d --lsc "$tmp/$d.first.pem" --lsc-key "$tmp/$d.first.key"
		ctl device set $d --op none >/dev/null || fail "$d: op none"
	fi
done

# ---- a refused delete: the phone says no, nothing changes ------------------
d=$1
shift
first_lsc $d
ctl device set $d --op delete >/dev/null || fail "$d: schedule delete"
refused 1024 enroll $d --refuse-delete
[ -e "$tmp/$d.lsc.pem" ] || fail "$d: a refused delete removed the LSC file"
json $d
jhas '"op":"delete"' "$d: a refused delete cleared the operation"
jhas "\"lsc_serial\":\"$s1\"" "$d: a refused delete dropped the LSC"
jhas "\"serial\":\"$s1\",\"state\":\"active\"" "$d: a refused delete revoked the LSC"
# A version 1 phone cannot carry a delete or a fetch.
refused 95 enroll $d --protocol-version 1
ctl device set $d --op fetch >/dev/null || fail "$d: schedule fetch"
refused 95 enroll $d --protocol-version 1
json $d
jhas '"op":"fetch"' "$d: a version 1 refusal cleared the operation"

# ---- fetch, under each mode ---------------------------------------------
for mode in mic lsc-or-mic mic-or-lsc string null; do
	d=$1
	shift
	first_lsc $d
	ctl device set $d --op fetch $(auth_opts $mode) >/dev/null || fail "$d: schedule fetch"
	case $mode in
	mic) extra="--lsc $tmp/$d.lsc.pem --lsc-key $tmp/$d.lsc.key --present-mic" ;;
	lsc-or-mic) extra="--mic $tmp/mfg/$d.pem --mic-key $tmp/mfg/$d.key" ;;
	mic-or-lsc) extra="" ;;
	*) extra="" ;; # a phone without certificates reports none
	esac
	# shellcheck disable=SC2046
	phone $d $(creds $d $mode) $extra >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$d: fetch by $mode"; }
	grep -q "^operation: *fetch$" "$tmp/out" || { cat "$tmp/out"; fail "$d: not a fetch"; }
	json $d
	jhas '"op":"none"' "$d: fetch by $mode: operation not cleared"
	jhas '"status":"success"' "$d: fetch by $mode: status"
	jhas "\"lsc_serial\":\"$s1\"" "$d: fetch by $mode changed the LSC"
	jhas '"fetched_at":"20' "$d: fetch by $mode: no report time"
	case $mode in
	mic | lsc-or-mic | mic-or-lsc)
		# The phone held both: its LSC, then its MIC.
		jhas '"fetched":\[{"parsed":true,"subject":"CN='$d'","issuer":"CN=CAPF-' \
			"$d: fetch by $mode: the LSC is not reported first"
		jhas '"issuer":"CN=capftestmanufacturerCA"' "$d: fetch by $mode: no MIC reported"
		fpr=$(openssl x509 -in "$tmp/$d.lsc.pem" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f')
		jhas "\"fingerprint\":\"$fpr\"" "$d: fetch by $mode: fingerprint of the LSC"
		;;
	esac
	ctl device show $d >"$tmp/show" || fail "$d: device show"
	grep -q "^fetched: .* at 20" "$tmp/show" || { cat "$tmp/show"; fail "$d: table: fetched"; }
done

# ---- nothing to do -------------------------------------------------------
d=$1
shift
first_lsc $d
out=$(enroll $d 2>&1) && fail "$d: a session with nothing to do succeeded"
echo "$out" | grep -q "server ended the session: 1007 (CAPF_ENO_OPERATION)" ||
	fail "$d: version 2, nothing to do: $out"
out=$(enroll $d --protocol-version 1 2>&1) && fail "$d: version 1 with nothing to do succeeded"
echo "$out" | grep -q "server error 1007 (CAPF_ENO_OPERATION)" ||
	fail "$d: version 1, nothing to do: $out"
json $d
jhas "\"lsc_serial\":\"$s1\"" "$d: nothing to do changed the LSC"
jhas '"status":"success"' "$d: nothing to do changed the status"

# ---- A's credentials do nothing for B ----------------------------------------
first_lsc $A
first_lsc $B
sB=$s1
for op in install delete fetch; do
	for mode in mic lsc-or-mic mic-or-lsc; do
		ctl device set $B --op $op --auth $mode >/dev/null || fail "$B: device set"
		# A's MIC, naming B.
		refused 1010 phone $B --mic "$tmp/mfg/$A.pem" --mic-key "$tmp/mfg/$A.key" \
			--out-cert "$tmp/x.pem" --out-key "$tmp/x.key"
		# A's current LSC, naming B: not a MIC at all for mode mic.
		want=1010
		[ $mode = mic ] && want=1009
		refused $want phone $B --lsc "$tmp/$A.lsc.pem" --lsc-key "$tmp/$A.lsc.key" \
			--out-cert "$tmp/x.pem" --out-key "$tmp/x.key"
		json $B
		jhas "\"op\":\"$op\"" "$B: $op/$mode: A's credentials changed B's operation"
		jhas "\"lsc_serial\":\"$sB\"" "$B: $op/$mode: A's credentials changed B's LSC"
		jhas "\"serial\":\"$sB\",\"state\":\"active\"" "$B: $op/$mode: B's LSC state"
		jhas '"fetched":\[\]' "$B: $op/$mode: A reported certificates for B"
	done
done
[ ! -e "$tmp/x.pem" ] || fail "a phone got an LSC for another device"
json $A
jhas '"op":"none"' "$A: another device's sessions changed A"

stop_capfd
echo "PASS: install, delete, fetch and nothing to do under every mode; a refused delete; version 1; A cannot act for B"
exit 0
