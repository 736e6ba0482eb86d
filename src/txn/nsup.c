/*
 * nsup.c - the namespace supervisor: stop-writes, expiration, eviction
 * (docs/operations.md: Storage full, Expiration and eviction).
 *
 * One thread per namespace wakes every NSUP_CHECK_MS (100 ms):
 *   - stop-writes: on while used >= stop-writes-used-pct or available <
 *     stop-writes-avail-pct (0 turns either test off); writes and creates
 *     then fail with ENOSPC, while reads, deletes, defrag and expiration go
 *     on; it lifts by itself when space returns.  The write path engages it
 *     too (txn.c, stop_writes(): the same test, nsup_stop_writes_check,
 *     whenever the live counters reach a threshold), so a burst of writes
 *     stops at the threshold rather than 100 ms of writes later.
 *   - every nsup-period seconds: reclaim expired records (void time
 *     passed), and when used space exceeds evict-used-pct, evict the
 *     records closest to expiry, never records without a TTL.
 * Both reclaim through txn_reclaim(): under the record lock, and as a
 * durable delete (a tombstone on persistent storage), so an expired or
 * evicted record cannot come back at the next cold start.
 *
 * Eviction depth comes from a histogram of void times: NSUP_HIST_BUCKETS
 * buckets over [now, latest void time], each with the bytes its records
 * occupy; the threshold is the end of the first buckets whose bytes cover
 * what must be freed to get back under evict-used-pct.  Whole buckets go,
 * soonest first (Aerospike does the same with object counts).
 *
 * Rejected: expiring on read (a record nobody reads would never be
 * reclaimed); a sorted index of void times (memory per record, for a
 * pass that runs every nsup-period).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/atomic.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "chunk.h"
#include "txn_i.h"

#define NSUP_HIST_BUCKETS 1024
#define NSUP_BATCH 512
#define NSUP_CHECK_MS 100

struct nsup_victim {
	struct digest digest;
	uint16_t set_id;
};

struct nsup_collect {
	uint32_t now, evict_below;
	struct nsup_victim *out;
	size_t n;
};

/* Walk callback (partition lock held): note an expired entry, or (when
 * evict_below != 0) one with a void time before evict_below. */
static int
collect_one(void *arg, const struct index_entry *e)
{
	struct nsup_collect *c = arg;

	if (e->tombstone || e->set_marker || e->void_time == 0)
		return 0;
	if (e->void_time <= c->now || (c->evict_below != 0 && e->void_time < c->evict_below)) {
		c->out[c->n].digest = e->digest;
		c->out[c->n].set_id = e->set_id;
		c->n++;
	}
	return 0;
}

/* One pass over the index; returns records reclaimed.  Each partition is
 * walked NSUP_BATCH entries at a time (so at most NSUP_BATCH victims),
 * which are reclaimed with no partition lock held before the walk goes on
 * from where it stopped. */
static uint64_t
reclaim_pass(struct namespace *ns, uint32_t evict_below, bool *stop)
{
	struct nsup_victim batch[NSUP_BATCH];
	uint64_t done = 0;

	for (uint32_t pid = 0; pid < PARTITION_COUNT && !atomic_load_relaxed(stop); pid++) {
		struct index_walk_pos pos = { 0 };

		while (!pos.done && !atomic_load_relaxed(stop)) {
			struct nsup_collect c = { .now = clock_epoch_s(), .evict_below = evict_below,
			    .out = batch };

			if (index_partition_walk(ns->index, pid, &pos, collect_one, &c, NSUP_BATCH) == 0)
				break;
			for (size_t i = 0; i < c.n; i++) {
				int rc = txn_reclaim(ns, batch[i].set_id, &batch[i].digest, c.now,
				    evict_below);

				if (rc > 0)
					done++;
				else if (rc < 0)
					log_warn("nsup", "{%s} reclaim failed: %s", ns->name, recfs_strerror(rc));
			}
		}
	}
	return done;
}

/* Eviction's histogram of void times: pass 1 finds the latest (max_void),
 * pass 2 adds each candidate's bytes to its bucket. */
struct nsup_hist {
	uint32_t now, max_void;
	uint64_t width;          /* pass 2: seconds per bucket; 0 in pass 1 */
	uint64_t *bytes;
	uint64_t candidates;
};

static int
hist_one(void *arg, const struct index_entry *e)
{
	struct nsup_hist *h = arg;

	if (e->tombstone || e->set_marker || e->void_time == 0)
		return 0;
	if (h->width == 0) {
		if (e->void_time > h->max_void)
			h->max_void = e->void_time;
		return 0;
	}
	uint64_t b = e->void_time > h->now ? (e->void_time - h->now) / h->width : 0;
	h->bytes[b < NSUP_HIST_BUCKETS ? b : NSUP_HIST_BUCKETS - 1] += storage_loc_size(e->loc);
	h->candidates++;
	return 0;
}

