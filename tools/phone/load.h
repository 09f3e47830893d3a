/*
 * tools/phone/load.h - what the files of capf-phone load share: the run's
 * options and per-phone state (load.c), the key pool and MICs
 * (load_pool.c), a Cisco CAPF v3 session as load makes it (load_cisco.c)
 * and the idle connections (load_idle.c).
 *
 * Glossary
 *   closed loop  C phones, each starting its next enrollment when the last
 *                one ends: the rate is what the server (or the client)
 *                can take.
 *   open loop    enrollments start on a schedule (--rate R: one every 1/R
 *                seconds), whatever the server does; a phone's latency is
 *                counted from its scheduled start, so that queueing shows.
 *   key pool     --key-pool N: N MIC keys of l->mic_type, phone i's MIC
 *                made with key i mod N (MICs may share a key), and one
 *                new key per phone made before the run (the server
 *                refuses a key certified for another device, so these
 *                cannot be shared), read from --key-file and the missing
 *                ones added to it, so that a second run makes none: the
 *                simulator's CPU in the run goes to the protocol, not to
 *                key generation (an RSA-2048 key costs tens of ms).
 */
#ifndef CAPF_TOOLS_PHONE_LOAD_H
#define CAPF_TOOLS_PHONE_LOAD_H

#include <pthread.h>
#include <stdatomic.h>

#include "tools/phone/phone.h"

enum load_protocol {
	LOAD_NATIVE = 0,
	LOAD_CISCO,
};

struct load {
	/* options */
	const char *mfg_dir;
	const char *ca_file;
	const char *socket;
	const char *host;
	const char *port;
	const char *prefix;
	const char *record_path;    /* --record: "DEVICE SERIAL" per certificate received */
	const char *transcripts;    /* --transcripts: DIR/DEVICE.jsonl per phone, or NULL */
	const char *lsc_out;        /* --lsc-out: every LSC received, with its key */
	const char *lsc_in;         /* --lsc-in: phones present these LSCs */
	const char *key_file;       /* --key-file: the phones' new keys, kept across runs */
	unsigned long keys_read;    /* of them, read from key_file */
	int record_fd;
	enum load_protocol protocol;
	int key_type;               /* what the device records ask for (capf KeyType) */
	int mic_type;               /* the MICs' key type */
	unsigned long key_pool;     /* 0: a fresh key per phone and per MIC */
	unsigned long verify_every; /* --verify-every: 1 LSC signature in N verified */
	atomic_ulong chains_verified; /* handshakes that verified the server's chain */
	atomic_ulong chains_cached;   /* handshakes that met a chain verified before */
	unsigned long count;
	unsigned long concurrency;
	unsigned long retries;      /* --retry: attempts after a retry-later or lost connection */
	unsigned long idle;         /* --idle N: hold N connections instead of enrolling */
	unsigned long hold;         /* --hold: seconds the idle connections stay open */
	double rate;                /* --rate: open loop, enrollments per second; 0 closed */
	bool no_setup;              /* --no-setup: the devices are there already */
	bool json;
	enum client_groups groups;  /* --groups: what the TLS handshake offers */
	atomic_ulong retried;
	double start;               /* phone_now() at the start of the enrollments */
	double deadline;            /* phone_now() after which no enrollment starts */

	/* the key pool (load_pool.c) */
	gnutls_x509_privkey_t *lsc_keys;
	gnutls_x509_privkey_t *mic_keys;

	/* per phone */
	char (*names)[DEVICE_NAME_MAX + 1];
	struct pki_pair *mics;
	struct pki_pair *lscs;      /* --lsc-in, or what --lsc-out saves */
	double *latency_ms;
	int *result;                /* 0 ok, negative capf code, 1 = not started */
	uint16_t *group;            /* the TLS key exchange group (gnutls_group_t) */

	atomic_ulong next;
	atomic_ulong finished;
	atomic_ulong exited;        /* threads that returned */
	atomic_int setup_failed;
	pthread_mutex_t err_lock;   /* serialises error messages */
};

