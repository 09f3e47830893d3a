/*
 * ca/ - the CAPF certificate authority: every X.509 decision of the
 * server, and every use of its keys. With keyops (struct ca_config) the
 * keys themselves stay in another process (capfd's signer): ca/ holds a
 * handle and the public key, and sends what is to be signed.
 * doc/certificate-profile.md lists every field of what it makes;
 * doc/ca-lifecycle.md describes the CA directory and the life of a CAPF
 * CA (creation, enterprise signing, rollover, revocation).
 *
 * Glossary
 *   CAPF CA   a certificate that signs LSCs; self-signed by default, made
 *             on first start, or signed by an enterprise CA (ca_csr() then
 *             ca_import()). Exactly one is current (it issues); after a
 *             rollover the previous ones stay trusted until their overlap
 *             ends ("trusted_until").
 *   issuer    one CAPF CA held in memory: certificate, key (opened once,
 *             a file or a PKCS#11 URI, here or through keyops), its public
 *             key, issuing chain. Issuers are never freed before
 *             ca_free(), so pointers into them stay valid.
 *   MIC       manufacturer-installed certificate, presented by the phone in
 *             the TLS handshake; verified against the manufacturer roots.
 *   LSC       locally significant certificate, issued by ca_issue();
 *             trusted by ca_lsc_verify().
 *   binding   the tls-exporter value (RFC 9266) of the phone's TLS session,
 *             carried hex-encoded in the CSR's challengePassword.
 *   chain     the enterprise certificates imported with ca_trust_add(
 *             CA_TRUST_CHAIN): self-signed ones are trust anchors, others
 *             intermediates; an imported CAPF certificate must chain to an
 *             anchor.
 *   key ref   where a key is: a file path, or a "pkcs11:" URI (RFC 7512,
 *             may carry pin-value) that GnuTLS opens through p11-kit. It
 *             is also how keyops name a key.
 *   TBS       the TBSCertificate of an LSC, encoded by ca_issue_prepare()
 *             and signed elsewhere, then wrapped by ca_issue_complete().
 *
 * The identity rule for MICs (proto/proto.h mic_cn_names_device()): a MIC
 * names exactly one device, the part of its subject CN after the last "-"
 * (manufacturers prefix the model, e.g. "CP-8865-SEP001122334455"), or the
 * whole CN. Nothing else in the MIC is trusted for the name. An LSC names
 * D when its subject CN is exactly D.
 *
 * Threads: every function may be called from any thread. Issuance, MIC
 * and LSC verification run concurrently; the administrative functions
 * (rollover, import, trust changes, revocation) serialise behind a lock
 * and take effect for every call that starts after they return.
 *
 * Errors: functions return 0 or a negative enum capf_err. Those that say
 * so also leave an explanation for people in ca_last_error() (per thread);
 * it never contains key material or a PIN.
 */
#ifndef CAPF_CA_CA_H
#define CAPF_CA_CA_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "proto/errcode.h"

struct ca;
struct ca_csr;

/* Forward declarations keep GnuTLS out of users of this header. */
typedef struct gnutls_certificate_credentials_st *gnutls_certificate_credentials_t;
typedef struct gnutls_x509_privkey_int *gnutls_x509_privkey_t;
typedef struct gnutls_privkey_st *gnutls_privkey_t;

#define CA_SERIAL_LEN 16u	/* serials capf makes */
#define CA_SERIAL_MAX 20u	/* serials capf accepts (RFC 5280 4.1.2.2) */
#define CA_BINDING_LEN 32u	/* tls-exporter bytes, RFC 9266 */
#define CA_BINDING_LABEL "EXPORTER-Channel-Binding"
#define CA_BACKDATE_SECONDS 300
#define CA_FPR_HEX_LEN 64u	/* SHA-256 fingerprint in hex */
#define CA_ID_HEX_MAX (2 * CA_SERIAL_MAX) /* a CAPF CA's id: its serial in hex */

/*
 * Where the CA's private keys live when they are not in this process
 * (struct ca_config.keyops). A key is named by its ref (a path or a
 * pkcs11: URI); public keys travel as DER SubjectPublicKeyInfo, malloc'd
 * (the caller free()s). The functions may block, and are called from any
 * thread, concurrently. They return 0 or a negative enum capf_err; load
 * and generate may leave a sentence for people in errbuf.
 */
