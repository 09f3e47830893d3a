/*
 * capfctl's cert show and cert revoke (cert list is in capfctl_query.c):
 * one certificate record, and its revocation.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/ca.h"
#include "tools/capfctl.h"

enum {
	OPT_REASON = OPT_FIRST_FREE + 40,
};

/* A serial number in hex (colons and a 0x prefix allowed). */
static int parse_serial(const char *s, uint8_t *out, size_t cap, size_t *len)
{
	char clean[2 * CA_SERIAL_MAX + 1];
	size_t n = 0;
	int ret;

	if (strncmp(s, "0x", 2) == 0 || strncmp(s, "0X", 2) == 0)
		s += 2;
	for (; *s != '\0'; s++) {
		if (*s == ':')
			continue;
		if (n + 1 >= sizeof(clean))
			return -1;
		clean[n++] = *s;
	}
	clean[n] = '\0';
	if (n == 0 || n % 2 != 0)
		return -1;
	ret = hex_decode(clean, out, cap);
	if (ret <= 0)
		return -1;
	*len = (size_t)ret;
	return 0;
}

/* ---- cert --------------------------------------------------------------- */

static void usage_cert(FILE *f)
{
	fprintf(f, "Usage: " PROG " cert COMMAND ...\n"
		   "\n"
		   "Commands:\n"
		   "  show SERIAL                    one certificate record\n"
		   "  revoke SERIAL --reason REASON  revoke an LSC: it no longer authenticates\n"
		   "                                 and the CRL lists it\n"
		   "  list [--device NAME] [--state S[,S]] [--expires-before DATE]\n"
		   "       [--expires-within N]      certificate records, by serial\n"
		   "\n"
		   "SERIAL is hex ('" PROG " device show' prints it). REASON is one of\n"
		   "unspecified, keyCompromise, cACompromise, affiliationChanged, superseded,\n"
		   "cessationOfOperation, privilegeWithdrawn.\n");
}

/* Prints one certificate record in the chosen format. */
static void print_cert(struct ctl *c, const Capf__Certificate *crt)
{
	char serial[2 * 64 + 1] = "?", subject[512] = "", b1[32], b2[32], b3[32], b4[32];
	bool revoked = crt->state == CAPF__CERT_STATE__CERT_REVOKED;

	if (crt->serial.len <= 64)
		hex_encode(crt->serial.data, crt->serial.len, serial);
	if (crt->der.len > 0)
		ca_cert_subject(crt->der.data, crt->der.len, subject, sizeof(subject));
	switch (c->fmt) {
	case FMT_JSON:
		fputc('{', stdout);
		ctl_json_kv(stdout, "serial", serial, true);
		ctl_json_kv(stdout, "device", crt->device, true);
		ctl_json_kv(stdout, "subject", subject[0] ? subject : NULL, true);
		ctl_json_kv(stdout, "state", cert_state_name(crt->state), true);
		ctl_json_time(stdout, "not_before", crt->not_before, true);
		ctl_json_time(stdout, "not_after", crt->not_after, true);
		ctl_json_time(stdout, "issued_at", crt->issued_at, true);
		ctl_json_time(stdout, "revoked_at", revoked ? crt->revoked_at : 0, true);
		ctl_json_kv(stdout, "reason", revoked ? ca_reason_name((int)crt->revocation_reason) : NULL,
			 false);
		fputs("}\n", stdout);
		break;
	case FMT_CSV: {
		const char *f[9] = { serial,
				     crt->device,
				     subject,
				     cert_state_name(crt->state),
				     ctl_when(crt->not_before, b1, sizeof(b1)),
				     ctl_when(crt->not_after, b2, sizeof(b2)),
				     ctl_when(crt->issued_at, b3, sizeof(b3)),
				     revoked ? ctl_when(crt->revoked_at, b4, sizeof(b4)) : "",
				     revoked ? ca_reason_name((int)crt->revocation_reason) : "" };

		fputs("serial,device,subject,state,not_before,not_after,issued_at,revoked_at,"
		      "reason\n",
		      stdout);
		ctl_csv_row(stdout, f, 9);
		break;
	}
	default:
		printf("serial:      %s\n", serial);
		printf("device:      %s\n", crt->device);
		printf("subject:     %s\n", subject[0] ? subject : "-");
		printf("state:       %s\n", cert_state_name(crt->state));
		printf("not before:  %s\n", ctl_when(crt->not_before, b1, sizeof(b1)));
		printf("not after:   %s\n", ctl_when(crt->not_after, b2, sizeof(b2)));
		printf("issued:      %s\n", ctl_when(crt->issued_at, b3, sizeof(b3)));
		if (revoked) {
			printf("revoked:     %s\n", ctl_when(crt->revoked_at, b4, sizeof(b4)));
			printf("reason:      %s\n", ca_reason_name((int)crt->revocation_reason));
		}
		break;
	}
}

