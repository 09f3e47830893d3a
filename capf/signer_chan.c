/*
 * capf/signer_chan.c - the asynchronous channel to the signer, one per
 * worker loop: signatures that a loop must not wait for (the LSCs, the
 * handshakes' on their fibers), answered by callback on the loop.
 */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <gnutls/gnutls.h>

#include "capf/log.h"
#include "capf/signer.h"
#include "capf/signer_internal.h"
#include "proto/proto.h"
#include "proto/signer.pb-c.h"

/* A request's frame fits in the request itself up to this size (an LSC's
 * TBSCertificate is about 400 bytes): one allocation per request. */
#define SREQ_INLINE 1024u

struct sreq {
	struct sreq *next;
	uint64_t id;
	uint64_t deadline;
	bool unbounded;
	signer_done_cb cb;
	void *arg;
	uint8_t *frame; /* until written: inline (in buf) or malloc'd */
	size_t frame_len;
	uint8_t buf[SREQ_INLINE];
};

struct wbuf {
	uv_write_t req;
	uint8_t *frame;
	size_t len;
};

enum chan_state { CH_IDLE, CH_CONNECTING, CH_CONNECTED, CH_RESETTING };

struct signer_chan {
	uv_loop_t *loop;
	uv_pipe_t pipe;
	uv_connect_t connect_req;
	uv_timer_t timer;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	unsigned queue, timeout_ms;
	enum chan_state state;
	bool closing;
	int handles;		  /* open handles: the memory goes with the last */
	struct sreq *head, *tail; /* in submission order, so by deadline */
	unsigned ninflight;
	unsigned nunbounded; /* of them, SIGNER_ASYNC_UNBOUNDED */
	unsigned wqueued; /* writes queued on the pipe (bytes the socket did not take at once) */
	/* Requests made while the signer works on earlier ones are written
	 * together before the loop waits again (want_flush()): one system
	 * call, and one wake-up of the signer, for all of them. */
	uv_prepare_t flush;
	unsigned nwritten; /* requests written and not answered yet */
	/* Why the connection must be reset, found where no callback may run
	 * (inside signer_sign_async()): the loop resets it (on_flush()). */
	const char *broken;
	struct frame_decoder dec;
};

static void chan_connect(struct signer_chan *ch);

static void chan_maybe_free(struct signer_chan *ch)
{
	if (ch->closing && ch->handles == 0) {
		frame_decoder_deinit(&ch->dec);
		free(ch);
	}
}

static void sreq_free(struct sreq *r)
{
	if (r->frame != NULL) {
		gnutls_memset(r->frame, 0, r->frame_len);
		if (r->frame != r->buf)
			free(r->frame);
	}
	free(r);
}

/* Takes r out of the list. */
static void unlink_req(struct signer_chan *ch, struct sreq *r)
{
	struct sreq **pp = &ch->head, *prev = NULL;

	while (*pp != NULL && *pp != r) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (*pp == NULL)
		return;
	*pp = r->next;
	if (ch->tail == r)
		ch->tail = prev;
	ch->ninflight--;
	if (r->unbounded)
		ch->nunbounded--;
	if (r->frame == NULL)
		ch->nwritten--;
}

/* Finishes every request (the list is detached first: a callback may
 * submit again). */
static void fail_all(struct signer_chan *ch, int code)
{
	struct sreq *r = ch->head, *next;

	ch->head = ch->tail = NULL;
	ch->ninflight = 0;
	ch->nunbounded = 0;
	ch->nwritten = 0;
	for (; r != NULL; r = next) {
		next = r->next;
		r->cb(r->arg, code, NULL, 0);
		sreq_free(r);
	}
}

static void on_pipe_closed(uv_handle_t *h)
{
	struct signer_chan *ch = h->data;

	ch->handles--;
	if (ch->closing) {
		chan_maybe_free(ch);
		return;
	}
	ch->state = CH_IDLE;
	ch->broken = NULL;
	frame_decoder_deinit(&ch->dec);
	frame_decoder_init(&ch->dec, SIGNER_FRAME_MAX);
	/* Requests made while the old connection closed go on a new one. */
	if (ch->head != NULL)
		chan_connect(ch);
}

/* The connection is broken: everything in flight gets CAPF_ERETRY, and
 * the next request connects again. */
