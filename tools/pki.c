/*
 * tools/pki.c - X.509 helpers for the phone simulator and the tests: a
 * test manufacturer CA, MICs, phone keys and bound CSRs.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>

#include "ca/ca.h"
#include "proto/capf.pb-c.h"
#include "proto/errcode.h"
#include "tools/pki.h"

#define PKI_BINDING_MAX 64u
#define PKI_FILE_MAX (64u * 1024u)
#define PKI_KEY_ID_LEN 20u

/* The GnuTLS error of a failed call, as a capf code. */
static int pki_err(int gnutls_ret)
{
	return gnutls_ret == GNUTLS_E_MEMORY_ERROR ? CAPF_ENOMEM : CAPF_ECRYPTO;
}

/* One exit label per function; this runs a GnuTLS call and jumps to it. */
#define CHECK(call)                                                                                \
	do {                                                                                       \
		int check_ret_ = (call);                                                           \
		if (check_ret_ < 0) {                                                              \
			ret = pki_err(check_ret_);                                                 \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)

void pki_pair_deinit(struct pki_pair *p)
{
	if (p == NULL)
		return;
	if (p->key != NULL)
		gnutls_x509_privkey_deinit(p->key);
	if (p->crt != NULL)
		gnutls_x509_crt_deinit(p->crt);
	p->key = NULL;
	p->crt = NULL;
}

int pki_gen_key(int key_type, gnutls_x509_privkey_t *out)
{
	/* One key generator for the CA and the tools: ca/ makes the key in
	 * memory and hands it over; nothing is written. */
	return ca_key_new(key_type, out);
}

/* A positive 16-byte serial, as ca/ makes them. */
static int random_serial(uint8_t serial[16])
{
	int ret;

	do {
		ret = gnutls_rnd(GNUTLS_RND_NONCE, serial, 16);
		if (ret < 0)
			return pki_err(ret);
		serial[0] &= 0x7f;
	} while (serial[0] == 0);
	return 0;
}

/* SHA-1 key identifier of a key, as certtool makes them. */
static int key_id(gnutls_x509_privkey_t key, uint8_t id[PKI_KEY_ID_LEN])
{
	size_t len = PKI_KEY_ID_LEN;
	int ret = gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA1, id, &len);

	return ret < 0 ? pki_err(ret) : 0;
}

/*
 * Fills the fields common to the test root and MICs. The key is made
 * here; the caller adds extensions and signs.
 */
static int start_cert(const char *cn, time_t not_before, unsigned days, struct pki_pair *out)
{
	uint8_t serial[16], ski[PKI_KEY_ID_LEN];
	int ret;

	out->key = NULL;
	out->crt = NULL;
	if (cn == NULL || cn[0] == '\0')
		return CAPF_EINVAL;
	ret = pki_gen_key(CAPF__KEY_TYPE__KEY_EC_P256, &out->key);
	if (ret < 0)
		goto out;
	CHECK(gnutls_x509_crt_init(&out->crt));
	CHECK(gnutls_x509_crt_set_version(out->crt, 3));
	ret = random_serial(serial);
	if (ret < 0)
		goto out;
	CHECK(gnutls_x509_crt_set_serial(out->crt, serial, sizeof(serial)));
	CHECK(gnutls_x509_crt_set_activation_time(out->crt, not_before));
	CHECK(gnutls_x509_crt_set_expiration_time(out->crt, not_before + (time_t)days * 86400));
	CHECK(gnutls_x509_crt_set_dn_by_oid(out->crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
					    (unsigned)strlen(cn)));
	CHECK(gnutls_x509_crt_set_key(out->crt, out->key));
	ret = key_id(out->key, ski);
	if (ret < 0)
		goto out;
	CHECK(gnutls_x509_crt_set_subject_key_id(out->crt, ski, sizeof(ski)));
	ret = 0;
out:
	if (ret < 0)
		pki_pair_deinit(out);
	return ret;
}

/* gnutls_x509_crt_sign2() leaves a certificate that must be exported and
 * imported again before it can verify anything; do that here. */
