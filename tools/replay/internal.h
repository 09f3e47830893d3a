/*
 * tools/replay/internal.h - what the files of capf-replay share beyond
 * tools/replay/replay.h: the run state (tools/replay/session.c), the
 * state of one session's replay, the comparison of the server's messages
 * (tools/replay/compare.c for native, compare_cisco.c for Cisco), and
 * what capf-replay knows of Cisco messages (tools/replay/cisco_msg.c).
 */
#ifndef CAPF_TOOLS_REPLAY_INTERNAL_H
#define CAPF_TOOLS_REPLAY_INTERNAL_H

#include <stdbool.h>

#include "tools/replay/replay.h"

#define REPLAY_KEY_ID_LEN 32u

/* ---- the run state (tools/replay/session.c) ---------------------------- */

struct replay_dev {
	char name[80];
	struct pki_pair mic;     /* loaded once per run */
	bool have_mic;
	struct pki_pair lsc;     /* the LSC it got in this run, or zero */
};

struct replay_key {
	uint8_t recorded_id[REPLAY_KEY_ID_LEN]; /* SHA-256 key id of the recorded key */
	gnutls_x509_privkey_t key;              /* the key made for it in this run */
};

/* A certificate of the recording and the one that stands for it in this
 * run (an LSC a Cisco phone presents inside the protocol). */
struct replay_cert {
	uint8_t recorded_sha256[32];
	struct pki_pair now;
};

/* Devices and certificates are allocated one by one: a pointer to one
 * stays valid while others are added. */
struct replay_state {
	struct replay_dev **devs;
	size_t ndevs;
	struct replay_key *keys;
	size_t nkeys;
	struct replay_cert **certs;
	size_t ncerts;
};

/* replay_state_dev() - the device called name in st, added when new;
 * NULL when out of memory. */
struct replay_dev *replay_state_dev(struct replay_state *st, const char *name);

/*
 * replay_key_for() - the key for a recorded key (its SHA-256 key id): the
 * one made earlier in this run for the same recorded key (a phone retrying
 * with its key), else a new one of key_type. *out is a copy the caller
 * frees.
 */
int replay_key_for(struct replay_state *st, const uint8_t *id, int key_type,
		   gnutls_x509_privkey_t *out);

/* replay_key_type_of() - capf KeyType of a public key's algorithm, size
 * and curve; 0 for one this tool cannot make. */
int replay_key_type_of(int pk, unsigned bits, gnutls_ecc_curve_t curve);

/*
 * replay_dev_mic() - load the MIC of dev (from --mic or --mic-dir) once.
 * Returns 0, CAPF_EINVAL (no MIC option) or the pki_read_pair() error;
 * r (may be NULL) says why.
 */
int replay_dev_mic(const struct replay_opts *o, struct replay_dev *dev, struct replay_result *r);

/* replay_dev_lsc() - the LSC dev got in this run, or read from --lsc-dir;
 * NULL when there is none. */
const struct pki_pair *replay_dev_lsc(const struct replay_opts *o, struct replay_dev *dev);

/* replay_state_cert() - the certificate standing for a recorded one
 * (SHA-256 of its DER) in this run or, with --lsc-dir, an earlier one;
 * NULL when none does. */
const struct pki_pair *replay_state_cert(const struct replay_opts *o, struct replay_state *st,
					 const uint8_t sha256[32]);

/* replay_state_cert_add() - note that p stands for the recorded
 * certificate sha256 (p is copied), in --lsc-dir too (DIR/for-SHA256.pem
 * and .key). 0 or an error. */
int replay_state_cert_add(const struct replay_opts *o, struct replay_state *st,
			  const uint8_t sha256[32], const struct pki_pair *p);

