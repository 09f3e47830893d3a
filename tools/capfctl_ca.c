/*
 * capfctl commands about the CAPF CA and the trust stores (cert show and
 * revoke are in capfctl_cert.c):
 *
 *   ca status | csr | import | rollover | bundle
 *   trust add | list | remove
 *   crl
 *
 * The server makes every decision; these commands read files, send one
 * request each and print the answer (table, --json or --csv).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca/ca.h"
#include "tools/capfctl.h"

#define FILE_MAX (1024u * 1024u) /* what one request may carry */

enum {
	OPT_KEY_TYPE = OPT_FIRST_FREE + 20,
	OPT_KEY,
	OPT_SUBJECT,
	OPT_OUT,
	OPT_OVERLAP,
	OPT_DER,
	OPT_PEM,
	OPT_MFG,
	OPT_CHAIN,
};

/* ---- helpers ------------------------------------------------------------ */

/* Reads a whole file ("-" = stdin) of at most FILE_MAX bytes. */
static int read_input(const char *path, uint8_t **out, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t n = 0;
	int ret = 0;

	*out = NULL;
	*len = 0;
	if (f == NULL) {
		fprintf(stderr, PROG ": cannot read %s: %s\n", path, strerror(errno));
		return CTL_EXIT_USAGE;
	}
	buf = malloc(FILE_MAX + 1);
	if (buf == NULL) {
		ret = CTL_EXIT_REFUSED;
		goto out;
	}
	n = fread(buf, 1, FILE_MAX + 1, f);
	if (ferror(f) || n == 0 || n > FILE_MAX) {
		fprintf(stderr, PROG ": %s: %s\n", path,
			ferror(f) ? strerror(errno)
			: n == 0  ? "empty file"
				  : "larger than 1 MiB");
		ret = CTL_EXIT_USAGE;
		goto out;
	}
	*out = buf;
	*len = n;
	buf = NULL;
out:
	free(buf);
	if (f != stdin)
		fclose(f);
	return ret;
}

/* Writes data to path ("-" or NULL = stdout). Binary data is not sent to
 * a terminal. Returns 0 or CTL_EXIT_REFUSED. */
static int write_output(const char *path, const uint8_t *data, size_t len, bool binary)
{
	FILE *f;

	if (path == NULL || strcmp(path, "-") == 0) {
		if (binary && isatty(STDOUT_FILENO)) {
			fprintf(stderr, PROG ": not writing DER to a terminal: use --out FILE\n");
			return CTL_EXIT_USAGE;
		}
		if (fwrite(data, 1, len, stdout) != len)
			return CTL_EXIT_REFUSED;
		return 0;
	}
	f = fopen(path, "wb");
	if (f == NULL || fwrite(data, 1, len, f) != len) {
		fprintf(stderr, PROG ": cannot write %s: %s\n", path, strerror(errno));
		if (f != NULL)
			fclose(f);
		return CTL_EXIT_REFUSED;
	}
	if (fclose(f) != 0) {
		fprintf(stderr, PROG ": cannot write %s: %s\n", path, strerror(errno));
		return CTL_EXIT_REFUSED;
	}
	return 0;
}

/* --overlap-days: a whole number of days from 1 to 36500. */
static int parse_overlap(const char *s, unsigned *out)
{
	unsigned long n;
	char *end;

	errno = 0;
	n = strtoul(s, &end, 10);
	if (errno || *end || s[0] == '-' || n == 0 || n > 36500)
		return -1;
	*out = (unsigned)n;
	return 0;
}

/* ---- ca status ---------------------------------------------------------- */

static void usage_ca(FILE *f)
{
	fprintf(f, "Usage: " PROG " ca COMMAND ...\n"
		   "\n"
		   "Commands:\n"
		   "  status                 the trusted CAPF CAs, with expiry, and the pending "
		   "request\n"
		   "  csr --out FILE [--key-type T] [--key REF] [--subject DN]\n"
		   "                         new key and PKCS#10 request for an enterprise CA\n"
		   "  import FILE [--overlap-days N]\n"
		   "                         install the certificate signed for the request\n"
		   "  rollover [--key-type T] [--key REF] [--subject DN] [--overlap-days N]\n"
		   "                         replace the CAPF CA with a new self-signed one\n"
		   "  bundle [--out FILE] [--der]\n"
		   "                         the CAPF trust bundle, for phones and verifiers\n"
		   "\n"
		   "'" PROG " ca COMMAND --help' describes a command.\n");
}

