/*
 * Fuzz target: the enrollment core (capf/core.h) driven by a stream of
 * events. The input decides, byte by byte, what happens next: the phone's
 * events (start with some evidence, a claim, a key, an acknowledgement, a
 * delete or fetch result, its own end, a timeout, an abort), and how the
 * world answers the effects the core asks for (a load, a persist with
 * compare-and-set, a signature, a string check): as asked, or with a
 * fault, or after an administrator changed the record under the session.
 * The world is a small in-memory store as tests/test_core.c has, rebuilt
 * for every input.
 *
 * Besides not crashing or leaking, the core keeps the design's rules,
 * checked after every step:
 *   - at most CORE_MAX_FX effects, and a session that is done closes;
 *   - write-ahead issuance: every certificate delivered is in the store
 *     before it is sent;
 *   - the server decides identity: an LSC is signed for the claimed
 *     device only, and only once a claim was made;
 *   - once done, every event is refused with CAPF_EORDER and no effect.
 *
 * Input: 4 bytes of setup (the record's operation, authentication mode,
 * key type and flags; the policy), then steps, one byte each plus the
 * bytes an event takes (see step()).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capf/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DEV "SEP001122334455"
#define OTHER "SEP00AABBCCDDEE"
#define NOW 1800000000
#define MAXREC 16
#define MAX_STEPS 64

struct input {
	const uint8_t *p;
	size_t n;
};

static unsigned next_byte(struct input *in)
{
	if (in->n == 0)
		return 0;
	in->n--;
	return *in->p++;
}

struct world {
	Capf__Device *dev[MAXREC];
	size_t ndev;
	Capf__Certificate *cert[MAXREC];
	size_t ncert;
	unsigned next_serial;
	Capf__Device *vdev;
	Capf__Certificate *vcur, *vpend, *vpres;
	struct core_event pending;  /* the world's answer to the last effect */
	bool have_pending;
	bool claimed;               /* a claim event was fed */
	char claim_name[DEVICE_NAME_MAX + 1];
	uint8_t lsc_der[64], lsc_serial[2];
	struct core_lsc lsc;
};

static const uint8_t salt[4] = { 1, 2, 3, 4 };
static const uint8_t key_ids[3][32] = { { 0xaa }, { 0xbb }, { 0xcc } };

static Capf__Device *dev_copy(const Capf__Device *d)
{
	uint8_t buf[4096];
	size_t n = capf__device__get_packed_size(d);

	if (n > sizeof(buf))
		abort();
	capf__device__pack(d, buf);
	return capf__device__unpack(NULL, n, buf);
}

static Capf__Certificate *cert_copy(const Capf__Certificate *c)
{
	uint8_t buf[8192];
	size_t n = capf__certificate__get_packed_size(c);

	if (n > sizeof(buf))
		abort();
	capf__certificate__pack(c, buf);
	return capf__certificate__unpack(NULL, n, buf);
}

static Capf__Device *world_dev(struct world *w, const char *name)
{
	for (size_t i = 0; i < w->ndev; i++)
		if (strcmp(w->dev[i]->name, name) == 0)
			return w->dev[i];
	return NULL;
}

static Capf__Certificate *world_cert(struct world *w, const uint8_t *serial, size_t len)
{
	for (size_t i = 0; i < w->ncert; i++)
		if (w->cert[i]->serial.len == len && len > 0 &&
		    memcmp(w->cert[i]->serial.data, serial, len) == 0)
			return w->cert[i];
	return NULL;
}

static void view_free(struct world *w)
{
	if (w->vdev)
		capf__device__free_unpacked(w->vdev, NULL);
	if (w->vcur)
		capf__certificate__free_unpacked(w->vcur, NULL);
	if (w->vpend)
		capf__certificate__free_unpacked(w->vpend, NULL);
	if (w->vpres)
		capf__certificate__free_unpacked(w->vpres, NULL);
	w->vdev = NULL;
	w->vcur = w->vpend = w->vpres = NULL;
}

