/*
 * The process-wide part of capfd: start-up (CA, store, listening sockets,
 * workers, admin socket), the bridge that brings store completions back to
 * a loop, the tables shared by workers, and graceful shutdown.
 */
#include "config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
/* A full table must fail one request, never end the process: uthash then
 * calls uthash_nonfatal_oom(), which records the failure for the caller. */
#define HASH_NONFATAL_OOM 1
static __thread int hash_oom;
#define uthash_nonfatal_oom(elt) (hash_oom = 1)
#include <uthash.h>

#include "ca/ca.h"
#include "capf/capfd.h"
#include "capf/log.h"
#include "capf/metrics.h"
#include "capf/signer.h"
#include "store/store.h"

/* ---- bridge ------------------------------------------------------------ */

static void bridge_run(struct bridge *b)
{
	struct bridge_item *it;

	pthread_mutex_lock(&b->lock);
	it = b->head;
	b->head = b->tail = NULL;
	pthread_mutex_unlock(&b->lock);

	while (it != NULL) {
		struct bridge_item *next = it->next;
		it->fn(it->arg, it->result);
		free(it);
		it = next;
	}
}

static void bridge_async_cb(uv_async_t *h)
{
	bridge_run(h->data);
}

int bridge_init(struct bridge *b, uv_loop_t *loop)
{
	memset(b, 0, sizeof(*b));
	pthread_mutex_init(&b->lock, NULL);
	b->async.data = b;
	return uv_async_init(loop, &b->async, bridge_async_cb);
}

static void bridge_closed(uv_handle_t *h)
{
	struct bridge *b = h->data;
	pthread_mutex_destroy(&b->lock);
}

void bridge_close(struct bridge *b)
{
	/* Completions already queued still reach their owners, who see that
	 * they are closing and only drop their references. */
	bridge_run(b);
	uv_close((uv_handle_t *)&b->async, bridge_closed);
}

/* Runs on the store's writer thread: queue and wake the loop. */
static void bridge_store_done(int result, void *arg)
{
	struct bridge_item *it = arg;
	struct bridge *b = it->bridge;

	it->result = result;
	it->next = NULL;
	pthread_mutex_lock(&b->lock);
	if (b->tail != NULL)
		b->tail->next = it;
	else
		b->head = it;
	b->tail = it;
	pthread_mutex_unlock(&b->lock);
	uv_async_send(&b->async);
}

int bridge_submit_opts(struct bridge *b, struct store *st, Capf__StoreRecord *const *recs,
		       size_t n, const struct store_audit_event *ev, bool lazy,
		       void (*fn)(void *arg, int result), void *arg)
{
	struct bridge_item *it = calloc(1, sizeof(*it));
	int ret;

	if (it == NULL)
		return CAPF_ENOMEM;
	it->bridge = b;
	it->fn = fn;
	it->arg = arg;
	ret = lazy ? store_submit_lazy(st, recs, n, ev, bridge_store_done, it)
		   : store_submit_audit(st, recs, n, ev, bridge_store_done, it);
	if (ret < 0)
		free(it);
	return ret;
}

int bridge_submit_audit(struct bridge *b, struct store *st, Capf__StoreRecord *const *recs,
			size_t n, const struct store_audit_event *ev,
			void (*fn)(void *arg, int result), void *arg)
{
	return bridge_submit_opts(b, st, recs, n, ev, false, fn, arg);
}

int bridge_submit(struct bridge *b, struct store *st, Capf__StoreRecord *const *recs, size_t n,
		  void (*fn)(void *arg, int result), void *arg)
{
	return bridge_submit_audit(b, st, recs, n, NULL, fn, arg);
}

/* ---- claims and per-source counts -------------------------------------- */

struct claim {
	char name[DEVICE_NAME_MAX + 1];
	UT_hash_handle hh;
};

struct source_count {
	char addr[INET6_ADDRSTRLEN];
	unsigned n;
	UT_hash_handle hh;
};

