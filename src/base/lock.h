/*
 * lock.h - mutex set-up for short, hot critical sections.
 */
#ifndef RECFS_BASE_LOCK_H
#define RECFS_BASE_LOCK_H

#include <pthread.h>

/*
 * A mutex that spins a little before sleeping (glibc's adaptive kind).
 * For locks held for tens of nanoseconds by every write - a wblock
 * table's - where a waiter that went to sleep in the kernel would cost a
 * futex wait and a wake-up (microseconds) for a lock free a moment later.
 */
static inline void
mutex_init_adaptive(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;

	pthread_mutexattr_init(&a);
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
	pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
}

#endif
