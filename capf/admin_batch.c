/*
 * Device batches on the admin socket: many device puts in one request,
 * for bulk imports and schedules by query.
 *
 * Each put is decided against the record as the store has it now (the
 * admin's fields applied by admin_settings_apply(), as for one device
 * put), and a put that changes nothing writes nothing: the same batch
 * twice changes nothing the second time. An atomic batch is one store txn
 * (all or none, one audit entry), however large: one too large for one
 * request comes in parts, each checked and kept on the connection (stage),
 * the last one writing them all; otherwise each put is its own txn with
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
/* Devices a staged batch may hold on one connection (the refusal's text
 * says it too). */
#define BATCH_STAGE_MAX 2000000u
/* Kept puts that failed, listed in the answer of the last part at most. */
#define STAGED_RESULTS_MAX 1000u
/* Every field: a batch put that names none still compares them all. */
#define FIELDS_ALL 127u

struct batch_job;

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

/* An atomic batch's kept parts (copies of the requests), in order. */
struct batch_stage {
	Capf__DeviceBatch **parts;
	size_t n, cap;
	size_t puts;
};

struct batch_chunk {
	struct batch_job *job;
	unsigned attempts;
};

struct batch_job {
	struct admin_client *ac;
	struct server *srv;
	/* Copies (the request is freed when the handler returns): the kept
	 * parts of a staged batch, then this request's. */
	Capf__DeviceBatch **parts;
	size_t n_parts;
	bool atomic, dry_run;
	struct batch_item *items;
	size_t n, pending;
	size_t own;               /* items[own..n) are this request's puts */
	struct batch_chunk chunk; /* atomic: its txn */
	char peer[80];
};

void admin_stage_free(struct batch_stage *st)
{
	if (st == NULL)
		return;
	for (size_t i = 0; i < st->n; i++)
		capf__device_batch__free_unpacked(st->parts[i], NULL);
	free(st->parts);
	free(st);
}

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
	for (size_t i = 0; i < job->n_parts; i++)
		if (job->parts[i] != NULL)
			capf__device_batch__free_unpacked(job->parts[i], NULL);
	free(job->parts);
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

static void result_of(const struct batch_item *it, Capf__BatchResult *r)
{
	capf__batch_result__init(r);
	r->name = it->put->device->name;
	r->code = (uint32_t)-it->result;
	r->text = (char *)it->text;
	r->action = it->result ? CAPF__BATCH_ACTION__BATCH_FAILED : it->action;
	r->secret_set = it->result == 0 && it->secret_set;
}

/*
 * Answers with one result per put of the request, in its order, and, for
 * the last part of a staged batch, the kept puts that failed (the first
 * STAGED_RESULTS_MAX of them).
 */
