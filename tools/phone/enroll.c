/*
 * capf-phone enroll - one phone session: get an LSC and store it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca/ca.h"
#include "tools/phone/phone.h"

#define ENROLL_TIMEOUT_DEFAULT 30ul

enum {
	OPT_BAD_BINDING = 256,
	OPT_BAD_CSR_SIG,
	OPT_OVERSIZED,
	OPT_OUT_OF_ORDER,
	OPT_NO_ACK,
	OPT_CLAIM,
	OPT_NO_MIC,
	OPT_TIMEOUT,
	OPT_PROTOCOL_VERSION,
	OPT_AUTH_STRING,
	OPT_LSC,
	OPT_LSC_KEY,
	OPT_PRESENT_MIC,
	OPT_SUPPORTED_KEYS,
	OPT_STALL,
	OPT_REFUSE_DELETE,
	OPT_REUSE_KEY,
	OPT_RECORD,
	OPT_PROTOCOL,
};

#define ENROLL_MAX_KEYS 16

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " PHONE_PROG " enroll --name NAME --ca FILE [--mic FILE --mic-key FILE]\n"
		"         [--lsc FILE --lsc-key FILE] [--auth-string S] [--host HOST] [--port PORT]\n"
		"         [--key TYPE] [--supported-keys LIST] [--protocol-version N]\n"
		"         [--out-cert FILE] [--out-key FILE] [--der] [--timeout SECONDS]\n"
		"Run one phone session: authenticate, then do the operation the server asks\n"
		"for: install (a CSR bound to the TLS session; the LSC is checked and stored),\n"
		"delete (the LSC files are removed) or fetch (the LSC and MIC are reported).\n"
		"\n"
		"  -n, --name NAME        device name (e.g. SEP001122334455)\n"
		"  -m, --mic FILE         the phone's MIC (PEM)\n"
		"  -k, --mic-key FILE     the MIC's private key (PEM)\n"
		"      --lsc FILE         the phone's LSC (PEM), presented instead of the MIC\n"
		"      --lsc-key FILE     the LSC's private key\n"
		"      --present-mic      with --lsc: present the MIC all the same\n"
		"      --auth-string S    the authentication string (version 2)\n"
		"  -c, --ca FILE          the CAPF CA certificate(s) to trust (PEM)\n"
		"  -H, --host HOST        capfd's address, default 127.0.0.1\n"
		"  -p, --port PORT        capfd's port, default " CLIENT_PHONE_PORT_DEFAULT "\n"
		"  -t, --key TYPE         generate this key instead of the one the server asks\n"
		"                         for: ec-p256 ec-p384 ec-p521 rsa-2048 rsa-3072 rsa-4096\n"
		"                         (--key-type is the same)\n"
		"      --supported-keys LIST  the keys the phone says it can make (version 2),\n"
		"                         comma-separated key types; default: none said\n"
		"      --protocol-version N   1 acts as an old phone (install only), default 2;\n"
		"                         others (up to 255) only to test the server\n"
		"  -o, --out-cert FILE    where the LSC goes, default NAME-lsc.pem (.der)\n"
		"  -K, --out-key FILE     where its key goes (mode 0600), default NAME-lsc.key\n"
		"  -d, --der              write the LSC and its key in DER instead of PEM\n"
		"      --timeout SECONDS  wait at most this long for each answer, default %lu\n"
		"      --record FILE      append a transcript of the session to FILE\n"
		"      --protocol P       native (the default) or cisco: with cisco, the same as\n"
		"                         '" PHONE_PROG " cisco' with the other options\n"
		"  -h, --help             show this help\n"
		"\n"
		"For testing the server only (see capf-phone(1)):\n"
		"  --bad-binding --bad-csr-signature --oversized-frame --out-of-order\n"
		"  --no-ack --claim NAME2 --no-mic --refuse-delete --reuse-key FILE\n"
		"  --stall STEP:MS   wait MS milliseconds before STEP: hello, csr, ack, result\n"
		"\n"
		"Exit status: 0 done, 1 refused or failed, 2 usage, 3 connection/TLS failure.\n",
		ENROLL_TIMEOUT_DEFAULT);
}

/* Parses "ec-p256,rsa-2048,...". Returns the count or CAPF_EINVAL. */
static int parse_keys(const char *list, int *keys, size_t max)
{
	char buf[256], *save = NULL, *tok;
	size_t n = 0;

	if (strlen(list) >= sizeof(buf))
		return CAPF_EINVAL;
	strcpy(buf, list);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (n == max || key_type_from_name(tok, &keys[n]) < 0 || keys[n] == 0)
			return CAPF_EINVAL;
		n++;
	}
	return n == 0 ? CAPF_EINVAL : (int)n;
}

