/*
 * capf-phone cisco: one session of Cisco's CAPF protocol version 3, as a
 * Cisco phone runs it (shared/cisco-capf-v3.md): the server speaks first;
 * the phone answers with its name and its string or the certificate it
 * holds (signed over its name and that certificate); then it does what it
 * is told: make a key and send the bare public key, store the
 * certificate, report its certificates, delete its LSC. It can misbehave
 * on purpose, for the server's tests.
 */
#include "config.h"

#include <getopt.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca/ca.h"
#include "tools/phone/phone.h"

enum {
	OPT_SHA1 = 256,
	OPT_BAD_SESSION,
	OPT_WRONG_KEY,
	OPT_REFUSE_DELETE,
	OPT_NO_NUL,
	OPT_IN_PROGRESS,
	OPT_TIMEOUT,
	OPT_BAD_SIGNATURE,
	OPT_REPORT,
	OPT_SPLIT,
	OPT_MALFORM,
	OPT_SUDI,
	OPT_SUDI_KEY,
	OPT_RECORD,
};

struct cisco_phone {
	struct client_tls tls;
	uint32_t sid;
	uint8_t buf[CISCO_MSG_MAX];
	size_t len;
	struct cisco_msg m;
	const uint8_t *msg; /* the message in buf, m points into it */
	size_t msg_len;
	struct transcript_writer *rec; /* --record, or NULL */
	int malform; /* --malform: the next message sent is spoilt so */
};

/* --malform KIND: AUTH_RESPONSE spoilt on purpose, for the server's tests. */
enum {
	MALFORM_NONE,
	MALFORM_HEADER,  /* a header byte other than 0x55 */
	MALFORM_ELEMENT, /* the last element's length runs past the body */
	MALFORM_BODY,    /* the header's body length is beyond what is sent */
	MALFORM_NO_NAME, /* no DEVICE_NAME */
};

/* The unknown tag the element spoilt by MALFORM_ELEMENT has. */
#define MALFORM_TAG 31u

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " PHONE_PROG " cisco --name NAME --ca FILE [--port PORT] [--host HOST]\n"
		"         [--auth-string S] [--cert FILE --cert-key FILE [--sha1]]\n"
		"         [--out-cert FILE] [--out-key FILE] [--report FILE]\n"
		"Run one session of Cisco's CAPF protocol (version 3) as a Cisco phone.\n"
		"\n"
		"  -n, --name NAME        device name (DEVICE_NAME)\n"
		"  -c, --ca FILE          the CAPF CA certificate to trust (PEM)\n"
		"  -H, --host HOST        capfd's address, default 127.0.0.1\n"
		"  -p, --port PORT        capfd's [cisco] port, default 3804\n"
		"  -s, --auth-string S    the authentication string (PASSWORD)\n"
		"      --cert FILE        authenticate with this certificate (a MIC or an LSC,\n"
		"                         PEM) and a signature of its key (SHA2_SIGNED_DATA)\n"
		"      --cert-key FILE    that certificate's key (PEM)\n"
		"                         (--mic/--mic-key and --lsc/--lsc-key are the same)\n"
		"      --sha1             sign with SHA-1 (SIGNED_DATA), as older phones do\n"
		"  -o, --out-cert FILE    where a certificate stored goes, default NAME-lsc.pem\n"
		"  -K, --out-key FILE     where its key goes, default NAME-lsc.key\n"
		"      --report FILE      the certificate to report on a fetch (PEM)\n"
		"      --sudi FILE        send this manufacturer certificate (PEM) as SUDI_DATA,\n"
		"      --sudi-key FILE    signed with this key over the session id\n"
		"      --timeout SECONDS  wait at most this long for each answer, default 10\n"
		"      --record FILE      append a transcript of the session to FILE\n"
		"\n"
		"For testing the server only: --bad-session-id --wrong-key TYPE\n"
		"  --refuse-delete --name-without-nul --in-progress N --bad-signature\n"
		"  --split (each message in two TLS records)\n"
		"  --malform header|element|body|no-name (AUTH_RESPONSE: a bad header byte, an\n"
		"  element longer than the body, a body longer than sent, no DEVICE_NAME)\n"
		"\n"
		"Prints the END_SESSION reason; exit status: 0 reason 0 or 1, 1 any other end,\n"
		"2 usage, 3 connection/TLS failure.\n");
}

