/*
 * ca/ca.c - the CAPF CA lifecycle: create or load the CA certificate and
 * key, load the manufacturer roots, hand the CA to TLS.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca/internal.h"

#define CA_KEY_FILE "ca.key"
#define CA_CRT_FILE "ca.pem"
#define CA_FILE_MAX (64u * 1024u)	  /* ca.pem or ca.key */
#define CA_ROOTS_MAX (4u * 1024u * 1024u) /* a manufacturer roots bundle */

static _Thread_local char last_error[512];

/* The message for ca_last_error(). It never contains key material: only
 * file names, system error texts and GnuTLS error texts. */
__attribute__((format(printf, 1, 2))) static void set_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
}

const char *ca_last_error(void)
{
	return last_error[0] != '\0' ? last_error : "no error";
}

int ca_gnutls_err(int gnutls_ret)
{
	if (gnutls_ret == GNUTLS_E_MEMORY_ERROR)
		return CAPF_ENOMEM;
	return CAPF_ECRYPTO;
}

int ca_key_id(gnutls_pubkey_t pub, uint8_t out[CA_KEY_ID_LEN])
{
	uint8_t id[64];
	size_t id_len = sizeof(id);
	int ret;

	/*
	 * RFC 5280 4.2.1.2 lets the CA choose how key identifiers are
	 * derived; a truncated SHA-256 of the whole SubjectPublicKeyInfo is
	 * unique per key and avoids SHA-1.
	 */
	ret = gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA256, id, &id_len);
	if (ret < 0)
		return ca_gnutls_err(ret);
	if (id_len < CA_KEY_ID_LEN)
		return CAPF_ECRYPTO;
	memcpy(out, id, CA_KEY_ID_LEN);
	return 0;
}

int ca_random_serial(uint8_t serial[CA_SERIAL_LEN])
{
	int ret;

	/*
	 * A positive INTEGER whose first byte is neither 0x00 nor has its
	 * top bit set is encoded in exactly CA_SERIAL_LEN bytes of DER:
	 * 127 random bits, above the 64 that RFC 5280 practice asks for.
	 */
	do {
		ret = gnutls_rnd(GNUTLS_RND_NONCE, serial, CA_SERIAL_LEN);
		if (ret < 0)
			return ca_gnutls_err(ret);
		serial[0] &= 0x7f;
	} while (serial[0] == 0);
	return 0;
}

/* Reads a whole regular file of at most max bytes into a malloc'd buffer
 * with a NUL after the data. Sets errno and returns -1 on failure. */
static int read_file(const char *path, size_t max, gnutls_datum_t *out)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t size = 0, done = 0;
	int fd = -1;
	int saved;

	out->data = NULL;
	out->size = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	if ((uintmax_t)st.st_size > max) {
		errno = EFBIG;
		goto fail;
	}
	size = (size_t)st.st_size;
	buf = malloc(size + 1);
	if (buf == NULL)
		goto fail;
	while (done < size) {
		ssize_t n = read(fd, buf + done, size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	buf[done] = '\0';
	close(fd);
	out->data = buf;
	out->size = (unsigned)done;
	return 0;
fail:
	saved = errno;
	if (buf != NULL) {
		gnutls_memset(buf, 0, size + 1);
		free(buf);
	}
	if (fd >= 0)
		close(fd);
	errno = saved;
	return -1;
}

/* Frees a buffer of read_file() that may have held a key, wiping it. */
static void free_file(gnutls_datum_t *d)
{
	if (d->data != NULL) {
		gnutls_memset(d->data, 0, d->size);
		free(d->data);
	}
	d->data = NULL;
	d->size = 0;
}

static int fsync_dir(const char *dir)
{
	int fd, ret = 0;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fsync(fd) < 0)
		ret = -1;
	close(fd);
	return ret;
}

/*
 * Writes data to a new temporary file next to final (created with
 * O_CREAT|O_EXCL by mkostemp, so never someone else's file) with the
 * given mode, and fsyncs it. The caller renames it into place. tmp
 * receives the temporary path.
 */
