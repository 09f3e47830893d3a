/*
 * Tests of the enrollment core (capf/core.c), driven event by event with
 * no socket, thread, disk, CA or store: a small in-memory world below
 * carries out the effects (records with revisions and compare-and-set, a
 * claim table, a signer that makes fake certificates) and can be made to
 * fail or to change under the session at every step.
 */
#include "config.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capf/core.h"

#define DEV "SEP001122334455"
#define OTHER "SEP00AABBCCDDEE"
#define NOW 1800000000
#define MAXREC 32

/* ---- the world ----------------------------------------------------------- */

struct world {
	Capf__Device *dev[MAXREC];
	size_t ndev;
	Capf__Certificate *cert[MAXREC];
	size_t ncert;
	char claimed[4][DEVICE_NAME_MAX + 1];
	unsigned next_serial;
	/* What happened. */
	unsigned signs, persists, loads, audits, revoked_notes;
	int sent[16];      /* message types, in order */
	int sent_code[16];
	size_t nsent;
	uint8_t last_deliver[256];
	size_t last_deliver_len;
	/* Faults and interleavings. */
	int load_fail, sign_fail;
	int persist_fail;          /* result of every persist while set */
	void (*before_persist)(struct world *w, struct core *s);
	void (*before_load)(struct world *w, struct core *s);
	unsigned supersede_grace;
	struct core_config cfg; /* the rest of the policy */
	/* What the phone says at the claim. */
	unsigned caps;
	const char *secret;
	int supported[4];
	size_t nsupported;
	unsigned last_days; /* of the last SIGN */
	unsigned verifies;
	/* The view of the last load, owned here. */
	Capf__Device *vdev;
	Capf__Certificate *vcur, *vpend, *vpres;
};

static struct world W;

static Capf__Device *dev_copy(const Capf__Device *d)
{
	uint8_t buf[4096];
	size_t n = capf__device__pack(d, buf);
	return capf__device__unpack(NULL, n, buf);
}

static Capf__Certificate *cert_copy(const Capf__Certificate *c)
{
	uint8_t buf[8192];
	size_t n = capf__certificate__pack(c, buf);
	return capf__certificate__unpack(NULL, n, buf);
}

static Capf__Device *world_dev(const char *name)
{
	for (size_t i = 0; i < W.ndev; i++)
		if (strcmp(W.dev[i]->name, name) == 0)
			return W.dev[i];
	return NULL;
}

static Capf__Certificate *world_cert(const uint8_t *serial, size_t len)
{
	for (size_t i = 0; i < W.ncert; i++)
		if (W.cert[i]->serial.len == len && len > 0 &&
		    memcmp(W.cert[i]->serial.data, serial, len) == 0)
			return W.cert[i];
	return NULL;
}

static void view_free(void)
{
	if (W.vdev)
		capf__device__free_unpacked(W.vdev, NULL);
	if (W.vcur)
		capf__certificate__free_unpacked(W.vcur, NULL);
	if (W.vpend)
		capf__certificate__free_unpacked(W.vpend, NULL);
	if (W.vpres)
		capf__certificate__free_unpacked(W.vpres, NULL);
	W.vdev = NULL;
	W.vcur = W.vpend = W.vpres = NULL;
}

static void world_reset(void)
{
	view_free();
	for (size_t i = 0; i < W.ndev; i++)
		capf__device__free_unpacked(W.dev[i], NULL);
	for (size_t i = 0; i < W.ncert; i++)
		capf__certificate__free_unpacked(W.cert[i], NULL);
	memset(&W, 0, sizeof(W));
	W.next_serial = 1;
	W.caps = CORE_CAP_DELETE | CORE_CAP_FETCH | CORE_CAP_RESULT;
}

static void add_device(const char *name, Capf__Operation op, Capf__AuthMode auth,
		       Capf__KeyType kt)
{
	Capf__Device d = CAPF__DEVICE__INIT;

	d.name = (char *)name;
	d.op = op;
	d.auth = auth;
	d.key_type = kt;
	d.status = op != CAPF__OPERATION__OP_NONE ? CAPF__OP_STATUS__STATUS_PENDING
						   : CAPF__OP_STATUS__STATUS_NONE;
	d.revision = 1;
	d.op_generation = 1;
	W.dev[W.ndev++] = dev_copy(&d);
}

/* An administrator's change: the record gets a new revision. */
static void admin_touch(Capf__Device *d, bool new_generation)
{
	d->revision++;
	if (new_generation)
		d->op_generation++;
}

/* Apply one txn with compare-and-set, all or nothing. */
static int world_persist(Capf__StoreRecord *const *recs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const Capf__StoreRecord *r = recs[i];
		uint64_t cur = 0;
		bool exists;

		if (r->body_case == CAPF__STORE_RECORD__BODY_DEVICE) {
			Capf__Device *d = world_dev(r->device->name);
			exists = d != NULL;
			cur = d ? d->revision : 0;
			if (r->check_revision && r->device->revision != r->expect_revision + 1)
				return CAPF_EINVAL;
		} else {
			Capf__Certificate *c = world_cert(r->cert->serial.data, r->cert->serial.len);
			exists = c != NULL;
			cur = c ? c->revision : 0;
			if (r->check_revision && r->cert->revision != r->expect_revision + 1)
				return CAPF_EINVAL;
		}
		if (r->create_only && exists)
			return CAPF_EEXIST;
		if (r->check_revision && !exists)
			return CAPF_ENOENT;
		if (r->check_revision && cur != r->expect_revision)
			return CAPF_ESTALE;
	}
	for (size_t i = 0; i < n; i++) {
		const Capf__StoreRecord *r = recs[i];

		if (r->body_case == CAPF__STORE_RECORD__BODY_DEVICE) {
			for (size_t j = 0; j < W.ndev; j++)
				if (strcmp(W.dev[j]->name, r->device->name) == 0) {
					capf__device__free_unpacked(W.dev[j], NULL);
					W.dev[j] = dev_copy(r->device);
				}
		} else {
			Capf__Certificate *c = world_cert(r->cert->serial.data, r->cert->serial.len);
			size_t j;
			for (j = 0; j < W.ncert && W.cert[j] != c; j++)
				;
			if (c != NULL)
				capf__certificate__free_unpacked(c, NULL);
			W.cert[j] = cert_copy(r->cert);
			if (j == W.ncert)
				W.ncert++;
		}
	}
	return 0;
}

static struct core *new_session(void)
{
	struct core_config cfg = W.cfg;

	cfg.supersede_grace = W.supersede_grace;
	return core_new(&cfg);
}

/* The fake hash of a string: the string itself, zero-padded. */
static void fake_hash(const char *str, uint8_t out[32])
{
	memset(out, 0, 32);
	memcpy(out, str, strlen(str) < 32 ? strlen(str) : 32);
}

static uint8_t salt[4] = { 1, 2, 3, 4 };

static void set_secret(Capf__Device *d, const char *str, bool reusable)
{
	static Capf__AuthSecret sec;
	static uint8_t h[32];

	capf__auth_secret__init(&sec);
	fake_hash(str, h);
	sec.hash.data = h;
	sec.hash.len = 32;
	sec.salt.data = salt;
	sec.salt.len = sizeof(salt);
	sec.iterations = 1000;
	sec.reusable = reusable;
	/* The world keeps a deep copy, like the store. */
	Capf__Device *copy;
	if (d->auth_secret != NULL)
		capf__auth_secret__free_unpacked(d->auth_secret, NULL);
	d->auth_secret = &sec;
	copy = dev_copy(d);
	d->auth_secret = copy->auth_secret;
	copy->auth_secret = NULL;
	capf__device__free_unpacked(copy, NULL);
}

/* A peer that presented a valid MIC whose CN is cn. */
static struct core_event ev_start_mic(const char *cn)
{
	struct core_event ev = { .type = CORE_EV_START, .now = NOW };

	ev.start.peer.present = true;
	ev.start.peer.mic_result = 0;
	ev.start.peer.lsc_result = CAPF_EUNTRUSTED;
	snprintf(ev.start.peer.cn, sizeof(ev.start.peer.cn), "%s", cn);
	snprintf(ev.start.peer.fingerprint, sizeof(ev.start.peer.fingerprint), "%064x", 7);
	ev.start.peer.serial[0] = 0x77;
	ev.start.peer.serial_len = 1;
	memset(ev.start.binding, 0xb1, 32);
	ev.start.binding_len = 32;
	return ev;
}

static uint8_t key_a[32] = { 0xaa }, key_b[32] = { 0xbb };

static struct core_event ev_key(const uint8_t *sha, int key_type, int pop)
{
	struct core_event ev = { .type = CORE_EV_KEY, .now = NOW };

	ev.key.kind = CORE_KEY_CSR;
	ev.key.pop_result = pop;
	ev.key.key_type = key_type;
	memcpy(ev.key.spki_sha256, sha, 32);
	ev.key.handle = (void *)sha;
	return ev;
}

static struct core_event ev_simple(enum core_ev_type t, int code)
{
	struct core_event ev = { .type = t, .now = NOW };

	ev.code = code;
	return ev;
}

static struct core_event ev_claim(const char *name)
{
	struct core_event ev = { .type = CORE_EV_CLAIM, .now = NOW };

	ev.claim.device = name;
	ev.claim.caps = W.caps;
	if (W.secret != NULL) {
		ev.claim.auth_string = W.secret;
		ev.claim.auth_string_len = strlen(W.secret);
	}
	ev.claim.supported_keys = W.supported;
	ev.claim.nsupported = W.nsupported;
	return ev;
}

/* The result event of a LOAD, from the world as it is. */
static struct core_event do_load(struct core *s, const struct core_fx *fx)
{
	struct core_event ev = { .type = CORE_EV_LOADED, .now = NOW };
	const Capf__Device *d;