int server_claim(void *arg, const char *device)
{
	struct server *srv = arg;
	struct claim *c;
	int ret = 0;

	pthread_mutex_lock(&srv->claims_lock);
	HASH_FIND_STR(srv->claims, device, c);
	if (c != NULL) {
		ret = CAPF_EBUSY;
	} else if ((c = calloc(1, sizeof(*c))) == NULL) {
		ret = CAPF_ENOMEM;
	} else {
		snprintf(c->name, sizeof(c->name), "%s", device);
		hash_oom = 0;
		HASH_ADD_STR(srv->claims, name, c);
		if (hash_oom) {
			free(c);
			ret = CAPF_ENOMEM;
		}
	}
	pthread_mutex_unlock(&srv->claims_lock);
	return ret;
}

void server_release(void *arg, const char *device)
{
	struct server *srv = arg;
	struct claim *c;

	pthread_mutex_lock(&srv->claims_lock);
	HASH_FIND_STR(srv->claims, device, c);
	if (c != NULL) {
		HASH_DEL(srv->claims, c);
		free(c);
	}
	pthread_mutex_unlock(&srv->claims_lock);
}

int source_acquire(struct server *srv, const char *addr)
{
	struct source_count *s;
	int ret = 0;

	pthread_mutex_lock(&srv->claims_lock);
	HASH_FIND_STR(srv->sources, addr, s);
	if (s == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL) {
			ret = CAPF_ENOMEM;
			goto out;
		}
		snprintf(s->addr, sizeof(s->addr), "%s", addr);
		hash_oom = 0;
		HASH_ADD_STR(srv->sources, addr, s);
		if (hash_oom) {
			free(s);
			ret = CAPF_ENOMEM;
			goto out;
		}
	}
	if (s->n >= CFG_LIVE(srv->cfg->max_per_source)) {
		ret = CAPF_ELIMIT;
		goto out;
	}
	s->n++;
out:
	pthread_mutex_unlock(&srv->claims_lock);
	return ret;
}

void source_release(struct server *srv, const char *addr)
{
	struct source_count *s;

	pthread_mutex_lock(&srv->claims_lock);
	HASH_FIND_STR(srv->sources, addr, s);
	if (s != NULL && --s->n == 0) {
		HASH_DEL(srv->sources, s);
		free(s);
	}
	pthread_mutex_unlock(&srv->claims_lock);
}

/* ---- listening sockets --------------------------------------------------- */

/*
 * One socket per worker, all bound to the same address with SO_REUSEPORT,
 * so the kernel spreads connections over the workers. The first socket
 * resolves port 0 to the port the others then bind.
 */
static int open_listener(const char *host, unsigned port, unsigned *bound_port)
{
	struct addrinfo hints = { 0 }, *ai = NULL;
	char portstr[16];
	int fd = -1, one = 1, ret;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	snprintf(portstr, sizeof(portstr), "%u", port);
	ret = getaddrinfo(host, portstr, &hints, &ai);
	if (ret != 0) {
		log_err("cannot listen on \"%s\": %s (listen must be a numeric IPv4 or IPv6 address)",
			host, gai_strerror(ret));
		return CAPF_ECONFIG;
	}
	if (bound_port != NULL && port != 0) {
		/*
		 * SO_REUSEPORT lets the workers share the port, but it would
		 * let a second capfd of the same user share it too, with
		 * another CA and store. A first bind without it fails if
		 * anyone listens there already.
		 */
		int probe = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe < 0)
			goto fail;
		if (setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
		    bind(probe, ai->ai_addr, ai->ai_addrlen) < 0) {
			ret = -errno;
			close(probe);
			if (ret == -EADDRINUSE)
				log_err("cannot listen on %s port %u: another process listens there "
					"(is another capfd running?)",
					host, port);
			else
				log_err("cannot listen on %s port %u: %s", host, port, strerror(-ret));
			freeaddrinfo(ai);
			return ret;
		}
		close(probe);
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	/* TCP_NODELAY here: every connection accepted from it inherits it
	 * (a setsockopt() per connection fewer). */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
		goto fail;
	if (listen(fd, 1024) < 0)
		goto fail;
	if (bound_port != NULL) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
			goto fail;
		*bound_port = ss.ss_family == AF_INET6
				      ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
				      : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	freeaddrinfo(ai);
	return fd;
fail:
	ret = -errno;
	log_err("cannot listen on %s port %u: %s", host, port, strerror(errno));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return ret;
}

