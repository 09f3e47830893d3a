/*
 * The fixture of fuzz_ca_certs: test material made by seeds_ca_certs.sh
 * with openssl (do not edit; run it again to replace the fixture and its
 * seeds together). The keys are test keys, published here on purpose.
 */
#ifndef CAPF_TESTS_FUZZ_CA_CERTS_FIXTURE_H
#define CAPF_TESTS_FUZZ_CA_CERTS_FIXTURE_H

#include <stdint.h>
#include <time.h>

/* The target's clock: 2027-01-01T00:00:00Z. */
#define FIXTURE_NOW ((time_t)1798761600)

/* The CAPF CA, self-signed, P-256, 20260101000000Z to 21251231235959Z: ca.pem */
static const char fixture_ca_pem[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBjjCCATSgAwIBAgIQQu5bCycEiZkbKqomJdQtYzAKBggqhkjOPQQDAjAmMRUw\n"
	"EwYDVQQDEwxDQVBGIGZ1enogQ0ExDTALBgNVBAoTBGNhcGYwIBcNMjYwMTAxMDAw\n"
	"MDAwWhgPMjEyNTEyMzEyMzU5NTlaMCYxFTATBgNVBAMTDENBUEYgZnV6eiBDQTEN\n"
	"MAsGA1UEChMEY2FwZjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABM6v+8gEBFuv\n"
	"/ouleDojp9/MFwi8wBcF494gcZCwZSjO7AICXw6HcJp5+zPNMUujAzkyWZVzytZT\n"
	"DZlBPmG9YNujQjBAMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgGGMB0G\n"
	"A1UdDgQWBBTf41KCbSNmODZ8ZdDWuImuLzbMsjAKBggqhkjOPQQDAgNIADBFAiAo\n"
	"Gy2a526UyEEHdb6EYH1s3Bcy2KPY9gJHAnnECW6+BwIhAOMh8Wd6Azhgf6VTNlvK\n"
	"Ip//RloY4IWd8TmTyDVL4YGV\n"
	"-----END CERTIFICATE-----\n"
;

/* Its key: ca.key */
static const char fixture_ca_key[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgrBuVd7wFbEoFCnkx\n"
	"p7DtRyhywK0G/SrP/HrGR4VS+U+hRANCAATOr/vIBARbr/6LpXg6I6ffzBcIvMAX\n"
	"BePeIHGQsGUozuwCAl8Oh3CaefszzTFLowM5MlmVc8rWUw2ZQT5hvWDb\n"
	"-----END PRIVATE KEY-----\n"
;

/* The key of the pending request: pending/key.pem */
static const char fixture_pending_key[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg0+AC71j75ldIlD+a\n"
	"qE1bsu13JRTeBaP8v22K4GhViSChRANCAAQkbi0qEkXExQ3q1ngLlZJGiT4il2l6\n"
	"jDrRoilv0crsCjOF62J9ki3pxJN9Few+whBGOFez9Dh7AFb6S3t1gn7v\n"
	"-----END PRIVATE KEY-----\n"
;

/* The pending request: pending/csr.pem */
static const char fixture_pending_csr[] =
	"-----BEGIN CERTIFICATE REQUEST-----\n"
	"MIIBNTCB3AIBADAmMRUwEwYDVQQDEwxDQVBGIGZ1enogQ0ExDTALBgNVBAoTBGNh\n"
	"cGYwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQkbi0qEkXExQ3q1ngLlZJGiT4i\n"
	"l2l6jDrRoilv0crsCjOF62J9ki3pxJN9Few+whBGOFez9Dh7AFb6S3t1gn7voFQw\n"
	"UgYJKoZIhvcNAQkOMUUwQzASBgNVHRMBAf8ECDAGAQH/AgEAMA4GA1UdDwEB/wQE\n"
	"AwIBhjAdBgNVHQ4EFgQUnpjOFsrA2g7SOrUaLIWPe/my2l4wCgYIKoZIzj0EAwID\n"
	"SAAwRQIhAKcz5NDRsy/gYTauM1gmb7HDeVnskF5dyQnxxWl+qUrvAiAhzM9LsSIf\n"
	"tO3I+pFYB+GuoqKmpocEYE2WjIr0dGC8jg==\n"
	"-----END CERTIFICATE REQUEST-----\n"
;

/* The chain store at setup: the root, an intermediate of pathlen 0, a CA under it, one expired */
static const char fixture_chain_pem[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBnjCCAUSgAwIBAgIQTcm8ERUnl+jlmySQlNkgrjAKBggqhkjOPQQDAjAuMR0w\n"
	"GwYDVQQDExRFbnRlcnByaXNlIGZ1enogcm9vdDENMAsGA1UEChMEY2FwZjAgFw0y\n"
	"NjAxMDEwMDAwMDBaGA8yMTI1MTIzMTIzNTk1OVowLjEdMBsGA1UEAxMURW50ZXJw\n"
	"cmlzZSBmdXp6IHJvb3QxDTALBgNVBAoTBGNhcGYwWTATBgcqhkjOPQIBBggqhkjO\n"
	"PQMBBwNCAARyW2zOPVoEeCWHNcp37/b/2BJZpXcDupNDWIDUJ8sQqpwSxG0jBCxH\n"
	"wQe3a/K5e8/VeRrWZ97U7YRKqKtfxHHSo0IwQDAPBgNVHRMBAf8EBTADAQH/MA4G\n"
	"A1UdDwEB/wQEAwIBBjAdBgNVHQ4EFgQU7YZzKE6iarwi2H3lg4gbZIrhckcwCgYI\n"
	"KoZIzj0EAwIDSAAwRQIge2rrY99Nu7S0t2L5IEVls8RfquLVaxDs0sL+OdQ/xDsC\n"
	"IQDVl5zj0ChgLDRJUjrzcJRwRsk9HYgEKybwZ5DR5sYVMg==\n"
	"-----END CERTIFICATE-----\n"
	"-----BEGIN CERTIFICATE-----\n"
	"MIIByTCCAXCgAwIBAgIQSVIvU0PpAFMGREt+uhN/pDAKBggqhkjOPQQDAjAuMR0w\n"
	"GwYDVQQDExRFbnRlcnByaXNlIGZ1enogcm9vdDENMAsGA1UEChMEY2FwZjAgFw0y\n"
	"NjAxMDEwMDAwMDBaGA8yMTI1MTIzMTIzNTk1OVowNjElMCMGA1UEAxMcRW50ZXJw\n"
	"cmlzZSBmdXp6IGludGVybWVkaWF0ZTENMAsGA1UEChMEY2FwZjBZMBMGByqGSM49\n"
	"AgEGCCqGSM49AwEHA0IABHGsMc+w1Qaw9ZMOqbHLXPuHreKD0wnQJiXoKRr3a7Xh\n"
	"eGM26FAbiifG1YIFjZn4iUWCc5fGDmZpfu3J7T3e/wyjZjBkMBIGA1UdEwEB/wQI\n"
	"MAYBAf8CAQAwDgYDVR0PAQH/BAQDAgEGMB0GA1UdDgQWBBTxz/sCdMLnGF8M0FLG\n"
	"t8gEick1EzAfBgNVHSMEGDAWgBTthnMoTqJqvCLYfeWDiBtkiuFyRzAKBggqhkjO\n"
	"PQQDAgNHADBEAiBi2mJS4o8BYbRdZb459KLy65KV/bKW4NY4JTI7xA70wAIgJizC\n"
	"v5kp9akzv/2Rq30638bDJblOqu5hI5tpwjfhIrY=\n"
	"-----END CERTIFICATE-----\n"
	"-----BEGIN CERTIFICATE-----\n"
	"MIIB3TCCAYKgAwIBAgIQSWEEPGqLiLeUp0XZcuw96TAKBggqhkjOPQQDAjA2MSUw\n"
	"IwYDVQQDExxFbnRlcnByaXNlIGZ1enogaW50ZXJtZWRpYXRlMQ0wCwYDVQQKEwRj\n"
	"YXBmMCAXDTI2MDEwMTAwMDAwMFoYDzIxMjUxMjMxMjM1OTU5WjBDMTIwMAYDVQQD\n"
	"EylFbnRlcnByaXNlIGZ1enogQ0EgYmV5b25kIHRoZSBwYXRoIGxlbmd0aDENMAsG\n"
	"A1UEChMEY2FwZjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABGW+idQZc7wSf45L\n"
	"o35DNf9P87SqQg75Ug2FLYEPaR9wrVCBh50x2nFZixxm0q8pRcaGHcp7/87D70Nw\n"
	"NgCfmGOjYzBhMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgEGMB0GA1Ud\n"
	"DgQWBBSWJFLSH4tEyAK57dvLu78zN+Fa2jAfBgNVHSMEGDAWgBTxz/sCdMLnGF8M\n"
	"0FLGt8gEick1EzAKBggqhkjOPQQDAgNJADBGAiEA9uS8xjAmcgbSrBhl6UiQZL5W\n"
	"niAw6G6SFyeRl020aTwCIQCQn5WlyUM7Ow3u9SZzu6feYKs57qMI9gy8Shbuv7my\n"
	"iQ==\n"
	"-----END CERTIFICATE-----\n"
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBzTCCAXOgAwIBAgIQR0K4WAO73TuDqFKjfq7qazAKBggqhkjOPQQDAjAuMR0w\n"
	"GwYDVQQDExRFbnRlcnByaXNlIGZ1enogcm9vdDENMAsGA1UEChMEY2FwZjAeFw0y\n"
	"MDAxMDEwMDAwMDBaFw0yNjA2MDEwMDAwMDBaMD4xLTArBgNVBAMTJEVudGVycHJp\n"
	"c2UgZnV6eiBleHBpcmVkIGludGVybWVkaWF0ZTENMAsGA1UEChMEY2FwZjBZMBMG\n"
	"ByqGSM49AgEGCCqGSM49AwEHA0IABBXj+lbrMBGJJWNdFKWTwBSvfGhFJ6F2AlIG\n"
	"K4+U7XjYTl1pjtkAsAoaI5Ji+57b7NYXcl2hkbg4b3KkzjQgI2mjYzBhMA8GA1Ud\n"
	"EwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgEGMB0GA1UdDgQWBBTufj3jLyqjl8kh\n"
	"/2zFSQzUITcD1TAfBgNVHSMEGDAWgBTthnMoTqJqvCLYfeWDiBtkiuFyRzAKBggq\n"
	"hkjOPQQDAgNIADBFAiEA+jjl74lSxVVallWmANBlR2hBatmcJjgTleCY8GiJRKMC\n"
	"IAseoJBnSwfzzftVOrjvvm1ukyPsH110NBaee7F3S9cu\n"
	"-----END CERTIFICATE-----\n"
;

/* The serial of lsc-revoked.der, revoked at setup. */
static const uint8_t fixture_revoked_serial[] = {
	0x5a, 0x11, 0xed, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xbe, 0xef,
};

#endif /* CAPF_TESTS_FUZZ_CA_CERTS_FIXTURE_H */
