/*
 * capf-bench enroll - what one enrollment costs the server, next to the
 * cryptography it cannot avoid, measured in the same run, for each
 * variant (CA, MIC and key type; protocol; key exchange):
 *
 *  1. the pure crypto of one enrollment with the same GnuTLS calls and
 *     key types (tools/bench/crypto.c says which), on the server's core,
 *     before the saturated run and again after it (the mean is the
 *     baseline: the machine's speed moves);
 *  2. capfd with one worker pinned to CPU 0 (its signer too) under
 *     capf-phone load pinned to CPU 1, the devices bulk-imported first:
 *     saturated (closed loop, C phones at once), then on a fresh capfd
 *     open loop at half of that peak; the server's CPU per enrollment
 *     (capfd and its signer, user and system, from /proc), per CPU-second,
 *     its ratio to (1), enrollments per second, p50/p99 latency at half of
 *     peak, fdatasyncs per enrollment (perf's count of capfd's fdatasync
 *     calls, and the store's group commits), peak RSS, and the client's
 *     own CPU per enrollment.
 *
 * Figures only: the machine may be shared, nothing is asserted. One JSON
 * line per variant for scripts. --callgrind counts instructions instead
 * (slow: by hand).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/bench/bench.h"
#include "tools/bench/server.h"

#define COUNT_P256 2000ul
#define COUNT_RSA 600ul
#define COUNT_QUICK 100ul
/* The phones verify 1 LSC signature in this many: the client then costs
 * less CPU than the server, so that a same-box run shows the server's
 * peak (capf-phone load --verify-every; every LSC's key and name are
 * still checked). */
#define VERIFY_EVERY_DEFAULT "16"
#define CONCURRENCY_DEFAULT 32ul
#define CALLGRIND_COUNT 100ul

struct variant {
	const char *name;
	bool rsa, cisco;
	const char *groups; /* what the phones offer */
};

static const struct variant variants[] = {
	{ "p256-native", false, false, "x25519" },
	{ "p256-native-kxp256", false, false, "p256" },
	{ "p256-cisco", false, true, "x25519" },
	{ "rsa2048-native", true, false, "x25519" },
	{ "rsa2048-cisco", true, true, "x25519" },
};
#define N_VARIANTS (sizeof(variants) / sizeof(variants[0]))

struct figures {
	const struct variant *v;
	/* The pure crypto: measured on the server's core before the
	 * saturated run and again after it; crypto.seconds is their mean. */
	struct bench_crypto crypto;
	double crypto_before_s, crypto_after_s;
	unsigned long count;
	double user_ms, sys_ms;   /* server CPU per enrollment */
	double rate, busy;        /* saturated: enrollments/s, server core use */
	double half_rate, p50, p99;
	double half_target;       /* the open-loop rate asked for */
	double half_user_ms, half_sys_ms; /* server CPU per enrollment at that rate */
	double fdatasyncs, commits;
	double switches;          /* context switches per enrollment, capfd and its signer */
	double commit_ms;         /* mean duration of a group commit (write + fdatasyncs) */
	unsigned long long rss_kib, signer_rss_kib;
	double client_ms;
	unsigned long x25519, secp256r1;
	bool ran, half_ran;
};