static void usage_ca_status(FILE *f)
{
	fprintf(f, "Usage: " PROG " ca status [--json|--csv]\n"
		   "Show every CAPF CA the server trusts: the current (issuing) one, then\n"
		   "previous ones with the end of their overlap, then the pending request.\n");
}

static int cmd_ca_status(struct ctl *c, int argc, char **argv)
{
	Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
	Capf__CaStatusRequest q = CAPF__CA_STATUS_REQUEST__INIT;
	Capf__AdminResponse *resp = NULL;
	char b1[32], b2[32], b3[32];
	bool help;
	size_t i;
	int ret;

	ret = simple_opts(c, argc, argv, "ca status", usage_ca_status, &help);
	if (ret || help)
		return ret;
	ret = ctl_no_operands("ca status", argc, argv);
	if (ret)
		return ret;
	req.body_case = CAPF__ADMIN_REQUEST__BODY_CA_STATUS;
	req.ca_status = &q;
	ret = ctl_call_ok(c, &req, &resp, NULL);
	if (ret)
		return ret;
	if (resp->ca == NULL) {
		fprintf(stderr, PROG ": the server sent no CA status\n");
		ret = CTL_EXIT_REFUSED;
		goto out;
	}
	switch (c->fmt) {
	case FMT_JSON:
		fputc('[', stdout);
		for (i = 0; i < resp->ca->n_cas; i++) {
			const Capf__CaInfo *p = resp->ca->cas[i];

			fputs(i ? ",\n{" : "{", stdout);
			ctl_json_kv(stdout, "role", p->pending ? "pending" : p->current ? "current" : "previous",
				 true);
			ctl_json_kv(stdout, "id", p->pending ? NULL : p->id, true);
			ctl_json_kv(stdout, "subject", p->subject, true);
			ctl_json_kv(stdout, "issuer", p->pending ? NULL : p->issuer, true);
			ctl_json_kv(stdout, "fingerprint", p->pending ? NULL : p->fingerprint, true);
			ctl_json_kv(stdout, "key_type", p->key_type, true);
			ctl_json_kv(stdout, "key_store", p->key_store, true);
			ctl_json_time(stdout, "not_before", p->pending ? 0 : p->not_before, true);
			ctl_json_time(stdout, "not_after", p->pending ? 0 : p->not_after, true);
			ctl_json_time(stdout, "trusted_until", p->trusted_until, true);
			fprintf(stdout, "\"self_signed\":%s}", p->self_signed ? "true" : "false");
		}
		fputs("]\n", stdout);
		break;
	case FMT_CSV:
		fputs("role,id,subject,issuer,fingerprint,key_type,key_store,not_before,not_after,"
		      "trusted_until,self_signed\n",
		      stdout);
		for (i = 0; i < resp->ca->n_cas; i++) {
			const Capf__CaInfo *p = resp->ca->cas[i];
			const char *f[11] = {
				p->pending ? "pending" : p->current ? "current" : "previous",
				p->pending ? "" : p->id,
				p->subject,
				p->pending ? "" : p->issuer,
				p->pending ? "" : p->fingerprint,
				p->key_type,
				p->key_store,
				p->pending ? "" : ctl_when(p->not_before, b1, sizeof(b1)),
				p->pending ? "" : ctl_when(p->not_after, b2, sizeof(b2)),
				p->trusted_until ? ctl_when(p->trusted_until, b3, sizeof(b3)) : "",
				p->self_signed ? "yes" : "no",
			};
			ctl_csv_row(stdout, f, 11);
		}
		break;
	default:
		for (i = 0; i < resp->ca->n_cas; i++) {
			const Capf__CaInfo *p = resp->ca->cas[i];

			if (i)
				fputc('\n', stdout);
			if (p->pending) {
				printf("pending request:\n");
				printf("  subject:      %s\n", p->subject);
				printf("  key:          %s (%s)\n", p->key_type, p->key_store);
				continue;
			}
			printf("%s CAPF CA:\n", p->current ? "current" : "previous");
			printf("  id:           %s\n", p->id);
			printf("  subject:      %s\n", p->subject);
			printf("  issuer:       %s%s\n", p->issuer,
			       p->self_signed ? " (self-signed)" : "");
			printf("  key:          %s (%s)\n", p->key_type, p->key_store);
			printf("  not before:   %s\n", ctl_when(p->not_before, b1, sizeof(b1)));
			printf("  expires:      %s\n", ctl_when(p->not_after, b2, sizeof(b2)));
			if (!p->current)
				printf("  trusted until: %s (end of the overlap)\n",
				       ctl_when(p->trusted_until, b3, sizeof(b3)));
			printf("  sha256:       %s\n", p->fingerprint);
		}
		break;
	}
	ret = CTL_EXIT_OK;
out:
	capf__admin_response__free_unpacked(resp, NULL);
	return ret;
}

