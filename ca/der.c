/*
 * ca/der.c - a small DER writer for what capf encodes itself: the LSC
 * (TBSCertificate and Certificate, RFC 5280 4.1) and the CRL (5.1).
 * GnuTLS builds certificates through libtasn1 node by node, which costs
 * more than the signature of an LSC; and it cannot put a reasonCode on a
 * CRL entry. Every structure made here is checked by the tests with
 * GnuTLS, certtool and openssl.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca/internal.h"

void ca_der_put(struct ca_der *b, const void *data, size_t n)
{
	if (b->err)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		uint8_t *grown;

		while (cap < b->len + n)
			cap *= 2;
		grown = realloc(b->p, cap);
		if (grown == NULL) {
			b->err = CAPF_ENOMEM;
			return;
		}
		b->p = grown;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

/* A tag and a definite length. */
void ca_der_head(struct ca_der *b, uint8_t tag, size_t len)
{
	uint8_t h[6];
	size_t n = 0;

	h[n++] = tag;
	if (len < 0x80) {
		h[n++] = (uint8_t)len;
	} else if (len < 0x100) {
		h[n++] = 0x81;
		h[n++] = (uint8_t)len;
	} else if (len < 0x10000) {
		h[n++] = 0x82;
		h[n++] = (uint8_t)(len >> 8);
		h[n++] = (uint8_t)len;
	} else if (len < 0x1000000) {
		h[n++] = 0x83;
		h[n++] = (uint8_t)(len >> 16);
		h[n++] = (uint8_t)(len >> 8);
		h[n++] = (uint8_t)len;
	} else {
		b->err = CAPF_ERANGE;
		return;
	}
	ca_der_put(b, h, n);
}

/* tag { inner }, consuming inner. */
void ca_der_wrap(struct ca_der *b, uint8_t tag, struct ca_der *inner)
{
	if (inner->err && !b->err)
		b->err = inner->err;
	ca_der_head(b, tag, inner->len);
	ca_der_put(b, inner->p, inner->len);
	free(inner->p);
	memset(inner, 0, sizeof(*inner));
}

/* An INTEGER of big-endian magnitude bytes (leading zeros dropped, a 0x00
 * added when the top bit is set, so the value is positive). */
void ca_der_uint(struct ca_der *b, const uint8_t *mag, size_t len)
{
	static const uint8_t zero = 0;

	while (len > 1 && mag[0] == 0) {
		mag++;
		len--;
	}
	if (len == 0) {
		ca_der_head(b, 0x02, 1);
		ca_der_put(b, &zero, 1);
		return;
	}
	ca_der_head(b, 0x02, len + (mag[0] & 0x80 ? 1 : 0));
	if (mag[0] & 0x80)
		ca_der_put(b, &zero, 1);
	ca_der_put(b, mag, len);
}

void ca_der_u64(struct ca_der *b, uint64_t v)
{
	uint8_t mag[8];
	int i;

	for (i = 7; i >= 0; i--) {
		mag[i] = (uint8_t)v;
		v >>= 8;
	}
	ca_der_uint(b, mag, sizeof(mag));
}

/* Time (RFC 5280 5.1.2.4): UTCTime through 2049, GeneralizedTime after. */
void ca_der_time(struct ca_der *b, time_t t)
{
	struct tm tm;
	char s[20];
	int n;

	if (gmtime_r(&t, &tm) == NULL) {
		b->err = CAPF_EINVAL;
		return;
	}
	if (tm.tm_year + 1900 < 2050 && tm.tm_year + 1900 >= 1950) {
		n = snprintf(s, sizeof(s), "%02d%02d%02d%02d%02d%02dZ", tm.tm_year % 100,
			     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		ca_der_head(b, 0x17, (size_t)n);
	} else {
		n = snprintf(s, sizeof(s), "%04d%02d%02d%02d%02d%02dZ", tm.tm_year + 1900,
			     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		ca_der_head(b, 0x18, (size_t)n);
	}
	ca_der_put(b, s, (size_t)n);
}

/* AlgorithmIdentifier of a signature algorithm capf signs with. */
int ca_der_sigalg(struct ca_der *b, gnutls_sign_algorithm_t algo)
{
	static const uint8_t ecdsa_sha256[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48,
					       0xce, 0x3d, 0x04, 0x03, 0x02};
	static const uint8_t ecdsa_sha384[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48,
					       0xce, 0x3d, 0x04, 0x03, 0x03};
	static const uint8_t ecdsa_sha512[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48,
					       0xce, 0x3d, 0x04, 0x03, 0x04};
	static const uint8_t rsa_sha256[] = {0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
					     0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00};
	static const uint8_t rsa_sha384[] = {0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
					     0xf7, 0x0d, 0x01, 0x01, 0x0c, 0x05, 0x00};
	static const uint8_t rsa_sha512[] = {0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
					     0xf7, 0x0d, 0x01, 0x01, 0x0d, 0x05, 0x00};

	switch (algo) {
	case GNUTLS_SIGN_ECDSA_SHA256:
		ca_der_put(b, ecdsa_sha256, sizeof(ecdsa_sha256));
		return 0;
	case GNUTLS_SIGN_ECDSA_SHA384:
		ca_der_put(b, ecdsa_sha384, sizeof(ecdsa_sha384));
		return 0;
	case GNUTLS_SIGN_ECDSA_SHA512:
		ca_der_put(b, ecdsa_sha512, sizeof(ecdsa_sha512));
		return 0;
	case GNUTLS_SIGN_RSA_SHA256:
		ca_der_put(b, rsa_sha256, sizeof(rsa_sha256));
		return 0;
	case GNUTLS_SIGN_RSA_SHA384:
		ca_der_put(b, rsa_sha384, sizeof(rsa_sha384));
		return 0;
	case GNUTLS_SIGN_RSA_SHA512:
		ca_der_put(b, rsa_sha512, sizeof(rsa_sha512));
		return 0;
	default:
		return CAPF_ENOTSUP;
	}
}

