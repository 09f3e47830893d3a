/*
 * capfctl's queries: device list, device del, cert list, schedule and
 * report. Lists of any size come page by page (capf.DeviceList and
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
#include "tools/where.h"

enum {
	OPT_WHERE = OPT_FIRST_FREE,
	OPT_PAGE_SIZE,
	OPT_KEEP_CERT,
	OPT_DRY_RUN,
	OPT_DEVICE,
	OPT_STATE,
	OPT_EXPIRES_BEFORE,
	OPT_EXPIRES_AFTER,
	OPT_EXPIRES_WITHIN,
	OPT_STALE,
	OPT_EXPIRING,
	OPT_FAILED,
	OPT_Q_KEY_ORDER,
	OPT_Q_RSA_KEY,
	OPT_Q_EC_KEY,
	OPT_Q_LSC_DAYS,
};

#define PAGE_SIZE_DEFAULT 1000u
#define PAGE_SIZE_MAX 10000u

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

static int parse_page_size(const char *cmd, const char *arg, unsigned *out)
{
	char *end = NULL;
	unsigned long v;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno || *arg < '0' || *arg > '9' || *end || v == 0 || v > PAGE_SIZE_MAX)
		return usage_error(cmd, "--page-size wants 1..%u", PAGE_SIZE_MAX);
	*out = (unsigned)v;
	return 0;
}

static int add_where(const char *cmd, struct where *w, const char *expr)
{
	char err[200];

	if (where_parse(w, expr, (int64_t)time(NULL), err, sizeof(err)) < 0)
		return usage_error(cmd, "--where '%s': %s", expr, err);
	return 0;
}

/* ---- a table printed page by page ------------------------------------------ */

/*
 * The column widths come from the header and the first page: later pages
 * keep them (a wider cell pushes its row), so that a listing prints as it
 * arrives.
 */
#define TABLE_COLS_MAX 10

struct table {
	size_t ncols;
	const char *const *heads;
	size_t width[TABLE_COLS_MAX];
	bool started;
	char **cells; /* the first page, rows of ncols */
	size_t nrows, cap;
};

static void table_print_row(const struct table *t, const char *const *cols)
{
	for (size_t k = 0; k < t->ncols; k++)
		printf("%-*s%s", k + 1 < t->ncols ? (int)t->width[k] : 0, cols[k],
		       k + 1 < t->ncols ? "  " : "\n");
}

/* A row: printed now, or kept until the first page is complete. */
static int table_row(struct table *t, const char *const *cols)
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

/* The end of a page: the first one fixes the widths and is printed. */
static void table_flush(struct table *t)
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

static void table_free(struct table *t)
{
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t k = 0; k < t->ncols; k++)
			free(t->cells[r * t->ncols + k]);
	free(t->cells);
}

static const char *or_dash(const char *s)
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
	struct table t;
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
				or_dash(serial),
				lsc ? day_of(lsc->not_after, exp, sizeof(exp)) : "-",
			};
			int ret = table_row(&ls->t, cols);

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
		table_flush(&ls->t);
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
		   "  no lsc, has lsc, unacknowledged\n"
		   "  expires before DATE, expires after DATE, expires within N[d|h|w]\n"
		   "\n"
		   "      --count      print only how many match\n",
		PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX);
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
	unsigned page_size = PAGE_SIZE_DEFAULT;
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
			if (add_where("device list", &w, optarg))
				return CTL_EXIT_USAGE;
			break;
		case OPT_PAGE_SIZE:
			if (parse_page_size("device list", optarg, &page_size))
				return CTL_EXIT_USAGE;
			break;
		case 'n':
			ls.count_only = true;
			break;
		case OPT_JSON:
		case OPT_CSV:
			ctl_set_format(c, opt);
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
			table_flush(&ls.t);
	}
	table_free(&ls.t);
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
			ctl_set_format(c, opt);
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

