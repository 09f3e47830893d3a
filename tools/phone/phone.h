/*
 * tools/phone/phone.h - capf-phone, the phone simulator: its subcommands
 * and what they share. The protocol code itself is in tools/client.h.
 */
#ifndef CAPF_TOOLS_PHONE_PHONE_H
#define CAPF_TOOLS_PHONE_PHONE_H

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

#endif /* CAPF_TOOLS_PHONE_PHONE_H */
