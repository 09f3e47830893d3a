# The sessions of the replay corpus (tests/replay/corpus/), in order, with
# the administration before each. Sourced by record.sh, which runs each
# session with capf-phone --record, and by replay.sh, which replays it
# with capf-replay run against a fresh capfd set up the same way; both
# define `session`, `session_part` and `$CONF` before sourcing.
#
#   session FILE CODE DEVICE PHONE-ARGS...       one session of DEVICE into
#                                  corpus/FILE.jsonl; CODE: the server code
#                                  it ends with (0: success)
#   session_part FILE CODE DEVICE PHONE-ARGS...  the same, appended to FILE,
#                                  which a later `session FILE` completes; a
#                                  replay replays the whole file then
#
# PHONE-ARGS are capf-phone enroll options after --name, --ca, --host and
# --port; "mic" stands for the device's MIC and key, "lsc" for the LSC and
# key it got last, "reuse" for --reuse-key with the key of the last session.

# The devices, one per story; their MICs ship in corpus/mics/.
D_MIC=SEP00000000C001     # install by MIC, upgrade by LSC, fetch, delete
D_STR=SEP00000000C002     # install by string, wrong string, lockout
D_RSA=SEP00000000C003     # RSA keys, key orders, a wrong key
D_V1=SEP00000000C004      # a version 1 phone
D_BAD=SEP00000000C005     # malformed and out-of-order input
D_ACK=SEP00000000C006     # lost acknowledgement, retry with the same key
D_NUL=SEP00000000C007     # null string
D_MOL=SEP00000000C008     # mic-or-lsc
D_ALL="$D_MIC $D_STR $D_RSA $D_V1 $D_BAD $D_ACK $D_NUL $D_MOL"

# The server configuration the corpus was recorded with.
CONF='[auth]
max_failures = 2
lockout = 600
allow_null_string = yes
'

run_cases() {
	# ---- install by MIC, nothing to do, upgrade by LSC, fetch, delete
	ctl device add $D_MIC --auth mic >/dev/null
	session 01-install-mic 0 $D_MIC mic
	session 02-nothing-to-do 1007 $D_MIC mic
	ctl device set $D_MIC --op install --auth lsc-or-mic >/dev/null
	session 03-upgrade-by-lsc 0 $D_MIC lsc
	ctl device set $D_MIC --op fetch >/dev/null
	session 04-fetch 0 $D_MIC lsc mic --present-mic
	ctl device set $D_MIC --op delete --auth lsc-or-mic >/dev/null
	session 05-delete 0 $D_MIC lsc
	ctl device set $D_MIC --op install --auth mic >/dev/null
	session 06-no-certificate 1008 $D_MIC --no-mic
	session 08-unknown-device 1006 $D_MIC mic --claim SEP0000000FFFFF

	# ---- strings: a wrong one, the lockout, the right one while locked, unlock
	echo 31415926 | ctl device add $D_STR --auth string --auth-string - >/dev/null
	session 10-string-missing 1021 $D_STR --no-mic
	session 11-string-wrong 1021 $D_STR --no-mic --auth-string 27182818
	session 12-string-lockout 1031 $D_STR --no-mic --auth-string 14142135
	session 13-string-locked 1031 $D_STR --no-mic --auth-string 31415926
	ctl device set $D_STR --unlock >/dev/null
	session 14-install-string 0 $D_STR --no-mic --auth-string 31415926

	# ---- key types and orders
	ctl device add $D_RSA --auth mic --key rsa-2048 >/dev/null
	session 20-wrong-key 1014 $D_RSA mic --key ec-p256
	session 21-install-rsa2048 0 $D_RSA mic
	ctl device set $D_RSA --op install --key-order ec-preferred --rsa-key rsa-3072 \
		--ec-key ec-p384 >/dev/null
	session 22-ec-preferred-p384 0 $D_RSA mic --supported-keys ec-p384,rsa-3072
	ctl device set $D_RSA --op install >/dev/null
	session 23-ec-preferred-rsa-only 0 $D_RSA mic --supported-keys rsa-3072
	ctl device set $D_RSA --op install --key-order ec-only >/dev/null
	session 24-ec-only-refused 1014 $D_RSA mic --supported-keys rsa-2048

	# ---- protocol versions
	ctl device add $D_V1 --auth mic >/dev/null
	session 30-version-unknown 1004 $D_V1 mic --protocol-version 9
	session 31-install-version1 0 $D_V1 mic --protocol-version 1

	# ---- malformed and out-of-order input
	ctl device add $D_BAD --auth mic >/dev/null
	session 40-bad-binding 1013 $D_BAD mic --bad-binding
	session 41-bad-csr-signature 1012 $D_BAD mic --bad-csr-signature
	session 42-oversized-frame 1001 $D_BAD mic --oversized-frame
	session 43-out-of-order 1005 $D_BAD mic --out-of-order

	# ---- a lost acknowledgement, then the retry with the same key
	ctl device add $D_ACK --auth mic >/dev/null
	session_part 50-no-ack-retry 0 $D_ACK mic --no-ack
	session 50-no-ack-retry 0 $D_ACK mic reuse

	# ---- null string, mic-or-lsc
	ctl device add $D_NUL --auth null >/dev/null
	session 60-install-null 0 $D_NUL --no-mic
	ctl device add $D_MOL --auth mic-or-lsc >/dev/null
	session 61-install-mic-or-lsc 0 $D_MOL mic
	ctl device set $D_MOL --op delete >/dev/null
	session 62-delete-refused 1024 $D_MOL mic --refuse-delete

	# ---- a MIC that names another device than its Hello
	session 70-claim-another 1010 $D_MIC mic --claim $D_RSA
}
