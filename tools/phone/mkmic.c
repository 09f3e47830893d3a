/*
 * capf-phone mkmic - a test manufacturer CA and MICs signed by it.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca/ca.h"
#include "tools/phone/phone.h"

#define MKMIC_DAYS_DEFAULT 3650ul
#define MKMIC_PREFIX_MAX 64u

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " PHONE_PROG " mkmic --dir DIR [--cn-prefix PREFIX] [--days N] NAME...\n"
		"Make test MICs: DIR/NAME.pem and DIR/NAME.key for each device NAME, signed\n"
		"by the test manufacturer CA DIR/" PHONE_MFG_CA_CERT " (made on first use).\n"
		"\n"
		"  -d, --dir DIR            where the CA and the MICs go (made mode 0700)\n"
		"  -p, --cn-prefix PREFIX   MIC subject CN is PREFIX followed by NAME\n"
		"                           (e.g. \"CP-8865-\"); default none\n"
		"  -n, --days N             validity of the MICs (and of a new CA), default %lu\n"
		"  -h, --help               show this help\n",
		MKMIC_DAYS_DEFAULT);
}

/* Makes dir and its missing parents, mode 0700. */
static int mkdir_p(const char *dir)
{
	char path[PATH_MAX];
	struct stat st;
	size_t i, len = strlen(dir);

	if (len == 0 || len >= sizeof(path))
		return CAPF_EINVAL;
	memcpy(path, dir, len + 1);
	for (i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			return -errno;
		path[i] = dir[i];
	}
	if (stat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	return 0;
}

/* Reuses DIR/mfg-ca.{pem,key}, or makes them when neither exists. */
static int open_mfg_ca(const char *dir, unsigned days, struct pki_pair *ca)
{
	char crt[PATH_MAX], key[PATH_MAX];
	int have_crt, have_key;
	int ret;

	if ((size_t)snprintf(crt, sizeof(crt), "%s/%s", dir, PHONE_MFG_CA_CERT) >= sizeof(crt) ||
	    (size_t)snprintf(key, sizeof(key), "%s/%s", dir, PHONE_MFG_CA_KEY) >= sizeof(key)) {
		fprintf(stderr, PHONE_PROG " mkmic: %s: path too long\n", dir);
		return CAPF_EINVAL;
	}
	have_crt = access(crt, F_OK) == 0;
	have_key = access(key, F_OK) == 0;
	if (have_crt && have_key) {
		ret = pki_read_pair(crt, key, ca);
		if (ret < 0)
			fprintf(stderr, PHONE_PROG " mkmic: cannot read %s and %s: %s\n", crt, key,
				capf_strerror(ret));
		return ret;
	}
	if (have_crt || have_key) {
		fprintf(stderr,
			PHONE_PROG " mkmic: %s exists without %s; remove it or add the missing file\n",
			have_crt ? crt : key, have_crt ? key : crt);
		return CAPF_EEXIST;
	}
	ret = pki_make_root(PHONE_MFG_CA_CN, days, ca);
	if (ret < 0) {
		fprintf(stderr, PHONE_PROG " mkmic: cannot make the manufacturer CA in %s: %s\n", dir,
			capf_strerror(ret));
		return ret;
	}
	ret = pki_write_pair(ca, crt, key);
	if (ret < 0) {
		/* The file writer says which file and why. */
		fprintf(stderr, PHONE_PROG " mkmic: cannot write the manufacturer CA: %s\n",
			ca_last_error());
		return ret;
	}
	fprintf(stderr, PHONE_PROG " mkmic: made test manufacturer CA %s\n", crt);
	return 0;
}

int phone_cmd_mkmic(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "cn-prefix", required_argument, NULL, 'p' },
		{ "days", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct pki_pair ca = { NULL, NULL };
	const char *dir = NULL, *prefix = "";
	unsigned long days = MKMIC_DAYS_DEFAULT;
	char crt[PATH_MAX], key[PATH_MAX], cn[MKMIC_PREFIX_MAX + DEVICE_NAME_MAX + 1];
	int status = PHONE_EXIT_FAIL;
	int c, i, ret;

	optind = 0;
	while ((c = getopt_long(argc, argv, "d:p:n:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'p':
			prefix = optarg;
			if (strlen(prefix) > MKMIC_PREFIX_MAX)
				return phone_usage_error("mkmic", "--cn-prefix is longer than %u",
							 MKMIC_PREFIX_MAX);
			break;
		case 'n':
			if (phone_parse_uint(optarg, 1, 36500, &days) < 0)
				return phone_usage_error("mkmic", "--days wants 1..36500, not '%s'",
							 optarg);
			break;
		case 'h':
			usage(stdout);
			return PHONE_EXIT_OK;
		default:
			return phone_usage_error("mkmic", "bad option");
		}
	}
	if (!dir || !*dir)
		return phone_usage_error("mkmic", "--dir is required");
	if (optind >= argc)
		return phone_usage_error("mkmic", "give at least one device NAME");
	for (i = optind; i < argc; i++)
		if (!device_name_valid(argv[i]))
			return phone_usage_error("mkmic",
						 "'%s' is not a device name (letters, digits, "
						 "'-', '_', '.'; at most %u)",
						 argv[i], DEVICE_NAME_MAX);

	ret = mkdir_p(dir);
	if (ret < 0) {
		fprintf(stderr, PHONE_PROG " mkmic: cannot make directory %s: %s\n", dir,
			strerror(-ret));
		goto out;
	}
	ret = open_mfg_ca(dir, (unsigned)days, &ca);
	if (ret < 0)
		goto out;

	for (i = optind; i < argc; i++) {
		struct pki_pair mic = { NULL, NULL };

		snprintf(cn, sizeof(cn), "%s%s", prefix, argv[i]);
		if ((size_t)snprintf(crt, sizeof(crt), "%s/%s.pem", dir, argv[i]) >= sizeof(crt) ||
		    (size_t)snprintf(key, sizeof(key), "%s/%s.key", dir, argv[i]) >= sizeof(key)) {
			fprintf(stderr, PHONE_PROG " mkmic: %s: path too long\n", dir);
			goto out;
		}
		ret = pki_make_mic(&ca, cn, 0, (unsigned)days, &mic);
		if (ret == 0 && (ret = pki_write_pair(&mic, crt, key)) < 0) {
			fprintf(stderr, PHONE_PROG " mkmic: cannot write the MIC of %s: %s\n",
				argv[i], ca_last_error());
		} else if (ret < 0) {
			fprintf(stderr, PHONE_PROG " mkmic: cannot make the MIC of %s: %s\n",
				argv[i], capf_strerror(ret));
		}
		pki_pair_deinit(&mic);
		if (ret < 0)
			goto out;
		printf("%s: MIC CN=%s, key %s, %lu days\n", crt, cn, key, days);
	}
	status = PHONE_EXIT_OK;
out:
	pki_pair_deinit(&ca);
	return status;
}
