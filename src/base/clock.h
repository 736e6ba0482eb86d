/*
 * clock.h - the engine's clocks.
 *
 * Record times follow Aerospike's conventions: last-update time in
 * milliseconds and void (expiry) time in seconds, both counted from
 * RECFS_EPOCH (2010-01-01T00:00:00Z), so a void time fits 32 bits and a
 * last-update time fits 40 bits.
 */
#ifndef RECFS_BASE_CLOCK_H
#define RECFS_BASE_CLOCK_H

#include <stdint.h>

#define RECFS_EPOCH 1262304000ULL /* 2010-01-01 in Unix seconds */

/* Wall clock, ms since RECFS_EPOCH (tick resolution: 1-4 ms steps). */
uint64_t clock_epoch_ms(void);
/* Wall clock, s since RECFS_EPOCH (the void-time clock; tick resolution). */
uint32_t clock_epoch_s(void);
/* Monotonic clock in ns, for intervals and latencies. */
uint64_t clock_mono_ns(void);

/* Convert between Unix ns and epoch ms. */
static inline int64_t clock_epoch_ms_to_unix_ns(uint64_t ms)
{
	return (int64_t)(ms + RECFS_EPOCH * 1000ULL) * 1000000LL;
}

#endif
