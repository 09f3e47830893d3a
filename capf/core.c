/*
 * The enrollment core: one instance per phone session. It decides
 * everything about a session (who the phone is, whether it may do what its
 * record says, which key it may have, what is recorded and when the
 * certificate may leave) and does nothing itself: it answers each event
 * with effects that the glue carries out (capf/core.h).
 *
 * The rules it keeps:
 *  - the server decides identity: the device is the one the phone's
 *    evidence proves, by the record's authentication mode;
 *  - write-ahead: the DELIVER message is produced only after the persist
 *    of the certificate record succeeded;
 *  - no lost update: every record is written at the revision it was read;
 *    on a conflict the session reads again and decides again, and it
 *    re-checks the operation, authentication, key policy and deadline
 *    against the current record before it signs and before it records;
 *  - one current LSC: a device has at most one unacknowledged LSC; the
 *    same key gets it again, another key has it revoked first; the LSC an
 *    acknowledged one replaces is revoked (superseded).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capf/core.h"

/* RFC 5280 CRLReason superseded. */
#define REASON_SUPERSEDED 4

struct core {
	struct core_config cfg;
	enum core_state state;
	char device[DEVICE_NAME_MAX + 1];
	struct core_peer peer;
	uint8_t binding[CORE_BINDING_MAX];
	size_t binding_len;
	bool authenticated;
	const char *auth_method;

	/* The operation as authenticated at the claim. */
	uint64_t op_generation;
	int op;
	int key_type;

	struct core_key key;
	unsigned conflicts;
	int ack_outcome; /* recorded refusal to report once persisted */

	/* The LSC of this session (signed now, or recorded earlier). */
	uint8_t *lsc_der;
	size_t lsc_der_len;
	uint8_t serial[CORE_SERIAL_MAX];
	size_t serial_len;
	time_t not_before, not_after, issued_at;
	uint8_t lsc_spki[CORE_HASH_LEN];
	uint8_t *chain[CORE_MAX_CHAIN];
	size_t chain_lens[CORE_MAX_CHAIN];
	size_t nchain;

	/* Records handed out with CORE_FX_PERSIST; they borrow from the view
	 * of the same event and from the fields above. */
	Capf__Device dev_out;
	Capf__Certificate cert_out[CORE_MAX_RECS];
	Capf__StoreRecord rec[CORE_MAX_RECS];
	Capf__StoreRecord *rec_ptrs[CORE_MAX_RECS];
	size_t nrec;
	struct core_revoked revoked[CORE_MAX_RECS];
	size_t nrevoked;
	char text[160];
};

typedef int (*core_handler)(struct core *s, const struct core_event *ev, struct core_out *out);

/* ---- helpers ----------------------------------------------------------- */

static const char *const state_names[CORE_S__COUNT] = {
	[CORE_S_NEW] = "new",
	[CORE_S_WAIT_CLAIM] = "wait-claim",
	[CORE_S_LOAD_CLAIM] = "load-claim",
	[CORE_S_WAIT_KEY] = "wait-key",
	[CORE_S_LOAD_KEY] = "load-key",
	[CORE_S_SUPERSEDE] = "supersede",
	[CORE_S_SIGN] = "sign",
	[CORE_S_PERSIST_ISSUE] = "persist-issue",
	[CORE_S_LOAD_ISSUE] = "load-issue",
	[CORE_S_WAIT_ACK] = "wait-ack",
	[CORE_S_LOAD_ACK] = "load-ack",
	[CORE_S_PERSIST_ACK] = "persist-ack",
	[CORE_S_DONE] = "done",
};

static const char *const event_names[CORE_EV__COUNT] = {
	[CORE_EV_START] = "start",	   [CORE_EV_CLAIM] = "claim",
	[CORE_EV_KEY] = "key",		   [CORE_EV_LOADED] = "loaded",
	[CORE_EV_PERSISTED] = "persisted", [CORE_EV_SIGNED] = "signed",
	[CORE_EV_ACK] = "ack",		   [CORE_EV_PEER_END] = "peer-end",
	[CORE_EV_TIMEOUT] = "timeout",	   [CORE_EV_ABORT] = "abort",
};

const char *core_state_name(int state)
{
	return state >= 0 && state < CORE_S__COUNT ? state_names[state] : "?";
}

