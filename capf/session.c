/*
 * A session's glue between the enrollment core and the world: it carries
 * out the core's effects (load records from the store, persist them at
 * the revision expected, sign with the signer, verify a string on the
 * threadpool, send a message through the session's codec) and feeds each
 * result back to the core as an event, until the core asks for nothing
 * more. The connection itself (TCP, TLS, frames, timers) is capf/conn.c.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "ca/ca.h"
#include "capf/capfd.h"
#include "capf/codec.h"
#include "capf/conn_internal.h"
#include "capf/core.h"
#include "capf/log.h"
#include "capf/signer.h"
#include "store/store.h"

/* ---- the core's effects ------------------------------------------------------ */

/* A revocation recorded by a write in flight, copied for the CA. */
struct revoked_copy {
	uint8_t serial[CORE_SERIAL_MAX];
	size_t serial_len;
	time_t when;
	int reason;
	uint8_t *der;
	size_t der_len;
};

void conn_revoked_free(struct conn *c)
{
	for (size_t i = 0; i < c->nrevoked; i++)
		free(c->revoked[i].der);
	free(c->revoked);
	c->revoked = NULL;
	c->nrevoked = 0;
}


/* The records a LOAD effect asked for, owned here until the event that
 * carries them has been handled. */
struct view_buf {
	Capf__Device *dev;
	Capf__Certificate *cur, *pend, *pres;
	char key_owner[DEVICE_NAME_MAX + 1];
};

static void view_free(struct view_buf *v)
{
	if (v->dev != NULL)
		capf__device__free_unpacked(v->dev, NULL);
	if (v->cur != NULL)
		capf__certificate__free_unpacked(v->cur, NULL);
	if (v->pend != NULL)
		capf__certificate__free_unpacked(v->pend, NULL);
	if (v->pres != NULL)
		capf__certificate__free_unpacked(v->pres, NULL);
	memset(v, 0, sizeof(*v));
}

static Capf__Certificate *cert_or_null(struct store *st, const ProtobufCBinaryData *serial)
{
	Capf__Certificate *c = NULL;

	if (serial->len == 0 || store_cert_get(st, serial->data, serial->len, &c) < 0)
		return NULL;
	return c;
}

/* Reads are copies from the store's in-memory index: cheap, and done
 * right here on the loop. */
static void load_view(struct conn *c, const struct core_fx *fx, struct view_buf *vb,
		      struct core_event *ev)
{
	struct store *st = c->srv->store;
	int ret;

	memset(ev, 0, sizeof(*ev));
	ev->type = CORE_EV_LOADED;
	ev->now = time(NULL);
	if (fx->load.claim && c->claimed[0] == '\0') {
		if (server_claim(c->srv, fx->load.device) < 0) {
			ev->loaded.result = CAPF_EBUSY;
			return;
		}
		snprintf(c->claimed, sizeof(c->claimed), "%s", fx->load.device);
	}
	ret = store_device_get(st, fx->load.device, &vb->dev);
	if (ret < 0 && ret != CAPF_ENOENT) {
		ev->loaded.result = ret;
		return;
	}
	if (vb->dev != NULL) {
		vb->cur = cert_or_null(st, &vb->dev->lsc_serial);
		vb->pend = cert_or_null(st, &vb->dev->pending_serial);
	}
	if (fx->load.presented != NULL) {
		ProtobufCBinaryData s = { fx->load.presented_len, (uint8_t *)fx->load.presented };
		vb->pres = cert_or_null(st, &s);
	}
	ev->loaded.device = vb->dev;
	ev->loaded.current = vb->cur;
	ev->loaded.pending = vb->pend;
	ev->loaded.presented = vb->pres;
	if (fx->load.key_sha256 != NULL &&
	    keyindex_other(c->srv->keys, fx->load.key_sha256, fx->load.device, vb->key_owner,
			   sizeof(vb->key_owner)))
		ev->loaded.key_owner = vb->key_owner;
}

static void audit_fill(struct conn *c, struct store_audit_event *ev, const struct core_audit *a)
{
	memset(ev, 0, sizeof(*ev));
	ev->kind = a->kind;
	ev->device = a->device;
	ev->peer = c->peer;
	ev->serial = a->serial;
	ev->serial_len = a->serial_len;
	ev->code = a->code;
	ev->detail = a->detail;
}

