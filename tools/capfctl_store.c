/*
 * capfctl commands about the store and the audit log.
 *
 *   store info | compact | fault ENOSPC|EIO|off     through capfd's socket
 *   store check | repair -d DIR                     offline, capfd stopped
 *   audit verify | show -d DIR                      offline, capfd may run
 *
 * The offline commands read the state directory with the store library
 * itself, so they need no running server (and check and repair refuse to
 * run beside one: they take the directory's lock).
 */
#include "config.h"

#include "paths.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "tools/capfctl.h"

#define STATE_DIR_DEFAULT LOCALSTATEDIR "/lib/capf"

enum {
	OPT_DIR = OPT_FIRST_FREE + 40,
	OPT_SINCE,
	OPT_UNTIL,
	OPT_DEVICE,
	OPT_KIND,
};

static void usage_store(FILE *f)
{
	fprintf(f, "Usage: " PROG " store COMMAND ...\n"
		   "\n"
		   "Commands (through capfd's admin socket):\n"
		   "  info                  the store's files and counters\n"
		   "  compact               write a snapshot now and drop the segments it\n"
		   "                        replaces (capfd keeps serving meanwhile)\n"
		   "  fault ENOSPC|EIO|off  make store writes fail, for tests; refused unless\n"
		   "                        capfd runs with [testing] fault_injection = yes\n"
		   "\n"
		   "Commands on a state directory of a stopped capfd:\n"
		   "  check [-d DIR]        check every entry of every file and the audit\n"
		   "                        chain; exit 1 if anything is damaged\n"
		   "  repair [-d DIR]       rewrite damaged files with their good entries,\n"
		   "                        keeping each original as FILE.bak-TIME\n"
		   "  dump [-d DIR]         print every device and certificate record\n"
		   "\n"
		   "  -d, --state-dir DIR   default " STATE_DIR_DEFAULT "\n"
		   "      --json           print JSON\n"
		   "  -h, --help            show this help\n");
}

static void usage_audit(FILE *f)
{
	fprintf(f, "Usage: " PROG " audit verify [-d DIR] [FILE...]\n"
		   "       " PROG " audit show [-d DIR] [--since DATE] [--until DATE]\n"
		   "                     [--device NAME] [--kind KIND] [--json|--csv]\n"
		   "Read the audit log of a state directory; safe while capfd runs.\n"
		   "\n"
		   "  verify                check the hash chain (and, with a state directory,\n"
		   "                        that the log reaches the entry the store recorded\n"
		   "                        last); FILEs are checked in order as one chain.\n"
		   "                        Exit 1 if an entry was edited, removed, reordered\n"
		   "                        or inserted, naming the file and byte offset.\n"
		   "  show                  print the entries, oldest first\n"
		   "\n"
		   "  -d, --state-dir DIR   default " STATE_DIR_DEFAULT "\n"
		   "      --since DATE      entries at or after DATE (YYYY-MM-DD: from the start\n"
		   "                        of that day, UTC; or YYYY-MM-DDTHH:MM:SSZ)\n"
		   "      --until DATE      entries up to DATE (YYYY-MM-DD: to its end)\n"
		   "      --device NAME     entries about this device only\n"
		   "      --kind KIND       auth-ok, auth-fail, issue, ack, enroll-fail, revoke,\n"
		   "                        admin, ca-change or store\n"
		   "      --json, --csv     output format\n"
		   "  -h, --help            show this help\n");
}

/* ---- through the socket -------------------------------------------------- */

static int call_text(struct ctl *c, Capf__AdminRequest *req, const char *what)
{
	Capf__AdminResponse *resp = NULL;
	int ret = ctl_call_ok(c, req, &resp, what);

	if (ret)
		return ret;
	if (c->fmt == FMT_JSON) {
		printf("{\"result\":");
		client_json_string(stdout, resp->text);
		printf("}\n");
	} else if (resp->text && *resp->text) {
		printf("%s\n", resp->text);
	}
	capf__admin_response__free_unpacked(resp, NULL);
	return CTL_EXIT_OK;
}

