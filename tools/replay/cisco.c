/*
 * tools/replay/cisco.c - replaying one recorded Cisco CAPF v3 session as
 * the phone (shared/cisco-capf-v3.md). The server speaks first and
 * chooses the session id; each phone message is sent again with what must
 * be fresh made anew: the session id echoed as the recorded phone echoed
 * it (or spoilt the same way), a new key of the recorded type for
 * KEY_GENERATE_RESPONSE, this run's LSC and a new signature where the
 * recorded phone presented an LSC, the SUDI signature over the new
 * session id. A signature that did not verify is spoilt again. Each
 * server message goes to replay_compare_cisco()
 * (tools/replay/compare_cisco.c).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>

#include "ca/ca.h"
#include "tools/replay/internal.h"

struct cisco_ctx {
	struct session_ctx c;
	struct replay_state *st;
	struct client_tls *t;
	bool have_sid;
	uint32_t rec_sid;   /* the recorded server's session id */
	uint32_t sid;       /* this server's */
	uint8_t in[CISCO_MSG_MAX];
	size_t in_len;
	struct cisco_builder b;
};

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* The session id to send for one the recorded phone sent: the same
 * relation to this server's as the recorded one had to the recorded
 * server's (equal when it echoed it, spoilt by the same bits when not). */
static uint32_t new_sid(const struct cisco_ctx *x, uint32_t recorded)
{
	return x->have_sid ? x->sid ^ (recorded ^ x->rec_sid) : recorded;
}

/* ---- certificates of the recording ------------------------------------- */

static void crt_names(const uint8_t *der, size_t len, char *cn, size_t cn_cap, char *issuer,
		      size_t issuer_cap)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t d = { (unsigned char *)der, (unsigned)len };
	size_t n;

	cn[0] = issuer[0] = '\0';
	if (gnutls_x509_crt_init(&crt) < 0)
		return;
	if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) >= 0) {
		n = cn_cap - 1;
		memset(cn, 0, cn_cap);
		if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &n) < 0)
			cn[0] = '\0';
		n = issuer_cap;
		if (gnutls_x509_crt_get_issuer_dn(crt, issuer, &n) < 0)
			issuer[0] = '\0';
	}
	gnutls_x509_crt_deinit(crt);
}

static bool same_der(gnutls_x509_crt_t crt, const uint8_t *der, size_t len)
{
	uint8_t *mine = NULL;
	size_t mine_len = 0;
	bool same;

	if (pki_crt_der(crt, &mine, &mine_len) < 0)
		return false;
	same = mine_len == len && !memcmp(mine, der, len);
	free(mine);
	return same;
}

/*
 * What stands in this run for a certificate the recorded phone held: its
 * MIC as recorded (*sub NULL), the MIC on file when the recorded one was
 * made by the same manufacturer CA but is another (MICs made anew), the
 * certificate noted for it earlier in this run, or the LSC its owner got
 * in this run. Without any: CAPF_ENOENT (r says why when need).
 */
static int resolve_cert(struct cisco_ctx *x, const struct transcript_msg *m, const uint8_t *der,
			size_t len, bool need, const struct pki_pair **sub)
{
	const struct replay_opts *o = x->c.o;
	char cn[80], issuer[256], mic_issuer[256];
	uint8_t sha[32];
	struct replay_dev *dev;
	const struct pki_pair *p;
	size_t n = sizeof(mic_issuer);

	*sub = NULL;
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, der, len, sha) < 0)
		return CAPF_ECRYPTO;
	p = replay_state_cert(o, x->st, sha);
	if (p) {
		*sub = p;
		return 0;
	}
	crt_names(der, len, cn, sizeof(cn), issuer, sizeof(issuer));
	dev = replay_state_dev(x->st, cn[0] && device_name_valid(cn) ? cn : x->c.s->device);
	if (!dev)
		return CAPF_ENOMEM;
	if (replay_dev_mic(o, dev, NULL) == 0) {
		if (same_der(dev->mic.crt, der, len))
			return 0;
		if (issuer[0] && gnutls_x509_crt_get_issuer_dn(dev->mic.crt, mic_issuer, &n) >= 0 &&
		    !strcmp(issuer, mic_issuer)) {
			*sub = &dev->mic;
			return 0;
		}
	}
	p = replay_dev_lsc(o, dev);
	if (p) {
		/* Later sessions presenting the same recorded LSC present this
		 * one, even once the device has another (a superseded LSC). */
		if (replay_state_cert_add(o, x->st, sha, p) == 0)
			p = replay_state_cert(o, x->st, sha);
		*sub = p;
		return 0;
	}
	if (need)
		replay_result_fail(x->c.r,
				   "message %u (%s): the phone presented a certificate of %s that is "
				   "neither its MIC nor an LSC it got earlier in this run",
				   m->index, m->type, cn[0] ? cn : "?");
	return CAPF_ENOENT;
}

