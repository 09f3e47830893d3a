/*
 * capfctl - administer a running capfd over its admin socket.
 *
 *   capfctl [-s SOCKET] [--json|--csv] COMMAND ...
 *
 * Exit statuses (capfctl(8)): 0 success, 1 the server refused a request,
 * 2 usage error, 3 the admin socket cannot be reached.
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


/* ---- help ------------------------------------------------------------- */

static const struct ctl_command *const areas[] = {
	ctl_query_commands,
	ctl_bulk_commands,
	ctl_ca_commands,
	ctl_store_commands,
};

static void usage_main(FILE *f)
{
	fprintf(f, "Usage: " PROG " [-s SOCKET] [--json|--csv] COMMAND ...\n"
		   "Administer capfd through its admin socket.\n"
		   "\n"
		   "Commands:\n"
		   "  device add NAME...   add devices and schedule their operation\n"
		   "  device set NAME...   change the settings of existing devices\n"
		   "  device show NAME     show one device and its certificates\n"
		   "  device list          list devices (--where: a query)\n"
		   "  device del NAME...   remove devices, revoking their certificates\n"
		   "  status               show the server's status\n");
	for (size_t t = 0; t < sizeof(areas) / sizeof(areas[0]); t++)
		for (const struct ctl_command *cmd = areas[t]; cmd->name != NULL; cmd++)
			fprintf(f, "  %s\n", cmd->summary);
	fprintf(f, "\n"
		   "Options:\n"
		   "  -s, --socket PATH    admin socket, default $CAPF_SOCKET or\n"
		   "                       " CLIENT_ADMIN_SOCKET_DEFAULT "\n"
		   "      --json           print JSON\n"
		   "      --csv            print CSV (a header line, then rows)\n"
		   "  -h, --help           show this help\n"
		   "  -V, --version        show the version\n"
		   "\n"
		   "'" PROG " COMMAND --help' describes a command. Exit status: 0 success,\n"
		   "1 the server refused, 2 usage error, 3 cannot reach the socket.\n");
}

static void usage_device(FILE *f)
{
	fprintf(f, "Usage: " PROG " device COMMAND ...\n"
		   "\n"
		   "Commands:\n"
		   "  add NAME... [--op OP] [--auth MODE] [--auth-string S|--generate-string]\n"
		   "              [--key-order ORDER] [--rsa-key TYPE] [--ec-key TYPE]\n"
		   "              [--key TYPE] [--lsc-days N] [--deadline DATE]\n"
		   "  set NAME... [the options of add] [--unlock]\n"
		   "  show NAME\n"
		   "  list [--where EXPR]... [--page-size N]\n"
		   "  del NAME... [--keep-cert]\n"
		   "\n"
		   "'" PROG " device COMMAND --help' describes a command.\n");
}

static void usage_show(FILE *f)
{
	fprintf(f, "Usage: " PROG " device show NAME [--json|--csv]\n"
		   "Show every field of a device record, its current LSC and every\n"
		   "certificate it was issued (current, unacknowledged, past).\n");
}

static void usage_status(FILE *f)
{
	fprintf(f, "Usage: " PROG " status [--json|--csv]\n"
		   "Show the server's process id, version, port, workers, counters, start\n"
		   "time and uptime, the operations pending, the LSCs issued and not\n"
		   "acknowledged, and the current CAPF CA's expiry.\n");
}

int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '" PROG "%s%s --help'.\n", cmd ? " " : "", cmd ? cmd : "");
	return CTL_EXIT_USAGE;
}

int ctl_bad_option(const char *cmd, char **argv, const struct option *longopts)
{
	const char *arg = optind > 0 ? argv[optind - 1] : NULL;
	const char *names[64];
	char word[64];
	size_t n = 0, len;
	const char *near;

	if (arg == NULL || strncmp(arg, "--", 2) != 0) {
		if (optopt && optopt < 256)
			return usage_error(cmd, "unknown option '-%c' or missing value", optopt);
		return usage_error(cmd, "bad option '%s'", arg ? arg : "?");
	}
	len = strcspn(arg + 2, "=");
	snprintf(word, sizeof(word), "%.*s", (int)(len < sizeof(word) ? len : sizeof(word) - 1),
		 arg + 2);
	for (const struct option *o = longopts; o->name != NULL && n < 64; o++) {
		if (!strcmp(o->name, word))
			return usage_error(cmd, "option '--%s' %s", word,
					   o->has_arg == required_argument ? "needs a value"
									   : "takes no value");
		names[n++] = o->name;
	}
	near = client_nearest(word, names, n);
	if (near != NULL)
		return usage_error(cmd, "unknown option '--%s'; did you mean '--%s'?", word, near);
	return usage_error(cmd, "unknown option '--%s'", word);
}