const char *core_event_name(int type)
{
	return type >= 0 && type < CORE_EV__COUNT ? event_names[type] : "?";
}

enum core_state core_state(const struct core *s)
{
	return s->state;
}

const char *core_device(const struct core *s)
{
	return s->device;
}

const char *core_auth_method(const struct core *s)
{
	return s->auth_method;
}

bool core_mic_names(const char *cn, const char *device)
{
	return cn != NULL && mic_cn_names_device(cn, strlen(cn), device);
}

struct core *core_new(const struct core_config *cfg)
{
	struct core *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	if (cfg != NULL)
		s->cfg = *cfg;
	if (s->cfg.max_conflicts == 0)
		s->cfg.max_conflicts = 8;
	s->state = CORE_S_NEW;
	return s;
}

static void drop_lsc(struct core *s)
{
	free(s->lsc_der);
	s->lsc_der = NULL;
	s->lsc_der_len = 0;
	for (size_t i = 0; i < s->nchain; i++)
		free(s->chain[i]);
	s->nchain = 0;
}

void core_free(struct core *s)
{
	if (s == NULL)
		return;
	drop_lsc(s);
	memset(s->binding, 0, sizeof(s->binding));
	free(s);
}

static struct core_fx *fx_add(struct core_out *out, enum core_fx_type type)
{
	struct core_fx *fx;

	/* The handlers never emit more than CORE_MAX_FX; the table walk test
	 * holds them to it. */
	if (out->nfx >= CORE_MAX_FX)
		return &out->fx[CORE_MAX_FX - 1];
	fx = &out->fx[out->nfx++];
	memset(fx, 0, sizeof(*fx));
	fx->type = type;
	return fx;
}

static void audit_init(struct core *s, struct core_audit *a, Capf__AuditKind kind, int code,
		       const char *detail)
{
	a->kind = kind;
	a->device = s->device;
	a->serial = s->serial_len > 0 ? s->serial : NULL;
	a->serial_len = s->serial_len;
	a->code = code;
	a->detail = detail;
}

/* Every failure ends here: an audit event, the END message with the code,
 * close. Nothing else is written. */
static int fail(struct core *s, int code, const char *text, struct core_out *out)
{
	struct core_fx *fx;

	out->nfx = 0;
	fx = fx_add(out, CORE_FX_AUDIT);
	audit_init(s, &fx->audit,
		   s->authenticated ? CAPF__AUDIT_KIND__AUDIT_ENROLL_FAIL
				    : CAPF__AUDIT_KIND__AUDIT_AUTH_FAIL,
		   code, text != NULL ? text : capf_strerror(code));
	fx = fx_add(out, CORE_FX_SEND);
	fx->send.type = CORE_MSG_END;
	fx->send.code = code;
	fx->send.text = text != NULL ? text : capf_strerror(code);
	fx_add(out, CORE_FX_CLOSE);
	out->error = code;
	out->done = true;
	s->state = CORE_S_DONE;
	return code;
}

static void emit_load(struct core *s, bool claim, struct core_out *out, enum core_state next)
{
	struct core_fx *fx = fx_add(out, CORE_FX_LOAD);

	fx->load.device = s->device;
	fx->load.claim = claim;
	if (s->peer.present && s->peer.serial_len > 0 && s->peer.lsc_result == 0) {
		fx->load.presented = s->peer.serial;
		fx->load.presented_len = s->peer.serial_len;
	}
	s->state = next;
}

static bool serial_eq(const ProtobufCBinaryData *a, const uint8_t *b, size_t blen)
{
	return a->len == blen && blen > 0 && memcmp(a->data, b, blen) == 0;
}

static int effective_key_type(const Capf__Device *d)
{
	return d->key_type != CAPF__KEY_TYPE__KEY_UNSPECIFIED ? (int)d->key_type
							      : CAPF__KEY_TYPE__KEY_EC_P256;
}

/* ---- authentication ------------------------------------------------------ */

static int auth_mic(const struct core *s)
{
	if (!s->peer.present)
		return CAPF_ENOCERT;
	if (s->peer.mic_result < 0)
		return s->peer.mic_result;
	if (!core_mic_names(s->peer.cn, s->device))
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
	    !serial_eq(&v->device->lsc_serial, s->peer.serial, s->peer.serial_len))
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

