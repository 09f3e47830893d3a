/*
 * The TLS handshake of a phone connection (capf/conn.c moves the bytes):
 * what the peer's certificates prove (ca_peer_evidence()), the start of
 * the session once the handshake is done, native or Cisco, and the
 * handshake steps that run on fibers until the server's signature is
 * made (see capf/conn.c for why: GnuTLS calls the CAPF key's sign
 * callback synchronously, and the key lives in the signer process).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#endif
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "ca/ca.h"
#include "capf/capfd.h"
#include "capf/codec.h"
#include "capf/conn_internal.h"
#include "capf/core.h"
#include "capf/log.h"
#include "capf/signer.h"
#include "store/store.h"

static void peer_evidence(struct conn *c, const uint8_t *const *certs, const size_t *lens,
			  size_t n, time_t now, struct core_peer *p)
{
	struct ca_cert_summary sum;

	memset(p, 0, sizeof(*p));
	p->mic_result = CAPF_ENOCERT;
	p->lsc_result = CAPF_ENOCERT;
	if (n == 0)
		return;
	p->present = true;
	/* One parse of the chain for the MIC decision, the LSC decision
	 * and the summary. */
	if (ca_peer_evidence(c->srv->ca, certs, lens, n, now, &p->mic_result, &p->lsc_result,
			     &sum) == 0) {
		snprintf(p->cn, sizeof(p->cn), "%s", sum.cn);
		snprintf(p->fingerprint, sizeof(p->fingerprint), "%s", sum.fingerprint);
		p->serial_len = sum.serial_len <= sizeof(p->serial) ? sum.serial_len : 0;
		memcpy(p->serial, sum.serial, p->serial_len);
	}
}

static struct core_config core_config_of(const struct server *srv)
{
	struct core_config ccfg = { 0 };

	ccfg.supersede_grace = CFG_LIVE(srv->cfg->supersede_grace);
	ccfg.renew_percent = CFG_LIVE(srv->cfg->renew_window);
	ccfg.allow_null_string = CFG_LIVE(srv->cfg->allow_null_string);
	ccfg.max_auth_failures = CFG_LIVE(srv->cfg->max_auth_failures);
	ccfg.lockout_seconds = CFG_LIVE(srv->cfg->lockout_seconds);
	return ccfg;
}

/*
 * Cisco CAPF: no client certificate, no channel binding; the phone proves
 * who it is inside the protocol, and the server speaks first.
 */
static int cisco_handshake_done(struct conn *c, gnutls_protocol_t version)
{
	struct core_config ccfg = core_config_of(c->srv);
	struct core_event ev = { .type = CORE_EV_START, .now = time(NULL) };
	const uint8_t *msg;
	size_t len;
	int ret;

	if (version != GNUTLS_TLS1_2 && version != GNUTLS_TLS1_3) {
		log_warn("%s: %s is below the TLS 1.2 minimum", c->peer,
			 gnutls_protocol_get_name(version));
		return CAPF_EPROTO;
	}
	c->cbuf = malloc(CISCO_MSG_MAX);
	c->core = core_new(&ccfg);
	ret = codec_cisco_new(&c->cisco, c->srv->ca, CFG_LIVE(c->srv->cfg->cisco_max_in_progress));
	if (c->cbuf == NULL || c->core == NULL || ret < 0)
		return CAPF_ENOMEM;
	ev.start.peer.mic_result = ev.start.peer.lsc_result = CAPF_ENOCERT;
	log_debug("%s: Cisco CAPF session %08x (%s)", c->peer, codec_cisco_session_id(c->cisco),
		  gnutls_protocol_get_name(version));
	c->handshaken = true;
	conn_session_run(c, &ev);
	if (codec_cisco_greeting(c->cisco, &msg, &len) == 0)
		conn_send_frame(c, msg, len);
	uv_timer_start(&c->timer, conn_idle_timeout, CFG_LIVE(c->srv->cfg->idle_timeout_ms), 0);
	return 0;
}

