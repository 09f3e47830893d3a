/*
 * capfctl's queries: device list, device del and cert list, and what the
 * commands of lists share (capfctl_report.c has schedule, report and
 * stats). Lists of any size come page by page (capf.DeviceList and
 * CertList carry a cursor), and each page is printed as it comes: a
 * million devices never sit in one frame or in this process at once.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ca/ca.h"
#include "tools/capfctl.h"
#include "tools/client.h"
#include "tools/query_opts.h"
#include "tools/where.h"



/* ---- paging ---------------------------------------------------------------- */

static int cert_serial_cmp(const void *a, const void *b)
{
	const Capf__Certificate *x = *(const Capf__Certificate *const *)a;
	const Capf__Certificate *y = *(const Capf__Certificate *const *)b;

	if (x->serial.len != y->serial.len)
		return x->serial.len < y->serial.len ? -1 : 1;
	return memcmp(x->serial.data, y->serial.data, x->serial.len);
}

const Capf__Certificate *ctl_page_lsc(const Capf__AdminResponse *page, const Capf__Device *d)
{
	size_t lo = 0, hi = page->n_certificates;

	if (d->lsc_serial.len == 0)
		return NULL;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const Capf__Certificate *c = page->certificates[mid];
		int cmp = c->serial.len != d->lsc_serial.len
				  ? (c->serial.len < d->lsc_serial.len ? -1 : 1)
				  : memcmp(c->serial.data, d->lsc_serial.data, c->serial.len);

		if (cmp == 0)
			return c;
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int ctl_device_pages(struct ctl *c, const Capf__DeviceFilter *f, unsigned page_size,
		     int (*cb)(const Capf__AdminResponse *page, void *arg), void *arg)
{
	char after[DEVICE_NAME_MAX + 1] = "";
	bool more = true;
	int ret = 0;

	while (more && ret == 0) {
		Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
		Capf__DeviceList list = CAPF__DEVICE_LIST__INIT;
		Capf__AdminResponse *resp = NULL;

		list.filter = (Capf__DeviceFilter *)f;
		list.after = after;
		list.limit = page_size;
		req.body_case = CAPF__ADMIN_REQUEST__BODY_DEVICE_LIST;
		req.device_list = &list;
		ret = ctl_call_ok(c, &req, &resp, NULL);
		if (ret)
			return ret;
		/* The page's LSC records sorted by serial, for ctl_page_lsc(). */
		qsort(resp->certificates, resp->n_certificates, sizeof(*resp->certificates),
		      cert_serial_cmp);
		more = resp->more;
		if (more && (resp->next == NULL || strlen(resp->next) > DEVICE_NAME_MAX ||
			     (resp->n_devices == 0 && !strcmp(resp->next, after) && *after))) {
			fprintf(stderr, PROG ": the server's listing does not advance\n");
			ret = CTL_EXIT_REFUSED;
		} else {
			snprintf(after, sizeof(after), "%s", resp->next ? resp->next : "");
			ret = cb(resp, arg);
		}
		capf__admin_response__free_unpacked(resp, NULL);
	}
	return ret;
}

int ctl_parse_page_size(const char *cmd, const char *arg, unsigned *out)
{
	char *end = NULL;
	unsigned long v;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno || *arg < '0' || *arg > '9' || *end || v == 0 || v > CTL_PAGE_SIZE_MAX)
		return usage_error(cmd, "--page-size wants 1..%u", CTL_PAGE_SIZE_MAX);
	*out = (unsigned)v;
	return 0;
}

int ctl_add_where(const char *cmd, struct where *w, const char *expr)
{
	char err[200];

	if (where_parse(w, expr, (int64_t)time(NULL), err, sizeof(err)) < 0)
		return usage_error(cmd, "--where '%s': %s", expr, err);
	return 0;
}

/* ---- a table printed page by page ------------------------------------------ */

static void table_print_row(const struct ctl_table *t, const char *const *cols)
{
	for (size_t k = 0; k < t->ncols; k++)
		printf("%-*s%s", k + 1 < t->ncols ? (int)t->width[k] : 0, cols[k],
		       k + 1 < t->ncols ? "  " : "\n");
}

