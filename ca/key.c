/*
 * ca/key.c - CA keys: a PEM/DER file, or an object in a PKCS#11 token
 * named by a "pkcs11:" URI (RFC 7512) that GnuTLS reaches through
 * p11-kit. A key is opened once, when its CA is loaded; nothing here ever
 * logs or reports a key or a PIN.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "ca/internal.h"
#include "proto/capf.pb-c.h"

int ca_key_is_url(const char *ref)
{
	return ref != NULL && strncasecmp(ref, "pkcs11:", 7) == 0;
}

char *ca_key_ref_redact(const char *ref, char *buf, size_t buflen)
{
	const char *p;
	size_t used = 0;
	int first;

	if (buf == NULL || buflen == 0)
		return buf;
	buf[0] = '\0';
	if (ref == NULL)
		return buf;
	if (!ca_key_is_url(ref)) {
		snprintf(buf, buflen, "%s", ref);
		return buf;
	}
	/* Copy the URI attribute by attribute (';', '?' or '&' separated),
	 * leaving out the ones that carry or locate the PIN. */
	if (buflen <= 8)
		return buf;
	memcpy(buf, ref, 7);
	used = 7;
	p = ref + 7;
	first = 1;
	while (*p != '\0') {
		const char *attr = first ? p : p + 1;
		size_t len = strcspn(attr, ";?&");

		if (len > 0 && strncasecmp(attr, "pin-value=", 10) != 0 &&
		    strncasecmp(attr, "pin-source=", 11) != 0 && used + len + 1 < buflen) {
			if (used > 7)
				buf[used++] = first ? ';' : *p;
			memcpy(buf + used, attr, len);
			used += len;
		}
		p = attr + len;
		first = 0;
	}
	buf[used] = '\0';
	return buf;
}

int ca_key_load(const char *ref, gnutls_privkey_t *out)
{
	gnutls_privkey_t key = NULL;
	gnutls_datum_t data = {NULL, 0};
	char shown[PATH_MAX];
	int ret;

	*out = NULL;
	ca_key_ref_redact(ref, shown, sizeof(shown));
	CHECK_GNUTLS(gnutls_privkey_init(&key));
	if (ca_key_is_url(ref)) {
		ret = gnutls_privkey_import_url(key, ref, 0);
		if (ret < 0) {
			ca_set_error("cannot open the key %s: %s (is the token present, the "
				     "PKCS#11 module registered with p11-kit and the PIN right?)",
				     shown, gnutls_strerror(ret));
			ret = CAPF_ECONFIG;
			goto out;
		}
	} else {
		if (ca_file_read(ref, CA_FILE_MAX, &data) < 0) {
			ca_set_error("cannot read the key %s: %s", shown, strerror(errno));
			ret = errno == ENOENT ? CAPF_ECONFIG : CAPF_EIO;
			goto out;
		}
		ret = gnutls_privkey_import_x509_raw(key, &data, GNUTLS_X509_FMT_PEM, NULL, 0);
		if (ret < 0)
			ret = gnutls_privkey_import_x509_raw(key, &data, GNUTLS_X509_FMT_DER, NULL,
							     0);
		if (ret < 0) {
			ca_set_error("%s is not an unencrypted PEM or DER private key: %s", shown,
				     gnutls_strerror(ret));
			ret = CAPF_ECONFIG;
			goto out;
		}
	}
	*out = key;
	key = NULL;
	ret = 0;
out:
	ca_file_free(&data);
	gnutls_privkey_deinit(key);
	return ret;
}

int ca_key_new(int key_type, gnutls_x509_privkey_t *out)
{
	gnutls_x509_privkey_t xkey = NULL;
	gnutls_pk_algorithm_t pk;
	unsigned bits;
	int ret;

	if (out == NULL)
		return CAPF_EINVAL;
	*out = NULL;
	switch (key_type) {
	case CAPF__KEY_TYPE__KEY_UNSPECIFIED:
	case CAPF__KEY_TYPE__KEY_EC_P256:
		pk = GNUTLS_PK_ECDSA;
		bits = GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1);
		break;
	case CAPF__KEY_TYPE__KEY_EC_P384:
		pk = GNUTLS_PK_ECDSA;
		bits = GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP384R1);
		break;
	case CAPF__KEY_TYPE__KEY_RSA_2048:
		pk = GNUTLS_PK_RSA;
		bits = 2048;
		break;
	case CAPF__KEY_TYPE__KEY_RSA_3072:
		pk = GNUTLS_PK_RSA;
		bits = 3072;
		break;
	case CAPF__KEY_TYPE__KEY_RSA_4096:
		pk = GNUTLS_PK_RSA;
		bits = 4096;
		break;
	default:
		return CAPF_EINVAL;
	}
	CHECK_GNUTLS(gnutls_x509_privkey_init(&xkey));
	CHECK_GNUTLS(gnutls_x509_privkey_generate(xkey, pk, bits, 0));
	*out = xkey;
	xkey = NULL;
	ret = 0;
out:
	gnutls_x509_privkey_deinit(xkey);
	return ret;
}

