/*
 * capf-phone load - enroll many simulated phones concurrently and report
 * throughput, latency and the server's CPU cost per enrollment.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <sys/resource.h>

#include "tools/phone/load.h"

#define LOAD_PREFIX_DEFAULT "SEPLOAD"
#define LOAD_TIMEOUT_DEFAULT 120ul
#define LOAD_COUNT_MAX 0xfffffful     /* six hex digits */
#define LOAD_CONCURRENCY_MAX 4096ul
#define LOAD_PHONE_TIMEOUT_MS 30000u
#define LOAD_RETRY_MAX 100ul
#define LOAD_RETRY_PAUSE_US 200000u
#define LOAD_KEY_POOL_DEFAULT 64ul
#define LOAD_KEY_POOL_MAX 100000ul
#define LOAD_IDLE_MAX 1000000ul
#define LOAD_HOLD_DEFAULT 60ul

enum {
	OPT_PROTOCOL = 256,
	OPT_KEY_TYPE,
	OPT_MIC_TYPE,
	OPT_KEY_POOL,
	OPT_GROUPS,
	OPT_RATE,
	OPT_NO_SETUP,
	OPT_LSC_OUT,
	OPT_LSC_IN,
	OPT_IDLE,
	OPT_HOLD,
	OPT_JSON,
	OPT_KEY_FILE,
	OPT_VERIFY_EVERY,
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " PHONE_PROG " load --count N --concurrency C --mfg-dir DIR --ca FILE\n"
		"         [--socket PATH] [--host HOST] [--port PORT] [--prefix PREFIX]\n"
		"         [--timeout SECONDS] [--record FILE] [--transcripts DIR] [--retry N]\n"
		"         [--protocol native|cisco] [--key-type T] [--mic-type T] [--key-pool N]\n"
		"         [--groups x25519|p256|default] [--rate R] [--no-setup]\n"
		"         [--lsc-out FILE] [--lsc-in FILE] [--idle N [--hold S]] [--json]\n"
		"         [--key-file FILE] [--verify-every N]\n"
		"Add N devices through the admin socket, then enroll them with C phones at a\n"
		"time, and report rates, latencies, the server's CPU time per enrollment and\n"
		"the simulator's own.\n"
		"\n"
		"  -n, --count N          number of phones (1..%lu)\n"
		"  -j, --concurrency C    phones enrolling at the same time (1..%lu)\n"
		"  -m, --mfg-dir DIR      test manufacturer CA made by '" PHONE_PROG " mkmic'\n"
		"  -c, --ca FILE          the CAPF CA certificate to trust (PEM)\n"
		"  -s, --socket PATH      capfd's admin socket, default $CAPF_SOCKET or\n"
		"                         " CLIENT_ADMIN_SOCKET_DEFAULT "\n"
		"  -H, --host HOST        capfd's address, default 127.0.0.1\n"
		"  -p, --port PORT        capfd's port (its [cisco] port with --protocol cisco),\n"
		"                         default " CLIENT_PHONE_PORT_DEFAULT "\n"
		"  -P, --prefix PREFIX    device names are PREFIX and 6 hex digits,\n"
		"                         default " LOAD_PREFIX_DEFAULT "\n"
		"  -t, --timeout SECONDS  start no enrollment after this long, default %lu\n"
		"  -r, --record FILE      append \"DEVICE SERIAL\" (hex) to FILE for every\n"
		"                         certificate a phone received, whatever happened next\n"
		"      --transcripts DIR  a transcript of every session of phone NAME in\n"
		"                         DIR/NAME.jsonl (doc/transcript.md; native only)\n"
		"  -R, --retry N          enroll a phone again, up to N times (0..%lu) after a\n"
		"                         short pause, when the server said retry-later or the\n"
		"                         connection or handshake failed; default 0\n"
		"      --protocol P       native (capf's own, the default) or cisco (Cisco CAPF\n"
		"                         v3, the phone authenticated by its MIC in the protocol)\n"
		"      --key-type T       the key the device records ask for: ec-p256 (default),\n"
		"                         ec-p384, rsa-2048, ...\n"
		"      --mic-type T       the MICs' key type, default ec-p256\n"
		"      --key-pool N       make N MIC keys before the run (phone i's MIC has key\n"
		"                         i mod N) and each phone's new key too, so that the run\n"
		"                         measures the protocol; 0 makes every key when needed,\n"
		"                         as phones do; default %lu\n"
		"      --key-file FILE    read the phones' new keys from FILE and add the ones\n"
		"                         missing, so that the next run makes none (RSA)\n"
		"      --groups G         what the TLS handshake offers: x25519 (the default: X25519\n"
		"                         then P-256, one key share, X25519), p256 (secp256r1\n"
		"                         only) or default (GnuTLS's, shares for P-256 and X25519)\n"
		"      --rate R           open loop: start one enrollment every 1/R seconds (up to\n"
		"                         C at once), latency counted from the scheduled start\n"
		"      --no-setup         the devices are there already (e.g. a bulk import)\n"
		"      --verify-every N   verify the signature of 1 LSC in N (every LSC's key and\n"
		"                         name are checked); default 1, all of them\n"
		"      --lsc-out FILE     write every LSC received, with its key, to FILE\n"
		"      --lsc-in FILE      the phones of FILE (--lsc-out) present their LSC\n"
		"      --idle N           instead of enrolling: open N TLS connections with C\n"
		"                         threads and hold them, sending nothing, for --hold\n"
		"                         seconds (default %lu) or until SIGTERM\n"
		"      --json             also one JSON line of the figures\n"
		"  -h, --help             show this help\n"
		"\n"
		"Exit status: 0 all enrolled, 1 some did not, 2 usage, 3 cannot connect.\n",
		LOAD_COUNT_MAX, LOAD_CONCURRENCY_MAX, LOAD_TIMEOUT_DEFAULT, LOAD_RETRY_MAX,
		LOAD_KEY_POOL_DEFAULT, LOAD_HOLD_DEFAULT);
}

