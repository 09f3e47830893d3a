/*
 * ca/ca.c - the CAPF CA lifecycle: open or create the CA directory, load
 * every trusted CAPF CA (the issuers), hand the current one to TLS, and
 * change it at run time: rollover, and the enterprise-signed path (a
 * request, then the import of the signed certificate).
 *
 * The directory (doc/ca-lifecycle.md) keeps each CAPF CA in gen/<id>/
 * (id = its serial in hex) and a symbolic link "current" to the issuing
 * one; replacing that link with rename() is the one atomic step of every
 * change, so a crash leaves either the old CA or the new one in charge.
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

/* Reads one whole certificate file into *crt. */
static int crt_load(const char *path, gnutls_x509_crt_t *crt)
{
	gnutls_datum_t data = {NULL, 0};
	int ret;

	*crt = NULL;
	if (ca_file_read(path, CA_FILE_MAX, &data) < 0) {
		ca_set_error("cannot read CA certificate %s: %s", path, strerror(errno));
		return errno == ENOENT ? CAPF_ECONFIG : CAPF_EIO;
	}
	CHECK_GNUTLS(gnutls_x509_crt_init(crt));
	ret = gnutls_x509_crt_import(*crt, &data, GNUTLS_X509_FMT_PEM);
	if (ret < 0) {
		ca_set_error("CA certificate %s is not a PEM certificate: %s", path,
			     gnutls_strerror(ret));
		gnutls_x509_crt_deinit(*crt);
		*crt = NULL;
		ret = CAPF_ECONFIG;
		goto out;
	}
	ret = 0;
out:
	ca_file_free(&data);
	return ret;
}

/*
 * Loads gen/<id>: its certificate, chain and overlap end, and its key
 * unless key is given (then it is used instead, and owned by the issuer
 * on success). need_key: a key that cannot be loaded is an error;
 * otherwise the issuer verifies but signs no CRL.
 */
static int issuer_load(struct ca *ca, const char *id, struct held_key *key, int need_key,
		       struct ca_issuer **out)
{
	struct ca_issuer *is = NULL;
	char gdir[PATH_MAX], path[PATH_MAX], rel[64];
	gnutls_datum_t data = {NULL, 0};
	int ret;

	*out = NULL;
	snprintf(rel, sizeof(rel), CA_DIR_GEN "/%.40s", id);
	ret = ca_path(gdir, sizeof(gdir), ca->dir, rel);
	if (ret < 0)
		return ret;
	is = ca_issuer_alloc();
	if (is == NULL)
		return CAPF_ENOMEM;
	ret = ca_path(path, sizeof(path), gdir, CA_FILE_CERT);
	if (ret < 0)
		goto out;
	ret = crt_load(path, &is->crt);
	if (ret < 0)
		goto out;
	if (key != NULL) {
		ca_issuer_take_key(is, key);
	} else {
		struct held_key k;

		ret = ca_gen_key_load(ca, gdir, &k);
		if (ret < 0 && need_key)
			goto out;
		if (ret == 0)
			ca_issuer_take_key(is, &k);
	}
	ret = ca_issuer_adopt(is, path);
	if (ret == 0) {
		ret = ca_issuer_check_key(is, path);
		if (ret < 0 && !need_key && key == NULL) {
			/* A previous CA whose key does not sign for it still
			 * verifies; it signs no CRL. */
			struct held_key bad;

			ca_issuer_give_key(is, &bad);
			ca_held_key_clear(&bad);
			ca_clear_error();
			ret = 0;
		}
	}
	if (ret < 0) {
		if (key != NULL)
			ca_issuer_give_key(is, key); /* the caller keeps it */
		goto out;
	}
	if (strcmp(is->id, id) != 0) {
		ca_set_error("%s: directory name %s is not the certificate's serial %s", path, id,
			     is->id);
		ret = CAPF_ECONFIG;
		goto out;
	}

	/* The issuing chain of an enterprise-signed CA. */
	ret = ca_path(path, sizeof(path), gdir, CA_FILE_CHAIN);
	if (ret < 0)
		goto out;
	if (ca_file_read(path, CA_BUNDLE_MAX, &data) == 0) {
		ret = ca_crt_parse_all(data.data, data.size, &is->chain, &is->chain_len);
		ca_file_free(&data);
		if (ret < 0) {
			ca_set_error("%s holds no certificate", path);
			ret = CAPF_ECONFIG;
			goto out;
		}
	}

