/*
 * tools/client.c - blocking clients of capfd: the admin socket, the phone
 * channel over TLS, one phone enrollment, and output helpers.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>

#include "tools/client.h"

/* Reads up to cap bytes; returns the count, 0 at end of stream, or a
 * negative capf code. */
typedef ssize_t (*reader_fill_fn)(void *ctx, uint8_t *buf, size_t cap);

static void reader_init(struct client_reader *r, size_t max)
{
	frame_decoder_init(&r->dec, max);
	r->off = 0;
	r->len = 0;
}

static void reader_deinit(struct client_reader *r)
{
	frame_decoder_deinit(&r->dec);
	r->off = 0;
	r->len = 0;
}

/*
 * Returns the next complete frame. Bytes received past the end of a frame
 * stay in the buffer for the next call, because a peer may send two frames
 * in one read (or one TLS record).
 */
static int reader_next(struct client_reader *r, reader_fill_fn fill, void *ctx,
		       const uint8_t **payload, size_t *payload_len)
{
	ssize_t n;

	*payload = NULL;
	*payload_len = 0;
	for (;;) {
		if (r->off < r->len) {
			n = frame_decode(&r->dec, r->buf + r->off, r->len - r->off, payload,
					 payload_len);
			if (n < 0)
				return (int)n;
			r->off += (size_t)n;
			if (*payload)
				return 0;
			continue;
		}
		r->off = 0;
		r->len = 0;
		n = fill(ctx, r->buf, sizeof(r->buf));
		if (n < 0)
			return (int)n;
		if (n == 0)
			return CAPF_ECONNRESET;
		r->len = (size_t)n;
	}
}

static void set_timeouts(int fd, unsigned timeout_ms)
{
	struct timeval tv = {
		.tv_sec = timeout_ms / 1000,
		.tv_usec = (timeout_ms % 1000) * 1000,
	};

	/* Failure only means a send may block longer; it is not fatal. */
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* ---- admin socket ----------------------------------------------------- */

int client_admin_open(struct client_admin *a, const char *path, unsigned timeout_ms)
{
	struct sockaddr_un sun;
	int fd = -1;
	int ret;

	a->fd = -1;
	a->timeout_ms = timeout_ms ? timeout_ms : CLIENT_TIMEOUT_MS_DEFAULT;
	reader_init(&a->rd, FRAME_MAX_LIMIT);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (!path || !*path || strlen(path) >= sizeof(sun.sun_path)) {
		ret = CAPF_EINVAL;
		goto out;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		ret = -errno;
		goto out;
	}
	set_timeouts(fd, a->timeout_ms);
	a->fd = fd;
	fd = -1;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (ret < 0)
		reader_deinit(&a->rd);
	return ret;
}

void client_admin_close(struct client_admin *a)
{
	if (a->fd >= 0)
		close(a->fd);
	a->fd = -1;
	reader_deinit(&a->rd);
}

static ssize_t admin_fill(void *ctx, uint8_t *buf, size_t cap)
{
	struct client_admin *a = ctx;
	struct pollfd pfd = { .fd = a->fd, .events = POLLIN };
	ssize_t n;
	int pr;

	for (;;) {
		pr = poll(&pfd, 1, (int)a->timeout_ms);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return -errno;
		if (pr == 0)
			return CAPF_ETIMEDOUT;
		n = recv(a->fd, buf, cap, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == ECONNRESET ? CAPF_ECONNRESET : -errno;
		return n;
	}
}

static int send_all(int fd, const uint8_t *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return CAPF_ETIMEDOUT;
			if (errno == EPIPE || errno == ECONNRESET)
				return CAPF_ECONNRESET;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int client_admin_call(struct client_admin *a, const Capf__AdminRequest *req,
		      Capf__AdminResponse **resp)
{
	Capf__AdminRequest copy = *req;
	const uint8_t *payload;
	size_t payload_len;
	uint8_t *frame = NULL;
	size_t frame_len = 0;
	int ret;

	*resp = NULL;
	if (a->fd < 0)
		return CAPF_EINVAL;
	if (copy.version == 0)
		copy.version = CAPF_PROTOCOL_VERSION;
	ret = admin_req_pack(&copy, &frame, &frame_len);
	if (ret < 0)
		goto out;
	ret = send_all(a->fd, frame, frame_len);
	if (ret < 0)
		goto out;
	ret = reader_next(&a->rd, admin_fill, a, &payload, &payload_len);
	if (ret < 0)
		goto out;
	ret = admin_resp_unpack(payload, payload_len, resp);
out:
	free(frame);
	return ret;
}

/* ---- trust ------------------------------------------------------------ */

int client_trust_load(const char *path, struct client_trust *t)
{
	gnutls_datum_t data = { NULL, 0 };
	gnutls_x509_crt_t crt = NULL;
	int ret;

	t->crts = NULL;
	t->n = 0;
	if (gnutls_load_file(path, &data) < 0)
		return CAPF_EIO;
	ret = gnutls_x509_crt_list_import2(&t->crts, &t->n, &data, GNUTLS_X509_FMT_PEM, 0);
	if (ret >= 0 && t->n > 0) {
		ret = 0;
		goto out;
	}
	t->crts = NULL;
	t->n = 0;
	/* Not PEM: accept a file holding one DER certificate. */
	if (gnutls_x509_crt_init(&crt) < 0) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	if (gnutls_x509_crt_import(crt, &data, GNUTLS_X509_FMT_DER) < 0) {
		ret = CAPF_EBADMSG;
		goto out;
	}
	t->crts = gnutls_malloc(sizeof(*t->crts));
	if (!t->crts) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	t->crts[0] = crt;
	t->n = 1;
	crt = NULL;
	ret = 0;
out:
	if (crt)
		gnutls_x509_crt_deinit(crt);
	gnutls_free(data.data);
	return ret;
}

int client_trust_cache(struct client_trust *t)
{
	if (t->verified == NULL)
		t->verified = calloc(1, sizeof(*t->verified));
	return t->verified != NULL ? 0 : CAPF_ENOMEM;
}

void client_trust_deinit(struct client_trust *t)
{
	unsigned i;

	free(t->verified);
	t->verified = NULL;
	if (!t->crts)
		return;
	for (i = 0; i < t->n; i++)
		gnutls_x509_crt_deinit(t->crts[i]);
	gnutls_free(t->crts);
	t->crts = NULL;
	t->n = 0;
}

int client_trust_verify(const struct client_trust *t, const uint8_t *der, size_t len)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t d = { (unsigned char *)der, (unsigned)len };
	unsigned status = 0;
	int ok = 0;

	if (!t || t->n == 0 || !der || len == 0 || len > UINT32_MAX)
		return 0;
	if (gnutls_x509_crt_init(&crt) < 0)
		return 0;
	if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) < 0)
		goto out;
	if (gnutls_x509_crt_verify(crt, t->crts, t->n, 0, &status) < 0)
		goto out;
	ok = status == 0;
out:
	gnutls_x509_crt_deinit(crt);
	return ok;
}

