/*
 * capfd - the CAPF server. Parses the command line and the config file,
 * starts the server and runs the main loop until a signal stops it.
 */
#include "config.h"

#include "paths.h"

#include <getopt.h>
#include <gnutls/gnutls.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAVE_TCMALLOC
#include <gperftools/tcmalloc.h>
#endif
#include <sys/resource.h>
#include <unistd.h>

#include "capf/capfd.h"
#include "capf/log.h"
#include "capf/signer.h"

/* The allocator capfd runs on, for --version. */
static void print_allocator(void)
{
#ifdef HAVE_TCMALLOC
	const char *v = tc_version(NULL, NULL, NULL);

	printf("allocator: tcmalloc (%s)\n", v != NULL ? v : "gperftools");
#else
	printf("allocator: the C library's malloc\n");
#endif
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: capfd [options]\n"
		"\n"
		"The CAPF server: issues Locally Significant Certificates to IP phones.\n"
		"Runs in the foreground; stop it with SIGINT or SIGTERM.\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE       read FILE (INI, see capfd.conf(5))\n"
		"  -d, --state-dir DIR     state directory (default %s/lib/capf)\n"
		"  -l, --listen ADDR       address to listen on (default 127.0.0.1)\n"
		"  -p, --port PORT         phone port (default 3804; 0 picks a free one)\n"
		"  -w, --workers N         worker threads (default: one per core)\n"
		"  -s, --admin-socket PATH admin socket (default STATE_DIR/capfd.sock)\n"
		"  -m, --mfg-roots FILE    manufacturer root certificates (PEM)\n"
		"  -r, --ready-file FILE   write pid, port and socket to FILE when ready\n"
		"  -v, --verbose           log debug messages\n"
		"      --check-config      check the configuration, create nothing, exit\n"
		"  -V, --version           print the version and exit\n"
		"  -h, --help              print this help and exit\n",
		LOCALSTATEDIR);
}

/*
 * Each phone connection is a descriptor: under an open-files limit below
 * max_connections, capfd takes at most what the limit leaves room for
 * (server.nofile_connections) and refuses the rest at once. Say so at
 * start. capfd does not raise the limit itself (capfd(8)).
 */
