/*
 * Admin requests about the CAPF CA, the trust stores and certificates.
 * Every X.509 decision is ca/'s; these handlers translate requests, make
 * the change take effect for new sessions (server_ca_changed()), record
 * revocations in the store and write audit events.
 *
 * The CA's administrative calls run here, on the main loop: they are
 * rare, and the phone sessions run on the workers, which they do not
 * block (a rollover that makes an RSA key holds up only the admin
 * socket while it does).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca/ca.h"
#include "capf/admin.h"
#include "capf/capfd.h"
#include "capf/log.h"
#include "store/store.h"


/* Sends {code, text} with the CA's explanation when it has one. */
static void respond_ca_error(struct admin_client *ac, int code, const char *what)
{
	char text[700];

	snprintf(text, sizeof(text), "%s%s%s", what != NULL ? what : "", what != NULL ? ": " : "",
		 ca_last_error());
	admin_respond_error(ac, code, text);
}

/* An audit event naming the administrator who caused it. */
static void audit(struct admin_client *ac, Capf__AuditKind kind, const uint8_t *serial,
		  size_t serial_len, const char *device, const char *detail)
{
	struct server *srv = admin_server(ac);
	struct store_audit_event ev = { 0 };
	char peer[80];

	admin_peer(ac, peer, sizeof(peer));
	ev.kind = kind;
	ev.peer = peer;
	ev.device = device;
	ev.serial = serial;
	ev.serial_len = serial_len;
	ev.detail = detail;
	if (store_audit(srv->store, &ev) < 0)
		log_warn("admin: cannot queue the audit event: %s", detail);
}

/* After a change of the CA or a trust store: new sessions see it. */
static void changed(struct admin_client *ac, const char *detail)
{
	struct server *srv = admin_server(ac);
	char peer[80];

	admin_peer(ac, peer, sizeof(peer));
	log_info("admin: %s (by %s)", detail, peer);
	audit(ac, CAPF__AUDIT_KIND__AUDIT_CA_CHANGE, NULL, 0, NULL, detail);
	if (server_ca_changed(srv) < 0)
		log_err("admin: the change is recorded but new sessions still use the old "
			"TLS credentials until capfd restarts");
}

static void respond_reply(struct admin_client *ac, Capf__CaReply *reply, const char *text)
{
	Capf__AdminResponse resp = CAPF__ADMIN_RESPONSE__INIT;

	resp.ca = reply;
	resp.text = (char *)(text != NULL ? text : "");
	admin_respond(ac, &resp);
}

/* Answers a request for data: the error ret (with text, which may be
 * NULL), or a reply that carries data. data is malloc'd or NULL and freed
 * here either way. */
static void respond_data(struct admin_client *ac, int ret, uint8_t *data, size_t len,
			 const char *text)
{
	Capf__CaReply reply = CAPF__CA_REPLY__INIT;

	if (ret < 0) {
		admin_respond_error(ac, ret, text);
	} else {
		reply.data.data = data;
		reply.data.len = len;
		respond_reply(ac, &reply, NULL);
	}
	free(data);
}

static const char *str_or_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? s : NULL;
}

/* ---- ca status ---------------------------------------------------------- */

static void handle_ca_status(struct admin_client *ac, const Capf__AdminRequest *req)
{
	struct server *srv = admin_server(ac);
	Capf__CaReply reply = CAPF__CA_REPLY__INIT;
	Capf__CaInfo *infos = NULL, **ptrs = NULL;
	struct ca_info *list = NULL;
	size_t n = 0, i;
	int ret;
	(void)req;

	ret = ca_status(srv->ca, time(NULL), &list, &n);
	if (ret < 0) {
		admin_respond_error(ac, ret, NULL);
		return;
	}
	infos = calloc(n + 1, sizeof(*infos));
	ptrs = calloc(n + 1, sizeof(*ptrs));
	if (infos == NULL || ptrs == NULL) {
		admin_respond_error(ac, CAPF_ENOMEM, NULL);
		goto out;
	}
	for (i = 0; i < n; i++) {
		Capf__CaInfo *p = &infos[i];

		capf__ca_info__init(p);
		p->id = list[i].id;
		p->subject = list[i].subject;
		p->issuer = list[i].issuer;
		p->fingerprint = list[i].fingerprint;
		p->key_type = list[i].key_type;
		p->key_store = list[i].key_store;
		p->not_before = list[i].not_before;
		p->not_after = list[i].not_after;
		p->trusted_until = list[i].trusted_until;
		p->current = list[i].current;
		p->pending = list[i].pending;
		p->self_signed = list[i].self_signed;
		ptrs[i] = p;
	}
	reply.n_cas = n;
	reply.cas = ptrs;
	respond_reply(ac, &reply, NULL);
out:
	free(infos);
	free(ptrs);
	free(list);
}

