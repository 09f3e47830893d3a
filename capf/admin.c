/*
 * The admin socket: capfctl's way in. A Unix stream socket (mode 0600 or
 * 0660) on the main loop, carrying AdminRequest/AdminResponse frames. One
 * request at a time per client: reading pauses while a request waits for
 * the store, so answers come back in order.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capf/admin.h"
#include "capf/capfd.h"
#include "capf/log.h"
#include "capf/metrics.h"
#include "store/store.h"

struct admin_client {
	struct admin_client *next, *prev;
	struct server *srv;
	uv_pipe_t pipe;
	struct frame_decoder dec;
	int refs;
	bool closing;
	bool busy; /* a request waits for the store */
	/* Bytes that arrived behind a request that is still waiting: they
	 * are served, in order, once it is answered. */
	uint8_t *backlog;
	size_t backlog_len;
	/* A device-put in progress: what the admin asked for, and the record
	 * being written (the current one with those fields applied). */
	struct device_put_job {
		bool create;
		struct admin_settings set;
		bool set_secret, unlock;
		Capf__AuthSecret secret; /* with set_secret and has_secret */
		bool has_secret;
		uint8_t salt[AUTH_SALT_MAX], hash[AUTH_HASH_LEN];
		unsigned attempts;
		Capf__Device fresh; /* the record of a creation */
		Capf__Device *cur;  /* the record of an update (a store copy) */
		uint64_t tomb_revision; /* a creation over a removed device's record */
	} put;
	char name[DEVICE_NAME_MAX + 1];
	/* Paged lists: what the client's listing walks (capf/admin_query.c). */
	struct admin_cursor *cursor;
	/* The kept parts of a staged device batch (capf/admin_batch.c). */
	struct batch_stage *stage;
	/* Who the peer is (SO_PEERCRED, at accept) and what it may do. */
	enum admin_role role;
	uid_t uid;
	pid_t pid;
	char user[32];
};

/* Attempts of an admin write that keeps meeting a newer record before it
 * gives up with CAPF_ESTALE: a phone session writes a device a handful of
 * times at most, so losing this many races in a row means something else
 * is writing in a loop. */
#define ADMIN_CAS_ATTEMPTS 8

struct admin_write {
	uv_write_t req;
	uint8_t *frame;
};

static struct admin_client *clients;

static void client_unref(struct admin_client *ac)
{
	if (--ac->refs > 0)
		return;
	if (ac->prev != NULL)
		ac->prev->next = ac->next;
	else
		clients = ac->next;
	if (ac->next != NULL)
		ac->next->prev = ac->prev;
	frame_decoder_deinit(&ac->dec);
	admin_cursor_free(ac->cursor);
	admin_stage_free(ac->stage);
	free(ac->backlog);
	free(ac);
}

static void on_client_closed(uv_handle_t *h)
{
	client_unref(h->data);
}

static void client_close(struct admin_client *ac)
{
	if (ac->closing)
		return;
	ac->closing = true;
	uv_close((uv_handle_t *)&ac->pipe, on_client_closed);
}

static void on_written(uv_write_t *req, int status)
{
	struct admin_write *aw = (struct admin_write *)req;
	(void)status;
	free(aw->frame);
	free(aw);
}

void admin_respond(struct admin_client *ac, Capf__AdminResponse *resp)
{
	struct admin_write *aw;
	size_t len;
	uv_buf_t buf;

	if (ac->closing)
		return;
	aw = calloc(1, sizeof(*aw));
	if (aw == NULL || admin_resp_pack(resp, &aw->frame, &len) < 0) {
		free(aw);
		log_err("admin: cannot build a response");
		client_close(ac);
		return;
	}
	buf = uv_buf_init((char *)aw->frame, (unsigned)len);
	if (uv_write(&aw->req, (uv_stream_t *)&ac->pipe, &buf, 1, on_written) < 0) {
		free(aw->frame);
		free(aw);
		client_close(ac);
	}
}

void admin_respond_error(struct admin_client *ac, int code, const char *text)
{
	Capf__AdminResponse resp = CAPF__ADMIN_RESPONSE__INIT;

	resp.code = (uint32_t)-code;
	resp.text = (char *)(text != NULL ? text : capf_strerror(code));
	admin_respond(ac, &resp);
}

