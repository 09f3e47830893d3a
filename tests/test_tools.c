/*
 * Unit tests of tools/client.c: output helpers, the admin client against a
 * scripted admin server, and one phone enrollment against a scripted TLS
 * server that uses the real CA code.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "ca/ca.h"
#include "tools/where.h"
#include "tools/bulk.h"
#include "tools/client.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static char tmpdir[64];

/* Runs fn(f, arg) on a memory stream; returns what it wrote (static). */
static const char *capture_str(void (*fn)(FILE *, const char *), const char *arg)
{
	static char out[1024];
	FILE *f;

	memset(out, 0, sizeof(out));
	f = fmemopen(out, sizeof(out), "w");

	if (!f)
		return "";
	fn(f, arg);
	fclose(f);
	return out;
}

/* ---- output helpers --------------------------------------------------- */

static void test_json_invalid_utf8(void)
{
	/* Every byte of a broken sequence becomes U+FFFD, and output stays valid. */
	CU_ASSERT_STRING_EQUAL(capture_str(client_json_string, NULL), "null");
	CU_ASSERT_STRING_EQUAL(capture_str(client_json_string, "a\xff" "b"), "\"a\\ufffdb\"");
	CU_ASSERT_STRING_EQUAL(capture_str(client_json_string, "\xc0\x80"),
			       "\"\\ufffd\\ufffd\"");                  /* overlong NUL */
	CU_ASSERT_STRING_EQUAL(capture_str(client_json_string, "\xed\xa0\x80"),
			       "\"\\ufffd\\ufffd\\ufffd\"");           /* surrogate */
	CU_ASSERT_STRING_EQUAL(capture_str(client_json_string, "\xe2\x82"),
			       "\"\\ufffd\\ufffd\"");                  /* truncated */
	CU_ASSERT_STRING_EQUAL(capture_str(client_json_string, "\xf4\x90\x80\x80"),
			       "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");   /* > U+10FFFF */
	CU_ASSERT_STRING_EQUAL(capture_str(client_json_string, "\xe0\x80\xaf"),
			       "\"\\ufffd\\ufffd\\ufffd\"");           /* overlong '/' */
}

static void test_json_escapes(void)
{
	CU_ASSERT_STRING_EQUAL(capture_str(client_json_string, ""), "\"\"");
	CU_ASSERT_STRING_EQUAL(capture_str(client_json_string, "SEP001122334455"),
			       "\"SEP001122334455\"");
	CU_ASSERT_STRING_EQUAL(capture_str(client_json_string, "a\"b\\c"), "\"a\\\"b\\\\c\"");
	CU_ASSERT_STRING_EQUAL(capture_str(client_json_string, "l1\nl2\r\t"),
			       "\"l1\\nl2\\r\\t\"");
	CU_ASSERT_STRING_EQUAL(capture_str(client_json_string, "\x01\x1f\x7f"),
			       "\"\\u0001\\u001f\\u007f\"");
	CU_ASSERT_STRING_EQUAL(capture_str(client_json_string, "/"), "\"/\"");
	/* Valid UTF-8 of 2, 3 and 4 bytes passes through. */
	CU_ASSERT_STRING_EQUAL(capture_str(client_json_string, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\x9e"),
			       "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\x9e\"");
}

/* ---- --where expressions (tools/where.c) ---------------------------------- */

static int where1(struct where *w, const char *expr)
{
	char err[200];

	where_init(w);
	return where_parse(w, expr, 1000000, err, sizeof(err));
}

static void test_where_invalid(void)
{
	struct where w;
	char err[200] = "";

	where_init(&w);
	CU_ASSERT_EQUAL(where_parse(&w, NULL, 0, err, sizeof(err)), CAPF_EINVAL);
	CU_ASSERT_EQUAL(where1(&w, ""), CAPF_EINVAL);
	CU_ASSERT_EQUAL(where1(&w, "   "), CAPF_EINVAL);
	CU_ASSERT_EQUAL(where1(&w, "frobnicate"), CAPF_EINVAL);
	CU_ASSERT_EQUAL(where1(&w, "status = bogus"), CAPF_EINVAL);
	CU_ASSERT_EQUAL(where1(&w, "status ="), CAPF_EINVAL);
	CU_ASSERT_EQUAL(where1(&w, "auth = unspecified"), CAPF_EINVAL);
	CU_ASSERT_EQUAL(where1(&w, "op = reboot"), CAPF_EINVAL);
	CU_ASSERT_EQUAL(where1(&w, "name = bad/name"), CAPF_EINVAL);
	CU_ASSERT_EQUAL(where1(&w, "name between a"), CAPF_EINVAL);
	CU_ASSERT_EQUAL(where1(&w, "expires before 2027-02-30"), CAPF_EINVAL);
	CU_ASSERT_EQUAL(where1(&w, "expires within 30y"), CAPF_EINVAL);
	CU_ASSERT_EQUAL(where1(&w, "expires within d"), CAPF_EINVAL);
	CU_ASSERT_EQUAL(where1(&w, "expires soon"), CAPF_EINVAL);
	CU_ASSERT_EQUAL(where1(&w, "no lsc and"), CAPF_EINVAL);
	CU_ASSERT_EQUAL(where1(&w, "and no lsc"), CAPF_EINVAL);
	CU_ASSERT_EQUAL(where1(&w, "status = a,b,c,d,e,f,g,h,i"), CAPF_EINVAL);
	where_init(&w);
	CU_ASSERT_EQUAL(where_parse(&w, "bogus words", 0, err, sizeof(err)), CAPF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "bogus words"));
}

static void test_where_vectors(void)
{
	struct where w;
	int64_t d;

	CU_ASSERT_EQUAL(where1(&w, "no lsc"), 0);
	CU_ASSERT_TRUE(w.f.no_lsc);
	CU_ASSERT_EQUAL(where1(&w, "has lsc and unacknowledged"), 0);
	CU_ASSERT_TRUE(w.f.has_lsc && w.f.unacknowledged);
	CU_ASSERT_EQUAL(w.conditions, 2);
	CU_ASSERT_EQUAL(where1(&w, "name = SEP001122334455"), 0);
	CU_ASSERT_STRING_EQUAL(w.f.name, "SEP001122334455");
	CU_ASSERT_EQUAL(where1(&w, "name = SEP00*"), 0);
	CU_ASSERT_STRING_EQUAL(w.f.name_glob, "SEP00*");
	CU_ASSERT_EQUAL(where1(&w, "name like SEP00??"), 0);
	CU_ASSERT_STRING_EQUAL(w.f.name_glob, "SEP00??");
	CU_ASSERT_EQUAL(where1(&w, "name prefix SEP00"), 0);
	CU_ASSERT_STRING_EQUAL(w.f.name_prefix, "SEP00");
	CU_ASSERT_EQUAL(where1(&w, "status=pending,failed"), 0);
	CU_ASSERT_EQUAL(w.f.n_status, 2);
	CU_ASSERT_EQUAL(w.f.status[0], CAPF__OP_STATUS__STATUS_PENDING);
	CU_ASSERT_EQUAL(w.f.status[1], CAPF__OP_STATUS__STATUS_FAILED);
	CU_ASSERT_EQUAL(where1(&w, "auth in string,mic-or-lsc and op = fetch"), 0);
	CU_ASSERT_EQUAL(w.f.n_auth, 2);
	CU_ASSERT_EQUAL(w.f.auth[1], CAPF__AUTH_MODE__AUTH_MIC_OR_LSC);
	CU_ASSERT_EQUAL(w.f.n_op, 1);
	CU_ASSERT_EQUAL(w.f.op[0], CAPF__OPERATION__OP_FETCH);
	/* Relative to now (1000000 here); a bare day is its start. */
	CU_ASSERT_EQUAL(where1(&w, "expires within 30d"), 0);
	CU_ASSERT_EQUAL(w.f.expires_before, 1000000 + 30 * 86400);
	CU_ASSERT_EQUAL(where1(&w, "expires before 1970-01-02"), 0);
	CU_ASSERT_EQUAL(w.f.expires_before, 86400);
	CU_ASSERT_EQUAL(where1(&w, "expires after 1970-01-01T00:00:10Z"), 0);
	CU_ASSERT_EQUAL(w.f.expires_after, 10);
	CU_ASSERT_EQUAL(where_duration("12h", &d), 0);
	CU_ASSERT_EQUAL(d, 12 * 3600);
	CU_ASSERT_EQUAL(where_duration("2w", &d), 0);
	CU_ASSERT_EQUAL(d, 14 * 86400);
	CU_ASSERT_EQUAL(where_duration("90", &d), 0);
	CU_ASSERT_EQUAL(d, 90 * 86400);
	CU_ASSERT_EQUAL(where_duration("1dd", &d), CAPF_EINVAL);
	/* Two expressions add up. */
	where_init(&w);
	{
		char err[100];
		CU_ASSERT_EQUAL(where_parse(&w, "no lsc", 0, err, sizeof(err)), 0);
		CU_ASSERT_EQUAL(where_parse(&w, "status = failed", 0, err, sizeof(err)), 0);
		CU_ASSERT_TRUE(w.f.no_lsc);
		CU_ASSERT_EQUAL(w.f.n_status, 1);
	}
}

static void test_nearest(void)
{
	static const char *const cands[] = { "device", "status", "schedule", "report", "json" };
	const size_t n = sizeof(cands) / sizeof(cands[0]);

	CU_ASSERT_PTR_NULL(client_nearest(NULL, cands, n));
	CU_ASSERT_PTR_NULL(client_nearest("", cands, n));
	CU_ASSERT_PTR_NULL(client_nearest("device", cands, 0));
	CU_ASSERT_PTR_NULL(client_nearest("frobnicate", cands, n));
	CU_ASSERT_PTR_NULL(client_nearest("xx", cands, n));
	CU_ASSERT_STRING_EQUAL(client_nearest("devcie", cands, n), "device");
	CU_ASSERT_STRING_EQUAL(client_nearest("devic", cands, n), "device");
	CU_ASSERT_STRING_EQUAL(client_nearest("stauts", cands, n), "status");
	CU_ASSERT_STRING_EQUAL(client_nearest("sched", cands, n), "schedule");
	CU_ASSERT_STRING_EQUAL(client_nearest("jsno", cands, n), "json");
	CU_ASSERT_STRING_EQUAL(client_nearest("report", cands, n), "report");
}

