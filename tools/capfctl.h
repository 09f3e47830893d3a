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

/* A top-level command: `capfctl NAME ...`; argv[0] is NAME. */
struct ctl_command {
	const char *name;
	const char *summary; /* one line for the main help: "ca status   show ..." */
	int (*run)(struct ctl *c, int argc, char **argv);
};

/* Tables of each area's commands, each ending with a zeroed entry. */
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

/* usage_error() - print the message and a hint to use --help for cmd
 * (NULL: the main help); returns CTL_EXIT_USAGE. */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * simple_opts() - parse a command that takes only --json, --csv, --help.
 * Sets *help (after printing usage) when --help was given.
 */
int simple_opts(struct ctl *c, int argc, char **argv, const char *cmd, void (*usage)(FILE *),
		bool *help);

#endif /* CAPF_TOOLS_CAPFCTL_H */
