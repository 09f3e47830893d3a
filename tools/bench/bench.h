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
int bench_idle(int argc, char **argv);
int bench_rekey(int argc, char **argv);

/* bench_usage_error() - "capf-bench CMD: message" and a hint; returns
 * BENCH_EXIT_USAGE. */
int bench_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* bench_now() - a monotonic clock in seconds. */
double bench_now(void);

/* bench_rss_bytes() - this process's resident set size, from
 * /proc/self/statm; 0 if unknown. */
unsigned long long bench_rss_bytes(void);

/* ---- crypto.c: the pure crypto of one enrollment ---- */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct bench_crypto {
	/* in */
	bool rsa;            /* RSA-2048 CA, MICs and keys; else P-256 */
	bool cisco;          /* Cisco v3: no CSR, the MIC signs the name */
	bool x25519;         /* the key exchange; else P-256 ECDHE */
	/* out */
	int verifications, signatures;
	double seconds;      /* CPU seconds of one enrollment's crypto */
	double x25519_seconds, p256_seconds; /* one server-side ECDHE of each */
};

/*
 * bench_crypto_measure() - time the crypto of one enrollment of the kind
 * v says: the best of repeats runs of rounds_each enrollments' worth.
 * Returns 0 or -1 (a GnuTLS call failed).
 */
int bench_crypto_measure(struct bench_crypto *v, unsigned rounds_each, unsigned repeats);

/* bench_crypto_describe() - "3 verifications (...), 2 signatures (...), one X25519 ECDHE". */
void bench_crypto_describe(const struct bench_crypto *v, char *buf, size_t len);

/* ---- proc.c: the processes a benchmark runs ---- */

/* bench_spawn() - fork and exec argv on CPU cpu (-1: any), stdout and
 * stderr to out (NULL: inherited). Returns the pid or -1. */
pid_t bench_spawn(int cpu, char *const argv[], const char *out);

/* bench_wait() - wait for pid; its exit status, or -1 (killed, no such child). */
int bench_wait(pid_t pid);

/* bench_stop() - SIGTERM to pid (a child of ours), then wait for it
 * (SIGKILL after timeout_s). */
void bench_stop(pid_t pid, double timeout_s);

/* bench_cpu_of() - add the user and system CPU seconds of pid and every
 * descendant alive to *user and *sys. */
void bench_cpu_of(pid_t pid, double *user, double *sys);

/* bench_proc_kib() - a "Name:  N kB" line of /proc/PID/status (VmHWM,
 * VmRSS), of pid and its descendants added; 0 if unknown. */
unsigned long long bench_proc_kib(pid_t pid, const char *name, bool children);

/* bench_ctxt_switches() - the context switches, voluntary and not, of
 * every thread of pid and of its children (capfd's workers, store writer
 * and signer): how often the work of one enrollment waits or is woken. */
unsigned long long bench_ctxt_switches(pid_t pid);

/* bench_tmp_template() - "DIR/capf-bench-WHAT-XXXXXX" for mkdtemp() in buf
 * (len bytes), DIR $TMPDIR when it is set and short enough for the UNIX
 * sockets made under it (60 bytes at most), else /tmp. Returns buf. */
char *bench_tmp_template(char *buf, size_t len, const char *what);

/* bench_raise_nofile() - the soft RLIMIT_NOFILE raised to want (or to the
 * hard limit when that is lower); the limit now. */
unsigned long bench_raise_nofile(unsigned long want);

/* bench_run_cmd() - run a shell command; its exit status. */
int bench_run_cmd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* CAPF_TOOLS_BENCH_BENCH_H */
