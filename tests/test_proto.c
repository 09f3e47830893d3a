/*
 * Unit tests of proto/: error codes, frame codec, messages, names, hex.
 */
#include "config.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>

#include "proto/proto.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- error codes ---------------------------------------------------------- */

static const int all_codes[] = {
    CAPF_EOK,
    CAPF_ENOMEM,
    CAPF_EINVAL,
    CAPF_EIO,
    CAPF_ENOENT,
    CAPF_EEXIST,
    CAPF_EAGAIN,
    CAPF_ENOSPC,
    CAPF_EBUSY,
    CAPF_EACCES,
    CAPF_ETIMEDOUT,
    CAPF_ENOTSUP,
    CAPF_ECONNRESET,
    CAPF_ERANGE,
    CAPF_EPROTO,
    CAPF_EFRAME_TOO_BIG,
    CAPF_EFRAME_EMPTY,
    CAPF_EBADMSG,
    CAPF_EVERSION,
    CAPF_EORDER,
    CAPF_EUNKNOWN_DEVICE,
    CAPF_ENO_OPERATION,
    CAPF_ENOCERT,
    CAPF_EUNTRUSTED,
    CAPF_EIDENTITY,
    CAPF_EBADCSR,
    CAPF_ECSRSIG,
    CAPF_EBINDING,
    CAPF_EPOLICY,
    CAPF_EEXPIRED,
    CAPF_ERETRY,
    CAPF_ECORRUPT,
    CAPF_ELOCKED,
    CAPF_ELIMIT,
    CAPF_ETIMEOUT,
    CAPF_EAUTH,
    CAPF_ECRYPTO,
    CAPF_ECONFIG,
    CAPF_EREJECTED,
    CAPF_ESHUTDOWN,
    CAPF_EREVOKED,
    CAPF_ESTALE,
    CAPF_ECANCELED,
    CAPF_ESUPERSEDED,
};

static void test_errcode_unknown(void)
{
	CU_ASSERT_STRING_EQUAL(capf_strerror(-999), "unknown error");
	CU_ASSERT_STRING_EQUAL(capf_errname(-999), "CAPF_EUNKNOWN");
	CU_ASSERT_STRING_EQUAL(capf_strerror(-1099), "unknown error");
	CU_ASSERT_STRING_EQUAL(capf_errname(5000), "CAPF_EUNKNOWN");
	CU_ASSERT_STRING_EQUAL(capf_errname(INT_MIN), "CAPF_EUNKNOWN");
	CU_ASSERT_STRING_EQUAL(capf_strerror(INT_MAX), "unknown error");
}

static void test_errcode_all(void)
{
	size_t i, j;

	for (i = 0; i < NELEM(all_codes); i++) {
		const char *name = capf_errname(all_codes[i]);
		const char *text = capf_strerror(all_codes[i]);

		CU_ASSERT_PTR_NOT_NULL_FATAL(name);
		CU_ASSERT_PTR_NOT_NULL_FATAL(text);
		CU_ASSERT(strncmp(name, "CAPF_E", 6) == 0);
		CU_ASSERT(strcmp(name, "CAPF_EUNKNOWN") != 0);
		CU_ASSERT(text[0] != '\0');
		CU_ASSERT(strcmp(text, "unknown error") != 0);
		for (j = 0; j < i; j++) {
			CU_ASSERT(all_codes[i] != all_codes[j]);
			CU_ASSERT(strcmp(name, capf_errname(all_codes[j])) != 0);
		}
	}
	CU_ASSERT_STRING_EQUAL(capf_errname(CAPF_EBINDING), "CAPF_EBINDING");
	CU_ASSERT_STRING_EQUAL(capf_errname(CAPF_ENOMEM), "CAPF_ENOMEM");
	CU_ASSERT_STRING_EQUAL(capf_errname(0), "CAPF_EOK");
}

static void test_errcode_wire_form(void)
{
	size_t i;

	for (i = 0; i < NELEM(all_codes); i++) {
		CU_ASSERT_PTR_EQUAL(capf_errname(-all_codes[i]), capf_errname(all_codes[i]));
		CU_ASSERT_PTR_EQUAL(capf_strerror(-all_codes[i]), capf_strerror(all_codes[i]));
	}
	CU_ASSERT_STRING_EQUAL(capf_errname(1013), "CAPF_EBINDING");
}

/* ---- frame decoder ------------------------------------------------------- */

/* Builds header + payload of n bytes, payload byte i = seed + i. */
static size_t make_frame(uint8_t *out, uint32_t n, uint8_t seed)
{
	uint32_t i;

	frame_write_header(out, n);
	for (i = 0; i < n; i++)
		out[FRAME_HEADER_LEN + i] = (uint8_t)(seed + i);
	return FRAME_HEADER_LEN + n;
}

static void test_frame_init(void)
{
	struct frame_decoder d;

	frame_decoder_init(&d, 0);
	CU_ASSERT_EQUAL(d.max, FRAME_MAX_DEFAULT);
	CU_ASSERT_PTR_NULL(d.buf);
	frame_decoder_deinit(&d);
	frame_decoder_init(&d, FRAME_MAX_LIMIT + 1);
	CU_ASSERT_EQUAL(d.max, FRAME_MAX_LIMIT);
	frame_decoder_deinit(&d);
	frame_decoder_init(&d, 100);
	CU_ASSERT_EQUAL(d.max, 100);
	frame_decoder_deinit(&d);
	/* Deinitialising twice, or a zeroed decoder, is harmless. */
	frame_decoder_deinit(&d);
	memset(&d, 0, sizeof(d));
	frame_decoder_deinit(&d);
	frame_decoder_deinit(NULL);
}

static void test_frame_bad_args(void)
{
	struct frame_decoder d;
	const uint8_t *p = (const uint8_t *)"x";
	size_t plen = 1;
	uint8_t in[8];

	frame_decoder_init(&d, 0);
	make_frame(in, 4, 0);
	CU_ASSERT_EQUAL(frame_decode(&d, in, sizeof(in), NULL, &plen), CAPF_EINVAL);
	CU_ASSERT_EQUAL(frame_decode(&d, in, sizeof(in), &p, NULL), CAPF_EINVAL);
	CU_ASSERT_EQUAL(frame_decode(&d, NULL, 3, &p, &plen), CAPF_EINVAL);
	CU_ASSERT_PTR_NULL(p);
	CU_ASSERT_EQUAL(frame_decode(NULL, in, sizeof(in), &p, &plen), CAPF_EINVAL);
	/* Argument errors do not break the decoder. */
	CU_ASSERT_EQUAL(frame_decode(&d, NULL, 0, &p, &plen), 0);
	CU_ASSERT_EQUAL(frame_decode(&d, in, sizeof(in), &p, &plen), 8);
	CU_ASSERT_PTR_EQUAL(p, in + FRAME_HEADER_LEN);
	frame_decoder_deinit(&d);
}

static void test_frame_zero_length(void)
{
	struct frame_decoder d;
	const uint8_t *p = NULL;
	size_t plen = 0;
	uint8_t in[] = {0, 0, 0, 0, 1, 2};

	frame_decoder_init(&d, 0);
	CU_ASSERT_EQUAL(frame_decode(&d, in, sizeof(in), &p, &plen), CAPF_EFRAME_EMPTY);
	CU_ASSERT_PTR_NULL(p);
	CU_ASSERT_PTR_NULL(d.buf);
	frame_decoder_deinit(&d);
}

static void test_frame_too_big(void)
{
	struct frame_decoder d;
	const uint8_t *p = NULL;
	size_t plen = 0;
	uint8_t in[FRAME_HEADER_LEN + 8];

	/* The length alone is rejected: nothing has been allocated. */
	frame_decoder_init(&d, 100);
	frame_write_header(in, 101);
	CU_ASSERT_EQUAL(frame_decode(&d, in, FRAME_HEADER_LEN, &p, &plen), CAPF_EFRAME_TOO_BIG);
	CU_ASSERT_PTR_NULL(p);
	CU_ASSERT_PTR_NULL(d.buf);
	CU_ASSERT_EQUAL(d.cap, 0);
	frame_decoder_deinit(&d);

	frame_decoder_init(&d, 0);
	frame_write_header(in, UINT32_MAX);
	CU_ASSERT_EQUAL(frame_decode(&d, in, sizeof(in), &p, &plen), CAPF_EFRAME_TOO_BIG);
	CU_ASSERT_PTR_NULL(d.buf);
	CU_ASSERT_EQUAL(d.cap, 0);
	frame_decoder_deinit(&d);

	/* Even the largest possible maximum is a hard limit. */
	frame_decoder_init(&d, FRAME_MAX_LIMIT);
	frame_write_header(in, FRAME_MAX_LIMIT + 1);
	CU_ASSERT_EQUAL(frame_decode(&d, in, sizeof(in), &p, &plen), CAPF_EFRAME_TOO_BIG);
	CU_ASSERT_PTR_NULL(d.buf);
	frame_decoder_deinit(&d);
}

