/*
 * capf error codes: names and descriptions.
 */
#include "config.h"

#include <stddef.h>

#include "proto/errcode.h"

struct capf_err_desc {
	int code;
	const char *name;
	const char *text;
};

/*
 * One table for both look-ups, so that a new code needs one line. The
 * errno texts are fixed here rather than taken from strerror(), which is
 * not thread-safe and whose wording varies between C libraries.
 */
static const struct capf_err_desc capf_errors[] = {
    {CAPF_EOK, "CAPF_EOK", "success"},

    {CAPF_ENOMEM, "CAPF_ENOMEM", "out of memory"},
    {CAPF_EINVAL, "CAPF_EINVAL", "invalid argument"},
    {CAPF_EIO, "CAPF_EIO", "input/output error"},
    {CAPF_ENOENT, "CAPF_ENOENT", "no such file or entry"},
    {CAPF_EEXIST, "CAPF_EEXIST", "already exists"},
    {CAPF_EAGAIN, "CAPF_EAGAIN", "resource temporarily unavailable"},
    {CAPF_ENOSPC, "CAPF_ENOSPC", "no space left on device"},
    {CAPF_EBUSY, "CAPF_EBUSY", "resource busy"},
    {CAPF_EACCES, "CAPF_EACCES", "permission denied"},
    {CAPF_ETIMEDOUT, "CAPF_ETIMEDOUT", "operation timed out"},
    {CAPF_ENOTSUP, "CAPF_ENOTSUP", "operation not supported"},
    {CAPF_ECONNRESET, "CAPF_ECONNRESET", "connection reset by peer"},
    {CAPF_ERANGE, "CAPF_ERANGE", "value out of range"},

    {CAPF_EPROTO, "CAPF_EPROTO", "protocol violation"},
    {CAPF_EFRAME_TOO_BIG, "CAPF_EFRAME_TOO_BIG", "frame too big"},
    {CAPF_EFRAME_EMPTY, "CAPF_EFRAME_EMPTY", "empty frame"},
    {CAPF_EBADMSG, "CAPF_EBADMSG", "malformed or invalid message"},
    {CAPF_EVERSION, "CAPF_EVERSION", "unsupported protocol version"},
    {CAPF_EORDER, "CAPF_EORDER", "message out of order"},
    {CAPF_EUNKNOWN_DEVICE, "CAPF_EUNKNOWN_DEVICE", "unknown device"},
    {CAPF_ENO_OPERATION, "CAPF_ENO_OPERATION", "no operation pending for this device"},
    {CAPF_ENOCERT, "CAPF_ENOCERT", "no client certificate presented"},
    {CAPF_EUNTRUSTED, "CAPF_EUNTRUSTED", "certificate chain does not verify"},
    {CAPF_EIDENTITY, "CAPF_EIDENTITY", "certificate names another device"},
    {CAPF_EBADCSR, "CAPF_EBADCSR", "certificate request cannot be parsed"},
    {CAPF_ECSRSIG, "CAPF_ECSRSIG", "certificate request signature does not verify"},
    {CAPF_EBINDING, "CAPF_EBINDING", "certificate request not bound to this TLS session"},
    {CAPF_EPOLICY, "CAPF_EPOLICY", "request violates the key policy"},
    {CAPF_EEXPIRED, "CAPF_EEXPIRED", "certificate expired or not yet valid"},
    {CAPF_ERETRY, "CAPF_ERETRY", "server busy, retry later"},
    {CAPF_ECORRUPT, "CAPF_ECORRUPT", "damaged store data"},
    {CAPF_ELOCKED, "CAPF_ELOCKED", "state directory in use by another process"},
    {CAPF_ELIMIT, "CAPF_ELIMIT", "a configured limit was reached"},
    {CAPF_ETIMEOUT, "CAPF_ETIMEOUT", "session took too long"},
    {CAPF_EAUTH, "CAPF_EAUTH", "authentication failed"},
    {CAPF_ECRYPTO, "CAPF_ECRYPTO", "cryptographic library failure"},
    {CAPF_ECONFIG, "CAPF_ECONFIG", "invalid configuration"},
    {CAPF_EREJECTED, "CAPF_EREJECTED", "the peer reported a failure"},
    {CAPF_ESHUTDOWN, "CAPF_ESHUTDOWN", "server shutting down"},
    {CAPF_EREVOKED, "CAPF_EREVOKED", "certificate revoked"},
    {CAPF_ESTALE, "CAPF_ESTALE", "record changed since it was read"},
    {CAPF_ECANCELED, "CAPF_ECANCELED", "operation cancelled or changed by an administrator"},
    {CAPF_ESUPERSEDED, "CAPF_ESUPERSEDED", "certificate superseded by a newer one"},
    {CAPF_EDEADLINE, "CAPF_EDEADLINE", "the operation's deadline has passed"},
    {CAPF_ELOCKOUT, "CAPF_ELOCKOUT", "locked out after too many wrong authentication strings"},
    {CAPF_EKEYINUSE, "CAPF_EKEYINUSE", "the key is certified for another device"},
};

static const struct capf_err_desc *capf_err_find(int code)
{
	size_t i;

	/* The wire carries codes as positive numbers; accept both forms. */
	if (code > 0)
		code = -code;
	for (i = 0; i < sizeof(capf_errors) / sizeof(capf_errors[0]); i++)
		if (capf_errors[i].code == code)
			return &capf_errors[i];
	return NULL;
}

const char *capf_strerror(int code)
{
	const struct capf_err_desc *e = capf_err_find(code);

	return e ? e->text : "unknown error";
}

const char *capf_errname(int code)
{
	const struct capf_err_desc *e = capf_err_find(code);

	return e ? e->name : "CAPF_EUNKNOWN";
}
