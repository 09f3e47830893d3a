/*
 * A CAPF CA generation as the CA uses it (struct ca_issuer): its
 * certificate and the key that signs for it, held through the key seam
 * (the signer, a file, a PKCS#11 token): signing, a key moved with its
 * generation, adopting a key from elsewhere.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca/internal.h"
#include "proto/capf.pb-c.h"
#include "proto/proto.h"

/* ---- issuers ------------------------------------------------------------ */

void ca_issuer_free(struct ca_issuer *is)
{
	unsigned i;

	if (is == NULL)
		return;
	/* gnutls_privkey_deinit() wipes the key parameters it owns. */
	gnutls_privkey_deinit(is->key);
	gnutls_pubkey_deinit(is->key_pub);
	if (is->key_ref != NULL) {
		gnutls_memset(is->key_ref, 0, strlen(is->key_ref));
		free(is->key_ref);
	}
	if (is->key_url != NULL) {
		gnutls_memset(is->key_url, 0, strlen(is->key_url));
		free(is->key_url);
	}
	gnutls_x509_crt_deinit(is->crt);
	gnutls_free(is->der.data);
	gnutls_free(is->raw_dn.data);
	gnutls_free(is->crl_der.data);
	free(is->pem);
	for (i = 0; i < is->chain_len; i++)
		gnutls_x509_crt_deinit(is->chain[i]);
	gnutls_free(is->chain);
	pthread_mutex_destroy(&is->sign_lock);
	free(is);
}

struct ca_issuer *ca_issuer_alloc(void)
{
	struct ca_issuer *is = calloc(1, sizeof(*is));

	if (is == NULL)
		return NULL;
	if (pthread_mutex_init(&is->sign_lock, NULL) != 0) {
		free(is);
		return NULL;
	}
	return is;
}

/* 1 if kpub (a key's public half, as it was loaded) and crt's are the
 * same key. */
int ca_key_matches(gnutls_pubkey_t kpub, gnutls_x509_crt_t crt)
{
	gnutls_pubkey_t cpub = NULL;
	uint8_t kid[CA_KEY_ID_LEN], cid[CA_KEY_ID_LEN];
	int match = 0;

	if (kpub == NULL || gnutls_pubkey_init(&cpub) < 0)
		goto out;
	if (gnutls_pubkey_import_x509(cpub, crt, 0) < 0)
		goto out;
	if (ca_key_id(kpub, kid) < 0 || ca_key_id(cpub, cid) < 0)
		goto out;
	match = memcmp(kid, cid, sizeof(kid)) == 0;
out:
	gnutls_pubkey_deinit(cpub);
	return match;
}

/* A key in hand before an issuer takes it: the key, its public half, its
 * ref, and the ref again when it is a pkcs11: URI. */

static void wipe_str(char **p)
{
	if (*p != NULL) {
		gnutls_memset(*p, 0, strlen(*p));
		free(*p);
		*p = NULL;
	}
}

void ca_held_key_clear(struct held_key *k)
{
	gnutls_privkey_deinit(k->key);
	gnutls_pubkey_deinit(k->pub);
	wipe_str(&k->ref);
	wipe_str(&k->url);
	memset(k, 0, sizeof(*k));
}

/* Opens ref into k (ca_key_open()) and records it. */
int ca_held_key_open(const struct ca *ca, const char *ref, struct held_key *k)
{
	int ret;

	memset(k, 0, sizeof(*k));
	ret = ca_key_open(ca, ref, &k->key, &k->pub);
	if (ret < 0)
		return ret;
	if ((k->ref = strdup(ref)) == NULL ||
	    (ca_key_is_url(ref) && (k->url = strdup(ref)) == NULL)) {
		ca_held_key_clear(k);
		return CAPF_ENOMEM;
	}
	return 0;
}

/* The issuer takes the key over (k is left empty). */
void ca_issuer_take_key(struct ca_issuer *is, struct held_key *k)
{
	is->key = k->key;
	is->key_pub = k->pub;
	is->key_ref = k->ref;
	is->key_url = k->url;
	memset(k, 0, sizeof(*k));
}

