/*
 * capf/tls_prio.c: the key shares of real ClientHellos (made by GnuTLS
 * clients of several kinds), damaged ones, and the priority a session
 * goes on with for each: the group of one of its key shares first, the
 * server's preferred among them.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <gnutls/gnutls.h>

#include "capf/capfd.h"
#include "capf/tls_prio.h"
#include "proto/errcode.h"

struct capture {
	gnutls_session_t session;
	uint8_t buf[4096];
	size_t len;
};

static ssize_t capture_push(gnutls_transport_ptr_t p, const void *data, size_t len)
{
	struct capture *c = p;

	if (len > sizeof(c->buf) - c->len)
		len = sizeof(c->buf) - c->len;
	memcpy(c->buf + c->len, data, len);
	c->len += len;
	return (ssize_t)len;
}

static ssize_t nothing_pull(gnutls_transport_ptr_t p, void *data, size_t len)
{
	struct capture *c = p;

	(void)data;
	(void)len;
	gnutls_transport_set_errno(c->session, EAGAIN);
	return -1;
}

/* The body of the ClientHello a GnuTLS client with this priority (and
 * gnutls_init() flags) sends: its first record less the record and
 * handshake headers. */
static size_t client_hello(const char *prio, unsigned flags, uint8_t *out, size_t max)
{
	static struct capture cap;
	gnutls_certificate_credentials_t cred = NULL;
	gnutls_session_t s = NULL;
	size_t body = 0;
	int ret;

	memset(&cap, 0, sizeof(cap));
	CU_ASSERT_FATAL(gnutls_certificate_allocate_credentials(&cred) == 0);
	CU_ASSERT_FATAL(gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NONBLOCK | flags) == 0);
	CU_ASSERT_FATAL(gnutls_priority_set_direct(s, prio, NULL) == 0);
	gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
	gnutls_transport_set_ptr(s, &cap);
	gnutls_transport_set_push_function(s, capture_push);
	gnutls_transport_set_pull_function(s, nothing_pull);
	cap.session = s;
	ret = gnutls_handshake(s);
	CU_ASSERT(ret == GNUTLS_E_AGAIN);
	/* record header 5 bytes, handshake header 4 (type 1, 24-bit length) */
	CU_ASSERT_FATAL(cap.len > 9 && cap.buf[0] == 22 && cap.buf[5] == 1);
	body = (size_t)cap.buf[6] << 16 | (size_t)cap.buf[7] << 8 | cap.buf[8];
	CU_ASSERT_FATAL(body + 9 <= cap.len && body <= max);
	memcpy(out, cap.buf + 9, body);
	gnutls_deinit(s);
	gnutls_certificate_free_credentials(cred);
	return body;
}

#define TLS13 "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* The first group of the priority a session would go on with, as a TLS
 * id; 0 for none (the session keeps its own). */
static unsigned picked(const struct tls_prio *p, const uint8_t *hello, size_t len)
{
	gnutls_priority_t pick = tls_prio_for_hello(p, hello, len);
	const unsigned *groups = NULL;

	if (pick == NULL)
		return 0;
	for (unsigned i = 0; i < p->ngroups; i++)
		if (p->first[i] == pick) {
			CU_ASSERT(gnutls_priority_group_list(pick, &groups) > 0);
			return p->group_id[i];
		}
	CU_FAIL("a priority that is not one of the listener's");
	return 0;
}

static void test_key_shares(void)
{
	uint8_t hello[4096];
	uint16_t ids[16];
	size_t len;
	bool x25519 = false, p256 = false;
	int n;

	/* One share, P-256, X25519 supported too. */
	len = client_hello(TLS13 ":-GROUP-ALL:+GROUP-SECP256R1:+GROUP-X25519", GNUTLS_KEY_SHARE_TOP,
			   hello, sizeof(hello));
	n = tls_hello_key_shares(hello, len, ids, 16);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(ids[0], 23);

	/* GnuTLS's default: a share for P-256 and one for X25519. */
	len = client_hello(TLS13, 0, hello, sizeof(hello));
	n = tls_hello_key_shares(hello, len, ids, 16);
	CU_ASSERT(n >= 2);
	for (int i = 0; i < n; i++) {
		x25519 |= ids[i] == 29;
		p256 |= ids[i] == 23;
	}
	CU_ASSERT(x25519 && p256);
	/* At most max. */
	CU_ASSERT_EQUAL(tls_hello_key_shares(hello, len, ids, 1), 1);

	/* TLS 1.2 only: no key_share extension. */
	len = client_hello("NORMAL:-VERS-ALL:+VERS-TLS1.2", 0, hello, sizeof(hello));
	CU_ASSERT_EQUAL(tls_hello_key_shares(hello, len, ids, 16), 0);

	/* Cut short, and empty. */
	len = client_hello(TLS13, 0, hello, sizeof(hello));
	CU_ASSERT_EQUAL(tls_hello_key_shares(hello, len / 2, ids, 16), CAPF_EPROTO);
	CU_ASSERT_EQUAL(tls_hello_key_shares(hello, 0, ids, 16), CAPF_EPROTO);
	CU_ASSERT_EQUAL(tls_hello_key_shares(NULL, 10, ids, 16), CAPF_EPROTO);
}

/* The key_share extension's body in a hello: its offset, or 0. */
static size_t find_key_share(const uint8_t *h, size_t len)
{
	size_t off = 2 + 32, end;

	off += 1 + h[off];                                    /* session id */
	off += 2 + ((size_t)h[off] << 8 | h[off + 1]);         /* cipher suites */
	off += 1 + h[off];                                    /* compression */
	end = off + 2 + ((size_t)h[off] << 8 | h[off + 1]);
	for (off += 2; off + 4 <= end && end <= len;) {
		unsigned type = (unsigned)h[off] << 8 | h[off + 1];
		size_t elen = (size_t)h[off + 2] << 8 | h[off + 3];

		if (type == TLS_EXT_KEY_SHARE)
			return off + 4;
		off += 4 + elen;
	}
	return 0;
}

