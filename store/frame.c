/*
 * Framing of the store's files (format 3): headers, fragments in fixed
 * blocks, and the one walk over a file that everything reading one uses
 * (loading, recovery, store check and repair, the audit reader and
 * verifier). No I/O here, so the fuzz targets can feed it arbitrary bytes.
 *
 * The model is LevelDB's log format: a file is a sequence of 4 KiB
 * blocks (the page a power cut tears or loses); an entry is written as fragments (FULL, or FIRST,
 * MIDDLE..., LAST), none of which crosses a block boundary, and a block end too short for a
 * fragment header is zero padding. So a fragment header is only ever read where the structure puts
 * one: right after the fragment before it, or at the start of a block. No byte inside a payload is
 * ever read as a header, whatever it holds, and after damage the walk goes on at the next block,
 * reading every byte at most once.
 *
 * A fragment header carries two CRC32Cs, of the header and of the
 * payload, each seeded with the file's random salt and the fragment's own
 * offset, so a fragment is only valid in its own file at its own place
 * (stale data of another file or of another offset never passes). A
 * header that checks gives the place of the next fragment even when its
 * payload is damaged, so damage costs the rest of its block only when it
 * hits a header. Each fragment names the group commit it was written in, and the
 * last entry of a group carries the COMMIT flag: what recovery needs to
 * tell the one group that a power cut may have left half on disk (in any
 * order of its blocks) from damage to what was durable before it.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

_Thread_local uint64_t store_crc_bytes;

static const char *header_magic(enum store_file_kind kind)
{
	switch (kind) {
	case STORE_FILE_SNAPSHOT:
		return STORE_SNAP_MAGIC;
	case STORE_FILE_AUDIT:
		return STORE_AUDIT_MAGIC;
	case STORE_FILE_SEGMENT:
	case STORE_FILE_LEGACY:
	default:
		return STORE_SEG_MAGIC;
	}
}

void store_header_encode(uint8_t out[STORE_HEADER_LEN], enum store_file_kind kind, uint64_t seq,
			 uint32_t salt)
{
	memcpy(out, header_magic(kind), STORE_MAGIC_LEN);
	store_be32_put(out + 8, STORE_FORMAT_VERSION);
	/* Snapshots are written whole and synced before they count. */
	store_be32_put(out + 12, kind == STORE_FILE_SNAPSHOT ? 0 : STORE_HDR_LAZY_MARKS);
	store_be64_put(out + 16, seq);
	store_be32_put(out + 24, salt);
	store_be32_put(out + 28, crc32c(0, out, 28));
}

int store_header_read(const uint8_t *buf, size_t len, enum store_file_kind kind,
		      struct store_header *h, const char **reason)
{
	memset(h, 0, sizeof(*h));
	if (len < STORE_LEGACY_HEADER_LEN) {
		*reason = "file is shorter than its header";
		return CAPF_ECORRUPT;
	}
	if (memcmp(buf, header_magic(kind), STORE_MAGIC_LEN) != 0) {
		*reason = "bad magic: not a capf store file of this kind";
		return CAPF_ECORRUPT;
	}
	h->version = store_be32_get(buf + 8);
	if (kind == STORE_FILE_LEGACY
		? h->version != 1
		: h->version != STORE_FORMAT_VERSION && h->version != STORE_FORMAT_V2) {
		*reason = "unsupported format version";
		return CAPF_ECORRUPT;
	}
	h->len = kind == STORE_FILE_LEGACY	 ? STORE_LEGACY_HEADER_LEN
		 : h->version == STORE_FORMAT_V2 ? STORE_V2_HEADER_LEN
						 : STORE_HEADER_LEN;
	if (len < h->len) {
		*reason = "file is shorter than its header";
		return CAPF_ECORRUPT;
	}
	if ((store_be32_get(buf + 12) & ~STORE_HDR_LAZY_MARKS) != 0 ||
	    (store_be32_get(buf + 12) != 0 &&
	     (h->version != STORE_FORMAT_VERSION || kind == STORE_FILE_SNAPSHOT))) {
		*reason = "unknown flags in the header";
		return CAPF_ECORRUPT;
	}
	if (kind == STORE_FILE_LEGACY)
		return 0;
	h->seq = store_be64_get(buf + 16);
	if (h->version == STORE_FORMAT_V2) {
		if ((kind == STORE_FILE_AUDIT) != (h->seq == 0)) {
			*reason = kind == STORE_FILE_AUDIT
				      ? "audit log header with a sequence number"
				      : "sequence number 0 in the header";
			return CAPF_ECORRUPT;
		}
		return 0;
	}
	if (crc32c(0, buf, 28) != store_be32_get(buf + 28)) {
		*reason = "header CRC32C does not match";
		return CAPF_ECORRUPT;
	}
	if (h->seq == 0) {
		*reason = "sequence number 0 in the header";
		return CAPF_ECORRUPT;
	}
	h->salt = store_be32_get(buf + 24);
	return 0;
}

