/*
 * tools/bench/bench.h - capf-bench, the benchmarks: one subcommand per
 * file (store.c, ...), each registered in the table of tools/bench/main.c.
 * Benchmarks print their figures and the targets they are held to; they
 * assert nothing, since timings depend on the machine.
 */
#ifndef CAPF_TOOLS_BENCH_BENCH_H
#define CAPF_TOOLS_BENCH_BENCH_H

#define BENCH_PROG "capf-bench"

/* Exit statuses: 0 ran, 1 could not run (an error), 2 usage. */
enum bench_exit {
	BENCH_EXIT_OK = 0,
	BENCH_EXIT_FAIL = 1,
	BENCH_EXIT_USAGE = 2,
};

/* A subcommand: `capf-bench NAME [OPTION]...`; argv[0] is NAME. With no
 * options it must run its default benchmark (what `make bench` runs). */
struct bench_command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

/* The subcommands, one per file. */
int bench_store(int argc, char **argv);
int bench_ca(int argc, char **argv);
int bench_enroll(int argc, char **argv);

/* bench_usage_error() - "capf-bench CMD: message" and a hint; returns
 * BENCH_EXIT_USAGE. */
int bench_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* bench_now() - a monotonic clock in seconds. */
double bench_now(void);

/* bench_rss_bytes() - this process's resident set size, from
 * /proc/self/statm; 0 if unknown. */
unsigned long long bench_rss_bytes(void);

#endif /* CAPF_TOOLS_BENCH_BENCH_H */
