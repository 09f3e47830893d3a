/*
 * Loading a state directory at open: the newest snapshot, the segments
 * after it, the end of the audit log checked against the store's anchor,
 * the conversion of older formats. Every rule of what a crash may leave
 * and what is damage lives here (and in the scan of log.c it relies on).
 */
#include "config.h"

#include <dirent.h>
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

/* ---- loading --------------------------------------------------------------- */

struct load_ctx {
	struct store *st;
	struct store_anchor anchor;   /* the last one seen */
	struct audit_copies copies;
	const char *path;
	uint64_t snap_records;        /* snapshot: records seen */
	Capf__StoreSnapshotInfo *info;
	int error;                    /* text already set */
	bool old_format;              /* a file of format 2 was loaded: convert */
	uint64_t last_seg;            /* the last segment loaded */
};

static int load_rec(const struct store_rec_view *v, void *arg)
{
	struct store *st = arg;
	struct idx_entry *e = store_entry_new(v);

	if (!e)
		return CAPF_ENOMEM;
	if (store_index_put(st, v->kind, e) < 0) {
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
	if (meta.anchor.seq) {
		ret = store_copies_add(&lc->copies, meta.anchor.raw, meta.anchor.raw_len);
		lc->anchor = meta.anchor;
		lc->anchor.raw = NULL; /* points into the file's map */
		lc->anchor.raw_len = 0;
	}
	return ret;
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

void store_set_scan_error(const char *path, int ret, const struct store_scan_result *res)
{
	if (ret == CAPF_ENOMEM)
		store_set_error("out of memory loading %s", path);
	else if (res->bad_off == 0 && res->version != 0)
		store_set_error("%s: %s (version %u)", path, res->reason, (unsigned)res->version);
	else if (res->bad_off == 0)
		store_set_error("%s: %s", path, res->reason);
	else if (res->version == STORE_FORMAT_VERSION)
		store_set_error("%s: damaged entry at byte offset %zu (%s) before the last durable "
				"commit (a later group follows it); refusing to drop what was "
				"acknowledged (see capfctl store check)",
				path, res->bad_off, res->reason);
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
			store_set_scan_error(path, ret, &res);
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
	if (res.version != STORE_FORMAT_VERSION)
		lc->old_format = true;
out:
	if (lc->info)
		capf__store_snapshot_info__free_unpacked(lc->info, NULL);
	lc->info = NULL;
	lc->path = NULL;
	free(path);
	return ret;
}

/*
 * Replays one segment. Only the last one may end in a torn tail (the
 * group that was being written, whatever a power cut left of it), which
 * is cut off here; in the others every entry must be good.
 */
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
	lc->last_seg = seq;
	ret = store_map_file(path, &m);
	if (ret < 0)
		goto out;
	ret = store_scan(m.data, m.len, STORE_FILE_SEGMENT, store_check_txn_payload, NULL,
			 load_txn, lc, &res);
	len = m.len;
	store_unmap_file(&m);
	if (ret < 0) {
		store_set_scan_error(path, ret, &res);
		goto out;
	}
	if (len == 0 && last && st->readonly)
		goto out;
	if (len == 0 && last) {
		/* An empty last segment holds nothing to lose: give it its
		 * header again, the way a new one is made. */
		uint8_t hdr[STORE_HEADER_LEN];
		char err[300];

		st->seg_salt = store_new_salt();
		store_header_encode(hdr, STORE_FILE_SEGMENT, seq, st->seg_salt);
		ret = store_create_file(st->dir, name, hdr, sizeof(hdr), &st->seg_fd, err,
					sizeof(err));
		if (ret < 0) {
			store_set_error("%s", err);
			goto out;
		}
		st->seg_seq = seq;
		st->seg_size = STORE_HEADER_LEN;
		st->seg_group = 1;
		goto out;
	}
	if (len == 0 || res.seq != seq) {
		store_set_error(len == 0 ? "%s: empty segment (no header)"
					   : "%s: the header names another segment",
				path);
		ret = CAPF_ECORRUPT;
		goto out;
	}
	if (res.version != STORE_FORMAT_VERSION)
		lc->old_format = true;
	if (res.torn && !last) {
		/* Only the segment being appended to can be cut by a crash. */
		store_set_error("%s: damaged entry at byte offset %zu (%s) in a finished segment",
				path, res.bad_off, res.reason);
		ret = CAPF_ECORRUPT;
		goto out;
	}
	if (!last)
		goto out;
	st->stats.torn_bytes_dropped = res.torn ? len - res.valid_len : 0;
	if (st->readonly || lc->old_format) {
		/* Read only, or converted to a new segment: this file stays. */
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
		store_emit(st, STORE_SEV_WARNING,
			   "store: dropped a torn tail of %zu bytes at byte offset %zu of %s (%s at "
			   "byte offset %zu): the last group, never acknowledged",
			   len - res.valid_len, res.valid_len, path, res.reason, res.bad_off);
	}
	st->seg_fd = fd;
	fd = -1;
	st->seg_seq = seq;
	st->seg_size = res.valid_len;
	st->seg_salt = res.salt;
	st->seg_group = res.group + 1;
out:
	if (fd >= 0)
		close(fd);
	free(path);
	return ret;
}

/* Removes what a snapshot made obsolete and what a crash left half made. */
void store_remove_obsolete(struct store *st, const struct store_dir_list *l, uint64_t snap)
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
		    strncmp(de->d_name, STORE_AUDIT_PREFIX, strlen(STORE_AUDIT_PREFIX)) != 0)
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