	ret = ca_path(path, sizeof(path), gdir, CA_FILE_UNTIL);
	if (ret < 0)
		goto out;
	if (ca_file_read(path, 64, &data) == 0) {
		is->trusted_until = (time_t)strtoll((char *)data.data, NULL, 10);
		is->retired = 1;
		ca_file_free(&data);
	}
	*out = is;
	is = NULL;
	ret = 0;
out:
	ca_issuer_free(is);
	return ret;
}

int ca_issuer_trusted(const struct ca *ca, const struct ca_issuer *is, time_t now)
{
	if (is == ca->current)
		return 1;
	return is->retired && now <= is->trusted_until;
}

/* A hex id as capf makes them: 2..40 lower-case hex digits. */
static int id_valid(const char *s)
{
	size_t n = strlen(s);

	if (n < 2 || n > CA_ID_HEX_MAX || n % 2 != 0)
		return 0;
	return strspn(s, "0123456789abcdef") == n;
}

/* The id the "current" link names, into id; CAPF_ENOENT if no link. */
static int read_current(const char *dir, char id[CA_ID_HEX_MAX + 1])
{
	char link[PATH_MAX], target[128];
	ssize_t n;
	int ret;

	ret = ca_path(link, sizeof(link), dir, CA_LINK_CURRENT);
	if (ret < 0)
		return ret;
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0) {
		if (errno == ENOENT)
			return CAPF_ENOENT;
		ca_set_error("cannot read %s: %s", link, strerror(errno));
		return CAPF_EIO;
	}
	target[n] = '\0';
	if (strncmp(target, CA_DIR_GEN "/", sizeof(CA_DIR_GEN)) != 0 ||
	    !id_valid(target + sizeof(CA_DIR_GEN))) {
		ca_set_error("%s points to %s, not to gen/<serial>", link, target);
		return CAPF_ECONFIG;
	}
	snprintf(id, CA_ID_HEX_MAX + 1, "%s", target + sizeof(CA_DIR_GEN));
	return 0;
}

/* Points "current" at gen/<id>: a new link renamed over the old one. */
int ca_write_current(const char *dir, const char *id)
{
	char link[PATH_MAX], tmp[PATH_MAX], target[128];
	int ret;

	ret = ca_path(link, sizeof(link), dir, CA_LINK_CURRENT);
	if (ret < 0)
		return ret;
	ret = ca_path(tmp, sizeof(tmp), dir, "." CA_LINK_CURRENT ".new");
	if (ret < 0)
		return ret;
	snprintf(target, sizeof(target), CA_DIR_GEN "/%s", id);
	unlink(tmp);
	if (symlink(target, tmp) < 0 || rename(tmp, link) < 0) {
		ca_set_error("cannot update %s: %s", link, strerror(errno));
		unlink(tmp);
		return CAPF_EIO;
	}
	if (ca_fsync_dir(dir) < 0) {
		ca_set_error("cannot sync %s: %s", dir, strerror(errno));
		return CAPF_EIO;
	}
	return 0;
}

/* ca.pem: a copy of the current certificate for people and tools. */
int ca_write_ca_pem(const struct ca *ca, const struct ca_issuer *is)
{
	gnutls_datum_t old = {NULL, 0};
	char path[PATH_MAX];
	int same;

	if (ca_path(path, sizeof(path), ca->dir, CA_FILE_CA_PEM) < 0)
		return CAPF_ECONFIG;
	same = ca_file_read(path, CA_FILE_MAX, &old) == 0 && strlen(is->pem) == old.size &&
	       memcmp(old.data, is->pem, old.size) == 0;
	ca_file_free(&old);
	if (same)
		return 0;
	return ca_file_write(ca->dir, CA_FILE_CA_PEM, is->pem, strlen(is->pem), 0644);
}

/*
 * The public half of a new CA key (*pub, which the caller deinits, also
 * on failure) and the hash capf signs with it. A key that is neither EC
 * nor RSA is CAPF_ECONFIG, with ca_last_error() naming it as what.
 */
int ca_new_key_hash(gnutls_pubkey_t pub, const char *what, gnutls_digest_algorithm_t *hash)
{
	gnutls_sign_algorithm_t algo;
	int ret;

	ret = ca_key_sign_params(pub, hash, &algo);
	if (ret < 0) {
		ca_set_error("%s is neither EC nor RSA", what);
		ret = CAPF_ECONFIG;
	}
	return ret;
}