static void test_damaged_key_share(void)
{
	uint8_t hello[4096], bad[4096];
	uint16_t ids[16];
	size_t len, ks;

	len = client_hello(TLS13 ":-GROUP-ALL:+GROUP-SECP256R1:+GROUP-X25519", GNUTLS_KEY_SHARE_TOP,
			   hello, sizeof(hello));
	ks = find_key_share(hello, len);
	CU_ASSERT_FATAL(ks > 0);
	/* The shares' total length one more than the extension holds. */
	memcpy(bad, hello, len);
	bad[ks + 1]++;
	CU_ASSERT_EQUAL(tls_hello_key_shares(bad, len, ids, 16), CAPF_EPROTO);
	/* A key longer than what is left. */
	memcpy(bad, hello, len);
	bad[ks + 5]++;
	CU_ASSERT_EQUAL(tls_hello_key_shares(bad, len, ids, 16), CAPF_EPROTO);
	/* An empty key. */
	memcpy(bad, hello, len);
	bad[ks + 4] = 0;
	bad[ks + 5] = 0;
	CU_ASSERT_EQUAL(tls_hello_key_shares(bad, len, ids, 16), CAPF_EPROTO);
	/* The intact one, for contrast. */
	CU_ASSERT_EQUAL(tls_hello_key_shares(hello, len, ids, 16), 1);
}

static void test_pick(void)
{
	struct tls_prio p, plain;
	uint8_t hello[4096];
	size_t len;

	CU_ASSERT_EQUAL_FATAL(tls_prio_init(&p, "[tls] priority", CAPFD_DEFAULT_PRIORITY), 0);
	/* X25519, P-256, P-384, P-521: a priority for each, with it first. */
	CU_ASSERT_EQUAL(p.ngroups, 4);
	CU_ASSERT_EQUAL(p.group_id[0], 29);
	CU_ASSERT_EQUAL(p.group_id[1], 23);

	/* A P-256 share alone: P-256 first, no retry for X25519. */
	len = client_hello(TLS13 ":-GROUP-ALL:+GROUP-SECP256R1:+GROUP-X25519", GNUTLS_KEY_SHARE_TOP,
			   hello, sizeof(hello));
	CU_ASSERT_EQUAL(picked(&p, hello, len), 23);
	/* P-384 alone. */
	len = client_hello(TLS13 ":-GROUP-ALL:+GROUP-SECP384R1:+GROUP-X25519", GNUTLS_KEY_SHARE_TOP,
			   hello, sizeof(hello));
	CU_ASSERT_EQUAL(picked(&p, hello, len), 24);
	/* Shares for P-256 and X25519 (P-256 the phone's first): the
	 * server's preference, X25519. */
	len = client_hello(TLS13 ":-GROUP-ALL:+GROUP-SECP256R1:+GROUP-X25519", 0, hello, sizeof(hello));
	CU_ASSERT_EQUAL(picked(&p, hello, len), 29);
	/* A share only for a group the server does not allow: nothing to
	 * put first (GnuTLS asks for another). */
	len = client_hello("NORMAL:-VERS-ALL:+VERS-TLS1.3:-GROUP-ALL:+GROUP-FFDHE2048:+GROUP-X25519",
			   GNUTLS_KEY_SHARE_TOP, hello, sizeof(hello));
	CU_ASSERT_EQUAL(tls_hello_key_shares(hello, len, (uint16_t[4]){0}, 4), 1);
	CU_ASSERT_EQUAL(picked(&p, hello, len), 0);
	/* TLS 1.2, and a hello that does not parse. */
	len = client_hello("NORMAL:-VERS-ALL:+VERS-TLS1.2", 0, hello, sizeof(hello));
	CU_ASSERT_EQUAL(picked(&p, hello, len), 0);
	CU_ASSERT_EQUAL(picked(&p, hello, 7), 0);

	/* Without server precedence the phone's order decides, and no
	 * ClientHello changes the priority. */
	CU_ASSERT_EQUAL_FATAL(tls_prio_init(&plain, "[tls] priority", "NORMAL"), 0);
	CU_ASSERT_EQUAL(plain.ngroups, 0);
	len = client_hello(TLS13 ":-GROUP-ALL:+GROUP-SECP256R1:+GROUP-X25519", GNUTLS_KEY_SHARE_TOP,
			   hello, sizeof(hello));
	CU_ASSERT_PTR_NULL(tls_prio_for_hello(&plain, hello, len));
	tls_prio_deinit(&plain);
	CU_ASSERT_PTR_NULL(plain.base);

	/* A string GnuTLS refuses. */
	CU_ASSERT_EQUAL(tls_prio_init(&plain, "[tls] priority", "NORMAL:+NO-SUCH-THING"), CAPF_ECONFIG);
	CU_ASSERT_PTR_NULL(plain.base);
	CU_ASSERT_EQUAL(plain.ngroups, 0);
	tls_prio_deinit(&p);
}

int main(void)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("tls_prio", NULL, NULL);
	if (s == NULL || !CU_add_test(s, "key shares of real ClientHellos", test_key_shares) ||
	    !CU_add_test(s, "damaged key_share extensions", test_damaged_key_share) ||
	    !CU_add_test(s, "the group put first", test_pick)) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failed == 0 ? 0 : 1;
}
