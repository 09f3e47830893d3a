/*
 * capf/signer_sup.c - capfd keeps its signer process running. It is the
 * same program, re-executed with the hidden --signer option: one binary
 * to install and to find (no libexec path that differs between the build
 * tree and an installation), always the same version as capfd. What the
 * signer needs arrives as one Init message on a pipe that becomes its
 * stdin, never on the command line, where a PIN in a pkcs11: URI would
 * be visible to every user.
 *
 * Everything here runs on capfd's main loop; the exit callback is how a
 * crash of the signer becomes a log line and a restart, never an exit of
 * capfd.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "capf/log.h"
#include "capf/signer.h"
#include "proto/proto.h"
#include "proto/signer.pb-c.h"

#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 5000u
#define STABLE_MS 10000u /* a signer that lived this long restarts at once */
#define STOP_KILL_MS 2000u /* after SIGTERM at shutdown, SIGKILL */

struct signer_sup {
	uv_loop_t *loop;
	uv_process_t proc;
	uv_timer_t timer;
	char exe[PATH_MAX];
	char *socket, *ca_dir, *key;
	unsigned delay_ms;
	int log_level, log_syslog;
	unsigned backoff_ms;
	uint64_t started;
	int pid;
	bool running, stopping;
	int handles;
};

static int spawn(struct signer_sup *s);

static void sup_free(struct signer_sup *s)
{
	free(s->socket);
	free(s->ca_dir);
	if (s->key != NULL) {
		gnutls_memset(s->key, 0, strlen(s->key));
		free(s->key);
	}
	free(s);
}

static void on_closed(uv_handle_t *h)
{
	struct signer_sup *s = h->data;

	if (--s->handles == 0 && s->stopping)
		sup_free(s);
}

static void on_restart_timer(uv_timer_t *t)
{
	struct signer_sup *s = t->data;
	int ret;

	if (s->stopping)
		return;
	ret = spawn(s);
	if (ret < 0) {
		log_err("cannot restart the signer: %s; trying again in %u ms", uv_strerror(ret),
			s->backoff_ms);
		uv_timer_start(&s->timer, on_restart_timer, s->backoff_ms, 0);
		if (s->backoff_ms < BACKOFF_MAX_MS)
			s->backoff_ms *= 2;
	}
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
	struct signer_sup *s = p->data;
	uint64_t lived = uv_now(s->loop) - s->started;

	s->running = false;
	s->pid = 0;
	uv_close((uv_handle_t *)p, on_closed);
	if (s->stopping) {
		uv_close((uv_handle_t *)&s->timer, on_closed);
		return;
	}
	if (lived >= STABLE_MS)
		s->backoff_ms = BACKOFF_MIN_MS;
	if (sig != 0)
		log_err("signer exited on signal %d; restarting in %u ms", sig, s->backoff_ms);
	else
		log_err("signer exited with status %lld; restarting in %u ms", (long long)status,
			s->backoff_ms);
	uv_timer_start(&s->timer, on_restart_timer, s->backoff_ms, 0);
	if (s->backoff_ms < BACKOFF_MAX_MS)
		s->backoff_ms *= 2;
	if (s->backoff_ms > BACKOFF_MAX_MS)
		s->backoff_ms = BACKOFF_MAX_MS;
}

/* The Init message, written to the pipe the child reads as stdin. */
static int write_init(const struct signer_sup *s, int fd)
{
	Capf__Signer__Init init = CAPF__SIGNER__INIT__INIT;
	uint8_t *frame;
	size_t len, off = 0;
	int ret = 0;

	init.socket = s->socket;
	init.ca_dir = s->ca_dir;
	init.key = s->key != NULL ? s->key : "";
	init.delay_ms = s->delay_ms;
	init.parent_pid = (uint32_t)getpid();
	init.log_level = s->log_level;
	init.log_syslog = s->log_syslog != 0;
	len = capf__signer__init__get_packed_size(&init);
	frame = malloc(FRAME_HEADER_LEN + len);
	if (frame == NULL)
		return UV_ENOMEM;
	frame_write_header(frame, (uint32_t)len);
	capf__signer__init__pack(&init, frame + FRAME_HEADER_LEN);
	len += FRAME_HEADER_LEN;
	/* A few hundred bytes into an empty pipe: this does not block. */
	while (off < len) {
		ssize_t n = write(fd, frame + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = -errno;
			break;
		}
		off += (size_t)n;
	}
	gnutls_memset(frame, 0, len);
	free(frame);
	return ret;
}

