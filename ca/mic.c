/*
 * ca/mic.c - manufacturer-installed certificates: does the chain a phone
 * presents lead to a manufacturer root, at the given time, and does its
 * leaf name the device?
 */
#include "config.h"

#include <string.h>

#include "ca/internal.h"

/* A certificate's validity period against now. */
static int check_time(gnutls_x509_crt_t crt, time_t now)
{
	time_t start = gnutls_x509_crt_get_activation_time(crt);
	time_t end = gnutls_x509_crt_get_expiration_time(crt);

	/* GnuTLS reports 99991231235959Z, "no well-defined expiration"
	 * (RFC 5280 4.1.2.5, used by 802.1AR IDevIDs), as (time_t)-1. */
	if (start == (time_t)-1)
		return CAPF_EUNTRUSTED;
	if (now < start || (end != (time_t)-1 && now > end))
		return CAPF_EEXPIRED;
	return 0;
}

/*
 * Time checks: GnuTLS verifies against the clock of the moment, so it is
 * told to skip them and the chain is checked here against now, which the
 * caller controls (and the tests set). Every presented certificate and
 * every root that issued one of them must be valid at now.
 */
static int check_chain_times(struct ca *ca, gnutls_x509_crt_t *chain, size_t n, time_t now)
{
	gnutls_x509_crt_t anchor = NULL;
	size_t i;
	int ret;

	for (i = 0; i < n; i++) {
		ret = check_time(chain[i], now);
		if (ret < 0)
			return ret;
		if (gnutls_x509_trust_list_get_issuer(ca->roots, chain[i], &anchor,
						      GNUTLS_TL_GET_COPY) == 0) {
			ret = check_time(anchor, now);
			gnutls_x509_crt_deinit(anchor);
			anchor = NULL;
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

/*
 * The CN of the leaf, as the bytes of its string value. GnuTLS's text
 * form escapes RFC 4514 specials, so the DER value is read instead and
 * only the string types that carry ASCII/UTF-8 bytes are accepted.
 */
static int leaf_cn(gnutls_x509_crt_t leaf, char *cn, size_t size, size_t *cn_len)
{
	uint8_t raw[CA_CN_MAX * 4 + 8];
	size_t raw_len = sizeof(raw);
	size_t extra_len = sizeof(raw);
	size_t hdr, len;

	if (gnutls_x509_crt_get_dn_by_oid(leaf, GNUTLS_OID_X520_COMMON_NAME, 0, 1, raw, &raw_len) <
	    0)
		return CAPF_EIDENTITY;
	/* A second CN would make "the" name ambiguous. */
	if (gnutls_x509_crt_get_dn_by_oid(leaf, GNUTLS_OID_X520_COMMON_NAME, 1, 1, NULL,
					  &extra_len) != GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
		return CAPF_EIDENTITY;
	if (raw_len < 2)
		return CAPF_EIDENTITY;
	switch (raw[0]) {
	case 0x0c: /* UTF8String */
	case 0x13: /* PrintableString */
	case 0x14: /* TeletexString */
	case 0x16: /* IA5String */
		break;
	default:
		return CAPF_EIDENTITY;
	}
	if (raw[1] < 0x80) {
		hdr = 2;
		len = raw[1];
	} else if (raw[1] == 0x81 && raw_len >= 3) {
		hdr = 3;
		len = raw[2];
	} else {
		return CAPF_EIDENTITY;
	}
	if (hdr + len != raw_len || len >= size || memchr(raw + hdr, 0, len) != NULL)
		return CAPF_EIDENTITY;
	memcpy(cn, raw + hdr, len);
	cn[len] = '\0';
	*cn_len = len;
	return 0;
}

/*
 * The identity rule of ca/ca.h: exactly one CN, equal to the device name
 * or ending with "-" and the device name. Case matters; a CN with an
 * embedded NUL never matches.
 */
static int check_identity(gnutls_x509_crt_t leaf, const char *device_name)
{
	char cn[CA_CN_MAX * 4 + 8];
	size_t cn_len = 0;
	size_t dlen = strlen(device_name);

	if (dlen == 0 || leaf_cn(leaf, cn, sizeof(cn), &cn_len) < 0)
		return CAPF_EIDENTITY;
	if (cn_len == dlen && memcmp(cn, device_name, dlen) == 0)
		return 0;
	if (cn_len > dlen && cn[cn_len - dlen - 1] == '-' &&
	    memcmp(cn + cn_len - dlen, device_name, dlen) == 0)
		return 0;
	return CAPF_EIDENTITY;
}

int ca_mic_verify(struct ca *ca, const uint8_t *const *certs, const size_t *lens, size_t n,
		  const char *device_name, time_t now)
{
	gnutls_x509_crt_t chain[CA_CHAIN_MAX];
	unsigned status = 0;
	size_t i, loaded = 0;
	int ret;

	if (ca == NULL || device_name == NULL)
		return CAPF_EINVAL;
	if (n == 0 || certs == NULL || lens == NULL)
		return CAPF_ENOCERT;
	if (n > CA_CHAIN_MAX)
		return CAPF_EUNTRUSTED;

	for (i = 0; i < n; i++) {
		gnutls_datum_t d = {(unsigned char *)certs[i], (unsigned)lens[i]};

		if (certs[i] == NULL || lens[i] == 0 || lens[i] > CA_CERT_MAX) {
			ret = CAPF_EUNTRUSTED;
			goto out;
		}
		CHECK_GNUTLS(gnutls_x509_crt_init(&chain[i]));
		loaded++;
		if (gnutls_x509_crt_import(chain[i], &d, GNUTLS_X509_FMT_DER) < 0) {
			ret = CAPF_EUNTRUSTED;
			goto out;
		}
	}

	/* Without manufacturer roots nothing can be trusted. */
	if (ca->roots == NULL) {
		ret = CAPF_EUNTRUSTED;
		goto out;
	}
	ret = gnutls_x509_trust_list_verify_crt2(ca->roots, chain, (unsigned)n, NULL, 0,
						 GNUTLS_VERIFY_DISABLE_TIME_CHECKS |
						     GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS,
						 &status, NULL);
	if (ret < 0 || status != 0) {
		ret = CAPF_EUNTRUSTED;
		goto out;
	}
	ret = check_chain_times(ca, chain, n, now);
	if (ret < 0)
		goto out;
	/* A MIC is an end-entity certificate; a CA certificate proves
	 * nothing about one phone. */
	if (gnutls_x509_crt_get_ca_status(chain[0], NULL) > 0) {
		ret = CAPF_EUNTRUSTED;
		goto out;
	}
	ret = check_identity(chain[0], device_name);
out:
	for (i = 0; i < loaded; i++)
		gnutls_x509_crt_deinit(chain[i]);
	return ret;
}
