/*
 * The store's payloads: the StoreTxn walker and the payload checks (the
 * framing of the files is frame.c). No I/O here, so the fuzz
 * targets can feed it arbitrary bytes.
 *
 * Records are read straight from the packed bytes: the index keeps each
 * record as the packed Device or Certificate, so loading a store needs no
 * unpacking and packing again, only a check of the wire format against
 * the schema (from the protobuf-c descriptors). The check is stricter than
 * protobuf-c (no repeated singular field, at most one member of a oneof,
 * short tags), so whatever it accepts protobuf-c unpacks to the same
 * values.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

/* ---- protobuf wire format ------------------------------------------------ */

size_t store_pb_varint_put(uint8_t *out, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	return n;
}

/* A varint of at most max bytes (protobuf-c reads values up to 10). */
static int get_varint(const uint8_t **pp, const uint8_t *end, unsigned max, uint64_t *v)
{
	const uint8_t *p = *pp;
	uint64_t val = 0;
	unsigned i;

	for (i = 0; i < max && p + i < end; i++) {
		val |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			*pp = p + i + 1;
			*v = val;
			return 0;
		}
	}
	return CAPF_EBADMSG;
}

/*
 * A field's tag. protobuf-c refuses a first byte without field bits even
 * when more bytes follow; tags are kept to three bytes (field numbers up
 * to 2^18) so that no wrap-around of longer ones can alias a known field.
 */
static int get_tag(const uint8_t **pp, const uint8_t *end, uint32_t *num, unsigned *wt)
{
	uint64_t v;

	if (*pp >= end || (**pp & 0xf8) == 0)
		return CAPF_EBADMSG;
	if (get_varint(pp, end, 3, &v) < 0)
		return CAPF_EBADMSG;
	*num = (uint32_t)(v >> 3);
	*wt = (unsigned)(v & 7);
	return 0;
}

/* A length-delimited value: at most 5 length bytes, inside the buffer. */
static int get_bytes(const uint8_t **pp, const uint8_t *end, const uint8_t **data, size_t *len)
{
	uint64_t n;

	if (get_varint(pp, end, 5, &n) < 0 || n > (uint64_t)(end - *pp))
		return CAPF_EBADMSG;
	*data = *pp;
	*len = (size_t)n;
	*pp += n;
	return 0;
}

/* Skips a value of wire type wt; groups (3, 4) and 6, 7 are refused, as
 * protobuf-c does. */
static int skip_value(const uint8_t **pp, const uint8_t *end, unsigned wt)
{
	const uint8_t *d;
	uint64_t v;
	size_t n;

	switch (wt) {
	case 0:
		return get_varint(pp, end, 10, &v);
	case 1:
		if (end - *pp < 8)
			return CAPF_EBADMSG;
		*pp += 8;
		return 0;
	case 2:
		return get_bytes(pp, end, &d, &n);
	case 5:
		if (end - *pp < 4)
			return CAPF_EBADMSG;
		*pp += 4;
		return 0;
	default:
		return CAPF_EBADMSG;
	}
}

static unsigned wire_type_of(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_FLOAT:
		return 5;
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 1;
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_BYTES:
	case PROTOBUF_C_TYPE_MESSAGE:
		return 2;
	default:
		return 0;
	}
}

/* The values of a packed repeated field of wire type wt. */
static int check_packed(const uint8_t *p, size_t len, unsigned wt)
{
	const uint8_t *end = p + len;

	while (p < end) {
		if (skip_value(&p, end, wt) < 0)
			return CAPF_EBADMSG;
	}
	return 0;
}

#define PB_DEPTH_MAX 8

