/*
 * ca/lifecycle.c - the life of CAPF CAs after the first: their status,
 * the enterprise-signed path (a request, then the import of what the
 * enterprise CA signed), rollover to a new self-signed CA, and the trust
 * bundle of every CA still trusted (doc/ca-lifecycle.md).
 */

#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca/internal.h"
#include "proto/capf.pb-c.h"
#include "proto/proto.h"

/* ---- status ------------------------------------------------------------- */

static void dn_text(gnutls_x509_crt_t crt, int issuer, char *buf, size_t len)
{
	gnutls_datum_t dn = {NULL, 0};
	int ret = issuer ? gnutls_x509_crt_get_issuer_dn3(crt, &dn, 0)
			 : gnutls_x509_crt_get_dn3(crt, &dn, 0);

	snprintf(buf, len, "%s", ret >= 0 && dn.data != NULL ? (char *)dn.data : "");
	gnutls_free(dn.data);
}

static void info_fill(const struct ca *ca, const struct ca_issuer *is, struct ca_info *inf)
{
	gnutls_pubkey_t pub = NULL;

	memset(inf, 0, sizeof(*inf));
	snprintf(inf->id, sizeof(inf->id), "%s", is->id);
	dn_text(is->crt, 0, inf->subject, sizeof(inf->subject));
	dn_text(is->crt, 1, inf->issuer, sizeof(inf->issuer));
	ca_fingerprint(is->crt, inf->fingerprint);
	if (gnutls_pubkey_init(&pub) == 0 && gnutls_pubkey_import_x509(pub, is->crt, 0) == 0)
		ca_key_describe(pub, is->key_url, inf->key_type, sizeof(inf->key_type),
				inf->key_store, sizeof(inf->key_store));
	gnutls_pubkey_deinit(pub);
	if (is->key == NULL)
		snprintf(inf->key_store, sizeof(inf->key_store), "unavailable");
	inf->not_before = gnutls_x509_crt_get_activation_time(is->crt);
	inf->not_after = gnutls_x509_crt_get_expiration_time(is->crt);
	inf->current = is == ca->current;
	inf->trusted_until = inf->current ? 0 : is->trusted_until;
	inf->self_signed = gnutls_x509_crt_check_issuer(is->crt, is->crt) != 0;
}

/* The pending request, read from pending/csr.pem. */
static int pending_info(const struct ca *ca, struct ca_info *inf)
{
	char path[PATH_MAX], keyref[PATH_MAX];
	gnutls_datum_t data = {NULL, 0}, dn = {NULL, 0};
	gnutls_x509_crq_t crq = NULL;
	gnutls_pubkey_t pub = NULL;
	struct stat st;
	int ret = CAPF_ENOENT;

	memset(inf, 0, sizeof(*inf));
	if (ca_path(path, sizeof(path), ca->dir, CA_DIR_PENDING "/" CA_FILE_CSR) < 0 ||
	    ca_file_read(path, CA_FILE_MAX, &data) < 0)
		return CAPF_ENOENT;
	if (gnutls_x509_crq_init(&crq) < 0 ||
	    gnutls_x509_crq_import(crq, &data, GNUTLS_X509_FMT_PEM) < 0 ||
	    gnutls_pubkey_init(&pub) < 0 || gnutls_pubkey_import_x509_crq(pub, crq, 0) < 0)
		goto out;
	if (gnutls_x509_crq_get_dn3(crq, &dn, 0) >= 0)
		snprintf(inf->subject, sizeof(inf->subject), "%s", (char *)dn.data);
	ca_path(keyref, sizeof(keyref), ca->dir, CA_DIR_PENDING "/" CA_FILE_KEYREF);
	ca_key_describe(pub, NULL, inf->key_type, sizeof(inf->key_type), inf->key_store,
			sizeof(inf->key_store));
	if (stat(keyref, &st) == 0) {
		gnutls_datum_t ref = {NULL, 0};

		if (ca_file_read(keyref, CA_FILE_MAX, &ref) == 0 &&
		    ca_key_is_url((char *)ref.data))
			snprintf(inf->key_store, sizeof(inf->key_store), "pkcs11");
		ca_file_free(&ref);
	}
	inf->pending = 1;
	if (stat(path, &st) == 0)
		inf->not_before = st.st_mtime;
	ret = 0;
out:
	gnutls_free(dn.data);
	gnutls_pubkey_deinit(pub);
	gnutls_x509_crq_deinit(crq);
	ca_file_free(&data);
	return ret;
}

