/*
 * tools/pki.h - X.509 helpers for the phone simulator and the tests: a
 * test manufacturer CA, MICs, phone key pairs and CSRs bound to a TLS
 * session. Never used by capfd: the server's keys live in ca/ only.
 */
#ifndef CAPF_TOOLS_PKI_H
#define CAPF_TOOLS_PKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

/* A key and its certificate. Release with pki_pair_deinit(). */
struct pki_pair {
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
};

void pki_pair_deinit(struct pki_pair *p);

/*
 * pki_gen_key() - a new key of capf KeyType key_type (KEY_EC_P256, ...).
 * Returns 0 or CAPF_EINVAL / CAPF_ECRYPTO.
 */
int pki_gen_key(int key_type, gnutls_x509_privkey_t *out);

/*
 * pki_make_root() - a self-signed CA (P-256, CA:TRUE, keyCertSign|cRLSign)
 * with subject CN=cn, valid from now - 1 h for days days.
 */
int pki_make_root(const char *cn, unsigned days, struct pki_pair *out);

/*
 * pki_make_mic() - a MIC for subject CN=cn signed by issuer: P-256 key,
 * CA:FALSE, digitalSignature, clientAuth, valid from not_before for days
 * days (not_before 0 = now - 1 h).
 */
int pki_make_mic(const struct pki_pair *issuer, const char *cn, time_t not_before, unsigned days,
		 struct pki_pair *out);

/* pki_make_mic_purpose() - pki_make_mic() with this extendedKeyUsage
 * purpose (an OID; NULL: no extendedKeyUsage at all). For tests. */
int pki_make_mic_purpose(const struct pki_pair *issuer, const char *cn, time_t not_before,
			 unsigned days, const char *purpose, struct pki_pair *out);

/*
 * pki_make_csr() - a DER PKCS#10 request signed by key, subject CN=cn,
 * challengePassword = lower-case hex of binding (omitted when binding_len
 * is 0). *der is malloc'd; the caller frees it.
 */
int pki_make_csr(gnutls_x509_privkey_t key, const char *cn, const uint8_t *binding,
		 size_t binding_len, uint8_t **der, size_t *der_len);

/* pki_write_pair() - write crt (PEM, mode 0644) to crt_path and key
 * (PKCS#8 PEM, mode 0600) to key_path, each with ca_file_write_atomic().
 * Returns 0, CAPF_EINVAL, CAPF_ECRYPTO, CAPF_ENOMEM or its error. */
int pki_write_pair(const struct pki_pair *p, const char *crt_path, const char *key_path);

/* pki_read_pair() - read a PEM certificate and key. */
int pki_read_pair(const char *crt_path, const char *key_path, struct pki_pair *out);

/*
 * pki_read_key() - read a PEM private key from path into *out (free with
 * gnutls_x509_privkey_deinit()). Returns 0, a read error or CAPF_ECRYPTO.
 */
int pki_read_key(const char *path, gnutls_x509_privkey_t *out);

/* pki_crt_der() - DER of a certificate; *der is malloc'd. */
int pki_crt_der(gnutls_x509_crt_t crt, uint8_t **der, size_t *der_len);

/* pki_tls_binding() - the tls-exporter value (RFC 9266: label
 * "EXPORTER-Channel-Binding", no context, 32 bytes) of an established
 * session. */
int pki_tls_binding(gnutls_session_t session, uint8_t out[32]);

/* ---- a Cisco phone's signatures (Cisco CAPF v3, shared/cisco-capf-v3.md) -- */

/*
 * pki_cisco_signed_name() - what the certificate signature of
 * AUTH_RESPONSE covers: name || 0x00 || the certificate DER;
 * pki_cisco_signed_sid() - what the SUDI_DATA one covers: the session id
 * (u32 little-endian) || the DER. *out is malloc'd. 0 or CAPF_ENOMEM.
 */
int pki_cisco_signed_name(const char *name, const uint8_t *der, size_t len, uint8_t **out,
			  size_t *out_len);
int pki_cisco_signed_sid(uint32_t sid, const uint8_t *der, size_t len, uint8_t **out,
			 size_t *out_len);

/*
 * pki_cisco_sign() - a Cisco phone's signature of msg with key: SHA-512
 * (sha512) or SHA-1; RSA as PKCS#1 v1.5 around the bare digest, EC as
 * DER ECDSA. Returns 0 and *sig (gnutls_free()), or CAPF_ECRYPTO.
 */
int pki_cisco_sign(gnutls_x509_privkey_t key, bool sha512, const uint8_t *msg, size_t len,
		   gnutls_datum_t *sig);

/* pki_cisco_sign_name() - pki_cisco_sign() of pki_cisco_signed_name().
 * Returns 0 and *sig (gnutls_free()), CAPF_ENOMEM or CAPF_ECRYPTO. */
int pki_cisco_sign_name(gnutls_x509_privkey_t key, bool sha512, const char *name,
			const uint8_t *der, size_t len, gnutls_datum_t *sig);

#endif /* CAPF_TOOLS_PKI_H */
