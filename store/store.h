/*
 * store/ - the durable memory of capf: device and certificate records and
 * the audit log, in flat files of one state directory. See
 * doc/store-format.md.
 *
 * Glossary
 *   entry     the unit of every file: one protobuf message, written as
 *             fragments inside 4 KiB blocks, each with CRCs seeded by the
 *             file's salt and its own offset (format 3).
 *   group     what one group commit wrote to a file; its last entry
 *             carries a commit mark. Only the last group of a file can be
 *             half on disk after a power cut; it is dropped whole.
 *   segment   log.<seq>: a header, then entries, each one capf.StoreTxn.
 *             The writer appends to the newest segment only.
 *   snapshot  snapshot.<seq>: every record of the segments before
 *             log.<seq>, written in the background by compaction.
 *   txn       records applied all or none; one segment entry.
 *   audit     audit.<seq>.log: security events, each entry carrying the SHA-256
 *             of the one before it (a hash chain), so that an edited,
 *             removed or reordered entry shows.
 *   anchor    the audit log's last entry (seq, file, offset, hash), recorded in
 *             the segment after every group that appended to the audit
 *             log: the store knows how long the audit log must be.
 *   writer    the one thread that appends. Callers hand it txns and audit
 *             events; it writes every item waiting, makes them durable
 *             with one fdatasync per file (group commit), applies the
 *             txns to the in-memory index, then runs each txn's callback.
 *   index     hash tables (uthash) of device name -> record and
 *             certificate serial -> record, rebuilt at open from the
 *             newest snapshot and the segments after it.
 *
 * Reads are thread-safe and return copies that the caller owns. A read
 * sees every txn whose callback has run.
 */
#ifndef CAPF_STORE_STORE_H
#define CAPF_STORE_STORE_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "proto/proto.h"

struct store;

/* Upper bounds, in microseconds, of the commit latency buckets. */
#define STORE_COMMIT_BUCKETS 10
extern const uint64_t store_commit_bounds_us[STORE_COMMIT_BUCKETS];
/* The bounds of the histogram of txns per synced group. */
#define STORE_GROUP_BUCKETS 9
extern const uint64_t store_group_bounds[STORE_GROUP_BUCKETS];

struct store_stats {
	uint64_t devices;
	uint64_t certificates;
	uint64_t txns_written;
	uint64_t syncs;           /* group commits (one fdatasync of the segment each):
				   * txns_written / syncs is the group size */
	uint64_t audit_syncs;     /* fdatasyncs of the audit file itself (now and then) */
	uint64_t lazy_groups;     /* groups of store_submit_lazy() txns only: written, not synced */
	uint64_t torn_bytes_dropped;       /* at open, from the last segment */
	uint64_t audit_torn_bytes_dropped; /* at open, from audit.log */
	uint64_t audit_restored;           /* at open: audit entries framed again from
					    * their copies in the segment */
	uint64_t segment_seq;     /* the segment being appended to */
	uint64_t segment_bytes;   /* its size */
	uint64_t snapshot_seq;    /* the newest snapshot, 0 = none */
	uint64_t compactions;     /* snapshots written since open */
	uint64_t audit_seq;       /* last audit entry written */
	uint64_t audit_pending;   /* audit events waiting to be written */
	uint64_t audit_lost;      /* audit events dropped (queue full while writes failed) */
	uint64_t write_failures;  /* groups whose write failed */
	uint64_t queue_full;      /* submissions refused: the writer's queue was full */
	uint64_t audit_file;      /* the audit file written to: audit.<audit_file>.log */
	uint64_t audit_aggregated; /* unauthenticated failures counted into aggregates */
	int fault;                /* the injected fault, 0 = none */
	/* How long each group's writes and fdatasyncs took: the sum, and
	 * per bucket (store_commit_bounds_us, then one past the last). */
	uint64_t commit_us_total;
	uint64_t commit_le[STORE_COMMIT_BUCKETS + 1];
	/* The segment's fdatasync alone, per synced group, the same way. */
	uint64_t sync_us_total;
	uint64_t sync_le[STORE_COMMIT_BUCKETS + 1];
	/* Txns per synced group (store_group_bounds, then one past), and
	 * their sum. */
	uint64_t group_le[STORE_GROUP_BUCKETS + 1];
	uint64_t group_txns_total;
};

