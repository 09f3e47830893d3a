/*
 * capf-bench: a capfd of its own for a benchmark (its state, config and
 * manufacturer CA in a directory of the run), devices imported with
 * capfctl bulk import, and capf-phone load runs against it.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/bench/bench.h"
#include "tools/bench/server.h"
#include <gnutls/crypto.h>

#include "proto/proto.h"
#include "tools/pki.h"

/* An RSA-2048 (or P-256) test manufacturer CA in dir/mfg-ca.{pem,key},
 * as capf-phone mkmic makes the P-256 one. */
int bench_make_mfg(const struct bench_capfd *d, bool rsa)
{
	struct pki_pair ca = { NULL, NULL };
	char crt[1200], key[1200];
	uint8_t serial[16];
	time_t nb = time(NULL) - 3600;
	int ret = -1;

	if (mkdir(d->mfg, 0755) < 0 && errno != EEXIST)
		return -1;
	snprintf(crt, sizeof(crt), "%s/mfg-ca.pem", d->mfg);
	snprintf(key, sizeof(key), "%s/mfg-ca.key", d->mfg);
	if (pki_gen_key(rsa ? CAPF__KEY_TYPE__KEY_RSA_2048 : CAPF__KEY_TYPE__KEY_EC_P256, &ca.key) <
		    0 ||
	    gnutls_x509_crt_init(&ca.crt) < 0)
		goto out;
	(void)gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));
	serial[0] = (uint8_t)((serial[0] & 0x7f) | 1);
	if (gnutls_x509_crt_set_version(ca.crt, 3) < 0 ||
	    gnutls_x509_crt_set_serial(ca.crt, serial, sizeof(serial)) < 0 ||
	    gnutls_x509_crt_set_activation_time(ca.crt, nb) < 0 ||
	    gnutls_x509_crt_set_expiration_time(ca.crt, nb + 3650 * 86400L) < 0 ||
	    gnutls_x509_crt_set_dn_by_oid(ca.crt, GNUTLS_OID_X520_COMMON_NAME, 0,
					  "capf test manufacturer CA", 25) < 0 ||
	    gnutls_x509_crt_set_key(ca.crt, ca.key) < 0 ||
	    gnutls_x509_crt_set_basic_constraints(ca.crt, 1, -1) < 0 ||
	    gnutls_x509_crt_set_key_usage(ca.crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN) <
		    0) {
		goto out;
	}
	{
		uint8_t id[64];
		size_t idl = sizeof(id);

		if (gnutls_x509_privkey_get_key_id(ca.key, GNUTLS_KEYID_USE_SHA1, id, &idl) < 0 ||
		    gnutls_x509_crt_set_subject_key_id(ca.crt, id, idl) < 0)
			goto out;
	}
	if (gnutls_x509_crt_sign2(ca.crt, ca.crt, ca.key, GNUTLS_DIG_SHA256, 0) < 0)
		goto out;
	ret = pki_write_pair(&ca, crt, key) < 0 ? -1 : 0;
out:
	pki_pair_deinit(&ca);
	return ret;
}

