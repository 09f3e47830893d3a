/*
 * Fuzz target: store_log_scan() on arbitrary bytes, as store_open() runs it
 * on whatever is in records.log. Besides not crashing or leaking, the scan
 * must keep its own promises, checked here: the good prefix it reports
 * scans again as good and whole, with the same entries.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "store/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads every field a replay would read. */
static int walk_txn(const Capf__StoreTxn *txn, void *arg)
{
	size_t *records = arg;
	size_t i;

	for (i = 0; i < txn->n_records; i++) {
		const Capf__StoreRecord *r = txn->records[i];

		if (r->body_case == CAPF__STORE_RECORD__BODY_DEVICE) {
			if (!r->device->name[0])
				abort();
		} else if (r->body_case == CAPF__STORE_RECORD__BODY_CERT) {
			if (r->cert->serial.len == 0 || !r->cert->device)
				abort();
		} else {
			abort();
		}
		(*records)++;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_scan_result res, again;
	size_t records = 0, records_again = 0;
	int ret;

	ret = store_log_scan(data, size, walk_txn, &records, &res);
	if (ret == CAPF_ENOMEM)
		return 0;
	if (ret == CAPF_ECORRUPT) {
		if (!res.reason || (res.bad_off != 0 && res.bad_off >= size))
			abort();
		return 0;
	}
	if (ret != 0 || res.valid_len > size)
		abort();
	if (size == 0)
		return 0;
	if (res.valid_len < STORE_LOG_HEADER_LEN || res.torn != (res.valid_len < size))
		abort();

	ret = store_log_scan(data, res.valid_len, walk_txn, &records_again, &again);
	if (ret == CAPF_ENOMEM)
		return 0;
	if (ret != 0 || again.torn || again.valid_len != res.valid_len ||
	    again.entries != res.entries || records_again != records)
		abort();
	return 0;
}
