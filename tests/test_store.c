/*
 * Tests of store/: the file formats and their recovery, the record codec,
 * the index, the writer with group commit and its failure handling, the
 * directory lock, compaction, the audit log and its tamper evidence, the
 * offline check and repair, the fault seam.
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
	snprintf(t->log, sizeof(t->log), "%s/log.0000000001", t->dir);
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
	d->revision = 1; /* as created: create_only takes it */
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
	c->revision = 1;
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
/* The payload of a txn writing one device record. */
static uint8_t *make_payload(const char *device_name, size_t *len)
{
	Capf__Device d;
	Capf__StoreRecord r;
	Capf__StoreRecord *recs[1] = { &r };
	Capf__StoreTxn txn = CAPF__STORE_TXN__INIT;
	size_t plen;
	uint8_t *buf;

	full_device(&d, device_name);
	device_record(&r, &d);
	txn.n_records = 1;
	txn.records = recs;
	txn.time = 1700000000;
	plen = capf__store_txn__get_packed_size(&txn);
	buf = malloc(plen);
	if (!buf)
		return NULL;
	capf__store_txn__pack(&txn, buf);
	*len = plen;
	return buf;
}

/* An entry of format 1 and 2 (length, CRC32C, payload) writing one device. */
static uint8_t *make_v2_entry(const char *device_name, size_t *len)
{
	size_t plen = 0;
	uint8_t *p = make_payload(device_name, &plen), *buf = NULL;

	if (p && (buf = malloc(8 + plen))) {
		store_be32_put(buf, (uint32_t)plen);
		store_be32_put(buf + 4, crc32c(0, p, plen));
		memcpy(buf + 8, p, plen);
		*len = 8 + plen;
	}
	free(p);
	return buf;
}

/* The framed entry (its own committed group) of payload p as the next
 * entry of the format 3 file held in buf (len bytes). */
static uint8_t *frame_after(const uint8_t *buf, size_t len, enum store_file_kind kind,
			    const uint8_t *p, size_t plen, size_t *out_len)
{
	struct store_scan_result res;
	struct store_framer f = { 0 };
	struct store_buf out = { 0 };

	if (store_file_walk(buf, len, kind, NULL, NULL, NULL, NULL, &res) < 0)
		return NULL;
	f.salt = res.salt;
	f.pos = len;
	f.group = res.group + 1;
	if (store_frame_entry(&f, p, plen, true, &out, NULL) < 0)
		return NULL;
	*out_len = out.len;
	return out.data;
}

/* The framed entry of a txn writing device device_name, as the next entry
 * of the segment at path (which must exist). */
static uint8_t *next_entry(const char *path, const char *device_name, size_t *len)
{
	struct store_file_map m;
	size_t plen = 0;
	uint8_t *p = make_payload(device_name, &plen), *e = NULL;

	if (p && store_map_file(path, &m) == 0) {
		e = frame_after(m.data, m.len, STORE_FILE_SEGMENT, p, plen, len);
		store_unmap_file(&m);
	}
	free(p);
	return e;
}

/* A segment in memory: header, then each payload its own committed group. */
static uint8_t *frame_file(enum store_file_kind kind, uint64_t seq, const uint8_t *const *ps,
			   const size_t *lens, size_t n, size_t extra, size_t *len)
{
	struct store_framer f = { 0x5eed1234u, STORE_HEADER_LEN, 1, false };
	struct store_buf out = { 0 };
	size_t i;

	if (store_buf_reserve(&out, STORE_HEADER_LEN) < 0)
		return NULL;
	store_header_encode(out.data, kind, seq, f.salt);
	out.len = STORE_HEADER_LEN;
	for (i = 0; i < n; i++) {
		if (store_frame_entry(&f, ps[i], lens[i], true, &out, NULL) < 0) {
			store_buf_free(&out);
			return NULL;
		}
		f.group++;
	}
	if (store_buf_reserve(&out, extra) < 0) {
		store_buf_free(&out);
		return NULL;
	}
	memset(out.data + out.len, 0, extra);
	*len = out.len;
	return out.data;
}

static int has_device(struct store *st, const char *name)
{
	Capf__Device *d = NULL;
	int ret = store_device_get(st, name, &d);

	if (d)
		capf__device__free_unpacked(d, NULL);
	return ret == 0;
}

/* Asserts that the device name is in the store with the given status. */
static void check_device_status(struct store *st, const char *name, Capf__OpStatus status)
{
	Capf__Device *d = NULL;

	CU_ASSERT_EQUAL(store_device_get(st, name, &d), 0);
	if (d) {
		CU_ASSERT_EQUAL(d->status, status);
		capf__device__free_unpacked(d, NULL);
	}
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
		CU_ASSERT_EQUAL(store_crc32c_table(0, zeros, sizeof(zeros)), 0x8A9136AAu);
	}
	/* Whatever code path the processor gets, the table's answer, for
	 * every length and alignment and when continued. */
	{
		uint8_t buf[300];
		size_t off, len;
		int same = 1;

		for (off = 0; off < sizeof(buf); off++)
			buf[off] = (uint8_t)(off * 131u + 7u);
		for (off = 0; off < 9; off++) {
			for (len = 0; off + len <= sizeof(buf); len += 7) {
				uint32_t a = crc32c(0, buf + off, len);

				same &= a == store_crc32c_table(0, buf + off, len);
				same &= crc32c(crc32c(0, buf + off, len / 3), buf + off + len / 3,
					       len - len / 3) == a;
			}
		}
		CU_ASSERT(same);
	}
}

/* ---- store_log_scan ------------------------------------------------------- */

static int count_txn(const uint8_t *p, size_t len, size_t off, void *arg)
{
	(void)p;
	(void)len;
	(void)off;
	(*(int *)arg)++;
	return 0;
}

static int fail_txn(const uint8_t *p, size_t len, size_t off, void *arg)
{
	(void)p;
	(void)len;
	(void)off;
	(void)arg;
	return CAPF_ENOMEM;
}

/* header + entry "a" + entry "b" (+ extra bytes of room) */
static uint8_t *make_log(size_t extra, size_t *len, size_t *first_len)
{
	size_t lens[2] = { 0, 0 };
	uint8_t *a = make_payload("a", &lens[0]), *b = make_payload("b", &lens[1]), *buf = NULL;
	const uint8_t *ps[2] = { a, b };

	if (!a || !b)
		goto out;
	buf = frame_file(STORE_FILE_SEGMENT, 1, ps, lens, 2, extra, len);
	*first_len = STORE_FRAG_HEADER_LEN + lens[0];
out:
	free(a);
	free(b);
	return buf;
}

static void test_scan_invalid(void)
{
	struct store_scan_result res;
	uint8_t hdr[STORE_HEADER_LEN];
	int n = 0;

	/* An empty buffer is a log still to be created. */
	CU_ASSERT_EQUAL(store_log_scan(NULL, 0, count_txn, &n, &res), 0);
	CU_ASSERT_EQUAL(res.valid_len, 0);
	CU_ASSERT_EQUAL(res.torn, 0);

	store_header_encode(hdr, STORE_FILE_SEGMENT, 1, 7);
	CU_ASSERT_EQUAL(store_log_scan(hdr, 10, count_txn, &n, &res), CAPF_ECORRUPT);
	hdr[0] = 'X';
	CU_ASSERT_EQUAL(store_log_scan(hdr, sizeof(hdr), count_txn, &n, &res), CAPF_ECORRUPT);
	CU_ASSERT_PTR_NOT_NULL(res.reason);
	store_header_encode(hdr, STORE_FILE_SEGMENT, 1, 7);
	hdr[11] = 4;
	CU_ASSERT_EQUAL(store_log_scan(hdr, sizeof(hdr), count_txn, &n, &res), CAPF_ECORRUPT);
	CU_ASSERT_EQUAL(res.version, 4);
	/* The header's CRC covers the salt. */
	store_header_encode(hdr, STORE_FILE_SEGMENT, 1, 7);
	hdr[27] ^= 1;
	CU_ASSERT_EQUAL(store_log_scan(hdr, sizeof(hdr), count_txn, &n, &res), CAPF_ECORRUPT);
	store_header_encode(hdr, STORE_FILE_SEGMENT, 1, 7);
	hdr[15] = 3; /* a flag no writer sets */
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
	CU_ASSERT_EQUAL(store_log_scan(buf, STORE_HEADER_LEN, count_txn, &n, &res), 0);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(res.valid_len, STORE_HEADER_LEN);

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
	CU_ASSERT_EQUAL(res.valid_len, STORE_HEADER_LEN + la);

	/* A damaged length in the first entry hides where the next one
	 * starts, but the next group's header is still seen (and only
	 * seen: nothing after the damage in its block is read as an
	 * entry): damage before a later commit. */
	buf[STORE_HEADER_LEN + 8] ^= 0x01;
	n = 0;
	CU_ASSERT_EQUAL(store_log_scan(buf, len, count_txn, &n, &res), CAPF_ECORRUPT);
	CU_ASSERT_EQUAL(res.bad_off, STORE_HEADER_LEN);
	CU_ASSERT_EQUAL(n, 0);
	buf[STORE_HEADER_LEN + 8] ^= 0x01;
	/* Damage to the first group with a later one intact: refused. */
	buf[STORE_HEADER_LEN + STORE_FRAG_HEADER_LEN + 2] ^= 0x01;
	n = 0;
	CU_ASSERT_EQUAL(store_log_scan(buf, len, count_txn, &n, &res), CAPF_ECORRUPT);
	CU_ASSERT_EQUAL(res.bad_off, STORE_HEADER_LEN);
	CU_ASSERT_EQUAL(n, 0);
	free(buf);
}

/*
 * Groups written after one that was not synced yet (lazy) say so, and are
 * no evidence that the groups before them were durable: damage followed
 * only by such groups is a torn tail; a later group written once all
 * before it were synced proves the damaged one durable.
 */
