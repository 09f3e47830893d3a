/*
 * Offline work on a state directory: check every entry of every file and
 * report each damaged region (repair.c rewrites them), and find the
 * store's audit anchor for the audit verifier.
 *
 * check and repair take the directory lock, so they never race capfd;
 * store_find_anchor() does not (audit verify runs beside capfd) and
 * copes with files that compaction removes under it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/internal.h"

/* ---- the anchor ----------------------------------------------------------- */

struct anchor_find {
	struct store_anchor *anchor;
	struct audit_copies *copies; /* may be NULL */
};

static int anchor_txn(const uint8_t *p, size_t len, size_t off, void *arg)
{
	struct anchor_find *af = arg;
	struct store_txn_meta meta;
	int ret = 0;

	(void)off;
	if (store_txn_walk(p, len, &meta, NULL, NULL) == 0 && meta.anchor.seq) {
		if (af->copies)
			ret = store_copies_add(af->copies, meta.anchor.raw, meta.anchor.raw_len);
		*af->anchor = meta.anchor;
		af->anchor->raw = NULL; /* points into the file's map */
		af->anchor->raw_len = 0;
	}
	return ret;
}

/* The snapshot's information entry (its first) carries its anchor. */
static int anchor_snap(const uint8_t *p, size_t len, size_t off, void *arg)
{
	Capf__StoreSnapshotInfo *si = NULL;

	(void)off;
	if (len > 0 && p[0] == 0x08 && store_snap_info_parse(p, len, &si) == 1) {
		if (si->audit)
			(void)store_anchor_from_pb(si->audit, arg);
		capf__store_snapshot_info__free_unpacked(si, NULL);
	}
	return 0;
}

static int anchor_once(const char *dir, struct store_anchor *anchor, struct audit_copies *copies)
{
	struct anchor_find af = { anchor, copies };
	struct store_dir_list l;
	struct store_scan_result res;
	struct store_file_map m;
	char name[64], *path;
	uint64_t snap = 0;
	size_t i;
	int ret;

	memset(anchor, 0, sizeof(*anchor));
	if (copies)
		store_copies_free(copies);
	ret = store_dir_list(dir, &l);
	if (ret < 0)
		return ret;
	if (l.n_snaps) {
		snap = l.snaps[l.n_snaps - 1];
		store_seq_name(name, sizeof(name), STORE_SNAP_PREFIX, snap);
		path = store_path(dir, name);
		ret = path ? store_map_file(path, &m) : CAPF_ENOMEM;
		free(path);
		if (ret < 0)
			goto out;
		(void)store_scan(m.data, m.len, STORE_FILE_SNAPSHOT, store_check_snap_payload, NULL,
				 anchor_snap, anchor, &res);
		store_unmap_file(&m);
	}
	for (i = 0; i < l.n_segs; i++) {
		if (l.segs[i] < snap)
			continue;
		store_seq_name(name, sizeof(name), STORE_SEG_PREFIX, l.segs[i]);
		path = store_path(dir, name);
		ret = path ? store_map_file(path, &m) : CAPF_ENOMEM;
		free(path);
		if (ret < 0)
			goto out;
		/* Damage is the checker's business; the good entries count. */
		ret = store_scan(m.data, m.len, STORE_FILE_SEGMENT, store_check_txn_payload, NULL,
				 anchor_txn, &af, &res);
		store_unmap_file(&m);
		if (ret == CAPF_ENOMEM)
			goto out;
	}
	ret = 0;
out:
	store_dir_list_free(&l);
	return ret;
}

int store_find_anchor_copies(const char *dir, struct store_anchor *anchor,
			     struct audit_copies *copies)
{
	int ret = 0, i;

	/* Compaction may remove a file between the listing and its reading:
	 * list again. */
	for (i = 0; i < 5; i++) {
		ret = anchor_once(dir, anchor, copies);
		if (ret != CAPF_ENOENT)
			break;
	}
	return ret;
}

int store_find_anchor(const char *dir, struct store_anchor *anchor)
{
	return store_find_anchor_copies(dir, anchor, NULL);
}

/* ---- reporting ---------------------------------------------------------------- */

void store_finding_report(struct checker *c, const char *file, uint64_t off, uint64_t len, int damage,
		    const char *fmt, ...)
{
	va_list ap;

	if (damage)
		c->sum->damaged++;
	va_start(ap, fmt);
	store_report_v(c->cb, c->arg, file, off, len, damage, fmt, ap);
	va_end(ap);
}

