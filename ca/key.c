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
	case CAPF__KEY_TYPE__KEY_EC_P521:
		pk = GNUTLS_PK_ECDSA;
		bits = GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP521R1);
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

int ca_key_spki(gnutls_privkey_t key, uint8_t **der, size_t *len)
{
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t d = {NULL, 0};
	int ret;

	*der = NULL;
	*len = 0;
	CHECK_GNUTLS(gnutls_pubkey_init(&pub));
	CHECK_GNUTLS(gnutls_pubkey_import_privkey(pub, key, 0, 0));
	CHECK_GNUTLS(gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &d));
	*der = malloc(d.size);
	if (*der == NULL) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	memcpy(*der, d.data, d.size);
	*len = d.size;
	ret = 0;
out:
	gnutls_free(d.data);
	gnutls_pubkey_deinit(pub);
	return ret;
}

/* ---- keys behind keyops ------------------------------------------------- */

/*
 * A key that another process holds: GnuTLS sees a gnutls_privkey_t made
 * with gnutls_privkey_import_ext4(), whose callbacks send the bytes to
 * sign to the keyops with the key's ref. The algorithm, size and curve
 * come from the public key the keyops returned, so nothing here ever
 * asks for the private half.
 */
struct extkey {
	struct ca_keyops ops;
	char *ref;
	gnutls_pk_algorithm_t pk;
	unsigned bits;
	gnutls_ecc_curve_t curve;
};

static void extkey_free(struct extkey *x)
{
	if (x == NULL)
		return;
	if (x->ref != NULL) {
		/* A pkcs11: ref may carry a PIN. */
		gnutls_memset(x->ref, 0, strlen(x->ref));
		free(x->ref);
	}
	free(x);
}

/* What the last keyops signature of this thread failed with: GnuTLS
 * only carries its own codes back from a callback. */
static _Thread_local int ops_error;

int ca_key_ops_error(void)
{
	int ret = ops_error;

	ops_error = 0;
	return ret;
}

static int extkey_sign(struct extkey *x, gnutls_sign_algorithm_t algo, unsigned flags,
		       const gnutls_datum_t *data, gnutls_datum_t *sig)
{
	uint8_t *s = NULL;
	size_t slen = 0;
	int ret;

	ret = x->ops.sign(x->ops.arg, x->ref, (unsigned)algo, flags, data->data, data->size, &s,
			  &slen);
	if (ret < 0 || s == NULL || slen == 0 || slen > UINT_MAX) {
		ops_error = ret < 0 ? ret : CAPF_EPROTO;
		free(s);
		return GNUTLS_E_PK_SIGN_FAILED;
	}
	sig->data = gnutls_malloc(slen);
	if (sig->data == NULL) {
		free(s);
		return GNUTLS_E_MEMORY_ERROR;
	}
	memcpy(sig->data, s, slen);
	sig->size = (unsigned)slen;
	free(s);
	return 0;
}

static int extkey_sign_data(gnutls_privkey_t key, gnutls_sign_algorithm_t algo, void *userdata,
			    unsigned int flags, const gnutls_datum_t *data, gnutls_datum_t *sig)
{
	(void)key;
	(void)flags;
	return extkey_sign(userdata, algo, 0, data, sig);
}

static int extkey_sign_hash(gnutls_privkey_t key, gnutls_sign_algorithm_t algo, void *userdata,
			    unsigned int flags, const gnutls_datum_t *hash, gnutls_datum_t *sig)
{
	(void)key;
	(void)flags;
	return extkey_sign(userdata, algo, CA_SIGN_HASH, hash, sig);
}

/* The signature algorithms a CA key makes: ECDSA or RSA (PKCS#1 v1.5
 * and, for TLS 1.3, PSS with the rsaEncryption key) with SHA-2. */
static int extkey_supports(const struct extkey *x, gnutls_sign_algorithm_t algo)
{
	switch (algo) {
	case GNUTLS_SIGN_ECDSA_SHA256:
	case GNUTLS_SIGN_ECDSA_SHA384:
	case GNUTLS_SIGN_ECDSA_SHA512:
		return x->pk == GNUTLS_PK_ECDSA;
	case GNUTLS_SIGN_ECDSA_SECP256R1_SHA256:
		return x->pk == GNUTLS_PK_ECDSA && x->curve == GNUTLS_ECC_CURVE_SECP256R1;
	case GNUTLS_SIGN_ECDSA_SECP384R1_SHA384:
		return x->pk == GNUTLS_PK_ECDSA && x->curve == GNUTLS_ECC_CURVE_SECP384R1;
	case GNUTLS_SIGN_ECDSA_SECP521R1_SHA512:
		return x->pk == GNUTLS_PK_ECDSA && x->curve == GNUTLS_ECC_CURVE_SECP521R1;
	case GNUTLS_SIGN_RSA_SHA256:
	case GNUTLS_SIGN_RSA_SHA384:
	case GNUTLS_SIGN_RSA_SHA512:
	case GNUTLS_SIGN_RSA_PSS_RSAE_SHA256:
	case GNUTLS_SIGN_RSA_PSS_RSAE_SHA384:
	case GNUTLS_SIGN_RSA_PSS_RSAE_SHA512:
		return x->pk == GNUTLS_PK_RSA;
	default:
		return 0;
	}
}