	W.loads++;
	if (W.before_load)
		W.before_load(&W, s);
	view_free();
	if (W.load_fail) {
		ev.loaded.result = W.load_fail;
		return ev;
	}
	if (fx->load.claim) {
		for (size_t i = 0; i < 4; i++)
			if (strcmp(W.claimed[i], fx->load.device) == 0) {
				ev.loaded.result = CAPF_EBUSY;
				return ev;
			}
	}
	d = world_dev(fx->load.device);
	if (d != NULL) {
		const Capf__Certificate *c;
		W.vdev = dev_copy(d);
		if ((c = world_cert(d->lsc_serial.data, d->lsc_serial.len)) != NULL)
			W.vcur = cert_copy(c);
		if ((c = world_cert(d->pending_serial.data, d->pending_serial.len)) != NULL)
			W.vpend = cert_copy(c);
	}
	if (fx->load.presented != NULL) {
		const Capf__Certificate *c = world_cert(fx->load.presented, fx->load.presented_len);
		if (c != NULL)
			W.vpres = cert_copy(c);
	}
	ev.loaded.device = W.vdev;
	ev.loaded.current = W.vcur;
	ev.loaded.pending = W.vpend;
	ev.loaded.presented = W.vpres;
	if (fx->load.key_sha256 != NULL) {
		for (size_t i = 0; i < W.ncert; i++)
			if (W.cert[i]->spki_sha256.len == 32 &&
			    memcmp(W.cert[i]->spki_sha256.data, fx->load.key_sha256, 32) == 0 &&
			    strcmp(W.cert[i]->device, fx->load.device) != 0) {
				ev.loaded.key_owner = W.cert[i]->device;
				break;
			}
	}
	return ev;
}

static uint8_t lsc_der[64], lsc_serial[4];
static struct core_lsc lsc;
static const uint8_t ca_der[] = "CA";
static const uint8_t *chain[1] = { ca_der };
static const size_t chain_len[1] = { 2 };

static struct core_event do_verify(const struct core_fx *fx)
{
	struct core_event ev = { .type = CORE_EV_VERIFIED, .now = NOW };
	uint8_t h[32] = { 0 };

	W.verifies++;
	memcpy(h, fx->verify.secret, fx->verify.secret_len < 32 ? fx->verify.secret_len : 32);
	ev.result = fx->verify.hash_len == 32 && memcmp(h, fx->verify.hash, 32) == 0 &&
				    fx->verify.salt_len == sizeof(salt)
			    ? 0
			    : CAPF_EAUTH;
	return ev;
}

static struct core_event do_sign(const struct core_fx *fx)
{
	struct core_event ev = { .type = CORE_EV_SIGNED, .now = NOW };
	unsigned n = W.next_serial++;

	W.signs++;
	W.last_days = fx->sign.days;
	if (W.sign_fail) {
		ev.sign_result = W.sign_fail;
		return ev;
	}
	lsc_serial[0] = 0x40;
	lsc_serial[1] = (uint8_t)n;
	snprintf((char *)lsc_der, sizeof(lsc_der), "LSC %s #%u", fx->sign.device, n);
	memset(&lsc, 0, sizeof(lsc));
	lsc.der = lsc_der;
	lsc.der_len = strlen((char *)lsc_der);
	lsc.serial = lsc_serial;
	lsc.serial_len = 2;
	lsc.not_before = NOW - 300;
	lsc.not_after = NOW + 86400 * 365;
	lsc.issued_at = NOW;
	memcpy(lsc.spki_sha256, fx->sign.key_handle, 32);
	lsc.chain = chain;
	lsc.chain_lens = chain_len;
	lsc.nchain = 1;
	ev.signed_lsc = &lsc;
	return ev;
}

/*
 * Feed ev, then carry out every effect the world can (load, persist, sign,
 * send, audit) until the session waits for the phone or is done; stop
 * early, without carrying it out, at an effect of type stop_at (0: none).
 * Returns the last core_step() result.
 */
static int run(struct core *s, struct core_event ev, enum core_fx_type stop_at,
	       struct core_out *last)
{
	struct core_out out;
	int ret;

	for (;;) {
		struct core_event next;
		bool have_next = false;

		ret = core_step(s, &ev, &out);
		for (size_t i = 0; i < out.nfx; i++) {
			const struct core_fx *fx = &out.fx[i];

			if (fx->type == stop_at) {
				if (last)
					*last = out;
				return ret;
			}
			switch (fx->type) {
			case CORE_FX_LOAD:
				next = do_load(s, fx);
				have_next = true;
				break;
			case CORE_FX_PERSIST:
				W.persists++;
				if (W.before_persist)
					W.before_persist(&W, s);
				next = ev_simple(CORE_EV_PERSISTED, 0);
				next.result = W.persist_fail ? W.persist_fail
							     : world_persist(fx->persist.recs,
									     fx->persist.nrecs);
				if (next.result == 0)
					W.revoked_notes += fx->persist.nrevoked;
				have_next = true;
				break;
			case CORE_FX_SIGN:
				next = do_sign(fx);
				have_next = true;
				break;
			case CORE_FX_SEND:
				if (W.nsent < 16) {
					W.sent[W.nsent] = fx->send.type;
					W.sent_code[W.nsent++] = fx->send.code;
				}
				if (fx->send.type == CORE_MSG_DELIVER &&
				    fx->send.cert_len <= sizeof(W.last_deliver)) {
					memcpy(W.last_deliver, fx->send.cert, fx->send.cert_len);
					W.last_deliver_len = fx->send.cert_len;
				}
				break;
			case CORE_FX_AUDIT:
				W.audits++;
				break;
			case CORE_FX_VERIFY:
				next = do_verify(fx);
				have_next = true;
				break;
			case CORE_FX_CLOSE:
				break;
			}
		}
		if (last)
			*last = out;
		if (!have_next)
			return ret;
		ev = next;
	}
}

static int last_sent(void)
{
	return W.nsent > 0 ? W.sent[W.nsent - 1] : 0;
}

static int last_code(void)
{
	return W.nsent > 0 ? W.sent_code[W.nsent - 1] : 1;
}

/* Start a MIC session for DEV and claim it: the session waits for a key. */
static struct core *to_wait_key(const char *cn)
{
	struct core *s = new_session();

	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(run(s, ev_start_mic(cn), 0, NULL), 0);
	run(s, ev_claim(DEV), 0, NULL);
	return s;
}

static int fail_code(struct core *s, struct core_event ev)
{
	struct core_out out;
	int ret = run(s, ev, 0, &out);

	CU_ASSERT_EQUAL(core_state(s), CORE_S_DONE);
	CU_ASSERT_EQUAL(last_sent(), CORE_MSG_END);
	CU_ASSERT_EQUAL(last_code(), ret);
	CU_ASSERT_EQUAL(out.error, ret);
	CU_ASSERT(out.done);
	return ret;
}

/* ---- identity rule --------------------------------------------------------- */

static void test_mic_names(void)
{
	CU_ASSERT_FALSE(core_mic_names(NULL, DEV));
	CU_ASSERT_FALSE(core_mic_names(DEV, NULL));
	CU_ASSERT_FALSE(core_mic_names(DEV, ""));
	CU_ASSERT_FALSE(core_mic_names("X" DEV, DEV));
	CU_ASSERT_TRUE(core_mic_names("-" DEV, DEV)); /* an empty model prefix */
	/* One name only: "A-B" names B, never A-B. */
	CU_ASSERT_FALSE(core_mic_names("CP-8865-" DEV, "8865-" DEV));
	CU_ASSERT_FALSE(core_mic_names("CP-" DEV, "CP-" DEV));
	CU_ASSERT_FALSE(core_mic_names(DEV "-x", DEV));
	CU_ASSERT_FALSE(core_mic_names("SEP0011223344", DEV));
	CU_ASSERT_TRUE(core_mic_names(DEV, DEV));
	CU_ASSERT_TRUE(core_mic_names("CP-8865-" DEV, DEV));
}

/* ---- the table walk ------------------------------------------------------ */