#define CA_SIGN_HASH 1u /* sign(): data is a digest (gnutls sign_hash) */
struct ca_keyops {
	/* load() - open the key ref names (again, if already open). */
	int (*load)(void *arg, const char *ref, uint8_t **spki, size_t *spki_len, char *errbuf,
		    size_t errlen);
	/* generate() - a new key of capf KeyType key_type written to
	 * dir/name (mode 0600), held under the ref "dir/name". */
	int (*generate)(void *arg, int key_type, const char *dir, const char *name, uint8_t **spki,
			size_t *spki_len, char *errbuf, size_t errlen);
	/* sign() - sign data with the key ref (loaded first if needed):
	 * sign_algo is a gnutls_sign_algorithm_t; flags CA_SIGN_HASH means
	 * data is the digest (GNUTLS_SIGN_RSA_RAW: a DigestInfo), else the
	 * whole message. *sig is malloc'd. */
	int (*sign)(void *arg, const char *ref, unsigned sign_algo, unsigned flags,
		    const uint8_t *data, size_t len, uint8_t **sig, size_t *sig_len);
	void *arg;
};

struct ca_config {
	const char *dir;	   /* CA directory (required); see doc/ca-lifecycle.md */
	const char *subject;	   /* CA subject DN for a new CA; NULL = default */
	unsigned ca_days;	   /* validity of a new CA; 0 = 3650 */
	unsigned lsc_days;	   /* validity of LSCs; 0 = 365 */
	const char *mfg_roots;	   /* PEM file of manufacturer roots; NULL = none */
	/* "FPR=GLOB,FPR=GLOB": MICs under the manufacturer root whose SHA-256
	 * fingerprint starts with FPR (8 hex digits or more) may only name
	 * devices matching GLOB (fnmatch(3)); NULL = no limit. */
	const char *mic_patterns;
	const char *key;	   /* key ref of the first CA; NULL = a new key file */
	int key_type;		   /* capf KeyType of new CA keys; 0 = KEY_EC_P256 */
	unsigned overlap_days;	   /* default rollover overlap; 0 = 30 */
	unsigned crl_days;	   /* CRL nextUpdate - thisUpdate; 0 = 7 */
	/* NULL: the keys are loaded and used in this process. Otherwise
	 * (copied) every key is loaded, made and used through these, and
	 * this process never holds a private key. */
	const struct ca_keyops *keyops;
};

/* An issued LSC. Release with ca_lsc_deinit(). */
struct ca_lsc {
	uint8_t *der;		    /* malloc'd DER certificate */
	size_t der_len;
	uint8_t serial[CA_SERIAL_LEN];
	time_t not_before;
	time_t not_after;
	/* The DER of the CAPF CA that signed it, owned by the CA and valid
	 * until ca_free(): the chain to deliver with the LSC. */
	const uint8_t *issuer_der;
	size_t issuer_der_len;
	uint8_t spki_sha256[32]; /* SHA-256 of the LSC's SubjectPublicKeyInfo DER */
};

/*
 * ca_new() - open the CA directory described by cfg. On first start (no
 * current CA) it makes a self-signed CAPF CA: with the key cfg->key names
 * (a file, made if absent, or a PKCS#11 object), or a new key file of
 * cfg->key_type. Keys are loaded once and kept. Returns 0 and *out (free
 * with ca_free()), or CAPF_EINVAL, CAPF_ECONFIG (bad subject, key that
 * does not match, unreadable roots, damaged directory), CAPF_EIO,
 * CAPF_ECRYPTO, CAPF_ENOMEM; ca_last_error() says what to fix.
 */
int ca_new(struct ca **out, const struct ca_config *cfg);

/* ca_free() - release the CA and wipe key material. Accepts NULL. */
void ca_free(struct ca *ca);

/* ca_last_error() - text of the last failure of a ca_ function that
 * documents it, in this thread ("cannot read manufacturer roots ..."). */
const char *ca_last_error(void);

/*
 * ca_start_notice() - NULL, or a sentence for the start-up log about how
 * the configuration and the CA directory were reconciled (e.g. the
 * configured key is not the current CA's after a rollover). Owned by the
 * CA.
 */
const char *ca_start_notice(const struct ca *ca);

