/*
 * capf-bench idle, capf-bench rekey - capfd at scale, phones simulated on
 * the same machine:
 *
 *   idle   N simultaneous idle TLS connections (handshake done, no Hello)
 *          held by one capf-phone load --idle: capfd's RSS per connection
 *          (target 16 KiB or less) and the slowdown of other phones'
 *          enrollments meanwhile (target under 10 %), next to the same
 *          enrollments without them in the same run. RLIMIT_NOFILE is
 *          raised for capfd and the phones, and capfd's [limits] allow N.
 *   rekey  a cluster of N phones (40,000): bulk-imported, enrolled once by
 *          their MICs, then all re-keyed by their LSCs through
 *          capfctl schedule --where (one query), with the elapsed time of
 *          the re-key (target under 60 s).
 */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/bench/bench.h"
#include "tools/bench/server.h"

#define IDLE_DEFAULT 10000ul
#define IDLE_ENROLL_COUNT 1000ul
#define REKEY_DEFAULT 40000ul
#define REKEY_CONCURRENCY 64ul
#define REKEY_TIME_DEFAULT 300ul /* seconds after which no re-key starts */

static int setup_dir(struct bench_capfd *d, const char *build, const char *what)
{
	memset(d, 0, sizeof(*d));
	d->pid = -1;
	snprintf(d->build, sizeof(d->build), "%s", build);
	bench_tmp_template(d->dir, sizeof(d->dir), what);
	if (mkdtemp(d->dir) == NULL)
		return -1;
	snprintf(d->mfg, sizeof(d->mfg), "%s/mfg", d->dir);
	return bench_make_mfg(d, false);
}

static void finish_dir(const struct bench_capfd *d, int ret)
{
	if (ret == BENCH_EXIT_OK)
		(void)bench_run_cmd("rm -rf '%s'", d->dir);
	else
		fprintf(stderr, BENCH_PROG ": the run's files are in %s\n", d->dir);
}

/* Waits until the file holds a line starting with prefix (or the process
 * is gone, or timeout_s passed); 0 when it does. */
static int wait_line(const char *path, const char *prefix, pid_t pid, double timeout_s,
		     char *line, size_t len)
{
	for (double t = 0; t < timeout_s; t += 0.2) {
		FILE *f = fopen(path, "r");

		if (f != NULL) {
			while (fgets(line, (int)len, f) != NULL)
				if (!strncmp(line, prefix, strlen(prefix))) {
					fclose(f);
					return 0;
				}
			fclose(f);
		}
		if (kill(pid, 0) < 0)
			return -1;
		usleep(200000);
	}
	return -1;
}

/* One closed-loop load of count phones and the server CPU it took. */
static int measured_load(struct bench_capfd *d, const char *name, const char *prefix,
			 unsigned long count, double *cpu_ms, struct bench_load_result *lr)
{
	struct bench_load_opts lo = { .name = name, .prefix = prefix, .count = count,
				      .concurrency = 32, .no_setup = true, .cpu = 1 };
	double u0 = 0, s0 = 0, u1 = 0, s1 = 0;

	if (bench_import(d, prefix, count, false, "mic") < 0)
		return -1;
	bench_cpu_of(d->pid, &u0, &s0);
	if (bench_load(d, &lo, lr) < 0 || lr->ok == 0)
		return -1;
	bench_cpu_of(d->pid, &u1, &s1);
	*cpu_ms = ((u1 - u0) + (s1 - s0)) * 1e3 / (double)lr->ok;
	return 0;
}

