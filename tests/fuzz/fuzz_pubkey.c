/*
 * Fuzz target: a phone's bare public key (SubjectPublicKeyInfo DER), as
 * ca_pubkey_parse() takes it before issuance. What it accepts must be of
 * a supported type, and its SHA-256 must be that of the very bytes given
 * (the parser accepts only the canonical encoding).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "ca/ca.h"
#include "proto/capf.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ca_pubkey *key = NULL;
	uint8_t got[32], want[32];
	int type;

	if (ca_pubkey_parse(data, size, &key) != 0)
		return 0;
	type = ca_pubkey_type(key);
	if (type < CAPF__KEY_TYPE__KEY_EC_P256 || type > CAPF__KEY_TYPE__KEY_EC_P521)
		abort();
	ca_pubkey_sha256(key, got);
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, data, size, want) < 0 ||
	    memcmp(got, want, sizeof(got)) != 0)
		abort();
	ca_pubkey_free(key);
	return 0;
}
