/*
 * capf-phone load --idle N: N phones that connect, finish the TLS
 * handshake and then say nothing (after the handshake, before Hello), so
 * that the server's cost of a connection it holds can be measured.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "tools/phone/load.h"

static volatile sig_atomic_t idle_stop;

static void on_stop(int sig)
{
	(void)sig;
	idle_stop = 1;
}

struct idle_run {
	struct load *l;
	struct client_tls *conns;
	atomic_ulong next;
	atomic_ulong open;
	atomic_ulong failed;
	atomic_int first_err;
};

static void *idle_thread(void *arg)
{
	struct idle_run *r = arg;
	struct client_trust trust = { 0 };
	unsigned long i;

	if (client_trust_load(r->l->ca_file, &trust) < 0) {
		atomic_store(&r->first_err, CAPF_EIO);
		return NULL;
	}
	while (!idle_stop && (i = atomic_fetch_add(&r->next, 1)) < r->l->idle) {
		int ret = client_tls_open(&r->conns[i], r->l->host, r->l->port, &r->l->mics[i],
					  &trust, 30000);
		int zero = 0;

		if (ret < 0) {
			atomic_fetch_add(&r->failed, 1);
			atomic_compare_exchange_strong(&r->first_err, &zero, ret);
			continue;
		}
		atomic_fetch_add(&r->open, 1);
	}
	client_trust_deinit(&trust);
	return NULL;
}

int load_idle_run(struct load *l)
{
	struct idle_run r = { .l = l };
	unsigned long nth = l->concurrency, started = 0;
	pthread_t *th = NULL;
	struct rusage ru0, ru1;
	double t0, t1, until;
	int status = PHONE_EXIT_FAIL;

	r.conns = calloc(l->idle, sizeof(*r.conns));
	th = calloc(nth, sizeof(*th));
	if (!r.conns || !th) {
		fprintf(stderr, PHONE_PROG " load: out of memory\n");
		goto out;
	}
	for (unsigned long i = 0; i < l->idle; i++)
		r.conns[i].fd = -1;
	signal(SIGTERM, on_stop);
	signal(SIGINT, on_stop);
	getrusage(RUSAGE_SELF, &ru0);
	t0 = phone_now();
	for (unsigned long i = 0; i < nth; i++)
		if (pthread_create(&th[i], NULL, idle_thread, &r) == 0)
			started++;
	for (unsigned long i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	t1 = phone_now();
	getrusage(RUSAGE_SELF, &ru1);
	printf("idle: %lu connections open (TLS done, no Hello), %lu failed, in %.1f s\n",
	       (unsigned long)atomic_load(&r.open), (unsigned long)atomic_load(&r.failed),
	       t1 - t0);
	if (atomic_load(&r.failed))
		printf("idle: the first failure: %s\n", capf_strerror(atomic_load(&r.first_err)));
	{
		double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
			     (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
			     (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
			     (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
		unsigned long n = atomic_load(&r.open);

		printf("idle: client cpu %.3f ms per handshake\n", n ? cpu * 1e3 / (double)n : 0.0);
	}
	fflush(stdout);
	/* Hold them, without a byte sent, until told or the time is up. */
	until = phone_now() + (double)l->hold;
	while (!idle_stop && phone_now() < until)
		usleep(100000);
	printf("idle: closing\n");
	fflush(stdout);
	status = atomic_load(&r.failed) ? PHONE_EXIT_FAIL : PHONE_EXIT_OK;
out:
	if (r.conns)
		for (unsigned long i = 0; i < l->idle; i++)
			client_tls_abort(&r.conns[i]);
	free(r.conns);
	free(th);
	return status;
}
