/*
 * capf/capfd.h - the daemon's internal interfaces.
 *
 * Glossary
 *   server   the process-wide state: config, CA, store, counters, the main
 *            loop (signals, admin socket) and the workers.
 *   worker   a thread with its own libuv loop and its own listening socket
 *            on the phone port (SO_REUSEPORT: the kernel spreads the
 *            connections over the workers). A connection lives and dies on
 *            one worker.
 *   conn     one phone connection: TCP, TLS, frame decoder, and its
 *            enrollment state machine (capf/enroll.h).
 *   bridge   how a store completion (which runs on the store's writer
 *            thread) comes back to the loop that asked for it: a queue
 *            and a uv_async_t per loop.
 */
#ifndef CAPF_CAPFD_H
#define CAPF_CAPFD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <uv.h>

#include "capf/outcome.h"
#include "capf/tls_prio.h"
#include "proto/proto.h"

struct ca;
struct store;
struct conn;
struct signer_chan;
struct signer_client;
struct signer_sup;

#define CAPFD_DEFAULT_PORT 3804
/* TLS 1.2 or 1.3; AEAD suites with ECDHE only (no static RSA, no finite
 * field DH, no CBC); no SHA-1 or SHA-224 signatures. The server's order
 * of suites, AES-128-GCM first (the suite every TLS 1.3 peer has, RFC
 * 8446 9.1: its key schedule on SHA-256 costs less than SHA-384's); the
 * group follows the phone's key share (capf/tls_prio.c). */
#define CAPFD_DEFAULT_PRIORITY                                                                     \
	"NORMAL:%SERVER_PRECEDENCE:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM:"    \
	"+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-CCM:+AES-256-CCM:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:" \
	"+ECDHE-RSA:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:+GROUP-SECP521R1:"    \
	"-SIGN-RSA-SHA1:-SIGN-ECDSA-SHA1:-SIGN-DSA-SHA1:-SIGN-RSA-SHA224:-SIGN-ECDSA-SHA224:"        \
	"-SIGN-DSA-SHA224"
/* Phones in the field: the same by default, so that nothing weaker is
 * served unless an operator adds it for an old fleet ([cisco] priority). */
#define CAPFD_CISCO_PRIORITY CAPFD_DEFAULT_PRIORITY

struct capfd_config {
	char *state_dir;
	char *listen;          /* address to listen on */
	unsigned port;
	unsigned workers;      /* 0 = one per core */
	char *admin_socket;    /* NULL = <state_dir>/capfd.sock */
	unsigned admin_mode;   /* 0600, 0660 or 0666 (with roles) */
	/* [admin]: who may use the admin socket, and how (capf/admin_role.c):
	 * lists of user names or uids, group names or gids. None set: whoever
	 * can open the socket administers. */
	char *admin_users;
	char *admin_group;
	char *readonly_users;
	char *readonly_group;
	/* [metrics]: the HTTP listener of the Prometheus metrics (NULL: off). */
	char *metrics_listen;
	/* Where each option was set: the file (NULL: none read) and, per
	 * option of the table in capf/config.c, its line (0: not from it). */
	char *config_file;
	unsigned lines[96];
	/* The command line's options, applied over the file again by a
	 * reload (pointers into argv). */
	const char *cli[16][3];
	size_t ncli;
	bool verbose;          /* -v: debug whatever the file says */
	char *mfg_roots;       /* manufacturer roots (PEM) */
	char *mic_patterns;    /* [trust] mic_patterns */
	char *ca_subject;
	unsigned ca_days;
	unsigned lsc_days;
	unsigned supersede_grace;  /* seconds a replaced LSC stays valid; 0 = revoked at once */
	unsigned renew_window;     /* percent of an LSC's life at its end: renewal; 0 = off */
	/* [auth]: authentication strings and the null string. */
	bool allow_null_string;
	unsigned max_auth_failures;
	unsigned lockout_seconds;
	/* The CAPF CA (doc/ca-lifecycle.md). */
	char *ca_key;          /* key of the first CA: a file or a pkcs11: URI */
	char *ca_key_type;     /* type of new CA keys: ec-p256, rsa-3072, ... */
	unsigned ca_overlap_days;
	unsigned crl_days;
	unsigned crl_refresh_ms;
	char *tls_priority;
	/* [cisco]: Cisco's CAPF v3 on its own port. */
	bool cisco_enabled;
	unsigned cisco_port;       /* 0 = any free one (tests) */
	char *cisco_priority;
	unsigned cisco_max_in_progress;
	unsigned handshake_timeout_ms;
	unsigned idle_timeout_ms;
	unsigned session_timeout_ms;
	unsigned shutdown_timeout_ms;
	unsigned max_connections;
	unsigned max_per_source;
	unsigned max_frame;
	unsigned max_messages;
	int log_level;
	bool log_syslog;
	char *ready_file;
	/* The store (doc/store-format.md). */
	unsigned store_compact_mb; /* snapshot once a segment reaches this size */
	unsigned store_queue;      /* txns and audit events that may wait for the writer */
	unsigned store_audit_file_mb;     /* next audit file once one reaches this size */
	unsigned store_audit_aggregate_s; /* unauthenticated failures: one entry per source per */
	bool fault_injection;      /* [testing]: allow capfctl store fault */
	unsigned signer_delay_ms;  /* [testing]: the signer sleeps before each signature */
	/* The signer process (doc/signer.md). */
	unsigned signer_queue;      /* requests in flight per worker channel */
	unsigned signer_timeout_ms; /* per request */
	char *signer_socket;        /* NULL = <state_dir>/signer.sock */
};

