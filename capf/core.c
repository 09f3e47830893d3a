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

#include "capf/core_internal.h"

typedef int (*core_handler)(struct core *s, const struct core_event *ev, struct core_out *out);

/* ---- helpers ----------------------------------------------------------- */

static const char *const state_names[CORE_S__COUNT] = {
	[CORE_S_NEW] = "new",
	[CORE_S_WAIT_CLAIM] = "wait-claim",
	[CORE_S_LOAD_CLAIM] = "load-claim",
	[CORE_S_VERIFY] = "verify",
	[CORE_S_LOAD_AUTHFAIL] = "load-authfail",
	[CORE_S_PERSIST_AUTHFAIL] = "persist-authfail",
	[CORE_S_WAIT_KEY] = "wait-key",
	[CORE_S_LOAD_KEY] = "load-key",
	[CORE_S_SUPERSEDE] = "supersede",
	[CORE_S_SIGN] = "sign",
	[CORE_S_PERSIST_ISSUE] = "persist-issue",
	[CORE_S_LOAD_ISSUE] = "load-issue",
	[CORE_S_WAIT_ACK] = "wait-ack",
	[CORE_S_WAIT_DELETE] = "wait-delete",
	[CORE_S_WAIT_FETCH] = "wait-fetch",
	[CORE_S_LOAD_FINISH] = "load-finish",
	[CORE_S_PERSIST_FINISH] = "persist-finish",
	[CORE_S_DONE] = "done",
};

