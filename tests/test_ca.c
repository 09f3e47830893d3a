/*
 * tests/test_ca.c - the CAPF CA: creation and loading, CSR checks, the
 * LSC profile, MIC verification, TLS credentials and channel binding.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <stdbool.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "ca/ca.h"
#include "proto/capf.pb-c.h"
#include "proto/proto.h"
#include "store/store.h"
#include "tools/pki.h"

#define DEV "SEP001122334455"
#define DAY 86400

static char tmpdir[] = "/tmp/capf-test-ca.XXXXXX";

/* Made once in suite setup: manufacturer roots, keys, the shared CA. */
static struct pki_pair mfg_root;      /* in the roots bundle */
static struct pki_pair other_root;    /* not in the bundle */
static struct pki_pair ca_named_root; /* in the bundle, CN is a device name */
static gnutls_x509_privkey_t key_p256, key_p384, key_rsa2048;
static char roots_path[512];
static struct ca *shared_ca;
static const uint8_t binding[CA_BINDING_LEN] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0xa0, 0xb1, 0xc2, 0xd3, 0xe4, 0xf5, 0x16, 0x27, 0x38, 0x49, 0x5a, 0x6b, 0x7c, 0x8d, 0x9e, 0xaf,
};

/* ---- helpers ---- */

static const char *path_in(const char *name)
{
	static char buf[4][512];
	static unsigned next;
	char *p = buf[next++ % 4];

	snprintf(p, sizeof(buf[0]), "%s/%s", tmpdir, name);
	return p;
}

static int write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	int ok;

	if (f == NULL)
		return -1;
	ok = fwrite(data, 1, len, f) == len;
	return (fclose(f) == 0 && ok) ? 0 : -1;
}

static int append_crt_pem(FILE *f, gnutls_x509_crt_t crt)
{
	gnutls_datum_t pem = {NULL, 0};
	int ok;

	if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem) < 0)
		return -1;
	ok = fwrite(pem.data, 1, pem.size, f) == pem.size;
	gnutls_free(pem.data);
	return ok ? 0 : -1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static gnutls_x509_crt_t crt_from_der(const uint8_t *der, size_t len)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t d = {(unsigned char *)der, (unsigned)len};

	if (gnutls_x509_crt_init(&crt) < 0)
		return NULL;
	if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) < 0) {
		gnutls_x509_crt_deinit(crt);
		return NULL;
	}
	return crt;
}

static gnutls_x509_crt_t ca_crt(const struct ca *ca)
{
	const uint8_t *der;
	size_t len;

	ca_cert_der(ca, &der, &len);
	return crt_from_der(der, len);
}

/* The key identifier ca/ puts in SKI: SHA-256 of the SPKI, 20 bytes. */
static int expected_key_id(gnutls_x509_privkey_t key, uint8_t out[20])
{
	uint8_t id[32];
	size_t len = sizeof(id);

	if (gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, id, &len) < 0 || len < 20)
		return -1;
	memcpy(out, id, 20);
	return 0;
}

enum { CSR_EXT = 1, CSR_UPPER_HEX = 2, CSR_SHA1 = 4, CSR_PSS = 8 };

/* A CSR built by hand, for the cases pki_make_csr() cannot make:
 * extensions a phone should not get, upper-case hex, SHA-1, RSA-PSS. */
static int make_csr_custom(gnutls_x509_privkey_t key, const char *cn, unsigned flags, uint8_t **der,
			   size_t *len)
{
	gnutls_x509_crq_t crq = NULL;
	gnutls_datum_t out = {NULL, 0};
	char pass[2 * CA_BINDING_LEN + 1];
	const char *hex = (flags & CSR_UPPER_HEX) ? "0123456789ABCDEF" : "0123456789abcdef";
	size_t i;
	int ret = -1;

	for (i = 0; i < CA_BINDING_LEN; i++) {
		pass[2 * i] = hex[binding[i] >> 4];
		pass[2 * i + 1] = hex[binding[i] & 15];
	}
	pass[2 * CA_BINDING_LEN] = '\0';
	if (gnutls_x509_crq_init(&crq) < 0)
		return -1;
	if (gnutls_x509_crq_set_version(crq, 1) < 0 ||
	    gnutls_x509_crq_set_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen(cn)) <
		0 ||
	    gnutls_x509_crq_set_key(crq, key) < 0 ||
	    gnutls_x509_crq_set_challenge_password(crq, pass) < 0)
		goto out;
	if (flags & CSR_EXT) {
		if (gnutls_x509_crq_set_basic_constraints(crq, 1, -1) < 0 ||
		    gnutls_x509_crq_set_key_usage(crq, GNUTLS_KEY_KEY_CERT_SIGN) < 0 ||
		    gnutls_x509_crq_set_subject_alt_name(crq, GNUTLS_SAN_DNSNAME, "evil.example",
							 12, GNUTLS_FSAN_SET) < 0 ||
		    gnutls_x509_crq_set_key_purpose_oid(crq, "1.3.6.1.5.5.7.3.3", 0) < 0)
			goto out;
	}
	if (flags & CSR_PSS) {
		gnutls_privkey_t pk = NULL;
		int r = gnutls_privkey_init(&pk);

		if (r == 0)
			r = gnutls_privkey_import_x509(pk, key, 0);
		if (r == 0)
			r = gnutls_x509_crq_privkey_sign(crq, pk, GNUTLS_DIG_SHA256,
							 GNUTLS_PRIVKEY_SIGN_FLAG_RSA_PSS);
		gnutls_privkey_deinit(pk);
		if (r < 0)
			goto out;
	} else if (gnutls_x509_crq_sign2(crq, key,
					 (flags & CSR_SHA1) ? GNUTLS_DIG_SHA1 : GNUTLS_DIG_SHA256,
					 0) < 0)
		goto out;
	if (gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_DER, &out) < 0)
		goto out;
	*der = malloc(out.size);
	if (*der == NULL)
		goto out;
	memcpy(*der, out.data, out.size);
	*len = out.size;
	ret = 0;
out:
	gnutls_free(out.data);
	gnutls_x509_crq_deinit(crq);
	return ret;
}

/* Parses a CSR made by pki_make_csr() with the test binding. */
static struct ca_csr *bound_csr(gnutls_x509_privkey_t key, const char *cn)
{
	struct ca_csr *csr = NULL;
	uint8_t *der = NULL;
	size_t len = 0;

	if (pki_make_csr(key, cn, binding, sizeof(binding), &der, &len) == 0)
		ca_csr_parse(der, len, &csr);
	free(der);
	return csr;
}

/*
 * Signs out->crt with crt and key (its issuer, or out's own for a
 * self-signed one), then replaces out->crt with the exported and
 * re-imported certificate: GnuTLS verifies a certificate it signed only
 * after that.
 */
static int sign_reload(struct pki_pair *out, gnutls_x509_crt_t crt, gnutls_x509_privkey_t key)
{
	gnutls_datum_t der = {NULL, 0};
	gnutls_x509_crt_t fresh = NULL;
	int ret = -1;

	if (gnutls_x509_crt_sign2(out->crt, crt, key, GNUTLS_DIG_SHA256, 0) < 0 ||
	    gnutls_x509_crt_export2(out->crt, GNUTLS_X509_FMT_DER, &der) < 0)
		goto out;
	if (gnutls_x509_crt_init(&fresh) < 0 ||
	    gnutls_x509_crt_import(fresh, &der, GNUTLS_X509_FMT_DER) < 0)
		goto out;
	gnutls_x509_crt_deinit(out->crt);
	out->crt = fresh;
	fresh = NULL;
	ret = 0;
out:
	if (fresh != NULL)
		gnutls_x509_crt_deinit(fresh);
	gnutls_free(der.data);
	return ret;
}

/* An intermediate CA signed by issuer (CA:TRUE, keyCertSign). */
static int make_intermediate(const struct pki_pair *issuer, const char *cn, struct pki_pair *out)
{
	uint8_t serial[16] = {0x11, 0x22};
	time_t now = time(NULL);
	int ret = -1;

	out->key = NULL;
	out->crt = NULL;
	if (pki_gen_key(CAPF__KEY_TYPE__KEY_EC_P256, &out->key) < 0 ||
	    gnutls_x509_crt_init(&out->crt) < 0)
		goto out;
	if (gnutls_x509_crt_set_version(out->crt, 3) < 0 ||
	    gnutls_x509_crt_set_serial(out->crt, serial, sizeof(serial)) < 0 ||
	    gnutls_x509_crt_set_activation_time(out->crt, now - 3600) < 0 ||
	    gnutls_x509_crt_set_expiration_time(out->crt, now + 30 * DAY) < 0 ||
	    gnutls_x509_crt_set_dn_by_oid(out->crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
					  strlen(cn)) < 0 ||
	    gnutls_x509_crt_set_key(out->crt, out->key) < 0 ||
	    gnutls_x509_crt_set_basic_constraints(out->crt, 1, 0) < 0 ||
	    gnutls_x509_crt_set_key_usage(out->crt, GNUTLS_KEY_KEY_CERT_SIGN) < 0 ||
	    sign_reload(out, issuer->crt, issuer->key) < 0)
		goto out;
	ret = 0;
out:
	if (ret < 0)
		pki_pair_deinit(out);
	return ret;
}

/*
 * A CA certificate with subject dn (an RFC 4514 string): self-signed when
 * issuer is NULL, else signed by it. pathlen < 0: no constraint.
 */
static int make_sub_ca(const struct pki_pair *issuer, const char *dn, int pathlen,
		       struct pki_pair *out)
{
	uint8_t serial[16];
	time_t now = time(NULL);
	int ret = -1;

	out->key = NULL;
	out->crt = NULL;
	if (gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial)) < 0)
		return -1;
	serial[0] = (serial[0] & 0x3f) | 0x01;
	if (pki_gen_key(CAPF__KEY_TYPE__KEY_EC_P256, &out->key) < 0 ||
	    gnutls_x509_crt_init(&out->crt) < 0)
		goto out;
	if (gnutls_x509_crt_set_version(out->crt, 3) < 0 ||
	    gnutls_x509_crt_set_serial(out->crt, serial, sizeof(serial)) < 0 ||
	    gnutls_x509_crt_set_activation_time(out->crt, now - 3600) < 0 ||
	    gnutls_x509_crt_set_expiration_time(out->crt, now + 365 * DAY) < 0 ||
	    gnutls_x509_crt_set_dn(out->crt, dn, NULL) < 0 ||
	    gnutls_x509_crt_set_key(out->crt, out->key) < 0 ||
	    gnutls_x509_crt_set_basic_constraints(out->crt, 1, pathlen) < 0 ||
	    gnutls_x509_crt_set_key_usage(out->crt, GNUTLS_KEY_KEY_CERT_SIGN |
							GNUTLS_KEY_CRL_SIGN) < 0)
		goto out;
	if (sign_reload(out, issuer != NULL ? issuer->crt : out->crt,
			issuer != NULL ? issuer->key : out->key) < 0)
		goto out;
	ret = 0;
out:
	if (ret < 0)
		pki_pair_deinit(out);
	return ret;
}

/* Every certificate of a PEM bundle (gnutls_free the array). */
static int ca_crt_parse_all_for_test(const uint8_t *data, size_t len, gnutls_x509_crt_t **out,
				     unsigned *n)
{
	gnutls_datum_t in = {(unsigned char *)data, (unsigned)len};

	return gnutls_x509_crt_list_import2(out, n, &in, GNUTLS_X509_FMT_PEM, 0) < 0 ? -1 : 0;
}

/* ca_mic_verify() of a chain of pairs, leaf first. */
static int verify_pairs(struct ca *ca, const struct pki_pair *pairs, size_t n, const char *dev,
			time_t now)
{
	uint8_t *der[4] = {NULL};
	size_t len[4] = {0};
	size_t i;
	int ret = -1;

	for (i = 0; i < n; i++)
		if (pki_crt_der(pairs[i].crt, &der[i], &len[i]) < 0)
			goto out;
	ret = ca_mic_verify(ca, (const uint8_t *const *)der, len, n, dev, now);
out:
	for (i = 0; i < n; i++)
		free(der[i]);
	return ret;
}

/* A MIC for cn from issuer, valid now; verify it as dev. */
static int verify_mic_cn(struct ca *ca, const char *cn, const char *dev)
{
	struct pki_pair mic;
	int ret;

	if (pki_make_mic(&mfg_root, cn, 0, 30, &mic) < 0)
		return -1;
	ret = verify_pairs(ca, &mic, 1, dev, time(NULL));
	pki_pair_deinit(&mic);
	return ret;
}

/* The key file of the current CA of ca, opened on tmpdir/dir. */
static int current_key_path(struct ca *ca, const char *dir, char *buf, size_t len)
{
	struct ca_info *info = NULL;
	size_t n = 0;
	int ret = -1;

	if (ca_status(ca, time(NULL), &info, &n) == 0 && n > 0 && info[0].current) {
		snprintf(buf, len, "%s/%s/gen/%s/key.pem", tmpdir, dir, info[0].id);
		ret = 0;
	}
	free(info);
	return ret;
}

/* ---- suite setup ---- */

static int suite_init(void)
{
	struct ca_config cfg = {0};
	FILE *f;

	if (mkdtemp(tmpdir) == NULL)
		return -1;
	if (pki_make_root("Test Manufacturing CA", 30, &mfg_root) < 0 ||
	    pki_make_root("Other Manufacturing CA", 30, &other_root) < 0 ||
	    pki_make_root("SEP00AABBCCDDEE", 30, &ca_named_root) < 0)
		return -1;
	if (pki_gen_key(CAPF__KEY_TYPE__KEY_EC_P256, &key_p256) < 0 ||
	    pki_gen_key(CAPF__KEY_TYPE__KEY_EC_P384, &key_p384) < 0 ||
	    pki_gen_key(CAPF__KEY_TYPE__KEY_RSA_2048, &key_rsa2048) < 0)
		return -1;
	snprintf(roots_path, sizeof(roots_path), "%s/roots.pem", tmpdir);
	f = fopen(roots_path, "w");
	if (f == NULL)
		return -1;
	if (append_crt_pem(f, mfg_root.crt) < 0 || append_crt_pem(f, ca_named_root.crt) < 0) {
		fclose(f);
		return -1;
	}
	if (fclose(f) != 0)
		return -1;
	cfg.dir = path_in("shared");
	cfg.mfg_roots = roots_path;
	cfg.lsc_days = 30;
	return ca_new(&shared_ca, &cfg) == 0 ? 0 : -1;
}

