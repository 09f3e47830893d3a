/*
 * The store: state directory lock, loading at open, the in-memory index,
 * the writer thread with group commit, the audit log's writing side, and
 * compaction.
 *
 * Threads: any thread may call store_submit(), store_audit() and the get
 * functions; one writer thread owns the segment and audit descriptors and
 * is the only thread that changes the index. Readers take idx_lock for
 * reading; the writer takes it for writing only while it applies a group
 * that is already durable, so it reads the index without the lock when it
 * checks preconditions or collects a snapshot. A compaction thread writes
 * snapshots from index entries it holds a reference on; entries are never
 * changed once made, only replaced, so it needs no lock.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Make uthash report allocation failures instead of ending the process. */
#define HASH_NONFATAL_OOM 1
#include <uthash.h>
#include <utlist.h>

#include "store/internal.h"

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

/*
 * One record in the index: the packed Device or Certificate, its key (the
 * name or serial) and a certificate's device name being slices of those
 * bytes, and its revision as the walker read it. The record is immutable
 * and reference-counted: the table holds one reference, a snapshot being
 * written holds another. Only the links of the per-device list change,
 * and only on the writer (or at load), while the entry is in the table.
 */
struct idx_entry {
	UT_hash_handle hh;
	struct idx_entry *dprev, *dnext; /* a certificate in its device's list */
	atomic_uint refs;
	uint64_t revision;
	uint32_t val_len;
	uint32_t key_off;
	uint32_t key_len;
	uint32_t dev_off;
	uint32_t dev_len;                 /* 0: a device, or a certificate of none */
	uint8_t val[];
};

/*
 * The certificates of one device (the per-device index): a list of the
 * certificate entries in the table whose device field names it. A bucket
 * exists only while its list is not empty.
 */
struct dev_certs {
	UT_hash_handle hh;
	struct idx_entry *head;
	size_t n;
	size_t name_len;
	char name[];
};

/* A record of a queued txn, with its index entry already built. */
struct pending_rec {
	struct idx_entry *e;
	enum store_rec_kind kind;
	bool create_only;
	bool must_exist;
	bool check_revision;
	uint64_t expect_revision;
	bool in_group;         /* added to the group's key set */
	UT_hash_handle ghh;    /* group key set: keys written by this group */
	/* In the key set: the last record of the group that wrote this key
	 * (NULL: this one), whose revision is the key's as of that point. */
	struct pending_rec *g_latest;
};

/* An audit event waiting to be written. */
struct audit_ev {
	struct audit_ev *next;
	Capf__AuditKind kind;
	int64_t time;
	int code;
	size_t serial_len;
	uint8_t serial[STORE_AUDIT_SERIAL_MAX];
	char *device;
	char *peer;
	char *detail;
	/* filled while a group is written */
	uint8_t *entry;
	size_t entry_len;
};

struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done;
	int result;
};

enum item_kind {
	ITEM_TXN,
	ITEM_AUDIT,
	ITEM_FLUSH,
	ITEM_COMPACT,
};

/* One queued item: a txn (its whole segment entry, ready to write), an
 * audit event, or a request for the writer. */
struct item {
	struct item *next;
	enum item_kind kind;
	uint8_t *entry;
	size_t entry_len;
	struct pending_rec *recs;
	size_t n_recs;
	struct audit_ev *audit;
	store_done_cb cb;
	void *arg;
	struct waiter *w;
	int result;
};

/* A snapshot being written by the compaction thread. */
struct compaction {
	struct store *st;
	uint64_t seq;
	struct idx_entry **entries; /* devices first, then certificates */
	size_t n;
	size_t n_dev;
	struct store_anchor anchor;
	struct waiter *w;
};

struct store {
	char *dir;
	struct store_options opt;
	int lock_fd;
	bool readonly;           /* store_dump(): read the files, change nothing */

	/* writer only, after open */
	int seg_fd;
	uint64_t seg_seq;
	uint64_t seg_size;       /* committed size of the current segment */
	int audit_fd;
	struct store_audit_chain chain; /* the last audit entry written */
	int failed;              /* sticky: a failed write could not be undone */
	bool fault_active;       /* writes are failing: reported, then rate-limited */
	double fault_since, fault_logged;
	uint64_t fault_count, fault_suppressed;
	char fault_text[300];
	struct audit_ev *retry_head, *retry_tail; /* audit events kept while writes fail */
	uint64_t retry_n;
	uint64_t audit_lost_unreported;
	uint64_t audit_lost_total;
	double rotate_failed_at;
	atomic_int fault;        /* test seam, see store_set_fault() */

	pthread_t writer;
	bool writer_started;
	pthread_mutex_t q_lock;  /* protects q_head, q_tail, closing */
	pthread_cond_t q_cond;
	struct item *q_head;
	struct item *q_tail;
	bool closing;
	bool kick;               /* wake the writer to retry what waits */

	pthread_mutex_t c_lock;  /* protects the compaction fields */
	pthread_t compactor;
	bool compactor_joinable;
	bool compacting;
	atomic_bool compact_abort;

	pthread_rwlock_t idx_lock; /* protects devices, certs, stats */
	struct idx_entry *devices;
	struct idx_entry *certs;
	struct dev_certs *dev_certs; /* device name -> its certificates */
	struct store_stats stats;
};

