/*
 * capf-bench enroll - what one enrollment costs the server, next to the
 * cryptography it cannot avoid, measured in the same run:
 *
 *  1. the pure crypto of one enrollment with the same GnuTLS calls and
 *     key types: three ECDSA P-256 verifications (the MIC chain, the
 *     handshake's CertificateVerify, the CSR), two ECDSA P-256 signatures
 *     (the handshake, the LSC) and one ECDHE on the server's side (a key
 *     share made and one variable-base multiplication; GnuTLS 3.7 has no
 *     ECDH call of its own, so it is timed as one P-256 key generation and
 *     one verification, which costs a little more: the ratio errs against
 *     capfd);
 *  2. capfd with one worker pinned to CPU 0 (its signer too) under
 *     capf-phone load pinned to CPU 1, saturated: enrollments per second,
 *     the server's CPU time per enrollment (capfd and its signer, user and
 *     system, from /proc), its ratio to (1), fdatasyncs per enrollment
 *     (the store's own count), peak RSS.
 *
 * Figures only: the machine is shared, nothing is asserted. One JSON line
 * at the end for scripts.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>

#include "tools/bench/bench.h"

#define COUNT_DEFAULT 2000u
#define CONCURRENCY_DEFAULT 24u

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " BENCH_PROG " enroll [--count N] [--concurrency C] [--build DIR]\n"
		"The pure crypto of one P-256 enrollment, then capfd (one worker, pinned to\n"
		"CPU 0) under capf-phone load (pinned to CPU 1): server CPU per enrollment,\n"
		"its ratio to the crypto, enrollments per second, fdatasyncs per enrollment,\n"
		"peak RSS; also as one JSON line.\n"
		"\n"
		"  -n, --count N        enrollments, default %u\n"
		"  -c, --concurrency C  phones at once, default %u\n"
		"  -b, --build DIR      where capfd, capfctl and capf-phone are, default .\n"
		"  -h, --help           show this help\n",
		COUNT_DEFAULT, CONCURRENCY_DEFAULT);
}

/* ---- 1. the crypto ------------------------------------------------------ */

static int p256(gnutls_privkey_t *key, gnutls_pubkey_t *pub)
{
	if (gnutls_privkey_init(key) < 0 ||
	    gnutls_privkey_generate(*key, GNUTLS_PK_ECDSA,
				    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) < 0 ||
	    gnutls_pubkey_init(pub) < 0 || gnutls_pubkey_import_privkey(*pub, *key, 0, 0) < 0)
		return -1;
	return 0;
}

/* Seconds of CPU for one enrollment's worth of crypto, the best of a few
 * rounds (the least disturbed by the other users of the machine). */
static double crypto_seconds(void)
{
	gnutls_privkey_t key = NULL, tmp = NULL;
	gnutls_pubkey_t pub = NULL;
	uint8_t buf[400];
	gnutls_datum_t data = { buf, sizeof(buf) }, sig = { NULL, 0 };
	double best = 1e9;

	memset(buf, 0x5a, sizeof(buf));
	if (p256(&key, &pub) < 0 ||
	    gnutls_privkey_sign_data2(key, GNUTLS_SIGN_ECDSA_SHA256, 0, &data, &sig) < 0)
		return -1;
	for (int round = 0; round < 5; round++) {
		const int n = 100;
		struct timespec a, b;

		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
		for (int i = 0; i < n; i++) {
			gnutls_datum_t s = { NULL, 0 };

			for (int v = 0; v < 3 + 1; v++) /* 3 verifications + ECDHE's multiplication */
				if (gnutls_pubkey_verify_data2(pub, GNUTLS_SIGN_ECDSA_SHA256, 0, &data,
							       &sig) < 0)
					return -1;
			for (int k = 0; k < 2; k++) {
				if (gnutls_privkey_sign_data2(key, GNUTLS_SIGN_ECDSA_SHA256, 0, &data,
							      &s) < 0)
					return -1;
				gnutls_free(s.data);
				s.data = NULL;
			}
			/* ECDHE: the server's key share. */
			if (gnutls_privkey_init(&tmp) < 0 ||
			    gnutls_privkey_generate(tmp, GNUTLS_PK_ECDSA,
						    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
						    0) < 0)
				return -1;
			gnutls_privkey_deinit(tmp);
		}
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
		double t = ((double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9) / n;
		if (t < best)
			best = t;
	}
	gnutls_free(sig.data);
	gnutls_pubkey_deinit(pub);
	gnutls_privkey_deinit(key);
	return best;
}

/* ---- 2. the server ---------------------------------------------------------- */

/* CPU seconds (user, system) of pid and every descendant now alive. */
static void cpu_of(pid_t pid, double *user, double *sys)
{
	char path[64], buf[1024];
	FILE *f;
	long tick = sysconf(_SC_CLK_TCK);
	unsigned long long ut = 0, st = 0;
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f != NULL) {
		if (fgets(buf, sizeof(buf), f) != NULL) {
			char *p = strrchr(buf, ')');
			/* state ppid pgrp session tty tpgid flags minflt cminflt
			 * majflt cmajflt utime stime */
			if (p != NULL && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
						&ut, &st) == 2) {
				*user += (double)ut / (double)tick;
				*sys += (double)st / (double)tick;
			}
		}
		fclose(f);
	}
	/* Children: the signer. */
	d = opendir("/proc");
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		int ppid = 0, child = atoi(e->d_name);

		if (child <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", child);
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		if (fgets(buf, sizeof(buf), f) != NULL) {
			char *p = strrchr(buf, ')');
			if (p != NULL && sscanf(p + 2, "%*c %d", &ppid) == 1 && ppid == (int)pid) {
				fclose(f);
				cpu_of(child, user, sys);
				continue;
			}
		}
		fclose(f);
	}
	closedir(d);
}

