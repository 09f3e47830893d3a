/*
 * Frame codec: a u32 big-endian payload length, then the payload.
 *
 * The decoder is a sans-I/O state machine: the caller feeds it whatever
 * bytes the transport produced and gets back complete payloads. The length
 * is checked against the decoder's maximum before a single byte is
 * allocated, so a peer cannot make us reserve memory by announcing a large
 * frame.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

/*
 * A buffer larger than this is released once its frame has been handed
 * out, so that an idle connection which once received a big frame does not
 * keep the memory.
 */
#define FRAME_BUF_KEEP (64u * 1024u)

void frame_decoder_init(struct frame_decoder *d, size_t max)
{
	memset(d, 0, sizeof(*d));
	if (max == 0)
		max = FRAME_MAX_DEFAULT;
	if (max > FRAME_MAX_LIMIT)
		max = FRAME_MAX_LIMIT;
	d->max = max;
}

void frame_decoder_deinit(struct frame_decoder *d)
{
	if (!d)
		return;
	free(d->buf);
	d->buf = NULL;
	d->cap = 0;
	d->have = 0;
	d->need = 0;
	d->hdr_have = 0;
}

/* Forget the frame just delivered; the buffer stays for reuse. */
static void frame_reset(struct frame_decoder *d)
{
	d->hdr_have = 0;
	d->need = 0;
	d->have = 0;
}

static ssize_t frame_fail(struct frame_decoder *d, int err)
{
	d->error = err;
	return err;
}

ssize_t frame_decode(struct frame_decoder *d, const uint8_t *in, size_t len,
		     const uint8_t **payload, size_t *payload_len)
{
	size_t used = 0, take;
	uint32_t n;

	if (payload)
		*payload = NULL;
	if (payload_len)
		*payload_len = 0;
	if (!d || !payload || !payload_len || (!in && len > 0))
		return CAPF_EINVAL;
	if (d->error)
		return d->error;

	/*
	 * At a frame boundary the payload handed out by the previous call is
	 * no longer valid, so an oversized buffer can be dropped now.
	 */
	if (d->need == 0 && d->cap > FRAME_BUF_KEEP) {
		free(d->buf);
		d->buf = NULL;
		d->cap = 0;
	}

	while (d->hdr_have < FRAME_HEADER_LEN && used < len)
		d->hdr[d->hdr_have++] = in[used++];
	if (d->hdr_have < FRAME_HEADER_LEN)
		return (ssize_t)used;

	if (d->need == 0) {
		n = (uint32_t)d->hdr[0] << 24 | (uint32_t)d->hdr[1] << 16 |
		    (uint32_t)d->hdr[2] << 8 | (uint32_t)d->hdr[3];
		if (n == 0)
			return frame_fail(d, CAPF_EFRAME_EMPTY);
		if (n > d->max)
			return frame_fail(d, CAPF_EFRAME_TOO_BIG);
		d->need = n;
	}

	/* The whole payload is in the input: hand it out without copying. */
	if (d->have == 0 && len - used >= d->need) {
		*payload = in + used;
		*payload_len = d->need;
		used += d->need;
		frame_reset(d);
		return (ssize_t)used;
	}

	if (used == len)
		return (ssize_t)used;

	if (d->have == 0 && d->cap < d->need) {
		/* Nothing collected yet, so a fresh buffer loses nothing. */
		free(d->buf);
		d->cap = 0;
		d->buf = malloc(d->need);
		if (!d->buf)
			return frame_fail(d, CAPF_ENOMEM);
		d->cap = d->need;
	}

	take = d->need - d->have;
	if (take > len - used)
		take = len - used;
	memcpy(d->buf + d->have, in + used, take);
	d->have += take;
	used += take;

	if (d->have == d->need) {
		*payload = d->buf;
		*payload_len = d->need;
		frame_reset(d);
	}
	return (ssize_t)used;
}

size_t frame_decoder_pending(const struct frame_decoder *d)
{
	return d->hdr_have + d->have;
}

void frame_write_header(uint8_t out[FRAME_HEADER_LEN], uint32_t len)
{
	out[0] = (uint8_t)(len >> 24);
	out[1] = (uint8_t)(len >> 16);
	out[2] = (uint8_t)(len >> 8);
	out[3] = (uint8_t)len;
}
