/*
 * tools/phone/phone.h - capf-phone, the phone simulator: its subcommands
 * and what they share. The protocol code itself is in tools/client.h.
 */
#ifndef CAPF_TOOLS_PHONE_PHONE_H
#define CAPF_TOOLS_PHONE_PHONE_H

#include <stdbool.h>
#include <stdint.h>

#include "tools/client.h"

/* Exit statuses of capf-phone, documented in capf-phone(1). */
enum phone_exit {
	PHONE_EXIT_OK = 0,
	PHONE_EXIT_FAIL = 1,    /* the server refused, or the work failed */
	PHONE_EXIT_USAGE = 2,
	PHONE_EXIT_CONNECT = 3, /* connection or TLS failure */
};

#define PHONE_PROG "capf-phone"
#define PHONE_MFG_CA_CN "capf test manufacturer CA"
#define PHONE_MFG_CA_CERT "mfg-ca.pem"
#define PHONE_MFG_CA_KEY "mfg-ca.key"

/* Subcommands: argv[0] is the subcommand's name; each returns an exit status. */
int phone_cmd_mkmic(int argc, char **argv);
int phone_cmd_enroll(int argc, char **argv);
int phone_cmd_load(int argc, char **argv);
int phone_cmd_cisco(int argc, char **argv);

/* phone_usage_error() - print "capf-phone CMD: message" and a hint to
 * stderr; returns PHONE_EXIT_USAGE. */
int phone_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* phone_parse_uint() - parse a decimal in [min, max]; 0 or CAPF_EINVAL. */
int phone_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out);

/* phone_parse_port() - check a TCP port (1..65535) given in decimal. */
int phone_parse_port(const char *s);

/* phone_now() - a monotonic clock in seconds. */
double phone_now(void);

/*
 * phone_mfg_ca_load() - read DIR/mfg-ca.pem and DIR/mfg-ca.key into out.
 * Returns 0 or the pki_read_pair() error.
 */
int phone_mfg_ca_load(const char *dir, struct pki_pair *out);

/* ---- Cisco CAPF v3 as a phone speaks it (tools/phone/cisco_io.c) --------
 * shared by `cisco` (cisco.c, one session with its misbehaviours) and
 * `load --protocol cisco` (load_cisco.c). */

/* A Cisco session's TLS connection and what it has received. */
struct phone_cisco {
	struct client_tls tls;
	uint8_t buf[CISCO_MSG_MAX];
	size_t len;                    /* bytes in buf */
	size_t msg_len;                /* of them, the message m was parsed from */
	struct cisco_msg m;            /* the last message received, pointing into buf */
	struct transcript_writer *rec; /* where each message received is recorded, or NULL */
};

/*
 * phone_cisco_recv() - read one whole message, however the records cut it,
 * into c->m (recorded in c->rec first, whatever its parse finds). Returns
 * 0, the cisco_msg_parse() error, CAPF_EPROTO (not a Cisco header),
 * CAPF_ECONNRESET (the server closed), CAPF_ETIMEDOUT or CAPF_EIO.
 */
int phone_cisco_recv(struct phone_cisco *c);

/* phone_cisco_consume() - drop the message last received from c->buf. */
void phone_cisco_consume(struct phone_cisco *c);

/* phone_cisco_put_sha2_signed() - a SHA-512 signature (pki_cisco_sign()) as b's
 * SHA2_SIGNED_DATA element (hash id 3, u16 length, signature). Returns 0
 * or CAPF_ENOMEM. */
int phone_cisco_put_sha2_signed(struct cisco_builder *b, const gnutls_datum_t *sig);

/* phone_cisco_key_asked() - the key KEY_GENERATE_REQUEST m asks for, as a
 * capf KeyType; 0 if it names none or one unknown. */
int phone_cisco_key_asked(const struct cisco_msg *m);

/* phone_cisco_put_public_key() - key's SubjectPublicKeyInfo (DER) as b's
 * PUBLIC_KEY element. Returns 0 or CAPF_ECRYPTO. */
int phone_cisco_put_public_key(struct cisco_builder *b, gnutls_x509_privkey_t key);

#endif /* CAPF_TOOLS_PHONE_PHONE_H */