static int on_handshake_done(struct conn *c)
{
	const gnutls_datum_t *peers;
	unsigned npeers = 0;
	uint8_t binding[CA_BINDING_LEN];
	const uint8_t *certs[16];
	size_t lens[16];
	struct core_config ccfg = { 0 };
	struct core_event ev = { .type = CORE_EV_START };
	int ret;

	gnutls_protocol_t version = gnutls_protocol_get_version(c->tls);

	if (c->proto == CONN_CISCO)
		return cisco_handshake_done(c, version);
	/* RFC 9266 forbids tls-exporter on TLS 1.2 without extended master
	 * secret: the value would not be unique to this session. */
	if (version != GNUTLS_TLS1_2 && version != GNUTLS_TLS1_3) {
		log_warn("%s: %s is below the TLS 1.2 minimum", c->peer,
			 gnutls_protocol_get_name(version));
		return CAPF_EPROTO;
	}
	if (version == GNUTLS_TLS1_2 && !gnutls_session_ext_master_secret_status(c->tls)) {
		log_warn("%s: TLS 1.2 without extended master secret: cannot bind the CSR", c->peer);
		return CAPF_EPROTO;
	}
	ret = gnutls_prf_rfc5705(c->tls, strlen(CA_BINDING_LABEL), CA_BINDING_LABEL, 0, NULL,
				 sizeof(binding), (char *)binding);
	if (ret < 0) {
		log_warn("%s: cannot derive the channel binding: %s", c->peer, gnutls_strerror(ret));
		return CAPF_ECRYPTO;
	}

	peers = gnutls_certificate_get_peers(c->tls, &npeers);
	if (peers == NULL)
		npeers = 0;
	if (npeers > sizeof(certs) / sizeof(certs[0]))
		npeers = sizeof(certs) / sizeof(certs[0]);
	for (unsigned i = 0; i < npeers; i++) {
		certs[i] = peers[i].data;
		lens[i] = peers[i].size;
	}

	ev.now = time(NULL);
	peer_evidence(c, certs, lens, npeers, ev.now, &ev.start.peer);
	memcpy(ev.start.binding, binding, sizeof(binding));
	ev.start.binding_len = sizeof(binding);
	ccfg = core_config_of(c->srv);
	c->core = core_new(&ccfg);
	ret = codec_native_new(&c->codec, binding, sizeof(binding));
	gnutls_memset(binding, 0, sizeof(binding));
	if (c->core == NULL || ret < 0) {
		gnutls_memset(&ev, 0, sizeof(ev));
		return CAPF_ENOMEM;
	}

	log_debug("%s: TLS established (%s), %u client certificates", c->peer,
		  gnutls_protocol_get_name(gnutls_protocol_get_version(c->tls)), npeers);
	c->handshaken = true;
	conn_session_run(c, &ev);
	gnutls_memset(&ev, 0, sizeof(ev));
	uv_timer_start(&c->timer, conn_idle_timeout, CFG_LIVE(c->srv->cfg->idle_timeout_ms), 0);
	return 0;
}

/* What a gnutls_handshake() call returned: 1 done (records follow), 0
 * more bytes needed, -1 the connection is closing. */
