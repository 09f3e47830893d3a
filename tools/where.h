/*
 * tools/where.h - the query language of capfctl's --where: conditions on
 * device records that capfd evaluates (capf.DeviceFilter).
 *
 *   name = NAME | name prefix TEXT | name like GLOB
 *   status = S[,S...]      none, pending, issued, success, failed
 *   auth = M[,M...]        mic, string, null, lsc-or-mic, mic-or-lsc
 *   op = O[,O...]          none, install, delete, fetch
 *   no lsc | has lsc | unacknowledged
 *   expires before DATE | expires after DATE | expires within N(d|h|w)
 *
 * Conditions are joined with "and" in one expression, and every --where
 * adds its conditions to the others.
 */
#ifndef CAPF_TOOLS_WHERE_H
#define CAPF_TOOLS_WHERE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

#define WHERE_LIST_MAX 8

/* A filter and the storage its fields point into. */
struct where {
	Capf__DeviceFilter f;
	Capf__OpStatus status[WHERE_LIST_MAX];
	Capf__AuthMode auth[WHERE_LIST_MAX];
	Capf__Operation op[WHERE_LIST_MAX];
	char name[DEVICE_NAME_MAX + 1];
	char prefix[DEVICE_NAME_MAX + 1];
	char glob[4 * DEVICE_NAME_MAX + 1];
	unsigned conditions; /* how many were parsed */
};

/* where_init() - no condition: every device. */
void where_init(struct where *w);

/*
 * where_parse() - add the conditions of expr to w; relative times
 * ("within 30d") count from now. Returns 0, or CAPF_EINVAL with what is
 * wrong in err (at most errlen bytes).
 */
int where_parse(struct where *w, const char *expr, int64_t now, char *err, size_t errlen);

/* where_duration() - "30d", "12h", "2w" or "90" (days) in seconds, or
 * CAPF_EINVAL. */
int where_duration(const char *s, int64_t *out);

/* where_cert_state() - the certificate state named s (unconfirmed,
 * active, revoked), or CAPF_EINVAL. */
int where_cert_state(const char *s, int *out);

#endif /* CAPF_TOOLS_WHERE_H */
