/*
 * capf/core.h - the enrollment core: one phone session as a pure state
 * machine, protocol-neutral and sans I/O.
 *
 * Glossary
 *   session   one phone connection after its TLS handshake, from the
 *             transport's first event to the end.
 *   event     what happens to a session (struct core_event): it starts,
 *             with the evidence the transport has (a verified peer chain
 *             or none, a channel binding or none); the phone claims an
 *             identity; it offers a key (a CSR or a bare public key); a
 *             record is loaded, with its revision; records are persisted
 *             or refused; a signature is made or failed; the phone
 *             acknowledges or reports a failure; a timer fires; the
 *             transport gives up.
 *   effect    what the session asks the world to do in answer (struct
 *             core_fx): load a device and its certificates, persist
 *             records at the revisions they were read, sign an LSC, send
 *             an abstract message, audit, close. The glue (capf/session.c)
 *             carries effects out and feeds their results back as events.
 *   message   an abstract message to the phone (struct core_msg): the
 *             operation request, the certificate delivery, the end of the
 *             session with its result. A codec per wire protocol maps
 *             wire messages to events and these messages to wire bytes
 *             (capf/codec.h): the core never sees a frame.
 *   view      a device record with the certificates that matter to a
 *             session (its current LSC, its unacknowledged one, the one
 *             the phone presented), read together.
 *   revision  every record carries one; a persist names the revision each
 *             record had when it was read, and the store refuses it with
 *             CAPF_ESTALE if another writer came first. The core then
 *             reloads and decides again.
 *
 * The core calls no store, CA, clock or socket function: every event
 * carries the wall-clock time, and every decision that needs the world
 * goes out as an effect. The transition table (capf/core.c, and the state
 * diagram of doc/protocol.md) is the specification.
 */
#ifndef CAPF_CORE_H
#define CAPF_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "proto/proto.h"

#define CORE_SERIAL_MAX 20u
#define CORE_HASH_LEN 32u
#define CORE_BINDING_MAX 64u
#define CORE_CN_MAX 256u
#define CORE_MAX_FX 6u
#define CORE_MAX_RECS 4u
#define CORE_MAX_CHAIN 8u

enum core_state {
	CORE_S_NEW = 0,       /* made, not started */
	CORE_S_WAIT_CLAIM,    /* waiting for the phone's identity claim */
	CORE_S_LOAD_CLAIM,    /* loading the claimed device */
	CORE_S_VERIFY,        /* checking the authentication string */
	CORE_S_LOAD_AUTHFAIL, /* re-reading to count a wrong string */
	CORE_S_PERSIST_AUTHFAIL, /* recording the wrong string (and a lockout) */
	CORE_S_WAIT_KEY,      /* install requested, waiting for the phone's key */
	CORE_S_LOAD_KEY,      /* re-reading the device before issuing */
	CORE_S_SUPERSEDE,     /* revoking an unacknowledged LSC of another key */
	CORE_S_SIGN,          /* waiting for the signature of the LSC */
	CORE_S_PERSIST_ISSUE, /* recording the LSC before it is sent */
	CORE_S_LOAD_ISSUE,    /* re-reading after a conflict while recording */
	CORE_S_WAIT_ACK,      /* LSC delivered, waiting for the acknowledgement */
	CORE_S_WAIT_DELETE,   /* delete requested, waiting for the phone's result */
	CORE_S_WAIT_FETCH,    /* fetch requested, waiting for the phone's report */
	CORE_S_LOAD_FINISH,   /* re-reading before completing the operation */
	CORE_S_PERSIST_FINISH, /* recording the completion */
	CORE_S_DONE,
	CORE_S__COUNT
};