/* Makes a v3 CA certificate for key (public half pub): self-signed,
 * CA:TRUE pathlen 0. */
static int build_ca_cert(gnutls_privkey_t key, gnutls_pubkey_t pub, const char *subject,
			 unsigned days, time_t now, gnutls_x509_crt_t *out)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_digest_algorithm_t hash;
	uint8_t serial[CA_SERIAL_LEN];
	uint8_t ski[CA_KEY_ID_LEN];
	char auto_dn[64];
	const char *dn_err = NULL;
	int ret;

	*out = NULL;
	ret = ca_new_key_hash(pub, "the CA key", &hash);
	if (ret < 0)
		goto out;
	ret = ca_key_id(pub, ski);
	if (ret < 0)
		goto out;
	if (subject == NULL) {
		/* Each generation a name of its own, as CUCM names its CAPF
		 * certificates: verifiers given a bundle of several
		 * generations then find the right anchor by name. */
		snprintf(auto_dn, sizeof(auto_dn), "CN=CAPF-%02x%02x%02x%02x,O=capf", ski[0], ski[1],
			 ski[2], ski[3]);
		subject = auto_dn;
	}
	CHECK_GNUTLS(gnutls_x509_crt_init(&crt));
	CHECK_GNUTLS(gnutls_x509_crt_set_version(crt, 3));
	ret = ca_random_serial(serial);
	if (ret < 0)
		goto out;
	CHECK_GNUTLS(gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)));
	CHECK_GNUTLS(gnutls_x509_crt_set_activation_time(crt, now - CA_BACKDATE_SECONDS));
	CHECK_GNUTLS(gnutls_x509_crt_set_expiration_time(crt, now + (time_t)days * 86400));
	if (gnutls_x509_crt_set_dn(crt, subject, &dn_err) < 0) {
		ca_set_error("invalid CA subject \"%s\" (at \"%s\")", subject,
			     dn_err != NULL ? dn_err : "");
		ret = CAPF_ECONFIG;
		goto out;
	}
	CHECK_GNUTLS(gnutls_x509_crt_set_pubkey(crt, pub));
	CHECK_GNUTLS(gnutls_x509_crt_set_basic_constraints(crt, 1, 0));
	CHECK_GNUTLS(gnutls_x509_crt_set_key_usage(
	    crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN | GNUTLS_KEY_DIGITAL_SIGNATURE));
	CHECK_GNUTLS(gnutls_x509_crt_set_subject_key_id(crt, ski, sizeof(ski)));
	/* Self-signed: its own key identifies its issuer. */
	CHECK_GNUTLS(gnutls_x509_crt_set_authority_key_id(crt, ski, sizeof(ski)));
	ret = gnutls_x509_crt_privkey_sign(crt, crt, key, hash, 0);
	if (ret < 0) {
		ca_set_error("cannot sign the CA certificate: %s", gnutls_strerror(ret));
		ret = CAPF_ECRYPTO;
		goto out;
	}
	*out = crt;
	crt = NULL;
	ret = 0;
out:
	gnutls_x509_crt_deinit(crt);
	return ret;
}

/* Writes a certificate as PEM to dir/name (mode 0644). */
int ca_crt_write(gnutls_x509_crt_t crt, const char *dir, const char *name)
{
	gnutls_datum_t pem = {NULL, 0};
	int ret;

	CHECK_GNUTLS(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem));
	ret = ca_file_write(dir, name, pem.data, pem.size, 0644);
out:
	gnutls_free(pem.data);
	return ret;
}

/* fsyncs every regular file of dir, then dir itself. */
int ca_sync_tree_files(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir(dir);
	int ret = 0;

	if (d == NULL) {
		ca_set_error("cannot read %s: %s", dir, strerror(errno));
		return CAPF_EIO;
	}
	while (ret == 0 && (e = readdir(d)) != NULL) {
		struct stat sb;
		int fd;

		if (e->d_name[0] == '.' || ca_path(path, sizeof(path), dir, e->d_name) < 0 ||
		    lstat(path, &sb) < 0 || !S_ISREG(sb.st_mode))
			continue;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fsync(fd) < 0) {
			ca_set_error("cannot sync %s: %s", path, strerror(errno));
			ret = CAPF_EIO;
		}
		if (fd >= 0)
			close(fd);
	}
	closedir(d);
	if (ret == 0 && ca_fsync_dir(dir) < 0) {
		ca_set_error("cannot sync %s: %s", dir, strerror(errno));
		ret = CAPF_EIO;
	}
	return ret;
}