/*
 * ca_tls_credentials() - load the current CAPF certificate (with its
 * issuing chain, if enterprise-signed) and a handle on its key into cred
 * as the TLS server certificate, and the manufacturer roots and trusted
 * CAPF CAs as the CAs whose certificates are requested from clients.
 * Call it again on new credentials after a change (rollover, import,
 * trust change). Returns 0 or CAPF_EINVAL / CAPF_ECRYPTO / CAPF_ENOMEM.
 */
int ca_tls_credentials(struct ca *ca, gnutls_certificate_credentials_t cred);

/*
 * ca_cert_pem() - the current CAPF CA certificate as PEM (NUL-terminated,
 * owned by the CA, valid until ca_free(), even after a rollover).
 */
const char *ca_cert_pem(const struct ca *ca);

/* ca_cert_der() - the current CAPF CA certificate as DER (owned by the CA,
 * valid until ca_free()). */
void ca_cert_der(const struct ca *ca, const uint8_t **der, size_t *len);

/*
 * ca_mic_verify() - decide whether a certificate chain presented in a TLS
 * handshake (DER certificates, leaf first) is a MIC of device_name:
 * the chain verifies to a manufacturer root at time now and, when
 * device_name is not NULL, the leaf names the device by the identity
 * rule. Returns 0, CAPF_ENOCERT (n == 0),
 * CAPF_EUNTRUSTED, CAPF_EEXPIRED or CAPF_EIDENTITY.
 */
int ca_mic_verify(struct ca *ca, const uint8_t *const *certs, const size_t *lens, size_t n,
		  const char *device_name, time_t now);

/*
 * ca_lsc_verify() - the trust decision for an LSC that a phone presents
 * (DER certificates, leaf first; only the leaf is used): it is signed by
 * a CAPF CA this server trusts at now (the current one, or a previous one
 * within its overlap), both are valid at now, it is not a CA certificate,
 * it is not revoked (ca_revoked_add()), and, when device_name is not
 * NULL, its subject is exactly CN=device_name. Returns 0, CAPF_ENOCERT,
 * CAPF_EUNTRUSTED, CAPF_EREVOKED, CAPF_EEXPIRED or CAPF_EIDENTITY, in
 * that order of precedence.
 */
int ca_lsc_verify(struct ca *ca, const uint8_t *const *certs, const size_t *lens, size_t n,
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
 * have passed ca_csr_check()), signed by the current CAPF CA. The subject
 * is CN=device_name; nothing but the public key is taken from the CSR.
 * The CA key is not read again: it was loaded once. Profile:
 * doc/certificate-profile.md. Returns 0 and fills *out, or CAPF_EINVAL /
 * CAPF_ECRYPTO / CAPF_ENOMEM, or CAPF_ERETRY when the keyops could not
 * reach their keys (a signer restarting). Thread-safe; with keyops it
 * waits for the signature: loops use ca_issue_prepare() instead.
 */
int ca_issue(struct ca *ca, const struct ca_csr *csr, const char *device_name, time_t now,
	     struct ca_lsc *out);

/* ---- authentication strings (ca/secret.c) --------------------------------- */

#define CA_SECRET_HASH_LEN 32u
#define CA_SECRET_SALT_LEN 16u
#define CA_SECRET_ITERATIONS 100000u /* PBKDF2 rounds of a new string */

/* ca_secret_hash() - PBKDF2-HMAC-SHA256 of secret (len bytes, may be 0)
 * with salt, iterations rounds, into out. Returns 0, CAPF_EINVAL,
 * CAPF_ECRYPTO. */
int ca_secret_hash(const uint8_t *secret, size_t len, const uint8_t *salt, size_t salt_len,
		   unsigned iterations, uint8_t out[CA_SECRET_HASH_LEN]);

/* ca_secret_check() - 0 if secret hashes to hash (compared in constant
 * time), CAPF_EAUTH if not, CAPF_EINVAL / CAPF_ECRYPTO. */
int ca_secret_check(const uint8_t *secret, size_t len, const uint8_t *salt, size_t salt_len,
		    unsigned iterations, const uint8_t *hash, size_t hash_len);

/* ca_secret_new() - a random salt and the hash of secret with it. */
int ca_secret_new(const uint8_t *secret, size_t len, unsigned iterations,
		  uint8_t salt[CA_SECRET_SALT_LEN], uint8_t hash[CA_SECRET_HASH_LEN]);

/* ca_secret_generate() - a random string of digits (digits of them, at
 * most 64) into out (digits + 1 bytes). */
