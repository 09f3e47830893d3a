/*
 * The CSV files of capfctl bulk import: columns named as the Bulk
 * Administration Tool names them, values in its words or capfctl's, read
 * with libcsv line by line so that every row knows the line it began on.
 */
#include "config.h"

#include <csv.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "tools/bulk.h"
#include "tools/client.h"

static FILE *err_of(const struct bulk *b)
{
	return b->err != NULL ? b->err : stderr;
}

/* Header names, compared in lower case with everything but letters and
 * digits left out ("Device Name" = "device_name" = "devicename"). */
static const struct {
	const char *name;
	enum bulk_col col;
} col_names[] = {
	{ "devicename", COL_NAME },
	{ "name", COL_NAME },
	{ "device", COL_NAME },
	{ "operation", COL_OP },
	{ "certificateoperation", COL_OP },
	{ "op", COL_OP },
	{ "authenticationmode", COL_AUTH },
	{ "authmode", COL_AUTH },
	{ "auth", COL_AUTH },
	{ "authenticationstring", COL_STRING },
	{ "authstring", COL_STRING },
	{ "string", COL_STRING },
	{ "keyorder", COL_ORDER },
	{ "keysize", COL_RSA },
	{ "keysizebits", COL_RSA },
	{ "rsakeysize", COL_RSA },
	{ "rsakeysizebits", COL_RSA },
	{ "rsakey", COL_RSA },
	{ "eckeysize", COL_EC },
	{ "eckeysizebits", COL_EC },
	{ "eckey", COL_EC },
	{ "curve", COL_EC },
	{ "operationcompletesby", COL_DEADLINE },
	{ "completesby", COL_DEADLINE },
	{ "deadline", COL_DEADLINE },
	{ "lscdays", COL_DAYS },
};



static void norm(const char *in, char *out, size_t len)
{
	size_t k = 0;

	for (; *in && k + 1 < len; in++)
		if (isalnum((unsigned char)*in))
			out[k++] = (char)tolower((unsigned char)*in);
	out[k] = '\0';
}