/* ---- bulk import files (tools/bulk.c) ------------------------------------- */

/* Reads text as a bulk file; the messages go to *errs (free it). */
static int bulk_text(struct bulk *b, const char *text, char **errs)
{
	FILE *in = fmemopen((void *)text, strlen(text), "r");
	size_t len = 0;
	int ret;

	memset(b, 0, sizeof(*b));
	b->file = "t.csv";
	b->err = open_memstream(errs, &len);
	ret = bulk_read(b, in);
	if (ret == 0 && !b->fatal)
		ret = bulk_dups(b);
	fclose(in);
	fclose(b->err);
	return ret;
}

static void test_bulk_invalid(void)
{
	struct bulk b;
	char *errs = NULL;

	CU_ASSERT_EQUAL(bulk_text(&b, "", &errs), CAPF_EINVAL);
	bulk_free(&b);
	free(errs);
	/* A bad header stops at once. */
	bulk_text(&b, "device name,colour\nSEP1,blue\n", &errs);
	CU_ASSERT_TRUE(b.fatal);
	CU_ASSERT_PTR_NOT_NULL(strstr(errs, "t.csv:1: unknown column 'colour'"));
	bulk_free(&b);
	free(errs);
	bulk_text(&b, "op\ninstall\n", &errs);
	CU_ASSERT_TRUE(b.fatal);
	CU_ASSERT_PTR_NOT_NULL(strstr(errs, "no device name column"));
	bulk_free(&b);
	free(errs);
	/* Every bad line, with its number; the good ones stay. */
	bulk_text(&b,
		  "name,op,auth,key size,ec key size,completes by,lsc days\n"
		  "SEP1,install,mic,,,,\n"
		  "bad name,install,mic,,,,\n"
		  "SEP2,reboot,mic,,,,\n"
		  "SEP3,install,sometimes,,,,\n"
		  "SEP4,install,mic,1024,,,\n"
		  "SEP5,install,mic,,200,,\n"
		  "SEP6,install,mic,,,2027-02-30,\n"
		  "SEP7,install,mic,,,,-1\n"
		  "SEP8,install\n"
		  "SEP1,install,mic,,,,\n",
		  &errs);
	CU_ASSERT_EQUAL(b.n, 1);
	CU_ASSERT_EQUAL(b.errors, 9);
	CU_ASSERT_PTR_NOT_NULL(strstr(errs, "t.csv:3: 'bad name' is not a device name"));
	CU_ASSERT_PTR_NOT_NULL(strstr(errs, "t.csv:4: unknown operation 'reboot'"));
	CU_ASSERT_PTR_NOT_NULL(strstr(errs, "t.csv:5: unknown authentication mode"));
	CU_ASSERT_PTR_NOT_NULL(strstr(errs, "t.csv:6: unknown RSA key size '1024'"));
	CU_ASSERT_PTR_NOT_NULL(strstr(errs, "t.csv:7: unknown EC curve '200'"));
	CU_ASSERT_PTR_NOT_NULL(strstr(errs, "t.csv:8: bad date '2027-02-30'"));
	CU_ASSERT_PTR_NOT_NULL(strstr(errs, "t.csv:9: lsc days wants 0..36500"));
	CU_ASSERT_PTR_NOT_NULL(strstr(errs, "t.csv:10: 2 fields where the header has 7"));
	CU_ASSERT_PTR_NOT_NULL(strstr(errs, "t.csv:11: device SEP1 is on line 2 already"));
	bulk_free(&b);
	free(errs);
	/* A quote never closed: the rest of the file cannot be read. */
	bulk_text(&b, "name,op\nSEP1,install\n\"SEP2,install\n", &errs);
	CU_ASSERT_TRUE(b.fatal);
	CU_ASSERT_PTR_NOT_NULL(strstr(errs, "t.csv:3: "));
	CU_ASSERT_PTR_NOT_NULL(strstr(errs, "unclosed quote"));
	bulk_free(&b);
	free(errs);
}

static void test_bulk_vectors(void)
{
	struct bulk b;
	char *errs = NULL;

	/* The Tool's words, a BOM, CRLF, quotes with a comma, a quote and a
	 * line break inside. */
	CU_ASSERT_EQUAL(bulk_text(&b,
				  "\xEF\xBB\xBF" "Device Name,Operation,Authentication Mode,"
				  "Authentication String,Key Order,Key Size,EC Key Size,"
				  "Operation Completes By\r\n"
				  "SEP1,Install/Upgrade,By Null String,,EC Preferred RSA Backup,"
				  "2048,256,2030:01:31:12\r\n"
				  "\"SEP2\",Troubleshoot,By Authentication String,generate,,,,\r\n"
				  "SEP3,,\"By Existing Certificate (Precedence to LSC)\","
				  "\"a,\"\"b\nc\",,,384,\r\n",
				  &errs),
			0);
	CU_ASSERT_EQUAL(b.errors, 0);
	CU_ASSERT_EQUAL(b.n, 3);
	if (b.n == 3) {
		CU_ASSERT_STRING_EQUAL(b.lines[0].name, "SEP1");
		CU_ASSERT_EQUAL(b.lines[0].dev.op, CAPF__OPERATION__OP_INSTALL);
		CU_ASSERT_EQUAL(b.lines[0].dev.auth, CAPF__AUTH_MODE__AUTH_NULL_STRING);
		CU_ASSERT_EQUAL(b.lines[0].dev.key_order, CAPF__KEY_ORDER__KEY_ORDER_EC_PREFERRED);
		CU_ASSERT_EQUAL(b.lines[0].dev.key_type, CAPF__KEY_TYPE__KEY_RSA_2048);
		CU_ASSERT_EQUAL(b.lines[0].dev.ec_key_type, CAPF__KEY_TYPE__KEY_EC_P256);
		CU_ASSERT_EQUAL(b.lines[0].dev.deadline, 1896091200); /* 2030-01-31T12:00:00Z */
		CU_ASSERT_EQUAL(b.lines[1].dev.op, CAPF__OPERATION__OP_FETCH);
		CU_ASSERT_TRUE(b.lines[1].generated);
		CU_ASSERT_EQUAL(b.lines[2].dev.auth, CAPF__AUTH_MODE__AUTH_LSC_OR_MIC);
		CU_ASSERT_STRING_EQUAL(b.lines[2].string, "a,\"b\nc");
		CU_ASSERT_EQUAL(b.lines[2].dev.key_type, CAPF__KEY_TYPE__KEY_EC_P384);
		/* No operation column value: not a field to apply. */
		CU_ASSERT_FALSE(b.lines[2].fields & CAPF__PUT_FIELD__PUT_FIELD_OP);
		CU_ASSERT_TRUE(b.lines[2].fields & CAPF__PUT_FIELD__PUT_FIELD_AUTH);
	}
	bulk_free(&b);
	free(errs);
}

static void test_csv_field(void)
{
	CU_ASSERT_STRING_EQUAL(capture_str(client_csv_field, NULL), "");
	CU_ASSERT_STRING_EQUAL(capture_str(client_csv_field, ""), "");
	CU_ASSERT_STRING_EQUAL(capture_str(client_csv_field, "plain text"), "plain text");
	CU_ASSERT_STRING_EQUAL(capture_str(client_csv_field, "a,b"), "\"a,b\"");
	CU_ASSERT_STRING_EQUAL(capture_str(client_csv_field, "say \"hi\""),
			       "\"say \"\"hi\"\"\"");
	CU_ASSERT_STRING_EQUAL(capture_str(client_csv_field, "l1\nl2"), "\"l1\nl2\"");
	CU_ASSERT_STRING_EQUAL(capture_str(client_csv_field, "cr\r"), "\"cr\r\"");
	CU_ASSERT_STRING_EQUAL(capture_str(client_csv_field, "CN=a+OU=b"), "CN=a+OU=b");
	/* What a spreadsheet would run is exported as text. */
	CU_ASSERT_STRING_EQUAL(capture_str(client_csv_field, "=1+2"), "'=1+2");
	CU_ASSERT_STRING_EQUAL(capture_str(client_csv_field, "+1"), "'+1");
	CU_ASSERT_STRING_EQUAL(capture_str(client_csv_field, "-2"), "'-2");
	CU_ASSERT_STRING_EQUAL(capture_str(client_csv_field, "@SUM(A1)"), "'@SUM(A1)");
	CU_ASSERT_STRING_EQUAL(capture_str(client_csv_field, "=HYPERLINK(\"x\",1)"),
			       "\"'=HYPERLINK(\"\"x\"\",1)\"");
	CU_ASSERT_STRING_EQUAL(capture_str(client_csv_field, "a=b"), "a=b");
}

static void test_parse_date_invalid(void)
{
	static const char *const bad[] = {
		"", "2025", "2025-1-01", "2025-01-1", "25-01-01", "2025/01/01", "2025-01-01 ",
		" 2025-01-01", "2025-00-10", "2025-13-01", "2025-01-00", "2025-01-32",
		"2025-02-29", "1900-02-29", "2100-02-29", "2025-04-31", "1969-12-31",
		"2025-01-01T00:00:00", "2025-01-01T24:00:00Z", "2025-01-01T23:60:00Z",
		"2025-01-01T23:59:60Z", "2025-01-01t00:00:00Z", "2025-01-01T00:00:00z",
		"2025-01-01T0:00:000Z", "+025-01-01", "2025-0a-01", "today",
	};
	int64_t t = 42;
	size_t i;

	CU_ASSERT_EQUAL(client_parse_date(NULL, &t), CAPF_EINVAL);
	for (i = 0; i < NELEM(bad); i++) {
		CU_ASSERT_EQUAL(client_parse_date(bad[i], &t), CAPF_EINVAL);
		if (client_parse_date(bad[i], &t) != CAPF_EINVAL)
			fprintf(stderr, "accepted: '%s'\n", bad[i]);
	}
	CU_ASSERT_EQUAL(t, 42);
}