static int cert_row(struct ctl *c, struct table *t, const Capf__Certificate *crt,
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
	cols[0] = or_dash(serial);
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
			cols[k] = or_dash(cols[k]);
		ret = table_row(t, cols);
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
	struct table t = { .ncols = 8, .heads = cert_heads };
	uint8_t after[64];
	unsigned page_size = PAGE_SIZE_DEFAULT;
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
			if (parse_page_size("cert list", optarg, &page_size))
				return CTL_EXIT_USAGE;
			break;
		case OPT_JSON:
		case OPT_CSV:
			ctl_set_format(c, opt);
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
			table_flush(&t);
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
		table_flush(&t);
	table_free(&t);
	return ret;
}

/* ---- schedule ----------------------------------------------------------------- */

static void usage_schedule(FILE *f)
{
	fprintf(f, "Usage: " PROG " schedule --op OP --where EXPR... [OPTION]... [--dry-run]\n"
		   "Schedule an operation on every device that matches the --where\n"
		   "conditions (see '" PROG " device list --help'); only the settings given\n"
		   "change, each device by compare-and-set on its current record, and a\n"
		   "device already so scheduled is left unchanged.\n"
		   "\n"
		   "  -o, --op OP            install, none, delete or fetch\n"
		   "  -a, --auth MODE        mic, null, lsc-or-mic, mic-or-lsc or string (only\n"
		   "                         devices that have a string)\n"
		   "      --key-order ORDER  rsa-only, ec-only or ec-preferred\n"
		   "      --rsa-key TYPE     rsa-2048, rsa-3072 or rsa-4096\n"
		   "      --ec-key TYPE      ec-p256, ec-p384 or ec-p521\n"
		   "      --lsc-days N       validity of the LSCs in days (0: the server's)\n"
		   "  -d, --deadline DATE    completes by DATE (YYYY-MM-DD); 'none'\n"
		   "  -w, --where EXPR       which devices (required: 'name like *' for all)\n"
		   "      --dry-run          say how many and which devices would change\n"
		   "      --page-size N      devices per request (default %u)\n"
		   "      --json, --csv      output format\n",
		PAGE_SIZE_DEFAULT);
}

struct sched_state {
	struct ctl *c;
	Capf__Device proto;  /* the settings */
	uint32_t fields;
	bool dry_run;
	unsigned long matched, changed, refused;
	bool first;
};

static const char *action_name(Capf__BatchAction a, bool dry)
{
	switch (a) {
	case CAPF__BATCH_ACTION__BATCH_CREATED:
		return dry ? "would-add" : "added";
	case CAPF__BATCH_ACTION__BATCH_UPDATED:
		return dry ? "would-change" : "changed";
	case CAPF__BATCH_ACTION__BATCH_UNCHANGED:
		return "unchanged";
	default:
		return "refused";
	}
}

static void result_print(struct ctl *c, const Capf__BatchResult *r, bool dry, bool *first)
{
	const char *action = action_name(r->action, dry);

	switch (c->fmt) {
	case FMT_JSON:
		fputs(*first ? "[{" : ",\n{", stdout);
		fputs("\"name\":", stdout);
		client_json_string(stdout, r->name);
		fputs(",\"action\":", stdout);
		client_json_string(stdout, action);
		fputs(",\"result\":", stdout);
		client_json_string(stdout, r->code ? capf_errname((int)r->code) : "ok");
		fputs(",\"text\":", stdout);
		client_json_string(stdout, r->text ? r->text : "");
		fputc('}', stdout);
		break;
	case FMT_CSV:
		client_csv_field(stdout, r->name);
		fputc(',', stdout);
		client_csv_field(stdout, action);
		fputc(',', stdout);
		client_csv_field(stdout, r->code ? capf_errname((int)r->code) : "ok");
		fputc(',', stdout);
		client_csv_field(stdout, r->text ? r->text : "");
		fputc('\n', stdout);
		break;
	default:
		if (r->action != CAPF__BATCH_ACTION__BATCH_UNCHANGED && !r->code)
			printf("%s %s\n", action, r->name);
		break;
	}
	*first = false;
}

