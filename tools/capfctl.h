/*
 * tools/capfctl.h - what capfctl's command files share: the connection to
 * capfd, output format, exit codes, and the tables that register each
 * area's commands (devices in capfctl.c, CA and trust in capfctl_ca.c,
 * store and audit in capfctl_store.c).
 */
#ifndef CAPF_TOOLS_CAPFCTL_H
#define CAPF_TOOLS_CAPFCTL_H

#include <stdbool.h>
#include <stdio.h>

#include "tools/client.h"

#define PROG "capfctl"

/* Exit statuses (capfctl(8)). */
enum ctl_exit {
	CTL_EXIT_OK = 0,
	CTL_EXIT_REFUSED = 1,
	CTL_EXIT_USAGE = 2,
	CTL_EXIT_CONNECT = 3,
};

enum ctl_format {
	FMT_TABLE = 0,
	FMT_JSON,
	FMT_CSV,
};

struct ctl {
	const char *socket;
	enum ctl_format fmt;
	struct client_admin admin;
	bool connected;
};

/* Long option values shared by every command: --json, --csv. */
enum {
	OPT_JSON = 256,
	OPT_CSV,
	OPT_FIRST_FREE = 300, /* commands number their own long options from here */
};

/* The struct option entries of OPT_JSON, OPT_CSV and -h (<getopt.h>). */
#define CTL_FORMAT_LONGOPTS                                                             \
	{ "json", no_argument, NULL, OPT_JSON }, { "csv", no_argument, NULL, OPT_CSV }, \
		{ "help", no_argument, NULL, 'h' }

/* A top-level command: `capfctl NAME ...`; argv[0] is NAME. */
struct ctl_command {
	const char *name;
	const char *summary; /* one line for the main help: "ca status   show ..." */
	int (*run)(struct ctl *c, int argc, char **argv);
};

/* Tables of each area's commands, each ending with a zeroed entry. */
extern const struct ctl_command ctl_query_commands[];
extern const struct ctl_command ctl_bulk_commands[];
extern const struct ctl_command ctl_ca_commands[];
extern const struct ctl_command ctl_store_commands[];

/*
 * ctl_call() - send req to capfd and read its answer (*resp: free with
 * capf__admin_response__free_unpacked()). Connects on first use. Returns
 * 0, or CTL_EXIT_CONNECT after saying on stderr which socket failed how.
 * A refusal by the server is a successful call: check (*resp)->code.
 */
int ctl_call(struct ctl *c, Capf__AdminRequest *req, Capf__AdminResponse **resp);

/* report_refusal() - "capfctl: CAPF_ENAME: [what: ]text" on stderr. */
void report_refusal(const Capf__AdminResponse *resp, const char *what);

/*
 * ctl_call_ok() - ctl_call() that also treats a refusal as a failure: it
 * reports it (report_refusal() with what), frees the answer and returns
 * CTL_EXIT_REFUSED. Returns 0 with *resp (free it as for ctl_call()), or
 * an exit status.
 */
int ctl_call_ok(struct ctl *c, Capf__AdminRequest *req, Capf__AdminResponse **resp,
		const char *what);

/* usage_error() - print the message and a hint to use --help for cmd
 * (NULL: the main help); returns CTL_EXIT_USAGE. */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * ctl_bad_option() - the usage error of an option that getopt_long()
 * refused (the word before optind in argv): an unknown one with the
 * nearest of longopts as a hint, or one that lacks its value. Returns
 * CTL_EXIT_USAGE.
 */
struct option;
int ctl_bad_option(const char *cmd, char **argv, const struct option *longopts);

/* ctl_unknown() - the usage error of an unknown command word of area (NULL:
 * the top level), with the nearest of the n names as a hint. */
int ctl_unknown(const char *area, const char *word, const char *const *names, size_t n);

/* What ctl_parse_value() reads: an enumeration's names, or a part of one. */
enum ctl_value {
	CTL_VALUE_OP,        /* none, install, delete, fetch */
	CTL_VALUE_AUTH,      /* mic, string, null, lsc-or-mic, mic-or-lsc */
	CTL_VALUE_KEY,       /* every key type */
	CTL_VALUE_RSA_KEY,   /* rsa-2048, rsa-3072, rsa-4096 */
	CTL_VALUE_EC_KEY,    /* ec-p256, ec-p384, ec-p521 */
	CTL_VALUE_KEY_ORDER, /* rsa-only, ec-only, ec-preferred */
};

/*
 * ctl_parse_value() - the value of option opt of cmd, arg, as one of the
 * names of kind ("unspecified" is none of them). 0 and *out set, or the
 * usage error (CTL_EXIT_USAGE) with the nearest name as a hint, or all of
 * them when none is near.
 */
int ctl_parse_value(const char *cmd, const char *opt, enum ctl_value kind, const char *arg,
		    int *out);

/* ctl_set_format() - apply the option OPT_JSON or OPT_CSV (opt) to c: 0,
 * or the usage error (CTL_EXIT_USAGE) if the other one was given. */
int ctl_set_format(struct ctl *c, int opt);

/* ctl_no_operands() - 0 if getopt left no operand in argv, else a usage
 * error about the first one for cmd (CTL_EXIT_USAGE). */
int ctl_no_operands(const char *cmd, int argc, char **argv);

/* ctl_is_help() - whether a command word asks for help (-h, --help, help). */
bool ctl_is_help(const char *word);

/* A subcommand of an area: `capfctl AREA NAME ...`; argv[0] is NAME. */
struct ctl_subcommand {
	const char *name;
	int (*run)(struct ctl *c, int argc, char **argv);
};

/*
 * ctl_dispatch() - run the subcommand of area named by argv[1] from subs
 * (ended by a zeroed entry), with argv[1] as its argv[0]. Prints usage on
 * stdout for a help word; a missing or unknown subcommand is a usage error.
 * Returns the subcommand's exit status.
 */
