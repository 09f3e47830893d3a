#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "capf/log.h"

/* Atomic: a reload (SIGHUP) changes it while every thread logs. */
static _Atomic int min_level = LOG_LVL_INFO;
static bool to_syslog;

static const char *const level_names[] = {
	[LOG_LVL_ERR] = "error",
	[LOG_LVL_WARN] = "warning",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_DEBUG] = "debug",
};

static const int syslog_prio[] = {
	[LOG_LVL_ERR] = LOG_ERR,
	[LOG_LVL_WARN] = LOG_WARNING,
	[LOG_LVL_INFO] = LOG_INFO,
	[LOG_LVL_DEBUG] = LOG_DEBUG,
};

void log_init(enum log_level level, bool use_syslog)
{
	atomic_store(&min_level, (int)level);
	to_syslog = use_syslog;
	if (to_syslog)
		openlog("capfd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
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

	if (to_syslog) {
		syslog(syslog_prio[level], "%s", line);
		return;
	}

	/* One fprintf per line under the stream lock, so lines from worker
	 * threads never interleave. */
	struct timespec ts;
	struct tm tm;
	char stamp[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	flockfile(stderr);
	fprintf(stderr, "%s.%03ldZ capfd[%d]: %s: %s\n", stamp, ts.tv_nsec / 1000000L, (int)getpid(),
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
