/*
 * Fuzz target: issuance of an LSC to a phone's key, the way the key
 * arrives: a bare SubjectPublicKeyInfo (Cisco's codec, ca_pubkey_parse())
 * or a PKCS#10 request (capf's codec, ca_csr_parse() and ca_csr_check()
 * against the binding 0x00, 0x01, ..., 0x1f that fuzz_csr's requests
 * carry), then ca_issue_prepare(), the signature, ca_issue_complete() (and
 * for a request ca_issue() too), from one of four test CAs made once
 * (P-256, P-384 and P-521 keys valid for 36500 days, so that LSCs may end
 * after 2049; an RSA-2048 key valid for 3650 days, so that LSCs may
 * outlive it) in a directory under $TMPDIR that is removed as soon as
 * their keys are loaded. Nothing else is kept between inputs.
 *
 * Input: byte 0: bits 0-1 the CA, bit 2 a request (else a bare key),
 * bits 3-7 a signed shift of the issuing time in steps of 8 hours from
 * when the CAs were made (so that it may fall before their start);
 * bytes 1-2 the validity in days (big-endian, 0 = the CA's default);
 * byte 3 the length of the device name, the name (cut at a NUL), then
 * the DER of the key or request.
 *
 * What is issued must verify against the CA that issued it (GnuTLS and
 * ca_lsc_verify()), carry exactly the phone's key (for a bare key, the
 * very input bytes), the device name as its only subject, the key usage
 * of its key type and a validity inside the CA's; and it is refused for
 * another name, outside its validity, with its signature damaged, cut
 * short, and by the other CAs.
 */
#include "config.h"

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "ca/ca.h"
#include "proto/capf.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_CAS 4

static struct test_ca {
	struct ca *ca;
	gnutls_privkey_t key;	/* the CA key, for ca_issue_prepare()'s TBS */
	gnutls_x509_crt_t crt;	/* the CA certificate */
} cas[N_CAS];
static time_t made; /* when the CAs were made */
static int ready;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* The public key of a certificate as DER SubjectPublicKeyInfo. */
static int crt_spki(gnutls_x509_crt_t crt, gnutls_datum_t *out)
{
	gnutls_pubkey_t pub = NULL;
	int ret = -1;

	out->data = NULL;
	out->size = 0;
	if (gnutls_pubkey_init(&pub) == 0 && gnutls_pubkey_import_x509(pub, crt, 0) == 0 &&
	    gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, out) == 0)
		ret = 0;
	gnutls_pubkey_deinit(pub);
	return ret;
}

/* Makes one test CA in dir and loads its key (by the ref that issuance
 * names, found with a first TBS for the CA's own public key). */
static void make_ca(struct test_ca *t, const char *dir, int key_type)
{
	struct ca_config cfg = {0};
	struct ca_pubkey *pk = NULL;
	struct ca_tbs tbs = {0};
	gnutls_datum_t der, spki = {NULL, 0};
	const uint8_t *p;
	char key_path[320];
	size_t len;

	cfg.dir = dir;
	cfg.key_type = key_type;
	cfg.ca_days = key_type == CAPF__KEY_TYPE__KEY_RSA_2048 ? 3650 : 36500;
	if (key_type == CAPF__KEY_TYPE__KEY_EC_P521) {
		/* [ca] key_type offers no P-521, but a P-521 key file given
		 * as [ca] key makes a CA that signs with SHA-512. */
		gnutls_privkey_t k = NULL;

		if (mkdir(dir, 0700) < 0 || ca_key_generate(key_type, dir, "p521.pem", &k) != 0)
			abort();
		gnutls_privkey_deinit(k);
		snprintf(key_path, sizeof(key_path), "%s/p521.pem", dir);
		cfg.key = key_path;
		cfg.key_type = 0;
	}
	if (ca_new(&t->ca, &cfg) != 0) {
		fprintf(stderr, "fuzz_issue: test CA in %s: %s\n", dir, ca_last_error());
		abort();
	}
	ca_cert_der(t->ca, &p, &len);
	der.data = (unsigned char *)p;
	der.size = (unsigned)len;
	if (gnutls_x509_crt_init(&t->crt) < 0 ||
	    gnutls_x509_crt_import(t->crt, &der, GNUTLS_X509_FMT_DER) < 0 ||
	    crt_spki(t->crt, &spki) < 0 || ca_pubkey_parse(spki.data, spki.size, &pk) != 0 ||
	    ca_issue_prepare(t->ca, pk, "setup", made, 0, &tbs) != 0 ||
	    ca_key_load(tbs.key_ref, &t->key) != 0)
		abort();
	ca_tbs_deinit(&tbs);
	ca_pubkey_free(pk);
	gnutls_free(spki.data);
}

