/*
 * capf/core_internal.h - what the enrollment core's two files share: the
 * session (core.c: the transition table, records and effects) and its
 * decisions (core_policy.c: who the phone is, whether it may do what its
 * record says, which key it must make).
 */
#ifndef CAPF_CORE_INTERNAL_H
#define CAPF_CORE_INTERNAL_H

#include "capf/core.h"

/* decide(): authenticated but for the string, which is checked off the
 * loop first (CORE_FX_VERIFY). */
#define CORE_NEED_VERIFY 1

/* RFC 5280 CRLReason values the core records. */
#define CORE_REASON_SUPERSEDED 4
#define CORE_REASON_CESSATION 5

struct core {
	struct core_config cfg;
	enum core_state state;
	char device[DEVICE_NAME_MAX + 1];
	struct core_peer peer;
	uint8_t binding[CORE_BINDING_MAX];
	size_t binding_len;
	bool authenticated;
	const char *auth_method;

	/* What the phone said of itself at the claim. */
	unsigned caps;
	int supported[CORE_MAX_KEYS];
	size_t nsupported;
	uint8_t secret[AUTH_STRING_MAX];
	size_t secret_len;
	bool has_secret;
	bool string_ok; /* the string offered matched the record's */
	uint8_t salt[AUTH_SALT_MAX];
	size_t salt_len;
	uint8_t hash[AUTH_HASH_LEN];
	unsigned iterations;

	/* The operation as decided at the claim. */
	uint64_t op_generation;
	int op;
	/* Nothing scheduled, and the phone is authenticated first
	 * (CORE_CAP_AUTH_FIRST): "nothing to do" once its string checks. */
	bool idle_after_auth;
	bool renewal;  /* an install nobody scheduled: the renewal window */
	int key_type;  /* the key asked for */
	unsigned lsc_days;

	struct core_key key;
	unsigned conflicts;
	int outcome; /* a refusal recorded first, reported once persisted */

	/* The LSC of this session (signed now, or recorded earlier). */
	uint8_t *lsc_der;
	size_t lsc_der_len;
	uint8_t serial[CORE_SERIAL_MAX];
	size_t serial_len;
	time_t not_before, not_after, issued_at;
	uint8_t lsc_spki[CORE_HASH_LEN];
	uint8_t *chain[CORE_MAX_CHAIN];
	size_t chain_lens[CORE_MAX_CHAIN];
	size_t nchain;

	/* A fetch report, copied. */
	ProtobufCBinaryData fetched[FETCH_MAX];
	size_t nfetched;

	/* Made at the claim: a connection that never claims a device (an
	 * idle one holds the core from the handshake on) does not carry it. */
	struct core_recs *recs;
	char text[160];
};

/* Records handed out with CORE_FX_PERSIST; they borrow from the view of
 * the same event and from the fields of the core. */
struct core_recs {
	Capf__Device dev_out;
	Capf__Certificate cert_out[CORE_MAX_RECS];
	Capf__StoreRecord rec[CORE_MAX_RECS];
	Capf__StoreRecord *rec_ptrs[CORE_MAX_RECS];
	size_t nrec;
	struct core_revoked revoked[CORE_MAX_RECS];
	size_t nrevoked;
};

/*
 * core_decide() - the decision of a session, taken at the claim (first)
 * and taken again on every later read: the record must still ask for
 * this operation (or the renewal window must be open), in time, and the
 * phone's evidence must satisfy its authentication mode. Returns 0,
 * CORE_NEED_VERIFY (first only: the string must be checked), or the code
 * to end with; *why is the text for people (may be NULL).
 */
int core_decide(struct core *s, const struct core_view *v, time_t now, bool first,
		const char **why);

/*
 * core_pick_key() - the key the device's key order asks for, among those
 * the phone says it can make. Returns 0 and *out (a capf KeyType), or
 * CAPF_EPOLICY with *why.
 */
int core_pick_key(const struct core *s, const Capf__Device *d, int *out, const char **why);

/*
 * core_lockout_until() - when a lockout that starts at now ends: the
 * configured first lockout, doubled for each one before (lockouts).
 */
int64_t core_lockout_until(const struct core *s, uint32_t lockouts, time_t now);

/* ---- building records and effects (capf/core_records.c) ------------------ */

/* core_fx_add() - the next effect of out (the last one again if full). */
struct core_fx *core_fx_add(struct core_out *out, enum core_fx_type type);
void core_audit_init(struct core *s, struct core_audit *a, Capf__AuditKind kind, int code,
		     const char *detail);
/* core_end_with() - end a session that did not do its operation: END with
 * code and text, close, an audit event if asked; core_fail() - the same,
 * audited. */
int core_end_with(struct core *s, int code, const char *text, bool audit, struct core_out *out);
int core_fail(struct core *s, int code, const char *text, struct core_out *out);
/* core_emit_load() - a LOAD of the device (claim: take it for the session). */
void core_emit_load(struct core *s, bool claim, struct core_out *out, enum core_state next);
bool core_serial_eq(const ProtobufCBinaryData *a, const uint8_t *b, size_t blen);
/* The records of one persist: begin, then the device (its session fields
 * on a copy of cur), certificates and revocations, then core_emit_persist(). */
void core_persist_begin(struct core *s);
Capf__Device *core_persist_device(struct core *s, const Capf__Device *cur, time_t now);
Capf__Certificate *core_persist_cert(struct core *s, const Capf__Certificate *cur);
void core_revoke_cert(struct core *s, const Capf__Certificate *cur, time_t now, int reason);
struct core_fx *core_emit_persist(struct core *s, struct core_out *out, Capf__AuditKind kind,
		       const char *detail, enum core_state next);
/* core_on_conflict() - a persist refused: on CAPF_ESTALE / CAPF_ENOENT read
 * again (state reload), else end with a retry-later error. */
int core_on_conflict(struct core *s, int result, enum core_state reload, struct core_out *out);
void core_emit_sign(struct core *s, struct core_out *out);
void core_emit_deliver(struct core *s, struct core_out *out);

#endif /* CAPF_CORE_INTERNAL_H */
