/*
 * The enrollment state machine: one instance per phone session. It decides
 * everything about a session (who the phone is, whether it may do what it
 * asks, what is recorded and when the certificate may leave) and does no
 * I/O: it answers each event with outputs that capf/conn.c carries out.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "ca/ca.h"
#include "capf/enroll.h"
#include "capf/log.h"
#include "store/store.h"

struct enroll {
	struct enroll_env env;
	enum enroll_state state;
	char device[DEVICE_NAME_MAX + 1];
	bool claimed;

	uint8_t **certs;
	size_t *cert_lens;
	size_t ncerts;
	uint8_t binding[CA_BINDING_LEN];
	size_t binding_len;

	/* The device record as read at Hello; the records handed out for
	 * persisting borrow from these and stay valid until the next event. */
	Capf__Device *stored;
	Capf__Device dev_out;
	Capf__Certificate cert_out;
	Capf__StoreRecord rec[2];
	Capf__StoreRecord *rec_ptrs[2];
	struct ca_lsc lsc;
};

void enroll_out_deinit(struct enroll_out *out)
{
	if (out == NULL)
		return;
	free(out->frame);
	memset(out, 0, sizeof(*out));
}

enum enroll_state enroll_state(const struct enroll *e)
{
	return e->state;
}

const char *enroll_device(const struct enroll *e)
{
	return e->device;
}

static time_t env_now(const struct enroll *e)
{
	return e->env.now != NULL ? e->env.now() : time(NULL);
}

struct enroll *enroll_new(const struct enroll_env *env, const uint8_t *const *certs,
			  const size_t *cert_lens, size_t ncerts, const uint8_t *binding,
			  size_t binding_len)
{
	struct enroll *e = calloc(1, sizeof(*e));
	if (e == NULL)
		return NULL;
	e->env = *env;
	if (binding_len > sizeof(e->binding))
		binding_len = sizeof(e->binding);
	memcpy(e->binding, binding, binding_len);
	e->binding_len = binding_len;

	if (ncerts > 0) {
		e->certs = calloc(ncerts, sizeof(*e->certs));
		e->cert_lens = calloc(ncerts, sizeof(*e->cert_lens));
		if (e->certs == NULL || e->cert_lens == NULL)
			goto fail;
		for (size_t i = 0; i < ncerts; i++) {
			e->certs[i] = malloc(cert_lens[i]);
			if (e->certs[i] == NULL)
				goto fail;
			memcpy(e->certs[i], certs[i], cert_lens[i]);
			e->cert_lens[i] = cert_lens[i];
			e->ncerts++;
		}
	}
	return e;
fail:
	enroll_free(e);
	return NULL;
}

void enroll_free(struct enroll *e)
{
	if (e == NULL)
		return;
	if (e->claimed && e->env.release != NULL)
		e->env.release(e->env.claim_arg, e->device);
	for (size_t i = 0; i < e->ncerts; i++)
		free(e->certs[i]);
	free(e->certs);
	free(e->cert_lens);
	if (e->stored != NULL)
		capf__device__free_unpacked(e->stored, NULL);
	ca_lsc_deinit(&e->lsc);
	gnutls_memset(e->binding, 0, sizeof(e->binding));
	free(e);
}

static int pack_frame(const Capf__PhoneMessage *msg, struct enroll_out *out)
{
	int ret = phone_msg_pack(msg, &out->frame, &out->frame_len);
	if (ret < 0) {
		out->frame = NULL;
		out->frame_len = 0;
	}
	return ret;
}

int enroll_error_frame(int code, const char *text, uint8_t **frame, size_t *len)
{
	Capf__PhoneMessage msg = CAPF__PHONE_MESSAGE__INIT;
	Capf__Error err = CAPF__ERROR__INIT;

	err.code = (uint32_t)(code < 0 ? -code : code);
	err.text = (char *)(text != NULL ? text : capf_strerror(code));
	msg.body_case = CAPF__PHONE_MESSAGE__BODY_ERROR;
	msg.error = &err;
	return phone_msg_pack(&msg, frame, len);
}

/* Every failure ends here: one Error frame, close, and the reason kept for
 * the log line that the glue writes. The store is not touched. */
static int fail(struct enroll *e, int code, const char *text, struct enroll_out *out)
{
	free(out->frame);
	out->frame = NULL;
	out->frame_len = 0;
	out->persist = NULL;
	out->npersist = 0;
	if (enroll_error_frame(code, text, &out->frame, &out->frame_len) < 0) {
		out->frame = NULL;
		out->frame_len = 0;
	}
	out->close = true;
	out->error = code;
	e->state = ENROLL_DONE;
	return code;
}

void enroll_fail(struct enroll *e, int code, struct enroll_out *out)
{
	memset(out, 0, sizeof(*out));
	fail(e, code, NULL, out);
}

/* Build the device record to persist from the stored one, changing only
 * what the state machine owns: status, error, current LSC, pending op. */