int ctl_table_row(struct ctl_table *t, const char *const *cols)
{
	if (t->started) {
		table_print_row(t, cols);
		return 0;
	}
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		char **cells = realloc(t->cells, cap * t->ncols * sizeof(*cells));

		if (cells == NULL)
			return CAPF_ENOMEM;
		t->cells = cells;
		t->cap = cap;
	}
	for (size_t k = 0; k < t->ncols; k++) {
		t->cells[t->nrows * t->ncols + k] = strdup(cols[k]);
		if (t->cells[t->nrows * t->ncols + k] == NULL)
			return CAPF_ENOMEM;
	}
	t->nrows++;
	return 0;
}

void ctl_table_flush(struct ctl_table *t)
{
	if (t->started)
		return;
	for (size_t k = 0; k < t->ncols; k++)
		t->width[k] = strlen(t->heads[k]);
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t k = 0; k < t->ncols; k++) {
			size_t len = strlen(t->cells[r * t->ncols + k]);
			if (len > t->width[k])
				t->width[k] = len;
		}
	table_print_row(t, t->heads);
	for (size_t r = 0; r < t->nrows; r++) {
		table_print_row(t, (const char *const *)&t->cells[r * t->ncols]);
		for (size_t k = 0; k < t->ncols; k++)
			free(t->cells[r * t->ncols + k]);
	}
	free(t->cells);
	t->cells = NULL;
	t->nrows = t->cap = 0;
	t->started = true;
}

void ctl_table_free(struct ctl_table *t)
{
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t k = 0; k < t->ncols; k++)
			free(t->cells[r * t->ncols + k]);
	free(t->cells);
}

const char *ctl_or_dash(const char *s)
{
	return s && *s ? s : "-";
}

static const char *day_of(int64_t t, char *buf, size_t len)
{
	char iso[32];

	if (t == 0)
		return "-";
	client_time_iso(t, iso, sizeof(iso));
	snprintf(buf, len, "%.10s", iso);
	return buf;
}

/* ---- device list ------------------------------------------------------------ */

struct list_state {
	struct ctl *c;
	struct ctl_table t;
	unsigned long count;
	bool count_only;
};

static const char *const list_heads[] = {
	"NAME", "OP", "AUTH", "KEY", "STATUS", "LSC SERIAL", "LSC EXPIRES",
};

static int list_page(const Capf__AdminResponse *page, void *arg)
{
	struct list_state *ls = arg;

	for (size_t i = 0; i < page->n_devices; i++) {
		const Capf__Device *d = page->devices[i];
		const Capf__Certificate *lsc = ctl_page_lsc(page, d);

		if (ls->count_only) {
			ls->count++;
			continue;
		}
		switch (ls->c->fmt) {
		case FMT_JSON:
			fputs(ls->count ? ",\n" : "[", stdout);
			ctl_device_json(stdout, d, lsc);
			break;
		case FMT_CSV:
			ctl_device_csv(stdout, d, lsc);
			break;
		default: {
			char *serial = d->lsc_serial.len
					       ? client_hex(d->lsc_serial.data, d->lsc_serial.len)
					       : NULL;
			char exp[16];
			const char *cols[] = {
				d->name,
				op_name(d->op),
				auth_name(d->auth),
				key_type_name(d->key_type),
				status_name(d->status),
				ctl_or_dash(serial),
				lsc ? day_of(lsc->not_after, exp, sizeof(exp)) : "-",
			};
			int ret = ctl_table_row(&ls->t, cols);

			free(serial);
			if (ret < 0) {
				fprintf(stderr, PROG ": out of memory\n");
				return CTL_EXIT_REFUSED;
			}
			break;
		}
		}
		ls->count++;
	}
	if (ls->c->fmt == FMT_TABLE && !ls->count_only)
		ctl_table_flush(&ls->t);
	return 0;
}