int ca_secret_generate(char *out, size_t digits);

/* What a certificate says about itself, for the enrollment core. */
struct ca_cert_summary {
	char cn[256];			      /* its single CN ("" if none or malformed) */
	char fingerprint[CA_FPR_HEX_LEN + 1]; /* SHA-256 of the DER, hex */
	uint8_t serial[CA_SERIAL_MAX];
	size_t serial_len;
};

/*
 * ca_cert_summarize() - the CN, fingerprint and serial of a DER
 * certificate; nothing is verified. Returns 0, CAPF_EINVAL or
 * CAPF_EBADMSG.
 */
int ca_cert_summarize(const uint8_t *der, size_t len, struct ca_cert_summary *out);

/*
 * ca_peer_evidence() - what the chain a phone presented in the TLS
 * handshake proves, each certificate parsed once: *mic_result is what
 * ca_mic_verify() would answer, *lsc_result what ca_lsc_verify() would
 * (both without a device name), *sum ca_cert_summarize() of the leaf.
 * Returns 0, CAPF_EBADMSG (the leaf cannot be read: *sum is empty),
 * CAPF_ENOCERT (no certificate), CAPF_EINVAL.
 */
int ca_peer_evidence(struct ca *ca, const uint8_t *const *certs, const size_t *lens, size_t n,
		     time_t now, int *mic_result, int *lsc_result, struct ca_cert_summary *sum);

/*
 * ca_issuer_of() - the DER of the CAPF CA (current or previous) whose
 * signature the certificate der carries, owned by the CA and valid until
 * ca_free(). Returns 0, CAPF_ENOENT (none of ours), CAPF_EBADMSG,
 * CAPF_EINVAL.
 */
int ca_issuer_of(struct ca *ca, const uint8_t *der, size_t len, const uint8_t **issuer_der,
		 size_t *issuer_len);

/*
 * ca_issuer_chain() - the chain to deliver with the certificate der: the
 * CAPF CA that signed it, then (for an enterprise-signed CAPF CA) the
 * enterprise certificates above it, issuer side last, at most max of them.
 * Each ders[i] is malloc'd (the caller frees), *n how many. Returns 0,
 * CAPF_ENOENT (none of our CAs signed it), CAPF_EBADMSG, CAPF_ENOMEM.
 */
int ca_issuer_chain(struct ca *ca, const uint8_t *der, size_t len, uint8_t **ders, size_t *lens,
		    size_t max, size_t *n);

/*
 * ca_issuer_chain_of() - ca_issuer_chain() for a certificate whose issuer
 * is known: issuer_der is a CAPF CA's certificate (the issuer_der of a
 * struct ca_lsc), found by its bytes; the certificate itself is neither
 * read nor verified. Returns 0, CAPF_ENOENT (not one of our CAs),
 * CAPF_EINVAL, CAPF_ENOMEM.
 */
int ca_issuer_chain_of(struct ca *ca, const uint8_t *issuer_der, size_t issuer_len, uint8_t **ders,
		       size_t *lens, size_t max, size_t *n);

/*
 * ca_cert_signed_verify() - does sig, made by the key of the certificate
 * der over msg, verify? The signatures of Cisco phones inside the CAPF
 * protocol: SHA-1 (sha512 0) or SHA-512; RSA as PKCS#1 v1.5 padding
 * around the bare digest (no DigestInfo), EC as DER ECDSA. Returns 0,
 * CAPF_EAUTH (does not verify), CAPF_EBADMSG, CAPF_EPOLICY (another key
 * type), CAPF_EINVAL, CAPF_ECRYPTO.
 */
int ca_cert_signed_verify(const uint8_t *der, size_t len, const uint8_t *msg, size_t msg_len,
			  int sha512, const uint8_t *sig, size_t sig_len);

/* ca_lsc_deinit() - free the DER held by an issued LSC. Accepts a zeroed one. */
void ca_lsc_deinit(struct ca_lsc *lsc);

/* ---- issuance in two steps: no thread waits on the signature ------------ */

struct ca_pubkey; /* a phone's public key, parsed and checked */

/*
 * ca_pubkey_parse() - a bare SubjectPublicKeyInfo (DER, strict: BER
 * lengths and trailing bytes are refused) of a supported key: RSA
 * 2048/3072/4096 (public exponent of at most 32 bits) or EC P-256/P-384/P-521.
 * Returns 0 and *out (ca_pubkey_free()), CAPF_EBADMSG (not a valid SPKI),
 * CAPF_EPOLICY (unsupported algorithm, curve or size), CAPF_EINVAL,
 * CAPF_ENOMEM.
 */