enum core_ev_type {
	CORE_EV_START = 0, /* transport evidence (core_event.start) */
	CORE_EV_CLAIM,     /* identity claim (core_event.claim) */
	CORE_EV_KEY,       /* a CSR or a bare public key (core_event.key) */
	CORE_EV_LOADED,    /* the view asked for (core_event.loaded) */
	CORE_EV_PERSISTED, /* persist result (core_event.result) */
	CORE_EV_SIGNED,    /* signature made (core_event.signed_lsc) or failed (result) */
	CORE_EV_ACK,       /* the phone's acknowledgement (core_event.code, 0 = stored) */
	CORE_EV_DELETED,   /* the phone's delete result (core_event.code, 0 = deleted) */
	CORE_EV_FETCHED,   /* the phone's report of its certificates (core_event.report) */
	CORE_EV_VERIFIED,  /* the string check (core_event.result: 0 match, CAPF_EAUTH not) */
	CORE_EV_PEER_END,  /* the phone ended the session with an error (code) */
	CORE_EV_TIMEOUT,   /* the phone took too long */
	CORE_EV_ABORT,     /* the transport or codec gives up (code) */
	CORE_EV__COUNT
};

/* What the transport proved about the peer's certificate chain. */
struct core_peer {
	bool present;         /* the peer presented a certificate */
	int mic_result;       /* 0: chains to a manufacturer root now; else the code */
	int lsc_result;       /* 0: chains to a trusted CAPF CA and is unrevoked; else the code */
	char cn[CORE_CN_MAX]; /* the leaf's subject CN ("" if none) */
	/* The CN of the certificate mic_result speaks of when it is another
	 * than the leaf (Cisco's SUDI); "" = the leaf's. */
	char mic_cn[CORE_CN_MAX];
	char fingerprint[2 * CORE_HASH_LEN + 1]; /* SHA-256 of the leaf, hex */
	uint8_t serial[CORE_SERIAL_MAX];         /* the leaf's serial */
	size_t serial_len;
};

struct core_start {
	struct core_peer peer;
	/* The channel binding of this TLS session (tls-exporter), or none:
	 * a transport with a binding gets keys only as CSRs bound to it. */
	uint8_t binding[CORE_BINDING_MAX];
	size_t binding_len;
};

/* What the phone's protocol lets the core do (a codec sets them by the
 * version the phone speaks). */
#define CORE_CAP_DELETE 0x1u   /* the phone can be told to delete its LSC */
#define CORE_CAP_FETCH 0x2u    /* the phone can report its certificates */
#define CORE_CAP_RESULT 0x4u   /* an END may carry a result that is no error */
/* The claim carries every credential the phone will offer, and its
 * protocol answers a failed authentication before "nothing to do" (Cisco
 * CAPF v3): with nothing scheduled, the phone is authenticated first. */
#define CORE_CAP_AUTH_FIRST 0x8u
#define CORE_MAX_KEYS 8u

struct core_claim {
	const char *device;      /* the device name the phone claims (valid name) */
	const char *auth_string; /* the authentication string offered, or NULL */
	size_t auth_string_len;
	const int *supported_keys; /* capf KeyTypes the phone can make; n 0 = any */
	size_t nsupported;
	unsigned caps;           /* CORE_CAP_* */
	/* Evidence proved inside the protocol (a certificate and a signature
	 * with its key), replacing the transport's; NULL: none. */
	const struct core_peer *peer;
};

/* The certificates a phone reported (fetch), DER, owned by the glue. */
struct core_report {
	const uint8_t *const *certs;
	const size_t *lens;
	size_t n;
};

enum core_key_kind {
	CORE_KEY_CSR = 1, /* a PKCS#10 request: proof of possession, maybe a binding */
	CORE_KEY_SPKI,    /* a bare SubjectPublicKeyInfo */
};

struct core_key {
	enum core_key_kind kind;
	/* 0 when the key could be read and, for a CSR, its self-signature
	 * verifies and its challengePassword is this session's binding;
	 * else the code: CAPF_EBADCSR (unreadable), CAPF_EPOLICY (a key
	 * type capf does not issue to), CAPF_ECSRSIG, CAPF_EBINDING. */
	int pop_result;
	int key_type;                        /* capf KeyType of the key */
	uint8_t spki_sha256[CORE_HASH_LEN];  /* identifies the key */
	void *handle;                        /* the glue's parsed key, given back in CORE_FX_SIGN */
};

