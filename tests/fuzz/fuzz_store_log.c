/*
 * Fuzz target: the scan that store_open() runs on whatever is in a segment
 * (log.<seq>) or a snapshot (snapshot.<seq>), chosen by the file's magic.
 * Besides not crashing or leaking, the scan must keep its own promises,
 * checked here:
 *   - the good prefix it reports scans again as good and whole, with the
 *     same entries;
 *   - every payload it accepts unpacks with protobuf-c too, to the same
 *     records with the same keys, so that the index built from the raw
 *     bytes never holds a record that a read cannot unpack.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct walk {
	const Capf__StoreTxn *txn; /* protobuf-c's view of the same payload */
	size_t i;
	size_t records;
};

/* Each record of the raw walk must be the record protobuf-c sees. */
static int check_rec(const struct store_rec_view *v, void *arg)
{
	struct walk *w = arg;
	const Capf__StoreRecord *r;

	if (!w->txn || w->i >= w->txn->n_records)
		abort();
	r = w->txn->records[w->i++];
	if (v->kind == STORE_REC_DEVICE) {
		Capf__Device *d;

		if (r->body_case != CAPF__STORE_RECORD__BODY_DEVICE ||
		    strlen(r->device->name) != v->key_len ||
		    memcmp(r->device->name, v->key, v->key_len) != 0)
			abort();
		if (v->revision != r->device->revision || v->device_len != 0)
			abort();
		d = capf__device__unpack(NULL, v->val_len, v->val);
		if (d) {
			if (strcmp(d->name, r->device->name) != 0 || d->revision != v->revision)
				abort();
			capf__device__free_unpacked(d, NULL);
		}
	} else {
		Capf__Certificate *c;

		if (r->body_case != CAPF__STORE_RECORD__BODY_CERT ||
		    r->cert->serial.len != v->key_len ||
		    memcmp(r->cert->serial.data, v->key, v->key_len) != 0)
			abort();
		/* The walker's revision and device are what protobuf-c reads. */
		if (v->revision != r->cert->revision ||
		    strlen(r->cert->device) != v->device_len ||
		    (v->device_len && memcmp(r->cert->device, v->device, v->device_len) != 0))
			abort();
		c = capf__certificate__unpack(NULL, v->val_len, v->val);
		if (c)
			capf__certificate__free_unpacked(c, NULL);
	}
	if (!!r->create_only != v->create_only || !!r->must_exist != v->must_exist ||
	    !!r->check_revision != v->check_revision || r->expect_revision != v->expect_revision)
		abort();
	w->records++;
	return 0;
}

static int walk_entry(const uint8_t *p, size_t len, size_t off, void *arg)
{
	size_t *records = arg;
	struct store_txn_meta meta;
	Capf__StoreSnapshotInfo *si = NULL;
	struct walk w = { NULL, 0, 0 };
	Capf__StoreTxn *txn;
	int ret;

	(void)off;
	if (len > 0 && p[0] == 0x08) {
		/* A snapshot's information entry. */
		ret = store_snap_info_parse(p, len, &si);
		if (ret == 1)
			capf__store_snapshot_info__free_unpacked(si, NULL);
		else if (ret == 0)
			abort();
		return 0;
	}
	txn = capf__store_txn__unpack(NULL, len, p);
	if (!txn)
		return 0; /* out of memory: nothing to compare */
	w.txn = txn;
	ret = store_txn_parse(p, len, &meta, check_rec, &w);
	if (ret != 0 || w.i != txn->n_records || meta.n_records != txn->n_records)
		abort();
	if ((meta.anchor.seq != 0) != (txn->audit != NULL))
		abort();
	*records += w.records;
	capf__store_txn__free_unpacked(txn, NULL);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_scan_result res, again;
	size_t records = 0, records_again = 0;
	bool snap = size >= STORE_MAGIC_LEN && memcmp(data, STORE_SNAP_MAGIC, STORE_MAGIC_LEN) == 0;
	enum store_file_kind kind = snap ? STORE_FILE_SNAPSHOT : STORE_FILE_SEGMENT;
	store_payload_check_fn check = snap ? store_check_snap_payload : store_check_txn_payload;
	int ret;

	ret = store_scan(data, size, kind, check, NULL, walk_entry, &records, &res);
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
	if (res.valid_len < res.header_len || res.torn != (res.valid_len < size))
		abort();

	ret = store_scan(data, res.valid_len, kind, check, NULL, walk_entry, &records_again,
			 &again);
	if (ret == CAPF_ENOMEM)
		return 0;
	if (ret != 0 || again.torn || again.valid_len != res.valid_len ||
	    again.entries != res.entries || records_again != records)
		abort();
	return 0;
}
