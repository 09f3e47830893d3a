/*
 * capf-replay - show recorded phone sessions, replay them against a
 * server and compare, or replay them as load. One subcommand per entry of
 * the table in main().
 */
#include "config.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "tools/replay/replay.h"

int replay_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, REPLAY_PROG " %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '" REPLAY_PROG " %s --help'.\n", cmd);
	return REPLAY_EXIT_USAGE;
}

double replay_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int replay_load_all(char **paths, int n, struct transcript *t)
{
	char err[256];
	int ret;

	for (int i = 0; i < n; i++) {
		ret = transcript_load(paths[i], t, err, sizeof(err));
		if (ret < 0) {
			fprintf(stderr, REPLAY_PROG ": %s: %s\n", paths[i], err);
			return ret;
		}
	}
	return 0;
}

/* ---- show ------------------------------------------------------------- */

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

static void show_cisco(FILE *f, const struct transcript_msg *m)
{
	struct cisco_msg cm;
	unsigned tag;

	memset(&cm, 0, sizeof(cm));
	if (cisco_msg_parse(m->payload, m->len, &cm) < 0) {
		fprintf(f, "      (%zu bytes that are no valid message: %s)\n", m->len,
			cm.why ? cm.why : "?");
		return;
	}
	fprintf(f, "      session id %08x, elements:", cm.session_id);
	for (tag = 0; tag < CISCO_MAX_TAG; tag++)
		if (cm.present & ((uint64_t)1 << tag))
			fprintf(f, " %u(%zu bytes)", tag, cm.el[tag].len);
	fputc('\n', f);
}

void replay_show(FILE *f, const char *path, const struct transcript *t)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct transcript_session *s = &t->sessions[i];
		char binding[2 * sizeof(s->binding) + 1];

		hex_encode(s->binding, s->binding_len, binding);
		fprintf(f, "session %zu (%s line %u): %s, %s, device %s\n", i + 1, path, s->line,
			s->protocol, s->tool[0] ? s->tool : "?", s->device);
		fprintf(f, "  server %s at %s, client certificate %s%s%.16s\n", s->server,
			s->started, s->client_cert[0] ? s->client_cert : "?",
			s->client_cert_sha256[0] ? " sha256 " : "", s->client_cert_sha256);
		fprintf(f, "  TLS %s %s %s, server certificate sha256 %.16s...\n", s->tls_version,
			s->tls_cipher, s->tls_group, s->server_cert_sha256);
		fprintf(f, "  channel binding %s\n", s->binding_len ? binding : "none");
		for (size_t k = 0; k < s->nmsgs; k++) {
			const struct transcript_msg *m = &s->msgs[k];

			fprintf(f, "  %3u %+10.6f %s %s (%zu bytes)\n", m->index, m->t,
				m->dir == TRANSCRIPT_PHONE ? "phone  ->" : "server <-", m->type,
				m->len);
			if (!strcmp(s->protocol, "cisco"))
				show_cisco(f, m);
			else
				show_native(f, s, m);
		}
		if (s->ended)
			fprintf(f, "  end %+10.6f result %d (%s), server code %d: %s\n", s->end_t,
				s->result, s->result ? capf_errname(s->result) : "OK", s->server_code,
				s->end_text);
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

/* ---- run -------------------------------------------------------------- */

enum { OPT_RAW = 256, OPT_PACE, OPT_STRICT_TEXT, OPT_LSC_DIR, OPT_TIMEOUT };

static void run_usage(FILE *f)
{
	fprintf(f,
		"Usage: " REPLAY_PROG " run FILE... --server HOST:PORT --ca FILE\n"
		"         [--mic-dir DIR | --mic FILE --mic-key FILE] [--lsc-dir DIR] [--raw]\n"
		"         [--pace] [--strict-text] [--timeout SECONDS] [--json]\n"
		"Replay recorded sessions, in order, as the phone: a new TLS session, a new key\n"
		"and CSR where the recorded one would be refused; compare the server's answers\n"
		"with the recorded ones and report the first difference of each session.\n"
		"\n"
		"  -s, --server HOST:PORT  the server to replay against\n"
		"  -c, --ca FILE           the CAPF CA certificate(s) to trust (PEM)\n"
		"  -d, --mic-dir DIR       the MIC of device D is DIR/D.pem, its key DIR/D.key\n"
		"  -m, --mic FILE          one MIC for every session (with --mic-key)\n"
		"  -k, --mic-key FILE\n"
		"      --lsc-dir DIR       keep the LSCs the devices get in DIR (D-lsc.pem,\n"
		"                          D-lsc.key), for sessions of later runs that present one\n"
		"      --raw               send every recorded byte as it was (nothing re-created)\n"
		"      --pace              wait the recorded time before each phone message\n"
		"      --strict-text       compare texts without masking serials and times\n"
		"      --timeout SECONDS   wait at most this long for each answer, default 10\n"
		"  -j, --json              one JSON line per session instead of text\n"
		"\n"
		"Exit status: 0 every session the same, 1 a difference or a failure,\n"
		"2 usage or unreadable transcript.\n");
}