struct run {
	const char *build;
	char dir[512];
	char keys[1024];
	unsigned long count;      /* 0: per key type */
	unsigned long concurrency;
	bool quick, half, perf;
	int server_cpu, client_cpu;
	double kx_rate;           /* the half-peak rate of p256-native, for p256-native-kxp256 */
	const char *key_pool;     /* --key-pool for capf-phone load, NULL: its default */
	const char *verify_every; /* --verify-every for capf-phone load */
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " BENCH_PROG " enroll [--variant LIST] [--count N] [--concurrency C]\n"
		"         [--quick] [--no-half] [--build DIR] [--keys FILE] [--callgrind]\n"
		"         [--crypto-only]\n"
		"For each variant: the pure crypto of one enrollment; capfd (one worker, pinned\n"
		"to CPU 0) under capf-phone load (pinned to CPU 1), saturated, then open loop at\n"
		"half of that peak: server CPU per enrollment (user, system), per CPU-second,\n"
		"ratio to the crypto, enrollments/s, p50/p99 at half peak, fdatasyncs per\n"
		"enrollment, peak RSS, the client's CPU; a table and one JSON line per variant.\n"
		"\n"
		"  -v, --variant LIST   comma-separated, default all: ");
	for (size_t i = 0; i < N_VARIANTS; i++)
		fprintf(f, "%s%s", variants[i].name, i + 1 < N_VARIANTS ? "," : "\n");
	fprintf(f,
		"                       (p256-native-kxp256: the phones offer P-256 only)\n"
		"  -n, --count N        enrollments per run, default %lu (RSA %lu)\n"
		"  -c, --concurrency C  phones at once when saturated, default %lu\n"
		"  -q, --quick          p256-native, %lu enrollments, no half-peak run (a smoke test)\n"
		"      --no-half        no open-loop run at half of the peak\n"
		"  -b, --build DIR      where capfd, capfctl and capf-phone are, default .\n"
		"  -k, --keys FILE      the phones' new keys, kept across runs (made once: RSA-2048\n"
		"                       keys take a while), default ~/.cache/capf-bench/keys\n"
		"      --callgrind      instructions per enrollment under valgrind --tool=callgrind,\n"
		"                       the server (capfd and signer, %lu enrollments) next to the\n"
		"                       pure crypto; slow, by hand\n"
		"      --crypto-only    only the pure crypto\n"
		"      --key-pool N     capf-phone load --key-pool N (0: the phones make every key\n"
		"                       in the run, as real ones do)\n"
		"      --verify-every N capf-phone load --verify-every N: the phones verify the\n"
		"                       signature of 1 LSC in N (default %s; 1: all)\n"
		"      --no-perf        no perf stat for the fdatasync count\n"
		"  -h, --help           show this help\n",
		COUNT_P256, COUNT_RSA, CONCURRENCY_DEFAULT, COUNT_QUICK, CALLGRIND_COUNT,
		VERIFY_EVERY_DEFAULT);
}

static double ms(double s)
{
	return s * 1e3;
}

/* The pure crypto of v, timed in this process on cpu (-1: any) into c. */
static int crypto_on(const struct run *r, const struct figures *fg, int cpu,
		     struct bench_crypto *c)
{
	cpu_set_t old, one;
	bool pinned = false;
	int ret;

	c->rsa = fg->v->rsa;
	c->cisco = fg->v->cisco;
	c->x25519 = strcmp(fg->v->groups, "p256") != 0;
	if (cpu >= 0 && sched_getaffinity(0, sizeof(old), &old) == 0) {
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		pinned = sched_setaffinity(0, sizeof(one), &one) == 0;
	}
	ret = bench_crypto_measure(c, r->quick ? 20 : fg->v->rsa ? 40 : 200, 5);
	if (pinned)
		(void)sched_setaffinity(0, sizeof(old), &old);
	if (ret < 0)
		fprintf(stderr, BENCH_PROG " enroll: the crypto measurement failed\n");
	return ret;
}

/* The pure crypto before the runs, on the core the server will have. */
static int measure_crypto(const struct run *r, struct figures *fg)
{
	char what[200];

	if (crypto_on(r, fg, r->server_cpu, &fg->crypto) < 0)
		return -1;
	fg->crypto_before_s = fg->crypto_after_s = fg->crypto.seconds;
	bench_crypto_describe(&fg->crypto, what, sizeof(what));
	printf("  pure crypto      %8.3f ms per enrollment (%s)\n", ms(fg->crypto.seconds), what);
	return 0;
}

/*
 * The pure crypto again, right after the saturated run: the baseline is
 * the mean of both, and a machine whose speed moved in between is said to
 * have (the ratio is then uncertain by as much).
 */
static int measure_crypto_after(const struct run *r, struct figures *fg)
{
	struct bench_crypto again = { 0 };
	double drift;

	if (crypto_on(r, fg, r->server_cpu, &again) < 0)
		return -1;
	fg->crypto_after_s = again.seconds;
	fg->crypto.seconds = (fg->crypto_before_s + fg->crypto_after_s) / 2;
	drift = fabs(fg->crypto_after_s - fg->crypto_before_s) / fg->crypto.seconds;
	printf("  pure crypto      %8.3f ms again after the run: the baseline %.3f ms (the mean)%s\n",
	       ms(fg->crypto_after_s), ms(fg->crypto.seconds),
	       drift > 0.15 ? "; the machine's speed moved by more than 15 %, the ratio is as "
			      "uncertain" : "");
	return 0;
}

