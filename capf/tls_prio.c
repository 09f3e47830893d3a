/*
 * The TLS priorities of a listener, and the group a TLS 1.3 ClientHello's
 * key shares decide.
 *
 * With %SERVER_PRECEDENCE GnuTLS takes the server's order of cipher suites
 * (capfd's default puts AES-128-GCM first: a key schedule and transcript
 * on SHA-256 instead of SHA-384), but also the server's order of groups:
 * it picks the group the server prefers among all those the phone
 * supports, and a phone whose one key share is another group it supports
 * is sent a HelloRetryRequest, a round trip and a second key exchange on
 * its side. So each ClientHello is read before GnuTLS parses it, and of
 * the groups it carries key shares for, the one first in the server's
 * order goes to the front of the session's groups (a priority made for
 * that group when the listener's priorities are made). A phone that
 * offers shares for X25519 and P-256 gets X25519 if the server prefers
 * it; one that offers a P-256 share alone gets P-256 without a retry; one
 * whose shares the server allows none of gets the retry, as before.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capf/log.h"
#include "capf/tls_prio.h"
#include "proto/errcode.h"

/* The TLS ids of the groups GnuTLS 3.7 can use in TLS 1.3 (RFC 8446
 * 4.2.7, RFC 7919); GnuTLS has no public call for them. */
static const struct {
	gnutls_group_t group;
	uint16_t tls_id;
} group_ids[] = {
	{ GNUTLS_GROUP_SECP256R1, 23 }, { GNUTLS_GROUP_SECP384R1, 24 },
	{ GNUTLS_GROUP_SECP521R1, 25 }, { GNUTLS_GROUP_X25519, 29 },
	{ GNUTLS_GROUP_X448, 30 },      { GNUTLS_GROUP_FFDHE2048, 256 },
	{ GNUTLS_GROUP_FFDHE3072, 257 }, { GNUTLS_GROUP_FFDHE4096, 258 },
	{ GNUTLS_GROUP_FFDHE6144, 259 }, { GNUTLS_GROUP_FFDHE8192, 260 },
};

static uint16_t group_tls_id(gnutls_group_t g)
{
	for (size_t i = 0; i < sizeof(group_ids) / sizeof(group_ids[0]); i++)
		if (group_ids[i].group == g)
			return group_ids[i].tls_id;
	return 0;
}

int tls_priority_parse(gnutls_priority_t *out, const char *str, const char **errpos)
{
	int ret;

	ret = gnutls_priority_init2(out, str, errpos, GNUTLS_PRIORITY_INIT_DEF_APPEND);
	if (ret < 0)
		ret = gnutls_priority_init(out, str, errpos);
	if (ret < 0)
		*out = NULL;
	return ret;
}

/* str with the groups of list (n of them) in their order but list[lead]
 * first; NULL when out of memory. */
static char *with_group_first(const char *str, const unsigned *list, unsigned n, unsigned lead)
{
	size_t len = strlen(str) + 32, off;
	char *s;

	for (unsigned i = 0; i < n; i++)
		len += strlen(gnutls_group_get_name(list[i])) + 8;
	s = malloc(len);
	if (s == NULL)
		return NULL;
	off = (size_t)snprintf(s, len, "%s:-GROUP-ALL:+GROUP-%s", str,
			       gnutls_group_get_name(list[lead]));
	for (unsigned i = 0; i < n; i++)
		if (i != lead)
			off += (size_t)snprintf(s + off, len - off, ":+GROUP-%s",
						gnutls_group_get_name(list[i]));
	return s;
}

