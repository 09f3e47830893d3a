/*
 * capfctl schedule, report and stats: the commands that act on, or sum
 * up, what a query finds (the paging and the table are capfctl_query.c's).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tools/capfctl.h"
#include "tools/client.h"
#include "tools/query_opts.h"
#include "tools/where.h"


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
		CTL_PAGE_SIZE_DEFAULT);
}

struct sched_state {
	struct ctl *c;
	Capf__Device proto;  /* the settings */
	uint32_t fields;
	bool dry_run;
	unsigned long matched, changed, refused;
	bool first;
	bool progress; /* on a terminal: names walked of the listing's */
	double started;
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

	if (ss->progress && page->listed > 0)
		ctl_progress((unsigned long)page->walked, (unsigned long)page->listed, ss->started);
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
	unsigned page_size = CTL_PAGE_SIZE_DEFAULT;
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
			if (ctl_parse_value("schedule", "--op", CTL_VALUE_OP, optarg, &v))
				return CTL_EXIT_USAGE;
			ss.proto.op = v;
			ss.fields |= CAPF__PUT_FIELD__PUT_FIELD_OP;
			break;
		case 'a':
			if (ctl_parse_value("schedule", "--auth", CTL_VALUE_AUTH, optarg, &v))
				return CTL_EXIT_USAGE;
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
			if (ctl_add_where("schedule", &w, optarg))
				return CTL_EXIT_USAGE;
			break;
		case OPT_Q_KEY_ORDER:
			if (ctl_parse_value("schedule", "--key-order", CTL_VALUE_KEY_ORDER, optarg, &v))
				return CTL_EXIT_USAGE;
			ss.proto.key_order = v;
			ss.fields |= CAPF__PUT_FIELD__PUT_FIELD_KEY_ORDER;
			break;
		case OPT_Q_RSA_KEY:
			if (ctl_parse_value("schedule", "--rsa-key", CTL_VALUE_RSA_KEY, optarg, &v))
				return CTL_EXIT_USAGE;
			ss.proto.key_type = v;
			ss.fields |= CAPF__PUT_FIELD__PUT_FIELD_KEY_TYPE;
			break;
		case OPT_Q_EC_KEY:
			if (ctl_parse_value("schedule", "--ec-key", CTL_VALUE_EC_KEY, optarg, &v))
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
			if (ctl_parse_page_size("schedule", optarg, &page_size))
				return CTL_EXIT_USAGE;
			break;
		case OPT_JSON:
		case OPT_CSV:
			if (ctl_set_format(c, opt))
				return CTL_EXIT_USAGE;
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
	ss.progress = isatty(STDERR_FILENO);
	ss.started = ctl_now();
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
		   "      --failed        only devices that need attention: the operation\n"
		   "                      failed, the last attempt was refused (a wrong\n"
		   "                      string, a lockout) or the deadline has passed\n");
}

static const char *const report_heads[] = {
	"NAME", "OP", "STATUS", "AUTH", "LSC SERIAL", "LSC EXPIRES", "LAST ATTEMPT", "RESULT",
};

struct report_state {
	struct ctl *c;
	struct ctl_table t;
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
				cols[k] = ctl_or_dash(cols[k]);
			if (ctl_table_row(&rs->t, cols) < 0) {
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
		ctl_table_flush(&rs->t);
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
	unsigned page_size = CTL_PAGE_SIZE_DEFAULT;
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
			w.f.failed = 1;
			break;
		case 'w':
			if (ctl_add_where("report", &w, optarg))
				return CTL_EXIT_USAGE;
			break;
		case OPT_PAGE_SIZE:
			if (ctl_parse_page_size("report", optarg, &page_size))
				return CTL_EXIT_USAGE;
			break;
		case OPT_JSON:
		case OPT_CSV:
			if (ctl_set_format(c, opt))
				return CTL_EXIT_USAGE;
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
		ctl_table_flush(&rs.t);
	ctl_table_free(&rs.t);
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