static int reload(gnutls_x509_crt_t *crt)
{
	gnutls_x509_crt_t fresh = NULL;
	gnutls_datum_t der = {NULL, 0};
	int ret;

	CHECK(gnutls_x509_crt_export2(*crt, GNUTLS_X509_FMT_DER, &der));
	CHECK(gnutls_x509_crt_init(&fresh));
	CHECK(gnutls_x509_crt_import(fresh, &der, GNUTLS_X509_FMT_DER));
	gnutls_x509_crt_deinit(*crt);
	*crt = fresh;
	fresh = NULL;
	ret = 0;
out:
	if (fresh != NULL)
		gnutls_x509_crt_deinit(fresh);
	gnutls_free(der.data);
	return ret;
}

int pki_make_root(const char *cn, unsigned days, struct pki_pair *out)
{
	int ret;

	if (out == NULL)
		return CAPF_EINVAL;
	ret = start_cert(cn, time(NULL) - 3600, days, out);
	if (ret < 0)
		return ret;
	CHECK(gnutls_x509_crt_set_basic_constraints(out->crt, 1, -1));
	CHECK(gnutls_x509_crt_set_key_usage(out->crt,
					    GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN));
	CHECK(gnutls_x509_crt_sign2(out->crt, out->crt, out->key, GNUTLS_DIG_SHA256, 0));
	ret = reload(&out->crt);
out:
	if (ret < 0)
		pki_pair_deinit(out);
	return ret;
}

int pki_make_mic(const struct pki_pair *issuer, const char *cn, time_t not_before, unsigned days,
		 struct pki_pair *out)
{
	return pki_make_mic_purpose(issuer, cn, not_before, days, GNUTLS_KP_TLS_WWW_CLIENT, out);
}

int pki_make_mic_purpose(const struct pki_pair *issuer, const char *cn, time_t not_before,
			 unsigned days, const char *purpose, struct pki_pair *out)
{
	uint8_t aki[64];
	size_t aki_len = sizeof(aki);
	int ret;

	if (out == NULL)
		return CAPF_EINVAL;
	if (issuer == NULL || issuer->key == NULL || issuer->crt == NULL) {
		out->key = NULL;
		out->crt = NULL;
		return CAPF_EINVAL;
	}
	if (not_before == 0)
		not_before = time(NULL) - 3600;
	ret = start_cert(cn, not_before, days, out);
	if (ret < 0)
		return ret;
	CHECK(gnutls_x509_crt_set_basic_constraints(out->crt, 0, -1));
	CHECK(gnutls_x509_crt_set_key_usage(out->crt, GNUTLS_KEY_DIGITAL_SIGNATURE));
	if (purpose != NULL)
		CHECK(gnutls_x509_crt_set_key_purpose_oid(out->crt, purpose, 0));
	if (gnutls_x509_crt_get_subject_key_id(issuer->crt, aki, &aki_len, NULL) >= 0)
		CHECK(gnutls_x509_crt_set_authority_key_id(out->crt, aki, aki_len));
	CHECK(gnutls_x509_crt_sign2(out->crt, issuer->crt, issuer->key, GNUTLS_DIG_SHA256, 0));
	ret = reload(&out->crt);
out:
	if (ret < 0)
		pki_pair_deinit(out);
	return ret;
}

/* Copies what GnuTLS exported into a malloc'd buffer, which callers of
 * this API free() rather than gnutls_free(). */
static int copy_out(const gnutls_datum_t *d, uint8_t **der, size_t *der_len)
{
	*der = malloc(d->size);
	if (*der == NULL)
		return CAPF_ENOMEM;
	memcpy(*der, d->data, d->size);
	*der_len = d->size;
	return 0;
}

int pki_make_csr(gnutls_x509_privkey_t key, const char *cn, const uint8_t *binding,
		 size_t binding_len, uint8_t **der, size_t *der_len)
{
	static const char hex[] = "0123456789abcdef";
	gnutls_x509_crq_t crq = NULL;
	gnutls_datum_t out = {NULL, 0};
	char pass[2 * PKI_BINDING_MAX + 1];
	size_t i;
	int ret;

	if (der == NULL || der_len == NULL)
		return CAPF_EINVAL;
	*der = NULL;
	*der_len = 0;
	if (key == NULL || cn == NULL || cn[0] == '\0' || binding_len > PKI_BINDING_MAX ||
	    (binding_len > 0 && binding == NULL))
		return CAPF_EINVAL;

	CHECK(gnutls_x509_crq_init(&crq));
	CHECK(gnutls_x509_crq_set_version(crq, 1));
	CHECK(gnutls_x509_crq_set_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
					    (unsigned)strlen(cn)));
	CHECK(gnutls_x509_crq_set_key(crq, key));
	if (binding_len > 0) {
		for (i = 0; i < binding_len; i++) {
			pass[2 * i] = hex[binding[i] >> 4];
			pass[2 * i + 1] = hex[binding[i] & 0x0f];
		}
		pass[2 * binding_len] = '\0';
		CHECK(gnutls_x509_crq_set_challenge_password(crq, pass));
	}
	CHECK(gnutls_x509_crq_sign2(crq, key, GNUTLS_DIG_SHA256, 0));
	CHECK(gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_DER, &out));
	ret = copy_out(&out, der, der_len);
