/*
 * capf error codes.
 *
 * Every capf function that can fail returns int: 0 on success, a negative
 * value from enum capf_err on failure. errno values are used directly
 * (CAPF_ENOMEM == -ENOMEM), so libuv's UV_E* codes pass through unchanged.
 * Project codes start at -1000. On the wire (Error.code, End.code,
 * AdminResponse.code) the same codes travel as positive numbers.
 */
#ifndef CAPF_PROTO_ERRCODE_H
#define CAPF_PROTO_ERRCODE_H

#include <errno.h>

enum capf_err {
	CAPF_EOK = 0,

	CAPF_ENOMEM = -ENOMEM,
	CAPF_EINVAL = -EINVAL,
	CAPF_EIO = -EIO,
	CAPF_ENOENT = -ENOENT,
	CAPF_EEXIST = -EEXIST,
	CAPF_EAGAIN = -EAGAIN,
	CAPF_ENOSPC = -ENOSPC,
	CAPF_EBUSY = -EBUSY,
	CAPF_EACCES = -EACCES,
	CAPF_ETIMEDOUT = -ETIMEDOUT,
	CAPF_ENOTSUP = -ENOTSUP,
	CAPF_ECONNRESET = -ECONNRESET,
	CAPF_ERANGE = -ERANGE,

	CAPF_EPROTO = -1000,       /* generic protocol violation */
	CAPF_EFRAME_TOO_BIG = -1001,
	CAPF_EFRAME_EMPTY = -1002, /* zero-length frame */
	CAPF_EBADMSG = -1003,      /* payload is not a valid message */
	CAPF_EVERSION = -1004,     /* unsupported protocol version */
	CAPF_EORDER = -1005,       /* message out of order */
	CAPF_EUNKNOWN_DEVICE = -1006,
	CAPF_ENO_OPERATION = -1007, /* nothing pending for this device */
	CAPF_ENOCERT = -1008,      /* no client certificate presented */
	CAPF_EUNTRUSTED = -1009,   /* certificate chain does not verify */
	CAPF_EIDENTITY = -1010,    /* certificate names another device */
	CAPF_EBADCSR = -1011,      /* CSR cannot be parsed */
	CAPF_ECSRSIG = -1012,      /* CSR signature does not verify */
	CAPF_EBINDING = -1013,     /* CSR not bound to this TLS session */
	CAPF_EPOLICY = -1014,      /* key or request violates the key policy */
	CAPF_EEXPIRED = -1015,     /* certificate expired or not yet valid */
	CAPF_ERETRY = -1016,       /* server cannot serve now; retry later */
	CAPF_ECORRUPT = -1017,     /* damaged store data */
	CAPF_ELOCKED = -1018,      /* state directory in use by another process */
	CAPF_ELIMIT = -1019,       /* a configured limit was reached */
	CAPF_ETIMEOUT = -1020,     /* the session took too long */
	CAPF_EAUTH = -1021,        /* authentication failed */
	CAPF_ECRYPTO = -1022,      /* cryptographic library failure */
	CAPF_ECONFIG = -1023,      /* invalid configuration */
	CAPF_EREJECTED = -1024,    /* the peer reported a failure */
	CAPF_ESHUTDOWN = -1025,    /* the server is shutting down */
	CAPF_EREVOKED = -1026,     /* certificate revoked */
	CAPF_ESTALE = -1027,       /* the record changed since it was read */
	CAPF_ECANCELED = -1028,    /* the operation was cancelled or changed meanwhile */
	CAPF_ESUPERSEDED = -1029,  /* the certificate was replaced by a newer one */
	CAPF_EDEADLINE = -1030,    /* the operation's deadline has passed */
	CAPF_ELOCKOUT = -1031,     /* too many wrong authentication strings: locked out */
	CAPF_EKEYINUSE = -1032,    /* the key is certified for another device */
};

/*
 * capf_strerror() - a short English description of a capf error code.
 * Accepts negative codes and their positive wire form. Never returns NULL;
 * the string is static.
 */
const char *capf_strerror(int code);

/*
 * capf_errname() - the symbolic name of a code ("CAPF_EBINDING"), for logs
 * and scripts. Never returns NULL; the string is static.
 */
const char *capf_errname(int code);

#endif /* CAPF_PROTO_ERRCODE_H */