static void emit(struct store *st, enum store_severity sev, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void emit(struct store *st, enum store_severity sev, const char *fmt, ...)
{
	char msg[600];
	va_list ap;

	if (!st->opt.event_cb)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	st->opt.event_cb(sev, msg, st->opt.event_arg);
}

static double now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void waiter_init(struct waiter *w)
{
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->done = 0;
	w->result = 0;
}

static void waiter_done(struct waiter *w, int result)
{
	pthread_mutex_lock(&w->lock);
	w->result = result;
	w->done = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static int waiter_wait(struct waiter *w)
{
	int ret;

	pthread_mutex_lock(&w->lock);
	while (!w->done)
		pthread_cond_wait(&w->cond, &w->lock);
	ret = w->result;
	pthread_mutex_unlock(&w->lock);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	return ret;
}

/* ---- index ------------------------------------------------------------- */

static struct idx_entry *entry_new(const struct store_rec_view *v)
{
	struct idx_entry *e;

	if (v->val_len > UINT32_MAX)
		return NULL;
	e = malloc(sizeof(*e) + v->val_len);
	if (!e)
		return NULL;
	memset(&e->hh, 0, sizeof(e->hh));
	atomic_init(&e->refs, 1);
	e->dprev = e->dnext = NULL;
	e->revision = v->revision;
	e->val_len = (uint32_t)v->val_len;
	e->key_off = (uint32_t)(v->key - v->val);
	e->key_len = (uint32_t)v->key_len;
	e->dev_off = v->device_len ? (uint32_t)(v->device - v->val) : 0;
	e->dev_len = (uint32_t)v->device_len;
	memcpy(e->val, v->val, v->val_len);
	return e;
}

static void entry_unref(struct idx_entry *e)
{
	if (e && atomic_fetch_sub(&e->refs, 1) == 1)
		free(e);
}

static const uint8_t *entry_key(const struct idx_entry *e)
{
	return e->val + e->key_off;
}

static struct idx_entry **index_table(struct store *st, enum store_rec_kind kind)
{
	return kind == STORE_REC_DEVICE ? &st->devices : &st->certs;
}

static struct idx_entry *index_find(struct idx_entry *table, const void *key, size_t key_len)
{
	struct idx_entry *e = NULL;

	HASH_FIND(hh, table, key, key_len, e);
	return e;
}

static struct dev_certs *bucket_find(struct store *st, const void *name, size_t len)
{
	struct dev_certs *b = NULL;

	HASH_FIND(hh, st->dev_certs, name, len, b);
	return b;
}

/* The bucket of e's device, made (empty) if there is none yet; *made says
 * so. NULL: out of memory. */
static struct dev_certs *bucket_get(struct store *st, const struct idx_entry *e, bool *made)
{
	struct dev_certs *b = bucket_find(st, e->val + e->dev_off, e->dev_len);

	*made = false;
	if (b)
		return b;
	b = malloc(sizeof(*b) + e->dev_len);
	if (!b)
		return NULL;
	memset(b, 0, sizeof(*b));
	b->name_len = e->dev_len;
	memcpy(b->name, e->val + e->dev_off, e->dev_len);
	HASH_ADD_KEYPTR(hh, st->dev_certs, b->name, b->name_len, b);
	if (!b->hh.tbl) {
		free(b);
		return NULL;
	}
	*made = true;
	return b;
}

static void bucket_drop_if_empty(struct store *st, struct dev_certs *b)
{
	if (b && !b->head) {
		HASH_DELETE(hh, st->dev_certs, b);
		free(b);
	}
}

/* Takes a certificate entry that leaves the table out of its device's list. */
static void dev_unlink(struct store *st, struct idx_entry *e)
{
	struct dev_certs *b;

	if (e->dev_len == 0)
		return;
	b = bucket_find(st, e->val + e->dev_off, e->dev_len);
	if (!b)
		return;
	DL_DELETE2(b->head, e, dprev, dnext);
	e->dprev = e->dnext = NULL;
	b->n--;
	bucket_drop_if_empty(st, b);
}

/*
 * Puts e in the table of kind, replacing (and releasing) an entry of the
 * same key, and keeps the per-device certificate lists in step. Returns 0
 * (e now belongs to the table) or CAPF_ENOMEM (nothing changed; e still
 * belongs to the caller). Everything that can fail comes before the first
 * change that could not be undone.
 */
static int index_put(struct store *st, enum store_rec_kind kind, struct idx_entry *e)
{
	struct idx_entry **table = index_table(st, kind);
	struct idx_entry *old = index_find(*table, entry_key(e), e->key_len);
	struct dev_certs *b = NULL;
	bool made = false;

	if (kind == STORE_REC_CERT && e->dev_len > 0) {
		b = bucket_get(st, e, &made);
		if (!b)
			return CAPF_ENOMEM;
	}
	if (old)
		HASH_DELETE(hh, *table, old);
	HASH_ADD_KEYPTR(hh, *table, entry_key(e), e->key_len, e);
	if (!e->hh.tbl) {
		if (old)
			HASH_ADD_KEYPTR(hh, *table, entry_key(old), old->key_len, old);
		if (made)
			bucket_drop_if_empty(st, b);
		return CAPF_ENOMEM;
	}
	if (b) {
		/* Linked before the old one leaves, so a bucket they share
		 * never empties on the way. */
		DL_APPEND2(b->head, e, dprev, dnext);
		b->n++;
	}
	if (old && kind == STORE_REC_CERT)
		dev_unlink(st, old);
	entry_unref(old);
	return 0;
}

static void index_clear(struct idx_entry **table)
{
	struct idx_entry *e, *tmp;

	HASH_ITER(hh, *table, e, tmp) {
		HASH_DELETE(hh, *table, e);
		entry_unref(e);
	}
}

static void dev_certs_clear(struct store *st)
{
	struct dev_certs *b, *tmp;

	HASH_ITER(hh, st->dev_certs, b, tmp) {
		HASH_DELETE(hh, st->dev_certs, b);
		free(b);
	}
}

/* ---- loading --------------------------------------------------------------- */

struct load_ctx {
	struct store *st;
	struct store_anchor anchor;   /* the last one seen */
	const char *path;
	uint64_t snap_records;        /* snapshot: records seen */
	Capf__StoreSnapshotInfo *info;
	int error;                    /* text already set */
};

static int load_rec(const struct store_rec_view *v, void *arg)
{
	struct store *st = arg;
	struct idx_entry *e = entry_new(v);

	if (!e)
		return CAPF_ENOMEM;
	if (index_put(st, v->kind, e) < 0) {
		free(e);
		return CAPF_ENOMEM;
	}
	return 0;
}

static int load_txn(const uint8_t *p, size_t len, size_t off, void *arg)
{
	struct load_ctx *lc = arg;
	struct store_txn_meta meta;
	int ret;

	(void)off;
	ret = store_txn_walk(p, len, &meta, load_rec, lc->st);
	if (ret < 0)
		return ret;
	if (meta.anchor.seq)
		lc->anchor = meta.anchor;
	return 0;
}

static int load_snap_entry(const uint8_t *p, size_t len, size_t off, void *arg)
{
	struct load_ctx *lc = arg;
	struct store_txn_meta meta;
	int ret;

	if (!lc->info) {
		ret = store_snap_info_parse(p, len, &lc->info);
		if (ret < 0)
			return ret;
		if (ret == 0) {
			store_set_error("%s: the first entry (byte offset %zu) is not the snapshot's "
					"information",
					lc->path, off);
			lc->error = 1;
			return CAPF_ECORRUPT;
		}
		if (lc->info->audit)
			(void)store_anchor_from_pb(lc->info->audit, &lc->anchor);
		return 0;
	}
	if (len > 0 && p[0] == 0x08) {
		store_set_error("%s: a second information entry at byte offset %zu", lc->path, off);
		lc->error = 1;
		return CAPF_ECORRUPT;
	}
	ret = store_txn_walk(p, len, &meta, load_rec, lc->st);
	if (ret < 0)
		return ret;
	lc->snap_records += meta.n_records;
	return 0;
}

static void set_scan_error(const char *path, int ret, const struct store_scan_result *res)
{
	if (ret == CAPF_ENOMEM)
		store_set_error("out of memory loading %s", path);
	else if (res->bad_off == 0 && res->version != 0)
		store_set_error("%s: %s (version %u)", path, res->reason, (unsigned)res->version);
	else if (res->bad_off == 0)
		store_set_error("%s: %s", path, res->reason);
	else
		store_set_error("%s: damaged entry at byte offset %zu (%s) with good entries after "
				"it; refusing to drop them (see capfctl store check)",
				path, res->bad_off, res->reason);
}

static int load_snapshot(struct store *st, uint64_t seq, struct load_ctx *lc)
{
	struct store_scan_result res;
	struct store_file_map m;
	char name[64], *path = NULL;
	size_t len;
	int ret;

	store_seq_name(name, sizeof(name), STORE_SNAP_PREFIX, seq);
	path = store_path(st->dir, name);
	if (!path)
		return CAPF_ENOMEM;
	lc->path = path;
	ret = store_map_file(path, &m);
	if (ret < 0)
		goto out;
	ret = store_scan(m.data, m.len, STORE_FILE_SNAPSHOT, store_check_snap_payload, NULL,
			 load_snap_entry, lc, &res);
	len = m.len;
	store_unmap_file(&m);
	if (ret < 0) {
		if (!lc->error)
			set_scan_error(path, ret, &res);
		goto out;
	}
	/* A snapshot is renamed into place only once complete and synced:
	 * anything short of whole is damage, never a torn tail. */
	if (len == 0 || res.torn || !lc->info || res.seq != seq || lc->info->seq != seq ||
	    lc->snap_records != lc->info->records) {
		if (len == 0)
			store_set_error("%s: empty snapshot", path);
		else if (res.torn)
			store_set_error("%s: damaged entry at byte offset %zu (%s)", path,
					res.bad_off, res.reason);
		else if (!lc->info)
			store_set_error("%s: no snapshot information", path);
		else if (res.seq != seq || lc->info->seq != seq)
			store_set_error("%s: the snapshot says it is number %llu", path,
					(unsigned long long)lc->info->seq);
		else
			store_set_error("%s: holds %llu records, its information says %llu", path,
					(unsigned long long)lc->snap_records,
					(unsigned long long)lc->info->records);
		ret = CAPF_ECORRUPT;
		goto out;
	}
	st->stats.snapshot_seq = seq;
out:
	if (lc->info)
		capf__store_snapshot_info__free_unpacked(lc->info, NULL);
	lc->info = NULL;
	lc->path = NULL;
	free(path);
	return ret;
}

/* Replays one segment; the last one may end in a torn tail, dropped here. */
static int load_segment(struct store *st, uint64_t seq, bool last, struct load_ctx *lc)
{
	struct store_scan_result res;
	struct store_file_map m;
	char name[64], *path = NULL;
	size_t len;
	int ret, fd = -1;

	store_seq_name(name, sizeof(name), STORE_SEG_PREFIX, seq);
	path = store_path(st->dir, name);
	if (!path)
		return CAPF_ENOMEM;
	ret = store_map_file(path, &m);
	if (ret < 0)
		goto out;
	ret = store_scan(m.data, m.len, STORE_FILE_SEGMENT, store_check_txn_payload, NULL,
			 load_txn, lc, &res);
	len = m.len;
	store_unmap_file(&m);
	if (ret < 0) {
		set_scan_error(path, ret, &res);
		goto out;
	}
	if (len == 0 && last && st->readonly)
		goto out;
	if (len == 0 && last) {
		/* An empty last segment holds nothing to lose: give it its
		 * header again, the way a new one is made. */
		uint8_t hdr[STORE_HEADER_LEN];
		char err[300];

		store_header_encode(hdr, STORE_FILE_SEGMENT, seq);
		ret = store_create_file(st->dir, name, hdr, sizeof(hdr), &st->seg_fd, err,
					sizeof(err));
		if (ret < 0) {
			store_set_error("%s", err);
			goto out;
		}
		st->seg_seq = seq;
		st->seg_size = STORE_HEADER_LEN;
		goto out;
	}
	if (len == 0 || res.seq != seq) {
		store_set_error(len == 0 ? "%s: empty segment (no header)"
					   : "%s: the header names another segment",
				path);
		ret = CAPF_ECORRUPT;
		goto out;
	}
	if (res.torn && !last) {
		/* Only the segment being appended to can be cut by a crash. */
		store_set_error("%s: damaged entry at byte offset %zu (%s) in a finished segment",
				path, res.bad_off, res.reason);
		ret = CAPF_ECORRUPT;
		goto out;
	}
	if (!last)
		goto out;
	if (st->readonly) {
		st->stats.torn_bytes_dropped = res.torn ? len - res.valid_len : 0;
		goto out;
	}
	fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC);
	if (fd < 0) {
		store_set_error("cannot open %s: %s", path, strerror(errno));
		ret = store_err_from_errno(errno);
		goto out;
	}
	if (res.torn) {
		if (ftruncate(fd, (off_t)res.valid_len) < 0 || fsync(fd) < 0) {
			store_set_error("cannot drop the torn tail of %s at byte offset %zu: %s",
					path, res.valid_len, strerror(errno));
			ret = store_err_from_errno(errno);
			goto out;
		}
		st->stats.torn_bytes_dropped = len - res.valid_len;
		emit(st, STORE_SEV_WARNING,
		     "store: dropped a torn tail of %zu bytes at byte offset %zu of %s (%s): an "
		     "interrupted write",
		     len - res.valid_len, res.valid_len, path, res.reason);
	}
	st->seg_fd = fd;
	fd = -1;
	st->seg_seq = seq;
	st->seg_size = res.valid_len;
out:
	if (fd >= 0)
		close(fd);
	free(path);
	return ret;
}

/* Removes what a snapshot made obsolete and what a crash left half made. */
static void remove_obsolete(struct store *st, const struct store_dir_list *l, uint64_t snap)
{
	char name[64], *path;
	size_t i;
	int removed = 0;

	for (i = 0; i < l->n_snaps; i++) {
		if (l->snaps[i] >= snap)
			continue;
		store_seq_name(name, sizeof(name), STORE_SNAP_PREFIX, l->snaps[i]);
		if ((path = store_path(st->dir, name))) {
			removed += unlink(path) == 0;
			free(path);
		}
	}
	for (i = 0; i < l->n_segs; i++) {
		if (l->segs[i] >= snap)
			continue;
		store_seq_name(name, sizeof(name), STORE_SEG_PREFIX, l->segs[i]);
		if ((path = store_path(st->dir, name))) {
			removed += unlink(path) == 0;
			free(path);
		}
	}
	if (removed)
		(void)store_sync_dir(st->dir);
}

/* Removes the temporary files that a crash left half made: a new
 * segment, a snapshot or an audit log being created. */
static void remove_tmp_files(struct store *st)
{
	size_t tl = strlen(STORE_TMP_SUFFIX);
	struct dirent *de;
	DIR *d;
	int removed = 0;

	d = opendir(st->dir);
	if (!d)
		return;
	while ((de = readdir(d)) != NULL) {
		size_t nl = strlen(de->d_name);
		char *path;

		if (nl <= tl || strcmp(de->d_name + nl - tl, STORE_TMP_SUFFIX) != 0)
			continue;
		if (strncmp(de->d_name, STORE_SEG_PREFIX, strlen(STORE_SEG_PREFIX)) != 0 &&
		    strncmp(de->d_name, STORE_SNAP_PREFIX, strlen(STORE_SNAP_PREFIX)) != 0 &&
		    strncmp(de->d_name, STORE_AUDIT_NAME, strlen(STORE_AUDIT_NAME)) != 0)
			continue;
		if ((path = store_path(st->dir, de->d_name))) {
			removed += unlink(path) == 0;
			free(path);
		}
	}
	closedir(d);
	if (removed)
		(void)store_sync_dir(st->dir);
}

/*
 * A records.log of the first format (version 1, one file) becomes the
 * first segment: its good entries are copied behind a segment header, and
 * the old file is kept as records.log.v1.
 */
static int migrate_legacy(struct store *st)
{
	struct store_scan_result res;
	struct store_file_map m = { 0 };
	char *path = NULL, *bak = NULL, name[64], err[300];
	uint8_t *buf = NULL;
	size_t body;
	int ret;

	path = store_path(st->dir, STORE_LEGACY_NAME);
	bak = store_path(st->dir, STORE_LEGACY_NAME ".v1");
	if (!path || !bak) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	ret = store_map_file(path, &m);
	if (ret < 0)
		goto out;
	ret = store_scan(m.data, m.len, STORE_FILE_LEGACY, store_check_txn_payload, NULL, NULL,
			 NULL, &res);
	if (ret < 0) {
		set_scan_error(path, ret, &res);
		goto out;
	}
	body = res.valid_len > STORE_LEGACY_HEADER_LEN ? res.valid_len - STORE_LEGACY_HEADER_LEN
						       : 0;
	buf = malloc(STORE_HEADER_LEN + body);
	if (!buf) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	store_header_encode(buf, STORE_FILE_SEGMENT, 1);
	if (body)
		memcpy(buf + STORE_HEADER_LEN, m.data + STORE_LEGACY_HEADER_LEN, body);
	store_seq_name(name, sizeof(name), STORE_SEG_PREFIX, 1);
	ret = store_create_file(st->dir, name, buf, STORE_HEADER_LEN + body, NULL, err,
				sizeof(err));
	if (ret < 0) {
		store_set_error("%s", err);
		goto out;
	}
	if (rename(path, bak) < 0 || store_sync_dir(st->dir) < 0) {
		store_set_error("cannot rename %s to %s: %s", path, bak, strerror(errno));
		ret = store_err_from_errno(errno);
		goto out;
	}
	emit(st, STORE_SEV_WARNING,
	     "store: converted %s (%zu entries) to the segment format; the original is %s",
	     path, res.entries, bak);
out:
	store_unmap_file(&m);
	free(buf);
	free(path);
	free(bak);
	return ret;
}

static struct audit_ev *audit_ev_new(const struct store_audit_event *ev, int64_t t);
static void audit_ev_free(struct audit_ev *a);

static void retry_push(struct store *st, struct audit_ev *a)
{
	a->next = NULL;
	if (st->retry_tail)
		st->retry_tail->next = a;
	else
		st->retry_head = a;
	st->retry_tail = a;
	st->retry_n++;
}

/*
 * Opens audit.log and finds where its chain ends. Only the end is read:
 * the entry the anchor names, which must be there as recorded, and what
 * follows it (entries synced before a crash stopped the segment write).
 */
static int open_audit(struct store *st, const struct store_anchor *anchor)
{
	struct store_file_map m = { 0 };
	char *path = NULL, err[300];
	const char *reason;
	uint8_t hdr[STORE_HEADER_LEN];
	size_t off;
	int ret = 0;

	path = store_path(st->dir, STORE_AUDIT_NAME);
	if (!path)
		return CAPF_ENOMEM;
	ret = store_map_file(path, &m);
	if (ret < 0 && ret != CAPF_ENOENT)
		goto out;
	if (ret == CAPF_ENOENT || m.len == 0) {
		store_header_encode(hdr, STORE_FILE_AUDIT, 0);
		ret = store_create_file(st->dir, STORE_AUDIT_NAME, hdr, sizeof(hdr), &st->audit_fd,
					err, sizeof(err));
		if (ret < 0) {
			store_set_error("%s", err);
			goto out;
		}
		memset(&st->chain, 0, sizeof(st->chain));
		st->chain.end = STORE_HEADER_LEN;
		if (anchor->seq) {
			/* The chain goes on from what the store recorded, and the
			 * new file says so first. */
			struct store_audit_event ev = { 0 };
			char detail[200];
			struct audit_ev *a;

			st->chain.seq = anchor->seq;
			memcpy(st->chain.hash, anchor->hash, STORE_HASH_LEN);
			snprintf(detail, sizeof(detail),
				 "continues the chain after seq %llu: audit.log was missing at start",
				 (unsigned long long)anchor->seq);
			ev.kind = CAPF__AUDIT_KIND__AUDIT_STORE;
			ev.peer = "capfd";
			ev.detail = detail;
			a = audit_ev_new(&ev, (int64_t)time(NULL));
			if (!a) {
				ret = CAPF_ENOMEM;
				goto out;
			}
			retry_push(st, a);
			emit(st, STORE_SEV_WARNING,
			     "store: %s was missing; a new audit log continues the chain after "
			     "seq %llu",
			     path, (unsigned long long)anchor->seq);
		}
		ret = 0;
		goto out;
	}

	{
		uint64_t seq;
		uint32_t version;

		ret = store_header_check(m.data, m.len, STORE_FILE_AUDIT, &seq, &version, &reason);
		if (ret < 0) {
			store_set_error("%s: %s", path, reason);
			goto out;
		}
	}
	memset(&st->chain, 0, sizeof(st->chain));
	st->chain.end = STORE_HEADER_LEN;
	off = STORE_HEADER_LEN;
	if (anchor->seq) {
		size_t elen = 0;
		int c;

		c = anchor->offset < m.len ? store_entry_at(m.data, m.len, (size_t)anchor->offset,
							    store_check_audit_payload, NULL, &elen,
							    &reason)
					   : 0;
		if (c < 0) {
			ret = c;
			goto out;
		}
		if (c == 1) {
			struct store_audit_chain ch = { 0 };

			ret = store_audit_link(m.data + anchor->offset + STORE_ENTRY_HEADER_LEN,
					       elen - STORE_ENTRY_HEADER_LEN, anchor->offset, &ch,
					       NULL);
			if (ret < 0)
				goto out;
			if (ret != STORE_AUDIT_LINK_OK || ch.seq != anchor->seq ||
			    memcmp(ch.hash, anchor->hash, STORE_HASH_LEN) != 0)
				c = 0;
			else
				st->chain = ch;
		}
		if (c == 0) {
			store_set_error("%s: the entry at byte offset %llu is not audit entry %llu as "
					"the store recorded it (the log was truncated, replaced or "
					"edited); see capfctl audit verify and capfctl store repair",
					path, (unsigned long long)anchor->offset,
					(unsigned long long)anchor->seq);
			ret = CAPF_ECORRUPT;
			goto out;
		}
		off = (size_t)st->chain.end;
	}
	while (off < m.len) {
		size_t elen = 0;
		int c = store_entry_at(m.data, m.len, off, store_check_audit_payload, NULL, &elen,
				       &reason);
		long long next;

		if (c < 0) {
			ret = c;
			goto out;
		}
		if (c == 1) {
			ret = store_audit_link(m.data + off + STORE_ENTRY_HEADER_LEN,
					       elen - STORE_ENTRY_HEADER_LEN, off, &st->chain, NULL);
			if (ret < 0)
				goto out;
			if (ret != STORE_AUDIT_LINK_OK) {
				store_set_error("%s: entry at byte offset %zu: %s; see capfctl audit "
						"verify and capfctl store repair",
						path, off, store_audit_link_text(ret));
				ret = CAPF_ECORRUPT;
				goto out;
			}
			off += elen;
			continue;
		}
		next = store_next_good(m.data, m.len, off, store_check_audit_payload, NULL);
		if (next < 0) {
			ret = (int)next;
			goto out;
		}
		if ((size_t)next < m.len) {
			store_set_error("%s: damaged entry at byte offset %zu (%s) with good entries "
					"after it; see capfctl store check",
					path, off, reason);
			ret = CAPF_ECORRUPT;
			goto out;
		}
		st->stats.audit_torn_bytes_dropped = m.len - off;
		emit(st, STORE_SEV_WARNING,
		     "store: dropped a torn tail of %zu bytes at byte offset %zu of %s (%s): an "
		     "interrupted write",
		     m.len - off, off, path, reason);
		break;
	}
	st->audit_fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC);
	if (st->audit_fd < 0) {
		store_set_error("cannot open %s: %s", path, strerror(errno));
		ret = store_err_from_errno(errno);
		goto out;
	}
	if (off < m.len && (ftruncate(st->audit_fd, (off_t)off) < 0 || fsync(st->audit_fd) < 0)) {
		store_set_error("cannot drop the torn tail of %s: %s", path, strerror(errno));
		ret = store_err_from_errno(errno);
		goto out;
	}
	ret = 0;
out:
	store_unmap_file(&m);
	free(path);
	return ret;
}

