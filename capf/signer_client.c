/*
 * capf/signer_client.c - capfd's side of the signer protocol: a pool of
 * blocking connections for the threads that may wait (the main thread,
 * threadpool threads running TLS handshakes), and what it shares with the
 * asynchronous channel of each worker loop (capf/signer_chan.c): the
 * arena, the request ids and frames.
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
#include "capf/signer_internal.h"
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

int signer_pack_request(const Capf__Signer__Request *req, uint8_t *buf, size_t cap,
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

uint64_t signer_next_id(void)
{
	return atomic_fetch_add(&next_id, 1);
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
	req->id = signer_next_id();
	ret = signer_pack_request(req, rt->wbuf, sizeof(rt->wbuf), &frame, &len);
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
