/*
 * What capf/conn.c (the connection: TCP, TLS, frames, timers) and
 * capf/session.c (the core's effects carried out) share: the connection
 * and the few functions each calls of the other.
 */
#ifndef CAPF_CONN_INTERNAL_H
#define CAPF_CONN_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <gnutls/gnutls.h>
#include <uv.h>

#include "ca/ca.h"
#include "capf/capfd.h"
#include "capf/core.h"
#include "capf/log.h"
#include "proto/proto.h"

struct revoked_copy;

struct conn {
	struct conn *next, *prev;
	struct worker *w;
	struct server *srv;
	struct tls_creds *creds;   /* the credentials this session started with */
	uv_tcp_t tcp;
	uv_timer_t timer;          /* handshake, then idle timeout */
	uv_timer_t session_timer;  /* the whole session, and the close deadline */
	uv_shutdown_t shutdown_req;
	gnutls_session_t tls;

	/* Linear receive buffer feeding gnutls' pull function. */
	uint8_t *rbuf;
	size_t rlen, roff, rcap;

	struct frame_decoder dec;
	/* An audit event of this session is queued without waking the store
	 * writer (store_audit_quiet()): it goes with the session's next
	 * txn, or conn_close() wakes the writer for it. */
	bool audit_quiet;
	struct core *core;
	struct codec_native *codec;
	/* Cisco CAPF v3: its codec, and the bytes of messages not yet whole
	 * or not yet handled (a message may span records). */
	enum conn_proto proto;
	struct codec_cisco *cisco;
	uint8_t *cbuf;
	size_t clen;
	/* The LSC being signed, and the revocations of the write in flight
	 * (told to the CA once durable). */
	struct ca_tbs tbs;
	struct revoked_copy *revoked;
	size_t nrevoked;
	uint8_t new_key[32]; /* the key of a certificate the write in flight creates */
	bool has_new_key;
	char claimed[DEVICE_NAME_MAX + 1]; /* the device this session holds, or "" */

	int refs;
	bool closing, handles_closed, handshaken, reading, counted_source;
	bool busy; /* a store write or a signature of this session is in flight */
	/* A gnutls_handshake() call on a fiber (see the top of conn.c). */
	struct fiber *fiber;
	struct conn *deferred_next; /* waiting for a fiber, in arrival order */
	bool deferred;
	bool hs_off_loop, hs_signed;
	int hs_ret, hs_signer;	/* its result, and the signature's (1 made, or the code) */
	uint8_t *hs_out;	/* what it pushed, for the loop to write */
	size_t hs_out_len, hs_out_cap;
	uint8_t *hs_in;		/* what the phone sent meanwhile (RBUF_CHUNK bytes) */
	size_t hs_in_len;
	uint8_t *held;		/* records kept for one write at the close */
	size_t held_len, held_cap;
	bool hold_output;
	size_t write_queued;
	bool sent; /* bytes were written (so the close shuts down first) */
	unsigned nmsgs;
	uint64_t t_accept; /* uv_hrtime() at accept, for the latencies */
	char addr[INET6_ADDRSTRLEN];
	char peer[INET6_ADDRSTRLEN + 8];
};

/* Rate limits of per-connection log lines (capf/conn.c). */
extern struct log_limit conn_lim_handshake, conn_lim_refused, conn_lim_unauth;

/* capf/conn.c */
void conn_close(struct conn *c);
/* conn_hold_output() - keep what TLS writes from now on (the session's
 * last message) for one write with the close_notify, in conn_close(). */
void conn_hold_output(struct conn *c);
void conn_idle_timeout(uv_timer_t *t);
/* conn_send_frame() - one frame (or Cisco message) in one TLS record. */
void conn_send_frame(struct conn *c, const uint8_t *frame, size_t len);
/* conn_since_accept() - microseconds since the connection was accepted. */
uint64_t conn_since_accept(const struct conn *c);
/* conn_count_outcome() - a session ended with code (0: success): counted. */
void conn_count_outcome(struct conn *c, int code);
/* conn_unref() - drop a reference (frees the connection with the last). */
void conn_unref(struct conn *c);
/* conn_start_reading() - read from the socket again; conn_process() -
 * handle what is buffered (after the session waited for the world). */
void conn_start_reading(struct conn *c);
void conn_process(struct conn *c);

/* conn_fibers_release() - unmap the handshake stacks this thread keeps
 * (at the end of a worker's loop). */
void conn_fibers_release(void);

/* What is queued for the socket beyond which reading stops. */
#define CONN_WRITE_QUEUE_MAX (256u * 1024u)
/* conn_queue_write() - queue what GnuTLS pushed (total bytes in iov) for
 * the socket; conn_read_records() - the session's records, to the codec;
 * conn_compact_rbuf() - the receive buffer, what was read moved out. */
int conn_queue_write(struct conn *c, const giovec_t *iov, int iovcnt, size_t total);
void conn_read_records(struct conn *c);
void conn_compact_rbuf(struct conn *c);

/* capf/conn_handshake.c */
/* conn_handshake_step() - one gnutls_handshake() call on a fiber, until
 * the server's signature is made; conn_handshake_result() - what a call
 * returned: > 0 the session started, 0 more to come, < 0 closed. */
void conn_handshake_step(struct conn *c);
int conn_handshake_result(struct conn *c, int ret);
/* conn_fiber_free() - a connection's fiber (NULL: nothing). */
void conn_fiber_free(struct fiber *f);

/* capf/session.c */
/* conn_session_run() - feed first to the core and carry out its effects
 * until it waits for the world or is done. */
void conn_session_run(struct conn *c, const struct core_event *first);
/* conn_fail() - end the session with code (to the core if there is one). */
void conn_fail(struct conn *c, int code);
/* conn_revoked_free() - drop the revocations of a write no longer in flight. */
void conn_revoked_free(struct conn *c);

#endif
