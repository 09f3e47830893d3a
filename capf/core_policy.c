/*
 * The enrollment core's decisions: who the phone is (the record's
 * authentication mode applied to the evidence the session has), whether
 * the record still asks for what the session does, and which key the
 * phone must make. Pure functions of the session and a view.
 */
#include "config.h"

#include <string.h>

#include "capf/core_internal.h"

bool core_mic_names(const char *cn, const char *device)
{
	return cn != NULL && mic_cn_names_device(cn, strlen(cn), device);
}

/* ---- by certificate ---------------------------------------------------- */

static int auth_mic(const struct core *s)
{
	if (!s->peer.present)
		return CAPF_ENOCERT;
	if (s->peer.mic_result < 0)
		return s->peer.mic_result;
	if (!core_mic_names(s->peer.mic_cn[0] != '\0' ? s->peer.mic_cn : s->peer.cn, s->device))
		return CAPF_EIDENTITY;
	return 0;
}

/*
 * Only the device's current, unrevoked, unexpired LSC from a trusted CAPF
 * CA authenticates it: the transport checked the chain and the CRL, the
 * store's record decides the rest.
 */
static int auth_lsc(const struct core *s, const struct core_view *v, time_t now)
{
	const Capf__Certificate *c = v->presented;

	if (!s->peer.present)
		return CAPF_ENOCERT;
	if (s->peer.lsc_result < 0)
		return s->peer.lsc_result;
	if (strcmp(s->peer.cn, s->device) != 0)
		return CAPF_EIDENTITY;
	if (c == NULL)
		return CAPF_EUNTRUSTED; /* not a certificate this CAPF recorded */
	if (c->device == NULL || strcmp(c->device, s->device) != 0)
		return CAPF_EIDENTITY;
	if (c->state == CAPF__CERT_STATE__CERT_REVOKED)
		return CAPF_EREVOKED;
	if (now < c->not_before || now >= c->not_after)
		return CAPF_EEXPIRED;
	if (c->state != CAPF__CERT_STATE__CERT_ACTIVE ||
	    !core_serial_eq(&v->device->lsc_serial, s->peer.serial, s->peer.serial_len))
		return CAPF_ESUPERSEDED;
	return 0;
}

/* With two ways in, the error worth reporting is the one of the kind of
 * certificate the phone presented. */
static int auth_either(struct core *s, const struct core_view *v, time_t now, bool lsc_first)
{
	int rl = auth_lsc(s, v, now);
	int rm = auth_mic(s);

	if (lsc_first ? rl == 0 : (rm != 0 && rl == 0)) {
		s->auth_method = "lsc";
		return 0;
	}
	if (rm == 0) {
		s->auth_method = "mic";
		return 0;
	}
	return s->peer.mic_result == CAPF_EUNTRUSTED && s->peer.lsc_result != CAPF_EUNTRUSTED ? rl
											  : rm;
}

/* ---- by string ----------------------------------------------------------- */

static int auth_string(struct core *s, const Capf__Device *d, time_t now, bool first,
		       const char **why)
{
	const Capf__AuthSecret *sec = d->auth_secret;

	if (!first) {
		/* Checked once per session, against the record as it was. */
		*why = s->string_ok ? NULL : "the device now asks for an authentication string";
		return s->string_ok ? 0 : CAPF_EAUTH;
	}
	if (sec == NULL || sec->hash.len != AUTH_HASH_LEN || sec->salt.len == 0 ||
	    sec->salt.len > sizeof(s->salt) || sec->iterations == 0) {
		*why = "no authentication string is set for this device";
		return CAPF_EAUTH;
	}
	if (d->locked_until != 0 && now < d->locked_until) {
		/* The right string is refused too while the lock holds. */
		*why = "locked out after too many wrong authentication strings";
		return CAPF_ELOCKOUT;
	}
	if (!s->has_secret) {
		*why = "an authentication string is required";
		return CAPF_EAUTH;
	}
	memcpy(s->salt, sec->salt.data, sec->salt.len);
	s->salt_len = sec->salt.len;
	memcpy(s->hash, sec->hash.data, AUTH_HASH_LEN);
	s->iterations = sec->iterations;
	return CORE_NEED_VERIFY;
}

static int authenticate(struct core *s, const struct core_view *v, time_t now, bool first,
			const char **why)
{
	int ret;

	switch (v->device->auth) {
	case CAPF__AUTH_MODE__AUTH_UNSPECIFIED: /* records older than the modes */
	case CAPF__AUTH_MODE__AUTH_MIC:
		ret = auth_mic(s);
		if (ret == 0)
			s->auth_method = "mic";
		return ret;
	case CAPF__AUTH_MODE__AUTH_LSC_OR_MIC:
		return auth_either(s, v, now, true);
	case CAPF__AUTH_MODE__AUTH_MIC_OR_LSC:
		return auth_either(s, v, now, false);
	case CAPF__AUTH_MODE__AUTH_STRING:
		ret = auth_string(s, v->device, now, first, why);
		if (ret == 0)
			s->auth_method = "string";
		return ret;
	case CAPF__AUTH_MODE__AUTH_NULL_STRING:
		if (!s->cfg.allow_null_string) {
			*why = "authentication by null string is disabled on this server";
			return CAPF_EAUTH;
		}
		s->auth_method = "null";
		return 0;
	default:
		*why = "authentication mode not supported by this server";
		return CAPF_ENOTSUP;
	}
}

/* ---- the operation ----------------------------------------------------------- */

/* Inside the renewal window: the phone holds its current LSC, in the last
 * renew_percent of that certificate's life. */
