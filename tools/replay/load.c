/*
 * capf-replay load - replay a recorded mix of sessions (native and Cisco)
 * as load, in one of two loops. Closed (--concurrency C): C threads, each
 * replaying the sessions in turn (from its own starting point), the next
 * when the last is done. Open (--rate R): session i is due at i/R seconds
 * whatever became of the others, and the first of C threads free starts
 * it; one that starts later than due is counted late, and its latency
 * counts from when it was due. Both stop at the count or the duration;
 * then throughput and latency percentiles, as capf-phone load prints
 * them, and one JSON line.
 */
#include "config.h"

#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/replay/internal.h"

#define LOAD_THREADS_MAX 256ul
#define LOAD_COUNT_MAX 10000000ul
#define LOAD_DURATION_MAX 86400ul
#define LOAD_RATE_MAX 100000.0
#define LOAD_OPEN_THREADS 64ul   /* --concurrency with --rate by default */
#define LOAD_LATE_S 0.010        /* a start this much behind its time is late */

enum { OPT_CISCO_SERVER = 256 };

struct load {
	struct replay_common c;
	const struct transcript *t;
	unsigned long count;      /* sessions to replay in total */
	double t0;                /* replay_now() at the start */
	double deadline;          /* replay_now() after which none starts */
	double rate;              /* sessions per second (open loop), 0: closed */
	atomic_ulong next;        /* sessions taken */
	atomic_uint in_flight, in_flight_max;
	double *latency_ms;       /* per session taken */
	double *start;            /* when it started, seconds after t0 */
	double *lag_ms;           /* how late it started (open loop) */
	signed char *outcome;     /* 0 same, 1 differs, 2 failed, -1 not run */
	bool *cisco;              /* it was a Cisco session */
	pthread_mutex_t lock;     /* guards first */
	bool have_first;
	char first[700];          /* the first difference or failure seen */
};

struct worker {
	struct load *l;
	unsigned id;
	pthread_t thread;
};

static void run_one(struct load *l, struct replay_state *st, unsigned long i, size_t k,
		    double due)
{
	struct replay_result r;
	unsigned now, max;
	double begin;

	now = atomic_fetch_add(&l->in_flight, 1) + 1;
	max = atomic_load(&l->in_flight_max);
	while (now > max && !atomic_compare_exchange_weak(&l->in_flight_max, &max, now))
		;
	begin = replay_now();
	l->cisco[i] = !strcmp(l->t->sessions[k % l->t->n].protocol, "cisco");
	(void)replay_session(&l->c.o, &l->t->sessions[k % l->t->n], st, &r);
	atomic_fetch_sub(&l->in_flight, 1);
	if (r.failed || r.differs) {
		pthread_mutex_lock(&l->lock);
		if (!l->have_first) {
			l->have_first = true;
			snprintf(l->first, sizeof(l->first), "session %zu (line %u, %s): %s: %s",
				 k % l->t->n + 1, l->t->sessions[k % l->t->n].line,
				 l->t->sessions[k % l->t->n].device, r.failed ? "FAILED" : "DIFFERS",
				 r.text);
		}
		pthread_mutex_unlock(&l->lock);
	}
	l->start[i] = begin - l->t0;
	/* Open loop: the latency a phone sees counts from when it was due. */
	l->latency_ms[i] = (l->rate > 0 ? replay_now() - due : r.seconds) * 1e3;
	l->lag_ms[i] = l->rate > 0 ? (begin - due) * 1e3 : 0;
	l->outcome[i] = r.failed ? 2 : r.differs ? 1 : 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct load *l = w->l;
	struct replay_state *st = replay_state_new();
	size_t k = w->id;

	if (!st)
		return NULL;
	for (;;) {
		unsigned long i;
		double due = 0;

		if (l->rate <= 0 && replay_now() >= l->deadline)
			break;
		i = atomic_fetch_add(&l->next, 1);
		if (i >= l->count)
			break;
		if (l->rate > 0) {
			/* The mix in order, each session at its time. */
			due = l->t0 + (double)i / l->rate;
			if (due >= l->deadline)
				break;
			replay_sleep_until(due);
			run_one(l, st, i, i, due);
		} else {
			run_one(l, st, i, k++, 0);
		}
	}
	replay_state_free(st);
	return NULL;
}

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

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " REPLAY_PROG " load FILE... --server HOST:PORT [--cisco-server HOST:PORT]\n"
		"         --ca FILE [--mic-dir DIR | --mic FILE --mic-key FILE]\n"
		"         [--rate R] [--concurrency C] [--duration SECONDS] [--count N] [--pace]\n"
		"         [--timeout SECONDS]\n"
		"Replay the recorded sessions (native and Cisco) as load, until N sessions have\n"
		"started or the duration is over. Closed loop (the default): C phones at once,\n"
		"each replaying the mix in turn. Open loop (--rate): R sessions started per\n"
		"second whatever became of the others, the mix in order, by up to C at once.\n"
		"\n"
		"  -r, --rate R            start R sessions per second (0.1..%.0f)\n"
		"  -C, --concurrency C     sessions at once, default 4, with --rate %lu (1..%lu)\n"
		"  -D, --duration SECONDS  start no session after this, default 60\n"
		"  -n, --count N           sessions in total, default the number recorded\n"
		"                          (with --rate: R times the duration)\n"
		"      --pace              keep the recorded time between messages\n"
		"  (--server, --cisco-server, --ca, --mic-dir, --mic, --mic-key, --timeout as\n"
		"  for run)\n"
		"\n"
		"Prints the counts, the rate, latency percentiles of the sessions that ran\n"
		"to the end (the same or not; open loop: from when each was due), with --rate\n"
		"the start rate reached and how late starts were, then all as one JSON line.\n",
		LOAD_RATE_MAX, LOAD_OPEN_THREADS, LOAD_THREADS_MAX);
}

