/*
 * tools/replay/session.c - replaying one recorded native session as the
 * phone: the run state (MICs, LSCs, keys), the CSR made anew, the
 * exchange; each server message goes to replay_compare()
 * (tools/replay/compare.c).
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

#define KEY_ID_LEN 32u

struct replay_dev {
	char name[80];
	struct pki_pair mic;     /* loaded once per run */
	bool have_mic;
	struct pki_pair lsc;     /* the LSC it got in this run, or zero */
};

struct replay_key {
	uint8_t recorded_id[KEY_ID_LEN]; /* SHA-256 key id of the recorded CSR's key */
	gnutls_x509_privkey_t key;       /* the key made for it in this run */
};

struct replay_state {
	struct replay_dev *devs;
	size_t ndevs;
	struct replay_key *keys;
	size_t nkeys;
};

struct replay_state *replay_state_new(void)
{
	return calloc(1, sizeof(struct replay_state));
}

void replay_state_free(struct replay_state *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->ndevs; i++) {
		pki_pair_deinit(&st->devs[i].mic);
		pki_pair_deinit(&st->devs[i].lsc);
	}
	for (size_t i = 0; i < st->nkeys; i++)
		gnutls_x509_privkey_deinit(st->keys[i].key);
	free(st->devs);
	free(st->keys);
	free(st);
}

static struct replay_dev *state_dev(struct replay_state *st, const char *name)
{
	struct replay_dev *grown;

	for (size_t i = 0; i < st->ndevs; i++)
		if (!strcmp(st->devs[i].name, name))
			return &st->devs[i];
	grown = realloc(st->devs, (st->ndevs + 1) * sizeof(*grown));
	if (!grown)
		return NULL;
	st->devs = grown;
	memset(&st->devs[st->ndevs], 0, sizeof(st->devs[0]));
	snprintf(st->devs[st->ndevs].name, sizeof(st->devs[0].name), "%s", name);
	return &st->devs[st->ndevs++];
}