static unsigned long long peak_rss_kib(pid_t pid)
{
	char path[64], line[256];
	unsigned long long kib = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmHWM: %llu", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static pid_t spawn_on(int cpu, char *const argv[], const char *out)
{
	pid_t pid;

	/* What is buffered is printed once, not once more by each child. */
	fflush(stdout);
	fflush(stderr);
	pid = fork();

	if (pid == 0) {
		cpu_set_t set;

		/* Its output (and its log) goes to a file of the run. */
		if (out != NULL && (freopen(out, "w", stdout) == NULL ||
				    dup2(fileno(stdout), STDERR_FILENO) < 0))
			_exit(127);
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		(void)sched_setaffinity(0, sizeof(set), &set);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static int run_wait(pid_t pid)
{
	int st = 0;

	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The store's group commits so far, from capfctl store info. */
static long long syncs_of(const char *build, const char *sock)
{
	char cmd[1024], line[256];
	long long n = -1;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "%s/capfctl -s %s store info 2>/dev/null", build, sock);
	p = popen(cmd, "r");
	if (p == NULL)
		return -1;
	/* "txns written:    N in M group commits" */
	while (fgets(line, sizeof(line), p) != NULL) {
		char *s = strstr(line, " in ");
		if (strncmp(line, "txns written:", 13) == 0 && s != NULL)
			n = atoll(s + 4);
	}
	pclose(p);
	return n;
}

int bench_enroll(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "concurrency", required_argument, NULL, 'c' },
		{ "build", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned count = COUNT_DEFAULT, conc = CONCURRENCY_DEFAULT;
	const char *build = ".";
	char dir[] = "/tmp/capf-bench-enroll-XXXXXX", path[1024], sock[1100], ready[1100];
	char mfg[1100], ca[1100], nstr[16], cstr[16], port[128] = "", out[1100], cmd[2400];
	double crypto, u0 = 0, s0 = 0, u1 = 0, s1 = 0, wall;
	long long sy0, sy1;
	pid_t capfd = -1, load;
	int c, ret = BENCH_EXIT_FAIL;

	optind = 0;
	while ((c = getopt_long(argc, argv, "n:c:b:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			count = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'c':
			conc = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'b':
			build = optarg;
			break;
		case 'h':
			usage(stdout);
			return BENCH_EXIT_OK;
		default:
			usage(stderr);
			return BENCH_EXIT_USAGE;
		}
	}
	if (count == 0 || conc == 0 || count > 1000000 || conc > 1000)
		return bench_usage_error("enroll", "count 1..1000000, concurrency 1..1000");

	printf("enroll: one P-256 enrollment, the server next to the crypto it cannot avoid\n");
	crypto = crypto_seconds();
	if (crypto <= 0) {
		fprintf(stderr, BENCH_PROG " enroll: the crypto measurement failed\n");
		return BENCH_EXIT_FAIL;
	}
	printf("  pure crypto      %8.3f ms per enrollment (3 verifications, 2 signatures, ECDHE)\n",
	       crypto * 1e3);

	if (mkdtemp(dir) == NULL)
		return BENCH_EXIT_FAIL;
	snprintf(mfg, sizeof(mfg), "%s/mfg", dir);
	snprintf(cmd, sizeof(cmd), "%s/capf-phone mkmic --dir %s SEP000000000001 >/dev/null", build,
		 mfg);
	if (system(cmd) != 0)
		goto out;
	snprintf(ready, sizeof(ready), "%s/ready", dir);
	snprintf(path, sizeof(path), "%s/capfd", build);
	snprintf(sock, sizeof(sock), "%s/state/capfd.sock", dir);
	snprintf(ca, sizeof(ca), "%s/state/ca/ca.pem", dir);
	snprintf(out, sizeof(out), "%s/state", dir);
	snprintf(cmd, sizeof(cmd), "%s/mfg-ca.pem", mfg);
	{
		char *av[] = { path, "-d", out, "-l", "127.0.0.1", "-p", "0", "-w", "1", "-m", cmd,
			       "-r", ready, NULL };
		char logf[1100];

		snprintf(logf, sizeof(logf), "%s/capfd.log", dir);
		capfd = spawn_on(0, av, logf);
	}
	for (int i = 0; i < 400; i++) {
		FILE *f = fopen(ready, "r");
		char line[128];
		if (f != NULL) {
			while (fgets(line, sizeof(line), f) != NULL)
				if (strncmp(line, "port=", 5) == 0)
					snprintf(port, sizeof(port), "%s", line + 5);
			fclose(f);
		}
		if (port[0] != '\0')
			break;
		usleep(50000);
	}
	port[strcspn(port, "\n")] = '\0';
	if (port[0] == '\0') {
		fprintf(stderr, BENCH_PROG " enroll: capfd did not start\n");
		goto out;
	}
	snprintf(path, sizeof(path), "%s/capf-phone", build);
	snprintf(nstr, sizeof(nstr), "%u", count);
	snprintf(cstr, sizeof(cstr), "%u", conc);
	snprintf(out, sizeof(out), "%s/load.out", dir);
	sy0 = syncs_of(build, sock);
	cpu_of(capfd, &u0, &s0);
	wall = bench_now();
	{
		char *av[] = { path, "load", "--count", nstr, "--concurrency", cstr, "--mfg-dir", mfg,
			       "--ca", ca, "--socket", sock, "--host", "127.0.0.1", "--port", port,
			       "--timeout", "120", NULL };
		load = spawn_on(1, av, out);
	}
	if (run_wait(load) != 0) {
		fprintf(stderr, BENCH_PROG " enroll: the load failed (see %s)\n", out);
		goto out;
	}
	wall = bench_now() - wall;
	cpu_of(capfd, &u1, &s1);
	sy1 = syncs_of(build, sock);
	{
		double cpu = (u1 - u0) + (s1 - s0), per = cpu / count;
		double syncs = sy0 >= 0 && sy1 >= sy0 ? (double)(sy1 - sy0) / count : -1;
		unsigned long long rss = peak_rss_kib(capfd);

		printf("  server           %8.3f ms CPU per enrollment (user %.3f, system %.3f; capfd "
		       "and its signer)\n",
		       per * 1e3, (u1 - u0) / count * 1e3, (s1 - s0) / count * 1e3);
		printf("  ratio            %8.2f x the pure crypto (target 1.15)\n", per / crypto);
		printf("  per CPU-second   %8.0f enrollments (target 1100)\n", 1.0 / per);
		printf("  rate             %8.0f enrollments/s (client on the other core, %u at once)\n",
		       count / wall, conc);
		printf("  group commits    %8.2f per enrollment (target 1 or less)\n", syncs);
		printf("  peak RSS         %8llu KiB (capfd)\n", rss);
		printf("{\"bench\":\"enroll\",\"crypto_ms\":%.4f,\"server_cpu_ms\":%.4f,\"ratio\":%.3f,"
		       "\"per_cpu_second\":%.1f,\"rate\":%.1f,\"syncs_per_enrollment\":%.3f,"
		       "\"peak_rss_kib\":%llu,\"count\":%u,\"concurrency\":%u}\n",
		       crypto * 1e3, per * 1e3, per / crypto, 1.0 / per, count / wall, syncs, rss,
		       count, conc);
	}
	ret = BENCH_EXIT_OK;
out:
	if (capfd > 0) {
		kill(capfd, SIGTERM);
		run_wait(capfd);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, BENCH_PROG " enroll: cannot remove %s\n", dir);
	return ret;
}
