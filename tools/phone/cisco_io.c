/*
 * What a Cisco phone does the same in every session of Cisco's CAPF v3
 * (shared/cisco-capf-v3.md), for `capf-phone cisco` (cisco.c, which adds
 * the misbehaviours) and `capf-phone load --protocol cisco`
 * (load_cisco.c): reading the server's messages off the TLS session, the
 * element of the signature over the device name (pki_cisco_sign_name()
 * makes it), the key asked for and the public key sent back.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>

#include "tools/phone/phone.h"

int phone_cisco_recv(struct phone_cisco *c)
{
	for (;;) {
		ssize_t want = cisco_msg_length(c->buf, c->len);

		if (want < 0)
			return CAPF_EPROTO;
		if (want > 0 && c->len >= (size_t)want) {
			c->msg_len = (size_t)want;
			/* Recorded as it came, before it is judged. */
			transcript_message(c->rec, TRANSCRIPT_SERVER, transcript_cisco_type(c->buf[1]),
					   c->buf, c->msg_len);
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

void phone_cisco_consume(struct phone_cisco *c)
{
	memmove(c->buf, c->buf + c->msg_len, c->len - c->msg_len);
	c->len -= c->msg_len;
}

int phone_cisco_put_sha2_signed(struct cisco_builder *b, const gnutls_datum_t *sig)
{
	uint8_t *e = malloc(sig->size + 3);

	if (e == NULL)
		return CAPF_ENOMEM;
	e[0] = 3; /* SHA-512 */
	e[1] = (uint8_t)(sig->size >> 8);
	e[2] = (uint8_t)sig->size;
	memcpy(e + 3, sig->data, sig->size);
	cisco_put(b, CISCO_EL_SHA2_SIGNED_DATA, e, sig->size + 3);
	free(e);
	return 0;
}

int phone_cisco_key_asked(const struct cisco_msg *m)
{
	unsigned kt = 0, v = 0;

	if (cisco_el_u8(m, CISCO_EL_KEY_TYPE, &kt) < 0)
		return 0;
	if (kt == 1) {
		if (cisco_el_u8(m, CISCO_EL_CURVE, &v) < 0)
			return 0;
		return v == 0   ? CAPF__KEY_TYPE__KEY_EC_P256
		       : v == 1 ? CAPF__KEY_TYPE__KEY_EC_P384
		       : v == 2 ? CAPF__KEY_TYPE__KEY_EC_P521
				: 0;
	}
	if (cisco_el_u16(m, CISCO_EL_KEY_SIZE, &v) < 0)
		return 0;
	return v == 2048   ? CAPF__KEY_TYPE__KEY_RSA_2048
	       : v == 3072 ? CAPF__KEY_TYPE__KEY_RSA_3072
	       : v == 4096 ? CAPF__KEY_TYPE__KEY_RSA_4096
			   : 0;
}

int phone_cisco_put_public_key(struct cisco_builder *b, gnutls_x509_privkey_t key)
{
	gnutls_privkey_t pk = NULL;
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t spki = { NULL, 0 };
	int ret = CAPF_ECRYPTO;

	if (gnutls_privkey_init(&pk) >= 0 && gnutls_privkey_import_x509(pk, key, 0) >= 0 &&
	    gnutls_pubkey_init(&pub) >= 0 && gnutls_pubkey_import_privkey(pub, pk, 0, 0) >= 0 &&
	    gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &spki) >= 0) {
		cisco_put(b, CISCO_EL_PUBLIC_KEY, spki.data, spki.size);
		ret = 0;
	}
	gnutls_free(spki.data);
	gnutls_pubkey_deinit(pub);
	gnutls_privkey_deinit(pk);
	return ret;
}
