/*
 * One phone connection: TCP from libuv, TLS from GnuTLS in non-blocking
 * mode over our own pull/push, frames from proto/, wire messages from the
 * native codec (capf/codec.h), decisions from the enrollment core
 * (capf/core.h). This file moves bytes and runs timers; capf/session.c
 * carries out the core's effects (records read from the store, writes
 * handed to the store's writer, signatures to the signer) and feeds each
 * result back to the core as an event.
 *
 * Lifetime: the connection holds one reference per open handle (tcp and
 * two timers), one while a store write or a signature it asked for is in
 * flight and one while a handshake step is under way (on its fiber, or
 * waiting for a place, see below); it is
 * freed when the last one is dropped, so a completion never finds freed
 * memory even if the phone went away meanwhile.
 *
 * The handshake signs with the CAPF key, which lives in the signer
 * process: GnuTLS calls the key's sign callback synchronously inside
 * gnutls_handshake(), and a GNUTLS_E_AGAIN from it cannot be resumed. So
 * until the server's signature is made, each gnutls_handshake() call runs
 * on a fiber of the worker's thread (conn_handshake_step(), in
 * capf/conn_handshake.c): a stack of its
 * own, which the sign callback leaves while the worker's signer channel
 * asks for the signature, and which the answer resumes; so no thread
 * hand-off and no loop waits. Meanwhile what the loop reads waits in
 * hs_in (the receive buffer stays where GnuTLS pulls from), what GnuTLS
 * pushes is kept in hs_out and written once the call is back, and
 * nothing on the loop touches the session. The rest of the handshake and
 * the session run on the loop; the LSC's signature is asked of the signer
 * asynchronously too (signer_sign_async()).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ca/ca.h"
#include "capf/capfd.h"
#include "capf/codec.h"
#include "capf/conn_internal.h"
#include "capf/core.h"
#include "capf/log.h"
#include "capf/signer.h"
#include "store/store.h"

/* Lines that any peer can cause are rate-limited (capf/log.h). */
struct log_limit conn_lim_handshake = LOG_LIMIT_INIT(20, 10);
struct log_limit conn_lim_refused = LOG_LIMIT_INIT(20, 10);
struct log_limit conn_lim_unauth = LOG_LIMIT_INIT(50, 10);
/* Each connection limit has its own: a flood over one must not hide the
 * other, nor the lines of authenticated phones. */
static struct log_limit conn_lim_total = LOG_LIMIT_INIT(20, 10);
static struct log_limit conn_lim_source = LOG_LIMIT_INIT(20, 10);

#define RBUF_MAX (64u * 1024u)
#define RBUF_CHUNK (16u * 1024u + 512u)
#define WRITE_IOV_MAX 8 /* iovecs of one push written without a copy */


struct write_req {
	uv_write_t req;
	struct conn *c;
	size_t len;
	uint8_t data[];
};

static void on_session_timeout(uv_timer_t *t);
void conn_process(struct conn *c);
void conn_start_reading(struct conn *c);

struct conn *conn_next(struct conn *c)
{
	return c->next;
}

void conn_unref(struct conn *c)
{
	struct worker *w = c->w;

	if (--c->refs > 0)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	w->nconns--;
	atomic_fetch_sub(&c->srv->active_connections, 1);
	if (c->counted_source)
		source_release(c->srv, c->addr);
	if (c->claimed[0] != '\0')
		server_release(c->srv, c->claimed);
	core_free(c->core);
	codec_native_free(c->codec);
	codec_cisco_free(c->cisco);
	free(c->cbuf);
	ca_tbs_deinit(&c->tbs);
	conn_revoked_free(c);
	if (c->tls != NULL)
		gnutls_deinit(c->tls);
	server_creds_put(c->creds);
	frame_decoder_deinit(&c->dec);
	conn_fiber_free(c->fiber);
	free(c->rbuf);
	free(c->held);
	free(c->hs_in);
	free(c->hs_out);
	free(c);
	worker_maybe_finish(w);
}

static void on_handle_closed(uv_handle_t *h)
{
	conn_unref(h->data);
}