static int suite_clean(void)
{
	ca_free(shared_ca);
	shared_ca = NULL;
	pki_pair_deinit(&mfg_root);
	pki_pair_deinit(&other_root);
	pki_pair_deinit(&ca_named_root);
	gnutls_x509_privkey_deinit(key_p256);
	gnutls_x509_privkey_deinit(key_p384);
	gnutls_x509_privkey_deinit(key_rsa2048);
	return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- ca_new ---- */

static void test_new_invalid_args(void)
{
	struct ca_config cfg = {0};
	struct ca *ca = (struct ca *)&cfg;

	CU_ASSERT_EQUAL(ca_new(NULL, &cfg), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_new(&ca, NULL), CAPF_EINVAL);
	ca = (struct ca *)&cfg;
	CU_ASSERT_EQUAL(ca_new(&ca, &cfg), CAPF_ECONFIG);
	CU_ASSERT_PTR_NULL(ca);
	CU_ASSERT_PTR_NOT_NULL(strstr(ca_last_error(), "directory"));
	cfg.dir = "";
	CU_ASSERT_EQUAL(ca_new(&ca, &cfg), CAPF_ECONFIG);
	CU_ASSERT_PTR_NULL(ca);
	cfg.dir = path_in("toolong");
	cfg.ca_days = 1000000;
	CU_ASSERT_EQUAL(ca_new(&ca, &cfg), CAPF_ECONFIG);
	CU_ASSERT_PTR_NULL(ca);
}

static void test_new_one_file_missing(void)
{
	struct ca_config cfg = {0};
	struct ca *ca = NULL;
	const char *pem = ca_cert_pem(shared_ca);

	CU_ASSERT_EQUAL_FATAL(mkdir(path_in("onlypem"), 0700), 0);
	CU_ASSERT_EQUAL_FATAL(write_file(path_in("onlypem/ca.pem"), pem, strlen(pem)), 0);
	cfg.dir = path_in("onlypem");
	CU_ASSERT_EQUAL(ca_new(&ca, &cfg), CAPF_ECONFIG);
	CU_ASSERT_PTR_NULL(ca);
	CU_ASSERT_PTR_NOT_NULL(strstr(ca_last_error(), "ca.key is missing"));
	/* Nothing was created in its place. */
	CU_ASSERT_NOT_EQUAL(access(path_in("onlypem/ca.key"), F_OK), 0);

	CU_ASSERT_EQUAL_FATAL(mkdir(path_in("onlykey"), 0700), 0);
	CU_ASSERT_EQUAL_FATAL(write_file(path_in("onlykey/ca.key"), "x", 1), 0);
	cfg.dir = path_in("onlykey");
	CU_ASSERT_EQUAL(ca_new(&ca, &cfg), CAPF_ECONFIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(ca_last_error(), "ca.pem is missing"));
}

static void test_new_mismatched_key(void)
{
	struct ca_config cfg = {0};
	struct ca *ca = NULL;
	struct pki_pair wrong = {NULL, NULL};
	gnutls_datum_t pem = {NULL, 0};
	char keyfile[512];

	cfg.dir = path_in("mismatch");
	CU_ASSERT_EQUAL_FATAL(ca_new(&ca, &cfg), 0);
	CU_ASSERT_EQUAL_FATAL(current_key_path(ca, "mismatch", keyfile, sizeof(keyfile)), 0);
	ca_free(ca);
	ca = NULL;
	CU_ASSERT_EQUAL_FATAL(pki_gen_key(CAPF__KEY_TYPE__KEY_EC_P256, &wrong.key), 0);
	CU_ASSERT_EQUAL_FATAL(gnutls_x509_privkey_export2_pkcs8(wrong.key, GNUTLS_X509_FMT_PEM,
								NULL, GNUTLS_PKCS_PLAIN, &pem),
			      0);
	CU_ASSERT_EQUAL(write_file(keyfile, pem.data, pem.size), 0);
	gnutls_free(pem.data);
	pki_pair_deinit(&wrong);
	CU_ASSERT_EQUAL(ca_new(&ca, &cfg), CAPF_ECONFIG);
	CU_ASSERT_PTR_NULL(ca);
	CU_ASSERT_PTR_NOT_NULL(strstr(ca_last_error(), "does not match"));

	/* A key file that is no key at all. */
	CU_ASSERT_EQUAL(write_file(keyfile, "garbage\n", 8), 0);
	CU_ASSERT_EQUAL(ca_new(&ca, &cfg), CAPF_ECONFIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(ca_last_error(), "key.pem"));
}

/* A FIFO where the key file belongs (or any file that is not a regular
 * one) is refused at once: reading it must not wait for a writer. */
static void test_new_key_fifo(void)
{
	struct ca_config cfg = {0};
	struct ca *ca = NULL;
	char keyfile[512];
	time_t t0;

	cfg.dir = path_in("fifokey");
	CU_ASSERT_EQUAL_FATAL(ca_new(&ca, &cfg), 0);
	CU_ASSERT_EQUAL_FATAL(current_key_path(ca, "fifokey", keyfile, sizeof(keyfile)), 0);
	ca_free(ca);
	ca = NULL;
	CU_ASSERT_EQUAL_FATAL(unlink(keyfile), 0);
	CU_ASSERT_EQUAL_FATAL(mkfifo(keyfile, 0600), 0);
	/* Were the open to block, SIGALRM would end the test program. */
	alarm(30);
	t0 = time(NULL);
	CU_ASSERT_NOT_EQUAL(ca_new(&ca, &cfg), 0);
	alarm(0);
	CU_ASSERT(time(NULL) - t0 < 5);
	CU_ASSERT_PTR_NULL(ca);
	CU_ASSERT_PTR_NOT_NULL(strstr(ca_last_error(), "key.pem"));
}

/* A key file that carries the certificate's public key beside another
 * private key (damage in its private half): the public halves match, and
 * yet it must not be used, since nothing it signs would verify. */
static void test_new_key_private_half_wrong(void)
{
	struct ca_config cfg = {0};
	struct ca *ca = NULL;
	gnutls_x509_privkey_t own = NULL, other = NULL, mixed = NULL;
	gnutls_datum_t pem = {NULL, 0}, x = {NULL, 0}, y = {NULL, 0}, k = {NULL, 0};
	gnutls_datum_t ox = {NULL, 0}, oy = {NULL, 0}, ok = {NULL, 0};
	gnutls_ecc_curve_t curve;
	char keyfile[512];

	cfg.dir = path_in("halfwrong");
	CU_ASSERT_EQUAL_FATAL(ca_new(&ca, &cfg), 0);
	CU_ASSERT_EQUAL_FATAL(current_key_path(ca, "halfwrong", keyfile, sizeof(keyfile)), 0);
	ca_free(ca);
	ca = NULL;
	CU_ASSERT_EQUAL_FATAL(gnutls_load_file(keyfile, &pem), 0);
	CU_ASSERT_EQUAL_FATAL(gnutls_x509_privkey_init(&own), 0);
	CU_ASSERT_EQUAL_FATAL(gnutls_x509_privkey_import(own, &pem, GNUTLS_X509_FMT_PEM), 0);
	gnutls_free(pem.data);
	pem.data = NULL;
	CU_ASSERT_EQUAL_FATAL(gnutls_x509_privkey_export_ecc_raw(own, &curve, &x, &y, &k), 0);
	CU_ASSERT_EQUAL_FATAL(pki_gen_key(CAPF__KEY_TYPE__KEY_EC_P256, &other), 0);
	CU_ASSERT_EQUAL_FATAL(gnutls_x509_privkey_export_ecc_raw(other, &curve, &ox, &oy, &ok), 0);
	CU_ASSERT_EQUAL_FATAL(gnutls_x509_privkey_init(&mixed), 0);
	CU_ASSERT_EQUAL_FATAL(gnutls_x509_privkey_import_ecc_raw(mixed, curve, &x, &y, &ok), 0);
	CU_ASSERT_EQUAL_FATAL(gnutls_x509_privkey_export2_pkcs8(mixed, GNUTLS_X509_FMT_PEM, NULL,
								GNUTLS_PKCS_PLAIN, &pem),
			      0);
	CU_ASSERT_EQUAL(write_file(keyfile, pem.data, pem.size), 0);
	CU_ASSERT_EQUAL(ca_new(&ca, &cfg), CAPF_ECONFIG);
	CU_ASSERT_PTR_NULL(ca);
	CU_ASSERT_PTR_NOT_NULL(strstr(ca_last_error(), "does not sign for the CA certificate"));
	ca_free(ca);
	gnutls_free(pem.data);
	gnutls_free(x.data);
	gnutls_free(y.data);
	gnutls_free(k.data);
	gnutls_free(ox.data);
	gnutls_free(oy.data);
	gnutls_free(ok.data);
	gnutls_x509_privkey_deinit(own);
	gnutls_x509_privkey_deinit(other);
	gnutls_x509_privkey_deinit(mixed);
}

/* A CA certificate that capf's checks pass but that verifiers refuse as
 * an issuer (an unknown critical extension): every LSC it signed would
 * fail to verify, so it is not taken. */
static void test_new_ca_refused_as_issuer(void)
{
	static const uint8_t null_value[] = {0x05, 0x00};
	struct ca_config cfg = {0};
	struct ca *ca = NULL;
	struct pki_pair root;

	CU_ASSERT_EQUAL_FATAL(pki_make_root("CAPF odd extension", 30, &root), 0);
	CU_ASSERT_EQUAL_FATAL(gnutls_x509_crt_set_extension_by_oid(root.crt, "1.3.6.1.4.1.32473.1",
								   null_value, sizeof(null_value), 1),
			      0);
	CU_ASSERT_EQUAL_FATAL(gnutls_x509_crt_sign2(root.crt, root.crt, root.key, GNUTLS_DIG_SHA256, 0),
			      0);
	CU_ASSERT_EQUAL_FATAL(mkdir(path_in("oddext"), 0700), 0);
	CU_ASSERT_EQUAL(pki_write_pair(&root, path_in("oddext/ca.pem"), path_in("oddext/ca.key")), 0);
	pki_pair_deinit(&root);
	cfg.dir = path_in("oddext");
	CU_ASSERT_EQUAL(ca_new(&ca, &cfg), CAPF_ECONFIG);
	CU_ASSERT_PTR_NULL(ca);
	CU_ASSERT_PTR_NOT_NULL(strstr(ca_last_error(), "cannot issue certificates that verify"));
	ca_free(ca);
}

static void test_new_not_a_ca(void)
{
	struct ca_config cfg = {0};
	struct ca *ca = NULL;
	struct pki_pair mic;

	CU_ASSERT_EQUAL_FATAL(pki_make_mic(&mfg_root, DEV, 0, 30, &mic), 0);
	CU_ASSERT_EQUAL_FATAL(mkdir(path_in("notca"), 0700), 0);
	CU_ASSERT_EQUAL(pki_write_pair(&mic, path_in("notca/ca.pem"), path_in("notca/ca.key")), 0);
	pki_pair_deinit(&mic);
	cfg.dir = path_in("notca");
	CU_ASSERT_EQUAL(ca_new(&ca, &cfg), CAPF_ECONFIG);
	CU_ASSERT_PTR_NULL(ca);
	CU_ASSERT_PTR_NOT_NULL(strstr(ca_last_error(), "not a CA"));
}

static void test_new_bad_subject(void)
{
	struct ca_config cfg = {0};
	struct ca *ca = NULL;

	cfg.dir = path_in("badsubject");
	cfg.subject = "this is not a DN";
	CU_ASSERT_EQUAL(ca_new(&ca, &cfg), CAPF_ECONFIG);
	CU_ASSERT_PTR_NULL(ca);
	CU_ASSERT_PTR_NOT_NULL(strstr(ca_last_error(), "subject"));
	/* No key was left behind for a CA that was never made. */
	CU_ASSERT_NOT_EQUAL(access(path_in("badsubject/ca.key"), F_OK), 0);
	CU_ASSERT_NOT_EQUAL(access(path_in("badsubject/ca.pem"), F_OK), 0);
}

static void test_new_bad_roots(void)
{
	struct ca_config cfg = {0};
	struct ca *ca = NULL;

	cfg.dir = path_in("badroots");
	cfg.mfg_roots = path_in("no-such-roots.pem");
	CU_ASSERT_EQUAL(ca_new(&ca, &cfg), CAPF_ECONFIG);
	CU_ASSERT_PTR_NULL(ca);
	CU_ASSERT_PTR_NOT_NULL(strstr(ca_last_error(), "manufacturer roots"));
	CU_ASSERT_PTR_NOT_NULL(strstr(ca_last_error(), "no-such-roots.pem"));
	/* The configuration error left no new CA behind. */
	CU_ASSERT_NOT_EQUAL(access(path_in("badroots"), F_OK), 0);

	cfg.mfg_roots = tmpdir; /* a directory */
	CU_ASSERT_EQUAL(ca_new(&ca, &cfg), CAPF_ECONFIG);
	CU_ASSERT_PTR_NULL(ca);

	CU_ASSERT_EQUAL_FATAL(write_file(path_in("garbage-roots.pem"), "hello\n", 6), 0);
	cfg.mfg_roots = path_in("garbage-roots.pem");
	CU_ASSERT_EQUAL(ca_new(&ca, &cfg), CAPF_ECONFIG);
	CU_ASSERT_PTR_NULL(ca);
}

/* Entries of a directory, without "." and "..". */
static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* Checks every field of a CA certificate made by ca/ (certificate-profile.md). */
/* before: the time before the CA was made (its validity starts between
 * then and now, however slow the machine). */
static void check_ca_profile(struct ca *ca, time_t before, gnutls_x509_privkey_t key_or_null,
			     const char *dn, unsigned days, int sign_algo, int pk, unsigned bits_want)
{
	gnutls_x509_crt_t crt = ca_crt(ca);
	gnutls_datum_t d = {NULL, 0};
	uint8_t serial[32], ski[32], want[20], id[32];
	size_t serial_len = sizeof(serial), ski_len = sizeof(ski), id_len = sizeof(id);
	unsigned critical = 0, is_ca = 0, usage = 0, status = 1, bits = 0;
	int pathlen = -1;
	char oid[128];
	size_t oid_len;
	time_t now = time(NULL);
	gnutls_pubkey_t pub = NULL;

	CU_ASSERT_PTR_NOT_NULL_FATAL(crt);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_version(crt), 3);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_serial(crt, serial, &serial_len), 0);
	CU_ASSERT_EQUAL(serial_len, CA_SERIAL_LEN);
	CU_ASSERT(serial[0] != 0 && serial[0] < 0x80);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_dn3(crt, &d, 0), 0);
	CU_ASSERT_STRING_EQUAL((char *)d.data, dn);
	gnutls_free(d.data);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_issuer_dn3(crt, &d, 0), 0);
	CU_ASSERT_STRING_EQUAL((char *)d.data, dn);
	gnutls_free(d.data);
	CU_ASSERT(gnutls_x509_crt_get_activation_time(crt) + CA_BACKDATE_SECONDS >= before - 1);
	CU_ASSERT(gnutls_x509_crt_get_activation_time(crt) + CA_BACKDATE_SECONDS <= now + 1);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_expiration_time(crt) -
				gnutls_x509_crt_get_activation_time(crt),
			(time_t)days * DAY + CA_BACKDATE_SECONDS);
	CU_ASSERT(gnutls_x509_crt_get_basic_constraints(crt, &critical, &is_ca, &pathlen) > 0);
	CU_ASSERT_EQUAL(is_ca, 1);
	CU_ASSERT_EQUAL(pathlen, 0);
	CU_ASSERT_EQUAL(critical, 1);
	critical = 0;
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_key_usage(crt, &usage, &critical), 0);
	CU_ASSERT_EQUAL(usage, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN |
				   GNUTLS_KEY_DIGITAL_SIGNATURE);
	CU_ASSERT_EQUAL(critical, 1);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_subject_key_id(crt, ski, &ski_len, &critical), 0);
	CU_ASSERT_EQUAL(ski_len, 20);
	CU_ASSERT_EQUAL(critical, 0);
	/* SKI = first 20 bytes of SHA-256 over the SPKI. */
	CU_ASSERT_EQUAL_FATAL(gnutls_pubkey_init(&pub), 0);
	CU_ASSERT_EQUAL(gnutls_pubkey_import_x509(pub, crt, 0), 0);
	CU_ASSERT_EQUAL(gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA256, id, &id_len), 0);
	CU_ASSERT(memcmp(ski, id, 20) == 0);
	gnutls_pubkey_deinit(pub);
	if (key_or_null != NULL) {
		CU_ASSERT_EQUAL(expected_key_id(key_or_null, want), 0);
		CU_ASSERT(memcmp(ski, want, 20) == 0);
	}
	/* Exactly four extensions: basicConstraints, keyUsage, SKI, and an
	 * AKI equal to the SKI (self-signed). */
	oid_len = sizeof(oid);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_extension_info(crt, 3, oid, &oid_len, NULL), 0);
	oid_len = sizeof(oid);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_extension_info(crt, 4, oid, &oid_len, NULL),
			GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);
	{
		uint8_t aki[64];
		size_t aki_len = sizeof(aki);
		CU_ASSERT_EQUAL(gnutls_x509_crt_get_authority_key_id(crt, aki, &aki_len, NULL), 0);
		CU_ASSERT_EQUAL(aki_len, ski_len);
		CU_ASSERT(memcmp(aki, ski, ski_len) == 0);
	}
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_pk_algorithm(crt, &bits), pk);
	CU_ASSERT_EQUAL(bits, bits_want);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_signature_algorithm(crt), sign_algo);
	CU_ASSERT_EQUAL(gnutls_x509_crt_verify(crt, &crt, 1, 0, &status), 0);
	CU_ASSERT_EQUAL(status, 0);
	gnutls_x509_crt_deinit(crt);
}

static void test_new_creates_ca(void)
{
	struct ca_config cfg = {0};
	struct ca *ca = NULL;
	gnutls_datum_t file = {NULL, 0};
	struct stat st;
	char keyfile[512];
	time_t before = time(NULL);

	cfg.dir = path_in("newca");
	cfg.subject = "CN=Test CAPF,O=capf test";
	cfg.ca_days = 100;
	CU_ASSERT_EQUAL_FATAL(ca_new(&ca, &cfg), 0);

	CU_ASSERT_EQUAL(stat(path_in("newca"), &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0700);
	CU_ASSERT_EQUAL_FATAL(current_key_path(ca, "newca", keyfile, sizeof(keyfile)), 0);
	CU_ASSERT_EQUAL(stat(keyfile, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);
	CU_ASSERT_EQUAL(stat(path_in("newca/ca.pem"), &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0644);
	CU_ASSERT_EQUAL(stat(path_in("newca/gen"), &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0700);

	/* The file on disk is the certificate the CA serves. */
	CU_ASSERT_EQUAL_FATAL(gnutls_load_file(path_in("newca/ca.pem"), &file), 0);
	CU_ASSERT_EQUAL(file.size, strlen(ca_cert_pem(ca)));
	CU_ASSERT(memcmp(file.data, ca_cert_pem(ca), file.size) == 0);
	gnutls_free(file.data);

	check_ca_profile(ca, before, NULL, "CN=Test CAPF,O=capf test", 100, GNUTLS_SIGN_ECDSA_SHA256,
			 GNUTLS_PK_ECDSA, 256);

	/* ca.pem, current, gen/<id>/{cert.pem,key.pem}: no temporary file
	 * left behind. */
	CU_ASSERT_EQUAL(count_entries(path_in("newca")), 3);
	CU_ASSERT_EQUAL(count_entries(path_in("newca/gen")), 1);
	*strrchr(keyfile, '/') = '\0';
	CU_ASSERT_EQUAL(count_entries(keyfile), 2);

	ca_free(ca);
}

static void test_new_default_subject_and_reopen(void)
{
	struct ca_config cfg = {0};
	struct ca *ca = NULL, *again = NULL;
	gnutls_x509_crt_t a = NULL, b = NULL;
	gnutls_datum_t dn = {NULL, 0};
	uint8_t s1[32], s2[32];
	size_t l1 = sizeof(s1), l2 = sizeof(s2);

	cfg.dir = path_in("reopen");
	CU_ASSERT_EQUAL_FATAL(ca_new(&ca, &cfg), 0);
	CU_ASSERT_EQUAL(count_entries(path_in("reopen")), 3);
	CU_ASSERT_EQUAL_FATAL(ca_new(&again, &cfg), 0);
	a = ca_crt(ca);
	b = ca_crt(again);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_dn3(a, &dn, 0), 0);
	/* No subject configured: CN=CAPF-<the first 4 bytes of the key id>. */
	CU_ASSERT_EQUAL(strncmp((char *)dn.data, "CN=CAPF-", 8), 0);
	CU_ASSERT_EQUAL(strlen((char *)dn.data), strlen("CN=CAPF-01234567,O=capf"));
	CU_ASSERT_STRING_EQUAL((char *)dn.data + 16, ",O=capf");
	gnutls_free(dn.data);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_serial(a, s1, &l1), 0);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_serial(b, s2, &l2), 0);
	CU_ASSERT_EQUAL(l1, l2);
	CU_ASSERT(memcmp(s1, s2, l1) == 0);
	CU_ASSERT_STRING_EQUAL(ca_cert_pem(ca), ca_cert_pem(again));
	/* Reopening wrote nothing. */
	CU_ASSERT_EQUAL(count_entries(path_in("reopen")), 3);
	gnutls_x509_crt_deinit(a);
	gnutls_x509_crt_deinit(b);
	ca_free(ca);
	ca_free(again);
	ca_free(NULL);
}

/* ---- ca_cert_subject ---- */

static void test_cert_subject(void)
{
	const uint8_t *der;
	size_t len;
	char buf[256], tiny[4];
	uint8_t junk[] = {0x30, 0x03, 0x02, 0x01, 0x01};

	CU_ASSERT_EQUAL(ca_cert_subject(NULL, 10, buf, sizeof(buf)), CAPF_EBADMSG);
	CU_ASSERT_EQUAL(ca_cert_subject(junk, sizeof(junk), buf, sizeof(buf)), CAPF_EBADMSG);
	ca_cert_der(shared_ca, &der, &len);
	CU_ASSERT_EQUAL(ca_cert_subject(der, len - 1, buf, sizeof(buf)), CAPF_EBADMSG);
	CU_ASSERT_EQUAL(ca_cert_subject(der, len, NULL, 10), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_cert_subject(der, len, tiny, sizeof(tiny)), CAPF_ERANGE);
	CU_ASSERT_EQUAL(ca_cert_subject(der, len, buf, sizeof(buf)), 0);
	CU_ASSERT_EQUAL(strncmp(buf, "CN=CAPF-", 8), 0);
}

/* ---- CSR ---- */

static void test_csr_parse(void)
{
	struct ca_csr *csr = (struct ca_csr *)&csr;
	uint8_t garbage[64], *der = NULL, *big = NULL;
	const uint8_t empty_seq[] = {0x30, 0x00};
	size_t len = 0;
	unsigned i;

	for (i = 0; i < sizeof(garbage); i++)
		garbage[i] = (uint8_t)(i * 37 + 5);
	CU_ASSERT_EQUAL(ca_csr_parse(garbage, sizeof(garbage), NULL), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_csr_parse(NULL, 10, &csr), CAPF_EBADCSR);
	CU_ASSERT_PTR_NULL(csr);
	CU_ASSERT_EQUAL(ca_csr_parse(garbage, 0, &csr), CAPF_EBADCSR);
	CU_ASSERT_EQUAL(ca_csr_parse(garbage, sizeof(garbage), &csr), CAPF_EBADCSR);
	CU_ASSERT_PTR_NULL(csr);
	CU_ASSERT_EQUAL(ca_csr_parse(empty_seq, sizeof(empty_seq), &csr), CAPF_EBADCSR);
	CU_ASSERT_PTR_NULL(csr);

	CU_ASSERT_EQUAL_FATAL(pki_make_csr(key_p256, DEV, binding, sizeof(binding), &der, &len), 0);
	CU_ASSERT_EQUAL(ca_csr_parse(der, len / 2, &csr), CAPF_EBADCSR);
	CU_ASSERT_EQUAL(ca_csr_parse(der, len - 1, &csr), CAPF_EBADCSR);
	/* Over 16 KiB is refused even when it starts with a valid request. */
	big = calloc(1, 16385);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	memcpy(big, der, len);
	CU_ASSERT_EQUAL(ca_csr_parse(big, 16385, &csr), CAPF_EBADCSR);
	CU_ASSERT_PTR_NULL(csr);
	/* The same request with its outer length in a longer form than DER
	 * allows (BER): refused, though it means the same. */
	CU_ASSERT_FATAL(der[0] == 0x30 && (der[1] == 0x81 || der[1] == 0x82));
	{
		size_t hl = der[1] == 0x81 ? 3 : 4, body = len - hl;
		memset(big, 0, 16);
		big[0] = 0x30;
		big[1] = 0x84;
		big[2] = (uint8_t)(body >> 24);
		big[3] = (uint8_t)(body >> 16);
		big[4] = (uint8_t)(body >> 8);
		big[5] = (uint8_t)body;
		memcpy(big + 6, der + hl, body);
		CU_ASSERT_EQUAL(ca_csr_parse(big, 6 + body, &csr), CAPF_EBADCSR);
		CU_ASSERT_PTR_NULL(csr);
		/* The signature's BIT STRING in long form, likewise. */
		memcpy(big, der, len);
		for (size_t k = len - 1; k > 8; k--) {
			if (big[k - 2] == 0x03 && (size_t)big[k - 1] + k == len) {
				/* 03 LL 00 sig... -> 03 81 LL 00 sig... */
				uint8_t ll = big[k - 1];
				memmove(big + k + 1, big + k, len - k);
				big[k - 1] = 0x81;
				big[k] = ll;
				CU_ASSERT_EQUAL(ca_csr_parse(big, len + 1, &csr), CAPF_EBADCSR);
				break;
			}
		}
	}
	free(big);

	CU_ASSERT_EQUAL(ca_csr_parse(der, len, &csr), 0);
	CU_ASSERT_PTR_NOT_NULL(csr);
	ca_csr_free(csr);
	ca_csr_free(NULL);
	free(der);
}

static int check_der(const uint8_t *der, size_t len, const uint8_t *b, size_t blen, int key_type)
{
	struct ca_csr *csr = NULL;
	int ret = ca_csr_parse(der, len, &csr);

	if (ret == 0)
		ret = ca_csr_check(csr, b, blen, key_type);
	ca_csr_free(csr);
	return ret;
}

/* Changes the last letter of the subject DEV in a request's DER: a byte
 * the self-signature covers. */
static int flip_subject_byte(uint8_t *der, size_t len)
{
	uint8_t *at = memmem(der, len, DEV, strlen(DEV));

	if (at == NULL)
		return -1;
	at[strlen(DEV) - 1] ^= 0x01;
	return 0;
}

static void test_csr_check_invalid(void)
{
	struct ca_csr *csr = bound_csr(key_p256, DEV);
	uint8_t *der = NULL;
	size_t len = 0;
	uint8_t other[CA_BINDING_LEN];

	CU_ASSERT_PTR_NOT_NULL_FATAL(csr);
	CU_ASSERT_EQUAL(ca_csr_check(NULL, binding, sizeof(binding), 0), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_csr_check(csr, NULL, sizeof(binding), 0), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_csr_check(csr, binding, 0, 0), CAPF_EINVAL);

	/* Bad self-signature: the last byte of the DER is in the signature. */
	CU_ASSERT_EQUAL_FATAL(pki_make_csr(key_p256, DEV, binding, sizeof(binding), &der, &len), 0);
	der[len - 1] ^= 0x01;
	CU_ASSERT_EQUAL(check_der(der, len, binding, sizeof(binding), CAPF__KEY_TYPE__KEY_EC_P256),
			CAPF_ECSRSIG);
	free(der);
	/* A byte of what the signature covers: the subject's last letter. */
	CU_ASSERT_EQUAL_FATAL(pki_make_csr(key_p256, DEV, binding, sizeof(binding), &der, &len), 0);
	CU_ASSERT_EQUAL_FATAL(flip_subject_byte(der, len), 0);
	CU_ASSERT_EQUAL(check_der(der, len, binding, sizeof(binding), CAPF__KEY_TYPE__KEY_EC_P256),
			CAPF_ECSRSIG);
	free(der);
	/* RSA-PSS, its parameters in the algorithm: verified, and refused
	 * once a covered byte changes. */
	CU_ASSERT_EQUAL_FATAL(make_csr_custom(key_rsa2048, DEV, CSR_PSS, &der, &len), 0);
	CU_ASSERT_EQUAL(check_der(der, len, binding, sizeof(binding), CAPF__KEY_TYPE__KEY_RSA_2048),
			0);
	CU_ASSERT_EQUAL_FATAL(flip_subject_byte(der, len), 0);
	CU_ASSERT_EQUAL(check_der(der, len, binding, sizeof(binding), CAPF__KEY_TYPE__KEY_RSA_2048),
			CAPF_ECSRSIG);
	free(der);
	/* PKCS#1 v1.5 with RSA, the same. */
	CU_ASSERT_EQUAL_FATAL(pki_make_csr(key_rsa2048, DEV, binding, sizeof(binding), &der, &len), 0);
	CU_ASSERT_EQUAL(check_der(der, len, binding, sizeof(binding), CAPF__KEY_TYPE__KEY_RSA_2048),
			0);
	der[len - 1] ^= 0x01;
	CU_ASSERT_EQUAL(check_der(der, len, binding, sizeof(binding), CAPF__KEY_TYPE__KEY_RSA_2048),
			CAPF_ECSRSIG);
	free(der);

	/* Wrong binding: another session's value, or a prefix of this one. */
	memcpy(other, binding, sizeof(other));
	other[31] ^= 0x80;
	CU_ASSERT_EQUAL(ca_csr_check(csr, other, sizeof(other), CAPF__KEY_TYPE__KEY_EC_P256),
			CAPF_EBINDING);
	CU_ASSERT_EQUAL(ca_csr_check(csr, binding, 31, CAPF__KEY_TYPE__KEY_EC_P256), CAPF_EBINDING);
	ca_csr_free(csr);

	/* No challengePassword at all. */
	CU_ASSERT_EQUAL_FATAL(pki_make_csr(key_p256, DEV, NULL, 0, &der, &len), 0);
	CU_ASSERT_EQUAL(check_der(der, len, binding, sizeof(binding), CAPF__KEY_TYPE__KEY_EC_P256),
			CAPF_EBINDING);
	free(der);

	/* Upper-case hex is not the binding's encoding. */
	CU_ASSERT_EQUAL_FATAL(make_csr_custom(key_p256, DEV, CSR_UPPER_HEX, &der, &len), 0);
	CU_ASSERT_EQUAL(check_der(der, len, binding, sizeof(binding), CAPF__KEY_TYPE__KEY_EC_P256),
			CAPF_EBINDING);
	free(der);
}

static void test_csr_check_policy(void)
{
	struct ca_csr *p256 = bound_csr(key_p256, DEV);
	struct ca_csr *p384 = bound_csr(key_p384, DEV);
	struct ca_csr *rsa = bound_csr(key_rsa2048, DEV);
	const size_t bl = sizeof(binding);

	CU_ASSERT_PTR_NOT_NULL_FATAL(p256);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p384);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rsa);

	CU_ASSERT_EQUAL(ca_csr_check(p384, binding, bl, CAPF__KEY_TYPE__KEY_EC_P256), CAPF_EPOLICY);
	CU_ASSERT_EQUAL(ca_csr_check(rsa, binding, bl, CAPF__KEY_TYPE__KEY_EC_P256), CAPF_EPOLICY);
	CU_ASSERT_EQUAL(ca_csr_check(p256, binding, bl, CAPF__KEY_TYPE__KEY_EC_P384), CAPF_EPOLICY);
	CU_ASSERT_EQUAL(ca_csr_check(p256, binding, bl, CAPF__KEY_TYPE__KEY_RSA_2048),
			CAPF_EPOLICY);
	CU_ASSERT_EQUAL(ca_csr_check(rsa, binding, bl, CAPF__KEY_TYPE__KEY_RSA_3072), CAPF_EPOLICY);
	CU_ASSERT_EQUAL(ca_csr_check(rsa, binding, bl, CAPF__KEY_TYPE__KEY_RSA_4096), CAPF_EPOLICY);
	CU_ASSERT_EQUAL(ca_csr_check(p256, binding, bl, 99), CAPF_EPOLICY);
	CU_ASSERT_EQUAL(ca_csr_check(p256, binding, bl, -1), CAPF_EPOLICY);

	CU_ASSERT_EQUAL(ca_csr_check(p256, binding, bl, CAPF__KEY_TYPE__KEY_EC_P256), 0);
	CU_ASSERT_EQUAL(ca_csr_check(p384, binding, bl, CAPF__KEY_TYPE__KEY_EC_P384), 0);
	CU_ASSERT_EQUAL(ca_csr_check(rsa, binding, bl, CAPF__KEY_TYPE__KEY_RSA_2048), 0);
	CU_ASSERT_EQUAL(ca_csr_check(p256, binding, bl, CAPF__KEY_TYPE__KEY_UNSPECIFIED), 0);
	CU_ASSERT_EQUAL(ca_csr_check(p384, binding, bl, CAPF__KEY_TYPE__KEY_UNSPECIFIED), 0);
	CU_ASSERT_EQUAL(ca_csr_check(rsa, binding, bl, CAPF__KEY_TYPE__KEY_UNSPECIFIED), 0);
	ca_csr_free(p256);
	ca_csr_free(p384);
	ca_csr_free(rsa);
}

