/*
 * Device batches on the admin socket: many device puts in one request,
 * for bulk imports and schedules by query.
 *
 * Each put is decided against the record as the store has it now (the
 * admin's fields applied by admin_settings_apply(), as for one device
 * put), and a put that changes nothing writes nothing: the same batch
 * twice changes nothing the second time. An atomic batch is one store txn
 * (all or none, one audit entry); otherwise each put is its own txn with
 * its own audit entry, all submitted at once so that the writer commits
 * them in a few groups. A lost compare-and-set is decided again on the
 * newer record.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "capf/admin.h"
#include "capf/capfd.h"
#include "capf/log.h"
#include "store/store.h"

/* As for one put (capf/admin.c): races lost in a row before giving up. */
#define BATCH_CAS_ATTEMPTS 8
/* Every field: a batch put that names none still compares them all. */
#define FIELDS_ALL 127u

struct batch_job;
struct batch_chunk;

struct batch_item {
	struct batch_job *job;
	const Capf__DevicePut *put; /* in job->batch */
	Capf__Device *rec;          /* to write: a store copy, or a new record (fresh) */
	bool fresh;
	bool write;                 /* the put changes the record */
	bool create_only;
	uint64_t expect;
	int result;
	Capf__BatchAction action;
	bool secret_set;
	unsigned attempts;
	char text[160];
};

struct batch_job {
	struct admin_client *ac;
	struct server *srv;
	Capf__DeviceBatch *batch; /* a copy: the request is freed when the handler returns */
	struct batch_item *items;
	size_t n, pending;
	struct batch_chunk *chunks; /* atomic: its txns */
	char peer[80];
};

/* The record's secret may be the request's: detached before any free. */
static void item_rec_free(struct batch_item *it)
{
	Capf__Device *d = it->rec;

	if (d == NULL)
		return;
	if (it->put->device->auth_secret != NULL && d->auth_secret == it->put->device->auth_secret)
		d->auth_secret = NULL;
	if (it->fresh)
		free(d);
	else
		capf__device__free_unpacked(d, NULL);
	it->rec = NULL;
	it->fresh = false;
}

static void item_fail(struct batch_item *it, int code, const char *fmt, const char *name)
{
	it->result = code;
	it->action = CAPF__BATCH_ACTION__BATCH_FAILED;
	it->write = false;
	snprintf(it->text, sizeof(it->text), fmt, name);
}

/* The string of the put on d, and the end of any lockout that goes with it. */
static bool item_secret(struct batch_item *it, Capf__Device *d)
{
	const Capf__DevicePut *put = it->put;
	bool changed = false;

	if (put->set_secret && !(put->secret_if_none && d->auth_secret != NULL)) {
		if (!it->fresh && d->auth_secret != NULL)
			capf__auth_secret__free_unpacked(d->auth_secret, NULL);
		d->auth_secret = put->device->auth_secret;
		it->secret_set = d->auth_secret != NULL;
		changed = true;
	}
	if (changed || put->unlock) {
		changed = changed || d->auth_failures || d->lockouts || d->locked_until;
		d->auth_failures = 0;
		d->lockouts = 0;
		d->locked_until = 0;
	}
	return changed;
}

/*
 * Decide one put against the store's record now: what to write (it->rec,
 * it->write and the precondition) or why not (it->result). Never fails
 * the batch itself but on memory.
 */
static int item_prepare(struct batch_item *it)
{
	const Capf__DevicePut *put = it->put;
	const char *name = put->device->name;
	struct admin_settings set;
	Capf__Device *cur = NULL;
	int ret;

	item_rec_free(it);
	it->result = 0;
	it->write = false;
	it->secret_set = false;
	it->text[0] = '\0';
	admin_settings_from_put(put, &set);
	ret = store_device_get(it->job->srv->store, name, &cur);
	if (ret < 0 && ret != CAPF_ENOENT)
		return ret;
	if (cur == NULL || cur->deleted) {
		Capf__Device *d;
		time_t now = time(NULL);

		if (!put->create && !put->upsert) {
			if (cur != NULL)
				capf__device__free_unpacked(cur, NULL);
			item_fail(it, CAPF_ENOENT, "no device named %s", name);
			return 0;
		}
		d = calloc(1, sizeof(*d));
		if (d == NULL) {
			if (cur != NULL)
				capf__device__free_unpacked(cur, NULL);
			return CAPF_ENOMEM;
		}
		capf__device__init(d);
		d->name = put->device->name;
		d->created = now;
		d->updated = now;
		set.fields = 0; /* a new record takes every field */
		admin_settings_apply(&set, d);
		it->rec = d;
		it->fresh = true;
		item_secret(it, d);
		/* A removed device's tombstone is replaced, by compare-and-set. */
		if (cur != NULL) {
			it->expect = cur->revision;
			it->create_only = false;
			d->revision = cur->revision + 1;
			d->op_generation = cur->op_generation + 1;
			capf__device__free_unpacked(cur, NULL);
		} else {
			it->create_only = true;
			d->revision = 1;
		}
		it->action = CAPF__BATCH_ACTION__BATCH_CREATED;
		it->write = true;
	} else {
		bool changed;

		if (put->create && !put->upsert) {
			capf__device__free_unpacked(cur, NULL);
			item_fail(it, CAPF_EEXIST, "device %s already exists", name);
			return 0;
		}
		set.fields = put->fields ? put->fields : FIELDS_ALL;
		it->rec = cur;
		changed = admin_settings_apply(&set, cur);
		changed = item_secret(it, cur) || changed;
		it->expect = cur->revision;
		it->create_only = false;
		cur->revision++;
		it->write = changed;
		it->action = changed ? CAPF__BATCH_ACTION__BATCH_UPDATED
				     : CAPF__BATCH_ACTION__BATCH_UNCHANGED;
	}
	if (it->write && it->rec->auth == CAPF__AUTH_MODE__AUTH_STRING &&
	    it->rec->auth_secret == NULL)
		item_fail(it, CAPF_EAUTH,
			  "device %s has no authentication string: give one (or generate)", name);
	return 0;
}

