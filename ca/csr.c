/*
 * ca/csr.c - PKCS#10 requests from phones: parsing and the checks that
 * come before issuance (key policy, self-signature, channel binding).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "ca/internal.h"
#include "proto/capf.pb-c.h"

#define CA_BINDING_MAX 64u	/* binding bytes accepted by ca_csr_check() */
#define CA_RSA_MAX_BITS 8192u	/* larger moduli cost too much to verify */
#define CA_RSA_MAX_EXP_BYTES 4u /* public exponents above 2^32 are refused */

/*
 * Keeps what issuance takes from the request: its key, encoded once as
 * GnuTLS encodes a SubjectPublicKeyInfo (canonical DER whatever the phone
 * sent), and the key identifier of that encoding. A key GnuTLS cannot
 * read is left out here and refused by ca_csr_check().
 */
static int take_key(struct ca_csr *csr)
{
	gnutls_pubkey_t pub = NULL;
	int ret = 0;

	if (gnutls_pubkey_init(&pub) < 0)
		return CAPF_ENOMEM;
	if (gnutls_pubkey_import_x509_crq(pub, csr->crq, 0) < 0)
		goto out;
	csr->pub = pub;
	csr->pk = gnutls_pubkey_get_pk_algorithm(pub, NULL);
	if (gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &csr->spki) < 0 ||
	    gnutls_hash_fast(GNUTLS_DIG_SHA256, csr->spki.data, csr->spki.size, csr->sha256) < 0) {
		gnutls_free(csr->spki.data);
		csr->spki.data = NULL;
		csr->spki.size = 0;
		ret = CAPF_ENOMEM;
		goto out;
	}
	/* The first 160 bits of SHA-256 over the SubjectPublicKeyInfo, as
	 * ca_key_id() computes for the CA. */
	memcpy(csr->key_id, csr->sha256, CA_KEY_ID_LEN);
	return 0;
out:
	csr->pub = NULL;
	gnutls_pubkey_deinit(pub);
	return ret;
}

static int der_element(const uint8_t *p, size_t len, uint8_t tag, size_t *body);

/*
 * Where the parts that the signature covers are: CertificationRequest is
 * SEQUENCE { certificationRequestInfo SEQUENCE, signatureAlgorithm
 * SEQUENCE, signature BIT STRING } (RFC 2986 4.2), in DER (the caller
 * checked it is). The signature's bits without their unused-bits octet,
 * which must be 0.
 */
static int split_request(struct ca_csr *csr, size_t len)
{
	const uint8_t *p = csr->der;
	size_t body, alg_len;
	int h;

	h = der_element(p, len, 0x30, &body);
	if (h < 0 || (size_t)h + body != len)
		return CAPF_EBADCSR;
	p += h;
	h = der_element(p, body, 0x30, &csr->info_len);
	if (h < 0)
		return CAPF_EBADCSR;
	csr->info_off = (size_t)(p - csr->der);
	csr->info_len += (size_t)h;
	p += csr->info_len;
	body -= csr->info_len;
	h = der_element(p, body, 0x30, &alg_len);
	if (h < 0)
		return CAPF_EBADCSR;
	p += (size_t)h + alg_len;
	body -= (size_t)h + alg_len;
	h = der_element(p, body, 0x03, &csr->sig_len);
	if (h < 0 || (size_t)h + csr->sig_len != body || csr->sig_len < 2 || p[h] != 0)
		return CAPF_EBADCSR;
	csr->sig_off = (size_t)(p - csr->der) + (size_t)h + 1;
	csr->sig_len -= 1;
	return 0;
}

