/*
 * capf/signer.h - the signer: a separate process that holds every CAPF CA
 * private key (files or PKCS#11 objects) and makes every signature, and
 * capfd's clients of it. doc/signer.md describes the protocol.
 *
 * Glossary
 *   signer    the process: capfd re-executed with the hidden --signer
 *             option, started before the CA is opened and restarted (with
 *             a back-off) whenever it exits. It listens on a Unix socket
 *             and answers only its parent (SO_PEERCRED).
 *   client    the synchronous side (struct signer_client): a pool of
 *             blocking connections shared by every thread, each request
 *             bounded by a timeout. ca/'s keyops call it on the main
 *             thread (CA lifecycle, CRLs); on a worker, a handshake's
 *             signature is diverted to the channel (signer_thread_hook()).
 *   channel   the asynchronous side (struct signer_chan): one connection
 *             per worker loop, a bounded queue of requests in flight, a
 *             callback on that loop for each. For LSC signatures
 *             (ca_issue_prepare() / ca_issue_complete()) and the TLS
 *             handshakes' (capf/conn.c, on fibers).
 *   ref       a key's name: a path (inside the CA directory, or the
 *             configured [ca] key) or a pkcs11: URI. The signer loads a
 *             ref it does not hold yet, so a restart is invisible to ca/.
 */
#ifndef CAPF_SIGNER_H
#define CAPF_SIGNER_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>
#include <uv.h>

struct ca_keyops;

#define SIGNER_FRAME_MAX (64u * 1024u) /* a request or response, header excluded */
#define SIGNER_DATA_MAX (60u * 1024u)  /* bytes to sign in one request */
#define SIGNER_DEFAULT_QUEUE 64u
#define SIGNER_DEFAULT_TIMEOUT_MS 5000u
#define SIGNER_SIGN_HASH 1u /* Sign.flags: data is a digest */

/* ---- the signer process (capf/signer.c) -------------------------------- */

/*
 * signer_main() - the body of "capfd --signer": read the Init message from
 * stdin, listen, serve until the parent is gone or SIGTERM. Returns the
 * process exit status.
 */
int signer_main(void);

/* ---- supervision, on capfd's main loop (capf/signer_sup.c) ------------- */

struct signer_params {
	const char *socket; /* Unix socket path */
	const char *ca_dir; /* the CA directory */
	const char *key;    /* [ca] key, or NULL */
	unsigned delay_ms;  /* [testing] signer_delay_ms */
	int log_level;	    /* enum log_level */
	int log_syslog;
};

struct signer_sup;

/*
 * signer_sup_start() - spawn the signer (re-executing this program) and
 * keep it running: when it exits, log it and spawn it again after a
 * back-off (100 ms, doubling up to 5 s; back to 100 ms after 10 s of
 * life). The strings of p are copied. Returns 0 and *out, or a negative
 * code (the first spawn failed).
 */
int signer_sup_start(uv_loop_t *loop, const struct signer_params *p, struct signer_sup **out);

/* signer_sup_pid() - the running signer's pid, or 0. */
int signer_sup_pid(const struct signer_sup *s);

/*
 * signer_sup_stop() - stop supervising: SIGTERM to the signer (SIGKILL
 * if it has not exited 2 s later), close the handles; the memory goes
 * when the last close callback ran (the loop must run). Accepts NULL.
 */
void signer_sup_stop(struct signer_sup *s);

/* ---- the synchronous client (capf/signer_client.c) --------------------- */

struct signer_client;

/*
 * signer_client_new() - a pool of blocking connections to the signer at
 * socket; each request waits at most timeout_ms (0 = the default) for
 * its answer, and as long for a connection while the signer (re)starts
 * (a new key: at least 120 s). Returns 0 and *out, CAPF_EINVAL,
 * CAPF_ENOMEM.
 */
int signer_client_new(const char *socket, unsigned timeout_ms, struct signer_client **out);

/* signer_client_free() - close the connections. Accepts NULL. */
void signer_client_free(struct signer_client *sc);

/* signer_ping() - 0 once the signer answers, CAPF_ERETRY if it does not
 * within the timeout. */
int signer_ping(struct signer_client *sc);

/* signer_load(), signer_generate(), signer_sign() - one request each, as
 * struct ca_keyops describes them (ca/ca.h): *spki and *sig are malloc'd.
 * They return 0, the signer's code, or CAPF_ERETRY (no signer, broken
 * connection, timeout). Thread-safe. */
int signer_load(struct signer_client *sc, const char *ref, uint8_t **spki, size_t *spki_len,
		char *errbuf, size_t errlen);
int signer_generate(struct signer_client *sc, int key_type, const char *dir, const char *name,
		    uint8_t **spki, size_t *spki_len, char *errbuf, size_t errlen);
int signer_sign(struct signer_client *sc, const char *ref, unsigned sign_algo, unsigned flags,
		const uint8_t *data, size_t len, uint8_t **sig, size_t *sig_len);

