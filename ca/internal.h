/*
 * ca/internal.h - what the files of ca/ share: the CA object, issuers,
 * trust stores, the revocation list, file helpers and the GnuTLS error
 * mapping. Not for use outside ca/.
 *
 * Locking: ca->lock (a rwlock) protects everything that administrative
 * calls change: the current issuer pointer, the issuer list, the trust
 * stores, the revocation list, the CRLs and the pending request. Readers
 * (issuance, MIC and LSC verification, status) take it for reading; an
 * administrative call takes it for writing only while it swaps in what it
 * prepared. Each issuer's key has its own sign_lock. admin_lock
 * serialises administrative calls against each other, so one of them may
 * prepare its files without holding ca->lock.
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
#define CA_DEFAULT_OVERLAP_DAYS 30u
#define CA_DEFAULT_CRL_DAYS 7u
/* One century: beyond it GnuTLS cannot encode the date for every start. */
#define CA_MAX_DAYS 36500u
#define CA_CSR_MAX 16384u  /* larger DER is refused before parsing */
#define CA_CERT_MAX 65536u /* largest DER certificate accepted */
#define CA_CHAIN_MAX 16u   /* certificates accepted in a chain */
#define CA_KEY_ID_LEN 20u  /* subject/authority key identifier bytes */
#define CA_KEY_ID_MAX 64u  /* key identifiers read from certificates */
#define CA_CN_MAX 64u	   /* X.520 ub-common-name */
#define CA_FILE_MAX (64u * 1024u)	  /* a certificate, key or key ref file */
#define CA_BUNDLE_MAX (4u * 1024u * 1024u) /* a roots bundle or an imported file */
#define CA_STORE_MAX 4096u		  /* certificates in one trust store */

/* Names in the CA directory (doc/ca-lifecycle.md). */
#define CA_DIR_GEN "gen"
#define CA_DIR_MFG "mfg"
#define CA_DIR_CHAIN "chain"
#define CA_DIR_PENDING "pending"
#define CA_LINK_CURRENT "current"
#define CA_FILE_CERT "cert.pem"
#define CA_FILE_KEY "key.pem"
#define CA_FILE_KEYREF "key.ref"
#define CA_FILE_CHAIN "chain.pem"
#define CA_FILE_UNTIL "until"
#define CA_FILE_CSR "csr.pem"
#define CA_FILE_CA_PEM "ca.pem"
#define CA_FILE_LEGACY_KEY "ca.key"
#define CA_FILE_CRL_DER "crl.der"
#define CA_FILE_CRL_PEM "crl.pem"
#define CA_FILE_REVOKED "revoked.txt"

/* One CAPF CA in memory. Immutable once published, except trusted_until
 * and the CRL fields (under ca->lock). */
struct ca_issuer {
	struct ca_issuer *next;	 /* every issuer loaded, freed at ca_free() */
	char id[CA_ID_HEX_MAX + 1]; /* serial in hex: its directory gen/<id> */
	gnutls_privkey_t key;	 /* NULL: key unavailable (verifies, signs nothing) */
	gnutls_pubkey_t key_pub; /* its public key, as loaded (NULL with key) */
	char *key_ref;		 /* the key's ref: a path or pkcs11: URI (NULL with key) */
	pthread_mutex_t sign_lock;
	char *key_url;		 /* pkcs11: URI of the key, or NULL (a file key) */
	gnutls_x509_crt_t crt;
	gnutls_datum_t der;	 /* gnutls_malloc'd */
	char *pem;		 /* malloc'd, NUL-terminated */
	gnutls_datum_t raw_dn;	 /* its subject, DER (gnutls_malloc'd): CRL issuer */
	uint8_t ski[CA_KEY_ID_MAX];
	size_t ski_len;
	gnutls_digest_algorithm_t sign_hash;
	gnutls_sign_algorithm_t sign_algo;
	gnutls_x509_crt_t *chain; /* its issuing chain (enterprise-signed), leaf side first */
	unsigned chain_len;
	time_t trusted_until;	 /* 0: current, or not retired */
	int retired;		 /* 1: a previous CA */
	gnutls_datum_t crl_der;	 /* its last CRL, or empty */
};

