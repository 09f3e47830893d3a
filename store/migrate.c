/*
 * Converting older formats at open: a format 1 records.log becomes the
 * first segment; a format 2 directory, once loaded, becomes format 3 (its
 * audit log framed anew, a snapshot of the index written). The originals
 * are kept (records.log.v1, NAME.v2).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/internal.h"

struct reframe {
	struct store_framer f;
	struct store_buf out;
	size_t n, total;
};

static int reframe_entry(const uint8_t *p, size_t len, size_t off, void *arg)
{
	struct reframe *rf = arg;

	(void)off;
	rf->n++;
	return store_frame_entry(&rf->f, p, len, rf->n == rf->total, &rf->out, NULL);
}

/*
 * A records.log of the first format (version 1, one file) becomes the
 * first segment: its good entries are framed anew behind a segment
 * header, and the old file is kept as records.log.v1.
 */
int store_migrate_v1(struct store *st)
{
	struct store_scan_result res;
	struct store_file_map m = {0};
	struct reframe rf = {0};
	char *path = NULL, *bak = NULL, name[64], err[300];
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
		store_set_scan_error(path, ret, &res);
		goto out;
	}
	rf.f.salt = store_new_salt();
	rf.f.pos = STORE_HEADER_LEN;
	rf.f.group = 1;
	rf.f.after_lazy = false;
	rf.total = res.entries;
	ret = store_buf_reserve(&rf.out, STORE_HEADER_LEN);
	if (ret < 0)
		goto out;
	store_header_encode(rf.out.data, STORE_FILE_SEGMENT, 1, rf.f.salt);
	rf.out.len = STORE_HEADER_LEN;
	ret = store_scan(m.data, m.len, STORE_FILE_LEGACY, store_check_txn_payload, NULL,
			 reframe_entry, &rf, &res);
	if (ret < 0)
		goto out;
	store_seq_name(name, sizeof(name), STORE_SEG_PREFIX, 1);
	ret = store_create_file(st->dir, name, rf.out.data, rf.out.len, NULL, err, sizeof(err));
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
	store_buf_free(&rf.out);
	free(path);
	free(bak);
	return ret;
}

/* ---- converting format 2 ---------------------------------------------------------- */

/* Frames the good entries of a format 2 audit.log into audit.0000000001.log
 * and says where the anchored entry now starts. */
struct audit_conv {
	struct reframe rf;
	const struct store_anchor *anchor;
	struct store_anchor *out;
};

static int audit_conv_entry(const uint8_t *p, size_t len, size_t off, void *arg)
{
	struct audit_conv *ac = arg;
	uint64_t start = 0;
	int ret;

	ac->rf.n++;
	ret = store_frame_entry(&ac->rf.f, p, len, ac->rf.n == ac->rf.total, &ac->rf.out, &start);
	if (ret == 0 && ac->anchor->seq && off == ac->anchor->offset) {
		*ac->out = *ac->anchor;
		ac->out->file = 1;
		ac->out->offset = start;
	}
	return ret;
}

static int convert_audit_v2(struct store *st, const struct store_anchor *anchor,
			    struct store_anchor *out)
{
	struct audit_conv ac = {.anchor = anchor, .out = out};
	struct store_scan_result res;
	struct store_file_map m = {0};
	char *path, name[64], err[300];
	int ret;

	*out = *anchor;
	path = store_path(st->dir, STORE_AUDIT_NAME);
	if (!path)
		return CAPF_ENOMEM;
	ret = store_map_file(path, &m);
	if (ret == CAPF_ENOENT) {
		ret = 0;
		goto out;
	}
	if (ret < 0)
		goto out;
	ret = store_audit_walk(m.data, m.len, NULL, NULL, &res);
	if (ret < 0) {
		store_set_scan_error(path, ret, &res);
		goto out;
	}
	if (res.entries == 0)
		goto out;
	ac.rf.f.salt = store_new_salt();
	ac.rf.f.pos = STORE_HEADER_LEN;
	ac.rf.f.group = 1;
	ac.rf.f.after_lazy = false;
	ac.rf.total = res.entries;
	ret = store_buf_reserve(&ac.rf.out, STORE_HEADER_LEN);
	if (ret < 0)
		goto out;
	store_header_encode(ac.rf.out.data, STORE_FILE_AUDIT, 1, ac.rf.f.salt);
	ac.rf.out.len = STORE_HEADER_LEN;
	out->seq = 0;
	ret = store_scan(m.data, m.len, STORE_FILE_AUDIT, store_check_audit_payload, NULL,
			 audit_conv_entry, &ac, &res);
	if (ret < 0)
		goto out;
	if (anchor->seq && out->seq == 0) {
		store_set_error(
		    "%s: the entry at byte offset %llu is not audit entry %llu as the "
		    "store recorded it (the log was truncated, replaced or edited); see "
		    "capfctl audit verify and capfctl store repair",
		    path, (unsigned long long)anchor->offset, (unsigned long long)anchor->seq);
		ret = CAPF_ECORRUPT;
		goto out;
	}
	store_audit_name(name, sizeof(name), 1);
	ret =
	    store_create_file(st->dir, name, ac.rf.out.data, ac.rf.out.len, NULL, err, sizeof(err));
	if (ret < 0)
		store_set_error("%s", err);
out:
	store_unmap_file(&m);
	store_buf_free(&ac.rf.out);
	free(path);
	return ret;
}

