#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "capf/log.h"

/* Atomic: a reload (SIGHUP) changes it while every thread logs. */
static _Atomic int min_level = LOG_LVL_INFO;
/* [log] syslog: a datagram socket connected to /dev/log, or -1. syslog(3)
 * says nothing when the daemon is not there, so capfd sends itself: the
 * first failure is said once on stderr and logging goes on there. */
static _Atomic int syslog_fd = -1;
static _Atomic bool syslog_failed;
#define SYSLOG_PATH "/dev/log"

/* The pid of every line, asked of the kernel once per process (it is a
 * system call each time); a child made by fork() asks again. */
static _Atomic pid_t pid_cached;

static void pid_forget(void)
{
	atomic_store(&pid_cached, 0);
}

static void pid_once(void)
{
	(void)pthread_atfork(NULL, NULL, pid_forget);
}

static int log_pid(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pid_t p = atomic_load(&pid_cached);

	if (p == 0) {
		pthread_once(&once, pid_once);
		p = getpid();
		atomic_store(&pid_cached, p);
	}
	return (int)p;
}

static const char *const level_names[] = {
	[LOG_LVL_ERR] = "error",
	[LOG_LVL_WARN] = "warning",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_DEBUG] = "debug",
};


/* Syslog is out of reach: say so once, and log to stderr from now on. */
static void syslog_lost(int err)
{
	int fd = atomic_exchange(&syslog_fd, -1);

	if (atomic_exchange(&syslog_failed, true))
		return;
	if (fd >= 0)
		close(fd);
	fprintf(stderr, "capfd[%d]: cannot log to syslog (" SYSLOG_PATH ": %s): logging to "
			"standard error instead\n",
		log_pid(), strerror(err));
}

void log_init(enum log_level level, bool use_syslog)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	atomic_store(&min_level, (int)level);
	if (!use_syslog)
		return;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", SYSLOG_PATH);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = errno;

		if (fd >= 0)
			close(fd);
		syslog_lost(err);
		return;
	}
	atomic_store(&syslog_fd, fd);
}

/* One message to syslog in the local format ("<PRI>capfd[PID]: text");
 * false if it could not be sent. */
static bool syslog_send(enum log_level level, const char *line)
{
	static const int prio[] = {
		[LOG_LVL_ERR] = LOG_ERR,
		[LOG_LVL_WARN] = LOG_WARNING,
		[LOG_LVL_INFO] = LOG_INFO,
		[LOG_LVL_DEBUG] = LOG_DEBUG,
	};
	char msg[1100];
	int fd = atomic_load(&syslog_fd), n;

	if (fd < 0)
		return false;
	n = snprintf(msg, sizeof(msg), "<%d>capfd[%d]: %s", LOG_DAEMON | prio[level],
		     log_pid(), line);
	if (n < 0)
		return false;
	if ((size_t)n >= sizeof(msg))
		n = (int)sizeof(msg) - 1;
	if (send(fd, msg, (size_t)n, MSG_NOSIGNAL) < 0) {
		if (errno != EAGAIN && errno != EINTR)
			syslog_lost(errno);
		return false; /* this line on stderr */
	}
	return true;
}

void log_set_level(enum log_level level)
{
	atomic_store(&min_level, (int)level);
}

int log_level_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(name, level_names[i]) == 0)
			return (int)i;
	if (strcmp(name, "err") == 0)
		return LOG_LVL_ERR;
	if (strcmp(name, "warn") == 0)
		return LOG_LVL_WARN;
	return -1;
}

bool log_enabled(enum log_level level)
{
	return (int)level <= atomic_load(&min_level);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);

	if (syslog_send(level, line))
		return;

	/* One fprintf per line under the stream lock, so lines from worker
	 * threads never interleave. */
	struct timespec ts;
	struct tm tm;
	char stamp[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	flockfile(stderr);
	fprintf(stderr, "%s.%03ldZ capfd[%d]: %s: %s\n", stamp, ts.tv_nsec / 1000000L, log_pid(),
		level_names[level], line);
	funlockfile(stderr);
}

void log_limited(struct log_limit *l, enum log_level level, const char *fmt, ...)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	struct timespec ts;
	unsigned long suppressed = 0;
	bool allow;
	char line[512];
	va_list ap;
	long w;

	if (!log_enabled(level))
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	w = (long)(ts.tv_sec / (l->interval ? l->interval : 1));
	pthread_mutex_lock(&lock);
	if (w != l->window) {
		l->window = w;
		l->used = 0;
	}
	allow = l->used < (l->burst ? l->burst : 1);
	if (allow) {
		l->used++;
		suppressed = l->suppressed;
		l->suppressed = 0;
	} else {
		l->suppressed++;
	}
	pthread_mutex_unlock(&lock);
	if (!allow)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (suppressed > 0)
		log_msg(level, "%s (and %lu more like it not logged)", line, suppressed);
	else
		log_msg(level, "%s", line);
}