/* ---- TCP and TLS ------------------------------------------------------ */

/* Connects fd to one address, waiting at most timeout_ms. */
static int connect_timeout(int fd, const struct sockaddr *sa, socklen_t salen, unsigned timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	int flags = fcntl(fd, F_GETFL);
	socklen_t elen = sizeof(int);
	int err = 0;
	int pr;

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	if (connect(fd, sa, salen) < 0) {
		if (errno != EINPROGRESS)
			return -errno;
		do
			pr = poll(&pfd, 1, (int)timeout_ms);
		while (pr < 0 && errno == EINTR);
		if (pr < 0)
			return -errno;
		if (pr == 0)
			return CAPF_ETIMEDOUT;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
			return -errno;
		if (err)
			return -err;
	}
	if (fcntl(fd, F_SETFL, flags) < 0)
		return -errno;
	return 0;
}

int client_tcp_connect(const char *host, const char *port, unsigned timeout_ms, int *out)
{
	struct addrinfo hints, *res = NULL, *ai;
	int one = 1;
	int fd = -1;
	int ret;

	*out = -1;
	if (!timeout_ms)
		timeout_ms = CLIENT_TIMEOUT_MS_DEFAULT;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	if (getaddrinfo(host, port, &hints, &res) != 0 || !res) {
		ret = CAPF_EINVAL;
		goto out;
	}
	ret = -ECONNREFUSED;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			ret = -errno;
			continue;
		}
		ret = connect_timeout(fd, ai->ai_addr, ai->ai_addrlen, timeout_ms);
		if (ret == 0)
			break;
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		goto out;
	/* Every message is small and answered: do not let Nagle delay it. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	set_timeouts(fd, timeout_ms);
	*out = fd;
	ret = 0;
out:
	if (res)
		freeaddrinfo(res);
	return ret;
}

/*
 * Offers the MIC whatever certificate authorities the server names: a
 * phone has one MIC, and the server must see it (and reject it with a clear
 * error) even when it does not trust its issuer.
 */
