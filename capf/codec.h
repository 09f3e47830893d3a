/*
 * capf/codec.h - wire protocols in front of the enrollment core.
 *
 * A codec turns the wire messages of one protocol into core events
 * (capf/core.h) and the core's abstract messages into wire bytes. It
 * decodes and checks what the phone sent (framing has been done by the
 * transport; a CSR is parsed and its proof of possession checked here,
 * since those are properties of the bytes), and decides nothing about
 * the session: that is the core's job.
 *
 * The native codec speaks capf's own protocol (proto/capf.proto, one
 * PhoneMessage per frame, doc/protocol.md).
 */
#ifndef CAPF_CODEC_H
#define CAPF_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "capf/core.h"

struct ca;
struct codec_native;

/*
 * codec_native_new() - a codec for one session whose TLS channel binding
 * is binding (copied). Returns 0 and *out (codec_native_free()), or
 * CAPF_ENOMEM.
 */
int codec_native_new(struct codec_native **out, const uint8_t *binding, size_t binding_len);

/* codec_native_free() - accepts NULL; frees the last key decoded. */
void codec_native_free(struct codec_native *n);

/*
 * codec_native_decode() - one frame's payload from the phone into *ev.
 * What ev points to (the device name, the parsed key whose handle is a
 * struct ca_pubkey) stays valid until the next decode or the free.
 * Returns 0; or a negative capf code when the payload is not a valid
 * message of this protocol (then *ev is CORE_EV_ABORT with that code),
 * which ends the session either way.
 */
int codec_native_decode(struct codec_native *n, const uint8_t *payload, size_t len, time_t now,
			struct core_event *ev);

/*
 * codec_native_encode() - one abstract message as a frame (header and
 * payload), malloc'd into *frame, in the protocol version the phone spoke
 * in its Hello (n NULL, or before Hello: version 1). A DELIVER message
 * with no chain gets the chain from fallback_chain (may be NULL).
 * Returns 0, CAPF_EINVAL or CAPF_ENOMEM.
 */
int codec_native_encode(const struct codec_native *n, const struct core_msg *m,
			const uint8_t *const *fallback_chain, const size_t *fallback_lens,
			size_t nfallback, uint8_t **frame, size_t *len);

/* codec_native_message_name() - the wire name of the last decoded message. */
const char *codec_native_message_name(const struct codec_native *n);

/* ---- Cisco CAPF version 3 ------------------------------------------------ */

struct codec_cisco;

/*
 * codec_cisco_new() - a codec for one session, with a random session id;
 * ca checks the certificates phones authenticate with inside the
 * protocol; max_in_progress bounds REQUEST_IN_PROGRESS (0 = 32). Returns
 * 0 and *out (codec_cisco_free()), CAPF_ENOMEM, CAPF_ECRYPTO.
 */
int codec_cisco_new(struct codec_cisco **out, struct ca *ca, unsigned max_in_progress);
void codec_cisco_free(struct codec_cisco *n);
uint32_t codec_cisco_session_id(const struct codec_cisco *n);

/* codec_cisco_set_session_id() - for tests and fuzzing only: expect this
 * session id instead of the random one. */
void codec_cisco_set_session_id(struct codec_cisco *n, uint32_t id);

/* codec_cisco_greeting() - the server's first message, AUTH_REQUEST
 * {VERSION 3, AUTH_TYPE}; *msg points into the codec until its next call. */
int codec_cisco_greeting(struct codec_cisco *n, const uint8_t **msg, size_t *len);

/*
 * codec_cisco_decode() - one whole message (header and body, as
 * cisco_msg_length() delimits it) into *ev. Returns 0 (an event), 1 (a
 * message that makes no event: REQUEST_IN_PROGRESS), or a negative code
 * with *ev CORE_EV_ABORT and codec_cisco_why() saying what was wrong.
 */
int codec_cisco_decode(struct codec_cisco *n, const uint8_t *buf, size_t len, time_t now,
		       struct core_event *ev);

/* codec_cisco_why() - the last refusal's reason for the log, or NULL. */
const char *codec_cisco_why(const struct codec_cisco *n);

/*
 * codec_cisco_encode() - one abstract message as one Cisco message (to
 * be sent as one TLS record); *out points into the codec until its next
 * call. Returns 0, CAPF_EINVAL, CAPF_ERANGE.
 */
int codec_cisco_encode(struct codec_cisco *n, const struct core_msg *m, const uint8_t **out,
		       size_t *len);

#endif /* CAPF_CODEC_H */
