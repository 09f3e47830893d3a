/*
 * capf/log.h - capfd's logging: one line per event, to stderr (with a
 * timestamp) or to syslog, filtered by level. Thread-safe.
 */
#ifndef CAPF_LOG_H
#define CAPF_LOG_H

#include <stdbool.h>

enum log_level { LOG_LVL_ERR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* log_init() - set the minimum level and the destination (syslog if
 * use_syslog, else stderr). Call once, before threads start. */
void log_init(enum log_level level, bool use_syslog);

/* log_set_level() - change the minimum level (at any time, any thread). */
void log_set_level(enum log_level level);

/* log_level_from_name() - "error", "warning", "info", "debug" -> level;
 * returns -1 for an unknown name. */
int log_level_from_name(const char *name);

/* log_enabled() - whether a message of this level would be written. */
bool log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * A rate limit for lines that anyone on the network can cause (a failed
 * handshake, a refused connection, a phone that went away): at most
 * burst of them per interval seconds; the rest are counted, and the next
 * line allowed says how many were left out. Zero-initialise one per kind
 * of line (static); thread-safe.
 */
struct log_limit {
	unsigned burst;
	unsigned interval;
	/* private */
	long window;
	unsigned used;
	unsigned long suppressed;
};

#define LOG_LIMIT_INIT(burst, interval) { (burst), (interval), 0, 0, 0 }

/* log_limited() - log_msg() under limit l. */
void log_limited(struct log_limit *l, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_err(...) log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif /* CAPF_LOG_H */
