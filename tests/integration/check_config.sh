#!/bin/sh
# capfd --check-config: every bad value of a file reported at once, each
# with the file, its line and what is wrong; nothing created; a good file
# passes; and capfd itself refuses a bad file before it creates any state
# (it used to make its CA first).
set -u
. "$(dirname "$0")/lib.sh"

cat >"$tmp/bad.conf" <<'CONF'
[server]
listen = 999.1.1.1
port = 99999
workers = 2
colour = red
[tls]
priority = NORMAL:+BOGUS
[trust]
manufacturer_roots = /nonexistent/roots.pem
[ca]
key_type = dsa
[metrics]
listen = x:y
[bogus]
colour = blue
CONF
rc=0
"$CAPFD" -c "$tmp/bad.conf" -d "$tmp/state" --check-config >"$tmp/out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "a bad file: exit status $rc"
for want in "bad.conf:3: \[server\] port must be a number from 0 to 65535" \
	"bad.conf:5: unknown option \[server\] colour" \
	"bad.conf:15: unknown section \[bogus\] (its option colour)" \
	"bad.conf:2: \[server\] listen: \"999.1.1.1\" is not an address" \
	"bad.conf:9: \[trust\] manufacturer_roots: cannot read /nonexistent/roots.pem" \
	"bad.conf:7: \[tls\] priority: invalid GnuTLS priority string near \"+BOGUS\"" \
	"bad.conf:11: \[ca\] key_type: must be" \
	"bad.conf:13: \[metrics\] listen: must be"; do
	grep -q "$want" "$tmp/out" || { cat "$tmp/out"; fail "not reported: $want"; }
done
[ ! -e "$tmp/state" ] || fail "--check-config created the state directory"

# The same file: capfd refuses it and creates nothing.
"$CAPFD" -c "$tmp/bad.conf" -d "$tmp/state" >"$tmp/out" 2>&1 && fail "capfd started with a bad file"
[ ! -e "$tmp/state" ] || fail "capfd created state before it refused its configuration"

# A certificate file that holds none.
echo "not a certificate" >"$tmp/junk.pem"
printf '[trust]\nmanufacturer_roots = %s\n' "$tmp/junk.pem" >"$tmp/junk.conf"
"$CAPFD" -c "$tmp/junk.conf" -d "$tmp/state" --check-config >"$tmp/out" 2>&1 && fail "junk roots"
grep -q "junk.conf:2: \[trust\] manufacturer_roots: .* holds no certificate" "$tmp/out" ||
	fail "junk roots: $(cat "$tmp/out")"

# A line longer than the reader takes (a long priority string) is said to
# be that, not cut into a bogus option.
long="NORMAL:%SERVER_PRECEDENCE:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM"
long="$long:+AES-256-GCM:+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA"
long="$long:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:+GROUP-SECP521R1"
printf '[server]\nworkers = 2\n[tls]\npriority = %s\n' "$long" >"$tmp/long.conf"
"$CAPFD" -c "$tmp/long.conf" -d "$tmp/state" --check-config >"$tmp/out" 2>&1 && fail "a long line"
grep -q "long.conf:4: the line is 252 characters long, more than the 199" "$tmp/out" ||
	fail "a long line: $(cat "$tmp/out")"
grep -q "unknown option" "$tmp/out" && fail "a long line read as two: $(cat "$tmp/out")"

# A good file passes, and creates nothing either.
"$CAPF_PHONE" mkmic --dir "$tmp/mfg" SEP0000000K0001 >/dev/null 2>&1 || fail "mkmic"
printf '[server]\nworkers = 2\n[trust]\nmanufacturer_roots = %s\n[metrics]\nlisten = 9100\n' \
	"$tmp/mfg/mfg-ca.pem" >"$tmp/good.conf"
"$CAPFD" -c "$tmp/good.conf" -d "$tmp/state" --check-config >"$tmp/out" 2>&1 ||
	fail "a good file: $(cat "$tmp/out")"
grep -q "the configuration is valid" "$tmp/out" || fail "good: $(cat "$tmp/out")"
[ ! -e "$tmp/state" ] || fail "--check-config of a good file created the state directory"
# A bad command-line value is named as such.
"$CAPFD" -d "$tmp/state" -p 70000 --check-config >"$tmp/out" 2>&1 && fail "-p 70000"
grep -q "command line: \[server\] port must be" "$tmp/out" || fail "-p: $(cat "$tmp/out")"
echo "PASS"
