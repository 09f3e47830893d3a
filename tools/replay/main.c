/*
 * capf-replay - show recorded phone sessions (tools/replay/show.c), replay
 * them against a server and compare, or replay them as load
 * (tools/replay/load.c). One subcommand per entry of the table in main().
 */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "tools/replay/replay.h"

int replay_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, REPLAY_PROG " %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '" REPLAY_PROG " %s --help'.\n", cmd);
	return REPLAY_EXIT_USAGE;
}

double replay_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int replay_load_all(char **paths, int n, struct transcript *t)
{
	char err[256];
	int ret;

	for (int i = 0; i < n; i++) {
		ret = transcript_load(paths[i], t, err, sizeof(err));
		if (ret < 0) {
			fprintf(stderr, REPLAY_PROG ": %s: %s\n", paths[i], err);
			return ret;
		}
	}
	return 0;
}

/* ---- run -------------------------------------------------------------- */

enum { OPT_RAW = 256, OPT_PACE, OPT_STRICT_TEXT, OPT_LSC_DIR, OPT_TIMEOUT, OPT_CISCO_SERVER };

static void run_usage(FILE *f)
{
	fprintf(f,
		"Usage: " REPLAY_PROG " run FILE... --server HOST:PORT [--cisco-server HOST:PORT]\n"
		"         --ca FILE [--mic-dir DIR | --mic FILE --mic-key FILE] [--lsc-dir DIR]\n"
		"         [--raw] [--pace] [--strict-text] [--timeout SECONDS] [--json]\n"
		"Replay recorded sessions, in order, as the phone: a new TLS session, a new key\n"
		"and CSR (Cisco: the server's new session id, a new key, this run's LSC and its\n"
		"signature) where the recorded one would be refused; compare the server's\n"
		"answers with the recorded ones (Cisco: element by element) and report the\n"
		"first difference of each session.\n"
		"\n"
		"  -s, --server HOST:PORT  the server to replay against\n"
		"      --cisco-server HOST:PORT  its Cisco CAPF listener, for Cisco sessions\n"
		"                          (default --server)\n"
		"  -c, --ca FILE           the CAPF CA certificate(s) to trust (PEM)\n"
		"  -d, --mic-dir DIR       the MIC of device D is DIR/D.pem, its key DIR/D.key\n"
		"  -m, --mic FILE          one MIC for every session (with --mic-key)\n"
		"  -k, --mic-key FILE\n"
		"      --lsc-dir DIR       keep the LSCs the devices get in DIR (D-lsc.pem,\n"
		"                          D-lsc.key), for sessions of later runs that present one\n"
		"      --raw               send every recorded byte as it was (nothing re-created,\n"
		"                          not even the Cisco session id)\n"
		"      --pace              wait the recorded time before each phone message\n"
		"      --strict-text       compare texts without masking serials and times\n"
		"      --timeout SECONDS   wait at most this long for each answer, default 10\n"
		"  -j, --json              one JSON line per session instead of text\n"
		"\n"
		"Exit status: 0 every session the same, 1 a difference or a failure,\n"
		"2 usage or unreadable transcript.\n");
}

int replay_parse_server(const char *arg, char *host, size_t hcap, char *port, size_t pcap)
{
	const char *colon;
	size_t hl;

	if (arg[0] == '[') {
		const char *close = strchr(arg, ']');

		if (!close || close[1] != ':')
			return CAPF_EINVAL;
		hl = (size_t)(close - arg - 1);
		colon = close + 1;
		arg++;
	} else {
		colon = strrchr(arg, ':');
		if (!colon)
			return CAPF_EINVAL;
		hl = (size_t)(colon - arg);
	}
	if (hl == 0 || hl >= hcap || strlen(colon + 1) == 0 || strlen(colon + 1) >= pcap)
		return CAPF_EINVAL;
	memcpy(host, arg, hl);
	host[hl] = '\0';
	strcpy(port, colon + 1);
	for (const char *p = port; *p; p++)
		if (*p < '0' || *p > '9')
			return CAPF_EINVAL;
	return atoi(port) >= 1 && atoi(port) <= 65535 ? 0 : CAPF_EINVAL;
}

