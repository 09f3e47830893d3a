/*
 * tools/query_opts.h - the long options of capfctl's device queries and
 * reports (tools/capfctl_query.c, tools/capfctl_report.c): one numbering
 * for the options they share.
 */
#ifndef CAPF_TOOLS_QUERY_OPTS_H
#define CAPF_TOOLS_QUERY_OPTS_H

#include "tools/capfctl.h"

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

#endif /* CAPF_TOOLS_QUERY_OPTS_H */