/* Frames every entry handed to it into one group of a new file. */
/* ---- the audit log at open ------------------------------------------------------ */

struct audit_open {
	struct store *st;
	const struct store_anchor *anchor;
	uint64_t file;   /* the file being read */
	const char *path;
	bool found;      /* the anchored entry was seen */
	bool linking;    /* past the anchor (or no anchor): every entry must chain on */
	bool error;      /* text set */
};

static int audit_open_entry(const uint8_t *p, size_t len, size_t off, void *arg)
{
	struct audit_open *ao = arg;
	struct store *st = ao->st;
	int link;

	if (!ao->linking) {
		struct store_audit_chain ch = { 0 };

		if (ao->anchor->file != ao->file || off != ao->anchor->offset)
			return 0;
		link = store_audit_link(p, len, off, &ch, NULL);
		if (link < 0)
			return link;
		if (link != STORE_AUDIT_LINK_OK || ch.seq != ao->anchor->seq ||
		    memcmp(ch.hash, ao->anchor->hash, STORE_HASH_LEN) != 0)
			return 0; /* not found: said below */
		ch.file = ao->file;
		st->chain = ch;
		ao->found = true;
		ao->linking = true;
		return 0;
	}
	link = store_audit_link(p, len, off, &st->chain, NULL);
	if (link < 0)
		return link;
	st->chain.file = ao->file;
	if (link != STORE_AUDIT_LINK_OK) {
		store_set_error("%s: entry at byte offset %zu: %s; see capfctl audit verify and "
				"capfctl store repair",
				ao->path, off, store_audit_link_text(link));
		ao->error = true;
		return CAPF_ECORRUPT;
	}
	return 0;
}

/* The newest file's items: its good entries up to what is kept. */
static int audit_open_item(const struct store_walk_item *it, bool in_tail, void *arg)
{
	if (!it->good || in_tail)
		return 0;
	return audit_open_entry(it->payload, it->len, it->off, arg);
}

int store_audit_file_new(struct store *st, uint64_t file)
{
	uint8_t hdr[STORE_HEADER_LEN];
	char name[64], err[300];
	uint32_t salt = store_new_salt();
	int ret, fd = -1;

	store_header_encode(hdr, STORE_FILE_AUDIT, file, salt);
	store_audit_name(name, sizeof(name), file);
	ret = store_create_file(st->dir, name, hdr, sizeof(hdr), &fd, err, sizeof(err));
	if (ret < 0) {
		store_set_error("%s", err);
		return ret;
	}
	if (st->audit_fd >= 0)
		close(st->audit_fd);
	st->audit_fd = fd;
	st->audit_file = file;
	st->audit_salt = salt;
	st->audit_group = 1;
	st->chain.end = STORE_HEADER_LEN;
	st->audit_synced = STORE_HEADER_LEN; /* the header was synced with the file */
	st->audit_lazy = false;
	return 0;
}

/*
 * No audit file at all. With an anchor, the log was moved away (archived)
 * while capfd was stopped: a new file continues the chain from the anchor
 * and says so first.
 */