/* Records the first setup failure (exit status code) and reports only it:
 * the other threads usually hit the same cause. */
static void setup_fail(struct load *l, int code, const char *what, const char *name,
		       const char *text)
{
	int expected = 0;

	if (!atomic_compare_exchange_strong(&l->setup_failed, &expected, code))
		return;
	pthread_mutex_lock(&l->err_lock);
	fprintf(stderr, PHONE_PROG " load: %s %s: %s\n", what, name, text);
	pthread_mutex_unlock(&l->err_lock);
}

/* Adds (or resets) one device: install, MIC authentication, l->key_type. */
static int put_device(struct load *l, struct client_admin *a, const char *name)
{
	Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
	Capf__DevicePut put = CAPF__DEVICE_PUT__INIT;
	Capf__Device dev = CAPF__DEVICE__INIT;
	Capf__AdminResponse *resp = NULL;
	int ret;

	dev.name = (char *)name;
	dev.op = CAPF__OPERATION__OP_INSTALL;
	dev.auth = CAPF__AUTH_MODE__AUTH_MIC;
	dev.key_type = (Capf__KeyType)l->key_type;
	put.device = &dev;
	put.create = 1;
	req.body_case = CAPF__ADMIN_REQUEST__BODY_DEVICE_PUT;
	req.device_put = &put;
	ret = client_admin_call(a, &req, &resp);
	if (ret == 0 && resp->code == (uint32_t)-CAPF_EEXIST) {
		capf__admin_response__free_unpacked(resp, NULL);
		resp = NULL;
		put.create = 0;
		ret = client_admin_call(a, &req, &resp);
	}
	if (ret < 0) {
		setup_fail(l, PHONE_EXIT_CONNECT, "admin socket failed on", name,
			   capf_strerror(ret));
		return PHONE_EXIT_CONNECT;
	}
	if (resp->code != 0) {
		char text[300];

		snprintf(text, sizeof(text), "%s: %s", capf_errname((int)resp->code),
			 resp->text && *resp->text ? resp->text : capf_strerror((int)resp->code));
		setup_fail(l, PHONE_EXIT_FAIL, "cannot add device", name, text);
		capf__admin_response__free_unpacked(resp, NULL);
		return PHONE_EXIT_FAIL;
	}
	capf__admin_response__free_unpacked(resp, NULL);
	return 0;
}

