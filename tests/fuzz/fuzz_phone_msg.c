/*
 * Fuzz target: phone message parsing and validation, and the pack/unpack
 * round trip of every message that is accepted.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Capf__PhoneMessage *m = NULL, *m2 = NULL;
	uint8_t *f1 = NULL, *f2 = NULL;
	size_t f1_len = 0, f2_len = 0;

	if (phone_msg_unpack(data, size, &m) < 0) {
		if (m)
			abort();
		goto out;
	}
	/* An accepted message packs, and reads back as the same message. */
	if (phone_msg_pack(m, &f1, &f1_len) < 0)
		abort();
	if (phone_msg_unpack(f1 + FRAME_HEADER_LEN, f1_len - FRAME_HEADER_LEN, &m2) < 0)
		abort();
	if (phone_msg_pack(m2, &f2, &f2_len) < 0)
		abort();
	if (f1_len != f2_len || memcmp(f1, f2, f1_len) != 0)
		abort();
	if (strcmp(phone_msg_name(m), phone_msg_name(m2)) != 0)
		abort();
out:
	free(f1);
	free(f2);
	if (m)
		capf__phone_message__free_unpacked(m, NULL);
	if (m2)
		capf__phone_message__free_unpacked(m2, NULL);
	return 0;
}
