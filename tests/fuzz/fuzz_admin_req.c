/*
 * Fuzz target: admin request parsing and validation, and the pack/unpack
 * round trip of every request that is accepted.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Capf__AdminRequest *r = NULL, *r2 = NULL;
	uint8_t *f1 = NULL, *f2 = NULL;
	size_t f1_len = 0, f2_len = 0;

	if (admin_req_unpack(data, size, &r) < 0) {
		if (r)
			abort();
		goto out;
	}
	/* An accepted request packs, and reads back as the same request. */
	if (admin_req_pack(r, &f1, &f1_len) < 0)
		abort();
	if (admin_req_unpack(f1 + FRAME_HEADER_LEN, f1_len - FRAME_HEADER_LEN, &r2) < 0)
		abort();
	if (admin_req_pack(r2, &f2, &f2_len) < 0)
		abort();
	if (f1_len != f2_len || memcmp(f1, f2, f1_len) != 0)
		abort();
out:
	free(f1);
	free(f2);
	if (r)
		capf__admin_request__free_unpacked(r, NULL);
	if (r2)
		capf__admin_request__free_unpacked(r2, NULL);
	return 0;
}