int ctl_unknown(const char *area, const char *word, const char *const *names, size_t n)
{
	const char *near = client_nearest(word, names, n);

	if (near != NULL)
		return usage_error(area, "unknown %s%scommand '%s'; did you mean '%s'?",
				   area ? area : "", area ? " " : "", word, near);
	return usage_error(area, "unknown %s%scommand '%s'", area ? area : "", area ? " " : "",
			   word);
}

static bool rsa_key(int kt)
{
	return kt == CAPF__KEY_TYPE__KEY_RSA_2048 || kt == CAPF__KEY_TYPE__KEY_RSA_3072 ||
	       kt == CAPF__KEY_TYPE__KEY_RSA_4096;
}

int ctl_parse_value(const char *cmd, const char *opt, enum ctl_value kind, const char *arg,
		    int *out)
{
	const char *(*name)(int) = kind == CTL_VALUE_OP		? op_name
				   : kind == CTL_VALUE_AUTH	? auth_name
				   : kind == CTL_VALUE_KEY_ORDER ? key_order_name
								 : key_type_name;
	const char *names[16], *near;
	char all[160] = "";
	size_t n = 0, used = 0;

	for (int v = 0; v < 16; v++) {
		const char *s = name(v);

		if (!strcmp(s, "?"))
			continue;
		if ((kind == CTL_VALUE_RSA_KEY && !rsa_key(v)) ||
		    (kind == CTL_VALUE_EC_KEY && rsa_key(v)) ||
		    (kind != CTL_VALUE_OP && v == 0)) /* unspecified */
			continue;
		if (!strcmp(s, arg)) {
			*out = v;
			return 0;
		}
		names[n++] = s;
		used += (size_t)snprintf(all + used, used < sizeof(all) ? sizeof(all) - used : 0,
					 "%s%s", used ? ", " : "", s);
	}
	near = client_nearest(arg, names, n);
	if (near != NULL)
		return usage_error(cmd, "%s: unknown value '%s'; did you mean '%s'?", opt, arg,
				   near);
	return usage_error(cmd, "%s: unknown value '%s' (%s)", opt, arg, all);
}

/* ---- talking to the server -------------------------------------------- */

/* Sends req; on a connection failure says which path and why. Returns 0 or
 * CTL_EXIT_CONNECT. */
int ctl_call(struct ctl *c, Capf__AdminRequest *req, Capf__AdminResponse **resp)
{
	int ret;

	if (!c->connected) {
		ret = client_admin_open(&c->admin, c->socket, 0);
		if (ret < 0) {
			fprintf(stderr, PROG ": cannot connect to %s: %s\n", c->socket,
				ret == CAPF_EINVAL ? "path too long" : strerror(-ret));
			return CTL_EXIT_CONNECT;
		}
		c->connected = true;
	}
	ret = client_admin_call(&c->admin, req, resp);
	if (ret < 0) {
		fprintf(stderr, PROG ": %s: %s\n", c->socket,
			ret == CAPF_ECONNRESET ? "the server closed the connection"
			: ret < -999	       ? capf_strerror(ret)
					       : strerror(-ret));
		client_admin_close(&c->admin);
		c->connected = false;
		return CTL_EXIT_CONNECT;
	}
	return 0;
}

/* Reports a refused request: "capfctl: CAPF_ENAME: [what: ]text". */
void report_refusal(const Capf__AdminResponse *resp, const char *what)
{
	const char *text = resp->text && *resp->text ? resp->text : capf_strerror((int)resp->code);

	/* Name the device unless the server's text already does. */
	if (what && strstr(text, what))
		what = NULL;
	fprintf(stderr, PROG ": %s: %s%s%s\n", capf_errname((int)resp->code), what ? what : "",
		what ? ": " : "", text);
}

/* Sends req; on a refusal reports it. Returns 0 with *resp, or an exit code. */
int ctl_call_ok(struct ctl *c, Capf__AdminRequest *req, Capf__AdminResponse **resp,
		const char *what)
{
	int ret = ctl_call(c, req, resp);

	if (ret)
		return ret;
	if ((*resp)->code) {
		report_refusal(*resp, what);
		capf__admin_response__free_unpacked(*resp, NULL);
		*resp = NULL;
		return CTL_EXIT_REFUSED;
	}
	return 0;
}

/* ---- command lines ---------------------------------------------------- */

