#!/bin/sh
# pack_dir.sh FLAGS DIR OUT: pack the regular files of DIR (a capfd state
# directory, capfd stopped) into an input of fuzz_store_dir: the flags
# byte, then per file its name's length, the name, a 4-byte big-endian
# length and the bytes. Files over 16 MiB or with names that the target
# does not take are left out.
set -eu
flags=$1 dir=$2 out=$3
byte() { printf "\\$(printf '%03o' "$1")"; }
{
	byte "$flags"
	for f in "$dir"/*; do
		[ -f "$f" ] || continue
		name=$(basename "$f")
		case $name in *[!A-Za-z0-9._-]*) continue ;; esac
		n=$(wc -c <"$f")
		[ "$n" -le 16777216 ] || continue
		byte ${#name}
		printf '%s' "$name"
		byte $((n >> 24 & 255)); byte $((n >> 16 & 255)); byte $((n >> 8 & 255)); byte $((n & 255))
		cat "$f"
	done
} >"$out"
