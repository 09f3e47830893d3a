/*
 * capf-bench: the pure crypto of one enrollment, as the server does it,
 * with the key types of the variant:
 *
 *   native  3 verifications: the MIC chain (the manufacturer CA's
 *           signature on the MIC), the TLS 1.3 CertificateVerify (the
 *           MIC key's), the CSR (the new key's); 2 signatures with the
 *           CAPF CA key: the handshake's CertificateVerify, the LSC;
 *   cisco   2 verifications: the MIC chain and the MIC key's signature
 *           over the name (SHA-512); no CSR (a bare public key); the same
 *           2 signatures;
 *
 * and one ECDHE as the server's side of TLS does it: its key share (a
 * fixed-base multiplication) and the shared secret (the peer's point
 * checked and multiplied), X25519 or P-256. GnuTLS 3.7 has no ECDH call
 * of its own, so that part calls nettle, which GnuTLS calls to do it.
 * The signatures and verifications are GnuTLS's own calls, with the
 * algorithms TLS 1.3 picks: ECDSA-SHA256, or RSA-PSS-SHA256 in the
 * handshake and PKCS#1 v1.5 SHA-256 in certificates and CSRs.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <nettle/curve25519.h>
#include <nettle/ecc-curve.h>
#include <nettle/ecc.h>

#include "tools/bench/bench.h"

struct key {
	gnutls_privkey_t priv;
	gnutls_pubkey_t pub;
};

static int key_make(struct key *k, bool rsa)
{
	if (gnutls_privkey_init(&k->priv) < 0 ||
	    gnutls_privkey_generate(k->priv, rsa ? GNUTLS_PK_RSA : GNUTLS_PK_ECDSA,
				    rsa ? 2048 : GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
				    0) < 0 ||
	    gnutls_pubkey_init(&k->pub) < 0 || gnutls_pubkey_import_privkey(k->pub, k->priv, 0, 0) < 0)
		return -1;
	return 0;
}

static void key_free(struct key *k)
{
	gnutls_pubkey_deinit(k->pub);
	gnutls_privkey_deinit(k->priv);
}

/* One signature and, kept for the verifications, what it signed. */
struct op {
	struct key *key;
	gnutls_sign_algorithm_t alg;
	gnutls_datum_t sig;
};

static void rnd(void *ctx, size_t n, uint8_t *dst)
{
	(void)ctx;
	(void)gnutls_rnd(GNUTLS_RND_RANDOM, dst, n);
}

/* The server's half of an ECDHE: its share, then the secret from the
 * peer's share (peer_x, peer_y for P-256; peer25519 for X25519). */
static int ecdhe(bool x25519, const struct ecc_point *peer, const uint8_t peer25519[32])
{
	if (x25519) {
		uint8_t n[CURVE25519_SIZE], q[CURVE25519_SIZE], s[CURVE25519_SIZE];

		rnd(NULL, sizeof(n), n);
		curve25519_mul_g(q, n);
		curve25519_mul(s, n, peer25519);
		return q[0] ^ s[0]; /* used, so that nothing is optimised away */
	}
	const struct ecc_curve *c = nettle_get_secp_256r1();
	struct ecc_scalar n;
	struct ecc_point q, checked, s;
	mpz_t x, y;
	int ret;

	mpz_init(x);
	mpz_init(y);
	ecc_scalar_init(&n, c);
	ecc_point_init(&q, c);
	ecc_point_init(&checked, c);
	ecc_point_init(&s, c);
	ecc_scalar_random(&n, NULL, rnd);
	ecc_point_mul_g(&q, &n);
	/* The peer's share is decoded and checked on the curve first. */
	ecc_point_get(peer, x, y);
	ret = ecc_point_set(&checked, x, y) ? 0 : -1;
	ecc_point_mul(&s, &n, &checked);
	ecc_point_get(&s, x, NULL);
	ecc_point_clear(&s);
	ecc_point_clear(&checked);
	ecc_point_clear(&q);
	ecc_scalar_clear(&n);
	mpz_clear(x);
	mpz_clear(y);
	return ret;
}

/* The rounds the callgrind run counts (--toggle-collect). Not static and
 * never inlined, so that callgrind sees every call under its name. */
int bench_crypto_rounds(const struct bench_crypto *v, unsigned n, struct op *ops, size_t nops,
			const gnutls_datum_t *data, const struct ecc_point *peer,
			const uint8_t peer25519[32]) __attribute__((noinline, noclone));

int bench_crypto_rounds(const struct bench_crypto *v, unsigned n, struct op *ops, size_t nops,
			const gnutls_datum_t *data, const struct ecc_point *peer,
			const uint8_t peer25519[32])
{
	for (unsigned i = 0; i < n; i++) {
		for (size_t k = 0; k < nops; k++) {
			if (k < (size_t)v->verifications) {
				if (gnutls_pubkey_verify_data2(ops[k].key->pub, ops[k].alg, 0, data,
							       &ops[k].sig) < 0)
					return -1;
			} else {
				gnutls_datum_t s = { NULL, 0 };

				if (gnutls_privkey_sign_data2(ops[k].key->priv, ops[k].alg, 0, data,
							      &s) < 0)
					return -1;
				gnutls_free(s.data);
			}
		}
		if (ecdhe(v->x25519, peer, peer25519) < 0)
			return -1;
	}
	return 0;
}

