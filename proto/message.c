/*
 * Message packing, unpacking and validation.
 *
 * Every message that arrives from a peer passes through one validate
 * function per message family before any handler sees it. The checks
 * depend only on the message itself (never on session state), and are
 * driven by one static table per family: the oneof case, its name and the
 * function that checks that body.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

#define CSR_MAX (16u * 1024u)
#define CHAIN_MAX 8u
#define TEXT_MAX 1024u

/*
 * protobuf-c in proto3 mode stores any integer in an enum field, so the
 * range is checked here. Asking the generated descriptor means that a
 * value added to capf.proto is accepted without a change here.
 */
static int enum_known(const ProtobufCEnumDescriptor *desc, int value)
{
	return protobuf_c_enum_descriptor_get_value(desc, value) != NULL;
}

/* A NULL text is what a caller gets by leaving the field unset. */
static int text_ok(const char *text)
{
	return !text || strnlen(text, TEXT_MAX + 1) <= TEXT_MAX;
}

static int bytes_set(const ProtobufCBinaryData *b)
{
	return b->len > 0 && b->data != NULL;
}

/* The largest field number protobuf allows (2^29 - 1). */
#define FIELD_NUMBER_MAX 536870911u

/*
 * protobuf-c keeps fields it does not know and packs them again. Its parser
 * accepts an over-long encoding of field number 0, and field numbers beyond
 * the protobuf maximum, which it then cannot pack into anything that parses
 * again: a message holding one would turn into unreadable bytes once stored
 * or forwarded. Such fields are rejected here, in the message and in every
 * message it contains.
 */
static int unknown_fields_ok(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *desc = m->descriptor;
	unsigned i;
	size_t j;

	for (i = 0; i < m->n_unknown_fields; i++) {
		uint32_t tag = m->unknown_fields[i].tag;

		if (tag == 0 || tag > FIELD_NUMBER_MAX)
			return 0;
	}
	for (i = 0; i < desc->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &desc->fields[i];
		const char *base = (const char *)m;

		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			ProtobufCMessage *const *sub =
			    *(ProtobufCMessage *const *const *)(base + f->offset);

			for (j = 0; j < n; j++)
				if (sub[j] && !unknown_fields_ok(sub[j]))
					return 0;
		} else {
			const ProtobufCMessage *sub;

			if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
			    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
				continue;
			sub = *(ProtobufCMessage *const *)(base + f->offset);
			if (sub && !unknown_fields_ok(sub))
				return 0;
		}
	}
	return 1;
}

/* ---- packing ---------------------------------------------------------- */

/*
 * Packs m behind a frame header, in one allocation so that the caller can
 * hand the whole frame to one write. A message whose fields are all
 * defaults packs to nothing, and a zero-length frame is a protocol error:
 * such a message is sent as the payload "empty" if the family has one,
 * and refused otherwise.
 */
static int frame_pack(const ProtobufCMessage *m, const uint8_t *empty, size_t empty_len,
		      uint8_t **out, size_t *out_len)
{
	uint8_t *buf = NULL;
	size_t size;
	int ret = 0;

	if (!m || !out || !out_len) {
		ret = CAPF_EINVAL;
		goto out;
	}
	*out = NULL;
	*out_len = 0;
	size = protobuf_c_message_get_packed_size(m);
	if (size > FRAME_MAX_LIMIT) {
		ret = CAPF_EFRAME_TOO_BIG;
		goto out;
	}
	if (size == 0 && !empty) {
		ret = CAPF_EINVAL;
		goto out;
	}
	buf = malloc(FRAME_HEADER_LEN + (size ? size : empty_len));
	if (!buf) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	if (size) {
		protobuf_c_message_pack(m, buf + FRAME_HEADER_LEN);
	} else {
		memcpy(buf + FRAME_HEADER_LEN, empty, empty_len);
		size = empty_len;
	}
	frame_write_header(buf, (uint32_t)size);
	*out = buf;
	*out_len = FRAME_HEADER_LEN + size;
	buf = NULL;
out:
	free(buf);
	return ret;
}