out:
	gnutls_free(out.data);
	if (crq != NULL)
		gnutls_x509_crq_deinit(crq);
	return ret;
}

int pki_write_pair(const struct pki_pair *p, const char *crt_path, const char *key_path)
{
	gnutls_datum_t crt = {NULL, 0}, key = {NULL, 0};
	int ret;

	if (p == NULL || p->crt == NULL || p->key == NULL || crt_path == NULL || key_path == NULL)
		return CAPF_EINVAL;
	CHECK(gnutls_x509_crt_export2(p->crt, GNUTLS_X509_FMT_PEM, &crt));
	CHECK(gnutls_x509_privkey_export2_pkcs8(p->key, GNUTLS_X509_FMT_PEM, NULL,
						GNUTLS_PKCS_PLAIN, &key));
	ret = ca_file_write_atomic(key_path, key.data, key.size, 0600);
	if (ret < 0)
		goto out;
	ret = ca_file_write_atomic(crt_path, crt.data, crt.size, 0644);
out:
	gnutls_free(crt.data);
	if (key.data != NULL) {
		gnutls_memset(key.data, 0, key.size);
		gnutls_free(key.data);
	}
	return ret;
}

/* Reads a small file into a malloc'd buffer. */
static int read_small(const char *path, gnutls_datum_t *out)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t size, done = 0;
	int fd, ret;

	out->data = NULL;
	out->size = 0;
	/* O_NONBLOCK: a FIFO is refused below, not waited on. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (uintmax_t)st.st_size > PKI_FILE_MAX) {
		ret = CAPF_EINVAL;
		goto out;
	}
	size = (size_t)st.st_size;
	buf = malloc(size + 1);
	if (buf == NULL) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	while (done < size) {
		ssize_t n = read(fd, buf + done, size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	buf[done] = '\0';
	out->data = buf;
	out->size = (unsigned)done;
	buf = NULL;
	ret = 0;
out:
	free(buf);
	close(fd);
	return ret;
}

int pki_read_pair(const char *crt_path, const char *key_path, struct pki_pair *out)
{
	gnutls_datum_t crt = {NULL, 0}, key = {NULL, 0};
	int ret;

	if (out == NULL)
		return CAPF_EINVAL;
	out->key = NULL;
	out->crt = NULL;
	if (crt_path == NULL || key_path == NULL)
		return CAPF_EINVAL;
	ret = read_small(crt_path, &crt);
	if (ret < 0)
		goto out;
	ret = read_small(key_path, &key);
	if (ret < 0)
		goto out;
	CHECK(gnutls_x509_crt_init(&out->crt));
	CHECK(gnutls_x509_crt_import(out->crt, &crt, GNUTLS_X509_FMT_PEM));
	CHECK(gnutls_x509_privkey_init(&out->key));
	CHECK(gnutls_x509_privkey_import2(out->key, &key, GNUTLS_X509_FMT_PEM, NULL, 0));
	ret = 0;
out:
	if (ret < 0)
		pki_pair_deinit(out);
	free(crt.data);
	if (key.data != NULL) {
		gnutls_memset(key.data, 0, key.size);
		free(key.data);
	}
	return ret;
}

int pki_read_key(const char *path, gnutls_x509_privkey_t *out)
{
	gnutls_datum_t key = {NULL, 0};
	gnutls_x509_privkey_t k = NULL;
	int ret;

	if (out == NULL || path == NULL)
		return CAPF_EINVAL;
	*out = NULL;
	ret = read_small(path, &key);
	if (ret < 0)
		goto out;
	CHECK(gnutls_x509_privkey_init(&k));
	CHECK(gnutls_x509_privkey_import2(k, &key, GNUTLS_X509_FMT_PEM, NULL, 0));
	*out = k;
	k = NULL;
	ret = 0;
out:
	if (k)
		gnutls_x509_privkey_deinit(k);
	if (key.data != NULL) {
		gnutls_memset(key.data, 0, key.size);
		free(key.data);
	}
	return ret;
}

int pki_crt_der(gnutls_x509_crt_t crt, uint8_t **der, size_t *der_len)
{
	gnutls_datum_t out = {NULL, 0};
	int ret;

	if (der == NULL || der_len == NULL)
		return CAPF_EINVAL;
	*der = NULL;
	*der_len = 0;
	if (crt == NULL)
		return CAPF_EINVAL;
	CHECK(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &out));
	ret = copy_out(&out, der, der_len);
out:
	gnutls_free(out.data);
	return ret;
}

int pki_tls_binding(gnutls_session_t session, uint8_t out[32])
{
	static const char label[] = "EXPORTER-Channel-Binding";
	int ret;

	if (session == NULL || out == NULL)
		return CAPF_EINVAL;
	/* RFC 9266 section 3: without the extended master secret a TLS 1.2
	 * exporter is not unique to the connection. */
	if (gnutls_protocol_get_version(session) != GNUTLS_TLS1_3 &&
	    !gnutls_session_ext_master_secret_status(session))
		return CAPF_ENOTSUP;
	ret = gnutls_prf_rfc5705(session, strlen(label), label, 0, NULL, 32, (char *)out);
	return ret < 0 ? CAPF_ECRYPTO : 0;
}