static int sched_page(const Capf__AdminResponse *page, void *arg)
{
	struct sched_state *ss = arg;
	Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
	Capf__DeviceBatch batch = CAPF__DEVICE_BATCH__INIT;
	Capf__DevicePut *puts = NULL, **ptrs = NULL;
	Capf__Device *devs = NULL;
	Capf__AdminResponse *resp = NULL;
	int ret;

	if (page->n_devices == 0)
		return 0;
	puts = calloc(page->n_devices, sizeof(*puts));
	ptrs = calloc(page->n_devices, sizeof(*ptrs));
	devs = calloc(page->n_devices, sizeof(*devs));
	if (puts == NULL || ptrs == NULL || devs == NULL) {
		fprintf(stderr, PROG ": out of memory\n");
		ret = CTL_EXIT_REFUSED;
		goto out;
	}
	for (size_t i = 0; i < page->n_devices; i++) {
		devs[i] = ss->proto;
		devs[i].name = page->devices[i]->name;
		capf__device_put__init(&puts[i]);
		puts[i].device = &devs[i];
		puts[i].fields = ss->fields;
		ptrs[i] = &puts[i];
	}
	batch.n_puts = page->n_devices;
	batch.puts = ptrs;
	batch.dry_run = ss->dry_run;
	req.body_case = CAPF__ADMIN_REQUEST__BODY_DEVICE_BATCH;
	req.device_batch = &batch;
	ret = ctl_call_ok(ss->c, &req, &resp, NULL);
	if (ret)
		goto out;
	for (size_t i = 0; i < resp->n_results; i++) {
		const Capf__BatchResult *r = resp->results[i];

		ss->matched++;
		if (r->code) {
			ss->refused++;
			fprintf(stderr, PROG ": %s: %s: %s\n", capf_errname((int)r->code), r->name,
				r->text && *r->text ? r->text : capf_strerror((int)r->code));
		} else if (r->action != CAPF__BATCH_ACTION__BATCH_UNCHANGED) {
			ss->changed++;
		}
		result_print(ss->c, r, ss->dry_run, &ss->first);
	}
	capf__admin_response__free_unpacked(resp, NULL);
out:
	free(puts);
	free(ptrs);
	free(devs);
	return ret;
}

static int parse_key_of(const char *opt, const char *arg, bool rsa, int *out)
{
	bool is_rsa;

	if (key_type_from_name(arg, out) < 0 || *out == CAPF__KEY_TYPE__KEY_UNSPECIFIED)
		return usage_error("schedule", "bad %s '%s'", opt, arg);
	is_rsa = *out == CAPF__KEY_TYPE__KEY_RSA_2048 || *out == CAPF__KEY_TYPE__KEY_RSA_3072 ||
		 *out == CAPF__KEY_TYPE__KEY_RSA_4096;
	if (is_rsa != rsa)
		return usage_error("schedule", "bad %s '%s'", opt, arg);
	return 0;
}