/* config_defaults() - the embedded defaults (doc/capfd.conf.5). */
void config_defaults(struct capfd_config *cfg);

/* config_load() - read an INI file over cfg. Returns 0, or CAPF_ECONFIG
 * after printing to stderr which line and option are wrong. */
int config_load(struct capfd_config *cfg, const char *path);

/* config_set() - set one option by section and name (also used by the
 * command line). Returns 0 or CAPF_ECONFIG with a message in errbuf. */
int config_set(struct capfd_config *cfg, const char *section, const char *name,
	       const char *value, char *errbuf, size_t errlen);

/* config_finish() - derive the unset paths from state_dir and check the
 * whole; 0 or CAPF_ECONFIG with a message in errbuf. */
int config_finish(struct capfd_config *cfg, char *errbuf, size_t errlen);

/*
 * config_where() - where [section] name got its value, for messages:
 * "FILE:LINE" when the config file set it, else "the command line or the
 * defaults". The string is static: use it before the next call.
 */
const char *config_where(const struct capfd_config *cfg, const char *section, const char *name);

/*
 * config_check() - what config_finish() cannot see: the listen address,
 * the manufacturer roots (a file of certificates), the TLS priority
 * strings, the CA key type, the metrics listener. Every bad value is
 * reported on stderr with where it was set and what is wrong; nothing
 * is created. Returns 0 or CAPF_ECONFIG (capf/config_check.c).
 */
int config_check(const struct capfd_config *cfg);

/*
 * config_diff() - call cb for every option whose value differs between a
 * and b, in the order of the option table.
 */
void config_diff(const struct capfd_config *a, const struct capfd_config *b,
		 void (*cb)(const char *section, const char *name, void *arg), void *arg);

/* What a SIGHUP does with an option that changed (capf/reload.c). */
enum config_reload {
	CONFIG_RESTART,   /* nothing: it takes effect at the next start */
	CONFIG_LIVE,      /* config_apply_live(): read with CFG_LIVE() */
	CONFIG_ROLES,     /* [admin]: the admin connections that follow */
	CONFIG_METRICS,   /* [metrics] listen: the listener started again */
	CONFIG_TLS,       /* a priority string: new TLS credentials */
	CONFIG_TRUST,     /* [trust]: ca_trust_reload() */
	CONFIG_LOG_LEVEL, /* [log] level */
};

/*
 * config_reload_of() - what SIGHUP does when [section] name changed (an
 * unknown option: CONFIG_RESTART). *why (if why is not NULL) gets the
 * phrase for the log line: for CONFIG_LIVE who uses the new value, for
 * CONFIG_RESTART why it waits for a restart; "" for the others. The
 * string is static.
 */
