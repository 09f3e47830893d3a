/*
 * ca/issue.c - LSC issuance. The profile is doc/certificate-profile.md;
 * every field is set here from the device record and the CA, and only the
 * public key comes from the phone's request.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "ca/internal.h"

int ca_issue(struct ca *ca, const struct ca_csr *csr, const char *device_name, time_t now,
	     struct ca_lsc *out)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t der = {NULL, 0};
	uint8_t serial[CA_SERIAL_LEN];
	uint8_t ski[CA_KEY_ID_LEN];
	unsigned usage = GNUTLS_KEY_DIGITAL_SIGNATURE;
	size_t name_len;
	time_t not_before, not_after;
	int ret;

	if (out == NULL)
		return CAPF_EINVAL;
	memset(out, 0, sizeof(*out));
	if (ca == NULL || csr == NULL || csr->crq == NULL || device_name == NULL)
		return CAPF_EINVAL;
	name_len = strlen(device_name);
	if (name_len == 0 || name_len > CA_CN_MAX)
		return CAPF_EINVAL;

	not_before = now - CA_BACKDATE_SECONDS;
	not_after = now + (time_t)ca->lsc_days * 86400;

	CHECK_GNUTLS(gnutls_pubkey_init(&pub));
	CHECK_GNUTLS(gnutls_pubkey_import_x509_crq(pub, csr->crq, 0));
	if (gnutls_pubkey_get_pk_algorithm(pub, NULL) == GNUTLS_PK_RSA)
		usage |= GNUTLS_KEY_KEY_ENCIPHERMENT;
	ret = ca_key_id(pub, ski);
	if (ret < 0)
		goto out;
	ret = ca_random_serial(serial);
	if (ret < 0)
		goto out;

	CHECK_GNUTLS(gnutls_x509_crt_init(&crt));
	CHECK_GNUTLS(gnutls_x509_crt_set_version(crt, 3));
	CHECK_GNUTLS(gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)));
	CHECK_GNUTLS(gnutls_x509_crt_set_activation_time(crt, not_before));
	CHECK_GNUTLS(gnutls_x509_crt_set_expiration_time(crt, not_after));
	/* One attribute set by OID: the name is a value, never parsed as a
	 * DN, so a comma or '=' in it cannot add attributes. */
	CHECK_GNUTLS(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, device_name,
						   (unsigned)name_len));
	CHECK_GNUTLS(gnutls_x509_crt_set_pubkey(crt, pub));
	CHECK_GNUTLS(gnutls_x509_crt_set_basic_constraints(crt, 0, -1));
	CHECK_GNUTLS(gnutls_x509_crt_set_key_usage(crt, usage));
	CHECK_GNUTLS(gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0));
	CHECK_GNUTLS(gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0));
	CHECK_GNUTLS(gnutls_x509_crt_set_subject_key_id(crt, ski, sizeof(ski)));
	CHECK_GNUTLS(gnutls_x509_crt_set_authority_key_id(crt, ca->ski, ca->ski_len));

	/*
	 * GnuTLS promises thread safety per object, not for one key or one
	 * issuer certificate shared by several threads; a PKCS#11 key may
	 * also sit behind a single token session. Signing therefore holds
	 * the CA's lock. It costs one ECDSA signature of serialisation per
	 * LSC, far below what the store's fsync already costs.
	 */
	pthread_mutex_lock(&ca->sign_lock);
	ret = gnutls_x509_crt_privkey_sign(crt, ca->crt, ca->key, ca->sign_hash, 0);
	pthread_mutex_unlock(&ca->sign_lock);
	if (ret < 0) {
		ret = ca_gnutls_err(ret);
		goto out;
	}
	CHECK_GNUTLS(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der));

	out->der = malloc(der.size);
	if (out->der == NULL) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	memcpy(out->der, der.data, der.size);
	out->der_len = der.size;
	memcpy(out->serial, serial, sizeof(serial));
	out->not_before = not_before;
	out->not_after = not_after;
	ret = 0;
out:
	gnutls_free(der.data);
	gnutls_x509_crt_deinit(crt);
	gnutls_pubkey_deinit(pub);
	return ret;
}

void ca_lsc_deinit(struct ca_lsc *lsc)
{
	if (lsc == NULL)
		return;
	free(lsc->der);
	memset(lsc, 0, sizeof(*lsc));
}