/* ---- the CA at run time: TLS credentials (capf/tls_creds.c), CRL, revocations */

static void crl_refresh(struct server *srv)
{
	int ret = ca_crl_update(srv->ca, time(NULL));

	if (ret < 0)
		log_err("cannot regenerate the CRL: %s", ca_last_error());
	else if (ret > 0)
		log_warn("CRLs regenerated, but not all: %s", ca_last_error());
}

int server_ca_changed(struct server *srv)
{
	struct tls_creds *fresh = server_creds_new(srv), *old;

	if (fresh == NULL)
		return CAPF_ECRYPTO;
	pthread_mutex_lock(&srv->creds_lock);
	old = srv->creds;
	srv->creds = fresh;
	pthread_mutex_unlock(&srv->creds_lock);
	server_creds_put(old);
	crl_refresh(srv);
	return 0;
}

static void on_crl_timer(uv_timer_t *t)
{
	struct server *srv = t->data;

	if (!srv->stopping)
		crl_refresh(srv);
}

/* Revocations recorded by sessions become one CRL at most this often. */
#define CRL_COALESCE_MS 1000u

static void crl_for_revocations(struct server *srv)
{
	srv->crl_signed_at = uv_now(srv->loop);
	crl_refresh(srv);
}

static void on_crl_soon(uv_timer_t *t)
{
	struct server *srv = t->data;

	if (!srv->stopping)
		crl_for_revocations(srv);
}

/*
 * A session recorded revocations (a superseded LSC): the CRLs follow on
 * the main loop, however many sessions asked meanwhile, and at most once
 * per CRL_COALESCE_MS: a CRL lists every revocation, so a re-key of a
 * whole fleet signs one a second instead of one per phone (each costs
 * time in proportion to what it lists).
 */
static void on_crl_async(uv_async_t *a)
{
	struct server *srv = a->data;
	uint64_t now = uv_now(srv->loop);

	if (srv->stopping || uv_is_active((uv_handle_t *)&srv->crl_soon))
		return;
	if (srv->crl_signed_at != 0 && now - srv->crl_signed_at < CRL_COALESCE_MS)
		uv_timer_start(&srv->crl_soon, on_crl_soon,
			       CRL_COALESCE_MS - (now - srv->crl_signed_at), 0);
	else
		crl_for_revocations(srv);
}

void server_crl_dirty(struct server *srv)
{
	if (srv->crl_async_on)
		uv_async_send(&srv->crl_async);
}

void server_live_changed(struct server *srv)
{
	unsigned ms = CFG_LIVE(srv->cfg->crl_refresh_ms);

	/* The next refresh comes a whole new period from now. */
	if (srv->crl_timer_on && ms != srv->crl_every_ms) {
		srv->crl_every_ms = ms;
		uv_timer_start(&srv->crl_timer, on_crl_timer, ms, ms);
		log_info("reload: the CRLs are signed again every %u s", ms / 1000u);
	}
	sweep_follow(srv);
}

/* Completes the store record of a revocation the CA holds: a crash
 * between the CA's write and the store's leaves it to do here. The write
 * names the revision it read, like every writer of a record it read. */
