/*
 * tools/client.h - blocking client code shared by capfctl, capf-phone and
 * the tests: the admin socket, the phone channel over TLS, and one complete
 * phone enrollment.
 *
 * Glossary
 *   admin connection  a Unix stream socket to capfd; each AdminRequest frame
 *                     is answered by exactly one AdminResponse frame.
 *   phone channel     a TLS session on TCP to capfd's phone port; the phone
 *                     presents its MIC as the client certificate and checks
 *                     the server certificate against the CAPF CA it trusts.
 *   trust             the CAPF CA certificate(s) a phone trusts, loaded
 *                     once from a PEM file (struct client_trust).
 *
 * Everything here blocks, with timeouts on every receive so that nothing
 * hangs. Functions return 0 or a negative enum capf_err; GnuTLS errors are
 * translated here and never returned.
 */
#ifndef CAPF_TOOLS_CLIENT_H
#define CAPF_TOOLS_CLIENT_H

#include <stdbool.h>

#include "paths.h"
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>

#include "proto/proto.h"
#include "tools/pki.h"
#include "tools/transcript.h"

#define CLIENT_ADMIN_SOCKET_DEFAULT LOCALSTATEDIR "/lib/capf/capfd.sock"
#define CLIENT_PHONE_PORT_DEFAULT "3804"
#define CLIENT_TLS_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
#define CLIENT_TIMEOUT_MS_DEFAULT 30000u
#define CLIENT_BINDING_LEN 32u /* tls-exporter bytes in a CSR */

/* A frame reader: a decoder plus the bytes received beyond the last frame. */
struct client_reader {
	struct frame_decoder dec;
	uint8_t buf[16384];
	size_t off;   /* first unconsumed byte of buf */
	size_t len;   /* bytes held in buf */
};

/* ---- admin socket ----------------------------------------------------- */

/* An admin connection. Embed it; client_admin_close() releases it. */
struct client_admin {
	int fd;
	unsigned timeout_ms;
	struct client_reader rd;
};

/*
 * client_admin_open() - connect to the admin socket at path (a Unix stream
 * socket). Every later receive waits at most timeout_ms (0 = 30 s).
 * Returns 0, CAPF_EINVAL (path too long) or the negated errno of socket()
 * or connect() (e.g. CAPF_ENOENT, CAPF_EACCES, -ECONNREFUSED).
 */
int client_admin_open(struct client_admin *a, const char *path, unsigned timeout_ms);

/* client_admin_close() - close the connection. Safe on a closed one. */
void client_admin_close(struct client_admin *a);

/*
 * client_admin_call() - send req (its version is set to
 * CAPF_PROTOCOL_VERSION if 0) and read one AdminResponse of at most
 * FRAME_MAX_LIMIT bytes. Returns 0 and *resp (free with
 * capf__admin_response__free_unpacked(*resp, NULL)) whatever the response
 * code is, or an I/O error: CAPF_ECONNRESET (the server closed),
 * CAPF_ETIMEDOUT, CAPF_EBADMSG, CAPF_EFRAME_TOO_BIG, a negated errno.
 */
int client_admin_call(struct client_admin *a, const Capf__AdminRequest *req,
		      Capf__AdminResponse **resp);

/* ---- phone channel ---------------------------------------------------- */

/* CAPF CA certificates trusted by a phone. Release with client_trust_deinit(). */
struct client_trust {
	gnutls_x509_crt_t *crts;
	unsigned n;
	/* With client_trust_cache(): the server chains that verified, by
	 * the SHA-256 of what the server sent, and the counts. NULL: every
	 * handshake verifies the server's chain. */
	struct client_verified *verified;
};

/* The server chains a client_trust has seen verify (at most
 * CLIENT_VERIFIED_MAX kept). Not locked: one per thread. */
#define CLIENT_VERIFIED_MAX 8u
struct client_verified {
	uint8_t sum[CLIENT_VERIFIED_MAX][32];
	unsigned n;
	unsigned long full;   /* handshakes that verified the chain */
	unsigned long cached; /* handshakes whose chain was one that verified */
};

/*
 * client_trust_cache() - from now on a handshake with t verifies the
 * server's chain only when it is not byte for byte one that verified
 * before (what a load of many sessions to one server needs; a phone's
 * single session gains nothing). The server still proves its key in
 * every handshake. Returns 0 or CAPF_ENOMEM.
 */
int client_trust_cache(struct client_trust *t);

