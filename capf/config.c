/*
 * capfd.conf: an INI file (libinih) mapped onto struct capfd_config by one
 * table, so that the parser, the command line and the man page agree on
 * the same names.
 */
#include "config.h"

#include "paths.h"

#include <ini.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "capf/capfd.h"
#include "capf/log.h"

enum opt_type { OPT_STR, OPT_UINT, OPT_SECONDS, OPT_MODE, OPT_BOOL, OPT_LEVEL };

struct opt {
	const char *section;
	const char *name;
	enum opt_type type;
	size_t offset;
	unsigned min, max; /* for numbers */
	/* What SIGHUP does when it changed (capf/reload.c), and a phrase
	 * for its log line: who uses the new value, or why it waits for a
	 * restart. The restart ones are listed in capfd.conf(5), RELOADING
	 * (tests/reload_doc.sh compares the two). */
	enum config_reload reload;
	const char *why;
};

#define O(f) offsetof(struct capfd_config, f)
#define LIVE(why) CONFIG_LIVE, why
#define MAIN(how) how, NULL
#define RESTART(why) CONFIG_RESTART, why

static const struct opt options[] = {
	{ "server", "state_dir", OPT_STR, O(state_dir), 0, 0,
	  RESTART("the store, its lock and the CA are opened in it at start") },
	{ "server", "listen", OPT_STR, O(listen), 0, 0,
	  RESTART("each worker binds its listening socket at start") },
	{ "server", "port", OPT_UINT, O(port), 0, 65535,
	  RESTART("each worker binds its listening socket at start") },
	{ "server", "workers", OPT_UINT, O(workers), 0, 256,
	  RESTART("the worker threads and their loops are made at start") },
	{ "server", "admin_socket", OPT_STR, O(admin_socket), 0, 0,
	  RESTART("the admin socket is bound at start") },
	{ "server", "admin_mode", OPT_MODE, O(admin_mode), 0, 0,
	  RESTART("the admin socket gets its mode when it is bound, at start") },
	{ "server", "ready_file", OPT_STR, O(ready_file), 0, 0,
	  RESTART("it is written once, when capfd is ready, and removed at exit") },
	{ "admin", "admin_users", OPT_STR, O(admin_users), 0, 0, MAIN(CONFIG_ROLES) },
	{ "admin", "admin_group", OPT_STR, O(admin_group), 0, 0, MAIN(CONFIG_ROLES) },
	{ "admin", "readonly_users", OPT_STR, O(readonly_users), 0, 0, MAIN(CONFIG_ROLES) },
	{ "admin", "readonly_group", OPT_STR, O(readonly_group), 0, 0, MAIN(CONFIG_ROLES) },
	{ "metrics", "listen", OPT_STR, O(metrics_listen), 0, 0, MAIN(CONFIG_METRICS) },
	{ "tls", "priority", OPT_STR, O(tls_priority), 0, 0, MAIN(CONFIG_TLS) },
	{ "cisco", "enabled", OPT_BOOL, O(cisco_enabled), 0, 0,
	  RESTART("the Cisco listeners are bound at start") },
	{ "cisco", "port", OPT_UINT, O(cisco_port), 0, 65535,
	  RESTART("the Cisco listeners are bound at start") },
	{ "cisco", "priority", OPT_STR, O(cisco_priority), 0, 0, MAIN(CONFIG_TLS) },
	{ "cisco", "max_in_progress", OPT_UINT, O(cisco_max_in_progress), 1, 10000,
	  LIVE("new sessions use it") },
	{ "ca", "subject", OPT_STR, O(ca_subject), 0, 0,
	  RESTART("the CA is opened with it at start") },
	{ "ca", "ca_days", OPT_UINT, O(ca_days), 1, 36500,
	  RESTART("the CA is opened with it at start") },
	{ "ca", "lsc_days", OPT_UINT, O(lsc_days), 1, 36500,
	  RESTART("the CA is opened with it at start") },
	{ "ca", "supersede_grace", OPT_UINT, O(supersede_grace), 0, 31536000,
	  LIVE("new sessions use it, and the sweep of superseded LSCs follows") },
	{ "ca", "renew_window", OPT_UINT, O(renew_window), 0, 99, LIVE("new sessions use it") },
	{ "auth", "allow_null_string", OPT_BOOL, O(allow_null_string), 0, 0,
	  LIVE("new sessions use it") },
	{ "auth", "max_failures", OPT_UINT, O(max_auth_failures), 1, 1000,
	  LIVE("new sessions use it") },
	{ "auth", "lockout", OPT_UINT, O(lockout_seconds), 1, 86400, LIVE("new sessions use it") },
	{ "ca", "key", OPT_STR, O(ca_key), 0, 0, RESTART("the signer opens the CA key at start") },
	{ "ca", "key_type", OPT_STR, O(ca_key_type), 0, 0,
	  RESTART("the CA is opened with it at start") },
	{ "ca", "overlap_days", OPT_UINT, O(ca_overlap_days), 1, 36500,
	  RESTART("the CA is opened with it at start") },
	{ "ca", "crl_days", OPT_UINT, O(crl_days), 1, 3650,
	  RESTART("the CA is opened with it at start") },
	{ "ca", "crl_refresh", OPT_SECONDS, O(crl_refresh_ms), 1, 604800,
	  LIVE("the CRL timer is set again") },
	{ "trust", "manufacturer_roots", OPT_STR, O(mfg_roots), 0, 0, MAIN(CONFIG_TRUST) },
	{ "trust", "mic_patterns", OPT_STR, O(mic_patterns), 0, 0, MAIN(CONFIG_TRUST) },
	{ "limits", "handshake_timeout", OPT_SECONDS, O(handshake_timeout_ms), 1, 3600,
	  LIVE("new sessions use it") },
	{ "limits", "idle_timeout", OPT_SECONDS, O(idle_timeout_ms), 1, 3600,
	  LIVE("new sessions use it") },
	{ "limits", "session_timeout", OPT_SECONDS, O(session_timeout_ms), 1, 86400,
	  LIVE("new sessions use it") },
	{ "limits", "shutdown_timeout", OPT_SECONDS, O(shutdown_timeout_ms), 0, 3600,
	  LIVE("new sessions use it") },
	{ "limits", "max_connections", OPT_UINT, O(max_connections), 1, 1000000,
	  LIVE("new sessions use it") },
	{ "limits", "max_per_source", OPT_UINT, O(max_per_source), 1, 1000000,
	  LIVE("new sessions use it") },
	{ "limits", "max_frame", OPT_UINT, O(max_frame), 1024, FRAME_MAX_LIMIT,
	  LIVE("new sessions use it") },
	{ "limits", "max_messages", OPT_UINT, O(max_messages), 4, 100000,
	  LIVE("new sessions use it") },
	{ "log", "level", OPT_LEVEL, O(log_level), 0, 0, MAIN(CONFIG_LOG_LEVEL) },
	{ "log", "syslog", OPT_BOOL, O(log_syslog), 0, 0,
	  RESTART("the log is opened at start, and the signer process gets it when it starts") },
	{ "store", "compact_size", OPT_UINT, O(store_compact_mb), 1, 1048576,
	  RESTART("the store is opened with it at start") },
	{ "store", "queue", OPT_UINT, O(store_queue), 16, 1048576,
	  RESTART("the store is opened with it at start") },
	{ "store", "audit_file_size", OPT_UINT, O(store_audit_file_mb), 1, 4096,
	  RESTART("the store is opened with it at start") },
	{ "store", "audit_aggregate", OPT_UINT, O(store_audit_aggregate_s), 1, 86400,
	  RESTART("the store is opened with it at start") },
	{ "testing", "fault_injection", OPT_BOOL, O(fault_injection), 0, 0,
	  RESTART("it goes with signer_delay_ms, which the signer process gets when it starts") },
	{ "testing", "signer_delay_ms", OPT_UINT, O(signer_delay_ms), 0, 600000,
	  RESTART("the signer process gets it when it starts") },
	{ "signer", "queue", OPT_UINT, O(signer_queue), 1, 100000,
	  RESTART("each worker opens its channel to the signer with it at start") },
	{ "signer", "timeout_ms", OPT_UINT, O(signer_timeout_ms), 100, 600000,
	  RESTART("each worker opens its channel to the signer with it at start") },
	{ "signer", "socket", OPT_STR, O(signer_socket), 0, 0,
	  RESTART("the signer listens on it from start") },
};

