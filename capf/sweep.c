/*
 * The sweep of superseded LSCs ([ca] supersede_grace), on the main loop.
 *
 * When a phone acknowledges a new LSC, the core schedules the revocation
 * of the one it replaces in that certificate's record (revoke_after: the
 * time of the acknowledgement plus the grace the session started with).
 * The sweep revokes every record whose time has come, as the CA's list
 * first and then the store, as every revocation is made.
 *
 * It follows the grace in force (CFG_LIVE(), changed by SIGHUP): a grace
 * of 0 revokes every LSC still in its grace at the next sweep, and a
 * shorter one brings a later revoke_after forward to now + the grace, so
 * that no superseded LSC stays valid longer than the grace in force
 * allows from the time the sweep sees it; a longer one applies to the LSCs
 * superseded from then on. The timer runs every minute, or every grace
 * if that is shorter; with a grace of 0 it runs once at start (records
 * left by a run with a grace) and, after a reload turned the grace off,
 * until the sessions that started with the old grace have ended.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca/ca.h"
#include "capf/capfd.h"
#include "capf/log.h"
#include "store/store.h"

/* What a sweep found: copies of the records to revoke or to bring forward. */
struct sweep_item {
	Capf__Certificate *cert;
	bool revoke; /* else: revoke_after brought forward to now + grace */
};

struct sweep_scan {
	struct sweep_item *items;
	size_t n, cap;
	time_t now;
	unsigned grace;
};

static int collect(const Capf__Certificate *c, void *arg)
{
	struct sweep_scan *l = arg;
	uint8_t buf[8192];
	bool revoke;
	size_t len;

	if (c->revoke_after == 0 || c->state == CAPF__CERT_STATE__CERT_REVOKED)
		return 0;
	if (c->revoke_after <= l->now || l->grace == 0)
		revoke = true;
	else if (c->revoke_after > l->now + (int64_t)l->grace)
		revoke = false;
	else
		return 0;
	if (l->n == l->cap) {
		size_t ncap = l->cap ? 2 * l->cap : 16;
		struct sweep_item *n = realloc(l->items, ncap * sizeof(*n));
		if (n == NULL)
			return CAPF_ENOMEM;
		l->items = n;
		l->cap = ncap;
	}
	/* The record is the store's copy for this call only: keep one. */
	len = capf__certificate__get_packed_size(c);
	if (len > sizeof(buf))
		return 0;
	capf__certificate__pack(c, buf);
	l->items[l->n].cert = capf__certificate__unpack(NULL, len, buf);
	l->items[l->n].revoke = revoke;
	if (l->items[l->n].cert != NULL)
		l->n++;
	return 0;
}

static void on_written(void *arg, int result)
{
	(void)arg;
	/* A stale revision: a session changed the record; the next sweep
	 * reads it again. */
	if (result < 0 && result != CAPF_ESTALE)
		log_warn("cannot record the revocation of a superseded LSC: %s; trying again later",
			 capf_strerror(result));
}