int phone_msg_pack(const Capf__PhoneMessage *msg, uint8_t **out, size_t *out_len)
{
	/* A phone message without a body is invalid: nothing to send. */
	return frame_pack(msg ? &msg->base : NULL, NULL, 0, out, out_len);
}

int admin_req_pack(const Capf__AdminRequest *req, uint8_t **out, size_t *out_len)
{
	/* An admin request needs a version: an empty one is invalid. */
	return frame_pack(req ? &req->base : NULL, NULL, 0, out, out_len);
}

int admin_resp_pack(const Capf__AdminResponse *resp, uint8_t **out, size_t *out_len)
{
	/*
	 * A plain success (code 0, nothing else) is a valid response. It is
	 * sent with field 1 (code) written out explicitly as 0, which a
	 * proto3 parser reads back as the same default message.
	 */
	static const uint8_t code_zero[] = {0x08, 0x00};

	return frame_pack(resp ? &resp->base : NULL, code_zero, sizeof(code_zero), out, out_len);
}

/* ---- phone messages ------------------------------------------------------ */

static int validate_hello(const Capf__PhoneMessage *m)
{
	const Capf__Hello *h = m->hello;

	if (!h || h->version == 0 || !device_name_valid(h->device_name) ||
	    strlen(h->auth_string) > AUTH_STRING_MAX || h->n_supported_keys > 8)
		return 0;
	for (size_t i = 0; i < h->n_supported_keys; i++)
		if (!enum_known(&capf__key_type__descriptor, (int)h->supported_keys[i]) ||
		    h->supported_keys[i] == CAPF__KEY_TYPE__KEY_UNSPECIFIED)
			return 0;
	return 1;
}

static int validate_delete_result(const Capf__PhoneMessage *m)
{
	return m->delete_result != NULL;
}

static int validate_fetch_report(const Capf__PhoneMessage *m)
{
	const Capf__FetchReport *r = m->fetch_report;

	if (!r || r->n_certificates > FETCH_MAX || (r->n_certificates > 0 && !r->certificates))
		return 0;
	for (size_t i = 0; i < r->n_certificates; i++)
		if (!bytes_set(&r->certificates[i]) || r->certificates[i].len > FETCH_CERT_MAX)
			return 0;
	return 1;
}

static int validate_op_request(const Capf__PhoneMessage *m)
{
	const Capf__OperationRequest *r = m->op_request;

	return r && r->version != 0 && enum_known(&capf__operation__descriptor, r->op) &&
	       enum_known(&capf__key_type__descriptor, r->key_type);
}

static int validate_csr(const Capf__PhoneMessage *m)
{
	const Capf__CsrSubmit *c = m->csr;

	return c && bytes_set(&c->csr) && c->csr.len <= CSR_MAX;
}

static int validate_certificate(const Capf__PhoneMessage *m)
{
	const Capf__CertificateDelivery *c = m->certificate;
	size_t i;

	if (!c || !bytes_set(&c->certificate) || c->n_chain > CHAIN_MAX)
		return 0;
	if (c->n_chain > 0 && !c->chain)
		return 0;
	for (i = 0; i < c->n_chain; i++)
		if (!bytes_set(&c->chain[i]))
			return 0;
	return 1;
}

static int validate_store_ack(const Capf__PhoneMessage *m)
{
	/* Any code: a non-zero one is the phone's report of a failure. */
	return m->store_ack != NULL;
}

static int validate_end(const Capf__PhoneMessage *m)
{
	return m->end && text_ok(m->end->text);
}

static int validate_error(const Capf__PhoneMessage *m)
{
	return m->error && text_ok(m->error->text);
}

struct phone_body {
	Capf__PhoneMessage__BodyCase body;
	const char *name;
	int (*valid)(const Capf__PhoneMessage *m);
};

