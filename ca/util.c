/*
 * ca/util.c - what every file of ca/ uses: the error text of the last
 * failure, GnuTLS codes to capf's, key identifiers, serials, times,
 * fingerprints, certificate lists and CNs.
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
static _Thread_local char last_error[512];

void ca_set_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
}

void ca_clear_error(void)
{
	last_error[0] = '\0';
}

int ca_has_error(void)
{
	return last_error[0] != '\0';
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

int ca_text_append(char **text, size_t *len, const gnutls_datum_t *d)
{
	char *grown = realloc(*text, *len + d->size + 1);

	if (grown == NULL)
		return CAPF_ENOMEM;
	memcpy(grown + *len, d->data, d->size);
	*len += d->size;
	grown[*len] = '\0';
	*text = grown;
	return 0;
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

int ca_check_time(gnutls_x509_crt_t crt, time_t now)
{
	time_t start = gnutls_x509_crt_get_activation_time(crt);
	time_t end = gnutls_x509_crt_get_expiration_time(crt);

	/* GnuTLS reports 99991231235959Z, "no well-defined expiration"
	 * (RFC 5280 4.1.2.5, used by 802.1AR IDevIDs), as (time_t)-1. */
	if (start == (time_t)-1)
		return CAPF_EUNTRUSTED;
	if (now < start || (end != (time_t)-1 && now > end))
		return CAPF_EEXPIRED;
	return 0;
}

int ca_fingerprint_der(const uint8_t *der, size_t len, char out[CA_FPR_HEX_LEN + 1])
{
	uint8_t fpr[32];

	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, der, len, fpr) < 0)
		return CAPF_ECRYPTO;
	hex_encode(fpr, sizeof(fpr), out);
	return 0;
}

int ca_fingerprint(gnutls_x509_crt_t crt, char out[CA_FPR_HEX_LEN + 1])
{
	uint8_t fpr[32];
	size_t len = sizeof(fpr);
	int ret;

	ret = gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fpr, &len);
	if (ret < 0 || len != sizeof(fpr))
		return CAPF_ECRYPTO;
	hex_encode(fpr, len, out);
	return 0;
}

int ca_crt_parse_all(const uint8_t *data, size_t len, gnutls_x509_crt_t **out, unsigned *n)
{
	gnutls_datum_t in = {(unsigned char *)data, (unsigned)len};
	gnutls_x509_crt_t *list = NULL;
	unsigned count = 0, i;
	int ret;

	*out = NULL;
	*n = 0;
	if (data == NULL || len == 0 || len > CA_BUNDLE_MAX)
		return CAPF_EBADMSG;
	/* PEM if it says so; otherwise one DER certificate. */
	if (memmem(data, len, "-----BEGIN", 10) != NULL)
		ret = gnutls_x509_crt_list_import2(&list, &count, &in, GNUTLS_X509_FMT_PEM, 0);
	else
		ret = gnutls_x509_crt_list_import2(&list, &count, &in, GNUTLS_X509_FMT_DER, 0);
	if (ret == GNUTLS_E_MEMORY_ERROR)
		return CAPF_ENOMEM;
	if (ret < 0 || count == 0) {
		gnutls_free(list);
		return CAPF_EBADMSG;
	}
	if (count > CA_CHAIN_MAX * 16) {
		for (i = 0; i < count; i++)
			gnutls_x509_crt_deinit(list[i]);
		gnutls_free(list);
		return CAPF_EBADMSG;
	}
	*out = list;
	*n = count;
	return 0;
}

/*
 * The CN of a certificate, as the bytes of its string value. GnuTLS's
 * text form escapes RFC 4514 specials, so the DER value is read instead
 * and only the string types that carry ASCII/UTF-8 bytes are accepted.
 */
int ca_leaf_cn(gnutls_x509_crt_t leaf, char *cn, size_t size, size_t *cn_len)
{
	uint8_t raw[CA_CN_MAX * 4 + 8];
	size_t raw_len = sizeof(raw);
	size_t extra_len = sizeof(raw);
	size_t hdr, len;

	if (gnutls_x509_crt_get_dn_by_oid(leaf, GNUTLS_OID_X520_COMMON_NAME, 0, 1, raw, &raw_len) <
	    0)
		return CAPF_EIDENTITY;
	/* A second CN would make "the" name ambiguous. */
	if (gnutls_x509_crt_get_dn_by_oid(leaf, GNUTLS_OID_X520_COMMON_NAME, 1, 1, NULL,
					  &extra_len) != GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
		return CAPF_EIDENTITY;
	if (raw_len < 2)
		return CAPF_EIDENTITY;
	switch (raw[0]) {
	case 0x0c: /* UTF8String */
	case 0x13: /* PrintableString */
	case 0x14: /* TeletexString */
	case 0x16: /* IA5String */
		break;
	default:
		return CAPF_EIDENTITY;
	}
	if (raw[1] < 0x80) {
		hdr = 2;
		len = raw[1];
	} else if (raw[1] == 0x81 && raw_len >= 3) {
		hdr = 3;
		len = raw[2];
	} else {
		return CAPF_EIDENTITY;
	}
	if (hdr + len != raw_len || len >= size || memchr(raw + hdr, 0, len) != NULL)
		return CAPF_EIDENTITY;
	memcpy(cn, raw + hdr, len);
	cn[len] = '\0';
	*cn_len = len;
	return 0;
}
