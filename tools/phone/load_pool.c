/*
 * capf-phone load: the key pool, the MICs made with it, and the LSCs kept
 * between two runs (--lsc-out, --lsc-in) for a re-key of the same phones.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/crypto.h>

#include "tools/phone/load.h"

#define MIC_DAYS 3650u

struct pool_job {
	struct load *l;
	atomic_ulong next;
	atomic_int err;
	unsigned long mics;  /* MIC keys to make */
	unsigned long first; /* the first LSC key to make (those before are read) */
};

/* Jobs 0..mics-1 are MIC keys, then the LSC keys from first on. */
static void *pool_thread(void *arg)
{
	struct pool_job *j = arg;
	unsigned long total = j->mics + (j->l->count - j->first), k;

	while (!atomic_load(&j->err) && (k = atomic_fetch_add(&j->next, 1)) < total) {
		int ret = k < j->mics ? pki_gen_key(j->l->mic_type, &j->l->mic_keys[k])
				      : pki_gen_key(j->l->key_type,
						    &j->l->lsc_keys[j->first + k - j->mics]);
		if (ret < 0)
			atomic_store(&j->err, ret);
	}
	return NULL;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
		: c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Decodes hex in place; returns the byte count or -1. */
static long unhex(char *s)
{
	size_t n = strlen(s), i;

	if (n % 2)
		return -1;
	for (i = 0; i < n / 2; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		s[i] = (char)(hi << 4 | lo);
	}
	return (long)(n / 2);
}

static void put_hex(FILE *f, const uint8_t *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		putc(hex[p[i] >> 4], f);
		putc(hex[p[i] & 15], f);
	}
}

/* The label of a key in a --key-file line: the key type, "mic-" before
 * it for MIC keys (kept apart: a MIC key is never sent as a new key). */
static void key_label(int type, bool mic, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s", mic ? "mic-" : "", key_type_name(type));
}

/* Reads the keys labelled so in l->key_file ("LABEL PKCS8-HEX" lines)
 * into keys, up to n; how many. A missing file has none. */
static unsigned long key_file_read(const struct load *l, const char *label,
				   gnutls_x509_privkey_t *keys, unsigned long n)
{
	FILE *f = fopen(l->key_file, "r");
	char *line = NULL;
	size_t cap = 0;
	unsigned long k = 0;

	if (!f)
		return 0;
	while (k < n && getline(&line, &cap, f) > 0) {
		char *save = NULL, *type = strtok_r(line, " \n", &save);
		char *hex = strtok_r(NULL, " \n", &save);
		gnutls_datum_t d;
		long len;

		if (!type || !hex || strcmp(type, label) || (len = unhex(hex)) < 0)
			continue;
		d.data = (unsigned char *)hex;
		d.size = (unsigned)len;
		if (gnutls_x509_privkey_init(&keys[k]) < 0)
			break;
		if (gnutls_x509_privkey_import_pkcs8(keys[k], &d, GNUTLS_X509_FMT_DER, NULL,
						     GNUTLS_PKCS_PLAIN) < 0) {
			gnutls_x509_privkey_deinit(keys[k]);
			keys[k] = NULL;
			continue;
		}
		k++;
	}
	free(line);
	fclose(f);
	return k;
}

/* Appends keys from..n-1 to l->key_file, labelled so. */
static int key_file_append(const struct load *l, const char *label,
			   gnutls_x509_privkey_t *keys, unsigned long from, unsigned long n)
{
	FILE *f = fopen(l->key_file, "a");
	int ret = 0;

	if (!f)
		return -errno;
	for (unsigned long i = from; i < n && ret == 0; i++) {
		gnutls_datum_t d = { NULL, 0 };

		if (gnutls_x509_privkey_export2_pkcs8(keys[i], GNUTLS_X509_FMT_DER, NULL,
						      GNUTLS_PKCS_PLAIN, &d) < 0) {
			ret = CAPF_ECRYPTO;
			break;
		}
		fprintf(f, "%s ", label);
		put_hex(f, d.data, d.size);
		putc('\n', f);
		gnutls_free(d.data);
	}
	if (fclose(f) != 0 && ret == 0)
		ret = CAPF_EIO;
	return ret;
}