static int add_region(struct file_scan *fs, size_t off, size_t len, bool good,
		      const char *reason, const uint8_t *payload, size_t plen)
{
	uint8_t *copy = NULL;

	if (fs->n_regions == fs->cap) {
		size_t ncap = fs->cap ? fs->cap * 2 : 64;
		struct region *nr = realloc(fs->regions, ncap * sizeof(*nr));

		if (!nr)
			return CAPF_ENOMEM;
		fs->regions = nr;
		fs->cap = ncap;
	}
	if (good && !(copy = malloc(plen)))
		return CAPF_ENOMEM;
	if (copy)
		memcpy(copy, payload, plen);
	fs->regions[fs->n_regions++] =
		(struct region){ off, len, good, false, reason, copy, good ? plen : 0 };
	return 0;
}

void store_file_scan_free(struct file_scan *fs)
{
	size_t i;

	store_unmap_file(&fs->m);
	free(fs->path);
	for (i = 0; i < fs->n_regions; i++)
		free(fs->regions[i].payload);
	free(fs->regions);
	if (fs->info)
		capf__store_snapshot_info__free_unpacked(fs->info, NULL);
	memset(fs, 0, sizeof(*fs));
}

static store_payload_check_fn check_of(enum store_file_kind kind)
{
	switch (kind) {
	case STORE_FILE_SNAPSHOT:
		return store_check_snap_payload;
	case STORE_FILE_AUDIT:
		return store_check_audit_payload;
	default:
		return store_check_txn_payload;
	}
}

static int scan_item(const struct store_walk_item *it, void *arg)
{
	struct file_scan *fs = arg;

	if (it->good && fs->kind == STORE_FILE_SNAPSHOT && it->payload[0] == 0x08) {
		Capf__StoreSnapshotInfo *si = NULL;
		int ret = store_snap_info_parse(it->payload, it->len, &si);

		if (ret < 0)
			return ret;
		if (fs->info || fs->n_regions > 0) {
			fs->snap_bad = true;
			snprintf(fs->snap_text, sizeof(fs->snap_text),
				 "snapshot information at byte offset %zu is not the first entry",
				 it->off);
			capf__store_snapshot_info__free_unpacked(si, NULL);
		} else {
			fs->info = si;
		}
	}
	return add_region(fs, it->off, it->end - it->off, it->good, it->reason, it->payload,
			  it->len);
}

/* Reads a whole file into regions, through the walk every reader uses;
 * may_tear: the file may end in a torn tail. */
int store_scan_file(const char *dir, const char *name, enum store_file_kind kind, bool may_tear,
		     struct file_scan *fs)
{
	size_t i;
	int ret;

	memset(fs, 0, sizeof(*fs));
	fs->kind = kind;
	fs->may_tear = may_tear;
	fs->path = store_path(dir, name);
	if (!fs->path)
		return CAPF_ENOMEM;
	ret = store_map_file(fs->path, &fs->m);
	if (ret < 0)
		return ret;
	ret = store_file_walk(fs->m.data, fs->m.len, kind, check_of(kind), NULL, scan_item, fs,
			      &fs->res);
	if (ret < 0 && ret != CAPF_ECORRUPT)
		return ret;
	fs->seq = fs->res.seq;
	if (fs->m.len > 0 && fs->res.header_len == 0) {
		fs->header_reason = fs->res.reason;
		return 0;
	}
	fs->header_ok = fs->m.len > 0;
	if (ret == CAPF_ECORRUPT) {
		fs->damaged = true;
		/* A later group follows the damage, so the damaged group was
		 * durable: it is never part of the tail, which only a commit
		 * after the damage can mark (tail_off is the commit before the
		 * damage when there is none, and start-up refuses the file). */
		if (may_tear && fs->res.tail_off < fs->m.len && fs->res.tail_off > fs->res.bad_off) {
			for (i = 0; i < fs->n_regions; i++)
				fs->regions[i].in_tail = fs->regions[i].off >= fs->res.tail_off;
			fs->torn = true;
		}
	} else if (fs->res.torn) {
		for (i = 0; i < fs->n_regions; i++)
			fs->regions[i].in_tail = fs->regions[i].off >= fs->res.valid_len;
		if (may_tear)
			fs->torn = true;
		else
			fs->damaged = true;
	}
	for (i = 0; i < fs->n_regions; i++) {
		struct store_txn_meta meta;
		const struct region *r = &fs->regions[i];

		if (r->good && !r->in_tail && kind != STORE_FILE_AUDIT &&
		    !(kind == STORE_FILE_SNAPSHOT && r->payload[0] == 0x08) &&
		    store_txn_walk(r->payload, r->plen, &meta, NULL, NULL) == 0)
			fs->records += meta.n_records;
	}
	if (kind == STORE_FILE_SNAPSHOT && !fs->snap_bad) {
		if (!fs->info) {
			fs->snap_bad = true;
			snprintf(fs->snap_text, sizeof(fs->snap_text), "no snapshot information");
		} else if (fs->info->seq != fs->seq) {
			fs->snap_bad = true;
			snprintf(fs->snap_text, sizeof(fs->snap_text),
				 "the information names snapshot %llu",
				 (unsigned long long)fs->info->seq);
		} else if (fs->info->records != fs->records) {
			fs->snap_bad = true;
			snprintf(fs->snap_text, sizeof(fs->snap_text),
				 "%llu records where the information says %llu",
				 (unsigned long long)fs->records,
				 (unsigned long long)fs->info->records);
		}
	}
	return 0;
}

