/*
 * Tests of the store's recovery rules (format 3, doc/store-format.md):
 * power loss over many random cases, payload bytes never read as an
 * entry, recovery, check and verify in linear work, and the conversion of
 * a format 2 directory.
 *
 * CAPF_POWERLOSS_CASES=N runs N random power-loss cases (default 1000);
 * CAPF_POWERLOSS_SEED=S picks the seed (default: the time, printed).
 */
#include "config.h"

#define _GNU_SOURCE 1
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>

#include "store/internal.h"
#include "store/store.h"

/* ---- files -------------------------------------------------------------- */

static char root[64];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tree(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh directory root/name (removed first if it exists). */
static void fresh_dir(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", root, name);
	rm_tree(out);
	mkdir(out, 0700);
}

static int read_file(const char *dir, const char *name, uint8_t **buf, size_t *len)
{
	char path[256];
	struct stat sb;
	int fd, ret = -1;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	*buf = NULL;
	*len = 0;
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	if (fstat(fd, &sb) == 0 && (*buf = malloc((size_t)sb.st_size + 1)) &&
	    read(fd, *buf, (size_t)sb.st_size) == sb.st_size) {
		*len = (size_t)sb.st_size;
		ret = 0;
	}
	close(fd);
	return ret;
}

static int write_file(const char *dir, const char *name, const uint8_t *buf, size_t len)
{
	char path[256];
	int fd, ret;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -1;
	ret = write(fd, buf, len) == (ssize_t)len ? 0 : -1;
	close(fd);
	return ret;
}

/* ---- records ------------------------------------------------------------------ */

static uint8_t big_der[6000];

/* A device record of revision 1 named name, in r. */
static void device_rec(Capf__Device *d, Capf__StoreRecord *r, const char *name)
{
	capf__device__init(d);
	d->name = (char *)name;
	d->revision = 1;
	capf__store_record__init(r);
	r->body_case = CAPF__STORE_RECORD__BODY_DEVICE;
	r->device = d;
}

static int put_device(struct store *st, const char *name, const char *detail)
{
	Capf__Device d;
	Capf__StoreRecord r;
	Capf__StoreRecord *recs[1] = {&r};

	device_rec(&d, &r, name);
	d.mic_fingerprint = (char *)(detail ? detail : "");
	return store_submit_wait(st, recs, 1);
}

/* A certificate record whose DER (what a phone's key lands in) is der. */
static void cert_rec(Capf__Certificate *c, Capf__StoreRecord *r, const uint8_t *serial,
		     size_t serial_len, const uint8_t *der, size_t der_len)
{
	capf__certificate__init(c);
	c->serial.data = (uint8_t *)serial;
	c->serial.len = serial_len;
	c->device = "SEP001122334455";
	c->der.data = (uint8_t *)der;
	c->der.len = der_len;
	c->revision = 1;
	capf__store_record__init(r);
	r->body_case = CAPF__STORE_RECORD__BODY_CERT;
	r->cert = c;
}

static int has_device(struct store *st, const char *name)
{
	Capf__Device *d = NULL;
	int ret = store_device_get(st, name, &d);

	if (d)
		capf__device__free_unpacked(d, NULL);
	return ret == 0;
}

static void done_cb(int result, void *arg)
{
	*(int *)arg = result == 0 ? 1 : -1;
}

static const char seg_name[] = "log.0000000001";
static const char aud_name[] = "audit.0000000001.log";

/* ---- audit groups that were not synced ------------------------------------------- */

static int entry_off(const Capf__AuditEntry *e, uint64_t off, void *arg)
{
	uint64_t *offs = arg;

	if (e->seq < 16)
		offs[e->seq] = off;
	return 0;
}

/*
 * Audit groups are written without a sync of their own: a power cut can
 * lose one in the middle of those written since the file's last sync
 * (and keep the ones after it, which say they followed an unsynced
 * group). The segment's copies restore them all, and the chain verifies.
 */
static void test_audit_unsynced_groups(void)
{
	char dir[128], work[128], path[200], name[40];
	uint8_t *seg = NULL, *aud = NULL;
	size_t seg_len = 0, aud_len = 0;
	uint64_t offs[16] = { 0 }, seq0;
	struct store_check_summary sum;
	struct store_audit_summary asum;
	struct store_stats stats;
	struct store *st = NULL;
	int k;

	fresh_dir(dir, sizeof(dir), "lazy-audit");
	CU_ASSERT_EQUAL_FATAL(store_open(&st, dir), 0);
	CU_ASSERT_EQUAL(put_device(st, "SEP-FIRST", NULL), 0);
	store_get_stats(st, &stats);
	seq0 = stats.audit_seq;
	store_close(st);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, dir), 0);
	for (k = 0; k < 4; k++) {
		struct store_audit_event ev = { .kind = CAPF__AUDIT_KIND__AUDIT_ADMIN,
						.device = name, .peer = "test", .detail = "lazy" };
		Capf__Device d;
		Capf__StoreRecord r;
		Capf__StoreRecord *recs[1] = { &r };
		int done = 0;

		snprintf(name, sizeof(name), "SEP-LAZY-%d", k);
		device_rec(&d, &r, name);
		CU_ASSERT_EQUAL(store_submit_audit(st, recs, 1, &ev, done_cb, &done), 0);
		CU_ASSERT_EQUAL(store_flush(st), 0);
		CU_ASSERT_EQUAL(done, 1);
	}
	/* The crash: the files as the page cache has them, before any sync
	 * of the audit file. */
	CU_ASSERT_EQUAL_FATAL(read_file(dir, seg_name, &seg, &seg_len), 0);
	CU_ASSERT_EQUAL_FATAL(read_file(dir, aud_name, &aud, &aud_len), 0);
	store_close(st);
	snprintf(path, sizeof(path), "%s/%s", dir, aud_name);
	CU_ASSERT_EQUAL(store_audit_read(path, entry_off, offs), 0);
	CU_ASSERT_FATAL(seq0 + 4 < 16 && offs[seq0 + 2] > 0);

	/* The second of the four lost (one byte of it), the two after it kept. */
	fresh_dir(work, sizeof(work), "lazy-audit-case");
	aud[offs[seq0 + 2] + STORE_FRAG_HEADER_LEN + 2] ^= 0x20;
	CU_ASSERT_EQUAL(write_file(work, seg_name, seg, seg_len), 0);
	CU_ASSERT_EQUAL(write_file(work, aud_name, aud, aud_len), 0);
	/* Before the start: the offline tools read it as the start will
	 * leave it, and see no damage. */
	CU_ASSERT_EQUAL(store_audit_verify(work, NULL, 0, NULL, NULL, &asum), 0);
	CU_ASSERT_EQUAL(asum.last_seq, seq0 + 4);
	CU_ASSERT_EQUAL(store_check(work, NULL, NULL, &sum), 0);
	/* audit show reads every entry, the lost one from its copy; the
	 * file alone is damaged. */
	{
		uint64_t seen[16] = { 0 };

		CU_ASSERT_EQUAL(store_audit_read_dir(work, entry_off, seen), 0);
		for (k = 1; k <= 4; k++)
			CU_ASSERT(seen[seq0 + k] > 0);
		snprintf(path, sizeof(path), "%s/%s", work, aud_name);
		CU_ASSERT_EQUAL(store_audit_read(path, NULL, NULL), CAPF_ECORRUPT);
	}
	CU_ASSERT_EQUAL_FATAL(store_open(&st, work), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.audit_restored, 3);
	CU_ASSERT_EQUAL(stats.audit_seq, seq0 + 4);
	CU_ASSERT_EQUAL(stats.devices, 5);
	store_close(st);
	CU_ASSERT_EQUAL(store_audit_verify(work, NULL, 0, NULL, NULL, &asum), 0);
	CU_ASSERT_EQUAL(store_check(work, NULL, NULL, &sum), 0);
	rm_tree(work);

	free(seg);
	free(aud);
	rm_tree(dir);
}

