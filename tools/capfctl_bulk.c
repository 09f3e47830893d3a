/*
 * capfctl bulk import: devices from a CSV file with the columns of Cisco's
 * Bulk Administration Tool (device name, operation, authentication mode,
 * authentication string or "generate", key order, key size, EC curve,
 * operation completes by).
 *
 * The whole file is read and checked first, and every bad line reported
 * with its number; nothing is sent while one is bad, unless --continue.
 * Then the devices go to capfd as batches of puts that create or update
 * (capf.DeviceBatch): by default one atomic batch, all or none; with
 * --continue, batches of BULK_CHUNK puts each applied line by line. Only
 * the columns a line fills are applied, and a put that changes nothing
 * writes nothing, so the same file imported twice changes nothing the
 * second time. A string (given or generated) is set only on a device that
 * has none, unless --replace-strings: the server keeps only a salted hash,
 * so it cannot tell whether a string is the one it has.
 */
#include "config.h"

#include <csv.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ca/ca.h"
#include "tools/capfctl.h"
#include "tools/client.h"

#define BULK_CHUNK 2000u
#define GENERATED_DIGITS 12u
#define FIELD_MAX 256u

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
	const char *file;
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

static void norm(const char *in, char *out, size_t len)
{
	size_t k = 0;

	for (; *in && k + 1 < len; in++)
		if (isalnum((unsigned char)*in))
			out[k++] = (char)tolower((unsigned char)*in);
	out[k] = '\0';
}

