/*
 * tools/replay/session.c - replaying one recorded native session as the
 * phone and comparing the server's answers with the recorded ones.
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

#include "tools/replay/replay.h"

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

static void result_set(struct replay_result *r, long index, const char *type, const char *field,
		       const char *want, const char *got)
{
	r->differs = true;
	r->index = index;
	snprintf(r->type, sizeof(r->type), "%s", type);
	snprintf(r->field, sizeof(r->field), "%s", field);
	snprintf(r->want, sizeof(r->want), "%s", want);
	snprintf(r->got, sizeof(r->got), "%s", got);
	if (index < 0)
		snprintf(r->text, sizeof(r->text), "session: %s: recorded %s, got %s", field, want,
			 got);
	else
		snprintf(r->text, sizeof(r->text), "message %ld (%s): %s: recorded %s, got %s",
			 index, type, field, want, got);
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

/* ---- masking ---------------------------------------------------------- */

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_word(char c)
{
	return is_hex(c) || (c >= 'g' && c <= 'z') || (c >= 'G' && c <= 'Z') || c == '_';
}

/* Whether s starts with YYYY-MM-DDTHH:MM:SSZ. */
static bool is_iso_time(const char *s)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";

	for (size_t i = 0; shape[i]; i++) {
		if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
			return false;
	}
	return true;
}

/*
 * Server texts name serials, fingerprints and times, which differ from one
 * run to the next: each ISO 8601 time and each word of 8 or more hex
 * digits becomes a placeholder, the rest must match.
 */
static void mask_text(const char *in, char *out, size_t cap)
{
	size_t n = 0;

	while (*in && n + 8 < cap) {
		size_t run = 0;

		if (is_iso_time(in)) {
			memcpy(out + n, "<time>", 6);
			n += 6;
			in += 20;
			continue;
		}
		while (is_hex(in[run]))
			run++;
		if (run >= 8 && !is_word(in[run]) && (n == 0 || !is_word(out[n - 1]))) {
			memcpy(out + n, "<hex>", 5);
			n += 5;
			in += run;
			continue;
		}
		out[n++] = *in++;
	}
	out[n] = '\0';
}

/* ---- certificates ----------------------------------------------------- */

struct cert_facts {
	bool ok;
	char subject[256];
	char key[32];
	long long validity;  /* not after - not before, seconds */
	uint8_t key_id[64];
	size_t key_id_len;
};

static void key_desc(int pk, unsigned bits, int curve, char *out, size_t cap)
{
	if (pk == GNUTLS_PK_RSA)
		snprintf(out, cap, "rsa-%u", bits);
	else if (pk == GNUTLS_PK_ECDSA)
		snprintf(out, cap, "ec-%s", gnutls_ecc_curve_get_name((gnutls_ecc_curve_t)curve));
	else
		snprintf(out, cap, "%s", gnutls_pk_get_name((gnutls_pk_algorithm_t)pk));
}

static void cert_facts(const uint8_t *der, size_t len, struct cert_facts *f)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t d = { (unsigned char *)der, (unsigned)len };
	gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
	size_t n = sizeof(f->subject);
	unsigned bits = 0;
	int pk;

	memset(f, 0, sizeof(*f));
	if (len == 0 || len > UINT_MAX || gnutls_x509_crt_init(&crt) < 0)
		return;
	if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) < 0)
		goto out;
	if (gnutls_x509_crt_get_dn(crt, f->subject, &n) < 0)
		snprintf(f->subject, sizeof(f->subject), "?");
	pk = gnutls_x509_crt_get_pk_algorithm(crt, &bits);
	if (gnutls_pubkey_init(&pub) >= 0 && gnutls_pubkey_import_x509(pub, crt, 0) >= 0 &&
	    pk == GNUTLS_PK_ECDSA)
		(void)gnutls_pubkey_export_ecc_raw(pub, &curve, NULL, NULL);
	key_desc(pk, bits, curve, f->key, sizeof(f->key));
	f->validity = (long long)gnutls_x509_crt_get_expiration_time(crt) -
		      (long long)gnutls_x509_crt_get_activation_time(crt);
	f->key_id_len = sizeof(f->key_id);
	if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, f->key_id, &f->key_id_len) < 0)
		f->key_id_len = 0;
	f->ok = true;