int ca_pubkey_parse(const uint8_t *der, size_t len, struct ca_pubkey **out);

/* ca_csr_pubkey() - the public key of a parsed CSR, in the same form and
 * under the same policy as ca_pubkey_parse(). */
int ca_csr_pubkey(const struct ca_csr *csr, struct ca_pubkey **out);

/* ca_pubkey_free() - accepts NULL. */
void ca_pubkey_free(struct ca_pubkey *key);

/* ca_pubkey_type() - the capf KeyType value of the key (KEY_EC_P256, ...). */
int ca_pubkey_type(const struct ca_pubkey *key);

/* ca_pubkey_sha256() - SHA-256 of the key's SubjectPublicKeyInfo DER. */
void ca_pubkey_sha256(const struct ca_pubkey *key, uint8_t out[32]);

/* An LSC waiting for its signature (ca_issue_prepare()). */
struct ca_tbs {
	uint8_t *data; /* the bytes to sign: the DER TBSCertificate */
	size_t len;
	const char *key_ref; /* the issuing CA's key ref (owned by the CA, valid until ca_free()) */
	unsigned sign_algo;  /* gnutls_sign_algorithm_t to sign data with */
	/* Private: for ca_issue_complete(). */
	const void *issuer_;
	uint8_t serial_[CA_SERIAL_LEN];
	time_t not_before_, not_after_;
	uint8_t spki_sha256_[32];
};

/*
 * ca_issue_prepare() - everything ca_issue() does but the signature, for
 * the current CAPF CA: serial, validity (days; 0 = the configured
 * lsc_days), subject CN=device_name, the profile of
 * doc/certificate-profile.md, the key. Sign out->data with out->sign_algo
 * by out->key_ref (e.g. signer_sign_async()), then ca_issue_complete().
 * Returns 0 and fills *out (ca_tbs_deinit() in every case), CAPF_EINVAL
 * (bad name, days over 36500), CAPF_ENOTSUP (no key ref for the CA),
 * CAPF_ECRYPTO, CAPF_ENOMEM. Thread-safe.
 */
int ca_issue_prepare(struct ca *ca, const struct ca_pubkey *key, const char *device_name,
		     time_t now, unsigned days, struct ca_tbs *out);

/*
 * ca_issue_complete() - wrap the signature (sig_len bytes, as GnuTLS
 * makes it for sign_algo) around tbs into the LSC; fills *out like
 * ca_issue() (ca_lsc_deinit()). tbs is left as it was. Returns 0,
 * CAPF_EINVAL, CAPF_ENOMEM.
 */
int ca_issue_complete(struct ca_tbs *tbs, const uint8_t *sig, size_t sig_len, struct ca_lsc *out);

/* ca_tbs_deinit() - free what ca_issue_prepare() left in tbs. Accepts a
 * zeroed one. */
void ca_tbs_deinit(struct ca_tbs *tbs);

/* ca_cert_subject() - the subject DN of a DER certificate as text, into
 * buf. Returns 0, CAPF_EINVAL, CAPF_EBADMSG or CAPF_ERANGE. For reports. */
int ca_cert_subject(const uint8_t *der, size_t len, char *buf, size_t buflen);

/* ---- lifecycle: status, enterprise signing, rollover ------------------- */

/* Where a new CA key comes from. */
struct ca_keyspec {
	int key_type;	 /* capf KeyType of a new key file; 0 = the configured type */
	const char *key; /* an existing key (file path or pkcs11: URI); NULL = new file */
};

/* What ca_status() reports about one CAPF CA, or the pending request. */
struct ca_info {
	char id[CA_ID_HEX_MAX + 1];	/* serial in hex (the directory name) */
	char subject[512];
	char issuer[512];
	char fingerprint[CA_FPR_HEX_LEN + 1]; /* SHA-256 of the DER */
	char key_type[16];		/* "ec-p256", "rsa-3072", ... */
	char key_store[16];		/* "file" or "pkcs11" */
	time_t not_before;
	time_t not_after;
	time_t trusted_until;		/* previous CAs: end of the overlap; else 0 */
	int current;			/* 1: the issuing CA */
	int pending;			/* 1: the pending request (no certificate yet) */
	int self_signed;
};

