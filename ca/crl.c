/*
 * ca/crl.c - revocation: the list of revoked serials (in memory; the
 * store holds the durable records and the server feeds them in), and
 * the CRLs signed with it.
 *
 * GnuTLS can make a CRL but cannot put a reasonCode on its entries, so
 * the TBSCertList (RFC 5280 5.1) is encoded here in DER, signed with
 * gnutls_privkey_sign_data2() and wrapped. The result is checked by
 * parsing it back with GnuTLS before anything is written.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca/internal.h"
#include "proto/proto.h"

/* ---- reasons ------------------------------------------------------------ */

static const struct {
	int code;
	const char *name;
} reasons[] = {
    {CA_REASON_UNSPECIFIED, "unspecified"},
    {CA_REASON_KEY_COMPROMISE, "keyCompromise"},
    {CA_REASON_CA_COMPROMISE, "cACompromise"},
    {CA_REASON_AFFILIATION_CHANGED, "affiliationChanged"},
    {CA_REASON_SUPERSEDED, "superseded"},
    {CA_REASON_CESSATION_OF_OPERATION, "cessationOfOperation"},
    {CA_REASON_PRIVILEGE_WITHDRAWN, "privilegeWithdrawn"},
};

const char *ca_reason_name(int reason)
{
	size_t i;

	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (reasons[i].code == reason)
			return reasons[i].name;
	return "?";
}

int ca_reason_from_name(const char *name, int *out)
{
	size_t i;

	if (name == NULL || out == NULL)
		return CAPF_EINVAL;
	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
		if (strcasecmp(reasons[i].name, name) == 0) {
			*out = reasons[i].code;
			return 0;
		}
	}
	return CAPF_EINVAL;
}

/* ---- the revoked list --------------------------------------------------- */

static int cmp_serial(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	if (alen != blen)
		return alen < blen ? -1 : 1;
	return memcmp(a, b, alen);
}

/* Index of serial, or -(insertion point) - 1. Caller holds the lock. */
static long find(const struct ca *ca, const uint8_t *serial, size_t len)
{
	size_t lo = 0, hi = ca->n_revoked;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp_serial(ca->revoked[mid].serial, ca->revoked[mid].serial_len, serial,
				   len);

		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(long)lo - 1;
}

/* Inserts or replaces r in the sorted list. Caller holds the lock for
 * writing (or owns the CA alone). */
static int revoked_insert(struct ca *ca, const struct ca_revoked *r)
{
	long at = find(ca, r->serial, r->serial_len);

	if (at >= 0) {
		ca->revoked[at] = *r;
		return 0;
	}
	at = -at - 1;
	if (ca->n_revoked == ca->cap_revoked) {
		size_t cap = ca->cap_revoked ? ca->cap_revoked * 2 : 64;
		struct ca_revoked *grown = realloc(ca->revoked, cap * sizeof(*grown));

		if (grown == NULL)
			return CAPF_ENOMEM;
		ca->revoked = grown;
		ca->cap_revoked = cap;
	}
	memmove(&ca->revoked[at + 1], &ca->revoked[at],
		(ca->n_revoked - (size_t)at) * sizeof(*ca->revoked));
	ca->revoked[at] = *r;
	ca->n_revoked++;
	return 0;
}

int ca_revoked_add(struct ca *ca, const uint8_t *serial, size_t serial_len, time_t when,
		   int reason, const uint8_t *der, size_t der_len)
{
	struct ca_revoked r;
	gnutls_x509_crt_t crt = NULL;
	int ret;

	if (ca == NULL || serial == NULL || serial_len == 0 || serial_len > CA_SERIAL_MAX ||
	    reason < 0 || reason > 10 || reason == 7 || reason == 6)
		return CAPF_EINVAL;
	memset(&r, 0, sizeof(r));
	memcpy(r.serial, serial, serial_len);
	r.serial_len = (uint8_t)serial_len;
	r.reason = (uint8_t)reason;
	r.when = when;
	/* The authority key identifier names the CAPF CA whose CRL lists
	 * it; a certificate that does not parse is listed by every CRL. */
	if (der != NULL && der_len > 0 && der_len <= CA_CERT_MAX &&
	    gnutls_x509_crt_init(&crt) == 0) {
		gnutls_datum_t d = {(unsigned char *)der, (unsigned)der_len};
		size_t id_len = sizeof(r.issuer_id);

		if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) == 0 &&
		    gnutls_x509_crt_get_authority_key_id(crt, r.issuer_id, &id_len, NULL) >= 0)
			r.issuer_id_len = (uint8_t)id_len;
		gnutls_x509_crt_deinit(crt);
	}

	pthread_rwlock_wrlock(&ca->lock);
	ret = revoked_insert(ca, &r);
	pthread_rwlock_unlock(&ca->lock);
	return ret;
}

