/*
 * capf-bench store - the store's figures, through its real API:
 *
 *   1. create N device records in big txns from several threads (group
 *      commit), and write a snapshot;
 *   2. load the store again in a fresh process (so that the heap holds
 *      nothing from step 1) and measure the load time and the memory the
 *      index takes per record beyond the packed record bytes (resident set
 *      size before and after store_open(), from /proc/self/statm);
 *   3. measure durable one-record txns: one thread, one fdatasync each,
 *      then many concurrent submitters sharing each fdatasync (group
 *      commit), on the same store in the same run, and print the ratio.
 *
 * Targets (doc/store-format.md): load <= 2 s and <= 300 bytes of overhead
 * per record for 1,000,000 records. Nothing is asserted: the figures
 * depend on the machine and its disk.
 */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "tools/bench/bench.h"

#define RECORDS_DEFAULT 1000000ul
#define TXN_RECORDS 1000u
#define CREATE_THREADS 4u
#define GROUP_THREADS 64u
#define RATE_SECONDS 2.0
#define TARGET_LOAD_S 2.0
#define TARGET_OVERHEAD 300.0

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " BENCH_PROG " store [--records N] [--dir DIR] [--keep]\n"
		"Create N device records through the store API (big txns, group commit),\n"
		"load them again and report the load time and memory per record, then\n"
		"compare one fdatasync per txn with group commit.\n"
		"\n"
		"  -n, --records N   device records to create, default %lu\n"
		"  -d, --dir DIR     state directory to create (it must not exist, its\n"
		"                    parent must); default a new directory under $TMPDIR\n"
		"                    (when at most 60 bytes long) or /tmp, removed at the end\n"
		"  -k, --keep        keep the state directory\n"
		"  -h, --help        show this help\n",
		RECORDS_DEFAULT);
}

/* The device record of number i: what an admin adds for one phone. */
static void make_device(Capf__Device *d, char *name, size_t len, unsigned long long i)
{
	capf__device__init(d);
	snprintf(name, len, "SEP%012llX", i);
	d->name = name;
	d->op = CAPF__OPERATION__OP_INSTALL;
	d->auth = CAPF__AUTH_MODE__AUTH_MIC;
	d->key_type = CAPF__KEY_TYPE__KEY_EC_P256;
	d->status = CAPF__OP_STATUS__STATUS_PENDING;
	d->created = 1767225600;
	d->updated = 1767225600;
	d->revision = 1; /* every device of the benchmark is new */
}

/* ---- step 1: creation -------------------------------------------------------- */

struct creator {
	struct store *st;
	unsigned long from, to;
	unsigned long long bytes; /* packed record bytes written */
	int error;
};

static void *create_main(void *arg)
{
	struct creator *cr = arg;
	Capf__Device *devs = calloc(TXN_RECORDS, sizeof(*devs));
	Capf__StoreRecord *recs = calloc(TXN_RECORDS, sizeof(*recs));
	Capf__StoreRecord **ptrs = calloc(TXN_RECORDS, sizeof(*ptrs));
	char(*names)[24] = calloc(TXN_RECORDS, sizeof(*names));
	unsigned long i = cr->from;

	if (!devs || !recs || !ptrs || !names) {
		cr->error = CAPF_ENOMEM;
		goto out;
	}
	while (i < cr->to && !cr->error) {
		size_t n = 0;
		int ret;

		for (; n < TXN_RECORDS && i < cr->to; n++, i++) {
			make_device(&devs[n], names[n], sizeof(names[n]), i);
			capf__store_record__init(&recs[n]);
			recs[n].body_case = CAPF__STORE_RECORD__BODY_DEVICE;
			recs[n].device = &devs[n];
			ptrs[n] = &recs[n];
			cr->bytes += capf__device__get_packed_size(&devs[n]);
		}
		ret = store_submit_wait(cr->st, ptrs, n);
		if (ret < 0)
			cr->error = ret;
	}
out:
	free(devs);
	free(recs);
	free(ptrs);
	free(names);
	return NULL;
}

