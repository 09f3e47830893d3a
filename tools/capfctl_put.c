/*
 * capfctl device add / set: the options of a device record, its
 * authentication string (hashed here, never sent), one request per
 * device, and what the server answered.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ca/ca.h"
#include "tools/capfctl.h"
#include "tools/client.h"


static void usage_put(FILE *f, bool create)
{
	if (create)
		fprintf(f, "Usage: " PROG " device add NAME... [OPTION]...\n"
			   "Add devices. Each NAME is added, and reported, on its own.\n");
	else
		fprintf(f, "Usage: " PROG " device set NAME... [OPTION]...\n"
			   "Change the settings of existing devices; settings not given\n"
			   "keep their current values.\n");
	fprintf(f, "\n"
		   "  -o, --op OP            install, none, delete or fetch%s\n"
		   "  -a, --auth MODE        mic, string, null, lsc-or-mic or mic-or-lsc%s\n"
		   "      --auth-string S    the authentication string ('-': read one line\n"
		   "                         from standard input); only its salted hash is sent\n"
		   "      --generate-string  a random string for each device, printed once\n"
		   "      --reusable-string  the string stays valid after an operation\n"
		   "      --unlock           end a lockout and reset the failure count\n"
		   "      --key-order ORDER  rsa-only, ec-only or ec-preferred\n"
		   "      --rsa-key TYPE     rsa-2048, rsa-3072 or rsa-4096\n"
		   "      --ec-key TYPE      ec-p256, ec-p384 or ec-p521\n"
		   "  -k, --key TYPE         the key of a device without a key order%s\n"
		   "      --lsc-days N       validity of its LSCs in days (0: the server's)\n"
		   "  -d, --deadline DATE    the operation completes by DATE (YYYY-MM-DD, the\n"
		   "                         end of that day in UTC, or YYYY-MM-DDTHH:MM:SSZ);\n"
		   "                         'none' for no deadline\n"
		   "      --json, --csv      output format\n"
		   "  -h, --help             show this help\n",
		create ? " (default install)" : "", create ? " (default mic)" : "",
		create ? " (default ec-p256)" : "");
}

/* ---- device add / set ------------------------------------------------- */

enum {
	OPT_AUTH_STRING = OPT_FIRST_FREE,
	OPT_GENERATE_STRING,
	OPT_REUSABLE_STRING,
	OPT_UNLOCK,
	OPT_KEY_ORDER,
	OPT_RSA_KEY,
	OPT_EC_KEY,
	OPT_LSC_DAYS,
};

/* Digits of a string made by --generate-string. */
#define GENERATED_STRING_DIGITS 12u

struct put_opts {
	bool has_op, has_auth, has_key, has_deadline, has_order, has_rsa, has_ec, has_days;
	int op, auth, key, order, rsa, ec;
	uint32_t lsc_days;
	int64_t deadline;
	/* The authentication string: given (the same for every device, each
	 * with its own salt) or generated per device. */
	char *string;
	bool generate, reusable, unlock;
};

static bool is_rsa_key(int kt)
{
	return kt == CAPF__KEY_TYPE__KEY_RSA_2048 || kt == CAPF__KEY_TYPE__KEY_RSA_3072 ||
	       kt == CAPF__KEY_TYPE__KEY_RSA_4096;
}

/* Applies the options given to d (those not given are left alone). */
static void put_apply(const struct put_opts *p, Capf__Device *d)
{
	if (p->has_op)
		d->op = p->op;
	if (p->has_auth)
		d->auth = p->auth;
	if (p->has_key) {
		d->key_type = p->key;
		/* An EC --key is also the EC key of an order, so that the
		 * old option keeps meaning "this key" on any record. */
		if (!is_rsa_key(p->key))
			d->ec_key_type = p->key;
	}
	if (p->has_order)
		d->key_order = p->order;
	if (p->has_rsa)
		d->key_type = p->rsa;
	if (p->has_ec)
		d->ec_key_type = p->ec;
	if (p->has_days)
		d->lsc_days = p->lsc_days;
	if (p->has_deadline)
		d->deadline = p->deadline;
}

/*
 * The salted hash of the string for one device: the server never sees the
 * string itself. generated receives the new string with --generate-string.
 */
