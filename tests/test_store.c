/*
 * Tests of store/: the log format and its recovery, the index, the writer
 * with group commit and its failure handling, the directory lock.
 *
 * STORE_TEST_TXNS sets how many txns each thread of the concurrent tests
 * submits (default 500); a run under valgrind may set it lower.
 */
#include "config.h"

#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>

#include "store/internal.h"
#include "store/store.h"

#define N_THREADS 8

/* A scratch directory under /tmp; the state directory is dir, inside root
 * and not yet created, so store_open() has to make it. */
struct tmp {
	char root[64];
	char dir[96];
	char log[128];
};

/* Roots still to remove: a fatal assertion leaves its test early, so
 * main() removes whatever the tests did not. */
static char live_roots[64][64];

static int tmp_setup(struct tmp *t)
{
	size_t i;

	snprintf(t->root, sizeof(t->root), "/tmp/capf-test-store-XXXXXX");
	if (!mkdtemp(t->root))
		return -1;
	snprintf(t->dir, sizeof(t->dir), "%s/state", t->root);
	snprintf(t->log, sizeof(t->log), "%s/records.log", t->dir);
	for (i = 0; i < 64; i++) {
		if (!live_roots[i][0]) {
			memcpy(live_roots[i], t->root, sizeof(live_roots[i]));
			break;
		}
	}
	return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_root(char *root)
{
	size_t i;

	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	for (i = 0; i < 64; i++)
		if (strcmp(live_roots[i], root) == 0)
			live_roots[i][0] = '\0';
}

static void tmp_cleanup(struct tmp *t)
{
	if (t->root[0])
		rm_root(t->root);
}

static void tmp_cleanup_all(void)
{
	char root[64];
	size_t i;

	for (i = 0; i < 64; i++) {
		if (live_roots[i][0]) {
			memcpy(root, live_roots[i], sizeof(root));
			rm_root(root);
		}
	}
}

static long file_size(const char *path)
{
	struct stat sb;

	return stat(path, &sb) < 0 ? -1 : (long)sb.st_size;
}

static int file_append(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_APPEND);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, buf, len);
	close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

static int file_patch(const char *path, long off, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = pwrite(fd, buf, len, off);
	close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

static int file_xor_byte(const char *path, long off)
{
	uint8_t b;
	int fd = open(path, O_RDWR);
	int ret = -1;

	if (fd < 0)
		return -1;
	if (pread(fd, &b, 1, off) == 1) {
		b ^= 0x5a;
		if (pwrite(fd, &b, 1, off) == 1)
			ret = 0;
	}
	close(fd);
	return ret;
}

static int test_txns(void)
{
	const char *s = getenv("STORE_TEST_TXNS");
	int n = s ? atoi(s) : 0;

	return n > 0 ? n : 500;
}

/* ---- records -------------------------------------------------------------- */

static uint8_t lsc_serial[] = { 0x01, 0x7f, 0x80, 0xff };
static uint8_t cert_serial[] = { 0x3a, 0x00, 0x12, 0x9c, 0x44, 0x01, 0x02, 0xee };
static uint8_t cert_der[] = { 0x30, 0x82, 0x01, 0x0a, 0x02, 0x01, 0x00, 0x05, 0x00 };

static void full_device(Capf__Device *d, const char *name)
{
	capf__device__init(d);
	d->name = (char *)name;
	d->op = CAPF__OPERATION__OP_INSTALL;
	d->auth = CAPF__AUTH_MODE__AUTH_STRING;
	d->key_type = CAPF__KEY_TYPE__KEY_EC_P384;
	d->deadline = 1767225600;
	d->status = CAPF__OP_STATUS__STATUS_PENDING;
	d->last_error = 1011;
	d->lsc_serial.data = lsc_serial;
	d->lsc_serial.len = sizeof(lsc_serial);
	d->created = 1700000000;
	d->updated = 1700000123;
}

static void full_cert(Capf__Certificate *c, const uint8_t *serial, size_t serial_len)
{
	capf__certificate__init(c);
	c->serial.data = (uint8_t *)serial;
	c->serial.len = serial_len;
	c->device = "SEP001122334455";
	c->not_before = 1700000000;
	c->not_after = 1800000000;
	c->der.data = cert_der;
	c->der.len = sizeof(cert_der);
	c->state = CAPF__CERT_STATE__CERT_UNCONFIRMED;
	c->issued_at = 1700000001;
}

static void device_record(Capf__StoreRecord *r, Capf__Device *d)
{
	capf__store_record__init(r);
	r->body_case = CAPF__STORE_RECORD__BODY_DEVICE;
	r->device = d;
}

static void cert_record(Capf__StoreRecord *r, Capf__Certificate *c)
{
	capf__store_record__init(r);
	r->body_case = CAPF__STORE_RECORD__BODY_CERT;
	r->cert = c;
}

/* Writes one device record (with the given preconditions) and waits. */
static int put_device(struct store *st, const char *name, int create_only, int must_exist,
		      Capf__OpStatus status)
{
	Capf__Device d;
	Capf__StoreRecord r;
	Capf__StoreRecord *recs[1] = { &r };

	full_device(&d, name);
	d.status = status;
	device_record(&r, &d);
	r.create_only = create_only;
	r.must_exist = must_exist;
	return store_submit_wait(st, recs, 1);
}

/* Builds a log entry by hand, from the format description: u32 BE length,
 * u32 BE CRC32C, packed StoreTxn. */
static uint8_t *make_entry(const char *device_name, size_t *len)
{
	Capf__Device d;
	Capf__StoreRecord r;
	Capf__StoreRecord *recs[1] = { &r };
	Capf__StoreTxn txn = CAPF__STORE_TXN__INIT;
	size_t plen;
	uint8_t *buf;
	uint32_t crc;

	full_device(&d, device_name);
	device_record(&r, &d);
	txn.n_records = 1;
	txn.records = recs;
	txn.time = 1700000000;
	plen = capf__store_txn__get_packed_size(&txn);
	buf = malloc(8 + plen);
	if (!buf)
		return NULL;
	capf__store_txn__pack(&txn, buf + 8);
	crc = crc32c(0, buf + 8, plen);
	buf[0] = (uint8_t)(plen >> 24);
	buf[1] = (uint8_t)(plen >> 16);
	buf[2] = (uint8_t)(plen >> 8);
	buf[3] = (uint8_t)plen;
	buf[4] = (uint8_t)(crc >> 24);
	buf[5] = (uint8_t)(crc >> 16);
	buf[6] = (uint8_t)(crc >> 8);
	buf[7] = (uint8_t)crc;
	*len = 8 + plen;
	return buf;
}

static int has_device(struct store *st, const char *name)
{
	Capf__Device *d = NULL;
	int ret = store_device_get(st, name, &d);

	if (d)
		capf__device__free_unpacked(d, NULL);
	return ret == 0;
}

/* Counts asynchronous callbacks. */
struct counter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done;
	int failed;
	int last_error;
};

