/*
 * The Cisco codec: Cisco's CAPF protocol version 3 (proto/cisco.c for the
 * bytes, shared/cisco-capf-v3.md for the exchanges) to and from the
 * enrollment core's events and messages. The server speaks first; the
 * phone authenticates inside the protocol (a string, or a certificate and
 * a signature over its name and that certificate); the new key comes bare,
 * with no proof of possession: the core issues it only to a session that
 * authenticated in this very TLS session, and only if it is exactly the
 * key it asked for.
 */
#include "config.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/ca.h"
#include "capf/codec.h"

struct codec_cisco {
	struct ca *ca;
	uint32_t session_id;
	unsigned in_progress; /* REQUEST_IN_PROGRESS seen */
	unsigned max_in_progress;
	int last_op;          /* the operation requested, for END_SESSION's reason */
	char device[DEVICE_NAME_MAX + 2];
	char password[AUTH_STRING_MAX + 2];
	struct core_peer peer;
	struct ca_pubkey *key;
	const uint8_t *certs[1];
	size_t lens[1];
	uint8_t report[FETCH_CERT_MAX];
	struct cisco_builder out;
	char why[128];
};

int codec_cisco_new(struct codec_cisco **out, struct ca *ca, unsigned max_in_progress)
{
	struct codec_cisco *n = calloc(1, sizeof(*n));

	*out = NULL;
	if (n == NULL)
		return CAPF_ENOMEM;
	n->ca = ca;
	n->max_in_progress = max_in_progress != 0 ? max_in_progress : 32;
	/* Known servers' ids are predictable; ours are not. */
	if (gnutls_rnd(GNUTLS_RND_NONCE, &n->session_id, sizeof(n->session_id)) < 0) {
		free(n);
		return CAPF_ECRYPTO;
	}
	*out = n;
	return 0;
}

void codec_cisco_free(struct codec_cisco *n)
{
	if (n == NULL)
		return;
	ca_pubkey_free(n->key);
	gnutls_memset(n->password, 0, sizeof(n->password));
	free(n);
}

uint32_t codec_cisco_session_id(const struct codec_cisco *n)
{
	return n->session_id;
}

void codec_cisco_set_session_id(struct codec_cisco *n, uint32_t id)
{
	n->session_id = id;
}

const char *codec_cisco_why(const struct codec_cisco *n)
{
	return n->why[0] ? n->why : NULL;
}

int codec_cisco_greeting(struct codec_cisco *n, const uint8_t **msg, size_t *len)
{
	cisco_builder_init(&n->out, CISCO_AUTH_REQUEST, n->session_id);
	cisco_put_u8(&n->out, CISCO_EL_VERSION, CISCO_VERSION);
	/* What the phone should offer is the record's business, which is
	 * not read yet: "none" lets it send whatever it holds. */
	cisco_put_u8(&n->out, CISCO_EL_AUTH_TYPE, 0);
	return cisco_finish(&n->out, msg, len);
}

static int refuse(struct codec_cisco *n, struct core_event *ev, int code, const char *why)
{
	snprintf(n->why, sizeof(n->why), "%s", why);
	ev->type = CORE_EV_ABORT;
	ev->code = code;
	return code;
}

/* The leaf's CN, fingerprint and serial, for the core's evidence. */
static void peer_summary(struct codec_cisco *n, const struct ca_cert_summary *sum)
{
	snprintf(n->peer.cn, sizeof(n->peer.cn), "%s", sum->cn);
	snprintf(n->peer.fingerprint, sizeof(n->peer.fingerprint), "%s", sum->fingerprint);
	n->peer.serial_len = sum->serial_len <= sizeof(n->peer.serial) ? sum->serial_len : 0;
	memcpy(n->peer.serial, sum->serial, n->peer.serial_len);
}

/*
 * The certificate a phone authenticates with, and its signature over
 * DEVICE_NAME (without the NUL) || 0x00 || the certificate's DER: SHA-512
 * when the phone sends it, SHA-1 only from phones that know no better.
 * What it proves goes to the core as evidence, as a TLS client
 * certificate would on the native protocol.
 */
