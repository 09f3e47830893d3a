/*
 * capfctl's --where expressions, parsed into a capf.DeviceFilter (see
 * tools/where.h). The server evaluates the filter; this only reads words.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/client.h"
#include "tools/where.h"

#define WORDS_MAX 64

void where_init(struct where *w)
{
	memset(w, 0, sizeof(*w));
	capf__device_filter__init(&w->f);
	w->f.status = w->status;
	w->f.auth = w->auth;
	w->f.op = w->op;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return CAPF_EINVAL;
}

int where_duration(const char *s, int64_t *out)
{
	char *end = NULL;
	unsigned long long n;
	int64_t unit = 86400;

	if (s == NULL || *s < '0' || *s > '9')
		return CAPF_EINVAL;
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno || n > 100000)
		return CAPF_EINVAL;
	if (*end == 'd' || *end == '\0')
		unit = 86400;
	else if (*end == 'h')
		unit = 3600;
	else if (*end == 'w')
		unit = 7 * 86400;
	else
		return CAPF_EINVAL;
	if (*end != '\0' && end[1] != '\0')
		return CAPF_EINVAL;
	*out = (int64_t)n * unit;
	return 0;
}

int where_cert_state(const char *s, int *out)
{
	for (int v = CAPF__CERT_STATE__CERT_UNCONFIRMED; v <= CAPF__CERT_STATE__CERT_REVOKED; v++)
		if (!strcmp(s, cert_state_name(v))) {
			*out = v;
			return 0;
		}
	return CAPF_EINVAL;
}

static int status_from_name(const char *s, int *out)
{
	for (int v = CAPF__OP_STATUS__STATUS_NONE; v <= CAPF__OP_STATUS__STATUS_FAILED; v++)
		if (!strcmp(s, status_name(v))) {
			*out = v;
			return 0;
		}
	return CAPF_EINVAL;
}

/* A comma-separated list of names, each looked up by from_name, appended
 * to list (of *n, at most WHERE_LIST_MAX). */
static int parse_list(const char *what, const char *words, int (*from_name)(const char *, int *),
		      int *list, size_t *n, char *err, size_t errlen)
{
	char buf[256], *save = NULL, *tok;

	if (strlen(words) >= sizeof(buf))
		return fail(err, errlen, "%s: list too long", what);
	snprintf(buf, sizeof(buf), "%s", words);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int v;

		if (from_name(tok, &v) < 0 ||
		    (from_name == auth_from_name && v == CAPF__AUTH_MODE__AUTH_UNSPECIFIED))
			return fail(err, errlen, "unknown %s '%s'", what, tok);
		if (*n >= WHERE_LIST_MAX)
			return fail(err, errlen, "too many values of %s", what);
		list[(*n)++] = v;
	}
	if (*n == 0)
		return fail(err, errlen, "%s wants a value", what);
	return 0;
}

/* A date for "before"/"after": a bare day means its start (expires before
 * 2027-03-01 leaves out what expires that day). */
static int parse_when(const char *s, int64_t *out)
{
	if (client_parse_date(s, out) < 0)
		return CAPF_EINVAL;
	if (strlen(s) == 10)
		*out -= 86399;
	return 0;
}