/* ---- handlers ------------------------------------------------------------- */

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void feed(struct admin_client *ac, const uint8_t *data, size_t len);

struct server *admin_server(struct admin_client *ac)
{
	return ac->srv;
}

bool admin_closing(const struct admin_client *ac)
{
	return ac->closing;
}

void admin_peer(struct admin_client *ac, char *buf, size_t len)
{
	snprintf(buf, len, "admin uid=%u(%s) pid=%d", (unsigned)ac->uid, ac->user, (int)ac->pid);
}

/* The peer's credentials, as the kernel recorded them at connect(2). */
static int peer_cred(struct admin_client *ac, struct ucred *cred)
{
	socklen_t cl = sizeof(*cred);
	uv_os_fd_t fd;

	if (uv_fileno((uv_handle_t *)&ac->pipe, &fd) != 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &cl) != 0)
		return CAPF_EACCES;
	return 0;
}

struct admin_cursor **admin_cursor_slot(struct admin_client *ac)
{
	return &ac->cursor;
}

struct batch_stage **admin_stage_slot(struct admin_client *ac)
{
	return &ac->stage;
}

void admin_hold(struct admin_client *ac)
{
	ac->refs++;
	ac->busy = true;
	uv_read_stop((uv_stream_t *)&ac->pipe);
}

void admin_release(struct admin_client *ac)
{
	ac->busy = false;
	if (!ac->closing && ac->backlog != NULL) {
		uint8_t *b = ac->backlog;
		size_t len = ac->backlog_len;
		ac->backlog = NULL;
		ac->backlog_len = 0;
		feed(ac, b, len);
		free(b);
	}
	if (!ac->closing && !ac->busy)
		uv_read_start((uv_stream_t *)&ac->pipe, on_alloc, on_read);
	client_unref(ac);
}

/* A store copy that put_apply() pointed at the job's secret. */
static void put_cur_free(struct device_put_job *job)
{
	if (job->cur == NULL)
		return;
	if (job->cur->auth_secret == &job->secret)
		job->cur->auth_secret = NULL;
	capf__device__free_unpacked(job->cur, NULL);
	job->cur = NULL;
}

static void put_job_clear(struct admin_client *ac)
{
	put_cur_free(&ac->put);
	gnutls_memset(&ac->put, 0, sizeof(ac->put));
}

/* Not even the hash of an authentication string leaves the server: an
 * answer says only that there is one, and whether it is reusable. The
 * fetch report is big and goes only with one device. */
void admin_redact(Capf__Device *d, bool with_report)
{
	if (d->auth_secret != NULL) {
		d->auth_secret->hash.len = 0;
		d->auth_secret->salt.len = 0;
	}
	if (!with_report) {
		for (size_t i = 0; i < d->n_fetched; i++)
			free(d->fetched[i].data);
		d->n_fetched = 0;
	}
}

static int put_submit(struct admin_client *ac);

static void on_put_done(void *arg, int result)
{
	struct admin_client *ac = arg;
	Capf__Device *d = ac->put.create ? &ac->put.fresh : ac->put.cur;

	/* Someone wrote the record since it was read: read it again and
	 * apply the admin's fields to what is there now. */
	if (result == CAPF_ESTALE && !ac->closing && ac->put.attempts < ADMIN_CAS_ATTEMPTS) {
		log_debug("admin: device %s changed while being written, trying again", ac->name);
		result = put_submit(ac);
		if (result == 0)
			return; /* still held: this runs again */
	}
	if (!ac->closing) {
		if (result < 0) {
			char text[160];
			if (result == CAPF_EEXIST)
				snprintf(text, sizeof(text), "device %s already exists", ac->name);
			else if (result == CAPF_ENOENT)
				snprintf(text, sizeof(text), "no device named %s", ac->name);
			else if (result == CAPF_EAUTH)
				snprintf(text, sizeof(text),
					 "device %s has no authentication string: set one "
					 "(--auth-string or --generate-string)",
					 ac->name);
			else if (result == CAPF_ESTALE)
				snprintf(text, sizeof(text),
					 "device %s kept changing while being written (%u attempts); "
					 "try again",
					 ac->name, ac->put.attempts);
			else
				snprintf(text, sizeof(text), "cannot record device %s: %s", ac->name,
					 capf_strerror(result));
			admin_respond_error(ac, result, text);
		} else {
			Capf__AdminResponse resp = CAPF__ADMIN_RESPONSE__INIT;
			Capf__Device *devs[1] = { d };
			admin_redact(d, true);
			resp.n_devices = 1;
			resp.devices = devs;
			log_info("admin: device %s recorded by uid %u (%s): op %s, auth %s (revision "
				 "%llu)",
				 ac->name, (unsigned)ac->uid, ac->user, op_name(d->op), auth_name(d->auth),
				 (unsigned long long)d->revision);
			admin_respond(ac, &resp);
		}
	}
	put_job_clear(ac);
	admin_release(ac);
}