static void close_handles(struct conn *c)
{
	if (c->handles_closed)
		return;
	c->handles_closed = true;
	uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
	uv_close((uv_handle_t *)&c->timer, on_handle_closed);
	uv_close((uv_handle_t *)&c->session_timer, on_handle_closed);
}

/* ---- GnuTLS transport ----------------------------------------------------- */

static ssize_t tls_pull(gnutls_transport_ptr_t ptr, void *data, size_t len)
{
	struct conn *c = ptr;
	size_t avail = c->rlen - c->roff;

	if (avail == 0) {
		gnutls_transport_set_errno(c->tls, EAGAIN);
		return -1;
	}
	if (len > avail)
		len = avail;
	memcpy(data, c->rbuf + c->roff, len);
	c->roff += len;
	return (ssize_t)len;
}

static void on_write(uv_write_t *req, int status)
{
	struct write_req *wr = (struct write_req *)req;
	struct conn *c = wr->c;

	c->write_queued -= wr->len;
	free(wr);
	if (status < 0 && status != UV_ECANCELED && !c->closing)
		log_debug("%s: write failed: %s", c->peer, uv_strerror(status));
	if (status < 0) {
		conn_close(c);
		return;
	}
	/* Back-pressure released: read again. */
	if (!c->closing && !c->reading && !c->hs_off_loop && c->write_queued < CONN_WRITE_QUEUE_MAX / 2)
		conn_start_reading(c);
}

/*
 * One write. The socket usually takes the bytes at once: they go with
 * uv_try_write() straight from GnuTLS's buffers (no copy, no request, no
 * callback, and no change of the loop's poll set, which a completed
 * uv_write() costs libuv an epoll_ctl() for). What it does not take (a
 * full socket, a write queued before, an error to report from the loop)
 * goes in a single allocation holding the uv_write_t and the bytes.
 * Returns 0 or an errno value. On the loop only.
 */
int conn_queue_write(struct conn *c, const giovec_t *iov, int iovcnt, size_t total)
{
	struct write_req *wr;
	size_t off = 0, done = 0;
	uv_buf_t buf;

	if (c->handles_closed)
		return EPIPE;
	c->sent = true;
	if (c->write_queued == 0 && iovcnt <= WRITE_IOV_MAX) {
		uv_buf_t bufs[WRITE_IOV_MAX];
		int n;

		for (int i = 0; i < iovcnt; i++)
			bufs[i] = uv_buf_init(iov[i].iov_base, (unsigned)iov[i].iov_len);
		n = uv_try_write((uv_stream_t *)&c->tcp, bufs, (unsigned)iovcnt);
		if (n > 0)
			done = (size_t)n;
		if (done == total)
			return 0;
	}
	wr = malloc(sizeof(*wr) + total - done);
	if (wr == NULL)
		return ENOMEM;
	wr->c = c;
	wr->len = total - done;
	for (int i = 0; i < iovcnt; i++) {
		size_t skip = done > iov[i].iov_len ? iov[i].iov_len : done;

		done -= skip;
		memcpy(wr->data + off, (const uint8_t *)iov[i].iov_base + skip, iov[i].iov_len - skip);
		off += iov[i].iov_len - skip;
	}
	buf = uv_buf_init((char *)wr->data, (unsigned)wr->len);
	if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write) < 0) {
		free(wr);
		return EPIPE;
	}
	c->write_queued += wr->len;
	if (c->write_queued > CONN_WRITE_QUEUE_MAX && c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
	}
	return 0;
}

/* Each push is one write; it never blocks, so a corked frame leaves as
 * one TLS record in one write. During a handshake step the bytes wait in
 * hs_out instead, and leave once the step is back. */