static const struct phone_body phone_bodies[] = {
    {CAPF__PHONE_MESSAGE__BODY_HELLO, "hello", validate_hello},
    {CAPF__PHONE_MESSAGE__BODY_OP_REQUEST, "op_request", validate_op_request},
    {CAPF__PHONE_MESSAGE__BODY_CSR, "csr", validate_csr},
    {CAPF__PHONE_MESSAGE__BODY_CERTIFICATE, "certificate", validate_certificate},
    {CAPF__PHONE_MESSAGE__BODY_STORE_ACK, "store_ack", validate_store_ack},
    {CAPF__PHONE_MESSAGE__BODY_END, "end", validate_end},
    {CAPF__PHONE_MESSAGE__BODY_ERROR, "error", validate_error},
    {CAPF__PHONE_MESSAGE__BODY_DELETE_RESULT, "delete_result", validate_delete_result},
    {CAPF__PHONE_MESSAGE__BODY_FETCH_REPORT, "fetch_report", validate_fetch_report},
};

static const struct phone_body *phone_body_find(const Capf__PhoneMessage *m)
{
	size_t i;

	for (i = 0; i < sizeof(phone_bodies) / sizeof(phone_bodies[0]); i++)
		if (phone_bodies[i].body == m->body_case)
			return &phone_bodies[i];
	return NULL;
}

int phone_msg_validate(const Capf__PhoneMessage *msg)
{
	const struct phone_body *b;

	if (!msg || msg->base.descriptor != &capf__phone_message__descriptor)
		return CAPF_EBADMSG;
	b = phone_body_find(msg);
	if (!b || !b->valid(msg))
		return CAPF_EBADMSG;
	return 0;
}

const char *phone_msg_name(const Capf__PhoneMessage *msg)
{
	const struct phone_body *b;

	if (!msg)
		return "?";
	if (msg->body_case == CAPF__PHONE_MESSAGE__BODY__NOT_SET)
		return "none";
	b = phone_body_find(msg);
	return b ? b->name : "?";
}

/*
 * protobuf-c wants a non-NULL buffer even for zero bytes; an empty payload
 * never reaches here from the frame decoder, but a direct caller may pass
 * one.
 */
static const uint8_t *payload_or_empty(const uint8_t *payload)
{
	static const uint8_t empty[1];

	return payload ? payload : empty;
}

/*
 * Every unpack: parse with the message's descriptor, run its validation
 * (validate may be NULL), refuse unknown fields that would not survive a
 * re-pack. On failure nothing is returned and nothing leaks.
 */
static int unpack_checked(const ProtobufCMessageDescriptor *desc, const uint8_t *payload,
			  size_t len, int (*validate)(const ProtobufCMessage *m), void **out)
{
	ProtobufCMessage *m;
	int ret = 0;

	if (!out)
		return CAPF_EINVAL;
	*out = NULL;
	if (!payload && len > 0)
		return CAPF_EINVAL;
	m = protobuf_c_message_unpack(desc, NULL, len, payload_or_empty(payload));
	if (!m)
		return CAPF_EBADMSG;
	if (validate)
		ret = validate(m);
	if (ret == 0 && !unknown_fields_ok(m))
		ret = CAPF_EBADMSG;
	if (ret < 0) {
		protobuf_c_message_free_unpacked(m, NULL);
		return ret;
	}
	*out = m;
	return 0;
}

static int phone_validate_any(const ProtobufCMessage *m)
{
	return phone_msg_validate((const Capf__PhoneMessage *)m);
}