/* Only the operations and modes this server drives can be scheduled;
 * anything else would sit pending forever. */
static int check_schedulable(const Capf__DevicePut *put, const char **why)
{
	const Capf__Device *d = put->device;

	if (d->op != CAPF__OPERATION__OP_NONE && d->op != CAPF__OPERATION__OP_INSTALL &&
	    d->op != CAPF__OPERATION__OP_DELETE && d->op != CAPF__OPERATION__OP_FETCH) {
		*why = "unknown operation";
		return CAPF_ENOTSUP;
	}
	if (d->auth == CAPF__AUTH_MODE__AUTH_STRING && put->create &&
	    (!put->set_secret || d->auth_secret == NULL)) {
		*why = "authentication by string needs a string (--auth-string or --generate-string)";
		return CAPF_EINVAL;
	}
	return 0;
}

static bool field_given(const struct admin_settings *set, uint32_t bit)
{
	return set->fields == 0 || (set->fields & bit) != 0;
}

/*
 * The admin owns op, auth, the key policy, lsc_days and deadline; every
 * other field is the phone session's and is kept as read. Asking for
 * another operation (op, auth or key policy changed) starts a new
 * operation generation: a session still running the old one then records
 * its certificate but leaves the new request pending. A deadline moved on
 * the same operation is the same operation. Scheduling makes the status
 * pending again, but never while a session has issued and waits for the
 * phone's acknowledgement (that status is the session's); clearing the
 * operation leaves the status to what the last session recorded.
 */
bool admin_settings_apply(const struct admin_settings *set, Capf__Device *d)
{
	Capf__Device want = *d;
	bool new_op, changed;

	if (field_given(set, CAPF__PUT_FIELD__PUT_FIELD_OP))
		want.op = set->op;
	if (field_given(set, CAPF__PUT_FIELD__PUT_FIELD_AUTH))
		want.auth = set->auth;
	if (field_given(set, CAPF__PUT_FIELD__PUT_FIELD_KEY_TYPE))
		want.key_type = set->key_type;
	if (field_given(set, CAPF__PUT_FIELD__PUT_FIELD_EC_KEY_TYPE))
		want.ec_key_type = set->ec_key_type;
	if (field_given(set, CAPF__PUT_FIELD__PUT_FIELD_KEY_ORDER))
		want.key_order = set->key_order;
	if (field_given(set, CAPF__PUT_FIELD__PUT_FIELD_LSC_DAYS))
		want.lsc_days = set->lsc_days;
	if (field_given(set, CAPF__PUT_FIELD__PUT_FIELD_DEADLINE))
		want.deadline = set->deadline;
	new_op = d->op != want.op || d->auth != want.auth || d->key_type != want.key_type ||
		 d->ec_key_type != want.ec_key_type || d->key_order != want.key_order;
	changed = new_op || d->lsc_days != want.lsc_days || d->deadline != want.deadline;

	d->op = want.op;
	d->auth = want.auth;
	d->key_type = want.key_type;
	d->ec_key_type = want.ec_key_type;
	d->key_order = want.key_order;
	d->lsc_days = want.lsc_days;
	d->deadline = want.deadline;
	if (new_op)
		d->op_generation++;
	if (set->fields == 0 || changed) {
		if (d->op != CAPF__OPERATION__OP_NONE &&
		    (new_op || d->status != CAPF__OP_STATUS__STATUS_ISSUED))
			d->status = CAPF__OP_STATUS__STATUS_PENDING;
	}
	return changed;
}