static void test_frame_too_big_after_buffered(void)
{
	struct frame_decoder d;
	const uint8_t *p = NULL;
	size_t plen = 0;
	uint8_t in[FRAME_HEADER_LEN + 50], big[FRAME_HEADER_LEN];
	uint8_t *buf;

	/* A buffered frame leaves a buffer of its size behind. */
	frame_decoder_init(&d, 100);
	make_frame(in, 50, 1);
	CU_ASSERT_EQUAL(frame_decode(&d, in, 10, &p, &plen), 10);
	CU_ASSERT_EQUAL(frame_decode(&d, in + 10, sizeof(in) - 10, &p, &plen),
			(ssize_t)sizeof(in) - 10);
	CU_ASSERT_EQUAL(plen, 50);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d.buf);
	buf = d.buf;
	CU_ASSERT_EQUAL(d.cap, 50);

	/* An oversized length neither grows nor replaces it. */
	frame_write_header(big, 1000);
	CU_ASSERT_EQUAL(frame_decode(&d, big, sizeof(big), &p, &plen), CAPF_EFRAME_TOO_BIG);
	CU_ASSERT_PTR_EQUAL(d.buf, buf);
	CU_ASSERT_EQUAL(d.cap, 50);
	frame_decoder_deinit(&d);
}

static void test_frame_sticky(void)
{
	struct frame_decoder d;
	const uint8_t *p = NULL;
	size_t plen = 0;
	uint8_t zero[FRAME_HEADER_LEN] = {0}, good[FRAME_HEADER_LEN + 3];

	frame_decoder_init(&d, 0);
	make_frame(good, 3, 0);
	CU_ASSERT_EQUAL(frame_decode(&d, zero, sizeof(zero), &p, &plen), CAPF_EFRAME_EMPTY);
	CU_ASSERT_EQUAL(frame_decode(&d, good, sizeof(good), &p, &plen), CAPF_EFRAME_EMPTY);
	CU_ASSERT_PTR_NULL(p);
	CU_ASSERT_EQUAL(plen, 0);
	CU_ASSERT_EQUAL(frame_decode(&d, NULL, 0, &p, &plen), CAPF_EFRAME_EMPTY);
	frame_decoder_deinit(&d);
}

static void test_frame_garbage(void)
{
	struct frame_decoder d;
	const uint8_t *p = NULL;
	size_t plen = 0;
	const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

	/* A client speaking another protocol announces an absurd length. */
	frame_decoder_init(&d, 0);
	CU_ASSERT_EQUAL(frame_decode(&d, (const uint8_t *)http, strlen(http), &p, &plen),
			CAPF_EFRAME_TOO_BIG);
	CU_ASSERT_PTR_NULL(d.buf);
	frame_decoder_deinit(&d);
}

static void test_frame_header_bytewise(void)
{
	struct frame_decoder d;
	const uint8_t *p = NULL;
	size_t plen = 0, i;
	uint8_t in[FRAME_HEADER_LEN + 10];

	frame_decoder_init(&d, 0);
	make_frame(in, 10, 7);
	CU_ASSERT_EQUAL(frame_decoder_pending(&d), 0);
	for (i = 0; i < FRAME_HEADER_LEN; i++) {
		CU_ASSERT_EQUAL(frame_decode(&d, in + i, 1, &p, &plen), 1);
		CU_ASSERT_PTR_NULL(p);
		CU_ASSERT_EQUAL(frame_decoder_pending(&d), i + 1);
	}
	/* The whole payload follows in one piece: no copy is made. */
	CU_ASSERT_EQUAL(frame_decode(&d, in + FRAME_HEADER_LEN, 10, &p, &plen), 10);
	CU_ASSERT_PTR_EQUAL(p, in + FRAME_HEADER_LEN);
	CU_ASSERT_EQUAL(plen, 10);
	CU_ASSERT_PTR_NULL(d.buf);
	CU_ASSERT_EQUAL(frame_decoder_pending(&d), 0);
	frame_decoder_deinit(&d);
}

static void test_frame_partial_payload(void)
{
	struct frame_decoder d;
	const uint8_t *p = NULL;
	size_t plen = 0;
	uint8_t in[FRAME_HEADER_LEN + 20];

	frame_decoder_init(&d, 0);
	make_frame(in, 20, 3);
	CU_ASSERT_EQUAL(frame_decode(&d, in, 14, &p, &plen), 14);
	CU_ASSERT_PTR_NULL(p);
	CU_ASSERT_EQUAL(frame_decoder_pending(&d), 14);
	CU_ASSERT_EQUAL(frame_decode(&d, in + 14, 3, &p, &plen), 3);
	CU_ASSERT_PTR_NULL(p);
	CU_ASSERT_EQUAL(frame_decoder_pending(&d), 17);
	CU_ASSERT_EQUAL(frame_decode(&d, in + 17, sizeof(in) - 17, &p, &plen),
			(ssize_t)sizeof(in) - 17);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_PTR_EQUAL(p, d.buf);
	CU_ASSERT_EQUAL(plen, 20);
	CU_ASSERT(memcmp(p, in + FRAME_HEADER_LEN, 20) == 0);
	CU_ASSERT_EQUAL(frame_decoder_pending(&d), 0);
	frame_decoder_deinit(&d);
	CU_ASSERT_PTR_NULL(d.buf);
}

static void test_frame_buffer_reuse(void)
{
	struct frame_decoder d;
	const uint8_t *p = NULL;
	size_t plen = 0;
	uint8_t in[FRAME_HEADER_LEN + 100];

	frame_decoder_init(&d, 0);
	make_frame(in, 100, 0);
	CU_ASSERT_EQUAL(frame_decode(&d, in, 50, &p, &plen), 50);
	CU_ASSERT_EQUAL(frame_decode(&d, in + 50, 54, &p, &plen), 54);
	CU_ASSERT_EQUAL(plen, 100);
	CU_ASSERT_EQUAL(d.cap, 100);
	/* A smaller frame is collected in the same buffer. */
	make_frame(in, 30, 9);
	CU_ASSERT_EQUAL(frame_decode(&d, in, 10, &p, &plen), 10);
	CU_ASSERT_EQUAL(frame_decode(&d, in + 10, 24, &p, &plen), 24);
	CU_ASSERT_EQUAL(plen, 30);
	CU_ASSERT_EQUAL(d.cap, 100);
	CU_ASSERT(memcmp(p, in + FRAME_HEADER_LEN, 30) == 0);
	frame_decoder_deinit(&d);
}

static void test_frame_big_buffer_released(void)
{
	struct frame_decoder d;
	const uint8_t *p = NULL;
	size_t plen = 0, n = 100 * 1024;
	uint8_t *in = malloc(FRAME_HEADER_LEN + n);
	uint8_t small[FRAME_HEADER_LEN + 1];

	CU_ASSERT_PTR_NOT_NULL_FATAL(in);
	frame_decoder_init(&d, FRAME_MAX_LIMIT);
	make_frame(in, (uint32_t)n, 0);
	CU_ASSERT_EQUAL(frame_decode(&d, in, 1000, &p, &plen), 1000);
	CU_ASSERT_EQUAL(frame_decode(&d, in + 1000, FRAME_HEADER_LEN + n - 1000, &p, &plen),
			(ssize_t)(FRAME_HEADER_LEN + n - 1000));
	CU_ASSERT_EQUAL(plen, n);
	CU_ASSERT_EQUAL(d.cap, n);
	/* The next call drops the big buffer once its frame is done. */
	make_frame(small, 1, 0);
	CU_ASSERT_EQUAL(frame_decode(&d, small, 2, &p, &plen), 2);
	CU_ASSERT_PTR_NULL(d.buf);
	CU_ASSERT_EQUAL(d.cap, 0);
	CU_ASSERT_EQUAL(frame_decode(&d, small + 2, 3, &p, &plen), 3);
	CU_ASSERT_EQUAL(plen, 1);
	CU_ASSERT(d.cap <= 64 * 1024);
	frame_decoder_deinit(&d);
	free(in);
}

static void test_frame_several_in_one_buffer(void)
{
	struct frame_decoder d;
	const uint8_t *p = NULL;
	size_t plen = 0, len = 0, off = 0;
	uint8_t in[64];
	static const uint32_t sizes[] = {5, 1, 17};
	size_t i;

	for (i = 0; i < NELEM(sizes); i++)
		len += make_frame(in + len, sizes[i], (uint8_t)(i * 50));
	frame_decoder_init(&d, 0);
	for (i = 0; i < NELEM(sizes); i++) {
		ssize_t r = frame_decode(&d, in + off, len - off, &p, &plen);

		/* One frame per call, straight from the input. */
		CU_ASSERT_EQUAL(r, (ssize_t)(FRAME_HEADER_LEN + sizes[i]));
		CU_ASSERT_PTR_EQUAL(p, in + off + FRAME_HEADER_LEN);
		CU_ASSERT_EQUAL(plen, sizes[i]);
		if (r <= 0)
			break;
		off += (size_t)r;
	}
	CU_ASSERT_EQUAL(off, len);
	CU_ASSERT_PTR_NULL(d.buf);
	frame_decoder_deinit(&d);
}

