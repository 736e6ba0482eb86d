/*
 * histogram.h - latency histograms (/.info/latencies, the metrics).
 *
 * Buckets follow Aerospike's millisecond histograms above 1 ms and add
 * microsecond resolution below, since most recfs operations take
 * microseconds:
 *
 *   bucket 0        < 1 us
 *   bucket b 1..9   [2^(b-1), 2^b) us
 *   bucket 10       [512, 1000) us
 *   bucket b >= 11  [2^(b-11), 2^(b-10)) ms      (11: 1-2 ms, 14: 8-16 ms)
 *
 * so "at least 1 ms", "8 ms" and "64 ms" (the thresholds asadm shows) are
 * exact bucket boundaries.  The last bucket takes everything longer.
 *
 * Adding is a relaxed atomic increment into one of a few shards chosen by
 * thread, so threads on different CPUs rarely share a cache line; reading
 * sums the shards.  Thread-safe; a reader may see an add half done (a
 * bucket counted, the sum not yet), which statistics tolerate.
 */
#ifndef RECFS_BASE_HISTOGRAM_H
#define RECFS_BASE_HISTOGRAM_H

#include <stdint.h>

#include "shard.h"

#define HISTOGRAM_BUCKETS 40

struct histogram_shard {
	uint64_t n[HISTOGRAM_BUCKETS];  /* atomic */
	uint64_t sum_ns;                /* atomic */
} __attribute__((aligned(64)));

struct histogram {
	struct histogram_shard shard[SHARDS];   /* by thread: shard_self() */
};

/* What a reader works with: the shards summed. */
struct histogram_snapshot {
	uint64_t n[HISTOGRAM_BUCKETS];
	uint64_t count;
	uint64_t sum_ns;
};

/* Count one operation that took ns nanoseconds. */
void histogram_add(struct histogram *h, uint64_t ns);
void histogram_read(const struct histogram *h, struct histogram_snapshot *out);

/* Bucket of a duration, and the exclusive upper bound of a bucket in
 * microseconds (UINT64_MAX for the last one). */
unsigned histogram_bucket(uint64_t ns);
uint64_t histogram_bucket_limit_us(unsigned b);

/* The upper bound (us) of the bucket holding the pct-th percentile
 * (pct in (0, 100]); 0 when nothing was counted.  An upper bound, so
 * "p99_us=64" reads "99% took less than 64 us". */
uint64_t histogram_percentile_us(const struct histogram_snapshot *s, double pct);
/* Percent of operations that took at least ms milliseconds (ms a power of
 * 2: a bucket boundary). */
double histogram_at_least_ms_pct(const struct histogram_snapshot *s, uint32_t ms);
/* Operations that took less than limit_us (a bucket bound): the cumulative
 * count of a Prometheus bucket. */
uint64_t histogram_count_below_us(const struct histogram_snapshot *s, uint64_t limit_us);

#endif
