/*
 * tools/transcript.h - session transcripts: what capf-phone --record writes
 * and what capf-replay reads (the format is doc/transcript.md).
 *
 * Glossary
 *   transcript  a file of JSON lines, one record per line; it holds one or
 *               more sessions, one after the other (a file is appendable).
 *   session     one TLS connection: a "session" line (the header: protocol,
 *               device, TLS parameters, channel binding), then one "msg"
 *               line per message in either direction, in the order sent or
 *               received, then an "end" line with the phone's outcome.
 *   payload     the bytes of one message: for the native protocol the
 *               PhoneMessage protobuf inside a frame (without the length
 *               prefix), for Cisco the whole message with its header; "raw"
 *               bytes that are no message (e.g. a lone frame header) are
 *               recorded as they were written.
 *
 * The writer never fails the session it records: a write error is
 * remembered and reported by transcript_writer_close().
 */
#ifndef CAPF_TOOLS_TRANSCRIPT_H
#define CAPF_TOOLS_TRANSCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#define TRANSCRIPT_VERSION 1u
#define TRANSCRIPT_LINE_MAX (1024u * 1024u)     /* bytes in one line */
#define TRANSCRIPT_MSGS_MAX 1024u               /* messages in one session */
#define TRANSCRIPT_SESSIONS_MAX 100000u         /* sessions in one file */

/* Who sent a message. */
enum transcript_dir {
	TRANSCRIPT_PHONE = 0,  /* the phone (capf-phone) to the server */
	TRANSCRIPT_SERVER = 1, /* the server to the phone */
};

/* ---- writing ---------------------------------------------------------- */

struct transcript_writer;

/* What the header of a session says besides the TLS parameters. */
struct transcript_info {
	const char *protocol;        /* "native" or "cisco" */
	const char *tool;            /* e.g. "capf-phone enroll" */
	const char *device;          /* the device name the phone uses */
	const char *host, *port;     /* the server */
	const char *client_cert;     /* "mic", "lsc" or "none": what TLS presented */
	gnutls_x509_crt_t client_crt;/* that certificate, or NULL */
};

/*
 * transcript_writer_open() - open path for appending (created 0644 when
 * missing). Returns 0 and *out (close with transcript_writer_close()), or
 * the negated errno of open().
 */
int transcript_writer_open(const char *path, struct transcript_writer **out);

/*
 * transcript_writer_close() - flush and close; NULL is fine. Returns 0, or
 * CAPF_EIO when any line could not be written.
 */
int transcript_writer_close(struct transcript_writer *w);

/*
 * transcript_begin() - write the header of a new session over the
 * established TLS session s (its version, cipher suite, key exchange group,
 * server certificate fingerprint and tls-exporter channel binding); the
 * offsets of the messages that follow count from now. w NULL: nothing.
 */
void transcript_begin(struct transcript_writer *w, const struct transcript_info *info,
		      gnutls_session_t s);

/*
 * transcript_message() - one message of the current session: its
 * direction, its decoded type (a name such as "Hello" or
 * "KEY_GENERATE_REQUEST", "raw" for bytes that are no message) and its
 * bytes. w NULL, or no session begun: nothing.
 */
void transcript_message(struct transcript_writer *w, enum transcript_dir dir, const char *type,
			const uint8_t *payload, size_t len);

/*
 * transcript_message_split() - transcript_message() of a message sent in
 * two TLS records, the first of split bytes (0 < split < len; otherwise
 * it is one record).
 */
void transcript_message_split(struct transcript_writer *w, enum transcript_dir dir,
			      const char *type, const uint8_t *payload, size_t len, size_t split);

/*
 * transcript_end() - the last line of the session: the phone's result (0
 * or a negative capf code), the server's code (positive, 0 = none) and a
 * text. w NULL, or no session begun: nothing.
 */
void transcript_end(struct transcript_writer *w, int result, int server_code, const char *text);

/* transcript_native_type() - the record type name of a native message body
 * ("Hello", "OperationRequest", ...; "unknown" for others). */
const char *transcript_native_type(int body_case);

/* transcript_cisco_type() - the name of a Cisco command ("AUTH_REQUEST",
 * ...; "unknown" for others). */
const char *transcript_cisco_type(unsigned command);

/* ---- reading ---------------------------------------------------------- */

struct transcript_msg {
	unsigned index;            /* 0, 1, ... within the session */
	double t;                  /* seconds since the session began */
	enum transcript_dir dir;
	char type[40];
	uint8_t *payload;          /* malloc'd; NULL when len is 0 */
	size_t len;
	size_t split;              /* sent in two TLS records, the first of split
				    * bytes; 0: in one */
};

struct transcript_session {
	unsigned line;             /* line number of the header */
	char protocol[16];
	char tool[48];
	char device[80];
	char server[300];
	char started[32];
	char client_cert[8];       /* "mic", "lsc", "none" */
	char client_cert_sha256[65];
	char client_cert_cn[80];   /* its subject CN: whose MIC it was */
	char tls_version[32];
	char tls_cipher[96];
	char tls_group[32];
	char server_cert_sha256[65];
	uint8_t binding[64];
	size_t binding_len;
	struct transcript_msg *msgs;
	size_t nmsgs;
	bool ended;                /* an "end" line was read */
	double end_t;
	int result;
	int server_code;
	char end_text[256];
};

/* A parsed transcript. Zero it; release with transcript_free(). */
struct transcript {
	struct transcript_session *sessions;
	size_t n;
};

/*
 * transcript_parse() - parse len bytes of JSON lines into t (appending to
 * the sessions already there). Every line must be a record of version
 * TRANSCRIPT_VERSION that fits the one before it; unknown keys are
 * ignored. Returns 0, CAPF_ENOMEM, or CAPF_EBADMSG with err (errlen
 * bytes) saying which line and why.
 */
int transcript_parse(const char *data, size_t len, struct transcript *t, char *err,
		     size_t errlen);

/* transcript_load() - transcript_parse() of a whole file; CAPF_EIO when it
 * cannot be read. */
int transcript_load(const char *path, struct transcript *t, char *err, size_t errlen);

/* transcript_free() - release every session. Safe on a zeroed one. */
void transcript_free(struct transcript *t);

#endif /* CAPF_TOOLS_TRANSCRIPT_H */
