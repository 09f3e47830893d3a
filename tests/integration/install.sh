#!/bin/sh
# make install into a DESTDIR: the programs, the man pages, the example
# configuration, the bash and zsh completions and the systemd unit with the
# configured paths; systemd-analyze verify passes on the installed unit
# (its paths pointed into the DESTDIR), and the installed capfd accepts
# the installed configuration with --check-config.
set -u
. "$(dirname "$0")/lib.sh"

command -v make >/dev/null || { echo "SKIP: make not installed"; exit 77; }
builddir=$(dirname "$CAPFD")
[ -f "$builddir/Makefile" ] || { echo "SKIP: no Makefile next to $CAPFD"; exit 77; }
dest="$tmp/dest"
top_srcdir_abs=$(cd "${top_srcdir:-$(dirname "$0")/../..}" && pwd)
# A make of its own, not a part of the make check that runs this.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES || true
make() { command make --no-print-directory "$@"; }
make -s -C "$builddir" install DESTDIR="$dest" >"$tmp/out" 2>&1 ||
	{ tail -20 "$tmp/out"; fail "make install"; }
set -- $(make -s -C "$builddir" -f Makefile -f - print-dirs <<'MK' 2>/dev/null
print-dirs:
	@echo $(sbindir) $(bindir) $(sysconfdir) $(mandir) $(datadir) $(systemdsystemunitdir)
MK
)
[ $# -eq 6 ] || fail "cannot read the installation directories"
sbin=$1 bin=$2 etc=$3 man=$4 data=$5 unitdir=$6
for f in "$sbin/capfd" "$bin/capfctl" "$bin/capf-phone"; do
	[ -x "$dest$f" ] || fail "not installed: $f"
done
for f in "$man/man8/capfd.8" "$man/man8/capfctl.8" "$man/man5/capfd.conf.5" \
	"$man/man1/capf-phone.1" "$etc/capf/capfd.conf" \
	"$data/bash-completion/completions/capfctl" "$data/zsh/vendor-completions/_capfctl" \
	"$unitdir/capfd.service"; do
	[ -f "$dest$f" ] || fail "not installed: $f"
done
unit="$dest$unitdir/capfd.service"
grep -q "^ExecStart=$sbin/capfd -c $etc/capf/capfd.conf -d \${STATE_DIRECTORY}$" "$unit" ||
	fail "the unit's ExecStart: $(grep ExecStart= "$unit")"
grep -q "@[a-z]*dir@" "$unit" && fail "the unit has an unsubstituted @variable@"
# A second install keeps a configuration the administrator changed.
echo "# changed" >>"$dest$etc/capf/capfd.conf"
make -s -C "$builddir" install DESTDIR="$dest" >/dev/null 2>&1 || fail "second make install"
grep -q "^# changed$" "$dest$etc/capf/capfd.conf" || fail "make install replaced the configuration"

# The installed completions are the sources' (tests/integration/completion.sh
# checks those), and zsh finds the installed one in its vendor directory.
cmp -s "$dest$data/bash-completion/completions/capfctl" "$top_srcdir_abs/tools/capfctl.bash-completion" ||
	fail "the installed bash completion is not tools/capfctl.bash-completion"
cmp -s "$dest$data/zsh/vendor-completions/_capfctl" "$top_srcdir_abs/tools/capfctl.zsh-completion" ||
	fail "the installed zsh completion is not tools/capfctl.zsh-completion"
if command -v zsh >/dev/null; then
	# compinit's dump in $tmp (it renames over the file it is given).
	zsh -f -c 'fpath=("$1" $fpath); autoload -Uz compinit && compinit -u -d "$2" &&
		[[ ${_comps[capfctl]} == _capfctl ]] && autoload -Uz +X _capfctl' _ \
		"$dest$data/zsh/vendor-completions" "$tmp/zcompdump" >"$tmp/out" 2>&1 ||
		{ cat "$tmp/out"; fail "zsh does not load the installed completion"; }
fi

# The installed daemon accepts the installed configuration.
"$dest$sbin/capfd" -c "$dest$etc/capf/capfd.conf" -d "$tmp/state" --check-config >"$tmp/out" 2>&1 ||
	fail "the installed configuration: $(cat "$tmp/out")"

if ! command -v systemd-analyze >/dev/null; then
	echo "SKIP: systemd-analyze not installed (the files are installed and checked)"
	exit 77
fi
# The unit, with its paths pointed into the DESTDIR so that systemd finds
# the programs it names.
mkdir -p "$tmp/units"
sed "s|$sbin/|$dest$sbin/|g; s|$etc/|$dest$etc/|g" "$unit" >"$tmp/units/capfd.service"
systemd-analyze verify --man=no "$tmp/units/capfd.service" >"$tmp/out" 2>&1 ||
	{ cat "$tmp/out"; fail "systemd-analyze verify"; }
# Nothing but the man page look-ups may be reported.
if grep -v "^$" "$tmp/out" | grep -q .; then
	cat "$tmp/out"
	fail "systemd-analyze verify reports problems"
fi
# Hardened: systemd's own exposure score (0 to 10, lower is safer) stays
# in its "OK" band, under 2.
systemd-analyze security --offline=true "$tmp/units/capfd.service" >"$tmp/out" 2>&1 ||
	{ cat "$tmp/out"; fail "systemd-analyze security"; }
score=$(sed -n 's/.*Overall exposure level for capfd.service: \([0-9.]*\).*/\1/p' "$tmp/out")
[ -n "$score" ] || { cat "$tmp/out"; fail "no exposure level from systemd-analyze security"; }
awk -v s="$score" 'BEGIN { exit !(s < 2.0) }' ||
	fail "exposure level $score: the unit lost some of its hardening"
echo "PASS"