static void record_of(const struct batch_item *it, Capf__StoreRecord *rec)
{
	capf__store_record__init(rec);
	rec->body_case = CAPF__STORE_RECORD__BODY_DEVICE;
	rec->device = it->rec;
	if (it->create_only) {
		rec->create_only = true;
	} else {
		rec->check_revision = true;
		rec->expect_revision = it->expect;
	}
}

static void job_free(struct batch_job *job)
{
	for (size_t i = 0; i < job->n; i++)
		item_rec_free(&job->items[i]);
	free(job->items);
	if (job->batch != NULL)
		capf__device_batch__free_unpacked(job->batch, NULL);
	free(job);
}

static const char *store_text(int code, const char *name, char *buf, size_t len)
{
	if (code == CAPF_EEXIST)
		snprintf(buf, len, "device %s already exists", name);
	else if (code == CAPF_ENOENT)
		snprintf(buf, len, "no device named %s", name);
	else if (code == CAPF_ESTALE)
		snprintf(buf, len, "device %s kept changing while being written; try again",
			 name);
	else
		snprintf(buf, len, "cannot record device %s: %s", name, capf_strerror(code));
	return buf;
}

/* Answers with one result per put, in the order of the request. */
static void job_respond(struct batch_job *job, int code, const char *text)
{
	Capf__AdminResponse resp = CAPF__ADMIN_RESPONSE__INIT;
	Capf__BatchResult *res = NULL, **ptrs = NULL;
	size_t counts[4] = { 0 };

	res = calloc(job->n, sizeof(*res));
	ptrs = calloc(job->n, sizeof(*ptrs));
	if (res == NULL || ptrs == NULL) {
		admin_respond_error(job->ac, CAPF_ENOMEM, NULL);
		goto out;
	}
	for (size_t i = 0; i < job->n; i++) {
		struct batch_item *it = &job->items[i];

		capf__batch_result__init(&res[i]);
		res[i].name = it->put->device->name;
		res[i].code = (uint32_t)-it->result;
		res[i].text = it->text;
		res[i].action = it->result ? CAPF__BATCH_ACTION__BATCH_FAILED : it->action;
		res[i].secret_set = it->result == 0 && it->secret_set;
		counts[res[i].action]++;
		ptrs[i] = &res[i];
	}
	resp.code = (uint32_t)-code;
	resp.text = (char *)(text ? text : "");
	resp.n_results = job->n;
	resp.results = ptrs;
	if (!job->batch->dry_run)
		log_info("admin: batch of %zu by %s%s: %zu created, %zu updated, %zu unchanged, "
			 "%zu refused",
			 job->n, job->peer, job->batch->atomic ? " (atomic)" : "",
			 counts[CAPF__BATCH_ACTION__BATCH_CREATED],
			 counts[CAPF__BATCH_ACTION__BATCH_UPDATED],
			 counts[CAPF__BATCH_ACTION__BATCH_UNCHANGED],
			 counts[CAPF__BATCH_ACTION__BATCH_FAILED]);
	admin_respond(job->ac, &resp);
out:
	free(res);
	free(ptrs);
}

/* ---- one txn per put -------------------------------------------------------- */

static int item_submit(struct batch_item *it);

static void job_item_done(struct batch_job *job)
{
	if (--job->pending > 0)
		return;
	if (!admin_closing(job->ac))
		job_respond(job, 0, NULL);
	admin_release(job->ac);
	job_free(job);
}

