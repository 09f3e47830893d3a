/*
 * capf/signer.c - the signer process ("capfd --signer"): it holds the
 * CAPF CA keys and makes every signature, so that the process that parses
 * network input never has a private key in its memory (DESIGN.md rule 11).
 *
 * It is deliberately plain: blocking sockets, one thread per connection
 * (capfd opens one per worker loop and a small pool for the synchronous
 * callers), requests answered in order on each connection. Keys are
 * opened with ca/'s local functions and kept by ref; a ref that is not
 * held yet is loaded on first use, which is what makes a restart of this
 * process invisible to capfd. Only the parent may connect (SO_PEERCRED),
 * and only key files inside the CA directory, the configured [ca] key or
 * pkcs11: URIs are opened or made.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>

#include "ca/ca.h"
#include "capf/log.h"
#include "capf/signer.h"
#include "proto/proto.h"
#include "proto/signer.pb-c.h"

#define SIGNER_CONNS_MAX 512u /* connections served at once */
#define SIGNER_KEYS_MAX 1024u /* refs held */

struct held {
	struct held *next;
	char *ref;
	gnutls_privkey_t key;
	uint8_t *spki;
	size_t spki_len;
	/* GnuTLS objects are not safe to share between threads; a token
	 * key may sit behind one session. One signature at a time per key. */
	pthread_mutex_t lock;
	/* Requests using it (under sg.lock); one that was replaced by a
	 * newer key of its ref goes when the last of them is done. */
	unsigned users;
	bool replaced;
};

static struct {
	char *socket;
	char *ca_dir;
	char *key_cfg;
	unsigned delay_ms;
	pid_t parent;
	pthread_mutex_t lock; /* keys, nkeys, nconns */
	struct held *keys;
	unsigned nkeys, nconns;
} sg = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ---- I/O ------------------------------------------------------------------ */

static int read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One frame: its length is checked before anything is allocated.
 * *out is malloc'd. */
static int read_frame(int fd, uint8_t **out, size_t *len)
{
	uint8_t hdr[FRAME_HEADER_LEN];
	uint32_t n;

	*out = NULL;
	if (read_full(fd, hdr, sizeof(hdr)) < 0)
		return -1;
	n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	if (n == 0 || n > SIGNER_FRAME_MAX)
		return -1;
	*out = malloc(n);
	if (*out == NULL)
		return -1;
	if (read_full(fd, *out, n) < 0) {
		free(*out);
		*out = NULL;
		return -1;
	}
	*len = n;
	return 0;
}

/* ---- refs and keys ---------------------------------------------------------- */

/* A path with its directory resolved (and the file itself, when it
 * exists): what the checks compare. */
