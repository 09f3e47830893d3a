/*
 * Fuzz target: certificates that reach ca/ from outside. The same bytes
 * go to each parser that takes them:
 *   - ca_lsc_verify(): the DER certificate a phone presents as its LSC,
 *     with the device name and without;
 *   - ca_cert_subject(): a stored certificate shown in reports;
 *   - ca_import(): the enterprise-signed CAPF certificate, checked against
 *     the pending request;
 *   - ca_trust_add(): a PEM or DER file an administrator imports as the
 *     enterprise chain and as manufacturer roots.
 *
 * The CA is the same for every input, and known: its directory (made with
 * mkdtemp() under $TMPDIR, removed at exit) is written from the fixture
 * of ca_certs_fixture.h, which seeds_ca_certs.sh made with openssl along
 * with the seeds: a CAPF CA in the first layout (ca.pem, ca.key), a
 * pending request (pending/key.pem, pending/csr.pem) and an enterprise
 * chain in the chain store (a root, an intermediate of path length 0, a
 * CA it issued all the same, an expired intermediate); one serial is
 * revoked. So the seeds, LSCs of that CA and CAPF certificates that chain
 * signed for the pending key, reach the identity, validity, chain and key
 * usage checks and a successful import instead of stopping at "unknown
 * issuer". The clock is the fixture's, so an input means the same
 * whenever it runs.
 *
 * Nothing an input does is left for the next one: the trust entries it
 * added are removed, and after an import that succeeded (the CA switched)
 * the CA is built again from the fixture. The target then checks that
 * the trust stores hold their fixed content, the current CA is the
 * fixture's and the pending key is in place, and aborts if not; it also
 * checks that manufacturer roots an input added read back the same from
 * the directory (ca_trust_reload()).
 */
#include "config.h"

#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca/ca.h"
#include "tests/fuzz/ca_certs_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ca *ca;
static char top[PATH_MAX];   /* the mkdtemp() directory */
static char cadir[PATH_MAX]; /* the CA directory in it */
static char pending_key[PATH_MAX];
/* What every input must find, as the fixture leaves it. */
static struct ca_trust_entry *fixed;
static size_t n_fixed;
static uint8_t *ca_der;
static size_t ca_der_len;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void cleanup(void)
{
	ca_free(ca);
	ca = NULL;
	free(fixed);
	free(ca_der);
	if (top[0] != '\0')
		rm_tree(top);
}

/* dir/name into buf; -1 if it does not fit. */
static int join(char *buf, size_t size, const char *dir, const char *name)
{
	int n = snprintf(buf, size, "%s/%s", dir, name);

	return n >= 0 && (size_t)n < size ? 0 : -1;
}

static int put(const char *name, const char *text, mode_t mode)
{
	char path[PATH_MAX];

	if (join(path, sizeof(path), cadir, name) < 0)
		return -1;
	return ca_file_write_atomic(path, text, strlen(text), mode);
}

/*
 * Writes the CA directory from the fixture and opens it: ca_new() adopts
 * ca.pem and ca.key as its first CA; the enterprise chain is added to the
 * chain store and the serial of lsc-revoked.der revoked, as an
 * administrator would have done.
 */
static int ca_build(void)
{
	char pending[PATH_MAX];
	struct ca_config cfg = {0};

	rm_tree(cadir);
	if (join(pending, sizeof(pending), cadir, "pending") < 0 || mkdir(cadir, 0700) < 0 ||
	    mkdir(pending, 0700) < 0 || put("ca.pem", fixture_ca_pem, 0644) < 0 ||
	    put("ca.key", fixture_ca_key, 0600) < 0 ||
	    put("pending/key.pem", fixture_pending_key, 0600) < 0 ||
	    put("pending/csr.pem", fixture_pending_csr, 0644) < 0)
		return -1;
	cfg.dir = cadir;
	if (ca_new(&ca, &cfg) < 0) {
		fprintf(stderr, "fuzz_ca_certs: the fixture does not load: %s\n", ca_last_error());
		return -1;
	}
	if (ca_trust_add(ca, CA_TRUST_CHAIN, (const uint8_t *)fixture_chain_pem,
			 strlen(fixture_chain_pem), NULL) < 0 ||
	    ca_revoked_add(ca, fixture_revoked_serial, sizeof(fixture_revoked_serial), FIXTURE_NOW,
			   CA_REASON_KEY_COMPROMISE, NULL, 0) < 0) {
		fprintf(stderr, "fuzz_ca_certs: cannot set the fixture up: %s\n", ca_last_error());
		return -1;
	}
	return 0;
}