/* The settings, then the string and the unlock of a device-put. */
static void put_apply(struct device_put_job *job, Capf__Device *d)
{
	admin_settings_apply(&job->set, d);
	if (job->set_secret) {
		/* The record points at the job's copy; the store packs it at
		 * submission. A store copy's own secret goes first. */
		if (d == job->cur && d->auth_secret != NULL && d->auth_secret != &job->secret)
			capf__auth_secret__free_unpacked(d->auth_secret, NULL);
		d->auth_secret = job->has_secret ? &job->secret : NULL;
	}
	if (job->set_secret || job->unlock) {
		d->auth_failures = 0;
		d->lockouts = 0;
		d->locked_until = 0;
	}
}

/*
 * One attempt of a device-put: build the record (a new one for a
 * creation, else the current one as the store has it now with the
 * admin's fields applied) and hand it to the writer with a
 * compare-and-set on the revision read. The result comes back to
 * on_put_done() on this loop. Returns 0 (submitted) or an error (nothing
 * submitted, nothing to undo but the job).
 */
static int put_submit(struct admin_client *ac)
{
	struct device_put_job *job = &ac->put;
	Capf__StoreRecord rec = CAPF__STORE_RECORD__INIT;
	Capf__StoreRecord *recs[1] = { &rec };
	struct store_audit_event ev = { .kind = CAPF__AUDIT_KIND__AUDIT_ADMIN };
	char peer[80], detail[200];
	Capf__Device *d;
	int ret;

	job->attempts++;
	if (job->create) {
		time_t now = time(NULL);

		/* A removed device's tombstone is replaced by the new record
		 * (a compare-and-set on it); otherwise the name must be free. */
		job->tomb_revision = 0;
		ret = store_device_get(ac->srv->store, ac->name, &job->cur);
		if (ret == 0 && job->cur->deleted)
			job->tomb_revision = job->cur->revision;
		put_cur_free(job);
		d = &job->fresh;
		capf__device__init(d);
		d->name = ac->name;
		d->created = now;
		d->updated = now;
		d->status = CAPF__OP_STATUS__STATUS_NONE;
		put_apply(job, d);
		if (job->tomb_revision != 0) {
			rec.check_revision = true;
			rec.expect_revision = job->tomb_revision;
			d->revision = job->tomb_revision + 1;
		} else {
			d->revision = 1;
			rec.create_only = true;
		}
	} else {
		put_cur_free(job);
		ret = store_device_get(ac->srv->store, ac->name, &job->cur);
		if (ret == 0 && job->cur->deleted) {
			put_cur_free(job);
			ret = CAPF_ENOENT;
		}
		if (ret < 0)
			return ret;
		d = job->cur;
		rec.check_revision = true;
		rec.expect_revision = d->revision;
		put_apply(job, d);
		d->revision = rec.expect_revision + 1;
		if (d->auth == CAPF__AUTH_MODE__AUTH_STRING && d->auth_secret == NULL)
			return CAPF_EAUTH;
	}
	rec.body_case = CAPF__STORE_RECORD__BODY_DEVICE;
	rec.device = d;

	/* The change and its audit entry are written together; a refused
	 * attempt drops its entry, so the log holds what took effect. */
	admin_peer(ac, peer, sizeof(peer));
	snprintf(detail, sizeof(detail),
		 "device %s: op %s, auth %s, key %s, deadline %lld (revision %llu, generation "
		 "%llu)",
		 job->create ? "add" : "set", op_name(d->op), auth_name(d->auth),
		 key_type_name(d->key_type), (long long)d->deadline,
		 (unsigned long long)d->revision, (unsigned long long)d->op_generation);
	ev.device = ac->name;
	ev.peer = peer;
	ev.detail = detail;
	return bridge_submit_audit(&ac->srv->bridge, ac->srv->store, recs, 1, &ev, on_put_done,
				   ac);
}