/* ---- ca csr / rollover -------------------------------------------------- */

static void usage_ca_csr(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " ca csr --out FILE [--key-type TYPE] [--key REF] [--subject DN]\n"
		"Make the key of the next CAPF CA and a PKCS#10 request (PEM) for an\n"
		"enterprise CA to sign; the server keeps both as the pending request.\n"
		"Then import the enterprise chain ('" PROG " trust add --chain') and the\n"
		"signed certificate ('" PROG " ca import').\n"
		"\n"
		"  -o, --out FILE       write the request to FILE ('-' for standard output)\n"
		"      --key-type TYPE  ec-p256 (default: [ca] key_type), ec-p384, rsa-2048,\n"
		"                       rsa-3072 or rsa-4096\n"
		"      --key REF        use an existing key: a file on the server, or a\n"
		"                       pkcs11: URI of a key in a token\n"
		"      --subject DN     subject (RFC 4514), default the current CA's\n");
}

static void usage_ca_rollover(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " ca rollover [--key-type TYPE] [--key REF] [--subject DN]\n"
		"                           [--overlap-days N]\n"
		"Replace the CAPF CA with a new self-signed one, which issues from now on.\n"
		"The old CA stays trusted (its LSCs authenticate, its CRL is kept) for the\n"
		"overlap, never beyond its own expiry. New TLS sessions get the new\n"
		"certificate; sessions in flight are not disturbed.\n"
		"\n"
		"      --key-type TYPE   type of the new key (default: [ca] key_type)\n"
		"      --key REF         use an existing key (file or pkcs11: URI)\n"
		"      --subject DN      subject, default the current CA's\n"
		"      --overlap-days N  default: [ca] overlap_days\n");
}

/* Options of ca csr and ca rollover. */
struct newkey_opts {
	int key_type;
	const char *key, *subject, *out;
	unsigned overlap;
};

static int parse_newkey(struct ctl *c, int argc, char **argv, const char *cmd,
			void (*usage)(FILE *), bool want_out, struct newkey_opts *o, bool *help)
{
	static const struct option longopts[] = {
		{ "key-type", required_argument, NULL, OPT_KEY_TYPE },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "subject", required_argument, NULL, OPT_SUBJECT },
		{ "out", required_argument, NULL, 'o' },
		{ "overlap-days", required_argument, NULL, OPT_OVERLAP },
		CTL_FORMAT_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	int opt, ret;

	memset(o, 0, sizeof(*o));
	*help = false;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_KEY_TYPE:
			if (ctl_parse_value(cmd, "--key-type", CTL_VALUE_KEY, optarg, &o->key_type))
				return CTL_EXIT_USAGE;
			break;
		case OPT_KEY:
			o->key = optarg;
			break;
		case OPT_SUBJECT:
			o->subject = optarg;
			break;
		case 'o':
			if (!want_out)
				return usage_error(cmd, "no --out here");
			o->out = optarg;
			break;
		case OPT_OVERLAP:
			if (want_out)
				return usage_error(cmd, "no --overlap-days here");
			if (parse_overlap(optarg, &o->overlap) < 0)
				return usage_error(cmd, "--overlap-days takes 1 to 36500");
			break;
		case OPT_JSON:
		case OPT_CSV:
			if (ctl_set_format(c, opt))
				return CTL_EXIT_USAGE;
			break;
		case 'h':
			usage(stdout);
			*help = true;
			return CTL_EXIT_OK;
		default:
			return ctl_bad_option(cmd, argv, longopts);
		}
	}
	ret = ctl_no_operands(cmd, argc, argv);
	if (ret)
		return ret;
	if (o->key != NULL && o->key_type != 0)
		return usage_error(cmd, "--key names an existing key: no --key-type with it");
	if (want_out && o->out == NULL)
		return usage_error(cmd, "give --out FILE for the request");
	return CTL_EXIT_OK;
}