static int authenticate(struct core *s, const struct core_view *v, time_t now)
{
	switch (v->device->auth) {
	case CAPF__AUTH_MODE__AUTH_UNSPECIFIED: /* records older than the modes */
	case CAPF__AUTH_MODE__AUTH_MIC: {
		int ret = auth_mic(s);
		if (ret == 0)
			s->auth_method = "mic";
		return ret;
	}
	case CAPF__AUTH_MODE__AUTH_LSC_OR_MIC:
		return auth_either(s, v, now, true);
	case CAPF__AUTH_MODE__AUTH_MIC_OR_LSC:
		return auth_either(s, v, now, false);
	default:
		return CAPF_ENOTSUP;
	}
}

/*
 * The decision of a session, taken at the claim and taken again on every
 * later read: the record must still ask for this operation, in time, and
 * the phone's evidence must satisfy its authentication mode.
 */
static int decide(struct core *s, const struct core_view *v, time_t now, bool first,
		  const char **why)
{
	const Capf__Device *d = v->device;
	int ret;

	*why = NULL;
	if (d == NULL) {
		*why = first ? "unknown device" : "the device record was removed";
		return first ? CAPF_EUNKNOWN_DEVICE : CAPF_ECANCELED;
	}
	if (d->op == CAPF__OPERATION__OP_NONE) {
		*why = first ? "no operation pending for this device"
			     : "the operation was cancelled by an administrator";
		return first ? CAPF_ENO_OPERATION : CAPF_ECANCELED;
	}
	if (d->deadline != 0 && now > d->deadline) {
		*why = "the operation's deadline has passed";
		return CAPF_ENO_OPERATION;
	}
	if (d->op != CAPF__OPERATION__OP_INSTALL) {
		*why = "operation not supported by this server";
		return CAPF_ENOTSUP;
	}
	ret = authenticate(s, v, now);
	if (ret == CAPF_ENOTSUP)
		*why = "authentication mode not supported by this server";
	else if (ret < 0 && !first)
		*why = "the phone no longer meets the device's authentication mode";
	return ret;
}

/* ---- records -------------------------------------------------------------- */

static void persist_begin(struct core *s)
{
	s->nrec = 0;
	s->nrevoked = 0;
}

static Capf__Device *persist_device(struct core *s, const Capf__Device *cur, time_t now)
{
	Capf__StoreRecord *r = &s->rec[s->nrec];
	Capf__Device *d = &s->dev_out;

	*d = *cur;
	d->revision = cur->revision + 1;
	d->updated = now;
	capf__store_record__init(r);
	r->body_case = CAPF__STORE_RECORD__BODY_DEVICE;
	r->device = d;
	r->check_revision = true;
	r->expect_revision = cur->revision;
	s->rec_ptrs[s->nrec++] = r;
	return d;
}

/* A changed copy of an existing certificate record, at its revision. */
static Capf__Certificate *persist_cert(struct core *s, const Capf__Certificate *cur)
{
	Capf__StoreRecord *r = &s->rec[s->nrec];
	Capf__Certificate *c = &s->cert_out[s->nrec];

	*c = *cur;
	c->revision = cur->revision + 1;
	capf__store_record__init(r);
	r->body_case = CAPF__STORE_RECORD__BODY_CERT;
	r->cert = c;
	r->check_revision = true;
	r->expect_revision = cur->revision;
	s->rec_ptrs[s->nrec++] = r;
	return c;
}

static void revoke_cert(struct core *s, const Capf__Certificate *cur, time_t now)
{
	Capf__Certificate *c = persist_cert(s, cur);
	struct core_revoked *rv = &s->revoked[s->nrevoked++];

	c->state = CAPF__CERT_STATE__CERT_REVOKED;
	c->revoked_at = now;
	c->revocation_reason = REASON_SUPERSEDED;
	c->revoke_after = 0;
	rv->serial = cur->serial.data;
	rv->serial_len = cur->serial.len;
	rv->when = now;
	rv->reason = REASON_SUPERSEDED;
	rv->der = cur->der.data;
	rv->der_len = cur->der.len;
}