static void test_scan_lazy(void)
{
	static const bool lazy_cases[][4] = {
		/* after_lazy of groups 1..4, damage in group 2 */
		{ false, false, true, true },   /* torn: 3 and 4 follow an unsynced 2 */
		{ false, false, false, false }, /* corrupt: 3 was written after 2 synced */
		{ false, false, true, false },  /* corrupt: 4 proves 2 and 3 synced */
	};
	static const int want[] = { 0, CAPF_ECORRUPT, CAPF_ECORRUPT };
	size_t plen = 0;
	uint8_t *p = make_payload("SEP-LAZY", &plen);

	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	for (size_t c = 0; c < sizeof(want) / sizeof(want[0]); c++) {
		struct store_framer f = { 0x5eed1234u, STORE_HEADER_LEN, 1, false };
		struct store_buf out = { 0 };
		struct store_scan_result res;
		uint64_t starts[4] = { 0 };
		int n = 0;

		CU_ASSERT_EQUAL_FATAL(store_buf_reserve(&out, STORE_HEADER_LEN), 0);
		store_header_encode(out.data, STORE_FILE_SEGMENT, 1, f.salt);
		out.len = STORE_HEADER_LEN;
		for (size_t g = 0; g < 4; g++) {
			f.after_lazy = lazy_cases[c][g];
			CU_ASSERT_EQUAL(store_frame_entry(&f, p, plen, true, &out, &starts[g]), 0);
			f.group++;
		}
		/* A payload byte of group 2. */
		out.data[starts[1] + STORE_FRAG_HEADER_LEN + 1] ^= 0x40;
		CU_ASSERT_EQUAL(store_log_scan(out.data, out.len, count_txn, &n, &res), want[c]);
		if (want[c] == 0) {
			CU_ASSERT_EQUAL(res.torn, 1);
			CU_ASSERT_EQUAL(res.valid_len, starts[1]);
			CU_ASSERT_EQUAL(n, 1);
		}
		store_buf_free(&out);
	}
	free(p);
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
	uint8_t hdr[STORE_HEADER_LEN], want[STORE_HEADER_LEN];
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
	CU_ASSERT_EQUAL(file_size(t.log), STORE_HEADER_LEN);
	fd = open(t.log, O_RDONLY);
	CU_ASSERT(fd >= 0);
	if (fd >= 0) {
		CU_ASSERT_EQUAL(read(fd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
		close(fd);
	}
	memcpy(want, "CAPFSTOR\0\0\0\3\0\0\0\1\0\0\0\0\0\0\0\1", 24);
	CU_ASSERT_EQUAL(memcmp(hdr, want, 24), 0);

	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.devices, 0);
	CU_ASSERT_EQUAL(stats.txns_written, 0);
	CU_ASSERT_EQUAL(stats.torn_bytes_dropped, 0);
	store_close(st);

	/* An existing but empty log gets a header too. */
	CU_ASSERT_EQUAL(truncate(t.log, 0), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT_EQUAL(file_size(t.log), STORE_HEADER_LEN);
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
	CU_ASSERT_EQUAL(file_patch(t.log, 11, "\4", 1), 0);
	CU_ASSERT_EQUAL(store_open(&st, t.dir), CAPF_ECORRUPT);
	CU_ASSERT_PTR_NOT_NULL(strstr(store_last_error(), "version 4"));

	CU_ASSERT_EQUAL(truncate(t.log, 7), 0);
	CU_ASSERT_EQUAL(store_open(&st, t.dir), CAPF_ECORRUPT);
	CU_ASSERT_PTR_NULL(st);
	/* A refused log is left as it was, for people to inspect. */
	CU_ASSERT_EQUAL(file_size(t.log), 7);

	/* A FIFO where the segment belongs is refused at once, named:
	 * opening it must not wait for a writer (were it to block, SIGALRM
	 * would end the test program). */
	CU_ASSERT_EQUAL_FATAL(unlink(t.log), 0);
	CU_ASSERT_EQUAL_FATAL(mkfifo(t.log, 0600), 0);
	alarm(30);
	CU_ASSERT(store_open(&st, t.dir) < 0);
	alarm(0);
	CU_ASSERT_PTR_NULL(st);
	CU_ASSERT_PTR_NOT_NULL(strstr(store_last_error(), "not a regular file"));
	unlink(t.log);
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
	CU_ASSERT_EQUAL(file_size(t.log), STORE_HEADER_LEN);
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
	check_device_status(st, "SEP001122334455", CAPF__OP_STATUS__STATUS_SUCCESS);
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

struct foreach_seen {
	unsigned calls;
	unsigned mask;     /* bit i: serial {0x10 + i} seen */
	unsigned stop_at;  /* return 7 at this call, 0 = never */
};

static int foreach_cb(const Capf__Certificate *c, void *arg)
{
	struct foreach_seen *seen = arg;

	seen->calls++;
	if (c->serial.len == 1 && c->serial.data[0] >= 0x10 && c->serial.data[0] < 0x14)
		seen->mask |= 1u << (c->serial.data[0] - 0x10);
	return seen->calls == seen->stop_at ? 7 : 0;
}

static void test_cert_foreach(void)
{
	static const uint8_t serials[4][1] = { { 0x10 }, { 0x11 }, { 0x12 }, { 0x13 } };
	struct store *st = NULL;
	Capf__Certificate c[4];
	Capf__StoreRecord r[4];
	Capf__StoreRecord *recs[4] = { &r[0], &r[1], &r[2], &r[3] };
	struct foreach_seen seen = { 0 };
	struct tmp t;

	CU_ASSERT_EQUAL(store_cert_foreach(NULL, foreach_cb, &seen), CAPF_EINVAL);
	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT_EQUAL(store_cert_foreach(st, NULL, &seen), CAPF_EINVAL);
	CU_ASSERT_EQUAL(store_cert_foreach(st, foreach_cb, &seen), 0);
	CU_ASSERT_EQUAL(seen.calls, 0);
	for (int i = 0; i < 4; i++) {
		full_cert(&c[i], serials[i], 1);
		cert_record(&r[i], &c[i]);
	}
	CU_ASSERT_EQUAL_FATAL(store_submit_wait(st, recs, 4), 0);

	CU_ASSERT_EQUAL(store_cert_foreach(st, foreach_cb, &seen), 0);
	CU_ASSERT_EQUAL(seen.calls, 4);
	CU_ASSERT_EQUAL(seen.mask, 0xfu);

	/* A non-zero return stops the walk and is passed back. */
	memset(&seen, 0, sizeof(seen));
	seen.stop_at = 2;
	CU_ASSERT_EQUAL(store_cert_foreach(st, foreach_cb, &seen), 7);
	CU_ASSERT_EQUAL(seen.calls, 2);
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
	check_device_status(st, "SEP0001", CAPF__OP_STATUS__STATUS_PENDING);
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
	check_device_status(st, "SEP0001", CAPF__OP_STATUS__STATUS_SUCCESS);
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
	uint8_t *entry = NULL;
	struct tmp t;
	long size;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	size = two_devices(&t);
	CU_ASSERT_FATAL(size > STORE_HEADER_LEN);
	entry = next_entry(t.log, "SEP-ENTRY", &elen);
	CU_ASSERT_PTR_NOT_NULL_FATAL(entry);

	/* Half an entry, as a crash in the middle of a write leaves it. */
	CU_ASSERT_EQUAL(file_append(t.log, entry, elen / 2), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.torn_bytes_dropped, elen / 2);
	CU_ASSERT_EQUAL(stats.devices, 2);
	CU_ASSERT_EQUAL(file_size(t.log), size);
	CU_ASSERT(has_device(st, "SEP-ONE"));
	CU_ASSERT(has_device(st, "SEP-TWO"));
	CU_ASSERT_FALSE(has_device(st, "SEP-ENTRY"));
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
	uint8_t *entry = NULL;
	struct tmp t;
	long size;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	size = two_devices(&t);
	CU_ASSERT_FATAL(size > STORE_HEADER_LEN);
	entry = next_entry(t.log, "SEP-ENTRY", &elen);
	CU_ASSERT_PTR_NOT_NULL_FATAL(entry);

	/* A full-length entry whose data never reached the disk intact. */
	entry[elen - 1] ^= 0x01;
	CU_ASSERT_EQUAL(file_append(t.log, entry, elen), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.torn_bytes_dropped, elen);
	CU_ASSERT_EQUAL(file_size(t.log), size);
	CU_ASSERT_FALSE(has_device(st, "SEP-ENTRY"));
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
	CU_ASSERT_FATAL(size > STORE_HEADER_LEN);

	/* A byte of the first entry's payload: its CRC fails, and a good
	 * entry follows, so this is not a torn tail. */
	CU_ASSERT_EQUAL(file_xor_byte(t.log, STORE_HEADER_LEN + STORE_FRAG_HEADER_LEN + 3), 0);
	CU_ASSERT_EQUAL(store_open(&st, t.dir), CAPF_ECORRUPT);
	CU_ASSERT_PTR_NULL(st);
	CU_ASSERT_PTR_NOT_NULL(strstr(store_last_error(), "offset 32"));
	CU_ASSERT_PTR_NOT_NULL(strstr(store_last_error(), t.log));
	/* Nothing was dropped. */
	CU_ASSERT_EQUAL(file_size(t.log), size);

	/* The same with the damage in the length field. */
	CU_ASSERT_EQUAL(file_xor_byte(t.log, STORE_HEADER_LEN + STORE_FRAG_HEADER_LEN + 3), 0);
	CU_ASSERT_EQUAL(file_xor_byte(t.log, STORE_HEADER_LEN + 5), 0);
	CU_ASSERT_EQUAL(store_open(&st, t.dir), CAPF_ECORRUPT);
	CU_ASSERT_PTR_NOT_NULL(strstr(store_last_error(), "offset 32"));
	CU_ASSERT_EQUAL(file_size(t.log), size);

	/* Repaired, it opens again. */
	CU_ASSERT_EQUAL(file_xor_byte(t.log, STORE_HEADER_LEN + 5), 0);
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


/* ---- record codec ----------------------------------------------------------- */

/* Frames payload p (n bytes) as one entry of a segment after its header. */
static size_t one_entry_file(uint8_t *buf, const uint8_t *p, size_t n)
{
	size_t len = 0;
	uint8_t *f = frame_file(STORE_FILE_SEGMENT, 1, &p, &n, 1, 0, &len);

	if (!f)
		return 0;
	memcpy(buf, f, len);
	free(f);
	return len;
}

struct rec_seen {
	int n;
	enum store_rec_kind kinds[4];
	char keys[4][32];
	size_t key_lens[4];
	int create_only[4];
	int must_exist[4];
};

static int see_rec(const struct store_rec_view *v, void *arg)
{
	struct rec_seen *rs = arg;

	if (rs->n >= 4)
		return CAPF_ERANGE;
	rs->kinds[rs->n] = v->kind;
	memcpy(rs->keys[rs->n], v->key, v->key_len < 31 ? v->key_len : 31);
	rs->key_lens[rs->n] = v->key_len;
	rs->create_only[rs->n] = v->create_only;
	rs->must_exist[rs->n] = v->must_exist;
	rs->n++;
	return 0;
}

static void test_codec_invalid(void)
{
	/* Each is well-formed enough to reach the store's own rules. */
	static const uint8_t dup_name[] = { 0x0a, 0x08, 0x0a, 0x06, 0x0a, 0x01, 'a', 0x0a, 0x01, 'b' };
	static const uint8_t two_bodies[] = { 0x0a, 0x08, 0x0a, 0x03, 0x0a, 0x01, 'a', 0x12, 0x01, 0x00 };
	static const uint8_t nul_name[] = { 0x0a, 0x07, 0x0a, 0x05, 0x0a, 0x03, 'a', 0, 'b' };
	static const uint8_t empty_name[] = { 0x0a, 0x04, 0x0a, 0x02, 0x10, 0x01 };
	static const uint8_t no_body[] = { 0x0a, 0x02, 0x78, 0x01 };
	static const uint8_t no_records[] = { 0x10, 0x05 };
	static const uint8_t op_wire2[] = { 0x0a, 0x07, 0x0a, 0x05, 0x0a, 0x01, 'a', 0x12, 0x00 };
	static const uint8_t group[] = { 0x0a, 0x09, 0x0a, 0x07, 0x0a, 0x01, 'a', 0xab, 0x01, 0xac,
					 0x01 };
	static const uint8_t long_varint[] = { 0x10, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
					       0x80, 0x80, 0x80, 0x80, 0x01 };
	static const uint8_t short_len[] = { 0x0a, 0x09, 0x0a, 0x01 };
	static const uint8_t tag_zero[] = { 0x00, 0x01 };
	static const uint8_t short_hash[] = { 0x1a, 0x06, 0x08, 0x01, 0x1a, 0x02, 0x00, 0x00 };
	static const struct {
		const uint8_t *p;
		size_t n;
	} bad[] = {
		{ dup_name, sizeof(dup_name) },       { two_bodies, sizeof(two_bodies) },
		{ nul_name, sizeof(nul_name) },       { empty_name, sizeof(empty_name) },
		{ no_body, sizeof(no_body) },         { no_records, sizeof(no_records) },
		{ op_wire2, sizeof(op_wire2) },       { group, sizeof(group) },
		{ long_varint, sizeof(long_varint) }, { short_len, sizeof(short_len) },
		{ tag_zero, sizeof(tag_zero) },       { short_hash, sizeof(short_hash) },
	};
	struct store_scan_result res;
	struct store_txn_meta meta;
	uint8_t buf[128];
	size_t i;

	CU_ASSERT_EQUAL(store_txn_parse(NULL, 0, &meta, NULL, NULL), CAPF_EBADMSG);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = one_entry_file(buf, bad[i].p, bad[i].n);

		CU_ASSERT_EQUAL(store_txn_parse(bad[i].p, bad[i].n, &meta, NULL, NULL),
				CAPF_EBADMSG);
		/* An entry of the segment that is not a valid txn: the scan
		 * treats it like a bad CRC (here a torn tail). */
		CU_ASSERT_EQUAL(store_log_scan(buf, len, NULL, NULL, &res), 0);
		CU_ASSERT_EQUAL(res.torn, 1);
		CU_ASSERT_EQUAL(res.bad_off, STORE_HEADER_LEN);
	}
}

static void test_codec_valid(void)
{
	Capf__Device d;
	Capf__Certificate c;
	Capf__StoreRecord rd, rc;
	Capf__StoreRecord *recs[2] = { &rd, &rc };
	Capf__StoreTxn txn = CAPF__STORE_TXN__INIT, *back = NULL;
	Capf__AuditAnchor an = CAPF__AUDIT_ANCHOR__INIT;
	struct store_txn_meta meta;
	struct rec_seen rs;
	uint8_t hash[32], *p = NULL, v[10];
	size_t n;

	CU_ASSERT_EQUAL(store_pb_varint_put(v, 0), 1);
	CU_ASSERT_EQUAL(store_pb_varint_put(v, 300), 2);
	CU_ASSERT(v[0] == 0xac && v[1] == 0x02);
	CU_ASSERT_EQUAL(store_pb_varint_put(v, UINT64_MAX), 10);

	full_device(&d, "SEP001122334455");
	device_record(&rd, &d);
	rd.must_exist = 1;
	full_cert(&c, cert_serial, sizeof(cert_serial));
	cert_record(&rc, &c);
	rc.create_only = 1;
	memset(hash, 0x5c, sizeof(hash));
	an.seq = 42;
	an.offset = 1000;
	an.hash.data = hash;
	an.hash.len = sizeof(hash);
	txn.n_records = 2;
	txn.records = recs;
	txn.time = 1700000000;
	txn.audit = &an;
	n = capf__store_txn__get_packed_size(&txn);
	p = malloc(n);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	capf__store_txn__pack(&txn, p);

	memset(&rs, 0, sizeof(rs));
	CU_ASSERT_EQUAL(store_txn_parse(p, n, &meta, see_rec, &rs), 0);
	CU_ASSERT_EQUAL(meta.n_records, 2);
	CU_ASSERT_EQUAL(meta.time, 1700000000);
	CU_ASSERT_EQUAL(meta.anchor.seq, 42);
	CU_ASSERT_EQUAL(meta.anchor.offset, 1000);
	CU_ASSERT_EQUAL(memcmp(meta.anchor.hash, hash, 32), 0);
	CU_ASSERT_EQUAL(rs.n, 2);
	CU_ASSERT_EQUAL(rs.kinds[0], STORE_REC_DEVICE);
	CU_ASSERT_EQUAL(rs.key_lens[0], 15);
	CU_ASSERT_EQUAL(memcmp(rs.keys[0], "SEP001122334455", 15), 0);
	CU_ASSERT_EQUAL(rs.must_exist[0], 1);
	CU_ASSERT_EQUAL(rs.create_only[0], 0);
	CU_ASSERT_EQUAL(rs.kinds[1], STORE_REC_CERT);
	CU_ASSERT_EQUAL(rs.key_lens[1], sizeof(cert_serial));
	CU_ASSERT_EQUAL(memcmp(rs.keys[1], cert_serial, sizeof(cert_serial)), 0);
	CU_ASSERT_EQUAL(rs.create_only[1], 1);

	/* The same payload through protobuf-c: the same records. */
	back = capf__store_txn__unpack(NULL, n, p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(back);
	CU_ASSERT_EQUAL(back->n_records, 2);
	CU_ASSERT_STRING_EQUAL(back->records[0]->device->name, "SEP001122334455");
	capf__store_txn__free_unpacked(back, NULL);

	/* A txn with only an anchor is valid; the callback's error stops. */
	txn.n_records = 0;
	n = capf__store_txn__get_packed_size(&txn);
	capf__store_txn__pack(&txn, p);
	CU_ASSERT_EQUAL(store_txn_parse(p, n, &meta, NULL, NULL), 0);
	CU_ASSERT_EQUAL(meta.n_records, 0);
	CU_ASSERT_EQUAL(meta.anchor.seq, 42);
	txn.n_records = 2;
	txn.audit = NULL;
	n = capf__store_txn__get_packed_size(&txn);
	capf__store_txn__pack(&txn, p);
	memset(&rs, 0, sizeof(rs));
	rs.n = 4;
	CU_ASSERT_EQUAL(store_txn_parse(p, n, &meta, see_rec, &rs), CAPF_ERANGE);
	free(p);
}

static void test_header(void)
{
	uint8_t h[STORE_HEADER_LEN];
	const char *reason = NULL;
	uint64_t seq = 0;
	uint32_t version = 0;

	struct store_header hd;

	(void)seq;
	(void)version;
	store_header_encode(h, STORE_FILE_SNAPSHOT, 7, 0x01020304u);
	CU_ASSERT_EQUAL(memcmp(h, "CAPFSNAP\0\0\0\3\0\0\0\0\0\0\0\0\0\0\0\7\1\2\3\4", 28),
			0);
	CU_ASSERT_EQUAL(store_header_read(h, 31, STORE_FILE_SNAPSHOT, &hd, &reason),
			CAPF_ECORRUPT);
	CU_ASSERT_EQUAL(store_header_read(h, 32, STORE_FILE_SEGMENT, &hd, &reason),
			CAPF_ECORRUPT);
	CU_ASSERT_EQUAL(store_header_read(h, 32, STORE_FILE_SNAPSHOT, &hd, &reason), 0);
	CU_ASSERT_EQUAL(hd.seq, 7);
	CU_ASSERT_EQUAL(hd.version, 3);
	CU_ASSERT_EQUAL(hd.salt, 0x01020304u);
	CU_ASSERT_EQUAL(hd.len, STORE_HEADER_LEN);
	/* Every file of format 3 has a number, the audit files too. */
	store_header_encode(h, STORE_FILE_AUDIT, 1, 9);
	CU_ASSERT_EQUAL(memcmp(h, "CAPFAUDT", 8), 0);
	CU_ASSERT_EQUAL(store_header_read(h, 32, STORE_FILE_AUDIT, &hd, &reason), 0);
	store_header_encode(h, STORE_FILE_SEGMENT, 0, 9);
	CU_ASSERT_EQUAL(store_header_read(h, 32, STORE_FILE_SEGMENT, &hd, &reason),
			CAPF_ECORRUPT);
	/* Format 2 headers are still read (to convert them). */
	memcpy(h, "CAPFSTOR\0\0\0\2\0\0\0\0\0\0\0\0\0\0\0\5", 24);
	CU_ASSERT_EQUAL(store_header_read(h, 24, STORE_FILE_SEGMENT, &hd, &reason), 0);
	CU_ASSERT_EQUAL(hd.version, 2);
	CU_ASSERT_EQUAL(hd.len, STORE_V2_HEADER_LEN);
	CU_ASSERT_EQUAL(hd.seq, 5);
}

/* ---- helpers for the state directory ------------------------------------------ */

static int path_exists(const struct tmp *t, const char *name)
{
	char p[200];
	struct stat sb;

	snprintf(p, sizeof(p), "%s/%s", t->dir, name);
	return stat(p, &sb) == 0;
}

static int count_prefix(const struct tmp *t, const char *prefix)
{
	struct store_dir_list l;
	int n;

	if (store_dir_list(t->dir, &l) < 0)
		return -1;
	n = strcmp(prefix, "log.") == 0 ? (int)l.n_segs : (int)l.n_snaps;
	store_dir_list_free(&l);
	return n;
}

/* Offsets of the entries of a file: header, then length-prefixed entries. */
struct offsets {
	long *offs;
	int n, max;
};

static int offsets_item(const struct store_walk_item *it, void *arg)
{
	struct offsets *o = arg;

	if (it->good && o->n < o->max)
		o->offs[o->n++] = (long)it->off;
	return 0;
}

/* The offsets of the good entries of a file. */
static int entry_offsets(const char *path, long *offs, int max)
{
	struct store_scan_result res;
	struct store_file_map m;
	struct offsets o = { offs, 0, max };
	enum store_file_kind kind = STORE_FILE_SEGMENT;

	if (store_map_file(path, &m) < 0)
		return -1;
	if (m.len >= 8 && memcmp(m.data, STORE_AUDIT_MAGIC, 8) == 0)
		kind = STORE_FILE_AUDIT;
	else if (m.len >= 8 && memcmp(m.data, STORE_SNAP_MAGIC, 8) == 0)
		kind = STORE_FILE_SNAPSHOT;
	(void)store_file_walk(m.data, m.len, kind, NULL, NULL, offsets_item, &o, &res);
	store_unmap_file(&m);
	return o.n;
}

static int put_devices(struct store *st, const char *prefix, int from, int n)
{
	int i, ret = 0;

	for (i = from; i < from + n && ret == 0; i++) {
		char name[40];

		snprintf(name, sizeof(name), "%s%06d", prefix, i);
		ret = put_device(st, name, 0, 0, CAPF__OP_STATUS__STATUS_PENDING);
	}
	return ret;
}

/*
 * A txn larger than one entry: written as several entries of one group
 * commit, all durable or none. With entries of at most 4 KiB, 300
 * devices take several; a crash that leaves any part of that group on
 * disk but not its commit marker brings back none of them.
 */
#define BIG_TXN 300
static void test_txn_several_entries(void)
{
	struct store_options opt = { .txn_entry_max = 4096 };
	struct store *st = NULL;
	Capf__Device *devs = calloc(BIG_TXN, sizeof(*devs));
	Capf__StoreRecord *rs = calloc(BIG_TXN, sizeof(*rs));
	Capf__StoreRecord **recs = calloc(BIG_TXN, sizeof(*recs));
	char (*names)[32] = calloc(BIG_TXN, sizeof(*names));
	struct store_stats stats;
	long before, after, offs[64];
	int n_before, n_after, i;
	struct tmp t;

	CU_ASSERT_FATAL(devs && rs && recs && names);
	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(two_devices(&t) > 0, 1);
	before = file_size(t.log);
	n_before = entry_offsets(t.log, offs, 64);
	for (i = 0; i < BIG_TXN; i++) {
		snprintf(names[i], sizeof(names[i]), "SEP-BIG-%04d", i);
		full_device(&devs[i], names[i]);
		device_record(&rs[i], &devs[i]);
		rs[i].create_only = 1;
		recs[i] = &rs[i];
	}
	CU_ASSERT_EQUAL_FATAL(store_open_opts(&st, t.dir, &opt), 0);
	CU_ASSERT_EQUAL(store_submit_wait(st, recs, BIG_TXN), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.devices, BIG_TXN + 2);
	store_close(st);
	after = file_size(t.log);
	n_after = entry_offsets(t.log, offs, 64);
	/* Several entries, each below the limit. */
	CU_ASSERT(n_after - n_before >= 4);
	for (i = n_before + 1; i < n_after; i++)
		CU_ASSERT(offs[i] - offs[i - 1] <= 4096 + 64);

	/* All of them after a restart, with the default entry size too. */
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.devices, BIG_TXN + 2);
	CU_ASSERT(has_device(st, "SEP-BIG-0000"));
	CU_ASSERT(has_device(st, "SEP-BIG-0299"));
	store_close(st);

	/* Cut inside the group: after its first entries, before its marker. */
	CU_ASSERT_EQUAL_FATAL(truncate(t.log, (off_t)offs[n_after - 1]), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.devices, 2);
	CU_ASSERT_EQUAL(file_size(t.log), before);
	CU_ASSERT_FALSE(has_device(st, "SEP-BIG-0000"));
	CU_ASSERT(has_device(st, "SEP-ONE"));
	store_close(st);
	(void)after;
	tmp_cleanup(&t);
	free(devs);
	free(rs);
	free(recs);
	free(names);
}

/* ---- compaction --------------------------------------------------------------- */

static void test_compact_invalid(void)
{
	struct store *st = NULL;
	struct store_stats stats;
	struct tmp t;

	CU_ASSERT_EQUAL(store_compact(NULL), CAPF_EINVAL);
	CU_ASSERT_EQUAL(store_flush(NULL), CAPF_EINVAL);
	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	/* An empty store compacts to an empty snapshot. */
	CU_ASSERT_EQUAL(store_compact(st), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.snapshot_seq, 2);
	CU_ASSERT_EQUAL(stats.segment_seq, 2);
	CU_ASSERT_EQUAL(stats.compactions, 1);
	CU_ASSERT(path_exists(&t, "snapshot.0000000002"));
	CU_ASSERT_FALSE(path_exists(&t, "log.0000000001"));
	store_close(st);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.devices, 0);
	CU_ASSERT_EQUAL(stats.snapshot_seq, 2);
	store_close(st);
	tmp_cleanup(&t);
}

struct bg_writer {
	struct store *st;
	int n;
	int errors;
};

static void *bg_writer_main(void *arg)
{
	struct bg_writer *w = arg;

	if (put_devices(w->st, "SEP-BG-", 0, w->n) != 0)
		w->errors++;
	return NULL;
}

static void test_compact(void)
{
	struct store *st = NULL;
	struct store_stats stats;
	struct bg_writer w;
	pthread_t th;
	Capf__Certificate c;
	Capf__StoreRecord rc;
	Capf__StoreRecord *recs[1] = { &rc };
	int i, missing = 0, n = test_txns();
	struct tmp t;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT_EQUAL(put_devices(st, "SEP-A-", 0, n), 0);
	/* A replaced record: the snapshot keeps only the last version. */
	CU_ASSERT_EQUAL(put_device(st, "SEP-A-000000", 0, 0, CAPF__OP_STATUS__STATUS_SUCCESS), 0);
	full_cert(&c, cert_serial, sizeof(cert_serial));
	cert_record(&rc, &c);
	CU_ASSERT_EQUAL(store_submit_wait(st, recs, 1), 0);

	/* Writes go on while the snapshot is written. */
	w = (struct bg_writer){ st, n, 0 };
	CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, bg_writer_main, &w), 0);
	CU_ASSERT_EQUAL(store_compact(st), 0);
	pthread_join(th, NULL);
	CU_ASSERT_EQUAL(w.errors, 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.snapshot_seq, 2);
	CU_ASSERT_EQUAL(stats.devices, (uint64_t)2 * n);
	CU_ASSERT_EQUAL(count_prefix(&t, "snapshot."), 1);
	CU_ASSERT_EQUAL(count_prefix(&t, "log."), 1);
	CU_ASSERT(path_exists(&t, "log.0000000002"));

	/* A second one replaces the first. */
	CU_ASSERT_EQUAL(put_device(st, "SEP-AFTER", 0, 0, 0), 0);
	CU_ASSERT_EQUAL(store_compact(st), 0);
	CU_ASSERT(path_exists(&t, "snapshot.0000000003"));
	CU_ASSERT_FALSE(path_exists(&t, "snapshot.0000000002"));
	CU_ASSERT_FALSE(path_exists(&t, "log.0000000002"));
	CU_ASSERT_EQUAL(put_device(st, "SEP-LAST", 0, 0, 0), 0);
	store_close(st);

	/* Open = newest snapshot + the segments after it. */
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.devices, (uint64_t)2 * n + 2);
	CU_ASSERT_EQUAL(stats.certificates, 1);
	for (i = 0; i < n; i++) {
		char a[40], b[40];

		snprintf(a, sizeof(a), "SEP-A-%06d", i);
		snprintf(b, sizeof(b), "SEP-BG-%06d", i);
		missing += !has_device(st, a) + !has_device(st, b);
	}
	CU_ASSERT_EQUAL(missing, 0);
	CU_ASSERT(has_device(st, "SEP-LAST"));
	check_device_status(st, "SEP-A-000000", CAPF__OP_STATUS__STATUS_SUCCESS);
	store_close(st);
	tmp_cleanup(&t);
}