/* Parses "STEP:MS". */
static int parse_stall(const char *arg, struct phone_enroll_opts *o)
{
	static const struct {
		const char *name;
		enum phone_step step;
	} steps[] = {
		{ "hello", PHONE_STEP_HELLO },
		{ "csr", PHONE_STEP_CSR },
		{ "ack", PHONE_STEP_ACK },
		{ "result", PHONE_STEP_RESULT },
	};
	const char *colon = strchr(arg, ':');
	unsigned long ms;

	if (!colon || phone_parse_uint(colon + 1, 1, 600000, &ms) < 0)
		return CAPF_EINVAL;
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		if (strlen(steps[i].name) == (size_t)(colon - arg) &&
		    !strncmp(arg, steps[i].name, (size_t)(colon - arg))) {
			o->stall_at = steps[i].step;
			o->stall_ms = (unsigned)ms;
			return 0;
		}
	}
	return CAPF_EINVAL;
}

/* Writes data to path through a temporary file and rename, so that a
 * reader never sees half a file and an old file is replaced whole. */
static int write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[PATH_MAX];
	const uint8_t *p = data;
	int fd = -1;
	ssize_t n;
	int ret;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path) >= sizeof(tmp))
		return CAPF_EINVAL;
	fd = mkstemp(tmp);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, mode) < 0) {
		ret = -errno;
		goto out;
	}
	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		fd = -1;
		ret = -errno;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		ret = -errno;
		goto out;
	}
	return 0;
out:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return ret;
}

/* Writes the LSC and its key (cert_path NULL: the key only). */
static int save_lsc(const struct phone_enroll_result *r, const char *cert_path,
		    const char *key_path, int der)
{
	gnutls_datum_t crt = { r->lsc_der, (unsigned)r->lsc_len };
	gnutls_datum_t pem = { NULL, 0 };
	gnutls_datum_t key = { NULL, 0 };
	gnutls_x509_crt_fmt_t fmt = der ? GNUTLS_X509_FMT_DER : GNUTLS_X509_FMT_PEM;
	int ret;

	if (gnutls_x509_privkey_export2_pkcs8(r->key, fmt, NULL, GNUTLS_PKCS_PLAIN, &key) < 0) {
		fprintf(stderr, PHONE_PROG ": cannot export the LSC key\n");
		ret = CAPF_ECRYPTO;
		goto out;
	}
	ret = write_file(key_path, key.data, key.size, 0600);
	if (ret < 0) {
		fprintf(stderr, PHONE_PROG ": cannot write %s: %s\n", key_path, strerror(-ret));
		goto out;
	}
	if (!cert_path)
		goto out; /* the key only */
	if (!der) {
		if (gnutls_pem_base64_encode2("CERTIFICATE", &crt, &pem) < 0) {
			ret = CAPF_ENOMEM;
			goto out;
		}
		crt = pem;
	}
	ret = write_file(cert_path, crt.data, crt.size, 0644);
	if (ret < 0)
		fprintf(stderr, PHONE_PROG ": cannot write %s: %s\n", cert_path, strerror(-ret));
out:
	if (key.data) {
		gnutls_memset(key.data, 0, key.size);
		gnutls_free(key.data);
	}
	gnutls_free(pem.data);
	return ret;
}

static void print_lsc(const struct phone_enroll_result *r)
{
	char subject[512];
	char when[32];
	char *serial;

	if (ca_cert_subject(r->lsc_der, r->lsc_len, subject, sizeof(subject)) < 0)
		snprintf(subject, sizeof(subject), "?");
	serial = client_hex(r->serial, r->serial_len);
	printf("subject:    %s\n", subject);
	printf("serial:     %s\n", serial ? serial : "?");
	printf("not before: %s\n", client_time_iso(r->not_before, when, sizeof(when)));
	printf("not after:  %s\n", client_time_iso(r->not_after, when, sizeof(when)));
	free(serial);
}

/*
 * --protocol native|cisco, looked for before the other options: with
 * cisco the whole command is `capf-phone cisco` with the same options
 * (less this one), so that one command line enrolls over either.
 * Returns -1 to go on as the native phone, else the exit status.
 */