/* What the sessions that ran add up to. */
struct tally {
	unsigned long ran, same, differ, failed, native, cisco, late;
	double *lat, *lag;
	size_t nlat, nlag;
	double first, last;       /* earliest and latest start */
};

static void tally(const struct load *l, struct tally *y)
{
	y->first = INFINITY;
	y->last = -INFINITY;
	for (unsigned long i = 0; i < l->count; i++) {
		if (l->outcome[i] < 0)
			continue;
		y->ran++;
		if (l->cisco[i])
			y->cisco++;
		else
			y->native++;
		if (l->start[i] < y->first)
			y->first = l->start[i];
		if (l->start[i] > y->last)
			y->last = l->start[i];
		if (l->rate > 0) {
			y->lag[y->nlag++] = l->lag_ms[i];
			if (l->lag_ms[i] > LOAD_LATE_S * 1e3)
				y->late++;
		}
		if (l->outcome[i] == 2) {
			y->failed++;
			continue;
		}
		if (l->outcome[i] == 1)
			y->differ++;
		else
			y->same++;
		y->lat[y->nlat++] = l->latency_ms[i];
	}
	qsort(y->lat, y->nlat, sizeof(double), cmp_double);
	qsort(y->lag, y->nlag, sizeof(double), cmp_double);
}