enum config_reload config_reload_of(const char *section, const char *name, const char **why);

/*
 * config_apply_live() - if [section] name is an option read live
 * (CONFIG_LIVE: workers and the main loop's timers read it with
 * CFG_LIVE()), store src's value of it into dst and return true; else
 * false.
 */
bool config_apply_live(struct capfd_config *dst, const struct capfd_config *src,
		       const char *section, const char *name);

struct server;
/* server_reload() - SIGHUP: read the configuration file again
 * (capf/reload.c). A bad one is refused, with its messages, and the
 * running one kept. */
void server_reload(struct server *srv);

/* server_live_changed() - after a reload applied CONFIG_LIVE options:
 * the main loop's timers follow them (the CRL timer, the sweep). */
void server_live_changed(struct server *srv);

/*
 * The sweep of superseded LSCs ([ca] supersede_grace, capf/sweep.c), on
 * the main loop. sweep_start() arms it at start; sweep_follow() re-arms
 * it when the grace changed (a reload); sweep_stop() closes its timer.
 */
int sweep_start(struct server *srv);
void sweep_follow(struct server *srv);
void sweep_stop(struct server *srv);

/* config_admin_roles() - whether any [admin] role is configured. */
bool config_admin_roles(const struct capfd_config *cfg);

void config_deinit(struct capfd_config *cfg);

/* A store completion travelling back to a loop. */
struct bridge_item {
	struct bridge_item *next;
	struct bridge *bridge;
	void (*fn)(void *arg, int result);
	void *arg;
	int result;
};

struct bridge {
	uv_async_t async;
	pthread_mutex_t lock;
	struct bridge_item *head, *tail;
};

/* bridge_init() - attach to loop; bridge_close() closes the handle. */
int bridge_init(struct bridge *b, uv_loop_t *loop);
void bridge_close(struct bridge *b);

/*
 * bridge_submit() - store_submit() whose completion runs fn(arg, result)
 * on the bridge's loop. Returns 0, or the store_submit() error (then fn
 * is not called).
 */
int bridge_submit(struct bridge *b, struct store *st, Capf__StoreRecord *const *recs, size_t n,
		  void (*fn)(void *arg, int result), void *arg);

/* bridge_submit_audit() - bridge_submit() with an audit event written in
 * the same group commit (store_submit_audit()); ev may be NULL. */
struct store_audit_event;
int bridge_submit_audit(struct bridge *b, struct store *st, Capf__StoreRecord *const *recs,
			size_t n, const struct store_audit_event *ev,
			void (*fn)(void *arg, int result), void *arg);
/* bridge_submit_opts() - bridge_submit_audit(), lazy: store_submit_lazy(). */
int bridge_submit_opts(struct bridge *b, struct store *st, Capf__StoreRecord *const *recs,
		       size_t n, const struct store_audit_event *ev, bool lazy,
		       void (*fn)(void *arg, int result), void *arg);

struct worker {
	struct server *srv;
	unsigned id;
	pthread_t thread;
	uv_tcp_t cisco_listener;   /* Cisco CAPF v3, when [cisco] port is set */
	bool cisco_on;
	uv_loop_t loop;
	uv_tcp_t listener;
	uv_async_t stop_async;
	uv_timer_t drain_timer;
	/* Audit events queued quietly (store_audit_quiet()) reach the writer
	 * at most CAPFD_QUIET_AUDIT_MS after the first of them, whether or
	 * not their session writes again (worker_audit_quiet()). */
	uv_timer_t quiet_timer;
	struct bridge bridge;
	struct signer_chan *signer; /* this loop's channel to the signer */
	struct conn *conns;      /* list of live connections */
	unsigned nconns;
	bool stopping;
	int listen_fd;
};

struct source_count;

/*
 * CFG_LIVE() - read an option that SIGHUP may change while workers run
 * ([limits], [auth], [ca] renew_window and supersede_grace, [cisco]
 * max_in_progress...: the CONFIG_LIVE ones of capf/config.c's table).
 * Each read is whole; a session reads the values once where they matter
 * and keeps what it read.
 */
