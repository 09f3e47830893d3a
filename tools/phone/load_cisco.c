/*
 * capf-phone load --protocol cisco: one Cisco CAPF v3 session per phone,
 * as a Cisco phone authenticated by its MIC runs it (shared
 * cisco-capf-v3.md, and `capf-phone cisco --cert`). The messages are made
 * and read by proto/'s Cisco codec, the TLS session is client.c's; only
 * the session's happy path is here, the misbehaviours stay in cisco.c.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>

#include "tools/phone/load.h"

struct cisco_session {
	struct client_tls tls;
	struct cisco_builder b;
	uint8_t buf[CISCO_MSG_MAX];
	size_t len;
	size_t msg_len;
	struct cisco_msg m;
};

/* Reads one whole message, however the records cut it. */
static int recv_msg(struct cisco_session *c)
{
	for (;;) {
		ssize_t want = cisco_msg_length(c->buf, c->len);

		if (want < 0)
			return CAPF_EPROTO;
		if (want > 0 && c->len >= (size_t)want) {
			c->msg_len = (size_t)want;
			return cisco_msg_parse(c->buf, c->msg_len, &c->m);
		}
		ssize_t n = gnutls_record_recv(c->tls.session, c->buf + c->len,
					       sizeof(c->buf) - c->len);
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n == 0)
			return CAPF_ECONNRESET;
		if (n < 0)
			return n == GNUTLS_E_TIMEDOUT ? CAPF_ETIMEDOUT : CAPF_EIO;
		c->len += (size_t)n;
	}
}

static void consume(struct cisco_session *c)
{
	memmove(c->buf, c->buf + c->msg_len, c->len - c->msg_len);
	c->len -= c->msg_len;
}

/* One message per record, as Cisco phones expect. */
static int send_msg(struct cisco_session *c)
{
	const uint8_t *out;
	size_t len;
	int ret = cisco_finish(&c->b, &out, &len);

	return ret < 0 ? ret : client_tls_send_raw(&c->tls, out, len);
}

/*
 * SHA2_SIGNED_DATA: hash id 3 (SHA-512), length, and the MIC key's
 * signature over NAME || 0x00 || MIC DER: RSA as PKCS#1 v1.5 around the
 * bare digest, EC as plain ECDSA, as Cisco phones make it.
 */
static int put_signature(struct cisco_session *c, gnutls_x509_privkey_t xkey, const char *name,
			 const uint8_t *der, size_t der_len)
{
	gnutls_privkey_t key = NULL;
	gnutls_datum_t h, sig = { NULL, 0 };
	uint8_t hash[64], *msg = NULL, *e = NULL;
	size_t nl = strlen(name);
	int ret = CAPF_ECRYPTO;

	msg = malloc(nl + 1 + der_len);
	if (!msg)
		return CAPF_ENOMEM;
	memcpy(msg, name, nl + 1);
	memcpy(msg + nl + 1, der, der_len);
	if (gnutls_hash_fast(GNUTLS_DIG_SHA512, msg, nl + 1 + der_len, hash) < 0 ||
	    gnutls_privkey_init(&key) < 0 || gnutls_privkey_import_x509(key, xkey, 0) < 0)
		goto out;
	h.data = hash;
	h.size = sizeof(hash);
	if (gnutls_privkey_get_pk_algorithm(key, NULL) == GNUTLS_PK_RSA
		    ? gnutls_privkey_sign_hash(key, GNUTLS_DIG_SHA512,
					       GNUTLS_PRIVKEY_SIGN_FLAG_TLS1_RSA, &h, &sig) < 0
		    : gnutls_privkey_sign_hash2(key, GNUTLS_SIGN_ECDSA_SHA512, 0, &h, &sig) < 0)
		goto out;
	e = malloc(sig.size + 3);
	if (!e) {
		ret = CAPF_ENOMEM;
		goto out;
	}
	e[0] = 3;
	e[1] = (uint8_t)(sig.size >> 8);
	e[2] = (uint8_t)sig.size;
	memcpy(e + 3, sig.data, sig.size);
	cisco_put(&c->b, CISCO_EL_SHA2_SIGNED_DATA, e, sig.size + 3);
	ret = 0;
out:
	free(e);
	free(msg);
	gnutls_free(sig.data);
	gnutls_privkey_deinit(key);
	return ret;
}

