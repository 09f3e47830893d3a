/*
 * Queries on the admin socket: device and certificate lists of any size,
 * one page per request, and the removal of a device.
 *
 * A listing walks a sorted snapshot of the keys (device names,
 * certificate serials) that the client keeps between its pages: the
 * store's index lock is held only while the snapshot is copied, and each
 * page reads its records one by one, so a group commit never waits for a
 * whole listing. A page is cut by count, by size (it must fit a frame)
 * and by the records examined (a sparse filter must not keep the main
 * loop, which also serves the other admin clients, for long).
 */
#include "config.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "capf/admin.h"
#include "capf/capfd.h"
#include "capf/log.h"
#include "store/store.h"

#define PAGE_DEFAULT 1000u
#define PAGE_MAX 10000u
/* Records examined per request, whatever matched: about 20 ms of work. */
#define SCAN_MAX 50000u
/* What a page may weigh before it is cut: half a frame, for the rest. */
#define PAGE_BYTES (FRAME_MAX_LIMIT / 2)

struct cursor_serial {
	uint8_t len;
	uint8_t b[64];
};

struct admin_cursor {
	char **names; /* sorted, one allocation; removed devices are skipped page by page */
	size_t n_names;
	bool have_names;
	struct cursor_serial *serials; /* sorted as big-endian integers */
	size_t n_serials, cap_serials;
	bool have_serials;
};

static void cursor_names_free(struct admin_cursor *cur)
{
	free(cur->names); /* one allocation, names included */
	cur->names = NULL;
	cur->n_names = 0;
	cur->have_names = false;
}

void admin_cursor_free(struct admin_cursor *cur)
{
	if (cur == NULL)
		return;
	cursor_names_free(cur);
	free(cur->serials);
	free(cur);
}

static struct admin_cursor *cursor_get(struct admin_client *ac)
{
	struct admin_cursor **slot = admin_cursor_slot(ac);

	if (*slot == NULL)
		*slot = calloc(1, sizeof(**slot));
	return *slot;
}

/* The names in the store now, sorted: a million devices cost their names,
 * not their records, and the store's lock is held only to copy them (the
 * removed devices among them are skipped page by page). */
static int cursor_take_names(struct admin_cursor *cur, struct store *st)
{
	int ret;

	cursor_names_free(cur);
	ret = store_device_names(st, &cur->names, &cur->n_names);
	if (ret < 0)
		return ret;
	cur->have_names = true;
	return 0;
}