static void sweep_run(struct server *srv)
{
	struct sweep_scan l = { .now = time(NULL), .grace = srv->sweep_grace };
	size_t revoked = 0, forward = 0;

	if (store_cert_foreach(srv->store, collect, &l) < 0)
		log_warn("cannot look for superseded LSCs to revoke");
	for (size_t i = 0; i < l.n; i++) {
		Capf__Certificate *c = l.items[i].cert;
		Capf__StoreRecord rec = CAPF__STORE_RECORD__INIT;
		Capf__StoreRecord *recs[1] = { &rec };

		rec.body_case = CAPF__STORE_RECORD__BODY_CERT;
		rec.cert = c;
		rec.check_revision = true;
		rec.expect_revision = c->revision;
		c->revision++;
		if (!l.items[i].revoke) {
			c->revoke_after = l.now + (int64_t)l.grace;
			if (bridge_submit(&srv->bridge, srv->store, recs, 1, on_written, NULL) == 0)
				forward++;
			continue;
		}
		/* The CA's list first, as for every revocation: durable
		 * before the store says so. */
		if (ca_revoke(srv->ca, c->serial.data, c->serial.len, l.now, CA_REASON_SUPERSEDED,
			      c->der.data, c->der.len) < 0) {
			log_warn("cannot revoke a superseded LSC: %s", ca_last_error());
			continue;
		}
		c->state = CAPF__CERT_STATE__CERT_REVOKED;
		c->revoked_at = l.now;
		c->revocation_reason = CA_REASON_SUPERSEDED;
		c->revoke_after = 0;
		if (bridge_submit(&srv->bridge, srv->store, recs, 1, on_written, NULL) == 0)
			revoked++;
	}
	for (size_t i = 0; i < l.n; i++)
		capf__certificate__free_unpacked(l.items[i].cert, NULL);
	free(l.items);
	if (forward > 0)
		log_info("%zu superseded LSCs now end their grace within [ca] supersede_grace (%u s)",
			 forward, l.grace);
	if (revoked > 0) {
		log_info("revoked %zu superseded LSCs whose grace period ended", revoked);
		server_crl_dirty(srv);
	}
}

static void on_sweep_timer(uv_timer_t *t)
{
	struct server *srv = t->data;

	if (srv->stopping)
		return;
	sweep_run(srv);
	if (srv->sweep_grace == 0 && time(NULL) >= srv->sweep_linger_until)
		uv_timer_stop(t);
}

/* Once a minute is fine-grained enough for a grace that counts in minutes
 * or days; a short one (in tests) still ends within its own length. */
static uint64_t period_ms(unsigned grace)
{
	return grace > 0 && grace < 60 ? grace * 1000u : 60000u;
}

int sweep_start(struct server *srv)
{
	int ret = uv_timer_init(srv->loop, &srv->sweep_timer);

	if (ret < 0)
		return ret;
	srv->sweep_timer.data = srv;
	srv->sweep_timer_on = true;
	srv->sweep_grace = srv->cfg->supersede_grace;
	srv->sweep_session_max_ms = srv->cfg->session_timeout_ms;
	/* No session of this process has started yet: with a grace of 0,
	 * one sweep is enough for what an earlier run left. */
	srv->sweep_linger_until = time(NULL);
	return uv_timer_start(&srv->sweep_timer, on_sweep_timer, 0, period_ms(srv->sweep_grace));
}

void sweep_follow(struct server *srv)
{
	unsigned grace = CFG_LIVE(srv->cfg->supersede_grace);
	unsigned session_ms = CFG_LIVE(srv->cfg->session_timeout_ms);

	if (!srv->sweep_timer_on)
		return;
	/* A session keeps the timeout it started with, whatever came since. */
	if (session_ms > srv->sweep_session_max_ms)
		srv->sweep_session_max_ms = session_ms;
	if (grace == srv->sweep_grace)
		return;
	srv->sweep_grace = grace;
	if (grace == 0) {
		/* Sessions that started with the old grace may still schedule
		 * a revocation: sweep until they have ended. */
		srv->sweep_linger_until =
			time(NULL) + (time_t)(srv->sweep_session_max_ms / 1000u) + 60;
		log_info("reload: [ca] supersede_grace 0: the superseded LSCs still in their grace "
			 "are revoked now");
	} else {
		log_info("reload: [ca] supersede_grace %u s: superseded LSCs are revoked within "
			 "%u s of the end of their grace",
			 grace, (unsigned)(period_ms(grace) / 1000u));
	}
	/* At once: what the new grace ends, it ends now. */
	uv_timer_start(&srv->sweep_timer, on_sweep_timer, 0, period_ms(grace));
}

void sweep_stop(struct server *srv)
{
	if (!srv->sweep_timer_on)
		return;
	uv_close((uv_handle_t *)&srv->sweep_timer, NULL);
	srv->sweep_timer_on = false;
}