static int load_all(struct store *st)
{
	struct store_dir_list l;
	struct load_ctx lc;
	uint64_t snap = 0, first;
	size_t i, start = 0;
	char name[64], err[300];
	int ret;

	memset(&lc, 0, sizeof(lc));
	lc.st = st;
	if (!st->readonly)
		remove_tmp_files(st);
	ret = store_dir_list(st->dir, &l);
	if (ret < 0)
		return ret;
	if (l.legacy && l.n_segs == 0 && l.n_snaps == 0 && st->readonly) {
		store_dir_list_free(&l);
		store_set_error("%s holds a store of format 1: start capfd once to convert it",
				st->dir);
		return CAPF_ENOTSUP;
	}
	if (l.legacy && l.n_segs == 0 && l.n_snaps == 0) {
		store_dir_list_free(&l);
		ret = migrate_legacy(st);
		if (ret < 0)
			return ret;
		ret = store_dir_list(st->dir, &l);
		if (ret < 0)
			return ret;
	}
	if (l.n_snaps > 0) {
		snap = l.snaps[l.n_snaps - 1];
		ret = load_snapshot(st, snap, &lc);
		if (ret < 0)
			goto out;
		while (start < l.n_segs && l.segs[start] < snap)
			start++;
	}
	/* The segments after the snapshot must all be there, in a row. */
	first = snap ? snap : (start < l.n_segs ? l.segs[start] : 1);
	for (i = start; i < l.n_segs; i++) {
		if (l.segs[i] != first + (i - start)) {
			store_set_error("%s: segment %s" STORE_SEQ_FMT " is missing", st->dir,
					STORE_SEG_PREFIX, first + (i - start));
			ret = CAPF_ECORRUPT;
			goto out;
		}
	}
	if (start == l.n_segs && snap) {
		store_set_error("%s: segment %s" STORE_SEQ_FMT " is missing", st->dir,
				STORE_SEG_PREFIX, snap);
		ret = CAPF_ECORRUPT;
		goto out;
	}
	for (i = start; i < l.n_segs; i++) {
		ret = load_segment(st, l.segs[i], i + 1 == l.n_segs, &lc);
		if (ret < 0)
			goto out;
	}
	if (st->readonly) {
		ret = 0;
		goto out;
	}
	if (start == l.n_segs) {
		uint8_t hdr[STORE_HEADER_LEN];

		store_header_encode(hdr, STORE_FILE_SEGMENT, 1);
		store_seq_name(name, sizeof(name), STORE_SEG_PREFIX, 1);
		ret = store_create_file(st->dir, name, hdr, sizeof(hdr), &st->seg_fd, err,
					sizeof(err));
		if (ret < 0) {
			store_set_error("%s", err);
			goto out;
		}
		st->seg_seq = 1;
		st->seg_size = STORE_HEADER_LEN;
	}
	if (snap)
		remove_obsolete(st, &l, snap);
	ret = open_audit(st, &lc.anchor);
out:
	store_dir_list_free(&l);
	return ret;
}