int ca_is_revoked(struct ca *ca, const uint8_t *serial, size_t serial_len)
{
	int found;

	if (ca == NULL || serial == NULL || serial_len == 0)
		return 0;
	pthread_rwlock_rdlock(&ca->lock);
	found = find(ca, serial, serial_len) >= 0;
	pthread_rwlock_unlock(&ca->lock);
	return found;
}

void ca_revoked_free(struct ca *ca)
{
	free(ca->revoked);
	ca->revoked = NULL;
	ca->n_revoked = ca->cap_revoked = 0;
}

/* 1 if the CRL of issuer is should list r. */
static int lists(const struct ca_issuer *is, const struct ca_revoked *r)
{
	if (r->issuer_id_len == 0)
		return 1;
	return r->issuer_id_len == is->ski_len && memcmp(r->issuer_id, is->ski, is->ski_len) == 0;
}

/*
 * Encodes and signs the CRL of issuer is: v2, thisUpdate now, nextUpdate
 * now + days, the revoked entries it lists (reasonCode unless
 * unspecified, which RFC 5280 5.3.1 says to leave out), AKI and CRL
 * number. Caller holds ca->lock (read). *out is gnutls_malloc'd DER.
 */
static int crl_sign(const struct ca *ca, struct ca_issuer *is, time_t now, uint64_t number,
		    gnutls_datum_t *out)
{
	static const uint8_t oid_reason[] = {0x06, 0x03, 0x55, 0x1d, 0x15};
	static const uint8_t oid_aki[] = {0x06, 0x03, 0x55, 0x1d, 0x23};
	static const uint8_t oid_crl_number[] = {0x06, 0x03, 0x55, 0x1d, 0x14};
	struct ca_der tbs = {0}, crl = {0}, entries = {0}, exts = {0}, t1 = {0}, t2 = {0}, t3 = {0};
	gnutls_datum_t data = {NULL, 0}, sig = {NULL, 0};
	gnutls_pubkey_t pub = NULL;
	size_t i;
	int ret;

	out->data = NULL;
	out->size = 0;

	/* revokedCertificates */
	for (i = 0; i < ca->n_revoked; i++) {
		const struct ca_revoked *r = &ca->revoked[i];
		struct ca_der entry = {0};

		if (!lists(is, r))
			continue;
		ca_der_uint(&entry, r->serial, r->serial_len);
		ca_der_time(&entry, (time_t)r->when);
		if (r->reason != CA_REASON_UNSPECIFIED) {
			uint8_t e[3] = {0x0a, 0x01, r->reason}; /* ENUMERATED */

			ca_der_put(&t1, oid_reason, sizeof(oid_reason));
			ca_der_head(&t1, 0x04, sizeof(e));
			ca_der_put(&t1, e, sizeof(e));
			ca_der_wrap(&t2, 0x30, &t1); /* Extension */
			ca_der_wrap(&entry, 0x30, &t2); /* Extensions */
		}
		ca_der_wrap(&entries, 0x30, &entry);
	}

	/* crlExtensions: AKI { [0] keyIdentifier }, CRLNumber */
	ca_der_head(&t1, 0x80, is->ski_len);
	ca_der_put(&t1, is->ski, is->ski_len);
	ca_der_wrap(&t2, 0x30, &t1);
	ca_der_put(&t3, oid_aki, sizeof(oid_aki));
	ca_der_wrap(&t3, 0x04, &t2);
	ca_der_wrap(&exts, 0x30, &t3);
	ca_der_u64(&t1, number);
	ca_der_put(&t3, oid_crl_number, sizeof(oid_crl_number));
	ca_der_wrap(&t3, 0x04, &t1);
	ca_der_wrap(&exts, 0x30, &t3);
	ca_der_wrap(&t1, 0x30, &exts);

	/* TBSCertList */
	ca_der_put(&tbs, (const uint8_t[]){0x02, 0x01, 0x01}, 3); /* version v2 */
	ret = ca_der_sigalg(&tbs, is->sign_algo);
	if (ret < 0)
		goto out;
	ca_der_put(&tbs, is->raw_dn.data, is->raw_dn.size);
	ca_der_time(&tbs, now);
	ca_der_time(&tbs, now + (time_t)ca->crl_days * 86400);
	if (entries.len > 0)
		ca_der_wrap(&tbs, 0x30, &entries);
	ca_der_wrap(&tbs, 0xa0, &t1);
	ca_der_wrap(&crl, 0x30, &tbs);
	if (crl.err) {
		ret = crl.err;
		goto out;
	}

	data.data = crl.p;
	data.size = (unsigned)crl.len;
	ret = ca_issuer_sign(is, &data, &sig);
	if (ret < 0) {
		ca_set_error("cannot sign the CRL of CA %s: %s", is->id, gnutls_strerror(ret));
		ret = CAPF_ECRYPTO;
		goto out;
	}
	/* What was signed must verify with the CA certificate's key, or it
	 * is not written (a key that is not the certificate's, a token that
	 * signs wrong). The signature alone: parsing back a CRL of tens of
	 * thousands of entries costs far more than making it, and the
	 * encoding is the tested code above. */
	if (gnutls_pubkey_init(&pub) < 0 || gnutls_pubkey_import_x509(pub, is->crt, 0) < 0 ||
	    gnutls_pubkey_verify_data2(pub, is->sign_algo, 0, &data, &sig) < 0) {
		ca_set_error("the CRL made for CA %s does not verify", is->id);
		ret = CAPF_ECRYPTO;
		goto out;
	}
	ret = ca_der_sigalg(&crl, is->sign_algo);
	if (ret < 0)
		goto out;
	ca_der_head(&crl, 0x03, sig.size + 1);
	ca_der_put(&crl, (const uint8_t[]){0x00}, 1);
	ca_der_put(&crl, sig.data, sig.size);
	ca_der_wrap(&t2, 0x30, &crl);
	if (t2.err) {
		ret = t2.err;
		goto out;
	}

	out->data = gnutls_malloc(t2.len);
	if (out->data == NULL) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	memcpy(out->data, t2.p, t2.len);
	out->size = (unsigned)t2.len;
	ret = 0;
out:
	if (pub != NULL)
		gnutls_pubkey_deinit(pub);
	gnutls_free(sig.data);
	free(tbs.p);
	free(crl.p);
	free(entries.p);
	free(exts.p);
	free(t1.p);
	free(t2.p);
	free(t3.p);
	return ret;
}