int bench_crypto_measure(struct bench_crypto *v, unsigned rounds_each, unsigned repeats)
{
	struct key mfg = { 0 }, mic = { 0 }, newkey = { 0 }, ca = { 0 };
	struct op ops[5];
	uint8_t buf[400], p25519[32], n25519[32];
	gnutls_datum_t data = { buf, sizeof(buf) };
	const struct ecc_curve *c = nettle_get_secp_256r1();
	struct ecc_scalar pn;
	struct ecc_point peer;
	size_t nops = 0;
	int ret = -1;
	bool rsa = v->rsa;
	gnutls_sign_algorithm_t cert_alg = rsa ? GNUTLS_SIGN_RSA_SHA256 : GNUTLS_SIGN_ECDSA_SHA256;
	gnutls_sign_algorithm_t tls_alg =
		rsa ? GNUTLS_SIGN_RSA_PSS_RSAE_SHA256 : GNUTLS_SIGN_ECDSA_SHA256;

	memset(buf, 0x5a, sizeof(buf));
	ecc_scalar_init(&pn, c);
	ecc_point_init(&peer, c);
	ecc_scalar_random(&pn, NULL, rnd);
	ecc_point_mul_g(&peer, &pn);
	rnd(NULL, sizeof(n25519), n25519);
	curve25519_mul_g(p25519, n25519);
	if (key_make(&mfg, rsa) < 0 || key_make(&mic, rsa) < 0 || key_make(&ca, rsa) < 0 ||
	    (!v->cisco && key_make(&newkey, rsa) < 0))
		goto out;
	/* Verifications first (bench_crypto_rounds counts on it), then the
	 * signatures. */
	ops[nops++] = (struct op){ &mfg, cert_alg, { NULL, 0 } };        /* MIC chain */
	if (v->cisco)
		ops[nops++] = (struct op){ &mic,
					   rsa ? GNUTLS_SIGN_RSA_SHA512 : GNUTLS_SIGN_ECDSA_SHA512,
					   { NULL, 0 } };                   /* over the name */
	else
		ops[nops++] = (struct op){ &mic, tls_alg, { NULL, 0 } };  /* CertificateVerify */
	if (!v->cisco)
		ops[nops++] = (struct op){ &newkey, cert_alg, { NULL, 0 } }; /* CSR */
	v->verifications = (int)nops;
	ops[nops++] = (struct op){ &ca, tls_alg, { NULL, 0 } };           /* handshake */
	ops[nops++] = (struct op){ &ca, cert_alg, { NULL, 0 } };          /* LSC */
	v->signatures = (int)nops - v->verifications;
	for (size_t k = 0; k < (size_t)v->verifications; k++)
		if (gnutls_privkey_sign_data2(ops[k].key->priv, ops[k].alg, 0, &data, &ops[k].sig) <
		    0)
			goto out;
	v->seconds = 1e9;
	for (unsigned r = 0; r < repeats; r++) {
		struct timespec a, b;
		double t;

		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
		if (bench_crypto_rounds(v, rounds_each, ops, nops, &data, &peer, p25519) < 0)
			goto out;
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
		t = ((double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9) /
		    rounds_each;
		/* The best round: the least disturbed by the machine's other users. */
		if (t < v->seconds)
			v->seconds = t;
	}
	/* The key exchange alone, both kinds, for the X25519 / P-256 figure. */
	for (int x = 0; x < 2; x++) {
		double best = 1e9;

		for (unsigned r = 0; r < repeats; r++) {
			struct timespec a, b;
			double t;

			clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
			for (unsigned i = 0; i < rounds_each; i++)
				(void)ecdhe(x == 0, &peer, p25519);
			clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
			t = ((double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9) /
			    rounds_each;
			if (t < best)
				best = t;
		}
		if (x == 0)
			v->x25519_seconds = best;
		else
			v->p256_seconds = best;
	}
	ret = 0;
out:
	for (size_t k = 0; k < nops; k++)
		gnutls_free(ops[k].sig.data);
	key_free(&mfg);
	key_free(&mic);
	key_free(&ca);
	if (!v->cisco)
		key_free(&newkey);
	ecc_point_clear(&peer);
	ecc_scalar_clear(&pn);
	return ret;
}

void bench_crypto_describe(const struct bench_crypto *v, char *buf, size_t len)
{
	snprintf(buf, len, "%d verifications (%s), %d signatures (handshake, LSC), one %s ECDHE",
		 v->verifications,
		 v->cisco ? "MIC chain, signature over the name" : "MIC chain, CertificateVerify, CSR",
		 v->signatures, v->x25519 ? "X25519" : "P-256");
}