/*
 * client_trust_load() - read every certificate of a PEM (or one DER) file.
 * Returns 0, CAPF_EIO (unreadable) or CAPF_EBADMSG (no certificate in it).
 */
int client_trust_load(const char *path, struct client_trust *t);

/* client_trust_deinit() - release the certificates. Safe on a zeroed one. */
void client_trust_deinit(struct client_trust *t);

/*
 * client_trust_verify() - 1 if the DER certificate der verifies, now,
 * against the certificates of t (any of them may be its issuer), else 0.
 */
int client_trust_verify(const struct client_trust *t, const uint8_t *der, size_t len);

/*
 * client_tcp_connect() - connect a TCP socket to host:port (IPv4 or IPv6,
 * every address getaddrinfo() gives, in order), waiting at most timeout_ms
 * per address. The socket is blocking, close-on-exec, with TCP_NODELAY and
 * a send timeout of timeout_ms. Returns 0 and *fd, CAPF_EINVAL (the name
 * does not resolve) or the negated errno of the last attempt
 * (-ECONNREFUSED, CAPF_ETIMEDOUT, ...).
 */
int client_tcp_connect(const char *host, const char *port, unsigned timeout_ms, int *fd);

/* A phone's TLS session. Embed it, zeroed and with fd = -1 (CLIENT_TLS_INIT). */
struct client_tls {
	int fd;
	gnutls_session_t session;
	gnutls_certificate_credentials_t cred;
	gnutls_pcert_st pcert;      /* the MIC, sent as client certificate */
	bool have_pcert;
	gnutls_privkey_t privkey;   /* wraps the MIC key (not a copy) */
	struct client_reader rd;
	char errtext[160];          /* why the last call failed, for people */
	struct transcript_writer *rec; /* records every frame sent and received, or NULL */
	const struct client_trust *trust; /* during client_tls_open() */
	unsigned verify_status;     /* why the server's chain did not verify (cached trust) */
};
#define CLIENT_TLS_INIT { .fd = -1 }

/*
 * What a phone's TLS offers for the key exchange, for every later
 * client_tls_open() of the process (set it before any thread opens one):
 *   CLIENT_GROUPS_DEFAULT  CLIENT_TLS_PRIORITY as it is: GnuTLS's groups,
 *                          key shares for its top two kinds (P-256 and
 *                          X25519), the server picks
 *   CLIENT_GROUPS_X25519   X25519 first, then P-256, and a key share for
 *                          X25519 only (as phones increasingly do)
 *   CLIENT_GROUPS_P256     P-256 (secp256r1) only, for comparison
 */
enum client_groups {
	CLIENT_GROUPS_DEFAULT = 0,
	CLIENT_GROUPS_X25519,
	CLIENT_GROUPS_P256,
};

/* client_tls_set_groups() - choose what later sessions offer. Not thread
 * safe: call it before the threads that open sessions start. */
void client_tls_set_groups(enum client_groups g);

/* client_groups_from_name() - "default", "x25519" or "p256" (also
 * "secp256r1"); 0 and *out, or CAPF_EINVAL. */
int client_groups_from_name(const char *name, enum client_groups *out);

/* client_groups_name() - the name of g, as client_groups_from_name() reads it. */
const char *client_groups_name(enum client_groups g);

/*
 * client_tls_open() - connect to host:port, then run the TLS handshake:
 * priority CLIENT_TLS_PRIORITY (its groups as client_tls_set_groups() said), mic (may be NULL) presented as client
 * certificate whatever CAs the server names, the server certificate
 * verified against trust without a host name. Receives wait at most
 * timeout_ms (0 = CLIENT_TIMEOUT_MS_DEFAULT). mic must outlive the session.
 * Returns 0, a client_tcp_connect() error, CAPF_EUNTRUSTED (the server
 * certificate does not verify), CAPF_ETIMEDOUT, CAPF_ECONNRESET or
 * CAPF_ECRYPTO (the handshake failed otherwise; t->errtext says why).
 * On failure t is closed again.
 */
int client_tls_open(struct client_tls *t, const char *host, const char *port,
		    const struct pki_pair *mic, const struct client_trust *trust,
		    unsigned timeout_ms);

/* client_tls_close() - send a TLS close_notify (best effort), close the
 * socket, release everything. Safe on a closed or CLIENT_TLS_INIT one.
 * client_tls_abort() - the same without the close_notify (a phone that
 * goes away). */
