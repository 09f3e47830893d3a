/*
 * ca/trust.c - the two trust stores: manufacturer roots (they decide
 * MICs) and the enterprise chain (anchors and intermediates that vouch
 * for an imported CAPF certificate). Each certificate added at run time
 * is a file <dir>/mfg/<sha256>.pem or <dir>/chain/<sha256>.pem, so that
 * adding and removing one is one durable file operation.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ca/internal.h"

static void store_free(struct ca_store *s)
{
	unsigned i;

	for (i = 0; i < s->n; i++)
		gnutls_x509_crt_deinit(s->crts[i]);
	free(s->crts);
	free(s->fprs);
	free(s->from_config);
	memset(s, 0, sizeof(*s));
}

/* Index of the certificate with fingerprint fpr, or -1. */
static int store_find(const struct ca_store *s, const char *fpr)
{
	unsigned i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->fprs[i], fpr) == 0)
			return (int)i;
	return -1;
}

/* A private copy of a certificate (stores never share objects). */
static int crt_dup(gnutls_x509_crt_t in, gnutls_x509_crt_t *out)
{
	gnutls_datum_t der = {NULL, 0};
	int ret;

	*out = NULL;
	CHECK_GNUTLS(gnutls_x509_crt_export2(in, GNUTLS_X509_FMT_DER, &der));
	CHECK_GNUTLS(gnutls_x509_crt_init(out));
	ret = gnutls_x509_crt_import(*out, &der, GNUTLS_X509_FMT_DER);
	if (ret < 0) {
		gnutls_x509_crt_deinit(*out);
		*out = NULL;
		ret = ca_gnutls_err(ret);
		goto out;
	}
	ret = 0;
out:
	gnutls_free(der.data);
	return ret;
}

/* Adds a copy of crt unless its fingerprint is there (then 1). */
static int store_add(struct ca_store *s, gnutls_x509_crt_t crt, int from_config)
{
	char fpr[CA_FPR_HEX_LEN + 1];
	gnutls_x509_crt_t copy = NULL;
	int ret;

	ret = ca_fingerprint(crt, fpr);
	if (ret < 0)
		return ret;
	if (store_find(s, fpr) >= 0)
		return 1;
	if (s->n >= CA_STORE_MAX) {
		ca_set_error("too many certificates in one trust store (at most %u)", CA_STORE_MAX);
		return CAPF_ERANGE;
	}
	if (s->n == s->cap) {
		unsigned cap = s->cap ? s->cap * 2 : 16;
		void *a = realloc(s->crts, cap * sizeof(*s->crts));

		if (a == NULL)
			return CAPF_ENOMEM;
		s->crts = a;
		a = realloc(s->fprs, cap * sizeof(*s->fprs));
		if (a == NULL)
			return CAPF_ENOMEM;
		s->fprs = a;
		a = realloc(s->from_config, cap * sizeof(*s->from_config));
		if (a == NULL)
			return CAPF_ENOMEM;
		s->from_config = a;
		s->cap = cap;
	}
	ret = crt_dup(crt, &copy);
	if (ret < 0)
		return ret;
	s->crts[s->n] = copy;
	memcpy(s->fprs[s->n], fpr, sizeof(fpr));
	s->from_config[s->n] = (unsigned char)from_config;
	s->n++;
	return 0;
}

static void store_remove(struct ca_store *s, unsigned i)
{
	gnutls_x509_crt_deinit(s->crts[i]);
	memmove(&s->crts[i], &s->crts[i + 1], (s->n - i - 1) * sizeof(*s->crts));
	memmove(&s->fprs[i], &s->fprs[i + 1], (s->n - i - 1) * sizeof(*s->fprs));
	memmove(&s->from_config[i], &s->from_config[i + 1],
		(s->n - i - 1) * sizeof(*s->from_config));
	s->n--;
}

