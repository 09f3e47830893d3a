/*
 * Which device each public key is certified for: the SHA-256 of every
 * LSC's SubjectPublicKeyInfo, built from the store at start and kept up
 * to date as sessions record new certificates, so that a phone cannot get
 * a certificate for a key that another device's LSC already holds (a key
 * copied from another phone, or shared between two). Any thread.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "capf/capfd.h"
#include "store/store.h"

/* An allocation failure inside uthash must fail the call, not end the
 * process (uthash's default): the entry is then left out. */
#define uthash_nonfatal_oom(obj) ((void)(obj))
#include <uthash.h>

struct key_entry {
	UT_hash_handle hh;
	uint8_t sha[32];
	char device[DEVICE_NAME_MAX + 1];
};

struct keyindex {
	pthread_mutex_t lock;
	struct key_entry *map;
};

int keyindex_add(struct keyindex *ki, const uint8_t sha[32], const char *device)
{
	struct key_entry *e = NULL;
	int ret = 0;

	if (ki == NULL || device == NULL)
		return CAPF_EINVAL;
	pthread_mutex_lock(&ki->lock);
	HASH_FIND(hh, ki->map, sha, 32, e);
	if (e == NULL) {
		e = calloc(1, sizeof(*e));
		if (e == NULL) {
			ret = CAPF_ENOMEM;
			goto out;
		}
		memcpy(e->sha, sha, 32);
		snprintf(e->device, sizeof(e->device), "%s", device);
		HASH_ADD(hh, ki->map, sha, 32, e);
		if (e->hh.tbl == NULL) {
			free(e);
			ret = CAPF_ENOMEM;
		}
	}
	/* The first device certified for a key keeps it. */
out:
	pthread_mutex_unlock(&ki->lock);
	return ret;
}

bool keyindex_other(struct keyindex *ki, const uint8_t sha[32], const char *device, char *other,
		    size_t len)
{
	struct key_entry *e = NULL;
	bool found = false;

	if (ki == NULL)
		return false;
	pthread_mutex_lock(&ki->lock);
	HASH_FIND(hh, ki->map, sha, 32, e);
	if (e != NULL && strcmp(e->device, device) != 0) {
		snprintf(other, len, "%s", e->device);
		found = true;
	}
	pthread_mutex_unlock(&ki->lock);
	return found;
}

static int add_cert(const Capf__Certificate *c, void *arg)
{
	if (c->spki_sha256.len == 32 && c->device != NULL)
		return keyindex_add(arg, c->spki_sha256.data, c->device) == CAPF_ENOMEM ? CAPF_ENOMEM
											 : 0;
	return 0;
}

int keyindex_new(struct keyindex **out, struct store *st)
{
	struct keyindex *ki = calloc(1, sizeof(*ki));
	int ret;

	*out = NULL;
	if (ki == NULL)
		return CAPF_ENOMEM;
	pthread_mutex_init(&ki->lock, NULL);
	ret = store_cert_foreach(st, add_cert, ki);
	if (ret < 0) {
		keyindex_free(ki);
		return ret;
	}
	*out = ki;
	return 0;
}

void keyindex_free(struct keyindex *ki)
{
	struct key_entry *e, *tmp;

	if (ki == NULL)
		return;
	HASH_ITER(hh, ki->map, e, tmp)
	{
		HASH_DEL(ki->map, e);
		free(e);
	}
	pthread_mutex_destroy(&ki->lock);
	free(ki);
}
