/*
 * Metrics: the server's counters, a census of the store and the CA's
 * expiry in the Prometheus text format (version 0.0.4), for capfctl stats
 * --prometheus and, when [metrics] listen is set, an HTTP listener
 * (libmicrohttpd, its own thread).
 *
 * Everything is read on the main loop: the listener's thread only copies
 * out the text that a timer renders every few seconds, so that it never
 * touches the store or the CA. The census (devices by status, pending
 * operations, certificates by state, LSC expiry) walks every record, so
 * it is taken at most every CENSUS_SECONDS.
 */
#include "config.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "ca/ca.h"
#include "capf/capfd.h"
#include "capf/log.h"
#include "capf/metrics.h"
#include "store/store.h"

#define CENSUS_SECONDS 10
#define RENDER_MS 5000u

struct census {
	time_t at;
	double took;  /* seconds the last census held the main loop */
	uint64_t devices;
	uint64_t by_status[5];
	uint64_t pending_by_op[4];
	uint64_t unacknowledged;
	uint64_t certs_by_state[4];
	uint64_t lsc_expired, lsc_7d, lsc_30d, lsc_90d;
	int64_t lsc_soonest;
};

struct metrics {
	struct server *srv;
	struct census census;
	struct MHD_Daemon *mhd;
	unsigned port;
	uv_timer_t timer;
	bool timer_on;
	pthread_mutex_t lock; /* protects text, len */
	char *text;
	size_t len;
};

/* ---- the census -------------------------------------------------------------- */

struct cert_walk {
	struct census *c;
	time_t now;
};

static int census_cert(const Capf__Certificate *crt, void *arg)
{
	struct cert_walk *w = arg;
	struct census *c = w->c;

	if (crt->state < 4)
		c->certs_by_state[crt->state]++;
	/* An LSC a phone may use: acknowledged and not revoked. */
	if (crt->state != CAPF__CERT_STATE__CERT_ACTIVE)
		return 0;
	if (c->lsc_soonest == 0 || crt->not_after < c->lsc_soonest)
		c->lsc_soonest = crt->not_after;
	if (crt->not_after <= w->now)
		c->lsc_expired++;
	else if (crt->not_after <= w->now + 7 * 86400)
		c->lsc_7d++;
	else if (crt->not_after <= w->now + 30 * 86400)
		c->lsc_30d++;
	else if (crt->not_after <= w->now + 90 * 86400)
		c->lsc_90d++;
	return 0;
}

static int census_take(struct server *srv, struct census *c)
{
	struct cert_walk w = { c, time(NULL) };
	Capf__Device **devs = NULL;
	size_t n = 0;
	int ret;

	double took = c->took;

	memset(c, 0, sizeof(*c));
	c->took = took;
	ret = store_device_list(srv->store, &devs, &n);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < n; i++) {
		const Capf__Device *d = devs[i];

		if (d->deleted)
			continue;
		c->devices++;
		if (d->status < 5)
			c->by_status[d->status]++;
		if (d->op != CAPF__OPERATION__OP_NONE && d->op < 4)
			c->pending_by_op[d->op]++;
		if (d->pending_serial.len > 0)
			c->unacknowledged++;
	}
	store_device_list_free(devs, n);
	ret = store_cert_foreach(srv->store, census_cert, &w);
	if (ret < 0)
		return ret;
	c->at = w.now;
	return 0;
}

/* The census, taken again when older than CENSUS_SECONDS (or when fresh). */
static const struct census *census_get(struct server *srv, bool fresh)
{
	struct metrics *m = srv->metrics;
	static struct census local;
	struct census *c = m != NULL ? &m->census : &local;

	/* A census copies every record under the store's index lock: on a
	 * large store it is taken less often, so that it never holds the lock
	 * more than a hundredth of the time. */
	double every = c->took * 100 > CENSUS_SECONDS ? c->took * 100 : CENSUS_SECONDS;

	if (fresh || c->at == 0 || (double)(time(NULL) - c->at) >= every) {
		struct timespec t0, t1;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (census_take(srv, c) < 0)
			log_warn("metrics: cannot take the census of the store");
		clock_gettime(CLOCK_MONOTONIC, &t1);
		c->took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	}
	return c;
}