/* A trust list of the store's certificates (NULL for an empty store). */
static int build_tl(const struct ca_store *s, gnutls_x509_trust_list_t *out)
{
	gnutls_x509_trust_list_t tl = NULL;
	gnutls_datum_t der = {NULL, 0};
	unsigned i;
	int ret;

	*out = NULL;
	if (s->n == 0)
		return 0;
	CHECK_GNUTLS(gnutls_x509_trust_list_init(&tl, 0));
	for (i = 0; i < s->n; i++) {
		CHECK_GNUTLS(gnutls_x509_crt_export2(s->crts[i], GNUTLS_X509_FMT_DER, &der));
		ret = gnutls_x509_trust_list_add_trust_mem(tl, &der, NULL, GNUTLS_X509_FMT_DER, 0,
							   0);
		gnutls_free(der.data);
		der.data = NULL;
		if (ret < 0) {
			ret = ca_gnutls_err(ret);
			goto out;
		}
	}
	*out = tl;
	tl = NULL;
	ret = 0;
out:
	if (tl != NULL)
		gnutls_x509_trust_list_deinit(tl, 1);
	return ret;
}

/* Adds every certificate of a PEM/DER file to s. */
static int load_file(struct ca_store *s, const char *path, int from_config)
{
	gnutls_datum_t data = {NULL, 0};
	gnutls_x509_crt_t *list = NULL;
	unsigned n = 0, i;
	int ret;

	if (ca_file_read(path, CA_BUNDLE_MAX, &data) < 0) {
		ca_set_error("cannot read %s: %s", path, strerror(errno));
		return from_config ? CAPF_ECONFIG : CAPF_EIO;
	}
	ret = ca_crt_parse_all(data.data, data.size, &list, &n);
	ca_file_free(&data);
	if (ret < 0) {
		ca_set_error("%s: no certificate found", path);
		return CAPF_ECONFIG;
	}
	for (i = 0; i < n; i++) {
		if (ret >= 0) {
			ret = store_add(s, list[i], from_config);
			if (ret > 0)
				ret = 0;
		}
		gnutls_x509_crt_deinit(list[i]);
	}
	gnutls_free(list);
	return ret;
}

/* Loads every <sha256>.pem of dir/sub into s. */
static int load_dir(struct ca *ca, const char *sub, struct ca_store *s)
{
	char d[PATH_MAX], path[PATH_MAX];
	struct dirent *e;
	DIR *dh;
	int ret = 0;

	if (ca_path(d, sizeof(d), ca->dir, sub) < 0)
		return CAPF_ECONFIG;
	dh = opendir(d);
	if (dh == NULL)
		return errno == ENOENT ? 0 : CAPF_EIO;
	while ((e = readdir(dh)) != NULL && ret == 0) {
		size_t len = strlen(e->d_name);

		if (e->d_name[0] == '.' || len < 5 || strcmp(e->d_name + len - 4, ".pem") != 0)
			continue;
		ret = ca_path(path, sizeof(path), d, e->d_name);
		if (ret == 0)
			ret = load_file(s, path, 0);
	}
	closedir(dh);
	return ret;
}

int ca_trust_load(struct ca *ca, const char *mfg_roots)
{
	int ret;

	if (mfg_roots != NULL) {
		ret = load_file(&ca->mfg, mfg_roots, 1);
		if (ret < 0) {
			char why[400];

			snprintf(why, sizeof(why), "%s", ca_last_error());
			ca_set_error("manufacturer roots %s: %s", mfg_roots, why);
			return CAPF_ECONFIG;
		}
	}
	ret = load_dir(ca, CA_DIR_MFG, &ca->mfg);
	if (ret < 0)
		return ret;
	ret = load_dir(ca, CA_DIR_CHAIN, &ca->chain);
	if (ret < 0)
		return ret;
	return build_tl(&ca->mfg, &ca->mfg_tl);
}

