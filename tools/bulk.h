/*
 * tools/bulk.h - the CSV files of capfctl bulk import (tools/bulk.c): read
 * with libcsv, every line checked, every bad one reported with its number;
 * what capfctl_bulk.c then sends to capfd.
 */
#ifndef CAPF_TOOLS_BULK_H
#define CAPF_TOOLS_BULK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ca/ca.h"
#include "proto/proto.h"

#define BULK_FIELD_MAX 256u

enum bulk_col {
	COL_NONE = -1,
	COL_NAME = 0,
	COL_OP,
	COL_AUTH,
	COL_STRING,
	COL_ORDER,
	COL_RSA,
	COL_EC,
	COL_DEADLINE,
	COL_DAYS,
	COL_COUNT,
};

struct bulk_line {
	unsigned long lineno;
	Capf__Device dev;
	Capf__AuthSecret secret;
	uint8_t salt[CA_SECRET_SALT_LEN], hash[CA_SECRET_HASH_LEN];
	char name[DEVICE_NAME_MAX + 1];
	char *string; /* given or generated; wiped */
	bool generated, has_string;
	uint32_t fields;
	Capf__BatchAction action;
	int code;
};

struct bulk {
	const char *file;  /* the name in messages */
	FILE *err;         /* where they go (NULL: stderr) */
	enum bulk_col cols[32];
	size_t ncols;
	bool header_done;
	/* the row being read */
	char *fields[32];
	size_t nfields;
	bool row_too_wide;
	unsigned long row_start, lineno;
	/* the rows read */
	struct bulk_line *lines;
	size_t n, cap;
	unsigned long errors;
	bool fatal; /* out of memory or a bad header: stop */
	bool bom_checked;
};

/*
 * bulk_read() - read a whole file from in (b zeroed, with file and err
 * set): the header, then every line, each checked; a bad line is reported
 * and counted in b->errors and left out of b->lines. b->fatal: the file
 * cannot be read on (a bad header, a broken quote). Returns 0, or
 * CAPF_ENOMEM / CAPF_EIO / CAPF_EINVAL (an empty file), reported.
 */
int bulk_read(struct bulk *b, FILE *in);

/* bulk_line_error() - "FILE:LINE: what" on b's error stream, counted in
 * b->errors. */
void bulk_line_error(struct bulk *b, unsigned long lineno, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* bulk_dups() - a device on two lines is an error of the later one (it
 * leaves b->lines). Returns 0 or CAPF_ENOMEM. */
int bulk_dups(struct bulk *b);

/* bulk_free() - the lines, their strings wiped. */
void bulk_free(struct bulk *b);

#endif /* CAPF_TOOLS_BULK_H */