int metrics_status(struct server *srv, uint64_t *devices, uint64_t *pending,
		   uint64_t *unacknowledged, int64_t *ca_not_after)
{
	const struct census *c = census_get(srv, true);
	struct ca_info *list = NULL;
	size_t n = 0;

	*pending = 0;
	for (size_t i = 1; i < 4; i++)
		*pending += c->pending_by_op[i];
	*unacknowledged = c->unacknowledged;
	*devices = c->devices;
	*ca_not_after = 0;
	if (ca_status(srv->ca, time(NULL), &list, &n) == 0) {
		for (size_t i = 0; i < n; i++)
			if (list[i].current)
				*ca_not_after = list[i].not_after;
		free(list);
	}
	return 0;
}

/* ---- the text format ----------------------------------------------------------- */

struct buf {
	char *p;
	size_t len, cap;
	bool failed;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = true;
			return;
		}
		if (b->p && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = (b->cap ? b->cap * 2 : 8192) + (size_t)n;
		char *p = realloc(b->p, cap);

		if (p == NULL) {
			b->failed = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
	put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A histogram from counts per bucket (n bounds, in seconds, then +Inf:
 * n + 1 counts, not cumulative) and the sum of what was observed. */
static void put_hist(struct buf *b, const char *name, const char *help, const double *bounds,
		     const uint64_t *per_bucket, size_t n, double sum)
{
	uint64_t cum = 0;

	family(b, name, "histogram", help);
	for (size_t i = 0; i < n; i++) {
		cum += per_bucket[i];
		put(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)cum);
	}
	cum += per_bucket[n];
	put(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
	put(b, "%s_sum %.6f\n", name, sum);
	/* The count is the buckets' sum, so that +Inf and _count agree even
	 * when workers add while the buckets are read one by one. */
	put(b, "%s_count %llu\n", name, (unsigned long long)cum);
}

static void render_hist(struct buf *b, const char *name, const char *help,
			const struct outcome_hist *h)
{
	uint64_t per[OUTCOME_BUCKETS + 1];

	for (size_t i = 0; i <= OUTCOME_BUCKETS; i++)
		per[i] = atomic_load_explicit(&h->le[i], memory_order_relaxed);
	put_hist(b, name, help, outcome_bounds, per, OUTCOME_BUCKETS,
		 (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6);
}

/* Sessions by operation and result, failures by code, the latencies. */
static void render_outcomes(struct buf *b, const struct outcomes *o)
{
	static const char *const ops[] = { "none", "install", "delete", "fetch" };

	family(b, "capf_enrollments_total", "counter",
	       "Phone sessions that ended, by operation (none: ended before one was decided) "
	       "and result.");
	for (size_t op = 0; op < 4; op++)
		for (size_t r = 0; r < 2; r++)
			put(b, "capf_enrollments_total{op=\"%s\",result=\"%s\"} %llu\n", ops[op],
			    r ? "failure" : "success",
			    (unsigned long long)atomic_load_explicit(&o->by_op[op][r],
								     memory_order_relaxed));
	family(b, "capf_failures_total", "counter",
	       "Phone sessions that failed, by error code (doc/errors.md).");
	for (size_t i = 0; i < OUTCOME_CODES; i++) {
		uint64_t n = atomic_load_explicit(&o->by_code[i], memory_order_relaxed);
		int code = outcome_slot_code(i);

		const char *name = code != 0 ? capf_errname(code) : "other";

		if (n == 0)
			continue;
		if (strcmp(name, "CAPF_EUNKNOWN") == 0) /* one series per code all the same */
			put(b, "capf_failures_total{code=\"%d\"} %llu\n", code,
			    (unsigned long long)n);
		else
			put(b, "capf_failures_total{code=\"%s\"} %llu\n", name,
			    (unsigned long long)n);
	}
	render_hist(b, "capf_session_duration_seconds",
		    "From accepting the connection to the session's end.", &o->session);
	render_hist(b, "capf_tls_handshake_duration_seconds",
		    "From accepting the connection to the TLS handshake's end.", &o->handshake);
}

int metrics_render(struct server *srv, char **out, size_t *len)
{
	static const char *const statuses[] = { "none", "pending", "issued", "success", "failed" };
	static const char *const ops[] = { "none", "install", "delete", "fetch" };
	static const char *const states[] = { "unknown", "unconfirmed", "active", "revoked" };
	const struct census *c = census_get(srv, false);
	struct store_stats ss;
	struct ca_info *cas = NULL;
	size_t ncas = 0;
	struct buf b = { 0 };

	store_get_stats(srv->store, &ss);
	family(&b, "capf_start_time_seconds", "gauge", "When capfd started (unix time).");
	put(&b, "capf_start_time_seconds %lld\n", (long long)srv->started_at);
	family(&b, "capf_sessions_total", "counter", "Phone sessions that ended, by result.");
	put(&b, "capf_sessions_total{result=\"success\"} %llu\n",
	    (unsigned long long)atomic_load(&srv->enrollments));
	put(&b, "capf_sessions_total{result=\"failure\"} %llu\n",
	    (unsigned long long)atomic_load(&srv->failures));
	render_outcomes(&b, &srv->outcomes);
	family(&b, "capf_connections_total", "counter", "Phone connections accepted.");
	put(&b, "capf_connections_total %llu\n", (unsigned long long)atomic_load(&srv->connections));
	family(&b, "capf_connections_active", "gauge", "Phone connections open now.");
	put(&b, "capf_connections_active %llu\n",
	    (unsigned long long)atomic_load(&srv->active_connections));

	family(&b, "capf_devices", "gauge", "Device records, by the status of their operation.");
	for (size_t i = 0; i < 5; i++)
		put(&b, "capf_devices{status=\"%s\"} %llu\n", statuses[i],
		    (unsigned long long)c->by_status[i]);
	family(&b, "capf_pending_operations", "gauge", "Operations scheduled, by operation.");
	for (size_t i = 1; i < 4; i++)
		put(&b, "capf_pending_operations{op=\"%s\"} %llu\n", ops[i],
		    (unsigned long long)c->pending_by_op[i]);
	family(&b, "capf_lsc_unacknowledged", "gauge",
	       "LSCs issued and recorded that the phone has not acknowledged.");
	put(&b, "capf_lsc_unacknowledged %llu\n", (unsigned long long)c->unacknowledged);
	family(&b, "capf_certificates", "gauge", "Certificate records, by state.");
	for (size_t i = 1; i < 4; i++)
		put(&b, "capf_certificates{state=\"%s\"} %llu\n", states[i],
		    (unsigned long long)c->certs_by_state[i]);
	family(&b, "capf_lsc_expiring", "gauge",
	       "Active LSCs by when they expire (within: a window from now).");
	put(&b, "capf_lsc_expiring{within=\"expired\"} %llu\n", (unsigned long long)c->lsc_expired);
	put(&b, "capf_lsc_expiring{within=\"7d\"} %llu\n", (unsigned long long)c->lsc_7d);
	put(&b, "capf_lsc_expiring{within=\"30d\"} %llu\n", (unsigned long long)c->lsc_30d);
	put(&b, "capf_lsc_expiring{within=\"90d\"} %llu\n", (unsigned long long)c->lsc_90d);
	family(&b, "capf_lsc_soonest_expiry_timestamp_seconds", "gauge",
	       "The expiry of the active LSC that expires first (0: none).");
	put(&b, "capf_lsc_soonest_expiry_timestamp_seconds %lld\n", (long long)c->lsc_soonest);
	family(&b, "capf_census_timestamp_seconds", "gauge",
	       "When the device and certificate gauges were counted.");
	put(&b, "capf_census_timestamp_seconds %lld\n", (long long)c->at);

	if (ca_status(srv->ca, time(NULL), &cas, &ncas) == 0) {
		family(&b, "capf_ca_not_after_timestamp_seconds", "gauge",
		       "The expiry of each CAPF CA that the server trusts.");
		for (size_t i = 0; i < ncas; i++)
			if (!cas[i].pending)
				put(&b,
				    "capf_ca_not_after_timestamp_seconds{id=\"%s\",current=\"%s\"} "
				    "%lld\n",
				    cas[i].id, cas[i].current ? "yes" : "no",
				    (long long)cas[i].not_after);
		free(cas);
	}

	family(&b, "capf_store_txns_total", "counter", "Store txns written.");
	put(&b, "capf_store_txns_total %llu\n", (unsigned long long)ss.txns_written);
	family(&b, "capf_store_syncs_total", "counter",
	       "Synced group commits, one fdatasync of the segment each (the group's audit entries are copied into it).");
	put(&b, "capf_store_syncs_total %llu\n", (unsigned long long)ss.syncs);
	family(&b, "capf_store_audit_syncs_total", "counter",
	       "fdatasyncs of the audit file on its own (every 1 MiB of entries, before it rotates, before a compaction).");
	put(&b, "capf_store_audit_syncs_total %llu\n", (unsigned long long)ss.audit_syncs);
	family(&b, "capf_store_lazy_groups_total", "counter",
	       "Groups of acknowledgements only, written without a sync of their own (durable with the next synced group).");
	put(&b, "capf_store_lazy_groups_total %llu\n", (unsigned long long)ss.lazy_groups);
	family(&b, "capf_store_group_commit_size", "gauge", "Mean txns per synced group commit.");
	put(&b, "capf_store_group_commit_size %.3f\n",
	    ss.syncs ? (double)ss.txns_written / (double)ss.syncs : 0.0);
	{
		double bounds[STORE_COMMIT_BUCKETS];

		for (size_t i = 0; i < STORE_COMMIT_BUCKETS; i++)
			bounds[i] = (double)store_commit_bounds_us[i] / 1e6;
		put_hist(&b, "capf_store_commit_duration_seconds",
			 "How long a group commit's writes and fdatasyncs took.", bounds,
			 ss.commit_le, STORE_COMMIT_BUCKETS, (double)ss.commit_us_total / 1e6);
		put_hist(&b, "capf_store_fdatasync_duration_seconds",
			 "How long the fdatasync of a synced group's segment took.", bounds,
			 ss.sync_le, STORE_COMMIT_BUCKETS, (double)ss.sync_us_total / 1e6);
	}
	{
		double bounds[STORE_GROUP_BUCKETS];

		for (size_t i = 0; i < STORE_GROUP_BUCKETS; i++)
			bounds[i] = (double)store_group_bounds[i];
		put_hist(&b, "capf_store_group_commit_txns", "Txns per synced group commit.",
			 bounds, ss.group_le, STORE_GROUP_BUCKETS, (double)ss.group_txns_total);
	}
	family(&b, "capf_store_write_failures_total", "counter", "Groups whose write failed.");
	put(&b, "capf_store_write_failures_total %llu\n", (unsigned long long)ss.write_failures);
	family(&b, "capf_store_segment_bytes", "gauge", "Size of the segment being written.");
	put(&b, "capf_store_segment_bytes %llu\n", (unsigned long long)ss.segment_bytes);
	family(&b, "capf_store_compactions_total", "counter", "Snapshots written since start.");
	put(&b, "capf_store_compactions_total %llu\n", (unsigned long long)ss.compactions);
	family(&b, "capf_audit_entries_total", "counter", "The audit log's last entry number.");
	put(&b, "capf_audit_entries_total %llu\n", (unsigned long long)ss.audit_seq);
	family(&b, "capf_audit_lost_total", "counter", "Audit events dropped while writes failed.");
	put(&b, "capf_audit_lost_total %llu\n", (unsigned long long)ss.audit_lost);
	if (b.failed) {
		free(b.p);
		return CAPF_ENOMEM;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

/* ---- the HTTP listener ------------------------------------------------------------ */

static void refresh(struct metrics *m)
{
	char *text = NULL;
	size_t len = 0;

	if (metrics_render(m->srv, &text, &len) < 0)
		return;
	pthread_mutex_lock(&m->lock);
	free(m->text);
	m->text = text;
	m->len = len;
	pthread_mutex_unlock(&m->lock);
}

static void on_timer(uv_timer_t *t)
{
	refresh(t->data);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_len, void **con_cls)
{
	struct metrics *m = cls;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	unsigned status = MHD_HTTP_OK;
	char *copy = NULL;
	size_t len = 0;
	(void)version;
	(void)upload;
	(void)upload_len;
	(void)con_cls;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		static const char msg[] = "only GET\n";
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
		resp = MHD_create_response_from_buffer(sizeof(msg) - 1, (void *)msg,
						       MHD_RESPMEM_PERSISTENT);
	} else if (strcmp(url, "/metrics") != 0) {
		static const char msg[] = "capfd: the metrics are at /metrics\n";
		status = MHD_HTTP_NOT_FOUND;
		resp = MHD_create_response_from_buffer(sizeof(msg) - 1, (void *)msg,
						       MHD_RESPMEM_PERSISTENT);
	} else {
		pthread_mutex_lock(&m->lock);
		if (m->text != NULL && (copy = malloc(m->len ? m->len : 1)) != NULL) {
			memcpy(copy, m->text, m->len);
			len = m->len;
		}
		pthread_mutex_unlock(&m->lock);
		if (copy == NULL)
			return MHD_NO;
		resp = MHD_create_response_from_buffer(len, copy, MHD_RESPMEM_MUST_FREE);
	}
	if (resp == NULL) {
		free(copy);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				status == MHD_HTTP_OK ? "text/plain; version=0.0.4; charset=utf-8"
						      : "text/plain");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* "PORT", "ADDR:PORT" or "[ADDR6]:PORT"; a bare port is on loopback. */
static int parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *sl)
{
	char host[128] = "127.0.0.1", *end = NULL;
	const char *port = spec, *colon = strrchr(spec, ':');
	unsigned long p;

	memset(ss, 0, sizeof(*ss));
	if (colon != NULL) {
		size_t hl = (size_t)(colon - spec);

		if (spec[0] == '[' && hl >= 2 && spec[hl - 1] == ']') {
			spec++;
			hl -= 2;
		}
		if (hl == 0 || hl >= sizeof(host))
			return CAPF_EINVAL;
		memcpy(host, spec, hl);
		host[hl] = '\0';
		port = colon + 1;
	}
	p = strtoul(port, &end, 10);
	if (*port < '0' || *port > '9' || *end != '\0' || p > 65535)
		return CAPF_EINVAL;
	if (strchr(host, ':') != NULL) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)p);
		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			return CAPF_EINVAL;
		*sl = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)p);
		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return CAPF_EINVAL;
		*sl = sizeof(*a);
	}
	return 0;
}

