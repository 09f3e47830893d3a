/*
 * capf-phone load --protocol cisco: one Cisco CAPF v3 session per phone,
 * as a Cisco phone authenticated by its MIC runs it (shared
 * cisco-capf-v3.md, and `capf-phone cisco --cert`). The messages are made
 * and read by proto/'s Cisco codec, the TLS session is client.c's, what
 * every Cisco phone does the same is cisco_io.c's; only the session's
 * happy path is here, the misbehaviours stay in cisco.c.
 */
#include "config.h"

#include <stdlib.h>

#include "tools/phone/load.h"

struct cisco_session {
	struct phone_cisco io;
	struct cisco_builder b;
};

/* One message per record, as Cisco phones expect. */
static int send_msg(struct cisco_session *c)
{
	const uint8_t *out;
	size_t len;
	int ret = cisco_finish(&c->b, &out, &len);

	return ret < 0 ? ret : client_tls_send_raw(&c->io.tls, out, len);
}

/* SHA2_SIGNED_DATA: the MIC key's signature over NAME || 0x00 || MIC DER. */
static int put_signature(struct cisco_session *c, gnutls_x509_privkey_t key, const char *name,
			 const uint8_t *der, size_t der_len)
{
	gnutls_datum_t sig = { NULL, 0 };
	int ret = pki_cisco_sign_name(key, true, name, der, der_len, &sig);

	if (ret == 0)
		ret = phone_cisco_put_sha2_signed(&c->b, &sig);
	gnutls_free(sig.data);
	return ret;
}

int load_cisco_enroll(const struct load *l, unsigned long i, const struct client_trust *trust,
		      unsigned timeout_ms, int *group, unsigned *reason)
{
	struct cisco_session *c = calloc(1, sizeof(*c));
	const struct pki_pair *mic = &l->mics[i];
	gnutls_x509_privkey_t fresh = NULL, key = NULL;
	uint8_t *mic_der = NULL;
	size_t mic_len = 0;
	int ret;

	*reason = 0;
	*group = 0;
	if (!c)
		return CAPF_ENOMEM;
	ret = pki_crt_der(mic->crt, &mic_der, &mic_len);
	if (ret < 0)
		goto out;
	/* No client certificate: Cisco's servers request none. */
	ret = client_tls_open(&c->io.tls, l->host, l->port, NULL, trust, timeout_ms);
	if (ret < 0)
		goto out;
	*group = (int)gnutls_group_get(c->io.tls.session);
	for (;;) {
		ret = phone_cisco_recv(&c->io);
		if (ret < 0)
			goto out;
		uint32_t sid = c->io.m.session_id;
		unsigned cmd = c->io.m.command;

		if (cmd == CISCO_AUTH_REQUEST) {
			cisco_builder_init(&c->b, CISCO_AUTH_RESPONSE, sid);
			cisco_put_u8(&c->b, CISCO_EL_REASON, CISCO_REASON_SUCCESS);
			cisco_put_u8(&c->b, CISCO_EL_VERSION, CISCO_VERSION);
			cisco_put_string(&c->b, CISCO_EL_DEVICE_NAME, l->names[i]);
			cisco_put_string(&c->b, CISCO_EL_PASSWORD, "");
			cisco_put_u8(&c->b, CISCO_EL_CERTIFICATE_TYPE, 2);
			cisco_put_certificate(&c->b, CISCO_EL_CERTIFICATE, mic_der, mic_len);
			ret = put_signature(c, mic->key, l->names[i], mic_der, mic_len);
		} else if (cmd == CISCO_KEY_GENERATE_REQUEST) {
			int kt = phone_cisco_key_asked(&c->io.m);

			key = load_lsc_key(l, i);
			if (kt == 0 || (key && kt != l->key_type)) {
				ret = CAPF_EPROTO; /* not the key the records ask for */
				goto out;
			}
			if (!key) {
				ret = pki_gen_key(kt, &fresh);
				key = fresh;
			}
			cisco_builder_init(&c->b, CISCO_KEY_GENERATE_RESPONSE, sid);
			if (ret == 0)
				ret = phone_cisco_put_public_key(&c->b, key);
		} else if (cmd == CISCO_STORE_CERTIFICATE_REQUEST) {
			const uint8_t *der;
			size_t dlen;
			/* Its signature verified for 1 phone in --verify-every. */
			bool ok = key != NULL &&
				  cisco_el_certificate(&c->io.m, CISCO_EL_CERTIFICATE, &der, &dlen) == 0 &&
				  (i % l->verify_every != 0 || client_trust_verify(trust, der, dlen) == 1);

			cisco_builder_init(&c->b, CISCO_STORE_CERTIFICATE_RESPONSE, sid);
			cisco_put_u8(&c->b, CISCO_EL_REASON,
				     ok ? CISCO_REASON_SUCCESS : CISCO_REASON_FAILURE);
		} else if (cmd == CISCO_END_SESSION) {
			(void)cisco_el_u8(&c->io.m, CISCO_EL_REASON, reason);
			ret = *reason == CISCO_REASON_SUCCESS ? 0 : CAPF_EREJECTED;
			goto out;
		} else if (cmd == CISCO_RETRY_LATER) {
			ret = CAPF_ERETRY;
			goto out;
		} else {
			ret = CAPF_EPROTO;
			goto out;
		}
		if (ret < 0)
			goto out;
		phone_cisco_consume(&c->io);
		ret = send_msg(c);
		if (ret < 0)
			goto out;
	}
out:
	client_tls_close(&c->io.tls);
	if (fresh)
		gnutls_x509_privkey_deinit(fresh);
	free(mic_der);
	free(c);
	return ret;
}