static int store_info(struct ctl *c)
{
	Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
	Capf__StoreInfoRequest si = CAPF__STORE_INFO_REQUEST__INIT;
	Capf__AdminResponse *resp = NULL;
	const Capf__StoreInfo *s;
	int ret;

	req.body_case = CAPF__ADMIN_REQUEST__BODY_STORE_INFO;
	req.store_info = &si;
	ret = ctl_call_ok(c, &req, &resp, NULL);
	if (ret)
		return ret;
	if (!resp->store) {
		fprintf(stderr, PROG ": the server sent no store figures\n");
		ret = CTL_EXIT_REFUSED;
		goto out;
	}
	s = resp->store;
	if (c->fmt == FMT_JSON) {
		printf("{\"state_dir\":");
		client_json_string(stdout, s->state_dir);
		printf(",\"devices\":%llu,\"certificates\":%llu,\"txns_written\":%llu,"
		       "\"syncs\":%llu,\"segment\":%llu,\"segment_bytes\":%llu,\"snapshot\":%llu,"
		       "\"compactions\":%llu,\"audit_seq\":%llu,\"write_failures\":%llu,"
		       "\"audit_file\":%llu,\"queue_full\":%llu,\"audit_lost\":%llu,"
		       "\"audit_aggregated\":%llu,\"fault\":",
		       (unsigned long long)s->devices, (unsigned long long)s->certificates,
		       (unsigned long long)s->txns_written, (unsigned long long)s->syncs,
		       (unsigned long long)s->segment_seq, (unsigned long long)s->segment_bytes,
		       (unsigned long long)s->snapshot_seq, (unsigned long long)s->compactions,
		       (unsigned long long)s->audit_seq, (unsigned long long)s->write_failures,
		       (unsigned long long)s->audit_file, (unsigned long long)s->queue_full,
		       (unsigned long long)s->audit_lost, (unsigned long long)s->audit_aggregated);
		client_json_string(stdout, s->fault);
		printf("}\n");
	} else {
		printf("state directory: %s\n", s->state_dir);
		printf("devices:         %llu\n", (unsigned long long)s->devices);
		printf("certificates:    %llu\n", (unsigned long long)s->certificates);
		printf("txns written:    %llu in %llu group commits\n",
		       (unsigned long long)s->txns_written, (unsigned long long)s->syncs);
		printf("segment:         log.%010llu, %llu bytes\n",
		       (unsigned long long)s->segment_seq, (unsigned long long)s->segment_bytes);
		if (s->snapshot_seq)
			printf("snapshot:        snapshot.%010llu\n",
			       (unsigned long long)s->snapshot_seq);
		else
			printf("snapshot:        -\n");
		printf("compactions:     %llu\n", (unsigned long long)s->compactions);
		printf("audit entries:   %llu, in audit.%010llu.log\n",
		       (unsigned long long)s->audit_seq, (unsigned long long)s->audit_file);
		printf("auth failures:   %llu counted into per-source entries\n",
		       (unsigned long long)s->audit_aggregated);
		printf("queue full:      %llu refused, %llu audit events lost\n",
		       (unsigned long long)s->queue_full, (unsigned long long)s->audit_lost);
		printf("write failures:  %llu\n", (unsigned long long)s->write_failures);
		printf("injected fault:  %s\n", s->fault);
	}
	ret = CTL_EXIT_OK;
out:
	capf__admin_response__free_unpacked(resp, NULL);
	return ret;
}

/* ---- offline -------------------------------------------------------------- */

/* Says on stderr why the store library failed: its own message if it left
 * one, else the error's. */
static void report_store_error(int err)
{
	fprintf(stderr, PROG ": %s: %s\n", capf_errname(err),
		store_last_error()[0] ? store_last_error() : capf_strerror(err));
}

struct findings {
	enum ctl_format fmt;
	unsigned n;
};