static void test_parse_date_valid(void)
{
	static const struct {
		const char *s;
		int64_t t;
	} good[] = {
		{ "1970-01-01", 86399 },
		{ "1970-01-01T00:00:00Z", 0 },
		{ "2000-02-29", 951868799 },
		{ "2024-02-29", 1709251199 },
		{ "2025-01-01T00:00:00Z", 1735689600 },
		{ "2025-12-31", 1767225599 },
		{ "2038-01-19T03:14:08Z", 2147483648 },
		{ "9999-12-31T23:59:59Z", 253402300799 },
	};
	int64_t t;
	size_t i;

	for (i = 0; i < NELEM(good); i++) {
		t = -1;
		CU_ASSERT_EQUAL(client_parse_date(good[i].s, &t), 0);
		CU_ASSERT_EQUAL(t, good[i].t);
	}
}

static void test_time_iso(void)
{
	char buf[32];

	CU_ASSERT_STRING_EQUAL(client_time_iso(0, buf, sizeof(buf)), "1970-01-01T00:00:00Z");
	CU_ASSERT_STRING_EQUAL(client_time_iso(1735689600, buf, sizeof(buf)),
			       "2025-01-01T00:00:00Z");
	CU_ASSERT_STRING_EQUAL(client_time_iso(1709251199, buf, sizeof(buf)),
			       "2024-02-29T23:59:59Z");
	/* Round trip with the parser. */
	{
		int64_t t;

		CU_ASSERT_EQUAL(client_parse_date(client_time_iso(2147483648LL, buf, sizeof(buf)),
						  &t), 0);
		CU_ASSERT_EQUAL(t, 2147483648LL);
	}
}