/* ---- the phone's messages made anew -------------------------------------- */

/* AUTH_RESPONSE: what the certificate and its signatures become. */
struct auth_plan {
	const struct pki_pair *sub;  /* the certificate presented instead, or NULL */
	uint8_t *der;                /* its DER */
	size_t der_len;
	bool rec_sig_ok;             /* the recorded signature verified */
	char name[DEVICE_NAME_MAX + 64];
};

static int plan_auth(struct cisco_ctx *x, const struct transcript_msg *m,
		     const struct cisco_msg *pm, struct auth_plan *a)
{
	const uint8_t *der, *sig = NULL;
	uint8_t *signed_msg = NULL;
	size_t der_len, sig_len = 0, signed_len;
	int sha512 = 1, ret;

	replay_cisco_device(pm, x->c.s->device, a->name, sizeof(a->name));
	if (cisco_el_certificate(pm, CISCO_EL_CERTIFICATE, &der, &der_len) < 0)
		return 0;
	ret = resolve_cert(x, m, der, der_len, true, &a->sub);
	if (ret < 0 || !a->sub)
		return ret;
	ret = pki_crt_der(a->sub->crt, &a->der, &a->der_len);
	if (ret < 0)
		return ret;
	if (pm->el[CISCO_EL_SHA2_SIGNED_DATA].data) {
		const struct cisco_el *e = &pm->el[CISCO_EL_SHA2_SIGNED_DATA];

		if (e->len > 3) {
			sig = e->data + 3;
			sig_len = e->len - 3;
		}
	} else if (pm->el[CISCO_EL_SIGNED_DATA].data) {
		sig = pm->el[CISCO_EL_SIGNED_DATA].data;
		sig_len = pm->el[CISCO_EL_SIGNED_DATA].len;
		sha512 = 0;
	}
	if (!sig)
		return 0;
	ret = replay_cisco_signed_name(a->name, der, der_len, &signed_msg, &signed_len);
	if (ret < 0)
		return ret;
	a->rec_sig_ok = ca_cert_signed_verify(der, der_len, signed_msg, signed_len, sha512, sig,
					      sig_len) == 0;
	free(signed_msg);
	return 0;
}

/* The signature element for the certificate of the plan, spoilt when
 * the recorded one did not verify. */
static int put_signature(struct cisco_ctx *x, const struct auth_plan *a,
			 const struct replay_cisco_el *e)
{
	gnutls_datum_t sig = { NULL, 0 };
	uint8_t *msg = NULL, *v = NULL;
	size_t msg_len;
	bool sha2 = e->tag == CISCO_EL_SHA2_SIGNED_DATA;
	int ret;

	ret = replay_cisco_signed_name(a->name, a->der, a->der_len, &msg, &msg_len);
	if (ret < 0)
		return ret;
	ret = replay_cisco_sign(a->sub->key, sha2, msg, msg_len, &sig);
	free(msg);
	if (ret < 0)
		return ret;
	if (!a->rec_sig_ok && sig.size > 8)
		sig.data[sig.size / 2] ^= 0x01;
	if (!sha2) {
		cisco_put(&x->b, e->tag, sig.data, sig.size);
	} else {
		v = malloc(sig.size + 3);
		if (!v) {
			gnutls_free(sig.data);
			return CAPF_ENOMEM;
		}
		/* The recorded hash id, the new length. */
		v[0] = e->len > 0 ? e->v[0] : 3;
		v[1] = (uint8_t)(sig.size >> 8);
		v[2] = (uint8_t)sig.size;
		memcpy(v + 3, sig.data, sig.size);
		cisco_put(&x->b, e->tag, v, sig.size + 3);
		free(v);
	}
	gnutls_free(sig.data);
	return 0;
}

