/*
 * tools/replay/compare.c - comparing a server's message with the recorded
 * one, masking what must differ from one run to the next: certificates
 * are compared by what they say (subject, key type, validity length, the
 * key they certify, their issuer), texts with their times and long hex
 * words masked.
 */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>

#include "tools/replay/internal.h"

void replay_result_set(struct replay_result *r, long index, const char *type, const char *field,
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

/* ---- comparing -------------------------------------------------------- */


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
	replay_result_set(c->r, m->index, m->type, field, w, g);
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
	replay_result_set(c->r, m->index, m->type, "code", w, g);
	return false;
}

bool replay_compare_text(struct session_ctx *c, const struct transcript_msg *m, const char *field,
			 const char *want, const char *got)
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
	replay_result_set(c->r, m->index, m->type, field, w, g);
	return false;
}

bool replay_compare_cert(struct session_ctx *c, const struct transcript_msg *m, const char *field,
			 const uint8_t *want, size_t want_len, const uint8_t *got, size_t got_len)
{
	struct cert_facts fw, fg;
	uint8_t id[64];
	size_t id_len = sizeof(id);
	char w[32], g[32], f[48];

	cert_facts(want, want_len, &fw);
	cert_facts(got, got_len, &fg);
	if (fw.ok != fg.ok) {
		replay_result_set(c->r, m->index, m->type, field,
				  fw.ok ? "a certificate" : "no certificate",
				  fg.ok ? "a certificate" : "no certificate");
		return false;
	}
	if (fg.ok) {
		if (strcmp(fw.subject, fg.subject)) {
			snprintf(f, sizeof(f), "%s.subject", field);
			replay_result_set(c->r, m->index, m->type, f, fw.subject, fg.subject);
			return false;
		}
		if (strcmp(fw.key, fg.key)) {
			snprintf(f, sizeof(f), "%s.key_type", field);
			replay_result_set(c->r, m->index, m->type, f, fw.key, fg.key);
			return false;
		}
		if (fw.validity != fg.validity) {
			snprintf(w, sizeof(w), "%lld s", fw.validity);
			snprintf(g, sizeof(g), "%lld s", fg.validity);
			snprintf(f, sizeof(f), "%s.validity", field);
			replay_result_set(c->r, m->index, m->type, f, w, g);
			return false;
		}
		if (c->key &&
		    (gnutls_x509_privkey_get_key_id(c->key, GNUTLS_KEYID_USE_SHA256, id, &id_len) < 0 ||
		     id_len != fg.key_id_len || memcmp(id, fg.key_id, id_len))) {
			snprintf(f, sizeof(f), "%s.key", field);
			replay_result_set(c->r, m->index, m->type, f, "the key the phone sent",
					  "another key");
			return false;
		}
		if (!client_trust_verify(c->o->trust, got, got_len)) {
			snprintf(f, sizeof(f), "%s.issuer", field);
			replay_result_set(c->r, m->index, m->type, f, "verifies against --ca",
					  "does not verify against --ca");
			return false;
		}
	}
	free(c->delivered);
	c->delivered = NULL;
	c->delivered_len = 0;
	c->have_recorded = false;
	if (got_len > 0) {
		c->delivered = malloc(got_len);
		if (c->delivered) {
			memcpy(c->delivered, got, got_len);
			c->delivered_len = got_len;
		}
	}
	if (want_len > 0 && gnutls_hash_fast(GNUTLS_DIG_SHA256, want, want_len,
					     c->recorded_sha256) >= 0)
		c->have_recorded = true;
	return true;
}

static bool cmp_certificate(struct session_ctx *c, const struct transcript_msg *m,
			    const Capf__CertificateDelivery *want, const Capf__CertificateDelivery *got)
{
	if (!replay_compare_cert(c, m, "certificate", want->certificate.data,
				 want->certificate.len, got->certificate.data, got->certificate.len))
		return false;
	return cmp_uint(c, m, "chain.count", (unsigned)want->n_chain, (unsigned)got->n_chain);
}

bool replay_compare(struct session_ctx *c, const struct transcript_msg *m,
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
		replay_result_set(c->r, m->index, m->type, "type", w, g);
		goto out;
	}
	switch (got->body_case) {
	case CAPF__PHONE_MESSAGE__BODY_OP_REQUEST:
		same = cmp_uint(c, m, "version", want->op_request->version, got->op_request->version);
		if (same && want->op_request->op != got->op_request->op) {
			replay_result_set(c->r, m->index, m->type, "op", op_name(want->op_request->op),
				   op_name(got->op_request->op));
			same = false;
		}
		if (same && want->op_request->key_type != got->op_request->key_type) {
			replay_result_set(c->r, m->index, m->type, "key_type",
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
		       replay_compare_text(c, m, "text", want->end->text, got->end->text);
		if (same && got->end->code == 0)
			c->end_ok = true;
		break;
	case CAPF__PHONE_MESSAGE__BODY_ERROR:
		same = cmp_code(c, m, want->error->code, got->error->code) &&
		       replay_compare_text(c, m, "text", want->error->text, got->error->text);
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