int phone_msg_unpack(const uint8_t *payload, size_t len, Capf__PhoneMessage **out)
{
	int ret = unpack_checked(&capf__phone_message__descriptor, payload, len,
				 phone_validate_any, (void **)out);

	/*
	 * What a phone sends must be exactly what the message packs to: a
	 * string with a NUL inside (which C would cut, making it another
	 * name), a field sent twice, a varint longer than needed all pack
	 * to another length, and are refused.
	 */
	if (ret == 0 && protobuf_c_message_get_packed_size(&(*out)->base) != len) {
		capf__phone_message__free_unpacked(*out, NULL);
		*out = NULL;
		return CAPF_EBADMSG;
	}
	return ret;
}

/* ---- admin requests ---------------------------------------------------- */

static int device_put_valid(const Capf__DevicePut *p)
{
	const Capf__Device *d;

	if (!p || !p->device || p->fields > 255)
		return 0;
	d = p->device;
	if (d->auth_secret != NULL &&
	    (d->auth_secret->hash.len != AUTH_HASH_LEN || d->auth_secret->salt.len == 0 ||
	     d->auth_secret->salt.len > AUTH_SALT_MAX ||
	     d->auth_secret->iterations < AUTH_ITERATIONS_MIN))
		return 0;
	return device_name_valid(d->name) && enum_known(&capf__operation__descriptor, d->op) &&
	       enum_known(&capf__auth_mode__descriptor, d->auth) &&
	       enum_known(&capf__key_type__descriptor, d->key_type) &&
	       enum_known(&capf__key_type__descriptor, d->ec_key_type) &&
	       enum_known(&capf__key_order__descriptor, d->key_order) &&
	       enum_known(&capf__op_status__descriptor, d->status) && d->lsc_days <= 36500;
}

static int validate_device_put(const Capf__AdminRequest *r)
{
	return device_put_valid(r->device_put);
}

/* A batch is bounded by the frame; each put is checked as one alone. */
static int validate_device_batch(const Capf__AdminRequest *r)
{
	const Capf__DeviceBatch *b = r->device_batch;

	if (!b || b->n_puts == 0)
		return 0;
	for (size_t i = 0; i < b->n_puts; i++)
		if (!device_put_valid(b->puts[i]))
			return 0;
	return 1;
}

static int validate_device_delete(const Capf__AdminRequest *r)
{
	return r->device_delete && device_name_valid(r->device_delete->name);
}

static int enums_known(const ProtobufCEnumDescriptor *desc, const int *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!enum_known(desc, v[i]))
			return 0;
	return 1;
}

/* A name prefix or pattern is at most a name long (a glob may hold more
 * characters than a name allows, so only its length is checked). */
static int filter_valid(const Capf__DeviceFilter *f)
{
	if (!f)
		return 1;
	return (!f->name_prefix || strlen(f->name_prefix) <= DEVICE_NAME_MAX) &&
	       (!f->name_glob || strlen(f->name_glob) <= 4 * DEVICE_NAME_MAX) &&
	       (!f->name || strlen(f->name) <= DEVICE_NAME_MAX) &&
	       enums_known(&capf__op_status__descriptor, (const int *)f->status, f->n_status) &&
	       enums_known(&capf__auth_mode__descriptor, (const int *)f->auth, f->n_auth) &&
	       enums_known(&capf__operation__descriptor, (const int *)f->op, f->n_op);
}

static int validate_device_get(const Capf__AdminRequest *r)
{
	return r->device_get && device_name_valid(r->device_get->name);
}

static int validate_device_list(const Capf__AdminRequest *r)
{
	const Capf__DeviceList *l = r->device_list;

	return l != NULL && filter_valid(l->filter) &&
	       (!l->after || strlen(l->after) <= DEVICE_NAME_MAX);
}

static int validate_cert_list(const Capf__AdminRequest *r)
{
	const Capf__CertList *l = r->cert_list;

	return l != NULL && (!l->device || strlen(l->device) <= DEVICE_NAME_MAX) &&
	       enums_known(&capf__cert_state__descriptor, (const int *)l->state, l->n_state) &&
	       l->after.len <= 64;
}

static int validate_status(const Capf__AdminRequest *r)
{
	return r->status != NULL;
}