static void test_csr_check_sha1(void)
{
	uint8_t *der = NULL;
	size_t len = 0;

	/* The same request signed with SHA-256 passes; with SHA-1 it is
	 * refused by policy even though its signature is good. */
	CU_ASSERT_EQUAL_FATAL(make_csr_custom(key_rsa2048, DEV, 0, &der, &len), 0);
	CU_ASSERT_EQUAL(check_der(der, len, binding, sizeof(binding), CAPF__KEY_TYPE__KEY_RSA_2048),
			0);
	free(der);
	CU_ASSERT_EQUAL_FATAL(make_csr_custom(key_rsa2048, DEV, CSR_SHA1, &der, &len), 0);
	CU_ASSERT_EQUAL(check_der(der, len, binding, sizeof(binding), CAPF__KEY_TYPE__KEY_RSA_2048),
			CAPF_EPOLICY);
	free(der);
}

/* ---- issuance ---- */

static void test_issue_invalid(void)
{
	struct ca_csr *csr = bound_csr(key_p256, DEV);
	struct ca_lsc lsc;
	char longname[80];

	CU_ASSERT_PTR_NOT_NULL_FATAL(csr);
	memset(longname, 'A', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	memset(&lsc, 0xff, sizeof(lsc));
	CU_ASSERT_EQUAL(ca_issue(shared_ca, csr, NULL, time(NULL), &lsc), CAPF_EINVAL);
	CU_ASSERT_PTR_NULL(lsc.der);
	CU_ASSERT_EQUAL(lsc.der_len, 0);
	CU_ASSERT_EQUAL(ca_issue(shared_ca, csr, "", time(NULL), &lsc), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_issue(shared_ca, csr, longname, time(NULL), &lsc), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_issue(shared_ca, NULL, DEV, time(NULL), &lsc), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_issue(NULL, csr, DEV, time(NULL), &lsc), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_issue(shared_ca, csr, DEV, time(NULL), NULL), CAPF_EINVAL);
	ca_lsc_deinit(&lsc);
	ca_lsc_deinit(NULL);
	ca_csr_free(csr);
}

static void test_issue_profile_ec(void)
{
	struct ca_csr *csr = NULL;
	struct ca_lsc lsc = {0}, lsc2 = {0};
	gnutls_x509_crt_t crt = NULL, cacrt = ca_crt(shared_ca);
	gnutls_datum_t dn = {NULL, 0}, cadn = {NULL, 0};
	uint8_t *der = NULL, buf[128], want[20], ca_ski[32];
	size_t len = 0, blen, ca_ski_len = sizeof(ca_ski);
	unsigned critical, is_ca, usage, status = 1, i;
	int pathlen;
	char oid[128];
	size_t oid_len;
	/* Inside the test CA's life, whose start is when the suite began:
	 * an LSC never starts before its issuer. */
	const time_t now = time(NULL) + 3600;

	CU_ASSERT_PTR_NOT_NULL_FATAL(cacrt);
	/* The request asks for CN=evil and for CA powers and a SAN. */
	CU_ASSERT_EQUAL_FATAL(make_csr_custom(key_p256, "evil", CSR_EXT, &der, &len), 0);
	CU_ASSERT_EQUAL_FATAL(ca_csr_parse(der, len, &csr), 0);
	free(der);
	CU_ASSERT_EQUAL_FATAL(
	    ca_csr_check(csr, binding, sizeof(binding), CAPF__KEY_TYPE__KEY_EC_P256), 0);
	CU_ASSERT_EQUAL_FATAL(ca_issue(shared_ca, csr, DEV, now, &lsc), 0);
	CU_ASSERT_EQUAL_FATAL(ca_issue(shared_ca, csr, DEV, now, &lsc2), 0);
	crt = crt_from_der(lsc.der, lsc.der_len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(crt);

	CU_ASSERT_EQUAL(gnutls_x509_crt_get_version(crt), 3);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_dn3(crt, &dn, 0), 0);
	CU_ASSERT_STRING_EQUAL((char *)dn.data, "CN=" DEV);
	gnutls_free(dn.data);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_issuer_dn3(crt, &dn, 0), 0);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_dn3(cacrt, &cadn, 0), 0);
	CU_ASSERT_STRING_EQUAL((char *)dn.data, (char *)cadn.data);
	gnutls_free(dn.data);
	gnutls_free(cadn.data);

	/* Serial: 16 bytes, positive, as reported, different each time. */
	blen = sizeof(buf);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_serial(crt, buf, &blen), 0);
	CU_ASSERT_EQUAL(blen, CA_SERIAL_LEN);
	CU_ASSERT(buf[0] != 0 && buf[0] < 0x80);
	CU_ASSERT(memcmp(buf, lsc.serial, CA_SERIAL_LEN) == 0);
	CU_ASSERT(memcmp(lsc.serial, lsc2.serial, CA_SERIAL_LEN) != 0);

	/* Validity: backdated 300 s, 30 days (the shared CA's lsc_days). */
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_activation_time(crt), now - 300);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_expiration_time(crt), now + 30 * DAY);
	CU_ASSERT_EQUAL(lsc.not_before, now - 300);
	CU_ASSERT_EQUAL(lsc.not_after, now + 30 * DAY);

	critical = 0;
	is_ca = 1;
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_basic_constraints(crt, &critical, &is_ca, &pathlen), 0);
	CU_ASSERT_EQUAL(is_ca, 0);
	CU_ASSERT_EQUAL(critical, 1);
	critical = 0;
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_key_usage(crt, &usage, &critical), 0);
	CU_ASSERT_EQUAL(usage, GNUTLS_KEY_DIGITAL_SIGNATURE);
	CU_ASSERT_EQUAL(critical, 1);

	/* EKU: serverAuth and clientAuth, nothing else, not critical. */
	oid_len = sizeof(oid);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_key_purpose_oid(crt, 0, oid, &oid_len, &critical), 0);
	CU_ASSERT_STRING_EQUAL(oid, GNUTLS_KP_TLS_WWW_SERVER);
	CU_ASSERT_EQUAL(critical, 0);
	oid_len = sizeof(oid);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_key_purpose_oid(crt, 1, oid, &oid_len, &critical), 0);
	CU_ASSERT_STRING_EQUAL(oid, GNUTLS_KP_TLS_WWW_CLIENT);
	oid_len = sizeof(oid);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_key_purpose_oid(crt, 2, oid, &oid_len, NULL),
			GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);

	/* SKI from the phone's key, AKI equal to the CA's SKI. */
	CU_ASSERT_EQUAL(expected_key_id(key_p256, want), 0);
	blen = sizeof(buf);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_subject_key_id(crt, buf, &blen, NULL), 0);
	CU_ASSERT_EQUAL(blen, 20);
	CU_ASSERT(memcmp(buf, want, 20) == 0);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_subject_key_id(cacrt, ca_ski, &ca_ski_len, NULL), 0);
	blen = sizeof(buf);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_authority_key_id(crt, buf, &blen, NULL), 0);
	CU_ASSERT_EQUAL(blen, ca_ski_len);
	CU_ASSERT(memcmp(buf, ca_ski, ca_ski_len) == 0);

	/* Nothing from the request but its key: no SAN, and exactly the
	 * five extensions of the profile. */
	blen = sizeof(buf);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_subject_alt_name(crt, 0, buf, &blen, NULL),
			GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);
	for (i = 0; i < 5; i++) {
		oid_len = sizeof(oid);
		CU_ASSERT_EQUAL(gnutls_x509_crt_get_extension_info(crt, i, oid, &oid_len, NULL), 0);
	}
	oid_len = sizeof(oid);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_extension_info(crt, 5, oid, &oid_len, NULL),
			GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);

	CU_ASSERT_EQUAL(gnutls_x509_crt_get_signature_algorithm(crt), GNUTLS_SIGN_ECDSA_SHA256);
	CU_ASSERT_EQUAL(
	    gnutls_x509_crt_verify(crt, &cacrt, 1, GNUTLS_VERIFY_DISABLE_TIME_CHECKS, &status), 0);
	CU_ASSERT_EQUAL(status, 0);

	gnutls_x509_crt_deinit(crt);
	gnutls_x509_crt_deinit(cacrt);
	ca_lsc_deinit(&lsc);
	CU_ASSERT_PTR_NULL(lsc.der);
	ca_lsc_deinit(&lsc2);
	ca_csr_free(csr);
}

static void test_issue_profile_rsa_and_names(void)
{
	struct ca_csr *csr = bound_csr(key_rsa2048, "whatever");
	struct ca_lsc lsc = {0};
	gnutls_x509_crt_t crt = NULL, cacrt = ca_crt(shared_ca);
	unsigned usage = 0, critical = 0, status = 1;
	char buf[128];
	size_t blen = sizeof(buf);
	time_t now = time(NULL);

	CU_ASSERT_PTR_NOT_NULL_FATAL(csr);
	CU_ASSERT_EQUAL_FATAL(ca_issue(shared_ca, csr, DEV, now, &lsc), 0);
	crt = crt_from_der(lsc.der, lsc.der_len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(crt);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_key_usage(crt, &usage, &critical), 0);
	CU_ASSERT_EQUAL(usage, GNUTLS_KEY_DIGITAL_SIGNATURE | GNUTLS_KEY_KEY_ENCIPHERMENT);
	CU_ASSERT_EQUAL(critical, 1);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_pk_algorithm(crt, NULL), GNUTLS_PK_RSA);
	CU_ASSERT_EQUAL(gnutls_x509_crt_verify(crt, &cacrt, 1, 0, &status), 0);
	CU_ASSERT_EQUAL(status, 0);
	gnutls_x509_crt_deinit(crt);
	ca_lsc_deinit(&lsc);

	/* A name with DN syntax in it stays one CN value. */
	CU_ASSERT_EQUAL_FATAL(ca_issue(shared_ca, csr, "SEP00,O=evil+OU=x", now, &lsc), 0);
	crt = crt_from_der(lsc.der, lsc.der_len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(crt);
	/* The raw value: a PrintableString or UTF8String of the name. */
	CU_ASSERT_EQUAL(
	    gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 1, buf, &blen), 0);
	CU_ASSERT_EQUAL(blen, 2 + 17);
	CU_ASSERT(buf[0] == 0x13 || buf[0] == 0x0c);
	CU_ASSERT_EQUAL(buf[1], 17);
	CU_ASSERT(memcmp(buf + 2, "SEP00,O=evil+OU=x", 17) == 0);
	blen = sizeof(buf);
	CU_ASSERT_EQUAL(
	    gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0, 0, buf, &blen),
	    GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);
	blen = sizeof(buf);
	CU_ASSERT_EQUAL(
	    gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 1, 0, buf, &blen),
	    GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);
	gnutls_x509_crt_deinit(crt);
	ca_lsc_deinit(&lsc);

	gnutls_x509_crt_deinit(cacrt);
	ca_csr_free(csr);
}

#define ISSUE_THREADS 4
#define ISSUE_EACH 16

struct issue_job {
	struct ca_csr *csr;
	uint8_t serials[ISSUE_EACH][CA_SERIAL_LEN];
	int failures;
};

static void *issue_worker(void *arg)
{
	struct issue_job *job = arg;
	gnutls_x509_crt_t cacrt = ca_crt(shared_ca);
	int i;

	for (i = 0; i < ISSUE_EACH; i++) {
		struct ca_lsc lsc = {0};
		gnutls_x509_crt_t crt = NULL;
		unsigned status = 1;

		if (ca_issue(shared_ca, job->csr, DEV, time(NULL), &lsc) != 0) {
			job->failures++;
			continue;
		}
		memcpy(job->serials[i], lsc.serial, CA_SERIAL_LEN);
		crt = crt_from_der(lsc.der, lsc.der_len);
		if (crt == NULL || cacrt == NULL ||
		    gnutls_x509_crt_verify(crt, &cacrt, 1, 0, &status) < 0 || status != 0)
			job->failures++;
		gnutls_x509_crt_deinit(crt);
		ca_lsc_deinit(&lsc);
	}
	gnutls_x509_crt_deinit(cacrt);
	return NULL;
}

static void test_issue_concurrent(void)
{
	pthread_t th[ISSUE_THREADS];
	static struct issue_job jobs[ISSUE_THREADS];
	int i, j, k, l;

	for (i = 0; i < ISSUE_THREADS; i++) {
		memset(&jobs[i], 0, sizeof(jobs[i]));
		jobs[i].csr = bound_csr(key_p256, DEV);
		CU_ASSERT_PTR_NOT_NULL_FATAL(jobs[i].csr);
	}
	for (i = 0; i < ISSUE_THREADS; i++)
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, issue_worker, &jobs[i]), 0);
	for (i = 0; i < ISSUE_THREADS; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < ISSUE_THREADS; i++) {
		CU_ASSERT_EQUAL(jobs[i].failures, 0);
		ca_csr_free(jobs[i].csr);
	}
	/* Every serial is distinct. */
	for (i = 0; i < ISSUE_THREADS; i++)
		for (j = 0; j < ISSUE_EACH; j++)
			for (k = i; k < ISSUE_THREADS; k++)
				for (l = (k == i ? j + 1 : 0); l < ISSUE_EACH; l++)
					CU_ASSERT(memcmp(jobs[i].serials[j], jobs[k].serials[l],
							 CA_SERIAL_LEN) != 0);
}

/* ---- MIC verification ---- */

static void test_mic_invalid(void)
{
	const uint8_t *certs[1] = {NULL};
	size_t lens[1] = {0};
	uint8_t junk[32] = {0x30, 0x1e};
	const uint8_t *jp[1] = {junk};
	size_t jl[1] = {sizeof(junk)};

	CU_ASSERT_EQUAL(ca_mic_verify(shared_ca, certs, lens, 0, DEV, time(NULL)), CAPF_ENOCERT);
	CU_ASSERT_EQUAL(ca_mic_verify(shared_ca, NULL, NULL, 1, DEV, time(NULL)), CAPF_ENOCERT);
	CU_ASSERT_EQUAL(ca_mic_verify(NULL, jp, jl, 1, DEV, time(NULL)), CAPF_EINVAL);
	/* Without a name only the chain is checked. */
	CU_ASSERT_EQUAL(ca_mic_verify(shared_ca, jp, jl, 1, NULL, time(NULL)), CAPF_EUNTRUSTED);
	CU_ASSERT_EQUAL(ca_mic_verify(shared_ca, jp, jl, 1, DEV, time(NULL)), CAPF_EUNTRUSTED);
	CU_ASSERT_EQUAL(ca_mic_verify(shared_ca, jp, jl, 17, DEV, time(NULL)), CAPF_EUNTRUSTED);
}

static void test_mic_trust(void)
{
	struct pki_pair mic, foreign, root_leaf;
	uint8_t *der = NULL;
	size_t len = 0;

	CU_ASSERT_EQUAL_FATAL(pki_make_mic(&mfg_root, DEV, 0, 30, &mic), 0);
	CU_ASSERT_EQUAL(verify_pairs(shared_ca, &mic, 1, DEV, time(NULL)), 0);

	/* A bit flipped in the signature. */
	CU_ASSERT_EQUAL_FATAL(pki_crt_der(mic.crt, &der, &len), 0);
	der[len - 1] ^= 0x01;
	{
		const uint8_t *p[1] = {der};
		size_t l[1] = {len};

		CU_ASSERT_EQUAL(ca_mic_verify(shared_ca, p, l, 1, DEV, time(NULL)),
				CAPF_EUNTRUSTED);
	}
	free(der);

	/* Signed by a root the CA does not know. */
	CU_ASSERT_EQUAL_FATAL(pki_make_mic(&other_root, DEV, 0, 30, &foreign), 0);
	CU_ASSERT_EQUAL(verify_pairs(shared_ca, &foreign, 1, DEV, time(NULL)), CAPF_EUNTRUSTED);
	pki_pair_deinit(&foreign);

	/* A CA certificate (a trusted root, named like a device) as leaf. */
	root_leaf = ca_named_root;
	CU_ASSERT_EQUAL(verify_pairs(shared_ca, &root_leaf, 1, "SEP00AABBCCDDEE", time(NULL)),
			CAPF_EUNTRUSTED);
	pki_pair_deinit(&mic);
}

static void test_mic_no_roots(void)
{
	struct ca_config cfg = {0};
	struct ca *ca = NULL;
	struct pki_pair mic;

	cfg.dir = path_in("shared");
	CU_ASSERT_EQUAL_FATAL(ca_new(&ca, &cfg), 0);
	CU_ASSERT_EQUAL_FATAL(pki_make_mic(&mfg_root, DEV, 0, 30, &mic), 0);
	CU_ASSERT_EQUAL(verify_pairs(ca, &mic, 1, DEV, time(NULL)), CAPF_EUNTRUSTED);
	CU_ASSERT_EQUAL(verify_pairs(shared_ca, &mic, 1, DEV, time(NULL)), 0);
	pki_pair_deinit(&mic);
	ca_free(ca);
}

static void test_mic_identity(void)
{
	CU_ASSERT_EQUAL(verify_mic_cn(shared_ca, "SEP00FFFFFFFFFF", DEV), CAPF_EIDENTITY);
	CU_ASSERT_EQUAL(verify_mic_cn(shared_ca, "XSEP001122334455", DEV), CAPF_EIDENTITY);
	CU_ASSERT_EQUAL(verify_mic_cn(shared_ca, "sep001122334455", DEV), CAPF_EIDENTITY);
	CU_ASSERT_EQUAL(verify_mic_cn(shared_ca, "SEP001122334455-CP", DEV), CAPF_EIDENTITY);
	CU_ASSERT_EQUAL(verify_mic_cn(shared_ca, "SEP00112233445", DEV), CAPF_EIDENTITY);
	CU_ASSERT_EQUAL(verify_mic_cn(shared_ca, "CP-8865_SEP001122334455", DEV), CAPF_EIDENTITY);
	CU_ASSERT_EQUAL(verify_mic_cn(shared_ca, DEV, ""), CAPF_EIDENTITY);

	CU_ASSERT_EQUAL(verify_mic_cn(shared_ca, DEV, DEV), 0);
	CU_ASSERT_EQUAL(verify_mic_cn(shared_ca, "CP-8865-SEP001122334455", DEV), 0);
	/* A MIC made for another purpose than TLS clients is no MIC; one
	 * without extendedKeyUsage, or with anyExtendedKeyUsage, is. */
	{
		struct pki_pair m = { 0 };
		const char *purposes[] = { GNUTLS_KP_TLS_WWW_SERVER, NULL, GNUTLS_KP_ANY };
		const int want[] = { CAPF_EUNTRUSTED, 0, 0 };

		for (size_t k = 0; k < 3; k++) {
			CU_ASSERT_EQUAL_FATAL(pki_make_mic_purpose(&mfg_root, DEV, 0, 30, purposes[k], &m),
					      0);
			CU_ASSERT_EQUAL(verify_pairs(shared_ca, &m, 1, DEV, time(NULL)), want[k]);
			pki_pair_deinit(&m);
		}
	}
	/* One MIC, one name: the part after the last "-", never another. */
	CU_ASSERT_EQUAL(verify_mic_cn(shared_ca, "CP-8865-SEP001122334455", "8865-SEP001122334455"),
			CAPF_EIDENTITY);
	CU_ASSERT_EQUAL(verify_mic_cn(shared_ca, "CP-8865-SEP001122334455", "CP-8865-SEP001122334455"),
			CAPF_EIDENTITY);
}

/* A manufacturer root limited to a naming pattern vouches for nothing
 * else; the other roots are not limited by it. */
