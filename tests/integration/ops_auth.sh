#!/bin/sh
# Authentication: strings (given on the command line or standard input,
# generated and shown once, single use or reusable), the lockout after
# [auth] max_failures wrong strings with its doubling back-off and
# --unlock, the null string while disabled; LSCs that must not
# authenticate (revoked, superseded within the grace period, from a
# foreign CA); the deadline; a phone that disconnects before its
# acknowledgement and retries; a phone that stalls.
set -u
. "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null || { echo "SKIP: openssl not installed"; exit 77; }

cat >"$tmp/capfd.conf" <<'CONF'
[auth]
max_failures = 3
lockout = 2
[ca]
supersede_grace = 3600
CONF
S=SEP00000000A501 # string, single use
R=SEP00000000A502 # reusable string
G=SEP00000000A503 # generated string
N=SEP00000000A504 # null string (disabled here)
L=SEP00000000A505 # LSCs that do not authenticate
D=SEP00000000A506 # deadline
K=SEP00000000A507 # no acknowledgement, then a retry
T=SEP00000000A508 # stalls
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" $S $R $G $N $L $D $K $T >/dev/null || fail "mkmic"
start_capfd -c "$tmp/capfd.conf"
now() { date +%s; }
epoch() { date -d "$1" +%s; }

# ---- a single-use string, from standard input --------------------------------
ctl device add $S --auth string >"$tmp/out" 2>&1 && fail "$S: string mode without a string accepted"
grep -q "CAPF_EINVAL" "$tmp/out" || { cat "$tmp/out"; fail "$S: no string: wrong error"; }
echo "2718281828" | ctl device add $S --auth string --auth-string - >/dev/null ||
	fail "$S: device add --auth-string -"
json $S
jhas '"auth":"string","key":"ec-p256"' "$S: mode"
jhas '"auth_string_set":true,"auth_string_reusable":false' "$S: string state"
grep -q "2718281828" "$tmp/json" && fail "$S: device show prints the string"
ctl device show $S | grep -q "^auth string: *single-use$" || fail "$S: table: auth string"
# Without a string: 1021, not counted as a wrong string; wrong ones: 1021, counted.
refused 1021 phone $S --no-mic
refused 1021 phone $S --no-mic --auth-string 2718281827
json $S
jhas '"auth_failures":1' "$S: wrong string not counted (or a missing one counted)"
refused 1021 phone $S --no-mic --auth-string 2718281826
json $S
jhas '"auth_failures":2' "$S: failures not counted"
# The third wrong string locks the device for [auth] lockout seconds.
refused 1031 phone $S --no-mic --auth-string 0000
json $S
jhas '"auth_failures":0,"lockouts":1' "$S: the lockout is not recorded"
until_t=$(sed -n 's/.*"locked_until":"\([^"]*\)".*/\1/p' "$tmp/json")
[ -n "$until_t" ] || fail "$S: no locked_until"
left=$(($(epoch "$until_t") - $(now)))
[ $left -ge 0 ] && [ $left -le 2 ] || fail "$S: locked for $left s, not about 2"
ctl device show $S | grep -q "^locked until: *$until_t$" || fail "$S: table: locked until"
# While locked, the right string is refused too.
refused 1031 phone $S --no-mic --auth-string 2718281828
# The lock ends; three wrong strings again lock for twice as long.
sleep 2.2
refused 1021 phone $S --no-mic --auth-string 1
refused 1021 phone $S --no-mic --auth-string 2
refused 1031 phone $S --no-mic --auth-string 3
json $S
jhas '"lockouts":2' "$S: second lockout"
until_t=$(sed -n 's/.*"locked_until":"\([^"]*\)".*/\1/p' "$tmp/json")
left=$(($(epoch "$until_t") - $(now)))
[ $left -ge 3 ] && [ $left -le 4 ] || fail "$S: second lockout of $left s, not about 4"
# --unlock ends it at once; the right string then works, once.
ctl device set $S --unlock >/dev/null || fail "$S: device set --unlock"
json $S
jhas '"auth_failures":0,"lockouts":0,"locked_until":null' "$S: --unlock"
phone $S --no-mic --auth-string 2718281828 >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$S: right string"; }
json $S
jhas '"status":"success"' "$S: install by string"
jhas '"auth_string_set":false' "$S: a single-use string survived its use"
ctl device set $S --op install >/dev/null 2>"$tmp/out" && fail "$S: scheduled by string without a string"
grep -q "CAPF_EAUTH" "$tmp/out" || { cat "$tmp/out"; fail "$S: no string: wrong error"; }