static void line_error(struct bulk *b, unsigned long lineno, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void line_error(struct bulk *b, unsigned long lineno, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s:%lu: ", b->file, lineno);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
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
			line_error(b, b->row_start, "unknown column '%s'", b->fields[i]);
			b->fatal = true;
		}
		for (size_t k = 0; k < i && col != COL_NONE; k++)
			if (b->cols[k] == col) {
				line_error(b, b->row_start, "column '%s' given twice", b->fields[i]);
				b->fatal = true;
			}
		have_name = have_name || col == COL_NAME;
		b->cols[i] = col;
	}
	if (!have_name && !b->fatal) {
		line_error(b, b->row_start, "no device name column (the first line names the "
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
		line_error(b, l.lineno, "%zu fields where the header has %zu", b->nfields,
			   b->ncols);
		return;
	}
	for (size_t i = 0; i < b->nfields; i++) {
		const char *f = b->fields[i];

		if (*f == '\0' && b->cols[i] != COL_NAME)
			continue;
		if (strlen(f) > FIELD_MAX) {
			line_error(b, l.lineno, "field %zu is longer than %u bytes", i + 1,
				   FIELD_MAX);
			continue;
		}
		switch (b->cols[i]) {
		case COL_NAME:
			if (!device_name_valid(f))
				line_error(b, l.lineno,
					   "'%s' is not a device name (letters, digits, '-', '_', "
					   "'.'; at most %u)",
					   f, DEVICE_NAME_MAX);
			else
				snprintf(l.name, sizeof(l.name), "%s", f);
			break;
		case COL_OP:
			if (parse_op(f, &v) < 0)
				line_error(b, l.lineno, "unknown operation '%s'", f);
			l.dev.op = v;
			l.fields |= CAPF__PUT_FIELD__PUT_FIELD_OP;
			break;
		case COL_AUTH:
			if (parse_auth(f, &v) < 0)
				line_error(b, l.lineno, "unknown authentication mode '%s'", f);
			l.dev.auth = v;
			l.fields |= CAPF__PUT_FIELD__PUT_FIELD_AUTH;
			break;
		case COL_STRING:
			if (!strcmp(f, "generate")) {
				l.generated = true;
			} else if (strlen(f) > AUTH_STRING_MAX) {
				line_error(b, l.lineno, "the string has more than %u bytes",
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
				line_error(b, l.lineno, "unknown key order '%s'", f);
			l.dev.key_order = v;
			l.fields |= CAPF__PUT_FIELD__PUT_FIELD_KEY_ORDER;
			break;
		case COL_RSA:
			if (parse_rsa(f, &v) < 0)
				line_error(b, l.lineno, "unknown RSA key size '%s' (2048, 3072, 4096)",
					   f);
			l.dev.key_type = v;
			l.fields |= CAPF__PUT_FIELD__PUT_FIELD_KEY_TYPE;
			break;
		case COL_EC:
			if (parse_ec(f, &v) < 0)
				line_error(b, l.lineno, "unknown EC curve '%s' (256, 384, 521)", f);
			l.dev.ec_key_type = v;
			l.fields |= CAPF__PUT_FIELD__PUT_FIELD_EC_KEY_TYPE;
			/* Without an RSA column the curve is also the key of a
			 * device without a key order, as --ec-key/--key do. */
			if (!(l.fields & CAPF__PUT_FIELD__PUT_FIELD_KEY_TYPE))
				l.dev.key_type = v;
			break;
		case COL_DEADLINE:
			if (parse_deadline(f, &l.dev.deadline) < 0)
				line_error(b, l.lineno,
					   "bad date '%s' (YYYY-MM-DD or YYYY:MM:DD:HH)", f);
			l.fields |= CAPF__PUT_FIELD__PUT_FIELD_DEADLINE;
			break;
		case COL_DAYS: {
			char *end = NULL;
			unsigned long d;

			errno = 0;
			d = strtoul(f, &end, 10);
			if (errno || !isdigit((unsigned char)*f) || *end || d > 36500)
				line_error(b, l.lineno, "lsc days wants 0..36500, not '%s'", f);
			l.dev.lsc_days = (uint32_t)d;
			l.fields |= CAPF__PUT_FIELD__PUT_FIELD_LSC_DAYS;
			break;
		}
		default:
			break;
		}
	}
	if (l.name[0] == '\0' && b->errors == before)
		line_error(b, l.lineno, "no device name");
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
			line_error(b, b->row_start, "more than %zu fields",
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
 * on (a quoted field may hold line breaks). Returns 0 or an exit status.
 */
static int bulk_read(struct bulk *b, FILE *in)
{
	struct csv_parser p;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int ret = CTL_EXIT_OK;

	if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI) != 0) {
		fprintf(stderr, PROG ": out of memory\n");
		return CTL_EXIT_REFUSED;
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
			line_error(b, b->lineno, "%s", csv_strerror(csv_error(&p)));
			b->fatal = true;
		}
	}
	if (ferror(in)) {
		fprintf(stderr, PROG ": %s: %s\n", b->file, strerror(errno));
		ret = CTL_EXIT_REFUSED;
	} else if (!b->fatal && csv_fini(&p, on_field, on_row, b) != 0) {
		line_error(b, b->lineno, "%s (an unclosed quote?)", csv_strerror(csv_error(&p)));
		b->fatal = true;
	}
	if (b->fatal && b->errors == 0) {
		fprintf(stderr, PROG ": out of memory\n");
		ret = CTL_EXIT_REFUSED;
	}
	csv_free(&p);
	free(line);
	if (!b->header_done && !b->fatal && ret == 0) {
		fprintf(stderr, PROG ": %s: empty (the first line names the columns)\n", b->file);
		ret = CTL_EXIT_REFUSED;
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
static int bulk_dups(struct bulk *b)
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
			line_error(b, l->lineno, "device %s is on line %d already", l->name,
				   l->code);
			line_clear(l);
			continue;
		}
		b->lines[k++] = *l;
	}
	b->n = k;
	return 0;
}

static void bulk_free(struct bulk *b)
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

/* The salted hash of a line's string (made now, if it is to be generated). */
static int line_secret(struct bulk_line *l)
{
	int ret;

	if (l->generated) {
		l->string = malloc(GENERATED_DIGITS + 1);
		if (l->string == NULL)
			return CAPF_ENOMEM;
		ret = ca_secret_generate(l->string, GENERATED_DIGITS);
		if (ret < 0)
			return ret;
	}
	ret = ca_secret_new((const uint8_t *)l->string, strlen(l->string), CA_SECRET_ITERATIONS,
			    l->salt, l->hash);
	if (ret < 0)
		return ret;
	capf__auth_secret__init(&l->secret);
	l->secret.salt.data = l->salt;
	l->secret.salt.len = CA_SECRET_SALT_LEN;
	l->secret.hash.data = l->hash;
	l->secret.hash.len = CA_SECRET_HASH_LEN;
	l->secret.iterations = CA_SECRET_ITERATIONS;
	l->dev.auth_secret = &l->secret;
	return 0;
}