static void test_compact_auto(void)
{
	struct store_options opt = { .compact_bytes = 4096 };
	struct store *st = NULL;
	struct store_stats stats;
	int i, n = 200;
	struct tmp t;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open_opts(&st, t.dir, &opt), 0);
	CU_ASSERT_EQUAL(put_devices(st, "SEP-AUTO-", 0, n), 0);
	/* Let the last compaction finish: a requested one waits its turn. */
	for (i = 0; i < 100 && store_compact(st) == CAPF_EBUSY; i++)
		usleep(20000);
	store_get_stats(st, &stats);
	CU_ASSERT(stats.compactions >= 2);
	CU_ASSERT_EQUAL(count_prefix(&t, "snapshot."), 1);
	CU_ASSERT_EQUAL(count_prefix(&t, "log."), 1);
	store_close(st);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.devices, (uint64_t)n);
	store_close(st);
	tmp_cleanup(&t);
}

/* What a crash at each step of a compaction leaves must open. */
static void test_compact_crash(void)
{
	struct store *st = NULL;
	struct store_stats stats;
	char path[200];
	int fd;
	struct tmp t;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT_EQUAL(put_devices(st, "SEP-C-", 0, 20), 0);
	CU_ASSERT_EQUAL(store_compact(st), 0);
	CU_ASSERT_EQUAL(put_devices(st, "SEP-D-", 0, 5), 0);
	store_close(st);

	/* A half-written snapshot of a crash during compaction. */
	snprintf(path, sizeof(path), "%s/snapshot.0000000003.tmp", t.dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	CU_ASSERT(fd >= 0 && write(fd, "CAPFSNAP", 8) == 8);
	close(fd);
	/* A segment the snapshot replaces, not yet removed. */
	snprintf(path, sizeof(path), "%s/log.0000000001", t.dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	CU_ASSERT(fd >= 0 && write(fd, "CAPFSTOR", 8) == 8);
	close(fd);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.devices, 25);
	CU_ASSERT_FALSE(path_exists(&t, "snapshot.0000000003.tmp"));
	CU_ASSERT_FALSE(path_exists(&t, "log.0000000001"));
	store_close(st);

	/* A damaged snapshot is refused, naming it; a missing segment too. */
	snprintf(path, sizeof(path), "%s/snapshot.0000000002", t.dir);
	CU_ASSERT_EQUAL(file_xor_byte(path, STORE_HEADER_LEN + 40), 0);
	CU_ASSERT_EQUAL(store_open(&st, t.dir), CAPF_ECORRUPT);
	CU_ASSERT_PTR_NOT_NULL(strstr(store_last_error(), "snapshot.0000000002"));
	CU_ASSERT_EQUAL(file_xor_byte(path, STORE_HEADER_LEN + 40), 0);
	snprintf(path, sizeof(path), "%s/log.0000000002", t.dir);
	CU_ASSERT_EQUAL(rename(path, "/tmp/capf-test-store-moved-segment"), 0);
	CU_ASSERT_EQUAL(store_open(&st, t.dir), CAPF_ECORRUPT);
	CU_ASSERT_PTR_NOT_NULL(strstr(store_last_error(), "log.0000000002 is missing"));
	CU_ASSERT_EQUAL(rename("/tmp/capf-test-store-moved-segment", path), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	store_close(st);
	tmp_cleanup(&t);
}

/* ---- audit log ---------------------------------------------------------------- */

struct events {
	pthread_mutex_t lock;
	int n[3];
	char last[3][600];
};

static void on_event(enum store_severity sev, const char *msg, void *arg)
{
	struct events *ev = arg;

	pthread_mutex_lock(&ev->lock);
	ev->n[sev]++;
	snprintf(ev->last[sev], sizeof(ev->last[sev]), "%s", msg);
	pthread_mutex_unlock(&ev->lock);
}

static int audit(struct store *st, Capf__AuditKind kind, const char *device, int code)
{
	struct store_audit_event ev = { .kind = kind, .device = device, .peer = "127.0.0.1:1",
					.code = code, .detail = "test" };

	return store_audit(st, &ev);
}

/* Writes 5 audit entries (one with an issuance txn) and closes. */
static int make_audit(struct tmp *t, char *audit_path, size_t len)
{
	struct store *st = NULL;
	struct store_audit_event ev = { .kind = CAPF__AUDIT_KIND__AUDIT_ISSUE,
					.device = "SEP001122334455", .peer = "127.0.0.1:2",
					.serial = cert_serial, .serial_len = sizeof(cert_serial) };
	Capf__Certificate c;
	Capf__StoreRecord rc;
	Capf__StoreRecord *recs[1] = { &rc };
	struct counter cnt = COUNTER_INIT;
	int ret;

	snprintf(audit_path, len, "%s/audit.0000000001.log", t->dir);
	ret = store_open(&st, t->dir);
	if (ret < 0)
		return ret;
	full_cert(&c, cert_serial, sizeof(cert_serial));
	cert_record(&rc, &c);
	/* An unauthenticated failure is aggregated: flushed, it comes first. */
	if (audit(st, CAPF__AUDIT_KIND__AUDIT_AUTH_FAIL, "SEPX", CAPF_EUNTRUSTED) < 0 ||
	    store_flush(st) != 0 ||
	    audit(st, CAPF__AUDIT_KIND__AUDIT_AUTH_OK, "SEP001122334455", 0) < 0 ||
	    store_submit_audit(st, recs, 1, &ev, counter_cb, &cnt) < 0 ||
	    audit(st, CAPF__AUDIT_KIND__AUDIT_ACK, "SEP001122334455", 0) < 0 ||
	    audit(st, CAPF__AUDIT_KIND__AUDIT_ADMIN, "SEP2", 0) < 0)
		ret = -1;
	counter_wait(&cnt, 1);
	if (cnt.failed || store_flush(st) != 0)
		ret = -1;
	store_close(st);
	return ret;
}

struct collected {
	int n;
	uint64_t seqs[16];
	int kinds[16];
	char devices[16][32];
	unsigned damage, notes;
	char texts[8][300];
	char details[4][300];
};

static int collect_entry(const Capf__AuditEntry *e, uint64_t off, void *arg)
{
	struct collected *c = arg;

	(void)off;
	if (c->n < 16) {
		c->seqs[c->n] = e->seq;
		c->kinds[c->n] = e->kind;
		snprintf(c->devices[c->n], sizeof(c->devices[0]), "%s", e->device);
	}
	if (c->n < 4)
		snprintf(c->details[c->n], sizeof(c->details[0]), "%s", e->detail);
	c->n++;
	return 0;
}

static void collect_finding(const struct store_finding *f, void *arg)
{
	struct collected *c = arg;
	int i = (int)(c->damage + c->notes);

	if (i < 8)
		snprintf(c->texts[i], sizeof(c->texts[0]), "%s @%llu: %s", f->file,
			 (unsigned long long)f->offset, f->text);
	if (f->damage)
		c->damage++;
	else
		c->notes++;
}

static int any_text(const struct collected *c, const char *needle)
{
	int i;

	for (i = 0; i < 8; i++)
		if (strstr(c->texts[i], needle))
			return 1;
	return 0;
}

/* An event queued quietly waits for the writer's next wake-up: a
 * submission, store_wake(), store_flush(); then it is written in order. */
static void test_audit_quiet(void)
{
	struct store_audit_event ev = { .kind = CAPF__AUDIT_KIND__AUDIT_AUTH_OK,
					.device = "SEPQUIET0001", .peer = "127.0.0.1:1",
					.detail = "mic" };
	struct store_stats s0, s1;
	struct store *st = NULL;
	struct tmp t;
	int i;

	CU_ASSERT_EQUAL(store_audit_quiet(NULL, &ev), CAPF_EINVAL);
	store_wake(NULL);
	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	store_get_stats(st, &s0);
	CU_ASSERT_EQUAL(store_audit_quiet(st, &ev), 0);
	usleep(200000);
	store_get_stats(st, &s1);
	CU_ASSERT_EQUAL(s1.audit_seq, s0.audit_seq); /* nobody woke the writer */
	store_wake(st);
	for (i = 0; i < 200; i++) {
		store_get_stats(st, &s1);
		if (s1.audit_seq == s0.audit_seq + 1)
			break;
		usleep(10000);
	}
	CU_ASSERT_EQUAL(s1.audit_seq, s0.audit_seq + 1);
	/* With a submission: both in the same group, the quiet one first. */
	CU_ASSERT_EQUAL(store_audit_quiet(st, &ev), 0);
	CU_ASSERT_EQUAL(put_device(st, "SEPQUIET0002", 0, 0, 0), 0);
	store_get_stats(st, &s0);
	CU_ASSERT_EQUAL(s0.audit_seq, s1.audit_seq + 1);
	store_close(st);
	tmp_cleanup(&t);
}

static void test_audit_invalid(void)
{
	struct store_audit_event ev = { 0 };
	struct store *st = NULL;
	struct collected c;
	struct tmp t;

	CU_ASSERT_EQUAL(store_audit(NULL, &ev), CAPF_EINVAL);
	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT_EQUAL(store_audit(st, NULL), CAPF_EINVAL);
	CU_ASSERT_EQUAL(store_audit(st, &ev), CAPF_EINVAL); /* no kind */
	store_close(st);
	CU_ASSERT_EQUAL(store_audit_verify(NULL, NULL, 0, NULL, NULL, NULL), CAPF_EINVAL);
	CU_ASSERT_EQUAL(store_audit_read("/nonexistent/audit.log", NULL, NULL), CAPF_ENOENT);
	CU_ASSERT_STRING_EQUAL(store_audit_kind_name(3), "issue");
	CU_ASSERT_STRING_EQUAL(store_audit_kind_name(99), "unknown");
	CU_ASSERT_EQUAL(store_audit_kind_from_name("auth-fail"), 2);
	CU_ASSERT_EQUAL(store_audit_kind_from_name("nope"), -1);
	/* A fresh log verifies, empty. */
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(store_audit_verify(t.dir, NULL, 0, collect_finding, &c, NULL), 0);
	CU_ASSERT_EQUAL(c.damage, 0);
	tmp_cleanup(&t);
}

static void test_audit_chain(void)
{
	struct store *st = NULL;
	struct store_audit_summary sum;
	struct store_stats stats;
	struct collected c;
	char path[200];
	struct tmp t;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(make_audit(&t, path, sizeof(path)), 0);
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(store_audit_read(path, collect_entry, &c), 0);
	CU_ASSERT_EQUAL(c.n, 5);
	CU_ASSERT_EQUAL(c.seqs[0], 1);
	CU_ASSERT_EQUAL(c.seqs[4], 5);
	CU_ASSERT_EQUAL(c.kinds[0], CAPF__AUDIT_KIND__AUDIT_AUTH_FAIL);
	CU_ASSERT_EQUAL(c.kinds[2], CAPF__AUDIT_KIND__AUDIT_ISSUE);
	CU_ASSERT_STRING_EQUAL(c.devices[2], "SEP001122334455");

	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(store_audit_verify(t.dir, NULL, 0, collect_finding, &c, &sum), 0);
	CU_ASSERT_EQUAL(c.damage, 0);
	CU_ASSERT_EQUAL(sum.entries, 5);
	CU_ASSERT_EQUAL(sum.anchor_seq, 5);

	/* The chain goes on across a restart. */
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.audit_seq, 5);
	CU_ASSERT_EQUAL(audit(st, CAPF__AUDIT_KIND__AUDIT_REVOKE, "SEP001122334455", 0), 0);
	CU_ASSERT_EQUAL(store_flush(st), 0);
	/* Verifying works beside the running store. */
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(store_audit_verify(t.dir, NULL, 0, collect_finding, &c, &sum), 0);
	CU_ASSERT_EQUAL(sum.last_seq, 6);
	CU_ASSERT_EQUAL(sum.anchor_seq, 6);
	store_close(st);
	tmp_cleanup(&t);
}

/* Copies src to dst whole. */
static int copy_file(const char *src, const char *dst)
{
	char buf[65536];
	int in = open(src, O_RDONLY), out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ssize_t n;
	int ret = 0;

	if (in < 0 || out < 0)
		ret = -1;
	while (ret == 0 && (n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			ret = -1;
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return ret;
}

struct payloads {
	uint8_t *p[16];
	size_t len[16];
	int n;
};

static int payloads_item(const struct store_walk_item *it, void *arg)
{
	struct payloads *ps = arg;

	if (it->good && ps->n < 16 && (ps->p[ps->n] = malloc(it->len))) {
		memcpy(ps->p[ps->n], it->payload, it->len);
		ps->len[ps->n++] = it->len;
	}
	return 0;
}

/*
 * Rewrites the audit file path as someone who can write it would: from
 * the entries of orig picked by idx (n of them, in that order), framed
 * anew (valid framing, one group); entry edit (-1: none) gets a byte of
 * its payload flipped. What is left to catch the change is the chain.
 */
static int reframe_file(const char *orig, const char *path, const int *idx, int n, int edit)
{
	struct store_scan_result res;
	struct store_file_map m;
	struct payloads ps = { 0 };
	struct store_framer f = { 0 };
	struct store_buf out = { 0 };
	int i, fd, ret = -1;

	if (store_map_file(orig, &m) < 0)
		return -1;
	(void)store_file_walk(m.data, m.len, STORE_FILE_AUDIT, NULL, NULL, payloads_item, &ps,
			      &res);
	f.salt = res.salt;
	f.pos = STORE_HEADER_LEN;
	f.group = 1;
	if (store_buf_reserve(&out, STORE_HEADER_LEN) < 0)
		goto out;
	memcpy(out.data, m.data, STORE_HEADER_LEN);
	out.len = STORE_HEADER_LEN;
	for (i = 0; i < n; i++) {
		if (idx[i] >= ps.n)
			goto out;
		if (idx[i] == edit)
			ps.p[idx[i]][3] ^= 1;
		if (store_frame_entry(&f, ps.p[idx[i]], ps.len[idx[i]], i + 1 == n, &out, NULL) < 0)
			goto out;
		if (idx[i] == edit)
			ps.p[idx[i]][3] ^= 1;
	}
	fd = open(path, O_WRONLY | O_TRUNC);
	if (fd >= 0) {
		ret = write(fd, out.data, out.len) == (ssize_t)out.len ? 0 : -1;
		close(fd);
	}
out:
	for (i = 0; i < ps.n; i++)
		free(ps.p[i]);
	store_unmap_file(&m);
	store_buf_free(&out);
	return ret;
}

/* The offset of the k-th good entry of path. */
static long nth_entry(const char *path, int k)
{
	long offs[16];

	return entry_offsets(path, offs, 16) > k ? offs[k] : -2;
}

/* Verifies, expecting damage whose text holds needle at offset off. */
static void expect_tamper(const struct tmp *t, const char *needle, long off)
{
	struct collected c;
	char want[32];

	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(store_audit_verify(t->dir, NULL, 0, collect_finding, &c, NULL),
			CAPF_ECORRUPT);
	CU_ASSERT(c.damage >= 1);
	if (!any_text(&c, needle))
		printf("\n    expected \"%s\" in: %s | %s ", needle, c.texts[0], c.texts[1]);
	CU_ASSERT(any_text(&c, needle));
	if (off >= 0) {
		snprintf(want, sizeof(want), "@%ld:", off);
		CU_ASSERT(any_text(&c, want));
	}
}

static void test_audit_tamper(void)
{
	struct collected c;
	struct store *st = NULL;
	char path[200], orig[220];
	long offs[8], size;
	uint8_t b = 0;
	int n;
	struct tmp t;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(make_audit(&t, path, sizeof(path)), 0);
	snprintf(orig, sizeof(orig), "%s.orig", path);
	CU_ASSERT_EQUAL_FATAL(copy_file(path, orig), 0);
	n = entry_offsets(path, offs, 8);
	CU_ASSERT_EQUAL_FATAL(n, 5);
	size = file_size(path);
	offs[5] = size;

	/* Edited, the CRC left as it was: damage at that entry. */
	CU_ASSERT_EQUAL(file_xor_byte(path, offs[2] + STORE_FRAG_HEADER_LEN + 3), 0);
	expect_tamper(&t, "damaged", offs[2]);
	CU_ASSERT_EQUAL(copy_file(orig, path), 0);

	/* Moved bytes do not frame anywhere but at their own place. */
	{
		long rr[4] = { 0, offs[2], offs[3], size };
		int in = open(orig, O_RDONLY), out = open(path, O_WRONLY | O_TRUNC);
		uint8_t buf[4096];

		CU_ASSERT_FATAL(in >= 0 && out >= 0);
		for (int i = 0; i < 2; i++) {
			long len = rr[2 * i + 1] - rr[2 * i];

			CU_ASSERT(pread(in, buf, (size_t)len, rr[2 * i]) == len);
			CU_ASSERT(write(out, buf, (size_t)len) == len);
		}
		close(in);
		close(out);
		expect_tamper(&t, "damaged", offs[2]);
		CU_ASSERT_EQUAL(copy_file(orig, path), 0);
	}

	/* Edited and framed again: the hash shows it. */
	{
		static const int all[] = { 0, 1, 2, 3, 4 };

		CU_ASSERT_EQUAL(reframe_file(orig, path, all, 5, 2), 0);
		expect_tamper(&t, "was edited", nth_entry(path, 2));
	}

	/* Removed from the middle. */
	{
		static const int idx[] = { 0, 1, 3, 4 };

		CU_ASSERT_EQUAL(reframe_file(orig, path, idx, 4, -1), 0);
		expect_tamper(&t, "removed", nth_entry(path, 2));
	}

	/* Reordered: entries 2 and 3 swapped. */
	{
		static const int idx[] = { 0, 2, 1, 3, 4 };

		CU_ASSERT_EQUAL(reframe_file(orig, path, idx, 5, -1), 0);
		expect_tamper(&t, "reordered", nth_entry(path, 2));
	}

	/* Removed from the end: only the store's anchor can tell. */
	{
		static const int idx[] = { 0, 1, 2, 3 };

		CU_ASSERT_EQUAL(reframe_file(orig, path, idx, 4, -1), 0);
		expect_tamper(&t, "removed from its end", -1);
		/* ... and capfd refuses to start on it. */
		CU_ASSERT_EQUAL(store_open(&st, t.dir), CAPF_ECORRUPT);
		CU_ASSERT_PTR_NOT_NULL(strstr(store_last_error(), "audit.0000000001.log"));
	}

	/* Removed from the start. */
	{
		static const int idx[] = { 1, 2, 3, 4 };

		CU_ASSERT_EQUAL(reframe_file(orig, path, idx, 4, -1), 0);
		expect_tamper(&t, "removed from its start", STORE_HEADER_LEN);
	}

	/* An entry inserted: a copy of entry 1 after entry 2. */
	{
		static const int idx[] = { 0, 1, 0, 2, 3, 4 };

		CU_ASSERT_EQUAL(reframe_file(orig, path, idx, 6, -1), 0);
		expect_tamper(&t, "entry seq 1 follows seq 2", nth_entry(path, 2));
	}

	/* Untouched again: intact, and one byte of the last entry flipped
	 * with its CRC (a torn tail while reading) is a note, not damage. */
	CU_ASSERT_EQUAL(copy_file(orig, path), 0);
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(store_audit_verify(t.dir, NULL, 0, collect_finding, &c, NULL), 0);
	CU_ASSERT_EQUAL(truncate(path, size - 3), 0);
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(store_audit_read(path, collect_entry, &c), 0);
	/* The group being written is not shown, the ones before it are. */
	CU_ASSERT(c.n < 5);
	(void)b;
	tmp_cleanup(&t);
}

static void test_audit_recovery(void)
{
	struct events ev = { PTHREAD_MUTEX_INITIALIZER, { 0 }, { "" } };
	struct store_options opt = { .event_cb = on_event, .event_arg = &ev };
	struct store_check_summary sum;
	struct store_stats stats;
	struct store *st = NULL;
	struct collected c;
	char path[200], bak[220];
	long size;
	struct tmp t;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(make_audit(&t, path, sizeof(path)), 0);
	size = file_size(path);

	/* A torn tail of the audit log is dropped at start, and said. */
	CU_ASSERT_EQUAL(file_append(path, "\0\0\0\x40garbage", 11), 0);
	CU_ASSERT_EQUAL_FATAL(store_open_opts(&st, t.dir, &opt), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.audit_torn_bytes_dropped, 11);
	CU_ASSERT_EQUAL(file_size(path), size);
	CU_ASSERT_PTR_NOT_NULL(strstr(ev.last[STORE_SEV_WARNING], "torn tail"));
	store_close(st);

	/* A missing audit log: a new one continues the chain and says so. */
	snprintf(bak, sizeof(bak), "%s.archived", path);
	CU_ASSERT_EQUAL(rename(path, bak), 0);
	snprintf(path, sizeof(path), "%s/audit.0000000002.log", t.dir);
	CU_ASSERT_EQUAL_FATAL(store_open_opts(&st, t.dir, &opt), 0);
	CU_ASSERT_EQUAL(store_flush(st), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.audit_seq, 6);
	store_close(st);
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(store_audit_verify(t.dir, NULL, 0, collect_finding, &c, NULL), 0);
	CU_ASSERT_EQUAL(c.notes, 1);
	CU_ASSERT(any_text(&c, "continues the chain after seq 5"));
	/* The two files verify as one chain. */
	{
		const char *files[2] = { bak, path };

		memset(&c, 0, sizeof(c));
		CU_ASSERT_EQUAL(store_audit_verify(t.dir, files, 2, collect_finding, &c, NULL), 0);
		CU_ASSERT_EQUAL(c.damage, 0);
	}

	/* Truncated inside after a clean stop (the segment records that the
	 * file was synced: its copies are not read): capfd refuses, store
	 * repair fixes it. */
	CU_ASSERT_EQUAL(truncate(path, STORE_HEADER_LEN + 10), 0);
	CU_ASSERT_EQUAL(store_open(&st, t.dir), CAPF_ECORRUPT);
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(store_check(t.dir, collect_finding, &c, &sum), CAPF_ECORRUPT);
	CU_ASSERT(sum.damaged >= 1);
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(store_repair(t.dir, collect_finding, &c, &sum), 0);
	CU_ASSERT_EQUAL(sum.repaired, 1);
	CU_ASSERT(any_text(&c, ".bak-"));
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(store_check(t.dir, collect_finding, &c, &sum), 0);
	CU_ASSERT_EQUAL(c.damage, 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT_EQUAL(audit(st, CAPF__AUDIT_KIND__AUDIT_AUTH_OK, "SEP3", 0), 0);
	CU_ASSERT_EQUAL(store_flush(st), 0);
	store_close(st);
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(store_audit_read(path, collect_entry, &c), 0);
	CU_ASSERT_EQUAL(c.n, 2); /* the repair entry, then the new one */
	CU_ASSERT_EQUAL(c.kinds[0], CAPF__AUDIT_KIND__AUDIT_STORE);
	tmp_cleanup(&t);
}

/* ---- offline check and repair ------------------------------------------------------ */

static void test_check_repair(void)
{
	struct store_check_summary sum;
	struct store *st = NULL;
	struct collected c;
	char want[200];
	long size;
	pid_t pid;
	int status = -1;
	struct tmp t;

	CU_ASSERT_EQUAL(store_check(NULL, NULL, NULL, NULL), CAPF_EINVAL);
	CU_ASSERT_EQUAL(store_check("/nonexistent/dir", NULL, NULL, NULL), CAPF_ENOENT);
	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	size = two_devices(&t);
	CU_ASSERT_FATAL(size > STORE_HEADER_LEN);

	/* Clean: no damage. */
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(store_check(t.dir, collect_finding, &c, &sum), 0);
	CU_ASSERT_EQUAL(sum.damaged, 0);
	CU_ASSERT_EQUAL(sum.records, 2);

	/* In use: refused, naming the directory. */
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	fflush(NULL);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		int rc = store_check(t.dir, NULL, NULL, NULL);

		_exit(rc == CAPF_ELOCKED && strstr(store_last_error(), t.dir) &&
				      strstr(store_last_error(), "stop capfd")
			      ? 0
			      : 1);
	}
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	store_close(st);

	/* A damaged first entry and a torn tail: both reported with file and
	 * offset; only the first is damage. */
	CU_ASSERT_EQUAL(file_xor_byte(t.log, STORE_HEADER_LEN + STORE_FRAG_HEADER_LEN + 3), 0);
	CU_ASSERT_EQUAL(file_append(t.log, "\0\0\0\x20torn", 8), 0);
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(store_check(t.dir, collect_finding, &c, &sum), CAPF_ECORRUPT);
	CU_ASSERT_EQUAL(sum.damaged, 1);
	snprintf(want, sizeof(want), "%s @32:", t.log);
	CU_ASSERT(any_text(&c, want));
	CU_ASSERT(any_text(&c, "torn tail"));

	/* Repair keeps the good entry after the damage, and a backup. */
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(store_repair(t.dir, collect_finding, &c, &sum), 0);
	CU_ASSERT_EQUAL(sum.repaired, 1);
	CU_ASSERT(sum.dropped_bytes > 8);
	CU_ASSERT(any_text(&c, "dropped"));
	CU_ASSERT(any_text(&c, ".bak-"));
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(store_check(t.dir, collect_finding, &c, &sum), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT_FALSE(has_device(st, "SEP-ONE"));
	CU_ASSERT(has_device(st, "SEP-TWO"));
	store_close(st);
	/* Nothing left to do. */
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(store_repair(t.dir, collect_finding, &c, &sum), 0);
	CU_ASSERT_EQUAL(sum.repaired, 0);
	CU_ASSERT(any_text(&c, "nothing to repair"));
	tmp_cleanup(&t);
}

/* A store of the first format (one records.log) is converted at open. */
static void test_legacy(void)
{
	struct store *st = NULL;
	size_t la = 0, lb = 0;
	uint8_t *a = make_v2_entry("SEP-OLD-A", &la), *b = make_v2_entry("SEP-OLD-B", &lb);
	char path[200];
	struct tmp t;

	CU_ASSERT_FATAL(a && b);
	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL(mkdir(t.dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/records.log", t.dir);
	CU_ASSERT_EQUAL(file_append(path, "", 0), -1);
	{
		int fd = open(path, O_WRONLY | O_CREAT, 0600);

		CU_ASSERT(fd >= 0);
		CU_ASSERT(write(fd, "CAPFSTOR\0\0\0\1\0\0\0\0", 16) == 16);
		close(fd);
	}
	CU_ASSERT_EQUAL(file_append(path, a, la), 0);
	CU_ASSERT_EQUAL(file_append(path, b, lb / 2), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT(has_device(st, "SEP-OLD-A"));
	CU_ASSERT_FALSE(has_device(st, "SEP-OLD-B"));
	store_close(st);
	CU_ASSERT(path_exists(&t, "records.log.v1"));
	CU_ASSERT_FALSE(path_exists(&t, "records.log"));
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT(has_device(st, "SEP-OLD-A"));
	store_close(st);
	free(a);
	free(b);
	tmp_cleanup(&t);
}

/* ---- faults ------------------------------------------------------------------------- */

static void test_fault_audit(void)
{
	struct events ev = { PTHREAD_MUTEX_INITIALIZER, { 0 }, { "" } };
	struct store_options opt = { .event_cb = on_event, .event_arg = &ev,
				     .fault_log_interval = 3600 };
	struct store_audit_event issue = { .kind = CAPF__AUDIT_KIND__AUDIT_ISSUE,
					   .device = "SEP-F", .serial = cert_serial,
					   .serial_len = sizeof(cert_serial) };
	struct store_stats stats;
	struct store *st = NULL;
	struct collected c;
	struct counter cnt = COUNTER_INIT;
	Capf__Certificate cert;
	Capf__StoreRecord rc;
	Capf__StoreRecord *recs[1] = { &rc };
	char path[200];
	long seg, aud;
	int i;
	struct tmp t;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open_opts(&st, t.dir, &opt), 0);
	snprintf(path, sizeof(path), "%s/audit.0000000001.log", t.dir);
	CU_ASSERT_EQUAL(audit(st, CAPF__AUDIT_KIND__AUDIT_AUTH_OK, "SEP-F", 0), 0);
	CU_ASSERT_EQUAL(store_flush(st), 0);
	seg = file_size(t.log);
	aud = file_size(path);

	store_set_fault(st, CAPF_ENOSPC);
	/* Failed writes: the first is reported at once, the rest counted. */
	for (i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(audit(st, CAPF__AUDIT_KIND__AUDIT_AUTH_FAIL, "SEP-F", CAPF_EIDENTITY),
				0);
	CU_ASSERT_EQUAL(store_flush(st), CAPF_ENOSPC);
	full_cert(&cert, cert_serial, sizeof(cert_serial));
	cert_record(&rc, &cert);
	CU_ASSERT_EQUAL(store_submit_audit(st, recs, 1, &issue, counter_cb, &cnt), 0);
	counter_wait(&cnt, 1);
	CU_ASSERT_EQUAL(cnt.last_error, CAPF_ENOSPC);
	CU_ASSERT_EQUAL(put_device(st, "SEP-F", 0, 0, 0), CAPF_ENOSPC);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.fault, CAPF_ENOSPC);
	CU_ASSERT(stats.write_failures >= 3);
	/* The three failures from one source wait as one entry. */
	CU_ASSERT_EQUAL(stats.audit_pending, 1);
	CU_ASSERT_EQUAL(ev.n[STORE_SEV_ERROR], 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(ev.last[STORE_SEV_ERROR], "No space left on device"));
	/* Nothing of the failed writes stayed in the files. */
	CU_ASSERT_EQUAL(file_size(t.log), seg);
	CU_ASSERT_EQUAL(file_size(path), aud);
	/* Reads work. */
	CU_ASSERT_EQUAL(store_cert_get(st, cert_serial, sizeof(cert_serial),
				       &(Capf__Certificate *){ NULL }),
			CAPF_ENOENT);

	/* Once writes work, the kept events are written first, in order;
	 * the failed issuance's event is not (it did not happen). */
	store_set_fault(st, 0);
	CU_ASSERT_EQUAL(audit(st, CAPF__AUDIT_KIND__AUDIT_AUTH_OK, "SEP-F", 0), 0);
	CU_ASSERT_EQUAL(store_flush(st), 0);
	CU_ASSERT_EQUAL(ev.n[STORE_SEV_WARNING], 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(ev.last[STORE_SEV_WARNING], "succeed again"));
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.audit_pending, 0);
	CU_ASSERT_EQUAL(stats.audit_seq, 3);
	store_close(st);
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(store_audit_read(path, collect_entry, &c), 0);
	CU_ASSERT_EQUAL(c.n, 3);
	CU_ASSERT_EQUAL(c.kinds[1], CAPF__AUDIT_KIND__AUDIT_AUTH_FAIL);
	CU_ASSERT_EQUAL(c.kinds[2], CAPF__AUDIT_KIND__AUDIT_AUTH_OK);
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(store_check(t.dir, collect_finding, &c, NULL), 0);
	tmp_cleanup(&t);
}

/* A compaction that cannot write leaves every file as it was. */
static void test_fault_compact(void)
{
	struct store *st = NULL;
	struct store_stats stats;
	struct tmp t;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT_EQUAL(put_devices(st, "SEP-CF-", 0, 10), 0);
	store_set_fault(st, CAPF_EIO);
	CU_ASSERT_EQUAL(store_compact(st), CAPF_EIO);
	store_set_fault(st, 0);
	CU_ASSERT_EQUAL(count_prefix(&t, "snapshot."), 0);
	CU_ASSERT_EQUAL(put_device(st, "SEP-CF-LAST", 0, 0, 0), 0);
	CU_ASSERT_EQUAL(store_compact(st), 0);
	store_close(st);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.devices, 11);
	store_close(st);
	tmp_cleanup(&t);
}

/* ---- revisions and compare-and-set ------------------------------------------ */

/* One record of device name at revision rev, written with a
 * compare-and-set on expect (check 0: unconditional). */
static int cas_device(struct store *st, const char *name, uint64_t rev, int check,
		      uint64_t expect, Capf__OpStatus status)
{
	Capf__Device d;
	Capf__StoreRecord r;
	Capf__StoreRecord *recs[1] = { &r };

	full_device(&d, name);
	d.revision = rev;
	d.status = status;
	device_record(&r, &d);
	r.check_revision = check;
	r.expect_revision = expect;
	return store_submit_wait(st, recs, 1);
}

/* The revision of device name in the store, or UINT64_MAX if absent. */
static uint64_t device_revision(struct store *st, const char *name)
{
	Capf__Device *d = NULL;
	uint64_t rev = UINT64_MAX;

	if (store_device_get(st, name, &d) == 0) {
		rev = d->revision;
		capf__device__free_unpacked(d, NULL);
	}
	return rev;
}

static uint64_t cert_revision(struct store *st, const uint8_t *serial, size_t len)
{
	Capf__Certificate *c = NULL;
	uint64_t rev = UINT64_MAX;

	if (store_cert_get(st, serial, len, &c) == 0) {
		rev = c->revision;
		capf__certificate__free_unpacked(c, NULL);
	}
	return rev;
}

/* A revision that does not match its precondition is refused at submit. */
static void test_cas_invalid(void)
{
	struct store *st = NULL;
	Capf__Device d;
	Capf__Certificate c;
	Capf__StoreRecord rd, rc;
	Capf__StoreRecord *recs[1] = { &rd };
	Capf__StoreRecord *crecs[1] = { &rc };
	Capf__Certificate **list = (Capf__Certificate **)&d;
	struct store_stats stats;
	size_t n = 7;
	struct tmp t;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	full_device(&d, "SEP-CAS");
	device_record(&rd, &d);

	/* check_revision: the body must carry expect_revision + 1. */
	rd.check_revision = 1;
	rd.expect_revision = 1;
	d.revision = 1;
	CU_ASSERT_EQUAL(store_submit_wait(st, recs, 1), CAPF_EINVAL);
	d.revision = 3;
	CU_ASSERT_EQUAL(store_submit_wait(st, recs, 1), CAPF_EINVAL);
	d.revision = 0;
	CU_ASSERT_EQUAL(store_submit(st, recs, 1, NULL, NULL), CAPF_EINVAL);
	rd.expect_revision = UINT64_MAX;
	CU_ASSERT_EQUAL(store_submit_wait(st, recs, 1), CAPF_EINVAL);
	/* ...and cannot be a creation too. */
	rd.expect_revision = 0;
	d.revision = 1;
	rd.create_only = 1;
	CU_ASSERT_EQUAL(store_submit_wait(st, recs, 1), CAPF_EINVAL);
	/* create_only: a device starts at revision 1. */
	rd.check_revision = 0;
	d.revision = 0;
	CU_ASSERT_EQUAL(store_submit_wait(st, recs, 1), CAPF_EINVAL);
	d.revision = 2;
	CU_ASSERT_EQUAL(store_submit_wait(st, recs, 1), CAPF_EINVAL);
	full_cert(&c, cert_serial, sizeof(cert_serial));
	cert_record(&rc, &c);
	rc.create_only = 1;
	c.revision = 2;
	CU_ASSERT_EQUAL(store_submit_wait(st, crecs, 1), CAPF_EINVAL);
	rc.create_only = 0;
	rc.check_revision = 1;
	rc.expect_revision = 4;
	c.revision = 4;
	CU_ASSERT_EQUAL(store_submit_wait(st, crecs, 1), CAPF_EINVAL);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.txns_written, 0);
	CU_ASSERT_EQUAL(stats.devices, 0);

	/* store_cert_list_device(): the arguments. */
	CU_ASSERT_EQUAL(store_cert_list_device(NULL, "SEP-CAS", &list, &n), CAPF_EINVAL);
	CU_ASSERT_PTR_NULL(list);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(store_cert_list_device(st, NULL, &list, &n), CAPF_EINVAL);
	CU_ASSERT_EQUAL(store_cert_list_device(st, "SEP-CAS", NULL, &n), CAPF_EINVAL);
	CU_ASSERT_EQUAL(store_cert_list_device(st, "SEP-CAS", &list, NULL), CAPF_EINVAL);
	/* Nothing recorded for a device: an empty list. */
	n = 7;
	CU_ASSERT_EQUAL(store_cert_list_device(st, "SEP-CAS", &list, &n), 0);
	CU_ASSERT_PTR_NULL(list);
	CU_ASSERT_EQUAL(n, 0);
	store_cert_list_free(NULL, 0);
	store_close(st);
	tmp_cleanup(&t);
}

/* A stale write fails with CAPF_ESTALE and changes nothing; an absent
 * record with check_revision is CAPF_ENOENT. */
static void test_cas_stale(void)
{
	struct store *st = NULL;
	Capf__Device d;
	Capf__Certificate c, *cout = NULL;
	Capf__StoreRecord rd, rc;
	Capf__StoreRecord *recs[2] = { &rc, &rd };
	struct tmp t;
	long size;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT_EQUAL(cas_device(st, "SEP-ABSENT", 2, 1, 1, CAPF__OP_STATUS__STATUS_PENDING),
			CAPF_ENOENT);
	CU_ASSERT_FALSE(has_device(st, "SEP-ABSENT"));

	CU_ASSERT_EQUAL(put_device(st, "SEP-S", 1, 0, CAPF__OP_STATUS__STATUS_PENDING), 0);
	CU_ASSERT_EQUAL(device_revision(st, "SEP-S"), 1);
	CU_ASSERT_EQUAL(cas_device(st, "SEP-S", 2, 1, 1, CAPF__OP_STATUS__STATUS_ISSUED), 0);
	CU_ASSERT_EQUAL(device_revision(st, "SEP-S"), 2);
	size = file_size(t.log);
	/* A second writer that read revision 1 loses. */
	CU_ASSERT_EQUAL(cas_device(st, "SEP-S", 2, 1, 1, CAPF__OP_STATUS__STATUS_FAILED),
			CAPF_ESTALE);
	/* A writer ahead of the store loses too. */
	CU_ASSERT_EQUAL(cas_device(st, "SEP-S", 4, 1, 3, CAPF__OP_STATUS__STATUS_FAILED),
			CAPF_ESTALE);
	CU_ASSERT_EQUAL(file_size(t.log), size);
	CU_ASSERT_EQUAL(device_revision(st, "SEP-S"), 2);
	check_device_status(st, "SEP-S", CAPF__OP_STATUS__STATUS_ISSUED);

	/* A stale device keeps the certificate of its txn out. */
	full_cert(&c, cert_serial, sizeof(cert_serial));
	c.device = "SEP-S";
	cert_record(&rc, &c);
	rc.create_only = 1;
	full_device(&d, "SEP-S");
	d.revision = 2;
	device_record(&rd, &d);
	rd.check_revision = 1;
	rd.expect_revision = 1;
	CU_ASSERT_EQUAL(store_submit_wait(st, recs, 2), CAPF_ESTALE);
	CU_ASSERT_EQUAL(store_cert_get(st, cert_serial, sizeof(cert_serial), &cout), CAPF_ENOENT);
	CU_ASSERT_EQUAL(file_size(t.log), size);
	d.revision = 3;
	rd.expect_revision = 2;
	CU_ASSERT_EQUAL(store_submit_wait(st, recs, 2), 0);
	CU_ASSERT_EQUAL(device_revision(st, "SEP-S"), 3);
	CU_ASSERT_EQUAL(cert_revision(st, cert_serial, sizeof(cert_serial)), 1);

	/* Certificates are compared the same way. */
	rc.create_only = 0;
	rc.check_revision = 1;
	rc.expect_revision = 1;
	c.revision = 2;
	c.state = CAPF__CERT_STATE__CERT_ACTIVE;
	CU_ASSERT_EQUAL(store_submit_wait(st, recs, 1), 0);
	c.state = CAPF__CERT_STATE__CERT_REVOKED;
	CU_ASSERT_EQUAL(store_submit_wait(st, recs, 1), CAPF_ESTALE);
	CU_ASSERT_EQUAL_FATAL(store_cert_get(st, cert_serial, sizeof(cert_serial), &cout), 0);
	CU_ASSERT_EQUAL(cout->state, CAPF__CERT_STATE__CERT_ACTIVE);
	CU_ASSERT_EQUAL(cout->revision, 2);
	capf__certificate__free_unpacked(cout, NULL);

	/* Without a precondition a record is written as it is (repair,
	 * import), its revision included. */
	CU_ASSERT_EQUAL(cas_device(st, "SEP-S", 9, 0, 0, CAPF__OP_STATUS__STATUS_SUCCESS), 0);
	CU_ASSERT_EQUAL(device_revision(st, "SEP-S"), 9);
	CU_ASSERT_EQUAL(cas_device(st, "SEP-S", 10, 1, 9, CAPF__OP_STATUS__STATUS_SUCCESS), 0);
	CU_ASSERT_EQUAL(device_revision(st, "SEP-S"), 10);
	store_close(st);
	tmp_cleanup(&t);
}

/* Holds the writer in a txn's callback, so that what is queued meanwhile
 * forms exactly one group. */
struct wgate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int entered;
	int open;
};

static void wgate_cb(int result, void *arg)
{
	struct wgate *g = arg;

	(void)result;
	pthread_mutex_lock(&g->lock);
	g->entered = 1;
	pthread_cond_broadcast(&g->cond);
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

/*
 * In one group: txns that chain revisions (1->2, 2->3, and a txn with two
 * records 3->4->5) all pass, a txn naming a revision an earlier txn of the
 * group replaced fails alone, and the txns after it still see the chain.
 */
static void test_cas_group(void)
{
	struct store *st = NULL;
	struct wgate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
	struct counter ca = COUNTER_INIT, cb = COUNTER_INIT, cc = COUNTER_INIT;
	struct counter cd = COUNTER_INIT, ce = COUNTER_INIT;
	Capf__Device dg, da, db, dc, dd1, dd2, de;
	Capf__StoreRecord rg, ra, rb, rc, rd1, rd2, re;
	Capf__StoreRecord *pg[1] = { &rg }, *pa[1] = { &ra }, *pb[1] = { &rb };
	Capf__StoreRecord *pc[1] = { &rc }, *pd[2] = { &rd1, &rd2 }, *pe[1] = { &re };
	struct store_stats before, after;
	struct tmp t;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT_EQUAL(put_device(st, "SEP-G", 1, 0, CAPF__OP_STATUS__STATUS_PENDING), 0);

#define CAS_REC(r, d, rev, expect)              \
	do {                                    \
		full_device(&(d), "SEP-G");     \
		(d).revision = (rev);           \
		device_record(&(r), &(d));      \
		(r).check_revision = 1;         \
		(r).expect_revision = (expect); \
	} while (0)
	full_device(&dg, "SEP-GATE");
	device_record(&rg, &dg);
	CAS_REC(ra, da, 2, 1);
	CAS_REC(rb, db, 3, 2);
	CAS_REC(rc, dc, 3, 2); /* stale: rb replaced revision 2 */
	CAS_REC(rd1, dd1, 4, 3);
	CAS_REC(rd2, dd2, 5, 4);
	CAS_REC(re, de, 6, 5);
#undef CAS_REC
	dc.status = CAPF__OP_STATUS__STATUS_FAILED;
	de.status = CAPF__OP_STATUS__STATUS_SUCCESS;

	CU_ASSERT_EQUAL_FATAL(store_submit(st, pg, 1, wgate_cb, &g), 0);
	pthread_mutex_lock(&g.lock);
	while (!g.entered)
		pthread_cond_wait(&g.cond, &g.lock);
	pthread_mutex_unlock(&g.lock);
	store_get_stats(st, &before);
	CU_ASSERT_EQUAL(store_submit(st, pa, 1, counter_cb, &ca), 0);
	CU_ASSERT_EQUAL(store_submit(st, pb, 1, counter_cb, &cb), 0);
	CU_ASSERT_EQUAL(store_submit(st, pc, 1, counter_cb, &cc), 0);
	CU_ASSERT_EQUAL(store_submit(st, pd, 2, counter_cb, &cd), 0);
	CU_ASSERT_EQUAL(store_submit(st, pe, 1, counter_cb, &ce), 0);
	pthread_mutex_lock(&g.lock);
	g.open = 1;
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);
	counter_wait(&ca, 1);
	counter_wait(&cb, 1);
	counter_wait(&cc, 1);
	counter_wait(&cd, 1);
	counter_wait(&ce, 1);
	store_get_stats(st, &after);
	/* One group commit for the five. */
	CU_ASSERT_EQUAL(after.syncs - before.syncs, 1);
	CU_ASSERT_EQUAL(after.txns_written - before.txns_written, 4);
	CU_ASSERT_EQUAL(ca.failed, 0);
	CU_ASSERT_EQUAL(cb.failed, 0);
	CU_ASSERT_EQUAL(cc.last_error, CAPF_ESTALE);
	CU_ASSERT_EQUAL(cd.failed, 0);
	CU_ASSERT_EQUAL(ce.failed, 0);
	CU_ASSERT_EQUAL(device_revision(st, "SEP-G"), 6);
	check_device_status(st, "SEP-G", CAPF__OP_STATUS__STATUS_SUCCESS);
	store_close(st);

	/* The same on disk. */
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT_EQUAL(device_revision(st, "SEP-G"), 6);
	store_close(st);
	tmp_cleanup(&t);
}

/* Revisions are in the records, so they survive a restart and a
 * compaction, and compare-and-set goes on from them. */
static void test_cas_persist(void)
{
	struct store *st = NULL;
	Capf__Certificate c;
	Capf__StoreRecord rc;
	Capf__StoreRecord *recs[1] = { &rc };
	struct tmp t;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT_EQUAL(put_device(st, "SEP-P", 1, 0, CAPF__OP_STATUS__STATUS_PENDING), 0);
	CU_ASSERT_EQUAL(cas_device(st, "SEP-P", 2, 1, 1, CAPF__OP_STATUS__STATUS_ISSUED), 0);
	full_cert(&c, cert_serial, sizeof(cert_serial));
	cert_record(&rc, &c);
	rc.create_only = 1;
	CU_ASSERT_EQUAL(store_submit_wait(st, recs, 1), 0);
	rc.create_only = 0;
	rc.check_revision = 1;
	rc.expect_revision = 1;
	c.revision = 2;
	CU_ASSERT_EQUAL(store_submit_wait(st, recs, 1), 0);
	store_close(st);

	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT_EQUAL(device_revision(st, "SEP-P"), 2);
	CU_ASSERT_EQUAL(cert_revision(st, cert_serial, sizeof(cert_serial)), 2);
	CU_ASSERT_EQUAL(cas_device(st, "SEP-P", 2, 1, 1, 0), CAPF_ESTALE);
	CU_ASSERT_EQUAL(cas_device(st, "SEP-P", 3, 1, 2, CAPF__OP_STATUS__STATUS_SUCCESS), 0);
	CU_ASSERT_EQUAL(store_compact(st), 0);
	/* The index entry keeps its revision across the rotation. */
	CU_ASSERT_EQUAL(cas_device(st, "SEP-P", 4, 1, 3, CAPF__OP_STATUS__STATUS_SUCCESS), 0);
	CU_ASSERT_EQUAL(store_compact(st), 0);
	store_close(st);

	/* Loaded from the snapshot alone. */
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	CU_ASSERT_EQUAL(device_revision(st, "SEP-P"), 4);
	CU_ASSERT_EQUAL(cert_revision(st, cert_serial, sizeof(cert_serial)), 2);
	CU_ASSERT_EQUAL(cas_device(st, "SEP-P", 4, 1, 3, 0), CAPF_ESTALE);
	c.revision = 2;
	CU_ASSERT_EQUAL(store_submit_wait(st, recs, 1), CAPF_ESTALE);
	rc.expect_revision = 2;
	c.revision = 3;
	CU_ASSERT_EQUAL(store_submit_wait(st, recs, 1), 0);
	CU_ASSERT_EQUAL(cas_device(st, "SEP-P", 5, 1, 4, CAPF__OP_STATUS__STATUS_SUCCESS), 0);
	store_close(st);
	tmp_cleanup(&t);
}

/* ---- the per-device certificate index ------------------------------------ */

/* Writes a certificate: serial {0x10, id}, of device, issued at issued. */
static int put_cert(struct store *st, uint8_t id, const char *device, int64_t issued,
		    Capf__CertState state)
{
	uint8_t serial[2] = { 0x10, id };
	Capf__Certificate c;
	Capf__StoreRecord r;
	Capf__StoreRecord *recs[1] = { &r };

	full_cert(&c, serial, sizeof(serial));
	c.device = (char *)device;
	c.issued_at = issued;
	c.state = state;
	cert_record(&r, &c);
	return store_submit_wait(st, recs, 1);
}

/* Asserts that device has exactly the certificates ids (serial {0x10, id}),
 * in that order. */
static void check_device_certs(struct store *st, const char *device, const uint8_t *ids,
			       size_t n_ids)
{
	Capf__Certificate **list = NULL;
	size_t n = 0, i;

	CU_ASSERT_EQUAL_FATAL(store_cert_list_device(st, device, &list, &n), 0);
	CU_ASSERT_EQUAL(n, n_ids);
	for (i = 0; i < n && i < n_ids; i++) {
		CU_ASSERT_EQUAL(list[i]->serial.len, 2);
		if (list[i]->serial.len == 2)
			CU_ASSERT_EQUAL(list[i]->serial.data[1], ids[i]);
		CU_ASSERT_STRING_EQUAL(list[i]->device, device);
	}
	store_cert_list_free(list, n);
}

static void test_cert_list_device(void)
{
	static const uint8_t a_ids[] = { 1, 5, 3, 4 }, b_ids[] = { 2 }, a_after[] = { 1, 5, 4 };
	static const uint8_t b_after[] = { 2, 3 }, c_ids[] = { 7, 6 };
	struct store *st = NULL;
	Capf__Certificate **list = NULL;
	size_t n = 0;
	struct tmp t;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	/* Out of order on purpose: issued_at first, then the serial. */
	CU_ASSERT_EQUAL(put_cert(st, 3, "SEP-A", 300, CAPF__CERT_STATE__CERT_ACTIVE), 0);
	CU_ASSERT_EQUAL(put_cert(st, 1, "SEP-A", 100, CAPF__CERT_STATE__CERT_REVOKED), 0);
	CU_ASSERT_EQUAL(put_cert(st, 2, "SEP-B", 200, CAPF__CERT_STATE__CERT_ACTIVE), 0);
	CU_ASSERT_EQUAL(put_cert(st, 5, "SEP-A", 100, CAPF__CERT_STATE__CERT_REVOKED), 0);
	CU_ASSERT_EQUAL(put_cert(st, 4, "SEP-A", 400, CAPF__CERT_STATE__CERT_UNCONFIRMED), 0);
	/* A replaced record stays once, with its new contents. */
	CU_ASSERT_EQUAL(put_cert(st, 4, "SEP-A", 400, CAPF__CERT_STATE__CERT_ACTIVE), 0);
	check_device_certs(st, "SEP-A", a_ids, 4);
	check_device_certs(st, "SEP-B", b_ids, 1);
	CU_ASSERT_EQUAL(store_cert_list_device(st, "SEP-A", &list, &n), 0);
	if (n == 4)
		CU_ASSERT_EQUAL(list[3]->state, CAPF__CERT_STATE__CERT_ACTIVE);
	store_cert_list_free(list, n);
	CU_ASSERT_EQUAL(store_cert_list_device(st, "SEP-NONE", &list, &n), 0);
	CU_ASSERT_EQUAL(n, 0);
	/* A prefix of a name is another name. */
	CU_ASSERT_EQUAL(store_cert_list_device(st, "SEP-", &list, &n), 0);
	CU_ASSERT_EQUAL(n, 0);
	store_close(st);

	/* Rebuilt from the segments. */
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	check_device_certs(st, "SEP-A", a_ids, 4);
	check_device_certs(st, "SEP-B", b_ids, 1);
	/* A record rewritten for another device moves to its list. */
	CU_ASSERT_EQUAL(put_cert(st, 3, "SEP-B", 300, CAPF__CERT_STATE__CERT_ACTIVE), 0);
	check_device_certs(st, "SEP-A", a_after, 3);
	check_device_certs(st, "SEP-B", b_after, 2);
	CU_ASSERT_EQUAL(store_compact(st), 0);
	/* Written after the rotation: in the new segment only. */
	CU_ASSERT_EQUAL(put_cert(st, 7, "SEP-C", 50, CAPF__CERT_STATE__CERT_ACTIVE), 0);
	CU_ASSERT_EQUAL(put_cert(st, 6, "SEP-C", 60, CAPF__CERT_STATE__CERT_ACTIVE), 0);
	check_device_certs(st, "SEP-A", a_after, 3);
	check_device_certs(st, "SEP-C", c_ids, 2);
	store_close(st);

	/* Rebuilt from the snapshot and the segment after it. */
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	check_device_certs(st, "SEP-A", a_after, 3);
	check_device_certs(st, "SEP-B", b_after, 2);
	check_device_certs(st, "SEP-C", c_ids, 2);
	CU_ASSERT_EQUAL(store_compact(st), 0);
	store_close(st);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, t.dir), 0);
	check_device_certs(st, "SEP-A", a_after, 3);
	check_device_certs(st, "SEP-B", b_after, 2);
	check_device_certs(st, "SEP-C", c_ids, 2);
	store_close(st);
	tmp_cleanup(&t);
}