static void print_finding(const struct store_finding *f, void *arg)
{
	struct findings *fd = arg;

	if (fd->fmt == FMT_JSON) {
		printf("%s{\"file\":", fd->n ? "," : "");
		client_json_string(stdout, f->file);
		printf(",\"offset\":%llu,\"length\":%llu,\"damage\":%s,\"text\":",
		       (unsigned long long)f->offset, (unsigned long long)f->length,
		       f->damage ? "true" : "false");
		client_json_string(stdout, f->text);
		printf("}");
	} else {
		printf("%s: %s: byte offset %llu: %s\n", f->damage ? "DAMAGE" : "note", f->file,
		       (unsigned long long)f->offset, f->text);
	}
	fd->n++;
}

static int store_offline(struct ctl *c, const char *dir, bool repair)
{
	struct store_check_summary sum;
	struct findings fd = { c->fmt, 0 };
	int ret;

	if (c->fmt == FMT_JSON)
		printf("{\"findings\":[");
	if (repair)
		ret = store_repair(dir, print_finding, &fd, &sum);
	else
		ret = store_check(dir, print_finding, &fd, &sum);
	if (ret < 0 && ret != CAPF_ECORRUPT) {
		if (c->fmt == FMT_JSON)
			printf("]}\n");
		report_store_error(ret);
		return CTL_EXIT_REFUSED;
	}
	if (c->fmt == FMT_JSON) {
		printf("],\"files\":%u,\"entries\":%llu,\"records\":%llu,\"damaged\":%u", sum.files,
		       (unsigned long long)sum.entries, (unsigned long long)sum.records,
		       sum.damaged);
		if (repair)
			printf(",\"repaired\":%u,\"dropped_bytes\":%llu", sum.repaired,
			       (unsigned long long)sum.dropped_bytes);
		printf("}\n");
	} else if (repair) {
		printf("%s: %u files rewritten, %llu bytes dropped\n", dir, sum.repaired,
		       (unsigned long long)sum.dropped_bytes);
	} else {
		printf("%s: %u files, %llu entries, %llu records: %s\n", dir, sum.files,
		       (unsigned long long)sum.entries, (unsigned long long)sum.records,
		       sum.damaged ? "DAMAGED" : "ok");
	}
	if (repair && ret == CAPF_ECORRUPT)
		report_store_error(ret);
	return ret == CAPF_ECORRUPT ? CTL_EXIT_REFUSED : CTL_EXIT_OK;
}

struct dump {
	enum ctl_format fmt;
	unsigned long n;
};

static void hex_out(const uint8_t *d, size_t n);

static int dump_record(const Capf__Device *d, const Capf__Certificate *c, void *arg)
{
	struct dump *du = arg;

	if (du->fmt == FMT_JSON) {
		printf("%s{\"type\":", du->n ? ",\n" : "");
		if (d) {
			printf("\"device\",\"name\":");
			client_json_string(stdout, d->name);
			printf(",\"op\":\"%s\",\"status\":\"%s\",\"lsc_serial\":\"", op_name(d->op),
			       status_name(d->status));
			hex_out(d->lsc_serial.data, d->lsc_serial.len);
			printf("\"}");
		} else {
			printf("\"certificate\",\"serial\":\"");
			hex_out(c->serial.data, c->serial.len);
			printf("\",\"device\":");
			client_json_string(stdout, c->device);
			printf(",\"state\":\"%s\",\"not_after\":%lld}", cert_state_name(c->state),
			       (long long)c->not_after);
		}
	} else if (d) {
		printf("device      %-24s op=%s status=%s lsc=", d->name, op_name(d->op),
		       status_name(d->status));
		if (d->lsc_serial.len)
			hex_out(d->lsc_serial.data, d->lsc_serial.len);
		else
			putchar('-');
		putchar('\n');
	} else {
		printf("certificate ");
		hex_out(c->serial.data, c->serial.len);
		printf(" device=%s state=%s\n", c->device, cert_state_name(c->state));
	}
	du->n++;
	return 0;
}