/*
 * Callback run on the writer thread when a txn is durable and applied
 * (result 0) or failed (CAPF_EEXIST / CAPF_ENOENT / CAPF_ESTALE for a
 * failed precondition, CAPF_EIO / CAPF_ENOSPC for a write fault: nothing
 * of the txn is applied). Must not block; typically it wakes a loop.
 */
typedef void (*store_done_cb)(int result, void *arg);

/* How much an event matters, for the log of the program using the store. */
enum store_severity {
	STORE_SEV_ERROR = 0,
	STORE_SEV_WARNING,
	STORE_SEV_INFO,
};

/*
 * Events the store reports while it runs (write faults, rate-limited;
 * recovery; compaction; what open found and repaired). Called on the
 * thread that saw it (writer, compaction or the caller of
 * store_open_opts()); must not block nor call into the store.
 */
typedef void (*store_event_cb)(enum store_severity sev, const char *msg, void *arg);

struct store_options {
	/* Rotate to a new segment and write a snapshot once the segment
	 * reaches this many bytes. 0 = 64 MiB; UINT64_MAX = only on request. */
	uint64_t compact_bytes;
	/* A failing write is reported at most once per this many seconds
	 * (the others are counted). 0 = 10. */
	unsigned fault_log_interval;
	/* Txns and audit events that may wait for the writer; beyond it,
	 * store_submit() fails with CAPF_ERETRY and store_audit() with
	 * CAPF_ELIMIT. 0 = 16384. */
	size_t queue_max;
	/* Start the next audit file (audit.<seq>.log) once the current one
	 * reaches this many bytes. 0 = 16 MiB. */
	uint64_t audit_file_bytes;
	/* Unauthenticated failures (store_audit() of AUDIT_AUTH_FAIL) are
	 * counted per source address and kind, and written as one entry per
	 * source per this many seconds. 0 = 60. */
	unsigned audit_aggregate_seconds;
	/* The largest segment entry a txn is cut into (a txn larger than
	 * this is written as several entries in one group commit, all or
	 * none). 0 = STORE_ENTRY_MAX (16 MiB); smaller values are for tests. */
	size_t txn_entry_max;
	store_event_cb event_cb;
	void *event_arg;
};

/*
 * store_open_opts() - lock dir (creating it mode 0700 if absent), load the
 * newest snapshot and the segments after it, check the end of the audit
 * log against the store's anchor and start the writer; a directory of
 * format 1 or 2 is converted first. opts may be NULL (defaults). Returns
 * 0 and *out (close with store_close()), or CAPF_ELOCKED (another process
 * holds the directory), CAPF_ECORRUPT (damage before the last durable
 * commit, or an audit log that does not match the anchor: see
 * store_last_error() for the file and offset), CAPF_EIO, CAPF_ENOMEM. The
 * last group of the last segment and of the audit log, if a crash or a
 * power cut left it incomplete in any way, is dropped whole and reported
 * (event and store_stats).
 */
int store_open_opts(struct store **out, const char *dir, const struct store_options *opts);

/* store_open() - store_open_opts() with the defaults. */
int store_open(struct store **out, const char *dir);

/* store_last_error() - text of the last failure of store_open_opts() (or
 * of the offline functions below) in this thread, naming the file and
 * offset where it applies. */
const char *store_last_error(void);

/*
 * store_close() - finish every submitted txn and audit event (callbacks
 * run), stop a running compaction (its temporary file is removed), stop
 * the writer, unlock. Accepts NULL.
 */
void store_close(struct store *st);

/* ---- writing ------------------------------------------------------------- */

/* A security event for the audit log. Strings may be NULL; they are
 * copied (and cut to 512 bytes) before the call returns. */
struct store_audit_event {
	Capf__AuditKind kind;
	const char *device;
	const char *peer;       /* who: a phone's address, "admin uid=N", ... */
	const uint8_t *serial;  /* a certificate serial, up to 64 bytes */
	size_t serial_len;
	int code;               /* a capf error code (either sign), 0 = none */
	const char *detail;
};