/* Waiting for the store or the signer: the phone's idle time does not
 * run, and nothing it sends is read. */
static void set_busy(struct conn *c)
{
	c->busy = true;
	c->refs++;
	uv_timer_stop(&c->timer);
}

/* Back from the store or the signer: read what the phone sent meanwhile. */
static void resume(struct conn *c)
{
	if (c->closing || c->busy)
		return;
	uv_timer_start(&c->timer, conn_idle_timeout, CFG_LIVE(c->srv->cfg->idle_timeout_ms), 0);
	if (!c->reading)
		conn_start_reading(c);
	conn_process(c);
}

static void on_persisted(void *arg, int result)
{
	struct conn *c = arg;
	struct core_event ev = { .type = CORE_EV_PERSISTED };

	c->busy = false;
	if (result == 0 && c->has_new_key)
		(void)keyindex_add(c->srv->keys, c->new_key, core_device(c->core));
	c->has_new_key = false;
	if (result == 0) {
		/* Durable: now the CA's CRLs may list what it revoked, even if
		 * the phone is gone. */
		for (size_t i = 0; i < c->nrevoked; i++) {
			const struct revoked_copy *r = &c->revoked[i];
			(void)ca_revoked_add(c->srv->ca, r->serial, r->serial_len, r->when, r->reason,
					     r->der, r->der_len);
		}
		if (c->nrevoked > 0)
			server_crl_dirty(c->srv);
	} else {
		log_debug("%s: device \"%s\": store write failed: %s", c->peer,
			  core_device(c->core), capf_strerror(result));
	}
	conn_revoked_free(c);
	if (!c->closing) {
		ev.now = time(NULL);
		ev.result = result;
		conn_session_run(c, &ev);
		resume(c);
	}
	conn_unref(c);
}

static int start_persist(struct conn *c, const struct core_fx *fx)
{
	struct store_audit_event ev;
	int ret;

	conn_revoked_free(c);
	if (fx->persist.nrevoked > 0) {
		c->revoked = calloc(fx->persist.nrevoked, sizeof(*c->revoked));
		if (c->revoked == NULL)
			return CAPF_ENOMEM;
		for (size_t i = 0; i < fx->persist.nrevoked; i++) {
			const struct core_revoked *r = &fx->persist.revoked[i];
			struct revoked_copy *k = &c->revoked[c->nrevoked++];

			k->serial_len = r->serial_len <= sizeof(k->serial) ? r->serial_len : 0;
			memcpy(k->serial, r->serial, k->serial_len);
			k->when = r->when;
			k->reason = r->reason;
			if (r->der_len > 0 && (k->der = malloc(r->der_len)) != NULL) {
				memcpy(k->der, r->der, r->der_len);
				k->der_len = r->der_len;
			}
		}
	}
	/* A certificate the write creates: its key is this device's from
	 * then on. */
	c->has_new_key = false;
	for (size_t i = 0; i < fx->persist.nrecs; i++) {
		const Capf__StoreRecord *r = fx->persist.recs[i];
		if (r->body_case == CAPF__STORE_RECORD__BODY_CERT && r->create_only &&
		    r->cert->spki_sha256.len == sizeof(c->new_key)) {
			memcpy(c->new_key, r->cert->spki_sha256.data, sizeof(c->new_key));
			c->has_new_key = true;
		}
	}
	/* The audit entry of the step goes in the same group commit as the
	 * records it describes. */
	audit_fill(c, &ev, &fx->persist.audit);
	ret = bridge_submit_opts(&c->w->bridge, c->srv->store, fx->persist.recs,
				 fx->persist.nrecs, &ev, fx->persist.lazy, on_persisted, c);
	if (ret < 0) {
		conn_revoked_free(c);
		return ret;
	}
	set_busy(c);
	return 0;
}