#define COUNTER_INIT { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0 }

static void counter_cb(int result, void *arg)
{
	struct counter *c = arg;

	pthread_mutex_lock(&c->lock);
	c->done++;
	if (result != 0) {
		c->failed++;
		c->last_error = result;
	}
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void counter_wait(struct counter *c, int n)
{
	pthread_mutex_lock(&c->lock);
	while (c->done < n)
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
}

/* ---- crc32c --------------------------------------------------------------- */

static void test_crc32c(void)
{
	static const char check[] = "123456789";
	uint32_t part;

	CU_ASSERT_EQUAL(crc32c(0, "", 0), 0);
	CU_ASSERT_EQUAL(crc32c(0, check, 9), 0xE3069283u);
	part = crc32c(0, check, 4);
	CU_ASSERT_EQUAL(crc32c(part, check + 4, 5), 0xE3069283u);
	/* 32 zero bytes: a vector of RFC 3720, appendix B.4. */
	{
		uint8_t zeros[32] = { 0 };

		CU_ASSERT_EQUAL(crc32c(0, zeros, sizeof(zeros)), 0x8A9136AAu);
	}
}

/* ---- store_log_scan ------------------------------------------------------- */

static int count_txn(const Capf__StoreTxn *txn, void *arg)
{
	(void)txn;
	(*(int *)arg)++;
	return 0;
}

static int fail_txn(const Capf__StoreTxn *txn, void *arg)
{
	(void)txn;
	(void)arg;
	return CAPF_ENOMEM;
}

/* header + entry "a" + entry "b" (+ extra bytes of room) */
static uint8_t *make_log(size_t extra, size_t *len, size_t *first_len)
{
	size_t la = 0, lb = 0;
	uint8_t *a = make_entry("a", &la), *b = make_entry("b", &lb), *buf = NULL;

	if (!a || !b)
		goto out;
	buf = calloc(1, STORE_LOG_HEADER_LEN + la + lb + extra);
	if (!buf)
		goto out;
	store_log_header_encode(buf);
	memcpy(buf + STORE_LOG_HEADER_LEN, a, la);
	memcpy(buf + STORE_LOG_HEADER_LEN + la, b, lb);
	*len = STORE_LOG_HEADER_LEN + la + lb;
	*first_len = la;
out:
	free(a);
	free(b);
	return buf;
}

static void test_scan_invalid(void)
{
	struct store_scan_result res;
	uint8_t hdr[STORE_LOG_HEADER_LEN];
	int n = 0;

	/* An empty buffer is a log still to be created. */
	CU_ASSERT_EQUAL(store_log_scan(NULL, 0, count_txn, &n, &res), 0);
	CU_ASSERT_EQUAL(res.valid_len, 0);
	CU_ASSERT_EQUAL(res.torn, 0);

	store_log_header_encode(hdr);
	CU_ASSERT_EQUAL(store_log_scan(hdr, 10, count_txn, &n, &res), CAPF_ECORRUPT);
	hdr[0] = 'X';
	CU_ASSERT_EQUAL(store_log_scan(hdr, sizeof(hdr), count_txn, &n, &res), CAPF_ECORRUPT);
	CU_ASSERT_PTR_NOT_NULL(res.reason);
	store_log_header_encode(hdr);
	hdr[11] = 2;
	CU_ASSERT_EQUAL(store_log_scan(hdr, sizeof(hdr), count_txn, &n, &res), CAPF_ECORRUPT);
	CU_ASSERT_EQUAL(res.version, 2);
	store_log_header_encode(hdr);
	hdr[15] = 1;
	CU_ASSERT_EQUAL(store_log_scan(hdr, sizeof(hdr), count_txn, &n, &res), CAPF_ECORRUPT);
	CU_ASSERT_EQUAL(n, 0);
}

static void test_scan_valid(void)
{
	struct store_scan_result res;
	size_t len = 0, la = 0;
	uint8_t *buf = make_log(100, &len, &la);
	int n = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	CU_ASSERT_EQUAL(store_log_scan(buf, len, count_txn, &n, &res), 0);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT_EQUAL(res.entries, 2);
	CU_ASSERT_EQUAL(res.valid_len, len);
	CU_ASSERT_EQUAL(res.torn, 0);

	/* A header alone is a valid empty log. */
	n = 0;
	CU_ASSERT_EQUAL(store_log_scan(buf, STORE_LOG_HEADER_LEN, count_txn, &n, &res), 0);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(res.valid_len, STORE_LOG_HEADER_LEN);

	/* The callback's error stops the scan. */
	CU_ASSERT_EQUAL(store_log_scan(buf, len, fail_txn, NULL, &res), CAPF_ENOMEM);

	/* Zeros after the last entry (a file extended by a crash) are a torn
	 * tail: a zero length is never written. */
	n = 0;
	CU_ASSERT_EQUAL(store_log_scan(buf, len + 100, count_txn, &n, &res), 0);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT_EQUAL(res.torn, 1);
	CU_ASSERT_EQUAL(res.valid_len, len);
	CU_ASSERT_EQUAL(res.bad_off, len);

	/* A cut inside the second entry: torn at its start. */
	n = 0;
	CU_ASSERT_EQUAL(store_log_scan(buf, len - 3, count_txn, &n, &res), 0);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(res.torn, 1);
	CU_ASSERT_EQUAL(res.valid_len, STORE_LOG_HEADER_LEN + la);

	/* A damaged length in the first entry makes it run past the end of
	 * the file, but a good entry follows: damage in the middle, not a
	 * tail to drop. */
	buf[STORE_LOG_HEADER_LEN] = 0x00;
	buf[STORE_LOG_HEADER_LEN + 1] = 0xf0;
	n = 0;
	CU_ASSERT_EQUAL(store_log_scan(buf, len, count_txn, &n, &res), CAPF_ECORRUPT);
	CU_ASSERT_EQUAL(res.bad_off, STORE_LOG_HEADER_LEN);
	CU_ASSERT_EQUAL(n, 0);
	free(buf);
}

/* ---- store_open ----------------------------------------------------------- */

static void test_open_invalid(void)
{
	struct store *st = (struct store *)&st;
	struct tmp t;
	char path[128];
	int fd;

	CU_ASSERT_EQUAL(store_open(NULL, "/tmp"), CAPF_EINVAL);
	CU_ASSERT_EQUAL(store_open(&st, NULL), CAPF_EINVAL);
	CU_ASSERT_PTR_NULL(st);
	CU_ASSERT_EQUAL(store_open(&st, ""), CAPF_EINVAL);

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	snprintf(path, sizeof(path), "%s/file", t.root);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	CU_ASSERT_FATAL(fd >= 0);
	close(fd);
	CU_ASSERT_EQUAL(store_open(&st, path), CAPF_EINVAL);
	CU_ASSERT_PTR_NULL(st);
	CU_ASSERT_PTR_NOT_NULL(strstr(store_last_error(), "not a directory"));

	/* A missing parent directory is not created. */
	snprintf(path, sizeof(path), "%s/no/such", t.root);
	CU_ASSERT_EQUAL(store_open(&st, path), CAPF_ENOENT);
	CU_ASSERT_PTR_NULL(st);

	store_close(NULL);
	tmp_cleanup(&t);
}

static void test_open_fresh(void)
{
	struct store *st = NULL;
	struct store_stats stats;
	struct stat sb;
	struct tmp t;
	char path[160], buf[32] = { 0 };
	uint8_t hdr[STORE_LOG_HEADER_LEN], want[STORE_LOG_HEADER_LEN];
	int fd;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT_EQUAL(stat(t.dir, &sb), 0);
	CU_ASSERT(S_ISDIR(sb.st_mode));
	CU_ASSERT_EQUAL(sb.st_mode & 0777, 0700);

	/* The lock file holds our pid for people. */
	snprintf(path, sizeof(path), "%s/lock", t.dir);
	fd = open(path, O_RDONLY);
	CU_ASSERT(fd >= 0);
	if (fd >= 0) {
		CU_ASSERT(read(fd, buf, sizeof(buf) - 1) > 0);
		close(fd);
	}
	CU_ASSERT_EQUAL(atol(buf), (long)getpid());

	/* The fresh log is exactly the header. */
	CU_ASSERT_EQUAL(file_size(t.log), STORE_LOG_HEADER_LEN);
	fd = open(t.log, O_RDONLY);
	CU_ASSERT(fd >= 0);
	if (fd >= 0) {
		CU_ASSERT_EQUAL(read(fd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
		close(fd);
	}
	memcpy(want, "CAPFSTOR\0\0\0\1\0\0\0\0", sizeof(want));
	CU_ASSERT_EQUAL(memcmp(hdr, want, sizeof(want)), 0);

	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.devices, 0);
	CU_ASSERT_EQUAL(stats.txns_written, 0);
	CU_ASSERT_EQUAL(stats.torn_bytes_dropped, 0);
	store_close(st);

	/* An existing but empty log gets a header too. */
	CU_ASSERT_EQUAL(truncate(t.log, 0), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT_EQUAL(file_size(t.log), STORE_LOG_HEADER_LEN);
	store_close(st);
	tmp_cleanup(&t);
}

static void test_open_bad_header(void)
{
	struct store *st = NULL;
	struct tmp t;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT_EQUAL(put_device(st, "SEP000000000001", 0, 0, 0), 0);
	store_close(st);

	CU_ASSERT_EQUAL(file_patch(t.log, 0, "X", 1), 0);
	CU_ASSERT_EQUAL(store_open(&st, t.dir), CAPF_ECORRUPT);
	CU_ASSERT_PTR_NULL(st);
	CU_ASSERT_PTR_NOT_NULL(strstr(store_last_error(), "magic"));
	CU_ASSERT_PTR_NOT_NULL(strstr(store_last_error(), t.log));

	CU_ASSERT_EQUAL(file_patch(t.log, 0, "C", 1), 0);
	CU_ASSERT_EQUAL(file_patch(t.log, 11, "\2", 1), 0);
	CU_ASSERT_EQUAL(store_open(&st, t.dir), CAPF_ECORRUPT);
	CU_ASSERT_PTR_NOT_NULL(strstr(store_last_error(), "version 2"));

	CU_ASSERT_EQUAL(truncate(t.log, 7), 0);
	CU_ASSERT_EQUAL(store_open(&st, t.dir), CAPF_ECORRUPT);
	CU_ASSERT_PTR_NULL(st);
	/* A refused log is left as it was, for people to inspect. */
	CU_ASSERT_EQUAL(file_size(t.log), 7);
	tmp_cleanup(&t);
}

/* ---- submit and read ------------------------------------------------------ */

static void test_submit_invalid(void)
{
	struct store *st = NULL;
	struct store_stats stats;
	Capf__Device d, empty_name;
	Capf__Certificate c;
	Capf__StoreRecord r, nobody, rname, rserial;
	Capf__StoreRecord *recs[1] = { &r };
	Capf__StoreRecord *bad[2] = { &r, &nobody };
	Capf__StoreRecord *nulls[1] = { NULL };
	Capf__StoreRecord *names[1] = { &rname };
	Capf__StoreRecord *serials[1] = { &rserial };
	Capf__Device *out = NULL;
	Capf__Certificate *cout = NULL;
	struct tmp t;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	full_device(&d, "SEP000000000001");
	device_record(&r, &d);
	capf__store_record__init(&nobody);
	full_device(&empty_name, "");
	device_record(&rname, &empty_name);
	full_cert(&c, cert_serial, 0);
	cert_record(&rserial, &c);

	CU_ASSERT_EQUAL(store_submit(NULL, recs, 1, NULL, NULL), CAPF_EINVAL);
	CU_ASSERT_EQUAL(store_submit(st, NULL, 1, NULL, NULL), CAPF_EINVAL);
	CU_ASSERT_EQUAL(store_submit(st, recs, 0, NULL, NULL), CAPF_EINVAL);
	CU_ASSERT_EQUAL(store_submit_wait(st, recs, 0), CAPF_EINVAL);
	CU_ASSERT_EQUAL(store_submit(st, bad, 2, NULL, NULL), CAPF_EINVAL);
	CU_ASSERT_EQUAL(store_submit_wait(st, bad, 2), CAPF_EINVAL);
	CU_ASSERT_EQUAL(store_submit(st, nulls, 1, NULL, NULL), CAPF_EINVAL);
	CU_ASSERT_EQUAL(store_submit(st, names, 1, NULL, NULL), CAPF_EINVAL);
	CU_ASSERT_EQUAL(store_submit(st, serials, 1, NULL, NULL), CAPF_EINVAL);

	CU_ASSERT_EQUAL(store_device_get(st, NULL, &out), CAPF_EINVAL);
	CU_ASSERT_EQUAL(store_device_get(NULL, "x", &out), CAPF_EINVAL);
	CU_ASSERT_EQUAL(store_device_get(st, "SEP000000000001", NULL), CAPF_EINVAL);
	CU_ASSERT_EQUAL(store_cert_get(st, cert_serial, 0, &cout), CAPF_EINVAL);
	CU_ASSERT_EQUAL(store_cert_get(st, NULL, 4, &cout), CAPF_EINVAL);
	CU_ASSERT_EQUAL(store_device_list(st, NULL, NULL), CAPF_EINVAL);

	/* Nothing of the refused txns reached the log or the index. */
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.txns_written, 0);
	CU_ASSERT_EQUAL(stats.devices, 0);
	CU_ASSERT_EQUAL(file_size(t.log), STORE_LOG_HEADER_LEN);
	CU_ASSERT_EQUAL(store_device_get(st, "SEP000000000001", &out), CAPF_ENOENT);
	CU_ASSERT_PTR_NULL(out);
	store_close(st);
	tmp_cleanup(&t);
}

static void test_device_roundtrip(void)
{
	struct store *st = NULL;
	Capf__Device *d = NULL;
	struct store_stats stats;
	struct tmp t;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT_EQUAL(put_device(st, "SEP001122334455", 0, 0, CAPF__OP_STATUS__STATUS_PENDING), 0);
	/* Visible at once, before any reopen. */
	CU_ASSERT(has_device(st, "SEP001122334455"));
	store_close(st);
	st = NULL;

	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.devices, 1);
	CU_ASSERT_EQUAL(stats.torn_bytes_dropped, 0);
	CU_ASSERT_EQUAL(store_device_get(st, "SEP001122334455", &d), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	CU_ASSERT_STRING_EQUAL(d->name, "SEP001122334455");
	CU_ASSERT_EQUAL(d->op, CAPF__OPERATION__OP_INSTALL);
	CU_ASSERT_EQUAL(d->auth, CAPF__AUTH_MODE__AUTH_STRING);
	CU_ASSERT_EQUAL(d->key_type, CAPF__KEY_TYPE__KEY_EC_P384);
	CU_ASSERT_EQUAL(d->deadline, 1767225600);
	CU_ASSERT_EQUAL(d->status, CAPF__OP_STATUS__STATUS_PENDING);
	CU_ASSERT_EQUAL(d->last_error, 1011);
	CU_ASSERT_EQUAL(d->lsc_serial.len, sizeof(lsc_serial));
	if (d->lsc_serial.len == sizeof(lsc_serial))
		CU_ASSERT_EQUAL(memcmp(d->lsc_serial.data, lsc_serial, sizeof(lsc_serial)), 0);
	CU_ASSERT_EQUAL(d->created, 1700000000);
	CU_ASSERT_EQUAL(d->updated, 1700000123);
	capf__device__free_unpacked(d, NULL);
	d = NULL;

	/* Unknown names and prefixes of known ones are absent. */
	CU_ASSERT_EQUAL(store_device_get(st, "SEP00112233445", &d), CAPF_ENOENT);
	CU_ASSERT_PTR_NULL(d);

	/* A later record of the same name replaces the earlier one. */
	CU_ASSERT_EQUAL(put_device(st, "SEP001122334455", 0, 0, CAPF__OP_STATUS__STATUS_SUCCESS), 0);
	store_close(st);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT_EQUAL(store_device_get(st, "SEP001122334455", &d), 0);
	if (d) {
		CU_ASSERT_EQUAL(d->status, CAPF__OP_STATUS__STATUS_SUCCESS);
		capf__device__free_unpacked(d, NULL);
	}
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.devices, 1);
	store_close(st);
	tmp_cleanup(&t);
}

static void test_cert_by_serial(void)
{
	static const uint8_t other[] = { 0x3a, 0x00, 0x12 };
	struct store *st = NULL;
	Capf__Certificate c, *out = NULL;
	Capf__StoreRecord r;
	Capf__StoreRecord *recs[1] = { &r };
	struct store_stats stats;
	struct tmp t;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	full_cert(&c, cert_serial, sizeof(cert_serial));
	cert_record(&r, &c);
	CU_ASSERT_EQUAL(store_submit_wait(st, recs, 1), 0);
	store_close(st);

	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.certificates, 1);
	CU_ASSERT_EQUAL(stats.devices, 0);
	CU_ASSERT_EQUAL(store_cert_get(st, other, sizeof(other), &out), CAPF_ENOENT);
	CU_ASSERT_EQUAL(store_cert_get(st, cert_serial, sizeof(cert_serial), &out), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(out);
	CU_ASSERT_EQUAL(out->serial.len, sizeof(cert_serial));
	CU_ASSERT_EQUAL(memcmp(out->serial.data, cert_serial, sizeof(cert_serial)), 0);
	CU_ASSERT_STRING_EQUAL(out->device, "SEP001122334455");
	CU_ASSERT_EQUAL(out->not_before, 1700000000);
	CU_ASSERT_EQUAL(out->not_after, 1800000000);
	CU_ASSERT_EQUAL(out->der.len, sizeof(cert_der));
	CU_ASSERT_EQUAL(memcmp(out->der.data, cert_der, sizeof(cert_der)), 0);
	CU_ASSERT_EQUAL(out->state, CAPF__CERT_STATE__CERT_UNCONFIRMED);
	CU_ASSERT_EQUAL(out->issued_at, 1700000001);
	capf__certificate__free_unpacked(out, NULL);
	store_close(st);
	tmp_cleanup(&t);
}

static void test_device_list_sorted(void)
{
	static const char *names[] = { "zeta", "alpha", "mike", "SEP0A", "bravo" };
	static const char *sorted[] = { "SEP0A", "alpha", "bravo", "mike", "zeta" };
	struct store *st = NULL;
	Capf__Device **list = NULL;
	size_t n = 99, i;
	struct tmp t;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT_EQUAL(store_device_list(st, &list, &n), 0);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_PTR_NULL(list);
	for (i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(put_device(st, names[i], 0, 0, 0), 0);
	CU_ASSERT_EQUAL(store_device_list(st, &list, &n), 0);
	CU_ASSERT_EQUAL_FATAL(n, 5);
	for (i = 0; i < 5; i++)
		CU_ASSERT_STRING_EQUAL(list[i]->name, sorted[i]);
	store_device_list_free(list, n);
	store_device_list_free(NULL, 0);
	store_close(st);
	tmp_cleanup(&t);
}

static void test_create_only(void)
{
	struct store *st = NULL;
	Capf__Device *d = NULL;
	struct store_stats stats;
	struct tmp t;
	long size;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT_EQUAL(put_device(st, "SEP0001", 1, 0, CAPF__OP_STATUS__STATUS_PENDING), 0);
	size = file_size(t.log);
	CU_ASSERT_EQUAL(put_device(st, "SEP0001", 1, 0, CAPF__OP_STATUS__STATUS_FAILED),
			CAPF_EEXIST);
	/* The refused txn wrote nothing and changed nothing. */
	CU_ASSERT_EQUAL(file_size(t.log), size);
	CU_ASSERT_EQUAL(store_device_get(st, "SEP0001", &d), 0);
	if (d) {
		CU_ASSERT_EQUAL(d->status, CAPF__OP_STATUS__STATUS_PENDING);
		capf__device__free_unpacked(d, NULL);
		d = NULL;
	}
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.txns_written, 1);

	/* must_exist on a present device works, on an absent one fails. */
	CU_ASSERT_EQUAL(put_device(st, "SEP0001", 0, 1, CAPF__OP_STATUS__STATUS_SUCCESS), 0);
	CU_ASSERT_EQUAL(put_device(st, "SEP0002", 0, 1, CAPF__OP_STATUS__STATUS_SUCCESS),
			CAPF_ENOENT);
	CU_ASSERT_EQUAL(store_device_get(st, "SEP0002", &d), CAPF_ENOENT);
	store_close(st);

	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT_FALSE(has_device(st, "SEP0002"));
	CU_ASSERT_EQUAL(store_device_get(st, "SEP0001", &d), 0);
	if (d) {
		CU_ASSERT_EQUAL(d->status, CAPF__OP_STATUS__STATUS_SUCCESS);
		capf__device__free_unpacked(d, NULL);
	}
	store_close(st);
	tmp_cleanup(&t);
}

/*
 * Preconditions see what earlier txns queued before them will create, and
 * not what a failed txn would have created; within a txn, a record sees
 * the records before it. The four txns are queued without waiting, so
 * they usually form one group.
 */
static void test_preconditions_in_group(void)
{
	struct store *st = NULL;
	struct counter c1 = COUNTER_INIT, c2 = COUNTER_INIT, c3 = COUNTER_INIT, c4 = COUNTER_INIT;
	Capf__Device d1, d2;
	Capf__StoreRecord r1, r3, r4;
	Capf__StoreRecord *create[1] = { &r1 };
	Capf__StoreRecord *twice[2] = { &r3, &r4 };
	Capf__StoreRecord *update[1] = { &r4 };
	struct tmp t;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	full_device(&d1, "SEP-A");
	full_device(&d2, "SEP-B");
	device_record(&r1, &d1);
	r1.create_only = 1;
	device_record(&r3, &d2);
	r3.create_only = 1;
	device_record(&r4, &d2);
	r4.create_only = 1;

	/* SEP-A twice: the second sees the first. */
	CU_ASSERT_EQUAL(store_submit(st, create, 1, counter_cb, &c1), 0);
	CU_ASSERT_EQUAL(store_submit(st, create, 1, counter_cb, &c2), 0);
	/* One txn creating SEP-B twice fails as a whole... */
	CU_ASSERT_EQUAL(store_submit(st, twice, 2, counter_cb, &c3), 0);
	/* ...so SEP-B does not exist for the next txn (records are packed at
	 * submit, so changing r4 now does not touch the queued txn). */
	r4.create_only = 0;
	r4.must_exist = 1;
	CU_ASSERT_EQUAL(store_submit(st, update, 1, counter_cb, &c4), 0);
	counter_wait(&c1, 1);
	counter_wait(&c2, 1);
	counter_wait(&c3, 1);
	counter_wait(&c4, 1);
	CU_ASSERT_EQUAL(c1.failed, 0);
	CU_ASSERT_EQUAL(c2.last_error, CAPF_EEXIST);
	CU_ASSERT_EQUAL(c3.last_error, CAPF_EEXIST);
	CU_ASSERT_EQUAL(c4.last_error, CAPF_ENOENT);
	CU_ASSERT(has_device(st, "SEP-A"));
	CU_ASSERT_FALSE(has_device(st, "SEP-B"));

	/* must_exist after the record of the same txn that creates it passes. */
	CU_ASSERT_EQUAL(store_submit_wait(st, twice, 2), 0);
	CU_ASSERT(has_device(st, "SEP-B"));
	store_close(st);
	tmp_cleanup(&t);
}

static void test_multi_record_txn(void)
{
	struct store *st = NULL;
	Capf__Device d, *dout = NULL;
	Capf__Certificate c, *cout = NULL;
	Capf__StoreRecord rd, rc;
	Capf__StoreRecord *recs[2] = { &rd, &rc };
	struct store_stats stats;
	struct tmp t;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	full_device(&d, "SEP001122334455");
	d.status = CAPF__OP_STATUS__STATUS_ISSUED;
	device_record(&rd, &d);
	full_cert(&c, cert_serial, sizeof(cert_serial));
	cert_record(&rc, &c);

	/* A failing precondition on the device keeps the cert out too. */
	rd.must_exist = 1;
	CU_ASSERT_EQUAL(store_submit_wait(st, recs, 2), CAPF_ENOENT);
	CU_ASSERT_EQUAL(store_cert_get(st, cert_serial, sizeof(cert_serial), &cout), CAPF_ENOENT);

	rd.must_exist = 0;
	CU_ASSERT_EQUAL(store_submit_wait(st, recs, 2), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.txns_written, 1);
	store_close(st);

	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.devices, 1);
	CU_ASSERT_EQUAL(stats.certificates, 1);
	CU_ASSERT_EQUAL(store_device_get(st, "SEP001122334455", &dout), 0);
	CU_ASSERT_EQUAL(store_cert_get(st, cert_serial, sizeof(cert_serial), &cout), 0);
	if (dout) {
		CU_ASSERT_EQUAL(dout->status, CAPF__OP_STATUS__STATUS_ISSUED);
		capf__device__free_unpacked(dout, NULL);
	}
	if (cout) {
		CU_ASSERT_STRING_EQUAL(cout->device, "SEP001122334455");
		capf__certificate__free_unpacked(cout, NULL);
	}
	store_close(st);
	tmp_cleanup(&t);
}

