/*
 * capf/signer_client.c - capfd's side of the signer protocol: a pool of
 * blocking connections for the threads that may wait (the main thread,
 * threadpool threads running TLS handshakes), and one asynchronous
 * channel per worker loop for the LSC signatures that a loop must not
 * wait for.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "ca/ca.h"
#include "capf/log.h"
#include "capf/signer.h"
#include "proto/proto.h"
#include "proto/signer.pb-c.h"

#define POOL_MAX 32u	    /* idle connections kept */
#define CONNECT_RETRY_MS 20 /* while the signer (re)starts */
#define GENERATE_TIMEOUT_MS 120000u

static atomic_uint_fast64_t next_id = 1;
static _Thread_local int thread_result;
static _Thread_local signer_sign_fn thread_hook;
static _Thread_local void *thread_hook_arg;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the arena ------------------------------------------------------------- */

struct spill {
	struct spill *next;
	size_t size;
	max_align_t data[];
};

static void *arena_alloc(void *ad, size_t size)
{
	struct signer_arena *a = ad;
	size_t at = (a->used + 15u) & ~(size_t)15u;
	struct spill *sp;

	if (size <= a->cap && at <= a->cap - size) {
		a->used = at + size;
		return a->buf + at;
	}
	sp = malloc(sizeof(*sp) + size);
	if (sp == NULL)
		return NULL;
	sp->next = a->spill;
	sp->size = size;
	a->spill = sp;
	return sp->data;
}

static void arena_free(void *ad, void *p)
{
	/* Everything goes at the reset. */
	(void)ad;
	(void)p;
}

void signer_arena_init(struct signer_arena *a, void *buf, size_t cap)
{
	a->alloc.alloc = arena_alloc;
	a->alloc.free = arena_free;
	a->alloc.allocator_data = a;
	a->buf = buf;
	a->cap = cap;
	a->used = 0;
	a->spill = NULL;
}

void signer_arena_reset(struct signer_arena *a)
{
	struct spill *sp = a->spill, *next;

	gnutls_memset(a->buf, 0, a->used);
	a->used = 0;
	for (; sp != NULL; sp = next) {
		next = sp->next;
		gnutls_memset(sp->data, 0, sp->size);
		free(sp);
	}
	a->spill = NULL;
}

/* A request packed into a frame: into buf when it fits in cap bytes,
 * else into a malloc'd one (*frame != buf: the caller frees it). */
static int pack_request(const Capf__Signer__Request *req, uint8_t *buf, size_t cap,
			uint8_t **frame, size_t *len)
{
	size_t n = capf__signer__request__get_packed_size(req);

	*frame = NULL;
	if (n == 0 || n > SIGNER_FRAME_MAX)
		return CAPF_EINVAL;
	*frame = FRAME_HEADER_LEN + n <= cap ? buf : malloc(FRAME_HEADER_LEN + n);
	if (*frame == NULL)
		return CAPF_ENOMEM;
	frame_write_header(*frame, (uint32_t)n);
	capf__signer__request__pack(req, *frame + FRAME_HEADER_LEN);
	*len = FRAME_HEADER_LEN + n;
	return 0;
}

static uint32_t frame_len_of(const uint8_t *h)
{
	return (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
}

/* ---- the synchronous pool -------------------------------------------------- */

struct signer_client {
	struct sockaddr_un sa;
	unsigned timeout_ms;
	pthread_mutex_t lock;
	int idle[POOL_MAX];
	unsigned nidle;
};

int signer_client_new(const char *socket_path, unsigned timeout_ms, struct signer_client **out)
{
	struct signer_client *sc;

	if (out == NULL)
		return CAPF_EINVAL;
	*out = NULL;
	if (socket_path == NULL || strlen(socket_path) >= sizeof(sc->sa.sun_path))
		return CAPF_EINVAL;
	sc = calloc(1, sizeof(*sc));
	if (sc == NULL)
		return CAPF_ENOMEM;
	sc->sa.sun_family = AF_UNIX;
	memcpy(sc->sa.sun_path, socket_path, strlen(socket_path));
	sc->timeout_ms = timeout_ms != 0 ? timeout_ms : SIGNER_DEFAULT_TIMEOUT_MS;
	pthread_mutex_init(&sc->lock, NULL);
	*out = sc;
	return 0;
}

void signer_client_free(struct signer_client *sc)
{
	if (sc == NULL)
		return;
	for (unsigned i = 0; i < sc->nidle; i++)
		close(sc->idle[i]);
	pthread_mutex_destroy(&sc->lock);
	free(sc);
}

/* Connects, waiting while the socket is missing or refuses (the signer
 * is starting) until deadline. */
static int connect_until(struct signer_client *sc, uint64_t deadline)
{
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), e;

		if (fd < 0)
			return -1;
		if (connect(fd, (struct sockaddr *)&sc->sa, sizeof(sc->sa)) == 0) {
			/* A request waits for its answer in a blocking recv()
			 * (one system call, no poll() first), at most this long. */
			struct timeval tv = {sc->timeout_ms / 1000,
					     (suseconds_t)(sc->timeout_ms % 1000) * 1000};
			(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			return fd;
		}
		e = errno;
		close(fd);
		if ((e != ENOENT && e != ECONNREFUSED && e != EAGAIN && e != EINTR) ||
		    now_ms() + CONNECT_RETRY_MS >= deadline)
			return -1;
		poll(NULL, 0, CONNECT_RETRY_MS);
	}
}