int ca_csr_parse(const uint8_t *der, size_t len, struct ca_csr **out)
{
	struct ca_csr *csr = NULL;
	gnutls_datum_t in = {(unsigned char *)der, (unsigned)len};
	int ret;

	if (out == NULL)
		return CAPF_EINVAL;
	*out = NULL;
	/* The size limit comes before any parsing: the bytes are the
	 * phone's, and nothing about them is trusted yet. */
	if (der == NULL || len == 0 || len > CA_CSR_MAX)
		return CAPF_EBADCSR;
	csr = calloc(1, sizeof(*csr));
	if (csr == NULL)
		return CAPF_ENOMEM;
	CHECK_GNUTLS(gnutls_x509_crq_init(&csr->crq));
	/* The decoder accepts structures with fields missing (even an empty
	 * SEQUENCE); a request must at least carry a key and a signature
	 * algorithm, known or not. */
	if (gnutls_x509_crq_import(csr->crq, &in, GNUTLS_X509_FMT_DER) < 0 ||
	    gnutls_x509_crq_get_pk_algorithm(csr->crq, NULL) < 0 ||
	    gnutls_x509_crq_get_signature_algorithm(csr->crq) < 0) {
		ret = CAPF_EBADCSR;
		goto out;
	}
	{
		/* Strict DER all through: the decoder also takes BER (long
		 * or indefinite lengths, in the outer structure or the
		 * signature). Encoded again, a DER request is the very same
		 * bytes; anything else is refused. */
		gnutls_datum_t again = {NULL, 0};
		int same = gnutls_x509_crq_export2(csr->crq, GNUTLS_X509_FMT_DER, &again) >= 0 &&
			   again.size == len && memcmp(again.data, der, len) == 0;

		gnutls_free(again.data);
		if (!same) {
			ret = CAPF_EBADCSR;
			goto out;
		}
	}
	csr->der = malloc(len);
	if (csr->der == NULL) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	memcpy(csr->der, der, len);
	ret = split_request(csr, len);
	if (ret < 0)
		goto out;
	ret = take_key(csr);
	if (ret < 0)
		goto out;
	*out = csr;
	csr = NULL;
	ret = 0;
out:
	ca_csr_free(csr);
	return ret;
}

void ca_csr_free(struct ca_csr *csr)
{
	if (csr == NULL)
		return;
	if (csr->crq != NULL)
		gnutls_x509_crq_deinit(csr->crq);
	if (csr->pub != NULL)
		gnutls_pubkey_deinit(csr->pub);
	free(csr->der);
	gnutls_free(csr->spki.data);
	free(csr);
}

/* Only SHA-2 (and SHA-3) signatures are accepted: a request signed with
 * SHA-1 or weaker proves too little about possession of the key. */
static int hash_acceptable(gnutls_digest_algorithm_t dig)
{
	switch (dig) {
	case GNUTLS_DIG_SHA256:
	case GNUTLS_DIG_SHA384:
	case GNUTLS_DIG_SHA512:
	case GNUTLS_DIG_SHA3_256:
	case GNUTLS_DIG_SHA3_384:
	case GNUTLS_DIG_SHA3_512:
		return 1;
	default:
		return 0;
	}
}

/*
 * The key policy: the key must be exactly of the asked type; an
 * unspecified type accepts P-256, P-384 or RSA of 2048 bits or more.
 * Runs before the signature is verified, so an absurd RSA key is refused
 * before it costs any verification time.
 */