/* ---- ca csr / import / rollover ----------------------------------------- */

static void handle_ca_csr(struct admin_client *ac, const Capf__AdminRequest *req)
{
	struct server *srv = admin_server(ac);
	const Capf__CaCsrRequest *q = req->ca_csr;
	struct ca_keyspec spec = { (int)q->key_type, str_or_null(q->key) };
	char *pem = NULL;
	int ret;

	ret = ca_csr(srv->ca, &spec, str_or_null(q->subject), &pem);
	if (ret < 0) {
		respond_ca_error(ac, ret, "cannot make the request");
		return;
	}
	audit(ac, CAPF__AUDIT_KIND__AUDIT_CA_CHANGE, NULL, 0, NULL,
	      "new key and certificate request for the next CAPF CA");
	log_info("admin: new key and certificate request for the next CAPF CA");
	respond_data(ac, 0, (uint8_t *)pem, strlen(pem), NULL);
}

static void handle_ca_import(struct admin_client *ac, const Capf__AdminRequest *req)
{
	struct server *srv = admin_server(ac);
	const Capf__CaImportRequest *q = req->ca_import;
	Capf__CaReply reply = CAPF__CA_REPLY__INIT;
	struct ca_info *list = NULL;
	char detail[200];
	size_t n = 0;
	int ret;

	ret = ca_import(srv->ca, q->certificate.data, q->certificate.len, q->overlap_days,
			time(NULL));
	if (ret < 0) {
		respond_ca_error(ac, ret, "certificate not imported");
		return;
	}
	if (ca_status(srv->ca, time(NULL), &list, &n) == 0 && n > 0)
		reply.id = list[0].id;
	snprintf(detail, sizeof(detail), "imported the enterprise-signed CAPF CA %s",
		 reply.id != NULL ? reply.id : "?");
	changed(ac, detail);
	respond_reply(ac, &reply, NULL);
	free(list);
}

static void handle_ca_rollover(struct admin_client *ac, const Capf__AdminRequest *req)
{
	struct server *srv = admin_server(ac);
	const Capf__CaRolloverRequest *q = req->ca_rollover;
	Capf__CaReply reply = CAPF__CA_REPLY__INIT;
	struct ca_keyspec spec = { (int)q->key_type, str_or_null(q->key) };
	char id[CA_ID_HEX_MAX + 1] = "", detail[200];
	int ret;

	ret = ca_rollover(srv->ca, &spec, str_or_null(q->subject), q->overlap_days, time(NULL),
			  id);
	if (ret < 0) {
		respond_ca_error(ac, ret, "rollover failed");
		return;
	}
	snprintf(detail, sizeof(detail), "rolled the CAPF CA over to %s", id);
	changed(ac, detail);
	reply.id = id;
	respond_reply(ac, &reply, NULL);
}

static void handle_ca_bundle(struct admin_client *ac, const Capf__AdminRequest *req)
{
	struct server *srv = admin_server(ac);
	uint8_t *data = NULL;
	size_t len = 0;
	int ret;

	ret = ca_bundle(srv->ca, time(NULL), !req->ca_bundle->der, &data, &len);
	respond_data(ac, ret, data, len, NULL);
}

/* ---- trust stores ------------------------------------------------------- */

