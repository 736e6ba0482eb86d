/*
 * clock.c - wall and monotonic clocks (see clock.h).
 */
#include <time.h>

#include "clock.h"

uint64_t
clock_epoch_ms(void)
{
	struct timespec ts;

	/* The tick-resolution wall clock (1-4 ms steps), as Linux file systems
	 * stamp mtime and ctime; it is read without a clock read (cheap on
	 * every write).  Per record, last-update times still never repeat or
	 * go back (txn.c: next_lut). */
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 - RECFS_EPOCH * 1000;
}

uint32_t
clock_epoch_s(void)
{
	struct timespec ts;

	/* Whole seconds: the kernel's tick-resolution copy of the wall clock
	 * (a few ms behind at most) is enough and costs no clock read.  Every
	 * void-time computation and comparison uses this one clock. */
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (uint32_t)((uint64_t)ts.tv_sec - RECFS_EPOCH);
}

uint64_t
clock_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}
