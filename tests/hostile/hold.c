/*
 * tests/hostile/hold - a slowloris client for the hostile tests: open
 * connections to a server and never finish the TLS handshake, or finish
 * it and never finish a frame, then report how the server treated them.
 *
 *   hold HOST PORT COUNT SECONDS [SOURCES [MODE [FIRST]]]
 *
 * COUNT connections (up to 4096; mind the open-files limit), spread over
 * SOURCES local addresses 127.0.1.FIRST, 127.0.1.FIRST+1, ... (default 1
 * address, FIRST 1), so that a per-source limit can be stayed under or gone
 * over on purpose. MODE says what each connection sends:
 *   0  nothing (the default);
 *   1  the first 5 bytes of a TLS record (a handshake record header);
 *   2  a whole TLS ClientHello, and nothing after it: the server answers
 *      (and signs its part of the handshake) and waits for the Finished;
 *   3  a whole TLS handshake, then 6 bytes of a frame whose header
 *      announces 64 (the phone's Hello never completes);
 *   4  a whole TLS handshake, then a frame of 64 bytes one byte a second,
 *      each byte in a record of its own (a drip that never ends a frame).
 * Each connection is then watched for SECONDS: the server closing it (EOF or
 * reset) is noted with its time since the connection was opened. In modes
 * 3 and 4 what the server sends is decrypted; an Error message is counted
 * by its code.
 * Prints one line:
 *   opened N refused R closed C early E max_ms M min_ms m errors X code K
 * (refused: connect or handshake failed; early: closed within 500 ms of
 * opening, as a connection over a limit is; max_ms/min_ms: the latest and
 * the earliest close; errors: Error messages received, modes 3 and 4;
 * code: the code of the last of them, 0 if none). Exit 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "proto/proto.h"

#define MAX_CONNS 4096
#define FRAME_ANNOUNCED 64u

struct held {
	gnutls_session_t tls; /* modes 3 and 4 */
	double opened_at;
	double next_drip;
	unsigned dripped;
	uint8_t in[512]; /* what the server sent, decrypted */
	size_t in_len;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* A client session on fd that trusts anything: the server's identity does
 * not matter to a slowloris. */
static int tls_start(gnutls_certificate_credentials_t cred, int fd, gnutls_session_t *out)
{
	gnutls_session_t s;

	if (gnutls_init(&s, GNUTLS_CLIENT) < 0)
		return -1;
	if (gnutls_priority_set_direct(s, "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2", NULL) < 0 ||
	    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred) < 0) {
		gnutls_deinit(s);
		return -1;
	}
	gnutls_transport_set_int(s, fd);
	*out = s;
	return 0;
}

/* Mode 2: the handshake never reads the server's flight, however soon it
 * is there, so it cannot complete. */
static ssize_t pull_never(gnutls_transport_ptr_t p, void *data, size_t len)
{
	(void)p;
	(void)data;
	(void)len;
	errno = EAGAIN;
	return -1;
}

/* Modes 3 and 4: a frame announcing FRAME_ANNOUNCED bytes, of which the
 * server gets the first 6 (mode 3) or one more each second (mode 4). */
static uint8_t frame[FRAME_HEADER_LEN + FRAME_ANNOUNCED];

static int send_frame_start(struct held *h, int mode)
{
	size_t n = mode == 4 ? 1 : 6;

	h->dripped = (unsigned)n;
	return gnutls_record_send(h->tls, frame, n) == (ssize_t)n ? 0 : -1;
}

/* Decrypted bytes from the server: count each whole Error frame. */
static void take_frames(struct held *h, unsigned *errors, unsigned *code)
{
	while (h->in_len >= FRAME_HEADER_LEN) {
		uint32_t len = ((uint32_t)h->in[0] << 24) | ((uint32_t)h->in[1] << 16) |
			       ((uint32_t)h->in[2] << 8) | h->in[3];
		Capf__PhoneMessage *m = NULL;

		if (len > sizeof(h->in) - FRAME_HEADER_LEN) {
			h->in_len = 0;
			return;
		}
		if (h->in_len < FRAME_HEADER_LEN + len)
			return;
		if (phone_msg_unpack(h->in + FRAME_HEADER_LEN, len, &m) == 0) {
			if (m->body_case == CAPF__PHONE_MESSAGE__BODY_ERROR) {
				(*errors)++;
				*code = m->error->code;
			}
			capf__phone_message__free_unpacked(m, NULL);
		}
		memmove(h->in, h->in + FRAME_HEADER_LEN + len, h->in_len - FRAME_HEADER_LEN - len);
		h->in_len -= FRAME_HEADER_LEN + len;
	}
}