static void setup(void)
{
	static const int types[N_CAS] = {
	    CAPF__KEY_TYPE__KEY_EC_P256,
	    CAPF__KEY_TYPE__KEY_EC_P384,
	    CAPF__KEY_TYPE__KEY_EC_P521,
	    CAPF__KEY_TYPE__KEY_RSA_2048,
	};
	const char *tmp = getenv("TMPDIR");
	char dir[256], sub[300];
	int i;

	made = time(NULL);
	snprintf(dir, sizeof(dir), "%s/capf-fuzz-issue.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		abort();
	for (i = 0; i < N_CAS; i++) {
		snprintf(sub, sizeof(sub), "%s/ca%d", dir, i);
		make_ca(&cas[i], sub, types[i]);
	}
	/* The keys are held: issuance reads no file from here on. */
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	ready = 1;
}

/* Big-endian magnitudes equal once leading zero bytes are dropped. */
static int same_uint(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	while (alen > 0 && a[0] == 0) {
		a++;
		alen--;
	}
	while (blen > 0 && b[0] == 0) {
		b++;
		blen--;
	}
	return alen == blen && memcmp(a, b, alen) == 0;
}

static int verify_at(struct ca *ca, const uint8_t *der, size_t len, const char *name, time_t t)
{
	const uint8_t *p[1] = {der};
	size_t l[1] = {len};

	return ca_lsc_verify(ca, p, l, 1, name, t);
}

/*
 * Everything an issued LSC must be: for the key spki (DER), the name,
 * from t. Aborts on the first broken promise.
 */
static void check_lsc(const struct test_ca *t, const struct ca_lsc *lsc, const gnutls_datum_t *spki,
		      int is_rsa, const char *name)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t der = {lsc->der, (unsigned)lsc->der_len}, got = {NULL, 0};
	uint8_t hash[32], serial[40], *bad = NULL;
	size_t serial_len = sizeof(serial);
	gnutls_x509_dn_t dn;
	gnutls_x509_ava_st ava;
	char other[80];
	unsigned status = 1, usage = 0, crit = 0;
	const uint8_t *ca_der;
	size_t ca_len;
	time_t ca_nb, ca_na;
	int i;

	if (gnutls_x509_crt_init(&crt) < 0)
		abort();
	if (gnutls_x509_crt_import(crt, &der, GNUTLS_X509_FMT_DER) < 0)
		abort();
	/* Signed by the CA, as GnuTLS sees it. */
	if (gnutls_x509_crt_verify(crt, &t->crt, 1,
				   GNUTLS_VERIFY_DISABLE_TIME_CHECKS |
				       GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS,
				   &status) < 0 ||
	    status != 0)
		abort();
	ca_cert_der(t->ca, &ca_der, &ca_len);
	if (lsc->issuer_der_len != ca_len || memcmp(lsc->issuer_der, ca_der, ca_len) != 0)
		abort();
	/* Exactly the phone's key. */
	if (crt_spki(crt, &got) < 0 || got.size != spki->size ||
	    memcmp(got.data, spki->data, spki->size) != 0)
		abort();
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, spki->data, spki->size, hash) < 0 ||
	    memcmp(hash, lsc->spki_sha256, sizeof(hash)) != 0)
		abort();
	/* The name, and nothing else, as the subject: one RDN of one
	 * attribute, the CN, whose string is the name (not escaped, as a
	 * DN in text would be). */
	if (gnutls_x509_crt_get_subject(crt, &dn) < 0 ||
	    gnutls_x509_dn_get_rdn_ava(dn, 0, 0, &ava) < 0 ||
	    ava.oid.data == NULL ||
	    strcmp((const char *)ava.oid.data, GNUTLS_OID_X520_COMMON_NAME) != 0 ||
	    ava.value.size != strlen(name) || memcmp(ava.value.data, name, ava.value.size) != 0 ||
	    gnutls_x509_dn_get_rdn_ava(dn, 0, 1, &ava) >= 0 ||
	    gnutls_x509_dn_get_rdn_ava(dn, 1, 0, &ava) >= 0)
		abort();
	/* Its serial, an end entity, the key usage of its key type. */
	if (gnutls_x509_crt_get_serial(crt, serial, &serial_len) < 0 ||
	    !same_uint(serial, serial_len, lsc->serial, sizeof(lsc->serial)))
		abort();
	if (gnutls_x509_crt_get_ca_status(crt, NULL) > 0)
		abort();
	if (gnutls_x509_crt_get_key_usage(crt, &usage, &crit) < 0 || !crit ||
	    usage != (is_rsa ? GNUTLS_KEY_DIGITAL_SIGNATURE | GNUTLS_KEY_KEY_ENCIPHERMENT
			     : GNUTLS_KEY_DIGITAL_SIGNATURE))
		abort();
	/* A validity inside the CA's, as the certificate says it. */
	ca_nb = gnutls_x509_crt_get_activation_time(t->crt);
	ca_na = gnutls_x509_crt_get_expiration_time(t->crt);
	if (gnutls_x509_crt_get_activation_time(crt) != lsc->not_before ||
	    gnutls_x509_crt_get_expiration_time(crt) != lsc->not_after ||
	    lsc->not_before >= lsc->not_after || lsc->not_before < ca_nb || lsc->not_after > ca_na)
		abort();

	/* Trusted for its name while valid, refused otherwise. */
	if (verify_at(t->ca, lsc->der, lsc->der_len, name, lsc->not_before) != 0 ||
	    verify_at(t->ca, lsc->der, lsc->der_len, NULL, lsc->not_after) != 0)
		abort();
	snprintf(other, sizeof(other), "%sX", name);
	if (verify_at(t->ca, lsc->der, lsc->der_len, other, lsc->not_before) != CAPF_EIDENTITY)
		abort();
	if (verify_at(t->ca, lsc->der, lsc->der_len, name, lsc->not_after + 1) != CAPF_EEXPIRED ||
	    verify_at(t->ca, lsc->der, lsc->der_len, name, lsc->not_before - 1) != CAPF_EEXPIRED)
		abort();
	/* A damaged signature (its last byte) is not the CA's. */
	bad = malloc(lsc->der_len);
	if (bad == NULL)
		abort();
	memcpy(bad, lsc->der, lsc->der_len);
	bad[lsc->der_len - 1] ^= 0x01;
	if (verify_at(t->ca, bad, lsc->der_len, name, lsc->not_before) != CAPF_EUNTRUSTED)
		abort();
	/* Cut short, it is no certificate; none is one of another CA's. */
	if (verify_at(t->ca, lsc->der, lsc->der_len - 1, name, lsc->not_before) != CAPF_EUNTRUSTED ||
	    verify_at(t->ca, lsc->der, 0, name, lsc->not_before) != CAPF_ENOCERT)
		abort();
	for (i = 0; i < N_CAS; i++)
		if (&cas[i] != t &&
		    verify_at(cas[i].ca, lsc->der, lsc->der_len, name, lsc->not_before) !=
			CAPF_EUNTRUSTED)
			abort();
	free(bad);
	gnutls_free(got.data);
	gnutls_x509_crt_deinit(crt);
}