static void test_hex(void)
{
	static const uint8_t serial[] = { 0x00, 0x7f, 0x80, 0xff, 0x2d };
	char *s;

	s = client_hex(serial, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_STRING_EQUAL(s, "");
	free(s);
	s = client_hex(serial, sizeof(serial));
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_STRING_EQUAL(s, "007f80ff2d");
	free(s);
}

/* ---- admin client against a scripted server --------------------------- */

enum admin_mode {
	ADMIN_ECHO,       /* answer each request with its body case in text */
	ADMIN_SPLIT,      /* answer one byte per write */
	ADMIN_TWO,        /* answer the first request with two responses at once */
	ADMIN_BIG,        /* a header announcing more than FRAME_MAX_LIMIT */
	ADMIN_CLOSE,      /* close after reading the request */
	ADMIN_SILENT,     /* never answer */
	ADMIN_LARGE,      /* a response of over 1 MiB (20000 devices) */
};

struct admin_srv {
	int lfd;
	enum admin_mode mode;
	char path[PATH_MAX];
	pthread_t th;
	int requests;     /* requests read */
};

static int read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	ssize_t n;

	while (len > 0) {
		n = read(fd, p, len);
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads one AdminRequest frame; returns its body case or -1. */
static int admin_read_req(int fd)
{
	uint8_t hdr[4], *payload;
	Capf__AdminRequest *req = NULL;
	uint32_t len;
	int body;

	if (read_full(fd, hdr, 4) < 0)
		return -1;
	len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	if (len == 0 || len > 65536)
		return -1;
	payload = malloc(len);
	if (!payload || read_full(fd, payload, len) < 0 ||
	    admin_req_unpack(payload, len, &req) < 0) {
		free(payload);
		return -1;
	}
	body = (int)req->body_case;
	capf__admin_request__free_unpacked(req, NULL);
	free(payload);
	return body;
}

static int admin_resp_frame(uint32_t code, const char *text, size_t ndev, uint8_t **out,
			    size_t *out_len)
{
	Capf__AdminResponse resp = CAPF__ADMIN_RESPONSE__INIT;
	Capf__Device *devs = NULL, **ptrs = NULL;
	char (*names)[24] = NULL;
	size_t i;
	int ret;

	resp.code = code;
	resp.text = (char *)text;
	if (ndev) {
		devs = calloc(ndev, sizeof(*devs));
		ptrs = calloc(ndev, sizeof(*ptrs));
		names = calloc(ndev, sizeof(*names));
		if (!devs || !ptrs || !names) {
			ret = CAPF_ENOMEM;
			goto out;
		}
		for (i = 0; i < ndev; i++) {
			capf__device__init(&devs[i]);
			snprintf(names[i], sizeof(names[i]), "SEP%012zu", i);
			devs[i].name = names[i];
			devs[i].op = CAPF__OPERATION__OP_INSTALL;
			devs[i].auth = CAPF__AUTH_MODE__AUTH_MIC;
			devs[i].key_type = CAPF__KEY_TYPE__KEY_EC_P256;
			devs[i].created = 1735689600 + (int64_t)i;
			ptrs[i] = &devs[i];
		}
		resp.n_devices = ndev;
		resp.devices = ptrs;
	}
	ret = admin_resp_pack(&resp, out, out_len);
out:
	free(devs);
	free(ptrs);
	free(names);
	return ret;
}

static void *admin_thread(void *arg)
{
	struct admin_srv *s = arg;
	struct pollfd pfd = { .fd = s->lfd, .events = POLLIN };
	uint8_t *a = NULL, *b = NULL, *both = NULL;
	size_t alen = 0, blen = 0, i;
	char text[32];
	int fd = -1, body;

	if (poll(&pfd, 1, 10000) != 1)
		return NULL;
	fd = accept(s->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	while ((body = admin_read_req(fd)) >= 0) {
		s->requests++;
		snprintf(text, sizeof(text), "body %d", body);
		switch (s->mode) {
		case ADMIN_ECHO:
			if (admin_resp_frame(0, text, 0, &a, &alen) == 0)
				write_full(fd, a, alen);
			break;
		case ADMIN_SPLIT:
			if (admin_resp_frame(0, text, 0, &a, &alen) == 0)
				for (i = 0; i < alen; i++) {
					write_full(fd, a + i, 1);
					usleep(1000);
				}
			break;
		case ADMIN_TWO:
			if (s->requests == 1 && admin_resp_frame(0, "first", 0, &a, &alen) == 0 &&
			    admin_resp_frame((uint32_t)-CAPF_EEXIST, "second", 0, &b, &blen) == 0 &&
			    (both = malloc(alen + blen))) {
				memcpy(both, a, alen);
				memcpy(both + alen, b, blen);
				write_full(fd, both, alen + blen);
			}
			break;
		case ADMIN_BIG: {
			uint8_t hdr[4];

			frame_write_header(hdr, FRAME_MAX_LIMIT + 1);
			write_full(fd, hdr, 4);
			break;
		}
		case ADMIN_CLOSE:
			goto out;
		case ADMIN_SILENT:
			break;
		case ADMIN_LARGE:
			if (admin_resp_frame(0, text, 20000, &a, &alen) == 0)
				write_full(fd, a, alen);
			break;
		}
		free(a);
		free(b);
		free(both);
		a = b = both = NULL;
	}
out:
	free(a);
	free(b);
	free(both);
	close(fd);
	return NULL;
}

static int admin_start(struct admin_srv *s, enum admin_mode mode)
{
	struct sockaddr_un sun;

	memset(s, 0, sizeof(*s));
	s->mode = mode;
	snprintf(s->path, sizeof(s->path), "%s/admin.sock", tmpdir);
	unlink(s->path);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(s->path) >= sizeof(sun.sun_path))
		return -1;
	memcpy(sun.sun_path, s->path, strlen(s->path) + 1);
	s->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    listen(s->lfd, 4) < 0)
		return -1;
	return pthread_create(&s->th, NULL, admin_thread, s) == 0 ? 0 : -1;
}

static void admin_stop(struct admin_srv *s)
{
	pthread_join(s->th, NULL);
	close(s->lfd);
	unlink(s->path);
}

static int status_call(struct client_admin *a, Capf__AdminResponse **resp)
{
	Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
	Capf__StatusRequest st = CAPF__STATUS_REQUEST__INIT;

	req.body_case = CAPF__ADMIN_REQUEST__BODY_STATUS;
	req.status = &st;
	return client_admin_call(a, &req, resp);
}

static void test_admin_open_invalid(void)
{
	struct client_admin a;
	char longpath[200];
	char missing[PATH_MAX];

	memset(longpath, 'x', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	CU_ASSERT_EQUAL(client_admin_open(&a, longpath, 0), CAPF_EINVAL);
	CU_ASSERT_EQUAL(a.fd, -1);
	CU_ASSERT_EQUAL(client_admin_open(&a, "", 0), CAPF_EINVAL);
	CU_ASSERT_EQUAL(client_admin_open(&a, NULL, 0), CAPF_EINVAL);
	snprintf(missing, sizeof(missing), "%s/none.sock", tmpdir);
	CU_ASSERT_EQUAL(client_admin_open(&a, missing, 0), CAPF_ENOENT);
	/* A path that is not a socket. */
	CU_ASSERT_EQUAL(client_admin_open(&a, tmpdir, 0), -ECONNREFUSED);
	client_admin_close(&a);
}

static void test_admin_errors(void)
{
	struct admin_srv s;
	struct client_admin a;
	Capf__AdminResponse *resp = (Capf__AdminResponse *)1;

	/* The server announces a frame over the limit. */
	CU_ASSERT_EQUAL_FATAL(admin_start(&s, ADMIN_BIG), 0);
	CU_ASSERT_EQUAL_FATAL(client_admin_open(&a, s.path, 2000), 0);
	CU_ASSERT_EQUAL(status_call(&a, &resp), CAPF_EFRAME_TOO_BIG);
	CU_ASSERT_PTR_NULL(resp);
	client_admin_close(&a);
	admin_stop(&s);

	/* The server closes without answering. */
	CU_ASSERT_EQUAL_FATAL(admin_start(&s, ADMIN_CLOSE), 0);
	CU_ASSERT_EQUAL_FATAL(client_admin_open(&a, s.path, 2000), 0);
	CU_ASSERT_EQUAL(status_call(&a, &resp), CAPF_ECONNRESET);
	client_admin_close(&a);
	admin_stop(&s);

	/* The server never answers: the receive times out. */
	CU_ASSERT_EQUAL_FATAL(admin_start(&s, ADMIN_SILENT), 0);
	CU_ASSERT_EQUAL_FATAL(client_admin_open(&a, s.path, 200), 0);
	CU_ASSERT_EQUAL(status_call(&a, &resp), CAPF_ETIMEDOUT);
	client_admin_close(&a);
	admin_stop(&s);

	/* A closed connection refuses calls. */
	CU_ASSERT_EQUAL(status_call(&a, &resp), CAPF_EINVAL);
}

static void test_admin_calls(void)
{
	struct admin_srv s;
	struct client_admin a;
	Capf__AdminResponse *resp = NULL;
	Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
	Capf__DeviceList list = CAPF__DEVICE_LIST__INIT;
	int i;

	/* Several requests on one connection. */
	CU_ASSERT_EQUAL_FATAL(admin_start(&s, ADMIN_ECHO), 0);
	CU_ASSERT_EQUAL_FATAL(client_admin_open(&a, s.path, 5000), 0);
	for (i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL_FATAL(status_call(&a, &resp), 0);
		CU_ASSERT_EQUAL(resp->code, 0);
		CU_ASSERT_STRING_EQUAL(resp->text, "body 5");
		capf__admin_response__free_unpacked(resp, NULL);
	}
	req.body_case = CAPF__ADMIN_REQUEST__BODY_DEVICE_LIST;
	req.device_list = &list;
	CU_ASSERT_EQUAL_FATAL(client_admin_call(&a, &req, &resp), 0);
	CU_ASSERT_STRING_EQUAL(resp->text, "body 4");
	CU_ASSERT_EQUAL(req.version, 0); /* the caller's request is not modified */
	capf__admin_response__free_unpacked(resp, NULL);
	client_admin_close(&a);
	admin_stop(&s);
	CU_ASSERT_EQUAL(s.requests, 4);

	/* A response that arrives one byte at a time. */
	CU_ASSERT_EQUAL_FATAL(admin_start(&s, ADMIN_SPLIT), 0);
	CU_ASSERT_EQUAL_FATAL(client_admin_open(&a, s.path, 5000), 0);
	CU_ASSERT_EQUAL_FATAL(status_call(&a, &resp), 0);
	CU_ASSERT_STRING_EQUAL(resp->text, "body 5");
	capf__admin_response__free_unpacked(resp, NULL);
	client_admin_close(&a);
	admin_stop(&s);

	/* Two responses in one read: the second is kept for the next call. */
	CU_ASSERT_EQUAL_FATAL(admin_start(&s, ADMIN_TWO), 0);
	CU_ASSERT_EQUAL_FATAL(client_admin_open(&a, s.path, 5000), 0);
	CU_ASSERT_EQUAL_FATAL(status_call(&a, &resp), 0);
	CU_ASSERT_STRING_EQUAL(resp->text, "first");
	capf__admin_response__free_unpacked(resp, NULL);
	CU_ASSERT_EQUAL_FATAL(status_call(&a, &resp), 0);
	CU_ASSERT_STRING_EQUAL(resp->text, "second");
	CU_ASSERT_EQUAL(resp->code, (uint32_t)-CAPF_EEXIST);
	capf__admin_response__free_unpacked(resp, NULL);
	client_admin_close(&a);
	admin_stop(&s);

	/* A response far larger than a phone frame. */
	CU_ASSERT_EQUAL_FATAL(admin_start(&s, ADMIN_LARGE), 0);
	CU_ASSERT_EQUAL_FATAL(client_admin_open(&a, s.path, 5000), 0);
	CU_ASSERT_EQUAL_FATAL(status_call(&a, &resp), 0);
	CU_ASSERT_EQUAL(resp->n_devices, 20000);
	if (resp->n_devices == 20000)
		CU_ASSERT_STRING_EQUAL(resp->devices[19999]->name, "SEP000000019999");
	capf__admin_response__free_unpacked(resp, NULL);
	client_admin_close(&a);
	admin_stop(&s);
}

/* ---- trust and TCP ---------------------------------------------------- */

static struct pki_pair mfg_root, other_root, mic_good;
static struct ca *test_ca;
static char capf_ca_path[PATH_MAX], other_ca_path[PATH_MAX];

static void test_trust_invalid(void)
{
	struct client_trust t = { 0 };
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/missing.pem", tmpdir);
	CU_ASSERT_EQUAL(client_trust_load(path, &t), CAPF_EIO);
	CU_ASSERT_EQUAL(t.n, 0);
	snprintf(path, sizeof(path), "%s/garbage.pem", tmpdir);
	f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs("not a certificate\n", f);
	fclose(f);
	CU_ASSERT_EQUAL(client_trust_load(path, &t), CAPF_EBADMSG);
	CU_ASSERT_EQUAL(t.n, 0);
	client_trust_deinit(&t);
	CU_ASSERT_EQUAL(client_trust_verify(NULL, (const uint8_t *)"x", 1), 0);
	CU_ASSERT_EQUAL(client_trust_verify(&t, (const uint8_t *)"x", 1), 0);
}

static void test_trust_verify(void)
{
	struct client_trust t = { 0 };
	uint8_t *der = NULL, garbage[64];
	size_t len = 0;
	char path[PATH_MAX];
	FILE *f;

	/* Two certificates in one PEM file; the MIC verifies against the set. */
	snprintf(path, sizeof(path), "%s/two.pem", tmpdir);
	{
		char a[PATH_MAX], b[PATH_MAX], cmd[3 * PATH_MAX + 32];

		snprintf(a, sizeof(a), "%s/mfg.pem", tmpdir);
		snprintf(b, sizeof(b), "%s", other_ca_path);
		snprintf(cmd, sizeof(cmd), "cat '%s' '%s' > '%s'", b, a, path);
		CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
	}
	CU_ASSERT_EQUAL_FATAL(client_trust_load(path, &t), 0);
	CU_ASSERT_EQUAL(t.n, 2);
	CU_ASSERT_EQUAL_FATAL(pki_crt_der(mic_good.crt, &der, &len), 0);
	CU_ASSERT_EQUAL(client_trust_verify(&t, der, len), 1);
	memset(garbage, 0x30, sizeof(garbage));
	CU_ASSERT_EQUAL(client_trust_verify(&t, garbage, sizeof(garbage)), 0);
	client_trust_deinit(&t);
	CU_ASSERT_EQUAL(t.n, 0);

	/* Only the other root: the MIC does not verify. */
	CU_ASSERT_EQUAL_FATAL(client_trust_load(other_ca_path, &t), 0);
	CU_ASSERT_EQUAL(t.n, 1);
	CU_ASSERT_EQUAL(client_trust_verify(&t, der, len), 0);
	client_trust_deinit(&t);

	/* A DER file holding one certificate. */
	snprintf(path, sizeof(path), "%s/mic.der", tmpdir);
	f = fopen(path, "wb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fwrite(der, 1, len, f);
	fclose(f);
	CU_ASSERT_EQUAL(client_trust_load(path, &t), 0);
	CU_ASSERT_EQUAL(t.n, 1);
	client_trust_deinit(&t);
	free(der);
}

/* A listening TCP socket on 127.0.0.1 with an ephemeral port. */
static int tcp_listen(char port[8])
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &slen) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	snprintf(port, 8, "%u", ntohs(sin.sin_port));
	return fd;
}

static void test_tcp_connect(void)
{
	char port[8];
	int lfd, fd = 42;

	CU_ASSERT_EQUAL(client_tcp_connect("no-such-host.invalid", "3804", 2000, &fd), CAPF_EINVAL);
	CU_ASSERT_EQUAL(fd, -1);
	CU_ASSERT_EQUAL(client_tcp_connect("127.0.0.1", "not-a-port", 2000, &fd), CAPF_EINVAL);
	/* A port where nothing listens any more. */
	lfd = tcp_listen(port);
	CU_ASSERT_FATAL(lfd >= 0);
	close(lfd);
	CU_ASSERT_EQUAL(client_tcp_connect("127.0.0.1", port, 2000, &fd), -ECONNREFUSED);

	lfd = tcp_listen(port);
	CU_ASSERT_FATAL(lfd >= 0);
	CU_ASSERT_EQUAL(client_tcp_connect("127.0.0.1", port, 2000, &fd), 0);
	CU_ASSERT(fd >= 0);
	if (fd >= 0)
		close(fd);
	close(lfd);
}

/* ---- one enrollment against a scripted TLS server --------------------- */

enum fake_mode {
	FAKE_OK,
	FAKE_RETRY,        /* Error 1016 right after Hello */
	FAKE_TWO_FRAMES,   /* OperationRequest and Error 1016 in one record */
	FAKE_SPLIT,        /* OperationRequest one byte per record */
	FAKE_WRONG_NAME,   /* an LSC for another device */
	FAKE_UNEXPECTED,   /* End{0} instead of OperationRequest */
	FAKE_DELETE,       /* OperationRequest{OP_DELETE}, then End or Error 1024 */
	FAKE_FETCH,        /* OperationRequest{OP_FETCH}, then End */
	FAKE_NOTHING,      /* End{1007} right after Hello */
};

struct fake {
	int lfd;
	char port[8];
	enum fake_mode mode;
	pthread_t th;
	/* what the server saw */
	char hello[DEVICE_NAME_MAX + 1];
	int client_certs;
	int csr_check;       /* ca_csr_check() result, 1 = no CSR seen */
	int first_body;      /* body case of the first message */
	long ack;            /* StoreAck code, -1 = none */
	unsigned version;    /* Hello.version */
	char auth_string[AUTH_STRING_MAX + 1];
	int supported[8];    /* Hello.supported_keys */
	size_t nsupported;
	long delete_code;    /* DeleteResult code, -1 = none */
	long reported;       /* FetchReport certificates, -1 = none */
	int reported_match;  /* the first reported certificate is the MIC */
};

static int fake_send(struct client_tls *s, Capf__PhoneMessage *m, int split)
{
	uint8_t *frame = NULL;
	size_t len = 0, i;
	int ret = phone_msg_pack(m, &frame, &len);

	if (ret == 0 && split)
		for (i = 0; i < len && ret == 0; i++)
			ret = client_tls_send_raw(s, frame + i, 1);
	else if (ret == 0)
		ret = client_tls_send_raw(s, frame, len);
	free(frame);
	return ret;
}

static void *fake_thread(void *arg)
{
	struct fake *f = arg;
	struct client_tls s = CLIENT_TLS_INIT;
	struct pollfd pfd = { .fd = f->lfd, .events = POLLIN };
	gnutls_certificate_credentials_t cred = NULL;
	Capf__PhoneMessage out = CAPF__PHONE_MESSAGE__INIT;
	Capf__OperationRequest opreq = CAPF__OPERATION_REQUEST__INIT;
	Capf__Error err = CAPF__ERROR__INIT;
	Capf__End end = CAPF__END__INIT;
	Capf__CertificateDelivery cd = CAPF__CERTIFICATE_DELIVERY__INIT;
	Capf__PhoneMessage *in = NULL;
	struct ca_csr *csr = NULL;
	struct ca_lsc lsc;
	ProtobufCBinaryData chain;
	uint8_t binding[32];
	unsigned ncerts = 0;
	int g;

	memset(&lsc, 0, sizeof(lsc));
	f->ack = -1;
	f->delete_code = -1;
	f->reported = -1;
	f->csr_check = 1;
	f->first_body = -1;
	if (poll(&pfd, 1, 10000) != 1)
		return NULL;
	s.fd = accept(f->lfd, NULL, NULL);
	if (s.fd < 0)
		return NULL;
	frame_decoder_init(&s.rd.dec, 0);
	if (gnutls_certificate_allocate_credentials(&cred) < 0 ||
	    ca_tls_credentials(test_ca, cred) < 0 || gnutls_init(&s.session, GNUTLS_SERVER) < 0)
		goto out;
	gnutls_priority_set_direct(s.session, CLIENT_TLS_PRIORITY, NULL);
	gnutls_credentials_set(s.session, GNUTLS_CRD_CERTIFICATE, cred);
	gnutls_certificate_server_set_request(s.session, GNUTLS_CERT_REQUEST);
	gnutls_transport_set_int(s.session, s.fd);
	gnutls_handshake_set_timeout(s.session, 10000);
	gnutls_record_set_timeout(s.session, 10000);
	do
		g = gnutls_handshake(s.session);
	while (g < 0 && !gnutls_error_is_fatal(g));
	if (g < 0)
		goto out;
	gnutls_certificate_get_peers(s.session, &ncerts);
	f->client_certs = (int)ncerts;

	if (client_phone_recv(&s, &in) < 0)
		goto out;
	f->first_body = (int)in->body_case;
	if (in->body_case != CAPF__PHONE_MESSAGE__BODY_HELLO)
		goto out;
	snprintf(f->hello, sizeof(f->hello), "%s", in->hello->device_name);
	f->version = in->hello->version;
	snprintf(f->auth_string, sizeof(f->auth_string), "%s",
		 in->hello->auth_string ? in->hello->auth_string : "");
	for (size_t i = 0; i < in->hello->n_supported_keys && i < 8; i++)
		f->supported[f->nsupported++] = (int)in->hello->supported_keys[i];
	capf__phone_message__free_unpacked(in, NULL);
	in = NULL;
	if (f->mode == FAKE_NOTHING) {
		end.code = 1007;
		end.text = "nothing to do for this device";
		out.body_case = CAPF__PHONE_MESSAGE__BODY_END;
		out.end = &end;
		fake_send(&s, &out, 0);
		goto out;
	}
	if (f->mode == FAKE_DELETE || f->mode == FAKE_FETCH) {
		opreq.version = 2;
		opreq.op = f->mode == FAKE_DELETE ? CAPF__OPERATION__OP_DELETE
						  : CAPF__OPERATION__OP_FETCH;
		opreq.key_type = CAPF__KEY_TYPE__KEY_UNSPECIFIED;
		out.body_case = CAPF__PHONE_MESSAGE__BODY_OP_REQUEST;
		out.op_request = &opreq;
		if (fake_send(&s, &out, 0) < 0 || client_phone_recv(&s, &in) < 0)
			goto out;
		if (in->body_case == CAPF__PHONE_MESSAGE__BODY_DELETE_RESULT) {
			f->delete_code = in->delete_result->code;
		} else if (in->body_case == CAPF__PHONE_MESSAGE__BODY_FETCH_REPORT) {
			uint8_t *mic_der = NULL;
			size_t mic_len = 0;

			f->reported = (long)in->fetch_report->n_certificates;
			if (f->reported > 0 && pki_crt_der(mic_good.crt, &mic_der, &mic_len) == 0)
				f->reported_match =
					in->fetch_report->certificates[0].len == mic_len &&
					!memcmp(in->fetch_report->certificates[0].data, mic_der,
						mic_len);
			free(mic_der);
		}
		if (f->delete_code > 0) {
			err.code = 1024;
			err.text = "the phone did not delete its certificate";
			out.body_case = CAPF__PHONE_MESSAGE__BODY_ERROR;
			out.error = &err;
		} else {
			end.text = f->mode == FAKE_DELETE ? "certificate deleted" : "report recorded";
			out.body_case = CAPF__PHONE_MESSAGE__BODY_END;
			out.end = &end;
		}
		fake_send(&s, &out, 0);
		goto out;
	}

	opreq.version = 1;
	opreq.op = CAPF__OPERATION__OP_INSTALL;
	opreq.key_type = CAPF__KEY_TYPE__KEY_EC_P256;
	err.code = 1016;
	err.text = "try again later";
	if (f->mode == FAKE_RETRY) {
		out.body_case = CAPF__PHONE_MESSAGE__BODY_ERROR;
		out.error = &err;
		fake_send(&s, &out, 0);
		goto out;
	}
	if (f->mode == FAKE_UNEXPECTED) {
		out.body_case = CAPF__PHONE_MESSAGE__BODY_END;
		out.end = &end;
		fake_send(&s, &out, 0);
		goto out;
	}
	if (f->mode == FAKE_TWO_FRAMES) {
		uint8_t *a = NULL, *b = NULL, *both;
		size_t alen = 0, blen = 0;

		out.body_case = CAPF__PHONE_MESSAGE__BODY_OP_REQUEST;
		out.op_request = &opreq;
		phone_msg_pack(&out, &a, &alen);
		out.body_case = CAPF__PHONE_MESSAGE__BODY_ERROR;
		out.error = &err;
		phone_msg_pack(&out, &b, &blen);
		both = a && b ? malloc(alen + blen) : NULL;
		if (both) {
			memcpy(both, a, alen);
			memcpy(both + alen, b, blen);
			client_tls_send_raw(&s, both, alen + blen);
		}
		free(a);
		free(b);
		free(both);
		/* Drain what the phone sends until it closes. */
		while (client_phone_recv(&s, &in) == 0) {
			capf__phone_message__free_unpacked(in, NULL);
			in = NULL;
		}
		goto out;
	}
	out.body_case = CAPF__PHONE_MESSAGE__BODY_OP_REQUEST;
	out.op_request = &opreq;
	if (fake_send(&s, &out, f->mode == FAKE_SPLIT) < 0)
		goto out;

	if (client_phone_recv(&s, &in) < 0 || in->body_case != CAPF__PHONE_MESSAGE__BODY_CSR)
		goto out;
	if (ca_csr_parse(in->csr->csr.data, in->csr->csr.len, &csr) < 0 ||
	    pki_tls_binding(s.session, binding) < 0)
		goto out;
	f->csr_check = ca_csr_check(csr, binding, sizeof(binding), CAPF__KEY_TYPE__KEY_EC_P256);
	capf__phone_message__free_unpacked(in, NULL);
	in = NULL;
	if (f->csr_check < 0) {
		err.code = (uint32_t)-f->csr_check;
		err.text = "bad csr";
		out.body_case = CAPF__PHONE_MESSAGE__BODY_ERROR;
		out.error = &err;
		fake_send(&s, &out, 0);
		goto out;
	}
	if (ca_issue(test_ca, csr, f->mode == FAKE_WRONG_NAME ? "SEPOTHER" : f->hello,
		     time(NULL), &lsc) < 0)
		goto out;
	cd.certificate.data = lsc.der;
	cd.certificate.len = lsc.der_len;
	ca_cert_der(test_ca, (const uint8_t **)&chain.data, &chain.len);
	cd.n_chain = 1;
	cd.chain = &chain;
	out.body_case = CAPF__PHONE_MESSAGE__BODY_CERTIFICATE;
	out.certificate = &cd;
	if (fake_send(&s, &out, 0) < 0)
		goto out;

	if (client_phone_recv(&s, &in) < 0 || in->body_case != CAPF__PHONE_MESSAGE__BODY_STORE_ACK)
		goto out;
	f->ack = in->store_ack->code;
	if (f->ack == 0) {
		end.text = "stored";
		out.body_case = CAPF__PHONE_MESSAGE__BODY_END;
		out.end = &end;
		fake_send(&s, &out, 0);
	}
out:
	if (in)
		capf__phone_message__free_unpacked(in, NULL);
	ca_csr_free(csr);
	ca_lsc_deinit(&lsc);
	client_tls_close(&s);
	if (cred)
		gnutls_certificate_free_credentials(cred);
	return NULL;
}

static int fake_start(struct fake *f, enum fake_mode mode)
{
	memset(f, 0, sizeof(*f));
	f->mode = mode;
	f->lfd = tcp_listen(f->port);
	if (f->lfd < 0)
		return -1;
	return pthread_create(&f->th, NULL, fake_thread, f) == 0 ? 0 : -1;
}

static void fake_stop(struct fake *f)
{
	pthread_join(f->th, NULL);
	close(f->lfd);
}

static void enroll_opts(struct phone_enroll_opts *o, const struct fake *f, const char *name)
{
	memset(o, 0, sizeof(*o));
	o->host = "127.0.0.1";
	o->port = f->port;
	o->name = name;
	o->mic = &mic_good;
	o->ca_file = capf_ca_path;
	o->timeout_ms = 10000;
}

static void test_enroll_invalid(void)
{
	struct phone_enroll_opts o;
	struct phone_enroll_result r;
	struct fake f;

	memset(&f, 0, sizeof(f));
	memset(&r, 0, sizeof(r));
	snprintf(f.port, sizeof(f.port), "1");
	enroll_opts(&o, &f, "bad name");
	CU_ASSERT_EQUAL(phone_enroll(&o, &r), CAPF_EINVAL);
	CU_ASSERT_EQUAL(r.stage, PHONE_STAGE_CONNECT);
	enroll_opts(&o, &f, NULL);
	CU_ASSERT_EQUAL(phone_enroll(&o, &r), CAPF_EINVAL);
	enroll_opts(&o, &f, "SEP01");
	o.ca_file = NULL;
	CU_ASSERT_EQUAL(phone_enroll(&o, &r), CAPF_EINVAL);
	enroll_opts(&o, &f, "SEP01");
	o.ca_file = "/nonexistent/ca.pem";
	CU_ASSERT_EQUAL(phone_enroll(&o, &r), CAPF_EIO);
	CU_ASSERT(strstr(r.text, "/nonexistent/ca.pem") != NULL);
	phone_enroll_result_deinit(&r);
}

static void test_enroll_connect_errors(void)
{
	struct phone_enroll_opts o;
	struct phone_enroll_result r;
	struct fake f;
	int lfd;

	/* Nothing listens. */
	memset(&f, 0, sizeof(f));
	lfd = tcp_listen(f.port);
	CU_ASSERT_FATAL(lfd >= 0);
	close(lfd);
	memset(&r, 0, sizeof(r));
	enroll_opts(&o, &f, "SEP01");
	CU_ASSERT_EQUAL(phone_enroll(&o, &r), -ECONNREFUSED);
	CU_ASSERT_EQUAL(r.stage, PHONE_STAGE_CONNECT);
	CU_ASSERT_EQUAL(r.server_code, 0);
	CU_ASSERT(strstr(r.text, "cannot connect") != NULL);

	/* The server's certificate is not the CAPF CA the phone trusts. */
	CU_ASSERT_EQUAL_FATAL(fake_start(&f, FAKE_OK), 0);
	memset(&r, 0, sizeof(r));
	enroll_opts(&o, &f, "SEP01");
	o.ca_file = other_ca_path;
	CU_ASSERT_EQUAL(phone_enroll(&o, &r), CAPF_EUNTRUSTED);
	CU_ASSERT_EQUAL(r.stage, PHONE_STAGE_CONNECT);
	CU_ASSERT(strstr(r.text, "not trusted") != NULL);
	fake_stop(&f);
	CU_ASSERT_EQUAL(f.hello[0], '\0');
}

static void test_enroll_server_errors(void)
{
	struct phone_enroll_opts o;
	struct phone_enroll_result r;
	struct fake f;

	/* Error right after Hello: the negated code, and the server's text. */
	CU_ASSERT_EQUAL_FATAL(fake_start(&f, FAKE_RETRY), 0);
	memset(&r, 0, sizeof(r));
	enroll_opts(&o, &f, "SEP01");
	CU_ASSERT_EQUAL(phone_enroll(&o, &r), -1016);
	CU_ASSERT_EQUAL(r.server_code, 1016);
	CU_ASSERT_STRING_EQUAL(r.text, "try again later");
	CU_ASSERT_EQUAL(r.stage, PHONE_STAGE_SESSION);
	CU_ASSERT_PTR_NULL(r.lsc_der);
	fake_stop(&f);
	CU_ASSERT_STRING_EQUAL(f.hello, "SEP01");
	CU_ASSERT_EQUAL(f.client_certs, 1);

	/* Two frames in one record: the Error waits in the buffer. */
	CU_ASSERT_EQUAL_FATAL(fake_start(&f, FAKE_TWO_FRAMES), 0);
	memset(&r, 0, sizeof(r));
	enroll_opts(&o, &f, "SEP01");
	CU_ASSERT_EQUAL(phone_enroll(&o, &r), -1016);
	CU_ASSERT_EQUAL(r.server_code, 1016);
	fake_stop(&f);

	/* A binding to another value: the real CA check refuses it. */
	CU_ASSERT_EQUAL_FATAL(fake_start(&f, FAKE_OK), 0);
	memset(&r, 0, sizeof(r));
	enroll_opts(&o, &f, "SEP01");
	o.misbehave = PHONE_BAD_BINDING;
	CU_ASSERT_EQUAL(phone_enroll(&o, &r), CAPF_EBINDING);
	CU_ASSERT_EQUAL(r.server_code, 1013);
	fake_stop(&f);
	CU_ASSERT_EQUAL(f.csr_check, CAPF_EBINDING);

	/* A broken CSR signature. */
	CU_ASSERT_EQUAL_FATAL(fake_start(&f, FAKE_OK), 0);
	memset(&r, 0, sizeof(r));
	enroll_opts(&o, &f, "SEP01");
	o.misbehave = PHONE_BAD_CSR_SIGNATURE;
	CU_ASSERT_EQUAL(phone_enroll(&o, &r), CAPF_ECSRSIG);
	fake_stop(&f);
	CU_ASSERT_EQUAL(f.csr_check, CAPF_ECSRSIG);

	/* A CSR first: the server sees it as the first message. */
	CU_ASSERT_EQUAL_FATAL(fake_start(&f, FAKE_OK), 0);
	memset(&r, 0, sizeof(r));
	enroll_opts(&o, &f, "SEP01");
	o.misbehave = PHONE_OUT_OF_ORDER;
	CU_ASSERT(phone_enroll(&o, &r) < 0);
	fake_stop(&f);
	CU_ASSERT_EQUAL(f.first_body, CAPF__PHONE_MESSAGE__BODY_CSR);

	/* End instead of OperationRequest is a protocol violation. */
	CU_ASSERT_EQUAL_FATAL(fake_start(&f, FAKE_UNEXPECTED), 0);
	memset(&r, 0, sizeof(r));
	enroll_opts(&o, &f, "SEP01");
	CU_ASSERT_EQUAL(phone_enroll(&o, &r), CAPF_EPROTO);
	CU_ASSERT_EQUAL(r.server_code, 0);
	CU_ASSERT(strstr(r.text, "unexpected") != NULL);
	fake_stop(&f);
}

static void test_enroll_bad_certificate(void)
{
	struct phone_enroll_opts o;
	struct phone_enroll_result r;
	struct fake f;

	/* An LSC naming another device is refused, and the server told so. */
	CU_ASSERT_EQUAL_FATAL(fake_start(&f, FAKE_WRONG_NAME), 0);
	memset(&r, 0, sizeof(r));
	enroll_opts(&o, &f, "SEP01");
	CU_ASSERT_EQUAL(phone_enroll(&o, &r), CAPF_EREJECTED);
	CU_ASSERT(strstr(r.text, "SEPOTHER") != NULL);
	CU_ASSERT_PTR_NULL(r.lsc_der);
	CU_ASSERT_PTR_NULL(r.key);
	fake_stop(&f);
	CU_ASSERT_EQUAL(f.ack, -CAPF_EIDENTITY);
}

static void test_enroll_ok(void)
{
	struct phone_enroll_opts o;
	struct phone_enroll_result r;
	struct client_trust trust = { 0 };
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t d;
	char cn[80];
	size_t cn_len = sizeof(cn);
	struct fake f;

	CU_ASSERT_EQUAL_FATAL(client_trust_load(capf_ca_path, &trust), 0);
	CU_ASSERT_EQUAL_FATAL(fake_start(&f, FAKE_OK), 0);
	memset(&r, 0, sizeof(r));
	enroll_opts(&o, &f, "SEP001122334455");
	o.trust = &trust;
	o.ca_file = NULL;
	CU_ASSERT_EQUAL(phone_enroll(&o, &r), 0);
	CU_ASSERT_EQUAL(r.stage, PHONE_STAGE_DONE);
	CU_ASSERT(r.acked);
	CU_ASSERT_STRING_EQUAL(r.text, "stored");
	CU_ASSERT_EQUAL(r.key_type, CAPF__KEY_TYPE__KEY_EC_P256);
	CU_ASSERT_PTR_NOT_NULL(r.key);
	CU_ASSERT_EQUAL(r.serial_len, CA_SERIAL_LEN);
	CU_ASSERT(r.not_after > r.not_before);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r.lsc_der);
	CU_ASSERT_EQUAL(client_trust_verify(&trust, r.lsc_der, r.lsc_len), 1);
	d.data = r.lsc_der;
	d.size = (unsigned)r.lsc_len;
	CU_ASSERT_EQUAL_FATAL(gnutls_x509_crt_init(&crt), 0);
	CU_ASSERT_EQUAL(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER), 0);
	CU_ASSERT_EQUAL(gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn,
						      &cn_len), 0);
	CU_ASSERT_STRING_EQUAL(cn, "SEP001122334455");
	gnutls_x509_crt_deinit(crt);
	phone_enroll_result_deinit(&r);
	CU_ASSERT_PTR_NULL(r.lsc_der);
	CU_ASSERT_PTR_NULL(r.key);
	fake_stop(&f);
	CU_ASSERT_STRING_EQUAL(f.hello, "SEP001122334455");
	CU_ASSERT_EQUAL(f.csr_check, 0);
	CU_ASSERT_EQUAL(f.ack, 0);

	/* Frames split into one-byte records are reassembled. */
	CU_ASSERT_EQUAL_FATAL(fake_start(&f, FAKE_SPLIT), 0);
	memset(&r, 0, sizeof(r));
	enroll_opts(&o, &f, "SEP01");
	o.trust = &trust;
	CU_ASSERT_EQUAL(phone_enroll(&o, &r), 0);
	CU_ASSERT(r.acked);
	phone_enroll_result_deinit(&r);
	fake_stop(&f);

	/* --no-ack: certificate received and checked, never acknowledged. */
	CU_ASSERT_EQUAL_FATAL(fake_start(&f, FAKE_OK), 0);
	memset(&r, 0, sizeof(r));
	enroll_opts(&o, &f, "SEP01");
	o.trust = &trust;
	o.misbehave = PHONE_NO_ACK;
	CU_ASSERT_EQUAL(phone_enroll(&o, &r), 0);
	CU_ASSERT(!r.acked);
	CU_ASSERT_PTR_NOT_NULL(r.lsc_der);
	phone_enroll_result_deinit(&r);
	fake_stop(&f);
	CU_ASSERT_EQUAL(f.csr_check, 0);
	CU_ASSERT_EQUAL(f.ack, -1);

	/* --claim: the Hello carries the other name. */
	CU_ASSERT_EQUAL_FATAL(fake_start(&f, FAKE_RETRY), 0);
	memset(&r, 0, sizeof(r));
	enroll_opts(&o, &f, "SEPVICTIM");
	o.trust = &trust;
	CU_ASSERT_EQUAL(phone_enroll(&o, &r), -1016);
	fake_stop(&f);
	CU_ASSERT_STRING_EQUAL(f.hello, "SEPVICTIM");
	client_trust_deinit(&trust);
}

