/*
 * capfd --check-config, and the first thing capfd does after reading its
 * configuration: every value that only the libraries can judge (an
 * address, a file of certificates, a GnuTLS priority string, a key type),
 * checked before anything is created, each bad one reported with where it
 * was set. capfd used to find some of them only after it had made its CA.
 */
#include "config.h"

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "capf/capfd.h"
#include "capf/metrics.h"
#include "capf/tls_prio.h"

static int bad(const struct capfd_config *cfg, const char *section, const char *name,
	       const char *what)
{
	fprintf(stderr, "capfd: %s: [%s] %s: %s\n", config_where(cfg, section, name), section, name,
		what);
	return CAPF_ECONFIG;
}

static int check_listen(const struct capfd_config *cfg)
{
	struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *res = NULL;
	char what[300];
	int ret;

	ret = getaddrinfo(cfg->listen, "0", &hints, &res);
	if (ret != 0) {
		snprintf(what, sizeof(what), "\"%s\" is not an address of this host: %s",
			 cfg->listen, gai_strerror(ret));
		return bad(cfg, "server", "listen", what);
	}
	freeaddrinfo(res);
	return 0;
}

/* The roots must be a readable file of at least one certificate. */
static int check_roots(const struct capfd_config *cfg)
{
	gnutls_datum_t data = { NULL, 0 };
	gnutls_x509_crt_t *crts = NULL;
	unsigned n = 0;
	char what[600];
	int ret;

	if (cfg->mfg_roots == NULL)
		return 0;
	ret = gnutls_load_file(cfg->mfg_roots, &data);
	if (ret < 0) {
		snprintf(what, sizeof(what), "cannot read %s", cfg->mfg_roots);
		return bad(cfg, "trust", "manufacturer_roots", what);
	}
	ret = gnutls_x509_crt_list_import2(&crts, &n, &data, GNUTLS_X509_FMT_PEM, 0);
	if (ret < 0 || n == 0)
		ret = gnutls_x509_crt_list_import2(&crts, &n, &data, GNUTLS_X509_FMT_DER, 0);
	gnutls_free(data.data);
	if (ret < 0 || n == 0) {
		snprintf(what, sizeof(what), "%s holds no certificate (PEM or DER): %s",
			 cfg->mfg_roots, ret < 0 ? gnutls_strerror(ret) : "empty");
		return bad(cfg, "trust", "manufacturer_roots", what);
	}
	for (unsigned i = 0; i < n; i++)
		gnutls_x509_crt_deinit(crts[i]);
	gnutls_free(crts);
	return 0;
}

/* As capf/server.c reads them: an addition to the defaults, or whole. */
static int check_priority(const struct capfd_config *cfg, const char *section, const char *s)
{
	gnutls_priority_t p = NULL;
	const char *errpos = NULL;
	char what[700];
	int ret;

	if (s == NULL)
		return 0;
	ret = tls_priority_parse(&p, s, &errpos);
	if (ret < 0) {
		snprintf(what, sizeof(what), "invalid GnuTLS priority string near \"%.200s\": %s",
			 errpos != NULL ? errpos : "", gnutls_strerror(ret));
		return bad(cfg, section, "priority", what);
	}
	gnutls_priority_deinit(p);
	return 0;
}

static int check_key_type(const struct capfd_config *cfg)
{
	int kt;

	if (cfg->ca_key_type == NULL)
		return 0;
	if (key_type_from_name(cfg->ca_key_type, &kt) < 0 || kt == 0)
		return bad(cfg, "ca", "key_type",
			   "must be ec-p256, ec-p384, ec-p521, rsa-2048, rsa-3072 or rsa-4096");
	return 0;
}

/* The state directory need not exist (capfd makes it), but what holds it
 * must, or nothing can be created. */
static int check_state_dir(const struct capfd_config *cfg)
{
	struct stat sb;
	char parent[4096], what[4200], *slash;

	if (stat(cfg->state_dir, &sb) == 0) {
		if (!S_ISDIR(sb.st_mode)) {
			snprintf(what, sizeof(what), "%s exists and is not a directory",
				 cfg->state_dir);
			return bad(cfg, "server", "state_dir", what);
		}
		return 0;
	}
	snprintf(parent, sizeof(parent), "%s", cfg->state_dir);
	slash = strrchr(parent, '/');
	if (slash == NULL)
		return 0;
	if (slash == parent)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (stat(parent, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		snprintf(what, sizeof(what), "%s does not exist and %s is not a directory to make it in",
			 cfg->state_dir, parent);
		return bad(cfg, "server", "state_dir", what);
	}
	return 0;
}

int config_check(const struct capfd_config *cfg)
{
	int ret = 0;

	/* Each check reports its own problem; all of them run. */
	ret |= check_listen(cfg);
	ret |= check_roots(cfg);
	ret |= check_priority(cfg, "tls", cfg->tls_priority);
	if (cfg->cisco_enabled)
		ret |= check_priority(cfg, "cisco", cfg->cisco_priority);
	ret |= check_key_type(cfg);
	ret |= check_state_dir(cfg);
	if (cfg->metrics_listen != NULL && metrics_check_listen(cfg->metrics_listen) < 0)
		ret |= bad(cfg, "metrics", "listen", "must be PORT, ADDRESS:PORT or [ADDRESS]:PORT");
	return ret != 0 ? CAPF_ECONFIG : 0;
}