static void on_item_done(void *arg, int result)
{
	struct batch_item *it = arg;
	struct batch_job *job = it->job;

	if (result == CAPF_ESTALE && !admin_closing(job->ac) &&
	    it->attempts < BATCH_CAS_ATTEMPTS) {
		result = item_prepare(it);
		if (result == 0 && it->write && it->result == 0) {
			result = item_submit(it);
			if (result == 0)
				return;
		}
	}
	if (result < 0 && it->result == 0) {
		it->result = result;
		store_text(result, it->put->device->name, it->text, sizeof(it->text));
	}
	job_item_done(job);
}

static int item_submit(struct batch_item *it)
{
	struct batch_job *job = it->job;
	Capf__StoreRecord rec;
	Capf__StoreRecord *recs[1] = { &rec };
	struct store_audit_event ev = { .kind = CAPF__AUDIT_KIND__AUDIT_ADMIN };
	char detail[200];

	it->attempts++;
	record_of(it, &rec);
	snprintf(detail, sizeof(detail),
		 "device %s (batch): op %s, auth %s, key %s, deadline %lld (revision %llu)",
		 it->action == CAPF__BATCH_ACTION__BATCH_CREATED ? "add" : "set",
		 op_name(it->rec->op), auth_name(it->rec->auth), key_type_name(it->rec->key_type),
		 (long long)it->rec->deadline, (unsigned long long)it->rec->revision);
	ev.device = it->rec->name;
	ev.peer = job->peer;
	ev.detail = detail;
	return bridge_submit_audit(&job->srv->bridge, job->srv->store, recs, 1, &ev, on_item_done,
				   it);
}

/* ---- an atomic batch ---------------------------------------------------------- */

/*
 * Records per txn of an atomic batch: bounded so that a txn stays far
 * below the store's largest entry (STORE_ENTRY_MAX, 16 MiB) whatever the
 * records hold. A batch larger than this is checked whole here, then
 * written as consecutive txns that the writer takes in the same group
 * commit as a rule. All or none holds for each txn; a write that fails
 * midway leaves the txns before it applied, and the answer says which
 * devices failed.
 */
#define TXN_RECORDS_MAX 16384u

struct batch_chunk {
	struct batch_job *job;
	size_t from, to; /* items [from, to) */
	unsigned attempts;
};

static int chunk_submit(struct batch_chunk *ch);

static void atomic_finish(struct batch_job *job)
{
	size_t failed = 0;

	if (--job->pending > 0)
		return;
	for (size_t i = 0; i < job->n; i++)
		failed += job->items[i].result != 0;
	if (!admin_closing(job->ac)) {
		if (failed == 0)
			job_respond(job, 0, NULL);
		else if (failed == job->n)
			job_respond(job, job->items[0].result,
				    "the batch could not be written: nothing written");
		else
			job_respond(job, CAPF_EIO,
				    "part of the batch could not be written: see the devices");
	}
	admin_release(job->ac);
	free(job->chunks);
	job_free(job);
}

static void on_chunk_done(void *arg, int result)
{
	struct batch_chunk *ch = arg;
	struct batch_job *job = ch->job;

	if (result == CAPF_ESTALE && !admin_closing(job->ac) &&
	    ch->attempts < BATCH_CAS_ATTEMPTS) {
		bool refused = false;

		for (size_t i = ch->from; i < ch->to && result == CAPF_ESTALE; i++)
			if (item_prepare(&job->items[i]) < 0)
				result = CAPF_ENOMEM;
		for (size_t i = ch->from; i < ch->to; i++)
			refused = refused || job->items[i].result != 0;
		if (result == CAPF_ESTALE && !refused) {
			result = chunk_submit(ch);
			if (result == 0)
				return;
		}
		/* Refused now: the chunk is not written; the refused items carry
		 * their own result and the others fail with the race below. */
	}
	if (result < 0) {
		for (size_t i = ch->from; i < ch->to; i++) {
			struct batch_item *it = &job->items[i];

			if (!it->write || it->result != 0)
				continue;
			it->result = result;
			store_text(result, it->put->device->name, it->text, sizeof(it->text));
		}
	}
	atomic_finish(job);
}

/* One txn of the items of ch that write. Returns 0 (on_chunk_done()
 * follows), 1 (nothing to write) or the submit error. */
