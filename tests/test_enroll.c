/*
 * Tests of whole native sessions through the real pieces: the native codec
 * (frames in and out), the enrollment core, a real store (revisions and
 * compare-and-set) and a real CA whose keys sit behind struct ca_keyops,
 * as they sit in the signer process in capfd. The effects are carried out
 * here, synchronously; no socket, no loop.
 */
#include "config.h"

#include <CUnit/Basic.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ca/ca.h"
#include "capf/codec.h"
#include "capf/core.h"
#include "store/store.h"
#include "tools/pki.h"

static char tmpdir[] = "/tmp/capf-test-enroll-XXXXXX";
static struct ca *ca;
static struct store *st;
static struct pki_pair mfg, other_mfg;
static uint8_t binding[CA_BINDING_LEN];

/* ---- keys behind the seam, as the signer holds them ------------------------ */

#define MAXKEYS 8
static struct {
	char ref[512];
	gnutls_privkey_t key;
} keys[MAXKEYS];
static unsigned nkeys, signatures;

static gnutls_privkey_t key_for(const char *ref)
{
	for (unsigned i = 0; i < nkeys; i++)
		if (strcmp(keys[i].ref, ref) == 0)
			return keys[i].key;
	return NULL;
}

static int keep(const char *ref, gnutls_privkey_t k, uint8_t **spki, size_t *spki_len)
{
	if (nkeys == MAXKEYS)
		return CAPF_ENOMEM;
	snprintf(keys[nkeys].ref, sizeof(keys[nkeys].ref), "%s", ref);
	keys[nkeys++].key = k;
	return ca_key_spki(k, spki, spki_len);
}

static int fake_load(void *arg, const char *ref, uint8_t **spki, size_t *spki_len, char *errbuf,
		     size_t errlen)
{
	gnutls_privkey_t k = key_for(ref);
	(void)arg;
	(void)errbuf;
	(void)errlen;
	if (k != NULL)
		return ca_key_spki(k, spki, spki_len);
	if (ca_key_load(ref, &k) < 0)
		return CAPF_ECONFIG;
	return keep(ref, k, spki, spki_len);
}

static int fake_generate(void *arg, int key_type, const char *dir, const char *name,
			 uint8_t **spki, size_t *spki_len, char *errbuf, size_t errlen)
{
	gnutls_privkey_t k = NULL;
	char ref[512];
	(void)arg;
	(void)errbuf;
	(void)errlen;
	if (ca_key_generate(key_type, dir, name, &k) < 0)
		return CAPF_EIO;
	snprintf(ref, sizeof(ref), "%s/%s", dir, name);
	return keep(ref, k, spki, spki_len);
}

static int fake_sign(void *arg, const char *ref, unsigned algo, unsigned flags,
		     const uint8_t *data, size_t len, uint8_t **sig, size_t *sig_len)
{
	gnutls_privkey_t k = key_for(ref);
	gnutls_datum_t d = { (unsigned char *)data, (unsigned)len }, s = { NULL, 0 };
	int ret;
	(void)arg;

	if (k == NULL)
		return CAPF_ENOENT;
	ret = (flags & CA_SIGN_HASH) ? gnutls_privkey_sign_hash2(k, algo, 0, &d, &s)
				     : gnutls_privkey_sign_data2(k, algo, 0, &d, &s);
	if (ret < 0)
		return CAPF_ECRYPTO;
	*sig = malloc(s.size);
	if (*sig == NULL) {
		gnutls_free(s.data);
		return CAPF_ENOMEM;
	}
	memcpy(*sig, s.data, s.size);
	*sig_len = s.size;
	gnutls_free(s.data);
	signatures++;
	return 0;
}

static const struct ca_keyops keyops = { fake_load, fake_generate, fake_sign, NULL };

/* ---- set-up ------------------------------------------------------------------ */

