/*
 * Fuzz target: ca_mic_verify(), the decision on the certificate chain a
 * phone presents in its TLS handshake as its MIC. The manufacturer roots
 * are this file's own test roots (below: one made with capf-phone mkmic,
 * a second with openssl, under which [trust] mic_patterns lets MICs name
 * only SEP00AA* devices), so that the seeds, MICs they issued, reach the
 * signature check, the validity periods, the name patterns, the key
 * usage and the identity rule instead of stopping at "unknown issuer".
 *
 * Input: byte 0 chooses the device name (bit 0: "SEP001122334455", else
 * none; bit 1: the prefixed "SEP00112233AABB"; bit 4, before both:
 * "SEP00AA00000001") and the time (bits 2-3: a time inside the seeds'
 * validity, before it, after it, or now); byte 1
 * the number of certificates (1 + (byte & 3)); then each certificate as a
 * 2-byte big-endian length and its DER, the last one taking what remains.
 * The CA is made once, in a temporary directory removed at exit; the
 * verification changes nothing in it, so inputs do not see each other.
 */
#include "config.h"

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ca/ca.h"
#include "proto/errcode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* capf-phone mkmic --days 7300: valid 2026-12-01 to 2046-11-26. */
static const char mfg_root_pem[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBhzCCAS6gAwIBAgIQJ1XZg7jXP693ij2nlddV6zAKBggqhkjOPQQDAjAkMSIw\n"
	"IAYDVQQDExljYXBmIHRlc3QgbWFudWZhY3R1cmVyIENBMB4XDTI2MTIwMTIyNTcy\n"
	"NFoXDTQ2MTEyNjIyNTcyNFowJDEiMCAGA1UEAxMZY2FwZiB0ZXN0IG1hbnVmYWN0\n"
	"dXJlciBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABMeGV8i1aOsmftOYSjaG\n"
	"8JjlCdkefVnWa6EJxBF30tu5Rkz9PGV1MJBcq/krIa3DBOecAEOwbdURnID8tYcL\n"
	"TVajQjBAMB0GA1UdDgQWBBSBKNyRVpcLMz7jKMTJmQ3uoyV3hDAPBgNVHRMBAf8E\n"
	"BTADAQH/MA4GA1UdDwEB/wQEAwIBBjAKBggqhkjOPQQDAgNHADBEAiA6FdlBYddK\n"
	"yNP7q369WJKzfrhkQApqIn8YoYyb9oL60AIgR4KwFdxO7p3yfv4I4fPadyMP54qy\n"
	"4WRFwFsPE/WtLFQ=\n"
	"-----END CERTIFICATE-----\n"
	/* openssl, valid 2026-12-02 to 2046-11-27; its MICs are limited to
	 * SEP00AA* by mic_patterns below. */
	"-----BEGIN CERTIFICATE-----\n"
	"MIIB3zCCAYWgAwIBAgIUCOYEgF2IUjc/e9cToQw71x100FcwCgYIKoZIzj0EAwIw\n"
	"PTEVMBMGA1UECgwMU2Vjb25kIE1ha2VyMSQwIgYDVQQDDBtzZWNvbmQgdGVzdCBt\n"
	"YW51ZmFjdHVyZXIgQ0EwHhcNMjYxMjAyMDEyODAzWhcNNDYxMTI3MDEyODAzWjA9\n"
	"MRUwEwYDVQQKDAxTZWNvbmQgTWFrZXIxJDAiBgNVBAMMG3NlY29uZCB0ZXN0IG1h\n"
	"bnVmYWN0dXJlciBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABE31UFhuaF9R\n"
	"13dht3rLGX4mjL5I9FTcSCygjXbL8TRc32Bc6PmSv3S+Dh+f6ox96uM34jMbHKF5\n"
	"asC4Nmr6p1ujYzBhMB0GA1UdDgQWBBRmn+z8HZjBg6IWkN2zo6zfArTGBzAfBgNV\n"
	"HSMEGDAWgBRmn+z8HZjBg6IWkN2zo6zfArTGBzAPBgNVHRMBAf8EBTADAQH/MA4G\n"
	"A1UdDwEB/wQEAwIBBjAKBggqhkjOPQQDAgNIADBFAiAnrTVdjuBkd9TiQ5HXb0cL\n"
	"svkVs5jjxwPyuVtex6DGJQIhAN43oDp7hdztVETD08deg548BKiAUk2rJcBiZfKl\n"
	"BmBV\n"
	"-----END CERTIFICATE-----\n"
;

static struct ca *ca;
static char dir[256];

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
	if (dir[0])
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int setup(void)
{
	struct ca_config cfg = { 0 };
	char cadir[sizeof(dir) + 8], roots[sizeof(dir) + 16];
	const char *tmp = getenv("TMPDIR");
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/capf-fuzz-mic.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL)
		return -1;
	atexit(cleanup);
	snprintf(cadir, sizeof(cadir), "%s/ca", dir);
	snprintf(roots, sizeof(roots), "%s/mfg.pem", dir);
	f = fopen(roots, "w");
	if (!f)
		return -1;
	fputs(mfg_root_pem, f);
	if (fclose(f) != 0)
		return -1;
	cfg.dir = cadir;
	cfg.mfg_roots = roots;
	cfg.mic_patterns = "c8b77b0631243fde=SEP00AA*";
	return ca_new(&ca, &cfg) < 0 ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	static const time_t times[3] = { 1830000000, 1700000000, 2524608000 };
	const uint8_t *certs[4];
	size_t lens[4], n, i;
	const char *name;
	time_t now;
	int ret;

	if (!ready) {
		if (setup() < 0)
			abort();
		ready = 1;
	}
	if (size < 2)
		return 0;
	name = (data[0] & 0x10)	 ? "SEP00AA00000001"
	       : (data[0] & 2) ? "SEP00112233AABB"
	       : (data[0] & 1) ? "SEP001122334455"
			       : NULL;
	now = ((data[0] >> 2) & 3) == 3 ? time(NULL) : times[(data[0] >> 2) & 3];
	n = 1 + (data[1] & 3);
	data += 2;
	size -= 2;
	for (i = 0; i < n; i++) {
		size_t len;

		if (i == n - 1 || size < 2) {
			certs[i] = data;
			lens[i] = size;
			i++;
			break;
		}
		len = (size_t)data[0] << 8 | data[1];
		data += 2;
		size -= 2;
		if (len > size)
			len = size;
		certs[i] = data;
		lens[i] = len;
		data += len;
		size -= len;
	}
	ret = ca_mic_verify(ca, certs, lens, i, name, now);
	/* Only the documented answers. */
	if (ret != 0 && ret != CAPF_ENOCERT && ret != CAPF_EUNTRUSTED && ret != CAPF_EEXPIRED &&
	    ret != CAPF_EIDENTITY)
		abort();
	/* A chain good for a name is good without one. */
	if (ret == 0 && name && ca_mic_verify(ca, certs, lens, i, NULL, now) != 0)
		abort();
	return 0;
}
