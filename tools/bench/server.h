/*
 * tools/bench/server.h - a capfd of a benchmark's own and the capf-phone
 * loads run against it (tools/bench/server.c), shared by enroll.c and
 * scale.c.
 */
#ifndef CAPF_TOOLS_BENCH_SERVER_H
#define CAPF_TOOLS_BENCH_SERVER_H

#include <stdbool.h>
#include <sys/types.h>

/* A capfd of the benchmark. Set build and dir (the run's directory,
 * which holds mfg/, state/, capfd.conf, the outputs), then start it. */
struct bench_capfd {
	char build[1024];   /* where capfd, capfctl and capf-phone are */
	char dir[1024];
	char mfg[1100];     /* the test manufacturer CA: dir/mfg */
	char state[1100], sock[1100], ca[1100];
	char port[16], cisco_port[16];
	pid_t pid;
};

struct bench_capfd_opts {
	bool rsa;                 /* an RSA-2048 CAPF CA; else P-256 */
	unsigned workers;         /* 0 = 1 */
	int cpu;                  /* the core it (and its signer) runs on; -1 any */
	unsigned max_connections; /* also max_per_source; 0 = 10000 and 1024 */
	unsigned idle_timeout;    /* 0 = 30 s */
	bool callgrind;           /* under valgrind --tool=callgrind, children too */
};

/* bench_make_mfg() - a test manufacturer CA in d->mfg, RSA-2048 or P-256. */
int bench_make_mfg(const struct bench_capfd *d, bool rsa);

/* bench_capfd_start() - a fresh state, the config, capfd started and its
 * ports read from its ready file. Returns 0 or -1 (said on stderr). */
int bench_capfd_start(struct bench_capfd *d, const struct bench_capfd_opts *o);

/* bench_capfd_stop() - SIGTERM to our capfd and wait for it. */
void bench_capfd_stop(struct bench_capfd *d);

/* bench_capfd_metric() - one counter of capfctl stats --prometheus, -1 if absent. */
double bench_capfd_metric(const struct bench_capfd *d, const char *name);

/* bench_import() - PREFIX000001.. PREFIXn through capfctl bulk import:
 * install, authentication auth ("mic", ...), P-256 or RSA-2048. */
int bench_import(const struct bench_capfd *d, const char *prefix, unsigned long n, bool rsa,
		 const char *auth);

struct bench_load_opts {
	const char *name;     /* its output is dir/NAME.load.out */
	const char *prefix;
	unsigned long count, concurrency;
	double rate;          /* open loop; 0 closed */
	bool cisco, rsa, no_setup;
	const char *groups;   /* --groups, NULL: capf-phone's default */
	const char *key_file, *lsc_out, *lsc_in;
	const char *key_pool; /* --key-pool, NULL: capf-phone's default */
	const char *verify_every; /* --verify-every, NULL: capf-phone's default (all) */
	int cpu;
	unsigned timeout;     /* seconds after which no enrollment starts; 0 = 300 */
};

struct bench_load_result {
	bool have;
	unsigned long ok, failed, x25519, secp256r1;
	double wall, rate, p50, p99, client_user_ms, client_sys_ms;
};

/* bench_load() - run capf-phone load and read its JSON line. Returns 0,
 * 1 (it ran, some phones failed) or -1. */
int bench_load(const struct bench_capfd *d, const struct bench_load_opts *o,
	       struct bench_load_result *r);

/* bench_perf_start() - perf stat counting our capfd's fdatasync calls
 * into out; -1 when perf is not there. bench_perf_stop() - stop it and
 * read the count, -1 if unknown. */
pid_t bench_perf_start(const struct bench_capfd *d, const char *out);
long long bench_perf_stop(pid_t perf, const char *out);

#endif /* CAPF_TOOLS_BENCH_SERVER_H */
