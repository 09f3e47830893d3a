/*
 * Fuzz target: a ClientHello's body as capfd reads it before GnuTLS does
 * (capf/tls_prio.c): the key shares found are at most the maximum asked
 * and the same however many are asked for, and the priority a session
 * would go on with is one the listener made for a group among them.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "capf/capfd.h"
#include "capf/tls_prio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct tls_prio prio;
	static int ready;
	uint16_t ids[TLS_PRIO_MAX_GROUPS], few[2];
	gnutls_priority_t pick;
	int n, m;

	if (!ready) {
		if (tls_prio_init(&prio, "[tls] priority", CAPFD_DEFAULT_PRIORITY) != 0 ||
		    prio.ngroups == 0)
			abort();
		ready = 1;
	}
	n = tls_hello_key_shares(data, size, ids, TLS_PRIO_MAX_GROUPS);
	if (n > TLS_PRIO_MAX_GROUPS)
		abort();
	m = tls_hello_key_shares(data, size, few, 2);
	if ((n < 0) != (m < 0) || (n >= 0 && (m != (n < 2 ? n : 2) ||
					      memcmp(few, ids, (size_t)m * sizeof(few[0])) != 0)))
		abort();
	pick = tls_prio_for_hello(&prio, data, size);
	if (pick == NULL)
		return 0;
	if (n <= 0)
		abort();
	for (unsigned i = 0; i < prio.ngroups; i++) {
		if (prio.first[i] != pick)
			continue;
		for (int j = 0; j < n; j++)
			if (ids[j] == prio.group_id[i])
				return 0;
		abort();
	}
	abort();
}
