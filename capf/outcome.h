/*
 * The outcomes of phone sessions, counted for the metrics: sessions by
 * operation and result, failures by code, and histograms of how long
 * sessions and TLS handshakes took. Lock-free: workers add with atomics,
 * the metrics read without stopping them.
 */
#ifndef CAPF_OUTCOME_H
#define CAPF_OUTCOME_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Upper bounds of the histogram buckets, in seconds (then +Inf). */
#define OUTCOME_BUCKETS 12
extern const double outcome_bounds[OUTCOME_BUCKETS];

struct outcome_hist {
	atomic_uint_fast64_t le[OUTCOME_BUCKETS + 1]; /* per bucket (not cumulative) */
	atomic_uint_fast64_t count, sum_us;
};

/* Failure codes: CAPF_EPROTO.. (-1000..-1063) and errno codes (-1..-191). */
#define OUTCOME_CODES 256

struct outcomes {
	atomic_uint_fast64_t by_op[4][2]; /* Operation x (0 success, 1 failure) */
	atomic_uint_fast64_t by_code[OUTCOME_CODES];
	struct outcome_hist session, handshake;
};

/* outcome_session() - one session ended: op (a capf Operation, 0 none),
 * code (0 success, else the negative capf code), us its length. */
void outcome_session(struct outcomes *o, int op, int code, uint64_t us);

/* outcome_handshake() - a TLS handshake completed in us. */
void outcome_handshake(struct outcomes *o, uint64_t us);

/* outcome_code_slot() - the by_code index of code (out of range codes
 * share the last slot); outcome_slot_code() - its inverse (0 for the
 * shared slot). */
size_t outcome_code_slot(int code);
int outcome_slot_code(size_t slot);

#endif