static int store_dump_cmd(struct ctl *c, const char *dir)
{
	struct dump du = { c->fmt, 0 };
	int ret;

	if (c->fmt == FMT_JSON)
		printf("[");
	ret = store_dump(dir, dump_record, &du);
	if (c->fmt == FMT_JSON)
		printf("]\n");
	if (ret < 0) {
		report_store_error(ret);
		return CTL_EXIT_REFUSED;
	}
	return CTL_EXIT_OK;
}

/* Options of the offline commands; *files gets the first operand index. */
struct off_opts {
	const char *dir;
	bool dir_set;
	const char *device;
	int kind;
	int64_t since, until;
	bool help;
};

static int parse_since(const char *s, bool until, int64_t *out)
{
	int64_t t;

	if (client_parse_date(s, &t) < 0)
		return -1;
	/* A bare day means that whole day: --since from its first second. */
	if (!until && strlen(s) == 10)
		t -= 86399;
	*out = t;
	return 0;
}

static int offline_opts(struct ctl *c, int argc, char **argv, const char *cmd,
			void (*usage)(FILE *), struct off_opts *o)
{
	static const struct option longopts[] = {
		{ "state-dir", required_argument, NULL, 'd' },
		{ "since", required_argument, NULL, OPT_SINCE },
		{ "until", required_argument, NULL, OPT_UNTIL },
		{ "device", required_argument, NULL, OPT_DEVICE },
		{ "kind", required_argument, NULL, OPT_KIND },
		CTL_FORMAT_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	memset(o, 0, sizeof(*o));
	o->dir = STATE_DIR_DEFAULT;
	o->kind = -1;
	o->until = INT64_MAX;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "d:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			o->dir = optarg;
			o->dir_set = true;
			break;
		case OPT_SINCE:
		case OPT_UNTIL:
			if (parse_since(optarg, opt == OPT_UNTIL,
					opt == OPT_SINCE ? &o->since : &o->until) < 0)
				return usage_error(cmd, "bad date '%s' (YYYY-MM-DD or "
							"YYYY-MM-DDTHH:MM:SSZ)",
						   optarg);
			break;
		case OPT_DEVICE:
			o->device = optarg;
			break;
		case OPT_KIND:
			o->kind = store_audit_kind_from_name(optarg);
			if (o->kind < 0)
				return usage_error(cmd, "unknown kind '%s'", optarg);
			break;
		case OPT_JSON:
		case OPT_CSV:
			if (ctl_set_format(c, opt))
				return CTL_EXIT_USAGE;
			break;
		case 'h':
			usage(stdout);
			o->help = true;
			return CTL_EXIT_OK;
		default:
			return ctl_bad_option(cmd, argv, longopts);
		}
	}
	if (!*o->dir)
		return usage_error(cmd, "empty state directory");
	return CTL_EXIT_OK;
}

struct show {
	const struct off_opts *o;
	enum ctl_format fmt;
	unsigned long n;
};

static void hex_out(const uint8_t *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf("%02x", d[i]);
}

static int show_entry(const Capf__AuditEntry *e, uint64_t off, void *arg)
{
	struct show *sh = arg;
	char ts[32];
	(void)off;

	if (e->time < sh->o->since || e->time > sh->o->until)
		return 0;
	if (sh->o->device && strcmp(e->device, sh->o->device) != 0)
		return 0;
	if (sh->o->kind >= 0 && (int)e->kind != sh->o->kind)
		return 0;
	client_time_iso(e->time, ts, sizeof(ts));
	switch (sh->fmt) {
	case FMT_JSON:
		printf("%s{\"seq\":%llu,\"time\":\"%s\",\"kind\":\"%s\",\"device\":",
		       sh->n ? ",\n" : "", (unsigned long long)e->seq, ts,
		       store_audit_kind_name(e->kind));
		client_json_string(stdout, e->device);
		printf(",\"peer\":");
		client_json_string(stdout, e->peer);
		printf(",\"serial\":\"");
		hex_out(e->serial.data, e->serial.len);
		printf("\",\"code\":%u,\"error\":", e->code);
		if (e->code)
			client_json_string(stdout, capf_errname((int)e->code));
		else
			printf("null");
		printf(",\"detail\":");
		client_json_string(stdout, e->detail);
		printf(",\"hash\":\"");
		hex_out(e->hash.data, e->hash.len);
		printf("\"}");
		break;
	case FMT_CSV:
		printf("%llu,%s,%s,", (unsigned long long)e->seq, ts,
		       store_audit_kind_name(e->kind));
		client_csv_field(stdout, e->device);
		putchar(',');
		client_csv_field(stdout, e->peer);
		putchar(',');
		hex_out(e->serial.data, e->serial.len);
		printf(",%u,%s,", e->code, e->code ? capf_errname((int)e->code) : "");
		client_csv_field(stdout, e->detail);
		putchar('\n');
		break;
	default:
		printf("%-6llu %s %-11s %-18s %-24s", (unsigned long long)e->seq, ts,
		       store_audit_kind_name(e->kind), *e->device ? e->device : "-",
		       *e->peer ? e->peer : "-");
		if (e->serial.len) {
			printf(" serial=");
			hex_out(e->serial.data, e->serial.len);
		}
		if (e->code)
			printf(" %s(%u)", capf_errname((int)e->code), e->code);
		if (*e->detail)
			printf(" %s", e->detail);
		putchar('\n');
		break;
	}
	sh->n++;
	return 0;
}

