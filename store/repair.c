/*
 * store_repair(): rewrite each damaged file of a state directory with its
 * good entries (framed anew; the original kept as NAME.bak-<time>), cut
 * the audit log back to its last entry that chains, and record the new
 * end as the store's anchor. Reads the files with the walk of check.c.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/internal.h"

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

static int replace_file(struct checker *c, struct file_scan *fs, const uint8_t *data, size_t len,
			char *bak, size_t baklen)
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

/*
 * How a repaired file is framed: as the file was. A format 2 file stays
 * format 2 (entries back to back), for capfd to convert with the rest of
 * its directory at the next start; format 3 is framed anew, one group in
 * a file with a new salt.
 */
struct reframer {
	uint32_t version;
	struct store_framer f;
};

static const char *kind_magic(enum store_file_kind kind)
{
	return kind == STORE_FILE_SNAPSHOT ? STORE_SNAP_MAGIC
	       : kind == STORE_FILE_AUDIT  ? STORE_AUDIT_MAGIC
					   : STORE_SEG_MAGIC;
}

/* Starts a new file of kind and version in out: its header. */
static int new_file(struct store_buf *out, struct reframer *r, enum store_file_kind kind,
		    uint64_t seq, uint32_t version)
{
	int ret = store_buf_reserve(out, STORE_HEADER_LEN);

	if (ret < 0)
		return ret;
	r->version = version;
	r->f.group = 1;
	r->f.after_lazy = false;
	if (version == STORE_FORMAT_V2) {
		memcpy(out->data, kind_magic(kind), STORE_MAGIC_LEN);
		store_be32_put(out->data + 8, STORE_FORMAT_V2);
		store_be32_put(out->data + 12, 0);
		store_be64_put(out->data + 16, kind == STORE_FILE_AUDIT ? 0 : seq);
		r->f.pos = STORE_V2_HEADER_LEN;
	} else {
		r->f.salt = store_new_salt();
		r->f.pos = STORE_HEADER_LEN;
		store_header_encode(out->data, kind, seq, r->f.salt);
	}
	out->len = (size_t)r->f.pos;
	return 0;
}

/* Appends an entry to out the way the file is framed; *start (may be NULL)
 * gets where it begins. */
static int put_entry(struct reframer *r, const uint8_t *p, size_t len, bool commit,
		     struct store_buf *out, uint64_t *start)
{
	int ret;

	if (r->version != STORE_FORMAT_V2)
		return store_frame_entry(&r->f, p, len, commit, out, start);
	ret = store_buf_reserve(out, STORE_V2_ENTRY_HEADER_LEN + len);
	if (ret < 0)
		return ret;
	if (start)
		*start = r->f.pos;
	store_be32_put(out->data + out->len, (uint32_t)len);
	store_be32_put(out->data + out->len + 4, crc32c(0, p, len));
	memcpy(out->data + out->len + STORE_V2_ENTRY_HEADER_LEN, p, len);
	out->len += STORE_V2_ENTRY_HEADER_LEN + len;
	r->f.pos += STORE_V2_ENTRY_HEADER_LEN + len;
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
	struct store_buf out = {0};
	struct reframer f;
	size_t i, last = 0, n_kept = 0;
	char bak[4200];
	uint64_t records = 0;
	int ret = 0;

