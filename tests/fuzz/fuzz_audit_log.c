/*
 * Fuzz target: reading an audit log (audit.log) as capfd's start, capfctl
 * audit verify and audit show do: the framing scan, the entry check and
 * the hash-chain link of every good entry. Besides not crashing or
 * leaking, the check must agree with protobuf-c (an accepted entry
 * unpacks, with the sequence number the link reports), and an entry
 * encoded again from what was read must link as intact after the entry
 * before it.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_entry(const uint8_t *p, size_t len, size_t off, void *arg)
{
	struct store_audit_chain *chain = arg, before = *chain, again;
	struct store_audit_event ev = { 0 };
	Capf__AuditEntry *e = NULL;
	uint8_t *entry = NULL, hash[STORE_HASH_LEN];
	size_t elen = 0;
	int link;

	link = store_audit_link(p, len, off, chain, &e);
	if (link == CAPF_ENOMEM || link == CAPF_ECRYPTO)
		return 0;
	if (link < 0 || !e || e->seq != chain->seq || e->hash.len != STORE_HASH_LEN ||
	    memcmp(e->hash.data, chain->hash, STORE_HASH_LEN) != 0)
		abort();
	if (store_audit_link_text(link) == NULL)
		abort();

	/* Written again after the entry before it, it links as intact. */
	ev.kind = e->kind;
	ev.device = e->device;
	ev.peer = e->peer;
	ev.serial = e->serial.data;
	ev.serial_len = e->serial.len;
	ev.code = (int)(e->code & 0x7fffffff);
	ev.detail = e->detail;
	if (store_audit_encode(&ev, before.seq + 1, e->time, before.hash, &entry, &elen, hash) == 0) {
		const char *reason;

		again = before;
		if (store_check_audit_payload(entry, elen, NULL, &reason) != 0)
			abort();
		link = store_audit_link(entry, elen, 0, &again, NULL);
		if (link != STORE_AUDIT_LINK_OK && link != CAPF_ENOMEM)
			abort();
		if (link == STORE_AUDIT_LINK_OK && memcmp(again.hash, hash, STORE_HASH_LEN) != 0)
			abort();
	}
	free(entry);
	capf__audit_entry__free_unpacked(e, NULL);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_audit_chain chain = { 0 };
	struct store_scan_result res;
	int ret;

	ret = store_scan(data, size, STORE_FILE_AUDIT, store_check_audit_payload, NULL, on_entry,
			 &chain, &res);
	if (ret == CAPF_ENOMEM)
		return 0;
	if (ret == CAPF_ECORRUPT) {
		if (!res.reason || (res.bad_off != 0 && res.bad_off >= size))
			abort();
		return 0;
	}
	if (ret != 0 || res.valid_len > size || (size > 0 && res.valid_len < res.header_len))
		abort();
	return 0;
}
