/*
 * tools/replay/session.c - the run state (MICs, LSCs, keys, certificates
 * standing for recorded ones), and replaying one recorded native session
 * as the phone: the CSR made anew, the exchange; each server message goes
 * to replay_compare() (tools/replay/compare.c). Cisco sessions are
 * tools/replay/cisco.c.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>

#include "tools/replay/internal.h"

struct replay_state *replay_state_new(void)
{
	return calloc(1, sizeof(struct replay_state));
}

void replay_state_free(struct replay_state *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->ndevs; i++) {
		pki_pair_deinit(&st->devs[i]->mic);
		pki_pair_deinit(&st->devs[i]->lsc);
		free(st->devs[i]);
	}
	for (size_t i = 0; i < st->nkeys; i++)
		gnutls_x509_privkey_deinit(st->keys[i].key);
	for (size_t i = 0; i < st->ncerts; i++) {
		pki_pair_deinit(&st->certs[i]->now);
		free(st->certs[i]);
	}
	free(st->devs);
	free(st->keys);
	free(st->certs);
	free(st);
}

struct replay_dev *replay_state_dev(struct replay_state *st, const char *name)
{
	struct replay_dev **grown, *dev;

	for (size_t i = 0; i < st->ndevs; i++)
		if (!strcmp(st->devs[i]->name, name))
			return st->devs[i];
	grown = realloc(st->devs, (st->ndevs + 1) * sizeof(*grown));
	if (!grown)
		return NULL;
	st->devs = grown;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return NULL;
	snprintf(dev->name, sizeof(dev->name), "%s", name);
	st->devs[st->ndevs++] = dev;
	return dev;
}

void replay_result_fail(struct replay_result *r, const char *fmt, ...)
{
	va_list ap;

	r->failed = true;
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}

/* ---- the CSR made anew ------------------------------------------------ */

int replay_key_type_of(int pk, unsigned bits, gnutls_ecc_curve_t curve)
{
	if (pk == GNUTLS_PK_RSA)
		return bits == 2048 ? CAPF__KEY_TYPE__KEY_RSA_2048
		       : bits == 3072 ? CAPF__KEY_TYPE__KEY_RSA_3072
		       : bits == 4096 ? CAPF__KEY_TYPE__KEY_RSA_4096
				      : 0;
	if (pk == GNUTLS_PK_ECDSA)
		return curve == GNUTLS_ECC_CURVE_SECP256R1   ? CAPF__KEY_TYPE__KEY_EC_P256
		       : curve == GNUTLS_ECC_CURVE_SECP384R1 ? CAPF__KEY_TYPE__KEY_EC_P384
		       : curve == GNUTLS_ECC_CURVE_SECP521R1 ? CAPF__KEY_TYPE__KEY_EC_P521
							     : 0;
	return 0;
}

/*
 * The key for a recorded CSR: the one made earlier in this run for the
 * same recorded key (a phone retrying with its key), else a new one of the
 * same type. *out is a copy the caller frees.
 */
int replay_key_for(struct replay_state *st, const uint8_t *id, int key_type,
		   gnutls_x509_privkey_t *out)
{
	struct replay_key *grown;
	gnutls_x509_privkey_t key = NULL;
	int ret;

	*out = NULL;
	for (size_t i = 0; i < st->nkeys; i++) {
		if (memcmp(st->keys[i].recorded_id, id, REPLAY_KEY_ID_LEN))
			continue;
		if (gnutls_x509_privkey_init(out) < 0)
			return CAPF_ENOMEM;
		if (gnutls_x509_privkey_cpy(*out, st->keys[i].key) < 0) {
			gnutls_x509_privkey_deinit(*out);
			*out = NULL;
			return CAPF_ECRYPTO;
		}
		return 0;
	}
	ret = pki_gen_key(key_type, &key);
	if (ret < 0)
		return ret;
	grown = realloc(st->keys, (st->nkeys + 1) * sizeof(*grown));
	if (!grown || gnutls_x509_privkey_init(out) < 0) {
		if (grown)
			st->keys = grown;
		gnutls_x509_privkey_deinit(key);
		*out = NULL;
		return CAPF_ENOMEM;
	}
	st->keys = grown;
	if (gnutls_x509_privkey_cpy(*out, key) < 0) {
		gnutls_x509_privkey_deinit(*out);
		gnutls_x509_privkey_deinit(key);
		*out = NULL;
		return CAPF_ECRYPTO;
	}
	memcpy(st->keys[st->nkeys].recorded_id, id, REPLAY_KEY_ID_LEN);
	st->keys[st->nkeys].key = key;
	st->nkeys++;
	return 0;
}

