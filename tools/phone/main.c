/*
 * capf-phone - a phone simulator for capfd: makes test MICs, runs one
 * enrollment, or generates load.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>

#include "tools/phone/phone.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " PHONE_PROG " COMMAND [OPTION]...\n"
		"Simulate IP phones talking to capfd.\n"
		"\n"
		"Commands:\n"
		"  mkmic    make a test manufacturer CA and MICs\n"
		"  enroll   run one enrollment and store the LSC\n"
		"  load     enroll many simulated phones at once and report the rates\n"
		"  cisco    run one session of Cisco's CAPF protocol as a Cisco phone\n"
		"\n"
		"Options:\n"
		"  -h, --help     show this help\n"
		"  -V, --version  show the version\n"
		"\n"
		"'" PHONE_PROG " COMMAND --help' describes a command. See capf-phone(1).\n");
}

int phone_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PHONE_PROG " %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '" PHONE_PROG " %s --help'.\n", cmd);
	return PHONE_EXIT_USAGE;
}

int phone_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end = NULL;
	unsigned long v;

	if (!s || *s < '0' || *s > '9')
		return CAPF_EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end != '\0' || v < min || v > max)
		return CAPF_EINVAL;
	*out = v;
	return 0;
}

int phone_parse_port(const char *s)
{
	unsigned long v;

	return phone_parse_uint(s, 1, 65535, &v);
}

double phone_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int phone_mfg_ca_load(const char *dir, struct pki_pair *out)
{
	char crt[PATH_MAX], key[PATH_MAX];

	if ((size_t)snprintf(crt, sizeof(crt), "%s/%s", dir, PHONE_MFG_CA_CERT) >= sizeof(crt) ||
	    (size_t)snprintf(key, sizeof(key), "%s/%s", dir, PHONE_MFG_CA_KEY) >= sizeof(key))
		return CAPF_EINVAL;
	return pki_read_pair(crt, key, out);
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int argc, char **argv);
	} cmds[] = {
		{ "mkmic", phone_cmd_mkmic },
		{ "enroll", phone_cmd_enroll },
		{ "load", phone_cmd_load },
		{ "cisco", phone_cmd_cisco },
	};
	size_t i;
	int ret;

	if (argc < 2) {
		usage(stderr);
		return PHONE_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return PHONE_EXIT_OK;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
		printf(PHONE_PROG " " PACKAGE_VERSION "\n");
		return PHONE_EXIT_OK;
	}
	/* A server that closes while a phone writes (an alert, a restart)
	 * is a failed enrollment to report, not the end of the program. */
	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name) != 0)
			continue;
		if (gnutls_global_init() < 0) {
			fprintf(stderr, PHONE_PROG ": cannot initialise GnuTLS\n");
			return PHONE_EXIT_FAIL;
		}
		ret = cmds[i].fn(argc - 1, argv + 1);
		gnutls_global_deinit();
		return ret;
	}
	fprintf(stderr, PHONE_PROG ": unknown command '%s'\nTry '" PHONE_PROG " --help'.\n",
		argv[1]);
	return PHONE_EXIT_USAGE;
}