static void test_mic_patterns(void)
{
	struct ca_config cfg = {0};
	struct ca *ca = NULL;
	struct pki_pair mic = {0};
	char fpr[CA_FPR_HEX_LEN + 1], spec[128];
	uint8_t h[32];
	size_t hl = sizeof(h);

	CU_ASSERT_EQUAL_FATAL(gnutls_x509_crt_get_fingerprint(mfg_root.crt, GNUTLS_DIG_SHA256, h, &hl),
			      0);
	for (size_t i = 0; i < 32; i++)
		snprintf(fpr + 2 * i, 3, "%02x", h[i]);
	cfg.dir = path_in("patterns-bad");
	cfg.mfg_roots = roots_path;
	cfg.mic_patterns = "abc=SEP*";
	CU_ASSERT_EQUAL(ca_new(&ca, &cfg), CAPF_ECONFIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(ca_last_error(), "mic_patterns"));

	snprintf(spec, sizeof(spec), "%.12s=SEP*", fpr);
	cfg.dir = path_in("patterns");
	cfg.mic_patterns = spec;
	CU_ASSERT_EQUAL_FATAL(ca_new(&ca, &cfg), 0);
	CU_ASSERT_EQUAL_FATAL(pki_make_mic(&mfg_root, "CP-8865-" DEV, 0, 30, &mic), 0);
	CU_ASSERT_EQUAL(verify_pairs(ca, &mic, 1, DEV, time(NULL)), 0);
	pki_pair_deinit(&mic);
	CU_ASSERT_EQUAL_FATAL(pki_make_mic(&mfg_root, "CSFALICE", 0, 30, &mic), 0);
	CU_ASSERT_EQUAL(verify_pairs(ca, &mic, 1, "CSFALICE", time(NULL)), CAPF_EIDENTITY);
	pki_pair_deinit(&mic);
	/* The other root of the file has no pattern. */
	CU_ASSERT_EQUAL_FATAL(pki_make_mic(&ca_named_root, "CSFALICE", 0, 30, &mic), 0);
	CU_ASSERT_EQUAL(verify_pairs(ca, &mic, 1, "CSFALICE", time(NULL)), 0);
	pki_pair_deinit(&mic);
	ca_free(ca);
}

static void test_mic_time(void)
{
	struct pki_pair expired, future, good;
	time_t now = time(NULL);

	CU_ASSERT_EQUAL_FATAL(pki_make_mic(&mfg_root, DEV, now - 10 * DAY, 1, &expired), 0);
	CU_ASSERT_EQUAL(verify_pairs(shared_ca, &expired, 1, DEV, now), CAPF_EEXPIRED);
	CU_ASSERT_EQUAL_FATAL(pki_make_mic(&mfg_root, DEV, now + DAY, 30, &future), 0);
	CU_ASSERT_EQUAL(verify_pairs(shared_ca, &future, 1, DEV, now), CAPF_EEXPIRED);
	CU_ASSERT_EQUAL(verify_pairs(shared_ca, &future, 1, DEV, now + 2 * DAY), 0);

	/* now is honoured for the root too: the MIC outlives its root. */
	CU_ASSERT_EQUAL_FATAL(pki_make_mic(&mfg_root, DEV, 0, 365, &good), 0);
	CU_ASSERT_EQUAL(verify_pairs(shared_ca, &good, 1, DEV, now), 0);
	CU_ASSERT_EQUAL(verify_pairs(shared_ca, &good, 1, DEV, now + 100 * DAY), CAPF_EEXPIRED);
	pki_pair_deinit(&expired);
	pki_pair_deinit(&future);
	pki_pair_deinit(&good);
}

static void test_mic_intermediate(void)
{
	struct pki_pair chain[3], swapped[2];

	CU_ASSERT_EQUAL_FATAL(make_intermediate(&mfg_root, "Test Manufacturing Sub CA", &chain[1]),
			      0);
	CU_ASSERT_EQUAL_FATAL(pki_make_mic(&chain[1], "CP-7841-" DEV, 0, 10, &chain[0]), 0);
	CU_ASSERT_EQUAL(verify_pairs(shared_ca, chain, 2, DEV, time(NULL)), 0);
	/* The root sent too: the chain ends at a trusted certificate. */
	chain[2] = mfg_root;
	CU_ASSERT_EQUAL(verify_pairs(shared_ca, chain, 3, DEV, time(NULL)), 0);
	/* Out of order: the leaf must come first. */
	swapped[0] = chain[1];
	swapped[1] = chain[0];
	CU_ASSERT_EQUAL(verify_pairs(shared_ca, swapped, 2, DEV, time(NULL)), CAPF_EUNTRUSTED);
	/* Without the intermediate the leaf leads nowhere. */
	CU_ASSERT_EQUAL(verify_pairs(shared_ca, chain, 1, DEV, time(NULL)), CAPF_EUNTRUSTED);
	/* The intermediate (a CA) presented as the leaf. */
	CU_ASSERT_EQUAL(
	    verify_pairs(shared_ca, &chain[1], 1, "Test Manufacturing Sub CA", time(NULL)),
	    CAPF_EUNTRUSTED);
	pki_pair_deinit(&chain[0]);
	pki_pair_deinit(&chain[1]);
}

/* ---- the evidence of a presented chain, parsed once ---- */

static int issue_for(struct ca *ca, const char *dev, time_t now, struct ca_lsc *out);

/* ca_peer_evidence() decides as the DER functions do, one by one. */
static void check_evidence(struct ca *ca, const uint8_t *const *p, const size_t *l, size_t n,
			   time_t now)
{
	struct ca_cert_summary sum, want;
	int mic = 1, lsc = 1, ret, want_ret;

	ret = ca_peer_evidence(ca, p, l, n, now, &mic, &lsc, &sum);
	CU_ASSERT_EQUAL(mic, ca_mic_verify(ca, p, l, n, NULL, now));
	CU_ASSERT_EQUAL(lsc, ca_lsc_verify(ca, p, l, n, NULL, now));
	want_ret = ca_cert_summarize(p[0], l[0], &want);
	CU_ASSERT_EQUAL(ret, want_ret);
	if (ret == 0 && want_ret == 0) {
		CU_ASSERT_STRING_EQUAL(sum.cn, want.cn);
		CU_ASSERT_STRING_EQUAL(sum.fingerprint, want.fingerprint);
		CU_ASSERT(sum.serial_len == want.serial_len &&
			  memcmp(sum.serial, want.serial, sum.serial_len) == 0);
	}
}

static void test_peer_evidence(void)
{
	struct pki_pair mic, chain[2];
	struct ca_lsc lsc = {0};
	struct ca_cert_summary sum;
	uint8_t *der[3] = {NULL}, junk[32] = {0x30, 0x1e};
	size_t len[3] = {0};
	const uint8_t *p[17];
	size_t l[17];
	time_t now = time(NULL);
	int mic_r, lsc_r;

	/* Invalid input first. */
	p[0] = junk;
	l[0] = sizeof(junk);
	CU_ASSERT_EQUAL(ca_peer_evidence(NULL, p, l, 1, now, &mic_r, &lsc_r, &sum), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_peer_evidence(shared_ca, p, l, 1, now, NULL, &lsc_r, &sum),
			CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_peer_evidence(shared_ca, p, l, 0, now, &mic_r, &lsc_r, &sum),
			CAPF_ENOCERT);
	CU_ASSERT(mic_r == CAPF_ENOCERT && lsc_r == CAPF_ENOCERT);
	CU_ASSERT_EQUAL(ca_peer_evidence(shared_ca, NULL, NULL, 1, now, &mic_r, &lsc_r, &sum),
			CAPF_ENOCERT);
	check_evidence(shared_ca, p, l, 1, now);

	/* A MIC; a MIC and its intermediate, then without it; an LSC. */
	CU_ASSERT_EQUAL_FATAL(pki_make_mic(&mfg_root, DEV, 0, 30, &mic), 0);
	CU_ASSERT_EQUAL_FATAL(make_intermediate(&mfg_root, "Test Evidence Sub CA", &chain[1]), 0);
	CU_ASSERT_EQUAL_FATAL(pki_make_mic(&chain[1], "CP-7841-" DEV, 0, 10, &chain[0]), 0);
	CU_ASSERT_EQUAL_FATAL(pki_crt_der(mic.crt, &der[0], &len[0]), 0);
	CU_ASSERT_EQUAL_FATAL(pki_crt_der(chain[0].crt, &der[1], &len[1]), 0);
	CU_ASSERT_EQUAL_FATAL(pki_crt_der(chain[1].crt, &der[2], &len[2]), 0);
	CU_ASSERT_EQUAL_FATAL(issue_for(shared_ca, DEV, now, &lsc), 0);
	for (int t = 0; t < 3; t++) {
		/* Now, before, long after. */
		time_t at = t == 0 ? now : t == 1 ? now - 30 * DAY : now + 3650 * DAY;

		p[0] = der[0];
		l[0] = len[0];
		check_evidence(shared_ca, p, l, 1, at);
		p[0] = der[1];
		l[0] = len[1];
		p[1] = der[2];
		l[1] = len[2];
		check_evidence(shared_ca, p, l, 2, at);
		check_evidence(shared_ca, p, l, 1, at);
		/* A chain whose second certificate cannot be read. */
		p[1] = junk;
		l[1] = sizeof(junk);
		check_evidence(shared_ca, p, l, 2, at);
		p[0] = lsc.der;
		l[0] = lsc.der_len;
		check_evidence(shared_ca, p, l, 1, at);
		/* An LSC with a MIC behind it, and too long a chain. */
		p[1] = der[0];
		l[1] = len[0];
		check_evidence(shared_ca, p, l, 2, at);
		for (int i = 1; i < 17; i++) {
			p[i] = der[0];
			l[i] = len[0];
		}
		check_evidence(shared_ca, p, l, 17, at);
	}
	CU_ASSERT_EQUAL(ca_peer_evidence(shared_ca, p, l, 1, now, &mic_r, &lsc_r, &sum), 0);
	CU_ASSERT_EQUAL(lsc_r, 0);
	CU_ASSERT_STRING_EQUAL(sum.cn, DEV);
	/* The fingerprint, of the bytes as they came, is GnuTLS's (of the
	 * certificate encoded again). */
	for (int i = 0; i < 3; i++) {
		gnutls_x509_crt_t crt = crt_from_der(der[i], len[i]);
		uint8_t fpr[32];
		size_t fl = sizeof(fpr);
		char hex[65];

		CU_ASSERT_PTR_NOT_NULL_FATAL(crt);
		CU_ASSERT_EQUAL(gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fpr, &fl), 0);
		for (size_t k = 0; k < sizeof(fpr); k++)
			snprintf(hex + 2 * k, 3, "%02x", fpr[k]);
		CU_ASSERT_EQUAL(ca_cert_summarize(der[i], len[i], &sum), 0);
		CU_ASSERT_STRING_EQUAL(sum.fingerprint, hex);
		gnutls_x509_crt_deinit(crt);
	}
	for (int i = 0; i < 3; i++)
		free(der[i]);
	ca_lsc_deinit(&lsc);
	pki_pair_deinit(&mic);
	pki_pair_deinit(&chain[0]);
	pki_pair_deinit(&chain[1]);
}

/* ---- TLS credentials and channel binding ---- */

struct tls_side {
	int fd;
	gnutls_certificate_credentials_t cred;
	uint8_t binding[32];
	int handshake;
	int binding_ret;
	int mic_ret;
};

static void *tls_server(void *arg)
{
	struct tls_side *s = arg;
	gnutls_session_t sess = NULL;
	const gnutls_datum_t *peers;
	unsigned n = 0, i;

	s->handshake = -1;
	if (gnutls_init(&sess, GNUTLS_SERVER) < 0)
		return NULL;
	gnutls_set_default_priority(sess);
	gnutls_credentials_set(sess, GNUTLS_CRD_CERTIFICATE, s->cred);
	gnutls_certificate_server_set_request(sess, GNUTLS_CERT_REQUIRE);
	gnutls_transport_set_int(sess, s->fd);
	do {
		s->handshake = gnutls_handshake(sess);
	} while (s->handshake < 0 && !gnutls_error_is_fatal(s->handshake));
	if (s->handshake == 0) {
		s->binding_ret = pki_tls_binding(sess, s->binding);
		peers = gnutls_certificate_get_peers(sess, &n);
		if (peers != NULL && n > 0 && n <= 4) {
			const uint8_t *certs[4];
			size_t lens[4];

			for (i = 0; i < n; i++) {
				certs[i] = peers[i].data;
				lens[i] = peers[i].size;
			}
			s->mic_ret = ca_mic_verify(shared_ca, certs, lens, n, DEV, time(NULL));
		} else {
			s->mic_ret = CAPF_ENOCERT;
		}
		gnutls_bye(sess, GNUTLS_SHUT_WR);
	}
	gnutls_deinit(sess);
	return NULL;
}

static void test_tls_credentials(void)
{
	gnutls_certificate_credentials_t scred = NULL, ccred = NULL;
	gnutls_session_t sess = NULL;
	gnutls_x509_crt_t cacrt = ca_crt(shared_ca);
	struct tls_side server = {0};
	struct pki_pair mic;
	gnutls_datum_t raw;
	const uint8_t *der;
	size_t der_len;
	uint8_t client_binding[32];
	uint8_t *csr_der = NULL;
	size_t csr_len = 0;
	pthread_t th;
	int sv[2], ret;

	CU_ASSERT_PTR_NOT_NULL_FATAL(cacrt);
	CU_ASSERT_EQUAL(ca_tls_credentials(shared_ca, NULL), CAPF_EINVAL);
	CU_ASSERT_EQUAL_FATAL(gnutls_certificate_allocate_credentials(&scred), 0);
	CU_ASSERT_EQUAL(ca_tls_credentials(NULL, scred), CAPF_EINVAL);
	CU_ASSERT_EQUAL_FATAL(ca_tls_credentials(shared_ca, scred), 0);
	/* The TLS server certificate is the CAPF CA certificate. */
	ca_cert_der(shared_ca, &der, &der_len);
	CU_ASSERT_EQUAL(gnutls_certificate_get_crt_raw(scred, 0, 0, &raw), 0);
	CU_ASSERT_EQUAL(raw.size, der_len);
	CU_ASSERT(memcmp(raw.data, der, der_len) == 0);

	/* A phone with a MIC connects, trusting the CAPF certificate. */
	CU_ASSERT_EQUAL_FATAL(pki_make_mic(&mfg_root, DEV, 0, 30, &mic), 0);
	CU_ASSERT_EQUAL_FATAL(gnutls_certificate_allocate_credentials(&ccred), 0);
	CU_ASSERT(gnutls_certificate_set_x509_key(ccred, &mic.crt, 1, mic.key) >= 0);
	CU_ASSERT(gnutls_certificate_set_x509_trust(ccred, &cacrt, 1) == 1);
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	server.fd = sv[0];
	server.cred = scred;
	CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, tls_server, &server), 0);

	CU_ASSERT_EQUAL(gnutls_init(&sess, GNUTLS_CLIENT), 0);
	gnutls_set_default_priority(sess);
	gnutls_credentials_set(sess, GNUTLS_CRD_CERTIFICATE, ccred);
	gnutls_session_set_verify_cert(sess, NULL, 0);
	gnutls_transport_set_int(sess, sv[1]);
	do {
		ret = gnutls_handshake(sess);
	} while (ret < 0 && !gnutls_error_is_fatal(ret));
	CU_ASSERT_EQUAL(ret, 0);
	CU_ASSERT_EQUAL(pki_tls_binding(sess, client_binding), 0);
	CU_ASSERT_EQUAL(pki_tls_binding(NULL, client_binding), CAPF_EINVAL);
	if (ret == 0)
		gnutls_bye(sess, GNUTLS_SHUT_WR);
	pthread_join(th, NULL);
	close(sv[0]);
	close(sv[1]);

	CU_ASSERT_EQUAL(server.handshake, 0);
	CU_ASSERT_EQUAL(server.binding_ret, 0);
	CU_ASSERT(memcmp(server.binding, client_binding, 32) == 0);
	/* The phone's MIC, as the TLS layer delivered it, verifies. */
	CU_ASSERT_EQUAL(server.mic_ret, 0);
	/* A CSR bound by the phone passes the server's check. */
	CU_ASSERT_EQUAL(pki_make_csr(key_p256, DEV, client_binding, 32, &csr_der, &csr_len), 0);
	CU_ASSERT_EQUAL(
	    check_der(csr_der, csr_len, server.binding, 32, CAPF__KEY_TYPE__KEY_EC_P256), 0);
	free(csr_der);

	gnutls_deinit(sess);
	gnutls_certificate_free_credentials(ccred);
	gnutls_certificate_free_credentials(scred);
	gnutls_x509_crt_deinit(cacrt);
	pki_pair_deinit(&mic);
}

/* ---- tools/pki.c ---- */