/* Waits for fd to be ready for events until deadline: 0, or -2 on
 * timeout, -1 on error. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = {fd, events, 0};
		uint64_t now = now_ms();
		int n;

		if (now >= deadline)
			return -2;
		n = poll(&p, 1, (int)(deadline - now));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return -2;
		return 0;
	}
}

/*
 * Sends frame and reads the answer: 0 and *resp (unpacked into arena,
 * whose buffer also takes the bytes), -1 (broken connection: the signer
 * went away), -2 (timeout). The common case is two system calls: a send
 * that the socket takes at once, and one blocking recv() (SO_RCVTIMEO
 * bounds it) that brings the whole answer; a partial answer or a full
 * socket falls back to poll() against the deadline.
 */
static int exchange(int fd, const uint8_t *frame, size_t len, uint64_t deadline,
		    struct signer_arena *arena, uint8_t *rbuf, size_t rcap,
		    Capf__Signer__Response **resp)
{
	uint8_t *buf = rbuf;
	size_t off = 0, have = 0, need = FRAME_HEADER_LEN;
	bool first = true;
	uint32_t n = 0;
	int r, ret = -1;

	*resp = NULL;
	while (off < len) {
		ssize_t k = send(fd, frame + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN) {
			if ((r = wait_fd(fd, POLLOUT, deadline)) < 0)
				return r;
			continue;
		}
		if (k <= 0)
			return -1;
		off += (size_t)k;
	}
	/* Header, then payload: the length is checked before the payload
	 * is waited for (or allocated, if it is larger than rbuf). */
	while (have < need) {
		ssize_t k;

		if (!first && (r = wait_fd(fd, POLLIN, deadline)) < 0) {
			ret = r;
			goto out;
		}
		k = recv(fd, buf + have, (need > FRAME_HEADER_LEN ? need : rcap) - have,
			 first ? 0 : MSG_DONTWAIT);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (first && now_ms() >= deadline) {
				ret = -2;
				goto out;
			}
			first = false;
			continue;
		}
		first = false;
		if (k <= 0)
			goto out;
		have += (size_t)k;
		if (n == 0 && have >= FRAME_HEADER_LEN) {
			n = frame_len_of(buf);
			if (n == 0 || n > SIGNER_FRAME_MAX)
				goto out;
			need = FRAME_HEADER_LEN + n;
			/* One answer per request: nothing may follow it. */
			if (have > need)
				goto out;
			if (need > rcap) {
				uint8_t *big = malloc(need);

				if (big == NULL)
					goto out;
				memcpy(big, buf, have);
				buf = big;
			}
		}
	}
	*resp = capf__signer__response__unpack(&arena->alloc, n, buf + FRAME_HEADER_LEN);
	ret = *resp != NULL ? 0 : -1;
out:
	if (buf != rbuf)
		free(buf);
	return ret;
}

/* What one synchronous request needs, on its caller's stack: the frame
 * sent, the answer received and what it unpacks to. */
struct rt {
	struct signer_arena arena;
	uint8_t wbuf[1024];
	uint8_t rbuf[2048];
	uint8_t abuf[2048];
};

static void rt_init(struct rt *rt)
{
	signer_arena_init(&rt->arena, rt->abuf, sizeof(rt->abuf));
}

/* Done with the answer of a round trip. */
static void rt_done(struct rt *rt)
{
	signer_arena_reset(&rt->arena);
	gnutls_memset(rt->rbuf, 0, sizeof(rt->rbuf));
}

/*
 * One request, one answer (unpacked into rt's arena: rt_done() when
 * read). A connection taken from the pool may have died with a signer
 * that was restarted since: then the pool is emptied and the request goes
 * once more on a fresh connection. A timeout is not retried.
 */
