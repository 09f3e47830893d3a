/*
 * tools/transcript.c - writing session transcripts (JSON lines,
 * doc/transcript.md), and the names of the message types in them. The
 * reader is tools/transcript_read.c.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>

#include "proto/proto.h"
#include "tools/client.h"
#include "tools/pki.h"
#include "tools/transcript.h"

struct transcript_writer {
	FILE *f;
	bool in_session;
	bool failed;
	unsigned next;     /* index of the next message */
	double t0;         /* monotonic time of transcript_begin() */
};

static double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int transcript_writer_open(const char *path, struct transcript_writer **out)
{
	struct transcript_writer *w;
	int fd;

	*out = NULL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return CAPF_ENOMEM;
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0) {
		int err = -errno;

		free(w);
		return err;
	}
	w->f = fdopen(fd, "a");
	if (!w->f) {
		close(fd);
		free(w);
		return CAPF_ENOMEM;
	}
	/* One line is flushed whole, in one write() as long as it fits the
	 * buffer: sessions appended by several processes do not interleave. */
	setvbuf(w->f, NULL, _IOFBF, 256u * 1024u);
	*out = w;
	return 0;
}

int transcript_writer_close(struct transcript_writer *w)
{
	int ret = 0;

	if (!w)
		return 0;
	if (fclose(w->f) != 0 || w->failed)
		ret = CAPF_EIO;
	free(w);
	return ret;
}

static void line_done(struct transcript_writer *w)
{
	fputs("}\n", w->f);
	if (fflush(w->f) != 0 || ferror(w->f))
		w->failed = true;
}

static void put_hex(FILE *f, const uint8_t *p, size_t len)
{
	static const char digits[] = "0123456789abcdef";

	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		fputc(digits[p[i] >> 4], f);
		fputc(digits[p[i] & 15], f);
	}
	fputc('"', f);
}

static void put_key(FILE *f, const char *key)
{
	fprintf(f, ",\"%s\":", key);
}

static void put_str(FILE *f, const char *key, const char *value)
{
	put_key(f, key);
	client_json_string(f, value);
}

static void sha256_hex(const uint8_t *der, size_t len, char out[65])
{
	uint8_t md[32];

	out[0] = '\0';
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, der, len, md) < 0)
		return;
	hex_encode(md, sizeof(md), out);
}

void transcript_begin(struct transcript_writer *w, const struct transcript_info *info,
		      gnutls_session_t s)
{
	const gnutls_datum_t *peers;
	unsigned npeers = 0;
	gnutls_datum_t der = { NULL, 0 };
	uint8_t binding[CLIENT_BINDING_LEN];
	char fp[65], when[32];
	const char *name;
	FILE *f;

	if (!w)
		return;
	f = w->f;
	w->in_session = true;
	w->next = 0;
	w->t0 = mono_now();
	fprintf(f, "{\"transcript\":%u,\"kind\":\"session\"", TRANSCRIPT_VERSION);
	put_str(f, "protocol", info->protocol);
	put_str(f, "tool", info->tool);
	put_str(f, "device", info->device);
	put_key(f, "server");
	fputc('"', f);
	/* Host names and ports come from the command line, checked there. */
	if (strchr(info->host, ':'))
		fprintf(f, "[%s]:%s", info->host, info->port);
	else
		fprintf(f, "%s:%s", info->host, info->port);
	fputc('"', f);
	put_str(f, "started", client_time_iso((int64_t)time(NULL), when, sizeof(when)));
	put_str(f, "client_cert", info->client_cert);
	if (info->client_crt && gnutls_x509_crt_export2(info->client_crt, GNUTLS_X509_FMT_DER,
							&der) >= 0) {
		char cn[256];
		size_t cn_len = sizeof(cn) - 1;

		sha256_hex(der.data, der.size, fp);
		put_str(f, "client_cert_sha256", fp);
		gnutls_free(der.data);
		memset(cn, 0, sizeof(cn));
		if (gnutls_x509_crt_get_dn_by_oid(info->client_crt, GNUTLS_OID_X520_COMMON_NAME, 0,
						  0, cn, &cn_len) >= 0)
			put_str(f, "client_cert_cn", cn);
	}
	put_str(f, "tls_version", gnutls_protocol_get_name(gnutls_protocol_get_version(s)));
	name = gnutls_ciphersuite_get(s);
	put_str(f, "tls_cipher", name ? name : "unknown");
	name = gnutls_group_get_name(gnutls_group_get(s));
	put_str(f, "tls_group", name ? name : "none");
	peers = gnutls_certificate_get_peers(s, &npeers);
	if (peers && npeers > 0) {
		sha256_hex(peers[0].data, peers[0].size, fp);
		put_str(f, "server_cert_sha256", fp);
	}
	if (pki_tls_binding(s, binding) == 0) {
		put_key(f, "binding");
		put_hex(f, binding, sizeof(binding));
	}
	gnutls_memset(binding, 0, sizeof(binding));
	line_done(w);
}

