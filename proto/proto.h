/*
 * proto/ - the capf wire format, without any I/O.
 *
 * Glossary
 *   frame    a u32 big-endian length, then that many payload bytes.
 *            The length is checked against a hard maximum before anything
 *            is allocated; zero is an error.
 *   payload  one protobuf message: capf.PhoneMessage on the phone channel,
 *            capf.AdminRequest / capf.AdminResponse on the admin socket,
 *            capf.StoreTxn in store log entries.
 *   decoder  a sans-I/O state machine turning a byte stream into frames.
 *
 * Generated types (Capf__PhoneMessage, ...) come from capf.pb-c.h.
 */
#ifndef CAPF_PROTO_PROTO_H
#define CAPF_PROTO_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/capf.pb-c.h"
#include "proto/errcode.h"

#define CAPF_PROTOCOL_VERSION 2u     /* the newest this code speaks */
#define CAPF_PROTOCOL_VERSION_MIN 1u
#define FRAME_HEADER_LEN 4u
#define FRAME_MAX_DEFAULT (64u * 1024u)
#define FRAME_MAX_LIMIT (16u * 1024u * 1024u)
#define DEVICE_NAME_MAX 64u
#define AUTH_STRING_MAX 128u    /* an authentication string, bytes */
#define AUTH_HASH_LEN 32u       /* PBKDF2-HMAC-SHA256 output */
#define AUTH_SALT_MAX 64u
#define AUTH_ITERATIONS_MIN 1000u
#define FETCH_MAX 8u            /* certificates in one FetchReport */
#define FETCH_CERT_MAX (8u * 1024u)

/*
 * Frame decoder. Embed it (frame_decoder_init/deinit). After an error it
 * stays failed: every later call returns the same error.
 */
struct frame_decoder {
	size_t max;       /* maximum payload length accepted */
	uint8_t hdr[FRAME_HEADER_LEN];
	size_t hdr_have;  /* header bytes collected so far */
	size_t need;      /* payload length from the header, 0 = none yet */
	uint8_t *buf;     /* payload being collected (allocated after the check) */
	size_t cap;
	size_t have;
	int error;        /* sticky error, 0 = none */
};

/* frame_decoder_init() - prepare a decoder accepting payloads up to max bytes
 * (0 means FRAME_MAX_DEFAULT; values above FRAME_MAX_LIMIT are clamped). */
void frame_decoder_init(struct frame_decoder *d, size_t max);

/* frame_decoder_deinit() - release the decoder's buffer. Safe on a zeroed
 * or already deinitialised decoder. */
void frame_decoder_deinit(struct frame_decoder *d);

/*
 * frame_decode() - consume bytes from a stream.
 *
 * Consumes at most len bytes of in and stops right after the first complete
 * frame. Returns the number of bytes consumed (>= 0) or a negative error:
 * CAPF_EFRAME_EMPTY (length 0), CAPF_EFRAME_TOO_BIG (length over max),
 * CAPF_ENOMEM. When a frame is complete, *payload and *payload_len describe
 * it; the pointer is valid until the next call on this decoder or until
 * in is released (it may point into in). Otherwise *payload is NULL.
 * Callers loop until all input is consumed.
 */
ssize_t frame_decode(struct frame_decoder *d, const uint8_t *in, size_t len,
		     const uint8_t **payload, size_t *payload_len);

/* frame_decoder_pending() - bytes of an unfinished frame held (0 at a
 * frame boundary). */
size_t frame_decoder_pending(const struct frame_decoder *d);

/*
 * frame_write_header() - write the 4-byte header for a payload of len bytes.
 */
void frame_write_header(uint8_t out[FRAME_HEADER_LEN], uint32_t len);

/*
 * phone_msg_pack() - pack msg into a newly allocated frame (header +
 * payload). Returns 0 and sets *out and *out_len (caller frees *out with
 * free()), or CAPF_ENOMEM / CAPF_EFRAME_TOO_BIG.
 */
int phone_msg_pack(const Capf__PhoneMessage *msg, uint8_t **out, size_t *out_len);

/*
 * phone_msg_unpack() - parse and validate one payload. Returns 0 and a
 * message that the caller frees with capf__phone_message__free_unpacked(m,
 * NULL), or CAPF_EBADMSG (not a PhoneMessage, or fails validation) with
 * *out NULL. The validation rules are those of phone_msg_validate().
 */
