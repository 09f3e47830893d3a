/*
 * The audit log: encoding of entries, the hash chain, and reading and
 * verifying a log offline. An entry is an AuditEntry whose field 10 (hash)
 * comes last and is SHA-256(prev_hash || every byte of the entry before
 * field 10); prev_hash is the hash of the entry before (32 zero bytes for
 * the first entry of a chain). Changing, removing, inserting or moving an
 * entry therefore breaks the link at or right after it, and the store's
 * anchor (the last entry as the store recorded it) catches entries cut
 * from the end.
 *
 * The store holds no key: the chain proves the order and integrity of
 * what it links, against anyone who cannot rewrite the rest of the log
 * and the store's anchors after it.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "store/internal.h"

static const char *const kind_names[] = {
	[CAPF__AUDIT_KIND__AUDIT_UNKNOWN] = "unknown",
	[CAPF__AUDIT_KIND__AUDIT_AUTH_OK] = "auth-ok",
	[CAPF__AUDIT_KIND__AUDIT_AUTH_FAIL] = "auth-fail",
	[CAPF__AUDIT_KIND__AUDIT_ISSUE] = "issue",
	[CAPF__AUDIT_KIND__AUDIT_ACK] = "ack",
	[CAPF__AUDIT_KIND__AUDIT_ENROLL_FAIL] = "enroll-fail",
	[CAPF__AUDIT_KIND__AUDIT_REVOKE] = "revoke",
	[CAPF__AUDIT_KIND__AUDIT_ADMIN] = "admin",
	[CAPF__AUDIT_KIND__AUDIT_CA_CHANGE] = "ca-change",
	[CAPF__AUDIT_KIND__AUDIT_STORE] = "store",
};

#define N_KINDS (sizeof(kind_names) / sizeof(kind_names[0]))

const char *store_audit_kind_name(int kind)
{
	if (kind < 0 || (size_t)kind >= N_KINDS || !kind_names[kind])
		return "unknown";
	return kind_names[kind];
}

int store_audit_kind_from_name(const char *name)
{
	size_t i;

	for (i = 0; name && i < N_KINDS; i++)
		if (kind_names[i] && strcmp(kind_names[i], name) == 0)
			return (int)i;
	return -1;
}

int store_audit_hash(const uint8_t prev[STORE_HASH_LEN], const uint8_t *body, size_t len,
		     uint8_t out[STORE_HASH_LEN])
{
	gnutls_hash_hd_t h = NULL;
	int ret = 0;

	if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
		return CAPF_ECRYPTO;
	if (gnutls_hash(h, prev, STORE_HASH_LEN) < 0 || (len > 0 && gnutls_hash(h, body, len) < 0))
		ret = CAPF_ECRYPTO;
	gnutls_hash_deinit(h, ret == 0 ? out : NULL);
	return ret;
}

/* Copies at most STORE_AUDIT_TEXT_MAX bytes of s ("" for NULL). */
static char *cut(const char *s, char *buf)
{
	size_t n = s ? strnlen(s, STORE_AUDIT_TEXT_MAX) : 0;

	if (n)
		memcpy(buf, s, n);
	buf[n] = '\0';
	return buf;
}