static int extkey_info(gnutls_privkey_t key, unsigned int flags, void *userdata)
{
	const struct extkey *x = userdata;

	(void)key;
	if (flags & GNUTLS_PRIVKEY_INFO_HAVE_SIGN_ALGO)
		return extkey_supports(x,
				       (gnutls_sign_algorithm_t)GNUTLS_FLAGS_TO_SIGN_ALGO(flags));
	if (flags & GNUTLS_PRIVKEY_INFO_PK_ALGO)
		return (int)x->pk;
	if (flags & GNUTLS_PRIVKEY_INFO_PK_ALGO_BITS)
		return (int)x->bits;
	return -1;
}

static void extkey_deinit(gnutls_privkey_t key, void *userdata)
{
	(void)key;
	extkey_free(userdata);
}

/* A gnutls_privkey_t for ref whose public key is pub: signatures go to ops. */
static int extkey_wrap(const struct ca_keyops *ops, const char *ref, gnutls_pubkey_t pub,
		       gnutls_privkey_t *out)
{
	struct extkey *x = NULL;
	gnutls_privkey_t key = NULL;
	int pk, ret;

	*out = NULL;
	x = calloc(1, sizeof(*x));
	if (x == NULL || (x->ref = strdup(ref)) == NULL) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	x->ops = *ops;
	pk = gnutls_pubkey_get_pk_algorithm(pub, &x->bits);
	if (pk != GNUTLS_PK_ECDSA && pk != GNUTLS_PK_RSA) {
		ca_set_error("the key %s is neither EC nor RSA", ref);
		ret = CAPF_ECONFIG;
		goto out;
	}
	x->pk = (gnutls_pk_algorithm_t)pk;
	if (pk == GNUTLS_PK_ECDSA)
		CHECK_GNUTLS(gnutls_pubkey_export_ecc_raw2(pub, &x->curve, NULL, NULL, 0));
	CHECK_GNUTLS(gnutls_privkey_init(&key));
	CHECK_GNUTLS(gnutls_privkey_import_ext4(key, x, extkey_sign_data, extkey_sign_hash, NULL,
						extkey_deinit, extkey_info,
						GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE));
	x = NULL; /* the key owns it now */
	*out = key;
	key = NULL;
	ret = 0;
out:
	gnutls_privkey_deinit(key);
	extkey_free(x);
	return ret;
}

/* A pubkey from the SPKI the keyops returned (and freed here). */
static int pub_from_spki(uint8_t *spki, size_t len, gnutls_pubkey_t *pub)
{
	gnutls_datum_t d = {spki, (unsigned)len};
	int ret;

	*pub = NULL;
	if (spki == NULL || len == 0 || len > CA_FILE_MAX) {
		ret = CAPF_ECRYPTO;
		goto out;
	}
	CHECK_GNUTLS(gnutls_pubkey_init(pub));
	CHECK_GNUTLS(gnutls_pubkey_import(*pub, &d, GNUTLS_X509_FMT_DER));
	ret = 0;
out:
	if (ret < 0) {
		gnutls_pubkey_deinit(*pub);
		*pub = NULL;
	}
	free(spki);
	return ret;
}

/* The public key of a key held here. */
static int pub_of_local(gnutls_privkey_t key, gnutls_pubkey_t *pub)
{
	int ret;

	*pub = NULL;
	CHECK_GNUTLS(gnutls_pubkey_init(pub));
	CHECK_GNUTLS(gnutls_pubkey_import_privkey(*pub, key, 0, 0));
	ret = 0;
out:
	if (ret < 0) {
		gnutls_pubkey_deinit(*pub);
		*pub = NULL;
	}
	return ret;
}

/* Ends a keyops call: its public key into a wrapped key. */
static int ops_finish(const struct ca *ca, const char *ref, int ret, uint8_t *spki, size_t len,
		      const char *err, gnutls_privkey_t *key, gnutls_pubkey_t *pub)
{
	char shown[PATH_MAX];

	if (ret < 0) {
		free(spki);
		ca_key_ref_redact(ref, shown, sizeof(shown));
		if (err[0] != '\0')
			ca_set_error("%s", err);
		else
			ca_set_error("cannot open the key %s: %s", shown, capf_strerror(ret));
		return ret;
	}
	ret = pub_from_spki(spki, len, pub);
	if (ret == 0)
		ret = extkey_wrap(&ca->keyops, ref, *pub, key);
	if (ret < 0) {
		gnutls_pubkey_deinit(*pub);
		*pub = NULL;
		if (ret != CAPF_ECONFIG)
			ca_set_error("the keyops returned a bad public key for %s",
				     ca_key_ref_redact(ref, shown, sizeof(shown)));
	}
	return ret;
}