/* The first name after after (all of them for an empty one). */
static size_t names_upper(const struct admin_cursor *cur, const char *after)
{
	size_t lo = 0, hi = cur->n_names;

	if (after == NULL || *after == '\0')
		return 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(cur->names[mid], after) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool in_list(int v, const int *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (list[i] == v)
			return true;
	return false;
}

static bool filter_needs_lsc(const Capf__DeviceFilter *f)
{
	return f != NULL && (f->expires_before != 0 || f->expires_after != 0);
}

/*
 * Whether d (with lsc, the record of its current LSC, or NULL) passes
 * every condition of f (NULL: no condition). A device whose LSC record is
 * missing has no expiry, so an expiry condition leaves it out.
 */
static bool filter_match(const Capf__DeviceFilter *f, const Capf__Device *d,
			 const Capf__Certificate *lsc, int64_t now)
{
	bool has_lsc = d->lsc_serial.len > 0;

	if (f == NULL)
		return true;
	if (f->name && *f->name && strcmp(d->name, f->name) != 0)
		return false;
	if (f->name_prefix && *f->name_prefix &&
	    strncmp(d->name, f->name_prefix, strlen(f->name_prefix)) != 0)
		return false;
	if (f->name_glob && *f->name_glob && fnmatch(f->name_glob, d->name, 0) != 0)
		return false;
	if (f->n_status > 0 && !in_list((int)d->status, (const int *)f->status, f->n_status))
		return false;
	if (f->n_auth > 0 && !in_list((int)d->auth, (const int *)f->auth, f->n_auth))
		return false;
	if (f->n_op > 0 && !in_list((int)d->op, (const int *)f->op, f->n_op))
		return false;
	if (f->no_lsc && has_lsc)
		return false;
	if (f->has_lsc && !has_lsc)
		return false;
	if (f->unacknowledged && d->pending_serial.len == 0 &&
	    d->status != CAPF__OP_STATUS__STATUS_ISSUED)
		return false;
	if (f->failed && d->status != CAPF__OP_STATUS__STATUS_FAILED && d->last_error == 0 &&
	    !(d->op != CAPF__OPERATION__OP_NONE && d->deadline != 0 && d->deadline < now))
		return false;
	if (filter_needs_lsc(f)) {
		if (lsc == NULL)
			return false;
		if (f->expires_before != 0 && lsc->not_after >= f->expires_before)
			return false;
		if (f->expires_after != 0 && lsc->not_after < f->expires_after)
			return false;
	}
	return true;
}

struct page {
	Capf__Device **devs;
	Capf__Certificate **certs;
	size_t n_devs, n_certs, cap;
	size_t bytes;
};

/* Room for one more device and certificate. */
static int page_grow(struct page *p)
{
	Capf__Device **d;
	Capf__Certificate **c;
	size_t want = p->cap ? p->cap * 2 : 64;

	if (p->n_devs < p->cap && p->n_certs < p->cap)
		return 0;
	d = realloc(p->devs, want * sizeof(*d));
	if (d == NULL)
		return CAPF_ENOMEM;
	p->devs = d;
	c = realloc(p->certs, want * sizeof(*c));
	if (c == NULL)
		return CAPF_ENOMEM;
	p->certs = c;
	p->cap = want;
	return 0;
}

static void page_free(struct page *p)
{
	for (size_t i = 0; i < p->n_devs; i++)
		capf__device__free_unpacked(p->devs[i], NULL);
	for (size_t i = 0; i < p->n_certs; i++)
		capf__certificate__free_unpacked(p->certs[i], NULL);
	free(p->devs);
	free(p->certs);
}

static void handle_device_list(struct admin_client *ac, const Capf__AdminRequest *req)
{
	const Capf__DeviceList *q = req->device_list;
	const Capf__DeviceFilter *f = q->filter;
	struct store *st = admin_server(ac)->store;
	Capf__AdminResponse resp = CAPF__ADMIN_RESPONSE__INIT;
	struct admin_cursor *cur = cursor_get(ac);
	struct page pg = { 0 };
	const char *prefix = NULL;
	size_t limit = q->limit == 0 ? PAGE_DEFAULT : q->limit > PAGE_MAX ? PAGE_MAX : q->limit;
	size_t i, scanned = 0, last = SIZE_MAX;
	int64_t now = (int64_t)time(NULL);
	int ret;

	if (cur == NULL) {
		admin_respond_error(ac, CAPF_ENOMEM, NULL);
		return;
	}
	/* A listing that starts takes a new snapshot; its later pages (and a
	 * client that reconnected, which has none) go on from the name. */
	if (!cur->have_names || q->after == NULL || *q->after == '\0') {
		ret = cursor_take_names(cur, st);
		if (ret < 0) {
			admin_respond_error(ac, ret, NULL);
			return;
		}
	}
	if (f != NULL && f->name != NULL && *f->name != '\0')
		prefix = f->name;
	else if (f != NULL && f->name_prefix != NULL && *f->name_prefix != '\0')
		prefix = f->name_prefix;
	i = names_upper(cur, q->after);
	/* A name or a prefix is a range of the sorted names: start there. */
	if (prefix != NULL && (q->after == NULL || strcmp(q->after, prefix) < 0)) {
		size_t lo = 0, hi = cur->n_names;

		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (strcmp(cur->names[mid], prefix) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		i = lo;
	}
	for (; i < cur->n_names; i++) {
		Capf__Device *d = NULL;
		Capf__Certificate *c = NULL;

		if (pg.n_devs >= limit || scanned >= SCAN_MAX || pg.bytes >= PAGE_BYTES)
			break;
		if (prefix != NULL && strncmp(cur->names[i], prefix, strlen(prefix)) != 0) {
			i = cur->n_names; /* past the range: the listing is complete */
			break;
		}
		scanned++;
		last = i;
		ret = store_device_get(st, cur->names[i], &d);
		if (ret == CAPF_ENOENT)
			continue;
		if (ret < 0)
			goto fail;
		if (d->deleted) {
			capf__device__free_unpacked(d, NULL);
			continue;
		}
		if (d->lsc_serial.len > 0)
			store_cert_get(st, d->lsc_serial.data, d->lsc_serial.len, &c);
		if (!filter_match(f, d, c, now)) {
			capf__device__free_unpacked(d, NULL);
			if (c != NULL)
				capf__certificate__free_unpacked(c, NULL);
			continue;
		}
		ret = page_grow(&pg);
		if (ret < 0) {
			capf__device__free_unpacked(d, NULL);
			if (c != NULL)
				capf__certificate__free_unpacked(c, NULL);
			goto fail;
		}
		admin_redact(d, false);
		pg.bytes += capf__device__get_packed_size(d) + 8;
		pg.devs[pg.n_devs++] = d;
		if (c != NULL) {
			pg.bytes += capf__certificate__get_packed_size(c) + 8;
			pg.certs[pg.n_certs++] = c;
		}
	}
	resp.n_devices = pg.n_devs;
	resp.devices = pg.devs;
	resp.n_certificates = pg.n_certs;
	resp.certificates = pg.certs;
	resp.more = i < cur->n_names;
	resp.next = (char *)(last != SIZE_MAX ? cur->names[last] : q->after ? q->after : "");
	resp.listed = cur->n_names;
	resp.walked = i < cur->n_names ? i : cur->n_names;
	admin_respond(ac, &resp);
	page_free(&pg);
	return;
fail:
	admin_respond_error(ac, ret, NULL);
	page_free(&pg);
}

/* ---- certificates ---------------------------------------------------------- */

static int serial_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	if (alen != blen)
		return alen < blen ? -1 : 1;
	return memcmp(a, b, alen);
}

static int cursor_serial_cmp(const void *x, const void *y)
{
	const struct cursor_serial *a = x, *b = y;

	return serial_cmp(a->b, a->len, b->b, b->len);
}

static int collect_serial(const Capf__Certificate *c, void *arg)
{
	struct admin_cursor *cur = arg;

	if (c->serial.len == 0 || c->serial.len > sizeof(cur->serials[0].b))
		return 0;
	if (cur->n_serials == cur->cap_serials) {
		size_t cap = cur->cap_serials ? cur->cap_serials * 2 : 256;
		struct cursor_serial *s = realloc(cur->serials, cap * sizeof(*s));

		if (s == NULL)
			return CAPF_ENOMEM;
		cur->serials = s;
		cur->cap_serials = cap;
	}
	cur->serials[cur->n_serials].len = (uint8_t)c->serial.len;
	memcpy(cur->serials[cur->n_serials].b, c->serial.data, c->serial.len);
	cur->n_serials++;
	return 0;
}

static bool cert_match(const Capf__CertList *q, const Capf__Certificate *c)
{
	if (q->device && *q->device && strcmp(c->device, q->device) != 0)
		return false;
	if (q->n_state > 0 && !in_list((int)c->state, (const int *)q->state, q->n_state))
		return false;
	if (q->expires_before != 0 && c->not_after >= q->expires_before)
		return false;
	if (q->expires_after != 0 && c->not_after < q->expires_after)
		return false;
	return true;
}

/* Keeps c (its DER left out: cert show gives it) if it matches. */
static int cert_page_add(struct page *pg, const Capf__CertList *q, Capf__Certificate *c)
{
	if (!cert_match(q, c)) {
		capf__certificate__free_unpacked(c, NULL);
		return 0;
	}
	if (page_grow(pg) < 0) {
		capf__certificate__free_unpacked(c, NULL);
		return CAPF_ENOMEM;
	}
	free(c->der.data);
	c->der.data = NULL;
	c->der.len = 0;
	pg->bytes += capf__certificate__get_packed_size(c) + 8;
	pg->certs[pg->n_certs++] = c;
	return 0;
}

/* One device's certificates come from the store's per-device index, all
 * in one answer (a device has few); the others page by serial. */
static void handle_cert_list(struct admin_client *ac, const Capf__AdminRequest *req)
{
	const Capf__CertList *q = req->cert_list;
	struct store *st = admin_server(ac)->store;
	Capf__AdminResponse resp = CAPF__ADMIN_RESPONSE__INIT;
	struct admin_cursor *cur = cursor_get(ac);
	struct page pg = { 0 };
	size_t limit = q->limit == 0 ? PAGE_DEFAULT : q->limit > PAGE_MAX ? PAGE_MAX : q->limit;
	size_t i = 0, scanned = 0, last = SIZE_MAX;
	int ret = 0;

	if (cur == NULL) {
		admin_respond_error(ac, CAPF_ENOMEM, NULL);
		return;
	}
	if (q->device && *q->device) {
		Capf__Certificate **list = NULL;
		size_t n = 0;

		ret = store_cert_list_device(st, q->device, &list, &n);
		if (ret < 0)
			goto fail;
		for (i = 0; i < n && ret == 0; i++) {
			ret = cert_page_add(&pg, q, list[i]);
			list[i] = NULL;
		}
		store_cert_list_free(list, n);
		if (ret < 0)
			goto fail;
		goto answer;
	}
	if (!cur->have_serials || q->after.len == 0) {
		cur->n_serials = 0;
		ret = store_cert_foreach(st, collect_serial, cur);
		if (ret < 0)
			goto fail;
		qsort(cur->serials, cur->n_serials, sizeof(*cur->serials), cursor_serial_cmp);
		cur->have_serials = true;
	}
	if (q->after.len > 0) {
		size_t lo = 0, hi = cur->n_serials;

		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (serial_cmp(cur->serials[mid].b, cur->serials[mid].len, q->after.data,
				       q->after.len) <= 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		i = lo;
	}
	for (; i < cur->n_serials; i++) {
		Capf__Certificate *c = NULL;

		if (pg.n_certs >= limit || scanned >= SCAN_MAX || pg.bytes >= PAGE_BYTES)
			break;
		scanned++;
		last = i;
		if (store_cert_get(st, cur->serials[i].b, cur->serials[i].len, &c) < 0)
			continue;
		ret = cert_page_add(&pg, q, c);
		if (ret < 0)
			goto fail;
	}
	resp.more = i < cur->n_serials;
	if (last != SIZE_MAX) {
		resp.next_serial.data = cur->serials[last].b;
		resp.next_serial.len = cur->serials[last].len;
	} else {
		resp.next_serial = q->after;
	}
answer:
	resp.n_certificates = pg.n_certs;
	resp.certificates = pg.certs;
	admin_respond(ac, &resp);
	page_free(&pg);
	return;
fail:
	admin_respond_error(ac, ret, NULL);
	page_free(&pg);
}

/* ---- device del ------------------------------------------------------------ */

/* Attempts of a removal that keeps meeting a newer record, as for puts. */
#define DELETE_CAS_ATTEMPTS 8

struct delete_job {
	struct admin_client *ac;
	struct server *srv;
	Capf__Device *tomb;
	unsigned attempts;
	char peer[80];
};

static void on_delete_done(void *arg, int result);

/*
 * The tombstone of the device as the store has it now: the name, the
 * creation time and the revision kept, everything a phone could use
 * cleared (no operation, no string, no current or pending certificate),
 * and a new operation generation, so that a session running for it
 * completes nothing. Returns 0 (on_delete_done() follows) or an error.
 */
static int delete_submit(struct delete_job *job, const char *name)
{
	Capf__StoreRecord rec = CAPF__STORE_RECORD__INIT;
	Capf__StoreRecord *recs[1] = { &rec };
	struct store_audit_event ev = { .kind = CAPF__AUDIT_KIND__AUDIT_ADMIN };
	Capf__Device *d = NULL, *t;
	char detail[160];
	int ret;

	job->attempts++;
	ret = store_device_get(job->srv->store, name, &d);
	if (ret < 0)
		return ret;
	if (d->deleted) {
		capf__device__free_unpacked(d, NULL);
		return CAPF_ENOENT;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		capf__device__free_unpacked(d, NULL);
		return CAPF_ENOMEM;
	}
	capf__device__init(t);
	t->name = strdup(d->name);
	t->created = d->created;
	t->updated = time(NULL);
	t->revision = d->revision + 1;
	t->op_generation = d->op_generation + 1;
	t->deleted = true;
	rec.check_revision = true;
	rec.expect_revision = d->revision;
	capf__device__free_unpacked(d, NULL);
	if (t->name == NULL) {
		free(t);
		return CAPF_ENOMEM;
	}
	if (job->tomb != NULL) {
		free(job->tomb->name);
		free(job->tomb);
	}
	job->tomb = t;
	rec.body_case = CAPF__STORE_RECORD__BODY_DEVICE;
	rec.device = t;
	snprintf(detail, sizeof(detail), "device del (revision %llu)",
		 (unsigned long long)t->revision);
	ev.device = t->name;
	ev.peer = job->peer;
	ev.detail = detail;
	return bridge_submit_audit(&job->srv->bridge, job->srv->store, recs, 1, &ev,
				   on_delete_done, job);
}

static void delete_job_free(struct delete_job *job)
{
	if (job->tomb != NULL) {
		free(job->tomb->name);
		free(job->tomb);
	}
	free(job);
}

static void on_delete_done(void *arg, int result)
{
	struct delete_job *job = arg;
	char text[160];

	if (result == CAPF_ESTALE && !admin_closing(job->ac) &&
	    job->attempts < DELETE_CAS_ATTEMPTS) {
		result = delete_submit(job, job->tomb->name);
		if (result == 0)
			return;
	}
	if (result == 0)
		log_info("admin: device %s removed by %s", job->tomb->name, job->peer);
	if (!admin_closing(job->ac)) {
		if (result == 0) {
			Capf__AdminResponse resp = CAPF__ADMIN_RESPONSE__INIT;
			admin_respond(job->ac, &resp);
		} else {
			if (result == CAPF_ENOENT)
				snprintf(text, sizeof(text), "no device named %s",
					 job->tomb->name);
			else
				snprintf(text, sizeof(text), "cannot remove device %s: %s",
					 job->tomb->name, capf_strerror(result));
			admin_respond_error(job->ac, result, text);
		}
	}
	admin_release(job->ac);
	delete_job_free(job);
}

static void handle_device_delete(struct admin_client *ac, const Capf__AdminRequest *req)
{
	struct delete_job *job = calloc(1, sizeof(*job));
	char text[160];
	int ret;

	if (job == NULL) {
		admin_respond_error(ac, CAPF_ENOMEM, NULL);
		return;
	}
	job->ac = ac;
	job->srv = admin_server(ac);
	admin_peer(ac, job->peer, sizeof(job->peer));
	ret = delete_submit(job, req->device_delete->name);
	if (ret < 0) {
		if (ret == CAPF_ENOENT)
			snprintf(text, sizeof(text), "no device named %s",
				 req->device_delete->name);
		else
			snprintf(text, sizeof(text), "cannot remove device %s: %s",
				 req->device_delete->name, capf_strerror(ret));
		admin_respond_error(ac, ret, text);
		delete_job_free(job);
		return;
	}
	admin_hold(ac);
}

const struct admin_handler admin_query_handlers[] = {
	{ CAPF__ADMIN_REQUEST__BODY_DEVICE_LIST, "device-list", handle_device_list },
	{ CAPF__ADMIN_REQUEST__BODY_CERT_LIST, "cert-list", handle_cert_list },
	{ CAPF__ADMIN_REQUEST__BODY_DEVICE_DELETE, "device-delete", handle_device_delete },
	{ CAPF__ADMIN_REQUEST__BODY_DEVICE_BATCH, "device-batch", admin_handle_batch },
	{ 0, NULL, NULL },
};