/* ---- queued items ---------------------------------------------------------- */

static void audit_ev_free(struct audit_ev *a)
{
	if (!a)
		return;
	free(a->device);
	free(a->peer);
	free(a->detail);
	free(a->entry);
	free(a);
}

static char *dup_cut(const char *s)
{
	size_t n = s ? strnlen(s, STORE_AUDIT_TEXT_MAX) : 0;
	char *d = malloc(n + 1);

	if (d) {
		if (n)
			memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static struct audit_ev *audit_ev_new(const struct store_audit_event *ev, int64_t t)
{
	struct audit_ev *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->kind = ev->kind;
	a->time = t;
	a->code = ev->code;
	if (ev->serial && ev->serial_len) {
		a->serial_len = ev->serial_len > sizeof(a->serial) ? sizeof(a->serial)
								    : ev->serial_len;
		memcpy(a->serial, ev->serial, a->serial_len);
	}
	a->device = dup_cut(ev->device);
	a->peer = dup_cut(ev->peer);
	a->detail = dup_cut(ev->detail);
	if (!a->device || !a->peer || !a->detail) {
		audit_ev_free(a);
		return NULL;
	}
	return a;
}

static void item_free(struct item *it)
{
	size_t i;

	if (!it)
		return;
	if (it->recs) {
		for (i = 0; i < it->n_recs; i++)
			free(it->recs[i].e);
		free(it->recs);
	}
	audit_ev_free(it->audit);
	free(it->entry);
	free(it);
}

/*
 * A record the writer can take: a body with its key, and a revision that
 * agrees with its precondition. A compare-and-set writes the revision
 * after the one it expects; a creation writes revision 1. Checking this
 * here, where the caller still is, makes a writer that forgot to bump the
 * revision fail at once instead of leaving two different records under
 * one revision.
 */
static int record_ok(const Capf__StoreRecord *r)
{
	uint64_t rev;

	if (!r)
		return 0;
	switch (r->body_case) {
	case CAPF__STORE_RECORD__BODY_DEVICE:
		if (!r->device || !r->device->name || r->device->name[0] == '\0')
			return 0;
		rev = r->device->revision;
		break;
	case CAPF__STORE_RECORD__BODY_CERT:
		if (!r->cert || r->cert->serial.len == 0 || !r->cert->serial.data)
			return 0;
		rev = r->cert->revision;
		break;
	default:
		return 0;
	}
	if (r->check_revision &&
	    (r->create_only || r->expect_revision == UINT64_MAX || rev != r->expect_revision + 1))
		return 0;
	if (r->create_only && rev != 1)
		return 0;
	return 1;
}

/* Builds the pending records from the txn's own packed bytes, so that the
 * index holds exactly what the segment holds. */
struct build_ctx {
	struct item *it;
	size_t i;
};

static int build_rec(const struct store_rec_view *v, void *arg)
{
	struct build_ctx *bc = arg;
	struct pending_rec *pr = &bc->it->recs[bc->i];

	pr->e = entry_new(v);
	if (!pr->e)
		return CAPF_ENOMEM;
	pr->kind = v->kind;
	pr->create_only = v->create_only;
	pr->must_exist = v->must_exist;
	pr->check_revision = v->check_revision;
	pr->expect_revision = v->expect_revision;
	bc->i++;
	return 0;
}

static int enqueue(struct store *st, struct item *it)
{
	int ret = 0;

	pthread_mutex_lock(&st->q_lock);
	if (st->closing) {
		ret = CAPF_ESHUTDOWN;
	} else {
		if (st->q_tail)
			st->q_tail->next = it;
		else
			st->q_head = it;
		st->q_tail = it;
		pthread_cond_signal(&st->q_cond);
	}
	pthread_mutex_unlock(&st->q_lock);
	return ret;
}

int store_submit_audit(struct store *st, Capf__StoreRecord *const *recs, size_t n,
		       const struct store_audit_event *ev, store_done_cb cb, void *arg)
{
	Capf__StoreTxn txn = CAPF__STORE_TXN__INIT;
	struct build_ctx bc = { 0 };
	struct item *it = NULL;
	uint8_t *payload;
	size_t i, plen;
	int ret = 0;

	if (!st || !recs || n == 0) {
		ret = CAPF_EINVAL;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (!record_ok(recs[i])) {
			ret = CAPF_EINVAL;
			goto out;
		}
	}
	it = calloc(1, sizeof(*it));
	if (!it || !(it->recs = calloc(n, sizeof(*it->recs)))) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	it->kind = ITEM_TXN;
	it->n_recs = n;
	it->cb = cb;
	it->arg = arg;
	if (ev) {
		it->audit = audit_ev_new(ev, (int64_t)time(NULL));
		if (!it->audit) {
			ret = CAPF_ENOMEM;
			goto out;
		}
	}

	/* The generated API takes a non-const array; packing only reads it. */
	txn.n_records = n;
	txn.records = (Capf__StoreRecord **)recs;
	txn.time = (int64_t)time(NULL);
	plen = capf__store_txn__get_packed_size(&txn);
	if (plen == 0 || plen > STORE_ENTRY_MAX) {
		ret = CAPF_EINVAL;
		goto out;
	}
	it->entry_len = STORE_ENTRY_HEADER_LEN + plen;
	it->entry = malloc(it->entry_len);
	if (!it->entry) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	payload = it->entry + STORE_ENTRY_HEADER_LEN;
	capf__store_txn__pack(&txn, payload);
	store_entry_header_encode(it->entry, payload, (uint32_t)plen);
	bc.it = it;
	ret = store_txn_parse(payload, plen, NULL, build_rec, &bc);
	if (ret < 0) {
		/* What protobuf-c packed from valid records always parses; a
		 * record the walker refuses (a NUL inside a name) is invalid. */
		ret = ret == CAPF_ENOMEM ? ret : CAPF_EINVAL;
		goto out;
	}
	ret = enqueue(st, it);
	if (ret == 0)
		it = NULL;
out:
	item_free(it);
	return ret;
}

int store_submit(struct store *st, Capf__StoreRecord *const *recs, size_t n, store_done_cb cb,
		 void *arg)
{
	return store_submit_audit(st, recs, n, NULL, cb, arg);
}

static void submit_waiter_done(int result, void *arg)
{
	waiter_done(arg, result);
}

int store_submit_wait(struct store *st, Capf__StoreRecord *const *recs, size_t n)
{
	struct waiter w;
	int ret;

	waiter_init(&w);
	ret = store_submit(st, recs, n, submit_waiter_done, &w);
	if (ret < 0) {
		waiter_done(&w, ret);
		(void)waiter_wait(&w);
		return ret;
	}
	return waiter_wait(&w);
}

int store_audit(struct store *st, const struct store_audit_event *ev)
{
	struct item *it = NULL;
	int ret;

	if (!st || !ev || ev->kind == CAPF__AUDIT_KIND__AUDIT_UNKNOWN)
		return CAPF_EINVAL;
	it = calloc(1, sizeof(*it));
	if (!it)
		return CAPF_ENOMEM;
	it->kind = ITEM_AUDIT;
	it->audit = audit_ev_new(ev, (int64_t)time(NULL));
	if (!it->audit) {
		item_free(it);
		return CAPF_ENOMEM;
	}
	ret = enqueue(st, it);
	if (ret < 0)
		item_free(it);
	return ret;
}

/* Queues a request for the writer and waits for its answer. */
static int request_wait(struct store *st, enum item_kind kind)
{
	struct waiter w;
	struct item *it;
	int ret;

	if (!st)
		return CAPF_EINVAL;
	it = calloc(1, sizeof(*it));
	if (!it)
		return CAPF_ENOMEM;
	waiter_init(&w);
	it->kind = kind;
	it->w = &w;
	ret = enqueue(st, it);
	if (ret < 0) {
		free(it);
		waiter_done(&w, ret);
	}
	return waiter_wait(&w);
}

int store_flush(struct store *st)
{
	return request_wait(st, ITEM_FLUSH);
}

int store_compact(struct store *st)
{
	return request_wait(st, ITEM_COMPACT);
}

/* ---- the writer ------------------------------------------------------------ */

/* Removes the keys that a txn added to the group key sets. */
static void group_keys_rollback(struct pending_rec **gsets, struct item *it)
{
	size_t i;

	for (i = 0; i < it->n_recs; i++) {
		struct pending_rec *pr = &it->recs[i];

		if (pr->in_group) {
			HASH_DELETE(ghh, gsets[pr->kind], pr);
			pr->in_group = false;
		}
	}
}

/*
 * The revision that the key of record i of it has at that point of the
 * group: that of the last earlier record of the txn with the key, else of
 * the last surviving txn of the group that wrote it (gsets), else of the
 * index. Records only ever add or replace, so a key that none of them has
 * is absent: returns false.
 */
static bool current_revision(struct store *st, struct pending_rec **gsets, struct item *it,
			     size_t i, uint64_t *rev)
{
	const struct pending_rec *pr = &it->recs[i];
	const uint8_t *key = entry_key(pr->e);
	struct pending_rec *g = NULL;
	struct idx_entry *e;
	size_t j;

	for (j = i; j-- > 0;) {
		const struct pending_rec *q = &it->recs[j];

		if (q->kind == pr->kind && q->e->key_len == pr->e->key_len &&
		    memcmp(entry_key(q->e), key, pr->e->key_len) == 0) {
			*rev = q->e->revision;
			return true;
		}
	}
	HASH_FIND(ghh, gsets[pr->kind], key, pr->e->key_len, g);
	if (g) {
		*rev = (g->g_latest ? g->g_latest : g)->e->revision;
		return true;
	}
	e = index_find(*index_table(st, pr->kind), key, pr->e->key_len);
	if (e) {
		*rev = e->revision;
		return true;
	}
	return false;
}

/*
 * Checks the preconditions of one txn (create_only, must_exist,
 * check_revision) against the state that the index, the earlier surviving
 * txns of this group and the earlier records of this txn give. Returns 0
 * (the txn's keys then join the group sets, its records becoming the
 * latest of their keys), CAPF_EEXIST, CAPF_ENOENT, CAPF_ESTALE or
 * CAPF_ENOMEM; a txn that fails leaves the sets as they were.
 */
static int check_txn(struct store *st, struct pending_rec **gsets, struct item *it)
{
	size_t i;

	for (i = 0; i < it->n_recs; i++) {
		struct pending_rec *pr = &it->recs[i];
		uint64_t rev = 0;
		bool exists;

		if (!pr->create_only && !pr->must_exist && !pr->check_revision)
			continue;
		exists = current_revision(st, gsets, it, i, &rev);
		if (pr->create_only && exists)
			return CAPF_EEXIST;
		if ((pr->must_exist || pr->check_revision) && !exists)
			return CAPF_ENOENT;
		if (pr->check_revision && rev != pr->expect_revision)
			return CAPF_ESTALE;
	}

	for (i = 0; i < it->n_recs; i++) {
		struct pending_rec *pr = &it->recs[i], *g = NULL;

		HASH_FIND(ghh, gsets[pr->kind], entry_key(pr->e), pr->e->key_len, g);
		if (g)
			continue;
		pr->g_latest = NULL;
		HASH_ADD_KEYPTR(ghh, gsets[pr->kind], entry_key(pr->e), pr->e->key_len, pr);
		if (!pr->ghh.tbl) {
			group_keys_rollback(gsets, it);
			return CAPF_ENOMEM;
		}
		pr->in_group = true;
	}
	/* Nothing can fail from here, so no latest pointer needs undoing. */
	for (i = 0; i < it->n_recs; i++) {
		struct pending_rec *pr = &it->recs[i], *g = NULL;

		HASH_FIND(ghh, gsets[pr->kind], entry_key(pr->e), pr->e->key_len, g);
		if (g && g != pr)
			g->g_latest = pr;
	}
	return 0;
}

/*
 * Undoes a failed group write: a partial entry must never stay in a file,
 * and the truncation itself must be durable, or a crash could bring back
 * what a caller was told failed. If that fails too, the ends of the files
 * can no longer be trusted: the store refuses writes until a truncation
 * succeeds (each later group tries again first).
 */
static int truncate_back(struct store *st)
{
	if (ftruncate(st->seg_fd, (off_t)st->seg_size) < 0 || fdatasync(st->seg_fd) < 0 ||
	    ftruncate(st->audit_fd, (off_t)st->chain.end) < 0 || fdatasync(st->audit_fd) < 0) {
		st->failed = CAPF_EIO;
		return CAPF_EIO;
	}
	st->failed = 0;
	return 0;
}

/* A group's audit entries, encoded in chain order. */
struct audit_batch {
	struct audit_ev **evs;
	size_t n;
	struct store_audit_chain chain; /* after the batch */
	uint8_t *anchor_entry;          /* the segment entry recording the chain's end */
	size_t anchor_len;
};

static int encode_audit(struct store *st, struct audit_batch *b)
{
	Capf__StoreTxn txn = CAPF__STORE_TXN__INIT;
	Capf__AuditAnchor an = CAPF__AUDIT_ANCHOR__INIT;
	size_t i, plen;
	int ret;

	b->chain = st->chain;
	for (i = 0; i < b->n; i++) {
		struct audit_ev *a = b->evs[i];
		struct store_audit_event ev = {
			.kind = a->kind, .device = a->device, .peer = a->peer,
			.serial = a->serial, .serial_len = a->serial_len, .code = a->code,
			.detail = a->detail,
		};
		uint8_t hash[STORE_HASH_LEN];

		free(a->entry);
		a->entry = NULL;
		ret = store_audit_encode(&ev, b->chain.seq + 1, a->time, b->chain.hash, &a->entry,
					 &a->entry_len, hash);
		if (ret < 0)
			return ret;
		b->chain.seq++;
		b->chain.offset = b->chain.end;
		b->chain.end += a->entry_len;
		memcpy(b->chain.hash, hash, STORE_HASH_LEN);
	}
	if (b->n == 0)
		return 0;
	an.seq = b->chain.seq;
	an.offset = b->chain.offset;
	an.hash.data = b->chain.hash;
	an.hash.len = STORE_HASH_LEN;
	txn.time = (int64_t)time(NULL);
	txn.audit = &an;
	plen = capf__store_txn__get_packed_size(&txn);
	b->anchor_entry = malloc(STORE_ENTRY_HEADER_LEN + plen);
	if (!b->anchor_entry)
		return CAPF_ENOMEM;
	capf__store_txn__pack(&txn, b->anchor_entry + STORE_ENTRY_HEADER_LEN);
	store_entry_header_encode(b->anchor_entry, b->anchor_entry + STORE_ENTRY_HEADER_LEN,
				  (uint32_t)plen);
	b->anchor_len = STORE_ENTRY_HEADER_LEN + plen;
	return 0;
}

/*
 * The test seam: the write stops part-way, half an entry reaching the
 * file, then the disk reports the fault.
 */
static int inject_fault(struct store *st, int fault, int fd, const uint8_t *entry, size_t len,
			const char *what)
{
	ssize_t w;

	if (entry && len > 1) {
		/* Whether this write works does not matter: the simulated
		 * fault is reported either way. */
		w = write(fd, entry, len / 2);
		(void)w;
	}
	snprintf(st->fault_text, sizeof(st->fault_text), "write to %s/%s failed: %s (injected)",
		 st->dir, what, strerror(-fault));
	return fault;
}

/*
 * Writes a group: audit entries first, synced, then the txn entries and the
 * anchor, synced. An audit entry is thus durable no later than what it
 * describes; a crash between the two syncs leaves audit entries that the
 * segment does not anchor yet, which the next start reads and keeps.
 */
static int write_group(struct store *st, struct item *head, size_t n_ok, struct audit_batch *b,
		       int fault)
{
	struct iovec *iov = NULL;
	struct item *it;
	size_t cnt = 0, i, nio = (n_ok > b->n ? n_ok : b->n) + 1;
	char segname[64];
	int ret = 0;

	store_seq_name(segname, sizeof(segname), STORE_SEG_PREFIX, st->seg_seq);
	iov = malloc(nio * sizeof(*iov));
	if (!iov) {
		snprintf(st->fault_text, sizeof(st->fault_text), "out of memory");
		return CAPF_ENOMEM;
	}
	if (b->n > 0) {
		if (fault) {
			ret = inject_fault(st, fault, st->audit_fd, b->evs[0]->entry,
					   b->evs[0]->entry_len, STORE_AUDIT_NAME);
			goto fail;
		}
		for (i = 0; i < b->n; i++) {
			iov[i].iov_base = b->evs[i]->entry;
			iov[i].iov_len = b->evs[i]->entry_len;
		}
		ret = store_writev_full(st->audit_fd, iov, b->n);
		if (ret == 0 && fdatasync(st->audit_fd) < 0)
			ret = store_write_err(errno);
		if (ret < 0) {
			snprintf(st->fault_text, sizeof(st->fault_text), "write to %s/%s failed: %s",
				 st->dir, STORE_AUDIT_NAME, strerror(-ret));
			goto fail;
		}
	}
	for (it = head; it; it = it->next) {
		if (it->kind != ITEM_TXN || it->result != 0)
			continue;
		iov[cnt].iov_base = it->entry;
		iov[cnt].iov_len = it->entry_len;
		cnt++;
	}
	if (b->anchor_entry) {
		iov[cnt].iov_base = b->anchor_entry;
		iov[cnt].iov_len = b->anchor_len;
		cnt++;
	}
	if (cnt == 0)
		goto out;
	if (fault) {
		ret = inject_fault(st, fault, st->seg_fd, iov[0].iov_base, iov[0].iov_len, segname);
		goto fail;
	}
	ret = store_writev_full(st->seg_fd, iov, cnt);
	if (ret == 0 && fdatasync(st->seg_fd) < 0)
		ret = store_write_err(errno);
	if (ret < 0) {
		snprintf(st->fault_text, sizeof(st->fault_text), "write to %s/%s failed: %s",
			 st->dir, segname, strerror(-ret));
		goto fail;
	}
	goto out;
fail:
	(void)truncate_back(st);
out:
	free(iov);
	return ret;
}

/* Applies the written txns to the index. */
static void apply_group(struct store *st, struct item *head)
{
	struct item *it;
	size_t i;

	for (it = head; it; it = it->next) {
		if (it->kind != ITEM_TXN || it->result != 0)
			continue;
		for (i = 0; i < it->n_recs; i++) {
			struct pending_rec *pr = &it->recs[i];

			if (index_put(st, pr->kind, pr->e) < 0) {
				/* The txn is durable but the index could not take
				 * it: memory no longer matches the files, so report
				 * the txn as failed and refuse later writes. */
				it->result = CAPF_ENOMEM;
				st->failed = CAPF_EIO;
				continue;
			}
			pr->e = NULL;
		}
	}
}

/* Reports a failed group: the first at once, then once per interval. */
static void note_fault(struct store *st, int err)
{
	double now = now_mono();
	unsigned interval = st->opt.fault_log_interval;

	st->fault_count++;
	if (!st->fault_active) {
		st->fault_active = true;
		st->fault_since = now;
		st->fault_logged = now;
		st->fault_suppressed = 0;
		emit(st, STORE_SEV_ERROR,
		     "store: %s; no certificate is issued until writes succeed again (%s)",
		     st->fault_text[0] ? st->fault_text : capf_strerror(err), capf_errname(err));
		return;
	}
	if (now - st->fault_logged >= interval) {
		emit(st, STORE_SEV_ERROR,
		     "store: writes still failing: %s (%llu more failed writes in the last %.0f s)",
		     st->fault_text[0] ? st->fault_text : capf_strerror(err),
		     (unsigned long long)st->fault_suppressed, now - st->fault_logged);
		st->fault_logged = now;
		st->fault_suppressed = 0;
		return;
	}
	st->fault_suppressed++;
}

static void note_success(struct store *st)
{
	if (!st->fault_active)
		return;
	st->fault_active = false;
	emit(st, STORE_SEV_WARNING,
	     "store: writes succeed again, after %llu failed writes in %.1f s",
	     (unsigned long long)st->fault_count, now_mono() - st->fault_since);
	st->fault_count = 0;
}

/*
 * After a failed group: the events kept from before stay kept, the
 * group's own standalone events join them (up to a bound, beyond which
 * they are counted as lost and the loss itself is logged later), and the
 * events of txns are dropped with their txns, which did not happen.
 */
static void keep_for_retry(struct store *st, struct audit_batch *b, struct item *head)
{
	struct item *it;
	size_t i;

	for (i = 0; i < b->n; i++) {
		free(b->evs[i]->entry);
		b->evs[i]->entry = NULL;
	}
	for (it = head; it; it = it->next) {
		if (it->kind != ITEM_AUDIT || !it->audit)
			continue;
		if (st->retry_n >= STORE_AUDIT_RETRY_MAX) {
			st->audit_lost_unreported++;
			st->audit_lost_total++;
			continue;
		}
		retry_push(st, it->audit);
		it->audit = NULL;
	}
}

static int compact_start(struct store *st, struct waiter *w);

static void update_stats(struct store *st, size_t n_ok, int wrote, int failed)
{
	pthread_rwlock_wrlock(&st->idx_lock);
	st->stats.txns_written += n_ok;
	st->stats.syncs += wrote;
	st->stats.write_failures += failed;
	st->stats.segment_seq = st->seg_seq;
	st->stats.segment_bytes = st->seg_size;
	st->stats.audit_seq = st->chain.seq;
	st->stats.audit_pending = st->retry_n;
	st->stats.audit_lost = st->audit_lost_total;
	st->stats.fault = atomic_load(&st->fault);
	pthread_rwlock_unlock(&st->idx_lock);
}

/* One group commit: everything that was queued when the writer woke up. */
static void writer_group(struct store *st, struct item *head)
{
	struct pending_rec *gsets[2] = { NULL, NULL };
	int fault = atomic_load(&st->fault);
	struct audit_batch b = { 0 };
	struct audit_ev lost_ev = { 0 };
	char lost_text[120];
	struct audit_ev *a, *anext;
	struct item *it, *next;
	size_t n_ok = 0, n_audit = 0;
	int ret = 0, wrote = 0, failed = 0;

	if (st->failed)
		(void)truncate_back(st);
	for (it = head; it; it = it->next) {
		if (it->kind == ITEM_AUDIT) {
			n_audit++;
			continue;
		}
		if (it->kind != ITEM_TXN)
			continue;
		it->result = st->failed ? st->failed : check_txn(st, gsets, it);
		if (it->result == 0) {
			n_ok++;
			n_audit += it->audit != NULL;
		}
	}
	/* The key sets only point into the items; clearing frees the tables. */
	HASH_CLEAR(ghh, gsets[STORE_REC_DEVICE]);
	HASH_CLEAR(ghh, gsets[STORE_REC_CERT]);

	/* Audit entries in the order things happened: kept ones first. */
	b.evs = malloc((st->retry_n + n_audit + 1) * sizeof(*b.evs));
	if (!b.evs) {
		snprintf(st->fault_text, sizeof(st->fault_text), "out of memory");
		ret = CAPF_ENOMEM;
		goto fail;
	}
	if (st->audit_lost_unreported) {
		snprintf(lost_text, sizeof(lost_text),
			 "%llu audit events were lost while the store could not write",
			 (unsigned long long)st->audit_lost_unreported);
		lost_ev.kind = CAPF__AUDIT_KIND__AUDIT_STORE;
		lost_ev.time = (int64_t)time(NULL);
		lost_ev.device = (char *)"";
		lost_ev.peer = (char *)"capfd";
		lost_ev.detail = lost_text;
		b.evs[b.n++] = &lost_ev;
	}
	for (a = st->retry_head; a; a = a->next)
		b.evs[b.n++] = a;
	for (it = head; it; it = it->next)
		if ((it->kind == ITEM_AUDIT || (it->kind == ITEM_TXN && it->result == 0)) &&
		    it->audit)
			b.evs[b.n++] = it->audit;

	if (n_ok == 0 && b.n == 0)
		goto callbacks;
	if (st->failed) {
		ret = st->failed;
		snprintf(st->fault_text, sizeof(st->fault_text),
			 "the end of %s/" STORE_SEG_PREFIX STORE_SEQ_FMT
			 " or of its audit log could not be restored after a failed write",
			 st->dir, st->seg_seq);
		goto fail;
	}
	ret = encode_audit(st, &b);
	if (ret < 0) {
		snprintf(st->fault_text, sizeof(st->fault_text), "cannot encode audit entries: %s",
			 capf_strerror(ret));
		goto fail;
	}
	ret = write_group(st, head, n_ok, &b, fault);
	if (ret < 0)
		goto fail;

	wrote = 1;
	note_success(st);
	for (it = head; it; it = it->next)
		if (it->kind == ITEM_TXN && it->result == 0)
			st->seg_size += it->entry_len;
	st->seg_size += b.anchor_len;
	if (b.n > 0)
		st->chain = b.chain;
	if (lost_ev.kind)
		st->audit_lost_unreported = 0;
	for (a = st->retry_head; a; a = anext) {
		anext = a->next;
		audit_ev_free(a);
	}
	st->retry_head = st->retry_tail = NULL;
	st->retry_n = 0;
	pthread_rwlock_wrlock(&st->idx_lock);
	apply_group(st, head);
	pthread_rwlock_unlock(&st->idx_lock);
	goto callbacks;

fail:
	failed = 1;
	note_fault(st, ret);
	for (it = head; it; it = it->next)
		if (it->kind == ITEM_TXN && it->result == 0)
			it->result = ret;
	if (b.evs)
		keep_for_retry(st, &b, head);
	else
		keep_for_retry(st, &(struct audit_batch){ 0 }, head);
callbacks:
	free(lost_ev.entry);
	free(b.anchor_entry);
	free(b.evs);
	update_stats(st, wrote ? n_ok : 0, wrote, failed);

	for (it = head; it; it = next) {
		next = it->next;
		if (it->kind == ITEM_TXN && it->cb) {
			it->cb(it->result, it->arg);
		} else if (it->kind == ITEM_FLUSH) {
			waiter_done(it->w, failed ? ret : 0);
		} else if (it->kind == ITEM_COMPACT) {
			int r = compact_start(st, it->w);

			if (r < 0)
				waiter_done(it->w, r);
		}
		item_free(it);
	}

	/* Past the threshold, compact on our own (quietly skipped while one
	 * runs; a failed rotation is tried again after a minute). */
	if (st->seg_size >= st->opt.compact_bytes && !st->failed) {
		bool busy;

		pthread_mutex_lock(&st->c_lock);
		busy = st->compacting;
		pthread_mutex_unlock(&st->c_lock);
		if (!busy && (st->rotate_failed_at == 0 || now_mono() - st->rotate_failed_at >= 60.0))
			(void)compact_start(st, NULL);
	}
}

/*
 * The writer waits for items; while audit events wait for the disk (or
 * the files wait to be cut back after a failed write) it also wakes up
 * every few seconds to try again, so that an idle server recovers too.
 */
static void *writer_main(void *arg)
{
	struct store *st = arg;

	for (;;) {
		struct item *head;
		bool closing, retry;

		pthread_mutex_lock(&st->q_lock);
		while (!st->q_head && !st->closing && !st->kick) {
			struct timespec ts;

			if (!st->retry_head && !st->failed) {
				pthread_cond_wait(&st->q_cond, &st->q_lock);
				continue;
			}
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += STORE_RETRY_SECONDS;
			if (pthread_cond_timedwait(&st->q_cond, &st->q_lock, &ts) == ETIMEDOUT)
				break;
		}
		head = st->q_head;
		st->q_head = st->q_tail = NULL;
		closing = st->closing;
		st->kick = false;
		pthread_mutex_unlock(&st->q_lock);

		retry = st->retry_head || st->failed;
		if (head || (retry && !closing))
			writer_group(st, head);
		else if (closing) {
			/* A last try for the events still waiting. */
			if (retry)
				writer_group(st, NULL);
			break;
		}
	}
	return NULL;
}

/* ---- compaction -------------------------------------------------------------- */

/* Starts the next segment; the writer appends there from now on. */
static int rotate(struct store *st)
{
	uint8_t hdr[STORE_HEADER_LEN];
	char name[64], err[300];
	int fd = -1, ret, fault = atomic_load(&st->fault);

	store_seq_name(name, sizeof(name), STORE_SEG_PREFIX, st->seg_seq + 1);
	if (fault) {
		snprintf(err, sizeof(err), "cannot create %s/%s: %s (injected)", st->dir, name,
			 strerror(-fault));
		ret = fault;
	} else {
		store_header_encode(hdr, STORE_FILE_SEGMENT, st->seg_seq + 1);
		ret = store_create_file(st->dir, name, hdr, sizeof(hdr), &fd, err, sizeof(err));
	}
	if (ret < 0) {
		st->rotate_failed_at = now_mono();
		emit(st, STORE_SEV_ERROR, "store: cannot start a new segment: %s", err);
		return ret;
	}
	close(st->seg_fd);
	st->seg_fd = fd;
	st->seg_seq++;
	st->seg_size = STORE_HEADER_LEN;
	return 0;
}

/* A buffered writer for the snapshot. */
struct snap_out {
	int fd;
	uint8_t *buf;      /* one entry: header + payload */
	size_t len;        /* bytes in buf */
	size_t cap;
	int error;
};

static int snap_flush_entry(struct snap_out *so)
{
	size_t plen = so->len - STORE_ENTRY_HEADER_LEN;
	int ret;

	if (plen == 0)
		return 0;
	store_entry_header_encode(so->buf, so->buf + STORE_ENTRY_HEADER_LEN, (uint32_t)plen);
	ret = store_write_full(so->fd, so->buf, so->len);
	so->len = STORE_ENTRY_HEADER_LEN;
	return ret;
}

/*
 * Appends one record to the current batch as the protobuf of a StoreTxn's
 * field 1 (a StoreRecord holding field 1 or 2, the packed record), so the
 * snapshot is written straight from the index bytes.
 */
static int snap_add(struct snap_out *so, const struct idx_entry *e, enum store_rec_kind kind)
{
	uint8_t hdr[24];
	size_t inner, h = 0, need;
	int ret;

	inner = 1 + store_pb_varint_put(hdr, e->val_len) + e->val_len;
	hdr[h++] = 0x0a; /* StoreTxn.records */
	h += store_pb_varint_put(hdr + h, inner);
	hdr[h++] = kind == STORE_REC_DEVICE ? 0x0a : 0x12; /* StoreRecord.device / .cert */
	h += store_pb_varint_put(hdr + h, e->val_len);
	need = h + e->val_len;
	if (so->len + need > so->cap && so->len > STORE_ENTRY_HEADER_LEN) {
		ret = snap_flush_entry(so);
		if (ret < 0)
			return ret;
	}
	if (so->len + need > so->cap) {
		size_t ncap = so->len + need;
		uint8_t *nb = realloc(so->buf, ncap);

		if (!nb)
			return CAPF_ENOMEM;
		so->buf = nb;
		so->cap = ncap;
	}
	memcpy(so->buf + so->len, hdr, h);
	memcpy(so->buf + so->len + h, e->val, e->val_len);
	so->len += need;
	return 0;
}

static void compaction_free(struct compaction *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < c->n; i++)
		entry_unref(c->entries[i]);
	free(c->entries);
	free(c);
}

static int write_snapshot(struct compaction *c, char *err, size_t errlen)
{
	struct store *st = c->st;
	Capf__StoreSnapshotInfo info = CAPF__STORE_SNAPSHOT_INFO__INIT;
	Capf__AuditAnchor an = CAPF__AUDIT_ANCHOR__INIT;
	struct snap_out so = { .fd = -1 };
	char name[64], *path = NULL, *tmp = NULL;
	size_t i, plen;
	int ret = 0, fault;

	store_seq_name(name, sizeof(name), STORE_SNAP_PREFIX, c->seq);
	path = store_path(st->dir, name);
	tmp = malloc(strlen(st->dir) + strlen(name) + sizeof(STORE_TMP_SUFFIX) + 2);
	so.cap = STORE_SNAP_BATCH_BYTES + STORE_ENTRY_HEADER_LEN;
	so.buf = malloc(so.cap);
	if (!path || !tmp || !so.buf) {
		ret = CAPF_ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	sprintf(tmp, "%s/%s" STORE_TMP_SUFFIX, st->dir, name);
	so.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (so.fd < 0) {
		ret = store_err_from_errno(errno);
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	store_header_encode(so.buf, STORE_FILE_SNAPSHOT, c->seq);
	ret = store_write_full(so.fd, so.buf, STORE_HEADER_LEN);
	if (ret < 0)
		goto write_fail;

	info.seq = c->seq;
	info.records = c->n;
	info.time = (int64_t)time(NULL);
	if (c->anchor.seq) {
		an.seq = c->anchor.seq;
		an.offset = c->anchor.offset;
		an.hash.data = c->anchor.hash;
		an.hash.len = STORE_HASH_LEN;
		info.audit = &an;
	}
	plen = capf__store_snapshot_info__get_packed_size(&info);
	capf__store_snapshot_info__pack(&info, so.buf + STORE_ENTRY_HEADER_LEN);
	so.len = STORE_ENTRY_HEADER_LEN + plen;
	ret = snap_flush_entry(&so);
	if (ret < 0)
		goto write_fail;

	for (i = 0; i < c->n; i++) {
		const struct idx_entry *e = c->entries[i];

		if ((i & 4095) == 0 && atomic_load(&st->compact_abort)) {
			ret = CAPF_ESHUTDOWN;
			snprintf(err, errlen, "the store is closing");
			goto out;
		}
		ret = snap_add(&so, e, i < c->n_dev ? STORE_REC_DEVICE : STORE_REC_CERT);
		if (ret < 0)
			goto write_fail;
	}
	ret = snap_flush_entry(&so);
	fault = atomic_load(&st->fault);
	if (ret == 0 && fault) {
		ret = fault;
		snprintf(err, errlen, "cannot write %s: %s (injected)", tmp, strerror(-fault));
		goto out;
	}
	if (ret == 0 && fsync(so.fd) < 0)
		ret = store_write_err(errno);
	if (ret < 0)
		goto write_fail;
	if (close(so.fd) < 0) {
		so.fd = -1;
		ret = store_write_err(errno);
		goto write_fail;
	}
	so.fd = -1;
	if (rename(tmp, path) < 0) {
		ret = store_err_from_errno(errno);
		snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		goto out;
	}
	ret = store_sync_dir(st->dir);
	if (ret < 0)
		snprintf(err, errlen, "cannot sync %s: %s", st->dir, strerror(-ret));
	goto out;
write_fail:
	snprintf(err, errlen, "cannot write %s: %s", tmp, ret == CAPF_ENOMEM ? "out of memory"
									   : strerror(-ret));
out:
	if (so.fd >= 0)
		close(so.fd);
	if (ret < 0 && tmp)
		unlink(tmp);
	free(so.buf);
	free(path);
	free(tmp);
	return ret;
}

/* Removes the snapshots and segments that snapshot seq replaces. */
static void remove_replaced(struct store *st, uint64_t seq)
{
	struct store_dir_list l;

	if (store_dir_list(st->dir, &l) < 0)
		return;
	remove_obsolete(st, &l, seq);
	store_dir_list_free(&l);
}

static void *compact_main(void *arg)
{
	struct compaction *c = arg;
	struct store *st = c->st;
	double start = now_mono();
	char err[400] = "";
	int ret;

	ret = write_snapshot(c, err, sizeof(err));
	if (ret == 0) {
		remove_replaced(st, c->seq);
		pthread_rwlock_wrlock(&st->idx_lock);
		st->stats.snapshot_seq = c->seq;
		st->stats.compactions++;
		pthread_rwlock_unlock(&st->idx_lock);
		emit(st, STORE_SEV_INFO,
		     "store: wrote snapshot " STORE_SNAP_PREFIX STORE_SEQ_FMT
		     " (%zu records) in %.2f s and removed the files it replaces",
		     c->seq, c->n, now_mono() - start);
	} else if (ret != CAPF_ESHUTDOWN) {
		emit(st, STORE_SEV_ERROR,
		     "store: compaction failed, the segments stay and nothing is lost: %s", err);
	}
	if (c->w)
		waiter_done(c->w, ret);
	compaction_free(c);
	pthread_mutex_lock(&st->c_lock);
	st->compacting = false;
	pthread_mutex_unlock(&st->c_lock);
	return NULL;
}

/*
 * Rotates and hands the index as it stands (every entry referenced, so the
 * writer may replace them meanwhile) to a compaction thread. Runs on the
 * writer, which is the only thread that changes the index, so the index
 * needs no lock to be read here.
 */
static int compact_start(struct store *st, struct waiter *w)
{
	struct compaction *c = NULL;
	struct idx_entry *e, *tmp;
	sigset_t all, old;
	size_t i = 0;
	int ret = 0, err;

	pthread_mutex_lock(&st->c_lock);
	if (st->compacting) {
		pthread_mutex_unlock(&st->c_lock);
		return CAPF_EBUSY;
	}
	if (st->compactor_joinable) {
		/* The last one has finished (compacting is false): reap it. */
		pthread_join(st->compactor, NULL);
		st->compactor_joinable = false;
	}
	pthread_mutex_unlock(&st->c_lock);

	if (st->failed)
		return st->failed;
	c = calloc(1, sizeof(*c));
	if (!c)
		return CAPF_ENOMEM;
	c->st = st;
	c->n_dev = HASH_COUNT(st->devices);
	/* c->n counts the references taken, which compaction_free() drops. */
	c->entries = malloc((c->n_dev + HASH_COUNT(st->certs) + 1) * sizeof(*c->entries));
	if (!c->entries) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	ret = rotate(st);
	if (ret < 0)
		goto out;
	pthread_rwlock_wrlock(&st->idx_lock);
	st->stats.segment_seq = st->seg_seq;
	st->stats.segment_bytes = st->seg_size;
	pthread_rwlock_unlock(&st->idx_lock);
	c->seq = st->seg_seq;
	c->anchor.seq = st->chain.seq;
	c->anchor.offset = st->chain.offset;
	memcpy(c->anchor.hash, st->chain.hash, STORE_HASH_LEN);
	HASH_ITER(hh, st->devices, e, tmp) {
		atomic_fetch_add(&e->refs, 1);
		c->entries[i++] = e;
	}
	HASH_ITER(hh, st->certs, e, tmp) {
		atomic_fetch_add(&e->refs, 1);
		c->entries[i++] = e;
	}
	c->n = i;
	c->w = w;
	pthread_mutex_lock(&st->c_lock);
	st->compacting = true;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&st->compactor, NULL, compact_main, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0) {
		st->compacting = false;
		pthread_mutex_unlock(&st->c_lock);
		/* The new segment stays: it is valid and simply next. */
		emit(st, STORE_SEV_ERROR, "store: cannot start a compaction thread: %s",
		     strerror(err));
		c->w = NULL;
		ret = CAPF_ENOMEM;
		goto out;
	}
	st->compactor_joinable = true;
	pthread_mutex_unlock(&st->c_lock);
	c = NULL;
out:
	compaction_free(c);
	return ret;
}

/* ---- open and close ------------------------------------------------------- */

static void store_free(struct store *st)
{
	struct audit_ev *a, *next;

	if (!st)
		return;
	dev_certs_clear(st);
	index_clear(&st->devices);
	index_clear(&st->certs);
	for (a = st->retry_head; a; a = next) {
		next = a->next;
		audit_ev_free(a);
	}
	if (st->seg_fd >= 0)
		close(st->seg_fd);
	if (st->audit_fd >= 0)
		close(st->audit_fd);
	/* Closing the lock file releases the flock. */
	if (st->lock_fd >= 0)
		close(st->lock_fd);
	pthread_mutex_destroy(&st->q_lock);
	pthread_cond_destroy(&st->q_cond);
	pthread_mutex_destroy(&st->c_lock);
	pthread_rwlock_destroy(&st->idx_lock);
	free(st->dir);
	free(st);
}

/* Creates dir if needed and checks that it is a directory. */
static int open_dir(const char *dir)
{
	struct stat sb;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		store_set_error("cannot create state directory %s: %s", dir, strerror(errno));
		return store_err_from_errno(errno);
	}
	if (stat(dir, &sb) < 0) {
		store_set_error("cannot stat state directory %s: %s", dir, strerror(errno));
		return store_err_from_errno(errno);
	}
	if (!S_ISDIR(sb.st_mode)) {
		store_set_error("state directory %s is not a directory", dir);
		return CAPF_EINVAL;
	}
	return 0;
}

/* Starts the writer with every signal blocked, so signals go to the
 * threads that handle them. */
static int start_writer(struct store *st)
{
	sigset_t all, old;
	int e;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e = pthread_create(&st->writer, NULL, writer_main, st);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		store_set_error("cannot start the store writer: %s", strerror(e));
		return e == EAGAIN ? CAPF_ENOMEM : CAPF_EIO;
	}
	st->writer_started = true;
	return 0;
}