/* One condition: words w[0..n-1]. */
static int condition(struct where *w, char **t, size_t n, int64_t now, char *err, size_t errlen)
{
	Capf__DeviceFilter *f = &w->f;
	int64_t when, dur;

	if (n == 2 && !strcmp(t[0], "no") && !strcmp(t[1], "lsc")) {
		f->no_lsc = 1;
		return 0;
	}
	if (n == 2 && !strcmp(t[0], "has") && !strcmp(t[1], "lsc")) {
		f->has_lsc = 1;
		return 0;
	}
	if (n == 1 && (!strcmp(t[0], "unacknowledged") || !strcmp(t[0], "stale"))) {
		f->unacknowledged = 1;
		return 0;
	}
	if (n == 1 && !strcmp(t[0], "failed")) {
		f->failed = 1;
		return 0;
	}
	if (n == 3 && !strcmp(t[0], "name")) {
		if (!strcmp(t[1], "=") || !strcmp(t[1], "is")) {
			if (strpbrk(t[2], "*?[")) {
				if (strlen(t[2]) >= sizeof(w->glob))
					return fail(err, errlen, "pattern too long");
				snprintf(w->glob, sizeof(w->glob), "%s", t[2]);
				f->name_glob = w->glob;
				return 0;
			}
			if (!device_name_valid(t[2]))
				return fail(err, errlen, "'%s' is not a device name", t[2]);
			snprintf(w->name, sizeof(w->name), "%s", t[2]);
			f->name = w->name;
			return 0;
		}
		if (!strcmp(t[1], "prefix")) {
			if (strlen(t[2]) > DEVICE_NAME_MAX)
				return fail(err, errlen, "prefix too long");
			snprintf(w->prefix, sizeof(w->prefix), "%s", t[2]);
			f->name_prefix = w->prefix;
			return 0;
		}
		if (!strcmp(t[1], "like") || !strcmp(t[1], "~")) {
			if (strlen(t[2]) >= sizeof(w->glob))
				return fail(err, errlen, "pattern too long");
			snprintf(w->glob, sizeof(w->glob), "%s", t[2]);
			f->name_glob = w->glob;
			return 0;
		}
		return fail(err, errlen, "name wants '=', 'prefix' or 'like', not '%s'", t[1]);
	}
	if (n == 3 && (!strcmp(t[1], "=") || !strcmp(t[1], "in"))) {
		if (!strcmp(t[0], "status"))
			return parse_list("status", t[2], status_from_name, (int *)w->status,
					  &f->n_status, err, errlen);
		if (!strcmp(t[0], "auth"))
			return parse_list("auth", t[2], auth_from_name, (int *)w->auth, &f->n_auth,
					  err, errlen);
		if (!strcmp(t[0], "op"))
			return parse_list("op", t[2], op_from_name, (int *)w->op, &f->n_op, err,
					  errlen);
	}
	if (n == 3 && !strcmp(t[0], "expires")) {
		if (!strcmp(t[1], "before") || !strcmp(t[1], "after")) {
			if (parse_when(t[2], &when) < 0)
				return fail(err, errlen, "bad date '%s' (YYYY-MM-DD)", t[2]);
			if (t[1][0] == 'b')
				f->expires_before = when;
			else
				f->expires_after = when;
			return 0;
		}
		if (!strcmp(t[1], "within")) {
			if (where_duration(t[2], &dur) < 0)
				return fail(err, errlen, "bad duration '%s' (e.g. 30d, 12h, 2w)",
					    t[2]);
			f->expires_before = now + dur;
			return 0;
		}
		return fail(err, errlen, "expires wants 'before', 'after' or 'within'");
	}
	return fail(err, errlen, "cannot read the condition '%s%s%s%s%s'", n > 0 ? t[0] : "",
		    n > 1 ? " " : "", n > 1 ? t[1] : "", n > 2 ? " " : "", n > 2 ? t[2] : "");
}

int where_parse(struct where *w, const char *expr, int64_t now, char *err, size_t errlen)
{
	char *buf, *save = NULL, *tok, *words[WORDS_MAX];
	size_t n = 0, start = 0;
	int ret = 0;

	if (expr == NULL)
		return fail(err, errlen, "empty condition");
	/* "status=failed" reads as "status = failed". */
	buf = malloc(3 * strlen(expr) + 1);
	if (buf == NULL)
		return fail(err, errlen, "out of memory");
	for (const char *p = expr; *p; p++) {
		if (*p == '=') {
			strcpy(buf + start, " = ");
			start += 3;
		} else {
			buf[start++] = *p;
		}
	}
	buf[start] = '\0';
	start = 0;
	for (tok = strtok_r(buf, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		if (n == WORDS_MAX) {
			ret = fail(err, errlen, "too many words");
			goto out;
		}
		words[n++] = tok;
	}
	if (n == 0) {
		ret = fail(err, errlen, "empty condition");
		goto out;
	}
	for (size_t i = 0; i <= n; i++) {
		if (i < n && strcmp(words[i], "and") != 0)
			continue;
		if (i == start) {
			ret = fail(err, errlen, "'and' without a condition");
			goto out;
		}
		ret = condition(w, words + start, i - start, now, err, errlen);
		if (ret < 0)
			goto out;
		w->conditions++;
		start = i + 1;
	}
out:
	free(buf);
	return ret;
}