int replay_cmd_load(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "cisco-server", required_argument, NULL, OPT_CISCO_SERVER },
		{ "ca", required_argument, NULL, 'c' },
		{ "mic-dir", required_argument, NULL, 'd' },
		{ "mic", required_argument, NULL, 'm' },
		{ "mic-key", required_argument, NULL, 'k' },
		{ "rate", required_argument, NULL, 'r' },
		{ "concurrency", required_argument, NULL, 'C' },
		{ "duration", required_argument, NULL, 'D' },
		{ "count", required_argument, NULL, 'n' },
		{ "pace", no_argument, NULL, 'P' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct load l;
	struct transcript t = { NULL, 0 };
	struct tally y;
	struct worker *workers = NULL;
	const char *server = NULL, *cisco_server = NULL;
	unsigned long threads = 0, duration = 60, count = 0, started_threads = 0, i;
	double wall, rate, start_rate = 0;
	int status = REPLAY_EXIT_USAGE, ch, ret;
	char *end;

	memset(&l, 0, sizeof(l));
	memset(&y, 0, sizeof(y));
	pthread_mutex_init(&l.lock, NULL);
	l.c.timeout = 10;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "s:c:d:m:k:r:C:D:n:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			server = optarg;
			break;
		case OPT_CISCO_SERVER:
			cisco_server = optarg;
			break;
		case 'c':
			l.c.ca = optarg;
			break;
		case 'd':
			l.c.o.mic_dir = optarg;
			break;
		case 'm':
			l.c.o.mic = optarg;
			break;
		case 'k':
			l.c.o.mic_key = optarg;
			break;
		case 'r':
			l.rate = strtod(optarg, &end);
			if (*end || !(l.rate >= 0.1 && l.rate <= LOAD_RATE_MAX))
				return replay_usage_error("load", "--rate wants 0.1..%.0f sessions per "
								  "second",
							  LOAD_RATE_MAX);
			break;
		case 'C':
			threads = strtoul(optarg, &end, 10);
			if (*end || threads < 1 || threads > LOAD_THREADS_MAX)
				return replay_usage_error("load", "--concurrency wants 1..%lu",
							  LOAD_THREADS_MAX);
			break;
		case 'D':
			duration = strtoul(optarg, &end, 10);
			if (*end || duration < 1 || duration > LOAD_DURATION_MAX)
				return replay_usage_error("load", "--duration wants 1..%lu seconds",
							  LOAD_DURATION_MAX);
			break;
		case 'n':
			count = strtoul(optarg, &end, 10);
			if (*end || count < 1 || count > LOAD_COUNT_MAX)
				return replay_usage_error("load", "--count wants 1..%lu",
							  LOAD_COUNT_MAX);
			break;
		case 'P':
			l.c.o.pace = true;
			break;
		case 'T':
			l.c.timeout = strtoul(optarg, &end, 10);
			if (*end || l.c.timeout < 1 || l.c.timeout > 3600)
				return replay_usage_error("load", "--timeout wants 1..3600 seconds");
			break;
		case 'h':
			usage(stdout);
			return REPLAY_EXIT_SAME;
		default:
			return replay_usage_error("load", "bad option");
		}
	}
	if (optind >= argc)
		return replay_usage_error("load", "a transcript file is required");
	if (threads == 0)
		threads = l.rate > 0 ? LOAD_OPEN_THREADS : 4;
	if (l.rate > 0 && count == 0) {
		double n = ceil(l.rate * (double)duration);

		if (n > (double)LOAD_COUNT_MAX)
			return replay_usage_error("load", "--rate times --duration is over %lu sessions",
						  LOAD_COUNT_MAX);
		count = (unsigned long)n;
	}
	ret = replay_common_finish("load", &l.c, server, cisco_server);
	if (ret)
		return ret;
	if (replay_load_all(argv + optind, argc - optind, &t) < 0)
		goto out;
	if (t.n == 0) {
		fprintf(stderr, REPLAY_PROG " load: no session in the transcripts\n");
		goto out;
	}
	l.t = &t;
	l.count = count ? count : t.n;
	l.latency_ms = calloc(l.count, sizeof(double));
	l.start = calloc(l.count, sizeof(double));
	l.lag_ms = calloc(l.count, sizeof(double));
	l.outcome = malloc(l.count);
	l.cisco = calloc(l.count, sizeof(bool));
	y.lat = calloc(l.count, sizeof(double));
	y.lag = calloc(l.count, sizeof(double));
	workers = calloc(threads, sizeof(*workers));
	if (!l.latency_ms || !l.start || !l.lag_ms || !l.outcome || !l.cisco || !y.lat || !y.lag || !workers) {
		fprintf(stderr, REPLAY_PROG " load: out of memory\n");
		goto out;
	}
	memset(l.outcome, -1, l.count);
	atomic_init(&l.next, 0);
	atomic_init(&l.in_flight, 0);
	atomic_init(&l.in_flight_max, 0);
	l.t0 = replay_now();
	l.deadline = l.t0 + (double)duration;
	for (i = 0; i < threads; i++) {
		workers[i].l = &l;
		workers[i].id = (unsigned)i;
		if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0)
			break;
		started_threads++;
	}
	for (i = 0; i < started_threads; i++)
		pthread_join(workers[i].thread, NULL);
	wall = replay_now() - l.t0;
	if (started_threads < threads)
		fprintf(stderr, REPLAY_PROG " load: only %lu of %lu threads started\n",
			started_threads, threads);
	tally(&l, &y);
	rate = wall > 0 ? (double)(y.same + y.differ) / wall : 0.0;
	if (y.ran >= 2 && y.last > y.first)
		start_rate = (double)(y.ran - 1) / (y.last - y.first);
	printf("sessions: %lu same, %lu differ, %lu failed of %lu run (%lu asked)\n", y.same,
	       y.differ, y.failed, y.ran, l.count);
	printf("protocols: %lu native, %lu cisco\n", y.native, y.cisco);
	if (l.have_first)
		printf("first difference: %s\n", l.first);
	printf("wall time: %.3f s\n", wall);
	printf("rate: %.1f sessions/s\n", rate);
	if (l.rate > 0)
		printf("open loop: %.1f sessions/s asked, %.1f started/s, start lag (ms) p50 %.1f "
		       "p99 %.1f max %.1f, %lu late (more than %.0f ms), at most %u at once\n",
		       l.rate, start_rate, percentile(y.lag, y.nlag, 50),
		       percentile(y.lag, y.nlag, 99), y.nlag ? y.lag[y.nlag - 1] : 0.0, y.late,
		       LOAD_LATE_S * 1e3, atomic_load(&l.in_flight_max));
	if (y.nlat > 0)
		printf("latency (ms, sessions run to the end): p50 %.1f p90 %.1f p99 %.1f max %.1f\n",
		       percentile(y.lat, y.nlat, 50), percentile(y.lat, y.nlat, 90),
		       percentile(y.lat, y.nlat, 99), y.lat[y.nlat - 1]);
	printf("{\"sessions\":%lu,\"same\":%lu,\"differ\":%lu,\"failed\":%lu,\"concurrency\":%lu,"
	       "\"wall_s\":%.3f,\"rate\":%.1f,\"p50_ms\":%.1f,\"p90_ms\":%.1f,\"p99_ms\":%.1f,"
	       "\"max_ms\":%.1f,\"native\":%lu,\"cisco\":%lu,\"loop\":\"%s\"",
	       y.ran, y.same, y.differ, y.failed, started_threads, wall, rate,
	       percentile(y.lat, y.nlat, 50), percentile(y.lat, y.nlat, 90),
	       percentile(y.lat, y.nlat, 99), y.nlat ? y.lat[y.nlat - 1] : 0.0, y.native,
	       y.cisco, l.rate > 0 ? "open" : "closed");
	if (l.rate > 0)
		printf(",\"rate_asked\":%.1f,\"start_rate\":%.2f,\"lag_p50_ms\":%.1f,\"lag_p99_ms\":%.1f,"
		       "\"lag_max_ms\":%.1f,\"late\":%lu,\"in_flight_max\":%u",
		       l.rate, start_rate, percentile(y.lag, y.nlag, 50),
		       percentile(y.lag, y.nlag, 99), y.nlag ? y.lag[y.nlag - 1] : 0.0, y.late,
		       atomic_load(&l.in_flight_max));
	printf("}\n");
	/* Load measures; differences are expected once a mix repeats (an
	 * operation done once is not pending the second time). Failures are not. */
	status = y.failed || y.ran == 0 ? REPLAY_EXIT_DIFF : REPLAY_EXIT_SAME;
out:
	free(workers);
	free(y.lat);
	free(y.lag);
	free(l.latency_ms);
	free(l.start);
	free(l.lag_ms);
	free(l.outcome);
	free(l.cisco);
	transcript_free(&t);
	client_trust_deinit(&l.c.trust);
	pthread_mutex_destroy(&l.lock);
	return status;
}