static int chunk_submit(struct batch_chunk *ch)
{
	struct batch_job *job = ch->job;
	Capf__StoreRecord *recs = NULL, **ptrs = NULL;
	struct store_audit_event ev = { .kind = CAPF__AUDIT_KIND__AUDIT_ADMIN };
	char detail[200];
	size_t k = 0, created = 0, n = ch->to - ch->from;
	int ret;

	ch->attempts++;
	recs = calloc(n, sizeof(*recs));
	ptrs = calloc(n, sizeof(*ptrs));
	if (recs == NULL || ptrs == NULL) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	for (size_t i = ch->from; i < ch->to; i++) {
		if (!job->items[i].write || job->items[i].result != 0)
			continue;
		record_of(&job->items[i], &recs[k]);
		ptrs[k] = &recs[k];
		created += job->items[i].action == CAPF__BATCH_ACTION__BATCH_CREATED;
		k++;
	}
	if (k == 0) {
		ret = 1;
		goto out;
	}
	snprintf(detail, sizeof(detail), "device batch (atomic, devices %zu..%zu of %zu): %zu added, %zu changed",
		 ch->from + 1, ch->to, job->n, created, k - created);
	ev.peer = job->peer;
	ev.detail = detail;
	ret = bridge_submit_audit(&job->srv->bridge, job->srv->store, ptrs, k, &ev, on_chunk_done,
				  ch);
out:
	/* The store packed the records: the arrays can go. */
	free(recs);
	free(ptrs);
	return ret;
}

/* A chunk that could not be submitted: its writing items fail. */
static void on_chunk_done_failed(struct batch_chunk *ch, int result)
{
	for (size_t i = ch->from; i < ch->to; i++) {
		struct batch_item *it = &ch->job->items[i];

		if (!it->write || it->result != 0)
			continue;
		it->result = result;
		store_text(result, it->put->device->name, it->text, sizeof(it->text));
	}
}

/* Writes every item of an atomic batch that was checked whole. */
static void atomic_submit(struct batch_job *job)
{
	size_t nchunks = (job->n + TXN_RECORDS_MAX - 1) / TXN_RECORDS_MAX;

	job->chunks = calloc(nchunks ? nchunks : 1, sizeof(*job->chunks));
	job->pending = 1;
	admin_hold(job->ac);
	for (size_t c = 0; c < nchunks && job->chunks != NULL; c++) {
		struct batch_chunk *ch = &job->chunks[c];
		int ret;

		ch->job = job;
		ch->from = c * TXN_RECORDS_MAX;
		ch->to = ch->from + TXN_RECORDS_MAX < job->n ? ch->from + TXN_RECORDS_MAX : job->n;
		job->pending++;
		ret = chunk_submit(ch);
		if (ret == 0)
			continue;
		job->pending--;
		if (ret < 0)
			on_chunk_done_failed(ch, ret);
	}
	if (job->chunks == NULL)
		for (size_t i = 0; i < job->n; i++)
			if (job->items[i].write && job->items[i].result == 0) {
				job->items[i].result = CAPF_ENOMEM;
				snprintf(job->items[i].text, sizeof(job->items[i].text),
					 "out of memory");
			}
	atomic_finish(job);
}

void admin_handle_batch(struct admin_client *ac, const Capf__AdminRequest *req)
{
	const Capf__DeviceBatch *in = req->device_batch;
	struct batch_job *job;
	size_t len, refused = 0;
	uint8_t *buf = NULL;
	int ret = CAPF_ENOMEM;

	job = calloc(1, sizeof(*job));
	if (job == NULL)
		goto fail;
	job->ac = ac;
	job->srv = admin_server(ac);
	admin_peer(ac, job->peer, sizeof(job->peer));
	len = capf__device_batch__get_packed_size(in);
	buf = malloc(len ? len : 1);
	if (buf == NULL)
		goto fail;
	capf__device_batch__pack(in, buf);
	job->batch = capf__device_batch__unpack(NULL, len, buf);
	free(buf);
	if (job->batch == NULL)
		goto fail;
	job->n = job->batch->n_puts;
	job->items = calloc(job->n, sizeof(*job->items));
	if (job->items == NULL)
		goto fail;
	for (size_t i = 0; i < job->n; i++) {
		job->items[i].job = job;
		job->items[i].put = job->batch->puts[i];
		ret = item_prepare(&job->items[i]);
		if (ret < 0)
			goto fail;
		refused += job->items[i].result != 0;
	}
	if (job->batch->dry_run) {
		job_respond(job, 0, NULL);
		job_free(job);
		return;
	}
	if (job->batch->atomic) {
		if (refused > 0) {
			job_respond(job, CAPF_EINVAL, "the batch was refused: nothing written");
			job_free(job);
			return;
		}
		atomic_submit(job);
		return;
	}
	/* One txn each: hold until the last completion answers. */
	job->pending = 1;
	admin_hold(ac);
	for (size_t i = 0; i < job->n; i++) {
		struct batch_item *it = &job->items[i];

		if (!it->write || it->result != 0)
			continue;
		job->pending++;
		ret = item_submit(it);
		if (ret < 0) {
			job->pending--;
			it->result = ret;
			store_text(ret, it->put->device->name, it->text, sizeof(it->text));
		}
	}
	job_item_done(job);
	return;
fail:
	admin_respond_error(ac, ret, NULL);
	if (job != NULL)
		job_free(job);
}
