# The sessions of the replay corpus (tests/replay/corpus/), in order, with
# the administration before each. Sourced by record.sh, which runs each
# session with capf-phone --record, and by replay.sh, which replays it
# with capf-replay run against a fresh capfd set up the same way; both
# define `session`, `session_part`, `cisco_session`, `cisco_session_part`
# before calling run_cases.
#
#   session FILE CODE DEVICE PHONE-ARGS...       one native session of
#                                  DEVICE into corpus/FILE.jsonl; CODE: the
#                                  server code it ends with (0: success)
#   session_part FILE CODE DEVICE PHONE-ARGS...  the same, appended to FILE,
#                                  which a later `session FILE` completes; a
#                                  replay replays the whole file then
#   cisco_session FILE REASON DEVICE PHONE-ARGS...  one Cisco CAPF v3
#                                  session (capf-phone cisco); REASON: the
#                                  END_SESSION reason it ends with, "-" for
#                                  none (the phone hangs up)
#   cisco_session_part ...         as session_part, for Cisco
#
# PHONE-ARGS are capf-phone enroll (or cisco) options after --name, --ca,
# --host and --port; "mic" stands for the device's MIC and key ("mic:D"
# for device D's), "lsc" for the LSC and key it got last, "reuse" for
# --reuse-key with the key of the last session; for Cisco also "old-lsc"
# (the LSC it had before its last one), "sudi" (its MIC as SUDI_DATA,
# "sudi:D" device D's) and "report-lsc" (--report its LSC).
#
# A session that presents an LSC is replayed with the LSC that stands for
# it in the replay: the one delivered where the recording delivered it
# (capf-replay --lsc-dir keeps which stands for which), else the device's
# current one.

# The devices, one per story; their MICs ship in corpus/mics/.
D_MIC=SEP00000000C001     # install by MIC, upgrade by LSC, fetch, delete
D_STR=SEP00000000C002     # install by string, wrong string, lockout
D_RSA=SEP00000000C003     # RSA keys, key orders, a wrong key
D_V1=SEP00000000C004      # a version 1 phone
D_BAD=SEP00000000C005     # malformed and out-of-order input
D_ACK=SEP00000000C006     # lost acknowledgement, retry with the same key
D_NUL=SEP00000000C007     # null string
D_MOL=SEP00000000C008     # mic-or-lsc
# Cisco phones
D_C1=SEP00000000C101      # refusals, install by MIC, upgrade by LSC, fetch, delete
D_C2=SEP00000000C102      # by SUDI
D_C3=SEP00000000C103      # by string, wrong string, lockout
D_C4=SEP00000000C104      # null string
D_C5=SEP00000000C105      # mic-or-lsc, RSA and P-521, then removed
D_CX=SEP0000000CFFFF      # no such device
D_ALL="$D_MIC $D_STR $D_RSA $D_V1 $D_BAD $D_ACK $D_NUL $D_MOL $D_C1 $D_C2 $D_C3 $D_C4 $D_C5"

# The server configuration the corpus was recorded with (the Cisco
# listener on a port of its own, in the ready file as cisco_port).
CONF='[auth]
max_failures = 2
lockout = 600
allow_null_string = yes
[cisco]
enabled = yes
port = 0
max_in_progress = 3
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

	# ---- Cisco CAPF v3: the refusals first, each changes nothing
	cisco_session cisco-01-unknown-device 9 $D_CX mic:$D_C1
	ctl device add $D_C1 --op none --auth mic >/dev/null
	cisco_session cisco-02-nothing-to-do 0 $D_C1 mic
	ctl device set $D_C1 --op install --auth mic --key ec-p256 >/dev/null
	cisco_session cisco-03-mic-of-another 7 $D_C1 mic:$D_C2
	cisco_session cisco-04-bad-signature 7 $D_C1 mic --bad-signature
	cisco_session cisco-05-no-certificate 7 $D_C1
	cisco_session cisco-06-bad-session-id 7 $D_C1 mic --bad-session-id
	cisco_session cisco-07-name-without-nul 7 $D_C1 mic --name-without-nul
	cisco_session cisco-08-wrong-key 7 $D_C1 mic --wrong-key rsa-2048
	cisco_session cisco-09-in-progress-too-long 7 $D_C1 mic --in-progress 4
	cisco_session cisco-10-malform-header 7 $D_C1 mic --malform header
	cisco_session cisco-11-malform-element 7 $D_C1 mic --malform element
	cisco_session cisco-12-malform-no-name 7 $D_C1 mic --malform no-name
	cisco_session cisco-13-malform-body - $D_C1 mic --malform body

	# ---- install by MIC (EC P-256), split across records, SHA-1 signed
	cisco_session cisco-20-install-mic 1 $D_C1 mic --split --sha1 --in-progress 2
	# ---- upgrade by LSC to RSA 2048; the superseded LSC is refused; P-384
	# by the current one
	ctl device set $D_C1 --op install --auth lsc-or-mic --key rsa-2048 >/dev/null
	cisco_session cisco-21-upgrade-by-lsc 1 $D_C1 lsc
	ctl device set $D_C1 --op install --auth lsc-or-mic --key ec-p384 >/dev/null
	cisco_session cisco-22-superseded-lsc 7 $D_C1 old-lsc
	cisco_session cisco-23-p384-by-lsc 1 $D_C1 lsc
	# ---- fetch, then a fetch of a phone that reports nothing (FETCH_
	# CERTIFICATE_RESPONSE reason 7); delete refused by the phone, then done
	ctl device set $D_C1 --op fetch --auth mic >/dev/null
	cisco_session cisco-24-fetch 0 $D_C1 mic report-lsc
	ctl device set $D_C1 --op fetch --auth mic >/dev/null
	cisco_session cisco-25-fetch-nothing-held 0 $D_C1 mic
	ctl device set $D_C1 --op delete --auth mic >/dev/null
	cisco_session cisco-26-delete-refused 7 $D_C1 mic --refuse-delete
	cisco_session cisco-27-delete 1 $D_C1 mic

	# ---- by the SUDI: another device's, then its own
	ctl device add $D_C2 --op install --auth mic --key ec-p256 >/dev/null
	cisco_session cisco-30-sudi-of-another 7 $D_C2 sudi:$D_C1
	cisco_session cisco-31-install-sudi 1 $D_C2 sudi

	# ---- by string: wrong, the lockout, the right one while locked, unlock
	echo 135791 | ctl device add $D_C3 --op install --auth string --auth-string - \
		--key ec-p256 >/dev/null
	cisco_session cisco-40-string-wrong 7 $D_C3 --auth-string 000000
	cisco_session cisco-41-string-lockout 7 $D_C3 --auth-string 000001
	cisco_session cisco-42-string-locked 7 $D_C3 --auth-string 135791
	ctl device set $D_C3 --unlock >/dev/null
	cisco_session cisco-43-install-string 1 $D_C3 --auth-string 135791

	# ---- null string; mic-or-lsc in RSA, then P-521 by the MIC
	ctl device add $D_C4 --auth null --key ec-p384 >/dev/null
	cisco_session cisco-50-install-null 1 $D_C4
	ctl device add $D_C5 --auth mic-or-lsc --key rsa-2048 >/dev/null
	cisco_session cisco-60-install-mic-or-lsc 1 $D_C5 mic
	ctl device set $D_C5 --op install --key ec-p521 >/dev/null
	cisco_session cisco-61-p521-mic-or-lsc 1 $D_C5 mic

	# ---- a removed device is unknown
	ctl device del $D_C5 >/dev/null
	cisco_session cisco-70-removed-device 9 $D_C5 mic
}