static void check_nofile(unsigned max_connections)
{
	unsigned n = capfd_nofile_connections();

	if (n >= max_connections)
		return;
	log_warn("the open-files limit (%llu) is below [limits] max_connections (%u) plus %u: "
		 "capfd takes at most %u phone connections and refuses more at once; raise "
		 "the limit (LimitNOFILE=) or lower max_connections",
		 (unsigned long long)n + CAPFD_NOFILE_RESERVE, max_connections,
		 CAPFD_NOFILE_RESERVE, n);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "state-dir", required_argument, NULL, 'd' },
		{ "listen", required_argument, NULL, 'l' },
		{ "port", required_argument, NULL, 'p' },
		{ "workers", required_argument, NULL, 'w' },
		{ "admin-socket", required_argument, NULL, 's' },
		{ "mfg-roots", required_argument, NULL, 'm' },
		{ "ready-file", required_argument, NULL, 'r' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ "check-config", no_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 },
	};
	/* Command-line values override the file: collect them first. */
	struct {
		const char *section, *name, *value;
	} overrides[16];
	size_t noverrides = 0;
	const char *config_path = NULL;
	bool verbose = false, check_only = false;
	struct capfd_config cfg;
	struct server srv;
	uv_loop_t loop;
	char err[512];
	int opt, ret, status = EXIT_FAILURE;

	/* Not an option people use: capfd starts itself this way as its
	 * signer process (capf/signer_sup.c). */
	if (argc == 2 && strcmp(argv[1], "--signer") == 0)
		return signer_main();
	while ((opt = getopt_long(argc, argv, "c:d:l:p:w:s:m:r:vVh", longopts, NULL)) != -1) {
		const char *name = NULL, *section = "server";
		switch (opt) {
		case 'c':
			config_path = optarg;
			continue;
		case 'd':
			name = "state_dir";
			break;
		case 'l':
			name = "listen";
			break;
		case 'p':
			name = "port";
			break;
		case 'w':
			name = "workers";
			break;
		case 's':
			name = "admin_socket";
			break;
		case 'm':
			section = "trust";
			name = "manufacturer_roots";
			break;
		case 'r':
			name = "ready_file";
			break;
		case 'v':
			verbose = true;
			continue;
		case 'C':
			check_only = true;
			continue;
		case 'V':
			printf("capfd %s\n", PACKAGE_VERSION);
			print_allocator();
			return EXIT_SUCCESS;
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		default:
			usage(stderr);
			return 2;
		}
		if (noverrides == sizeof(overrides) / sizeof(overrides[0])) {
			fprintf(stderr, "capfd: too many options\n");
			return 2;
		}
		overrides[noverrides].section = section;
		overrides[noverrides].name = name;
		overrides[noverrides].value = optarg;
		noverrides++;
	}
	if (optind < argc) {
		fprintf(stderr, "capfd: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	config_defaults(&cfg);
	ret = 0;
	if (config_path != NULL && config_load(&cfg, config_path) < 0)
		ret = CAPF_ECONFIG; /* reported; the others are checked too */
	for (size_t i = 0; i < noverrides; i++) {
		if (config_set(&cfg, overrides[i].section, overrides[i].name, overrides[i].value, err,
			       sizeof(err)) < 0) {
			fprintf(stderr, "capfd: command line: %s\n", err);
			ret = CAPF_ECONFIG;
		}
	}
	for (size_t i = 0; i < noverrides; i++) {
		cfg.cli[i][0] = overrides[i].section;
		cfg.cli[i][1] = overrides[i].name;
		cfg.cli[i][2] = overrides[i].value;
	}
	cfg.ncli = noverrides;
	cfg.verbose = verbose;
	if (verbose)
		cfg.log_level = LOG_LVL_DEBUG;
	if (config_finish(&cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "capfd: %s\n", err);
		ret = CAPF_ECONFIG;
	}
	/* Before any state exists: a bad value must not leave a CA behind.
	 * Every problem of the file is reported at once. */
	if (config_check(&cfg) < 0 || ret < 0)
		goto out_cfg;
	if (check_only) {
		printf("capfd: %s: the configuration is valid\n",
		       config_path != NULL ? config_path : "(no file)");
		status = EXIT_SUCCESS;
		goto out_cfg;
	}
	log_init((enum log_level)cfg.log_level, cfg.log_syslog);
	check_nofile(cfg.max_connections);
	if (getenv("UV_THREADPOOL_SIZE") == NULL) {
		/* Authentication strings are checked on libuv's threadpool
		 * (PBKDF2 costs tens of milliseconds on purpose): four
		 * threads per worker, so that a burst of them stalls a few
		 * phones, not all of them. */
		long cores = sysconf(_SC_NPROCESSORS_ONLN);
		unsigned n = cfg.workers != 0 ? cfg.workers : cores > 0 ? (unsigned)cores : 1;
		char v[16];

		snprintf(v, sizeof(v), "%u", n * 4 < 4 ? 4 : n * 4 > 128 ? 128 : n * 4);
		setenv("UV_THREADPOOL_SIZE", v, 0);
	}

	/* A phone that vanishes mid-write must not kill the server. */
	signal(SIGPIPE, SIG_IGN);
	ret = gnutls_global_init();
	if (ret < 0) {
		log_err("GnuTLS initialisation failed: %s", gnutls_strerror(ret));
		goto out_cfg;
	}

	uv_loop_init(&loop);
	ret = server_start(&srv, &cfg, &loop);
	if (ret == 0) {
		uv_run(&loop, UV_RUN_DEFAULT);
		status = EXIT_SUCCESS;
	} else {
		log_err("capfd not started");
		server_stop(&srv);
		uv_run(&loop, UV_RUN_DEFAULT);
	}
	server_free(&srv);
	if (uv_loop_close(&loop) != 0)
		log_warn("main loop closed with handles left");
	gnutls_global_deinit();
out_cfg:
	config_deinit(&cfg);
	return status;
}
