/*
 * File helpers of the store: paths, the directory listing, mapping a file,
 * creating a file atomically, the directory lock, error texts.
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
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "store/internal.h"

static _Thread_local char last_error[512];

void store_set_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
}

void store_report_v(store_report_cb cb, void *arg, const char *file, uint64_t off, uint64_t len,
		    int damage, const char *fmt, va_list ap)
{
	struct store_finding f;
	char text[512];

	if (!cb)
		return;
	vsnprintf(text, sizeof(text), fmt, ap);
	f.file = file;
	f.offset = off;
	f.length = len;
	f.damage = damage;
	f.text = text;
	cb(&f, arg);
}

void store_clear_error(void)
{
	last_error[0] = '\0';
}

const char *store_last_error(void)
{
	return last_error;
}

int store_err_from_errno(int e)
{
	switch (e) {
	case ENOMEM:
		return CAPF_ENOMEM;
	case ENOSPC:
	case EDQUOT:
		return CAPF_ENOSPC;
	case EACCES:
	case EPERM:
	case EROFS:
		return CAPF_EACCES;
	case ENOENT:
		return CAPF_ENOENT;
	case ENOTDIR:
		return CAPF_EINVAL;
	default:
		return CAPF_EIO;
	}
}

int store_write_err(int e)
{
	return (e == ENOSPC || e == EDQUOT) ? CAPF_ENOSPC : CAPF_EIO;
}

char *store_path(const char *dir, const char *name)
{
	size_t dl = strlen(dir), nl = strlen(name);
	char *p = malloc(dl + 1 + nl + 1);

	if (!p)
		return NULL;
	memcpy(p, dir, dl);
	p[dl] = '/';
	memcpy(p + dl + 1, name, nl + 1);
	return p;
}

void store_seq_name(char *buf, size_t len, const char *prefix, uint64_t seq)
{
	snprintf(buf, len, "%s" STORE_SEQ_FMT, prefix, seq);
}

/* "<prefix><digits>" exactly: 1 and *seq (> 0), else 0. */
static int parse_seq_name(const char *name, const char *prefix, uint64_t *seq)
{
	size_t pl = strlen(prefix);
	const char *d = name + pl;
	uint64_t v = 0;

	if (strncmp(name, prefix, pl) != 0 || *d == '\0')
		return 0;
	for (; *d; d++) {
		if (*d < '0' || *d > '9' || v > (UINT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (uint64_t)(*d - '0');
	}
	*seq = v;
	return v > 0;
}

void store_audit_name(char *buf, size_t len, uint64_t seq)
{
	snprintf(buf, len, STORE_AUDIT_PREFIX STORE_SEQ_FMT STORE_AUDIT_SUFFIX, seq);
}

/* "audit.<digits>.log" exactly: 1 and *seq (> 0), else 0. */
static int parse_audit_name(const char *name, uint64_t *seq)
{
	size_t nl = strlen(name), sl = strlen(STORE_AUDIT_SUFFIX);
	char digits[32];

	if (nl <= strlen(STORE_AUDIT_PREFIX) + sl || nl - sl - strlen(STORE_AUDIT_PREFIX) >= 24 ||
	    strcmp(name + nl - sl, STORE_AUDIT_SUFFIX) != 0)
		return 0;
	snprintf(digits, sizeof(digits), "x%.*s", (int)(nl - sl - strlen(STORE_AUDIT_PREFIX)),
		 name + strlen(STORE_AUDIT_PREFIX));
	return parse_seq_name(digits, "x", seq);
}

uint32_t store_new_salt(void)
{
	uint32_t v = 0;

	/* A salt only needs to differ from the file's predecessors; the
	 * clock is the fallback if the kernel has no randomness to give. */
	if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
		v = (uint32_t)time(NULL) ^ (uint32_t)getpid() << 16;
	return v;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static int push_seq(uint64_t **arr, size_t *n, size_t *cap, uint64_t v)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		uint64_t *na = realloc(*arr, ncap * sizeof(*na));

		if (!na)
			return CAPF_ENOMEM;
		*arr = na;
		*cap = ncap;
	}
	(*arr)[(*n)++] = v;
	return 0;
}

int store_dir_list(const char *dir, struct store_dir_list *out)
{
	size_t seg_cap = 0, snap_cap = 0, audit_cap = 0;
	struct dirent *de;
	DIR *d = NULL;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	d = opendir(dir);
	if (!d) {
		store_set_error("cannot read state directory %s: %s", dir, strerror(errno));
		return store_err_from_errno(errno);
	}
	while ((de = readdir(d)) != NULL) {
		uint64_t seq;

		if (parse_seq_name(de->d_name, STORE_SEG_PREFIX, &seq))
			ret = push_seq(&out->segs, &out->n_segs, &seg_cap, seq);
		else if (parse_seq_name(de->d_name, STORE_SNAP_PREFIX, &seq))
			ret = push_seq(&out->snaps, &out->n_snaps, &snap_cap, seq);
		else if (parse_audit_name(de->d_name, &seq))
			ret = push_seq(&out->audits, &out->n_audits, &audit_cap, seq);
		else if (strcmp(de->d_name, STORE_LEGACY_NAME) == 0)
			out->legacy = true;
		else if (strcmp(de->d_name, STORE_AUDIT_NAME) == 0)
			out->audit = true;
		if (ret < 0)
			break;
	}
	closedir(d);
	if (ret < 0) {
		store_dir_list_free(out);
		return ret;
	}
	if (out->n_segs)
		qsort(out->segs, out->n_segs, sizeof(*out->segs), u64_cmp);
	if (out->n_snaps)
		qsort(out->snaps, out->n_snaps, sizeof(*out->snaps), u64_cmp);
	if (out->n_audits)
		qsort(out->audits, out->n_audits, sizeof(*out->audits), u64_cmp);
	return 0;
}

void store_dir_list_free(struct store_dir_list *l)
{
	if (!l)
		return;
	free(l->segs);
	free(l->snaps);
	free(l->audits);
	memset(l, 0, sizeof(*l));
}

int store_map_file(const char *path, struct store_file_map *m)
{
	struct stat sb;
	int fd, ret = 0;

	memset(m, 0, sizeof(*m));
	/* O_NONBLOCK: a FIFO or a device named like a store file is
	 * refused below, not waited on. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		store_set_error("cannot open %s: %s", path, strerror(errno));
		return store_err_from_errno(errno);
	}
	if (fstat(fd, &sb) < 0) {
		store_set_error("cannot stat %s: %s", path, strerror(errno));
		ret = store_err_from_errno(errno);
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		store_set_error("%s is not a regular file", path);
		ret = CAPF_EIO;
		goto out;
	}
	if (sb.st_size == 0)
		goto out;
	m->map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (m->map == MAP_FAILED) {
		m->map = NULL;
		store_set_error("cannot map %s: %s", path, strerror(errno));
		ret = store_err_from_errno(errno);
		goto out;
	}
	/* Replay reads the whole file once, front to back. */
	(void)madvise(m->map, (size_t)sb.st_size, MADV_SEQUENTIAL);
	m->data = m->map;
	m->len = (size_t)sb.st_size;
out:
	close(fd);
	return ret;
}

void store_unmap_file(struct store_file_map *m)
{
	if (m && m->map)
		munmap(m->map, m->len);
	if (m)
		memset(m, 0, sizeof(*m));
}

int store_sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = 0;

	if (fd < 0)
		return store_err_from_errno(errno);
	if (fsync(fd) < 0)
		ret = store_write_err(errno);
	close(fd);
	return ret;
}