/*
 * ca_status() - every CAPF CA the server trusts at now, the current one
 * first, then the previous ones by overlap end; then the pending request
 * if there is one (pending = 1; only subject, key type and key store are
 * set). *out is malloc'd (free()). Returns 0 or CAPF_ENOMEM.
 */
int ca_status(struct ca *ca, time_t now, struct ca_info **out, size_t *n);

/*
 * ca_csr() - make the key of a future CAPF CA (spec) and a PKCS#10 request
 * for it (subject; NULL = the current CA's subject) asking for CA:TRUE,
 * pathlen 0, keyCertSign, cRLSign and digitalSignature. Both are kept in
 * the CA directory as the pending request, replacing any earlier one.
 * *pem (malloc'd, NUL-terminated) is the request. Returns 0, CAPF_EINVAL,
 * CAPF_ECONFIG (bad subject or key), CAPF_EIO, CAPF_ECRYPTO; see
 * ca_last_error().
 */
int ca_csr(struct ca *ca, const struct ca_keyspec *spec, const char *subject, char **pem);

/*
 * ca_import() - install the CAPF certificate an enterprise CA signed for
 * the pending request (PEM or DER in data; only the first certificate is
 * used: the chain comes from the trust store). It is accepted only if it
 * chains to an imported trust anchor (else CAPF_EUNTRUSTED, and
 * ca_last_error() says to import the chain first), its key is the pending
 * key (CAPF_EPOLICY), it is a CA certificate allowed to sign certificates
 * (CAPF_EPOLICY), signed with SHA-256 or better and numbered with a
 * serial of at most 20 bytes (CAPF_EPOLICY), and valid at now
 * (CAPF_EEXPIRED). It then becomes
 * the current CA; the previous one stays trusted for overlap_days (0 = the
 * configured overlap). Returns 0, those codes, CAPF_ENOENT (no pending
 * request), CAPF_EBADMSG (no certificate in data), CAPF_EIO.
 */
int ca_import(struct ca *ca, const uint8_t *data, size_t len, unsigned overlap_days, time_t now);

/*
 * ca_rollover() - make a new self-signed CAPF CA (key from spec, subject
 * NULL = the current one's, ca_days as configured) and make it current;
 * the previous one stays trusted for overlap_days (0 = the configured
 * overlap), never beyond its own expiry. Returns 0 and *id (the new CA's
 * id, may be NULL), or CAPF_ECONFIG / CAPF_EIO / CAPF_ECRYPTO; see
 * ca_last_error().
 */
int ca_rollover(struct ca *ca, const struct ca_keyspec *spec, const char *subject,
		unsigned overlap_days, time_t now, char id[CA_ID_HEX_MAX + 1]);

/*
 * ca_bundle() - the CAPF trust bundle: every CAPF CA trusted at now and
 * the certificates of their issuing chains, each once. PEM (pem = 1,
 * NUL-terminated) or a DER PKCS#7 certs-only structure (pem = 0). *out is
 * malloc'd. Returns 0, CAPF_ENOMEM, CAPF_ECRYPTO.
 */
int ca_bundle(struct ca *ca, time_t now, int pem, uint8_t **out, size_t *len);

/* ---- trust stores ------------------------------------------------------- */

enum ca_trust_kind {
	CA_TRUST_MFG = 1,   /* manufacturer roots: authenticate MICs */
	CA_TRUST_CHAIN = 2, /* enterprise chain: vouches for imported CAPF CAs */
};

struct ca_trust_entry {
	int kind;			      /* enum ca_trust_kind */
	int from_config;		      /* 1: from [trust] manufacturer_roots */
	int anchor;			      /* chain: 1 = self-signed anchor */
	char fingerprint[CA_FPR_HEX_LEN + 1]; /* SHA-256 of the DER, hex */
	char subject[512];
	time_t not_after;
};

/*
 * ca_trust_reload() - read the manufacturer roots again, from the file
 * of the configuration (mfg_roots, may be NULL) and the roots added with
 * ca_trust_add(), and the [trust] mic_patterns, and put them in place at
 * once: the next MIC is checked against them. On an error (logged with
 * ca_last_error()) the trust in use stays as it was.
 */
int ca_trust_reload(struct ca *ca, const char *mfg_roots, const char *mic_patterns);