static int cmd_ca_csr(struct ctl *c, int argc, char **argv)
{
	Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
	Capf__CaCsrRequest q = CAPF__CA_CSR_REQUEST__INIT;
	Capf__AdminResponse *resp = NULL;
	struct newkey_opts o;
	bool help;
	int ret;

	ret = parse_newkey(c, argc, argv, "ca csr", usage_ca_csr, true, &o, &help);
	if (ret || help)
		return ret;
	q.key_type = (Capf__KeyType)o.key_type;
	q.key = (char *)(o.key != NULL ? o.key : "");
	q.subject = (char *)(o.subject != NULL ? o.subject : "");
	req.body_case = CAPF__ADMIN_REQUEST__BODY_CA_CSR;
	req.ca_csr = &q;
	ret = ctl_call_ok(c, &req, &resp, NULL);
	if (ret)
		return ret;
	if (resp->ca == NULL || resp->ca->data.len == 0) {
		fprintf(stderr, PROG ": the server sent no request\n");
		ret = CTL_EXIT_REFUSED;
	} else {
		ret = write_output(o.out, resp->ca->data.data, resp->ca->data.len, false);
		if (ret == 0 && strcmp(o.out, "-") != 0)
			fprintf(stderr, "request written to %s: have it signed as a CA certificate, "
					"then import the chain and the certificate\n",
				o.out);
	}
	capf__admin_response__free_unpacked(resp, NULL);
	return ret;
}

static int cmd_ca_rollover(struct ctl *c, int argc, char **argv)
{
	Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
	Capf__CaRolloverRequest q = CAPF__CA_ROLLOVER_REQUEST__INIT;
	Capf__AdminResponse *resp = NULL;
	struct newkey_opts o;
	bool help;
	int ret;

	ret = parse_newkey(c, argc, argv, "ca rollover", usage_ca_rollover, false, &o, &help);
	if (ret || help)
		return ret;
	q.key_type = (Capf__KeyType)o.key_type;
	q.key = (char *)(o.key != NULL ? o.key : "");
	q.subject = (char *)(o.subject != NULL ? o.subject : "");
	q.overlap_days = o.overlap;
	req.body_case = CAPF__ADMIN_REQUEST__BODY_CA_ROLLOVER;
	req.ca_rollover = &q;
	ret = ctl_call_ok(c, &req, &resp, NULL);
	if (ret)
		return ret;
	if (c->fmt == FMT_JSON) {
		fputc('{', stdout);
		ctl_json_kv(stdout, "id", resp->ca != NULL ? resp->ca->id : NULL, false);
		fputs("}\n", stdout);
	} else if (c->fmt == FMT_CSV) {
		printf("id\n%s\n", resp->ca != NULL ? resp->ca->id : "");
	} else {
		printf("rolled over: the current CAPF CA is now %s\n",
		       resp->ca != NULL ? resp->ca->id : "?");
	}
	capf__admin_response__free_unpacked(resp, NULL);
	return CTL_EXIT_OK;
}

/* ---- ca import ---------------------------------------------------------- */

static void usage_ca_import(FILE *f)
{
	fprintf(f, "Usage: " PROG " ca import FILE [--overlap-days N]\n"
		   "Install the CAPF certificate (PEM or DER) that an enterprise CA signed for\n"
		   "the pending request. Its issuing chain must be imported first\n"
		   "('" PROG " trust add --chain'). It becomes the current CA; the previous\n"
		   "one stays trusted for the overlap.\n");
}