static void world_free(struct world *w)
{
	view_free(w);
	for (size_t i = 0; i < w->ndev; i++)
		capf__device__free_unpacked(w->dev[i], NULL);
	for (size_t i = 0; i < w->ncert; i++)
		capf__certificate__free_unpacked(w->cert[i], NULL);
}

/* A certificate record of the device, as an earlier session left it. */
static void add_cert(struct world *w, uint8_t tag, Capf__CertState state, ProtobufCBinaryData *ref)
{
	Capf__Certificate c = CAPF__CERTIFICATE__INIT;
	uint8_t serial[2] = { 0x30, tag };
	uint8_t der[8] = { 'O', 'L', 'D', tag };

	c.serial.data = serial;
	c.serial.len = 2;
	c.device = (char *)DEV;
	c.not_before = NOW - 86400 * 300;
	c.not_after = NOW + 86400 * 65;
	c.der.data = der;
	c.der.len = 4;
	c.state = state;
	c.revision = 1;
	c.spki_sha256.data = (uint8_t *)key_ids[tag % 3];
	c.spki_sha256.len = 32;
	w->cert[w->ncert] = cert_copy(&c);
	ref->data = w->cert[w->ncert]->serial.data;
	ref->len = 2;
	w->ncert++;
}

static void setup(struct world *w, struct input *in, struct core_config *cfg)
{
	Capf__Device d = CAPF__DEVICE__INIT;
	Capf__AuthSecret sec = CAPF__AUTH_SECRET__INIT;
	uint8_t hash[32] = "31415926";
	unsigned op = next_byte(in), auth = next_byte(in), key = next_byte(in);
	unsigned flags = next_byte(in);

	memset(cfg, 0, sizeof(*cfg));
	cfg->allow_null_string = flags & 1;
	cfg->renew_percent = (flags & 2) ? 20 : 0;
	cfg->supersede_grace = (flags & 4) ? 3600 : 0;
	cfg->max_auth_failures = 1 + (flags >> 6);
	cfg->lockout_seconds = 60;
	w->next_serial = 1;
	d.name = (char *)DEV;
	d.op = (Capf__Operation)(op % 4);
	d.auth = (Capf__AuthMode)(auth % 6);
	d.key_type = (Capf__KeyType)(key % 7);
	d.key_order = (Capf__KeyOrder)((key >> 3) % 4);
	d.ec_key_type = (Capf__KeyType)(1 + (key >> 5) % 2);
	d.status = d.op ? CAPF__OP_STATUS__STATUS_PENDING : CAPF__OP_STATUS__STATUS_NONE;
	d.revision = 1;
	d.op_generation = 1;
	d.deadline = (op & 0x10) ? NOW - 1 : 0;
	d.locked_until = (op & 0x20) ? NOW + 10 : 0;
	if (flags & 8) {
		sec.salt.data = (uint8_t *)salt;
		sec.salt.len = sizeof(salt);
		sec.hash.data = hash;
		sec.hash.len = 32;
		sec.iterations = 1000;
		sec.reusable = (flags & 0x10) != 0;
		d.auth_secret = &sec;
	}
	if (flags & 0x20)
		add_cert(w, 1, CAPF__CERT_STATE__CERT_ACTIVE, &d.lsc_serial);
	if (op & 0x40)
		add_cert(w, 2, CAPF__CERT_STATE__CERT_UNCONFIRMED, &d.pending_serial);
	w->dev[w->ndev++] = dev_copy(&d);
	/* Another device, for claims that are not the MIC's. */
	d.name = (char *)OTHER;
	d.auth_secret = NULL;
	d.lsc_serial.len = 0;
	d.pending_serial.len = 0;
	w->dev[w->ndev++] = dev_copy(&d);
}

