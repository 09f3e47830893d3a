/*
 * The in-memory index (device name -> record, certificate serial ->
 * record, device name -> its certificates) and the reads served from it.
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

/* ---- index ------------------------------------------------------------- */

struct idx_entry *store_entry_new(const struct store_rec_view *v)
{
	struct idx_entry *e;

	if (v->val_len > UINT32_MAX)
		return NULL;
	e = malloc(sizeof(*e) + v->val_len);
	if (!e)
		return NULL;
	memset(&e->hh, 0, sizeof(e->hh));
	atomic_init(&e->refs, 1);
	e->dprev = e->dnext = NULL;
	e->revision = v->revision;
	e->val_len = (uint32_t)v->val_len;
	e->key_off = (uint32_t)(v->key - v->val);
	e->key_len = (uint32_t)v->key_len;
	e->dev_off = v->device_len ? (uint32_t)(v->device - v->val) : 0;
	e->dev_len = (uint32_t)v->device_len;
	memcpy(e->val, v->val, v->val_len);
	return e;
}

void store_entry_unref(struct idx_entry *e)
{
	if (e && atomic_fetch_sub(&e->refs, 1) == 1)
		free(e);
}

struct idx_entry **store_index_table(struct store *st, enum store_rec_kind kind)
{
	return kind == STORE_REC_DEVICE ? &st->devices : &st->certs;
}

struct idx_entry *store_index_find(struct idx_entry *table, const void *key, size_t key_len)
{
	struct idx_entry *e = NULL;

	HASH_FIND(hh, table, key, key_len, e);
	return e;
}

struct dev_certs *store_bucket_find(struct store *st, const void *name, size_t len)
{
	struct dev_certs *b = NULL;

	HASH_FIND(hh, st->dev_certs, name, len, b);
	return b;
}

/* The bucket of e's device, made (empty) if there is none yet; *made says
 * so. NULL: out of memory. */
static struct dev_certs *bucket_get(struct store *st, const struct idx_entry *e, bool *made)
{
	struct dev_certs *b = store_bucket_find(st, e->val + e->dev_off, e->dev_len);

	*made = false;
	if (b)
		return b;
	b = malloc(sizeof(*b) + e->dev_len);
	if (!b)
		return NULL;
	memset(b, 0, sizeof(*b));
	b->name_len = e->dev_len;
	memcpy(b->name, e->val + e->dev_off, e->dev_len);
	HASH_ADD_KEYPTR(hh, st->dev_certs, b->name, b->name_len, b);
	if (!b->hh.tbl) {
		free(b);
		return NULL;
	}
	*made = true;
	return b;
}

static void bucket_drop_if_empty(struct store *st, struct dev_certs *b)
{
	if (b && !b->head) {
		HASH_DELETE(hh, st->dev_certs, b);
		free(b);
	}
}

/* Takes a certificate entry that leaves the table out of its device's list. */
static void dev_unlink(struct store *st, struct idx_entry *e)
{
	struct dev_certs *b;

	if (e->dev_len == 0)
		return;
	b = store_bucket_find(st, e->val + e->dev_off, e->dev_len);
	if (!b)
		return;
	DL_DELETE2(b->head, e, dprev, dnext);
	e->dprev = e->dnext = NULL;
	b->n--;
	bucket_drop_if_empty(st, b);
}

/*
 * Puts e in the table of kind, replacing (and releasing) an entry of the
 * same key, and keeps the per-device certificate lists in step. Returns 0
 * (e now belongs to the table) or CAPF_ENOMEM (nothing changed; e still
 * belongs to the caller). Everything that can fail comes before the first
 * change that could not be undone.
 */
int store_index_put(struct store *st, enum store_rec_kind kind, struct idx_entry *e)
{
	struct idx_entry **table = store_index_table(st, kind);
	struct idx_entry *old = store_index_find(*table, store_entry_key(e), e->key_len);
	struct dev_certs *b = NULL;
	bool made = false;

	if (kind == STORE_REC_CERT && e->dev_len > 0) {
		b = bucket_get(st, e, &made);
		if (!b)
			return CAPF_ENOMEM;
	}
	if (old)
		HASH_DELETE(hh, *table, old);
	HASH_ADD_KEYPTR(hh, *table, store_entry_key(e), e->key_len, e);
	if (!e->hh.tbl) {
		if (old)
			HASH_ADD_KEYPTR(hh, *table, store_entry_key(old), old->key_len, old);
		if (made)
			bucket_drop_if_empty(st, b);
		return CAPF_ENOMEM;
	}
	if (b) {
		/* Linked before the old one leaves, so a bucket they share
		 * never empties on the way. */
		DL_APPEND2(b->head, e, dprev, dnext);
		b->n++;
	}
	if (old && kind == STORE_REC_CERT)
		dev_unlink(st, old);
	store_entry_unref(old);
	return 0;
}

