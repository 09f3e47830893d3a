/*
 * Fuzz target: a phone's PKCS#10 request. The input is the DER as it
 * arrives in CsrSubmit; whatever parses is then checked under every key
 * policy against a fixed binding (the corpus requests are bound to it:
 * bytes 0x00, 0x01, ..., 0x1f), so the signature, challengePassword and
 * key checks all see hostile data.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "ca/ca.h"
#include "proto/capf.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int key_types[] = {
	    CAPF__KEY_TYPE__KEY_UNSPECIFIED, CAPF__KEY_TYPE__KEY_EC_P256,
	    CAPF__KEY_TYPE__KEY_EC_P384,     CAPF__KEY_TYPE__KEY_RSA_2048,
	    CAPF__KEY_TYPE__KEY_RSA_3072,    CAPF__KEY_TYPE__KEY_RSA_4096,
	};
	uint8_t binding[CA_BINDING_LEN];
	struct ca_csr *csr = NULL;
	size_t i;

	for (i = 0; i < sizeof(binding); i++)
		binding[i] = (uint8_t)i;
	if (ca_csr_parse(data, size, &csr) != 0)
		return 0;
	for (i = 0; i < sizeof(key_types) / sizeof(key_types[0]); i++)
		(void)ca_csr_check(csr, binding, sizeof(binding), key_types[i]);
	ca_csr_free(csr);
	return 0;
}