static bool renewal_due(struct core *s, const struct core_view *v, time_t now)
{
	const Capf__Certificate *c = v->presented;
	int64_t life, start;

	if (s->cfg.renew_percent == 0 || c == NULL || auth_lsc(s, v, now) != 0)
		return false;
	life = c->not_after - c->not_before;
	start = c->not_after - life * (int64_t)s->cfg.renew_percent / 100;
	return now >= start;
}

static bool phone_can(const struct core *s, int op)
{
	switch (op) {
	case CAPF__OPERATION__OP_INSTALL:
		return true;
	case CAPF__OPERATION__OP_DELETE:
		return (s->caps & CORE_CAP_DELETE) != 0;
	case CAPF__OPERATION__OP_FETCH:
		return (s->caps & CORE_CAP_FETCH) != 0;
	default:
		return false;
	}
}

int core_decide(struct core *s, const struct core_view *v, time_t now, bool first,
		const char **why)
{
	const Capf__Device *d = v->device;
	int ret;

	*why = NULL;
	if (d == NULL) {
		*why = first ? "unknown device" : "the device record was removed";
		return first ? CAPF_EUNKNOWN_DEVICE : CAPF_ECANCELED;
	}
	if (first) {
		s->renewal = false;
		if (d->op == CAPF__OPERATION__OP_NONE) {
			if (!renewal_due(s, v, now)) {
				if (s->caps & CORE_CAP_AUTH_FIRST) {
					ret = authenticate(s, v, now, first, why);
					if (ret < 0)
						return ret;
					if (ret == CORE_NEED_VERIFY) {
						s->idle_after_auth = true;
						return ret;
					}
				}
				*why = "nothing to do for this device";
				return CAPF_ENO_OPERATION;
			}
			/* Re-keyed because its LSC is old enough, by that LSC. */
			s->renewal = true;
			s->auth_method = "lsc";
			return 0;
		}
	} else if (s->renewal) {
		if (d->op != CAPF__OPERATION__OP_NONE || d->op_generation != s->op_generation) {
			*why = "an administrator scheduled another operation meanwhile";
			return CAPF_ECANCELED;
		}
		return 0;
	} else if ((int)d->op != s->op) {
		*why = d->op == CAPF__OPERATION__OP_NONE
			       ? "the operation was cancelled by an administrator"
			       : "the operation was changed by an administrator";
		return CAPF_ECANCELED;
	}
	if (d->deadline != 0 && now > d->deadline) {
		*why = "the operation's deadline has passed";
		return CAPF_EDEADLINE;
	}
	if (d->op != CAPF__OPERATION__OP_INSTALL && d->op != CAPF__OPERATION__OP_DELETE &&
	    d->op != CAPF__OPERATION__OP_FETCH) {
		*why = "operation not supported by this server";
		return CAPF_ENOTSUP;
	}
	if (!phone_can(s, d->op)) {
		*why = "the phone's protocol version cannot carry this operation";
		return CAPF_ENOTSUP;
	}
	ret = authenticate(s, v, now, first, why);
	if (ret < 0 && *why == NULL && !first)
		*why = "the phone no longer meets the device's authentication mode";
	return ret;
}

/* ---- keys ------------------------------------------------------------------------ */

static bool is_rsa(int kt)
{
	return kt == CAPF__KEY_TYPE__KEY_RSA_2048 || kt == CAPF__KEY_TYPE__KEY_RSA_3072 ||
	       kt == CAPF__KEY_TYPE__KEY_RSA_4096;
}

static bool is_ec(int kt)
{
	return kt == CAPF__KEY_TYPE__KEY_EC_P256 || kt == CAPF__KEY_TYPE__KEY_EC_P384 ||
	       kt == CAPF__KEY_TYPE__KEY_EC_P521;
}

static bool phone_supports(const struct core *s, int kt)
{
	if (s->nsupported == 0)
		return true; /* a phone that does not say makes what it is asked */
	for (size_t i = 0; i < s->nsupported; i++)
		if (s->supported[i] == kt)
			return true;
	return false;
}

int core_pick_key(const struct core *s, const Capf__Device *d, int *out, const char **why)
{
	int rsa = is_rsa(d->key_type) ? (int)d->key_type : CAPF__KEY_TYPE__KEY_RSA_2048;
	int ec = is_ec(d->ec_key_type)	 ? (int)d->ec_key_type
		 : is_ec(d->key_type) ? (int)d->key_type
				      : CAPF__KEY_TYPE__KEY_EC_P256;
	int want;

	switch (d->key_order) {
	case CAPF__KEY_ORDER__KEY_ORDER_RSA_ONLY:
		want = rsa;
		break;
	case CAPF__KEY_ORDER__KEY_ORDER_EC_ONLY:
		want = ec;
		break;
	case CAPF__KEY_ORDER__KEY_ORDER_EC_PREFERRED:
		want = phone_supports(s, ec) ? ec : rsa;
		break;
	default:
		want = d->key_type != CAPF__KEY_TYPE__KEY_UNSPECIFIED ? (int)d->key_type
								       : CAPF__KEY_TYPE__KEY_EC_P256;
		break;
	}
	if (!phone_supports(s, want)) {
		*why = "the phone cannot make any key the device's key policy allows";
		return CAPF_EPOLICY;
	}
	*out = want;
	return 0;
}

int64_t core_lockout_until(const struct core *s, uint32_t lockouts, time_t now)
{
	uint64_t t = s->cfg.lockout_seconds;

	/* Doubling, capped so that it neither overflows nor outlasts a year. */
	for (uint32_t i = 0; i < lockouts && t < 365u * 86400u; i++)
		t *= 2;
	if (t > 365u * 86400u)
		t = 365u * 86400u;
	return (int64_t)now + (int64_t)t;
}