/*
 * Makes the CsrSubmit frame to send for a recorded one: a CSR with a key
 * of the recorded key type and the recorded subject, bound to this session
 * when the recorded one was bound to its own, carrying another value when
 * it was not, and with a broken signature when the recorded one had one.
 * Returns 0 with *frame (malloc'd) and *key, CAPF_EBADMSG when the
 * recorded message is no CSR (the caller sends it as it was), or an error.
 */
static int remake_csr(struct replay_state *st, const struct transcript_session *s,
		      const struct transcript_msg *m, gnutls_session_t tls, uint8_t **frame,
		      size_t *frame_len, gnutls_x509_privkey_t *key, char *why, size_t whylen)
{
	Capf__PhoneMessage *rec = NULL;
	Capf__PhoneMessage out = CAPF__PHONE_MESSAGE__INIT;
	Capf__CsrSubmit csr_msg = CAPF__CSR_SUBMIT__INIT;
	gnutls_x509_crq_t crq = NULL;
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t d;
	gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
	uint8_t id[64], binding[CLIENT_BINDING_LEN];
	size_t id_len = sizeof(id), binding_len = 0;
	char pass[256], rec_hex[2 * sizeof(s->binding) + 1], cn[DEVICE_NAME_MAX + 64];
	size_t pass_len = sizeof(pass), cn_len = sizeof(cn);
	uint8_t *csr = NULL;
	size_t csr_len = 0;
	unsigned bits = 0;
	bool sig_ok;
	int key_type, pk, ret;

	*frame = NULL;
	*key = NULL;
	if (phone_msg_unpack(m->payload, m->len, &rec) < 0 ||
	    rec->body_case != CAPF__PHONE_MESSAGE__BODY_CSR) {
		ret = CAPF_EBADMSG;
		goto out;
	}
	d.data = rec->csr->csr.data;
	d.size = (unsigned)rec->csr->csr.len;
	ret = CAPF_EBADMSG;
	if (gnutls_x509_crq_init(&crq) < 0 || gnutls_x509_crq_import(crq, &d, GNUTLS_X509_FMT_DER) < 0)
		goto out;
	memset(cn, 0, sizeof(cn));
	if (gnutls_x509_crq_get_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cn_len) < 0)
		snprintf(cn, sizeof(cn), "%s", s->device);
	if (gnutls_pubkey_init(&pub) < 0 || gnutls_pubkey_import_x509_crq(pub, crq, 0) < 0)
		goto out;
	pk = gnutls_pubkey_get_pk_algorithm(pub, &bits);
	if (pk == GNUTLS_PK_ECDSA)
		(void)gnutls_pubkey_export_ecc_raw(pub, &curve, NULL, NULL);
	key_type = replay_key_type_of(pk, bits, curve);
	if (key_type == 0) {
		snprintf(why, whylen, "the recorded CSR has a key this tool cannot make");
		goto out;
	}
	if (gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA256, id, &id_len) < 0 ||
	    id_len < REPLAY_KEY_ID_LEN)
		goto out;
	sig_ok = gnutls_x509_crq_verify(crq, 0) >= 0;
	ret = replay_key_for(st, id, key_type, key);
	if (ret < 0) {
		snprintf(why, whylen, "cannot make a %s key: %s", key_type_name(key_type),
			 capf_strerror(ret));
		goto out;
	}
	if (gnutls_x509_crq_get_challenge_password(crq, pass, &pass_len) >= 0) {
		hex_encode(s->binding, s->binding_len, rec_hex);
		binding_len = sizeof(binding);
		if (s->binding_len > 0 && !strcmp(pass, rec_hex))
			ret = pki_tls_binding(tls, binding);
		else
			ret = gnutls_rnd(GNUTLS_RND_NONCE, binding, sizeof(binding)) < 0 ? CAPF_ECRYPTO
											   : 0;
		if (ret < 0)
			goto out;
	}
	ret = pki_make_csr(*key, cn, binding, binding_len, &csr, &csr_len);
	if (ret < 0) {
		snprintf(why, whylen, "cannot make the CSR: %s", capf_strerror(ret));
		goto out;
	}
	/* The last byte of a PKCS#10 DER is the last byte of its signature. */
	if (!sig_ok)
		csr[csr_len - 1] ^= 0x01;
	csr_msg.csr.data = csr;
	csr_msg.csr.len = csr_len;
	out.body_case = CAPF__PHONE_MESSAGE__BODY_CSR;
	out.csr = &csr_msg;
	ret = phone_msg_pack(&out, frame, frame_len);