static int send_msg(struct cisco_phone *p, struct cisco_builder *b, bool split)
{
	const uint8_t *out;
	size_t len;
	int ret = cisco_finish(b, &out, &len);

	if (ret < 0)
		return ret;
	if (p->malform != MALFORM_NONE) {
		uint8_t *w = b->buf; /* out points here */

		if (p->malform == MALFORM_HEADER)
			w[0] = CISCO_MAGIC ^ 0xff;
		else if (p->malform == MALFORM_ELEMENT) /* 2 value bytes, 32 said */
			w[len - 3] = 32;
		else if (p->malform == MALFORM_BODY) {
			/* 16 bytes more than sent, then the phone closes. */
			unsigned body = (unsigned)(w[6] << 8 | w[7]) + 16u;

			w[6] = (uint8_t)(body >> 8);
			w[7] = (uint8_t)body;
		}
	}
	/* Recorded whole, with where it is cut into records. */
	transcript_message_split(p->rec, TRANSCRIPT_PHONE, transcript_cisco_type(out[1]), out, len,
				 split && len > 4 ? 4 : 0);
	if (split && len > 4) {
		ret = client_tls_send_raw(&p->tls, out, 4);
		if (ret == 0)
			ret = client_tls_send_raw(&p->tls, out + 4, len - 4);
		return ret;
	}
	return client_tls_send_raw(&p->tls, out, len);
}

/* Reads one whole message, however the records cut it. */
static int recv_msg(struct cisco_phone *p)
{
	for (;;) {
		ssize_t want = cisco_msg_length(p->buf, p->len);

		if (want < 0)
			return CAPF_EPROTO;
		if (want > 0 && p->len >= (size_t)want) {
			p->msg_len = (size_t)want;
			p->msg = p->buf;
			transcript_message(p->rec, TRANSCRIPT_SERVER, transcript_cisco_type(p->buf[1]),
					   p->buf, p->msg_len);
			return cisco_msg_parse(p->buf, p->msg_len, &p->m);
		}
		ssize_t n = gnutls_record_recv(p->tls.session, p->buf + p->len,
					       sizeof(p->buf) - p->len);
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n == 0)
			return CAPF_ECONNRESET;
		if (n < 0)
			return n == GNUTLS_E_TIMEDOUT ? CAPF_ETIMEDOUT : CAPF_EIO;
		p->len += (size_t)n;
	}
}

/* Drops the message just handled from the buffer. */
static void consume(struct cisco_phone *p)
{
	memmove(p->buf, p->buf + p->msg_len, p->len - p->msg_len);
	p->len -= p->msg_len;
}

static int read_pem_cert(const char *path, gnutls_x509_crt_t *crt)
{
	gnutls_datum_t d = { NULL, 0 };
	int ret = gnutls_load_file(path, &d);

	if (ret < 0)
		return CAPF_EIO;
	ret = gnutls_x509_crt_init(crt);
	if (ret >= 0)
		ret = gnutls_x509_crt_import(*crt, &d, GNUTLS_X509_FMT_PEM);
	gnutls_free(d.data);
	return ret < 0 ? CAPF_EBADMSG : 0;
}