#undef O
#undef LIVE
#undef MAIN
#undef RESTART

void config_defaults(struct capfd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->state_dir = strdup(LOCALSTATEDIR "/lib/capf");
	cfg->listen = strdup("127.0.0.1");
	cfg->port = CAPFD_DEFAULT_PORT;
	cfg->admin_mode = 0600;
	cfg->tls_priority = strdup(CAPFD_DEFAULT_PRIORITY);
	cfg->ca_days = 3650;
	cfg->lsc_days = 365;
	cfg->ca_overlap_days = 30;
	cfg->crl_days = 7;
	cfg->crl_refresh_ms = 86400u * 1000u;
	cfg->max_auth_failures = 5;
	cfg->cisco_max_in_progress = 32;
	cfg->cisco_port = 3804;
	cfg->lockout_seconds = 60;
	cfg->handshake_timeout_ms = 10000;
	cfg->idle_timeout_ms = 30000;
	cfg->session_timeout_ms = 120000;
	cfg->shutdown_timeout_ms = 10000;
	cfg->max_connections = 10000;
	cfg->max_per_source = 256;
	cfg->max_frame = FRAME_MAX_DEFAULT;
	cfg->max_messages = 16;
	cfg->log_level = LOG_LVL_INFO;
	cfg->store_compact_mb = 64;
	cfg->store_queue = 16384;
	cfg->store_audit_file_mb = 16;
	cfg->store_audit_aggregate_s = 60;
	cfg->signer_queue = 64;
	cfg->signer_timeout_ms = 5000;
}