/* Renames a file of format 2 to NAME.v2, kept for people. */
void store_keep_v2(struct store *st, const char *name)
{
	char *from = store_path(st->dir, name), to[4200];

	if (from) {
		snprintf(to, sizeof(to), "%s.v2", from);
		(void)rename(from, to);
	}
	free(from);
}

/*
 * A directory of format 2, loaded into the index, becomes format 3: the
 * audit log is framed anew as audit.0000000001.log (its entries and
 * chain unchanged), an empty segment log.<N+1> and a snapshot.<N+1> of
 * the whole index are written, and only then (the snapshot's rename is the
 * commit point) the old files are renamed NAME.v2. A crash before that
 * point leaves the old files in charge: the next start converts again.
 */
int store_migrate_v2(struct store *st, struct store_anchor *anchor_io, uint64_t last_seg,
		     struct store_dir_list *l)
{
	struct store_anchor anchor;
	struct compaction c = {0};
	struct idx_entry *e, *tmp;
	char name[64], err[400];
	uint8_t hdr[STORE_HEADER_LEN];
	size_t i;
	int ret;

	/* What an interrupted conversion left is not in charge yet. */
	for (i = 0; i < l->n_audits; i++) {
		char *p;

		store_audit_name(name, sizeof(name), l->audits[i]);
		if ((p = store_path(st->dir, name)))
			(void)unlink(p);
		free(p);
	}
	l->n_audits = 0;
	ret = convert_audit_v2(st, anchor_io, &anchor);
	if (ret < 0)
		return ret;
	st->seg_seq = last_seg + 1;
	st->seg_salt = store_new_salt();
	st->seg_group = 1;
	st->seg_size = STORE_HEADER_LEN;
	store_header_encode(hdr, STORE_FILE_SEGMENT, st->seg_seq, st->seg_salt);
	store_seq_name(name, sizeof(name), STORE_SEG_PREFIX, st->seg_seq);
	ret = store_create_file(st->dir, name, hdr, sizeof(hdr), &st->seg_fd, err, sizeof(err));
	if (ret < 0) {
		store_set_error("%s", err);
		return ret;
	}
	c.st = st;
	c.seq = st->seg_seq;
	c.anchor = anchor;
	c.n_dev = HASH_COUNT(st->devices);
	c.entries = malloc((c.n_dev + HASH_COUNT(st->certs) + 1) * sizeof(*c.entries));
	if (!c.entries)
		return CAPF_ENOMEM;
	HASH_ITER(hh, st->devices, e, tmp)
	c.entries[c.n++] = e;
	HASH_ITER(hh, st->certs, e, tmp)
	c.entries[c.n++] = e;
	ret = store_write_snapshot(&c, err, sizeof(err));
	free(c.entries);
	if (ret < 0) {
		store_set_error("converting %s to format 3: %s", st->dir, err);
		return ret;
	}
	for (i = 0; i < l->n_snaps; i++) {
		store_seq_name(name, sizeof(name), STORE_SNAP_PREFIX, l->snaps[i]);
		store_keep_v2(st, name);
	}
	for (i = 0; i < l->n_segs; i++) {
		store_seq_name(name, sizeof(name), STORE_SEG_PREFIX, l->segs[i]);
		store_keep_v2(st, name);
	}
	if (l->audit)
		store_keep_v2(st, STORE_AUDIT_NAME);
	(void)store_sync_dir(st->dir);
	st->stats.snapshot_seq = c.seq;
	*anchor_io = anchor;
	store_emit(st, STORE_SEV_WARNING,
		   "store: converted %s to format 3 (snapshot " STORE_SNAP_PREFIX STORE_SEQ_FMT
		   ", %zu records); the files of format 2 are kept as NAME.v2",
		   st->dir, c.seq, c.n);
	return 0;
}