int replay_parse_server(const char *arg, char *host, size_t hcap, char *port, size_t pcap)
{
	const char *colon;
	size_t hl;

	if (arg[0] == '[') {
		const char *close = strchr(arg, ']');

		if (!close || close[1] != ':')
			return CAPF_EINVAL;
		hl = (size_t)(close - arg - 1);
		colon = close + 1;
		arg++;
	} else {
		colon = strrchr(arg, ':');
		if (!colon)
			return CAPF_EINVAL;
		hl = (size_t)(colon - arg);
	}
	if (hl == 0 || hl >= hcap || strlen(colon + 1) == 0 || strlen(colon + 1) >= pcap)
		return CAPF_EINVAL;
	memcpy(host, arg, hl);
	host[hl] = '\0';
	strcpy(port, colon + 1);
	for (const char *p = port; *p; p++)
		if (*p < '0' || *p > '9')
			return CAPF_EINVAL;
	return atoi(port) >= 1 && atoi(port) <= 65535 ? 0 : CAPF_EINVAL;
}

static void print_result_json(const struct transcript_session *s, size_t n,
			      const struct replay_result *r)
{
	printf("{\"session\":%zu,\"line\":%u,\"device\":", n, s->line);
	client_json_string(stdout, s->device);
	printf(",\"result\":\"%s\",\"messages\":%zu,\"seconds\":%.6f",
	       r->failed ? "failed" : r->differs ? "differs" : "same", r->nmsgs, r->seconds);
	if (r->differs) {
		printf(",\"index\":%ld,\"type\":", r->index);
		client_json_string(stdout, r->type);
		printf(",\"field\":");
		client_json_string(stdout, r->field);
		printf(",\"recorded\":");
		client_json_string(stdout, r->want);
		printf(",\"got\":");
		client_json_string(stdout, r->got);
	}
	if (r->failed || r->differs) {
		printf(",\"text\":");
		client_json_string(stdout, r->text);
	}
	printf("}\n");
}

int replay_common_finish(const char *cmd, struct replay_common *c, const char *server)
{
	int ret;

	if (!server)
		return replay_usage_error(cmd, "--server HOST:PORT is required");
	if (replay_parse_server(server, c->host, sizeof(c->host), c->port, sizeof(c->port)) < 0)
		return replay_usage_error(cmd, "bad --server '%s' (HOST:PORT)", server);
	if (!c->ca)
		return replay_usage_error(cmd, "--ca is required");
	if (!c->o.mic != !c->o.mic_key)
		return replay_usage_error(cmd, "--mic and --mic-key go together");
	if (c->o.mic && c->o.mic_dir)
		return replay_usage_error(cmd, "--mic excludes --mic-dir");
	ret = client_trust_load(c->ca, &c->trust);
	if (ret < 0) {
		fprintf(stderr, REPLAY_PROG " %s: cannot read the CA %s: %s\n", cmd, c->ca,
			capf_strerror(ret));
		return REPLAY_EXIT_USAGE;
	}
	c->o.host = c->host;
	c->o.port = c->port;
	c->o.trust = &c->trust;
	c->o.timeout_ms = (unsigned)c->timeout * 1000u;
	return 0;
}