/* One capfd: devices imported, one load; CPU, syncs, RSS around it. */
static int one_run(const struct run *r, struct figures *fg, struct bench_capfd *d, double rate,
		   struct bench_load_result *lr)
{
	struct bench_capfd_opts co = { .rsa = fg->v->rsa, .cpu = r->server_cpu };
	struct bench_load_opts lo = {
		.name = rate > 0 ? "half" : "peak",
		.prefix = "SEPBENCH",
		.count = fg->count,
		.concurrency = rate > 0 ? 4 * r->concurrency : r->concurrency,
		.rate = rate,
		.cisco = fg->v->cisco,
		.rsa = fg->v->rsa,
		.no_setup = true,
		.groups = fg->v->groups,
		.key_file = r->keys,
		.key_pool = r->key_pool,
		.verify_every = r->verify_every,
		.cpu = r->client_cpu,
	};
	char perf_out[1200];
	double u0 = 0, s0 = 0, u1 = 0, s1 = 0;
	double c0, c1, cs0, cs1, cn0, cn1;
	unsigned long long x0, x1;
	long long fd = -1;
	pid_t perf = -1;
	int ret = -1;

	if (bench_capfd_start(d, &co) < 0)
		return -1;
	if (bench_import(d, "SEPBENCH", fg->count, fg->v->rsa, "mic") < 0) {
		fprintf(stderr, BENCH_PROG " enroll: the bulk import failed (see %s/import.out)\n",
			d->dir);
		goto out;
	}
	snprintf(perf_out, sizeof(perf_out), "%s/%s.perf", d->dir, lo.name);
	if (r->perf)
		perf = bench_perf_start(d, perf_out);
	c0 = bench_capfd_metric(d, "capf_store_syncs_total");
	cs0 = bench_capfd_metric(d, "capf_store_commit_duration_seconds_sum");
	cn0 = bench_capfd_metric(d, "capf_store_commit_duration_seconds_count");
	bench_cpu_of(d->pid, &u0, &s0);
	x0 = bench_ctxt_switches(d->pid);
	ret = bench_load(d, &lo, lr);
	x1 = bench_ctxt_switches(d->pid);
	bench_cpu_of(d->pid, &u1, &s1);
	c1 = bench_capfd_metric(d, "capf_store_syncs_total");
	cs1 = bench_capfd_metric(d, "capf_store_commit_duration_seconds_sum");
	cn1 = bench_capfd_metric(d, "capf_store_commit_duration_seconds_count");
	if (perf > 0)
		fd = bench_perf_stop(perf, perf_out);
	if (ret < 0 || lr->ok == 0) {
		ret = -1;
		goto out;
	}
	if (rate > 0) {
		fg->half_user_ms = ms((u1 - u0) / (double)lr->ok);
		fg->half_sys_ms = ms((s1 - s0) / (double)lr->ok);
	}
	if (rate <= 0) {
		fg->user_ms = ms((u1 - u0) / (double)lr->ok);
		fg->sys_ms = ms((s1 - s0) / (double)lr->ok);
		fg->rate = lr->rate;
		fg->busy = lr->wall > 0 ? ((u1 - u0) + (s1 - s0)) / lr->wall : 0;
		fg->commits = c0 >= 0 && c1 >= c0 ? (c1 - c0) / (double)lr->ok : -1;
		fg->commit_ms = cn1 > cn0 && cs0 >= 0 ? 1e3 * (cs1 - cs0) / (cn1 - cn0) : -1;
		fg->fdatasyncs = fd >= 0 ? (double)fd / (double)lr->ok : -1;
		fg->switches = x1 >= x0 ? (double)(x1 - x0) / (double)lr->ok : -1;
		fg->rss_kib = bench_proc_kib(d->pid, "VmHWM", false);
		fg->signer_rss_kib = bench_proc_kib(d->pid, "VmHWM", true) - fg->rss_kib;
		fg->client_ms = lr->client_user_ms + lr->client_sys_ms;
		fg->x25519 = lr->x25519;
		fg->secp256r1 = lr->secp256r1;
	}
	ret = 0;
out:
	bench_capfd_stop(d);
	return ret;
}

