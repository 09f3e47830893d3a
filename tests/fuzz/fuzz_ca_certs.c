/*
 * Fuzz target: certificates that reach ca/ from outside. The same bytes
 * go to each parser that takes them:
 *   - ca_lsc_verify(): the DER certificate a phone presents as its LSC;
 *   - ca_trust_add(): a PEM or DER file an administrator imports as
 *     manufacturer roots or as the enterprise chain;
 *   - ca_import(): the enterprise-signed CAPF certificate, checked against
 *     a pending request (made once, so the chain, key and CA checks run);
 *   - ca_cert_subject(): a stored certificate shown in reports.
 * The CA lives in a temporary directory that is removed at exit.
 */
#include "config.h"

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ca/ca.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ca *ca;
static char dir[] = "/tmp/capf-fuzz-ca.XXXXXX";

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void cleanup(void)
{
	ca_free(ca);
	ca = NULL;
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int setup(void)
{
	struct ca_config cfg = {0};
	char cadir[sizeof(dir) + 8];
	char *csr = NULL;

	if (mkdtemp(dir) == NULL)
		return -1;
	atexit(cleanup);
	snprintf(cadir, sizeof(cadir), "%s/ca", dir);
	cfg.dir = cadir;
	if (ca_new(&ca, &cfg) < 0)
		return -1;
	if (ca_csr(ca, NULL, "CN=fuzz", &csr) < 0)
		return -1;
	free(csr);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	const uint8_t *certs[1] = {data};
	size_t lens[1] = {size};
	char subject[256];
	time_t now = time(NULL);

	if (!ready) {
		if (setup() < 0)
			abort();
		ready = 1;
	}
	(void)ca_lsc_verify(ca, certs, lens, 1, "SEP001122334455", now);
	(void)ca_lsc_verify(ca, certs, lens, 1, NULL, now);
	(void)ca_cert_subject(data, size, subject, sizeof(subject));
	(void)ca_import(ca, data, size, 0, now);
	(void)ca_trust_add(ca, CA_TRUST_CHAIN, data, size, NULL);
	(void)ca_trust_add(ca, CA_TRUST_MFG, data, size, NULL);
	return 0;
}
