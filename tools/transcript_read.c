/*
 * tools/transcript_read.c - reading session transcripts (JSON lines,
 * doc/transcript.md): a deliberately small parser of flat JSON objects. A
 * transcript never nests, so anything nested is an error rather than
 * something to skip. The writer is tools/transcript.c.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "proto/proto.h"
#include "tools/transcript.h"

/* One value of a flat JSON object. Strings are decoded (NUL-terminated;
 * an escaped NUL is refused, so that C strings are the whole value). */
enum jkind { J_STRING, J_NUMBER, J_BOOL, J_NULL };

struct jfield {
	char *key;
	enum jkind kind;
	char *str;
	double num;
};

#define JFIELDS_MAX 32u

struct jobject {
	struct jfield f[JFIELDS_MAX];
	size_t n;
};

static void jobject_free(struct jobject *o)
{
	for (size_t i = 0; i < o->n; i++) {
		free(o->f[i].key);
		free(o->f[i].str);
	}
	o->n = 0;
}

struct jparser {
	const char *p, *end;
	const char *why;
};

static void skip_ws(struct jparser *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\r'))
		j->p++;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Parses a JSON string at j->p into a new buffer (UTF-8). */
static int parse_string(struct jparser *j, char **out)
{
	size_t cap, n = 0;
	char *s;

	*out = NULL;
	if (j->p >= j->end || *j->p != '"') {
		j->why = "a string was expected";
		return CAPF_EBADMSG;
	}
	j->p++;
	/* The decoded string is never longer than the encoded one. */
	cap = (size_t)(j->end - j->p) + 1;
	s = malloc(cap);
	if (!s)
		return CAPF_ENOMEM;
	for (;;) {
		unsigned char c;

		if (j->p >= j->end) {
			j->why = "unterminated string";
			goto bad;
		}
		c = (unsigned char)*j->p++;
		if (c == '"')
			break;
		if (c < 0x20) {
			j->why = "control character in a string";
			goto bad;
		}
		if (c != '\\') {
			s[n++] = (char)c;
			continue;
		}
		if (j->p >= j->end) {
			j->why = "unterminated escape";
			goto bad;
		}
		c = (unsigned char)*j->p++;
		switch (c) {
		case '"':
		case '\\':
		case '/':
			s[n++] = (char)c;
			break;
		case 'b':
			s[n++] = '\b';
			break;
		case 'f':
			s[n++] = '\f';
			break;
		case 'n':
			s[n++] = '\n';
			break;
		case 'r':
			s[n++] = '\r';
			break;
		case 't':
			s[n++] = '\t';
			break;
		case 'u': {
			unsigned cp = 0;

			if (j->end - j->p < 4) {
				j->why = "short \\u escape";
				goto bad;
			}
			for (int i = 0; i < 4; i++) {
				int v = hexval(j->p[i]);

				if (v < 0) {
					j->why = "bad \\u escape";
					goto bad;
				}
				cp = cp << 4 | (unsigned)v;
			}
			j->p += 4;
			if (cp == 0) {
				j->why = "\\u0000 in a string";
				goto bad;
			}
			/* Surrogates (never written by capf) become U+FFFD; the
			 * UTF-8 form of a code point below U+10000 takes at most
			 * 3 bytes, fewer than the 6 of its escape. */
			if (cp >= 0xd800 && cp <= 0xdfff)
				cp = 0xfffd;
			if (cp < 0x80) {
				s[n++] = (char)cp;
			} else if (cp < 0x800) {
				s[n++] = (char)(0xc0 | cp >> 6);
				s[n++] = (char)(0x80 | (cp & 0x3f));
			} else {
				s[n++] = (char)(0xe0 | cp >> 12);
				s[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				s[n++] = (char)(0x80 | (cp & 0x3f));
			}
			break;
		}
		default:
			j->why = "unknown escape";
			goto bad;
		}
	}
	s[n] = '\0';
	*out = s;
	return 0;
bad:
	free(s);
	return CAPF_EBADMSG;
}

static int parse_number(struct jparser *j, double *out)
{
	char buf[64];
	size_t n = 0;
	char *endp;

	while (j->p < j->end && n < sizeof(buf) - 1 &&
	       (strchr("0123456789+-.eE", *j->p) != NULL))
		buf[n++] = *j->p++;
	buf[n] = '\0';
	if (n == 0 || n == sizeof(buf) - 1) {
		j->why = "bad number";
		return CAPF_EBADMSG;
	}
	errno = 0;
	*out = strtod(buf, &endp);
	if (*endp != '\0' || errno != 0 || !isfinite(*out)) {
		j->why = "bad number";
		return CAPF_EBADMSG;
	}
	return 0;
}

static int parse_literal(struct jparser *j, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0) {
		j->why = "unknown value";
		return CAPF_EBADMSG;
	}
	j->p += n;
	return 0;
}

/* Parses one line holding exactly one flat object. */
static int parse_object(const char *line, size_t len, struct jobject *o, const char **why)
{
	struct jparser j = { line, line + len, NULL };
	int ret;

	o->n = 0;
	skip_ws(&j);
	if (j.p >= j.end || *j.p != '{') {
		*why = "not a JSON object";
		return CAPF_EBADMSG;
	}
	j.p++;
	skip_ws(&j);
	if (j.p < j.end && *j.p == '}') {
		j.p++;
		goto tail;
	}
	for (;;) {
		struct jfield *f;

		if (o->n == JFIELDS_MAX) {
			*why = "too many keys";
			return CAPF_EBADMSG;
		}
		f = &o->f[o->n];
		memset(f, 0, sizeof(*f));
		skip_ws(&j);
		ret = parse_string(&j, &f->key);
		if (ret < 0)
			goto fail;
		o->n++;
		for (size_t i = 0; i + 1 < o->n; i++) {
			if (!strcmp(o->f[i].key, f->key)) {
				j.why = "duplicate key";
				ret = CAPF_EBADMSG;
				goto fail;
			}
		}
		skip_ws(&j);
		if (j.p >= j.end || *j.p != ':') {
			j.why = "':' expected";
			ret = CAPF_EBADMSG;
			goto fail;
		}
		j.p++;
		skip_ws(&j);
		if (j.p >= j.end) {
			j.why = "value expected";
			ret = CAPF_EBADMSG;
			goto fail;
		}
		switch (*j.p) {
		case '"':
			f->kind = J_STRING;
			ret = parse_string(&j, &f->str);
			break;
		case 't':
			f->kind = J_BOOL;
			f->num = 1;
			ret = parse_literal(&j, "true");
			break;
		case 'f':
			f->kind = J_BOOL;
			ret = parse_literal(&j, "false");
			break;
		case 'n':
			f->kind = J_NULL;
			ret = parse_literal(&j, "null");
			break;
		case '{':
		case '[':
			j.why = "nested values are not part of the format";
			ret = CAPF_EBADMSG;
			break;
		default:
			f->kind = J_NUMBER;
			ret = parse_number(&j, &f->num);
			break;
		}
		if (ret < 0)
			goto fail;
		skip_ws(&j);
		if (j.p < j.end && *j.p == ',') {
			j.p++;
			continue;
		}
		if (j.p < j.end && *j.p == '}') {
			j.p++;
			break;
		}
		j.why = "',' or '}' expected";
		ret = CAPF_EBADMSG;
		goto fail;
	}
tail:
	skip_ws(&j);
	if (j.p != j.end) {
		*why = "bytes after the object";
		jobject_free(o);
		return CAPF_EBADMSG;
	}
	return 0;
fail:
	*why = j.why ? j.why : "out of memory";
	jobject_free(o);
	return ret;
}

static const struct jfield *jget(const struct jobject *o, const char *key)
{
	for (size_t i = 0; i < o->n; i++)
		if (!strcmp(o->f[i].key, key))
			return &o->f[i];
	return NULL;
}

/* A string member: NULL when absent or not a string. */
static const char *jstr(const struct jobject *o, const char *key)
{
	const struct jfield *f = jget(o, key);

	return f && f->kind == J_STRING ? f->str : NULL;
}

/* An integer member in [min, max]. */
static int jint(const struct jobject *o, const char *key, double min, double max, double *out)
{
	const struct jfield *f = jget(o, key);

	if (!f || f->kind != J_NUMBER || f->num < min || f->num > max)
		return CAPF_EBADMSG;
	*out = f->num;
	return 0;
}

/* Copies an optional string member into a fixed buffer; too long is bad. */
static int copy_opt(const struct jobject *o, const char *key, char *dst, size_t cap)
{
	const char *s = jstr(o, key);

	dst[0] = '\0';
	if (!s)
		return jget(o, key) && jget(o, key)->kind != J_NULL ? CAPF_EBADMSG : 0;
	if (strlen(s) >= cap)
		return CAPF_EBADMSG;
	strcpy(dst, s);
	return 0;
}

/* Decodes a hex string member into a new buffer. */
static int hex_member(const struct jobject *o, const char *key, uint8_t **out, size_t *len)
{
	const char *s = jstr(o, key);
	size_t n;
	int ret;

	*out = NULL;
	*len = 0;
	if (!s)
		return CAPF_EBADMSG;
	n = strlen(s);
	if (n % 2)
		return CAPF_EBADMSG;
	if (n == 0)
		return 0;
	*out = malloc(n / 2);
	if (!*out)
		return CAPF_ENOMEM;
	ret = hex_decode(s, *out, n / 2);
	if (ret < 0 || (size_t)ret != n / 2) {
		free(*out);
		*out = NULL;
		return CAPF_EBADMSG;
	}
	*len = n / 2;
	return 0;
}

static void session_free(struct transcript_session *s)
{
	for (size_t i = 0; i < s->nmsgs; i++)
		free(s->msgs[i].payload);
	free(s->msgs);
	s->msgs = NULL;
	s->nmsgs = 0;
}

static int add_session(struct transcript *t, const struct jobject *o, unsigned line,
		       const char **why)
{
	struct transcript_session *s, *grown;
	uint8_t *b = NULL;
	size_t blen = 0;
	int ret;

	if (t->n >= TRANSCRIPT_SESSIONS_MAX) {
		*why = "too many sessions";
		return CAPF_EBADMSG;
	}
	grown = realloc(t->sessions, (t->n + 1) * sizeof(*grown));
	if (!grown)
		return CAPF_ENOMEM;
	t->sessions = grown;
	s = &t->sessions[t->n];
	memset(s, 0, sizeof(*s));
	s->line = line;
	*why = "bad header field";
	if (copy_opt(o, "protocol", s->protocol, sizeof(s->protocol)) < 0 ||
	    (strcmp(s->protocol, "native") && strcmp(s->protocol, "cisco"))) {
		*why = "protocol is neither native nor cisco";
		return CAPF_EBADMSG;
	}
	if (copy_opt(o, "device", s->device, sizeof(s->device)) < 0 || !s->device[0]) {
		*why = "no device";
		return CAPF_EBADMSG;
	}
	if (copy_opt(o, "tool", s->tool, sizeof(s->tool)) < 0 ||
	    copy_opt(o, "server", s->server, sizeof(s->server)) < 0 ||
	    copy_opt(o, "started", s->started, sizeof(s->started)) < 0 ||
	    copy_opt(o, "client_cert", s->client_cert, sizeof(s->client_cert)) < 0 ||
	    copy_opt(o, "client_cert_sha256", s->client_cert_sha256,
		     sizeof(s->client_cert_sha256)) < 0 ||
	    copy_opt(o, "client_cert_cn", s->client_cert_cn, sizeof(s->client_cert_cn)) < 0 ||
	    copy_opt(o, "tls_version", s->tls_version, sizeof(s->tls_version)) < 0 ||
	    copy_opt(o, "tls_cipher", s->tls_cipher, sizeof(s->tls_cipher)) < 0 ||
	    copy_opt(o, "tls_group", s->tls_group, sizeof(s->tls_group)) < 0 ||
	    copy_opt(o, "server_cert_sha256", s->server_cert_sha256,
		     sizeof(s->server_cert_sha256)) < 0)
		return CAPF_EBADMSG;
	if (jget(o, "binding")) {
		ret = hex_member(o, "binding", &b, &blen);
		if (ret < 0 || blen > sizeof(s->binding)) {
			free(b);
			*why = "bad binding";
			return ret == CAPF_ENOMEM ? ret : CAPF_EBADMSG;
		}
		if (blen)
			memcpy(s->binding, b, blen);
		s->binding_len = blen;
		free(b);
	}
	t->n++;
	return 0;
}

static int add_msg(struct transcript_session *s, const struct jobject *o, const char **why)
{
	struct transcript_msg *m, *grown;
	const char *dir, *type;
	double v;
	int ret;

	if (s->ended) {
		*why = "a message after the session's end";
		return CAPF_EBADMSG;
	}
	if (s->nmsgs >= TRANSCRIPT_MSGS_MAX) {
		*why = "too many messages in one session";
		return CAPF_EBADMSG;
	}
	if (jint(o, "i", 0, TRANSCRIPT_MSGS_MAX, &v) < 0 || (size_t)v != s->nmsgs) {
		*why = "message index out of sequence";
		return CAPF_EBADMSG;
	}
	dir = jstr(o, "dir");
	type = jstr(o, "type");
	if (!dir || (strcmp(dir, "phone") && strcmp(dir, "server"))) {
		*why = "dir is neither phone nor server";
		return CAPF_EBADMSG;
	}
	if (!type || !type[0] || strlen(type) >= sizeof(m->type)) {
		*why = "bad type";
		return CAPF_EBADMSG;
	}
	grown = realloc(s->msgs, (s->nmsgs + 1) * sizeof(*grown));
	if (!grown)
		return CAPF_ENOMEM;
	s->msgs = grown;
	m = &s->msgs[s->nmsgs];
	memset(m, 0, sizeof(*m));
	m->index = (unsigned)s->nmsgs;
	m->dir = strcmp(dir, "phone") ? TRANSCRIPT_SERVER : TRANSCRIPT_PHONE;
	strcpy(m->type, type);
	if (jint(o, "t", 0, 1e9, &m->t) < 0) {
		*why = "bad time offset";
		return CAPF_EBADMSG;
	}
	if (s->nmsgs > 0 && m->t < s->msgs[s->nmsgs - 1].t) {
		*why = "time goes backwards";
		return CAPF_EBADMSG;
	}
	ret = hex_member(o, "payload", &m->payload, &m->len);
	if (ret < 0) {
		*why = "bad payload";
		return ret;
	}
	if (jint(o, "len", 0, TRANSCRIPT_LINE_MAX, &v) < 0 || (size_t)v != m->len) {
		free(m->payload);
		*why = "len is not the payload's length";
		return CAPF_EBADMSG;
	}
	/* Optional: the message went in two records. */
	if (jget(o, "split")) {
		if (jint(o, "split", 1, TRANSCRIPT_LINE_MAX, &v) < 0 || (size_t)v >= m->len) {
			free(m->payload);
			*why = "split is not inside the payload";
			return CAPF_EBADMSG;
		}
		m->split = (size_t)v;
	}
	s->nmsgs++;
	return 0;
}

static int add_end(struct transcript_session *s, const struct jobject *o, const char **why)
{
	double v;

	if (s->ended) {
		*why = "a second end";
		return CAPF_EBADMSG;
	}
	if (jint(o, "t", 0, 1e9, &s->end_t) < 0) {
		*why = "bad time offset";
		return CAPF_EBADMSG;
	}
	if (jint(o, "result", -1000000, 0, &v) < 0) {
		*why = "bad result";
		return CAPF_EBADMSG;
	}
	s->result = (int)v;
	if (jint(o, "server_code", 0, 1000000, &v) < 0) {
		*why = "bad server_code";
		return CAPF_EBADMSG;
	}
	s->server_code = (int)v;
	if (copy_opt(o, "text", s->end_text, sizeof(s->end_text)) < 0) {
		*why = "bad text";
		return CAPF_EBADMSG;
	}
	s->ended = true;
	return 0;
}

static int parse_line(struct transcript *t, const char *line, size_t len, unsigned lineno,
		      const char **why)
{
	struct jobject o;
	const char *kind;
	double v;
	int ret;

	ret = parse_object(line, len, &o, why);
	if (ret < 0)
		return ret;
	if (jint(&o, "transcript", 0, 1e9, &v) < 0) {
		*why = "no transcript version";
		ret = CAPF_EBADMSG;
		goto out;
	}
	if (v != TRANSCRIPT_VERSION) {
		*why = "a transcript version this program does not read";
		ret = CAPF_EBADMSG;
		goto out;
	}
	kind = jstr(&o, "kind");
	if (!kind) {
		*why = "no kind";
		ret = CAPF_EBADMSG;
		goto out;
	}
	if (!strcmp(kind, "session")) {
		ret = add_session(t, &o, lineno, why);
	} else if (!strcmp(kind, "msg") || !strcmp(kind, "end")) {
		if (t->n == 0) {
			*why = "a record before any session header";
			ret = CAPF_EBADMSG;
			goto out;
		}
		if (!strcmp(kind, "msg"))
			ret = add_msg(&t->sessions[t->n - 1], &o, why);
		else
			ret = add_end(&t->sessions[t->n - 1], &o, why);
	} else {
		*why = "unknown kind";
		ret = CAPF_EBADMSG;
	}
out:
	jobject_free(&o);
	return ret;
}

int transcript_parse(const char *data, size_t len, struct transcript *t, char *err,
		     size_t errlen)
{
	const char *p = data, *end = data + len;
	const char *why = NULL;
	unsigned lineno = 0;
	int ret;

	if (errlen)
		err[0] = '\0';
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

		lineno++;
		if (n > TRANSCRIPT_LINE_MAX) {
			why = "line too long";
			ret = CAPF_EBADMSG;
			goto fail;
		}
		if (memchr(p, '\0', n)) {
			why = "NUL byte";
			ret = CAPF_EBADMSG;
			goto fail;
		}
		/* Blank lines (a file joined from others) are allowed. */
		if (n > 0 && !(n == 1 && p[0] == '\r')) {
			ret = parse_line(t, p, n, lineno, &why);
			if (ret < 0)
				goto fail;
		}
		p += n + (nl ? 1 : 0);
	}
	return 0;
fail:
	if (errlen)
		snprintf(err, errlen, "line %u: %s", lineno,
			 ret == CAPF_ENOMEM ? "out of memory" : why ? why : "bad record");
	return ret;
}

int transcript_load(const char *path, struct transcript *t, char *err, size_t errlen)
{
	gnutls_datum_t d = { NULL, 0 };
	int ret;

	if (gnutls_load_file(path, &d) < 0) {
		if (errlen)
			snprintf(err, errlen, "cannot read %s", path);
		return CAPF_EIO;
	}
	ret = transcript_parse((const char *)d.data, d.size, t, err, errlen);
	gnutls_free(d.data);
	return ret;
}

void transcript_free(struct transcript *t)
{
	for (size_t i = 0; i < t->n; i++)
		session_free(&t->sessions[i]);
	free(t->sessions);
	t->sessions = NULL;
	t->n = 0;
}