int ca_trust_reload(struct ca *ca, const char *mfg_roots, const char *mic_patterns)
{
	struct ca_store fresh = {0}, old;
	struct ca_mic_pattern *pats = NULL, *old_pats;
	gnutls_x509_trust_list_t tl = NULL, old_tl;
	size_t npats = 0;
	int ret;

	if (ca == NULL)
		return CAPF_EINVAL;
	ret = ca_mic_patterns_parse_to(mic_patterns, &pats, &npats);
	if (ret < 0)
		goto fail;
	/* With trust add and remove, which write the directory too. */
	pthread_mutex_lock(&ca->admin_lock);
	if (mfg_roots != NULL) {
		ret = load_file(&fresh, mfg_roots, 1);
		if (ret < 0) {
			char why[400];

			snprintf(why, sizeof(why), "%s", ca_last_error());
			ca_set_error("manufacturer roots %s: %s", mfg_roots, why);
			ret = CAPF_ECONFIG;
		}
	}
	if (ret >= 0)
		ret = load_dir(ca, CA_DIR_MFG, &fresh);
	if (ret >= 0)
		ret = build_tl(&fresh, &tl);
	if (ret < 0) {
		pthread_mutex_unlock(&ca->admin_lock);
		goto fail;
	}
	pthread_rwlock_wrlock(&ca->lock);
	old = ca->mfg;
	old_tl = ca->mfg_tl;
	old_pats = ca->mic_patterns;
	ca->mfg = fresh;
	ca->mfg_tl = tl;
	ca->mic_patterns = pats;
	ca->n_mic_patterns = npats;
	pthread_rwlock_unlock(&ca->lock);
	pthread_mutex_unlock(&ca->admin_lock);
	if (old_tl != NULL)
		gnutls_x509_trust_list_deinit(old_tl, 1);
	store_free(&old);
	free(old_pats);
	return 0;
fail:
	store_free(&fresh);
	free(pats);
	return ret;
}

void ca_trust_free(struct ca *ca)
{
	if (ca->mfg_tl != NULL)
		gnutls_x509_trust_list_deinit(ca->mfg_tl, 1);
	ca->mfg_tl = NULL;
	store_free(&ca->mfg);
	store_free(&ca->chain);
}

/* 1 if issuer signed crt (names match and the signature verifies). */
static int signed_by(gnutls_x509_crt_t crt, gnutls_x509_crt_t issuer)
{
	unsigned status = 1;

	if (!gnutls_x509_crt_check_issuer(crt, issuer))
		return 0;
	if (gnutls_x509_crt_verify(crt, &issuer, 1,
				   GNUTLS_VERIFY_DISABLE_TIME_CHECKS |
				       GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS,
				   &status) < 0)
		return 0;
	return status == 0;
}

static int self_signed(gnutls_x509_crt_t crt)
{
	return signed_by(crt, crt);
}

/*
 * Why crt has no issuer among cands (n) although one of them, or crt
 * itself, bears the name of its issuer: the verifier's reasons (a weak
 * signature algorithm, an issuer that may not sign certificates, a
 * signature that does not verify...). Returns 1 with why set, 0 when no
 * candidate bears that name (the issuer is missing indeed).
 */
static int issuer_refused(gnutls_x509_crt_t crt, gnutls_x509_crt_t const *cands, size_t n,
			  char *why, size_t len, bool *itself)
{
	gnutls_datum_t text = {NULL, 0};
	unsigned status = 0;
	size_t i;

	for (i = 0; i <= n; i++) {
		gnutls_x509_crt_t c = i < n ? cands[i] : crt;

		if (!gnutls_x509_crt_check_issuer(crt, c))
			continue;
		if (gnutls_x509_crt_verify(crt, &c, 1,
					   GNUTLS_VERIFY_DISABLE_TIME_CHECKS |
					       GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS,
					   &status) < 0 ||
		    status == 0)
			continue;
		if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text,
								 0) < 0)
			text.data = NULL;
		snprintf(why, len, "%s", text.data != NULL ? (char *)text.data
							   : "its signature does not verify");
		gnutls_free(text.data);
		/* GnuTLS ends its text with a space. */
		for (size_t k = strlen(why); k > 0 && why[k - 1] == ' '; k--)
			why[k - 1] = '\0';
		*itself = i == n;
		return 1;
	}
	return 0;
}

