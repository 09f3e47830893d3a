/*
 * capf-bench ca - what an LSC costs next to the signature in it: full
 * ca_issue() calls (subject, extensions, key identifiers, serial, the
 * signature, DER encoding) from a CSR parsed and checked once, and raw
 * signatures with the same CA key (gnutls_privkey_sign_data2() through
 * ca_issuer_sign_bench(), same lock) over as many bytes as an LSC's
 * TBSCertificate, in the same run, alternating in short rounds so that
 * both see the same machine.
 *
 * The figure is the ratio issuances/s : signatures/s. The target is 0.8
 * or more: an issuance costs at most a quarter more than its signature.
 * Nothing is asserted: the figures depend on the machine.
 */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>

#include "ca/ca.h"
#include "proto/capf.pb-c.h"
#include "proto/proto.h"
#include "tools/bench/bench.h"
#include "tools/pki.h"

#define SECONDS_DEFAULT 2.0
#define ROUNDS 8
#define TBS_BYTES 400 /* about the TBSCertificate of a P-256 LSC */
#define TARGET_RATIO 0.8
#define DEVICE "SEP001122334455"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " BENCH_PROG " ca [--key-type TYPE | --key REF] [--seconds S]\n"
		"                     [--threads N]\n"
		"LSC issuances per second (ca_issue() from a prepared CSR) next to raw\n"
		"signatures per second with the same CA key, in the same run, and their\n"
		"ratio. Without options: an ec-p256 CA, then an rsa-2048 CA.\n"
		"\n"
		"  -t, --key-type TYPE  CA key: ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096\n"
		"  -k, --key REF        an existing CA key: a file or a pkcs11: URI\n"
		"  -s, --seconds S      measuring time per kind, default %.0f\n"
		"  -j, --threads N      threads calling at once, default 1\n"
		"  -h, --help           show this help\n",
		SECONDS_DEFAULT);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

struct job {
	struct ca *ca;
	struct ca_csr *csr;
	int issue;	 /* 1: ca_issue(), 0: raw signatures */
	double seconds;
	unsigned long done;
	int failed;
};

static void *run_job(void *arg)
{
	struct job *j = arg;
	uint8_t tbs[TBS_BYTES];
	double end = bench_now() + j->seconds;
	unsigned long n = 0;

	memset(tbs, 0x5a, sizeof(tbs));
	while (bench_now() < end) {
		/* Check the clock every few calls only: it costs too. */
		for (int i = 0; i < 8; i++) {
			if (j->issue) {
				struct ca_lsc lsc = {0};

				if (ca_issue(j->ca, j->csr, DEVICE, time(NULL), &lsc) < 0)
					j->failed = 1;
				ca_lsc_deinit(&lsc);
			} else {
				tbs[n % sizeof(tbs)]++;
				if (ca_issuer_sign_bench(j->ca, tbs, sizeof(tbs)) < 0)
					j->failed = 1;
			}
			n++;
		}
		if (j->failed)
			break;
	}
	j->done = n;
	return NULL;
}

/* Runs kind (issue or sign) on threads for seconds; returns calls/s. */
static double measure(struct ca *ca, struct ca_csr *csr, int issue, unsigned threads,
		      double seconds, int *failed)
{
	pthread_t th[64];
	struct job jobs[64];
	unsigned long total = 0;
	double start, elapsed;
	unsigned i;

	start = bench_now();
	for (i = 0; i < threads; i++) {
		jobs[i] = (struct job){ca, csr, issue, seconds, 0, 0};
		if (pthread_create(&th[i], NULL, run_job, &jobs[i]) != 0) {
			*failed = 1;
			threads = i;
			break;
		}
	}
	for (i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		total += jobs[i].done;
		if (jobs[i].failed)
			*failed = 1;
	}
	elapsed = bench_now() - start;
	return elapsed > 0 ? (double)total / elapsed : 0;
}

