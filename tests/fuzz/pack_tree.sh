#!/bin/sh
# pack_tree.sh FLAGS DIR OUT: pack DIR (a CA directory, say) into an input
# of fuzz_ca_files (tests/fuzz/dir_input.h with subdirectories): the
# flags byte, then per regular file or symbolic link its path inside DIR
# (bit 7 of the length byte set for a link), a 4-byte big-endian length
# and the bytes (the link's target). Paths and targets that the target
# does not take (over 120 bytes, other characters, "..") are left out,
# and so is everything past the 16th entry.
set -eu
flags=$1 dir=$2 out=$3
byte() { printf "\\$(printf '%03o' "$1")"; }
len4() { byte $(($1 >> 24 & 255)); byte $(($1 >> 16 & 255)); byte $(($1 >> 8 & 255)); byte $(($1 & 255)); }
{
	byte "$flags"
	(cd "$dir" && find . \( -type f -o -type l \) | sed 's|^\./||' | LC_ALL=C sort | head -n 16) |
	while IFS= read -r p; do
		case $p in *[!A-Za-z0-9._/-]*) continue ;; esac
		[ ${#p} -le 120 ] || continue
		if [ -L "$dir/$p" ]; then
			t=$(readlink "$dir/$p")
			case $t in /* | *..*) continue ;; esac
			byte $((${#p} | 128))
			printf '%s' "$p"
			len4 ${#t}
			printf '%s' "$t"
		else
			byte ${#p}
			printf '%s' "$p"
			len4 "$(wc -c <"$dir/$p")"
			cat "$dir/$p"
		fi
	done
} >"$out"
