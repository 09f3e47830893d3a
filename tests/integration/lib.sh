# Shared by the integration tests: a temporary directory, a capfd on an
# ephemeral loopback port, and helpers. Source it; it cleans up on exit.

: "${CAPFD:=$(pwd)/capfd}"
: "${CAPFCTL:=$(pwd)/capfctl}"
: "${CAPF_PHONE:=$(pwd)/capf-phone}"

for prog in "$CAPFD" "$CAPFCTL" "$CAPF_PHONE"; do
	if [ ! -x "$prog" ]; then
		echo "FAIL: $prog is not built"
		exit 1
	fi
done

# Under $TMPDIR when it is short enough for the UNIX sockets the tests
# make in it (108 bytes a path), else under /tmp.
tmp_base=${TMPDIR:-/tmp}
[ ${#tmp_base} -le 60 ] && [ -d "$tmp_base" ] && [ -w "$tmp_base" ] || tmp_base=/tmp
tmp=$(mktemp -d "$tmp_base/capf-it-XXXXXX")
capfd_pid=""

cleanup() {
	if [ -n "$capfd_pid" ] && kill -0 "$capfd_pid" 2>/dev/null; then
		kill -KILL "$capfd_pid" 2>/dev/null || true
		wait "$capfd_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

fail() {
	echo "FAIL: $*"
	if [ -f "$tmp/capfd.log" ]; then
		echo "---- capfd log (last 40 lines)"
		tail -n 40 "$tmp/capfd.log"
	fi
	exit 1
}

# start_capfd [extra capfd options...]: start on 127.0.0.1, port 0, wait
# until it is ready; sets port, sock, capf_ca.
start_capfd() {
	rm -f "$tmp/ready"
	# CAPFD_WRAPPER runs the server under a tool, e.g.
	# CAPFD_WRAPPER="valgrind --leak-check=full --error-exitcode=99
	# --soname-synonyms=somalloc=libtcmalloc_minimal.so.4
	# --suppressions=tests/valgrind.supp" (capfd's allocator is tcmalloc
	# unless built --without-tcmalloc: memcheck must replace it); make
	# check-valgrind does so (tests/valgrind.sh).
	${CAPFD_WRAPPER:-} "$CAPFD" -d "$tmp/state" -l 127.0.0.1 -p 0 -w 2 \
		-m "$tmp/mfg/mfg-ca.pem" -r "$tmp/ready" "$@" >>"$tmp/capfd.log" 2>&1 &
	capfd_pid=$!
	i=0
	while [ ! -s "$tmp/ready" ]; do
		kill -0 "$capfd_pid" 2>/dev/null || fail "capfd exited during start-up"
		i=$((i + 1))
		[ $i -lt 600 ] || fail "capfd not ready after 30 s"
		sleep 0.05
	done
	port=$(sed -n 's/^port=//p' "$tmp/ready")
	sock="$tmp/state/capfd.sock"
	capf_ca="$tmp/state/ca/ca.pem"
	[ -n "$port" ] || fail "no port in the ready file"
}

# stop_capfd: SIGTERM, and the server must exit 0.
stop_capfd() {
	kill -TERM "$capfd_pid"
	rc=0
	wait "$capfd_pid" || rc=$?
	capfd_pid=""
	[ "$rc" -eq 0 ] || fail "capfd exited with status $rc after SIGTERM"
	# Every handle of every loop must have been closed.
	if grep -q "handles left" "$tmp/capfd.log"; then
		fail "capfd left libuv handles open at shutdown"
	fi
}

# wait_log PATTERN WHAT [SECONDS]: capfd's log has a line matching
# PATTERN (grep) within SECONDS (default 10), else fail with WHAT. For what
# capfd logs from a timer or another thread, after the line a test saw.
wait_log() {
	n=$((${3:-10} * 20))
	i=0
	until grep -q -- "$1" "$tmp/capfd.log"; do
		i=$((i + 1))
		[ $i -lt "$n" ] || fail "$2: no log line matching '$1'"
		sleep 0.05
	done
}

ctl() {
	"$CAPFCTL" -s "$sock" "$@"
}

# enroll NAME [options...]: enroll the device NAME with its MIC from
# $tmp/mfg, writing $tmp/NAME.lsc.pem and $tmp/NAME.lsc.key.
enroll() {
	name=$1
	shift
	"$CAPF_PHONE" enroll --name "$name" --mic "$tmp/mfg/$name.pem" \
		--mic-key "$tmp/mfg/$name.key" --ca "$capf_ca" --host 127.0.0.1 --port "$port" \
		--out-cert "$tmp/$name.lsc.pem" --out-key "$tmp/$name.lsc.key" "$@"
}

# json NAME: `device show --json NAME` without blanks, into $tmp/json.
json() {
	ctl --json device show "$1" | tr -d ' \n' >"$tmp/json" || fail "device show --json $1"
}

# jhas PATTERN WHAT: $tmp/json holds PATTERN (grep), else fail with WHAT.
jhas() {
	grep -q -- "$1" "$tmp/json" || { cat "$tmp/json"; echo; fail "$2"; }
}

# phone NAME [options...]: a session of NAME with no credential but those
# given (--mic, --lsc, --auth-string, ...); an LSC it gets goes to
# $tmp/NAME.lsc.pem and $tmp/NAME.lsc.key.
phone() {
	name=$1
	shift
	"$CAPF_PHONE" enroll --name "$name" --ca "$capf_ca" --host 127.0.0.1 --port "$port" \
		--out-cert "$tmp/$name.lsc.pem" --out-key "$tmp/$name.lsc.key" "$@"
}

# refused CODE COMMAND NAME [options...]: the session (COMMAND is enroll or
# phone) must end with the server's wire code CODE: capf-phone prints
# "CODE (CAPF_NAME)" and exits 1.
refused() {
	want=$1
	shift
	rc=0
	out=$("$@" 2>&1) || rc=$?
	[ "$rc" -eq 1 ] || fail "$*: exit status $rc where $want was expected: $out"
	echo "$out" | grep -q " $want (CAPF_" || fail "$*: expected $want, got: $out"
}

# bundle: the trust bundle as capfctl gives it, into $tmp/bundle.pem.
bundle() {
	ctl ca bundle --out "$tmp/bundle.pem" >/dev/null 2>&1 || fail "ca bundle"
}

# verify_lsc FILE: FILE verifies against $tmp/bundle.pem with certtool and
# openssl (needs both; scripts check that they are installed).
verify_lsc() {
	certtool --verify --load-ca-certificate "$tmp/bundle.pem" --infile "$1" \
		>"$tmp/verify" 2>&1 || { cat "$tmp/verify"; fail "certtool --verify $1"; }
	grep -q "Chain verification output: Verified" "$tmp/verify" || fail "$1: not verified"
	openssl verify -CAfile "$tmp/bundle.pem" -purpose sslclient "$1" >"$tmp/verify" 2>&1 ||
		{ cat "$tmp/verify"; fail "openssl verify $1"; }
}

# lsc_serial FILE: the serial of a PEM certificate, lower-case hex.
lsc_serial() {
	openssl x509 -in "$1" -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f'
}