/*
 * Feeds in[0..len) and appends every payload to out; returns the number of
 * frames, or -1 on an error or a call that made no progress.
 */
static int feed_all(struct frame_decoder *d, const uint8_t *in, size_t len, uint8_t *out,
		    size_t *out_len)
{
	const uint8_t *p;
	size_t plen, off = 0;
	int frames = 0;

	while (off < len) {
		ssize_t r = frame_decode(d, in + off, len - off, &p, &plen);

		if (r <= 0)
			return -1;
		off += (size_t)r;
		if (p) {
			memcpy(out + *out_len, p, plen);
			*out_len += plen;
			frames++;
		}
	}
	return frames;
}

static void test_frame_split_everywhere(void)
{
	static const uint32_t sizes[] = {3, 9, 1};
	uint8_t in[64], want[64], got[64];
	size_t len = 0, want_len = 0, got_len, i, j;
	struct frame_decoder d;
	int frames, bad = 0;

	for (i = 0; i < NELEM(sizes); i++) {
		size_t n = make_frame(in + len, sizes[i], (uint8_t)(i * 40 + 1));

		memcpy(want + want_len, in + len + FRAME_HEADER_LEN, sizes[i]);
		want_len += sizes[i];
		len += n;
	}
	/* Every way of cutting the stream into three pieces. */
	for (i = 0; i <= len; i++) {
		for (j = i; j <= len; j++) {
			frame_decoder_init(&d, 0);
			got_len = 0;
			frames = feed_all(&d, in, i, got, &got_len);
			if (frames >= 0) {
				int f = feed_all(&d, in + i, j - i, got, &got_len);

				frames = f < 0 ? -1 : frames + f;
			}
			if (frames >= 0) {
				int f = feed_all(&d, in + j, len - j, got, &got_len);

				frames = f < 0 ? -1 : frames + f;
			}
			if (frames != (int)NELEM(sizes) || got_len != want_len ||
			    memcmp(got, want, want_len) != 0 || frame_decoder_pending(&d) != 0)
				bad++;
			frame_decoder_deinit(&d);
		}
	}
	CU_ASSERT_EQUAL(bad, 0);
}

static void test_frame_max_size(void)
{
	struct frame_decoder d;
	const uint8_t *p = NULL;
	size_t plen = 0, n = FRAME_MAX_DEFAULT;
	uint8_t *in = malloc(FRAME_HEADER_LEN + n + 1);
	ssize_t r;

	CU_ASSERT_PTR_NOT_NULL_FATAL(in);
	frame_decoder_init(&d, 0);
	make_frame(in, (uint32_t)n, 5);
	/* In two pieces, so that the payload is collected in a buffer. */
	r = frame_decode(&d, in, 100, &p, &plen);
	CU_ASSERT_EQUAL(r, 100);
	r = frame_decode(&d, in + 100, FRAME_HEADER_LEN + n - 100, &p, &plen);
	CU_ASSERT_EQUAL(r, (ssize_t)(FRAME_HEADER_LEN + n - 100));
	CU_ASSERT_EQUAL(plen, n);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT(memcmp(p, in + FRAME_HEADER_LEN, n) == 0);

	/* One byte more is refused. */
	make_frame(in, (uint32_t)n + 1, 5);
	r = frame_decode(&d, in, FRAME_HEADER_LEN + n + 1, &p, &plen);
	CU_ASSERT_EQUAL(r, CAPF_EFRAME_TOO_BIG);
	CU_ASSERT_PTR_NULL(p);
	frame_decoder_deinit(&d);
	free(in);
}

static void test_frame_write_header(void)
{
	uint8_t h[FRAME_HEADER_LEN];

	frame_write_header(h, 0x01020304u);
	CU_ASSERT(memcmp(h, "\x01\x02\x03\x04", 4) == 0);
	frame_write_header(h, UINT32_MAX);
	CU_ASSERT(memcmp(h, "\xff\xff\xff\xff", 4) == 0);
}

/* ---- messages ----------------------------------------------------------- */

/*
 * Packs m, checks the frame header and unpacks the payload again. Returns
 * the unpacked message, or NULL if packing or unpacking (which validates)
 * failed.
 */
static Capf__PhoneMessage *phone_round_trip(const Capf__PhoneMessage *m)
{
	Capf__PhoneMessage *out = NULL;
	uint8_t *f = NULL;
	size_t flen = 0;
	uint32_t n;

	if (phone_msg_pack(m, &f, &flen) != 0)
		return NULL;
	CU_ASSERT_FATAL(flen > FRAME_HEADER_LEN);
	n = (uint32_t)f[0] << 24 | (uint32_t)f[1] << 16 | (uint32_t)f[2] << 8 | f[3];
	CU_ASSERT_EQUAL(n, flen - FRAME_HEADER_LEN);
	if (phone_msg_unpack(f + FRAME_HEADER_LEN, flen - FRAME_HEADER_LEN, &out) != 0)
		CU_ASSERT_PTR_NULL(out);
	free(f);
	return out;
}

static void test_msg_pack_invalid(void)
{
	Capf__PhoneMessage m = CAPF__PHONE_MESSAGE__INIT;
	Capf__CsrSubmit c = CAPF__CSR_SUBMIT__INIT;
	uint8_t *f = (uint8_t *)"x";
	size_t flen = 1;

	CU_ASSERT_EQUAL(phone_msg_pack(NULL, &f, &flen), CAPF_EINVAL);
	CU_ASSERT_EQUAL(phone_msg_pack(&m, NULL, &flen), CAPF_EINVAL);
	/* No body packs to zero bytes, which cannot be framed. */
	CU_ASSERT_EQUAL(phone_msg_pack(&m, &f, &flen), CAPF_EINVAL);
	CU_ASSERT_PTR_NULL(f);
	CU_ASSERT_EQUAL(flen, 0);

	/* Over the hard limit: refused before anything is packed. */
	c.csr.len = FRAME_MAX_LIMIT + 1;
	c.csr.data = calloc(1, c.csr.len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c.csr.data);
	m.body_case = CAPF__PHONE_MESSAGE__BODY_CSR;
	m.csr = &c;
	CU_ASSERT_EQUAL(phone_msg_pack(&m, &f, &flen), CAPF_EFRAME_TOO_BIG);
	CU_ASSERT_PTR_NULL(f);
	free(c.csr.data);
}

static void test_msg_unpack_invalid(void)
{
	Capf__PhoneMessage *m = (Capf__PhoneMessage *)1;
	static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x00};
	/* A hello whose device_name claims 15 bytes but has 3. */
	static const uint8_t truncated[] = {0x0a, 0x13, 0x08, 0x01, 0x12, 0x0f, 'S', 'E', 'P'};

	CU_ASSERT_EQUAL(phone_msg_unpack(garbage, sizeof(garbage), NULL), CAPF_EINVAL);
	CU_ASSERT_EQUAL(phone_msg_unpack(garbage, sizeof(garbage), &m), CAPF_EBADMSG);
	CU_ASSERT_PTR_NULL(m);
	m = (Capf__PhoneMessage *)1;
	CU_ASSERT_EQUAL(phone_msg_unpack(truncated, sizeof(truncated), &m), CAPF_EBADMSG);
	CU_ASSERT_PTR_NULL(m);
	/* An empty payload parses, but has no body. */
	CU_ASSERT_EQUAL(phone_msg_unpack(garbage, 0, &m), CAPF_EBADMSG);
	CU_ASSERT_EQUAL(phone_msg_unpack(NULL, 0, &m), CAPF_EBADMSG);
	CU_ASSERT_EQUAL(phone_msg_unpack(NULL, 5, &m), CAPF_EINVAL);
	CU_ASSERT_PTR_NULL(m);
}

