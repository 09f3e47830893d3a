/*
 * ca/ - the CAPF certificate authority: every private key and every X.509
 * decision of the server.
 *
 * Glossary
 *   CAPF CA   the certificate that signs LSCs; self-signed by default, made
 *             on first start in the CA directory (ca.pem, ca.key).
 *   MIC       manufacturer-installed certificate, presented by the phone in
 *             the TLS handshake; verified against the manufacturer roots.
 *   LSC       locally significant certificate, issued by ca_issue().
 *   binding   the tls-exporter value (RFC 9266) of the phone's TLS session,
 *             carried hex-encoded in the CSR's challengePassword.
 *
 * The identity rule for MICs: a MIC names device D when its subject CN is
 * exactly D, or ends with "-D" (manufacturers prefix the model, e.g.
 * "CP-8865-SEP001122334455"). Nothing else in the MIC is trusted for the
 * name.
 */
#ifndef CAPF_CA_CA_H
#define CAPF_CA_CA_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "proto/errcode.h"

struct ca;
struct ca_csr;

/* Forward declarations keep GnuTLS out of users of this header. */
typedef struct gnutls_certificate_credentials_st *gnutls_certificate_credentials_t;

#define CA_SERIAL_LEN 16u
#define CA_BINDING_LEN 32u      /* tls-exporter bytes, RFC 9266 */
#define CA_BINDING_LABEL "EXPORTER-Channel-Binding"
#define CA_BACKDATE_SECONDS 300

struct ca_config {
	const char *dir;           /* CA directory: ca.pem, ca.key (required) */
	const char *subject;       /* CA subject DN for a new CA; NULL = default */
	unsigned ca_days;          /* validity of a new CA; 0 = 3650 */
	unsigned lsc_days;         /* validity of LSCs; 0 = 365 */
	const char *mfg_roots;     /* PEM file of manufacturer roots; NULL = none */
};

/* An issued LSC. Release with ca_lsc_deinit(). */
struct ca_lsc {
	uint8_t *der;               /* malloc'd DER certificate */
	size_t der_len;
	uint8_t serial[CA_SERIAL_LEN];
	time_t not_before;
	time_t not_after;
};

/*
 * ca_new() - open the CA described by cfg, creating a self-signed P-256
 * CAPF CA (key mode 0600) if the directory holds none. The key is loaded
 * once and kept. Returns 0 and *out (free with ca_free()), or an error:
 * CAPF_ECONFIG (bad subject, unreadable roots), CAPF_EIO, CAPF_ECRYPTO.
 * Logs nothing; *errmsg (if non-NULL) receives a static or malloc'd
 * explanation... see ca_last_error().
 */
int ca_new(struct ca **out, const struct ca_config *cfg);

/* ca_free() - release the CA and wipe key material. Accepts NULL. */
void ca_free(struct ca *ca);

/* ca_last_error() - text of the last error of ca_new() in this thread, for
 * the fatal start-up message ("cannot read manufacturer roots ..."). */
const char *ca_last_error(void);

/*
 * ca_tls_credentials() - load the CAPF certificate and key into cred as the
 * TLS server certificate, and the manufacturer roots as the CAs whose
 * certificates are requested from clients. Returns 0 or CAPF_ECRYPTO.
 */
int ca_tls_credentials(struct ca *ca, gnutls_certificate_credentials_t cred);

/*
 * ca_cert_pem() - the CAPF CA certificate as PEM (NUL-terminated, owned by
 * the CA, valid until ca_free()).
 */
const char *ca_cert_pem(const struct ca *ca);

/* ca_cert_der() - the CAPF CA certificate as DER (owned by the CA). */
void ca_cert_der(const struct ca *ca, const uint8_t **der, size_t *len);

/*
 * ca_mic_verify() - decide whether a certificate chain presented in a TLS
 * handshake (DER certificates, leaf first) is a MIC of device_name:
 * the chain verifies to a manufacturer root at time now and the leaf names
 * the device by the identity rule. Returns 0, CAPF_ENOCERT (n == 0),
 * CAPF_EUNTRUSTED, CAPF_EEXPIRED or CAPF_EIDENTITY.
 */
int ca_mic_verify(struct ca *ca, const uint8_t *const *certs, const size_t *lens, size_t n,
		  const char *device_name, time_t now);

/*
 * ca_csr_parse() - parse a DER PKCS#10 request from a phone. Returns 0 and
 * *out (free with ca_csr_free()), or CAPF_EBADCSR.
 */
int ca_csr_parse(const uint8_t *der, size_t len, struct ca_csr **out);

/* ca_csr_free() - accepts NULL. */
void ca_csr_free(struct ca_csr *csr);

/*
 * ca_csr_check() - check a parsed CSR: its self-signature (CAPF_ECSRSIG),
 * its challengePassword equal to the hex of binding (CAPF_EBINDING), its
 * key of the type key_type asks for (a capf KeyType value; CAPF_EPOLICY).
 * Returns 0 when all hold.
 */
int ca_csr_check(const struct ca_csr *csr, const uint8_t *binding, size_t binding_len,
		 int key_type);

/*
 * ca_issue() - issue an LSC for device_name to the key of csr (which must
 * have passed ca_csr_check()). The subject is CN=device_name; nothing but
 * the public key is taken from the CSR. Profile: doc/certificate-profile.md.
 * Returns 0 and fills *out, or CAPF_ECRYPTO / CAPF_ENOMEM. Thread-safe.
 */
int ca_issue(struct ca *ca, const struct ca_csr *csr, const char *device_name, time_t now,
	     struct ca_lsc *out);

/* ca_lsc_deinit() - free the DER held by an issued LSC. Accepts a zeroed one. */
void ca_lsc_deinit(struct ca_lsc *lsc);

/* ca_cert_subject() - the subject DN of a DER certificate as text, into
 * buf. Returns 0 or CAPF_EBADMSG. For reports. */
int ca_cert_subject(const uint8_t *der, size_t len, char *buf, size_t buflen);

#endif /* CAPF_CA_CA_H */