static void usage_list(FILE *f)
{
	fprintf(f, "Usage: " PROG " device list [--where EXPR]... [--page-size N] [--count]\n"
		   "                    [--json|--csv]\n"
		   "List the devices that match every --where (all without one), sorted by\n"
		   "name: a table, a JSON array of objects (every field of device show but\n"
		   "the certificate history) or CSV with a header line. The server sends\n"
		   "them in pages of N (default %u, at most %u).\n"
		   "\n"
		   "EXPR is conditions joined by 'and':\n"
		   "  name = NAME, name prefix TEXT, name like GLOB\n"
		   "  status = S[,S]   none, pending, issued, success, failed\n"
		   "  auth = M[,M]     mic, string, null, lsc-or-mic, mic-or-lsc\n"
		   "  op = O[,O]       none, install, delete, fetch\n"
		   "  no lsc, has lsc, unacknowledged, failed (see report --failed)\n"
		   "  expires before DATE, expires after DATE, expires within N[d|h|w]\n"
		   "\n"
		   "      --count      print only how many match\n",
		CTL_PAGE_SIZE_DEFAULT, CTL_PAGE_SIZE_MAX);
}

int ctl_cmd_device_list(struct ctl *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "where", required_argument, NULL, OPT_WHERE },
		{ "page-size", required_argument, NULL, OPT_PAGE_SIZE },
		{ "count", no_argument, NULL, 'n' },
		CTL_FORMAT_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct list_state ls = { .c = c };
	unsigned page_size = CTL_PAGE_SIZE_DEFAULT;
	struct where w;
	int opt, ret;

	where_init(&w);
	ls.t.ncols = sizeof(list_heads) / sizeof(list_heads[0]);
	ls.t.heads = list_heads;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "w:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'w':
		case OPT_WHERE:
			if (ctl_add_where("device list", &w, optarg))
				return CTL_EXIT_USAGE;
			break;
		case OPT_PAGE_SIZE:
			if (ctl_parse_page_size("device list", optarg, &page_size))
				return CTL_EXIT_USAGE;
			break;
		case 'n':
			ls.count_only = true;
			break;
		case OPT_JSON:
		case OPT_CSV:
			if (ctl_set_format(c, opt))
				return CTL_EXIT_USAGE;
			break;
		case 'h':
			usage_list(stdout);
			return CTL_EXIT_OK;
		default:
			return ctl_bad_option("device list", argv, longopts);
		}
	}
	ret = ctl_no_operands("device list", argc, argv);
	if (ret)
		return ret;
	if (c->fmt == FMT_CSV && !ls.count_only)
		fputs(ctl_csv_device_header, stdout);
	ret = ctl_device_pages(c, &w.f, page_size, list_page, &ls);
	if (ret == 0) {
		if (ls.count_only)
			printf("%lu\n", ls.count);
		else if (c->fmt == FMT_JSON)
			fputs(ls.count ? "]\n" : "[]\n", stdout);
		else if (c->fmt == FMT_TABLE)
			ctl_table_flush(&ls.t);
	}
	ctl_table_free(&ls.t);
	return ret;
}

/* ---- device del --------------------------------------------------------------- */

static void usage_del(FILE *f)
{
	fprintf(f, "Usage: " PROG " device del NAME... [--keep-cert] [--json|--csv]\n"
		   "Remove devices. The current LSC of each, and one issued but not yet\n"
		   "acknowledged, are revoked first (reason cessationOfOperation) unless\n"
		   "--keep-cert is given; a device whose certificate cannot be revoked is\n"
		   "not removed. A removed device is unknown to every command and can be\n"
		   "added again.\n");
}

/* Revokes one serial of a device; one revoked already is fine. Returns 0,
 * 1 (refused, reported) or an exit status. */
static int del_revoke(struct ctl *c, const char *name, const ProtobufCBinaryData *serial,
		      char *revoked, size_t len)
{
	Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
	Capf__CertRevokeRequest rv = CAPF__CERT_REVOKE_REQUEST__INIT;
	Capf__AdminResponse *resp = NULL;
	char *hex;
	int ret;

	rv.serial = *serial;
	rv.reason = CA_REASON_CESSATION_OF_OPERATION;
	req.body_case = CAPF__ADMIN_REQUEST__BODY_CERT_REVOKE;
	req.cert_revoke = &rv;
	ret = ctl_call(c, &req, &resp);
	if (ret)
		return ret;
	ret = 0;
	if (resp->code != 0 && resp->code != (uint32_t)-CAPF_EEXIST) {
		report_refusal(resp, name);
		ret = 1;
	} else if ((hex = client_hex(serial->data, serial->len)) != NULL) {
		size_t used = strlen(revoked);

		snprintf(revoked + used, len - used, "%s%s", used ? " " : "", hex);
		free(hex);
	}
	capf__admin_response__free_unpacked(resp, NULL);
	return ret;
}