/* replay_result_fail() - r failed, with a text for people. */
void replay_result_fail(struct replay_result *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* replay_sleep_until() - sleep until replay_now() reaches when. */
void replay_sleep_until(double when);

/* ---- one session -------------------------------------------------------- */

/* One session being replayed. */
struct session_ctx {
	const struct replay_opts *o;
	const struct transcript_session *s;
	struct replay_result *r;
	gnutls_x509_privkey_t key;   /* of the last CSR or public key sent */
	uint8_t *delivered;          /* the last certificate delivered (malloc'd) */
	size_t delivered_len;
	uint8_t recorded_sha256[32]; /* of the certificate recorded in its place */
	bool have_recorded;
	bool delete_sent;            /* the phone said its LSC is deleted */
	bool end_ok;                 /* the server ended the session successfully */
};

/*
 * replay_open_tls() - the TLS session of a replay: the client certificate
 * the recorded phone presented, then the recorded TLS version and cipher
 * suite (the same server configuration negotiates the same). Returns 0;
 * CAPF_ENOENT with r saying why (failed, or the difference).
 */
int replay_open_tls(const struct session_ctx *c, struct replay_state *st, const char *host,
		    const char *port, struct client_tls *t);

/*
 * replay_learn() - after a session: a device that got a certificate keeps
 * it (and the recorded certificate it stands for), one that deleted its
 * LSC forgets it, in the run and in --lsc-dir. Nothing unless c->end_ok.
 */
void replay_learn(const struct replay_opts *o, struct replay_state *st, struct session_ctx *c);

/* replay_cisco_session() - replay_session() of a Cisco session
 * (tools/replay/cisco.c). */
int replay_cisco_session(const struct replay_opts *o, const struct transcript_session *s,
			 struct replay_state *st, struct replay_result *r);

/* ---- comparing ------------------------------------------------------------ */

/*
 * replay_result_set() - record the first difference in r: at message
 * index (-1: the session itself) of recorded type, field, with what was
 * recorded and what came.
 */
void replay_result_set(struct replay_result *r, long index, const char *type, const char *field,
		       const char *want, const char *got);

/*
 * replay_compare() - compare the server's message got with the recorded
 * message m, masked. Returns true when they match (and notes in c what a
 * later step needs: the certificate delivered, an End with code 0), false
 * with the difference in c->r.
 */
bool replay_compare(struct session_ctx *c, const struct transcript_msg *m,
		    const Capf__PhoneMessage *got);

/*
 * replay_compare_cisco() - compare the server's Cisco message got (len
 * bytes, whole) with the recorded message m: the command, then the
 * elements in order (the same tags), then each value: certificates as
 * replay_compare_cert(), REASON_INFO as replay_compare_text(), every
 * other element exactly. The session id is the caller's business.
 * Returns true when they match (an END_SESSION of reason 1 sets
 * c->end_ok), false with the difference in c->r.
 */
bool replay_compare_cisco(struct session_ctx *c, const struct transcript_msg *m,
			  const uint8_t *got, size_t got_len);

/*
 * replay_compare_cert() - compare a delivered certificate (DER) with the
 * recorded one by what they say: subject, key type, validity length, the
 * key (c->key's, when set), and that it verifies against --ca. field names
 * the element ("certificate", "CERTIFICATE"); a difference is reported as
 * field.subject, field.key_type, ... On a match the certificate is noted
 * in c->delivered.
 */
bool replay_compare_cert(struct session_ctx *c, const struct transcript_msg *m, const char *field,
			 const uint8_t *want, size_t want_len, const uint8_t *got, size_t got_len);

/* replay_compare_text() - compare two server texts, masked unless
 * --strict-text; field names them. */
bool replay_compare_text(struct session_ctx *c, const struct transcript_msg *m, const char *field,
			 const char *want, const char *got);

/* ---- Cisco messages (tools/replay/cisco_msg.c) ------------------------------ */

#define REPLAY_CISCO_ELEMS_MAX 64u

/* One element of a Cisco message, where it lies in the message. */
struct replay_cisco_el {
	unsigned tag;
	const uint8_t *v;
	size_t len;
};

/*
 * replay_cisco_elements() - the elements of a message cisco_msg_parse()
 * accepted, in the order sent (duplicates and unknown tags included), at
 * most cap. Returns their number.
 */
size_t replay_cisco_elements(const uint8_t *msg, size_t len, struct replay_cisco_el *out,
			     size_t cap);

/* replay_cisco_el_name() - "REASON", "CERTIFICATE", ...; "tag N" (in a
 * static buffer) for others. */
const char *replay_cisco_el_name(unsigned tag);

/*
 * replay_cisco_el_value() - an element's value for people, short and
 * complete enough to compare: "1 (success)", "\"SEP...\"", "91 bytes
 * ec-SECP256R1 key"; PASSWORD only by its length.
 */
void replay_cisco_el_value(unsigned tag, const uint8_t *v, size_t len, char *out, size_t cap);

/* replay_cisco_describe() - a message in a few words for a difference:
 * "END_SESSION reason 7 (failure)"; "an undecodable message (why)". */
void replay_cisco_describe(const uint8_t *msg, size_t len, char *out, size_t cap);

/*
 * replay_cisco_sign() - a Cisco phone's signature of msg with key: SHA-512
 * (sha512) or SHA-1; RSA as PKCS#1 v1.5 around the bare digest, EC as
 * DER ECDSA. Returns 0 and *sig (gnutls_free()), or CAPF_ECRYPTO.
 */
int replay_cisco_sign(gnutls_x509_privkey_t key, int sha512, const uint8_t *msg, size_t len,
		      gnutls_datum_t *sig);

/*
 * replay_cisco_signed() - the message a certificate signature of
 * AUTH_RESPONSE covers: name || 0x00 || the certificate DER (malloc'd, in
 * *out); the SUDI one: the session id (u32 little-endian) || the DER.
 * 0 or CAPF_ENOMEM.
 */
int replay_cisco_signed_name(const char *name, const uint8_t *der, size_t len, uint8_t **out,
			     size_t *out_len);
int replay_cisco_signed_sid(uint32_t sid, const uint8_t *der, size_t len, uint8_t **out,
			    size_t *out_len);

/* replay_cisco_sudi_part() - a sub-element of SUDI_DATA (tag 0: the
 * certificate, 1: SHA-1 signature, 3: SHA-512 signature). */
bool replay_cisco_sudi_part(const uint8_t *v, size_t len, unsigned tag, const uint8_t **out,
			    size_t *out_len);

/* replay_cisco_device() - the DEVICE_NAME of a message without its NUL, or
 * fallback when there is none. */
void replay_cisco_device(const struct cisco_msg *m, const char *fallback, char *out, size_t cap);

#endif /* CAPF_TOOLS_REPLAY_INTERNAL_H */
