/*
 * ca/peer.c - what a certificate a phone presents says about itself (for
 * the enrollment core's evidence), and which CAPF CA issued an LSC (the
 * chain that goes with it when it is delivered again).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "ca/internal.h"

static int import_der(const uint8_t *der, size_t len, gnutls_x509_crt_t *out)
{
	gnutls_datum_t d = {(unsigned char *)der, (unsigned)len};
	int ret = 0;

	*out = NULL;
	if (der == NULL || len == 0 || len > CA_CERT_MAX)
		return CAPF_EBADMSG;
	CHECK_GNUTLS(gnutls_x509_crt_init(out));
	if (gnutls_x509_crt_import(*out, &d, GNUTLS_X509_FMT_DER) < 0) {
		gnutls_x509_crt_deinit(*out);
		*out = NULL;
		return CAPF_EBADMSG;
	}
out:
	return ret;
}

/* ca_cert_summarize() of a certificate parsed from der. */
static void summarize(gnutls_x509_crt_t crt, const uint8_t *der, size_t len,
		      struct ca_cert_summary *out)
{
	char cn[CA_CN_MAX * 4 + 8];
	size_t cn_len = 0, serial_len = sizeof(out->serial);

	/* A CN that breaks the identity rule's syntax is left empty: it
	 * names no device. */
	if (ca_leaf_cn(crt, cn, sizeof(cn), &cn_len) == 0 && cn_len < sizeof(out->cn)) {
		memcpy(out->cn, cn, cn_len);
		out->cn[cn_len] = '\0';
	}
	if (ca_fingerprint_der(der, len, out->fingerprint) < 0)
		out->fingerprint[0] = '\0';
	if (gnutls_x509_crt_get_serial(crt, out->serial, &serial_len) == 0)
		out->serial_len = serial_len;
}

int ca_cert_summarize(const uint8_t *der, size_t len, struct ca_cert_summary *out)
{
	gnutls_x509_crt_t crt = NULL;
	int ret;

	if (out == NULL)
		return CAPF_EINVAL;
	memset(out, 0, sizeof(*out));
	ret = import_der(der, len, &crt);
	if (ret < 0)
		return ret;
	summarize(crt, der, len, out);
	gnutls_x509_crt_deinit(crt);
	return 0;
}

int ca_peer_evidence(struct ca *ca, const uint8_t *const *certs, const size_t *lens, size_t n,
		     time_t now, int *mic_result, int *lsc_result, struct ca_cert_summary *sum)
{
	gnutls_x509_crt_t chain[CA_CHAIN_MAX];
	size_t i, parsed = 0;
	int all = 1, ret;

	if (ca == NULL || mic_result == NULL || lsc_result == NULL || sum == NULL)
		return CAPF_EINVAL;
	memset(sum, 0, sizeof(*sum));
	*mic_result = *lsc_result = CAPF_ENOCERT;
	if (n == 0 || certs == NULL || lens == NULL)
		return CAPF_ENOCERT;
	/* Each certificate parsed once, for all three; what would fail one
	 * of the DER functions fails it here the same way. A chain longer
	 * than a MIC's may be still has a leaf to read. */
	for (i = 0; i < n && i < CA_CHAIN_MAX; i++) {
		if (import_der(certs[i], lens[i], &chain[i]) < 0) {
			all = 0;
			break;
		}
		parsed++;
	}
	if (n > CA_CHAIN_MAX || !all)
		*mic_result = CAPF_EUNTRUSTED;
	else
		*mic_result = ca_mic_decide(ca, chain, n, NULL, now);
	if (certs[0] == NULL || lens[0] == 0)
		*lsc_result = CAPF_ENOCERT;
	else if (parsed == 0)
		*lsc_result = CAPF_EUNTRUSTED;
	else
		*lsc_result = ca_lsc_decide(ca, chain[0], NULL, now);
	ret = parsed > 0 ? 0 : CAPF_EBADMSG;
	if (parsed > 0)
		summarize(chain[0], certs[0], lens[0], sum);
	for (i = 0; i < parsed; i++)
		gnutls_x509_crt_deinit(chain[i]);
	return ret;
}

int ca_issuer_of(struct ca *ca, const uint8_t *der, size_t len, const uint8_t **issuer_der,
		 size_t *issuer_len)
{
	gnutls_x509_crt_t crt = NULL;
	struct ca_issuer *is;
	int ret;

	if (ca == NULL || issuer_der == NULL || issuer_len == NULL)
		return CAPF_EINVAL;
	*issuer_der = NULL;
	*issuer_len = 0;
	ret = import_der(der, len, &crt);
	if (ret < 0)
		return ret;
	ret = CAPF_ENOENT;
	pthread_rwlock_rdlock(&ca->lock);
	for (is = ca->issuers; is != NULL; is = is->next) {
		unsigned status = 1;

		if (!gnutls_x509_crt_check_issuer(crt, is->crt))
			continue;
		if (gnutls_x509_crt_verify(crt, &is->crt, 1,
					   GNUTLS_VERIFY_DISABLE_TIME_CHECKS |
					       GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS,
					   &status) == 0 &&
		    status == 0) {
			/* Issuers live until ca_free(): the pointer stays good. */
			*issuer_der = is->der.data;
			*issuer_len = is->der.size;
			ret = 0;
			break;
		}
	}
	pthread_rwlock_unlock(&ca->lock);
	gnutls_x509_crt_deinit(crt);
	return ret;
}

