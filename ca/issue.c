/*
 * ca/issue.c - LSC issuance. The profile is doc/certificate-profile.md;
 * every field is set here from the device record and the CA, and only the
 * public key comes from the phone's request.
 *
 * The certificate is encoded here in DER (ca/der.c) rather than through
 * GnuTLS's certificate object: that object builds every field as a
 * libtasn1 node and costs more than the signature itself, and the
 * profile is fixed, so most of the encoding is constant bytes.
 *
 * Issuance comes in two steps, so that no thread has to wait for the
 * signature: ca_issue_prepare() encodes the TBSCertificate, someone has
 * it signed (the signer process, asynchronously), ca_issue_complete()
 * wraps the signature. ca_issue() does all three in one call.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "ca/internal.h"

/* Constant extensions of every LSC (RFC 5280 4.2.1.9, 4.2.1.12). */
static const uint8_t ext_basic_constraints[] = {
	/* basicConstraints, critical, cA FALSE (the DEFAULT, so left out) */
	0x30, 0x0c, 0x06, 0x03, 0x55, 0x1d, 0x13, 0x01, 0x01, 0xff, 0x04, 0x02, 0x30, 0x00,
};
static const uint8_t ext_key_usage_ec[] = {
	/* keyUsage, critical, digitalSignature */
	0x30, 0x0e, 0x06, 0x03, 0x55, 0x1d, 0x0f, 0x01, 0x01, 0xff, 0x04, 0x04,
	0x03, 0x02, 0x07, 0x80,
};
static const uint8_t ext_key_usage_rsa[] = {
	/* keyUsage, critical, digitalSignature and keyEncipherment */
	0x30, 0x0e, 0x06, 0x03, 0x55, 0x1d, 0x0f, 0x01, 0x01, 0xff, 0x04, 0x04,
	0x03, 0x02, 0x05, 0xa0,
};
static const uint8_t ext_eku[] = {
	/* extKeyUsage, not critical: serverAuth, clientAuth */
	0x30, 0x1d, 0x06, 0x03, 0x55, 0x1d, 0x25, 0x04, 0x16, 0x30, 0x14,
	0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01,
	0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02,
};
static const uint8_t oid_ski[] = {0x06, 0x03, 0x55, 0x1d, 0x0e};
static const uint8_t oid_aki[] = {0x06, 0x03, 0x55, 0x1d, 0x23};
static const uint8_t oid_cn[] = {0x06, 0x03, 0x55, 0x04, 0x03};

/* PrintableString's characters (X.680 41.4); others need UTF8String. */
static int printable(const char *s, size_t len)
{
	static const char extra[] = " '()+,-./:=?";
	size_t i;

	for (i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      (c != '\0' && strchr(extra, c) != NULL)))
			return 0;
	}
	return 1;
}

