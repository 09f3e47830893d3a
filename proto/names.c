/*
 * Names of protocol values for people and scripts, device name syntax and
 * hex helpers.
 */
#include "config.h"

#include <limits.h>
#include <string.h>

#include "proto/proto.h"

int device_name_valid(const char *name)
{
	size_t i;

	if (!name || !name[0])
		return 0;
	for (i = 0; name[i]; i++) {
		char c = name[i];

		if (i >= DEVICE_NAME_MAX)
			return 0;
		/*
		 * Spelled out rather than isalnum(), whose answer depends on
		 * the locale; the name ends up in certificate subjects and
		 * file names, so only this fixed set is safe.
		 */
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return 0;
	}
	return 1;
}

int mic_cn_names_device(const char *cn, size_t cn_len, const char *device)
{
	const char *name;
	size_t dl, nl;

	if (cn == NULL || device == NULL)
		return 0;
	dl = strlen(device);
	if (dl == 0 || memchr(cn, '\0', cn_len) != NULL)
		return 0;
	/* The one name a MIC names: what follows the last "-" of its CN
	 * (manufacturers prefix the model), or the whole CN. Exactly one,
	 * so that no MIC is ever good for two records. */
	name = cn;
	for (size_t i = 0; i < cn_len; i++)
		if (cn[i] == '-')
			name = cn + i + 1;
	nl = cn_len - (size_t)(name - cn);
	return nl == dl && memcmp(name, device, dl) == 0;
}

/* Indexed by the enum values of capf.proto, which are dense from 0. */
static const char *const op_names[] = {
    [CAPF__OPERATION__OP_NONE] = "none",
    [CAPF__OPERATION__OP_INSTALL] = "install",
    [CAPF__OPERATION__OP_DELETE] = "delete",
    [CAPF__OPERATION__OP_FETCH] = "fetch",
};

static const char *const auth_names[] = {
    [CAPF__AUTH_MODE__AUTH_UNSPECIFIED] = "unspecified",
    [CAPF__AUTH_MODE__AUTH_MIC] = "mic",
    [CAPF__AUTH_MODE__AUTH_STRING] = "string",
    [CAPF__AUTH_MODE__AUTH_NULL_STRING] = "null",
    [CAPF__AUTH_MODE__AUTH_LSC_OR_MIC] = "lsc-or-mic",
    [CAPF__AUTH_MODE__AUTH_MIC_OR_LSC] = "mic-or-lsc",
};

static const char *const key_type_names[] = {
    [CAPF__KEY_TYPE__KEY_UNSPECIFIED] = "unspecified", [CAPF__KEY_TYPE__KEY_EC_P256] = "ec-p256",
    [CAPF__KEY_TYPE__KEY_EC_P384] = "ec-p384",	       [CAPF__KEY_TYPE__KEY_RSA_2048] = "rsa-2048",
    [CAPF__KEY_TYPE__KEY_RSA_3072] = "rsa-3072",       [CAPF__KEY_TYPE__KEY_RSA_4096] = "rsa-4096",
    [CAPF__KEY_TYPE__KEY_EC_P521] = "ec-p521",
};

static const char *const key_order_names[] = {
    [CAPF__KEY_ORDER__KEY_ORDER_UNSPECIFIED] = "unspecified",
    [CAPF__KEY_ORDER__KEY_ORDER_RSA_ONLY] = "rsa-only",
    [CAPF__KEY_ORDER__KEY_ORDER_EC_ONLY] = "ec-only",
    [CAPF__KEY_ORDER__KEY_ORDER_EC_PREFERRED] = "ec-preferred",
};

static const char *const status_names[] = {
    [CAPF__OP_STATUS__STATUS_NONE] = "none",	 [CAPF__OP_STATUS__STATUS_PENDING] = "pending",
    [CAPF__OP_STATUS__STATUS_ISSUED] = "issued", [CAPF__OP_STATUS__STATUS_SUCCESS] = "success",
    [CAPF__OP_STATUS__STATUS_FAILED] = "failed",
};

static const char *const cert_state_names[] = {
    [CAPF__CERT_STATE__CERT_UNKNOWN] = "unknown",
    [CAPF__CERT_STATE__CERT_UNCONFIRMED] = "unconfirmed",
    [CAPF__CERT_STATE__CERT_ACTIVE] = "active",
    [CAPF__CERT_STATE__CERT_REVOKED] = "revoked",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const char *name_of(const char *const *names, size_t n, int v)
{
	if (v < 0 || (size_t)v >= n || !names[v])
		return "?";
	return names[v];
}

static int value_of(const char *const *names, size_t n, const char *s, int *out)
{
	size_t i;

	if (!s || !out)
		return CAPF_EINVAL;
	for (i = 0; i < n; i++) {
		if (names[i] && strcmp(names[i], s) == 0) {
			*out = (int)i;
			return 0;
		}
	}
	return CAPF_EINVAL;
}

const char *op_name(int op)
{
	return name_of(op_names, NELEM(op_names), op);
}

const char *auth_name(int auth)
{
	return name_of(auth_names, NELEM(auth_names), auth);
}

const char *key_type_name(int kt)
{
	return name_of(key_type_names, NELEM(key_type_names), kt);
}

const char *status_name(int st)
{
	return name_of(status_names, NELEM(status_names), st);
}

const char *cert_state_name(int st)
{
	return name_of(cert_state_names, NELEM(cert_state_names), st);
}

int op_from_name(const char *s, int *out)
{
	return value_of(op_names, NELEM(op_names), s, out);
}

int auth_from_name(const char *s, int *out)
{
	return value_of(auth_names, NELEM(auth_names), s, out);
}

int key_type_from_name(const char *s, int *out)
{
	return value_of(key_type_names, NELEM(key_type_names), s, out);
}

const char *key_order_name(int ko)
{
	return name_of(key_order_names, NELEM(key_order_names), ko);
}

int key_order_from_name(const char *s, int *out)
{
	return value_of(key_order_names, NELEM(key_order_names), s, out);
}

void hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int hex_decode(const char *in, uint8_t *out, size_t out_cap)
{
	size_t len, i;

	if (!in)
		return CAPF_EINVAL;
	len = strlen(in);
	if (len % 2 != 0 || len / 2 > out_cap || len / 2 > INT_MAX)
		return CAPF_EINVAL;
	if (len > 0 && !out)
		return CAPF_EINVAL;
	/* Check everything first so that a bad input leaves out untouched. */
	for (i = 0; i < len; i++)
		if (hex_digit(in[i]) < 0)
			return CAPF_EINVAL;
	for (i = 0; i < len / 2; i++)
		out[i] = (uint8_t)(hex_digit(in[2 * i]) << 4 | hex_digit(in[2 * i + 1]));
	return (int)(len / 2);
}