static void print_result_json(const struct transcript_session *s, size_t n,
			      const struct replay_result *r)
{
	printf("{\"session\":%zu,\"line\":%u,\"device\":", n, s->line);
	client_json_string(stdout, s->device);
	printf(",\"result\":\"%s\",\"messages\":%zu,\"seconds\":%.6f",
	       r->failed ? "failed" : r->differs ? "differs" : "same", r->nmsgs, r->seconds);
	if (r->differs) {
		printf(",\"index\":%ld,\"type\":", r->index);
		client_json_string(stdout, r->type);
		printf(",\"field\":");
		client_json_string(stdout, r->field);
		printf(",\"recorded\":");
		client_json_string(stdout, r->want);
		printf(",\"got\":");
		client_json_string(stdout, r->got);
	}
	if (r->failed || r->differs) {
		printf(",\"text\":");
		client_json_string(stdout, r->text);
	}
	printf("}\n");
}

int replay_common_finish(const char *cmd, struct replay_common *c, const char *server,
			 const char *cisco_server)
{
	int ret;

	if (!server)
		return replay_usage_error(cmd, "--server HOST:PORT is required");
	if (replay_parse_server(server, c->host, sizeof(c->host), c->port, sizeof(c->port)) < 0)
		return replay_usage_error(cmd, "bad --server '%s' (HOST:PORT)", server);
	if (cisco_server) {
		if (replay_parse_server(cisco_server, c->cisco_host, sizeof(c->cisco_host),
					c->cisco_port, sizeof(c->cisco_port)) < 0)
			return replay_usage_error(cmd, "bad --cisco-server '%s' (HOST:PORT)",
						  cisco_server);
		c->o.cisco_host = c->cisco_host;
		c->o.cisco_port = c->cisco_port;
	}
	if (!c->ca)
		return replay_usage_error(cmd, "--ca is required");
	if (!c->o.mic != !c->o.mic_key)
		return replay_usage_error(cmd, "--mic and --mic-key go together");
	if (c->o.mic && c->o.mic_dir)
		return replay_usage_error(cmd, "--mic excludes --mic-dir");
	ret = client_trust_load(c->ca, &c->trust);
	if (ret < 0) {
		fprintf(stderr, REPLAY_PROG " %s: cannot read the CA %s: %s\n", cmd, c->ca,
			capf_strerror(ret));
		return REPLAY_EXIT_USAGE;
	}
	c->o.host = c->host;
	c->o.port = c->port;
	c->o.trust = &c->trust;
	c->o.timeout_ms = (unsigned)c->timeout * 1000u;
	return 0;
}