static ssize_t tls_vec_push(gnutls_transport_ptr_t ptr, const giovec_t *iov, int iovcnt)
{
	struct conn *c = ptr;
	size_t total = 0;
	int err;

	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (c->hold_output) {
		/* The last record and the close_notify after it: one write at
		 * the close (conn_hold_output()). */
		if (c->held_len + total > c->held_cap) {
			size_t ncap = c->held_len + total + 256;
			uint8_t *n = ncap <= CONN_WRITE_QUEUE_MAX ? realloc(c->held, ncap) : NULL;
			if (n == NULL) {
				gnutls_transport_set_errno(c->tls, ENOMEM);
				return -1;
			}
			c->held = n;
			c->held_cap = ncap;
		}
		for (int i = 0; i < iovcnt; i++) {
			memcpy(c->held + c->held_len, iov[i].iov_base, iov[i].iov_len);
			c->held_len += iov[i].iov_len;
		}
		return (ssize_t)total;
	}
	if (c->hs_off_loop) {
		if (c->hs_out_len + total > c->hs_out_cap) {
			size_t ncap = c->hs_out_len + total + 4096;
			uint8_t *n = ncap <= CONN_WRITE_QUEUE_MAX ? realloc(c->hs_out, ncap) : NULL;
			if (n == NULL) {
				gnutls_transport_set_errno(c->tls, ENOMEM);
				return -1;
			}
			c->hs_out = n;
			c->hs_out_cap = ncap;
		}
		for (int i = 0; i < iovcnt; i++) {
			memcpy(c->hs_out + c->hs_out_len, iov[i].iov_base, iov[i].iov_len);
			c->hs_out_len += iov[i].iov_len;
		}
		return (ssize_t)total;
	}
	err = conn_queue_write(c, iov, iovcnt, total);
	if (err != 0) {
		gnutls_transport_set_errno(c->tls, err);
		return -1;
	}
	return (ssize_t)total;
}

/* ---- closing ----------------------------------------------------------------- */

static void on_shutdown(uv_shutdown_t *req, int status)
{
	(void)status;
	close_handles(req->data);
}

/* Microseconds since the connection was accepted. */
uint64_t conn_since_accept(const struct conn *c)
{
	return (uv_hrtime() - c->t_accept) / 1000u;
}

/* A session that ended with code (0: success), counted for the metrics. */
void conn_count_outcome(struct conn *c, int code)
{
	outcome_session(&c->srv->outcomes, c->core != NULL ? core_operation(c->core) : 0, code,
			conn_since_accept(c));
	atomic_fetch_add(code == 0 ? &c->srv->enrollments : &c->srv->failures, 1);
}

void conn_hold_output(struct conn *c)
{
	if (!c->closing && !c->hs_off_loop)
		c->hold_output = true;
}

/* What conn_hold_output() kept, in one write. */
static void flush_held(struct conn *c)
{
	giovec_t iov = { c->held, c->held_len };

	c->hold_output = false;
	if (c->held_len > 0) {
		int err = conn_queue_write(c, &iov, 1, c->held_len);
		if (err != 0)
			log_debug("%s: write failed: %s", c->peer, strerror(err));
	}
	c->held_len = 0;
}

void conn_close(struct conn *c)
{
	if (c->closing) {
		flush_held(c);
		return;
	}
	c->closing = true;
	if (c->audit_quiet) {
		store_wake(c->srv->store);
		c->audit_quiet = false;
	}
	/* Every session that ends leaves a line with its outcome; one the
	 * phone left midway has no other. */
	if (c->core != NULL && core_state(c->core) != CORE_S_DONE) {
		conn_count_outcome(c, CAPF_ECONNRESET);
		log_limited(core_auth_method(c->core) != NULL ? &conn_lim_refused : &conn_lim_unauth,
			    LOG_LVL_INFO, "%s: device \"%s\": the session ended in state %s: %s",
			    c->peer, core_device(c->core)[0] ? core_device(c->core) : "-",
			    core_state_name(core_state(c->core)),
			    c->busy ? "closed while the server worked" : "the phone went away");
	}
	uv_timer_stop(&c->timer);
	if (c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
	}
	if (c->handshaken)
		(void)gnutls_bye(c->tls, GNUTLS_SHUT_WR);
	flush_held(c);

	/* Let the last frame and the close_notify leave before closing (a
	 * FIN after them, not a close that unread bytes turn into a reset),
	 * but never wait longer than the session timer allows. */
	if (c->write_queued > 0 || c->sent) {
		c->shutdown_req.data = c;
		if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) == 0) {
			uint64_t left = uv_timer_get_due_in(&c->session_timer);
			if (left == 0 || left > 2000)
				uv_timer_start(&c->session_timer, on_session_timeout, 2000, 0);
			return;
		}
	}
	close_handles(c);
}