static int suite_init(void)
{
	char path[256], dir[256];
	struct ca_config cfg = { 0 };
	FILE *f;
	char pem[8192];
	size_t pem_len = sizeof(pem);

	if (mkdtemp(tmpdir) == NULL)
		return -1;
	if (pki_make_root("Test Manufacturer Root", 30, &mfg) < 0 ||
	    pki_make_root("Other Manufacturer Root", 30, &other_mfg) < 0)
		return -1;
	if (gnutls_x509_crt_export(mfg.crt, GNUTLS_X509_FMT_PEM, pem, &pem_len) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/mfg.pem", tmpdir);
	f = fopen(path, "w");
	if (f == NULL)
		return -1;
	fwrite(pem, 1, pem_len, f);
	fclose(f);

	snprintf(dir, sizeof(dir), "%s/ca", tmpdir);
	cfg.dir = dir;
	cfg.mfg_roots = path;
	cfg.keyops = &keyops;
	if (ca_new(&ca, &cfg) < 0)
		return -1;
	snprintf(dir, sizeof(dir), "%s/state", tmpdir);
	if (store_open(&st, dir) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(binding); i++)
		binding[i] = (uint8_t)(i * 7 + 1);
	return 0;
}

static int suite_clean(void)
{
	char cmd[512];

	store_close(st);
	ca_free(ca);
	for (unsigned i = 0; i < nkeys; i++)
		gnutls_privkey_deinit(keys[i].key);
	pki_pair_deinit(&mfg);
	pki_pair_deinit(&other_mfg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void add_device(const char *name, Capf__Operation op, Capf__AuthMode auth,
		       Capf__KeyType kt)
{
	Capf__Device d = CAPF__DEVICE__INIT;
	Capf__StoreRecord rec = CAPF__STORE_RECORD__INIT;
	Capf__StoreRecord *recs[1] = { &rec };

	d.name = (char *)name;
	d.op = op;
	d.auth = auth;
	d.key_type = kt;
	d.status = op != CAPF__OPERATION__OP_NONE ? CAPF__OP_STATUS__STATUS_PENDING
						   : CAPF__OP_STATUS__STATUS_NONE;
	d.revision = 1;
	d.op_generation = 1;
	rec.body_case = CAPF__STORE_RECORD__BODY_DEVICE;
	rec.device = &d;
	rec.create_only = true;
	CU_ASSERT_FATAL(store_submit_wait(st, recs, 1) == 0);
}

/* An administrator's change to a device: read, change, write at the
 * revision read. */
static void admin_change(const char *name, void (*change)(Capf__Device *d))
{
	Capf__Device *d = NULL;
	Capf__StoreRecord rec = CAPF__STORE_RECORD__INIT;
	Capf__StoreRecord *recs[1] = { &rec };

	CU_ASSERT_FATAL(store_device_get(st, name, &d) == 0);
	change(d);
	rec.body_case = CAPF__STORE_RECORD__BODY_DEVICE;
	rec.device = d;
	rec.check_revision = true;
	rec.expect_revision = d->revision;
	d->revision++;
	d->op_generation++;
	CU_ASSERT_EQUAL(store_submit_wait(st, recs, 1), 0);
	capf__device__free_unpacked(d, NULL);
}

/* ---- a session rig ------------------------------------------------------------ */

struct rig {
	struct core *core;
	struct codec_native *codec;
	Capf__PhoneMessage *sent[8]; /* what the server sent, decoded */
	size_t nsent;
	bool closed;
	struct ca_lsc lsc;
	struct ca_tbs tbs;
	Capf__Device *vdev;
	Capf__Certificate *vc[3];
};

static void rig_views_free(struct rig *r)
{
	if (r->vdev != NULL)
		capf__device__free_unpacked(r->vdev, NULL);
	r->vdev = NULL;
	for (int i = 0; i < 3; i++) {
		if (r->vc[i] != NULL)
			capf__certificate__free_unpacked(r->vc[i], NULL);
		r->vc[i] = NULL;
	}
}

static void rig_free(struct rig *r)
{
	core_free(r->core);
	codec_native_free(r->codec);
	for (size_t i = 0; i < r->nsent; i++)
		capf__phone_message__free_unpacked(r->sent[i], NULL);
	rig_views_free(r);
	ca_lsc_deinit(&r->lsc);
	ca_tbs_deinit(&r->tbs);
	free(r);
}

static Capf__Certificate *get_cert(const ProtobufCBinaryData *serial)
{
	Capf__Certificate *c = NULL;

	if (serial->len == 0 || store_cert_get(st, serial->data, serial->len, &c) < 0)
		return NULL;
	return c;
}

/* Carry out effects until the session waits for the phone or is done. */
static void rig_run(struct rig *r, struct core_event ev)
{
	/* What a SIGNED event points to lives across iterations. */
	const uint8_t *chain[1];
	size_t chain_len[1];
	struct core_lsc cl;

	for (;;) {
		struct core_out out;
		struct core_event next;
		bool have_next = false;

		core_step(r->core, &ev, &out);
		for (size_t i = 0; i < out.nfx; i++) {
			const struct core_fx *fx = &out.fx[i];
			uint8_t *frame = NULL, *sig = NULL;
			size_t len = 0, sig_len = 0;
			int ret;

			memset(&next, 0, sizeof(next));
			next.now = time(NULL);
			switch (fx->type) {
			case CORE_FX_LOAD: {
				Capf__Device *d = NULL;
				/* The previous view is no longer used: the event
				 * that carried it has been handled. */
				rig_views_free(r);
				next.type = CORE_EV_LOADED;
				ret = store_device_get(st, fx->load.device, &d);
				if (ret < 0 && ret != CAPF_ENOENT)
					next.loaded.result = ret;
				r->vdev = d;
				if (d != NULL) {
					r->vc[0] = get_cert(&d->lsc_serial);
					r->vc[1] = get_cert(&d->pending_serial);
				}
				if (fx->load.presented != NULL) {
					ProtobufCBinaryData s = { fx->load.presented_len,
								  (uint8_t *)fx->load.presented };
					r->vc[2] = get_cert(&s);
				}
				next.loaded.device = d;
				next.loaded.current = r->vc[0];
				next.loaded.pending = r->vc[1];
				next.loaded.presented = r->vc[2];
				have_next = true;
				break;
			}
			case CORE_FX_PERSIST:
				next.type = CORE_EV_PERSISTED;
				next.result = store_submit_wait(st, fx->persist.recs, fx->persist.nrecs);
				for (size_t k = 0; next.result == 0 && k < fx->persist.nrevoked; k++)
					ca_revoked_add(ca, fx->persist.revoked[k].serial,
						       fx->persist.revoked[k].serial_len,
						       fx->persist.revoked[k].when,
						       fx->persist.revoked[k].reason,
						       fx->persist.revoked[k].der,
						       fx->persist.revoked[k].der_len);
				have_next = true;
				break;
			case CORE_FX_SIGN:
				next.type = CORE_EV_SIGNED;
				ca_tbs_deinit(&r->tbs);
				ca_lsc_deinit(&r->lsc);
				ret = ca_issue_prepare(ca, fx->sign.key_handle, fx->sign.device,
						       time(NULL), 0, &r->tbs);
				if (ret == 0)
					ret = fake_sign(NULL, r->tbs.key_ref, r->tbs.sign_algo, 0,
							r->tbs.data, r->tbs.len, &sig, &sig_len);
				if (ret == 0)
					ret = ca_issue_complete(&r->tbs, sig, sig_len, &r->lsc);
				free(sig);
				next.sign_result = ret;
				if (ret == 0) {
					memset(&cl, 0, sizeof(cl));
					cl.der = r->lsc.der;
					cl.der_len = r->lsc.der_len;
					cl.serial = r->lsc.serial;
					cl.serial_len = sizeof(r->lsc.serial);
					cl.not_before = r->lsc.not_before;
					cl.not_after = r->lsc.not_after;
					memcpy(cl.spki_sha256, r->lsc.spki_sha256, 32);
					chain[0] = r->lsc.issuer_der;
					chain_len[0] = r->lsc.issuer_der_len;
					cl.chain = chain;
					cl.chain_lens = chain_len;
					cl.nchain = 1;
					next.signed_lsc = &cl;
				}
				have_next = true;
				break;
			case CORE_FX_SEND: {
				const uint8_t *issuer = NULL;
				size_t ilen = 0;
				struct frame_decoder dec;
				const uint8_t *payload = NULL;
				size_t plen = 0;

				if (fx->send.type == CORE_MSG_DELIVER && fx->send.nchain == 0)
					ca_issuer_of(ca, fx->send.cert, fx->send.cert_len, &issuer,
						     &ilen);
				CU_ASSERT_FATAL(codec_native_encode(&fx->send, &issuer, &ilen,
								    issuer ? 1 : 0, &frame, &len) == 0);
				frame_decoder_init(&dec, FRAME_MAX_DEFAULT);
				CU_ASSERT(frame_decode(&dec, frame, len, &payload, &plen) ==
					  (ssize_t)len);
				CU_ASSERT_FATAL(payload != NULL && r->nsent < 8);
				CU_ASSERT_FATAL(phone_msg_unpack(payload, plen,
								 &r->sent[r->nsent]) == 0);
				r->nsent++;
				frame_decoder_deinit(&dec);
				free(frame);
				break;
			}
			case CORE_FX_AUDIT:
				break;
			case CORE_FX_CLOSE:
				r->closed = true;
				break;
			}
			if (have_next)
				break;
		}
		if (!have_next)
			return;
		ev = next;
	}
}

static const Capf__PhoneMessage *last(const struct rig *r)
{
	CU_ASSERT_FATAL(r->nsent > 0);
	return r->sent[r->nsent - 1];
}

/* The error the server answered with, 0 if its last message was no Error. */
static int last_error(const struct rig *r)
{
	const Capf__PhoneMessage *m = last(r);

	return m->body_case == CAPF__PHONE_MESSAGE__BODY_ERROR ? -(int)m->error->code : 0;
}

/* A frame from the phone, through the codec. */
static void rig_phone(struct rig *r, const Capf__PhoneMessage *msg)
{
	uint8_t *frame = NULL;
	size_t len = 0;
	struct core_event ev;

	CU_ASSERT_FATAL(phone_msg_pack(msg, &frame, &len) == 0);
	codec_native_decode(r->codec, frame + FRAME_HEADER_LEN, len - FRAME_HEADER_LEN,
			    time(NULL), &ev);
	free(frame);
	rig_run(r, ev);
}

/* A session whose peer presented chain (DER, leaf first). */
static struct rig *rig_new(const uint8_t *const *certs, const size_t *lens, size_t n)
{
	struct rig *r = calloc(1, sizeof(*r));
	struct core_event ev = { .type = CORE_EV_START, .now = time(NULL) };
	struct ca_cert_summary sum;

	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	r->core = core_new(NULL);
	CU_ASSERT_FATAL(codec_native_new(&r->codec, binding, sizeof(binding)) == 0);
	ev.start.peer.mic_result = ev.start.peer.lsc_result = CAPF_ENOCERT;
	if (n > 0) {
		ev.start.peer.present = true;
		ev.start.peer.mic_result = ca_mic_verify(ca, certs, lens, n, NULL, ev.now);
		ev.start.peer.lsc_result = ca_lsc_verify(ca, certs, lens, n, NULL, ev.now);
		CU_ASSERT_FATAL(ca_cert_summarize(certs[0], lens[0], &sum) == 0);
		snprintf(ev.start.peer.cn, sizeof(ev.start.peer.cn), "%s", sum.cn);
		snprintf(ev.start.peer.fingerprint, sizeof(ev.start.peer.fingerprint), "%s",
			 sum.fingerprint);
		memcpy(ev.start.peer.serial, sum.serial, sum.serial_len);
		ev.start.peer.serial_len = sum.serial_len;
	}
	memcpy(ev.start.binding, binding, sizeof(binding));
	ev.start.binding_len = sizeof(binding);
	rig_run(r, ev);
	return r;
}

static struct rig *rig_with_mic(const struct pki_pair *root, const char *cn)
{
	struct pki_pair mic = { 0 };
	uint8_t *der = NULL;
	size_t len = 0;
	struct rig *r;

	CU_ASSERT_FATAL(pki_make_mic(root, cn, 0, 30, &mic) == 0);
	CU_ASSERT_FATAL(pki_crt_der(mic.crt, &der, &len) == 0);
	const uint8_t *certs[1] = { der };
	r = rig_new(certs, &len, 1);
	free(der);
	pki_pair_deinit(&mic);
	return r;
}

static void hello(struct rig *r, const char *name, uint32_t version)
{
	Capf__PhoneMessage msg = CAPF__PHONE_MESSAGE__INIT;
	Capf__Hello h = CAPF__HELLO__INIT;

	h.version = version;
	h.device_name = (char *)name;
	msg.body_case = CAPF__PHONE_MESSAGE__BODY_HELLO;
	msg.hello = &h;
	rig_phone(r, &msg);
}

static void csr(struct rig *r, const uint8_t *der, size_t len)
{
	Capf__PhoneMessage msg = CAPF__PHONE_MESSAGE__INIT;
	Capf__CsrSubmit c = CAPF__CSR_SUBMIT__INIT;

	c.csr.data = (uint8_t *)der;
	c.csr.len = len;
	msg.body_case = CAPF__PHONE_MESSAGE__BODY_CSR;
	msg.csr = &c;
	rig_phone(r, &msg);
}

static void ack(struct rig *r, uint32_t code)
{
	Capf__PhoneMessage msg = CAPF__PHONE_MESSAGE__INIT;
	Capf__StoreAck a = CAPF__STORE_ACK__INIT;

	a.code = code;
	msg.body_case = CAPF__PHONE_MESSAGE__BODY_STORE_ACK;
	msg.store_ack = &a;
	rig_phone(r, &msg);
}

static void make_csr(gnutls_x509_privkey_t key, const uint8_t *bind, uint8_t **der, size_t *len)
{
	CU_ASSERT_FATAL(pki_make_csr(key, "CN=whatever-the-phone-says", bind,
				     bind != NULL ? CA_BINDING_LEN : 0, der, len) == 0);
}

static Capf__Device *device(const char *name)
{
	Capf__Device *d = NULL;

	CU_ASSERT_FATAL(store_device_get(st, name, &d) == 0);
	return d;
}

/* ---- invalid input first ---------------------------------------------------------- */

static void test_refusals(void)
{
	struct rig *r;
	gnutls_x509_privkey_t key;
	uint8_t *der = NULL;
	size_t len = 0;
	uint8_t other_binding[CA_BINDING_LEN];
	struct store_stats before, after;

	add_device("SEPREFUSE", CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	add_device("SEPNOOP", CAPF__OPERATION__OP_NONE, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	store_get_stats(st, &before);

	r = rig_with_mic(&mfg, "SEPUNKNOWN0001");
	hello(r, "SEPUNKNOWN0001", CAPF_PROTOCOL_VERSION);
	CU_ASSERT_EQUAL(last_error(r), CAPF_EUNKNOWN_DEVICE);
	CU_ASSERT(r->closed);
	rig_free(r);

	r = rig_with_mic(&mfg, "SEPNOOP");
	hello(r, "SEPNOOP", CAPF_PROTOCOL_VERSION);
	CU_ASSERT_EQUAL(last_error(r), CAPF_ENO_OPERATION);
	rig_free(r);

	r = rig_with_mic(&mfg, "SEPREFUSE");
	hello(r, "SEPREFUSE", 2);
	CU_ASSERT_EQUAL(last_error(r), CAPF_EVERSION);
	rig_free(r);

	r = rig_with_mic(&other_mfg, "SEPREFUSE");
	hello(r, "SEPREFUSE", CAPF_PROTOCOL_VERSION);
	CU_ASSERT_EQUAL(last_error(r), CAPF_EUNTRUSTED);
	rig_free(r);

	r = rig_with_mic(&mfg, "SEPATTACKER");
	hello(r, "SEPREFUSE", CAPF_PROTOCOL_VERSION);
	CU_ASSERT_EQUAL(last_error(r), CAPF_EIDENTITY);
	rig_free(r);

	r = rig_new(NULL, NULL, 0);
	hello(r, "SEPREFUSE", CAPF_PROTOCOL_VERSION);
	CU_ASSERT_EQUAL(last_error(r), CAPF_ENOCERT);
	rig_free(r);

	/* Key checks: garbage, another session's binding, the wrong type. */
	CU_ASSERT_FATAL(pki_gen_key(CAPF__KEY_TYPE__KEY_EC_P256, &key) == 0);
	r = rig_with_mic(&mfg, "SEPREFUSE");
	hello(r, "SEPREFUSE", CAPF_PROTOCOL_VERSION);
	CU_ASSERT_EQUAL(last(r)->body_case, CAPF__PHONE_MESSAGE__BODY_OP_REQUEST);
	csr(r, (const uint8_t *)"garbage", 7);
	CU_ASSERT_EQUAL(last_error(r), CAPF_EBADCSR);
	rig_free(r);

	memset(other_binding, 0x5a, sizeof(other_binding));
	make_csr(key, other_binding, &der, &len);
	r = rig_with_mic(&mfg, "SEPREFUSE");
	hello(r, "SEPREFUSE", CAPF_PROTOCOL_VERSION);
	csr(r, der, len);
	CU_ASSERT_EQUAL(last_error(r), CAPF_EBINDING);
	rig_free(r);
	free(der);
	gnutls_x509_privkey_deinit(key);

	CU_ASSERT_FATAL(pki_gen_key(CAPF__KEY_TYPE__KEY_EC_P384, &key) == 0);
	make_csr(key, binding, &der, &len);
	r = rig_with_mic(&mfg, "SEPREFUSE");
	hello(r, "SEPREFUSE", CAPF_PROTOCOL_VERSION);
	csr(r, der, len);
	CU_ASSERT_EQUAL(last_error(r), CAPF_EPOLICY);
	rig_free(r);
	free(der);
	gnutls_x509_privkey_deinit(key);

	/* A message only a server sends. */
	r = rig_with_mic(&mfg, "SEPREFUSE");
	{
		Capf__PhoneMessage msg = CAPF__PHONE_MESSAGE__INIT;
		Capf__End e = CAPF__END__INIT;
		msg.body_case = CAPF__PHONE_MESSAGE__BODY_END;
		msg.end = &e;
		rig_phone(r, &msg);
	}
	CU_ASSERT_EQUAL(last_error(r), CAPF_EORDER);
	rig_free(r);

	/* Nothing of that reached the records. */
	store_get_stats(st, &after);
	CU_ASSERT_EQUAL(after.txns_written, before.txns_written);
	CU_ASSERT_EQUAL(after.certificates, before.certificates);
}

/* ---- the flow ---------------------------------------------------------------------- */

static void install(const char *name, gnutls_x509_privkey_t key, struct ca_lsc *copy)
{
	uint8_t *der = NULL;
	size_t len = 0;
	struct rig *r = rig_with_mic(&mfg, name);

	hello(r, name, CAPF_PROTOCOL_VERSION);
	CU_ASSERT_EQUAL_FATAL(last(r)->body_case, CAPF__PHONE_MESSAGE__BODY_OP_REQUEST);
	make_csr(key, binding, &der, &len);
	csr(r, der, len);
	free(der);
	if (last(r)->body_case == CAPF__PHONE_MESSAGE__BODY_ERROR)
		fprintf(stderr, "\ninstall %s: %s\n", name, last(r)->error->text);
	CU_ASSERT_EQUAL_FATAL(last(r)->body_case, CAPF__PHONE_MESSAGE__BODY_CERTIFICATE);
	if (copy != NULL) {
		const Capf__CertificateDelivery *cd = last(r)->certificate;
		copy->der = malloc(cd->certificate.len);
		memcpy(copy->der, cd->certificate.data, cd->certificate.len);
		copy->der_len = cd->certificate.len;
	}
	ack(r, 0);
	CU_ASSERT_EQUAL(last(r)->body_case, CAPF__PHONE_MESSAGE__BODY_END);
	CU_ASSERT(r->closed);
	rig_free(r);
}

static void set_lsc_mode(Capf__Device *x)
{
	x->op = CAPF__OPERATION__OP_INSTALL;
	x->auth = CAPF__AUTH_MODE__AUTH_LSC_OR_MIC;
}

static void test_install_flow(void)
{
	gnutls_x509_privkey_t key;
	struct ca_lsc got = { 0 };
	Capf__Device *d;
	Capf__Certificate *c = NULL;
	unsigned sigs = signatures;
	const uint8_t *certs[1];

	add_device("SEPFLOW", CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	CU_ASSERT_FATAL(pki_gen_key(CAPF__KEY_TYPE__KEY_EC_P256, &key) == 0);
	install("SEPFLOW", key, &got);
	CU_ASSERT_EQUAL(signatures, sigs + 1);

	d = device("SEPFLOW");
	CU_ASSERT_EQUAL(d->op, CAPF__OPERATION__OP_NONE);
	CU_ASSERT_EQUAL(d->status, CAPF__OP_STATUS__STATUS_SUCCESS);
	CU_ASSERT_EQUAL(d->revision, 3);
	CU_ASSERT_EQUAL(d->pending_serial.len, 0);
	CU_ASSERT_EQUAL(strlen(d->mic_fingerprint), 64);
	CU_ASSERT_EQUAL_FATAL(store_cert_get(st, d->lsc_serial.data, d->lsc_serial.len, &c), 0);
	CU_ASSERT_EQUAL(c->state, CAPF__CERT_STATE__CERT_ACTIVE);
	CU_ASSERT_EQUAL(c->spki_sha256.len, 32);
	CU_ASSERT_EQUAL(c->der.len, got.der_len);

	/* The LSC is trusted as the device's, and authenticates it now. */
	certs[0] = got.der;
	CU_ASSERT_EQUAL(ca_lsc_verify(ca, certs, &got.der_len, 1, "SEPFLOW", time(NULL)), 0);
	{
		struct rig *r;
		admin_change("SEPFLOW", set_lsc_mode);
		r = rig_new(certs, &got.der_len, 1);
		hello(r, "SEPFLOW", CAPF_PROTOCOL_VERSION);
		CU_ASSERT_EQUAL(last(r)->body_case, CAPF__PHONE_MESSAGE__BODY_OP_REQUEST);
		CU_ASSERT_STRING_EQUAL(core_auth_method(r->core), "lsc");
		rig_free(r);
	}
	capf__certificate__free_unpacked(c, NULL);
	capf__device__free_unpacked(d, NULL);
	free(got.der);
	gnutls_x509_privkey_deinit(key);
}

/* The phone vanished before its acknowledgement: with the same key it
 * gets the same certificate, and the store holds one. */
static void test_retry_same_key(void)
{
	gnutls_x509_privkey_t key;
	uint8_t *der = NULL;
	size_t len = 0;
	struct rig *r;
	uint8_t first[4096];
	size_t first_len;
	struct store_stats before, after;
	unsigned sigs;

	add_device("SEPRETRY", CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	CU_ASSERT_FATAL(pki_gen_key(CAPF__KEY_TYPE__KEY_EC_P256, &key) == 0);
	r = rig_with_mic(&mfg, "SEPRETRY");
	hello(r, "SEPRETRY", CAPF_PROTOCOL_VERSION);
	make_csr(key, binding, &der, &len);
	csr(r, der, len);
	CU_ASSERT_EQUAL_FATAL(last(r)->body_case, CAPF__PHONE_MESSAGE__BODY_CERTIFICATE);
	first_len = last(r)->certificate->certificate.len;
	CU_ASSERT_FATAL(first_len <= sizeof(first));
	memcpy(first, last(r)->certificate->certificate.data, first_len);
	rig_free(r);

	store_get_stats(st, &before);
	sigs = signatures;
	r = rig_with_mic(&mfg, "SEPRETRY");
	hello(r, "SEPRETRY", CAPF_PROTOCOL_VERSION);
	csr(r, der, len); /* a new session: a new CSR with the new binding */
	CU_ASSERT_EQUAL_FATAL(last(r)->body_case, CAPF__PHONE_MESSAGE__BODY_CERTIFICATE);
	CU_ASSERT_EQUAL(last(r)->certificate->certificate.len, first_len);
	CU_ASSERT_EQUAL(memcmp(last(r)->certificate->certificate.data, first, first_len), 0);
	CU_ASSERT_EQUAL(last(r)->certificate->n_chain, 1);
	CU_ASSERT_EQUAL(signatures, sigs);
	ack(r, 0);
	CU_ASSERT_EQUAL(last(r)->body_case, CAPF__PHONE_MESSAGE__BODY_END);
	store_get_stats(st, &after);
	CU_ASSERT_EQUAL(after.certificates, before.certificates);
	rig_free(r);
	free(der);
	gnutls_x509_privkey_deinit(key);
}

static void to_rsa(Capf__Device *d)
{
	d->key_type = CAPF__KEY_TYPE__KEY_RSA_2048;
}

/* An administrator changes the key type between Hello and the CSR: the
 * store's revision check and the core's re-read refuse the old key. */
static void test_key_type_changed(void)
{
	gnutls_x509_privkey_t key;
	uint8_t *der = NULL;
	size_t len = 0;
	struct rig *r;
	Capf__Device *d;

	add_device("SEPCHANGE", CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	CU_ASSERT_FATAL(pki_gen_key(CAPF__KEY_TYPE__KEY_EC_P256, &key) == 0);
	r = rig_with_mic(&mfg, "SEPCHANGE");
	hello(r, "SEPCHANGE", CAPF_PROTOCOL_VERSION);
	admin_change("SEPCHANGE", to_rsa);
	make_csr(key, binding, &der, &len);
	csr(r, der, len);
	CU_ASSERT_EQUAL(last_error(r), CAPF_EPOLICY);
	d = device("SEPCHANGE");
	CU_ASSERT_EQUAL(d->key_type, CAPF__KEY_TYPE__KEY_RSA_2048);
	CU_ASSERT_EQUAL(d->pending_serial.len, 0);
	CU_ASSERT_EQUAL(d->status, CAPF__OP_STATUS__STATUS_PENDING);
	capf__device__free_unpacked(d, NULL);
	rig_free(r);
	free(der);
	gnutls_x509_privkey_deinit(key);
}

static void test_store_failure_fails_closed(void)
{
	gnutls_x509_privkey_t key;
	uint8_t *der = NULL;
	size_t len = 0;
	struct rig *r;
	Capf__Device *d;

	add_device("SEPFAULT", CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	CU_ASSERT_FATAL(pki_gen_key(CAPF__KEY_TYPE__KEY_EC_P256, &key) == 0);
	r = rig_with_mic(&mfg, "SEPFAULT");
	hello(r, "SEPFAULT", CAPF_PROTOCOL_VERSION);
	make_csr(key, binding, &der, &len);
	store_set_fault(st, CAPF_ENOSPC);
	csr(r, der, len);
	store_set_fault(st, 0);
	/* No certificate left: the phone is told to retry. */
	CU_ASSERT_EQUAL(last_error(r), CAPF_ERETRY);
	for (size_t i = 0; i < r->nsent; i++)
		CU_ASSERT_NOT_EQUAL(r->sent[i]->body_case, CAPF__PHONE_MESSAGE__BODY_CERTIFICATE);
	d = device("SEPFAULT");
	CU_ASSERT_EQUAL(d->pending_serial.len, 0);
	CU_ASSERT_EQUAL(d->status, CAPF__OP_STATUS__STATUS_PENDING);
	capf__device__free_unpacked(d, NULL);
	rig_free(r);
	free(der);
	gnutls_x509_privkey_deinit(key);
}

static void reinstall(Capf__Device *d)
{
	d->op = CAPF__OPERATION__OP_INSTALL;
	d->auth = CAPF__AUTH_MODE__AUTH_MIC;
}

/* A new LSC, acknowledged, supersedes the old: revoked, and no longer
 * trusted as the device's. */
static void test_supersede(void)
{
	gnutls_x509_privkey_t k1, k2;
	struct ca_lsc first = { 0 }, second = { 0 };
	const uint8_t *certs[1];
	Capf__Device *d;
	Capf__Certificate *c = NULL;
	uint8_t serial[CA_SERIAL_MAX];
	size_t serial_len;

	add_device("SEPSUPER", CAPF__OPERATION__OP_INSTALL, CAPF__AUTH_MODE__AUTH_MIC,
		   CAPF__KEY_TYPE__KEY_EC_P256);
	CU_ASSERT_FATAL(pki_gen_key(CAPF__KEY_TYPE__KEY_EC_P256, &k1) == 0);
	CU_ASSERT_FATAL(pki_gen_key(CAPF__KEY_TYPE__KEY_EC_P256, &k2) == 0);
	install("SEPSUPER", k1, &first);
	d = device("SEPSUPER");
	serial_len = d->lsc_serial.len;
	memcpy(serial, d->lsc_serial.data, serial_len);
	capf__device__free_unpacked(d, NULL);

	admin_change("SEPSUPER", reinstall);
	install("SEPSUPER", k2, &second);
	CU_ASSERT_EQUAL_FATAL(store_cert_get(st, serial, serial_len, &c), 0);
	CU_ASSERT_EQUAL(c->state, CAPF__CERT_STATE__CERT_REVOKED);
	CU_ASSERT_EQUAL(c->revocation_reason, CA_REASON_SUPERSEDED);
	capf__certificate__free_unpacked(c, NULL);
	certs[0] = first.der;
	CU_ASSERT_EQUAL(ca_lsc_verify(ca, certs, &first.der_len, 1, "SEPSUPER", time(NULL)),
			CAPF_EREVOKED);
	certs[0] = second.der;
	CU_ASSERT_EQUAL(ca_lsc_verify(ca, certs, &second.der_len, 1, "SEPSUPER", time(NULL)), 0);
	free(first.der);
	free(second.der);
	gnutls_x509_privkey_deinit(k1);
	gnutls_x509_privkey_deinit(k2);
}

int main(void)
{
	CU_pSuite s;
	unsigned failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("enroll", suite_init, suite_clean);
	if (s == NULL || CU_add_test(s, "refusals change nothing", test_refusals) == NULL ||
	    CU_add_test(s, "install flow", test_install_flow) == NULL ||
	    CU_add_test(s, "retry with the same key", test_retry_same_key) == NULL ||
	    CU_add_test(s, "key type changed meanwhile", test_key_type_changed) == NULL ||
	    CU_add_test(s, "store failure fails closed", test_store_failure_fails_closed) == NULL ||
	    CU_add_test(s, "supersede", test_supersede) == NULL) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failures > 255 ? 255 : (int)failures;
}