int store_audit_encode(const struct store_audit_event *ev, uint64_t seq, int64_t t,
		       const uint8_t prev_hash[STORE_HASH_LEN], uint8_t **out, size_t *out_len,
		       uint8_t hash[STORE_HASH_LEN])
{
	Capf__AuditEntry e = CAPF__AUDIT_ENTRY__INIT;
	char device[STORE_AUDIT_TEXT_MAX + 1], peer[STORE_AUDIT_TEXT_MAX + 1];
	char detail[STORE_AUDIT_TEXT_MAX + 1];
	uint8_t *buf = NULL, *body;
	size_t blen, plen;
	int ret;

	*out = NULL;
	*out_len = 0;
	e.seq = seq;
	e.time = t;
	e.kind = ev->kind;
	e.device = cut(ev->device, device);
	e.peer = cut(ev->peer, peer);
	e.detail = cut(ev->detail, detail);
	if (ev->serial && ev->serial_len > 0) {
		e.serial.data = (uint8_t *)ev->serial;
		e.serial.len = ev->serial_len > STORE_AUDIT_SERIAL_MAX ? STORE_AUDIT_SERIAL_MAX
									: ev->serial_len;
	}
	e.code = (uint32_t)(ev->code < 0 ? -ev->code : ev->code);
	e.prev_hash.data = (uint8_t *)prev_hash;
	e.prev_hash.len = STORE_HASH_LEN;

	/* Field 10 has the highest number, so protobuf-c would encode it last:
	 * the body is the entry without it, and the hash field follows. */
	blen = capf__audit_entry__get_packed_size(&e);
	plen = blen + STORE_AUDIT_HASH_FIELD_LEN;
	buf = malloc(plen);
	if (!buf)
		return CAPF_ENOMEM;
	body = buf;
	capf__audit_entry__pack(&e, body);
	ret = store_audit_hash(prev_hash, body, blen, hash);
	if (ret < 0) {
		free(buf);
		return ret;
	}
	body[blen] = STORE_AUDIT_HASH_TAG;
	body[blen + 1] = STORE_HASH_LEN;
	memcpy(body + blen + 2, hash, STORE_HASH_LEN);
	*out = buf;
	*out_len = plen;
	return 0;
}

/* Reads seq and prev_hash of a checked entry without allocating. */
static int audit_fields(const uint8_t *p, size_t len, uint64_t *seq, const uint8_t **prev)
{
	const uint8_t *end = p + len;

	*seq = 0;
	*prev = NULL;
	while (p < end) {
		uint64_t tag, v = 0;
		unsigned shift = 0;

		/* Tags and varints of an entry that passed store_pb_check(). */
		tag = 0;
		do {
			tag |= (uint64_t)(*p & 0x7f) << shift;
			shift += 7;
		} while (*p++ & 0x80);
		switch (tag & 7) {
		case 0:
			shift = 0;
			do {
				v |= (uint64_t)(*p & 0x7f) << shift;
				shift += 7;
			} while (*p++ & 0x80);
			if (tag >> 3 == 1)
				*seq = v;
			break;
		case 1:
			p += 8;
			break;
		case 5:
			p += 4;
			break;
		default:
			shift = 0;
			do {
				v |= (uint64_t)(*p & 0x7f) << shift;
				shift += 7;
			} while (*p++ & 0x80);
			if (tag >> 3 == 9)
				*prev = v == STORE_HASH_LEN ? p : NULL;
			p += v;
			break;
		}
	}
	return *seq > 0 && *prev ? 0 : CAPF_EBADMSG;
}

int store_check_audit_payload(const uint8_t *p, size_t len, void *ctx, const char **reason)
{
	const uint8_t *prev;
	uint64_t seq;

	(void)ctx;
	if (len < STORE_AUDIT_HASH_FIELD_LEN ||
	    p[len - STORE_AUDIT_HASH_FIELD_LEN] != STORE_AUDIT_HASH_TAG ||
	    p[len - STORE_AUDIT_HASH_FIELD_LEN + 1] != STORE_HASH_LEN) {
		*reason = "entry does not end with its 32-byte hash";
		return CAPF_EBADMSG;
	}
	if (store_pb_check(&capf__audit_entry__descriptor, p, len) < 0 ||
	    audit_fields(p, len, &seq, &prev) < 0) {
		*reason = "entry payload is not a valid AuditEntry";
		return CAPF_EBADMSG;
	}
	return 0;
}