static int retrieve_mic(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
			const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
			gnutls_pcert_st **pcert, unsigned int *pcert_length,
			gnutls_privkey_t *privkey)
{
	struct client_tls *t = gnutls_session_get_ptr(session);

	(void)req_ca_rdn;
	(void)nreqs;
	(void)pk_algos;
	(void)pk_algos_length;
	if (!t || !t->have_pcert) {
		*pcert = NULL;
		*pcert_length = 0;
		*privkey = NULL;
		return 0;
	}
	*pcert = &t->pcert;
	*pcert_length = 1;
	*privkey = t->privkey;
	return 0;
}

static int tls_error(struct client_tls *t, int gret, const char *what)
{
	snprintf(t->errtext, sizeof(t->errtext), "%s: %s", what, gnutls_strerror(gret));
	switch (gret) {
	case GNUTLS_E_TIMEDOUT:
	case GNUTLS_E_AGAIN:
		return CAPF_ETIMEDOUT;
	case GNUTLS_E_PREMATURE_TERMINATION:
	case GNUTLS_E_PUSH_ERROR:
	case GNUTLS_E_PULL_ERROR:
		return CAPF_ECONNRESET;
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
		snprintf(t->errtext, sizeof(t->errtext), "%s: TLS alert from the server: %s", what,
			 gnutls_alert_get_name(gnutls_alert_get(t->session)));
		return CAPF_ECONNRESET;
	case GNUTLS_E_MEMORY_ERROR:
		return CAPF_ENOMEM;
	default:
		return CAPF_ECRYPTO;
	}
}

/* What later sessions offer (client_tls_set_groups()). */
static enum client_groups tls_groups = CLIENT_GROUPS_DEFAULT;

void client_tls_set_groups(enum client_groups g)
{
	tls_groups = g;
}

int client_groups_from_name(const char *name, enum client_groups *out)
{
	if (!strcmp(name, "default"))
		*out = CLIENT_GROUPS_DEFAULT;
	else if (!strcmp(name, "x25519"))
		*out = CLIENT_GROUPS_X25519;
	else if (!strcmp(name, "p256") || !strcmp(name, "secp256r1"))
		*out = CLIENT_GROUPS_P256;
	else
		return CAPF_EINVAL;
	return 0;
}

const char *client_groups_name(enum client_groups g)
{
	switch (g) {
	case CLIENT_GROUPS_X25519: return "x25519";
	case CLIENT_GROUPS_P256: return "p256";
	default: return "default";
	}
}

/* The priority string and gnutls_init() flags of the groups offered: one
 * key share (GNUTLS_KEY_SHARE_TOP) when a group is chosen, so that the
 * phone makes one ephemeral key, not two. */
static const char *groups_priority(unsigned *flags)
{
	switch (tls_groups) {
	case CLIENT_GROUPS_X25519:
		*flags = GNUTLS_KEY_SHARE_TOP;
		return CLIENT_TLS_PRIORITY ":-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1";
	case CLIENT_GROUPS_P256:
		*flags = GNUTLS_KEY_SHARE_TOP;
		return CLIENT_TLS_PRIORITY ":-GROUP-ALL:+GROUP-SECP256R1";
	default:
		*flags = 0;
		return CLIENT_TLS_PRIORITY;
	}
}

/*
 * The server's chain, checked against the trust of client_tls_open()
 * unless it is byte for byte one that verified before (client_trust_cache()).
 * Called by GnuTLS once the server's certificate message arrived.
 */
static int verify_cached(gnutls_session_t session)
{
	struct client_tls *t = gnutls_session_get_ptr(session);
	struct client_verified *v = t->trust->verified;
	const gnutls_datum_t *peers;
	unsigned n = 0, status = 0;
	gnutls_hash_hd_t h;
	uint8_t sum[32];

	peers = gnutls_certificate_get_peers(session, &n);
	if (peers == NULL || n == 0) {
		t->verify_status = GNUTLS_CERT_INVALID;
		return GNUTLS_E_CERTIFICATE_ERROR;
	}
	if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
		return GNUTLS_E_CERTIFICATE_ERROR;
	for (unsigned i = 0; i < n; i++) {
		uint8_t len[4] = { (uint8_t)(peers[i].size >> 24), (uint8_t)(peers[i].size >> 16),
				   (uint8_t)(peers[i].size >> 8), (uint8_t)peers[i].size };

		gnutls_hash(h, len, sizeof(len));
		gnutls_hash(h, peers[i].data, peers[i].size);
	}
	gnutls_hash_deinit(h, sum);
	for (unsigned k = 0; k < v->n; k++)
		if (memcmp(v->sum[k], sum, sizeof(sum)) == 0) {
			v->cached++;
			return 0;
		}
	if (gnutls_certificate_verify_peers2(session, &status) < 0 || status != 0) {
		t->verify_status = status != 0 ? status : GNUTLS_CERT_INVALID;
		return GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR;
	}
	v->full++;
	if (v->n < CLIENT_VERIFIED_MAX)
		memcpy(v->sum[v->n++], sum, sizeof(sum));
	return 0;
}

