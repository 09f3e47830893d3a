/*
 * What callers hand the writer: txns (packed at once, so the caller may
 * free its records), audit events and requests (flush, compact).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "store/internal.h"

/* ---- queued items ---------------------------------------------------------- */

void store_audit_ev_free(struct audit_ev *a)
{
	if (!a)
		return;
	free(a->device);
	free(a->peer);
	free(a->detail);
	free(a->entry);
	free(a);
}

static char *dup_cut(const char *s)
{
	size_t n = s ? strnlen(s, STORE_AUDIT_TEXT_MAX) : 0;
	char *d = malloc(n + 1);

	if (d) {
		if (n)
			memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

struct audit_ev *store_audit_ev_new(const struct store_audit_event *ev, int64_t t)
{
	struct audit_ev *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->kind = ev->kind;
	a->time = t;
	a->code = ev->code;
	if (ev->serial && ev->serial_len) {
		a->serial_len = ev->serial_len > sizeof(a->serial) ? sizeof(a->serial)
								    : ev->serial_len;
		memcpy(a->serial, ev->serial, a->serial_len);
	}
	a->device = dup_cut(ev->device);
	a->peer = dup_cut(ev->peer);
	a->detail = dup_cut(ev->detail);
	if (!a->device || !a->peer || !a->detail) {
		store_audit_ev_free(a);
		return NULL;
	}
	return a;
}

void store_item_free(struct item *it)
{
	size_t i;

	if (!it)
		return;
	if (it->recs) {
		for (i = 0; i < it->n_recs; i++)
			free(it->recs[i].e);
		free(it->recs);
	}
	store_audit_ev_free(it->audit);
	for (i = 0; i < it->n_parts; i++)
		free(it->parts[i].p);
	free(it->parts);
	free(it);
}

/*
 * A record the writer can take: a body with its key, and a revision that
 * agrees with its precondition. A compare-and-set writes the revision
 * after the one it expects; a creation writes revision 1. Checking this
 * here, where the caller still is, makes a writer that forgot to bump the
 * revision fail at once instead of leaving two different records under
 * one revision.
 */
static int record_ok(const Capf__StoreRecord *r)
{
	uint64_t rev;

	if (!r)
		return 0;
	switch (r->body_case) {
	case CAPF__STORE_RECORD__BODY_DEVICE:
		if (!r->device || !r->device->name || r->device->name[0] == '\0')
			return 0;
		rev = r->device->revision;
		break;
	case CAPF__STORE_RECORD__BODY_CERT:
		if (!r->cert || r->cert->serial.len == 0 || !r->cert->serial.data)
			return 0;
		rev = r->cert->revision;
		break;
	default:
		return 0;
	}
	if (r->check_revision &&
	    (r->create_only || r->expect_revision == UINT64_MAX || rev != r->expect_revision + 1))
		return 0;
	if (r->create_only && rev != 1)
		return 0;
	return 1;
}

/* Builds the pending records from the txn's own packed bytes, so that the
 * index holds exactly what the segment holds. */
struct build_ctx {
	struct item *it;
	size_t i;
};

static int build_rec(const struct store_rec_view *v, void *arg)
{
	struct build_ctx *bc = arg;
	struct pending_rec *pr = &bc->it->recs[bc->i];

	pr->e = store_entry_new(v);
	if (!pr->e)
		return CAPF_ENOMEM;
	pr->kind = v->kind;
	pr->create_only = v->create_only;
	pr->must_exist = v->must_exist;
	pr->check_revision = v->check_revision;
	pr->expect_revision = v->expect_revision;
	bc->i++;
	return 0;
}

/*
 * Queues it. Txns and audit events count against queue_max: a writer
 * that cannot keep up (a slow or failing disk) pushes back on its callers
 * instead of growing without bound; requests (flush, compact) always pass.
 */
static int enqueue_opts(struct store *st, struct item *it, bool quiet)
{
	bool counted = it->kind == ITEM_TXN || it->kind == ITEM_AUDIT;
	bool wake = false;
	int ret = 0;

	pthread_mutex_lock(&st->q_lock);
	if (st->closing) {
		ret = CAPF_ESHUTDOWN;
	} else if (counted && st->q_len >= st->opt.queue_max) {
		st->queue_full++;
		if (it->kind == ITEM_AUDIT)
			st->audit_refused++;
		ret = it->kind == ITEM_TXN ? CAPF_ERETRY : CAPF_ELIMIT;
	} else {
		st->q_len += counted;
		if (st->q_tail)
			st->q_tail->next = it;
		else
			st->q_head = it;
		st->q_tail = it;
		wake = !quiet;
		st->q_wake = st->q_wake || wake;
	}
	pthread_mutex_unlock(&st->q_lock);
	/* After the unlock: a writer woken while the lock is still held
	 * would only block on it again (two more switches on a busy core). */
	if (wake)
		pthread_cond_signal(&st->q_cond);
	return ret;
}

static int enqueue(struct store *st, struct item *it)
{
	return enqueue_opts(st, it, false);
}

/* The packed size of record r inside a StoreTxn: tag, length, body. */
static size_t rec_cost(const Capf__StoreRecord *r)
{
	size_t len = capf__store_record__get_packed_size(r), cost = 1 + len;

	do {
		cost++;
		len >>= 7;
	} while (len);
	return cost;
}

/* Room a StoreTxn needs besides its records: its time field. */
#define TXN_OVERHEAD 16u

/*
 * Packs recs[from, to) as one StoreTxn, appended to it->parts, and builds
 * its pending records from those bytes, so that the index holds exactly
 * what the segment holds.
 */
static int pack_part(struct item *it, Capf__StoreRecord *const *recs, size_t from, size_t to,
		     struct build_ctx *bc)
{
	Capf__StoreTxn txn = CAPF__STORE_TXN__INIT;
	struct txn_part *part = &it->parts[it->n_parts];
	int ret;

	/* The generated API takes a non-const array; packing only reads it. */
	txn.n_records = to - from;
	txn.records = (Capf__StoreRecord **)(recs + from);
	txn.time = (int64_t)time(NULL);
	part->len = capf__store_txn__get_packed_size(&txn);
	if (part->len == 0 || part->len > STORE_ENTRY_MAX)
		return CAPF_EINVAL;
	part->p = malloc(part->len);
	if (!part->p)
		return CAPF_ENOMEM;
	it->n_parts++;
	capf__store_txn__pack(&txn, part->p);
	ret = store_txn_parse(part->p, part->len, NULL, build_rec, bc);
	/* What protobuf-c packed from valid records always parses; a record
	 * the walker refuses (a NUL inside a name) is invalid. */
	return ret < 0 && ret != CAPF_ENOMEM ? CAPF_EINVAL : ret;
}

static int submit(struct store *st, Capf__StoreRecord *const *recs, size_t n,
		  const struct store_audit_event *ev, bool lazy, store_done_cb cb, void *arg)
{
	struct build_ctx bc = { 0 };
	struct item *it = NULL;
	size_t i, from, room, used, parts;
	int ret = 0;

	if (!st || !recs || n == 0) {
		ret = CAPF_EINVAL;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (!record_ok(recs[i])) {
			ret = CAPF_EINVAL;
			goto out;
		}
	}
	it = calloc(1, sizeof(*it));
	if (!it || !(it->recs = calloc(n, sizeof(*it->recs)))) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	it->kind = ITEM_TXN;
	it->lazy = lazy;
	it->n_recs = n;
	it->cb = cb;
	it->arg = arg;
	if (ev) {
		it->audit = store_audit_ev_new(ev, (int64_t)time(NULL));
		if (!it->audit) {
			ret = CAPF_ENOMEM;
			goto out;
		}
	}

	/* Entries of at most txn_entry_max bytes, records in order; one
	 * record larger than an entry is refused. */
	room = st->opt.txn_entry_max - TXN_OVERHEAD;
	parts = 1;
	used = 0;
	for (i = 0; i < n; i++) {
		size_t c = rec_cost(recs[i]);

		if (c > room) {
			ret = CAPF_EINVAL;
			goto out;
		}
		if (used + c > room) {
			parts++;
			used = 0;
		}
		used += c;
	}
	it->parts = calloc(parts, sizeof(*it->parts));
	if (!it->parts) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	bc.it = it;
	from = 0;
	used = 0;
	for (i = 0; i < n && ret == 0; i++) {
		size_t c = rec_cost(recs[i]);

		if (used + c > room) {
			ret = pack_part(it, recs, from, i, &bc);
			from = i;
			used = 0;
		}
		used += c;
	}
	if (ret == 0)
		ret = pack_part(it, recs, from, n, &bc);
	if (ret < 0)
		goto out;
	ret = enqueue(st, it);
	if (ret == 0)
		it = NULL;
out:
	store_item_free(it);
	return ret;
}

int store_submit_audit(struct store *st, Capf__StoreRecord *const *recs, size_t n,
		       const struct store_audit_event *ev, store_done_cb cb, void *arg)
{
	return submit(st, recs, n, ev, false, cb, arg);
}

int store_submit_lazy(struct store *st, Capf__StoreRecord *const *recs, size_t n,
		      const struct store_audit_event *ev, store_done_cb cb, void *arg)
{
	return submit(st, recs, n, ev, true, cb, arg);
}

int store_submit(struct store *st, Capf__StoreRecord *const *recs, size_t n, store_done_cb cb,
		 void *arg)
{
	return store_submit_audit(st, recs, n, NULL, cb, arg);
}

static void submit_waiter_done(int result, void *arg)
{
	store_waiter_done(arg, result);
}

int store_submit_wait(struct store *st, Capf__StoreRecord *const *recs, size_t n)
{
	struct waiter w;
	int ret;

	store_waiter_init(&w);
	ret = store_submit(st, recs, n, submit_waiter_done, &w);
	if (ret < 0) {
		store_waiter_done(&w, ret);
		(void)store_waiter_wait(&w);
		return ret;
	}
	return store_waiter_wait(&w);
}

/* The source address of a peer "ip:port" or "[ip6]:port": its length. */
static size_t peer_addr_len(const char *peer)
{
	const char *colon = strrchr(peer, ':');
	size_t i;

	if (!colon || colon[1] == '\0' || (peer[0] != '[' && strchr(peer, ':') != colon))
		return strlen(peer);
	for (i = 1; colon[i]; i++)
		if (colon[i] < '0' || colon[i] > '9')
			return strlen(peer);
	return (size_t)(colon - peer);
}

/* Counts an unauthenticated failure for its source; a is taken. */
static int aggregate(struct store *st, struct audit_ev *a)
{
	struct audit_agg *g = NULL;
	char key[STORE_AUDIT_TEXT_MAX + 16];
	size_t klen;
	int ret = 0;

	klen = (size_t)snprintf(key, sizeof(key), "%d/%.*s", (int)a->kind,
				(int)peer_addr_len(a->peer), a->peer);
	if (klen >= sizeof(key))
		klen = sizeof(key) - 1;
	pthread_mutex_lock(&st->q_lock);
	if (st->closing) {
		ret = CAPF_ESHUTDOWN;
		goto out;
	}
	HASH_FIND(hh, st->agg, key, klen, g);
	if (!g && st->agg_n >= STORE_AGG_SOURCES_MAX) {
		klen = (size_t)snprintf(key, sizeof(key), "%d/" STORE_AGG_OTHER, (int)a->kind);
		HASH_FIND(hh, st->agg, key, klen, g);
	}
	if (!g) {
		g = calloc(1, sizeof(*g) + klen + 1);
		if (!g) {
			ret = CAPF_ENOMEM;
			goto out;
		}
		memcpy(g->key, key, klen);
		g->kind = a->kind;
		g->first = a->time;
		HASH_ADD(hh, st->agg, key, klen, g);
		if (!g->hh.tbl) {
			free(g);
			ret = CAPF_ENOMEM;
			goto out;
		}
		if (st->agg_n++ == 0)
			st->agg_since = store_now_mono();
		/* The writer may be asleep with nothing else to do: it must
		 * wake when the interval ends. */
		pthread_cond_signal(&st->q_cond);
	}
	g->count++;
	st->audit_aggregated++;
	store_audit_ev_free(g->last);
	g->last = a;
	a = NULL;
out:
	pthread_mutex_unlock(&st->q_lock);
	store_audit_ev_free(a);
	return ret;
}

int store_agg_take(struct store *st, bool force, struct audit_ev ***out, size_t *n)
{
	struct audit_agg *g, *tmp;
	struct audit_ev **evs;
	char time_text[32], detail[STORE_AUDIT_TEXT_MAX + 1];
	size_t i = 0;
	bool flush = st->agg_flush;

	*out = NULL;
	*n = 0;
	/* A flush asks for what waits now, not for what comes after it. */
	st->agg_flush = false;
	if (st->agg_n == 0)
		return 0;
	if (!force && !flush &&
	    store_now_mono() - st->agg_since < (double)st->opt.audit_aggregate_seconds)
		return 0;
	evs = calloc(st->agg_n, sizeof(*evs));
	if (!evs)
		return CAPF_ENOMEM;
	HASH_ITER(hh, st->agg, g, tmp) {
		struct audit_ev *a = g->last;
		const char *slash = strchr(g->key, '/');

		HASH_DELETE(hh, st->agg, g);
		if (g->count > 1) {
			/* One entry for all of them: the count is exact, the
			 * details are the last one's. */
			char *peer = strdup(slash ? slash + 1 : "");

			store_format_time(g->first, time_text, sizeof(time_text));
			snprintf(detail, sizeof(detail), "%llu failures (%s) from %s since %s; last: %s",
				 (unsigned long long)g->count, store_audit_kind_name(g->kind),
				 slash ? slash + 1 : "", time_text, a->detail);
			free(a->detail);
			a->detail = strdup(detail);
			if (peer) {
				free(a->peer);
				a->peer = peer;
			}
			if (!a->detail)
				a->detail = strdup("");
		}
		evs[i++] = a;
		free(g);
	}
	st->agg_n = 0;
	*out = evs;
	*n = i;
	return 0;
}

void store_agg_free(struct store *st)
{
	struct audit_agg *g, *tmp;

	HASH_ITER(hh, st->agg, g, tmp) {
		HASH_DELETE(hh, st->agg, g);
		store_audit_ev_free(g->last);
		free(g);
	}
	st->agg_n = 0;
}

static int audit_opts(struct store *st, const struct store_audit_event *ev, bool quiet)
{
	struct item *it = NULL;
	int ret;

	if (!st || !ev || ev->kind == CAPF__AUDIT_KIND__AUDIT_UNKNOWN)
		return CAPF_EINVAL;
	if (ev->kind == CAPF__AUDIT_KIND__AUDIT_AUTH_FAIL && ev->peer && ev->peer[0]) {
		struct audit_ev *a = store_audit_ev_new(ev, (int64_t)time(NULL));

		return a ? aggregate(st, a) : CAPF_ENOMEM;
	}
	it = calloc(1, sizeof(*it));
	if (!it)
		return CAPF_ENOMEM;
	it->kind = ITEM_AUDIT;
	it->audit = store_audit_ev_new(ev, (int64_t)time(NULL));
	if (!it->audit) {
		store_item_free(it);
		return CAPF_ENOMEM;
	}
	ret = enqueue_opts(st, it, quiet);
	if (ret < 0)
		store_item_free(it);
	return ret;
}

int store_audit(struct store *st, const struct store_audit_event *ev)
{
	return audit_opts(st, ev, false);
}

int store_audit_quiet(struct store *st, const struct store_audit_event *ev)
{
	return audit_opts(st, ev, true);
}

void store_wake(struct store *st)
{
	bool wake;

	if (!st)
		return;
	pthread_mutex_lock(&st->q_lock);
	wake = st->q_head != NULL;
	st->q_wake = st->q_wake || wake;
	pthread_mutex_unlock(&st->q_lock);
	if (wake)
		pthread_cond_signal(&st->q_cond);
}

/* Queues a request for the writer and waits for its answer. */
static int request_wait(struct store *st, enum item_kind kind)
{
	struct waiter w;
	struct item *it;
	int ret;

	if (!st)
		return CAPF_EINVAL;
	it = calloc(1, sizeof(*it));
	if (!it)
		return CAPF_ENOMEM;
	store_waiter_init(&w);
	it->kind = kind;
	it->w = &w;
	ret = enqueue(st, it);
	if (ret < 0) {
		free(it);
		store_waiter_done(&w, ret);
	}
	return store_waiter_wait(&w);
}

int store_flush(struct store *st)
{
	if (st) {
		pthread_mutex_lock(&st->q_lock);
		st->agg_flush = true;
		pthread_mutex_unlock(&st->q_lock);
	}
	return request_wait(st, ITEM_FLUSH);
}

int store_compact(struct store *st)
{
	return request_wait(st, ITEM_COMPACT);
}

void store_retry_push(struct store *st, struct audit_ev *a)
{
	a->next = NULL;
	if (st->retry_tail)
		st->retry_tail->next = a;
	else
		st->retry_head = a;
	st->retry_tail = a;
	st->retry_n++;
}