/* A progress bar with rate and ETA, on a terminal only. */
static void progress(size_t done, size_t total, double started)
{
	struct timespec ts;
	double now, rate, eta;
	unsigned width = 30, fill = (unsigned)(total ? done * width / total : width);

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	rate = now > started ? (double)done / (now - started) : 0;
	eta = rate > 0 ? (double)(total - done) / rate : 0;
	fputc('\r', stderr);
	fputc('[', stderr);
	for (unsigned i = 0; i < width; i++)
		fputc(i < fill ? '#' : ' ', stderr);
	fprintf(stderr, "] %zu/%zu  %.0f/s  ETA %.0fs ", done, total, rate, eta);
	if (done == total)
		fputc('\n', stderr);
}

static double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sends lines [from, to) as one batch and records each result. Returns 0,
 * 1 (the server refused the batch as a whole) or an exit status. */
static int send_batch(struct ctl *c, struct bulk *b, size_t from, size_t to, bool atomic,
		      bool dry_run, bool replace)
{
	Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
	Capf__DeviceBatch batch = CAPF__DEVICE_BATCH__INIT;
	Capf__DevicePut *puts, **ptrs;
	Capf__AdminResponse *resp = NULL;
	size_t n = to - from;
	int ret;

	puts = calloc(n, sizeof(*puts));
	ptrs = calloc(n, sizeof(*ptrs));
	if (puts == NULL || ptrs == NULL) {
		free(puts);
		free(ptrs);
		fprintf(stderr, PROG ": out of memory\n");
		return CTL_EXIT_REFUSED;
	}
	for (size_t i = 0; i < n; i++) {
		struct bulk_line *l = &b->lines[from + i];

		l->dev.name = l->name;
		capf__device_put__init(&puts[i]);
		puts[i].device = &l->dev;
		puts[i].upsert = true;
		/* A line with only a name creates the device or leaves it. */
		puts[i].fields = l->fields ? l->fields : CAPF__PUT_FIELD__PUT_FIELD_NONE;
		if (l->dev.auth_secret != NULL) {
			puts[i].set_secret = true;
			puts[i].secret_if_none = !replace;
		}
		ptrs[i] = &puts[i];
	}
	batch.n_puts = n;
	batch.puts = ptrs;
	batch.atomic = atomic;
	batch.dry_run = dry_run;
	req.body_case = CAPF__ADMIN_REQUEST__BODY_DEVICE_BATCH;
	req.device_batch = &batch;
	ret = ctl_call(c, &req, &resp);
	free(puts);
	free(ptrs);
	if (ret)
		return ret;
	if (resp->n_results != n) {
		if (resp->code)
			report_refusal(resp, NULL);
		else
			fprintf(stderr, PROG ": the server answered %zu of %zu lines\n",
				resp->n_results, n);
		capf__admin_response__free_unpacked(resp, NULL);
		return CTL_EXIT_REFUSED;
	}
	for (size_t i = 0; i < n; i++) {
		struct bulk_line *l = &b->lines[from + i];
		const Capf__BatchResult *r = resp->results[i];

		l->code = -(int)r->code;
		l->action = r->action;
		if (r->code)
			line_error(b, l->lineno, "%s: %s", capf_errname((int)r->code),
				   r->text && *r->text ? r->text : capf_strerror((int)r->code));
		/* A string the server did not take is not the device's. */
		if (!r->secret_set)
			l->generated = false;
	}
	ret = resp->code ? 1 : 0;
	capf__admin_response__free_unpacked(resp, NULL);
	return ret;
}

