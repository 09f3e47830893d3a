/*
 * tools/replay/compare_cisco.c - comparing a Cisco server message with the
 * recorded one, element by element: the command, the tags in the order
 * sent, then each value. What must differ is masked: a certificate is
 * compared by what it says (replay_compare_cert()), REASON_INFO with its
 * times and hex words masked; the session id is checked by the caller
 * (only its being the session's is compared).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/replay/internal.h"

/* "VERSION,AUTH_TYPE": the tags of a message in order. */
static void tag_list(const struct replay_cisco_el *els, size_t n, char *out, size_t cap)
{
	size_t k = 0;

	out[0] = '\0';
	if (n == 0)
		snprintf(out, cap, "no element");
	for (size_t i = 0; i < n && k + 1 < cap; i++)
		k += (size_t)snprintf(out + k, cap - k, "%s%s", i ? "," : "",
				      replay_cisco_el_name(els[i].tag));
}

/* A NUL-terminated text element as a C string (a NUL inside ends it). */
static void el_text(const struct replay_cisco_el *e, char *out, size_t cap)
{
	size_t n = e->len && e->v[e->len - 1] == 0 ? e->len - 1 : e->len;

	if (n >= cap)
		n = cap - 1;
	memcpy(out, e->v, n);
	out[n] = '\0';
}

static bool cmp_exact(struct session_ctx *c, const struct transcript_msg *m,
		      const struct replay_cisco_el *w, const struct replay_cisco_el *g)
{
	char wv[200], gv[200];

	if (w->len == g->len && !memcmp(w->v, g->v, w->len))
		return true;
	replay_cisco_el_value(w->tag, w->v, w->len, wv, sizeof(wv));
	replay_cisco_el_value(g->tag, g->v, g->len, gv, sizeof(gv));
	if (!strcmp(wv, gv)) {
		/* Described alike, and yet other bytes. */
		snprintf(wv + strlen(wv), sizeof(wv) - strlen(wv), " (as recorded)");
		snprintf(gv + strlen(gv), sizeof(gv) - strlen(gv), " (other bytes)");
	}
	replay_result_set(c->r, m->index, m->type, replay_cisco_el_name(w->tag), wv, gv);
	return false;
}

static bool cmp_element(struct session_ctx *c, const struct transcript_msg *m,
			const struct replay_cisco_el *w, const struct replay_cisco_el *g)
{
	char wt[256], gt[256];

	switch (w->tag) {
	case CISCO_EL_CERTIFICATE:
		/* 01, u16 (DER length + 2), 00, 01, then the DER. */
		if (w->len > 5 && g->len > 5 && w->v[0] == 1 && g->v[0] == 1 &&
		    ((size_t)w->v[1] << 8 | w->v[2]) == w->len - 3 &&
		    ((size_t)g->v[1] << 8 | g->v[2]) == g->len - 3 && w->v[3] == g->v[3] &&
		    w->v[4] == g->v[4])
			return replay_compare_cert(c, m, "CERTIFICATE", w->v + 5, w->len - 5,
						   g->v + 5, g->len - 5);
		return cmp_exact(c, m, w, g);
	case CISCO_EL_REASON_INFO:
		if ((w->len > 0 && w->v[w->len - 1] == 0) != (g->len > 0 && g->v[g->len - 1] == 0))
			return cmp_exact(c, m, w, g);
		el_text(w, wt, sizeof(wt));
		el_text(g, gt, sizeof(gt));
		return replay_compare_text(c, m, "REASON_INFO", wt, gt);
	default:
		return cmp_exact(c, m, w, g);
	}
}

bool replay_compare_cisco(struct session_ctx *c, const struct transcript_msg *m,
			  const uint8_t *got, size_t got_len)
{
	struct replay_cisco_el we[REPLAY_CISCO_ELEMS_MAX], ge[REPLAY_CISCO_ELEMS_MAX];
	struct cisco_msg wm, gm;
	size_t nw, ng;
	char w[256], g[256];
	unsigned reason;
	bool w_ok, g_ok;

	w_ok = cisco_msg_parse(m->payload, m->len, &wm) == 0;
	g_ok = cisco_msg_parse(got, got_len, &gm) == 0;
	if (!w_ok || !g_ok) {
		/* Undecodable on one side: the same bytes, or a difference. */
		if (!w_ok && !g_ok && m->len == got_len &&
		    (m->len < 6 || (!memcmp(m->payload, got, 2) &&
				    !memcmp(m->payload + 6, got + 6, m->len - 6))))
			return true;
		replay_cisco_describe(m->payload, m->len, w, sizeof(w));
		replay_cisco_describe(got, got_len, g, sizeof(g));
		replay_result_set(c->r, m->index, m->type, "command", w, g);
		return false;
	}
	if (wm.command != gm.command) {
		replay_cisco_describe(m->payload, m->len, w, sizeof(w));
		replay_cisco_describe(got, got_len, g, sizeof(g));
		replay_result_set(c->r, m->index, m->type, "command", w, g);
		return false;
	}
	nw = replay_cisco_elements(m->payload, m->len, we, REPLAY_CISCO_ELEMS_MAX);
	ng = replay_cisco_elements(got, got_len, ge, REPLAY_CISCO_ELEMS_MAX);
	for (size_t i = 0; i < nw || i < ng; i++) {
		if (i < nw && i < ng && we[i].tag == ge[i].tag)
			continue;
		tag_list(we, nw, w, sizeof(w));
		tag_list(ge, ng, g, sizeof(g));
		replay_result_set(c->r, m->index, m->type, "elements", w, g);
		return false;
	}
	for (size_t i = 0; i < nw; i++)
		if (!cmp_element(c, m, &we[i], &ge[i]))
			return false;
	if (gm.command == CISCO_END_SESSION && cisco_el_u8(&gm, CISCO_EL_REASON, &reason) == 0 &&
	    reason == CISCO_REASON_SUCCESS)
		c->end_ok = true;
	return true;
}