static int run_variant(struct run *r, struct figures *fg)
{
	struct bench_capfd d;
	struct bench_load_result lr;

	memset(&d, 0, sizeof(d));
	d.pid = -1;
	snprintf(d.build, sizeof(d.build), "%s", r->build);
	snprintf(d.dir, sizeof(d.dir), "%s/%s", r->dir, fg->v->name);
	snprintf(d.mfg, sizeof(d.mfg), "%s/mfg", d.dir);
	if (mkdir(d.dir, 0755) < 0 || bench_make_mfg(&d, fg->v->rsa) < 0) {
		fprintf(stderr, BENCH_PROG " enroll: cannot make %s\n", d.mfg);
		return -1;
	}
	fg->count = r->count ? r->count : r->quick ? COUNT_QUICK : fg->v->rsa ? COUNT_RSA
									  : COUNT_P256;
	if (one_run(r, fg, &d, 0, &lr) < 0 || measure_crypto_after(r, fg) < 0)
		return -1;
	fg->ran = true;
	printf("  server           %8.3f ms CPU per enrollment (user %.3f, system %.3f; capfd "
	       "and its signer)\n",
	       fg->user_ms + fg->sys_ms, fg->user_ms, fg->sys_ms);
	printf("  ratio            %8.2f x the pure crypto\n",
	       (fg->user_ms + fg->sys_ms) / ms(fg->crypto.seconds));
	printf("  per CPU-second   %8.0f enrollments\n", 1e3 / (fg->user_ms + fg->sys_ms));
	printf("  saturated        %8.0f enrollments/s (%lu at once; the server's core %.0f %% "
	       "busy)\n",
	       fg->rate, r->concurrency, 100 * fg->busy);
	printf("  client           %8.3f ms CPU per enrollment (capf-phone load, on CPU %d)\n",
	       fg->client_ms, r->client_cpu);
	if (fg->fdatasyncs >= 0)
		printf("  fdatasyncs       %8.2f per enrollment (perf: capfd's fdatasync calls)\n",
		       fg->fdatasyncs);
	else
		printf("  fdatasyncs            ? per enrollment (no perf)\n");
	printf("  switches         %8.2f context switches per enrollment (capfd's threads and "
	       "its signer)\n", fg->switches);
	printf("  group commits    %8.2f per enrollment (capf_store_syncs_total), %.1f ms each on "
	       "average (write and fdatasyncs)\n", fg->commits, fg->commit_ms);
	printf("  peak RSS         %8llu KiB capfd, %llu KiB its signer\n", fg->rss_kib,
	       fg->signer_rss_kib);
	printf("  key exchange     %lu X25519, %lu P-256 (phones offered %s)\n", fg->x25519,
	       fg->secp256r1, fg->v->groups);
	if (r->half && !r->quick) {
		/* The two key exchanges are compared at one rate, so that the
		 * group commits batch alike: p256-native's half of peak. */
		bool kx = !strcmp(fg->v->name, "p256-native-kxp256") && r->kx_rate > 0;

		fg->half_target = kx ? r->kx_rate : fg->rate / 2;
		if (one_run(r, fg, &d, fg->half_target, &lr) < 0)
			return -1;
		fg->half_ran = true;
		fg->half_rate = lr.rate;
		fg->p50 = lr.p50;
		fg->p99 = lr.p99;
		if (!strcmp(fg->v->name, "p256-native"))
			r->kx_rate = fg->half_target;
		printf("  %-16s %8.0f enrollments/s open loop: p50 %.1f ms, p99 %.1f ms; server CPU "
		       "%.3f ms each (user %.3f, system %.3f)\n",
		       kx ? "p256-native's" : "half of peak", lr.rate, lr.p50, lr.p99,
		       fg->half_user_ms + fg->half_sys_ms, fg->half_user_ms, fg->half_sys_ms);
	}
	return 0;
}