int ca_chain_build(struct ca *ca, gnutls_x509_crt_t leaf, time_t now, gnutls_x509_crt_t *path,
		   unsigned *n)
{
	gnutls_x509_trust_list_t tl = NULL;
	gnutls_x509_crt_t chain[CA_CHAIN_MAX + 1];
	gnutls_datum_t der = {NULL, 0}, dn = {NULL, 0};
	gnutls_x509_crt_t cur = leaf;
	unsigned depth = 0, i, status = 1;
	int anchored = 0;
	int ret;

	*n = 0;
	while (depth < CA_CHAIN_MAX && !anchored) {
		int found = -1;

		for (i = 0; i < ca->chain.n; i++) {
			if (ca->chain.crts[i] == cur || !signed_by(cur, ca->chain.crts[i]))
				continue;
			found = (int)i;
			/* An anchor ends the search; prefer it. */
			if (self_signed(ca->chain.crts[i]))
				break;
		}
		if (found < 0)
			break;
		path[depth++] = ca->chain.crts[found];
		cur = ca->chain.crts[found];
		anchored = self_signed(cur);
	}
	if (!anchored) {
		char why[512];
		bool itself = false;

		gnutls_x509_crt_get_issuer_dn3(cur, &dn, 0);
		if (issuer_refused(cur, ca->chain.crts, ca->chain.n, why, sizeof(why), &itself))
			ca_set_error("%s \"%s\" does not verify it: %s",
				     itself ? "the certificate names itself as its issuer, and"
					    : "its issuer is in the trust store, but",
				     dn.data != NULL ? (char *)dn.data : "?", why);
		else
			ca_set_error("the issuing chain of this certificate (up to \"%s\") is not "
				     "in the trust store: import the chain first with 'capfctl trust "
				     "add --chain FILE', then import the certificate again",
				     dn.data != NULL ? (char *)dn.data : "?");
		gnutls_free(dn.data);
		return CAPF_EUNTRUSTED;
	}

	/* Verify the whole path as a verifier would: CA flags, path length
	 * and key usage of every issuer, signatures up to the anchor. */
	chain[0] = leaf;
	for (i = 0; i + 1 < depth; i++)
		chain[i + 1] = path[i];
	CHECK_GNUTLS(gnutls_x509_trust_list_init(&tl, 0));
	CHECK_GNUTLS(gnutls_x509_crt_export2(path[depth - 1], GNUTLS_X509_FMT_DER, &der));
	CHECK_GNUTLS(gnutls_x509_trust_list_add_trust_mem(tl, &der, NULL, GNUTLS_X509_FMT_DER, 0, 0));
	CHECK_GNUTLS(gnutls_x509_trust_list_verify_crt2(
	    tl, chain, depth, NULL, 0,
	    GNUTLS_VERIFY_DISABLE_TIME_CHECKS | GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS, &status,
	    NULL));
	if (status != 0) {
		gnutls_datum_t why = {NULL, 0};

		gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0);
		ca_set_error("the certificate does not verify against the imported chain: %s",
			     why.data != NULL ? (char *)why.data : "?");
		gnutls_free(why.data);
		ret = CAPF_EUNTRUSTED;
		goto out;
	}
	for (i = 0; i < depth; i++) {
		if (ca_check_time(path[i], now) < 0) {
			gnutls_x509_crt_get_dn3(path[i], &dn, 0);
			ca_set_error("chain certificate \"%s\" is expired or not yet valid",
				     dn.data != NULL ? (char *)dn.data : "?");
			ret = CAPF_EEXPIRED;
			goto out;
		}
	}
	*n = depth;
	ret = 0;
out:
	gnutls_free(dn.data);
	gnutls_free(der.data);
	if (tl != NULL)
		gnutls_x509_trust_list_deinit(tl, 1);
	return ret;
}

/* Writes crt to dir/<sub>/<fpr>.pem. */
static int write_member(struct ca *ca, const char *sub, gnutls_x509_crt_t crt, const char *fpr)
{
	char d[PATH_MAX], name[CA_FPR_HEX_LEN + 8];
	gnutls_datum_t pem = {NULL, 0};
	int ret;

	ret = ca_path(d, sizeof(d), ca->dir, sub);
	if (ret < 0)
		return ret;
	ret = ca_mkdir(d);
	if (ret < 0)
		return ret;
	snprintf(name, sizeof(name), "%s.pem", fpr);
	CHECK_GNUTLS(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem));
	ret = ca_file_write(d, name, pem.data, pem.size, 0644);