static int cmd_schedule(struct ctl *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "op", required_argument, NULL, 'o' },
		{ "auth", required_argument, NULL, 'a' },
		{ "deadline", required_argument, NULL, 'd' },
		{ "where", required_argument, NULL, 'w' },
		{ "key-order", required_argument, NULL, OPT_Q_KEY_ORDER },
		{ "rsa-key", required_argument, NULL, OPT_Q_RSA_KEY },
		{ "ec-key", required_argument, NULL, OPT_Q_EC_KEY },
		{ "lsc-days", required_argument, NULL, OPT_Q_LSC_DAYS },
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ "page-size", required_argument, NULL, OPT_PAGE_SIZE },
		CTL_FORMAT_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct sched_state ss = { .c = c, .first = true };
	unsigned page_size = PAGE_SIZE_DEFAULT;
	struct where w;
	char *end = NULL;
	unsigned long days;
	int opt, ret, v;

	where_init(&w);
	capf__device__init(&ss.proto);
	optind = 0;
	while ((opt = getopt_long(argc, argv, "o:a:d:w:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'o':
			if (op_from_name(optarg, &v) < 0)
				return usage_error("schedule", "unknown operation '%s'", optarg);
			ss.proto.op = v;
			ss.fields |= CAPF__PUT_FIELD__PUT_FIELD_OP;
			break;
		case 'a':
			if (auth_from_name(optarg, &v) < 0 || v == CAPF__AUTH_MODE__AUTH_UNSPECIFIED)
				return usage_error("schedule", "unknown authentication mode '%s'",
						   optarg);
			ss.proto.auth = v;
			ss.fields |= CAPF__PUT_FIELD__PUT_FIELD_AUTH;
			break;
		case 'd':
			if (!strcmp(optarg, "none"))
				ss.proto.deadline = 0;
			else if (client_parse_date(optarg, &ss.proto.deadline) < 0)
				return usage_error("schedule", "bad date '%s' (YYYY-MM-DD)", optarg);
			ss.fields |= CAPF__PUT_FIELD__PUT_FIELD_DEADLINE;
			break;
		case 'w':
			if (add_where("schedule", &w, optarg))
				return CTL_EXIT_USAGE;
			break;
		case OPT_Q_KEY_ORDER:
			if (key_order_from_name(optarg, &v) < 0 ||
			    v == CAPF__KEY_ORDER__KEY_ORDER_UNSPECIFIED)
				return usage_error("schedule", "unknown key order '%s'", optarg);
			ss.proto.key_order = v;
			ss.fields |= CAPF__PUT_FIELD__PUT_FIELD_KEY_ORDER;
			break;
		case OPT_Q_RSA_KEY:
			if (parse_key_of("--rsa-key", optarg, true, &v))
				return CTL_EXIT_USAGE;
			ss.proto.key_type = v;
			ss.fields |= CAPF__PUT_FIELD__PUT_FIELD_KEY_TYPE;
			break;
		case OPT_Q_EC_KEY:
			if (parse_key_of("--ec-key", optarg, false, &v))
				return CTL_EXIT_USAGE;
			ss.proto.ec_key_type = v;
			ss.fields |= CAPF__PUT_FIELD__PUT_FIELD_EC_KEY_TYPE;
			break;
		case OPT_Q_LSC_DAYS:
			errno = 0;
			days = strtoul(optarg, &end, 10);
			if (errno || *optarg < '0' || *optarg > '9' || *end || days > 36500)
				return usage_error("schedule", "--lsc-days wants 0..36500");
			ss.proto.lsc_days = (uint32_t)days;
			ss.fields |= CAPF__PUT_FIELD__PUT_FIELD_LSC_DAYS;
			break;
		case OPT_DRY_RUN:
			ss.dry_run = true;
			break;
		case OPT_PAGE_SIZE:
			if (parse_page_size("schedule", optarg, &page_size))
				return CTL_EXIT_USAGE;
			break;
		case OPT_JSON:
		case OPT_CSV:
			ctl_set_format(c, opt);
			break;
		case 'h':
			usage_schedule(stdout);
			return CTL_EXIT_OK;
		default:
			return ctl_bad_option("schedule", argv, longopts);
		}
	}
	ret = ctl_no_operands("schedule", argc, argv);
	if (ret)
		return ret;
	if (!(ss.fields & CAPF__PUT_FIELD__PUT_FIELD_OP))
		return usage_error("schedule", "give the operation (--op)");
	/* A schedule of the whole fleet must be asked for, not fallen into. */
	if (w.conditions == 0)
		return usage_error("schedule", "give the devices (--where; 'name like *' for all)");
	if (c->fmt == FMT_CSV)
		fputs("name,action,result,text\n", stdout);
	ret = ctl_device_pages(c, &w.f, page_size, sched_page, &ss);
	if (ret)
		return ret;
	if (c->fmt == FMT_JSON)
		fputs(ss.first ? "[]\n" : "]\n", stdout);
	else if (c->fmt == FMT_TABLE)
		printf("%lu devices match, %lu %s, %lu refused\n", ss.matched, ss.changed,
		       ss.dry_run ? "would change" : "changed", ss.refused);
	return ss.refused ? CTL_EXIT_REFUSED : CTL_EXIT_OK;
}

