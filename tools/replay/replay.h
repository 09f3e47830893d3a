/*
 * tools/replay/replay.h - capf-replay: replaying recorded sessions
 * (tools/transcript.h) against a server as the phone, and comparing what
 * the server answers with what it answered then.
 *
 * Glossary
 *   run        one invocation of `capf-replay run` or one load worker: the
 *              sessions it replays, in order, share a struct replay_state.
 *   state      what the phones learned during a run: the LSC each device
 *              got (a later session may present it), the keys made for
 *              recorded keys (a recorded retry with the same key is
 *              replayed with the same new key).
 *   fresh      what a replay must make anew because the server would refuse
 *              the recorded one: the TLS session (so the channel binding),
 *              and the key and CSR of a CsrSubmit, re-created with the same
 *              key type and the same defects (a binding that is not the
 *              session's, a broken signature). For Cisco: the session id
 *              the server assigns (echoed as the phone echoed it, or spoilt
 *              the same way), the public key of KEY_GENERATE_RESPONSE, an
 *              LSC presented in AUTH_RESPONSE (this run's) with its
 *              signature, and the SUDI signature over the session id.
 *   masked     what the comparison ignores because it must differ:
 *              certificates (compared by subject, key type, validity
 *              length and whose key they certify), serials, times and long
 *              hex strings inside texts, the server's certificate, the
 *              Cisco session id (only its being the session's is compared).
 */
#ifndef CAPF_TOOLS_REPLAY_REPLAY_H
#define CAPF_TOOLS_REPLAY_REPLAY_H

#include <stdbool.h>
#include <stddef.h>

#include "tools/client.h"
#include "tools/transcript.h"

#define REPLAY_PROG "capf-replay"

/* Exit statuses, documented in capf-replay(1). */
enum replay_exit {
	REPLAY_EXIT_SAME = 0,
	REPLAY_EXIT_DIFF = 1,    /* a session's answers differ, or one failed */
	REPLAY_EXIT_USAGE = 2,
	REPLAY_EXIT_CONNECT = 3, /* no server to replay against */
};

struct replay_opts {
	const char *host, *port;
	const char *cisco_host, *cisco_port; /* where Cisco sessions go */
	const struct client_trust *trust;
	const char *mic_dir;          /* DEVICE.pem and DEVICE.key of every device, or NULL */
	const char *mic, *mic_key;    /* one MIC for every session, or NULL */
	const char *lsc_dir;          /* LSCs kept across runs (DEVICE-lsc.pem, .key), or NULL */
	unsigned timeout_ms;
	bool raw;                     /* send the recorded bytes, nothing re-created */
	bool pace;                    /* wait the recorded time before each phone message */
	bool strict_text;             /* compare texts unmasked */
};

struct replay_state;

/* replay_state_new() - an empty run state, or NULL when out of memory. */
struct replay_state *replay_state_new(void);

/* replay_state_free() - release it (wipes the keys); NULL is fine. */
void replay_state_free(struct replay_state *st);

/* The outcome of replaying one session. */
struct replay_result {
	bool differs;        /* the first difference is below */
	bool failed;         /* the replay could not be carried out (text says why) */
	long index;          /* message index of the difference; -1: the session itself */
	char type[40];       /* the recorded message there */
	char field[48];      /* e.g. "code", "certificate.subject", "type" */
	char want[256];      /* what was recorded */
	char got[256];       /* what the server sent this time */
	char text[512];      /* one line for people */
	size_t nmsgs;        /* messages exchanged */
	double seconds;      /* wall time of the session, handshake included */
};

/*
 * replay_session() - replay one recorded session s against the server of
 * o (a Cisco session: o->cisco_host, o->cisco_port), updating st, and
 * compare the server's messages with the recorded ones, element by
 * element for Cisco. Returns 0; r says whether anything differs or failed.
 */
int replay_session(const struct replay_opts *o, const struct transcript_session *s,
		   struct replay_state *st, struct replay_result *r);

/* replay_show() - print a transcript for people: each session's header,
 * then each message decoded, one field per line. */
void replay_show(FILE *f, const char *path, const struct transcript *t);

/* Options shared by run and load. */
struct replay_common {
	struct replay_opts o;
	struct client_trust trust;
	char host[256], port[8];
	char cisco_host[256], cisco_port[8];
	const char *ca;
	unsigned long timeout;
};

/*
 * replay_common_finish() - check --server, --cisco-server (NULL: Cisco
 * sessions go to --server), --ca and the MIC options and load the CA into
 * c. Returns 0 or an exit status (a message printed).
 */
int replay_common_finish(const char *cmd, struct replay_common *c, const char *server,
			 const char *cisco_server);

/* replay_parse_server() - split "HOST:PORT" or "[V6]:PORT". 0 or CAPF_EINVAL. */
int replay_parse_server(const char *arg, char *host, size_t hcap, char *port, size_t pcap);

int replay_cmd_show(int argc, char **argv);
int replay_cmd_run(int argc, char **argv);
int replay_cmd_load(int argc, char **argv);

/* replay_usage_error() - "capf-replay CMD: message" and a hint on stderr;
 * returns REPLAY_EXIT_USAGE. */
int replay_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* replay_now() - a monotonic clock in seconds. */
double replay_now(void);

/* replay_load_all() - transcript_load() of every path into t; prints the
 * error and returns it. */
int replay_load_all(char **paths, int n, struct transcript *t);

#endif /* CAPF_TOOLS_REPLAY_REPLAY_H */