/* ---- recovery ------------------------------------------------------------- */

/* Opens a store with two devices, closes it and returns the log size. */
static long two_devices(struct tmp *t)
{
	struct store *st = NULL;

	if (store_open(&st, t->dir) != 0)
		return -1;
	if (put_device(st, "SEP-ONE", 0, 0, 0) != 0 || put_device(st, "SEP-TWO", 0, 0, 0) != 0) {
		store_close(st);
		return -1;
	}
	store_close(st);
	return file_size(t->log);
}

static void test_torn_tail(void)
{
	struct store *st = NULL;
	struct store_stats stats;
	size_t elen = 0;
	uint8_t *entry = make_entry("SEP-TORN", &elen);
	struct tmp t;
	long size;

	CU_ASSERT_PTR_NOT_NULL_FATAL(entry);
	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	size = two_devices(&t);
	CU_ASSERT_FATAL(size > STORE_LOG_HEADER_LEN);

	/* Half an entry, as a crash in the middle of a write leaves it. */
	CU_ASSERT_EQUAL(file_append(t.log, entry, elen / 2), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.torn_bytes_dropped, elen / 2);
	CU_ASSERT_EQUAL(stats.devices, 2);
	CU_ASSERT_EQUAL(file_size(t.log), size);
	CU_ASSERT(has_device(st, "SEP-ONE"));
	CU_ASSERT(has_device(st, "SEP-TWO"));
	CU_ASSERT_FALSE(has_device(st, "SEP-TORN"));
	/* The log goes on from the cut. */
	CU_ASSERT_EQUAL(put_device(st, "SEP-THREE", 0, 0, 0), 0);
	store_close(st);

	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.torn_bytes_dropped, 0);
	CU_ASSERT_EQUAL(stats.devices, 3);
	CU_ASSERT(has_device(st, "SEP-THREE"));
	CU_ASSERT(has_device(st, "SEP-ONE"));
	store_close(st);

	/* Only part of an entry header. */
	size = file_size(t.log);
	CU_ASSERT_EQUAL(file_append(t.log, entry, 5), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.torn_bytes_dropped, 5);
	CU_ASSERT_EQUAL(file_size(t.log), size);
	store_close(st);
	free(entry);
	tmp_cleanup(&t);
}

