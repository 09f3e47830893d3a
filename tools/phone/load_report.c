/*
 * capf-phone load: what a run measured and how it is printed: the
 * server's CPU (from /proc, when capfd runs here), the results, latency
 * percentiles, the TLS groups used, the simulator's own CPU, the JSON line.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/phone/load.h"
#include "tools/stats.h"

#define LOAD_BENCH_SECONDS 0.5

/* Reads the start of /proc/PID/NAME into buf as a string; -1 if it cannot
 * be opened. */
static int proc_read(uint32_t pid, const char *name, char *buf, size_t len)
{
	char path[64];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%u/%s", pid, name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = '\0';
	return 0;
}

/* utime + stime of a local process in ms, or -1 when it cannot be read or
 * is not a capfd (the server may run on another machine). */
double load_proc_cpu_ms(uint32_t pid)
{
	char buf[1024], *p;
	unsigned long long utime, stime;
	long hz = sysconf(_SC_CLK_TCK);
	int i;

	if (pid == 0 || hz <= 0)
		return -1;
	if (proc_read(pid, "comm", buf, sizeof(buf)) < 0 || strncmp(buf, "capfd", 5) != 0)
		return -1;
	if (proc_read(pid, "stat", buf, sizeof(buf)) < 0)
		return -1;
	/* The command name may hold spaces and parentheses: start after the last ')'. */
	p = strrchr(buf, ')');
	if (!p)
		return -1;
	p++;
	/* Fields after the name: state is field 3, utime 14, stime 15. */
	for (i = 3; i < 14; i++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return -1;
	}
	if (sscanf(p, " %llu %llu", &utime, &stime) != 2)
		return -1;
	return (double)(utime + stime) * 1000.0 / (double)hz;
}

/* The server's pid from the admin status, 0 if unknown. */
uint32_t load_server_pid(const char *socket_path)
{
	Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
	Capf__StatusRequest st = CAPF__STATUS_REQUEST__INIT;
	Capf__AdminResponse *resp = NULL;
	struct client_admin a;
	uint32_t pid = 0;

	if (client_admin_open(&a, socket_path, 5000) < 0)
		return 0;
	req.body_case = CAPF__ADMIN_REQUEST__BODY_STATUS;
	req.status = &st;
	if (client_admin_call(&a, &req, &resp) == 0 && resp->code == 0 && resp->status)
		pid = resp->status->pid;
	if (resp)
		capf__admin_response__free_unpacked(resp, NULL);
	client_admin_close(&a);
	return pid;
}

/* Key + CSR operations per second on this machine, one thread: what each
 * simulated phone pays before the server does any work. */
double load_key_csr_rate(void)
{
	static const uint8_t binding[CLIENT_BINDING_LEN] = { 0 };
	double start = phone_now(), now = start;
	unsigned long n = 0;

	while (now - start < LOAD_BENCH_SECONDS) {
		gnutls_x509_privkey_t key = NULL;
		uint8_t *der = NULL;
		size_t len = 0;
		int ret;

		ret = pki_gen_key(CAPF__KEY_TYPE__KEY_EC_P256, &key);
		if (ret == 0)
			ret = pki_make_csr(key, "SEPBENCH00000000", binding, sizeof(binding), &der,
					   &len);
		free(der);
		if (key)
			gnutls_x509_privkey_deinit(key);
		if (ret < 0)
			return -1;
		n++;
		now = phone_now();
	}
	return (double)n / (now - start);
}

/* A failure's name: the capf name, or the errno text for system errors
 * that capf has no name for (e.g. "Connection refused"). */
static const char *fail_name(int code)
{
	const char *name = capf_errname(code);

	if (!strcmp(name, "CAPF_EUNKNOWN") && code < 0 && code > -1000)
		return strerror(-code);
	return name;
}

