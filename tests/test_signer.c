/*
 * Tests of the signer process and its clients: the real signer_main() in
 * a forked child (its parent is this test, the only peer it accepts),
 * the synchronous pool, and the asynchronous channel on a libuv loop.
 */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <uv.h>

#include "ca/ca.h"
#include "capf/signer.h"
#include "proto/capf.pb-c.h"
#include "proto/proto.h"
#include "proto/signer.pb-c.h"

static char tmpdir[] = "/tmp/capf-test-signer.XXXXXX";
static char cadir[512], sockpath[512], keyref[600];
static pid_t signer_pid;
static const uint8_t msg[] = "a TBSCertificate, or close enough";

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* The signer, as capfd starts it: a child reading its Init from stdin. */
static pid_t start_signer(unsigned delay_ms)
{
	Capf__Signer__Init init = CAPF__SIGNER__INIT__INIT;
	uint8_t buf[2048];
	size_t len;
	int p[2];
	pid_t pid;

	if (pipe(p) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(p[0], STDIN_FILENO);
		_exit(signer_main());
	}
	close(p[0]);
	init.socket = sockpath;
	init.ca_dir = cadir;
	init.key = "";
	init.delay_ms = delay_ms;
	init.parent_pid = (uint32_t)getpid();
	init.log_level = 0;
	len = capf__signer__init__get_packed_size(&init);
	frame_write_header(buf, (uint32_t)len);
	capf__signer__init__pack(&init, buf + FRAME_HEADER_LEN);
	if (write(p[1], buf, FRAME_HEADER_LEN + len) != (ssize_t)(FRAME_HEADER_LEN + len))
		pid = -1;
	close(p[1]);
	return pid;
}

/* Waits until the signer answers (it listens a moment after it starts). */
static int wait_ready(void)
{
	struct signer_client *sc = NULL;
	int ret = signer_client_new(sockpath, 5000, &sc);

	if (ret == 0)
		ret = signer_ping(sc);
	signer_client_free(sc);
	return ret;
}

static void stop_signer(void)
{
	if (signer_pid > 0) {
		kill(signer_pid, SIGKILL);
		waitpid(signer_pid, NULL, 0);
	}
	signer_pid = 0;
}

/* A signature over data (len bytes) by spki's key. */
static int verify_of(const uint8_t *spki, size_t spki_len, unsigned algo, const uint8_t *data,
		     size_t len, const uint8_t *sig, size_t sig_len)
{
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t k = {(unsigned char *)spki, (unsigned)spki_len};
	gnutls_datum_t d = {(unsigned char *)data, (unsigned)len};
	gnutls_datum_t s = {(unsigned char *)sig, (unsigned)sig_len};
	int ret = -1;

	if (gnutls_pubkey_init(&pub) == 0 &&
	    gnutls_pubkey_import(pub, &k, GNUTLS_X509_FMT_DER) == 0)
		ret = gnutls_pubkey_verify_data2(pub, (gnutls_sign_algorithm_t)algo, 0, &d, &s);
	gnutls_pubkey_deinit(pub);
	return ret;
}

/* A signature over msg. */
static int verify(const uint8_t *spki, size_t spki_len, unsigned algo, const uint8_t *sig,
		  size_t sig_len)
{
	return verify_of(spki, spki_len, algo, msg, sizeof(msg), sig, sig_len);
}

static uint8_t *the_spki;
static size_t the_spki_len;