/* Compare-and-set of one transaction, all or nothing (as the store). */
static int world_persist(struct world *w, Capf__StoreRecord *const *recs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const Capf__StoreRecord *r = recs[i];
		uint64_t cur = 0;
		bool exists;

		if (r->body_case == CAPF__STORE_RECORD__BODY_DEVICE) {
			Capf__Device *d = world_dev(w, r->device->name);

			exists = d != NULL;
			cur = d ? d->revision : 0;
		} else if (r->body_case == CAPF__STORE_RECORD__BODY_CERT) {
			Capf__Certificate *c = world_cert(w, r->cert->serial.data, r->cert->serial.len);

			exists = c != NULL;
			cur = c ? c->revision : 0;
		} else {
			abort(); /* the core persists devices and certificates only */
		}
		if (r->create_only && exists)
			return CAPF_EEXIST;
		if ((r->check_revision || r->must_exist) && !exists)
			return CAPF_ENOENT;
		if (r->check_revision && cur != r->expect_revision)
			return CAPF_ESTALE;
	}
	for (size_t i = 0; i < n; i++) {
		const Capf__StoreRecord *r = recs[i];

		if (r->body_case == CAPF__STORE_RECORD__BODY_DEVICE) {
			size_t j;

			for (j = 0; j < w->ndev && strcmp(w->dev[j]->name, r->device->name); j++)
				;
			if (j == w->ndev) {
				if (w->ndev == MAXREC)
					return CAPF_ENOSPC;
				w->ndev++;
			} else {
				capf__device__free_unpacked(w->dev[j], NULL);
			}
			w->dev[j] = dev_copy(r->device);
		} else {
			Capf__Certificate *c = world_cert(w, r->cert->serial.data, r->cert->serial.len);
			size_t j;

			for (j = 0; j < w->ncert && w->cert[j] != c; j++)
				;
			if (j == w->ncert) {
				if (w->ncert == MAXREC)
					return CAPF_ENOSPC;
				w->ncert++;
			} else {
				capf__certificate__free_unpacked(c, NULL);
			}
			w->cert[j] = cert_copy(r->cert);
		}
	}
	return 0;
}

static struct core_event do_load(struct world *w, const struct core_fx *fx)
{
	struct core_event ev = { .type = CORE_EV_LOADED, .now = NOW };
	const Capf__Device *d;
	const Capf__Certificate *c;

	view_free(w);
	d = world_dev(w, fx->load.device);
	if (d) {
		w->vdev = dev_copy(d);
		if ((c = world_cert(w, d->lsc_serial.data, d->lsc_serial.len)))
			w->vcur = cert_copy(c);
		if ((c = world_cert(w, d->pending_serial.data, d->pending_serial.len)))
			w->vpend = cert_copy(c);
	}
	if (fx->load.presented && (c = world_cert(w, fx->load.presented, fx->load.presented_len)))
		w->vpres = cert_copy(c);
	ev.loaded.device = w->vdev;
	ev.loaded.current = w->vcur;
	ev.loaded.pending = w->vpend;
	ev.loaded.presented = w->vpres;
	return ev;
}

static struct core_event do_sign(struct world *w, const struct core_fx *fx)
{
	struct core_event ev = { .type = CORE_EV_SIGNED, .now = NOW };
	unsigned n = w->next_serial++;

	w->lsc_serial[0] = 0x40;
	w->lsc_serial[1] = (uint8_t)n;
	snprintf((char *)w->lsc_der, sizeof(w->lsc_der), "LSC %s #%u", fx->sign.device, n);
	memset(&w->lsc, 0, sizeof(w->lsc));
	w->lsc.der = w->lsc_der;
	w->lsc.der_len = strlen((char *)w->lsc_der);
	w->lsc.serial = w->lsc_serial;
	w->lsc.serial_len = 2;
	w->lsc.not_before = NOW - 300;
	w->lsc.not_after = NOW + 86400 * 365;
	w->lsc.issued_at = NOW;
	memcpy(w->lsc.spki_sha256, fx->sign.key_handle, 32);
	ev.signed_lsc = &w->lsc;
	return ev;
}