void client_tls_close(struct client_tls *t);
void client_tls_abort(struct client_tls *t);

/*
 * client_tls_send_raw() - write bytes as one TLS record (several when len
 * exceeds the record size); t->rec records them as "raw". Returns 0,
 * CAPF_ECONNRESET, CAPF_ETIMEDOUT or CAPF_EIO.
 */
int client_tls_send_raw(struct client_tls *t, const uint8_t *data, size_t len);

/* client_phone_send() - pack msg into a frame and send it as one record.
 * Returns 0, a phone_msg_pack() error or a client_tls_send_raw() error. */
int client_phone_send(struct client_tls *t, const Capf__PhoneMessage *msg);

/*
 * client_phone_recv() - read one PhoneMessage (at most FRAME_MAX_DEFAULT
 * bytes). Returns 0 and *msg (free with
 * capf__phone_message__free_unpacked()), or CAPF_ECONNRESET (closed),
 * CAPF_ETIMEDOUT, CAPF_EFRAME_TOO_BIG, CAPF_EFRAME_EMPTY, CAPF_EBADMSG,
 * CAPF_EIO.
 */
int client_phone_recv(struct client_tls *t, Capf__PhoneMessage **msg);

/* ---- one enrollment --------------------------------------------------- */

/* Misbehaviour switches of phone_enroll(), for testing the server only. */
enum phone_misbehave {
	PHONE_BAD_BINDING = 1u << 0,      /* challengePassword of a random value */
	PHONE_BAD_CSR_SIGNATURE = 1u << 1,/* one byte of the signature flipped */
	PHONE_OVERSIZED_FRAME = 1u << 2,  /* a 1 MiB frame header after Hello */
	PHONE_OUT_OF_ORDER = 1u << 3,     /* CsrSubmit instead of Hello */
	PHONE_NO_ACK = 1u << 4,           /* close without StoreAck */
	PHONE_REFUSE_DELETE = 1u << 5,    /* answer a delete with DeleteResult{1} */
};

/* The step before which phone_enroll() waits stall_ms (for timeouts). */
enum phone_step {
	PHONE_STEP_NONE = 0,
	PHONE_STEP_HELLO,   /* after the handshake, before Hello */
	PHONE_STEP_CSR,     /* before CsrSubmit */
	PHONE_STEP_ACK,     /* before StoreAck */
	PHONE_STEP_RESULT,  /* before DeleteResult or FetchReport */
};

struct phone_enroll_opts {
	const char *host;                 /* NULL = "127.0.0.1" */
	const char *port;                 /* NULL = CLIENT_PHONE_PORT_DEFAULT */
	const char *name;                 /* device name sent in Hello */
	const struct pki_pair *mic;       /* the MIC and its key */
	const struct pki_pair *lsc;       /* an LSC and its key, or NULL */
	bool present_mic;                 /* with lsc: still present the MIC */
	unsigned version;                 /* Hello.version; 0 = CAPF_PROTOCOL_VERSION */
	const char *auth_string;          /* Hello.auth_string (version 2), or NULL */
	const int *supported_keys;        /* Hello.supported_keys (version 2) */
	size_t nsupported;
	const struct client_trust *trust; /* CAPF CA; NULL = load ca_file */
	const char *ca_file;
	int key_type;                     /* 0 = what the server asks */
	gnutls_x509_privkey_t reuse_key;  /* the key of an earlier session, or NULL */
	unsigned timeout_ms;              /* per receive; 0 = default */
	unsigned misbehave;               /* enum phone_misbehave bits */
	enum phone_step stall_at;         /* wait stall_ms before this step */
	unsigned stall_ms;
	struct transcript_writer *rec;    /* the session's transcript, or NULL */
	const char *tool;                 /* its "tool" field; NULL = "capf-phone enroll" */
	/* The delivered LSC's signature is not verified (its key and name
	 * still are): a load checks a sample. */
	bool skip_lsc_signature;
};

/* Where phone_enroll() stopped. */
enum phone_stage {
	PHONE_STAGE_CONNECT = 0,  /* TCP connect or TLS handshake */
	PHONE_STAGE_SESSION,      /* inside the protocol */
	PHONE_STAGE_DONE,
};

/* What phone_enroll() got. Zero it first; release with
 * phone_enroll_result_deinit(). */