static int read_pem_key(const char *path, gnutls_privkey_t *key)
{
	gnutls_datum_t d = { NULL, 0 };
	int ret = gnutls_load_file(path, &d);

	if (ret < 0)
		return CAPF_EIO;
	ret = gnutls_privkey_init(key);
	if (ret >= 0)
		ret = gnutls_privkey_import_x509_raw(*key, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
	gnutls_free(d.data);
	return ret < 0 ? CAPF_EBADMSG : 0;
}

/*
 * The phone's signature over NAME || 0x00 || certificate DER: SHA-512 (or
 * SHA-1); RSA as PKCS#1 v1.5 around the bare digest, as Cisco phones make
 * it; EC as plain ECDSA.
 */
static int sign_name(gnutls_privkey_t key, const char *name, const gnutls_datum_t *der, int sha1,
		     int corrupt, gnutls_datum_t *sig)
{
	gnutls_digest_algorithm_t dig = sha1 ? GNUTLS_DIG_SHA1 : GNUTLS_DIG_SHA512;
	uint8_t hash[64];
	gnutls_datum_t h = { hash, (unsigned)gnutls_hash_get_len(dig) };
	size_t nl = strlen(name);
	uint8_t *msg = malloc(nl + 1 + der->size);
	int pk, ret;

	if (msg == NULL)
		return CAPF_ENOMEM;
	memcpy(msg, name, nl);
	msg[nl] = 0;
	memcpy(msg + nl + 1, der->data, der->size);
	ret = gnutls_hash_fast(dig, msg, nl + 1 + der->size, hash);
	free(msg);
	if (ret < 0)
		return CAPF_ECRYPTO;
	pk = gnutls_privkey_get_pk_algorithm(key, NULL);
	if (pk == GNUTLS_PK_RSA)
		ret = gnutls_privkey_sign_hash(key, dig, GNUTLS_PRIVKEY_SIGN_FLAG_TLS1_RSA, &h, sig);
	else
		ret = gnutls_privkey_sign_hash2(key, gnutls_pk_to_sign(GNUTLS_PK_ECDSA, dig), 0, &h,
						sig);
	if (ret < 0)
		return CAPF_ECRYPTO;
	if (corrupt && sig->size > 8)
		sig->data[sig->size / 2] ^= 0x01;
	return 0;
}

static const char *cmd_name(unsigned c)
{
	switch (c) {
	case CISCO_AUTH_REQUEST: return "AUTH_REQUEST";
	case CISCO_KEY_GENERATE_REQUEST: return "KEY_GENERATE_REQUEST";
	case CISCO_STORE_CERTIFICATE_REQUEST: return "STORE_CERTIFICATE_REQUEST";
	case CISCO_FETCH_CERTIFICATE_REQUEST: return "FETCH_CERTIFICATE_REQUEST";
	case CISCO_DELETE_CERTIFICATE_REQUEST: return "DELETE_CERTIFICATE_REQUEST";
	case CISCO_END_SESSION: return "END_SESSION";
	case CISCO_RETRY_LATER: return "RETRY_LATER";
	default: return "?";
	}
}

static int key_type_asked(const struct cisco_msg *m)
{
	unsigned kt = 0, v = 0;

	if (cisco_el_u8(m, CISCO_EL_KEY_TYPE, &kt) < 0)
		return 0;
	if (kt == 1) {
		if (cisco_el_u8(m, CISCO_EL_CURVE, &v) < 0)
			return 0;
		return v == 0   ? CAPF__KEY_TYPE__KEY_EC_P256
		       : v == 1 ? CAPF__KEY_TYPE__KEY_EC_P384
		       : v == 2 ? CAPF__KEY_TYPE__KEY_EC_P521
				: 0;
	}
	if (cisco_el_u16(m, CISCO_EL_KEY_SIZE, &v) < 0)
		return 0;
	return v == 2048   ? CAPF__KEY_TYPE__KEY_RSA_2048
	       : v == 3072 ? CAPF__KEY_TYPE__KEY_RSA_3072
	       : v == 4096 ? CAPF__KEY_TYPE__KEY_RSA_4096
			   : 0;
}

static int write_pem(const char *path, const char *label, const uint8_t *der, size_t len,
		     mode_t mode)
{
	gnutls_datum_t in = { (unsigned char *)der, (unsigned)len }, out = { NULL, 0 };
	FILE *f;
	int ret;

	if (gnutls_pem_base64_encode2(label, &in, &out) < 0)
		return CAPF_ENOMEM;
	(void)unlink(path);
	f = fopen(path, "w");
	if (f == NULL) {
		gnutls_free(out.data);
		return CAPF_EIO;
	}
	(void)fchmod(fileno(f), mode);
	ret = fwrite(out.data, 1, out.size, f) == out.size ? 0 : CAPF_EIO;
	if (fclose(f) != 0)
		ret = CAPF_EIO;
	gnutls_free(out.data);
	return ret;
}

int phone_cmd_cisco(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "ca", required_argument, NULL, 'c' },
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "auth-string", required_argument, NULL, 's' },
		{ "cert", required_argument, NULL, 'C' },
		{ "cert-key", required_argument, NULL, 'k' },
		/* The names `enroll` gives them, for `enroll --protocol cisco`. */
		{ "mic", required_argument, NULL, 'C' },
		{ "mic-key", required_argument, NULL, 'k' },
		{ "lsc", required_argument, NULL, 'C' },
		{ "lsc-key", required_argument, NULL, 'k' },
		{ "sha1", no_argument, NULL, OPT_SHA1 },
		{ "out-cert", required_argument, NULL, 'o' },
		{ "out-key", required_argument, NULL, 'K' },
		{ "report", required_argument, NULL, OPT_REPORT },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "bad-session-id", no_argument, NULL, OPT_BAD_SESSION },
		{ "wrong-key", required_argument, NULL, OPT_WRONG_KEY },
		{ "refuse-delete", no_argument, NULL, OPT_REFUSE_DELETE },
		{ "name-without-nul", no_argument, NULL, OPT_NO_NUL },
		{ "in-progress", required_argument, NULL, OPT_IN_PROGRESS },
		{ "bad-signature", no_argument, NULL, OPT_BAD_SIGNATURE },
		{ "split", no_argument, NULL, OPT_SPLIT },
		{ "malform", required_argument, NULL, OPT_MALFORM },
		{ "sudi", required_argument, NULL, OPT_SUDI },
		{ "sudi-key", required_argument, NULL, OPT_SUDI_KEY },
		{ "record", required_argument, NULL, OPT_RECORD },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cisco_phone *p = NULL;
	struct client_trust trust = { 0 };
	struct cisco_builder *b = NULL;
	const char *name = NULL, *ca = NULL, *host = "127.0.0.1", *port = "3804";
	const char *secret = NULL, *cert_path = NULL, *key_path = NULL, *report = NULL;
	const char *out_cert = NULL, *out_key = NULL, *sudi_path = NULL, *sudi_key_path = NULL;
	const char *record = NULL;
	struct transcript_writer *rec = NULL;
	int end_reason = 0;
	char end_text[160] = "";
	char def_cert[512], def_key[512];
	gnutls_x509_crt_t sudi = NULL;
	gnutls_privkey_t sudi_key = NULL;
	gnutls_datum_t sudi_der = { NULL, 0 };
	unsigned long timeout = 10, in_progress = 0, v;
	int sha1 = 0, bad_session = 0, wrong_key = 0, refuse_delete = 0, no_nul = 0;
	int bad_sig = 0, split = 0, malform = MALFORM_NONE, status = PHONE_EXIT_FAIL, c, ret;
	gnutls_x509_crt_t crt = NULL;
	gnutls_privkey_t ckey = NULL;
	gnutls_x509_privkey_t newkey = NULL;
	gnutls_datum_t cder = { NULL, 0 }, sig = { NULL, 0 };

	optind = 0;
	while ((c = getopt_long(argc, argv, "n:c:H:p:s:C:k:o:K:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'n': name = optarg; break;
		case 'c': ca = optarg; break;
		case 'H': host = optarg; break;
		case 'p':
			if (phone_parse_port(optarg) < 0)
				return phone_usage_error("cisco", "bad port '%s'", optarg);
			port = optarg;
			break;
		case 's': secret = optarg; break;
		case 'C': cert_path = optarg; break;
		case 'k': key_path = optarg; break;
		case 'o': out_cert = optarg; break;
		case 'K': out_key = optarg; break;
		case OPT_REPORT: report = optarg; break;
		case OPT_SHA1: sha1 = 1; break;
		case OPT_BAD_SESSION: bad_session = 1; break;
		case OPT_REFUSE_DELETE: refuse_delete = 1; break;
		case OPT_NO_NUL: no_nul = 1; break;
		case OPT_BAD_SIGNATURE: bad_sig = 1; break;
		case OPT_SPLIT: split = 1; break;
		case OPT_MALFORM:
			if (!strcmp(optarg, "header"))
				malform = MALFORM_HEADER;
			else if (!strcmp(optarg, "element"))
				malform = MALFORM_ELEMENT;
			else if (!strcmp(optarg, "body"))
				malform = MALFORM_BODY;
			else if (!strcmp(optarg, "no-name"))
				malform = MALFORM_NO_NAME;
			else
				return phone_usage_error("cisco", "--malform wants header, element, body "
								  "or no-name");
			break;
		case OPT_SUDI: sudi_path = optarg; break;
		case OPT_SUDI_KEY: sudi_key_path = optarg; break;
		case OPT_RECORD: record = optarg; break;
		case OPT_WRONG_KEY:
			if (key_type_from_name(optarg, &wrong_key) < 0 || wrong_key == 0)
				return phone_usage_error("cisco", "unknown key type '%s'", optarg);
			break;
		case OPT_IN_PROGRESS:
			if (phone_parse_uint(optarg, 0, 100000, &in_progress) < 0)
				return phone_usage_error("cisco", "bad count '%s'", optarg);
			break;
		case OPT_TIMEOUT:
			if (phone_parse_uint(optarg, 1, 3600, &timeout) < 0)
				return phone_usage_error("cisco", "bad timeout '%s'", optarg);
			break;
		case 'h': usage(stdout); return PHONE_EXIT_OK;
		default: usage(stderr); return PHONE_EXIT_USAGE;
		}
	}
	if (name == NULL || ca == NULL)
		return phone_usage_error("cisco", "--name and --ca are required");
	if ((cert_path == NULL) != (key_path == NULL))
		return phone_usage_error("cisco", "--cert and --cert-key go together");
	if ((sudi_path == NULL) != (sudi_key_path == NULL))
		return phone_usage_error("cisco", "--sudi and --sudi-key go together");
	snprintf(def_cert, sizeof(def_cert), "%s-lsc.pem", name);
	snprintf(def_key, sizeof(def_key), "%s-lsc.key", name);
	if (out_cert == NULL)
		out_cert = def_cert;
	if (out_key == NULL)
		out_key = def_key;
	(void)v;

	p = calloc(1, sizeof(*p));
	b = calloc(1, sizeof(*b));
	if (p == NULL || b == NULL)
		goto out;
	p->tls.fd = -1;
	if (client_trust_load(ca, &trust) < 0) {
		fprintf(stderr, PHONE_PROG " cisco: cannot read the CA %s\n", ca);
		status = PHONE_EXIT_USAGE;
		goto out;
	}
	if (cert_path != NULL) {
		if (read_pem_cert(cert_path, &crt) < 0 || read_pem_key(key_path, &ckey) < 0 ||
		    gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &cder) < 0) {
			fprintf(stderr, PHONE_PROG " cisco: cannot read %s or %s\n", cert_path,
				key_path);
			status = PHONE_EXIT_USAGE;
			goto out;
		}
	}
	if (sudi_path != NULL &&
	    (read_pem_cert(sudi_path, &sudi) < 0 || read_pem_key(sudi_key_path, &sudi_key) < 0 ||
	     gnutls_x509_crt_export2(sudi, GNUTLS_X509_FMT_DER, &sudi_der) < 0)) {
		fprintf(stderr, PHONE_PROG " cisco: cannot read %s or %s\n", sudi_path, sudi_key_path);
		status = PHONE_EXIT_USAGE;
		goto out;
	}
	if (record != NULL) {
		ret = transcript_writer_open(record, &rec);
		if (ret < 0) {
			fprintf(stderr, PHONE_PROG " cisco: cannot open %s: %s\n", record,
				strerror(-ret));
			status = PHONE_EXIT_USAGE;
			goto out;
		}
	}
	/* No client certificate: Cisco's servers request none. */
	ret = client_tls_open(&p->tls, host, port, NULL, &trust, (unsigned)timeout * 1000);
	if (ret < 0) {
		fprintf(stderr, PHONE_PROG " cisco: %s\n",
			p->tls.errtext[0] ? p->tls.errtext : capf_strerror(ret));
		status = PHONE_EXIT_CONNECT;
		goto out;
	}
	if (rec != NULL) {
		struct transcript_info info = {
			.protocol = "cisco",
			.tool = "capf-phone cisco",
			.device = name,
			.host = host,
			.port = port,
			.client_cert = "none",
			.client_crt = NULL,
		};

		transcript_begin(rec, &info, p->tls.session);
		p->rec = rec;
	}

	for (;;) {
		ret = recv_msg(p);
		if (ret < 0) {
			snprintf(end_text, sizeof(end_text), "%s",
				 ret == CAPF_ECONNRESET ? "the server closed the session"
							: capf_strerror(ret));
			fprintf(stderr, PHONE_PROG " cisco: %s\n", end_text);
			goto out;
		}
		unsigned cmd = p->m.command;
		printf("received %s\n", cmd_name(cmd));
		p->sid = p->m.session_id;
		uint32_t sid = bad_session ? p->sid ^ 0x5a5a5a5au : p->sid;

		if (cmd == CISCO_AUTH_REQUEST) {
			cisco_builder_init(b, CISCO_AUTH_RESPONSE, sid);
			cisco_put_u8(b, CISCO_EL_REASON, CISCO_REASON_SUCCESS);
			cisco_put_u8(b, CISCO_EL_VERSION, CISCO_VERSION);
			if (malform == MALFORM_NO_NAME)
				; /* no DEVICE_NAME */
			else if (no_nul)
				cisco_put(b, CISCO_EL_DEVICE_NAME, name, strlen(name));
			else
				cisco_put_string(b, CISCO_EL_DEVICE_NAME, name);
			cisco_put_string(b, CISCO_EL_PASSWORD, secret != NULL ? secret : "");
			if (sudi != NULL) {
				/* SUDI_DATA: 00 u16 cert, 03 u16 SHA-512 signature over
				 * the session id (u32 little-endian) || the cert. */
				uint8_t *msg = malloc(4 + sudi_der.size), *e;
				gnutls_datum_t ss = { NULL, 0 }, hd;
				uint8_t h[64];

				if (msg == NULL)
					goto out;
				msg[0] = (uint8_t)p->sid;
				msg[1] = (uint8_t)(p->sid >> 8);
				msg[2] = (uint8_t)(p->sid >> 16);
				msg[3] = (uint8_t)(p->sid >> 24);
				memcpy(msg + 4, sudi_der.data, sudi_der.size);
				ret = gnutls_hash_fast(GNUTLS_DIG_SHA512, msg, 4 + sudi_der.size, h);
				free(msg);
				hd.data = h;
				hd.size = 64;
				if (ret >= 0)
					ret = gnutls_privkey_get_pk_algorithm(sudi_key, NULL) == GNUTLS_PK_RSA
						      ? gnutls_privkey_sign_hash(sudi_key, GNUTLS_DIG_SHA512,
										 GNUTLS_PRIVKEY_SIGN_FLAG_TLS1_RSA,
										 &hd, &ss)
						      : gnutls_privkey_sign_hash2(sudi_key,
										  GNUTLS_SIGN_ECDSA_SHA512, 0,
										  &hd, &ss);
				if (ret < 0)
					goto out;
				e = malloc(6 + sudi_der.size + ss.size);
				if (e == NULL) {
					gnutls_free(ss.data);
					goto out;
				}
				e[0] = 0;
				e[1] = (uint8_t)(sudi_der.size >> 8);
				e[2] = (uint8_t)sudi_der.size;
				memcpy(e + 3, sudi_der.data, sudi_der.size);
				e[3 + sudi_der.size] = 3;
				e[4 + sudi_der.size] = (uint8_t)(ss.size >> 8);
				e[5 + sudi_der.size] = (uint8_t)ss.size;
				memcpy(e + 6 + sudi_der.size, ss.data, ss.size);
				cisco_put(b, CISCO_EL_SUDI_DATA, e, 6 + sudi_der.size + ss.size);
				free(e);
				gnutls_free(ss.data);
			}
			if (crt != NULL) {
				ret = sign_name(ckey, name, &cder, sha1, bad_sig, &sig);
				if (ret < 0)
					goto out;
				cisco_put_u8(b, CISCO_EL_CERTIFICATE_TYPE, 2);
				cisco_put_certificate(b, CISCO_EL_CERTIFICATE, cder.data, cder.size);
				if (sha1) {
					cisco_put(b, CISCO_EL_SIGNED_DATA, sig.data, sig.size);
				} else {
					uint8_t *e = malloc(sig.size + 3);
					if (e == NULL)
						goto out;
					e[0] = 3;
					e[1] = (uint8_t)(sig.size >> 8);
					e[2] = (uint8_t)sig.size;
					memcpy(e + 3, sig.data, sig.size);
					cisco_put(b, CISCO_EL_SHA2_SIGNED_DATA, e, sig.size + 3);
					free(e);
				}
			}
			if (malform == MALFORM_ELEMENT)
				cisco_put(b, MALFORM_TAG, "xx", 2); /* its length spoilt on sending */
			p->malform = malform;
		} else if (cmd == CISCO_KEY_GENERATE_REQUEST) {
			int kt = wrong_key != 0 ? wrong_key : key_type_asked(&p->m);
			gnutls_pubkey_t pub = NULL;
			gnutls_datum_t spki = { NULL, 0 };

			for (unsigned long i = 0; i < in_progress; i++) {
				cisco_builder_init(b, CISCO_REQUEST_IN_PROGRESS, sid);
				if (send_msg(p, b, split) < 0)
					goto out;
			}
			if (kt == 0 || ca_key_new(kt, &newkey) < 0) {
				fprintf(stderr, PHONE_PROG " cisco: cannot make the key asked for\n");
				goto out;
			}
			if (gnutls_pubkey_init(&pub) < 0)
				goto out;
			gnutls_privkey_t pk = NULL;
			ret = gnutls_privkey_init(&pk);
			if (ret >= 0)
				ret = gnutls_privkey_import_x509(pk, newkey, 0);
			if (ret >= 0)
				ret = gnutls_pubkey_import_privkey(pub, pk, 0, 0);
			if (ret >= 0)
				ret = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &spki);
			gnutls_privkey_deinit(pk);
			gnutls_pubkey_deinit(pub);
			if (ret < 0)
				goto out;
			cisco_builder_init(b, CISCO_KEY_GENERATE_RESPONSE, sid);
			cisco_put(b, CISCO_EL_PUBLIC_KEY, spki.data, spki.size);
			gnutls_free(spki.data);
		} else if (cmd == CISCO_STORE_CERTIFICATE_REQUEST) {
			const uint8_t *der;
			size_t dlen;
			gnutls_datum_t kder = { NULL, 0 };
			int ok = cisco_el_certificate(&p->m, CISCO_EL_CERTIFICATE, &der, &dlen) == 0 &&
				 newkey != NULL;

			if (ok && client_trust_verify(&trust, der, dlen) < 0) {
				fprintf(stderr, PHONE_PROG " cisco: the certificate does not verify\n");
				ok = 0;
			}
			if (ok && gnutls_x509_privkey_export2_pkcs8(newkey, GNUTLS_X509_FMT_DER, NULL,
								   GNUTLS_PKCS_PLAIN, &kder) >= 0) {
				ok = write_pem(out_cert, "CERTIFICATE", der, dlen, 0644) == 0 &&
				     write_pem(out_key, "PRIVATE KEY", kder.data, kder.size, 0600) == 0;
				gnutls_free(kder.data);
			}
			if (ok)
				printf("stored %s\n", out_cert);
			cisco_builder_init(b, CISCO_STORE_CERTIFICATE_RESPONSE, sid);
			cisco_put_u8(b, CISCO_EL_REASON, ok ? CISCO_REASON_SUCCESS : CISCO_REASON_FAILURE);
		} else if (cmd == CISCO_FETCH_CERTIFICATE_REQUEST) {
			gnutls_x509_crt_t rc = NULL;
			gnutls_datum_t rder = { NULL, 0 };

			cisco_builder_init(b, CISCO_FETCH_CERTIFICATE_RESPONSE, sid);
			if (report != NULL && read_pem_cert(report, &rc) == 0 &&
			    gnutls_x509_crt_export2(rc, GNUTLS_X509_FMT_DER, &rder) >= 0) {
				cisco_put_u8(b, CISCO_EL_REASON, CISCO_REASON_SUCCESS);
				cisco_put_u8(b, CISCO_EL_CERTIFICATE_TYPE, 1);
				cisco_put_certificate(b, CISCO_EL_CERTIFICATE, rder.data, rder.size);
			} else {
				cisco_put_u8(b, CISCO_EL_REASON, CISCO_REASON_FAILURE);
			}
			gnutls_free(rder.data);
			if (rc != NULL)
				gnutls_x509_crt_deinit(rc);
		} else if (cmd == CISCO_DELETE_CERTIFICATE_REQUEST) {
			cisco_builder_init(b, CISCO_DELETE_CERTIFICATE_RESPONSE, sid);
			cisco_put_u8(b, CISCO_EL_REASON,
				     refuse_delete ? CISCO_REASON_FAILURE : CISCO_REASON_SUCCESS);
			if (!refuse_delete) {
				(void)unlink(out_cert);
				(void)unlink(out_key);
			}
		} else if (cmd == CISCO_END_SESSION || cmd == CISCO_RETRY_LATER) {
			unsigned reason = CISCO_REASON_FAILURE;
			char info[256] = "";

			if (cmd == CISCO_RETRY_LATER) {
				printf("retry later\n");
				status = PHONE_EXIT_FAIL;
				goto out;
			}
			(void)cisco_el_u8(&p->m, CISCO_EL_REASON, &reason);
			(void)cisco_el_string(&p->m, CISCO_EL_REASON_INFO, info, sizeof(info));
			printf("end: reason %u%s%s\n", reason, info[0] ? ": " : "", info);
			end_reason = (int)reason;
			snprintf(end_text, sizeof(end_text), "%s", info);
			status = reason == CISCO_REASON_SUCCESS || reason == CISCO_REASON_NO_ACTION
					 ? PHONE_EXIT_OK
					 : PHONE_EXIT_FAIL;
			goto out;
		} else {
			fprintf(stderr, PHONE_PROG " cisco: unexpected command %u\n", cmd);
			goto out;
		}
		consume(p);
		if (send_msg(p, b, split) < 0) {
			snprintf(end_text, sizeof(end_text), "cannot send");
			fprintf(stderr, PHONE_PROG " cisco: cannot send\n");
			goto out;
		}
		if (p->malform == MALFORM_BODY) {
			/* The rest of the body never comes: the phone hangs up. */
			snprintf(end_text, sizeof(end_text), "closed inside the message");
			printf("closed inside the message\n");
			goto out;
		}
		p->malform = MALFORM_NONE;
	}
out:
	/* The END_SESSION reason is the Cisco server's code. */
	transcript_end(p ? p->rec : NULL, status == PHONE_EXIT_OK ? 0 : CAPF_EREJECTED, end_reason,
		       end_text);
	if (transcript_writer_close(rec) < 0)
		fprintf(stderr, PHONE_PROG " cisco: cannot write %s\n", record);
	if (p != NULL)
		client_tls_close(&p->tls);
	client_trust_deinit(&trust);
	gnutls_free(sig.data);
	gnutls_free(cder.data);
	if (crt != NULL)
		gnutls_x509_crt_deinit(crt);
	if (ckey != NULL)
		gnutls_privkey_deinit(ckey);
	if (newkey != NULL)
		gnutls_x509_privkey_deinit(newkey);
	if (sudi != NULL)
		gnutls_x509_crt_deinit(sudi);
	if (sudi_key != NULL)
		gnutls_privkey_deinit(sudi_key);
	gnutls_free(sudi_der.data);
	free(p);
	free(b);
	return status;
}