static int audit_show(struct ctl *c, const struct off_opts *o)
{
	struct show sh = { o, c->fmt, 0 };
	int ret;

	if (c->fmt == FMT_JSON)
		printf("[");
	else if (c->fmt == FMT_CSV)
		printf("seq,time,kind,device,peer,serial,code,error,detail\n");
	/* Every audit file, oldest first: the log rotates. */
	ret = store_audit_read_dir(o->dir, show_entry, &sh);
	if (c->fmt == FMT_JSON)
		printf("]\n");
	if (ret < 0) {
		report_store_error(ret);
		if (ret == CAPF_ECORRUPT)
			fprintf(stderr, PROG ": the entries after the damage were shown; run '" PROG
					" audit verify -d %s'\n",
				o->dir);
		return CTL_EXIT_REFUSED;
	}
	return CTL_EXIT_OK;
}

static int audit_verify(struct ctl *c, const struct off_opts *o, int nfiles,
			char *const *files)
{
	struct store_audit_summary sum;
	struct findings fd = { c->fmt, 0 };
	/* With FILEs, the store's anchor is checked only if -d was given. */
	bool dir_given = nfiles == 0 || o->dir_set;
	int ret;

	if (c->fmt == FMT_JSON)
		printf("{\"findings\":[");
	ret = store_audit_verify(dir_given ? o->dir : NULL, (const char *const *)files,
				 (size_t)nfiles, print_finding, &fd, &sum);
	if (ret < 0 && ret != CAPF_ECORRUPT) {
		if (c->fmt == FMT_JSON)
			printf("]}\n");
		report_store_error(ret);
		return CTL_EXIT_REFUSED;
	}
	if (c->fmt == FMT_JSON) {
		printf("],\"entries\":%llu,\"first_seq\":%llu,\"last_seq\":%llu,"
		       "\"anchor_seq\":%llu,\"problems\":%u,\"intact\":%s}\n",
		       (unsigned long long)sum.entries, (unsigned long long)sum.first_seq,
		       (unsigned long long)sum.last_seq, (unsigned long long)sum.anchor_seq,
		       sum.problems, sum.problems ? "false" : "true");
	} else {
		printf("%llu entries, seq %llu to %llu", (unsigned long long)sum.entries,
		       (unsigned long long)sum.first_seq, (unsigned long long)sum.last_seq);
		if (sum.anchor_seq)
			printf(", the store recorded seq %llu", (unsigned long long)sum.anchor_seq);
		printf(": %s\n", sum.problems ? "NOT INTACT" : "intact");
	}
	return ret == CAPF_ECORRUPT ? CTL_EXIT_REFUSED : CTL_EXIT_OK;
}

/* ---- dispatch --------------------------------------------------------------- */