static void test_msg_unknown_fields(void)
{
	Capf__PhoneMessage *m = NULL;
	Capf__AdminRequest *r = NULL;
	/* Field number 0 in an over-long encoding, then an empty End. */
	static const uint8_t phone_tag0[] = {0x80, 0x00, 0x32, 0x32, 0x80, 0x00};
	/* Field number 2^32 / 8 - 1: beyond the protobuf maximum. */
	static const uint8_t phone_tag_big[] = {0xf8, 0xff, 0xff, 0xff, 0xff, 0x05, 0x32, 0x00};
	/* Field 9 (varint 5), unknown but harmless, then an empty End. */
	static const uint8_t phone_tag9[] = {0x78, 0x05, 0x32, 0x00}; /* field 15: unknown */
	/* DeviceGet "abc" carrying field number 0, one level down. */
	static const uint8_t admin_tag0[] = {0x08, 0x01, 0x1a, 0x08, 0x0a, 0x03,
					     'a',  'b',	 'c',  0x80, 0x00, 0x05};
	static const uint8_t admin_tag9[] = {0x08, 0x01, 0x1a, 0x07, 0x0a, 0x03,
					     'a',  'b',	 'c',  0x48, 0x05};

	/* Fields that could not be packed again are refused. */
	CU_ASSERT_EQUAL(phone_msg_unpack(phone_tag0, sizeof(phone_tag0), &m), CAPF_EBADMSG);
	CU_ASSERT_PTR_NULL(m);
	CU_ASSERT_EQUAL(phone_msg_unpack(phone_tag_big, sizeof(phone_tag_big), &m), CAPF_EBADMSG);
	CU_ASSERT_PTR_NULL(m);
	CU_ASSERT_EQUAL(admin_req_unpack(admin_tag0, sizeof(admin_tag0), &r), CAPF_EBADMSG);
	CU_ASSERT_PTR_NULL(r);

	/* Other unknown fields are tolerated, as proto3 wants. */
	CU_ASSERT_EQUAL_FATAL(phone_msg_unpack(phone_tag9, sizeof(phone_tag9), &m), 0);
	CU_ASSERT_EQUAL(m->body_case, CAPF__PHONE_MESSAGE__BODY_END);
	capf__phone_message__free_unpacked(m, NULL);
	CU_ASSERT_EQUAL_FATAL(admin_req_unpack(admin_tag9, sizeof(admin_tag9), &r), 0);
	CU_ASSERT_STRING_EQUAL(r->device_get->name, "abc");
	capf__admin_request__free_unpacked(r, NULL);
}

static void test_msg_validate_body(void)
{
	Capf__PhoneMessage m = CAPF__PHONE_MESSAGE__INIT;

	CU_ASSERT_EQUAL(phone_msg_validate(NULL), CAPF_EBADMSG);
	CU_ASSERT_EQUAL(phone_msg_validate(&m), CAPF_EBADMSG);
	/* A body case without its body. */
	m.body_case = CAPF__PHONE_MESSAGE__BODY_HELLO;
	CU_ASSERT_EQUAL(phone_msg_validate(&m), CAPF_EBADMSG);
	m.body_case = CAPF__PHONE_MESSAGE__BODY_STORE_ACK;
	CU_ASSERT_EQUAL(phone_msg_validate(&m), CAPF_EBADMSG);
	m.body_case = 99;
	CU_ASSERT_EQUAL(phone_msg_validate(&m), CAPF_EBADMSG);
}

static void test_msg_hello(void)
{
	Capf__PhoneMessage m = CAPF__PHONE_MESSAGE__INIT, *u;
	Capf__Hello h = CAPF__HELLO__INIT;
	char name[DEVICE_NAME_MAX + 2];

	m.body_case = CAPF__PHONE_MESSAGE__BODY_HELLO;
	m.hello = &h;
	h.device_name = "SEP001122334455";
	CU_ASSERT_EQUAL(phone_msg_validate(&m), CAPF_EBADMSG); /* version 0 */
	h.version = CAPF_PROTOCOL_VERSION;
	h.device_name = "";
	CU_ASSERT_EQUAL(phone_msg_validate(&m), CAPF_EBADMSG);
	h.device_name = NULL;
	CU_ASSERT_EQUAL(phone_msg_validate(&m), CAPF_EBADMSG);
	h.device_name = "SEP 0011";
	CU_ASSERT_EQUAL(phone_msg_validate(&m), CAPF_EBADMSG);
	memset(name, 'A', DEVICE_NAME_MAX + 1);
	name[DEVICE_NAME_MAX + 1] = '\0';
	h.device_name = name;
	CU_ASSERT_EQUAL(phone_msg_validate(&m), CAPF_EBADMSG);
	/* The same rules apply on unpack. */
	CU_ASSERT_PTR_NULL(phone_round_trip(&m));

	name[DEVICE_NAME_MAX] = '\0';
	CU_ASSERT_EQUAL(phone_msg_validate(&m), 0);
	h.device_name = "SEP001122334455";
	CU_ASSERT_EQUAL(phone_msg_validate(&m), 0);
	CU_ASSERT_STRING_EQUAL(phone_msg_name(&m), "hello");
	u = phone_round_trip(&m);
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	CU_ASSERT_EQUAL(u->body_case, CAPF__PHONE_MESSAGE__BODY_HELLO);
	CU_ASSERT_EQUAL(u->hello->version, CAPF_PROTOCOL_VERSION);
	CU_ASSERT_STRING_EQUAL(u->hello->device_name, "SEP001122334455");
	capf__phone_message__free_unpacked(u, NULL);
}

static void test_msg_op_request(void)
{
	Capf__PhoneMessage m = CAPF__PHONE_MESSAGE__INIT, *u;
	Capf__OperationRequest r = CAPF__OPERATION_REQUEST__INIT;

	m.body_case = CAPF__PHONE_MESSAGE__BODY_OP_REQUEST;
	m.op_request = &r;
	r.op = CAPF__OPERATION__OP_INSTALL;
	r.key_type = CAPF__KEY_TYPE__KEY_EC_P384;
	CU_ASSERT_EQUAL(phone_msg_validate(&m), CAPF_EBADMSG); /* version 0 */
	r.version = 1;
	r.op = 4;
	CU_ASSERT_EQUAL(phone_msg_validate(&m), CAPF_EBADMSG);
	r.op = -1;
	CU_ASSERT_EQUAL(phone_msg_validate(&m), CAPF_EBADMSG);
	CU_ASSERT_PTR_NULL(phone_round_trip(&m));
	r.op = CAPF__OPERATION__OP_FETCH;
	r.key_type = 7;
	CU_ASSERT_EQUAL(phone_msg_validate(&m), CAPF_EBADMSG);
	CU_ASSERT_PTR_NULL(phone_round_trip(&m));

	r.key_type = CAPF__KEY_TYPE__KEY_RSA_4096;
	CU_ASSERT_STRING_EQUAL(phone_msg_name(&m), "op_request");
	u = phone_round_trip(&m);
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	CU_ASSERT_EQUAL(u->body_case, CAPF__PHONE_MESSAGE__BODY_OP_REQUEST);
	CU_ASSERT_EQUAL(u->op_request->version, 1);
	CU_ASSERT_EQUAL(u->op_request->op, CAPF__OPERATION__OP_FETCH);
	CU_ASSERT_EQUAL(u->op_request->key_type, CAPF__KEY_TYPE__KEY_RSA_4096);
	capf__phone_message__free_unpacked(u, NULL);
}

static void test_msg_csr(void)
{
	Capf__PhoneMessage m = CAPF__PHONE_MESSAGE__INIT, *u;
	Capf__CsrSubmit c = CAPF__CSR_SUBMIT__INIT;
	uint8_t *der = calloc(1, 16 * 1024 + 1);

	CU_ASSERT_PTR_NOT_NULL_FATAL(der);
	m.body_case = CAPF__PHONE_MESSAGE__BODY_CSR;
	m.csr = &c;
	CU_ASSERT_EQUAL(phone_msg_validate(&m), CAPF_EBADMSG); /* empty */
	c.csr.data = der;
	c.csr.len = 16 * 1024 + 1;
	CU_ASSERT_EQUAL(phone_msg_validate(&m), CAPF_EBADMSG);
	CU_ASSERT_PTR_NULL(phone_round_trip(&m));

	c.csr.len = 16 * 1024;
	der[0] = 0x30;
	der[c.csr.len - 1] = 0x99;
	CU_ASSERT_EQUAL(phone_msg_validate(&m), 0);
	CU_ASSERT_STRING_EQUAL(phone_msg_name(&m), "csr");
	u = phone_round_trip(&m);
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	CU_ASSERT_EQUAL(u->body_case, CAPF__PHONE_MESSAGE__BODY_CSR);
	CU_ASSERT_EQUAL(u->csr->csr.len, c.csr.len);
	CU_ASSERT(memcmp(u->csr->csr.data, der, c.csr.len) == 0);
	capf__phone_message__free_unpacked(u, NULL);
	free(der);
}