static int protocol_switch(int argc, char **argv)
{
	const char *proto = NULL;
	char **args;
	int i, n = 0, ret;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "--protocol") && i + 1 < argc)
			proto = argv[++i];
		else if (!strncmp(argv[i], "--protocol=", 11))
			proto = argv[i] + 11;
		else if (!strcmp(argv[i], "--protocol"))
			return phone_usage_error("enroll", "--protocol wants native or cisco");
	}
	if (!proto || !strcmp(proto, "native"))
		return -1;
	if (strcmp(proto, "cisco") != 0)
		return phone_usage_error("enroll", "unknown protocol '%s' (native or cisco)", proto);
	args = calloc((size_t)argc + 1, sizeof(*args));
	if (!args) {
		fprintf(stderr, PHONE_PROG " enroll: out of memory\n");
		return PHONE_EXIT_FAIL;
	}
	args[n++] = "cisco";
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--protocol")) {
			i++;
			continue;
		}
		if (!strncmp(argv[i], "--protocol=", 11))
			continue;
		args[n++] = argv[i];
	}
	ret = phone_cmd_cisco(n, args);
	free(args);
	return ret;
}

int phone_cmd_enroll(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "mic", required_argument, NULL, 'm' },
		{ "mic-key", required_argument, NULL, 'k' },
		{ "ca", required_argument, NULL, 'c' },
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "key-type", required_argument, NULL, 't' },
		{ "key", required_argument, NULL, 't' },
		{ "protocol-version", required_argument, NULL, OPT_PROTOCOL_VERSION },
		{ "auth-string", required_argument, NULL, OPT_AUTH_STRING },
		{ "lsc", required_argument, NULL, OPT_LSC },
		{ "lsc-key", required_argument, NULL, OPT_LSC_KEY },
		{ "present-mic", no_argument, NULL, OPT_PRESENT_MIC },
		{ "supported-keys", required_argument, NULL, OPT_SUPPORTED_KEYS },
		{ "stall", required_argument, NULL, OPT_STALL },
		{ "refuse-delete", no_argument, NULL, OPT_REFUSE_DELETE },
		{ "reuse-key", required_argument, NULL, OPT_REUSE_KEY },
		{ "out-cert", required_argument, NULL, 'o' },
		{ "out-key", required_argument, NULL, 'K' },
		{ "der", no_argument, NULL, 'd' },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "record", required_argument, NULL, OPT_RECORD },
		{ "protocol", required_argument, NULL, OPT_PROTOCOL },
		{ "help", no_argument, NULL, 'h' },
		{ "bad-binding", no_argument, NULL, OPT_BAD_BINDING },
		{ "bad-csr-signature", no_argument, NULL, OPT_BAD_CSR_SIG },
		{ "oversized-frame", no_argument, NULL, OPT_OVERSIZED },
		{ "out-of-order", no_argument, NULL, OPT_OUT_OF_ORDER },
		{ "no-ack", no_argument, NULL, OPT_NO_ACK },
		{ "claim", required_argument, NULL, OPT_CLAIM },
		{ "no-mic", no_argument, NULL, OPT_NO_MIC },
		{ NULL, 0, NULL, 0 },
	};
	struct phone_enroll_opts o;
	struct phone_enroll_result r;
	struct pki_pair mic = { NULL, NULL };
	struct pki_pair lsc = { NULL, NULL };
	const char *name = NULL, *mic_path = NULL, *mic_key = NULL, *claim = NULL;
	const char *lsc_path = NULL, *lsc_key = NULL, *reuse_path = NULL, *record = NULL;
	int keys[ENROLL_MAX_KEYS];
	unsigned long version;
	const char *out_cert = NULL, *out_key = NULL;
	char def_cert[PATH_MAX], def_key[PATH_MAX];
	unsigned long timeout = ENROLL_TIMEOUT_DEFAULT;
	int der = 0, no_mic = 0;
	int status = PHONE_EXIT_FAIL;
	int c, ret;

	memset(&o, 0, sizeof(o));
	memset(&r, 0, sizeof(r));
	o.host = "127.0.0.1";
	o.port = CLIENT_PHONE_PORT_DEFAULT;
	ret = protocol_switch(argc, argv);
	if (ret >= 0)
		return ret;
	optind = 0;
	while ((c = getopt_long(argc, argv, "n:m:k:c:H:p:t:o:K:dh", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			name = optarg;
			break;
		case 'm':
			mic_path = optarg;
			break;
		case 'k':
			mic_key = optarg;
			break;
		case 'c':
			o.ca_file = optarg;
			break;
		case 'H':
			o.host = optarg;
			break;
		case 'p':
			if (phone_parse_port(optarg) < 0)
				return phone_usage_error("enroll", "bad port '%s'", optarg);
			o.port = optarg;
			break;
		case 't':
			if (key_type_from_name(optarg, &o.key_type) < 0 || o.key_type == 0)
				return phone_usage_error("enroll", "unknown key type '%s'", optarg);
			break;
		case 'o':
			out_cert = optarg;
			break;
		case 'K':
			out_key = optarg;
			break;
		case 'd':
			der = 1;
			break;
		case OPT_TIMEOUT:
			if (phone_parse_uint(optarg, 1, 3600, &timeout) < 0)
				return phone_usage_error("enroll", "--timeout wants 1..3600 seconds");
			break;
		case OPT_BAD_BINDING:
			o.misbehave |= PHONE_BAD_BINDING;
			break;
		case OPT_BAD_CSR_SIG:
			o.misbehave |= PHONE_BAD_CSR_SIGNATURE;
			break;
		case OPT_OVERSIZED:
			o.misbehave |= PHONE_OVERSIZED_FRAME;
			break;
		case OPT_OUT_OF_ORDER:
			o.misbehave |= PHONE_OUT_OF_ORDER;
			break;
		case OPT_NO_ACK:
			o.misbehave |= PHONE_NO_ACK;
			break;
		case OPT_CLAIM:
			claim = optarg;
			break;
		case OPT_NO_MIC:
			no_mic = 1;
			break;
		case OPT_PROTOCOL_VERSION:
			/* Versions this code does not speak are accepted, so
			 * that tests can see the server refuse them. */
			if (phone_parse_uint(optarg, 1, 255, &version) < 0)
				return phone_usage_error("enroll", "--protocol-version wants 1..255");
			o.version = (unsigned)version;
			break;
		case OPT_AUTH_STRING:
			o.auth_string = optarg;
			break;
		case OPT_LSC:
			lsc_path = optarg;
			break;
		case OPT_LSC_KEY:
			lsc_key = optarg;
			break;
		case OPT_PRESENT_MIC:
			o.present_mic = true;
			break;
		case OPT_SUPPORTED_KEYS:
			ret = parse_keys(optarg, keys, ENROLL_MAX_KEYS);
			if (ret < 0)
				return phone_usage_error("enroll", "bad key list '%s'", optarg);
			o.supported_keys = keys;
			o.nsupported = (size_t)ret;
			break;
		case OPT_STALL:
			if (parse_stall(optarg, &o) < 0)
				return phone_usage_error("enroll", "--stall wants STEP:MS (hello, csr, "
								   "ack or result; 1..600000 ms)");
			break;
		case OPT_REFUSE_DELETE:
			o.misbehave |= PHONE_REFUSE_DELETE;
			break;
		case OPT_REUSE_KEY:
			reuse_path = optarg;
			break;
		case OPT_PROTOCOL: /* native: protocol_switch() */
			break;
		case OPT_RECORD:
			record = optarg;
			break;
		case 'h':
			usage(stdout);
			return PHONE_EXIT_OK;
		default:
			return phone_usage_error("enroll", "bad option");
		}
	}
	if (optind < argc)
		return phone_usage_error("enroll", "unexpected argument '%s'", argv[optind]);
	if (!name)
		return phone_usage_error("enroll", "--name is required");
	if (!device_name_valid(name))
		return phone_usage_error("enroll", "'%s' is not a device name", name);
	if (claim && !device_name_valid(claim))
		return phone_usage_error("enroll", "'%s' is not a device name", claim);
	if (!o.ca_file)
		return phone_usage_error("enroll", "--ca is required");
	if (no_mic && (mic_path || mic_key))
		return phone_usage_error("enroll", "--no-mic excludes --mic and --mic-key");
	if (!mic_path != !mic_key)
		return phone_usage_error("enroll", "--mic and --mic-key go together");
	if (!lsc_path != !lsc_key)
		return phone_usage_error("enroll", "--lsc and --lsc-key go together");
	if (!no_mic && !mic_path && !lsc_path)
		return phone_usage_error("enroll", "--mic and --mic-key (or --lsc and --lsc-key) "
						   "are required");
	if (o.present_mic && (!lsc_path || !mic_path))
		return phone_usage_error("enroll", "--present-mic needs --mic and --lsc");
	if (!out_cert) {
		snprintf(def_cert, sizeof(def_cert), "%s-lsc.%s", name, der ? "der" : "pem");
		out_cert = def_cert;
	}
	if (!out_key) {
		snprintf(def_key, sizeof(def_key), "%s-lsc.key", name);
		out_key = def_key;
	}

	if (mic_path) {
		ret = pki_read_pair(mic_path, mic_key, &mic);
		if (ret < 0) {
			fprintf(stderr, PHONE_PROG ": cannot read the MIC %s and key %s: %s\n",
				mic_path, mic_key, capf_strerror(ret));
			goto out;
		}
		o.mic = &mic;
	}
	if (reuse_path) {
		ret = pki_read_key(reuse_path, &o.reuse_key);
		if (ret < 0) {
			fprintf(stderr, PHONE_PROG ": cannot read the key %s: %s\n", reuse_path,
				capf_strerror(ret));
			goto out;
		}
	}
	if (lsc_path) {
		ret = pki_read_pair(lsc_path, lsc_key, &lsc);
		if (ret < 0) {
			fprintf(stderr, PHONE_PROG ": cannot read the LSC %s and key %s: %s\n",
				lsc_path, lsc_key, capf_strerror(ret));
			goto out;
		}
		o.lsc = &lsc;
	}
	o.name = claim ? claim : name;
	o.timeout_ms = (unsigned)timeout * 1000u;
	if (record) {
		ret = transcript_writer_open(record, &o.rec);
		if (ret < 0) {
			fprintf(stderr, PHONE_PROG ": cannot open %s: %s\n", record, strerror(-ret));
			status = PHONE_EXIT_USAGE;
			goto out;
		}
	}

	ret = phone_enroll(&o, &r);
	if (ret < 0) {
		if (r.server_code && r.server_end) {
			/* A version 2 session that ended with a result other
			 * than success (1007: nothing to do); nothing was done,
			 * so scripts that expect work see status 1. */
			fprintf(stderr, PHONE_PROG ": server ended the session: %d (%s): %s\n",
				r.server_code, capf_errname(r.server_code), r.text);
			status = PHONE_EXIT_FAIL;
		} else if (r.server_code) {
			fprintf(stderr, PHONE_PROG ": server error %d (%s): %s\n", r.server_code,
				capf_errname(r.server_code), r.text);
			status = PHONE_EXIT_FAIL;
		} else if (r.stage == PHONE_STAGE_CONNECT || ret == CAPF_ECONNRESET ||
			   ret == CAPF_ETIMEDOUT || ret == CAPF_EIO) {
			fprintf(stderr, PHONE_PROG ": %s\n", r.text[0] ? r.text : capf_strerror(ret));
			status = PHONE_EXIT_CONNECT;
		} else {
			fprintf(stderr, PHONE_PROG ": enrollment failed (%s): %s\n",
				capf_errname(ret), r.text[0] ? r.text : capf_strerror(ret));
			status = PHONE_EXIT_FAIL;
		}
		goto out;
	}

	if (r.op == CAPF__OPERATION__OP_DELETE) {
		/* The phone forgets its LSC: the files it was read from, or
		 * those an install would have written. */
		const char *cert_file = lsc_path ? lsc_path : out_cert;
		const char *key_file = lsc_path ? lsc_key : out_key;

		if (unlink(cert_file) < 0 && errno != ENOENT)
			fprintf(stderr, PHONE_PROG ": cannot remove %s: %s\n", cert_file,
				strerror(errno));
		if (unlink(key_file) < 0 && errno != ENOENT)
			fprintf(stderr, PHONE_PROG ": cannot remove %s: %s\n", key_file,
				strerror(errno));
		printf("operation:  delete\n");
		printf("deleted:    %s %s\n", cert_file, key_file);
		status = PHONE_EXIT_OK;
		goto out;
	}
	if (r.op == CAPF__OPERATION__OP_FETCH) {
		printf("operation:  fetch\n");
		printf("reported:   %zu certificates\n", r.reported);
		status = PHONE_EXIT_OK;
		goto out;
	}
	printf("operation:  install\n");
	print_lsc(&r);
	if (o.misbehave & PHONE_NO_ACK) {
		/* Power lost before the certificate was stored: the key made
		 * for it survives, for a retry with --reuse-key. */
		if (save_lsc(&r, NULL, out_key, der) < 0)
			goto out;
		printf("not acknowledged (--no-ack): certificate not stored\n");
		printf("key file:   %s\n", out_key);
		status = PHONE_EXIT_OK;
		goto out;
	}
	if (save_lsc(&r, out_cert, out_key, der) < 0)
		goto out;
	printf("lsc file:   %s\n", out_cert);
	printf("key file:   %s\n", out_key);
	status = PHONE_EXIT_OK;
out:
	if (transcript_writer_close(o.rec) < 0) {
		fprintf(stderr, PHONE_PROG ": cannot write the transcript %s\n", record);
		if (status == PHONE_EXIT_OK)
			status = PHONE_EXIT_FAIL;
	}
	phone_enroll_result_deinit(&r);
	pki_pair_deinit(&mic);
	pki_pair_deinit(&lsc);
	if (o.reuse_key)
		gnutls_x509_privkey_deinit(o.reuse_key);
	return status;
}
