/*
 * tools/replay/show.c - capf-replay show: a transcript printed for people,
 * each session's header, then each message decoded: native messages field
 * by field, Cisco messages element by element in the order sent (their
 * certificates, keys, and whether their signatures verify).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "ca/ca.h"
#include "tools/replay/internal.h"

static void show_cert(FILE *f, const char *label, const uint8_t *der, size_t len)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t d = { (unsigned char *)der, (unsigned)len };
	char dn[256], when[32], serial_hex[81];
	uint8_t serial[40];
	size_t n = sizeof(dn), sn = sizeof(serial);

	if (gnutls_x509_crt_init(&crt) < 0)
		return;
	if (len == 0 || gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) < 0) {
		fprintf(f, "      %s: %zu bytes, not a certificate\n", label, len);
		goto out;
	}
	if (gnutls_x509_crt_get_dn(crt, dn, &n) < 0)
		snprintf(dn, sizeof(dn), "?");
	fprintf(f, "      %s: %s\n", label, dn);
	n = sizeof(dn);
	if (gnutls_x509_crt_get_issuer_dn(crt, dn, &n) < 0)
		snprintf(dn, sizeof(dn), "?");
	fprintf(f, "        issuer: %s\n", dn);
	if (gnutls_x509_crt_get_serial(crt, serial, &sn) >= 0) {
		hex_encode(serial, sn, serial_hex);
		fprintf(f, "        serial: %s\n", serial_hex);
	}
	fprintf(f, "        valid: %s",
		client_time_iso(gnutls_x509_crt_get_activation_time(crt), when, sizeof(when)));
	fprintf(f, " to %s\n",
		client_time_iso(gnutls_x509_crt_get_expiration_time(crt), when, sizeof(when)));
out:
	gnutls_x509_crt_deinit(crt);
}

static void show_csr(FILE *f, const struct transcript_session *s, const uint8_t *der,
		     size_t len)
{
	gnutls_x509_crq_t crq = NULL;
	gnutls_datum_t d = { (unsigned char *)der, (unsigned)len };
	char dn[256], pass[256], rec[2 * sizeof(s->binding) + 1];
	size_t n = sizeof(dn), pn = sizeof(pass);
	unsigned bits = 0;
	int pk;

	if (gnutls_x509_crq_init(&crq) < 0)
		return;
	if (gnutls_x509_crq_import(crq, &d, GNUTLS_X509_FMT_DER) < 0) {
		fprintf(f, "      csr: %zu bytes, not a PKCS#10 request\n", len);
		goto out;
	}
	if (gnutls_x509_crq_get_dn(crq, dn, &n) < 0)
		snprintf(dn, sizeof(dn), "?");
	pk = gnutls_x509_crq_get_pk_algorithm(crq, &bits);
	fprintf(f, "      csr: %s, %s %u bits, signature %s\n", dn,
		gnutls_pk_get_name((gnutls_pk_algorithm_t)pk), bits,
		gnutls_x509_crq_verify(crq, 0) >= 0 ? "valid" : "INVALID");
	if (gnutls_x509_crq_get_challenge_password(crq, pass, &pn) < 0) {
		fprintf(f, "      binding: none\n");
		goto out;
	}
	hex_encode(s->binding, s->binding_len, rec);
	fprintf(f, "      binding: %s (%s)\n", pass,
		s->binding_len && !strcmp(pass, rec) ? "this session's"
						     : "NOT this session's");
out:
	gnutls_x509_crq_deinit(crq);
}

static void show_native(FILE *f, const struct transcript_session *s,
			const struct transcript_msg *m)
{
	Capf__PhoneMessage *p = NULL;
	size_t i;

	if (!strcmp(m->type, "raw")) {
		fprintf(f, "      %zu raw bytes", m->len);
		if (m->len == FRAME_HEADER_LEN)
			fprintf(f, " (a frame header announcing %u bytes)",
				(unsigned)m->payload[0] << 24 | (unsigned)m->payload[1] << 16 |
					(unsigned)m->payload[2] << 8 | m->payload[3]);
		fputc('\n', f);
		return;
	}
	if (phone_msg_unpack(m->payload, m->len, &p) < 0) {
		fprintf(f, "      (%zu bytes that are no valid PhoneMessage)\n", m->len);
		return;
	}
	switch (p->body_case) {
	case CAPF__PHONE_MESSAGE__BODY_HELLO:
		fprintf(f, "      version %u, device %s", p->hello->version, p->hello->device_name);
		if (p->hello->auth_string && p->hello->auth_string[0])
			fprintf(f, ", auth string of %zu characters", strlen(p->hello->auth_string));
		for (i = 0; i < p->hello->n_supported_keys; i++)
			fprintf(f, "%s%s", i ? "," : ", supports ",
				key_type_name(p->hello->supported_keys[i]));
		fputc('\n', f);
		break;
	case CAPF__PHONE_MESSAGE__BODY_OP_REQUEST:
		fprintf(f, "      version %u, operation %s, key %s\n", p->op_request->version,
			op_name(p->op_request->op), key_type_name(p->op_request->key_type));
		break;
	case CAPF__PHONE_MESSAGE__BODY_CSR:
		show_csr(f, s, p->csr->csr.data, p->csr->csr.len);
		break;
	case CAPF__PHONE_MESSAGE__BODY_CERTIFICATE:
		show_cert(f, "certificate", p->certificate->certificate.data,
			  p->certificate->certificate.len);
		for (i = 0; i < p->certificate->n_chain; i++)
			show_cert(f, "chain", p->certificate->chain[i].data,
				  p->certificate->chain[i].len);
		break;
	case CAPF__PHONE_MESSAGE__BODY_STORE_ACK:
		fprintf(f, "      code %u\n", p->store_ack->code);
		break;
	case CAPF__PHONE_MESSAGE__BODY_DELETE_RESULT:
		fprintf(f, "      code %u\n", p->delete_result->code);
		break;
	case CAPF__PHONE_MESSAGE__BODY_FETCH_REPORT:
		fprintf(f, "      %zu certificates\n", p->fetch_report->n_certificates);
		for (i = 0; i < p->fetch_report->n_certificates; i++)
			show_cert(f, "held", p->fetch_report->certificates[i].data,
				  p->fetch_report->certificates[i].len);
		break;
	case CAPF__PHONE_MESSAGE__BODY_END:
		fprintf(f, "      code %u (%s): %s\n", p->end->code,
			p->end->code ? capf_errname((int)p->end->code) : "OK",
			p->end->text ? p->end->text : "");
		break;
	case CAPF__PHONE_MESSAGE__BODY_ERROR:
		fprintf(f, "      code %u (%s): %s\n", p->error->code,
			capf_errname((int)p->error->code), p->error->text ? p->error->text : "");
		break;
	default:
		break;
	}
	capf__phone_message__free_unpacked(p, NULL);
}

/* A certificate signature of AUTH_RESPONSE: whether it verifies over
 * the name and the certificate of the same message. */