static void test_pki_files(void)
{
	struct pki_pair in, out = {NULL, NULL};
	struct stat st;
	uint8_t *d1 = NULL, *d2 = NULL;
	size_t l1 = 0, l2 = 0;
	gnutls_x509_privkey_t k = NULL;

	CU_ASSERT_EQUAL(pki_gen_key(42, &k), CAPF_EINVAL);
	CU_ASSERT_PTR_NULL(k);
	CU_ASSERT_EQUAL(pki_read_pair(path_in("nope.pem"), path_in("nope.key"), &out), -ENOENT);
	CU_ASSERT_PTR_NULL(out.crt);
	CU_ASSERT_EQUAL(pki_make_mic(NULL, DEV, 0, 1, &out), CAPF_EINVAL);
	CU_ASSERT_EQUAL(pki_make_csr(key_p256, "", NULL, 0, &d1, &l1), CAPF_EINVAL);

	CU_ASSERT_EQUAL_FATAL(pki_make_mic(&mfg_root, DEV, 0, 30, &in), 0);
	CU_ASSERT_EQUAL(pki_write_pair(&in, path_in("mic.pem"), path_in("mic.key")), 0);
	CU_ASSERT_EQUAL(stat(path_in("mic.key"), &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
	/* Writing again replaces the files, and leaves the same modes. */
	CU_ASSERT_EQUAL(pki_write_pair(&in, path_in("mic.pem"), path_in("mic.key")), 0);
	CU_ASSERT_EQUAL(stat(path_in("mic.key"), &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
	CU_ASSERT_EQUAL_FATAL(pki_read_pair(path_in("mic.pem"), path_in("mic.key"), &out), 0);
	CU_ASSERT_EQUAL(pki_crt_der(in.crt, &d1, &l1), 0);
	CU_ASSERT_EQUAL(pki_crt_der(out.crt, &d2, &l2), 0);
	CU_ASSERT_EQUAL(l1, l2);
	CU_ASSERT(l1 == l2 && memcmp(d1, d2, l1) == 0);
	free(d1);
	free(d2);
	d1 = d2 = NULL;
	CU_ASSERT_EQUAL(gnutls_x509_privkey_get_pk_algorithm(out.key), GNUTLS_PK_ECDSA);
	/* The key read back signs CSRs that the CA accepts. */
	CU_ASSERT_EQUAL(pki_make_csr(out.key, DEV, binding, sizeof(binding), &d1, &l1), 0);
	CU_ASSERT_EQUAL(check_der(d1, l1, binding, sizeof(binding), CAPF__KEY_TYPE__KEY_EC_P256),
			0);
	free(d1);
	pki_pair_deinit(&in);
	pki_pair_deinit(&out);
	pki_pair_deinit(NULL);
}

/* ---- the CA certificate profile, per key type ---- */

static void test_ca_profile_key_types(void)
{
	struct ca_config cfg = {0};
	struct ca *ca = NULL;
	time_t before;

	/* Invalid key types are configuration errors, caught before any file. */
	cfg.dir = path_in("kt-bad");
	cfg.key_type = 42;
	CU_ASSERT_EQUAL(ca_new(&ca, &cfg), CAPF_ECONFIG);
	CU_ASSERT_NOT_EQUAL(access(path_in("kt-bad"), F_OK), 0);

	cfg.dir = path_in("kt-p256");
	cfg.key_type = 0;
	cfg.subject = "CN=P256 CAPF,O=test";
	cfg.ca_days = 20;
	before = time(NULL);
	CU_ASSERT_EQUAL_FATAL(ca_new(&ca, &cfg), 0);
	check_ca_profile(ca, before, NULL, "CN=P256 CAPF,O=test", 20, GNUTLS_SIGN_ECDSA_SHA256,
			 GNUTLS_PK_ECDSA, 256);
	ca_free(ca);

	cfg.dir = path_in("kt-p384");
	cfg.key_type = CAPF__KEY_TYPE__KEY_EC_P384;
	cfg.subject = "CN=P384 CAPF";
	cfg.ca_days = 30;
	before = time(NULL);
	CU_ASSERT_EQUAL_FATAL(ca_new(&ca, &cfg), 0);
	check_ca_profile(ca, before, NULL, "CN=P384 CAPF", 30, GNUTLS_SIGN_ECDSA_SHA384, GNUTLS_PK_ECDSA,
			 384);
	ca_free(ca);

	cfg.dir = path_in("kt-rsa");
	cfg.key_type = CAPF__KEY_TYPE__KEY_RSA_2048;
	cfg.subject = "CN=RSA CAPF,OU=phones,O=test";
	cfg.ca_days = 40;
	before = time(NULL);
	CU_ASSERT_EQUAL_FATAL(ca_new(&ca, &cfg), 0);
	check_ca_profile(ca, before, NULL, "CN=RSA CAPF,OU=phones,O=test", 40, GNUTLS_SIGN_RSA_SHA256,
			 GNUTLS_PK_RSA, 2048);
	ca_free(ca);
}

/* ---- keys: a configured file, legacy layout, redaction ---- */

static void test_key_configured_file(void)
{
	struct ca_config cfg = {0};
	struct ca *ca = NULL, *again = NULL;
	gnutls_datum_t ref = {NULL, 0};
	struct stat st;
	char keyref[512], dir[512], key[512];
	struct ca_info *info = NULL;
	size_t n = 0;

	CU_ASSERT_EQUAL_FATAL(mkdir(path_in("keys"), 0700), 0);
	/* path_in() reuses its buffers: the configuration keeps copies. */
	snprintf(dir, sizeof(dir), "%s", path_in("cfgkey"));
	snprintf(key, sizeof(key), "%s", path_in("keys/capf.key"));
	cfg.dir = dir;
	cfg.key = key;
	/* The configured file does not exist: it is made, mode 0600. */
	CU_ASSERT_EQUAL_FATAL(ca_new(&ca, &cfg), 0);
	CU_ASSERT_EQUAL(stat(path_in("keys/capf.key"), &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);
	CU_ASSERT_EQUAL(count_entries(path_in("keys")), 1);
	CU_ASSERT_EQUAL_FATAL(ca_status(ca, time(NULL), &info, &n), 0);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_STRING_EQUAL(info[0].key_store, "file");
	CU_ASSERT_STRING_EQUAL(info[0].key_type, "ec-p256");
	/* The CA directory records where the key is (mode 0600: a ref may
	 * carry a PIN), not the key. */
	snprintf(keyref, sizeof(keyref), "%s/cfgkey/gen/%s/key.ref", tmpdir, info[0].id);
	CU_ASSERT_EQUAL(stat(keyref, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);
	CU_ASSERT_EQUAL(gnutls_load_file(keyref, &ref), 0);
	CU_ASSERT_EQUAL(ref.size, strlen(path_in("keys/capf.key")));
	gnutls_free(ref.data);
	free(info);
	CU_ASSERT_PTR_NULL(ca_start_notice(ca));

	/* Opened again, with the same configuration: the same CA. */
	CU_ASSERT_EQUAL_FATAL(ca_new(&again, &cfg), 0);
	CU_ASSERT_STRING_EQUAL(ca_cert_pem(ca), ca_cert_pem(again));
	CU_ASSERT_PTR_NULL(ca_start_notice(again));
	ca_free(again);
	again = NULL;

	/* After a rollover the configured key is not the current CA's: it
	 * is not used, and the start-up notice says so. */
	CU_ASSERT_EQUAL(ca_rollover(ca, NULL, NULL, 5, time(NULL), NULL), 0);
	CU_ASSERT_EQUAL_FATAL(ca_new(&again, &cfg), 0);
	CU_ASSERT_STRING_EQUAL(ca_cert_pem(ca), ca_cert_pem(again));
	CU_ASSERT_PTR_NOT_NULL(ca_start_notice(again));
	if (ca_start_notice(again) != NULL)
		CU_ASSERT_PTR_NOT_NULL(strstr(ca_start_notice(again), "not the key"));
	ca_free(again);
	ca_free(ca);

	/* A configured key that is no key. */
	CU_ASSERT_EQUAL_FATAL(write_file(path_in("keys/junk.key"), "junk\n", 5), 0);
	snprintf(dir, sizeof(dir), "%s", path_in("cfgkey-junk"));
	snprintf(key, sizeof(key), "%s", path_in("keys/junk.key"));
	CU_ASSERT_EQUAL(ca_new(&ca, &cfg), CAPF_ECONFIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(ca_last_error(), "junk.key"));
}

static void test_key_ref_redact(void)
{
	char buf[256];

	CU_ASSERT_STRING_EQUAL(ca_key_ref_redact("/etc/capf/ca.key", buf, sizeof(buf)),
			       "/etc/capf/ca.key");
	CU_ASSERT_STRING_EQUAL(
	    ca_key_ref_redact("pkcs11:token=capf;object=ca;pin-value=1234", buf, sizeof(buf)),
	    "pkcs11:token=capf;object=ca");
	CU_ASSERT_STRING_EQUAL(
	    ca_key_ref_redact("pkcs11:pin-value=1234;token=capf?pin-source=/x", buf, sizeof(buf)),
	    "pkcs11:token=capf");
	CU_ASSERT_STRING_EQUAL(ca_key_ref_redact("PKCS11:object=a?module-name=softhsm2", buf,
						 sizeof(buf)),
			       "PKCS11:object=a?module-name=softhsm2");
	CU_ASSERT_PTR_NULL(strstr(ca_key_ref_redact("pkcs11:PIN-VALUE=9;x=y", buf, sizeof(buf)),
				  "9"));
	CU_ASSERT_STRING_EQUAL(ca_key_ref_redact(NULL, buf, sizeof(buf)), "");
}

static void test_legacy_layout(void)
{
	struct ca_config cfg = {0};
	struct ca *ca = NULL;
	struct pki_pair legacy;

	/* The first layout kept ca.pem and ca.key at the top: adopted. */
	CU_ASSERT_EQUAL_FATAL(make_sub_ca(NULL, "CN=Legacy CAPF", 0, &legacy), 0);
	CU_ASSERT_EQUAL_FATAL(mkdir(path_in("legacy"), 0700), 0);
	CU_ASSERT_EQUAL_FATAL(
	    pki_write_pair(&legacy, path_in("legacy/ca.pem"), path_in("legacy/ca.key")), 0);
	cfg.dir = path_in("legacy");
	CU_ASSERT_EQUAL_FATAL(ca_new(&ca, &cfg), 0);
	CU_ASSERT_NOT_EQUAL(access(path_in("legacy/ca.key"), F_OK), 0);
	CU_ASSERT_EQUAL(access(path_in("legacy/current"), F_OK), 0);
	{
		gnutls_x509_crt_t crt = ca_crt(ca);
		uint8_t *d1 = NULL;
		size_t l1 = 0;
		const uint8_t *d2;
		size_t l2;

		CU_ASSERT_EQUAL(pki_crt_der(legacy.crt, &d1, &l1), 0);
		ca_cert_der(ca, &d2, &l2);
		CU_ASSERT(l1 == l2 && memcmp(d1, d2, l1) == 0);
		free(d1);
		gnutls_x509_crt_deinit(crt);
	}
	ca_free(ca);
	/* And it opens again from the new layout. */
	CU_ASSERT_EQUAL(ca_new(&ca, &cfg), 0);
	ca_free(ca);
	pki_pair_deinit(&legacy);
}

/* ---- LSC trust decision ---- */

static int lsc_check(struct ca *ca, const struct ca_lsc *lsc, const char *dev, time_t now)
{
	const uint8_t *p[1] = {lsc->der};
	size_t l[1] = {lsc->der_len};

	return ca_lsc_verify(ca, p, l, 1, dev, now);
}

static int issue_for(struct ca *ca, const char *dev, time_t now, struct ca_lsc *out)
{
	struct ca_csr *csr = bound_csr(key_p256, dev);
	int ret = csr != NULL ? ca_issue(ca, csr, dev, now, out) : -1;

	ca_csr_free(csr);
	return ret;
}

static void test_lsc_verify(void)
{
	struct ca_config cfg = {0};
	struct ca *ca = NULL, *other = NULL;
	struct ca_lsc lsc = {0}, foreign = {0};
	struct pki_pair mic;
	const uint8_t *p[1];
	size_t l[1];
	uint8_t junk[40] = {0x30, 0x26};
	uint8_t *der = NULL;
	size_t len = 0;
	time_t now = time(NULL);

	cfg.dir = path_in("lscv");
	cfg.lsc_days = 10;
	CU_ASSERT_EQUAL_FATAL(ca_new(&ca, &cfg), 0);
	cfg.dir = path_in("lscv-other");
	CU_ASSERT_EQUAL_FATAL(ca_new(&other, &cfg), 0);
	CU_ASSERT_EQUAL_FATAL(issue_for(ca, DEV, now, &lsc), 0);
	CU_ASSERT_EQUAL_FATAL(issue_for(other, DEV, now, &foreign), 0);

	/* Invalid input first. */
	p[0] = lsc.der;
	l[0] = lsc.der_len;
	CU_ASSERT_EQUAL(ca_lsc_verify(NULL, p, l, 1, DEV, now), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_lsc_verify(ca, p, l, 0, DEV, now), CAPF_ENOCERT);
	CU_ASSERT_EQUAL(ca_lsc_verify(ca, NULL, NULL, 1, DEV, now), CAPF_ENOCERT);
	p[0] = junk;
	l[0] = sizeof(junk);
	CU_ASSERT_EQUAL(ca_lsc_verify(ca, p, l, 1, DEV, now), CAPF_EUNTRUSTED);
	/* One bit of the signature flipped. */
	der = malloc(lsc.der_len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(der);
	memcpy(der, lsc.der, lsc.der_len);
	der[lsc.der_len - 1] ^= 1;
	p[0] = der;
	l[0] = lsc.der_len;
	CU_ASSERT_EQUAL(ca_lsc_verify(ca, p, l, 1, DEV, now), CAPF_EUNTRUSTED);
	free(der);
	/* Another CAPF's LSC, and a MIC, are not ours. */
	CU_ASSERT_EQUAL(lsc_check(ca, &foreign, DEV, now), CAPF_EUNTRUSTED);
	CU_ASSERT_EQUAL_FATAL(pki_make_mic(&mfg_root, DEV, 0, 30, &mic), 0);
	CU_ASSERT_EQUAL_FATAL(pki_crt_der(mic.crt, &der, &len), 0);
	p[0] = der;
	l[0] = len;
	CU_ASSERT_EQUAL(ca_lsc_verify(ca, p, l, 1, DEV, now), CAPF_EUNTRUSTED);
	free(der);
	pki_pair_deinit(&mic);
	/* The CA certificate itself is not an LSC. */
	ca_cert_der(ca, &p[0], &l[0]);
	CU_ASSERT_EQUAL(ca_lsc_verify(ca, p, l, 1, NULL, now), CAPF_EUNTRUSTED);

	/* Time: not yet valid, then expired (10 days). */
	CU_ASSERT_EQUAL(lsc_check(ca, &lsc, DEV, now - 3600), CAPF_EEXPIRED);
	CU_ASSERT_EQUAL(lsc_check(ca, &lsc, DEV, now + 11 * DAY), CAPF_EEXPIRED);
	/* Identity: exactly the device. */
	CU_ASSERT_EQUAL(lsc_check(ca, &lsc, "SEP001122334456", now), CAPF_EIDENTITY);
	CU_ASSERT_EQUAL(lsc_check(ca, &lsc, "SEP00112233445", now), CAPF_EIDENTITY);
	CU_ASSERT_EQUAL(lsc_check(ca, &lsc, "X" DEV, now), CAPF_EIDENTITY);

	CU_ASSERT_EQUAL(lsc_check(ca, &lsc, DEV, now), 0);
	CU_ASSERT_EQUAL(lsc_check(ca, &lsc, NULL, now), 0);
	CU_ASSERT_EQUAL(lsc_check(other, &foreign, DEV, now), 0);

	/* Revoked: refused, before time and identity are looked at. */
	CU_ASSERT_EQUAL(ca_is_revoked(ca, lsc.serial, sizeof(lsc.serial)), 0);
	CU_ASSERT_EQUAL(ca_revoke(ca, lsc.serial, sizeof(lsc.serial), now, CA_REASON_KEY_COMPROMISE,
				  lsc.der, lsc.der_len),
			0);
	CU_ASSERT_EQUAL(ca_is_revoked(ca, lsc.serial, sizeof(lsc.serial)), 1);
	CU_ASSERT_EQUAL(lsc_check(ca, &lsc, DEV, now), CAPF_EREVOKED);
	CU_ASSERT_EQUAL(lsc_check(ca, &lsc, "SEP001122334456", now + 11 * DAY), CAPF_EREVOKED);
	/* The other CA knows nothing of it. */
	CU_ASSERT_EQUAL(lsc_check(other, &foreign, DEV, now), 0);
	/* The revocation survives a restart of the CA. */
	ca_free(ca);
	cfg.dir = path_in("lscv");
	CU_ASSERT_EQUAL_FATAL(ca_new(&ca, &cfg), 0);
	CU_ASSERT_EQUAL(lsc_check(ca, &lsc, DEV, now), CAPF_EREVOKED);

	/* A crash in the middle of an append leaves a torn last line: it is
	 * cut off before the next revocation is appended, which survives. */
	{
		struct ca_lsc second = {0}, third = {0};
		char rpath[600], buf[4096];
		FILE *f;
		size_t n;

		snprintf(rpath, sizeof(rpath), "%s/revoked.txt", path_in("lscv"));
		f = fopen(rpath, "a");
		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		fputs("0a0b0c0d0e 99", f);
		fclose(f);
		CU_ASSERT_EQUAL_FATAL(issue_for(ca, DEV, now, &second), 0);
		CU_ASSERT_EQUAL_FATAL(issue_for(ca, DEV, now, &third), 0);
		CU_ASSERT_EQUAL(ca_revoke(ca, second.serial, sizeof(second.serial), now,
					  CA_REASON_SUPERSEDED, second.der, second.der_len),
				0);
		/* A complete line whose checksum does not match is skipped,
		 * and the one after it still counts. */
		f = fopen(rpath, "a");
		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		fputs("0a0b0c0d0e 1700000000 1 - 00000000\n", f);
		fclose(f);
		CU_ASSERT_EQUAL(ca_revoke(ca, third.serial, sizeof(third.serial), now,
					  CA_REASON_SUPERSEDED, third.der, third.der_len),
				0);
		ca_free(ca);
		ca = NULL;
		f = fopen(rpath, "r");
		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = '\0';
		fclose(f);
		CU_ASSERT_PTR_NULL(strstr(buf, "0a0b0c0d0e 99"));
		CU_ASSERT_EQUAL_FATAL(ca_new(&ca, &cfg), 0);
		CU_ASSERT_EQUAL(ca_is_revoked(ca, lsc.serial, sizeof(lsc.serial)), 1);
		CU_ASSERT_EQUAL(ca_is_revoked(ca, second.serial, sizeof(second.serial)), 1);
		CU_ASSERT_EQUAL(ca_is_revoked(ca, third.serial, sizeof(third.serial)), 1);
		CU_ASSERT_EQUAL(ca_is_revoked(ca, (const uint8_t *)"\x0a\x0b\x0c\x0d\x0e", 5), 0);
		ca_lsc_deinit(&second);
		ca_lsc_deinit(&third);
	}

	ca_lsc_deinit(&lsc);
	ca_lsc_deinit(&foreign);
	ca_free(ca);
	ca_free(other);
}

/* ---- rollover ---- */

static void test_rollover(void)
{
	struct ca_config cfg = {0};
	struct ca *ca = NULL, *again = NULL;
	struct ca_lsc old_lsc = {0}, new_lsc = {0};
	struct ca_info *info = NULL;
	char id[CA_ID_HEX_MAX + 1] = "", old_id[CA_ID_HEX_MAX + 1];
	uint8_t *bundle = NULL;
	size_t n = 0, blen = 0;
	gnutls_x509_crt_t *certs = NULL, lsc_crt = NULL;
	unsigned ncerts = 0, i;
	const uint8_t *cur_der;
	size_t cur_len;
	time_t now = time(NULL);
	gnutls_datum_t raw = {NULL, 0};
	gnutls_certificate_credentials_t cred = NULL;

	cfg.dir = path_in("roll");
	cfg.lsc_days = 365;
	cfg.overlap_days = 30;
	CU_ASSERT_EQUAL_FATAL(ca_new(&ca, &cfg), 0);
	CU_ASSERT_EQUAL_FATAL(issue_for(ca, DEV, now, &old_lsc), 0);
	CU_ASSERT_EQUAL_FATAL(ca_status(ca, now, &info, &n), 0);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	snprintf(old_id, sizeof(old_id), "%s", info[0].id);
	free(info);

	/* Invalid: an overlap beyond a century, a key that does not exist. */
	CU_ASSERT_EQUAL(ca_rollover(NULL, NULL, NULL, 0, now, id), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_rollover(ca, NULL, NULL, 40000, now, id), CAPF_EINVAL);
	{
		struct ca_keyspec bad = {0, "pkcs11:token=no-such-token;object=x"};

		CU_ASSERT(ca_rollover(ca, &bad, NULL, 0, now, id) < 0);
	}

	/* Roll over to an RSA key, with the default (configured) overlap. */
	{
		struct ca_keyspec spec = {CAPF__KEY_TYPE__KEY_RSA_2048, NULL};

		CU_ASSERT_EQUAL_FATAL(ca_rollover(ca, &spec, NULL, 0, now, id), 0);
	}
	CU_ASSERT_STRING_NOT_EQUAL(id, old_id);
	CU_ASSERT_EQUAL_FATAL(ca_status(ca, now, &info, &n), 0);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	CU_ASSERT_EQUAL(info[0].current, 1);
	CU_ASSERT_STRING_EQUAL(info[0].id, id);
	CU_ASSERT_STRING_EQUAL(info[0].key_type, "rsa-2048");
	CU_ASSERT_EQUAL(info[0].trusted_until, 0);
	CU_ASSERT_EQUAL(info[1].current, 0);
	CU_ASSERT_STRING_EQUAL(info[1].id, old_id);
	CU_ASSERT_EQUAL(info[1].trusted_until, now + 30 * DAY);
	/* Each generation its own name, so verifiers pick the right one. */
	CU_ASSERT_STRING_NOT_EQUAL(info[0].subject, info[1].subject);
	free(info);

	/* New LSCs come from the new CA; old ones still verify. */
	CU_ASSERT_EQUAL_FATAL(issue_for(ca, DEV, now, &new_lsc), 0);
	ca_cert_der(ca, &cur_der, &cur_len);
	CU_ASSERT_EQUAL(new_lsc.issuer_der_len, cur_len);
	CU_ASSERT(new_lsc.issuer_der == cur_der);
	CU_ASSERT(old_lsc.issuer_der != cur_der);
	CU_ASSERT_EQUAL(lsc_check(ca, &old_lsc, DEV, now), 0);
	CU_ASSERT_EQUAL(lsc_check(ca, &new_lsc, DEV, now), 0);
	lsc_crt = crt_from_der(new_lsc.der, new_lsc.der_len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(lsc_crt);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_signature_algorithm(lsc_crt), GNUTLS_SIGN_RSA_SHA256);
	gnutls_x509_crt_deinit(lsc_crt);

	/* The bundle holds both, current first; both LSCs verify with it. */
	CU_ASSERT_EQUAL_FATAL(ca_bundle(ca, now, 1, &bundle, &blen), 0);
	CU_ASSERT_EQUAL_FATAL(ca_crt_parse_all_for_test(bundle, blen, &certs, &ncerts), 0);
	CU_ASSERT_EQUAL(ncerts, 2);
	if (ncerts == 2) {
		gnutls_x509_crt_t a = crt_from_der(old_lsc.der, old_lsc.der_len);
		gnutls_x509_crt_t b = crt_from_der(new_lsc.der, new_lsc.der_len);
		unsigned st1 = 1, st2 = 1;
		gnutls_datum_t d0 = {NULL, 0};

		CU_ASSERT_EQUAL(gnutls_x509_crt_export2(certs[0], GNUTLS_X509_FMT_DER, &d0), 0);
		CU_ASSERT(d0.size == cur_len && memcmp(d0.data, cur_der, cur_len) == 0);
		gnutls_free(d0.data);
		CU_ASSERT_EQUAL(gnutls_x509_crt_verify(a, certs, ncerts, 0, &st1), 0);
		CU_ASSERT_EQUAL(st1, 0);
		CU_ASSERT_EQUAL(gnutls_x509_crt_verify(b, certs, ncerts, 0, &st2), 0);
		CU_ASSERT_EQUAL(st2, 0);
		gnutls_x509_crt_deinit(a);
		gnutls_x509_crt_deinit(b);
	}
	for (i = 0; i < ncerts; i++)
		gnutls_x509_crt_deinit(certs[i]);
	gnutls_free(certs);
	free(bundle);
	bundle = NULL;
	/* DER: one PKCS#7 with both. */
	CU_ASSERT_EQUAL_FATAL(ca_bundle(ca, now, 0, &bundle, &blen), 0);
	{
		gnutls_pkcs7_t p7 = NULL;
		gnutls_datum_t d = {bundle, (unsigned)blen};

		CU_ASSERT_EQUAL(gnutls_pkcs7_init(&p7), 0);
		CU_ASSERT_EQUAL(gnutls_pkcs7_import(p7, &d, GNUTLS_X509_FMT_DER), 0);
		CU_ASSERT_EQUAL(gnutls_pkcs7_get_crt_count(p7), 2);
		gnutls_pkcs7_deinit(p7);
	}
	free(bundle);
	bundle = NULL;

	/* TLS: the new certificate serves new sessions. */
	CU_ASSERT_EQUAL_FATAL(gnutls_certificate_allocate_credentials(&cred), 0);
	CU_ASSERT_EQUAL(ca_tls_credentials(ca, cred), 0);
	CU_ASSERT_EQUAL(gnutls_certificate_get_crt_raw(cred, 0, 0, &raw), 0);
	CU_ASSERT(raw.size == cur_len && memcmp(raw.data, cur_der, cur_len) == 0);
	gnutls_certificate_free_credentials(cred);

	/* After the overlap, the old CA and its LSCs are trusted no more. */
	CU_ASSERT_EQUAL(lsc_check(ca, &old_lsc, DEV, now + 30 * DAY - 1), 0);
	CU_ASSERT_EQUAL(lsc_check(ca, &old_lsc, DEV, now + 31 * DAY), CAPF_EUNTRUSTED);
	CU_ASSERT_EQUAL(lsc_check(ca, &new_lsc, DEV, now + 31 * DAY), 0);
	CU_ASSERT_EQUAL_FATAL(ca_status(ca, now + 31 * DAY, &info, &n), 0);
	CU_ASSERT_EQUAL(n, 1);
	free(info);
	CU_ASSERT_EQUAL_FATAL(ca_bundle(ca, now + 31 * DAY, 1, &bundle, &blen), 0);
	CU_ASSERT_EQUAL(ca_crt_parse_all_for_test(bundle, blen, &certs, &ncerts), 0);
	CU_ASSERT_EQUAL(ncerts, 1);
	for (i = 0; i < ncerts; i++)
		gnutls_x509_crt_deinit(certs[i]);
	gnutls_free(certs);
	free(bundle);

	/* It all survives a restart. */
	CU_ASSERT_EQUAL_FATAL(ca_new(&again, &cfg), 0);
	CU_ASSERT_STRING_EQUAL(ca_cert_pem(again), ca_cert_pem(ca));
	CU_ASSERT_EQUAL_FATAL(ca_status(again, now, &info, &n), 0);
	CU_ASSERT_EQUAL(n, 2);
	if (n == 2)
		CU_ASSERT_EQUAL(info[1].trusted_until, now + 30 * DAY);
	free(info);
	CU_ASSERT_EQUAL(lsc_check(again, &old_lsc, DEV, now), 0);
	/* ca.pem follows the current CA. */
	{
		gnutls_datum_t file = {NULL, 0};

		CU_ASSERT_EQUAL(gnutls_load_file(path_in("roll/ca.pem"), &file), 0);
		CU_ASSERT(file.size == strlen(ca_cert_pem(ca)) &&
			  memcmp(file.data, ca_cert_pem(ca), file.size) == 0);
		gnutls_free(file.data);
	}
	ca_free(again);

	/* An overlap never outlives the old CA: a 100-year overlap ends at
	 * its expiry (3650 days by default). */
	CU_ASSERT_EQUAL(ca_rollover(ca, NULL, NULL, 36500, now, id), 0);
	CU_ASSERT_EQUAL_FATAL(ca_status(ca, now, &info, &n), 0);
	CU_ASSERT_EQUAL(n, 3);
	if (n == 3)
		CU_ASSERT(info[2].trusted_until <= now + 3650 * DAY);
	free(info);

	ca_lsc_deinit(&old_lsc);
	ca_lsc_deinit(&new_lsc);
	ca_free(ca);
}

/* ---- CRL ---- */

static void test_reasons(void)
{
	int r = -1;

	CU_ASSERT_EQUAL(ca_reason_from_name(NULL, &r), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_reason_from_name("certificateHold", &r), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_reason_from_name("", &r), CAPF_EINVAL);
	CU_ASSERT_STRING_EQUAL(ca_reason_name(6), "?");
	CU_ASSERT_EQUAL(ca_reason_from_name("keyCompromise", &r), 0);
	CU_ASSERT_EQUAL(r, 1);
	CU_ASSERT_EQUAL(ca_reason_from_name("SUPERSEDED", &r), 0);
	CU_ASSERT_EQUAL(r, 4);
	CU_ASSERT_EQUAL(ca_reason_from_name("cessationOfOperation", &r), 0);
	CU_ASSERT_EQUAL(r, 5);
	CU_ASSERT_STRING_EQUAL(ca_reason_name(CA_REASON_PRIVILEGE_WITHDRAWN), "privilegeWithdrawn");
}

/* Finds the DER of one CRL entry extension list for a serial: the reason
 * code travels as 30 0a 06 03 55 1d 15 04 03 0a 01 RR. */
static int crl_has_reason(const uint8_t *der, size_t len, uint8_t reason)
{
	const uint8_t pat[] = {0x06, 0x03, 0x55, 0x1d, 0x15, 0x04, 0x03, 0x0a, 0x01, reason};

	return memmem(der, len, pat, sizeof(pat)) != NULL;
}

static void test_crl_contents(void)
{
	struct ca_config cfg = {0};
	struct ca *ca = NULL;
	struct ca_lsc a = {0}, b = {0}, c = {0};
	gnutls_x509_crl_t crl = NULL;
	gnutls_x509_crt_t cacrt = NULL;
	gnutls_datum_t d = {NULL, 0}, dn = {NULL, 0}, cadn = {NULL, 0}, file = {NULL, 0};
	uint8_t *der = NULL, *pem = NULL, buf[64], ski[32], serial[32];
	size_t len = 0, plen = 0, blen, ski_len = sizeof(ski), slen;
	unsigned crit = 1, status = 1;
	time_t now = time(NULL), t;
	uint64_t number1 = 0, number2 = 0;
	size_t i;

	cfg.dir = path_in("crl");
	cfg.crl_days = 3;
	CU_ASSERT_EQUAL_FATAL(ca_new(&ca, &cfg), 0);
	cacrt = ca_crt(ca);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cacrt);

	/* Invalid input first. */
	CU_ASSERT_EQUAL(ca_crl_get(ca, 0, &der, &len), CAPF_ENOENT);
	CU_ASSERT_EQUAL(ca_crl_get(NULL, 0, &der, &len), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_crl_update(NULL, now), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_revoked_add(ca, NULL, 4, now, 0, NULL, 0), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_revoked_add(ca, buf, 0, now, 0, NULL, 0), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_revoked_add(ca, buf, 21, now, 0, NULL, 0), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_revoked_add(ca, buf, 4, now, 6, NULL, 0), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_revoked_add(ca, buf, 4, now, 11, NULL, 0), CAPF_EINVAL);

	/* An empty CRL first. */
	CU_ASSERT_EQUAL_FATAL(ca_crl_update(ca, now), 0);
	CU_ASSERT_EQUAL_FATAL(ca_crl_get(ca, 0, &der, &len), 0);
	d.data = der;
	d.size = (unsigned)len;
	CU_ASSERT_EQUAL_FATAL(gnutls_x509_crl_init(&crl), 0);
	CU_ASSERT_EQUAL_FATAL(gnutls_x509_crl_import(crl, &d, GNUTLS_X509_FMT_DER), 0);
	CU_ASSERT_EQUAL(gnutls_x509_crl_get_version(crl), 2);
	CU_ASSERT_EQUAL(gnutls_x509_crl_get_crt_count(crl), 0);
	blen = sizeof(buf);
	CU_ASSERT(gnutls_x509_crl_get_number(crl, buf, &blen, &crit) >= 0);
	for (i = 0; i < blen; i++)
		number1 = number1 << 8 | buf[i];
	CU_ASSERT(number1 >= (uint64_t)now);
	gnutls_x509_crl_deinit(crl);
	crl = NULL;
	free(der);
	der = NULL;

	/* Three LSCs, two revoked: a key compromise and an unspecified one. */
	CU_ASSERT_EQUAL_FATAL(issue_for(ca, DEV, now, &a), 0);
	CU_ASSERT_EQUAL_FATAL(issue_for(ca, DEV, now, &b), 0);
	CU_ASSERT_EQUAL_FATAL(issue_for(ca, DEV, now, &c), 0);
	CU_ASSERT_EQUAL(ca_revoke(ca, a.serial, sizeof(a.serial), now - 100,
				  CA_REASON_KEY_COMPROMISE, a.der, a.der_len),
			0);
	CU_ASSERT_EQUAL(ca_revoke(ca, b.serial, sizeof(b.serial), now - 50,
				  CA_REASON_UNSPECIFIED, b.der, b.der_len),
			0);
	/* Revoking again updates the entry, it does not add one. */
	CU_ASSERT_EQUAL(ca_revoke(ca, b.serial, sizeof(b.serial), now - 50,
				  CA_REASON_SUPERSEDED, b.der, b.der_len),
			0);
	CU_ASSERT_EQUAL_FATAL(ca_crl_update(ca, now), 0);
	CU_ASSERT_EQUAL_FATAL(ca_crl_get(ca, 0, &der, &len), 0);
	d.data = der;
	d.size = (unsigned)len;
	CU_ASSERT_EQUAL_FATAL(gnutls_x509_crl_init(&crl), 0);
	CU_ASSERT_EQUAL_FATAL(gnutls_x509_crl_import(crl, &d, GNUTLS_X509_FMT_DER), 0);

	/* Signed by the CA, whose subject is the issuer. */
	CU_ASSERT_EQUAL(gnutls_x509_crl_verify(crl, &cacrt, 1, 0, &status), 0);
	CU_ASSERT_EQUAL(status, 0);
	CU_ASSERT_EQUAL(gnutls_x509_crl_get_signature_algorithm(crl), GNUTLS_SIGN_ECDSA_SHA256);
	CU_ASSERT_EQUAL(gnutls_x509_crl_get_issuer_dn3(crl, &dn, 0), 0);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_dn3(cacrt, &cadn, 0), 0);
	CU_ASSERT_STRING_EQUAL((char *)dn.data, (char *)cadn.data);
	gnutls_free(dn.data);
	gnutls_free(cadn.data);
	/* thisUpdate now, nextUpdate now + crl_days. */
	CU_ASSERT_EQUAL(gnutls_x509_crl_get_this_update(crl), now);
	CU_ASSERT_EQUAL(gnutls_x509_crl_get_next_update(crl), now + 3 * DAY);
	/* AKI = the CA's SKI; the CRL number went up. */
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_subject_key_id(cacrt, ski, &ski_len, NULL), 0);
	blen = sizeof(buf);
	CU_ASSERT_EQUAL(gnutls_x509_crl_get_authority_key_id(crl, buf, &blen, &crit), 0);
	CU_ASSERT_EQUAL(blen, ski_len);
	CU_ASSERT(memcmp(buf, ski, ski_len) == 0);
	CU_ASSERT_EQUAL(crit, 0);
	blen = sizeof(buf);
	CU_ASSERT(gnutls_x509_crl_get_number(crl, buf, &blen, &crit) >= 0);
	for (i = 0; i < blen; i++)
		number2 = number2 << 8 | buf[i];
	CU_ASSERT(number2 > number1);

	/* The two revoked serials, in order, with their dates. */
	CU_ASSERT_EQUAL_FATAL(gnutls_x509_crl_get_crt_count(crl), 2);
	for (i = 0; i < 2; i++) {
		slen = sizeof(serial);
		CU_ASSERT_EQUAL(gnutls_x509_crl_get_crt_serial(crl, (unsigned)i, serial, &slen, &t),
				0);
		CU_ASSERT_EQUAL(slen, CA_SERIAL_LEN);
		if (memcmp(serial, a.serial, CA_SERIAL_LEN) == 0) {
			CU_ASSERT_EQUAL(t, now - 100);
		} else if (memcmp(serial, b.serial, CA_SERIAL_LEN) == 0) {
			CU_ASSERT_EQUAL(t, now - 50);
		} else {
			CU_FAIL("an unknown serial in the CRL");
		}
	}
	CU_ASSERT(memmem(der, len, c.serial, CA_SERIAL_LEN) == NULL);
	/* Reason codes: keyCompromise (1) and superseded (4). */
	CU_ASSERT(crl_has_reason(der, len, 1));
	CU_ASSERT(crl_has_reason(der, len, 4));
	CU_ASSERT(!crl_has_reason(der, len, 0));

	/* crl.der is this CRL; crl.pem holds it as PEM. */
	CU_ASSERT_EQUAL(gnutls_load_file(path_in("crl/crl.der"), &file), 0);
	CU_ASSERT(file.size == len && memcmp(file.data, der, len) == 0);
	gnutls_free(file.data);
	CU_ASSERT_EQUAL(ca_crl_get(ca, 1, &pem, &plen), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr((char *)pem, "-----BEGIN X509 CRL-----"));
	free(pem);

	/* The CRL number keeps rising across a restart. */
	gnutls_x509_crl_deinit(crl);
	crl = NULL;
	free(der);
	der = NULL;
	ca_free(ca);
	ca = NULL;
	CU_ASSERT_EQUAL_FATAL(ca_new(&ca, &cfg), 0);
	CU_ASSERT_EQUAL(ca_is_revoked(ca, a.serial, sizeof(a.serial)), 1);
	CU_ASSERT_EQUAL(ca_is_revoked(ca, c.serial, sizeof(c.serial)), 0);
	CU_ASSERT_EQUAL_FATAL(ca_crl_update(ca, now - 3600), 0);
	CU_ASSERT_EQUAL_FATAL(ca_crl_get(ca, 0, &der, &len), 0);
	d.data = der;
	d.size = (unsigned)len;
	CU_ASSERT_EQUAL_FATAL(gnutls_x509_crl_init(&crl), 0);
	CU_ASSERT_EQUAL_FATAL(gnutls_x509_crl_import(crl, &d, GNUTLS_X509_FMT_DER), 0);
	CU_ASSERT_EQUAL(gnutls_x509_crl_get_crt_count(crl), 2);
	blen = sizeof(buf);
	CU_ASSERT(gnutls_x509_crl_get_number(crl, buf, &blen, &crit) >= 0);
	number1 = 0;
	for (i = 0; i < blen; i++)
		number1 = number1 << 8 | buf[i];
	CU_ASSERT(number1 > number2);
	gnutls_x509_crl_deinit(crl);
	free(der);

	ca_lsc_deinit(&a);
	ca_lsc_deinit(&b);
	ca_lsc_deinit(&c);
	gnutls_x509_crt_deinit(cacrt);
	ca_free(ca);
}

/* ---- the enterprise-signed path: request, chain, import ---- */

/* Signs the request in pem as a CA certificate (is_ca) from issuer. */
static int sign_request(const struct pki_pair *issuer, const char *pem, int is_ca,
			gnutls_x509_crt_t *out)
{
	gnutls_x509_crq_t crq = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t in = {(unsigned char *)pem, (unsigned)strlen(pem)};
	uint8_t serial[8] = {0x42, 1, 2, 3, 4, 5, 6, 7};
	time_t now = time(NULL);
	int ret = -1;

	serial[7] = (uint8_t)rand();
	if (gnutls_x509_crq_init(&crq) < 0 ||
	    gnutls_x509_crq_import(crq, &in, GNUTLS_X509_FMT_PEM) < 0 ||
	    gnutls_x509_crt_init(&crt) < 0 || gnutls_x509_crt_set_crq(crt, crq) < 0 ||
	    gnutls_x509_crt_set_version(crt, 3) < 0 ||
	    gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)) < 0 ||
	    gnutls_x509_crt_set_activation_time(crt, now - 3600) < 0 ||
	    gnutls_x509_crt_set_expiration_time(crt, now + 100 * DAY) < 0 ||
	    gnutls_x509_crt_set_basic_constraints(crt, is_ca, is_ca ? 0 : -1) < 0 ||
	    gnutls_x509_crt_set_key_usage(crt, is_ca ? GNUTLS_KEY_KEY_CERT_SIGN |
							   GNUTLS_KEY_CRL_SIGN |
							   GNUTLS_KEY_DIGITAL_SIGNATURE
						 : GNUTLS_KEY_DIGITAL_SIGNATURE) < 0 ||
	    gnutls_x509_crt_sign2(crt, issuer->crt, issuer->key, GNUTLS_DIG_SHA256, 0) < 0)
		goto out;
	*out = crt;
	crt = NULL;
	ret = 0;
out:
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_crq_deinit(crq);
	return ret;
}

static int crt_pem(gnutls_x509_crt_t crt, char *buf, size_t len)
{
	size_t n = len;

	return gnutls_x509_crt_export(crt, GNUTLS_X509_FMT_PEM, buf, &n) < 0 ? -1 : (int)n;
}

static void test_enterprise_import(void)
{
	struct ca_config cfg = {0};
	struct ca *ca = NULL, *again = NULL;
	struct pki_pair root, sub, mic;
	gnutls_x509_crt_t signed_crt = NULL, wrong_key = NULL, not_ca = NULL;
	gnutls_x509_crq_t crq = NULL;
	char *req_pem = NULL, *other_pem = NULL;
	char both[16384], one[8192];
	int n1, n2;
	size_t added = 0, n = 0, blen = 0;
	struct ca_info *info = NULL;
	struct ca_trust_entry *tl = NULL;
	struct ca_lsc lsc = {0};
	uint8_t *bundle = NULL;
	unsigned crit = 0, is_ca = 0, usage = 0, status = 1, i, ncerts = 0;
	int pathlen = -1;
	time_t now = time(NULL);
	gnutls_datum_t in = {NULL, 0};
	gnutls_x509_crt_t *certs = NULL;
	gnutls_certificate_credentials_t cred = NULL;
	gnutls_datum_t raw = {NULL, 0};
	char sub_fpr[CA_FPR_HEX_LEN + 1] = "";

	CU_ASSERT_EQUAL_FATAL(make_sub_ca(NULL, "CN=Enterprise Root,O=Example", -1, &root), 0);
	CU_ASSERT_EQUAL_FATAL(make_sub_ca(&root, "CN=Enterprise Issuing CA,O=Example", 1, &sub),
			      0);
	cfg.dir = path_in("ent");
	CU_ASSERT_EQUAL_FATAL(ca_new(&ca, &cfg), 0);

	/* No request yet: nothing to import. */
	n1 = crt_pem(sub.crt, one, sizeof(one));
	CU_ASSERT_FATAL(n1 > 0);
	CU_ASSERT_EQUAL(ca_import(ca, (uint8_t *)one, (size_t)n1, 0, now), CAPF_ENOENT);
	CU_ASSERT_EQUAL(ca_import(ca, (const uint8_t *)"junk", 4, 0, now), CAPF_EBADMSG);
	CU_ASSERT_EQUAL(ca_csr(ca, NULL, "not a DN", &req_pem), CAPF_ECONFIG);
	CU_ASSERT_PTR_NULL(req_pem);

	/* The request: its own key, a CA's extensions. */
	CU_ASSERT_EQUAL_FATAL(ca_csr(ca, NULL, "CN=CAPF Enterprise,O=Example", &req_pem), 0);
	in.data = (unsigned char *)req_pem;
	in.size = (unsigned)strlen(req_pem);
	CU_ASSERT_EQUAL_FATAL(gnutls_x509_crq_init(&crq), 0);
	CU_ASSERT_EQUAL_FATAL(gnutls_x509_crq_import(crq, &in, GNUTLS_X509_FMT_PEM), 0);
	CU_ASSERT_EQUAL(gnutls_x509_crq_verify(crq, 0), 0);
	CU_ASSERT(gnutls_x509_crq_get_basic_constraints(crq, &crit, &is_ca, &pathlen) >= 0);
	CU_ASSERT_EQUAL(is_ca, 1);
	CU_ASSERT_EQUAL(pathlen, 0);
	CU_ASSERT(gnutls_x509_crq_get_key_usage(crq, &usage, &crit) >= 0);
	CU_ASSERT_EQUAL(usage, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN |
				   GNUTLS_KEY_DIGITAL_SIGNATURE);
	gnutls_x509_crq_deinit(crq);
	CU_ASSERT_EQUAL_FATAL(ca_status(ca, now, &info, &n), 0);
	CU_ASSERT_EQUAL(n, 2);
	if (n == 2) {
		CU_ASSERT_EQUAL(info[1].pending, 1);
		CU_ASSERT_STRING_EQUAL(info[1].subject, "CN=CAPF Enterprise,O=Example");
	}
	free(info);

	/* A request made and replaced: only the last one's key counts. */
	CU_ASSERT_EQUAL_FATAL(ca_csr(ca, NULL, "CN=CAPF Old Request", &other_pem), 0);
	CU_ASSERT_EQUAL_FATAL(sign_request(&sub, other_pem, 1, &wrong_key), 0);
	free(other_pem);
	free(req_pem);
	CU_ASSERT_EQUAL_FATAL(ca_csr(ca, NULL, "CN=CAPF Enterprise,O=Example", &req_pem), 0);
	CU_ASSERT_EQUAL_FATAL(sign_request(&sub, req_pem, 1, &signed_crt), 0);
	CU_ASSERT_EQUAL_FATAL(sign_request(&sub, req_pem, 0, &not_ca), 0);

	/* Before its chain: refused, saying to import the chain first. */
	n1 = crt_pem(signed_crt, one, sizeof(one));
	CU_ASSERT_FATAL(n1 > 0);
	CU_ASSERT_EQUAL(ca_import(ca, (uint8_t *)one, (size_t)n1, 0, now), CAPF_EUNTRUSTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(ca_last_error(), "import the chain first"));
	/* The intermediate alone cannot join: its issuer is unknown. */
	n2 = crt_pem(sub.crt, both, sizeof(both));
	CU_ASSERT_EQUAL(ca_trust_add(ca, CA_TRUST_CHAIN, (uint8_t *)both, (size_t)n2, &added),
			CAPF_EUNTRUSTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(ca_last_error(), "add the issuer first"));
	/* A leaf is no trust anchor. */
	CU_ASSERT_EQUAL_FATAL(pki_make_mic(&mfg_root, DEV, 0, 30, &mic), 0);
	n2 = crt_pem(mic.crt, both, sizeof(both));
	CU_ASSERT_EQUAL(ca_trust_add(ca, CA_TRUST_CHAIN, (uint8_t *)both, (size_t)n2, &added),
			CAPF_EPOLICY);
	CU_ASSERT_EQUAL(ca_trust_add(ca, 7, (uint8_t *)both, (size_t)n2, &added), CAPF_EINVAL);
	pki_pair_deinit(&mic);
	/* The chain, intermediate first and then the root, in one file. */
	n2 = crt_pem(sub.crt, both, sizeof(both));
	n1 = crt_pem(root.crt, both + n2, sizeof(both) - (size_t)n2);
	CU_ASSERT_FATAL(n1 > 0 && n2 > 0);
	CU_ASSERT_EQUAL(ca_trust_add(ca, CA_TRUST_CHAIN, (uint8_t *)both, (size_t)(n1 + n2), &added),
			0);
	CU_ASSERT_EQUAL(added, 2);
	/* Again: nothing new. */
	CU_ASSERT_EQUAL(ca_trust_add(ca, CA_TRUST_CHAIN, (uint8_t *)both, (size_t)(n1 + n2), &added),
			0);
	CU_ASSERT_EQUAL(added, 0);
	CU_ASSERT_EQUAL_FATAL(ca_trust_list(ca, CA_TRUST_CHAIN, &tl, &n), 0);
	CU_ASSERT_EQUAL(n, 2);
	for (i = 0; i < n; i++) {
		CU_ASSERT_EQUAL(tl[i].kind, CA_TRUST_CHAIN);
		CU_ASSERT_EQUAL(tl[i].anchor, strstr(tl[i].subject, "Root") != NULL);
		if (!tl[i].anchor)
			snprintf(sub_fpr, sizeof(sub_fpr), "%s", tl[i].fingerprint);
	}
	free(tl);

	/* The key must be the pending request's. */
	n1 = crt_pem(wrong_key, one, sizeof(one));
	CU_ASSERT_EQUAL(ca_import(ca, (uint8_t *)one, (size_t)n1, 0, now), CAPF_EPOLICY);
	CU_ASSERT_PTR_NOT_NULL(strstr(ca_last_error(), "pending request"));
	/* It must be a CA. */
	n1 = crt_pem(not_ca, one, sizeof(one));
	CU_ASSERT_EQUAL(ca_import(ca, (uint8_t *)one, (size_t)n1, 0, now), CAPF_EPOLICY);
	CU_ASSERT_PTR_NOT_NULL(strstr(ca_last_error(), "not a CA"));
	/* And valid now. */
	n1 = crt_pem(signed_crt, one, sizeof(one));
	CU_ASSERT_EQUAL(ca_import(ca, (uint8_t *)one, (size_t)n1, 0, now + 200 * DAY),
			CAPF_EEXPIRED);

	/* Now it goes in, and issues. */
	CU_ASSERT_EQUAL_FATAL(ca_import(ca, (uint8_t *)one, (size_t)n1, 7, now), 0);
	CU_ASSERT_EQUAL_FATAL(ca_status(ca, now, &info, &n), 0);
	CU_ASSERT_EQUAL(n, 2); /* no pending request any more */
	if (n == 2) {
		CU_ASSERT_EQUAL(info[0].current, 1);
		CU_ASSERT_EQUAL(info[0].self_signed, 0);
		CU_ASSERT_STRING_EQUAL(info[0].issuer, "CN=Enterprise Issuing CA,O=Example");
		CU_ASSERT_EQUAL(info[1].trusted_until, now + 7 * DAY);
	}
	free(info);
	CU_ASSERT_EQUAL_FATAL(issue_for(ca, DEV, now, &lsc), 0);
	CU_ASSERT_EQUAL(lsc_check(ca, &lsc, DEV, now), 0);

	/* The bundle: the CAPF CAs, the intermediate and the root. The new
	 * LSC verifies to the enterprise root through it. */
	CU_ASSERT_EQUAL_FATAL(ca_bundle(ca, now, 1, &bundle, &blen), 0);
	CU_ASSERT_EQUAL_FATAL(ca_crt_parse_all_for_test(bundle, blen, &certs, &ncerts), 0);
	CU_ASSERT_EQUAL(ncerts, 4);
	{
		gnutls_x509_trust_list_t tlist = NULL;
		gnutls_x509_crt_t chain[3];
		gnutls_datum_t rd = {NULL, 0};

		chain[0] = crt_from_der(lsc.der, lsc.der_len);
		chain[1] = certs[0];
		chain[2] = certs[1];
		CU_ASSERT_EQUAL(gnutls_x509_trust_list_init(&tlist, 0), 0);
		CU_ASSERT_EQUAL(gnutls_x509_crt_export2(root.crt, GNUTLS_X509_FMT_DER, &rd), 0);
		CU_ASSERT_EQUAL(gnutls_x509_trust_list_add_trust_mem(tlist, &rd, NULL,
								     GNUTLS_X509_FMT_DER, 0, 0),
				1);
		status = 1;
		CU_ASSERT_EQUAL(
		    gnutls_x509_trust_list_verify_crt(tlist, chain, 3, 0, &status, NULL), 0);
		CU_ASSERT_EQUAL(status, 0);
		gnutls_free(rd.data);
		gnutls_x509_trust_list_deinit(tlist, 1);
		gnutls_x509_crt_deinit(chain[0]);
	}
	for (i = 0; i < ncerts; i++)
		gnutls_x509_crt_deinit(certs[i]);
	gnutls_free(certs);
	free(bundle);

	/* TLS sends the CAPF certificate and the intermediate. */
	CU_ASSERT_EQUAL_FATAL(gnutls_certificate_allocate_credentials(&cred), 0);
	CU_ASSERT_EQUAL(ca_tls_credentials(ca, cred), 0);
	CU_ASSERT_EQUAL(gnutls_certificate_get_crt_raw(cred, 0, 1, &raw), 0);
	CU_ASSERT_EQUAL(gnutls_certificate_get_crt_raw(cred, 0, 2, &raw),
			GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);
	gnutls_certificate_free_credentials(cred);

	/* The intermediate is in use: it cannot go. */
	CU_ASSERT_EQUAL(ca_trust_remove(ca, CA_TRUST_CHAIN, sub_fpr), CAPF_EBUSY);
	CU_ASSERT_EQUAL(ca_trust_remove(ca, 0, "abc"), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_trust_remove(ca, 0, "zzzzzzzzzz"), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_trust_remove(ca, 0, "0000000000000000"), CAPF_ENOENT);

	/* All of it after a restart. */
	CU_ASSERT_EQUAL_FATAL(ca_new(&again, &cfg), 0);
	CU_ASSERT_STRING_EQUAL(ca_cert_pem(again), ca_cert_pem(ca));
	CU_ASSERT_EQUAL(lsc_check(again, &lsc, DEV, now), 0);
	CU_ASSERT_EQUAL_FATAL(gnutls_certificate_allocate_credentials(&cred), 0);
	CU_ASSERT_EQUAL(ca_tls_credentials(again, cred), 0);
	CU_ASSERT_EQUAL(gnutls_certificate_get_crt_raw(cred, 0, 1, &raw), 0);
	gnutls_certificate_free_credentials(cred);
	ca_free(again);

	ca_lsc_deinit(&lsc);
	free(req_pem);
	gnutls_x509_crt_deinit(signed_crt);
	gnutls_x509_crt_deinit(wrong_key);
	gnutls_x509_crt_deinit(not_ca);
	pki_pair_deinit(&root);
	pki_pair_deinit(&sub);
	ca_free(ca);
}

/* ---- manufacturer roots at run time ---- */

static void test_trust_mfg(void)
{
	struct ca_config cfg = {0};
	struct ca *ca = NULL;
	struct pki_pair mic;
	struct ca_trust_entry *tl = NULL;
	char pem[8192], fpr[CA_FPR_HEX_LEN + 1] = "", cfg_fpr[CA_FPR_HEX_LEN + 1] = "";
	size_t n = 0, added = 0, i;
	int len;

	cfg.dir = path_in("mfgrt");
	cfg.mfg_roots = roots_path;
	CU_ASSERT_EQUAL_FATAL(ca_new(&ca, &cfg), 0);
	CU_ASSERT_EQUAL_FATAL(pki_make_mic(&other_root, DEV, 0, 30, &mic), 0);
	CU_ASSERT_EQUAL(verify_pairs(ca, &mic, 1, DEV, time(NULL)), CAPF_EUNTRUSTED);

	CU_ASSERT_EQUAL(ca_trust_add(ca, CA_TRUST_MFG, NULL, 0, &added), CAPF_EBADMSG);
	len = crt_pem(other_root.crt, pem, sizeof(pem));
	CU_ASSERT_FATAL(len > 0);
	CU_ASSERT_EQUAL(ca_trust_add(ca, CA_TRUST_MFG, (uint8_t *)pem, (size_t)len, &added), 0);
	CU_ASSERT_EQUAL(added, 1);
	/* At once: MICs from that manufacturer authenticate. */
	CU_ASSERT_EQUAL(verify_pairs(ca, &mic, 1, DEV, time(NULL)), 0);

	CU_ASSERT_EQUAL_FATAL(ca_trust_list(ca, 0, &tl, &n), 0);
	CU_ASSERT_EQUAL(n, 3); /* two from the configuration, one added */
	for (i = 0; i < n; i++) {
		CU_ASSERT_EQUAL(tl[i].kind, CA_TRUST_MFG);
		CU_ASSERT_EQUAL(strlen(tl[i].fingerprint), CA_FPR_HEX_LEN);
		if (strstr(tl[i].subject, "Other") != NULL) {
			CU_ASSERT_EQUAL(tl[i].from_config, 0);
			snprintf(fpr, sizeof(fpr), "%s", tl[i].fingerprint);
		} else {
			CU_ASSERT_EQUAL(tl[i].from_config, 1);
			snprintf(cfg_fpr, sizeof(cfg_fpr), "%s", tl[i].fingerprint);
		}
	}
	free(tl);
	/* Roots of the configuration file stay. */
	CU_ASSERT_EQUAL(ca_trust_remove(ca, CA_TRUST_MFG, cfg_fpr), CAPF_EPOLICY);
	/* The one added survives a restart, and goes with remove. */
	ca_free(ca);
	CU_ASSERT_EQUAL_FATAL(ca_new(&ca, &cfg), 0);
	CU_ASSERT_EQUAL(verify_pairs(ca, &mic, 1, DEV, time(NULL)), 0);
	fpr[12] = '\0'; /* a prefix is enough */
	CU_ASSERT_EQUAL(ca_trust_remove(ca, CA_TRUST_CHAIN, fpr), CAPF_ENOENT);
	CU_ASSERT_EQUAL(ca_trust_remove(ca, CA_TRUST_MFG, fpr), 0);
	CU_ASSERT_EQUAL(verify_pairs(ca, &mic, 1, DEV, time(NULL)), CAPF_EUNTRUSTED);
	ca_free(ca);
	CU_ASSERT_EQUAL_FATAL(ca_new(&ca, &cfg), 0);
	CU_ASSERT_EQUAL(verify_pairs(ca, &mic, 1, DEV, time(NULL)), CAPF_EUNTRUSTED);
	pki_pair_deinit(&mic);
	ca_free(ca);
}

/* ---- serial uniqueness in the store ---- */

static void test_serial_unique_in_store(void)
{
	struct store *st = NULL;
	Capf__Certificate cert = CAPF__CERTIFICATE__INIT;
	Capf__StoreRecord rec = CAPF__STORE_RECORD__INIT;
	Capf__StoreRecord *recs[1] = {&rec};
	struct ca_lsc lsc = {0};

	CU_ASSERT_EQUAL_FATAL(store_open(&st, path_in("store")), 0);
	CU_ASSERT_EQUAL_FATAL(issue_for(shared_ca, DEV, time(NULL), &lsc), 0);
	cert.serial.data = lsc.serial;
	cert.serial.len = sizeof(lsc.serial);
	cert.device = (char *)DEV;
	cert.der.data = lsc.der;
	cert.der.len = lsc.der_len;
	cert.state = CAPF__CERT_STATE__CERT_UNCONFIRMED;
	cert.revision = 1;
	rec.body_case = CAPF__STORE_RECORD__BODY_CERT;
	rec.cert = &cert;
	rec.create_only = true;
	/* The first record of a serial goes in; a second is refused. */
	CU_ASSERT_EQUAL(store_submit_wait(st, recs, 1), 0);
	CU_ASSERT_EQUAL(store_submit_wait(st, recs, 1), CAPF_EEXIST);
	/* An update of the record at the revision it has is fine. */
	rec.create_only = false;
	rec.check_revision = true;
	rec.expect_revision = 1;
	cert.revision = 2;
	cert.state = CAPF__CERT_STATE__CERT_ACTIVE;
	CU_ASSERT_EQUAL(store_submit_wait(st, recs, 1), 0);
	store_close(st);
	ca_lsc_deinit(&lsc);
}

/* ---- the benchmark's raw signature ---- */

static void test_sign_bench(void)
{
	const uint8_t data[32] = {1, 2, 3};

	CU_ASSERT_EQUAL(ca_issuer_sign_bench(NULL, data, sizeof(data)), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_issuer_sign_bench(shared_ca, NULL, 0), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_issuer_sign_bench(shared_ca, data, sizeof(data)), 0);
}

/* ---- public keys, two-step issuance ---- */

/* The SPKI DER of an x509 private key (malloc'd). */
static int spki_of(gnutls_x509_privkey_t xkey, uint8_t **der, size_t *len)
{
	gnutls_privkey_t key = NULL;
	int ret;

	if (gnutls_privkey_init(&key) < 0 || gnutls_privkey_import_x509(key, xkey, 0) < 0) {
		gnutls_privkey_deinit(key);
		return -1;
	}
	ret = ca_key_spki(key, der, len);
	gnutls_privkey_deinit(key);
	return ret;
}

static int spki_of_new(gnutls_pk_algorithm_t pk, unsigned bits, uint8_t **der, size_t *len)
{
	gnutls_x509_privkey_t xkey = NULL;
	int ret = -1;

	if (gnutls_x509_privkey_init(&xkey) == 0 &&
	    gnutls_x509_privkey_generate(xkey, pk, bits, 0) == 0)
		ret = spki_of(xkey, der, len);
	gnutls_x509_privkey_deinit(xkey);
	return ret;
}

static void test_pubkey_parse(void)
{
	struct ca_pubkey *k = (struct ca_pubkey *)&k;
	uint8_t *der = NULL, *ber = NULL, *other = NULL, sha[32], want[32];
	size_t len = 0, olen = 0;

	CU_ASSERT_EQUAL_FATAL(spki_of(key_p256, &der, &len), 0);
	CU_ASSERT_EQUAL_FATAL(len < 0x80 + 2, 1);
	/* Invalid input first. */
	CU_ASSERT_EQUAL(ca_pubkey_parse(der, len, NULL), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_pubkey_parse(NULL, 0, &k), CAPF_EBADMSG);
	CU_ASSERT_PTR_NULL(k);
	CU_ASSERT_EQUAL(ca_pubkey_parse(der, 0, &k), CAPF_EBADMSG);
	/* Truncated, anywhere. */
	for (size_t cut = 1; cut < len; cut += 7)
		CU_ASSERT_EQUAL(ca_pubkey_parse(der, len - cut, &k), CAPF_EBADMSG);
	/* A BER (long form, not minimal) length on the outer SEQUENCE. */
	ber = malloc(len + 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ber);
	ber[0] = 0x30;
	ber[1] = 0x81;
	memcpy(ber + 2, der + 1, len - 1);
	CU_ASSERT_EQUAL(ca_pubkey_parse(ber, len + 1, &k), CAPF_EBADMSG);
	/* The indefinite length. */
	ber[1] = 0x80;
	CU_ASSERT_EQUAL(ca_pubkey_parse(ber, len + 1, &k), CAPF_EBADMSG);
	/* A trailing byte. */
	memcpy(ber, der, len);
	ber[len] = 0;
	CU_ASSERT_EQUAL(ca_pubkey_parse(ber, len + 1, &k), CAPF_EBADMSG);
	free(ber);
	/* P-521 is issued to. */
	CU_ASSERT_EQUAL_FATAL(spki_of_new(GNUTLS_PK_ECDSA,
					  GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP521R1), &other,
					  &olen),
			      0);
	CU_ASSERT_EQUAL_FATAL(ca_pubkey_parse(other, olen, &k), 0);
	CU_ASSERT_EQUAL(ca_pubkey_type(k), CAPF__KEY_TYPE__KEY_EC_P521);
	ca_pubkey_free(k);
	k = NULL;
	free(other);
	/* An unsupported size: RSA 1024. */
	CU_ASSERT_EQUAL_FATAL(spki_of_new(GNUTLS_PK_RSA, 1024, &other, &olen), 0);
	CU_ASSERT_EQUAL(ca_pubkey_parse(other, olen, &k), CAPF_EPOLICY);
	CU_ASSERT_PTR_NULL(k);
	free(other);
	/* An unsupported algorithm: Ed25519. */
	if (spki_of_new(GNUTLS_PK_EDDSA_ED25519, 256, &other, &olen) == 0)
		CU_ASSERT_EQUAL(ca_pubkey_parse(other, olen, &k), CAPF_EPOLICY);
	free(other);

	/* Then the keys capf takes. */
	CU_ASSERT_EQUAL_FATAL(ca_pubkey_parse(der, len, &k), 0);
	CU_ASSERT_EQUAL(ca_pubkey_type(k), CAPF__KEY_TYPE__KEY_EC_P256);
	ca_pubkey_sha256(k, sha);
	CU_ASSERT_EQUAL(gnutls_hash_fast(GNUTLS_DIG_SHA256, der, len, want), 0);
	CU_ASSERT(memcmp(sha, want, 32) == 0);
	ca_pubkey_free(k);
	free(der);
	CU_ASSERT_EQUAL_FATAL(spki_of(key_p384, &der, &len), 0);
	CU_ASSERT_EQUAL_FATAL(ca_pubkey_parse(der, len, &k), 0);
	CU_ASSERT_EQUAL(ca_pubkey_type(k), CAPF__KEY_TYPE__KEY_EC_P384);
	ca_pubkey_free(k);
	free(der);
	CU_ASSERT_EQUAL_FATAL(spki_of(key_rsa2048, &der, &len), 0);
	CU_ASSERT_EQUAL_FATAL(ca_pubkey_parse(der, len, &k), 0);
	CU_ASSERT_EQUAL(ca_pubkey_type(k), CAPF__KEY_TYPE__KEY_RSA_2048);
	ca_pubkey_free(k);
	free(der);
	ca_pubkey_free(NULL);
}

/*
 * The key of a parsed CSR is the one ca_pubkey_parse() makes of the same
 * key's SubjectPublicKeyInfo: same type, same SHA-256 (so the same
 * bytes), and a key outside the policy refused the same way.
 */
static void test_csr_pubkey(void)
{
	gnutls_x509_privkey_t keys[] = { key_p256, key_p384, key_rsa2048 }, weak = NULL;
	struct ca_pubkey *a = NULL, *b = NULL;
	struct ca_csr *csr;
	uint8_t *der = NULL, ha[32], hb[32];
	size_t len = 0;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		csr = bound_csr(keys[i], DEV);
		CU_ASSERT_PTR_NOT_NULL_FATAL(csr);
		CU_ASSERT_EQUAL_FATAL(ca_csr_pubkey(csr, &a), 0);
		ca_csr_free(csr);
		CU_ASSERT_EQUAL_FATAL(spki_of(keys[i], &der, &len), 0);
		CU_ASSERT_EQUAL_FATAL(ca_pubkey_parse(der, len, &b), 0);
		CU_ASSERT_EQUAL(ca_pubkey_type(a), ca_pubkey_type(b));
		CU_ASSERT_NOT_EQUAL(ca_pubkey_type(a), 0);
		ca_pubkey_sha256(a, ha);
		ca_pubkey_sha256(b, hb);
		CU_ASSERT(memcmp(ha, hb, sizeof(ha)) == 0);
		ca_pubkey_free(a);
		ca_pubkey_free(b);
		a = b = NULL;
		free(der);
		der = NULL;
	}
	/* RSA-1024: a CSR GnuTLS reads, a key capf does not certify. */
	CU_ASSERT_EQUAL_FATAL(gnutls_x509_privkey_init(&weak), 0);
	CU_ASSERT_EQUAL_FATAL(gnutls_x509_privkey_generate(weak, GNUTLS_PK_RSA, 1024, 0), 0);
	csr = bound_csr(weak, DEV);
	CU_ASSERT_PTR_NOT_NULL_FATAL(csr);
	a = (struct ca_pubkey *)&a;
	CU_ASSERT_EQUAL(ca_csr_pubkey(csr, &a), CAPF_EPOLICY);
	CU_ASSERT_PTR_NULL(a);
	ca_csr_free(csr);
	gnutls_x509_privkey_deinit(weak);
}