/* A view: the device record and its certificates, all copies owned by the
 * glue until the next event. NULL where a record does not exist. */
struct core_view {
	int result;                       /* 0, or the load failure (CAPF_EBUSY: claimed elsewhere) */
	const Capf__Device *device;
	const Capf__Certificate *current; /* device->lsc_serial */
	const Capf__Certificate *pending; /* device->pending_serial */
	const Capf__Certificate *presented; /* the peer's leaf serial, when asked for */
	/* Another device whose LSC holds the key asked about, or NULL. */
	const char *key_owner;
};

/* A signed LSC, from the glue: copied by the core. */
struct core_lsc {
	const uint8_t *der;
	size_t der_len;
	const uint8_t *serial;
	size_t serial_len;
	time_t not_before;
	time_t not_after;
	time_t issued_at;
	uint8_t spki_sha256[CORE_HASH_LEN];
	const uint8_t *const *chain; /* the issuing CA and up, DER */
	const size_t *chain_lens;
	size_t nchain;
};

struct core_event {
	enum core_ev_type type;
	time_t now; /* wall clock, unix seconds */
	union {
		struct core_start start;
		struct core_claim claim;
		struct core_key key;
		struct core_view loaded;
		const struct core_lsc *signed_lsc;
		struct core_report report;
		int result;
		int code;
	};
	int sign_result; /* CORE_EV_SIGNED: 0, or the failure (signed_lsc NULL) */
};

/* ---- effects ---------------------------------------------------------- */

enum core_msg_type {
	CORE_MSG_OP_REQUEST = 1, /* do this operation, with this key */
	CORE_MSG_DELIVER,        /* here is your certificate */
	CORE_MSG_END,            /* the session is over: code 0 = success */
};

struct core_msg {
	enum core_msg_type type;
	int op;       /* OP_REQUEST: capf Operation */
	int key_type; /* OP_REQUEST: capf KeyType */
	const uint8_t *cert;   /* DELIVER: the LSC, DER */
	size_t cert_len;
	const uint8_t *const *chain; /* DELIVER: issuing CA and up; nchain 0: the glue adds it */
	const size_t *chain_lens;
	size_t nchain;
	int code;         /* END: 0, or a negative capf code */
	const char *text; /* END: for people; may be NULL */
};

enum core_fx_type {
	CORE_FX_LOAD = 1, /* load a view: device (claim it first if claim) */
	CORE_FX_PERSIST,  /* write recs in one txn, with audit; then CORE_EV_PERSISTED */
	CORE_FX_SIGN,     /* issue an LSC for device to key; then CORE_EV_SIGNED */
	CORE_FX_SEND,     /* send msg */
	CORE_FX_AUDIT,    /* write an audit event on its own */
	CORE_FX_VERIFY,   /* check an authentication string; then CORE_EV_VERIFIED */
	CORE_FX_CLOSE,    /* end the session (after what was sent) */
};

/* A security event; strings owned by the core. */
struct core_audit {
	Capf__AuditKind kind;
	const char *device;
	const uint8_t *serial;
	size_t serial_len;
	int code;
	const char *detail;
};

/* A revocation that a persist records: once durable, the glue tells the
 * CA (for its CRLs). */
struct core_revoked {
	const uint8_t *serial;
	size_t serial_len;
	time_t when;
	int reason; /* RFC 5280 CRLReason */
	const uint8_t *der;
	size_t der_len;
};