static void handle_device_put(struct admin_client *ac, const Capf__AdminRequest *req)
{
	const Capf__DevicePut *put = req->device_put;
	const Capf__Device *in = put->device;
	const char *why = NULL;
	int ret;

	ret = check_schedulable(put, &why);
	if (ret < 0) {
		admin_respond_error(ac, ret, why);
		return;
	}

	memset(&ac->put, 0, sizeof(ac->put));
	snprintf(ac->name, sizeof(ac->name), "%s", in->name);
	ac->put.create = put->create;
	admin_settings_from_put(put, &ac->put.set);
	ac->put.set.fields = 0;
	ac->put.unlock = put->unlock;
	ac->put.set_secret = put->set_secret;
	if (put->set_secret && in->auth_secret != NULL) {
		/* Only the hash travels; it was made by capfctl. */
		capf__auth_secret__init(&ac->put.secret);
		memcpy(ac->put.salt, in->auth_secret->salt.data, in->auth_secret->salt.len);
		memcpy(ac->put.hash, in->auth_secret->hash.data, AUTH_HASH_LEN);
		ac->put.secret.salt.data = ac->put.salt;
		ac->put.secret.salt.len = in->auth_secret->salt.len;
		ac->put.secret.hash.data = ac->put.hash;
		ac->put.secret.hash.len = AUTH_HASH_LEN;
		ac->put.secret.iterations = in->auth_secret->iterations;
		ac->put.secret.reusable = in->auth_secret->reusable;
		ac->put.has_secret = true;
	}
	ret = put_submit(ac);
	if (ret < 0) {
		char text[160];

		if (ret == CAPF_EAUTH)
			snprintf(text, sizeof(text),
				 "device %s has no authentication string: set one (--auth-string or "
				 "--generate-string)",
				 ac->name);
		else
			snprintf(text, sizeof(text), "no device named %s", ac->name);
		admin_respond_error(ac, ret, ret == CAPF_ENOENT || ret == CAPF_EAUTH ? text : NULL);
		put_job_clear(ac);
		return;
	}
	admin_hold(ac);
}

void admin_settings_from_put(const Capf__DevicePut *put, struct admin_settings *set)
{
	const Capf__Device *in = put->device;

	memset(set, 0, sizeof(*set));
	set->fields = put->fields;
	set->op = in->op;
	set->auth = in->auth != CAPF__AUTH_MODE__AUTH_UNSPECIFIED ? in->auth
								   : CAPF__AUTH_MODE__AUTH_MIC;
	set->key_type = in->key_type != CAPF__KEY_TYPE__KEY_UNSPECIFIED
				? in->key_type
				: CAPF__KEY_TYPE__KEY_EC_P256;
	set->deadline = in->deadline;
	set->ec_key_type = in->ec_key_type;
	set->key_order = in->key_order;
	set->lsc_days = in->lsc_days;
}

static bool serial_is(const Capf__Certificate *c, const ProtobufCBinaryData *serial)
{
	return serial->len > 0 && c->serial.len == serial->len &&
	       memcmp(c->serial.data, serial->data, serial->len) == 0;
}

/* One device and every certificate it was ever issued (the per-device
 * index): the current LSC and the unacknowledged one with their DER (for
 * the subject), the past ones without, so that a phone enrolled many times
 * still fits one frame. */
static void handle_device_get(struct admin_client *ac, const Capf__AdminRequest *req)
{
	Capf__AdminResponse resp = CAPF__ADMIN_RESPONSE__INIT;
	Capf__Certificate **certs = NULL;
	Capf__Device *dev = NULL;
	size_t n = 0;
	int ret;

	ret = store_device_get(ac->srv->store, req->device_get->name, &dev);
	if (ret == 0 && dev->deleted) {
		capf__device__free_unpacked(dev, NULL);
		dev = NULL;
		ret = CAPF_ENOENT;
	}
	if (ret < 0) {
		char text[160];
		snprintf(text, sizeof(text), "no device named %s", req->device_get->name);
		admin_respond_error(ac, ret, ret == CAPF_ENOENT ? text : NULL);
		return;
	}
	ret = store_cert_list_device(ac->srv->store, dev->name, &certs, &n);
	if (ret < 0) {
		admin_respond_error(ac, ret, NULL);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		Capf__Certificate *c = certs[i];

		if (serial_is(c, &dev->lsc_serial) || serial_is(c, &dev->pending_serial))
			continue;
		free(c->der.data);
		c->der.data = NULL;
		c->der.len = 0;
	}
	admin_redact(dev, true);
	resp.n_devices = 1;
	resp.devices = &dev;
	resp.n_certificates = n;
	resp.certificates = certs;
	admin_respond(ac, &resp);
out:
	store_cert_list_free(certs, n);
	capf__device__free_unpacked(dev, NULL);
}