#define CFG_LIVE(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

/* Descriptors capfd needs besides its phone connections: the store's
 * files, the signer's sockets, admin and metrics clients, the CA's files. */
#define CAPFD_NOFILE_RESERVE 64u

/* capfd_nofile_connections() - RLIMIT_NOFILE less CAPFD_NOFILE_RESERVE
 * (UINT_MAX without a limit). */
unsigned capfd_nofile_connections(void);

struct server {
	struct capfd_config *cfg;
	struct ca *ca;
	struct store *store;
	unsigned cisco_port;           /* actual bound port, 0 = off */
	/* The TLS credentials new sessions take (server_creds_get()):
	 * replaced when the CA or the trust stores change, freed when the
	 * last session holding the old ones ends. */
	pthread_mutex_t creds_lock;
	struct tls_creds *creds;
	uv_timer_t crl_timer;          /* regenerates the CRL (crl_refresh) */
	bool crl_timer_on;
	uv_async_t crl_async;          /* a worker recorded revocations: regenerate */
	bool crl_async_on;
	/* Revocations in a row (a re-key supersedes an LSC per phone) are
	 * published together: at most one CRL per CRL_COALESCE_MS, the next
	 * one at the end of that time (crl_soon). */
	uv_timer_t crl_soon;
	bool crl_soon_on;
	uint64_t crl_signed_at;        /* uv_now() of the last CRL signed for revocations */
	unsigned crl_every_ms;         /* the period crl_timer runs with */
	/* The sweep of superseded LSCs (capf/sweep.c). */
	uv_timer_t sweep_timer;        /* revokes superseded LSCs after their grace */
	bool sweep_timer_on;
	unsigned sweep_grace;          /* the [ca] supersede_grace it follows */
	unsigned sweep_session_max_ms; /* the longest [limits] session_timeout in force */
	time_t sweep_linger_until;     /* grace 0: sweep until then, for sessions in flight */

	uv_loop_t *loop;               /* main loop: signals, admin */
	uv_signal_t sigint, sigterm, sighup;
	uv_pipe_t admin;
	time_t started_at;
	struct metrics *metrics;       /* capf/metrics.c */
	struct bridge bridge;
	bool admin_open, bridge_on, signals_on;

	/* The signer process, kept running by the main loop, and the pool
	 * of blocking connections that ca/'s keyops use. */
	struct signer_sup *signer_sup;
	struct signer_client *signer;

	struct worker *workers;
	unsigned nworkers;
	unsigned port;                 /* actual bound port */
	bool stopping;
	bool started;                  /* fully up: owns the ready file */

	/* Devices with a session in progress, and connections per source. */
	pthread_mutex_t claims_lock;
	struct claim *claims;
	struct keyindex *keys;         /* public key -> the device certified for it */
	struct source_count *sources;

	atomic_uint_fast64_t enrollments;
	atomic_uint_fast64_t failures;
	atomic_uint_fast64_t connections;  /* accepted, total */
	atomic_uint active_connections;
	/* The phone connections the open-files limit leaves room for
	 * (capfd_nofile_connections()): the limit in force when it is below
	 * [limits] max_connections, so that accept() never runs out of
	 * descriptors (a worker's loop would spin on EMFILE, its timers
	 * starved) and what is over it is refused at once, as over
	 * max_connections. */
	unsigned nofile_connections;
	struct outcomes outcomes;          /* by operation, result, code; latencies */
};

/* Reference-counted TLS credentials: a session holds a reference from
 * accept to free, so a change never pulls them from under it. */
struct tls_creds {
	gnutls_certificate_credentials_t cred;
	struct tls_prio prio;       /* [tls] priority */
	struct tls_prio cisco_prio; /* [cisco] priority, empty if Cisco is off */
	atomic_int refs;
};

/* server_creds_new() - credentials made from the CA and the priorities of
 * srv's configuration, with one reference; NULL (logged) on an error
 * (capf/tls_creds.c, with the two below). */
struct tls_creds *server_creds_new(struct server *srv);