/*
 * store_submit() - queue a txn of n records for the writer. The records are
 * packed before return, so the caller may free them at once. cb (may be
 * NULL) runs later on the writer thread. Returns 0 if queued, or
 * CAPF_EINVAL (n == 0, a record with no body, a revision that does not
 * match the record's precondition: see below), CAPF_ENOMEM,
 * CAPF_ERETRY (the writer's queue holds store_options.queue_max items:
 * try again later), CAPF_ESHUTDOWN (store closing); then cb is not
 * called.
 *
 * Preconditions, checked by the writer in the group commit against the
 * index, the earlier txns of the group and the earlier records of the txn
 * (a txn that fails one is not applied at all, cb gets the code):
 *   create_only     the key must be absent (CAPF_EEXIST); the record
 *                   carries revision 1.
 *   must_exist      the key must be present (CAPF_ENOENT).
 *   check_revision  compare-and-set: the key must be present (CAPF_ENOENT)
 *                   at exactly expect_revision (CAPF_ESTALE), and the
 *                   record carries revision expect_revision + 1. Not with
 *                   create_only.
 * A record with none of them is written as it is, revision included (for
 * repair and import).
 */
int store_submit(struct store *st, Capf__StoreRecord *const *recs, size_t n, store_done_cb cb,
		 void *arg);

/*
 * store_submit_audit() - store_submit() with an audit event (may be NULL)
 * that is written in the same group commit: it is durable no later than
 * the records (its copy is in the segment group the records are in), and
 * it is written only if the txn is (a txn that fails drops its event).
 */
int store_submit_audit(struct store *st, Capf__StoreRecord *const *recs, size_t n,
		       const struct store_audit_event *ev, store_done_cb cb, void *arg);

/*
 * store_submit_lazy() - store_submit_audit() for a txn whose loss on a
 * power cut is allowed (an acknowledgement: a lost one leaves a recorded,
 * unconfirmed certificate): cb runs once it is written and in the index,
 * and a group of such txns only is not synced (it becomes durable with
 * the next group that is, or at close). Never for a txn that others act
 * on once it is reported (a revocation a CRL publishes).
 */
int store_submit_lazy(struct store *st, Capf__StoreRecord *const *recs, size_t n,
		      const struct store_audit_event *ev, store_done_cb cb, void *arg);

/*
 * store_submit_wait() - store_submit() and wait for the result. For tools
 * and tests; never call it on an event loop.
 */
int store_submit_wait(struct store *st, Capf__StoreRecord *const *recs, size_t n);

/*
 * store_audit() - queue a security event on its own. It is written with
 * the next group; if that write fails, it is kept (up to 10000 events,
 * then counted as lost and reported in the log itself) and written once
 * writes work again.
 *
 * An unauthenticated failure (kind AUDIT_AUTH_FAIL with a peer "ip:port")
 * is not queued: it is counted for its source address (the port left
 * out) and kind, and each source gets one entry per
 * store_options.audit_aggregate_seconds, "N failures (auth-fail) from
 * ADDR since T" with the last event's device, code and detail (a single
 * failure is written as it came). The entries ride along with the next
 * group, or the writer writes them when the interval ends;
 * store_flush() and store_close() write them at once. So what a peer
 * that never authenticates can make the store write is bounded by the
 * number of its addresses, not of its attempts; beyond 1024 sources in
 * one interval, the rest share one entry.
 *
 * Returns 0, CAPF_EINVAL (no kind), CAPF_ENOMEM, CAPF_ELIMIT (the
 * writer's queue is full; the event is counted as lost and the loss
 * written later), CAPF_ESHUTDOWN.
 */
int store_audit(struct store *st, const struct store_audit_event *ev);

/*
 * store_audit_quiet() - store_audit() without waking the writer: the
 * event waits for the next submission (of any caller), store_wake() or
 * store_flush(). For a session whose next step submits a txn, so that the
 * event and the txn cost the writer one wake-up, not two; the caller
 * calls store_wake() if that submission does not come (the session
 * ends). Returns as store_audit().
 */
int store_audit_quiet(struct store *st, const struct store_audit_event *ev);

/* store_wake() - wake the writer if anything waits in its queue. */
void store_wake(struct store *st);

/*
 * store_flush() - wait until everything queued before the call is written
 * (or failed). Returns 0, or the write error that keeps audit events
 * waiting. For tools and tests; never call it on an event loop.
 */
int store_flush(struct store *st);

