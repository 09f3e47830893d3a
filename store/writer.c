/*
 * The writer thread: one group commit for everything queued (precondition
 * checks, audit entries then txn entries and the audit entries' copies,
 * one fdatasync of the segment), the
 * index applied afterwards, callbacks last; and what happens when a write
 * fails.
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
/* The revision of pr's key as the txn's earlier records (tset: the
 * latest of each key), the group's earlier txns and the index give it. */
static bool current_revision(struct store *st, struct pending_rec **gsets,
			     struct pending_rec **tset, const struct pending_rec *pr, uint64_t *rev)
{
	const uint8_t *key = store_entry_key(pr->e);
	struct pending_rec *g = NULL;
	struct idx_entry *e;

	HASH_FIND(thh, tset[pr->kind], key, pr->e->key_len, g);
	if (g) {
		*rev = g->e->revision;
		return true;
	}
	HASH_FIND(ghh, gsets[pr->kind], key, pr->e->key_len, g);
	if (g) {
		*rev = (g->g_latest ? g->g_latest : g)->e->revision;
		return true;
	}
	e = store_index_find(*store_index_table(st, pr->kind), key, pr->e->key_len);
	if (e) {
		*rev = e->revision;
		return true;
	}
	return false;
}

/* Makes pr the latest record of its key in the txn set. */
static int txn_set_add(struct pending_rec **tset, struct pending_rec *pr)
{
	const uint8_t *key = store_entry_key(pr->e);
	struct pending_rec *q = NULL;

	HASH_FIND(thh, tset[pr->kind], key, pr->e->key_len, q);
	if (q)
		HASH_DELETE(thh, tset[pr->kind], q);
	HASH_ADD_KEYPTR(thh, tset[pr->kind], key, pr->e->key_len, pr);
	return pr->thh.tbl ? 0 : CAPF_ENOMEM;
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
	/* The txn's own keys in a hash of their own, so that a txn of
	 * many records is checked in time linear in their number. */
	struct pending_rec *tset[2] = { NULL, NULL };
	size_t i;
	int ret = 0;

	for (i = 0; i < it->n_recs && ret == 0; i++) {
		struct pending_rec *pr = &it->recs[i];
		uint64_t rev = 0;
		bool exists;

		if (pr->create_only || pr->must_exist || pr->check_revision) {
			exists = current_revision(st, gsets, tset, pr, &rev);
			if (pr->create_only && exists)
				ret = CAPF_EEXIST;
			else if ((pr->must_exist || pr->check_revision) && !exists)
				ret = CAPF_ENOENT;
			else if (pr->check_revision && rev != pr->expect_revision)
				ret = CAPF_ESTALE;
		}
		if (ret == 0 && i + 1 < it->n_recs)
			ret = txn_set_add(tset, pr);
	}
	HASH_CLEAR(thh, tset[0]);
	HASH_CLEAR(thh, tset[1]);
	if (ret < 0)
		return ret;

	for (i = 0; i < it->n_recs; i++) {
		struct pending_rec *pr = &it->recs[i], *g = NULL;

		HASH_FIND(ghh, gsets[pr->kind], store_entry_key(pr->e), pr->e->key_len, g);
		if (g)
			continue;
		pr->g_latest = NULL;
		HASH_ADD_KEYPTR(ghh, gsets[pr->kind], store_entry_key(pr->e), pr->e->key_len, pr);
		if (!pr->ghh.tbl) {
			group_keys_rollback(gsets, it);
			return CAPF_ENOMEM;
		}
		pr->in_group = true;
	}
	/* Nothing can fail from here, so no latest pointer needs undoing. */
	for (i = 0; i < it->n_recs; i++) {
		struct pending_rec *pr = &it->recs[i], *g = NULL;

		HASH_FIND(ghh, gsets[pr->kind], store_entry_key(pr->e), pr->e->key_len, g);
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
	st->seg_lazy = false;
	st->audit_synced = st->chain.end;
	st->audit_lazy = false;
	return 0;
}

int store_segment_sync(struct store *st)
{
	if (!st->seg_lazy)
		return 0;
	if (fdatasync(st->seg_fd) < 0)
		return store_write_err(errno);
	st->seg_lazy = false;
	return 0;
}

/* A group's audit entries, encoded in chain order, and what goes to the
 * files, framed at the place it goes. */
struct audit_batch {
	struct audit_ev **evs;
	size_t n;
	struct store_audit_chain chain; /* after the batch */
	struct store_buf audit_out;     /* the framed audit entries */
	struct store_buf seg_out;       /* the framed txn entries and the anchor */
	uint64_t seg_end;               /* the segment's size after the group */
};

/* Encodes and frames the audit entries: the chain goes on from st->chain. */
static int encode_audit(struct store *st, struct audit_batch *b)
{
	struct store_framer f = { st->audit_salt, st->chain.end, st->audit_group, false };
	size_t i;
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
		uint64_t start = 0;

		free(a->entry);
		a->entry = NULL;
		ret = store_audit_encode(&ev, b->chain.seq + 1, a->time, b->chain.hash, &a->entry,
					 &a->entry_len, hash);
		if (ret < 0)
			return ret;
		ret = store_frame_entry(&f, a->entry, a->entry_len, i + 1 == b->n, &b->audit_out,
					&start);
		if (ret < 0)
			return ret;
		b->chain.seq++;
		b->chain.file = st->audit_file;
		b->chain.offset = start;
		memcpy(b->chain.hash, hash, STORE_HASH_LEN);
	}
	b->chain.end = f.pos;
	return 0;
}