/* Encodes the TBSCertificate of an LSC into tbs. */
static void encode_tbs(struct ca_der *tbs, const struct ca_issuer *is, const gnutls_datum_t *spki,
		       const uint8_t key_id[CA_KEY_ID_LEN], int pk,
		       const uint8_t serial[CA_SERIAL_LEN], time_t not_before, time_t not_after,
		       const char *name, size_t name_len)
{
	static const uint8_t version_v3[] = {0xa0, 0x03, 0x02, 0x01, 0x02};
	struct ca_der t = {0}, u = {0}, exts = {0};

	ca_der_put(tbs, version_v3, sizeof(version_v3));
	ca_der_uint(tbs, serial, CA_SERIAL_LEN);
	if (ca_der_sigalg(tbs, is->sign_algo) < 0)
		tbs->err = CAPF_ENOTSUP;
	ca_der_put(tbs, is->raw_dn.data, is->raw_dn.size);
	ca_der_time(&t, not_before);
	ca_der_time(&t, not_after);
	ca_der_wrap(tbs, 0x30, &t);

	/* subject: SEQUENCE { SET { SEQUENCE { id-at-commonName, string } } } */
	ca_der_put(&t, oid_cn, sizeof(oid_cn));
	ca_der_head(&t, printable(name, name_len) ? 0x13 : 0x0c, name_len);
	ca_der_put(&t, name, name_len);
	ca_der_wrap(&u, 0x30, &t);
	ca_der_wrap(&t, 0x31, &u);
	ca_der_wrap(tbs, 0x30, &t);

	ca_der_put(tbs, spki->data, spki->size);

	/* extensions [3] { basicConstraints, keyUsage, extKeyUsage, SKI, AKI } */
	ca_der_put(&exts, ext_basic_constraints, sizeof(ext_basic_constraints));
	if (pk == GNUTLS_PK_RSA)
		ca_der_put(&exts, ext_key_usage_rsa, sizeof(ext_key_usage_rsa));
	else
		ca_der_put(&exts, ext_key_usage_ec, sizeof(ext_key_usage_ec));
	ca_der_put(&exts, ext_eku, sizeof(ext_eku));
	ca_der_head(&t, 0x04, CA_KEY_ID_LEN);
	ca_der_put(&t, key_id, CA_KEY_ID_LEN);
	ca_der_put(&u, oid_ski, sizeof(oid_ski));
	ca_der_wrap(&u, 0x04, &t);
	ca_der_wrap(&exts, 0x30, &u);
	ca_der_head(&t, 0x80, is->ski_len); /* [0] keyIdentifier */
	ca_der_put(&t, is->ski, is->ski_len);
	ca_der_wrap(&u, 0x30, &t);
	ca_der_put(&t, oid_aki, sizeof(oid_aki));
	ca_der_wrap(&t, 0x04, &u);
	ca_der_wrap(&exts, 0x30, &t);
	ca_der_wrap(&t, 0x30, &exts);
	ca_der_wrap(tbs, 0xa3, &t);
}

/* Device names are printable ASCII of 1 to 64 characters; anything else
 * would need a string type and checks that no name needs. */
static int name_valid(const char *name, size_t *len)
{
	size_t i;

	if (name == NULL)
		return 0;
	*len = strlen(name);
	if (*len == 0 || *len > CA_CN_MAX)
		return 0;
	for (i = 0; i < *len; i++)
		if ((unsigned char)name[i] < 0x20 || (unsigned char)name[i] > 0x7e)
			return 0;
	return 1;
}

/* ca_issue_prepare() for a key given by its parts. */
static int prepare(struct ca *ca, const gnutls_datum_t *spki, const uint8_t key_id[CA_KEY_ID_LEN],
		   int pk, const char *device_name, time_t now, unsigned days, struct ca_tbs *out)
{
	struct ca_der tbs = {0}, body = {0};
	struct ca_issuer *is;
	size_t name_len;
	int ret;

	if (!name_valid(device_name, &name_len) || days > CA_MAX_DAYS || spki->size == 0)
		return CAPF_EINVAL;
	/* The issuer is the current CA when the call starts; a rollover
	 * that happens meanwhile affects the next call. Issuers live until
	 * ca_free(), so the pointer stays good without the lock. */
	pthread_rwlock_rdlock(&ca->lock);
	is = ca->current;
	pthread_rwlock_unlock(&ca->lock);
	if (days == 0)
		days = ca->lsc_days;

	out->not_before_ = now - CA_BACKDATE_SECONDS;
	out->not_after_ = now + (time_t)days * 86400;
	{
		/* An LSC never outlives, nor starts before, the CA that signs
		 * it: a verifier would reject the part outside. */
		time_t ca_nb = gnutls_x509_crt_get_activation_time(is->crt);
		time_t ca_na = gnutls_x509_crt_get_expiration_time(is->crt);

		if (ca_nb != (time_t)-1 && out->not_before_ < ca_nb)
			out->not_before_ = ca_nb;
		if (ca_na != (time_t)-1 && out->not_after_ > ca_na)
			out->not_after_ = ca_na;
		if (out->not_after_ <= out->not_before_)
			return CAPF_EEXPIRED;
	}
	ret = ca_random_serial(out->serial_);
	if (ret < 0)
		return ret;
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, spki->data, spki->size, out->spki_sha256_) < 0)
		return CAPF_ECRYPTO;
	encode_tbs(&tbs, is, spki, key_id, pk, out->serial_, out->not_before_, out->not_after_,
		   device_name, name_len);
	ca_der_wrap(&body, 0x30, &tbs);
	if (body.err) {
		free(body.p);
		return body.err == CAPF_ENOMEM ? CAPF_ENOMEM : CAPF_ECRYPTO;
	}
	out->data = body.p;
	out->len = body.len;
	out->key_ref = is->key_ref;
	out->sign_algo = (unsigned)is->sign_algo;
	out->issuer_ = is;
	return 0;
}