/* Drive a fresh session into state st, with the world prepared for it. */
static struct core *reach(enum core_state st)
{
	struct core *s;
	struct core_out out;

	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	s = new_session();
	if (st == CORE_S_NEW)
		return s;
	run(s, ev_start_mic(DEV), 0, NULL);
	if (st == CORE_S_WAIT_CLAIM)
		return s;
	if (st == CORE_S_VERIFY || st == CORE_S_LOAD_AUTHFAIL || st == CORE_S_PERSIST_AUTHFAIL) {
		Capf__Device *d = world_dev(DEV);
		d->auth = CAPF__AUTH_MODE__AUTH_STRING;
		set_secret(d, "1234", false);
		W.secret = st == CORE_S_VERIFY ? "1234" : "9999";
		run(s, ev_claim(DEV), st == CORE_S_VERIFY ? CORE_FX_VERIFY : CORE_FX_LOAD, &out);
		if (st != CORE_S_VERIFY) {
			/* Stopped at the claim's own load: one step further. */
			struct core_event v = do_load(s, &out.fx[0]);
			run(s, v, CORE_FX_VERIFY, &out);
			v = do_verify(&out.fx[0]);
			run(s, v, st == CORE_S_LOAD_AUTHFAIL ? CORE_FX_LOAD : CORE_FX_PERSIST, NULL);
		}
		W.secret = NULL;
		return s;
	}
	if (st == CORE_S_WAIT_DELETE || st == CORE_S_WAIT_FETCH) {
		world_dev(DEV)->op = st == CORE_S_WAIT_DELETE ? CAPF__OPERATION__OP_DELETE
							      : CAPF__OPERATION__OP_FETCH;
		run(s, ev_claim(DEV), 0, NULL);
		return s;
	}
	if (st == CORE_S_LOAD_CLAIM) {
		run(s, ev_claim(DEV), CORE_FX_LOAD, NULL);
		return s;
	}
	run(s, ev_claim(DEV), 0, NULL);
	if (st == CORE_S_WAIT_KEY)
		return s;
	if (st == CORE_S_LOAD_KEY) {
		run(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0), CORE_FX_LOAD, NULL);
		return s;
	}
	if (st == CORE_S_SUPERSEDE) {
		/* An unacknowledged LSC of another key is in the way. */
		struct core *first = new_session();
		run(first, ev_start_mic(DEV), 0, NULL);
		core_free(s);
		run(first, ev_claim(DEV), 0, NULL);
		run(first, ev_key(key_b, CAPF__KEY_TYPE__KEY_EC_P256, 0), 0, NULL);
		core_free(first);
		s = new_session();
		run(s, ev_start_mic(DEV), 0, NULL);
		run(s, ev_claim(DEV), 0, NULL);
		run(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0), CORE_FX_PERSIST, &out);
		return s;
	}
	if (st == CORE_S_SIGN) {
		run(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0), CORE_FX_SIGN, NULL);
		return s;
	}
	if (st == CORE_S_LOAD_ISSUE || st == CORE_S_PERSIST_ISSUE) {
		/* Stop at the second load (after the signature) or the persist. */
		run(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0), CORE_FX_SIGN, &out);
		struct core_event sig = do_sign(&out.fx[0]);
		run(s, sig, st == CORE_S_LOAD_ISSUE ? CORE_FX_LOAD : CORE_FX_PERSIST, NULL);
		return s;
	}
	run(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0), 0, NULL);
	if (st == CORE_S_WAIT_ACK)
		return s;
	if (st == CORE_S_LOAD_FINISH || st == CORE_S_PERSIST_FINISH) {
		run(s, ev_simple(CORE_EV_ACK, 0),
		    st == CORE_S_LOAD_FINISH ? CORE_FX_LOAD : CORE_FX_PERSIST, NULL);
		return s;
	}
	run(s, ev_simple(CORE_EV_ACK, 0), 0, NULL);
	return s; /* CORE_S_DONE */
}

/* A plausible event of each type for whatever state the session is in. */
static struct core_event any_event(enum core_ev_type t)
{
	struct core_event ev = { .type = t, .now = NOW };
	static struct core_fx fx;

	switch (t) {
	case CORE_EV_START:
		return ev_start_mic(DEV);
	case CORE_EV_CLAIM:
		return ev_claim(DEV);
	case CORE_EV_KEY:
		return ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0);
	case CORE_EV_LOADED:
		memset(&fx, 0, sizeof(fx));
		fx.load.device = DEV;
		return do_load(NULL, &fx);
	case CORE_EV_SIGNED:
		memset(&fx, 0, sizeof(fx));
		fx.sign.device = DEV;
		fx.sign.key_handle = key_a;
		return do_sign(&fx);
	case CORE_EV_ABORT:
		ev.code = CAPF_EBADMSG;
		return ev;
	case CORE_EV_VERIFIED:
		ev.result = 0;
		return ev;
	default:
		return ev;
	}
}

static void test_table_walk(void)
{
	/* The specification, written out once more: the next state of each
	 * valid (state, event), CORE_S__COUNT for the unexpected ones. */
	static const int E = CORE_S__COUNT, D = CORE_S_DONE;
	static const int expect[CORE_S__COUNT][CORE_EV__COUNT] = {
		/* START CLAIM KEY LOADED PERSISTED SIGNED ACK DELETED FETCHED VERIFIED,
		 * then PEER_END TIMEOUT ABORT */
		[CORE_S_NEW] = { CORE_S_WAIT_CLAIM, E, E, E, E, E, E, E, E, E, E, E, D },
		[CORE_S_WAIT_CLAIM] = { E, CORE_S_LOAD_CLAIM, E, E, E, E, E, E, E, E, D, D, D },
		[CORE_S_LOAD_CLAIM] = { E, E, E, CORE_S_WAIT_KEY, E, E, E, E, E, E, D, D, D },
		[CORE_S_VERIFY] = { E, E, E, E, E, E, E, E, E, CORE_S_WAIT_KEY, D, D, D },
		[CORE_S_LOAD_AUTHFAIL] = { E, E, E, CORE_S_PERSIST_AUTHFAIL, E, E, E, E, E, E, D, D, D },
		[CORE_S_PERSIST_AUTHFAIL] = { E, E, E, E, D, E, E, E, E, E, D, D, D },
		[CORE_S_WAIT_KEY] = { E, E, CORE_S_LOAD_KEY, E, E, E, E, E, E, E, D, D, D },
		[CORE_S_LOAD_KEY] = { E, E, E, CORE_S_SIGN, E, E, E, E, E, E, D, D, D },
		[CORE_S_SUPERSEDE] = { E, E, E, E, CORE_S_SIGN, E, E, E, E, E, D, D, D },
		[CORE_S_SIGN] = { E, E, E, E, E, CORE_S_LOAD_ISSUE, E, E, E, E, D, D, D },
		[CORE_S_PERSIST_ISSUE] = { E, E, E, E, CORE_S_WAIT_ACK, E, E, E, E, E, D, D, D },
		[CORE_S_LOAD_ISSUE] = { E, E, E, CORE_S_PERSIST_ISSUE, E, E, E, E, E, E, D, D, D },
		[CORE_S_WAIT_ACK] = { E, E, E, E, E, E, CORE_S_LOAD_FINISH, E, E, E, D, D, D },
		[CORE_S_WAIT_DELETE] = { E, E, E, E, E, E, E, CORE_S_LOAD_FINISH, E, E, D, D, D },
		[CORE_S_WAIT_FETCH] = { E, E, E, E, E, E, E, E, CORE_S_LOAD_FINISH, E, D, D, D },
		[CORE_S_LOAD_FINISH] = { E, E, E, CORE_S_PERSIST_FINISH, E, E, E, E, E, E, D, D, D },
		[CORE_S_PERSIST_FINISH] = { E, E, E, E, D, E, E, E, E, E, D, D, D },
		[CORE_S_DONE] = { E, E, E, E, E, E, E, E, E, E, E, E, E },
	};


	for (int st = 0; st < CORE_S__COUNT; st++) {
		for (int t = 0; t < CORE_EV__COUNT; t++) {
			struct core *s = reach((enum core_state)st);
			struct core_event ev;
			struct core_out out;
			int ret;

			CU_ASSERT_EQUAL_FATAL((int)core_state(s), st);
			ev = any_event((enum core_ev_type)t);
			if (t == CORE_EV_PERSISTED)
				ev.result = 0;
			ret = core_step(s, &ev, &out);
			CU_ASSERT(out.nfx <= CORE_MAX_FX);
			if (expect[st][t] == E) {
				CU_ASSERT_EQUAL(ret, CAPF_EORDER);
				CU_ASSERT_EQUAL(core_state(s), CORE_S_DONE);
				if (st != CORE_S_DONE) {
					/* An ordered end: audit, END with the code, close. */
					CU_ASSERT_EQUAL(out.error, CAPF_EORDER);
					CU_ASSERT_EQUAL(out.nfx, 3);
					CU_ASSERT_EQUAL(out.fx[1].type, CORE_FX_SEND);
					CU_ASSERT_EQUAL(out.fx[1].send.code, CAPF_EORDER);
					CU_ASSERT_EQUAL(out.fx[2].type, CORE_FX_CLOSE);
				} else {
					CU_ASSERT_EQUAL(out.nfx, 0);
				}
			} else {
				if ((int)core_state(s) != expect[st][t])
					fprintf(stderr, "\n%s x %s -> %s, expected %s\n",
						core_state_name(st), core_event_name(t),
						core_state_name(core_state(s)),
						core_state_name(expect[st][t]));
				CU_ASSERT_EQUAL((int)core_state(s), expect[st][t]);
				if (expect[st][t] == CORE_S_DONE && t >= CORE_EV_PEER_END)
					CU_ASSERT(out.error < 0);
			}
			core_free(s);
		}
	}
	world_reset();
}

/* ---- whole sessions --------------------------------------------------------- */

