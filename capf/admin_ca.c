/*
 * Admin requests about the CAPF CA, the trust stores and certificates.
 */
#include "config.h"

#include "capf/admin.h"

const struct admin_handler admin_ca_handlers[] = {
	{ 0, NULL, NULL },
};
