/*
 * The store: state directory lock, log replay at open, the in-memory
 * index and the writer thread with group commit.
 *
 * Threads: any thread may call store_submit() and the get functions; one
 * writer thread owns the log file descriptor and is the only thread that
 * changes the index. Readers take idx_lock for reading; the writer takes
 * it for writing only while it applies a group that is already durable,
 * so it reads the index without the lock when it checks preconditions.
 */
#include "config.h"

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
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Make uthash report allocation failures instead of calling exit(). */
#define HASH_NONFATAL_OOM 1
#include <uthash.h>

#include "store/internal.h"

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

enum rec_kind {
	REC_DEVICE,
	REC_CERT,
};

/*
 * One record in the index: the key (device name or certificate serial,
 * NUL-terminated for convenience) and the packed Device or Certificate,
 * in one allocation.
 */
struct idx_entry {
	UT_hash_handle hh;
	size_t key_len;
	size_t val_len;
	uint8_t *val;   /* points into data */
	uint8_t data[]; /* key, NUL, val */
};

/* A record of a queued txn, with its index entry already built. */
struct pending_rec {
	struct idx_entry *e;
	enum rec_kind kind;
	int create_only;
	int must_exist;
	int in_group;          /* added to the group's key set */
	UT_hash_handle ghh;    /* group key set: keys created by this group */
};

/* One queued txn: its whole log entry (header and payload), ready to write. */
struct txn_item {
	struct txn_item *next;
	uint8_t *entry;
	size_t entry_len;
	struct pending_rec *recs;
	size_t n_recs;
	store_done_cb cb;
	void *arg;
	int result;
};

struct store {
	char *dir;
	char *log_path;
	int lock_fd;
	int log_fd;
	off_t log_size;          /* committed size of the log; writer only after open */
	int failed;              /* sticky write error; writer only */
	atomic_int fault;        /* test seam, see store_set_fault() */

	pthread_t writer;
	int writer_started;
	pthread_mutex_t q_lock;  /* protects q_head, q_tail, closing */
	pthread_cond_t q_cond;
	struct txn_item *q_head;
	struct txn_item *q_tail;
	int closing;

	pthread_rwlock_t idx_lock; /* protects devices, certs, stats */
	struct idx_entry *devices;
	struct idx_entry *certs;
	struct store_stats stats;
};

static _Thread_local char last_error[512];

static void set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void set_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
}

const char *store_last_error(void)
{
	return last_error;
}

/* Maps an errno value from a file operation to a capf code. */
static int err_from_errno(int e)
{
	switch (e) {
	case ENOMEM:
		return CAPF_ENOMEM;
	case ENOSPC:
	case EDQUOT:
		return CAPF_ENOSPC;
	case EACCES:
	case EPERM:
	case EROFS:
		return CAPF_EACCES;
	case ENOENT:
		return CAPF_ENOENT;
	case ENOTDIR:
		return CAPF_EINVAL;
	default:
		return CAPF_EIO;
	}
}

/* Maps a failed write or sync: callers only ever see ENOSPC or EIO. */
static int write_err_from_errno(int e)
{
	return (e == ENOSPC || e == EDQUOT) ? CAPF_ENOSPC : CAPF_EIO;
}

static char *path_join(const char *dir, const char *name)
{
	size_t dl = strlen(dir), nl = strlen(name);
	char *p = malloc(dl + 1 + nl + 1);

	if (!p)
		return NULL;
	memcpy(p, dir, dl);
	p[dl] = '/';
	memcpy(p + dl + 1, name, nl + 1);
	return p;
}

/* ---- index ------------------------------------------------------------- */

static struct idx_entry *entry_new(const uint8_t *key, size_t key_len, size_t val_len)
{
	struct idx_entry *e = malloc(sizeof(*e) + key_len + 1 + val_len);

	if (!e)
		return NULL;
	memset(&e->hh, 0, sizeof(e->hh));
	e->key_len = key_len;
	e->val_len = val_len;
	memcpy(e->data, key, key_len);
	e->data[key_len] = '\0';
	e->val = e->data + key_len + 1;
	return e;
}

/* Builds the index entry of a record (which must have a body). */
static struct idx_entry *entry_from_record(const Capf__StoreRecord *r, enum rec_kind *kind)
{
	struct idx_entry *e = NULL;