int load_pool_make(struct load *l, bool mics_too)
{
	struct pool_job j = { .l = l };
	pthread_t th[LOAD_SETUP_THREADS_MAX];
	unsigned long nth = LOAD_SETUP_THREADS_MAX, started = 0, mics_read = 0;
	char lsc_label[40], mic_label[40];
	int ret;

	if (l->key_pool == 0)
		return 0;
	l->lsc_keys = calloc(l->count, sizeof(*l->lsc_keys));
	l->mic_keys = calloc(l->key_pool, sizeof(*l->mic_keys));
	if (!l->lsc_keys || !l->mic_keys)
		return CAPF_ENOMEM;
	key_label(l->key_type, false, lsc_label, sizeof(lsc_label));
	key_label(l->mic_type, true, mic_label, sizeof(mic_label));
	if (l->key_file && mics_too) {
		mics_read = key_file_read(l, mic_label, l->mic_keys, l->key_pool);
		/* The pool's keys made are the last ones of mic_keys. */
		if (mics_read < l->key_pool)
			memmove(l->mic_keys + (l->key_pool - mics_read), l->mic_keys,
				mics_read * sizeof(*l->mic_keys));
		for (unsigned long k = 0; k < l->key_pool - mics_read; k++)
			l->mic_keys[k] = NULL;
	}
	j.mics = mics_too ? l->key_pool - mics_read : 0;
	/* A re-key (--lsc-in) needs keys no LSC has yet: fresh ones. */
	j.first = l->key_file && !l->lsc_in ? key_file_read(l, lsc_label, l->lsc_keys, l->count) : 0;
	l->keys_read = j.first + mics_read;
	for (unsigned long i = 0; i < nth; i++)
		if (pthread_create(&th[i], NULL, pool_thread, &j) == 0)
			started++;
	if (started == 0)
		pool_thread(&j);
	for (unsigned long i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	ret = atomic_load(&j.err);
	if (ret == 0 && l->key_file && !l->lsc_in && j.first < l->count)
		ret = key_file_append(l, lsc_label, l->lsc_keys, j.first, l->count);
	if (ret == 0 && l->key_file && j.mics > 0)
		ret = key_file_append(l, mic_label, l->mic_keys, 0, j.mics);
	return ret;
}

void load_pool_free(struct load *l)
{
	for (unsigned long k = 0; l->lsc_keys && k < l->count; k++)
		if (l->lsc_keys[k])
			gnutls_x509_privkey_deinit(l->lsc_keys[k]);
	for (unsigned long k = 0; l->mic_keys && k < l->key_pool; k++)
		if (l->mic_keys[k])
			gnutls_x509_privkey_deinit(l->mic_keys[k]);
	free(l->lsc_keys);
	free(l->mic_keys);
	l->lsc_keys = NULL;
	l->mic_keys = NULL;
}

gnutls_x509_privkey_t load_lsc_key(const struct load *l, unsigned long i)
{
	return l->lsc_keys ? l->lsc_keys[i] : NULL;
}

#define CHECK(call)                             \
	do {                                    \
		if ((call) < 0) {               \
			ret = CAPF_ECRYPTO;     \
			goto out;               \
		}                               \
	} while (0)

int load_make_mic(const struct load *l, const struct pki_pair *issuer, unsigned long i,
		  struct pki_pair *out)
{
	uint8_t serial[16], id[64];
	size_t id_len = sizeof(id);
	time_t nb = time(NULL) - 3600;
	const char *cn = l->names[i];
	gnutls_datum_t der = { NULL, 0 };
	gnutls_x509_crt_t fresh = NULL;
	int ret;

	out->key = NULL;
	out->crt = NULL;
	if (l->key_pool > 0) {
		CHECK(gnutls_x509_privkey_init(&out->key));
		CHECK(gnutls_x509_privkey_cpy(out->key, l->mic_keys[i % l->key_pool]));
	} else {
		ret = pki_gen_key(l->mic_type, &out->key);
		if (ret < 0)
			goto out;
	}
	CHECK(gnutls_x509_crt_init(&out->crt));
	CHECK(gnutls_x509_crt_set_version(out->crt, 3));
	CHECK(gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial)));
	serial[0] = (uint8_t)((serial[0] & 0x7f) | 0x01);
	CHECK(gnutls_x509_crt_set_serial(out->crt, serial, sizeof(serial)));
	CHECK(gnutls_x509_crt_set_activation_time(out->crt, nb));
	CHECK(gnutls_x509_crt_set_expiration_time(out->crt, nb + (time_t)MIC_DAYS * 86400));
	CHECK(gnutls_x509_crt_set_dn_by_oid(out->crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
					    (unsigned)strlen(cn)));
	CHECK(gnutls_x509_crt_set_key(out->crt, out->key));
	CHECK(gnutls_x509_crt_set_basic_constraints(out->crt, 0, -1));
	CHECK(gnutls_x509_crt_set_key_usage(out->crt, GNUTLS_KEY_DIGITAL_SIGNATURE));
	CHECK(gnutls_x509_crt_set_key_purpose_oid(out->crt, GNUTLS_KP_TLS_WWW_CLIENT, 0));
	if (gnutls_x509_crt_get_subject_key_id(issuer->crt, id, &id_len, NULL) >= 0)
		CHECK(gnutls_x509_crt_set_authority_key_id(out->crt, id, id_len));
	CHECK(gnutls_x509_crt_sign2(out->crt, issuer->crt, issuer->key, GNUTLS_DIG_SHA256, 0));
	/* A signed certificate verifies only once exported and read again. */
	CHECK(gnutls_x509_crt_export2(out->crt, GNUTLS_X509_FMT_DER, &der));
	CHECK(gnutls_x509_crt_init(&fresh));
	CHECK(gnutls_x509_crt_import(fresh, &der, GNUTLS_X509_FMT_DER));
	gnutls_x509_crt_deinit(out->crt);
	out->crt = fresh;
	fresh = NULL;
	ret = 0;
