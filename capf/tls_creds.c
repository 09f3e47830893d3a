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

static void creds_free(struct tls_creds *c)
{
	if (c->cred != NULL)
		gnutls_certificate_free_credentials(c->cred);
	tls_prio_deinit(&c->prio);
	tls_prio_deinit(&c->cisco_prio);
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
	if (tls_prio_init(&c->prio, "[tls] priority", srv->cfg->tls_priority) < 0 ||
	    (srv->cfg->cisco_enabled &&
	     tls_prio_init(&c->cisco_prio, "[cisco] priority", srv->cfg->cisco_priority) < 0)) {
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

