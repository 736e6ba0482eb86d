/*
 * stats.c - per-thread fuse_* counters (see stats.h).
 *
 * Why per thread: every request bumps at least one counter, and on two
 * vCPUs a shared atomic bounces its cache line between the worker threads.
 * Each thread owns a block it writes with relaxed stores; readers sum the
 * blocks with relaxed loads.  A thread's block is folded into "retired"
 * when it exits (libfuse may end idle workers), so totals never go back.
 *
 * Rejected: one global atomic per counter (simple, but contended on the
 * hottest path); a mutex-protected array (worse).
 *
 * Request latencies use the engine's sharded histograms instead: a block
 * per thread of 24 histograms would be 30 KB per libfuse worker.
 */
#include <pthread.h>
#include <stdlib.h>

#include "base/atomic.h"
#include "stats.h"

struct stats_block {
	uint64_t v[STAT_COUNT];         /* written by the owner thread only */
	struct stats_block *prev, *next; /* protected by stats_lock */
};

static const char *const stats_names[STAT_COUNT] = {
#define X(name, kind, unit, flags, help) #name,
	STATISTICS_FUSE(X)
#undef X
};

static struct histogram stats_latency[STAT_LAT_FUSE_COUNT];  /* atomics */

static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static struct stats_block stats_live = { .prev = &stats_live, .next = &stats_live }; /* list head; protected by stats_lock */
static uint64_t stats_retired[STAT_COUNT];   /* protected by stats_lock */
static pthread_key_t stats_key;
static pthread_once_t stats_once = PTHREAD_ONCE_INIT;
static __thread struct stats_block *stats_mine;

/* Thread exit: keep the counts, drop the block. */
static void
stats_block_retire(void *arg)
{
	struct stats_block *b = arg;

	pthread_mutex_lock(&stats_lock);
	for (int i = 0; i < STAT_COUNT; i++)
		stats_retired[i] += atomic_load_relaxed(&b->v[i]);
	b->prev->next = b->next;
	b->next->prev = b->prev;
	pthread_mutex_unlock(&stats_lock);
	free(b);
}

static void
stats_init_key(void)
{
	(void)pthread_key_create(&stats_key, stats_block_retire);
}

static struct stats_block *
stats_block_attach(void)
{
	struct stats_block *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return NULL;
	pthread_once(&stats_once, stats_init_key);
	pthread_mutex_lock(&stats_lock);
	b->next = stats_live.next;
	b->prev = &stats_live;
	stats_live.next->prev = b;
	stats_live.next = b;
	pthread_mutex_unlock(&stats_lock);
	(void)pthread_setspecific(stats_key, b);
	stats_mine = b;
	return b;
}

void
stats_add(enum stats_counter c, uint64_t n)
{
	struct stats_block *b = stats_mine;

	if (b == NULL && (b = stats_block_attach()) == NULL)
		return;
	/* Single writer: a relaxed load-add-store is enough and keeps readers race-free. */
	atomic_store_relaxed(&b->v[c], atomic_load_relaxed(&b->v[c]) + n);
}

void
stats_sum(uint64_t out[STAT_COUNT])
{
	pthread_mutex_lock(&stats_lock);
	for (int i = 0; i < STAT_COUNT; i++)
		out[i] = stats_retired[i];
	for (struct stats_block *b = stats_live.next; b != &stats_live; b = b->next)
		for (int i = 0; i < STAT_COUNT; i++)
			out[i] += atomic_load_relaxed(&b->v[i]);
	pthread_mutex_unlock(&stats_lock);
}

const char *
stats_name(enum stats_counter c)
{
	return c < STAT_COUNT ? stats_names[c] : "?";
}

void
stats_latency_add(enum stat_latency_fuse op, uint64_t ns)
{
	histogram_add(&stats_latency[op], ns);
}

void
stats_latencies(struct histogram_snapshot out[STAT_LAT_FUSE_COUNT])
{
	for (int i = 0; i < STAT_LAT_FUSE_COUNT; i++)
		histogram_read(&stats_latency[i], &out[i]);
}