static int suite_init(void)
{
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(cadir, sizeof(cadir), "%s/ca", tmpdir);
	snprintf(sockpath, sizeof(sockpath), "%s/signer.sock", tmpdir);
	snprintf(keyref, sizeof(keyref), "%s/key.pem", cadir);
	if (mkdir(cadir, 0700) < 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	signer_pid = start_signer(0);
	return signer_pid > 0 && wait_ready() == 0 ? 0 : -1;
}

static int suite_clean(void)
{
	stop_signer();
	free(the_spki);
	return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- the synchronous client ---- */

static void test_sync_invalid(void)
{
	struct signer_client *sc = (struct signer_client *)&sc;
	char longpath[200];
	uint8_t *out = NULL;
	size_t len = 0;

	memset(longpath, 'x', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	CU_ASSERT_EQUAL(signer_client_new(sockpath, 0, NULL), CAPF_EINVAL);
	CU_ASSERT_EQUAL(signer_client_new(NULL, 0, &sc), CAPF_EINVAL);
	CU_ASSERT_PTR_NULL(sc);
	CU_ASSERT_EQUAL(signer_client_new(longpath, 0, &sc), CAPF_EINVAL);
	signer_client_free(NULL);
	/* Nobody listening: retry-later once the timeout has passed. */
	CU_ASSERT_EQUAL_FATAL(signer_client_new("/nonexistent/signer.sock", 150, &sc), 0);
	CU_ASSERT_EQUAL(signer_ping(sc), CAPF_ERETRY);
	CU_ASSERT_EQUAL(
	    signer_sign(sc, "x", GNUTLS_SIGN_ECDSA_SHA256, 0, msg, sizeof(msg), &out, &len),
	    CAPF_ERETRY);
	CU_ASSERT_EQUAL(signer_sign(sc, "x", 0, 0, NULL, 0, &out, &len), CAPF_EINVAL);
	CU_ASSERT_PTR_NULL(out);
	signer_client_free(sc);
}

static void test_sync(void)
{
	struct signer_client *sc = NULL;
	uint8_t *sig = NULL, *spki = NULL, hash[32];
	size_t sig_len = 0, spki_len = 0;
	char err[512] = "", outside[600], link_path[600];
	gnutls_privkey_t key = NULL;
	struct stat st;

	CU_ASSERT_EQUAL_FATAL(signer_client_new(sockpath, 2000, &sc), 0);
	CU_ASSERT_EQUAL(signer_ping(sc), 0);
	/* Key files outside the CA directory are refused, links too. */
	CU_ASSERT_EQUAL(signer_load(sc, "/etc/passwd", &spki, &spki_len, err, sizeof(err)),
			CAPF_EACCES);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "refuses"));
	snprintf(outside, sizeof(outside), "%s/outside.pem", tmpdir);
	CU_ASSERT_EQUAL_FATAL(
	    ca_key_generate(CAPF__KEY_TYPE__KEY_EC_P256, tmpdir, "outside.pem", &key), 0);
	gnutls_privkey_deinit(key);
	snprintf(link_path, sizeof(link_path), "%s/link.pem", cadir);
	CU_ASSERT_EQUAL_FATAL(symlink(outside, link_path), 0);
	CU_ASSERT_EQUAL(signer_load(sc, link_path, &spki, &spki_len, err, sizeof(err)),
			CAPF_EACCES);
	CU_ASSERT_EQUAL(signer_generate(sc, CAPF__KEY_TYPE__KEY_EC_P256, tmpdir, "new.pem", &spki,
					&spki_len, err, sizeof(err)),
			CAPF_EACCES);
	CU_ASSERT_EQUAL(signer_generate(sc, CAPF__KEY_TYPE__KEY_EC_P256, cadir, "../x.pem", &spki,
					&spki_len, err, sizeof(err)),
			CAPF_EACCES);
	CU_ASSERT_EQUAL(
	    signer_sign(sc, outside, GNUTLS_SIGN_ECDSA_SHA256, 0, msg, sizeof(msg), &sig, &sig_len),
	    CAPF_EACCES);
	/* A missing key file: the signer's explanation comes back. */
	CU_ASSERT_NOT_EQUAL(signer_load(sc, keyref, &spki, &spki_len, err, sizeof(err)), 0);
	CU_ASSERT(strlen(err) > 0);

	/* A new key in the CA directory, then signatures of data and hash. */
	CU_ASSERT_EQUAL_FATAL(signer_generate(sc, CAPF__KEY_TYPE__KEY_EC_P256, cadir, "key.pem",
					      &the_spki, &the_spki_len, err, sizeof(err)),
			      0);
	CU_ASSERT_EQUAL(stat(keyref, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
	CU_ASSERT_EQUAL(
	    signer_sign(sc, keyref, GNUTLS_SIGN_ECDSA_SHA256, 0, msg, sizeof(msg), &sig, &sig_len),
	    0);
	CU_ASSERT_EQUAL(verify(the_spki, the_spki_len, GNUTLS_SIGN_ECDSA_SHA256, sig, sig_len), 0);
	free(sig);
	CU_ASSERT_EQUAL(gnutls_hash_fast(GNUTLS_DIG_SHA256, msg, sizeof(msg), hash), 0);
	CU_ASSERT_EQUAL(signer_sign(sc, keyref, GNUTLS_SIGN_ECDSA_SHA256, CA_SIGN_HASH, hash,
				    sizeof(hash), &sig, &sig_len),
			0);
	CU_ASSERT_EQUAL(verify(the_spki, the_spki_len, GNUTLS_SIGN_ECDSA_SHA256, sig, sig_len), 0);
	free(sig);
	/* Loading what it holds gives the same public key. */
	CU_ASSERT_EQUAL(signer_load(sc, keyref, &spki, &spki_len, err, sizeof(err)), 0);
	CU_ASSERT(spki_len == the_spki_len && memcmp(spki, the_spki, spki_len) == 0);
	free(spki);
	/* A file replaced under the same ref (a new pending request): a load
	 * opens it again, and signatures follow the new key. */
	{
		uint8_t *spki2 = NULL;
		size_t spki2_len = 0;
		char other[600];

		snprintf(other, sizeof(other), "%s/pending.pem", cadir);
		CU_ASSERT_EQUAL_FATAL(signer_generate(sc, CAPF__KEY_TYPE__KEY_EC_P256, cadir,
						      "pending.pem", &spki, &spki_len, err,
						      sizeof(err)),
				      0);
		CU_ASSERT_EQUAL_FATAL(ca_key_generate(CAPF__KEY_TYPE__KEY_EC_P256, cadir,
						      "pending.pem", &key),
				      0);
		gnutls_privkey_deinit(key);
		CU_ASSERT_EQUAL(signer_load(sc, other, &spki2, &spki2_len, err, sizeof(err)), 0);
		CU_ASSERT(spki2_len != spki_len || memcmp(spki, spki2, spki_len) != 0);
		CU_ASSERT_EQUAL(signer_sign(sc, other, GNUTLS_SIGN_ECDSA_SHA256, 0, msg,
					    sizeof(msg), &sig, &sig_len),
				0);
		CU_ASSERT_EQUAL(verify(spki2, spki2_len, GNUTLS_SIGN_ECDSA_SHA256, sig, sig_len),
				0);
		CU_ASSERT_NOT_EQUAL(
		    verify(spki, spki_len, GNUTLS_SIGN_ECDSA_SHA256, sig, sig_len), 0);
		free(sig);
		free(spki);
		free(spki2);
	}

	/* The signer dies: retry-later; once restarted, the same ref signs
	 * (it loads the key again), even on the pooled connection. */
	stop_signer();
	CU_ASSERT_EQUAL(
	    signer_sign(sc, keyref, GNUTLS_SIGN_ECDSA_SHA256, 0, msg, sizeof(msg), &sig, &sig_len),
	    CAPF_ERETRY);
	signer_pid = start_signer(0);
	CU_ASSERT_FATAL(signer_pid > 0);
	CU_ASSERT_EQUAL(
	    signer_sign(sc, keyref, GNUTLS_SIGN_ECDSA_SHA256, 0, msg, sizeof(msg), &sig, &sig_len),
	    0);
	CU_ASSERT_EQUAL(verify(the_spki, the_spki_len, GNUTLS_SIGN_ECDSA_SHA256, sig, sig_len), 0);
	free(sig);
	signer_client_free(sc);
}

static int connect_raw(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.100s", sockpath);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* 0 when the signer closes a connection on which a ping was sent. */
static int ping_is_refused(int fd, const uint8_t *hdr_override)
{
	Capf__Signer__Request req = CAPF__SIGNER__REQUEST__INIT;
	Capf__Signer__Ping ping = CAPF__SIGNER__PING__INIT;
	uint8_t buf[64];
	size_t len;

	req.op_case = CAPF__SIGNER__REQUEST__OP_PING;
	req.ping = &ping;
	req.id = 7;
	len = capf__signer__request__get_packed_size(&req);
	frame_write_header(buf, (uint32_t)len);
	capf__signer__request__pack(&req, buf + FRAME_HEADER_LEN);
	if (hdr_override != NULL)
		memcpy(buf, hdr_override, FRAME_HEADER_LEN);
	if (write(fd, buf, FRAME_HEADER_LEN + len) < 0)
		return 0;
	return read(fd, buf, sizeof(buf)) <= 0 ? 0 : -1;
}

static void test_peer_and_frames(void)
{
	static const uint8_t too_big[FRAME_HEADER_LEN] = {0x00, 0x01, 0x00, 0x01};
	int fd, status = -1;
	pid_t pid;

	/* Its parent is answered... */
	fd = connect_raw();
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(ping_is_refused(fd, NULL), -1);
	close(fd);
	/* ...but not an oversized frame... */
	fd = connect_raw();
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(ping_is_refused(fd, too_big), 0);
	close(fd);
	/* ...nor another process, even of the same user. */
	pid = fork();
	if (pid == 0) {
		fd = connect_raw();
		_exit(fd >= 0 && ping_is_refused(fd, NULL) == 0 ? 0 : 1);
	}
	CU_ASSERT_FATAL(pid > 0);
	waitpid(pid, &status, 0);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- the asynchronous channel ---- */

struct done {
	int calls;
	int result;
	int verified;
	const uint8_t *data; /* what was signed: msg if NULL */
	size_t len;
	int order, *seq;    /* the order of the answers, when seq is set */
};

static void on_done(void *arg, int result, const uint8_t *sig, size_t sig_len)
{
	struct done *d = arg;

	d->calls++;
	d->result = result;
	if (d->seq != NULL)
		d->order = (*d->seq)++;
	if (result == 0)
		d->verified = verify_of(the_spki, the_spki_len, GNUTLS_SIGN_ECDSA_SHA256,
					d->data != NULL ? d->data : msg,
					d->data != NULL ? d->len : sizeof(msg), sig, sig_len) == 0;
}

static void run_until(uv_loop_t *loop, const struct done *d, int n, unsigned max_ms)
{
	uint64_t end = uv_hrtime() + (uint64_t)max_ms * 1000000u;

	for (int i = 0; i < n; i++)
		while (d[i].calls == 0 && uv_hrtime() < end)
			uv_run(loop, UV_RUN_ONCE);
}

/* Lets the loop see what happened meanwhile (a closed connection). */
static void spin(uv_loop_t *loop, unsigned ms)
{
	uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;

	while (uv_hrtime() < end) {
		uv_run(loop, UV_RUN_NOWAIT);
		usleep(10000);
	}
}

static void test_async(void)
{
	uv_loop_t loop;
	struct signer_chan *ch = (struct signer_chan *)&ch;
	struct done d[4];

	CU_ASSERT_EQUAL_FATAL(uv_loop_init(&loop), 0);
	/* Invalid input first. */
	CU_ASSERT_EQUAL(signer_chan_new(NULL, sockpath, 0, 0, &ch), CAPF_EINVAL);
	CU_ASSERT_PTR_NULL(ch);
	CU_ASSERT_EQUAL(signer_chan_new(&loop, sockpath, 2, 300, NULL), CAPF_EINVAL);
	CU_ASSERT_EQUAL_FATAL(signer_chan_new(&loop, sockpath, 2, 300, &ch), 0);
	memset(d, 0, sizeof(d));
	CU_ASSERT_EQUAL(
	    signer_sign_async(ch, keyref, GNUTLS_SIGN_ECDSA_SHA256, msg, 0, on_done, &d[0]),
	    CAPF_EINVAL);
	CU_ASSERT_EQUAL(
	    signer_sign_async(ch, NULL, GNUTLS_SIGN_ECDSA_SHA256, msg, sizeof(msg), on_done, &d[0]),
	    CAPF_EINVAL);
	CU_ASSERT_EQUAL(
	    signer_sign_async(ch, keyref, GNUTLS_SIGN_ECDSA_SHA256, msg, sizeof(msg), NULL, &d[0]),
	    CAPF_EINVAL);

	/* Two in flight (the queue); a third is refused at once. The
	 * callbacks run later, on the loop, once each. */
	CU_ASSERT_EQUAL(signer_sign_async(ch, keyref, GNUTLS_SIGN_ECDSA_SHA256, msg, sizeof(msg),
					  on_done, &d[0]),
			0);
	CU_ASSERT_EQUAL(signer_sign_async(ch, keyref, GNUTLS_SIGN_ECDSA_SHA256, msg, sizeof(msg),
					  on_done, &d[1]),
			0);
	CU_ASSERT_EQUAL(signer_sign_async(ch, keyref, GNUTLS_SIGN_ECDSA_SHA256, msg, sizeof(msg),
					  on_done, &d[2]),
			CAPF_ERETRY);
	CU_ASSERT_EQUAL(signer_chan_inflight(ch), 2);
	CU_ASSERT_EQUAL(d[0].calls + d[1].calls + d[2].calls, 0);
	run_until(&loop, d, 2, 3000);
	CU_ASSERT_EQUAL(d[0].calls, 1);
	CU_ASSERT_EQUAL(d[0].result, 0);
	CU_ASSERT(d[0].verified);
	CU_ASSERT_EQUAL(d[1].calls, 1);
	CU_ASSERT(d[1].verified);
	CU_ASSERT_EQUAL(d[2].calls, 0);
	CU_ASSERT_EQUAL(signer_chan_inflight(ch), 0);

	/* A signer that dies: retry-later, from the loop. */
	stop_signer();
	memset(d, 0, sizeof(d));
	CU_ASSERT_EQUAL(signer_sign_async(ch, keyref, GNUTLS_SIGN_ECDSA_SHA256, msg, sizeof(msg),
					  on_done, &d[0]),
			0);
	CU_ASSERT_EQUAL(d[0].calls, 0);
	run_until(&loop, d, 1, 3000);
	CU_ASSERT_EQUAL(d[0].calls, 1);
	CU_ASSERT_EQUAL(d[0].result, CAPF_ERETRY);

	/* A slow one (400 ms per signature, 300 ms allowed): retry-later;
	 * the late answer is dropped and the next request is answered. */
	signer_pid = start_signer(400);
	CU_ASSERT_FATAL(signer_pid > 0);
	CU_ASSERT_EQUAL_FATAL(wait_ready(), 0);
	memset(d, 0, sizeof(d));
	CU_ASSERT_EQUAL(signer_sign_async(ch, keyref, GNUTLS_SIGN_ECDSA_SHA256, msg, sizeof(msg),
					  on_done, &d[0]),
			0);
	run_until(&loop, d, 1, 3000);
	CU_ASSERT_EQUAL(d[0].calls, 1);
	CU_ASSERT_EQUAL(d[0].result, CAPF_ERETRY);
	spin(&loop, 300);
	stop_signer();
	/* The channel sees its connection close, and connects again for
	 * the next request. */
	spin(&loop, 100);
	signer_pid = start_signer(0);
	CU_ASSERT_FATAL(signer_pid > 0);
	CU_ASSERT_EQUAL_FATAL(wait_ready(), 0);
	CU_ASSERT_EQUAL(signer_sign_async(ch, keyref, GNUTLS_SIGN_ECDSA_SHA256, msg, sizeof(msg),
					  on_done, &d[1]),
			0);
	run_until(&loop, d + 1, 1, 3000);
	CU_ASSERT_EQUAL(d[1].calls, 1);
	CU_ASSERT_EQUAL(d[1].result, 0);
	CU_ASSERT(d[1].verified);
	CU_ASSERT_EQUAL(d[0].calls, 1);

	/* Closing: what is in flight ends with CAPF_ESHUTDOWN. */
	CU_ASSERT_EQUAL(signer_sign_async(ch, keyref, GNUTLS_SIGN_ECDSA_SHA256, msg, sizeof(msg),
					  on_done, &d[2]),
			0);
	signer_chan_close(ch);
	CU_ASSERT_EQUAL(d[2].calls, 1);
	CU_ASSERT_EQUAL(d[2].result, CAPF_ESHUTDOWN);
	signer_chan_close(NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	CU_ASSERT_EQUAL(uv_loop_close(&loop), 0);
}

/*
 * Many requests made in one loop iteration go out together, more than
 * one write gathers and more bytes than the socket takes at once (the
 * rest through a queued write): each is answered once, in order, with a
 * signature over its own data.
 */
#define BURST 150
#define BURST_LEN 6000

static void test_async_burst(void)
{
	static uint8_t data[BURST][BURST_LEN];
	static struct done d[BURST];
	uv_loop_t loop;
	struct signer_chan *ch = NULL;
	int seq = 0, ok = 1;

	CU_ASSERT_EQUAL_FATAL(uv_loop_init(&loop), 0);
	CU_ASSERT_EQUAL_FATAL(signer_chan_new(&loop, sockpath, BURST, 20000, &ch), 0);
	memset(d, 0, sizeof(d));
	for (int i = 0; i < BURST; i++) {
		memset(data[i], 'a' + i % 26, sizeof(data[i]));
		memcpy(data[i], &i, sizeof(i));
		d[i].data = data[i];
		d[i].len = sizeof(data[i]);
		d[i].seq = &seq;
		ok = ok && signer_sign_async(ch, keyref, GNUTLS_SIGN_ECDSA_SHA256, data[i],
					     sizeof(data[i]), on_done, &d[i]) == 0;
	}
	CU_ASSERT(ok);
	CU_ASSERT_EQUAL(signer_chan_inflight(ch), BURST);
	run_until(&loop, d, BURST, 20000);
	for (int i = 0; i < BURST; i++) {
		ok = ok && d[i].calls == 1 && d[i].result == 0 && d[i].verified && d[i].order == i;
		if (!ok) {
			fprintf(stderr, "request %d: %d calls, result %d, verified %d, answer %d\n", i,
				d[i].calls, d[i].result, d[i].verified, d[i].order);
			break;
		}
	}
	CU_ASSERT(ok);
	CU_ASSERT_EQUAL(signer_chan_inflight(ch), 0);
	signer_chan_close(ch);
	uv_run(&loop, UV_RUN_DEFAULT);
	CU_ASSERT_EQUAL(uv_loop_close(&loop), 0);
}

int main(void)
{
	CU_pSuite s;
	unsigned failures;

	if (gnutls_global_init() < 0 || CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("signer", suite_init, suite_clean);
	if (s == NULL || !CU_add_test(s, "synchronous client invalid", test_sync_invalid) ||
	    !CU_add_test(s, "load, generate, sign, restart", test_sync) ||
	    !CU_add_test(s, "only the parent, bounded frames", test_peer_and_frames) ||
	    !CU_add_test(s, "asynchronous channel", test_async) ||
	    !CU_add_test(s, "asynchronous burst", test_async_burst)) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	if (CU_basic_run_tests() != CUE_SUCCESS) {
		CU_cleanup_registry();
		return 1;
	}
	failures = CU_get_number_of_failures();
	if (CU_get_run_summary()->nSuitesFailed > 0)
		failures++;
	CU_cleanup_registry();
	gnutls_global_deinit();
	return (int)failures;
}