static int cmp_info(const void *a, const void *b)
{
	const struct ca_info *x = a, *y = b;

	if (x->current != y->current)
		return y->current - x->current;
	return (x->trusted_until > y->trusted_until) - (x->trusted_until < y->trusted_until);
}

int ca_status(struct ca *ca, time_t now, struct ca_info **out, size_t *n)
{
	struct ca_info *list = NULL;
	struct ca_issuer *is;
	size_t count = 0, i = 0;

	*out = NULL;
	*n = 0;
	pthread_rwlock_rdlock(&ca->lock);
	for (is = ca->issuers; is != NULL; is = is->next)
		count++;
	list = calloc(count + 1, sizeof(*list));
	if (list == NULL) {
		pthread_rwlock_unlock(&ca->lock);
		return CAPF_ENOMEM;
	}
	for (is = ca->issuers; is != NULL; is = is->next)
		if (ca_issuer_trusted(ca, is, now))
			info_fill(ca, is, &list[i++]);
	pthread_rwlock_unlock(&ca->lock);
	qsort(list, i, sizeof(*list), cmp_info);
	pthread_mutex_lock(&ca->admin_lock);
	if (pending_info(ca, &list[i]) == 0)
		i++;
	pthread_mutex_unlock(&ca->admin_lock);
	*out = list;
	*n = i;
	return 0;
}

/* ---- enterprise signing: request and import ----------------------------- */