/* ---- main ----------------------------------------------------------------- */

static CU_TestInfo tests_crc32c[] = {
	{ "check values", test_crc32c },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo tests_store_log_scan[] = {
	{ "invalid headers", test_scan_invalid },
	{ "entries, torn tails, damage", test_scan_valid },
	{ "groups after a lazy one", test_scan_lazy },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo tests_store_open[] = {
	{ "invalid input", test_open_invalid },
	{ "fresh directory", test_open_fresh },
	{ "bad header, a FIFO for a segment", test_open_bad_header },
	{ "directory lock", test_lock },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo tests_revisions[] = {
	{ "invalid input", test_cas_invalid },
	{ "stale and absent records", test_cas_stale },
	{ "chained revisions in one group", test_cas_group },
	{ "across restarts and compaction", test_cas_persist },
	{ "certificates of a device", test_cert_list_device },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo tests_records[] = {
	{ "invalid input", test_submit_invalid },
	{ "device round trip", test_device_roundtrip },
	{ "certificate by serial", test_cert_by_serial },
	{ "every certificate", test_cert_foreach },
	{ "device list sorted", test_device_list_sorted },
	{ "create_only and must_exist", test_create_only },
	{ "preconditions within a group", test_preconditions_in_group },
	{ "multi-record txn", test_multi_record_txn },
	{ "txn of several entries, all or none", test_txn_several_entries },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo tests_recovery[] = {
	{ "torn tail", test_torn_tail },
	{ "bad CRC at the tail", test_bad_crc_tail },
	{ "damaged middle", test_damaged_middle },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo tests_writer[] = {
	{ "group commit", test_group_commit },
	{ "write fault", test_fault },
	{ "close with pending txns", test_close_pending },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo tests_record_codec[] = {
	{ "invalid txns", test_codec_invalid },
	{ "valid txns", test_codec_valid },
	{ "file headers", test_header },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo tests_compaction[] = {
	{ "invalid input, empty store", test_compact_invalid },
	{ "snapshot while writing", test_compact },
	{ "past the size threshold", test_compact_auto },
	{ "crash leftovers, damage", test_compact_crash },
	CU_TEST_INFO_NULL,
};

/* ---- bounds: the writer's queue, aggregated failures, audit files ------------- */


static int put_device_async(struct store *st, const char *name, store_done_cb cb, void *arg)
{
	Capf__Device d;
	Capf__StoreRecord r;
	Capf__StoreRecord *recs[1] = { &r };

	full_device(&d, name);
	device_record(&r, &d);
	return store_submit(st, recs, 1, cb, arg);
}

static void test_queue_bound(void)
{
	struct store_options opt = { .queue_max = 4 };
	struct wgate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
	struct store_audit_event ev = { .kind = CAPF__AUDIT_KIND__AUDIT_ADMIN, .peer = "t" };
	struct counter cnt = COUNTER_INIT;
	struct store_stats stats;
	struct store *st = NULL;
	struct tmp t;
	int i;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open_opts(&st, t.dir, &opt), 0);
	/* The writer held in a callback: nothing leaves the queue. */
	CU_ASSERT_EQUAL(put_device_async(st, "SEP-GATE", wgate_cb, &g), 0);
	pthread_mutex_lock(&g.lock);
	while (!g.entered)
		pthread_cond_wait(&g.cond, &g.lock);
	pthread_mutex_unlock(&g.lock);
	for (i = 0; i < 4; i++) {
		char name[32];

		snprintf(name, sizeof(name), "SEP-Q%d", i);
		CU_ASSERT_EQUAL(put_device_async(st, name, counter_cb, &cnt), 0);
	}
	CU_ASSERT_EQUAL(put_device_async(st, "SEP-OVER", counter_cb, &cnt), CAPF_ERETRY);
	CU_ASSERT_EQUAL(store_audit(st, &ev), CAPF_ELIMIT);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.queue_full, 2);
	pthread_mutex_lock(&g.lock);
	g.open = 1;
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);
	counter_wait(&cnt, 4);
	CU_ASSERT_EQUAL(cnt.failed, 0);
	/* Room again; the refused event is counted as lost, and said. */
	CU_ASSERT_EQUAL(put_device(st, "SEP-AFTER", 0, 0, 0), 0);
	CU_ASSERT_EQUAL(store_flush(st), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.audit_lost, 1);
	CU_ASSERT_EQUAL(stats.devices, 6);
	store_close(st);
	tmp_cleanup(&t);
}

static void test_audit_aggregate(void)
{
	struct store_options opt = { .audit_aggregate_seconds = 1 };
	struct store_stats stats;
	struct store *st = NULL;
	struct collected c;
	char path[200], peer[32];
	long size0;
	int i;
	struct tmp t;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open_opts(&st, t.dir, &opt), 0);
	snprintf(path, sizeof(path), "%s/audit.0000000001.log", t.dir);
	size0 = file_size(path);
	/* 300 sessions from one address (another port each), 3 from
	 * another, each failing before it authenticated. */
	for (i = 0; i < 300; i++) {
		struct store_audit_event ev = { .kind = CAPF__AUDIT_KIND__AUDIT_AUTH_FAIL,
						.peer = peer, .code = CAPF_EFRAME_TOO_BIG,
						.detail = "bad frame" };

		snprintf(peer, sizeof(peer), "192.0.2.7:%d", 10000 + i);
		CU_ASSERT_EQUAL(store_audit(st, &ev), 0);
	}
	for (i = 0; i < 3; i++) {
		struct store_audit_event ev = { .kind = CAPF__AUDIT_KIND__AUDIT_AUTH_FAIL,
						.peer = "[2001:db8::1]:4000", .device = "SEPX",
						.detail = "unknown device" };

		CU_ASSERT_EQUAL(store_audit(st, &ev), 0);
	}
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.audit_aggregated, 303);
	CU_ASSERT_EQUAL(stats.syncs, 0);
	/* Nothing written for them yet: no sync spent on them alone. */
	CU_ASSERT_EQUAL(file_size(path), size0);
	/* The interval ends: the writer writes both, once. */
	for (i = 0; i < 50; i++) {
		usleep(100000);
		store_get_stats(st, &stats);
		if (stats.audit_seq == 2)
			break;
	}
	CU_ASSERT_EQUAL(stats.audit_seq, 2);
	CU_ASSERT_EQUAL(stats.syncs, 1);
	store_close(st);
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(store_audit_read(path, collect_entry, &c), 0);
	CU_ASSERT_EQUAL(c.n, 2);
	CU_ASSERT_EQUAL(c.kinds[0], CAPF__AUDIT_KIND__AUDIT_AUTH_FAIL);
	CU_ASSERT(file_size(path) - size0 < 2000);
	{
		int found300 = 0, found3 = 0;

		for (i = 0; i < c.n; i++) {
			found300 |= strstr(c.details[i],
					   "300 failures (auth-fail) from 192.0.2.7 since") != NULL;
			found3 |= strstr(c.details[i], "3 failures (auth-fail) from [2001:db8::1] ") !=
				  NULL;
		}
		CU_ASSERT(found300);
		CU_ASSERT(found3);
	}
	tmp_cleanup(&t);
}

static void test_audit_rotation(void)
{
	struct store_options opt = { .audit_file_bytes = 2000 };
	struct store_audit_summary sum;
	struct store_stats stats;
	struct store *st = NULL;
	struct collected c;
	char **files = NULL;
	size_t n = 0;
	int i;
	struct tmp t;

	CU_ASSERT_EQUAL_FATAL(tmp_setup(&t), 0);
	CU_ASSERT_EQUAL_FATAL(store_open_opts(&st, t.dir, &opt), 0);
	for (i = 0; i < 40; i++) {
		CU_ASSERT_EQUAL(audit(st, CAPF__AUDIT_KIND__AUDIT_ADMIN, "SEP-ROT", 0), 0);
		CU_ASSERT_EQUAL(store_flush(st), 0);
	}
	store_get_stats(st, &stats);
	CU_ASSERT(stats.audit_file >= 3);
	store_close(st);
	/* Reopened, it goes on in the newest file, the chain unbroken. */
	CU_ASSERT_EQUAL_FATAL(store_open_opts(&st, t.dir, &opt), 0);
	CU_ASSERT_EQUAL(audit(st, CAPF__AUDIT_KIND__AUDIT_ADMIN, "SEP-ROT2", 0), 0);
	CU_ASSERT_EQUAL(store_flush(st), 0);
	store_close(st);
	CU_ASSERT_EQUAL(store_audit_files(t.dir, &files, &n), 0);
	CU_ASSERT(n >= 3);
	store_audit_files_free(files, n);
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(store_audit_verify(t.dir, NULL, 0, collect_finding, &c, &sum), 0);
	CU_ASSERT_EQUAL(sum.entries, 41);
	CU_ASSERT_EQUAL(sum.first_seq, 1);
	CU_ASSERT_EQUAL(sum.last_seq, 41);
	CU_ASSERT_EQUAL(sum.anchor_seq, 41);
	CU_ASSERT_EQUAL(store_check(t.dir, NULL, NULL, NULL), 0);
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(store_audit_read_dir(t.dir, collect_entry, &c), 0);
	CU_ASSERT_EQUAL(c.n, 41);
	/* An older file edited: verify says which. */
	{
		char p[200];

		snprintf(p, sizeof(p), "%s/audit.0000000001.log", t.dir);
		CU_ASSERT_EQUAL(file_xor_byte(p, STORE_HEADER_LEN + STORE_FRAG_HEADER_LEN + 3), 0);
		memset(&c, 0, sizeof(c));
		CU_ASSERT_EQUAL(store_audit_verify(t.dir, NULL, 0, collect_finding, &c, &sum),
				CAPF_ECORRUPT);
		CU_ASSERT(any_text(&c, "audit.0000000001.log @32:"));
	}
	tmp_cleanup(&t);
}

static CU_TestInfo tests_bounds[] = {
	{ "writer queue bound", test_queue_bound },
	{ "unauthenticated failures aggregated", test_audit_aggregate },
	{ "audit files rotate", test_audit_rotation },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo tests_audit[] = {
	{ "invalid input", test_audit_invalid },
	{ "quiet events wait for a wake-up", test_audit_quiet },
	{ "chain across restarts", test_audit_chain },
	{ "tampering", test_audit_tamper },
	{ "torn, missing, truncated", test_audit_recovery },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo tests_offline[] = {
	{ "check and repair", test_check_repair },
	{ "format 1 conversion", test_legacy },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo tests_fault_seam[] = {
	{ "audit events kept while failing", test_fault_audit },
	{ "compaction fault", test_fault_compact },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "crc32c", NULL, NULL, NULL, NULL, tests_crc32c },
	{ "store_log_scan", NULL, NULL, NULL, NULL, tests_store_log_scan },
	{ "bounds", NULL, NULL, NULL, NULL, tests_bounds },
	{ "store_open", NULL, NULL, NULL, NULL, tests_store_open },
	{ "records", NULL, NULL, NULL, NULL, tests_records },
	{ "revisions", NULL, NULL, NULL, NULL, tests_revisions },
	{ "recovery", NULL, NULL, NULL, NULL, tests_recovery },
	{ "writer", NULL, NULL, NULL, NULL, tests_writer },
	{ "record codec", NULL, NULL, NULL, NULL, tests_record_codec },
	{ "compaction", NULL, NULL, NULL, NULL, tests_compaction },
	{ "audit", NULL, NULL, NULL, NULL, tests_audit },
	{ "offline", NULL, NULL, NULL, NULL, tests_offline },
	{ "fault seam", NULL, NULL, NULL, NULL, tests_fault_seam },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	unsigned int failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;

	if (CU_register_suites(suites) != CUE_SUCCESS)
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
