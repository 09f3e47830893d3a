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

void client_trust_deinit(struct client_trust *t)
{
	unsigned i;

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

int client_tls_open(struct client_tls *t, const char *host, const char *port,
		    const struct pki_pair *mic, const struct client_trust *trust,
		    unsigned timeout_ms)
{
	gnutls_datum_t out = { NULL, 0 };
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
	g = gnutls_init(&t->session, GNUTLS_CLIENT);
	if (g < 0) {
		t->session = NULL;
		ret = tls_error(t, g, "TLS");
		goto out;
	}
	gnutls_session_set_ptr(t->session, t);
	g = gnutls_priority_set_direct(t->session, CLIENT_TLS_PRIORITY, NULL);
	if (g >= 0)
		g = gnutls_credentials_set(t->session, GNUTLS_CRD_CERTIFICATE, t->cred);
	if (g < 0) {
		ret = tls_error(t, g, "TLS");
		goto out;
	}
	/* The server certificate is the CAPF CA itself: no host name to check. */
	gnutls_session_set_verify_cert(t->session, NULL, 0);
	gnutls_transport_set_int(t->session, t->fd);
	gnutls_handshake_set_timeout(t->session, timeout_ms);
	gnutls_record_set_timeout(t->session, timeout_ms);

	do
		g = gnutls_handshake(t->session);
	while (g < 0 && !gnutls_error_is_fatal(g) && g != GNUTLS_E_AGAIN);
	if (g == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
		unsigned status = gnutls_session_get_verify_cert_status(t->session);

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
static void tls_abort(struct client_tls *t)
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
	tls_abort(t);
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

/* ---- one enrollment --------------------------------------------------- */

static void result_text(struct phone_enroll_result *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void result_text(struct phone_enroll_result *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}

/*
 * Receives the message the protocol expects next. An Error (or an End with
 * a non-zero code) from the server ends the session with the negated
 * server code; anything else unexpected is a protocol violation.
 */
static int recv_expect(struct client_tls *t, struct phone_enroll_result *r,
		       Capf__PhoneMessage__BodyCase want, Capf__PhoneMessage **out)
{
	Capf__PhoneMessage *m = NULL;
	uint32_t code = 0;
	const char *text = NULL;
	int ret;

	*out = NULL;
	ret = client_phone_recv(t, &m);
	if (ret < 0) {
		result_text(r, "%s", t->errtext[0] ? t->errtext : capf_strerror(ret));
		goto out;
	}
	if (m->body_case == CAPF__PHONE_MESSAGE__BODY_ERROR) {
		code = m->error->code;
		text = m->error->text;
	} else if (m->body_case == CAPF__PHONE_MESSAGE__BODY_END && m->end->code != 0) {
		code = m->end->code;
		text = m->end->text;
		r->server_end = true;
	}
	if (code != 0) {
		r->server_code = code > 1000000u ? 1000000 : (int)code;
		result_text(r, "%s", text && *text ? text : capf_strerror(r->server_code));
		ret = -r->server_code;
		goto out;
	}
	if (m->body_case == CAPF__PHONE_MESSAGE__BODY_ERROR) {
		result_text(r, "the server sent an error with code 0");
		ret = CAPF_EPROTO;
		goto out;
	}
	if (m->body_case != want) {
		result_text(r, "unexpected %s message from the server", phone_msg_name(m));
		ret = CAPF_EPROTO;
		goto out;
	}
	*out = m;
	m = NULL;
	ret = 0;
out:
	if (m)
		capf__phone_message__free_unpacked(m, NULL);
	return ret;
}

/*
 * Sends msg. When the send fails because the server already closed, the
 * Error it sent before closing is the better explanation: read it.
 */
static int send_or_collect(struct client_tls *t, struct phone_enroll_result *r,
			   const uint8_t *raw, size_t raw_len, const Capf__PhoneMessage *msg)
{
	Capf__PhoneMessage *m = NULL;
	char saved[sizeof(r->text)];
	int ret;

	ret = raw ? client_tls_send_raw(t, raw, raw_len) : client_phone_send(t, msg);
	if (ret == 0)
		return 0;
	result_text(r, "%s", t->errtext[0] ? t->errtext : capf_strerror(ret));
	if (ret == CAPF_ECONNRESET) {
		int rret;

		memcpy(saved, r->text, sizeof(saved));
		rret = recv_expect(t, r, CAPF__PHONE_MESSAGE__BODY__NOT_SET, &m);
		if (rret < 0 && r->server_code)
			ret = rret;
		else
			memcpy(r->text, saved, sizeof(saved));
		if (m)
			capf__phone_message__free_unpacked(m, NULL);
	}
	return ret;
}

/* Checks the delivered LSC and records its facts in r. */
/* Verifies der against trust through the chain delivered with it: the
 * CAPF CA, and the enterprise certificates above it, so that a phone that
 * trusts only the enterprise root can check its LSC. */
static int verify_delivered(const struct client_trust *t, const uint8_t *der, size_t len,
			    const ProtobufCBinaryData *chain, size_t n)
{
	gnutls_x509_crt_t list[1 + 8];
	gnutls_x509_trust_list_t tl = NULL;
	unsigned status = 1, loaded = 0;
	int ok = 0;

	if (client_trust_verify(t, der, len))
		return 1;
	if (n > 8 || gnutls_x509_trust_list_init(&tl, 0) < 0)
		return 0;
	for (size_t i = 0; i <= n; i++) {
		gnutls_datum_t d = i == 0 ? (gnutls_datum_t){ (unsigned char *)der, (unsigned)len }
				   : (gnutls_datum_t){ chain[i - 1].data, (unsigned)chain[i - 1].len };
		if (gnutls_x509_crt_init(&list[i]) < 0)
			goto out;
		loaded++;
		if (gnutls_x509_crt_import(list[i], &d, GNUTLS_X509_FMT_DER) < 0)
			goto out;
	}
	/* The trust list takes copies of the anchors; the phone's own trust
	 * stays as it is. */
	for (unsigned i = 0; i < t->n; i++) {
		gnutls_x509_crt_t c = NULL;
		gnutls_datum_t d = { NULL, 0 };
		if (gnutls_x509_crt_export2(t->crts[i], GNUTLS_X509_FMT_DER, &d) >= 0 &&
		    gnutls_x509_crt_init(&c) >= 0 && gnutls_x509_crt_import(c, &d, GNUTLS_X509_FMT_DER) >= 0)
			(void)gnutls_x509_trust_list_add_cas(tl, &c, 1, 0);
		else if (c != NULL)
			gnutls_x509_crt_deinit(c);
		gnutls_free(d.data);
	}
	ok = gnutls_x509_trust_list_verify_crt(tl, list, (unsigned)(n + 1), 0, &status, NULL) >= 0 &&
	     status == 0;
out:
	for (unsigned i = 0; i < loaded; i++)
		gnutls_x509_crt_deinit(list[i]);
	gnutls_x509_trust_list_deinit(tl, 1);
	return ok;
}

static int check_lsc(const struct phone_enroll_opts *o, const struct client_trust *trust,
		     gnutls_x509_privkey_t key, const ProtobufCBinaryData *der,
		     const ProtobufCBinaryData *chain, size_t nchain, struct phone_enroll_result *r,
		     uint32_t *ack_code)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t d = { der->data, (unsigned)der->len };
	uint8_t id_crt[64], id_key[64];
	size_t id_crt_len = sizeof(id_crt), id_key_len = sizeof(id_key);
	char cn[DEVICE_NAME_MAX + 64];
	size_t cn_len = sizeof(cn) - 1;
	int ret = CAPF_EREJECTED;

	*ack_code = (uint32_t)-CAPF_EBADMSG;
	if (der->len == 0 || der->len > UINT32_MAX || gnutls_x509_crt_init(&crt) < 0) {
		result_text(r, "no certificate delivered");
		goto out;
	}
	if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) < 0) {
		result_text(r, "the delivered certificate cannot be parsed");
		goto out;
	}
	*ack_code = (uint32_t)-CAPF_EPOLICY;
	if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, id_crt, &id_crt_len) < 0 ||
	    gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, id_key, &id_key_len) < 0 ||
	    id_crt_len != id_key_len || memcmp(id_crt, id_key, id_key_len) != 0) {
		result_text(r, "the delivered certificate is not for this phone's key");
		goto out;
	}
	*ack_code = (uint32_t)-CAPF_EIDENTITY;
	memset(cn, 0, sizeof(cn));
	if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cn_len) <
		    0 ||
	    strcmp(cn, o->name) != 0) {
		result_text(r, "the delivered certificate names \"%s\", not \"%s\"", cn, o->name);
		goto out;
	}
	*ack_code = (uint32_t)-CAPF_EUNTRUSTED;
	if (!verify_delivered(trust, der->data, der->len, chain, nchain)) {
		result_text(r, "the delivered certificate does not verify against the CAPF CA");
		goto out;
	}
	r->serial_len = sizeof(r->serial);
	if (gnutls_x509_crt_get_serial(crt, r->serial, &r->serial_len) < 0)
		r->serial_len = 0;
	r->not_before = gnutls_x509_crt_get_activation_time(crt);
	r->not_after = gnutls_x509_crt_get_expiration_time(crt);
	r->lsc_der = malloc(der->len);
	if (!r->lsc_der) {
		*ack_code = (uint32_t)-CAPF_ENOMEM;
		ret = CAPF_ENOMEM;
		goto out;
	}
	memcpy(r->lsc_der, der->data, der->len);
	r->lsc_len = der->len;
	*ack_code = 0;
	ret = 0;