out:
	if (pub)
		gnutls_pubkey_deinit(pub);
	gnutls_x509_crt_deinit(crt);
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

/* ---- comparing -------------------------------------------------------- */

struct session_ctx {
	const struct replay_opts *o;
	const struct transcript_session *s;
	struct replay_result *r;
	gnutls_x509_privkey_t key;   /* of the last CSR sent */
	uint8_t *delivered;          /* the last certificate delivered (malloc'd) */
	size_t delivered_len;
	bool delete_sent;            /* DeleteResult{0} sent */
	bool end_ok;                 /* End{0} received */
};

static void describe(const Capf__PhoneMessage *m, char *out, size_t cap)
{
	if (!m) {
		snprintf(out, cap, "an undecodable message");
		return;
	}
	if (m->body_case == CAPF__PHONE_MESSAGE__BODY_ERROR)
		snprintf(out, cap, "Error %u (%s)", m->error->code, capf_errname((int)m->error->code));
	else if (m->body_case == CAPF__PHONE_MESSAGE__BODY_END)
		snprintf(out, cap, "End %u (%s)", m->end->code,
			 m->end->code ? capf_errname((int)m->end->code) : "OK");
	else
		snprintf(out, cap, "%s", transcript_native_type(m->body_case));
}

static bool cmp_uint(struct session_ctx *c, const struct transcript_msg *m, const char *field,
		     unsigned want, unsigned got)
{
	char w[32], g[32];

	if (want == got)
		return true;
	snprintf(w, sizeof(w), "%u", want);
	snprintf(g, sizeof(g), "%u", got);
	result_set(c->r, m->index, m->type, field, w, g);
	return false;
}

static bool cmp_code(struct session_ctx *c, const struct transcript_msg *m, unsigned want,
		     unsigned got)
{
	char w[64], g[64];

	if (want == got)
		return true;
	snprintf(w, sizeof(w), "%u (%s)", want, want ? capf_errname((int)want) : "OK");
	snprintf(g, sizeof(g), "%u (%s)", got, got ? capf_errname((int)got) : "OK");
	result_set(c->r, m->index, m->type, "code", w, g);
	return false;
}

static bool cmp_text(struct session_ctx *c, const struct transcript_msg *m, const char *want,
		     const char *got)
{
	char w[256], g[256];

	if (c->o->strict_text) {
		snprintf(w, sizeof(w), "%s", want ? want : "");
		snprintf(g, sizeof(g), "%s", got ? got : "");
	} else {
		mask_text(want ? want : "", w, sizeof(w));
		mask_text(got ? got : "", g, sizeof(g));
	}
	if (!strcmp(w, g))
		return true;
	result_set(c->r, m->index, m->type, "text", w, g);
	return false;
}