static void cert_evidence(struct codec_cisco *n, const struct cisco_msg *m, time_t now)
{
	const uint8_t *der = NULL, *sig;
	size_t der_len = 0, sig_len, name_len = strlen(n->device);
	uint8_t *signed_msg = NULL;
	struct ca_cert_summary sum;
	int ret = CAPF_EAUTH;

	memset(&n->peer, 0, sizeof(n->peer));
	n->peer.mic_result = n->peer.lsc_result = CAPF_ENOCERT;
	if (cisco_el_certificate(m, CISCO_EL_CERTIFICATE, &der, &der_len) < 0)
		return;
	n->peer.present = true;
	signed_msg = malloc(name_len + 1 + der_len);
	if (signed_msg == NULL) {
		n->peer.mic_result = n->peer.lsc_result = CAPF_ENOMEM;
		return;
	}
	memcpy(signed_msg, n->device, name_len);
	signed_msg[name_len] = 0;
	memcpy(signed_msg + name_len + 1, der, der_len);
	if (m->el[CISCO_EL_SHA2_SIGNED_DATA].data != NULL) {
		/* u8 hash id (3 = SHA-512), u16 length, signature. */
		const struct cisco_el *e = &m->el[CISCO_EL_SHA2_SIGNED_DATA];
		if (e->len > 3 && e->data[0] == 3 &&
		    (size_t)((e->data[1] << 8) | e->data[2]) == e->len - 3) {
			sig = e->data + 3;
			sig_len = e->len - 3;
			ret = ca_cert_signed_verify(der, der_len, signed_msg, name_len + 1 + der_len, 1,
						    sig, sig_len);
		}
	} else if (m->el[CISCO_EL_SIGNED_DATA].data != NULL) {
		sig = m->el[CISCO_EL_SIGNED_DATA].data;
		sig_len = m->el[CISCO_EL_SIGNED_DATA].len;
		ret = ca_cert_signed_verify(der, der_len, signed_msg, name_len + 1 + der_len, 0, sig,
					    sig_len);
	}
	free(signed_msg);
	n->certs[0] = der;
	n->lens[0] = der_len;
	if (ret < 0) {
		/* A certificate without a signature of its key proves nothing. */
		if (ca_cert_summarize(der, der_len, &sum) == 0)
			peer_summary(n, &sum);
		n->peer.mic_result = n->peer.lsc_result = CAPF_EAUTH;
		return;
	}
	/* One parse for the MIC decision, the LSC decision and the summary. */
	if (ca_peer_evidence(n->ca, n->certs, n->lens, 1, now, &n->peer.mic_result,
			     &n->peer.lsc_result, &sum) == 0)
		peer_summary(n, &sum);
}

/* One sub-element of SUDI_DATA: tag (u8), length (u16), value. */
static bool sudi_part(const struct cisco_el *e, unsigned tag, const uint8_t **v, size_t *len)
{
	const uint8_t *p = e->data, *end = e->data + e->len;

	while (end - p >= 3) {
		size_t l = ((size_t)p[1] << 8) | p[2];

		if ((size_t)(end - p - 3) < l)
			return false;
		if (p[0] == tag) {
			*v = p + 3;
			*len = l;
			return true;
		}
		p += 3 + l;
	}
	return false;
}

/*
 * SUDI_DATA: the phone's manufacturer identity (an 802.1AR IDevID, a MIC
 * by another name) and its signature over this session's id (as a
 * little-endian u32) followed by that certificate, SHA-512 (tag 3) or
 * SHA-1 (tag 1). Unlike the certificate signature it covers something of
 * this session: when it verifies, it is the MIC evidence.
 */
static void sudi_evidence(struct codec_cisco *n, const struct cisco_msg *m, time_t now)
{
	const struct cisco_el *e = &m->el[CISCO_EL_SUDI_DATA];
	const uint8_t *der, *sig;
	size_t der_len, sig_len;
	struct ca_cert_summary sum;
	uint8_t *msg;
	int sha512 = 1, ret;

	if (e->data == NULL || !sudi_part(e, 0, &der, &der_len))
		return;
	if (!sudi_part(e, 3, &sig, &sig_len)) {
		if (!sudi_part(e, 1, &sig, &sig_len))
			return;
		sha512 = 0;
	}
	msg = malloc(4 + der_len);
	if (msg == NULL)
		return;
	msg[0] = (uint8_t)n->session_id;
	msg[1] = (uint8_t)(n->session_id >> 8);
	msg[2] = (uint8_t)(n->session_id >> 16);
	msg[3] = (uint8_t)(n->session_id >> 24);
	memcpy(msg + 4, der, der_len);
	ret = ca_cert_signed_verify(der, der_len, msg, 4 + der_len, sha512, sig, sig_len);
	free(msg);
	if (ret < 0 || ca_cert_summarize(der, der_len, &sum) < 0) {
		snprintf(n->why, sizeof(n->why), "SUDI_DATA whose signature does not verify");
		return;
	}
	n->certs[0] = der;
	n->lens[0] = der_len;
	ret = ca_mic_verify(n->ca, n->certs, n->lens, 1, NULL, now);
	if (ret < 0 && n->peer.mic_result == 0)
		return; /* the certificate already proved a MIC */
	n->peer.present = true;
	n->peer.mic_result = ret;
	snprintf(n->peer.mic_cn, sizeof(n->peer.mic_cn), "%s", sum.cn);
	if (n->peer.cn[0] == '\0')
		snprintf(n->peer.cn, sizeof(n->peer.cn), "%s", sum.cn);
}

