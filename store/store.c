/*
 * The store: opening and closing a state directory, the helpers that the
 * open store's files share (events, waiters), and the offline dump.
 *
 * The open store is five rooms, each with one job:
 *   index.c    the in-memory index and the reads served from it
 *   recover.c  loading at open: every recovery rule of the files
 *   queue.c    what callers hand the writer (txns, audit events, requests)
 *   writer.c   the writer thread: group commit, fault handling
 *   compact.c  rotation and snapshots
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

void store_emit(struct store *st, enum store_severity sev, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

void store_emit(struct store *st, enum store_severity sev, const char *fmt, ...)
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

double store_now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void store_waiter_init(struct waiter *w)
{
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->done = 0;
	w->result = 0;
}

void store_waiter_done(struct waiter *w, int result)
{
	pthread_mutex_lock(&w->lock);
	w->result = result;
	w->done = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

int store_waiter_wait(struct waiter *w)
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

/* ---- open and close ------------------------------------------------------- */

void store_free_state(struct store *st)
{
	struct audit_ev *a, *next;

	if (!st)
		return;
	store_agg_free(st);
	store_dev_certs_clear(st);
	store_index_clear(&st->devices);
	store_index_clear(&st->certs);
	for (a = st->retry_head; a; a = next) {
		next = a->next;
		store_audit_ev_free(a);
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

	if (mkdir(dir, 0700) == 0) {
		/* A new directory lasts only once its parent is synced. */
		char *parent = strdup(dir), *slash;

		if (!parent)
			return CAPF_ENOMEM;
		slash = strrchr(parent, '/');
		if (slash == parent)
			slash[1] = '\0';
		else if (slash)
			*slash = '\0';
		if (store_sync_dir(slash ? parent : ".") < 0) {
			store_set_error("cannot sync the parent of %s: %s", dir, strerror(errno));
			free(parent);
			return store_err_from_errno(errno);
		}
		free(parent);
	} else if (errno != EEXIST) {
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
	e = pthread_create(&st->writer, NULL, store_writer_main, st);
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
	if (st->opt.queue_max == 0)
		st->opt.queue_max = STORE_QUEUE_MAX_DEFAULT;
	if (st->opt.txn_entry_max == 0 || st->opt.txn_entry_max > STORE_ENTRY_MAX)
		st->opt.txn_entry_max = STORE_ENTRY_MAX;
	if (st->opt.audit_file_bytes == 0)
		st->opt.audit_file_bytes = STORE_AUDIT_FILE_DEFAULT;
	if (st->opt.audit_aggregate_seconds == 0)
		st->opt.audit_aggregate_seconds = STORE_AGG_SECONDS_DEFAULT;
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
	ret = store_load_all(st);
	if (ret < 0)
		goto out;
	/* What was read may be in the page cache only (a process that was
	 * killed): durable before any group counts on it. */
	if (fdatasync(st->seg_fd) < 0 || (st->audit_fd >= 0 && fdatasync(st->audit_fd) < 0)) {
		ret = store_err_from_errno(errno);
		store_set_error("cannot sync the store files in %s: %s", dir, strerror(errno));
		goto out;
	}
	st->audit_synced = st->chain.end;
	st->audit_lazy = false;
	st->synced_recorded = 0; /* the next anchor says it */
	st->stats.segment_seq = st->seg_seq;
	st->stats.segment_bytes = st->seg_size;
	st->stats.audit_seq = st->chain.seq;
	st->stats.audit_file = st->audit_file;
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
	store_free_state(st);
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
	/* The audit file on its own, so that tools reading it offline find
	 * it whole (its copies in the segment are durable already). */
	if (st->writer_started && store_segment_sync(st) < 0)
		store_emit(st, STORE_SEV_ERROR, "store: cannot sync the segment at close: %s",
			   strerror(errno));
	if (st->writer_started && store_audit_sync(st) < 0)
		store_emit(st, STORE_SEV_ERROR, "store: cannot sync the audit file at close: %s",
			   strerror(errno));
	/* And the segment says so: a start then reads the audit file as it
	 * is, its copies no longer needed. */
	if (st->writer_started && store_record_sync(st) < 0)
		store_emit(st, STORE_SEV_ERROR, "store: cannot record the audit file's sync: %s",
			   strerror(errno));
	/* The writer is gone, so no compaction starts any more. */
	atomic_store(&st->compact_abort, true);
	pthread_mutex_lock(&st->c_lock);
	join = st->compactor_joinable;
	st->compactor_joinable = false;
	pthread_mutex_unlock(&st->c_lock);
	if (join)
		pthread_join(st->compactor, NULL);
	store_free_state(st);
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
	ret = store_load_all(st);
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
	store_free_state(st);
	return ret < 0 ? ret : 0;
}