static void test_install(void)
{
	struct core *s;
	Capf__Device *d;
	Capf__Certificate *c;

	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P384);
	s = new_session();
	CU_ASSERT_EQUAL(run(s, ev_start_mic("CP-8865-" DEV), 0, NULL), 0);
	CU_ASSERT_EQUAL(run(s, ev_claim(DEV), 0, NULL), 0);
	CU_ASSERT_EQUAL(core_state(s), CORE_S_WAIT_KEY);
	CU_ASSERT_EQUAL(last_sent(), CORE_MSG_OP_REQUEST);
	CU_ASSERT_STRING_EQUAL(core_auth_method(s), "mic");
	CU_ASSERT_EQUAL(run(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P384, 0), 0, NULL), 0);
	CU_ASSERT_EQUAL(core_state(s), CORE_S_WAIT_ACK);
	CU_ASSERT_EQUAL(last_sent(), CORE_MSG_DELIVER);
	CU_ASSERT_EQUAL(W.signs, 1);
	/* Write-ahead: recorded, unconfirmed, before the delivery. */
	CU_ASSERT_EQUAL_FATAL(W.ncert, 1);
	c = W.cert[0];
	CU_ASSERT_EQUAL(c->state, CAPF__CERT_STATE__CERT_UNCONFIRMED);
	CU_ASSERT_STRING_EQUAL(c->device, DEV);
	CU_ASSERT_EQUAL(memcmp(c->spki_sha256.data, key_a, 32), 0);
	d = world_dev(DEV);
	CU_ASSERT_EQUAL(d->status, CAPF__OP_STATUS__STATUS_ISSUED);
	CU_ASSERT_EQUAL(d->pending_serial.len, 2);
	CU_ASSERT_EQUAL(d->revision, 2);
	CU_ASSERT_STRING_EQUAL(d->mic_fingerprint, ev_start_mic(DEV).start.peer.fingerprint);

	struct core_out out;
	CU_ASSERT_EQUAL(run(s, ev_simple(CORE_EV_ACK, 0), 0, &out), 0);
	CU_ASSERT(out.success);
	CU_ASSERT_EQUAL(core_state(s), CORE_S_DONE);
	CU_ASSERT_EQUAL(last_sent(), CORE_MSG_END);
	CU_ASSERT_EQUAL(last_code(), 0);
	d = world_dev(DEV);
	CU_ASSERT_EQUAL(d->op, CAPF__OPERATION__OP_NONE);
	CU_ASSERT_EQUAL(d->status, CAPF__OP_STATUS__STATUS_SUCCESS);
	CU_ASSERT_EQUAL(d->lsc_serial.len, 2);
	CU_ASSERT_EQUAL(d->pending_serial.len, 0);
	CU_ASSERT_EQUAL(d->revision, 3);
	CU_ASSERT_EQUAL(W.cert[0]->state, CAPF__CERT_STATE__CERT_ACTIVE);
	CU_ASSERT_EQUAL(W.cert[0]->revision, 2);
	core_free(s);

	/* The operation is done: a new session finds nothing to do. */
	s = new_session();
	run(s, ev_start_mic(DEV), 0, NULL);
	CU_ASSERT_EQUAL(fail_code(s, ev_claim(DEV)), CAPF_ENO_OPERATION);
	core_free(s);
	world_reset();
}

/* Each refusal before anything is issued leaves the world as it was. */
static void check_refusal(int code, void (*setup)(void), const char *cn, struct core_event key)
{
	struct core *s;
	int ret;

	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	if (setup)
		setup();
	s = new_session();
	struct core_event st = ev_start_mic(cn != NULL ? cn : DEV);
	if (cn != NULL && strcmp(cn, "none") == 0)
		st.start.peer.present = false;
	if (cn != NULL && strcmp(cn, "untrusted") == 0) {
		st.start.peer.mic_result = CAPF_EUNTRUSTED;
		snprintf(st.start.peer.cn, sizeof(st.start.peer.cn), DEV);
	}
	run(s, st, 0, NULL);
	ret = run(s, ev_claim(DEV), 0, NULL);
	if (ret == 0 && core_state(s) == CORE_S_WAIT_KEY)
		ret = fail_code(s, key);
	if (ret != code)
		fprintf(stderr, "\nexpected %s, got %s\n", capf_errname(code), capf_errname(ret));
	CU_ASSERT_EQUAL(ret, code);
	CU_ASSERT_EQUAL(core_state(s), CORE_S_DONE);
	CU_ASSERT_EQUAL(W.ncert, 0);
	/* Only a write that failed was tried. */
	CU_ASSERT_EQUAL(W.persists, W.persist_fail ? 1u : 0u);
	for (size_t i = 0; i < W.ndev; i++)
		CU_ASSERT_EQUAL(W.dev[i]->revision, 1);
	CU_ASSERT_EQUAL(last_code(), code);
	core_free(s);
}

static void no_op(void) { world_dev(DEV)->op = CAPF__OPERATION__OP_NONE; }
static void past_deadline(void) { world_dev(DEV)->deadline = NOW - 1; }
static void op_delete_v1(void)
{
	world_dev(DEV)->op = CAPF__OPERATION__OP_DELETE;
	W.caps = 0;
}
static void op_fetch_v1(void)
{
	world_dev(DEV)->op = CAPF__OPERATION__OP_FETCH;
	W.caps = 0;
}
static void only_rsa_phone(void)
{
	world_dev(DEV)->key_order = CAPF__KEY_ORDER__KEY_ORDER_EC_ONLY;
	W.supported[0] = CAPF__KEY_TYPE__KEY_RSA_2048;
	W.nsupported = 1;
}
static void null_disabled(void) { world_dev(DEV)->auth = CAPF__AUTH_MODE__AUTH_NULL_STRING; }
static void string_missing(void)
{
	world_dev(DEV)->auth = CAPF__AUTH_MODE__AUTH_STRING;
	set_secret(world_dev(DEV), "4321", false);
}
static void auth_string(void) { world_dev(DEV)->auth = CAPF__AUTH_MODE__AUTH_STRING; }
static void claimed(void) { snprintf(W.claimed[0], sizeof(W.claimed[0]), DEV); }
static void load_fails(void) { W.load_fail = CAPF_EIO; }
static void sign_fails(void) { W.sign_fail = CAPF_ERETRY; }
static void persist_fails(void) { W.persist_fail = CAPF_ENOSPC; }
static void unknown(void) { snprintf(world_dev(DEV)->name, 2, "X"); }

static void test_refusals(void)
{
	struct core_event good = ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0);
	struct core_event bare = good;

	bare.key.kind = CORE_KEY_SPKI;
	check_refusal(CAPF_EUNKNOWN_DEVICE, unknown, NULL, good);
	check_refusal(CAPF_ENO_OPERATION, no_op, NULL, good);
	check_refusal(CAPF_EDEADLINE, past_deadline, NULL, good);
	check_refusal(CAPF_ENOTSUP, op_delete_v1, NULL, good);
	check_refusal(CAPF_ENOTSUP, op_fetch_v1, NULL, good);
	check_refusal(CAPF_EAUTH, auth_string, NULL, good);     /* no string set */
	check_refusal(CAPF_EAUTH, string_missing, NULL, good);  /* none offered */
	check_refusal(CAPF_EAUTH, null_disabled, NULL, good);
	check_refusal(CAPF_EPOLICY, only_rsa_phone, NULL, good);
	check_refusal(CAPF_EBUSY, claimed, NULL, good);
	check_refusal(CAPF_ERETRY, load_fails, NULL, good);
	check_refusal(CAPF_ENOCERT, NULL, "none", good);
	check_refusal(CAPF_EUNTRUSTED, NULL, "untrusted", good);
	check_refusal(CAPF_EIDENTITY, NULL, OTHER, good);
	check_refusal(CAPF_EIDENTITY, NULL, "X" DEV, good);
	check_refusal(CAPF_EBADCSR, NULL, NULL, ev_key(key_a, 0, CAPF_EBADCSR));
	check_refusal(CAPF_EPOLICY, NULL, NULL, ev_key(key_a, 0, CAPF_EPOLICY));
	check_refusal(CAPF_ECSRSIG, NULL, NULL, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, CAPF_ECSRSIG));
	check_refusal(CAPF_EBINDING, NULL, NULL, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, CAPF_EBINDING));
	check_refusal(CAPF_EBINDING, NULL, NULL, bare);
	check_refusal(CAPF_EPOLICY, NULL, NULL, ev_key(key_a, CAPF__KEY_TYPE__KEY_RSA_2048, 0));
	check_refusal(CAPF_ERETRY, sign_fails, NULL, good);
	check_refusal(CAPF_ERETRY, persist_fails, NULL, good);
	check_refusal(CAPF_EORDER, NULL, NULL, ev_simple(CORE_EV_ACK, 0));
	check_refusal(CAPF_ETIMEOUT, NULL, NULL, ev_simple(CORE_EV_TIMEOUT, 0));
	check_refusal(CAPF_EREJECTED, NULL, NULL, ev_simple(CORE_EV_PEER_END, 5));
	check_refusal(CAPF_EFRAME_TOO_BIG, NULL, NULL, ev_simple(CORE_EV_ABORT, CAPF_EFRAME_TOO_BIG));
	check_refusal(CAPF_EORDER, NULL, NULL, ev_claim(DEV));

	/* A name that is no device name is refused before any read. */
	struct core *s = new_session();
	W.loads = 0;
	run(s, ev_start_mic(DEV), 0, NULL);
	CU_ASSERT_EQUAL(fail_code(s, ev_claim("bad name!")), CAPF_EBADMSG);
	CU_ASSERT_EQUAL(W.loads, 0);
	core_free(s);
	world_reset();
}

/* A bare key is accepted where the transport has no channel binding (the
 * phone authenticated inside this very session). */
static void test_bare_key_without_binding(void)
{
	struct core *s;
	struct core_event st, k;

	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_RSA_2048);
	s = new_session();
	st = ev_start_mic(DEV);
	st.start.binding_len = 0;
	run(s, st, 0, NULL);
	run(s, ev_claim(DEV), 0, NULL);
	k = ev_key(key_a, CAPF__KEY_TYPE__KEY_RSA_2048, 0);
	k.key.kind = CORE_KEY_SPKI;
	CU_ASSERT_EQUAL(run(s, k, 0, NULL), 0);
	CU_ASSERT_EQUAL(core_state(s), CORE_S_WAIT_ACK);
	core_free(s);
	world_reset();
}