int ca_csr(struct ca *ca, const struct ca_keyspec *spec, const char *subject, char **pem)
{
	gnutls_x509_crq_t crq = NULL;
	gnutls_privkey_t key = NULL;
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t out = {NULL, 0}, cur_dn = {NULL, 0};
	/* ca_csr() signs its request with the new key once; the key is
	 * opened again by ca_import(). */
	gnutls_digest_algorithm_t hash;
	char tmpdir[PATH_MAX] = "", pending[PATH_MAX], old[PATH_MAX] = "";
	char *url = NULL;
	uint8_t ski[CA_KEY_ID_LEN];
	const char *dn_err = NULL;
	int ret;

	if (ca == NULL || pem == NULL)
		return CAPF_EINVAL;
	*pem = NULL;
	ca_clear_error();
	pthread_mutex_lock(&ca->admin_lock);
	if (subject == NULL || subject[0] == '\0') {
		pthread_rwlock_rdlock(&ca->lock);
		ret = gnutls_x509_crt_get_dn3(ca->current->crt, &cur_dn, 0);
		pthread_rwlock_unlock(&ca->lock);
		if (ret < 0) {
			ret = CAPF_ECRYPTO;
			goto out;
		}
		subject = (const char *)cur_dn.data;
	}
	ret = ca_path(pending, sizeof(pending), ca->dir, CA_DIR_PENDING);
	if (ret < 0)
		goto out;
	if (snprintf(tmpdir, sizeof(tmpdir), "%s/.pending-XXXXXX", ca->dir) >= (int)sizeof(tmpdir) ||
	    mkdtemp(tmpdir) == NULL) {
		ca_set_error("cannot create a directory in %s: %s", ca->dir, strerror(errno));
		tmpdir[0] = '\0';
		ret = CAPF_EIO;
		goto out;
	}
	ret = ca_key_obtain(ca, spec, ca->key_type, tmpdir, &key, &pub, &url);
	if (ret < 0)
		goto out;

	ret = ca_new_key_hash(pub, "the key", &hash);
	if (ret < 0)
		goto out;
	CHECK_GNUTLS(gnutls_x509_crq_init(&crq));
	CHECK_GNUTLS(gnutls_x509_crq_set_version(crq, 1));
	if (gnutls_x509_crq_set_dn(crq, subject, &dn_err) < 0) {
		ca_set_error("invalid subject \"%s\" (at \"%s\")", subject,
			     dn_err != NULL ? dn_err : "");
		ret = CAPF_ECONFIG;
		goto out;
	}
	CHECK_GNUTLS(gnutls_x509_crq_set_pubkey(crq, pub));
	/* What the CAPF certificate needs, asked as extensions: the
	 * enterprise CA decides, ca_import() checks. */
	CHECK_GNUTLS(gnutls_x509_crq_set_basic_constraints(crq, 1, 0));
	CHECK_GNUTLS(gnutls_x509_crq_set_key_usage(
	    crq, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN | GNUTLS_KEY_DIGITAL_SIGNATURE));
	ret = ca_key_id(pub, ski);
	if (ret < 0)
		goto out;
	{
		/* GnuTLS has no setter for a request's SKI: the extension's
		 * value is an OCTET STRING of the identifier. */
		uint8_t ext[2 + CA_KEY_ID_LEN] = {0x04, CA_KEY_ID_LEN};
		gnutls_datum_t d = {ext, sizeof(ext)};

		memcpy(ext + 2, ski, sizeof(ski));
		CHECK_GNUTLS(gnutls_x509_crq_set_extension_by_oid(crq, "2.5.29.14", d.data,
								   d.size, 0));
	}
	ret = gnutls_x509_crq_privkey_sign(crq, key, hash, 0);
	if (ret < 0) {
		ca_set_error("cannot sign the request: %s", gnutls_strerror(ret));
		ret = CAPF_ECRYPTO;
		goto out;
	}
	CHECK_GNUTLS(gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_PEM, &out));
	ret = ca_file_write(tmpdir, CA_FILE_CSR, out.data, out.size, 0644);
	if (ret < 0)
		goto out;

	/* Replace the pending request: the old one moves aside, the new one
	 * takes its name, then the old one goes. */
	snprintf(old, sizeof(old), "%s/.pending-old", ca->dir);
	ca_rmtree(old);
	if (rename(pending, old) < 0 && errno != ENOENT) {
		ca_set_error("cannot replace %s: %s", pending, strerror(errno));
		old[0] = '\0';
		ret = CAPF_EIO;
		goto out;
	}
	if (ca_sync_tree_files(tmpdir) < 0 || rename(tmpdir, pending) < 0 ||
	    ca_fsync_dir(ca->dir) < 0) {
		ca_set_error("cannot create %s: %s", pending, strerror(errno));
		ret = CAPF_EIO;
		goto out;
	}
	tmpdir[0] = '\0';
	*pem = malloc(out.size + 1);
	if (*pem == NULL) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	memcpy(*pem, out.data, out.size);
	(*pem)[out.size] = '\0';
	ret = 0;
out:
	if (old[0] != '\0')
		ca_rmtree(old);
	if (tmpdir[0] != '\0')
		ca_rmtree(tmpdir);
	pthread_mutex_unlock(&ca->admin_lock);
	gnutls_free(out.data);
	gnutls_free(cur_dn.data);
	gnutls_x509_crq_deinit(crq);
	gnutls_pubkey_deinit(pub);
	gnutls_privkey_deinit(key);
	if (url != NULL) {
		gnutls_memset(url, 0, strlen(url));
		free(url);
	}
	return ret;
}

/* Writes gen/<id>/until for a CA leaving office. */
static int write_until(const struct ca *ca, const char *id, time_t until)
{
	char gdir[PATH_MAX], rel[64], text[32];
	int n;

	snprintf(rel, sizeof(rel), CA_DIR_GEN "/%s", id);
	if (ca_path(gdir, sizeof(gdir), ca->dir, rel) < 0)
		return CAPF_ECONFIG;
	n = snprintf(text, sizeof(text), "%" PRId64 "\n", (int64_t)until);
	return ca_file_write(gdir, CA_FILE_UNTIL, text, (size_t)n, 0644);
}

