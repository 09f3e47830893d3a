/*
 * Fuzz target: a whole state directory, as capfctl store check and repair
 * and then store_open() read it: segments, snapshots, the audit log, stray
 * temporary files and whatever else, under names that the input chooses.
 *
 * Input: byte 0 holds flags (bit 0: run store_repair() too); then files,
 * each as a 1-byte name length, the name (1..40 bytes of [A-Za-z0-9._-],
 * not "." or ".."), a 4-byte big-endian length and the bytes (cut to what
 * remains). At most 16 files. tests/fuzz/pack_dir.sh makes such an input
 * from a real state directory.
 *
 * Each input gets a new directory from mkdtemp() under $TMPDIR (or /tmp),
 * removed before returning: nothing is carried from one input to the next.
 * Besides not crashing or leaking, the offline functions keep their
 * promises: after a repair that succeeds, a check finds no damage, and a
 * directory that checks clean opens.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/errcode.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FILES 16
#define MAX_NAME 40

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Counts the damage findings (arg: an unsigned counter, or NULL). */
static void count_damage(const struct store_finding *f, void *arg)
{
	if (arg && f->damage)
		(*(unsigned *)arg)++;
}

static int name_ok(const uint8_t *p, size_t n)
{
	if (n == 0 || n > MAX_NAME || (n == 1 && p[0] == '.') ||
	    (n == 2 && p[0] == '.' && p[1] == '.'))
		return 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* Whether dir holds a segment: log.<seq>, 10 or more digits, seq >= 1
 * (doc/store-format.md; other names are not the store's). */
static int segment_name(const char *n)
{
	size_t digits = 0;
	int nonzero = 0;

	if (strncmp(n, "log.", 4))
		return 0;
	for (n += 4; *n; n++, digits++) {
		if (*n < '0' || *n > '9')
			return 0;
		nonzero |= *n != '0';
	}
	return digits >= 10 && nonzero;
}

static int has_segment(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (segment_name(e->d_name))
			found = 1;
	closedir(d);
	return found;
}

static int write_all(const char *path, const uint8_t *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0)
		return -1;
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *tmp = getenv("TMPDIR");
	char dir[256], path[320];
	struct store_check_summary sum;
	struct store *st = NULL;
	unsigned left = 0;
	Capf__Device **devs = NULL;
	size_t ndevs = 0, nfiles = 0;
	unsigned flags;
	int checked, ret;

	if (size < 1)
		return 0;
	flags = data[0];
	data++;
	size--;
	snprintf(dir, sizeof(dir), "%s/capf-fuzz-store.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		abort();
	while (size > 0 && nfiles < MAX_FILES) {
		size_t nlen = data[0], flen;

		if (size < 1 + nlen + 4 || !name_ok(data + 1, nlen))
			break;
		snprintf(path, sizeof(path), "%s/%.*s", dir, (int)nlen, (const char *)data + 1);
		data += 1 + nlen;
		size -= 1 + nlen;
		flen = (size_t)data[0] << 24 | (size_t)data[1] << 16 | (size_t)data[2] << 8 | data[3];
		data += 4;
		size -= 4;
		if (flen > size)
			flen = size;
		/* A name given twice: the first file stays. */
		if (write_all(path, data, flen) < 0 && errno != EEXIST)
			abort();
		data += flen;
		size -= flen;
		nfiles++;
	}

	memset(&sum, 0, sizeof(sum));
	checked = store_check(dir, count_damage, NULL, &sum);
	if (flags & 1) {
		memset(&sum, 0, sizeof(sum));
		ret = store_repair(dir, count_damage, &left, &sum);
		if (ret == 0) {
			memset(&sum, 0, sizeof(sum));
			checked = store_check(dir, count_damage, NULL, &sum);
			/*
			 * A repair that leaves damage behind must say so. Two
			 * known defects are left out until store/ fixes them, each
			 * an expected failure in tests/integration/: a repair that
			 * reports damage it does not repair and returns 0 (a file
			 * whose header it cannot read: store_repair_left.sh), and
			 * one that ignores a damaged audit log when the directory
			 * has no segment (store_repair_audit.sh).
			 */
			if (checked == CAPF_ECORRUPT && left == 0 && has_segment(dir))
				abort();
		}
	}
	ret = store_open(&st, dir);
	if (ret == 0) {
		if (store_device_list(st, &devs, &ndevs) == 0)
			store_device_list_free(devs, ndevs);
		store_close(st);
	} else if (checked == 0 && ret == CAPF_ECORRUPT) {
		/* What store check passes, start-up must accept. */
		abort();
	}
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}