/* ---- lazy groups ------------------------------------------------------------------ */

static int lazy_put(struct store *st, const char *name)
{
	struct store_audit_event ev = { .kind = CAPF__AUDIT_KIND__AUDIT_ACK, .device = name,
					.peer = "test", .detail = "lazy" };
	Capf__Device d;
	Capf__StoreRecord r;
	Capf__StoreRecord *recs[1] = { &r };
	volatile int done = 0;
	int i;

	device_rec(&d, &r, name);
	if (store_submit_lazy(st, recs, 1, &ev, done_cb, (int *)&done) < 0)
		return -1;
	for (i = 0; i < 2000 && done == 0; i++)
		usleep(1000);
	return done == 1 ? 0 : -1;
}

/*
 * Lazy groups (acknowledgements) are written and not synced; the groups
 * after them say so until the next sync. A power cut may lose a lazy group
 * and keep what was written after it: all of that is the torn tail, never
 * damage. Damage to a group that a later one proves durable still refuses.
 */
static void test_lazy_groups(void)
{
	char dir[128], work[128];
	uint8_t *seg = NULL, *aud = NULL;
	size_t seg_len = 0, aud_len = 0, base = 0, lazy_off;
	struct store_stats stats;
	struct store *st = NULL;

	fresh_dir(dir, sizeof(dir), "lazy-seg");
	CU_ASSERT_EQUAL_FATAL(store_open(&st, dir), 0);
	CU_ASSERT_EQUAL(put_device(st, "SEP-SYNCED-1", NULL), 0);
	store_close(st);
	CU_ASSERT_EQUAL_FATAL(read_file(dir, seg_name, &seg, &base), 0);
	free(seg);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, dir), 0);
	CU_ASSERT_EQUAL(lazy_put(st, "SEP-LAZY-1"), 0);
	CU_ASSERT_EQUAL(lazy_put(st, "SEP-LAZY-2"), 0);
	CU_ASSERT_EQUAL(put_device(st, "SEP-SYNCED-2", NULL), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.lazy_groups, 2);
	CU_ASSERT(has_device(st, "SEP-LAZY-1"));
	/* The crash: the files as the page cache has them. */
	CU_ASSERT_EQUAL_FATAL(read_file(dir, seg_name, &seg, &seg_len), 0);
	CU_ASSERT_EQUAL_FATAL(read_file(dir, aud_name, &aud, &aud_len), 0);
	store_close(st);
	CU_ASSERT_FATAL(seg_len > base);
	lazy_off = base; /* the first lazy group starts where the synced file ended */

	/* Whole: everything. */
	fresh_dir(work, sizeof(work), "lazy-seg-case");
	CU_ASSERT_EQUAL(write_file(work, seg_name, seg, seg_len), 0);
	CU_ASSERT_EQUAL(write_file(work, aud_name, aud, aud_len), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, work), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.devices, 4);
	store_close(st);

	/* The first lazy group lost (a byte of it), the rest on disk: torn
	 * there, with everything after it (the synced group after it was not
	 * yet synced when the power went, or the lazy one would be there). */
	fresh_dir(work, sizeof(work), "lazy-seg-case");
	seg[lazy_off + STORE_FRAG_HEADER_LEN + 3] ^= 0x08;
	CU_ASSERT_EQUAL(write_file(work, seg_name, seg, seg_len), 0);
	CU_ASSERT_EQUAL(write_file(work, aud_name, aud, aud_len), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, work), 0);
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.devices, 1);
	CU_ASSERT(has_device(st, "SEP-SYNCED-1"));
	CU_ASSERT_EQUAL(stats.torn_bytes_dropped, seg_len - base);
	store_close(st);
	seg[lazy_off + STORE_FRAG_HEADER_LEN + 3] ^= 0x08;

	/* Damage to the synced group before them: the lazy group after it was
	 * written once it was synced, so that is damage. */
	fresh_dir(work, sizeof(work), "lazy-seg-case");
	seg[STORE_HEADER_LEN + STORE_FRAG_HEADER_LEN + 3] ^= 0x08;
	CU_ASSERT_EQUAL(write_file(work, seg_name, seg, seg_len), 0);
	CU_ASSERT_EQUAL(write_file(work, aud_name, aud, aud_len), 0);
	CU_ASSERT_EQUAL(store_open(&st, work), CAPF_ECORRUPT);
	rm_tree(work);
	free(seg);
	free(aud);
	rm_tree(dir);
}