static int cmd_ca_import(struct ctl *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "overlap-days", required_argument, NULL, OPT_OVERLAP },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
	Capf__CaImportRequest q = CAPF__CA_IMPORT_REQUEST__INIT;
	Capf__AdminResponse *resp = NULL;
	uint8_t *data = NULL;
	size_t len = 0;
	int opt, ret;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_OVERLAP:
			if (parse_overlap(optarg, &q.overlap_days) < 0)
				return usage_error("ca import", "--overlap-days takes 1 to 36500");
			break;
		case 'h':
			usage_ca_import(stdout);
			return CTL_EXIT_OK;
		default:
			return ctl_bad_option("ca import", argv, longopts);
		}
	}
	if (optind + 1 != argc)
		return usage_error("ca import", "give exactly one FILE");
	ret = read_input(argv[optind], &data, &len);
	if (ret)
		return ret;
	q.certificate.data = data;
	q.certificate.len = len;
	req.body_case = CAPF__ADMIN_REQUEST__BODY_CA_IMPORT;
	req.ca_import = &q;
	ret = ctl_call_ok(c, &req, &resp, NULL);
	free(data);
	if (ret)
		return ret;
	printf("imported: the current CAPF CA is now %s\n",
	       resp->ca != NULL && resp->ca->id[0] ? resp->ca->id : "?");
	capf__admin_response__free_unpacked(resp, NULL);
	return CTL_EXIT_OK;
}

/* ---- ca bundle and crl -------------------------------------------------- */

static void usage_ca_bundle(FILE *f)
{
	fprintf(f, "Usage: " PROG " ca bundle [--out FILE] [--der]\n"
		   "The CAPF trust bundle: every CAPF CA the server trusts (current first) and\n"
		   "the certificates of their issuing chains. PEM; with --der, one PKCS#7\n"
		   "(certs-only) structure. Phones and every system that must trust LSCs\n"
		   "load it.\n");
}

static void usage_crl(FILE *f)
{
	fprintf(f, "Usage: " PROG " crl [--pem|--der] [--out FILE]\n"
		   "The certificate revocation list signed by the current CAPF CA (DER, the\n"
		   "default), or with --pem the CRLs of every trusted CAPF CA (PEM).\n");
}

/* ca bundle and crl: --out, and a format switch. */
static int fetch_blob(struct ctl *c, int argc, char **argv, const char *cmd, bool is_crl)
{
	static const struct option longopts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "der", no_argument, NULL, OPT_DER },
		{ "pem", no_argument, NULL, OPT_PEM },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
	Capf__CaBundleRequest bq = CAPF__CA_BUNDLE_REQUEST__INIT;
	Capf__CrlRequest cq = CAPF__CRL_REQUEST__INIT;
	Capf__AdminResponse *resp = NULL;
	const char *out = NULL;
	bool der = is_crl;
	int opt, ret;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'o':
			out = optarg;
			break;
		case OPT_DER:
			der = true;
			break;
		case OPT_PEM:
			der = false;
			break;
		case 'h':
			(is_crl ? usage_crl : usage_ca_bundle)(stdout);
			return CTL_EXIT_OK;
		default:
			return ctl_bad_option(cmd, argv, longopts);
		}
	}
	ret = ctl_no_operands(cmd, argc, argv);
	if (ret)
		return ret;
	if (is_crl) {
		cq.pem = !der;
		req.body_case = CAPF__ADMIN_REQUEST__BODY_CRL;
		req.crl = &cq;
	} else {
		bq.der = der;
		req.body_case = CAPF__ADMIN_REQUEST__BODY_CA_BUNDLE;
		req.ca_bundle = &bq;
	}
	ret = ctl_call_ok(c, &req, &resp, NULL);
	if (ret)
		return ret;
	if (resp->ca == NULL || resp->ca->data.len == 0) {
		fprintf(stderr, PROG ": the server sent nothing\n");
		ret = CTL_EXIT_REFUSED;
	} else {
		ret = write_output(out, resp->ca->data.data, resp->ca->data.len, der);
	}
	capf__admin_response__free_unpacked(resp, NULL);
	return ret;
}

static int cmd_ca_bundle(struct ctl *c, int argc, char **argv)
{
	return fetch_blob(c, argc, argv, "ca bundle", false);
}

static int cmd_ca(struct ctl *c, int argc, char **argv)
{
	static const struct ctl_subcommand subs[] = {
		{ "status", cmd_ca_status },
		{ "csr", cmd_ca_csr },
		{ "import", cmd_ca_import },
		{ "rollover", cmd_ca_rollover },
		{ "bundle", cmd_ca_bundle },
		{ NULL, NULL },
	};

	return ctl_dispatch(c, argc, argv, "ca", usage_ca, subs);
}

