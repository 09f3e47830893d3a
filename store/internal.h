/*
 * store/ internals shared by the files of the module (and the store tests
 * and fuzz targets). The file formats are described in doc/store-format.md.
 *
 * Files of a state directory
 *   log.<seq>       segments: a header, then entries, each one StoreTxn.
 *                   The writer appends to the newest; rotation starts the
 *                   next one.
 *   snapshot.<seq>  every record of every segment before log.<seq>, as
 *                   batches of records after a StoreSnapshotInfo entry.
 *   audit.<seq>.log the hash-chained audit log, one AuditEntry per entry,
 *                   in files of bounded size (audit.log in format 2).
 *   lock            the flock(2) that keeps a second process out.
 */
#ifndef CAPF_STORE_INTERNAL_H
#define CAPF_STORE_INTERNAL_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define STORE_LOCK_NAME "lock"
#define STORE_SEG_PREFIX "log."
#define STORE_SNAP_PREFIX "snapshot."
#define STORE_AUDIT_NAME "audit.log" /* format 2; format 3 has audit.<seq>.log */
#define STORE_AUDIT_PREFIX "audit."
#define STORE_AUDIT_SUFFIX ".log"
#define STORE_LEGACY_NAME "records.log"
#define STORE_TMP_SUFFIX ".tmp"
#define STORE_SEQ_FMT "%010" PRIu64

#define STORE_MAGIC_LEN 8u
#define STORE_SEG_MAGIC "CAPFSTOR"
#define STORE_SNAP_MAGIC "CAPFSNAP"
#define STORE_AUDIT_MAGIC "CAPFAUDT"
#define STORE_FORMAT_VERSION 3u
#define STORE_FORMAT_V2 2u
#define STORE_HEADER_LEN 32u       /* magic, u32 version, u32 flags, u64 seq, u32 salt, u32 CRC */
#define STORE_V2_HEADER_LEN 24u    /* format 2: magic, version, flags, seq */
#define STORE_LEGACY_HEADER_LEN 16u /* version 1 records.log: no seq */
#define STORE_V2_ENTRY_HEADER_LEN 8u /* format 1 and 2: u32 BE payload length, u32 BE CRC32C */
#define STORE_BLOCK_LEN 4096u      /* format 3: fragments never cross a block */
#define STORE_FRAG_HEADER_LEN 16u  /* u32 header CRC, u32 payload CRC, u16 length, u8 type,
				    * u8 flags, u32 group */
#define STORE_FRAG_FULL 1u
#define STORE_FRAG_FIRST 2u
#define STORE_FRAG_MIDDLE 3u
#define STORE_FRAG_LAST 4u
#define STORE_FRAG_COMMIT 0x01u    /* flag: the last entry of a group commit */
/* flag: the group was written while a group before it in the file was not
 * yet synced, so the group is no evidence that those were durable */
#define STORE_FRAG_AFTER_LAZY 0x02u
#define STORE_FRAG_FLAGS (STORE_FRAG_COMMIT | STORE_FRAG_AFTER_LAZY)
/* header flag of segments and audit files that may hold AFTER_LAZY groups
 * (a reader that does not know the flag refuses the file) */
#define STORE_HDR_LAZY_MARKS 0x01u
#define STORE_ENTRY_MAX (16u * 1024u * 1024u)
#define STORE_HASH_LEN 32u         /* SHA-256 */
/* The hash field of an AuditEntry: tag (10, length-delimited), length 32. */
#define STORE_AUDIT_HASH_TAG 0x52u
#define STORE_AUDIT_HASH_FIELD_LEN (2u + STORE_HASH_LEN)
#define STORE_AUDIT_TEXT_MAX 512u  /* device, peer, detail are cut to this */
#define STORE_AUDIT_SERIAL_MAX 64u

#define STORE_COMPACT_DEFAULT (64ull * 1024u * 1024u)
#define STORE_FAULT_LOG_INTERVAL_DEFAULT 10u
#define STORE_AUDIT_RETRY_MAX 10000u /* audit events kept while writes fail */
#define STORE_RETRY_SECONDS 5        /* and tried again this often when idle */
#define STORE_SNAP_BATCH_BYTES (1024u * 1024u)
#define STORE_QUEUE_MAX_DEFAULT 16384u   /* txns and audit events waiting */
#define STORE_AUDIT_SYNC_BYTES (1024u * 1024u) /* the audit file's own syncs */
/* A file moves on to the next one long before its group numbers could
 * wrap, so that a later group always has a larger number. */
#define STORE_GROUPS_MAX 0x80000000u
#define STORE_AUDIT_FILE_DEFAULT (16ull * 1024u * 1024u)
#define STORE_AGG_SECONDS_DEFAULT 60u
#define STORE_AGG_SOURCES_MAX 1024u       /* then one bucket for every other source */
#define STORE_AGG_OTHER "other sources"

enum store_file_kind {
	STORE_FILE_SEGMENT,
	STORE_FILE_SNAPSHOT,
	STORE_FILE_AUDIT,
	STORE_FILE_LEGACY, /* version 1 records.log, read only to migrate it */
};

enum store_rec_kind {
	STORE_REC_DEVICE = 0,
	STORE_REC_CERT = 1,
};