static int resolve(const char *path, char *out)
{
	char dir[PATH_MAX], real[PATH_MAX];
	const char *slash = strrchr(path, '/'), *base;
	struct stat st;
	int n;

	if (slash == NULL) {
		snprintf(dir, sizeof(dir), ".");
		base = path;
	} else {
		if ((size_t)(slash - path) >= sizeof(dir))
			return -1;
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
		if (dir[0] == '\0')
			snprintf(dir, sizeof(dir), "/");
		base = slash + 1;
	}
	if (base[0] == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		return -1;
	if (realpath(dir, real) == NULL)
		return -1;
	n = snprintf(out, PATH_MAX, "%s/%s", strcmp(real, "/") == 0 ? "" : real, base);
	if (n < 0 || n >= PATH_MAX)
		return -1;
	/* A link is followed to where it points. */
	if (lstat(out, &st) == 0 && S_ISLNK(st.st_mode)) {
		if (realpath(out, real) == NULL)
			return -1;
		snprintf(out, PATH_MAX, "%s", real);
	}
	return 0;
}

/* Only the CA directory's files, the configured key and token objects. */
static int ref_allowed(const char *ref)
{
	char want[PATH_MAX], real[PATH_MAX], dir[PATH_MAX];
	size_t dlen;

	if (ca_key_is_url(ref))
		return 1;
	if (ref[0] == '\0' || resolve(ref, want) < 0)
		return 0;
	if (sg.key_cfg != NULL && !ca_key_is_url(sg.key_cfg) && resolve(sg.key_cfg, real) == 0 &&
	    strcmp(real, want) == 0)
		return 1;
	if (realpath(sg.ca_dir, dir) == NULL)
		return 0;
	dlen = strlen(dir);
	return strncmp(want, dir, dlen) == 0 && want[dlen] == '/';
}

static struct held *held_find(const char *ref)
{
	struct held *h;

	for (h = sg.keys; h != NULL; h = h->next)
		if (strcmp(h->ref, ref) == 0)
			return h;
	return NULL;
}

static void held_free(struct held *h)
{
	if (h == NULL)
		return;
	gnutls_privkey_deinit(h->key);
	if (h->ref != NULL) {
		gnutls_memset(h->ref, 0, strlen(h->ref));
		free(h->ref);
	}
	free(h->spki);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* Done with h (held_add(), held_get()). */
static void held_put(struct held *h)
{
	bool gone;

	if (h == NULL)
		return;
	pthread_mutex_lock(&sg.lock);
	gone = --h->users == 0 && h->replaced;
	pthread_mutex_unlock(&sg.lock);
	if (gone)
		held_free(h);
}

/* The key held under ref, for the caller's use (held_put()), or NULL. */
static struct held *held_get(const char *ref)
{
	struct held *h;

	pthread_mutex_lock(&sg.lock);
	h = held_find(ref);
	if (h != NULL)
		h->users++;
	pthread_mutex_unlock(&sg.lock);
	return h;
}

/* Keeps key under ref, replacing an older key of that ref. Returns the
 * entry for the caller's use (held_put()), or NULL. */
static struct held *held_add(const char *ref, gnutls_privkey_t key)
{
	struct held *h = calloc(1, sizeof(*h)), *old, **pp;
	bool free_old = false;

	if (h == NULL)
		return NULL;
	if ((h->ref = strdup(ref)) == NULL || pthread_mutex_init(&h->lock, NULL) != 0 ||
	    ca_key_spki(key, &h->spki, &h->spki_len) < 0) {
		free(h->ref);
		free(h);
		return NULL;
	}
	h->key = key;
	h->users = 1;
	pthread_mutex_lock(&sg.lock);
	old = held_find(ref);
	if (old == NULL && sg.nkeys >= SIGNER_KEYS_MAX) {
		pthread_mutex_unlock(&sg.lock);
		h->key = NULL;
		held_free(h);
		return NULL;
	}
	if (old != NULL) {
		/* Out of the list; a signature may still be using it. */
		for (pp = &sg.keys; *pp != old; pp = &(*pp)->next)
			;
		*pp = old->next;
		old->replaced = true;
		free_old = old->users == 0;
	} else {
		sg.nkeys++;
	}
	h->next = sg.keys;
	sg.keys = h;
	pthread_mutex_unlock(&sg.lock);
	if (free_old)
		held_free(old);
	return h;
}

/*
 * The key ref names: opened again when asked to load it (the file behind
 * a ref may have changed: a new pending request replaces pending/key.pem),
 * the one held when a signature needs it (fresh: opened now).
 */
static int op_load(const char *ref, int fresh, struct held **out, char *err, size_t errlen)
{
	gnutls_privkey_t key = NULL;
	struct held *h;
	int ret;

	*out = NULL;
	if (!ref_allowed(ref)) {
		snprintf(err, errlen,
			 "the signer refuses the key %.900s: not in the CA directory "
			 "nor the configured [ca] key",
			 ref);
		return CAPF_EACCES;
	}
	if (!fresh && (h = held_get(ref)) != NULL) {
		*out = h;
		return 0;
	}
	ret = ca_key_load(ref, &key);
	if (ret < 0) {
		snprintf(err, errlen, "%s", ca_last_error());
		return ret;
	}
	h = held_add(ref, key);
	if (h == NULL) {
		gnutls_privkey_deinit(key);
		return CAPF_ENOMEM;
	}
	log_debug("signer: key %s loaded", ca_key_ref_redact(ref, (char[512]){0}, 512));
	*out = h;
	return 0;
}

static int op_generate(const Capf__Signer__Generate *g, struct held **out, char *err, size_t errlen)
{
	gnutls_privkey_t key = NULL;
	char ref[PATH_MAX];
	struct held *h;
	int ret, n;

	*out = NULL;
	n = snprintf(ref, sizeof(ref), "%s/%s", g->dir, g->name);
	if (n < 0 || (size_t)n >= sizeof(ref) || strchr(g->name, '/') != NULL ||
	    !ref_allowed(ref)) {
		snprintf(err, errlen,
			 "the signer refuses to make the key %.900s: not in the CA "
			 "directory nor the configured [ca] key",
			 ref);
		return CAPF_EACCES;
	}
	ret = ca_key_generate(g->key_type, g->dir, g->name, &key);
	if (ret < 0) {
		snprintf(err, errlen, "%s", ca_last_error());
		return ret;
	}
	h = held_add(ref, key);
	if (h == NULL) {
		gnutls_privkey_deinit(key);
		return CAPF_ENOMEM;
	}
	log_info("signer: new key %s", ref);
	*out = h;
	return 0;
}

static int op_sign(const Capf__Signer__Sign *s, gnutls_datum_t *sig, char *err, size_t errlen)
{
	gnutls_datum_t in = {s->data.data, (unsigned)s->data.len};
	gnutls_sign_algorithm_t algo = (gnutls_sign_algorithm_t)s->algo;
	struct held *h = NULL;
	int ret;

	if (s->data.len == 0 || s->data.len > SIGNER_DATA_MAX)
		return CAPF_EINVAL;
	/* A key held already passed ref_allowed() when it was loaded: only
	 * a ref not held yet is resolved on the file system (realpath() of
	 * every path component, each signature, was most of this process's
	 * system calls). */
	h = held_get(s->ref);
	if (h == NULL) {
		ret = op_load(s->ref, 0, &h, err, errlen);
		if (ret < 0)
			return ret;
	}
	if (sg.delay_ms > 0) {
		/* The test seam: a slow HSM. */
		struct timespec ts = {sg.delay_ms / 1000, (long)(sg.delay_ms % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	pthread_mutex_lock(&h->lock);
	if (!(s->flags & SIGNER_SIGN_HASH))
		ret = gnutls_privkey_sign_data2(h->key, algo, 0, &in, sig);
	else if (algo == GNUTLS_SIGN_RSA_RAW)
		/* TLS 1.2 with an RSA key: a DigestInfo to sign as it is. */
		ret = gnutls_privkey_sign_hash(h->key, 0, GNUTLS_PRIVKEY_SIGN_FLAG_TLS1_RSA, &in,
					       sig);
	else
		ret = gnutls_privkey_sign_hash2(h->key, algo, 0, &in, sig);
	pthread_mutex_unlock(&h->lock);
	held_put(h);
	if (ret < 0) {
		snprintf(err, errlen, "cannot sign with %s (%s): %s",
			 ca_key_ref_redact(s->ref, (char[512]){0}, 512),
			 gnutls_sign_get_name(algo) != NULL ? gnutls_sign_get_name(algo) : "?",
			 gnutls_strerror(ret));
		return ret == GNUTLS_E_MEMORY_ERROR ? CAPF_ENOMEM : CAPF_ECRYPTO;
	}
	return 0;
}

/* ---- connections ------------------------------------------------------------- */

static int answer(int fd, const Capf__Signer__Request *req)
{
	Capf__Signer__Response resp = CAPF__SIGNER__RESPONSE__INIT;
	gnutls_datum_t sig = {NULL, 0};
	struct held *h = NULL;
	char err[1024] = "";
	uint8_t out[2048], *frame = NULL;
	size_t len;
	int ret;

	resp.id = req->id;
	switch (req->op_case) {
	case CAPF__SIGNER__REQUEST__OP_PING:
		ret = 0;
		break;
	case CAPF__SIGNER__REQUEST__OP_LOAD:
		ret = op_load(req->load->ref, 1, &h, err, sizeof(err));
		break;
	case CAPF__SIGNER__REQUEST__OP_GENERATE:
		ret = op_generate(req->generate, &h, err, sizeof(err));
		break;
	case CAPF__SIGNER__REQUEST__OP_SIGN:
		ret = op_sign(req->sign, &sig, err, sizeof(err));
		break;
	default:
		ret = CAPF_EPROTO;
		break;
	}
	resp.code = ret;
	resp.error = err;
	if (ret == 0 && h != NULL) {
		resp.spki.data = h->spki;
		resp.spki.len = h->spki_len;
	}
	if (ret == 0 && sig.data != NULL) {
		resp.signature.data = sig.data;
		resp.signature.len = sig.size;
	}
	if (ret < 0 && err[0] != '\0')
		log_warn("signer: %s", err);
	len = capf__signer__response__get_packed_size(&resp);
	ret = -1;
	/* An answer is a signature or a public key and fits on the stack;
	 * one send, header and payload together. */
	frame = FRAME_HEADER_LEN + len <= sizeof(out) ? out : malloc(FRAME_HEADER_LEN + len);
	if (frame != NULL) {
		frame_write_header(frame, (uint32_t)len);
		capf__signer__response__pack(&resp, frame + FRAME_HEADER_LEN);
		ret = write_full(fd, frame, FRAME_HEADER_LEN + len);
	}
	if (frame != out)
		free(frame);
	gnutls_free(sig.data);
	held_put(h);
	return ret;
}

/* The receive buffer of a connection: a whole frame at most. */
#define CONN_RBUF (FRAME_HEADER_LEN + SIGNER_FRAME_MAX)
#define CONN_ARENA 8192u /* what a request unpacks to, usually */

/*
 * Requests are read into one buffer per connection, as many bytes as
 * the socket has (so a request is one read, and requests sent back to
 * back are several in one read), unpacked into an arena, answered in
 * order. The length of each frame is checked before its payload is
 * waited for; the bytes of a request (the data to sign) are wiped once
 * answered.
 */
static void *conn_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	uint8_t *buf = malloc(CONN_RBUF), *abuf = malloc(CONN_ARENA);
	struct signer_arena arena;
	size_t have = 0;

	if (buf == NULL || abuf == NULL)
		goto out;
	signer_arena_init(&arena, abuf, CONN_ARENA);
	for (;;) {
		Capf__Signer__Request *req;
		uint32_t n = 0;
		size_t flen;
		int ok;

		while (have < FRAME_HEADER_LEN ||
		       have < FRAME_HEADER_LEN + (n = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
						       (uint32_t)buf[2] << 8 | buf[3])) {
			ssize_t k;

			if (have >= FRAME_HEADER_LEN && (n == 0 || n > SIGNER_FRAME_MAX))
				goto out;
			k = read(fd, buf + have, CONN_RBUF - have);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				goto out;
			have += (size_t)k;
		}
		if (n == 0 || n > SIGNER_FRAME_MAX)
			goto out;
		flen = FRAME_HEADER_LEN + n;
		req = capf__signer__request__unpack(&arena.alloc, n, buf + FRAME_HEADER_LEN);
		/* The data to sign is copied out of buf by unpack: wipe both
		 * once answered. */
		ok = req != NULL && answer(fd, req) == 0;
		gnutls_memset(buf, 0, flen);
		signer_arena_reset(&arena);
		if (!ok)
			goto out;
		have -= flen;
		if (have > 0)
			memmove(buf, buf + flen, have);
	}
out:
	if (buf != NULL) {
		gnutls_memset(buf, 0, have);
		free(buf);
	}
	free(abuf);
	close(fd);
	pthread_mutex_lock(&sg.lock);
	sg.nconns--;
	pthread_mutex_unlock(&sg.lock);
	return NULL;
}

/* Only capfd, our parent, may talk to us. */
static int peer_ok(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return 0;
	if (cred.pid != sg.parent || cred.uid != getuid()) {
		log_warn("signer: refused a connection from pid %d uid %d (not capfd)",
			 (int)cred.pid, (int)cred.uid);
		return 0;
	}
	return 1;
}

static int read_init(void)
{
	Capf__Signer__Init *init;
	uint8_t *buf = NULL;
	size_t len = 0;

	if (read_frame(STDIN_FILENO, &buf, &len) < 0)
		return -1;
	init = capf__signer__init__unpack(NULL, len, buf);
	gnutls_memset(buf, 0, len);
	free(buf);
	if (init == NULL)
		return -1;
	sg.socket = strdup(init->socket);
	sg.ca_dir = strdup(init->ca_dir);
	sg.key_cfg = init->key[0] != '\0' ? strdup(init->key) : NULL;
	sg.delay_ms = init->delay_ms;
	sg.parent = (pid_t)init->parent_pid;
	log_init((enum log_level)init->log_level, init->log_syslog);
	if (init->key[0] != '\0')
		gnutls_memset(init->key, 0, strlen(init->key));
	capf__signer__init__free_unpacked(init, NULL);
	return sg.socket != NULL && sg.ca_dir != NULL ? 0 : -1;
}

static int listen_on(const char *path)
{
	struct sockaddr_un sa;
	mode_t old;
	int fd, ret;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	unlink(path);
	old = umask(077);
	ret = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (ret < 0 || listen(fd, 64) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int signer_main(void)
{
	pthread_attr_t attr;
	int lfd, ret;

	/* Die with capfd: a signer must never outlive the one process that
	 * may use it. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	prctl(PR_SET_NAME, "capfd-signer");
	signal(SIGPIPE, SIG_IGN);
	/* Nothing of capfd but stdin (the Init pipe) and the log. */
#ifdef SYS_close_range
	if (syscall(SYS_close_range, 3u, ~0u, 0u) < 0)
#endif
		for (int fd = 3; fd < 4096; fd++)
			close(fd);
	if (read_init() < 0) {
		fprintf(stderr, "capfd --signer: no valid Init message on stdin (this mode is for "
				"capfd itself)\n");
		return 2;
	}
	if (getppid() != sg.parent)
		return 0; /* capfd went away before we set the death signal */
	ret = gnutls_global_init();
	if (ret < 0) {
		log_err("signer: GnuTLS initialisation failed: %s", gnutls_strerror(ret));
		return 1;
	}
	lfd = listen_on(sg.socket);
	if (lfd < 0) {
		log_err("signer: cannot listen on %s: %s", sg.socket, strerror(errno));
		return 1;
	}
	log_info("signer: pid %d listening on %s", (int)getpid(), sg.socket);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		pthread_t th;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) {
				poll(NULL, 0, 100);
				continue;
			}
			log_err("signer: accept failed: %s", strerror(errno));
			break;
		}
		if (!peer_ok(fd)) {
			close(fd);
			continue;
		}
		pthread_mutex_lock(&sg.lock);
		ret = sg.nconns < SIGNER_CONNS_MAX ? 0 : -1;
		if (ret == 0)
			sg.nconns++;
		pthread_mutex_unlock(&sg.lock);
		if (ret == 0 && pthread_create(&th, &attr, conn_main, (void *)(intptr_t)fd) != 0) {
			pthread_mutex_lock(&sg.lock);
			sg.nconns--;
			pthread_mutex_unlock(&sg.lock);
			ret = -1;
		}
		if (ret < 0) {
			log_warn("signer: too many connections; refusing one");
			close(fd);
		}
	}
	close(lfd);
	return 1;
}