int bench_capfd_start(struct bench_capfd *d, const struct bench_capfd_opts *o)
{
	char conf[1200], ready[1200], logf[1200], path[1200];
	FILE *f;

	snprintf(d->state, sizeof(d->state), "%s/state", d->dir);
	snprintf(d->sock, sizeof(d->sock), "%s/state/capfd.sock", d->dir);
	snprintf(d->ca, sizeof(d->ca), "%s/state/ca/ca.pem", d->dir);
	snprintf(conf, sizeof(conf), "%s/capfd.conf", d->dir);
	snprintf(ready, sizeof(ready), "%s/ready", d->dir);
	snprintf(logf, sizeof(logf), "%s/capfd.log", d->dir);
	d->port[0] = d->cisco_port[0] = '\0';
	(void)unlink(ready);
	if (bench_run_cmd("rm -rf '%s'", d->state) != 0)
		return -1;
	f = fopen(conf, "w");
	if (f == NULL)
		return -1;
	fprintf(f,
		"# capf-bench: one worker, its own state; limits for the benchmark's phones.\n"
		"[server]\nstate_dir = %s\nlisten = 127.0.0.1\nport = 0\nworkers = %u\n"
		"ready_file = %s\n"
		"[trust]\nmanufacturer_roots = %s/mfg-ca.pem\n"
		"[ca]\nkey_type = %s\n"
		"[cisco]\nenabled = yes\nport = 0\n"
		"[limits]\nmax_connections = %u\nmax_per_source = %u\nidle_timeout = %u\n"
		"session_timeout = %u\nhandshake_timeout = 60\n"
		"[log]\nlevel = warning\n",
		d->state, o->workers ? o->workers : 1, ready, d->mfg, o->rsa ? "rsa-2048" : "ec-p256",
		o->max_connections ? o->max_connections : 10000,
		o->max_connections ? o->max_connections : 1024,
		o->idle_timeout ? o->idle_timeout : 30, o->idle_timeout ? 2 * o->idle_timeout : 120);
	fclose(f);
	snprintf(path, sizeof(path), "%s/capfd", d->build);
	if (o->callgrind) {
		char out[1300];
		char *av[] = { "/usr/bin/valgrind", "--tool=callgrind", "--trace-children=yes",
			       out, path, "-c", conf, NULL };

		snprintf(out, sizeof(out), "--callgrind-out-file=%s/callgrind.%%p", d->dir);
		d->pid = bench_spawn(o->cpu, av, logf);
	} else {
		char *av[] = { path, "-c", conf, NULL };

		d->pid = bench_spawn(o->cpu, av, logf);
	}
	if (d->pid < 0)
		return -1;
	/* Under valgrind the start (a CA key made) takes a while. */
	for (int i = 0; i < (o->callgrind ? 2400 : 600); i++) {
		char line[256];

		f = fopen(ready, "r");
		if (f != NULL) {
			while (fgets(line, sizeof(line), f) != NULL) {
				line[strcspn(line, "\n")] = '\0';
				if (!strncmp(line, "port=", 5))
					snprintf(d->port, sizeof(d->port), "%.15s", line + 5);
				else if (!strncmp(line, "cisco_port=", 11))
					snprintf(d->cisco_port, sizeof(d->cisco_port), "%.15s", line + 11);
			}
			fclose(f);
		}
		if (d->port[0] != '\0')
			return 0;
		if (kill(d->pid, 0) < 0)
			break;
		usleep(50000);
	}
	fprintf(stderr, BENCH_PROG ": capfd did not start (see %s)\n", logf);
	bench_capfd_stop(d);
	return -1;
}

void bench_capfd_stop(struct bench_capfd *d)
{
	if (d->pid > 0)
		bench_stop(d->pid, 60);
	d->pid = -1;
}

double bench_capfd_metric(const struct bench_capfd *d, const char *name)
{
	char cmd[2400], line[512];
	size_t nl = strlen(name);
	double v = -1;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "%s/capfctl -s '%s' stats --prometheus 2>/dev/null", d->build,
		 d->sock);
	p = popen(cmd, "r");
	if (p == NULL)
		return -1;
	while (fgets(line, sizeof(line), p) != NULL)
		if (!strncmp(line, name, nl) && line[nl] == ' ')
			v = strtod(line + nl + 1, NULL);
	pclose(p);
	return v;
}

int bench_import(const struct bench_capfd *d, const char *prefix, unsigned long n, bool rsa,
		 const char *auth)
{
	char csv[1200];
	FILE *f;

	snprintf(csv, sizeof(csv), "%s/%s.csv", d->dir, prefix);
	f = fopen(csv, "w");
	if (f == NULL)
		return -1;
	fprintf(f, "device name,operation,authentication mode,key order,key size,ec key size\n");
	for (unsigned long i = 0; i < n; i++)
		fprintf(f, "%s%06lX,install,%s,%s,%s,%s\n", prefix, i + 1, auth,
			rsa ? "rsa-only" : "ec-only", rsa ? "2048" : "", rsa ? "" : "256");
	if (fclose(f) != 0)
		return -1;
	return bench_run_cmd("%s/capfctl -s '%s' bulk import '%s' >'%s/import.out' 2>&1", d->build,
			     d->sock, csv, d->dir) == 0
		       ? 0
		       : -1;
}

/* The number after "key": in a JSON line; def if absent. */
static double json_num(const char *line, const char *key, double def)
{
	char want[64];
	const char *p;

	snprintf(want, sizeof(want), "\"%s\":", key);
	p = strstr(line, want);
	return p ? strtod(p + strlen(want), NULL) : def;
}

int bench_load(const struct bench_capfd *d, const struct bench_load_opts *o,
	       struct bench_load_result *r)
{
	char path[1200], out[1300], n[24], c[24], rate[32], line[2048], tmo[24];
	char *av[48];
	int k = 0, st;
	FILE *f;

