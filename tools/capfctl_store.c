/*
 * capfctl commands about the store and the audit log.
 */
#include "config.h"

#include <stddef.h>

#include "tools/capfctl.h"

const struct ctl_command ctl_store_commands[] = {
	{ NULL, NULL, NULL },
};