/* ---- power loss ---------------------------------------------------------------- */

#define N_ACKED 12
#define N_NEW 3

static unsigned long long rng_state;

static unsigned rnd(unsigned n)
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return (unsigned)((rng_state >> 33) % n);
}

/*
 * base (durable) then the bytes of one unsynced write, as a power cut may
 * leave them: each 4 KiB page of the write (file offsets) independently
 * kept, lost (zeros), torn (a prefix of 512-byte sectors, zeros after) or
 * garbage; and the file's size may stop at any sector of the write.
 */
static uint8_t *power_cut(const uint8_t *base, size_t blen, const uint8_t *w, size_t wlen,
			  size_t *out_len)
{
	uint8_t *out = malloc(blen + wlen + 1);
	size_t pos = 0, len = blen + wlen;

	memcpy(out, base, blen);
	memcpy(out + blen, w, wlen);
	*out_len = len;
	if (rnd(12) == 0)
		return out; /* every page of it reached the disk */
	while (pos < wlen) {
		size_t off = blen + pos, page_end = (off / 4096 + 1) * 4096 - blen, n, i, keep;

		if (page_end > wlen)
			page_end = wlen;
		n = page_end - pos;
		switch (rnd(6)) {
		case 0:
		case 1:
			break;
		case 2:
			memset(out + off, 0, n);
			break;
		case 3:
			keep = (size_t)rnd((unsigned)(n / 512 + 1)) * 512;
			if (keep < n)
				memset(out + off + keep, 0, n - keep);
			break;
		case 4:
			for (i = 0; i < n; i++)
				out[off + i] = (uint8_t)rnd(256);
			break;
		default:
			/* A single bit: the sector written, the medium lying. */
			out[off + rnd((unsigned)n)] ^= (uint8_t)(1u << rnd(8));
			break;
		}
		pos = page_end;
	}
	if (rnd(3) == 0)
		len = blen + (size_t)rnd((unsigned)(wlen / 512 + 1)) * 512;
	if (len > blen + wlen)
		len = blen + wlen;
	*out_len = len;
	return out;
}

struct snapshot_files {
	uint8_t *seg, *aud;
	size_t seg_len, aud_len;
};


static int snap_files(const char *dir, struct snapshot_files *f)
{
	return read_file(dir, seg_name, &f->seg, &f->seg_len) < 0 ||
		       read_file(dir, aud_name, &f->aud, &f->aud_len) < 0
		   ? -1
		   : 0;
}

