/*
 * ca/file.c - the CA directory's files: whole-file reads, and writes that
 * are atomic and durable (temporary file made with O_EXCL, fsync, rename,
 * directory fsync), so a crash leaves either the old file or the new one.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca/internal.h"

int ca_file_read(const char *path, size_t max, gnutls_datum_t *out)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t size = 0, done = 0;
	int fd = -1;
	int saved;

	out->data = NULL;
	out->size = 0;
	/* O_NONBLOCK: a FIFO or a device put where a file belongs is
	 * refused below, not waited on. It changes nothing for a file. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	if ((uintmax_t)st.st_size > max) {
		errno = EFBIG;
		goto fail;
	}
	size = (size_t)st.st_size;
	buf = malloc(size + 1);
	if (buf == NULL)
		goto fail;
	while (done < size) {
		ssize_t n = read(fd, buf + done, size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	buf[done] = '\0';
	close(fd);
	out->data = buf;
	out->size = (unsigned)done;
	return 0;
fail:
	saved = errno;
	if (buf != NULL) {
		gnutls_memset(buf, 0, size + 1);
		free(buf);
	}
	if (fd >= 0)
		close(fd);
	errno = saved;
	return -1;
}

void ca_file_free(gnutls_datum_t *d)
{
	if (d->data != NULL) {
		gnutls_memset(d->data, 0, d->size);
		free(d->data);
	}
	d->data = NULL;
	d->size = 0;
}

int ca_fsync_dir(const char *dir)
{
	int fd, ret = 0;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fsync(fd) < 0)
		ret = -1;
	close(fd);
	return ret;
}

int ca_path(char *buf, size_t size, const char *dir, const char *name)
{
	int n = snprintf(buf, size, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= size) {
		ca_set_error("CA directory path too long: %s", dir);
		return CAPF_ECONFIG;
	}
	return 0;
}

int ca_mkdir(const char *path)
{
	struct stat st;

	if (mkdir(path, 0700) == 0) {
		/* Made here: the parent is synced, or a power cut may take the
		 * new directory (and all that is put in it) away. */
		char parent[PATH_MAX], *slash;

		snprintf(parent, sizeof(parent), "%s", path);
		slash = strrchr(parent, '/');
		if (slash == parent)
			slash[1] = '\0';
		else if (slash != NULL)
			*slash = '\0';
		if (ca_fsync_dir(slash != NULL ? parent : ".") < 0) {
			ca_set_error("cannot sync the parent of %s: %s", path, strerror(errno));
			return CAPF_EIO;
		}
	} else if (errno != EEXIST) {
		ca_set_error("cannot create directory %s: %s", path, strerror(errno));
		return CAPF_EIO;
	}
	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
		ca_set_error("%s is not a directory", path);
		return CAPF_ECONFIG;
	}
	return 0;
}

int ca_rmtree(const char *path)
{
	char sub[PATH_MAX];
	struct dirent *e;
	DIR *d;
	int ret = 0;

	d = opendir(path);
	if (d == NULL)
		return errno == ENOENT ? 0 : CAPF_EIO;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (ca_path(sub, sizeof(sub), path, e->d_name) < 0 || unlink(sub) < 0)
			ret = CAPF_EIO;
	}
	closedir(d);
	if (rmdir(path) < 0)
		ret = CAPF_EIO;
	return ret;
}

int ca_file_write(const char *dir, const char *name, const void *data, size_t len, mode_t mode)
{
	char tmp[PATH_MAX], final[PATH_MAX];
	const uint8_t *p = data;
	int fd = -1;
	int n, ret;

	ret = ca_path(final, sizeof(final), dir, name);
	if (ret < 0)
		return ret;
	n = snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, name);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		ca_set_error("CA directory path too long: %s", dir);
		return CAPF_ECONFIG;
	}
	/* mkostemp() opens with O_CREAT|O_EXCL and mode 0600, so the file
	 * is never someone else's and a key is never readable by others,
	 * not even for a moment. */
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		ca_set_error("cannot create a file in %s: %s", dir, strerror(errno));
		return CAPF_EIO;
	}
	if (mode != 0600 && fchmod(fd, mode) < 0)
		goto fail;
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			goto fail;
		p += w;
		len -= (size_t)w;
	}
	if (fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, final) < 0)
		goto fail;
	if (ca_fsync_dir(dir) < 0) {
		ca_set_error("cannot sync directory %s: %s", dir, strerror(errno));
		return CAPF_EIO;
	}
	return 0;
fail:
	ca_set_error("cannot write %s: %s", final, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return CAPF_EIO;
}

int ca_path_split(const char *path, char *dir, size_t dlen, const char **base)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL) {
		snprintf(dir, dlen, ".");
		*base = path;
		return **base != '\0' ? 0 : CAPF_ECONFIG;
	}
	if ((size_t)(slash - path) + 1 > dlen)
		return CAPF_ECONFIG;
	if (slash == path) {
		snprintf(dir, dlen, "/");
	} else {
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
	}
	*base = slash + 1;
	return **base != '\0' ? 0 : CAPF_ECONFIG;
}

int ca_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char dir[PATH_MAX];
	const char *base = NULL;

	if (path == NULL || (data == NULL && len > 0))
		return CAPF_EINVAL;
	if (ca_path_split(path, dir, sizeof(dir), &base) < 0) {
		ca_set_error("bad file path %s", path);
		return CAPF_EINVAL;
	}
	return ca_file_write(dir, base, data, len, mode);
}