static int decode_auth(struct codec_cisco *n, const struct cisco_msg *m, time_t now,
		       struct core_event *ev)
{
	unsigned version;
	int ret;

	if (cisco_el_u8(m, CISCO_EL_VERSION, &version) < 0 || version != CISCO_VERSION)
		return refuse(n, ev, CAPF_EVERSION, "AUTH_RESPONSE without VERSION 3");
	ret = cisco_el_string(m, CISCO_EL_DEVICE_NAME, n->device, sizeof(n->device));
	if (ret == CAPF_ENOENT)
		return refuse(n, ev, CAPF_EBADMSG, "AUTH_RESPONSE without DEVICE_NAME");
	if (ret < 0)
		return refuse(n, ev, CAPF_EBADMSG, "DEVICE_NAME not a NUL-terminated name");
	if (!device_name_valid(n->device))
		return refuse(n, ev, CAPF_EBADMSG, "DEVICE_NAME is not a valid device name");
	ev->type = CORE_EV_CLAIM;
	ev->claim.device = n->device;
	ev->claim.caps = CORE_CAP_DELETE | CORE_CAP_FETCH | CORE_CAP_RESULT | CORE_CAP_AUTH_FIRST;
	if (m->el[CISCO_EL_PASSWORD].data != NULL) {
		ret = cisco_el_string(m, CISCO_EL_PASSWORD, n->password, sizeof(n->password));
		if (ret < 0)
			return refuse(n, ev, CAPF_EBADMSG, "PASSWORD not NUL-terminated or too long");
		if (n->password[0] != '\0') { /* a lone 00 is no password */
			ev->claim.auth_string = n->password;
			ev->claim.auth_string_len = strlen(n->password);
		}
	}
	cert_evidence(n, m, now);
	sudi_evidence(n, m, now);
	ev->claim.peer = &n->peer;
	return 0;
}

static int decode_key(struct codec_cisco *n, const struct cisco_msg *m, struct core_event *ev)
{
	const struct cisco_el *e = &m->el[CISCO_EL_PUBLIC_KEY];
	struct ca_pubkey *key = NULL;
	int ret;

	ev->type = CORE_EV_KEY;
	ev->key.kind = CORE_KEY_SPKI;
	if (e->data == NULL) {
		snprintf(n->why, sizeof(n->why), "KEY_GENERATE_RESPONSE without PUBLIC_KEY");
		ev->key.pop_result = CAPF_EBADCSR;
		return 0;
	}
	ret = ca_pubkey_parse(e->data, e->len, &key);
	if (ret < 0) {
		snprintf(n->why, sizeof(n->why), "PUBLIC_KEY %s",
			 ret == CAPF_EPOLICY ? "of a type capf does not issue to"
					     : "is no valid SubjectPublicKeyInfo");
		ev->key.pop_result = ret == CAPF_EPOLICY ? CAPF_EPOLICY : CAPF_EBADCSR;
		return 0;
	}
	ca_pubkey_free(n->key);
	n->key = key;
	ev->key.key_type = ca_pubkey_type(key);
	ca_pubkey_sha256(key, ev->key.spki_sha256);
	ev->key.handle = key;
	return 0;
}

/* REASON 1 is yes; anything else (7) is no. */
static int reason_code(const struct cisco_msg *m)
{
	unsigned r;

	if (cisco_el_u8(m, CISCO_EL_REASON, &r) < 0)
		return CISCO_REASON_FAILURE;
	return r == CISCO_REASON_SUCCESS ? 0 : (int)(r != 0 ? r : CISCO_REASON_FAILURE);
}

int codec_cisco_decode(struct codec_cisco *n, const uint8_t *buf, size_t len, time_t now,
		       struct core_event *ev)
{
	struct cisco_msg m;
	int ret;

	memset(ev, 0, sizeof(*ev));
	ev->now = now;
	n->why[0] = '\0';
	ret = cisco_msg_parse(buf, len, &m);
	if (ret < 0)
		return refuse(n, ev, ret == CAPF_EPROTO ? CAPF_EPROTO : CAPF_EBADMSG, m.why);
	if (m.session_id != n->session_id)
		return refuse(n, ev, CAPF_EPROTO, "wrong session id");