static int check_key(gnutls_pubkey_t pub, int key_type)
{
	gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
	gnutls_datum_t m = {NULL, 0}, e = {NULL, 0};
	unsigned bits = 0, e_skip = 0;
	int pk;
	int ret;

	if (pub == NULL)
		return CAPF_EPOLICY; /* a key GnuTLS cannot read */
	pk = gnutls_pubkey_get_pk_algorithm(pub, &bits);
	if (pk == GNUTLS_PK_ECDSA) {
		if (gnutls_pubkey_export_ecc_raw2(pub, &curve, NULL, NULL, 0) < 0) {
			ret = CAPF_EPOLICY;
			goto out;
		}
	} else if (pk == GNUTLS_PK_RSA) {
		if (gnutls_pubkey_export_rsa_raw2(pub, &m, &e, 0) < 0) {
			ret = CAPF_EPOLICY;
			goto out;
		}
		/* Leading zero bytes of the exponent do not count. */
		while (e_skip < e.size && e.data[e_skip] == 0)
			e_skip++;
	} else {
		ret = CAPF_EPOLICY;
		goto out;
	}

	ret = CAPF_EPOLICY;
	switch (key_type) {
	case CAPF__KEY_TYPE__KEY_EC_P256:
		if (pk == GNUTLS_PK_ECDSA && curve == GNUTLS_ECC_CURVE_SECP256R1)
			ret = 0;
		break;
	case CAPF__KEY_TYPE__KEY_EC_P384:
		if (pk == GNUTLS_PK_ECDSA && curve == GNUTLS_ECC_CURVE_SECP384R1)
			ret = 0;
		break;
	case CAPF__KEY_TYPE__KEY_EC_P521:
		if (pk == GNUTLS_PK_ECDSA && curve == GNUTLS_ECC_CURVE_SECP521R1)
			ret = 0;
		break;
	case CAPF__KEY_TYPE__KEY_RSA_2048:
		if (pk == GNUTLS_PK_RSA && bits == 2048)
			ret = 0;
		break;
	case CAPF__KEY_TYPE__KEY_RSA_3072:
		if (pk == GNUTLS_PK_RSA && bits == 3072)
			ret = 0;
		break;
	case CAPF__KEY_TYPE__KEY_RSA_4096:
		if (pk == GNUTLS_PK_RSA && bits == 4096)
			ret = 0;
		break;
	case CAPF__KEY_TYPE__KEY_UNSPECIFIED:
		if (pk == GNUTLS_PK_ECDSA &&
		    (curve == GNUTLS_ECC_CURVE_SECP256R1 || curve == GNUTLS_ECC_CURVE_SECP384R1 ||
		     curve == GNUTLS_ECC_CURVE_SECP521R1))
			ret = 0;
		if (pk == GNUTLS_PK_RSA && bits >= 2048 && bits <= CA_RSA_MAX_BITS)
			ret = 0;
		break;
	default:
		break;
	}
	if (ret == 0 && pk == GNUTLS_PK_RSA && e.size - e_skip > CA_RSA_MAX_EXP_BYTES)
		ret = CAPF_EPOLICY;
out:
	gnutls_free(m.data);
	gnutls_free(e.data);
	return ret;
}

/*
 * The request's self-signature, with its key as imported once: ECDSA and
 * RSA PKCS#1 v1.5 over the certificationRequestInfo's bytes as they came;
 * anything else (RSA-PSS, whose parameters are in the algorithm) by
 * GnuTLS's own check of the request.
 */
static int check_signature(const struct ca_csr *csr, gnutls_sign_algorithm_t sig)
{
	gnutls_datum_t info = {csr->der + csr->info_off, (unsigned)csr->info_len};
	gnutls_datum_t value = {csr->der + csr->sig_off, (unsigned)csr->sig_len};
	gnutls_pk_algorithm_t pk = gnutls_sign_get_pk_algorithm(sig);

	if (pk != GNUTLS_PK_ECDSA && pk != GNUTLS_PK_RSA)
		return gnutls_x509_crq_verify(csr->crq, 0) < 0 ? CAPF_ECSRSIG : 0;
	if (pk != (gnutls_pk_algorithm_t)csr->pk)
		return CAPF_ECSRSIG;
	return gnutls_pubkey_verify_data2(csr->pub, sig, 0, &info, &value) < 0 ? CAPF_ECSRSIG
									      : 0;
}

/* Compares two equal-length buffers in time that does not depend on
 * where they differ. */
static int ct_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
	volatile uint8_t acc = 0;
	size_t i;

	for (i = 0; i < len; i++)
		acc |= a[i] ^ b[i];
	return acc == 0;
}

