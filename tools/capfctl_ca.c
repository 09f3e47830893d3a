/*
 * capfctl commands about the CAPF CA, trust stores and certificates.
 */
#include "config.h"

#include <stddef.h>

#include "tools/capfctl.h"

const struct ctl_command ctl_ca_commands[] = {
	{ NULL, NULL, NULL },
};