struct core_fx {
	enum core_fx_type type;
	union {
		struct {
			const char *device;
			bool claim;
			const uint8_t *presented; /* a serial to load too, or NULL */
			size_t presented_len;
			/* a key (SHA-256 of its SPKI) whose other owner to find, or NULL */
			const uint8_t *key_sha256;
		} load;
		struct {
			Capf__StoreRecord *const *recs; /* each with its revision precondition */
			size_t nrecs;
			struct core_audit audit;
			const struct core_revoked *revoked;
			size_t nrevoked;
			/* Its loss on a power cut is allowed (an acknowledgement
			 * that revokes nothing): no sync of its own needed. */
			bool lazy;
		} persist;
		struct {
			const char *device;
			void *key_handle; /* from CORE_EV_KEY */
			int key_type;
			unsigned days;    /* 0 = the CA's configured validity */
		} sign;
		struct core_msg send;
		struct core_audit audit;
		struct {
			/* PBKDF2-HMAC-SHA256(secret, salt, iterations) == hash?
			 * Compared in constant time, off the loop. */
			const uint8_t *secret;
			size_t secret_len;
			const uint8_t *salt;
			size_t salt_len;
			unsigned iterations;
			const uint8_t *hash;
			size_t hash_len;
		} verify;
	};
};

/* The effects of one event, in the order to carry them out. Points into
 * the session, valid until the next event or core_free(). */
struct core_out {
	struct core_fx fx[CORE_MAX_FX];
	size_t nfx;
	int error;    /* the failure that ended the session, or 0 */
	bool success; /* the operation completed */
	bool done;    /* the session is over (a CLOSE is among fx) */
};

/* What the core needs to know of the server's policy. */
struct core_config {
	unsigned supersede_grace; /* seconds before a replaced LSC is revoked; 0 = at once */
	unsigned max_conflicts;   /* revision conflicts before retry-later; 0 = 8 */
	/* Renewal window: a phone that authenticates with its current LSC in
	 * the last renew_percent % of its lifetime is re-keyed without an
	 * operation scheduled. 0 = off. */
	unsigned renew_percent;
	bool allow_null_string;   /* records may say "null string" */
	unsigned max_auth_failures; /* wrong strings before a lockout; 0 = 5 */
	unsigned lockout_seconds; /* the first lockout; doubles with each; 0 = 60 */
};

struct core;

/* core_new() - a session in CORE_S_NEW. NULL on allocation failure. */
struct core *core_new(const struct core_config *cfg);

/* core_free() - accepts NULL. */
void core_free(struct core *s);

/*
 * core_step() - feed one event; *out (overwritten) gets the effects.
 * Returns 0, or the negative capf code that ended the session (also in
 * out->error, with the END message and CLOSE among the effects). An
 * event the current state does not expect ends the session with
 * CAPF_EORDER; in CORE_S_DONE every event is ignored (no effect) and
 * CAPF_EORDER is returned.
 */
int core_step(struct core *s, const struct core_event *ev, struct core_out *out);

enum core_state core_state(const struct core *s);

/* core_device() - the claimed device name, "" before the claim. */
const char *core_device(const struct core *s);

/* core_operation() - the capf Operation the session runs (OP_NONE before
 * it is decided); core_renewal() - 1 if it is a renewal nobody scheduled. */
int core_operation(const struct core *s);
int core_renewal(const struct core *s);

/* core_auth_method() - how the phone authenticated ("mic", "lsc",
 * "string", "null") or NULL. */
const char *core_auth_method(const struct core *s);

/* core_serial() - the serial of the LSC the session issued or delivered
 * (*len 0 if none); core_key_type() - the KeyType asked for, 0 if none. */
const uint8_t *core_serial(const struct core *s, size_t *len);
int core_key_type(const struct core *s);

const char *core_state_name(int state);
const char *core_event_name(int type);

/*
 * core_mic_names() - the identity rule for manufacturer certificates: a
 * MIC whose subject CN is cn names device when cn is exactly device or
 * ends with "-device" (manufacturers prefix the model). Pure.
 */
bool core_mic_names(const char *cn, const char *device);

#endif /* CAPF_CORE_H */