	if (r->body_case == CAPF__STORE_RECORD__BODY_DEVICE) {
		const Capf__Device *d = r->device;

		*kind = REC_DEVICE;
		e = entry_new((const uint8_t *)d->name, strlen(d->name),
			      capf__device__get_packed_size(d));
		if (e)
			capf__device__pack(d, e->val);
	} else {
		const Capf__Certificate *c = r->cert;

		*kind = REC_CERT;
		e = entry_new(c->serial.data, c->serial.len, capf__certificate__get_packed_size(c));
		if (e)
			capf__certificate__pack(c, e->val);
	}
	return e;
}

static struct idx_entry **index_table(struct store *st, enum rec_kind kind)
{
	return kind == REC_DEVICE ? &st->devices : &st->certs;
}

static struct idx_entry *index_find(struct idx_entry *table, const void *key, size_t key_len)
{
	struct idx_entry *e = NULL;

	HASH_FIND(hh, table, key, key_len, e);
	return e;
}

/*
 * Puts e in the table, replacing and freeing an entry of the same key.
 * Returns 0 (e now belongs to the table) or CAPF_ENOMEM (e still belongs
 * to the caller).
 */
static int index_put(struct idx_entry **table, struct idx_entry *e)
{
	struct idx_entry *old = index_find(*table, e->data, e->key_len);

	if (old) {
		HASH_DELETE(hh, *table, old);
		free(old);
	}
	HASH_ADD_KEYPTR(hh, *table, e->data, e->key_len, e);
	return e->hh.tbl ? 0 : CAPF_ENOMEM;
}

static void index_clear(struct idx_entry **table)
{
	struct idx_entry *e, *tmp;

	HASH_ITER(hh, *table, e, tmp) {
		HASH_DELETE(hh, *table, e);
		free(e);
	}
}

/* Replay: applies one txn read from the log at open. */
static int replay_txn(const Capf__StoreTxn *txn, void *arg)
{
	struct store *st = arg;
	size_t i;

	for (i = 0; i < txn->n_records; i++) {
		enum rec_kind kind;
		struct idx_entry *e = entry_from_record(txn->records[i], &kind);

		if (!e)
			return CAPF_ENOMEM;
		if (index_put(index_table(st, kind), e) < 0) {
			free(e);
			return CAPF_ENOMEM;
		}
	}
	return 0;
}

/* ---- queued txns ---------------------------------------------------------- */

static void item_free(struct txn_item *it)
{
	size_t i;

	if (!it)
		return;
	if (it->recs) {
		for (i = 0; i < it->n_recs; i++)
			free(it->recs[i].e);
		free(it->recs);
	}
	free(it->entry);
	free(it);
}

static int record_ok(const Capf__StoreRecord *r)
{
	if (!r)
		return 0;
	switch (r->body_case) {
	case CAPF__STORE_RECORD__BODY_DEVICE:
		return r->device && r->device->name && r->device->name[0] != '\0';
	case CAPF__STORE_RECORD__BODY_CERT:
		return r->cert && r->cert->serial.len > 0 && r->cert->serial.data;
	default:
		return 0;
	}
}

int store_submit(struct store *st, Capf__StoreRecord *const *recs, size_t n, store_done_cb cb,
		 void *arg)
{
	Capf__StoreTxn txn = CAPF__STORE_TXN__INIT;
	struct txn_item *it = NULL;
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
	it->n_recs = n;
	it->cb = cb;
	it->arg = arg;
	for (i = 0; i < n; i++) {
		struct pending_rec *pr = &it->recs[i];

		pr->e = entry_from_record(recs[i], &pr->kind);
		if (!pr->e) {
			ret = CAPF_ENOMEM;
			goto out;
		}
		pr->create_only = recs[i]->create_only;
		pr->must_exist = recs[i]->must_exist;
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
	capf__store_txn__pack(&txn, it->entry + STORE_ENTRY_HEADER_LEN);
	store_entry_header_encode(it->entry, it->entry + STORE_ENTRY_HEADER_LEN, (uint32_t)plen);

	pthread_mutex_lock(&st->q_lock);
	if (st->closing) {
		ret = CAPF_ESHUTDOWN;
	} else {
		if (st->q_tail)
			st->q_tail->next = it;
		else
			st->q_head = it;
		st->q_tail = it;
		it = NULL;
		pthread_cond_signal(&st->q_cond);
	}
	pthread_mutex_unlock(&st->q_lock);
out:
	item_free(it);
	return ret;
}

struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done;
	int result;
};