int ctl_set_format(struct ctl *c, int opt)
{
	enum ctl_format want = opt == OPT_JSON ? FMT_JSON : FMT_CSV;

	if (c->fmt != FMT_TABLE && c->fmt != want)
		return usage_error(NULL, "--json and --csv: one output format at a time");
	c->fmt = want;
	return 0;
}

int ctl_no_operands(const char *cmd, int argc, char **argv)
{
	if (optind < argc)
		return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	return CTL_EXIT_OK;
}

bool ctl_is_help(const char *word)
{
	return !strcmp(word, "-h") || !strcmp(word, "--help") || !strcmp(word, "help");
}

int ctl_dispatch(struct ctl *c, int argc, char **argv, const char *area, void (*usage)(FILE *),
		 const struct ctl_subcommand *subs)
{
	if (argc < 2)
		return usage_error(area, "give a %s command", area);
	if (ctl_is_help(argv[1])) {
		usage(stdout);
		return CTL_EXIT_OK;
	}
	const char *names[32];
	size_t n = 0;

	for (const struct ctl_subcommand *s = subs; s->name != NULL; s++) {
		if (!strcmp(argv[1], s->name))
			return s->run(c, argc - 1, argv + 1);
		if (n < 32)
			names[n++] = s->name;
	}
	return ctl_unknown(area, argv[1], names, n);
}

/* ---- formatting ------------------------------------------------------- */

static const char *or_dash(const char *s)
{
	return s && *s ? s : "-";
}

/* A time for people and scripts: ISO 8601, or NULL for 0 (unset). */
static const char *fmt_time(int64_t t, char *buf, size_t len)
{
	if (t == 0)
		return NULL;
	return client_time_iso(t, buf, len);
}

/* The certificate record of a device's current LSC in resp, or NULL. */
static const Capf__Certificate *find_lsc(const Capf__AdminResponse *resp,
					 const Capf__Certificate *const *index, const Capf__Device *d)
{
	size_t lo = 0, hi = resp->n_certificates, mid;
	int cmp;

	if (d->lsc_serial.len == 0 || !index)
		return NULL;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		cmp = strcmp(index[mid]->device, d->name);
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* lo is the first record of this device; a device may have several. */
	for (; lo < resp->n_certificates && !strcmp(index[lo]->device, d->name); lo++)
		if (index[lo]->serial.len == d->lsc_serial.len &&
		    !memcmp(index[lo]->serial.data, d->lsc_serial.data, d->lsc_serial.len))
			return index[lo];
	return NULL;
}

static int cmp_cert_device(const void *a, const void *b)
{
	const Capf__Certificate *const *x = a, *const *y = b;

	return strcmp((*x)->device, (*y)->device);
}

/* Certificates of resp sorted by device name (NULL when there are none or
 * memory is short: then no LSC is shown). The caller frees the array. */
static const Capf__Certificate **cert_index(const Capf__AdminResponse *resp)
{
	const Capf__Certificate **index;

	if (resp->n_certificates == 0)
		return NULL;
	index = malloc(resp->n_certificates * sizeof(*index));
	if (!index)
		return NULL;
	memcpy(index, resp->certificates, resp->n_certificates * sizeof(*index));
	qsort(index, resp->n_certificates, sizeof(*index), cmp_cert_device);
	return index;
}

/* Everything printed about one device, as strings. */
struct device_view {
	const char *name, *op, *auth, *key, *status, *cert_state;
	const char *key_order, *ec_key;
	char deadline[32], created[32], updated[32], locked_until[32], fetched_at[32];
	char lsc_days[16], failures[16], lockouts[16], nfetched[16];
	const char *auth_string; /* "no", "single-use" or "reusable" */
	char lsc_nb[32], lsc_na[32], lsc_issued[32];
	bool has_deadline, has_lsc, has_lsc_times;
	char last_error[40];
	char *serial;     /* malloc'd hex of the LSC serial, NULL when none */
	char subject[512];
};