static int pb_check_depth(const ProtobufCMessageDescriptor *desc, const uint8_t *p, size_t len,
			  unsigned depth)
{
	const uint8_t *end = p + len;
	uint64_t seen = 0;
	unsigned oneofs[8];
	size_t n_oneofs = 0;

	if (depth > PB_DEPTH_MAX || desc->n_fields > 64)
		return CAPF_EBADMSG;
	while (p < end) {
		const ProtobufCFieldDescriptor *f;
		uint32_t num;
		unsigned wt, want;
		size_t idx, i;

		if (get_tag(&p, end, &num, &wt) < 0)
			return CAPF_EBADMSG;
		f = protobuf_c_message_descriptor_get_field(desc, (unsigned)num);
		if (!f) {
			if (skip_value(&p, end, wt) < 0)
				return CAPF_EBADMSG;
			continue;
		}
		idx = (size_t)(f - desc->fields);
		want = wire_type_of(f->type);
		if (f->label == PROTOBUF_C_LABEL_REPEATED && wt == 2 && want != 2) {
			const uint8_t *d;
			size_t n;

			if (get_bytes(&p, end, &d, &n) < 0 || check_packed(d, n, want) < 0)
				return CAPF_EBADMSG;
			continue;
		}
		if (wt != want)
			return CAPF_EBADMSG;
		if (f->label != PROTOBUF_C_LABEL_REPEATED) {
			if (seen & ((uint64_t)1 << idx))
				return CAPF_EBADMSG;
			seen |= (uint64_t)1 << idx;
			if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
				for (i = 0; i < n_oneofs; i++)
					if (oneofs[i] == f->quantifier_offset)
						return CAPF_EBADMSG;
				if (n_oneofs == sizeof(oneofs) / sizeof(oneofs[0]))
					return CAPF_EBADMSG;
				oneofs[n_oneofs++] = f->quantifier_offset;
			}
		}
		if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
			const uint8_t *d;
			size_t n;

			if (get_bytes(&p, end, &d, &n) < 0 ||
			    pb_check_depth(f->descriptor, d, n, depth + 1) < 0)
				return CAPF_EBADMSG;
			continue;
		}
		if (skip_value(&p, end, wt) < 0)
			return CAPF_EBADMSG;
	}
	return 0;
}

int store_pb_check(const ProtobufCMessageDescriptor *desc, const uint8_t *p, size_t len)
{
	if (!desc || (!p && len > 0))
		return CAPF_EBADMSG;
	return pb_check_depth(desc, p, len, 0);
}

/*
 * What the store needs from a checked Device or Certificate body: field 1
 * (a device's name or a certificate's serial; absent gives length 0), its
 * revision (Device field 11, Certificate field 10; absent is 0) and, for a
 * certificate, the device it belongs to (field 2). The schema check has
 * already refused a repeated singular field and a wrong wire type, so the
 * first occurrence is the only one and protobuf-c reads the same values.
 */
static void body_view(const uint8_t *p, size_t len, struct store_rec_view *v)
{
	const uint8_t *end = p + len;
	uint32_t rev_field = v->kind == STORE_REC_DEVICE ? 11u : 10u;

	v->key = p;
	v->key_len = 0;
	v->device = NULL;
	v->device_len = 0;
	v->revision = 0;
	while (p < end) {
		uint32_t num;
		unsigned wt;

		if (get_tag(&p, end, &num, &wt) < 0)
			return;
		if (num == 1 && wt == 2) {
			if (get_bytes(&p, end, &v->key, &v->key_len) < 0)
				return;
		} else if (num == 2 && wt == 2 && v->kind == STORE_REC_CERT) {
			if (get_bytes(&p, end, &v->device, &v->device_len) < 0)
				return;
		} else if (num == rev_field && wt == 0) {
			if (get_varint(&p, end, 10, &v->revision) < 0)
				return;
		} else if (skip_value(&p, end, wt) < 0) {
			return;
		}
	}
}

/* Reads one checked StoreRecord into a view; CAPF_EBADMSG if it breaks a
 * store rule (no body, empty key, a NUL in a device name). */