int phone_msg_unpack(const uint8_t *payload, size_t len, Capf__PhoneMessage **out);

/*
 * phone_msg_validate() - check a parsed message against the rules that do
 * not depend on session state: a body is set, device names are printable
 * ASCII of 1..DEVICE_NAME_MAX characters, required byte fields are not
 * empty, enum values are known, texts are bounded. Returns 0 or
 * CAPF_EBADMSG.
 */
int phone_msg_validate(const Capf__PhoneMessage *msg);

/* phone_msg_name() - the name of a message's body ("hello", ...). */
const char *phone_msg_name(const Capf__PhoneMessage *msg);

/* admin_req_pack()/admin_resp_pack() - as phone_msg_pack(). */
int admin_req_pack(const Capf__AdminRequest *req, uint8_t **out, size_t *out_len);
int admin_resp_pack(const Capf__AdminResponse *resp, uint8_t **out, size_t *out_len);

/* admin_req_unpack() - parse and validate an admin request (same ownership
 * and errors as phone_msg_unpack()). */
int admin_req_unpack(const uint8_t *payload, size_t len, Capf__AdminRequest **out);

/* admin_resp_unpack() - parse an admin response (free with
 * capf__admin_response__free_unpacked()). */
int admin_resp_unpack(const uint8_t *payload, size_t len, Capf__AdminResponse **out);

/* device_name_valid() - 1 if name is a valid device name (printable ASCII
 * letters, digits and "-_.", 1..DEVICE_NAME_MAX bytes), else 0. */
int device_name_valid(const char *name);

/*
 * mic_cn_names_device() - the identity rule for manufacturer certificates:
 * a MIC whose subject CN is the cn_len bytes at cn names exactly one
 * device: the part of the CN after its last "-" (manufacturers prefix the
 * model, e.g. "CP-8865-SEP001122334455" names SEP001122334455), or the
 * whole CN when it has none. A device whose name holds a "-" is therefore
 * never named by a MIC. Case matters; a CN holding a NUL never matches.
 * Returns 1 or 0.
 */
int mic_cn_names_device(const char *cn, size_t cn_len, const char *device);

/* Names of enum values for people and scripts ("install", "mic",
 * "ec-p256", "success", "active"); and the reverse look-ups, which return
 * 0 and set *out or CAPF_EINVAL for an unknown name. */
const char *op_name(int op);
const char *auth_name(int auth);
const char *key_type_name(int kt);
const char *status_name(int st);
const char *cert_state_name(int st);
const char *key_order_name(int ko);
int key_order_from_name(const char *s, int *out);
int op_from_name(const char *s, int *out);
int auth_from_name(const char *s, int *out);
int key_type_from_name(const char *s, int *out);

/* hex_encode() - lower-case hex of len bytes into out (2*len+1 bytes). */
void hex_encode(const uint8_t *in, size_t len, char *out);
/* hex_decode() - parse hex into out (at most out_cap bytes). Returns the
 * number of bytes written or CAPF_EINVAL. */
int hex_decode(const char *in, uint8_t *out, size_t out_cap);

/* ---- Cisco CAPF version 3 (proto/cisco.c) --------------------------------- */

#define CISCO_MAGIC 0x55
#define CISCO_HEADER_LEN 8u
#define CISCO_MSG_MAX (CISCO_HEADER_LEN + 0xffffu)
#define CISCO_MAX_TAG 32u
#define CISCO_VERSION 3u

/* Commands. */
enum cisco_command {
	CISCO_AUTH_REQUEST = 1,
	CISCO_AUTH_RESPONSE = 2,
	CISCO_KEY_GENERATE_REQUEST = 3,
	CISCO_KEY_GENERATE_RESPONSE = 4,
	CISCO_STORE_CERTIFICATE_REQUEST = 9,
	CISCO_STORE_CERTIFICATE_RESPONSE = 10,
	CISCO_FETCH_CERTIFICATE_REQUEST = 11,
	CISCO_FETCH_CERTIFICATE_RESPONSE = 12,
	CISCO_DELETE_CERTIFICATE_REQUEST = 13,
	CISCO_DELETE_CERTIFICATE_RESPONSE = 14,
	CISCO_END_SESSION = 15,
	CISCO_RETRY_LATER = 16,
	CISCO_REQUEST_IN_PROGRESS = 17,
};

