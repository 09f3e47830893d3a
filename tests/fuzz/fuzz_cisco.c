/*
 * Fuzz target: a Cisco CAPF v3 message from a phone, through the message
 * and element parser (proto/cisco.c), every element reader, a rebuild of
 * what was read (which must parse to the same elements), and the Cisco
 * codec's decoding into a core event (capf/codec_cisco.c; without a CA,
 * so a certificate is parsed and its signature checked but trusted by
 * nothing). The session id the codec expects is the message's own, so
 * that the input reaches past that check.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "capf/codec.h"
#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_all(const struct cisco_msg *m)
{
	char s[512];
	const uint8_t *der;
	size_t len;
	unsigned v;

	for (unsigned t = 0; t < CISCO_MAX_TAG; t++) {
		(void)cisco_el_u8(m, t, &v);
		(void)cisco_el_u16(m, t, &v);
		(void)cisco_el_string(m, t, s, sizeof(s));
		(void)cisco_el_certificate(m, t, &der, &len);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cisco_builder b;
	struct cisco_msg m, again;
	struct codec_cisco *n = NULL;
	struct core_event ev;
	const uint8_t *out;
	size_t out_len;
	ssize_t whole;

	whole = cisco_msg_length(data, size);
	if (cisco_msg_parse(data, size, &m) == 0) {
		read_all(&m);
		/* What was read, written again, reads back the same. */
		cisco_builder_init(&b, m.command, m.session_id);
		for (unsigned t = 0; t < CISCO_MAX_TAG; t++)
			if (m.el[t].data != NULL)
				cisco_put(&b, t, m.el[t].data, m.el[t].len);
		if (cisco_finish(&b, &out, &out_len) == 0) {
			if (cisco_msg_parse(out, out_len, &again) != 0)
				abort();
			for (unsigned t = 0; t < CISCO_MAX_TAG; t++)
				if (again.el[t].len != m.el[t].len ||
				    (m.el[t].len > 0 &&
				     memcmp(again.el[t].data, m.el[t].data, m.el[t].len) != 0))
					abort();
		}
		if (whole > 0 && (size_t)whole != size)
			abort();
	}
	if (codec_cisco_new(&n, NULL, 4) == 0) {
		if (size >= CISCO_HEADER_LEN)
			codec_cisco_set_session_id(n, ((uint32_t)data[2] << 24) |
							  ((uint32_t)data[3] << 16) |
							  ((uint32_t)data[4] << 8) | data[5]);
		(void)codec_cisco_decode(n, data, size, 1800000000, &ev);
		codec_cisco_free(n);
	}
	return 0;
}