/*
 * SUDI_DATA signed again over this session's id with the key of the MIC
 * it carries (from --mic-dir), the sub-elements otherwise as recorded.
 */
static int put_sudi(struct cisco_ctx *x, const struct transcript_msg *m,
		    const struct replay_cisco_el *e)
{
	const uint8_t *der, *sig, *p = e->v, *end = e->v + e->len;
	size_t der_len, sig_len, msg_len, n = 0;
	uint8_t *msg = NULL, *out = NULL;
	gnutls_datum_t fresh = { NULL, 0 };
	char cn[80], issuer[256];
	struct replay_dev *dev;
	bool ok;
	int sha512 = 1, ret;

	if (!replay_cisco_sudi_part(e->v, e->len, 3, &sig, &sig_len)) {
		sha512 = 0;
		if (!replay_cisco_sudi_part(e->v, e->len, 1, &sig, &sig_len))
			sig = NULL;
	}
	if (!sig || !replay_cisco_sudi_part(e->v, e->len, 0, &der, &der_len)) {
		/* Nothing signed: sent as it was. */
		cisco_put(&x->b, e->tag, e->v, e->len);
		return 0;
	}
	crt_names(der, der_len, cn, sizeof(cn), issuer, sizeof(issuer));
	dev = replay_state_dev(x->st, cn[0] && device_name_valid(cn) ? cn : x->c.s->device);
	if (!dev)
		return CAPF_ENOMEM;
	if (replay_dev_mic(x->c.o, dev, NULL) < 0 || !same_der(dev->mic.crt, der, der_len)) {
		replay_result_fail(x->c.r,
				   "message %u (%s): the SUDI of %s: its MIC and key are not in "
				   "--mic-dir, and its signature covers the session id",
				   m->index, m->type, cn[0] ? cn : "?");
		return CAPF_ENOENT;
	}
	/* The recorded phone signed the session id it was given. */
	ret = replay_cisco_signed_sid(x->rec_sid, der, der_len, &msg, &msg_len);
	if (ret < 0)
		return ret;
	ok = ca_cert_signed_verify(der, der_len, msg, msg_len, sha512, sig, sig_len) == 0;
	free(msg);
	ret = replay_cisco_signed_sid(x->sid, der, der_len, &msg, &msg_len);
	if (ret < 0)
		return ret;
	ret = replay_cisco_sign(dev->mic.key, sha512, msg, msg_len, &fresh);
	free(msg);
	if (ret < 0)
		return ret;
	if (!ok && fresh.size > 8)
		fresh.data[fresh.size / 2] ^= 0x01;
	out = malloc(e->len + fresh.size + 3);
	if (!out) {
		gnutls_free(fresh.data);
		return CAPF_ENOMEM;
	}
	while (end - p >= 3) {
		size_t l = (size_t)p[1] << 8 | p[2];
		bool is_sig = p[0] == (sha512 ? 3 : 1);

		if ((size_t)(end - p - 3) < l)
			break;
		out[n] = p[0];
		if (is_sig) {
			out[n + 1] = (uint8_t)(fresh.size >> 8);
			out[n + 2] = (uint8_t)fresh.size;
			memcpy(out + n + 3, fresh.data, fresh.size);
			n += 3 + fresh.size;
		} else {
			memcpy(out + n + 1, p + 1, 2 + l);
			n += 3 + l;
		}
		p += 3 + l;
	}
	cisco_put(&x->b, e->tag, out, n);
	free(out);
	gnutls_free(fresh.data);
	return 0;
}