int ca_issue_prepare(struct ca *ca, const struct ca_pubkey *key, const char *device_name,
		     time_t now, unsigned days, struct ca_tbs *out)
{
	int ret;

	if (out == NULL)
		return CAPF_EINVAL;
	memset(out, 0, sizeof(*out));
	if (ca == NULL || key == NULL)
		return CAPF_EINVAL;
	ret = prepare(ca, &key->spki, key->key_id, key->pk, device_name, now, days, out);
	if (ret == 0 && out->key_ref == NULL)
		ret = CAPF_ENOTSUP;
	if (ret < 0)
		ca_tbs_deinit(out);
	return ret;
}

int ca_issue_complete(struct ca_tbs *tbs, const uint8_t *sig, size_t sig_len, struct ca_lsc *out)
{
	const struct ca_issuer *is;
	struct ca_der body = {0}, cert = {0};
	int ret;

	if (out == NULL)
		return CAPF_EINVAL;
	memset(out, 0, sizeof(*out));
	if (tbs == NULL || tbs->data == NULL || tbs->issuer_ == NULL || sig == NULL ||
	    sig_len == 0 || sig_len > CA_CERT_MAX)
		return CAPF_EINVAL;
	is = tbs->issuer_;
	/* Certificate ::= SEQUENCE { tbs, signatureAlgorithm, BIT STRING } */
	ca_der_put(&body, tbs->data, tbs->len);
	if (ca_der_sigalg(&body, (gnutls_sign_algorithm_t)tbs->sign_algo) < 0) {
		ret = CAPF_EINVAL;
		goto out;
	}
	ca_der_head(&body, 0x03, sig_len + 1);
	ca_der_put(&body, (const uint8_t[]){0x00}, 1);
	ca_der_put(&body, sig, sig_len);
	ca_der_wrap(&cert, 0x30, &body);
	if (cert.err) {
		ret = cert.err;
		goto out;
	}
	out->der = cert.p;
	out->der_len = cert.len;
	cert.p = NULL;
	memcpy(out->serial, tbs->serial_, sizeof(out->serial));
	out->not_before = tbs->not_before_;
	out->not_after = tbs->not_after_;
	out->issuer_der = is->der.data;
	out->issuer_der_len = is->der.size;
	memcpy(out->spki_sha256, tbs->spki_sha256_, sizeof(out->spki_sha256));
	ret = 0;
out:
	free(body.p);
	free(cert.p);
	return ret;
}

void ca_tbs_deinit(struct ca_tbs *tbs)
{
	if (tbs == NULL)
		return;
	free(tbs->data);
	memset(tbs, 0, sizeof(*tbs));
}

int ca_issue(struct ca *ca, const struct ca_csr *csr, const char *device_name, time_t now,
	     struct ca_lsc *out)
{
	struct ca_tbs tbs = {0};
	gnutls_datum_t data, sig = {NULL, 0};
	int ret;

	if (out == NULL)
		return CAPF_EINVAL;
	memset(out, 0, sizeof(*out));
	if (ca == NULL || csr == NULL || csr->crq == NULL || csr->spki.size == 0)
		return CAPF_EINVAL;
	/* The key as ca_csr_parse() took it, without ca_pubkey_parse()'s
	 * narrower policy: ca_csr_check() decided already. */
	ret = prepare(ca, &csr->spki, csr->key_id, csr->pk, device_name, now, 0, &tbs);
	if (ret < 0)
		goto out;
	/* The signature through the issuer's key handle: a key held here, or
	 * the signer's through keyops. */
	data.data = tbs.data;
	data.size = (unsigned)tbs.len;
	(void)ca_key_ops_error();
	ret = ca_issuer_sign((struct ca_issuer *)tbs.issuer_, &data, &sig);
	if (ret < 0) {
		/* A signer that is away (restarting) is worth a retry. */
		ret = ca_key_ops_error() == CAPF_ERETRY ? CAPF_ERETRY : ca_gnutls_err(ret);
		goto out;
	}
	ret = ca_issue_complete(&tbs, sig.data, sig.size, out);
out:
	gnutls_free(sig.data);
	ca_tbs_deinit(&tbs);
	return ret;
}