static const char *const event_names[CORE_EV__COUNT] = {
	[CORE_EV_START] = "start",	   [CORE_EV_CLAIM] = "claim",
	[CORE_EV_KEY] = "key",		   [CORE_EV_LOADED] = "loaded",
	[CORE_EV_PERSISTED] = "persisted", [CORE_EV_SIGNED] = "signed",
	[CORE_EV_ACK] = "ack",		   [CORE_EV_DELETED] = "deleted",
	[CORE_EV_FETCHED] = "fetched",	   [CORE_EV_VERIFIED] = "verified",
	[CORE_EV_PEER_END] = "peer-end",
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

int core_operation(const struct core *s)
{
	return s->op;
}

int core_renewal(const struct core *s)
{
	return s->renewal;
}

const uint8_t *core_serial(const struct core *s, size_t *len)
{
	*len = s->serial_len;
	return s->serial;
}

int core_key_type(const struct core *s)
{
	return s->key_type;
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
	if (s->cfg.max_auth_failures == 0)
		s->cfg.max_auth_failures = 5;
	if (s->cfg.lockout_seconds == 0)
		s->cfg.lockout_seconds = 60;
	s->state = CORE_S_NEW;
	return s;
}

static void drop_fetched(struct core *s)
{
	for (size_t i = 0; i < s->nfetched; i++)
		free(s->fetched[i].data);
	s->nfetched = 0;
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
	drop_fetched(s);
	free(s->recs);
	/* What could open a device to someone else does not linger. */
	memset(s->binding, 0, sizeof(s->binding));
	memset(s->secret, 0, sizeof(s->secret));
	memset(s->hash, 0, sizeof(s->hash));
	free(s);
}

/* ---- handlers --------------------------------------------------------------- */

static int on_start(struct core *s, const struct core_event *ev, struct core_out *out)
{
	(void)out;
	s->peer = ev->start.peer;
	s->peer.cn[sizeof(s->peer.cn) - 1] = '\0';
	s->peer.mic_cn[sizeof(s->peer.mic_cn) - 1] = '\0';
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
		return core_fail(s, CAPF_EBADMSG, "invalid device name", out);
	if (s->recs == NULL && (s->recs = calloc(1, sizeof(*s->recs))) == NULL)
		return core_fail(s, CAPF_ENOMEM, NULL, out);
	snprintf(s->device, sizeof(s->device), "%s", ev->claim.device);
	s->caps = ev->claim.caps;
	if (ev->claim.peer != NULL) {
		s->peer = *ev->claim.peer;
		s->peer.cn[sizeof(s->peer.cn) - 1] = '\0';
		s->peer.mic_cn[sizeof(s->peer.mic_cn) - 1] = '\0';
		s->peer.fingerprint[sizeof(s->peer.fingerprint) - 1] = '\0';
		if (s->peer.serial_len > sizeof(s->peer.serial))
			s->peer.serial_len = 0;
	}
	s->nsupported = 0;
	for (size_t i = 0; i < ev->claim.nsupported && i < CORE_MAX_KEYS; i++)
		s->supported[s->nsupported++] = ev->claim.supported_keys[i];
	s->has_secret = false;
	if (ev->claim.auth_string != NULL) {
		if (ev->claim.auth_string_len > sizeof(s->secret))
			return core_fail(s, CAPF_EBADMSG, "authentication string too long", out);
		memcpy(s->secret, ev->claim.auth_string, ev->claim.auth_string_len);
		s->secret_len = ev->claim.auth_string_len;
		s->has_secret = true;
	}
	core_emit_load(s, true, out, CORE_S_LOAD_CLAIM);
	return 0;
}

/* Authenticated: ask the phone for what its record says. */
static int begin_operation(struct core *s, struct core_out *out)
{
	struct core_fx *fx;

	s->authenticated = true;
	fx = core_fx_add(out, CORE_FX_AUDIT);
	core_audit_init(s, &fx->audit, CAPF__AUDIT_KIND__AUDIT_AUTH_OK, 0,
		   s->renewal ? "lsc (renewal window)" : s->auth_method);
	fx = core_fx_add(out, CORE_FX_SEND);
	fx->send.type = CORE_MSG_OP_REQUEST;
	fx->send.op = s->op;
	fx->send.key_type = s->op == CAPF__OPERATION__OP_INSTALL ? s->key_type : 0;
	switch (s->op) {
	case CAPF__OPERATION__OP_DELETE:
		s->state = CORE_S_WAIT_DELETE;
		break;
	case CAPF__OPERATION__OP_FETCH:
		s->state = CORE_S_WAIT_FETCH;
		break;
	default:
		s->state = CORE_S_WAIT_KEY;
		break;
	}
	return 0;
}

static int on_loaded_claim(struct core *s, const struct core_event *ev, struct core_out *out)
{
	const struct core_view *v = &ev->loaded;
	const char *why;
	int ret;

	if (v->result == CAPF_EBUSY)
		return core_fail(s, CAPF_EBUSY, "another session for this device is in progress", out);
	if (v->result < 0)
		return core_fail(s, CAPF_ERETRY, "cannot read the device record; retry later", out);
	ret = core_decide(s, v, ev->now, true, &why);
	if (ret < 0)
		return core_fail(s, ret, why, out);

	s->op_generation = v->device->op_generation;
	s->op = s->renewal ? CAPF__OPERATION__OP_INSTALL : (int)v->device->op;
	s->lsc_days = v->device->lsc_days;
	if (s->op == CAPF__OPERATION__OP_INSTALL) {
		int r = core_pick_key(s, v->device, &s->key_type, &why);
		if (r < 0)
			return core_fail(s, r, why, out);
	}
	if (ret == CORE_NEED_VERIFY) {
		/* The string is checked off the loop: PBKDF2 is slow on
		 * purpose. */
		struct core_fx *fx = core_fx_add(out, CORE_FX_VERIFY);

		fx->verify.secret = s->secret;
		fx->verify.secret_len = s->secret_len;
		fx->verify.salt = s->salt;
		fx->verify.salt_len = s->salt_len;
		fx->verify.iterations = s->iterations;
		fx->verify.hash = s->hash;
		fx->verify.hash_len = sizeof(s->hash);
		s->state = CORE_S_VERIFY;
		return 0;
	}
	return begin_operation(s, out);
}

static int on_verified(struct core *s, const struct core_event *ev, struct core_out *out)
{
	memset(s->secret, 0, sizeof(s->secret));
	if (ev->result == 0) {
		s->string_ok = true;
		s->auth_method = "string";
		if (s->idle_after_auth)
			return core_fail(s, CAPF_ENO_OPERATION, "nothing to do for this device", out);
		return begin_operation(s, out);
	}
	if (ev->result != CAPF_EAUTH)
		return core_fail(s, CAPF_ERETRY, "cannot check the authentication string now; retry "
					    "later",
			    out);
	/* A wrong string is counted in the record, and locks the device
	 * once there were too many. */
	core_emit_load(s, false, out, CORE_S_LOAD_AUTHFAIL);
	return 0;
}

static int on_loaded_authfail(struct core *s, const struct core_event *ev, struct core_out *out)
{
	const struct core_view *v = &ev->loaded;
	Capf__Device *d;

	if (v->result < 0 || v->device == NULL)
		return core_fail(s, CAPF_EAUTH, "wrong authentication string", out);
	core_persist_begin(s);
	d = core_persist_device(s, v->device, ev->now);
	d->auth_failures = v->device->auth_failures + 1;
	s->outcome = CAPF_EAUTH;
	if (d->auth_failures >= s->cfg.max_auth_failures) {
		d->locked_until = core_lockout_until(s, v->device->lockouts, ev->now);
		d->lockouts = v->device->lockouts + 1;
		d->auth_failures = 0;
		s->outcome = CAPF_ELOCKOUT;
	}
	snprintf(s->text, sizeof(s->text), "wrong authentication string (%u in a row)%s",
		 d->auth_failures != 0 ? d->auth_failures : s->cfg.max_auth_failures,
		 s->outcome == CAPF_ELOCKOUT ? ": device locked out" : "");
	core_emit_persist(s, out, CAPF__AUDIT_KIND__AUDIT_AUTH_FAIL, s->text,
		     CORE_S_PERSIST_AUTHFAIL);
	s->recs->rec_ptrs[0]->device->last_error = (uint32_t)-s->outcome;
	return 0;
}

static int on_persisted_authfail(struct core *s, const struct core_event *ev,
				 struct core_out *out)
{
	if (ev->result == CAPF_ESTALE && ++s->conflicts <= s->cfg.max_conflicts) {
		core_emit_load(s, false, out, CORE_S_LOAD_AUTHFAIL);
		return 0;
	}
	/* Audited with the record (or, if that failed, here). */
	return core_end_with(s, s->outcome < 0 ? s->outcome : CAPF_EAUTH, s->text, ev->result < 0, out);
}

static int on_key(struct core *s, const struct core_event *ev, struct core_out *out)
{
	const struct core_key *k = &ev->key;

	if (k->kind != CORE_KEY_CSR && k->kind != CORE_KEY_SPKI)
		return core_fail(s, CAPF_EBADCSR, NULL, out);
	/*
	 * Proof of possession bound to the channel: where the transport has
	 * a binding, only a CSR that carries it will do, so a captured
	 * request cannot be replayed on another connection. A transport
	 * without one (the phone authenticated inside this very session)
	 * may send a bare key.
	 */
	if (k->pop_result < 0 && k->pop_result != CAPF_EBINDING && k->pop_result != CAPF_ECSRSIG)
		return core_fail(s, k->pop_result, NULL, out);
	if (s->binding_len > 0 && k->kind != CORE_KEY_CSR)
		return core_fail(s, CAPF_EBINDING, "a key without proof of possession on this channel",
			    out);
	if (k->kind == CORE_KEY_CSR && k->pop_result < 0 &&
	    (s->binding_len > 0 || k->pop_result != CAPF_EBINDING))
		return core_fail(s, k->pop_result, NULL, out);
	s->key = *k;
	core_emit_load(s, false, out, CORE_S_LOAD_KEY);
	return 0;
}

/* The checks made again before anything is signed or recorded. */
static int recheck(struct core *s, const struct core_view *v, time_t now, struct core_out *out)
{
	const char *why;
	int ret;

	if (v->result < 0)
		return core_fail(s, CAPF_ERETRY, "cannot read the device record; retry later", out);
	int want;

	ret = core_decide(s, v, now, false, &why);
	if (ret < 0)
		return core_fail(s, ret, why, out);
	ret = core_pick_key(s, v->device, &want, &why);
	if (ret < 0)
		return core_fail(s, ret, why, out);
	if (s->key.key_type != want) {
		snprintf(s->text, sizeof(s->text), "the device's key policy asks for %s, not %s",
			 key_type_name(want), key_type_name(s->key.key_type));
		return core_fail(s, CAPF_EPOLICY, s->text, out);
	}
	if (v->key_owner != NULL) {
		/* A key is certified for one device only: one copied from, or
		 * shared with, another phone gets no second certificate. */
		snprintf(s->text, sizeof(s->text), "this key is certified for another device (%s)",
			 v->key_owner);
		return core_fail(s, CAPF_EKEYINUSE, s->text, out);
	}
	s->lsc_days = v->device->lsc_days;
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
		core_emit_sign(s, out);
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
			return core_fail(s, CAPF_ENOMEM, NULL, out);
		memcpy(s->lsc_der, p->der.data, p->der.len);
		s->lsc_der_len = p->der.len;
		s->serial_len = p->serial.len <= sizeof(s->serial) ? p->serial.len : 0;
		memcpy(s->serial, p->serial.data, s->serial_len);
		s->not_before = p->not_before;
		s->not_after = p->not_after;
		memcpy(s->lsc_spki, s->key.spki_sha256, CORE_HASH_LEN);
		fx = core_fx_add(out, CORE_FX_AUDIT);
		core_audit_init(s, &fx->audit, CAPF__AUDIT_KIND__AUDIT_ISSUE, 0,
			   "recorded certificate delivered again");
		core_emit_deliver(s, out);
		return 0;
	}
	/* Another key: the unacknowledged LSC is revoked before a new one
	 * is even signed, so a device never holds two. */
	core_persist_begin(s);
	core_revoke_cert(s, p, ev->now, CORE_REASON_SUPERSEDED);
	Capf__Device *d = core_persist_device(s, v->device, ev->now);
	d->pending_serial.data = NULL;
	d->pending_serial.len = 0;
	core_emit_persist(s, out, CAPF__AUDIT_KIND__AUDIT_REVOKE,
		     "unacknowledged certificate superseded by a new key", CORE_S_SUPERSEDE);
	return 0;
}