void transcript_message(struct transcript_writer *w, enum transcript_dir dir, const char *type,
			const uint8_t *payload, size_t len)
{
	transcript_message_split(w, dir, type, payload, len, 0);
}

void transcript_message_split(struct transcript_writer *w, enum transcript_dir dir,
			      const char *type, const uint8_t *payload, size_t len, size_t split)
{
	FILE *f;

	if (!w || !w->in_session)
		return;
	f = w->f;
	fprintf(f, "{\"transcript\":%u,\"kind\":\"msg\",\"i\":%u,\"t\":%.6f", TRANSCRIPT_VERSION,
		w->next++, mono_now() - w->t0);
	put_str(f, "dir", dir == TRANSCRIPT_PHONE ? "phone" : "server");
	put_str(f, "type", type);
	fprintf(f, ",\"len\":%zu", len);
	if (split > 0 && split < len)
		fprintf(f, ",\"split\":%zu", split);
	put_key(f, "payload");
	put_hex(f, payload, len);
	line_done(w);
}

void transcript_end(struct transcript_writer *w, int result, int server_code, const char *text)
{
	FILE *f;

	if (!w || !w->in_session)
		return;
	f = w->f;
	fprintf(f, "{\"transcript\":%u,\"kind\":\"end\",\"t\":%.6f,\"result\":%d", TRANSCRIPT_VERSION,
		mono_now() - w->t0, result);
	put_str(f, "result_name", result ? capf_errname(result) : "OK");
	fprintf(f, ",\"server_code\":%d", server_code);
	put_str(f, "text", text ? text : "");
	line_done(w);
	w->in_session = false;
}

const char *transcript_native_type(int body_case)
{
	switch (body_case) {
	case CAPF__PHONE_MESSAGE__BODY_HELLO:
		return "Hello";
	case CAPF__PHONE_MESSAGE__BODY_OP_REQUEST:
		return "OperationRequest";
	case CAPF__PHONE_MESSAGE__BODY_CSR:
		return "CsrSubmit";
	case CAPF__PHONE_MESSAGE__BODY_CERTIFICATE:
		return "CertificateDelivery";
	case CAPF__PHONE_MESSAGE__BODY_STORE_ACK:
		return "StoreAck";
	case CAPF__PHONE_MESSAGE__BODY_END:
		return "End";
	case CAPF__PHONE_MESSAGE__BODY_ERROR:
		return "Error";
	case CAPF__PHONE_MESSAGE__BODY_DELETE_RESULT:
		return "DeleteResult";
	case CAPF__PHONE_MESSAGE__BODY_FETCH_REPORT:
		return "FetchReport";
	default:
		return "unknown";
	}
}

const char *transcript_cisco_type(unsigned command)
{
	static const char *const names[] = {
		[CISCO_AUTH_REQUEST] = "AUTH_REQUEST",
		[CISCO_AUTH_RESPONSE] = "AUTH_RESPONSE",
		[CISCO_KEY_GENERATE_REQUEST] = "KEY_GENERATE_REQUEST",
		[CISCO_KEY_GENERATE_RESPONSE] = "KEY_GENERATE_RESPONSE",
		[CISCO_STORE_CERTIFICATE_REQUEST] = "STORE_CERTIFICATE_REQUEST",
		[CISCO_STORE_CERTIFICATE_RESPONSE] = "STORE_CERTIFICATE_RESPONSE",
		[CISCO_FETCH_CERTIFICATE_REQUEST] = "FETCH_CERTIFICATE_REQUEST",
		[CISCO_FETCH_CERTIFICATE_RESPONSE] = "FETCH_CERTIFICATE_RESPONSE",
		[CISCO_DELETE_CERTIFICATE_REQUEST] = "DELETE_CERTIFICATE_REQUEST",
		[CISCO_DELETE_CERTIFICATE_RESPONSE] = "DELETE_CERTIFICATE_RESPONSE",
		[CISCO_END_SESSION] = "END_SESSION",
		[CISCO_RETRY_LATER] = "RETRY_LATER",
		[CISCO_REQUEST_IN_PROGRESS] = "REQUEST_IN_PROGRESS",
	};

	if (command < sizeof(names) / sizeof(names[0]) && names[command])
		return names[command];
	return "unknown";
}