/* ---- growable buffers ------------------------------------------------------ */

int store_buf_reserve(struct store_buf *b, size_t more)
{
	size_t ncap;
	uint8_t *nd;

	if (b->cap - b->len >= more)
		return 0;
	ncap = b->cap ? b->cap : 4096;
	while (ncap - b->len < more)
		ncap *= 2;
	nd = realloc(b->data, ncap);
	if (!nd)
		return CAPF_ENOMEM;
	b->data = nd;
	b->cap = ncap;
	return 0;
}

void store_buf_free(struct store_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* ---- writing fragments ------------------------------------------------------- */

/* The CRC seed of the fragment at off: the file's salt, then the offset. */
static uint32_t frag_seed(uint32_t salt, uint64_t off)
{
	uint8_t b[8];

	store_be64_put(b, off);
	return crc32c(salt, b, sizeof(b));
}

static size_t block_room(uint64_t pos)
{
	return STORE_BLOCK_LEN - (size_t)(pos % STORE_BLOCK_LEN);
}

int store_frame_entry(struct store_framer *f, const uint8_t *p, size_t len, bool commit,
		      struct store_buf *out, uint64_t *start)
{
	size_t done = 0, frags = len / (STORE_BLOCK_LEN - STORE_FRAG_HEADER_LEN) + 2;
	bool first = true;
	int ret;

	if (len == 0 || len > STORE_ENTRY_MAX)
		return CAPF_EINVAL;
	ret = store_buf_reserve(out, len + frags * 2 * STORE_FRAG_HEADER_LEN);
	if (ret < 0)
		return ret;
	while (done < len) {
		size_t room = block_room(f->pos), n;
		uint8_t *h = out->data + out->len;
		unsigned type;
		uint32_t seed;

		if (room < STORE_FRAG_HEADER_LEN + 1) {
			/* Too short for a fragment: padding, the next starts a block. */
			memset(h, 0, room);
			out->len += room;
			f->pos += room;
			continue;
		}
		if (first && start)
			*start = f->pos;
		n = len - done;
		if (n > room - STORE_FRAG_HEADER_LEN)
			n = room - STORE_FRAG_HEADER_LEN;
		if (first)
			type = done + n == len ? STORE_FRAG_FULL : STORE_FRAG_FIRST;
		else
			type = done + n == len ? STORE_FRAG_LAST : STORE_FRAG_MIDDLE;
		seed = frag_seed(f->salt, f->pos);
		memcpy(h + STORE_FRAG_HEADER_LEN, p + done, n);
		store_be32_put(h + 4, crc32c(seed, h + STORE_FRAG_HEADER_LEN, n));
		h[8] = (uint8_t)(n >> 8);
		h[9] = (uint8_t)n;
		h[10] = (uint8_t)type;
		h[11] = (uint8_t)((commit && done + n == len ? STORE_FRAG_COMMIT : 0) |
				  (f->after_lazy ? STORE_FRAG_AFTER_LAZY : 0));
		store_be32_put(h + 12, f->group);
		store_be32_put(h, crc32c(seed, h + 4, STORE_FRAG_HEADER_LEN - 4));
		out->len += STORE_FRAG_HEADER_LEN + n;
		f->pos += STORE_FRAG_HEADER_LEN + n;
		done += n;
		first = false;
	}
	return 0;
}

/* ---- reading fragments -------------------------------------------------------- */

struct frag {
	size_t len; /* payload bytes */
	unsigned type;
	bool commit;
	bool after_lazy;
	uint32_t group;
};

enum {
	FRAG_BAD = 0, /* no valid header here: nothing is known of what follows */
	FRAG_OK = 1,
	FRAG_DAMAGED = 2, /* a valid header, a damaged payload: *fr says where it ends */
};

/* The fragment at pos: FRAG_OK (*fr), FRAG_DAMAGED (*fr, *reason) or
 * FRAG_BAD (*reason). */
static int frag_at(const uint8_t *buf, size_t len, uint32_t salt, size_t pos, struct frag *fr,
		   const char **reason)
{
	size_t room = block_room(pos);
	const uint8_t *h = buf + pos;
	uint32_t seed;

	if (len - pos < STORE_FRAG_HEADER_LEN) {
		*reason = "fragment header runs past the end of the file";
		return FRAG_BAD;
	}
	seed = frag_seed(salt, pos);
	store_crc_bytes += STORE_FRAG_HEADER_LEN - 4;
	if (crc32c(seed, h + 4, STORE_FRAG_HEADER_LEN - 4) != store_be32_get(h)) {
		*reason = store_be32_get(h) == 0 && store_be32_get(h + 8) == 0
			      ? "zeros where an entry should start"
			      : "fragment header CRC32C does not match";
		return FRAG_BAD;
	}
	fr->len = (size_t)h[8] << 8 | h[9];
	fr->type = h[10];
	fr->commit = (h[11] & STORE_FRAG_COMMIT) != 0;
	fr->after_lazy = (h[11] & STORE_FRAG_AFTER_LAZY) != 0;
	fr->group = store_be32_get(h + 12);
	if (fr->len == 0 || fr->len > room - STORE_FRAG_HEADER_LEN || fr->type < STORE_FRAG_FULL ||
	    fr->type > STORE_FRAG_LAST || (h[11] & ~STORE_FRAG_FLAGS) != 0 ||
	    (fr->commit && fr->type != STORE_FRAG_FULL && fr->type != STORE_FRAG_LAST)) {
		/* Checked, yet not one the writer makes: trust nothing of it. */
		*reason = "fragment header that the writer never makes";
		return FRAG_BAD;
	}
	if (fr->len > len - pos - STORE_FRAG_HEADER_LEN) {
		*reason = "fragment runs past the end of the file";
		return FRAG_DAMAGED;
	}
	store_crc_bytes += fr->len;
	if (crc32c(seed, h + STORE_FRAG_HEADER_LEN, fr->len) != store_be32_get(h + 4)) {
		*reason = "fragment payload CRC32C does not match";
		return FRAG_DAMAGED;
	}
	return FRAG_OK;
}

/* Skips block-end padding. */
static size_t skip_padding(size_t pos, size_t len)
{
	size_t room = block_room(pos);

	if (room < STORE_FRAG_HEADER_LEN + 1)
		pos += room;
	return pos < len ? pos : len;
}

/* A valid fragment inside a bad region: evidence unless written after a
 * group that was not synced. */
static void note_group(struct store_walk_item *it, uint32_t group, bool after_lazy)
{
	if (after_lazy)
		return;
	if (!it->has_group || group > it->max_group)
		it->max_group = group;
	it->has_group = true;
}

/*
 * A header that does not check hides where the rest of its block starts.
 * Nothing there is read as an entry (parsing goes on at the next block),
 * but a later group's header in it is evidence that the group of the
 * damage was durable, so every offset up to the block's end is probed for
 * a header that checks at its own offset with the file's salt: 12 bytes
 * checksummed per offset, each offset once. A payload byte can pass only
 * by matching a salted, position-bound CRC32C it cannot know, and even
 * then it only makes the start refuse (never accept) what it sees.
 */
static void probe(struct store_walk *w, size_t from, struct store_walk_item *it)
{
	size_t end = (from / STORE_BLOCK_LEN + 1) * STORE_BLOCK_LEN, p;

	if (from % STORE_BLOCK_LEN == 0)
		return;
	if (end > w->len)
		end = w->len;
	for (p = from; p + STORE_FRAG_HEADER_LEN <= end; p++) {
		const uint8_t *h = w->buf + p;

		/* What no writer's header holds needs no checksum. */
		if (h[10] < STORE_FRAG_FULL || h[10] > STORE_FRAG_LAST ||
		    (h[11] & ~STORE_FRAG_FLAGS) != 0 || (h[8] == 0 && h[9] == 0))
			continue;
		store_crc_bytes += STORE_FRAG_HEADER_LEN - 4;
		if (crc32c(frag_seed(w->salt, p), h + 4, STORE_FRAG_HEADER_LEN - 4) ==
		    store_be32_get(h))
			note_group(it, store_be32_get(h + 12), (h[11] & STORE_FRAG_AFTER_LAZY) != 0);
	}
}

/*
 * After a bad entry starting at start, with the failure at q (q_valid:
 * the fragment at q is valid but does not fit, e.g. a FIRST cut short by
 * a new entry): the bad region ends where the next entry starts, at a
 * place the structure gives (after a valid fragment, or a block start).
 * Valid fragments inside it name their groups in the item.
 */
static size_t resync(struct store_walk *w, size_t start, size_t q, struct store_walk_item *it)
{
	size_t r = q;

	while (r < w->len) {
		struct frag fr;
		const char *why;

		r = skip_padding(r, w->len);
		if (r >= w->len)
			break;
		switch (frag_at(w->buf, w->len, w->salt, r, &fr, &why)) {
		case FRAG_OK:
			if (r > start &&
			    (fr.type == STORE_FRAG_FULL || fr.type == STORE_FRAG_FIRST))
				return r;
			/* A piece of an entry whose start is lost. */
			__attribute__((fallthrough));
		case FRAG_DAMAGED:
			note_group(it, fr.group, fr.after_lazy);
			r += STORE_FRAG_HEADER_LEN + fr.len;
			break;
		default:
			probe(w, r + 1, it);
			r = (r / STORE_BLOCK_LEN + 1) * STORE_BLOCK_LEN;
			break;
		}
	}
	return r < w->len ? r : w->len;
}

void store_walk_init(struct store_walk *w, const uint8_t *buf, size_t len, size_t start,
		     uint32_t salt)
{
	memset(w, 0, sizeof(*w));
	w->buf = buf;
	w->len = len;
	w->pos = start;
	w->salt = salt;
}

void store_walk_deinit(struct store_walk *w)
{
	store_buf_free(&w->scratch);
}

int store_walk_next(struct store_walk *w, struct store_walk_item *it)
{
	size_t start, p;
	struct frag fr;
	const char *reason = NULL;
	int ret, c;

	memset(it, 0, sizeof(*it));
	w->pos = skip_padding(w->pos, w->len);
	if (w->pos >= w->len)
		return 0;
	start = w->pos;
	c = frag_at(w->buf, w->len, w->salt, start, &fr, &reason);
	if (c == FRAG_DAMAGED) {
		/* Its header says where the next fragment is: go on from there. */
		it->off = start;
		it->reason = reason;
		note_group(it, fr.group, fr.after_lazy);
		it->end = resync(w, start, start + STORE_FRAG_HEADER_LEN + fr.len, it);
		w->pos = it->end;
		return 1;
	}
	if (c == FRAG_OK) {
		if (fr.type == STORE_FRAG_FULL) {
			it->good = true;
			it->off = start;
			it->end = start + STORE_FRAG_HEADER_LEN + fr.len;
			it->payload = w->buf + start + STORE_FRAG_HEADER_LEN;
			it->len = fr.len;
			it->group = fr.group;
			it->commit = fr.commit;
			it->after_lazy = fr.after_lazy;
			w->pos = it->end;
			return 1;
		}
		if (fr.type == STORE_FRAG_FIRST) {
			uint32_t group = fr.group;
			bool after_lazy = fr.after_lazy;

			w->scratch.len = 0;
			for (p = start;;) {
				ret = store_buf_reserve(&w->scratch, fr.len);
				if (ret < 0)
					return ret;
				memcpy(w->scratch.data + w->scratch.len,
				       w->buf + p + STORE_FRAG_HEADER_LEN, fr.len);
				w->scratch.len += fr.len;
				p += STORE_FRAG_HEADER_LEN + fr.len;
				if (fr.type == STORE_FRAG_LAST) {
					it->good = true;
					it->off = start;
					it->end = p;
					it->payload = w->scratch.data;
					it->len = w->scratch.len;
					it->group = group;
					it->commit = fr.commit;
					it->after_lazy = after_lazy;
					w->pos = p;
					return 1;
				}
				p = skip_padding(p, w->len);
				if (p >= w->len) {
					reason = "an entry's fragments stop at the end of the file";
					break;
				}
				c = frag_at(w->buf, w->len, w->salt, p, &fr, &reason);
				if (c == FRAG_DAMAGED) {
					note_group(it, fr.group, fr.after_lazy);
					p += STORE_FRAG_HEADER_LEN + fr.len;
					break;
				}
				if (c != FRAG_OK)
					break;
				if ((fr.type != STORE_FRAG_MIDDLE && fr.type != STORE_FRAG_LAST) ||
				    fr.group != group ||
				    w->scratch.len + fr.len > STORE_ENTRY_MAX) {
					reason = "an entry's fragments do not follow each other";
					break;
				}
			}
			/* Bad from the entry's start on; its first fragment was valid. */
			it->off = start;
			it->reason = reason;
			note_group(it, group, after_lazy);
			it->end = resync(w, start, p, it);
			w->pos = it->end;
			return 1;
		}
		reason = "a fragment that continues an entry where an entry should start";
	}
	it->off = start;
	it->reason = reason;
	it->end = resync(w, start, start, it);
	w->pos = it->end;
	return 1;
}

/* ---- the walk of a whole file ---------------------------------------------------- */

/*
 * Judges a format 3 file item by item. An entry is good when its
 * fragments are valid, check accepts its payload and its group is the one
 * expected (that of the entry before it, or the next one after a commit).
 * The first entry that is not good ends what is kept: everything from the
 * last commit before it on is the last group. A group is written either
 * once every group before it is synced, or after a group that is not
 * synced yet (a lazy one), and then says so (STORE_FRAG_AFTER_LAZY). If
 * no valid fragment after the bad entry names a later group written the
 * first way, the bad group was never proven durable: it is the tail that a
 * crash or power cut left, dropped with everything after it whatever
 * state their blocks are in. Otherwise the group was durable and the file
 * is damaged.
 */
static int walk_v3(const uint8_t *buf, size_t len, const struct store_header *h,
		   store_payload_check_fn check, void *check_ctx, store_item_cb on_item, void *arg,
		   struct store_scan_result *res)
{
	struct store_walk w;
	struct store_walk_item it;
	size_t committed_end = h->len;
	uint32_t committed_group = 0, open_group = 0, tail_group = 0;
	size_t pending = 0, tail_off = h->len;
	bool open = false, bad = false, later = false;
	int ret = 0, c;

	store_walk_init(&w, buf, len, h->len, h->salt);
	while ((c = store_walk_next(&w, &it)) == 1) {
		if (it.good) {
			const char *reason = "entry payload is not valid";
			uint32_t want = open ? open_group : committed_group + 1;

			ret = check ? check(it.payload, it.len, check_ctx, &reason) : 0;
			if (ret == CAPF_ENOMEM)
				goto out;
			if (ret < 0 || (!bad && it.group != want)) {
				if (ret == 0)
					reason = "entry of another group than the one expected";
				it.good = false;
				it.reason = reason;
				note_group(&it, it.group, it.after_lazy);
			}
			ret = 0;
		}
		if (it.good && !bad) {
			pending++;
			if (it.commit) {
				res->entries += pending;
				pending = 0;
				committed_end = it.end;
				committed_group = it.group;
				open = false;
			} else {
				open = true;
				open_group = it.group;
			}
		} else if (!bad) {
			bad = true;
			res->bad_off = it.off;
			res->reason = it.reason;
			tail_group = committed_group + 1;
		}
		if (it.good && it.commit)
			tail_off = it.end;
		if (bad && ((it.good && !it.after_lazy && it.group > tail_group) ||
			    (!it.good && it.has_group && it.max_group > tail_group)))
			later = true;
		if (on_item) {
			ret = on_item(&it, arg);
			if (ret < 0)
				goto out;
			ret = 0;
		}
	}
	if (c < 0) {
		ret = c;
		goto out;
	}
	res->valid_len = committed_end;
	res->tail_off = committed_end;
	res->group = committed_group;
	if (bad && later) {
		/* What a reader may still tell apart: the uncommitted end. */
		res->tail_off = tail_off > committed_end ? tail_off : committed_end;
		ret = CAPF_ECORRUPT;
	} else if (committed_end < len) {
		res->torn = 1;
		if (!bad) {
			res->bad_off = committed_end;
			res->reason = "the last group has no commit marker";
		}
	}
out:
	store_walk_deinit(&w);
	return ret;
}

int store_file_walk(const uint8_t *buf, size_t len, enum store_file_kind kind,
		    store_payload_check_fn check, void *check_ctx, store_item_cb on_item, void *arg,
		    struct store_scan_result *res)
{
	struct store_header h;
	int ret;

	memset(res, 0, sizeof(*res));
	if (len == 0)
		return 0;
	ret = store_header_read(buf, len, kind, &h, &res->reason);
	res->version = h.version;
	res->seq = h.seq;
	res->salt = h.salt;
	res->header_len = ret < 0 ? 0 : h.len; /* 0: the header did not check */
	if (ret < 0)
		return ret;
	if (h.version != STORE_FORMAT_VERSION)
		return store_v2_walk(buf, len, &h, check, check_ctx, on_item, arg, res);
	return walk_v3(buf, len, &h, check, check_ctx, on_item, arg, res);
}

struct entries_ctx {
	size_t valid_len;
	store_entry_cb on_entry;
	void *arg;
};

static int entries_item(const struct store_walk_item *it, void *arg)
{
	struct entries_ctx *ec = arg;

	if (!it->good || it->end > ec->valid_len)
		return 0;
	return ec->on_entry(it->payload, it->len, it->off, ec->arg);
}

int store_scan(const uint8_t *buf, size_t len, enum store_file_kind kind,
	       store_payload_check_fn check, void *check_ctx, store_entry_cb on_entry, void *arg,
	       struct store_scan_result *res)
{
	struct store_scan_result again;
	struct entries_ctx ec;
	int ret;

	ret = store_file_walk(buf, len, kind, check, check_ctx, NULL, NULL, res);
	if (ret < 0 || !on_entry || res->entries == 0)
		return ret;
	/* What is kept is known only at the end: hand it out in a second walk. */
	ec.valid_len = res->valid_len;
	ec.on_entry = on_entry;
	ec.arg = arg;
	ret = store_file_walk(buf, res->valid_len, kind, NULL, NULL, entries_item, &ec, &again);
	return ret == CAPF_ECORRUPT ? 0 : ret;
}

int store_log_scan(const uint8_t *buf, size_t len, store_entry_cb on_entry, void *arg,
		   struct store_scan_result *res)
{
	return store_scan(buf, len, STORE_FILE_SEGMENT, store_check_txn_payload, NULL, on_entry,
			  arg, res);
}