int store_audit_link(const uint8_t *p, size_t len, uint64_t off, struct store_audit_chain *chain,
		     Capf__AuditEntry **entry)
{
	size_t blen = len - STORE_AUDIT_HASH_FIELD_LEN;
	const uint8_t *prev, *hash = p + blen + 2;
	uint8_t h[STORE_HASH_LEN];
	uint64_t seq;
	int ret, link = STORE_AUDIT_LINK_OK;

	if (entry)
		*entry = NULL;
	if (audit_fields(p, len, &seq, &prev) < 0)
		return CAPF_EBADMSG;
	ret = store_audit_hash(prev, p, blen, h);
	if (ret < 0)
		return ret;
	if (memcmp(h, hash, STORE_HASH_LEN) != 0)
		link = STORE_AUDIT_LINK_HASH;
	else if (chain->seq > 0 && seq <= chain->seq)
		link = STORE_AUDIT_LINK_SEQ_BACK;
	else if (chain->seq > 0 && seq != chain->seq + 1)
		link = STORE_AUDIT_LINK_SEQ_GAP;
	else if (chain->seq > 0 && memcmp(prev, chain->hash, STORE_HASH_LEN) != 0)
		link = STORE_AUDIT_LINK_PREV;
	if (entry) {
		*entry = capf__audit_entry__unpack(NULL, len, p);
		if (!*entry)
			return CAPF_ENOMEM;
	}
	/* Judge the next entry against this one as it stands, so that one
	 * broken link is reported once. */
	chain->seq = seq;
	chain->offset = off;
	memcpy(chain->hash, hash, STORE_HASH_LEN);
	return link;
}

const char *store_audit_link_text(int link)
{
	switch (link) {
	case STORE_AUDIT_LINK_OK:
		return "intact";
	case STORE_AUDIT_LINK_HASH:
		return "its hash does not match its contents: the entry was edited";
	case STORE_AUDIT_LINK_PREV:
		return "its prev_hash is not the hash of the entry before it: that entry was "
		       "edited or replaced, or this one was inserted or moved";
	case STORE_AUDIT_LINK_SEQ_GAP:
		return "its sequence number skips: entries were removed before it";
	case STORE_AUDIT_LINK_SEQ_BACK:
		return "its sequence number does not grow: entries were reordered or repeated";
	default:
		return "cannot be checked";
	}
}

/* ---- reading ------------------------------------------------------------- */

/*
 * The one walk over an audit file that the reader, the verifier, store
 * check and repair and the open store share: a first walk judges the file
 * (what is kept, a torn tail, damage), a second hands each item to cb with
 * whether it lies in the tail that a start drops (in_tail).
 */
struct audit_pass {
	store_audit_item_cb cb;
	void *arg;
	const struct store_scan_result *res;
};

static int audit_pass_item(const struct store_walk_item *it, void *arg)
{
	struct audit_pass *ap = arg;

	return ap->cb(it, ap->res->torn && it->off >= ap->res->valid_len, ap->arg);
}

bool store_audit_unanchored_tail(int *ret, struct store_scan_result *res, uint64_t after)
{
	if (*ret != CAPF_ECORRUPT || res->version != STORE_FORMAT_VERSION || res->bad_off == 0 ||
	    res->bad_off <= after)
		return false;
	*ret = 0;
	res->torn = 1;
	res->tail_off = res->valid_len;
	return true;
}

static int audit_walk(const uint8_t *buf, size_t len, bool newest, uint64_t after,
		      bool *relaxed, store_audit_item_cb cb, void *arg,
		      struct store_scan_result *res)
{
	struct store_scan_result again;
	struct audit_pass ap = { cb, arg, res };
	int ret;

	ret = store_file_walk(buf, len, STORE_FILE_AUDIT, store_check_audit_payload, NULL, NULL,
			      NULL, res);
	if (newest && store_audit_unanchored_tail(&ret, res, after) && relaxed)
		*relaxed = true;
	if ((ret < 0 && ret != CAPF_ECORRUPT) || !cb || res->header_len == 0 || len == 0)
		return ret;
	if (ret == CAPF_ECORRUPT && res->version == 0)
		return ret;
	{
		int r = store_file_walk(buf, len, STORE_FILE_AUDIT, store_check_audit_payload, NULL,
					audit_pass_item, &ap, &again);

		if (r < 0 && r != CAPF_ECORRUPT)
			return r;
	}
	return ret;
}

