/*
 * Percentiles of what a load run measured, for capf-phone load and
 * capf-replay load (tools/stats.h).
 */
#include "config.h"

#include <stdlib.h>

#include "tools/stats.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of n sorted values. */
static double percentile(const double *v, size_t n, double p)
{
	size_t rank;

	if (n == 0)
		return 0;
	rank = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

void stats_percentiles(double *v, size_t n, struct stats_pct *out)
{
	if (n > 0)
		qsort(v, n, sizeof(double), cmp_double);
	out->p50 = percentile(v, n, 50);
	out->p90 = percentile(v, n, 90);
	out->p99 = percentile(v, n, 99);
	out->max = n > 0 ? v[n - 1] : 0;
}