/* Both passes visit every entry, one partition per walk call (the
 * partition lock held shared for it, as a listing does). */
static void
hist_pass(struct namespace *ns, struct nsup_hist *h)
{
	for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++) {
		struct index_walk_pos pos = { 0 };

		(void)index_partition_walk(ns->index, pid, &pos, hist_one, h, UINT_MAX);
	}
}

/* The void time below which records must go to free `need` bytes, or 0
 * when no record with a TTL can help. */
static uint32_t
eviction_threshold(struct namespace *ns, uint64_t need)
{
	uint64_t *bytes = calloc(NSUP_HIST_BUCKETS, sizeof(*bytes));
	uint32_t now = clock_epoch_s(), threshold = 0;
	struct nsup_hist h = { .now = now, .max_void = now, .bytes = bytes };

	if (bytes == NULL)
		return 0;
	hist_pass(ns, &h);                 /* pass 1: the range of void times */
	uint64_t width = ((uint64_t)h.max_void - now) / NSUP_HIST_BUCKETS + 1;
	h.width = width;
	hist_pass(ns, &h);                 /* pass 2: bytes per bucket */
	uint64_t sum = 0;
	for (uint32_t b = 0; b < NSUP_HIST_BUCKETS && h.candidates > 0; b++) {
		sum += bytes[b];
		if (sum >= need || b == NSUP_HIST_BUCKETS - 1) {
			threshold = (uint32_t)(now + (b + 1) * width);
			break;
		}
	}
	free(bytes);
	return threshold;
}

static bool
check_stop_writes(struct namespace *ns, const struct storage_stats *ss)
{
	struct txn_namespace *tn = txn_namespace_of(ns);
	uint32_t used_pct = ss->total_bytes ? (uint32_t)(ss->used_bytes * 100 / ss->total_bytes) : 0;
	uint32_t max_used = atomic_load_relaxed(&ns->cfg->stop_writes_used_pct);
	uint32_t min_avail = atomic_load_relaxed(&ns->cfg->stop_writes_avail_pct);
	/* Available = free wblocks plus space on its way back (the defrag
	 * queue, wblocks defrag is emptying, superseded bytes of buffers
	 * waiting for their write): the guard is against running out of
	 * space, not against space waiting for defrag or I/O - writers short
	 * of a free wblock already wait (bounded) for that. */
	uint64_t soon = ss->free_wblocks * ns->cfg->storage.write_block_size + ss->pending_free_bytes;
	uint32_t avail_pct = ss->total_bytes ? (uint32_t)(soon * 100 / ss->total_bytes) : 100;
	if (avail_pct < ss->avail_pct)
		avail_pct = ss->avail_pct;
	bool stop = (max_used > 0 && used_pct >= max_used) || (min_avail > 0 && avail_pct < min_avail);
	bool was = atomic_exchange_relaxed(&tn->stop_writes, stop);

	if (stop && !was)
		log_warn("nsup", "{%s} stop-writes: used %u%% (stop-writes-used-pct %u), avail %u%% "
		    "(stop-writes-avail-pct %u): writes fail with ENOSPC until space comes back",
		    ns->name, used_pct, max_used, avail_pct, min_avail);
	else if (!stop && was)
		log_info("nsup", "{%s} stop-writes lifted: used %u%%, avail %u%%", ns->name, used_pct,
		    avail_pct);
	return stop;
}

bool
nsup_stop_writes_check(struct namespace *ns)
{
	struct storage_stats ss;

	storage_stats(ns->storage, &ss);
	return check_stop_writes(ns, &ss);
}

/*
 * Chunks of large files that no head names (txn/chunk.h): those older than
 * chunk-reclaim-age; on a node without seeds also, at the first pass after
 * the start, those written before it (no commit of this run can own them;
 * in a cluster another node's commit could).
 */
static void
chunk_reclaim(struct namespace *ns, uint64_t start_ms)
{
	uint64_t now = clock_epoch_ms();
	uint64_t age = (uint64_t)atomic_load_relaxed(&ns->cfg->chunk_reclaim_age) * 1000;
	uint64_t before = now > age ? now - age : 0;
	bool alone = ns->root_cfg == NULL || ns->root_cfg->n_seeds == 0;
	long n = txn_chunk_reclaim(ns, alone && start_ms > before ? start_ms : before);

	if (n > 0)
		log_info("nsup", "{%s} reclaimed %ld chunks of large files no head named", ns->name, n);
	else if (n < 0)
		log_warn("nsup", "{%s} chunk reclaim failed: %s", ns->name, recfs_strerror((int)n));
}

