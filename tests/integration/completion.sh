#!/bin/sh
# The shell completions of capfctl, bash (tools/capfctl.bash-completion)
# and zsh (tools/capfctl.zsh-completion), against capfctl itself: they
# offer the commands of 'capfctl --help' and the subcommands it names;
# in every context the options they offer are options capfctl accepts
# there (its getopt tables answer: an unknown one is refused as such), and
# every option that a context's --help shows and capfctl accepts is
# offered; the values offered for an option are words of that context's
# --help. And bash and zsh offer the same, context by context. The zsh
# file must load in zsh -f, define _capfctl and register it for capfctl
# with compinit.
set -u
. "$(dirname "$0")/lib.sh"

src=$(cd "${top_srcdir:-$(dirname "$0")/../..}" && pwd)
bashcomp="$src/tools/capfctl.bash-completion"
zshcomp="$src/tools/capfctl.zsh-completion"
command -v bash >/dev/null || { echo "SKIP: bash not installed"; exit 77; }
have_zsh=false
command -v zsh >/dev/null && have_zsh=true

# Completions of files and directories are of this directory: a file F1
# and a directory D1.
fix="$tmp/fix"
mkdir -p "$fix/D1"
: >"$fix/F1"

# bash_comp WORD...: what the bash completion offers for the last word,
# one a line, sorted, unescaped.
bash_comp() {
	(cd "$fix" && bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _capfctl
		printf "%s\n" "${COMPREPLY[@]}"' _ "$bashcomp" "$@") | sed 's/\\\(.\)/\1/g' |
		grep -v '^$' | sort -u
}
# zsh_comp WORD...: the same of the zsh completion (_capfctl_words(); the
# completion system filters by prefix and lists files: done here).
zsh_comp() {
	(cd "$fix" && zsh -f -c 'compdef() { :; }; source "$1"; shift; words=("$@"); CURRENT=$#
		local -a reply; local REPLY; _capfctl_words
		cur=${words[CURRENT]}
		case $REPLY in
		(files) reply=(*(N)) ;;
		(dirs) reply=(*(N/)) ;;
		(described) reply=(${reply%%:*}) ;;
		esac
		print -rl -- ${(M)reply:#${(b)cur}*}' _ "$zshcomp" "$@") | grep -v '^$' | sort -u
}
# same WHAT WORD...: bash and zsh offer the same; the bash answer in $tmp/b.
same() {
	what=$1
	shift
	bash_comp "$@" >"$tmp/b"
	$have_zsh || return 0
	zsh_comp "$@" >"$tmp/z" || fail "zsh completion of '$*' failed"
	diff -u "$tmp/b" "$tmp/z" >"$tmp/d" ||
		{ cat "$tmp/d"; fail "$what: bash (-) and zsh (+) differ for 'capfctl ${*#capfctl }'"; }
}

# accepts CONTEXT OPTION: capfctl knows OPTION in CONTEXT (a command and
# subcommand, or "" for the top level). Nothing is reached: the socket
# does not exist, a state directory neither.
accepts() {
	set -- "$1" "$2"
	ctx=$1
	extra=""
	case $ctx in
	store\ check | store\ repair | store\ dump | audit\ *) extra="-d $tmp/no/dir" ;;
	esac
	# shellcheck disable=SC2086
	"$CAPFCTL" -s "$tmp/none.sock" $ctx $extra "$2" </dev/null >/dev/null 2>"$tmp/err"
	! grep -q "unknown option '$2'\|bad option '$2'" "$tmp/err"
}

# The commands and subcommands of 'capfctl --help': "cmd" or "cmd
# sub|sub", the synopsis before the first two blanks.
"$CAPFCTL" --help >"$tmp/help" || fail "capfctl --help"
sed -n '/^Commands:/,/^$/p' "$tmp/help" | sed -n 's/^  \(.*\)$/\1/p' |
	sed 's/  .*//' >"$tmp/synopses"
[ "$(wc -l <"$tmp/synopses")" -ge 10 ] || fail "cannot read the commands of capfctl --help"
awk '{ print $1 }' "$tmp/synopses" | sort -u >"$tmp/cmds"
same "the commands" capfctl ""
(cat "$tmp/cmds"; echo help) | sort -u >"$tmp/want"
diff -u "$tmp/want" "$tmp/b" >"$tmp/d" ||
	{ cat "$tmp/d"; fail "the commands: capfctl --help (-) and the completion (+) differ"; }

contexts=""
for cmd in $(cat "$tmp/cmds"); do
	subs=$(awk -v c="$cmd" '$1 == c && $2 ~ /^[a-z][a-z|]*$/ { gsub(/\|/, "\n", $2); print $2 }' \
		"$tmp/synopses" | sort -u)
	if [ -z "$subs" ]; then
		contexts="$contexts|$cmd"
		continue
	fi
	echo "$subs" >"$tmp/want"
	same "the subcommands of $cmd" capfctl $cmd ""
	diff -u "$tmp/want" "$tmp/b" >"$tmp/d" ||
		{ cat "$tmp/d"; fail "$cmd: capfctl --help (-) and the completion (+) differ"; }
	for s in $subs; do
		contexts="$contexts|$cmd $s"
	done
done

# The options, context by context.
checked=0
IFS='|'
for ctx in "" $contexts; do
	unset IFS
	[ "$ctx" = help ] && { IFS='|'; continue; }
	# A word as an operand where the context takes one, then "--".
	case $ctx in
	"") words="capfctl" ;;
	"device add" | "device set" | "device show" | "device del") words="capfctl $ctx NAME" ;;
	*) words="capfctl $ctx" ;;
	esac
	# shellcheck disable=SC2086
	same "the options" $words --
	grep -- '^--' "$tmp/b" >"$tmp/offered"
	[ -s "$tmp/offered" ] || fail "capfctl $ctx: no option offered"
	while read -r o; do
		accepts "$ctx" "$o" || fail "capfctl $ctx: the completion offers $o, which capfctl refuses"
	done <"$tmp/offered"
	# What its help shows, without the commands it quotes ('capfctl ...').
	if [ -z "$ctx" ]; then
		sed -n '/^Options:/,$p' "$tmp/help"
	else
		# shellcheck disable=SC2086
		"$CAPFCTL" $ctx --help
	fi >"$tmp/h"
	sed "s/'capfctl [^']*'//g" "$tmp/h" | grep -o -- '--[a-z][a-z0-9-]*' | sort -u >"$tmp/shown"
	area=${ctx%% *}
	sed "s/^/$area /" "$tmp/offered" >>"$tmp/area-offered"
	# A help of the whole area (capfctl store COMMAND, or one Usage line
	# per subcommand) shows the options of all: each must be offered in
	# one of them at least (checked below).
	shared=false
	if [ -n "$ctx" ] && [ "$ctx" != "$area" ]; then
		grep -q "^Usage: capfctl $ctx\( \|\$\)" "$tmp/h" || shared=true
		[ "$(grep -c "^\(Usage:\)\? *capfctl $area " "$tmp/h")" -eq 1 ] || shared=true
	fi
	while read -r o; do
		grep -qx -- "$o" "$tmp/offered" && continue
		accepts "$ctx" "$o" || continue
		if $shared; then
			echo "$area $o $ctx" >>"$tmp/area-shown"
			continue
		fi
		fail "capfctl $ctx: its --help shows $o and capfctl accepts it; the completion does not offer it"
	done <"$tmp/shown"
	checked=$((checked + 1))
	IFS='|'