static void waiter_done(int result, void *arg)
{
	struct waiter *w = arg;

	pthread_mutex_lock(&w->lock);
	w->result = result;
	w->done = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

int store_submit_wait(struct store *st, Capf__StoreRecord *const *recs, size_t n)
{
	struct waiter w = {
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.cond = PTHREAD_COND_INITIALIZER,
	};
	int ret;

	ret = store_submit(st, recs, n, waiter_done, &w);
	if (ret == 0) {
		pthread_mutex_lock(&w.lock);
		while (!w.done)
			pthread_cond_wait(&w.cond, &w.lock);
		ret = w.result;
		pthread_mutex_unlock(&w.lock);
	}
	pthread_mutex_destroy(&w.lock);
	pthread_cond_destroy(&w.cond);
	return ret;
}

/* ---- the writer ----------------------------------------------------------- */

/* Removes the keys that a txn added to the group key sets. */
static void group_keys_rollback(struct pending_rec **gsets, struct txn_item *it)
{
	size_t i;

	for (i = 0; i < it->n_recs; i++) {
		struct pending_rec *pr = &it->recs[i];

		if (pr->in_group) {
			HASH_DELETE(ghh, gsets[pr->kind], pr);
			pr->in_group = 0;
		}
	}
}

/*
 * Checks the preconditions of one txn against the index and the keys that
 * earlier surviving txns of this group (gsets) and earlier records of this
 * txn will create. Records only ever add or replace, so "exists" is
 * simply "in the index or created before it". On success the txn's keys
 * join the group sets.
 */
static int check_txn(struct store *st, struct pending_rec **gsets, struct txn_item *it)
{
	size_t i, j;

	for (i = 0; i < it->n_recs; i++) {
		struct pending_rec *pr = &it->recs[i], *g = NULL;
		int exists;

		if (!pr->create_only && !pr->must_exist)
			continue;
		exists = index_find(*index_table(st, pr->kind), pr->e->data, pr->e->key_len) != NULL;
		if (!exists) {
			HASH_FIND(ghh, gsets[pr->kind], pr->e->data, pr->e->key_len, g);
			exists = g != NULL;
		}
		for (j = 0; j < i && !exists; j++) {
			const struct pending_rec *q = &it->recs[j];

			exists = q->kind == pr->kind && q->e->key_len == pr->e->key_len &&
				 memcmp(q->e->data, pr->e->data, pr->e->key_len) == 0;
		}
		if (pr->create_only && exists)
			return CAPF_EEXIST;
		if (pr->must_exist && !exists)
			return CAPF_ENOENT;
	}

	for (i = 0; i < it->n_recs; i++) {
		struct pending_rec *pr = &it->recs[i], *g = NULL;

		HASH_FIND(ghh, gsets[pr->kind], pr->e->data, pr->e->key_len, g);
		if (g)
			continue;
		HASH_ADD_KEYPTR(ghh, gsets[pr->kind], pr->e->data, pr->e->key_len, pr);
		if (!pr->ghh.tbl) {
			group_keys_rollback(gsets, it);
			return CAPF_ENOMEM;
		}
		pr->in_group = 1;
	}
	return 0;
}

/* Writes every iovec, looping over partial writes and IOV_MAX. Consumes iov. */
static int write_all(int fd, struct iovec *iov, size_t cnt)
{
	while (cnt > 0) {
		int batch = cnt > IOV_MAX ? IOV_MAX : (int)cnt;
		ssize_t n = writev(fd, iov, batch);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return write_err_from_errno(errno);
		}
		if (n == 0)
			return CAPF_EIO;
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

/*
 * Undoes a failed group write: a partial entry must never stay in the log,
 * and the truncation itself must be durable, or a crash could bring back a
 * txn whose caller was told it failed. If that fails too, the log may end
 * in garbage, so the store refuses every later write.
 */
static void truncate_back(struct store *st)
{
	if (ftruncate(st->log_fd, st->log_size) < 0 || fdatasync(st->log_fd) < 0)
		st->failed = CAPF_EIO;
}

/* Writes the entries of the items whose result is still 0, then syncs. */
static int write_group(struct store *st, struct txn_item *head, size_t n_ok, int fault)
{
	struct iovec *iov = NULL;
	struct txn_item *it;
	size_t cnt = 0;
	int ret = 0;

	if (fault) {
		/* Simulate a write that stops part-way: half an entry reaches
		 * the file, then the disk reports the fault. */
		for (it = head; it && it->result != 0; it = it->next)
			;
		if (it) {
			/* Whether this write works does not matter: the
			 * simulated fault is reported either way. */
			ssize_t w = write(st->log_fd, it->entry, it->entry_len / 2);

			(void)w;
		}
		ret = fault < 0 ? fault : CAPF_EIO;
		truncate_back(st);
		goto out;
	}

	iov = malloc(n_ok * sizeof(*iov));
	if (!iov) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	for (it = head; it; it = it->next) {
		if (it->result != 0)
			continue;
		iov[cnt].iov_base = it->entry;
		iov[cnt].iov_len = it->entry_len;
		cnt++;
	}
	ret = write_all(st->log_fd, iov, cnt);
	if (ret == 0 && fdatasync(st->log_fd) < 0)
		ret = write_err_from_errno(errno);
	if (ret < 0)
		truncate_back(st);
out:
	free(iov);
	return ret;
}

/* Applies the written txns to the index and counts them. */
static void apply_group(struct store *st, struct txn_item *head, size_t n_ok)
{
	struct txn_item *it;
	size_t i;

	pthread_rwlock_wrlock(&st->idx_lock);
	for (it = head; it; it = it->next) {
		if (it->result != 0)
			continue;
		for (i = 0; i < it->n_recs; i++) {
			struct pending_rec *pr = &it->recs[i];

			if (index_put(index_table(st, pr->kind), pr->e) < 0) {
				/* The txn is durable but the index could not take
				 * it: memory no longer matches the log, so report
				 * the txn as failed and refuse later writes. */
				it->result = CAPF_ENOMEM;
				st->failed = CAPF_EIO;
				continue;
			}
			pr->e = NULL;
		}
	}
	st->stats.txns_written += n_ok;
	st->stats.syncs++;
	pthread_rwlock_unlock(&st->idx_lock);
}

/* One group commit: everything that was queued when the writer woke up. */
static void writer_group(struct store *st, struct txn_item *head)
{
	struct pending_rec *gsets[2] = { NULL, NULL };
	int fault = atomic_load(&st->fault);
	struct txn_item *it, *next;
	size_t n_ok = 0;
	int ret;

	for (it = head; it; it = it->next) {
		if (st->failed)
			it->result = st->failed;
		else
			it->result = check_txn(st, gsets, it);
		if (it->result == 0)
			n_ok++;
	}
	/* The key sets only point into the items; clearing frees the tables. */
	HASH_CLEAR(ghh, gsets[REC_DEVICE]);
	HASH_CLEAR(ghh, gsets[REC_CERT]);

	if (n_ok > 0) {
		ret = write_group(st, head, n_ok, fault);
		if (ret < 0) {
			for (it = head; it; it = it->next)
				if (it->result == 0)
					it->result = ret;
		} else {
			for (it = head; it; it = it->next)
				if (it->result == 0)
					st->log_size += (off_t)it->entry_len;
			apply_group(st, head, n_ok);
		}
	}

	for (it = head; it; it = next) {
		next = it->next;
		if (it->cb)
			it->cb(it->result, it->arg);
		item_free(it);
	}
}

static void *writer_main(void *arg)
{
	struct store *st = arg;

	for (;;) {
		struct txn_item *head;
		int closing;

		pthread_mutex_lock(&st->q_lock);
		while (!st->q_head && !st->closing)
			pthread_cond_wait(&st->q_cond, &st->q_lock);
		head = st->q_head;
		st->q_head = st->q_tail = NULL;
		closing = st->closing;
		pthread_mutex_unlock(&st->q_lock);

		if (head)
			writer_group(st, head);
		else if (closing)
			break;
	}
	return NULL;
}

/* ---- open and close ------------------------------------------------------- */

static void store_free(struct store *st)
{
	if (!st)
		return;
	index_clear(&st->devices);
	index_clear(&st->certs);
	if (st->log_fd >= 0)
		close(st->log_fd);
	/* Closing the lock file releases the flock. */
	if (st->lock_fd >= 0)
		close(st->lock_fd);
	pthread_mutex_destroy(&st->q_lock);
	pthread_cond_destroy(&st->q_cond);
	pthread_rwlock_destroy(&st->idx_lock);
	free(st->log_path);
	free(st->dir);
	free(st);
}

/* Creates dir if needed and checks that it is a directory. */
static int open_dir(const char *dir)
{
	struct stat sb;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		set_error("cannot create state directory %s: %s", dir, strerror(errno));
		return err_from_errno(errno);
	}
	if (stat(dir, &sb) < 0) {
		set_error("cannot stat state directory %s: %s", dir, strerror(errno));
		return err_from_errno(errno);
	}
	if (!S_ISDIR(sb.st_mode)) {
		set_error("state directory %s is not a directory", dir);
		return CAPF_EINVAL;
	}
	return 0;
}

/* Takes the directory lock and writes our pid into the lock file. */
static int lock_dir(struct store *st)
{
	char *path = NULL;
	char buf[32];
	ssize_t n;
	int ret = 0;

	path = path_join(st->dir, STORE_LOCK_NAME);
	if (!path) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	st->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (st->lock_fd < 0) {
		set_error("cannot open %s: %s", path, strerror(errno));
		ret = err_from_errno(errno);
		goto out;
	}
	if (flock(st->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK) {
			set_error("cannot lock %s: %s", path, strerror(errno));
			ret = err_from_errno(errno);
			goto out;
		}
		n = pread(st->lock_fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		set_error("state directory %s is in use by another process (pid %s)", st->dir,
			  buf[0] ? buf : "unknown");
		ret = CAPF_ELOCKED;
		goto out;
	}
	/* The pid is only for people looking at the directory: the lock is
	 * the flock, which the kernel drops when the process dies. */
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(st->lock_fd, 0) < 0 || pwrite(st->lock_fd, buf, (size_t)n, 0) != n) {
		set_error("cannot write %s: %s", path, strerror(errno));
		ret = err_from_errno(errno);
		goto out;
	}
out:
	free(path);
	return ret;
}

/* Fsyncs a directory so that a rename in it is durable. */
static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = 0;

	if (fd < 0)
		return err_from_errno(errno);
	if (fsync(fd) < 0)
		ret = err_from_errno(errno);
	close(fd);
	return ret;
}