static void view_init(struct device_view *v, const Capf__Device *d, const Capf__Certificate *c,
		      bool want_subject)
{
	memset(v, 0, sizeof(*v));
	v->name = d->name;
	v->op = op_name(d->op);
	v->auth = auth_name(d->auth);
	v->key = key_type_name(d->key_type);
	v->key_order = key_order_name(d->key_order);
	v->ec_key = key_type_name(d->ec_key_type);
	v->status = status_name(d->status);
	snprintf(v->lsc_days, sizeof(v->lsc_days), "%u", d->lsc_days);
	snprintf(v->failures, sizeof(v->failures), "%u", d->auth_failures);
	snprintf(v->lockouts, sizeof(v->lockouts), "%u", d->lockouts);
	snprintf(v->nfetched, sizeof(v->nfetched), "%zu", d->n_fetched);
	/* The server sends the secret without its hash: present = a string is set. */
	v->auth_string = !d->auth_secret ? "no" : d->auth_secret->reusable ? "reusable" : "single-use";
	fmt_time(d->locked_until, v->locked_until, sizeof(v->locked_until));
	fmt_time(d->fetched_at, v->fetched_at, sizeof(v->fetched_at));
	v->has_deadline = fmt_time(d->deadline, v->deadline, sizeof(v->deadline)) != NULL;
	fmt_time(d->created, v->created, sizeof(v->created));
	fmt_time(d->updated, v->updated, sizeof(v->updated));
	if (d->last_error)
		snprintf(v->last_error, sizeof(v->last_error), "%s", capf_errname((int)d->last_error));
	if (d->lsc_serial.len)
		v->serial = client_hex(d->lsc_serial.data, d->lsc_serial.len);
	v->has_lsc = v->serial != NULL;
	if (c) {
		v->has_lsc_times = true;
		client_time_iso(c->not_before, v->lsc_nb, sizeof(v->lsc_nb));
		client_time_iso(c->not_after, v->lsc_na, sizeof(v->lsc_na));
		fmt_time(c->issued_at, v->lsc_issued, sizeof(v->lsc_issued));
		v->cert_state = cert_state_name(c->state);
		if (want_subject && c->der.len &&
		    ca_cert_subject(c->der.data, c->der.len, v->subject, sizeof(v->subject)) < 0)
			v->subject[0] = '\0';
	}
}

static void view_deinit(struct device_view *v)
{
	free(v->serial);
	v->serial = NULL;
}

void ctl_json_kv(FILE *f, const char *key, const char *val, bool comma)
{
	client_json_string(f, key);
	fputc(':', f);
	client_json_string(f, val);
	if (comma)
		fputc(',', f);
}

const char *ctl_when(int64_t t, char *buf, size_t len)
{
	if (t == 0 || t == -1)
		return "-";
	return client_time_iso(t, buf, len);
}

void ctl_json_time(FILE *f, const char *key, int64_t t, bool comma)
{
	char buf[32];

	ctl_json_kv(f, key, t == 0 || t == -1 ? NULL : client_time_iso(t, buf, sizeof(buf)),
		    comma);
}

void ctl_csv_row(FILE *f, const char *const *fields, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i)
			fputc(',', f);
		client_csv_field(f, fields[i]);
	}
	fputc('\n', f);
}

static void json_device_extra(FILE *f, const Capf__Device *d);
static void csv_device(FILE *f, const struct device_view *v);
static void json_device_certs(FILE *f, const Capf__Device *d, const Capf__AdminResponse *resp);

/* One device as a JSON object; with shown (device show), also the
 * record's bookkeeping and every certificate of the device. */
static void json_device(FILE *f, const Capf__Device *d, const struct device_view *v,
			const Capf__AdminResponse *shown)
{
	fputc('{', f);
	ctl_json_kv(f, "name", v->name, true);
	ctl_json_kv(f, "op", v->op, true);
	ctl_json_kv(f, "auth", v->auth, true);
	ctl_json_kv(f, "key", v->key, true);
	ctl_json_kv(f, "key_order", v->key_order, true);
	ctl_json_kv(f, "ec_key", v->ec_key, true);
	fprintf(f, "\"lsc_days\":%u,", d->lsc_days);
	fprintf(f, "\"auth_string_set\":%s,\"auth_string_reusable\":%s,",
		d->auth_secret ? "true" : "false",
		d->auth_secret && d->auth_secret->reusable ? "true" : "false");
	fprintf(f, "\"auth_failures\":%u,\"lockouts\":%u,", d->auth_failures, d->lockouts);
	ctl_json_kv(f, "locked_until", v->locked_until[0] ? v->locked_until : NULL, true);
	ctl_json_kv(f, "deadline", v->has_deadline ? v->deadline : NULL, true);
	ctl_json_kv(f, "status", v->status, true);
	ctl_json_kv(f, "last_error", d->last_error ? v->last_error : NULL, true);
	fprintf(f, "\"last_error_code\":%u,", d->last_error);
	ctl_json_kv(f, "created", v->created[0] ? v->created : NULL, true);
	ctl_json_kv(f, "updated", v->updated[0] ? v->updated : NULL, true);
	ctl_json_kv(f, "lsc_serial", v->serial, true);
	fputs("\"lsc\":", f);
	if (!v->has_lsc_times) {
		fputs("null", f);
	} else {
		fputc('{', f);
		ctl_json_kv(f, "serial", v->serial, true);
		ctl_json_kv(f, "subject", v->subject[0] ? v->subject : NULL, true);
		ctl_json_kv(f, "not_before", v->lsc_nb, true);
		ctl_json_kv(f, "not_after", v->lsc_na, true);
		ctl_json_kv(f, "issued_at", v->lsc_issued[0] ? v->lsc_issued : NULL, true);
		ctl_json_kv(f, "state", v->cert_state, false);
		fputc('}', f);
	}
	fputc(',', f);
	json_device_extra(f, d);
	if (shown) {
		ctl_json_device_fetched(f, d);
		json_device_certs(f, d, shown);
	} else {
		/* A list carries no fetch report (it is big): its size and time. */
		ctl_json_kv(f, "fetched_at", v->fetched_at[0] ? v->fetched_at : NULL, true);
		fprintf(f, "\"fetched_count\":%zu", d->n_fetched);
	}
	fputc('}', f);
}