/* Failures after the certificate is recorded. */
static void test_failures_after_issue(void)
{
	struct core *s;

	/* The phone could not store it: it stays recorded, unconfirmed, and
	 * the operation pending. */
	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	s = to_wait_key(DEV);
	run(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0), 0, NULL);
	CU_ASSERT_EQUAL(fail_code(s, ev_simple(CORE_EV_ACK, 3)), CAPF_EREJECTED);
	CU_ASSERT_EQUAL(W.cert[0]->state, CAPF__CERT_STATE__CERT_UNCONFIRMED);
	CU_ASSERT_EQUAL(world_dev(DEV)->op, CAPF__OPERATION__OP_INSTALL);
	core_free(s);

	/* The completion cannot be written: retry later, nothing half done. */
	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	s = to_wait_key(DEV);
	run(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0), 0, NULL);
	W.persist_fail = CAPF_EIO;
	CU_ASSERT_EQUAL(fail_code(s, ev_simple(CORE_EV_ACK, 0)), CAPF_ERETRY);
	CU_ASSERT_EQUAL(W.cert[0]->state, CAPF__CERT_STATE__CERT_UNCONFIRMED);
	CU_ASSERT_EQUAL(world_dev(DEV)->status, CAPF__OP_STATUS__STATUS_ISSUED);
	core_free(s);

	/* A timeout while the phone holds its certificate. */
	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	s = to_wait_key(DEV);
	run(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0), 0, NULL);
	CU_ASSERT_EQUAL(fail_code(s, ev_simple(CORE_EV_TIMEOUT, 0)), CAPF_ETIMEOUT);
	core_free(s);

	/* Serials are unique: the certificate record is create-only, and a
	 * serial the store already knows means retry, with nothing sent. */
	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	s = to_wait_key(DEV);
	{
		struct core_out out;
		run(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0), CORE_FX_PERSIST, &out);
		CU_ASSERT_EQUAL_FATAL(core_state(s), CORE_S_PERSIST_ISSUE);
		for (size_t i = 0; i < out.nfx; i++) {
			if (out.fx[i].type != CORE_FX_PERSIST)
				continue;
			CU_ASSERT_EQUAL_FATAL(out.fx[i].persist.nrecs, 2);
			CU_ASSERT_EQUAL(out.fx[i].persist.recs[0]->body_case,
					CAPF__STORE_RECORD__BODY_CERT);
			CU_ASSERT(out.fx[i].persist.recs[0]->create_only);
			CU_ASSERT(out.fx[i].persist.recs[1]->check_revision);
		}
		struct core_event done = ev_simple(CORE_EV_PERSISTED, 0);
		done.result = CAPF_EEXIST;
		CU_ASSERT_EQUAL(fail_code(s, done), CAPF_ERETRY);
		for (size_t i = 0; i < W.nsent; i++)
			CU_ASSERT_NOT_EQUAL(W.sent[i], CORE_MSG_DELIVER);
	}
	core_free(s);

	/* Conflicts without end: retry later after a bounded number. */
	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	s = to_wait_key(DEV);
	W.persist_fail = CAPF_ESTALE;
	CU_ASSERT_EQUAL(fail_code(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0)), CAPF_ERETRY);
	CU_ASSERT_EQUAL(W.persists, 9);
	CU_ASSERT_EQUAL(W.ncert, 0);
	core_free(s);
	world_reset();
}

/* ---- interleavings ----------------------------------------------------------- */

static void cancel_now(struct world *w, struct core *s)
{
	Capf__Device *d = world_dev(DEV);
	(void)w;
	(void)s;
	if (d->op != CAPF__OPERATION__OP_NONE) {
		d->op = CAPF__OPERATION__OP_NONE;
		d->status = CAPF__OP_STATUS__STATUS_NONE;
		admin_touch(d, true);
	}
}

static void test_cancel_between_claim_and_key(void)
{
	struct core *s;

	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	s = to_wait_key(DEV);
	cancel_now(&W, s);
	CU_ASSERT_EQUAL(fail_code(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0)), CAPF_ECANCELED);
	CU_ASSERT_EQUAL(W.signs, 0);
	CU_ASSERT_EQUAL(W.ncert, 0);
	CU_ASSERT_EQUAL(world_dev(DEV)->op, CAPF__OPERATION__OP_NONE);
	core_free(s);

	/* Cancelled while the signature is made: it is never recorded. */
	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	s = to_wait_key(DEV);
	struct core_out out;
	run(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0), CORE_FX_SIGN, &out);
	cancel_now(&W, s);
	CU_ASSERT_EQUAL(fail_code(s, do_sign(&out.fx[0])), CAPF_ECANCELED);
	CU_ASSERT_EQUAL(W.ncert, 0);
	CU_ASSERT_EQUAL(W.persists, 0);
	core_free(s);

	/* Cancelled between the last read and the write: the write fails on
	 * its revision, the session reads again and stops. */
	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	s = to_wait_key(DEV);
	W.before_persist = cancel_now;
	CU_ASSERT_EQUAL(fail_code(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0)), CAPF_ECANCELED);
	CU_ASSERT_EQUAL(W.ncert, 0);
	CU_ASSERT_EQUAL(world_dev(DEV)->op, CAPF__OPERATION__OP_NONE);
	CU_ASSERT_EQUAL(world_dev(DEV)->pending_serial.len, 0);
	core_free(s);
	world_reset();
}

static void test_key_type_changed(void)
{
	struct core *s;
	Capf__Device *d;

	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	s = to_wait_key(DEV);
	d = world_dev(DEV);
	d->key_type = CAPF__KEY_TYPE__KEY_RSA_3072;
	admin_touch(d, true);
	/* The phone made the key it was asked for; the record now wants
	 * another: refused. */
	CU_ASSERT_EQUAL(fail_code(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0)), CAPF_EPOLICY);
	CU_ASSERT_EQUAL(W.signs, 0);
	CU_ASSERT_EQUAL(W.ncert, 0);
	core_free(s);
	world_reset();
}

static void change_deadline(struct world *w, struct core *s)
{
	Capf__Device *d = world_dev(DEV);
	(void)s;
	if (d->deadline == 0) {
		d->deadline = NOW + 7200;
		admin_touch(d, false);
	}
	w->before_persist = NULL;
}

static void reschedule_rsa(struct world *w, struct core *s)
{
	Capf__Device *d = world_dev(DEV);
	(void)s;
	d->key_type = CAPF__KEY_TYPE__KEY_RSA_2048;
	d->status = CAPF__OP_STATUS__STATUS_PENDING;
	admin_touch(d, true);
	w->before_persist = NULL;
}

static void test_admin_races_issuance(void)
{
	struct core *s;
	Capf__Device *d;
	struct core_out out;

	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	s = to_wait_key(DEV);
	/* The admin extends the deadline just before the issuance is
	 * written: the write conflicts, is decided again, and both land. */
	W.before_persist = change_deadline;
	CU_ASSERT_EQUAL(run(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0), 0, NULL), 0);
	CU_ASSERT_EQUAL(core_state(s), CORE_S_WAIT_ACK);
	CU_ASSERT_EQUAL(W.signs, 1);
	CU_ASSERT_EQUAL(W.persists, 2);
	d = world_dev(DEV);
	CU_ASSERT_EQUAL(d->deadline, NOW + 7200);
	CU_ASSERT_EQUAL(d->pending_serial.len, 2);
	CU_ASSERT_EQUAL(d->status, CAPF__OP_STATUS__STATUS_ISSUED);

	/* The admin asks for an RSA key just before the acknowledgement is
	 * written: the phone's certificate becomes current, and the new
	 * request stays pending. */
	W.before_persist = reschedule_rsa;
	CU_ASSERT_EQUAL(run(s, ev_simple(CORE_EV_ACK, 0), 0, &out), 0);
	CU_ASSERT(out.success);
	d = world_dev(DEV);
	CU_ASSERT_EQUAL(d->lsc_serial.len, 2);
	CU_ASSERT_EQUAL(d->pending_serial.len, 0);
	CU_ASSERT_EQUAL(d->op, CAPF__OPERATION__OP_INSTALL);
	CU_ASSERT_EQUAL(d->key_type, CAPF__KEY_TYPE__KEY_RSA_2048);
	CU_ASSERT_EQUAL(d->status, CAPF__OP_STATUS__STATUS_PENDING);
	CU_ASSERT_EQUAL(d->deadline, NOW + 7200);
	CU_ASSERT_EQUAL(W.cert[0]->state, CAPF__CERT_STATE__CERT_ACTIVE);
	core_free(s);
	world_reset();
}

static void test_revoke_before_ack(void)
{
	struct core *s;
	Capf__Device *d;

	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	s = to_wait_key(DEV);
	run(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0), 0, NULL);
	CU_ASSERT_EQUAL_FATAL(W.ncert, 1);
	W.cert[0]->state = CAPF__CERT_STATE__CERT_REVOKED;
	W.cert[0]->revision++;
	CU_ASSERT_EQUAL(fail_code(s, ev_simple(CORE_EV_ACK, 0)), CAPF_EREVOKED);
	d = world_dev(DEV);
	CU_ASSERT_EQUAL(d->lsc_serial.len, 0);
	CU_ASSERT_EQUAL(d->pending_serial.len, 0);
	CU_ASSERT_EQUAL(d->status, CAPF__OP_STATUS__STATUS_FAILED);
	CU_ASSERT_EQUAL(d->last_error, (uint32_t)-CAPF_EREVOKED);
	CU_ASSERT_EQUAL(d->op, CAPF__OPERATION__OP_INSTALL);
	core_free(s);
	world_reset();
}

/* ---- one current LSC ---------------------------------------------------------- */

static void test_same_key_gets_same_certificate(void)
{
	struct core *s;
	uint8_t first[256];
	size_t first_len;

	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	s = to_wait_key(DEV);
	run(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0), 0, NULL);
	memcpy(first, W.last_deliver, W.last_deliver_len);
	first_len = W.last_deliver_len;
	/* The phone vanishes before its acknowledgement. */
	fail_code(s, ev_simple(CORE_EV_ABORT, CAPF_ECONNRESET));
	core_free(s);

	s = to_wait_key(DEV);
	CU_ASSERT_EQUAL(run(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0), 0, NULL), 0);
	CU_ASSERT_EQUAL(last_sent(), CORE_MSG_DELIVER);
	CU_ASSERT_EQUAL(W.signs, 1);
	CU_ASSERT_EQUAL(W.ncert, 1);
	CU_ASSERT_EQUAL(W.last_deliver_len, first_len);
	CU_ASSERT_EQUAL(memcmp(W.last_deliver, first, first_len), 0);
	CU_ASSERT_EQUAL(run(s, ev_simple(CORE_EV_ACK, 0), 0, NULL), 0);
	CU_ASSERT_EQUAL(W.cert[0]->state, CAPF__CERT_STATE__CERT_ACTIVE);
	CU_ASSERT_EQUAL(world_dev(DEV)->status, CAPF__OP_STATUS__STATUS_SUCCESS);
	core_free(s);
	world_reset();
}