/*
 * Makes is (already in gen/<id>) the current CA: the old one is retired
 * with an overlap of overlap_days (never beyond its own expiry), then the
 * "current" link moves. In memory the swap happens under the write lock.
 */
static int switch_to(struct ca *ca, struct ca_issuer *is, unsigned overlap_days, time_t now)
{
	struct ca_issuer *old = ca->current;
	time_t until, expiry;
	int ret;

	if (overlap_days == 0)
		overlap_days = ca->overlap_days;
	until = now + (time_t)overlap_days * 86400;
	expiry = gnutls_x509_crt_get_expiration_time(old->crt);
	if (expiry != (time_t)-1 && until > expiry)
		until = expiry;
	ret = write_until(ca, old->id, until);
	if (ret < 0)
		return ret;
	ret = ca_write_current(ca->dir, is->id);
	if (ret < 0)
		return ret;
	pthread_rwlock_wrlock(&ca->lock);
	old->retired = 1;
	old->trusted_until = until;
	ca_issuer_link(ca, is);
	ca->current = is;
	pthread_rwlock_unlock(&ca->lock);
	/* ca.pem is a convenience copy: the link above is what counts. */
	if (ca_write_ca_pem(ca, is) < 0)
		return 0;
	return 0;
}

int ca_rollover(struct ca *ca, const struct ca_keyspec *spec, const char *subject,
		unsigned overlap_days, time_t now, char id[CA_ID_HEX_MAX + 1])
{
	struct ca_issuer *is = NULL;
	gnutls_datum_t cur_dn = {NULL, 0};
	int ret;

	if (ca == NULL)
		return CAPF_EINVAL;
	ca_clear_error();
	if (overlap_days > CA_MAX_DAYS) {
		ca_set_error("overlap too long: at most %u days", CA_MAX_DAYS);
		return CAPF_EINVAL;
	}
	pthread_mutex_lock(&ca->admin_lock);
	if ((subject == NULL || subject[0] == '\0') && ca->subject_auto) {
		subject = NULL; /* a new generation, a new name */
	} else if (subject == NULL || subject[0] == '\0') {
		pthread_rwlock_rdlock(&ca->lock);
		ret = gnutls_x509_crt_get_dn3(ca->current->crt, &cur_dn, 0);
		pthread_rwlock_unlock(&ca->lock);
		if (ret < 0) {
			ret = CAPF_ECRYPTO;
			goto out;
		}
		subject = (const char *)cur_dn.data;
	}
	ret = ca_make_self_signed(ca, spec, subject, now, &is);
	if (ret < 0)
		goto out;
	if (id != NULL)
		snprintf(id, CA_ID_HEX_MAX + 1, "%s", is->id);
	ret = switch_to(ca, is, overlap_days, now);
	if (ret < 0)
		goto out;
	is = NULL;
	ret = 0;
out:
	pthread_mutex_unlock(&ca->admin_lock);
	ca_issuer_free(is);
	gnutls_free(cur_dn.data);
	return ret;
}

/* The hashes an imported CAPF certificate may be signed with. */
static int sig_acceptable(gnutls_x509_crt_t crt)
{
	int sig = gnutls_x509_crt_get_signature_algorithm(crt);

	switch (gnutls_sign_get_hash_algorithm((gnutls_sign_algorithm_t)sig)) {
	case GNUTLS_DIG_SHA256:
	case GNUTLS_DIG_SHA384:
	case GNUTLS_DIG_SHA512:
		return 1;
	default:
		return 0;
	}
}

