# The start that the scripts of the replay corpus share. Sourced by
# replay.sh, differ.sh and load.sh (make check sets top_srcdir) and by
# record.sh (which sets top_srcdir to its own tree, and corpus after to
# where it records): it sources tests/integration/lib.sh (tmp, fail,
# start_capfd, ...) and cases.sh (the devices, CONF, run_cases), finds
# capf-replay, and sets corpus to the committed corpus.

. "$top_srcdir/tests/integration/lib.sh"
: "${CAPF_REPLAY:=$(pwd)/capf-replay}"
[ -x "$CAPF_REPLAY" ] || fail "$CAPF_REPLAY is not built"
corpus="$top_srcdir/tests/replay/corpus"
. "$top_srcdir/tests/replay/cases.sh"

# start_corpus_capfd: start a capfd configured as cases.sh says (CONF),
# with the manufacturer CA of $corpus, and $tmp/lsc for the LSCs the
# phones get; sets cport, its Cisco port, besides what start_capfd sets.
start_corpus_capfd() {
	mkdir -p "$tmp/mfg" "$tmp/lsc"
	cp "$corpus/mics/mfg-ca.pem" "$tmp/mfg/"
	printf '%s' "$CONF" >"$tmp/capfd.conf"
	start_capfd -c "$tmp/capfd.conf"
	cport=$(sed -n 's/^cisco_port=//p' "$tmp/ready")
	[ -n "$cport" ] || fail "no cisco_port in the ready file"
}