static int put_secret(const struct put_opts *p, Capf__AuthSecret *sec, uint8_t *salt,
		      uint8_t *hash, char *generated, size_t genlen)
{
	const char *str = p->string;
	int ret;

	if (p->generate) {
		if (genlen < GENERATED_STRING_DIGITS + 1)
			return CAPF_EINVAL;
		ret = ca_secret_generate(generated, GENERATED_STRING_DIGITS);
		if (ret < 0)
			return ret;
		str = generated;
	}
	ret = ca_secret_new((const uint8_t *)str, strlen(str), CA_SECRET_ITERATIONS, salt, hash);
	if (ret < 0)
		return ret;
	capf__auth_secret__init(sec);
	sec->salt.data = salt;
	sec->salt.len = CA_SECRET_SALT_LEN;
	sec->hash.data = hash;
	sec->hash.len = CA_SECRET_HASH_LEN;
	sec->iterations = CA_SECRET_ITERATIONS;
	sec->reusable = p->reusable;
	return 0;
}

/* Reads one line of standard input as the string (--auth-string -), so
 * that it appears in no process list or shell history. */
static int read_string_line(char **out)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	n = getline(&line, &cap, stdin);
	if (n < 0) {
		free(line);
		return CAPF_EINVAL;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	if ((size_t)n > AUTH_STRING_MAX || n == 0) {
		gnutls_memset(line, 0, cap);
		free(line);
		return CAPF_EINVAL;
	}
	*out = line;
	return 0;
}

static void put_result(struct ctl *c, const char *name, const Capf__AdminResponse *resp,
		       bool create, bool *first, const char *generated)
{
	const char *result = resp->code ? capf_errname((int)resp->code) : "ok";
	const char *text = resp->code ? (resp->text && *resp->text ? resp->text
								   : capf_strerror((int)resp->code))
				      : "";
	/* A generated string is shown once, and only if the server kept it. */
	const char *shown = !resp->code && generated && *generated ? generated : NULL;

	if (resp->code)
		report_refusal(resp, name);
	switch (c->fmt) {
	case FMT_JSON:
		fputs(*first ? "[" : ",\n", stdout);
		fputc('{', stdout);
		ctl_json_kv(stdout, "name", name, true);
		ctl_json_kv(stdout, "result", result, true);
		if (generated)
			ctl_json_kv(stdout, "auth_string", shown, true);
		ctl_json_kv(stdout, "text", text, false);
		fputc('}', stdout);
		break;
	case FMT_CSV:
		if (*first)
			fputs(generated ? "name,result,text,auth_string\n" : "name,result,text\n",
			      stdout);
		client_csv_field(stdout, name);
		fputc(',', stdout);
		client_csv_field(stdout, result);
		fputc(',', stdout);
		client_csv_field(stdout, text);
		if (generated) {
			fputc(',', stdout);
			client_csv_field(stdout, shown);
		}
		fputc('\n', stdout);
		break;
	default:
		if (!resp->code)
			printf("%s %s\n", create ? "added" : "updated", name);
		if (shown)
			printf("%s auth string: %s\n", name, shown);
		break;
	}
	*first = false;
}

double ctl_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ctl_progress(unsigned long done, unsigned long total, double started)
{
	unsigned width = 30, fill = (unsigned)(total ? done * width / total : width);
	double now = ctl_now(), rate, eta;

	rate = now > started ? (double)done / (now - started) : 0;
	eta = rate > 0 ? (double)(total - done) / rate : 0;
	fputc('\r', stderr);
	fputc('[', stderr);
	for (unsigned i = 0; i < width; i++)
		fputc(i < fill ? '#' : ' ', stderr);
	fprintf(stderr, "] %lu/%lu  %.0f/s  ETA %.0fs ", done, total, rate, eta);
	if (done >= total)
		fputc('\n', stderr);
}