static void usage_bulk(FILE *f)
{
	fprintf(f, "Usage: " PROG " bulk import FILE|- [--continue] [--dry-run]\n"
		   "                   [--strings-out FILE] [--replace-strings]\n"
		   "Add or update devices from a CSV file (- for standard input). The first\n"
		   "line names the columns, in any order (case, blanks and punctuation do not\n"
		   "matter):\n"
		   "  device name              required\n"
		   "  operation                install (upgrade), delete, fetch (troubleshoot), none\n"
		   "  authentication mode      mic, string, null, lsc-or-mic, mic-or-lsc, or the\n"
		   "                           Tool's 'By Authentication String', ...\n"
		   "  authentication string    the string, or 'generate'\n"
		   "  key order                rsa-only, ec-only, ec-preferred\n"
		   "  key size                 2048, 3072, 4096\n"
		   "  ec key size (curve)      256, 384, 521\n"
		   "  operation completes by   YYYY-MM-DD or YYYY:MM:DD:HH (UTC)\n"
		   "  lsc days                 0..36500\n"
		   "An empty field leaves that setting as it is (a new device gets the\n"
		   "defaults of device add). The whole file is checked first; a bad line\n"
		   "stops the import before anything changes, and every one is reported.\n"
		   "\n"
		   "      --continue          skip bad lines and apply each good one on its own\n"
		   "                          (default: the whole file, all or none)\n"
		   "      --dry-run           check with the server, change nothing\n"
		   "      --strings-out FILE  write the generated strings there (CSV, mode\n"
		   "                          0600); required when a line says 'generate'\n"
		   "      --replace-strings   set strings on devices that have one too\n"
		   "                          (default: only on those that have none, so that\n"
		   "                          importing a file again changes nothing)\n");
}