/* The key asked for in KEY_GENERATE_REQUEST, as a capf KeyType; 0 if unknown. */
static int key_asked(const struct cisco_msg *m)
{
	unsigned kt = 0, v = 0;

	if (cisco_el_u8(m, CISCO_EL_KEY_TYPE, &kt) < 0)
		return 0;
	if (kt == 1)
		return cisco_el_u8(m, CISCO_EL_CURVE, &v) < 0 ? 0
		       : v == 0				      ? CAPF__KEY_TYPE__KEY_EC_P256
		       : v == 1				      ? CAPF__KEY_TYPE__KEY_EC_P384
		       : v == 2				      ? CAPF__KEY_TYPE__KEY_EC_P521
							      : 0;
	if (cisco_el_u16(m, CISCO_EL_KEY_SIZE, &v) < 0)
		return 0;
	return v == 2048 ? CAPF__KEY_TYPE__KEY_RSA_2048
	       : v == 3072 ? CAPF__KEY_TYPE__KEY_RSA_3072
	       : v == 4096 ? CAPF__KEY_TYPE__KEY_RSA_4096
			   : 0;
}

/* The SubjectPublicKeyInfo of key, in b's PUBLIC_KEY element. */
static int put_public_key(struct cisco_session *c, gnutls_x509_privkey_t xkey)
{
	gnutls_privkey_t pk = NULL;
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t spki = { NULL, 0 };
	int ret = CAPF_ECRYPTO;

	if (gnutls_privkey_init(&pk) >= 0 && gnutls_privkey_import_x509(pk, xkey, 0) >= 0 &&
	    gnutls_pubkey_init(&pub) >= 0 && gnutls_pubkey_import_privkey(pub, pk, 0, 0) >= 0 &&
	    gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &spki) >= 0) {
		cisco_put(&c->b, CISCO_EL_PUBLIC_KEY, spki.data, spki.size);
		ret = 0;
	}
	gnutls_free(spki.data);
	gnutls_pubkey_deinit(pub);
	gnutls_privkey_deinit(pk);
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
	ret = client_tls_open(&c->tls, l->host, l->port, NULL, trust, timeout_ms);
	if (ret < 0)
		goto out;
	*group = (int)gnutls_group_get(c->tls.session);
	for (;;) {
		ret = recv_msg(c);
		if (ret < 0)
			goto out;
		uint32_t sid = c->m.session_id;
		unsigned cmd = c->m.command;

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
			int kt = key_asked(&c->m);

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
				ret = put_public_key(c, key);
		} else if (cmd == CISCO_STORE_CERTIFICATE_REQUEST) {
			const uint8_t *der;
			size_t dlen;
			bool ok = key != NULL &&
				  cisco_el_certificate(&c->m, CISCO_EL_CERTIFICATE, &der, &dlen) == 0 &&
				  client_trust_verify(trust, der, dlen) == 1;

			cisco_builder_init(&c->b, CISCO_STORE_CERTIFICATE_RESPONSE, sid);
			cisco_put_u8(&c->b, CISCO_EL_REASON,
				     ok ? CISCO_REASON_SUCCESS : CISCO_REASON_FAILURE);
		} else if (cmd == CISCO_END_SESSION) {
			(void)cisco_el_u8(&c->m, CISCO_EL_REASON, reason);
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
		consume(c);
		ret = send_msg(c);
		if (ret < 0)
			goto out;
	}
out:
	client_tls_close(&c->tls);
	if (fresh)
		gnutls_x509_privkey_deinit(fresh);
	free(mic_der);
	free(c);
	return ret;
}