static void result_fail(struct replay_result *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void result_fail(struct replay_result *r, const char *fmt, ...)
{
	va_list ap;

	r->failed = true;
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}

/* ---- the CSR made anew ------------------------------------------------ */

static int key_type_of(int pk, unsigned bits, gnutls_ecc_curve_t curve)
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
static int key_for(struct replay_state *st, const uint8_t *id, int key_type,
		   gnutls_x509_privkey_t *out)
{
	struct replay_key *grown;
	gnutls_x509_privkey_t key = NULL;
	int ret;

	*out = NULL;
	for (size_t i = 0; i < st->nkeys; i++) {
		if (memcmp(st->keys[i].recorded_id, id, KEY_ID_LEN))
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
	memcpy(st->keys[st->nkeys].recorded_id, id, KEY_ID_LEN);
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
	key_type = key_type_of(pk, bits, curve);
	if (key_type == 0) {
		snprintf(why, whylen, "the recorded CSR has a key this tool cannot make");
		goto out;
	}
	if (gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA256, id, &id_len) < 0 ||
	    id_len < KEY_ID_LEN)
		goto out;
	sig_ok = gnutls_x509_crq_verify(crq, 0) >= 0;
	ret = key_for(st, id, key_type, key);
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
	struct replay_dev *dev = state_dev(st, owner);
	char crt[PATH_MAX], key[PATH_MAX];
	int ret;

	*out = NULL;
	if (!dev)
		return CAPF_ENOMEM;
	if (!strcmp(s->client_cert, "lsc")) {
		if (!dev->lsc.crt && o->lsc_dir) {
			snprintf(crt, sizeof(crt), "%s/%s-lsc.pem", o->lsc_dir, owner);
			snprintf(key, sizeof(key), "%s/%s-lsc.key", o->lsc_dir, owner);
			if (pki_read_pair(crt, key, &dev->lsc) < 0)
				pki_pair_deinit(&dev->lsc);
		}
		if (!dev->lsc.crt) {
			result_fail(r, "the session presented an LSC, and %s got none earlier in this "
				       "run",
				    owner);
			return CAPF_ENOENT;
		}
		*out = &dev->lsc;
		return 0;
	}
	if (strcmp(s->client_cert, "mic"))
		return 0;
	if (!dev->have_mic) {
		if (o->mic) {
			snprintf(crt, sizeof(crt), "%s", o->mic);
			snprintf(key, sizeof(key), "%s", o->mic_key);
		} else if (o->mic_dir) {
			snprintf(crt, sizeof(crt), "%s/%s.pem", o->mic_dir, owner);
			snprintf(key, sizeof(key), "%s/%s.key", o->mic_dir, owner);
		} else {
			result_fail(r, "the session presented a MIC: --mic or --mic-dir is needed");
			return CAPF_EINVAL;
		}
		ret = pki_read_pair(crt, key, &dev->mic);
		if (ret < 0) {
			result_fail(r, "cannot read the MIC of %s (%s, %s): %s", owner, crt, key,
				    capf_strerror(ret));
			return ret;
		}
		dev->have_mic = true;
	}
	*out = &dev->mic;
	return 0;
}

/*
 * After a session that ended well: the device keeps or forgets its LSC,
 * in the run and, with --lsc-dir, for the runs that follow.
 */
static void learn(const struct replay_opts *o, struct replay_state *st,
		  const struct transcript_session *s, struct session_ctx *c)
{
	struct replay_dev *dev;
	gnutls_datum_t d = { c->delivered, (unsigned)c->delivered_len };
	char crt[PATH_MAX], key[PATH_MAX];

	if (!c->end_ok || !(dev = state_dev(st, s->device)))
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
	if (gnutls_x509_crt_init(&dev->lsc.crt) < 0)
		return;
	if (gnutls_x509_crt_import(dev->lsc.crt, &d, GNUTLS_X509_FMT_DER) < 0 ||
	    gnutls_x509_privkey_init(&dev->lsc.key) < 0 ||
	    gnutls_x509_privkey_cpy(dev->lsc.key, c->key) < 0) {
		pki_pair_deinit(&dev->lsc);
		return;
	}
	if (o->lsc_dir && pki_write_pair(&dev->lsc, crt, key) < 0)
		fprintf(stderr, REPLAY_PROG ": cannot write %s\n", crt);
}

static void sleep_until(double when)
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
			result_fail(c->r, "message %u (CsrSubmit): %s", m->index, why);
			return false;
		}
	}
	if (ret == CAPF_EBADMSG) {
		/* As recorded: with its frame header, unless it was raw bytes. */
		bool raw = !strcmp(m->type, "raw");

		frame_len = m->len + (raw ? 0 : FRAME_HEADER_LEN);
		frame = malloc(frame_len ? frame_len : 1);
		if (!frame) {
			result_fail(c->r, "out of memory");
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
		result_fail(c->r, "message %u (%s): cannot send: %s", m->index, m->type,
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
	const struct pki_pair *cert = NULL;
	const char *name;
	double t0 = replay_now(), base;
	bool closed = false;
	int ret;

	memset(r, 0, sizeof(*r));
	r->index = -1;
	if (strcmp(s->protocol, "native")) {
		result_fail(r, "only native sessions replay (this one is %s)", s->protocol);
		return CAPF_ENOTSUP;
	}
	if (pick_client_cert(o, s, st, &cert, r) < 0)
		goto out;
	ret = client_tls_open(&t, o->host, o->port, cert, o->trust, o->timeout_ms);
	if (ret < 0) {
		result_fail(r, "TLS: %s", t.errtext[0] ? t.errtext : capf_strerror(ret));
		goto out;
	}
	base = replay_now();
	/* The same server configuration negotiates the same parameters. */
	name = gnutls_protocol_get_name(gnutls_protocol_get_version(t.session));
	if (s->tls_version[0] && strcmp(s->tls_version, name ? name : "")) {
		replay_result_set(r, -1, "", "tls_version", s->tls_version, name ? name : "?");
		goto out;
	}
	name = gnutls_ciphersuite_get(t.session);
	if (s->tls_cipher[0] && strcmp(s->tls_cipher, name ? name : "unknown")) {
		replay_result_set(r, -1, "", "tls_cipher", s->tls_cipher, name ? name : "unknown");
		goto out;
	}
	for (size_t i = 0; i < s->nmsgs; i++) {
		const struct transcript_msg *m = &s->msgs[i];
		Capf__PhoneMessage *got = NULL;
		char g[200];

		if (m->dir == TRANSCRIPT_PHONE) {
			if (closed)
				continue;
			if (o->pace)
				sleep_until(base + m->t);
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
	learn(o, st, s, &c);
out:
	client_tls_close(&t);
	if (c.key)
		gnutls_x509_privkey_deinit(c.key);
	free(c.delivered);
	r->seconds = replay_now() - t0;
	return 0;
}