/* Parses one key option: a key type of the family wanted (rsa or ec). */
static int parse_put_opts(struct ctl *c, int argc, char **argv, bool create, struct put_opts *p,
			  bool *help)
{
	static const struct option longopts[] = {
		{ "op", required_argument, NULL, 'o' },
		{ "auth", required_argument, NULL, 'a' },
		{ "key", required_argument, NULL, 'k' },
		{ "deadline", required_argument, NULL, 'd' },
		{ "auth-string", required_argument, NULL, OPT_AUTH_STRING },
		{ "generate-string", no_argument, NULL, OPT_GENERATE_STRING },
		{ "reusable-string", no_argument, NULL, OPT_REUSABLE_STRING },
		{ "unlock", no_argument, NULL, OPT_UNLOCK },
		{ "key-order", required_argument, NULL, OPT_KEY_ORDER },
		{ "rsa-key", required_argument, NULL, OPT_RSA_KEY },
		{ "ec-key", required_argument, NULL, OPT_EC_KEY },
		{ "lsc-days", required_argument, NULL, OPT_LSC_DAYS },
		CTL_FORMAT_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = create ? "device add" : "device set";
	char *end = NULL;
	unsigned long days;
	int opt;

	*help = false;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "o:a:k:d:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'o':
			if (ctl_parse_value(cmd, "--op", CTL_VALUE_OP, optarg, &p->op))
				return CTL_EXIT_USAGE;
			p->has_op = true;
			break;
		case 'a':
			if (ctl_parse_value(cmd, "--auth", CTL_VALUE_AUTH, optarg, &p->auth))
				return CTL_EXIT_USAGE;
			p->has_auth = true;
			break;
		case 'k':
			if (ctl_parse_value(cmd, "--key", CTL_VALUE_KEY, optarg, &p->key))
				return CTL_EXIT_USAGE;
			p->has_key = true;
			break;
		case OPT_RSA_KEY:
			if (ctl_parse_value(cmd, "--rsa-key", CTL_VALUE_RSA_KEY, optarg, &p->rsa))
				return CTL_EXIT_USAGE;
			p->has_rsa = true;
			break;
		case OPT_EC_KEY:
			if (ctl_parse_value(cmd, "--ec-key", CTL_VALUE_EC_KEY, optarg, &p->ec))
				return CTL_EXIT_USAGE;
			p->has_ec = true;
			break;
		case OPT_KEY_ORDER:
			if (ctl_parse_value(cmd, "--key-order", CTL_VALUE_KEY_ORDER, optarg,
					    &p->order))
				return CTL_EXIT_USAGE;
			p->has_order = true;
			break;
		case OPT_LSC_DAYS:
			errno = 0;
			days = strtoul(optarg, &end, 10);
			if (errno || *optarg < '0' || *optarg > '9' || *end || days > 36500)
				return usage_error(cmd, "--lsc-days wants 0..36500");
			p->lsc_days = (uint32_t)days;
			p->has_days = true;
			break;
		case 'd':
			if (!strcmp(optarg, "none"))
				p->deadline = 0;
			else if (client_parse_date(optarg, &p->deadline) < 0)
				return usage_error(cmd, "bad date '%s' (YYYY-MM-DD)", optarg);
			p->has_deadline = true;
			break;
		case OPT_AUTH_STRING:
			if (p->string)
				return usage_error(cmd, "--auth-string given twice");
			if (!strcmp(optarg, "-")) {
				if (read_string_line(&p->string) < 0)
					return usage_error(cmd, "no string (1..%u bytes) on standard "
								"input",
							   AUTH_STRING_MAX);
			} else {
				if (*optarg == '\0' || strlen(optarg) > AUTH_STRING_MAX)
					return usage_error(cmd, "the string must have 1..%u bytes",
							   AUTH_STRING_MAX);
				p->string = strdup(optarg);
				if (!p->string)
					return usage_error(cmd, "out of memory");
			}
			break;
		case OPT_GENERATE_STRING:
			p->generate = true;
			break;
		case OPT_REUSABLE_STRING:
			p->reusable = true;
			break;
		case OPT_UNLOCK:
			p->unlock = true;
			break;
		case OPT_JSON:
		case OPT_CSV:
			if (ctl_set_format(c, opt))
				return CTL_EXIT_USAGE;
			break;
		case 'h':
			usage_put(stdout, create);
			*help = true;
			return CTL_EXIT_OK;
		default:
			return ctl_bad_option(cmd, argv, longopts);
		}
	}
	if (p->string && p->generate)
		return usage_error(cmd, "--auth-string and --generate-string exclude each other");
	if (p->reusable && !p->string && !p->generate)
		return usage_error(cmd, "--reusable-string goes with --auth-string or "
					"--generate-string");
	if (p->unlock && create)
		return usage_error(cmd, "--unlock is for device set");
	if (p->has_key && (p->has_rsa || p->has_ec))
		return usage_error(cmd, "--key excludes --rsa-key and --ec-key");
	return CTL_EXIT_OK;
}