static int record_view(const uint8_t *p, size_t len, struct store_rec_view *v)
{
	const uint8_t *end = p + len;
	int bodies = 0;

	memset(v, 0, sizeof(*v));
	while (p < end) {
		const uint8_t *d;
		uint32_t num;
		unsigned wt;
		uint64_t x;
		size_t n;

		if (get_tag(&p, end, &num, &wt) < 0)
			return CAPF_EBADMSG;
		if ((num == 1 || num == 2) && wt == 2) {
			if (get_bytes(&p, end, &d, &n) < 0)
				return CAPF_EBADMSG;
			v->kind = num == 1 ? STORE_REC_DEVICE : STORE_REC_CERT;
			v->val = d;
			v->val_len = n;
			bodies++;
		} else if ((num == 15 || num == 16 || num == 17 || num == 18) && wt == 0) {
			if (get_varint(&p, end, 10, &x) < 0)
				return CAPF_EBADMSG;
			if (num == 15)
				v->create_only = x != 0;
			else if (num == 16)
				v->must_exist = x != 0;
			else if (num == 17)
				v->expect_revision = x;
			else
				v->check_revision = x != 0;
		} else if (skip_value(&p, end, wt) < 0) {
			return CAPF_EBADMSG;
		}
	}
	if (bodies != 1)
		return CAPF_EBADMSG;
	body_view(v->val, v->val_len, v);
	if (v->key_len == 0)
		return CAPF_EBADMSG;
	if (v->kind == STORE_REC_DEVICE && memchr(v->key, '\0', v->key_len))
		return CAPF_EBADMSG;
	/* The key and the device point into val, which the index keeps whole. */
	return 0;
}

/* Reads a checked AuditAnchor. */
static int anchor_view(const uint8_t *p, size_t len, struct store_anchor *a)
{
	const uint8_t *end = p + len;
	int have_hash = 0;

	memset(a, 0, sizeof(*a));
	a->raw = p;
	a->raw_len = len;
	while (p < end) {
		const uint8_t *d;
		uint32_t num;
		unsigned wt;
		size_t n;

		if (get_tag(&p, end, &num, &wt) < 0)
			return CAPF_EBADMSG;
		if (num == 5 && wt == 2)
			a->has_copies = true;
		if (num == 1 && wt == 0) {
			if (get_varint(&p, end, 10, &a->seq) < 0)
				return CAPF_EBADMSG;
		} else if (num == 2 && wt == 0) {
			if (get_varint(&p, end, 10, &a->offset) < 0)
				return CAPF_EBADMSG;
		} else if (num == 4 && wt == 0) {
			if (get_varint(&p, end, 10, &a->file) < 0)
				return CAPF_EBADMSG;
		} else if (num == 3 && wt == 2) {
			if (get_bytes(&p, end, &d, &n) < 0 || n != STORE_HASH_LEN)
				return CAPF_EBADMSG;
			memcpy(a->hash, d, STORE_HASH_LEN);
			have_hash = 1;
		} else if (skip_value(&p, end, wt) < 0) {
			return CAPF_EBADMSG;
		}
	}
	return a->seq > 0 && have_hash ? 0 : CAPF_EBADMSG;
}

int store_anchor_from_pb(const Capf__AuditAnchor *pb, struct store_anchor *out)
{
	memset(out, 0, sizeof(*out));
	if (!pb || pb->seq == 0 || pb->hash.len != STORE_HASH_LEN)
		return CAPF_EBADMSG;
	out->seq = pb->seq;
	out->offset = pb->offset;
	out->file = pb->file;
	memcpy(out->hash, pb->hash.data, STORE_HASH_LEN);
	return 0;
}