/*
 * Frames the accepted txns of the group and, after audit entries, the
 * anchor that records the audit log's new end; the last entry commits.
 */
static int encode_segment(struct store *st, struct item *head, struct audit_batch *b)
{
	struct store_framer f = { st->seg_salt, st->seg_size, st->seg_group, st->seg_lazy };
	Capf__StoreTxn txn = CAPF__STORE_TXN__INIT;
	Capf__AuditAnchor an = CAPF__AUDIT_ANCHOR__INIT;
	ProtobufCBinaryData *copies = NULL;
	uint8_t *anchor = NULL;
	struct item *it, *last = NULL;
	size_t plen;
	int ret = 0;

	for (it = head; it; it = it->next)
		if (it->kind == ITEM_TXN && it->result == 0)
			last = it;
	for (it = head; it; it = it->next) {
		if (it->kind != ITEM_TXN || it->result != 0)
			continue;
		for (size_t k = 0; k < it->n_parts; k++) {
			bool commit = it == last && k + 1 == it->n_parts && b->n == 0;

			ret = store_frame_entry(&f, it->parts[k].p, it->parts[k].len, commit,
						&b->seg_out, NULL);
			if (ret < 0)
				goto out;
		}
	}
	if (b->n > 0) {
		an.seq = b->chain.seq;
		an.offset = b->chain.offset;
		an.file = b->chain.file;
		an.hash.data = b->chain.hash;
		an.hash.len = STORE_HASH_LEN;
		/* The group's audit entries, so that this sync makes them
		 * durable: recovery frames them again from here. */
		copies = calloc(b->n, sizeof(*copies));
		if (!copies) {
			ret = CAPF_ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < b->n; i++) {
			copies[i].data = b->evs[i]->entry;
			copies[i].len = b->evs[i]->entry_len;
		}
		an.n_entries = b->n;
		an.entries = copies;
		an.group_start = st->chain.end;
		an.group = st->audit_group;
		an.after_lazy = false;
		an.synced = st->audit_synced;
		st->synced_recorded = st->audit_synced;
		txn.time = (int64_t)time(NULL);
		txn.audit = &an;
		plen = capf__store_txn__get_packed_size(&txn);
		anchor = malloc(plen);
		if (!anchor) {
			ret = CAPF_ENOMEM;
			goto out;
		}
		capf__store_txn__pack(&txn, anchor);
		ret = store_frame_entry(&f, anchor, plen, true, &b->seg_out, NULL);
	}
	b->seg_end = f.pos;
out:
	free(copies);
	free(anchor);
	return ret;
}