/* Version 2: what Hello carries, and the delete, fetch and "nothing to
 * do" exchanges as the phone runs them. */
static void test_enroll_version2(void)
{
	static const int keys[] = { CAPF__KEY_TYPE__KEY_EC_P384, CAPF__KEY_TYPE__KEY_RSA_2048 };
	struct phone_enroll_opts o;
	struct phone_enroll_result r;
	struct fake f;

	/* Nothing to do: End{1007} is a result, told apart from an Error. */
	CU_ASSERT_EQUAL_FATAL(fake_start(&f, FAKE_NOTHING), 0);
	memset(&r, 0, sizeof(r));
	enroll_opts(&o, &f, "SEP01");
	o.auth_string = "1234";
	o.supported_keys = keys;
	o.nsupported = 2;
	CU_ASSERT_EQUAL(phone_enroll(&o, &r), -1007);
	CU_ASSERT_EQUAL(r.server_code, 1007);
	CU_ASSERT(r.server_end);
	CU_ASSERT_EQUAL(r.op, CAPF__OPERATION__OP_NONE);
	fake_stop(&f);
	CU_ASSERT_EQUAL(f.version, 2);
	CU_ASSERT_STRING_EQUAL(f.auth_string, "1234");
	CU_ASSERT_EQUAL(f.nsupported, 2);
	CU_ASSERT_EQUAL(f.supported[0], CAPF__KEY_TYPE__KEY_EC_P384);
	CU_ASSERT_EQUAL(f.supported[1], CAPF__KEY_TYPE__KEY_RSA_2048);

	/* Version 1 sends neither the string nor the keys. */
	CU_ASSERT_EQUAL_FATAL(fake_start(&f, FAKE_RETRY), 0);
	memset(&r, 0, sizeof(r));
	enroll_opts(&o, &f, "SEP01");
	o.version = 1;
	o.auth_string = "1234";
	o.supported_keys = keys;
	o.nsupported = 2;
	CU_ASSERT_EQUAL(phone_enroll(&o, &r), -1016);
	CU_ASSERT(!r.server_end);
	fake_stop(&f);
	CU_ASSERT_EQUAL(f.version, 1);
	CU_ASSERT_STRING_EQUAL(f.auth_string, "");
	CU_ASSERT_EQUAL(f.nsupported, 0);

	/* Delete: DeleteResult{0}, End{0}. */
	CU_ASSERT_EQUAL_FATAL(fake_start(&f, FAKE_DELETE), 0);
	memset(&r, 0, sizeof(r));
	enroll_opts(&o, &f, "SEP01");
	CU_ASSERT_EQUAL(phone_enroll(&o, &r), 0);
	CU_ASSERT_EQUAL(r.op, CAPF__OPERATION__OP_DELETE);
	CU_ASSERT(r.deleted);
	CU_ASSERT_STRING_EQUAL(r.text, "certificate deleted");
	CU_ASSERT_PTR_NULL(r.lsc_der);
	fake_stop(&f);
	CU_ASSERT_EQUAL(f.delete_code, 0);

	/* A refused delete: DeleteResult{1}, and the server's Error 1024. */
	CU_ASSERT_EQUAL_FATAL(fake_start(&f, FAKE_DELETE), 0);
	memset(&r, 0, sizeof(r));
	enroll_opts(&o, &f, "SEP01");
	o.misbehave = PHONE_REFUSE_DELETE;
	CU_ASSERT_EQUAL(phone_enroll(&o, &r), -1024);
	CU_ASSERT(!r.deleted);
	fake_stop(&f);
	CU_ASSERT_EQUAL(f.delete_code, 1);

	/* Fetch: the MIC is reported (no LSC held). */
	CU_ASSERT_EQUAL_FATAL(fake_start(&f, FAKE_FETCH), 0);
	memset(&r, 0, sizeof(r));
	enroll_opts(&o, &f, "SEP01");
	CU_ASSERT_EQUAL(phone_enroll(&o, &r), 0);
	CU_ASSERT_EQUAL(r.op, CAPF__OPERATION__OP_FETCH);
	CU_ASSERT_EQUAL(r.reported, 1);
	fake_stop(&f);
	CU_ASSERT_EQUAL(f.reported, 1);
	CU_ASSERT(f.reported_match);

	/* A version 1 phone does not run a delete it cannot carry. */
	CU_ASSERT_EQUAL_FATAL(fake_start(&f, FAKE_DELETE), 0);
	memset(&r, 0, sizeof(r));
	enroll_opts(&o, &f, "SEP01");
	o.version = 1;
	CU_ASSERT_EQUAL(phone_enroll(&o, &r), CAPF_ENOTSUP);
	fake_stop(&f);
	CU_ASSERT_EQUAL(f.delete_code, -1);

	/* Too many supported keys is the caller's error. */
	memset(&r, 0, sizeof(r));
	enroll_opts(&o, &f, "SEP01");
	o.supported_keys = keys;
	o.nsupported = 17;
	CU_ASSERT_EQUAL(phone_enroll(&o, &r), CAPF_EINVAL);
}