static void prepare_device(struct enroll *e, Capf__OpStatus status, bool done)
{
	Capf__Device *d = &e->dev_out;

	*d = *e->stored;
	d->status = status;
	d->last_error = 0;
	d->updated = env_now(e);
	if (done) {
		d->op = CAPF__OPERATION__OP_NONE;
		d->lsc_serial.data = e->lsc.serial;
		d->lsc_serial.len = sizeof(e->lsc.serial);
	}
}

static void prepare_cert(struct enroll *e, Capf__CertState state)
{
	Capf__Certificate *c = &e->cert_out;

	capf__certificate__init(c);
	c->serial.data = e->lsc.serial;
	c->serial.len = sizeof(e->lsc.serial);
	c->device = e->device;
	c->not_before = e->lsc.not_before;
	c->not_after = e->lsc.not_after;
	c->der.data = e->lsc.der;
	c->der.len = e->lsc.der_len;
	c->state = state;
	c->issued_at = e->lsc.not_before + CA_BACKDATE_SECONDS;
}

/* The device record and the certificate record go together in one txn;
 * the device must still exist when the writer gets to it. */
static void emit_persist(struct enroll *e, struct enroll_out *out)
{
	capf__store_record__init(&e->rec[0]);
	e->rec[0].body_case = CAPF__STORE_RECORD__BODY_CERT;
	e->rec[0].cert = &e->cert_out;
	capf__store_record__init(&e->rec[1]);
	e->rec[1].body_case = CAPF__STORE_RECORD__BODY_DEVICE;
	e->rec[1].device = &e->dev_out;
	e->rec[1].must_exist = true;
	e->rec_ptrs[0] = &e->rec[0];
	e->rec_ptrs[1] = &e->rec[1];
	out->persist = e->rec_ptrs;
	out->npersist = 2;
}

static int on_hello(struct enroll *e, const Capf__Hello *hello, struct enroll_out *out)
{
	Capf__PhoneMessage msg = CAPF__PHONE_MESSAGE__INIT;
	Capf__OperationRequest req = CAPF__OPERATION_REQUEST__INIT;
	int ret;

	if (hello->version != CAPF_PROTOCOL_VERSION)
		return fail(e, CAPF_EVERSION, "unsupported protocol version", out);
	/* Validation guarantees the length; copy before anything may fail so
	 * the log names the device the phone claimed. */
	snprintf(e->device, sizeof(e->device), "%s", hello->device_name);

	ret = store_device_get(e->env.store, e->device, &e->stored);
	if (ret == CAPF_ENOENT)
		return fail(e, CAPF_EUNKNOWN_DEVICE, "unknown device", out);
	if (ret < 0)
		return fail(e, CAPF_ERETRY, "cannot read the device record; retry later", out);
	if (e->stored->op == CAPF__OPERATION__OP_NONE)
		return fail(e, CAPF_ENO_OPERATION, "no operation pending for this device", out);
	if (e->stored->deadline != 0 && env_now(e) > e->stored->deadline)
		return fail(e, CAPF_ENO_OPERATION, "the operation's deadline has passed", out);
	if (e->stored->op != CAPF__OPERATION__OP_INSTALL)
		return fail(e, CAPF_ENOTSUP, "operation not supported by this server", out);
	if (e->stored->auth != CAPF__AUTH_MODE__AUTH_MIC)
		return fail(e, CAPF_ENOTSUP, "authentication mode not supported by this server",
			    out);

	/* The server decides identity: only a MIC that names this very device
	 * authenticates it. */
	ret = ca_mic_verify(e->env.ca, (const uint8_t *const *)e->certs, e->cert_lens, e->ncerts,
			    e->device, env_now(e));
	if (ret < 0)
		return fail(e, ret, NULL, out);

	if (e->env.claim != NULL) {
		ret = e->env.claim(e->env.claim_arg, e->device);
		if (ret < 0)
			return fail(e, CAPF_EBUSY, "another session for this device is in progress",
				    out);
		e->claimed = true;
	}

	req.version = CAPF_PROTOCOL_VERSION;
	req.op = e->stored->op;
	req.key_type = e->stored->key_type != CAPF__KEY_TYPE__KEY_UNSPECIFIED
			       ? e->stored->key_type
			       : CAPF__KEY_TYPE__KEY_EC_P256;
	msg.body_case = CAPF__PHONE_MESSAGE__BODY_OP_REQUEST;
	msg.op_request = &req;
	ret = pack_frame(&msg, out);
	if (ret < 0)
		return fail(e, ret, NULL, out);
	e->state = ENROLL_WAIT_CSR;
	return 0;
}

