/*
 * A directory written from a fuzz input, for the targets that read whole
 * directories (fuzz_audit_verify, fuzz_ca_files; fuzz_store_dir reads the
 * same flat format with its own copy).
 *
 * Format, after whatever header the target takes: files, each as a 1-byte
 * name length, the name, a 4-byte big-endian length and the bytes (cut
 * to what remains). At most DIR_INPUT_MAX_FILES. A name is 1..40 bytes of
 * [A-Za-z0-9._-], not "." or "..". With DIR_INPUT_TREE, names may also be
 * paths of such components (of up to 72 bytes, for the CA directory's
 * <sha256>.pem) joined by '/' (the directories are made as needed, up to
 * 120 bytes), and bit 7 of the length byte makes the entry
 * a symbolic link whose target is the bytes: a relative path without a
 * ".." component, so that nothing the input makes points outside the
 * directory.
 *
 * dir_input_make() writes them into a new directory made with mkdtemp()
 * under $TMPDIR (or /tmp); dir_input_remove() takes it away. A name given
 * twice keeps the first file.
 */
#ifndef CAPF_TESTS_FUZZ_DIR_INPUT_H
#define CAPF_TESTS_FUZZ_DIR_INPUT_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIR_INPUT_MAX_FILES 16
#define DIR_INPUT_MAX_NAME 40
#define DIR_INPUT_MAX_COMPONENT 72
#define DIR_INPUT_MAX_PATH 120
#define DIR_INPUT_TREE 1u

static int dir_input_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* One path component: 1..max of [A-Za-z0-9._-], not "." or "..". */
static int dir_input_component_ok(const uint8_t *p, size_t n, size_t max)
{
	if (n == 0 || n > max || (n == 1 && p[0] == '.') ||
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

/* A name of components joined by '/' (one component unless tree). */
static int dir_input_name_ok(const uint8_t *p, size_t n, int tree)
{
	size_t start = 0;

	if (n == 0 || n > (tree ? DIR_INPUT_MAX_PATH : DIR_INPUT_MAX_NAME))
		return 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && p[i] != '/')
			continue;
		if (!tree && i < n)
			return 0;
		if (!dir_input_component_ok(p + start, i - start,
					    tree ? DIR_INPUT_MAX_COMPONENT : DIR_INPUT_MAX_NAME))
			return 0;
		start = i + 1;
	}
	return 1;
}

/* A symbolic link's target: a relative path of components, "." allowed,
 * ".." not. */
static int dir_input_target_ok(const uint8_t *p, size_t n)
{
	size_t start = 0;

	if (n == 0 || n > DIR_INPUT_MAX_PATH)
		return 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && p[i] != '/')
			continue;
		if (!(i - start == 1 && p[start] == '.') &&
		    !dir_input_component_ok(p + start, i - start, DIR_INPUT_MAX_COMPONENT))
			return 0;
		start = i + 1;
	}
	return 1;
}

static int dir_input_write_all(const char *path, const uint8_t *p, size_t n)
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

/* Makes the directories above path (inside the input's directory). */
static void dir_input_parents(char *path, size_t base_len)
{
	for (char *s = path + base_len + 1; (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			*s = '/';
			return;
		}
		*s = '/';
	}
}

/*
 * dir_input_make() - a new directory (its path into dir, dirlen bytes)
 * holding the files of data, as the format above says. Aborts when the
 * directory cannot be made; an entry that cannot be written (its parent
 * is a file, say) is left out.
 */
static void dir_input_make(char *dir, size_t dirlen, const char *prefix, const uint8_t *data,
			   size_t size, unsigned flags)
{
	const char *tmp = getenv("TMPDIR");
	int tree = (flags & DIR_INPUT_TREE) != 0;
	size_t nfiles = 0, base_len;
	char path[512], target[DIR_INPUT_MAX_PATH + 1];

	snprintf(dir, dirlen, "%s/%s.XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix);
	if (!mkdtemp(dir))
		abort();
	base_len = strlen(dir);
	while (size > 0 && nfiles < DIR_INPUT_MAX_FILES) {
		size_t nlen = data[0] & (tree ? 0x7f : 0xff), flen;
		int link = tree && (data[0] & 0x80);

		if (size < 1 + nlen + 4 || !dir_input_name_ok(data + 1, nlen, tree))
			break;
		snprintf(path, sizeof(path), "%s/%.*s", dir, (int)nlen, (const char *)data + 1);
		data += 1 + nlen;
		size -= 1 + nlen;
		flen = (size_t)data[0] << 24 | (size_t)data[1] << 16 | (size_t)data[2] << 8 | data[3];
		data += 4;
		size -= 4;
		if (flen > size)
			flen = size;
		if (tree)
			dir_input_parents(path, base_len);
		if (link) {
			if (dir_input_target_ok(data, flen)) {
				memcpy(target, data, flen);
				target[flen] = '\0';
				(void)symlink(target, path);
			}
		} else if (dir_input_write_all(path, data, flen) < 0 && errno != EEXIST &&
			   errno != ENOTDIR && errno != EISDIR && errno != ENOENT && errno != ELOOP) {
			abort();
		}
		data += flen;
		size -= flen;
		nfiles++;
	}
}

/* dir_input_remove() - remove the directory and all it holds. */
static void dir_input_remove(const char *dir)
{
	nftw(dir, dir_input_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif /* CAPF_TESTS_FUZZ_DIR_INPUT_H */
