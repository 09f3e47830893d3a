#!/bin/sh
# The default TLS policy: a client that offers only CBC suites, only
# static RSA key exchange, or only SHA-1 signatures gets an alert, not a
# session; a client within the policy gets one. The server's order of
# suites decides (AES-128-GCM), the client's key share the group: no
# HelloRetryRequest for a share of a group the server allows, X25519 when
# the client sends shares for it and P-256. A second capfd on the same
# port does not start.
set -u
. "$(dirname "$0")/lib.sh"

command -v gnutls-cli >/dev/null || { echo "SKIP: gnutls-cli (gnutls-bin) not installed"; exit 77; }

"$CAPF_PHONE" mkmic --dir "$tmp/mfg" SEP0000000000A1 >/dev/null || fail "mkmic"
start_capfd

# try NAME PRIORITY: 0 if the handshake completed.
try() {
	timeout 10 gnutls-cli --no-ca-verification --priority "$2" -p "$port" 127.0.0.1 \
		</dev/null >"$tmp/$1.out" 2>&1
	grep -q "Handshake was completed" "$tmp/$1.out"
}

try default "NORMAL:-VERS-ALL:+VERS-TLS1.3" || { cat "$tmp/default.out"; fail "TLS 1.3 refused"; }

# kx NAME PRIORITY [gnutls-cli options]: the handshake, with its log.
kx() {
	name=$1 prio=$2
	shift 2
	timeout 10 gnutls-cli -d 4 --no-ca-verification --priority "$prio" "$@" -p "$port" \
		127.0.0.1 </dev/null >"$tmp/$name.out" 2>&1
	grep -q "Handshake was completed" "$tmp/$name.out" || { cat "$tmp/$name.out"; fail "$name: no session"; }
}
# expect NAME WHAT RETRY: the session's description has WHAT; RETRY yes or
# no, whether the server sent a HelloRetryRequest.
expect() {
	grep -q -- "- Description: .*$2" "$tmp/$1.out" ||
		{ grep Description "$tmp/$1.out"; fail "$1: not $2"; }
	if grep -q "HELLO RETRY REQUEST" "$tmp/$1.out"; then
		[ "$3" = yes ] || fail "$1: a HelloRetryRequest"
	else
		[ "$3" = no ] || fail "$1: no HelloRetryRequest"
	fi
}
tls13="NORMAL:-VERS-ALL:+VERS-TLS1.3"
# The client prefers AES-256-GCM (GnuTLS's order): the server's order wins.
expect default "(AES-128-GCM)" no
kx p256share "$tls13:-GROUP-ALL:+GROUP-SECP256R1:+GROUP-X25519" --single-key-share
expect p256share "(ECDHE-SECP256R1)-.*(AES-128-GCM)" no
kx x25519share "$tls13:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1" --single-key-share
expect x25519share "(ECDHE-X25519)" no
kx p384share "$tls13:-GROUP-ALL:+GROUP-SECP384R1:+GROUP-X25519" --single-key-share
expect p384share "(ECDHE-SECP384R1)" no
kx twoshares "$tls13:-GROUP-ALL:+GROUP-SECP256R1:+GROUP-X25519"
expect twoshares "(ECDHE-X25519)" no
kx chacha "$tls13:-CIPHER-ALL:+CHACHA20-POLY1305"
expect chacha "(CHACHA20-POLY1305)" no
# A share of a group the server does not allow: it asks for another.
kx ffdheshare "$tls13:-GROUP-ALL:+GROUP-FFDHE2048:+GROUP-X25519" --single-key-share
expect ffdheshare "(ECDHE-X25519)" yes
kx tls12suite "NORMAL:-VERS-ALL:+VERS-TLS1.2"
expect tls12suite "(TLS1.2-X.509)-(ECDHE-X25519)-.*(AES-128-GCM)" no
try tls12 "NORMAL:-VERS-ALL:+VERS-TLS1.2" || { cat "$tmp/tls12.out"; fail "TLS 1.2 refused"; }
try cbc "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-CBC:+AES-256-CBC:-MAC-ALL:+SHA1:+SHA256" &&
	fail "a session with CBC suites only"
grep -qi "alert" "$tmp/cbc.out" || { cat "$tmp/cbc.out"; fail "no TLS alert for CBC"; }
try rsakx "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+RSA" && fail "a session with static RSA key exchange"
try sha1 "NORMAL:-VERS-ALL:+VERS-TLS1.2:-SIGN-ALL:+SIGN-RSA-SHA1:+SIGN-ECDSA-SHA1" &&
	fail "a session with SHA-1 signatures only"
try ffdhe "NORMAL:-VERS-ALL:+VERS-TLS1.3:-GROUP-ALL:+GROUP-FFDHE2048" &&
	fail "a session with a finite-field group only"
# A second capfd, with a state directory of its own, on the same port:
# it must not take a share of the phones.
rc=0
timeout 20 "$CAPFD" -d "$tmp/state2" -l 127.0.0.1 -p "$port" -w 2 -m "$tmp/mfg/mfg-ca.pem" \
	>"$tmp/second.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "a second capfd started on port $port"
grep -q "another process listens there" "$tmp/second.log" ||
	{ cat "$tmp/second.log"; fail "the second capfd did not say why"; }
stop_capfd
echo "PASS: the default TLS policy refuses CBC, static RSA, SHA-1 signatures and FFDHE, takes the server's suite and the client's key share without a retry; a second capfd on the port is refused"
exit 0