static int roundtrip(struct signer_client *sc, Capf__Signer__Request *req, struct rt *rt,
		     Capf__Signer__Response **resp)
{
	/* Making an RSA key takes seconds, and happens only at the first
	 * start or on an administrator's request: it may take longer. */
	unsigned timeout = req->op_case == CAPF__SIGNER__REQUEST__OP_GENERATE &&
				   sc->timeout_ms < GENERATE_TIMEOUT_MS
			       ? GENERATE_TIMEOUT_MS
			       : sc->timeout_ms;
	uint64_t deadline = now_ms() + timeout;
	uint8_t *frame = NULL;
	size_t len = 0;
	int ret;

	*resp = NULL;
	rt_init(rt);
	req->id = atomic_fetch_add(&next_id, 1);
	ret = pack_request(req, rt->wbuf, sizeof(rt->wbuf), &frame, &len);
	if (ret < 0)
		return ret;
	ret = CAPF_ERETRY;
	for (int attempt = 0; attempt < 2; attempt++) {
		bool pooled = false;
		int fd = -1, r;

		pthread_mutex_lock(&sc->lock);
		if (sc->nidle > 0) {
			fd = sc->idle[--sc->nidle];
			pooled = true;
		}
		pthread_mutex_unlock(&sc->lock);
		if (fd < 0)
			fd = connect_until(sc, deadline);
		if (fd < 0)
			break;
		r = exchange(fd, frame, len, deadline, &rt->arena, rt->rbuf, sizeof(rt->rbuf), resp);
		if (r == 0 && (*resp)->id != req->id) {
			*resp = NULL;
			signer_arena_reset(&rt->arena);
			r = -1;
			pooled = false;
		}
		if (r == 0) {
			pthread_mutex_lock(&sc->lock);
			if (sc->nidle < POOL_MAX) {
				sc->idle[sc->nidle++] = fd;
				fd = -1;
			}
			pthread_mutex_unlock(&sc->lock);
			if (fd >= 0)
				close(fd);
			ret = 0;
			break;
		}
		close(fd);
		if (r == -1 && pooled) {
			/* The others in the pool went with the same signer. */
			pthread_mutex_lock(&sc->lock);
			while (sc->nidle > 0)
				close(sc->idle[--sc->nidle]);
			pthread_mutex_unlock(&sc->lock);
			continue;
		}
		break;
	}
	gnutls_memset(frame, 0, len);
	if (frame != rt->wbuf)
		free(frame);
	return ret;
}

int signer_ping(struct signer_client *sc)
{
	Capf__Signer__Request req = CAPF__SIGNER__REQUEST__INIT;
	Capf__Signer__Ping ping = CAPF__SIGNER__PING__INIT;
	Capf__Signer__Response *resp = NULL;
	struct rt rt;
	int ret;

	req.op_case = CAPF__SIGNER__REQUEST__OP_PING;
	req.ping = &ping;
	ret = roundtrip(sc, &req, &rt, &resp);
	if (ret == 0)
		ret = resp->code;
	rt_done(&rt);
	return ret;
}

/* The public key of a Load or Generate answer. */
static int take_spki(int ret, Capf__Signer__Response *resp, struct rt *rt, uint8_t **spki,
		     size_t *spki_len, char *errbuf, size_t errlen)
{
	if (ret == 0 && resp->code < 0) {
		ret = resp->code;
		if (errbuf != NULL && errlen > 0)
			snprintf(errbuf, errlen, "%s", resp->error);
	} else if (ret == 0 && resp->spki.len == 0) {
		ret = CAPF_EPROTO;
	} else if (ret == 0) {
		*spki = malloc(resp->spki.len);
		if (*spki == NULL) {
			ret = CAPF_ENOMEM;
		} else {
			memcpy(*spki, resp->spki.data, resp->spki.len);
			*spki_len = resp->spki.len;
		}
	} else if (errbuf != NULL && errlen > 0) {
		snprintf(errbuf, errlen, "the signer process does not answer (%s)",
			 capf_strerror(ret));
	}
	rt_done(rt);
	return ret;
}

int signer_load(struct signer_client *sc, const char *ref, uint8_t **spki, size_t *spki_len,
		char *errbuf, size_t errlen)
{
	Capf__Signer__Request req = CAPF__SIGNER__REQUEST__INIT;
	Capf__Signer__Load load = CAPF__SIGNER__LOAD__INIT;
	Capf__Signer__Response *resp = NULL;
	struct rt rt;
	int ret;

	*spki = NULL;
	*spki_len = 0;
	if (sc == NULL || ref == NULL)
		return CAPF_EINVAL;
	load.ref = (char *)ref;
	req.op_case = CAPF__SIGNER__REQUEST__OP_LOAD;
	req.load = &load;
	ret = roundtrip(sc, &req, &rt, &resp);
	return take_spki(ret, resp, &rt, spki, spki_len, errbuf, errlen);
}