static int check_binding(gnutls_x509_crq_t crq, const uint8_t *binding, size_t binding_len)
{
	static const char hex[] = "0123456789abcdef";
	char want[2 * CA_BINDING_MAX + 1];
	char got[2 * CA_BINDING_MAX + 2];
	size_t got_len = sizeof(got);
	size_t i;
	int ret;

	for (i = 0; i < binding_len; i++) {
		want[2 * i] = hex[binding[i] >> 4];
		want[2 * i + 1] = hex[binding[i] & 0x0f];
	}
	want[2 * binding_len] = '\0';

	/* A missing password, one too long for the buffer, or one of
	 * another length are all the same failure: not bound. */
	memset(got, 0, sizeof(got));
	ret = gnutls_x509_crq_get_challenge_password(crq, got, &got_len);
	if (ret < 0)
		return CAPF_EBINDING;
	if (strnlen(got, sizeof(got)) != 2 * binding_len)
		return CAPF_EBINDING;
	if (!ct_equal((const uint8_t *)got, (const uint8_t *)want, 2 * binding_len))
		return CAPF_EBINDING;
	return 0;
}

int ca_csr_check(const struct ca_csr *csr, const uint8_t *binding, size_t binding_len, int key_type)
{
	int sig;
	int ret;

	if (csr == NULL || csr->crq == NULL || binding == NULL || binding_len == 0 ||
	    binding_len > CA_BINDING_MAX)
		return CAPF_EINVAL;

	sig = gnutls_x509_crq_get_signature_algorithm(csr->crq);
	if (sig < 0 ||
	    !hash_acceptable(gnutls_sign_get_hash_algorithm((gnutls_sign_algorithm_t)sig)))
		return CAPF_EPOLICY;
	ret = check_key(csr->pub, key_type);
	if (ret < 0)
		return ret;
	ret = check_signature(csr, (gnutls_sign_algorithm_t)sig);
	if (ret < 0)
		return ret;
	return check_binding(csr->crq, binding, binding_len);
}

/* ---- public keys ---------------------------------------------------------- */

/*
 * Reads the header of one DER element of tag at p (len bytes left): a
 * definite length in its shortest form, within len. Returns the header
 * size and *body, or -1.
 */
static int der_element(const uint8_t *p, size_t len, uint8_t tag, size_t *body)
{
	size_t n, l = 0, i;

	if (len < 2 || p[0] != tag)
		return -1;
	if (p[1] < 0x80) {
		l = p[1];
		n = 2;
	} else {
		size_t nb = p[1] & 0x7fu;

		/* 0x80 is BER's indefinite length; a leading zero byte or a
		 * long form for a short length is not the shortest form. */
		if (nb == 0 || nb > 3 || len < 2 + nb || p[2] == 0)
			return -1;
		for (i = 0; i < nb; i++)
			l = (l << 8) | p[2 + i];
		if (l < 0x80)
			return -1;
		n = 2 + nb;
	}
	if (l > len - n)
		return -1;
	*body = l;
	return (int)n;
}