out:
	if (crt)
		gnutls_x509_crt_deinit(crt);
	return ret;
}

/* Waits before the step o->stall_at names, as a slow or hung phone does. */
static void stall(const struct phone_enroll_opts *o, enum phone_step step)
{
	struct timespec ts;

	if (o->stall_at != step || o->stall_ms == 0)
		return;
	ts.tv_sec = o->stall_ms / 1000u;
	ts.tv_nsec = (long)(o->stall_ms % 1000u) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * The delete and fetch exchanges of version 2: one message from the phone
 * (its result, or the certificates it holds), then End from the server.
 */
static int run_delete_or_fetch(const struct phone_enroll_opts *o, struct client_tls *t,
			       struct phone_enroll_result *r, int op)
{
	Capf__PhoneMessage out = CAPF__PHONE_MESSAGE__INIT;
	Capf__DeleteResult del = CAPF__DELETE_RESULT__INIT;
	Capf__FetchReport rep = CAPF__FETCH_REPORT__INIT;
	ProtobufCBinaryData certs[2];
	gnutls_datum_t der[2] = { { NULL, 0 }, { NULL, 0 } };
	const struct pki_pair *held[2] = { o->lsc, o->mic };
	Capf__PhoneMessage *in = NULL;
	size_t n = 0, i;
	int ret;

	stall(o, PHONE_STEP_RESULT);
	if (op == CAPF__OPERATION__OP_DELETE) {
		del.code = (o->misbehave & PHONE_REFUSE_DELETE) ? 1u : 0u;
		out.body_case = CAPF__PHONE_MESSAGE__BODY_DELETE_RESULT;
		out.delete_result = &del;
	} else {
		/* What a phone holds: its LSC (if any), then its MIC. */
		for (i = 0; i < 2; i++) {
			if (!held[i] || !held[i]->crt)
				continue;
			if (gnutls_x509_crt_export2(held[i]->crt, GNUTLS_X509_FMT_DER, &der[n]) < 0) {
				result_text(r, "cannot export a certificate to report");
				ret = CAPF_ECRYPTO;
				goto out;
			}
			certs[n].data = der[n].data;
			certs[n].len = der[n].size;
			n++;
		}
		rep.certificates = certs;
		rep.n_certificates = n;
		out.body_case = CAPF__PHONE_MESSAGE__BODY_FETCH_REPORT;
		out.fetch_report = &rep;
	}
	ret = send_or_collect(t, r, NULL, 0, &out);
	if (ret < 0)
		goto out;
	ret = recv_expect(t, r, CAPF__PHONE_MESSAGE__BODY_END, &in);
	if (ret < 0)
		goto out;
	result_text(r, "%s", in->end->text ? in->end->text : "");
	if (op == CAPF__OPERATION__OP_DELETE)
		r->deleted = true;
	else
		r->reported = n;
	ret = 0;
out:
	if (in)
		capf__phone_message__free_unpacked(in, NULL);
	for (i = 0; i < n; i++)
		gnutls_free(der[i].data);
	return ret;
}

int phone_enroll(const struct phone_enroll_opts *o, struct phone_enroll_result *r)
{
	struct client_tls t = CLIENT_TLS_INIT;
	struct client_trust own_trust = { NULL, 0 };
	const struct client_trust *trust = o->trust;
	Capf__PhoneMessage out = CAPF__PHONE_MESSAGE__INIT;
	Capf__Hello hello = CAPF__HELLO__INIT;
	Capf__CsrSubmit csr_msg = CAPF__CSR_SUBMIT__INIT;
	Capf__StoreAck ack = CAPF__STORE_ACK__INIT;
	Capf__PhoneMessage *in = NULL;
	gnutls_x509_privkey_t key = NULL;
	uint8_t binding[CLIENT_BINDING_LEN];
	uint8_t *csr = NULL;
	size_t csr_len = 0;
	uint32_t ack_code = 0;
	bool abort_session = false;
	Capf__KeyType supported[16];
	const struct pki_pair *client_cert = o->lsc && !o->present_mic ? o->lsc : o->mic;
	int key_type;
	int ret;

	r->stage = PHONE_STAGE_CONNECT;
	r->op = CAPF__OPERATION__OP_NONE;
	r->server_code = 0;
	r->server_end = false;
	r->text[0] = '\0';
	if (!o->name || !device_name_valid(o->name)) {
		result_text(r, "invalid device name");
		ret = CAPF_EINVAL;
		goto out;
	}
	if (!trust) {
		if (!o->ca_file) {
			result_text(r, "no CAPF CA file");
			ret = CAPF_EINVAL;
			goto out;
		}
		ret = client_trust_load(o->ca_file, &own_trust);
		if (ret < 0) {
			result_text(r, "cannot read the CAPF CA from %s: %s", o->ca_file,
				    capf_strerror(ret));
			goto out;
		}
		trust = &own_trust;
	}

	if (o->nsupported > sizeof(supported) / sizeof(supported[0])) {
		result_text(r, "too many supported keys");
		ret = CAPF_EINVAL;
		goto out;
	}
	ret = client_tls_open(&t, o->host, o->port, client_cert, trust, o->timeout_ms);
	if (ret < 0) {
		result_text(r, "%s", t.errtext);
		goto out;
	}
	r->stage = PHONE_STAGE_SESSION;
	if (o->rec) {
		struct transcript_info info = {
			.protocol = "native",
			.tool = o->tool ? o->tool : "capf-phone enroll",
			.device = o->name,
			.host = o->host ? o->host : "127.0.0.1",
			.port = o->port ? o->port : CLIENT_PHONE_PORT_DEFAULT,
			.client_cert = !client_cert ? "none" : client_cert == o->lsc ? "lsc" : "mic",
			.client_crt = client_cert ? client_cert->crt : NULL,
		};

		transcript_begin(o->rec, &info, t.session);
		t.rec = o->rec;
	}

	if (o->misbehave & PHONE_OUT_OF_ORDER) {
		/* A well-formed, session-bound CSR, just at the wrong time. */
		ret = pki_gen_key(CAPF__KEY_TYPE__KEY_EC_P256, &key);
		if (ret == 0)
			ret = pki_tls_binding(t.session, binding);
		if (ret == 0)
			ret = pki_make_csr(key, o->name, binding, sizeof(binding), &csr, &csr_len);
		if (ret < 0) {
			result_text(r, "cannot make a CSR: %s", capf_strerror(ret));
			goto out;
		}
		csr_msg.csr.data = csr;
		csr_msg.csr.len = csr_len;
		out.body_case = CAPF__PHONE_MESSAGE__BODY_CSR;
		out.csr = &csr_msg;
	} else {
		stall(o, PHONE_STEP_HELLO);
		hello.version = o->version ? o->version : CAPF_PROTOCOL_VERSION;
		hello.device_name = (char *)o->name;
		if (hello.version >= 2) {
			/* Only version 2 has these fields; a version 1 phone
			 * never sends them. */
			if (o->auth_string)
				hello.auth_string = (char *)o->auth_string;
			for (size_t i = 0; i < o->nsupported; i++)
				supported[i] = (Capf__KeyType)o->supported_keys[i];
			hello.supported_keys = supported;
			hello.n_supported_keys = o->nsupported;
		}
		out.body_case = CAPF__PHONE_MESSAGE__BODY_HELLO;
		out.hello = &hello;
	}
	ret = send_or_collect(&t, r, NULL, 0, &out);
	if (ret < 0)
		goto out;
	ret = recv_expect(&t, r, CAPF__PHONE_MESSAGE__BODY_OP_REQUEST, &in);
	if (ret < 0)
		goto out;
	if (o->misbehave & PHONE_OUT_OF_ORDER) {
		result_text(r, "the server accepted a CSR before Hello");
		ret = CAPF_EPROTO;
		goto out;
	}
	r->op = (int)in->op_request->op;
	if ((r->op == CAPF__OPERATION__OP_DELETE || r->op == CAPF__OPERATION__OP_FETCH) &&
	    hello.version >= 2) {
		capf__phone_message__free_unpacked(in, NULL);
		in = NULL;
		ret = run_delete_or_fetch(o, &t, r, r->op);
		goto out;
	}
	if (r->op != CAPF__OPERATION__OP_INSTALL) {
		result_text(r, "the server asks for operation %s, which this phone does not do",
			    op_name(in->op_request->op));
		ret = CAPF_ENOTSUP;
		goto out;
	}
	key_type = o->key_type ? o->key_type : (int)in->op_request->key_type;
	capf__phone_message__free_unpacked(in, NULL);
	in = NULL;

	if (o->misbehave & PHONE_OVERSIZED_FRAME) {
		uint8_t hdr[FRAME_HEADER_LEN];

		frame_write_header(hdr, 1024u * 1024u);
		ret = send_or_collect(&t, r, hdr, sizeof(hdr), NULL);
		if (ret < 0)
			goto out;
		/* Only an Error (a negated server code) is the right answer. */
		ret = recv_expect(&t, r, CAPF__PHONE_MESSAGE__BODY__NOT_SET, &in);
		goto out;
	}

	r->key_type = key_type;
	if (o->reuse_key) {
		/* A phone that retries after losing the delivery keeps the key
		 * it made: the server then delivers the same certificate. */
		if (gnutls_x509_privkey_init(&key) < 0 ||
		    gnutls_x509_privkey_cpy(key, o->reuse_key) < 0) {
			result_text(r, "cannot use the key to reuse");
			ret = CAPF_ECRYPTO;
			goto out;
		}
		ret = 0;
	} else {
		ret = pki_gen_key(key_type, &key);
	}
	if (ret < 0) {
		result_text(r, "cannot make a %s key: %s", key_type_name(key_type),
			    capf_strerror(ret));
		goto out;
	}
	if (o->misbehave & PHONE_BAD_BINDING)
		ret = gnutls_rnd(GNUTLS_RND_NONCE, binding, sizeof(binding)) < 0 ? CAPF_ECRYPTO : 0;
	else
		ret = pki_tls_binding(t.session, binding);
	if (ret == 0)
		ret = pki_make_csr(key, o->name, binding, sizeof(binding), &csr, &csr_len);
	if (ret < 0) {
		result_text(r, "cannot make the CSR: %s", capf_strerror(ret));
		goto out;
	}
	stall(o, PHONE_STEP_CSR);
	/* The last byte of a PKCS#10 DER is the last byte of its signature. */
	if (o->misbehave & PHONE_BAD_CSR_SIGNATURE)
		csr[csr_len - 1] ^= 0x01;
	csr_msg.csr.data = csr;
	csr_msg.csr.len = csr_len;
	out.body_case = CAPF__PHONE_MESSAGE__BODY_CSR;
	out.csr = &csr_msg;
	ret = send_or_collect(&t, r, NULL, 0, &out);
	if (ret < 0)
		goto out;
	ret = recv_expect(&t, r, CAPF__PHONE_MESSAGE__BODY_CERTIFICATE, &in);
	if (ret < 0)
		goto out;
	ret = check_lsc(o, trust, key, &in->certificate->certificate, in->certificate->chain,
			in->certificate->n_chain, r, &ack_code);
	capf__phone_message__free_unpacked(in, NULL);
	in = NULL;
	if (ret == 0 && (o->misbehave & PHONE_NO_ACK)) {
		abort_session = true;
		goto out;
	}

	stall(o, PHONE_STEP_ACK);
	ack.code = ack_code;
	out.body_case = CAPF__PHONE_MESSAGE__BODY_STORE_ACK;
	out.store_ack = &ack;
	if (ret < 0) {
		/* Tell the server the certificate was refused; keep our own reason. */
		(void)client_phone_send(&t, &out);
		goto out;
	}
	ret = send_or_collect(&t, r, NULL, 0, &out);
	if (ret < 0)
		goto out;
	ret = recv_expect(&t, r, CAPF__PHONE_MESSAGE__BODY_END, &in);
	if (ret < 0)
		goto out;
	result_text(r, "%s", in->end->text ? in->end->text : "");
	r->acked = true;
	ret = 0;
out:
	if (ret == 0) {
		r->stage = PHONE_STAGE_DONE;
		r->key = key;
		key = NULL;
	}
	if (t.rec)
		transcript_end(t.rec, ret, r->server_code, r->text);
	if (in)
		capf__phone_message__free_unpacked(in, NULL);
	if (key)
		gnutls_x509_privkey_deinit(key);
	free(csr);
	gnutls_memset(binding, 0, sizeof(binding));
	if (abort_session)
		tls_abort(&t);
	else
		client_tls_close(&t);
	client_trust_deinit(&own_trust);
	return ret;
}

void phone_enroll_result_deinit(struct phone_enroll_result *r)
{
	free(r->lsc_der);
	r->lsc_der = NULL;
	r->lsc_len = 0;
	if (r->key)
		gnutls_x509_privkey_deinit(r->key);
	r->key = NULL;
}

/* ---- output helpers --------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];
	size_t n, i;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and values past U+10FFFF are invalid. */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void client_json_string(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;

	if (!s) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	while (*p) {
		switch (*p) {
		case '"':
			fputs("\\\"", f);
			p++;
			continue;
		case '\\':
			fputs("\\\\", f);
			p++;
			continue;
		case '\n':
			fputs("\\n", f);
			p++;
			continue;
		case '\r':
			fputs("\\r", f);
			p++;
			continue;
		case '\t':
			fputs("\\t", f);
			p++;
			continue;
		default:
			break;
		}
		if (*p < 0x20 || *p == 0x7f) {
			fprintf(f, "\\u%04x", *p);
			p++;
			continue;
		}
		n = utf8_len(p);
		if (n == 0) {
			fputs("\\ufffd", f);
			p++;
			continue;
		}
		fwrite(p, 1, n, f);
		p += n;
	}
	fputc('"', f);
}

void client_csv_field(FILE *f, const char *s)
{
	/* A spreadsheet runs a cell that begins with one of these as a
	 * formula (CSV injection): a quote mark before it makes it text. */
	bool formula = s && *s && strchr("=+-@\t\r", *s) != NULL;

	if (!s)
		return;
	if (!strpbrk(s, ",\"\r\n")) {
		if (formula)
			fputc('\'', f);
		fputs(s, f);
		return;
	}
	fputc('"', f);
	if (formula)
		fputc('\'', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

/* Optimal string alignment distance, bounded: words here are short. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t d[33][33];

	if (la > 32 || lb > 32)
		return SIZE_MAX;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] != b[j - 1];
			size_t v = d[i - 1][j] + 1;

			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + cost < v)
				v = d[i - 1][j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	}
	return d[la][lb];
}

const char *client_nearest(const char *word, const char *const *cands, size_t n)
{
	const char *best = NULL;
	size_t best_d = SIZE_MAX, wl;

	if (word == NULL || *word == '\0')
		return NULL;
	wl = strlen(word);
	for (size_t i = 0; i < n; i++) {
		size_t dist;

		if (cands[i] == NULL)
			continue;
		dist = edit_distance(word, cands[i]);
		if (wl >= 3 && strncmp(cands[i], word, wl) == 0)
			dist = 1; /* an abbreviation */
		if (dist < best_d) {
			best_d = dist;
			best = cands[i];
		}
	}
	if (best_d > (wl <= 4 ? 1u : 2u))
		return NULL;
	return best;
}

char *client_time_iso(int64_t t, char *buf, size_t buflen)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (buflen == 0)
		return buf;
	if ((int64_t)tt != t || !gmtime_r(&tt, &tm) ||
	    strftime(buf, buflen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, buflen, "%lld", (long long)t);
	return buf;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char *s, size_t n, unsigned *out)
{
	unsigned v = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return 0;
}

int client_parse_date(const char *s, int64_t *out)
{
	static const unsigned mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	unsigned y, m, d, hh = 23, mm = 59, ss = 59, dim;
	size_t len;

	if (!s)
		return CAPF_EINVAL;
	len = strlen(s);
	if (len != 10 && len != 20)
		return CAPF_EINVAL;
	if (s[4] != '-' || s[7] != '-' || digits(s, 4, &y) || digits(s + 5, 2, &m) ||
	    digits(s + 8, 2, &d))
		return CAPF_EINVAL;
	if (len == 20) {
		if (s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != 'Z' ||
		    digits(s + 11, 2, &hh) || digits(s + 14, 2, &mm) || digits(s + 17, 2, &ss))
			return CAPF_EINVAL;
		if (hh > 23 || mm > 59 || ss > 59)
			return CAPF_EINVAL;
	}
	if (y < 1970 || m < 1 || m > 12 || d < 1)
		return CAPF_EINVAL;
	dim = mdays[m - 1];
	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		dim = 29;
	if (d > dim)
		return CAPF_EINVAL;
	*out = days_from_civil(y, m, d) * 86400 + (int64_t)hh * 3600 + mm * 60 + ss;
	return 0;
}

char *client_hex(const uint8_t *data, size_t len)
{
	char *s;

	if (len > (SIZE_MAX - 1) / 2)
		return NULL;
	s = malloc(2 * len + 1);
	if (!s)
		return NULL;
	if (len)
		hex_encode(data, len, s);
	else
		s[0] = '\0';
	return s;
}