int store_audit_walk(const uint8_t *buf, size_t len, store_audit_item_cb cb, void *arg,
		     struct store_scan_result *res)
{
	return audit_walk(buf, len, false, 0, NULL, cb, arg, res);
}

int store_audit_walk_newest(const uint8_t *buf, size_t len, uint64_t after, bool *relaxed,
			    store_audit_item_cb cb, void *arg, struct store_scan_result *res)
{
	return audit_walk(buf, len, true, after, relaxed, cb, arg, res);
}

#define READ_STOP 1

struct read_ctx {
	store_audit_read_cb cb;
	void *arg;
	bool stopped;
};

static int read_item(const struct store_walk_item *it, bool in_tail, void *arg)
{
	struct read_ctx *rc = arg;
	Capf__AuditEntry *e;
	int r;

	if (!it->good || in_tail || rc->stopped || !rc->cb)
		return 0;
	e = capf__audit_entry__unpack(NULL, it->len, it->payload);
	if (!e)
		return CAPF_ENOMEM;
	r = rc->cb(e, it->off, rc->arg);
	capf__audit_entry__free_unpacked(e, NULL);
	if (r != 0)
		rc->stopped = true;
	return 0;
}

/*
 * The newest audit file as capfd's start leaves it: its end restored from
 * the segment's copies when a power cut lost part of it. Returns 1 with
 * *image (free it; *len, *start and *n set), 0 when the file is to be
 * read as it is, or CAPF_ENOMEM.
 */
static int newest_image(const struct audit_copies *c, const struct store_file_map *m,
			uint8_t **image, size_t *len, uint64_t *start, size_t *n)
{
	struct store_buf restored = { 0 };
	int ret;

	*image = NULL;
	if (c->n == 0 || m->len < STORE_HEADER_LEN)
		return 0;
	ret = store_audit_restore_plan(c, store_be64_get(m->data + 16), m->data, m->len, &restored,
				       start, n);
	if (ret == 1) {
		*image = malloc(*start + restored.len);
		if (*image == NULL) {
			ret = CAPF_ENOMEM;
		} else {
			memcpy(*image, m->data, *start);
			memcpy(*image + *start, restored.data, restored.len);
			*len = *start + restored.len;
		}
	}
	store_buf_free(&restored);
	return ret;
}

/* The reader's verdict on a file, for store_last_error(). */
static void read_error(const char *path, int ret, const struct store_scan_result *res)
{
	if (ret == CAPF_ECORRUPT && res->header_len == 0)
		store_set_error("%s: %s", path, res->reason);
	else if (ret == CAPF_ECORRUPT)
		store_set_error("%s: damaged entry at byte offset %zu (%s)", path, res->bad_off,
				res->reason);
}

int store_audit_read(const char *path, store_audit_read_cb cb, void *arg)
{
	struct store_scan_result res;
	struct store_file_map m;
	struct read_ctx rc = { cb, arg, false };
	int ret;

	store_clear_error();
	ret = store_map_file(path, &m);
	if (ret < 0)
		return ret;
	ret = store_audit_walk(m.data, m.len, read_item, &rc, &res);
	read_error(path, ret, &res);
	store_unmap_file(&m);
	return ret;
}

/*
 * The newest audit file of a store whose segments are there, read as
 * capfd's start leaves it (as store_audit_verify() reads it): its end
 * restored from the copies, and damage after the last entry the segments
 * anchor taken for the torn tail it is.
 */