int store_open_opts(struct store **out, const char *dir, const struct store_options *opts)
{
	struct store *st = NULL;
	char err[400];
	int ret = 0;

	store_clear_error();
	if (out)
		*out = NULL;
	if (!out || !dir || !dir[0]) {
		store_set_error("no state directory given");
		ret = CAPF_EINVAL;
		goto out;
	}
	st = calloc(1, sizeof(*st));
	if (!st) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	st->lock_fd = -1;
	st->seg_fd = -1;
	st->audit_fd = -1;
	pthread_mutex_init(&st->q_lock, NULL);
	pthread_cond_init(&st->q_cond, NULL);
	pthread_mutex_init(&st->c_lock, NULL);
	pthread_rwlock_init(&st->idx_lock, NULL);
	atomic_init(&st->fault, 0);
	atomic_init(&st->compact_abort, false);
	if (opts)
		st->opt = *opts;
	if (st->opt.compact_bytes == 0)
		st->opt.compact_bytes = STORE_COMPACT_DEFAULT;
	if (st->opt.fault_log_interval == 0)
		st->opt.fault_log_interval = STORE_FAULT_LOG_INTERVAL_DEFAULT;
	st->dir = strdup(dir);
	if (!st->dir) {
		ret = CAPF_ENOMEM;
		goto out;
	}

	ret = open_dir(dir);
	if (ret < 0)
		goto out;
	ret = store_lock_dir(dir, &st->lock_fd, err, sizeof(err));
	if (ret < 0) {
		store_set_error("%s", err);
		goto out;
	}
	ret = load_all(st);
	if (ret < 0)
		goto out;
	st->stats.segment_seq = st->seg_seq;
	st->stats.segment_bytes = st->seg_size;
	st->stats.audit_seq = st->chain.seq;
	st->stats.audit_pending = st->retry_n;
	ret = start_writer(st);
	if (ret < 0)
		goto out;
	*out = st;
	st = NULL;
	store_clear_error();
out:
	if (ret == CAPF_ENOMEM && !store_last_error()[0])
		store_set_error("out of memory opening state directory %s", dir ? dir : "");
	store_free(st);
	return ret;
}