static void chan_reset(struct signer_chan *ch, const char *why)
{
	if (ch->state == CH_RESETTING || ch->state == CH_IDLE)
		return;
	log_debug("signer channel: %s; %u requests fail", why, ch->ninflight);
	ch->state = CH_RESETTING;
	uv_close((uv_handle_t *)&ch->pipe, on_pipe_closed);
	fail_all(ch, CAPF_ERETRY);
}

static void on_written(uv_write_t *req, int status)
{
	struct wbuf *wb = (struct wbuf *)req;
	struct signer_chan *ch = req->data;

	ch->wqueued--;
	gnutls_memset(wb->frame, 0, wb->len);
	free(wb);
	if (status < 0 && status != UV_ECANCELED && !ch->closing && ch->state == CH_CONNECTED)
		chan_reset(ch, uv_strerror(status));
}

/* Requests gathered into one write at most. */
#define FLUSH_MAX 64u

/*
 * Writes the frames not written yet, in submission order: at once what
 * the socket takes (the usual case: no write request, no callback, no
 * change of the loop's poll set), the rest copied into one queued write.
 * A broken connection is left to the queued write to report. Returns 0;
 * 1 when nothing could be written and the frames wait (out of memory:
 * the loop tries again); or -1 with ch->broken set when the connection
 * must be reset (a frame cut in the middle, a write libuv refused). No
 * callback runs here.
 */
static int flush_unsent(struct signer_chan *ch)
{
	uv_buf_t bufs[FLUSH_MAX];
	struct sreq *rs[FLUSH_MAX], *r = ch->head;

	while (ch->state == CH_CONNECTED && ch->broken == NULL) {
		size_t k = 0, total = 0, done, off;
		int n = 0;

		for (; r != NULL && k < FLUSH_MAX; r = r->next) {
			if (r->frame == NULL)
				continue;
			rs[k] = r;
			bufs[k++] = uv_buf_init((char *)r->frame, (unsigned)r->frame_len);
			total += r->frame_len;
		}
		if (k == 0)
			return 0;
		if (ch->wqueued == 0)
			n = uv_try_write((uv_stream_t *)&ch->pipe, bufs, (unsigned)k);
		done = n > 0 ? (size_t)n : 0;
		if (done < total) {
			struct wbuf *wb = malloc(sizeof(*wb) + total - done);
			uv_buf_t rest;

			if (wb == NULL && done == 0)
				return 1;
			if (wb == NULL) {
				ch->broken = "out of memory";
				return -1;
			}
			wb->len = total - done;
			wb->frame = (uint8_t *)(wb + 1);
			off = 0;
			for (size_t i = 0, at = 0; i < k; at += bufs[i].len, i++) {
				size_t skip = done > at ? done - at : 0;

				if (skip >= bufs[i].len)
					continue;
				memcpy(wb->frame + off, bufs[i].base + skip, bufs[i].len - skip);
				off += bufs[i].len - skip;
			}
			wb->req.data = ch;
			rest = uv_buf_init((char *)wb->frame, (unsigned)wb->len);
			if (uv_write(&wb->req, (uv_stream_t *)&ch->pipe, &rest, 1, on_written) < 0) {
				gnutls_memset(wb->frame, 0, wb->len);
				free(wb);
				ch->broken = "write failed";
				return -1;
			}
			ch->wqueued++;
		}
		for (size_t i = 0; i < k; i++) {
			gnutls_memset(rs[i]->frame, 0, rs[i]->frame_len);
			if (rs[i]->frame != rs[i]->buf)
				free(rs[i]->frame);
			rs[i]->frame = NULL;
		}
		ch->nwritten += (unsigned)k;
	}
	return ch->broken != NULL ? -1 : 0;
}

static void on_flush(uv_prepare_t *p)
{
	struct signer_chan *ch = p->data;

	uv_prepare_stop(p);
	if (ch->closing || ch->state != CH_CONNECTED)
		return;
	if (ch->broken == NULL && flush_unsent(ch) > 0)
		ch->broken = "out of memory";
	if (ch->broken != NULL)
		chan_reset(ch, ch->broken);
}

/*
 * The frames not written yet: at once when the signer has nothing of
 * this channel's to work on (it starts while the loop goes on), else with
 * the others of this loop iteration (on_flush()): the signer reads them
 * when it is done with what it has, and is woken once for all of them.
 * Whatever goes wrong is the loop's to handle, never the caller's.
 */