static void test_bad_crc_tail(void)
{
	struct store *st = NULL;
	struct store_stats stats;
	size_t elen = 0;
	uint8_t *entry = make_entry("SEP-BADCRC", &elen);
	struct tmp t;
	long size;

	CU_ASSERT_PTR_NOT_NULL_FATAL(entry);
	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	size = two_devices(&t);
	CU_ASSERT_FATAL(size > STORE_LOG_HEADER_LEN);

	/* A full-length entry whose data never reached the disk intact. */
	entry[elen - 1] ^= 0x01;
	CU_ASSERT_EQUAL(file_append(t.log, entry, elen), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.torn_bytes_dropped, elen);
	CU_ASSERT_EQUAL(file_size(t.log), size);
	CU_ASSERT_FALSE(has_device(st, "SEP-BADCRC"));
	CU_ASSERT(has_device(st, "SEP-TWO"));
	CU_ASSERT_EQUAL(put_device(st, "SEP-AFTER", 0, 0, 0), 0);
	store_close(st);

	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.torn_bytes_dropped, 0);
	CU_ASSERT(has_device(st, "SEP-AFTER"));
	CU_ASSERT(has_device(st, "SEP-ONE"));
	store_close(st);
	free(entry);
	tmp_cleanup(&t);
}

static void test_damaged_middle(void)
{
	struct store *st = NULL;
	struct tmp t;
	long size;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	size = two_devices(&t);
	CU_ASSERT_FATAL(size > STORE_LOG_HEADER_LEN);

	/* A byte of the first entry's payload: its CRC fails, and a good
	 * entry follows, so this is not a torn tail. */
	CU_ASSERT_EQUAL(file_xor_byte(t.log, STORE_LOG_HEADER_LEN + 8 + 3), 0);
	CU_ASSERT_EQUAL(store_open(&st, t.dir), CAPF_ECORRUPT);
	CU_ASSERT_PTR_NULL(st);
	CU_ASSERT_PTR_NOT_NULL(strstr(store_last_error(), "offset 16"));
	CU_ASSERT_PTR_NOT_NULL(strstr(store_last_error(), t.log));
	/* Nothing was dropped. */
	CU_ASSERT_EQUAL(file_size(t.log), size);

	/* The same with the damage in the length field. */
	CU_ASSERT_EQUAL(file_xor_byte(t.log, STORE_LOG_HEADER_LEN + 8 + 3), 0);
	CU_ASSERT_EQUAL(file_xor_byte(t.log, STORE_LOG_HEADER_LEN + 1), 0);
	CU_ASSERT_EQUAL(store_open(&st, t.dir), CAPF_ECORRUPT);
	CU_ASSERT_PTR_NOT_NULL(strstr(store_last_error(), "offset 16"));
	CU_ASSERT_EQUAL(file_size(t.log), size);

	/* Repaired, it opens again. */
	CU_ASSERT_EQUAL(file_xor_byte(t.log, STORE_LOG_HEADER_LEN + 1), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT(has_device(st, "SEP-ONE"));
	store_close(st);
	tmp_cleanup(&t);
}

/* ---- lock ----------------------------------------------------------------- */

/*
 * flock() locks belong to an open file description, so even a second
 * store_open() in this process conflicts; the child process is the case
 * that matters (a second capfd on the same directory), so both are tested.
 */
static void test_lock(void)
{
	struct store *st = NULL, *st2 = NULL;
	struct tmp t;
	char want[64];
	pid_t pid;
	int status = -1;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	snprintf(want, sizeof(want), "(pid %ld)", (long)getpid());

	fflush(NULL);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		struct store *cst = NULL;
		int rc = store_open(&cst, t.dir);
		int ok = rc == CAPF_ELOCKED && !cst &&
			 strstr(store_last_error(), "is in use by another process") &&
			 strstr(store_last_error(), want) && strstr(store_last_error(), t.dir);

		_exit(ok ? 0 : 1);
	}
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT(WIFEXITED(status));
	CU_ASSERT_EQUAL(WEXITSTATUS(status), 0);

	CU_ASSERT_EQUAL(store_open(&st2, t.dir), CAPF_ELOCKED);
	CU_ASSERT_PTR_NULL(st2);
	CU_ASSERT_PTR_NOT_NULL(strstr(store_last_error(), want));

	/* Closing unlocks. */
	store_close(st);
	CU_ASSERT_EQUAL(store_open(&st2, t.dir), 0);
	store_close(st2);
	tmp_cleanup(&t);
}

