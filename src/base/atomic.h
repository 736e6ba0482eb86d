/*
 * atomic.h - the one place the engine spells its atomic operations.
 *
 * Counters that many threads bump use relaxed ordering: they are statistics,
 * read as a sum, never used to publish other memory.  Flags and queue
 * lengths that do publish state use acquire/release explicitly.
 *
 * Rule (the thread sanitizer build checks it, scripts/test.sh --tsan): a
 * field that any thread writes or reads with one of these, without holding
 * the lock its other users hold, is read and written with these everywhere,
 * even under that lock (initialisation before any other thread can see the
 * field excepted).  A plain access next to an atomic one is a data race in
 * C11 and a report in TSan.  The macros take any scalar or pointer.
 */
#ifndef RECFS_BASE_ATOMIC_H
#define RECFS_BASE_ATOMIC_H

#include <stdint.h>

#define atomic_load_relaxed(p)     __atomic_load_n((p), __ATOMIC_RELAXED)
#define atomic_store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define atomic_load_acquire(p)     __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define atomic_store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define atomic_add(p, v)           __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
#define atomic_sub(p, v)           __atomic_sub_fetch((p), (v), __ATOMIC_RELAXED)
#define atomic_add_acquire(p, v)   __atomic_add_fetch((p), (v), __ATOMIC_ACQUIRE)
#define atomic_sub_release(p, v)   __atomic_sub_fetch((p), (v), __ATOMIC_RELEASE)
#define atomic_exchange_relaxed(p, v) __atomic_exchange_n((p), (v), __ATOMIC_RELAXED)
#define atomic_exchange_acq_rel(p, v) __atomic_exchange_n((p), (v), __ATOMIC_ACQ_REL)
#define atomic_inc(p)              ((void)__atomic_add_fetch((p), 1, __ATOMIC_RELAXED))
#define atomic_dec(p)              ((void)__atomic_sub_fetch((p), 1, __ATOMIC_RELAXED))
#define atomic_cas(p, expp, v) \
	__atomic_compare_exchange_n((p), (expp), (v), 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)
/* Publishes nothing: for a count whose CAS loop only needs its own value. */
#define atomic_cas_relaxed(p, expp, v) \
	__atomic_compare_exchange_n((p), (expp), (v), 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)

#endif