static void test_msg_certificate(void)
{
	Capf__PhoneMessage m = CAPF__PHONE_MESSAGE__INIT, *u;
	Capf__CertificateDelivery c = CAPF__CERTIFICATE_DELIVERY__INIT;
	ProtobufCBinaryData chain[9];
	uint8_t der[32];
	size_t i;

	for (i = 0; i < sizeof(der); i++)
		der[i] = (uint8_t)i;
	for (i = 0; i < NELEM(chain); i++) {
		chain[i].data = der + i;
		chain[i].len = 10 + i;
	}
	m.body_case = CAPF__PHONE_MESSAGE__BODY_CERTIFICATE;
	m.certificate = &c;
	c.chain = chain;
	c.n_chain = 1;
	CU_ASSERT_EQUAL(phone_msg_validate(&m), CAPF_EBADMSG); /* no cert */
	c.certificate.data = der;
	c.certificate.len = sizeof(der);
	c.n_chain = 9;
	CU_ASSERT_EQUAL(phone_msg_validate(&m), CAPF_EBADMSG);
	CU_ASSERT_PTR_NULL(phone_round_trip(&m));
	c.n_chain = 8;
	chain[3].len = 0;
	CU_ASSERT_EQUAL(phone_msg_validate(&m), CAPF_EBADMSG);
	CU_ASSERT_PTR_NULL(phone_round_trip(&m));
	chain[3].len = 13;

	CU_ASSERT_EQUAL(phone_msg_validate(&m), 0);
	CU_ASSERT_STRING_EQUAL(phone_msg_name(&m), "certificate");
	u = phone_round_trip(&m);
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	CU_ASSERT_EQUAL(u->body_case, CAPF__PHONE_MESSAGE__BODY_CERTIFICATE);
	CU_ASSERT_EQUAL(u->certificate->certificate.len, sizeof(der));
	CU_ASSERT(memcmp(u->certificate->certificate.data, der, sizeof(der)) == 0);
	CU_ASSERT_EQUAL_FATAL(u->certificate->n_chain, 8);
	for (i = 0; i < 8; i++) {
		CU_ASSERT_EQUAL(u->certificate->chain[i].len, 10 + i);
		CU_ASSERT(memcmp(u->certificate->chain[i].data, der + i, 10 + i) == 0);
	}
	capf__phone_message__free_unpacked(u, NULL);

	/* No chain at all is fine. */
	c.n_chain = 0;
	c.chain = NULL;
	CU_ASSERT_EQUAL(phone_msg_validate(&m), 0);
}

static void test_msg_store_ack(void)
{
	Capf__PhoneMessage m = CAPF__PHONE_MESSAGE__INIT, *u;
	Capf__StoreAck a = CAPF__STORE_ACK__INIT;

	m.body_case = CAPF__PHONE_MESSAGE__BODY_STORE_ACK;
	m.store_ack = &a;
	CU_ASSERT_STRING_EQUAL(phone_msg_name(&m), "store_ack");
	/* Code 0 packs to an empty body, which is still a body. */
	u = phone_round_trip(&m);
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	CU_ASSERT_EQUAL(u->body_case, CAPF__PHONE_MESSAGE__BODY_STORE_ACK);
	CU_ASSERT_EQUAL(u->store_ack->code, 0);
	capf__phone_message__free_unpacked(u, NULL);
	a.code = 123456;
	u = phone_round_trip(&m);
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	CU_ASSERT_EQUAL(u->store_ack->code, 123456);
	capf__phone_message__free_unpacked(u, NULL);
}

