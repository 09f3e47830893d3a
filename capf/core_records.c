/*
 * What the core's handlers (capf/core.c) emit: the records of a persist,
 * built from the current ones at the revisions read (a device's fields
 * that the session owns, a certificate, a revocation), the effects that
 * carry them (load, persist, sign, deliver), the audit events, and the
 * end of a session. Nothing here decides; the handlers do.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capf/core_internal.h"

struct core_fx *core_fx_add(struct core_out *out, enum core_fx_type type)
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

void core_audit_init(struct core *s, struct core_audit *a, Capf__AuditKind kind, int code,
		       const char *detail)
{
	a->kind = kind;
	a->device = s->device;
	a->serial = s->serial_len > 0 ? s->serial : NULL;
	a->serial_len = s->serial_len;
	a->code = code;
	a->detail = detail;
}

/* The end of a session that did not do its operation: the END message
 * with the code, close; an audit event unless the refusal was already
 * audited with a record it wrote. Nothing else is written. */
int core_end_with(struct core *s, int code, const char *text, bool audit, struct core_out *out)
{
	struct core_fx *fx;

	out->nfx = 0;
	if (audit) {
		fx = core_fx_add(out, CORE_FX_AUDIT);
		core_audit_init(s, &fx->audit,
			   s->authenticated ? CAPF__AUDIT_KIND__AUDIT_ENROLL_FAIL
					    : CAPF__AUDIT_KIND__AUDIT_AUTH_FAIL,
			   code, text != NULL ? text : capf_strerror(code));
	}
	fx = core_fx_add(out, CORE_FX_SEND);
	fx->send.type = CORE_MSG_END;
	fx->send.code = code;
	fx->send.text = text != NULL ? text : capf_strerror(code);
	core_fx_add(out, CORE_FX_CLOSE);
	out->error = code;
	out->done = true;
	s->state = CORE_S_DONE;
	return code;
}

int core_fail(struct core *s, int code, const char *text, struct core_out *out)
{
	return core_end_with(s, code, text, true, out);
}

void core_emit_load(struct core *s, bool claim, struct core_out *out, enum core_state next)
{
	struct core_fx *fx = core_fx_add(out, CORE_FX_LOAD);

	fx->load.device = s->device;
	fx->load.claim = claim;
	if (s->peer.present && s->peer.serial_len > 0 && s->peer.lsc_result == 0) {
		fx->load.presented = s->peer.serial;
		fx->load.presented_len = s->peer.serial_len;
	}
	if (next == CORE_S_LOAD_KEY || next == CORE_S_LOAD_ISSUE)
		fx->load.key_sha256 = s->key.spki_sha256;
	s->state = next;
}

bool core_serial_eq(const ProtobufCBinaryData *a, const uint8_t *b, size_t blen)
{
	return a->len == blen && blen > 0 && memcmp(a->data, b, blen) == 0;
}

/* ---- records -------------------------------------------------------------- */

void core_persist_begin(struct core *s)
{
	s->recs->nrec = 0;
	s->recs->nrevoked = 0;
}

Capf__Device *core_persist_device(struct core *s, const Capf__Device *cur, time_t now)
{
	Capf__StoreRecord *r = &s->recs->rec[s->recs->nrec];
	Capf__Device *d = &s->recs->dev_out;

	*d = *cur;
	d->revision = cur->revision + 1;
	d->updated = now;
	capf__store_record__init(r);
	r->body_case = CAPF__STORE_RECORD__BODY_DEVICE;
	r->device = d;
	r->check_revision = true;
	r->expect_revision = cur->revision;
	s->recs->rec_ptrs[s->recs->nrec++] = r;
	return d;
}

/* A changed copy of an existing certificate record, at its revision. */
Capf__Certificate *core_persist_cert(struct core *s, const Capf__Certificate *cur)
{
	Capf__StoreRecord *r = &s->recs->rec[s->recs->nrec];
	Capf__Certificate *c = &s->recs->cert_out[s->recs->nrec];

	*c = *cur;
	c->revision = cur->revision + 1;
	capf__store_record__init(r);
	r->body_case = CAPF__STORE_RECORD__BODY_CERT;
	r->cert = c;
	r->check_revision = true;
	r->expect_revision = cur->revision;
	s->recs->rec_ptrs[s->recs->nrec++] = r;
	return c;
}

void core_revoke_cert(struct core *s, const Capf__Certificate *cur, time_t now, int reason)
{
	Capf__Certificate *c = core_persist_cert(s, cur);
	struct core_revoked *rv = &s->recs->revoked[s->recs->nrevoked++];

	c->state = CAPF__CERT_STATE__CERT_REVOKED;
	c->revoked_at = now;
	c->revocation_reason = (uint32_t)reason;
	c->revoke_after = 0;
	rv->serial = cur->serial.data;
	rv->serial_len = cur->serial.len;
	rv->when = now;
	rv->reason = reason;
	rv->der = cur->der.data;
	rv->der_len = cur->der.len;
}

struct core_fx *core_emit_persist(struct core *s, struct core_out *out, Capf__AuditKind kind,
				  const char *detail, enum core_state next)
{
	struct core_fx *fx = core_fx_add(out, CORE_FX_PERSIST);

	fx->persist.recs = s->recs->rec_ptrs;
	fx->persist.nrecs = s->recs->nrec;
	core_audit_init(s, &fx->persist.audit, kind, 0, detail);
	fx->persist.revoked = s->recs->nrevoked > 0 ? s->recs->revoked : NULL;
	fx->persist.nrevoked = s->recs->nrevoked;
	fx->persist.lazy = false;
	s->state = next;
	return fx;
}

/* A write refused because the record changed: read again and decide again,
 * a bounded number of times. */
int core_on_conflict(struct core *s, int result, enum core_state reload, struct core_out *out)
{
	if (result != CAPF_ESTALE && result != CAPF_ENOENT)
		return core_fail(s, CAPF_ERETRY, "the server cannot record certificates now; retry later",
			    out);
	if (++s->conflicts > s->cfg.max_conflicts)
		return core_fail(s, CAPF_ERETRY, "the device record keeps changing; retry later", out);
	core_emit_load(s, false, out, reload);
	return 0;
}

void core_emit_sign(struct core *s, struct core_out *out)
{
	struct core_fx *fx = core_fx_add(out, CORE_FX_SIGN);

	fx->sign.device = s->device;
	fx->sign.key_handle = s->key.handle;
	fx->sign.key_type = s->key.key_type;
	fx->sign.days = s->lsc_days;
	s->state = CORE_S_SIGN;
}

void core_emit_deliver(struct core *s, struct core_out *out)
{
	struct core_fx *fx = core_fx_add(out, CORE_FX_SEND);

	fx->send.type = CORE_MSG_DELIVER;
	fx->send.cert = s->lsc_der;
	fx->send.cert_len = s->lsc_der_len;
	fx->send.chain = (const uint8_t *const *)s->chain;
	fx->send.chain_lens = s->chain_lens;
	fx->send.nchain = s->nchain;
	s->state = CORE_S_WAIT_ACK;
}
