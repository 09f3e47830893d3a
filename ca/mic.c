/*
 * ca/mic.c - manufacturer-installed certificates: does the chain a phone
 * presents lead to a manufacturer root, at the given time, and does its
 * leaf name the device?
 */
#include "config.h"

#include <ctype.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "ca/internal.h"
#include "proto/proto.h"

/*
 * Time checks: GnuTLS verifies against the clock of the moment, so it is
 * told to skip them and the chain is checked here against now, which the
 * caller controls (and the tests set). Every presented certificate and
 * every root that issued one of them must be valid at now.
 */
static int check_chain_times(struct ca *ca, gnutls_x509_crt_t *chain, size_t n,
			     gnutls_x509_crt_t last_anchor, time_t now)
{
	gnutls_x509_crt_t anchor = NULL;
	size_t i;
	int ret;

	for (i = 0; i < n; i++) {
		ret = ca_check_time(chain[i], now);
		if (ret < 0)
			return ret;
		/* The list's own certificate, not a copy: the list is in
		 * memory only (no PKCS#11 module behind it), and the caller's
		 * read lock keeps it alive. The last one's was found
		 * already. */
		if (i == n - 1 && last_anchor != NULL) {
			ret = ca_check_time(last_anchor, now);
			if (ret < 0)
				return ret;
		} else if (gnutls_x509_trust_list_get_issuer(ca->mfg_tl, chain[i], &anchor, 0) == 0) {
			ret = ca_check_time(anchor, now);
			anchor = NULL;
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

/* The identity rule (proto/proto.h): exactly one CN, which names the
 * device. */
static int check_identity(gnutls_x509_crt_t leaf, const char *device_name)
{
	char cn[CA_CN_MAX * 4 + 8];
	size_t cn_len = 0;

	if (ca_leaf_cn(leaf, cn, sizeof(cn), &cn_len) < 0 ||
	    !mic_cn_names_device(cn, cn_len, device_name))
		return CAPF_EIDENTITY;
	return 0;
}

int ca_mic_patterns_parse(struct ca *ca, const char *spec)
{
	return ca_mic_patterns_parse_to(spec, &ca->mic_patterns, &ca->n_mic_patterns);
}

int ca_mic_patterns_parse_to(const char *spec, struct ca_mic_pattern **arr, size_t *count)
{
	const char *p = spec;

	if (spec == NULL || spec[0] == '\0')
		return 0;
	while (*p != '\0') {
		const char *end = strchr(p, ','), *eq;
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p), flen, glen;
		struct ca_mic_pattern *n, *mp;

		eq = memchr(p, '=', len);
		flen = eq != NULL ? (size_t)(eq - p) : 0;
		glen = eq != NULL ? len - flen - 1 : 0;
		if (eq == NULL || flen < 8 || flen > CA_FPR_HEX_LEN || glen == 0 || glen >= 64) {
			ca_set_error("[trust] mic_patterns: \"%.*s\" is not FINGERPRINT=GLOB (a "
				     "fingerprint prefix of 8 to 64 hex digits)",
				     (int)len, p);
			return CAPF_ECONFIG;
		}
		n = realloc(*arr, (*count + 1) * sizeof(*n));
		if (n == NULL)
			return CAPF_ENOMEM;
		*arr = n;
		mp = &n[*count];
		for (size_t i = 0; i < flen; i++) {
			if (!isxdigit((unsigned char)p[i])) {
				ca_set_error("[trust] mic_patterns: \"%.*s\" is no hex fingerprint",
					     (int)flen, p);
				return CAPF_ECONFIG;
			}
			mp->fpr[i] = (char)tolower((unsigned char)p[i]);
		}
		mp->fpr[flen] = '\0';
		memcpy(mp->glob, eq + 1, glen);
		mp->glob[glen] = '\0';
		(*count)++;
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

/*
 * A manufacturer root limited to a naming pattern vouches only for the
 * device names that match it: a root of one vendor's phones cannot name a
 * softphone's device. The name is the one the MIC gives (after the last
 * "-" of its CN).
 */
static int check_patterns(struct ca *ca, gnutls_x509_crt_t *chain, size_t n,
			  gnutls_x509_crt_t anchor)
{
	char fpr[CA_FPR_HEX_LEN + 1], cn[CA_CN_MAX * 4 + 8];
	const char *name;
	size_t cn_len = 0;
	int ret = 0;

	if (ca->n_mic_patterns == 0)
		return 0;
	/* The list's own certificate, as in check_chain_times(). */
	if ((anchor == NULL &&
	     gnutls_x509_trust_list_get_issuer(ca->mfg_tl, chain[n - 1], &anchor, 0) < 0) ||
	    ca_fingerprint(anchor, fpr) < 0) {
		ret = CAPF_EUNTRUSTED;
		goto out;
	}
	if (ca_leaf_cn(chain[0], cn, sizeof(cn), &cn_len) < 0) {
		ret = CAPF_EIDENTITY;
		goto out;
	}
	cn[cn_len] = '\0';
	name = strrchr(cn, '-') != NULL ? strrchr(cn, '-') + 1 : cn;
	for (size_t i = 0; i < ca->n_mic_patterns; i++) {
		const struct ca_mic_pattern *mp = &ca->mic_patterns[i];

		if (strncmp(fpr, mp->fpr, strlen(mp->fpr)) != 0)
			continue;
		if (fnmatch(mp->glob, name, 0) != 0) {
			ret = CAPF_EIDENTITY;
			goto out;
		}
	}
out:
	return ret;
}

static int check_eku(gnutls_x509_crt_t leaf)
{
	char oid[128];
	int any = 0;

	for (unsigned i = 0;; i++) {
		size_t len = sizeof(oid);
		int r = gnutls_x509_crt_get_key_purpose_oid(leaf, i, oid, &len, NULL);

		if (r == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (r < 0)
			return CAPF_EUNTRUSTED;
		any = 1;
		if (strcmp(oid, GNUTLS_KP_TLS_WWW_CLIENT) == 0 || strcmp(oid, GNUTLS_KP_ANY) == 0)
			return 0;
	}
	return any ? CAPF_EUNTRUSTED : 0;
}

/*
 * The chain verified up to its anchor in the manufacturer roots: the
 * root that issued the last certificate (or that is it), the list's own
 * (no copy), checked with the chain by GnuTLS; a chain that does not
 * verify so (unsorted, another root of the same name) gets the trust
 * list's own search, which sorts and tries every candidate.
 */
static int verify_chain(struct ca *ca, gnutls_x509_crt_t *chain, size_t n,
			gnutls_x509_crt_t *anchor)
{
	const unsigned flags =
		GNUTLS_VERIFY_DISABLE_TIME_CHECKS | GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS;
	unsigned status = 0;
	int ret;

	*anchor = NULL;
	if (gnutls_x509_trust_list_get_issuer(ca->mfg_tl, chain[n - 1], anchor, 0) == 0 &&
	    gnutls_x509_crt_list_verify(chain, (unsigned)n, anchor, 1, NULL, 0, flags,
					&status) == 0 &&
	    status == 0)
		return 0;
	*anchor = NULL; /* the search below may have used another */
	status = 0;
	ret = gnutls_x509_trust_list_verify_crt2(ca->mfg_tl, chain, (unsigned)n, NULL, 0, flags,
						 &status, NULL);
	return ret < 0 || status != 0 ? CAPF_EUNTRUSTED : 0;
}

int ca_mic_decide(struct ca *ca, gnutls_x509_crt_t *chain, size_t n, const char *device_name,
		  time_t now)
{
	gnutls_x509_crt_t anchor = NULL;
	int ret;

	/* Without manufacturer roots nothing can be trusted. The roots may
	 * change at run time: the read lock keeps this list alive. */
	pthread_rwlock_rdlock(&ca->lock);
	if (ca->mfg_tl == NULL || verify_chain(ca, chain, n, &anchor) < 0) {
		pthread_rwlock_unlock(&ca->lock);
		return CAPF_EUNTRUSTED;
	}
	ret = check_chain_times(ca, chain, n, anchor, now);
	if (ret == 0)
		ret = check_patterns(ca, chain, n, anchor);
	pthread_rwlock_unlock(&ca->lock);
	if (ret < 0)
		return ret;
	/* A MIC is an end-entity certificate; a CA certificate proves
	 * nothing about one phone. */
	if (gnutls_x509_crt_get_ca_status(chain[0], NULL) > 0)
		return CAPF_EUNTRUSTED;
	/* A MIC is a client certificate: one whose extendedKeyUsage does
	 * not allow clientAuth was made for something else. */
	ret = check_eku(chain[0]);
	if (ret < 0)
		return ret;
	return device_name != NULL ? check_identity(chain[0], device_name) : 0;
}

int ca_mic_verify(struct ca *ca, const uint8_t *const *certs, const size_t *lens, size_t n,
		  const char *device_name, time_t now)
{
	gnutls_x509_crt_t chain[CA_CHAIN_MAX];
	size_t i, loaded = 0;
	int ret;

	if (ca == NULL)
		return CAPF_EINVAL;
	if (n == 0 || certs == NULL || lens == NULL)
		return CAPF_ENOCERT;
	if (n > CA_CHAIN_MAX)
		return CAPF_EUNTRUSTED;

	for (i = 0; i < n; i++) {
		gnutls_datum_t d = {(unsigned char *)certs[i], (unsigned)lens[i]};

		if (certs[i] == NULL || lens[i] == 0 || lens[i] > CA_CERT_MAX) {
			ret = CAPF_EUNTRUSTED;
			goto out;
		}
		CHECK_GNUTLS(gnutls_x509_crt_init(&chain[i]));
		loaded++;
		if (gnutls_x509_crt_import(chain[i], &d, GNUTLS_X509_FMT_DER) < 0) {
			ret = CAPF_EUNTRUSTED;
			goto out;
		}
	}
	ret = ca_mic_decide(ca, chain, n, device_name, now);
out:
	for (i = 0; i < loaded; i++)
		gnutls_x509_crt_deinit(chain[i]);
	return ret;
}