/* Checks the rules on one step's effects and keeps the world's answer. */
static void effects(struct world *w, struct core *s, const struct core_out *out)
{
	bool closes = false;

	if (out->nfx > CORE_MAX_FX)
		abort();
	for (size_t i = 0; i < out->nfx; i++) {
		const struct core_fx *fx = &out->fx[i];
		bool stored = false;

		switch (fx->type) {
		case CORE_FX_LOAD:
			w->pending = do_load(w, fx);
			w->have_pending = true;
			break;
		case CORE_FX_PERSIST:
			w->pending = (struct core_event){ .type = CORE_EV_PERSISTED, .now = NOW };
			w->pending.result = world_persist(w, fx->persist.recs, fx->persist.nrecs);
			w->have_pending = true;
			break;
		case CORE_FX_SIGN:
			/* Identity: only for the device claimed. */
			if (!w->claimed || strcmp(fx->sign.device, core_device(s)) ||
			    strcmp(fx->sign.device, w->claim_name))
				abort();
			w->pending = do_sign(w, fx);
			w->have_pending = true;
			break;
		case CORE_FX_VERIFY:
			w->pending = (struct core_event){ .type = CORE_EV_VERIFIED, .now = NOW };
			w->pending.result = fx->verify.secret_len == 8 &&
						    !memcmp(fx->verify.secret, "31415926", 8)
					    ? 0
					    : CAPF_EAUTH;
			w->have_pending = true;
			break;
		case CORE_FX_SEND:
			if (fx->send.type != CORE_MSG_DELIVER)
				break;
			/* Write-ahead: what is sent is in the store already. */
			for (size_t k = 0; k < w->ncert; k++)
				if (w->cert[k]->der.len == fx->send.cert_len &&
				    !memcmp(w->cert[k]->der.data, fx->send.cert, fx->send.cert_len))
					stored = true;
			if (!stored)
				abort();
			break;
		case CORE_FX_CLOSE:
			closes = true;
			break;
		case CORE_FX_AUDIT:
			break;
		default:
			abort();
		}
	}
	if (out->done && !closes)
		abort();
}

static void start_event(struct core_event *ev, struct input *in)
{
	unsigned b = next_byte(in);

	ev->type = CORE_EV_START;
	ev->start.peer.present = (b & 1) != 0;
	ev->start.peer.mic_result = (b & 2) ? 0 : CAPF_EUNTRUSTED;
	ev->start.peer.lsc_result = (b & 4) ? 0 : (b & 8) ? CAPF_EREVOKED : CAPF_EUNTRUSTED;
	snprintf(ev->start.peer.cn, sizeof(ev->start.peer.cn), "%s", (b & 16) ? OTHER : DEV);
	snprintf(ev->start.peer.fingerprint, sizeof(ev->start.peer.fingerprint), "%064x", b);
	ev->start.peer.serial[0] = 0x30;
	ev->start.peer.serial[1] = (uint8_t)(1 + ((b >> 5) & 1));
	ev->start.peer.serial_len = (b & 0x40) ? 2 : 0;
	if (!(b & 0x80)) {
		memset(ev->start.binding, 0xb1, 32);
		ev->start.binding_len = 32;
	}
}