static int parse_uint(const char *value, unsigned long *out)
{
	char *end;

	if (*value == '\0' || *value == '-')
		return -1;
	errno = 0;
	*out = strtoul(value, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	return 0;
}

int config_set(struct capfd_config *cfg, const char *section, const char *name,
	       const char *value, char *errbuf, size_t errlen)
{
	const struct opt *o = NULL;
	bool known_section = false;
	unsigned long n;

	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]) && o == NULL; i++) {
		if (strcmp(options[i].section, section) != 0)
			continue;
		known_section = true;
		if (strcmp(options[i].name, name) == 0)
			o = &options[i];
	}
	if (o == NULL) {
		if (known_section)
			snprintf(errbuf, errlen, "unknown option [%s] %s", section, name);
		else
			snprintf(errbuf, errlen, "unknown section [%s] (its option %s)", section,
				 name);
		return CAPF_ECONFIG;
	}

	void *field = (char *)cfg + o->offset;
	switch (o->type) {
	case OPT_STR: {
		char **s = field;
		free(*s);
		*s = value[0] != '\0' ? strdup(value) : NULL;
		if (value[0] != '\0' && *s == NULL) {
			snprintf(errbuf, errlen, "out of memory");
			return CAPF_ENOMEM;
		}
		return 0;
	}
	case OPT_UINT:
	case OPT_SECONDS:
		if (parse_uint(value, &n) < 0 || n < o->min || n > o->max) {
			snprintf(errbuf, errlen, "[%s] %s must be a number from %u to %u, not \"%s\"",
				 section, name, o->min, o->max, value);
			return CAPF_ECONFIG;
		}
		*(unsigned *)field = o->type == OPT_SECONDS ? (unsigned)n * 1000u : (unsigned)n;
		return 0;
	case OPT_MODE:
		if (strcmp(value, "0600") == 0 || strcmp(value, "600") == 0) {
			*(unsigned *)field = 0600;
		} else if (strcmp(value, "0660") == 0 || strcmp(value, "660") == 0) {
			*(unsigned *)field = 0660;
		} else if (strcmp(value, "0666") == 0 || strcmp(value, "666") == 0) {
			/* Any local user connects; the [admin] roles decide. */
			*(unsigned *)field = 0666;
		} else {
			snprintf(errbuf, errlen, "[%s] %s must be 0600, 0660 or 0666, not \"%s\"",
				 section, name, value);
			return CAPF_ECONFIG;
		}
		return 0;
	case OPT_BOOL:
		if (strcasecmp(value, "yes") == 0 || strcasecmp(value, "true") == 0 ||
		    strcmp(value, "1") == 0) {
			*(bool *)field = true;
		} else if (strcasecmp(value, "no") == 0 || strcasecmp(value, "false") == 0 ||
			   strcmp(value, "0") == 0) {
			*(bool *)field = false;
		} else {
			snprintf(errbuf, errlen, "[%s] %s must be yes or no, not \"%s\"", section, name,
				 value);
			return CAPF_ECONFIG;
		}
		return 0;
	case OPT_LEVEL: {
		int lvl = log_level_from_name(value);
		if (lvl < 0) {
			snprintf(errbuf, errlen,
				 "[%s] %s must be error, warning, info or debug, not \"%s\"",
				 section, name, value);
			return CAPF_ECONFIG;
		}
		*(int *)field = lvl;
		return 0;
	}
	}
	return CAPF_ECONFIG;
}