static void test_power_loss(void)
{
	struct snapshot_files before = {0}, after = {0};
	char dir[128], work[128], name[64];
	const char *env = getenv("CAPF_POWERLOSS_CASES");
	unsigned long cases = env ? strtoul(env, NULL, 10) : 1000, i;
	unsigned long opened = 0, with_new = 0, dropped = 0, restored = 0;
	struct store *st = NULL;
	int done = 0;
	size_t k;

	env = getenv("CAPF_POWERLOSS_SEED");
	rng_state = env ? strtoull(env, NULL, 10) : (unsigned long long)time(NULL);
	printf("\n    power loss: %lu cases, CAPF_POWERLOSS_SEED=%llu ", cases, rng_state);

	/* Acknowledged: N_ACKED groups, each durable before the next. */
	fresh_dir(dir, sizeof(dir), "pl");
	CU_ASSERT_EQUAL_FATAL(store_open(&st, dir), 0);
	for (k = 0; k < N_ACKED; k++) {
		snprintf(name, sizeof(name), "SEP-ACKED-%02zu", k);
		CU_ASSERT_EQUAL_FATAL(put_device(st, name, k % 3 ? "short" : (char *)big_der), 0);
	}
	{
		struct store_audit_event ev = {
		    .kind = CAPF__AUDIT_KIND__AUDIT_ADMIN, .peer = "test", .detail = "acked"};

		CU_ASSERT_EQUAL(store_audit(st, &ev), 0);
		CU_ASSERT_EQUAL(store_flush(st), 0);
	}
	store_close(st);
	CU_ASSERT_EQUAL_FATAL(snap_files(dir, &before), 0);

	/* Then a lazy group (an acknowledgement: written, not synced), and
	 * one group that spans several blocks of both files: a txn of N_NEW
	 * records with large certificates and its audit entry, whose sync
	 * makes both durable. A cut may leave either, or both, in any state. */
	CU_ASSERT_EQUAL_FATAL(store_open(&st, dir), 0);
	CU_ASSERT_EQUAL_FATAL(lazy_put(st, "SEP-LAZY-ACK"), 0);
	{
		Capf__Certificate c[N_NEW];
		Capf__StoreRecord r[N_NEW];
		Capf__StoreRecord *recs[N_NEW];
		uint8_t serials[N_NEW][2];
		struct store_audit_event ev = {.kind = CAPF__AUDIT_KIND__AUDIT_ISSUE,
					       .device = "SEP001122334455",
					       .peer = "test",
					       .detail = (char *)big_der};

		for (k = 0; k < N_NEW; k++) {
			serials[k][0] = 0x42;
			serials[k][1] = (uint8_t)k;
			cert_rec(&c[k], &r[k], serials[k], 2, big_der, sizeof(big_der));
			recs[k] = &r[k];
		}
		CU_ASSERT_EQUAL(store_submit_audit(st, recs, N_NEW, &ev, done_cb, &done), 0);
		CU_ASSERT_EQUAL(store_flush(st), 0);
	}
	/* The files as the group left them (what close adds comes later). */
	CU_ASSERT_EQUAL_FATAL(snap_files(dir, &after), 0);
	store_close(st);
	CU_ASSERT_EQUAL(done, 1);
	CU_ASSERT_FATAL(after.seg_len > before.seg_len + 2 * STORE_BLOCK_LEN);
	CU_ASSERT_FATAL(after.aud_len > before.aud_len);
	CU_ASSERT_FATAL(memcmp(after.seg, before.seg, before.seg_len) == 0);

	for (i = 0; i < cases; i++) {
		/* The group's audit write is not synced on its own: a power
		 * cut before the segment's sync may leave either write in any
		 * state (or the segment's not begun); one after it leaves the
		 * segment whole and the audit write in any state, which the
		 * segment's copy of the audit entries restores. */
		unsigned how = rnd(4);
		bool seg_cut = how != 3, aud_cut = how != 0, seg_none = how == 2;
		uint8_t *seg, *aud;
		size_t seg_len, aud_len;
		struct store_stats stats;
		uint8_t serial[2] = {0x42, 0};
		struct store_check_summary csum;
		Capf__Certificate *cert = NULL;
		int ret, have_new, have_lazy, all_new = 1;

		fresh_dir(work, sizeof(work), "pl-case");
		if (seg_none) {
			seg = malloc(before.seg_len);
			memcpy(seg, before.seg, before.seg_len);
			seg_len = before.seg_len;
		} else if (seg_cut) {
			seg = power_cut(before.seg, before.seg_len, after.seg + before.seg_len,
					after.seg_len - before.seg_len, &seg_len);
		} else {
			seg = malloc(after.seg_len);
			memcpy(seg, after.seg, after.seg_len);
			seg_len = after.seg_len;
		}
		if (aud_cut) {
			aud = power_cut(before.aud, before.aud_len, after.aud + before.aud_len,
					after.aud_len - before.aud_len, &aud_len);
		} else {
			aud = malloc(after.aud_len);
			memcpy(aud, after.aud, after.aud_len);
			aud_len = after.aud_len;
		}
		CU_ASSERT_EQUAL(write_file(work, seg_name, seg, seg_len), 0);
		CU_ASSERT_EQUAL(write_file(work, aud_name, aud, aud_len), 0);
		free(seg);
		free(aud);

		/* What a power cut leaves is no damage to the offline check. */
		ret = store_check(work, NULL, NULL, &csum);
		CU_ASSERT_EQUAL(ret, 0);
		if (ret != 0)
			printf("\n    case %lu (segment %s, audit %s): store check: %d ", i,
			       seg_none ? "not written" : seg_cut ? "cut" : "whole",
			       aud_cut ? "cut" : "whole", ret);
		ret = store_open(&st, work);
		CU_ASSERT_EQUAL(ret, 0);
		if (ret != 0) {
			printf("\n    case %lu (segment %s, audit %s): %s ", i,
			       seg_none ? "not written" : seg_cut ? "cut" : "whole",
			       aud_cut ? "cut" : "whole", store_last_error());
			continue;
		}
		opened++;
		/* Every acknowledged record, and of the cut group all or nothing. */
		for (k = 0; k < N_ACKED; k++) {
			snprintf(name, sizeof(name), "SEP-ACKED-%02zu", k);
			CU_ASSERT(has_device(st, name));
		}
		store_cert_get(st, serial, 2, &cert);
		have_new = cert != NULL;
		if (cert) {
			CU_ASSERT_EQUAL(cert->der.len, sizeof(big_der));
			capf__certificate__free_unpacked(cert, NULL);
		}
		for (k = 1; k < N_NEW; k++) {
			serial[1] = (uint8_t)k;
			cert = NULL;
			store_cert_get(st, serial, 2, &cert);
			all_new &= (cert != NULL) == have_new;
			if (cert)
				capf__certificate__free_unpacked(cert, NULL);
		}
		CU_ASSERT(all_new);
		store_get_stats(st, &stats);
		have_lazy = has_device(st, "SEP-LAZY-ACK");
		/* The synced group is kept only with the lazy one before it. */
		CU_ASSERT(!have_new || have_lazy);
		CU_ASSERT_EQUAL(stats.devices, N_ACKED + (have_lazy ? 1 : 0));
		CU_ASSERT_EQUAL(stats.certificates, have_new ? N_NEW : 0);
		/* The audit log reaches the acknowledged anchor and goes on; a
		 * group that is kept has its audit entry (restored if cut). */
		CU_ASSERT(stats.audit_seq >= 1);
		if (have_new)
			CU_ASSERT_EQUAL(stats.audit_seq, 3);
		if (!seg_cut && !seg_none)
			CU_ASSERT(have_new);
		restored += stats.audit_restored > 0;
		CU_ASSERT_EQUAL(put_device(st, "SEP-AFTER", NULL), 0);
		store_close(st);
		with_new += have_new;
		dropped += !have_new;
		/* What the start left opens again, unchanged. */
		CU_ASSERT_EQUAL(store_open(&st, work), 0);
		if (st) {
			CU_ASSERT(has_device(st, "SEP-AFTER"));
			store_close(st);
		}
	}
	printf("(%lu opened: the cut group kept whole %lu times, dropped %lu times; its audit "
	       "entry restored from the segment %lu times) ",
	       opened, with_new, dropped, restored);

	/* Damage before the last durable commit still refuses, with file and
	 * offset: one flipped byte in the first group, the rest intact. */
	fresh_dir(work, sizeof(work), "pl-case");
	after.seg[STORE_HEADER_LEN + STORE_FRAG_HEADER_LEN + 2] ^= 0x10;
	CU_ASSERT_EQUAL(write_file(work, seg_name, after.seg, after.seg_len), 0);
	CU_ASSERT_EQUAL(write_file(work, aud_name, after.aud, after.aud_len), 0);
	CU_ASSERT_EQUAL(store_open(&st, work), CAPF_ECORRUPT);
	CU_ASSERT_PTR_NOT_NULL(strstr(store_last_error(), seg_name));
	CU_ASSERT_PTR_NOT_NULL(strstr(store_last_error(), "byte offset 32"));
	after.seg[STORE_HEADER_LEN + STORE_FRAG_HEADER_LEN + 2] ^= 0x10;
	/* The same in a header: the later groups are still seen. */
	after.seg[STORE_HEADER_LEN + 9] ^= 0x01;
	CU_ASSERT_EQUAL(write_file(work, seg_name, after.seg, after.seg_len), 0);
	CU_ASSERT_EQUAL(store_open(&st, work), CAPF_ECORRUPT);
	after.seg[STORE_HEADER_LEN + 9] ^= 0x01;

	free(before.seg);
	free(before.aud);
	free(after.seg);
	free(after.aud);
	rm_tree(dir);
	rm_tree(work);
}