out:
	if (ret < 0 && *key) {
		gnutls_x509_privkey_deinit(*key);
		*key = NULL;
	}
	gnutls_memset(binding, 0, sizeof(binding));
	free(csr);
	if (pub)
		gnutls_pubkey_deinit(pub);
	if (crq)
		gnutls_x509_crq_deinit(crq);
	if (rec)
		capf__phone_message__free_unpacked(rec, NULL);
	return ret;
}

/* ---- MICs, LSCs and the certificates standing for recorded ones ---- */

int replay_dev_mic(const struct replay_opts *o, struct replay_dev *dev, struct replay_result *r)
{
	char crt[PATH_MAX], key[PATH_MAX];
	int ret;

	if (dev->have_mic)
		return 0;
	if (o->mic) {
		snprintf(crt, sizeof(crt), "%s", o->mic);
		snprintf(key, sizeof(key), "%s", o->mic_key);
	} else if (o->mic_dir) {
		snprintf(crt, sizeof(crt), "%s/%s.pem", o->mic_dir, dev->name);
		snprintf(key, sizeof(key), "%s/%s.key", o->mic_dir, dev->name);
	} else {
		if (r)
			replay_result_fail(r, "the session presented a MIC: --mic or --mic-dir is "
					      "needed");
		return CAPF_EINVAL;
	}
	ret = pki_read_pair(crt, key, &dev->mic);
	if (ret < 0) {
		pki_pair_deinit(&dev->mic);
		if (r)
			replay_result_fail(r, "cannot read the MIC of %s (%s, %s): %s", dev->name, crt,
					   key, capf_strerror(ret));
		return ret;
	}
	dev->have_mic = true;
	return 0;
}

const struct pki_pair *replay_dev_lsc(const struct replay_opts *o, struct replay_dev *dev)
{
	char crt[PATH_MAX], key[PATH_MAX];

	if (!dev->lsc.crt && o->lsc_dir) {
		snprintf(crt, sizeof(crt), "%s/%s-lsc.pem", o->lsc_dir, dev->name);
		snprintf(key, sizeof(key), "%s/%s-lsc.key", o->lsc_dir, dev->name);
		if (pki_read_pair(crt, key, &dev->lsc) < 0)
			pki_pair_deinit(&dev->lsc);
	}
	return dev->lsc.crt ? &dev->lsc : NULL;
}

/* Copies a certificate and key into a pair of its own. */
static int pair_from(struct pki_pair *out, const uint8_t *der, size_t len,
		     gnutls_x509_privkey_t key)
{
	gnutls_datum_t d = { (unsigned char *)der, (unsigned)len };

	memset(out, 0, sizeof(*out));
	if (gnutls_x509_crt_init(&out->crt) < 0) {
		out->crt = NULL;
		return CAPF_ENOMEM;
	}
	if (gnutls_x509_crt_import(out->crt, &d, GNUTLS_X509_FMT_DER) < 0 ||
	    gnutls_x509_privkey_init(&out->key) < 0 || gnutls_x509_privkey_cpy(out->key, key) < 0) {
		pki_pair_deinit(out);
		return CAPF_ECRYPTO;
	}
	return 0;
}

/* Where --lsc-dir keeps the certificate standing for a recorded one. */
static void cert_paths(const struct replay_opts *o, const uint8_t sha256[32], char *crt,
		       char *key)
{
	char hex[65];

	hex_encode(sha256, 32, hex);
	snprintf(crt, PATH_MAX, "%s/for-%s.pem", o->lsc_dir, hex);
	snprintf(key, PATH_MAX, "%s/for-%s.key", o->lsc_dir, hex);
}

static struct replay_cert *cert_entry(struct replay_state *st, const uint8_t sha256[32])
{
	struct replay_cert **grown, *e;

	for (size_t i = 0; i < st->ncerts; i++)
		if (!memcmp(st->certs[i]->recorded_sha256, sha256, 32))
			return st->certs[i];
	grown = realloc(st->certs, (st->ncerts + 1) * sizeof(*grown));
	if (!grown)
		return NULL;
	st->certs = grown;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	memcpy(e->recorded_sha256, sha256, 32);
	st->certs[st->ncerts++] = e;
	return e;
}

const struct pki_pair *replay_state_cert(const struct replay_opts *o, struct replay_state *st,
					 const uint8_t sha256[32])
{
	char crt[PATH_MAX], key[PATH_MAX];
	struct replay_cert *e;

	for (size_t i = 0; i < st->ncerts; i++)
		if (!memcmp(st->certs[i]->recorded_sha256, sha256, 32) && st->certs[i]->now.crt)
			return &st->certs[i]->now;
	if (!o->lsc_dir)
		return NULL;
	cert_paths(o, sha256, crt, key);
	if (access(crt, R_OK) != 0 || !(e = cert_entry(st, sha256)))
		return NULL;
	if (pki_read_pair(crt, key, &e->now) < 0) {
		pki_pair_deinit(&e->now);
		return NULL;
	}
	return &e->now;
}