/* ---- sending and the state machine's outputs --------------------------------- */

void conn_send_frame(struct conn *c, const uint8_t *frame, size_t len)
{
	ssize_t n;

	if (c->handles_closed || !c->handshaken)
		return;
	/* One frame, one record: clients read a whole message per record. */
	gnutls_record_cork(c->tls);
	n = gnutls_record_send(c->tls, frame, len);
	if (n >= 0)
		n = gnutls_record_uncork(c->tls, GNUTLS_RECORD_WAIT);
	if (n < 0) {
		log_debug("%s: TLS send failed: %s", c->peer, gnutls_strerror((int)n));
		conn_close(c);
	}
}

/* ---- receiving ------------------------------------------------------------------ */

static void handle_frame(struct conn *c, const uint8_t *payload, size_t len)
{
	struct core_event ev;

	if (++c->nmsgs > CFG_LIVE(c->srv->cfg->max_messages)) {
		conn_fail(c, CAPF_ELIMIT);
		return;
	}
	(void)codec_native_decode(c->codec, payload, len, time(NULL), &ev);
	log_debug("%s: received %s", c->peer, codec_native_message_name(c->codec));
	conn_session_run(c, &ev);
	if (!c->closing && !c->busy)
		uv_timer_start(&c->timer, conn_idle_timeout, CFG_LIVE(c->srv->cfg->idle_timeout_ms), 0);
}

/* Cisco messages: whole ones from cbuf, one at a time, while the session
 * is not waiting for the store, the signer or a string check. */
static void handle_cisco(struct conn *c)
{
	while (!c->closing && !c->busy) {
		ssize_t mlen = cisco_msg_length(c->cbuf, c->clen);
		struct core_event ev;
		int ret;

		if (mlen == 0 || (mlen > 0 && (size_t)mlen > c->clen))
			return; /* not whole yet */
		if (++c->nmsgs > CFG_LIVE(c->srv->cfg->max_messages)) {
			conn_fail(c, CAPF_ELIMIT);
			return;
		}
		if (mlen < 0) {
			log_info("%s: Cisco CAPF: bad header byte", c->peer);
			ev.type = CORE_EV_ABORT;
			ev.now = time(NULL);
			ev.code = CAPF_EPROTO;
			c->clen = 0;
			conn_session_run(c, &ev);
			return;
		}
		ret = codec_cisco_decode(c->cisco, c->cbuf, (size_t)mlen, time(NULL), &ev);
		memmove(c->cbuf, c->cbuf + mlen, c->clen - (size_t)mlen);
		c->clen -= (size_t)mlen;
		if (ret < 0 || codec_cisco_why(c->cisco) != NULL)
			log_info("%s: Cisco CAPF: %s", c->peer,
				 codec_cisco_why(c->cisco) != NULL ? codec_cisco_why(c->cisco)
								    : capf_strerror(ret));
		if (ret == 1) {
			/* REQUEST_IN_PROGRESS: the phone is alive. */
			uv_timer_start(&c->timer, conn_idle_timeout, CFG_LIVE(c->srv->cfg->idle_timeout_ms), 0);
			continue;
		}
		conn_session_run(c, &ev);
		if (!c->closing && !c->busy)
			uv_timer_start(&c->timer, conn_idle_timeout, CFG_LIVE(c->srv->cfg->idle_timeout_ms), 0);
	}
}