void bulk_line_error(struct bulk *b, unsigned long lineno, const char *fmt, ...)
{
	va_list ap;

	fprintf(err_of(b), "%s:%lu: ", b->file, lineno);
	va_start(ap, fmt);
	vfprintf(err_of(b), fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	b->errors++;
}

static void on_field(void *s, size_t len, void *arg)
{
	struct bulk *b = arg;
	char *f;

	if (b->nfields == 0 && b->row_start == 0)
		b->row_start = b->lineno;
	if (b->nfields >= sizeof(b->fields) / sizeof(b->fields[0])) {
		b->row_too_wide = true;
		return;
	}
	f = malloc(len + 1);
	if (f == NULL) {
		b->fatal = true;
		return;
	}
	memcpy(f, s, len);
	f[len] = '\0';
	b->fields[b->nfields++] = f;
}

static int parse_op(const char *v, int *out)
{
	char n[64];

	norm(v, n, sizeof(n));
	if (!strcmp(n, "installupgrade") || !strcmp(n, "upgrade") || !strcmp(n, "install"))
		*out = CAPF__OPERATION__OP_INSTALL;
	else if (!strcmp(n, "troubleshoot") || !strcmp(n, "fetch"))
		*out = CAPF__OPERATION__OP_FETCH;
	else if (!strcmp(n, "delete"))
		*out = CAPF__OPERATION__OP_DELETE;
	else if (!strcmp(n, "none") || !strcmp(n, "noaction") || !strcmp(n, "nopendingoperation"))
		*out = CAPF__OPERATION__OP_NONE;
	else
		return CAPF_EINVAL;
	return 0;
}

static int parse_auth(const char *v, int *out)
{
	char n[96];

	if (auth_from_name(v, out) == 0 && *out != CAPF__AUTH_MODE__AUTH_UNSPECIFIED)
		return 0;
	norm(v, n, sizeof(n));
	if (!strcmp(n, "byauthenticationstring") || !strcmp(n, "string"))
		*out = CAPF__AUTH_MODE__AUTH_STRING;
	else if (!strcmp(n, "bynullstring") || !strcmp(n, "null"))
		*out = CAPF__AUTH_MODE__AUTH_NULL_STRING;
	else if (!strcmp(n, "byexistingcertificateprecedencetolsc"))
		*out = CAPF__AUTH_MODE__AUTH_LSC_OR_MIC;
	else if (!strcmp(n, "byexistingcertificateprecedencetomic"))
		*out = CAPF__AUTH_MODE__AUTH_MIC_OR_LSC;
	else if (!strcmp(n, "mic") || !strcmp(n, "bymic"))
		*out = CAPF__AUTH_MODE__AUTH_MIC;
	else
		return CAPF_EINVAL;
	return 0;
}

static int parse_order(const char *v, int *out)
{
	char n[64];

	if (key_order_from_name(v, out) == 0 && *out != CAPF__KEY_ORDER__KEY_ORDER_UNSPECIFIED)
		return 0;
	norm(v, n, sizeof(n));
	if (!strcmp(n, "rsaonly"))
		*out = CAPF__KEY_ORDER__KEY_ORDER_RSA_ONLY;
	else if (!strcmp(n, "econly"))
		*out = CAPF__KEY_ORDER__KEY_ORDER_EC_ONLY;
	else if (!strcmp(n, "ecpreferred") || !strcmp(n, "ecpreferredrsabackup"))
		*out = CAPF__KEY_ORDER__KEY_ORDER_EC_PREFERRED;
	else
		return CAPF_EINVAL;
	return 0;
}

static int parse_rsa(const char *v, int *out)
{
	char n[32];

	norm(v, n, sizeof(n));
	if (!strcmp(n, "2048") || !strcmp(n, "rsa2048"))
		*out = CAPF__KEY_TYPE__KEY_RSA_2048;
	else if (!strcmp(n, "3072") || !strcmp(n, "rsa3072"))
		*out = CAPF__KEY_TYPE__KEY_RSA_3072;
	else if (!strcmp(n, "4096") || !strcmp(n, "rsa4096"))
		*out = CAPF__KEY_TYPE__KEY_RSA_4096;
	else
		return CAPF_EINVAL;
	return 0;
}

static int parse_ec(const char *v, int *out)
{
	char n[32];

	norm(v, n, sizeof(n));
	if (!strcmp(n, "256") || !strcmp(n, "p256") || !strcmp(n, "ecp256") ||
	    !strcmp(n, "secp256r1"))
		*out = CAPF__KEY_TYPE__KEY_EC_P256;
	else if (!strcmp(n, "384") || !strcmp(n, "p384") || !strcmp(n, "ecp384") ||
		 !strcmp(n, "secp384r1"))
		*out = CAPF__KEY_TYPE__KEY_EC_P384;
	else if (!strcmp(n, "521") || !strcmp(n, "p521") || !strcmp(n, "ecp521") ||
		 !strcmp(n, "secp521r1"))
		*out = CAPF__KEY_TYPE__KEY_EC_P521;
	else
		return CAPF_EINVAL;
	return 0;
}

/* YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, or the Tool's YYYY:MM:DD:HH (UTC). */
static int parse_deadline(const char *v, int64_t *out)
{
	char iso[21];

	if (client_parse_date(v, out) == 0)
		return 0;
	if (strlen(v) == 13 && v[4] == ':' && v[7] == ':' && v[10] == ':') {
		snprintf(iso, sizeof(iso), "%.4s-%.2s-%.2sT%.2s:00:00Z", v, v + 5, v + 8, v + 11);
		return client_parse_date(iso, out);
	}
	return CAPF_EINVAL;
}

/* The header: which column is which. */
static void header_row(struct bulk *b)
{
	bool have_name = false;

	b->ncols = b->nfields;
	for (size_t i = 0; i < b->nfields; i++) {
		char n[64];
		enum bulk_col col = COL_NONE;

		norm(b->fields[i], n, sizeof(n));
		for (size_t k = 0; k < sizeof(col_names) / sizeof(col_names[0]); k++)
			if (!strcmp(n, col_names[k].name))
				col = col_names[k].col;
		if (col == COL_NONE) {
			bulk_line_error(b, b->row_start, "unknown column '%s'", b->fields[i]);
			b->fatal = true;
		}
		for (size_t k = 0; k < i && col != COL_NONE; k++)
			if (b->cols[k] == col) {
				bulk_line_error(b, b->row_start, "column '%s' given twice", b->fields[i]);
				b->fatal = true;
			}
		have_name = have_name || col == COL_NAME;
		b->cols[i] = col;
	}
	if (!have_name && !b->fatal) {
		bulk_line_error(b, b->row_start, "no device name column (the first line names the "
					    "columns)");
		b->fatal = true;
	}
	b->header_done = true;
}

/* One device line: every field checked, every problem of it reported. */
static void device_row(struct bulk *b)
{
	struct bulk_line l;
	unsigned long before = b->errors;
	int v;

	memset(&l, 0, sizeof(l));
	capf__device__init(&l.dev);
	l.lineno = b->row_start;
	l.dev.op = CAPF__OPERATION__OP_INSTALL; /* a new device's, unless the line says */
	if (b->nfields != b->ncols) {
		bulk_line_error(b, l.lineno, "%zu fields where the header has %zu", b->nfields,
			   b->ncols);
		return;
	}
	for (size_t i = 0; i < b->nfields; i++) {
		const char *f = b->fields[i];

		if (*f == '\0' && b->cols[i] != COL_NAME)
			continue;
		if (strlen(f) > BULK_FIELD_MAX) {
			bulk_line_error(b, l.lineno, "field %zu is longer than %u bytes", i + 1,
				   BULK_FIELD_MAX);
			continue;
		}
		switch (b->cols[i]) {
		case COL_NAME:
			if (!device_name_valid(f))
				bulk_line_error(b, l.lineno,
					   "'%s' is not a device name (letters, digits, '-', '_', "
					   "'.'; at most %u)",
					   f, DEVICE_NAME_MAX);
			else
				snprintf(l.name, sizeof(l.name), "%s", f);
			break;
		case COL_OP:
			if (parse_op(f, &v) < 0)
				bulk_line_error(b, l.lineno, "unknown operation '%s'", f);
			l.dev.op = v;
			l.fields |= CAPF__PUT_FIELD__PUT_FIELD_OP;
			break;
		case COL_AUTH:
			if (parse_auth(f, &v) < 0)
				bulk_line_error(b, l.lineno, "unknown authentication mode '%s'", f);
			l.dev.auth = v;
			l.fields |= CAPF__PUT_FIELD__PUT_FIELD_AUTH;
			break;
		case COL_STRING:
			if (!strcmp(f, "generate")) {
				l.generated = true;
			} else if (strlen(f) > AUTH_STRING_MAX) {
				bulk_line_error(b, l.lineno, "the string has more than %u bytes",
					   AUTH_STRING_MAX);
				break;
			} else {
				l.string = strdup(f);
				if (l.string == NULL)
					b->fatal = true;
			}
			l.has_string = true;
			break;
		case COL_ORDER:
			if (parse_order(f, &v) < 0)
				bulk_line_error(b, l.lineno, "unknown key order '%s'", f);
			l.dev.key_order = v;
			l.fields |= CAPF__PUT_FIELD__PUT_FIELD_KEY_ORDER;
			break;
		case COL_RSA:
			if (parse_rsa(f, &v) < 0)
				bulk_line_error(b, l.lineno, "unknown RSA key size '%s' (2048, 3072, 4096)",
					   f);
			l.dev.key_type = v;
			l.fields |= CAPF__PUT_FIELD__PUT_FIELD_KEY_TYPE;
			break;
		case COL_EC:
			if (parse_ec(f, &v) < 0)
				bulk_line_error(b, l.lineno, "unknown EC curve '%s' (256, 384, 521)", f);
			l.dev.ec_key_type = v;
			l.fields |= CAPF__PUT_FIELD__PUT_FIELD_EC_KEY_TYPE;
			/* Without an RSA column the curve is also the key of a
			 * device without a key order, as --ec-key/--key do. */
			if (!(l.fields & CAPF__PUT_FIELD__PUT_FIELD_KEY_TYPE))
				l.dev.key_type = v;
			break;
		case COL_DEADLINE:
			if (parse_deadline(f, &l.dev.deadline) < 0)
				bulk_line_error(b, l.lineno,
					   "bad date '%s' (YYYY-MM-DD or YYYY:MM:DD:HH)", f);
			l.fields |= CAPF__PUT_FIELD__PUT_FIELD_DEADLINE;
			break;
		case COL_DAYS: {
			char *end = NULL;
			unsigned long d;

			errno = 0;
			d = strtoul(f, &end, 10);
			if (errno || !isdigit((unsigned char)*f) || *end || d > 36500)
				bulk_line_error(b, l.lineno, "lsc days wants 0..36500, not '%s'", f);
			l.dev.lsc_days = (uint32_t)d;
			l.fields |= CAPF__PUT_FIELD__PUT_FIELD_LSC_DAYS;
			break;
		}
		default:
			break;
		}
	}
	if (l.name[0] == '\0' && b->errors == before)
		bulk_line_error(b, l.lineno, "no device name");
	if (b->errors != before) {
		if (l.string) {
			gnutls_memset(l.string, 0, strlen(l.string));
			free(l.string);
		}
		return;
	}
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 1024;
		struct bulk_line *nl = realloc(b->lines, cap * sizeof(*nl));

		if (nl == NULL) {
			b->fatal = true;
			free(l.string);
			return;
		}
		b->lines = nl;
		b->cap = cap;
	}
	b->lines[b->n++] = l;
}