static void want_flush(struct signer_chan *ch)
{
	if (ch->nwritten == 0 && ch->wqueued == 0 && ch->broken == NULL &&
	    flush_unsent(ch) == 0)
		return;
	if (!uv_is_active((uv_handle_t *)&ch->flush))
		uv_prepare_start(&ch->flush, on_flush);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static _Thread_local char rbuf[16384];

	(void)h;
	(void)suggested;
	*buf = uv_buf_init(rbuf, sizeof(rbuf));
}

static void on_response(struct signer_chan *ch, const uint8_t *payload, size_t len)
{
	uint8_t abuf[2048];
	struct signer_arena arena;
	Capf__Signer__Response *resp;
	struct sreq *r;

	signer_arena_init(&arena, abuf, sizeof(abuf));
	resp = capf__signer__response__unpack(&arena.alloc, len, payload);
	if (resp == NULL) {
		signer_arena_reset(&arena);
		chan_reset(ch, "bad response");
		return;
	}
	for (r = ch->head; r != NULL && r->id != resp->id; r = r->next)
		;
	/* An answer to a request that timed out already is dropped. */
	if (r != NULL) {
		int code = resp->code < 0 ? resp->code : 0;

		if (code == 0 && resp->signature.len == 0)
			code = CAPF_EPROTO;
		unlink_req(ch, r);
		r->cb(r->arg, code, code == 0 ? resp->signature.data : NULL,
		      code == 0 ? resp->signature.len : 0);
		sreq_free(r);
	}
	signer_arena_reset(&arena);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct signer_chan *ch = s->data;
	size_t off = 0;

	if (ch->closing || ch->state != CH_CONNECTED)
		return;
	if (nread < 0) {
		chan_reset(ch, nread == UV_EOF ? "the signer closed the connection"
					       : uv_strerror((int)nread));
		return;
	}
	while (off < (size_t)nread && ch->state == CH_CONNECTED) {
		const uint8_t *payload = NULL;
		size_t plen = 0;
		ssize_t used = frame_decode(&ch->dec, (const uint8_t *)buf->base + off,
					    (size_t)nread - off, &payload, &plen);

		if (used < 0) {
			chan_reset(ch, "bad frame");
			return;
		}
		off += (size_t)used;
		if (payload != NULL)
			on_response(ch, payload, plen);
	}
}

static void on_connected(uv_connect_t *req, int status)
{
	struct signer_chan *ch = req->data;

	if (ch->closing || ch->state != CH_CONNECTING)
		return;
	if (status < 0) {
		ch->state = CH_CONNECTED; /* so that the reset closes the pipe */
		chan_reset(ch, uv_strerror(status));
		return;
	}
	ch->state = CH_CONNECTED;
	if (uv_read_start((uv_stream_t *)&ch->pipe, on_alloc, on_read) < 0) {
		chan_reset(ch, "cannot read");
		return;
	}
	if (ch->head != NULL)
		want_flush(ch);
}

static void chan_connect(struct signer_chan *ch)
{
	if (uv_pipe_init(ch->loop, &ch->pipe, 0) < 0) {
		/* Cannot happen for a pipe; the requests are failed by the
		 * timer. */
		return;
	}
	ch->pipe.data = ch;
	ch->handles++;
	ch->state = CH_CONNECTING;
	ch->connect_req.data = ch;
	uv_pipe_connect(&ch->connect_req, &ch->pipe, ch->path, on_connected);
}

static void arm_timer(struct signer_chan *ch);

static void on_timer(uv_timer_t *t)
{
	struct signer_chan *ch = t->data;
	uint64_t now = uv_now(ch->loop);

	if (ch->closing)
		return;
	while (ch->head != NULL && ch->head->deadline <= now) {
		struct sreq *r = ch->head;

		unlink_req(ch, r);
		log_debug("signer channel: request %llu timed out", (unsigned long long)r->id);
		r->cb(r->arg, CAPF_ERETRY, NULL, 0);
		sreq_free(r);
	}
	arm_timer(ch);
}

static void arm_timer(struct signer_chan *ch)
{
	uint64_t now = uv_now(ch->loop);

	if (ch->head == NULL) {
		uv_timer_stop(&ch->timer);
		return;
	}
	uv_timer_start(&ch->timer, on_timer,
		       ch->head->deadline > now ? ch->head->deadline - now : 0, 0);
}

int signer_chan_new(uv_loop_t *loop, const char *socket_path, unsigned queue, unsigned timeout_ms,
		    struct signer_chan **out)
{
	struct signer_chan *ch;