int ctl_device_put(struct ctl *c, int argc, char **argv, bool create)
{
	const char *cmd = create ? "device add" : "device set";
	struct put_opts p;
	bool first = true, show_progress, help;
	double started = ctl_now();
	int status = CTL_EXIT_OK;
	int i, ret;

	memset(&p, 0, sizeof(p));
	ret = parse_put_opts(c, argc, argv, create, &p, &help);
	if (ret || help)
		goto out;
	ret = CTL_EXIT_USAGE;
	if (optind >= argc) {
		usage_error(cmd, "give at least one device NAME");
		goto out;
	}
	for (i = optind; i < argc; i++) {
		if (!device_name_valid(argv[i])) {
			usage_error(cmd,
				    "'%s' is not a device name (letters, digits, '-', "
				    "'_', '.'; at most %u)",
				    argv[i], DEVICE_NAME_MAX);
			goto out;
		}
	}
	if (create) {
		/* The defaults of a new device. */
		if (!p.has_op)
			p.op = CAPF__OPERATION__OP_INSTALL;
		if (!p.has_auth)
			p.auth = CAPF__AUTH_MODE__AUTH_MIC;
		if (!p.has_key && !p.has_rsa && !p.has_ec) {
			p.key = CAPF__KEY_TYPE__KEY_EC_P256;
			p.has_key = true;
		}
		p.has_op = p.has_auth = true;
	}
	show_progress = argc - optind >= 100 && isatty(STDERR_FILENO);

	for (i = optind; i < argc; i++) {
		Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
		Capf__DevicePut put = CAPF__DEVICE_PUT__INIT;
		Capf__DeviceGet get = CAPF__DEVICE_GET__INIT;
		Capf__Device dev = CAPF__DEVICE__INIT;
		Capf__AuthSecret secret = CAPF__AUTH_SECRET__INIT;
		Capf__AdminResponse *resp = NULL;
		uint8_t salt[CA_SECRET_SALT_LEN], hash[CA_SECRET_HASH_LEN];
		char generated[GENERATED_STRING_DIGITS + 1] = "";

		dev.name = argv[i];
		if (!create) {
			/* Start from the current settings so that only the options
			 * given change. */
			get.name = argv[i];
			req.body_case = CAPF__ADMIN_REQUEST__BODY_DEVICE_GET;
			req.device_get = &get;
			ret = ctl_call(c, &req, &resp);
			if (ret)
				goto out;
			if (resp->code == 0 && resp->n_devices > 0) {
				const Capf__Device *cur = resp->devices[0];

				dev.op = cur->op;
				dev.auth = cur->auth;
				dev.key_type = cur->key_type;
				dev.ec_key_type = cur->ec_key_type;
				dev.key_order = cur->key_order;
				dev.lsc_days = cur->lsc_days;
				dev.deadline = cur->deadline;
			} else {
				if (resp->code)
					put_result(c, argv[i], resp, create, &first, NULL);
				else
					fprintf(stderr, PROG ": %s: the server sent no device\n",
						argv[i]);
				status = CTL_EXIT_REFUSED;
				capf__admin_response__free_unpacked(resp, NULL);
				continue;
			}
			capf__admin_response__free_unpacked(resp, NULL);
			resp = NULL;
		}
		put_apply(&p, &dev);
		if (p.string || p.generate) {
			ret = put_secret(&p, &secret, salt, hash, generated, sizeof(generated));
			if (ret < 0) {
				fprintf(stderr, PROG ": %s: cannot make the string's hash: %s\n",
					argv[i], capf_strerror(ret));
				ret = CTL_EXIT_REFUSED;
				goto out;
			}
			dev.auth_secret = &secret;
			put.set_secret = true;
		}
		put.unlock = p.unlock;
		put.device = &dev;
		put.create = create;
		req.body_case = CAPF__ADMIN_REQUEST__BODY_DEVICE_PUT;
		req.device_put = &put;
		ret = ctl_call(c, &req, &resp);
		gnutls_memset(hash, 0, sizeof(hash));
		if (ret) {
			gnutls_memset(generated, 0, sizeof(generated));
			if (show_progress)
				fputc('\n', stderr);
			goto out;
		}
		put_result(c, argv[i], resp, create, &first, p.generate ? generated : NULL);
		gnutls_memset(generated, 0, sizeof(generated));
		if (resp->code)
			status = CTL_EXIT_REFUSED;
		capf__admin_response__free_unpacked(resp, NULL);
		if (show_progress)
			ctl_progress((unsigned long)(i - optind + 1), (unsigned long)(argc - optind),
				     started);
	}
	if (c->fmt == FMT_JSON)
		fputs(first ? "[]\n" : "]\n", stdout);
	ret = status;
out:
	if (p.string) {
		gnutls_memset(p.string, 0, strlen(p.string));
		free(p.string);
	}
	return ret;
}