static void job_respond(struct batch_job *job, int code, const char *text)
{
	Capf__AdminResponse resp = CAPF__ADMIN_RESPONSE__INIT;
	Capf__BatchResult *res = NULL, **ptrs = NULL, **staged = NULL;
	size_t counts[4] = { 0 }, own = job->n - job->own, n_staged = 0;

	res = calloc(job->n ? job->n : 1, sizeof(*res));
	ptrs = calloc(own ? own : 1, sizeof(*ptrs));
	staged = calloc(job->own ? job->own : 1, sizeof(*staged));
	if (res == NULL || ptrs == NULL || staged == NULL) {
		admin_respond_error(job->ac, CAPF_ENOMEM, NULL);
		goto out;
	}
	for (size_t i = 0; i < job->n; i++) {
		result_of(&job->items[i], &res[i]);
		counts[res[i].action]++;
		if (i >= job->own)
			ptrs[i - job->own] = &res[i];
		else if (res[i].code != 0 && n_staged < STAGED_RESULTS_MAX)
			staged[n_staged++] = &res[i];
	}
	resp.code = (uint32_t)-code;
	resp.text = (char *)(text ? text : "");
	resp.n_results = own;
	resp.results = ptrs;
	resp.n_staged_results = n_staged;
	resp.staged_results = staged;
	if (!job->dry_run)
		log_info("admin: batch of %zu by %s%s: %zu created, %zu updated, %zu unchanged, "
			 "%zu refused",
			 job->n, job->peer, job->atomic ? " (atomic)" : "",
			 counts[CAPF__BATCH_ACTION__BATCH_CREATED],
			 counts[CAPF__BATCH_ACTION__BATCH_UPDATED],
			 counts[CAPF__BATCH_ACTION__BATCH_UNCHANGED],
			 counts[CAPF__BATCH_ACTION__BATCH_FAILED]);
	admin_respond(job->ac, &resp);
out:
	free(res);
	free(ptrs);
	free(staged);
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
 * An atomic batch is one store txn, however many devices it holds: the
 * store writes a txn larger than one entry as several entries of one group
 * commit (all or none).
 */
static int chunk_submit(struct batch_chunk *ch);

static void atomic_finish(struct batch_job *job)
{
	size_t failed = 0;

	for (size_t i = 0; i < job->n; i++)
		failed += job->items[i].result != 0;
	if (!admin_closing(job->ac)) {
		if (failed == 0)
			job_respond(job, 0, NULL);
		else
			job_respond(job, job->items[0].result ? job->items[0].result : CAPF_EIO,
				    "the batch could not be written: nothing written");
	}
	admin_release(job->ac);
	job_free(job);
}

/* The writing items that are still good fail with result. */
static void chunk_fail(struct batch_job *job, int result)
{
	for (size_t i = 0; i < job->n; i++) {
		struct batch_item *it = &job->items[i];

		if (!it->write || it->result != 0)
			continue;
		it->result = result;
		store_text(result, it->put->device->name, it->text, sizeof(it->text));
	}
}

static void on_chunk_done(void *arg, int result)
{
	struct batch_chunk *ch = arg;
	struct batch_job *job = ch->job;

	if (result == CAPF_ESTALE && !admin_closing(job->ac) &&
	    ch->attempts < BATCH_CAS_ATTEMPTS) {
		bool refused = false;

		for (size_t i = 0; i < job->n && result == CAPF_ESTALE; i++)
			if (item_prepare(&job->items[i]) < 0)
				result = CAPF_ENOMEM;
		for (size_t i = 0; i < job->n; i++)
			refused = refused || job->items[i].result != 0;
		if (result == CAPF_ESTALE && !refused) {
			result = chunk_submit(ch);
			if (result == 0)
				return;
			if (result == 1)
				result = 0; /* nothing left to write */
		}
		/* Refused now: nothing is written; the refused items carry
		 * their own result and the others fail with the race below. */
	}
	if (result < 0)
		chunk_fail(job, result);
	atomic_finish(job);
}

/* One txn of the items that write. Returns 0 (on_chunk_done() follows),
 * 1 (nothing to write) or the submit error. */
static int chunk_submit(struct batch_chunk *ch)
{
	struct batch_job *job = ch->job;
	Capf__StoreRecord *recs = NULL, **ptrs = NULL;
	struct store_audit_event ev = { .kind = CAPF__AUDIT_KIND__AUDIT_ADMIN };
	char detail[200];
	size_t k = 0, created = 0;
	int ret;

	ch->attempts++;
	recs = calloc(job->n, sizeof(*recs));
	ptrs = calloc(job->n, sizeof(*ptrs));
	if (recs == NULL || ptrs == NULL) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < job->n; i++) {
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
	snprintf(detail, sizeof(detail),
		 "device batch (atomic, %zu devices in %zu part%s): %zu added, %zu changed", job->n,
		 job->n_parts, job->n_parts == 1 ? "" : "s", created, k - created);
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

/* Writes every item of an atomic batch that was checked whole. */
static void atomic_submit(struct batch_job *job)
{
	int ret;

	admin_hold(job->ac);
	job->chunk.job = job;
	ret = chunk_submit(&job->chunk);
	if (ret == 0)
		return;
	if (ret < 0)
		chunk_fail(job, ret);
	atomic_finish(job);
}

/* ---- the request ------------------------------------------------------------- */

static int name_cmp(const void *a, const void *b)
{
	const struct batch_item *x = *(const struct batch_item *const *)a;
	const struct batch_item *y = *(const struct batch_item *const *)b;
	int c = strcmp(x->put->device->name, y->put->device->name);

	/* Equal names in the order of the batch: the first one stays. */
	return c ? c : (x < y ? -1 : x > y);
}

/* A device named twice in one batch: the later puts are refused. */
static int refuse_twice(struct batch_job *job)
{
	struct batch_item **by_name;

	if (job->n < 2)
		return 0;
	by_name = malloc(job->n * sizeof(*by_name));
	if (by_name == NULL)
		return CAPF_ENOMEM;
	for (size_t i = 0; i < job->n; i++)
		by_name[i] = &job->items[i];
	qsort(by_name, job->n, sizeof(*by_name), name_cmp);
	for (size_t i = 1; i < job->n; i++)
		if (strcmp(by_name[i]->put->device->name, by_name[i - 1]->put->device->name) == 0 &&
		    by_name[i]->result == 0) {
			item_rec_free(by_name[i]);
			item_fail(by_name[i], CAPF_EINVAL, "device %s is named twice in the batch",
				  by_name[i]->put->device->name);
		}
	free(by_name);
	return 0;
}

static Capf__DeviceBatch *batch_copy(const Capf__DeviceBatch *in)
{
	size_t len = capf__device_batch__get_packed_size(in);
	Capf__DeviceBatch *out;
	uint8_t *buf = malloc(len ? len : 1);

	if (buf == NULL)
		return NULL;
	capf__device_batch__pack(in, buf);
	out = capf__device_batch__unpack(NULL, len, buf);
	free(buf);
	return out;
}

/* Keeps part (a checked stage request) on the connection. */
static int stage_keep(struct admin_client *ac, Capf__DeviceBatch *part)
{
	struct batch_stage **slot = admin_stage_slot(ac), *st = *slot;

	if (st == NULL) {
		st = calloc(1, sizeof(*st));
		if (st == NULL)
			return CAPF_ENOMEM;
		*slot = st;
	}
	if (st->n == st->cap) {
		size_t cap = st->cap ? 2 * st->cap : 16;
		Capf__DeviceBatch **p = realloc(st->parts, cap * sizeof(*p));

		if (p == NULL)
			return CAPF_ENOMEM;
		st->parts = p;
		st->cap = cap;
	}
	st->parts[st->n++] = part;
	st->puts += part->n_puts;
	return 0;
}

/*
 * The job of a request: the kept parts of a staged batch (moved from the
 * connection) if this is its last part, then the request's own puts.
 */
static int job_parts(struct batch_job *job, Capf__DeviceBatch *own)
{
	struct batch_stage **slot = admin_stage_slot(job->ac), *st = *slot;
	size_t kept = st != NULL && !own->stage ? st->n : 0, k = 0;

	job->parts = calloc(kept + 1, sizeof(*job->parts));
	if (job->parts == NULL)
		return CAPF_ENOMEM;
	for (size_t i = 0; i < kept; i++) {
		job->parts[i] = st->parts[i];
		job->n += st->parts[i]->n_puts;
	}
	if (kept > 0) {
		st->n = 0;
		admin_stage_free(st);
		*slot = NULL;
	}
	job->own = job->n;
	job->parts[kept] = own;
	job->n_parts = kept + 1;
	job->n += own->n_puts;
	job->items = calloc(job->n ? job->n : 1, sizeof(*job->items));
	if (job->items == NULL)
		return CAPF_ENOMEM;
	for (size_t p = 0; p < job->n_parts; p++)
		for (size_t i = 0; i < job->parts[p]->n_puts; i++, k++) {
			job->items[k].job = job;
			job->items[k].put = job->parts[p]->puts[i];
		}
	return 0;
}

/* What a stage request, or the request after one, may not be. */
static const char *stage_refusal(struct admin_client *ac, const Capf__DeviceBatch *in)
{
	const struct batch_stage *st = *admin_stage_slot(ac);
	size_t kept = st != NULL ? st->puts : 0;

	if (in->stage && (!in->atomic || in->dry_run))
		return "a staged batch is atomic and not a dry run";
	if (!in->stage && kept > 0 && (!in->atomic || in->dry_run))
		return "the last part of a staged batch is atomic and not a dry run: the parts "
		       "kept are dropped";
	if (in->stage && kept + in->n_puts > BATCH_STAGE_MAX)
		return "a staged batch holds at most 2000000 devices: the parts kept are dropped";
	return NULL;
}

void admin_handle_batch(struct admin_client *ac, const Capf__AdminRequest *req)
{
	const Capf__DeviceBatch *in = req->device_batch;
	struct batch_job *job = NULL;
	Capf__DeviceBatch *copy = NULL;
	const char *refusal;
	size_t refused = 0;
	int ret = CAPF_ENOMEM;

	refusal = stage_refusal(ac, in);
	if (refusal != NULL) {
		admin_stage_free(*admin_stage_slot(ac));
		*admin_stage_slot(ac) = NULL;
		admin_respond_error(ac, in->stage && in->atomic && !in->dry_run ? CAPF_ELIMIT
										 : CAPF_EINVAL,
				    refusal);
		return;
	}
	job = calloc(1, sizeof(*job));
	if (job == NULL)
		goto fail;
	job->ac = ac;
	job->srv = admin_server(ac);
	admin_peer(ac, job->peer, sizeof(job->peer));
	copy = batch_copy(in);
	if (copy == NULL)
		goto fail;
	job->atomic = copy->atomic;
	job->dry_run = copy->dry_run || copy->stage;
	ret = job_parts(job, copy);
	copy = NULL; /* the job's now */
	if (ret < 0)
		goto fail;
	for (size_t i = 0; i < job->n; i++) {
		ret = item_prepare(&job->items[i]);
		if (ret < 0)
			goto fail;
	}
	ret = refuse_twice(job);
	if (ret < 0)
		goto fail;
	for (size_t i = 0; i < job->n; i++)
		refused += job->items[i].result != 0;
	if (job->dry_run) {
		if (in->stage) {
			/* Checked: kept for the last part, which decides again. */
			ret = stage_keep(ac, job->parts[0]);
			if (ret < 0)
				goto fail;
			job->parts[0] = NULL;
		}
		job_respond(job, 0, NULL);
		job_free(job);
		return;
	}
	if (job->atomic) {
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
	if (copy != NULL)
		capf__device_batch__free_unpacked(copy, NULL);
	admin_respond_error(ac, ret, NULL);
	if (job != NULL)
		job_free(job);
}
