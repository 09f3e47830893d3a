/*
 * The native codec: capf's own protocol (doc/protocol.md) to and from the
 * enrollment core's events and messages.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "ca/ca.h"
#include "capf/codec.h"

struct codec_native {
	uint8_t binding[CORE_BINDING_MAX];
	size_t binding_len;
	Capf__PhoneMessage *msg;  /* the last decoded message */
	struct ca_pubkey *key;    /* the key of the last CSR */
	const char *name;
};

int codec_native_new(struct codec_native **out, const uint8_t *binding, size_t binding_len)
{
	struct codec_native *n = calloc(1, sizeof(*n));

	*out = NULL;
	if (n == NULL)
		return CAPF_ENOMEM;
	if (binding_len > sizeof(n->binding))
		binding_len = sizeof(n->binding);
	memcpy(n->binding, binding, binding_len);
	n->binding_len = binding_len;
	n->name = "-";
	*out = n;
	return 0;
}

static void drop_last(struct codec_native *n)
{
	if (n->msg != NULL)
		capf__phone_message__free_unpacked(n->msg, NULL);
	n->msg = NULL;
}

void codec_native_free(struct codec_native *n)
{
	if (n == NULL)
		return;
	drop_last(n);
	ca_pubkey_free(n->key);
	gnutls_memset(n->binding, 0, sizeof(n->binding));
	free(n);
}

const char *codec_native_message_name(const struct codec_native *n)
{
	return n->name;
}

static int abort_with(struct core_event *ev, int code)
{
	ev->type = CORE_EV_ABORT;
	ev->code = code;
	return code;
}

/*
 * A CSR becomes a key with its proof of possession checked: the
 * self-signature, and the challengePassword carrying this session's
 * binding. Whether that is needed is the core's decision; a CSR that
 * cannot be read is still "the phone offered a key", so that one sent out
 * of order is refused as such.
 */
static int decode_csr(struct codec_native *n, const Capf__CsrSubmit *m, struct core_event *ev)
{
	struct ca_csr *csr = NULL;
	struct ca_pubkey *key = NULL;
	int ret;

	ev->type = CORE_EV_KEY;
	ev->key.kind = CORE_KEY_CSR;
	ret = ca_csr_parse(m->csr.data, m->csr.len, &csr);
	if (ret < 0) {
		ev->key.pop_result = CAPF_EBADCSR;
		return 0;
	}
	ret = ca_csr_pubkey(csr, &key);
	if (ret < 0) {
		ca_csr_free(csr);
		ev->key.pop_result = ret == CAPF_EPOLICY ? CAPF_EPOLICY : CAPF_EBADCSR;
		return 0;
	}
	ev->key.key_type = ca_pubkey_type(key);
	ev->key.pop_result = ca_csr_check(csr, n->binding, n->binding_len, ev->key.key_type);
	ca_pubkey_sha256(key, ev->key.spki_sha256);
	ca_csr_free(csr);
	ca_pubkey_free(n->key);
	n->key = key;
	ev->key.handle = key;
	return 0;
}

int codec_native_decode(struct codec_native *n, const uint8_t *payload, size_t len, time_t now,
			struct core_event *ev)
{
	Capf__PhoneMessage *msg = NULL;
	int ret;

	memset(ev, 0, sizeof(*ev));
	ev->now = now;
	drop_last(n);
	n->name = "-";
	ret = phone_msg_unpack(payload, len, &msg);
	if (ret < 0)
		return abort_with(ev, CAPF_EBADMSG);
	n->msg = msg;
	n->name = phone_msg_name(msg);

	switch (msg->body_case) {
	case CAPF__PHONE_MESSAGE__BODY_HELLO:
		if (msg->hello->version != CAPF_PROTOCOL_VERSION)
			return abort_with(ev, CAPF_EVERSION);
		ev->type = CORE_EV_CLAIM;
		ev->claim.device = msg->hello->device_name;
		return 0;
	case CAPF__PHONE_MESSAGE__BODY_CSR:
		return decode_csr(n, msg->csr, ev);
	case CAPF__PHONE_MESSAGE__BODY_STORE_ACK:
		ev->type = CORE_EV_ACK;
		ev->code = (int)(msg->store_ack->code > 0x7fffffffu ? 0x7fffffffu
								  : msg->store_ack->code);
		return 0;
	case CAPF__PHONE_MESSAGE__BODY_ERROR:
		ev->type = CORE_EV_PEER_END;
		ev->code = (int)(msg->error->code > 0x7fffffffu ? 0x7fffffffu : msg->error->code);
		return 0;
	default:
		/* What only a server sends is never in order from a phone. */
		return abort_with(ev, CAPF_EORDER);
	}
}

int codec_native_encode(const struct core_msg *m, const uint8_t *const *fallback_chain,
			const size_t *fallback_lens, size_t nfallback, uint8_t **frame,
			size_t *len)
{
	Capf__PhoneMessage msg = CAPF__PHONE_MESSAGE__INIT;
	Capf__OperationRequest req = CAPF__OPERATION_REQUEST__INIT;
	Capf__CertificateDelivery cd = CAPF__CERTIFICATE_DELIVERY__INIT;
	Capf__End end = CAPF__END__INIT;
	Capf__Error err = CAPF__ERROR__INIT;
	ProtobufCBinaryData chain[CORE_MAX_CHAIN];
	const uint8_t *const *cs = m->chain;
	const size_t *cl = m->chain_lens;
	size_t nc = m->nchain;

	*frame = NULL;
	*len = 0;
	switch (m->type) {
	case CORE_MSG_OP_REQUEST:
		req.version = CAPF_PROTOCOL_VERSION;
		req.op = (Capf__Operation)m->op;
		req.key_type = (Capf__KeyType)m->key_type;
		msg.body_case = CAPF__PHONE_MESSAGE__BODY_OP_REQUEST;
		msg.op_request = &req;
		break;
	case CORE_MSG_DELIVER:
		if (nc == 0) {
			cs = fallback_chain;
			cl = fallback_lens;
			nc = nfallback;
		}
		if (nc > CORE_MAX_CHAIN)
			return CAPF_EINVAL;
		for (size_t i = 0; i < nc; i++) {
			chain[i].data = (uint8_t *)cs[i];
			chain[i].len = cl[i];
		}
		cd.certificate.data = (uint8_t *)m->cert;
		cd.certificate.len = m->cert_len;
		cd.chain = chain;
		cd.n_chain = nc;
		msg.body_case = CAPF__PHONE_MESSAGE__BODY_CERTIFICATE;
		msg.certificate = &cd;
		break;
	case CORE_MSG_END:
		if (m->code == 0) {
			end.text = (char *)(m->text != NULL ? m->text : "");
			msg.body_case = CAPF__PHONE_MESSAGE__BODY_END;
			msg.end = &end;
		} else {
			err.code = (uint32_t)(m->code < 0 ? -m->code : m->code);
			err.text = (char *)(m->text != NULL ? m->text : capf_strerror(m->code));
			msg.body_case = CAPF__PHONE_MESSAGE__BODY_ERROR;
			msg.error = &err;
		}
		break;
	default:
		return CAPF_EINVAL;
	}
	return phone_msg_pack(&msg, frame, len);
}