static int sync_one(const uint8_t *serial, size_t len, time_t when, int reason, void *arg)
{
	struct server *srv = arg;
	Capf__StoreRecord rec = CAPF__STORE_RECORD__INIT;
	Capf__StoreRecord *recs[1] = { &rec };
	int ret = CAPF_ESTALE;

	for (unsigned attempt = 0; attempt < 8 && ret == CAPF_ESTALE; attempt++) {
		Capf__Certificate *c = NULL;

		if (store_cert_get(srv->store, serial, len, &c) < 0)
			return 0;
		if (c->state == CAPF__CERT_STATE__CERT_REVOKED) {
			capf__certificate__free_unpacked(c, NULL);
			return 0;
		}
		rec.body_case = CAPF__STORE_RECORD__BODY_CERT;
		rec.cert = c;
		rec.check_revision = true;
		rec.expect_revision = c->revision;
		c->state = CAPF__CERT_STATE__CERT_REVOKED;
		c->revoked_at = when;
		c->revocation_reason = (uint32_t)reason;
		c->revision++;
		ret = store_submit_wait(srv->store, recs, 1);
		capf__certificate__free_unpacked(c, NULL);
	}
	if (ret < 0) {
		log_err("cannot record a revocation in the store: %s", capf_strerror(ret));
		return ret;
	}
	log_info("completed the store record of a revocation");
	return 0;
}

/*
 * At start the CA's revocation list and the store agree: revocations the
 * CA holds are completed in the store, and a device's current LSC that
 * the store says is revoked is revoked in the CA too.
 */
/* A certificate the store says is revoked must be revoked for the CA too. */
static int sync_store_revoked(const Capf__Certificate *c, void *arg)
{
	struct server *srv = arg;

	if (c->state != CAPF__CERT_STATE__CERT_REVOKED ||
	    ca_is_revoked(srv->ca, c->serial.data, c->serial.len))
		return 0;
	return ca_revoke(srv->ca, c->serial.data, c->serial.len, c->revoked_at,
			 (int)c->revocation_reason, c->der.data, c->der.len);
}

static int sync_revocations(struct server *srv)
{
	int ret = ca_revoked_each(srv->ca, sync_one, srv);

	if (ret < 0)
		return ret;
	return store_cert_foreach(srv->store, sync_store_revoked, srv);
}

/* ---- start-up ------------------------------------------------------------ */

/* The store's own reports (faults, already rate-limited; compaction;
 * recovery at open), on whichever thread saw them. */
static void on_store_event(enum store_severity sev, const char *msg, void *arg)
{
	(void)arg;
	log_msg(sev == STORE_SEV_ERROR ? LOG_LVL_ERR
		: sev == STORE_SEV_WARNING ? LOG_LVL_WARN
					   : LOG_LVL_INFO,
		"%s", msg);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct server *srv = h->data;

	if (signum == SIGHUP) {
		server_reload(srv);
		return;
	}
	log_info("received %s, shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
	server_stop(srv);
}

static int write_ready_file(const struct server *srv)
{
	char tmp[4096];
	FILE *f;

	if (srv->cfg->ready_file == NULL)
		return 0;
	snprintf(tmp, sizeof(tmp), "%s.tmp", srv->cfg->ready_file);
	f = fopen(tmp, "w");
	if (f == NULL)
		goto fail;
	if (srv->cisco_port != 0)
		fprintf(f, "cisco_port=%u\n", srv->cisco_port);
	if (metrics_port(srv) != 0)
		fprintf(f, "metrics_port=%u\n", metrics_port(srv));
	fprintf(f, "pid=%d\nport=%u\nadmin_socket=%s\n", (int)getpid(), srv->port,
		srv->cfg->admin_socket);
	if (fclose(f) != 0 || rename(tmp, srv->cfg->ready_file) < 0)
		goto fail;
	return 0;
fail:
	log_err("cannot write ready file %s: %s", srv->cfg->ready_file, strerror(errno));
	return -errno;
}

/* Tell systemd (Type=notify) that we are ready, if it is listening. */
static void notify_systemd(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, path, strlen(path));
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	(void)sendto(fd, state, strlen(state), 0, (struct sockaddr *)&sa,
		     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path)));
	close(fd);
}

static int tls_setup(struct server *srv)
{
	srv->creds = server_creds_new(srv);
	return srv->creds == NULL ? CAPF_ECONFIG : 0;
}