int ctl_dispatch(struct ctl *c, int argc, char **argv, const char *area, void (*usage)(FILE *),
		 const struct ctl_subcommand *subs);

/*
 * simple_opts() - parse a command that takes only --json, --csv, --help.
 * Sets *help (after printing usage) when --help was given.
 */
int simple_opts(struct ctl *c, int argc, char **argv, const char *cmd, void (*usage)(FILE *),
		bool *help);

/* ---- devices: output (capfctl.c) and queries (capfctl_query.c) ---------- */

/* ctl_device_json() - d as the JSON object of device list: every field of
 * device show but its certificate history and the fetched certificates
 * themselves; c is the record of its current LSC (NULL: none known). */
void ctl_device_json(FILE *f, const Capf__Device *d, const Capf__Certificate *c);

/* ctl_csv_device_header - the header line of ctl_device_csv()'s rows. */
extern const char *const ctl_csv_device_header;

/* ctl_device_csv() - d as one CSV row (see ctl_device_json()). */
void ctl_device_csv(FILE *f, const Capf__Device *d, const Capf__Certificate *c);

/* The device subcommands of capfctl_query.c: device list, device del. */
int ctl_cmd_device_list(struct ctl *c, int argc, char **argv);
int ctl_cmd_device_del(struct ctl *c, int argc, char **argv);

/* cert list (capfctl_query.c), a subcommand of cert (capfctl_ca.c). */
int ctl_cmd_cert_list(struct ctl *c, int argc, char **argv);

/*
 * ctl_device_pages() - every device that filter f (NULL: all) matches,
 * sorted by name, one page of at most page_size at a time: cb gets each
 * page's answer (its devices and their current LSC records) until it
 * returns non-zero. Returns 0, cb's value or an exit status (reported).
 */
int ctl_device_pages(struct ctl *c, const Capf__DeviceFilter *f, unsigned page_size,
		     int (*cb)(const Capf__AdminResponse *page, void *arg), void *arg);

#define CTL_PAGE_SIZE_DEFAULT 1000u
#define CTL_PAGE_SIZE_MAX 10000u

/* ctl_parse_page_size() - --page-size's value (1..CTL_PAGE_SIZE_MAX) into
 * *out; else a usage error for cmd (CTL_EXIT_USAGE). */
int ctl_parse_page_size(const char *cmd, const char *arg, unsigned *out);

/* ctl_add_where() - the conditions of a --where expression added to w;
 * else a usage error for cmd (CTL_EXIT_USAGE). */
struct where;
int ctl_add_where(const char *cmd, struct where *w, const char *expr);

/* ctl_or_dash() - s, or "-" for NULL or empty. */
const char *ctl_or_dash(const char *s);

/*
 * A table printed page by page: the column widths come from the header
 * and the first page, and later pages keep them (a wider cell pushes its
 * row), so that a listing prints as it arrives. Zero-initialise it with
 * ncols and heads set.
 */
#define CTL_TABLE_COLS_MAX 10
struct ctl_table {
	size_t ncols;
	const char *const *heads;
	/* private */
	size_t width[CTL_TABLE_COLS_MAX];
	bool started;
	char **cells; /* the first page, rows of ncols */
	size_t nrows, cap;
};

/* ctl_table_row() - a row: printed now, or kept until the first page is
 * complete. Returns 0 or CAPF_ENOMEM. */
int ctl_table_row(struct ctl_table *t, const char *const *cols);

/* ctl_table_flush() - the end of a page: the first one fixes the widths
 * and is printed (with the header). */
void ctl_table_flush(struct ctl_table *t);

/* ctl_table_free() - what the table keeps; the struct itself is the
 * caller's. */
void ctl_table_free(struct ctl_table *t);

/* ctl_page_lsc() - the current LSC record of d among a page's
 * certificates (sorted by ctl_page_sort()), or NULL. */
const Capf__Certificate *ctl_page_lsc(const Capf__AdminResponse *page, const Capf__Device *d);

/* ctl_json_kv() - "key":"val" (JSON strings), then a comma if asked. */
void ctl_json_kv(FILE *f, const char *key, const char *val, bool comma);
/* ctl_json_time() - "key":"ISO time" (null for 0 or -1), then a comma if
 * comma. */
void ctl_json_time(FILE *f, const char *key, int64_t t, bool comma);
/* ctl_when() - t as ISO 8601 UTC in buf, or "-" for 0 or -1. */
const char *ctl_when(int64_t t, char *buf, size_t len);
/* ctl_csv_row() - one CSV line of n fields (client_csv_field() each). */
void ctl_csv_row(FILE *f, const char *const *fields, size_t n);
/* ctl_cmd_cert() - cert show | revoke | list (capfctl_cert.c). */
int ctl_cmd_cert(struct ctl *c, int argc, char **argv);

/* ctl_json_device_fetched(), ctl_show_fetched_table() - the certificates
 * a phone reported (fetch), in JSON (members, each with a comma) or for
 * people (capfctl_fetched.c). */
void ctl_json_device_fetched(FILE *f, const Capf__Device *d);
void ctl_show_fetched_table(const Capf__Device *d);

/* ctl_device_put() - capfctl device add (create) or device set
 * (capfctl_put.c). */
int ctl_device_put(struct ctl *c, int argc, char **argv, bool create);

/* ctl_now() - a monotonic time in seconds; ctl_progress() - a progress
 * bar on stderr with the rate since started and the time left (callers
 * show it on a terminal only). */
double ctl_now(void);
void ctl_progress(unsigned long done, unsigned long total, double started);

#endif /* CAPF_TOOLS_CAPFCTL_H */
