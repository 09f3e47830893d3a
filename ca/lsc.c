/*
 * ca/lsc.c - the trust decision for an LSC that a phone presents: one
 * function, so that every way a phone authenticates by LSC decides the
 * same way.
 */
#include "config.h"

#include <string.h>

#include "ca/internal.h"

int ca_lsc_decide(struct ca *ca, gnutls_x509_crt_t leaf, const char *device_name, time_t now)
{
	struct ca_issuer *is, *signer = NULL;
	uint8_t serial[CA_SERIAL_MAX];
	size_t serial_len = sizeof(serial);
	char cn[CA_CN_MAX * 4 + 8];
	size_t cn_len = 0;
	gnutls_datum_t idn = {NULL, 0};
	gnutls_x509_dn_t subject;
	gnutls_x509_ava_st ava;
	int signer_expired = 0;
	unsigned status;
	int ret;

	/*
	 * The issuer must be one of our CAPF CAs, trusted at now: LSCs are
	 * ours, so nothing the phone sends besides the leaf is needed or
	 * used. Times are checked below against now, which the caller
	 * controls, rather than against GnuTLS's clock.
	 */
	if (gnutls_x509_crt_get_raw_issuer_dn(leaf, &idn) < 0)
		return CAPF_EUNTRUSTED;
	pthread_rwlock_rdlock(&ca->lock);
	for (is = ca->issuers; is != NULL && signer == NULL; is = is->next) {
		/* An LSC names its issuer with the very bytes of that CA's
		 * subject (ca/issue.c copies them): a certificate that names
		 * it otherwise is none of its LSCs, and GnuTLS's comparison,
		 * which reads both names as strings when their bytes differ
		 * (a MIC against every CAPF CA), is not needed. */
		if (idn.size != is->raw_dn.size || memcmp(idn.data, is->raw_dn.data, idn.size) != 0)
			continue;
		if (!ca_issuer_trusted(ca, is, now) || !gnutls_x509_crt_check_issuer(leaf, is->crt))
			continue;
		status = 1;
		if (gnutls_x509_crt_verify(leaf, &is->crt, 1,
					   GNUTLS_VERIFY_DISABLE_TIME_CHECKS |
					       GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS,
					   &status) == 0 &&
		    status == 0)
			signer = is;
	}
	ret = signer == NULL ? CAPF_EUNTRUSTED : 0;
	if (ret == 0 && ca_check_time(signer->crt, now) < 0)
		signer_expired = 1;
	pthread_rwlock_unlock(&ca->lock);
	if (ret < 0)
		goto out;
	/* An LSC is an end-entity certificate. */
	if (gnutls_x509_crt_get_ca_status(leaf, NULL) > 0) {
		ret = CAPF_EUNTRUSTED;
		goto out;
	}
	if (gnutls_x509_crt_get_serial(leaf, serial, &serial_len) < 0 || serial_len == 0) {
		ret = CAPF_EUNTRUSTED;
		goto out;
	}
	if (ca_is_revoked(ca, serial, serial_len)) {
		ret = CAPF_EREVOKED;
		goto out;
	}
	if (signer_expired) {
		ret = CAPF_EEXPIRED;
		goto out;
	}
	ret = ca_check_time(leaf, now);
	if (ret < 0)
		goto out;
	if (device_name != NULL) {
		/* Exactly one RDN of one attribute, CN=device, as the server
		 * wrote it. (Counted in the structure: the DN as text escapes
		 * characters such as ';', so its length says nothing.) */
		if (ca_leaf_cn(leaf, cn, sizeof(cn), &cn_len) < 0 ||
		    cn_len != strlen(device_name) || memcmp(cn, device_name, cn_len) != 0 ||
		    gnutls_x509_crt_get_subject(leaf, &subject) < 0 ||
		    gnutls_x509_dn_get_rdn_ava(subject, 0, 1, &ava) >= 0 ||
		    gnutls_x509_dn_get_rdn_ava(subject, 1, 0, &ava) >= 0) {
			ret = CAPF_EIDENTITY;
			goto out;
		}
	}
	ret = 0;
out:
	gnutls_free(idn.data);
	return ret;
}

int ca_lsc_verify(struct ca *ca, const uint8_t *const *certs, const size_t *lens, size_t n,
		  const char *device_name, time_t now)
{
	gnutls_x509_crt_t leaf = NULL;
	gnutls_datum_t d;
	int ret;

	if (ca == NULL)
		return CAPF_EINVAL;
	if (n == 0 || certs == NULL || lens == NULL || certs[0] == NULL || lens[0] == 0)
		return CAPF_ENOCERT;
	if (lens[0] > CA_CERT_MAX)
		return CAPF_EUNTRUSTED;
	d.data = (unsigned char *)certs[0];
	d.size = (unsigned)lens[0];
	CHECK_GNUTLS(gnutls_x509_crt_init(&leaf));
	if (gnutls_x509_crt_import(leaf, &d, GNUTLS_X509_FMT_DER) < 0) {
		ret = CAPF_EUNTRUSTED;
		goto out;
	}
	ret = ca_lsc_decide(ca, leaf, device_name, now);
out:
	gnutls_x509_crt_deinit(leaf);
	return ret;
}