int pki_cisco_sign(gnutls_x509_privkey_t key, bool sha512, const uint8_t *msg, size_t len,
		   gnutls_datum_t *sig)
{
	gnutls_digest_algorithm_t dig = sha512 ? GNUTLS_DIG_SHA512 : GNUTLS_DIG_SHA1;
	gnutls_privkey_t pk = NULL;
	uint8_t hash[64];
	gnutls_datum_t h = { hash, (unsigned)gnutls_hash_get_len(dig) };
	int ret = CAPF_ECRYPTO;

	sig->data = NULL;
	sig->size = 0;
	if (gnutls_hash_fast(dig, msg, len, hash) < 0 || gnutls_privkey_init(&pk) < 0)
		return CAPF_ECRYPTO;
	if (gnutls_privkey_import_x509(pk, key, 0) < 0)
		goto out;
	if (gnutls_privkey_get_pk_algorithm(pk, NULL) == GNUTLS_PK_RSA)
		ret = gnutls_privkey_sign_hash(pk, dig, GNUTLS_PRIVKEY_SIGN_FLAG_TLS1_RSA, &h, sig);
	else
		ret = gnutls_privkey_sign_hash2(pk, gnutls_pk_to_sign(GNUTLS_PK_ECDSA, dig), 0, &h,
						sig);
	ret = ret < 0 ? CAPF_ECRYPTO : 0;
out:
	gnutls_privkey_deinit(pk);
	return ret;
}

int pki_cisco_signed_name(const char *name, const uint8_t *der, size_t len, uint8_t **out,
			  size_t *out_len)
{
	size_t nl = strlen(name);

	*out = malloc(nl + 1 + len);
	if (!*out)
		return CAPF_ENOMEM;
	memcpy(*out, name, nl);
	(*out)[nl] = 0;
	memcpy(*out + nl + 1, der, len);
	*out_len = nl + 1 + len;
	return 0;
}

int pki_cisco_signed_sid(uint32_t sid, const uint8_t *der, size_t len, uint8_t **out,
			 size_t *out_len)
{
	*out = malloc(4 + len);
	if (!*out)
		return CAPF_ENOMEM;
	(*out)[0] = (uint8_t)sid;
	(*out)[1] = (uint8_t)(sid >> 8);
	(*out)[2] = (uint8_t)(sid >> 16);
	(*out)[3] = (uint8_t)(sid >> 24);
	memcpy(*out + 4, der, len);
	*out_len = 4 + len;
	return 0;
}

int pki_cisco_sign_name(gnutls_x509_privkey_t key, bool sha512, const char *name,
			const uint8_t *der, size_t len, gnutls_datum_t *sig)
{
	uint8_t *msg = NULL;
	size_t msg_len = 0;
	int ret = pki_cisco_signed_name(name, der, len, &msg, &msg_len);

	if (ret < 0)
		return ret;
	ret = pki_cisco_sign(key, sha512, msg, msg_len, sig);
	free(msg);
	return ret;
}