int ca_issuer_test_issue(struct ca_issuer *is, unsigned *status)
{
	static const uint8_t serial[CA_SERIAL_LEN] = {0x01};
	static const char name[] = "capf-issuer-check";
	struct ca_der tbs = {0}, body = {0}, cert = {0};
	gnutls_pubkey_t pub = NULL;
	gnutls_x509_crt_t leaf = NULL;
	gnutls_datum_t spki = {NULL, 0}, data, sig = {NULL, 0}, der;
	uint8_t key_id[CA_KEY_ID_LEN];
	time_t nb, na;
	int ret;

	*status = 0;
	/* Any key will do as the subject's: the issuer's own. */
	CHECK_GNUTLS(gnutls_pubkey_init(&pub));
	CHECK_GNUTLS(gnutls_pubkey_import_x509(pub, is->crt, 0));
	CHECK_GNUTLS(gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &spki));
	ret = ca_key_id(pub, key_id);
	if (ret < 0)
		goto out;
	nb = gnutls_x509_crt_get_activation_time(is->crt);
	na = gnutls_x509_crt_get_expiration_time(is->crt);
	if (nb == (time_t)-1)
		nb = 0;
	if (na == (time_t)-1 || na <= nb)
		na = nb + 86400;
	encode_tbs(&tbs, is, &spki, key_id, gnutls_pubkey_get_pk_algorithm(pub, NULL), serial, nb,
		   na, name, sizeof(name) - 1);
	ca_der_wrap(&body, 0x30, &tbs);
	if (body.err) {
		ret = body.err == CAPF_ENOMEM ? CAPF_ENOMEM : CAPF_ECRYPTO;
		goto out;
	}
	data.data = body.p;
	data.size = (unsigned)body.len;
	(void)ca_key_ops_error();
	ret = ca_issuer_sign(is, &data, &sig);
	if (ret < 0) {
		ret = ca_key_ops_error() == CAPF_ERETRY ? CAPF_ERETRY : CAPF_ECRYPTO;
		goto out;
	}
	ca_der_sigalg(&body, is->sign_algo);
	ca_der_head(&body, 0x03, sig.size + 1);
	ca_der_put(&body, (const uint8_t[]){0x00}, 1);
	ca_der_put(&body, sig.data, sig.size);
	ca_der_wrap(&cert, 0x30, &body);
	if (cert.err) {
		ret = cert.err == CAPF_ENOMEM ? CAPF_ENOMEM : CAPF_ECRYPTO;
		goto out;
	}
	der.data = cert.p;
	der.size = (unsigned)cert.len;
	CHECK_GNUTLS(gnutls_x509_crt_init(&leaf));
	if (gnutls_x509_crt_import(leaf, &der, GNUTLS_X509_FMT_DER) < 0 ||
	    gnutls_x509_crt_verify(leaf, &is->crt, 1,
				   GNUTLS_VERIFY_DISABLE_TIME_CHECKS |
				       GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS,
				   status) < 0) {
		*status = GNUTLS_CERT_INVALID;
		ret = CAPF_ECONFIG;
		goto out;
	}
	ret = *status == 0 ? 0 : CAPF_ECONFIG;
out:
	gnutls_x509_crt_deinit(leaf);
	gnutls_free(sig.data);
	gnutls_free(spki.data);
	gnutls_pubkey_deinit(pub);
	free(body.p);
	free(cert.p);
	return ret;
}

void ca_lsc_deinit(struct ca_lsc *lsc)
{
	if (lsc == NULL)
		return;
	free(lsc->der);
	memset(lsc, 0, sizeof(*lsc));
}