/*
 * The test seam: the write stops part-way, half of it reaching the file,
 * then the disk reports the fault.
 */
static int inject_fault(struct store *st, int fault, int fd, const uint8_t *data, size_t len,
			const char *what)
{
	ssize_t w;

	if (data && len > 1) {
		/* Whether this write works does not matter: the simulated
		 * fault is reported either way. */
		w = write(fd, data, len / 2);
		(void)w;
	}
	snprintf(st->fault_text, sizeof(st->fault_text), "write to %s/%s failed: %s (injected)",
		 st->dir, what, strerror(-fault));
	return fault;
}

/*
 * Writes a group: audit entries to the audit file, not synced, then the
 * txn entries and the anchor, which carries a copy of those audit entries,
 * to the segment, synced: one fdatasync makes the group durable, its
 * audit entries with it (recovery restores the audit file's end from the
 * copies if a power cut lost any of it). Each file gets one write of one
 * group whose last entry commits. The audit groups are framed as if each
 * followed a synced one, so that readers without the segment (audit
 * verify) take damage in the middle of the file for what it may be; only
 * the copies, at open, tell a lost unsynced end from damage. A lazy group
 * (store_submit_lazy() txns only) is written and not synced; the groups
 * written after it until the next sync say so (AFTER_LAZY), so that a
 * power cut may leave it torn with them.
 */
static uint64_t since_us(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (uint64_t)(t1.tv_sec - t0->tv_sec) * 1000000u +
	       (uint64_t)((t1.tv_nsec - t0->tv_nsec) / 1000);
}

static int write_group(struct store *st, struct audit_batch *b, int fault, bool lazy,
		       uint64_t *sync_us)
{
	char segname[64], audname[64];
	struct timespec t0;
	int ret = 0;

	store_seq_name(segname, sizeof(segname), STORE_SEG_PREFIX, st->seg_seq);
	store_audit_name(audname, sizeof(audname), st->audit_file);
	if (b->audit_out.len > 0) {
		if (fault) {
			ret = inject_fault(st, fault, st->audit_fd, b->audit_out.data,
					   b->audit_out.len, audname);
			goto fail;
		}
		ret = store_write_full(st->audit_fd, b->audit_out.data, b->audit_out.len);
		if (ret < 0) {
			snprintf(st->fault_text, sizeof(st->fault_text), "write to %s/%s failed: %s",
				 st->dir, audname, strerror(-ret));
			goto fail;
		}
	}
	if (b->seg_out.len == 0)
		goto out;
	if (fault) {
		ret = inject_fault(st, fault, st->seg_fd, b->seg_out.data, b->seg_out.len, segname);
		goto fail;
	}
	ret = store_write_full(st->seg_fd, b->seg_out.data, b->seg_out.len);
	if (ret == 0 && !lazy) {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (fdatasync(st->seg_fd) < 0)
			ret = store_write_err(errno);
		*sync_us = since_us(&t0);
	}
	if (ret < 0) {
		snprintf(st->fault_text, sizeof(st->fault_text), "write to %s/%s failed: %s",
			 st->dir, segname, strerror(-ret));
		goto fail;
	}
	goto out;
fail:
	(void)truncate_back(st);
out:
	return ret;
}