/*
 * Writes a fresh log holding only the header. It goes to a temporary file
 * that is renamed over the log, so a crash leaves either no log or a
 * complete header, never a short one.
 */
static int create_log(struct store *st)
{
	uint8_t hdr[STORE_LOG_HEADER_LEN];
	char *tmp = NULL;
	int fd = -1, ret = 0;

	tmp = path_join(st->dir, STORE_LOG_NAME ".tmp");
	if (!tmp) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	store_log_header_encode(hdr);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		set_error("cannot create %s: %s", tmp, strerror(errno));
		ret = err_from_errno(errno);
		goto out;
	}
	if (write(fd, hdr, sizeof(hdr)) != (ssize_t)sizeof(hdr) || fsync(fd) < 0) {
		set_error("cannot write %s: %s", tmp, strerror(errno));
		ret = write_err_from_errno(errno);
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		set_error("cannot write %s: %s", tmp, strerror(errno));
		ret = write_err_from_errno(errno);
		goto out;
	}
	fd = -1;
	if (rename(tmp, st->log_path) < 0) {
		set_error("cannot rename %s to %s: %s", tmp, st->log_path, strerror(errno));
		ret = err_from_errno(errno);
		goto out;
	}
	ret = sync_dir(st->dir);
	if (ret < 0)
		set_error("cannot sync state directory %s: %s", st->dir, strerror(-ret));
