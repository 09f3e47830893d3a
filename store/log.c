/*
 * The store log format: encoding of headers and the scan that replays and
 * checks a log held in memory. No I/O here, so the fuzz target can feed
 * it arbitrary bytes.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

void store_log_header_encode(uint8_t out[STORE_LOG_HEADER_LEN])
{
	memcpy(out, STORE_LOG_MAGIC, STORE_LOG_MAGIC_LEN);
	store_be32_put(out + 8, STORE_LOG_VERSION);
	store_be32_put(out + 12, 0);
}

void store_entry_header_encode(uint8_t out[STORE_ENTRY_HEADER_LEN], const uint8_t *payload,
			       uint32_t len)
{
	store_be32_put(out, len);
	store_be32_put(out + 4, crc32c(0, payload, len));
}

int store_txn_valid(const Capf__StoreTxn *txn)
{
	size_t i;

	if (!txn || txn->n_records == 0)
		return 0;
	for (i = 0; i < txn->n_records; i++) {
		const Capf__StoreRecord *r = txn->records[i];

		if (!r)
			return 0;
		switch (r->body_case) {
		case CAPF__STORE_RECORD__BODY_DEVICE:
			if (!r->device || !r->device->name || r->device->name[0] == '\0')
				return 0;
			break;
		case CAPF__STORE_RECORD__BODY_CERT:
			if (!r->cert || r->cert->serial.len == 0)
				return 0;
			break;
		default:
			return 0;
		}
	}
	return 1;
}

/*
 * An allocator that remembers whether malloc failed, so that a payload
 * that does not unpack for lack of memory is not mistaken for a damaged
 * one (which could make a good last entry look like a torn tail).
 */
static void *oom_alloc(void *data, size_t size)
{
	void *p = malloc(size);

	if (!p)
		*(int *)data = 1;
	return p;
}

static void oom_free(void *data, void *p)
{
	(void)data;
	free(p);
}

enum entry_check {
	ENTRY_GOOD,
	ENTRY_BAD,
	ENTRY_NOMEM,
};

/*
 * Checks the entry at off. When good, sets *entry_len and, if txn_out is
 * not NULL, hands over the unpacked txn (free it with the allocator in
 * *alloc). When bad, sets *reason.
 */
static enum entry_check entry_check(const uint8_t *buf, size_t len, size_t off,
				    ProtobufCAllocator *alloc, size_t *entry_len,
				    Capf__StoreTxn **txn_out, const char **reason)
{
	const uint8_t *payload;
	Capf__StoreTxn *txn = NULL;
	size_t rest = len - off;
	uint32_t plen;

	if (rest < STORE_ENTRY_HEADER_LEN) {
		*reason = "entry header runs past the end of the file";
		return ENTRY_BAD;
	}
	plen = store_be32_get(buf + off);
	if (plen == 0) {
		*reason = "entry length is zero";
		return ENTRY_BAD;
	}
	if (plen > STORE_ENTRY_MAX) {
		*reason = "entry length is over the 16 MiB maximum";
		return ENTRY_BAD;
	}
	if (plen > rest - STORE_ENTRY_HEADER_LEN) {
		*reason = "entry payload runs past the end of the file";
		return ENTRY_BAD;
	}
	payload = buf + off + STORE_ENTRY_HEADER_LEN;
	if (crc32c(0, payload, plen) != store_be32_get(buf + off + 4)) {
		*reason = "entry CRC32C does not match";
		return ENTRY_BAD;
	}
	*(int *)alloc->allocator_data = 0;
	txn = capf__store_txn__unpack(alloc, plen, payload);
	if (!txn) {
		if (*(int *)alloc->allocator_data)
			return ENTRY_NOMEM;
		*reason = "entry payload is not a StoreTxn";
		return ENTRY_BAD;
	}
	if (!store_txn_valid(txn)) {
		capf__store_txn__free_unpacked(txn, alloc);
		*reason = "entry payload is not a valid StoreTxn";
		return ENTRY_BAD;
	}
	*entry_len = STORE_ENTRY_HEADER_LEN + (size_t)plen;
	if (txn_out)
		*txn_out = txn;
	else
		capf__store_txn__free_unpacked(txn, alloc);
	return ENTRY_GOOD;
}

/*
 * Looks for a good entry starting anywhere after bad_off. A crash can only
 * damage the end of the log, where the last group was being written, so a
 * good entry after a bad one means the damage is in the middle. Trying
 * every offset costs little: the region after a real torn tail is short,
 * and in damaged data most offsets fail the length check at once.
 */
static int good_entry_after(const uint8_t *buf, size_t len, size_t bad_off,
			    ProtobufCAllocator *alloc)
{
	size_t off, entry_len;
	const char *reason;

	for (off = bad_off + 1; off + STORE_ENTRY_HEADER_LEN < len; off++) {
		enum entry_check c = entry_check(buf, len, off, alloc, &entry_len, NULL, &reason);

		if (c == ENTRY_GOOD)
			return 1;
		if (c == ENTRY_NOMEM)
			return CAPF_ENOMEM;
	}
	return 0;
}

int store_log_scan(const uint8_t *buf, size_t len, store_scan_cb on_txn, void *arg,
		   struct store_scan_result *res)
{
	int oom = 0;
	ProtobufCAllocator alloc = {
		.alloc = oom_alloc,
		.free = oom_free,
		.allocator_data = &oom,
	};
	Capf__StoreTxn *txn = NULL;
	size_t off, entry_len = 0;
	int ret = 0;

	memset(res, 0, sizeof(*res));
	if (len == 0)
		goto out;
	if (len < STORE_LOG_HEADER_LEN) {
		res->reason = "file is shorter than the log header";
		ret = CAPF_ECORRUPT;
		goto out;
	}
	if (memcmp(buf, STORE_LOG_MAGIC, STORE_LOG_MAGIC_LEN) != 0) {
		res->reason = "bad magic: not a capf store log";
		ret = CAPF_ECORRUPT;
		goto out;
	}
	res->version = store_be32_get(buf + 8);
	if (res->version != STORE_LOG_VERSION) {
		res->reason = "unsupported log format version";
		ret = CAPF_ECORRUPT;
		goto out;
	}
	if (store_be32_get(buf + 12) != 0) {
		res->reason = "unknown flags in the log header";
		ret = CAPF_ECORRUPT;
		goto out;
	}

	off = STORE_LOG_HEADER_LEN;
	while (off < len) {
		const char *reason = NULL;
		enum entry_check c = entry_check(buf, len, off, &alloc, &entry_len, &txn, &reason);

		if (c == ENTRY_NOMEM) {
			ret = CAPF_ENOMEM;
			goto out;
		}
		if (c == ENTRY_BAD) {
			int after = good_entry_after(buf, len, off, &alloc);

			res->bad_off = off;
			res->reason = reason;
			if (after < 0) {
				ret = after;
			} else if (after) {
				ret = CAPF_ECORRUPT;
			} else {
				res->torn = 1;
			}
			break;
		}
		if (on_txn) {
			ret = on_txn(txn, arg);
			if (ret < 0)
				goto out;
			ret = 0;
		}
		capf__store_txn__free_unpacked(txn, &alloc);
		txn = NULL;
		res->entries++;
		off += entry_len;
	}
	res->valid_len = off;
out:
	if (txn)
		capf__store_txn__free_unpacked(txn, &alloc);
	return ret;
}