int store_record_sync(struct store *st)
{
	struct store_framer f = { st->seg_salt, st->seg_size, st->seg_group, st->seg_lazy };
	Capf__StoreTxn txn = CAPF__STORE_TXN__INIT;
	Capf__AuditAnchor an = CAPF__AUDIT_ANCHOR__INIT;
	struct store_buf out = { 0 };
	uint8_t *p = NULL;
	size_t plen;
	int ret;

	if (st->failed || st->chain.seq == 0 || st->audit_lazy ||
	    st->synced_recorded == st->audit_synced || atomic_load(&st->fault))
		return 0;
	an.seq = st->chain.seq;
	an.offset = st->chain.offset;
	an.file = st->chain.file;
	an.hash.data = st->chain.hash;
	an.hash.len = STORE_HASH_LEN;
	an.synced = st->audit_synced;
	txn.time = (int64_t)time(NULL);
	txn.audit = &an;
	plen = capf__store_txn__get_packed_size(&txn);
	p = malloc(plen);
	if (!p)
		return CAPF_ENOMEM;
	capf__store_txn__pack(&txn, p);
	ret = store_frame_entry(&f, p, plen, true, &out, NULL);
	if (ret == 0)
		ret = store_write_full(st->seg_fd, out.data, out.len);
	if (ret == 0 && fdatasync(st->seg_fd) < 0)
		ret = store_write_err(errno);
	if (ret == 0) {
		st->seg_size = f.pos;
		st->seg_group++;
		st->seg_lazy = false;
		st->synced_recorded = st->audit_synced;
	} else {
		(void)truncate_back(st);
	}
	store_buf_free(&out);
	free(p);
	return ret;
}

