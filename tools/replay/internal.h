/*
 * tools/replay/internal.h - what the files of capf-replay share beyond
 * tools/replay/replay.h: the state of one session's replay, and the
 * comparison of the server's messages (tools/replay/compare.c).
 */
#ifndef CAPF_TOOLS_REPLAY_INTERNAL_H
#define CAPF_TOOLS_REPLAY_INTERNAL_H

#include <stdbool.h>

#include "tools/replay/replay.h"

/* One session being replayed. */
struct session_ctx {
	const struct replay_opts *o;
	const struct transcript_session *s;
	struct replay_result *r;
	gnutls_x509_privkey_t key;   /* of the last CSR sent */
	uint8_t *delivered;          /* the last certificate delivered (malloc'd) */
	size_t delivered_len;
	bool delete_sent;            /* DeleteResult{0} sent */
	bool end_ok;                 /* End{0} received */
};

/*
 * replay_result_set() - record the first difference in r: at message
 * index (-1: the session itself) of recorded type, field, with what was
 * recorded and what came.
 */
void replay_result_set(struct replay_result *r, long index, const char *type, const char *field,
		       const char *want, const char *got);

/*
 * replay_compare() - compare the server's message got with the recorded
 * message m, masked. Returns true when they match (and notes in c what a
 * later step needs: the certificate delivered, an End with code 0), false
 * with the difference in c->r.
 */
bool replay_compare(struct session_ctx *c, const struct transcript_msg *m,
		    const Capf__PhoneMessage *got);

#endif /* CAPF_TOOLS_REPLAY_INTERNAL_H */