static int cmd_crl(struct ctl *c, int argc, char **argv)
{
	return fetch_blob(c, argc, argv, "crl", true);
}

/* ---- trust -------------------------------------------------------------- */

static void usage_trust(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " trust COMMAND ...\n"
		"\n"
		"Commands:\n"
		"  add --mfg|--chain FILE    add the certificates of FILE (PEM or DER)\n"
		"  list [--mfg|--chain]      list the trusted certificates\n"
		"  remove [--mfg|--chain] FINGERPRINT\n"
		"                            remove one (8 or more hex digits of its SHA-256)\n"
		"\n"
		"--mfg: manufacturer roots, which authenticate phones by their MIC.\n"
		"--chain: the enterprise CA chain (anchors and intermediates) that an\n"
		"imported CAPF certificate must chain to.\n");
}

static int parse_kind(struct ctl *c, int argc, char **argv, const char *cmd, int *kind,
		      bool *help)
{
	static const struct option longopts[] = {
		{ "mfg", no_argument, NULL, OPT_MFG },
		{ "chain", no_argument, NULL, OPT_CHAIN },
		CTL_FORMAT_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	*kind = CAPF__TRUST_KIND__TRUST_ANY;
	*help = false;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_MFG:
		case OPT_CHAIN:
			if (*kind != CAPF__TRUST_KIND__TRUST_ANY)
				return usage_error(cmd, "give --mfg or --chain, not both");
			*kind = opt == OPT_MFG ? CAPF__TRUST_KIND__TRUST_MFG
					       : CAPF__TRUST_KIND__TRUST_CHAIN;
			break;
		case OPT_JSON:
		case OPT_CSV:
			if (ctl_set_format(c, opt))
				return CTL_EXIT_USAGE;
			break;
		case 'h':
			usage_trust(stdout);
			*help = true;
			return CTL_EXIT_OK;
		default:
			return ctl_bad_option(cmd, argv, longopts);
		}
	}
	return CTL_EXIT_OK;
}

static int cmd_trust_add(struct ctl *c, int argc, char **argv)
{
	Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
	Capf__TrustAddRequest q = CAPF__TRUST_ADD_REQUEST__INIT;
	Capf__AdminResponse *resp = NULL;
	uint8_t *data = NULL;
	size_t len = 0;
	bool help;
	int kind, ret;

	ret = parse_kind(c, argc, argv, "trust add", &kind, &help);
	if (ret || help)
		return ret;
	if (kind == CAPF__TRUST_KIND__TRUST_ANY)
		return usage_error("trust add", "give --mfg or --chain");
	if (optind + 1 != argc)
		return usage_error("trust add", "give exactly one FILE");
	ret = read_input(argv[optind], &data, &len);
	if (ret)
		return ret;
	q.kind = (Capf__TrustKind)kind;
	q.certificates.data = data;
	q.certificates.len = len;
	req.body_case = CAPF__ADMIN_REQUEST__BODY_TRUST_ADD;
	req.trust_add = &q;
	ret = ctl_call_ok(c, &req, &resp, argv[optind]);
	free(data);
	if (ret)
		return ret;
	printf("added %u certificate%s to the %s\n", resp->ca != NULL ? resp->ca->added : 0,
	       resp->ca != NULL && resp->ca->added == 1 ? "" : "s",
	       kind == CAPF__TRUST_KIND__TRUST_MFG ? "manufacturer roots" : "enterprise chain");
	capf__admin_response__free_unpacked(resp, NULL);
	return CTL_EXIT_OK;
}

static const char *kind_name(int kind)
{
	return kind == CAPF__TRUST_KIND__TRUST_MFG ? "mfg" : "chain";
}