static void on_signed(void *arg, int result, const uint8_t *sig, size_t sig_len)
{
	struct conn *c = arg;
	struct core_event ev = { .type = CORE_EV_SIGNED };
	struct ca_lsc lsc = { 0 };
	struct core_lsc cl = { 0 };
	const uint8_t *chain[1];
	size_t chain_len[1];

	c->busy = false;
	if (!c->closing) {
		if (result == 0)
			result = ca_issue_complete(&c->tbs, sig, sig_len, &lsc);
		if (result == 0) {
			cl.der = lsc.der;
			cl.der_len = lsc.der_len;
			cl.serial = lsc.serial;
			cl.serial_len = sizeof(lsc.serial);
			cl.not_before = lsc.not_before;
			cl.not_after = lsc.not_after;
			cl.issued_at = lsc.not_before + CA_BACKDATE_SECONDS;
			memcpy(cl.spki_sha256, lsc.spki_sha256, sizeof(cl.spki_sha256));
			/* The CA that signed it, even if a rollover made another
			 * one current since. */
			chain[0] = lsc.issuer_der;
			chain_len[0] = lsc.issuer_der_len;
			cl.chain = chain;
			cl.chain_lens = chain_len;
			cl.nchain = lsc.issuer_der != NULL ? 1 : 0;
			ev.signed_lsc = &cl;
		} else {
			log_info("%s: device \"%s\": cannot sign: %s", c->peer, core_device(c->core),
				 capf_strerror(result));
		}
		ev.now = time(NULL);
		ev.sign_result = result;
		conn_session_run(c, &ev);
		ca_lsc_deinit(&lsc);
		resume(c);
	}
	ca_tbs_deinit(&c->tbs);
	conn_unref(c);
}

static int start_sign(struct conn *c, const struct core_fx *fx)
{
	int ret;

	ca_tbs_deinit(&c->tbs);
	ret = ca_issue_prepare(c->srv->ca, fx->sign.key_handle, fx->sign.device, time(NULL),
			       fx->sign.days, &c->tbs);
	if (ret < 0)
		return ret;
	/* The worker never signs: the signer does, while this loop serves
	 * the other phones. */
	ret = signer_sign_async(c->w->signer, c->tbs.key_ref, c->tbs.sign_algo, c->tbs.data,
				c->tbs.len, on_signed, c);
	if (ret < 0) {
		ca_tbs_deinit(&c->tbs);
		return ret;
	}
	set_busy(c);
	return 0;
}

/* An authentication string checked on libuv's threadpool: PBKDF2 costs
 * tens of milliseconds on purpose, which no loop may spend. */
struct verify_req {
	uv_work_t req;
	struct conn *c;
	uint8_t secret[AUTH_STRING_MAX];
	size_t secret_len;
	uint8_t salt[AUTH_SALT_MAX];
	size_t salt_len;
	uint8_t hash[AUTH_HASH_LEN];
	unsigned iterations;
	int result;
};

static void verify_work(uv_work_t *req)
{
	struct verify_req *v = req->data;

	v->result = ca_secret_check(v->secret, v->secret_len, v->salt, v->salt_len, v->iterations,
				    v->hash, sizeof(v->hash));
}

static void verify_done(uv_work_t *req, int status)
{
	struct verify_req *v = req->data;
	struct conn *c = v->c;
	struct core_event ev = { .type = CORE_EV_VERIFIED };

	c->busy = false;
	if (!c->closing) {
		ev.now = time(NULL);
		ev.result = status < 0 ? CAPF_ERETRY : v->result;
		conn_session_run(c, &ev);
		resume(c);
	}
	gnutls_memset(v, 0, sizeof(*v));
	free(v);
	conn_unref(c);
}

static int start_verify(struct conn *c, const struct core_fx *fx)
{
	struct verify_req *v;
	int ret;

	if (fx->verify.secret_len > sizeof(v->secret) || fx->verify.salt_len > sizeof(v->salt) ||
	    fx->verify.hash_len != sizeof(v->hash))
		return CAPF_EINVAL;
	v = calloc(1, sizeof(*v));
	if (v == NULL)
		return CAPF_ENOMEM;
	v->c = c;
	memcpy(v->secret, fx->verify.secret, fx->verify.secret_len);
	v->secret_len = fx->verify.secret_len;
	memcpy(v->salt, fx->verify.salt, fx->verify.salt_len);
	v->salt_len = fx->verify.salt_len;
	memcpy(v->hash, fx->verify.hash, sizeof(v->hash));
	v->iterations = fx->verify.iterations;
	v->req.data = v;
	ret = uv_queue_work(&c->w->loop, &v->req, verify_work, verify_done);
	if (ret < 0) {
		gnutls_memset(v, 0, sizeof(*v));
		free(v);
		return ret;
	}
	set_busy(c);
	return 0;
}

