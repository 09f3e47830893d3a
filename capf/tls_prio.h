/*
 * The TLS priorities a listener's sessions start with, and the group a
 * TLS 1.3 ClientHello's key shares decide (capf/tls_prio.c).
 */
#ifndef CAPF_TLS_PRIO_H
#define CAPF_TLS_PRIO_H

#include <stddef.h>
#include <stdint.h>

#include <gnutls/gnutls.h>

#define TLS_PRIO_MAX_GROUPS 16
#define TLS_EXT_KEY_SHARE 51

/*
 * One listener's priorities: the configured one, and when it gives the
 * server precedence, the same with each of its groups moved to the front
 * (first[i] for group_id[i], the groups' TLS ids in the configured order).
 */
struct tls_prio {
	gnutls_priority_t base;
	unsigned ngroups; /* 0 without server precedence */
	uint16_t group_id[TLS_PRIO_MAX_GROUPS];
	gnutls_priority_t first[TLS_PRIO_MAX_GROUPS];
};

/*
 * tls_priority_parse() - a priority string as an addition to GnuTLS's
 * defaults, or, when it starts with a keyword such as NORMAL, on its own.
 * Returns 0 and *out, or GnuTLS's error with *out NULL and *errpos where
 * the string went wrong.
 */
int tls_priority_parse(gnutls_priority_t *out, const char *str, const char **errpos);

/*
 * tls_prio_init() - make p from a priority string (an addition to
 * GnuTLS's defaults, or, when it starts with a keyword such as NORMAL, on
 * its own). @what names the option in the log line of an error.
 * Returns 0, or CAPF_ECONFIG (logged) with p left empty.
 */
int tls_prio_init(struct tls_prio *p, const char *what, const char *str);

/* tls_prio_deinit() - free p's priorities; p is empty after. */
void tls_prio_deinit(struct tls_prio *p);

/*
 * tls_hello_key_shares() - the groups (TLS ids) a ClientHello offers key
 * shares for, in its order. @hello is the handshake message's body (from
 * the protocol version on). Returns how many were stored (at most @max;
 * 0 when it has no key_share extension: TLS 1.2), or CAPF_EPROTO when the
 * hello or its key_share extension does not parse.
 */
int tls_hello_key_shares(const uint8_t *hello, size_t len, uint16_t *ids, unsigned max);

/*
 * tls_prio_for_hello() - the priority a session should go on with for
 * this ClientHello: among the groups it sent key shares for, the one the
 * server prefers, first (so that server precedence never asks for another
 * share); NULL to keep the one it has (no server precedence, no key share,
 * none the server allows, or a hello that does not parse).
 */
gnutls_priority_t tls_prio_for_hello(const struct tls_prio *p, const uint8_t *hello, size_t len);

#endif