/* fsync a directory, so that the entries made in it last. */
static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), ret = 0;

	if (fd < 0 || fsync(fd) < 0)
		ret = -errno;
	if (fd >= 0)
		close(fd);
	return ret;
}

/* mkdir(path), and if it made it, its parent synced: the new entry lasts. */
static int make_dir_durable(const char *path)
{
	char parent[4096], *slash;

	if (mkdir(path, 0700) < 0)
		return errno == EEXIST ? 0 : -errno;
	snprintf(parent, sizeof(parent), "%s", path);
	slash = strrchr(parent, '/');
	if (slash == parent)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	else
		snprintf(parent, sizeof(parent), ".");
	return sync_dir(parent);
}

struct known_issuer {
	struct ca *ca;
	uint64_t seen;
};

static int issued_by_ours(const Capf__Certificate *cert, void *arg)
{
	struct known_issuer *k = arg;
	const uint8_t *der;
	size_t len;

	if (cert->der.len == 0)
		return 0;
	k->seen++;
	return ca_issuer_of(k->ca, cert->der.data, cert->der.len, &der, &len) == 0 ? 1 : 0;
}

/*
 * The CA directory must be the one that signed the store's certificates:
 * a CA lost (a power cut before its directory entries were durable, a
 * directory restored without ca/) would otherwise be replaced by a new
 * one, and every LSC in the field would stop being trusted while the
 * store still lists them. With ca NULL (before it is opened): refuse if
 * the store has certificates but the directory has no CA at all.
 */
static int check_ca_matches_store(struct server *srv, const char *cadir, struct ca *ca)
{
	struct store_stats st;
	char link[4200];
	struct stat sb;

	store_get_stats(srv->store, &st);
	if (st.certificates == 0)
		return 0;
	if (ca == NULL) {
		snprintf(link, sizeof(link), "%s/current", cadir);
		if (lstat(link, &sb) == 0)
			return 0;
		log_err("the store in %s holds %llu certificates, but the CA directory %s has no "
			"CA: the CA that signed them is missing. capfd does not make a new CA over "
			"them; restore %s from a backup (or move the state directory away to start "
			"afresh)",
			srv->cfg->state_dir, (unsigned long long)st.certificates, cadir, cadir);
		return CAPF_ECONFIG;
	}
	{
		struct known_issuer k = { ca, 0 };
		int ret = store_cert_foreach(srv->store, issued_by_ours, &k);

		if (ret < 0) {
			log_err("cannot read the store's certificates: %s", capf_strerror(ret));
			return ret;
		}
		if (ret == 1 || k.seen == 0)
			return 0;
		log_err("none of the %llu certificates in the store %s was issued by a CA that the "
			"CA directory %s knows: it holds another CA than the one that signed them. "
			"Restore the right CA directory from a backup (or move the state directory "
			"away to start afresh)",
			(unsigned long long)k.seen, srv->cfg->state_dir, cadir);
		return CAPF_ECONFIG;
	}
}

/*
 * Starts the signer process and waits until it answers: from here on the
 * CA's keys are opened, made and used there only (keyops), never in this
 * process, which parses what phones send.
 */
static int start_signer(struct server *srv, const char *cadir, struct ca_keyops *keyops)
{
	struct signer_params p = { 0 };
	int ret;

	/* The signer checks key paths against the CA directory: it must
	 * exist before the first CA is made. */
	ret = make_dir_durable(cadir);
	if (ret < 0) {
		log_err("cannot create the CA directory %s: %s", cadir, strerror(-ret));
		return ret;
	}
	p.socket = srv->cfg->signer_socket;
	p.ca_dir = cadir;
	p.key = srv->cfg->ca_key;
	p.delay_ms = srv->cfg->signer_delay_ms;
	p.log_level = srv->cfg->log_level;
	p.log_syslog = srv->cfg->log_syslog;
	ret = signer_sup_start(srv->loop, &p, &srv->signer_sup);
	if (ret < 0) {
		log_err("cannot start the signer process: %s", uv_strerror(ret));
		return ret;
	}
	ret = signer_client_new(srv->cfg->signer_socket, srv->cfg->signer_timeout_ms,
				&srv->signer);
	if (ret < 0)
		return ret;
	ret = signer_ping(srv->signer);
	if (ret < 0) {
		log_err("the signer process does not answer on %s", srv->cfg->signer_socket);
		return ret;
	}
	if (srv->cfg->signer_delay_ms > 0)
		log_warn("[testing] signer_delay_ms = %u: every signature is delayed",
			 srv->cfg->signer_delay_ms);
	signer_keyops(srv->signer, keyops);
	return 0;
}

