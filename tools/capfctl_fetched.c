/*
 * capfctl device show: the certificates a phone reported on a fetch, as
 * they are kept on its record (untrusted bytes: one that does not parse
 * is shown as such).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <gnutls/x509.h>

#include "proto/proto.h"
#include "tools/capfctl.h"
#include "tools/client.h"

/* What device show says of a certificate a phone reported (fetch). */
struct fetched_view {
	bool parsed;
	char subject[512], issuer[512];
	char fingerprint[65];
	char not_after[32];
};

/* Parses a reported certificate with GnuTLS; a phone may report anything,
 * so one that does not parse is shown as such, not as an error. */
static void fetched_view_init(struct fetched_view *fv, const ProtobufCBinaryData *der)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t d = { der->data, (unsigned)der->len };
	gnutls_datum_t dn = { NULL, 0 };
	uint8_t fpr[32];
	size_t fpr_len = sizeof(fpr);

	memset(fv, 0, sizeof(*fv));
	if (gnutls_x509_crt_init(&crt) < 0)
		return;
	if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) < 0)
		goto out;
	if (gnutls_x509_crt_get_dn3(crt, &dn, 0) >= 0) {
		snprintf(fv->subject, sizeof(fv->subject), "%s", (const char *)dn.data);
		gnutls_free(dn.data);
		dn.data = NULL;
	}
	if (gnutls_x509_crt_get_issuer_dn3(crt, &dn, 0) >= 0) {
		snprintf(fv->issuer, sizeof(fv->issuer), "%s", (const char *)dn.data);
		gnutls_free(dn.data);
		dn.data = NULL;
	}
	if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fpr, &fpr_len) >= 0 &&
	    fpr_len == sizeof(fpr))
		hex_encode(fpr, fpr_len, fv->fingerprint);
	client_time_iso(gnutls_x509_crt_get_expiration_time(crt), fv->not_after,
			sizeof(fv->not_after));
	fv->parsed = true;
out:
	gnutls_x509_crt_deinit(crt);
}

void ctl_json_device_fetched(FILE *f, const Capf__Device *d)
{
	char when[32];

	ctl_json_kv(f, "fetched_at",
		    d->fetched_at ? client_time_iso(d->fetched_at, when, sizeof(when)) : NULL, true);
	fputs("\"fetched\":[", f);
	for (size_t i = 0; i < d->n_fetched; i++) {
		struct fetched_view fv;

		fetched_view_init(&fv, &d->fetched[i]);
		if (i)
			fputc(',', f);
		fputc('{', f);
		fprintf(f, "\"parsed\":%s,", fv.parsed ? "true" : "false");
		ctl_json_kv(f, "subject", fv.parsed ? fv.subject : NULL, true);
		ctl_json_kv(f, "issuer", fv.parsed ? fv.issuer : NULL, true);
		ctl_json_kv(f, "fingerprint", fv.parsed ? fv.fingerprint : NULL, true);
		ctl_json_kv(f, "not_after", fv.parsed ? fv.not_after : NULL, true);
		fprintf(f, "\"size\":%zu}", d->fetched[i].len);
	}
	fputs("],", f);
}

void ctl_show_fetched_table(const Capf__Device *d)
{
	char when[32];

	printf("fetched:        %zu certificates%s%s\n", d->n_fetched,
	       d->fetched_at ? " at " : "",
	       d->fetched_at ? client_time_iso(d->fetched_at, when, sizeof(when)) : "");
	for (size_t i = 0; i < d->n_fetched; i++) {
		struct fetched_view fv;

		fetched_view_init(&fv, &d->fetched[i]);
		if (!fv.parsed) {
			printf("  [%zu] unparseable (%zu bytes)\n", i + 1, d->fetched[i].len);
			continue;
		}
		printf("  [%zu] subject:     %s\n", i + 1, fv.subject);
		printf("      issuer:      %s\n", fv.issuer);
		printf("      fingerprint: %s\n", fv.fingerprint);
		printf("      not after:   %s\n", fv.not_after);
	}
}