static int write_temp(const char *dir, const char *name, const void *data, size_t len, mode_t mode,
		      char *tmp, size_t tmp_size)
{
	const uint8_t *p = data;
	int fd = -1;
	int n;

	n = snprintf(tmp, tmp_size, "%s/.%s.XXXXXX", dir, name);
	if (n < 0 || (size_t)n >= tmp_size) {
		set_error("CA directory path too long: %s", dir);
		return CAPF_ECONFIG;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		set_error("cannot create a file in %s: %s", dir, strerror(errno));
		tmp[0] = '\0';
		return CAPF_EIO;
	}
	if (fchmod(fd, mode) < 0)
		goto fail;
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			goto fail;
		p += w;
		len -= (size_t)w;
	}
	if (fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	return 0;
fail:
	set_error("cannot write %s/%s: %s", dir, name, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	tmp[0] = '\0';
	return CAPF_EIO;
}

/* Builds dir/name into buf; CAPF_ECONFIG when it does not fit. */
static int join_path(char *buf, size_t size, const char *dir, const char *name)
{
	int n = snprintf(buf, size, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= size) {
		set_error("CA directory path too long: %s", dir);
		return CAPF_ECONFIG;
	}
	return 0;
}

/*
 * Makes a new self-signed CAPF CA: a P-256 key and a v3 certificate, both
 * written to the CA directory. On success *key holds the key and *crt_pem
 * the certificate (gnutls_free).
 */
static int create_ca(const struct ca_config *cfg, gnutls_privkey_t *key, gnutls_datum_t *crt_pem)
{
	gnutls_x509_privkey_t xkey = NULL;
	gnutls_privkey_t pkey = NULL;
	gnutls_pubkey_t pub = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t key_pem = {NULL, 0};
	gnutls_datum_t pem = {NULL, 0};
	uint8_t serial[CA_SERIAL_LEN];
	uint8_t ski[CA_KEY_ID_LEN];
	char key_tmp[PATH_MAX] = "", crt_tmp[PATH_MAX] = "";
	char key_path[PATH_MAX], crt_path[PATH_MAX];
	const char *subject = cfg->subject != NULL ? cfg->subject : CA_DEFAULT_SUBJECT;
	unsigned days = cfg->ca_days != 0 ? cfg->ca_days : CA_DEFAULT_CA_DAYS;
	const char *dn_err = NULL;
	time_t now = time(NULL);
	int ret;

	ret = join_path(key_path, sizeof(key_path), cfg->dir, CA_KEY_FILE);
	if (ret < 0)
		goto out;
	ret = join_path(crt_path, sizeof(crt_path), cfg->dir, CA_CRT_FILE);
	if (ret < 0)
		goto out;

	CHECK_GNUTLS(gnutls_x509_privkey_init(&xkey));
	CHECK_GNUTLS(gnutls_x509_privkey_generate(
	    xkey, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0));
	CHECK_GNUTLS(gnutls_x509_privkey_export2_pkcs8(xkey, GNUTLS_X509_FMT_PEM, NULL,
						       GNUTLS_PKCS_PLAIN, &key_pem));
	CHECK_GNUTLS(gnutls_privkey_init(&pkey));
	CHECK_GNUTLS(gnutls_privkey_import_x509(pkey, xkey, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE));
	xkey = NULL; /* owned by pkey now */
	CHECK_GNUTLS(gnutls_pubkey_init(&pub));
	CHECK_GNUTLS(gnutls_pubkey_import_privkey(pub, pkey, 0, 0));

	CHECK_GNUTLS(gnutls_x509_crt_init(&crt));
	CHECK_GNUTLS(gnutls_x509_crt_set_version(crt, 3));
	ret = ca_random_serial(serial);
	if (ret < 0)
		goto out;
	CHECK_GNUTLS(gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)));
	CHECK_GNUTLS(gnutls_x509_crt_set_activation_time(crt, now - CA_BACKDATE_SECONDS));
	CHECK_GNUTLS(gnutls_x509_crt_set_expiration_time(crt, now + (time_t)days * 86400));
	if (gnutls_x509_crt_set_dn(crt, subject, &dn_err) < 0) {
		set_error("invalid CA subject \"%s\" (at \"%s\")", subject,
			  dn_err != NULL ? dn_err : "");
		ret = CAPF_ECONFIG;
		goto out;
	}
	CHECK_GNUTLS(gnutls_x509_crt_set_pubkey(crt, pub));
	CHECK_GNUTLS(gnutls_x509_crt_set_basic_constraints(crt, 1, 0));
	CHECK_GNUTLS(gnutls_x509_crt_set_key_usage(
	    crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN | GNUTLS_KEY_DIGITAL_SIGNATURE));
	ret = ca_key_id(pub, ski);
	if (ret < 0)
		goto out;
	CHECK_GNUTLS(gnutls_x509_crt_set_subject_key_id(crt, ski, sizeof(ski)));
	CHECK_GNUTLS(gnutls_x509_crt_privkey_sign(crt, crt, pkey, GNUTLS_DIG_SHA256, 0));
	CHECK_GNUTLS(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem));

	/*
	 * Both files are complete and durable under temporary names before
	 * either takes its real name, so a crash leaves at worst one of the
	 * two, which ca_new() reports instead of silently making a new CA.
	 */
	ret = write_temp(cfg->dir, CA_KEY_FILE, key_pem.data, key_pem.size, 0600, key_tmp,
			 sizeof(key_tmp));
	if (ret < 0)
		goto out;
	ret = write_temp(cfg->dir, CA_CRT_FILE, pem.data, pem.size, 0644, crt_tmp, sizeof(crt_tmp));
	if (ret < 0)
		goto out;
	if (rename(key_tmp, key_path) < 0) {
		set_error("cannot create %s: %s", key_path, strerror(errno));
		ret = CAPF_EIO;
		goto out;
	}
	key_tmp[0] = '\0';
	if (rename(crt_tmp, crt_path) < 0) {
		set_error("cannot create %s: %s", crt_path, strerror(errno));
		ret = CAPF_EIO;
		goto out;
	}
	crt_tmp[0] = '\0';
	if (fsync_dir(cfg->dir) < 0) {
		set_error("cannot sync CA directory %s: %s", cfg->dir, strerror(errno));
		ret = CAPF_EIO;
		goto out;
	}

	*key = pkey;
	pkey = NULL;
	*crt_pem = pem;
	pem.data = NULL;
	ret = 0;