/* ---- payload bytes are never read as an entry --------------------------------- */

/* A format 2 entry: length, CRC32C, payload. */
static size_t v2_entry(uint8_t *out, const uint8_t *p, size_t len)
{
	store_be32_put(out, (uint32_t)len);
	store_be32_put(out + 4, crc32c(0, p, len));
	memcpy(out + 8, p, len);
	return 8 + len;
}

/* The payload of a txn putting device name. */
static size_t txn_payload(uint8_t *out, const char *name)
{
	Capf__Device d;
	Capf__StoreRecord r;
	Capf__StoreRecord *recs[1] = {&r};
	Capf__StoreTxn txn = CAPF__STORE_TXN__INIT;

	device_rec(&d, &r, name);
	txn.n_records = 1;
	txn.records = recs;
	return capf__store_txn__pack(&txn, out);
}

static void test_payload_not_an_entry(void)
{
	struct store_check_summary sum;
	struct store *st = NULL;
	uint8_t der[3000], p[200], serial[] = {0x99};
	Capf__Certificate c;
	Capf__StoreRecord r;
	Capf__StoreRecord *recs[1] = {&r};
	char dir[128];
	uint8_t *seg = NULL;
	size_t seg_len, n, off = 0;
	long hdr_off = 0;

	/* A "public key" made of entries: format 2 entries, and format 3
	 * fragments framed with a guessed salt for each offset they could
	 * be read at. Each puts a device that no one created. */
	memset(der, 0x30, sizeof(der));
	n = txn_payload(p, "SEP-INJECTED");
	while (off + 8 + n + STORE_FRAG_HEADER_LEN + n < sizeof(der)) {
		struct store_framer f = {0, off, 1, false};
		struct store_buf b = {0};

		off += v2_entry(der + off, p, n);
		f.pos = off;
		if (store_frame_entry(&f, p, n, true, &b, NULL) == 0 && off + b.len < sizeof(der))
			memcpy(der + off, b.data, b.len);
		off += b.len;
		store_buf_free(&b);
	}

	fresh_dir(dir, sizeof(dir), "inject");
	CU_ASSERT_EQUAL_FATAL(store_open(&st, dir), 0);
	CU_ASSERT_EQUAL(put_device(st, "SEP-BEFORE", NULL), 0);
	cert_rec(&c, &r, serial, 1, der, sizeof(der));
	CU_ASSERT_EQUAL(store_submit_wait(st, recs, 1), 0);
	CU_ASSERT_EQUAL(put_device(st, "SEP-AFTER", NULL), 0);
	store_close(st);

	/* Intact, nothing is taken from inside the certificate. */
	CU_ASSERT_EQUAL_FATAL(store_open(&st, dir), 0);
	CU_ASSERT_FALSE(has_device(st, "SEP-INJECTED"));
	store_close(st);

	/* The certificate's entry damaged (in its payload, then in its
	 * header, so that the walk must find its way without it): start
	 * refuses, repair keeps what it can and takes nothing from the
	 * certificate's bytes. */
	CU_ASSERT_EQUAL_FATAL(read_file(dir, seg_name, &seg, &seg_len), 0);
	{
		long offs[8];
		struct store_walk w;
		struct store_walk_item it;
		int i = 0;

		store_walk_init(&w, seg, seg_len, STORE_HEADER_LEN, store_be32_get(seg + 24));
		while (i < 8 && store_walk_next(&w, &it) == 1)
			offs[i++] = (long)it.off;
		store_walk_deinit(&w);
		CU_ASSERT_FATAL(i >= 3);
		hdr_off = offs[1];
	}
	seg[hdr_off + STORE_FRAG_HEADER_LEN + 40] ^= 0x01;
	CU_ASSERT_EQUAL(write_file(dir, seg_name, seg, seg_len), 0);
	CU_ASSERT_EQUAL(store_open(&st, dir), CAPF_ECORRUPT);
	CU_ASSERT_EQUAL(store_repair(dir, NULL, NULL, &sum), 0);
	CU_ASSERT_EQUAL(sum.repaired, 1);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, dir), 0);
	CU_ASSERT(has_device(st, "SEP-BEFORE"));
	CU_ASSERT(has_device(st, "SEP-AFTER"));
	CU_ASSERT_FALSE(has_device(st, "SEP-INJECTED"));
	store_close(st);

	seg[hdr_off + STORE_FRAG_HEADER_LEN + 40] ^= 0x01;
	seg[hdr_off + 9] ^= 0x01; /* the fragment's length */
	CU_ASSERT_EQUAL(write_file(dir, seg_name, seg, seg_len), 0);
	CU_ASSERT_EQUAL(store_open(&st, dir), CAPF_ECORRUPT);
	CU_ASSERT_EQUAL(store_repair(dir, NULL, NULL, &sum), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, dir), 0);
	CU_ASSERT(has_device(st, "SEP-BEFORE"));
	CU_ASSERT_FALSE(has_device(st, "SEP-INJECTED"));
	store_close(st);
	free(seg);
	rm_tree(dir);
}