static void emit_persist(struct core *s, struct core_out *out, Capf__AuditKind kind,
			 const char *detail, enum core_state next)
{
	struct core_fx *fx = fx_add(out, CORE_FX_PERSIST);

	fx->persist.recs = s->rec_ptrs;
	fx->persist.nrecs = s->nrec;
	audit_init(s, &fx->persist.audit, kind, 0, detail);
	fx->persist.revoked = s->nrevoked > 0 ? s->revoked : NULL;
	fx->persist.nrevoked = s->nrevoked;
	s->state = next;
}

/* A write refused because the record changed: read again and decide again,
 * a bounded number of times. */
static int on_conflict(struct core *s, int result, enum core_state reload, struct core_out *out)
{
	if (result != CAPF_ESTALE && result != CAPF_ENOENT)
		return fail(s, CAPF_ERETRY, "the server cannot record certificates now; retry later",
			    out);
	if (++s->conflicts > s->cfg.max_conflicts)
		return fail(s, CAPF_ERETRY, "the device record keeps changing; retry later", out);
	emit_load(s, false, out, reload);
	return 0;
}

static void emit_sign(struct core *s, struct core_out *out)
{
	struct core_fx *fx = fx_add(out, CORE_FX_SIGN);

	fx->sign.device = s->device;
	fx->sign.key_handle = s->key.handle;
	fx->sign.key_type = s->key.key_type;
	s->state = CORE_S_SIGN;
}

static void emit_deliver(struct core *s, struct core_out *out)
{
	struct core_fx *fx = fx_add(out, CORE_FX_SEND);

	fx->send.type = CORE_MSG_DELIVER;
	fx->send.cert = s->lsc_der;
	fx->send.cert_len = s->lsc_der_len;
	fx->send.chain = (const uint8_t *const *)s->chain;
	fx->send.chain_lens = s->chain_lens;
	fx->send.nchain = s->nchain;
	s->state = CORE_S_WAIT_ACK;
}

/* ---- handlers --------------------------------------------------------------- */

static int on_start(struct core *s, const struct core_event *ev, struct core_out *out)
{
	(void)out;
	s->peer = ev->start.peer;
	s->peer.cn[sizeof(s->peer.cn) - 1] = '\0';
	s->peer.fingerprint[sizeof(s->peer.fingerprint) - 1] = '\0';
	if (s->peer.serial_len > sizeof(s->peer.serial))
		s->peer.serial_len = 0;
	s->binding_len = ev->start.binding_len <= sizeof(s->binding) ? ev->start.binding_len : 0;
	memcpy(s->binding, ev->start.binding, s->binding_len);
	s->state = CORE_S_WAIT_CLAIM;
	return 0;
}

static int on_claim(struct core *s, const struct core_event *ev, struct core_out *out)
{
	if (ev->claim.device == NULL || !device_name_valid(ev->claim.device))
		return fail(s, CAPF_EBADMSG, "invalid device name", out);
	snprintf(s->device, sizeof(s->device), "%s", ev->claim.device);
	emit_load(s, true, out, CORE_S_LOAD_CLAIM);
	return 0;
}

static int on_loaded_claim(struct core *s, const struct core_event *ev, struct core_out *out)
{
	const struct core_view *v = &ev->loaded;
	const char *why;
	struct core_fx *fx;
	int ret;

	if (v->result == CAPF_EBUSY)
		return fail(s, CAPF_EBUSY, "another session for this device is in progress", out);
	if (v->result < 0)
		return fail(s, CAPF_ERETRY, "cannot read the device record; retry later", out);
	ret = decide(s, v, ev->now, true, &why);
	if (ret < 0)
		return fail(s, ret, why, out);

	s->authenticated = true;
	s->op_generation = v->device->op_generation;
	s->op = v->device->op;
	s->key_type = effective_key_type(v->device);

	fx = fx_add(out, CORE_FX_AUDIT);
	audit_init(s, &fx->audit, CAPF__AUDIT_KIND__AUDIT_AUTH_OK, 0, s->auth_method);
	fx = fx_add(out, CORE_FX_SEND);
	fx->send.type = CORE_MSG_OP_REQUEST;
	fx->send.op = s->op;
	fx->send.key_type = s->key_type;
	s->state = CORE_S_WAIT_KEY;
	return 0;
}

