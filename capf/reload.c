/*
 * SIGHUP: the configuration file read again, checked as at start (every
 * bad value reported with its line), and refused as a whole if one is
 * bad: the running configuration stays. A good one applies, without
 * touching a connection, every option but those that capf/config.c's
 * table marks CONFIG_RESTART (each with its reason, in the log line and
 * in capfd.conf(5)): the CONFIG_LIVE ones (the limits, [auth], [ca]
 * renew_window and supersede_grace...), which workers read whole
 * (CFG_LIVE()) as sessions start and run, and after which the main
 * loop's timers follow (server_live_changed(): the CRL timer, the sweep
 * of superseded LSCs); on the main loop, the log level, the [admin]
 * roles (new admin connections get them) and the metrics listener; the
 * [trust] manufacturer roots and MIC patterns (ca_trust_reload(): the
 * next MIC is checked against them); the [tls] and [cisco] priorities
 * (new TLS credentials for new sessions).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "ca/ca.h"
#include "capf/capfd.h"
#include "capf/log.h"
#include "capf/metrics.h"

struct reload {
	struct capfd_config *cur;
	const struct capfd_config *n;
	unsigned later;   /* options that need a restart */
	unsigned applied;
	bool live, roles, log_level, metrics, trust, tls;
};

static void on_changed(const char *section, const char *name, void *arg)
{
	struct reload *r = arg;
	const char *why;

	switch (config_reload_of(section, name, &why)) {
	case CONFIG_LIVE:
		config_apply_live(r->cur, r->n, section, name);
		log_info("reload: [%s] %s changed: %s", section, name, why);
		r->applied++;
		r->live = true;
		break;
	case CONFIG_TRUST:
		r->trust = true;
		break;
	case CONFIG_TLS:
		r->tls = true;
		break;
	case CONFIG_ROLES:
		r->roles = true;
		break;
	case CONFIG_LOG_LEVEL:
		r->log_level = true;
		break;
	case CONFIG_METRICS:
		r->metrics = true;
		break;
	case CONFIG_RESTART:
		log_warn("reload: [%s] %s changed: it takes effect when capfd restarts (%s)",
			 section, name, why);
		r->later++;
		break;
	}
}

static void swap_str(char **a, char **b)
{
	char *t = *a;

	*a = *b;
	*b = t;
}

void server_reload(struct server *srv)
{
	struct capfd_config *cur = srv->cfg, n;
	struct reload r = { 0 };
	char err[512];
	int ret = 0;

	if (cur->config_file == NULL) {
		log_warn("received SIGHUP: capfd runs without a configuration file (-c): nothing "
			 "to reload");
		return;
	}
	log_info("received SIGHUP: reading %s again", cur->config_file);
	config_defaults(&n);
	if (config_load(&n, cur->config_file) < 0)
		ret = CAPF_ECONFIG;
	for (size_t i = 0; i < cur->ncli; i++) {
		if (config_set(&n, cur->cli[i][0], cur->cli[i][1], cur->cli[i][2], err,
			       sizeof(err)) < 0) {
			log_err("reload: command line: %s", err);
			ret = CAPF_ECONFIG;
		}
		n.cli[i][0] = cur->cli[i][0];
		n.cli[i][1] = cur->cli[i][1];
		n.cli[i][2] = cur->cli[i][2];
	}
	n.ncli = cur->ncli;
	n.verbose = cur->verbose;
	if (n.verbose)
		n.log_level = LOG_LVL_DEBUG;
	if (ret == 0 && config_finish(&n, err, sizeof(err)) < 0) {
		log_err("reload: %s", err);
		ret = CAPF_ECONFIG;
	}
	if (config_check(&n) < 0)
		ret = CAPF_ECONFIG;
	if (ret < 0) {
		log_err("reload refused: %s has the errors above; the running configuration is "
			"kept",
			cur->config_file);
		goto out;
	}
	r.cur = cur;
	r.n = &n;
	config_diff(cur, &n, on_changed, &r);
	if (r.trust) {
		/* Checked whole first: a bad root file keeps the trust in use. */
		if (ca_trust_reload(srv->ca, n.mfg_roots, n.mic_patterns) < 0) {
			log_err("reload: the trust stores are kept as they were: %s", ca_last_error());
		} else {
			swap_str(&cur->mfg_roots, &n.mfg_roots);
			swap_str(&cur->mic_patterns, &n.mic_patterns);
			log_info("reload: [trust] read again: the next MIC is checked against it");
			r.applied++;
			r.tls = true; /* the handshake's credentials follow */
		}
	}
	if (r.tls) {
		/* New credentials (certificate, priorities) for new sessions;
		 * the sessions in flight keep theirs. */
		swap_str(&cur->tls_priority, &n.tls_priority);
		swap_str(&cur->cisco_priority, &n.cisco_priority);
		if (server_ca_changed(srv) < 0) {
			swap_str(&cur->tls_priority, &n.tls_priority);
			swap_str(&cur->cisco_priority, &n.cisco_priority);
			log_err("reload: the TLS priorities are kept as they were");
		} else {
			r.applied++;
		}
	}
	if (r.log_level) {
		cur->log_level = n.log_level;
		log_set_level((enum log_level)n.log_level);
		r.applied++;
	}
	if (r.roles) {
		/* Read on this loop only, when an admin client connects. */
		swap_str(&cur->admin_users, &n.admin_users);
		swap_str(&cur->admin_group, &n.admin_group);
		swap_str(&cur->readonly_users, &n.readonly_users);
		swap_str(&cur->readonly_group, &n.readonly_group);
		r.applied++;
	}
	if (r.metrics) {
		metrics_stop(srv);
		swap_str(&cur->metrics_listen, &n.metrics_listen);
		if (metrics_start(srv) < 0)
			log_err("reload: the metrics listener could not start on %s",
				cur->metrics_listen);
		r.applied++;
	}
	if (r.live)
		server_live_changed(srv);
	log_info("configuration reloaded from %s: %u change%s applied, %u at the next restart",
		 cur->config_file, r.applied, r.applied == 1 ? "" : "s", r.later);
out:
	config_deinit(&n);
}