static void on_row(int term, void *arg)
{
	struct bulk *b = arg;
	(void)term;

	if (!b->fatal) {
		if (b->row_too_wide)
			bulk_line_error(b, b->row_start, "more than %zu fields",
				   sizeof(b->fields) / sizeof(b->fields[0]));
		else if (!b->header_done)
			header_row(b);
		else
			device_row(b);
	}
	for (size_t i = 0; i < b->nfields; i++) {
		gnutls_memset(b->fields[i], 0, strlen(b->fields[i]));
		free(b->fields[i]);
	}
	b->nfields = 0;
	b->row_too_wide = false;
	b->row_start = 0;
}

/*
 * Reads the file line by line, so that every row knows the line it began
 * on (a quoted field may hold line breaks).
 */
int bulk_read(struct bulk *b, FILE *in)
{
	struct csv_parser p;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int ret = 0;

	if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI) != 0) {
		fprintf(err_of(b), "capfctl: out of memory\n");
		return CAPF_ENOMEM;
	}
	while (!b->fatal && (len = getline(&line, &cap, in)) >= 0) {
		const char *s = line;

		b->lineno++;
		/* A UTF-8 byte order mark, as spreadsheets write. */
		if (!b->bom_checked) {
			b->bom_checked = true;
			if (len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) {
				s += 3;
				len -= 3;
			}
		}
		if (csv_parse(&p, s, (size_t)len, on_field, on_row, b) != (size_t)len) {
			bulk_line_error(b, b->lineno, "%s", csv_strerror(csv_error(&p)));
			b->fatal = true;
		}
	}
	if (ferror(in)) {
		fprintf(err_of(b), "capfctl: %s: %s\n", b->file, strerror(errno));
		ret = CAPF_EIO;
	} else if (!b->fatal && csv_fini(&p, on_field, on_row, b) != 0) {
		bulk_line_error(b, b->lineno, "%s (an unclosed quote?)", csv_strerror(csv_error(&p)));
		b->fatal = true;
	}
	if (b->fatal && b->errors == 0) {
		fprintf(err_of(b), "capfctl: out of memory\n");
		ret = CAPF_ENOMEM;
	}
	csv_free(&p);
	free(line);
	if (!b->header_done && !b->fatal && ret == 0) {
		fprintf(err_of(b), "capfctl: %s: empty (the first line names the columns)\n", b->file);
		ret = CAPF_EINVAL;
	}
	return ret;
}