int ctl_cmd_device_del(struct ctl *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "keep-cert", no_argument, NULL, OPT_KEEP_CERT },
		CTL_FORMAT_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	bool keep = false, first = true;
	int opt, ret, status = CTL_EXIT_OK;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_KEEP_CERT:
			keep = true;
			break;
		case OPT_JSON:
		case OPT_CSV:
			if (ctl_set_format(c, opt))
				return CTL_EXIT_USAGE;
			break;
		case 'h':
			usage_del(stdout);
			return CTL_EXIT_OK;
		default:
			return ctl_bad_option("device del", argv, longopts);
		}
	}
	if (optind >= argc)
		return usage_error("device del", "give at least one device NAME");
	for (int i = optind; i < argc; i++)
		if (!device_name_valid(argv[i]))
			return usage_error("device del", "'%s' is not a device name", argv[i]);
	if (c->fmt == FMT_CSV)
		fputs("name,result,revoked\n", stdout);
	for (int i = optind; i < argc; i++) {
		Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
		Capf__DeviceGet get = CAPF__DEVICE_GET__INIT;
		Capf__DeviceDelete del = CAPF__DEVICE_DELETE__INIT;
		Capf__AdminResponse *resp = NULL;
		char revoked[300] = "";
		const char *result = "ok";

		get.name = argv[i];
		req.body_case = CAPF__ADMIN_REQUEST__BODY_DEVICE_GET;
		req.device_get = &get;
		ret = ctl_call_ok(c, &req, &resp, argv[i]);
		if (ret == CTL_EXIT_REFUSED) {
			status = ret;
			result = "refused";
			goto print;
		}
		if (ret)
			return ret;
		if (!keep && resp->n_devices > 0) {
			const Capf__Device *d = resp->devices[0];
			int r = 0;

			if (d->lsc_serial.len)
				r = del_revoke(c, argv[i], &d->lsc_serial, revoked,
					       sizeof(revoked));
			if (r == 0 && d->pending_serial.len)
				r = del_revoke(c, argv[i], &d->pending_serial, revoked,
					       sizeof(revoked));
			if (r > 1) {
				capf__admin_response__free_unpacked(resp, NULL);
				return r;
			}
			if (r == 1) {
				capf__admin_response__free_unpacked(resp, NULL);
				status = CTL_EXIT_REFUSED;
				result = "refused";
				goto print;
			}
		}
		capf__admin_response__free_unpacked(resp, NULL);
		resp = NULL;
		del.name = argv[i];
		req.body_case = CAPF__ADMIN_REQUEST__BODY_DEVICE_DELETE;
		req.device_delete = &del;
		ret = ctl_call_ok(c, &req, &resp, argv[i]);
		if (ret == CTL_EXIT_REFUSED) {
			status = ret;
			result = "refused";
		} else if (ret) {
			return ret;
		} else {
			capf__admin_response__free_unpacked(resp, NULL);
		}
print:
		switch (c->fmt) {
		case FMT_JSON:
			fputs(first ? "[{" : ",\n{", stdout);
			fputs("\"name\":", stdout);
			client_json_string(stdout, argv[i]);
			fputs(",\"result\":", stdout);
			client_json_string(stdout, result);
			fputs(",\"revoked\":", stdout);
			client_json_string(stdout, revoked);
			fputc('}', stdout);
			break;
		case FMT_CSV:
			client_csv_field(stdout, argv[i]);
			fputc(',', stdout);
			client_csv_field(stdout, result);
			fputc(',', stdout);
			client_csv_field(stdout, revoked);
			fputc('\n', stdout);
			break;
		default:
			if (!strcmp(result, "ok"))
				printf("removed %s%s%s\n", argv[i],
				       *revoked ? ", revoked " : "", revoked);
			break;
		}
		first = false;
	}
	if (c->fmt == FMT_JSON)
		fputs(first ? "[]\n" : "]\n", stdout);
	return status;
}

/* ---- cert list --------------------------------------------------------------- */