static int read_newest(const char *path, const struct store_anchor *an,
		       const struct audit_copies *c, store_audit_read_cb cb, void *arg)
{
	struct store_scan_result res;
	struct store_file_map m;
	struct read_ctx rc = { cb, arg, false };
	const uint8_t *data;
	uint8_t *image = NULL;
	size_t len, n = 0;
	uint64_t start = 0, seq;
	int ret;

	ret = store_map_file(path, &m);
	if (ret < 0)
		return ret;
	data = m.data;
	len = m.len;
	ret = newest_image(c, &m, &image, &len, &start, &n);
	if (ret < 0)
		goto out;
	if (ret == 1)
		data = image;
	seq = len >= STORE_HEADER_LEN ? store_be64_get(data + 16) : 0;
	ret = store_audit_walk_newest(data, len, an->seq && an->file == seq ? an->offset : 0, NULL,
				      read_item, &rc, &res);
	read_error(path, ret, &res);
out:
	free(image);
	store_unmap_file(&m);
	return ret;
}

int store_audit_files(const char *dir, char ***paths, size_t *n)
{
	struct store_dir_list l;
	char name[64], **out = NULL;
	size_t i, cnt;
	int ret;

	*paths = NULL;
	*n = 0;
	ret = store_dir_list(dir, &l);
	if (ret < 0)
		return ret;
	cnt = l.n_audits ? l.n_audits : (l.audit ? 1 : 0);
	if (cnt && !(out = calloc(cnt, sizeof(*out)))) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	for (i = 0; i < cnt; i++) {
		if (l.n_audits)
			store_audit_name(name, sizeof(name), l.audits[i]);
		else
			snprintf(name, sizeof(name), "%s", STORE_AUDIT_NAME);
		out[i] = store_path(dir, name);
		if (!out[i]) {
			ret = CAPF_ENOMEM;
			goto out;
		}
	}
	*paths = out;
	*n = cnt;
	out = NULL;
out:
	store_audit_files_free(out, cnt);
	store_dir_list_free(&l);
	return ret;
}