out:
	gnutls_free(pem.data);
	return ret;
}

int ca_trust_add(struct ca *ca, int kind, const uint8_t *data, size_t len, size_t *added)
{
	gnutls_x509_crt_t *list = NULL;
	unsigned n = 0, i, j, left;
	unsigned char *ok = NULL;
	struct ca_store *s;
	gnutls_x509_trust_list_t tl = NULL;
	char fpr[CA_FPR_HEX_LEN + 1];
	gnutls_datum_t dn = {NULL, 0};
	size_t count = 0;
	int progress, ret;

	if (added != NULL)
		*added = 0;
	if (ca == NULL || (kind != CA_TRUST_MFG && kind != CA_TRUST_CHAIN))
		return CAPF_EINVAL;
	ret = ca_crt_parse_all(data, len, &list, &n);
	if (ret < 0) {
		ca_set_error("no certificate in the file (PEM or DER expected)");
		return ret;
	}
	ok = calloc(n, 1);
	if (ok == NULL) {
		ret = CAPF_ENOMEM;
		goto out_nolock;
	}
	pthread_mutex_lock(&ca->admin_lock);
	s = kind == CA_TRUST_MFG ? &ca->mfg : &ca->chain;

	/* Every certificate must be a CA: a store of trust holds issuers. */
	for (i = 0; i < n; i++) {
		if (gnutls_x509_crt_get_ca_status(list[i], NULL) <= 0) {
			gnutls_x509_crt_get_dn3(list[i], &dn, 0);
			ca_set_error("\"%s\" is not a CA certificate (basicConstraints CA:TRUE "
				     "missing): only issuers belong in a trust store",
				     dn.data != NULL ? (char *)dn.data : "?");
			ret = CAPF_EPOLICY;
			goto out;
		}
	}
	if (kind == CA_TRUST_CHAIN) {
		/* Anchors must sign themselves; intermediates must chain to
		 * what is trusted, here or in the same file, in any order. */
		pthread_rwlock_rdlock(&ca->lock);
		left = n;
		do {
			progress = 0;
			for (i = 0; i < n; i++) {
				if (ok[i])
					continue;
				if (self_signed(list[i])) {
					ok[i] = 1;
				} else {
					for (j = 0; j < ca->chain.n && !ok[i]; j++)
						ok[i] = (unsigned char)signed_by(list[i],
										 ca->chain.crts[j]);
					for (j = 0; j < n && !ok[i]; j++)
						if (j != i && ok[j])
							ok[i] = (unsigned char)signed_by(list[i],
											 list[j]);
				}
				if (ok[i]) {
					progress = 1;
					left--;
				}
			}
		} while (progress && left > 0);
		pthread_rwlock_unlock(&ca->lock);
		for (i = 0; i < n; i++) {
			bool itself = false;
			char why[512];

			if (ok[i])
				continue;
			gnutls_x509_crt_get_dn3(list[i], &dn, 0);
			pthread_rwlock_rdlock(&ca->lock);
			if (issuer_refused(list[i], ca->chain.crts, ca->chain.n, why, sizeof(why),
					   &itself) ||
			    issuer_refused(list[i], list, n, why, sizeof(why), &itself))
				ca_set_error("\"%s\" does not verify with %s: %s",
					     dn.data != NULL ? (char *)dn.data : "?",
					     itself ? "its own key (it names itself as its issuer)"
						    : "its issuer, which is in the trust store or the file",
					     why);
			else
				ca_set_error("\"%s\" is not self-signed and its issuer is neither in "
					     "the trust store nor in the file: add the issuer first",
					     dn.data != NULL ? (char *)dn.data : "?");
			pthread_rwlock_unlock(&ca->lock);
			ret = CAPF_EUNTRUSTED;
			goto out;
		}
	}

	/* Durable first, then in memory. */
	for (i = 0; i < n; i++) {
		ret = ca_fingerprint(list[i], fpr);
		if (ret < 0)
			goto out;
		pthread_rwlock_rdlock(&ca->lock);
		ok[i] = store_find(s, fpr) < 0;
		pthread_rwlock_unlock(&ca->lock);
		if (!ok[i])
			continue;
		ret = write_member(ca, kind == CA_TRUST_MFG ? CA_DIR_MFG : CA_DIR_CHAIN, list[i],
				   fpr);
		if (ret < 0)
			goto out;
	}
	pthread_rwlock_wrlock(&ca->lock);
	for (i = 0; i < n && ret >= 0; i++) {
		if (!ok[i])
			continue;
		ret = store_add(s, list[i], 0);
		if (ret == 0)
			count++;
	}
	if (ret >= 0 && kind == CA_TRUST_MFG && count > 0) {
		ret = build_tl(s, &tl);
		if (ret == 0) {
			if (ca->mfg_tl != NULL)
				gnutls_x509_trust_list_deinit(ca->mfg_tl, 1);
			ca->mfg_tl = tl;
			tl = NULL;
		}
	}
	pthread_rwlock_unlock(&ca->lock);
	if (ret > 0)
		ret = 0;
	if (added != NULL)
		*added = count;
out:
	pthread_mutex_unlock(&ca->admin_lock);
out_nolock:
	gnutls_free(dn.data);
	free(ok);
	for (i = 0; i < n; i++)
		gnutls_x509_crt_deinit(list[i]);
	gnutls_free(list);
	return ret;
}