out:
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	free(tmp);
	return ret;
}

/* Reads the log into the index, dropping a torn tail. */
static int load_log(struct store *st)
{
	struct store_scan_result res;
	struct stat sb;
	void *map = MAP_FAILED;
	size_t len = 0;
	int ret = 0;

	st->log_fd = open(st->log_path, O_RDWR | O_APPEND | O_CLOEXEC);
	if (st->log_fd < 0 && errno != ENOENT) {
		set_error("cannot open %s: %s", st->log_path, strerror(errno));
		ret = err_from_errno(errno);
		goto out;
	}
	if (st->log_fd >= 0) {
		if (fstat(st->log_fd, &sb) < 0) {
			set_error("cannot stat %s: %s", st->log_path, strerror(errno));
			ret = err_from_errno(errno);
			goto out;
		}
		len = (size_t)sb.st_size;
	}
	if (len == 0) {
		if (st->log_fd >= 0) {
			close(st->log_fd);
			st->log_fd = -1;
		}
		ret = create_log(st);
		if (ret < 0)
			goto out;
		st->log_fd = open(st->log_path, O_RDWR | O_APPEND | O_CLOEXEC);
		if (st->log_fd < 0) {
			set_error("cannot open %s: %s", st->log_path, strerror(errno));
			ret = err_from_errno(errno);
			goto out;
		}
		st->log_size = STORE_LOG_HEADER_LEN;
		goto out;
	}

	map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, st->log_fd, 0);
	if (map == MAP_FAILED) {
		set_error("cannot map %s: %s", st->log_path, strerror(errno));
		ret = err_from_errno(errno);
		goto out;
	}
	ret = store_log_scan(map, len, replay_txn, st, &res);
	if (ret == CAPF_ECORRUPT) {
		if (res.bad_off == 0 && res.version != STORE_LOG_VERSION && res.version != 0)
			set_error("%s: %s (version %u)", st->log_path, res.reason,
				  (unsigned)res.version);
		else if (res.bad_off == 0)
			set_error("%s: %s", st->log_path, res.reason);
		else
			set_error("%s: damaged entry at byte offset %zu (%s) with good entries "
				  "after it; refusing to drop them",
				  st->log_path, res.bad_off, res.reason);
		goto out;
	}
	if (ret < 0) {
		set_error("cannot load %s: %s", st->log_path,
			  ret == CAPF_ENOMEM ? "out of memory" : "replay failed");
		goto out;
	}
	munmap(map, len);
	map = MAP_FAILED;

	if (res.torn) {
		if (ftruncate(st->log_fd, (off_t)res.valid_len) < 0 || fsync(st->log_fd) < 0) {
			set_error("cannot drop the torn tail of %s at byte offset %zu: %s",
				  st->log_path, res.valid_len, strerror(errno));
			ret = err_from_errno(errno);
			goto out;
		}
		st->stats.torn_bytes_dropped = len - res.valid_len;
	}
	st->log_size = (off_t)res.valid_len;
