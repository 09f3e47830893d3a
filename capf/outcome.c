#include "config.h"

#include "capf/outcome.h"

const double outcome_bounds[OUTCOME_BUCKETS] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
						 0.5,	1,    2.5,   5,	   10,	30 };

static void hist_add(struct outcome_hist *h, uint64_t us)
{
	size_t i = 0;

	while (i < OUTCOME_BUCKETS && (double)us > outcome_bounds[i] * 1e6)
		i++;
	atomic_fetch_add_explicit(&h->le[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

size_t outcome_code_slot(int code)
{
	if (code <= -1000 && code > -1064)
		return (size_t)(-code - 1000);
	if (code < 0 && code > -(OUTCOME_CODES - 64))
		return (size_t)(64 - code - 1);
	return OUTCOME_CODES - 1;
}

int outcome_slot_code(size_t slot)
{
	if (slot < 64)
		return -1000 - (int)slot;
	if (slot < OUTCOME_CODES - 1)
		return -(int)(slot - 64 + 1);
	return 0;
}

void outcome_session(struct outcomes *o, int op, int code, uint64_t us)
{
	if (op < 0 || op > 3)
		op = 0;
	atomic_fetch_add_explicit(&o->by_op[op][code != 0], 1, memory_order_relaxed);
	if (code != 0)
		atomic_fetch_add_explicit(&o->by_code[outcome_code_slot(code)], 1,
					  memory_order_relaxed);
	hist_add(&o->session, us);
}

void outcome_handshake(struct outcomes *o, uint64_t us)
{
	hist_add(&o->handshake, us);
}