/* ---- writer --------------------------------------------------------------- */

struct worker {
	struct store *st;
	int id;
	int n;
	int use_wait;
	struct counter *counter;
	int submit_errors;
	int wait_errors;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int i;

	for (i = 0; i < w->n; i++) {
		char name[32];
		Capf__Device d;
		Capf__StoreRecord r;
		Capf__StoreRecord *recs[1] = { &r };
		int rc;

		snprintf(name, sizeof(name), "SEP-%d-%05d", w->id, i);
		full_device(&d, name);
		device_record(&r, &d);
		r.create_only = 1;
		if (w->use_wait) {
			rc = store_submit_wait(w->st, recs, 1);
			if (rc != 0)
				w->wait_errors++;
		} else {
			rc = store_submit(w->st, recs, 1, counter_cb, w->counter);
			if (rc != 0)
				w->submit_errors++;
		}
	}
	return NULL;
}

static void test_group_commit(void)
{
	struct store *st = NULL;
	struct counter counter = COUNTER_INIT;
	struct worker w[N_THREADS];
	pthread_t th[N_THREADS];
	struct store_stats stats;
	int n = test_txns(), i, async_total = 0, errors = 0, missing = 0;
	struct tmp t;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	/* Half the threads submit and go on, half wait for each result. */
	for (i = 0; i < N_THREADS; i++) {
		w[i] = (struct worker){ .st = st, .id = i, .n = n, .use_wait = i % 2,
					.counter = &counter };
		if (!w[i].use_wait)
			async_total += n;
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (i = 0; i < N_THREADS; i++) {
		pthread_join(th[i], NULL);
		errors += w[i].submit_errors + w[i].wait_errors;
	}
	counter_wait(&counter, async_total);
	CU_ASSERT_EQUAL(errors, 0);
	CU_ASSERT_EQUAL(counter.done, async_total);
	CU_ASSERT_EQUAL(counter.failed, 0);

	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.txns_written, (uint64_t)N_THREADS * n);
	CU_ASSERT_EQUAL(stats.devices, (uint64_t)N_THREADS * n);
	CU_ASSERT(stats.syncs > 0);
	CU_ASSERT(stats.syncs < stats.txns_written);
	printf("\n    %llu txns in %llu syncs ",
	       (unsigned long long)stats.txns_written, (unsigned long long)stats.syncs);
	store_close(st);
	st = NULL;

	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.devices, (uint64_t)N_THREADS * n);
	CU_ASSERT_EQUAL(stats.torn_bytes_dropped, 0);
	for (i = 0; i < N_THREADS * n; i++) {
		char name[32];

		snprintf(name, sizeof(name), "SEP-%d-%05d", i % N_THREADS, i / N_THREADS);
		if (!has_device(st, name))
			missing++;
	}
	CU_ASSERT_EQUAL(missing, 0);
	store_close(st);
	tmp_cleanup(&t);
}