/* One step; false when the input is used up. */
static bool step(struct world *w, struct core *s, struct input *in, int supported[4])
{
	static const char *const secrets[4] = { NULL, "31415926", "27182818", "" };
	struct core_event ev = { .now = NOW };
	struct core_out out;
	enum core_state before = core_state(s);
	unsigned b, a;
	int ret;

	if (in->n == 0)
		return false;
	b = next_byte(in);
	if (w->have_pending && !(b & 0x80)) {
		ev = w->pending;
		w->have_pending = false;
		/* Faults, and administrators writing under the session. */
		switch (b & 7) {
		case 1:
			if (ev.type == CORE_EV_LOADED)
				ev.loaded.result = (b & 8) ? CAPF_EBUSY : CAPF_EIO;
			else if (ev.type == CORE_EV_PERSISTED)
				ev.result = (b & 8) ? CAPF_ESTALE : CAPF_ENOSPC;
			else if (ev.type == CORE_EV_SIGNED)
				ev.signed_lsc = NULL, ev.sign_result = CAPF_ERETRY;
			else if (ev.type == CORE_EV_VERIFIED)
				ev.result = ev.result ? 0 : CAPF_EAUTH;
			break;
		case 2: {
			Capf__Device *d = world_dev(w, DEV);

			d->revision++;
			if (b & 8) {
				d->op_generation++;
				d->op = (Capf__Operation)((b >> 4) % 4);
			}
			break;
		}
		default:
			break;
		}
	} else {
		a = next_byte(in);
		switch (b % 10) {
		case 0:
			start_event(&ev, in);
			break;
		case 1:
			ev.type = CORE_EV_CLAIM;
			ev.claim.device = (a & 1) ? OTHER : DEV;
			if (secrets[(a >> 1) & 3]) {
				ev.claim.auth_string = secrets[(a >> 1) & 3];
				ev.claim.auth_string_len = strlen(ev.claim.auth_string);
			}
			ev.claim.caps = (a >> 3) & 7;
			for (size_t i = 0; i < 4; i++)
				supported[i] = 1 + (int)((next_byte(in) & 0x7f) % 6);
			ev.claim.supported_keys = supported;
			ev.claim.nsupported = (a >> 6) & 3;
			snprintf(w->claim_name, sizeof(w->claim_name), "%s", ev.claim.device);
			w->claimed = true;
			break;
		case 2:
			ev.type = CORE_EV_KEY;
			ev.key.kind = (a & 1) ? CORE_KEY_SPKI : CORE_KEY_CSR;
			ev.key.pop_result = (a & 2) ? ((a & 4) ? CAPF_EBINDING : CAPF_ECSRSIG) : 0;
			ev.key.key_type = (int)((a >> 3) % 7);
			memcpy(ev.key.spki_sha256, key_ids[(a >> 6) % 3], 32);
			ev.key.handle = (void *)key_ids[(a >> 6) % 3];
			break;
		case 3:
			ev.type = CORE_EV_ACK;
			ev.code = (a & 1) ? -(int)(1000 + (a >> 1)) : 0;
			break;
		case 4:
			ev.type = CORE_EV_DELETED;
			ev.code = (a & 1) ? 1 : 0;
			break;
		case 5: {
			static const uint8_t c1[] = "CERT1", c2[] = "CERT2";
			static const uint8_t *const certs[2] = { c1, c2 };
			static const size_t lens[2] = { 5, 5 };

			ev.type = CORE_EV_FETCHED;
			ev.report.certs = certs;
			ev.report.lens = lens;
			ev.report.n = a % 3;
			break;
		}
		case 6:
			ev.type = CORE_EV_PEER_END;
			ev.code = CAPF_EREJECTED;
			break;
		case 7:
			ev.type = CORE_EV_TIMEOUT;
			break;
		case 8:
			ev.type = CORE_EV_ABORT;
			ev.code = (a & 1) ? CAPF_ECONNRESET : CAPF_EPROTO;
			break;
		default:
			/* An event of the world that nobody asked for; while an
			 * answer is outstanding it would be the glue lying (a
			 * persist reported done that was refused), which the core
			 * cannot tell from the truth. */
			if (w->have_pending)
				return true;
			ev.type = (a & 1) ? CORE_EV_PERSISTED : CORE_EV_VERIFIED;
			ev.result = 0;
			break;
		}
	}
	ret = core_step(s, &ev, &out);
	if (before == CORE_S_DONE && (ret != CAPF_EORDER || out.nfx != 0))
		abort();
	if (before != CORE_S_DONE && ret != 0 && ret != out.error)
		abort();
	effects(w, s, &out);
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct world w;
	struct core_config cfg;
	struct core *s;
	int supported[4];

	if (size < 4)
		return 0;
	memset(&w, 0, sizeof(w));
	setup(&w, &in, &cfg);
	s = core_new(&cfg);
	if (!s)
		abort();
	for (unsigned i = 0; i < MAX_STEPS && step(&w, s, &in, supported); i++)
		;
	core_free(s);
	world_free(&w);
	return 0;
}