int store_audit_sync(struct store *st)
{
	if (!st->audit_lazy)
		return 0;
	if (fdatasync(st->audit_fd) < 0)
		return store_write_err(errno);
	st->audit_synced = st->chain.end;
	st->audit_lazy = false;
	st->audit_sync_count++;
	return 0;
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

			if (store_index_put(st, pr->kind, pr->e) < 0) {
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
	double now = store_now_mono();
	unsigned interval = st->opt.fault_log_interval;

	st->fault_count++;
	if (!st->fault_active) {
		st->fault_active = true;
		st->fault_since = now;
		st->fault_logged = now;
		st->fault_suppressed = 0;
		store_emit(st, STORE_SEV_ERROR,
		     "store: %s; no certificate is issued until writes succeed again (%s)",
		     st->fault_text[0] ? st->fault_text : capf_strerror(err), capf_errname(err));
		return;
	}
	if (now - st->fault_logged >= interval) {
		store_emit(st, STORE_SEV_ERROR,
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
	store_emit(st, STORE_SEV_WARNING,
	     "store: writes succeed again, after %llu failed writes in %.1f s",
	     (unsigned long long)st->fault_count, store_now_mono() - st->fault_since);
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
		store_retry_push(st, it->audit);
		it->audit = NULL;
	}
}

/*
 * Starts the next audit file once the current one is full, so the audit
 * log is a series of bounded files whose chain goes on from one to the
 * next. A failure keeps the current file (nothing is lost) and is tried
 * again a minute later.
 */
static void rotate_audit(struct store *st)
{
	double now = store_now_mono();

	if (st->audit_rotate_failed_at != 0 && now - st->audit_rotate_failed_at < 60.0)
		return;
	/* The finished file is durable on its own before the next starts:
	 * the copies in the segment only restore the newest file. */
	if (store_audit_sync(st) < 0) {
		st->audit_rotate_failed_at = now;
		store_emit(st, STORE_SEV_ERROR, "store: cannot sync the audit file before "
			   "starting the next: %s", strerror(errno));
		return;
	}
	if (store_audit_file_new(st, st->audit_file + 1) < 0) {
		st->audit_rotate_failed_at = now;
		store_emit(st, STORE_SEV_ERROR, "store: cannot start the next audit file: %s",
			   store_last_error());
		return;
	}
	st->audit_rotate_failed_at = 0;
	store_emit(st, STORE_SEV_INFO, "store: the audit log goes on in " STORE_AUDIT_PREFIX
		   STORE_SEQ_FMT STORE_AUDIT_SUFFIX, st->audit_file);
}

const uint64_t store_commit_bounds_us[STORE_COMMIT_BUCKETS] = {
	500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000,
};

const uint64_t store_group_bounds[STORE_GROUP_BUCKETS] = {
	1, 2, 4, 8, 16, 32, 64, 128, 256,
};

static size_t bucket_of(uint64_t v, const uint64_t *bounds, size_t n)
{
	size_t i = 0;

	while (i < n && v > bounds[i])
		i++;
	return i;
}

static void update_stats(struct store *st, size_t n_ok, int wrote, int failed,
			 uint64_t commit_us, uint64_t sync_us, bool lazy)
{

	pthread_rwlock_wrlock(&st->idx_lock);
	st->stats.txns_written += n_ok;
	st->stats.syncs += wrote && !lazy;
	st->stats.lazy_groups += wrote && lazy;
	st->stats.audit_syncs = st->audit_sync_count;
	if (wrote) {
		st->stats.commit_le[bucket_of(commit_us, store_commit_bounds_us,
					      STORE_COMMIT_BUCKETS)]++;
		st->stats.commit_us_total += commit_us;
	}
	if (wrote && !lazy) {
		st->stats.sync_le[bucket_of(sync_us, store_commit_bounds_us,
					    STORE_COMMIT_BUCKETS)]++;
		st->stats.sync_us_total += sync_us;
		st->stats.group_le[bucket_of(n_ok, store_group_bounds, STORE_GROUP_BUCKETS)]++;
		st->stats.group_txns_total += n_ok;
	}
	st->stats.write_failures += failed;
	st->stats.segment_seq = st->seg_seq;
	st->stats.segment_bytes = st->seg_size;
	st->stats.audit_seq = st->chain.seq;
	st->stats.audit_pending = st->retry_n;
	st->stats.audit_lost = st->audit_lost_total;
	st->stats.audit_file = st->audit_file;
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
	bool audit_upkeep = false; /* entries written: the audit file's sync and rotation */
	/* Not synced if nothing in it needs to be: lazy txns and audit events
	 * on their own (store_audit() promises no sync) only. */
	bool lazy = st->retry_head == NULL && st->audit_lost_unreported == 0;
	struct timespec t0;
	uint64_t commit_us = 0, sync_us = 0;

	if (st->failed)
		(void)truncate_back(st);
	for (it = head; it; it = it->next) {
		lazy = lazy && ((it->kind == ITEM_TXN && it->lazy) || it->kind == ITEM_AUDIT);
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
	if (ret == 0)
		ret = encode_segment(st, head, &b);
	if (ret < 0) {
		snprintf(st->fault_text, sizeof(st->fault_text), "cannot encode the group: %s",
			 capf_strerror(ret));
		goto fail;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = write_group(st, &b, fault, lazy, &sync_us);
	if (ret < 0)
		goto fail;
	commit_us = since_us(&t0);

	wrote = 1;
	note_success(st);
	if (b.seg_out.len > 0) {
		st->seg_size = b.seg_end;
		st->seg_group++;
		st->seg_lazy = lazy;
	}
	if (b.n > 0) {
		st->chain = b.chain;
		st->audit_group++;
		st->audit_lazy = true;
		audit_upkeep = true;
	}
	if (lost_ev.kind)
		st->audit_lost_unreported = 0;
	for (a = st->retry_head; a; a = anext) {
		anext = a->next;
		store_audit_ev_free(a);
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
	store_buf_free(&b.audit_out);
	store_buf_free(&b.seg_out);
	free(b.evs);
	update_stats(st, wrote ? n_ok : 0, wrote, failed, commit_us, sync_us, lazy);

	for (it = head; it; it = next) {
		next = it->next;
		if (it->kind == ITEM_TXN && it->cb) {
			it->cb(it->result, it->arg);
		} else if (it->kind == ITEM_FLUSH) {
			store_waiter_done(it->w, failed ? ret : 0);
		} else if (it->kind == ITEM_COMPACT) {
			int r = store_compact_start(st, it->w);

			if (r < 0)
				store_waiter_done(it->w, r);
		}
		store_item_free(it);
	}

	/* Now and then the audit file itself, so that the copies a restart
	 * may need stay few, and its rotation: once the group's waiters have
	 * their answer, since the group is durable without them (its entries
	 * are copied in the segment's anchor) and the sync of a megabyte of
	 * entries must not add to their wait. A failure loses nothing: the
	 * copies hold it, and the next sync tries again. */
	if (audit_upkeep) {
		if (st->chain.end - st->audit_synced >= STORE_AUDIT_SYNC_BYTES)
			(void)store_audit_sync(st);
		if (st->chain.end >= st->opt.audit_file_bytes ||
		    st->audit_group >= STORE_GROUPS_MAX)
			rotate_audit(st);
	}

	/* Past the threshold, compact on our own (quietly skipped while one
	 * runs; a failed rotation is tried again after a minute). */
	if ((st->seg_size >= st->opt.compact_bytes || st->seg_group >= STORE_GROUPS_MAX) &&
	    !st->failed) {
		bool busy;

		pthread_mutex_lock(&st->c_lock);
		busy = st->compacting;
		pthread_mutex_unlock(&st->c_lock);
		if (!busy && (st->rotate_failed_at == 0 || store_now_mono() - st->rotate_failed_at >= 60.0))
			(void)store_compact_start(st, NULL);
	}
}

/*
 * The writer waits for items; while audit events wait for the disk (or
 * the files wait to be cut back after a failed write) it also wakes up
 * every few seconds to try again, so that an idle server recovers too.
 */
/* Keeps the aggregates that are due for the next group, first in line
 * with the other events that wait; more than the bound are counted lost. */
static void keep_aggregates(struct store *st, struct audit_ev **aggs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (st->retry_n >= STORE_AUDIT_RETRY_MAX) {
			st->audit_lost_unreported++;
			st->audit_lost_total++;
			store_audit_ev_free(aggs[i]);
			continue;
		}
		store_retry_push(st, aggs[i]);
	}
	free(aggs);
}

/*
 * The writer waits for items; while audit events wait for the disk (or
 * the files wait to be cut back after a failed write) it also wakes up
 * every few seconds to try again, so that an idle server recovers too;
 * and when the interval of the aggregated failures ends, it wakes to
 * write them.
 */
void *store_writer_main(void *arg)
{
	struct store *st = arg;

	for (;;) {
		struct audit_ev **aggs = NULL;
		size_t n_aggs = 0;
		uint64_t refused;
		struct item *head;
		bool closing, retry;

		pthread_mutex_lock(&st->q_lock);
		/* Quiet events alone do not end the wait: they go with the
		 * next item that wants the writer (or a timeout's work). */
		while (!st->q_wake && !st->closing && !st->kick) {
			struct timespec ts;
			double wait = STORE_RETRY_SECONDS;

			if (!st->retry_head && !st->failed && st->agg_n == 0) {
				pthread_cond_wait(&st->q_cond, &st->q_lock);
				continue;
			}
			if (st->agg_n) {
				double left = st->agg_since + st->opt.audit_aggregate_seconds -
					      store_now_mono();

				if (left <= 0 || st->agg_flush)
					break;
				if ((!st->retry_head && !st->failed) || left < wait)
					wait = left;
			}
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += (time_t)wait;
			ts.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			if (pthread_cond_timedwait(&st->q_cond, &st->q_lock, &ts) == ETIMEDOUT)
				break;
		}
		head = st->q_head;
		st->q_head = st->q_tail = NULL;
		st->q_len = 0;
		st->q_wake = false;
		closing = st->closing;
		st->kick = false;
		if (store_agg_take(st, closing, &aggs, &n_aggs) < 0)
			st->agg_flush = true; /* out of memory: try again next time */
		refused = st->audit_refused;
		st->audit_refused = 0;
		pthread_mutex_unlock(&st->q_lock);

		keep_aggregates(st, aggs, n_aggs);
		st->audit_lost_unreported += refused;
		st->audit_lost_total += refused;
		retry = st->retry_head || st->failed || st->audit_lost_unreported;
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