void ctl_device_json(FILE *f, const Capf__Device *d, const Capf__Certificate *c)
{
	struct device_view v;

	view_init(&v, d, c, true);
	json_device(f, d, &v, NULL);
	view_deinit(&v);
}

void ctl_device_csv(FILE *f, const Capf__Device *d, const Capf__Certificate *c)
{
	struct device_view v;

	view_init(&v, d, c, true);
	csv_device(f, &v);
	view_deinit(&v);
}

const char *const ctl_csv_device_header =
	"name,op,auth,key,deadline,status,last_error,lsc_serial,lsc_subject,lsc_not_before,"
	"lsc_not_after,lsc_state,created,updated,key_order,ec_key,lsc_days,auth_string,auth_failures,"
	"locked_until,lockouts,fetched,fetched_at\n";

static void csv_device(FILE *f, const struct device_view *v)
{
	const char *fields[] = {
		v->name,
		v->op,
		v->auth,
		v->key,
		v->has_deadline ? v->deadline : "",
		v->status,
		v->last_error,
		v->serial ? v->serial : "",
		v->subject,
		v->has_lsc_times ? v->lsc_nb : "",
		v->has_lsc_times ? v->lsc_na : "",
		v->has_lsc_times ? v->cert_state : "",
		v->created,
		v->updated,
		v->key_order,
		v->ec_key,
		v->lsc_days,
		v->auth_string,
		v->failures,
		v->locked_until,
		v->lockouts,
		v->nfetched,
		v->fetched_at,
	};

	ctl_csv_row(f, fields, sizeof(fields) / sizeof(fields[0]));
}

/* ---- device show / list ----------------------------------------------- */