/* Elements. */
enum cisco_tag {
	CISCO_EL_REASON = 1,
	CISCO_EL_REASON_INFO = 2,
	CISCO_EL_CERTIFICATE_TYPE = 3,
	CISCO_EL_CERTIFICATE = 4,
	CISCO_EL_SIGNED_DATA = 6,
	CISCO_EL_VERSION = 7,
	CISCO_EL_AUTH_TYPE = 8,
	CISCO_EL_PUBLIC_KEY = 9,
	CISCO_EL_KEY_SIZE = 10,
	CISCO_EL_PASSWORD = 11,
	CISCO_EL_RETRY_DELAY = 12,
	CISCO_EL_DEVICE_NAME = 13,
	CISCO_EL_SUDI_DATA = 16,
	CISCO_EL_KEY_TYPE = 17,
	CISCO_EL_CURVE = 18,
	CISCO_EL_SHA2_SIGNED_DATA = 20,
};

/* Reasons (END_SESSION, responses). */
#define CISCO_REASON_NO_ACTION 0
#define CISCO_REASON_SUCCESS 1
#define CISCO_REASON_FAILURE 7
#define CISCO_REASON_UNKNOWN_DEVICE 9

struct cisco_el {
	const uint8_t *data; /* NULL: absent */
	size_t len;
};

/* One message as read: its header and each known element's first copy,
 * pointing into the buffer parsed. */
struct cisco_msg {
	unsigned command;
	uint32_t session_id;
	uint64_t present; /* bit tag: element present */
	struct cisco_el el[CISCO_MAX_TAG];
	const char *why;  /* the reason of a refusal, for the log */
};

/*
 * cisco_msg_length() - the length of the whole message that buf starts
 * with, once its header is there: 0 (not yet 8 bytes), the length, or
 * CAPF_EPROTO (the first byte is not 0x55).
 */
ssize_t cisco_msg_length(const uint8_t *buf, size_t len);

/*
 * cisco_msg_parse() - check one whole message (len bytes: its header and
 * exactly its body) and index its elements: every element lies inside the
 * body, the body inside the message; unknown elements are skipped.
 * Returns 0, CAPF_EPROTO (bad header byte), CAPF_EBADMSG (lengths), with
 * out->why saying what.
 */
int cisco_msg_parse(const uint8_t *buf, size_t len, struct cisco_msg *out);

/* Element readers: 0, CAPF_ENOENT (absent), CAPF_EBADMSG (malformed).
 * cisco_el_string() wants exactly one NUL, at the end (CAPF_ERANGE: more
 * than size bytes); cisco_el_certificate() skips the 5 fixed bytes. */
int cisco_el_u8(const struct cisco_msg *m, unsigned tag, unsigned *out);
int cisco_el_u16(const struct cisco_msg *m, unsigned tag, unsigned *out);
int cisco_el_string(const struct cisco_msg *m, unsigned tag, char *out, size_t size);
int cisco_el_certificate(const struct cisco_msg *m, unsigned tag, const uint8_t **der,
			 size_t *len);

/* A message being written, in a buffer of its own (no allocation). */
struct cisco_builder {
	uint8_t buf[CISCO_MSG_MAX];
	size_t len;
	int err;
};

void cisco_builder_init(struct cisco_builder *b, unsigned command, uint32_t session_id);
void cisco_put(struct cisco_builder *b, unsigned tag, const void *data, size_t len);
void cisco_put_u8(struct cisco_builder *b, unsigned tag, unsigned v);
void cisco_put_u16(struct cisco_builder *b, unsigned tag, unsigned v);
void cisco_put_string(struct cisco_builder *b, unsigned tag, const char *s);
void cisco_put_certificate(struct cisco_builder *b, unsigned tag, const uint8_t *der,
			   size_t len);

/* cisco_finish() - the message (header's length set): *out points into b.
 * Returns 0 or CAPF_ERANGE (an element did not fit). */
int cisco_finish(struct cisco_builder *b, const uint8_t **out, size_t *len);

#endif /* CAPF_PROTO_PROTO_H */