int client_tls_open(struct client_tls *t, const char *host, const char *port,
		    const struct pki_pair *mic, const struct client_trust *trust,
		    unsigned timeout_ms)
{
	gnutls_datum_t out = { NULL, 0 };
	const char *prio;
	unsigned flags = 0;
	int ret;
	int g;

	memset(t, 0, sizeof(*t));
	t->fd = -1;
	reader_init(&t->rd, FRAME_MAX_DEFAULT);
	if (!timeout_ms)
		timeout_ms = CLIENT_TIMEOUT_MS_DEFAULT;
	if (!trust || trust->n == 0) {
		snprintf(t->errtext, sizeof(t->errtext), "no trusted CAPF CA certificate");
		ret = CAPF_EINVAL;
		goto out;
	}
	ret = client_tcp_connect(host ? host : "127.0.0.1", port ? port : CLIENT_PHONE_PORT_DEFAULT,
				 timeout_ms, &t->fd);
	if (ret < 0) {
		snprintf(t->errtext, sizeof(t->errtext), "cannot connect to %s port %s: %s",
			 host ? host : "127.0.0.1", port ? port : CLIENT_PHONE_PORT_DEFAULT,
			 ret == CAPF_EINVAL ? "unknown host or port" : strerror(-ret));
		goto out;
	}

	ret = CAPF_ECRYPTO;
	if (gnutls_certificate_allocate_credentials(&t->cred) < 0) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	g = gnutls_certificate_set_x509_trust(t->cred, trust->crts, (int)trust->n);
	if (g < 0) {
		ret = tls_error(t, g, "cannot use the CAPF CA");
		goto out;
	}
	if (mic && mic->crt && mic->key) {
		g = gnutls_pcert_import_x509(&t->pcert, mic->crt, 0);
		if (g < 0) {
			ret = tls_error(t, g, "cannot use the MIC");
			goto out;
		}
		t->have_pcert = true;
		g = gnutls_privkey_init(&t->privkey);
		if (g >= 0)
			g = gnutls_privkey_import_x509(t->privkey, mic->key, 0);
		if (g < 0) {
			ret = tls_error(t, g, "cannot use the MIC key");
			goto out;
		}
		gnutls_certificate_set_retrieve_function2(t->cred, retrieve_mic);
	}
	prio = groups_priority(&flags);
	g = gnutls_init(&t->session, GNUTLS_CLIENT | flags);
	if (g < 0) {
		t->session = NULL;
		ret = tls_error(t, g, "TLS");
		goto out;
	}
	gnutls_session_set_ptr(t->session, t);
	g = gnutls_priority_set_direct(t->session, prio, NULL);
	if (g >= 0)
		g = gnutls_credentials_set(t->session, GNUTLS_CRD_CERTIFICATE, t->cred);
	if (g < 0) {
		ret = tls_error(t, g, "TLS");
		goto out;
	}
	/* The server certificate is the CAPF CA itself: no host name to check. */
	t->trust = trust;
	if (trust->verified != NULL)
		gnutls_session_set_verify_function(t->session, verify_cached);
	else
		gnutls_session_set_verify_cert(t->session, NULL, 0);
	gnutls_transport_set_int(t->session, t->fd);
	gnutls_handshake_set_timeout(t->session, timeout_ms);
	gnutls_record_set_timeout(t->session, timeout_ms);

	do
		g = gnutls_handshake(t->session);
	while (g < 0 && !gnutls_error_is_fatal(g) && g != GNUTLS_E_AGAIN);
	if (g == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR || t->verify_status != 0) {
		unsigned status = t->verify_status != 0
					  ? t->verify_status
					  : gnutls_session_get_verify_cert_status(t->session);

		if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) >=
		    0)
			snprintf(t->errtext, sizeof(t->errtext),
				 "server certificate not trusted: %s", out.data);
		else
			snprintf(t->errtext, sizeof(t->errtext), "server certificate not trusted");
		/* GnuTLS ends its description with a space. */
		for (size_t n = strlen(t->errtext); n > 0 && t->errtext[n - 1] == ' '; n--)
			t->errtext[n - 1] = '\0';
		ret = CAPF_EUNTRUSTED;
		goto out;
	}
	if (g < 0) {
		ret = tls_error(t, g, "TLS handshake");
		goto out;
	}
	ret = 0;
