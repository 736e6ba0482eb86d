/*
 * wblock.h - write-block accounting shared by every storage engine.
 *
 * A wblock table covers one device, file or stripe: wblock ids run from
 * `first` (the first id after the header) to n_wblocks - 1.  Each wblock has
 * a state and a live-byte count:
 *
 *   FREE --alloc--> RESERVED (being filled by a write or defrag buffer)
 *   RESERVED --release--> FREE (nothing live) | DEFRAG (live < lwm) | USED
 *   USED --bytes freed--> FREE (0 live) | DEFRAG (live < lwm)
 *   DEFRAG --defrag done, destinations durable--> FREE (0 live) | EMPTYING
 *   EMPTYING --bytes freed to 0--> FREE
 *
 * The defrag queue is a list threaded through the wblocks, so a queued
 * wblock whose last live record goes away is freed at once instead of
 * waiting for the defrag thread to reach it.  Defrag leaves a wblock in the
 * queue for WBLOCK_DEFRAG_SETTLE_MS after it was queued while space is
 * plentiful: a wblock that crossed defrag-lwm-pct because its records are
 * being overwritten in the order they were written (a rewrite pass over
 * files, a log) usually empties by itself within that time, and moving
 * its last records would only copy data about to be superseded.
 *
 * Ids never used since the storage was created are "pristine" and are
 * handed out only when the free queue is empty.  `reserve` wblocks are kept
 * back from client writes so defrag can always make progress.
 *
 * All fields are protected by the table's lock, except that
 * wblock_free_bytes takes live bytes off a USED wblock that stays at or
 * above the lwm with atomics alone; the engine may hold the lock
 * across its own reservation (the *_locked calls) to keep a write's space
 * reservation and live-byte update one critical section.
 */
#ifndef RECFS_STORAGE_WBLOCK_H
#define RECFS_STORAGE_WBLOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "../base/atomic.h"
#include "../base/shard.h"

enum wblock_state {
	WBLOCK_FREE = 0,
	WBLOCK_RESERVED = 1,
	WBLOCK_USED = 2,
	WBLOCK_DEFRAG = 3,
	WBLOCK_EMPTYING = 4,
};

struct wblock {
	uint32_t inuse;          /* live bytes; written under the lock with atomics */
	uint32_t used_end;       /* records occupy [0, used_end) */
	uint32_t q_prev, q_next; /* defrag queue links (ids; WBLOCK_NONE = end) */
	uint32_t queued_ms;      /* when it joined the defrag queue (monotonic ms, wraps) */
	uint16_t n_vac_dests;    /* defrag destinations not yet durable */
	uint8_t state;           /* enum wblock_state */
	uint8_t defrag_done;     /* defrag finished scanning it */
	uint8_t queued;          /* on the defrag queue */
	uint8_t active;          /* taken off the queue by defrag, not yet given back */
};

#define WBLOCK_NONE UINT32_MAX

/* How long a queued wblock is left to empty by itself while space is
 * plentiful (more than the reserve plus an eighth of the wblocks free). */
#define WBLOCK_DEFRAG_SETTLE_MS 200

struct wblock_table {
	pthread_mutex_t lock;
	uint32_t first;          /* first data wblock id */
	uint32_t n_wblocks;      /* ids < n_wblocks */
	uint32_t size;           /* write-block-size */
	uint32_t reserve;        /* free wblocks kept for defrag */
	uint32_t lwm_bytes;      /* defrag below this many live bytes; written atomically */
	struct wblock *blocks;   /* [id - first] */
	uint32_t *free_q;        /* ring */
	uint32_t free_head, free_count;
	uint32_t defrag_head, defrag_tail, defrag_count; /* list through blocks[] */
	uint64_t defrag_q_live;  /* live bytes in queued wblocks (the rest comes back) */
	uint32_t pristine;       /* ids >= pristine never written */
	struct sharded_counter used; /* sum of inuse, by thread: writers and
	                          * wblock_free_bytes' fast path add from every thread */
	uint64_t defrag_reads;   /* wblocks queued for defrag (Aerospike's meaning) */
	uint32_t defrag_active;  /* wblocks defrag took and has not given back yet */
	uint32_t free_published; /* atomic: the free count as of the last change, for
	                          * lock-free "is there plenty of space?" checks */
};