static int cmd_trust_list(struct ctl *c, int argc, char **argv)
{
	Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
	Capf__TrustListRequest q = CAPF__TRUST_LIST_REQUEST__INIT;
	Capf__AdminResponse *resp = NULL;
	char buf[32];
	bool help;
	size_t i;
	int kind, ret;

	ret = parse_kind(c, argc, argv, "trust list", &kind, &help);
	if (ret || help)
		return ret;
	ret = ctl_no_operands("trust list", argc, argv);
	if (ret)
		return ret;
	q.kind = (Capf__TrustKind)kind;
	req.body_case = CAPF__ADMIN_REQUEST__BODY_TRUST_LIST;
	req.trust_list = &q;
	ret = ctl_call_ok(c, &req, &resp, NULL);
	if (ret)
		return ret;
	size_t n = resp->ca != NULL ? resp->ca->n_trust : 0;
	switch (c->fmt) {
	case FMT_JSON:
		fputc('[', stdout);
		for (i = 0; i < n; i++) {
			const Capf__TrustEntry *e = resp->ca->trust[i];

			fputs(i ? ",\n{" : "{", stdout);
			ctl_json_kv(stdout, "store", kind_name(e->kind), true);
			ctl_json_kv(stdout, "fingerprint", e->fingerprint, true);
			ctl_json_kv(stdout, "subject", e->subject, true);
			ctl_json_time(stdout, "not_after", e->not_after, true);
			fprintf(stdout, "\"from_config\":%s,\"anchor\":%s}",
				e->from_config ? "true" : "false", e->anchor ? "true" : "false");
		}
		fputs("]\n", stdout);
		break;
	case FMT_CSV:
		fputs("store,fingerprint,subject,not_after,from_config,anchor\n", stdout);
		for (i = 0; i < n; i++) {
			const Capf__TrustEntry *e = resp->ca->trust[i];
			const char *f[6] = { kind_name(e->kind), e->fingerprint, e->subject,
					     ctl_when(e->not_after, buf, sizeof(buf)),
					     e->from_config ? "yes" : "no", e->anchor ? "yes" : "no" };

			ctl_csv_row(stdout, f, 6);
		}
		break;
	default:
		printf("%-6s %-16s %-10s %s\n", "STORE", "SHA256", "EXPIRES", "SUBJECT");
		for (i = 0; i < n; i++) {
			const Capf__TrustEntry *e = resp->ca->trust[i];

			printf("%-6s %.16s %.10s %s%s%s\n", kind_name(e->kind), e->fingerprint,
			       ctl_when(e->not_after, buf, sizeof(buf)), e->subject,
			       e->from_config ? " (config)" : "",
			       e->kind == CAPF__TRUST_KIND__TRUST_CHAIN && e->anchor ? " (anchor)" : "");
		}
		break;
	}
	capf__admin_response__free_unpacked(resp, NULL);
	return CTL_EXIT_OK;
}

static int cmd_trust_remove(struct ctl *c, int argc, char **argv)
{
	Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
	Capf__TrustRemoveRequest q = CAPF__TRUST_REMOVE_REQUEST__INIT;
	Capf__AdminResponse *resp = NULL;
	bool help;
	int kind, ret;

	ret = parse_kind(c, argc, argv, "trust remove", &kind, &help);
	if (ret || help)
		return ret;
	if (optind + 1 != argc)
		return usage_error("trust remove", "give exactly one FINGERPRINT");
	q.kind = (Capf__TrustKind)kind;
	q.fingerprint = argv[optind];
	req.body_case = CAPF__ADMIN_REQUEST__BODY_TRUST_REMOVE;
	req.trust_remove = &q;
	ret = ctl_call_ok(c, &req, &resp, NULL);
	if (ret)
		return ret;
	printf("removed %s\n", argv[optind]);
	capf__admin_response__free_unpacked(resp, NULL);
	return CTL_EXIT_OK;
}

static int cmd_trust(struct ctl *c, int argc, char **argv)
{
	static const struct ctl_subcommand subs[] = {
		{ "add", cmd_trust_add },
		{ "list", cmd_trust_list },
		{ "remove", cmd_trust_remove },
		{ NULL, NULL },
	};

	return ctl_dispatch(c, argc, argv, "trust", usage_trust, subs);
}

const struct ctl_command ctl_ca_commands[] = {
	{ "ca", "ca status|csr|import|rollover|bundle   the CAPF CA", cmd_ca },
	{ "trust", "trust add|list|remove  manufacturer roots and the enterprise chain",
	  cmd_trust },
	{ "cert", "cert show|revoke SERIAL  one certificate; revocation\n"
		  "  cert list            certificates by device, state, expiry", ctl_cmd_cert },
	{ "crl", "crl [--pem|--der]     the certificate revocation list", cmd_crl },
	{ NULL, NULL, NULL },
};
