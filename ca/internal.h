/*
 * ca/internal.h - what the files of ca/ share: the CA object, the CSR
 * wrapper and the GnuTLS error mapping. Not for use outside ca/.
 */
#ifndef CAPF_CA_INTERNAL_H
#define CAPF_CA_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include "ca/ca.h"

#define CA_DEFAULT_SUBJECT "CN=CAPF CA,O=capf"
#define CA_DEFAULT_CA_DAYS 3650u
#define CA_DEFAULT_LSC_DAYS 365u
/* One century: beyond it GnuTLS cannot encode the date for every start. */
#define CA_MAX_DAYS 36500u
#define CA_CSR_MAX 16384u  /* larger DER is refused before parsing */
#define CA_CERT_MAX 65536u /* largest DER certificate accepted */
#define CA_CHAIN_MAX 16u   /* certificates accepted in a MIC chain */
#define CA_KEY_ID_LEN 20u  /* subject/authority key identifier bytes */
#define CA_CN_MAX 64u	   /* X.520 ub-common-name */

struct ca {
	/*
	 * The CA key. One gnutls_privkey_t serves every worker thread;
	 * sign_lock serialises its use (see ca_issue()).
	 */
	gnutls_privkey_t key;
	pthread_mutex_t sign_lock;
	gnutls_x509_crt_t crt;	    /* the CAPF CA certificate */
	gnutls_datum_t der;	    /* its DER (gnutls_malloc'd) */
	char *pem;		    /* its PEM, NUL-terminated (malloc'd) */
	uint8_t ski[CA_KEY_ID_LEN]; /* becomes the AKI of every LSC */
	size_t ski_len;
	gnutls_digest_algorithm_t sign_hash;
	unsigned lsc_days;

	/* Manufacturer roots: the trust list decides MICs; the array is
	 * what TLS credentials copy. Both NULL when none are configured. */
	gnutls_x509_trust_list_t roots;
	gnutls_x509_crt_t *root_crts;
	unsigned root_count;
};

struct ca_csr {
	gnutls_x509_crq_t crq;
};

/* ca_gnutls_err() - the capf code for a GnuTLS error. */
int ca_gnutls_err(int gnutls_ret);

/*
 * CHECK_GNUTLS() - run a GnuTLS call; on failure set ret to the mapped
 * capf code and jump to out. Needs an int ret and a label out in the
 * calling function. Logs nothing.
 */
#define CHECK_GNUTLS(call)                                                                         \
	do {                                                                                       \
		int check_gnutls_ret_ = (call);                                                    \
		if (check_gnutls_ret_ < 0) {                                                       \
			ret = ca_gnutls_err(check_gnutls_ret_);                                    \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)

/* ca_key_id() - the key identifier used for SKI and AKI: the first 160
 * bits of the SHA-256 of the SubjectPublicKeyInfo. out holds
 * CA_KEY_ID_LEN bytes. */
int ca_key_id(gnutls_pubkey_t pub, uint8_t out[CA_KEY_ID_LEN]);

/* ca_random_serial() - a positive serial of exactly CA_SERIAL_LEN bytes
 * in DER (first byte in 0x01..0x7f). */
int ca_random_serial(uint8_t serial[CA_SERIAL_LEN]);

#endif /* CAPF_CA_INTERNAL_H */