static void handle_status(struct admin_client *ac, const Capf__AdminRequest *req)
{
	Capf__AdminResponse resp = CAPF__ADMIN_RESPONSE__INIT;
	Capf__ServerStatus st = CAPF__SERVER_STATUS__INIT;
	struct store_stats ss;
	struct server *srv = ac->srv;
	(void)req;

	store_get_stats(srv->store, &ss);
	st.pid = (uint32_t)getpid();
	st.version = (char *)PACKAGE_VERSION;
	st.port = srv->port;
	st.workers = srv->nworkers;
	st.devices = ss.devices;
	st.certificates = ss.certificates;
	st.enrollments = atomic_load(&srv->enrollments);
	st.failures = atomic_load(&srv->failures);
	st.connections = atomic_load(&srv->connections);
	st.started_at = srv->started_at;
	st.uptime = (uint64_t)(time(NULL) - srv->started_at);
	metrics_status(srv, &st.devices, &st.pending_operations, &st.unacknowledged,
		       &st.ca_not_after);
	resp.status = &st;
	admin_respond(ac, &resp);
}

static void handle_stats(struct admin_client *ac, const Capf__AdminRequest *req)
{
	Capf__AdminResponse resp = CAPF__ADMIN_RESPONSE__INIT;
	char *text = NULL;
	size_t len = 0;
	int ret;
	(void)req;

	ret = metrics_render(ac->srv, &text, &len);
	if (ret < 0) {
		admin_respond_error(ac, ret, NULL);
		return;
	}
	resp.metrics.data = (uint8_t *)text;
	resp.metrics.len = len;
	admin_respond(ac, &resp);
	free(text);
}

const struct admin_handler admin_device_handlers[] = {
	{ CAPF__ADMIN_REQUEST__BODY_DEVICE_PUT, "device-put", handle_device_put },
	{ CAPF__ADMIN_REQUEST__BODY_DEVICE_GET, "device-get", handle_device_get },
	{ CAPF__ADMIN_REQUEST__BODY_STATUS, "status", handle_status },
	{ CAPF__ADMIN_REQUEST__BODY_STATS, "stats", handle_stats },
	{ 0, NULL, NULL },
};

static const struct admin_handler *const handler_tables[] = {
	admin_device_handlers,
	admin_query_handlers,
	admin_ca_handlers,
	admin_store_handlers,
};

static void handle_request(struct admin_client *ac, const uint8_t *payload, size_t len)
{
	Capf__AdminRequest *req = NULL;
	int ret = admin_req_unpack(payload, len, &req);

	if (ret < 0) {
		log_warn("admin: malformed request: %s", capf_strerror(ret));
		admin_respond_error(ac, ret, "malformed request");
		return;
	}
	if (req->version != CAPF_PROTOCOL_VERSION) {
		admin_respond_error(ac, CAPF_EVERSION, "unsupported admin protocol version");
		goto out;
	}
	for (size_t t = 0; t < sizeof(handler_tables) / sizeof(handler_tables[0]); t++) {
		for (const struct admin_handler *h = handler_tables[t]; h->handle != NULL; h++) {
			if (h->body != req->body_case)
				continue;
			if (ac->role == ADMIN_ROLE_NONE ||
			    (ac->role == ADMIN_ROLE_READONLY && !admin_request_readonly(req))) {
				char text[200];

				snprintf(text, sizeof(text),
					 ac->role == ADMIN_ROLE_NONE
						 ? "user %s (uid %u) may not use the admin socket"
						 : "user %s (uid %u) may only read: %s is refused",
					 ac->user, (unsigned)ac->uid, h->name);
				log_warn("admin: %s", text);
				admin_respond_error(ac, CAPF_EACCES, text);
				goto out;
			}
			log_debug("admin: %s by uid %u", h->name, (unsigned)ac->uid);
			h->handle(ac, req);
			goto out;
		}
	}
	admin_respond_error(ac, CAPF_ENOTSUP, "unknown admin request");
out:
	capf__admin_request__free_unpacked(req, NULL);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static __thread char rbuf[65536];
	(void)h;
	(void)suggested;
	*buf = uv_buf_init(rbuf, sizeof(rbuf));
}