/* One revoked serial. */
struct ca_revoked {
	uint8_t serial[CA_SERIAL_MAX];
	uint8_t serial_len;
	uint8_t reason;
	uint8_t issuer_id_len; /* 0: unknown issuer, listed by every CRL */
	uint8_t issuer_id[CA_KEY_ID_MAX];
	int64_t when;
};

/* A trust store: certificates with their fingerprints. */
struct ca_store {
	gnutls_x509_crt_t *crts;
	char (*fprs)[CA_FPR_HEX_LEN + 1];
	unsigned char *from_config;
	unsigned n, cap;
};

struct ca {
	pthread_rwlock_t lock;
	pthread_mutex_t admin_lock;
	char *dir;
	char *subject_cfg;
	int subject_auto; /* no [ca] subject: each generation is named CN=CAPF-<key id> */
	char *key_cfg;
	int key_type;
	unsigned ca_days, lsc_days, overlap_days, crl_days;
	char *notice;

	struct ca_issuer *issuers; /* all, newest first */
	struct ca_issuer *current;

	/* Manufacturer roots: the store, and the trust list built from it
	 * (NULL when empty). */
	struct ca_store mfg;
	gnutls_x509_trust_list_t mfg_tl;
	/* Enterprise chain: anchors and intermediates. */
	struct ca_store chain;

	/* [trust] mic_patterns, parsed: root fingerprint prefix -> glob. */
	struct ca_mic_pattern {
		char fpr[CA_FPR_HEX_LEN + 1];
		char glob[64];
	} *mic_patterns;
	size_t n_mic_patterns;

	struct ca_revoked *revoked; /* sorted by serial */
	size_t n_revoked, cap_revoked;
	uint64_t crl_number;
	char *crl_pem; /* all CRLs of the last update */
	size_t crl_pem_len;

	struct ca_keyops keyops; /* valid when has_keyops */
	int has_keyops;
};

struct ca_csr {
	gnutls_x509_crq_t crq;
	/* The request's key, imported once (NULL if GnuTLS cannot read
	 * it), and where its certificationRequestInfo and signature are in
	 * der, its bytes (copied). */
	gnutls_pubkey_t pub;
	uint8_t *der;
	size_t info_off, info_len, sig_off, sig_len;
	/* The request's key as GnuTLS encodes a SubjectPublicKeyInfo
	 * (empty if GnuTLS cannot read the key: ca_csr_check() refuses
	 * it), its key identifier and algorithm: what ca_issue() takes. */
	gnutls_datum_t spki;
	uint8_t sha256[32];
	uint8_t key_id[CA_KEY_ID_LEN];
	int pk;
};