int wblock_table_init(struct wblock_table *t, uint32_t first, uint32_t n_wblocks, uint32_t size,
    uint32_t reserve, uint32_t lwm_pct);
void wblock_table_fini(struct wblock_table *t);

static inline struct wblock *wblock_get(struct wblock_table *t, uint32_t id)
{
	return &t->blocks[id - t->first];
}

/* Who asks for a wblock: client writes may not dip into the reserve;
 * deletes (tombstones, which free more than they take) may use all of it
 * but one wblock; defrag may use everything. */
enum wblock_user { WBLOCK_FOR_WRITE, WBLOCK_FOR_DELETE, WBLOCK_FOR_DEFRAG };

/* Take a free (or pristine) wblock into RESERVED.  0 or -ENOSPC. */
int wblock_alloc_locked(struct wblock_table *t, enum wblock_user user, uint32_t *id);
/* A write or defrag buffer is done with wblock id.  True when that queued
 * it for defrag (the caller wakes its defrag thread). */
bool wblock_release_locked(struct wblock_table *t, uint32_t id);
/* size live bytes added to id (a record was placed there). */
void wblock_add_locked(struct wblock_table *t, uint32_t id, uint32_t size);
/* size live bytes of id are superseded (takes the lock).  Returns true
 * when this queued id for defrag (so the caller can wake defrag). */
bool wblock_free_bytes(struct wblock_table *t, uint32_t id, uint32_t size);

/* Live bytes of a wblock, readable without the lock (defrag's early stop). */
static inline uint32_t wblock_inuse(const struct wblock *w)
{
	return atomic_load_relaxed(&w->inuse);
}
/*
 * Pop the next wblock to defragment if the queue holds more than
 * queue_min.  Unless urgent, or space is short, the oldest queued wblock
 * must have been queued WBLOCK_DEFRAG_SETTLE_MS ago (see above).
 * 0, or -EAGAIN (nothing to do now).
 */
int wblock_defrag_pop_locked(struct wblock_table *t, uint32_t queue_min, bool urgent, uint32_t *id);
/* Defrag moved every live record out of id; it becomes FREE once its
 * destinations are durable (n_vac_dests == 0). */
void wblock_defrag_done_locked(struct wblock_table *t, uint32_t id);
/* Defrag could not move every live record out of id (no space for the
 * copies): back on the defrag queue, to be taken again.  Records it did
 * move keep their destinations' hold (n_vac_dests) on id. */
void wblock_defrag_retry_locked(struct wblock_table *t, uint32_t id);
/* One destination holding records vacated from id became durable. */
void wblock_vacated_release_locked(struct wblock_table *t, uint32_t id);
/* New defrag-lwm-pct: queue USED wblocks now below it. */
void wblock_set_lwm_locked(struct wblock_table *t, uint32_t lwm_pct);

/* After a cold start filled in live bytes: ids below high_water become
 * FREE, DEFRAG or USED by their live bytes; ids above stay pristine. */
void wblock_rebuild_locked(struct wblock_table *t, uint32_t high_water);

/* Add one table's share to an engine's statistics: used bytes, wblocks
 * (total, free), the defrag queue (length, wblocks queued so far), space
 * on its way back (pending_free_bytes: what the queued wblocks give back
 * plus the wblocks defrag is emptying or waiting on), and the lowest free
 * percentage (avail_pct, which the caller starts at 100).  Lock held. */
struct storage_stats;
void wblock_stats_add_locked(const struct wblock_table *t, struct storage_stats *out);
/* The same table's used bytes and free percentage, without the lock (the
 * write path's stop-writes test): added to *used, *free_pct lowered. */
void wblock_space_add(const struct wblock_table *t, uint64_t *used, uint32_t *free_pct);

static inline uint32_t wblock_free_count_locked(const struct wblock_table *t)
{
	return t->free_count + (t->n_wblocks - t->pristine);
}

/* The free count without the lock: exact as of the last change, so fit
 * only for a fast path that falls back to the lock when space is short. */
static inline uint32_t wblock_free_published(const struct wblock_table *t)
{
	return atomic_load_relaxed(&t->free_published);
}

#endif