/* Signs tbs as a signer would: with the key its ref names. */
static int sign_tbs(const struct ca_tbs *tbs, uint8_t **sig, size_t *sig_len)
{
	gnutls_privkey_t key = NULL;
	gnutls_datum_t in = {tbs->data, (unsigned)tbs->len}, out = {NULL, 0};
	int ret = -1;

	if (tbs->key_ref == NULL || ca_key_load(tbs->key_ref, &key) < 0)
		return -1;
	if (gnutls_privkey_sign_data2(key, (gnutls_sign_algorithm_t)tbs->sign_algo, 0, &in, &out) ==
	    0) {
		*sig = malloc(out.size);
		if (*sig != NULL) {
			memcpy(*sig, out.data, out.size);
			*sig_len = out.size;
			ret = 0;
		}
	}
	gnutls_free(out.data);
	gnutls_privkey_deinit(key);
	return ret;
}

/* 1 if two LSCs for the same key, name and time share their profile:
 * issuer, subject, validity, key, key usage, extensions, algorithm. */
static int same_profile(const struct ca_lsc *a, const struct ca_lsc *b)
{
	gnutls_x509_crt_t ca_ = crt_from_der(a->der, a->der_len);
	gnutls_x509_crt_t cb = crt_from_der(b->der, b->der_len);
	gnutls_datum_t ta = {NULL, 0}, tb = {NULL, 0};
	int same = 0;

	if (ca_ == NULL || cb == NULL)
		goto out;
	if (gnutls_x509_crt_get_raw_issuer_dn(ca_, &ta) < 0 ||
	    gnutls_x509_crt_get_raw_issuer_dn(cb, &tb) < 0)
		goto out;
	same = ta.size == tb.size && memcmp(ta.data, tb.data, ta.size) == 0;
	same = same && a->not_before == b->not_before && a->not_after == b->not_after &&
	       memcmp(a->spki_sha256, b->spki_sha256, 32) == 0 && a->issuer_der == b->issuer_der;
	{
		gnutls_datum_t sa = {NULL, 0}, sb = {NULL, 0};
		unsigned ua = 0, ub = 0;

		same = same && gnutls_x509_crt_get_dn3(ca_, &sa, 0) == 0 &&
		       gnutls_x509_crt_get_dn3(cb, &sb, 0) == 0 &&
		       strcmp((char *)sa.data, (char *)sb.data) == 0;
		gnutls_free(sa.data);
		gnutls_free(sb.data);
		same = same && gnutls_x509_crt_get_key_usage(ca_, &ua, NULL) >= 0 &&
		       gnutls_x509_crt_get_key_usage(cb, &ub, NULL) >= 0 && ua == ub;
		same = same && gnutls_x509_crt_get_signature_algorithm(ca_) ==
				   gnutls_x509_crt_get_signature_algorithm(cb);
	}
	for (unsigned i = 0; same && i < 8; i++) {
		char oa[64], ob[64];
		size_t la = sizeof(oa), lb = sizeof(ob);
		int ra = gnutls_x509_crt_get_extension_oid(ca_, i, oa, &la);
		int rb = gnutls_x509_crt_get_extension_oid(cb, i, ob, &lb);

		same = ra == rb && (ra < 0 || strcmp(oa, ob) == 0);
		if (ra < 0)
			break;
	}
out:
	gnutls_free(ta.data);
	gnutls_free(tb.data);
	gnutls_x509_crt_deinit(ca_);
	gnutls_x509_crt_deinit(cb);
	return same;
}

