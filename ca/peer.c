/*
 * ca/peer.c - what a certificate a phone presents says about itself (for
 * the enrollment core's evidence), and which CAPF CA issued an LSC (the
 * chain that goes with it when it is delivered again).
 */
#include "config.h"

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

int ca_cert_summarize(const uint8_t *der, size_t len, struct ca_cert_summary *out)
{
	gnutls_x509_crt_t crt = NULL;
	char cn[CA_CN_MAX * 4 + 8];
	size_t cn_len = 0, serial_len = sizeof(out->serial);
	int ret;

	if (out == NULL)
		return CAPF_EINVAL;
	memset(out, 0, sizeof(*out));
	ret = import_der(der, len, &crt);
	if (ret < 0)
		return ret;
	/* A CN that breaks the identity rule's syntax is left empty: it
	 * names no device. */
	if (ca_leaf_cn(crt, cn, sizeof(cn), &cn_len) == 0 && cn_len < sizeof(out->cn)) {
		memcpy(out->cn, cn, cn_len);
		out->cn[cn_len] = '\0';
	}
	if (ca_fingerprint(crt, out->fingerprint) < 0)
		out->fingerprint[0] = '\0';
	if (gnutls_x509_crt_get_serial(crt, out->serial, &serial_len) == 0)
		out->serial_len = serial_len;
	gnutls_x509_crt_deinit(crt);
	return 0;
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