struct load_ctx {
	struct capfd_config *cfg;
	const char *path;
	int error;
	FILE *scan;        /* the file again, to find the line of each option */
	unsigned lineno;   /* lines of it read so far */
	char section[64];  /* the section at that point */
};

static void trim(char *s)
{
	size_t n = strlen(s), k = 0;

	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
	while (s[k] == ' ' || s[k] == '\t')
		k++;
	memmove(s, s + k, n - k + 1);
}

/*
 * The line of the next "name = ..." of section in the file. libinih hands
 * the options over in file order without their lines, so a second reader
 * that moves forward with it finds each one.
 */
static unsigned line_of(struct load_ctx *ctx, const char *section, const char *name)
{
	char line[1024];

	if (ctx->scan == NULL)
		return 0;
	while (fgets(line, sizeof(line), ctx->scan) != NULL) {
		char *eq;

		ctx->lineno++;
		trim(line);
		if (line[0] == '[') {
			char *end = strchr(line, ']');
			if (end != NULL) {
				*end = '\0';
				snprintf(ctx->section, sizeof(ctx->section), "%.63s", line + 1);
				trim(ctx->section);
			}
			continue;
		}
		if (line[0] == '#' || line[0] == ';' || (eq = strpbrk(line, "=:")) == NULL)
			continue;
		*eq = '\0';
		trim(line);
		if (strcmp(ctx->section, section) == 0 && strcmp(line, name) == 0)
			return ctx->lineno;
	}
	return 0;
}

static int option_index(const char *section, const char *name)
{
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
		if (strcmp(options[i].section, section) == 0 && strcmp(options[i].name, name) == 0)
			return (int)i;
	return -1;
}

const char *config_where(const struct capfd_config *cfg, const char *section, const char *name)
{
	static char buf[4200];
	int i = option_index(section, name);

	if (i < 0 || cfg->config_file == NULL || cfg->lines[i] == 0)
		return "the command line or the defaults";
	snprintf(buf, sizeof(buf), "%s:%u", cfg->config_file, cfg->lines[i]);
	return buf;
}