static void send_msg(struct conn *c, const struct core_msg *m)
{
	uint8_t *chain[CORE_MAX_CHAIN];
	size_t lens[CORE_MAX_CHAIN], nchain = 0;
	uint8_t *frame = NULL;
	size_t len = 0;

	if (c->proto == CONN_CISCO) {
		const uint8_t *msg;
		size_t mlen;

		/* One message, one TLS record: phones read a message per
		 * record. */
		if (codec_cisco_encode(c->cisco, m, &msg, &mlen) == 0)
			conn_send_frame(c, msg, mlen);
		return;
	}
	/* The certificate goes with the chain of the CA that signed it (a
	 * rollover may have made another current since), up to the
	 * enterprise root when that CA is enterprise-signed. A certificate
	 * signed in this session comes with its issuer: found by its bytes,
	 * without verifying the signature just made; one delivered again is
	 * looked up by its signature. */
	if (m->type == CORE_MSG_DELIVER &&
	    (m->nchain > 0 ? ca_issuer_chain_of(c->srv->ca, m->chain[0], m->chain_lens[0], chain,
						lens, CORE_MAX_CHAIN, &nchain)
			   : ca_issuer_chain(c->srv->ca, m->cert, m->cert_len, chain, lens,
					     CORE_MAX_CHAIN, &nchain)) == 0) {
		struct core_msg full = *m;

		full.chain = (const uint8_t *const *)chain;
		full.chain_lens = lens;
		full.nchain = nchain;
		if (codec_native_encode(c->codec, &full, NULL, NULL, 0, &frame, &len) == 0)
			conn_send_frame(c, frame, len);
	} else if (codec_native_encode(c->codec, m, NULL, NULL, 0, &frame, &len) == 0) {
		conn_send_frame(c, frame, len);
	}
	for (size_t i = 0; i < nchain; i++)
		free(chain[i]);
	free(frame);
}

/* The operation, serial, key and duration that every outcome line ends
 * with: "; op install, serial 0A1B..., key ec-p256, 0.042 s". */
static void outcome_tail(const struct conn *c, char *buf, size_t size)
{
	static const char *const ops[] = { "none", "install", "delete", "fetch" };
	int op = core_operation(c->core), kt = core_key_type(c->core);
	char serial[2 * CORE_SERIAL_MAX + 1] = "-";
	const uint8_t *sn;
	size_t len, i;

	sn = core_serial(c->core, &len);
	for (i = 0; i < len && i < CORE_SERIAL_MAX; i++)
		snprintf(serial + 2 * i, 3, "%02X", sn[i]);
	snprintf(buf, size, "; op %s, serial %s, key %s, %.3f s",
		 op >= 0 && op <= 3 ? ops[op] : "?", serial, kt ? key_type_name(kt) : "-",
		 (double)conn_since_accept(c) / 1e6);
}

/* One log line for every session that ends, with its outcome: peer,
 * device, result, how the phone authenticated, and outcome_tail(). */
static void session_outcome(struct conn *c, const struct core_out *out)
{
	const char *device = core_device(c->core);
	char tail[160];

	outcome_tail(c, tail, sizeof(tail));
	conn_count_outcome(c, out->success ? 0 : out->error);
	if (out->success) {
		int op = core_operation(c->core);

		log_info("%s: device \"%s\": %s (authenticated by %s%s)%s", c->peer, device,
			 op == CAPF__OPERATION__OP_DELETE  ? "LSC deleted"
			 : op == CAPF__OPERATION__OP_FETCH ? "certificates reported"
			 : core_renewal(c->core)	   ? "LSC renewed"
							   : "LSC installed",
			 core_auth_method(c->core) != NULL ? core_auth_method(c->core) : "-",
			 c->proto == CONN_CISCO ? ", Cisco CAPF" : "", tail);
		return;
	}
	/* Failures before authentication are anyone's to cause. */
	if (core_auth_method(c->core) == NULL) {
		log_limited(&conn_lim_unauth, LOG_LVL_WARN, "%s: device \"%s\": %s (%s)%s", c->peer,
			    device[0] ? device : "-", capf_strerror(out->error),
			    capf_errname(out->error), tail);
		return;
	}
	log_warn("%s: device \"%s\": %s (%s)%s", c->peer, device[0] ? device : "-",
		 capf_strerror(out->error), capf_errname(out->error), tail);
}

/* The result event of an effect that failed before it started: the
 * store, the signer or the threadpool refused it at once. */