int signer_generate(struct signer_client *sc, int key_type, const char *dir, const char *name,
		    uint8_t **spki, size_t *spki_len, char *errbuf, size_t errlen)
{
	Capf__Signer__Request req = CAPF__SIGNER__REQUEST__INIT;
	Capf__Signer__Generate gen = CAPF__SIGNER__GENERATE__INIT;
	Capf__Signer__Response *resp = NULL;
	struct rt rt;
	int ret;

	*spki = NULL;
	*spki_len = 0;
	if (sc == NULL || dir == NULL || name == NULL)
		return CAPF_EINVAL;
	gen.key_type = key_type;
	gen.dir = (char *)dir;
	gen.name = (char *)name;
	req.op_case = CAPF__SIGNER__REQUEST__OP_GENERATE;
	req.generate = &gen;
	ret = roundtrip(sc, &req, &rt, &resp);
	return take_spki(ret, resp, &rt, spki, spki_len, errbuf, errlen);
}

int signer_sign(struct signer_client *sc, const char *ref, unsigned sign_algo, unsigned flags,
		const uint8_t *data, size_t len, uint8_t **sig, size_t *sig_len)
{
	Capf__Signer__Request req = CAPF__SIGNER__REQUEST__INIT;
	Capf__Signer__Sign sign = CAPF__SIGNER__SIGN__INIT;
	Capf__Signer__Response *resp = NULL;
	struct rt rt;
	int ret;

	*sig = NULL;
	*sig_len = 0;
	if (thread_hook != NULL) {
		ret = thread_hook(thread_hook_arg, ref, sign_algo, flags, data, len, sig, sig_len);
		thread_result = ret == 0 ? 1 : ret;
		return ret;
	}
	if (sc == NULL || ref == NULL || data == NULL || len == 0 || len > SIGNER_DATA_MAX)
		return CAPF_EINVAL;
	sign.ref = (char *)ref;
	sign.algo = sign_algo;
	sign.flags = flags & CA_SIGN_HASH ? SIGNER_SIGN_HASH : 0;
	sign.data.data = (uint8_t *)data;
	sign.data.len = len;
	req.op_case = CAPF__SIGNER__REQUEST__OP_SIGN;
	req.sign = &sign;
	ret = roundtrip(sc, &req, &rt, &resp);
	if (ret == 0 && resp->code < 0)
		ret = resp->code;
	else if (ret == 0 && resp->signature.len == 0)
		ret = CAPF_EPROTO;
	if (ret == 0) {
		*sig = malloc(resp->signature.len);
		if (*sig == NULL) {
			ret = CAPF_ENOMEM;
		} else {
			memcpy(*sig, resp->signature.data, resp->signature.len);
			*sig_len = resp->signature.len;
		}
	}
	rt_done(&rt);
	thread_result = ret == 0 ? 1 : ret;
	return ret;
}

void signer_thread_hook(signer_sign_fn fn, void *arg)
{
	thread_hook = fn;
	thread_hook_arg = arg;
}

void signer_thread_reset(void)
{
	thread_result = 0;
}

int signer_thread_result(void)
{
	return thread_result;
}

static int ops_load(void *arg, const char *ref, uint8_t **spki, size_t *len, char *err,
		    size_t errlen)
{
	return signer_load(arg, ref, spki, len, err, errlen);
}

static int ops_generate(void *arg, int key_type, const char *dir, const char *name, uint8_t **spki,
			size_t *len, char *err, size_t errlen)
{
	return signer_generate(arg, key_type, dir, name, spki, len, err, errlen);
}

static int ops_sign(void *arg, const char *ref, unsigned algo, unsigned flags, const uint8_t *data,
		    size_t len, uint8_t **sig, size_t *sig_len)
{
	return signer_sign(arg, ref, algo, flags, data, len, sig, sig_len);
}

void signer_keyops(struct signer_client *sc, struct ca_keyops *ops)
{
	ops->load = ops_load;
	ops->generate = ops_generate;
	ops->sign = ops_sign;
	ops->arg = sc;
}

/* ---- the asynchronous channel ---------------------------------------------- */

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
	r->id = atomic_fetch_add(&next_id, 1);
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
	ret = pack_request(&req, r->buf, sizeof(r->buf), &r->frame, &r->frame_len);
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