/*
 * Moves a fully written temporary generation directory to gen/<id>. The
 * files are durable already; the rename and the sync of gen/ publish it.
 */
int ca_publish_gen(const struct ca *ca, const char *tmpdir, const char *id)
{
	char gen[PATH_MAX], final[PATH_MAX];
	int ret;

	ret = ca_path(gen, sizeof(gen), ca->dir, CA_DIR_GEN);
	if (ret < 0)
		return ret;
	ret = ca_path(final, sizeof(final), gen, id);
	if (ret < 0)
		return ret;
	/* The files inside (the key may come from the signer process) and
	 * their entries must be durable before the rename publishes them. */
	ret = ca_sync_tree_files(tmpdir);
	if (ret < 0)
		return ret;
	if (rename(tmpdir, final) < 0) {
		ca_set_error("cannot create %s: %s", final, strerror(errno));
		return CAPF_EIO;
	}
	if (ca_fsync_dir(gen) < 0) {
		ca_set_error("cannot sync %s: %s", gen, strerror(errno));
		return CAPF_EIO;
	}
	return 0;
}

/* A new empty directory gen/.new-XXXXXX for a CA being made. */
int ca_make_tmp_gen(const struct ca *ca, char *tmpdir, size_t size)
{
	char gen[PATH_MAX];
	int ret, n;

	ret = ca_path(gen, sizeof(gen), ca->dir, CA_DIR_GEN);
	if (ret < 0)
		return ret;
	ret = ca_mkdir(gen);
	if (ret < 0)
		return ret;
	n = snprintf(tmpdir, size, "%s/.new-XXXXXX", gen);
	if (n < 0 || (size_t)n >= size) {
		ca_set_error("CA directory path too long: %s", ca->dir);
		return CAPF_ECONFIG;
	}
	if (mkdtemp(tmpdir) == NULL) {
		ca_set_error("cannot create a directory in %s: %s", gen, strerror(errno));
		tmpdir[0] = '\0';
		return CAPF_EIO;
	}
	return 0;
}

/*
 * Makes a new self-signed CAPF CA in gen/<id> with the key of spec and
 * returns it loaded (not yet current).
 */
int ca_make_self_signed(struct ca *ca, const struct ca_keyspec *spec, const char *subject,
			    time_t now, struct ca_issuer **out)
{
	struct ca_issuer *is = NULL;
	struct held_key k = {0};
	gnutls_x509_crt_t crt = NULL;
	char tmpdir[PATH_MAX] = "", gdir[PATH_MAX], kpath[PATH_MAX];
	int in_tmpdir = spec == NULL || spec->key == NULL || spec->key[0] == '\0';
	int ret;

	*out = NULL;
	ret = ca_make_tmp_gen(ca, tmpdir, sizeof(tmpdir));
	if (ret < 0)
		goto out;
	ret = ca_key_obtain(ca, spec, ca->key_type, tmpdir, &k.key, &k.pub, &k.url);
	if (ret < 0)
		goto out;
	ret = ca_path(kpath, sizeof(kpath), tmpdir, CA_FILE_KEY);
	if (ret < 0)
		goto out;
	k.ref = strdup(in_tmpdir ? kpath : spec->key);
	if (k.ref == NULL) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	ret = build_ca_cert(k.key, k.pub, subject, ca->ca_days, now, &crt);
	if (ret < 0)
		goto out;
	ret = ca_crt_write(crt, tmpdir, CA_FILE_CERT);
	if (ret < 0)
		goto out;
	is = ca_issuer_alloc();
	if (is == NULL) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	/* Read back what was written: a certificate object that was built
	 * and signed in memory does not answer every query (its raw subject,
	 * for one) as a parsed one does, and the issuer must behave the
	 * same whether it was made now or loaded at start. */
	{
		char path[PATH_MAX];

		ret = ca_path(path, sizeof(path), tmpdir, CA_FILE_CERT);
		if (ret == 0)
			ret = crt_load(path, &is->crt);
		if (ret < 0)
			goto out;
	}
	ca_issuer_take_key(is, &k);
	ret = ca_issuer_adopt(is, "the new CA certificate");
	if (ret < 0)
		goto out;
	ret = ca_publish_gen(ca, tmpdir, is->id);
	if (ret < 0)
		goto out;
	tmpdir[0] = '\0';
	if (in_tmpdir) {
		char rel[64];

		snprintf(rel, sizeof(rel), CA_DIR_GEN "/%s", is->id);
		ret = ca_path(gdir, sizeof(gdir), ca->dir, rel);
		if (ret == 0)
			ret = ca_issuer_key_moved(ca, is, gdir);
		if (ret < 0)
			goto out;
	}
	*out = is;
	is = NULL;
	ret = 0;
out:
	if (tmpdir[0] != '\0')
		ca_rmtree(tmpdir);
	ca_issuer_free(is);
	gnutls_x509_crt_deinit(crt);
	ca_held_key_clear(&k);
	return ret;
}