/* The reverse of ca_issuer_take_key(). */
void ca_issuer_give_key(struct ca_issuer *is, struct held_key *k)
{
	k->key = is->key;
	k->pub = is->key_pub;
	k->ref = is->key_ref;
	k->url = is->key_url;
	is->key = NULL;
	is->key_pub = NULL;
	is->key_ref = NULL;
	is->key_url = NULL;
}

int ca_issuer_sign(struct ca_issuer *is, const gnutls_datum_t *data, gnutls_datum_t *sig)
{
	int ret;

	if (is->key == NULL)
		return GNUTLS_E_INVALID_REQUEST;
	if (ca_key_remote(is->key))
		return gnutls_privkey_sign_data2(is->key, is->sign_algo, 0, data, sig);
	/*
	 * GnuTLS promises thread safety per object, not for one key shared
	 * by several threads; a PKCS#11 key may also sit behind a single
	 * token session. Signing here therefore holds the CA's lock.
	 */
	pthread_mutex_lock(&is->sign_lock);
	ret = gnutls_privkey_sign_data2(is->key, is->sign_algo, 0, data, sig);
	pthread_mutex_unlock(&is->sign_lock);
	return ret;
}

/*
 * A key that a new CA made in its temporary directory changes its path
 * when that directory becomes gen/<id>. Its ref follows; a remote key is
 * opened again under the new ref (and must be the same key), so that a
 * restarted signer finds it there.
 */
int ca_issuer_key_moved(const struct ca *ca, struct ca_issuer *is, const char *gdir)
{
	struct held_key k = {0};
	char path[PATH_MAX];
	uint8_t a[CA_KEY_ID_LEN], b[CA_KEY_ID_LEN];
	int ret;

	ret = ca_path(path, sizeof(path), gdir, CA_FILE_KEY);
	if (ret < 0)
		return ret;
	if (!ca_key_remote(is->key)) {
		char *ref = strdup(path);

		if (ref == NULL)
			return CAPF_ENOMEM;
		wipe_str(&is->key_ref);
		is->key_ref = ref;
		return 0;
	}
	ret = ca_held_key_open(ca, path, &k);
	if (ret < 0)
		return ret;
	if (ca_key_id(k.pub, a) < 0 || ca_key_id(is->key_pub, b) < 0 ||
	    memcmp(a, b, sizeof(a)) != 0) {
		ca_set_error("the key in %s is not the key the CA was made with", gdir);
		ca_held_key_clear(&k);
		return CAPF_ECRYPTO;
	}
	{
		struct held_key old;

		ca_issuer_give_key(is, &old);
		ca_issuer_take_key(is, &k);
		ca_held_key_clear(&old);
	}
	return 0;
}

/*
 * Fills the derived fields of an issuer whose crt is set (DER, PEM, raw
 * subject, SKI, signing algorithm, id) and checks that it is a CA that
 * may sign certificates, and that its key (if any) is its key.
 */
int ca_issuer_check_key(struct ca_issuer *is, const char *where)
{
	gnutls_datum_t why = {NULL, 0};
	unsigned status = 0;
	int ret;

	if (is->key == NULL)
		return 0;
	ret = ca_issuer_test_issue(is, &status);
	if (ret == CAPF_ERETRY || ret == CAPF_ECRYPTO) {
		ca_set_error("cannot sign with the CA key of %s: %s", where,
			     ret == CAPF_ERETRY ? "the signer is not reachable" : "signature failed");
	} else if (ret == CAPF_ECONFIG && (status & GNUTLS_CERT_SIGNATURE_FAILURE)) {
		ca_set_error("the CA key does not sign for the CA certificate %s (its private "
			     "half is not the certificate's key: a damaged key file?)",
			     where);
	} else if (ret == CAPF_ECONFIG) {
		gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0);
		ca_set_error("the CA certificate %s cannot issue certificates that verify: %s", where,
			     why.data != NULL ? (const char *)why.data : "refused as an issuer");
		gnutls_free(why.data);
	}
	return ret;
}