static int on_key(struct core *s, const struct core_event *ev, struct core_out *out)
{
	const struct core_key *k = &ev->key;

	if (k->kind != CORE_KEY_CSR && k->kind != CORE_KEY_SPKI)
		return fail(s, CAPF_EBADCSR, NULL, out);
	/*
	 * Proof of possession bound to the channel: where the transport has
	 * a binding, only a CSR that carries it will do, so a captured
	 * request cannot be replayed on another connection. A transport
	 * without one (the phone authenticated inside this very session)
	 * may send a bare key.
	 */
	if (k->pop_result < 0 && k->pop_result != CAPF_EBINDING && k->pop_result != CAPF_ECSRSIG)
		return fail(s, k->pop_result, NULL, out);
	if (s->binding_len > 0 && k->kind != CORE_KEY_CSR)
		return fail(s, CAPF_EBINDING, "a key without proof of possession on this channel",
			    out);
	if (k->kind == CORE_KEY_CSR && k->pop_result < 0 &&
	    (s->binding_len > 0 || k->pop_result != CAPF_EBINDING))
		return fail(s, k->pop_result, NULL, out);
	s->key = *k;
	emit_load(s, false, out, CORE_S_LOAD_KEY);
	return 0;
}

/* The checks made again before anything is signed or recorded. */
static int recheck(struct core *s, const struct core_view *v, time_t now, struct core_out *out)
{
	const char *why;
	int ret;

	if (v->result < 0)
		return fail(s, CAPF_ERETRY, "cannot read the device record; retry later", out);
	ret = decide(s, v, now, false, &why);
	if (ret < 0)
		return fail(s, ret, why, out);
	if (s->key.key_type != effective_key_type(v->device)) {
		snprintf(s->text, sizeof(s->text), "the device's key policy asks for %s, not %s",
			 key_type_name(effective_key_type(v->device)), key_type_name(s->key.key_type));
		return fail(s, CAPF_EPOLICY, s->text, out);
	}
	return 0;
}

static int on_loaded_key(struct core *s, const struct core_event *ev, struct core_out *out)
{
	const struct core_view *v = &ev->loaded;
	const Capf__Certificate *p;
	int ret = recheck(s, v, ev->now, out);

	if (ret < 0)
		return ret;
	p = v->pending;
	if (v->device->pending_serial.len == 0 || p == NULL ||
	    p->state != CAPF__CERT_STATE__CERT_UNCONFIRMED) {
		emit_sign(s, out);
		return 0;
	}
	if (p->spki_sha256.len == CORE_HASH_LEN &&
	    memcmp(p->spki_sha256.data, s->key.spki_sha256, CORE_HASH_LEN) == 0 &&
	    ev->now < p->not_after && p->der.len > 0) {
		/* The phone lost our answer, or its acknowledgement was lost:
		 * the same key gets the same recorded certificate, not a
		 * second one. */
		struct core_fx *fx;

		drop_lsc(s);
		s->lsc_der = malloc(p->der.len);
		if (s->lsc_der == NULL)
			return fail(s, CAPF_ENOMEM, NULL, out);
		memcpy(s->lsc_der, p->der.data, p->der.len);
		s->lsc_der_len = p->der.len;
		s->serial_len = p->serial.len <= sizeof(s->serial) ? p->serial.len : 0;
		memcpy(s->serial, p->serial.data, s->serial_len);
		s->not_before = p->not_before;
		s->not_after = p->not_after;
		memcpy(s->lsc_spki, s->key.spki_sha256, CORE_HASH_LEN);
		fx = fx_add(out, CORE_FX_AUDIT);
		audit_init(s, &fx->audit, CAPF__AUDIT_KIND__AUDIT_ISSUE, 0,
			   "recorded certificate delivered again");
		emit_deliver(s, out);
		return 0;
	}
	/* Another key: the unacknowledged LSC is revoked before a new one
	 * is even signed, so a device never holds two. */
	persist_begin(s);
	revoke_cert(s, p, ev->now);
	Capf__Device *d = persist_device(s, v->device, ev->now);
	d->pending_serial.data = NULL;
	d->pending_serial.len = 0;
	emit_persist(s, out, CAPF__AUDIT_KIND__AUDIT_REVOKE,
		     "unacknowledged certificate superseded by a new key", CORE_S_SUPERSEDE);
	return 0;
}

