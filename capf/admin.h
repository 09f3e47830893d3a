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

#endif /* CAPF_ADMIN_H */