static void print_json(const struct figures *fg)
{
	double cpu = fg->user_ms + fg->sys_ms;

	printf("{\"bench\":\"enroll\",\"variant\":\"%s\",\"crypto_ms\":%.4f,"
	       "\"crypto_before_ms\":%.4f,\"crypto_after_ms\":%.4f,\"server_cpu_ms\":%.4f,"
	       "\"server_user_ms\":%.4f,\"server_sys_ms\":%.4f,\"ratio\":%.3f,"
	       "\"per_cpu_second\":%.1f,\"rate\":%.1f,\"server_busy\":%.3f,\"half_rate\":%.1f,"
	       "\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"half_server_cpu_ms\":%.4f,"
	       "\"fdatasyncs_per_enrollment\":%.3f,\"switches_per_enrollment\":%.2f,"
	       "\"group_commits_per_enrollment\":%.3f,\"commit_ms\":%.3f,\"peak_rss_kib\":%llu,"
	       "\"signer_peak_rss_kib\":%llu,\"client_cpu_ms\":%.4f,\"x25519\":%lu,"
	       "\"secp256r1\":%lu,\"kx_x25519_ms\":%.4f,\"kx_p256_ms\":%.4f,\"count\":%lu}\n",
	       fg->v->name, ms(fg->crypto.seconds), ms(fg->crypto_before_s),
	       ms(fg->crypto_after_s), cpu, fg->user_ms, fg->sys_ms,
	       cpu / ms(fg->crypto.seconds), 1e3 / cpu, fg->rate, fg->busy, fg->half_rate, fg->p50,
	       fg->p99, fg->half_user_ms + fg->half_sys_ms, fg->fdatasyncs, fg->switches, fg->commits, fg->commit_ms, fg->rss_kib, fg->signer_rss_kib, fg->client_ms,
	       fg->x25519, fg->secp256r1, ms(fg->crypto.x25519_seconds), ms(fg->crypto.p256_seconds),
	       fg->count);
}

static void print_table(const struct figures *fg, size_t n)
{
	printf("\n%-19s %7s %13s %6s %6s %6s %13s %6s %7s %7s\n", "variant", "crypto",
	       "server u/s", "ratio", "per-s", "enr/s", "p50/p99 half", "fsync", "RSS", "client");
	printf("%-19s %7s %13s %6s %6s %6s %13s %6s %7s %7s\n", "", "ms", "ms CPU", "x", "CPU",
	       "peak", "ms", "/enr", "KiB", "ms CPU");
	for (size_t i = 0; i < n; i++) {
		char us[32], pp[32];

		if (!fg[i].ran)
			continue;
		snprintf(us, sizeof(us), "%.2f/%.2f", fg[i].user_ms, fg[i].sys_ms);
		if (fg[i].half_ran)
			snprintf(pp, sizeof(pp), "%.1f/%.1f", fg[i].p50, fg[i].p99);
		else
			snprintf(pp, sizeof(pp), "-");
		printf("%-19s %7.3f %13s %6.2f %6.0f %6.0f %13s %6.2f %7llu %7.3f\n", fg[i].v->name,
		       ms(fg[i].crypto.seconds), us,
		       (fg[i].user_ms + fg[i].sys_ms) / ms(fg[i].crypto.seconds),
		       1e3 / (fg[i].user_ms + fg[i].sys_ms), fg[i].rate, pp, fg[i].fdatasyncs,
		       fg[i].rss_kib, fg[i].client_ms);
	}
}

/* X25519 next to P-256: the key exchange alone, and the server's CPU per
 * enrollment when the phones offer one or the other. */
static void print_kx(const struct figures *fg, size_t n)
{
	const struct figures *x = NULL, *p = NULL;

	for (size_t i = 0; i < n; i++) {
		if (!fg[i].ran)
			continue;
		if (!strcmp(fg[i].v->name, "p256-native"))
			x = &fg[i];
		if (!strcmp(fg[i].v->name, "p256-native-kxp256"))
			p = &fg[i];
	}
	if (x == NULL)
		x = p;
	if (x == NULL)
		return;
	printf("\nkey exchange, one server-side ECDHE (crypto alone): X25519 %.3f ms, P-256 %.3f ms\n",
	       ms(x->crypto.x25519_seconds), ms(x->crypto.p256_seconds));
	if (x != p && p != NULL) {
		double a = x->user_ms + x->sys_ms, b = p->user_ms + p->sys_ms;

		printf("server CPU per enrollment, saturated: phones offering X25519 %.3f ms, P-256 "
		       "only %.3f ms (%+.3f ms, %+.1f %%; at different rates)\n",
		       a, b, b - a, 100 * (b / a - 1));
		if (x->half_ran && p->half_ran) {
			a = x->half_user_ms + x->half_sys_ms;
			b = p->half_user_ms + p->half_sys_ms;
			printf("server CPU per enrollment at %.0f/s open loop: X25519 %.3f ms, P-256 "
			       "only %.3f ms (%+.3f ms, %+.1f %%)\n",
			       x->half_target, a, b, b - a, 100 * (b / a - 1));
		}
	}
}

