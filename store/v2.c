/*
 * The reader of format 2 (and of the format 1 records.log): entries of a
 * length, a CRC32C of the payload and the payload, back to back. Kept only
 * to convert such a directory (recover.c) and to read old audit logs.
 *
 * Format 2 has no structure to resynchronise on: after a bad entry, every
 * following byte offset is tried, which costs time in the square of the
 * damaged length and may take payload bytes for an entry. This is why
 * format 3 exists; a directory of format 2 is converted at its first start.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

/* The entry at off: 1 good (*entry_len set), 0 bad (*reason), CAPF_ENOMEM. */
static int entry_at(const uint8_t *buf, size_t len, size_t off, store_payload_check_fn check,
		    void *check_ctx, size_t *entry_len, const char **reason)
{
	size_t rest = len - off;
	uint32_t plen;
	int ret;

	if (off > len || rest < STORE_V2_ENTRY_HEADER_LEN) {
		*reason = "entry header runs past the end of the file";
		return 0;
	}
	plen = store_be32_get(buf + off);
	if (plen == 0) {
		*reason = "entry length is zero";
		return 0;
	}
	if (plen > STORE_ENTRY_MAX) {
		*reason = "entry length is over the 16 MiB maximum";
		return 0;
	}
	if (plen > rest - STORE_V2_ENTRY_HEADER_LEN) {
		*reason = "entry payload runs past the end of the file";
		return 0;
	}
	store_crc_bytes += plen;
	if (crc32c(0, buf + off + STORE_V2_ENTRY_HEADER_LEN, plen) !=
	    store_be32_get(buf + off + 4)) {
		*reason = "entry CRC32C does not match";
		return 0;
	}
	*reason = "entry payload is not valid";
	if (check) {
		ret = check(buf + off + STORE_V2_ENTRY_HEADER_LEN, plen, check_ctx, reason);
		if (ret == CAPF_ENOMEM)
			return ret;
		if (ret < 0)
			return 0;
	}
	*entry_len = STORE_V2_ENTRY_HEADER_LEN + (size_t)plen;
	return 1;
}

static long long next_good(const uint8_t *buf, size_t len, size_t off, store_payload_check_fn check,
			   void *check_ctx)
{
	size_t pos, entry_len;
	const char *reason;

	for (pos = off + 1; pos + STORE_V2_ENTRY_HEADER_LEN < len; pos++) {
		int c = entry_at(buf, len, pos, check, check_ctx, &entry_len, &reason);

		if (c < 0)
			return c;
		if (c == 1)
			return (long long)pos;
	}
	return (long long)len;
}

int store_v2_walk(const uint8_t *buf, size_t len, const struct store_header *h,
		  store_payload_check_fn check, void *check_ctx, store_item_cb on_item, void *arg,
		  struct store_scan_result *res)
{
	size_t off = h->len, valid = h->len, last_good = h->len, elen = 0;
	bool bad = false, later = false;
	int ret = 0;

	while (off < len) {
		struct store_walk_item it = {0};
		const char *reason = NULL;
		int c = entry_at(buf, len, off, check, check_ctx, &elen, &reason);

		if (c < 0)
			return c;
		it.off = off;
		if (c == 1) {
			it.good = true;
			it.end = off + elen;
			it.payload = buf + off + STORE_V2_ENTRY_HEADER_LEN;
			it.len = elen - STORE_V2_ENTRY_HEADER_LEN;
			it.commit = true;
			last_good = it.end;
			if (bad) {
				later = true;
			} else {
				res->entries++;
				valid = it.end;
			}
		} else {
			long long next = next_good(buf, len, off, check, check_ctx);

			if (next < 0)
				return (int)next;
			it.end = (size_t)next;
			it.reason = reason;
			if (!bad) {
				bad = true;
				res->bad_off = off;
				res->reason = reason;
			}
		}
		if (on_item) {
			ret = on_item(&it, arg);
			if (ret < 0)
				return ret;
			ret = 0;
		}
		off = it.end;
	}
	res->valid_len = valid;
	res->tail_off = valid;
	if (later) {
		res->tail_off = last_good;
		return CAPF_ECORRUPT;
	}
	res->torn = valid < len;
	return 0;
}
