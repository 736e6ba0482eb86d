/*
 * tomb_raider.c - reclaiming tombstones while the daemon runs.
 *
 * A tombstone must stay as long as an older copy of its record may still
 * sit somewhere on storage (in a wblock not yet rewritten): dropping it
 * earlier would let the next cold start bring the deleted record back.
 * Cold start settles this for free (it sees every copy).  While running,
 * this thread does the same every tomb-raider-period seconds:
 *
 *   1. collect the tombstones that exist now (their older copies, if any,
 *      were written before this moment, and stale copies never move);
 *   2. walk every record copy on storage (storage ops->scan: every wblock
 *      up to the high-water mark, RAM buffers included);
 *   3. drop each collected tombstone whose digest showed up in no
 *      non-tombstone copy, if it is still the same tombstone (same
 *      generation and last-update time) under its record lock.
 *
 * In a cluster a record's tombstone is on each of its replicas, and only
 * its partition's master decides (namespace->raider_reclaim, the
 * transaction layer's): at the master it asks every other replica to drop
 * the same tombstone and answers 0 - drop here too - only when each did
 * or holds none; anywhere else it answers NS_RAID_NOT_MINE and the
 * tombstone stays.  Each pass's table (which tombstones had no older copy
 * here) is kept until the next one: a replica asked to drop a tombstone
 * drops it only if that pass checked it (namespace_tomb_reclaim), since
 * its own storage may still hold an older copy the master's did not.  A
 * replica that has not checked it yet makes the master keep its own and
 * ask again after its next pass.  Set markers' tombstones are each
 * node's own (the set layer's, not replicated): always dropped here.
 *
 * Once the node has had a network (namespace->clustered), a pass collects
 * only tombstones older than tomb-raider-eligible-age: a node away from
 * the cluster may hold an older copy no scan here can see.  A memory
 * engine keeps tombstones only in a cluster, for that reason alone: its
 * pass has nothing to scan (no older copy outlives its replacement).
 *
 * The pass reads the whole device, throttled by the engine's scan; it is
 * skipped when there are no tombstones.  Rejected: tracking, per
 * tombstone, which wblocks held older copies (needs history per record).
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
#include "namespace.h"

struct raid_entry {
	struct digest digest;
	uint16_t set_id;
	uint16_t generation;
	bool older_copy;
	bool used;
	uint64_t last_update_ms;
};

struct raid {
	struct raid_entry *slots;
	size_t cap;                 /* power of 2 */
	size_t n;
	uint64_t before_ms;         /* collect tombstones last updated before this */
};

static struct raid_entry *
raid_slot(struct raid *r, const struct digest *d)
{
	uint64_t h;

	memcpy(&h, d->bytes + 8, sizeof(h));
	for (size_t i = h & (r->cap - 1);; i = (i + 1) & (r->cap - 1)) {
		struct raid_entry *s = &r->slots[i];

		if (!s->used || digest_compare(&s->digest, d) == 0)
			return s;
	}
}

static int
raid_add(struct raid *r, const struct index_entry *e)
{
	if ((r->n + 1) * 2 > r->cap) {
		struct raid bigger = { .cap = r->cap ? r->cap * 2 : 1024, .before_ms = r->before_ms };

		bigger.slots = calloc(bigger.cap, sizeof(*bigger.slots));
		if (bigger.slots == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < r->cap; i++)
			if (r->slots[i].used)
				*raid_slot(&bigger, &r->slots[i].digest) = r->slots[i];
		bigger.n = r->n;
		free(r->slots);
		*r = bigger;
	}
	struct raid_entry *s = raid_slot(r, &e->digest);
	*s = (struct raid_entry){ .digest = e->digest, .set_id = e->set_id,
	    .generation = (uint16_t)e->generation, .last_update_ms = e->last_update_ms, .used = true };
	r->n++;
	return 0;
}

/* Partition walk callback: collect the tombstones (set markers' too) old
 * enough to go. */
static int
raid_collect(void *arg, const struct index_entry *e)
{
	const struct raid *r = arg;

	return e->tombstone && e->last_update_ms < r->before_ms ? raid_add(arg, e) : 0;
}

/* Storage scan callback: a non-tombstone copy of a collected digest. */
static void
raid_seen(void *arg, const uint8_t *flat, uint32_t size)
{
	struct raid *r = arg;
	uint8_t flags = flat[9];

	if (flags & RECORD_F_TOMBSTONE)
		return;
	struct raid_entry *s = raid_slot(r, record_flat_digest(flat));
	if (s->used)
		s->older_copy = true;
}