/*
 * The checksum of a line of revoked.txt: the first 4 bytes of the SHA-256
 * of the text before it, in hex. A line whose checksum does not match (a
 * write that reached the disk in part, or damage) is never taken for a
 * revocation, and never swallows the next one.
 */
static int line_checksum(const char *text, size_t len, char out[9])
{
	uint8_t md[32];

	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, text, len, md) < 0)
		return CAPF_ECRYPTO;
	hex_encode(md, 4, out);
	return 0;
}

/* The line of revoked.txt for one revocation: serial, time, reason, the
 * issuer's key id ("-" when unknown) and the line's checksum. */
static int revoked_line(const struct ca_revoked *r, char *buf, size_t len)
{
	char serial[2 * CA_SERIAL_MAX + 1], issuer[2 * CA_KEY_ID_MAX + 2], sum[9];
	int n;

	hex_encode(r->serial, r->serial_len, serial);
	if (r->issuer_id_len > 0)
		hex_encode(r->issuer_id, r->issuer_id_len, issuer);
	else
		snprintf(issuer, sizeof(issuer), "-");
	n = snprintf(buf, len, "%s %" PRId64 " %u %s", serial, r->when, r->reason, issuer);
	if (n < 0 || (size_t)n + 11 > len || line_checksum(buf, (size_t)n, sum) < 0)
		return -1;
	return n + snprintf(buf + n, len - (size_t)n, " %s\n", sum);
}