static void show_cert_signature(FILE *f, const struct cisco_msg *cm, const char *name,
				const struct replay_cisco_el *e)
{
	const uint8_t *der, *sig = e->v;
	uint8_t *msg = NULL;
	size_t der_len, sig_len = e->len, msg_len;
	int sha512 = e->tag == CISCO_EL_SHA2_SIGNED_DATA;
	const char *verdict = "no certificate to verify it with";

	if (sha512) {
		if (e->len <= 3 || ((size_t)e->v[1] << 8 | e->v[2]) != e->len - 3) {
			fprintf(f, "      %s: %zu bytes, not hash id, length, signature\n",
				replay_cisco_el_name(e->tag), e->len);
			return;
		}
		sig = e->v + 3;
		sig_len = e->len - 3;
	}
	if (cisco_el_certificate(cm, CISCO_EL_CERTIFICATE, &der, &der_len) == 0 &&
	    replay_cisco_signed_name(name, der, der_len, &msg, &msg_len) == 0) {
		verdict = ca_cert_signed_verify(der, der_len, msg, msg_len, sha512, sig, sig_len) == 0
				  ? "verifies over the name and the certificate"
				  : "DOES NOT VERIFY over the name and the certificate";
		free(msg);
	}
	if (sha512)
		fprintf(f, "      %s: hash %u%s, %zu bytes: %s\n", replay_cisco_el_name(e->tag), e->v[0],
			e->v[0] == 3 ? " (SHA-512)" : "", sig_len, verdict);
	else
		fprintf(f, "      %s: SHA-1, %zu bytes: %s\n", replay_cisco_el_name(e->tag), sig_len,
			verdict);
}