/* ---- fixtures --------------------------------------------------------- */

static int pki_suite_init(void)
{
	struct ca_config cfg;
	char crt[PATH_MAX], key[PATH_MAX], cadir[PATH_MAX];

	if (pki_make_root("test mfg root", 30, &mfg_root) < 0 ||
	    pki_make_root("other root", 30, &other_root) < 0 ||
	    pki_make_mic(&mfg_root, "SEP01", 0, 30, &mic_good) < 0)
		return -1;
	snprintf(crt, sizeof(crt), "%s/mfg.pem", tmpdir);
	snprintf(key, sizeof(key), "%s/mfg.key", tmpdir);
	if (pki_write_pair(&mfg_root, crt, key) < 0)
		return -1;
	snprintf(other_ca_path, sizeof(other_ca_path), "%s/other.pem", tmpdir);
	snprintf(key, sizeof(key), "%s/other.key", tmpdir);
	if (pki_write_pair(&other_root, other_ca_path, key) < 0)
		return -1;
	snprintf(cadir, sizeof(cadir), "%s/ca", tmpdir);
	memset(&cfg, 0, sizeof(cfg));
	cfg.dir = cadir;
	cfg.mfg_roots = crt;
	if (ca_new(&test_ca, &cfg) < 0)
		return -1;
	snprintf(capf_ca_path, sizeof(capf_ca_path), "%s/ca/ca.pem", tmpdir);
	return 0;
}