int store_open(struct store **out, const char *dir)
{
	return store_open_opts(out, dir, NULL);
}

void store_close(struct store *st)
{
	bool join;

	if (!st)
		return;
	pthread_mutex_lock(&st->q_lock);
	st->closing = true;
	pthread_cond_signal(&st->q_cond);
	pthread_mutex_unlock(&st->q_lock);
	if (st->writer_started)
		pthread_join(st->writer, NULL);
	/* The writer is gone, so no compaction starts any more. */
	atomic_store(&st->compact_abort, true);
	pthread_mutex_lock(&st->c_lock);
	join = st->compactor_joinable;
	st->compactor_joinable = false;
	pthread_mutex_unlock(&st->c_lock);
	if (join)
		pthread_join(st->compactor, NULL);
	store_free(st);
}

/* ---- reads ---------------------------------------------------------------- */

int store_device_get(struct store *st, const char *name, Capf__Device **out)
{
	struct idx_entry *e;
	int ret = 0;

	if (!out)
		return CAPF_EINVAL;
	*out = NULL;
	if (!st || !name)
		return CAPF_EINVAL;
	pthread_rwlock_rdlock(&st->idx_lock);
	e = index_find(st->devices, name, strlen(name));
	if (!e)
		ret = CAPF_ENOENT;
	else if (!(*out = capf__device__unpack(NULL, e->val_len, e->val)))
		ret = CAPF_ENOMEM;
	pthread_rwlock_unlock(&st->idx_lock);
	return ret;
}