unsigned capfd_nofile_connections(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= (rlim_t)UINT_MAX)
		return UINT_MAX;
	return rl.rlim_cur > CAPFD_NOFILE_RESERVE ? (unsigned)(rl.rlim_cur - CAPFD_NOFILE_RESERVE)
						  : 1u;
}

int server_start(struct server *srv, struct capfd_config *cfg, uv_loop_t *loop)
{
	struct ca_config cacfg = { 0 };
	struct ca_keyops keyops;
	char cadir[4096];
	int ret, fd;
	unsigned n;

	memset(srv, 0, sizeof(*srv));
	srv->cfg = cfg;
	srv->loop = loop;
	srv->started_at = time(NULL);
	srv->nofile_connections = capfd_nofile_connections();
	pthread_mutex_init(&srv->claims_lock, NULL);
	pthread_mutex_init(&srv->creds_lock, NULL);

	ret = make_dir_durable(cfg->state_dir);
	if (ret < 0) {
		log_err("cannot create state directory %s: %s", cfg->state_dir, strerror(-ret));
		return ret;
	}

	{
		/* Torn tails dropped and faults are logged through the event. */
		struct store_options so = { .event_cb = on_store_event };
		struct store_stats st;
		uint64_t t0 = uv_hrtime();

		so.compact_bytes = (uint64_t)cfg->store_compact_mb * 1024u * 1024u;
		so.queue_max = cfg->store_queue;
		so.audit_file_bytes = (uint64_t)cfg->store_audit_file_mb * 1024u * 1024u;
		so.audit_aggregate_seconds = cfg->store_audit_aggregate_s;
		ret = store_open_opts(&srv->store, cfg->state_dir, &so);
		if (ret < 0) {
			log_err("cannot open the store: %s", store_last_error());
			return ret;
		}
		store_get_stats(srv->store, &st);
		log_info("store %s: %llu devices, %llu certificates, audit entry %llu; loaded in "
			 "%.3f s",
			 cfg->state_dir, (unsigned long long)st.devices,
			 (unsigned long long)st.certificates, (unsigned long long)st.audit_seq,
			 (double)(uv_hrtime() - t0) / 1e9);
	}

	snprintf(cadir, sizeof(cadir), "%s/ca", cfg->state_dir);
	ret = check_ca_matches_store(srv, cadir, NULL);
	if (ret < 0)
		return ret;
	ret = start_signer(srv, cadir, &keyops);
	if (ret < 0)
		return ret;
	cacfg.keyops = &keyops;
	cacfg.dir = cadir;
	cacfg.subject = cfg->ca_subject;
	cacfg.ca_days = cfg->ca_days;
	cacfg.lsc_days = cfg->lsc_days;
	cacfg.mfg_roots = cfg->mfg_roots;
	cacfg.mic_patterns = cfg->mic_patterns;
	cacfg.key = cfg->ca_key;
	cacfg.overlap_days = cfg->ca_overlap_days;
	cacfg.crl_days = cfg->crl_days;
	if (cfg->ca_key_type != NULL &&
	    (key_type_from_name(cfg->ca_key_type, &cacfg.key_type) < 0 || cacfg.key_type == 0)) {
		log_err("[ca] key_type must be ec-p256, ec-p384, rsa-2048, rsa-3072 or rsa-4096, "
			"not \"%s\"", cfg->ca_key_type);
		return CAPF_ECONFIG;
	}
	ret = ca_new(&srv->ca, &cacfg);
	if (ret < 0) {
		log_err("cannot open the CAPF CA in %s: %s", cadir, ca_last_error());
		return ret;
	}
	if (ca_start_notice(srv->ca) != NULL)
		log_warn("%s", ca_start_notice(srv->ca));
	ret = check_ca_matches_store(srv, cadir, srv->ca);
	if (ret < 0)
		return ret;
	ret = keyindex_new(&srv->keys, srv->store);
	if (ret < 0) {
		log_err("cannot index the certified keys: %s", capf_strerror(ret));
		return ret;
	}
	ret = sync_revocations(srv);
	if (ret < 0) {
		log_err("cannot reconcile the revocations of the CA and the store: %s",
			capf_strerror(ret));
		return ret;
	}
	ret = ca_crl_update(srv->ca, time(NULL));
	if (ret < 0) {
		log_err("cannot write the CRL: %s", ca_last_error());
		return ret;
	}
	if (ret > 0)
		log_warn("CRLs written, but not all: %s", ca_last_error());
	if (cfg->mfg_roots == NULL) {
		/* Roots may also have been added at run time (capfctl trust). */
		struct ca_trust_entry *roots = NULL;
		size_t nroots = 0;

		if (ca_trust_list(srv->ca, CA_TRUST_MFG, &roots, &nroots) == 0 && nroots == 0)
			log_warn("no manufacturer roots ([trust] manufacturer_roots, capfctl trust "
				 "add --mfg): no phone can authenticate by MIC");
		free(roots);
	}

	ret = tls_setup(srv);
	if (ret < 0)
		return ret;

	n = cfg->workers;
	if (n == 0) {
		long cores = sysconf(_SC_NPROCESSORS_ONLN);
		n = cores > 0 ? (unsigned)cores : 1;
	}
	srv->workers = calloc(n, sizeof(*srv->workers));
	if (srv->workers == NULL)
		return CAPF_ENOMEM;

	for (unsigned i = 0; i < n; i++) {
		int cfd = -1;

		fd = open_listener(cfg->listen, i == 0 ? cfg->port : srv->port,
				   i == 0 ? &srv->port : NULL);
		if (fd < 0)
			return fd;
		if (cfg->cisco_enabled) {
			cfd = open_listener(cfg->listen, i == 0 ? cfg->cisco_port : srv->cisco_port,
					    i == 0 ? &srv->cisco_port : NULL);
			if (cfd < 0) {
				close(fd);
				return cfd;
			}
		}
		ret = worker_start(&srv->workers[i], srv, i, fd, cfd);
		if (ret < 0) {
			close(fd);
			if (cfd >= 0)
				close(cfd);
			log_err("cannot start worker %u: %s", i, capf_strerror(ret));
			return ret;
		}
		srv->nworkers++;
	}

	ret = bridge_init(&srv->bridge, loop);
	if (ret < 0)
		return ret;
	srv->bridge_on = true;
	ret = admin_start(srv);
	if (ret < 0)
		return ret;

	uv_signal_init(loop, &srv->sigint);
	uv_signal_init(loop, &srv->sigterm);
	uv_signal_init(loop, &srv->sighup);
	srv->sigint.data = srv->sigterm.data = srv->sighup.data = srv;
	uv_signal_start(&srv->sighup, on_signal, SIGHUP);
	uv_signal_start(&srv->sigint, on_signal, SIGINT);
	uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
	srv->signals_on = true;
	uv_timer_init(loop, &srv->crl_timer);
	srv->crl_timer.data = srv;
	srv->crl_every_ms = cfg->crl_refresh_ms;
	uv_timer_start(&srv->crl_timer, on_crl_timer, srv->crl_every_ms, srv->crl_every_ms);
	srv->crl_timer_on = true;
	uv_timer_init(loop, &srv->crl_soon);
	srv->crl_soon.data = srv;
	srv->crl_soon_on = true;
	ret = uv_async_init(loop, &srv->crl_async, on_crl_async);
	if (ret < 0)
		return ret;
	srv->crl_async.data = srv;
	srv->crl_async_on = true;
	ret = sweep_start(srv);
	if (ret < 0)
		return ret;

	log_info("capfd %s listening on %s port %u with %u workers; admin socket %s",
		 PACKAGE_VERSION, cfg->listen, srv->port, srv->nworkers, cfg->admin_socket);
	if (srv->cisco_port != 0)
		log_info("Cisco CAPF v3 on %s port %u", cfg->listen, srv->cisco_port);
	ret = metrics_start(srv);
	if (ret < 0)
		return ret;
	ret = write_ready_file(srv);
	if (ret < 0)
		return ret;
	srv->started = true;
	notify_systemd("READY=1");
	return 0;
}