/* ---- report -------------------------------------------------------------------- */

static void usage_report(FILE *f)
{
	fprintf(f, "Usage: " PROG " report [--stale|--expiring N[d|h|w]|--failed]\n"
		   "              [--where EXPR]... [--page-size N] [--json|--csv]\n"
		   "Per device: its operation, status, authentication mode, LSC serial and\n"
		   "expiry, and its last attempt (when the record last changed) with its\n"
		   "result (the last error, or ok).\n"
		   "\n"
		   "      --stale         only LSCs issued and never acknowledged\n"
		   "      --expiring N    only LSCs that expire within N (30d, 12h, 2w)\n"
		   "      --failed        only devices whose last operation failed\n");
}

static const char *const report_heads[] = {
	"NAME", "OP", "STATUS", "AUTH", "LSC SERIAL", "LSC EXPIRES", "LAST ATTEMPT", "RESULT",
};

struct report_state {
	struct ctl *c;
	struct table t;
	unsigned long n;
};

static int report_page(const Capf__AdminResponse *page, void *arg)
{
	struct report_state *rs = arg;

	for (size_t i = 0; i < page->n_devices; i++) {
		const Capf__Device *d = page->devices[i];
		const Capf__Certificate *lsc = ctl_page_lsc(page, d);
		char *serial = d->lsc_serial.len ? client_hex(d->lsc_serial.data, d->lsc_serial.len)
						 : NULL;
		char na[32] = "", up[32] = "";
		const char *result = d->last_error ? capf_errname((int)d->last_error)
				     : d->status == CAPF__OP_STATUS__STATUS_SUCCESS ? "ok"
										    : "";
		const char *cols[8];

		if (lsc)
			client_time_iso(lsc->not_after, na, sizeof(na));
		if (d->updated)
			client_time_iso(d->updated, up, sizeof(up));
		cols[0] = d->name;
		cols[1] = op_name(d->op);
		cols[2] = status_name(d->status);
		cols[3] = auth_name(d->auth);
		cols[4] = serial ? serial : "";
		cols[5] = na;
		cols[6] = up;
		cols[7] = result;
		switch (rs->c->fmt) {
		case FMT_JSON: {
			static const char *const keys[] = { "name",	   "op",
							    "status",	   "auth",
							    "lsc_serial",  "lsc_not_after",
							    "last_attempt", "result" };

			fputs(rs->n ? ",\n{" : "[{", stdout);
			for (size_t k = 0; k < 8; k++) {
				if (k)
					fputc(',', stdout);
				client_json_string(stdout, keys[k]);
				fputc(':', stdout);
				client_json_string(stdout, *cols[k] ? cols[k] : NULL);
			}
			printf(",\"last_error_code\":%u}", d->last_error);
			break;
		}
		case FMT_CSV:
			for (size_t k = 0; k < 8; k++) {
				if (k)
					fputc(',', stdout);
				client_csv_field(stdout, cols[k]);
			}
			fputc('\n', stdout);
			break;
		default:
			for (size_t k = 4; k < 8; k++)
				cols[k] = or_dash(cols[k]);
			if (table_row(&rs->t, cols) < 0) {
				free(serial);
				fprintf(stderr, PROG ": out of memory\n");
				return CTL_EXIT_REFUSED;
			}
			break;
		}
		free(serial);
		rs->n++;
	}
	if (rs->c->fmt == FMT_TABLE)
		table_flush(&rs->t);
	return 0;
}