static const uint8_t oid_rsa[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01};
static const uint8_t oid_ec[] = {0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
static const uint8_t oid_p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
static const uint8_t oid_p384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
static const uint8_t oid_p521[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23};

/*
 * The outer structure of a SubjectPublicKeyInfo, strictly:
 * SEQUENCE { SEQUENCE { OID, params }, BIT STRING } covering exactly len
 * bytes. Returns 0 and whether the algorithm (and curve) is one capf
 * takes (*known), or CAPF_EBADMSG.
 */
static int spki_outer(const uint8_t *der, size_t len, int *known)
{
	size_t body, alg_len, oid_len, bits_len;
	const uint8_t *p, *alg;
	int h;

	*known = 0;
	h = der_element(der, len, 0x30, &body);
	if (h < 0 || (size_t)h + body != len)
		return CAPF_EBADMSG;
	p = der + h;
	h = der_element(p, body, 0x30, &alg_len);
	if (h < 0)
		return CAPF_EBADMSG;
	alg = p + h;
	p += (size_t)h + alg_len;
	body -= (size_t)h + alg_len;
	h = der_element(p, body, 0x03, &bits_len);
	if (h < 0 || (size_t)h + bits_len != body || bits_len < 2 || p[h] != 0)
		return CAPF_EBADMSG;
	h = der_element(alg, alg_len, 0x06, &oid_len);
	if (h < 0 || oid_len == 0)
		return CAPF_EBADMSG;
	oid_len += (size_t)h;
	if (oid_len == sizeof(oid_rsa) && memcmp(alg, oid_rsa, oid_len) == 0) {
		/* parameters NULL (RFC 3279 2.3.1) */
		*known = alg_len == oid_len + 2 && alg[oid_len] == 0x05 && alg[oid_len + 1] == 0;
		return *known ? 0 : CAPF_EBADMSG;
	}
	if (oid_len == sizeof(oid_ec) && memcmp(alg, oid_ec, oid_len) == 0) {
		const uint8_t *curve = alg + oid_len;
		size_t clen = alg_len - oid_len, cbody;

		/* namedCurve only (RFC 5480 2.1.1) */
		h = der_element(curve, clen, 0x06, &cbody);
		if (h < 0 || (size_t)h + cbody != clen)
			return CAPF_EBADMSG;
		*known = (clen == sizeof(oid_p256) && memcmp(curve, oid_p256, clen) == 0) ||
			 (clen == sizeof(oid_p384) && memcmp(curve, oid_p384, clen) == 0) ||
			 (clen == sizeof(oid_p521) && memcmp(curve, oid_p521, clen) == 0);
		return 0;
	}
	return 0;
}

/* The capf KeyType of a key, or 0 when capf does not take it. */
static int pubkey_policy(gnutls_pubkey_t pub, int *pk)
{
	gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
	gnutls_datum_t m = {NULL, 0}, e = {NULL, 0};
	unsigned bits = 0, e_skip = 0;
	int type = 0;

	*pk = gnutls_pubkey_get_pk_algorithm(pub, &bits);
	if (*pk == GNUTLS_PK_ECDSA) {
		if (gnutls_pubkey_export_ecc_raw2(pub, &curve, NULL, NULL, 0) < 0)
			return 0;
		if (curve == GNUTLS_ECC_CURVE_SECP256R1)
			type = CAPF__KEY_TYPE__KEY_EC_P256;
		else if (curve == GNUTLS_ECC_CURVE_SECP384R1)
			type = CAPF__KEY_TYPE__KEY_EC_P384;
		else if (curve == GNUTLS_ECC_CURVE_SECP521R1)
			type = CAPF__KEY_TYPE__KEY_EC_P521;
	} else if (*pk == GNUTLS_PK_RSA) {
		if (gnutls_pubkey_export_rsa_raw2(pub, &m, &e, 0) < 0)
			return 0;
		while (e_skip < e.size && e.data[e_skip] == 0)
			e_skip++;
		if (e.size - e_skip <= CA_RSA_MAX_EXP_BYTES) {
			if (bits == 2048)
				type = CAPF__KEY_TYPE__KEY_RSA_2048;
			else if (bits == 3072)
				type = CAPF__KEY_TYPE__KEY_RSA_3072;
			else if (bits == 4096)
				type = CAPF__KEY_TYPE__KEY_RSA_4096;
		}
		gnutls_free(m.data);
		gnutls_free(e.data);
	}
	return type;
}

/*
 * A ca_pubkey of a key GnuTLS has read (pub) and its SubjectPublicKeyInfo
 * as GnuTLS encodes it (spki, canonical), with the SHA-256 of that: under
 * capf's policy, spki copied.
 */
static int pubkey_make(gnutls_pubkey_t pub, const gnutls_datum_t *spki, const uint8_t sha256[32],
		       struct ca_pubkey **out)
{
	struct ca_pubkey *k = calloc(1, sizeof(*k));

	if (k == NULL)
		return CAPF_ENOMEM;
	k->type = pubkey_policy(pub, &k->pk);
	if (k->type == 0) {
		free(k);
		return CAPF_EPOLICY;
	}
	k->spki.data = gnutls_malloc(spki->size);
	if (k->spki.data == NULL) {
		free(k);
		return CAPF_ENOMEM;
	}
	memcpy(k->spki.data, spki->data, spki->size);
	k->spki.size = spki->size;
	memcpy(k->sha256, sha256, sizeof(k->sha256));
	/* The key identifier: the first 160 bits of that hash, as for the
	 * CA's own keys (ca_key_id()). */
	memcpy(k->key_id, k->sha256, CA_KEY_ID_LEN);
	*out = k;
	return 0;
}

int ca_pubkey_parse(const uint8_t *der, size_t len, struct ca_pubkey **out)
{
	gnutls_datum_t in = {(unsigned char *)der, (unsigned)len}, again = {NULL, 0};
	gnutls_pubkey_t pub = NULL;
	uint8_t sha256[32];
	int known, ret;

	if (out == NULL)
		return CAPF_EINVAL;
	*out = NULL;
	/* Structure first, by hand: GnuTLS's decoder is lenient about what
	 * follows the key and about how lengths are written. */
	if (der == NULL || len == 0 || len > CA_CSR_MAX)
		return CAPF_EBADMSG;
	ret = spki_outer(der, len, &known);
	if (ret < 0)
		return ret;
	if (!known)
		return CAPF_EPOLICY;
	CHECK_GNUTLS(gnutls_pubkey_init(&pub));
	if (gnutls_pubkey_import(pub, &in, GNUTLS_X509_FMT_DER) < 0) {
		ret = CAPF_EBADMSG;
		goto out;
	}
	/* The key inside the BIT STRING must be DER too: GnuTLS re-encodes
	 * it canonically, and any difference is refused. */
	CHECK_GNUTLS(gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &again));
	if (again.size != len || memcmp(again.data, der, len) != 0) {
		ret = CAPF_EBADMSG;
		goto out;
	}
	CHECK_GNUTLS(gnutls_hash_fast(GNUTLS_DIG_SHA256, der, len, sha256));
	ret = pubkey_make(pub, &in, sha256, out);
out:
	gnutls_free(again.data);
	gnutls_pubkey_deinit(pub);
	return ret;
}