static int validate_stats(const Capf__AdminRequest *r)
{
	return r->stats != NULL;
}

/* Store administration: the fault name is checked by the handler, which
 * answers an unknown one with a clear message. */
static int validate_store_compact(const Capf__AdminRequest *r)
{
	return r->store_compact != NULL;
}

static int validate_store_fault(const Capf__AdminRequest *r)
{
	return r->store_fault != NULL && r->store_fault->fault != NULL &&
	       strlen(r->store_fault->fault) <= 16;
}

static int validate_store_info(const Capf__AdminRequest *r)
{
	return r->store_info != NULL;
}

/* The CA, trust stores and revocation: sizes and enums here; every
 * certificate and key reference is judged by ca/, which says why it
 * refuses one. */
#define ADMIN_TEXT_MAX 4096u	       /* a subject or a key reference */
#define ADMIN_BLOB_MAX (1024u * 1024u) /* certificates in one request */
#define ADMIN_SERIAL_MAX 20u	       /* RFC 5280 4.1.2.2 */

static int admin_text_ok(const char *s)
{
	return s != NULL && strlen(s) <= ADMIN_TEXT_MAX;
}

static int validate_ca_status(const Capf__AdminRequest *r)
{
	return r->ca_status != NULL;
}

static int validate_ca_csr(const Capf__AdminRequest *r)
{
	const Capf__CaCsrRequest *q = r->ca_csr;

	return q != NULL && enum_known(&capf__key_type__descriptor, q->key_type) &&
	       admin_text_ok(q->key) && admin_text_ok(q->subject);
}

static int validate_ca_import(const Capf__AdminRequest *r)
{
	const Capf__CaImportRequest *q = r->ca_import;

	return q != NULL && q->certificate.len > 0 && q->certificate.len <= ADMIN_BLOB_MAX &&
	       q->overlap_days <= 36500;
}

static int validate_ca_rollover(const Capf__AdminRequest *r)
{
	const Capf__CaRolloverRequest *q = r->ca_rollover;

	return q != NULL && enum_known(&capf__key_type__descriptor, q->key_type) &&
	       admin_text_ok(q->key) && admin_text_ok(q->subject) && q->overlap_days <= 36500;
}

static int validate_ca_bundle(const Capf__AdminRequest *r)
{
	return r->ca_bundle != NULL;
}

static int validate_trust_add(const Capf__AdminRequest *r)
{
	const Capf__TrustAddRequest *q = r->trust_add;

	return q != NULL &&
	       (q->kind == CAPF__TRUST_KIND__TRUST_MFG || q->kind == CAPF__TRUST_KIND__TRUST_CHAIN) &&
	       q->certificates.len > 0 && q->certificates.len <= ADMIN_BLOB_MAX;
}

static int validate_trust_list(const Capf__AdminRequest *r)
{
	return r->trust_list != NULL && enum_known(&capf__trust_kind__descriptor, r->trust_list->kind);
}

static int validate_trust_remove(const Capf__AdminRequest *r)
{
	const Capf__TrustRemoveRequest *q = r->trust_remove;

	return q != NULL && enum_known(&capf__trust_kind__descriptor, q->kind) &&
	       q->fingerprint != NULL && strlen(q->fingerprint) <= 64;
}

static int validate_cert_revoke(const Capf__AdminRequest *r)
{
	const Capf__CertRevokeRequest *q = r->cert_revoke;

	return q != NULL && q->serial.len > 0 && q->serial.len <= ADMIN_SERIAL_MAX &&
	       q->reason <= 10;
}

static int validate_cert_show(const Capf__AdminRequest *r)
{
	const Capf__CertShowRequest *q = r->cert_show;

	return q != NULL && q->serial.len > 0 && q->serial.len <= ADMIN_SERIAL_MAX;
}

static int validate_crl(const Capf__AdminRequest *r)
{
	return r->crl != NULL;
}