void server_stop(struct server *srv)
{
	if (srv->stopping)
		return;
	srv->stopping = true;
	if (srv->started)
		notify_systemd("STOPPING=1");

	/* Stop taking new work, let the workers finish or cut what is in
	 * flight, then close the store so every acknowledged write is on disk
	 * before the process exits. Joining blocks this loop, which by now
	 * serves nothing but the signals. */
	admin_stop(srv);
	metrics_stop(srv);
	for (unsigned i = 0; i < srv->nworkers; i++)
		worker_stop(&srv->workers[i]);
	for (unsigned i = 0; i < srv->nworkers; i++)
		worker_join(&srv->workers[i]);
	store_close(srv->store);
	srv->store = NULL;
	/* Last: until the workers are gone, a handshake may need a signature. */
	if (srv->signer_sup != NULL)
		unlink(srv->cfg->signer_socket);
	signer_sup_stop(srv->signer_sup);
	srv->signer_sup = NULL;
	if (srv->bridge_on)
		bridge_close(&srv->bridge);
	srv->bridge_on = false;
	if (srv->crl_timer_on) {
		uv_close((uv_handle_t *)&srv->crl_timer, NULL);
		srv->crl_timer_on = false;
	}
	if (srv->crl_async_on) {
		uv_close((uv_handle_t *)&srv->crl_async, NULL);
		srv->crl_async_on = false;
	}
	if (srv->crl_soon_on) {
		uv_close((uv_handle_t *)&srv->crl_soon, NULL);
		srv->crl_soon_on = false;
	}
	sweep_stop(srv);
	if (srv->signals_on) {
		uv_close((uv_handle_t *)&srv->sigint, NULL);
		uv_close((uv_handle_t *)&srv->sigterm, NULL);
		uv_close((uv_handle_t *)&srv->sighup, NULL);
		srv->signals_on = false;
	}
	/* Only a server that started owns the ready file: a second capfd
	 * refused by the lock must not remove the first one's. */
	if (!srv->started)
		return;
	if (srv->cfg->ready_file != NULL)
		unlink(srv->cfg->ready_file);
	log_info("stopped: %llu enrollments, %llu failures",
		 (unsigned long long)atomic_load(&srv->enrollments),
		 (unsigned long long)atomic_load(&srv->failures));
}

void server_free(struct server *srv)
{
	struct claim *c, *ctmp;
	struct source_count *s, *stmp;

	store_close(srv->store);
	srv->store = NULL;
	free(srv->workers);
	srv->workers = NULL;
	server_creds_put(srv->creds);
	srv->creds = NULL;
	ca_free(srv->ca);
	srv->ca = NULL;
	signer_client_free(srv->signer);
	srv->signer = NULL;
	keyindex_free(srv->keys);
	srv->keys = NULL;
	HASH_ITER(hh, srv->claims, c, ctmp)
	{
		HASH_DEL(srv->claims, c);
		free(c);
	}
	HASH_ITER(hh, srv->sources, s, stmp)
	{
		HASH_DEL(srv->sources, s);
		free(s);
	}
	pthread_mutex_destroy(&srv->claims_lock);
	pthread_mutex_destroy(&srv->creds_lock);
}
