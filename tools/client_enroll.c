/*
 * One enrollment as a phone does it over capf's protocol (phone_enroll()
 * of tools/client.h): Hello, the operation the server asks for (a key and
 * a CSR bound to the TLS session, a delete, a fetch), the certificate
 * checked and stored, and the transcript of it all when asked.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>

#include "tools/client.h"

/* Reads up to cap bytes; returns the count, 0 at end of stream, or a
 * negative capf code. */
/* ---- one enrollment --------------------------------------------------- */

static void result_text(struct phone_enroll_result *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void result_text(struct phone_enroll_result *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}

/*
 * Receives the message the protocol expects next. An Error (or an End with
 * a non-zero code) from the server ends the session with the negated
 * server code; anything else unexpected is a protocol violation.
 */
static int recv_expect(struct client_tls *t, struct phone_enroll_result *r,
		       Capf__PhoneMessage__BodyCase want, Capf__PhoneMessage **out)
{
	Capf__PhoneMessage *m = NULL;
	uint32_t code = 0;
	const char *text = NULL;
	int ret;

	*out = NULL;
	ret = client_phone_recv(t, &m);
	if (ret < 0) {
		result_text(r, "%s", t->errtext[0] ? t->errtext : capf_strerror(ret));
		goto out;
	}
	if (m->body_case == CAPF__PHONE_MESSAGE__BODY_ERROR) {
		code = m->error->code;
		text = m->error->text;
	} else if (m->body_case == CAPF__PHONE_MESSAGE__BODY_END && m->end->code != 0) {
		code = m->end->code;
		text = m->end->text;
		r->server_end = true;
	}
	if (code != 0) {
		r->server_code = code > 1000000u ? 1000000 : (int)code;
		result_text(r, "%s", text && *text ? text : capf_strerror(r->server_code));
		ret = -r->server_code;
		goto out;
	}
	if (m->body_case == CAPF__PHONE_MESSAGE__BODY_ERROR) {
		result_text(r, "the server sent an error with code 0");
		ret = CAPF_EPROTO;
		goto out;
	}
	if (m->body_case != want) {
		result_text(r, "unexpected %s message from the server", phone_msg_name(m));
		ret = CAPF_EPROTO;
		goto out;
	}
	*out = m;
	m = NULL;
	ret = 0;
out:
	if (m)
		capf__phone_message__free_unpacked(m, NULL);
	return ret;
}

/*
 * Sends msg. When the send fails because the server already closed, the
 * Error it sent before closing is the better explanation: read it.
 */
static int send_or_collect(struct client_tls *t, struct phone_enroll_result *r,
			   const uint8_t *raw, size_t raw_len, const Capf__PhoneMessage *msg)
{
	Capf__PhoneMessage *m = NULL;
	char saved[sizeof(r->text)];
	int ret;

	ret = raw ? client_tls_send_raw(t, raw, raw_len) : client_phone_send(t, msg);
	if (ret == 0)
		return 0;
	result_text(r, "%s", t->errtext[0] ? t->errtext : capf_strerror(ret));
	if (ret == CAPF_ECONNRESET) {
		int rret;

		memcpy(saved, r->text, sizeof(saved));
		rret = recv_expect(t, r, CAPF__PHONE_MESSAGE__BODY__NOT_SET, &m);
		if (rret < 0 && r->server_code)
			ret = rret;
		else
			memcpy(r->text, saved, sizeof(saved));
		if (m)
			capf__phone_message__free_unpacked(m, NULL);
	}
	return ret;
}

/* Checks the delivered LSC and records its facts in r. */
/* Verifies der against trust through the chain delivered with it: the
 * CAPF CA, and the enterprise certificates above it, so that a phone that
 * trusts only the enterprise root can check its LSC. */
static int verify_delivered(const struct client_trust *t, const uint8_t *der, size_t len,
			    const ProtobufCBinaryData *chain, size_t n)
{
	gnutls_x509_crt_t list[1 + 8];
	gnutls_x509_trust_list_t tl = NULL;
	unsigned status = 1, loaded = 0;
	int ok = 0;

	if (client_trust_verify(t, der, len))
		return 1;
	if (n > 8 || gnutls_x509_trust_list_init(&tl, 0) < 0)
		return 0;
	for (size_t i = 0; i <= n; i++) {
		gnutls_datum_t d = i == 0 ? (gnutls_datum_t){ (unsigned char *)der, (unsigned)len }
				   : (gnutls_datum_t){ chain[i - 1].data, (unsigned)chain[i - 1].len };
		if (gnutls_x509_crt_init(&list[i]) < 0)
			goto out;
		loaded++;
		if (gnutls_x509_crt_import(list[i], &d, GNUTLS_X509_FMT_DER) < 0)
			goto out;
	}
	/* The trust list takes copies of the anchors; the phone's own trust
	 * stays as it is. */
	for (unsigned i = 0; i < t->n; i++) {
		gnutls_x509_crt_t c = NULL;
		gnutls_datum_t d = { NULL, 0 };
		if (gnutls_x509_crt_export2(t->crts[i], GNUTLS_X509_FMT_DER, &d) >= 0 &&
		    gnutls_x509_crt_init(&c) >= 0 && gnutls_x509_crt_import(c, &d, GNUTLS_X509_FMT_DER) >= 0)
			(void)gnutls_x509_trust_list_add_cas(tl, &c, 1, 0);
		else if (c != NULL)
			gnutls_x509_crt_deinit(c);
		gnutls_free(d.data);
	}
	ok = gnutls_x509_trust_list_verify_crt(tl, list, (unsigned)(n + 1), 0, &status, NULL) >= 0 &&
	     status == 0;
out:
	for (unsigned i = 0; i < loaded; i++)
		gnutls_x509_crt_deinit(list[i]);
	gnutls_x509_trust_list_deinit(tl, 1);
	return ok;
}

static int check_lsc(const struct phone_enroll_opts *o, const struct client_trust *trust,
		     gnutls_x509_privkey_t key, const ProtobufCBinaryData *der,
		     const ProtobufCBinaryData *chain, size_t nchain, struct phone_enroll_result *r,
		     uint32_t *ack_code)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t d = { der->data, (unsigned)der->len };
	uint8_t id_crt[64], id_key[64];
	size_t id_crt_len = sizeof(id_crt), id_key_len = sizeof(id_key);
	char cn[DEVICE_NAME_MAX + 64];
	size_t cn_len = sizeof(cn) - 1;
	int ret = CAPF_EREJECTED;

	*ack_code = (uint32_t)-CAPF_EBADMSG;
	if (der->len == 0 || der->len > UINT32_MAX || gnutls_x509_crt_init(&crt) < 0) {
		result_text(r, "no certificate delivered");
		goto out;
	}
	if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) < 0) {
		result_text(r, "the delivered certificate cannot be parsed");
		goto out;
	}
	*ack_code = (uint32_t)-CAPF_EPOLICY;
	if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, id_crt, &id_crt_len) < 0 ||
	    gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, id_key, &id_key_len) < 0 ||
	    id_crt_len != id_key_len || memcmp(id_crt, id_key, id_key_len) != 0) {
		result_text(r, "the delivered certificate is not for this phone's key");
		goto out;
	}
	*ack_code = (uint32_t)-CAPF_EIDENTITY;
	memset(cn, 0, sizeof(cn));
	if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cn_len) <
		    0 ||
	    strcmp(cn, o->name) != 0) {
		result_text(r, "the delivered certificate names \"%s\", not \"%s\"", cn, o->name);
		goto out;
	}
	*ack_code = (uint32_t)-CAPF_EUNTRUSTED;
	if (!o->skip_lsc_signature && !verify_delivered(trust, der->data, der->len, chain, nchain)) {
		result_text(r, "the delivered certificate does not verify against the CAPF CA");
		goto out;
	}
	r->serial_len = sizeof(r->serial);
	if (gnutls_x509_crt_get_serial(crt, r->serial, &r->serial_len) < 0)
		r->serial_len = 0;
	r->not_before = gnutls_x509_crt_get_activation_time(crt);
	r->not_after = gnutls_x509_crt_get_expiration_time(crt);
	r->lsc_der = malloc(der->len);
	if (!r->lsc_der) {
		*ack_code = (uint32_t)-CAPF_ENOMEM;
		ret = CAPF_ENOMEM;
		goto out;
	}
	memcpy(r->lsc_der, der->data, der->len);
	r->lsc_len = der->len;
	*ack_code = 0;
	ret = 0;
