/*
 * Fuzz target: the transcript reader (tools/transcript.c), which capf-replay
 * runs over files anyone may hand it. What it accepts must hold together:
 * sessions with a known protocol and a device, messages numbered from 0
 * in order with non-decreasing times and payloads of the length they say;
 * native payloads then go through phone_msg_unpack() as a replay does.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "tools/transcript.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct transcript t = { NULL, 0 };
	char err[160];

	if (transcript_parse((const char *)data, size, &t, err, sizeof(err)) != 0) {
		/* A refusal always says where and why. */
		if (strncmp(err, "line ", 5) != 0)
			abort();
		transcript_free(&t);
		return 0;
	}
	for (size_t i = 0; i < t.n; i++) {
		const struct transcript_session *s = &t.sessions[i];

		if (strcmp(s->protocol, "native") && strcmp(s->protocol, "cisco"))
			abort();
		if (!s->device[0] || s->binding_len > sizeof(s->binding))
			abort();
		for (size_t k = 0; k < s->nmsgs; k++) {
			const struct transcript_msg *m = &s->msgs[k];
			Capf__PhoneMessage *msg = NULL;

			if (m->index != k || (k > 0 && m->t < s->msgs[k - 1].t))
				abort();
			if ((m->len == 0) != (m->payload == NULL))
				abort();
			if (!strcmp(s->protocol, "native") &&
			    phone_msg_unpack(m->payload, m->len, &msg) == 0)
				capf__phone_message__free_unpacked(msg, NULL);
		}
	}
	transcript_free(&t);
	return 0;
}