	switch (m.command) {
	case CISCO_AUTH_RESPONSE:
		return decode_auth(n, &m, now, ev);
	case CISCO_KEY_GENERATE_RESPONSE:
		return decode_key(n, &m, ev);
	case CISCO_REQUEST_IN_PROGRESS:
		/* The phone is still making its key: fine, a bounded number
		 * of times (the session limit bounds the time). */
		if (++n->in_progress > n->max_in_progress)
			return refuse(n, ev, CAPF_ELIMIT, "too many REQUEST_IN_PROGRESS");
		return 1;
	case CISCO_STORE_CERTIFICATE_RESPONSE:
		ev->type = CORE_EV_ACK;
		ev->code = reason_code(&m);
		return 0;
	case CISCO_DELETE_CERTIFICATE_RESPONSE:
		ev->type = CORE_EV_DELETED;
		ev->code = reason_code(&m);
		return 0;
	case CISCO_FETCH_CERTIFICATE_RESPONSE: {
		const uint8_t *der;
		size_t dlen;

		ev->type = CORE_EV_FETCHED;
		if (reason_code(&m) != 0 ||
		    cisco_el_certificate(&m, CISCO_EL_CERTIFICATE, &der, &dlen) < 0) {
			/* It holds nothing it can show: an empty report. */
			ev->report.n = 0;
			return 0;
		}
		if (dlen > sizeof(n->report))
			return refuse(n, ev, CAPF_EBADMSG, "reported certificate too large");
		memcpy(n->report, der, dlen);
		n->certs[0] = n->report;
		n->lens[0] = dlen;
		ev->report.certs = n->certs;
		ev->report.lens = n->lens;
		ev->report.n = 1;
		return 0;
	}
	default:
		return refuse(n, ev, CAPF_EORDER, "a command a phone does not send");
	}
}

/* Cisco's reasons for capf's codes (doc/errors.md). */
static unsigned end_reason(int code, int op)
{
	if (code == 0)
		return op == CAPF__OPERATION__OP_FETCH ? CISCO_REASON_NO_ACTION : CISCO_REASON_SUCCESS;
	if (code == CAPF_ENO_OPERATION)
		return CISCO_REASON_NO_ACTION;
	if (code == CAPF_EUNKNOWN_DEVICE)
		return CISCO_REASON_UNKNOWN_DEVICE;
	return CISCO_REASON_FAILURE;
}

static unsigned curve_of(int kt)
{
	return kt == CAPF__KEY_TYPE__KEY_EC_P384 ? 1 : kt == CAPF__KEY_TYPE__KEY_EC_P521 ? 2 : 0;
}

static unsigned rsa_bits(int kt)
{
	return kt == CAPF__KEY_TYPE__KEY_RSA_4096 ? 4096 : kt == CAPF__KEY_TYPE__KEY_RSA_3072 ? 3072
												   : 2048;
}

int codec_cisco_encode(struct codec_cisco *n, const struct core_msg *m, const uint8_t **out,
		       size_t *len)
{
	struct cisco_builder *b = &n->out;

	switch (m->type) {
	case CORE_MSG_OP_REQUEST:
		n->last_op = m->op;
		if (m->op == CAPF__OPERATION__OP_DELETE) {
			cisco_builder_init(b, CISCO_DELETE_CERTIFICATE_REQUEST, n->session_id);
		} else if (m->op == CAPF__OPERATION__OP_FETCH) {
			cisco_builder_init(b, CISCO_FETCH_CERTIFICATE_REQUEST, n->session_id);
		} else {
			bool ec = m->key_type == CAPF__KEY_TYPE__KEY_EC_P256 ||
				  m->key_type == CAPF__KEY_TYPE__KEY_EC_P384 ||
				  m->key_type == CAPF__KEY_TYPE__KEY_EC_P521;

			cisco_builder_init(b, CISCO_KEY_GENERATE_REQUEST, n->session_id);
			cisco_put_u8(b, CISCO_EL_KEY_TYPE, ec ? 1 : 0);
			if (ec)
				cisco_put_u8(b, CISCO_EL_CURVE, curve_of(m->key_type));
			else
				cisco_put_u16(b, CISCO_EL_KEY_SIZE, rsa_bits(m->key_type));
		}
		break;
	case CORE_MSG_DELIVER:
		cisco_builder_init(b, CISCO_STORE_CERTIFICATE_REQUEST, n->session_id);
		cisco_put_u8(b, CISCO_EL_CERTIFICATE_TYPE, 1);
		cisco_put_certificate(b, CISCO_EL_CERTIFICATE, m->cert, m->cert_len);
		break;
	case CORE_MSG_END:
		if (m->code == CAPF_ERETRY) {
			/* Come back later: the phone's own timer decides when. */
			cisco_builder_init(b, CISCO_RETRY_LATER, n->session_id);
			cisco_put_u16(b, CISCO_EL_RETRY_DELAY, 30);
			break;
		}
		cisco_builder_init(b, CISCO_END_SESSION, n->session_id);
		cisco_put_u8(b, CISCO_EL_REASON, end_reason(m->code, n->last_op));
		if (m->code != 0 && m->text != NULL)
			cisco_put_string(b, CISCO_EL_REASON_INFO, m->text);
		break;
	default:
		return CAPF_EINVAL;
	}
	return cisco_finish(b, out, len);
}