/* KEY_GENERATE_RESPONSE: a new key of the recorded key's type (the same
 * new one for the same recorded key). */
static int put_public_key(struct cisco_ctx *x, const struct transcript_msg *m,
			  const struct replay_cisco_el *e)
{
	gnutls_pubkey_t pub = NULL;
	gnutls_privkey_t pk = NULL;
	gnutls_datum_t d = { (unsigned char *)e->v, (unsigned)e->len }, spki = { NULL, 0 };
	gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
	uint8_t id[64];
	size_t id_len = sizeof(id);
	unsigned bits = 0;
	int key_type, ret;

	if (gnutls_pubkey_init(&pub) < 0)
		return CAPF_ENOMEM;
	if (gnutls_pubkey_import(pub, &d, GNUTLS_X509_FMT_DER) < 0 ||
	    gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA256, id, &id_len) < 0 ||
	    id_len < REPLAY_KEY_ID_LEN) {
		/* No key: sent as it was. */
		gnutls_pubkey_deinit(pub);
		cisco_put(&x->b, e->tag, e->v, e->len);
		return 0;
	}
	ret = gnutls_pubkey_get_pk_algorithm(pub, &bits);
	if (ret == GNUTLS_PK_ECDSA)
		(void)gnutls_pubkey_export_ecc_raw(pub, &curve, NULL, NULL);
	key_type = replay_key_type_of(ret, bits, curve);
	gnutls_pubkey_deinit(pub);
	pub = NULL;
	if (key_type == 0) {
		replay_result_fail(x->c.r, "message %u (%s): the recorded key is of a type this "
					   "tool cannot make",
				   m->index, m->type);
		return CAPF_ENOTSUP;
	}
	if (x->c.key)
		gnutls_x509_privkey_deinit(x->c.key);
	x->c.key = NULL;
	ret = replay_key_for(x->st, id, key_type, &x->c.key);
	if (ret < 0) {
		replay_result_fail(x->c.r, "message %u (%s): cannot make a %s key: %s", m->index,
				   m->type, key_type_name(key_type), capf_strerror(ret));
		return ret;
	}
	ret = CAPF_ECRYPTO;
	if (gnutls_privkey_init(&pk) < 0 || gnutls_privkey_import_x509(pk, x->c.key, 0) < 0 ||
	    gnutls_pubkey_init(&pub) < 0 || gnutls_pubkey_import_privkey(pub, pk, 0, 0) < 0 ||
	    gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &spki) < 0)
		goto out;
	cisco_put(&x->b, e->tag, spki.data, spki.size);
	ret = 0;
out:
	gnutls_free(spki.data);
	if (pub)
		gnutls_pubkey_deinit(pub);
	if (pk)
		gnutls_privkey_deinit(pk);
	return ret;
}

/* A certificate element standing for what the phone holds in this run,
 * when there is one; as recorded otherwise. */
static int put_held_cert(struct cisco_ctx *x, const struct transcript_msg *m,
			 const struct cisco_msg *pm, const struct replay_cisco_el *e)
{
	const struct pki_pair *sub = NULL;
	const uint8_t *der;
	uint8_t *mine = NULL;
	size_t len, mine_len;
	int ret;

	if (cisco_el_certificate(pm, e->tag, &der, &len) < 0 || der != e->v + 5 ||
	    resolve_cert(x, m, der, len, false, &sub) < 0 || !sub) {
		cisco_put(&x->b, e->tag, e->v, e->len);
		return 0;
	}
	ret = pki_crt_der(sub->crt, &mine, &mine_len);
	if (ret < 0)
		return ret;
	cisco_put_certificate(&x->b, e->tag, mine, mine_len);
	free(mine);
	return 0;
}