static void show_sudi(FILE *f, const struct replay_cisco_el *e, uint32_t sid)
{
	const uint8_t *der, *sig;
	uint8_t *msg = NULL;
	size_t der_len, sig_len, msg_len;
	int sha512 = 1;

	if (!replay_cisco_sudi_part(e->v, e->len, 0, &der, &der_len)) {
		fprintf(f, "      SUDI_DATA: %zu bytes without a certificate\n", e->len);
		return;
	}
	show_cert(f, "SUDI_DATA certificate", der, der_len);
	if (!replay_cisco_sudi_part(e->v, e->len, 3, &sig, &sig_len)) {
		sha512 = 0;
		if (!replay_cisco_sudi_part(e->v, e->len, 1, &sig, &sig_len)) {
			fprintf(f, "      SUDI_DATA signature: none\n");
			return;
		}
	}
	if (replay_cisco_signed_sid(sid, der, der_len, &msg, &msg_len) < 0)
		return;
	fprintf(f, "      SUDI_DATA signature: %s, %zu bytes: %s\n", sha512 ? "SHA-512" : "SHA-1",
		sig_len,
		ca_cert_signed_verify(der, der_len, msg, msg_len, sha512, sig, sig_len) == 0
			? "verifies over the session id and the certificate"
			: "DOES NOT VERIFY over the session id and the certificate");
	free(msg);
}

/* A message that does not parse: what its header says. */
static void show_cisco_bad(FILE *f, const struct transcript_msg *m, const char *why)
{
	const uint8_t *p = m->payload;

	fprintf(f, "      (%zu bytes that are no valid message: %s)\n", m->len, why ? why : "?");
	if (m->len < CISCO_HEADER_LEN)
		return;
	fprintf(f, "      header byte 0x%02x%s, command %u (%s), session id %02x%02x%02x%02x, body "
		   "of %u bytes announced, %zu there\n",
		p[0], p[0] == CISCO_MAGIC ? "" : " (not 0x55)", p[1], transcript_cisco_type(p[1]),
		p[2], p[3], p[4], p[5], (unsigned)p[6] << 8 | p[7], m->len - CISCO_HEADER_LEN);
}

static void show_cisco(FILE *f, const struct transcript_msg *m, bool have_sid, uint32_t sid)
{
	struct replay_cisco_el els[REPLAY_CISCO_ELEMS_MAX];
	struct cisco_msg cm;
	char name[DEVICE_NAME_MAX + 64], v[256];
	size_t n;

	if (!strcmp(m->type, "raw") || cisco_msg_parse(m->payload, m->len, &cm) < 0) {
		memset(&cm, 0, sizeof(cm));
		(void)cisco_msg_parse(m->payload, m->len, &cm);
		show_cisco_bad(f, m, cm.why);
		return;
	}
	fprintf(f, "      session id %08x%s\n", cm.session_id,
		!have_sid || cm.session_id == sid ? "" : " (NOT the session's)");
	replay_cisco_device(&cm, "", name, sizeof(name));
	n = replay_cisco_elements(m->payload, m->len, els, REPLAY_CISCO_ELEMS_MAX);
	if (n == 0)
		fprintf(f, "      no element\n");
	for (size_t i = 0; i < n; i++) {
		const struct replay_cisco_el *e = &els[i];
		const uint8_t *der;
		size_t der_len;

		switch (e->tag) {
		case CISCO_EL_CERTIFICATE:
			if (e->v != cm.el[e->tag].data ||
			    cisco_el_certificate(&cm, e->tag, &der, &der_len) < 0) {
				fprintf(f, "      CERTIFICATE: %zu bytes, not a certificate element\n",
					e->len);
				break;
			}
			show_cert(f, "CERTIFICATE", der, der_len);
			break;
		case CISCO_EL_SIGNED_DATA:
		case CISCO_EL_SHA2_SIGNED_DATA:
			show_cert_signature(f, &cm, name, e);
			break;
		case CISCO_EL_SUDI_DATA:
			show_sudi(f, e, have_sid ? sid : cm.session_id);
			break;
		default:
			replay_cisco_el_value(e->tag, e->v, e->len, v, sizeof(v));
			fprintf(f, "      %s %s\n", replay_cisco_el_name(e->tag), v);
			break;
		}
	}
}

