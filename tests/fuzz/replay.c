/*
 * Corpus replay driver for the fuzz targets.
 *
 * A fuzz target only defines LLVMFuzzerTestOneInput(). When it is built
 * with libFuzzer (-fsanitize=fuzzer -DCAPF_LIBFUZZER), libFuzzer supplies
 * main() and this file compiles to nothing. Otherwise this main() runs
 * every file of the committed corpus through the target, so `make check`
 * exercises the same inputs under the ordinary build (and under valgrind
 * or the sanitizers when the build uses them).
 *
 * Usage: fuzz_<name> [FILE|DIR]...
 * Without arguments the corpus is "${srcdir:-.}/tests/fuzz/corpus/<name>/",
 * where <name> is the program's base name.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifndef CAPF_LIBFUZZER

/* Reads the whole file into a fresh buffer; returns 0 or -errno. */
static int read_file(const char *path, uint8_t **out, size_t *out_len)
{
	FILE *f = NULL;
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	int ret = 0;

	*out = NULL;
	*out_len = 0;
	f = fopen(path, "rb");
	if (!f) {
		ret = -errno;
		goto out;
	}
	for (;;) {
		size_t n;

		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 4096;
			uint8_t *nbuf = realloc(buf, ncap);

			if (!nbuf) {
				ret = -ENOMEM;
				goto out;
			}
			buf = nbuf;
			cap = ncap;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0) {
			if (ferror(f))
				ret = -EIO;
			break;
		}
	}
	if (ret == 0) {
		*out = buf;
		*out_len = len;
		buf = NULL;
	}
out:
	free(buf);
	if (f)
		fclose(f);
	return ret;
}

/* Replays one regular file; returns 0 or -errno. */
static int replay_file(const char *path)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int ret;

	ret = read_file(path, &data, &len);
	if (ret < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(-ret));
		return ret;
	}
	/*
	 * libFuzzer never passes NULL data, even for empty inputs; keep
	 * that property so targets behave the same in both builds.
	 */
	LLVMFuzzerTestOneInput(data ? data : (const uint8_t *)"", len);
	free(data);
	return 0;
}

static int skip_entry(const struct dirent *de)
{
	return de->d_name[0] != '.';
}

/*
 * Replays every regular file of a directory in name order, so that a
 * failure is reproducible. Adds the number replayed to *count.
 */
static int replay_dir(const char *dir, unsigned long *count)
{
	struct dirent **list = NULL;
	char *path = NULL;
	int n, i, ret = 0;

	n = scandir(dir, &list, skip_entry, alphasort);
	if (n < 0) {
		ret = -errno;
		fprintf(stderr, "%s: %s\n", dir, strerror(errno));
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct stat st;

		free(path);
		if (asprintf(&path, "%s/%s", dir, list[i]->d_name) < 0) {
			path = NULL;
			ret = -ENOMEM;
			goto out;
		}
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		ret = replay_file(path);
		if (ret < 0)
			goto out;
		(*count)++;
	}
out:
	free(path);
	if (list) {
		for (i = 0; i < n; i++)
			free(list[i]);
		free(list);
	}
	return ret;
}

static int replay_path(const char *path, unsigned long *count)
{
	struct stat st;
	int ret;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -errno;
	}
	if (S_ISDIR(st.st_mode))
		return replay_dir(path, count);
	ret = replay_file(path);
	if (ret == 0)
		(*count)++;
	return ret;
}

int main(int argc, char **argv)
{
	const char *name, *srcdir;
	char *corpus = NULL;
	unsigned long count = 0;
	int i, ret = 1;

	name = strrchr(argv[0], '/');
	name = name ? name + 1 : argv[0];
	/* libtool runs uninstalled programs through an "lt-" wrapper name. */
	if (strncmp(name, "lt-", 3) == 0)
		name += 3;

	if (argc > 1) {
		for (i = 1; i < argc; i++)
			if (replay_path(argv[i], &count) < 0)
				goto out;
	} else {
		srcdir = getenv("srcdir");
		if (!srcdir || !*srcdir)
			srcdir = ".";
		if (asprintf(&corpus, "%s/tests/fuzz/corpus/%s", srcdir, name) < 0) {
			corpus = NULL;
			fprintf(stderr, "%s: out of memory\n", name);
			goto out;
		}
		if (replay_dir(corpus, &count) < 0)
			goto out;
	}
	if (count == 0) {
		fprintf(stderr, "%s: no corpus inputs found in %s\n", name,
			corpus ? corpus : "the given paths");
		goto out;
	}
	printf("%s: replayed %lu inputs\n", name, count);
	ret = 0;
out:
	free(corpus);
	return ret;
}

#endif /* CAPF_LIBFUZZER */