/*
 * Setup thread: makes MICs and adds devices. Each thread has its own copy
 * of the manufacturer CA and its own admin connection, so that no GnuTLS
 * object is shared between threads.
 */
static void *setup_thread(void *arg)
{
	struct load *l = arg;
	struct client_admin a = { .fd = -1 };
	struct pki_pair ca = { NULL, NULL };
	unsigned long i;
	int ret;

	/* Phones that present their LSCs (--lsc-in) need no MIC. */
	ret = l->lsc_in ? 0 : phone_mfg_ca_load(l->mfg_dir, &ca);
	if (ret < 0) {
		setup_fail(l, PHONE_EXIT_FAIL, "cannot read the manufacturer CA in", l->mfg_dir,
			   capf_strerror(ret));
		goto out;
	}
	ret = l->no_setup ? 0 : client_admin_open(&a, l->socket, 0);
	if (ret < 0) {
		setup_fail(l, PHONE_EXIT_CONNECT, "cannot connect to", l->socket,
			   strerror(-ret));
		goto out;
	}
	while (!atomic_load(&l->setup_failed)) {
		i = atomic_fetch_add(&l->next, 1);
		if (i >= l->count)
			break;
		if (!l->lsc_in) {
			ret = load_make_mic(l, &ca, i, &l->mics[i]);
			if (ret < 0) {
				setup_fail(l, PHONE_EXIT_FAIL, "cannot make the MIC of", l->names[i],
					   capf_strerror(ret));
				break;
			}
		}
		if (!l->no_setup && put_device(l, &a, l->names[i]) != 0)
			break;
		atomic_fetch_add(&l->finished, 1);
	}
out:
	client_admin_close(&a);
	pki_pair_deinit(&ca);
	atomic_fetch_add(&l->exited, 1);
	return NULL;
}

/*
 * Appends "DEVICE SERIAL" for a certificate the phone received, in one
 * write(2) on an O_APPEND descriptor, so that lines of concurrent phones
 * never mix and each is in the file as soon as this returns. It runs as
 * soon as phone_enroll() has returned, whether or not the session ended
 * well (a server killed after sending the certificate included).
 */
static void record_cert(struct load *l, const char *name, const struct phone_enroll_result *r)
{
	char line[DEVICE_NAME_MAX + 2 + 2 * sizeof(r->serial) + 2];
	size_t n = (size_t)snprintf(line, sizeof(line), "%s ", name);

	for (size_t i = 0; i < r->serial_len && n + 3 < sizeof(line); i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%02x", r->serial[i]);
	line[n++] = '\n';
	if (write(l->record_fd, line, n) != (ssize_t)n) {
		pthread_mutex_lock(&l->err_lock);
		fprintf(stderr, PHONE_PROG " load: cannot write %s: %s\n", l->record_path,
			strerror(errno));
		pthread_mutex_unlock(&l->err_lock);
	}
}

/* Worth another try: the server asked for it, or the connection (or its
 * handshake) broke, as when its signer restarts. */
static int retryable(int code)
{
	return code == CAPF_ERETRY || code == CAPF_ECONNRESET || code == -ECONNREFUSED ||
	       code == -EPIPE;
}

/*
 * One file per phone: its sessions (retries included) are written by one
 * thread, one after the other, so no two sessions interleave in a file.
 */
static void open_transcript(struct load *l, unsigned long i, struct phone_enroll_opts *o)
{
	char path[PATH_MAX];

	o->rec = NULL;
	o->tool = "capf-phone load";
	if (!l->transcripts)
		return;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s.jsonl", l->transcripts, l->names[i]) >=
		    sizeof(path) ||
	    transcript_writer_open(path, &o->rec) < 0) {
		pthread_mutex_lock(&l->err_lock);
		fprintf(stderr, PHONE_PROG " load: cannot write a transcript to %s\n", path);
		pthread_mutex_unlock(&l->err_lock);
		o->rec = NULL;
	}
}