void conn_read_records(struct conn *c)
{
	uint8_t buf[16384 + 256];

	if (c->proto == CONN_CISCO)
		handle_cisco(c);
	while (!c->closing && !c->busy) {
		ssize_t n = gnutls_record_recv(c->tls, buf, sizeof(buf));
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			return;
		if (n == 0) {
			if (c->proto == CONN_CISCO && c->clen > 0)
				log_info("%s: Cisco CAPF: closed inside a message (%zu bytes of %zd)",
					 c->peer, c->clen, cisco_msg_length(c->cbuf, c->clen));
			else
				log_debug("%s: peer closed the session", c->peer);
			conn_close(c);
			return;
		}
		if (n < 0) {
			log_limited(&conn_lim_handshake, LOG_LVL_INFO, "%s: TLS error: %s", c->peer,
				    gnutls_strerror((int)n));
			conn_close(c);
			return;
		}
		if (c->proto == CONN_CISCO) {
			if (c->clen + (size_t)n > CISCO_MSG_MAX) {
				conn_fail(c, CAPF_EFRAME_TOO_BIG);
				return;
			}
			memcpy(c->cbuf + c->clen, buf, (size_t)n);
			c->clen += (size_t)n;
			handle_cisco(c);
			continue;
		}
		size_t off = 0;
		while (off < (size_t)n && !c->closing) {
			const uint8_t *payload = NULL;
			size_t plen = 0;
			ssize_t used = frame_decode(&c->dec, buf + off, (size_t)n - off, &payload, &plen);
			if (used < 0) {
				conn_fail(c, (int)used);
				return;
			}
			off += (size_t)used;
			if (payload != NULL)
				handle_frame(c, payload, plen);
		}
	}
}

/* What the TLS handshake proved about the peer: its chain checked as a
 * MIC and as an LSC; which one counts is the core's decision. */
void conn_compact_rbuf(struct conn *c)
{
	/* Keep the receive buffer linear and small: move the unread rest to
	 * the front. */
	if (c->roff > 0) {
		memmove(c->rbuf, c->rbuf + c->roff, c->rlen - c->roff);
		c->rlen -= c->roff;
		c->roff = 0;
	}
	/* Nothing left to read: the buffer goes until the next read (a phone
	 * waiting between messages, or thousands idle after their handshake,
	 * hold no receive buffer). */
	if (c->rlen == 0 && c->rbuf != NULL) {
		free(c->rbuf);
		c->rbuf = NULL;
		c->rcap = 0;
	}
}