out:
	if (crt)
		gnutls_x509_crt_deinit(crt);
	return ret;
}

/* Waits before the step o->stall_at names, as a slow or hung phone does. */
static void stall(const struct phone_enroll_opts *o, enum phone_step step)
{
	struct timespec ts;

	if (o->stall_at != step || o->stall_ms == 0)
		return;
	ts.tv_sec = o->stall_ms / 1000u;
	ts.tv_nsec = (long)(o->stall_ms % 1000u) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * The delete and fetch exchanges of version 2: one message from the phone
 * (its result, or the certificates it holds), then End from the server.
 */
static int run_delete_or_fetch(const struct phone_enroll_opts *o, struct client_tls *t,
			       struct phone_enroll_result *r, int op)
{
	Capf__PhoneMessage out = CAPF__PHONE_MESSAGE__INIT;
	Capf__DeleteResult del = CAPF__DELETE_RESULT__INIT;
	Capf__FetchReport rep = CAPF__FETCH_REPORT__INIT;
	ProtobufCBinaryData certs[2];
	gnutls_datum_t der[2] = { { NULL, 0 }, { NULL, 0 } };
	const struct pki_pair *held[2] = { o->lsc, o->mic };
	Capf__PhoneMessage *in = NULL;
	size_t n = 0, i;
	int ret;

	stall(o, PHONE_STEP_RESULT);
	if (op == CAPF__OPERATION__OP_DELETE) {
		del.code = (o->misbehave & PHONE_REFUSE_DELETE) ? 1u : 0u;
		out.body_case = CAPF__PHONE_MESSAGE__BODY_DELETE_RESULT;
		out.delete_result = &del;
	} else {
		/* What a phone holds: its LSC (if any), then its MIC. */
		for (i = 0; i < 2; i++) {
			if (!held[i] || !held[i]->crt)
				continue;
			if (gnutls_x509_crt_export2(held[i]->crt, GNUTLS_X509_FMT_DER, &der[n]) < 0) {
				result_text(r, "cannot export a certificate to report");
				ret = CAPF_ECRYPTO;
				goto out;
			}
			certs[n].data = der[n].data;
			certs[n].len = der[n].size;
			n++;
		}
		rep.certificates = certs;
		rep.n_certificates = n;
		out.body_case = CAPF__PHONE_MESSAGE__BODY_FETCH_REPORT;
		out.fetch_report = &rep;
	}
	ret = send_or_collect(t, r, NULL, 0, &out);
	if (ret < 0)
		goto out;
	ret = recv_expect(t, r, CAPF__PHONE_MESSAGE__BODY_END, &in);
	if (ret < 0)
		goto out;
	result_text(r, "%s", in->end->text ? in->end->text : "");
	if (op == CAPF__OPERATION__OP_DELETE)
		r->deleted = true;
	else
		r->reported = n;
	ret = 0;
out:
	if (in)
		capf__phone_message__free_unpacked(in, NULL);
	for (i = 0; i < n; i++)
		gnutls_free(der[i].data);
	return ret;
}

int phone_enroll(const struct phone_enroll_opts *o, struct phone_enroll_result *r)
{
	struct client_tls t = CLIENT_TLS_INIT;
	struct client_trust own_trust = { 0 };
	const struct client_trust *trust = o->trust;
	Capf__PhoneMessage out = CAPF__PHONE_MESSAGE__INIT;
	Capf__Hello hello = CAPF__HELLO__INIT;
	Capf__CsrSubmit csr_msg = CAPF__CSR_SUBMIT__INIT;
	Capf__StoreAck ack = CAPF__STORE_ACK__INIT;
	Capf__PhoneMessage *in = NULL;
	gnutls_x509_privkey_t key = NULL;
	uint8_t binding[CLIENT_BINDING_LEN];
	uint8_t *csr = NULL;
	size_t csr_len = 0;
	uint32_t ack_code = 0;
	bool abort_session = false;
	Capf__KeyType supported[16];
	const struct pki_pair *client_cert = o->lsc && !o->present_mic ? o->lsc : o->mic;
	int key_type;
	int ret;

	r->stage = PHONE_STAGE_CONNECT;
	r->op = CAPF__OPERATION__OP_NONE;
	r->server_code = 0;
	r->server_end = false;
	r->text[0] = '\0';
	if (!o->name || !device_name_valid(o->name)) {
		result_text(r, "invalid device name");
		ret = CAPF_EINVAL;
		goto out;
	}
	if (!trust) {
		if (!o->ca_file) {
			result_text(r, "no CAPF CA file");
			ret = CAPF_EINVAL;
			goto out;
		}
		ret = client_trust_load(o->ca_file, &own_trust);
		if (ret < 0) {
			result_text(r, "cannot read the CAPF CA from %s: %s", o->ca_file,
				    capf_strerror(ret));
			goto out;
		}
		trust = &own_trust;
	}

	if (o->nsupported > sizeof(supported) / sizeof(supported[0])) {
		result_text(r, "too many supported keys");
		ret = CAPF_EINVAL;
		goto out;
	}
	ret = client_tls_open(&t, o->host, o->port, client_cert, trust, o->timeout_ms);
	if (ret < 0) {
		result_text(r, "%s", t.errtext);
		goto out;
	}
	r->stage = PHONE_STAGE_SESSION;
	r->tls_group = (int)gnutls_group_get(t.session);
	if (o->rec) {
		struct transcript_info info = {
			.protocol = "native",
			.tool = o->tool ? o->tool : "capf-phone enroll",
			.device = o->name,
			.host = o->host ? o->host : "127.0.0.1",
			.port = o->port ? o->port : CLIENT_PHONE_PORT_DEFAULT,
			.client_cert = !client_cert ? "none" : client_cert == o->lsc ? "lsc" : "mic",
			.client_crt = client_cert ? client_cert->crt : NULL,
		};

		transcript_begin(o->rec, &info, t.session);
		t.rec = o->rec;
	}

	if (o->misbehave & PHONE_OUT_OF_ORDER) {
		/* A well-formed, session-bound CSR, just at the wrong time. */
		ret = pki_gen_key(CAPF__KEY_TYPE__KEY_EC_P256, &key);
		if (ret == 0)
			ret = pki_tls_binding(t.session, binding);
		if (ret == 0)
			ret = pki_make_csr(key, o->name, binding, sizeof(binding), &csr, &csr_len);
		if (ret < 0) {
			result_text(r, "cannot make a CSR: %s", capf_strerror(ret));
			goto out;
		}
		csr_msg.csr.data = csr;
		csr_msg.csr.len = csr_len;
		out.body_case = CAPF__PHONE_MESSAGE__BODY_CSR;
		out.csr = &csr_msg;
	} else {
		stall(o, PHONE_STEP_HELLO);
		hello.version = o->version ? o->version : CAPF_PROTOCOL_VERSION;
		hello.device_name = (char *)o->name;
		if (hello.version >= 2) {
			/* Only version 2 has these fields; a version 1 phone
			 * never sends them. */
			if (o->auth_string)
				hello.auth_string = (char *)o->auth_string;
			for (size_t i = 0; i < o->nsupported; i++)
				supported[i] = (Capf__KeyType)o->supported_keys[i];
			hello.supported_keys = supported;
			hello.n_supported_keys = o->nsupported;
		}
		out.body_case = CAPF__PHONE_MESSAGE__BODY_HELLO;
		out.hello = &hello;
	}
	ret = send_or_collect(&t, r, NULL, 0, &out);
	if (ret < 0)
		goto out;
	ret = recv_expect(&t, r, CAPF__PHONE_MESSAGE__BODY_OP_REQUEST, &in);
	if (ret < 0)
		goto out;
	if (o->misbehave & PHONE_OUT_OF_ORDER) {
		result_text(r, "the server accepted a CSR before Hello");
		ret = CAPF_EPROTO;
		goto out;
	}
	r->op = (int)in->op_request->op;
	if ((r->op == CAPF__OPERATION__OP_DELETE || r->op == CAPF__OPERATION__OP_FETCH) &&
	    hello.version >= 2) {
		capf__phone_message__free_unpacked(in, NULL);
		in = NULL;
		ret = run_delete_or_fetch(o, &t, r, r->op);
		goto out;
	}
	if (r->op != CAPF__OPERATION__OP_INSTALL) {
		result_text(r, "the server asks for operation %s, which this phone does not do",
			    op_name(in->op_request->op));
		ret = CAPF_ENOTSUP;
		goto out;
	}
	key_type = o->key_type ? o->key_type : (int)in->op_request->key_type;
	capf__phone_message__free_unpacked(in, NULL);
	in = NULL;

	if (o->misbehave & PHONE_OVERSIZED_FRAME) {
		uint8_t hdr[FRAME_HEADER_LEN];

		frame_write_header(hdr, 1024u * 1024u);
		ret = send_or_collect(&t, r, hdr, sizeof(hdr), NULL);
		if (ret < 0)
			goto out;
		/* Only an Error (a negated server code) is the right answer. */
		ret = recv_expect(&t, r, CAPF__PHONE_MESSAGE__BODY__NOT_SET, &in);
		goto out;
	}

	r->key_type = key_type;
	if (o->reuse_key) {
		/* A phone that retries after losing the delivery keeps the key
		 * it made: the server then delivers the same certificate. */
		if (gnutls_x509_privkey_init(&key) < 0 ||
		    gnutls_x509_privkey_cpy(key, o->reuse_key) < 0) {
			result_text(r, "cannot use the key to reuse");
			ret = CAPF_ECRYPTO;
			goto out;
		}
		ret = 0;
	} else {
		ret = pki_gen_key(key_type, &key);
	}
	if (ret < 0) {
		result_text(r, "cannot make a %s key: %s", key_type_name(key_type),
			    capf_strerror(ret));
		goto out;
	}
	if (o->misbehave & PHONE_BAD_BINDING)
		ret = gnutls_rnd(GNUTLS_RND_NONCE, binding, sizeof(binding)) < 0 ? CAPF_ECRYPTO : 0;
	else
		ret = pki_tls_binding(t.session, binding);
	if (ret == 0)
		ret = pki_make_csr(key, o->name, binding, sizeof(binding), &csr, &csr_len);
	if (ret < 0) {
		result_text(r, "cannot make the CSR: %s", capf_strerror(ret));
		goto out;
	}
	stall(o, PHONE_STEP_CSR);
	/* The last byte of a PKCS#10 DER is the last byte of its signature. */
	if (o->misbehave & PHONE_BAD_CSR_SIGNATURE)
		csr[csr_len - 1] ^= 0x01;
	csr_msg.csr.data = csr;
	csr_msg.csr.len = csr_len;
	out.body_case = CAPF__PHONE_MESSAGE__BODY_CSR;
	out.csr = &csr_msg;
	ret = send_or_collect(&t, r, NULL, 0, &out);
	if (ret < 0)
		goto out;
	ret = recv_expect(&t, r, CAPF__PHONE_MESSAGE__BODY_CERTIFICATE, &in);
	if (ret < 0)
		goto out;
	ret = check_lsc(o, trust, key, &in->certificate->certificate, in->certificate->chain,
			in->certificate->n_chain, r, &ack_code);
	capf__phone_message__free_unpacked(in, NULL);
	in = NULL;
	if (ret == 0 && (o->misbehave & PHONE_NO_ACK)) {
		abort_session = true;
		goto out;
	}

	stall(o, PHONE_STEP_ACK);
	ack.code = ack_code;
	out.body_case = CAPF__PHONE_MESSAGE__BODY_STORE_ACK;
	out.store_ack = &ack;
	if (ret < 0) {
		/* Tell the server the certificate was refused; keep our own reason. */
		(void)client_phone_send(&t, &out);
		goto out;
	}
	ret = send_or_collect(&t, r, NULL, 0, &out);
	if (ret < 0)
		goto out;
	ret = recv_expect(&t, r, CAPF__PHONE_MESSAGE__BODY_END, &in);
	if (ret < 0)
		goto out;
	result_text(r, "%s", in->end->text ? in->end->text : "");
	r->acked = true;
	ret = 0;
out:
	if (ret == 0) {
		r->stage = PHONE_STAGE_DONE;
		r->key = key;
		key = NULL;
	}
	if (t.rec)
		transcript_end(t.rec, ret, r->server_code, r->text);
	if (in)
		capf__phone_message__free_unpacked(in, NULL);
	if (key)
		gnutls_x509_privkey_deinit(key);
	free(csr);
	gnutls_memset(binding, 0, sizeof(binding));
	if (abort_session)
		client_tls_abort(&t);
	else
		client_tls_close(&t);
	client_trust_deinit(&own_trust);
	return ret;
}

void phone_enroll_result_deinit(struct phone_enroll_result *r)
{
	free(r->lsc_der);
	r->lsc_der = NULL;
	r->lsc_len = 0;
	if (r->key)
		gnutls_x509_privkey_deinit(r->key);
	r->key = NULL;
}