/*
 * ca_trust_add() - add every certificate of data (PEM, or one DER) to a
 * trust store, persisted in the CA directory. Manufacturer roots must be
 * CA certificates. Chain certificates must be CA certificates, and each
 * that is not self-signed must be signed by an anchor or intermediate
 * already there or in data. Certificates already present are skipped.
 * *added (may be NULL) is the number added. Returns 0, CAPF_EINVAL,
 * CAPF_EBADMSG (no certificate), CAPF_EPOLICY, CAPF_EUNTRUSTED, CAPF_EIO;
 * see ca_last_error().
 */
int ca_trust_add(struct ca *ca, int kind, const uint8_t *data, size_t len, size_t *added);

/*
 * ca_trust_list() - the certificates of both stores (kind 0) or one,
 * manufacturer roots first, each sorted by subject. *out is malloc'd
 * (free()). Returns 0 or CAPF_ENOMEM.
 */
int ca_trust_list(struct ca *ca, int kind, struct ca_trust_entry **out, size_t *n);

/*
 * ca_trust_remove() - remove the certificate whose fingerprint starts with
 * fpr (at least 8 hex digits) from the store kind (0 = either). Roots from
 * the configuration file cannot be removed here, nor a chain certificate
 * that a trusted CAPF CA depends on. Returns 0, CAPF_EINVAL, CAPF_ENOENT,
 * CAPF_EBUSY (ambiguous prefix, or in use), CAPF_EPOLICY, CAPF_EIO; see
 * ca_last_error().
 */
int ca_trust_remove(struct ca *ca, int kind, const char *fpr);

/* ---- revocation --------------------------------------------------------- */

/* RFC 5280 5.3.1 CRLReason values that capf records. */
enum ca_reason {
	CA_REASON_UNSPECIFIED = 0,
	CA_REASON_KEY_COMPROMISE = 1,
	CA_REASON_CA_COMPROMISE = 2,
	CA_REASON_AFFILIATION_CHANGED = 3,
	CA_REASON_SUPERSEDED = 4,
	CA_REASON_CESSATION_OF_OPERATION = 5,
	CA_REASON_PRIVILEGE_WITHDRAWN = 9,
};

/* ca_reason_name() - "keyCompromise", ...; "?" for another value. */
const char *ca_reason_name(int reason);

/* ca_reason_from_name() - the reverse; 0 and *out, or CAPF_EINVAL. */
int ca_reason_from_name(const char *name, int *out);

/*
 * ca_revoked_add() - record in memory that the certificate with this
 * serial is revoked since when, for reason; der (may be NULL) is the
 * certificate, which names the CAPF CA whose CRL lists it (without it,
 * every CRL lists it). The store holds the durable record; the server
 * calls this at start for every revoked record and after each revocation
 * is durable. Adding a serial again updates it. Returns 0, CAPF_EINVAL,
 * CAPF_ENOMEM.
 */
int ca_revoked_add(struct ca *ca, const uint8_t *serial, size_t serial_len, time_t when,
		   int reason, const uint8_t *der, size_t der_len);

/*
 * ca_revoke() - ca_revoked_add(), made durable first in the CA directory's
 * revocation list (revoked.txt: one line per revocation, each ending in a
 * checksum, appended and synced; a torn last line that a crash left is cut
 * off first), which ca_new() reads back, skipping a line whose checksum
 * does not match. The server writes the store record
 * after this, so a revocation that was asked for is never lost: at start
 * it completes the store records that a crash left behind (see
 * ca_revoked_each()). Returns 0, CAPF_EINVAL, CAPF_EIO, CAPF_ENOMEM.
 */
int ca_revoke(struct ca *ca, const uint8_t *serial, size_t serial_len, time_t when, int reason,
	      const uint8_t *der, size_t der_len);

/* What ca_revoked_each() reports for one revoked serial. */
typedef int (*ca_revoked_cb)(const uint8_t *serial, size_t serial_len, time_t when, int reason,
			     void *arg);

/* ca_revoked_each() - call cb for every revoked serial, in serial order,
 * until it returns non-zero (that value is returned). */
int ca_revoked_each(struct ca *ca, ca_revoked_cb cb, void *arg);

/* ca_is_revoked() - 1 if the serial was given to ca_revoked_add(), else 0. */
int ca_is_revoked(struct ca *ca, const uint8_t *serial, size_t serial_len);

