#!/bin/sh
# The man pages are true to the programs: every long option that a
# program's --help names, and each of its commands' --help, is in its man
# page (as mdoc's "Fl -option").
set -u
src=${top_srcdir:-${srcdir:-.}}
build=$(pwd)
for prog in capfd capfctl capf-phone capf-replay; do
	[ -x "$build/$prog" ] || { echo "FAIL: $prog is not built"; exit 1; }
done
missing=$(mktemp "${TMPDIR:-/tmp}/capf-manopts-XXXXXX")
trap 'rm -f "$missing"' EXIT

# check PAGE PROGRAM [WORDS...]: PROGRAM WORDS --help against PAGE.
check() {
	page=$1
	shift
	out=$("$build/$@" --help 2>&1) || { echo "$*: --help fails" >>"$missing"; return; }
	printf '%s\n' "$out" | grep -q "^Usage: " || { echo "$*: no Usage line" >>"$missing"; return; }
	for opt in $(printf '%s\n' "$out" | grep -o -- '--[a-z][a-z0-9-]*' | sort -u); do
		grep -q -- "Fl -${opt#--}\\b" "$src/doc/$page" || echo "$page lacks $opt of '$*'" >>"$missing"
	done
}

check capfd.8 capfd
for c in "" enroll load cisco mkmic; do check capf-phone.1 capf-phone $c; done
for c in "" show run load; do check capf-replay.1 capf-replay $c; done
for c in "" "device add" "device set" "device show" "device list" "device del" status stats \
	schedule report "bulk import" "ca status" "ca csr" "ca import" "ca rollover" "ca bundle" \
	"trust add" "trust list" "trust remove" "cert show" "cert revoke" "cert list" crl \
	"store info" "store compact" "store fault" "store check" "store repair" "store dump" \
	"audit verify" "audit show"; do
	check capfctl.8 capfctl $c
done
if [ -s "$missing" ]; then
	cat "$missing"
	echo "FAIL: the man pages lack options the programs have"
	exit 1
fi
echo "PASS: every option of every --help is in its man page"