/* ca_issue_prepare(), the CA key's signature, ca_issue_complete(). */
static void issue_key(const struct test_ca *t, const struct ca_pubkey *key,
		      const gnutls_datum_t *spki, int is_rsa, const char *name, unsigned days,
		      time_t now)
{
	struct ca_tbs tbs;
	struct ca_lsc lsc;
	gnutls_datum_t in, sig = {NULL, 0};
	int ret;

	ret = ca_issue_prepare(t->ca, key, name, now, days, &tbs);
	if (ret != 0) {
		/* A bad name or validity is the caller's (the key passed), and
		 * so is a validity that ends before the CA starts. */
		if ((ret != CAPF_EINVAL && ret != CAPF_EEXPIRED) || tbs.data != NULL)
			abort();
		return;
	}
	in.data = tbs.data;
	in.size = (unsigned)tbs.len;
	if (gnutls_privkey_sign_data2(t->key, (gnutls_sign_algorithm_t)tbs.sign_algo, 0, &in, &sig) <
	    0)
		abort();
	if (ca_issue_complete(&tbs, sig.data, sig.size, &lsc) != 0)
		abort();
	check_lsc(t, &lsc, spki, is_rsa, name);
	ca_lsc_deinit(&lsc);
	gnutls_free(sig.data);
	ca_tbs_deinit(&tbs);
}

