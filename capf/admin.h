/*
 * capf/admin.h - the admin socket's handler interface. Each area of
 * administration (devices, CA and trust, store and audit) has its own file
 * with a table of handlers; capf/admin.c owns the socket, the framing and
 * the dispatch through those tables.
 *
 * A handler answers exactly once with admin_respond() or
 * admin_respond_error(). A handler that must wait (a store write) calls
 * admin_hold() before returning and admin_release() after answering from
 * its completion; while held, the client's further requests wait.
 */
#ifndef CAPF_ADMIN_H
#define CAPF_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/proto.h"

struct admin_client;
struct server;

struct admin_handler {
	Capf__AdminRequest__BodyCase body;
	const char *name;
	void (*handle)(struct admin_client *ac, const Capf__AdminRequest *req);
};

/* The handler tables, one per area, each ending with a zeroed entry. */
extern const struct admin_handler admin_device_handlers[];
extern const struct admin_handler admin_ca_handlers[];
extern const struct admin_handler admin_store_handlers[];
extern const struct admin_handler admin_query_handlers[];

/* admin_server() - the server the client talks to. */
struct server *admin_server(struct admin_client *ac);

/* admin_respond() - send resp (packed at once; resp may be freed after). */
void admin_respond(struct admin_client *ac, Capf__AdminResponse *resp);

/* admin_respond_error() - send {code, text}; text NULL = capf_strerror(). */
void admin_respond_error(struct admin_client *ac, int code, const char *text);

/* admin_hold() - keep the client (a reference) and pause its reading until
 * admin_release(). */
void admin_hold(struct admin_client *ac);

/* admin_release() - resume reading and drop the reference taken by
 * admin_hold(); the client may be freed here. */
void admin_release(struct admin_client *ac);

/* admin_closing() - the client went away: a held handler only releases. */
bool admin_closing(const struct admin_client *ac);

/* admin_peer() - who the client is, for the audit log: "admin uid=N
 * pid=P" from the socket's peer credentials, or "admin". */
void admin_peer(struct admin_client *ac, char *buf, size_t len);

/* What an administrator sets on a device record: the fields of a
 * DevicePut that the admin owns. */
struct admin_settings {
	uint32_t fields; /* CAPF__PUT_FIELD__* bits; 0 = every field */
	Capf__Operation op;
	Capf__AuthMode auth;
	Capf__KeyType key_type;
	Capf__KeyType ec_key_type;
	Capf__KeyOrder key_order;
	uint32_t lsc_days;
	int64_t deadline;
};

/* admin_settings_from_put() - the settings a DevicePut asks for (an
 * unspecified auth is mic and an unspecified key ec-p256, as for a new
 * device). */
void admin_settings_from_put(const Capf__DevicePut *put, struct admin_settings *set);

/*
 * admin_settings_apply() - apply set to d: the given fields, a new
 * operation generation when the operation or its policy changes, and the
 * status made pending (see capf/admin.c). Returns whether a field
 * changed; with fields == 0 the status is made pending even when none
 * did (a device set that asks again).
 */
bool admin_settings_apply(const struct admin_settings *set, Capf__Device *d);

/* admin_redact() - strip what no answer carries: the string's hash and
 * salt and, unless with_report, the certificates of a fetch report. */
void admin_redact(Capf__Device *d, bool with_report);

/* admin_handle_batch() - the DeviceBatch handler (capf/admin_batch.c). */
void admin_handle_batch(struct admin_client *ac, const Capf__AdminRequest *req);

/* What a peer of the admin socket may do (capf/admin_role.c). */
enum admin_role {
	ADMIN_ROLE_NONE = 0, /* nothing: every request is refused */
	ADMIN_ROLE_READONLY, /* show, list, report, status, metrics */
	ADMIN_ROLE_ADMIN,    /* everything */
};

struct capfd_config;

/*
 * admin_role_of() - the role of the user uid (primary group gid, from
 * SO_PEERCRED) under the [admin] settings of cfg; its user name goes to
 * name ("?" when it has none).
 */
enum admin_role admin_role_of(const struct capfd_config *cfg, uid_t uid, gid_t gid, char *name,
			      size_t namelen);

/* admin_request_readonly() - whether req only reads (a read-only peer may
 * send it). */
bool admin_request_readonly(const Capf__AdminRequest *req);

/* admin_role_name() - "admin", "read-only" or "none". */
const char *admin_role_name(enum admin_role role);

/* A client's paged listing (capf/admin_query.c); freed with the client. */
struct admin_cursor;

/* admin_cursor_slot() - where the client keeps its listing. */
struct admin_cursor **admin_cursor_slot(struct admin_client *ac);

/* admin_cursor_free() - free a listing; accepts NULL. */
void admin_cursor_free(struct admin_cursor *cur);

/* admin_stage_slot() - where the client keeps the parts of a staged
 * device batch; admin_stage_free() frees them (accepts NULL). */
struct batch_stage;
struct batch_stage **admin_stage_slot(struct admin_client *ac);
void admin_stage_free(struct batch_stage *st);

#endif /* CAPF_ADMIN_H */
