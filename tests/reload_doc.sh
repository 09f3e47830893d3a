#!/bin/sh
# The options that SIGHUP does not apply: capf/config.c's table marks
# each one RESTART with its reason, and capfd.conf(5) lists them under
# RELOADING. The two lists must be the same, and every option of the
# table must be documented in capfd.conf(5).
set -u
src=${top_srcdir:-${srcdir:-.}}
table="$src/capf/config.c"
page="$src/doc/capfd.conf.5"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/capf-reload-doc-XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
fail() {
	echo "FAIL: $*"
	exit 1
}

# The table, one entry a line ("section name RELOAD"); an entry may span
# two lines.
awk '/^static const struct opt options\[\] = \{/ { on = 1; next }
	on && /^\};/ { exit }
	on { buf = buf " " $0 }
	END {
		n = split(buf, ents, /\},/)
		for (i = 1; i <= n; i++) {
			if (match(ents[i], /\{ "[a-z_]+", "[a-z_0-9]+"/) == 0)
				continue
			e = substr(ents[i], RSTART + 2, RLENGTH - 2)
			gsub(/[",]/, "", e)
			kind = ents[i] ~ /RESTART\(/ ? "restart" : ents[i] ~ /LIVE\(/ ? "live" : "main"
			print e, kind
		}
	}' "$table" >"$tmp/table"
[ "$(wc -l <"$tmp/table")" -ge 40 ] || { cat "$tmp/table"; fail "cannot read the option table of $table"; }
awk '$3 == "restart" { print $1, $2 }' "$tmp/table" | sort >"$tmp/code"

# The page's RELOADING section: ".It Ic [section] name".
sed -n '/^\.Sh RELOADING/,/^\.Sh /p' "$page" |
	sed -n 's/^\.It Ic \[\([a-z_]*\)\] \([a-z_0-9]*\)$/\1 \2/p' | sort >"$tmp/doc"
[ -s "$tmp/doc" ] || fail "no RELOADING list in $page"
if ! diff -u "$tmp/code" "$tmp/doc" >"$tmp/diff"; then
	cat "$tmp/diff"
	fail "the options needing a restart differ: - capf/config.c, + capfd.conf(5) RELOADING"
fi

# Every option is documented in its section of the page.
while read -r section name kind; do
	sed -n "/^\\.Ss \\[$section\\]/,/^\\.S[sh] /p" "$page" | grep -q "^\\.It Ic $name " ||
		fail "[$section] $name ($kind) is not documented in capfd.conf(5)"
done <"$tmp/table"
echo "PASS: $(wc -l <"$tmp/code") options need a restart, in both capf/config.c and capfd.conf(5)"
