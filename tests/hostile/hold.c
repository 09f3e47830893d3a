/*
 * tests/hostile/hold - a slowloris client for the hostile tests: open
 * connections to a server and never finish the TLS handshake, then report
 * how the server treated them.
 *
 *   hold HOST PORT COUNT SECONDS [SOURCES [PARTIAL]]
 *
 * COUNT connections, spread over SOURCES local addresses 127.0.1.1,
 * 127.0.1.2, ... (default 1: 127.0.1.1), so that a per-source limit can be
 * stayed under or gone over on purpose. PARTIAL 1 sends the first 5 bytes
 * of a TLS record (a handshake record header) and nothing more. Each
 * connection is then watched for SECONDS: the server closing it (EOF or
 * reset) is noted with its time since the connection was opened.
 * Prints one line:
 *   opened N refused R closed C early E max_ms M
 * (refused: connect failed; early: closed within 500 ms of opening, as a
 * connection over a limit is; max_ms: the latest close). Exit 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 4096

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	static struct pollfd pfd[MAX_CONNS];
	static double opened_at[MAX_CONNS], closed_at[MAX_CONNS];
	static const unsigned char partial[5] = { 0x16, 0x03, 0x01, 0x02, 0x00 };
	struct sockaddr_in dst, src;
	unsigned count, sources = 1, i, opened = 0, refused = 0, closed = 0, early = 0;
	double seconds, end, max_ms = 0;
	int send_partial = 0;

	if (argc < 5) {
		fprintf(stderr, "usage: hold HOST PORT COUNT SECONDS [SOURCES [PARTIAL]]\n");
		return 2;
	}
	count = (unsigned)atoi(argv[3]);
	seconds = atof(argv[4]);
	if (argc > 5)
		sources = (unsigned)atoi(argv[5]);
	if (argc > 6)
		send_partial = atoi(argv[6]);
	if (count == 0 || count > MAX_CONNS || sources == 0 || sources > 250 || seconds <= 0) {
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
	for (i = 0; i < count; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		char ip[32];

		pfd[i].fd = -1;
		if (fd < 0) {
			refused++;
			continue;
		}
		memset(&src, 0, sizeof(src));
		src.sin_family = AF_INET;
		snprintf(ip, sizeof(ip), "127.0.1.%u", 1 + i % sources);
		inet_pton(AF_INET, ip, &src.sin_addr);
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0 ||
		    connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0) {
			close(fd);
			refused++;
			continue;
		}
		if (send_partial && write(fd, partial, sizeof(partial)) < 0) {
			close(fd);
			refused++;
			continue;
		}
		pfd[i].fd = fd;
		pfd[i].events = POLLIN;
		opened_at[i] = now_ms();
		closed_at[i] = 0;
		opened++;
	}
	end = now_ms() + seconds * 1e3;
	while (now_ms() < end && closed < opened) {
		int n = poll(pfd, count, 50);

		if (n < 0 && errno != EINTR)
			break;
		for (i = 0; n > 0 && i < count; i++) {
			char buf[512];
			ssize_t r;

			if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = read(pfd[i].fd, buf, sizeof(buf));
			if (r > 0)
				continue; /* an alert, say: not closed yet */
			closed_at[i] = now_ms() - opened_at[i];
			close(pfd[i].fd);
			pfd[i].fd = -1;
			closed++;
			if (closed_at[i] < 500)
				early++;
			if (closed_at[i] > max_ms)
				max_ms = closed_at[i];
		}
	}
	for (i = 0; i < count; i++)
		if (pfd[i].fd >= 0)
			close(pfd[i].fd);
	printf("opened %u refused %u closed %u early %u max_ms %.0f\n", opened, refused, closed,
	       early, max_ms);
	return 0;
}