static void test_other_key_supersedes_unacknowledged(void)
{
	struct core *s;

	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	s = to_wait_key(DEV);
	run(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0), 0, NULL);
	core_free(s);

	s = to_wait_key(DEV);
	CU_ASSERT_EQUAL(run(s, ev_key(key_b, CAPF__KEY_TYPE__KEY_EC_P256, 0), 0, NULL), 0);
	CU_ASSERT_EQUAL(core_state(s), CORE_S_WAIT_ACK);
	CU_ASSERT_EQUAL(W.signs, 2);
	CU_ASSERT_EQUAL_FATAL(W.ncert, 2);
	CU_ASSERT_EQUAL(W.cert[0]->state, CAPF__CERT_STATE__CERT_REVOKED);
	CU_ASSERT_EQUAL(W.cert[0]->revocation_reason, 4);
	CU_ASSERT_EQUAL(W.cert[1]->state, CAPF__CERT_STATE__CERT_UNCONFIRMED);
	CU_ASSERT_EQUAL(W.revoked_notes, 1);
	CU_ASSERT_EQUAL(memcmp(world_dev(DEV)->pending_serial.data, W.cert[1]->serial.data, 2), 0);
	core_free(s);
	world_reset();
}

/* The unacknowledged LSC revoked by an administrator: the next session
 * issues a new one instead of waiting for the revoked one forever. */
static void test_revoked_pending_replaced(void)
{
	struct core *s;

	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	s = to_wait_key(DEV);
	run(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0), 0, NULL);
	core_free(s); /* gone before its acknowledgement */
	CU_ASSERT_EQUAL_FATAL(W.ncert, 1);
	W.cert[0]->state = CAPF__CERT_STATE__CERT_REVOKED;
	W.cert[0]->revision++;

	s = to_wait_key(DEV);
	CU_ASSERT_EQUAL(run(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0), 0, NULL), 0);
	CU_ASSERT_EQUAL(core_state(s), CORE_S_WAIT_ACK);
	CU_ASSERT_EQUAL(W.ncert, 2);
	CU_ASSERT_EQUAL(run(s, ev_simple(CORE_EV_ACK, 0), 0, NULL), 0);
	CU_ASSERT_EQUAL(memcmp(world_dev(DEV)->lsc_serial.data, W.cert[1]->serial.data, 2), 0);
	core_free(s);
	world_reset();
}

/* A key that another device's LSC holds gets no certificate here. */
static void test_key_of_another_device(void)
{
	struct core *s;

	world_reset();
	add_device(OTHER, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	s = new_session();
	run(s, ev_start_mic(OTHER), 0, NULL);
	run(s, ev_claim(OTHER), 0, NULL);
	run(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0), 0, NULL);
	CU_ASSERT_EQUAL(core_state(s), CORE_S_WAIT_ACK);
	core_free(s);

	s = to_wait_key(DEV);
	CU_ASSERT_EQUAL(fail_code(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0)), CAPF_EKEYINUSE);
	CU_ASSERT_EQUAL(W.ncert, 1);
	CU_ASSERT_EQUAL(W.signs, 1);
	core_free(s);
	world_reset();
}

static void install_once(const uint8_t *key)
{
	struct core *s = to_wait_key(DEV);

	run(s, ev_key(key, CAPF__KEY_TYPE__KEY_EC_P256, 0), 0, NULL);
	CU_ASSERT_EQUAL(run(s, ev_simple(CORE_EV_ACK, 0), 0, NULL), 0);
	core_free(s);
}

static void test_ack_supersedes_current(void)
{
	Capf__Device *d;

	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	install_once(key_a);
	d = world_dev(DEV);
	d->op = CAPF__OPERATION__OP_INSTALL;
	admin_touch(d, true);
	install_once(key_b);
	CU_ASSERT_EQUAL_FATAL(W.ncert, 2);
	CU_ASSERT_EQUAL(W.cert[0]->state, CAPF__CERT_STATE__CERT_REVOKED);
	CU_ASSERT_EQUAL(W.cert[0]->revocation_reason, 4);
	CU_ASSERT_EQUAL(W.cert[1]->state, CAPF__CERT_STATE__CERT_ACTIVE);
	CU_ASSERT_EQUAL(memcmp(world_dev(DEV)->lsc_serial.data, W.cert[1]->serial.data, 2), 0);

	/* With a grace period, the old one is only scheduled for revocation. */
	world_reset();
	W.supersede_grace = 3600;
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	install_once(key_a);
	d = world_dev(DEV);
	d->op = CAPF__OPERATION__OP_INSTALL;
	admin_touch(d, true);
	install_once(key_b);
	CU_ASSERT_EQUAL_FATAL(W.ncert, 2);
	CU_ASSERT_EQUAL(W.cert[0]->state, CAPF__CERT_STATE__CERT_ACTIVE);
	CU_ASSERT_EQUAL(W.cert[0]->revoke_after, NOW + 3600);
	CU_ASSERT_EQUAL(W.revoked_notes, 0);
	world_reset();
}

/* ---- authentication by the certificate a phone holds -------------------------- */

/* Start a session presenting the LSC cert i of the world. */
static struct core_event ev_start_lsc(size_t i, const char *cn)
{
	struct core_event ev = ev_start_mic(cn);

	ev.start.peer.mic_result = CAPF_EUNTRUSTED;
	ev.start.peer.lsc_result = 0;
	memcpy(ev.start.peer.serial, W.cert[i]->serial.data, W.cert[i]->serial.len);
	ev.start.peer.serial_len = W.cert[i]->serial.len;
	return ev;
}

static int lsc_session(struct core_event st, Capf__AuthMode mode)
{
	Capf__Device *d = world_dev(DEV);
	struct core *s = new_session();
	int ret;

	d->op = CAPF__OPERATION__OP_INSTALL;
	d->auth = mode;
	admin_touch(d, true);
	run(s, st, 0, NULL);
	ret = run(s, ev_claim(DEV), 0, NULL);
	if (ret == 0 && core_state(s) == CORE_S_WAIT_KEY) {
		CU_ASSERT_STRING_EQUAL(core_auth_method(s), "lsc");
	}
	core_free(s);
	return ret;
}

static void test_lsc_authentication(void)
{
	struct core_event st;

	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	install_once(key_a);

	/* The current LSC authenticates. */
	CU_ASSERT_EQUAL(lsc_session(ev_start_lsc(0, DEV), CAPF__AUTH_MODE__AUTH_LSC_OR_MIC), 0);
	CU_ASSERT_EQUAL(lsc_session(ev_start_lsc(0, DEV), CAPF__AUTH_MODE__AUTH_MIC_OR_LSC), 0);
	/* Not for a mode that wants the MIC. */
	CU_ASSERT_EQUAL(lsc_session(ev_start_lsc(0, DEV), CAPF__AUTH_MODE__AUTH_MIC), CAPF_EUNTRUSTED);
	/* Not one naming another device. */
	CU_ASSERT_EQUAL(lsc_session(ev_start_lsc(0, OTHER), CAPF__AUTH_MODE__AUTH_LSC_OR_MIC),
			CAPF_EIDENTITY);
	/* Not one from a CA this server does not trust. */
	st = ev_start_lsc(0, DEV);
	st.start.peer.lsc_result = CAPF_EUNTRUSTED;
	CU_ASSERT_EQUAL(lsc_session(st, CAPF__AUTH_MODE__AUTH_LSC_OR_MIC), CAPF_EUNTRUSTED);
	/* Not one the store does not know. */
	st = ev_start_lsc(0, DEV);
	st.start.peer.serial[1] ^= 0xff;
	CU_ASSERT_EQUAL(lsc_session(st, CAPF__AUTH_MODE__AUTH_LSC_OR_MIC), CAPF_EUNTRUSTED);

	/* Superseded: a newer LSC is current. */
	install_once(key_b);
	CU_ASSERT_EQUAL(lsc_session(ev_start_lsc(0, DEV), CAPF__AUTH_MODE__AUTH_LSC_OR_MIC),
			CAPF_EREVOKED);
	W.cert[0]->state = CAPF__CERT_STATE__CERT_ACTIVE; /* say, within a grace period */
	CU_ASSERT_EQUAL(lsc_session(ev_start_lsc(0, DEV), CAPF__AUTH_MODE__AUTH_LSC_OR_MIC),
			CAPF_ESUPERSEDED);
	/* Expired per the record. */
	W.cert[1]->not_after = NOW - 10;
	CU_ASSERT_EQUAL(lsc_session(ev_start_lsc(1, DEV), CAPF__AUTH_MODE__AUTH_LSC_OR_MIC),
			CAPF_EEXPIRED);
	W.cert[1]->not_after = NOW + 1000;
	/* Revoked per the record, though the transport's CRL did not say. */
	W.cert[1]->state = CAPF__CERT_STATE__CERT_REVOKED;
	CU_ASSERT_EQUAL(lsc_session(ev_start_lsc(1, DEV), CAPF__AUTH_MODE__AUTH_LSC_OR_MIC),
			CAPF_EREVOKED);
	/* With a MIC as well, the MIC is the way in when the LSC fails. */
	st = ev_start_lsc(1, DEV);
	st.start.peer.mic_result = 0;
	{
		Capf__Device *d = world_dev(DEV);
		struct core *s = new_session();
		d->auth = CAPF__AUTH_MODE__AUTH_LSC_OR_MIC;
		run(s, st, 0, NULL);
		CU_ASSERT_EQUAL(run(s, ev_claim(DEV), 0, NULL), 0);
		CU_ASSERT_STRING_EQUAL(core_auth_method(s), "mic");
		core_free(s);
	}
	world_reset();
}