static int bench_one(int key_type, const char *key, double seconds, unsigned threads)
{
	char dir[128], cadir[sizeof(dir) + 4];
	struct ca_config cfg = {0};
	struct ca *ca = NULL;
	struct ca_csr *csr = NULL;
	struct ca_info *info = NULL;
	gnutls_x509_privkey_t phone = NULL;
	uint8_t binding[CA_BINDING_LEN], *der = NULL;
	size_t der_len = 0, n = 0;
	double sign_rate = 0, issue_rate = 0, t0;
	int failed = 0, ret = BENCH_EXIT_FAIL, r;

	if (mkdtemp(bench_tmp_template(dir, sizeof(dir), "ca")) == NULL) {
		fprintf(stderr, BENCH_PROG " ca: cannot make %s: %s\n", dir, strerror(errno));
		return BENCH_EXIT_FAIL;
	}
	snprintf(cadir, sizeof(cadir), "%s/ca", dir);
	cfg.dir = cadir;
	cfg.key_type = key_type;
	cfg.key = key;
	t0 = bench_now();
	if (ca_new(&ca, &cfg) < 0) {
		fprintf(stderr, BENCH_PROG " ca: %s\n", ca_last_error());
		goto out;
	}
	if (ca_status(ca, time(NULL), &info, &n) < 0 || n == 0)
		goto out;
	printf("CA key %s (%s), made in %.3f s; %u thread%s\n", info[0].key_type,
	       info[0].key_store, bench_now() - t0, threads, threads == 1 ? "" : "s");

	/* The phone's side, once: a P-256 key and a CSR bound to a channel. */
	memset(binding, 0x42, sizeof(binding));
	if (pki_gen_key(CAPF__KEY_TYPE__KEY_EC_P256, &phone) < 0 ||
	    pki_make_csr(phone, DEVICE, binding, sizeof(binding), &der, &der_len) < 0 ||
	    ca_csr_parse(der, der_len, &csr) < 0 ||
	    ca_csr_check(csr, binding, sizeof(binding), CAPF__KEY_TYPE__KEY_EC_P256) < 0) {
		fprintf(stderr, BENCH_PROG " ca: cannot make the CSR\n");
		goto out;
	}

	/* Alternating rounds: both kinds see the same CPU frequency, the
	 * same neighbours and the same warm caches. */
	for (int round = 0; round < ROUNDS; round++) {
		sign_rate += measure(ca, csr, 0, threads, seconds / ROUNDS, &failed);
		issue_rate += measure(ca, csr, 1, threads, seconds / ROUNDS, &failed);
	}
	sign_rate /= ROUNDS;
	issue_rate /= ROUNDS;
	if (failed) {
		fprintf(stderr, BENCH_PROG " ca: a signature or an issuance failed\n");
		goto out;
	}
	printf("  raw signatures  %10.0f /s   (gnutls_privkey_sign_data2, %d bytes, CA key)\n",
	       sign_rate, TBS_BYTES);
	printf("  LSC issuances   %10.0f /s   (ca_issue from a prepared CSR)\n", issue_rate);
	printf("  ratio           %10.2f      issuances/s : signatures/s (target >= %.1f)%s\n",
	       sign_rate > 0 ? issue_rate / sign_rate : 0, TARGET_RATIO,
	       sign_rate > 0 && issue_rate / sign_rate >= TARGET_RATIO ? "" : "  BELOW TARGET");
	ret = BENCH_EXIT_OK;
out:
	fflush(stdout);
	free(info);
	free(der);
	ca_csr_free(csr);
	gnutls_x509_privkey_deinit(phone);
	ca_free(ca);
	r = nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	(void)r;
	return ret;
}

int bench_ca(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "key-type", required_argument, NULL, 't' },
		{ "key", required_argument, NULL, 'k' },
		{ "seconds", required_argument, NULL, 's' },
		{ "threads", required_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	double seconds = SECONDS_DEFAULT;
	unsigned threads = 1;
	int key_type = 0, opt, ret;
	const char *key = NULL;
	char *end;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "t:k:s:j:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 't':
			if (key_type_from_name(optarg, &key_type) < 0 || key_type == 0)
				return bench_usage_error("ca", "unknown key type '%s'", optarg);
			break;
		case 'k':
			key = optarg;
			break;
		case 's':
			seconds = strtod(optarg, &end);
			if (*end != '\0' || !(seconds >= 0.1 && seconds <= 600))
				return bench_usage_error("ca", "--seconds takes 0.1 to 600");
			break;
		case 'j':
			threads = (unsigned)strtoul(optarg, &end, 10);
			if (*end != '\0' || threads < 1 || threads > 64)
				return bench_usage_error("ca", "--threads takes 1 to 64");
			break;
		case 'h':
			usage(stdout);
			return BENCH_EXIT_OK;
		default:
			return bench_usage_error("ca", "bad option");
		}
	}
	if (optind != argc)
		return bench_usage_error("ca", "unexpected argument '%s'", argv[optind]);
	if (key != NULL && key_type != 0)
		return bench_usage_error("ca", "--key names an existing key: no --key-type");
	if (gnutls_global_init() < 0)
		return BENCH_EXIT_FAIL;
	if (key_type != 0 || key != NULL) {
		ret = bench_one(key_type, key, seconds, threads);
	} else {
		ret = bench_one(CAPF__KEY_TYPE__KEY_EC_P256, NULL, seconds, threads);
		if (ret == BENCH_EXIT_OK)
			ret = bench_one(CAPF__KEY_TYPE__KEY_RSA_2048, NULL, seconds, threads);
	}
	gnutls_global_deinit();
	return ret;
}
