/*
 * capfctl bulk import: devices from a CSV file with the columns of Cisco's
 * Bulk Administration Tool (device name, operation, authentication mode,
 * authentication string or "generate", key order, key size, EC curve,
 * operation completes by).
 *
 * The whole file is read and checked first, and every bad line reported
 * with its number; nothing is sent while one is bad, unless --continue.
 * Then the devices go to capfd as batches of puts that create or update
 * (capf.DeviceBatch): by default one atomic batch, all or none (a file of
 * more than BULK_TXN lines in parts that the server checks and keeps, the
 * last part writing them all as one store txn); with --continue, batches
 * of BULK_CHUNK puts each applied line by line. Only
 * the columns a line fills are applied, and a put that changes nothing
 * writes nothing, so the same file imported twice changes nothing the
 * second time. A string (given or generated) is set only on a device that
 * has none, unless --replace-strings: the server keeps only a salted hash,
 * so it cannot tell whether a string is the one it has.
 */
#include "config.h"

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
#include "tools/bulk.h"
#include "tools/client.h"

#define BULK_CHUNK 2000u
/* The lines of one request of an atomic import: far below the admin
 * channel's 16 MiB frame whatever a line holds. */
#define BULK_TXN 16384u
#define GENERATED_DIGITS 12u

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

static int by_name(const void *a, const void *b)
{
	return strcmp((*(struct bulk_line *const *)a)->name, (*(struct bulk_line *const *)b)->name);
}

/* The result r of the line it names (a kept part's, in the answer to the
 * last part of a staged import), found by name. */
static void staged_result(struct bulk *b, struct bulk_line ***sorted,
			  const Capf__BatchResult *r)
{
	struct bulk_line key, *kp = &key, **found;

	if (*sorted == NULL) {
		*sorted = malloc(b->n * sizeof(**sorted));
		if (*sorted == NULL)
			return;
		for (size_t i = 0; i < b->n; i++)
			(*sorted)[i] = &b->lines[i];
		qsort(*sorted, b->n, sizeof(**sorted), by_name);
	}
	snprintf(key.name, sizeof(key.name), "%s", r->name ? r->name : "");
	found = bsearch(&kp, *sorted, b->n, sizeof(**sorted), by_name);
	if (found == NULL)
		return;
	(*found)->code = -(int)r->code;
	(*found)->action = CAPF__BATCH_ACTION__BATCH_FAILED;
	(*found)->generated = false;
	bulk_line_error(b, (*found)->lineno, "%s: %s", capf_errname((int)r->code),
			r->text && *r->text ? r->text : capf_strerror((int)r->code));
}

/* Sends lines [from, to) as one batch (stage: a part the server checks
 * and keeps) and records each result. Returns 0, 1 (the server refused
 * the batch as a whole) or an exit status. */
static int send_batch(struct ctl *c, struct bulk *b, size_t from, size_t to, bool atomic,
		      bool dry_run, bool stage, bool replace)
{
	struct bulk_line **sorted = NULL;
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
	batch.stage = stage;
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
			bulk_line_error(b, l->lineno, "%s: %s", capf_errname((int)r->code),
				   r->text && *r->text ? r->text : capf_strerror((int)r->code));
		/* A string the server did not take is not the device's. */
		if (!r->secret_set)
			l->generated = false;
	}
	for (size_t i = 0; i < resp->n_staged_results; i++)
		staged_result(b, &sorted, resp->staged_results[i]);
	free(sorted);
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
	double started = ctl_now();
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
			if (ctl_set_format(c, opt))
				return CTL_EXIT_USAGE;
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
	if (ret < 0) {
		ret = CTL_EXIT_REFUSED;
		goto out;
	}
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
		/* One atomic batch: a file of more than BULK_TXN lines goes in
		 * parts the server checks and keeps (a dry run: checks only),
		 * the last one writing them all. After a refused part the rest
		 * is still checked, and the last part is kept too, so that
		 * nothing is written and every refused line is named. */
		bool refused = false;

		for (done = 0; done < b.n; done += BULK_TXN) {
			size_t to = done + BULK_TXN < b.n ? done + BULK_TXN : b.n;
			bool stage = !dry && (to < b.n || refused) && b.n > BULK_TXN;

			ret = send_batch(c, &b, done, to, true, dry, stage, replace);
			if (ret > 1)
				goto out;
			refused = refused || ret == 1 || b.errors > 0;
			if (tty && b.n > BULK_TXN)
				ctl_progress(to, b.n, started);
		}
		if (refused) {
			fprintf(stderr, PROG ": %s: refused by the server; nothing imported\n",
				b.file);
			ret = CTL_EXIT_REFUSED;
			goto out;
		}
		ret = 0;
	} else {
		for (done = 0; done < b.n; done += BULK_CHUNK) {
			size_t to = done + BULK_CHUNK < b.n ? done + BULK_CHUNK : b.n;

			ret = send_batch(c, &b, done, to, false, dry, false, replace);
			if (ret > 1)
				goto out;
			if (tty && b.n > BULK_CHUNK)
				ctl_progress(to, b.n, started);
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
