/*
 * Fuzz target: the offline readers of a whole state directory that
 * fuzz_store_dir leaves out: capfctl audit verify in each of its forms
 * (-d DIR; FILE... alone, without the store's anchor; -d DIR FILE...),
 * audit show (store_audit_read_dir()) and store dump (store_dump()).
 *
 * Input: fuzz_store_dir's (tests/fuzz/dir_input.h without subdirectories;
 * pack_dir.sh makes one from a real state directory), its flags byte
 * unused. Each input gets a new directory from mkdtemp() under $TMPDIR
 * (or /tmp), removed before returning: nothing is carried from one input
 * to the next.
 *
 * Besides not crashing or leaking, the readers keep their promises: none
 * changes a file; a log that verifies intact with -d verifies intact
 * from its files alone, with the same entries, and gives the same answer
 * when its files are named; audit show of an intact log reads the files
 * as verify -d does, without damage, in order, no more entries than
 * verify counted (a torn tail aside);
 * and a directory that store check passes dumps.
 */
#include "config.h"

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/errcode.h"
#include "store/store.h"
#include "tests/fuzz/dir_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void note(const struct store_finding *f, void *arg)
{
	/* Every finding names its file and says what it is. */
	if (!f->file || !f->text || !*f->text)
		abort();
	if (arg && f->damage)
		(*(unsigned *)arg)++;
}

struct shown {
	uint64_t n, first, last;
	int order_broken;
};

static int on_shown(const Capf__AuditEntry *e, uint64_t offset, void *arg)
{
	struct shown *s = arg;

	(void)offset;
	if (s->n == 0)
		s->first = e->seq;
	else if (e->seq != s->last + 1)
		s->order_broken = 1;
	s->last = e->seq;
	s->n++;
	return 0;
}

static int on_record(const Capf__Device *d, const Capf__Certificate *c, void *arg)
{
	/* One of the two, never both or neither. */
	if ((d == NULL) == (c == NULL))
		abort();
	(*(uint64_t *)arg)++;
	return 0;
}

/* FNV-1a over the names and bytes of the directory's files, in name
 * order, the lock file left out (store_dump() takes the lock). */
static uint64_t dir_digest(const char *dir)
{
	struct dirent **list = NULL;
	uint64_t h = 14695981039346656037ull;
	char path[600];
	int n, i;

	n = scandir(dir, &list, NULL, alphasort);
	if (n < 0)
		abort();
	for (i = 0; i < n; i++) {
		const char *name = list[i]->d_name;
		uint8_t buf[4096];
		ssize_t got;
		int fd;

		if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0 && strcmp(name, "lock") != 0) {
			for (const char *p = name; *p; p++)
				h = (h ^ (uint8_t)*p) * 1099511628211ull;
			h = (h ^ 0xff) * 1099511628211ull;
			snprintf(path, sizeof(path), "%s/%s", dir, name);
			fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
			while (fd >= 0 && (got = read(fd, buf, sizeof(buf))) > 0)
				for (ssize_t k = 0; k < got; k++)
					h = (h ^ buf[k]) * 1099511628211ull;
			if (fd >= 0)
				close(fd);
		}
		free(list[i]);
	}
	free(list);
	return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_audit_summary with_dir, files_only, named;
	struct store_check_summary cs;
	struct shown shown = {0, 0, 0, 0};
	char dir[256], **paths = NULL;
	size_t npaths = 0;
	uint64_t before, records = 0;
	unsigned damage = 0;
	int verified, alone, both, read, checked, dumped;

	if (size < 1)
		return 0;
	dir_input_make(dir, sizeof(dir), "capf-fuzz-audit", data + 1, size - 1, 0);
	before = dir_digest(dir);

	/* audit verify -d DIR */
	verified = store_audit_verify(dir, NULL, 0, note, &damage, &with_dir);
	if (verified != 0 && verified != CAPF_ECORRUPT && verified != CAPF_ENOMEM)
		abort();
	if ((verified == 0) != (with_dir.problems == 0 && damage == 0) && verified != CAPF_ENOMEM)
		abort();
	if (store_audit_files(dir, &paths, &npaths) == 0 && npaths > 0) {
		/* audit verify FILE...: the chain alone, no anchor to reach. */
		alone = store_audit_verify(NULL, (const char *const *)paths, npaths, note, NULL,
					   &files_only);
		if (alone == CAPF_ENOMEM)
			goto read;
		if (files_only.anchor_seq != 0)
			abort();
		/* The files alone say no more than the directory does, but for
		 * the newest file's end, which only the segments vouch for (its
		 * copies, an unanchored tail that groups follow). */
		if (verified == 0 && !with_dir.restored && !with_dir.unanchored_tail &&
		    (alone != 0 || files_only.entries != with_dir.entries ||
				      files_only.first_seq != with_dir.first_seq ||
				      files_only.last_seq != with_dir.last_seq))
			abort();
		/* audit verify -d DIR FILE... with the very files of DIR. */
		both = store_audit_verify(dir, (const char *const *)paths, npaths, note, NULL, &named);
		if (both != CAPF_ENOMEM && verified != CAPF_ENOMEM &&
		    (both != verified || named.entries != with_dir.entries ||
		     named.problems != with_dir.problems || named.anchor_seq != with_dir.anchor_seq))
			abort();
	} else if (verified == 0) {
		abort(); /* intact without an audit file? */
	}
read:
	store_audit_files_free(paths, npaths);

	/* audit show */
	read = store_audit_read_dir(dir, on_shown, &shown);
	/* It reads the files as verify -d does (the newest one as start
	 * leaves it): a log intact for verify shows whole, in order. */
	if (verified == 0 && read != CAPF_ENOMEM &&
	    (read != 0 || shown.order_broken || shown.n > with_dir.entries ||
	     (shown.n > 0 && shown.first != with_dir.first_seq)))
		abort();

	/* store dump */
	memset(&cs, 0, sizeof(cs));
	checked = store_check(dir, NULL, NULL, &cs);
	dumped = store_dump(dir, on_record, &records);
	if (checked == 0 && dumped != 0 && dumped != CAPF_ENOMEM)
		abort();
	/* The live records, at most the records the files hold. */
	if (checked == 0 && dumped == 0 && records > cs.records)
		abort();

	/* Nothing here writes. */
	if (dir_digest(dir) != before)
		abort();
	dir_input_remove(dir);
	return 0;
}
