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
	const char *path;
	uint64_t snap_records;        /* snapshot: records seen */
	Capf__StoreSnapshotInfo *info;
	int error;                    /* text already set */
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
		store_emit(st, STORE_SEV_WARNING,
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
	store_emit(st, STORE_SEV_WARNING,
	     "store: converted %s (%zu entries) to the segment format; the original is %s",
	     path, res.entries, bak);
out:
	store_unmap_file(&m);
	free(buf);
	free(path);
	free(bak);
	return ret;
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
			a = store_audit_ev_new(&ev, (int64_t)time(NULL));
			if (!a) {
				ret = CAPF_ENOMEM;
				goto out;
			}
			store_retry_push(st, a);
			store_emit(st, STORE_SEV_WARNING,
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
		store_emit(st, STORE_SEV_WARNING,
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
		store_remove_obsolete(st, &l, snap);
	ret = open_audit(st, &lc.anchor);
out:
	store_dir_list_free(&l);
	return ret;
}