/*
 * store_compact() - rotate to a new segment now and write a snapshot of
 * the index as of the rotation, in the background (writes go on), then
 * remove what the snapshot replaces; waits until that is done. Returns 0,
 * CAPF_EBUSY (a compaction is running), CAPF_ESHUTDOWN, or the write
 * error (the old files stay; nothing is lost). Never call it on an event
 * loop.
 */
int store_compact(struct store *st);

/* ---- reading ------------------------------------------------------------- */

/* store_device_get() - copy of the device record, or CAPF_ENOENT. Free with
 * capf__device__free_unpacked(*out, NULL). */
int store_device_get(struct store *st, const char *name, Capf__Device **out);

/* store_cert_get() - copy of a certificate record by serial, or CAPF_ENOENT.
 * Free with capf__certificate__free_unpacked(*out, NULL). */
int store_cert_get(struct store *st, const uint8_t *serial, size_t serial_len,
		   Capf__Certificate **out);

/*
 * store_device_list() - copies of all device records, sorted by name.
 * Free with store_device_list_free(). Returns 0 or CAPF_ENOMEM.
 */
int store_device_list(struct store *st, Capf__Device ***out, size_t *n);

/*
 * store_device_names() - the names of all devices (removed ones too),
 * sorted: *out is one allocation (free() it), n names. Only the names are
 * copied under the index lock, so a million devices hold up group commits
 * for the time of a memcpy each, not of a record's decoding.
 */
int store_device_names(struct store *st, char ***out, size_t *n);
void store_device_list_free(Capf__Device **list, size_t n);

/*
 * store_cert_foreach() - call cb with a copy of every certificate record
 * (the callback must not keep it), in no particular order, until cb
 * returns non-zero (that value is returned). The copies are taken under
 * the index lock and the callbacks run after it is released, so cb may
 * call the store. Returns 0, cb's value, or CAPF_EINVAL / CAPF_ENOMEM.
 */
int store_cert_foreach(struct store *st, int (*cb)(const Capf__Certificate *cert, void *arg),
		       void *arg);

/*
 * store_cert_list_device() - copies of the certificate records whose
 * device field is device (current, unacknowledged and past ones alike),
 * oldest first: by issued_at, then by serial. The store keeps a
 * per-device index, so this does not walk every certificate. A device
 * with no certificate (or no record at all) gives 0 and *n == 0. Free
 * with store_cert_list_free(). Returns 0, CAPF_EINVAL or CAPF_ENOMEM.
 */
int store_cert_list_device(struct store *st, const char *device, Capf__Certificate ***out,
			   size_t *n);

/* store_cert_list_free() - free what store_cert_list_device() returned;
 * accepts NULL. */
void store_cert_list_free(Capf__Certificate **list, size_t n);

/* store_get_stats() - counters, a consistent snapshot. */
void store_get_stats(struct store *st, struct store_stats *out);

/* store_dir() - the state directory the store was opened on. */
const char *store_dir(const struct store *st);

/*
 * store_set_fault() - test seam: make every following write (segments,
 * audit log, snapshots) fail with err (a negative capf code such as
 * CAPF_ENOSPC), or succeed again with 0. A faulty write leaves half an
 * entry in the file before it fails, like a real one can.
 */
void store_set_fault(struct store *st, int err);

/* ---- offline: check, repair, audit ---------------------------------------- */

/* A finding of the offline functions. */
struct store_finding {
	const char *file;    /* path */
	uint64_t offset;     /* byte offset in file */
	uint64_t length;     /* bytes concerned (0 if not applicable) */
	int damage;          /* 1: damage (check fails), 0: a note */
	const char *text;    /* what */
};

typedef void (*store_report_cb)(const struct store_finding *f, void *arg);

struct store_check_summary {
	unsigned files;
	uint64_t entries;       /* good entries read */
	uint64_t records;       /* records in the state the files give */
	unsigned damaged;       /* damaged regions found */
	uint64_t dropped_bytes; /* store_repair(): bytes moved out of the files */
	unsigned repaired;      /* store_repair(): files rewritten */
};

/*
 * store_check() - check every file of a state directory that no process
 * holds: every entry of every snapshot and segment, the order of the
 * files, and the audit log (framing, hash chain, anchor). Each damaged
 * region and each note (a torn tail, which the next start drops) goes to
 * cb. Returns 0 (no damage), CAPF_ECORRUPT (damage reported), CAPF_ELOCKED
 * (in use: store_last_error() says by whom), or an I/O error.
 */