/* ---- --callgrind ---------------------------------------------------------- */

/* "summary: N" (or "totals: N") of a callgrind output file; -1 if none. */
static long long callgrind_total(const char *path)
{
	char line[512];
	long long n = -1;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (!strncmp(line, "summary:", 8) || (n < 0 && !strncmp(line, "totals:", 7)))
			n = atoll(line + (line[0] == 's' ? 8 : 7));
	fclose(f);
	return n;
}

/* Sums the Ir of every callgrind.PID file in dir newer than the
 * zeroing (the dumps callgrind_control -d made). */
static long long callgrind_dumps(const char *dir)
{
	char cmd[1200], line[1200];
	long long sum = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "ls %s/callgrind.*.* 2>/dev/null", dir);
	p = popen(cmd, "r");
	if (p == NULL)
		return -1;
	while (fgets(line, sizeof(line), p) != NULL) {
		long long n;

		line[strcspn(line, "\n")] = '\0';
		n = callgrind_total(line);
		if (n > 0)
			sum += n;
	}
	pclose(p);
	return sum;
}

static int run_callgrind(const struct run *r, const struct variant *v)
{
	struct bench_capfd d;
	struct bench_capfd_opts co = { .rsa = v->rsa, .cpu = -1, .callgrind = true };
	struct bench_load_opts lo = { .name = "callgrind", .prefix = "SEPCG",
				      .count = r->count ? r->count : CALLGRIND_COUNT,
				      .concurrency = 8, .cisco = v->cisco, .rsa = v->rsa,
				      .no_setup = true, .groups = v->groups, .key_file = r->keys,
				      .cpu = -1 };
	struct bench_load_result lr;
	long long server = -1, crypto_ir = -1;
	unsigned rounds = v->rsa ? 20 : 100;
	char out[1200];
	int ret = -1;

	memset(&d, 0, sizeof(d));
	d.pid = -1;
	snprintf(d.build, sizeof(d.build), "%s", r->build);
	snprintf(d.dir, sizeof(d.dir), "%s/cg-%s", r->dir, v->name);
	snprintf(d.mfg, sizeof(d.mfg), "%s/mfg", d.dir);
	printf("%s: callgrind, %lu enrollments (slow)\n", v->name, lo.count);
	if (mkdir(d.dir, 0755) < 0 || bench_make_mfg(&d, v->rsa) < 0 ||
	    bench_capfd_start(&d, &co) < 0)
		return -1;
	if (bench_import(&d, "SEPCG", lo.count, v->rsa, "mic") < 0)
		goto out;
	/* Count the enrollments only: zero every process's counters now, dump after. */
	/* Ours only (capfd and its signer), never another callgrind run of
	 * the machine. */
	bench_run_cmd("for p in %d $(pgrep -P %d); do callgrind_control -z $p; done >/dev/null 2>&1",
		      (int)d.pid, (int)d.pid);
	if (bench_load(&d, &lo, &lr) < 0 || lr.ok == 0)
		goto out;
	bench_run_cmd("for p in %d $(pgrep -P %d); do callgrind_control -d $p; done >/dev/null 2>&1",
		      (int)d.pid, (int)d.pid);
	sleep(2);
	server = callgrind_dumps(d.dir);
	/* The pure crypto, the rounds alone counted. */
	snprintf(out, sizeof(out), "%s/crypto.callgrind", d.dir);
	if (bench_run_cmd("valgrind --tool=callgrind --callgrind-out-file=%s "
			  "--toggle-collect=bench_crypto_rounds %s/capf-bench enroll --crypto-only "
			  "--variant %s --count %u >%s/crypto.out 2>&1",
			  out, r->build, v->name, rounds, d.dir) == 0)
		crypto_ir = callgrind_total(out);
	if (server > 0 && crypto_ir > 0) {
		/* --crypto-only runs rounds x 6 (5 timed + the key exchanges
		 * alone do not count: they are outside bench_crypto_rounds). */
		double per_crypto = (double)crypto_ir / (5.0 * rounds);
		double per_server = (double)server / (double)lr.ok;

		printf("  server           %12.0f instructions per enrollment (capfd and signer)\n",
		       per_server);
		printf("  pure crypto      %12.0f instructions per enrollment\n", per_crypto);
		printf("  ratio            %12.2f\n", per_server / per_crypto);
		printf("{\"bench\":\"enroll-callgrind\",\"variant\":\"%s\",\"server_ir\":%.0f,"
		       "\"crypto_ir\":%.0f,\"ratio\":%.3f,\"count\":%lu}\n",
		       v->name, per_server, per_crypto, per_server / per_crypto, lr.ok);
		printf("  (profiles: %s/callgrind.*; callgrind_annotate shows where)\n", d.dir);
		ret = 0;
	} else {
		fprintf(stderr, BENCH_PROG " enroll: no callgrind totals (server %lld, crypto %lld)\n",
			server, crypto_ir);
	}
out:
	bench_capfd_stop(&d);
	return ret;
}