/* The entry of t if it is still t's record's current version (record lock
 * held). */
static struct index_entry *
tomb_find(struct index_partition *p, const struct ns_tomb *t)
{
	struct index_entry *e = index_find_locked(p, t->set_id, &t->digest);

	if (e != NULL && e->tombstone && (uint16_t)e->generation == t->generation &&
	    e->last_update_ms == t->last_update_ms)
		return e;
	return NULL;
}

/*
 * Drop tombstone t if, under its record lock, it is still the record's
 * current version and (ask) namespace->raider_reclaim agrees.  1 dropped,
 * 0 not (changed meanwhile), else raider_reclaim's answer.
 */
static int
tomb_drop(struct namespace *ns, const struct ns_tomb *t, bool ask)
{
	int (*decide)(struct namespace *, const struct ns_tomb *) =
	    atomic_load_acquire(&ns->raider_reclaim);
	struct index_partition *p = index_partition_of(ns->index, &t->digest);
	struct index_entry *e;
	storage_loc loc = 0;
	bool marker;
	int rc = 0;

	index_record_lock(ns->index, &t->digest);
	pthread_rwlock_rdlock(&p->lock);
	e = tomb_find(p, t);
	marker = e != NULL && e->set_marker;
	pthread_rwlock_unlock(&p->lock);
	if (e == NULL)
		goto out;
	if (ask && !marker && decide != NULL) {
		/* No partition lock held: this may wait for other nodes. */
		rc = decide(ns, t);
		if (rc != 0)
			goto out;
	}
	pthread_rwlock_wrlock(&p->lock);
	e = tomb_find(p, t);
	if (e != NULL) {
		loc = e->loc;
		namespace_entry_count(ns, e, -1, storage_loc_size(loc));
		index_remove_locked(p, e);
	}
	pthread_rwlock_unlock(&p->lock);
	if (e != NULL) {
		storage_free(ns->storage, loc);
		index_entry_free(ns->index, e);
		atomic_inc(&ns->tombstones_reclaimed);
		rc = 1;
	}
out:
	index_record_unlock(ns->index, &t->digest);
	return rc;
}

/* One pass; returns the number of tombstones reclaimed. */
static uint64_t
raid_pass(struct namespace *ns)
{
	struct raid r = { .before_ms = UINT64_MAX }, *keep;
	uint64_t dropped = 0;

	/* In a cluster, a node away (split off, stopped) may still hold an
	 * older copy of a deleted record, and nothing but the tombstone keeps
	 * migration from bringing that copy back when it returns: each
	 * tombstone stays eligible-age seconds at least (docs/cluster.md
	 * "Write path with replication").  Memory engines keep tombstones
	 * only there. */
	if (atomic_load_relaxed(&ns->clustered) || !ns->storage->persistent) {
		uint64_t age_ms = (uint64_t)atomic_load_relaxed(&ns->cfg->storage.tomb_raider_eligible_age) * 1000;
		uint64_t now = clock_epoch_ms();

		r.before_ms = now > age_ms ? now - age_ms : 0;
	}

	/* Every partition whole, in one walk call each (its lock held shared
	 * meanwhile).  Out of memory: the tombstones collected so far are
	 * still checked; the rest wait for the next pass. */
	for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++) {
		struct index_walk_pos pos = { 0 };

		if (index_partition_walk(ns->index, pid, &pos, raid_collect, &r, UINT_MAX) < 0)
			break;
	}
	if (r.n == 0)
		goto out;
	/* Without persistence no older copy outlives its replacement. */
	if ((ns->storage->persistent &&
	    ns->storage->ops->scan(ns->storage, raid_seen, &r, &ns->raider_stop) != 0) ||
	    atomic_load_relaxed(&ns->raider_stop) || atomic_load_relaxed(&ns->migrations_pending) != 0) {
		free(r.slots);
		return 0;
	}
	for (size_t i = 0; i < r.cap && !atomic_load_relaxed(&ns->raider_stop); i++) {
		struct raid_entry *s = &r.slots[i];
		struct ns_tomb t;

		if (!s->used || s->older_copy)
			continue;
		t = (struct ns_tomb){ .digest = s->digest, .set_id = s->set_id,
		    .generation = s->generation, .last_update_ms = s->last_update_ms };
		int rc = tomb_drop(ns, &t, true);

		if (rc == 1)
			dropped++;
		else if (rc == -ETIMEDOUT)
			break;   /* another node does not answer: the rest next pass */
	}