static void from_spki(const struct test_ca *t, const uint8_t *der, size_t len, const char *name,
		      unsigned days, time_t now)
{
	struct ca_pubkey *key = NULL;
	gnutls_datum_t spki = {(unsigned char *)der, (unsigned)len};
	int type;

	if (ca_pubkey_parse(der, len, &key) != 0)
		return;
	type = ca_pubkey_type(key);
	issue_key(t, key, &spki, type >= CAPF__KEY_TYPE__KEY_RSA_2048 &&
				 type <= CAPF__KEY_TYPE__KEY_RSA_4096, name, days, now);
	ca_pubkey_free(key);
}

static void from_csr(const struct test_ca *t, const uint8_t *der, size_t len, const char *name,
		     unsigned days, time_t now)
{
	uint8_t binding[CA_BINDING_LEN];
	struct ca_csr *csr = NULL;
	struct ca_pubkey *key = NULL;
	struct ca_lsc lsc;
	gnutls_x509_crq_t crq = NULL;
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t in = {(unsigned char *)der, (unsigned)len}, spki = {NULL, 0};
	int rsa, ret;
	size_t i;

	for (i = 0; i < sizeof(binding); i++)
		binding[i] = (uint8_t)i;
	if (ca_csr_parse(der, len, &csr) != 0)
		return;
	if (ca_csr_check(csr, binding, sizeof(binding), CAPF__KEY_TYPE__KEY_UNSPECIFIED) != 0)
		goto out;
	/* The key as the request holds it, read here on its own. */
	if (gnutls_x509_crq_init(&crq) < 0 || gnutls_x509_crq_import(crq, &in, GNUTLS_X509_FMT_DER) < 0 ||
	    gnutls_pubkey_init(&pub) < 0 || gnutls_pubkey_import_x509_crq(pub, crq, 0) < 0 ||
	    gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &spki) < 0)
		abort();
	rsa = gnutls_pubkey_get_pk_algorithm(pub, NULL) == GNUTLS_PK_RSA;

	/* The server's way: the request's key under the key policy. */
	ret = ca_csr_pubkey(csr, &key);
	if (ret == 0)
		issue_key(t, key, &spki, rsa, name, days, now);
	else if (ret != CAPF_EPOLICY)
		abort();
	/* And in one call, with the CA's default validity. */
	ret = ca_issue(t->ca, csr, name, now, &lsc);
	if (ret == 0) {
		check_lsc(t, &lsc, &spki, rsa, name);
		ca_lsc_deinit(&lsc);
	} else if (ret != CAPF_EINVAL && ret != CAPF_EEXPIRED) {
		abort();
	}
out:
	gnutls_free(spki.data);
	gnutls_pubkey_deinit(pub);
	gnutls_x509_crq_deinit(crq);
	ca_pubkey_free(key);
	ca_csr_free(csr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct test_ca *t;
	char name[256];
	unsigned days, flags;
	time_t now;
	size_t nlen;

	if (!ready)
		setup();
	if (size < 4 || size < 4 + (size_t)data[3])
		return 0;
	flags = data[0];
	t = &cas[flags & 3];
	now = made + (time_t)((int8_t)(flags & 0xf8) / 8) * 8 * 3600;
	days = (unsigned)data[1] << 8 | data[2];
	nlen = data[3];
	memcpy(name, data + 4, nlen);
	name[nlen] = '\0';
	data += 4 + nlen;
	size -= 4 + nlen;
	if (flags & 4)
		from_csr(t, data, size, name, days, now);
	else
		from_spki(t, data, size, name, days, now);
	return 0;
}