static int on_persisted_supersede(struct core *s, const struct core_event *ev,
				  struct core_out *out)
{
	if (ev->result < 0)
		return on_conflict(s, ev->result, CORE_S_LOAD_KEY, out);
	emit_sign(s, out);
	return 0;
}

static int on_signed(struct core *s, const struct core_event *ev, struct core_out *out)
{
	const struct core_lsc *l = ev->signed_lsc;

	if (ev->sign_result < 0 || l == NULL)
		return fail(s, CAPF_ERETRY, "the server cannot sign certificates now; retry later",
			    out);
	drop_lsc(s);
	if (l->serial_len == 0 || l->serial_len > sizeof(s->serial) || l->der_len == 0 ||
	    l->nchain > CORE_MAX_CHAIN)
		return fail(s, CAPF_ECRYPTO, "internal: malformed signing result", out);
	s->lsc_der = malloc(l->der_len);
	if (s->lsc_der == NULL)
		return fail(s, CAPF_ENOMEM, NULL, out);
	memcpy(s->lsc_der, l->der, l->der_len);
	s->lsc_der_len = l->der_len;
	for (size_t i = 0; i < l->nchain; i++) {
		s->chain[i] = malloc(l->chain_lens[i]);
		if (s->chain[i] == NULL)
			return fail(s, CAPF_ENOMEM, NULL, out);
		memcpy(s->chain[i], l->chain[i], l->chain_lens[i]);
		s->chain_lens[i] = l->chain_lens[i];
		s->nchain++;
	}
	memcpy(s->serial, l->serial, l->serial_len);
	s->serial_len = l->serial_len;
	s->not_before = l->not_before;
	s->not_after = l->not_after;
	s->issued_at = l->issued_at;
	memcpy(s->lsc_spki, l->spki_sha256, CORE_HASH_LEN);
	/* Read once more: what is recorded is decided on the record as it
	 * is now, not as it was before the signature. */
	emit_load(s, false, out, CORE_S_LOAD_ISSUE);
	return 0;
}

static int on_loaded_issue(struct core *s, const struct core_event *ev, struct core_out *out)
{
	const struct core_view *v = &ev->loaded;
	Capf__StoreRecord *r;
	Capf__Certificate *c;
	Capf__Device *d;
	int ret = recheck(s, v, ev->now, out);

	if (ret < 0)
		return ret; /* the signed certificate is dropped: never recorded, never sent */
	if (v->device->pending_serial.len > 0 &&
	    !serial_eq(&v->device->pending_serial, s->serial, s->serial_len))
		return fail(s, CAPF_ERETRY, "another certificate of this device awaits its "
					    "acknowledgement; retry later",
			    out);

	persist_begin(s);
	r = &s->rec[s->nrec];
	c = &s->cert_out[s->nrec];
	capf__certificate__init(c);
	c->serial.data = s->serial;
	c->serial.len = s->serial_len;
	c->device = s->device;
	c->not_before = s->not_before;
	c->not_after = s->not_after;
	c->der.data = s->lsc_der;
	c->der.len = s->lsc_der_len;
	c->state = CAPF__CERT_STATE__CERT_UNCONFIRMED;
	c->issued_at = s->issued_at != 0 ? s->issued_at : ev->now;
	c->spki_sha256.data = s->lsc_spki;
	c->spki_sha256.len = CORE_HASH_LEN;
	c->revision = 1;
	capf__store_record__init(r);
	r->body_case = CAPF__STORE_RECORD__BODY_CERT;
	r->cert = c;
	/* Serials are unique: the store refuses to record one it knows. */
	r->create_only = true;
	s->rec_ptrs[s->nrec++] = r;

	d = persist_device(s, v->device, ev->now);
	d->status = CAPF__OP_STATUS__STATUS_ISSUED;
	d->last_error = 0;
	d->pending_serial.data = s->serial;
	d->pending_serial.len = s->serial_len;
	if (strcmp(s->auth_method != NULL ? s->auth_method : "", "mic") == 0 &&
	    s->peer.fingerprint[0] != '\0')
		d->mic_fingerprint = s->peer.fingerprint;
	emit_persist(s, out, CAPF__AUDIT_KIND__AUDIT_ISSUE, NULL, CORE_S_PERSIST_ISSUE);
	return 0;
}

