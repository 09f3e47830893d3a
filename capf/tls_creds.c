/*
 * The TLS credentials sessions start with: the CAPF certificate and key
 * (through the signer), the [tls] and [cisco] priorities, reference
 * counted so that a change (CA rollover, trust or priority reload) never
 * pulls them from under a session in flight.
 */
#include "config.h"

#include <stdlib.h>

#include "ca/ca.h"
#include "capf/capfd.h"
#include "capf/log.h"

/* A priority string as an addition to GnuTLS's defaults, or, when it
 * starts with a keyword such as NORMAL, on its own. */
static int priority_make(gnutls_priority_t *out, const char *what, const char *str)
{
	const char *errpos = NULL;
	int ret;

	ret = gnutls_priority_init2(out, str, &errpos, GNUTLS_PRIORITY_INIT_DEF_APPEND);
	if (ret < 0)
		ret = gnutls_priority_init(out, str, &errpos);
	if (ret < 0) {
		*out = NULL;
		log_err("invalid %s \"%s\" near \"%s\": %s", what, str,
			errpos != NULL ? errpos : "", gnutls_strerror(ret));
		return CAPF_ECONFIG;
	}
	return 0;
}

static void creds_free(struct tls_creds *c)
{
	if (c->cred != NULL)
		gnutls_certificate_free_credentials(c->cred);
	if (c->priority != NULL)
		gnutls_priority_deinit(c->priority);
	if (c->cisco_priority != NULL)
		gnutls_priority_deinit(c->cisco_priority);
	free(c);
}

struct tls_creds *server_creds_new(struct server *srv)
{
	struct tls_creds *c = calloc(1, sizeof(*c));
	int ret;

	if (c == NULL)
		return NULL;
	atomic_init(&c->refs, 1);
	ret = gnutls_certificate_allocate_credentials(&c->cred);
	if (ret < 0) {
		log_err("TLS set-up failed: %s", gnutls_strerror(ret));
		c->cred = NULL;
		creds_free(c);
		return NULL;
	}
	ret = ca_tls_credentials(srv->ca, c->cred);
	if (ret < 0) {
		log_err("cannot load the CAPF certificate into TLS: %s", capf_strerror(ret));
		creds_free(c);
		return NULL;
	}
	if (priority_make(&c->priority, "[tls] priority", srv->cfg->tls_priority) < 0 ||
	    (srv->cfg->cisco_enabled &&
	     priority_make(&c->cisco_priority, "[cisco] priority", srv->cfg->cisco_priority) < 0)) {
		creds_free(c);
		return NULL;
	}
	return c;
}

struct tls_creds *server_creds_get(struct server *srv)
{
	struct tls_creds *c;

	pthread_mutex_lock(&srv->creds_lock);
	c = srv->creds;
	if (c != NULL)
		atomic_fetch_add(&c->refs, 1);
	pthread_mutex_unlock(&srv->creds_lock);
	return c;
}

void server_creds_put(struct tls_creds *c)
{
	if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	creds_free(c);
}