static int create_records(const char *dir, unsigned long n, unsigned long long *bytes)
{
	struct creator cr[CREATE_THREADS];
	pthread_t th[CREATE_THREADS];
	struct store_stats ss;
	struct store *st = NULL;
	struct store_options opt = { .compact_bytes = UINT64_MAX };
	double t0, t1, t2;
	unsigned i, started = 0;
	int ret;

	ret = store_open_opts(&st, dir, &opt);
	if (ret < 0) {
		fprintf(stderr, BENCH_PROG " store: %s\n", store_last_error());
		return ret;
	}
	t0 = bench_now();
	for (i = 0; i < CREATE_THREADS; i++) {
		cr[i] = (struct creator){ st, n * i / CREATE_THREADS, n * (i + 1) / CREATE_THREADS,
					  0, 0 };
		if (pthread_create(&th[i], NULL, create_main, &cr[i]) != 0)
			break;
		started++;
	}
	*bytes = 0;
	for (i = 0; i < started; i++) {
		pthread_join(th[i], NULL);
		*bytes += cr[i].bytes;
		if (cr[i].error && ret == 0)
			ret = cr[i].error;
	}
	if (started < CREATE_THREADS && ret == 0)
		ret = CAPF_ENOMEM;
	t1 = bench_now();
	store_get_stats(st, &ss);
	if (ret == 0) {
		printf("created:        %lu device records (%.1f MB packed) in %.2f s: %.0f "
		       "records/s, %llu txns of %u in %llu group commits\n",
		       n, (double)*bytes / 1e6, t1 - t0, (double)n / (t1 - t0),
		       (unsigned long long)ss.txns_written, TXN_RECORDS,
		       (unsigned long long)ss.syncs);
		ret = store_compact(st);
		t2 = bench_now();
		if (ret == 0)
			printf("snapshot:       written in %.2f s\n", t2 - t1);
	}
	if (ret < 0)
		fprintf(stderr, BENCH_PROG " store: cannot create the records: %s\n",
			capf_strerror(ret));
	store_close(st);
	return ret;
}

/* ---- step 2: load, in a fresh process --------------------------------------- */

/* The hidden mode run by step 2: prints "seconds rss_delta devices". */
static int load_only(const char *dir)
{
	struct store_stats ss;
	struct store *st = NULL;
	unsigned long long before, after;
	double t0, t1;
	int ret;

	before = bench_rss_bytes();
	t0 = bench_now();
	ret = store_open(&st, dir);
	t1 = bench_now();
	if (ret < 0) {
		fprintf(stderr, BENCH_PROG " store: %s\n", store_last_error());
		return BENCH_EXIT_FAIL;
	}
	after = bench_rss_bytes();
	store_get_stats(st, &ss);
	printf("%.6f %llu %llu\n", t1 - t0, after > before ? after - before : 0ull,
	       (unsigned long long)ss.devices);
	store_close(st);
	return BENCH_EXIT_OK;
}

static int measure_load(const char *dir, unsigned long n, unsigned long long bytes)
{
	char self[4096], cmd[8400];
	double secs = 0;
	unsigned long long delta = 0, devices = 0;
	double overhead;
	ssize_t len;
	FILE *p;
	int ok;

	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len <= 0)
		return CAPF_EIO;
	self[len] = '\0';
	snprintf(cmd, sizeof(cmd), "'%s' store --load-only '%s'", self, dir);
	p = popen(cmd, "r");
	if (!p)
		return CAPF_EIO;
	ok = fscanf(p, "%lf %llu %llu", &secs, &delta, &devices) == 3;
	if (pclose(p) != 0 || !ok || devices != n) {
		fprintf(stderr, BENCH_PROG " store: the load did not run\n");
		return CAPF_EIO;
	}
	overhead = ((double)delta - (double)bytes) / (double)n;
	printf("load:           %.3f s for %llu records (snapshot): %.0f records/s   "
	       "[target <= %.1f s for 1,000,000: %s]\n",
	       secs, devices, (double)devices / secs, TARGET_LOAD_S,
	       secs * 1e6 / (double)n <= TARGET_LOAD_S ? "met" : "MISSED");
	printf("memory:         %.1f MB resident for the index, %.1f bytes per record: %.1f "
	       "packed + %.1f overhead   [target <= %.0f: %s]\n",
	       (double)delta / 1e6, (double)delta / (double)n, (double)bytes / (double)n, overhead,
	       TARGET_OVERHEAD, overhead <= TARGET_OVERHEAD ? "met" : "MISSED");
	return 0;
}

/* ---- step 3: fdatasync per txn and group commit ------------------------------ */

struct rater {
	struct store *st;
	unsigned id;
	double until;
	unsigned long done;
	int error;
};

static atomic_ulong next_name;

static void *rate_main(void *arg)
{
	struct rater *r = arg;

	while (bench_now() < r->until && !r->error) {
		Capf__Device d;
		Capf__StoreRecord rec = CAPF__STORE_RECORD__INIT;
		Capf__StoreRecord *recs[1] = { &rec };
		char name[24];
		int ret;

		make_device(&d, name, sizeof(name),
			    0x800000000000ull + atomic_fetch_add(&next_name, 1));
		rec.body_case = CAPF__STORE_RECORD__BODY_DEVICE;
		rec.device = &d;
		rec.create_only = true;
		ret = store_submit_wait(r->st, recs, 1);
		if (ret < 0)
			r->error = ret;
		else
			r->done++;
	}
	return NULL;
}