int replay_cmd_run(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "ca", required_argument, NULL, 'c' },
		{ "mic-dir", required_argument, NULL, 'd' },
		{ "mic", required_argument, NULL, 'm' },
		{ "mic-key", required_argument, NULL, 'k' },
		{ "lsc-dir", required_argument, NULL, OPT_LSC_DIR },
		{ "raw", no_argument, NULL, OPT_RAW },
		{ "pace", no_argument, NULL, OPT_PACE },
		{ "strict-text", no_argument, NULL, OPT_STRICT_TEXT },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct replay_common c;
	struct transcript t = { NULL, 0 };
	struct replay_state *st = NULL;
	const char *server = NULL;
	size_t same = 0, differ = 0, failed = 0;
	int json = 0, status = REPLAY_EXIT_USAGE, ch, ret;
	char *end;

	memset(&c, 0, sizeof(c));
	c.timeout = 10;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "s:c:d:m:k:jh", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			server = optarg;
			break;
		case 'c':
			c.ca = optarg;
			break;
		case 'd':
			c.o.mic_dir = optarg;
			break;
		case 'm':
			c.o.mic = optarg;
			break;
		case 'k':
			c.o.mic_key = optarg;
			break;
		case OPT_RAW:
			c.o.raw = true;
			break;
		case OPT_LSC_DIR:
			c.o.lsc_dir = optarg;
			break;
		case OPT_PACE:
			c.o.pace = true;
			break;
		case OPT_STRICT_TEXT:
			c.o.strict_text = true;
			break;
		case OPT_TIMEOUT:
			c.timeout = strtoul(optarg, &end, 10);
			if (*end || c.timeout < 1 || c.timeout > 3600)
				return replay_usage_error("run", "--timeout wants 1..3600 seconds");
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			run_usage(stdout);
			return REPLAY_EXIT_SAME;
		default:
			return replay_usage_error("run", "bad option");
		}
	}
	if (optind >= argc)
		return replay_usage_error("run", "a transcript file is required");
	ret = replay_common_finish("run", &c, server);
	if (ret)
		return ret;
	if (replay_load_all(argv + optind, argc - optind, &t) < 0)
		goto out;
	st = replay_state_new();
	if (!st) {
		fprintf(stderr, REPLAY_PROG " run: out of memory\n");
		goto out;
	}
	for (size_t i = 0; i < t.n; i++) {
		const struct transcript_session *s = &t.sessions[i];
		struct replay_result r;

		(void)replay_session(&c.o, s, st, &r);
		if (json)
			print_result_json(s, i + 1, &r);
		else if (r.failed || r.differs)
			printf("session %zu (line %u, %s): %s: %s\n", i + 1, s->line, s->device,
			       r.failed ? "FAILED" : "DIFFERS", r.text);
		else
			printf("session %zu (line %u, %s): same (%zu messages, %.1f ms)\n", i + 1,
			       s->line, s->device, r.nmsgs, r.seconds * 1e3);
		if (r.failed)
			failed++;
		else if (r.differs)
			differ++;
		else
			same++;
	}
	if (!json)
		printf("sessions: %zu same, %zu differ, %zu failed\n", same, differ, failed);
	status = differ || failed ? REPLAY_EXIT_DIFF : REPLAY_EXIT_SAME;
out:
	replay_state_free(st);
	transcript_free(&t);
	client_trust_deinit(&c.trust);
	return status;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: " REPLAY_PROG " COMMAND [options]\n"
		   "Show, replay and compare recorded phone sessions (capf-phone --record).\n"
		   "\n"
		   "  show FILE...                          print the sessions for people\n"
		   "  run FILE... --server H:P --ca FILE    replay them and compare the answers\n"
		   "  load FILE... --server H:P --ca FILE   replay them as load\n"
		   "\n"
		   "'" REPLAY_PROG " COMMAND --help' says more; see capf-replay(1).\n");
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int argc, char **argv);
	} cmds[] = {
		{ "show", replay_cmd_show },
		{ "run", replay_cmd_run },
		{ "load", replay_cmd_load },
	};
	int status;

	if (argc < 2) {
		usage(stderr);
		return REPLAY_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return REPLAY_EXIT_SAME;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name))
			continue;
		if (gnutls_global_init() < 0) {
			fprintf(stderr, REPLAY_PROG ": cannot initialise GnuTLS\n");
			return REPLAY_EXIT_USAGE;
		}
		status = cmds[i].fn(argc - 1, argv + 1);
		gnutls_global_deinit();
		return status;
	}
	fprintf(stderr, REPLAY_PROG ": unknown command '%s'\n", argv[1]);
	usage(stderr);
	return REPLAY_EXIT_USAGE;
}
