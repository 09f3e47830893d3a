/*
 * Fuzz target: the CA directory as capfd reads it at start (ca_new(),
 * doc/ca-lifecycle.md): the "current" link, gen/<serial>/ with cert.pem,
 * key.pem or key.ref, chain.pem and until, the first layout's ca.pem and
 * ca.key, the trust stores mfg/ and chain/, revoked.txt, crl.der and the
 * pending request.
 *
 * Input: byte 0 is unused; then the directory as tests/fuzz/dir_input.h
 * describes it with subdirectories and symbolic links (pack_tree.sh makes
 * one from a real CA directory). Each input gets a new directory from
 * mkdtemp() under $TMPDIR (or /tmp), removed before returning: nothing
 * is carried from one input to the next. An input that names a PKCS#11
 * token ("pkcs11:" anywhere, in any case) is skipped: opening one loads
 * the system's token modules, which is not what this target is about.
 *
 * A load that succeeds must give a consistent CA: its status lists the
 * current CA first; it issues an LSC (a fixed request) that it then
 * trusts (so the key it holds is the current certificate's); its bundle
 * can be made; a CRL it signs verifies with the current certificate; and
 * the directory it leaves loads again with the same current CA.
 */
#include "config.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "ca/ca.h"
#include "tests/fuzz/dir_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A phone's P-256 request (fuzz_csr's ec-p256-bound.der). */
static const uint8_t phone_csr[] = {
	0x30, 0x82, 0x01, 0x26, 0x30, 0x81, 0xcd, 0x02, 0x01, 0x00, 0x30, 0x1a,
	0x31, 0x18, 0x30, 0x16, 0x06, 0x03, 0x55, 0x04, 0x03, 0x13, 0x0f, 0x53,
	0x45, 0x50, 0x30, 0x30, 0x31, 0x31, 0x32, 0x32, 0x33, 0x33, 0x34, 0x34,
	0x35, 0x35, 0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce,
	0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01,
	0x07, 0x03, 0x42, 0x00, 0x04, 0xdf, 0x50, 0x14, 0xe3, 0x26, 0x4a, 0x5c,
	0x7d, 0xbb, 0x6a, 0x05, 0xca, 0xc6, 0x61, 0x1d, 0x79, 0xfd, 0x69, 0x38,
	0xb7, 0xb1, 0xab, 0xb9, 0xf4, 0xff, 0x90, 0x53, 0x6b, 0x0c, 0xf9, 0x78,
	0x98, 0xa0, 0x94, 0x1f, 0x9f, 0x41, 0x74, 0x91, 0x96, 0x35, 0x70, 0x0f,
	0x08, 0x6b, 0xe1, 0x81, 0x29, 0x2f, 0xbd, 0x5a, 0xe0, 0xbb, 0x12, 0x01,
	0x19, 0xf4, 0xc4, 0xd7, 0x51, 0x70, 0x35, 0xcb, 0xfd, 0xa0, 0x51, 0x30,
	0x4f, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x07,
	0x31, 0x42, 0x13, 0x40, 0x30, 0x30, 0x30, 0x31, 0x30, 0x32, 0x30, 0x33,
	0x30, 0x34, 0x30, 0x35, 0x30, 0x36, 0x30, 0x37, 0x30, 0x38, 0x30, 0x39,
	0x30, 0x61, 0x30, 0x62, 0x30, 0x63, 0x30, 0x64, 0x30, 0x65, 0x30, 0x66,
	0x31, 0x30, 0x31, 0x31, 0x31, 0x32, 0x31, 0x33, 0x31, 0x34, 0x31, 0x35,
	0x31, 0x36, 0x31, 0x37, 0x31, 0x38, 0x31, 0x39, 0x31, 0x61, 0x31, 0x62,
	0x31, 0x63, 0x31, 0x64, 0x31, 0x65, 0x31, 0x66, 0x30, 0x0a, 0x06, 0x08,
	0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02, 0x03, 0x48, 0x00, 0x30,
	0x45, 0x02, 0x21, 0x00, 0xa4, 0x75, 0x94, 0xbe, 0xc1, 0xaa, 0x73, 0xd4,
	0xe9, 0x0b, 0xf6, 0xe5, 0x26, 0x7c, 0x1d, 0x17, 0x51, 0x40, 0x0a, 0xad,
	0x7f, 0xd4, 0xee, 0x68, 0x1f, 0x29, 0xaf, 0x33, 0xcd, 0xe1, 0x0e, 0x65,
	0x02, 0x20, 0x60, 0xef, 0x55, 0xde, 0x34, 0xef, 0x41, 0xab, 0xf1, 0xbc,
	0x51, 0x2b, 0x3e, 0x95, 0xaa, 0xb0, 0x35, 0x70, 0xe8, 0x5f, 0x24, 0x07,
	0xb1, 0xed, 0xb7, 0xb3, 0x6f, 0xd7, 0xdc, 0x3e, 0x16, 0xb7
};