/* Runs nthreads submitters of one-record txns for RATE_SECONDS. */
static int rate(struct store *st, unsigned nthreads, double *per_s, double *group)
{
	struct rater *r = calloc(nthreads, sizeof(*r));
	pthread_t *th = calloc(nthreads, sizeof(*th));
	struct store_stats s0, s1;
	unsigned long done = 0;
	unsigned i, started = 0;
	double t0, t1;
	int ret = 0;

	if (!r || !th) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	store_get_stats(st, &s0);
	t0 = bench_now();
	for (i = 0; i < nthreads; i++) {
		r[i] = (struct rater){ st, i, t0 + RATE_SECONDS, 0, 0 };
		if (pthread_create(&th[i], NULL, rate_main, &r[i]) != 0)
			break;
		started++;
	}
	for (i = 0; i < started; i++) {
		pthread_join(th[i], NULL);
		done += r[i].done;
		if (r[i].error && ret == 0)
			ret = r[i].error;
	}
	t1 = bench_now();
	store_get_stats(st, &s1);
	*per_s = (double)done / (t1 - t0);
	*group = s1.syncs > s0.syncs ? (double)(s1.txns_written - s0.txns_written) /
					       (double)(s1.syncs - s0.syncs)
				      : 0;
out:
	free(r);
	free(th);
	return ret;
}

static int measure_rates(const char *dir)
{
	struct store_options opt = { .compact_bytes = UINT64_MAX };
	struct store *st = NULL;
	double single, grouped, g1, gn;
	int ret;

	ret = store_open_opts(&st, dir, &opt);
	if (ret < 0) {
		fprintf(stderr, BENCH_PROG " store: %s\n", store_last_error());
		return ret;
	}
	ret = rate(st, 1, &single, &g1);
	if (ret == 0)
		ret = rate(st, GROUP_THREADS, &grouped, &gn);
	store_close(st);
	if (ret < 0) {
		fprintf(stderr, BENCH_PROG " store: %s\n", capf_strerror(ret));
		return ret;
	}
	printf("single fsync:   %.0f records/s (1 thread, one durable txn per fdatasync)\n",
	       single);
	printf("group commit:   %.0f records/s (%u threads, %.1f txns per fdatasync)\n", grouped,
	       GROUP_THREADS, gn);
	printf("ratio:          %.1fx the single-fsync rate\n", single > 0 ? grouped / single : 0);
	return 0;
}

/* ---- the command ---------------------------------------------------------------- */

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int bench_store(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "records", required_argument, NULL, 'n' },
		{ "dir", required_argument, NULL, 'd' },
		{ "keep", no_argument, NULL, 'k' },
		{ "load-only", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long n = RECORDS_DEFAULT;
	unsigned long long bytes = 0;
	char tmpl[4096], *dir = NULL, *end;
	bool keep = false, made_root = false;
	int c, ret = BENCH_EXIT_FAIL;

	optind = 0;
	while ((c = getopt_long(argc, argv, "n:d:kh", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			errno = 0;
			n = strtoul(optarg, &end, 10);
			if (errno || *end || n < 1 || n > 100000000ul)
				return bench_usage_error("store", "--records wants 1..100000000");
			break;
		case 'd':
			dir = optarg;
			break;
		case 'k':
			keep = true;
			break;
		case 'L':
			return load_only(optarg);
		case 'h':
			usage(stdout);
			return BENCH_EXIT_OK;
		default:
			return bench_usage_error("store", "bad option");
		}
	}
	if (optind < argc)
		return bench_usage_error("store", "unexpected argument '%s'", argv[optind]);
	if (!dir) {
		bench_tmp_template(tmpl, sizeof(tmpl), "store");
		if (!mkdtemp(tmpl)) {
			fprintf(stderr, BENCH_PROG " store: cannot make %s: %s\n", tmpl,
				strerror(errno));
			return BENCH_EXIT_FAIL;
		}
		made_root = true;
		strncat(tmpl, "/state", sizeof(tmpl) - strlen(tmpl) - 1);
		dir = tmpl;
	} else if (access(dir, F_OK) == 0) {
		return bench_usage_error("store", "%s exists: give a new directory", dir);
	}
	printf("store benchmark: %lu records in %s\n", n, dir);
	fflush(stdout);
	if (create_records(dir, n, &bytes) < 0)
		goto out;
	/* Freed memory of step 1 back to the system before anything else. */
	malloc_trim(0);
	if (measure_load(dir, n, bytes) < 0)
		goto out;
	fflush(stdout);
	if (measure_rates(dir) < 0)
		goto out;
	ret = BENCH_EXIT_OK;
out:
	if (keep) {
		printf("kept:           %s\n", dir);
	} else {
		if (made_root)
			*strrchr(dir, '/') = '\0';
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	}
	return ret;
}
