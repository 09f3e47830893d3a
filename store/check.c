/*
 * Offline work on a state directory: check every entry of every file and
 * report each damaged region; repair by rewriting a damaged file with its
 * good entries (the original kept as a backup); and find the store's
 * audit anchor for the audit verifier.
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

static int anchor_txn(const uint8_t *p, size_t len, size_t off, void *arg)
{
	struct store_anchor *a = arg;
	struct store_txn_meta meta;

	(void)off;
	if (store_txn_walk(p, len, &meta, NULL, NULL) == 0 && meta.anchor.seq)
		*a = meta.anchor;
	return 0;
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

static int anchor_once(const char *dir, struct store_anchor *anchor)
{
	struct store_dir_list l;
	struct store_scan_result res;
	struct store_file_map m;
	char name[64], *path;
	uint64_t snap = 0;
	size_t i;
	int ret;

	memset(anchor, 0, sizeof(*anchor));
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
		(void)store_scan(m.data, m.len, STORE_FILE_SEGMENT, store_check_txn_payload, NULL,
				 anchor_txn, anchor, &res);
		store_unmap_file(&m);
	}
	ret = 0;
out:
	store_dir_list_free(&l);
	return ret;
}

int store_find_anchor(const char *dir, struct store_anchor *anchor)
{
	int ret = 0, i;

	/* Compaction may remove a file between the listing and its reading:
	 * list again. */
	for (i = 0; i < 5; i++) {
		ret = anchor_once(dir, anchor);
		if (ret != CAPF_ENOENT)
			break;
	}
	return ret;
}

/* ---- reporting ---------------------------------------------------------------- */

struct checker {
	const char *dir;
	store_report_cb cb;
	void *arg;
	struct store_check_summary *sum;
};

