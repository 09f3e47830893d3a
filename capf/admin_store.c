/*
 * Admin requests about the store: its figures, compaction on request, and
 * the fault-injection seam that tests use to prove that capfd fails closed
 * (refused unless [testing] fault_injection is on).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "capf/admin.h"
#include "capf/capfd.h"
#include "capf/log.h"
#include "store/store.h"

static const char *fault_name(int fault)
{
	switch (fault) {
	case 0:
		return "off";
	case CAPF_ENOSPC:
		return "ENOSPC";
	case CAPF_EIO:
		return "EIO";
	default:
		return capf_errname(fault);
	}
}

static void audit_store(struct admin_client *ac, const char *detail)
{
	struct store_audit_event ev = { .kind = CAPF__AUDIT_KIND__AUDIT_STORE };
	char peer[80];

	admin_peer(ac, peer, sizeof(peer));
	ev.peer = peer;
	ev.detail = detail;
	(void)store_audit(admin_server(ac)->store, &ev);
}

static void handle_store_info(struct admin_client *ac, const Capf__AdminRequest *req)
{
	Capf__AdminResponse resp = CAPF__ADMIN_RESPONSE__INIT;
	Capf__StoreInfo info = CAPF__STORE_INFO__INIT;
	struct server *srv = admin_server(ac);
	struct store_stats st;
	(void)req;

	store_get_stats(srv->store, &st);
	info.devices = st.devices;
	info.certificates = st.certificates;
	info.txns_written = st.txns_written;
	info.syncs = st.syncs;
	info.segment_seq = st.segment_seq;
	info.segment_bytes = st.segment_bytes;
	info.snapshot_seq = st.snapshot_seq;
	info.compactions = st.compactions;
	info.audit_seq = st.audit_seq;
	info.write_failures = st.write_failures;
	info.audit_file = st.audit_file;
	info.queue_full = st.queue_full;
	info.audit_lost = st.audit_lost;
	info.audit_aggregated = st.audit_aggregated;
	info.fault = (char *)fault_name(st.fault);
	info.state_dir = (char *)store_dir(srv->store);
	resp.store = &info;
	admin_respond(ac, &resp);
}

/* A compaction waits for its snapshot to be durable: off the loop. */
struct compact_work {
	uv_work_t req;
	struct admin_client *ac;
	struct store *st;
	int result;
};

static void compact_run(uv_work_t *req)
{
	struct compact_work *cw = req->data;

	cw->result = store_compact(cw->st);
}

static void compact_done(uv_work_t *req, int status)
{
	struct compact_work *cw = req->data;
	struct admin_client *ac = cw->ac;
	char text[200];

	if (!admin_closing(ac)) {
		if (status < 0) {
			admin_respond_error(ac, CAPF_EIO, "the compaction could not run");
		} else if (cw->result < 0) {
			snprintf(text, sizeof(text), "compaction failed: %s%s",
				 capf_strerror(cw->result),
				 cw->result == CAPF_EBUSY ? " (one is running)" : "");
			admin_respond_error(ac, cw->result, text);
		} else {
			Capf__AdminResponse resp = CAPF__ADMIN_RESPONSE__INIT;
			struct store_stats st;

			store_get_stats(cw->st, &st);
			snprintf(text, sizeof(text),
				 "snapshot.%010llu written; appending to log.%010llu",
				 (unsigned long long)st.snapshot_seq,
				 (unsigned long long)st.segment_seq);
			resp.text = text;
			admin_respond(ac, &resp);
		}
	}
	admin_release(ac);
	free(cw);
}

static void handle_store_compact(struct admin_client *ac, const Capf__AdminRequest *req)
{
	struct server *srv = admin_server(ac);
	struct compact_work *cw;
	int ret;
	(void)req;

	cw = calloc(1, sizeof(*cw));
	if (cw == NULL) {
		admin_respond_error(ac, CAPF_ENOMEM, NULL);
		return;
	}
	cw->ac = ac;
	cw->st = srv->store;
	cw->req.data = cw;
	audit_store(ac, "compaction requested");
	ret = uv_queue_work(srv->loop, &cw->req, compact_run, compact_done);
	if (ret < 0) {
		free(cw);
		admin_respond_error(ac, CAPF_EIO, "cannot start the compaction");
		return;
	}
	log_info("admin: compaction requested");
	admin_hold(ac);
}

static void handle_store_fault(struct admin_client *ac, const Capf__AdminRequest *req)
{
	Capf__AdminResponse resp = CAPF__ADMIN_RESPONSE__INIT;
	struct server *srv = admin_server(ac);
	const char *name = req->store_fault->fault;
	char text[160];
	int fault;

	if (!srv->cfg->fault_injection) {
		admin_respond_error(ac, CAPF_EACCES,
				    "fault injection is off: set [testing] fault_injection = yes "
				    "in capfd.conf (never on a production server)");
		return;
	}
	if (strcasecmp(name, "ENOSPC") == 0) {
		fault = CAPF_ENOSPC;
	} else if (strcasecmp(name, "EIO") == 0) {
		fault = CAPF_EIO;
	} else if (strcasecmp(name, "off") == 0) {
		fault = 0;
	} else {
		snprintf(text, sizeof(text), "unknown fault \"%s\": ENOSPC, EIO or off", name);
		admin_respond_error(ac, CAPF_EINVAL, text);
		return;
	}
	/* An event the fault keeps from the log waits in the store and is
	 * written, in order, once writes work again. */
	snprintf(text, sizeof(text), "fault injection: store writes %s",
		 fault ? (fault == CAPF_ENOSPC ? "fail with ENOSPC" : "fail with EIO") : "work");
	if (fault) {
		audit_store(ac, text);
		store_set_fault(srv->store, fault);
	} else {
		store_set_fault(srv->store, fault);
		audit_store(ac, text);
	}
	log_warn("admin: %s", text);
	resp.text = text;
	admin_respond(ac, &resp);
}

const struct admin_handler admin_store_handlers[] = {
	{ CAPF__ADMIN_REQUEST__BODY_STORE_INFO, "store-info", handle_store_info },
	{ CAPF__ADMIN_REQUEST__BODY_STORE_COMPACT, "store-compact", handle_store_compact },
	{ CAPF__ADMIN_REQUEST__BODY_STORE_FAULT, "store-fault", handle_store_fault },
	{ 0, NULL, NULL },
};