int metrics_check_listen(const char *spec)
{
	struct sockaddr_storage ss;
	socklen_t sl;

	return parse_listen(spec, &ss, &sl);
}

int metrics_start(struct server *srv)
{
	struct metrics *m;
	struct sockaddr_storage ss;
	socklen_t sl = 0;
	const union MHD_DaemonInfo *info;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;

	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return CAPF_ENOMEM;
	m->srv = srv;
	pthread_mutex_init(&m->lock, NULL);
	srv->metrics = m;
	if (srv->cfg->metrics_listen == NULL)
		return 0;
	if (parse_listen(srv->cfg->metrics_listen, &ss, &sl) < 0) {
		log_err("[metrics] listen: \"%s\" is not PORT, ADDRESS:PORT or [ADDRESS]:PORT",
			srv->cfg->metrics_listen);
		return CAPF_ECONFIG;
	}
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	refresh(m);
	m->mhd = MHD_start_daemon(flags, 0, NULL, NULL, answer, m, MHD_OPTION_SOCK_ADDR,
				  (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, 16u,
				  MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
	if (m->mhd == NULL) {
		log_err("cannot listen for metrics on %s", srv->cfg->metrics_listen);
		return CAPF_ECONFIG;
	}
	info = MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_BIND_PORT);
	m->port = info != NULL ? info->port : 0;
	uv_timer_init(srv->loop, &m->timer);
	m->timer.data = m;
	uv_timer_start(&m->timer, on_timer, RENDER_MS, RENDER_MS);
	m->timer_on = true;
	log_info("metrics on http://%s/metrics (port %u)", srv->cfg->metrics_listen, m->port);
	return 0;
}

unsigned metrics_port(const struct server *srv)
{
	return srv->metrics != NULL ? srv->metrics->port : 0;
}

static void on_timer_closed(uv_handle_t *h)
{
	struct metrics *m = h->data;

	pthread_mutex_destroy(&m->lock);
	free(m->text);
	free(m);
}

void metrics_stop(struct server *srv)
{
	struct metrics *m = srv->metrics;

	if (m == NULL)
		return;
	srv->metrics = NULL;
	if (m->mhd != NULL)
		MHD_stop_daemon(m->mhd);
	if (m->timer_on) {
		uv_timer_stop(&m->timer);
		uv_close((uv_handle_t *)&m->timer, on_timer_closed);
		return;
	}
	pthread_mutex_destroy(&m->lock);
	free(m->text);
	free(m);
}