static void finding(struct checker *c, const char *file, uint64_t off, uint64_t len, int damage,
		    const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void finding(struct checker *c, const char *file, uint64_t off, uint64_t len, int damage,
		    const char *fmt, ...)
{
	va_list ap;

	if (damage)
		c->sum->damaged++;
	va_start(ap, fmt);
	store_report_v(c->cb, c->arg, file, off, len, damage, fmt, ap);
	va_end(ap);
}

/* A region of a file: good entries are kept, bad ones dropped. */
struct region {
	size_t off;
	size_t len;
	bool good;
	bool in_tail;      /* in the torn tail that a start drops */
	const char *reason;
	uint8_t *payload;  /* good: a copy, for repair */
	size_t plen;
};

/* What one file holds, entry by entry. */
struct file_scan {
	char *path;
	struct store_file_map m;
	enum store_file_kind kind;
	bool header_ok;
	const char *header_reason;
	uint64_t seq;
	struct region *regions;
	size_t n_regions;
	size_t cap;
	bool may_tear;     /* the last segment: its end may be torn */
	bool damaged;      /* a bad region that is not a torn tail */
	bool torn;         /* the end from res.valid_len on is the torn tail */
	struct store_scan_result res;
	uint64_t records;
	Capf__StoreSnapshotInfo *info;
	bool snap_bad;     /* snapshot order or count wrong */
	char snap_text[200];
};

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

static void file_scan_free(struct file_scan *fs)
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
static int scan_file(const char *dir, const char *name, enum store_file_kind kind, bool may_tear,
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
		if (may_tear && fs->res.tail_off < fs->m.len) {
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

/* Reports what scan_file() found. */
static void report_file(struct checker *c, struct file_scan *fs, uint64_t want_seq)
{
	size_t i;

	c->sum->files++;
	if (fs->m.len == 0 && fs->kind == STORE_FILE_SEGMENT && fs->may_tear) {
		finding(c, fs->path, 0, 0, 0, "empty segment: capfd writes its header at its next "
					      "start");
		return;
	}
	if (!fs->header_ok) {
		finding(c, fs->path, 0, fs->m.len, 1, "bad header: %s", fs->header_reason);
		return;
	}
	if (want_seq && fs->seq != want_seq)
		finding(c, fs->path, 0, STORE_HEADER_LEN, 1, "the header names number %llu",
			(unsigned long long)fs->seq);
	for (i = 0; i < fs->n_regions; i++) {
		struct region *r = &fs->regions[i];

		if (r->in_tail)
			continue;
		if (r->good) {
			c->sum->entries++;
			continue;
		}
		finding(c, fs->path, r->off, r->len, 1, "%zu damaged bytes: %s", r->len, r->reason);
	}
	if ((fs->res.torn || fs->torn) && fs->res.tail_off < fs->m.len)
		finding(c, fs->path, fs->res.tail_off, fs->m.len - fs->res.tail_off,
			fs->torn ? 0 : 1,
			fs->torn ? "torn tail of %zu bytes (%s at byte offset %zu): the last group, "
				   "never acknowledged, dropped at the next start"
				 : "%zu bytes at the end are cut or damaged (%s at byte offset %zu) "
				   "where no crash can cut",
			(size_t)(fs->m.len - fs->res.tail_off), fs->res.reason, fs->res.bad_off);
	if (fs->snap_bad)
		finding(c, fs->path, 0, 0, 1, "%s", fs->snap_text);
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
static size_t first_live_segment(const struct store_dir_list *l, uint64_t snap)
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
static int checker_start(struct checker *c, struct store_check_summary *sum, int *lock_fd,
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
	ret = checker_start(&c, sum, &lock_fd, &l);
	if (ret < 0)
		goto out;
	if (l.legacy && l.n_segs == 0 && l.n_snaps == 0) {
		ret = scan_file(dir, STORE_LEGACY_NAME, STORE_FILE_LEGACY, true, &fs);
		if (ret == 0)
			report_file(&c, &fs, 0);
		if (ret == 0)
			finding(&c, fs.path, 0, 0, 0,
				"a store of format 1: capfd converts it at its next start");
		file_scan_free(&fs);
		if (ret < 0)
			goto out;
	}
	for (i = 0; i < l.n_snaps; i++) {
		store_seq_name(name, sizeof(name), STORE_SNAP_PREFIX, l.snaps[i]);
		if (i + 1 < l.n_snaps) {
			char *p = store_path(dir, name);

			finding(&c, p ? p : name, 0, 0, 0,
				"replaced by a newer snapshot: removed at the next start");
			free(p);
			continue;
		}
		snap = l.snaps[i];
		ret = scan_file(dir, name, STORE_FILE_SNAPSHOT, false, &fs);
		if (ret == 0)
			report_file(&c, &fs, snap);
		file_scan_free(&fs);
		if (ret < 0)
			goto out;
	}
	start = first_live_segment(&l, snap);
	for (i = 0; i < start; i++) {
		char *p;

		store_seq_name(name, sizeof(name), STORE_SEG_PREFIX, l.segs[i]);
		p = store_path(dir, name);
		finding(&c, p ? p : name, 0, 0, 0,
			"replaced by the newest snapshot: removed at the next start");
		free(p);
	}
	if (snap && (start == l.n_segs || l.segs[start] != snap)) {
		store_seq_name(name, sizeof(name), STORE_SEG_PREFIX, snap);
		finding(&c, dir, 0, 0, 1, "segment %s is missing", name);
	}
	for (i = start; i < l.n_segs; i++) {
		if (i > start && l.segs[i] != l.segs[i - 1] + 1) {
			store_seq_name(name, sizeof(name), STORE_SEG_PREFIX, l.segs[i - 1] + 1);
			finding(&c, dir, 0, 0, 1, "segment %s is missing", name);
		}
		store_seq_name(name, sizeof(name), STORE_SEG_PREFIX, l.segs[i]);
		ret = scan_file(dir, name, STORE_FILE_SEGMENT, i + 1 == l.n_segs, &fs);
		if (ret == 0)
			report_file(&c, &fs, l.segs[i]);
		file_scan_free(&fs);
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

/* ---- repair ----------------------------------------------------------------- */

/* Keeps the original as NAME.bak-<time> (a hard link: the name stays until
 * the new file replaces it atomically). */
static int backup_name(const char *path, char *bak, size_t len)
{
	char ts[32];
	time_t t = time(NULL);
	struct tm tm;
	int i;

	gmtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%Y%m%dT%H%M%SZ", &tm);
	for (i = 0; i < 100; i++) {
		if (i == 0)
			snprintf(bak, len, "%s.bak-%s", path, ts);
		else
			snprintf(bak, len, "%s.bak-%s-%d", path, ts, i);
		if (link(path, bak) == 0)
			return 0;
		if (errno != EEXIST)
			return store_err_from_errno(errno);
	}
	return CAPF_EEXIST;
}

static int replace_file(struct checker *c, struct file_scan *fs, const uint8_t *data,
			size_t len, char *bak, size_t baklen)
{
	const char *name = strrchr(fs->path, '/') + 1;
	char err[400];
	int ret;

	ret = backup_name(fs->path, bak, baklen);
	if (ret < 0) {
		store_set_error("cannot keep a backup of %s: %s", fs->path, strerror(-ret));
		return ret;
	}
	ret = store_create_file(c->dir, name, data, len, NULL, err, sizeof(err));
	if (ret < 0)
		store_set_error("%s", err);
	return ret;
}

/* Starts a new file of kind in out: header, a fresh salt, group 1. */
static int new_file(struct store_buf *out, struct store_framer *f, enum store_file_kind kind,
		    uint64_t seq)
{
	int ret = store_buf_reserve(out, STORE_HEADER_LEN);

	if (ret < 0)
		return ret;
	f->salt = store_new_salt();
	f->pos = STORE_HEADER_LEN;
	f->group = 1;
	store_header_encode(out->data, kind, seq, f->salt);
	out->len = STORE_HEADER_LEN;
	return 0;
}

/* Whether repair keeps a region: good, and not in a torn tail. */
static bool kept(const struct region *r)
{
	return r->good && !r->in_tail;
}

/* Rewrites a store file (segment or snapshot) with its good entries, framed
 * anew as one group. */
static int repair_file(struct checker *c, struct file_scan *fs, uint64_t want_seq)
{
	struct store_buf out = { 0 };
	struct store_framer f;
	size_t i, last = 0, n_kept = 0;
	char bak[4200];
	uint64_t records = 0;
	int ret = 0;

	if (fs->m.len == 0 && fs->kind == STORE_FILE_SEGMENT && fs->may_tear)
		return 0;
	if (!fs->header_ok) {
		finding(c, fs->path, 0, fs->m.len, 1,
			"bad header (%s): not repaired; move the file away by hand if it is not "
			"a store file",
			fs->header_reason);
		return 0;
	}
	if (!fs->damaged && !fs->torn && !fs->snap_bad && fs->seq == want_seq &&
	    fs->res.version == STORE_FORMAT_VERSION)
		return 0;
	ret = new_file(&out, &f, fs->kind, want_seq);
	if (ret < 0)
		goto out;
	for (i = 0; i < fs->n_regions; i++) {
		const struct region *r = &fs->regions[i];

		if (!kept(r) || (fs->kind == STORE_FILE_SNAPSHOT && r->payload[0] == 0x08))
			continue;
		if (fs->kind == STORE_FILE_SNAPSHOT) {
			struct store_txn_meta meta;

			if (store_txn_walk(r->payload, r->plen, &meta, NULL, NULL) == 0)
				records += meta.n_records;
		}
		last = i;
		n_kept++;
	}
	if (fs->kind == STORE_FILE_SNAPSHOT) {
		/* A new information entry with the count of what is kept. */
		Capf__StoreSnapshotInfo info = CAPF__STORE_SNAPSHOT_INFO__INIT;
		uint8_t *ip;
		size_t plen;

		if (fs->info)
			info = *fs->info;
		info.base = (ProtobufCMessage)PROTOBUF_C_MESSAGE_INIT(
			&capf__store_snapshot_info__descriptor);
		info.seq = want_seq;
		info.records = records;
		plen = capf__store_snapshot_info__get_packed_size(&info);
		ip = malloc(plen);
		if (!ip) {
			ret = CAPF_ENOMEM;
			goto out;
		}
		capf__store_snapshot_info__pack(&info, ip);
		ret = store_frame_entry(&f, ip, plen, n_kept == 0, &out, NULL);
		free(ip);
		if (ret < 0)
			goto out;
	}
	for (i = 0; i < fs->n_regions; i++) {
		const struct region *r = &fs->regions[i];

		if (!r->good && !r->in_tail) {
			finding(c, fs->path, r->off, r->len, 1, "dropped %zu bytes: %s", r->len,
				r->reason);
			c->sum->dropped_bytes += r->len;
			continue;
		}
		if (!kept(r) || (fs->kind == STORE_FILE_SNAPSHOT && r->payload[0] == 0x08))
			continue;
		ret = store_frame_entry(&f, r->payload, r->plen, i == last, &out, NULL);
		if (ret < 0)
			goto out;
	}
	if (fs->torn) {
		finding(c, fs->path, fs->res.tail_off, fs->m.len - fs->res.tail_off, 0,
			"dropped the torn tail of %zu bytes", (size_t)(fs->m.len - fs->res.tail_off));
		c->sum->dropped_bytes += fs->m.len - fs->res.tail_off;
	}
	ret = replace_file(c, fs, out.data, out.len, bak, sizeof(bak));
	if (ret < 0)
		goto out;
	c->sum->repaired++;
	finding(c, fs->path, 0, 0, 0, "rewritten with every good entry; the original is %s", bak);
out:
	store_buf_free(&out);
	return ret;
}

/*
 * Repairs the newest audit file: keeps the entries up to the first damaged
 * or unchained one (later entries cannot be linked to them, and
 * re-linking would forge the chain), and appends an entry saying what was
 * moved out to the backup. Then the store's anchor is set to that entry.
 * Returns 1 if it rewrote the file.
 */
static int repair_audit(struct checker *c, uint64_t file, const struct store_anchor *anchor,
			struct store_anchor *new_anchor)
{
	struct file_scan fs;
	struct store_audit_chain chain = { 0 };
	struct store_audit_event ev = { 0 };
	struct store_buf out = { 0 };
	struct store_framer f;
	uint8_t *entry = NULL, hash[STORE_HASH_LEN];
	size_t keep_n = 0, i, elen = 0, dropped_off;
	char detail[400], bak[4200], name[64];
	const char *why = NULL;
	bool anchor_ok = anchor->seq == 0 || anchor->file != file;
	uint64_t start = 0;
	int ret;

	store_audit_name(name, sizeof(name), file);
	ret = scan_file(c->dir, name, STORE_FILE_AUDIT, true, &fs);
	if (ret == CAPF_ENOENT) {
		file_scan_free(&fs);
		return 0;
	}
	if (ret < 0)
		goto out;
	if (!fs.header_ok) {
		finding(c, fs.path, 0, fs.m.len, 1, "bad header (%s): not repaired",
			fs.header_reason);
		goto out;
	}
	for (i = 0; i < fs.n_regions; i++) {
		struct region *r = &fs.regions[i];
		int link;

		if (!r->good || r->in_tail) {
			why = r->in_tail ? NULL : r->reason;
			break;
		}
		link = store_audit_link(r->payload, r->plen, r->off, &chain, NULL);
		if (link < 0) {
			ret = link;
			goto out;
		}
		if (link != STORE_AUDIT_LINK_OK) {
			why = store_audit_link_text(link);
			break;
		}
		if (anchor->seq && anchor->file == file && chain.seq == anchor->seq) {
			if (memcmp(chain.hash, anchor->hash, STORE_HASH_LEN) != 0) {
				why = "the entry the store recorded was replaced";
				break;
			}
			anchor_ok = true;
		}
		keep_n = i + 1;
	}
	if (!why && !anchor_ok)
		why = "entries the store recorded are missing from the end";
	if (!why)
		goto out;
	dropped_off = keep_n < fs.n_regions ? fs.regions[keep_n].off : fs.m.len;
	ret = new_file(&out, &f, STORE_FILE_AUDIT, file);
	if (ret < 0)
		goto out;
	memset(&chain, 0, sizeof(chain));
	for (i = 0; i < keep_n; i++) {
		(void)store_audit_link(fs.regions[i].payload, fs.regions[i].plen, fs.regions[i].off,
				       &chain, NULL);
		ret = store_frame_entry(&f, fs.regions[i].payload, fs.regions[i].plen, false, &out,
					NULL);
		if (ret < 0)
			goto out;
	}
	snprintf(detail, sizeof(detail),
		 "repair: %zu bytes from byte offset %zu (%s) were moved out of %s; the "
		 "original is kept as a backup",
		 (size_t)(fs.m.len - dropped_off), dropped_off, why, name);
	ev.kind = CAPF__AUDIT_KIND__AUDIT_STORE;
	ev.peer = "capfctl store repair";
	ev.detail = detail;
	ret = store_audit_encode(&ev, chain.seq + 1, (int64_t)time(NULL), chain.hash, &entry,
				 &elen, hash);
	if (ret < 0)
		goto out;
	ret = store_frame_entry(&f, entry, elen, true, &out, &start);
	if (ret < 0)
		goto out;
	ret = replace_file(c, &fs, out.data, out.len, bak, sizeof(bak));
	if (ret < 0)
		goto out;
	finding(c, fs.path, dropped_off, fs.m.len - dropped_off, 1,
		"moved %zu bytes out (%s); they are in %s", (size_t)(fs.m.len - dropped_off), why,
		bak);
	c->sum->dropped_bytes += fs.m.len - dropped_off;
	c->sum->repaired++;
	new_anchor->seq = chain.seq + 1;
	new_anchor->file = file;
	new_anchor->offset = start;
	memcpy(new_anchor->hash, hash, STORE_HASH_LEN);
	ret = 1;
out:
	store_buf_free(&out);
	free(entry);
	file_scan_free(&fs);
	return ret;
}

/* Appends an anchor entry (its own committed group) to the last segment, synced. */
static int write_anchor(struct checker *c, uint64_t seg, const struct store_anchor *a)
{
	Capf__StoreTxn txn = CAPF__STORE_TXN__INIT;
	Capf__AuditAnchor an = CAPF__AUDIT_ANCHOR__INIT;
	struct store_buf out = { 0 };
	struct store_framer f;
	struct file_scan fs;
	uint8_t *buf = NULL;
	char name[64];
	size_t plen;
	int fd = -1, ret;

	store_seq_name(name, sizeof(name), STORE_SEG_PREFIX, seg);
	ret = scan_file(c->dir, name, STORE_FILE_SEGMENT, true, &fs);
	if (ret < 0)
		goto out;
	if (!fs.header_ok || fs.res.version != STORE_FORMAT_VERSION || fs.torn || fs.damaged) {
		store_set_error("%s: cannot record the audit log's end after a segment that is not "
				"whole", fs.path);
		ret = CAPF_ECORRUPT;
		goto out;
	}
	an.seq = a->seq;
	an.offset = a->offset;
	an.file = a->file;
	an.hash.data = (uint8_t *)a->hash;
	an.hash.len = STORE_HASH_LEN;
	txn.time = (int64_t)time(NULL);
	txn.audit = &an;
	plen = capf__store_txn__get_packed_size(&txn);
	buf = malloc(plen);
	if (!buf) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	capf__store_txn__pack(&txn, buf);
	f.salt = fs.res.salt;
	f.pos = fs.m.len;
	f.group = fs.res.group + 1;
	ret = store_frame_entry(&f, buf, plen, true, &out, NULL);
	if (ret < 0)
		goto out;
	fd = open(fs.path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0) {
		ret = store_err_from_errno(errno);
		store_set_error("cannot open %s: %s", fs.path, strerror(errno));
		goto out;
	}
	ret = store_write_full(fd, out.data, out.len);
	if (ret == 0 && fsync(fd) < 0)
		ret = store_write_err(errno);
	if (ret < 0)
		store_set_error("cannot write %s: %s", fs.path, strerror(-ret));
	else
		finding(c, fs.path, fs.m.len, out.len, 0,
			"recorded audit entry %llu as the audit log's end",
			(unsigned long long)a->seq);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	store_buf_free(&out);
	file_scan_free(&fs);
	return ret;
}

int store_repair(const char *dir, store_report_cb cb, void *arg, struct store_check_summary *sum)
{
	struct store_check_summary s;
	struct checker c = { dir, cb, arg, NULL };
	struct store_dir_list l = { 0 };
	struct store_anchor anchor, new_anchor = { 0 };
	struct file_scan fs;
	char name[64];
	uint64_t snap = 0;
	size_t i, start;
	int lock_fd = -1, ret;

	if (!sum)
		sum = &s;
	ret = checker_start(&c, sum, &lock_fd, &l);
	if (ret < 0)
		goto out;
	if (l.n_snaps) {
		snap = l.snaps[l.n_snaps - 1];
		store_seq_name(name, sizeof(name), STORE_SNAP_PREFIX, snap);
		ret = scan_file(dir, name, STORE_FILE_SNAPSHOT, false, &fs);
		if (ret == 0)
			ret = repair_file(&c, &fs, snap);
		file_scan_free(&fs);
		if (ret < 0)
			goto out;
	}
	start = first_live_segment(&l, snap);
	for (i = start; i < l.n_segs; i++) {
		store_seq_name(name, sizeof(name), STORE_SEG_PREFIX, l.segs[i]);
		ret = scan_file(dir, name, STORE_FILE_SEGMENT, i + 1 == l.n_segs, &fs);
		if (ret == 0)
			ret = repair_file(&c, &fs, l.segs[i]);
		file_scan_free(&fs);
		if (ret < 0)
			goto out;
	}
	if (l.n_audits && l.n_segs > start) {
		ret = store_find_anchor(dir, &anchor);
		if (ret < 0)
			goto out;
		ret = repair_audit(&c, l.audits[l.n_audits - 1], &anchor, &new_anchor);
		if (ret < 0)
			goto out;
		if (ret == 1) {
			ret = write_anchor(&c, l.segs[l.n_segs - 1], &new_anchor);
			if (ret < 0)
				goto out;
		}
	}
	if (sum->repaired == 0)
		finding(&c, dir, 0, 0, 0, "nothing to repair");
	ret = 0;
out:
	store_dir_list_free(&l);
	if (lock_fd >= 0)
		close(lock_fd);
	return ret;
}
