/*
 * capf-replay load - replay a recorded mix of sessions as load: C threads,
 * each replaying the sessions in turn (from its own starting point) until
 * the count or the duration runs out; then throughput and latency
 * percentiles, as capf-phone load prints them, and one JSON line.
 */
#include "config.h"

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/replay/replay.h"

#define LOAD_THREADS_MAX 256ul
#define LOAD_COUNT_MAX 10000000ul
#define LOAD_DURATION_MAX 86400ul

struct load {
	struct replay_common c;
	const struct transcript *t;
	unsigned long count;      /* sessions to replay in total */
	double deadline;          /* replay_now() after which none starts */
	atomic_ulong next;        /* sessions started */
	double *latency_ms;       /* per started session */
	signed char *outcome;     /* 0 same, 1 differs, 2 failed, -1 not run */
};

struct worker {
	struct load *l;
	unsigned id;
	pthread_t thread;
};

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
		struct replay_result r;

		if (replay_now() >= l->deadline)
			break;
		i = atomic_fetch_add(&l->next, 1);
		if (i >= l->count)
			break;
		(void)replay_session(&l->c.o, &l->t->sessions[k % l->t->n], st, &r);
		k++;
		l->latency_ms[i] = r.seconds * 1e3;
		l->outcome[i] = r.failed ? 2 : r.differs ? 1 : 0;
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
		"Usage: " REPLAY_PROG " load FILE... --server HOST:PORT --ca FILE\n"
		"         [--mic-dir DIR | --mic FILE --mic-key FILE] [--concurrency C]\n"
		"         [--duration SECONDS] [--count N] [--pace] [--timeout SECONDS]\n"
		"Replay the recorded sessions as load: C phones at once, each replaying the\n"
		"mix in turn, until N sessions have started or the duration is over.\n"
		"\n"
		"  -C, --concurrency C     sessions at once, default 4 (1..%lu)\n"
		"  -D, --duration SECONDS  start no session after this, default 60\n"
		"  -n, --count N           sessions in total, default the number recorded\n"
		"      --pace              keep the recorded time between messages\n"
		"  (--server, --ca, --mic-dir, --mic, --mic-key, --timeout as for run)\n"
		"\n"
		"Prints the counts, the rate, latency percentiles of the sessions that ran\n"
		"to the end (the same or not), then the same as one JSON line.\n",
		LOAD_THREADS_MAX);
}

int replay_cmd_load(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "ca", required_argument, NULL, 'c' },
		{ "mic-dir", required_argument, NULL, 'd' },
		{ "mic", required_argument, NULL, 'm' },
		{ "mic-key", required_argument, NULL, 'k' },
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
	struct worker *workers = NULL;
	const char *server = NULL;
	unsigned long threads = 4, duration = 60, count = 0, started_threads = 0, i;
	unsigned long ran = 0, same = 0, differ = 0, failed = 0;
	double *lat = NULL, t0, wall;
	size_t nlat = 0;
	int status = REPLAY_EXIT_USAGE, ch, ret;
	char *end;

	memset(&l, 0, sizeof(l));
	l.c.timeout = 10;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "s:c:d:m:k:C:D:n:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			server = optarg;
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
	ret = replay_common_finish("load", &l.c, server, NULL);
	if (ret)
		return ret;
	if (replay_load_all(argv + optind, argc - optind, &t) < 0)
		goto out;
	if (t.n == 0) {
		fprintf(stderr, REPLAY_PROG " load: no session in the transcripts\n");
		goto out;
	}
	for (i = 0; i < t.n; i++) {
		if (strcmp(t.sessions[i].protocol, "native")) {
			fprintf(stderr, REPLAY_PROG " load: session at line %u is %s; only native "
					"sessions replay\n",
				t.sessions[i].line, t.sessions[i].protocol);
			goto out;
		}
	}
	l.t = &t;
	l.count = count ? count : t.n;
	l.latency_ms = calloc(l.count, sizeof(double));
	l.outcome = malloc(l.count);
	lat = calloc(l.count, sizeof(double));
	workers = calloc(threads, sizeof(*workers));
	if (!l.latency_ms || !l.outcome || !lat || !workers) {
		fprintf(stderr, REPLAY_PROG " load: out of memory\n");
		goto out;
	}
	memset(l.outcome, -1, l.count);
	atomic_init(&l.next, 0);
	t0 = replay_now();
	l.deadline = t0 + (double)duration;
	for (i = 0; i < threads; i++) {
		workers[i].l = &l;
		workers[i].id = (unsigned)i;
		if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0)
			break;
		started_threads++;
	}
	for (i = 0; i < started_threads; i++)
		pthread_join(workers[i].thread, NULL);
	wall = replay_now() - t0;
	if (started_threads < threads)
		fprintf(stderr, REPLAY_PROG " load: only %lu of %lu threads started\n",
			started_threads, threads);
	for (i = 0; i < l.count; i++) {
		if (l.outcome[i] < 0)
			continue;
		ran++;
		if (l.outcome[i] == 2) {
			failed++;
			continue;
		}
		if (l.outcome[i] == 1)
			differ++;
		else
			same++;
		lat[nlat++] = l.latency_ms[i];
	}
	qsort(lat, nlat, sizeof(double), cmp_double);
	printf("sessions: %lu same, %lu differ, %lu failed of %lu run (%lu asked)\n", same, differ,
	       failed, ran, l.count);
	printf("wall time: %.3f s\n", wall);
	printf("rate: %.1f sessions/s\n", wall > 0 ? (double)(same + differ) / wall : 0.0);
	if (nlat > 0)
		printf("latency (ms, sessions run to the end): p50 %.1f p90 %.1f p99 %.1f max %.1f\n",
		       percentile(lat, nlat, 50), percentile(lat, nlat, 90),
		       percentile(lat, nlat, 99), lat[nlat - 1]);
	printf("{\"sessions\":%lu,\"same\":%lu,\"differ\":%lu,\"failed\":%lu,\"concurrency\":%lu,"
	       "\"wall_s\":%.3f,\"rate\":%.1f,\"p50_ms\":%.1f,\"p90_ms\":%.1f,\"p99_ms\":%.1f,"
	       "\"max_ms\":%.1f}\n",
	       ran, same, differ, failed, started_threads, wall,
	       wall > 0 ? (double)(same + differ) / wall : 0.0, percentile(lat, nlat, 50),
	       percentile(lat, nlat, 90), percentile(lat, nlat, 99), nlat ? lat[nlat - 1] : 0.0);
	/* Load measures; differences are expected once a mix repeats (an
	 * operation done once is not pending the second time). Failures are not. */
	status = failed || ran == 0 ? REPLAY_EXIT_DIFF : REPLAY_EXIT_SAME;
out:
	free(workers);
	free(lat);
	free(l.latency_ms);
	free(l.outcome);
	transcript_free(&t);
	client_trust_deinit(&l.c.trust);
	return status;
}
