/*
 * Tests of the enrollment state machine, driven message by message with a
 * real CA and a real store in a temporary directory, and no sockets.
 */
#include "config.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ca/ca.h"
#include "capf/enroll.h"
#include "store/store.h"
#include "tools/pki.h"

static char tmpdir[] = "/tmp/capf-test-enroll-XXXXXX";
static struct ca *ca;
static struct store *st;
static struct pki_pair mfg, other_mfg;
static uint8_t binding[CA_BINDING_LEN];

#define DEV "SEP001122334455"

static void add_device(const char *name, Capf__Operation op)
{
	Capf__Device d = CAPF__DEVICE__INIT;
	Capf__StoreRecord rec = CAPF__STORE_RECORD__INIT;
	Capf__StoreRecord *recs[1] = { &rec };

	d.name = (char *)name;
	d.op = op;
	d.auth = CAPF__AUTH_MODE__AUTH_MIC;
	d.key_type = CAPF__KEY_TYPE__KEY_EC_P256;
	d.status = op != CAPF__OPERATION__OP_NONE ? CAPF__OP_STATUS__STATUS_PENDING
						   : CAPF__OP_STATUS__STATUS_NONE;
	rec.body_case = CAPF__STORE_RECORD__BODY_DEVICE;
	rec.device = &d;
	CU_ASSERT_FATAL(store_submit_wait(st, recs, 1) == 0);
}

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
	pki_pair_deinit(&mfg);
	pki_pair_deinit(&other_mfg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* A session whose peer presented the MIC of cn issued by root. */
static struct enroll *session_with_mic(const struct pki_pair *root, const char *cn,
				       struct pki_pair *mic_out)
{
	struct enroll_env env = { .ca = ca, .store = st };
	struct pki_pair mic = { 0 };
	uint8_t *der = NULL;
	size_t len = 0;
	struct enroll *e;

	CU_ASSERT_FATAL(pki_make_mic(root, cn, 0, 30, &mic) == 0);
	CU_ASSERT_FATAL(pki_crt_der(mic.crt, &der, &len) == 0);
	const uint8_t *certs[1] = { der };
	e = enroll_new(&env, certs, &len, 1, binding, sizeof(binding));
	free(der);
	if (mic_out != NULL)
		*mic_out = mic;
	else
		pki_pair_deinit(&mic);
	return e;
}

/* Decode the single frame in out. Caller frees the message. */
static Capf__PhoneMessage *out_msg(const struct enroll_out *out)
{
	struct frame_decoder d;
	const uint8_t *payload = NULL;
	size_t plen = 0;
	Capf__PhoneMessage *m = NULL;
	ssize_t used;

	CU_ASSERT_PTR_NOT_NULL_FATAL(out->frame);
	frame_decoder_init(&d, FRAME_MAX_DEFAULT);
	used = frame_decode(&d, out->frame, out->frame_len, &payload, &plen);
	CU_ASSERT_EQUAL(used, (ssize_t)out->frame_len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(payload);
	CU_ASSERT_EQUAL_FATAL(phone_msg_unpack(payload, plen, &m), 0);
	frame_decoder_deinit(&d);
	return m;
}

static void assert_error_out(const struct enroll_out *out, int code)
{
	Capf__PhoneMessage *m = out_msg(out);

	CU_ASSERT_EQUAL(m->body_case, CAPF__PHONE_MESSAGE__BODY_ERROR);
	if (m->body_case == CAPF__PHONE_MESSAGE__BODY_ERROR)
		CU_ASSERT_EQUAL(m->error->code, (uint32_t)-code);
	CU_ASSERT(out->close);
	CU_ASSERT_EQUAL(out->error, code);
	CU_ASSERT_EQUAL(out->npersist, 0);
	capf__phone_message__free_unpacked(m, NULL);
}

static int send_hello(struct enroll *e, const char *name, struct enroll_out *out)
{
	Capf__PhoneMessage msg = CAPF__PHONE_MESSAGE__INIT;
	Capf__Hello hello = CAPF__HELLO__INIT;

	hello.version = CAPF_PROTOCOL_VERSION;
	hello.device_name = (char *)name;
	msg.body_case = CAPF__PHONE_MESSAGE__BODY_HELLO;
	msg.hello = &hello;
	return enroll_on_message(e, &msg, out);
}

static int send_csr(struct enroll *e, const uint8_t *der, size_t len, struct enroll_out *out)
{
	Capf__PhoneMessage msg = CAPF__PHONE_MESSAGE__INIT;
	Capf__CsrSubmit csr = CAPF__CSR_SUBMIT__INIT;

	csr.csr.data = (uint8_t *)der;
	csr.csr.len = len;
	msg.body_case = CAPF__PHONE_MESSAGE__BODY_CSR;
	msg.csr = &csr;
	return enroll_on_message(e, &msg, out);
}

static int send_ack(struct enroll *e, uint32_t code, struct enroll_out *out)
{
	Capf__PhoneMessage msg = CAPF__PHONE_MESSAGE__INIT;
	Capf__StoreAck ack = CAPF__STORE_ACK__INIT;

	ack.code = code;
	msg.body_case = CAPF__PHONE_MESSAGE__BODY_STORE_ACK;
	msg.store_ack = &ack;
	return enroll_on_message(e, &msg, out);
}

/* Hello for a device with a pending install must yield an OperationRequest. */
static struct enroll *session_at_csr(const char *name)
{
	struct enroll_out out;
	struct enroll *e = session_with_mic(&mfg, name, NULL);
	Capf__PhoneMessage *m;

	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_EQUAL_FATAL(send_hello(e, name, &out), 0);
	m = out_msg(&out);
	CU_ASSERT_EQUAL(m->body_case, CAPF__PHONE_MESSAGE__BODY_OP_REQUEST);
	CU_ASSERT_EQUAL(m->op_request->op, CAPF__OPERATION__OP_INSTALL);
	CU_ASSERT_EQUAL(m->op_request->key_type, CAPF__KEY_TYPE__KEY_EC_P256);
	CU_ASSERT_FALSE(out.close);
	capf__phone_message__free_unpacked(m, NULL);
	enroll_out_deinit(&out);
	CU_ASSERT_EQUAL(enroll_state(e), ENROLL_WAIT_CSR);
	return e;
}

static void make_csr(const uint8_t *bind, uint8_t **der, size_t *len)
{
	gnutls_x509_privkey_t key;

	CU_ASSERT_FATAL(pki_gen_key(CAPF__KEY_TYPE__KEY_EC_P256, &key) == 0);
	CU_ASSERT_FATAL(pki_make_csr(key, "CN=whatever-the-phone-says", bind,
				     bind != NULL ? CA_BINDING_LEN : 0, der, len) == 0);
	gnutls_x509_privkey_deinit(key);
}

/* ---- invalid input first -------------------------------------------------- */

static void test_unknown_device(void)
{
	struct enroll_out out;
	struct enroll *e = session_with_mic(&mfg, "SEPUNKNOWN0001", NULL);
	Capf__Device *d = NULL;

	CU_ASSERT_EQUAL(send_hello(e, "SEPUNKNOWN0001", &out), CAPF_EUNKNOWN_DEVICE);
	assert_error_out(&out, CAPF_EUNKNOWN_DEVICE);
	CU_ASSERT_EQUAL(enroll_state(e), ENROLL_DONE);
	CU_ASSERT_EQUAL(store_device_get(st, "SEPUNKNOWN0001", &d), CAPF_ENOENT);
	enroll_out_deinit(&out);
	enroll_free(e);
}

static void test_no_operation(void)
{
	struct enroll_out out;
	struct enroll *e;

	add_device("SEPNOOP", CAPF__OPERATION__OP_NONE);
	e = session_with_mic(&mfg, "SEPNOOP", NULL);
	CU_ASSERT_EQUAL(send_hello(e, "SEPNOOP", &out), CAPF_ENO_OPERATION);
	assert_error_out(&out, CAPF_ENO_OPERATION);
	enroll_out_deinit(&out);
	enroll_free(e);
}

static void test_untrusted_mic(void)
{
	struct enroll_out out;
	struct enroll *e;

	add_device("SEPUNTRUSTED", CAPF__OPERATION__OP_INSTALL);
	e = session_with_mic(&other_mfg, "SEPUNTRUSTED", NULL);
	CU_ASSERT_EQUAL(send_hello(e, "SEPUNTRUSTED", &out), CAPF_EUNTRUSTED);
	assert_error_out(&out, CAPF_EUNTRUSTED);
	enroll_out_deinit(&out);
	enroll_free(e);
}

static void test_mic_of_other_device(void)
{
	struct enroll_out out;
	struct enroll *e;
	Capf__Device *before = NULL, *after = NULL;

	add_device("SEPVICTIM", CAPF__OPERATION__OP_INSTALL);
	CU_ASSERT_EQUAL_FATAL(store_device_get(st, "SEPVICTIM", &before), 0);
	e = session_with_mic(&mfg, "SEPATTACKER", NULL);
	CU_ASSERT_EQUAL(send_hello(e, "SEPVICTIM", &out), CAPF_EIDENTITY);
	assert_error_out(&out, CAPF_EIDENTITY);
	CU_ASSERT_EQUAL_FATAL(store_device_get(st, "SEPVICTIM", &after), 0);
	CU_ASSERT_EQUAL(after->status, before->status);
	CU_ASSERT_EQUAL(after->op, before->op);
	CU_ASSERT_EQUAL(after->updated, before->updated);
	capf__device__free_unpacked(before, NULL);
	capf__device__free_unpacked(after, NULL);
	enroll_out_deinit(&out);
	enroll_free(e);
}

static void test_no_certificate(void)
{
	struct enroll_env env = { .ca = ca, .store = st };
	struct enroll_out out;
	struct enroll *e;

	add_device("SEPNOCERT", CAPF__OPERATION__OP_INSTALL);
	e = enroll_new(&env, NULL, NULL, 0, binding, sizeof(binding));
	CU_ASSERT_EQUAL(send_hello(e, "SEPNOCERT", &out), CAPF_ENOCERT);
	assert_error_out(&out, CAPF_ENOCERT);
	enroll_out_deinit(&out);
	enroll_free(e);
}

static void test_out_of_order(void)
{
	struct enroll_out out;
	struct enroll *e = session_with_mic(&mfg, DEV, NULL);
	uint8_t *der = NULL;
	size_t len = 0;

	make_csr(binding, &der, &len);
	CU_ASSERT_EQUAL(send_csr(e, der, len, &out), CAPF_EORDER);
	assert_error_out(&out, CAPF_EORDER);
	enroll_out_deinit(&out);
	enroll_free(e);

	/* An acknowledgement before any certificate is just as wrong. */
	add_device("SEPORDER", CAPF__OPERATION__OP_INSTALL);
	e = session_at_csr("SEPORDER");
	CU_ASSERT_EQUAL(send_ack(e, 0, &out), CAPF_EORDER);
	assert_error_out(&out, CAPF_EORDER);
	enroll_out_deinit(&out);
	enroll_free(e);
	free(der);
}

static void test_csr_other_session(void)
{
	struct enroll_out out;
	struct enroll *e;
	uint8_t other[CA_BINDING_LEN];
	uint8_t *der = NULL;
	size_t len = 0;

	memset(other, 0xAB, sizeof(other));
	add_device("SEPBINDING", CAPF__OPERATION__OP_INSTALL);
	e = session_at_csr("SEPBINDING");
	make_csr(other, &der, &len);
	CU_ASSERT_EQUAL(send_csr(e, der, len, &out), CAPF_EBINDING);
	assert_error_out(&out, CAPF_EBINDING);
	enroll_out_deinit(&out);
	enroll_free(e);
	free(der);

	/* No binding at all. */
	e = session_at_csr("SEPBINDING");
	make_csr(NULL, &der, &len);
	CU_ASSERT_EQUAL(send_csr(e, der, len, &out), CAPF_EBINDING);
	enroll_out_deinit(&out);
	enroll_free(e);
	free(der);
}

static void test_csr_bad_signature(void)
{
	struct enroll_out out;
	struct enroll *e;
	uint8_t *der = NULL;
	size_t len = 0;

	add_device("SEPBADSIG", CAPF__OPERATION__OP_INSTALL);
	e = session_at_csr("SEPBADSIG");
	make_csr(binding, &der, &len);
	/* The signature is the last element: flip a byte well inside it. */
	der[len - 10] ^= 0x01;
	CU_ASSERT_EQUAL(send_csr(e, der, len, &out), CAPF_ECSRSIG);
	assert_error_out(&out, CAPF_ECSRSIG);
	enroll_out_deinit(&out);
	enroll_free(e);
	free(der);

	e = session_at_csr("SEPBADSIG");
	CU_ASSERT_EQUAL(send_csr(e, (const uint8_t *)"garbage", 7, &out), CAPF_EBADCSR);
	assert_error_out(&out, CAPF_EBADCSR);
	enroll_out_deinit(&out);
	enroll_free(e);
}

static void test_phone_error_closes(void)
{
	Capf__PhoneMessage msg = CAPF__PHONE_MESSAGE__INIT;
	Capf__Error err = CAPF__ERROR__INIT;
	struct enroll_out out;
	struct enroll *e = session_with_mic(&mfg, DEV, NULL);

	err.code = 1;
	err.text = (char *)"phone gives up";
	msg.body_case = CAPF__PHONE_MESSAGE__BODY_ERROR;
	msg.error = &err;
	CU_ASSERT(enroll_on_message(e, &msg, &out) < 0);
	CU_ASSERT(out.close);
	CU_ASSERT_PTR_NULL(out.frame);
	enroll_out_deinit(&out);
	enroll_free(e);
}

static int claim_busy(void *arg, const char *device)
{
	(void)arg;
	(void)device;
	return CAPF_EBUSY;
}

static void test_concurrent_session(void)
{
	struct enroll_env env = { .ca = ca, .store = st, .claim = claim_busy };
	struct enroll_out out;
	struct pki_pair mic = { 0 };
	uint8_t *der = NULL;
	size_t len = 0;
	struct enroll *e;

	add_device("SEPBUSY", CAPF__OPERATION__OP_INSTALL);
	CU_ASSERT_FATAL(pki_make_mic(&mfg, "SEPBUSY", 0, 30, &mic) == 0);
	CU_ASSERT_FATAL(pki_crt_der(mic.crt, &der, &len) == 0);
	const uint8_t *certs[1] = { der };
	e = enroll_new(&env, certs, &len, 1, binding, sizeof(binding));
	CU_ASSERT_EQUAL(send_hello(e, "SEPBUSY", &out), CAPF_EBUSY);
	assert_error_out(&out, CAPF_EBUSY);
	enroll_out_deinit(&out);
	enroll_free(e);
	free(der);
	pki_pair_deinit(&mic);
}

/* The store cannot write: no certificate leaves, the phone is told to retry. */
static void test_store_failure_fails_closed(void)
{
	struct enroll_out out;
	struct enroll *e;
	uint8_t *der = NULL;
	size_t len = 0;
	Capf__Device *d = NULL;

	add_device("SEPDISKFULL", CAPF__OPERATION__OP_INSTALL);
	e = session_at_csr("SEPDISKFULL");
	make_csr(binding, &der, &len);
	CU_ASSERT_EQUAL(send_csr(e, der, len, &out), 0);
	CU_ASSERT_PTR_NULL(out.frame); /* nothing is sent before it is recorded */
	CU_ASSERT_EQUAL(out.npersist, 2);
	store_set_fault(st, CAPF_ENOSPC);
	CU_ASSERT_EQUAL(store_submit_wait(st, out.persist, out.npersist), CAPF_ENOSPC);
	store_set_fault(st, 0);
	enroll_out_deinit(&out);

	CU_ASSERT_EQUAL(enroll_on_persisted(e, CAPF_ENOSPC, &out), CAPF_ERETRY);
	assert_error_out(&out, CAPF_ERETRY);
	enroll_out_deinit(&out);
	enroll_free(e);
	free(der);

	CU_ASSERT_EQUAL_FATAL(store_device_get(st, "SEPDISKFULL", &d), 0);
	CU_ASSERT_EQUAL(d->status, CAPF__OP_STATUS__STATUS_PENDING);
	CU_ASSERT_EQUAL(d->lsc_serial.len, 0);
	capf__device__free_unpacked(d, NULL);
}

/* ---- the whole flow ----------------------------------------------------------- */

static void test_install_flow(void)
{
	struct enroll_out out;
	struct enroll *e;
	uint8_t *der = NULL;
	size_t len = 0;
	Capf__PhoneMessage *m;
	Capf__Device *d = NULL;
	Capf__Certificate *c = NULL;
	uint8_t serial[CA_SERIAL_LEN];
	gnutls_x509_crt_t crt;
	char cn[128];
	size_t cn_len = sizeof(cn), serial_len = sizeof(serial);

	add_device(DEV, CAPF__OPERATION__OP_INSTALL);
	e = session_at_csr(DEV);
	make_csr(binding, &der, &len);
	CU_ASSERT_EQUAL_FATAL(send_csr(e, der, len, &out), 0);
	free(der);

	/* Write-ahead: first the records, no frame. */
	CU_ASSERT_PTR_NULL(out.frame);
	CU_ASSERT_FALSE(out.close);
	CU_ASSERT_EQUAL_FATAL(out.npersist, 2);
	CU_ASSERT_EQUAL(out.persist[0]->body_case, CAPF__STORE_RECORD__BODY_CERT);
	CU_ASSERT_EQUAL(out.persist[0]->cert->state, CAPF__CERT_STATE__CERT_UNCONFIRMED);
	CU_ASSERT_STRING_EQUAL(out.persist[0]->cert->device, DEV);
	CU_ASSERT_EQUAL(out.persist[1]->device->status, CAPF__OP_STATUS__STATUS_ISSUED);
	CU_ASSERT_EQUAL(enroll_state(e), ENROLL_PERSIST_ISSUE);
	CU_ASSERT_EQUAL_FATAL(store_submit_wait(st, out.persist, out.npersist), 0);
	enroll_out_deinit(&out);

	/* Recorded, unconfirmed, before the phone has seen a byte of it. */
	CU_ASSERT_EQUAL_FATAL(store_device_get(st, DEV, &d), 0);
	CU_ASSERT_EQUAL(d->status, CAPF__OP_STATUS__STATUS_ISSUED);
	capf__device__free_unpacked(d, NULL);

	CU_ASSERT_EQUAL_FATAL(enroll_on_persisted(e, 0, &out), 0);
	m = out_msg(&out);
	CU_ASSERT_EQUAL_FATAL(m->body_case, CAPF__PHONE_MESSAGE__BODY_CERTIFICATE);
	CU_ASSERT_EQUAL(m->certificate->n_chain, 1);
	gnutls_x509_crt_init(&crt);
	gnutls_datum_t dt = { m->certificate->certificate.data,
			      (unsigned)m->certificate->certificate.len };
	CU_ASSERT_EQUAL_FATAL(gnutls_x509_crt_import(crt, &dt, GNUTLS_X509_FMT_DER), 0);
	/* The server decides identity: CN from the record, not the CSR. */
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn,
						      &cn_len),
			0);
	CU_ASSERT_STRING_EQUAL(cn, DEV);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_serial(crt, serial, &serial_len), 0);
	CU_ASSERT_EQUAL(serial_len, CA_SERIAL_LEN);
	gnutls_x509_crt_deinit(crt);
	capf__phone_message__free_unpacked(m, NULL);
	CU_ASSERT_FALSE(out.close);
	enroll_out_deinit(&out);

	CU_ASSERT_EQUAL_FATAL(store_cert_get(st, serial, sizeof(serial), &c), 0);
	CU_ASSERT_EQUAL(c->state, CAPF__CERT_STATE__CERT_UNCONFIRMED);
	capf__certificate__free_unpacked(c, NULL);

	CU_ASSERT_EQUAL_FATAL(send_ack(e, 0, &out), 0);
	CU_ASSERT_PTR_NULL(out.frame);
	CU_ASSERT_EQUAL_FATAL(out.npersist, 2);
	CU_ASSERT_EQUAL_FATAL(store_submit_wait(st, out.persist, out.npersist), 0);
	enroll_out_deinit(&out);
	CU_ASSERT_EQUAL_FATAL(enroll_on_persisted(e, 0, &out), 0);
	m = out_msg(&out);
	CU_ASSERT_EQUAL(m->body_case, CAPF__PHONE_MESSAGE__BODY_END);
	CU_ASSERT_EQUAL(m->end->code, 0);
	CU_ASSERT(out.close);
	CU_ASSERT(out.success);
	CU_ASSERT_EQUAL(out.error, 0);
	capf__phone_message__free_unpacked(m, NULL);
	enroll_out_deinit(&out);
	CU_ASSERT_EQUAL(enroll_state(e), ENROLL_DONE);
	enroll_free(e);

	CU_ASSERT_EQUAL_FATAL(store_device_get(st, DEV, &d), 0);
	CU_ASSERT_EQUAL(d->op, CAPF__OPERATION__OP_NONE);
	CU_ASSERT_EQUAL(d->status, CAPF__OP_STATUS__STATUS_SUCCESS);
	CU_ASSERT_EQUAL_FATAL(d->lsc_serial.len, CA_SERIAL_LEN);
	CU_ASSERT_EQUAL(memcmp(d->lsc_serial.data, serial, CA_SERIAL_LEN), 0);
	capf__device__free_unpacked(d, NULL);
	CU_ASSERT_EQUAL_FATAL(store_cert_get(st, serial, sizeof(serial), &c), 0);
	CU_ASSERT_EQUAL(c->state, CAPF__CERT_STATE__CERT_ACTIVE);
	capf__certificate__free_unpacked(c, NULL);

	/* The operation is done: the same phone coming back gets nothing. */
	e = session_with_mic(&mfg, DEV, NULL);
	CU_ASSERT_EQUAL(send_hello(e, DEV, &out), CAPF_ENO_OPERATION);
	enroll_out_deinit(&out);
	enroll_free(e);
}

int main(void)
{
	CU_pSuite s;
	unsigned failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("enroll", suite_init, suite_clean);
	if (s == NULL || CU_add_test(s, "unknown device", test_unknown_device) == NULL ||
	    CU_add_test(s, "no pending operation", test_no_operation) == NULL ||
	    CU_add_test(s, "MIC from an untrusted CA", test_untrusted_mic) == NULL ||
	    CU_add_test(s, "MIC of another device", test_mic_of_other_device) == NULL ||
	    CU_add_test(s, "no client certificate", test_no_certificate) == NULL ||
	    CU_add_test(s, "message out of order", test_out_of_order) == NULL ||
	    CU_add_test(s, "CSR bound to another session", test_csr_other_session) == NULL ||
	    CU_add_test(s, "CSR with a bad signature", test_csr_bad_signature) == NULL ||
	    CU_add_test(s, "phone error closes", test_phone_error_closes) == NULL ||
	    CU_add_test(s, "second session for a device", test_concurrent_session) == NULL ||
	    CU_add_test(s, "store failure fails closed", test_store_failure_fails_closed) == NULL ||
	    CU_add_test(s, "install flow", test_install_flow) == NULL) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return (int)failures;
}