static int pki_suite_clean(void)
{
	ca_free(test_ca);
	test_ca = NULL;
	pki_pair_deinit(&mic_good);
	pki_pair_deinit(&other_root);
	pki_pair_deinit(&mfg_root);
	return 0;
}


/* ---- transcripts ------------------------------------------------------ */

/* Parses text; 0 or the error, with err kept for the caller. */
static int parse_text(const char *text, struct transcript *t, char *err, size_t errlen)
{
	memset(t, 0, sizeof(*t));
	return transcript_parse(text, strlen(text), t, err, errlen);
}

#define HDR "{\"transcript\":1,\"kind\":\"session\",\"protocol\":\"native\",\"device\":\"SEP01\""

static void test_transcript_invalid(void)
{
	static const struct {
		const char *text;
		const char *why; /* what the error says, after "line N: " */
	} bad[] = {
		{ "{\"transcript\":1,\"kind\":\"msg\",\"i\":0}\n", "line 1: a record before any session header" },
		{ "{\"transcript\":2,\"kind\":\"session\"}\n", "line 1: a transcript version this program does not read" },
		{ "{\"kind\":\"session\"}\n", "line 1: no transcript version" },
		{ "[1]\n", "line 1: not a JSON object" },
		{ HDR ",\"x\":{}}\n", "line 1: nested values are not part of the format" },
		{ HDR ",\"device\":\"B\"}\n", "line 1: duplicate key" },
		{ HDR "} x\n", "line 1: bytes after the object" },
		{ "{\"transcript\":1,\"kind\":\"session\",\"protocol\":\"x\",\"device\":\"A\"}\n",
		  "line 1: protocol is neither native nor cisco" },
		{ HDR ",\"binding\":\"abc\"}\n", "line 1: bad binding" },
		{ HDR "}\n{\"transcript\":1,\"kind\":\"msg\",\"i\":1,\"t\":0,\"dir\":\"phone\",\"type\":\"Hello\",\"len\":0,\"payload\":\"\"}\n",
		  "line 2: message index out of sequence" },
		{ HDR "}\n{\"transcript\":1,\"kind\":\"msg\",\"i\":0,\"t\":0,\"dir\":\"up\",\"type\":\"Hello\",\"len\":0,\"payload\":\"\"}\n",
		  "line 2: dir is neither phone nor server" },
		{ HDR "}\n{\"transcript\":1,\"kind\":\"msg\",\"i\":0,\"t\":0,\"dir\":\"phone\",\"type\":\"Hello\",\"len\":2,\"payload\":\"00\"}\n",
		  "line 2: len is not the payload's length" },
		{ HDR "}\n{\"transcript\":1,\"kind\":\"msg\",\"i\":0,\"t\":0,\"dir\":\"phone\",\"type\":\"Hello\",\"len\":1,\"payload\":\"zz\"}\n",
		  "line 2: bad payload" },
		{ HDR "}\n{\"transcript\":1,\"kind\":\"msg\",\"i\":0,\"t\":2,\"dir\":\"phone\",\"type\":\"A\",\"len\":0,\"payload\":\"\"}\n"
		      "{\"transcript\":1,\"kind\":\"msg\",\"i\":1,\"t\":1,\"dir\":\"phone\",\"type\":\"A\",\"len\":0,\"payload\":\"\"}\n",
		  "line 3: time goes backwards" },
		{ HDR "}\n{\"transcript\":1,\"kind\":\"end\",\"t\":0,\"result\":0,\"server_code\":0}\n"
		      "{\"transcript\":1,\"kind\":\"msg\",\"i\":0,\"t\":0,\"dir\":\"phone\",\"type\":\"A\",\"len\":0,\"payload\":\"\"}\n",
		  "line 3: a message after the session's end" },
		{ HDR ",\"tool\":\"a\\u0000b\"}\n", "line 1: \\u0000 in a string" },
		{ HDR ",\"tool\":\"a\tb\"}\n", "line 1: control character in a string" },
		{ "{\"transcript\":1,\"kind\":\"session\",\"protocol\":\"native\",\"device\":\"SEP01\n", "line 1: unterminated string" },
	};
	struct transcript t;
	char err[160];

	for (size_t i = 0; i < NELEM(bad); i++) {
		CU_ASSERT_EQUAL(parse_text(bad[i].text, &t, err, sizeof(err)), CAPF_EBADMSG);
		if (strcmp(err, bad[i].why))
			fprintf(stderr, "case %zu: got \"%s\", want \"%s\"\n", i, err, bad[i].why);
		CU_ASSERT_STRING_EQUAL(err, bad[i].why);
		transcript_free(&t);
	}
	CU_ASSERT_EQUAL(transcript_load("/nonexistent/t.jsonl", &t, err, sizeof(err)), CAPF_EIO);
	transcript_free(&t);
}