int replay_cmd_run(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "cisco-server", required_argument, NULL, OPT_CISCO_SERVER },
		{ "ca", required_argument, NULL, 'c' },
		{ "mic-dir", required_argument, NULL, 'd' },
		{ "mic", required_argument, NULL, 'm' },
		{ "mic-key", required_argument, NULL, 'k' },
		{ "lsc-dir", required_argument, NULL, OPT_LSC_DIR },
		{ "raw", no_argument, NULL, OPT_RAW },
		{ "pace", no_argument, NULL, OPT_PACE },
		{ "strict-text", no_argument, NULL, OPT_STRICT_TEXT },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct replay_common c;
	struct transcript t = { NULL, 0 };
	struct replay_state *st = NULL;
	const char *server = NULL, *cisco_server = NULL;
	size_t same = 0, differ = 0, failed = 0;
	int json = 0, status = REPLAY_EXIT_USAGE, ch, ret;
	char *end;

	memset(&c, 0, sizeof(c));
	c.timeout = 10;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "s:c:d:m:k:jh", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			server = optarg;
			break;
		case OPT_CISCO_SERVER:
			cisco_server = optarg;
			break;
		case 'c':
			c.ca = optarg;
			break;
		case 'd':
			c.o.mic_dir = optarg;
			break;
		case 'm':
			c.o.mic = optarg;
			break;
		case 'k':
			c.o.mic_key = optarg;
			break;
		case OPT_RAW:
			c.o.raw = true;
			break;
		case OPT_LSC_DIR:
			c.o.lsc_dir = optarg;
			break;
		case OPT_PACE:
			c.o.pace = true;
			break;
		case OPT_STRICT_TEXT:
			c.o.strict_text = true;
			break;
		case OPT_TIMEOUT:
			c.timeout = strtoul(optarg, &end, 10);
			if (*end || c.timeout < 1 || c.timeout > 3600)
				return replay_usage_error("run", "--timeout wants 1..3600 seconds");
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			run_usage(stdout);
			return REPLAY_EXIT_SAME;
		default:
			return replay_usage_error("run", "bad option");
		}
	}
	if (optind >= argc)
		return replay_usage_error("run", "a transcript file is required");
	ret = replay_common_finish("run", &c, server, cisco_server);
	if (ret)
		return ret;
	if (replay_load_all(argv + optind, argc - optind, &t) < 0)
		goto out;
	st = replay_state_new();
	if (!st) {
		fprintf(stderr, REPLAY_PROG " run: out of memory\n");
		goto out;
	}
	for (size_t i = 0; i < t.n; i++) {
		const struct transcript_session *s = &t.sessions[i];
		struct replay_result r;

		(void)replay_session(&c.o, s, st, &r);
		if (json)
			print_result_json(s, i + 1, &r);
		else if (r.failed || r.differs)
			printf("session %zu (line %u, %s): %s: %s\n", i + 1, s->line, s->device,
			       r.failed ? "FAILED" : "DIFFERS", r.text);
		else
			printf("session %zu (line %u, %s): same (%zu messages, %.1f ms)\n", i + 1,
			       s->line, s->device, r.nmsgs, r.seconds * 1e3);
		if (r.failed)
			failed++;
		else if (r.differs)
			differ++;
		else
			same++;
	}
	if (!json)
		printf("sessions: %zu same, %zu differ, %zu failed\n", same, differ, failed);
	status = differ || failed ? REPLAY_EXIT_DIFF : REPLAY_EXIT_SAME;
out:
	replay_state_free(st);
	transcript_free(&t);
	client_trust_deinit(&c.trust);
	return status;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: " REPLAY_PROG " COMMAND [options]\n"
		   "Show, replay and compare recorded phone sessions (capf-phone --record).\n"
		   "\n"
		   "  show FILE...                          print the sessions for people\n"
		   "  run FILE... --server H:P --ca FILE    replay them and compare the answers\n"
		   "  load FILE... --server H:P --ca FILE   replay them as load\n"
		   "\n"
		   "'" REPLAY_PROG " COMMAND --help' says more; see capf-replay(1).\n");
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int argc, char **argv);
	} cmds[] = {
		{ "show", replay_cmd_show },
		{ "run", replay_cmd_run },
		{ "load", replay_cmd_load },
	};
	int status;

	if (argc < 2) {
		usage(stderr);
		return REPLAY_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return REPLAY_EXIT_SAME;
	}
	/* A server that closes before a message of the phone is sent is a
	 * send error (then what it said is compared), not the end of us. */
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name))
			continue;
		if (gnutls_global_init() < 0) {
			fprintf(stderr, REPLAY_PROG ": cannot initialise GnuTLS\n");
			return REPLAY_EXIT_USAGE;
		}
		status = cmds[i].fn(argc - 1, argv + 1);
		gnutls_global_deinit();
		return status;
	}
	fprintf(stderr, REPLAY_PROG ": unknown command '%s'\n", argv[1]);
	usage(stderr);
	return REPLAY_EXIT_USAGE;
}