static void handle_trust_add(struct admin_client *ac, const Capf__AdminRequest *req)
{
	struct server *srv = admin_server(ac);
	const Capf__TrustAddRequest *q = req->trust_add;
	Capf__CaReply reply = CAPF__CA_REPLY__INIT;
	const char *store_name = q->kind == CAPF__TRUST_KIND__TRUST_MFG ? "manufacturer roots"
									: "enterprise chain";
	char detail[200];
	size_t added = 0;
	int ret;

	ret = ca_trust_add(srv->ca, (int)q->kind, q->certificates.data, q->certificates.len,
			   &added);
	if (ret < 0) {
		respond_ca_error(ac, ret, "not added");
		return;
	}
	if (added > 0) {
		snprintf(detail, sizeof(detail), "added %zu certificate%s to the %s", added,
			 added == 1 ? "" : "s", store_name);
		changed(ac, detail);
	}
	reply.added = (uint32_t)added;
	respond_reply(ac, &reply, NULL);
}

static void handle_trust_list(struct admin_client *ac, const Capf__AdminRequest *req)
{
	struct server *srv = admin_server(ac);
	Capf__CaReply reply = CAPF__CA_REPLY__INIT;
	Capf__TrustEntry *entries = NULL, **ptrs = NULL;
	struct ca_trust_entry *list = NULL;
	size_t n = 0, i;
	int ret;

	ret = ca_trust_list(srv->ca, (int)req->trust_list->kind, &list, &n);
	if (ret < 0) {
		admin_respond_error(ac, ret, NULL);
		return;
	}
	entries = calloc(n + 1, sizeof(*entries));
	ptrs = calloc(n + 1, sizeof(*ptrs));
	if (entries == NULL || ptrs == NULL) {
		admin_respond_error(ac, CAPF_ENOMEM, NULL);
		goto out;
	}
	for (i = 0; i < n; i++) {
		Capf__TrustEntry *e = &entries[i];

		capf__trust_entry__init(e);
		e->kind = (Capf__TrustKind)list[i].kind;
		e->fingerprint = list[i].fingerprint;
		e->subject = list[i].subject;
		e->not_after = list[i].not_after;
		e->from_config = list[i].from_config;
		e->anchor = list[i].anchor;
		ptrs[i] = e;
	}
	reply.n_trust = n;
	reply.trust = ptrs;
	respond_reply(ac, &reply, NULL);
out:
	free(entries);
	free(ptrs);
	free(list);
}

static void handle_trust_remove(struct admin_client *ac, const Capf__AdminRequest *req)
{
	struct server *srv = admin_server(ac);
	const Capf__TrustRemoveRequest *q = req->trust_remove;
	Capf__CaReply reply = CAPF__CA_REPLY__INIT;
	char detail[200];
	int ret;

	ret = ca_trust_remove(srv->ca, (int)q->kind, q->fingerprint);
	if (ret < 0) {
		respond_ca_error(ac, ret, "not removed");
		return;
	}
	snprintf(detail, sizeof(detail), "removed trusted certificate %.64s", q->fingerprint);
	changed(ac, detail);
	respond_reply(ac, &reply, NULL);
}

/* ---- certificates: show, revoke, CRL ------------------------------------ */

static void serial_text(const ProtobufCBinaryData *serial, char *buf, size_t len)
{
	if (serial->len * 2 + 1 > len) {
		snprintf(buf, len, "?");
		return;
	}
	hex_encode(serial->data, serial->len, buf);
}

/* Answers a failed store_cert_get() of the certificate whose serial is
 * hex: a missing one is named. */
static void respond_cert_error(struct admin_client *ac, int ret, const char *hex)
{
	char text[200];

	snprintf(text, sizeof(text), "no certificate with serial %s", hex);
	admin_respond_error(ac, ret, ret == CAPF_ENOENT ? text : NULL);
}

static void handle_cert_show(struct admin_client *ac, const Capf__AdminRequest *req)
{
	struct server *srv = admin_server(ac);
	Capf__AdminResponse resp = CAPF__ADMIN_RESPONSE__INIT;
	Capf__Certificate *c = NULL;
	char hex[2 * 64 + 1];
	int ret;

	ret = store_cert_get(srv->store, req->cert_show->serial.data, req->cert_show->serial.len,
			     &c);
	if (ret < 0) {
		serial_text(&req->cert_show->serial, hex, sizeof(hex));
		respond_cert_error(ac, ret, hex);
		return;
	}
	resp.n_certificates = 1;
	resp.certificates = &c;
	admin_respond(ac, &resp);
	capf__certificate__free_unpacked(c, NULL);
}

