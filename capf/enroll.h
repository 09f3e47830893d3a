/*
 * capf/enroll.h - the enrollment state machine, sans I/O.
 *
 * Glossary
 *   session   one phone connection after its TLS handshake.
 *   event     what happens to a session: it starts (with the peer's
 *             certificate chain and the channel binding), a message
 *             arrives, a store write completes.
 *   output    what the session must do in answer: send one frame, make
 *             records durable (then report back with
 *             enroll_on_persisted()), close. The glue (capf/conn.c) does
 *             the I/O; this file never sees a socket, a loop or a thread.
 *
 * States (doc/protocol.md has the sequence diagram):
 *   WAIT_HELLO -> WAIT_CSR -> PERSIST_ISSUE -> WAIT_ACK -> PERSIST_ACK -> DONE
 * Any failure moves to DONE with an Error frame to send and close set.
 * The write-ahead rule lives here: the certificate frame is produced only
 * by enroll_on_persisted() after the certificate record is durable.
 */
#ifndef CAPF_ENROLL_H
#define CAPF_ENROLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "proto/proto.h"

struct ca;
struct store;

enum enroll_state {
	ENROLL_WAIT_HELLO = 0,
	ENROLL_WAIT_CSR,
	ENROLL_PERSIST_ISSUE,
	ENROLL_WAIT_ACK,
	ENROLL_PERSIST_ACK,
	ENROLL_DONE,
};

/* What the state machine needs from the server around it. */
struct enroll_env {
	struct ca *ca;
	struct store *store;
	time_t (*now)(void);
	/* Mark a device as having a session in progress; 0, or CAPF_EBUSY if
	 * another session holds it. release undoes it. Both may be NULL. */
	int (*claim)(void *arg, const char *device);
	void (*release)(void *arg, const char *device);
	void *claim_arg;
};

/* Outputs of one event. Owned by the caller after return: release with
 * enroll_out_deinit(). */
struct enroll_out {
	uint8_t *frame;          /* frame to send (header + payload), or NULL */
	size_t frame_len;
	Capf__StoreRecord **persist; /* records to make durable in one txn */
	size_t npersist;
	bool close;              /* close the session after sending frame */
	int error;               /* the failure that ended the session, or 0 */
	bool success;            /* the operation completed */
};

void enroll_out_deinit(struct enroll_out *out);

struct enroll;

/* enroll_new() - a session in WAIT_HELLO. The peer certificates (DER, leaf
 * first, may be n == 0) and the 32-byte channel binding are copied.
 * Returns NULL on allocation failure. */
struct enroll *enroll_new(const struct enroll_env *env, const uint8_t *const *certs,
			  const size_t *cert_lens, size_t ncerts, const uint8_t *binding,
			  size_t binding_len);

/* enroll_free() - accepts NULL; releases a claimed device. */
void enroll_free(struct enroll *e);

/*
 * enroll_on_message() - feed one validated message. Fills *out (zeroed
 * first). Returns 0, or the negative capf code of the failure (which is
 * also in out->error, and out holds the Error frame to send and close).
 */
int enroll_on_message(struct enroll *e, const Capf__PhoneMessage *msg, struct enroll_out *out);

/*
 * enroll_on_persisted() - the records of the last output are durable
 * (result 0) or could not be written (result < 0: the phone is told to
 * retry later). Fills *out like enroll_on_message().
 */
int enroll_on_persisted(struct enroll *e, int result, struct enroll_out *out);

/*
 * enroll_fail() - end the session from outside (timeout, shutdown, frame
 * error): produces the Error frame for code. Fills *out.
 */
void enroll_fail(struct enroll *e, int code, struct enroll_out *out);

enum enroll_state enroll_state(const struct enroll *e);

/* enroll_device() - the device name claimed in Hello, or "" before. */
const char *enroll_device(const struct enroll *e);

/* enroll_error_frame() - pack Error{code, text} into a frame (malloc'd). */
int enroll_error_frame(int code, const char *text, uint8_t **frame, size_t *len);

#endif /* CAPF_ENROLL_H */
