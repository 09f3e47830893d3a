/*
 * SIGHUP: the configuration file read again, checked as at start (every
 * bad value reported with its line), and refused as a whole if one is
 * bad: the running configuration stays. A good one changes what the main
 * loop alone reads, at once and without touching a connection: the log
 * level, the [admin] roles (new admin connections get them) and the
 * metrics listener. The other options are read by the workers while they
 * run and say so: they take effect at the next restart.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "capf/capfd.h"
#include "capf/log.h"
#include "capf/metrics.h"

struct reload {
	unsigned later;   /* options that need a restart */
	unsigned applied;
	bool roles, log_level, metrics;
};

static void on_changed(const char *section, const char *name, void *arg)
{
	struct reload *r = arg;

	if (!strcmp(section, "admin")) {
		r->roles = true;
	} else if (!strcmp(section, "log") && !strcmp(name, "level")) {
		r->log_level = true;
	} else if (!strcmp(section, "metrics")) {
		r->metrics = true;
	} else {
		log_warn("reload: [%s] %s changed: it takes effect when capfd restarts", section,
			 name);
		r->later++;
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
	config_diff(cur, &n, on_changed, &r);
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
	log_info("configuration reloaded from %s: %u change%s applied, %u at the next restart",
		 cur->config_file, r.applied, r.applied == 1 ? "" : "s", r.later);
out:
	config_deinit(&n);
}