/*
 * The start of store and audit: without a subcommand, their usage on
 * stderr (CTL_EXIT_USAGE); asked for help, on stdout (CTL_EXIT_OK).
 * Returns -1 when argv[1] is a subcommand to run.
 */
static int area_start(int argc, char **argv, void (*usage)(FILE *))
{
	if (argc < 2) {
		usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if (ctl_is_help(argv[1])) {
		usage(stdout);
		return CTL_EXIT_OK;
	}
	return -1;
}

static int cmd_store(struct ctl *c, int argc, char **argv)
{
	Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
	const char *sub;
	struct off_opts o;
	bool help;
	int ret;

	ret = area_start(argc, argv, usage_store);
	if (ret >= 0)
		return ret;
	sub = argv[1];
	argc--;
	argv++;
	if (!strcmp(sub, "check") || !strcmp(sub, "repair") || !strcmp(sub, "dump")) {
		ret = offline_opts(c, argc, argv, "store", usage_store, &o);
		if (ret || o.help)
			return ret;
		ret = ctl_no_operands("store", argc, argv);
		if (ret)
			return ret;
		if (!strcmp(sub, "dump"))
			return store_dump_cmd(c, o.dir);
		return store_offline(c, o.dir, !strcmp(sub, "repair"));
	}
	if (!strcmp(sub, "info") || !strcmp(sub, "compact")) {
		Capf__StoreCompact sc = CAPF__STORE_COMPACT__INIT;

		ret = simple_opts(c, argc, argv, "store", usage_store, &help);
		if (ret || help)
			return ret;
		ret = ctl_no_operands("store", argc, argv);
		if (ret)
			return ret;
		if (!strcmp(sub, "info"))
			return store_info(c);
		req.body_case = CAPF__ADMIN_REQUEST__BODY_STORE_COMPACT;
		req.store_compact = &sc;
		return call_text(c, &req, "store compact");
	}
	if (!strcmp(sub, "fault")) {
		Capf__StoreFault sf = CAPF__STORE_FAULT__INIT;

		ret = simple_opts(c, argc, argv, "store", usage_store, &help);
		if (ret || help)
			return ret;
		if (optind + 1 != argc)
			return usage_error("store", "give one fault: ENOSPC, EIO or off");
		if (strlen(argv[optind]) > 16)
			return usage_error("store", "unknown fault '%s'", argv[optind]);
		sf.fault = argv[optind];
		req.body_case = CAPF__ADMIN_REQUEST__BODY_STORE_FAULT;
		req.store_fault = &sf;
		return call_text(c, &req, "store fault");
	}
	{
		static const char *const subs[] = { "info", "compact", "fault", "check", "repair",
						    "dump" };

		return ctl_unknown("store", sub, subs, sizeof(subs) / sizeof(subs[0]));
	}
}

static int cmd_audit(struct ctl *c, int argc, char **argv)
{
	const char *sub;
	struct off_opts o;
	int ret;

	ret = area_start(argc, argv, usage_audit);
	if (ret >= 0)
		return ret;
	sub = argv[1];
	argc--;
	argv++;
	if (strcmp(sub, "verify") != 0 && strcmp(sub, "show") != 0)
	{
		static const char *const subs[] = { "verify", "show" };

		return ctl_unknown("audit", sub, subs, 2);
	}
	ret = offline_opts(c, argc, argv, "audit", usage_audit, &o);
	if (ret || o.help)
		return ret;
	if (!strcmp(sub, "show")) {
		ret = ctl_no_operands("audit", argc, argv);
		if (ret)
			return ret;
		return audit_show(c, &o);
	}
	if (o.device || o.kind >= 0 || o.since || o.until != INT64_MAX)
		return usage_error("audit", "audit verify takes no filter: it checks every entry");
	return audit_verify(c, &o, argc - optind, argv + optind);
}

const struct ctl_command ctl_store_commands[] = {
	{ "store", "store info|compact|fault|check|repair|dump  the store",
	  cmd_store },
	{ "audit", "audit verify|show    the audit log: its hash chain, its entries",
	  cmd_audit },
	{ NULL, NULL, NULL },
};