static void test_transcript_parse(void)
{
	static const char text[] =
		"\n" HDR ",\"tool\":\"caf\\u00e9 \\\"x\\\"\",\"client_cert\":\"mic\",\"binding\":\"00ff\","
		"\"future_key\":[]}\n";
	static const char two[] =
		HDR "}\n"
		"{\"transcript\":1,\"kind\":\"msg\",\"i\":0,\"t\":0.5,\"dir\":\"phone\",\"type\":\"raw\",\"len\":2,\"payload\":\"0aFF\"}\n"
		"{\"transcript\":1,\"kind\":\"end\",\"t\":1e0,\"result\":-1007,\"server_code\":1007,\"text\":\"x\"}\n"
		"\r\n" HDR ",\"protocol\":\"cisco\"}";
	struct transcript t;
	char err[160];

	/* Unknown keys are skipped only when flat: arrays are refused. */
	CU_ASSERT_EQUAL(parse_text(text, &t, err, sizeof(err)), CAPF_EBADMSG);
	transcript_free(&t);
	CU_ASSERT_EQUAL(parse_text(HDR ",\"tool\":\"caf\\u00e9 \\\"x\\\"\",\"binding\":\"00ff\",\"future\":true}",
				   &t, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL_FATAL(t.n, 1);
	CU_ASSERT_STRING_EQUAL(t.sessions[0].tool, "caf\xc3\xa9 \"x\"");
	CU_ASSERT_EQUAL(t.sessions[0].binding_len, 2);
	CU_ASSERT_EQUAL(t.sessions[0].binding[1], 0xff);
	CU_ASSERT(!t.sessions[0].ended);
	transcript_free(&t);

	/* Duplicate keys are refused, even a protocol given twice. */
	CU_ASSERT_EQUAL(parse_text(two, &t, err, sizeof(err)), CAPF_EBADMSG);
	CU_ASSERT_STRING_EQUAL(err, "line 5: duplicate key");
	transcript_free(&t);
	/* The same without the last line: a session, blank lines skipped. */
	memset(&t, 0, sizeof(t));
	CU_ASSERT_EQUAL_FATAL(transcript_parse(two, strlen(two) - strlen(HDR ",\"protocol\":\"cisco\"}"),
					       &t, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL_FATAL(t.n, 1);
	CU_ASSERT_EQUAL_FATAL(t.sessions[0].nmsgs, 1);
	CU_ASSERT_STRING_EQUAL(t.sessions[0].msgs[0].type, "raw");
	CU_ASSERT_EQUAL(t.sessions[0].msgs[0].len, 2);
	CU_ASSERT_EQUAL(t.sessions[0].msgs[0].payload[1], 0xff);
	CU_ASSERT(t.sessions[0].msgs[0].t == 0.5);
	CU_ASSERT(t.sessions[0].ended);
	CU_ASSERT_EQUAL(t.sessions[0].result, -1007);
	CU_ASSERT_EQUAL(t.sessions[0].server_code, 1007);
	transcript_free(&t);
}

static void test_transcript_write_read(void)
{
	struct phone_enroll_opts o;
	struct phone_enroll_result r;
	struct client_trust trust = { 0 };
	struct transcript t = { NULL, 0 };
	struct transcript_writer *w = NULL;
	const struct transcript_session *s;
	static const char *const types[] = { "Hello", "OperationRequest", "CsrSubmit",
					      "CertificateDelivery", "StoreAck", "End" };
	char path[PATH_MAX], err[160];
	struct fake f;

	snprintf(path, sizeof(path), "%s/t.jsonl", tmpdir);
	CU_ASSERT_EQUAL(transcript_writer_open("/nonexistent/dir/t.jsonl", &w), CAPF_ENOENT);
	CU_ASSERT_PTR_NULL(w);
	CU_ASSERT_EQUAL(transcript_writer_close(NULL), 0);
	/* Without a writer, nothing is written and nothing fails. */
	transcript_message(NULL, TRANSCRIPT_PHONE, "Hello", NULL, 0);
	transcript_end(NULL, 0, 0, "");

	CU_ASSERT_EQUAL_FATAL(client_trust_load(capf_ca_path, &trust), 0);
	CU_ASSERT_EQUAL_FATAL(transcript_writer_open(path, &w), 0);
	/* A message before any session is not written. */
	transcript_message(w, TRANSCRIPT_PHONE, "Hello", (const uint8_t *)"x", 1);
	for (int round = 0; round < 2; round++) {
		CU_ASSERT_EQUAL_FATAL(fake_start(&f, FAKE_OK), 0);
		memset(&r, 0, sizeof(r));
		enroll_opts(&o, &f, "SEP001122334455");
		o.trust = &trust;
		o.rec = w;
		CU_ASSERT_EQUAL(phone_enroll(&o, &r), 0);
		phone_enroll_result_deinit(&r);
		fake_stop(&f);
	}
	CU_ASSERT_EQUAL(transcript_writer_close(w), 0);

	CU_ASSERT_EQUAL_FATAL(transcript_load(path, &t, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL_FATAL(t.n, 2);
	for (size_t k = 0; k < 2; k++) {
		s = &t.sessions[k];
		CU_ASSERT_STRING_EQUAL(s->protocol, "native");
		CU_ASSERT_STRING_EQUAL(s->device, "SEP001122334455");
		CU_ASSERT_STRING_EQUAL(s->tool, "capf-phone enroll");
		CU_ASSERT_STRING_EQUAL(s->client_cert, "mic");
		CU_ASSERT_EQUAL(strlen(s->client_cert_sha256), 64);
		CU_ASSERT_EQUAL(strlen(s->server_cert_sha256), 64);
		CU_ASSERT_EQUAL(s->binding_len, CLIENT_BINDING_LEN);
		CU_ASSERT(s->tls_version[0] && s->tls_cipher[0] && s->tls_group[0]);
		CU_ASSERT_EQUAL_FATAL(s->nmsgs, NELEM(types));
		for (size_t i = 0; i < NELEM(types); i++) {
			Capf__PhoneMessage *m = NULL;

			CU_ASSERT_STRING_EQUAL(s->msgs[i].type, types[i]);
			CU_ASSERT_EQUAL(s->msgs[i].dir, i % 2 ? TRANSCRIPT_SERVER : TRANSCRIPT_PHONE);
			/* Payloads are whole messages, without the frame header. */
			CU_ASSERT_EQUAL(phone_msg_unpack(s->msgs[i].payload, s->msgs[i].len, &m), 0);
			if (m)
				capf__phone_message__free_unpacked(m, NULL);
		}
		CU_ASSERT(s->ended);
		CU_ASSERT_EQUAL(s->result, 0);
		CU_ASSERT_STRING_EQUAL(s->end_text, "stored");
	}
	/* Each session has its own channel binding. */
	CU_ASSERT(memcmp(t.sessions[0].binding, t.sessions[1].binding, CLIENT_BINDING_LEN) != 0);
	transcript_free(&t);
	unlink(path);
	client_trust_deinit(&trust);
}

struct test_def {
	const char *name;
	void (*fn)(void);
};

struct suite_def {
	const char *name;
	int (*init)(void);
	int (*clean)(void);
	const struct test_def *tests;
	size_t n;
};

static const struct test_def output_tests[] = {
	{ "json invalid utf-8", test_json_invalid_utf8 },
	{ "json escapes", test_json_escapes },
	{ "csv field", test_csv_field },
	{ "where: invalid", test_where_invalid },
	{ "nearest word", test_nearest },
	{ "bulk files: invalid", test_bulk_invalid },
	{ "bulk files: vectors", test_bulk_vectors },
	{ "where: vectors", test_where_vectors },
	{ "parse date invalid", test_parse_date_invalid },
	{ "parse date valid", test_parse_date_valid },
	{ "time iso", test_time_iso },
	{ "hex", test_hex },
};

static const struct test_def admin_tests[] = {
	{ "open invalid", test_admin_open_invalid },
	{ "errors", test_admin_errors },
	{ "calls", test_admin_calls },
};

static const struct test_def phone_tests[] = {
	{ "trust invalid", test_trust_invalid },
	{ "trust verify", test_trust_verify },
	{ "tcp connect", test_tcp_connect },
	{ "enroll invalid", test_enroll_invalid },
	{ "enroll connect errors", test_enroll_connect_errors },
	{ "enroll server errors", test_enroll_server_errors },
	{ "enroll bad certificate", test_enroll_bad_certificate },
	{ "enroll ok", test_enroll_ok },
	{ "enroll version 2", test_enroll_version2 },
};

static const struct test_def transcript_tests[] = {
	{ "invalid", test_transcript_invalid },
	{ "parse", test_transcript_parse },
	{ "write and read", test_transcript_write_read },
};

static const struct suite_def suites[] = {
	{ "output", NULL, NULL, output_tests, NELEM(output_tests) },
	{ "admin", NULL, NULL, admin_tests, NELEM(admin_tests) },
	{ "phone", pki_suite_init, pki_suite_clean, phone_tests, NELEM(phone_tests) },
	{ "transcript", pki_suite_init, pki_suite_clean, transcript_tests,
	  NELEM(transcript_tests) },
};

int main(void)
{
	char cmd[PATH_MAX + 16];
	unsigned failures;
	size_t i, j;
	int rc = 1;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/capf-test-tools-XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	if (CU_initialize_registry() != CUE_SUCCESS)
		goto out;
	for (i = 0; i < NELEM(suites); i++) {
		CU_pSuite s = CU_add_suite(suites[i].name, suites[i].init, suites[i].clean);

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
	/* A suite whose set-up failed ran no test: that is a failure too. */
	if (CU_get_number_of_suites_failed() > 0 && failures == 0)
		failures = 1;
	rc = failures > 255 ? 255 : (int)failures;
fail:
	CU_cleanup_registry();
out:
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		rc = rc ? rc : 1;
	return rc;
}
