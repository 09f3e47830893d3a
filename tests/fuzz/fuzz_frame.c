/*
 * Fuzz target: the frame decoder, fed in chunks, and the phone message
 * parser on every frame it produces.
 *
 * Input layout: byte 0 holds the number of chunk-size seeds that follow
 * minus one (bits 0-2) and whether to use a small maximum frame size of
 * 300 bytes (bit 3), so that oversized lengths are reachable with small
 * inputs. The seeds give the chunk sizes in turn (seed 0 means "all the
 * rest"). The remaining bytes are the stream.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frame_decoder d;
	const uint8_t *seeds, *stream;
	size_t nseeds, max, off = 0, len, j = 0;

	if (size < 1)
		return 0;
	nseeds = (data[0] & 0x07) + 1;
	max = (data[0] & 0x08) ? 300 : 0;
	if (size < 1 + nseeds)
		return 0;
	seeds = data + 1;
	stream = data + 1 + nseeds;
	len = size - 1 - nseeds;

	frame_decoder_init(&d, max);
	while (off < len) {
		size_t chunk = seeds[j++ % nseeds];
		size_t pos = 0;

		if (chunk == 0 || chunk > len - off)
			chunk = len - off;
		while (pos < chunk) {
			const uint8_t *payload = NULL;
			size_t plen = 0;
			ssize_t r;

			r = frame_decode(&d, stream + off + pos, chunk - pos, &payload, &plen);
			if (r < 0) {
				/* Errors are sticky. */
				if (frame_decode(&d, stream, len, &payload, &plen) != r || payload)
					abort();
				goto out;
			}
			/* Progress is guaranteed and bounded by the input. */
			if (r == 0 || (size_t)r > chunk - pos)
				abort();
			pos += (size_t)r;
			if (payload) {
				Capf__PhoneMessage *m = NULL;

				if (plen == 0 || plen > d.max)
					abort();
				if (frame_decoder_pending(&d) != 0)
					abort();
				if (phone_msg_unpack(payload, plen, &m) == 0)
					capf__phone_message__free_unpacked(m, NULL);
			}
		}
		off += chunk;
	}
out:
	frame_decoder_deinit(&d);
	return 0;
}