static int on_csr(struct enroll *e, const Capf__CsrSubmit *csr_msg, struct enroll_out *out)
{
	struct ca_csr *csr = NULL;
	int key_type = e->stored->key_type != CAPF__KEY_TYPE__KEY_UNSPECIFIED
			       ? (int)e->stored->key_type
			       : CAPF__KEY_TYPE__KEY_EC_P256;
	int ret;

	ret = ca_csr_parse(csr_msg->csr.data, csr_msg->csr.len, &csr);
	if (ret < 0)
		return fail(e, ret, NULL, out);
	ret = ca_csr_check(csr, e->binding, e->binding_len, key_type);
	if (ret < 0)
		goto out;
	ret = ca_issue(e->env.ca, csr, e->device, env_now(e), &e->lsc);
	if (ret < 0)
		goto out;

	/* Write-ahead: the certificate goes to the store first; the frame
	 * carrying it is made only once the store says it is durable. */
	prepare_cert(e, CAPF__CERT_STATE__CERT_UNCONFIRMED);
	prepare_device(e, CAPF__OP_STATUS__STATUS_ISSUED, false);
	emit_persist(e, out);
	/* Serials are unique: the store refuses to record one it knows. */
	e->rec[0].create_only = true;
	e->state = ENROLL_PERSIST_ISSUE;
out:
	ca_csr_free(csr);
	if (ret < 0)
		return fail(e, ret, NULL, out);
	return 0;
}

static int on_ack(struct enroll *e, const Capf__StoreAck *ack, struct enroll_out *out)
{
	if (ack->code != 0) {
		/* The phone could not store its certificate: the operation stays
		 * pending, the certificate stays unconfirmed. */
		return fail(e, CAPF_EREJECTED, "the phone did not store the certificate", out);
	}
	prepare_cert(e, CAPF__CERT_STATE__CERT_ACTIVE);
	prepare_device(e, CAPF__OP_STATUS__STATUS_SUCCESS, true);
	emit_persist(e, out);
	e->state = ENROLL_PERSIST_ACK;
	return 0;
}

int enroll_on_message(struct enroll *e, const Capf__PhoneMessage *msg, struct enroll_out *out)
{
	memset(out, 0, sizeof(*out));

	if (msg->body_case == CAPF__PHONE_MESSAGE__BODY_ERROR) {
		out->close = true;
		out->error = CAPF_EREJECTED;
		e->state = ENROLL_DONE;
		return CAPF_EREJECTED;
	}
	switch (e->state) {
	case ENROLL_WAIT_HELLO:
		if (msg->body_case == CAPF__PHONE_MESSAGE__BODY_HELLO)
			return on_hello(e, msg->hello, out);
		break;
	case ENROLL_WAIT_CSR:
		if (msg->body_case == CAPF__PHONE_MESSAGE__BODY_CSR)
			return on_csr(e, msg->csr, out);
		break;
	case ENROLL_WAIT_ACK:
		if (msg->body_case == CAPF__PHONE_MESSAGE__BODY_STORE_ACK)
			return on_ack(e, msg->store_ack, out);
		break;
	case ENROLL_PERSIST_ISSUE:
	case ENROLL_PERSIST_ACK:
	case ENROLL_DONE:
		break;
	}
	return fail(e, CAPF_EORDER, "message out of order", out);
}

int enroll_on_persisted(struct enroll *e, int result, struct enroll_out *out)
{
	Capf__PhoneMessage msg = CAPF__PHONE_MESSAGE__INIT;
	int ret;

	memset(out, 0, sizeof(*out));
	if (e->state != ENROLL_PERSIST_ISSUE && e->state != ENROLL_PERSIST_ACK)
		return fail(e, CAPF_EORDER, "internal: unexpected store completion", out);
	if (result < 0) {
		/* Fail closed: nothing leaves unless it is recorded. */
		return fail(e, CAPF_ERETRY, "the server cannot record certificates now; retry later",
			    out);
	}

	if (e->state == ENROLL_PERSIST_ISSUE) {
		Capf__CertificateDelivery cd = CAPF__CERTIFICATE_DELIVERY__INIT;
		ProtobufCBinaryData chain[1];
		const uint8_t *ca_der;
		size_t ca_len;

		/* The CA that signed this LSC, even if a rollover made
		 * another one current since. */
		ca_der = e->lsc.issuer_der;
		ca_len = e->lsc.issuer_der_len;
		if (ca_der == NULL)
			ca_cert_der(e->env.ca, &ca_der, &ca_len);
		chain[0].data = (uint8_t *)ca_der;
		chain[0].len = ca_len;
		cd.certificate.data = e->lsc.der;
		cd.certificate.len = e->lsc.der_len;
		cd.n_chain = 1;
		cd.chain = chain;
		msg.body_case = CAPF__PHONE_MESSAGE__BODY_CERTIFICATE;
		msg.certificate = &cd;
		ret = pack_frame(&msg, out);
		if (ret < 0)
			return fail(e, ret, NULL, out);
		e->state = ENROLL_WAIT_ACK;
		return 0;
	}

	Capf__End end = CAPF__END__INIT;
	end.code = 0;
	end.text = (char *)"certificate installed";
	msg.body_case = CAPF__PHONE_MESSAGE__BODY_END;
	msg.end = &end;
	ret = pack_frame(&msg, out);
	if (ret < 0)
		return fail(e, ret, NULL, out);
	out->close = true;
	out->success = true;
	e->state = ENROLL_DONE;
	return 0;
}