/*
 * Cuts revoked.txt (open as fd) back to its last complete line: a crash
 * in the middle of an append leaves a line without its newline, and the
 * next line appended after it would be glued to it and lost. Synced
 * before anything is appended.
 */
static int revoked_trim(int fd, const char *path)
{
	struct stat sb;
	char last = '\n', *buf = NULL;
	off_t keep;
	int ret = 0;

	if (fstat(fd, &sb) < 0)
		return CAPF_EIO;
	if (sb.st_size == 0 || (pread(fd, &last, 1, sb.st_size - 1) == 1 && last == '\n'))
		return 0;
	buf = malloc((size_t)sb.st_size);
	if (buf == NULL)
		return CAPF_ENOMEM;
	if (pread(fd, buf, (size_t)sb.st_size, 0) != sb.st_size) {
		ret = CAPF_EIO;
		goto out;
	}
	for (keep = sb.st_size; keep > 0 && buf[keep - 1] != '\n'; keep--)
		;
	if (ftruncate(fd, keep) < 0 || fsync(fd) < 0) {
		ca_set_error("cannot drop the torn last line of %s: %s", path, strerror(errno));
		ret = CAPF_EIO;
		goto out;
	}
out:
	free(buf);
	return ret;
}

int ca_revoke(struct ca *ca, const uint8_t *serial, size_t serial_len, time_t when, int reason,
	      const uint8_t *der, size_t der_len)
{
	char path[PATH_MAX], line[256];
	struct ca_revoked r;
	long at;
	int fd = -1, n, ret;

	ret = ca_revoked_add(ca, serial, serial_len, when, reason, der, der_len);
	if (ret < 0)
		return ret;
	pthread_rwlock_rdlock(&ca->lock);
	at = find(ca, serial, serial_len);
	if (at >= 0)
		r = ca->revoked[at];
	pthread_rwlock_unlock(&ca->lock);
	if (at < 0)
		return CAPF_ENOMEM;
	n = revoked_line(&r, line, sizeof(line));
	if (n < 0)
		return CAPF_ECRYPTO;
	ret = ca_path(path, sizeof(path), ca->dir, CA_FILE_REVOKED);
	if (ret < 0)
		return ret;
	/*
	 * Appended and synced: the line is complete and durable before the
	 * caller goes on. A torn last line (a crash mid-write) is cut off
	 * first, so that it cannot swallow this one; a line whose checksum
	 * does not match is skipped when the file is read back.
	 */
	pthread_mutex_lock(&ca->admin_lock);
	fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0)
		ret = revoked_trim(fd, path);
	if (ret == 0 && (fd < 0 || write(fd, line, (size_t)n) != n || fsync(fd) < 0)) {
		ca_set_error("cannot record the revocation in %s: %s", path, strerror(errno));
		ret = CAPF_EIO;
	}
	if (fd >= 0)
		close(fd);
	if (ret == 0 && ca_fsync_dir(ca->dir) < 0)
		ret = CAPF_EIO;
	pthread_mutex_unlock(&ca->admin_lock);
	return ret;
}

int ca_revoked_each(struct ca *ca, ca_revoked_cb cb, void *arg)
{
	struct ca_revoked *copy = NULL;
	size_t n, i;
	int ret = 0;

	if (ca == NULL || cb == NULL)
		return CAPF_EINVAL;
	/* A copy, so that cb may call into the CA. */
	pthread_rwlock_rdlock(&ca->lock);
	n = ca->n_revoked;
	if (n > 0) {
		copy = malloc(n * sizeof(*copy));
		if (copy != NULL)
			memcpy(copy, ca->revoked, n * sizeof(*copy));
	}
	pthread_rwlock_unlock(&ca->lock);
	if (n > 0 && copy == NULL)
		return CAPF_ENOMEM;
	for (i = 0; i < n && ret == 0; i++)
		ret = cb(copy[i].serial, copy[i].serial_len, (time_t)copy[i].when, copy[i].reason,
			 arg);
	free(copy);
	return ret;
}