/*
 * The directory of the walking skeleton held ca.pem and ca.key only.
 * Such a CA becomes gen/<id> (the key is linked, never copied through
 * memory) and the current one.
 */
static int adopt_legacy(struct ca *ca, const char *crt_path, const char *key_path)
{
	struct ca_issuer *is = NULL;
	char tmpdir[PATH_MAX] = "", path[PATH_MAX];
	struct held_key k;
	int ret;

	is = ca_issuer_alloc();
	if (is == NULL)
		return CAPF_ENOMEM;
	ret = crt_load(crt_path, &is->crt);
	if (ret < 0)
		goto out;
	ret = ca_held_key_open(ca, key_path, &k);
	if (ret < 0)
		goto out;
	ca_issuer_take_key(is, &k);
	ret = ca_issuer_adopt(is, crt_path);
	if (ret == 0)
		ret = ca_issuer_check_key(is, crt_path);
	if (ret < 0)
		goto out;
	ret = ca_make_tmp_gen(ca, tmpdir, sizeof(tmpdir));
	if (ret < 0)
		goto out;
	ret = ca_path(path, sizeof(path), tmpdir, CA_FILE_KEY);
	if (ret < 0)
		goto out;
	if (link(key_path, path) < 0) {
		ca_set_error("cannot link %s into %s: %s", key_path, tmpdir, strerror(errno));
		ret = CAPF_EIO;
		goto out;
	}
	ret = ca_crt_write(is->crt, tmpdir, CA_FILE_CERT);
	if (ret < 0)
		goto out;
	ret = ca_publish_gen(ca, tmpdir, is->id);
	if (ret < 0)
		goto out;
	tmpdir[0] = '\0';
	ret = ca_write_current(ca->dir, is->id);
	if (ret < 0)
		goto out;
	/* The key lives on under gen/<id>/key.pem. */
	unlink(key_path);
	ca_fsync_dir(ca->dir);
	ret = 0;
out:
	if (tmpdir[0] != '\0')
		ca_rmtree(tmpdir);
	ca_issuer_free(is);
	return ret;
}

/* Adds an issuer to the list (newest first). Caller holds the lock. */
void ca_issuer_link(struct ca *ca, struct ca_issuer *is)
{
	is->next = ca->issuers;
	ca->issuers = is;
}