static bool failed_now(struct core_event *ev, enum core_ev_type type, int code)
{
	memset(ev, 0, sizeof(*ev));
	ev->type = type;
	ev->now = time(NULL);
	if (type == CORE_EV_SIGNED)
		ev->sign_result = code;
	else
		ev->result = code;
	return true;
}

/*
 * Feed an event to the core and carry out its effects; an effect whose
 * result is at hand at once (a read, a refused submission) is fed back in
 * the same loop, one that takes time (a store write, a signature) comes
 * back through its callback.
 */
void conn_session_run(struct conn *c, const struct core_event *first)
{
	struct view_buf views[2] = { { 0 } };
	struct core_event ev = *first, next;
	struct core_out out;
	unsigned cur = 0;

	for (;;) {
		bool have_next = false, close = false;
		int ret;

		core_step(c->core, &ev, &out);
		/* A session's last message and its close_notify leave in one
		 * write. */
		for (size_t i = 0; i < out.nfx; i++)
			if (out.fx[i].type == CORE_FX_CLOSE)
				conn_hold_output(c);
		for (size_t i = 0; i < out.nfx; i++) {
			const struct core_fx *fx = &out.fx[i];
			struct store_audit_event aev;

			switch (fx->type) {
			case CORE_FX_LOAD:
				load_view(c, fx, &views[cur ^ 1], &next);
				have_next = true;
				break;
			case CORE_FX_PERSIST:
				ret = start_persist(c, fx);
				if (ret == 0)
					c->audit_quiet = false; /* the submission woke the writer */
				have_next = ret < 0 && failed_now(&next, CORE_EV_PERSISTED, ret);
				break;
			case CORE_FX_SIGN:
				ret = start_sign(c, fx);
				have_next = ret < 0 && failed_now(&next, CORE_EV_SIGNED, ret);
				break;
			case CORE_FX_SEND:
				send_msg(c, &fx->send);
				break;
			case CORE_FX_AUDIT:
				/* Written with the session's next txn (one wake-up
				 * of the writer for both), or when it closes, or
				 * CAPFD_QUIET_AUDIT_MS later, whichever comes first. */
				audit_fill(c, &aev, &fx->audit);
				if (store_audit_quiet(c->srv->store, &aev) == 0) {
					c->audit_quiet = true;
					worker_audit_quiet(c->w);
				}
				break;
			case CORE_FX_VERIFY:
				ret = start_verify(c, fx);
				have_next = ret < 0 && failed_now(&next, CORE_EV_VERIFIED, CAPF_ERETRY);
				break;
			case CORE_FX_CLOSE:
				close = true;
				break;
			}
		}
		if (out.done)
			session_outcome(c, &out);
		view_free(&views[cur]);
		cur ^= 1;
		if (close) {
			conn_close(c);
			break;
		}
		if (!have_next)
			break;
		ev = next;
	}
	view_free(&views[0]);
	view_free(&views[1]);
	if (!c->closing && !c->busy && c->w->stopping) {
		/* Shutting down: the durable part is done, cut the session here
		 * rather than wait for the phone. */
		conn_close(c);
	}
}

/* End a session that failed outside the core (framing, limits, timeouts):
 * the core tells the phone why, then closes. */
void conn_fail(struct conn *c, int code)
{
	struct core_event ev = { .type = CORE_EV_ABORT, .now = time(NULL) };

	if (c->core != NULL) {
		ev.code = code;
		conn_session_run(c, &ev);
		return;
	}
	conn_count_outcome(c, code);
	log_warn("%s: %s (%s)", c->peer, capf_strerror(code), capf_errname(code));
	if (c->handshaken && c->proto == CONN_CISCO && c->cisco != NULL) {
		struct core_msg m = { .type = CORE_MSG_END, .code = code };
		const uint8_t *msg;
		size_t mlen;
		if (codec_cisco_encode(c->cisco, &m, &msg, &mlen) == 0)
			conn_send_frame(c, msg, mlen);
	} else if (c->handshaken && c->proto == CONN_NATIVE) {
		struct core_msg m = { .type = CORE_MSG_END, .code = code };
		uint8_t *frame = NULL;
		size_t len = 0;
		if (codec_native_encode(NULL, &m, NULL, NULL, 0, &frame, &len) == 0)
			conn_send_frame(c, frame, len);
		free(frame);
	}
	conn_close(c);
}