/* One walk over a checked StoreTxn: meta, and each record to on_rec. */
static int txn_walk(const uint8_t *p, size_t len, struct store_txn_meta *meta,
		    store_rec_cb on_rec, void *arg)
{
	const uint8_t *end = p + len;
	int ret;

	memset(meta, 0, sizeof(*meta));
	while (p < end) {
		struct store_rec_view v;
		const uint8_t *d;
		uint32_t num;
		unsigned wt;
		uint64_t x;
		size_t n;

		if (get_tag(&p, end, &num, &wt) < 0)
			return CAPF_EBADMSG;
		if (num == 1 && wt == 2) {
			if (get_bytes(&p, end, &d, &n) < 0 || record_view(d, n, &v) < 0)
				return CAPF_EBADMSG;
			meta->n_records++;
			if (on_rec) {
				ret = on_rec(&v, arg);
				if (ret < 0)
					return ret;
			}
		} else if (num == 2 && wt == 0) {
			if (get_varint(&p, end, 10, &x) < 0)
				return CAPF_EBADMSG;
			meta->time = (int64_t)x;
		} else if (num == 3 && wt == 2) {
			if (get_bytes(&p, end, &d, &n) < 0 || anchor_view(d, n, &meta->anchor) < 0)
				return CAPF_EBADMSG;
		} else if (skip_value(&p, end, wt) < 0) {
			return CAPF_EBADMSG;
		}
	}
	if (meta->n_records == 0 && meta->anchor.seq == 0)
		return CAPF_EBADMSG;
	return 0;
}

int store_txn_walk(const uint8_t *p, size_t len, struct store_txn_meta *meta,
		   store_rec_cb on_rec, void *arg)
{
	struct store_txn_meta m;

	return txn_walk(p, len, meta ? meta : &m, on_rec, arg);
}

int store_txn_parse(const uint8_t *p, size_t len, struct store_txn_meta *meta,
		    store_rec_cb on_rec, void *arg)
{
	struct store_txn_meta m;
	int ret;

	if (!meta)
		meta = &m;
	memset(meta, 0, sizeof(*meta));
	if (store_pb_check(&capf__store_txn__descriptor, p, len) < 0)
		return CAPF_EBADMSG;
	/* Check every record before handing out the first: all or none. */
	ret = txn_walk(p, len, meta, NULL, NULL);
	if (ret < 0 || !on_rec)
		return ret;
	return txn_walk(p, len, meta, on_rec, arg);
}

/* ---- payload checks ------------------------------------------------------- */

int store_check_txn_payload(const uint8_t *p, size_t len, void *ctx, const char **reason)
{
	(void)ctx;
	if (store_txn_parse(p, len, NULL, NULL, NULL) < 0) {
		*reason = "entry payload is not a valid StoreTxn";
		return CAPF_EBADMSG;
	}
	return 0;
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

int store_snap_info_parse(const uint8_t *p, size_t len, Capf__StoreSnapshotInfo **info)
{
	int oom = 0;
	ProtobufCAllocator alloc = { .alloc = oom_alloc, .free = oom_free, .allocator_data = &oom };
	Capf__StoreSnapshotInfo *si;
	struct store_anchor a;

	*info = NULL;
	if (len == 0 || p[0] != 0x08 ||
	    store_pb_check(&capf__store_snapshot_info__descriptor, p, len) < 0)
		return 0;
	si = capf__store_snapshot_info__unpack(&alloc, len, p);
	if (!si)
		return oom ? CAPF_ENOMEM : 0;
	if (si->seq == 0 || (si->audit && store_anchor_from_pb(si->audit, &a) < 0)) {
		capf__store_snapshot_info__free_unpacked(si, &alloc);
		return 0;
	}
	/* The caller frees with the default allocator: malloc/free as well. */
	*info = si;
	return 1;
}

int store_check_snap_payload(const uint8_t *p, size_t len, void *ctx, const char **reason)
{
	Capf__StoreSnapshotInfo *si = NULL;
	struct store_txn_meta m;
	int ret;

	(void)ctx;
	if (len > 0 && p[0] == 0x08) {
		ret = store_snap_info_parse(p, len, &si);
		if (ret < 0)
			return ret;
		if (si) {
			capf__store_snapshot_info__free_unpacked(si, NULL);
			return 0;
		}
		*reason = "entry payload is not a valid StoreSnapshotInfo";
		return CAPF_EBADMSG;
	}
	if (store_txn_parse(p, len, &m, NULL, NULL) < 0 || m.n_records == 0 || m.anchor.seq) {
		*reason = "entry payload is not a valid snapshot batch";
		return CAPF_EBADMSG;
	}
	return 0;
}