static int on_persisted_issue(struct core *s, const struct core_event *ev, struct core_out *out)
{
	if (ev->result == CAPF_EEXIST)
		return fail(s, CAPF_ERETRY, "serial already recorded; retry later", out);
	if (ev->result < 0)
		return on_conflict(s, ev->result, CORE_S_LOAD_ISSUE, out);
	/* Write-ahead: only now may the certificate leave. */
	emit_deliver(s, out);
	return 0;
}

static int on_ack(struct core *s, const struct core_event *ev, struct core_out *out)
{
	if (ev->code != 0) {
		/* The phone could not store its certificate: the operation
		 * stays pending and the certificate unconfirmed, so that a
		 * retry with the same key gets it again. */
		return fail(s, CAPF_EREJECTED, "the phone did not store the certificate", out);
	}
	emit_load(s, false, out, CORE_S_LOAD_ACK);
	return 0;
}

static int on_loaded_ack(struct core *s, const struct core_event *ev, struct core_out *out)
{
	const struct core_view *v = &ev->loaded;
	const Capf__Certificate *p = v->pending, *old = v->current;
	Capf__Certificate *c;
	Capf__Device *d;

	if (v->result < 0)
		return fail(s, CAPF_ERETRY, "cannot read the device record; retry later", out);
	if (v->device == NULL)
		return fail(s, CAPF_ECANCELED, "the device record was removed", out);
	if (!serial_eq(&v->device->pending_serial, s->serial, s->serial_len) || p == NULL)
		return fail(s, CAPF_ESUPERSEDED, "this certificate is no longer the device's "
						 "pending one",
			    out);

	persist_begin(s);
	if (p->state == CAPF__CERT_STATE__CERT_REVOKED) {
		/* Revoked between delivery and acknowledgement: it never
		 * becomes the device's current LSC. */
		d = persist_device(s, v->device, ev->now);
		d->pending_serial.data = NULL;
		d->pending_serial.len = 0;
		d->status = CAPF__OP_STATUS__STATUS_FAILED;
		d->last_error = (uint32_t)-CAPF_EREVOKED;
		s->ack_outcome = CAPF_EREVOKED;
		emit_persist(s, out, CAPF__AUDIT_KIND__AUDIT_ENROLL_FAIL,
			     "certificate revoked before its acknowledgement", CORE_S_PERSIST_ACK);
		return 0;
	}

	c = persist_cert(s, p);
	c->state = CAPF__CERT_STATE__CERT_ACTIVE;
	if (old != NULL && !serial_eq(&old->serial, s->serial, s->serial_len) &&
	    old->state != CAPF__CERT_STATE__CERT_REVOKED) {
		/* The LSC this one replaces is superseded: at once, or after
		 * the configured grace period. */
		if (s->cfg.supersede_grace == 0) {
			revoke_cert(s, old, ev->now);
		} else {
			Capf__Certificate *o = persist_cert(s, old);
			o->revoke_after = ev->now + (int64_t)s->cfg.supersede_grace;
		}
	}
	d = persist_device(s, v->device, ev->now);
	d->lsc_serial.data = s->serial;
	d->lsc_serial.len = s->serial_len;
	d->pending_serial.data = NULL;
	d->pending_serial.len = 0;
	d->last_error = 0;
	/* The operation done is the one authenticated for; if an
	 * administrator scheduled another since, that one stands. */
	if (v->device->op_generation == s->op_generation) {
		d->op = CAPF__OPERATION__OP_NONE;
		d->status = CAPF__OP_STATUS__STATUS_SUCCESS;
	}
	emit_persist(s, out, CAPF__AUDIT_KIND__AUDIT_ACK, NULL, CORE_S_PERSIST_ACK);
	return 0;
}