void store_audit_files_free(char **paths, size_t n)
{
	size_t i;

	if (!paths)
		return;
	for (i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

struct read_dir_ctx {
	store_audit_read_cb cb;
	void *arg;
	int stop;
};

static int read_dir_entry(const Capf__AuditEntry *e, uint64_t offset, void *arg)
{
	struct read_dir_ctx *rd = arg;

	rd->stop = rd->cb(e, offset, rd->arg);
	return rd->stop;
}

int store_audit_read_dir(const char *dir, store_audit_read_cb cb, void *arg)
{
	struct read_dir_ctx rd = { cb, arg, 0 };
	struct audit_copies copies = { 0 };
	struct store_anchor an = { 0 };
	struct store_dir_list l;
	bool segments = false;
	char **paths = NULL;
	size_t i, n = 0;
	int ret, first_err = 0;
	char err[600] = "";

	if (!dir || !cb)
		return CAPF_EINVAL;
	ret = store_audit_files(dir, &paths, &n);
	if (ret < 0)
		return ret;
	/* With the segments, the newest file is read as start leaves it. */
	if (store_dir_list(dir, &l) == 0) {
		segments = l.n_segs > 0;
		store_dir_list_free(&l);
	}
	if (segments && store_find_anchor_copies(dir, &an, &copies) < 0) {
		/* The segments do not say: the files as they are. */
		store_copies_free(&copies);
		memset(&an, 0, sizeof(an));
		segments = false;
	}
	for (i = 0; i < n && !rd.stop; i++) {
		if (segments && i + 1 == n)
			ret = read_newest(paths[i], &an, &copies, read_dir_entry, &rd);
		else
			ret = store_audit_read(paths[i], read_dir_entry, &rd);
		if (ret == CAPF_ECORRUPT && !first_err) {
			first_err = ret;
			snprintf(err, sizeof(err), "%s", store_last_error());
		} else if (ret < 0) {
			goto out;
		}
	}
	ret = first_err;
	if (ret)
		store_set_error("%s", err);
out:
	store_copies_free(&copies);
	store_audit_files_free(paths, n);
	return ret;
}

/* ---- verifying ----------------------------------------------------------- */

struct verify {
	store_report_cb cb;
	void *arg;
	struct store_audit_summary *sum;
	struct store_audit_chain chain;
	struct store_anchor anchor;
	struct audit_copies copies; /* of the segments: the newest file read as restored */
	bool segments;              /* the store's segments are there: they say what was durable */
	bool anchor_seen;
	bool after_damage;   /* the entry before is unreadable: only order is checked */
	bool first;          /* no entry seen yet in any file */
};

static void report(struct verify *v, const char *file, uint64_t off, uint64_t len, int damage,
		   const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void report(struct verify *v, const char *file, uint64_t off, uint64_t len, int damage,
		   const char *fmt, ...)
{
	va_list ap;

	if (damage)
		v->sum->problems++;
	va_start(ap, fmt);
	store_report_v(v->cb, v->arg, file, off, len, damage, fmt, ap);
	va_end(ap);
}

static int verify_entry(struct verify *v, const char *file, const uint8_t *p, size_t len,
			uint64_t off)
{
	struct store_audit_chain before = v->chain;
	Capf__AuditEntry *e = NULL;
	int link;

	link = store_audit_link(p, len, off, &v->chain, &e);
	if (link < 0)
		return link;
	if (v->after_damage && (link == STORE_AUDIT_LINK_PREV || link == STORE_AUDIT_LINK_SEQ_GAP))
		link = STORE_AUDIT_LINK_OK;
	if (v->first) {
		v->sum->first_seq = e->seq;
		if (e->seq == 1) {
			static const uint8_t zeros[STORE_HASH_LEN];

			if (link == STORE_AUDIT_LINK_OK && memcmp(e->prev_hash.data, zeros,
								  STORE_HASH_LEN) != 0)
				report(v, file, off, 0, 1,
				       "entry seq 1 has a prev_hash: it does not start a chain");
		} else if (e->kind == CAPF__AUDIT_KIND__AUDIT_STORE &&
			   strncmp(e->detail, "continues", 9) == 0) {
			report(v, file, off, 0, 0, "the log starts at seq %llu: %s",
			       (unsigned long long)e->seq, e->detail);
		} else {
			report(v, file, off, 0, 1,
			       "the log starts at seq %llu: entries were removed from its start",
			       (unsigned long long)e->seq);
		}
	}
	if (link == STORE_AUDIT_LINK_SEQ_GAP)
		report(v, file, off, 0, 1, "entry seq %llu follows seq %llu: %s",
		       (unsigned long long)e->seq, (unsigned long long)before.seq,
		       store_audit_link_text(link));
	else if (link == STORE_AUDIT_LINK_SEQ_BACK)
		report(v, file, off, 0, 1, "entry seq %llu follows seq %llu: %s",
		       (unsigned long long)e->seq, (unsigned long long)before.seq,
		       store_audit_link_text(link));
	else if (link != STORE_AUDIT_LINK_OK)
		report(v, file, off, 0, 1, "entry seq %llu: %s", (unsigned long long)e->seq,
		       store_audit_link_text(link));
	if (v->anchor.seq && e->seq == v->anchor.seq) {
		v->anchor_seen = true;
		if (memcmp(e->hash.data, v->anchor.hash, STORE_HASH_LEN) != 0)
			report(v, file, off, 0, 1,
			       "entry seq %llu is not the one the store recorded: it was replaced",
			       (unsigned long long)e->seq);
	}
	v->first = false;
	v->after_damage = false;
	v->sum->entries++;
	v->sum->last_seq = e->seq;
	capf__audit_entry__free_unpacked(e, NULL);
	return 0;
}

struct verify_file_ctx {
	struct verify *v;
	const char *path;
	bool last;
	int ret;
	bool tail_reported;
	size_t len;
};

static int verify_item(const struct store_walk_item *it, bool in_tail, void *arg)
{
	struct verify_file_ctx *vf = arg;
	struct verify *v = vf->v;

	/* Entries up to the store's anchor were durable: none is a tail. */
	if (in_tail && vf->last && !(v->anchor.seq && !v->anchor_seen)) {
		if (!vf->tail_reported)
			report(v, vf->path, it->off, vf->len - it->off, 0,
			       "torn tail of %zu bytes (%s): an entry being written, or an "
			       "interrupted write that the next start drops",
			       vf->len - it->off, it->reason ? it->reason : "no commit marker");
		vf->tail_reported = true;
		return 0;
	}
	if (it->good)
		return verify_entry(v, vf->path, it->payload, it->len, it->off);
	report(v, vf->path, it->off, it->end - it->off, 1,
	       "%zu damaged bytes (%s): the entries there were edited or damaged",
	       it->end - it->off, it->reason);
	v->after_damage = true;
	return 0;
}

static int verify_file(struct verify *v, const char *path, bool last)
{
	struct verify_file_ctx vf = { v, path, last, 0, false, 0 };
	struct store_scan_result res;
	struct store_file_map m;
	const uint8_t *data;
	uint8_t *image = NULL;
	size_t len, n_entries = 0;
	uint64_t start = 0;
	int ret;

	ret = store_map_file(path, &m);
	if (ret < 0) {
		report(v, path, 0, 0, 1, "cannot read: %s", store_last_error());
		return ret == CAPF_ENOMEM ? ret : 0;
	}
	if (m.len == 0) {
		/* capf makes an audit file whole, header included (written to
		 * a temporary name, synced, renamed): an empty one is not what a
		 * crash leaves, and start-up refuses it. */
		report(v, path, 0, 0, 1, "empty file: no header");
		goto out;
	}
	data = m.data;
	len = m.len;
	/* A file of format 3 carries its own number, which start-up checks
	 * against its name. */
	{
		const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
		unsigned long long num;
		char tail[8];

		if (m.len >= STORE_HEADER_LEN && store_be32_get(m.data + 8) == STORE_FORMAT_VERSION &&
		    sscanf(base, STORE_AUDIT_PREFIX "%llu%7s", &num, tail) == 2 &&
		    strcmp(tail, STORE_AUDIT_SUFFIX) == 0 && store_be64_get(m.data + 16) != num) {
			report(v, path, 0, m.len, 1,
			       "the header names audit file %llu, not this one (%llu)",
			       (unsigned long long)store_be64_get(m.data + 16), num);
			ret = 0;
			goto out;
		}
	}
	/* The newest file as capfd's start leaves it: its end restored from
	 * the segment's copies if a power cut lost some of it. */
	if (last) {
		ret = newest_image(&v->copies, &m, &image, &len, &start, &n_entries);
		if (ret < 0)
			goto out;
		if (ret == 1) {
			v->sum->restored += n_entries;
			data = image;
			report(v, path, start, m.len > start ? m.len - start : 0, 0,
			       "%zu audit entries from byte offset %llu on are read from their copies "
			       "in the segment: the end of the file was not on disk after a crash, "
			       "and capfd's next start (or capfctl store repair) restores it",
			       n_entries, (unsigned long long)start);
		}
	}
	vf.len = len;
	if (last && v->segments && len >= STORE_HEADER_LEN) {
		uint64_t seq = store_be64_get(data + 16);

		ret = store_audit_walk_newest(data, len,
					      v->anchor.seq && v->anchor.file == seq ? v->anchor.offset
										     : 0,
					      &v->sum->unanchored_tail, verify_item, &vf, &res);
	} else {
		ret = store_audit_walk(data, len, verify_item, &vf, &res);
	}
	/* A header that does not check (header_len 0) may still carry a
	 * known version, with unknown flags say: no entry of the file was
	 * read, and that is damage, not an empty log. */
	if (ret == CAPF_ECORRUPT && res.header_len == 0) {
		report(v, path, 0, m.len, 1, "bad header: %s", res.reason);
		ret = 0;
		goto out;
	}
	if (ret == CAPF_ECORRUPT)
		ret = 0;
	if (ret < 0)
		goto out;
	if (res.torn && !last && !vf.tail_reported)
		report(v, path, res.valid_len, len - res.valid_len, 1,
		       "%zu bytes at the end of an audit file that is not the last (%s): "
		       "damaged or cut",
		       len - res.valid_len, res.reason);
out:
	free(image);
	store_unmap_file(&m);
	return ret;
}

/*
 * The numbering of dir's audit files: from the one holding the store's
 * anchor on (from the first without an anchor), each must follow the one
 * before, as capfd's start requires; a gap is a file removed.
 */
static int check_numbering(struct verify *v, const char *dir)
{
	struct store_dir_list l;
	char name[64];
	size_t i, first = 0;
	int ret;

	ret = store_dir_list(dir, &l);
	if (ret < 0)
		return ret;
	if (v->anchor.seq)
		for (first = 0; first < l.n_audits && l.audits[first] != v->anchor.file; first++)
			;
	for (i = first + 1; i < l.n_audits; i++) {
		if (l.audits[i] == l.audits[i - 1] + 1)
			continue;
		store_audit_name(name, sizeof(name), l.audits[i - 1] + 1);
		report(v, dir, 0, 0, 1,
		       "%s is missing: the audit files must follow each other (capfd does not "
		       "start without it)",
		       name);
	}
	store_dir_list_free(&l);
	return 0;
}

int store_audit_verify(const char *dir, const char *const *files, size_t nfiles,
		       store_report_cb cb, void *arg, struct store_audit_summary *sum)
{
	struct store_audit_summary s;
	struct verify v;
	char **own = NULL;
	size_t i, n_own = 0;
	int ret = 0;

	store_clear_error();
	if (!sum)
		sum = &s;
	memset(sum, 0, sizeof(*sum));
	memset(&v, 0, sizeof(v));
	v.cb = cb;
	v.arg = arg;
	v.sum = sum;
	v.first = true;
	if (nfiles == 0) {
		if (!dir)
			return CAPF_EINVAL;
		ret = store_audit_files(dir, &own, &n_own);
		if (ret < 0)
			return ret;
		if (n_own == 0) {
			report(&v, dir, 0, 0, 1, "no audit log in %s", dir);
			ret = CAPF_ECORRUPT;
			goto out;
		}
		files = (const char *const *)own;
		nfiles = n_own;
	}
	if (dir) {
		struct store_dir_list l;

		if (store_dir_list(dir, &l) == 0) {
			v.segments = l.n_segs > 0;
			store_dir_list_free(&l);
		}
		ret = store_find_anchor_copies(dir, &v.anchor, &v.copies);
		if (ret < 0) {
			report(&v, dir, 0, 0, 1, "cannot read the store's audit anchor: %s",
			       store_last_error());
			ret = 0;
		}
		sum->anchor_seq = v.anchor.seq;
		ret = check_numbering(&v, dir);
		if (ret < 0)
			goto out;
	}
	for (i = 0; i < nfiles; i++) {
		ret = verify_file(&v, files[i], i + 1 == nfiles);
		if (ret < 0)
			goto out;
	}
	if (v.anchor.seq && !v.anchor_seen) {
		if (sum->last_seq < v.anchor.seq)
			report(&v, files[nfiles - 1], 0, 0, 1,
			       "the log ends at seq %llu but the store recorded seq %llu: entries "
			       "were removed from its end",
			       (unsigned long long)sum->last_seq,
			       (unsigned long long)v.anchor.seq);
		else
			report(&v, files[nfiles - 1], 0, 0, 1,
			       "entry seq %llu, which the store recorded, is missing",
			       (unsigned long long)v.anchor.seq);
	}
	ret = sum->problems ? CAPF_ECORRUPT : 0;
out:
	store_copies_free(&v.copies);
	store_audit_files_free(own, n_own);
	return ret;
}