int ca_import(struct ca *ca, const uint8_t *data, size_t len, unsigned overlap_days, time_t now)
{
	gnutls_x509_crt_t *certs = NULL, path[CA_CHAIN_MAX];
	unsigned ncerts = 0, npath = 0, i;
	struct ca_issuer *is = NULL;
	struct held_key k = {0};
	char pending[PATH_MAX], tmpdir[PATH_MAX] = "", src[PATH_MAX] = "", dst[PATH_MAX] = "";
	char *chain_pem = NULL;
	size_t chain_pem_len = 0;
	unsigned usage = 0;
	int ret;

	if (ca == NULL)
		return CAPF_EINVAL;
	ca_clear_error();
	if (overlap_days > CA_MAX_DAYS) {
		ca_set_error("overlap too long: at most %u days", CA_MAX_DAYS);
		return CAPF_EINVAL;
	}
	ret = ca_crt_parse_all(data, len, &certs, &ncerts);
	if (ret < 0) {
		ca_set_error("no certificate in the file (PEM or DER expected)");
		return ret;
	}
	pthread_mutex_lock(&ca->admin_lock);
	ret = ca_path(pending, sizeof(pending), ca->dir, CA_DIR_PENDING);
	if (ret < 0)
		goto out;
	if (access(pending, F_OK) < 0) {
		ca_set_error("no pending request: make one with 'capfctl ca csr' and have it "
			     "signed first");
		ret = CAPF_ENOENT;
		goto out;
	}

	/* 1. The chain: to an anchor the admin imported. */
	pthread_rwlock_rdlock(&ca->lock);
	ret = ca_chain_build(ca, certs[0], now, path, &npath);
	if (ret == 0) {
		/* Keep copies: the store may change once the lock is gone. */
		gnutls_datum_t one = {NULL, 0};

		for (i = 0; i < npath && ret == 0; i++) {
			if (gnutls_x509_crt_export2(path[i], GNUTLS_X509_FMT_PEM, &one) < 0) {
				ret = CAPF_ENOMEM;
				break;
			}
			ret = ca_text_append(&chain_pem, &chain_pem_len, &one);
			gnutls_free(one.data);
			one.data = NULL;
		}
	}
	pthread_rwlock_unlock(&ca->lock);
	if (ret < 0)
		goto out;

	/* 2. The key: the pending request's. */
	ret = ca_gen_key_load(ca, pending, &k);
	if (ret < 0)
		goto out;
	if (!ca_key_matches(k.pub, certs[0])) {
		ca_set_error("the certificate's key is not the key of the pending request (made "
			     "by 'capfctl ca csr'); was it issued for another request?");
		ret = CAPF_EPOLICY;
		goto out;
	}

	/* 3. A CA that may sign certificates, with a modern signature, valid now. */
	if (gnutls_x509_crt_get_ca_status(certs[0], NULL) <= 0) {
		ca_set_error("the certificate is not a CA certificate (basicConstraints CA:TRUE "
			     "missing): ask the enterprise CA for a subordinate CA certificate");
		ret = CAPF_EPOLICY;
		goto out;
	}
	if (gnutls_x509_crt_get_key_usage(certs[0], &usage, NULL) >= 0) {
		/* The CAPF certificate does three jobs: it signs LSCs, it
		 * signs the CRLs, and it is the TLS server certificate. A
		 * certificate that cannot do one of them would break it after
		 * the import. (No keyUsage at all allows every use.) */
		const char *missing = !(usage & GNUTLS_KEY_KEY_CERT_SIGN) ? "keyCertSign"
				      : !(usage & GNUTLS_KEY_CRL_SIGN)	  ? "cRLSign"
				      : !(usage & GNUTLS_KEY_DIGITAL_SIGNATURE)
					  ? "digitalSignature"
					  : NULL;
		if (missing != NULL) {
			ca_set_error("the certificate's keyUsage lacks %s: a CAPF certificate signs "
				     "LSCs (keyCertSign), CRLs (cRLSign) and TLS handshakes "
				     "(digitalSignature); ask the enterprise CA for all three",
				     missing);
			ret = CAPF_EPOLICY;
			goto out;
		}
	}
	if (!sig_acceptable(certs[0])) {
		ca_set_error("the certificate is signed with a hash weaker than SHA-256");
		ret = CAPF_EPOLICY;
		goto out;
	}
	{
		/* The serial names the CA generation (gen/<serial>): RFC 5280
		 * allows 20 bytes at most. Checked before anything moves. */
		uint8_t serial[CA_SERIAL_MAX + 1];
		size_t serial_len = sizeof(serial);

		if (gnutls_x509_crt_get_serial(certs[0], serial, &serial_len) < 0 ||
		    serial_len == 0 || serial_len > CA_SERIAL_MAX) {
			ca_set_error("the certificate's serial number is empty or longer than %u "
				     "bytes (RFC 5280): ask the enterprise CA for another",
				     CA_SERIAL_MAX);
			ret = CAPF_EPOLICY;
			goto out;
		}
	}
	ret = ca_check_time(certs[0], now);
	if (ret < 0) {
		ca_set_error("the certificate is not valid now (expired or not yet valid)");
		ret = CAPF_EEXPIRED;
		goto out;
	}

	/* Build gen/<id>: certificate, chain, and the pending key moved in. */
	ret = ca_make_tmp_gen(ca, tmpdir, sizeof(tmpdir));
	if (ret < 0)
		goto out;
	ret = ca_crt_write(certs[0], tmpdir, CA_FILE_CERT);
	if (ret < 0)
		goto out;
	if (chain_pem_len > 0) {
		ret = ca_file_write(tmpdir, CA_FILE_CHAIN, chain_pem, chain_pem_len, 0644);
		if (ret < 0)
			goto out;
	}
	ret = ca_path(src, sizeof(src), pending, k.url != NULL ? CA_FILE_KEYREF : CA_FILE_KEY);
	if (ret == 0 && access(src, F_OK) < 0)
		ret = ca_path(src, sizeof(src), pending, CA_FILE_KEYREF);
	if (ret == 0)
		ret = ca_path(dst, sizeof(dst), tmpdir, strrchr(src, '/') + 1);
	if (ret < 0)
		goto out;
	if (rename(src, dst) < 0 || ca_fsync_dir(tmpdir) < 0 || ca_fsync_dir(pending) < 0) {
		ca_set_error("cannot move the pending key: %s", strerror(errno));
		ret = CAPF_EIO;
		goto out;
	}
	is = ca_issuer_alloc();
	if (is == NULL) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	/* The issuer takes the parsed certificate over. */
	is->crt = certs[0];
	certs[0] = NULL;
	ca_issuer_take_key(is, &k);
	ret = ca_issuer_adopt(is, "the imported certificate");
	if (ret == 0)
		ret = ca_issuer_check_key(is, "the imported certificate");
	if (ret < 0)
		goto out;
	if (chain_pem_len > 0) {
		ret = ca_crt_parse_all((const uint8_t *)chain_pem, chain_pem_len, &is->chain,
				       &is->chain_len);
		if (ret < 0)
			goto out;
	}
	ret = ca_publish_gen(ca, tmpdir, is->id);
	if (ret < 0) {
		/* Put the key back where the request can still use it. */
		rename(dst, src);
		goto out;
	}
	tmpdir[0] = '\0';
	if (strcmp(strrchr(src, '/') + 1, CA_FILE_KEY) == 0) {
		/* The key file moved with the directory: its ref follows. */
		char gdir[PATH_MAX], rel[64];

		snprintf(rel, sizeof(rel), CA_DIR_GEN "/%s", is->id);
		ret = ca_path(gdir, sizeof(gdir), ca->dir, rel);
		if (ret == 0)
			ret = ca_issuer_key_moved(ca, is, gdir);
		if (ret < 0)
			goto out;
	}
	ret = switch_to(ca, is, overlap_days, now);
	if (ret < 0)
		goto out;
	is = NULL;
	ca_rmtree(pending);
	ca_fsync_dir(ca->dir);
	ret = 0;
out:
	if (tmpdir[0] != '\0') {
		if (access(dst, F_OK) == 0)
			rename(dst, src);
		ca_rmtree(tmpdir);
	}
	pthread_mutex_unlock(&ca->admin_lock);
	ca_issuer_free(is);
	ca_held_key_clear(&k);
	free(chain_pem);
	for (i = 0; i < ncerts; i++)
		if (certs[i] != NULL)
			gnutls_x509_crt_deinit(certs[i]);
	gnutls_free(certs);
	return ret;
}