int ca_key_generate(int key_type, const char *dir, const char *name, gnutls_privkey_t *out)
{
	gnutls_x509_privkey_t xkey = NULL;
	gnutls_privkey_t pkey = NULL;
	gnutls_datum_t pem = {NULL, 0};
	int ret;

	*out = NULL;
	ret = ca_key_new(key_type, &xkey);
	if (ret == CAPF_EINVAL)
		ca_set_error("unknown CA key type %d", key_type);
	if (ret < 0)
		goto out;
	CHECK_GNUTLS(gnutls_x509_privkey_export2_pkcs8(xkey, GNUTLS_X509_FMT_PEM, NULL,
						       GNUTLS_PKCS_PLAIN, &pem));
	ret = ca_file_write(dir, name, pem.data, pem.size, 0600);
	if (ret < 0)
		goto out;
	CHECK_GNUTLS(gnutls_privkey_init(&pkey));
	CHECK_GNUTLS(gnutls_privkey_import_x509(pkey, xkey, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE));
	xkey = NULL; /* owned by pkey now */
	*out = pkey;
	pkey = NULL;
	ret = 0;
out:
	if (pem.data != NULL) {
		gnutls_memset(pem.data, 0, pem.size);
		gnutls_free(pem.data);
	}
	gnutls_privkey_deinit(pkey);
	gnutls_x509_privkey_deinit(xkey);
	return ret;
}

int ca_key_obtain(const struct ca_keyspec *spec, int default_type, const char *dir,
		  gnutls_privkey_t *out, char **url)
{
	const char *ref = spec != NULL ? spec->key : NULL;
	int key_type = spec != NULL && spec->key_type != 0 ? spec->key_type : default_type;
	char kdir[PATH_MAX];
	const char *base = NULL;
	struct stat st;
	int ret;

	*out = NULL;
	*url = NULL;
	if (ref == NULL || ref[0] == '\0')
		return ca_key_generate(key_type, dir, CA_FILE_KEY, out);

	if (!ca_key_is_url(ref) && stat(ref, &st) < 0 && errno == ENOENT) {
		/* A configured key file that does not exist yet is made
		 * where the configuration says. */
		ret = ca_path_split(ref, kdir, sizeof(kdir), &base);
		if (ret < 0) {
			ca_set_error("bad key path %s", ref);
			return ret;
		}
		ret = ca_key_generate(key_type, kdir, base, out);
	} else {
		ret = ca_key_load(ref, out);
	}
	if (ret < 0)
		return ret;
	/* The ref file may hold a PIN: it is written like a key. */
	ret = ca_file_write(dir, CA_FILE_KEYREF, ref, strlen(ref), 0600);
	if (ret < 0)
		goto fail;
	if (ca_key_is_url(ref)) {
		*url = strdup(ref);
		if (*url == NULL) {
			ret = CAPF_ENOMEM;
			goto fail;
		}
	}
	return 0;
fail:
	gnutls_privkey_deinit(*out);
	*out = NULL;
	return ret;
}

void ca_key_describe(gnutls_pubkey_t pub, const char *url, char *type, size_t tlen, char *store,
		     size_t slen)
{
	gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
	unsigned bits = 0;
	int pk = gnutls_pubkey_get_pk_algorithm(pub, &bits);

	if (pk == GNUTLS_PK_ECDSA &&
	    gnutls_pubkey_export_ecc_raw2(pub, &curve, NULL, NULL, 0) >= 0)
		snprintf(type, tlen, "%s",
			 curve == GNUTLS_ECC_CURVE_SECP256R1   ? "ec-p256"
			 : curve == GNUTLS_ECC_CURVE_SECP384R1 ? "ec-p384"
			 : curve == GNUTLS_ECC_CURVE_SECP521R1 ? "ec-p521"
							       : "ec");
	else if (pk == GNUTLS_PK_RSA)
		snprintf(type, tlen, "rsa-%u", bits);
	else
		snprintf(type, tlen, "%s", gnutls_pk_get_name((gnutls_pk_algorithm_t)pk));
	snprintf(store, slen, "%s", ca_key_is_url(url) ? "pkcs11" : "file");
}

int ca_key_sign_params(gnutls_pubkey_t pub, gnutls_digest_algorithm_t *hash,
		       gnutls_sign_algorithm_t *algo)
{
	gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
	int pk = gnutls_pubkey_get_pk_algorithm(pub, NULL);

	/* SHA-256 for P-256 and RSA, SHA-384 for P-384 and SHA-512 for
	 * P-521: the hash that matches the key's strength. */
	*hash = GNUTLS_DIG_SHA256;
	if (pk == GNUTLS_PK_ECDSA) {
		if (gnutls_pubkey_export_ecc_raw2(pub, &curve, NULL, NULL, 0) < 0)
			return CAPF_ECRYPTO;
		if (curve == GNUTLS_ECC_CURVE_SECP384R1)
			*hash = GNUTLS_DIG_SHA384;
		else if (curve == GNUTLS_ECC_CURVE_SECP521R1)
			*hash = GNUTLS_DIG_SHA512;
	} else if (pk != GNUTLS_PK_RSA) {
		return CAPF_ENOTSUP;
	}
	*algo = gnutls_pk_to_sign((gnutls_pk_algorithm_t)pk, *hash);
	return *algo == GNUTLS_SIGN_UNKNOWN ? CAPF_ENOTSUP : 0;
}