/* Builds the message to send for a recorded one that parses. */
static int remake(struct cisco_ctx *x, const struct transcript_msg *m, const struct cisco_msg *pm,
		  const uint8_t **out, size_t *len)
{
	struct replay_cisco_el els[REPLAY_CISCO_ELEMS_MAX];
	struct auth_plan a;
	size_t n = replay_cisco_elements(m->payload, m->len, els, REPLAY_CISCO_ELEMS_MAX);
	bool auth = pm->command == CISCO_AUTH_RESPONSE;
	int ret = 0;

	memset(&a, 0, sizeof(a));
	if (auth) {
		ret = plan_auth(x, m, pm, &a);
		if (ret < 0)
			goto out;
	}
	cisco_builder_init(&x->b, pm->command, new_sid(x, pm->session_id));
	for (size_t i = 0; i < n && ret == 0; i++) {
		const struct replay_cisco_el *e = &els[i];

		if (auth && a.sub && e->tag == CISCO_EL_CERTIFICATE && e->v == pm->el[e->tag].data)
			cisco_put_certificate(&x->b, e->tag, a.der, a.der_len);
		else if (auth && a.sub &&
			 (e->tag == CISCO_EL_SIGNED_DATA || e->tag == CISCO_EL_SHA2_SIGNED_DATA))
			ret = put_signature(x, &a, e);
		else if (auth && e->tag == CISCO_EL_SUDI_DATA)
			ret = put_sudi(x, m, e);
		else if (pm->command == CISCO_KEY_GENERATE_RESPONSE && e->tag == CISCO_EL_PUBLIC_KEY)
			ret = put_public_key(x, m, e);
		else if (pm->command == CISCO_FETCH_CERTIFICATE_RESPONSE &&
			 e->tag == CISCO_EL_CERTIFICATE)
			ret = put_held_cert(x, m, pm, e);
		else
			cisco_put(&x->b, e->tag, e->v, e->len);
	}
	if (ret == 0)
		ret = cisco_finish(&x->b, out, len);
	if (ret < 0 && !x->c.r->failed)
		replay_result_fail(x->c.r, "message %u (%s): cannot make it anew: %s", m->index,
				   m->type, capf_strerror(ret));
out:
	free(a.der);
	return ret;
}

/* Sends recorded phone message m (made anew where it must be); false: stop. */
static bool send_phone(struct cisco_ctx *x, const struct transcript_msg *m, bool *closed)
{
	struct cisco_msg pm;
	const uint8_t *out = m->payload;
	uint8_t *copy = NULL;
	size_t len = m->len;
	unsigned reason;
	int ret;

	if (x->c.o->raw) {
		/* Every byte as recorded. */
	} else if (cisco_msg_parse(m->payload, m->len, &pm) == 0) {
		if (remake(x, m, &pm, &out, &len) < 0)
			return false;
		if (cisco_el_u8(&pm, CISCO_EL_REASON, &reason) == 0 &&
		    reason == CISCO_REASON_SUCCESS && pm.command == CISCO_DELETE_CERTIFICATE_RESPONSE)
			x->c.delete_sent = true;
	} else if (m->len >= 6) {
		/* A message spoilt on purpose: as recorded, in this session. */
		copy = malloc(m->len);
		if (!copy) {
			replay_result_fail(x->c.r, "out of memory");
			return false;
		}
		memcpy(copy, m->payload, m->len);
		put32(copy + 2, new_sid(x, get32(m->payload + 2)));
		out = copy;
	}
	/* Cut into records where the recorded phone cut it. */
	if (m->split > 0 && m->split < len) {
		ret = client_tls_send_raw(x->t, out, m->split);
		if (ret == 0)
			ret = client_tls_send_raw(x->t, out + m->split, len - m->split);
	} else {
		ret = len ? client_tls_send_raw(x->t, out, len) : 0;
	}
	free(copy);
	if (ret == CAPF_ECONNRESET) {
		/* The server closed; what it said before that comes next. */
		*closed = true;
		return true;
	}
	if (ret < 0) {
		replay_result_fail(x->c.r, "message %u (%s): cannot send: %s", m->index, m->type,
				   x->t->errtext[0] ? x->t->errtext : capf_strerror(ret));
		return false;
	}
	return true;
}

/* ---- the server's messages ----------------------------------------------- */