/* Parses the options of a command that takes only --json/--csv/--help. */
int simple_opts(struct ctl *c, int argc, char **argv, const char *cmd,
		       void (*usage)(FILE *), bool *help)
{
	static const struct option longopts[] = {
		CTL_FORMAT_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	*help = false;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
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
	return CTL_EXIT_OK;
}

/* ---- a device's certificates (device show) ------------------------------- */

static bool serial_eq(const Capf__Certificate *c, const ProtobufCBinaryData *s)
{
	return s->len > 0 && c->serial.len == s->len && !memcmp(c->serial.data, s->data, s->len);
}

/* What a certificate is to its device: the LSC it has, the one issued and
 * recorded but not acknowledged yet, or one it had. */
static const char *cert_role(const Capf__Device *d, const Capf__Certificate *c)
{
	if (serial_eq(c, &d->lsc_serial))
		return "current";
	if (serial_eq(c, &d->pending_serial))
		return "unacknowledged";
	return "past";
}

static void json_time_kv(FILE *f, const char *key, int64_t t, bool comma)
{
	char buf[32];

	ctl_json_kv(f, key, fmt_time(t, buf, sizeof(buf)), comma);
}

static void json_device_certs(FILE *f, const Capf__Device *d, const Capf__AdminResponse *resp)
{
	size_t i;

	fputs("\"certificates\":[", f);
	for (i = 0; i < resp->n_certificates; i++) {
		const Capf__Certificate *c = resp->certificates[i];
		bool revoked = c->state == CAPF__CERT_STATE__CERT_REVOKED;
		char *serial = client_hex(c->serial.data, c->serial.len);

		if (i)
			fputc(',', f);
		fputc('{', f);
		ctl_json_kv(f, "role", cert_role(d, c), true);
		ctl_json_kv(f, "serial", serial, true);
		ctl_json_kv(f, "state", cert_state_name(c->state), true);
		json_time_kv(f, "not_before", c->not_before, true);
		json_time_kv(f, "not_after", c->not_after, true);
		json_time_kv(f, "issued_at", c->issued_at, true);
		json_time_kv(f, "revoked_at", revoked ? c->revoked_at : 0, true);
		ctl_json_kv(f, "reason", revoked ? ca_reason_name((int)c->revocation_reason) : NULL,
			true);
		fprintf(f, "\"revision\":%llu", (unsigned long long)c->revision);
		fputc('}', f);
		free(serial);
	}
	fputc(']', f);
}

/* The record's bookkeeping for --json: revision, operation generation,
 * the unacknowledged serial and the MIC that last authenticated. */
static void json_device_extra(FILE *f, const Capf__Device *d)
{
	char *pending = d->pending_serial.len
				? client_hex(d->pending_serial.data, d->pending_serial.len)
				: NULL;

	fprintf(f, "\"revision\":%llu,\"op_generation\":%llu,", (unsigned long long)d->revision,
		(unsigned long long)d->op_generation);
	ctl_json_kv(f, "pending_serial", pending, true);
	ctl_json_kv(f, "mic_fingerprint", d->mic_fingerprint && *d->mic_fingerprint
					      ? d->mic_fingerprint
					      : NULL,
		true);
	free(pending);
}

static void show_certs_table(const Capf__Device *d, const Capf__AdminResponse *resp)
{
	size_t i;

	printf("certificates:   %zu\n", resp->n_certificates);
	if (resp->n_certificates == 0)
		return;
	printf("  %-14s %-40s %-11s %-20s %-20s %s\n", "ROLE", "SERIAL", "STATE", "NOT BEFORE",
	       "NOT AFTER", "REVOKED");
	for (i = 0; i < resp->n_certificates; i++) {
		const Capf__Certificate *c = resp->certificates[i];
		char nb[32], na[32], rv[32];
		char *serial = client_hex(c->serial.data, c->serial.len);

		printf("  %-14s %-40s %-11s %-20s %-20s", cert_role(d, c), or_dash(serial),
		       cert_state_name(c->state), or_dash(fmt_time(c->not_before, nb, sizeof(nb))),
		       or_dash(fmt_time(c->not_after, na, sizeof(na))));
		if (c->state == CAPF__CERT_STATE__CERT_REVOKED)
			printf(" %s %s\n", or_dash(fmt_time(c->revoked_at, rv, sizeof(rv))),
			       ca_reason_name((int)c->revocation_reason));
		else
			printf(" -\n");
		free(serial);
	}
}

static void show_table(const Capf__Device *d, const struct device_view *v)
{
	printf("name:           %s\n", v->name);
	printf("operation:      %s\n", v->op);
	printf("authentication: %s\n", v->auth);
	printf("key type:       %s\n", v->key);
	printf("key order:      %s\n", v->key_order);
	printf("ec key:         %s\n", v->ec_key);
	printf("lsc days:       %s%s\n", v->lsc_days, d->lsc_days ? "" : " (the server's)");
	printf("auth string:    %s\n", v->auth_string);
	printf("auth failures:  %s\n", v->failures);
	printf("locked until:   %s\n", or_dash(v->locked_until));
	printf("lockouts:       %s\n", v->lockouts);
	printf("deadline:       %s\n", v->has_deadline ? v->deadline : "-");
	printf("status:         %s\n", v->status);
	if (d->last_error)
		printf("last error:     %s (%u): %s\n", v->last_error, d->last_error,
		       capf_strerror((int)d->last_error));
	else
		printf("last error:     -\n");
	printf("created:        %s\n", or_dash(v->created));
	printf("updated:        %s\n", or_dash(v->updated));
	printf("lsc serial:     %s\n", or_dash(v->serial));
	if (v->has_lsc_times) {
		printf("lsc subject:    %s\n", or_dash(v->subject));
		printf("lsc not before: %s\n", v->lsc_nb);
		printf("lsc not after:  %s\n", v->lsc_na);
		printf("lsc issued:     %s\n", or_dash(v->lsc_issued));
		printf("lsc state:      %s\n", v->cert_state);
	}
	if (d->pending_serial.len) {
		char *pending = client_hex(d->pending_serial.data, d->pending_serial.len);

		printf("pending serial: %s\n", or_dash(pending));
		free(pending);
	} else {
		printf("pending serial: -\n");
	}
	printf("mic fingerprint: %s\n", or_dash(d->mic_fingerprint));
	printf("revision:       %llu\n", (unsigned long long)d->revision);
	printf("op generation:  %llu\n", (unsigned long long)d->op_generation);
}

static int cmd_device_show(struct ctl *c, int argc, char **argv)
{
	Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
	Capf__DeviceGet get = CAPF__DEVICE_GET__INIT;
	Capf__AdminResponse *resp = NULL;
	const Capf__Certificate **index = NULL;
	const Capf__Certificate *cert;
	const Capf__Device *d;
	struct device_view v;
	bool help;
	int ret;

	ret = simple_opts(c, argc, argv, "device show", usage_show, &help);
	if (ret || help)
		return ret;
	if (optind + 1 != argc)
		return usage_error("device show", "give exactly one device NAME");
	if (!device_name_valid(argv[optind]))
		return usage_error("device show", "'%s' is not a device name", argv[optind]);
	get.name = argv[optind];
	req.body_case = CAPF__ADMIN_REQUEST__BODY_DEVICE_GET;
	req.device_get = &get;
	ret = ctl_call_ok(c, &req, &resp, argv[optind]);
	if (ret)
		return ret;
	if (resp->n_devices == 0) {
		fprintf(stderr, PROG ": the server sent no device\n");
		ret = CTL_EXIT_REFUSED;
		goto out;
	}
	d = resp->devices[0];
	index = cert_index(resp);
	cert = find_lsc(resp, index, d);
	view_init(&v, d, cert, true);
	switch (c->fmt) {
	case FMT_JSON:
		json_device(stdout, d, &v, resp);
		fputc('\n', stdout);
		break;
	case FMT_CSV:
		fputs(ctl_csv_device_header, stdout);
		csv_device(stdout, &v);
		break;
	default:
		show_table(d, &v);
		ctl_show_fetched_table(d);
		show_certs_table(d, resp);
		break;
	}
	view_deinit(&v);
	ret = CTL_EXIT_OK;
out:
	free(index);
	capf__admin_response__free_unpacked(resp, NULL);
	return ret;
}

static int cmd_device_add(struct ctl *c, int argc, char **argv)
{
	return ctl_device_put(c, argc, argv, true);
}

static int cmd_device_set(struct ctl *c, int argc, char **argv)
{
	return ctl_device_put(c, argc, argv, false);
}

static int cmd_device(struct ctl *c, int argc, char **argv)
{
	static const struct ctl_subcommand subs[] = {
		{ "add", cmd_device_add },
		{ "set", cmd_device_set },
		{ "show", cmd_device_show },
		{ "list", ctl_cmd_device_list },
		{ "del", ctl_cmd_device_del },
		{ NULL, NULL },
	};

	return ctl_dispatch(c, argc, argv, "device", usage_device, subs);
}

/* ---- status ----------------------------------------------------------- */

static int cmd_status(struct ctl *c, int argc, char **argv)
{
	Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
	Capf__StatusRequest st = CAPF__STATUS_REQUEST__INIT;
	Capf__AdminResponse *resp = NULL;
	const Capf__ServerStatus *s;
	char started[32] = "", ca_expiry[32] = "";
	bool help;
	int ret;

	ret = simple_opts(c, argc, argv, "status", usage_status, &help);
	if (ret || help)
		return ret;
	ret = ctl_no_operands("status", argc, argv);
	if (ret)
		return ret;
	req.body_case = CAPF__ADMIN_REQUEST__BODY_STATUS;
	req.status = &st;
	ret = ctl_call_ok(c, &req, &resp, NULL);
	if (ret)
		return ret;
	if (!resp->status) {
		fprintf(stderr, PROG ": the server sent no status\n");
		ret = CTL_EXIT_REFUSED;
		goto out;
	}
	s = resp->status;
	client_time_iso(s->started_at, started, sizeof(started));
	if (s->ca_not_after)
		client_time_iso(s->ca_not_after, ca_expiry, sizeof(ca_expiry));
	switch (c->fmt) {
	case FMT_JSON:
		printf("{\"pid\":%u,\"version\":", s->pid);
		client_json_string(stdout, s->version);
		printf(",\"port\":%u,\"workers\":%u,\"devices\":%llu,\"certificates\":%llu,"
		       "\"enrollments\":%llu,\"failures\":%llu,\"connections\":%llu,",
		       s->port, s->workers, (unsigned long long)s->devices,
		       (unsigned long long)s->certificates, (unsigned long long)s->enrollments,
		       (unsigned long long)s->failures, (unsigned long long)s->connections);
		printf("\"started\":\"%s\",\"uptime\":%llu,\"pending_operations\":%llu,"
		       "\"unacknowledged\":%llu,\"ca_not_after\":",
		       started, (unsigned long long)s->uptime,
		       (unsigned long long)s->pending_operations,
		       (unsigned long long)s->unacknowledged);
		client_json_string(stdout, s->ca_not_after ? ca_expiry : NULL);
		fputs("}\n", stdout);
		break;
	case FMT_CSV:
		fputs("pid,version,port,workers,devices,certificates,enrollments,failures,"
		      "connections,started,uptime,pending_operations,unacknowledged,ca_not_after\n",
		      stdout);
		printf("%u,", s->pid);
		client_csv_field(stdout, s->version);
		printf(",%u,%u,%llu,%llu,%llu,%llu,%llu,%s,%llu,%llu,%llu,%s\n", s->port, s->workers,
		       (unsigned long long)s->devices, (unsigned long long)s->certificates,
		       (unsigned long long)s->enrollments, (unsigned long long)s->failures,
		       (unsigned long long)s->connections, started, (unsigned long long)s->uptime,
		       (unsigned long long)s->pending_operations,
		       (unsigned long long)s->unacknowledged, s->ca_not_after ? ca_expiry : "");
		break;
	default:
		printf("pid:          %u\n", s->pid);
		printf("version:      %s\n", or_dash(s->version));
		printf("port:         %u\n", s->port);
		printf("workers:      %u\n", s->workers);
		printf("devices:      %llu\n", (unsigned long long)s->devices);
		printf("certificates: %llu\n", (unsigned long long)s->certificates);
		printf("enrollments:  %llu\n", (unsigned long long)s->enrollments);
		printf("failures:     %llu\n", (unsigned long long)s->failures);
		printf("connections:  %llu\n", (unsigned long long)s->connections);
		printf("started:      %s\n", started);
		printf("uptime:       %llud %02lluh %02llum %02llus\n",
		       (unsigned long long)s->uptime / 86400,
		       (unsigned long long)s->uptime % 86400 / 3600,
		       (unsigned long long)s->uptime % 3600 / 60, (unsigned long long)s->uptime % 60);
		printf("pending:      %llu\n", (unsigned long long)s->pending_operations);
		printf("unacknowledged: %llu\n", (unsigned long long)s->unacknowledged);
		printf("ca expires:   %s\n", s->ca_not_after ? ca_expiry : "-");
		break;
	}
	ret = CTL_EXIT_OK;
out:
	capf__admin_response__free_unpacked(resp, NULL);
	return ret;
}

/* ---- main ------------------------------------------------------------- */

static int run_area_command(struct ctl *c, const char *name, int argc, char **argv)
{
	const char *names[64] = { "device", "status", "help" };
	size_t n = 3;

	for (size_t t = 0; t < sizeof(areas) / sizeof(areas[0]); t++)
		for (const struct ctl_command *cmd = areas[t]; cmd->name != NULL; cmd++) {
			if (!strcmp(cmd->name, name))
				return cmd->run(c, argc, argv);
			if (n < 64)
				names[n++] = cmd->name;
		}
	return ctl_unknown(NULL, name, names, n);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "csv", no_argument, NULL, OPT_CSV },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl c;
	const char *cmd;
	int opt, ret;

	memset(&c, 0, sizeof(c));
	c.admin.fd = -1;
	c.socket = getenv("CAPF_SOCKET");
	if (!c.socket || !*c.socket)
		c.socket = CLIENT_ADMIN_SOCKET_DEFAULT;

	/* Options are reported here, with a hint, not by getopt. */
	opterr = 0;
	/* "+": stop at the command; its own options follow it. */
	while ((opt = getopt_long(argc, argv, "+s:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			c.socket = optarg;
			break;
		case OPT_JSON:
		case OPT_CSV:
			if (ctl_set_format(&c, opt))
				return CTL_EXIT_USAGE;
			break;
		case 'h':
			usage_main(stdout);
			return CTL_EXIT_OK;
		case 'V':
			printf(PROG " " PACKAGE_VERSION "\n");
			return CTL_EXIT_OK;
		default:
			return ctl_bad_option(NULL, argv, longopts);
		}
	}
	if (optind >= argc)
		return usage_error(NULL, "give a command");
	if (!*c.socket)
		return usage_error(NULL, "empty socket path");
	cmd = argv[optind];
	argc -= optind;
	argv += optind;
	if (!strcmp(cmd, "help")) {
		usage_main(stdout);
		return CTL_EXIT_OK;
	}
	if (!strcmp(cmd, "device"))
		ret = cmd_device(&c, argc, argv);
	else if (!strcmp(cmd, "status"))
		ret = cmd_status(&c, argc, argv);
	else
		ret = run_area_command(&c, cmd, argc, argv);
	if (c.connected)
		client_admin_close(&c.admin);
	if (fflush(stdout) != 0 && ret == CTL_EXIT_OK) {
		fprintf(stderr, PROG ": cannot write the output: %s\n", strerror(errno));
		ret = CTL_EXIT_REFUSED;
	}
	return ret;
}