int bench_idle(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "connections", required_argument, NULL, 'n' },
		{ "count", required_argument, NULL, 'e' },
		{ "build", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long n = IDLE_DEFAULT, count = IDLE_ENROLL_COUNT, lim;
	const char *build = ".";
	struct bench_capfd d;
	struct bench_capfd_opts co = { .cpu = 0, .idle_timeout = 900 };
	struct bench_load_result base, with;
	double base_cpu = 0, with_cpu = 0;
	unsigned long long rss0, rss1;
	char path[1100], holder_out[1200], nstr[24], line[512];
	pid_t holder = -1;
	int c, ret = BENCH_EXIT_FAIL;

	optind = 0;
	while ((c = getopt_long(argc, argv, "n:e:b:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			n = strtoul(optarg, NULL, 10);
			if (n == 0 || n > 500000)
				return bench_usage_error("idle", "--connections wants 1..500000");
			break;
		case 'e':
			count = strtoul(optarg, NULL, 10);
			if (count == 0 || count > 100000)
				return bench_usage_error("idle", "--count wants 1..100000");
			break;
		case 'b':
			build = optarg;
			break;
		case 'h':
			printf("Usage: " BENCH_PROG " idle [--connections N] [--count M] [--build DIR]\n"
			       "N idle TLS connections to capfd (after the handshake, before Hello;\n"
			       "default %lu): capfd's RSS per connection, and M enrollments (default\n"
			       "%lu) of other phones with and without them.\n",
			       IDLE_DEFAULT, IDLE_ENROLL_COUNT);
			return BENCH_EXIT_OK;
		default:
			return bench_usage_error("idle", "bad option");
		}
	}
	/* capfd and the phones each hold N descriptors, and some more. */
	lim = bench_raise_nofile(n + 2048);
	printf("idle: %lu idle TLS connections; RLIMIT_NOFILE raised to %lu for capfd and the "
	       "phones%s\n",
	       n, lim, lim < n + 100 ? " (the hard limit: too low, expect failures)" : "");
	co.max_connections = (unsigned)(n + 1024);
	if (setup_dir(&d, build, "idle") < 0 || bench_capfd_start(&d, &co) < 0)
		goto out;
	printf("  capfd: [limits] max_connections = max_per_source = %u, idle_timeout = %u s\n",
	       co.max_connections, co.idle_timeout);
	if (measured_load(&d, "base", "SEPBASE", count, &base_cpu, &base) < 0)
		goto out;
	printf("  without them     %8.0f enrollments/s, %.3f ms server CPU each, p50 %.1f ms\n",
	       base.rate, base_cpu, base.p50);
	rss0 = bench_proc_kib(d.pid, "VmRSS", false);
	snprintf(path, sizeof(path), "%s/capf-phone", d.build);
	snprintf(holder_out, sizeof(holder_out), "%s/idle.out", d.dir);
	snprintf(nstr, sizeof(nstr), "%lu", n);
	{
		char *av[] = { path, "load", "--idle", nstr, "--concurrency", "16", "--hold", "900",
			       "--mfg-dir", d.mfg, "--ca", d.ca, "--socket", d.sock, "--port", d.port,
			       "--prefix", "SEPIDLE", NULL };

		holder = bench_spawn(1, av, holder_out);
	}
	if (wait_line(holder_out, "idle: ", holder, 600, line, sizeof(line)) < 0) {
		fprintf(stderr, BENCH_PROG " idle: the connections did not open (see %s)\n",
			holder_out);
		goto out;
	}
	printf("  %s", line);
	sleep(1);
	rss1 = bench_proc_kib(d.pid, "VmRSS", false);
	printf("  capfd RSS        %8llu KiB before, %llu KiB with them: %.1f KiB per connection "
	       "(target 16)\n",
	       rss0, rss1, rss1 > rss0 ? (double)(rss1 - rss0) / (double)n : 0.0);
	if (measured_load(&d, "with", "SEPWITH", count, &with_cpu, &with) < 0)
		goto out;
	printf("  with them        %8.0f enrollments/s, %.3f ms server CPU each, p50 %.1f ms\n",
	       with.rate, with_cpu, with.p50);
	printf("  slowdown         %+7.1f %% server CPU per enrollment, %+.1f %% enrollments/s "
	       "(target under 10 %%)\n",
	       100 * (with_cpu / base_cpu - 1), 100 * (with.rate / base.rate - 1));
	printf("{\"bench\":\"idle\",\"connections\":%lu,\"rss_before_kib\":%llu,\"rss_with_kib\":%llu,"
	       "\"kib_per_connection\":%.2f,\"base_rate\":%.1f,\"with_rate\":%.1f,"
	       "\"base_cpu_ms\":%.4f,\"with_cpu_ms\":%.4f,\"base_p50_ms\":%.2f,\"with_p50_ms\":%.2f,"
	       "\"nofile\":%lu}\n",
	       n, rss0, rss1, rss1 > rss0 ? (double)(rss1 - rss0) / (double)n : 0.0, base.rate,
	       with.rate, base_cpu, with_cpu, base.p50, with.p50, lim);
	ret = BENCH_EXIT_OK;
out:
	if (holder > 0)
		bench_stop(holder, 30);
	bench_capfd_stop(&d);
	finish_dir(&d, ret);
	return ret;
}

int bench_rekey(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "phones", required_argument, NULL, 'n' },
		{ "concurrency", required_argument, NULL, 'c' },
		{ "build", required_argument, NULL, 'b' },
		{ "time", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long n = REKEY_DEFAULT, conc = REKEY_CONCURRENCY, bound = REKEY_TIME_DEFAULT;
	const char *build = ".";
	struct bench_capfd d;
	struct bench_capfd_opts co = { .cpu = -1, .workers = 2, .max_connections = 4096 };
	struct bench_load_result first, again;
	char lscs[1200];
	double t0, t_import, t_enroll, t_sched, t_rekey, su0 = 0, ss0 = 0, su1 = 0, ss1 = 0;
	double server_ms, client_ms, ceiling;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int c, ret = BENCH_EXIT_FAIL;

	optind = 0;
	while ((c = getopt_long(argc, argv, "n:c:b:t:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			n = strtoul(optarg, NULL, 10);
			if (n == 0 || n > 1000000)
				return bench_usage_error("rekey", "--phones wants 1..1000000");
			break;
		case 't':
			bound = strtoul(optarg, NULL, 10);
			if (bound == 0 || bound > 86400)
				return bench_usage_error("rekey", "--time wants 1..86400 seconds");
			break;
		case 'c':
			conc = strtoul(optarg, NULL, 10);
			if (conc == 0 || conc > 4000)
				return bench_usage_error("rekey", "--concurrency wants 1..4000");
			break;
		case 'b':
			build = optarg;
			break;
		case 'h':
			printf("Usage: " BENCH_PROG " rekey [--phones N] [--concurrency C] [--time S]\n"
			       "         [--build DIR]\n"
			       "A cluster of N phones (default %lu) bulk-imported and enrolled once,\n"
			       "then re-keyed by their LSCs through one capfctl schedule --where:\n"
			       "the elapsed time of the re-key (target under 60 s). No re-key starts\n"
			       "after S seconds (default %lu): then it says how many were done.\n",
			       REKEY_DEFAULT, REKEY_TIME_DEFAULT);
			return BENCH_EXIT_OK;
		default:
			return bench_usage_error("rekey", "bad option");
		}
	}
	(void)bench_raise_nofile(conc + 1024);
	printf("rekey: %lu phones on this machine, capfd with 2 workers, %lu phones at once (the "
	       "phones verify 1 LSC signature in 16)\n",
	       n, conc);
	if (setup_dir(&d, build, "rekey") < 0 || bench_capfd_start(&d, &co) < 0)
		goto out;
	snprintf(lscs, sizeof(lscs), "%s/lscs", d.dir);
	t0 = bench_now();
	if (bench_import(&d, "SEPRK", n, false, "mic") < 0) {
		fprintf(stderr, BENCH_PROG " rekey: the bulk import failed (see %s/import.out)\n",
			d.dir);
		goto out;
	}
	t_import = bench_now() - t0;
	printf("  bulk import      %8.1f s for %lu devices\n", t_import, n);
	{
		struct bench_load_opts lo = { .name = "first", .prefix = "SEPRK", .count = n,
					      .concurrency = conc, .no_setup = true,
					      .lsc_out = lscs, .cpu = -1, .timeout = 1800,
					      .verify_every = "16" };

		t0 = bench_now();
		if (bench_load(&d, &lo, &first) != 0)
			goto out;
		t_enroll = bench_now() - t0;
		printf("  first enrollment %8.1f s (%.0f enrollments/s in the phones' own "
		       "count, MIC)\n",
		       t_enroll, first.rate);
	}
	t0 = bench_now();
	if (bench_run_cmd("%s/capfctl -s '%s' schedule --op install --auth lsc-or-mic "
			  "--where 'name prefix SEPRK' >'%s/schedule.out' 2>&1",
			  d.build, d.sock, d.dir) != 0) {
		fprintf(stderr, BENCH_PROG " rekey: capfctl schedule failed (see %s/schedule.out)\n",
			d.dir);
		goto out;
	}
	t_sched = bench_now() - t0;
	printf("  schedule         %8.1f s (capfctl schedule --op install --auth lsc-or-mic "
	       "--where 'name prefix SEPRK')\n",
	       t_sched);
	{
		struct bench_load_opts lo = { .name = "rekey", .prefix = "SEPRK", .count = n,
					      .concurrency = conc, .no_setup = true,
					      .lsc_in = lscs, .cpu = -1, .timeout = (unsigned)bound,
					      .verify_every = "16" };
		double t1 = bench_now();
		int lr;

		bench_cpu_of(d.pid, &su0, &ss0);
		lr = bench_load(&d, &lo, &again);
		t_rekey = bench_now() - t1;
		bench_cpu_of(d.pid, &su1, &ss1);
		if (lr < 0)
			goto out;
		if (lr > 0) {
			printf("  re-key           NOT DONE: %lu of %lu phones re-keyed when the time "
			       "bound (%lu s) stopped it, %.1f s in all (%.0f re-keys/s)\n",
			       again.ok, n, bound, t_rekey, again.rate);
			printf("{\"bench\":\"rekey\",\"phones\":%lu,\"import_s\":%.2f,\"enroll_s\":%.2f,"
			       "\"schedule_s\":%.2f,\"rekey_s\":%.2f,\"rekeyed\":%lu,\"done\":false}\n",
			       n, t_import, t_enroll, t_sched, t_rekey, again.ok);
			goto out;
		}
	}
	printf("  re-key           %8.1f s for the phones (by their LSCs; %.0f enrollments/s, "
	       "p50 %.0f ms, p99 %.0f ms)\n",
	       t_rekey, again.rate, again.p50, again.p99);
	printf("  elapsed          %8.1f s from the schedule to the last phone re-keyed (target "
	       "60)\n",
	       t_sched + t_rekey);
	/* What the machine allows: the CPU one re-key costs both sides,
	 * spread over its cores. */
	server_ms = again.ok ? ((su1 - su0) + (ss1 - ss0)) * 1e3 / (double)again.ok : 0;
	client_ms = again.client_user_ms + again.client_sys_ms;
	ceiling = server_ms + client_ms > 0 ? (double)(ncpu > 0 ? ncpu : 1) * 1e3 /
						      (server_ms + client_ms)
					    : 0;
	printf("  CPU per re-key   %8.3f ms capfd and its signer, %.3f ms the phones: at most "
	       "%.0f re-keys/s on %ld cores, %.0f s for %lu\n",
	       server_ms, client_ms, ceiling, ncpu, ceiling > 0 ? (double)n / ceiling : 0, n);
	printf("{\"bench\":\"rekey\",\"phones\":%lu,\"import_s\":%.2f,\"enroll_s\":%.2f,"
	       "\"schedule_s\":%.2f,\"rekey_s\":%.2f,\"elapsed_s\":%.2f,\"rekey_rate\":%.1f,"
	       "\"p50_ms\":%.1f,\"p99_ms\":%.1f,\"server_cpu_ms\":%.4f,\"client_cpu_ms\":%.4f,"
	       "\"ceiling_rate\":%.1f,\"done\":true}\n",
	       n, t_import, t_enroll, t_sched, t_rekey, t_sched + t_rekey, again.rate, again.p50,
	       again.p99, server_ms, client_ms, ceiling);
	ret = BENCH_EXIT_OK;
out:
	bench_capfd_stop(&d);
	finish_dir(&d, ret);
	return ret;
}
