/*
 * Roles on the admin socket. The kernel says who the peer is (SO_PEERCRED:
 * uid and gid, which a client cannot forge); the [admin] settings say what
 * that user may do: administer, only read, or nothing. Without any
 * [admin] setting, whoever can open the socket (its mode and owner decide)
 * administers, as before roles existed.
 */
#include "config.h"

#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capf/admin.h"
#include "capf/capfd.h"

/* Whether the list (names or numbers, separated by commas or blanks)
 * holds the user: by name, or by the decimal uid. */
static bool list_has_user(const char *list, const char *name, uid_t uid)
{
	char num[24], *copy, *save = NULL, *tok;
	bool found = false;

	if (list == NULL)
		return false;
	snprintf(num, sizeof(num), "%u", (unsigned)uid);
	copy = strdup(list);
	if (copy == NULL)
		return false;
	for (tok = strtok_r(copy, ", \t", &save); tok && !found; tok = strtok_r(NULL, ", \t", &save))
		found = !strcmp(tok, num) || (name != NULL && !strcmp(tok, name));
	free(copy);
	return found;
}

/* The gid of a group given by name or number, or -1. */
static long group_id(const char *g)
{
	struct group grp, *res = NULL;
	char buf[4096], *end = NULL;
	unsigned long n;

	n = strtoul(g, &end, 10);
	if (*g >= '0' && *g <= '9' && *end == '\0')
		return (long)n;
	if (getgrnam_r(g, &grp, buf, sizeof(buf), &res) != 0 || res == NULL)
		return -1;
	return (long)res->gr_gid;
}

/* Whether the peer is in one of the groups of the list: its primary gid
 * as the kernel gave it, or the supplementary groups of its user. */
static bool in_groups(const char *list, const char *name, gid_t gid, gid_t pw_gid)
{
	char *copy, *save = NULL, *tok;
	gid_t groups[256];
	int ngroups = 0;
	bool found = false;

	if (list == NULL)
		return false;
	if (name != NULL) {
		ngroups = (int)(sizeof(groups) / sizeof(groups[0]));
		if (getgrouplist(name, pw_gid, groups, &ngroups) < 0)
			ngroups = 0; /* more than that many: the primary gid alone */
	}
	copy = strdup(list);
	if (copy == NULL)
		return false;
	for (tok = strtok_r(copy, ", \t", &save); tok && !found; tok = strtok_r(NULL, ", \t", &save)) {
		long g = group_id(tok);

		if (g < 0)
			continue;
		found = (gid_t)g == gid;
		for (int i = 0; i < ngroups && !found; i++)
			found = groups[i] == (gid_t)g;
	}
	free(copy);
	return found;
}

enum admin_role admin_role_of(const struct capfd_config *cfg, uid_t uid, gid_t gid, char *name,
			      size_t namelen)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	const char *user = NULL;
	gid_t pw_gid = gid;

	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL) {
		user = res->pw_name;
		pw_gid = res->pw_gid;
	}
	if (name != NULL && namelen > 0)
		snprintf(name, namelen, "%s", user ? user : "?");
	/* The superuser and the daemon's own user always administer. */
	if (uid == 0 || uid == geteuid())
		return ADMIN_ROLE_ADMIN;
	if (!config_admin_roles(cfg))
		return ADMIN_ROLE_ADMIN;
	if (list_has_user(cfg->admin_users, user, uid) ||
	    in_groups(cfg->admin_group, user, gid, pw_gid))
		return ADMIN_ROLE_ADMIN;
	if (list_has_user(cfg->readonly_users, user, uid) ||
	    in_groups(cfg->readonly_group, user, gid, pw_gid))
		return ADMIN_ROLE_READONLY;
	return ADMIN_ROLE_NONE;
}

bool admin_request_readonly(const Capf__AdminRequest *req)
{
	switch (req->body_case) {
	case CAPF__ADMIN_REQUEST__BODY_DEVICE_GET:
	case CAPF__ADMIN_REQUEST__BODY_DEVICE_LIST:
	case CAPF__ADMIN_REQUEST__BODY_STATUS:
	case CAPF__ADMIN_REQUEST__BODY_STATS:
	case CAPF__ADMIN_REQUEST__BODY_CA_STATUS:
	case CAPF__ADMIN_REQUEST__BODY_CA_BUNDLE:
	case CAPF__ADMIN_REQUEST__BODY_TRUST_LIST:
	case CAPF__ADMIN_REQUEST__BODY_CERT_SHOW:
	case CAPF__ADMIN_REQUEST__BODY_CERT_LIST:
	case CAPF__ADMIN_REQUEST__BODY_CRL:
	case CAPF__ADMIN_REQUEST__BODY_STORE_INFO:
		return true;
	case CAPF__ADMIN_REQUEST__BODY_DEVICE_BATCH:
		/* A dry run reads. */
		return req->device_batch != NULL && req->device_batch->dry_run;
	default:
		return false;
	}
}

const char *admin_role_name(enum admin_role role)
{
	switch (role) {
	case ADMIN_ROLE_ADMIN:
		return "admin";
	case ADMIN_ROLE_READONLY:
		return "read-only";
	default:
		return "none";
	}
}