/* ---- operations ------------------------------------------------------------- */

static void test_delete(void)
{
	struct core *s;
	Capf__Device *d;
	struct core_out out;

	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	install_once(key_a);
	d = world_dev(DEV);
	d->op = CAPF__OPERATION__OP_DELETE;
	admin_touch(d, true);

	/* The phone refuses: nothing changes, the operation stays. */
	s = to_wait_key(DEV);
	CU_ASSERT_EQUAL(core_state(s), CORE_S_WAIT_DELETE);
	CU_ASSERT_EQUAL(W.sent[W.nsent - 1], CORE_MSG_OP_REQUEST);
	CU_ASSERT_EQUAL(fail_code(s, ev_simple(CORE_EV_DELETED, 1)), CAPF_EREJECTED);
	CU_ASSERT_EQUAL(W.cert[0]->state, CAPF__CERT_STATE__CERT_ACTIVE);
	CU_ASSERT_EQUAL(world_dev(DEV)->op, CAPF__OPERATION__OP_DELETE);
	core_free(s);

	/* It confirms: the LSC is revoked (cessation of operation). */
	s = to_wait_key(DEV);
	CU_ASSERT_EQUAL(run(s, ev_simple(CORE_EV_DELETED, 0), 0, &out), 0);
	CU_ASSERT(out.success);
	CU_ASSERT_EQUAL(last_code(), 0);
	CU_ASSERT_EQUAL(W.cert[0]->state, CAPF__CERT_STATE__CERT_REVOKED);
	CU_ASSERT_EQUAL(W.cert[0]->revocation_reason, 5);
	CU_ASSERT_EQUAL(W.revoked_notes, 1);
	d = world_dev(DEV);
	CU_ASSERT_EQUAL(d->lsc_serial.len, 0);
	CU_ASSERT_EQUAL(d->op, CAPF__OPERATION__OP_NONE);
	CU_ASSERT_EQUAL(d->status, CAPF__OP_STATUS__STATUS_SUCCESS);
	core_free(s);
	world_reset();
}

static void test_fetch(void)
{
	struct core *s;
	Capf__Device *d;
	struct core_event ev = ev_simple(CORE_EV_FETCHED, 0);
	static const uint8_t c1[] = "LSC-DER", c2[] = "MIC-DER";
	const uint8_t *certs[2] = { c1, c2 };
	size_t lens[2] = { sizeof(c1), sizeof(c2) };

	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_FETCH, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	s = to_wait_key(DEV);
	CU_ASSERT_EQUAL(core_state(s), CORE_S_WAIT_FETCH);
	ev.report.certs = certs;
	ev.report.lens = lens;
	ev.report.n = 2;
	CU_ASSERT_EQUAL(run(s, ev, 0, NULL), 0);
	d = world_dev(DEV);
	CU_ASSERT_EQUAL_FATAL(d->n_fetched, 2);
	CU_ASSERT_EQUAL(memcmp(d->fetched[1].data, c2, sizeof(c2)), 0);
	CU_ASSERT_EQUAL(d->fetched_at, NOW);
	CU_ASSERT_EQUAL(d->op, CAPF__OPERATION__OP_NONE);
	CU_ASSERT_EQUAL(d->status, CAPF__OP_STATUS__STATUS_SUCCESS);
	CU_ASSERT_EQUAL(W.ncert, 0);
	core_free(s);

	/* A report that breaks the bounds is refused and not kept. */
	d->op = CAPF__OPERATION__OP_FETCH;
	admin_touch(d, true);
	s = to_wait_key(DEV);
	lens[0] = FETCH_CERT_MAX + 1;
	CU_ASSERT_EQUAL(fail_code(s, ev), CAPF_EBADMSG);
	CU_ASSERT_EQUAL(world_dev(DEV)->op, CAPF__OPERATION__OP_FETCH);
	core_free(s);
	world_reset();
}

static void test_nothing_to_do_and_deadline(void)
{
	struct core *s;

	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_NONE, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	s = new_session();
	run(s, ev_start_mic(DEV), 0, NULL);
	CU_ASSERT_EQUAL(fail_code(s, ev_claim(DEV)), CAPF_ENO_OPERATION);
	CU_ASSERT_EQUAL(W.persists, 0);
	core_free(s);

	/* A deadline in the future is no obstacle; one passed is. */
	world_dev(DEV)->op = CAPF__OPERATION__OP_INSTALL;
	world_dev(DEV)->deadline = NOW + 1;
	s = to_wait_key(DEV);
	CU_ASSERT_EQUAL(core_state(s), CORE_S_WAIT_KEY);
	core_free(s);
	world_dev(DEV)->deadline = NOW - 1;
	s = new_session();
	run(s, ev_start_mic(DEV), 0, NULL);
	CU_ASSERT_EQUAL(fail_code(s, ev_claim(DEV)), CAPF_EDEADLINE);
	core_free(s);
	world_reset();
}

static void test_renewal_window(void)
{
	struct core *s;
	Capf__Device *d;
	struct core_event st;

	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	install_once(key_a);
	/* Nothing scheduled, the LSC at 90 % of its life, a window of 33 %. */
	W.cert[0]->not_before = NOW - 90 * 86400;
	W.cert[0]->not_after = NOW + 10 * 86400;
	st = ev_start_lsc(0, DEV);

	s = new_session(); /* off by default */
	run(s, st, 0, NULL);
	CU_ASSERT_EQUAL(fail_code(s, ev_claim(DEV)), CAPF_ENO_OPERATION);
	core_free(s);

	W.cfg.renew_percent = 33;
	W.cert[0]->not_before = NOW - 50 * 86400; /* at half its life: not yet */
	W.cert[0]->not_after = NOW + 50 * 86400;
	s = new_session();
	run(s, st, 0, NULL);
	CU_ASSERT_EQUAL(fail_code(s, ev_claim(DEV)), CAPF_ENO_OPERATION);
	core_free(s);

	W.cert[0]->not_before = NOW - 90 * 86400;
	W.cert[0]->not_after = NOW + 10 * 86400;
	s = new_session();
	run(s, st, 0, NULL);
	CU_ASSERT_EQUAL(run(s, ev_claim(DEV), 0, NULL), 0);
	CU_ASSERT_EQUAL(core_state(s), CORE_S_WAIT_KEY);
	CU_ASSERT(core_renewal(s));
	run(s, ev_key(key_b, CAPF__KEY_TYPE__KEY_EC_P256, 0), 0, NULL);
	CU_ASSERT_EQUAL(run(s, ev_simple(CORE_EV_ACK, 0), 0, NULL), 0);
	d = world_dev(DEV);
	CU_ASSERT_EQUAL(d->op, CAPF__OPERATION__OP_NONE);
	CU_ASSERT_EQUAL(d->status, CAPF__OP_STATUS__STATUS_SUCCESS);
	CU_ASSERT_EQUAL_FATAL(W.ncert, 2);
	CU_ASSERT_EQUAL(W.cert[0]->state, CAPF__CERT_STATE__CERT_REVOKED);
	CU_ASSERT_EQUAL(memcmp(d->lsc_serial.data, W.cert[1]->serial.data, 2), 0);
	core_free(s);

	/* A MIC alone never opens the window. */
	s = new_session();
	run(s, ev_start_mic(DEV), 0, NULL);
	CU_ASSERT_EQUAL(fail_code(s, ev_claim(DEV)), CAPF_ENO_OPERATION);
	core_free(s);
	world_reset();
}

static void test_key_order_and_validity(void)
{
	struct core *s;
	Capf__Device *d;
	struct core_out out;

	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_RSA_3072);
	d = world_dev(DEV);
	d->key_order = CAPF__KEY_ORDER__KEY_ORDER_EC_PREFERRED;
	d->ec_key_type = CAPF__KEY_TYPE__KEY_EC_P521;
	d->lsc_days = 90;

	/* EC preferred, the phone makes P-521: asked for P-521. */
	W.supported[0] = CAPF__KEY_TYPE__KEY_RSA_3072;
	W.supported[1] = CAPF__KEY_TYPE__KEY_EC_P521;
	W.nsupported = 2;
	s = to_wait_key(DEV);
	CU_ASSERT_EQUAL(core_state(s), CORE_S_WAIT_KEY);
	run(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P521, 0), CORE_FX_SIGN, &out);
	CU_ASSERT_EQUAL(core_state(s), CORE_S_SIGN);
	for (size_t i = 0; i < out.nfx; i++)
		if (out.fx[i].type == CORE_FX_SIGN)
			CU_ASSERT_EQUAL(out.fx[i].sign.days, 90);
	core_free(s);

	/* EC preferred, the phone makes RSA only: RSA backup; a P-256 key
	 * then is refused. */
	W.nsupported = 1;
	s = to_wait_key(DEV);
	CU_ASSERT_EQUAL(fail_code(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0)), CAPF_EPOLICY);
	core_free(s);
	s = to_wait_key(DEV);
	CU_ASSERT_EQUAL(run(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_RSA_3072, 0), 0, NULL), 0);
	CU_ASSERT_EQUAL(core_state(s), CORE_S_WAIT_ACK);
	CU_ASSERT_EQUAL(W.last_days, 90);
	core_free(s);

	/* RSA only: whatever EC the phone prefers. */
	world_dev(DEV)->key_order = CAPF__KEY_ORDER__KEY_ORDER_RSA_ONLY;
	W.nsupported = 0;
	s = to_wait_key(DEV);
	CU_ASSERT_EQUAL(fail_code(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P521, 0)), CAPF_EPOLICY);
	core_free(s);
	world_reset();
}