int ca_cert_signed_verify(const uint8_t *der, size_t len, const uint8_t *msg, size_t msg_len,
			  int sha512, const uint8_t *sig, size_t sig_len)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_pubkey_t pub = NULL;
	gnutls_digest_algorithm_t dig = sha512 ? GNUTLS_DIG_SHA512 : GNUTLS_DIG_SHA1;
	uint8_t hash[64];
	gnutls_datum_t h = {hash, (unsigned)gnutls_hash_get_len(dig)};
	gnutls_datum_t s = {(unsigned char *)sig, (unsigned)sig_len};
	int ret, pk;

	if (msg == NULL || sig == NULL || sig_len == 0)
		return CAPF_EINVAL;
	ret = import_der(der, len, &crt);
	if (ret < 0)
		return ret;
	ret = CAPF_ECRYPTO;
	if (gnutls_pubkey_init(&pub) < 0 || gnutls_pubkey_import_x509(pub, crt, 0) < 0)
		goto out;
	if (gnutls_hash_fast(dig, msg, msg_len, hash) < 0)
		goto out;
	pk = gnutls_pubkey_get_pk_algorithm(pub, NULL);
	if (pk == GNUTLS_PK_RSA) {
		/* PKCS#1 v1.5 around the bare digest, without DigestInfo: the
		 * TLS 1.0 flavour, which GnuTLS verifies with this flag. */
		ret = gnutls_pubkey_verify_hash2(pub, GNUTLS_SIGN_RSA_RAW,
						 GNUTLS_PUBKEY_VERIFY_FLAG_TLS1_RSA, &h, &s);
	} else if (pk == GNUTLS_PK_ECDSA) {
		ret = gnutls_pubkey_verify_hash2(pub, gnutls_pk_to_sign(GNUTLS_PK_ECDSA, dig),
						 GNUTLS_VERIFY_ALLOW_SIGN_WITH_SHA1, &h, &s);
	} else {
		ret = CAPF_EPOLICY;
		goto out;
	}
	ret = ret < 0 ? CAPF_EAUTH : 0;
out:
	gnutls_pubkey_deinit(pub);
	gnutls_x509_crt_deinit(crt);
	return ret;
}

int ca_issuer_chain_of(struct ca *ca, const uint8_t *issuer_der, size_t issuer_len, uint8_t **ders,
		       size_t *lens, size_t max, size_t *n)
{
	struct ca_issuer *is;
	int ret = 0;

	if (ca == NULL || issuer_der == NULL || issuer_len == 0 || ders == NULL || lens == NULL ||
	    n == NULL || max == 0)
		return CAPF_EINVAL;
	*n = 0;
	/* The issuer by its certificate's bytes: nothing to parse or verify,
	 * the certificate is one of ours. */
	pthread_rwlock_rdlock(&ca->lock);
	for (is = ca->issuers; is != NULL; is = is->next)
		if (is->der.size == issuer_len && memcmp(is->der.data, issuer_der, issuer_len) == 0)
			break;
	if (is == NULL) {
		ret = CAPF_ENOENT;
		goto out;
	}
	ders[0] = malloc(issuer_len);
	if (ders[0] == NULL) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	memcpy(ders[0], is->der.data, issuer_len);
	lens[0] = issuer_len;
	*n = 1;
	/* The enterprise chain above an enterprise-signed CAPF CA, so that
	 * a phone or a SIP peer can verify the LSC from the root alone. */
	for (unsigned i = 0; i < is->chain_len && *n < max; i++) {
		gnutls_datum_t d = {NULL, 0};

		if (gnutls_x509_crt_export2(is->chain[i], GNUTLS_X509_FMT_DER, &d) < 0)
			break;
		ders[*n] = malloc(d.size);
		if (ders[*n] == NULL) {
			gnutls_free(d.data);
			break;
		}
		memcpy(ders[*n], d.data, d.size);
		lens[*n] = d.size;
		(*n)++;
		gnutls_free(d.data);
	}
out:
	pthread_rwlock_unlock(&ca->lock);
	return ret;
}

int ca_issuer_chain(struct ca *ca, const uint8_t *der, size_t len, uint8_t **ders, size_t *lens,
		    size_t max, size_t *n)
{
	const uint8_t *issuer = NULL;
	size_t issuer_len = 0;
	int ret;

	if (ca == NULL || ders == NULL || lens == NULL || n == NULL || max == 0)
		return CAPF_EINVAL;
	*n = 0;
	ret = ca_issuer_of(ca, der, len, &issuer, &issuer_len);
	if (ret < 0)
		return ret;
	return ca_issuer_chain_of(ca, issuer, issuer_len, ders, lens, max, n);
}