/* server_creds_get() - the current credentials, with a reference. */
struct tls_creds *server_creds_get(struct server *srv);

/* server_creds_put() - drop a reference (frees the last). Accepts NULL. */
void server_creds_put(struct tls_creds *creds);

/*
 * server_ca_changed() - the CA, a trust store or a TLS priority changed:
 * make new TLS credentials (certificate, trust, priorities) for the
 * sessions that start from now on, and regenerate
 * the CRL. Sessions in flight keep theirs. Returns 0 or the error
 * (logged; the old credentials stay).
 */
int server_ca_changed(struct server *srv);

/* server_start() - open CA and store, bind, start workers and the admin
 * socket. Fatal errors are logged with what to fix; returns < 0 then. */
int server_start(struct server *srv, struct capfd_config *cfg, uv_loop_t *loop);

/* server_stop() - graceful: stop accepting, let sessions waiting on the
 * store finish (up to shutdown_timeout), cut the others, join workers. */
void server_stop(struct server *srv);

/* server_free() - release what server_start() made. */
void server_free(struct server *srv);

/* ---- capf/keyindex.c ---- */
struct keyindex;

/* keyindex_new() - every certified key of the store (SHA-256 of its SPKI)
 * with its device. Returns 0 and *out (keyindex_free()), or the error. */
int keyindex_new(struct keyindex **out, struct store *st);
void keyindex_free(struct keyindex *ki);

/* keyindex_add() - key sha is certified for device (the first device
 * keeps it). Any thread. Returns 0, CAPF_EINVAL, CAPF_ENOMEM. */
int keyindex_add(struct keyindex *ki, const uint8_t sha[32], const char *device);

/* keyindex_other() - true, with its name in other, if key sha is
 * certified for another device than device. Any thread. */
bool keyindex_other(struct keyindex *ki, const uint8_t sha[32], const char *device, char *other,
		    size_t len);

/* server_crl_dirty() - from any thread: revocations were recorded, make
 * new CRLs on the main loop. */
void server_crl_dirty(struct server *srv);

/* claim/release of a device name for a session. */
int server_claim(void *arg, const char *device);
void server_release(void *arg, const char *device);

/* source_acquire() - count a connection from addr; CAPF_ELIMIT over the
 * per-source limit. source_release() undoes it. */
int source_acquire(struct server *srv, const char *addr);
void source_release(struct server *srv, const char *addr);

/* worker_start()/worker_stop()/worker_join() - see capf/worker.c. */
int worker_start(struct worker *w, struct server *srv, unsigned id, int listen_fd,
		 int cisco_fd);
void worker_stop(struct worker *w);
void worker_join(struct worker *w);

/* How long an audit event queued quietly may wait for its session's next
 * write before the writer is woken for it: what a capfd killed meanwhile
 * can lose of it. */
#define CAPFD_QUIET_AUDIT_MS 10u

/* worker_audit_quiet() - an audit event was queued quietly on this worker's
 * loop: the writer is woken for it within CAPFD_QUIET_AUDIT_MS. */
void worker_audit_quiet(struct worker *w);

/* worker_maybe_finish() - called when a connection goes away: a stopping
 * worker with no connections left closes its handles. */
void worker_maybe_finish(struct worker *w);

/* The wire protocol of a listener. */
enum conn_proto {
	CONN_NATIVE = 0, /* capf's own (proto/capf.proto) */
	CONN_CISCO,      /* Cisco CAPF version 3 */
};

/* conn_accept() - accept one connection on w's listener of that protocol. */
void conn_accept(struct worker *w, enum conn_proto proto);

/* conn_next() - the next connection of the same worker, or NULL. */
struct conn *conn_next(struct conn *c);

/* conn_shutdown() - the worker is stopping: close the connection unless it
 * waits for the store (then it closes when the write completes). force
 * cuts it regardless. */
void conn_shutdown(struct conn *c, bool force);

/* admin_start() - listen on the admin socket (mode from config). */
int admin_start(struct server *srv);
void admin_stop(struct server *srv);

#endif /* CAPF_CAPFD_H */