static int cmd_report(struct ctl *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "stale", no_argument, NULL, OPT_STALE },
		{ "expiring", required_argument, NULL, OPT_EXPIRING },
		{ "failed", no_argument, NULL, OPT_FAILED },
		{ "where", required_argument, NULL, 'w' },
		{ "page-size", required_argument, NULL, OPT_PAGE_SIZE },
		CTL_FORMAT_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct report_state rs = { .c = c };
	unsigned page_size = PAGE_SIZE_DEFAULT;
	struct where w;
	int64_t dur;
	int opt, ret;

	where_init(&w);
	rs.t.ncols = 8;
	rs.t.heads = report_heads;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "w:h", longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_STALE:
			w.f.unacknowledged = 1;
			break;
		case OPT_EXPIRING:
			if (where_duration(optarg, &dur) < 0)
				return usage_error("report", "bad duration '%s' (e.g. 30d)", optarg);
			w.f.expires_before = (int64_t)time(NULL) + dur;
			break;
		case OPT_FAILED:
			if (w.f.n_status < WHERE_LIST_MAX)
				w.status[w.f.n_status++] = CAPF__OP_STATUS__STATUS_FAILED;
			break;
		case 'w':
			if (add_where("report", &w, optarg))
				return CTL_EXIT_USAGE;
			break;
		case OPT_PAGE_SIZE:
			if (parse_page_size("report", optarg, &page_size))
				return CTL_EXIT_USAGE;
			break;
		case OPT_JSON:
		case OPT_CSV:
			ctl_set_format(c, opt);
			break;
		case 'h':
			usage_report(stdout);
			return CTL_EXIT_OK;
		default:
			return ctl_bad_option("report", argv, longopts);
		}
	}
	ret = ctl_no_operands("report", argc, argv);
	if (ret)
		return ret;
	if (c->fmt == FMT_CSV)
		fputs("name,op,status,auth,lsc_serial,lsc_not_after,last_attempt,result\n", stdout);
	ret = ctl_device_pages(c, &w.f, page_size, report_page, &rs);
	if (ret == 0 && c->fmt == FMT_JSON)
		fputs(rs.n ? "]\n" : "[]\n", stdout);
	if (ret == 0 && c->fmt == FMT_TABLE)
		table_flush(&rs.t);
	table_free(&rs.t);
	return ret;
}

/* ---- stats ---------------------------------------------------------------------- */

static void usage_stats(FILE *f)
{
	fprintf(f, "Usage: " PROG " stats [--prometheus]\n"
		   "The server's metrics: with --prometheus in the Prometheus text format\n"
		   "(for node_exporter's textfile collector), else one NAME VALUE per line.\n");
}

static int cmd_stats(struct ctl *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "prometheus", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
	Capf__StatsRequest st = CAPF__STATS_REQUEST__INIT;
	Capf__AdminResponse *resp = NULL;
	bool prom = false;
	int opt, ret;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			prom = true;
			break;
		case 'h':
			usage_stats(stdout);
			return CTL_EXIT_OK;
		default:
			return ctl_bad_option("stats", argv, longopts);
		}
	}
	ret = ctl_no_operands("stats", argc, argv);
	if (ret)
		return ret;
	req.body_case = CAPF__ADMIN_REQUEST__BODY_STATS;
	req.stats = &st;
	ret = ctl_call_ok(c, &req, &resp, NULL);
	if (ret)
		return ret;
	if (prom) {
		fwrite(resp->metrics.data, 1, resp->metrics.len, stdout);
	} else {
		/* Without the comment lines. */
		const char *p = (const char *)resp->metrics.data, *end = p + resp->metrics.len;

		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);

			if (*p != '#')
				fwrite(p, 1, n, stdout);
			p += n;
		}
	}
	capf__admin_response__free_unpacked(resp, NULL);
	return CTL_EXIT_OK;
}

const struct ctl_command ctl_query_commands[] = {
	{ "stats", "stats [--prometheus]  the server's metrics", cmd_stats },
	{ "schedule", "schedule --op OP --where EXPR [--dry-run]   schedule by query",
	  cmd_schedule },
	{ "report", "report [--stale|--expiring N|--failed]  per-device report", cmd_report },
	{ NULL, NULL, NULL },
};