out:
	/* This pass's table answers the master's requests until the next. */
	keep = NULL;
	if (r.n > 0) {
		keep = malloc(sizeof(*keep));
		if (keep != NULL)
			*keep = r;
		else
			free(r.slots);
	}
	pthread_mutex_lock(&ns->raid_clean_lock);
	struct raid *old = ns->raid_clean;
	ns->raid_clean = keep;
	pthread_mutex_unlock(&ns->raid_clean_lock);
	if (old != NULL) {
		free(old->slots);
		free(old);
	}
	return dropped;
}

int
namespace_tomb_reclaim(struct namespace *ns, const struct ns_tomb *t)
{
	struct index_partition *p = index_partition_of(ns->index, &t->digest);
	struct index_entry *e;
	bool checked = false, held;

	pthread_mutex_lock(&ns->raid_clean_lock);
	if (ns->raid_clean != NULL) {
		struct raid_entry *s = raid_slot(ns->raid_clean, &t->digest);

		checked = s->used && !s->older_copy && s->set_id == t->set_id &&
		    s->generation == t->generation && s->last_update_ms == t->last_update_ms;
	}
	pthread_mutex_unlock(&ns->raid_clean_lock);
	if (checked)
		return tomb_drop(ns, t, false) == 1 ? 1 : -EBUSY;
	/* Not checked: answer whether this node holds the record at all. */
	index_record_lock(ns->index, &t->digest);
	pthread_rwlock_rdlock(&p->lock);
	e = index_find_locked(p, t->set_id, &t->digest);
	held = e != NULL;
	pthread_rwlock_unlock(&p->lock);
	index_record_unlock(ns->index, &t->digest);
	return held ? -EBUSY : 0;
}

static void *
raider_main(void *arg)
{
	struct namespace *ns = arg;
	uint64_t last = clock_mono_ns();

	pthread_mutex_lock(&ns->raider_lock);
	while (!atomic_load_relaxed(&ns->raider_stop)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&ns->raider_cv, &ns->raider_lock, &ts);
		uint32_t period = atomic_load_relaxed(&ns->cfg->storage.tomb_raider_period);
		uint64_t now = clock_mono_ns();
		if (atomic_load_relaxed(&ns->raider_stop) || period == 0 || now - last < (uint64_t)period * 1000000000ULL)
			continue;
		/* While partitions migrate, a tombstone may be all that keeps an
		 * older copy on another node from coming back: wait for them. */
		if (atomic_load_relaxed(&ns->migrations_pending) != 0)
			continue;
		last = now;
		if (atomic_load_relaxed(&ns->tombstones) == 0)
			continue;
		pthread_mutex_unlock(&ns->raider_lock);
		uint64_t dropped = raid_pass(ns);
		atomic_inc(&ns->raider_passes);
		if (dropped > 0)
			log_info("namespace", "{%s} tomb raider: %" PRIu64 " tombstones reclaimed, %" PRIu64
			    " kept", ns->name, dropped, atomic_load_relaxed(&ns->tombstones));
		pthread_mutex_lock(&ns->raider_lock);
	}
	pthread_mutex_unlock(&ns->raider_lock);
	return NULL;
}

int
tomb_raider_start(struct namespace *ns)
{
	int rc;

	pthread_mutex_init(&ns->raider_lock, NULL);
	pthread_cond_init(&ns->raider_cv, NULL);
	ns->raider_stop = false;
	rc = pthread_create(&ns->raider_thread, NULL, raider_main, ns);
	if (rc != 0)
		return -rc;
	pthread_setname_np(ns->raider_thread, "tomb-raider");
	ns->raider_started = true;
	return 0;
}

void
tomb_raider_stop(struct namespace *ns)
{
	if (!ns->raider_started)
		return;
	pthread_mutex_lock(&ns->raider_lock);
	atomic_store_relaxed(&ns->raider_stop, true);
	pthread_cond_signal(&ns->raider_cv);
	pthread_mutex_unlock(&ns->raider_lock);
	pthread_join(ns->raider_thread, NULL);
	pthread_mutex_destroy(&ns->raider_lock);
	pthread_cond_destroy(&ns->raider_cv);
	ns->raider_started = false;
	pthread_mutex_lock(&ns->raid_clean_lock);
	if (ns->raid_clean != NULL) {
		free(ns->raid_clean->slots);
		free(ns->raid_clean);
		ns->raid_clean = NULL;
	}
	pthread_mutex_unlock(&ns->raid_clean_lock);
}