/* A revocation waiting for the store. */
struct revoke_job {
	struct admin_client *ac;
	struct server *srv;
	Capf__Certificate *cert; /* the updated record */
	char hex[2 * 64 + 1];
	time_t when;
	uint32_t reason;
	unsigned attempts;
};

/* As for device records (capf/admin.c): a bound on the races lost in a row. */
#define REVOKE_CAS_ATTEMPTS 8

/* The revocation's fields on a certificate record; the rest stays as read. */
static void revoke_apply(const struct revoke_job *job, Capf__Certificate *c)
{
	c->state = CAPF__CERT_STATE__CERT_REVOKED;
	c->revoked_at = job->when;
	c->revocation_reason = job->reason;
	c->revision++;
}

static void on_revoke_done(void *arg, int result);

/*
 * Writes job->cert (read at some revision, the revocation applied and the
 * revision bumped) with a compare-and-set on the revision it was read at.
 * Returns 0 (on_revoke_done() follows on this loop) or the submit error.
 */
static int revoke_submit(struct revoke_job *job)
{
	Capf__StoreRecord rec = CAPF__STORE_RECORD__INIT;
	Capf__StoreRecord *recs[1] = { &rec };

	job->attempts++;
	rec.body_case = CAPF__STORE_RECORD__BODY_CERT;
	rec.cert = job->cert;
	rec.check_revision = true;
	rec.expect_revision = job->cert->revision - 1;
	return bridge_submit(&job->srv->bridge, job->srv->store, recs, 1, on_revoke_done, job);
}

/* Re-reads the record after a lost race and writes the revocation onto
 * what is there now. Returns 0 (submitted) or an error. */
static int revoke_retry(struct revoke_job *job)
{
	Capf__Certificate *c = NULL;
	int ret;

	ret = store_cert_get(job->srv->store, job->cert->serial.data, job->cert->serial.len, &c);
	if (ret < 0)
		return ret;
	capf__certificate__free_unpacked(job->cert, NULL);
	job->cert = c;
	revoke_apply(job, c);
	return revoke_submit(job);
}

static void on_revoke_done(void *arg, int result)
{
	struct revoke_job *job = arg;
	struct server *srv = job->srv;
	Capf__Certificate *c;
	char detail[300];

	if (result == CAPF_ESTALE && job->attempts < REVOKE_CAS_ATTEMPTS) {
		result = revoke_retry(job);
		if (result == 0)
			return; /* this runs again with the next result */
	}
	c = job->cert;

	/* The CA revoked it already; the CRL lists it whatever the store
	 * said, because a revocation that was asked for must hold. */
	if (ca_crl_update(srv->ca, time(NULL)) < 0)
		log_err("admin: cannot regenerate the CRL: %s", ca_last_error());
	if (result == 0) {
		snprintf(detail, sizeof(detail), "revoked certificate %s of %s (%s)", job->hex,
			 c->device, ca_reason_name((int)c->revocation_reason));
		log_info("admin: %s", detail);
		audit(job->ac, CAPF__AUDIT_KIND__AUDIT_REVOKE, c->serial.data, c->serial.len, c->device,
		      detail);
	} else {
		log_err("admin: certificate %s is revoked in the CA but its store record could "
			"not be written: %s; it is completed at the next start",
			job->hex, capf_strerror(result));
	}
	if (!admin_closing(job->ac)) {
		if (result == 0) {
			Capf__AdminResponse resp = CAPF__ADMIN_RESPONSE__INIT;

			resp.n_certificates = 1;
			resp.certificates = &c;
			admin_respond(job->ac, &resp);
		} else {
			char text[300];

			snprintf(text, sizeof(text),
				 "certificate %s is revoked (it no longer authenticates and the CRL "
				 "lists it) but the store could not record it: %s; capfd completes "
				 "the record at its next start",
				 job->hex, capf_strerror(result));
			admin_respond_error(job->ac, result, text);
		}
	}
	admin_release(job->ac);
	capf__certificate__free_unpacked(job->cert, NULL);
	free(job);
}

