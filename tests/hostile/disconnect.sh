#!/bin/sh
# Hostile clients: a phone that goes away at every step of an install, a
# fetch and a delete. Each recorded session of the replay corpus is cut
# after each of its messages and replayed (capf-replay sends what the
# phone sent up to there, checks the server's answers, and closes): the
# operation must stay pending with nothing installed, an LSC delivered
# but never acknowledged must stay unconfirmed, and the whole session
# replayed afterwards must still complete. The store checks clean.
set -u
. "$top_srcdir/tests/integration/lib.sh"
: "${CAPF_REPLAY:=$(pwd)/capf-replay}"
[ -x "$CAPF_REPLAY" ] || fail "$CAPF_REPLAY is not built"
corpus="$top_srcdir/tests/replay/corpus"
D=SEP00000000C001
mkdir -p "$tmp/mfg" "$tmp/lsc"
cp "$corpus/mics/mfg-ca.pem" "$tmp/mfg/"
start_capfd

replay() {
	"$CAPF_REPLAY" run --server "127.0.0.1:$port" --ca "$capf_ca" --mic-dir "$corpus/mics" \
		--lsc-dir "$tmp/lsc" "$@"
}

# cut FILE K: the session of FILE with its first K messages only.
cut_session() {
	head -n $(($2 + 1)) "$1" >"$tmp/cut.jsonl"
}

# every_step FILE OP: cut FILE after each message but the last, replay,
# and check that the record still has OP pending; then the whole session.
every_step() {
	file="$corpus/$1.jsonl" op=$2
	n=$(grep -c '"kind":"msg"' "$file")
	k=1
	while [ $k -lt "$n" ]; do
		cut_session "$file" $k
		replay "$tmp/cut.jsonl" >"$tmp/out" 2>&1 ||
			{ cat "$tmp/out"; fail "$1 cut after $k messages: the answers differ"; }
		last=$(tail -n 1 "$tmp/cut.jsonl")
		case $last in
		*'"dir":"phone","type":"StoreAck"'* | *'"dir":"phone","type":"DeleteResult"'* | \
			*'"dir":"phone","type":"FetchReport"'*)
			# The phone's last word was said: the operation completes
			# without the End the phone did not wait for (the server
			# may still be writing it).
			i=0
			until json $D && grep -q '"status":"success"' "$tmp/json"; do
				i=$((i + 1))
				[ $i -lt 40 ] || { cat "$tmp/json"; fail "$1 cut after $k: not completed"; }
				sleep 0.05
			done
			k=$((k + 1))
			continue
			;;
		esac
		json $D
		jhas "\"op\":\"$op\"" "$1 cut after $k messages: the operation is no longer pending"
		if [ "$op" = install ]; then
			if grep -q '"type":"CertificateDelivery"' "$tmp/cut.jsonl"; then
				jhas '"status":"issued"' "$1 cut after the delivery: not issued-unacknowledged"
				jhas '"pending_serial":"[0-9a-f]' "$1 cut after the delivery: no unconfirmed LSC"
			fi
		fi
		k=$((k + 1))
	done
	echo "ok: $1 cut after each of its $((n - 1)) first messages"
}

# again OP FILE: schedule OP again and replay the whole session.
again() {
	ctl device set $D --op "$1" >/dev/null || fail "device set --op $1"
	replay "$corpus/$2.jsonl" >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$2 after the cuts: differs"; }
	json $D
	jhas '"status":"success"' "$2 after the cuts: not completed"
}

ctl device add $D --auth mic >/dev/null || fail "device add"
every_step 01-install-mic install
# An LSC delivered and never acknowledged is superseded by the next install.
again install 01-install-mic
ctl device set $D --op fetch --auth lsc-or-mic >/dev/null || fail "device set fetch"
every_step 04-fetch fetch
ctl device set $D --op delete >/dev/null || fail "device set delete"
# The delete presents the LSC that the install above left in --lsc-dir.
every_step 05-delete delete
json $D
jhas '"lsc_serial":null' "after the delete: an LSC is still current"

stop_capfd
"$CAPFCTL" store check -d "$tmp/state" >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "store check"; }
echo "PASS"