/* Every bad option is reported (the parse goes on), each with its line. */
static int ini_line(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *ctx = user;
	unsigned line = line_of(ctx, section, name);
	int i = option_index(section, name);
	char err[256];

	if (i >= 0 && (size_t)i < sizeof(ctx->cfg->lines) / sizeof(ctx->cfg->lines[0]))
		ctx->cfg->lines[i] = line;
	if (config_set(ctx->cfg, section, name, value, err, sizeof(err)) < 0) {
		if (line != 0)
			fprintf(stderr, "capfd: %s:%u: %s\n", ctx->path, line, err);
		else
			fprintf(stderr, "capfd: %s: %s\n", ctx->path, err);
		ctx->error = CAPF_ECONFIG;
		return 1; /* on to the next line: every error is reported */
	}
	return 1;
}

/*
 * libinih reads a line in a buffer of 200 bytes and takes what does not
 * fit for the next line: an option longer than that (a long priority
 * string) would be cut, its tail read as an option of its own. Each such
 * line is an error of its own, said as such. Returns how many there are.
 */
#define CONFIG_MAX_LINE 199

static unsigned long_lines(FILE *f, const char *path)
{
	unsigned lineno = 0, bad = 0;
	size_t len = 0;
	int ch;

	do {
		ch = getc(f);
		if (ch != '\n' && ch != EOF) {
			len += ch != '\r';
			continue;
		}
		lineno++;
		if (len > CONFIG_MAX_LINE) {
			fprintf(stderr, "capfd: %s:%u: the line is %zu characters long, more than the %u "
				"the configuration reader takes\n", path, lineno, len, CONFIG_MAX_LINE);
			bad++;
		}
		len = 0;
	} while (ch != EOF);
	rewind(f);
	return bad;
}

int config_load(struct capfd_config *cfg, const char *path)
{
	struct load_ctx ctx = { cfg, path, 0, NULL, 0, "" };
	int ret;

	free(cfg->config_file);
	cfg->config_file = strdup(path);
	ctx.scan = fopen(path, "r");
	if (ctx.scan != NULL && long_lines(ctx.scan, path) > 0) {
		fclose(ctx.scan);
		return CAPF_ECONFIG;
	}
	ret = ini_parse(path, ini_line, &ctx);
	if (ctx.scan != NULL)
		fclose(ctx.scan);

	if (ret == -1) {
		fprintf(stderr, "capfd: cannot open config file %s: %s\n", path, strerror(errno));
		return CAPF_ECONFIG;
	}
	if (ret == -2) {
		fprintf(stderr, "capfd: out of memory reading %s\n", path);
		return CAPF_ENOMEM;
	}
	if (ret > 0) {
		if (ctx.error == 0)
			fprintf(stderr, "capfd: %s:%d: syntax error\n", path, ret);
		else
			fprintf(stderr, "capfd: %s:%d: fix the option above\n", path, ret);
		return CAPF_ECONFIG;
	}
	return ctx.error;
}

