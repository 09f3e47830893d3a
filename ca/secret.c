/*
 * ca/secret.c - authentication strings: only a salted PBKDF2-HMAC-SHA256
 * hash of one is ever kept, and a string offered is compared with it in
 * time that does not depend on where they differ.
 */
#include "config.h"

#include <gnutls/crypto.h>
#include <string.h>

#include "ca/internal.h"

int ca_secret_hash(const uint8_t *secret, size_t len, const uint8_t *salt, size_t salt_len,
		   unsigned iterations, uint8_t out[CA_SECRET_HASH_LEN])
{
	gnutls_datum_t key = {(unsigned char *)secret, (unsigned)len};
	gnutls_datum_t s = {(unsigned char *)salt, (unsigned)salt_len};

	if (secret == NULL || salt == NULL || salt_len == 0 || iterations == 0 || out == NULL)
		return CAPF_EINVAL;
	/* PBKDF2 refuses an empty password; an empty string is a string
	 * like another, so it is hashed as one zero byte. */
	if (len == 0) {
		static const uint8_t zero = 0;
		key.data = (unsigned char *)&zero;
		key.size = 1;
	}
	if (gnutls_pbkdf2(GNUTLS_MAC_SHA256, &key, &s, iterations, out, CA_SECRET_HASH_LEN) < 0)
		return CAPF_ECRYPTO;
	return 0;
}

int ca_secret_check(const uint8_t *secret, size_t len, const uint8_t *salt, size_t salt_len,
		    unsigned iterations, const uint8_t *hash, size_t hash_len)
{
	uint8_t got[CA_SECRET_HASH_LEN];
	unsigned diff = 0;
	int ret;

	if (hash == NULL || hash_len != CA_SECRET_HASH_LEN)
		return CAPF_EINVAL;
	ret = ca_secret_hash(secret, len, salt, salt_len, iterations, got);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < CA_SECRET_HASH_LEN; i++)
		diff |= (unsigned)(got[i] ^ hash[i]);
	gnutls_memset(got, 0, sizeof(got));
	return diff == 0 ? 0 : CAPF_EAUTH;
}

int ca_secret_new(const uint8_t *secret, size_t len, unsigned iterations,
		  uint8_t salt[CA_SECRET_SALT_LEN], uint8_t hash[CA_SECRET_HASH_LEN])
{
	if (gnutls_rnd(GNUTLS_RND_NONCE, salt, CA_SECRET_SALT_LEN) < 0)
		return CAPF_ECRYPTO;
	return ca_secret_hash(secret, len, salt, CA_SECRET_SALT_LEN, iterations, hash);
}

int ca_secret_generate(char *out, size_t digits)
{
	uint8_t r[64];

	/* Digits only, as phones' keypads take them; 12 of them by default
	 * make about 40 bits, against a lockout after a handful of tries. */
	if (out == NULL || digits == 0 || digits > sizeof(r))
		return CAPF_EINVAL;
	if (gnutls_rnd(GNUTLS_RND_KEY, r, digits) < 0)
		return CAPF_ECRYPTO;
	for (size_t i = 0; i < digits; i++) {
		/* 250 is a multiple of 10: reject the rest, no bias. */
		while (r[i] >= 250) {
			if (gnutls_rnd(GNUTLS_RND_KEY, &r[i], 1) < 0)
				return CAPF_ECRYPTO;
		}
		out[i] = (char)('0' + r[i] % 10);
	}
	out[digits] = '\0';
	gnutls_memset(r, 0, sizeof(r));
	return 0;
}