/* Reports what store_scan_file() found. */
static void report_file(struct checker *c, struct file_scan *fs, uint64_t want_seq)
{
	size_t i;

	c->sum->files++;
	if (fs->m.len == 0 && fs->kind == STORE_FILE_SEGMENT && fs->may_tear) {
		store_finding_report(c, fs->path, 0, 0, 0, "empty segment: capfd writes its header at its next "
					      "start");
		return;
	}
	if (!fs->header_ok) {
		store_finding_report(c, fs->path, 0, fs->m.len, 1, "bad header: %s", fs->header_reason);
		return;
	}
	if (want_seq && fs->seq != want_seq)
		store_finding_report(c, fs->path, 0, STORE_HEADER_LEN, 1, "the header names number %llu",
			(unsigned long long)fs->seq);
	for (i = 0; i < fs->n_regions; i++) {
		struct region *r = &fs->regions[i];

		if (r->in_tail)
			continue;
		if (r->good) {
			c->sum->entries++;
			continue;
		}
		store_finding_report(c, fs->path, r->off, r->len, 1, "%zu damaged bytes: %s", r->len, r->reason);
	}
	if ((fs->res.torn || fs->torn) && fs->res.tail_off < fs->m.len)
		store_finding_report(c, fs->path, fs->res.tail_off, fs->m.len - fs->res.tail_off,
			fs->torn ? 0 : 1,
			fs->torn ? "torn tail of %zu bytes (%s at byte offset %zu): the last group, "
				   "never acknowledged, dropped at the next start"
				 : "%zu bytes at the end are cut or damaged (%s at byte offset %zu) "
				   "where no crash can cut",
			(size_t)(fs->m.len - fs->res.tail_off), fs->res.reason, fs->res.bad_off);
	if (fs->snap_bad)
		store_finding_report(c, fs->path, 0, 0, 1, "%s", fs->snap_text);
	if (fs->res.version == STORE_FORMAT_V2)
		store_finding_report(c, fs->path, 0, 0, 0,
				     "format 2: capfd converts it to format 3 at its next start");
	c->sum->records += fs->records;
}

static void audit_finding(const struct store_finding *f, void *arg)
{
	struct checker *c = arg;

	if (f->damage)
		c->sum->damaged++;
	if (c->cb)
		c->cb(f, c->arg);
}

int store_lock_offline(const char *dir, int *fd)
{
	char err[400];
	struct stat sb;
	int ret;

	if (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		store_set_error("%s is not a state directory: %s", dir,
				errno ? strerror(errno) : "not a directory");
		return stat(dir, &sb) < 0 ? store_err_from_errno(errno) : CAPF_EINVAL;
	}
	ret = store_lock_dir(dir, fd, err, sizeof(err));
	if (ret == CAPF_ELOCKED)
		store_set_error("%s; stop capfd first (this works on a stopped server only)", err);
	else if (ret < 0)
		store_set_error("%s", err);
	return ret;
}

/* The segments to read: from the newest snapshot on. */
size_t store_first_live_segment(const struct store_dir_list *l, uint64_t snap)
{
	size_t i = 0;

	while (i < l->n_segs && l->segs[i] < snap)
		i++;
	return i;
}