struct phone_enroll_result {
	enum phone_stage stage;
	int server_code;          /* positive code of the server's Error or End, 0 = none */
	bool server_end;          /* server_code came in End (version 2), not in Error */
	char text[256];           /* the server's text, or why it failed locally */
	int key_type;             /* the key type generated */
	int tls_group;            /* the key exchange group of the handshake (gnutls_group_t), 0 = none */
	gnutls_x509_privkey_t key;/* the LSC's private key */
	uint8_t *lsc_der;         /* the LSC (malloc'd) */
	size_t lsc_len;
	uint8_t serial[40];
	size_t serial_len;
	time_t not_before;
	time_t not_after;
	bool acked;               /* StoreAck sent and End{0} received */
	int op;                   /* the operation the server asked for (Operation) */
	bool deleted;             /* delete: DeleteResult{0} sent and End{0} received */
	size_t reported;          /* fetch: certificates reported, End{0} received */
};

/*
 * phone_enroll() - one phone session: connect, TLS with the LSC (o->lsc,
 * unless o->present_mic) or else the MIC as client certificate, Hello,
 * OperationRequest, then the operation asked for. Install: key and CSR
 * bound to the session, CsrSubmit, CertificateDelivery, check of the
 * certificate (its key is ours, its subject CN is the name, it verifies
 * against the trusted CAPF CA), StoreAck, End. Delete (version 2):
 * DeleteResult{0} (or {1} with PHONE_REFUSE_DELETE), End; the caller
 * forgets its LSC when r->deleted. Fetch (version 2): FetchReport with
 * the LSC and the MIC held, End. o->misbehave changes one step for tests;
 * o->stall_at waits before one.
 *
 * Returns 0 on success (r->op says which operation; with PHONE_NO_ACK: once the certificate is
 * received and checked). When the server sends Error (or End with a
 * non-zero code) it returns the negated server code, e.g. -1009, and keeps
 * the server's text in r->text. Local failures return a negative capf
 * code: connection and TLS errors (r->stage == PHONE_STAGE_CONNECT, or
 * CAPF_ECONNRESET / CAPF_ETIMEDOUT in a session), CAPF_EPROTO (the server
 * broke the protocol), CAPF_EREJECTED (the certificate fails the checks),
 * CAPF_EINVAL (bad options), CAPF_ECRYPTO. r->text explains.
 */
int phone_enroll(const struct phone_enroll_opts *o, struct phone_enroll_result *r);

/* phone_enroll_result_deinit() - free the LSC and wipe its key. */
void phone_enroll_result_deinit(struct phone_enroll_result *r);

/* ---- output helpers --------------------------------------------------- */

/*
 * client_json_string() - write s as a JSON string with its quotes: '"',
 * '\\' and control characters escaped, valid UTF-8 kept, every byte of an
 * invalid UTF-8 sequence replaced by U+FFFD. NULL writes null.
 */
void client_json_string(FILE *f, const char *s);

/* client_csv_field() - write s as one CSV field (RFC 4180): quoted, with
 * quotes doubled, when it holds a comma, quote, CR or LF; a field that
 * begins with '=', '+', '-', '@', TAB or CR gets a "'" before it, so that
 * no spreadsheet runs it as a formula. NULL writes nothing. */
void client_csv_field(FILE *f, const char *s);

/*
 * client_nearest() - the candidate closest to word (edit distance, a
 * transposition counting as one), if it is close enough to be what was
 * meant (at most 1 edit for short words, 2 for longer ones, or word is
 * the start of it); else NULL. For "did you mean" hints.
 */
const char *client_nearest(const char *word, const char *const *cands, size_t n);

/* client_time_iso() - t as ISO 8601 UTC "YYYY-MM-DDTHH:MM:SSZ" into buf
 * (at least 21 bytes; 32 is safe). Returns buf. */
char *client_time_iso(int64_t t, char *buf, size_t buflen);

/*
 * client_parse_date() - parse "YYYY-MM-DD" (a real calendar date, years
 * 1970..9999) as the last second of that day in UTC, or
 * "YYYY-MM-DDTHH:MM:SSZ" as that second. Returns 0 and *out or CAPF_EINVAL.
 */
int client_parse_date(const char *s, int64_t *out);

/* client_hex() - lower-case hex of len bytes into a new string (malloc'd;
 * "" for len 0), or NULL when out of memory. */
char *client_hex(const uint8_t *data, size_t len);

#endif /* CAPF_TOOLS_CLIENT_H */