int store_check(const char *dir, store_report_cb cb, void *arg, struct store_check_summary *sum);

/*
 * store_repair() - for every file with damage or a torn tail: write a new
 * file with every good entry (reading on after damage from the next entry
 * whose length and CRC verify), keep the original as NAME.bak-<time>,
 * put the new one in place atomically. The audit log keeps its entries up
 * to the first damaged or unchained one and gets an entry saying what was
 * moved out; the store's anchor is updated to match. Reports every
 * dropped region to cb. Returns 0 only when the directory then checks
 * clean; CAPF_ECORRUPT when damage is left that it cannot mend (a file
 * whose header does not check: move it away by hand), or as store_check().
 */
int store_repair(const char *dir, store_report_cb cb, void *arg,
		 struct store_check_summary *sum);

/* One audit entry as read back. */
typedef int (*store_audit_read_cb)(const Capf__AuditEntry *e, uint64_t offset, void *arg);

/*
 * store_audit_read() - read an audit log (a path) and hand each good entry
 * to cb in order (a non-zero return stops). Safe while capfd appends: a
 * torn tail is the end. Returns 0, CAPF_ECORRUPT (damage after the good
 * entries: store_last_error()), or an I/O error.
 */
int store_audit_read(const char *path, store_audit_read_cb cb, void *arg);

/*
 * store_audit_files() - the paths of the audit files of dir, oldest first
 * (audit.<seq>.log; a format 2 directory's audit.log). Free with
 * store_audit_files_free(). Returns 0 (n may be 0) or a capf code.
 */
int store_audit_files(const char *dir, char ***paths, size_t *n);
void store_audit_files_free(char **paths, size_t n);

/*
 * store_audit_read_dir() - store_audit_read() of every audit file of dir,
 * oldest first, as one log (a non-zero return of cb stops). Returns 0,
 * CAPF_ECORRUPT (damage in some file, the others read:
 * store_last_error()), or an I/O error.
 */
int store_audit_read_dir(const char *dir, store_audit_read_cb cb, void *arg);

struct store_audit_summary {
	uint64_t entries;
	uint64_t first_seq;
	uint64_t last_seq;
	uint64_t anchor_seq;  /* the store's anchor (0: none found) */
	unsigned problems;
	/* With dir: the newest file read as a start leaves it (what the
	 * files alone do not show): entries from the segment's copies, and
	 * an unanchored end taken for a torn tail although groups follow. */
	uint64_t restored;
	bool unanchored_tail;
};

/*
 * store_audit_verify() - verify the hash chain of the audit log files
 * (files, in order, as one chain; or every audit file of dir when nfiles
 * is 0, see store_audit_files()) and,
 * when dir is not NULL, that the log reaches the store's anchor. Every
 * edited, removed, reordered or inserted entry goes to cb with the file
 * and offset. Works while capfd runs. Returns 0 (intact), CAPF_ECORRUPT
 * (problems reported), or an I/O error.
 */
int store_audit_verify(const char *dir, const char *const *files, size_t nfiles,
		       store_report_cb cb, void *arg, struct store_audit_summary *sum);

/* One record of store_dump(): a device (c NULL) or a certificate (d NULL),
 * valid during the call. A non-zero return stops the dump. */
typedef int (*store_dump_cb)(const Capf__Device *d, const Capf__Certificate *c, void *arg);

/*
 * store_dump() - load a state directory that no process holds, as capfd
 * would (newest snapshot, then the segments), without changing a file,
 * and hand every record to cb: devices first, then certificates, each in
 * no particular order. Returns 0, CAPF_ELOCKED, CAPF_ECORRUPT (damage:
 * store_last_error()), or an I/O error.
 */
int store_dump(const char *dir, store_dump_cb cb, void *arg);

/* store_audit_kind_name() - "auth-ok", "issue", ... for a kind. */
const char *store_audit_kind_name(int kind);

/* store_audit_kind_from_name() - the kind of a name, or -1. */
int store_audit_kind_from_name(const char *name);

/* crc32c() - CRC-32C (Castagnoli) of buf, continuing from crc (0 to start). */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

#endif /* CAPF_STORE_STORE_H */
