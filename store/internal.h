/*
 * store/ internals shared by store.c and log.c (and the store tests and
 * fuzz target). The file format is described in doc/store-format.md.
 */
#ifndef CAPF_STORE_INTERNAL_H
#define CAPF_STORE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define STORE_LOG_NAME "records.log"
#define STORE_LOCK_NAME "lock"
#define STORE_LOG_MAGIC "CAPFSTOR"
#define STORE_LOG_MAGIC_LEN 8u
#define STORE_LOG_VERSION 1u
#define STORE_LOG_HEADER_LEN 16u   /* magic, u32 BE version, u32 BE flags */
#define STORE_ENTRY_HEADER_LEN 8u  /* u32 BE payload length, u32 BE CRC32C */
#define STORE_ENTRY_MAX (16u * 1024u * 1024u)

/* store_be32_get()/store_be32_put() - big-endian u32 access. */
static inline uint32_t store_be32_get(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline void store_be32_put(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* store_log_header_encode() - the 16-byte header of a fresh log. */
void store_log_header_encode(uint8_t out[STORE_LOG_HEADER_LEN]);

/* store_entry_header_encode() - the 8-byte header of an entry whose
 * payload is the len bytes at payload. */
void store_entry_header_encode(uint8_t out[STORE_ENTRY_HEADER_LEN], const uint8_t *payload,
			       uint32_t len);

/*
 * store_txn_valid() - 1 if txn is a txn the writer could have written: at
 * least one record, each with a body whose key (device name, certificate
 * serial) is not empty; else 0.
 */
int store_txn_valid(const Capf__StoreTxn *txn);

/* Called by store_log_scan() for each good entry, in log order. The txn is
 * freed after the call. A negative return stops the scan with that code. */
typedef int (*store_scan_cb)(const Capf__StoreTxn *txn, void *arg);

struct store_scan_result {
	size_t valid_len;   /* header plus every good entry before the first bad one */
	size_t entries;     /* good entries (those passed to on_txn) */
	int torn;           /* 1: the bytes from valid_len to the end are a torn tail */
	size_t bad_off;     /* offset of the first bad entry (or 0 for a bad header) */
	const char *reason; /* why the header or the entry at bad_off is bad (static) */
	uint32_t version;   /* format version read from the header */
};

/*
 * store_log_scan() - check a whole log held in memory and hand each good
 * entry to on_txn (may be NULL). Pure: no I/O, no global state.
 *
 * An entry is good when its length is 1..STORE_ENTRY_MAX, it lies inside
 * the buffer, its CRC32C matches and its payload unpacks to a txn that
 * store_txn_valid() accepts. The first entry that is not good ends the
 * scan: if no good entry starts anywhere after it, it and everything after
 * it are a torn tail (res->torn = 1; a crash stopped the last write);
 * otherwise the log is damaged in the middle.
 *
 * Returns 0 (res->valid_len bytes are good; an empty buffer gives
 * valid_len 0), CAPF_ECORRUPT (bad header, or damage in the middle at
 * res->bad_off; res->reason says what), CAPF_ENOMEM, or what on_txn
 * returned.
 */
int store_log_scan(const uint8_t *buf, size_t len, store_scan_cb on_txn, void *arg,
		   struct store_scan_result *res);

#endif /* CAPF_STORE_INTERNAL_H */