/* Keeps what --lsc-out saves: the certificate and its key (taken from r). */
static void keep_lsc(struct load *l, unsigned long i, struct phone_enroll_result *r)
{
	gnutls_datum_t d = { r->lsc_der, (unsigned)r->lsc_len };

	if (!l->lsc_out || l->lsc_in || !r->lsc_der || !r->key)
		return;
	if (gnutls_x509_crt_init(&l->lscs[i].crt) < 0 ||
	    gnutls_x509_crt_import(l->lscs[i].crt, &d, GNUTLS_X509_FMT_DER) < 0) {
		pki_pair_deinit(&l->lscs[i]);
		return;
	}
	l->lscs[i].key = r->key;
	r->key = NULL;
}

/* One session of phone i, native or Cisco; its result code. */
static int enroll_one(struct load *l, unsigned long i, struct phone_enroll_opts *o,
		      const struct client_trust *trust)
{
	struct phone_enroll_result r;
	int ret, group = 0;

	if (l->protocol == LOAD_CISCO) {
		unsigned reason = 0;

		ret = load_cisco_enroll(l, i, trust, o->timeout_ms, &group, &reason);
		l->group[i] = (uint16_t)group;
		return ret;
	}
	memset(&r, 0, sizeof(r));
	o->name = l->names[i];
	o->mic = l->lsc_in ? NULL : &l->mics[i];
	o->lsc = l->lsc_in ? &l->lscs[i] : NULL;
	o->reuse_key = load_lsc_key(l, i);
	o->skip_lsc_signature = i % l->verify_every != 0;
	open_transcript(l, i, o);
	ret = phone_enroll(o, &r);
	/* A failure to write it is reported once by the check below. */
	(void)transcript_writer_close(o->rec);
	o->rec = NULL;
	l->group[i] = (uint16_t)r.tls_group;
	if (l->record_fd >= 0 && r.serial_len > 0)
		record_cert(l, l->names[i], &r);
	if (ret == 0)
		keep_lsc(l, i, &r);
	phone_enroll_result_deinit(&r);
	return ret;
}

static void *enroll_thread(void *arg)
{
	struct load *l = arg;
	struct client_trust trust = { 0 };
	struct phone_enroll_opts o;
	unsigned long i;
	double start, left;
	int ret;

	/* Each thread reads its own copy: GnuTLS objects stay per thread.
	 * The server's chain is verified once per thread, then recognised. */
	ret = client_trust_load(l->ca_file, &trust);
	if (ret == 0)
		ret = client_trust_cache(&trust);
	memset(&o, 0, sizeof(o));
	o.host = l->host;
	o.port = l->port;
	o.trust = &trust;
	o.tool = "capf-phone load";
	for (;;) {
		i = atomic_fetch_add(&l->next, 1);
		if (i >= l->count)
			break;
		start = phone_now();
		if (l->rate > 0) {
			/* Open loop: phone i starts at its time, not when a
			 * thread is free; its latency counts from then. */
			double at = l->start + (double)i / l->rate;

			if (at > start)
				usleep((useconds_t)((at - start) * 1e6));
			start = at;
		}
		if (phone_now() >= l->deadline)
			break;
		if (ret < 0) {
			l->result[i] = ret;
			atomic_fetch_add(&l->finished, 1);
			continue;
		}
		/* Never wait on one phone much past the end of the run. */
		left = (l->deadline - start) * 1000.0;
		o.timeout_ms = left > LOAD_PHONE_TIMEOUT_MS ? LOAD_PHONE_TIMEOUT_MS
			       : left < 1000.0		    ? 1000u
							    : (unsigned)left;
		for (unsigned long attempt = 0;; attempt++) {
			l->result[i] = enroll_one(l, i, &o, &trust);
			if (attempt >= l->retries || !retryable(l->result[i]) ||
			    phone_now() >= l->deadline)
				break;
			atomic_fetch_add(&l->retried, 1);
			usleep(LOAD_RETRY_PAUSE_US);
		}
		l->latency_ms[i] = (phone_now() - start) * 1000.0;
		atomic_fetch_add(&l->finished, 1);
	}
	if (trust.verified != NULL) {
		atomic_fetch_add(&l->chains_verified, trust.verified->full);
		atomic_fetch_add(&l->chains_cached, trust.verified->cached);
	}
	client_trust_deinit(&trust);
	atomic_fetch_add(&l->exited, 1);
	return NULL;
}

