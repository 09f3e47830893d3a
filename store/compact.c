/*
 * Compaction: rotation to a new segment on the writer, then a snapshot of
 * the index as of the rotation written by a thread of its own, and the
 * removal of what it replaces.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
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

#include "store/internal.h"

/* ---- compaction -------------------------------------------------------------- */

/* Starts the next segment; the writer appends there from now on. */
static int rotate(struct store *st)
{
	uint8_t hdr[STORE_HEADER_LEN];
	char name[64], err[300];
	uint32_t salt = store_new_salt();
	int fd = -1, ret, fault = atomic_load(&st->fault);

	store_seq_name(name, sizeof(name), STORE_SEG_PREFIX, st->seg_seq + 1);
	/* The segments this compaction replaces hold the copies of audit
	 * groups not yet synced in the audit file, and a finished segment
	 * must be whole: both are synced first. */
	if (!fault && (store_segment_sync(st) < 0 || store_audit_sync(st) < 0)) {
		snprintf(err, sizeof(err), "cannot sync the audit file: %s", strerror(errno));
		ret = store_err_from_errno(errno);
		st->rotate_failed_at = store_now_mono();
		store_emit(st, STORE_SEV_ERROR, "store: cannot start a new segment: %s", err);
		return ret;
	}
	if (fault) {
		snprintf(err, sizeof(err), "cannot create %s/%s: %s (injected)", st->dir, name,
			 strerror(-fault));
		ret = fault;
	} else {
		store_header_encode(hdr, STORE_FILE_SEGMENT, st->seg_seq + 1, salt);
		ret = store_create_file(st->dir, name, hdr, sizeof(hdr), &fd, err, sizeof(err));
	}
	if (ret < 0) {
		st->rotate_failed_at = store_now_mono();
		store_emit(st, STORE_SEV_ERROR, "store: cannot start a new segment: %s", err);
		return ret;
	}
	close(st->seg_fd);
	st->seg_fd = fd;
	st->seg_seq++;
	st->seg_size = STORE_HEADER_LEN;
	st->seg_salt = salt;
	st->seg_group = 1;
	return 0;
}

/* A buffered writer for the snapshot: one batch at a time, framed as it
 * is written, all of it one group whose last entry commits. */
struct snap_out {
	int fd;
	struct store_framer f;
	uint8_t *buf;      /* one payload */
	size_t len;        /* bytes in buf */
	size_t cap;
	struct store_buf framed;
};

static int snap_flush_entry(struct snap_out *so, bool commit)
{
	int ret;

	if (so->len == 0)
		return 0;
	so->framed.len = 0;
	ret = store_frame_entry(&so->f, so->buf, so->len, commit, &so->framed, NULL);
	if (ret == 0)
		ret = store_write_full(so->fd, so->framed.data, so->framed.len);
	so->len = 0;
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
	if (so->len + need > so->cap && so->len > 0) {
		ret = snap_flush_entry(so, false);
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
		store_entry_unref(c->entries[i]);
	free(c->entries);
	free(c);
}

int store_write_snapshot(struct compaction *c, char *err, size_t errlen)
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
	so.cap = STORE_SNAP_BATCH_BYTES;
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
	so.f.salt = store_new_salt();
	so.f.pos = STORE_HEADER_LEN;
	so.f.group = 1;
	so.f.after_lazy = false;
	store_header_encode(so.buf, STORE_FILE_SNAPSHOT, c->seq, so.f.salt);
	ret = store_write_full(so.fd, so.buf, STORE_HEADER_LEN);
	if (ret < 0)
		goto write_fail;

	info.seq = c->seq;
	info.records = c->n;
	info.time = (int64_t)time(NULL);
	if (c->anchor.seq) {
		an.seq = c->anchor.seq;
		an.offset = c->anchor.offset;
		an.file = c->anchor.file;
		an.hash.data = c->anchor.hash;
		an.hash.len = STORE_HASH_LEN;
		info.audit = &an;
	}
	plen = capf__store_snapshot_info__get_packed_size(&info);
	capf__store_snapshot_info__pack(&info, so.buf);
	so.len = plen;
	ret = snap_flush_entry(&so, c->n == 0);
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
	ret = snap_flush_entry(&so, true);
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
	store_buf_free(&so.framed);
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
	store_remove_obsolete(st, &l, seq);
	store_dir_list_free(&l);
}

static void *compact_main(void *arg)
{
	struct compaction *c = arg;
	struct store *st = c->st;
	double start = store_now_mono();
	char err[400] = "";
	int ret;

	ret = store_write_snapshot(c, err, sizeof(err));
	if (ret == 0) {
		remove_replaced(st, c->seq);
		pthread_rwlock_wrlock(&st->idx_lock);
		st->stats.snapshot_seq = c->seq;
		st->stats.compactions++;
		pthread_rwlock_unlock(&st->idx_lock);
		store_emit(st, STORE_SEV_INFO,
		     "store: wrote snapshot " STORE_SNAP_PREFIX STORE_SEQ_FMT
		     " (%zu records) in %.2f s and removed the files it replaces",
		     c->seq, c->n, store_now_mono() - start);
	} else if (ret != CAPF_ESHUTDOWN) {
		store_emit(st, STORE_SEV_ERROR,
		     "store: compaction failed, the segments stay and nothing is lost: %s", err);
	}
	if (c->w)
		store_waiter_done(c->w, ret);
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
int store_compact_start(struct store *st, struct waiter *w)
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
	c->anchor.file = st->chain.file;
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
		store_emit(st, STORE_SEV_ERROR, "store: cannot start a compaction thread: %s",
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