int replay_state_cert_add(const struct replay_opts *o, struct replay_state *st,
			  const uint8_t sha256[32], const struct pki_pair *p)
{
	struct replay_cert *e = cert_entry(st, sha256);
	char crt[PATH_MAX], key[PATH_MAX];
	uint8_t *der = NULL;
	size_t len = 0;
	int ret;

	if (!e)
		return CAPF_ENOMEM;
	if (&e->now == p)
		return 0;
	ret = pki_crt_der(p->crt, &der, &len);
	if (ret < 0)
		return ret;
	pki_pair_deinit(&e->now);
	ret = pair_from(&e->now, der, len, p->key);
	free(der);
	if (ret == 0 && o->lsc_dir) {
		cert_paths(o, sha256, crt, key);
		if (pki_write_pair(&e->now, crt, key) < 0)
			fprintf(stderr, REPLAY_PROG ": cannot write %s\n", crt);
	}
	return ret;
}

/* ---- one session ------------------------------------------------------ */

static int pick_client_cert(const struct replay_opts *o, const struct transcript_session *s,
			    struct replay_state *st, const struct pki_pair **out,
			    struct replay_result *r)
{
	/* The MIC is the credential's owner's, which a phone claiming
	 * another name does not change. */
	const char *owner = s->client_cert_cn[0] && device_name_valid(s->client_cert_cn)
				    ? s->client_cert_cn
				    : s->device;
	struct replay_dev *dev = replay_state_dev(st, owner);
	int ret;

	*out = NULL;
	if (!dev)
		return CAPF_ENOMEM;
	if (!strcmp(s->client_cert, "lsc")) {
		*out = replay_dev_lsc(o, dev);
		if (!*out) {
			replay_result_fail(r, "the session presented an LSC, and %s got none earlier "
					      "in this run",
					   owner);
			return CAPF_ENOENT;
		}
		return 0;
	}
	if (strcmp(s->client_cert, "mic"))
		return 0;
	ret = replay_dev_mic(o, dev, r);
	if (ret < 0)
		return ret;
	*out = &dev->mic;
	return 0;
}

int replay_open_tls(const struct session_ctx *c, struct replay_state *st, const char *host,
		    const char *port, struct client_tls *t)
{
	const struct transcript_session *s = c->s;
	const struct pki_pair *cert = NULL;
	const char *name;
	int ret;

	if (pick_client_cert(c->o, s, st, &cert, c->r) < 0)
		return CAPF_ENOENT;
	ret = client_tls_open(t, host, port, cert, c->o->trust, c->o->timeout_ms);
	if (ret < 0) {
		replay_result_fail(c->r, "TLS: %s", t->errtext[0] ? t->errtext : capf_strerror(ret));
		return CAPF_ENOENT;
	}
	/* The same server configuration negotiates the same parameters. */
	name = gnutls_protocol_get_name(gnutls_protocol_get_version(t->session));
	if (s->tls_version[0] && strcmp(s->tls_version, name ? name : "")) {
		replay_result_set(c->r, -1, "", "tls_version", s->tls_version, name ? name : "?");
		return CAPF_ENOENT;
	}
	name = gnutls_ciphersuite_get(t->session);
	if (s->tls_cipher[0] && strcmp(s->tls_cipher, name ? name : "unknown")) {
		replay_result_set(c->r, -1, "", "tls_cipher", s->tls_cipher, name ? name : "unknown");
		return CAPF_ENOENT;
	}
	return 0;
}

void replay_learn(const struct replay_opts *o, struct replay_state *st, struct session_ctx *c)
{
	const struct transcript_session *s = c->s;
	struct replay_dev *dev;
	char crt[PATH_MAX], key[PATH_MAX];

	if (!c->end_ok || !(dev = replay_state_dev(st, s->device)))
		return;
	if (o->lsc_dir) {
		snprintf(crt, sizeof(crt), "%s/%s-lsc.pem", o->lsc_dir, s->device);
		snprintf(key, sizeof(key), "%s/%s-lsc.key", o->lsc_dir, s->device);
	}
	if (c->delete_sent) {
		pki_pair_deinit(&dev->lsc);
		if (o->lsc_dir) {
			(void)unlink(crt);
			(void)unlink(key);
		}
		return;
	}
	if (!c->delivered || !c->key)
		return;
	pki_pair_deinit(&dev->lsc);
	if (pair_from(&dev->lsc, c->delivered, c->delivered_len, c->key) < 0)
		return;
	if (c->have_recorded)
		(void)replay_state_cert_add(o, st, c->recorded_sha256, &dev->lsc);
	if (o->lsc_dir && pki_write_pair(&dev->lsc, crt, key) < 0)
		fprintf(stderr, REPLAY_PROG ": cannot write %s\n", crt);
}