static void test_fault(void)
{
	struct store *st = NULL;
	struct store_stats stats;
	Capf__Device *d = NULL;
	struct tmp t;
	long size;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT_EQUAL(put_device(st, "SEP-BEFORE", 0, 0, 0), 0);
	size = file_size(t.log);

	store_set_fault(st, CAPF_ENOSPC);
	CU_ASSERT_EQUAL(put_device(st, "SEP-FULL", 0, 0, 0), CAPF_ENOSPC);
	CU_ASSERT_EQUAL(store_device_get(st, "SEP-FULL", &d), CAPF_ENOENT);
	CU_ASSERT_EQUAL(file_size(t.log), size);
	store_set_fault(st, CAPF_EIO);
	CU_ASSERT_EQUAL(put_device(st, "SEP-EIO", 0, 0, 0), CAPF_EIO);
	CU_ASSERT_FALSE(has_device(st, "SEP-EIO"));
	CU_ASSERT_EQUAL(file_size(t.log), size);
	/* A failed precondition still reports its own error. */
	CU_ASSERT_EQUAL(put_device(st, "SEP-BEFORE", 1, 0, 0), CAPF_EEXIST);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.txns_written, 1);

	/* Once the fault is gone, writing works again. */
	store_set_fault(st, 0);
	CU_ASSERT_EQUAL(put_device(st, "SEP-FULL", 0, 0, 0), 0);
	CU_ASSERT(has_device(st, "SEP-FULL"));
	CU_ASSERT(file_size(t.log) > size);
	store_close(st);

	/* The log holds no trace of the failed writes. */
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.torn_bytes_dropped, 0);
	CU_ASSERT_EQUAL(stats.devices, 2);
	CU_ASSERT(has_device(st, "SEP-FULL"));
	CU_ASSERT(has_device(st, "SEP-BEFORE"));
	CU_ASSERT_FALSE(has_device(st, "SEP-EIO"));
	store_close(st);
	tmp_cleanup(&t);
}

