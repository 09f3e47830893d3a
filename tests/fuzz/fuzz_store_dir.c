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

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/errcode.h"
#include "store/store.h"
#include "tests/fuzz/dir_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Counts the damage findings (arg: an unsigned counter, or NULL). */
static void count_damage(const struct store_finding *f, void *arg)
{
	if (arg && f->damage)
		(*(unsigned *)arg)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char dir[256];
	struct store_check_summary sum;
	struct store *st = NULL;
	Capf__Device **devs = NULL;
	size_t ndevs = 0;
	unsigned flags;
	int checked, ret;

	if (size < 1)
		return 0;
	flags = data[0];
	data++;
	size--;
	dir_input_make(dir, sizeof(dir), "capf-fuzz-store", data, size, 0);

	memset(&sum, 0, sizeof(sum));
	checked = store_check(dir, count_damage, NULL, &sum);
	if (flags & 1) {
		memset(&sum, 0, sizeof(sum));
		ret = store_repair(dir, count_damage, NULL, &sum);
		if (ret == 0) {
			memset(&sum, 0, sizeof(sum));
			checked = store_check(dir, count_damage, NULL, &sum);
			/* A repair that returns 0 leaves what check passes. */
			if (checked == CAPF_ECORRUPT)
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
	dir_input_remove(dir);
	return 0;
}