out:
	gnutls_free(out.data);
	if (ret < 0) {
		char saved[sizeof(t->errtext)];

		memcpy(saved, t->errtext, sizeof(saved));
		client_tls_close(t);
		memcpy(t->errtext, saved, sizeof(saved));
	}
	return ret;
}

/* Closes without close_notify: what a phone that loses power does. */
void client_tls_abort(struct client_tls *t)
{
	if (t->session)
		gnutls_deinit(t->session);
	t->session = NULL;
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	if (t->privkey)
		gnutls_privkey_deinit(t->privkey);
	t->privkey = NULL;
	if (t->have_pcert)
		gnutls_pcert_deinit(&t->pcert);
	t->have_pcert = false;
	if (t->cred)
		gnutls_certificate_free_credentials(t->cred);
	t->cred = NULL;
	reader_deinit(&t->rd);
}

void client_tls_close(struct client_tls *t)
{
	/* SHUT_WR: the server's own close_notify is not worth waiting for. */
	if (t->session && t->fd >= 0)
		(void)gnutls_bye(t->session, GNUTLS_SHUT_WR);
	client_tls_abort(t);
}

static int tls_send(struct client_tls *t, const uint8_t *data, size_t len)
{
	ssize_t n;

	if (!t->session)
		return CAPF_EINVAL;
	while (len > 0) {
		n = gnutls_record_send(t->session, data, len);
		if (n == GNUTLS_E_INTERRUPTED)
			continue;
		/* The socket is blocking with a send timeout: EAGAIN means it expired. */
		if (n < 0)
			return tls_error(t, (int)n, "TLS send");
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

int client_tls_send_raw(struct client_tls *t, const uint8_t *data, size_t len)
{
	int ret = tls_send(t, data, len);

	if (ret == 0)
		transcript_message(t->rec, TRANSCRIPT_PHONE, "raw", data, len);
	return ret;
}

int client_phone_send(struct client_tls *t, const Capf__PhoneMessage *msg)
{
	uint8_t *frame = NULL;
	size_t frame_len = 0;
	int ret;

	ret = phone_msg_pack(msg, &frame, &frame_len);
	if (ret < 0)
		return ret;
	ret = tls_send(t, frame, frame_len);
	/* The payload without its length prefix, as it is received. */
	if (ret == 0)
		transcript_message(t->rec, TRANSCRIPT_PHONE, transcript_native_type(msg->body_case),
				   frame + FRAME_HEADER_LEN, frame_len - FRAME_HEADER_LEN);
	free(frame);
	return ret;
}

static ssize_t tls_fill(void *ctx, uint8_t *buf, size_t cap)
{
	struct client_tls *t = ctx;
	ssize_t n;

	for (;;) {
		n = gnutls_record_recv(t->session, buf, cap);
		if (n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n == GNUTLS_E_REHANDSHAKE)
			continue;
		if (n == GNUTLS_E_PREMATURE_TERMINATION) {
			snprintf(t->errtext, sizeof(t->errtext), "the server closed the connection");
			return CAPF_ECONNRESET;
		}
		if (n < 0)
			return tls_error(t, (int)n, "TLS receive");
		if (n == 0)
			snprintf(t->errtext, sizeof(t->errtext), "the server closed the session");
		return n;
	}
}

int client_phone_recv(struct client_tls *t, Capf__PhoneMessage **msg)
{
	const uint8_t *payload;
	size_t payload_len;
	int ret;

	*msg = NULL;
	if (!t->session)
		return CAPF_EINVAL;
	ret = reader_next(&t->rd, tls_fill, t, &payload, &payload_len);
	if (ret < 0) {
		if (ret == CAPF_EFRAME_TOO_BIG || ret == CAPF_EFRAME_EMPTY)
			snprintf(t->errtext, sizeof(t->errtext), "bad frame from the server: %s",
				 capf_strerror(ret));
		return ret;
	}
	ret = phone_msg_unpack(payload, payload_len, msg);
	transcript_message(t->rec, TRANSCRIPT_SERVER,
			   ret < 0 ? "undecodable" : transcript_native_type((*msg)->body_case),
			   payload, payload_len);
	if (ret < 0)
		snprintf(t->errtext, sizeof(t->errtext), "bad message from the server");
	return ret;
}