static int audit_missing(struct store *st, const struct store_anchor *anchor)
{
	struct store_audit_event ev = { 0 };
	struct audit_ev *a;
	char detail[200];
	int ret;

	memset(&st->chain, 0, sizeof(st->chain));
	ret = store_audit_file_new(st, anchor->seq ? anchor->file + 1 : 1);
	if (ret < 0 || !anchor->seq)
		return ret;
	st->chain.seq = anchor->seq;
	st->chain.file = anchor->file;
	st->chain.offset = anchor->offset;
	memcpy(st->chain.hash, anchor->hash, STORE_HASH_LEN);
	snprintf(detail, sizeof(detail),
		 "continues the chain after seq %llu: the audit log was missing at start",
		 (unsigned long long)anchor->seq);
	ev.kind = CAPF__AUDIT_KIND__AUDIT_STORE;
	ev.peer = "capfd";
	ev.detail = detail;
	a = store_audit_ev_new(&ev, (int64_t)time(NULL));
	if (!a)
		return CAPF_ENOMEM;
	store_retry_push(st, a);
	store_emit(st, STORE_SEV_WARNING,
		   "store: the audit log of %s was missing; a new one continues the chain after "
		   "seq %llu",
		   st->dir, (unsigned long long)anchor->seq);
	return 0;
}

/* Reads one audit file for open_audit(); the last one is opened for appending. */
static int audit_open_file(struct store *st, struct audit_open *ao, bool last)
{
	struct store_scan_result res;
	struct store_file_map m = { 0 };
	char name[64], *path;
	size_t len;
	int ret, fd = -1;

	store_audit_name(name, sizeof(name), ao->file);
	path = store_path(st->dir, name);
	if (!path)
		return CAPF_ENOMEM;
	ao->path = path;
	ret = store_map_file(path, &m);
	if (ret < 0) {
		store_set_error("cannot read %s: %s", path, capf_strerror(ret));
		goto out;
	}
	if (last)
		ret = store_audit_walk_newest(m.data, m.len,
					      ao->anchor->seq && ao->anchor->file == ao->file
						  ? ao->anchor->offset
						  : 0,
					      NULL, audit_open_item, ao, &res);
	else
		ret = store_scan(m.data, m.len, STORE_FILE_AUDIT, store_check_audit_payload, NULL,
				 audit_open_entry, ao, &res);
	len = m.len;
	store_unmap_file(&m);
	if (ret < 0) {
		if (!ao->error)
			store_set_scan_error(path, ret, &res);
		goto out;
	}
	if (len == 0 || res.version != STORE_FORMAT_VERSION || res.seq != ao->file) {
		store_set_error("%s: %s", path,
				len == 0 ? "empty audit file (no header)"
					 : "not an audit file of format 3 with its own number");
		ret = CAPF_ECORRUPT;
		goto out;
	}
	if (res.torn && !last) {
		store_set_error("%s: damaged entry at byte offset %zu (%s) in a finished audit file",
				path, res.bad_off, res.reason);
		ret = CAPF_ECORRUPT;
		goto out;
	}
	if (!last)
		goto out;
	if (ao->anchor->seq && !ao->found) {
		/* Said by the caller; nothing is cut from a file that lost what
		 * the store recorded. */
		ret = 0;
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
			store_set_error("cannot drop the torn tail of %s: %s", path, strerror(errno));
			ret = store_err_from_errno(errno);
			goto out;
		}
		st->stats.audit_torn_bytes_dropped = len - res.valid_len;
		store_emit(st, STORE_SEV_WARNING,
			   "store: dropped a torn tail of %zu bytes at byte offset %zu of %s (%s): "
			   "an interrupted write",
			   len - res.valid_len, res.valid_len, path, res.reason);
	}
	st->audit_fd = fd;
	fd = -1;
	st->audit_file = ao->file;
	st->audit_salt = res.salt;
	st->audit_group = res.group + 1;
	st->chain.end = res.valid_len;
out:
	if (fd >= 0)
		close(fd);
	ao->path = NULL;
	free(path);
	return ret;
}

/*
 * The audit file of copies->v[from] after a power cut: the writer syncs an
 * audit group only with the segment group that carries its copy, so the
 * file may have lost any of the groups written since its last sync, the
 * ones after them kept or not. What the walk keeps (up to the first bad
 * entry) stays; the first copied group that ends past it, and every one
 * after it, are framed again exactly as written (same salt, offsets,
 * group numbers and flags) from there, and the file synced. A file whose
 * copies do not meet what it keeps (a gap) is left to the checks of
 * open_audit(), which say what is wrong.
 */