int store_cert_get(struct store *st, const uint8_t *serial, size_t serial_len,
		   Capf__Certificate **out)
{
	struct idx_entry *e;
	int ret = 0;

	if (!out)
		return CAPF_EINVAL;
	*out = NULL;
	if (!st || !serial || serial_len == 0)
		return CAPF_EINVAL;
	pthread_rwlock_rdlock(&st->idx_lock);
	e = index_find(st->certs, serial, serial_len);
	if (!e)
		ret = CAPF_ENOENT;
	else if (!(*out = capf__certificate__unpack(NULL, e->val_len, e->val)))
		ret = CAPF_ENOMEM;
	pthread_rwlock_unlock(&st->idx_lock);
	return ret;
}

int store_cert_foreach(struct store *st, int (*cb)(const Capf__Certificate *cert, void *arg),
		       void *arg)
{
	Capf__Certificate **list = NULL;
	struct idx_entry *e, *tmp;
	size_t count, i = 0;
	int ret = 0;

	if (!st || !cb)
		return CAPF_EINVAL;
	pthread_rwlock_rdlock(&st->idx_lock);
	count = HASH_COUNT(st->certs);
	if (count > 0 && !(list = calloc(count, sizeof(*list))))
		ret = CAPF_ENOMEM;
	if (ret == 0) {
		HASH_ITER(hh, st->certs, e, tmp) {
			list[i] = capf__certificate__unpack(NULL, e->val_len, e->val);
			if (!list[i]) {
				ret = CAPF_ENOMEM;
				break;
			}
			i++;
		}
	}
	pthread_rwlock_unlock(&st->idx_lock);
	for (size_t j = 0; j < i; j++) {
		if (ret == 0)
			ret = cb(list[j], arg);
		capf__certificate__free_unpacked(list[j], NULL);
	}
	free(list);
	return ret;
}

