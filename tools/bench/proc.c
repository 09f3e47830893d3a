/*
 * capf-bench: the processes a benchmark runs (capfd, capf-phone, capfctl)
 * and what /proc says of them.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tools/bench/bench.h"

pid_t bench_spawn(int cpu, char *const argv[], const char *out)
{
	pid_t pid;

	/* What is buffered is printed once, not once more by each child. */
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0) {
		if (out != NULL && (freopen(out, "w", stdout) == NULL ||
				    dup2(fileno(stdout), STDERR_FILENO) < 0))
			_exit(127);
		if (cpu >= 0) {
			cpu_set_t set;

			CPU_ZERO(&set);
			CPU_SET(cpu, &set);
			(void)sched_setaffinity(0, sizeof(set), &set);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

int bench_wait(pid_t pid)
{
	int st = 0;

	if (pid <= 0)
		return -1;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void bench_stop(pid_t pid, double timeout_s)
{
	int st;

	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (double t = 0; t < timeout_s; t += 0.05) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return;
		usleep(50000);
	}
	kill(pid, SIGKILL);
	(void)bench_wait(pid);
}

/* The parent pid and, when wanted, utime and stime (ticks) of pid. */
static int stat_of(int pid, int *ppid, unsigned long long *ut, unsigned long long *st)
{
	char path[64], buf[1024], *p;
	FILE *f;
	int ok = -1;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	if (fgets(buf, sizeof(buf), f) != NULL && (p = strrchr(buf, ')')) != NULL &&
	    sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", ppid, ut, st) == 3)
		ok = 0;
	fclose(f);
	return ok;
}

/* The children of pid, into kids (up to n); how many. */
static size_t children_of(pid_t pid, int *kids, size_t n)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	size_t k = 0;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL && k < n) {
		int child = atoi(e->d_name), ppid = 0;
		unsigned long long ut, st;

		if (child > 0 && stat_of(child, &ppid, &ut, &st) == 0 && ppid == (int)pid)
			kids[k++] = child;
	}
	closedir(d);
	return k;
}

void bench_cpu_of(pid_t pid, double *user, double *sys)
{
	long tick = sysconf(_SC_CLK_TCK);
	unsigned long long ut = 0, st = 0;
	int ppid, kids[16];
	size_t n;

	if (stat_of((int)pid, &ppid, &ut, &st) == 0) {
		*user += (double)ut / (double)tick;
		*sys += (double)st / (double)tick;
	}
	n = children_of(pid, kids, 16);
	for (size_t i = 0; i < n; i++)
		bench_cpu_of(kids[i], user, sys);
}

unsigned long long bench_ctxt_switches(pid_t pid)
{
	unsigned long long n = 0, v;
	char path[80], line[256];
	struct dirent *e;
	int kids[16];
	size_t nk;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (d != NULL) {
		while ((e = readdir(d)) != NULL) {
			FILE *f;

			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/%d/task/%.20s/status", (int)pid,
				 e->d_name);
			f = fopen(path, "r");
			if (f == NULL)
				continue; /* the thread has just ended */
			while (fgets(line, sizeof(line), f) != NULL)
				if ((sscanf(line, "voluntary_ctxt_switches: %llu", &v) == 1 ||
				     sscanf(line, "nonvoluntary_ctxt_switches: %llu", &v) == 1))
					n += v;
			fclose(f);
		}
		closedir(d);
	}
	nk = children_of(pid, kids, 16);
	for (size_t i = 0; i < nk; i++)
		n += bench_ctxt_switches(kids[i]);
	return n;
}

unsigned long long bench_proc_kib(pid_t pid, const char *name, bool children)
{
	char path[64], line[256], want[40];
	unsigned long long kib = 0, v;
	size_t nl = strlen(name);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	snprintf(want, sizeof(want), "%s:", name);
	f = fopen(path, "r");
	if (f != NULL) {
		while (fgets(line, sizeof(line), f) != NULL)
			if (!strncmp(line, want, nl + 1) && sscanf(line + nl + 1, "%llu", &v) == 1) {
				kib = v;
				break;
			}
		fclose(f);
	}
	if (children) {
		int kids[16];
		size_t n = children_of(pid, kids, 16);

		for (size_t i = 0; i < n; i++)
			kib += bench_proc_kib(kids[i], name, true);
	}
	return kib;
}

char *bench_tmp_template(char *buf, size_t len, const char *what)
{
	const char *t = getenv("TMPDIR");

	if (t == NULL || t[0] != '/' || strlen(t) > 60)
		t = "/tmp";
	snprintf(buf, len, "%s/capf-bench-%s-XXXXXX", t, what);
	return buf;
}

unsigned long bench_raise_nofile(unsigned long want)
{
	struct rlimit r;

	if (getrlimit(RLIMIT_NOFILE, &r) < 0)
		return 0;
	if (r.rlim_cur < want) {
		r.rlim_cur = r.rlim_max != RLIM_INFINITY && r.rlim_max < want ? r.rlim_max : want;
		(void)setrlimit(RLIMIT_NOFILE, &r);
		(void)getrlimit(RLIMIT_NOFILE, &r);
	}
	return (unsigned long)r.rlim_cur;
}

int bench_run_cmd(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	fflush(stdout);
	fflush(stderr);
	st = system(cmd);
	return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