int main(int argc, char **argv)
{
	static struct pollfd pfd[MAX_CONNS];
	static struct held held[MAX_CONNS];
	static const unsigned char partial[5] = { 0x16, 0x03, 0x01, 0x02, 0x00 };
	gnutls_certificate_credentials_t cred = NULL;
	struct sockaddr_in dst, src;
	unsigned count, sources = 1, first = 1, i, opened = 0, refused = 0, closed = 0, early = 0;
	unsigned errors = 0, code = 0;
	double seconds, end, max_ms = 0, min_ms = 0;
	int mode = 0;

	if (argc < 5) {
		fprintf(stderr, "usage: hold HOST PORT COUNT SECONDS [SOURCES [MODE [FIRST]]]\n");
		return 2;
	}
	count = (unsigned)atoi(argv[3]);
	seconds = atof(argv[4]);
	if (argc > 5)
		sources = (unsigned)atoi(argv[5]);
	if (argc > 6)
		mode = atoi(argv[6]);
	if (argc > 7)
		first = (unsigned)atoi(argv[7]);
	if (count == 0 || count > MAX_CONNS || sources == 0 || first == 0 ||
	    first + sources > 255 || seconds <= 0 || seconds > 600 || mode < 0 || mode > 4) {
		fprintf(stderr, "hold: bad arguments\n");
		return 2;
	}
	memset(&dst, 0, sizeof(dst));
	dst.sin_family = AF_INET;
	dst.sin_port = htons((unsigned short)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
		fprintf(stderr, "hold: bad host %s\n", argv[1]);
		return 2;
	}
	frame_write_header(frame, FRAME_ANNOUNCED);
	frame[4] = 0x0a; /* a Hello's first tag, and a length the frame */
	frame[5] = 0x3e; /* holds: only its last byte is missing */
	if (mode >= 2 && gnutls_certificate_allocate_credentials(&cred) < 0) {
		fprintf(stderr, "hold: no TLS credentials\n");
		return 2;
	}
	for (i = 0; i < count; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct held *h = &held[i];
		char ip[32];

		pfd[i].fd = -1;
		h->tls = NULL;
		if (fd < 0) {
			refused++;
			continue;
		}
		memset(&src, 0, sizeof(src));
		src.sin_family = AF_INET;
		snprintf(ip, sizeof(ip), "127.0.1.%u", first + i % sources);
		inet_pton(AF_INET, ip, &src.sin_addr);
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0 ||
		    connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0)
			goto refused;
		h->opened_at = now_ms();
		if (mode == 1 && write(fd, partial, sizeof(partial)) < 0)
			goto refused;
		if (mode == 2) {
			gnutls_session_t s;
			int r;

			/* The ClientHello goes out, and the handshake then
			 * waits for the server's flight, which it never reads:
			 * the watch below reads it raw and throws it away. */
			if (set_nonblock(fd) < 0 || tls_start(cred, fd, &s) < 0)
				goto refused;
			gnutls_transport_set_pull_function(s, pull_never);
			do
				r = gnutls_handshake(s);
			while (r == GNUTLS_E_INTERRUPTED);
			gnutls_deinit(s);
			if (r != GNUTLS_E_AGAIN) {
				fprintf(stderr, "hold: ClientHello: %s\n", gnutls_strerror(r));
				goto refused;
			}
		}
		if (mode >= 3) {
			struct timeval tv = { 10, 0 };
			int r;

			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
			if (tls_start(cred, fd, &h->tls) < 0)
				goto refused;
			do
				r = gnutls_handshake(h->tls);
			while (r < 0 && !gnutls_error_is_fatal(r));
			if (r < 0 || send_frame_start(h, mode) < 0) {
				gnutls_deinit(h->tls);
				h->tls = NULL;
				goto refused;
			}
			/* The clock of a held connection starts once the
			 * server waits for the phone's first message. */
			h->opened_at = now_ms();
			h->next_drip = h->opened_at + 1000;
			if (set_nonblock(fd) < 0) {
				gnutls_deinit(h->tls);
				h->tls = NULL;
				goto refused;
			}
		}
		pfd[i].fd = fd;
		pfd[i].events = POLLIN;
		opened++;
		continue;
refused:
		close(fd);
		refused++;
	}
	end = now_ms() + seconds * 1e3;
	while (now_ms() < end && closed < opened) {
		int n = poll(pfd, count, 50);
		double t = now_ms();

		if (n < 0 && errno != EINTR)
			break;
		for (i = 0; i < count; i++) {
			struct held *h = &held[i];
			char buf[512];
			ssize_t r;

			if (pfd[i].fd < 0)
				continue;
			if (mode == 4 && t >= h->next_drip && h->dripped < sizeof(frame) - 1) {
				/* A failed send is the server gone: the read
				 * below sees it. The last byte is never sent. */
				(void)gnutls_record_send(h->tls, frame + h->dripped, 1);
				h->dripped++;
				h->next_drip = t + 1000;
			}
			if (n <= 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (h->tls != NULL) {
				r = gnutls_record_recv(h->tls, h->in + h->in_len, sizeof(h->in) - h->in_len);
				if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
					continue;
				if (r > 0) {
					h->in_len += (size_t)r;
					take_frames(h, &errors, &code);
					if (h->in_len == sizeof(h->in))
						h->in_len = 0;
					continue;
				}
			} else {
				r = read(pfd[i].fd, buf, sizeof(buf));
				if (r > 0)
					continue; /* an alert, or the server's flight */
				if (r < 0 && (errno == EAGAIN || errno == EINTR))
					continue;
			}
			t = now_ms() - h->opened_at;
			if (h->tls != NULL) {
				gnutls_deinit(h->tls);
				h->tls = NULL;
			}
			close(pfd[i].fd);
			pfd[i].fd = -1;
			closed++;
			if (t < 500)
				early++;
			if (t > max_ms)
				max_ms = t;
			if (closed == 1 || t < min_ms)
				min_ms = t;
			t = now_ms();
		}
	}
	for (i = 0; i < count; i++) {
		if (held[i].tls != NULL)
			gnutls_deinit(held[i].tls);
		if (pfd[i].fd >= 0)
			close(pfd[i].fd);
	}
	if (cred != NULL)
		gnutls_certificate_free_credentials(cred);
	printf("opened %u refused %u closed %u early %u max_ms %.0f min_ms %.0f errors %u code %u\n",
	       opened, refused, closed, early, max_ms, min_ms, errors, code);
	return 0;
}
