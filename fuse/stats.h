/*
 * stats.h - the daemon's own statistics: the fuse_* counters of
 * /.info/statistics and the latency of each FUSE request type.
 *
 * The rows are STATISTICS_FUSE and STATISTICS_LATENCY_FUSE of the one
 * statistics table (base/statistic.h); this header expands them into the
 * enum the request path uses, so adding a counter is one line there.
 * Counting is per thread (a plain relaxed store into the thread's own
 * block, no shared cache line on the request path); a read sums the blocks.
 * Latencies go to sharded histograms (base/histogram.h).
 */
#ifndef RECFS_FUSE_STATS_H
#define RECFS_FUSE_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/clock.h"
#include "base/histogram.h"
#include "base/statistic.h"

enum stats_counter {
#define X(name, kind, unit, flags, help) STAT_##name,
	STATISTICS_FUSE(X)
#undef X
	STAT_COUNT
};

/* Add n to a counter of the calling thread.  Never fails (a thread that
 * cannot get its block loses its counts). */
void stats_add(enum stats_counter c, uint64_t n);

static inline void
stats_inc(enum stats_counter c)
{
	stats_add(c, 1);
}

/* Sum of every thread's counts, including threads that have exited.
 * Gauges (fuse_inodes, fuse_open_handles) are left 0: the caller fills them. */
void stats_sum(uint64_t out[STAT_COUNT]);

/* The counter's name ("fuse_lookup"). */
const char *stats_name(enum stats_counter c);

/* One request of type op took ns nanoseconds. */
void stats_latency_add(enum stat_latency_fuse op, uint64_t ns);
void stats_latencies(struct histogram_snapshot out[STAT_LAT_FUSE_COUNT]);

/* A request being timed (STATS_OP). */
struct stats_op {
	enum stat_latency_fuse op;
	enum stats_counter counter;
	bool skip;                /* a request on the .info tree: not counted */
	uint64_t t0;
};

static inline void
stats_op_end(struct stats_op *o)
{
	if (o->skip)
		return;
	stats_inc(o->counter);
	stats_latency_add(o->op, clock_mono_ns() - o->t0);
}

/*
 * At the top of a request callback: count the request (fuse_<name>) and time
 * it until the callback returns, whichever way it returns (the cleanup
 * attribute runs stats_op_end on scope exit).  With the low-level API the
 * reply is sent before the callback returns, so this is the daemon's whole
 * service time.  A request on the .info tree (skip true, or STATS_OP_SKIP
 * later) is neither counted nor timed: reading the statistics must not
 * change them, or `stat` and `cat` of a stats file would disagree and a
 * monitoring scraper would show up as load.
 */
#define STATS_OP(name, skip_) \
	struct stats_op stats_op_ __attribute__((cleanup(stats_op_end))) = \
	    { STAT_LAT_FUSE_##name, STAT_fuse_##name, (skip_), clock_mono_ns() }
#define STATS_OP_SKIP() (stats_op_.skip = true)

#endif