static void
nsup_cycle(struct namespace *ns, uint64_t start_ms)
{
	struct txn_namespace *tn = txn_namespace_of(ns);
	struct storage_stats ss;
	uint64_t start = clock_mono_ns();

	uint64_t expired = reclaim_pass(ns, 0, &tn->nsup_stop);
	NS_COUNT_ADD(ns, expired_objects, expired);

	storage_stats(ns->storage, &ss);
	uint32_t evict_pct = atomic_load_relaxed(&ns->cfg->evict_used_pct);
	uint64_t limit = ss.total_bytes * evict_pct / 100;
	bool breached = evict_pct > 0 && ss.used_bytes > limit;
	atomic_store_relaxed(&tn->hwm_breached, breached);
	if (breached) {
		/* Free what is over the mark, plus 1% of the space so the next
		 * writes do not cross it again at once. */
		uint64_t need = ss.used_bytes - limit + ss.total_bytes / 100;
		uint32_t below = eviction_threshold(ns, need);

		if (below == 0) {
			log_warn("nsup", "{%s} used space %" PRIu64 " bytes exceeds evict-used-pct %u%% "
			    "but no record has a TTL: nothing to evict", ns->name, ss.used_bytes, evict_pct);
		} else {
			atomic_store_relaxed(&tn->evict_void_time, below);
			uint64_t evicted = reclaim_pass(ns, below, &tn->nsup_stop);
			NS_COUNT_ADD(ns, evicted_objects, evicted);
			log_info("nsup", "{%s} evicted %" PRIu64 " records expiring before %u s from now",
			    ns->name, evicted, below - clock_epoch_s());
		}
	}
	chunk_reclaim(ns, start_ms);
	atomic_store_relaxed(&tn->nsup_cycle_ms, (clock_mono_ns() - start) / 1000000);
	if (expired > 0)
		log_info("nsup", "{%s} expired %" PRIu64 " records", ns->name, expired);
}

static void *
nsup_main(void *arg)
{
	struct namespace *ns = arg;
	struct txn_namespace *tn = txn_namespace_of(ns);
	uint64_t last_cycle = clock_mono_ns();
	/* The node's open, not this thread's first run: under load the thread
	 * may first run after clients wrote chunks of commits still in flight,
	 * which the first pass must not take for a crash's leftovers. */
	uint64_t start_ms = tn->node->start_ms;

	/* What a crash left behind goes at once (see chunk_reclaim). */
	chunk_reclaim(ns, start_ms);
	pthread_mutex_lock(&tn->nsup_lock);
	while (!atomic_load_relaxed(&tn->nsup_stop)) {
		struct timespec ts;
		struct storage_stats ss;

		pthread_mutex_unlock(&tn->nsup_lock);
		storage_stats(ns->storage, &ss);
		check_stop_writes(ns, &ss);
		uint32_t period = atomic_load_relaxed(&ns->cfg->nsup_period);
		uint64_t now = clock_mono_ns();
		if (period > 0 && now - last_cycle >= (uint64_t)period * 1000000000ULL) {
			last_cycle = now;
			nsup_cycle(ns, start_ms);
			storage_stats(ns->storage, &ss);
			check_stop_writes(ns, &ss);
		}
		pthread_mutex_lock(&tn->nsup_lock);
		if (atomic_load_relaxed(&tn->nsup_stop))
			break;
		/* Stop-writes is re-evaluated every NSUP_CHECK_MS: fast writers
		 * fill space in well under a second. */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += NSUP_CHECK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&tn->nsup_cv, &tn->nsup_lock, &ts);
	}
	pthread_mutex_unlock(&tn->nsup_lock);
	return NULL;
}

void
nsup_kick(struct namespace *ns)
{
	struct txn_namespace *tn = txn_namespace_of(ns);

	pthread_mutex_lock(&tn->nsup_lock);
	pthread_cond_signal(&tn->nsup_cv);
	pthread_mutex_unlock(&tn->nsup_lock);
}

int
nsup_start(struct namespace *ns)
{
	struct txn_namespace *tn = txn_namespace_of(ns);
	struct storage_stats ss;
	int rc;

	pthread_mutex_init(&tn->nsup_lock, NULL);
	pthread_cond_init(&tn->nsup_cv, NULL);
	tn->nsup_stop = false;
	storage_stats(ns->storage, &ss);
	check_stop_writes(ns, &ss);
	rc = pthread_create(&tn->nsup_thread, NULL, nsup_main, ns);
	if (rc != 0)
		return -rc;
	pthread_setname_np(tn->nsup_thread, "nsup");
	tn->nsup_started = true;
	return 0;
}

void
nsup_stop(struct namespace *ns)
{
	struct txn_namespace *tn = txn_namespace_of(ns);

	if (!tn->nsup_started)
		return;
	pthread_mutex_lock(&tn->nsup_lock);
	atomic_store_relaxed(&tn->nsup_stop, true);
	pthread_cond_signal(&tn->nsup_cv);
	pthread_mutex_unlock(&tn->nsup_lock);
	pthread_join(tn->nsup_thread, NULL);
	pthread_mutex_destroy(&tn->nsup_lock);
	pthread_cond_destroy(&tn->nsup_cv);
	tn->nsup_started = false;
}