static int audit_restore(struct store *st, const struct audit_copies *copies, size_t from)
{
	uint64_t file = copies->v[from]->file, start = 0;
	struct store_file_map m = { 0 };
	struct store_buf out = { 0 };
	size_t n_entries = 0;
	char name[64], *path;
	int ret, fd = -1;

	store_audit_name(name, sizeof(name), file);
	path = store_path(st->dir, name);
	if (!path)
		return CAPF_ENOMEM;
	if (store_map_file(path, &m) < 0) {
		ret = 0; /* missing: said by open_audit() */
		goto out;
	}
	ret = store_audit_restore_plan(copies, file, m.data, m.len, &out, &start, &n_entries);
	if (ret <= 0)
		goto out;
	ret = 0;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)start) < 0 ||
	    pwrite(fd, out.data, out.len, (off_t)start) != (ssize_t)out.len || fdatasync(fd) < 0) {
		store_set_error("cannot restore the end of %s from the segment: %s", path,
				strerror(errno));
		ret = store_err_from_errno(errno);
		goto out;
	}
	st->stats.audit_restored += n_entries;
	store_emit(st, STORE_SEV_WARNING,
		   "%s: %zu audit entries restored from their copies in the segment (the end of "
		   "the file was not on disk after a crash)",
		   path, n_entries);
out:
	if (fd >= 0)
		close(fd);
	store_unmap_file(&m);
	store_buf_free(&out);
	free(path);
	return ret;
}

/*
 * Opens the audit log (audit.<seq>.log, the newest written to) and finds
 * where its chain ends: the entry the anchor names must be in the file and
 * at the offset the anchor says, as recorded; every entry after it, to
 * the end of the newest file, must chain on (they were synced before a
 * crash stopped the segment write). Files older than the anchor's are
 * not read here (capfctl audit verify reads them all).
 */
static int open_audit(struct store *st, const struct store_anchor *anchor,
		      const struct store_dir_list *l)
{
	struct audit_open ao = { .st = st, .anchor = anchor };
	size_t i, first = 0;
	int ret;

	memset(&st->chain, 0, sizeof(st->chain));
	if (l->n_audits == 0)
		return audit_missing(st, anchor);
	if (anchor->seq) {
		for (first = 0; first < l->n_audits && l->audits[first] != anchor->file; first++)
			;
		if (first == l->n_audits) {
			char name[64];

			store_audit_name(name, sizeof(name), anchor->file);
			store_set_error("%s/%s, which holds audit entry %llu as the store recorded it, "
					"is missing; see capfctl audit verify and capfctl store repair",
					st->dir, name, (unsigned long long)anchor->seq);
			return CAPF_ECORRUPT;
		}
	} else {
		ao.linking = true;
	}
	for (i = first; i < l->n_audits; i++) {
		if (i > first && l->audits[i] != l->audits[i - 1] + 1) {
			char name[64];

			store_audit_name(name, sizeof(name), l->audits[i - 1] + 1);
			store_set_error("%s/%s is missing: the audit files must follow each other",
					st->dir, name);
			return CAPF_ECORRUPT;
		}
		ao.file = l->audits[i];
		ret = audit_open_file(st, &ao, i + 1 == l->n_audits);
		if (ret < 0)
			return ret;
		if (anchor->seq && !ao.found) {
			char name[64];

			store_audit_name(name, sizeof(name), anchor->file);
			store_set_error("%s/%s: the entry at byte offset %llu is not audit entry %llu "
					"as the store recorded it (the log was truncated, replaced or "
					"edited); see capfctl audit verify and capfctl store repair",
					st->dir, name, (unsigned long long)anchor->offset,
					(unsigned long long)anchor->seq);
			return CAPF_ECORRUPT;
		}
	}
	return 0;
}

int store_load_all(struct store *st)
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
		ret = store_migrate_v1(st);
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
	if (lc.old_format) {
		ret = store_migrate_v2(st, &lc.anchor, lc.last_seg, &l);
		if (ret < 0)
			goto out;
		store_dir_list_free(&l);
		ret = store_dir_list(st->dir, &l);
		if (ret < 0)
			return ret;
		ret = open_audit(st, &lc.anchor, &l);
		goto out;
	}
	if (start == l.n_segs) {
		uint8_t hdr[STORE_HEADER_LEN];

		st->seg_salt = store_new_salt();
		st->seg_group = 1;
		store_header_encode(hdr, STORE_FILE_SEGMENT, 1, st->seg_salt);
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
		store_remove_obsolete(st, &l, snap);
	if (l.audit)
		store_keep_v2(st, STORE_AUDIT_NAME); /* a conversion that stopped after its commit */
	for (i = 0; i < lc.copies.n && ret == 0; i++)
		if (i == 0 || lc.copies.v[i]->file != lc.copies.v[i - 1]->file)
			ret = audit_restore(st, &lc.copies, i);
	if (ret == 0)
		ret = open_audit(st, &lc.anchor, &l);
out:
	store_copies_free(&lc.copies);
	store_dir_list_free(&l);
	return ret;
}