static int spawn(struct signer_sup *s)
{
	char *args[] = {"capfd-signer", "--signer", NULL};
	uv_stdio_container_t stdio[3];
	uv_process_options_t opts;
	int fds[2], ret;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	memset(&opts, 0, sizeof(opts));
	stdio[0].flags = UV_INHERIT_FD;
	stdio[0].data.fd = fds[0];
	stdio[1].flags = UV_IGNORE;
	stdio[2].flags = UV_INHERIT_FD;
	stdio[2].data.fd = STDERR_FILENO;
	opts.file = s->exe;
	opts.args = args;
	opts.stdio = stdio;
	opts.stdio_count = 3;
	opts.exit_cb = on_exit_cb;
	s->proc.data = s;
	ret = uv_spawn(s->loop, &s->proc, &opts);
	close(fds[0]);
	if (ret < 0) {
		close(fds[1]);
		/* uv_spawn() initialised the handle even so: close it. */
		s->handles++;
		uv_close((uv_handle_t *)&s->proc, on_closed);
		return ret;
	}
	s->handles++;
	s->running = true;
	s->pid = s->proc.pid;
	s->started = uv_now(s->loop);
	ret = write_init(s, fds[1]);
	close(fds[1]);
	if (ret < 0) {
		/* It exits without its Init; the exit callback restarts it. */
		log_err("cannot hand the signer its configuration: %s", uv_strerror(ret));
		uv_process_kill(&s->proc, SIGTERM);
	}
	log_info("signer started (pid %d)", s->pid);
	return 0;
}

int signer_sup_start(uv_loop_t *loop, const struct signer_params *p, struct signer_sup **out)
{
	struct signer_sup *s;
	ssize_t n;
	int ret;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return UV_ENOMEM;
	s->loop = loop;
	n = readlink("/proc/self/exe", s->exe, sizeof(s->exe) - 1);
	if (n <= 0) {
		free(s);
		return UV_ENOENT;
	}
	s->exe[n] = '\0';
	s->socket = strdup(p->socket);
	s->ca_dir = strdup(p->ca_dir);
	s->key = p->key != NULL ? strdup(p->key) : NULL;
	if (s->socket == NULL || s->ca_dir == NULL || (p->key != NULL && s->key == NULL)) {
		sup_free(s);
		return UV_ENOMEM;
	}
	s->delay_ms = p->delay_ms;
	s->log_level = p->log_level;
	s->log_syslog = p->log_syslog;
	s->backoff_ms = BACKOFF_MIN_MS;
	uv_timer_init(loop, &s->timer);
	s->timer.data = s;
	s->handles = 1;
	ret = spawn(s);
	if (ret < 0) {
		s->stopping = true;
		uv_close((uv_handle_t *)&s->timer, on_closed);
		return ret;
	}
	*out = s;
	return 0;
}

int signer_sup_pid(const struct signer_sup *s)
{
	return s != NULL ? s->pid : 0;
}

/* A signer that does not end on SIGTERM (stopped, or stuck in a token
 * call) must not keep capfd from exiting. */
static void on_kill_timer(uv_timer_t *t)
{
	struct signer_sup *s = t->data;

	if (s->running) {
		log_warn("the signer (pid %d) did not stop; killing it", s->pid);
		uv_process_kill(&s->proc, SIGKILL);
	}
}

void signer_sup_stop(struct signer_sup *s)
{
	if (s == NULL || s->stopping)
		return;
	s->stopping = true;
	uv_timer_stop(&s->timer);
	if (!s->running) {
		uv_close((uv_handle_t *)&s->timer, on_closed);
		return;
	}
	/* Its exit callback closes the process handle and the timer. */
	uv_process_kill(&s->proc, SIGTERM);
	uv_timer_start(&s->timer, on_kill_timer, STOP_KILL_MS, 0);
}