int ca_csr_pubkey(const struct ca_csr *csr, struct ca_pubkey **out)
{
	int known, ret;

	if (out == NULL)
		return CAPF_EINVAL;
	*out = NULL;
	if (csr == NULL || csr->crq == NULL)
		return CAPF_EINVAL;
	if (csr->spki.size == 0 || csr->pub == NULL)
		return CAPF_EPOLICY; /* a key GnuTLS cannot read */
	/* The key ca_csr_parse() imported, and its SubjectPublicKeyInfo as
	 * GnuTLS encoded it: canonical already, so nothing is read twice;
	 * the same structure rule and policy as ca_pubkey_parse(). */
	ret = spki_outer(csr->spki.data, csr->spki.size, &known);
	if (ret < 0)
		return ret;
	if (!known)
		return CAPF_EPOLICY;
	return pubkey_make(csr->pub, &csr->spki, csr->sha256, out);
}

void ca_pubkey_free(struct ca_pubkey *key)
{
	if (key == NULL)
		return;
	gnutls_free(key->spki.data);
	free(key);
}

int ca_pubkey_type(const struct ca_pubkey *key)
{
	return key != NULL ? key->type : 0;
}

void ca_pubkey_sha256(const struct ca_pubkey *key, uint8_t out[32])
{
	memcpy(out, key->sha256, 32);
}
