/*
 * The copies of audit groups that segment anchors carry: the writer syncs
 * an audit group only with the segment group whose anchor holds its copy,
 * so a power cut may leave the newest audit file without some of the
 * groups written since its last sync. From the copies, the file's end is
 * framed again exactly as it was written: capfd's start does it on disk
 * (recover.c); audit verify and store check read the file as the start
 * would leave it.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

void store_copies_free(struct audit_copies *c)
{
	for (size_t i = 0; i < c->n; i++)
		capf__audit_anchor__free_unpacked(c->v[i], NULL);
	free(c->v);
	memset(c, 0, sizeof(*c));
}

int store_copies_add(struct audit_copies *c, const uint8_t *raw, size_t len)
{
	Capf__AuditAnchor *a = capf__audit_anchor__unpack(NULL, len, raw);
	size_t keep = 0;

	if (a == NULL)
		return CAPF_ENOMEM; /* the walk checked it: only memory fails */
	while (keep < c->n && (c->v[keep]->file < a->file ||
			       (c->v[keep]->file == a->file && c->v[keep]->group_start < a->synced)))
		keep++;
	for (size_t i = 0; i < keep; i++)
		capf__audit_anchor__free_unpacked(c->v[i], NULL);
	/* Nothing to move while the list is empty (and c->v still NULL). */
	if (keep > 0)
		memmove(c->v, c->v + keep, (c->n - keep) * sizeof(*c->v));
	c->n -= keep;
	/* An anchor without entries (the record of a sync) only prunes. */
	if (a->n_entries == 0 || a->group_start < a->synced) {
		capf__audit_anchor__free_unpacked(a, NULL);
		return 0;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 16;
		Capf__AuditAnchor **v = realloc(c->v, cap * sizeof(*v));

		if (v == NULL) {
			capf__audit_anchor__free_unpacked(a, NULL);
			return CAPF_ENOMEM;
		}
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n++] = a;
	return 0;
}

int store_audit_restore_plan(const struct audit_copies *c, uint64_t file, const uint8_t *buf,
			     size_t len, struct store_buf *out, uint64_t *start, size_t *n_entries)
{
	struct store_scan_result res;
	size_t k, first = SIZE_MAX;
	uint64_t next = 0;
	uint32_t salt;
	int ret;

	out->len = 0;
	*n_entries = 0;
	for (k = 0; k < c->n && c->v[k]->file != file; k++)
		;
	if (k == c->n || len < STORE_HEADER_LEN)
		return 0;
	ret = store_scan(buf, len, STORE_FILE_AUDIT, store_check_audit_payload, NULL, NULL, NULL,
			 &res);
	/* Damage before later groups is what a power cut leaves of unsynced
	 * groups, too: what the walk keeps is res.valid_len either way. */
	if ((ret < 0 && ret != CAPF_ECORRUPT) || res.version != STORE_FORMAT_VERSION ||
	    res.seq != file || res.valid_len < STORE_HEADER_LEN)
		return ret == CAPF_ENOMEM ? ret : 0;
	salt = store_be32_get(buf + 24);
	for (; k < c->n && c->v[k]->file == file; k++) {
		const Capf__AuditAnchor *a = c->v[k];
		struct store_framer f = { salt, a->group_start, a->group, a->after_lazy };
		size_t mark = out->len;

		if (first == SIZE_MAX && a->group_start > res.valid_len)
			break; /* a gap: not what a power cut leaves */
		if (first != SIZE_MAX && a->group_start != next)
			break;
		for (size_t e = 0; e < a->n_entries; e++) {
			ret = store_frame_entry(&f, a->entries[e].data, a->entries[e].len,
						e + 1 == a->n_entries, out, NULL);
			if (ret < 0)
				return ret;
		}
		if (first == SIZE_MAX && f.pos <= res.valid_len) {
			/* In the file already, and as written: a valid group that
			 * differs is no power cut's doing (say so by restoring
			 * nothing: the checks of the chain find it). */
			if (memcmp(buf + a->group_start, out->data + mark, out->len - mark) != 0) {
				out->len = 0;
				return 0;
			}
			out->len = mark;
			continue;
		}
		if (first == SIZE_MAX) {
			first = k;
			*start = a->group_start;
		}
		*n_entries += a->n_entries;
		next = f.pos;
	}
	return first == SIZE_MAX || out->len == 0 ? 0 : 1;
}