out:
	if (ret < 0 && last_error[0] == '\0')
		set_error("cannot create the CA in %s: %s", cfg->dir, capf_strerror(ret));
	if (key_tmp[0] != '\0')
		unlink(key_tmp);
	if (crt_tmp[0] != '\0')
		unlink(crt_tmp);
	if (key_pem.data != NULL) {
		gnutls_memset(key_pem.data, 0, key_pem.size);
		gnutls_free(key_pem.data);
	}
	gnutls_free(pem.data);
	gnutls_x509_crt_deinit(crt);
	gnutls_pubkey_deinit(pub);
	gnutls_privkey_deinit(pkey);
	gnutls_x509_privkey_deinit(xkey);
	return ret;
}

/* Loads ca.key and ca.pem of an existing CA. */
static int load_ca(const char *key_path, const char *crt_path, gnutls_privkey_t *key,
		   gnutls_datum_t *crt_pem)
{
	gnutls_datum_t kd = {NULL, 0}, cd = {NULL, 0};
	gnutls_privkey_t pkey = NULL;
	int ret;

	if (read_file(key_path, CA_FILE_MAX, &kd) < 0) {
		set_error("cannot read CA key %s: %s", key_path, strerror(errno));
		ret = CAPF_EIO;
		goto out;
	}
	if (read_file(crt_path, CA_FILE_MAX, &cd) < 0) {
		set_error("cannot read CA certificate %s: %s", crt_path, strerror(errno));
		ret = CAPF_EIO;
		goto out;
	}
	CHECK_GNUTLS(gnutls_privkey_init(&pkey));
	ret = gnutls_privkey_import_x509_raw(pkey, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (ret < 0) {
		set_error("CA key %s is not a PEM private key: %s", key_path, gnutls_strerror(ret));
		ret = CAPF_ECONFIG;
		goto out;
	}
	/* gnutls_free must be able to release what the caller gets, so the
	 * certificate text moves to a gnutls_malloc'd copy. */
	crt_pem->data = gnutls_malloc(cd.size + 1);
	if (crt_pem->data == NULL) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	memcpy(crt_pem->data, cd.data, cd.size + 1);
	crt_pem->size = cd.size;
	*key = pkey;
	pkey = NULL;
	ret = 0;
out:
	gnutls_privkey_deinit(pkey);
	free_file(&kd);
	free_file(&cd);
	return ret;
}

/*
 * Parses the CA certificate, checks it against the key and that it is a
 * CA, and fills the derived fields of ca (DER, PEM, SKI, hash).
 */
static int adopt_ca(struct ca *ca, const char *crt_path, const gnutls_datum_t *crt_pem)
{
	gnutls_pubkey_t kpub = NULL, cpub = NULL;
	gnutls_datum_t pem = {NULL, 0};
	uint8_t kid[CA_KEY_ID_LEN], cid[CA_KEY_ID_LEN];
	unsigned usage = 0, mand = 0;
	size_t ski_len;
	int ret;

	CHECK_GNUTLS(gnutls_x509_crt_init(&ca->crt));
	ret = gnutls_x509_crt_import(ca->crt, crt_pem, GNUTLS_X509_FMT_PEM);
	if (ret < 0) {
		set_error("CA certificate %s is not a PEM certificate: %s", crt_path,
			  gnutls_strerror(ret));
		ret = CAPF_ECONFIG;
		goto out;
	}
	CHECK_GNUTLS(gnutls_pubkey_init(&kpub));
	CHECK_GNUTLS(gnutls_pubkey_init(&cpub));
	CHECK_GNUTLS(gnutls_pubkey_import_privkey(kpub, ca->key, 0, 0));
	CHECK_GNUTLS(gnutls_pubkey_import_x509(cpub, ca->crt, 0));
	ret = ca_key_id(kpub, kid);
	if (ret < 0)
		goto out;
	ret = ca_key_id(cpub, cid);
	if (ret < 0)
		goto out;
	if (memcmp(kid, cid, sizeof(kid)) != 0) {
		set_error("CA key does not match the CA certificate %s", crt_path);
		ret = CAPF_ECONFIG;
		goto out;
	}
	if (gnutls_x509_crt_get_ca_status(ca->crt, NULL) <= 0) {
		set_error(
		    "CA certificate %s is not a CA certificate (basicConstraints CA:TRUE missing)",
		    crt_path);
		ret = CAPF_ECONFIG;
		goto out;
	}
	if (gnutls_x509_crt_get_key_usage(ca->crt, &usage, NULL) >= 0 &&
	    !(usage & GNUTLS_KEY_KEY_CERT_SIGN)) {
		set_error("CA certificate %s does not allow certificate signing (keyUsage)",
			  crt_path);
		ret = CAPF_ECONFIG;
		goto out;
	}

	/* Keep the CA's own SKI for the AKI of LSCs; a certificate from an
	 * enterprise CA may lack one, then derive it as for new keys. */
	ski_len = sizeof(ca->ski);
	ret = gnutls_x509_crt_get_subject_key_id(ca->crt, ca->ski, &ski_len, NULL);
	if (ret >= 0 && ski_len > 0) {
		ca->ski_len = ski_len;
	} else {
		memcpy(ca->ski, cid, sizeof(cid));
		ca->ski_len = sizeof(cid);
	}

	/* SHA-256 for P-256 and RSA, SHA-384 for P-384: what the key
	 * prefers, never weaker than SHA-256. */
	ca->sign_hash = GNUTLS_DIG_SHA256;
	if (gnutls_pubkey_get_preferred_hash_algorithm(cpub, &ca->sign_hash, &mand) < 0 ||
	    ca->sign_hash == GNUTLS_DIG_SHA1 || ca->sign_hash == GNUTLS_DIG_SHA224 ||
	    ca->sign_hash == GNUTLS_DIG_MD5 || ca->sign_hash == GNUTLS_DIG_UNKNOWN)
		ca->sign_hash = GNUTLS_DIG_SHA256;

	CHECK_GNUTLS(gnutls_x509_crt_export2(ca->crt, GNUTLS_X509_FMT_DER, &ca->der));
	CHECK_GNUTLS(gnutls_x509_crt_export2(ca->crt, GNUTLS_X509_FMT_PEM, &pem));
	ca->pem = malloc(pem.size + 1);
	if (ca->pem == NULL) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	memcpy(ca->pem, pem.data, pem.size);
	ca->pem[pem.size] = '\0';
	ret = 0;
out:
	gnutls_free(pem.data);
	gnutls_pubkey_deinit(kpub);
	gnutls_pubkey_deinit(cpub);
	return ret;
}

/* Loads the manufacturer roots bundle into ca->roots and ca->root_crts. */
static int load_roots(struct ca *ca, const char *path)
{
	gnutls_datum_t data = {NULL, 0};
	int ret;

	if (read_file(path, CA_ROOTS_MAX, &data) < 0) {
		set_error("cannot read manufacturer roots %s: %s", path, strerror(errno));
		ret = CAPF_ECONFIG;
		goto out;
	}
	ret = gnutls_x509_crt_list_import2(&ca->root_crts, &ca->root_count, &data,
					   GNUTLS_X509_FMT_PEM, 0);
	if (ret < 0 || ca->root_count == 0) {
		set_error("manufacturer roots %s: %s", path,
			  ret < 0 ? gnutls_strerror(ret) : "no certificate found");
		ret = CAPF_ECONFIG;
		goto out;
	}
	CHECK_GNUTLS(gnutls_x509_trust_list_init(&ca->roots, 0));
	ret =
	    gnutls_x509_trust_list_add_trust_mem(ca->roots, &data, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
	if (ret <= 0) {
		set_error("manufacturer roots %s: %s", path,
			  ret < 0 ? gnutls_strerror(ret) : "no certificate found");
		ret = CAPF_ECONFIG;
		goto out;
	}
	ret = 0;
out:
	free(data.data);
	return ret;
}

int ca_new(struct ca **out, const struct ca_config *cfg)
{
	struct ca *ca = NULL;
	gnutls_datum_t crt_pem = {NULL, 0};
	char key_path[PATH_MAX], crt_path[PATH_MAX];
	struct stat st;
	int have_key, have_crt;
	int ret;

	last_error[0] = '\0';
	if (out == NULL || cfg == NULL) {
		set_error("ca_new: missing argument");
		return CAPF_EINVAL;
	}
	*out = NULL;
	if (cfg->dir == NULL || cfg->dir[0] == '\0') {
		set_error("CA directory not set");
		return CAPF_ECONFIG;
	}
	if (cfg->ca_days > CA_MAX_DAYS || cfg->lsc_days > CA_MAX_DAYS) {
		set_error("validity too long: at most %u days", CA_MAX_DAYS);
		return CAPF_ECONFIG;
	}

	ca = calloc(1, sizeof(*ca));
	if (ca == NULL)
		return CAPF_ENOMEM;
	if (pthread_mutex_init(&ca->sign_lock, NULL) != 0) {
		free(ca);
		return CAPF_ENOMEM;
	}
	ca->lsc_days = cfg->lsc_days != 0 ? cfg->lsc_days : CA_DEFAULT_LSC_DAYS;

	ret = join_path(key_path, sizeof(key_path), cfg->dir, CA_KEY_FILE);
	if (ret < 0)
		goto out;
	ret = join_path(crt_path, sizeof(crt_path), cfg->dir, CA_CRT_FILE);
	if (ret < 0)
		goto out;

	/* Roots first: a configuration error must not leave a new CA behind. */
	if (cfg->mfg_roots != NULL) {
		ret = load_roots(ca, cfg->mfg_roots);
		if (ret < 0)
			goto out;
	}
	if (mkdir(cfg->dir, 0700) < 0 && errno != EEXIST) {
		set_error("cannot create CA directory %s: %s", cfg->dir, strerror(errno));
		ret = CAPF_EIO;
		goto out;
	}
	if (stat(cfg->dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		set_error("CA directory %s is not a directory", cfg->dir);
		ret = CAPF_ECONFIG;
		goto out;
	}
	have_key = stat(key_path, &st) == 0;
	if (!have_key && errno != ENOENT) {
		set_error("cannot access %s: %s", key_path, strerror(errno));
		ret = CAPF_EIO;
		goto out;
	}
	have_crt = stat(crt_path, &st) == 0;
	if (!have_crt && errno != ENOENT) {
		set_error("cannot access %s: %s", crt_path, strerror(errno));
		ret = CAPF_EIO;
		goto out;
	}
	if (have_key != have_crt) {
		set_error(
		    "%s is missing but %s exists; restore it, or remove both to create a new CA",
		    have_key ? crt_path : key_path, have_key ? key_path : crt_path);
		ret = CAPF_ECONFIG;
		goto out;
	}

	if (have_key)
		ret = load_ca(key_path, crt_path, &ca->key, &crt_pem);
	else
		ret = create_ca(cfg, &ca->key, &crt_pem);
	if (ret < 0)
		goto out;
	ret = adopt_ca(ca, crt_path, &crt_pem);
	if (ret < 0)
		goto out;
	*out = ca;
	ca = NULL;
	ret = 0;
out:
	if (ret < 0 && last_error[0] == '\0')
		set_error("cannot open the CA in %s: %s", cfg->dir, capf_strerror(ret));
	gnutls_free(crt_pem.data);
	ca_free(ca);
	return ret;
}

void ca_free(struct ca *ca)
{
	unsigned i;

	if (ca == NULL)
		return;
	/* gnutls_privkey_deinit() wipes the key parameters it owns. */
	gnutls_privkey_deinit(ca->key);
	gnutls_x509_crt_deinit(ca->crt);
	gnutls_free(ca->der.data);
	free(ca->pem);
	if (ca->roots != NULL)
		gnutls_x509_trust_list_deinit(ca->roots, 1);
	for (i = 0; i < ca->root_count; i++)
		gnutls_x509_crt_deinit(ca->root_crts[i]);
	gnutls_free(ca->root_crts);
	pthread_mutex_destroy(&ca->sign_lock);
	free(ca);
}

/* A second handle on the CA key, for credentials that take ownership of
 * the key they are given. */
static int dup_key(struct ca *ca, gnutls_privkey_t *out)
{
	gnutls_x509_privkey_t xkey = NULL;
	gnutls_privkey_t pkey = NULL;
	int ret;

	if (gnutls_privkey_get_type(ca->key) != GNUTLS_PRIVKEY_X509)
		return CAPF_ENOTSUP;
	pthread_mutex_lock(&ca->sign_lock);
	ret = gnutls_privkey_export_x509(ca->key, &xkey);
	pthread_mutex_unlock(&ca->sign_lock);
	if (ret < 0) {
		ret = ca_gnutls_err(ret);
		goto out;
	}
	CHECK_GNUTLS(gnutls_privkey_init(&pkey));
	CHECK_GNUTLS(gnutls_privkey_import_x509(pkey, xkey, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE));
	xkey = NULL;
	*out = pkey;
	pkey = NULL;
	ret = 0;
out:
	gnutls_privkey_deinit(pkey);
	gnutls_x509_privkey_deinit(xkey);
	return ret;
}

int ca_tls_credentials(struct ca *ca, gnutls_certificate_credentials_t cred)
{
	gnutls_pcert_st pcert;
	int have_pcert = 0;
	gnutls_privkey_t key = NULL;
	int ret;

	if (ca == NULL || cred == NULL)
		return CAPF_EINVAL;
	CHECK_GNUTLS(gnutls_pcert_import_x509_raw(&pcert, &ca->der, GNUTLS_X509_FMT_DER, 0));
	have_pcert = 1;
	ret = dup_key(ca, &key);
	if (ret < 0)
		goto out;
	/* On success the credentials own pcert's data and key. */
	CHECK_GNUTLS(gnutls_certificate_set_key(cred, NULL, 0, &pcert, 1, key));
	have_pcert = 0;
	key = NULL;

	if (ca->root_count > 0)
		CHECK_GNUTLS(
		    gnutls_certificate_set_x509_trust(cred, ca->root_crts, (int)ca->root_count));
	/*
	 * The CAPF CA is named in certificate requests too: a phone that
	 * authenticates with its LSC offers it only if the server lists the
	 * CA that issued it.
	 */
	CHECK_GNUTLS(gnutls_certificate_set_x509_trust(cred, &ca->crt, 1));
	ret = 0;
out:
	if (ret < 0)
		ret = CAPF_ECRYPTO;
	if (have_pcert)
		gnutls_pcert_deinit(&pcert);
	gnutls_privkey_deinit(key);
	return ret;
}

const char *ca_cert_pem(const struct ca *ca)
{
	return ca->pem;
}

void ca_cert_der(const struct ca *ca, const uint8_t **der, size_t *len)
{
	*der = ca->der.data;
	*len = ca->der.size;
}

int ca_cert_subject(const uint8_t *der, size_t len, char *buf, size_t buflen)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t in = {(unsigned char *)der, (unsigned)len};
	gnutls_datum_t dn = {NULL, 0};
	int ret;

	if (buf == NULL || buflen == 0)
		return CAPF_EINVAL;
	buf[0] = '\0';
	if (der == NULL || len == 0 || len > UINT_MAX)
		return CAPF_EBADMSG;
	CHECK_GNUTLS(gnutls_x509_crt_init(&crt));
	if (gnutls_x509_crt_import(crt, &in, GNUTLS_X509_FMT_DER) < 0 ||
	    gnutls_x509_crt_get_dn3(crt, &dn, 0) < 0) {
		ret = CAPF_EBADMSG;
		goto out;
	}
	if (dn.size >= buflen) {
		ret = CAPF_ERANGE;
		goto out;
	}
	memcpy(buf, dn.data, dn.size);
	buf[dn.size] = '\0';
	ret = 0;
out:
	gnutls_free(dn.data);
	gnutls_x509_crt_deinit(crt);
	return ret;
}