struct admin_body {
	Capf__AdminRequest__BodyCase body;
	const char *name;
	int (*valid)(const Capf__AdminRequest *r);
};

static const struct admin_body admin_bodies[] = {
    {CAPF__ADMIN_REQUEST__BODY_DEVICE_PUT, "device_put", validate_device_put},
    {CAPF__ADMIN_REQUEST__BODY_DEVICE_GET, "device_get", validate_device_get},
    {CAPF__ADMIN_REQUEST__BODY_DEVICE_LIST, "device_list", validate_device_list},
    {CAPF__ADMIN_REQUEST__BODY_STATUS, "status", validate_status},
    {CAPF__ADMIN_REQUEST__BODY_STATS, "stats", validate_stats},
    {CAPF__ADMIN_REQUEST__BODY_STORE_COMPACT, "store_compact", validate_store_compact},
    {CAPF__ADMIN_REQUEST__BODY_STORE_FAULT, "store_fault", validate_store_fault},
    {CAPF__ADMIN_REQUEST__BODY_STORE_INFO, "store_info", validate_store_info},
    {CAPF__ADMIN_REQUEST__BODY_CA_STATUS, "ca_status", validate_ca_status},
    {CAPF__ADMIN_REQUEST__BODY_CA_CSR, "ca_csr", validate_ca_csr},
    {CAPF__ADMIN_REQUEST__BODY_CA_IMPORT, "ca_import", validate_ca_import},
    {CAPF__ADMIN_REQUEST__BODY_CA_ROLLOVER, "ca_rollover", validate_ca_rollover},
    {CAPF__ADMIN_REQUEST__BODY_CA_BUNDLE, "ca_bundle", validate_ca_bundle},
    {CAPF__ADMIN_REQUEST__BODY_TRUST_ADD, "trust_add", validate_trust_add},
    {CAPF__ADMIN_REQUEST__BODY_TRUST_LIST, "trust_list", validate_trust_list},
    {CAPF__ADMIN_REQUEST__BODY_TRUST_REMOVE, "trust_remove", validate_trust_remove},
    {CAPF__ADMIN_REQUEST__BODY_CERT_REVOKE, "cert_revoke", validate_cert_revoke},
    {CAPF__ADMIN_REQUEST__BODY_CERT_SHOW, "cert_show", validate_cert_show},
    {CAPF__ADMIN_REQUEST__BODY_CRL, "crl", validate_crl},
    {CAPF__ADMIN_REQUEST__BODY_DEVICE_DELETE, "device_delete", validate_device_delete},
    {CAPF__ADMIN_REQUEST__BODY_DEVICE_BATCH, "device_batch", validate_device_batch},
    {CAPF__ADMIN_REQUEST__BODY_CERT_LIST, "cert_list", validate_cert_list},
};

static int admin_req_validate(const Capf__AdminRequest *req)
{
	size_t i;

	if (!req || req->base.descriptor != &capf__admin_request__descriptor || req->version == 0)
		return CAPF_EBADMSG;
	for (i = 0; i < sizeof(admin_bodies) / sizeof(admin_bodies[0]); i++)
		if (admin_bodies[i].body == req->body_case)
			return admin_bodies[i].valid(req) ? 0 : CAPF_EBADMSG;
	return CAPF_EBADMSG;
}

static int admin_validate_any(const ProtobufCMessage *m)
{
	return admin_req_validate((const Capf__AdminRequest *)m);
}

int admin_req_unpack(const uint8_t *payload, size_t len, Capf__AdminRequest **out)
{
	return unpack_checked(&capf__admin_request__descriptor, payload, len, admin_validate_any,
			      (void **)out);
}

int admin_resp_unpack(const uint8_t *payload, size_t len, Capf__AdminResponse **out)
{
	return unpack_checked(&capf__admin_response__descriptor, payload, len, NULL, (void **)out);
}