/* store_be32_get()/store_be32_put()/store_be64_*() - big-endian access. */
static inline uint32_t store_be32_get(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline void store_be32_put(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint64_t store_be64_get(const uint8_t *p)
{
	return (uint64_t)store_be32_get(p) << 32 | store_be32_get(p + 4);
}

static inline void store_be64_put(uint8_t *p, uint64_t v)
{
	store_be32_put(p, (uint32_t)(v >> 32));
	store_be32_put(p + 4, (uint32_t)v);
}

/* store_crc32c_table() - crc32c() computed with the table only, whatever
 * the processor offers (for the tests). */
uint32_t store_crc32c_table(uint32_t crc, const void *buf, size_t len);

/* ---- headers and fragments (frame.c) ------------------------------------ */

/* store_header_encode() - the 32-byte format 3 header of a file of this
 * kind, number seq (> 0) and random salt. */
void store_header_encode(uint8_t out[STORE_HEADER_LEN], enum store_file_kind kind, uint64_t seq,
			 uint32_t salt);

/* What a header says. */
struct store_header {
	uint32_t version; /* 3, or 2 (and 1 for the legacy log): read by v2.c */
	uint64_t seq;     /* 0 for a format 2 audit log and the legacy log */
	uint32_t salt;    /* format 3 */
	size_t len;       /* the header's length */
};

/*
 * store_header_read() - check the header at the start of buf for kind.
 * Returns 0 and *h, or CAPF_ECORRUPT with *reason (static text); h->version
 * is the version read (0 if the magic is already wrong).
 */
int store_header_read(const uint8_t *buf, size_t len, enum store_file_kind kind,
		      struct store_header *h, const char **reason);

/* A growable byte buffer. */
struct store_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

/* store_buf_reserve() - room for more bytes after len; 0 or CAPF_ENOMEM. */
int store_buf_reserve(struct store_buf *b, size_t more);
void store_buf_free(struct store_buf *b);

/* Where the next entry of a format 3 file goes. */
struct store_framer {
	uint32_t salt;  /* the file's */
	uint64_t pos;   /* the file offset of the next byte */
	uint32_t group; /* the group commit being written (1 for a file's first) */
	bool after_lazy; /* a group before it is not synced yet (STORE_FRAG_AFTER_LAZY) */
};

/*
 * store_frame_entry() - append the fragments of payload p (1 ..
 * STORE_ENTRY_MAX bytes) at f->pos to out, padding a block end first if
 * needed; commit marks the last entry of a group. Advances f->pos and sets
 * *start (may be NULL) to the offset of the entry's first fragment.
 * Returns 0, CAPF_EINVAL or CAPF_ENOMEM.
 */
int store_frame_entry(struct store_framer *f, const uint8_t *p, size_t len, bool commit,
		      struct store_buf *out, uint64_t *start);

/* One item of a walk: a good entry, or a bad region. */
struct store_walk_item {
	bool good;
	size_t off;             /* where it starts */
	size_t end;             /* where the next item starts */
	const uint8_t *payload; /* good: the whole payload, valid until the next item */
	size_t len;
	uint32_t group;
	bool commit;
	bool after_lazy;        /* good: its group is no evidence for those before */
	const char *reason;     /* bad: why (static) */
	bool has_group;         /* bad: valid fragments inside it, written after every */
	uint32_t max_group;     /*      group before theirs was synced, name groups; the largest */
};

/* A walk over the fragments of a format 3 file held in memory. */
struct store_walk {
	const uint8_t *buf;
	size_t len;
	size_t pos;
	uint32_t salt;
	struct store_buf scratch; /* an entry of several fragments, put together */
};

/* store_walk_init() - walk buf from start (the end of the header). */
void store_walk_init(struct store_walk *w, const uint8_t *buf, size_t len, size_t start,
		     uint32_t salt);
void store_walk_deinit(struct store_walk *w);

/*
 * store_walk_next() - the next item: 1 (*it), 0 at the end, CAPF_ENOMEM.
 * A fragment header is only read where the one before ends or at a block
 * start; a bad region ends at the next entry found that way. Every byte is
 * checksummed at most once per walk.
 */
int store_walk_next(struct store_walk *w, struct store_walk_item *it);

/* Bytes checksummed by the walks of this thread (for the tests' bounds). */
extern _Thread_local uint64_t store_crc_bytes;

/* ---- records: a protobuf walker that needs no allocation (log.c) ------- */

/* An audit anchor as stored in a txn or a snapshot. */
struct store_anchor {
	uint64_t seq;    /* 0: none */
	uint64_t file;   /* the audit file holding it: audit.<file>.log (0: format 2 audit.log) */
	uint64_t offset; /* where the entry starts in that file */
	uint8_t hash[STORE_HASH_LEN];
	/* A segment's anchor: the packed AuditAnchor (in the txn's payload,
	 * valid as long as it) and whether it carries its group's entries. */
	const uint8_t *raw;
	size_t raw_len;
	bool has_copies;
};

/* One record of a txn, pointing into the payload. */
struct store_rec_view {
	enum store_rec_kind kind;
	const uint8_t *key; /* device name or certificate serial, inside val */
	size_t key_len;
	const uint8_t *val; /* the packed Device or Certificate */
	size_t val_len;
	bool create_only;
	bool must_exist;
	bool check_revision;      /* compare-and-set: must exist at expect_revision */
	uint64_t expect_revision;
	uint64_t revision;        /* the body's revision (0 when absent) */
	const uint8_t *device;    /* a certificate's device name, inside val */
	size_t device_len;        /* 0: none (and always for a device) */
};

/* What a txn holds besides its records. */
struct store_txn_meta {
	int64_t time;
	size_t n_records;
	struct store_anchor anchor; /* anchor.seq == 0: none */
};

typedef int (*store_rec_cb)(const struct store_rec_view *rec, void *arg);

/*
 * store_txn_parse() - check a packed StoreTxn and, when on_rec is not
 * NULL, hand each record to it in order. Pure; allocates nothing.
 *
 * A txn is valid when it is well-formed protobuf of the StoreTxn schema
 * (every field of the wire type its schema says; Device and Certificate
 * checked the same way), each record has exactly one body, a device has a
 * non-empty name without NUL bytes, a certificate a non-empty serial, and
 * it has at least one record or an audit anchor (seq > 0, 32-byte hash).
 * A valid txn unpacks with capf__store_txn__unpack() to the same records.
 *
 * Returns 0 (meta filled), CAPF_EBADMSG (not valid; *reason may be NULL)
 * or what on_rec returned (< 0 stops the walk).
 */
int store_txn_parse(const uint8_t *p, size_t len, struct store_txn_meta *meta,
		    store_rec_cb on_rec, void *arg);

/* store_pb_check() - 0 if p is well-formed protobuf of the schema desc
 * (the rule of store_txn_parse()), else CAPF_EBADMSG. */
int store_pb_check(const ProtobufCMessageDescriptor *desc, const uint8_t *p, size_t len);

/* store_pb_varint_put() - protobuf varint of v into out (10 bytes room);
 * returns its length. */
size_t store_pb_varint_put(uint8_t *out, uint64_t v);

/* store_anchor_from_pb() - copy a decoded AuditAnchor; 0 or CAPF_EBADMSG
 * (hash not 32 bytes, seq 0). */
int store_anchor_from_pb(const Capf__AuditAnchor *pb, struct store_anchor *out);

/* ---- scanning files held in memory (frame.c, v2.c) ----------------------- */

/* Checks one payload: 0 good, CAPF_EBADMSG bad (*reason set when known),
 * CAPF_ENOMEM. ctx is the scan's. */
typedef int (*store_payload_check_fn)(const uint8_t *p, size_t len, void *ctx,
				      const char **reason);

/* Called for each good entry, in file order, with its offset. A negative
 * return stops the scan with that code. */
typedef int (*store_entry_cb)(const uint8_t *payload, size_t len, size_t off, void *arg);

/* Called for each item of a file walk (good entries and bad regions). A
 * negative return stops the walk with that code. */
typedef int (*store_item_cb)(const struct store_walk_item *it, void *arg);

struct store_scan_result {
	size_t valid_len;   /* header plus every entry that is kept */
	size_t entries;     /* entries kept (those passed to on_entry) */
	int torn;           /* 1: the bytes from valid_len to the end are the unsynced tail */
	size_t bad_off;     /* offset of the first bad entry (or 0 for a bad header) */
	const char *reason; /* why the header or the entry at bad_off is bad (static) */
	uint32_t version;   /* format version read from the header */
	uint64_t seq;       /* seq from the header */
	uint32_t salt;      /* salt from the header (format 3) */
	size_t header_len;
	uint32_t group;     /* format 3: the last group committed in what is kept */
	size_t tail_off;    /* where the uncommitted end starts: valid_len, or with damage
			     * (CAPF_ECORRUPT) the end of the last commit after it */
};

/*
 * store_file_walk() - the one walk over a whole file of kind held in
 * memory, from its header: each item (good entry, bad region) goes to
 * on_item (may be NULL), in file order, and res says what is kept. Pure.
 *
 * Format 3: an entry is good when its fragments are valid, check (may be
 * NULL) accepts its payload and it belongs to the group expected. What is
 * kept ends at the last commit before the first entry that is not good
 * (or before the end). The rest is the last group: a torn tail
 * (res->torn) unless a valid fragment after the first bad entry names a
 * later group, which proves that the bad one was durable: CAPF_ECORRUPT.
 * Formats 1 and 2 (v2.c): entries back to back; a bad entry with a good
 * one anywhere after it is damage, else a torn tail.
 *
 * Returns 0 (an empty buffer gives valid_len 0), CAPF_ECORRUPT (bad header,
 * or damage at res->bad_off; res->reason says what), CAPF_ENOMEM, or what
 * on_item returned.
 */
int store_file_walk(const uint8_t *buf, size_t len, enum store_file_kind kind,
		    store_payload_check_fn check, void *check_ctx, store_item_cb on_item, void *arg,
		    struct store_scan_result *res);

/* store_v2_walk() - store_file_walk() of a format 1 or 2 file (v2.c). */
int store_v2_walk(const uint8_t *buf, size_t len, const struct store_header *h,
		  store_payload_check_fn check, void *check_ctx, store_item_cb on_item, void *arg,
		  struct store_scan_result *res);

/*
 * store_scan() - store_file_walk(), then each entry that is kept to
 * on_entry (may be NULL), in order: nothing of a tail that is dropped
 * reaches it. Same returns.
 */
int store_scan(const uint8_t *buf, size_t len, enum store_file_kind kind,
	       store_payload_check_fn check, void *check_ctx, store_entry_cb on_entry, void *arg,
	       struct store_scan_result *res);

/*
 * Payload checks. Segments hold StoreTxn payloads; snapshots a
 * StoreSnapshotInfo payload first, then StoreTxn payloads of records only
 * (the two cannot be confused: field 1 of one is a varint, of the other a
 * message). store_check_snap_payload() accepts either; the order and the
 * record count are checked by the reader.
 */
int store_check_txn_payload(const uint8_t *p, size_t len, void *ctx, const char **reason);
int store_check_snap_payload(const uint8_t *p, size_t len, void *ctx, const char **reason);

/* store_snap_info_parse() - 1 and *info (free with
 * capf__store_snapshot_info__free_unpacked()) if p is a valid snapshot
 * info payload, 0 if it is not, CAPF_ENOMEM. */
int store_snap_info_parse(const uint8_t *p, size_t len, Capf__StoreSnapshotInfo **info);

/*
 * store_log_scan() - store_scan() of a segment with StoreTxn payloads.
 * Kept for the tests and the fuzz target: on_entry gets raw payloads.
 */
int store_log_scan(const uint8_t *buf, size_t len, store_entry_cb on_entry, void *arg,
		   struct store_scan_result *res);

/* ---- audit entries (audit.c) --------------------------------------------- */

/* The writer's view of the audit chain: the last entry written. */
struct store_audit_chain {
	uint64_t seq;
	uint64_t file;    /* the audit file holding the last entry */
	uint64_t offset;  /* start of the last entry; 0 when seq == 0 */
	uint64_t end;     /* end of the file being written (where the next entry goes) */
	uint8_t hash[STORE_HASH_LEN];
};

/*
 * store_audit_encode() - build the payload of the entry of ev as entry seq
 * after prev_hash, at time t (framed when written). *hash gets its hash.
 * Returns 0 and *out (malloc'd), *out_len; CAPF_ENOMEM; CAPF_ECRYPTO.
 */
int store_audit_encode(const struct store_audit_event *ev, uint64_t seq, int64_t t,
		       const uint8_t prev_hash[STORE_HASH_LEN], uint8_t **out, size_t *out_len,
		       uint8_t hash[STORE_HASH_LEN]);

/* store_audit_hash() - SHA-256(prev || body); 0 or CAPF_ECRYPTO. */
int store_audit_hash(const uint8_t prev[STORE_HASH_LEN], const uint8_t *body, size_t len,
		     uint8_t out[STORE_HASH_LEN]);

/*
 * store_check_audit_payload() - framing-level check of an audit entry:
 * it unpacks as an AuditEntry with seq > 0, a 32-byte prev_hash and the
 * 32-byte hash field encoded last. The chain is not checked here.
 */
int store_check_audit_payload(const uint8_t *p, size_t len, void *ctx, const char **reason);

/* What the chain check says about one entry. */
enum store_audit_link {
	STORE_AUDIT_LINK_OK = 0,
	STORE_AUDIT_LINK_HASH,     /* its hash does not match its contents: edited */
	STORE_AUDIT_LINK_PREV,     /* prev_hash is not the previous entry's hash */
	STORE_AUDIT_LINK_SEQ_GAP,  /* seq jumps forward: entries removed */
	STORE_AUDIT_LINK_SEQ_BACK, /* seq does not grow: reordered or duplicated */
};

/*
 * store_audit_link() - check the entry (payload p of len bytes, already
 * accepted by store_check_audit_payload()) against the chain so far
 * (*chain; seq 0 = none yet, then any start is accepted and reported
 * through *continued). Advances *chain on success. Returns a link verdict
 * (>= 0) or CAPF_ENOMEM / CAPF_ECRYPTO; *entry gets the unpacked entry
 * when entry is not NULL (free with capf__audit_entry__free_unpacked()).
 */
int store_audit_link(const uint8_t *p, size_t len, uint64_t off, struct store_audit_chain *chain,
		     Capf__AuditEntry **entry);

/* Called for each item of an audit file; in_tail: it lies in the torn
 * tail that the next start drops. */
typedef int (*store_audit_item_cb)(const struct store_walk_item *it, bool in_tail, void *arg);

/*
 * store_audit_walk() - the one walk over an audit file held in memory,
 * shared by the open store, the reader, the verifier, check and repair:
 * judges the file (res, as store_file_walk()) and hands every item to cb
 * (may be NULL). Returns what store_file_walk() returned, or cb's error.
 */
int store_audit_walk(const uint8_t *buf, size_t len, store_audit_item_cb cb, void *arg,
		     struct store_scan_result *res);

/*
 * store_audit_unanchored_tail() - the newest audit file of a store whose
 * segments were read: what follows the last entry the segments anchor
 * (after: its offset, 0 when none is in this file) was never reported
 * durable, since an audit group is durable only with the segment group
 * that anchors it; and audit groups are written one after the other with
 * no sync between them. Damage there is a torn tail, whatever follows
 * it: the walk's verdict (*ret CAPF_ECORRUPT, res) becomes that (0, torn,
 * what is kept unchanged). Anything else is left as it is.
 */
bool store_audit_unanchored_tail(int *ret, struct store_scan_result *res, uint64_t after);

/* store_audit_walk_newest() - store_audit_walk() of the newest audit file
 * with store_audit_unanchored_tail() applied before items are handed out
 * (*relaxed, may be NULL, set true if it changed the verdict). */
int store_audit_walk_newest(const uint8_t *buf, size_t len, uint64_t after, bool *relaxed,
			    store_audit_item_cb cb, void *arg, struct store_scan_result *res);

/* store_audit_link_text() - words for a link verdict. */
const char *store_audit_link_text(int link);

/* ---- files (file.c) ------------------------------------------------------ */

/* store_path() - "dir/name" (malloc'd) or NULL. */
char *store_path(const char *dir, const char *name);

/* store_seq_name() - "<prefix><seq>" into buf. */
void store_seq_name(char *buf, size_t len, const char *prefix, uint64_t seq);

/* store_audit_name() - "audit.<seq>.log" into buf. */
void store_audit_name(char *buf, size_t len, uint64_t seq);

/* store_new_salt() - a random salt for a new file's header. */
uint32_t store_new_salt(void);

/* A listing of the state directory: segments and snapshots by seq. */
struct store_dir_list {
	uint64_t *segs;
	size_t n_segs;
	uint64_t *snaps;
	size_t n_snaps;
	uint64_t *audits; /* audit.<seq>.log */
	size_t n_audits;
	bool legacy;     /* records.log exists */
	bool audit;      /* audit.log (format 2) exists */
};

/* store_dir_list() - list dir (sorted ascending); 0 or a capf code. */
int store_dir_list(const char *dir, struct store_dir_list *out);
void store_dir_list_free(struct store_dir_list *l);

/* A whole file read into memory (mmap'd when not empty). */
struct store_file_map {
	const uint8_t *data;
	size_t len;
	void *map;
};

/* store_map_file() - map path read-only; an empty file gives len 0.
 * Returns 0, or the capf code of open/fstat/mmap (CAPF_ENOENT...). */
int store_map_file(const char *path, struct store_file_map *m);
void store_unmap_file(struct store_file_map *m);

/* store_sync_dir() - fsync a directory so that renames in it last. */
int store_sync_dir(const char *dir);

/* store_err_from_errno() / store_write_err() - errno to capf codes; a
 * failed write or sync is only ever CAPF_ENOSPC or CAPF_EIO. */
int store_err_from_errno(int e);
int store_write_err(int e);

/* store_write_full() - write all of buf at the file position; 0 or the
 * store_write_err() code. */
int store_write_full(int fd, const void *buf, size_t len);

/* store_writev_full() - write every one of the cnt iovecs, looping over
 * partial writes and IOV_MAX; consumes iov. 0 or the store_write_err()
 * code. */
struct iovec;
int store_writev_full(int fd, struct iovec *iov, size_t cnt);

/*
 * store_create_file() - write header (and optional body) to path.tmp,
 * fsync, rename to path, fsync dir. Returns 0 and, if fd_out is not NULL,
 * an O_RDWR|O_APPEND descriptor on the new file; or a capf code with
 * set_error text in err (if not NULL).
 */
int store_create_file(const char *dir, const char *name, const uint8_t *data, size_t len,
		      int *fd_out, char *err, size_t errlen);

/* store_lock_dir() - flock dir/lock without waiting, write our pid into
 * it. Returns 0 and *fd, CAPF_ELOCKED (text in err names the directory
 * and the holder's pid), or another capf code. */
int store_lock_dir(const char *dir, int *fd, char *err, size_t errlen);

/* store_set_error()/store_clear_error() - the text of store_last_error()
 * (thread-local). */
void store_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void store_clear_error(void);

/* store_txn_walk() - store_txn_parse() without the checks, for a payload
 * that store_txn_parse() (or a scan with its check) already accepted. */
int store_txn_walk(const uint8_t *p, size_t len, struct store_txn_meta *meta,
		   store_rec_cb on_rec, void *arg);

/*
 * store_find_anchor() - the store's audit anchor as the files of dir say
 * (newest snapshot, then every segment after it), without the lock.
 * Returns 0 and *anchor (seq 0: none), or a capf code.
 */
int store_find_anchor(const char *dir, struct store_anchor *anchor);

/* store_lock_offline() - store_lock_dir() for the offline functions: a
 * state directory that must exist, and a message telling to stop capfd
 * when it holds the lock (store_last_error()). */
int store_lock_offline(const char *dir, int *fd);

/*
 * store_report_v() - format a finding (fmt, ap) about file at off, len and
 * pass it to cb with arg; nothing when cb is NULL. The text lives only for
 * the call.
 */
void store_report_v(store_report_cb cb, void *arg, const char *file, uint64_t off, uint64_t len,
		    int damage, const char *fmt, va_list ap) __attribute__((format(printf, 7, 0)));

/* store_format_time() - "YYYY-MM-DDTHH:MM:SSZ" of t into buf (>= 21). */
void store_format_time(int64_t t, char *buf, size_t len);

/* ---- offline check and repair (check.c, repair.c) -------------------------- */

struct checker {
	const char *dir;
	store_report_cb cb;
	void *arg;
	struct store_check_summary *sum;
};

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

/* store_finding_report() - count (damage) and report a finding. */
void store_finding_report(struct checker *c, const char *file, uint64_t off, uint64_t len,
			  int damage, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* store_scan_file() - read dir/name of kind into fs, region by region,
 * through store_file_walk(); may_tear: the file may end in a torn tail.
 * 0 (fs filled, even for a bad header) or a capf code. */
int store_scan_file(const char *dir, const char *name, enum store_file_kind kind, bool may_tear,
		    struct file_scan *fs);
void store_file_scan_free(struct file_scan *fs);

/* store_first_live_segment() - index of the first segment to read after
 * snapshot snap. */
size_t store_first_live_segment(const struct store_dir_list *l, uint64_t snap);

/* store_checker_start() - zeroed summary, the directory's lock and listing
 * for check and repair; on failure what was taken is left to release. */
int store_checker_start(struct checker *c, struct store_check_summary *sum, int *lock_fd,
			struct store_dir_list *l);

/* ---- the open store (store.c, index.c, recover.c, queue.c, writer.c,
 * compact.c) ---------------------------------------------------------------- */

#include <pthread.h>
#include <stdatomic.h>

/* Make uthash report allocation failures instead of ending the process. */
#define HASH_NONFATAL_OOM 1
#include <uthash.h>
#include <utlist.h>

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

/*
 * One record in the index: the packed Device or Certificate, its key (the
 * name or serial) and a certificate's device name being slices of those
 * bytes, and its revision as the walker read it. The record is immutable
 * and reference-counted: the table holds one reference, a snapshot being
 * written holds another. Only the links of the per-device list change,
 * and only on the writer (or at load), while the entry is in the table.
 */
struct idx_entry {
	UT_hash_handle hh;
	struct idx_entry *dprev, *dnext; /* a certificate in its device's list */
	atomic_uint refs;
	uint64_t revision;
	uint32_t val_len;
	uint32_t key_off;
	uint32_t key_len;
	uint32_t dev_off;
	uint32_t dev_len;                 /* 0: a device, or a certificate of none */
	uint8_t val[];
};

/*
 * The certificates of one device (the per-device index): a list of the
 * certificate entries in the table whose device field names it. A bucket
 * exists only while its list is not empty.
 */
struct dev_certs {
	UT_hash_handle hh;
	struct idx_entry *head;
	size_t n;
	size_t name_len;
	char name[];
};

/* A record of a queued txn, with its index entry already built. */
struct pending_rec {
	struct idx_entry *e;
	enum store_rec_kind kind;
	bool create_only;
	bool must_exist;
	bool check_revision;
	uint64_t expect_revision;
	bool in_group;         /* added to the group's key set */
	UT_hash_handle ghh;    /* group key set: keys written by this group */
	UT_hash_handle thh;    /* while its txn is checked: the txn's latest record per key */
	/* In the key set: the last record of the group that wrote this key
	 * (NULL: this one), whose revision is the key's as of that point. */
	struct pending_rec *g_latest;
};

/* An audit event waiting to be written. */
struct audit_ev {
	struct audit_ev *next;
	Capf__AuditKind kind;
	int64_t time;
	int code;
	size_t serial_len;
	uint8_t serial[STORE_AUDIT_SERIAL_MAX];
	char *device;
	char *peer;
	char *detail;
	/* filled while a group is written */
	uint8_t *entry;
	size_t entry_len;
};

struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done;
	int result;
};

enum item_kind {
	ITEM_TXN,
	ITEM_AUDIT,
	ITEM_FLUSH,
	ITEM_COMPACT,
};

/*
 * Unauthenticated failures from one source address, of one kind, since
 * first: written as one audit entry per interval with their exact count.
 */
struct audit_agg {
	UT_hash_handle hh;
	Capf__AuditKind kind;
	uint64_t count;
	int64_t first;
	struct audit_ev *last;   /* the last event itself (its peer with the port) */
	char key[];              /* "<kind>/<address>" */
};

/* A txn's segment entries: one StoreTxn each, all written in one group
 * commit (whose commit marker makes them durable together), so a txn of
 * any size is all or none although an entry holds at most
 * STORE_ENTRY_MAX bytes. */
struct txn_part {
	uint8_t *p;
	size_t len;
};

/* One queued item: a txn (its segment entries, ready to write), an audit
 * event, or a request for the writer. */
struct item {
	struct item *next;
	enum item_kind kind;
	struct txn_part *parts;
	size_t n_parts;
	struct pending_rec *recs;
	size_t n_recs;
	struct audit_ev *audit;
	store_done_cb cb;
	void *arg;
	struct waiter *w;
	int result;
	bool lazy; /* store_submit_lazy(): needs no sync of its own */
};

/* A snapshot being written by the compaction thread. */
struct compaction {
	struct store *st;
	uint64_t seq;
	struct idx_entry **entries; /* devices first, then certificates */
	size_t n;
	size_t n_dev;
	struct store_anchor anchor;
	struct waiter *w;
};

struct store {
	char *dir;
	struct store_options opt;
	int lock_fd;
	bool readonly;           /* store_dump(): read the files, change nothing */

	/* writer only, after open */
	int seg_fd;
	uint64_t seg_seq;
	uint64_t seg_size;       /* committed size of the current segment */
	uint32_t seg_salt;       /* its header's */
	uint32_t seg_group;      /* the group commit written next to it */
	bool seg_lazy;           /* a lazy group was written to it since its last sync */
	int audit_fd;
	uint64_t audit_file;     /* the audit file written to: audit.<audit_file>.log */
	uint32_t audit_salt;
	uint32_t audit_group;
	/* The audit file is made durable by the segment's sync: each group's
	 * audit entries are copied into its anchor there. The file itself is
	 * synced only every STORE_AUDIT_SYNC_BYTES, before it rotates, before
	 * a compaction drops the segments and at close: durable up to
	 * audit_synced; audit_lazy: a group was written since. */
	uint64_t audit_synced;
	bool audit_lazy;
	uint64_t audit_sync_count;
	uint64_t synced_recorded; /* the audit_synced an anchor in the segment says */
	struct store_audit_chain chain; /* the last audit entry written */
	int failed;              /* sticky: a failed write could not be undone */
	bool fault_active;       /* writes are failing: reported, then rate-limited */
	double fault_since, fault_logged;
	uint64_t fault_count, fault_suppressed;
	char fault_text[300];
	struct audit_ev *retry_head, *retry_tail; /* audit events kept while writes fail */
	uint64_t retry_n;
	uint64_t audit_lost_unreported;
	uint64_t audit_lost_total;
	double rotate_failed_at;
	double audit_rotate_failed_at;
	atomic_int fault;        /* test seam, see store_set_fault() */

	pthread_t writer;
	bool writer_started;
	pthread_mutex_t q_lock;  /* protects q_head, q_tail, closing */
	pthread_cond_t q_cond;
	struct item *q_head;
	struct item *q_tail;
	size_t q_len;            /* txns and audit events in the queue */
	struct audit_agg *agg;   /* unauthenticated failures, by source */
	size_t agg_n;
	double agg_since;        /* when the oldest waiting aggregate began */
	bool agg_flush;          /* write the aggregates with the next group */
	uint64_t queue_full;     /* submissions refused because the queue was full */
	uint64_t audit_refused;  /* audit events among them, not yet counted as lost */
	uint64_t audit_aggregated;
	bool closing;
	bool kick;               /* wake the writer to retry what waits */
	/* The queue has an item that wants the writer now (every item but
	 * the events of store_audit_quiet()), or store_wake() was called. */
	bool q_wake;

	pthread_mutex_t c_lock;  /* protects the compaction fields */
	pthread_t compactor;
	bool compactor_joinable;
	bool compacting;
	atomic_bool compact_abort;

	pthread_rwlock_t idx_lock; /* protects devices, certs, stats */
	struct idx_entry *devices;
	struct idx_entry *certs;
	struct dev_certs *dev_certs; /* device name -> its certificates */
	struct store_stats stats;
};


/* store_entry_key() - the key (name or serial) of an index entry. */
static inline const uint8_t *store_entry_key(const struct idx_entry *e)
{
	return e->val + e->key_off;
}

/* ---- store.c ---- */

/*
 * The audit groups copied into the anchors of the segments from the
 * newest snapshot on, in order, from the last one not yet synced in its
 * audit file (store/audit_copy.c).
 */
struct audit_copies {
	Capf__AuditAnchor **v;
	size_t n, cap;
};

/* store_copies_add() - keep the copy of a packed AuditAnchor (one that
 * store_txn_walk() accepted) if it has entries; drops the copies it says
 * are no longer needed (an earlier file, a group before what is synced). */
int store_copies_add(struct audit_copies *c, const uint8_t *raw, size_t len);
void store_copies_free(struct audit_copies *c);

/*
 * store_audit_restore_plan() - the end of audit file `file` (buf, len: its
 * bytes) as a start restores it from the copies: what the walk keeps
 * stays; from the first copied group that ends past it, every copied
 * group framed again exactly as written. Returns 1 with out (the bytes
 * that go at *start, where the file is cut) and *n_entries; 0 when there
 * is nothing to restore (or the copies do not meet what the file keeps);
 * CAPF_ENOMEM.
 */
int store_audit_restore_plan(const struct audit_copies *c, uint64_t file, const uint8_t *buf,
			     size_t len, struct store_buf *out, uint64_t *start, size_t *n_entries);

/* store_find_anchor_copies() - store_find_anchor(), and the copies of
 * audit groups in the segments (copies may be NULL). */
int store_find_anchor_copies(const char *dir, struct store_anchor *anchor,
			     struct audit_copies *copies);

/* store_record_sync() - at close: an anchor without entries that records
 * how far the audit file is synced (the copies before it are then no
 * longer read), written as its own group and synced. */
int store_record_sync(struct store *st);

/* store_segment_sync() - sync the segment if a lazy group was written to
 * it since its last sync (the writer's thread, or after it stopped). */
int store_segment_sync(struct store *st);

/* store_audit_sync() - sync the audit file if a group was written to it
 * since its last sync (the writer's thread, or before it runs). */
int store_audit_sync(struct store *st);

/* store_emit() - format an event and hand it to the store's event_cb. */
void store_emit(struct store *st, enum store_severity sev, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* store_now_mono() - CLOCK_MONOTONIC in seconds. */
double store_now_mono(void);

/* A one-shot result that a thread waits for: init, done (once), wait
 * (which also destroys it). */
void store_waiter_init(struct waiter *w);
void store_waiter_done(struct waiter *w, int result);
int store_waiter_wait(struct waiter *w);

/* store_free_state() - release everything an open (or half-open) store
 * holds, the lock last. Accepts NULL. */
void store_free_state(struct store *st);

/* ---- index.c ---- */

/* store_entry_new() - an index entry holding a copy of the record of v
 * (one reference), or NULL. */
struct idx_entry *store_entry_new(const struct store_rec_view *v);

/* store_entry_unref() - drop a reference; the last one frees. NULL is fine. */
void store_entry_unref(struct idx_entry *e);

/* store_index_table() - the table of devices or of certificates. */
struct idx_entry **store_index_table(struct store *st, enum store_rec_kind kind);

/* store_index_find() - the entry of key in table, or NULL. */
struct idx_entry *store_index_find(struct idx_entry *table, const void *key, size_t key_len);

/* store_bucket_find() - the certificates of device name, or NULL. */
struct dev_certs *store_bucket_find(struct store *st, const void *name, size_t len);

/*
 * store_index_put() - put e in the table of kind, replacing (and
 * releasing) an entry of the same key, keeping the per-device lists in
 * step. Returns 0 (e belongs to the table) or CAPF_ENOMEM (nothing
 * changed; e still belongs to the caller).
 */
int store_index_put(struct store *st, enum store_rec_kind kind, struct idx_entry *e);

/* store_index_clear()/store_dev_certs_clear() - empty a table. */
void store_index_clear(struct idx_entry **table);
void store_dev_certs_clear(struct store *st);

/* ---- recover.c ---- */

/*
 * store_load_all() - everything open does to the files before the writer
 * starts: temporary files removed, older formats converted, the newest
 * snapshot and the segments after it loaded (a torn tail dropped), the
 * audit log opened at the end of its chain. With st->readonly, nothing is
 * changed. Returns 0 or a capf code with store_last_error() set.
 */
int store_load_all(struct store *st);

/*
 * store_audit_file_new() - create audit.<file>.log (header only: tmp,
 * fsync, rename, directory fsync) and make it the audit file written to;
 * the chain goes on in it. Returns 0, or a capf code with
 * store_last_error() (nothing changed).
 */
int store_audit_file_new(struct store *st, uint64_t file);

/* store_set_scan_error() - store_last_error() text for a scan of path that
 * failed with ret. */
void store_set_scan_error(const char *path, int ret, const struct store_scan_result *res);

/* ---- migrate.c ---- */

/* store_migrate_v1() - convert a format 1 records.log into log.0000000001
 * (the original kept as records.log.v1). 0 or a capf code. */
int store_migrate_v1(struct store *st);

/*
 * store_migrate_v2() - convert a loaded format 2 directory (l, the
 * listing; last_seg, its last segment) to format 3: audit.0000000001.log,
 * log.<last_seg + 1> (opened for the writer), snapshot.<last_seg + 1>;
 * then the old files are renamed NAME.v2. *anchor_io: the anchor as
 * format 2 gave it in, as it is in format 3 out. 0 or a capf code.
 */
int store_migrate_v2(struct store *st, struct store_anchor *anchor_io, uint64_t last_seg,
		     struct store_dir_list *l);

/* store_keep_v2() - rename dir/name to name.v2. */
void store_keep_v2(struct store *st, const char *name);

/* store_remove_obsolete() - remove the snapshots and segments older than
 * snapshot snap, then sync the directory. */
void store_remove_obsolete(struct store *st, const struct store_dir_list *l, uint64_t snap);

/* ---- queue.c ---- */

/* store_audit_ev_new() - a copy of ev (texts cut) at time t, or NULL. */
struct audit_ev *store_audit_ev_new(const struct store_audit_event *ev, int64_t t);
void store_audit_ev_free(struct audit_ev *a);

/* store_item_free() - free a queued item and what it owns. NULL is fine. */
void store_item_free(struct item *it);

/* store_retry_push() - keep an audit event for the next group (writer). */
void store_retry_push(struct store *st, struct audit_ev *a);

/*
 * store_agg_take() - on the writer, with q_lock held: the aggregates of
 * unauthenticated failures that are due (all with force, else once their
 * interval has passed), as audit events in *out (n of them, malloc'd
 * array); the table starts again. Returns 0 or CAPF_ENOMEM.
 */
int store_agg_take(struct store *st, bool force, struct audit_ev ***out, size_t *n);

/* store_agg_free() - drop every aggregate (closing). */
void store_agg_free(struct store *st);

/* ---- writer.c ---- */

/* store_writer_main() - the writer thread's body; arg is the store. */
void *store_writer_main(void *arg);

/* ---- compact.c ---- */

/*
 * store_compact_start() - on the writer: rotate to a new segment and hand
 * the index as it stands to a compaction thread, which signals w (may be
 * NULL) when done. Returns 0, CAPF_EBUSY, or the error (then w is not
 * signalled).
 */
int store_compact_start(struct store *st, struct waiter *w);

/* store_write_snapshot() - write snapshot.<c->seq> of c's entries (tmp,
 * fsync, rename, directory fsync). Returns 0 or a capf code with err. */
int store_write_snapshot(struct compaction *c, char *err, size_t errlen);

#endif /* CAPF_STORE_INTERNAL_H */