static void test_msg_end_error(void)
{
	Capf__PhoneMessage m = CAPF__PHONE_MESSAGE__INIT, *u;
	Capf__End e = CAPF__END__INIT;
	Capf__Error er = CAPF__ERROR__INIT;
	char text[1026];

	memset(text, 't', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0'; /* 1025 characters */

	m.body_case = CAPF__PHONE_MESSAGE__BODY_END;
	m.end = &e;
	e.text = text;
	CU_ASSERT_EQUAL(phone_msg_validate(&m), CAPF_EBADMSG);
	CU_ASSERT_PTR_NULL(phone_round_trip(&m));
	m.body_case = CAPF__PHONE_MESSAGE__BODY_ERROR;
	m.error = &er;
	er.text = text;
	CU_ASSERT_EQUAL(phone_msg_validate(&m), CAPF_EBADMSG);
	CU_ASSERT_PTR_NULL(phone_round_trip(&m));

	text[1024] = '\0';
	CU_ASSERT_EQUAL(phone_msg_validate(&m), 0);
	er.text = NULL;
	CU_ASSERT_EQUAL(phone_msg_validate(&m), 0);
	er.code = (uint32_t)-CAPF_EBINDING;
	er.text = "not bound";
	CU_ASSERT_STRING_EQUAL(phone_msg_name(&m), "error");
	u = phone_round_trip(&m);
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	CU_ASSERT_EQUAL(u->body_case, CAPF__PHONE_MESSAGE__BODY_ERROR);
	CU_ASSERT_EQUAL(u->error->code, 1013);
	CU_ASSERT_STRING_EQUAL(u->error->text, "not bound");
	capf__phone_message__free_unpacked(u, NULL);

	m.body_case = CAPF__PHONE_MESSAGE__BODY_END;
	m.end = &e; /* the bodies share a union */
	e.text = text;
	e.code = 0;
	CU_ASSERT_STRING_EQUAL(phone_msg_name(&m), "end");
	u = phone_round_trip(&m);
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	CU_ASSERT_EQUAL(u->body_case, CAPF__PHONE_MESSAGE__BODY_END);
	CU_ASSERT_EQUAL(strlen(u->end->text), 1024);
	capf__phone_message__free_unpacked(u, NULL);
}

static void test_msg_name(void)
{
	Capf__PhoneMessage m = CAPF__PHONE_MESSAGE__INIT;

	CU_ASSERT_STRING_EQUAL(phone_msg_name(NULL), "?");
	CU_ASSERT_STRING_EQUAL(phone_msg_name(&m), "none");
	m.body_case = 42;
	CU_ASSERT_STRING_EQUAL(phone_msg_name(&m), "?");
}

/* Packs req and unpacks it again; returns the unpack result. */
static int admin_check(const Capf__AdminRequest *req, Capf__AdminRequest **out)
{
	uint8_t *f = NULL;
	size_t flen = 0;
	int ret;

	*out = NULL;
	ret = admin_req_pack(req, &f, &flen);
	if (ret < 0)
		return ret;
	ret = admin_req_unpack(f + FRAME_HEADER_LEN, flen - FRAME_HEADER_LEN, out);
	free(f);
	return ret;
}

static void test_admin_req_invalid(void)
{
	Capf__AdminRequest r = CAPF__ADMIN_REQUEST__INIT, *u = NULL;
	Capf__DevicePut put = CAPF__DEVICE_PUT__INIT;
	Capf__DeviceGet get = CAPF__DEVICE_GET__INIT;
	Capf__DeviceList list = CAPF__DEVICE_LIST__INIT;
	Capf__Device d = CAPF__DEVICE__INIT;
	static const uint8_t garbage[] = {0x12, 0x7f, 0x00};
	uint8_t *f = NULL;
	size_t flen = 0;

	CU_ASSERT_EQUAL(admin_req_pack(NULL, &f, &flen), CAPF_EINVAL);
	CU_ASSERT_EQUAL(admin_req_pack(&r, &f, &flen), CAPF_EINVAL);
	CU_ASSERT_EQUAL(admin_req_unpack(garbage, sizeof(garbage), &u), CAPF_EBADMSG);
	CU_ASSERT_PTR_NULL(u);

	/* Version 0. */
	r.body_case = CAPF__ADMIN_REQUEST__BODY_DEVICE_LIST;
	r.device_list = &list;
	CU_ASSERT_EQUAL(admin_check(&r, &u), CAPF_EBADMSG);
	/* No body. */
	r.version = 1;
	r.body_case = CAPF__ADMIN_REQUEST__BODY__NOT_SET;
	CU_ASSERT_EQUAL(admin_check(&r, &u), CAPF_EBADMSG);
	/* DevicePut without a device. */
	r.body_case = CAPF__ADMIN_REQUEST__BODY_DEVICE_PUT;
	r.device_put = &put;
	put.create = 1;
	CU_ASSERT_EQUAL(admin_check(&r, &u), CAPF_EBADMSG);
	put.device = &d;
	d.name = "";
	CU_ASSERT_EQUAL(admin_check(&r, &u), CAPF_EBADMSG);
	d.name = "SEP/../x";
	CU_ASSERT_EQUAL(admin_check(&r, &u), CAPF_EBADMSG);
	d.name = "SEP001122334455";
	d.op = 9;
	CU_ASSERT_EQUAL(admin_check(&r, &u), CAPF_EBADMSG);
	d.op = CAPF__OPERATION__OP_INSTALL;
	d.auth = 6;
	CU_ASSERT_EQUAL(admin_check(&r, &u), CAPF_EBADMSG);
	d.auth = CAPF__AUTH_MODE__AUTH_STRING;
	d.key_type = -3;
	CU_ASSERT_EQUAL(admin_check(&r, &u), CAPF_EBADMSG);
	d.key_type = CAPF__KEY_TYPE__KEY_EC_P256;
	d.status = 5;
	CU_ASSERT_EQUAL(admin_check(&r, &u), CAPF_EBADMSG);
	d.status = CAPF__OP_STATUS__STATUS_PENDING;
	CU_ASSERT_EQUAL(admin_check(&r, &u), 0);
	if (u)
		capf__admin_request__free_unpacked(u, NULL);

	/* DeviceGet with a bad name. */
	r.body_case = CAPF__ADMIN_REQUEST__BODY_DEVICE_GET;
	r.device_get = &get;
	CU_ASSERT_EQUAL(admin_check(&r, &u), CAPF_EBADMSG);
	get.name = "a b";
	CU_ASSERT_EQUAL(admin_check(&r, &u), CAPF_EBADMSG);
	CU_ASSERT_PTR_NULL(u);
}

static void test_admin_req_round_trip(void)
{
	Capf__AdminRequest r = CAPF__ADMIN_REQUEST__INIT, *u = NULL;
	Capf__DevicePut put = CAPF__DEVICE_PUT__INIT;
	Capf__DeviceGet get = CAPF__DEVICE_GET__INIT;
	Capf__DeviceList list = CAPF__DEVICE_LIST__INIT;
	Capf__StatusRequest st = CAPF__STATUS_REQUEST__INIT;
	Capf__Device d = CAPF__DEVICE__INIT;
	uint8_t serial[] = {0x7f, 0x00, 0x01};

	r.version = CAPF_PROTOCOL_VERSION;
	r.body_case = CAPF__ADMIN_REQUEST__BODY_DEVICE_PUT;
	r.device_put = &put;
	put.device = &d;
	put.create = 1;
	d.name = "SEP0A0B0C0D0E0F";
	d.op = CAPF__OPERATION__OP_DELETE;
	d.auth = CAPF__AUTH_MODE__AUTH_MIC_OR_LSC;
	d.key_type = CAPF__KEY_TYPE__KEY_RSA_3072;
	d.deadline = 1900000000;
	d.status = CAPF__OP_STATUS__STATUS_FAILED;
	d.last_error = 1014;
	d.lsc_serial.data = serial;
	d.lsc_serial.len = sizeof(serial);
	d.created = -1;
	d.updated = INT64_MAX;
	CU_ASSERT_EQUAL_FATAL(admin_check(&r, &u), 0);
	CU_ASSERT_EQUAL(u->version, CAPF_PROTOCOL_VERSION);
	CU_ASSERT_EQUAL_FATAL(u->body_case, CAPF__ADMIN_REQUEST__BODY_DEVICE_PUT);
	CU_ASSERT_EQUAL(u->device_put->create, 1);
	CU_ASSERT_STRING_EQUAL(u->device_put->device->name, d.name);
	CU_ASSERT_EQUAL(u->device_put->device->op, d.op);
	CU_ASSERT_EQUAL(u->device_put->device->auth, d.auth);
	CU_ASSERT_EQUAL(u->device_put->device->key_type, d.key_type);
	CU_ASSERT_EQUAL(u->device_put->device->deadline, d.deadline);
	CU_ASSERT_EQUAL(u->device_put->device->status, d.status);
	CU_ASSERT_EQUAL(u->device_put->device->last_error, 1014);
	CU_ASSERT_EQUAL(u->device_put->device->lsc_serial.len, 3);
	CU_ASSERT(memcmp(u->device_put->device->lsc_serial.data, serial, 3) == 0);
	CU_ASSERT_EQUAL(u->device_put->device->created, -1);
	CU_ASSERT_EQUAL(u->device_put->device->updated, INT64_MAX);
	capf__admin_request__free_unpacked(u, NULL);

	r.body_case = CAPF__ADMIN_REQUEST__BODY_DEVICE_GET;
	r.device_get = &get;
	get.name = "SEP0A0B0C0D0E0F";
	CU_ASSERT_EQUAL_FATAL(admin_check(&r, &u), 0);
	CU_ASSERT_EQUAL_FATAL(u->body_case, CAPF__ADMIN_REQUEST__BODY_DEVICE_GET);
	CU_ASSERT_STRING_EQUAL(u->device_get->name, "SEP0A0B0C0D0E0F");
	capf__admin_request__free_unpacked(u, NULL);

	r.body_case = CAPF__ADMIN_REQUEST__BODY_DEVICE_LIST;
	r.device_list = &list;
	CU_ASSERT_EQUAL_FATAL(admin_check(&r, &u), 0);
	CU_ASSERT_EQUAL(u->body_case, CAPF__ADMIN_REQUEST__BODY_DEVICE_LIST);
	capf__admin_request__free_unpacked(u, NULL);

	r.body_case = CAPF__ADMIN_REQUEST__BODY_STATUS;
	r.status = &st;
	CU_ASSERT_EQUAL_FATAL(admin_check(&r, &u), 0);
	CU_ASSERT_EQUAL(u->body_case, CAPF__ADMIN_REQUEST__BODY_STATUS);
	capf__admin_request__free_unpacked(u, NULL);
}

static void test_admin_resp(void)
{
	Capf__AdminResponse r = CAPF__ADMIN_RESPONSE__INIT, *u = NULL;
	Capf__Device d1 = CAPF__DEVICE__INIT, d2 = CAPF__DEVICE__INIT;
	Capf__Device *devs[] = {&d1, &d2};
	Capf__Certificate c = CAPF__CERTIFICATE__INIT;
	Capf__Certificate *certs[] = {&c};
	Capf__ServerStatus st = CAPF__SERVER_STATUS__INIT;
	static const uint8_t garbage[] = {0x1a, 0x05, 0x01};
	uint8_t der[] = {0x30, 0x03, 0x02, 0x01, 0x01};
	uint8_t *f = NULL;
	size_t flen = 0;

	CU_ASSERT_EQUAL(admin_resp_pack(NULL, &f, &flen), CAPF_EINVAL);
	CU_ASSERT_EQUAL(admin_resp_unpack(garbage, sizeof(garbage), &u), CAPF_EBADMSG);
	CU_ASSERT_PTR_NULL(u);

	/* A plain success still makes a non-empty frame. */
	CU_ASSERT_EQUAL_FATAL(admin_resp_pack(&r, &f, &flen), 0);
	CU_ASSERT(flen > FRAME_HEADER_LEN);
	CU_ASSERT_EQUAL(f[3], flen - FRAME_HEADER_LEN);
	CU_ASSERT_EQUAL_FATAL(admin_resp_unpack(f + FRAME_HEADER_LEN, flen - FRAME_HEADER_LEN, &u),
			      0);
	CU_ASSERT_EQUAL(u->code, 0);
	CU_ASSERT_EQUAL(u->n_devices, 0);
	CU_ASSERT_PTR_NULL(u->status);
	capf__admin_response__free_unpacked(u, NULL);
	free(f);

	r.code = (uint32_t)-CAPF_EUNKNOWN_DEVICE;
	r.text = "no such device";
	d1.name = "SEP1";
	d2.name = "SEP2";
	d2.status = CAPF__OP_STATUS__STATUS_SUCCESS;
	r.n_devices = 2;
	r.devices = devs;
	c.device = "SEP2";
	c.der.data = der;
	c.der.len = sizeof(der);
	c.state = CAPF__CERT_STATE__CERT_ACTIVE;
	r.n_certificates = 1;
	r.certificates = certs;
	st.pid = 1234;
	st.version = "1.0";
	st.devices = 2;
	r.status = &st;
	CU_ASSERT_EQUAL_FATAL(admin_resp_pack(&r, &f, &flen), 0);
	CU_ASSERT_EQUAL_FATAL(admin_resp_unpack(f + FRAME_HEADER_LEN, flen - FRAME_HEADER_LEN, &u),
			      0);
	CU_ASSERT_EQUAL(u->code, 1006);
	CU_ASSERT_STRING_EQUAL(u->text, "no such device");
	CU_ASSERT_EQUAL_FATAL(u->n_devices, 2);
	CU_ASSERT_STRING_EQUAL(u->devices[1]->name, "SEP2");
	CU_ASSERT_EQUAL(u->devices[1]->status, CAPF__OP_STATUS__STATUS_SUCCESS);
	CU_ASSERT_EQUAL_FATAL(u->n_certificates, 1);
	CU_ASSERT_EQUAL(u->certificates[0]->der.len, sizeof(der));
	CU_ASSERT_EQUAL(u->certificates[0]->state, CAPF__CERT_STATE__CERT_ACTIVE);
	CU_ASSERT_PTR_NOT_NULL_FATAL(u->status);
	CU_ASSERT_EQUAL(u->status->pid, 1234);
	CU_ASSERT_STRING_EQUAL(u->status->version, "1.0");
	capf__admin_response__free_unpacked(u, NULL);
	free(f);
}

/* ---- names and hex --------------------------------------------------------- */

static void test_device_name(void)
{
	char name[DEVICE_NAME_MAX + 2];

	CU_ASSERT_EQUAL(device_name_valid(NULL), 0);
	CU_ASSERT_EQUAL(device_name_valid(""), 0);
	CU_ASSERT_EQUAL(device_name_valid("SEP 1"), 0);
	CU_ASSERT_EQUAL(device_name_valid("a/b"), 0);
	CU_ASSERT_EQUAL(device_name_valid("a\nb"), 0);
	CU_ASSERT_EQUAL(device_name_valid("caf\xc3\xa9"), 0);
	CU_ASSERT_EQUAL(device_name_valid("a=b"), 0);
	memset(name, 'x', DEVICE_NAME_MAX + 1);
	name[DEVICE_NAME_MAX + 1] = '\0';
	CU_ASSERT_EQUAL(device_name_valid(name), 0);

	name[DEVICE_NAME_MAX] = '\0';
	CU_ASSERT_EQUAL(device_name_valid(name), 1);
	CU_ASSERT_EQUAL(device_name_valid("a"), 1);
	CU_ASSERT_EQUAL(device_name_valid("SEP001122334455"), 1);
	CU_ASSERT_EQUAL(device_name_valid("Lab-phone_2.floor3"), 1);
}

/*
 * Every value of an enum descriptor has a name, and the name maps back to
 * the value (when a reverse look-up exists).
 */
static void check_enum_names(const ProtobufCEnumDescriptor *desc, const char *(*name)(int),
			     int (*from)(const char *, int *))
{
	unsigned i;

	for (i = 0; i < desc->n_values; i++) {
		int v = desc->values[i].value, back = -1;
		const char *n = name(v);

		CU_ASSERT_PTR_NOT_NULL_FATAL(n);
		CU_ASSERT(strcmp(n, "?") != 0);
		if (from) {
			CU_ASSERT_EQUAL(from(n, &back), 0);
			CU_ASSERT_EQUAL(back, v);
		}
	}
	CU_ASSERT_STRING_EQUAL(name(-1), "?");
	CU_ASSERT_STRING_EQUAL(name((int)desc->n_values + 10), "?");
	CU_ASSERT_STRING_EQUAL(name(INT_MAX), "?");
}

static void test_enum_names(void)
{
	int v = 77;

	CU_ASSERT_EQUAL(op_from_name("bogus", &v), CAPF_EINVAL);
	CU_ASSERT_EQUAL(op_from_name("Install", &v), CAPF_EINVAL);
	CU_ASSERT_EQUAL(op_from_name("", &v), CAPF_EINVAL);
	CU_ASSERT_EQUAL(op_from_name(NULL, &v), CAPF_EINVAL);
	CU_ASSERT_EQUAL(auth_from_name("?", &v), CAPF_EINVAL);
	CU_ASSERT_EQUAL(key_type_from_name("rsa-1024", &v), CAPF_EINVAL);
	CU_ASSERT_EQUAL(v, 77);

	check_enum_names(&capf__operation__descriptor, op_name, op_from_name);
	check_enum_names(&capf__auth_mode__descriptor, auth_name, auth_from_name);
	check_enum_names(&capf__key_type__descriptor, key_type_name, key_type_from_name);
	check_enum_names(&capf__op_status__descriptor, status_name, NULL);
	check_enum_names(&capf__cert_state__descriptor, cert_state_name, NULL);

	CU_ASSERT_STRING_EQUAL(op_name(CAPF__OPERATION__OP_INSTALL), "install");
	CU_ASSERT_STRING_EQUAL(op_name(CAPF__OPERATION__OP_FETCH), "fetch");
	CU_ASSERT_STRING_EQUAL(auth_name(CAPF__AUTH_MODE__AUTH_NULL_STRING), "null");
	CU_ASSERT_STRING_EQUAL(auth_name(CAPF__AUTH_MODE__AUTH_LSC_OR_MIC), "lsc-or-mic");
	CU_ASSERT_STRING_EQUAL(key_type_name(CAPF__KEY_TYPE__KEY_EC_P256), "ec-p256");
	CU_ASSERT_STRING_EQUAL(key_type_name(CAPF__KEY_TYPE__KEY_RSA_4096), "rsa-4096");
	CU_ASSERT_STRING_EQUAL(status_name(CAPF__OP_STATUS__STATUS_SUCCESS), "success");
	CU_ASSERT_STRING_EQUAL(cert_state_name(CAPF__CERT_STATE__CERT_ACTIVE), "active");
	CU_ASSERT_EQUAL(auth_from_name("mic-or-lsc", &v), 0);
	CU_ASSERT_EQUAL(v, CAPF__AUTH_MODE__AUTH_MIC_OR_LSC);
}

static void test_hex(void)
{
	static const uint8_t bin[] = {0x00, 0x01, 0xab, 0xff, 0x7e};
	uint8_t out[8], all[256], back[256];
	char hex[2 * 256 + 1];
	size_t i;

	memset(out, 0x55, sizeof(out));
	CU_ASSERT_EQUAL(hex_decode(NULL, out, sizeof(out)), CAPF_EINVAL);
	CU_ASSERT_EQUAL(hex_decode("abc", out, sizeof(out)), CAPF_EINVAL);
	CU_ASSERT_EQUAL(hex_decode("zz", out, sizeof(out)), CAPF_EINVAL);
	CU_ASSERT_EQUAL(hex_decode("0g", out, sizeof(out)), CAPF_EINVAL);
	CU_ASSERT_EQUAL(hex_decode("00 1", out, sizeof(out)), CAPF_EINVAL);
	CU_ASSERT_EQUAL(hex_decode("0x00", out, sizeof(out)), CAPF_EINVAL);
	CU_ASSERT_EQUAL(hex_decode("000102", out, 2), CAPF_EINVAL);
	CU_ASSERT_EQUAL(hex_decode("00", NULL, 0), CAPF_EINVAL);
	/* A bad input leaves the output alone, even after good digits. */
	CU_ASSERT_EQUAL(hex_decode("0102zz", out, sizeof(out)), CAPF_EINVAL);
	CU_ASSERT_EQUAL(out[0], 0x55);

	hex_encode(bin, sizeof(bin), hex);
	CU_ASSERT_STRING_EQUAL(hex, "0001abff7e");
	hex_encode(bin, 0, hex);
	CU_ASSERT_STRING_EQUAL(hex, "");
	CU_ASSERT_EQUAL(hex_decode("", out, sizeof(out)), 0);
	CU_ASSERT_EQUAL(hex_decode("0001ABff7E", out, 5), 5);
	CU_ASSERT(memcmp(out, bin, sizeof(bin)) == 0);

	for (i = 0; i < sizeof(all); i++)
		all[i] = (uint8_t)i;
	hex_encode(all, sizeof(all), hex);
	CU_ASSERT_EQUAL(strlen(hex), 512);
	CU_ASSERT_EQUAL(hex_decode(hex, back, sizeof(back)), 256);
	CU_ASSERT(memcmp(all, back, sizeof(all)) == 0);
}

/* ---- registry ------------------------------------------------------------ */

struct test_def {
	const char *name;
	void (*fn)(void);
};

struct suite_def {
	const char *name;
	const struct test_def *tests;
	size_t n;
};

static const struct test_def errcode_tests[] = {
    {"unknown codes", test_errcode_unknown},
    {"every code named", test_errcode_all},
    {"wire form", test_errcode_wire_form},
};

static const struct test_def frame_tests[] = {
    {"init and deinit", test_frame_init},
    {"bad arguments", test_frame_bad_args},
    {"zero length", test_frame_zero_length},
    {"oversized length", test_frame_too_big},
    {"oversized after a buffered frame", test_frame_too_big_after_buffered},
    {"sticky error", test_frame_sticky},
    {"garbage", test_frame_garbage},
    {"header byte by byte", test_frame_header_bytewise},
    {"partial payload", test_frame_partial_payload},
    {"buffer reuse", test_frame_buffer_reuse},
    {"big buffer released", test_frame_big_buffer_released},
    {"several frames in one buffer", test_frame_several_in_one_buffer},
    {"split at every offset", test_frame_split_everywhere},
    {"maximum size", test_frame_max_size},
    {"write header", test_frame_write_header},
};

static const struct test_def message_tests[] = {
    {"pack invalid", test_msg_pack_invalid},
    {"unpack invalid", test_msg_unpack_invalid},
    {"unknown fields", test_msg_unknown_fields},
    {"validate body", test_msg_validate_body},
    {"hello", test_msg_hello},
    {"operation request", test_msg_op_request},
    {"csr", test_msg_csr},
    {"certificate", test_msg_certificate},
    {"store ack", test_msg_store_ack},
    {"end and error", test_msg_end_error},
    {"message names", test_msg_name},
    {"admin request invalid", test_admin_req_invalid},
    {"admin request round trip", test_admin_req_round_trip},
    {"admin response", test_admin_resp},
};

static const struct test_def names_tests[] = {
    {"device names", test_device_name},
    {"enum names", test_enum_names},
    {"hex", test_hex},
};


/* ---- Cisco CAPF v3 ------------------------------------------------------------ */

static size_t cmsg(uint8_t *out, unsigned cmd, uint32_t sid, const uint8_t *body, size_t n)
{
	out[0] = 0x55;
	out[1] = (uint8_t)cmd;
	out[2] = (uint8_t)(sid >> 24);
	out[3] = (uint8_t)(sid >> 16);
	out[4] = (uint8_t)(sid >> 8);
	out[5] = (uint8_t)sid;
	out[6] = (uint8_t)(n >> 8);
	out[7] = (uint8_t)n;
	if (n > 0)
		memcpy(out + 8, body, n); /* body may be NULL when n is 0 */
	return 8 + n;
}

/* A device name with a NUL inside is another name once C reads it. */
static void test_hello_nul(void)
{
	/* PhoneMessage{hello{version 2, device_name "SEP1\0X"}} */
	static const uint8_t nul[] = { 0x0a, 0x0a, 0x08, 0x02, 0x12, 0x06,
				       'S', 'E', 'P', '1', 0x00, 'X' };
	static const uint8_t ok[] = { 0x0a, 0x08, 0x08, 0x02, 0x12, 0x04, 'S', 'E', 'P', '1' };
	/* the version twice: last wins for protobuf, refused here */
	static const uint8_t twice[] = { 0x0a, 0x0a, 0x08, 0x01, 0x08, 0x02, 0x12, 0x04,
					 'S', 'E', 'P', '1' };
	Capf__PhoneMessage *m = NULL;

	CU_ASSERT_EQUAL(phone_msg_unpack(nul, sizeof(nul), &m), CAPF_EBADMSG);
	CU_ASSERT_PTR_NULL(m);
	CU_ASSERT_EQUAL(phone_msg_unpack(twice, sizeof(twice), &m), CAPF_EBADMSG);
	CU_ASSERT_PTR_NULL(m);
	CU_ASSERT_EQUAL_FATAL(phone_msg_unpack(ok, sizeof(ok), &m), 0);
	CU_ASSERT_STRING_EQUAL(m->hello->device_name, "SEP1");
	capf__phone_message__free_unpacked(m, NULL);
}

static void test_cisco_invalid(void)
{
	uint8_t buf[256];
	struct cisco_msg m;
	size_t n;
	static const uint8_t el_cut[] = { 0x0d, 0x00 };
	static const uint8_t el_beyond[] = { 0x0d, 0x00, 0x10, 'S', 'E', 'P' };

	CU_ASSERT_EQUAL(cisco_msg_parse((const uint8_t *)"\x55\x02", 2, &m), CAPF_EBADMSG);
	n = cmsg(buf, 2, 7, NULL, 0);
	buf[0] = 0x54;
	CU_ASSERT_EQUAL(cisco_msg_parse(buf, n, &m), CAPF_EPROTO);
	CU_ASSERT_STRING_EQUAL(m.why, "bad header byte");
	CU_ASSERT_EQUAL(cisco_msg_length(buf, n), CAPF_EPROTO);
	n = cmsg(buf, 2, 7, el_cut, sizeof(el_cut));
	CU_ASSERT_EQUAL(cisco_msg_parse(buf, n, &m), CAPF_EBADMSG);
	CU_ASSERT_STRING_EQUAL(m.why, "element header cut by the end of the body");
	n = cmsg(buf, 2, 7, el_beyond, sizeof(el_beyond));
	CU_ASSERT_EQUAL(cisco_msg_parse(buf, n, &m), CAPF_EBADMSG);
	CU_ASSERT_STRING_EQUAL(m.why, "element length beyond the body");
	/* The header says more body than there is, or less. */
	n = cmsg(buf, 2, 7, NULL, 0);
	buf[7] = 4;
	CU_ASSERT_EQUAL(cisco_msg_parse(buf, n, &m), CAPF_EBADMSG);
	CU_ASSERT_STRING_EQUAL(m.why, "body beyond the message");
	CU_ASSERT_EQUAL(cisco_msg_length(buf, n), 12);
	n = cmsg(buf, 2, 7, (const uint8_t *)"\x07\x00\x01\x03", 4);
	CU_ASSERT_EQUAL(cisco_msg_parse(buf, n + 1, &m), CAPF_EBADMSG);
	CU_ASSERT_STRING_EQUAL(m.why, "bytes after the body");
}

static void test_cisco_elements(void)
{
	/* The example of the description: the server's first message. */
	static const uint8_t first[] = { 0x55, 0x01, 0x00, 0x00, 0x06, 0xb8, 0x00, 0x08,
					 0x07, 0x00, 0x01, 0x03, 0x08, 0x00, 0x01, 0x00 };
	struct cisco_builder *b = calloc(1, sizeof(*b));
	struct cisco_msg m;
	const uint8_t *out, *der;
	size_t len;
	unsigned v;
	char name[32];

	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	cisco_builder_init(b, CISCO_AUTH_REQUEST, 0x6b8);
	cisco_put_u8(b, CISCO_EL_VERSION, 3);
	cisco_put_u8(b, CISCO_EL_AUTH_TYPE, 0);
	CU_ASSERT_EQUAL_FATAL(cisco_finish(b, &out, &len), 0);
	CU_ASSERT_EQUAL_FATAL(len, sizeof(first));
	CU_ASSERT_EQUAL(memcmp(out, first, len), 0);

	cisco_builder_init(b, CISCO_AUTH_RESPONSE, 42);
	cisco_put(b, 99, "x", 1); /* unknown: skipped */
	cisco_put_string(b, CISCO_EL_DEVICE_NAME, "SEP0000000000EF");
	cisco_put_string(b, CISCO_EL_DEVICE_NAME, "SEPSECONDCOPY"); /* the first one counts */
	cisco_put_u16(b, CISCO_EL_KEY_SIZE, 2048);
	cisco_put_certificate(b, CISCO_EL_CERTIFICATE, (const uint8_t *)"DER!", 4);
	cisco_put(b, CISCO_EL_PASSWORD, "\0", 1);
	CU_ASSERT_EQUAL_FATAL(cisco_finish(b, &out, &len), 0);
	CU_ASSERT_EQUAL_FATAL(cisco_msg_parse(out, len, &m), 0);
	CU_ASSERT_EQUAL(m.command, CISCO_AUTH_RESPONSE);
	CU_ASSERT_EQUAL(m.session_id, 42);
	CU_ASSERT_EQUAL(cisco_el_string(&m, CISCO_EL_DEVICE_NAME, name, sizeof(name)), 0);
	CU_ASSERT_STRING_EQUAL(name, "SEP0000000000EF");
	CU_ASSERT_EQUAL(cisco_el_string(&m, CISCO_EL_DEVICE_NAME, name, 4), CAPF_ERANGE);
	CU_ASSERT_EQUAL(cisco_el_u16(&m, CISCO_EL_KEY_SIZE, &v), 0);
	CU_ASSERT_EQUAL(v, 2048);
	CU_ASSERT_EQUAL(cisco_el_u8(&m, CISCO_EL_KEY_SIZE, &v), CAPF_EBADMSG);
	CU_ASSERT_EQUAL(cisco_el_u8(&m, CISCO_EL_VERSION, &v), CAPF_ENOENT);
	CU_ASSERT_EQUAL(cisco_el_certificate(&m, CISCO_EL_CERTIFICATE, &der, &len), 0);
	CU_ASSERT_EQUAL(len, 4);
	CU_ASSERT_EQUAL(memcmp(der, "DER!", 4), 0);
	CU_ASSERT_EQUAL(cisco_el_string(&m, CISCO_EL_PASSWORD, name, sizeof(name)), 0);
	CU_ASSERT_STRING_EQUAL(name, "");

	/* A name without its NUL, or with one inside, is refused. */
	cisco_builder_init(b, CISCO_AUTH_RESPONSE, 42);
	cisco_put(b, CISCO_EL_DEVICE_NAME, "SEP1", 4);
	cisco_put(b, CISCO_EL_PASSWORD, "ab\0cd", 6);
	CU_ASSERT_EQUAL_FATAL(cisco_finish(b, &out, &len), 0);
	CU_ASSERT_EQUAL_FATAL(cisco_msg_parse(out, len, &m), 0);
	CU_ASSERT_EQUAL(cisco_el_string(&m, CISCO_EL_DEVICE_NAME, name, sizeof(name)), CAPF_EBADMSG);
	CU_ASSERT_EQUAL(cisco_el_string(&m, CISCO_EL_PASSWORD, name, sizeof(name)), CAPF_EBADMSG);
	free(b);
}

static const struct test_def strict_tests[] = {
    {"hello with a NUL", test_hello_nul},
};

static const struct test_def cisco_tests[] = {
    {"invalid", test_cisco_invalid},
    {"elements", test_cisco_elements},
};

static const struct suite_def suites[] = {
    {"errcode", errcode_tests, NELEM(errcode_tests)},
    {"frame", frame_tests, NELEM(frame_tests)},
    {"message", message_tests, NELEM(message_tests)},
    {"names", names_tests, NELEM(names_tests)},
    {"cisco", cisco_tests, NELEM(cisco_tests)},
    {"strict", strict_tests, NELEM(strict_tests)},
};

int main(void)
{
	unsigned failures;
	size_t i, j;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	for (i = 0; i < NELEM(suites); i++) {
		CU_pSuite s = CU_add_suite(suites[i].name, NULL, NULL);

		if (!s)
			goto fail;
		for (j = 0; j < suites[i].n; j++)
			if (!CU_add_test(s, suites[i].tests[j].name, suites[i].tests[j].fn))
				goto fail;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	if (CU_basic_run_tests() != CUE_SUCCESS)
		goto fail;
	failures = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failures > 255 ? 255 : (int)failures;
fail:
	CU_cleanup_registry();
	return 1;
}