void conn_process(struct conn *c)
{
	if (c->hs_off_loop)
		return;
	if (!c->handshaken) {
		if (!c->hs_signed) {
			conn_handshake_step(c);
			return;
		}
		if (conn_handshake_result(c, gnutls_handshake(c->tls)) <= 0) {
			if (!c->closing)
				conn_compact_rbuf(c);
			return;
		}
	}
	conn_read_records(c);
	conn_compact_rbuf(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;
	(void)suggested;

	if (c->hs_off_loop) {
		/* A handshake step pulls from rbuf: bytes wait beside it. */
		if (c->hs_in == NULL)
			c->hs_in = malloc(RBUF_CHUNK);
		*buf = uv_buf_init((char *)c->hs_in + c->hs_in_len,
				   c->hs_in != NULL ? (unsigned)(RBUF_CHUNK - c->hs_in_len) : 0);
		return;
	}

	if (c->rcap - c->rlen < RBUF_CHUNK && c->rcap < RBUF_MAX) {
		size_t ncap = c->rlen + RBUF_CHUNK;
		uint8_t *n = realloc(c->rbuf, ncap);
		if (n != NULL) {
			c->rbuf = n;
			c->rcap = ncap;
		}
	}
	*buf = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	(void)buf;

	if (c->closing)
		return;
	if (nread < 0) {
		if (nread != UV_EOF)
			log_debug("%s: read error: %s", c->peer, uv_strerror((int)nread));
		conn_close(c);
		return;
	}
	if (c->hs_off_loop) {
		c->hs_in_len += (size_t)nread;
		if (c->hs_in_len == RBUF_CHUNK) {
			uv_read_stop(s);
			c->reading = false;
		}
		return;
	}
	c->rlen += (size_t)nread;
	if (c->busy) {
		/* Data while the store or the signer works: keep it buffered,
		 * and stop reading once the buffer is full. */
		if (c->rcap - c->rlen == 0) {
			uv_read_stop(s);
			c->reading = false;
		}
		return;
	}
	conn_process(c);
	if (!c->closing && c->rcap == c->rlen && c->rcap >= RBUF_MAX) {
		/* A peer that fills the buffer without completing a TLS record
		 * is not a phone. */
		conn_fail(c, CAPF_EPROTO);
	}
}

void conn_start_reading(struct conn *c)
{
	/* A handshake step pulls from rbuf: not now. */
	if (c->hs_off_loop)
		return;
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
		c->reading = true;
}

/* ---- timers ------------------------------------------------------------------ */

void conn_idle_timeout(uv_timer_t *t)
{
	struct conn *c = t->data;

	if (c->closing)
		return;
	if (!c->handshaken) {
		conn_count_outcome(c, CAPF_ETIMEOUT);
		log_limited(&conn_lim_handshake, LOG_LVL_INFO, "%s: TLS handshake timed out", c->peer);
		conn_close(c);
		return;
	}
	conn_fail(c, CAPF_ETIMEOUT);
}

static void on_session_timeout(uv_timer_t *t)
{
	struct conn *c = t->data;

	if (c->closing) {
		/* The close deadline: the peer did not take our last bytes. */
		close_handles(c);
		return;
	}
	if (c->busy) {
		/* Never cut a session between the store or the signer and the
		 * phone; look again shortly, so the limit still holds
		 * afterwards. */
		uv_timer_start(&c->session_timer, on_session_timeout, 1000, 0);
		return;
	}
	log_info("%s: session time limit reached", c->peer);
	if (c->handshaken)
		conn_fail(c, CAPF_ETIMEOUT);
	else
		conn_close(c);
}

/* ---- accept ------------------------------------------------------------------ */

static void reject_close_cb(uv_handle_t *h)
{
	free(h);
}

/* Before GnuTLS reads a ClientHello: with server precedence, the group of
 * one of its key shares first, so that the phone is not asked for another
 * (capf/tls_prio.c). A hello that does not parse is left to GnuTLS. */
static int on_client_hello(gnutls_session_t tls, unsigned htype, unsigned when, unsigned incoming,
			   const gnutls_datum_t *msg)
{
	struct conn *c = gnutls_transport_get_ptr(tls);
	const struct tls_prio *prio;
	gnutls_priority_t pick;

	(void)when;
	if (htype != GNUTLS_HANDSHAKE_CLIENT_HELLO || !incoming || c == NULL || c->creds == NULL)
		return 0;
	prio = c->proto == CONN_CISCO ? &c->creds->cisco_prio : &c->creds->prio;
	pick = tls_prio_for_hello(prio, msg->data, msg->size);
	if (pick != NULL && gnutls_priority_set(tls, pick) < 0)
		log_debug("%s: the key share's group could not be put first", c->peer);
	return 0;
}

void conn_accept(struct worker *w, enum conn_proto proto)
{
	struct server *srv = w->srv;
	const struct tls_prio *prio;
	struct conn *c;
	struct sockaddr_storage ss;
	int sl = sizeof(ss), ret;

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		uv_tcp_t *t = malloc(sizeof(*t));
		if (t != NULL && uv_tcp_init(&w->loop, t) == 0) {
			if (uv_accept(proto == CONN_CISCO ? (uv_stream_t *)&w->cisco_listener
							  : (uv_stream_t *)&w->listener,
				      (uv_stream_t *)t) < 0)
				log_debug("accept failed");
			uv_close((uv_handle_t *)t, reject_close_cb);
		} else {
			free(t);
		}
		return;
	}
	c->w = w;
	c->proto = proto;
	c->srv = srv;
	uv_tcp_init(&w->loop, &c->tcp);
	uv_timer_init(&w->loop, &c->timer);
	uv_timer_init(&w->loop, &c->session_timer);
	c->tcp.data = c->timer.data = c->session_timer.data = c;
	c->refs = 3;
	c->next = w->conns;
	if (w->conns != NULL)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	atomic_fetch_add(&srv->active_connections, 1);
	c->t_accept = uv_hrtime();
	frame_decoder_init(&c->dec, CFG_LIVE(srv->cfg->max_frame));
	snprintf(c->peer, sizeof(c->peer), "?");

	if (uv_accept(proto == CONN_CISCO ? (uv_stream_t *)&w->cisco_listener
					  : (uv_stream_t *)&w->listener,
		      (uv_stream_t *)&c->tcp) < 0) {
		close_handles(c);
		c->closing = true;
		return;
	}
	atomic_fetch_add(&srv->connections, 1);
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
		int port;
		if (ss.ss_family == AF_INET6) {
			uv_ip6_name((struct sockaddr_in6 *)&ss, c->addr, sizeof(c->addr));
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
			snprintf(c->peer, sizeof(c->peer), "[%s]:%d", c->addr, port);
		} else {
			uv_ip4_name((struct sockaddr_in *)&ss, c->addr, sizeof(c->addr));
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
			snprintf(c->peer, sizeof(c->peer), "%s:%d", c->addr, port);
		}
	}
	/* TCP_NODELAY comes from the listening socket (capf/server.c). */

	if (w->stopping) {
		conn_close(c);
		return;
	}
	if (atomic_load(&srv->active_connections) > CFG_LIVE(srv->cfg->max_connections) ||
	    atomic_load(&srv->active_connections) > srv->nofile_connections) {
		unsigned limit = CFG_LIVE(srv->cfg->max_connections);

		if (srv->nofile_connections < limit)
			log_limited(&conn_lim_total, LOG_LVL_WARN,
				    "%s: connection limit (%u, set by the open-files limit) reached, "
				    "refusing", c->peer, srv->nofile_connections);
		else
			log_limited(&conn_lim_total, LOG_LVL_WARN,
				    "%s: connection limit (%u) reached, refusing", c->peer, limit);
		conn_close(c);
		return;
	}
	if (source_acquire(srv, c->addr) < 0) {
		log_limited(&conn_lim_source, LOG_LVL_WARN,
			    "%s: per-source connection limit (%u) reached, refusing", c->peer,
			 CFG_LIVE(srv->cfg->max_per_source));
		conn_close(c);
		return;
	}
	c->counted_source = true;

	ret = gnutls_init(&c->tls, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
	if (ret < 0) {
		c->tls = NULL;
		goto tls_fail;
	}
	/* A CA or priority change while this session runs does not touch
	 * it: it keeps the credentials it started with. */
	c->creds = server_creds_get(srv);
	if (c->creds == NULL) {
		ret = GNUTLS_E_MEMORY_ERROR;
		goto tls_fail;
	}
	prio = proto == CONN_CISCO ? &c->creds->cisco_prio : &c->creds->prio;
	ret = gnutls_priority_set(c->tls, prio->base);
	if (ret < 0)
		goto tls_fail;
	if (prio->ngroups > 0)
		gnutls_handshake_set_hook_function(c->tls, GNUTLS_HANDSHAKE_CLIENT_HELLO,
						   GNUTLS_HOOK_PRE, on_client_hello);
	ret = gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, c->creds->cred);
	if (ret < 0)
		goto tls_fail;
	/* Request, not require: the MIC is checked by the state machine, which
	 * gives a phone without one a precise error instead of an alert. The
	 * handshake still proves possession of the presented key. */
	gnutls_certificate_server_set_request(c->tls, proto == CONN_CISCO ? GNUTLS_CERT_IGNORE
									    : GNUTLS_CERT_REQUEST);
	gnutls_handshake_set_timeout(c->tls, 0);
	gnutls_transport_set_ptr(c->tls, c);
	gnutls_transport_set_pull_function(c->tls, tls_pull);
	gnutls_transport_set_vec_push_function(c->tls, tls_vec_push);

	uv_timer_start(&c->timer, conn_idle_timeout, CFG_LIVE(srv->cfg->handshake_timeout_ms), 0);
	uv_timer_start(&c->session_timer, on_session_timeout, CFG_LIVE(srv->cfg->session_timeout_ms), 0);
	conn_start_reading(c);
	log_debug("%s: connected (worker %u)", c->peer, w->id);
	return;

tls_fail:
	log_err("%s: TLS session set-up failed: %s", c->peer, gnutls_strerror(ret));
	conn_close(c);
}

void conn_shutdown(struct conn *c, bool force)
{
	if (force) {
		if (!c->closing)
			conn_close(c);
		close_handles(c);
		return;
	}
	if (c->closing || c->busy)
		return;
	if (c->handshaken)
		conn_fail(c, CAPF_ESHUTDOWN);
	else
		conn_close(c);
}