static void entry_fill(const struct ca_store *s, unsigned i, int kind, struct ca_trust_entry *e)
{
	gnutls_datum_t dn = {NULL, 0};

	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->from_config = s->from_config[i];
	e->anchor = kind == CA_TRUST_CHAIN && self_signed(s->crts[i]);
	memcpy(e->fingerprint, s->fprs[i], sizeof(e->fingerprint));
	if (gnutls_x509_crt_get_dn3(s->crts[i], &dn, 0) >= 0)
		snprintf(e->subject, sizeof(e->subject), "%s", (char *)dn.data);
	gnutls_free(dn.data);
	e->not_after = gnutls_x509_crt_get_expiration_time(s->crts[i]);
}

static int cmp_entry(const void *a, const void *b)
{
	const struct ca_trust_entry *x = a, *y = b;

	if (x->kind != y->kind)
		return x->kind - y->kind;
	return strcmp(x->subject, y->subject);
}

int ca_trust_list(struct ca *ca, int kind, struct ca_trust_entry **out, size_t *n)
{
	struct ca_trust_entry *list;
	size_t count = 0;
	unsigned i;

	*out = NULL;
	*n = 0;
	if (ca == NULL || kind < 0 || kind > CA_TRUST_CHAIN)
		return CAPF_EINVAL;
	pthread_rwlock_rdlock(&ca->lock);
	list = calloc((size_t)ca->mfg.n + ca->chain.n + 1, sizeof(*list));
	if (list == NULL) {
		pthread_rwlock_unlock(&ca->lock);
		return CAPF_ENOMEM;
	}
	if (kind == 0 || kind == CA_TRUST_MFG)
		for (i = 0; i < ca->mfg.n; i++)
			entry_fill(&ca->mfg, i, CA_TRUST_MFG, &list[count++]);
	if (kind == 0 || kind == CA_TRUST_CHAIN)
		for (i = 0; i < ca->chain.n; i++)
			entry_fill(&ca->chain, i, CA_TRUST_CHAIN, &list[count++]);
	pthread_rwlock_unlock(&ca->lock);
	qsort(list, count, sizeof(*list), cmp_entry);
	*out = list;
	*n = count;
	return 0;
}

/* 1 if a trusted CAPF CA's issuing chain holds the certificate fpr. */
static int chain_in_use(struct ca *ca, const char *fpr, time_t now)
{
	struct ca_issuer *is;
	char f[CA_FPR_HEX_LEN + 1];
	unsigned i;

	for (is = ca->issuers; is != NULL; is = is->next) {
		if (!ca_issuer_trusted(ca, is, now))
			continue;
		for (i = 0; i < is->chain_len; i++)
			if (ca_fingerprint(is->chain[i], f) == 0 && strcmp(f, fpr) == 0)
				return 1;
	}
	return 0;
}