/* Oldest first; serials (big-endian integers) by length, then bytes. */
static int cert_issued_cmp(const void *a, const void *b)
{
	const Capf__Certificate *ca = *(const Capf__Certificate *const *)a;
	const Capf__Certificate *cb = *(const Capf__Certificate *const *)b;

	if (ca->issued_at != cb->issued_at)
		return ca->issued_at < cb->issued_at ? -1 : 1;
	if (ca->serial.len != cb->serial.len)
		return ca->serial.len < cb->serial.len ? -1 : 1;
	return memcmp(ca->serial.data, cb->serial.data, ca->serial.len);
}

void store_cert_list_free(Capf__Certificate **list, size_t n)
{
	size_t i;

	if (!list)
		return;
	for (i = 0; i < n; i++)
		if (list[i])
			capf__certificate__free_unpacked(list[i], NULL);
	free(list);
}

int store_cert_list_device(struct store *st, const char *device, Capf__Certificate ***out,
			   size_t *n)
{
	Capf__Certificate **list = NULL;
	struct dev_certs *b;
	struct idx_entry *e;
	size_t count = 0, i = 0;
	bool locked = false;
	int ret = 0;

	if (out)
		*out = NULL;
	if (n)
		*n = 0;
	if (!st || !device || !out || !n) {
		ret = CAPF_EINVAL;
		goto out;
	}
	pthread_rwlock_rdlock(&st->idx_lock);
	locked = true;
	b = bucket_find(st, device, strlen(device));
	if (!b || b->n == 0)
		goto out;
	count = b->n;
	list = calloc(count, sizeof(*list));
	if (!list) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	DL_FOREACH2(b->head, e, dnext) {
		if (i == count)
			break;
		list[i] = capf__certificate__unpack(NULL, e->val_len, e->val);
		if (!list[i]) {
			ret = CAPF_ENOMEM;
			goto out;
		}
		i++;
	}
	pthread_rwlock_unlock(&st->idx_lock);
	locked = false;
	qsort(list, i, sizeof(*list), cert_issued_cmp);
	*out = list;
	*n = i;
	list = NULL;
out:
	if (locked)
		pthread_rwlock_unlock(&st->idx_lock);
	store_cert_list_free(list, count);
	return ret;
}

static int device_cmp(const void *a, const void *b)
{
	const Capf__Device *da = *(const Capf__Device *const *)a;
	const Capf__Device *db = *(const Capf__Device *const *)b;

	return strcmp(da->name, db->name);
}

void store_device_list_free(Capf__Device **list, size_t n)
{
	size_t i;

	if (!list)
		return;
	for (i = 0; i < n; i++)
		if (list[i])
			capf__device__free_unpacked(list[i], NULL);
	free(list);
}

int store_device_list(struct store *st, Capf__Device ***out, size_t *n)
{
	Capf__Device **list = NULL;
	struct idx_entry *e, *tmp;
	size_t count = 0, i = 0;
	bool locked = false;
	int ret = 0;

	if (out)
		*out = NULL;
	if (n)
		*n = 0;
	if (!st || !out || !n) {
		ret = CAPF_EINVAL;
		goto out;
	}
	pthread_rwlock_rdlock(&st->idx_lock);
	locked = true;
	count = HASH_COUNT(st->devices);
	if (count == 0)
		goto out;
	list = calloc(count, sizeof(*list));
	if (!list) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	HASH_ITER(hh, st->devices, e, tmp) {
		list[i] = capf__device__unpack(NULL, e->val_len, e->val);
		if (!list[i]) {
			ret = CAPF_ENOMEM;
			goto out;
		}
		i++;
	}
	pthread_rwlock_unlock(&st->idx_lock);
	locked = false;
	/* Sorting the copies keeps the lock short. */
	qsort(list, count, sizeof(*list), device_cmp);
	*out = list;
	*n = count;
	list = NULL;
out:
	if (locked)
		pthread_rwlock_unlock(&st->idx_lock);
	store_device_list_free(list, count);
	return ret;
}

void store_get_stats(struct store *st, struct store_stats *out)
{
	if (!out)
		return;
	memset(out, 0, sizeof(*out));
	if (!st)
		return;
	pthread_rwlock_rdlock(&st->idx_lock);
	*out = st->stats;
	out->devices = HASH_COUNT(st->devices);
	out->certificates = HASH_COUNT(st->certs);
	pthread_rwlock_unlock(&st->idx_lock);
	out->fault = atomic_load(&st->fault);
}

const char *store_dir(const struct store *st)
{
	return st ? st->dir : NULL;
}

void store_set_fault(struct store *st, int err)
{
	if (!st)
		return;
	atomic_store(&st->fault, err > 0 ? -err : err);
	/* Cleared: what waits for the disk is tried now, not in seconds. */
	pthread_mutex_lock(&st->q_lock);
	st->kick = true;
	pthread_cond_signal(&st->q_cond);
	pthread_mutex_unlock(&st->q_lock);
}

/* ---- offline dump ----------------------------------------------------------- */

int store_dump(const char *dir, store_dump_cb cb, void *arg)
{
	struct store *st = NULL;
	struct idx_entry *e, *tmp;
	int ret;

	store_clear_error();
	if (!dir || !cb)
		return CAPF_EINVAL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return CAPF_ENOMEM;
	st->lock_fd = -1;
	st->seg_fd = -1;
	st->audit_fd = -1;
	st->readonly = true;
	pthread_mutex_init(&st->q_lock, NULL);
	pthread_cond_init(&st->q_cond, NULL);
	pthread_mutex_init(&st->c_lock, NULL);
	pthread_rwlock_init(&st->idx_lock, NULL);
	st->dir = strdup(dir);
	if (!st->dir) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	ret = store_lock_offline(dir, &st->lock_fd);
	if (ret < 0)
		goto out;
	ret = load_all(st);
	if (ret < 0)
		goto out;
	HASH_ITER(hh, st->devices, e, tmp) {
		Capf__Device *d = capf__device__unpack(NULL, e->val_len, e->val);

		if (!d) {
			ret = CAPF_ENOMEM;
			goto out;
		}
		ret = cb(d, NULL, arg);
		capf__device__free_unpacked(d, NULL);
		if (ret != 0)
			goto out;
	}
	HASH_ITER(hh, st->certs, e, tmp) {
		Capf__Certificate *c = capf__certificate__unpack(NULL, e->val_len, e->val);

		if (!c) {
			ret = CAPF_ENOMEM;
			goto out;
		}
		ret = cb(NULL, c, arg);
		capf__certificate__free_unpacked(c, NULL);
		if (ret != 0)
			goto out;
	}
out:
	store_free(st);
	return ret < 0 ? ret : 0;
}
