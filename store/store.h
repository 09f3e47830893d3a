/*
 * store/ - the durable memory of capf: device and certificate records in
 * flat files of one state directory. See doc/store-format.md.
 *
 * Glossary
 *   log      store/records.log: a header, then entries, each a u32 BE
 *            length, a u32 BE CRC32C of the payload and the payload (one
 *            capf.StoreTxn protobuf).
 *   txn      records applied all or none; one log entry.
 *   writer   the one thread that appends to the log. Callers hand it txns
 *            with store_submit(); it writes every txn waiting, makes them
 *            durable with one fdatasync (group commit), applies them to the
 *            in-memory index, then runs each txn's callback.
 *   index    hash tables (uthash) of device name -> record and certificate
 *            serial -> record, rebuilt from the log at open.
 *
 * Reads are thread-safe and return copies that the caller owns. A read
 * sees every txn whose callback has run.
 */
#ifndef CAPF_STORE_STORE_H
#define CAPF_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

struct store;

struct store_stats {
	uint64_t devices;
	uint64_t certificates;
	uint64_t txns_written;
	uint64_t syncs;           /* fdatasync calls: txns_written / syncs is the group size */
	uint64_t torn_bytes_dropped;
};

/*
 * Callback run on the writer thread when a txn is durable and applied
 * (result 0) or failed (CAPF_EEXIST / CAPF_ENOENT for a failed
 * precondition, CAPF_EIO / CAPF_ENOSPC for a write fault: nothing of the
 * txn is applied). Must not block; typically it wakes a loop.
 */
typedef void (*store_done_cb)(int result, void *arg);

/*
 * store_open() - lock dir (creating it mode 0700 if absent), load the log
 * and start the writer. Returns 0 and *out (close with store_close()), or
 * CAPF_ELOCKED (another process holds the directory), CAPF_ECORRUPT (a
 * damaged entry before the tail: see store_last_error() for file and
 * offset), CAPF_EIO, CAPF_ENOMEM. A torn tail is dropped and reported in
 * store_stats.torn_bytes_dropped.
 */
int store_open(struct store **out, const char *dir);

/* store_last_error() - text of the last store_open() failure in this
 * thread, naming the file and offset where it applies. */
const char *store_last_error(void);

/*
 * store_close() - finish every submitted txn (its callback runs), stop the
 * writer, unlock. Accepts NULL.
 */
void store_close(struct store *st);

/*
 * store_submit() - queue a txn of n records for the writer. The records are
 * packed before return, so the caller may free them at once. cb (may be
 * NULL) runs later on the writer thread. Returns 0 if queued, or
 * CAPF_EINVAL (n == 0, a record with no body), CAPF_ENOMEM,
 * CAPF_ESHUTDOWN (store closing); then cb is not called.
 */
int store_submit(struct store *st, Capf__StoreRecord *const *recs, size_t n, store_done_cb cb,
		 void *arg);

/*
 * store_submit_wait() - store_submit() and wait for the result. For tools
 * and tests; never call it on an event loop.
 */
int store_submit_wait(struct store *st, Capf__StoreRecord *const *recs, size_t n);

/* store_device_get() - copy of the device record, or CAPF_ENOENT. Free with
 * capf__device__free_unpacked(*out, NULL). */
int store_device_get(struct store *st, const char *name, Capf__Device **out);

/* store_cert_get() - copy of a certificate record by serial, or CAPF_ENOENT.
 * Free with capf__certificate__free_unpacked(*out, NULL). */
int store_cert_get(struct store *st, const uint8_t *serial, size_t serial_len,
		   Capf__Certificate **out);

/*
 * store_device_list() - copies of all device records, sorted by name.
 * Free with store_device_list_free(). Returns 0 or CAPF_ENOMEM.
 */
int store_device_list(struct store *st, Capf__Device ***out, size_t *n);
void store_device_list_free(Capf__Device **list, size_t n);

/* store_get_stats() - counters, a consistent snapshot. */
void store_get_stats(struct store *st, struct store_stats *out);

/*
 * store_set_fault() - test seam: make every following write fail with err
 * (a negative capf code such as CAPF_ENOSPC), or succeed again with 0.
 */
void store_set_fault(struct store *st, int err);

/* crc32c() - CRC-32C (Castagnoli) of buf, continuing from crc (0 to start). */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

#endif /* CAPF_STORE_STORE_H */