static void test_issue_prepare_complete(void)
{
	struct ca_csr *csr = bound_csr(key_p256, DEV);
	struct ca_pubkey *key = NULL;
	struct ca_tbs tbs = {0};
	struct ca_lsc lsc = {0}, ref = {0};
	uint8_t *sig = NULL, want[32];
	size_t sig_len = 0;
	const time_t now = time(NULL);

	CU_ASSERT_PTR_NOT_NULL_FATAL(csr);
	CU_ASSERT_EQUAL(ca_csr_pubkey(NULL, &key), CAPF_EINVAL);
	CU_ASSERT_EQUAL_FATAL(ca_csr_pubkey(csr, &key), 0);
	CU_ASSERT_EQUAL(ca_pubkey_type(key), CAPF__KEY_TYPE__KEY_EC_P256);
	/* Invalid input first. */
	CU_ASSERT_EQUAL(ca_issue_prepare(shared_ca, key, DEV, now, 0, NULL), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_issue_prepare(NULL, key, DEV, now, 0, &tbs), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_issue_prepare(shared_ca, NULL, DEV, now, 0, &tbs), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_issue_prepare(shared_ca, key, "", now, 0, &tbs), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_issue_prepare(shared_ca, key, "a\nb", now, 0, &tbs), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_issue_prepare(shared_ca, key, DEV, now, 36501, &tbs), CAPF_EINVAL);
	CU_ASSERT_PTR_NULL(tbs.data);
	CU_ASSERT_EQUAL(ca_issue_complete(NULL, (const uint8_t *)"x", 1, &lsc), CAPF_EINVAL);
	CU_ASSERT_EQUAL(ca_issue_complete(&tbs, (const uint8_t *)"x", 1, &lsc), CAPF_EINVAL);

	/* The round trip. */
	CU_ASSERT_EQUAL_FATAL(ca_issue_prepare(shared_ca, key, DEV, now, 0, &tbs), 0);
	CU_ASSERT_PTR_NOT_NULL(tbs.data);
	CU_ASSERT(tbs.len > 100);
	CU_ASSERT_PTR_NOT_NULL_FATAL(tbs.key_ref);
	CU_ASSERT_EQUAL(tbs.sign_algo, GNUTLS_SIGN_ECDSA_SHA256);
	CU_ASSERT_EQUAL(ca_issue_complete(&tbs, NULL, 0, &lsc), CAPF_EINVAL);
	CU_ASSERT_EQUAL_FATAL(sign_tbs(&tbs, &sig, &sig_len), 0);
	CU_ASSERT_EQUAL_FATAL(ca_issue_complete(&tbs, sig, sig_len, &lsc), 0);
	CU_ASSERT_EQUAL(lsc_check(shared_ca, &lsc, DEV, now), 0);
	ca_pubkey_sha256(key, want);
	CU_ASSERT(memcmp(lsc.spki_sha256, want, 32) == 0);
	/* 30 days, as shared_ca is configured. */
	CU_ASSERT_EQUAL(lsc.not_after - lsc.not_before, 30 * DAY + CA_BACKDATE_SECONDS);
	/* The same profile as ca_issue()'s. */
	CU_ASSERT_EQUAL_FATAL(ca_issue(shared_ca, csr, DEV, now, &ref), 0);
	CU_ASSERT(memcmp(ref.spki_sha256, want, 32) == 0);
	CU_ASSERT(same_profile(&lsc, &ref));
	CU_ASSERT(memcmp(lsc.serial, ref.serial, CA_SERIAL_LEN) != 0);
	ca_lsc_deinit(&lsc);
	ca_tbs_deinit(&tbs);
	free(sig);
	sig = NULL;
	/* Explicit validity. */
	CU_ASSERT_EQUAL_FATAL(ca_issue_prepare(shared_ca, key, DEV, now, 7, &tbs), 0);
	CU_ASSERT_EQUAL_FATAL(sign_tbs(&tbs, &sig, &sig_len), 0);
	CU_ASSERT_EQUAL_FATAL(ca_issue_complete(&tbs, sig, sig_len, &lsc), 0);
	CU_ASSERT_EQUAL(lsc.not_after - lsc.not_before, 7 * DAY + CA_BACKDATE_SECONDS);
	CU_ASSERT_EQUAL(lsc_check(shared_ca, &lsc, DEV, now), 0);
	/* A signature of other bytes does not make a valid LSC. */
	ca_lsc_deinit(&lsc);
	sig[sig_len / 2] ^= 1;
	CU_ASSERT_EQUAL_FATAL(ca_issue_complete(&tbs, sig, sig_len, &lsc), 0);
	CU_ASSERT_NOT_EQUAL(lsc_check(shared_ca, &lsc, DEV, now), 0);
	ca_lsc_deinit(&lsc);
	ca_tbs_deinit(&tbs);
	ca_tbs_deinit(NULL);
	free(sig);
	ca_lsc_deinit(&ref);
	ca_pubkey_free(key);
	ca_csr_free(csr);
}