/* Setup threads and key generation use at most this many threads. */
#define LOAD_SETUP_THREADS_MAX 8ul

/* ---- load_pool.c ---- */

/*
 * load_pool_make() - l->key_pool MIC keys of l->mic_type (when mics_too)
 * and l->count new keys of l->key_type (the first ones read from
 * l->key_file, the others made and appended to it), by up to
 * LOAD_SETUP_THREADS_MAX threads. Nothing with key_pool 0. Returns 0 or
 * a capf error.
 */
int load_pool_make(struct load *l, bool mics_too);

/* load_pool_free() - release the pool. */
void load_pool_free(struct load *l);

/* load_lsc_key() - the new key of phone i, made before the run (not a
 * copy), or NULL when there is no pool and the phone makes its own. */
gnutls_x509_privkey_t load_lsc_key(const struct load *l, unsigned long i);

/*
 * load_make_mic() - the MIC of phone i: subject CN = its name, signed by
 * issuer with SHA-256, the pooled key i mod N (a copy) or a new key of
 * l->mic_type. Returns 0 or a capf error.
 */
int load_make_mic(const struct load *l, const struct pki_pair *issuer, unsigned long i,
		  struct pki_pair *out);

/*
 * load_lsc_write() - append "NAME CERT-HEX KEY-HEX" (DER, the key in
 * PKCS#8) for each phone that has an LSC in l->lscs to l->lsc_out.
 * load_lsc_read() - read such a file: l->count, names and lscs (the
 * count capped by --count when given). Both return 0 or a capf error.
 */
int load_lsc_write(const struct load *l);
int load_lsc_read(struct load *l, unsigned long max);

/* ---- load_report.c ---- */

/* What the simulator itself spent in the run, from getrusage(). */
struct load_cpu {
	double user_ms, sys_ms;
};

/*
 * load_report() - print the run: results and failures by error, wall
 * time, rate, latency percentiles, TLS groups, keys, the server's CPU
 * (cpu_ms of pid, -1 if unknown) and own's, per enrollment; and the JSON
 * line with --json.
 */
void load_report(const struct load *l, double wall, double cpu_ms, uint32_t pid,
		 const struct load_cpu *own);

/* load_server_pid() - capfd's pid from the admin status, 0 if unknown. */
uint32_t load_server_pid(const char *socket_path);

/* load_proc_cpu_ms() - utime + stime of a local capfd in ms, or -1 when
 * it cannot be read or is not a capfd. */
double load_proc_cpu_ms(uint32_t pid);

/* load_key_csr_rate() - P-256 keys and CSRs one thread makes per second. */
double load_key_csr_rate(void);

/* ---- load_cisco.c ---- */

/*
 * load_cisco_enroll() - one Cisco CAPF v3 session of phone i, as a Cisco
 * phone runs it: TLS without a client certificate, AUTH_RESPONSE with its
 * name and its MIC signed over the name (SHA-512), the pooled (or a new)
 * key's SubjectPublicKeyInfo when asked, the certificate checked against
 * trust and stored. Returns 0 (END_SESSION reason 1), CAPF_ERETRY
 * (RETRY_LATER), CAPF_EREJECTED (another reason; *reason says which), a
 * client_tls_open() error or CAPF_EPROTO. *group is the TLS group.
 */
int load_cisco_enroll(const struct load *l, unsigned long i, const struct client_trust *trust,
		      unsigned timeout_ms, int *group, unsigned *reason);

/* ---- load_idle.c ---- */

/*
 * load_idle_run() - open l->idle TLS sessions (MIC as client certificate)
 * with l->concurrency threads, say so on stdout, hold them without a
 * byte sent until l->hold seconds have passed or SIGTERM/SIGINT comes,
 * then close them. Returns an exit status.
 */
int load_idle_run(struct load *l);

#endif /* CAPF_TOOLS_PHONE_LOAD_H */
