/*
 * proto/cisco.c - Cisco's CAPF protocol, version 3, as the phones in the
 * field speak it (shared/cisco-capf-v3.md): an 8-byte header and a body
 * of tag-length-value elements. Pure: bytes in, a checked view out, and
 * the other way round. Nothing here allocates while it reads.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

ssize_t cisco_msg_length(const uint8_t *buf, size_t len)
{
	if (len < CISCO_HEADER_LEN)
		return 0;
	if (buf[0] != CISCO_MAGIC)
		return CAPF_EPROTO;
	return (ssize_t)(CISCO_HEADER_LEN + get16(buf + 6));
}

int cisco_msg_parse(const uint8_t *buf, size_t len, struct cisco_msg *out)
{
	const uint8_t *p, *end;
	size_t body;

	memset(out, 0, sizeof(*out));
	if (len < CISCO_HEADER_LEN) {
		out->why = "message shorter than its header";
		return CAPF_EBADMSG;
	}
	if (buf[0] != CISCO_MAGIC) {
		out->why = "bad header byte";
		return CAPF_EPROTO;
	}
	out->command = buf[1];
	out->session_id = get32(buf + 2);
	body = get16(buf + 6);
	if (body != len - CISCO_HEADER_LEN) {
		out->why = body > len - CISCO_HEADER_LEN ? "body beyond the message"
							 : "bytes after the body";
		return CAPF_EBADMSG;
	}
	p = buf + CISCO_HEADER_LEN;
	end = p + body;
	while (p < end) {
		uint8_t tag;
		uint16_t elen;

		if (end - p < 3) {
			out->why = "element header cut by the end of the body";
			return CAPF_EBADMSG;
		}
		tag = p[0];
		elen = get16(p + 1);
		p += 3;
		if ((size_t)(end - p) < elen) {
			out->why = "element length beyond the body";
			return CAPF_EBADMSG;
		}
		/* Unknown elements are skipped; a known one seen twice keeps
		 * the first, so that a later copy cannot change what was
		 * checked. */
		if (tag < CISCO_MAX_TAG && out->el[tag].data == NULL) {
			out->el[tag].data = p;
			out->el[tag].len = elen;
			out->present |= (uint64_t)1 << tag;
		}
		p += elen;
	}
	return 0;
}

int cisco_el_u8(const struct cisco_msg *m, unsigned tag, unsigned *out)
{
	if (tag >= CISCO_MAX_TAG || m->el[tag].data == NULL)
		return CAPF_ENOENT;
	if (m->el[tag].len != 1)
		return CAPF_EBADMSG;
	*out = m->el[tag].data[0];
	return 0;
}

int cisco_el_u16(const struct cisco_msg *m, unsigned tag, unsigned *out)
{
	if (tag >= CISCO_MAX_TAG || m->el[tag].data == NULL)
		return CAPF_ENOENT;
	if (m->el[tag].len != 2)
		return CAPF_EBADMSG;
	*out = get16(m->el[tag].data);
	return 0;
}

int cisco_el_string(const struct cisco_msg *m, unsigned tag, char *out, size_t size)
{
	const struct cisco_el *e;

	if (tag >= CISCO_MAX_TAG || m->el[tag].data == NULL)
		return CAPF_ENOENT;
	e = &m->el[tag];
	/* NUL-terminated, with no NUL before the end: a name cut at an
	 * embedded NUL would be another name. */
	if (e->len == 0 || e->data[e->len - 1] != '\0' || memchr(e->data, '\0', e->len - 1) != NULL)
		return CAPF_EBADMSG;
	if (e->len > size)
		return CAPF_ERANGE;
	memcpy(out, e->data, e->len);
	return 0;
}

int cisco_el_certificate(const struct cisco_msg *m, unsigned tag, const uint8_t **der,
			 size_t *len)
{
	const struct cisco_el *e;

	if (tag >= CISCO_MAX_TAG || m->el[tag].data == NULL)
		return CAPF_ENOENT;
	e = &m->el[tag];
	/* 01, u16 (DER length + 2), 00, 01, then the DER. */
	if (e->len <= 5 || e->data[0] != 0x01 || get16(e->data + 1) != e->len - 3)
		return CAPF_EBADMSG;
	*der = e->data + 5;
	*len = e->len - 5;
	return 0;
}

/* ---- writing ---------------------------------------------------------------- */

void cisco_builder_init(struct cisco_builder *b, unsigned command, uint32_t session_id)
{
	memset(b, 0, sizeof(*b));
	b->buf[0] = CISCO_MAGIC;
	b->buf[1] = (uint8_t)command;
	b->buf[2] = (uint8_t)(session_id >> 24);
	b->buf[3] = (uint8_t)(session_id >> 16);
	b->buf[4] = (uint8_t)(session_id >> 8);
	b->buf[5] = (uint8_t)session_id;
	b->len = CISCO_HEADER_LEN;
}

static uint8_t *reserve(struct cisco_builder *b, unsigned tag, size_t len)
{
	uint8_t *p;

	if (b->err || len > 0xffff || sizeof(b->buf) - b->len < 3 + len) {
		b->err = CAPF_ERANGE;
		return NULL;
	}
	p = b->buf + b->len;
	p[0] = (uint8_t)tag;
	p[1] = (uint8_t)(len >> 8);
	p[2] = (uint8_t)len;
	b->len += 3 + len;
	return p + 3;
}

void cisco_put(struct cisco_builder *b, unsigned tag, const void *data, size_t len)
{
	uint8_t *p = reserve(b, tag, len);

	if (p != NULL && len > 0)
		memcpy(p, data, len);
}

void cisco_put_u8(struct cisco_builder *b, unsigned tag, unsigned v)
{
	uint8_t x = (uint8_t)v;

	cisco_put(b, tag, &x, 1);
}

void cisco_put_u16(struct cisco_builder *b, unsigned tag, unsigned v)
{
	uint8_t x[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	cisco_put(b, tag, x, 2);
}

void cisco_put_string(struct cisco_builder *b, unsigned tag, const char *s)
{
	size_t n = strlen(s) + 1;
	uint8_t *p = reserve(b, tag, n);

	if (p != NULL)
		memcpy(p, s, n);
}

void cisco_put_certificate(struct cisco_builder *b, unsigned tag, const uint8_t *der,
			   size_t len)
{
	uint8_t *p = reserve(b, tag, len + 5);

	if (p == NULL)
		return;
	p[0] = 0x01;
	p[1] = (uint8_t)((len + 2) >> 8);
	p[2] = (uint8_t)(len + 2);
	p[3] = 0x00;
	p[4] = 0x01;
	memcpy(p + 5, der, len);
}

int cisco_finish(struct cisco_builder *b, const uint8_t **out, size_t *len)
{
	size_t body = b->len - CISCO_HEADER_LEN;

	if (b->err)
		return b->err;
	b->buf[6] = (uint8_t)(body >> 8);
	b->buf[7] = (uint8_t)body;
	*out = b->buf;
	*len = b->len;
	return 0;
}
