/*
 * capf-bench - benchmarks of capf's parts, one subcommand each:
 *
 *   capf-bench store [--records N] [--dir DIR]   the store (tools/bench/store.c)
 *   capf-bench ca [--key-type T] [--seconds S]    issuance next to signing (tools/bench/ca.c)
 *   capf-bench enroll [--variant V] [--quick]     server CPU per enrollment next to its crypto,
 *                                                saturated and at half peak (tools/bench/enroll.c)
 *   capf-bench idle [--connections N]             idle connections' cost (tools/bench/scale.c)
 *   capf-bench rekey [--phones N]                 a cluster re-keyed (tools/bench/scale.c)
 *   capf-bench all                               every benchmark with its defaults
 *
 * A new benchmark is a file with its run function, declared in bench.h and
 * added to the table below; `make bench` runs `capf-bench all`.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tools/bench/bench.h"

static const struct bench_command commands[] = {
	{ "store", "durable writes, group commit, load time and memory per record",
	  bench_store },
	{ "ca", "LSC issuances per second next to raw signatures with the same key",
	  bench_ca },
	{ "enroll", "server CPU per enrollment next to the pure crypto of one, under load",
	  bench_enroll },
	{ "idle", "10,000 idle TLS connections: RSS each, other phones' slowdown", bench_idle },
	{ "rekey", "40,000 phones re-keyed through capfctl schedule, the elapsed time",
	  bench_rekey },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "Usage: " BENCH_PROG " COMMAND [OPTION]...\n"
		   "Measure capf's parts and print the figures next to their targets.\n"
		   "\n"
		   "Commands:\n");
	for (i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "  %-8s %s\n", "all", "every benchmark above with its defaults");
	fprintf(f, "\nEach run works in a new directory under $TMPDIR (when it is at most 60\n"
		   "bytes long; else /tmp), its phones and capfd on this machine only.\n"
		   "'" BENCH_PROG " COMMAND --help' describes a command.\n");
}

int bench_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, BENCH_PROG " %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '" BENCH_PROG " %s --help'.\n", cmd);
	return BENCH_EXIT_USAGE;
}

double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

unsigned long long bench_rss_bytes(void)
{
	unsigned long long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	long page = sysconf(_SC_PAGESIZE);

	if (!f)
		return 0;
	if (fscanf(f, "%llu %llu", &size, &resident) != 2)
		resident = 0;
	fclose(f);
	return resident * (unsigned long long)(page > 0 ? page : 4096);
}

int main(int argc, char **argv)
{
	size_t i;
	int ret = BENCH_EXIT_OK;

	if (argc < 2) {
		usage(stderr);
		return BENCH_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return BENCH_EXIT_OK;
	}
	if (!strcmp(argv[1], "all")) {
		for (i = 0; i < N_COMMANDS; i++) {
			char *args[] = { (char *)commands[i].name, NULL };
			int r;

			printf("== %s\n", commands[i].name);
			fflush(stdout);
			r = commands[i].run(1, args);
			if (r != BENCH_EXIT_OK)
				ret = r;
		}
		return ret;
	}
	for (i = 0; i < N_COMMANDS; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, BENCH_PROG ": unknown command '%s'\nTry '" BENCH_PROG " --help'.\n",
		argv[1]);
	return BENCH_EXIT_USAGE;
}
