/*
 * tools/replay/cisco_msg.c - what capf-replay knows of Cisco CAPF v3
 * messages (shared/cisco-capf-v3.md) beyond the parser of proto/cisco.c:
 * the elements in the order sent, their names and values for people, and
 * the signatures a phone makes inside the protocol.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>

#include "tools/replay/internal.h"

size_t replay_cisco_elements(const uint8_t *msg, size_t len, struct replay_cisco_el *out,
			     size_t cap)
{
	const uint8_t *p = msg + CISCO_HEADER_LEN, *end = msg + len;
	size_t n = 0;

	if (len < CISCO_HEADER_LEN)
		return 0;
	while (end - p >= 3 && n < cap) {
		size_t l = (size_t)p[1] << 8 | p[2];

		if ((size_t)(end - p - 3) < l)
			break;
		out[n].tag = p[0];
		out[n].v = p + 3;
		out[n].len = l;
		n++;
		p += 3 + l;
	}
	return n;
}

const char *replay_cisco_el_name(unsigned tag)
{
	static const char *const names[] = {
		[CISCO_EL_REASON] = "REASON",
		[CISCO_EL_REASON_INFO] = "REASON_INFO",
		[CISCO_EL_CERTIFICATE_TYPE] = "CERTIFICATE_TYPE",
		[CISCO_EL_CERTIFICATE] = "CERTIFICATE",
		[5] = "CERTIFICATE_ID",
		[CISCO_EL_SIGNED_DATA] = "SIGNED_DATA",
		[CISCO_EL_VERSION] = "VERSION",
		[CISCO_EL_AUTH_TYPE] = "AUTH_TYPE",
		[CISCO_EL_PUBLIC_KEY] = "PUBLIC_KEY",
		[CISCO_EL_KEY_SIZE] = "KEY_SIZE",
		[CISCO_EL_PASSWORD] = "PASSWORD",
		[CISCO_EL_RETRY_DELAY] = "RETRY_DELAY",
		[CISCO_EL_DEVICE_NAME] = "DEVICE_NAME",
		[CISCO_EL_SUDI_DATA] = "SUDI_DATA",
		[CISCO_EL_KEY_TYPE] = "KEY_TYPE",
		[CISCO_EL_CURVE] = "CURVE",
		[19] = "DIGEST_TYPE",
		[CISCO_EL_SHA2_SIGNED_DATA] = "SHA2_SIGNED_DATA",
	};
	static _Thread_local char other[16];

	if (tag < sizeof(names) / sizeof(names[0]) && names[tag])
		return names[tag];
	snprintf(other, sizeof(other), "tag %u", tag);
	return other;
}

static const char *u8_meaning(unsigned tag, unsigned v)
{
	switch (tag) {
	case CISCO_EL_REASON:
		return v == CISCO_REASON_NO_ACTION     ? "no action"
		       : v == CISCO_REASON_SUCCESS     ? "success"
		       : v == CISCO_REASON_FAILURE     ? "failure"
		       : v == CISCO_REASON_UNKNOWN_DEVICE ? "unknown device"
							  : NULL;
	case CISCO_EL_CERTIFICATE_TYPE:
		return v == 1 ? "LSC" : v == 2 ? "MIC" : NULL;
	case CISCO_EL_AUTH_TYPE:
		return v == 0   ? "none"
		       : v == 1 ? "password"
		       : v == 2 ? "null string"
		       : v == 3 ? "LSC, MIC fallback"
		       : v == 4 ? "MIC"
				: NULL;
	case CISCO_EL_KEY_TYPE:
		return v == 0 ? "RSA" : v == 1 ? "EC" : NULL;
	case CISCO_EL_CURVE:
		return v == 0 ? "P-256" : v == 1 ? "P-384" : v == 2 ? "P-521" : NULL;
	default:
		return NULL;
	}
}

/* A NUL-terminated text element, quoted; what is odd about it said. */
static void text_value(const uint8_t *v, size_t len, char *out, size_t cap)
{
	size_t n = 0;
	bool nul = len > 0 && v[len - 1] == 0;

	if (cap < 8)
		return;
	out[n++] = '"';
	for (size_t i = 0; i < (nul ? len - 1 : len) && n + 6 < cap; i++) {
		if (v[i] >= 0x20 && v[i] < 0x7f && v[i] != '"' && v[i] != '\\')
			out[n++] = (char)v[i];
		else
			n += (size_t)snprintf(out + n, cap - n, "\\x%02x", v[i]);
	}
	out[n++] = '"';
	out[n] = '\0';
	if (!nul)
		snprintf(out + n, cap - n, " (no NUL)");
}