void replay_show(FILE *f, const char *path, const struct transcript *t)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct transcript_session *s = &t->sessions[i];
		char binding[2 * sizeof(s->binding) + 1];
		bool cisco = !strcmp(s->protocol, "cisco"), have_sid = false;
		uint32_t sid = 0;

		hex_encode(s->binding, s->binding_len, binding);
		fprintf(f, "session %zu (%s line %u): %s, %s, device %s\n", i + 1, path, s->line,
			s->protocol, s->tool[0] ? s->tool : "?", s->device);
		fprintf(f, "  server %s at %s, client certificate %s%s%.16s\n", s->server,
			s->started, s->client_cert[0] ? s->client_cert : "?",
			s->client_cert_sha256[0] ? " sha256 " : "", s->client_cert_sha256);
		fprintf(f, "  TLS %s %s %s, server certificate sha256 %.16s...\n", s->tls_version,
			s->tls_cipher, s->tls_group, s->server_cert_sha256);
		fprintf(f, "  channel binding %s\n", s->binding_len ? binding : "none");
		/* The Cisco session's id is the one the server chose first. */
		for (size_t k = 0; cisco && k < s->nmsgs && !have_sid; k++) {
			const struct transcript_msg *m = &s->msgs[k];

			if (m->dir == TRANSCRIPT_SERVER && m->len >= CISCO_HEADER_LEN &&
			    m->payload[0] == CISCO_MAGIC) {
				sid = (uint32_t)m->payload[2] << 24 | (uint32_t)m->payload[3] << 16 |
				      (uint32_t)m->payload[4] << 8 | m->payload[5];
				have_sid = true;
			}
		}
		for (size_t k = 0; k < s->nmsgs; k++) {
			const struct transcript_msg *m = &s->msgs[k];

			fprintf(f, "  %3u %+10.6f %s %s (%zu bytes", m->index, m->t,
				m->dir == TRANSCRIPT_PHONE ? "phone  ->" : "server <-", m->type,
				m->len);
			if (m->split)
				fprintf(f, " in two records: %zu + %zu", m->split, m->len - m->split);
			fputs(")\n", f);
			if (cisco)
				show_cisco(f, m, have_sid, sid);
			else
				show_native(f, s, m);
		}
		if (s->ended)
			fprintf(f, "  end %+10.6f result %d (%s), server code %d%s%s\n", s->end_t,
				s->result, s->result ? capf_errname(s->result) : "OK", s->server_code,
				s->end_text[0] ? ": " : "", s->end_text);
		else
			fprintf(f, "  (no end: the recording stopped inside the session)\n");
	}
}

int replay_cmd_show(int argc, char **argv)
{
	struct transcript t = { NULL, 0 };
	int status = REPLAY_EXIT_SAME;

	if (argc < 2)
		return replay_usage_error("show", "a transcript file is required");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		printf("Usage: " REPLAY_PROG " show FILE...\n"
		       "Print recorded sessions for people: each session's TLS parameters and\n"
		       "channel binding, then every message decoded, with its time offset.\n");
		return REPLAY_EXIT_SAME;
	}
	for (int i = 1; i < argc; i++) {
		if (replay_load_all(&argv[i], 1, &t) < 0) {
			status = REPLAY_EXIT_USAGE;
			break;
		}
		replay_show(stdout, argv[i], &t);
		transcript_free(&t);
	}
	transcript_free(&t);
	return status;
}