/*
 * The start of store_check() and store_repair(): a zeroed summary, the
 * directory's lock (*lock_fd) and its listing (*l). On failure, what was
 * taken is left in *lock_fd and *l for the caller to release.
 */
int store_checker_start(struct checker *c, struct store_check_summary *sum, int *lock_fd,
			 struct store_dir_list *l)
{
	int ret;

	store_clear_error();
	memset(sum, 0, sizeof(*sum));
	c->sum = sum;
	if (!c->dir)
		return CAPF_EINVAL;
	ret = store_lock_offline(c->dir, lock_fd);
	if (ret < 0)
		return ret;
	return store_dir_list(c->dir, l);
}

int store_check(const char *dir, store_report_cb cb, void *arg, struct store_check_summary *sum)
{
	struct store_check_summary s;
	struct checker c = { dir, cb, arg, NULL };
	struct store_dir_list l = { 0 };
	struct file_scan fs;
	char name[64];
	uint64_t snap = 0;
	size_t i, start;
	int lock_fd = -1, ret;

	if (!sum)
		sum = &s;
	ret = store_checker_start(&c, sum, &lock_fd, &l);
	if (ret < 0)
		goto out;
	if (l.legacy && l.n_segs == 0 && l.n_snaps == 0) {
		ret = store_scan_file(dir, STORE_LEGACY_NAME, STORE_FILE_LEGACY, true, &fs);
		if (ret == 0)
			report_file(&c, &fs, 0);
		if (ret == 0)
			store_finding_report(&c, fs.path, 0, 0, 0,
				"a store of format 1: capfd converts it at its next start");
		store_file_scan_free(&fs);
		if (ret < 0)
			goto out;
	}
	for (i = 0; i < l.n_snaps; i++) {
		store_seq_name(name, sizeof(name), STORE_SNAP_PREFIX, l.snaps[i]);
		if (i + 1 < l.n_snaps) {
			char *p = store_path(dir, name);

			store_finding_report(&c, p ? p : name, 0, 0, 0,
				"replaced by a newer snapshot: removed at the next start");
			free(p);
			continue;
		}
		snap = l.snaps[i];
		ret = store_scan_file(dir, name, STORE_FILE_SNAPSHOT, false, &fs);
		if (ret == 0)
			report_file(&c, &fs, snap);
		store_file_scan_free(&fs);
		if (ret < 0)
			goto out;
	}
	start = store_first_live_segment(&l, snap);
	for (i = 0; i < start; i++) {
		char *p;

		store_seq_name(name, sizeof(name), STORE_SEG_PREFIX, l.segs[i]);
		p = store_path(dir, name);
		store_finding_report(&c, p ? p : name, 0, 0, 0,
			"replaced by the newest snapshot: removed at the next start");
		free(p);
	}
	if (snap && (start == l.n_segs || l.segs[start] != snap)) {
		store_seq_name(name, sizeof(name), STORE_SEG_PREFIX, snap);
		store_finding_report(&c, dir, 0, 0, 1, "segment %s is missing", name);
	}
	for (i = start; i < l.n_segs; i++) {
		if (i > start && l.segs[i] != l.segs[i - 1] + 1) {
			store_seq_name(name, sizeof(name), STORE_SEG_PREFIX, l.segs[i - 1] + 1);
			store_finding_report(&c, dir, 0, 0, 1, "segment %s is missing", name);
		}
		store_seq_name(name, sizeof(name), STORE_SEG_PREFIX, l.segs[i]);
		ret = store_scan_file(dir, name, STORE_FILE_SEGMENT, i + 1 == l.n_segs, &fs);
		if (ret == 0)
			report_file(&c, &fs, l.segs[i]);
		store_file_scan_free(&fs);
		if (ret < 0)
			goto out;
	}
	if (l.audit || l.n_audits) {
		struct store_audit_summary as;

		sum->files++;
		ret = store_audit_verify(dir, NULL, 0, audit_finding, &c, &as);
		if (ret < 0 && ret != CAPF_ECORRUPT)
			goto out;
		sum->entries += as.entries;
	}
	ret = sum->damaged ? CAPF_ECORRUPT : 0;
out:
	store_dir_list_free(&l);
	if (lock_fd >= 0)
		close(lock_fd);
	return ret;
}