static int write_strings(const char *path, int fd, const struct bulk *b)
{
	FILE *f = fdopen(fd, "w");
	int ret = 0;

	if (f == NULL) {
		close(fd);
		return -1;
	}
	fputs("device name,authentication string\n", f);
	for (size_t i = 0; i < b->n; i++) {
		const struct bulk_line *l = &b->lines[i];

		if (!l->generated || l->code != 0 || l->string == NULL)
			continue;
		client_csv_field(f, l->name);
		fputc(',', f);
		client_csv_field(f, l->string);
		fputc('\n', f);
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		ret = -1;
	if (fclose(f) != 0)
		ret = -1;
	if (ret < 0)
		fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
	return ret;
}

static int cmd_bulk_import(struct ctl *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "continue", no_argument, NULL, 'c' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "strings-out", required_argument, NULL, 'S' },
		{ "replace-strings", no_argument, NULL, 'R' },
		CTL_FORMAT_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct bulk b;
	const char *strings_out = NULL;
	bool cont = false, dry = false, replace = false, any_generated = false;
	unsigned long counts[4] = { 0 };
	size_t done = 0;
	FILE *in = NULL;
	int opt, ret, fd = -1;
	double started = mono_now();
	bool tty = isatty(STDERR_FILENO);

	memset(&b, 0, sizeof(b));
	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			cont = true;
			break;
		case 'n':
			dry = true;
			break;
		case 'S':
			strings_out = optarg;
			break;
		case 'R':
			replace = true;
			break;
		case OPT_JSON:
		case OPT_CSV:
			ctl_set_format(c, opt);
			break;
		case 'h':
			usage_bulk(stdout);
			return CTL_EXIT_OK;
		default:
			return ctl_bad_option("bulk import", argv, longopts);
		}
	}
	if (optind + 1 != argc)
		return usage_error("bulk import", "give one FILE (- for standard input)");
	b.file = argv[optind];
	if (!strcmp(b.file, "-")) {
		in = stdin;
		b.file = "<stdin>";
	} else if ((in = fopen(b.file, "r")) == NULL) {
		fprintf(stderr, PROG ": cannot open %s: %s\n", b.file, strerror(errno));
		return CTL_EXIT_REFUSED;
	}
	ret = bulk_read(&b, in);
	if (in != stdin)
		fclose(in);
	if (ret)
		goto out;
	if (!b.fatal && bulk_dups(&b) < 0) {
		fprintf(stderr, PROG ": out of memory\n");
		ret = CTL_EXIT_REFUSED;
		goto out;
	}
	if (b.fatal || (b.errors > 0 && !cont)) {
		fprintf(stderr, PROG ": %s: %lu bad line%s; nothing imported%s\n", b.file, b.errors,
			b.errors == 1 ? "" : "s", b.fatal ? "" : " (--continue skips them)");
		ret = CTL_EXIT_REFUSED;
		goto out;
	}
	for (size_t i = 0; i < b.n; i++)
		any_generated = any_generated || b.lines[i].generated;
	if (any_generated && !strings_out && !dry) {
		ret = usage_error("bulk import",
				  "lines say 'generate': give --strings-out FILE for the strings");
		goto out;
	}
	/* The file for the strings first: a string the devices get but
	 * nobody can read would lock them out. */
	if (any_generated && strings_out && !dry) {
		fd = open(strings_out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0) {
			fprintf(stderr, PROG ": cannot create %s: %s\n", strings_out,
				strerror(errno));
			ret = CTL_EXIT_REFUSED;
			goto out;
		}
	}
	for (size_t i = 0; i < b.n; i++) {
		struct bulk_line *l = &b.lines[i];

		if (!l->has_string)
			continue;
		ret = line_secret(l);
		if (ret < 0) {
			fprintf(stderr, PROG ": cannot make the hash of a string: %s\n",
				capf_strerror(ret));
			ret = CTL_EXIT_REFUSED;
			goto out;
		}
		if (tty && b.n >= 100 && (i % 64 == 0 || i + 1 == b.n))
			fprintf(stderr, "\rhashing strings: %zu/%zu", i + 1, b.n);
	}
	ret = 0;
	if (b.n > 0 && !cont) {
		ret = send_batch(c, &b, 0, b.n, true, dry, replace);
		if (ret == 1) {
			fprintf(stderr, PROG ": %s: refused by the server; nothing imported\n",
				b.file);
			ret = CTL_EXIT_REFUSED;
		}
		if (ret)
			goto out;
	} else {
		for (done = 0; done < b.n; done += BULK_CHUNK) {
			size_t to = done + BULK_CHUNK < b.n ? done + BULK_CHUNK : b.n;

			ret = send_batch(c, &b, done, to, false, dry, replace);
			if (ret > 1)
				goto out;
			if (tty && b.n > BULK_CHUNK)
				progress(to, b.n, started);
		}
		ret = 0;
	}
	for (size_t i = 0; i < b.n; i++)
		if (b.lines[i].code == 0)
			counts[b.lines[i].action]++;
	if (fd >= 0) {
		int w = write_strings(strings_out, fd, &b);

		fd = -1;
		if (w < 0) {
			ret = CTL_EXIT_REFUSED;
			goto out;
		}
	}
	printf("%s: %zu device%s: %lu %s, %lu %s, %lu unchanged, %lu refused\n", b.file, b.n,
	       b.n == 1 ? "" : "s", counts[CAPF__BATCH_ACTION__BATCH_CREATED],
	       dry ? "to add" : "added", counts[CAPF__BATCH_ACTION__BATCH_UPDATED],
	       dry ? "to change" : "changed", counts[CAPF__BATCH_ACTION__BATCH_UNCHANGED],
	       b.errors);
	ret = b.errors ? CTL_EXIT_REFUSED : CTL_EXIT_OK;
out:
	if (fd >= 0)
		close(fd);
	bulk_free(&b);
	return ret;
}

static int cmd_bulk(struct ctl *c, int argc, char **argv)
{
	static const struct ctl_subcommand subs[] = {
		{ "import", cmd_bulk_import },
		{ NULL, NULL },
	};

	return ctl_dispatch(c, argc, argv, "bulk", usage_bulk, subs);
}

const struct ctl_command ctl_bulk_commands[] = {
	{ "bulk", "bulk import FILE.csv  add or update devices from a CSV file", cmd_bulk },
	{ NULL, NULL, NULL },
};