int config_finish(struct capfd_config *cfg, char *errbuf, size_t errlen)
{
	if (cfg->admin_mode == 0666 && !config_admin_roles(cfg)) {
		snprintf(errbuf, errlen,
			 "[server] admin_mode 0666 lets every local user connect: it needs the "
			 "[admin] roles (admin_users, admin_group, readonly_users, readonly_group)");
		return CAPF_ECONFIG;
	}
	if (cfg->state_dir == NULL) {
		snprintf(errbuf, errlen, "[server] state_dir must be set");
		return CAPF_ECONFIG;
	}
	if (cfg->listen == NULL) {
		snprintf(errbuf, errlen, "[server] listen must be set");
		return CAPF_ECONFIG;
	}
	if (cfg->admin_socket == NULL) {
		size_t len = strlen(cfg->state_dir) + sizeof("/capfd.sock");
		cfg->admin_socket = malloc(len);
		if (cfg->admin_socket == NULL)
			return CAPF_ENOMEM;
		snprintf(cfg->admin_socket, len, "%s/capfd.sock", cfg->state_dir);
	}
	if (strlen(cfg->admin_socket) >= 108) {
		snprintf(errbuf, errlen, "admin socket path %s is too long for a Unix socket",
			 cfg->admin_socket);
		return CAPF_ECONFIG;
	}
	if (cfg->signer_socket == NULL) {
		size_t len = strlen(cfg->state_dir) + sizeof("/signer.sock");
		cfg->signer_socket = malloc(len);
		if (cfg->signer_socket == NULL)
			return CAPF_ENOMEM;
		snprintf(cfg->signer_socket, len, "%s/signer.sock", cfg->state_dir);
	}
	if (strlen(cfg->signer_socket) >= 108) {
		snprintf(errbuf, errlen,
			 "signer socket path %s is too long for a Unix socket; set [signer] socket",
			 cfg->signer_socket);
		return CAPF_ECONFIG;
	}
	/* A test seam slows every signature: never by accident. */
	if (cfg->signer_delay_ms > 0 && !cfg->fault_injection) {
		snprintf(errbuf, errlen,
			 "[testing] signer_delay_ms needs [testing] fault_injection = true");
		return CAPF_ECONFIG;
	}
	if (cfg->tls_priority == NULL)
		cfg->tls_priority = strdup(CAPFD_DEFAULT_PRIORITY);
	if (cfg->cisco_priority == NULL)
		cfg->cisco_priority = strdup(CAPFD_CISCO_PRIORITY);
	if (cfg->cisco_enabled && cfg->cisco_port != 0 && cfg->cisco_port == cfg->port) {
		snprintf(errbuf, errlen, "[cisco] port %u is also the port of capf's own protocol",
			 cfg->cisco_port);
		return CAPF_ECONFIG;
	}
	return 0;
}

void config_diff(const struct capfd_config *a, const struct capfd_config *b,
		 void (*cb)(const char *section, const char *name, void *arg), void *arg)
{
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
		const void *fa = (const char *)a + options[i].offset;
		const void *fb = (const char *)b + options[i].offset;
		bool same;

		switch (options[i].type) {
		case OPT_STR: {
			const char *sa = *(char *const *)fa, *sb = *(char *const *)fb;
			same = (sa == NULL && sb == NULL) || (sa && sb && strcmp(sa, sb) == 0);
			break;
		}
		case OPT_BOOL:
			same = *(const bool *)fa == *(const bool *)fb;
			break;
		case OPT_LEVEL:
			same = *(const int *)fa == *(const int *)fb;
			break;
		default:
			same = *(const unsigned *)fa == *(const unsigned *)fb;
			break;
		}
		if (!same)
			cb(options[i].section, options[i].name, arg);
	}
}

enum config_reload config_reload_of(const char *section, const char *name, const char **why)
{
	int i = option_index(section, name);

	if (why != NULL)
		*why = i >= 0 && options[i].why != NULL ? options[i].why : "";
	return i >= 0 ? options[i].reload : CONFIG_RESTART;
}

bool config_apply_live(struct capfd_config *dst, const struct capfd_config *src,
		       const char *section, const char *name)
{
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
		const struct opt *o = &options[i];
		void *d = (char *)dst + o->offset;
		const void *v = (const char *)src + o->offset;

		if (strcmp(o->section, section) != 0 || strcmp(o->name, name) != 0)
			continue;
		if (o->reload != CONFIG_LIVE)
			return false;
		if (o->type == OPT_BOOL)
			__atomic_store_n((bool *)d, *(const bool *)v, __ATOMIC_RELAXED);
		else
			__atomic_store_n((unsigned *)d, *(const unsigned *)v, __ATOMIC_RELAXED);
		return true;
	}
	return false;
}

bool config_admin_roles(const struct capfd_config *cfg)
{
	return cfg->admin_users || cfg->admin_group || cfg->readonly_users || cfg->readonly_group;
}

void config_deinit(struct capfd_config *cfg)
{
	free(cfg->config_file);
	cfg->config_file = NULL;
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
		if (options[i].type == OPT_STR) {
			char **s = (char **)((char *)cfg + options[i].offset);
			free(*s);
			*s = NULL;
		}
	}
}