static void test_close_pending(void)
{
	struct store *st = NULL;
	struct counter counter = COUNTER_INIT;
	struct store_stats stats;
	int n = test_txns() * 2, i, queued = 0;
	struct tmp t;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	for (i = 0; i < n; i++) {
		char name[32];
		Capf__Device d;
		Capf__StoreRecord r;
		Capf__StoreRecord *recs[1] = { &r };

		snprintf(name, sizeof(name), "SEP-P-%05d", i);
		full_device(&d, name);
		device_record(&r, &d);
		if (store_submit(st, recs, 1, counter_cb, &counter) == 0)
			queued++;
	}
	CU_ASSERT_EQUAL(queued, n);
	store_close(st);
	/* No waiting: every callback ran before store_close() returned. */
	CU_ASSERT_EQUAL(counter.done, n);
	CU_ASSERT_EQUAL(counter.failed, 0);

	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.devices, (uint64_t)n);
	store_close(st);
	tmp_cleanup(&t);
}

/* ---- main ----------------------------------------------------------------- */

int main(void)
{
	CU_pSuite s;
	unsigned int failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;

	s = CU_add_suite("crc32c", NULL, NULL);
	if (!s || !CU_add_test(s, "check values", test_crc32c))
		goto fail;

	s = CU_add_suite("store_log_scan", NULL, NULL);
	if (!s || !CU_add_test(s, "invalid headers", test_scan_invalid) ||
	    !CU_add_test(s, "entries, torn tails, damage", test_scan_valid))
		goto fail;

	s = CU_add_suite("store_open", NULL, NULL);
	if (!s || !CU_add_test(s, "invalid input", test_open_invalid) ||
	    !CU_add_test(s, "fresh directory", test_open_fresh) ||
	    !CU_add_test(s, "bad header", test_open_bad_header) ||
	    !CU_add_test(s, "directory lock", test_lock))
		goto fail;

	s = CU_add_suite("records", NULL, NULL);
	if (!s || !CU_add_test(s, "invalid input", test_submit_invalid) ||
	    !CU_add_test(s, "device round trip", test_device_roundtrip) ||
	    !CU_add_test(s, "certificate by serial", test_cert_by_serial) ||
	    !CU_add_test(s, "device list sorted", test_device_list_sorted) ||
	    !CU_add_test(s, "create_only and must_exist", test_create_only) ||
	    !CU_add_test(s, "preconditions within a group", test_preconditions_in_group) ||
	    !CU_add_test(s, "multi-record txn", test_multi_record_txn))
		goto fail;

	s = CU_add_suite("recovery", NULL, NULL);
	if (!s || !CU_add_test(s, "torn tail", test_torn_tail) ||
	    !CU_add_test(s, "bad CRC at the tail", test_bad_crc_tail) ||
	    !CU_add_test(s, "damaged middle", test_damaged_middle))
		goto fail;

	s = CU_add_suite("writer", NULL, NULL);
	if (!s || !CU_add_test(s, "group commit", test_group_commit) ||
	    !CU_add_test(s, "write fault", test_fault) ||
	    !CU_add_test(s, "close with pending txns", test_close_pending))
		goto fail;

	CU_basic_set_mode(CU_BRM_VERBOSE);
	if (CU_basic_run_tests() != CUE_SUCCESS)
		goto fail;
	failures = CU_get_number_of_failures();
	tmp_cleanup_all();
	CU_cleanup_registry();
	return failures > 255 ? 255 : (int)failures;
fail:
	tmp_cleanup_all();
	CU_cleanup_registry();
	return 1;
}