void store_index_clear(struct idx_entry **table)
{
	struct idx_entry *e, *tmp;

	HASH_ITER(hh, *table, e, tmp) {
		HASH_DELETE(hh, *table, e);
		store_entry_unref(e);
	}
}

void store_dev_certs_clear(struct store *st)
{
	struct dev_certs *b, *tmp;

	HASH_ITER(hh, st->dev_certs, b, tmp) {
		HASH_DELETE(hh, st->dev_certs, b);
		free(b);
	}
}

/* ---- reads ---------------------------------------------------------------- */

int store_device_get(struct store *st, const char *name, Capf__Device **out)
{
	struct idx_entry *e;
	int ret = 0;

	if (!out)
		return CAPF_EINVAL;
	*out = NULL;
	if (!st || !name)
		return CAPF_EINVAL;
	pthread_rwlock_rdlock(&st->idx_lock);
	e = store_index_find(st->devices, name, strlen(name));
	if (!e)
		ret = CAPF_ENOENT;
	else if (!(*out = capf__device__unpack(NULL, e->val_len, e->val)))
		ret = CAPF_ENOMEM;
	pthread_rwlock_unlock(&st->idx_lock);
	return ret;
}

int store_cert_get(struct store *st, const uint8_t *serial, size_t serial_len,
		   Capf__Certificate **out)
{
	struct idx_entry *e;
	int ret = 0;

	if (!out)
		return CAPF_EINVAL;
	*out = NULL;
	if (!st || !serial || serial_len == 0)
		return CAPF_EINVAL;
	pthread_rwlock_rdlock(&st->idx_lock);
	e = store_index_find(st->certs, serial, serial_len);
	if (!e)
		ret = CAPF_ENOENT;
	else if (!(*out = capf__certificate__unpack(NULL, e->val_len, e->val)))
		ret = CAPF_ENOMEM;
	pthread_rwlock_unlock(&st->idx_lock);
	return ret;
}

int store_cert_foreach(struct store *st, int (*cb)(const Capf__Certificate *cert, void *arg),
		       void *arg)
{
	Capf__Certificate **list = NULL;
	struct idx_entry *e, *tmp;
	size_t count, i = 0;
	int ret = 0;

	if (!st || !cb)
		return CAPF_EINVAL;
	pthread_rwlock_rdlock(&st->idx_lock);
	count = HASH_COUNT(st->certs);
	if (count > 0 && !(list = calloc(count, sizeof(*list))))
		ret = CAPF_ENOMEM;
	if (ret == 0) {
		HASH_ITER(hh, st->certs, e, tmp) {
			list[i] = capf__certificate__unpack(NULL, e->val_len, e->val);
			if (!list[i]) {
				ret = CAPF_ENOMEM;
				break;
			}
			i++;
		}
	}
	pthread_rwlock_unlock(&st->idx_lock);
	for (size_t j = 0; j < i; j++) {
		if (ret == 0)
			ret = cb(list[j], arg);
		capf__certificate__free_unpacked(list[j], NULL);
	}
	free(list);
	return ret;
}

/* Oldest first; serials (big-endian integers) by length, then bytes. */
static int cert_issued_cmp(const void *a, const void *b)
{
	const Capf__Certificate *ca = *(const Capf__Certificate *const *)a;
	const Capf__Certificate *cb = *(const Capf__Certificate *const *)b;

	if (ca->issued_at != cb->issued_at)
		return ca->issued_at < cb->issued_at ? -1 : 1;
	if (ca->serial.len != cb->serial.len)
		return ca->serial.len < cb->serial.len ? -1 : 1;
	return memcmp(ca->serial.data, cb->serial.data, ca->serial.len);
}

void store_cert_list_free(Capf__Certificate **list, size_t n)
{
	size_t i;

	if (!list)
		return;
	for (i = 0; i < n; i++)
		if (list[i])
			capf__certificate__free_unpacked(list[i], NULL);
	free(list);
}

int store_cert_list_device(struct store *st, const char *device, Capf__Certificate ***out,
			   size_t *n)
{
	Capf__Certificate **list = NULL;
	struct dev_certs *b;
	struct idx_entry *e;
	size_t count = 0, i = 0;
	bool locked = false;
	int ret = 0;

	if (out)
		*out = NULL;
	if (n)
		*n = 0;
	if (!st || !device || !out || !n) {
		ret = CAPF_EINVAL;
		goto out;
	}
	pthread_rwlock_rdlock(&st->idx_lock);
	locked = true;
	b = store_bucket_find(st, device, strlen(device));
	if (!b || b->n == 0)
		goto out;
	count = b->n;
	list = calloc(count, sizeof(*list));
	if (!list) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	DL_FOREACH2(b->head, e, dnext) {
		if (i == count)
			break;
		list[i] = capf__certificate__unpack(NULL, e->val_len, e->val);
		if (!list[i]) {
			ret = CAPF_ENOMEM;
			goto out;
		}
		i++;
	}
	pthread_rwlock_unlock(&st->idx_lock);
	locked = false;
	qsort(list, i, sizeof(*list), cert_issued_cmp);
	*out = list;
	*n = i;
	list = NULL;
out:
	if (locked)
		pthread_rwlock_unlock(&st->idx_lock);
	store_cert_list_free(list, count);
	return ret;
}