/*
 * ca_crl_update() - sign a new CRL (v2: thisUpdate now, nextUpdate now +
 * crl_days, a CRL number higher than any before, authorityKeyIdentifier,
 * every revoked serial with its date and reason) with every trusted CAPF
 * CA whose key is available, and write them to the CA directory: crl.der
 * (the current CA's) and crl.pem (all of them, current first). A CA other
 * than the current one that cannot sign is left out and does not stop
 * the others: then 1 is returned and ca_last_error() names it. Returns 0,
 * 1, or CAPF_ECRYPTO (the current CA cannot sign), CAPF_EIO, CAPF_ENOMEM;
 * see ca_last_error().
 */
int ca_crl_update(struct ca *ca, time_t now);

/*
 * ca_crl_get() - the CRLs of the last ca_crl_update(): the current CA's
 * as DER (pem = 0), or all of them as PEM (pem = 1, NUL-terminated).
 * *out is malloc'd. Returns 0, CAPF_ENOENT (none made yet), CAPF_ENOMEM.
 */
int ca_crl_get(struct ca *ca, int pem, uint8_t **out, size_t *len);

/* ---- keys --------------------------------------------------------------- */

/*
 * ca_key_ref_redact() - a key ref fit for logs and reports: a pkcs11: URI
 * without its pin-value / pin-source attributes, a path as it is. Writes
 * at most buflen bytes (NUL-terminated) to buf and returns buf.
 */
char *ca_key_ref_redact(const char *ref, char *buf, size_t buflen);

/*
 * ca_key_new() - a new private key of capf KeyType key_type (0 and
 * KEY_EC_P256: P-256, KEY_EC_P384, KEY_RSA_2048/3072/4096), in memory
 * only; the caller owns it (gnutls_x509_privkey_deinit()). For the tools
 * that make test keys, and for the CA's own key files. Returns 0 and *out,
 * or CAPF_EINVAL (unknown type, out NULL), CAPF_ECRYPTO, CAPF_ENOMEM.
 */
int ca_key_new(int key_type, gnutls_x509_privkey_t *out);

/* ca_key_is_url() - 1 for a "pkcs11:" URI (a key ref in a token). */
int ca_key_is_url(const char *ref);

/*
 * ca_key_load() - open the key ref names in this process: a PEM/DER key
 * file, or a PKCS#11 object (the key stays in the token). For the signer
 * and the tools. Returns 0 and *out (gnutls_privkey_deinit()), or
 * CAPF_ECONFIG / CAPF_EIO with ca_last_error() (which names the ref
 * redacted).
 */
int ca_key_load(const char *ref, gnutls_privkey_t *out);

/*
 * ca_key_generate() - a new key of capf KeyType key_type (ca_key_new())
 * written as PKCS#8 PEM to dir/name (mode 0600, atomically); *out is the
 * key. An unknown type is CAPF_EINVAL with ca_last_error().
 */
int ca_key_generate(int key_type, const char *dir, const char *name, gnutls_privkey_t *out);

/* ca_key_spki() - the DER SubjectPublicKeyInfo of a key held here
 * (*der malloc'd). Returns 0, CAPF_ECRYPTO, CAPF_ENOMEM. */
int ca_key_spki(gnutls_privkey_t key, uint8_t **der, size_t *len);

/* ---- files -------------------------------------------------------------- */

/*
 * ca_file_write_atomic() - replace the file at path with data, so that a
 * crash leaves either the old file or the new one: a temporary file in
 * the same directory made with O_CREAT|O_EXCL (mode 0600 from the start,
 * then mode), written, fsync'd, renamed over path, then the directory
 * fsync'd. The CA directory's files are written this way. Returns 0,
 * CAPF_EINVAL (path NULL, ending in '/', or with a directory part too
 * long), CAPF_ECONFIG (path too long), CAPF_EIO; but for a NULL path,
 * ca_last_error() says which file.
 */
int ca_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

/*
 * ca_issuer_sign_bench() - for the benchmark: one raw signature of data's
 * SHA-256 (SHA-384 for P-384) with the current CA key, as ca_issue()
 * makes it (same key, same lock). Returns 0 or CAPF_ECRYPTO.
 */
int ca_issuer_sign_bench(struct ca *ca, const uint8_t *data, size_t len);

#endif /* CAPF_CA_CA_H */