int ca_issuer_adopt(struct ca_issuer *is, const char *where)
{
	gnutls_pubkey_t cpub = NULL;
	gnutls_datum_t pem = {NULL, 0};
	uint8_t serial[CA_SERIAL_MAX], cid[CA_KEY_ID_LEN];
	size_t serial_len = sizeof(serial), ski_len;
	unsigned usage = 0;
	int ret;

	if (gnutls_x509_crt_get_ca_status(is->crt, NULL) <= 0) {
		ca_set_error("%s is not a CA certificate (basicConstraints CA:TRUE missing)",
			     where);
		return CAPF_ECONFIG;
	}
	if (gnutls_x509_crt_get_key_usage(is->crt, &usage, NULL) >= 0 &&
	    !(usage & GNUTLS_KEY_KEY_CERT_SIGN)) {
		ca_set_error("%s does not allow certificate signing (keyUsage)", where);
		return CAPF_ECONFIG;
	}
	if (is->key != NULL && !ca_key_matches(is->key_pub, is->crt)) {
		ca_set_error("the CA key does not match the CA certificate %s", where);
		return CAPF_ECONFIG;
	}
	if (gnutls_x509_crt_get_serial(is->crt, serial, &serial_len) < 0 || serial_len == 0 ||
	    serial_len > CA_SERIAL_MAX) {
		ca_set_error("%s has no usable serial number", where);
		return CAPF_ECONFIG;
	}
	hex_encode(serial, serial_len, is->id);

	CHECK_GNUTLS(gnutls_pubkey_init(&cpub));
	CHECK_GNUTLS(gnutls_pubkey_import_x509(cpub, is->crt, 0));
	ret = ca_key_sign_params(cpub, &is->sign_hash, &is->sign_algo);
	if (ret < 0) {
		ca_set_error("%s: the key type of the CA is not supported (EC or RSA)", where);
		ret = CAPF_ECONFIG;
		goto out;
	}
	/* Keep the CA's own SKI for the AKI of LSCs; a certificate from an
	 * enterprise CA may lack one, then derive it as for new keys. */
	ski_len = sizeof(is->ski);
	ret = gnutls_x509_crt_get_subject_key_id(is->crt, is->ski, &ski_len, NULL);
	if (ret >= 0 && ski_len > 0) {
		is->ski_len = ski_len;
	} else {
		ret = ca_key_id(cpub, cid);
		if (ret < 0)
			goto out;
		memcpy(is->ski, cid, sizeof(cid));
		is->ski_len = sizeof(cid);
	}
	CHECK_GNUTLS(gnutls_x509_crt_get_raw_dn(is->crt, &is->raw_dn));
	CHECK_GNUTLS(gnutls_x509_crt_export2(is->crt, GNUTLS_X509_FMT_DER, &is->der));
	CHECK_GNUTLS(gnutls_x509_crt_export2(is->crt, GNUTLS_X509_FMT_PEM, &pem));
	is->pem = malloc(pem.size + 1);
	if (is->pem == NULL) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	memcpy(is->pem, pem.data, pem.size);
	is->pem[pem.size] = '\0';
	ret = 0;
out:
	gnutls_free(pem.data);
	gnutls_pubkey_deinit(cpub);
	return ret;
}

/* Reads the key of a CA directory: key.pem, or the ref in key.ref. */
int ca_gen_key_load(const struct ca *ca, const char *gdir, struct held_key *k)
{
	char path[PATH_MAX];
	gnutls_datum_t ref = {NULL, 0};
	int ret;

	memset(k, 0, sizeof(*k));
	ret = ca_path(path, sizeof(path), gdir, CA_FILE_KEYREF);
	if (ret < 0)
		return ret;
	if (ca_file_read(path, CA_FILE_MAX, &ref) == 0) {
		/* One line: drop the newline an editor may have added. */
		while (ref.size > 0 && (ref.data[ref.size - 1] == '\n' ||
					ref.data[ref.size - 1] == '\r'))
			ref.data[--ref.size] = '\0';
		ret = ca_held_key_open(ca, (char *)ref.data, k);
		ca_file_free(&ref);
		return ret;
	}
	if (errno != ENOENT) {
		ca_set_error("cannot read %s: %s", path, strerror(errno));
		return CAPF_EIO;
	}
	ret = ca_path(path, sizeof(path), gdir, CA_FILE_KEY);
	if (ret < 0)
		return ret;
	return ca_held_key_open(ca, path, k);
}
