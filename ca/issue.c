/*
 * ca/issue.c - LSC issuance. The profile is doc/certificate-profile.md;
 * every field is set here from the device record and the CA, and only the
 * public key comes from the phone's request.
 *
 * The certificate is encoded here in DER (ca/der.c) rather than through
 * GnuTLS's certificate object: that object builds every field as a
 * libtasn1 node and costs more than the signature itself, and the
 * profile is fixed, so most of the encoding is constant bytes. The
 * signature is GnuTLS's, with the CA key loaded once.
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
static void encode_tbs(struct ca_der *tbs, const struct ca_issuer *is, const struct ca_csr *csr,
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

	ca_der_put(tbs, csr->spki.data, csr->spki.size);

	/* extensions [3] { basicConstraints, keyUsage, extKeyUsage, SKI, AKI } */
	ca_der_put(&exts, ext_basic_constraints, sizeof(ext_basic_constraints));
	if (csr->pk == GNUTLS_PK_RSA)
		ca_der_put(&exts, ext_key_usage_rsa, sizeof(ext_key_usage_rsa));
	else
		ca_der_put(&exts, ext_key_usage_ec, sizeof(ext_key_usage_ec));
	ca_der_put(&exts, ext_eku, sizeof(ext_eku));
	ca_der_head(&t, 0x04, CA_KEY_ID_LEN);
	ca_der_put(&t, csr->key_id, CA_KEY_ID_LEN);
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

int ca_issue(struct ca *ca, const struct ca_csr *csr, const char *device_name, time_t now,
	     struct ca_lsc *out)
{
	struct ca_der tbs = {0}, body = {0}, cert = {0};
	gnutls_datum_t data, sig = {NULL, 0};
	struct ca_issuer *is;
	uint8_t serial[CA_SERIAL_LEN];
	size_t name_len, i;
	time_t not_before, not_after;
	int ret;

	if (out == NULL)
		return CAPF_EINVAL;
	memset(out, 0, sizeof(*out));
	if (ca == NULL || csr == NULL || csr->crq == NULL || device_name == NULL ||
	    csr->spki.size == 0)
		return CAPF_EINVAL;
	name_len = strlen(device_name);
	if (name_len == 0 || name_len > CA_CN_MAX)
		return CAPF_EINVAL;
	/* Device names are printable ASCII; anything else would need a
	 * string type and checks that no name needs. */
	for (i = 0; i < name_len; i++)
		if ((unsigned char)device_name[i] < 0x20 || (unsigned char)device_name[i] > 0x7e)
			return CAPF_EINVAL;

	/* The issuer is the current CA when the call starts; a rollover
	 * that happens meanwhile affects the next call. Issuers live until
	 * ca_free(), so the pointer stays good without the lock. */
	pthread_rwlock_rdlock(&ca->lock);
	is = ca->current;
	pthread_rwlock_unlock(&ca->lock);

	not_before = now - CA_BACKDATE_SECONDS;
	not_after = now + (time_t)ca->lsc_days * 86400;
	ret = ca_random_serial(serial);
	if (ret < 0)
		return ret;
	encode_tbs(&tbs, is, csr, serial, not_before, not_after, device_name, name_len);
	ca_der_wrap(&body, 0x30, &tbs);
	if (body.err) {
		ret = body.err == CAPF_ENOMEM ? CAPF_ENOMEM : CAPF_ECRYPTO;
		goto out;
	}

	/*
	 * GnuTLS promises thread safety per object, not for one key shared
	 * by several threads; a PKCS#11 key may also sit behind a single
	 * token session. Signing therefore holds the CA's lock. It costs one
	 * signature of serialisation per LSC, far below what the store's
	 * fsync already costs.
	 */
	data.data = body.p;
	data.size = (unsigned)body.len;
	pthread_mutex_lock(&is->sign_lock);
	ret = gnutls_privkey_sign_data2(is->key, is->sign_algo, 0, &data, &sig);
	pthread_mutex_unlock(&is->sign_lock);
	if (ret < 0) {
		ret = ca_gnutls_err(ret);
		goto out;
	}
	if (ca_der_sigalg(&body, is->sign_algo) < 0) {
		ret = CAPF_ECRYPTO;
		goto out;
	}
	ca_der_head(&body, 0x03, sig.size + 1);
	ca_der_put(&body, (const uint8_t[]){0x00}, 1);
	ca_der_put(&body, sig.data, sig.size);
	ca_der_wrap(&cert, 0x30, &body);
	if (cert.err) {
		ret = cert.err;
		goto out;
	}

	out->der = cert.p;
	out->der_len = cert.len;
	cert.p = NULL;
	memcpy(out->serial, serial, sizeof(serial));
	out->not_before = not_before;
	out->not_after = not_after;
	out->issuer_der = is->der.data;
	out->issuer_der_len = is->der.size;
	ret = 0;
out:
	gnutls_free(sig.data);
	free(tbs.p);
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