/* ---- the trust bundle --------------------------------------------------- */

/* Appends crt to list unless a certificate with its fingerprint is there. */
static int bundle_add(gnutls_x509_crt_t crt, gnutls_x509_crt_t *list, char (*fprs)[CA_FPR_HEX_LEN + 1],
		      unsigned *n, unsigned max)
{
	char fpr[CA_FPR_HEX_LEN + 1];
	unsigned i;

	if (ca_fingerprint(crt, fpr) < 0)
		return CAPF_ECRYPTO;
	for (i = 0; i < *n; i++)
		if (strcmp(fprs[i], fpr) == 0)
			return 0;
	if (*n >= max)
		return CAPF_ERANGE;
	list[*n] = crt;
	memcpy(fprs[*n], fpr, sizeof(fpr));
	(*n)++;
	return 0;
}

int ca_bundle(struct ca *ca, time_t now, int pem, uint8_t **out, size_t *len)
{
	enum { MAX = 256 };
	gnutls_x509_crt_t list[MAX];
	char(*f)[CA_FPR_HEX_LEN + 1] = NULL;
	gnutls_pkcs7_t p7 = NULL;
	gnutls_datum_t one = {NULL, 0};
	struct ca_issuer *is;
	char *buf = NULL;
	size_t size = 0;
	unsigned n = 0, i, k;
	int ret = 0;

	if (ca == NULL || out == NULL || len == NULL)
		return CAPF_EINVAL;
	*out = NULL;
	*len = 0;
	f = calloc(MAX, sizeof(*f));
	if (f == NULL)
		return CAPF_ENOMEM;
	pthread_rwlock_rdlock(&ca->lock);
	/* The current CA first, then the others still trusted, each
	 * followed by its issuing chain. */
	for (k = 0; k < 2 && ret == 0; k++) {
		for (is = ca->issuers; is != NULL && ret == 0; is = is->next) {
			if ((k == 0) != (is == ca->current) || !ca_issuer_trusted(ca, is, now))
				continue;
			ret = bundle_add(is->crt, list, f, &n, MAX);
			for (i = 0; i < is->chain_len && ret == 0; i++)
				ret = bundle_add(is->chain[i], list, f, &n, MAX);
		}
	}
	if (ret < 0)
		goto out;
	if (pem) {
		for (i = 0; i < n; i++) {
			CHECK_GNUTLS(gnutls_x509_crt_export2(list[i], GNUTLS_X509_FMT_PEM, &one));
			ret = ca_text_append(&buf, &size, &one);
			if (ret < 0)
				goto out;
			gnutls_free(one.data);
			one.data = NULL;
		}
	} else {
		CHECK_GNUTLS(gnutls_pkcs7_init(&p7));
		for (i = 0; i < n; i++)
			CHECK_GNUTLS(gnutls_pkcs7_set_crt(p7, list[i]));
		CHECK_GNUTLS(gnutls_pkcs7_export2(p7, GNUTLS_X509_FMT_DER, &one));
		buf = malloc(one.size);
		if (buf == NULL) {
			ret = CAPF_ENOMEM;
			goto out;
		}
		memcpy(buf, one.data, one.size);
		size = one.size;
	}
	*out = (uint8_t *)buf;
	*len = size;
	buf = NULL;
	ret = 0;
out:
	pthread_rwlock_unlock(&ca->lock);
	if (p7 != NULL)
		gnutls_pkcs7_deinit(p7);
	gnutls_free(one.data);
	free(buf);
	free(f);
	return ret;
}
