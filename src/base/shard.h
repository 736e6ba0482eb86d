/*
 * shard.h - per-thread shards for hot counters.
 *
 * A relaxed atomic add from two CPUs to one cache line bounces that line
 * between them on every add; on the write path that costs more than the
 * work being counted.  A thread keeps one shard number for life (assigned
 * round robin at its first use), so two busy threads usually add to
 * different lines; a reader sums the shards.  A shard may go negative
 * when one thread adds and another subtracts: only the sum means anything.
 */
#ifndef RECFS_BASE_SHARD_H
#define RECFS_BASE_SHARD_H

#include <stdint.h>

#include "atomic.h"

#define SHARDS 8

extern __thread unsigned shard_mine;   /* UINT32_MAX until assigned */
unsigned shard_assign(void);

/* The calling thread's shard, 0..SHARDS-1. */
static inline unsigned
shard_self(void)
{
	unsigned s = shard_mine;

	return s < SHARDS ? s : shard_assign();
}

/* A signed counter split over SHARDS cache lines: the values are 64 bytes
 * apart, so no two share a line (padding rather than an alignment
 * attribute, so the counter may live in calloc'd memory). */
struct sharded_counter {
	struct {
		int64_t v;   /* atomic */
		char pad[64 - sizeof(int64_t)];
	} s[SHARDS];
};

static inline void
sharded_add(struct sharded_counter *c, int64_t n)
{
	atomic_add(&c->s[shard_self()].v, n);
}

/* The sum; exact once the adders are quiet, else a moment's value. */
static inline int64_t
sharded_sum(const struct sharded_counter *c)
{
	int64_t sum = 0;

	for (unsigned i = 0; i < SHARDS; i++)
		sum += atomic_load_relaxed(&c->s[i].v);
	return sum;
}

#endif