out:
	gnutls_free(der.data);
	if (fresh)
		gnutls_x509_crt_deinit(fresh);
	if (ret < 0)
		pki_pair_deinit(out);
	return ret;
}

int load_lsc_write(const struct load *l)
{
	FILE *f = fopen(l->lsc_out, "w");
	int ret = 0;

	if (!f)
		return -errno;
	for (unsigned long i = 0; i < l->count && ret == 0; i++) {
		gnutls_datum_t crt = { NULL, 0 }, key = { NULL, 0 };

		if (l->result[i] != 0 || !l->lscs[i].crt || !l->lscs[i].key)
			continue;
		if (gnutls_x509_crt_export2(l->lscs[i].crt, GNUTLS_X509_FMT_DER, &crt) < 0 ||
		    gnutls_x509_privkey_export2_pkcs8(l->lscs[i].key, GNUTLS_X509_FMT_DER, NULL,
						      GNUTLS_PKCS_PLAIN, &key) < 0) {
			ret = CAPF_ECRYPTO;
		} else {
			fprintf(f, "%s ", l->names[i]);
			put_hex(f, crt.data, crt.size);
			putc(' ', f);
			put_hex(f, key.data, key.size);
			putc('\n', f);
		}
		gnutls_free(crt.data);
		if (key.data)
			gnutls_memset(key.data, 0, key.size);
		gnutls_free(key.data);
	}
	if (fclose(f) != 0 && ret == 0)
		ret = CAPF_EIO;
	return ret;
}

int load_lsc_read(struct load *l, unsigned long max)
{
	FILE *f = fopen(l->lsc_in, "r");
	char *line = NULL;
	size_t cap = 0;
	unsigned long n = 0, lines = 0;
	int ret = 0;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0)
		lines++;
	if (max && lines > max)
		lines = max;
	if (lines == 0) {
		ret = CAPF_EINVAL;
		goto out;
	}
	l->names = calloc(lines, sizeof(*l->names));
	l->lscs = calloc(lines, sizeof(*l->lscs));
	if (!l->names || !l->lscs) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	rewind(f);
	while (n < lines && getline(&line, &cap, f) > 0) {
		char *save = NULL, *name = strtok_r(line, " \n", &save);
		char *crt = strtok_r(NULL, " \n", &save), *key = strtok_r(NULL, " \n", &save);
		long cn, kn;
		gnutls_datum_t cd, kd;

		if (!name || !crt || !key || strlen(name) > DEVICE_NAME_MAX ||
		    (cn = unhex(crt)) < 0 || (kn = unhex(key)) < 0) {
			ret = CAPF_EBADMSG;
			goto out;
		}
		snprintf(l->names[n], sizeof(l->names[n]), "%s", name);
		cd.data = (unsigned char *)crt;
		cd.size = (unsigned)cn;
		kd.data = (unsigned char *)key;
		kd.size = (unsigned)kn;
		if (gnutls_x509_crt_init(&l->lscs[n].crt) < 0 ||
		    gnutls_x509_crt_import(l->lscs[n].crt, &cd, GNUTLS_X509_FMT_DER) < 0 ||
		    gnutls_x509_privkey_init(&l->lscs[n].key) < 0 ||
		    gnutls_x509_privkey_import_pkcs8(l->lscs[n].key, &kd, GNUTLS_X509_FMT_DER, NULL,
						     GNUTLS_PKCS_PLAIN) < 0) {
			ret = CAPF_EBADMSG;
			goto out;
		}
		gnutls_memset(key, 0, (size_t)kn);
		n++;
	}
	l->count = n;
out:
	free(line);
	fclose(f);
	return ret;
}