int ca_key_open(const struct ca *ca, const char *ref, gnutls_privkey_t *key, gnutls_pubkey_t *pub)
{
	uint8_t *spki = NULL;
	size_t len = 0;
	char err[512] = "";
	int ret;

	*key = NULL;
	*pub = NULL;
	if (ca == NULL || !ca->has_keyops) {
		ret = ca_key_load(ref, key);
		if (ret == 0 && (ret = pub_of_local(*key, pub)) < 0) {
			gnutls_privkey_deinit(*key);
			*key = NULL;
		}
		return ret;
	}
	ret = ca->keyops.load(ca->keyops.arg, ref, &spki, &len, err, sizeof(err));
	return ops_finish(ca, ref, ret, spki, len, err, key, pub);
}

int ca_key_make(const struct ca *ca, int key_type, const char *dir, const char *name,
		gnutls_privkey_t *key, gnutls_pubkey_t *pub)
{
	uint8_t *spki = NULL;
	size_t len = 0;
	char err[512] = "", ref[PATH_MAX];
	int ret;

	*key = NULL;
	*pub = NULL;
	if (ca == NULL || !ca->has_keyops) {
		ret = ca_key_generate(key_type, dir, name, key);
		if (ret == 0 && (ret = pub_of_local(*key, pub)) < 0) {
			gnutls_privkey_deinit(*key);
			*key = NULL;
		}
		return ret;
	}
	ret = ca_path(ref, sizeof(ref), dir, name);
	if (ret < 0)
		return ret;
	ret =
	    ca->keyops.generate(ca->keyops.arg, key_type, dir, name, &spki, &len, err, sizeof(err));
	return ops_finish(ca, ref, ret, spki, len, err, key, pub);
}

int ca_key_remote(gnutls_privkey_t key)
{
	return key != NULL && gnutls_privkey_get_type(key) == GNUTLS_PRIVKEY_EXT;
}

int ca_key_dup(const struct ca *ca, gnutls_privkey_t key, gnutls_pubkey_t pub, const char *ref,
	       pthread_mutex_t *lock, gnutls_privkey_t *out)
{
	gnutls_x509_privkey_t xkey = NULL;
	gnutls_privkey_t pkey = NULL;
	int ret;

	*out = NULL;
	if (key == NULL)
		return CAPF_ENOENT;
	if (ca_key_remote(key)) {
		/* Another handle on the same remote key: no round trip. */
		if (ref == NULL || pub == NULL)
			return CAPF_ENOTSUP;
		return extkey_wrap(&ca->keyops, ref, pub, out);
	}
	if (ca_key_is_url(ref)) {
		/* A new handle on the same token object (the key stays in
		 * the token). */
		CHECK_GNUTLS(gnutls_privkey_init(&pkey));
		CHECK_GNUTLS(gnutls_privkey_import_url(pkey, ref, 0));
	} else {
		if (gnutls_privkey_get_type(key) != GNUTLS_PRIVKEY_X509)
			return CAPF_ENOTSUP;
		pthread_mutex_lock(lock);
		ret = gnutls_privkey_export_x509(key, &xkey);
		pthread_mutex_unlock(lock);
		if (ret < 0) {
			ret = ca_gnutls_err(ret);
			goto out;
		}
		CHECK_GNUTLS(gnutls_privkey_init(&pkey));
		CHECK_GNUTLS(
		    gnutls_privkey_import_x509(pkey, xkey, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE));
		xkey = NULL;
	}
	*out = pkey;
	pkey = NULL;
	ret = 0;
out:
	gnutls_privkey_deinit(pkey);
	gnutls_x509_privkey_deinit(xkey);
	return ret;
}

int ca_key_obtain(const struct ca *ca, const struct ca_keyspec *spec, int default_type,
		  const char *dir, gnutls_privkey_t *out, gnutls_pubkey_t *pub, char **url)
{
	const char *ref = spec != NULL ? spec->key : NULL;
	int key_type = spec != NULL && spec->key_type != 0 ? spec->key_type : default_type;
	char kdir[PATH_MAX];
	const char *base = NULL;
	struct stat st;
	int ret;

	*out = NULL;
	*pub = NULL;
	*url = NULL;
	if (ref == NULL || ref[0] == '\0')
		return ca_key_make(ca, key_type, dir, CA_FILE_KEY, out, pub);

	if (!ca_key_is_url(ref) && stat(ref, &st) < 0 && errno == ENOENT) {
		/* A configured key file that does not exist yet is made
		 * where the configuration says. */
		ret = ca_path_split(ref, kdir, sizeof(kdir), &base);
		if (ret < 0) {
			ca_set_error("bad key path %s", ref);
			return ret;
		}
		ret = ca_key_make(ca, key_type, kdir, base, out, pub);
	} else {
		ret = ca_key_open(ca, ref, out, pub);
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
	gnutls_pubkey_deinit(*pub);
	*out = NULL;
	*pub = NULL;
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