/* Reads revoked.txt into the in-memory list. */
static int revoked_load(struct ca *ca)
{
	char path[PATH_MAX];
	gnutls_datum_t data = {NULL, 0};
	char *line, *save = NULL;
	int ret = 0;

	if (ca_path(path, sizeof(path), ca->dir, CA_FILE_REVOKED) < 0)
		return CAPF_ECONFIG;
	if (ca_file_read(path, 256u * 1024u * 1024u, &data) < 0) {
		if (errno == ENOENT)
			return 0;
		ca_set_error("cannot read %s: %s", path, strerror(errno));
		return CAPF_EIO;
	}
	/* Only lines that end in a newline are complete. */
	while (data.size > 0 && data.data[data.size - 1] != '\n')
		data.data[--data.size] = '\0';
	for (line = strtok_r((char *)data.data, "\n", &save); line != NULL && ret == 0;
	     line = strtok_r(NULL, "\n", &save)) {
		char serial_hex[128], issuer_hex[160], sum[16], want[9];
		struct ca_revoked r;
		long long when;
		unsigned reason;
		int len, fields;
		const char *sp;

		memset(&r, 0, sizeof(r));
		fields = sscanf(line, "%127s %lld %u %159s %15s", serial_hex, &when, &reason,
				issuer_hex, sum);
		if (fields < 4)
			continue;
		/* Lines of old files have no checksum; new ones must match. */
		if (fields == 5) {
			sp = strrchr(line, ' ');
			if (sp == NULL || line_checksum(line, (size_t)(sp - line), want) < 0 ||
			    strcmp(want, sum) != 0)
				continue;
		}
		len = hex_decode(serial_hex, r.serial, sizeof(r.serial));
		if (len <= 0 || reason > 10)
			continue;
		r.serial_len = (uint8_t)len;
		r.when = when;
		r.reason = (uint8_t)reason;
		if (strcmp(issuer_hex, "-") != 0) {
			len = hex_decode(issuer_hex, r.issuer_id, sizeof(r.issuer_id));
			if (len > 0)
				r.issuer_id_len = (uint8_t)len;
		}
		ret = revoked_insert(ca, &r);
	}
	ca_file_free(&data);
	return ret;
}

int ca_crl_init(struct ca *ca)
{
	char path[PATH_MAX];
	gnutls_datum_t data = {NULL, 0};
	gnutls_x509_crl_t crl = NULL;
	uint8_t num[32];
	size_t len = sizeof(num), i;
	unsigned crit = 0;

	if (ca_path(path, sizeof(path), ca->dir, CA_FILE_CRL_DER) < 0 ||
	    ca_file_read(path, CA_BUNDLE_MAX * 4, &data) < 0)
		return revoked_load(ca);
	if (gnutls_x509_crl_init(&crl) == 0 &&
	    gnutls_x509_crl_import(crl, &data, GNUTLS_X509_FMT_DER) == 0 &&
	    gnutls_x509_crl_get_number(crl, num, &len, &crit) >= 0 && len <= 8) {
		ca->crl_number = 0;
		for (i = 0; i < len; i++)
			ca->crl_number = ca->crl_number << 8 | num[i];
	}
	if (crl != NULL)
		gnutls_x509_crl_deinit(crl);
	ca_file_free(&data);
	return revoked_load(ca);
}