/* A phone's public key (ca_pubkey_parse(), ca_csr_pubkey()). */
struct ca_pubkey {
	gnutls_datum_t spki; /* canonical DER, gnutls_malloc'd */
	uint8_t key_id[CA_KEY_ID_LEN];
	uint8_t sha256[32];
	int pk;	  /* gnutls_pk_algorithm_t */
	int type; /* capf KeyType */
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

/* ca_text_append() - append d to the malloc'd text *text of *len bytes,
 * keeping it NUL-terminated (*text may be NULL, *len 0). On CAPF_ENOMEM
 * *text and *len are unchanged; the caller frees *text either way. */
int ca_text_append(char **text, size_t *len, const gnutls_datum_t *d);

/* ca_set_error() - set the text of ca_last_error(). */
void ca_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ca_key_id() - the key identifier used for SKI and AKI: the first 160
 * bits of the SHA-256 of the SubjectPublicKeyInfo. out holds
 * CA_KEY_ID_LEN bytes. */
int ca_key_id(gnutls_pubkey_t pub, uint8_t out[CA_KEY_ID_LEN]);

/* ca_random_serial() - a positive serial of exactly CA_SERIAL_LEN bytes
 * in DER (first byte in 0x01..0x7f). */
int ca_random_serial(uint8_t serial[CA_SERIAL_LEN]);

/* ca_mic_decide(), ca_lsc_decide() - ca_mic_verify() and ca_lsc_verify()
 * of certificates parsed already. */
int ca_mic_decide(struct ca *ca, gnutls_x509_crt_t *chain, size_t n, const char *device_name,
		  time_t now);
int ca_lsc_decide(struct ca *ca, gnutls_x509_crt_t leaf, const char *device_name, time_t now);

/* ca_check_time() - 0 if crt is valid at now, CAPF_EEXPIRED if not,
 * CAPF_EUNTRUSTED if it has no readable start. 99991231235959Z never
 * expires. */
int ca_check_time(gnutls_x509_crt_t crt, time_t now);

/* ca_leaf_cn() - the single CN of crt as its string bytes (cn holds at
 * least CA_CN_MAX * 4 + 8 bytes); CAPF_EIDENTITY if absent, repeated, of
 * an unexpected string type, or holding a NUL. */
int ca_leaf_cn(gnutls_x509_crt_t crt, char *cn, size_t size, size_t *cn_len);

/* ca_fingerprint() - SHA-256 of crt's DER in lower-case hex (GnuTLS
 * encodes crt again for it). */
int ca_fingerprint(gnutls_x509_crt_t crt, char out[CA_FPR_HEX_LEN + 1]);

/* ca_fingerprint_der() - ca_fingerprint() of a certificate GnuTLS read
 * from der: the same for every certificate it accepts (it reads strict
 * DER only, which encodes again to the same bytes), without encoding it
 * again. */
int ca_fingerprint_der(const uint8_t *der, size_t len, char out[CA_FPR_HEX_LEN + 1]);

/* ca_crt_parse_all() - every certificate of data (PEM, or one DER), at
 * most CA_CHAIN_MAX * 16. *out is gnutls_malloc'd; deinit each and
 * gnutls_free. Returns 0, CAPF_EBADMSG (none or unparsable), CAPF_ENOMEM. */
int ca_crt_parse_all(const uint8_t *data, size_t len, gnutls_x509_crt_t **out, unsigned *n);

/* ---- files (ca/file.c) ---- */

/* Reads a regular file of at most max bytes, NUL-terminated (free with
 * ca_file_free(), which wipes it). Sets errno and returns -1 on failure. */
int ca_file_read(const char *path, size_t max, gnutls_datum_t *out);
void ca_file_free(gnutls_datum_t *d);

/*
 * ca_file_write() - write data to dir/name atomically: a new temporary
 * file in dir (O_CREAT|O_EXCL, mode), write, fsync, rename over name,
 * fsync dir. Returns 0 or CAPF_EIO / CAPF_ECONFIG with ca_last_error().
 */
int ca_file_write(const char *dir, const char *name, const void *data, size_t len, mode_t mode);

/* ca_fsync_dir() - 0 or -1 (errno). */
int ca_fsync_dir(const char *dir);

/* ca_path() - dir/name into buf; CAPF_ECONFIG when it does not fit. */
int ca_path(char *buf, size_t size, const char *dir, const char *name);

/* ca_path_split() - the directory of path into dir ("." when path has no
 * '/') and *base pointing at its last component in path. CAPF_ECONFIG
 * when dir does not fit or path ends with '/'. Sets no error text. */
int ca_path_split(const char *path, char *dir, size_t dlen, const char **base);

/* ca_mkdir() - mkdir mode 0700 unless it exists as a directory. */
int ca_mkdir(const char *path);

/* ca_rmtree() - remove a directory of plain files (one level). */
int ca_rmtree(const char *path);

/* ---- keys (ca/key.c) ---- */

/*
 * ca_key_open() - the key ref names, with its public key (*pub, which the
 * caller deinits): through the CA's keyops when it has them (then *key is
 * a handle whose signatures go to them), else ca_key_load(). ca may be
 * NULL (local). Returns 0 or CAPF_ECONFIG / CAPF_EIO / ... with
 * ca_last_error().
 */
int ca_key_open(const struct ca *ca, const char *ref, gnutls_privkey_t *key, gnutls_pubkey_t *pub);

/* ca_key_make() - ca_key_generate() through the CA's keyops when it has
 * them; *pub as for ca_key_open(). */
int ca_key_make(const struct ca *ca, int key_type, const char *dir, const char *name,
		gnutls_privkey_t *key, gnutls_pubkey_t *pub);

/* ca_key_dup() - a second handle on key (of public key pub, ref url or
 * NULL for a file) for TLS credentials, which take ownership. */
int ca_key_dup(const struct ca *ca, gnutls_privkey_t key, gnutls_pubkey_t pub, const char *ref,
	       pthread_mutex_t *lock, gnutls_privkey_t *out);

/* ca_key_ops_error() - the code of the last failed keyops signature of
 * this thread (then forgotten), or 0. */
int ca_key_ops_error(void);

/* ca_key_remote() - 1 if key's signatures are made through keyops. */
int ca_key_remote(gnutls_privkey_t key);

/* ca_key_ref() - the ref of a keyops key (owned by the key), else NULL. */
const char *ca_key_ref(gnutls_privkey_t key);

/*
 * ca_key_obtain() - the key of spec for a new CA whose files go to dir:
 * an existing ref (a file that does not exist yet is generated there;
 * either way dir/key.ref records the ref), or a new key file dir/key.pem.
 * *url receives a malloc'd copy of a pkcs11: ref (else NULL).
 */
int ca_key_obtain(const struct ca *ca, const struct ca_keyspec *spec, int default_type,
		  const char *dir, gnutls_privkey_t *out, gnutls_pubkey_t *pub, char **url);

/* ca_key_describe() - key type name and store ("file"/"pkcs11"). */
void ca_key_describe(gnutls_pubkey_t pub, const char *url, char *type, size_t tlen, char *store,
		     size_t slen);

/* ca_key_sign_params() - the hash and signature algorithm capf uses with
 * a key: SHA-256 (SHA-384 for P-384), never weaker. */
int ca_key_sign_params(gnutls_pubkey_t pub, gnutls_digest_algorithm_t *hash,
		       gnutls_sign_algorithm_t *algo);

/* ---- issuers (ca/ca.c) ---- */

/* ca_issuer_sign() - data signed with the issuer's key and sign_algo
 * (*sig gnutls_malloc'd). A key held here is used under sign_lock; a
 * remote key is not (the signer orders its own work). Returns 0 or the
 * GnuTLS error. */
int ca_issuer_sign(struct ca_issuer *is, const gnutls_datum_t *data, gnutls_datum_t *sig);

/* ca_issuer_trusted() - 1 if the issuer is current, or retired with an
 * overlap that has not ended at now. */
int ca_issuer_trusted(const struct ca *ca, const struct ca_issuer *is, time_t now);

/* ---- trust stores (ca/trust.c) ---- */

/* ca_trust_load() - the stores at start: roots from the config file and
 * dir/mfg, chain certificates from dir/chain. */
int ca_trust_load(struct ca *ca, const char *mfg_roots);

/* ca_mic_patterns_parse() - [trust] mic_patterns into ca (mic.c);
 * CAPF_ECONFIG with ca_last_error() for a malformed one. */
int ca_mic_patterns_parse(struct ca *ca, const char *spec);
/* ca_mic_patterns_parse_to() - the same, appended to *arr (*count of them). */
int ca_mic_patterns_parse_to(const char *spec, struct ca_mic_pattern **arr, size_t *count);
void ca_trust_free(struct ca *ca);

/*
 * ca_chain_build() - the path from leaf up to a chain anchor, through the
 * chain store's intermediates: path[0..*n) (gnutls_x509_crt_t borrowed
 * from the store; the last is the anchor). Verifies it at now. Returns 0,
 * CAPF_EUNTRUSTED (no anchor reached: ca_last_error() says to import the
 * chain), CAPF_EEXPIRED. Call with ca->lock held.
 */
int ca_chain_build(struct ca *ca, gnutls_x509_crt_t leaf, time_t now, gnutls_x509_crt_t *path,
		   unsigned *n);

/* ---- DER (ca/der.c) ---- */

/* A growing DER buffer; err sticks at the first failure (CAPF_ENOMEM). */
struct ca_der {
	uint8_t *p;
	size_t len, cap;
	int err;
};

/* ca_der_put() - append raw bytes. */
void ca_der_put(struct ca_der *b, const void *data, size_t n);

/* ca_der_head() - append a tag and a definite length. */
void ca_der_head(struct ca_der *b, uint8_t tag, size_t len);

/* ca_der_wrap() - append tag { inner }, consuming (freeing) inner. */
void ca_der_wrap(struct ca_der *b, uint8_t tag, struct ca_der *inner);

/* ca_der_uint() - append a positive INTEGER of big-endian magnitude bytes. */
void ca_der_uint(struct ca_der *b, const uint8_t *mag, size_t len);

/* ca_der_u64() - append a positive INTEGER. */
void ca_der_u64(struct ca_der *b, uint64_t v);

/* ca_der_time() - append a Time: UTCTime through 2049, GeneralizedTime
 * after (RFC 5280 4.1.2.5). */
void ca_der_time(struct ca_der *b, time_t t);

/* ca_der_sigalg() - append the AlgorithmIdentifier of algo (ECDSA or
 * RSA PKCS#1 v1.5 with SHA-256/384/512); CAPF_ENOTSUP for another. */
int ca_der_sigalg(struct ca_der *b, gnutls_sign_algorithm_t algo);

/* ---- revocation (ca/crl.c) ---- */

void ca_revoked_free(struct ca *ca);

/* ca_crl_init() - read the CRL number of an existing crl.der and the
 * revocation list revoked.txt. */
int ca_crl_init(struct ca *ca);


/* ---- shared by ca.c (generations) and lifecycle.c (rollover, import) ---- */

/* A CA key held while a generation is made: the key, its public key, its
 * ref and, for a PKCS#11 key, its URI. */
struct held_key {
	gnutls_privkey_t key;
	gnutls_pubkey_t pub;
	char *ref;
	char *url;
};

int ca_crt_write(gnutls_x509_crt_t crt, const char *dir, const char *name);
int ca_gen_key_load(const struct ca *ca, const char *gdir, struct held_key *k);
void ca_held_key_clear(struct held_key *k);
int ca_sync_tree_files(const char *dir);

/*
 * ca_issuer_check_key() - can the issuer (with a key) issue what verifies
 * against it? The public half a key file carries is no proof that its
 * private half goes with it (a damaged file can pair the certificate's
 * public key with another private key), and a certificate that passes
 * capf's own checks may still be refused as an issuer by GnuTLS (an
 * unknown critical extension, say): then every LSC it signs would fail
 * to verify. One test certificate, signed with the key and verified
 * against the issuer as ca_lsc_verify() verifies, shows it. For CAs read
 * from the CA directory or imported (a key that just made its
 * certificate needs none). Returns 0, CAPF_ECONFIG (it does not verify),
 * CAPF_ECRYPTO or CAPF_ERETRY (it cannot sign), CAPF_ENOMEM, with
 * ca_last_error() naming where.
 */
int ca_issuer_check_key(struct ca_issuer *is, const char *where);

/*
 * ca_issuer_test_issue() - a test certificate (the issuer's own key, a
 * fixed serial and name, the issuer's validity) encoded as LSCs are,
 * signed with the issuer's key and verified against its certificate
 * (times aside); *status is GnuTLS's verification status. Returns 0,
 * CAPF_ECONFIG (*status says why), CAPF_ECRYPTO / CAPF_ERETRY (no
 * signature), CAPF_ENOMEM.
 */
int ca_issuer_test_issue(struct ca_issuer *is, unsigned *status);

/* ca_clear_error() - forget the text of the last failure (ca_last_error());
 * ca_has_error() - 1 if one was set since. */
void ca_clear_error(void);
int ca_has_error(void);
int ca_issuer_adopt(struct ca_issuer *is, const char *where);
struct ca_issuer *ca_issuer_alloc(void);
void ca_issuer_free(struct ca_issuer *is);
int ca_issuer_key_moved(const struct ca *ca, struct ca_issuer *is, const char *gdir);
void ca_issuer_link(struct ca *ca, struct ca_issuer *is);
void ca_issuer_take_key(struct ca_issuer *is, struct held_key *k);
/* ca_issuer_give_key() - the reverse of ca_issuer_take_key(): the issuer's
 * key into k; ca_held_key_open() - open ref (ca_key_open()) into k
 * (ca/issuer.c). */
void ca_issuer_give_key(struct ca_issuer *is, struct held_key *k);
int ca_held_key_open(const struct ca *ca, const char *ref, struct held_key *k);
int ca_key_matches(gnutls_pubkey_t kpub, gnutls_x509_crt_t crt);
int ca_make_self_signed(struct ca *ca, const struct ca_keyspec *spec, const char *subject, time_t now, struct ca_issuer **out);
int ca_make_tmp_gen(const struct ca *ca, char *tmpdir, size_t size);
int ca_new_key_hash(gnutls_pubkey_t pub, const char *what, gnutls_digest_algorithm_t *hash);
int ca_publish_gen(const struct ca *ca, const char *tmpdir, const char *id);
int ca_write_ca_pem(const struct ca *ca, const struct ca_issuer *is);
int ca_write_current(const char *dir, const char *id);

#endif /* CAPF_CA_INTERNAL_H */
