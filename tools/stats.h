/*
 * tools/stats.h - the figures the load tools print of what a run measured
 * (capf-phone load, capf-replay load): nearest-rank percentiles of a set
 * of values, so that both compute them the same way.
 */
#ifndef CAPF_TOOLS_STATS_H
#define CAPF_TOOLS_STATS_H

#include <stddef.h>

/* The percentiles of a set of values (latencies, start lags: ms). */
struct stats_pct {
	double p50, p90, p99, max;
};

/*
 * stats_percentiles() - sort the n values of v in place (ascending) and
 * give their nearest-rank p50, p90, p99 and their maximum; all 0 when n
 * is 0 (v may then be NULL).
 */
void stats_percentiles(double *v, size_t n, struct stats_pct *out);

#endif /* CAPF_TOOLS_STATS_H */
