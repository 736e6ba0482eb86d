/*
 * histogram.c - sharded latency histograms (see histogram.h).
 *
 * Why shards: every transaction and every FUSE request adds to a
 * histogram, and on a shared line a relaxed add from two CPUs bounces that
 * line between them.  A thread keeps its shard for life (assigned round
 * robin at its first use, shard.h), so two busy threads usually add to different
 * lines.  Rejected: one block per thread registered in a list (what
 * fuse/stats.c does for plain counters) - histograms are 40 times larger
 * and there are dozens of them, and their memory would grow with every
 * short-lived thread; one shared block (contended).
 */

#include "atomic.h"
#include "histogram.h"


static inline unsigned
bit_width(uint64_t v)
{
	return v == 0 ? 0 : 64 - (unsigned)__builtin_clzll(v);
}

unsigned
histogram_bucket(uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned b;

	if (us < 1000)
		return bit_width(us);        /* 0..10: 1000 us is below 2^10 */
	b = 10 + bit_width(us / 1000);       /* 1 ms -> 11, 8 ms -> 14 */
	return b < HISTOGRAM_BUCKETS ? b : HISTOGRAM_BUCKETS - 1;
}

uint64_t
histogram_bucket_limit_us(unsigned b)
{
	if (b >= HISTOGRAM_BUCKETS - 1)
		return UINT64_MAX;
	if (b < 10)
		return 1ULL << b;
	return 1000ULL << (b - 10);
}

void
histogram_add(struct histogram *h, uint64_t ns)
{
	struct histogram_shard *sh = &h->shard[shard_self()];

	atomic_inc(&sh->n[histogram_bucket(ns)]);
	atomic_add(&sh->sum_ns, ns);
}

void
histogram_read(const struct histogram *h, struct histogram_snapshot *out)
{
	*out = (struct histogram_snapshot){ 0 };
	for (unsigned s = 0; s < SHARDS; s++) {
		for (unsigned b = 0; b < HISTOGRAM_BUCKETS; b++) {
			uint64_t n = atomic_load_relaxed(&h->shard[s].n[b]);

			out->n[b] += n;
			out->count += n;
		}
		out->sum_ns += atomic_load_relaxed(&h->shard[s].sum_ns);
	}
}

uint64_t
histogram_percentile_us(const struct histogram_snapshot *s, double pct)
{
	uint64_t rank, seen = 0;

	if (s->count == 0)
		return 0;
	/* The smallest bucket holding at least pct% of the operations. */
	rank = (uint64_t)((double)s->count * pct / 100.0);
	if ((double)rank < (double)s->count * pct / 100.0)
		rank++;
	if (rank == 0)
		rank = 1;
	for (unsigned b = 0; b < HISTOGRAM_BUCKETS; b++) {
		seen += s->n[b];
		if (seen >= rank)
			return histogram_bucket_limit_us(b);
	}
	return histogram_bucket_limit_us(HISTOGRAM_BUCKETS - 1);
}

double
histogram_at_least_ms_pct(const struct histogram_snapshot *s, uint32_t ms)
{
	uint64_t above = 0;

	if (s->count == 0)
		return 0.0;
	for (unsigned b = histogram_bucket((uint64_t)ms * 1000000ULL); b < HISTOGRAM_BUCKETS; b++)
		above += s->n[b];
	return (double)above * 100.0 / (double)s->count;
}

uint64_t
histogram_count_below_us(const struct histogram_snapshot *s, uint64_t limit_us)
{
	uint64_t n = 0;

	for (unsigned b = 0; b < HISTOGRAM_BUCKETS && histogram_bucket_limit_us(b) <= limit_us; b++)
		n += s->n[b];
	return n;
}