static void usage_cert_list(FILE *f)
{
	fprintf(f, "Usage: " PROG " cert list [--device NAME] [--state S[,S]]\n"
		   "                 [--expires-before DATE] [--expires-after DATE]\n"
		   "                 [--expires-within N[d|h|w]] [--page-size N] [--json|--csv]\n"
		   "List certificate records (current, unacknowledged and past), by serial;\n"
		   "without --device the server sends them in pages. S is unconfirmed,\n"
		   "active or revoked; the DER is left out ('cert show SERIAL' has it).\n");
}

static const char *const cert_heads[] = {
	"SERIAL", "DEVICE", "STATE", "NOT BEFORE", "NOT AFTER", "ISSUED", "REVOKED", "REASON",
};

static void cert_row_json(const Capf__Certificate *crt, bool first)
{
	char nb[32], na[32], is[32], rv[32];
	char *serial = client_hex(crt->serial.data, crt->serial.len);
	bool revoked = crt->state == CAPF__CERT_STATE__CERT_REVOKED;

	fputs(first ? "[{" : ",\n{", stdout);
	fputs("\"serial\":", stdout);
	client_json_string(stdout, serial);
	fputs(",\"device\":", stdout);
	client_json_string(stdout, crt->device);
	fputs(",\"state\":", stdout);
	client_json_string(stdout, cert_state_name(crt->state));
	fputs(",\"not_before\":", stdout);
	client_json_string(stdout, client_time_iso(crt->not_before, nb, sizeof(nb)));
	fputs(",\"not_after\":", stdout);
	client_json_string(stdout, client_time_iso(crt->not_after, na, sizeof(na)));
	fputs(",\"issued_at\":", stdout);
	client_json_string(stdout, crt->issued_at ? client_time_iso(crt->issued_at, is, sizeof(is))
						  : NULL);
	fputs(",\"revoked_at\":", stdout);
	client_json_string(stdout, revoked && crt->revoked_at
					   ? client_time_iso(crt->revoked_at, rv, sizeof(rv))
					   : NULL);
	fputs(",\"reason\":", stdout);
	client_json_string(stdout, revoked ? ca_reason_name((int)crt->revocation_reason) : NULL);
	printf(",\"revision\":%llu}", (unsigned long long)crt->revision);
	free(serial);
}

static int cert_row(struct ctl *c, struct ctl_table *t, const Capf__Certificate *crt,
		    unsigned long n)
{
	char nb[32], na[32], is[32], rv[32];
	char *serial;
	bool revoked = crt->state == CAPF__CERT_STATE__CERT_REVOKED;
	const char *cols[8];
	int ret = 0;

	if (c->fmt == FMT_JSON) {
		cert_row_json(crt, n == 0);
		return 0;
	}
	serial = client_hex(crt->serial.data, crt->serial.len);
	cols[0] = ctl_or_dash(serial);
	cols[1] = crt->device;
	cols[2] = cert_state_name(crt->state);
	cols[3] = client_time_iso(crt->not_before, nb, sizeof(nb));
	cols[4] = client_time_iso(crt->not_after, na, sizeof(na));
	cols[5] = crt->issued_at ? client_time_iso(crt->issued_at, is, sizeof(is)) : "";
	cols[6] = revoked && crt->revoked_at ? client_time_iso(crt->revoked_at, rv, sizeof(rv))
					     : "";
	cols[7] = revoked ? ca_reason_name((int)crt->revocation_reason) : "";
	if (c->fmt == FMT_CSV) {
		for (size_t k = 0; k < 8; k++) {
			if (k)
				fputc(',', stdout);
			client_csv_field(stdout, cols[k]);
		}
		fputc('\n', stdout);
	} else {
		for (size_t k = 5; k < 8; k++)
			cols[k] = ctl_or_dash(cols[k]);
		ret = ctl_table_row(t, cols);
	}
	free(serial);
	return ret;
}

static int parse_states(const char *arg, Capf__CertState *states, size_t *n)
{
	char buf[128], *save = NULL, *tok;

	if (strlen(arg) >= sizeof(buf))
		return CAPF_EINVAL;
	snprintf(buf, sizeof(buf), "%s", arg);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int v;

		if (where_cert_state(tok, &v) < 0 || *n >= 4)
			return CAPF_EINVAL;
		states[(*n)++] = v;
	}
	return *n > 0 ? 0 : CAPF_EINVAL;
}