static int cmd_cert_show(struct ctl *c, int argc, char **argv)
{
	Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
	Capf__CertShowRequest q = CAPF__CERT_SHOW_REQUEST__INIT;
	Capf__AdminResponse *resp = NULL;
	uint8_t serial[CA_SERIAL_MAX];
	size_t len = 0;
	bool help;
	int ret;

	ret = simple_opts(c, argc, argv, "cert show", usage_cert, &help);
	if (ret || help)
		return ret;
	if (optind + 1 != argc)
		return usage_error("cert show", "give exactly one SERIAL");
	if (parse_serial(argv[optind], serial, sizeof(serial), &len) < 0)
		return usage_error("cert show", "'%s' is not a serial number in hex", argv[optind]);
	q.serial.data = serial;
	q.serial.len = len;
	req.body_case = CAPF__ADMIN_REQUEST__BODY_CERT_SHOW;
	req.cert_show = &q;
	ret = ctl_call_ok(c, &req, &resp, NULL);
	if (ret)
		return ret;
	if (resp->n_certificates == 0) {
		fprintf(stderr, PROG ": the server sent no certificate\n");
		ret = CTL_EXIT_REFUSED;
	} else {
		print_cert(c, resp->certificates[0]);
	}
	capf__admin_response__free_unpacked(resp, NULL);
	return ret;
}

static int cmd_cert_revoke(struct ctl *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "reason", required_argument, NULL, OPT_REASON },
		CTL_FORMAT_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	Capf__AdminRequest req = CAPF__ADMIN_REQUEST__INIT;
	Capf__CertRevokeRequest q = CAPF__CERT_REVOKE_REQUEST__INIT;
	Capf__AdminResponse *resp = NULL;
	uint8_t serial[CA_SERIAL_MAX];
	size_t len = 0;
	int reason = -1, opt, ret;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_REASON:
			if (ca_reason_from_name(optarg, &reason) < 0)
				return usage_error("cert revoke", "unknown reason '%s'", optarg);
			break;
		case OPT_JSON:
		case OPT_CSV:
			if (ctl_set_format(c, opt))
				return CTL_EXIT_USAGE;
			break;
		case 'h':
			usage_cert(stdout);
			return CTL_EXIT_OK;
		default:
			return ctl_bad_option("cert revoke", argv, longopts);
		}
	}
	if (optind + 1 != argc)
		return usage_error("cert revoke", "give exactly one SERIAL");
	if (reason < 0)
		return usage_error("cert revoke", "give --reason (keyCompromise, superseded, ...)");
	if (parse_serial(argv[optind], serial, sizeof(serial), &len) < 0)
		return usage_error("cert revoke", "'%s' is not a serial number in hex",
				   argv[optind]);
	q.serial.data = serial;
	q.serial.len = len;
	q.reason = (uint32_t)reason;
	req.body_case = CAPF__ADMIN_REQUEST__BODY_CERT_REVOKE;
	req.cert_revoke = &q;
	ret = ctl_call_ok(c, &req, &resp, NULL);
	if (ret)
		return ret;
	if (c->fmt == FMT_TABLE)
		printf("revoked %s (%s)\n", argv[optind], ca_reason_name(reason));
	else if (resp->n_certificates > 0)
		print_cert(c, resp->certificates[0]);
	capf__admin_response__free_unpacked(resp, NULL);
	return CTL_EXIT_OK;
}

int ctl_cmd_cert(struct ctl *c, int argc, char **argv)
{
	static const struct ctl_subcommand subs[] = {
		{ "show", cmd_cert_show },
		{ "revoke", cmd_cert_revoke },
		{ "list", ctl_cmd_cert_list },
		{ NULL, NULL },
	};

	return ctl_dispatch(c, argc, argv, "cert", usage_cert, subs);
}