/* ---- authentication strings ----------------------------------------------------- */

static int string_session(const char *str)
{
	struct core *s = new_session();
	int ret;

	W.secret = str;
	run(s, ev_start_mic("someone-else"), 0, NULL); /* no MIC needed */
	ret = run(s, ev_claim(DEV), 0, NULL);
	if (ret == 0 && core_state(s) == CORE_S_WAIT_KEY) {
		CU_ASSERT_STRING_EQUAL(core_auth_method(s), "string");
		run(s, ev_key(key_a, CAPF__KEY_TYPE__KEY_EC_P256, 0), 0, NULL);
		ret = run(s, ev_simple(CORE_EV_ACK, 0), 0, NULL);
	}
	W.secret = NULL;
	core_free(s);
	return ret;
}

static void test_auth_string(void)
{
	Capf__Device *d;

	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_STRING,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	set_secret(world_dev(DEV), "246810", false);

	/* The right string: done, and the string is used up. */
	CU_ASSERT_EQUAL(string_session("246810"), 0);
	d = world_dev(DEV);
	CU_ASSERT_EQUAL(d->status, CAPF__OP_STATUS__STATUS_SUCCESS);
	CU_ASSERT_PTR_NULL(d->auth_secret);
	CU_ASSERT_EQUAL(W.verifies, 1);

	/* Reusable: kept. */
	d->op = CAPF__OPERATION__OP_INSTALL;
	admin_touch(d, true);
	set_secret(d, "246810", true);
	CU_ASSERT_EQUAL(string_session("246810"), 0);
	CU_ASSERT_PTR_NOT_NULL(world_dev(DEV)->auth_secret);

	/* Wrong strings: counted, then a lockout; the right one is refused
	 * while it lasts. */
	d = world_dev(DEV);
	d->op = CAPF__OPERATION__OP_INSTALL;
	admin_touch(d, true);
	for (int i = 1; i <= 4; i++) {
		CU_ASSERT_EQUAL(string_session("000000"), CAPF_EAUTH);
		CU_ASSERT_EQUAL(world_dev(DEV)->auth_failures, (uint32_t)i);
	}
	CU_ASSERT_EQUAL(string_session("000000"), CAPF_ELOCKOUT);
	d = world_dev(DEV);
	CU_ASSERT_EQUAL(d->auth_failures, 0);
	CU_ASSERT_EQUAL(d->lockouts, 1);
	CU_ASSERT_EQUAL(d->locked_until, NOW + 60);
	unsigned verifies = W.verifies;
	CU_ASSERT_EQUAL(string_session("246810"), CAPF_ELOCKOUT);
	CU_ASSERT_EQUAL(W.verifies, verifies); /* not even checked */
	CU_ASSERT_EQUAL(W.ncert, 2);

	/* The lock is over: five more wrong ones lock it for twice as long. */
	d->locked_until = NOW - 1;
	for (int i = 1; i <= 4; i++)
		CU_ASSERT_EQUAL(string_session("000000"), CAPF_EAUTH);
	CU_ASSERT_EQUAL(string_session("000000"), CAPF_ELOCKOUT);
	CU_ASSERT_EQUAL(world_dev(DEV)->locked_until, NOW + 120);
	CU_ASSERT_EQUAL(world_dev(DEV)->lockouts, 2);

	/* And the right one, once the lock is over, resets everything. */
	world_dev(DEV)->locked_until = NOW - 1;
	CU_ASSERT_EQUAL(string_session("246810"), 0);
	d = world_dev(DEV);
	CU_ASSERT_EQUAL(d->lockouts, 0);
	CU_ASSERT_EQUAL(d->auth_failures, 0);
	CU_ASSERT_EQUAL(d->locked_until, 0);
	world_reset();
}

/* With nothing scheduled, a phone whose protocol authenticates first
 * (Cisco CAPF v3: CORE_CAP_AUTH_FIRST) hears an authentication failure as
 * such, and "nothing to do" only once its credentials check; a wrong
 * string counts as it would with an operation. Without the capability,
 * "nothing to do" comes first, unauthenticated, as before. */
static void test_nothing_to_do_authenticated_first(void)
{
	unsigned persists;
	struct core_event st;
	struct core *s;

	world_reset();
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	install_once(key_a);
	world_dev(DEV)->op = CAPF__OPERATION__OP_INSTALL;
	admin_touch(world_dev(DEV), true);
	install_once(key_b);
	CU_ASSERT_EQUAL_FATAL(W.ncert, 2);
	W.cert[0]->state = CAPF__CERT_STATE__CERT_ACTIVE; /* within a grace period */
	world_dev(DEV)->op = CAPF__OPERATION__OP_NONE;
	world_dev(DEV)->auth = CAPF__AUTH_MODE__AUTH_LSC_OR_MIC;

	/* The superseded LSC, nothing scheduled. */
	st = ev_start_lsc(0, DEV);
	s = new_session();
	run(s, st, 0, NULL);
	CU_ASSERT_EQUAL(fail_code(s, ev_claim(DEV)), CAPF_ENO_OPERATION);
	core_free(s);
	W.caps |= CORE_CAP_AUTH_FIRST;
	s = new_session();
	run(s, st, 0, NULL);
	CU_ASSERT_EQUAL(fail_code(s, ev_claim(DEV)), CAPF_ESUPERSEDED);
	core_free(s);
	/* The current one: nothing to do, and nothing written. */
	persists = W.persists;
	s = new_session();
	run(s, ev_start_lsc(1, DEV), 0, NULL);
	CU_ASSERT_EQUAL(fail_code(s, ev_claim(DEV)), CAPF_ENO_OPERATION);
	CU_ASSERT_EQUAL(W.persists, persists);
	core_free(s);
	/* The MIC of another device. */
	s = new_session();
	run(s, ev_start_mic(OTHER), 0, NULL);
	CU_ASSERT_EQUAL(fail_code(s, ev_claim(DEV)), CAPF_EIDENTITY);
	core_free(s);

	/* By string: the right one checked, then nothing to do; a wrong one
	 * counted. */
	world_dev(DEV)->auth = CAPF__AUTH_MODE__AUTH_STRING;
	set_secret(world_dev(DEV), "246810", true);
	CU_ASSERT_EQUAL(string_session("246810"), CAPF_ENO_OPERATION);
	CU_ASSERT_EQUAL(W.verifies, 1);
	CU_ASSERT_PTR_NOT_NULL(world_dev(DEV)->auth_secret);
	CU_ASSERT_EQUAL(world_dev(DEV)->auth_failures, 0);
	CU_ASSERT_EQUAL(string_session("000000"), CAPF_EAUTH);
	CU_ASSERT_EQUAL(world_dev(DEV)->auth_failures, 1);
	CU_ASSERT_EQUAL(world_dev(DEV)->op, CAPF__OPERATION__OP_NONE);
	world_reset();
}

static void test_null_string(void)
{
	struct core *s;

	world_reset();
	W.cfg.allow_null_string = true;
	add_device(DEV, CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_NULL_STRING,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	s = new_session();
	run(s, ev_start_mic("nobody"), 0, NULL);
	CU_ASSERT_EQUAL(run(s, ev_claim(DEV), 0, NULL), 0);
	CU_ASSERT_STRING_EQUAL(core_auth_method(s), "null");
	core_free(s);
	world_reset();
}

int main(void)
{
	CU_pSuite s;
	unsigned failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("core", NULL, NULL);
	if (s == NULL || CU_add_test(s, "identity rule", test_mic_names) == NULL ||
	    CU_add_test(s, "table walk", test_table_walk) == NULL ||
	    CU_add_test(s, "install", test_install) == NULL ||
	    CU_add_test(s, "refusals change nothing", test_refusals) == NULL ||
	    CU_add_test(s, "bare key without binding", test_bare_key_without_binding) == NULL ||
	    CU_add_test(s, "failures after issue", test_failures_after_issue) == NULL ||
	    CU_add_test(s, "cancel between claim and key", test_cancel_between_claim_and_key) == NULL ||
	    CU_add_test(s, "key type changed", test_key_type_changed) == NULL ||
	    CU_add_test(s, "admin races issuance", test_admin_races_issuance) == NULL ||
	    CU_add_test(s, "revoke before ack", test_revoke_before_ack) == NULL ||
	    CU_add_test(s, "same key, same certificate", test_same_key_gets_same_certificate) == NULL ||
	    CU_add_test(s, "other key supersedes", test_other_key_supersedes_unacknowledged) == NULL ||
	    CU_add_test(s, "ack supersedes current", test_ack_supersedes_current) == NULL ||
	    CU_add_test(s, "revoked pending replaced", test_revoked_pending_replaced) == NULL ||
	    CU_add_test(s, "key of another device", test_key_of_another_device) == NULL ||
	    CU_add_test(s, "LSC authentication", test_lsc_authentication) == NULL ||
	    CU_add_test(s, "delete", test_delete) == NULL ||
	    CU_add_test(s, "fetch", test_fetch) == NULL ||
	    CU_add_test(s, "nothing to do, deadline", test_nothing_to_do_and_deadline) == NULL ||
	    CU_add_test(s, "nothing to do, authenticated first", test_nothing_to_do_authenticated_first) == NULL ||
	    CU_add_test(s, "renewal window", test_renewal_window) == NULL ||
	    CU_add_test(s, "key order and validity", test_key_order_and_validity) == NULL ||
	    CU_add_test(s, "authentication string", test_auth_string) == NULL ||
	    CU_add_test(s, "null string", test_null_string) == NULL) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failures > 255 ? 255 : (int)failures;
}