int ca_trust_remove(struct ca *ca, int kind, const char *fpr)
{
	struct ca_store *stores[2];
	const char *subs[2] = {CA_DIR_MFG, CA_DIR_CHAIN};
	char d[PATH_MAX], path[PATH_MAX], full[CA_FPR_HEX_LEN + 1];
	gnutls_x509_trust_list_t tl = NULL;
	int found_store = -1, found = -1, matches = 0;
	size_t plen;
	unsigned i;
	int k, ret;

	if (ca == NULL || fpr == NULL || kind < 0 || kind > CA_TRUST_CHAIN)
		return CAPF_EINVAL;
	plen = strlen(fpr);
	if (plen < 8 || plen > CA_FPR_HEX_LEN || strspn(fpr, "0123456789abcdefABCDEF") != plen) {
		ca_set_error("give at least 8 hex digits of the SHA-256 fingerprint "
			     "('capfctl trust list' shows them)");
		return CAPF_EINVAL;
	}
	stores[0] = &ca->mfg;
	stores[1] = &ca->chain;
	pthread_mutex_lock(&ca->admin_lock);
	pthread_rwlock_rdlock(&ca->lock);
	for (k = 0; k < 2; k++) {
		if (kind != 0 && kind != k + 1)
			continue;
		for (i = 0; i < stores[k]->n; i++) {
			if (strncasecmp(stores[k]->fprs[i], fpr, plen) != 0)
				continue;
			matches++;
			found_store = k;
			found = (int)i;
		}
	}
	if (matches == 1)
		memcpy(full, stores[found_store]->fprs[found], sizeof(full));
	pthread_rwlock_unlock(&ca->lock);
	if (matches == 0) {
		ca_set_error("no trusted certificate has a fingerprint starting with %s", fpr);
		ret = CAPF_ENOENT;
		goto out;
	}
	if (matches > 1) {
		ca_set_error("%s matches %d certificates: give more digits", fpr, matches);
		ret = CAPF_EBUSY;
		goto out;
	}
	if (stores[found_store]->from_config[found]) {
		ca_set_error("that root comes from the [trust] manufacturer_roots file of the "
			     "configuration: remove it there and restart capfd");
		ret = CAPF_EPOLICY;
		goto out;
	}
	pthread_rwlock_rdlock(&ca->lock);
	ret = found_store == 1 && chain_in_use(ca, full, time(NULL));
	pthread_rwlock_unlock(&ca->lock);
	if (ret) {
		ca_set_error("a trusted CAPF CA chains through that certificate: roll the CA over "
			     "first, and remove it when the old CA's overlap has ended");
		ret = CAPF_EBUSY;
		goto out;
	}
	ret = ca_path(d, sizeof(d), ca->dir, subs[found_store]);
	if (ret < 0)
		goto out;
	{
		char name[CA_FPR_HEX_LEN + 8];

		snprintf(name, sizeof(name), "%s.pem", full);
		ret = ca_path(path, sizeof(path), d, name);
		if (ret < 0)
			goto out;
	}
	if (unlink(path) < 0 || ca_fsync_dir(d) < 0) {
		ca_set_error("cannot remove %s: %s", path, strerror(errno));
		ret = CAPF_EIO;
		goto out;
	}
	pthread_rwlock_wrlock(&ca->lock);
	k = store_find(stores[found_store], full);
	if (k >= 0)
		store_remove(stores[found_store], (unsigned)k);
	ret = 0;
	if (found_store == 0) {
		ret = build_tl(&ca->mfg, &tl);
		if (ret == 0) {
			if (ca->mfg_tl != NULL)
				gnutls_x509_trust_list_deinit(ca->mfg_tl, 1);
			ca->mfg_tl = tl;
		}
	}
	pthread_rwlock_unlock(&ca->lock);
out:
	pthread_mutex_unlock(&ca->admin_lock);
	return ret;
}