int ca_crl_update(struct ca *ca, time_t now)
{
	struct ca_issuer *is, **signers = NULL;
	gnutls_datum_t *crls = NULL, pem = {NULL, 0};
	size_t n = 0, i, pem_len = 0;
	char *all = NULL;
	uint64_t number;
	int ret = 0, partial = 0;

	if (ca == NULL)
		return CAPF_EINVAL;
	pthread_mutex_lock(&ca->admin_lock);
	/* Higher than every number before, and close to the time so that
	 * numbers stay increasing across a lost crl.der. */
	number = ca->crl_number + 1;
	if ((uint64_t)now > number)
		number = (uint64_t)now;

	pthread_rwlock_rdlock(&ca->lock);
	for (is = ca->issuers; is != NULL; is = is->next)
		n++;
	signers = calloc(n + 1, sizeof(*signers));
	crls = calloc(n + 1, sizeof(*crls));
	if (signers == NULL || crls == NULL) {
		pthread_rwlock_unlock(&ca->lock);
		ret = CAPF_ENOMEM;
		goto out;
	}
	n = 0;
	/* The current CA first: its CRL is crl.der. */
	signers[n++] = ca->current;
	for (is = ca->issuers; is != NULL; is = is->next)
		if (is != ca->current && is->key != NULL && ca_issuer_trusted(ca, is, now))
			signers[n++] = is;
	/* One CA that cannot sign (its token away, say) must not stop the
	 * CRLs of the others: its CRL is left out this time, and the
	 * failure reported. Only the current CA's is required. */
	{
		size_t kept = 0;
		int first_err = 0;

		for (i = 0; i < n; i++) {
			int r = crl_sign(ca, signers[i], now, number, &crls[kept]);

			if (r == 0) {
				signers[kept++] = signers[i];
			} else {
				if (first_err == 0)
					first_err = r;
				if (i == 0)
					ret = r;
				ca_set_error("cannot sign the CRL of CAPF CA %s: %s", signers[i]->id,
					     capf_strerror(r));
			}
		}
		n = kept;
		if (ret == 0 && first_err < 0)
			partial = 1;
	}
	pthread_rwlock_unlock(&ca->lock);
	if (ret < 0)
		goto out;

	for (i = 0; i < n; i++) {
		ret = gnutls_pem_base64_encode2("X509 CRL", &crls[i], &pem);
		if (ret < 0) {
			ret = ca_gnutls_err(ret);
			goto out;
		}
		ret = ca_text_append(&all, &pem_len, &pem);
		if (ret < 0)
			goto out;
		gnutls_free(pem.data);
		pem.data = NULL;
	}
	ret = ca_file_write(ca->dir, CA_FILE_CRL_DER, crls[0].data, crls[0].size, 0644);
	if (ret == 0)
		ret = ca_file_write(ca->dir, CA_FILE_CRL_PEM, all, pem_len, 0644);
	if (ret < 0)
		goto out;

	pthread_rwlock_wrlock(&ca->lock);
	for (i = 0; i < n; i++) {
		gnutls_free(signers[i]->crl_der.data);
		signers[i]->crl_der = crls[i];
		crls[i].data = NULL;
	}
	free(ca->crl_pem);
	ca->crl_pem = all;
	ca->crl_pem_len = pem_len;
	all = NULL;
	ca->crl_number = number;
	pthread_rwlock_unlock(&ca->lock);
	/* Written for the CAs that could sign; the caller hears of the
	 * others (ca_last_error() names one). */
	ret = partial;
out:
	pthread_mutex_unlock(&ca->admin_lock);
	if (crls != NULL)
		for (i = 0; i < n; i++)
			gnutls_free(crls[i].data);
	free(crls);
	free(signers);
	free(all);
	gnutls_free(pem.data);
	return ret;
}

int ca_crl_get(struct ca *ca, int pem, uint8_t **out, size_t *len)
{
	const uint8_t *src = NULL;
	size_t n = 0;
	int ret = 0;

	if (ca == NULL || out == NULL || len == NULL)
		return CAPF_EINVAL;
	*out = NULL;
	*len = 0;
	pthread_rwlock_rdlock(&ca->lock);
	if (pem) {
		src = (const uint8_t *)ca->crl_pem;
		n = ca->crl_pem_len;
	} else {
		src = ca->current->crl_der.data;
		n = ca->current->crl_der.size;
	}
	if (src == NULL || n == 0) {
		ret = CAPF_ENOENT;
		goto out;
	}
	*out = malloc(n + 1);
	if (*out == NULL) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	memcpy(*out, src, n);
	(*out)[n] = '\0';
	*len = n;
out:
	pthread_rwlock_unlock(&ca->lock);
	return ret;
}
