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
 * payload), malloc'd into *frame. A DELIVER message with no chain gets
 * the chain from fallback_chain (may be NULL). Returns 0, CAPF_EINVAL or
 * CAPF_ENOMEM.
 */
int codec_native_encode(const struct core_msg *m, const uint8_t *const *fallback_chain,
			const size_t *fallback_lens, size_t nfallback, uint8_t **frame,
			size_t *len);

/* codec_native_message_name() - the wire name of the last decoded message. */
const char *codec_native_message_name(const struct codec_native *n);

#endif /* CAPF_CODEC_H */