static int line_name_cmp(const void *x, const void *y)
{
	const struct bulk_line *a = *(const struct bulk_line *const *)x;
	const struct bulk_line *b = *(const struct bulk_line *const *)y;
	int c = strcmp(a->name, b->name);

	if (c != 0)
		return c;
	return a->lineno < b->lineno ? -1 : a->lineno > b->lineno;
}

static void line_clear(struct bulk_line *l)
{
	if (l->string) {
		gnutls_memset(l->string, 0, strlen(l->string));
		free(l->string);
		l->string = NULL;
	}
}

/*
 * A device named on two lines is an error on the later one (reported in
 * line order, as the others); found by sorting, so that a file of a
 * million lines is checked in n log n.
 */
int bulk_dups(struct bulk *b)
{
	struct bulk_line **by_name;
	size_t k = 0;

	if (b->n < 2)
		return 0;
	by_name = malloc(b->n * sizeof(*by_name));
	if (by_name == NULL)
		return CAPF_ENOMEM;
	for (size_t i = 0; i < b->n; i++)
		by_name[i] = &b->lines[i];
	qsort(by_name, b->n, sizeof(*by_name), line_name_cmp);
	for (size_t i = 1; i < b->n; i++) {
		if (strcmp(by_name[i]->name, by_name[i - 1]->name) != 0)
			continue;
		/* The first line of the name stays; code holds, for the
		 * others, the line of that first one. */
		by_name[i]->code = by_name[i - 1]->code ? by_name[i - 1]->code
							: (int)by_name[i - 1]->lineno;
	}
	free(by_name);
	for (size_t i = 0; i < b->n; i++) {
		struct bulk_line *l = &b->lines[i];

		if (l->code != 0) {
			bulk_line_error(b, l->lineno, "device %s is on line %d already", l->name,
				   l->code);
			line_clear(l);
			continue;
		}
		b->lines[k++] = *l;
	}
	b->n = k;
	return 0;
}

void bulk_free(struct bulk *b)
{
	for (size_t i = 0; i < b->n; i++) {
		if (b->lines[i].string) {
			gnutls_memset(b->lines[i].string, 0, strlen(b->lines[i].string));
			free(b->lines[i].string);
		}
		gnutls_memset(b->lines[i].hash, 0, sizeof(b->lines[i].hash));
	}
	free(b->lines);
}