static int on_persisted_ack(struct core *s, const struct core_event *ev, struct core_out *out)
{
	struct core_fx *fx;

	if (ev->result < 0)
		return on_conflict(s, ev->result, CORE_S_LOAD_ACK, out);
	if (s->ack_outcome < 0)
		return fail(s, s->ack_outcome, "the certificate was revoked before it was "
					       "acknowledged",
			    out);
	fx = fx_add(out, CORE_FX_SEND);
	fx->send.type = CORE_MSG_END;
	fx->send.code = 0;
	fx->send.text = "certificate installed";
	fx_add(out, CORE_FX_CLOSE);
	out->success = true;
	out->done = true;
	s->state = CORE_S_DONE;
	return 0;
}

static int on_timeout(struct core *s, const struct core_event *ev, struct core_out *out)
{
	(void)ev;
	return fail(s, CAPF_ETIMEOUT, NULL, out);
}

static int on_peer_end(struct core *s, const struct core_event *ev, struct core_out *out)
{
	(void)ev;
	return fail(s, CAPF_EREJECTED, "the phone ended the session", out);
}

static int on_abort(struct core *s, const struct core_event *ev, struct core_out *out)
{
	return fail(s, ev->code < 0 ? ev->code : CAPF_EPROTO, NULL, out);
}

/*
 * The specification: what each state does with each event. A missing
 * entry is an event the state does not expect: the session ends with
 * CAPF_EORDER. Timeouts, the phone's own end and the transport giving up
 * end every live state.
 */
#define LIVE_ENDS                                                                  \
	[CORE_EV_TIMEOUT] = on_timeout, [CORE_EV_PEER_END] = on_peer_end,           \
	[CORE_EV_ABORT] = on_abort

static const core_handler table[CORE_S__COUNT][CORE_EV__COUNT] = {
	[CORE_S_NEW] = { [CORE_EV_START] = on_start, [CORE_EV_ABORT] = on_abort },
	[CORE_S_WAIT_CLAIM] = { [CORE_EV_CLAIM] = on_claim, LIVE_ENDS },
	[CORE_S_LOAD_CLAIM] = { [CORE_EV_LOADED] = on_loaded_claim, LIVE_ENDS },
	[CORE_S_WAIT_KEY] = { [CORE_EV_KEY] = on_key, LIVE_ENDS },
	[CORE_S_LOAD_KEY] = { [CORE_EV_LOADED] = on_loaded_key, LIVE_ENDS },
	[CORE_S_SUPERSEDE] = { [CORE_EV_PERSISTED] = on_persisted_supersede, LIVE_ENDS },
	[CORE_S_SIGN] = { [CORE_EV_SIGNED] = on_signed, LIVE_ENDS },
	[CORE_S_PERSIST_ISSUE] = { [CORE_EV_PERSISTED] = on_persisted_issue, LIVE_ENDS },
	[CORE_S_LOAD_ISSUE] = { [CORE_EV_LOADED] = on_loaded_issue, LIVE_ENDS },
	[CORE_S_WAIT_ACK] = { [CORE_EV_ACK] = on_ack, LIVE_ENDS },
	[CORE_S_LOAD_ACK] = { [CORE_EV_LOADED] = on_loaded_ack, LIVE_ENDS },
	[CORE_S_PERSIST_ACK] = { [CORE_EV_PERSISTED] = on_persisted_ack, LIVE_ENDS },
	[CORE_S_DONE] = { 0 },
};

/* Events the phone causes; any other unexpected one is the glue's fault. */
static bool from_phone(enum core_ev_type t)
{
	return t == CORE_EV_CLAIM || t == CORE_EV_KEY || t == CORE_EV_ACK;
}

int core_step(struct core *s, const struct core_event *ev, struct core_out *out)
{
	core_handler h;

	memset(out, 0, sizeof(*out));
	if (ev == NULL || (unsigned)ev->type >= CORE_EV__COUNT)
		return s->state == CORE_S_DONE ? CAPF_EORDER : fail(s, CAPF_EINVAL, NULL, out);
	if (s->state == CORE_S_DONE)
		return CAPF_EORDER;
	h = table[s->state][ev->type];
	if (h == NULL) {
		if (from_phone(ev->type))
			return fail(s, CAPF_EORDER, "message out of order", out);
		snprintf(s->text, sizeof(s->text), "internal: unexpected %s in state %s",
			 core_event_name(ev->type), core_state_name(s->state));
		return fail(s, CAPF_EORDER, s->text, out);
	}
	return h(s, ev, out);
}