static int names_token(const uint8_t *p, size_t n)
{
	static const char word[] = "pkcs11:";

	for (size_t i = 0; i + sizeof(word) - 1 <= n; i++) {
		size_t k = 0;

		while (k < sizeof(word) - 1 && tolower(p[i + k]) == word[k])
			k++;
		if (k == sizeof(word) - 1)
			return 1;
	}
	return 0;
}

/* The current CA's id, as ca_status() reports it, into id. */
static void current_id(struct ca *ca, time_t now, char id[CA_ID_HEX_MAX + 1])
{
	struct ca_info *list = NULL;
	size_t n = 0;

	if (ca_status(ca, now, &list, &n) != 0)
		abort();
	/* The current CA first, and only there. */
	if (n == 0 || !list[0].current || list[0].pending)
		abort();
	for (size_t i = 1; i < n; i++)
		if (list[i].current)
			abort();
	memcpy(id, list[0].id, CA_ID_HEX_MAX + 1);
	free(list);
}

/* An LSC from the CA, for the fixed request: trusted by the same CA. */
static void check_issue(struct ca *ca, time_t now)
{
	struct ca_csr *csr = NULL;
	struct ca_lsc lsc = {0};
	const uint8_t *p[1];
	size_t l[1];
	int ret;

	if (ca_csr_parse(phone_csr, sizeof(phone_csr), &csr) != 0)
		abort();
	ret = ca_issue(ca, csr, "SEP001122334455", now, &lsc);
	if (ret == 0) {
		p[0] = lsc.der;
		l[0] = lsc.der_len;
		ret = ca_lsc_verify(ca, p, l, 1, "SEP001122334455", now);
		/* A CA outside its validity issues what is not valid now; a
		 * key that is not the certificate's makes what it refuses. */
		if (ret != 0 && ret != CAPF_EEXPIRED)
			abort();
	} else if (ret != CAPF_EEXPIRED && ret != CAPF_ECRYPTO) {
		abort();
	}
	ca_lsc_deinit(&lsc);
	ca_csr_free(csr);
}

/* A CRL the CA signs verifies with the current certificate. */
static void check_crl(struct ca *ca, time_t now)
{
	gnutls_x509_crl_t crl = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t d;
	const uint8_t *ca_der;
	size_t ca_len, len = 0;
	uint8_t *der = NULL;
	unsigned status = 1;
	int ret;

	ret = ca_crl_update(ca, now);
	if (ret < 0)
		return;
	if (ca_crl_get(ca, 0, &der, &len) != 0)
		abort();
	ca_cert_der(ca, &ca_der, &ca_len);
	d.data = der;
	d.size = (unsigned)len;
	if (gnutls_x509_crl_init(&crl) < 0 || gnutls_x509_crl_import(crl, &d, GNUTLS_X509_FMT_DER) < 0)
		abort();
	d.data = (unsigned char *)ca_der;
	d.size = (unsigned)ca_len;
	if (gnutls_x509_crt_init(&crt) < 0 || gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) < 0)
		abort();
	if (gnutls_x509_crl_verify(crl, &crt, 1, 0, &status) < 0 || status != 0)
		abort();
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_crl_deinit(crl);
	free(der);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ca_config cfg = {0};
	struct ca *ca = NULL;
	char dir[256], id[CA_ID_HEX_MAX + 1], again[CA_ID_HEX_MAX + 1];
	uint8_t *bundle = NULL;
	size_t blen = 0;
	time_t now = time(NULL);
	int ret;

	if (size < 1 || names_token(data, size))
		return 0;
	dir_input_make(dir, sizeof(dir), "capf-fuzz-ca", data + 1, size - 1, DIR_INPUT_TREE);
	cfg.dir = dir;
	ret = ca_new(&ca, &cfg);
	if (ret != 0) {
		if (ca != NULL || *ca_last_error() == '\0')
			abort();
		goto out;
	}
	current_id(ca, now, id);
	check_issue(ca, now);
	if (ca_bundle(ca, now, 1, &bundle, &blen) != 0 || blen == 0)
		abort();
	free(bundle);
	check_crl(ca, now);
	ca_free(ca);
	ca = NULL;

	/* What a start leaves, the next start takes, with the same CA. */
	if (ca_new(&ca, &cfg) != 0)
		abort();
	current_id(ca, now, again);
	if (strcmp(id, again) != 0)
		abort();
out:
	ca_free(ca);
	dir_input_remove(dir);
	return 0;
}