	memset(r, 0, sizeof(*r));
	snprintf(path, sizeof(path), "%s/capf-phone", d->build);
	snprintf(out, sizeof(out), "%s/%s.load.out", d->dir, o->name ? o->name : "load");
	snprintf(n, sizeof(n), "%lu", o->count);
	snprintf(c, sizeof(c), "%lu", o->concurrency);
	snprintf(rate, sizeof(rate), "%.2f", o->rate);
	av[k++] = path;
	av[k++] = "load";
	av[k++] = "--count";
	av[k++] = n;
	av[k++] = "--concurrency";
	av[k++] = c;
	av[k++] = "--ca";
	av[k++] = (char *)d->ca;
	av[k++] = "--socket";
	av[k++] = (char *)d->sock;
	av[k++] = "--port";
	av[k++] = (char *)(o->cisco ? d->cisco_port : d->port);
	av[k++] = "--prefix";
	av[k++] = (char *)o->prefix;
	snprintf(tmo, sizeof(tmo), "%u", o->timeout ? o->timeout : 300);
	av[k++] = "--timeout";
	av[k++] = tmo;
	av[k++] = "--json";
	if (!o->lsc_in) {
		av[k++] = "--mfg-dir";
		av[k++] = (char *)d->mfg;
	}
	if (o->cisco) {
		av[k++] = "--protocol";
		av[k++] = "cisco";
	}
	if (o->rsa) {
		av[k++] = "--key-type";
		av[k++] = "rsa-2048";
		av[k++] = "--mic-type";
		av[k++] = "rsa-2048";
	}
	if (o->groups) {
		av[k++] = "--groups";
		av[k++] = (char *)o->groups;
	}
	if (o->rate > 0) {
		av[k++] = "--rate";
		av[k++] = rate;
	}
	if (o->no_setup)
		av[k++] = "--no-setup";
	if (o->key_file) {
		av[k++] = "--key-file";
		av[k++] = (char *)o->key_file;
	}
	if (o->key_pool) {
		av[k++] = "--key-pool";
		av[k++] = (char *)o->key_pool;
	}
	if (o->verify_every) {
		av[k++] = "--verify-every";
		av[k++] = (char *)o->verify_every;
	}
	if (o->lsc_out) {
		av[k++] = "--lsc-out";
		av[k++] = (char *)o->lsc_out;
	}
	if (o->lsc_in) {
		av[k++] = "--lsc-in";
		av[k++] = (char *)o->lsc_in;
	}
	av[k] = NULL;
	st = bench_wait(bench_spawn(o->cpu, av, out));
	f = fopen(out, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "{\"load\":", 8) != 0)
			continue;
		r->ok = (unsigned long)json_num(line, "ok", 0);
		r->failed = (unsigned long)json_num(line, "failed", 0);
		r->wall = json_num(line, "wall_s", 0);
		r->rate = json_num(line, "rate", 0);
		r->p50 = json_num(line, "p50_ms", 0);
		r->p99 = json_num(line, "p99_ms", 0);
		r->x25519 = (unsigned long)json_num(line, "x25519", 0);
		r->secp256r1 = (unsigned long)json_num(line, "secp256r1", 0);
		r->client_user_ms = json_num(line, "client_user_ms", 0);
		r->client_sys_ms = json_num(line, "client_sys_ms", 0);
		r->have = true;
	}
	fclose(f);
	if (!r->have || st != 0) {
		fprintf(stderr, BENCH_PROG ": capf-phone load %s (see %s)\n",
			r->have ? "had failures" : "failed", out);
		return r->have ? 1 : -1;
	}
	return 0;
}

/* perf stat counting capfd's fdatasync calls, or -1 without perf. */
pid_t bench_perf_start(const struct bench_capfd *d, const char *out)
{
	char pid[24];
	char *av[] = { "/usr/bin/perf", "stat", "-x,", "-e", "syscalls:sys_enter_fdatasync",
		       "-p", pid, "-o", (char *)out, NULL };
	pid_t p;

	if (access(av[0], X_OK) != 0)
		return -1;
	snprintf(pid, sizeof(pid), "%d", (int)d->pid);
	p = bench_spawn(-1, av, "/dev/null");
	usleep(300000); /* attached */
	return p;
}

long long bench_perf_stop(pid_t perf, const char *out)
{
	char line[512];
	long long n = -1;
	FILE *f;

	if (perf <= 0)
		return -1;
	kill(perf, SIGINT);
	(void)bench_wait(perf);
	f = fopen(out, "r");
	if (f == NULL)
		return -1;
	/* CSV: "414,,syscalls:sys_enter_fdatasync,..." */
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, "sys_enter_fdatasync") && line[0] >= '0' && line[0] <= '9')
			n = atoll(line);
	fclose(f);
	return n;
}