static int setup(void)
{
	const char *tmp = getenv("TMPDIR");
	const uint8_t *der;

	if (tmp == NULL || tmp[0] == '\0')
		tmp = "/tmp";
	if (join(top, sizeof(top), tmp, "capf-fuzz-ca.XXXXXX") < 0 || mkdtemp(top) == NULL) {
		top[0] = '\0';
		return -1;
	}
	atexit(cleanup);
	if (join(cadir, sizeof(cadir), top, "ca") < 0 ||
	    join(pending_key, sizeof(pending_key), cadir, "pending/key.pem") < 0)
		return -1;
	/* The fixed content: the chain the fixture adds, no manufacturer
	 * root. */
	if (ca_build() < 0 || ca_trust_list(ca, 0, &fixed, &n_fixed) < 0 || n_fixed != 4)
		return -1;
	ca_cert_der(ca, &der, &ca_der_len);
	ca_der = malloc(ca_der_len);
	if (ca_der == NULL)
		return -1;
	memcpy(ca_der, der, ca_der_len);
	return 0;
}

/* 1 if list holds an entry of kind with fingerprint fpr. */
static int listed(const struct ca_trust_entry *list, size_t n, int kind, const char *fpr)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (list[i].kind == kind && strcmp(list[i].fingerprint, fpr) == 0)
			return 1;
	return 0;
}

/* 1 if the two lists hold the same certificates (their order among equal
 * subjects is not defined). */
static int same_entries(const struct ca_trust_entry *a, size_t na, const struct ca_trust_entry *b,
			size_t nb)
{
	size_t i;

	if (na != nb)
		return 0;
	for (i = 0; i < na; i++)
		if (!listed(b, nb, a[i].kind, a[i].fingerprint))
			return 0;
	return 1;
}

/* Removes every trust entry that is not the fixture's. */
static void trust_restore(void)
{
	struct ca_trust_entry *list = NULL;
	size_t n = 0, i;

	if (ca_trust_list(ca, 0, &list, &n) < 0)
		abort();
	for (i = 0; i < n; i++)
		if (!listed(fixed, n_fixed, list[i].kind, list[i].fingerprint) &&
		    ca_trust_remove(ca, list[i].kind, list[i].fingerprint) < 0) {
			fprintf(stderr, "fuzz_ca_certs: cannot remove %s: %s\n",
				list[i].fingerprint, ca_last_error());
			abort();
		}
	free(list);
}

/* Manufacturer roots just added are in the directory as in memory. */
static void check_mfg_reload(void)
{
	struct ca_trust_entry *before = NULL, *after = NULL;
	size_t nb = 0, na = 0;

	if (ca_trust_list(ca, CA_TRUST_MFG, &before, &nb) < 0 ||
	    ca_trust_reload(ca, NULL, NULL) < 0 ||
	    ca_trust_list(ca, CA_TRUST_MFG, &after, &na) < 0 ||
	    !same_entries(before, nb, after, na)) {
		fprintf(stderr, "fuzz_ca_certs: the manufacturer roots read back differ: %s\n",
			ca_last_error());
		abort();
	}
	free(before);
	free(after);
}

/* The CA is as the fixture made it. */
static void check_fixture(void)
{
	struct ca_trust_entry *list = NULL;
	const uint8_t *der;
	size_t n = 0, len;

	if (ca_trust_list(ca, 0, &list, &n) < 0 || !same_entries(list, n, fixed, n_fixed)) {
		fprintf(stderr, "fuzz_ca_certs: the trust stores kept %zu entries, not %zu\n", n,
			n_fixed);
		abort();
	}
	free(list);
	ca_cert_der(ca, &der, &len);
	if (len != ca_der_len || memcmp(der, ca_der, len) != 0) {
		fprintf(stderr, "fuzz_ca_certs: the current CA is not the fixture's\n");
		abort();
	}
	if (access(pending_key, F_OK) < 0) {
		fprintf(stderr, "fuzz_ca_certs: the pending key is gone\n");
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	const uint8_t *certs[1] = {data};
	size_t lens[1] = {size};
	char subject[256];
	size_t added = 0;

	if (!ready) {
		if (setup() < 0)
			abort();
		ready = 1;
	}
	(void)ca_lsc_verify(ca, certs, lens, 1, "SEP001122334455", FIXTURE_NOW);
	(void)ca_lsc_verify(ca, certs, lens, 1, NULL, FIXTURE_NOW);
	(void)ca_cert_subject(data, size, subject, sizeof(subject));
	if (ca_import(ca, data, size, 0, FIXTURE_NOW) == 0) {
		/* The imported CA is current now, and the pending request
		 * is gone: the next input needs the fixture's CA again. */
		ca_free(ca);
		ca = NULL;
		if (ca_build() < 0)
			abort();
	}
	(void)ca_trust_add(ca, CA_TRUST_CHAIN, data, size, NULL);
	if (ca_trust_add(ca, CA_TRUST_MFG, data, size, &added) == 0 && added > 0)
		check_mfg_reload();
	trust_restore();
	check_fixture();
	return 0;
}