static int set_notice(struct ca *ca, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int set_notice(struct ca *ca, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	free(ca->notice);
	ca->notice = strdup(buf);
	return ca->notice != NULL ? 0 : CAPF_ENOMEM;
}

/*
 * Loads the current CA. A configured key is used if it is the current
 * CA's key (so a new PIN in the configuration applies); otherwise the key
 * the CA directory records for it.
 */
static int load_current(struct ca *ca, const char *id)
{
	struct ca_issuer *is = NULL;
	struct held_key k = {0};
	gnutls_x509_crt_t crt = NULL;
	char gdir[PATH_MAX], path[PATH_MAX], rel[64], shown[512];
	int ret;

	if (ca->key_cfg != NULL) {
		snprintf(rel, sizeof(rel), CA_DIR_GEN "/%s/" CA_FILE_CERT, id);
		ret = ca_path(path, sizeof(path), ca->dir, rel);
		if (ret < 0)
			return ret;
		if (crt_load(path, &crt) == 0 && ca_held_key_open(ca, ca->key_cfg, &k) == 0 &&
		    ca_key_matches(k.pub, crt))
			ret = issuer_load(ca, id, &k, 1, &is);
		else
			ret = -1;
		gnutls_x509_crt_deinit(crt);
		ca_held_key_clear(&k);
		if (ret == 0)
			goto done;
		snprintf(rel, sizeof(rel), CA_DIR_GEN "/%s", id);
		if (ca_path(gdir, sizeof(gdir), ca->dir, rel) == 0)
			set_notice(ca,
				   "the configured [ca] key %s is not the key of the current CAPF "
				   "CA %s (it made the first CA only); using the key recorded in %s",
				   ca_key_ref_redact(ca->key_cfg, shown, sizeof(shown)), id, gdir);
	}
	ret = issuer_load(ca, id, NULL, 1, &is);
	if (ret < 0)
		return ret;
done:
	ca_issuer_link(ca, is);
	ca->current = is;
	return 0;
}

/* Loads every retired CA whose overlap has not ended. */
static int load_retired(struct ca *ca, time_t now)
{
	char gen[PATH_MAX];
	struct dirent *e;
	DIR *d;
	int ret = 0;

	if (ca_path(gen, sizeof(gen), ca->dir, CA_DIR_GEN) < 0)
		return CAPF_ECONFIG;
	d = opendir(gen);
	if (d == NULL)
		return errno == ENOENT ? 0 : CAPF_EIO;
	while ((e = readdir(d)) != NULL) {
		char path[PATH_MAX], rel[64];
		gnutls_datum_t until = {NULL, 0};
		struct ca_issuer *is = NULL;
		time_t t;

		if (!id_valid(e->d_name) || strcmp(e->d_name, ca->current->id) == 0)
			continue;
		snprintf(rel, sizeof(rel), CA_DIR_GEN "/%s/" CA_FILE_UNTIL, e->d_name);
		if (ca_path(path, sizeof(path), ca->dir, rel) < 0 ||
		    ca_file_read(path, 64, &until) < 0)
			continue; /* never current, or damaged: not trusted */
		t = (time_t)strtoll((char *)until.data, NULL, 10);
		ca_file_free(&until);
		if (t < now)
			continue;
		/* Its key signs its CRL; without it the CA still verifies. */
		ret = issuer_load(ca, e->d_name, NULL, 0, &is);
		if (ret < 0)
			break;
		ca_issuer_link(ca, is);
	}
	closedir(d);
	return ret;
}

int ca_new(struct ca **out, const struct ca_config *cfg)
{
	struct ca *ca = NULL;
	struct ca_keyspec spec = {0, NULL};
	struct ca_issuer *is = NULL;
	char crt_path[PATH_MAX], key_path[PATH_MAX], id[CA_ID_HEX_MAX + 1];
	struct stat st;
	time_t now = time(NULL);
	int have_key, have_crt;
	int ret;

	ca_clear_error();
	if (out == NULL || cfg == NULL) {
		ca_set_error("ca_new: missing argument");
		return CAPF_EINVAL;
	}
	*out = NULL;
	if (cfg->dir == NULL || cfg->dir[0] == '\0') {
		ca_set_error("CA directory not set");
		return CAPF_ECONFIG;
	}
	if (cfg->ca_days > CA_MAX_DAYS || cfg->lsc_days > CA_MAX_DAYS ||
	    cfg->overlap_days > CA_MAX_DAYS || cfg->crl_days > CA_MAX_DAYS) {
		ca_set_error("validity too long: at most %u days", CA_MAX_DAYS);
		return CAPF_ECONFIG;
	}
	if (cfg->key_type < 0 || cfg->key_type > CAPF__KEY_TYPE__KEY_RSA_4096) {
		ca_set_error("unknown CA key type %d", cfg->key_type);
		return CAPF_ECONFIG;
	}

	ca = calloc(1, sizeof(*ca));
	if (ca == NULL)
		return CAPF_ENOMEM;
	if (pthread_rwlock_init(&ca->lock, NULL) != 0) {
		free(ca);
		return CAPF_ENOMEM;
	}
	if (pthread_mutex_init(&ca->admin_lock, NULL) != 0) {
		pthread_rwlock_destroy(&ca->lock);
		free(ca);
		return CAPF_ENOMEM;
	}
	ca->lsc_days = cfg->lsc_days != 0 ? cfg->lsc_days : CA_DEFAULT_LSC_DAYS;
	ca->ca_days = cfg->ca_days != 0 ? cfg->ca_days : CA_DEFAULT_CA_DAYS;
	ca->overlap_days = cfg->overlap_days != 0 ? cfg->overlap_days : CA_DEFAULT_OVERLAP_DAYS;
	ca->crl_days = cfg->crl_days != 0 ? cfg->crl_days : CA_DEFAULT_CRL_DAYS;
	ca->key_type = cfg->key_type != 0 ? cfg->key_type : CAPF__KEY_TYPE__KEY_EC_P256;
	if (cfg->keyops != NULL) {
		if (cfg->keyops->load == NULL || cfg->keyops->generate == NULL ||
		    cfg->keyops->sign == NULL) {
			ca_set_error("ca_new: incomplete keyops");
			ret = CAPF_EINVAL;
			goto out;
		}
		ca->keyops = *cfg->keyops;
		ca->has_keyops = 1;
	}
	ca->dir = strdup(cfg->dir);
	ca->subject_cfg = strdup(cfg->subject != NULL ? cfg->subject : CA_DEFAULT_SUBJECT);
	ca->subject_auto = cfg->subject == NULL;
	ret = ca_mic_patterns_parse(ca, cfg->mic_patterns);
	if (ret < 0)
		goto out;
	if (ca->dir == NULL || ca->subject_cfg == NULL ||
	    (cfg->key != NULL && cfg->key[0] != '\0' &&
	     (ca->key_cfg = strdup(cfg->key)) == NULL)) {
		ret = CAPF_ENOMEM;
		goto out;
	}

	ret = ca_path(key_path, sizeof(key_path), cfg->dir, CA_FILE_LEGACY_KEY);
	if (ret < 0)
		goto out;
	ret = ca_path(crt_path, sizeof(crt_path), cfg->dir, CA_FILE_CA_PEM);
	if (ret < 0)
		goto out;

	/* Roots first: a configuration error must not leave a new CA behind. */
	if (cfg->mfg_roots != NULL && stat(cfg->mfg_roots, &st) < 0) {
		ca_set_error("cannot read manufacturer roots %s: %s", cfg->mfg_roots,
			     strerror(errno));
		ret = CAPF_ECONFIG;
		goto out;
	}
	ret = ca_mkdir(cfg->dir);
	if (ret < 0)
		goto out;
	ret = ca_trust_load(ca, cfg->mfg_roots);
	if (ret < 0)
		goto out;

	ret = read_current(cfg->dir, id);
	if (ret == CAPF_ENOENT) {
		have_key = stat(key_path, &st) == 0;
		have_crt = stat(crt_path, &st) == 0;
		if (have_key != have_crt) {
			ca_set_error("%s is missing but %s exists; restore it, or remove both to "
				     "create a new CA",
				     have_key ? crt_path : key_path, have_key ? key_path : crt_path);
			ret = CAPF_ECONFIG;
			goto out;
		}
		if (have_key) {
			ret = adopt_legacy(ca, crt_path, key_path);
			if (ret < 0)
				goto out;
			ret = read_current(cfg->dir, id);
		} else {
			spec.key = ca->key_cfg;
			ret = ca_make_self_signed(ca, &spec, ca->subject_auto ? NULL : ca->subject_cfg,
					       now, &is);
			if (ret < 0)
				goto out;
			snprintf(id, sizeof(id), "%s", is->id);
			ca_issuer_free(is);
			is = NULL;
			ret = ca_write_current(cfg->dir, id);
		}
	}
	if (ret < 0)
		goto out;
	ret = load_current(ca, id);
	if (ret < 0)
		goto out;
	ret = load_retired(ca, now);
	if (ret < 0)
		goto out;
	ret = ca_write_ca_pem(ca, ca->current);
	if (ret < 0)
		goto out;
	ret = ca_crl_init(ca);
	if (ret < 0)
		goto out;
	*out = ca;
	ca = NULL;
	ret = 0;
out:
	if (ret < 0 && !ca_has_error())
		ca_set_error("cannot open the CA in %s: %s", cfg->dir, capf_strerror(ret));
	ca_free(ca);
	return ret;
}

void ca_free(struct ca *ca)
{
	struct ca_issuer *is, *next;

	if (ca == NULL)
		return;
	for (is = ca->issuers; is != NULL; is = next) {
		next = is->next;
		ca_issuer_free(is);
	}
	ca_trust_free(ca);
	ca_revoked_free(ca);
	free(ca->dir);
	free(ca->subject_cfg);
	free(ca->mic_patterns);
	if (ca->key_cfg != NULL) {
		gnutls_memset(ca->key_cfg, 0, strlen(ca->key_cfg));
		free(ca->key_cfg);
	}
	free(ca->notice);
	free(ca->crl_pem);
	pthread_mutex_destroy(&ca->admin_lock);
	pthread_rwlock_destroy(&ca->lock);
	free(ca);
}

const char *ca_start_notice(const struct ca *ca)
{
	return ca != NULL ? ca->notice : NULL;
}

/* ---- TLS ---------------------------------------------------------------- */

int ca_tls_credentials(struct ca *ca, gnutls_certificate_credentials_t cred)
{
	gnutls_pcert_st pcerts[CA_CHAIN_MAX];
	unsigned npcerts = 0, i;
	gnutls_privkey_t key = NULL;
	struct ca_issuer *cur, *is;
	time_t now = time(NULL);
	int ret;

	if (ca == NULL || cred == NULL)
		return CAPF_EINVAL;
	pthread_rwlock_rdlock(&ca->lock);
	cur = ca->current;
	/* The certificate list: the CAPF CA, then its issuing chain without
	 * the self-signed anchor, which the client has or does not need. */
	CHECK_GNUTLS(gnutls_pcert_import_x509_raw(&pcerts[0], &cur->der, GNUTLS_X509_FMT_DER, 0));
	npcerts = 1;
	for (i = 0; i < cur->chain_len && npcerts < CA_CHAIN_MAX; i++) {
		if (gnutls_x509_crt_check_issuer(cur->chain[i], cur->chain[i]))
			continue;
		CHECK_GNUTLS(gnutls_pcert_import_x509(&pcerts[npcerts], cur->chain[i], 0));
		npcerts++;
	}
	/* The credentials take ownership of the key they are given: a
	 * second handle on the current one. */
	ret = ca_key_dup(ca, cur->key, cur->key_pub, cur->key_ref, &cur->sign_lock, &key);
	if (ret < 0)
		goto out;
	/* On success the credentials own the pcerts' data and the key. */
	CHECK_GNUTLS(gnutls_certificate_set_key(cred, NULL, 0, pcerts, (int)npcerts, key));
	npcerts = 0;
	key = NULL;

	if (ca->mfg.n > 0)
		CHECK_GNUTLS(gnutls_certificate_set_x509_trust(cred, ca->mfg.crts, (int)ca->mfg.n));
	/*
	 * The CAPF CAs are named in certificate requests too: a phone that
	 * authenticates with its LSC offers it only if the server lists the
	 * CA that issued it, old or new.
	 */
	for (is = ca->issuers; is != NULL; is = is->next)
		if (ca_issuer_trusted(ca, is, now))
			CHECK_GNUTLS(gnutls_certificate_set_x509_trust(cred, &is->crt, 1));
	ret = 0;
out:
	pthread_rwlock_unlock(&ca->lock);
	if (ret < 0 && ret != CAPF_ENOMEM)
		ret = CAPF_ECRYPTO;
	for (i = 0; i < npcerts; i++)
		gnutls_pcert_deinit(&pcerts[i]);
	gnutls_privkey_deinit(key);
	return ret;
}

const char *ca_cert_pem(const struct ca *ca)
{
	const char *pem;

	pthread_rwlock_rdlock((pthread_rwlock_t *)&ca->lock);
	pem = ca->current->pem;
	pthread_rwlock_unlock((pthread_rwlock_t *)&ca->lock);
	return pem;
}

void ca_cert_der(const struct ca *ca, const uint8_t **der, size_t *len)
{
	pthread_rwlock_rdlock((pthread_rwlock_t *)&ca->lock);
	*der = ca->current->der.data;
	*len = ca->current->der.size;
	pthread_rwlock_unlock((pthread_rwlock_t *)&ca->lock);
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

int ca_issuer_sign_bench(struct ca *ca, const uint8_t *data, size_t len)
{
	gnutls_datum_t in = {(unsigned char *)data, (unsigned)len};
	gnutls_datum_t sig = {NULL, 0};
	struct ca_issuer *is;
	int ret;

	if (ca == NULL || data == NULL)
		return CAPF_EINVAL;
	pthread_rwlock_rdlock(&ca->lock);
	is = ca->current;
	pthread_rwlock_unlock(&ca->lock);
	ret = ca_issuer_sign(is, &in, &sig);
	gnutls_free(sig.data);
	return ret < 0 ? CAPF_ECRYPTO : 0;
}