static void pubkey_value(const uint8_t *v, size_t len, char *out, size_t cap)
{
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t d = { (unsigned char *)v, (unsigned)len };
	gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
	unsigned bits = 0;
	int pk;

	if (gnutls_pubkey_init(&pub) < 0 || gnutls_pubkey_import(pub, &d, GNUTLS_X509_FMT_DER) < 0) {
		snprintf(out, cap, "%zu bytes, no public key", len);
		goto out;
	}
	pk = gnutls_pubkey_get_pk_algorithm(pub, &bits);
	if (pk == GNUTLS_PK_ECDSA) {
		(void)gnutls_pubkey_export_ecc_raw(pub, &curve, NULL, NULL);
		snprintf(out, cap, "ec-%s key", gnutls_ecc_curve_get_name(curve));
	} else {
		snprintf(out, cap, "%s-%u key", pk == GNUTLS_PK_RSA ? "rsa"
					       : gnutls_pk_get_name((gnutls_pk_algorithm_t)pk),
			 bits);
	}
out:
	if (pub)
		gnutls_pubkey_deinit(pub);
}

static void hex_value(const uint8_t *v, size_t len, char *out, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < len && n + 3 < cap; i++)
		n += (size_t)snprintf(out + n, cap - n, "%02x", v[i]);
	if (len == 0)
		snprintf(out, cap, "empty");
}

void replay_cisco_el_value(unsigned tag, const uint8_t *v, size_t len, char *out, size_t cap)
{
	const char *what;

	out[0] = '\0';
	switch (tag) {
	case CISCO_EL_REASON:
	case CISCO_EL_CERTIFICATE_TYPE:
	case CISCO_EL_VERSION:
	case CISCO_EL_AUTH_TYPE:
	case CISCO_EL_KEY_TYPE:
	case CISCO_EL_CURVE:
		if (len != 1)
			break;
		what = u8_meaning(tag, v[0]);
		if (what)
			snprintf(out, cap, "%u (%s)", v[0], what);
		else
			snprintf(out, cap, "%u", v[0]);
		return;
	case CISCO_EL_KEY_SIZE:
	case CISCO_EL_RETRY_DELAY:
		if (len != 2)
			break;
		snprintf(out, cap, "%u", (unsigned)v[0] << 8 | v[1]);
		return;
	case CISCO_EL_REASON_INFO:
	case CISCO_EL_DEVICE_NAME:
		text_value(v, len, out, cap);
		return;
	case CISCO_EL_PASSWORD:
		/* The string itself is a secret. */
		if (len == 1 && v[0] == 0)
			snprintf(out, cap, "none");
		else
			snprintf(out, cap, "a string of %zu characters%s",
				 len && v[len - 1] == 0 ? len - 1 : len,
				 len && v[len - 1] == 0 ? "" : " (no NUL)");
		return;
	case CISCO_EL_PUBLIC_KEY:
		pubkey_value(v, len, out, cap);
		return;
	case CISCO_EL_CERTIFICATE:
	case CISCO_EL_SIGNED_DATA:
	case CISCO_EL_SHA2_SIGNED_DATA:
	case CISCO_EL_SUDI_DATA:
		snprintf(out, cap, "%zu bytes", len);
		return;
	default:
		break;
	}
	if (len <= 32)
		hex_value(v, len, out, cap);
	else
		snprintf(out, cap, "%zu bytes", len);
}