void replay_sleep_until(double when)
{
	double left = when - replay_now();
	struct timespec ts;

	if (left <= 0)
		return;
	ts.tv_sec = (time_t)left;
	ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Sends recorded message m (made anew where it must be); false: stop. */
static bool send_phone(struct session_ctx *c, struct replay_state *st, struct client_tls *t,
		       const struct transcript_msg *m, bool *closed)
{
	uint8_t *frame = NULL;
	size_t frame_len = 0;
	char why[160] = "";
	int ret = CAPF_EBADMSG;

	if (!c->o->raw && !strcmp(m->type, "CsrSubmit")) {
		if (c->key)
			gnutls_x509_privkey_deinit(c->key);
		c->key = NULL;
		ret = remake_csr(st, c->s, m, t->session, &frame, &frame_len, &c->key, why,
				 sizeof(why));
		if (ret < 0 && ret != CAPF_EBADMSG) {
			replay_result_fail(c->r, "message %u (CsrSubmit): %s", m->index, why);
			return false;
		}
	}
	if (ret == CAPF_EBADMSG) {
		/* As recorded: with its frame header, unless it was raw bytes. */
		bool raw = !strcmp(m->type, "raw");

		frame_len = m->len + (raw ? 0 : FRAME_HEADER_LEN);
		frame = malloc(frame_len ? frame_len : 1);
		if (!frame) {
			replay_result_fail(c->r, "out of memory");
			return false;
		}
		if (!raw)
			frame_write_header(frame, (uint32_t)m->len);
		if (m->len)
			memcpy(frame + (raw ? 0 : FRAME_HEADER_LEN), m->payload, m->len);
	}
	if (!strcmp(m->type, "DeleteResult") && m->len == 2 && m->payload[1] == 0)
		c->delete_sent = true;
	ret = client_tls_send_raw(t, frame, frame_len);
	free(frame);
	if (ret == CAPF_ECONNRESET) {
		/* The server closed; what it said before that comes next. */
		*closed = true;
		return true;
	}
	if (ret < 0) {
		replay_result_fail(c->r, "message %u (%s): cannot send: %s", m->index, m->type,
			    t->errtext[0] ? t->errtext : capf_strerror(ret));
		return false;
	}
	return true;
}

int replay_session(const struct replay_opts *o, const struct transcript_session *s,
		   struct replay_state *st, struct replay_result *r)
{
	struct client_tls t = CLIENT_TLS_INIT;
	struct session_ctx c = { .o = o, .s = s, .r = r };
	double t0 = replay_now(), base;
	bool closed = false;
	int ret;

	if (!strcmp(s->protocol, "cisco"))
		return replay_cisco_session(o, s, st, r);
	memset(r, 0, sizeof(*r));
	r->index = -1;
	if (replay_open_tls(&c, st, o->host, o->port, &t) < 0)
		goto out;
	base = replay_now();
	for (size_t i = 0; i < s->nmsgs; i++) {
		const struct transcript_msg *m = &s->msgs[i];
		Capf__PhoneMessage *got = NULL;
		char g[200];

		if (m->dir == TRANSCRIPT_PHONE) {
			if (closed)
				continue;
			if (o->pace)
				replay_sleep_until(base + m->t);
			if (!send_phone(&c, st, &t, m, &closed))
				goto out;
			r->nmsgs++;
			continue;
		}
		ret = client_phone_recv(&t, &got);
		if (ret < 0) {
			snprintf(g, sizeof(g), "nothing (%s)",
				 t.errtext[0] ? t.errtext : capf_strerror(ret));
			replay_result_set(r, (long)m->index, m->type, "type", m->type, g);
			goto out;
		}
		r->nmsgs++;
		if (!replay_compare(&c, m, got)) {
			capf__phone_message__free_unpacked(got, NULL);
			goto out;
		}
		capf__phone_message__free_unpacked(got, NULL);
	}
	replay_learn(o, st, &c);
out:
	client_tls_close(&t);
	if (c.key)
		gnutls_x509_privkey_deinit(c.key);
	free(c.delivered);
	r->seconds = replay_now() - t0;
	return 0;
}