static int device_cmp(const void *a, const void *b)
{
	const Capf__Device *da = *(const Capf__Device *const *)a;
	const Capf__Device *db = *(const Capf__Device *const *)b;

	return strcmp(da->name, db->name);
}

void store_device_list_free(Capf__Device **list, size_t n)
{
	size_t i;

	if (!list)
		return;
	for (i = 0; i < n; i++)
		if (list[i])
			capf__device__free_unpacked(list[i], NULL);
	free(list);
}

int store_device_list(struct store *st, Capf__Device ***out, size_t *n)
{
	Capf__Device **list = NULL;
	struct idx_entry *e, *tmp;
	size_t count = 0, i = 0;
	bool locked = false;
	int ret = 0;

	if (out)
		*out = NULL;
	if (n)
		*n = 0;
	if (!st || !out || !n) {
		ret = CAPF_EINVAL;
		goto out;
	}
	pthread_rwlock_rdlock(&st->idx_lock);
	locked = true;
	count = HASH_COUNT(st->devices);
	if (count == 0)
		goto out;
	list = calloc(count, sizeof(*list));
	if (!list) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	HASH_ITER(hh, st->devices, e, tmp) {
		list[i] = capf__device__unpack(NULL, e->val_len, e->val);
		if (!list[i]) {
			ret = CAPF_ENOMEM;
			goto out;
		}
		i++;
	}
	pthread_rwlock_unlock(&st->idx_lock);
	locked = false;
	/* Sorting the copies keeps the lock short. */
	qsort(list, count, sizeof(*list), device_cmp);
	*out = list;
	*n = count;
	list = NULL;
out:
	if (locked)
		pthread_rwlock_unlock(&st->idx_lock);
	store_device_list_free(list, count);
	return ret;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int store_device_names(struct store *st, char ***out, size_t *n)
{
	struct idx_entry *e, *tmp;
	char **names = NULL;
	size_t count, i = 0;

	if (!st || !out || !n)
		return CAPF_EINVAL;
	*out = NULL;
	*n = 0;
	/* Only the names under the lock (a group commit waits for it), in
	 * one allocation; sorted after. */
	pthread_rwlock_rdlock(&st->idx_lock);
	count = HASH_COUNT(st->devices);
	if (count > 0) {
		size_t bytes = 0;

		HASH_ITER(hh, st->devices, e, tmp)
			bytes += e->key_len + 1;
		names = malloc(count * sizeof(*names) + bytes);
		if (names != NULL) {
			char *p = (char *)(names + count);

			HASH_ITER(hh, st->devices, e, tmp) {
				memcpy(p, e->val + e->key_off, e->key_len);
				p[e->key_len] = '\0';
				names[i++] = p;
				p += e->key_len + 1;
			}
		}
	}
	pthread_rwlock_unlock(&st->idx_lock);
	if (count > 0 && names == NULL)
		return CAPF_ENOMEM;
	if (count > 0)
		qsort(names, count, sizeof(*names), name_cmp);
	*out = names;
	*n = count;
	return 0;
}

void store_get_stats(struct store *st, struct store_stats *out)
{
	if (!out)
		return;
	memset(out, 0, sizeof(*out));
	if (!st)
		return;
	pthread_rwlock_rdlock(&st->idx_lock);
	*out = st->stats;
	out->devices = HASH_COUNT(st->devices);
	out->certificates = HASH_COUNT(st->certs);
	pthread_rwlock_unlock(&st->idx_lock);
	out->fault = atomic_load(&st->fault);
	pthread_mutex_lock(&st->q_lock);
	out->queue_full = st->queue_full;
	out->audit_aggregated = st->audit_aggregated;
	pthread_mutex_unlock(&st->q_lock);
}

const char *store_dir(const struct store *st)
{
	return st ? st->dir : NULL;
}

void store_set_fault(struct store *st, int err)
{
	if (!st)
		return;
	atomic_store(&st->fault, err > 0 ? -err : err);
	/* Cleared: what waits for the disk is tried now, not in seconds. */
	pthread_mutex_lock(&st->q_lock);
	st->kick = true;
	pthread_cond_signal(&st->q_cond);
	pthread_mutex_unlock(&st->q_lock);
}