/* Runs n threads of fn, showing progress on a terminal. */
static int run_threads(struct load *l, unsigned long n, void *(*fn)(void *), const char *what)
{
	pthread_t *th = calloc(n, sizeof(*th));
	unsigned long i, started = 0;
	int tty = isatty(STDERR_FILENO);
	int ret = 0;

	if (!th)
		return CAPF_ENOMEM;
	atomic_store(&l->next, 0);
	atomic_store(&l->finished, 0);
	atomic_store(&l->exited, 0);
	for (i = 0; i < n; i++) {
		if (pthread_create(&th[i], NULL, fn, l) != 0) {
			ret = CAPF_EAGAIN;
			break;
		}
		started++;
	}
	if (tty) {
		while (atomic_load(&l->exited) < started) {
			fprintf(stderr, "\r%s: %lu/%lu", what, atomic_load(&l->finished), l->count);
			usleep(200000);
		}
		fprintf(stderr, "\r%s: %lu/%lu\n", what, atomic_load(&l->finished), l->count);
	}
	for (i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	free(th);
	return ret;
}

static double tv_ms(const struct timeval *a, const struct timeval *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_usec - a->tv_usec) / 1e3;
}

int phone_cmd_load(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "concurrency", required_argument, NULL, 'j' },
		{ "mfg-dir", required_argument, NULL, 'm' },
		{ "ca", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "prefix", required_argument, NULL, 'P' },
		{ "timeout", required_argument, NULL, 't' },
		{ "record", required_argument, NULL, 'r' },
		{ "transcripts", required_argument, NULL, 'T' },
		{ "retry", required_argument, NULL, 'R' },
		{ "protocol", required_argument, NULL, OPT_PROTOCOL },
		{ "key-type", required_argument, NULL, OPT_KEY_TYPE },
		{ "mic-type", required_argument, NULL, OPT_MIC_TYPE },
		{ "key-pool", required_argument, NULL, OPT_KEY_POOL },
		{ "groups", required_argument, NULL, OPT_GROUPS },
		{ "rate", required_argument, NULL, OPT_RATE },
		{ "no-setup", no_argument, NULL, OPT_NO_SETUP },
		{ "lsc-out", required_argument, NULL, OPT_LSC_OUT },
		{ "lsc-in", required_argument, NULL, OPT_LSC_IN },
		{ "idle", required_argument, NULL, OPT_IDLE },
		{ "hold", required_argument, NULL, OPT_HOLD },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "key-file", required_argument, NULL, OPT_KEY_FILE },
		{ "verify-every", required_argument, NULL, OPT_VERIFY_EVERY },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct load l;
	struct client_trust trust = { 0 };
	struct pki_pair ca = { NULL, NULL };
	unsigned long timeout = LOAD_TIMEOUT_DEFAULT, i, nsetup, count_max = 0;
	double start, wall, cpu0 = -1, cpu1 = -1, bench;
	struct rusage ru0, ru1;
	struct load_cpu own;
	uint32_t pid;
	int status = PHONE_EXIT_FAIL;
	int c, ret;
	char *end;

	memset(&l, 0, sizeof(l));
	l.record_fd = -1;
	pthread_mutex_init(&l.err_lock, NULL);
	l.host = "127.0.0.1";
	l.port = CLIENT_PHONE_PORT_DEFAULT;
	l.prefix = LOAD_PREFIX_DEFAULT;
	l.socket = getenv("CAPF_SOCKET");
	if (!l.socket || !*l.socket)
		l.socket = CLIENT_ADMIN_SOCKET_DEFAULT;
	l.concurrency = 1;
	l.key_type = CAPF__KEY_TYPE__KEY_EC_P256;
	l.mic_type = CAPF__KEY_TYPE__KEY_EC_P256;
	l.key_pool = LOAD_KEY_POOL_DEFAULT;
	l.verify_every = 1;
	l.groups = CLIENT_GROUPS_X25519;
	l.hold = LOAD_HOLD_DEFAULT;
	optind = 0;
	while ((c = getopt_long(argc, argv, "n:j:m:c:s:H:p:P:t:r:R:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (phone_parse_uint(optarg, 1, LOAD_COUNT_MAX, &l.count) < 0)
				return phone_usage_error("load", "--count wants 1..%lu",
							 LOAD_COUNT_MAX);
			count_max = l.count;
			break;
		case 'j':
			if (phone_parse_uint(optarg, 1, LOAD_CONCURRENCY_MAX, &l.concurrency) < 0)
				return phone_usage_error("load", "--concurrency wants 1..%lu",
							 LOAD_CONCURRENCY_MAX);
			break;
		case 'm':
			l.mfg_dir = optarg;
			break;
		case 'c':
			l.ca_file = optarg;
			break;
		case 's':
			l.socket = optarg;
			break;
		case 'H':
			l.host = optarg;
			break;
		case 'p':
			if (phone_parse_port(optarg) < 0)
				return phone_usage_error("load", "bad port '%s'", optarg);
			l.port = optarg;
			break;
		case 'P':
			l.prefix = optarg;
			if (strlen(l.prefix) + 6 > DEVICE_NAME_MAX)
				return phone_usage_error("load", "--prefix is too long");
			break;
		case 't':
			if (phone_parse_uint(optarg, 1, 86400, &timeout) < 0)
				return phone_usage_error("load", "--timeout wants 1..86400 seconds");
			break;
		case 'T':
			l.transcripts = optarg;
			break;
		case 'r':
			l.record_path = optarg;
			break;
		case 'R':
			if (phone_parse_uint(optarg, 0, LOAD_RETRY_MAX, &l.retries) < 0)
				return phone_usage_error("load", "--retry wants 0..%lu",
							 LOAD_RETRY_MAX);
			break;
		case OPT_PROTOCOL:
			if (!strcmp(optarg, "native"))
				l.protocol = LOAD_NATIVE;
			else if (!strcmp(optarg, "cisco"))
				l.protocol = LOAD_CISCO;
			else
				return phone_usage_error("load", "--protocol wants native or cisco");
			break;
		case OPT_KEY_TYPE:
		case OPT_MIC_TYPE: {
			int kt = 0;

			if (key_type_from_name(optarg, &kt) < 0 || kt == 0)
				return phone_usage_error("load", "unknown key type '%s'", optarg);
			if (c == OPT_KEY_TYPE)
				l.key_type = kt;
			else
				l.mic_type = kt;
			break;
		}
		case OPT_KEY_POOL:
			if (phone_parse_uint(optarg, 0, LOAD_KEY_POOL_MAX, &l.key_pool) < 0)
				return phone_usage_error("load", "--key-pool wants 0..%lu",
							 LOAD_KEY_POOL_MAX);
			break;
		case OPT_VERIFY_EVERY:
			if (phone_parse_uint(optarg, 1, LOAD_COUNT_MAX, &l.verify_every) < 0)
				return phone_usage_error("load", "--verify-every wants 1..%lu",
							 LOAD_COUNT_MAX);
			break;
		case OPT_GROUPS:
			if (client_groups_from_name(optarg, &l.groups) < 0)
				return phone_usage_error("load", "--groups wants x25519, p256 or default");
			break;
		case OPT_RATE:
			l.rate = strtod(optarg, &end);
			if (*end != '\0' || !(l.rate > 0 && l.rate <= 1e6))
				return phone_usage_error("load", "--rate wants 0 < R <= 1000000");
			break;
		case OPT_NO_SETUP:
			l.no_setup = true;
			break;
		case OPT_LSC_OUT:
			l.lsc_out = optarg;
			break;
		case OPT_LSC_IN:
			l.lsc_in = optarg;
			break;
		case OPT_IDLE:
			if (phone_parse_uint(optarg, 1, LOAD_IDLE_MAX, &l.idle) < 0)
				return phone_usage_error("load", "--idle wants 1..%lu", LOAD_IDLE_MAX);
			break;
		case OPT_HOLD:
			if (phone_parse_uint(optarg, 1, 86400, &l.hold) < 0)
				return phone_usage_error("load", "--hold wants 1..86400 seconds");
			break;
		case OPT_JSON:
			l.json = true;
			break;
		case OPT_KEY_FILE:
			l.key_file = optarg;
			break;
		case 'h':
			usage(stdout);
			return PHONE_EXIT_OK;
		default:
			return phone_usage_error("load", "bad option");
		}
	}
	if (optind < argc)
		return phone_usage_error("load", "unexpected argument '%s'", argv[optind]);
	if (l.idle)
		l.count = l.idle;
	if (!l.count && !l.lsc_in)
		return phone_usage_error("load", "--count is required");
	if (!l.mfg_dir && !l.lsc_in)
		return phone_usage_error("load", "--mfg-dir is required");
	if (!l.ca_file)
		return phone_usage_error("load", "--ca is required");
	if (l.lsc_in && (l.protocol == LOAD_CISCO || l.idle))
		return phone_usage_error("load", "--lsc-in is for native enrollments");
	if (l.transcripts && l.protocol == LOAD_CISCO)
		return phone_usage_error("load", "--transcripts is for native enrollments");
	if (l.lsc_in)
		l.no_setup = true;
	if (l.idle)
		l.no_setup = true;
	client_tls_set_groups(l.groups);

	/* Check the inputs once here, so that the threads fail only on the server. */
	if (l.mfg_dir) {
		ret = phone_mfg_ca_load(l.mfg_dir, &ca);
		pki_pair_deinit(&ca);
		if (ret < 0) {
			fprintf(stderr, PHONE_PROG " load: cannot read the manufacturer CA in %s: %s\n",
				l.mfg_dir, capf_strerror(ret));
			goto out;
		}
	}
	ret = client_trust_load(l.ca_file, &trust);
	client_trust_deinit(&trust);
	if (ret < 0) {
		fprintf(stderr, PHONE_PROG " load: cannot read the CAPF CA %s: %s\n", l.ca_file,
			capf_strerror(ret));
		goto out;
	}
	if (l.transcripts && access(l.transcripts, W_OK | X_OK) < 0) {
		fprintf(stderr, PHONE_PROG " load: cannot write in %s: %s\n", l.transcripts,
			strerror(errno));
		status = PHONE_EXIT_USAGE;
		goto out;
	}
	if (l.record_path) {
		l.record_fd = open(l.record_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (l.record_fd < 0) {
			fprintf(stderr, PHONE_PROG " load: cannot open %s: %s\n", l.record_path,
				strerror(errno));
			goto out;
		}
	}
	if (l.lsc_in) {
		ret = load_lsc_read(&l, count_max);
		if (ret < 0) {
			fprintf(stderr, PHONE_PROG " load: cannot read %s: %s\n", l.lsc_in,
				capf_strerror(ret));
			goto out;
		}
	}
	if (l.concurrency > l.count)
		l.concurrency = l.count;

	if (!l.names)
		l.names = calloc(l.count, sizeof(*l.names));
	if (!l.lscs)
		l.lscs = calloc(l.count, sizeof(*l.lscs));
	l.mics = calloc(l.count, sizeof(*l.mics));
	l.latency_ms = calloc(l.count, sizeof(*l.latency_ms));
	l.result = calloc(l.count, sizeof(*l.result));
	l.group = calloc(l.count, sizeof(*l.group));
	if (!l.names || !l.lscs || !l.mics || !l.latency_ms || !l.result || !l.group) {
		fprintf(stderr, PHONE_PROG " load: out of memory\n");
		goto out;
	}
	for (i = 0; i < l.count; i++) {
		if (!l.lsc_in)
			snprintf(l.names[i], sizeof(l.names[i]), "%s%06lX", l.prefix, i + 1);
		if (!device_name_valid(l.names[i])) {
			status = phone_usage_error("load", "'%s' is not a device name",
						   l.names[i]);
			goto out;
		}
		l.result[i] = 1;
	}

	/* Setup: keys, MICs and device records, not part of the measurement. */
	if (l.key_pool > l.count)
		l.key_pool = l.count;
	{
		double t0 = phone_now();

		ret = load_pool_make(&l, !l.lsc_in);
		if (ret == 0 && l.key_pool && !l.json)
			printf("keys: %lu made before the run (%lu read from %s) in %.1f s\n",
			       l.count + (l.lsc_in ? 0 : l.key_pool) - l.keys_read, l.keys_read,
			       l.key_file ? l.key_file : "no file", phone_now() - t0);
	}
	if (ret < 0) {
		fprintf(stderr, PHONE_PROG " load: cannot make the key pool: %s\n",
			capf_strerror(ret));
		goto out;
	}
	nsetup = LOAD_SETUP_THREADS_MAX;
	if (run_threads(&l, nsetup, setup_thread, l.no_setup ? "making MICs" : "adding devices") <
	    0) {
		fprintf(stderr, PHONE_PROG " load: cannot start threads\n");
		goto out;
	}
	ret = atomic_load(&l.setup_failed);
	if (ret) {
		status = ret;
		goto out;
	}
	if (l.idle) {
		status = load_idle_run(&l);
		goto out;
	}

	pid = load_server_pid(l.socket);
	cpu0 = load_proc_cpu_ms(pid);
	getrusage(RUSAGE_SELF, &ru0);
	start = phone_now();
	l.start = start;
	l.deadline = start + (double)timeout;
	if (run_threads(&l, l.concurrency, enroll_thread, "enrolling") < 0) {
		fprintf(stderr, PHONE_PROG " load: cannot start all threads\n");
		goto out;
	}
	wall = phone_now() - start;
	getrusage(RUSAGE_SELF, &ru1);
	cpu1 = load_proc_cpu_ms(pid);
	own.user_ms = tv_ms(&ru0.ru_utime, &ru1.ru_utime);
	own.sys_ms = tv_ms(&ru0.ru_stime, &ru1.ru_stime);

	load_report(&l, wall, cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1, pid, &own);
	if (l.lsc_out) {
		ret = load_lsc_write(&l);
		if (ret < 0)
			fprintf(stderr, PHONE_PROG " load: cannot write %s: %s\n", l.lsc_out,
				capf_strerror(ret));
	}
	if (!l.json && !l.key_pool) {
		bench = load_key_csr_rate();
		if (bench > 0)
			printf("client key+csr (ec-p256, one thread on this machine): %.0f/s, %.3f ms "
			       "each\n", bench, 1000.0 / bench);
	}

	status = PHONE_EXIT_OK;
	for (i = 0; i < l.count; i++)
		if (l.result[i] != 0)
			status = PHONE_EXIT_FAIL;
out:
	if (l.mics)
		for (i = 0; i < l.count; i++)
			pki_pair_deinit(&l.mics[i]);
	if (l.lscs)
		for (i = 0; i < l.count; i++)
			pki_pair_deinit(&l.lscs[i]);
	load_pool_free(&l);
	free(l.names);
	free(l.mics);
	free(l.lscs);
	free(l.latency_ms);
	free(l.result);
	free(l.group);
	if (l.record_fd >= 0)
		close(l.record_fd);
	pthread_mutex_destroy(&l.err_lock);
	return status;
}
