#!/bin/sh
# The man pages are written by hand in mdoc: they must be clean under
# mandoc's linter.
set -u
command -v mandoc >/dev/null || { echo "SKIP: mandoc not installed"; exit 77; }
src=${top_srcdir:-${srcdir:-.}}
rc=0
for page in capfd.8 capfctl.8 capfd.conf.5 capf-phone.1 capf-replay.1; do
	out=$(mandoc -Tlint -W warning "$src/doc/$page" 2>&1) || true
	if [ -n "$out" ]; then
		echo "$out"
		rc=1
	fi
done
[ $rc -eq 0 ] && echo "PASS: man pages lint clean"
exit $rc
