/*
 * Admin requests about the store and the audit log.
 */
#include "config.h"

#include "capf/admin.h"

const struct admin_handler admin_store_handlers[] = {
	{ 0, NULL, NULL },
};