int store_writev_full(int fd, struct iovec *iov, size_t cnt)
{
	while (cnt > 0) {
		int batch = cnt > IOV_MAX ? IOV_MAX : (int)cnt;
		ssize_t n = writev(fd, iov, batch);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return store_write_err(errno);
		}
		if (n == 0)
			return CAPF_EIO;
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

int store_write_full(int fd, const void *buf, size_t len)
{
	struct iovec iov = { (void *)buf, len };

	/* writev() of nothing returns 0, which the loop takes for a failure. */
	if (len == 0)
		return 0;
	return store_writev_full(fd, &iov, 1);
}

int store_create_file(const char *dir, const char *name, const uint8_t *data, size_t len,
		      int *fd_out, char *err, size_t errlen)
{
	char *path = NULL, *tmp = NULL;
	size_t nl = strlen(name);
	int fd = -1, ret = 0;

	if (fd_out)
		*fd_out = -1;
	path = store_path(dir, name);
	tmp = malloc(strlen(dir) + 1 + nl + sizeof(STORE_TMP_SUFFIX));
	if (!path || !tmp) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	sprintf(tmp, "%s/%s" STORE_TMP_SUFFIX, dir, name);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = store_err_from_errno(errno);
		if (err)
			snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	ret = store_write_full(fd, data, len);
	if (ret == 0 && fsync(fd) < 0)
		ret = store_write_err(errno);
	if (ret < 0) {
		if (err)
			snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(-ret));
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		ret = store_write_err(errno);
		if (err)
			snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		ret = store_err_from_errno(errno);
		if (err)
			snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path,
				 strerror(errno));
		goto out;
	}
	ret = store_sync_dir(dir);
	if (ret < 0) {
		if (err)
			snprintf(err, errlen, "cannot sync state directory %s: %s", dir,
				 strerror(-ret));
		goto out;
	}
	if (fd_out) {
		*fd_out = open(path, O_RDWR | O_APPEND | O_CLOEXEC);
		if (*fd_out < 0) {
			ret = store_err_from_errno(errno);
			if (err)
				snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		}
	}
out:
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	free(path);
	free(tmp);
	return ret;
}

int store_lock_dir(const char *dir, int *fd_out, char *err, size_t errlen)
{
	char *path = NULL;
	char buf[32];
	ssize_t n;
	int fd = -1, ret = 0;

	*fd_out = -1;
	path = store_path(dir, STORE_LOCK_NAME);
	if (!path) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		/* Made here: its directory entry is made durable too, like
		 * every file the store creates. */
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd >= 0 && store_sync_dir(dir) < 0) {
			snprintf(err, errlen, "cannot sync %s: %s", dir, strerror(errno));
			ret = store_err_from_errno(errno);
			goto out;
		}
	}
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		ret = store_err_from_errno(errno);
		goto out;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK) {
			snprintf(err, errlen, "cannot lock %s: %s", path, strerror(errno));
			ret = store_err_from_errno(errno);
			goto out;
		}
		n = pread(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		snprintf(err, errlen, "state directory %s is in use by another process (pid %s)",
			 dir, buf[0] ? buf : "unknown");
		ret = CAPF_ELOCKED;
		goto out;
	}
	/* The pid is only for people looking at the directory: the lock is
	 * the flock, which the kernel drops when the process dies. */
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
		ret = store_err_from_errno(errno);
		goto out;
	}
	*fd_out = fd;
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	free(path);
	return ret;
}

void store_format_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "%lld", (long long)t);
}