static int parse_before_after(const char *s, int64_t *out)
{
	if (client_parse_date(s, out) < 0)
		return CAPF_EINVAL;
	if (strlen(s) == 10)
		*out -= 86399; /* a bare day: from its start */
	return 0;
}

int ctl_cmd_cert_list(struct ctl *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "device", required_argument, NULL, OPT_DEVICE },
		{ "state", required_argument, NULL, OPT_STATE },
		{ "expires-before", required_argument, NULL, OPT_EXPIRES_BEFORE },
		{ "expires-after", required_argument, NULL, OPT_EXPIRES_AFTER },
		{ "expires-within", required_argument, NULL, OPT_EXPIRES_WITHIN },
		{ "page-size", required_argument, NULL, OPT_PAGE_SIZE },
		CTL_FORMAT_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	Capf__CertList q = CAPF__CERT_LIST__INIT;
	Capf__CertState states[4];
	struct ctl_table t = { .ncols = 8, .heads = cert_heads };
	uint8_t after[64];
	unsigned page_size = CTL_PAGE_SIZE_DEFAULT;
	unsigned long n = 0;
	int64_t dur;
	bool more = true;
	int opt, ret;

	q.state = states;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_DEVICE:
			if (!device_name_valid(optarg))
				return usage_error("cert list", "'%s' is not a device name", optarg);
			q.device = optarg;
			break;
		case OPT_STATE:
			if (parse_states(optarg, states, &q.n_state) < 0)
				return usage_error("cert list", "bad --state '%s' (unconfirmed, "
								"active, revoked)",
						   optarg);
			break;
		case OPT_EXPIRES_BEFORE:
			if (parse_before_after(optarg, &q.expires_before) < 0)
				return usage_error("cert list", "bad date '%s'", optarg);
			break;
		case OPT_EXPIRES_AFTER:
			if (parse_before_after(optarg, &q.expires_after) < 0)
				return usage_error("cert list", "bad date '%s'", optarg);
			break;
		case OPT_EXPIRES_WITHIN:
			if (where_duration(optarg, &dur) < 0)
				return usage_error("cert list", "bad duration '%s'", optarg);
			q.expires_before = (int64_t)time(NULL) + dur;
			break;
		case OPT_PAGE_SIZE:
			if (ctl_parse_page_size("cert list", optarg, &page_size))
				return CTL_EXIT_USAGE;
			break;
		case OPT_JSON:
		case OPT_CSV:
			if (ctl_set_format(c, opt))
				return CTL_EXIT_USAGE;
			break;
		case 'h':
			usage_cert_list(stdout);
			return CTL_EXIT_OK;
		default:
			return ctl_bad_option("cert list", argv, longopts);
		}
	}
	ret = ctl_no_operands("cert list", argc, argv);
	if (ret)
		return ret;
	q.limit = page_size;
	if (c->fmt == FMT_CSV)
		fputs("serial,device,state,not_before,not_after,issued_at,revoked_at,reason\n",
		      stdout);
	while (more && ret == 0) {
		Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
		Capf__AdminResponse *resp = NULL;

		req.body_case = CAPF__ADMIN_REQUEST__BODY_CERT_LIST;
		req.cert_list = &q;
		ret = ctl_call_ok(c, &req, &resp, NULL);
		if (ret)
			break;
		for (size_t i = 0; i < resp->n_certificates && ret == 0; i++)
			if (cert_row(c, &t, resp->certificates[i], n++) < 0)
				ret = CTL_EXIT_REFUSED;
		if (c->fmt == FMT_TABLE)
			ctl_table_flush(&t);
		more = resp->more;
		if (more && (resp->next_serial.len == 0 || resp->next_serial.len > sizeof(after))) {
			fprintf(stderr, PROG ": the server's listing does not advance\n");
			ret = CTL_EXIT_REFUSED;
		} else if (more) {
			memcpy(after, resp->next_serial.data, resp->next_serial.len);
			q.after.data = after;
			q.after.len = resp->next_serial.len;
		}
		capf__admin_response__free_unpacked(resp, NULL);
	}
	if (ret == 0 && c->fmt == FMT_JSON)
		fputs(n ? "]\n" : "[]\n", stdout);
	if (ret == 0 && c->fmt == FMT_TABLE)
		ctl_table_flush(&t);
	ctl_table_free(&t);
	return ret;
}

