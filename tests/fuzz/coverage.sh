#!/bin/sh
# make fuzz-coverage: build every fuzz target with clang source-based
# coverage (-fprofile-instr-generate -fcoverage-mapping) out of tree, run
# each over its committed corpus and, when there is one, the corpus the
# last `make fuzz` grew (FUZZ_DIR/run/TARGET/corpus), and print per target
# the line coverage of the code it aims at (the map below).
#
#   tests/fuzz/coverage.sh SRCDIR DISTDIR-MAKER-DIR
#
# Environment: COV_DIR (work directory, default $TMPDIR/capf-fuzz-cov.<name
# of the source directory>), FUZZ_DIR (where `make fuzz` ran, default as
# run.sh has it), FUZZ_ONLY (names, default all of tests/fuzz/fuzz_*.c),
# COV_FILES=1 (also a line per aimed file). llvm-cov's own report of a
# target: llvm-cov show COV_DIR/TARGET -instr-profile=COV_DIR/TARGET.profdata FILE.
set -u
src=$(cd "$1" && pwd)
build_from=$(cd "$2" && pwd)
name=$(basename "$src")
: "${COV_DIR:=${TMPDIR:-/tmp}/capf-fuzz-cov.$name}"
: "${FUZZ_DIR:=${TMPDIR:-/tmp}/capf-fuzz.$name}"
command -v clang >/dev/null || { echo "make fuzz-coverage: clang is needed (apt-get install clang)"; exit 1; }
ver=$(clang --version | sed -n 's/.*clang version \([0-9][0-9]*\).*/\1/p' | head -n 1)
tool() {
	if command -v "$1-$ver" >/dev/null; then echo "$1-$ver"; elif command -v "$1" >/dev/null; then echo "$1"; fi
}
profdata=$(tool llvm-profdata)
cov=$(tool llvm-cov)
[ -n "$profdata" ] && [ -n "$cov" ] ||
	{ echo "make fuzz-coverage: llvm-profdata and llvm-cov are needed (apt-get install llvm)"; exit 1; }

# What each target aims at: FILE (every line of it) or FILE@F,G,... (the
# lines of those functions only, where the file also serves others).
aims() {
	cat <<'EOF'
fuzz_frame proto/frame.c
fuzz_phone_msg proto/message.c@enum_known,text_ok,bytes_set,unknown_fields_ok,frame_pack,phone_msg_pack,validate_hello,validate_delete_result,validate_fetch_report,validate_op_request,validate_csr,validate_certificate,validate_store_ack,validate_end,validate_error,phone_body_find,phone_msg_validate,phone_msg_name,payload_or_empty,unpack_checked,phone_validate_any,phone_msg_unpack
fuzz_admin_req proto/message.c@enum_known,text_ok,bytes_set,unknown_fields_ok,frame_pack,admin_req_pack,payload_or_empty,unpack_checked,device_put_valid,validate_device_put,validate_device_batch,validate_device_delete,enums_known,filter_valid,validate_device_get,validate_device_list,validate_cert_list,validate_status,validate_stats,validate_store_compact,validate_store_fault,validate_store_info,admin_text_ok,validate_ca_status,validate_ca_csr,validate_ca_import,validate_ca_rollover,validate_ca_bundle,validate_trust_add,validate_trust_list,validate_trust_remove,validate_cert_revoke,validate_cert_show,validate_crl,admin_req_validate,admin_validate_any,admin_req_unpack
fuzz_csr ca/csr.c@take_key,ca_csr_parse,ca_csr_free,hash_acceptable,check_key,ct_equal,check_binding,ca_csr_check
fuzz_pubkey ca/csr.c@der_element,spki_outer,pubkey_policy,ca_pubkey_parse,ca_pubkey_free,ca_pubkey_type,ca_pubkey_sha256
fuzz_mic_verify ca/mic.c@check_chain_times,check_identity,check_patterns,check_eku,ca_mic_verify
fuzz_core capf/core.c capf/core_policy.c capf/core_records.c
fuzz_cisco proto/cisco.c capf/codec_cisco.c@refuse,cert_evidence,sudi_part,sudi_evidence,decode_auth,decode_key,reason_code,codec_cisco_decode
fuzz_issue ca/issue.c ca/lsc.c ca/der.c@ca_der_put,ca_der_head,ca_der_wrap,ca_der_uint,ca_der_time,ca_der_sigalg
fuzz_store_log store/frame.c store/log.c
fuzz_audit_log store/audit.c@store_audit_encode,store_audit_hash,store_audit_link,store_audit_walk store/frame.c
fuzz_store_dir store/check.c store/repair.c
fuzz_audit_verify store/audit.c@store_audit_read,store_audit_files,store_audit_files_free,read_dir_entry,store_audit_read_dir,report,verify_entry,verify_item,verify_file,store_audit_verify store/store.c@store_dump
fuzz_transcript tools/transcript_read.c@jobject_free,skip_ws,hexval,parse_string,parse_number,parse_literal,parse_object,jget,jstr,jint,copy_opt,hex_member,session_free,add_session,add_msg,add_end,parse_line,transcript_parse,transcript_free
fuzz_ca_certs ca/lsc.c ca/trust.c ca/lifecycle.c@ca_import,sig_acceptable
fuzz_ca_files ca/ca.c ca/file.c ca/issuer.c ca/trust.c@load_file,load_dir,build_tl,ca_trust_load ca/crl.c@ca_crl_init,revoked_load ca/lifecycle.c@dn_text,info_fill,pending_info,cmp_info,ca_status
EOF
}