static void handle_cert_revoke(struct admin_client *ac, const Capf__AdminRequest *req)
{
	struct server *srv = admin_server(ac);
	const Capf__CertRevokeRequest *q = req->cert_revoke;
	struct revoke_job *job = NULL;
	Capf__Certificate *c = NULL;
	char text[300];
	time_t now = time(NULL);
	int ret;

	job = calloc(1, sizeof(*job));
	if (job == NULL) {
		admin_respond_error(ac, CAPF_ENOMEM, NULL);
		return;
	}
	serial_text(&q->serial, job->hex, sizeof(job->hex));
	if (strcmp(ca_reason_name((int)q->reason), "?") == 0) {
		admin_respond_error(ac, CAPF_EINVAL, "unknown revocation reason");
		goto fail;
	}
	ret = store_cert_get(srv->store, q->serial.data, q->serial.len, &c);
	if (ret < 0) {
		respond_cert_error(ac, ret, job->hex);
		goto fail;
	}
	if (c->state == CAPF__CERT_STATE__CERT_REVOKED) {
		snprintf(text, sizeof(text), "certificate %s is revoked already (%s)", job->hex,
			 ca_reason_name((int)c->revocation_reason));
		admin_respond_error(ac, CAPF_EEXIST, text);
		goto fail;
	}
	/* The CA first: from here on the certificate no longer
	 * authenticates, and its durable list survives a crash before the
	 * store record is written (the next start completes it). */
	ret = ca_revoke(srv->ca, c->serial.data, c->serial.len, now, (int)q->reason, c->der.data,
			c->der.len);
	if (ret < 0) {
		respond_ca_error(ac, ret, "not revoked");
		goto fail;
	}
	job->ac = ac;
	job->srv = srv;
	job->cert = c;
	job->when = now;
	job->reason = q->reason;
	/* Only the revocation's fields change; a record that changed since it
	 * was read is read again and revoked as it is then. */
	revoke_apply(job, c);
	ret = revoke_submit(job);
	if (ret < 0) {
		/* As on a failed write: revoked, reported, completed later. */
		admin_hold(ac);
		on_revoke_done(job, ret);
		return;
	}
	admin_hold(ac);
	return;
fail:
	if (c != NULL)
		capf__certificate__free_unpacked(c, NULL);
	free(job);
}

static void handle_crl(struct admin_client *ac, const Capf__AdminRequest *req)
{
	struct server *srv = admin_server(ac);
	uint8_t *data = NULL;
	size_t len = 0;
	int ret;

	ret = ca_crl_get(srv->ca, req->crl->pem, &data, &len);
	respond_data(ac, ret, data, len, ret == CAPF_ENOENT ? "no CRL made yet" : NULL);
}

const struct admin_handler admin_ca_handlers[] = {
	{ CAPF__ADMIN_REQUEST__BODY_CA_STATUS, "ca-status", handle_ca_status },
	{ CAPF__ADMIN_REQUEST__BODY_CA_CSR, "ca-csr", handle_ca_csr },
	{ CAPF__ADMIN_REQUEST__BODY_CA_IMPORT, "ca-import", handle_ca_import },
	{ CAPF__ADMIN_REQUEST__BODY_CA_ROLLOVER, "ca-rollover", handle_ca_rollover },
	{ CAPF__ADMIN_REQUEST__BODY_CA_BUNDLE, "ca-bundle", handle_ca_bundle },
	{ CAPF__ADMIN_REQUEST__BODY_TRUST_ADD, "trust-add", handle_trust_add },
	{ CAPF__ADMIN_REQUEST__BODY_TRUST_LIST, "trust-list", handle_trust_list },
	{ CAPF__ADMIN_REQUEST__BODY_TRUST_REMOVE, "trust-remove", handle_trust_remove },
	{ CAPF__ADMIN_REQUEST__BODY_CERT_REVOKE, "cert-revoke", handle_cert_revoke },
	{ CAPF__ADMIN_REQUEST__BODY_CERT_SHOW, "cert-show", handle_cert_show },
	{ CAPF__ADMIN_REQUEST__BODY_CRL, "crl", handle_crl },
	{ 0, NULL, NULL },
};