/* Reads one whole message into x->in; *len its length. */
static int recv_msg(struct cisco_ctx *x, size_t *len)
{
	for (;;) {
		ssize_t want = cisco_msg_length(x->in, x->in_len);
		ssize_t n;

		if (want < 0) {
			/* No message: what came is compared as it is. */
			*len = x->in_len;
			return 0;
		}
		if (want > 0 && x->in_len >= (size_t)want) {
			*len = (size_t)want;
			return 0;
		}
		n = gnutls_record_recv(x->t->session, x->in + x->in_len, sizeof(x->in) - x->in_len);
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n == 0)
			return x->in_len ? CAPF_EBADMSG : CAPF_ECONNRESET;
		if (n < 0)
			return n == GNUTLS_E_TIMEDOUT ? CAPF_ETIMEDOUT : CAPF_EIO;
		x->in_len += (size_t)n;
	}
}

static void consume(struct cisco_ctx *x, size_t len)
{
	memmove(x->in, x->in + len, x->in_len - len);
	x->in_len -= len;
}

/* Every server message carries the session's id: the first one's. */
static bool check_sid(struct cisco_ctx *x, const struct transcript_msg *m, size_t len)
{
	uint32_t want, got;
	char w[64], g[64];

	if (m->len < 6 || len < 6 || x->in[0] != CISCO_MAGIC)
		return true;
	want = get32(m->payload + 2);
	got = get32(x->in + 2);
	if (!x->have_sid) {
		x->have_sid = true;
		x->rec_sid = want;
		x->sid = got;
		return true;
	}
	if ((want == x->rec_sid) == (got == x->sid))
		return true;
	snprintf(w, sizeof(w), "%s", want == x->rec_sid ? "the session's" : "not the session's");
	snprintf(g, sizeof(g), "%08x, %s %08x", got, got == x->sid ? "the session's" : "not the session's",
		 x->sid);
	replay_result_set(x->c.r, (long)m->index, m->type, "session_id", w, g);
	return false;
}

int replay_cisco_session(const struct replay_opts *o, const struct transcript_session *s,
			 struct replay_state *st, struct replay_result *r)
{
	struct client_tls t = CLIENT_TLS_INIT;
	struct cisco_ctx *x;
	double t0 = replay_now(), base;
	bool closed = false;
	size_t len;
	char w[128], g[200];
	int ret;

	memset(r, 0, sizeof(*r));
	r->index = -1;
	x = calloc(1, sizeof(*x));
	if (!x) {
		replay_result_fail(r, "out of memory");
		return 0;
	}
	x->c.o = o;
	x->c.s = s;
	x->c.r = r;
	x->st = st;
	x->t = &t;
	if (replay_open_tls(&x->c, st, o->cisco_host ? o->cisco_host : o->host,
			    o->cisco_port ? o->cisco_port : o->port, &t) < 0)
		goto out;
	base = replay_now();
	for (size_t i = 0; i < s->nmsgs; i++) {
		const struct transcript_msg *m = &s->msgs[i];

		if (m->dir == TRANSCRIPT_PHONE) {
			if (closed)
				continue;
			if (o->pace)
				replay_sleep_until(base + m->t);
			if (!send_phone(x, m, &closed))
				goto out;
			r->nmsgs++;
			continue;
		}
		ret = recv_msg(x, &len);
		if (ret < 0) {
			replay_cisco_describe(m->payload, m->len, w, sizeof(w));
			snprintf(g, sizeof(g), "nothing (%s)",
				 ret == CAPF_ECONNRESET ? "the server closed the session"
				 : ret == CAPF_EBADMSG  ? "the server closed inside a message"
							: capf_strerror(ret));
			replay_result_set(r, (long)m->index, m->type, "command", w, g);
			goto out;
		}
		r->nmsgs++;
		if (!check_sid(x, m, len) || !replay_compare_cisco(&x->c, m, x->in, len))
			goto out;
		consume(x, len);
	}
	replay_learn(o, st, &x->c);
out:
	client_tls_close(&t);
	if (x->c.key)
		gnutls_x509_privkey_deinit(x->c.key);
	free(x->c.delivered);
	free(x);
	r->seconds = replay_now() - t0;
	return 0;
}