	if (out == NULL)
		return CAPF_EINVAL;
	*out = NULL;
	if (loop == NULL || socket_path == NULL || strlen(socket_path) >= sizeof(ch->path))
		return CAPF_EINVAL;
	ch = calloc(1, sizeof(*ch));
	if (ch == NULL)
		return CAPF_ENOMEM;
	ch->loop = loop;
	snprintf(ch->path, sizeof(ch->path), "%s", socket_path);
	ch->queue = queue != 0 ? queue : SIGNER_DEFAULT_QUEUE;
	ch->timeout_ms = timeout_ms != 0 ? timeout_ms : SIGNER_DEFAULT_TIMEOUT_MS;
	frame_decoder_init(&ch->dec, SIGNER_FRAME_MAX);
	uv_timer_init(loop, &ch->timer);
	ch->timer.data = ch;
	uv_prepare_init(loop, &ch->flush);
	ch->flush.data = ch;
	ch->handles = 2;
	*out = ch;
	return 0;
}

int signer_sign_async(struct signer_chan *ch, const char *key_ref, unsigned sign_algo,
		      const uint8_t *data, size_t len, signer_done_cb cb, void *arg)
{
	return signer_sign_async2(ch, key_ref, sign_algo, 0, data, len, cb, arg);
}

int signer_sign_async2(struct signer_chan *ch, const char *key_ref, unsigned sign_algo,
		       unsigned flags, const uint8_t *data, size_t len, signer_done_cb cb,
		       void *arg)
{
	Capf__Signer__Request req = CAPF__SIGNER__REQUEST__INIT;
	Capf__Signer__Sign sign = CAPF__SIGNER__SIGN__INIT;
	struct sreq *r;
	int ret;

	if (ch == NULL || key_ref == NULL || data == NULL || len == 0 || len > SIGNER_DATA_MAX ||
	    cb == NULL || ch->closing)
		return CAPF_EINVAL;
	/* Bounded: a slow signer makes callers retry instead of queueing
	 * without end. */
	if (!(flags & SIGNER_ASYNC_UNBOUNDED) && ch->ninflight - ch->nunbounded >= ch->queue)
		return CAPF_ERETRY;
	r = malloc(sizeof(*r));
	if (r == NULL)
		return CAPF_ENOMEM;
	r->next = NULL;
	r->unbounded = (flags & SIGNER_ASYNC_UNBOUNDED) != 0;
	r->id = signer_next_id();
	r->cb = cb;
	r->arg = arg;
	r->deadline = uv_now(ch->loop) + ch->timeout_ms;
	sign.ref = (char *)key_ref;
	sign.algo = sign_algo;
	sign.flags = flags & SIGNER_ASYNC_HASH ? SIGNER_SIGN_HASH : 0;
	sign.data.data = (uint8_t *)data;
	sign.data.len = len;
	req.id = r->id;
	req.op_case = CAPF__SIGNER__REQUEST__OP_SIGN;
	req.sign = &sign;
	ret = signer_pack_request(&req, r->buf, sizeof(r->buf), &r->frame, &r->frame_len);
	if (ret < 0) {
		free(r);
		return ret;
	}
	if (ch->tail != NULL)
		ch->tail->next = r;
	else
		ch->head = r;
	ch->tail = r;
	ch->ninflight++;
	if (r->unbounded)
		ch->nunbounded++;
	if (ch->ninflight == 1)
		arm_timer(ch);
	if (ch->state == CH_CONNECTED)
		want_flush(ch);
	else if (ch->state == CH_IDLE)
		chan_connect(ch);
	/* CH_CONNECTING: sent once connected; CH_RESETTING: once closed,
	 * on a new connection. */
	return 0;
}

unsigned signer_chan_inflight(const struct signer_chan *ch)
{
	return ch != NULL ? ch->ninflight : 0;
}

/* The timer's and the flush's. */
static void on_aux_closed(uv_handle_t *h)
{
	struct signer_chan *ch = h->data;

	ch->handles--;
	chan_maybe_free(ch);
}

void signer_chan_close(struct signer_chan *ch)
{
	if (ch == NULL || ch->closing)
		return;
	ch->closing = true;
	fail_all(ch, CAPF_ESHUTDOWN);
	if (ch->state == CH_CONNECTING || ch->state == CH_CONNECTED)
		uv_close((uv_handle_t *)&ch->pipe, on_pipe_closed);
	uv_close((uv_handle_t *)&ch->timer, on_aux_closed);
	uv_close((uv_handle_t *)&ch->flush, on_aux_closed);
}