void load_report(const struct load *l, double wall, double cpu_ms, uint32_t pid,
		   const struct load_cpu *own)
{
	unsigned long groups[2] = { 0, 0 }; /* X25519, secp256r1 */
	struct stats_pct lat = { 0, 0, 0, 0 };
	struct {
		int code;
		unsigned long n;
	} fails[64];
	size_t nfails = 0, k, nok = 0;
	unsigned long failed = 0, not_started = 0, other = 0;
	double *ok_lat = malloc(sizeof(double) * (l->count ? l->count : 1));
	double rate;
	unsigned long i;

	for (i = 0; i < l->count; i++) {
		if (l->group[i] == GNUTLS_GROUP_X25519)
			groups[0]++;
		else if (l->group[i] == GNUTLS_GROUP_SECP256R1)
			groups[1]++;
		if (l->result[i] == 1) {
			not_started++;
			continue;
		}
		if (l->result[i] == 0) {
			if (ok_lat)
				ok_lat[nok] = l->latency_ms[i];
			nok++;
			continue;
		}
		failed++;
		for (k = 0; k < nfails; k++)
			if (fails[k].code == l->result[i])
				break;
		if (k == nfails && nfails < sizeof(fails) / sizeof(fails[0])) {
			fails[nfails].code = l->result[i];
			fails[nfails].n = 0;
			nfails++;
		}
		if (k < nfails)
			fails[k].n++;
		else
			other++;
	}
	printf("enrollments: %zu ok, %lu failed", nok, failed);
	if (not_started)
		printf(", %lu not started (timeout)", not_started);
	printf(" of %lu\n", l->count);
	if (atomic_load(&l->retried) > 0)
		printf("retries: %lu\n", (unsigned long)atomic_load(&l->retried));
	for (k = 0; k < nfails; k++)
		printf("  failed with %s (%d): %lu\n", fail_name(fails[k].code),
		       fails[k].code < 0 ? -fails[k].code : fails[k].code, fails[k].n);
	if (other)
		printf("  failed with other errors: %lu\n", other);
	printf("wall time: %.3f s\n", wall);
	rate = wall > 0 ? (double)nok / wall : 0;
	printf("rate: %.1f enrollments/s\n", rate);
	if (ok_lat && nok > 0) {
		stats_percentiles(ok_lat, nok, &lat);
		printf("latency (ms, successful enrollments%s): p50 %.1f p90 %.1f p99 %.1f max %.1f\n",
		       l->rate > 0 ? ", from the scheduled start" : "", lat.p50, lat.p90, lat.p99,
		       lat.max);
	}
	if (l->rate > 0)
		printf("open loop: %.1f enrollments/s scheduled, up to %lu at once\n", l->rate,
		       l->concurrency);
	printf("tls groups: x25519 %lu, secp256r1 %lu, other %lu (offered: %s)\n", groups[0],
	       groups[1], l->count - not_started - groups[0] - groups[1],
	       client_groups_name(l->groups));
	if (l->key_pool)
		printf("keys: MICs from a pool of %lu keys, each phone's new key made before the "
		       "run%s (--key-pool 0: each made when needed)\n", l->key_pool,
		       l->key_file ? " or read from --key-file" : "");
	else
		printf("keys: a new one for every MIC and every enrollment, in the run (no pool)\n");
	printf("checks: every LSC's key and name, the signature of %s (--verify-every %lu); "
	       "the server's chain verified in %lu handshakes, recognised in %lu (verified "
	       "before by the same phone thread)\n",
	       l->verify_every == 1 ? "every one" : "1 in N", l->verify_every,
	       atomic_load(&l->chains_verified), atomic_load(&l->chains_cached));
	if (cpu_ms >= 0 && nok > 0)
		printf("server cpu: %.0f ms in total, %.2f ms per enrollment (pid %u)\n", cpu_ms,
		       cpu_ms / (double)nok, pid);
	else
		printf("server cpu: not available (no local capfd process to read)\n");
	if (nok > 0)
		printf("client cpu: %.3f ms per enrollment (user %.3f, system %.3f; this process, "
		       "all its phones)\n", (own->user_ms + own->sys_ms) / (double)nok,
		       own->user_ms / (double)nok, own->sys_ms / (double)nok);
	if (l->json)
		printf("{\"load\":\"%s\",\"ok\":%zu,\"failed\":%lu,\"not_started\":%lu,"
		       "\"wall_s\":%.4f,\"rate\":%.2f,\"open_loop_rate\":%.2f,\"p50_ms\":%.3f,"
		       "\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"x25519\":%lu,"
		       "\"secp256r1\":%lu,\"key_pool\":%lu,\"client_user_ms\":%.4f,"
		       "\"client_sys_ms\":%.4f}\n",
		       l->protocol == LOAD_CISCO ? "cisco" : "native", nok, failed, not_started,
		       wall, rate, l->rate, lat.p50, lat.p90, lat.p99, lat.max, groups[0], groups[1],
		       l->key_pool,
		       nok ? own->user_ms / (double)nok : 0, nok ? own->sys_ms / (double)nok : 0);
	free(ok_lat);
}