/* signer_keyops() - keyops for ca_new() that go through sc. */
void signer_keyops(struct signer_client *sc, struct ca_keyops *ops);

/*
 * signer_thread_reset() / signer_thread_result() - per thread: forget, then
 * read, what the signer_sign() calls of this thread did since: 0 none,
 * 1 a signature was made, or the negative code of the last failure. A TLS
 * handshake step uses it to know whether the server's signature is done.
 */
void signer_thread_reset(void);
int signer_thread_result(void);

/*
 * signer_thread_hook() - while fn is set on a thread, signer_sign() there
 * (the keyops' sign: a TLS handshake's signature inside GnuTLS) calls
 * fn(arg, ...) with its arguments instead of the pool, and returns what
 * it returns (*sig malloc'd). NULL removes it. A handshake that runs on
 * a fiber of its worker's loop (capf/conn.c) suspends there while its
 * worker's channel asks for the signature.
 */
typedef int (*signer_sign_fn)(void *arg, const char *ref, unsigned sign_algo, unsigned flags,
			      const uint8_t *data, size_t len, uint8_t **sig, size_t *sig_len);
void signer_thread_hook(signer_sign_fn fn, void *arg);

/* ---- the asynchronous channel (capf/signer_chan.c) --------------------- */

typedef void (*signer_done_cb)(void *arg, int result, const uint8_t *sig, size_t sig_len);

struct signer_chan;

/*
 * signer_chan_new() - a channel on loop (its thread only) to the signer
 * at socket, with at most queue requests in flight (0 = 64) and
 * timeout_ms (0 = 5000) per request. It connects when first used, and
 * again after a failure. Returns 0 and *out, CAPF_EINVAL, CAPF_ENOMEM.
 */
int signer_chan_new(uv_loop_t *loop, const char *socket, unsigned queue, unsigned timeout_ms,
		    struct signer_chan **out);

/*
 * signer_sign_async() - ask for a signature of data (at most
 * SIGNER_DATA_MAX bytes, copied) with sign_algo (gnutls_sign_algorithm_t)
 * by key_ref. On 0, cb(arg, result, sig, sig_len) runs exactly once on
 * the channel's loop, never inside this call: result 0 with the
 * signature (valid during cb only), or CAPF_ERETRY (dead signer, broken
 * connection, timeout), CAPF_ESHUTDOWN (channel closed) or the signer's
 * code. Returns CAPF_ERETRY at once when the queue is full, CAPF_EINVAL,
 * CAPF_ENOMEM (then cb never runs).
 */
int signer_sign_async(struct signer_chan *ch, const char *key_ref, unsigned sign_algo,
		      const uint8_t *data, size_t len, signer_done_cb cb, void *arg);

#define SIGNER_ASYNC_HASH 1u	  /* data is a digest (as CA_SIGN_HASH) */
#define SIGNER_ASYNC_UNBOUNDED 2u /* not counted against the queue: the caller bounds these */

/*
 * signer_sign_async2() - signer_sign_async() with flags SIGNER_ASYNC_*.
 * A request made SIGNER_ASYNC_UNBOUNDED is never refused for a full
 * queue, and does not take a place there from the others.
 */
int signer_sign_async2(struct signer_chan *ch, const char *key_ref, unsigned sign_algo,
		       unsigned flags, const uint8_t *data, size_t len, signer_done_cb cb,
		       void *arg);

/* signer_chan_inflight() - requests waiting for their answer. */
unsigned signer_chan_inflight(const struct signer_chan *ch);

/*
 * signer_chan_close() - close the channel: every request still in flight
 * gets CAPF_ESHUTDOWN (from here), then the handles close and the memory
 * goes once the loop has run their callbacks. Accepts NULL.
 */
void signer_chan_close(struct signer_chan *ch);

/* ---- wire helpers (capf/signer_client.c) --------------------------------- */

/*
 * struct signer_arena - a protobuf-c allocator that takes from a buffer
 * the caller owns (the stack, or one buffer per connection) and frees
 * nothing until signer_arena_reset(): unpacking a request or a response
 * then costs no malloc. What does not fit goes to malloc and is freed by
 * the reset. Messages unpacked with it are never given to
 * *_free_unpacked().
 */
struct signer_arena {
	ProtobufCAllocator alloc; /* pass &arena.alloc to *_unpack() */
	uint8_t *buf;
	size_t cap, used;
	void *spill; /* malloc'd blocks that did not fit, a list */
};

/* signer_arena_init() - an arena over buf (cap bytes). */
void signer_arena_init(struct signer_arena *a, void *buf, size_t cap);

/* signer_arena_reset() - wipe what was used (it held data to sign or a
 * signature) and free what went to malloc; the arena is empty again. */
void signer_arena_reset(struct signer_arena *a);

#endif /* CAPF_SIGNER_H */