static int on_persisted_supersede(struct core *s, const struct core_event *ev,
				  struct core_out *out)
{
	if (ev->result < 0)
		return core_on_conflict(s, ev->result, CORE_S_LOAD_KEY, out);
	core_emit_sign(s, out);
	return 0;
}

static int on_signed(struct core *s, const struct core_event *ev, struct core_out *out)
{
	const struct core_lsc *l = ev->signed_lsc;

	if (ev->sign_result < 0 || l == NULL)
		return core_fail(s, CAPF_ERETRY, "the server cannot sign certificates now; retry later",
			    out);
	drop_lsc(s);
	if (l->serial_len == 0 || l->serial_len > sizeof(s->serial) || l->der_len == 0 ||
	    l->nchain > CORE_MAX_CHAIN)
		return core_fail(s, CAPF_ECRYPTO, "internal: malformed signing result", out);
	s->lsc_der = malloc(l->der_len);
	if (s->lsc_der == NULL)
		return core_fail(s, CAPF_ENOMEM, NULL, out);
	memcpy(s->lsc_der, l->der, l->der_len);
	s->lsc_der_len = l->der_len;
	for (size_t i = 0; i < l->nchain; i++) {
		s->chain[i] = malloc(l->chain_lens[i]);
		if (s->chain[i] == NULL)
			return core_fail(s, CAPF_ENOMEM, NULL, out);
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
	core_emit_load(s, false, out, CORE_S_LOAD_ISSUE);
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
	/* Another session of the device cannot have issued meanwhile (the
	 * device is claimed), but a pending LSC that is still unconfirmed
	 * must never be silently replaced; a revoked one may. */
	if (v->device->pending_serial.len > 0 &&
	    !core_serial_eq(&v->device->pending_serial, s->serial, s->serial_len) && v->pending != NULL &&
	    v->pending->state == CAPF__CERT_STATE__CERT_UNCONFIRMED)
		return core_fail(s, CAPF_ERETRY, "another certificate of this device awaits its "
					    "acknowledgement; retry later",
			    out);

	core_persist_begin(s);
	r = &s->recs->rec[s->recs->nrec];
	c = &s->recs->cert_out[s->recs->nrec];
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
	s->recs->rec_ptrs[s->recs->nrec++] = r;

	d = core_persist_device(s, v->device, ev->now);
	d->status = CAPF__OP_STATUS__STATUS_ISSUED;
	d->last_error = 0;
	d->pending_serial.data = s->serial;
	d->pending_serial.len = s->serial_len;
	if (strcmp(s->auth_method != NULL ? s->auth_method : "", "mic") == 0 &&
	    s->peer.fingerprint[0] != '\0')
		d->mic_fingerprint = s->peer.fingerprint;
	core_emit_persist(s, out, CAPF__AUDIT_KIND__AUDIT_ISSUE, NULL, CORE_S_PERSIST_ISSUE);
	return 0;
}

static int on_persisted_issue(struct core *s, const struct core_event *ev, struct core_out *out)
{
	if (ev->result == CAPF_EEXIST)
		return core_fail(s, CAPF_ERETRY, "serial already recorded; retry later", out);
	if (ev->result < 0)
		return core_on_conflict(s, ev->result, CORE_S_LOAD_ISSUE, out);
	/* Write-ahead: only now may the certificate leave. */
	core_emit_deliver(s, out);
	return 0;
}

static int on_ack(struct core *s, const struct core_event *ev, struct core_out *out)
{
	if (ev->code != 0) {
		/* The phone could not store its certificate: the operation
		 * stays pending and the certificate unconfirmed, so that a
		 * retry with the same key gets it again. */
		return core_fail(s, CAPF_EREJECTED, "the phone did not store the certificate", out);
	}
	core_emit_load(s, false, out, CORE_S_LOAD_FINISH);
	return 0;
}

static int on_deleted(struct core *s, const struct core_event *ev, struct core_out *out)
{
	if (ev->code != 0) {
		/* The operation stays pending; an administrator can still
		 * revoke the certificate (capfctl cert revoke). */
		return core_fail(s, CAPF_EREJECTED, "the phone did not delete its certificate", out);
	}
	core_emit_load(s, false, out, CORE_S_LOAD_FINISH);
	return 0;
}

static int on_fetched(struct core *s, const struct core_event *ev, struct core_out *out)
{
	const struct core_report *r = &ev->report;

	drop_fetched(s);
	if (r->n > FETCH_MAX)
		return core_fail(s, CAPF_EBADMSG, "too many certificates in the report", out);
	for (size_t i = 0; i < r->n; i++) {
		if (r->lens[i] == 0 || r->lens[i] > FETCH_CERT_MAX)
			return core_fail(s, CAPF_EBADMSG, "a reported certificate is empty or too large",
				    out);
		s->fetched[i].data = malloc(r->lens[i]);
		if (s->fetched[i].data == NULL)
			return core_fail(s, CAPF_ENOMEM, NULL, out);
		memcpy(s->fetched[i].data, r->certs[i], r->lens[i]);
		s->fetched[i].len = r->lens[i];
		s->nfetched++;
	}
	core_emit_load(s, false, out, CORE_S_LOAD_FINISH);
	return 0;
}

/* What every completed operation writes to its device: the operation
 * done (unless an administrator asked for another since: that one stays
 * pending), and the authentication string's bookkeeping. */
static void finish_device(struct core *s, const Capf__Device *cur, Capf__Device *d)
{
	d->last_error = 0;
	if (cur->op_generation == s->op_generation) {
		if (!s->renewal)
			d->op = CAPF__OPERATION__OP_NONE;
		if (!s->renewal || cur->op == CAPF__OPERATION__OP_NONE)
			d->status = CAPF__OP_STATUS__STATUS_SUCCESS;
	}
	if (s->string_ok) {
		d->auth_failures = 0;
		d->lockouts = 0;
		d->locked_until = 0;
		/* Single use unless the record says otherwise. */
		if (cur->auth_secret != NULL && !cur->auth_secret->reusable)
			d->auth_secret = NULL;
	}
}

static int finish_install(struct core *s, const struct core_event *ev, struct core_out *out)
{
	const struct core_view *v = &ev->loaded;
	const Capf__Certificate *p = v->pending, *old = v->current;
	Capf__Certificate *c;
	Capf__Device *d;

	if (!core_serial_eq(&v->device->pending_serial, s->serial, s->serial_len) || p == NULL)
		return core_fail(s, CAPF_ESUPERSEDED, "this certificate is no longer the device's "
						 "pending one",
			    out);

	core_persist_begin(s);
	if (p->state == CAPF__CERT_STATE__CERT_REVOKED) {
		/* Revoked between delivery and acknowledgement: it never
		 * becomes the device's current LSC. */
		d = core_persist_device(s, v->device, ev->now);
		d->pending_serial.data = NULL;
		d->pending_serial.len = 0;
		d->status = CAPF__OP_STATUS__STATUS_FAILED;
		d->last_error = (uint32_t)-CAPF_EREVOKED;
		s->outcome = CAPF_EREVOKED;
		core_emit_persist(s, out, CAPF__AUDIT_KIND__AUDIT_ENROLL_FAIL,
			     "certificate revoked before its acknowledgement", CORE_S_PERSIST_FINISH);
		return 0;
	}

	c = core_persist_cert(s, p);
	c->state = CAPF__CERT_STATE__CERT_ACTIVE;
	if (old != NULL && !core_serial_eq(&old->serial, s->serial, s->serial_len) &&
	    old->state != CAPF__CERT_STATE__CERT_REVOKED) {
		/* The LSC this one replaces is superseded: at once, or after
		 * the configured grace period. */
		if (s->cfg.supersede_grace == 0) {
			core_revoke_cert(s, old, ev->now, CORE_REASON_SUPERSEDED);
		} else {
			Capf__Certificate *o = core_persist_cert(s, old);
			o->revoke_after = ev->now + (int64_t)s->cfg.supersede_grace;
		}
	}
	d = core_persist_device(s, v->device, ev->now);
	d->lsc_serial.data = s->serial;
	d->lsc_serial.len = s->serial_len;
	d->pending_serial.data = NULL;
	d->pending_serial.len = 0;
	d->last_error = 0;
	/* The operation done is the one authenticated for; if an
	 * administrator scheduled another since, that one stands. */
	finish_device(s, v->device, d);
	/* The acknowledgement needs no sync of its own: lost on a power cut,
	 * it leaves the certificate recorded and unconfirmed, which the
	 * phone's next contact settles. Not when it revokes the LSC it
	 * replaces: a CRL publishes that once it is reported. */
	core_emit_persist(s, out, CAPF__AUDIT_KIND__AUDIT_ACK, s->renewal ? "renewal" : NULL,
			  CORE_S_PERSIST_FINISH)->persist.lazy = s->recs->nrevoked == 0;
	return 0;
}

static int finish_delete(struct core *s, const struct core_event *ev, struct core_out *out)
{
	const struct core_view *v = &ev->loaded;
	Capf__Device *d;

	/* The phone has dropped its LSC: whatever an administrator did
	 * meanwhile, that certificate is revoked now. */
	core_persist_begin(s);
	if (v->current != NULL && v->current->state != CAPF__CERT_STATE__CERT_REVOKED)
		core_revoke_cert(s, v->current, ev->now, CORE_REASON_CESSATION);
	if (v->pending != NULL && v->pending->state != CAPF__CERT_STATE__CERT_REVOKED &&
	    v->pending != v->current)
		core_revoke_cert(s, v->pending, ev->now, CORE_REASON_CESSATION);
	d = core_persist_device(s, v->device, ev->now);
	d->lsc_serial.data = NULL;
	d->lsc_serial.len = 0;
	d->pending_serial.data = NULL;
	d->pending_serial.len = 0;
	finish_device(s, v->device, d);
	if (v->current != NULL && v->current->serial.len <= sizeof(s->serial)) {
		s->serial_len = v->current->serial.len;
		memcpy(s->serial, v->current->serial.data, s->serial_len);
	}
	core_emit_persist(s, out, CAPF__AUDIT_KIND__AUDIT_REVOKE,
		     v->current != NULL ? "deleted by the phone (cessationOfOperation)"
					: "deleted by the phone (it held no LSC of ours)",
		     CORE_S_PERSIST_FINISH);
	return 0;
}

static int finish_fetch(struct core *s, const struct core_event *ev, struct core_out *out)
{
	const struct core_view *v = &ev->loaded;
	Capf__Device *d;

	core_persist_begin(s);
	d = core_persist_device(s, v->device, ev->now);
	d->fetched = s->fetched;
	d->n_fetched = s->nfetched;
	d->fetched_at = ev->now;
	finish_device(s, v->device, d);
	snprintf(s->text, sizeof(s->text), "the phone reported %zu certificates", s->nfetched);
	core_emit_persist(s, out, CAPF__AUDIT_KIND__AUDIT_ADMIN, s->text, CORE_S_PERSIST_FINISH);
	return 0;
}

static int on_loaded_finish(struct core *s, const struct core_event *ev, struct core_out *out)
{
	const struct core_view *v = &ev->loaded;

	if (v->result < 0)
		return core_fail(s, CAPF_ERETRY, "cannot read the device record; retry later", out);
	if (v->device == NULL)
		return core_fail(s, CAPF_ECANCELED, "the device record was removed", out);
	switch (s->op) {
	case CAPF__OPERATION__OP_DELETE:
		return finish_delete(s, ev, out);
	case CAPF__OPERATION__OP_FETCH:
		return finish_fetch(s, ev, out);
	default:
		return finish_install(s, ev, out);
	}
}

static int on_persisted_finish(struct core *s, const struct core_event *ev, struct core_out *out)
{
	struct core_fx *fx;

	if (ev->result < 0)
		return core_on_conflict(s, ev->result, CORE_S_LOAD_FINISH, out);
	if (s->outcome < 0)
		return core_end_with(s, s->outcome, "the certificate was revoked before it was "
					       "acknowledged",
				false, out);
	fx = core_fx_add(out, CORE_FX_SEND);
	fx->send.type = CORE_MSG_END;
	fx->send.code = 0;
	fx->send.text = s->op == CAPF__OPERATION__OP_DELETE  ? "certificate deleted"
			: s->op == CAPF__OPERATION__OP_FETCH ? "report recorded"
							     : "certificate installed";
	core_fx_add(out, CORE_FX_CLOSE);
	out->success = true;
	out->done = true;
	s->state = CORE_S_DONE;
	return 0;
}

static int on_timeout(struct core *s, const struct core_event *ev, struct core_out *out)
{
	(void)ev;
	return core_fail(s, CAPF_ETIMEOUT, NULL, out);
}

static int on_peer_end(struct core *s, const struct core_event *ev, struct core_out *out)
{
	(void)ev;
	return core_fail(s, CAPF_EREJECTED, "the phone ended the session", out);
}

static int on_abort(struct core *s, const struct core_event *ev, struct core_out *out)
{
	return core_fail(s, ev->code < 0 ? ev->code : CAPF_EPROTO, NULL, out);
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
	[CORE_S_VERIFY] = { [CORE_EV_VERIFIED] = on_verified, LIVE_ENDS },
	[CORE_S_LOAD_AUTHFAIL] = { [CORE_EV_LOADED] = on_loaded_authfail, LIVE_ENDS },
	[CORE_S_PERSIST_AUTHFAIL] = { [CORE_EV_PERSISTED] = on_persisted_authfail, LIVE_ENDS },
	[CORE_S_WAIT_KEY] = { [CORE_EV_KEY] = on_key, LIVE_ENDS },
	[CORE_S_LOAD_KEY] = { [CORE_EV_LOADED] = on_loaded_key, LIVE_ENDS },
	[CORE_S_SUPERSEDE] = { [CORE_EV_PERSISTED] = on_persisted_supersede, LIVE_ENDS },
	[CORE_S_SIGN] = { [CORE_EV_SIGNED] = on_signed, LIVE_ENDS },
	[CORE_S_PERSIST_ISSUE] = { [CORE_EV_PERSISTED] = on_persisted_issue, LIVE_ENDS },
	[CORE_S_LOAD_ISSUE] = { [CORE_EV_LOADED] = on_loaded_issue, LIVE_ENDS },
	[CORE_S_WAIT_ACK] = { [CORE_EV_ACK] = on_ack, LIVE_ENDS },
	[CORE_S_WAIT_DELETE] = { [CORE_EV_DELETED] = on_deleted, LIVE_ENDS },
	[CORE_S_WAIT_FETCH] = { [CORE_EV_FETCHED] = on_fetched, LIVE_ENDS },
	[CORE_S_LOAD_FINISH] = { [CORE_EV_LOADED] = on_loaded_finish, LIVE_ENDS },
	[CORE_S_PERSIST_FINISH] = { [CORE_EV_PERSISTED] = on_persisted_finish, LIVE_ENDS },
	[CORE_S_DONE] = { 0 },
};

/* Events the phone causes; any other unexpected one is the glue's fault. */
static bool from_phone(enum core_ev_type t)
{
	return t == CORE_EV_CLAIM || t == CORE_EV_KEY || t == CORE_EV_ACK || t == CORE_EV_DELETED ||
	       t == CORE_EV_FETCHED;
}

int core_step(struct core *s, const struct core_event *ev, struct core_out *out)
{
	core_handler h;

	memset(out, 0, sizeof(*out));
	if (ev == NULL || (unsigned)ev->type >= CORE_EV__COUNT)
		return s->state == CORE_S_DONE ? CAPF_EORDER : core_fail(s, CAPF_EINVAL, NULL, out);
	if (s->state == CORE_S_DONE)
		return CAPF_EORDER;
	h = table[s->state][ev->type];
	if (h == NULL) {
		if (from_phone(ev->type))
			return core_fail(s, CAPF_EORDER, "message out of order", out);
		snprintf(s->text, sizeof(s->text), "internal: unexpected %s in state %s",
			 core_event_name(ev->type), core_state_name(s->state));
		return core_fail(s, CAPF_EORDER, s->text, out);
	}
	if (ev->type == CORE_EV_LOADED && ev->loaded.device != NULL && ev->loaded.device->deleted) {
		/* A removed device (a tombstone) is no device, at every step. */
		struct core_event absent = *ev;

		absent.loaded.device = NULL;
		absent.loaded.current = NULL;
		absent.loaded.pending = NULL;
		return h(s, &absent, out);
	}
	return h(s, ev, out);
}