static bool cmp_certificate(struct session_ctx *c, const struct transcript_msg *m,
			    const Capf__CertificateDelivery *want, const Capf__CertificateDelivery *got)
{
	struct cert_facts fw, fg;
	uint8_t id[64];
	size_t id_len = sizeof(id);
	char w[32], g[32];

	cert_facts(want->certificate.data, want->certificate.len, &fw);
	cert_facts(got->certificate.data, got->certificate.len, &fg);
	if (fw.ok != fg.ok) {
		result_set(c->r, m->index, m->type, "certificate",
			   fw.ok ? "a certificate" : "no certificate",
			   fg.ok ? "a certificate" : "no certificate");
		return false;
	}
	if (fg.ok) {
		if (strcmp(fw.subject, fg.subject)) {
			result_set(c->r, m->index, m->type, "certificate.subject", fw.subject,
				   fg.subject);
			return false;
		}
		if (strcmp(fw.key, fg.key)) {
			result_set(c->r, m->index, m->type, "certificate.key_type", fw.key, fg.key);
			return false;
		}
		if (fw.validity != fg.validity) {
			snprintf(w, sizeof(w), "%lld s", fw.validity);
			snprintf(g, sizeof(g), "%lld s", fg.validity);
			result_set(c->r, m->index, m->type, "certificate.validity", w, g);
			return false;
		}
		if (c->key &&
		    (gnutls_x509_privkey_get_key_id(c->key, GNUTLS_KEYID_USE_SHA256, id, &id_len) < 0 ||
		     id_len != fg.key_id_len || memcmp(id, fg.key_id, id_len))) {
			result_set(c->r, m->index, m->type, "certificate.key",
				   "the key of the CSR sent", "another key");
			return false;
		}
		if (!client_trust_verify(c->o->trust, got->certificate.data, got->certificate.len)) {
			result_set(c->r, m->index, m->type, "certificate.issuer",
				   "verifies against --ca", "does not verify against --ca");
			return false;
		}
	}
	if (!cmp_uint(c, m, "chain.count", (unsigned)want->n_chain, (unsigned)got->n_chain))
		return false;
	free(c->delivered);
	c->delivered = NULL;
	c->delivered_len = 0;
	if (got->certificate.len > 0) {
		c->delivered = malloc(got->certificate.len);
		if (c->delivered) {
			memcpy(c->delivered, got->certificate.data, got->certificate.len);
			c->delivered_len = got->certificate.len;
		}
	}
	return true;
}

/* Compares a server message with the recorded one; false: r says how. */
static bool compare(struct session_ctx *c, const struct transcript_msg *m,
		    const Capf__PhoneMessage *got)
{
	Capf__PhoneMessage *want = NULL;
	char w[128], g[128];
	bool same = false;

	if (phone_msg_unpack(m->payload, m->len, &want) < 0)
		want = NULL;
	if (!want || want->body_case != got->body_case) {
		describe(want, w, sizeof(w));
		describe(got, g, sizeof(g));
		result_set(c->r, m->index, m->type, "type", w, g);
		goto out;
	}
	switch (got->body_case) {
	case CAPF__PHONE_MESSAGE__BODY_OP_REQUEST:
		same = cmp_uint(c, m, "version", want->op_request->version, got->op_request->version);
		if (same && want->op_request->op != got->op_request->op) {
			result_set(c->r, m->index, m->type, "op", op_name(want->op_request->op),
				   op_name(got->op_request->op));
			same = false;
		}
		if (same && want->op_request->key_type != got->op_request->key_type) {
			result_set(c->r, m->index, m->type, "key_type",
				   key_type_name(want->op_request->key_type),
				   key_type_name(got->op_request->key_type));
			same = false;
		}
		break;
	case CAPF__PHONE_MESSAGE__BODY_CERTIFICATE:
		same = cmp_certificate(c, m, want->certificate, got->certificate);
		break;
	case CAPF__PHONE_MESSAGE__BODY_END:
		same = cmp_code(c, m, want->end->code, got->end->code) &&
		       cmp_text(c, m, want->end->text, got->end->text);
		if (same && got->end->code == 0)
			c->end_ok = true;
		break;
	case CAPF__PHONE_MESSAGE__BODY_ERROR:
		same = cmp_code(c, m, want->error->code, got->error->code) &&
		       cmp_text(c, m, want->error->text, got->error->text);
		break;
	default:
		/* Messages that only phones send: the same type is all there is
		 * to compare, as the server should send none of them. */
		same = true;
		break;
	}
out:
	if (want)
		capf__phone_message__free_unpacked(want, NULL);
	return same;
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
		result_set(r, -1, "", "tls_version", s->tls_version, name ? name : "?");
		goto out;
	}
	name = gnutls_ciphersuite_get(t.session);
	if (s->tls_cipher[0] && strcmp(s->tls_cipher, name ? name : "unknown")) {
		result_set(r, -1, "", "tls_cipher", s->tls_cipher, name ? name : "unknown");
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
			result_set(r, (long)m->index, m->type, "type", m->type, g);
			goto out;
		}
		r->nmsgs++;
		if (!compare(&c, m, got)) {
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
