/*
 * capf/signer_internal.h - what capfd's two clients of the signer (the
 * blocking pool, capf/signer_client.c, and the loops' channels,
 * capf/signer_chan.c) share.
 */
#ifndef CAPF_SIGNER_INTERNAL_H
#define CAPF_SIGNER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "proto/signer.pb-c.h"

/* signer_next_id() - a request id, unique in this process. */
uint64_t signer_next_id(void);

/* signer_pack_request() - req packed into a frame: into buf when it fits
 * in cap bytes, else into a malloc'd one (*frame != buf: the caller frees
 * it). Returns 0 and *frame, *len; CAPF_EINVAL (empty or over
 * SIGNER_FRAME_MAX) or CAPF_ENOMEM. */
int signer_pack_request(const Capf__Signer__Request *req, uint8_t *buf, size_t cap,
			uint8_t **frame, size_t *len);

#endif /* CAPF_SIGNER_INTERNAL_H */