/* ---- linear work ------------------------------------------------------------------ */

static void test_linear_work(void)
{
	struct store_check_summary sum;
	struct store_audit_summary asum;
	struct store *st = NULL;
	const size_t mib = 1024 * 1024;
	uint8_t *seg = NULL, *big;
	size_t seg_len, len, i;
	uint64_t before;
	char dir[128];

	fresh_dir(dir, sizeof(dir), "linear");
	CU_ASSERT_EQUAL_FATAL(store_open(&st, dir), 0);
	CU_ASSERT_EQUAL(put_device(st, "SEP-ONE", NULL), 0);
	store_close(st);
	CU_ASSERT_EQUAL_FATAL(read_file(dir, seg_name, &seg, &seg_len), 0);

	/* 1 MiB after the good entry, made to cost the most: lengths that
	 * reach the end from every offset (what made format 2 quadratic). */
	len = seg_len + mib;
	big = malloc(len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	memcpy(big, seg, seg_len);
	for (i = seg_len; i < len; i++)
		big[i] = (i & 3) == 2 ? 0xf0 : 0x00;
	/* The second half: every offset a header the writer could make. */
	for (i = seg_len + mib / 2; i < len; i++)
		big[i] = 0x01;
	CU_ASSERT_EQUAL(write_file(dir, seg_name, big, len), 0);

	before = store_crc_bytes;
	CU_ASSERT_EQUAL(store_check(dir, NULL, NULL, &sum), 0);
	printf("\n    check: %llu bytes checksummed for %zu ",
	       (unsigned long long)(store_crc_bytes - before), len);
	/* Each walk checksums each byte once, and probes each offset of a
	 * block with a damaged header with at most 12 bytes: linear. Check
	 * and verify walk a file twice (one judges, one reports). */
	CU_ASSERT(store_crc_bytes - before <= 2 * 13 * (uint64_t)len);

	before = store_crc_bytes;
	CU_ASSERT_EQUAL_FATAL(store_open(&st, dir), 0);
	printf("open: %llu ", (unsigned long long)(store_crc_bytes - before));
	CU_ASSERT(store_crc_bytes - before <= 13 * (uint64_t)len);
	CU_ASSERT(has_device(st, "SEP-ONE"));
	store_close(st);

	/* The same bytes in the audit log, for audit verify. */
	free(seg);
	CU_ASSERT_EQUAL_FATAL(read_file(dir, aud_name, &seg, &seg_len), 0);
	free(big);
	len = seg_len + mib;
	big = malloc(len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	memcpy(big, seg, seg_len);
	for (i = seg_len; i < len; i++)
		big[i] = (i & 3) == 2 ? 0xf0 : 0x00;
	CU_ASSERT_EQUAL(write_file(dir, aud_name, big, len), 0);
	before = store_crc_bytes;
	(void)store_audit_verify(dir, NULL, 0, NULL, NULL, &asum);
	printf("verify: %llu ", (unsigned long long)(store_crc_bytes - before));
	CU_ASSERT(store_crc_bytes - before <= 2 * 13 * (uint64_t)len);
	free(seg);
	free(big);
	rm_tree(dir);
}

/* ---- format 2 ---------------------------------------------------------------- */

static void test_convert_v2(void)
{
	static const uint8_t zeros[STORE_HASH_LEN];
	struct store_audit_summary asum;
	struct store_stats stats;
	struct store *st = NULL;
	uint8_t seg[4096], aud[4096], p[300], *entry = NULL, hash[STORE_HASH_LEN];
	uint8_t prev[STORE_HASH_LEN];
	size_t sl = 0, al = 0, elen = 0, last_off = 0, i;
	char dir[128], path[256];
	struct stat sb;

	/* A format 2 directory: one segment, audit.log, an anchor. */
	memcpy(seg, "CAPFSTOR\0\0\0\2\0\0\0\0\0\0\0\0\0\0\0\1", 24);
	sl = 24;
	sl += v2_entry(seg + sl, p, txn_payload(p, "SEP-V2-A"));
	sl += v2_entry(seg + sl, p, txn_payload(p, "SEP-V2-B"));
	memcpy(aud, "CAPFAUDT\0\0\0\2\0\0\0\0\0\0\0\0\0\0\0\0", 24);
	al = 24;
	memcpy(prev, zeros, sizeof(prev));
	for (i = 1; i <= 3; i++) {
		struct store_audit_event ev = {
		    .kind = CAPF__AUDIT_KIND__AUDIT_ADMIN, .peer = "v2", .detail = "old"};

		CU_ASSERT_EQUAL_FATAL(
		    store_audit_encode(&ev, i, 1700000000, prev, &entry, &elen, hash), 0);
		last_off = al;
		al += v2_entry(aud + al, entry, elen);
		memcpy(prev, hash, sizeof(prev));
		free(entry);
	}
	{
		Capf__StoreTxn txn = CAPF__STORE_TXN__INIT;
		Capf__AuditAnchor an = CAPF__AUDIT_ANCHOR__INIT;

		an.seq = 3;
		an.offset = last_off;
		an.hash.data = hash;
		an.hash.len = STORE_HASH_LEN;
		txn.audit = &an;
		sl += v2_entry(seg + sl, p, capf__store_txn__pack(&txn, p));
	}
	/* Damaged, it is repaired in its own format, then converted. */
	fresh_dir(dir, sizeof(dir), "v2-damaged");
	seg[24 + 8 + 3] ^= 0x01;
	CU_ASSERT_EQUAL(write_file(dir, seg_name, seg, sl), 0);
	CU_ASSERT_EQUAL(write_file(dir, "audit.log", aud, al), 0);
	seg[24 + 8 + 3] ^= 0x01;
	CU_ASSERT_EQUAL(store_open(&st, dir), CAPF_ECORRUPT);
	CU_ASSERT_EQUAL(store_check(dir, NULL, NULL, NULL), CAPF_ECORRUPT);
	CU_ASSERT_EQUAL(store_repair(dir, NULL, NULL, NULL), 0);
	CU_ASSERT_EQUAL(store_check(dir, NULL, NULL, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, dir), 0);
	CU_ASSERT_FALSE(has_device(st, "SEP-V2-A"));
	CU_ASSERT(has_device(st, "SEP-V2-B"));
	store_close(st);
	CU_ASSERT_EQUAL(store_audit_verify(dir, NULL, 0, NULL, NULL, &asum), 0);
	CU_ASSERT_EQUAL(asum.entries, 3);
	rm_tree(dir);

	fresh_dir(dir, sizeof(dir), "v2");
	CU_ASSERT_EQUAL(write_file(dir, seg_name, seg, sl), 0);
	CU_ASSERT_EQUAL(write_file(dir, "audit.log", aud, al), 0);

	CU_ASSERT_EQUAL_FATAL(store_open(&st, dir), 0);
	CU_ASSERT(has_device(st, "SEP-V2-A"));
	CU_ASSERT(has_device(st, "SEP-V2-B"));
	store_get_stats(st, &stats);
	CU_ASSERT_EQUAL(stats.audit_seq, 3);
	CU_ASSERT_EQUAL(stats.segment_seq, 2);
	CU_ASSERT_EQUAL(stats.snapshot_seq, 2);
	CU_ASSERT_EQUAL(put_device(st, "SEP-V3", NULL), 0);
	{
		struct store_audit_event ev = {
		    .kind = CAPF__AUDIT_KIND__AUDIT_ADMIN, .peer = "v3", .detail = "new"};

		CU_ASSERT_EQUAL(store_audit(st, &ev), 0);
		CU_ASSERT_EQUAL(store_flush(st), 0);
	}
	store_close(st);
	/* The old files are kept; the chain goes on across the conversion. */
	snprintf(path, sizeof(path), "%s/log.0000000001.v2", dir);
	CU_ASSERT_EQUAL(stat(path, &sb), 0);
	snprintf(path, sizeof(path), "%s/audit.log.v2", dir);
	CU_ASSERT_EQUAL(stat(path, &sb), 0);
	CU_ASSERT_EQUAL(store_audit_verify(dir, NULL, 0, NULL, NULL, &asum), 0);
	CU_ASSERT_EQUAL(asum.entries, 4);
	CU_ASSERT_EQUAL(asum.first_seq, 1);
	CU_ASSERT_EQUAL(store_check(dir, NULL, NULL, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, dir), 0);
	CU_ASSERT(has_device(st, "SEP-V2-A"));
	CU_ASSERT(has_device(st, "SEP-V3"));
	store_close(st);
	rm_tree(dir);
}

static CU_TestInfo tests_recovery[] = {
    {"power loss, random cases", test_power_loss},
    {"audit groups not synced, one lost", test_audit_unsynced_groups},
    {"lazy groups lost with what follows them", test_lazy_groups},
    {"payload bytes are never an entry", test_payload_not_an_entry},
    {"recovery, check and verify in linear work", test_linear_work},
    {"format 2 converted", test_convert_v2},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"store recovery", NULL, NULL, NULL, NULL, tests_recovery},
    CU_SUITE_INFO_NULL,
};

int main(void)
{
	unsigned failures;

	snprintf(root, sizeof(root), "/tmp/capf-test-recovery-XXXXXX");
	if (!mkdtemp(root))
		return 1;
	memset(big_der, 'k', sizeof(big_der) - 1);
	big_der[sizeof(big_der) - 1] = '\0';
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_register_suites(suites);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures();
	CU_cleanup_registry();
	rm_tree(root);
	return (int)failures;
}