/* ---- keyops: a fake signer that holds the keys ---- */

struct fake_key {
	char ref[512];
	gnutls_privkey_t key;
};

static struct fake_signer {
	pthread_mutex_t lock;
	struct fake_key keys[16];
	unsigned n;
	unsigned loads, generates, signs, hash_signs;
	int fail; /* 1: every call fails, as a dead signer */
	char only_ref[1024]; /* if set, only this key can sign (the others' tokens are away) */
} fake = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int fake_spki(gnutls_privkey_t key, uint8_t **spki, size_t *len)
{
	return ca_key_spki(key, spki, len);
}

static struct fake_key *fake_find(const char *ref)
{
	for (unsigned i = 0; i < fake.n; i++)
		if (strcmp(fake.keys[i].ref, ref) == 0)
			return &fake.keys[i];
	return NULL;
}

static struct fake_key *fake_add(const char *ref, gnutls_privkey_t key)
{
	struct fake_key *k = fake_find(ref);

	if (k != NULL) {
		gnutls_privkey_deinit(k->key);
	} else {
		if (fake.n == sizeof(fake.keys) / sizeof(fake.keys[0]))
			return NULL;
		k = &fake.keys[fake.n++];
	}
	snprintf(k->ref, sizeof(k->ref), "%s", ref);
	k->key = key;
	return k;
}

/* A restart of the signer: it holds nothing any more. */
static void fake_forget(void)
{
	pthread_mutex_lock(&fake.lock);
	for (unsigned i = 0; i < fake.n; i++)
		gnutls_privkey_deinit(fake.keys[i].key);
	fake.n = 0;
	pthread_mutex_unlock(&fake.lock);
}

static int fake_load(void *arg, const char *ref, uint8_t **spki, size_t *len, char *err,
		     size_t errlen)
{
	gnutls_privkey_t key = NULL;
	struct fake_key *k;
	int ret;

	(void)arg;
	if (fake.fail)
		return CAPF_ERETRY;
	ret = ca_key_load(ref, &key);
	if (ret < 0) {
		snprintf(err, errlen, "%s", ca_last_error());
		return ret;
	}
	pthread_mutex_lock(&fake.lock);
	fake.loads++;
	k = fake_add(ref, key);
	ret = k != NULL ? fake_spki(key, spki, len) : CAPF_ENOMEM;
	pthread_mutex_unlock(&fake.lock);
	if (k == NULL)
		gnutls_privkey_deinit(key);
	return ret;
}

static int fake_generate(void *arg, int key_type, const char *dir, const char *name, uint8_t **spki,
			 size_t *len, char *err, size_t errlen)
{
	gnutls_privkey_t key = NULL;
	char ref[512];
	struct fake_key *k;
	int ret;

	(void)arg;
	if (fake.fail)
		return CAPF_ERETRY;
	ret = ca_key_generate(key_type, dir, name, &key);
	if (ret < 0) {
		snprintf(err, errlen, "%s", ca_last_error());
		return ret;
	}
	snprintf(ref, sizeof(ref), "%s/%s", dir, name);
	pthread_mutex_lock(&fake.lock);
	fake.generates++;
	k = fake_add(ref, key);
	ret = k != NULL ? fake_spki(key, spki, len) : CAPF_ENOMEM;
	pthread_mutex_unlock(&fake.lock);
	if (k == NULL)
		gnutls_privkey_deinit(key);
	return ret;
}

static int fake_sign(void *arg, const char *ref, unsigned algo, unsigned flags, const uint8_t *data,
		     size_t len, uint8_t **sig, size_t *sig_len)
{
	gnutls_datum_t in = {(unsigned char *)data, (unsigned)len}, out = {NULL, 0};
	struct fake_key *k;
	int ret;

	if (fake.fail || (fake.only_ref[0] != '\0' && strcmp(fake.only_ref, ref) != 0))
		return CAPF_ERETRY;
	pthread_mutex_lock(&fake.lock);
	k = fake_find(ref);
	pthread_mutex_unlock(&fake.lock);
	if (k == NULL) {
		/* Not held (a restarted signer): load it by its ref. */
		uint8_t *spki = NULL;
		size_t slen = 0;
		char err[256];

		ret = fake_load(arg, ref, &spki, &slen, err, sizeof(err));
		free(spki);
		if (ret < 0)
			return ret;
		pthread_mutex_lock(&fake.lock);
		k = fake_find(ref);
		pthread_mutex_unlock(&fake.lock);
	}
	pthread_mutex_lock(&fake.lock);
	if (!(flags & CA_SIGN_HASH))
		ret =
		    gnutls_privkey_sign_data2(k->key, (gnutls_sign_algorithm_t)algo, 0, &in, &out);
	else if (algo == GNUTLS_SIGN_RSA_RAW)
		ret = gnutls_privkey_sign_hash(k->key, 0, GNUTLS_PRIVKEY_SIGN_FLAG_TLS1_RSA, &in,
					       &out);
	else
		ret =
		    gnutls_privkey_sign_hash2(k->key, (gnutls_sign_algorithm_t)algo, 0, &in, &out);
	if (ret == 0) {
		fake.signs++;
		if (flags & CA_SIGN_HASH)
			fake.hash_signs++;
	}
	pthread_mutex_unlock(&fake.lock);
	if (ret < 0)
		return CAPF_ECRYPTO;
	*sig = malloc(out.size);
	if (*sig == NULL) {
		gnutls_free(out.data);
		return CAPF_ENOMEM;
	}
	memcpy(*sig, out.data, out.size);
	*sig_len = out.size;
	gnutls_free(out.data);
	return 0;
}

static const struct ca_keyops fake_ops = {fake_load, fake_generate, fake_sign, NULL};

/* A TLS handshake against credentials; the server side in a thread. */
static int handshake_with(struct ca *ca, gnutls_certificate_credentials_t scred)
{
	gnutls_certificate_credentials_t ccred = NULL;
	gnutls_session_t sess = NULL;
	gnutls_x509_crt_t cacrt = ca_crt(ca);
	struct tls_side server = {0};
	struct pki_pair mic;
	pthread_t th;
	int sv[2], ret = -1;

	if (cacrt == NULL || pki_make_mic(&mfg_root, DEV, 0, 30, &mic) < 0)
		return -1;
	gnutls_certificate_allocate_credentials(&ccred);
	gnutls_certificate_set_x509_key(ccred, &mic.crt, 1, mic.key);
	gnutls_certificate_set_x509_trust(ccred, &cacrt, 1);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		goto out;
	server.fd = sv[0];
	server.cred = scred;
	pthread_create(&th, NULL, tls_server, &server);
	gnutls_init(&sess, GNUTLS_CLIENT);
	gnutls_set_default_priority(sess);
	gnutls_credentials_set(sess, GNUTLS_CRD_CERTIFICATE, ccred);
	gnutls_session_set_verify_cert(sess, NULL, 0);
	gnutls_transport_set_int(sess, sv[1]);
	do {
		ret = gnutls_handshake(sess);
	} while (ret < 0 && !gnutls_error_is_fatal(ret));
	if (ret == 0)
		gnutls_bye(sess, GNUTLS_SHUT_WR);
	else
		close(sv[1]), sv[1] = -1;
	pthread_join(th, NULL);
	close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	gnutls_deinit(sess);
out:
	gnutls_certificate_free_credentials(ccred);
	gnutls_x509_crt_deinit(cacrt);
	pki_pair_deinit(&mic);
	return ret == 0 && server.handshake == 0 ? 0 : -1;
}

static void test_keyops(void)
{
	struct ca_config cfg = {0};
	struct ca_keyops bad = fake_ops;
	struct ca *ca = NULL;
	struct ca_lsc lsc = {0};
	struct ca_csr *csr = bound_csr(key_p256, DEV);
	struct ca_pubkey *key = NULL;
	struct ca_tbs tbs = {0};
	gnutls_certificate_credentials_t cred = NULL;
	uint8_t *sig = NULL, *crl = NULL;
	size_t sig_len = 0, crl_len = 0;
	unsigned signs;
	char *pem = NULL, id[CA_ID_HEX_MAX + 1], path[1024];
	time_t now = time(NULL);

	CU_ASSERT_PTR_NOT_NULL_FATAL(csr);
	cfg.dir = path_in("keyops");
	cfg.mfg_roots = roots_path;
	/* Incomplete ops are refused. */
	bad.sign = NULL;
	cfg.keyops = &bad;
	CU_ASSERT_EQUAL(ca_new(&ca, &cfg), CAPF_EINVAL);
	/* A new CA: its key is made and its certificate signed by the ops. */
	cfg.keyops = &fake_ops;
	CU_ASSERT_EQUAL_FATAL(ca_new(&ca, &cfg), 0);
	CU_ASSERT_EQUAL(fake.generates, 1);
	/* Its certificate, then the check of the key as the CA is loaded
	 * from the directory (ca_issuer_check_key()). */
	CU_ASSERT_EQUAL(fake.signs, 2);
	/* Issuance, both ways: each is one signature by the fake. */
	CU_ASSERT_EQUAL_FATAL(ca_issue(ca, csr, DEV, now, &lsc), 0);
	CU_ASSERT_EQUAL(fake.signs, 3);
	CU_ASSERT_EQUAL(lsc_check(ca, &lsc, DEV, now), 0);
	ca_lsc_deinit(&lsc);
	CU_ASSERT_EQUAL_FATAL(ca_csr_pubkey(csr, &key), 0);
	CU_ASSERT_EQUAL_FATAL(ca_issue_prepare(ca, key, DEV, now, 0, &tbs), 0);
	CU_ASSERT_EQUAL(current_key_path(ca, "keyops", path, sizeof(path)), 0);
	CU_ASSERT_STRING_EQUAL(tbs.key_ref, path);
	CU_ASSERT_EQUAL_FATAL(
	    fake_sign(NULL, tbs.key_ref, tbs.sign_algo, 0, tbs.data, tbs.len, &sig, &sig_len), 0);
	CU_ASSERT_EQUAL_FATAL(ca_issue_complete(&tbs, sig, sig_len, &lsc), 0);
	CU_ASSERT_EQUAL(lsc_check(ca, &lsc, DEV, now), 0);
	CU_ASSERT_EQUAL(fake.signs, 4);
	ca_lsc_deinit(&lsc);
	ca_tbs_deinit(&tbs);
	free(sig);
	/* The signer restarts: it loads the key again by its ref. */
	fake_forget();
	signs = fake.signs;
	CU_ASSERT_EQUAL_FATAL(ca_issue(ca, csr, DEV, now, &lsc), 0);
	CU_ASSERT_EQUAL(fake.signs, signs + 1);
	CU_ASSERT_EQUAL(fake.n, 1);
	CU_ASSERT_EQUAL(lsc_check(ca, &lsc, DEV, now), 0);
	ca_lsc_deinit(&lsc);
	/* A dead signer fails issuance, and nothing else. */
	fake.fail = 1;
	CU_ASSERT_EQUAL(ca_issue(ca, csr, DEV, now, &lsc), CAPF_ERETRY);
	CU_ASSERT_PTR_NULL(lsc.der);
	fake.fail = 0;
	/* The CRL. */
	signs = fake.signs;
	CU_ASSERT_EQUAL(ca_crl_update(ca, now), 0);
	CU_ASSERT_EQUAL(fake.signs, signs + 1);
	CU_ASSERT_EQUAL(ca_crl_get(ca, 0, &crl, &crl_len), 0);
	free(crl);
	/* The TLS credentials: the handshake's signature is the fake's. */
	CU_ASSERT_EQUAL_FATAL(gnutls_certificate_allocate_credentials(&cred), 0);
	CU_ASSERT_EQUAL_FATAL(ca_tls_credentials(ca, cred), 0);
	signs = fake.hash_signs;
	CU_ASSERT_EQUAL(handshake_with(ca, cred), 0);
	CU_ASSERT_EQUAL(fake.hash_signs, signs + 1);
	gnutls_certificate_free_credentials(cred);
	/* Rollover: a new key and a self-signed certificate, by the ops;
	 * the key is then found under its final ref after a restart. */
	signs = fake.signs;
	CU_ASSERT_EQUAL_FATAL(ca_rollover(ca, NULL, NULL, 0, now, id), 0);
	CU_ASSERT_EQUAL(fake.generates, 2);
	CU_ASSERT_EQUAL(fake.signs, signs + 1);
	fake_forget();
	CU_ASSERT_EQUAL_FATAL(ca_issue(ca, csr, DEV, now, &lsc), 0);
	CU_ASSERT_EQUAL(lsc_check(ca, &lsc, DEV, now), 0);
	CU_ASSERT_EQUAL(current_key_path(ca, "keyops", path, sizeof(path)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(path, id));
	CU_ASSERT_PTR_NOT_NULL(fake_find(path));
	ca_lsc_deinit(&lsc);
	/* The CRLs of both CAs. */
	signs = fake.signs;
	CU_ASSERT_EQUAL(ca_crl_update(ca, now), 0);
	CU_ASSERT_EQUAL(fake.signs, signs + 2);
	/* Only the current CA's key can sign: its CRL is still made, and
	 * the previous CA's failure is reported, not fatal. */
	snprintf(fake.only_ref, sizeof(fake.only_ref), "%s", path);
	CU_ASSERT_EQUAL(ca_crl_update(ca, now), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(ca_last_error(), "cannot sign the CRL"));
	{
		uint8_t *all = NULL;
		size_t all_len = 0;
		CU_ASSERT_EQUAL_FATAL(ca_crl_get(ca, 1, &all, &all_len), 0);
		CU_ASSERT_PTR_NOT_NULL(strstr((char *)all, "BEGIN X509 CRL"));
		CU_ASSERT_PTR_NULL(strstr(strstr((char *)all, "BEGIN X509 CRL") + 5, "BEGIN X509 CRL"));
		free(all);
	}
	fake.only_ref[0] = '\0';
	/* An enterprise request: key and signature by the ops. */
	signs = fake.signs;
	CU_ASSERT_EQUAL_FATAL(ca_csr(ca, NULL, "CN=CAPF keyops,O=test", &pem), 0);
	CU_ASSERT_EQUAL(fake.generates, 3);
	CU_ASSERT_EQUAL(fake.signs, signs + 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(pem, "CERTIFICATE REQUEST"));
	free(pem);
	ca_free(ca);
	/* Reopened: the keys are loaded by the ops, none here. */
	fake_forget();
	signs = fake.loads;
	CU_ASSERT_EQUAL_FATAL(ca_new(&ca, &cfg), 0);
	CU_ASSERT(fake.loads > signs);
	CU_ASSERT_EQUAL_FATAL(ca_issue(ca, csr, DEV, now, &lsc), 0);
	CU_ASSERT_EQUAL(lsc_check(ca, &lsc, DEV, now), 0);
	ca_lsc_deinit(&lsc);
	ca_free(ca);
	fake_forget();
	ca_pubkey_free(key);
	ca_csr_free(csr);
}

int main(void)
{
	CU_pSuite s;
	unsigned failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("ca", suite_init, suite_clean);
	if (s == NULL || !CU_add_test(s, "ca_new invalid arguments", test_new_invalid_args) ||
	    !CU_add_test(s, "ca_new one file missing", test_new_one_file_missing) ||
	    !CU_add_test(s, "ca_new mismatched key", test_new_mismatched_key) ||
	    !CU_add_test(s, "ca_new key file that is a FIFO", test_new_key_fifo) ||
	    !CU_add_test(s, "ca_new key whose private half is another key's",
			 test_new_key_private_half_wrong) ||
	    !CU_add_test(s, "ca_new certificate refused as an issuer", test_new_ca_refused_as_issuer) ||
	    !CU_add_test(s, "ca_new certificate not a CA", test_new_not_a_ca) ||
	    !CU_add_test(s, "ca_new bad subject", test_new_bad_subject) ||
	    !CU_add_test(s, "ca_new bad manufacturer roots", test_new_bad_roots) ||
	    !CU_add_test(s, "ca_new creates a CA", test_new_creates_ca) ||
	    !CU_add_test(s, "ca_new default subject, reopen",
			 test_new_default_subject_and_reopen) ||
	    !CU_add_test(s, "ca_cert_subject", test_cert_subject) ||
	    !CU_add_test(s, "ca_csr_parse", test_csr_parse) ||
	    !CU_add_test(s, "ca_csr_check invalid", test_csr_check_invalid) ||
	    !CU_add_test(s, "ca_csr_check key policy", test_csr_check_policy) ||
	    !CU_add_test(s, "ca_csr_check SHA-1", test_csr_check_sha1) ||
	    !CU_add_test(s, "ca_issue invalid", test_issue_invalid) ||
	    !CU_add_test(s, "ca_issue EC profile", test_issue_profile_ec) ||
	    !CU_add_test(s, "ca_issue RSA profile, names", test_issue_profile_rsa_and_names) ||
	    !CU_add_test(s, "ca_issue concurrent", test_issue_concurrent) ||
	    !CU_add_test(s, "ca_mic_verify invalid", test_mic_invalid) ||
	    !CU_add_test(s, "ca_mic_verify trust", test_mic_trust) ||
	    !CU_add_test(s, "ca_mic_verify without roots", test_mic_no_roots) ||
	    !CU_add_test(s, "ca_mic_verify identity rule", test_mic_identity) ||
	    !CU_add_test(s, "ca_mic_verify naming patterns", test_mic_patterns) ||
	    !CU_add_test(s, "ca_mic_verify time", test_mic_time) ||
	    !CU_add_test(s, "ca_mic_verify intermediate", test_mic_intermediate) ||
	    !CU_add_test(s, "ca_peer_evidence", test_peer_evidence) ||
	    !CU_add_test(s, "ca_tls_credentials and binding", test_tls_credentials) ||
	    !CU_add_test(s, "pki files", test_pki_files) ||
	    !CU_add_test(s, "CA profile per key type", test_ca_profile_key_types) ||
	    !CU_add_test(s, "configured key file", test_key_configured_file) ||
	    !CU_add_test(s, "key ref redaction", test_key_ref_redact) ||
	    !CU_add_test(s, "legacy layout adopted", test_legacy_layout) ||
	    !CU_add_test(s, "ca_lsc_verify", test_lsc_verify) ||
	    !CU_add_test(s, "rollover", test_rollover) ||
	    !CU_add_test(s, "revocation reasons", test_reasons) ||
	    !CU_add_test(s, "CRL contents", test_crl_contents) ||
	    !CU_add_test(s, "enterprise CSR, chain order, import", test_enterprise_import) ||
	    !CU_add_test(s, "manufacturer roots at run time", test_trust_mfg) ||
	    !CU_add_test(s, "serial unique in the store", test_serial_unique_in_store) ||
	    !CU_add_test(s, "raw signature for the benchmark", test_sign_bench) ||
	    !CU_add_test(s, "ca_pubkey_parse", test_pubkey_parse) ||
	    !CU_add_test(s, "ca_csr_pubkey", test_csr_pubkey) ||
	    !CU_add_test(s, "ca_issue_prepare and complete", test_issue_prepare_complete) ||
	    !CU_add_test(s, "keyops: no key in ca/", test_keyops)) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	if (CU_basic_run_tests() != CUE_SUCCESS) {
		CU_cleanup_registry();
		return 1;
	}
	failures = CU_get_number_of_failures();
	/* A suite whose setup failed ran no test; that is a failure too. */
	if (CU_get_run_summary()->nSuitesFailed > 0)
		failures++;
	CU_cleanup_registry();
	return (int)failures;
}