static int pick(const char *list, bool *on)
{
	char buf[512], *save = NULL, *tok;

	if (strlen(list) >= sizeof(buf))
		return -1;
	strcpy(buf, list);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		size_t i;

		for (i = 0; i < N_VARIANTS; i++)
			if (!strcmp(tok, variants[i].name))
				break;
		if (i == N_VARIANTS)
			return -1;
		on[i] = true;
	}
	return 0;
}

int bench_enroll(int argc, char **argv)
{
	enum { OPT_NO_HALF = 256, OPT_CALLGRIND, OPT_CRYPTO_ONLY, OPT_NO_PERF, OPT_KEY_POOL,
	       OPT_VERIFY_EVERY };
	static const struct option longopts[] = {
		{ "variant", required_argument, NULL, 'v' },
		{ "count", required_argument, NULL, 'n' },
		{ "concurrency", required_argument, NULL, 'c' },
		{ "quick", no_argument, NULL, 'q' },
		{ "no-half", no_argument, NULL, OPT_NO_HALF },
		{ "no-perf", no_argument, NULL, OPT_NO_PERF },
		{ "build", required_argument, NULL, 'b' },
		{ "keys", required_argument, NULL, 'k' },
		{ "callgrind", no_argument, NULL, OPT_CALLGRIND },
		{ "crypto-only", no_argument, NULL, OPT_CRYPTO_ONLY },
		{ "key-pool", required_argument, NULL, OPT_KEY_POOL },
		{ "verify-every", required_argument, NULL, OPT_VERIFY_EVERY },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct run r = { .build = ".", .concurrency = CONCURRENCY_DEFAULT, .half = true,
			 .perf = true, .server_cpu = 0, .client_cpu = 1,
			 .verify_every = VERIFY_EVERY_DEFAULT };
	struct figures fg[N_VARIANTS];
	bool on[N_VARIANTS] = { false }, any = false, callgrind = false, crypto_only = false;
	const char *home = getenv("HOME");
	int c, ret = BENCH_EXIT_OK;

	memset(fg, 0, sizeof(fg));
	optind = 0;
	while ((c = getopt_long(argc, argv, "v:n:c:qb:k:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'v':
			if (pick(optarg, on) < 0)
				return bench_usage_error("enroll", "unknown variant in '%s'", optarg);
			break;
		case 'n':
			r.count = strtoul(optarg, NULL, 10);
			if (r.count == 0 || r.count > 1000000)
				return bench_usage_error("enroll", "--count wants 1..1000000");
			break;
		case 'c':
			r.concurrency = strtoul(optarg, NULL, 10);
			if (r.concurrency == 0 || r.concurrency > 1000)
				return bench_usage_error("enroll", "--concurrency wants 1..1000");
			break;
		case 'q':
			r.quick = true;
			break;
		case OPT_NO_HALF:
			r.half = false;
			break;
		case OPT_NO_PERF:
			r.perf = false;
			break;
		case 'b':
			r.build = optarg;
			break;
		case 'k':
			snprintf(r.keys, sizeof(r.keys), "%s", optarg);
			break;
		case OPT_CALLGRIND:
			callgrind = true;
			break;
		case OPT_CRYPTO_ONLY:
			crypto_only = true;
			break;
		case OPT_KEY_POOL:
			r.key_pool = optarg;
			break;
		case OPT_VERIFY_EVERY:
			if (strtoul(optarg, NULL, 10) == 0)
				return bench_usage_error("enroll", "--verify-every wants 1 or more");
			r.verify_every = optarg;
			break;
		case 'h':
			usage(stdout);
			return BENCH_EXIT_OK;
		default:
			usage(stderr);
			return BENCH_EXIT_USAGE;
		}
	}
	for (size_t i = 0; i < N_VARIANTS; i++)
		any |= on[i];
	if (!any) {
		for (size_t i = 0; i < N_VARIANTS; i++)
			on[i] = !r.quick || i == 0;
	}
	if (crypto_only) {
		for (size_t i = 0; i < N_VARIANTS; i++) {
			struct figures f = { .v = &variants[i] };
			struct run cr = r;

			if (!on[i])
				continue;
			printf("%s:\n", variants[i].name);
			if (r.count) {
				/* Under callgrind: exactly count rounds, 5 times. */
				f.crypto.rsa = f.v->rsa;
				f.crypto.cisco = f.v->cisco;
				f.crypto.x25519 = strcmp(f.v->groups, "p256") != 0;
				if (bench_crypto_measure(&f.crypto, (unsigned)r.count, 5) < 0)
					return BENCH_EXIT_FAIL;
				printf("  pure crypto      %8.3f ms per enrollment\n",
				       ms(f.crypto.seconds));
			} else if (measure_crypto(&cr, &f) < 0) {
				return BENCH_EXIT_FAIL;
			}
		}
		return BENCH_EXIT_OK;
	}
	if (!r.keys[0]) {
		char dir[900];

		snprintf(dir, sizeof(dir), "%s/.cache/capf-bench", home && *home ? home : "/tmp");
		if (bench_run_cmd("mkdir -p '%s'", dir) != 0)
			return BENCH_EXIT_FAIL;
		snprintf(r.keys, sizeof(r.keys), "%s/keys", dir);
	}
	bench_tmp_template(r.dir, sizeof(r.dir), "enroll");
	if (mkdtemp(r.dir) == NULL)
		return BENCH_EXIT_FAIL;
	if (callgrind) {
		for (size_t i = 0; i < N_VARIANTS; i++)
			if (on[i] && run_callgrind(&r, &variants[i]) < 0)
				ret = BENCH_EXIT_FAIL;
		goto out;
	}
	printf("enroll: the server next to the crypto it cannot avoid; capfd on CPU %d, the "
	       "phones on CPU %d\n(the phones' new keys from %s, made once; the machine may be "
	       "shared: compare within a run)\n",
	       r.server_cpu, r.client_cpu, r.keys);
	for (size_t i = 0; i < N_VARIANTS; i++) {
		if (!on[i])
			continue;
		fg[i].v = &variants[i];
		printf("%s:\n", variants[i].name);
		if (measure_crypto(&r, &fg[i]) < 0 || run_variant(&r, &fg[i]) < 0) {
			ret = BENCH_EXIT_FAIL;
			continue;
		}
	}
	print_table(fg, N_VARIANTS);
	print_kx(fg, N_VARIANTS);
	for (size_t i = 0; i < N_VARIANTS; i++)
		if (fg[i].ran)
			print_json(&fg[i]);
out:
	if (callgrind && ret == BENCH_EXIT_OK)
		printf("(the profiles stay in %s: remove it when done)\n", r.dir);
	else if (ret == BENCH_EXIT_OK && bench_run_cmd("rm -rf '%s'", r.dir) != 0)
		fprintf(stderr, BENCH_PROG " enroll: cannot remove %s\n", r.dir);
	else if (ret != BENCH_EXIT_OK)
		fprintf(stderr, BENCH_PROG " enroll: the run's files are in %s\n", r.dir);
	return ret;
}