# ---- a reusable string -------------------------------------------------
ctl device add $R --auth string --auth-string s3cret-R --reusable-string >/dev/null ||
	fail "$R: device add"
json $R
jhas '"auth_string_set":true,"auth_string_reusable":true' "$R: reusable"
phone $R --no-mic --auth-string s3cret-R >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$R: first use"; }
ctl device set $R --op fetch >/dev/null || fail "$R: device set"
phone $R --no-mic --auth-string s3cret-R >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$R: second use"; }
json $R
jhas '"auth_string_set":true' "$R: a reusable string was cleared"
# Setting a new string replaces the old one.
ctl device set $R --op fetch --auth-string other >/dev/null || fail "$R: new string"
refused 1021 phone $R --no-mic --auth-string s3cret-R
phone $R --no-mic --auth-string other >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$R: new string"; }

# ---- a generated string: shown once --------------------------------------
ctl device add $G --auth string --generate-string >"$tmp/gen" || fail "$G: --generate-string"
gen=$(sed -n "s/^$G auth string: //p" "$tmp/gen")
[ ${#gen} -ge 8 ] || { cat "$tmp/gen"; fail "$G: no generated string printed"; }
ctl device show $G >"$tmp/show" || fail "$G: device show"
grep -q "$gen" "$tmp/show" && fail "$G: device show prints the generated string"
ctl --json device set $G --generate-string >"$tmp/gen2" || fail "$G: --json --generate-string"
gen2=$(tr -d ' \n' <"$tmp/gen2" | sed -n 's/.*"auth_string":"\([0-9]*\)".*/\1/p')
[ -n "$gen2" ] && [ "$gen2" != "$gen" ] || { cat "$tmp/gen2"; fail "$G: --json string"; }
refused 1021 phone $G --no-mic --auth-string "$gen"
phone $G --no-mic --auth-string "$gen2" >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$G: generated string"; }
# Usage errors: both at once, reusable without a string.
ctl device set $G --generate-string --auth-string x >/dev/null 2>&1 && fail "$G: both strings accepted"
ctl device set $G --reusable-string >/dev/null 2>&1 && fail "$G: --reusable-string alone accepted"

# ---- the null string, disabled on this server ---------------------------------
ctl device add $N --auth null >/dev/null || fail "$N: device add"
refused 1021 phone $N --no-mic
json $N
jhas '"op":"install"' "$N: refused null string cleared the operation"

# ---- LSCs that do not authenticate -----------------------------------------------
ctl device add $L >/dev/null || fail "$L: device add"
enroll $L >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$L: first LSC"; }
cp "$tmp/$L.lsc.pem" "$tmp/L1.pem"
cp "$tmp/$L.lsc.key" "$tmp/L1.key"
ctl device set $L --op install --auth lsc-or-mic >/dev/null || fail "$L: device set"
phone $L --lsc "$tmp/L1.pem" --lsc-key "$tmp/L1.key" >"$tmp/out" 2>&1 ||
	{ cat "$tmp/out"; fail "$L: upgrade by LSC"; }
cp "$tmp/$L.lsc.pem" "$tmp/L2.pem"
cp "$tmp/$L.lsc.key" "$tmp/L2.key"
# Superseded, still inside [ca] supersede_grace: not revoked yet, but no
# longer the device's LSC.
json $L
jhas "\"serial\":\"$(lsc_serial "$tmp/L1.pem")\",\"state\":\"active\"" "$L: superseded LSC revoked early"
ctl device set $L --op fetch >/dev/null || fail "$L: device set"
refused 1029 phone $L --lsc "$tmp/L1.pem" --lsc-key "$tmp/L1.key"
# Revoked by the administrator.
ctl cert revoke "$(lsc_serial "$tmp/L2.pem")" --reason keyCompromise >/dev/null || fail "$L: revoke"
refused 1026 phone $L --lsc "$tmp/L2.pem" --lsc-key "$tmp/L2.key"
# From a foreign CA, naming the device.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/f-ca.key" \
	-out "$tmp/f-ca.pem" -days 30 -subj "/CN=CAPF CA/O=capf" >/dev/null 2>&1 || fail "foreign CA"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/f.key" \
	-out "$tmp/f.csr" -subj "/CN=$L" >/dev/null 2>&1 || fail "foreign CSR"
openssl x509 -req -in "$tmp/f.csr" -CA "$tmp/f-ca.pem" -CAkey "$tmp/f-ca.key" -days 30 \
	-set_serial 0x77 -out "$tmp/f.pem" >/dev/null 2>&1 || fail "foreign LSC"
refused 1009 phone $L --lsc "$tmp/f.pem" --lsc-key "$tmp/f.key"
json $L
jhas '"op":"fetch","auth":"lsc-or-mic"' "$L: refusals changed the operation"
jhas '"fetched":\[\]' "$L: a refused LSC reported certificates"
# The MIC still works under lsc-or-mic.
enroll $L >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$L: fetch by MIC"; }

# ---- the deadline ------------------------------------------------------------
ctl device add $D --deadline 2020-01-01 >/dev/null || fail "$D: device add"
refused 1030 enroll $D
json $D
jhas '"op":"install","auth":"mic"' "$D: a missed deadline cleared the operation"
jhas '"lsc_serial":null' "$D: an LSC after the deadline"
ctl device set $D --deadline none >/dev/null || fail "$D: --deadline none"
enroll $D >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$D: without a deadline"; }
ctl device set $D --op install --deadline 2099-12-31 >/dev/null || fail "$D: future deadline"
json $D
jhas '"deadline":"2099-12-31T23:59:59Z"' "$D: deadline"
enroll $D >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$D: before the deadline"; }

# ---- no acknowledgement, then the retry: the same certificate -----------------
ctl device add $K >/dev/null || fail "$K: device add"
enroll $K --no-ack >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$K: --no-ack"; }
sk=$(sed -n 's/^serial: *//p' "$tmp/out")
[ -n "$sk" ] || { cat "$tmp/out"; fail "$K: no serial"; }
json $K
jhas "\"pending_serial\":\"$sk\"" "$K: the unacknowledged LSC is not pending"
jhas '"status":"issued"' "$K: status after --no-ack"
# The retry, with the key the phone made for the first delivery.
enroll $K --reuse-key "$tmp/$K.lsc.key" >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$K: retry"; }
[ "$(lsc_serial "$tmp/$K.lsc.pem")" = "$sk" ] || { cat "$tmp/out"; ctl device show $K; fail "$K: the retry got another certificate"; }
json $K
jhas "\"lsc_serial\":\"$sk\"" "$K: retry: not the current LSC"
jhas '"pending_serial":null' "$K: retry: still pending"
ctl device show $K | grep -q "^certificates: *1$" || fail "$K: more than one issuance"

stop_capfd

# ---- a phone that stalls: the server's idle timeout ends it --------------------
cat >"$tmp/idle.conf" <<'CONF'
[limits]
idle_timeout = 1
CONF
start_capfd -c "$tmp/idle.conf"
ctl device add $T >/dev/null || fail "$T: device add"
refused 1020 enroll $T --stall csr:2500
json $T
jhas '"lsc_serial":null' "$T: a stalled session issued"
enroll $T --stall csr:300 >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$T: a short stall"; }
stop_capfd
echo "PASS: strings, lockout and back-off, unlock, null string, refused LSCs, deadline, retry, stall"
exit 0