/* Serve the requests in data, in order; stop at one that has to wait and
 * keep the rest for admin_release(). */
static void feed(struct admin_client *ac, const uint8_t *data, size_t len)
{
	size_t off = 0;

	while (off < len && !ac->closing) {
		const uint8_t *payload = NULL;
		size_t plen = 0;
		ssize_t used;

		if (ac->busy) {
			uint8_t *b = malloc(len - off);
			if (b == NULL) {
				client_close(ac);
				return;
			}
			memcpy(b, data + off, len - off);
			free(ac->backlog);
			ac->backlog = b;
			ac->backlog_len = len - off;
			return;
		}
		used = frame_decode(&ac->dec, data + off, len - off, &payload, &plen);
		if (used < 0) {
			log_warn("admin: bad frame: %s", capf_strerror((int)used));
			admin_respond_error(ac, (int)used, NULL);
			client_close(ac);
			return;
		}
		off += (size_t)used;
		if (payload != NULL)
			handle_request(ac, payload, plen);
	}
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct admin_client *ac = s->data;

	if (ac->closing)
		return;
	if (nread < 0) {
		client_close(ac);
		return;
	}
	feed(ac, (const uint8_t *)buf->base, (size_t)nread);
}

static void on_admin_connection(uv_stream_t *server, int status)
{
	struct server *srv = server->data;
	struct admin_client *ac;

	if (status < 0)
		return;
	ac = calloc(1, sizeof(*ac));
	if (ac == NULL)
		return;
	ac->srv = srv;
	ac->refs = 1;
	frame_decoder_init(&ac->dec, FRAME_MAX_LIMIT);
	uv_pipe_init(srv->loop, &ac->pipe, 0);
	ac->pipe.data = ac;
	ac->next = clients;
	if (clients != NULL)
		clients->prev = ac;
	clients = ac;
	if (uv_accept(server, (uv_stream_t *)&ac->pipe) < 0) {
		client_close(ac);
		return;
	}
	{
		struct ucred cred;

		if (peer_cred(ac, &cred) < 0) {
			log_warn("admin: a peer without credentials: closed");
			client_close(ac);
			return;
		}
		ac->uid = cred.uid;
		ac->pid = cred.pid;
		ac->role = admin_role_of(srv->cfg, cred.uid, cred.gid, ac->user, sizeof(ac->user));
		log_debug("admin: uid %u (%s) pid %d connected: role %s", (unsigned)cred.uid,
			  ac->user, (int)cred.pid, admin_role_name(ac->role));
	}
	uv_read_start((uv_stream_t *)&ac->pipe, on_alloc, on_read);
}

int admin_start(struct server *srv)
{
	const char *path = srv->cfg->admin_socket;
	mode_t old;
	int ret;

	/* The state directory lock is ours, so a socket left there is stale:
	 * a second capfd would have failed on the lock already. Anything
	 * that is not a socket is not ours to remove. */
	struct stat sb;
	if (lstat(path, &sb) == 0) {
		if (!S_ISSOCK(sb.st_mode)) {
			log_err("admin socket path %s exists and is not a socket: remove it or "
				"choose another admin_socket", path);
			return CAPF_ECONFIG;
		}
		unlink(path);
	}
	uv_pipe_init(srv->loop, &srv->admin, 0);
	srv->admin.data = srv;
	old = umask(0777 & ~srv->cfg->admin_mode);
	ret = uv_pipe_bind(&srv->admin, path);
	umask(old);
	if (ret == 0)
		ret = uv_listen((uv_stream_t *)&srv->admin, 64, on_admin_connection);
	if (ret == 0 && chmod(path, srv->cfg->admin_mode) < 0)
		ret = -errno;
	if (ret < 0) {
		log_err("cannot listen on admin socket %s: %s", path, uv_strerror(ret));
		uv_close((uv_handle_t *)&srv->admin, NULL);
		return ret;
	}
	srv->admin_open = true;
	return 0;
}

void admin_stop(struct server *srv)
{
	if (!srv->admin_open)
		return;
	srv->admin_open = false;
	uv_close((uv_handle_t *)&srv->admin, NULL);
	unlink(srv->cfg->admin_socket);
	for (struct admin_client *ac = clients; ac != NULL; ac = ac->next)
		client_close(ac);
}