int tls_prio_init(struct tls_prio *p, const char *what, const char *str)
{
	const unsigned *list = NULL;
	int n, ret;

	const char *errpos = NULL;

	memset(p, 0, sizeof(*p));
	ret = tls_priority_parse(&p->base, str, &errpos);
	if (ret < 0) {
		log_err("invalid %s \"%s\" near \"%s\": %s", what, str,
			errpos != NULL ? errpos : "", gnutls_strerror(ret));
		return CAPF_ECONFIG;
	}
	if (strcasestr(str, "%SERVER_PRECEDENCE") == NULL)
		return 0;
	n = gnutls_priority_group_list(p->base, &list);
	for (int i = 0; i < n && p->ngroups < TLS_PRIO_MAX_GROUPS; i++) {
		uint16_t id = group_tls_id((gnutls_group_t)list[i]);
		const unsigned *got = NULL;
		gnutls_priority_t first = NULL;
		char *s;

		if (id == 0)
			continue;
		s = with_group_first(str, list, (unsigned)n, (unsigned)i);
		if (s == NULL) {
			tls_prio_deinit(p);
			return CAPF_ENOMEM;
		}
		ret = tls_priority_parse(&first, s, &errpos);
		free(s);
		/* The same groups, this one first; else this group is never
		 * put first (the base is valid: nothing to report). */
		if (ret < 0)
			continue;
		if (gnutls_priority_group_list(first, &got) != n || got[0] != list[i]) {
			gnutls_priority_deinit(first);
			continue;
		}
		p->group_id[p->ngroups] = id;
		p->first[p->ngroups++] = first;
	}
	return 0;
}

void tls_prio_deinit(struct tls_prio *p)
{
	if (p->base != NULL)
		gnutls_priority_deinit(p->base);
	for (unsigned i = 0; i < p->ngroups; i++)
		gnutls_priority_deinit(p->first[i]);
	memset(p, 0, sizeof(*p));
}

struct shares {
	uint16_t *ids;
	unsigned max, n;
	int bad;
};

/* KeyShareClientHello (RFC 8446 4.2.8): a 16-bit length, then entries of
 * a 16-bit group and a key with a 16-bit length. */
static int key_share_ext(void *ctx, unsigned tls_id, const unsigned char *data, unsigned size)
{
	struct shares *s = ctx;
	size_t off = 2, total;

	if (tls_id != TLS_EXT_KEY_SHARE)
		return 0;
	if (size < 2 || (total = ((size_t)data[0] << 8 | data[1])) != size - 2U) {
		s->bad = 1;
		return 0;
	}
	while (off < size) {
		size_t klen;

		if (size - off < 4) {
			s->bad = 1;
			return 0;
		}
		klen = (size_t)data[off + 2] << 8 | data[off + 3];
		if (klen == 0 || klen > size - off - 4) {
			s->bad = 1;
			return 0;
		}
		if (s->n < s->max)
			s->ids[s->n++] = (uint16_t)(data[off] << 8 | data[off + 1]);
		off += 4 + klen;
	}
	return 0;
}

int tls_hello_key_shares(const uint8_t *hello, size_t len, uint16_t *ids, unsigned max)
{
	struct shares s = { ids, max, 0, 0 };
	gnutls_datum_t msg = { (unsigned char *)hello, (unsigned)len };

	if (hello == NULL || len > UINT32_MAX)
		return CAPF_EPROTO;
	if (gnutls_ext_raw_parse(&s, key_share_ext, &msg, GNUTLS_EXT_RAW_FLAG_TLS_CLIENT_HELLO) < 0 ||
	    s.bad)
		return CAPF_EPROTO;
	return (int)s.n;
}

gnutls_priority_t tls_prio_for_hello(const struct tls_prio *p, const uint8_t *hello, size_t len)
{
	uint16_t ids[TLS_PRIO_MAX_GROUPS];
	int n;

	if (p->ngroups == 0)
		return NULL;
	n = tls_hello_key_shares(hello, len, ids, TLS_PRIO_MAX_GROUPS);
	for (unsigned i = 0; i < p->ngroups; i++)
		for (int j = 0; j < n; j++)
			if (ids[j] == p->group_id[i])
				return p->first[i];
	return NULL;
}