void replay_cisco_describe(const uint8_t *msg, size_t len, char *out, size_t cap)
{
	struct cisco_msg m;
	unsigned reason;

	if (cisco_msg_parse(msg, len, &m) < 0) {
		snprintf(out, cap, "an undecodable message (%s)", m.why ? m.why : "?");
		return;
	}
	if (cisco_el_u8(&m, CISCO_EL_REASON, &reason) == 0 && u8_meaning(CISCO_EL_REASON, reason))
		snprintf(out, cap, "%s reason %u (%s)", transcript_cisco_type(m.command), reason,
			 u8_meaning(CISCO_EL_REASON, reason));
	else if (cisco_el_u8(&m, CISCO_EL_REASON, &reason) == 0)
		snprintf(out, cap, "%s reason %u", transcript_cisco_type(m.command), reason);
	else if (!strcmp(transcript_cisco_type(m.command), "unknown"))
		snprintf(out, cap, "command %u", m.command);
	else
		snprintf(out, cap, "%s", transcript_cisco_type(m.command));
}

int replay_cisco_sign(gnutls_x509_privkey_t key, int sha512, const uint8_t *msg, size_t len,
		      gnutls_datum_t *sig)
{
	gnutls_digest_algorithm_t dig = sha512 ? GNUTLS_DIG_SHA512 : GNUTLS_DIG_SHA1;
	gnutls_privkey_t pk = NULL;
	uint8_t hash[64];
	gnutls_datum_t h = { hash, (unsigned)gnutls_hash_get_len(dig) };
	int ret = CAPF_ECRYPTO;

	sig->data = NULL;
	sig->size = 0;
	if (gnutls_hash_fast(dig, msg, len, hash) < 0 || gnutls_privkey_init(&pk) < 0)
		return CAPF_ECRYPTO;
	if (gnutls_privkey_import_x509(pk, key, 0) < 0)
		goto out;
	if (gnutls_privkey_get_pk_algorithm(pk, NULL) == GNUTLS_PK_RSA)
		ret = gnutls_privkey_sign_hash(pk, dig, GNUTLS_PRIVKEY_SIGN_FLAG_TLS1_RSA, &h, sig);
	else
		ret = gnutls_privkey_sign_hash2(pk, gnutls_pk_to_sign(GNUTLS_PK_ECDSA, dig), 0, &h,
						sig);
	ret = ret < 0 ? CAPF_ECRYPTO : 0;
out:
	gnutls_privkey_deinit(pk);
	return ret;
}

int replay_cisco_signed_name(const char *name, const uint8_t *der, size_t len, uint8_t **out,
			     size_t *out_len)
{
	size_t nl = strlen(name);

	*out = malloc(nl + 1 + len);
	if (!*out)
		return CAPF_ENOMEM;
	memcpy(*out, name, nl);
	(*out)[nl] = 0;
	memcpy(*out + nl + 1, der, len);
	*out_len = nl + 1 + len;
	return 0;
}

int replay_cisco_signed_sid(uint32_t sid, const uint8_t *der, size_t len, uint8_t **out,
			    size_t *out_len)
{
	*out = malloc(4 + len);
	if (!*out)
		return CAPF_ENOMEM;
	(*out)[0] = (uint8_t)sid;
	(*out)[1] = (uint8_t)(sid >> 8);
	(*out)[2] = (uint8_t)(sid >> 16);
	(*out)[3] = (uint8_t)(sid >> 24);
	memcpy(*out + 4, der, len);
	*out_len = 4 + len;
	return 0;
}

bool replay_cisco_sudi_part(const uint8_t *v, size_t len, unsigned tag, const uint8_t **out,
			    size_t *out_len)
{
	const uint8_t *p = v, *end = v + len;

	while (end - p >= 3) {
		size_t l = (size_t)p[1] << 8 | p[2];

		if ((size_t)(end - p - 3) < l)
			return false;
		if (p[0] == tag) {
			*out = p + 3;
			*out_len = l;
			return true;
		}
		p += 3 + l;
	}
	return false;
}

void replay_cisco_device(const struct cisco_msg *m, const char *fallback, char *out, size_t cap)
{
	const struct cisco_el *e = &m->el[CISCO_EL_DEVICE_NAME];
	size_t n;

	if (!e->data) {
		snprintf(out, cap, "%s", fallback);
		return;
	}
	n = e->len && e->data[e->len - 1] == 0 ? e->len - 1 : e->len;
	if (n >= cap)
		n = cap - 1;
	memcpy(out, e->data, n);
	out[n] = '\0';
}