int conn_handshake_result(struct conn *c, int ret)
{
	if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED ||
	    (ret < 0 && !gnutls_error_is_fatal(ret)))
		return 0;
	if (ret < 0) {
		conn_count_outcome(c, c->hs_signer < 0 ? CAPF_ERETRY : CAPF_EPROTO);
		if (c->hs_signer < 0) {
			/* The phone learns it with an alert; it may try again. */
			log_warn("%s: TLS handshake failed: the signer could not sign (%s)", c->peer,
				 capf_strerror(c->hs_signer));
			if (gnutls_alert_send(c->tls, GNUTLS_AL_FATAL, GNUTLS_A_INTERNAL_ERROR) < 0)
				log_debug("%s: cannot send the alert", c->peer);
		} else {
			log_limited(&conn_lim_handshake, LOG_LVL_INFO, "%s: TLS handshake failed: %s",
				    c->peer, gnutls_strerror(ret));
			/* Say why with an alert (no common suite, a bad
			 * certificate...) rather than a bare close. */
			(void)gnutls_alert_send_appropriate(c->tls, ret);
		}
		conn_close(c);
		return -1;
	}
	outcome_handshake(&c->srv->outcomes, conn_since_accept(c));
	ret = on_handshake_done(c);
	if (ret < 0) {
		c->handshaken = true; /* the session exists: say why we close */
		conn_fail(c, ret);
		return -1;
	}
	return 1;
}
/* ---- handshake steps on fibers ----------------------------------------------- */

/*
 * A fiber: a stack of its own on the worker's thread, on which one
 * gnutls_handshake() call runs. When GnuTLS asks for the server's
 * signature, fiber_sign() sends it to the signer through the worker's
 * channel and switches back to the loop; the channel's answer switches
 * into the fiber again, the signature returns to GnuTLS, and the call
 * finishes. Only a step that waits keeps its stack; the stacks (a guard
 * page under each) are kept for the next steps of this thread.
 */
#define FIBER_STACK (256u * 1024u)
/* The top of each stack keeps valgrind's id of it (see below). */
#define FIBER_STACK_RESERVE 64u
/* Steps waiting for the signer at once on one worker; the others wait
 * for a place in arrival order. */
#define FIBERS_MAX 64u
/* Stacks kept: as many as may wait, so that a steady load maps none
 * (a stack touches a few pages; the rest is address space). */
#define FIBER_CACHE FIBERS_MAX

struct fiber {
	ucontext_t ctx, back;
	uint8_t *map; /* the mapping: guard page, then the stack */
	bool done;    /* the gnutls_handshake() call has returned */
	int sign_result;
	uint8_t *sig;
	size_t sig_len;
};

static _Thread_local uint8_t *stack_cache[FIBER_CACHE];
static _Thread_local unsigned nstack_cache;
static _Thread_local unsigned nwaiting;
static _Thread_local struct conn *deferred_head, *deferred_tail;
static _Thread_local struct conn *fiber_starting;
static size_t page_size;

/*
 * Under valgrind, a stack it was not told of makes every access on it an
 * error: each one is registered while mapped (a no-op otherwise, and
 * without valgrind's header).
 */
#ifdef HAVE_VALGRIND_VALGRIND_H
#define STACK_REGISTER(lo, hi) VALGRIND_STACK_REGISTER(lo, hi)
#define STACK_DEREGISTER(id) VALGRIND_STACK_DEREGISTER(id)
#else
#define STACK_REGISTER(lo, hi) 0u
#define STACK_DEREGISTER(id) ((void)(id))
#endif

static uint8_t *stack_top(uint8_t *m)
{
	return m + page_size + FIBER_STACK - FIBER_STACK_RESERVE;
}