done
unset IFS
[ $checked -ge 25 ] || fail "only $checked contexts checked"
touch "$tmp/area-shown"
while read -r area o ctx; do
	grep -qx -- "$area $o" "$tmp/area-offered" ||
		fail "capfctl $ctx: its --help shows $o, capfctl accepts it, no $area command offers it"
done <"$tmp/area-shown"

# The values of the options that take a fixed set: the same in both, and
# each a word of the context's --help (files and directories: of $fix).
values() {
	ctx=$1
	shift
	# shellcheck disable=SC2086
	same "the values" capfctl $ctx "$@" ""
	[ -s "$tmp/b" ] || fail "capfctl $ctx $*: no value offered"
	# shellcheck disable=SC2086
	"$CAPFCTL" $ctx --help >"$tmp/h" 2>&1
	while read -r v; do
		case $v in D1 | F1) continue ;; esac
		grep -qw -- "$v" "$tmp/h" || fail "capfctl $ctx $*: $v is offered, its --help does not name it"
	done <"$tmp/b"
}
values "device add" NAME --op
values "device add" NAME -a
values "device add" NAME --key-order
values "device add" NAME --rsa-key
values "device add" NAME --ec-key
values "schedule" --auth
values "cert revoke" --reason
values "cert list" --state
values "audit show" --kind
values "ca csr" --key-type
values "ca csr" -o
grep -qx F1 "$tmp/b" || fail "ca csr -o: no file offered"
values "ca csr" --key
values "store check" -d
grep -qx F1 "$tmp/b" && fail "store check -d: a file offered for a directory"
values "bulk import"
values "store fault"
same "the values" capfctl device list --where "exp"
grep -qx "expires within " "$tmp/b" || fail "device list --where exp: $(cat "$tmp/b")"

if ! $have_zsh; then
	echo "SKIP: zsh not installed (the bash completion is checked against capfctl)"
	exit 77
fi
# The file as installed, as _capfctl in $fpath: compinit registers it
# for capfctl, and it loads in zsh -f.
mkdir -p "$tmp/fpath"
cp "$zshcomp" "$tmp/fpath/_capfctl"
# (compinit's dump file in $tmp: it replaces the file it is given by a
# rename, so never a device such as /dev/null.)
zsh -f -c 'fpath=("$1" $fpath); autoload -Uz compinit && compinit -u -d "$2" || exit 1
	[[ ${_comps[capfctl]} == _capfctl ]] || { print "not registered: ${_comps[capfctl]}"; exit 1; }
	autoload -Uz +X _capfctl || exit 1
	[[ $(whence -w _capfctl) == "_capfctl: function" ]] || exit 1' _ "$tmp/fpath" "$tmp/zcompdump" \
	>"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "the zsh completion does not load in zsh -f"; }
[ -s "$tmp/out" ] && { cat "$tmp/out"; fail "loading the zsh completion printed something"; }
echo "PASS: $checked contexts; bash and zsh offer the same, and what capfctl accepts"