out:
	if (map != MAP_FAILED)
		munmap(map, len);
	return ret;
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
		set_error("cannot start the store writer: %s", strerror(e));
		return e == EAGAIN ? CAPF_ENOMEM : CAPF_EIO;
	}
	st->writer_started = 1;
	return 0;
}

int store_open(struct store **out, const char *dir)
{
	struct store *st = NULL;
	char *tmp = NULL;
	int ret = 0;

	last_error[0] = '\0';
	if (out)
		*out = NULL;
	if (!out || !dir || !dir[0]) {
		set_error("no state directory given");
		ret = CAPF_EINVAL;
		goto out;
	}
	st = calloc(1, sizeof(*st));
	if (!st) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	st->lock_fd = -1;
	st->log_fd = -1;
	st->q_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
	st->q_cond = (pthread_cond_t)PTHREAD_COND_INITIALIZER;
	st->idx_lock = (pthread_rwlock_t)PTHREAD_RWLOCK_INITIALIZER;
	atomic_init(&st->fault, 0);
	st->dir = strdup(dir);
	st->log_path = path_join(dir, STORE_LOG_NAME);
	tmp = path_join(dir, STORE_LOG_NAME ".tmp");
	if (!st->dir || !st->log_path || !tmp) {
		ret = CAPF_ENOMEM;
		goto out;
	}

	ret = open_dir(dir);
	if (ret < 0)
		goto out;
	ret = lock_dir(st);
	if (ret < 0)
		goto out;
	/* A temporary log left by a crash during creation is incomplete. */
	unlink(tmp);
	ret = load_log(st);
	if (ret < 0)
		goto out;
	ret = start_writer(st);
	if (ret < 0)
		goto out;
	*out = st;
	st = NULL;
out:
	if (ret == CAPF_ENOMEM && !last_error[0])
		set_error("out of memory opening state directory %s", dir ? dir : "");
	free(tmp);
	store_free(st);
	return ret;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	pthread_mutex_lock(&st->q_lock);
	st->closing = 1;
	pthread_cond_signal(&st->q_cond);
	pthread_mutex_unlock(&st->q_lock);
	if (st->writer_started)
		pthread_join(st->writer, NULL);
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
	int locked = 0, ret = 0;

	if (out)
		*out = NULL;
	if (n)
		*n = 0;
	if (!st || !out || !n) {
		ret = CAPF_EINVAL;
		goto out;
	}
	pthread_rwlock_rdlock(&st->idx_lock);
	locked = 1;
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
	locked = 0;
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
}

void store_set_fault(struct store *st, int err)
{
	if (st)
		atomic_store(&st->fault, err);
}