static uint8_t *stack_get(void)
{
	unsigned id;
	uint8_t *m;

	if (nstack_cache > 0)
		return stack_cache[--nstack_cache];
	if (page_size == 0)
		page_size = (size_t)sysconf(_SC_PAGESIZE);
	m = mmap(NULL, page_size + FIBER_STACK, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	if (mprotect(m, page_size, PROT_NONE) < 0) {
		munmap(m, page_size + FIBER_STACK);
		return NULL;
	}
	id = (unsigned)STACK_REGISTER(m + page_size, stack_top(m));
	memcpy(stack_top(m), &id, sizeof(id));
	return m;
}

static void stack_unmap(uint8_t *m)
{
	unsigned id;

	memcpy(&id, stack_top(m), sizeof(id));
	STACK_DEREGISTER(id);
	munmap(m, page_size + FIBER_STACK);
}

static void stack_put(uint8_t *m)
{
	if (m == NULL)
		return;
	if (nstack_cache < FIBER_CACHE)
		stack_cache[nstack_cache++] = m;
	else
		stack_unmap(m);
}

void conn_fiber_free(struct fiber *f)
{
	if (f == NULL)
		return;
	stack_put(f->map);
	free(f->sig);
	free(f);
}

void conn_fibers_release(void)
{
	while (nstack_cache > 0)
		stack_unmap(stack_cache[--nstack_cache]);
}

static void hs_step_done(struct conn *c);

/* Into the fiber, until it waits or its call returns; and back out. Each
 * in a function of its own, so that no caller's locals live across the
 * switch. */
static void fiber_enter(struct fiber *f)
{
	swapcontext(&f->back, &f->ctx);
}

static void fiber_leave(struct fiber *f)
{
	swapcontext(&f->ctx, &f->back);
}

static void fiber_main(void);

/* A fresh context on f's stack that runs fiber_main(), then returns to
 * whoever entered it last. */
static int fiber_prepare(struct fiber *f)
{
	if (getcontext(&f->ctx) < 0)
		return -1;
	f->ctx.uc_stack.ss_sp = f->map + page_size;
	f->ctx.uc_stack.ss_size = FIBER_STACK - FIBER_STACK_RESERVE;
	f->ctx.uc_link = &f->back;
	makecontext(&f->ctx, fiber_main, 0);
	return 0;
}

/* The channel's answer, on the loop: back into the fiber that waits. */
static void on_fiber_signed(void *arg, int result, const uint8_t *sig, size_t sig_len)
{
	struct conn *c = arg;
	struct fiber *f = c->fiber;

	f->sign_result = result;
	if (result == 0) {
		f->sig = malloc(sig_len);
		if (f->sig == NULL) {
			f->sign_result = CAPF_ENOMEM;
		} else {
			memcpy(f->sig, sig, sig_len);
			f->sig_len = sig_len;
		}
	}
	nwaiting--;
	fiber_enter(f);
	if (c->fiber->done)
		hs_step_done(c);
	/* A place is free: the first step waiting for one starts. */
	while (deferred_head != NULL && nwaiting < FIBERS_MAX) {
		struct conn *d = deferred_head;

		deferred_head = d->deferred_next;
		if (deferred_head == NULL)
			deferred_tail = NULL;
		d->deferred = false;
		d->deferred_next = NULL;
		if (!d->closing)
			conn_process(d);
		conn_unref(d);
	}
}

/* GnuTLS's sign callback, on the fiber (signer_thread_hook()). */
static int fiber_sign(void *arg, const char *ref, unsigned algo, unsigned flags,
		      const uint8_t *data, size_t len, uint8_t **sig, size_t *sig_len)
{
	struct conn *c = arg;
	struct fiber *f = c->fiber;
	int ret;

	*sig = NULL;
	*sig_len = 0;
	/* Bounded by FIBERS_MAX, not by the channel's queue: that one is
	 * the LSC signatures'. */
	ret = signer_sign_async2(c->w->signer, ref, algo,
				 SIGNER_ASYNC_UNBOUNDED | (flags & CA_SIGN_HASH ? SIGNER_ASYNC_HASH : 0),
				 data, len, on_fiber_signed, c);
	if (ret < 0) {
		c->hs_signer = ret;
		return ret;
	}
	nwaiting++;
	signer_thread_hook(NULL, NULL);
	fiber_leave(f);
	signer_thread_hook(fiber_sign, c);
	ret = f->sign_result;
	c->hs_signer = ret == 0 ? 1 : ret;
	if (ret == 0) {
		*sig = f->sig;
		*sig_len = f->sig_len;
	} else {
		free(f->sig);
	}
	f->sig = NULL;
	f->sig_len = 0;
	return ret;
}

static void fiber_main(void)
{
	struct conn *c = fiber_starting;

	signer_thread_hook(fiber_sign, c);
	c->hs_ret = gnutls_handshake(c->tls);
	signer_thread_hook(NULL, NULL);
	c->fiber->done = true;
	/* Returns through uc_link to whoever switched in last. */
}

/* The step has returned: write what it pushed, then go on as on the loop. */
static void hs_step_done(struct conn *c)
{
	giovec_t iov = { c->hs_out, c->hs_out_len };
	bool more;

	stack_put(c->fiber->map);
	c->fiber->map = NULL;
	c->hs_off_loop = false;
	more = c->hs_in_len > 0;
	if (c->hs_in_len > 0 && !c->closing) {
		/* What came during the step follows what it left in rbuf. */
		conn_compact_rbuf(c);
		if (c->rcap - c->rlen < c->hs_in_len) {
			uint8_t *n = realloc(c->rbuf, c->rlen + c->hs_in_len);

			if (n == NULL) {
				conn_close(c);
				conn_unref(c);
				return;
			}
			c->rbuf = n;
			c->rcap = c->rlen + c->hs_in_len;
		}
		memcpy(c->rbuf + c->rlen, c->hs_in, c->hs_in_len);
		c->rlen += c->hs_in_len;
	}
	c->hs_in_len = 0;
	free(c->hs_in);
	c->hs_in = NULL;
	if (c->hs_out_len > 0 && !c->closing) {
		int err = conn_queue_write(c, &iov, 1, c->hs_out_len);
		if (err != 0)
			log_debug("%s: write failed: %s", c->peer, strerror(err));
	}
	/* Written or queued (a copy): the step's buffer goes. */
	c->hs_out_len = 0;
	free(c->hs_out);
	c->hs_out = NULL;
	c->hs_out_cap = 0;
	if (c->hs_signer > 0)
		c->hs_signed = true;
	/* Signed: the rest of the handshake runs on the loop, so the fiber
	 * (two contexts, about 2 KiB) goes now, not with the connection. */
	if (c->hs_signed) {
		conn_fiber_free(c->fiber);
		c->fiber = NULL;
	}
	if (!c->closing) {
		int r = conn_handshake_result(c, c->hs_ret);
		if (r == 1)
			conn_read_records(c);
		else if (r == 0 && more)
			conn_process(c); /* the bytes that came during the step */
		/* conn_process() may have started the next step. */
		if (!c->closing && !c->hs_off_loop) {
			conn_compact_rbuf(c);
			if (!c->reading && c->write_queued < CONN_WRITE_QUEUE_MAX)
				conn_start_reading(c);
		}
	}
	conn_unref(c);
}

/*
 * One gnutls_handshake() call on a fiber, until the server's signature is
 * made. Meanwhile the socket stays in the loop's poll set (stopping and
 * starting to read costs two epoll_ctl() calls): what arrives, rarely
 * anything, since the phone waits for the server's flight, goes to hs_in,
 * not to rbuf, which the step pulls from, and nothing else touches the
 * session.
 */
void conn_handshake_step(struct conn *c)
{
	struct fiber *f = c->fiber;

	if (nwaiting >= FIBERS_MAX) {
		if (!c->deferred) {
			c->deferred = true;
			c->refs++;
			if (deferred_tail != NULL)
				deferred_tail->deferred_next = c;
			else
				deferred_head = c;
			deferred_tail = c;
		}
		return;
	}
	if (f == NULL) {
		f = c->fiber = calloc(1, sizeof(*f));
		if (f == NULL)
			goto fail;
	}
	f->map = stack_get();
	if (f->map == NULL || fiber_prepare(f) < 0)
		goto fail;
	f->done = false;
	c->hs_off_loop = true;
	c->refs++;
	fiber_starting = c;
	fiber_enter(f);
	if (c->fiber->done)
		hs_step_done(c);
	return;
fail:
	if (f != NULL) {
		stack_put(f->map);
		f->map = NULL;
	}
	log_warn("%s: cannot run the TLS handshake", c->peer);
	conn_close(c);
}