covflags="-fprofile-instr-generate -fcoverage-mapping"
mkdir -p "$COV_DIR"
rm -rf "$COV_DIR/src"
make -s -C "$build_from" distdir distdir="$COV_DIR/src" >/dev/null || exit 1
cd "$COV_DIR/src" || exit 1
./configure -q CC=clang CFLAGS="-g -O1 $covflags" >/dev/null || exit 1
make -s -j"$(nproc)" paths.h libcapfproto.a libcapfca.a libcapfstore.a libcapftools.a libcapfd.a \
	>/dev/null 2>&1 || exit 1
libs="libcapfd.a libcapftools.a libcapfca.a libcapfstore.a libcapfproto.a"
syslibs="$(pkg-config --libs gnutls libuv libprotobuf-c inih) -lpthread"

# Lines and missed lines of FILE (all of it, or the functions listed).
lines_of() {
	bin=$1 prof=$2 spec=$3
	file=${spec%%@*}
	if [ "$file" = "$spec" ]; then
		"$cov" report "$bin" -instr-profile="$prof" "$COV_DIR/src/$file" 2>/dev/null |
			awk -v f="$file" 'index($1, f) { print $8, $9; found = 1 } END { if (!found) print 0, 0 }'
	else
		"$cov" report "$bin" -instr-profile="$prof" -show-functions "$COV_DIR/src/$file" 2>/dev/null |
			awk -v list="${spec#*@}" '
				BEGIN { n = split(list, f, ","); for (i = 1; i <= n; i++) want[f[i]] = 1 }
				{ name = $1; sub(/^.*:/, "", name) }
				want[name] && $5 ~ /^[0-9]+$/ { lines += $5; miss += $6 }
				END { print lines + 0, miss + 0 }'
	fi
}

targets=${FUZZ_ONLY:-$(cd "$src/tests/fuzz" && ls fuzz_*.c | sed 's/\.c$//')}
printf '%-18s %8s %13s %7s  %s\n' target inputs "lines hit" cover "aimed at"
for t in $targets; do
	clang -g -O1 $covflags -I. -Iproto $(pkg-config --cflags gnutls libuv libprotobuf-c) \
		-o "$COV_DIR/$t" "tests/fuzz/$t.c" tests/fuzz/replay.c $libs $syslibs || exit 1
	rm -rf "$COV_DIR/prof/$t" "$COV_DIR/tmp/$t"
	mkdir -p "$COV_DIR/prof/$t" "$COV_DIR/tmp/$t"
	set -- "$src/tests/fuzz/corpus/$t"
	[ -d "$FUZZ_DIR/run/$t/corpus" ] && set -- "$@" "$FUZZ_DIR/run/$t/corpus"
	inputs=$(LLVM_PROFILE_FILE="$COV_DIR/prof/$t/%p.profraw" TMPDIR="$COV_DIR/tmp/$t" \
		"$COV_DIR/$t" "$@" 2>"$COV_DIR/$t.log" | sed -n 's/.*replayed \([0-9]*\) inputs.*/\1/p')
	"$profdata" merge -sparse "$COV_DIR/prof/$t"/*.profraw -o "$COV_DIR/$t.profdata" || exit 1
	specs=$(aims | sed -n "s/^$t //p")
	total=0 missed=0 files=""
	for spec in $specs; do
		set -- $(lines_of "$COV_DIR/$t" "$COV_DIR/$t.profdata" "$spec")
		total=$((total + $1))
		missed=$((missed + $2))
		files="$files ${spec%%@*}$([ "$spec" != "${spec%%@*}" ] && echo '(part)')"
		[ "${COV_FILES:-0}" = 1 ] && printf '    %-36s %6s/%-6s\n' \
			"${spec%%@*}$([ "$spec" != "${spec%%@*}" ] && echo '(part)')" $(($1 - $2)) "$1"
	done
	pct=$(awk -v t=$total -v m=$missed 'BEGIN { if (t) printf "%.1f%%", 100 * (t - m) / t; else print "-" }')
	printf '%-18s %8s %6s/%-6s %7s %s\n' "$t" "${inputs:-?}" $((total - missed)) "$total" "$pct" "$files"
done