	if (fs->m.len == 0 && fs->kind == STORE_FILE_SEGMENT && fs->may_tear)
		return 0;
	if (!fs->header_ok) {
		store_finding_report(
		    c, fs->path, 0, fs->m.len, 1,
		    "bad header (%s): not repaired; move the file away by hand if it is not "
		    "a store file",
		    fs->header_reason);
		return 0;
	}
	if (!fs->damaged && !fs->torn && !fs->snap_bad && fs->seq == want_seq)
		return 0;
	ret = new_file(&out, &f, fs->kind, want_seq, fs->res.version);
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
		ret = put_entry(&f, ip, plen, n_kept == 0, &out, NULL);
		free(ip);
		if (ret < 0)
			goto out;
	}
	for (i = 0; i < fs->n_regions; i++) {
		const struct region *r = &fs->regions[i];

		if (!r->good && !r->in_tail) {
			store_finding_report(c, fs->path, r->off, r->len, 1,
					     "dropped %zu bytes: %s", r->len, r->reason);
			c->sum->dropped_bytes += r->len;
			continue;
		}
		if (!kept(r) || (fs->kind == STORE_FILE_SNAPSHOT && r->payload[0] == 0x08))
			continue;
		ret = put_entry(&f, r->payload, r->plen, i == last, &out, NULL);
		if (ret < 0)
			goto out;
	}
	if (fs->torn) {
		store_finding_report(c, fs->path, fs->res.tail_off, fs->m.len - fs->res.tail_off, 0,
				     "dropped the torn tail of %zu bytes",
				     (size_t)(fs->m.len - fs->res.tail_off));
		c->sum->dropped_bytes += fs->m.len - fs->res.tail_off;
	}
	ret = replace_file(c, fs, out.data, out.len, bak, sizeof(bak));
	if (ret < 0)
		goto out;
	c->sum->repaired++;
	store_finding_report(c, fs->path, 0, 0, 0,
			     "rewritten with every good entry; the original is %s", bak);
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
	struct store_audit_chain chain = {0};
	struct store_audit_event ev = {0};
	struct store_buf out = {0};
	struct reframer f;
	uint8_t *entry = NULL, hash[STORE_HASH_LEN];
	size_t keep_n = 0, i, elen = 0, dropped_off;
	char detail[400], bak[4200], name[64];
	const char *why = NULL;
	bool anchor_ok = anchor->seq == 0 || anchor->file != file;
	uint64_t start = 0;
	int ret;

	if (file == 0)
		snprintf(name, sizeof(name), "%s", STORE_AUDIT_NAME); /* format 2 */
	else
		store_audit_name(name, sizeof(name), file);
	ret = store_scan_file(c->dir, name, STORE_FILE_AUDIT, true, &fs);
	if (ret == CAPF_ENOENT) {
		store_file_scan_free(&fs);
		return 0;
	}
	if (ret < 0)
		goto out;
	if (!fs.header_ok) {
		store_finding_report(c, fs.path, 0, fs.m.len, 1, "bad header (%s): not repaired",
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
	ret = new_file(&out, &f, STORE_FILE_AUDIT, file, fs.res.version);
	if (ret < 0)
		goto out;
	memset(&chain, 0, sizeof(chain));
	for (i = 0; i < keep_n; i++) {
		(void)store_audit_link(fs.regions[i].payload, fs.regions[i].plen, fs.regions[i].off,
				       &chain, NULL);
		ret = put_entry(&f, fs.regions[i].payload, fs.regions[i].plen, false, &out,
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
	ret = store_audit_encode(&ev, chain.seq + 1, (int64_t)time(NULL), chain.hash, &entry, &elen,
				 hash);
	if (ret < 0)
		goto out;
	ret = put_entry(&f, entry, elen, true, &out, &start);
	if (ret < 0)
		goto out;
	ret = replace_file(c, &fs, out.data, out.len, bak, sizeof(bak));
	if (ret < 0)
		goto out;
	store_finding_report(c, fs.path, dropped_off, fs.m.len - dropped_off, 1,
			     "moved %zu bytes out (%s); they are in %s",
			     (size_t)(fs.m.len - dropped_off), why, bak);
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
	store_file_scan_free(&fs);
	return ret;
}

/* Appends an anchor entry (its own committed group) to the last segment, synced. */
static int write_anchor(struct checker *c, uint64_t seg, const struct store_anchor *a)
{
	Capf__StoreTxn txn = CAPF__STORE_TXN__INIT;
	Capf__AuditAnchor an = CAPF__AUDIT_ANCHOR__INIT;
	struct store_buf out = {0};
	struct reframer f;
	struct file_scan fs;
	uint8_t *buf = NULL;
	char name[64];
	size_t plen;
	int fd = -1, ret;

	store_seq_name(name, sizeof(name), STORE_SEG_PREFIX, seg);
	ret = store_scan_file(c->dir, name, STORE_FILE_SEGMENT, true, &fs);
	if (ret < 0)
		goto out;
	if (!fs.header_ok || fs.torn || fs.damaged) {
		store_set_error("%s: cannot record the audit log's end after a segment that is not "
				"whole",
				fs.path);
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
	f.version = fs.res.version;
	f.f.salt = fs.res.salt;
	f.f.pos = fs.m.len;
	f.f.group = fs.res.group + 1;
	f.f.after_lazy = false;
	ret = put_entry(&f, buf, plen, true, &out, NULL);
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
		store_finding_report(c, fs.path, fs.m.len, out.len, 0,
				     "recorded audit entry %llu as the audit log's end",
				     (unsigned long long)a->seq);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	store_buf_free(&out);
	store_file_scan_free(&fs);
	return ret;
}

/*
 * What repair leaves is checked the way store_check() checks, once the
 * lock is released: a repair that ends with 0 leaves a directory that
 * checks clean, and one that could not mend something (a file whose
 * header does not check, an audit log with no segment to anchor it)
 * returns CAPF_ECORRUPT, so that no script repairs and starts capfd on
 * damage.
 */
static int check_after(struct checker *c, struct store_check_summary *sum)
{
	struct store_check_summary again;
	int ret;

	ret = store_check(c->dir, NULL, NULL, &again);
	if (ret == CAPF_ECORRUPT) {
		store_set_error("%s: %u damaged regions are left that repair cannot mend (see "
				"the findings above and `capfctl store check`)",
				c->dir, again.damaged);
		return ret;
	}
	if (ret < 0)
		return ret;
	if (sum->repaired == 0)
		store_finding_report(c, c->dir, 0, 0, 0, "nothing to repair");
	return 0;
}

/*
 * Opens the store as capfd does, when it opens: its recovery (torn tails
 * dropped, the audit file's end restored from the segment's copies) is
 * then done, and said. A store that does not open is left as it is, for
 * the repair. Only CAPF_ELOCKED (capfd runs) and memory stop the repair.
 */
static int start_recovery(struct checker *c, struct store_check_summary *sum)
{
	struct store_stats stats;
	struct store *st = NULL;
	struct stat sb;
	int ret;

	(void)sum;
	struct store_dir_list l;
	bool store_there;

	if (stat(c->dir, &sb) < 0 || !S_ISDIR(sb.st_mode))
		return 0; /* said by the checker */
	/* Only a store that is there: opening a directory without segments
	 * would make one. */
	if (store_dir_list(c->dir, &l) < 0)
		return 0;
	store_there = l.n_segs > 0 || l.n_snaps > 0;
	store_dir_list_free(&l);
	if (!store_there)
		return 0;
	ret = store_open(&st, c->dir);
	if (ret == CAPF_ELOCKED || ret == CAPF_ENOMEM)
		return ret;
	if (ret < 0)
		return 0;
	store_get_stats(st, &stats);
	store_close(st);
	if (stats.audit_restored)
		store_finding_report(c, c->dir, 0, 0, 0,
				     "%llu audit entries at the end of the audit log restored from "
				     "their copies in the segment, as capfd's start does",
				     (unsigned long long)stats.audit_restored);
	return 0;
}

int store_repair(const char *dir, store_report_cb cb, void *arg, struct store_check_summary *sum)
{
	struct store_check_summary s;
	struct checker c = {dir, cb, arg, NULL};
	struct store_dir_list l = {0};
	struct store_anchor anchor, new_anchor = {0};
	struct file_scan fs;
	char name[64];
	uint64_t snap = 0;
	size_t i, start;
	int lock_fd = -1, ret;

	if (!sum)
		sum = &s;
	/* What capfd's start would recover (torn tails, and the end of the
	 * audit file from its copies in the segment) is recovered the same
	 * way first, so that repair never drops what a start restores. */
	ret = start_recovery(&c, sum);
	if (ret < 0)
		goto out;
	ret = store_checker_start(&c, sum, &lock_fd, &l);
	if (ret < 0)
		goto out;
	if (l.n_snaps) {
		snap = l.snaps[l.n_snaps - 1];
		store_seq_name(name, sizeof(name), STORE_SNAP_PREFIX, snap);
		ret = store_scan_file(dir, name, STORE_FILE_SNAPSHOT, false, &fs);
		if (ret == 0)
			ret = repair_file(&c, &fs, snap);
		store_file_scan_free(&fs);
		if (ret < 0)
			goto out;
	}
	start = store_first_live_segment(&l, snap);
	for (i = start; i < l.n_segs; i++) {
		store_seq_name(name, sizeof(name), STORE_SEG_PREFIX, l.segs[i]);
		ret = store_scan_file(dir, name, STORE_FILE_SEGMENT, i + 1 == l.n_segs, &fs);
		if (ret == 0)
			ret = repair_file(&c, &fs, l.segs[i]);
		store_file_scan_free(&fs);
		if (ret < 0)
			goto out;
	}
	if ((l.n_audits || l.audit) && l.n_segs > start) {
		ret = store_find_anchor(dir, &anchor);
		if (ret < 0)
			goto out;
		/* The newest audit file (format 2: audit.log, number 0). */
		ret = repair_audit(&c, l.n_audits ? l.audits[l.n_audits - 1] : 0, &anchor,
				   &new_anchor);
		if (ret < 0)
			goto out;
		if (ret == 1) {
			ret = write_anchor(&c, l.segs[l.n_segs - 1], &new_anchor);
			if (ret < 0)
				goto out;
		}
	}
	ret = 0;
out:
	store_dir_list_free(&l);
	if (lock_fd >= 0)
		close(lock_fd);
	if (ret == 0)
		ret = check_after(&c, sum);
	return ret;
}
