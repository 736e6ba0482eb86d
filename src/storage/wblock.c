/*
 * wblock.c - write-block states, live-byte counts and queues (see wblock.h).
 *
 * The free queue is a ring sized to the number of wblocks and the defrag
 * queue a list through the wblocks, so pushing never allocates and never
 * fails: a wblock is on at most one queue at a time.
 */
#include <errno.h>
#include <stdlib.h>

#include "../base/atomic.h"
#include "../base/clock.h"
#include "../base/lock.h"
#include "storage.h"
#include "wblock.h"

int
wblock_table_init(struct wblock_table *t, uint32_t first, uint32_t n_wblocks, uint32_t size,
    uint32_t reserve, uint32_t lwm_pct)
{
	uint32_t n = n_wblocks - first;

	*t = (struct wblock_table){ 0 };
	if (n_wblocks <= first)
		return -EINVAL;
	t->blocks = calloc(n, sizeof(*t->blocks));
	t->free_q = calloc(n, sizeof(uint32_t));
	if (t->blocks == NULL || t->free_q == NULL) {
		wblock_table_fini(t);
		return -ENOMEM;
	}
	mutex_init_adaptive(&t->lock);
	t->first = first;
	t->n_wblocks = n_wblocks;
	t->size = size;
	t->reserve = reserve;
	t->lwm_bytes = (uint32_t)((uint64_t)size * lwm_pct / 100);
	t->pristine = first;
	t->free_published = n;
	t->defrag_head = t->defrag_tail = WBLOCK_NONE;
	return 0;
}

void
wblock_table_fini(struct wblock_table *t)
{
	if (t->blocks != NULL)
		pthread_mutex_destroy(&t->lock);
	free(t->blocks);
	free(t->free_q);
	t->blocks = NULL;
	t->free_q = NULL;
}

/* States, live bytes and the lwm are written under the lock;
 * wblock_free_bytes' fast path reads them (and takes live bytes off) without
 * it, so every access is atomic (base/atomic.h). */
static inline void
state_set(struct wblock *w, enum wblock_state st)
{
	atomic_store_relaxed(&w->state, (uint8_t)st);
}

static inline enum wblock_state
state_of(const struct wblock *w)
{
	return (enum wblock_state)atomic_load_relaxed(&w->state);
}

static inline uint32_t
lwm_of(const struct wblock_table *t)
{
	return atomic_load_relaxed(&t->lwm_bytes);
}

/* A wblock defrag took leaves the DEFRAG state (freed or EMPTYING). */
static void
active_end(struct wblock_table *t, struct wblock *w)
{
	if (w->active) {
		w->active = 0;
		t->defrag_active--;
	}
}

static void
free_push(struct wblock_table *t, uint32_t id)
{
	uint32_t n = t->n_wblocks - t->first;
	struct wblock *w = wblock_get(t, id);

	active_end(t, w);
	state_set(w, WBLOCK_FREE);
	w->used_end = 0;
	w->defrag_done = 0;
	t->free_q[(t->free_head + t->free_count) % n] = id;
	t->free_count++;
	atomic_store_relaxed(&t->free_published, wblock_free_count_locked(t));
}

static void
defrag_push(struct wblock_table *t, uint32_t id)
{
	struct wblock *w = wblock_get(t, id);

	state_set(w, WBLOCK_DEFRAG);
	w->queued = 1;
	w->queued_ms = (uint32_t)(clock_mono_ns() / 1000000);
	t->defrag_q_live += wblock_inuse(w);
	w->q_next = WBLOCK_NONE;
	w->q_prev = t->defrag_tail;
	if (t->defrag_tail != WBLOCK_NONE)
		wblock_get(t, t->defrag_tail)->q_next = id;
	else
		t->defrag_head = id;
	t->defrag_tail = id;
	t->defrag_count++;
	t->defrag_reads++;
}

static void
defrag_unlink(struct wblock_table *t, uint32_t id)
{
	struct wblock *w = wblock_get(t, id);

	if (w->q_prev != WBLOCK_NONE)
		wblock_get(t, w->q_prev)->q_next = w->q_next;
	else
		t->defrag_head = w->q_next;
	if (w->q_next != WBLOCK_NONE)
		wblock_get(t, w->q_next)->q_prev = w->q_prev;
	else
		t->defrag_tail = w->q_prev;
	w->queued = 0;
	t->defrag_count--;
	t->defrag_q_live -= wblock_inuse(w);
}

int
wblock_alloc_locked(struct wblock_table *t, enum wblock_user user, uint32_t *id)
{
	uint32_t n = t->n_wblocks - t->first;
	uint32_t keep = user == WBLOCK_FOR_WRITE ? t->reserve : user == WBLOCK_FOR_DELETE ? 1 : 0;

	if (wblock_free_count_locked(t) <= keep)
		return -ENOSPC;
	if (t->free_count > 0) {
		*id = t->free_q[t->free_head];
		t->free_head = (t->free_head + 1) % n;
		t->free_count--;
	} else if (t->pristine < t->n_wblocks) {
		*id = t->pristine++;
	} else {
		return -ENOSPC;
	}
	atomic_store_relaxed(&t->free_published, wblock_free_count_locked(t));
	struct wblock *w = wblock_get(t, *id);
	state_set(w, WBLOCK_RESERVED);
	w->used_end = 0;
	w->defrag_done = 0;
	return 0;
}

bool
wblock_release_locked(struct wblock_table *t, uint32_t id)
{
	struct wblock *w = wblock_get(t, id);

	if (wblock_inuse(w) == 0) {
		free_push(t, id);
	} else if (wblock_inuse(w) < lwm_of(t)) {
		defrag_push(t, id);
		return true;
	} else {
		state_set(w, WBLOCK_USED);
	}
	return false;
}

void
wblock_add_locked(struct wblock_table *t, uint32_t id, uint32_t size)
{
	/* Atomic although locked: defrag and wblock_free_bytes' fast path
	 * change or read them without the lock. */
	atomic_add(&wblock_get(t, id)->inuse, size);
	sharded_add(&t->used, size);
}

bool
wblock_free_bytes(struct wblock_table *t, uint32_t id, uint32_t size)
{
	struct wblock *w = wblock_get(t, id);
	bool queued_now = false;

	/*
	 * Fast path, no lock: a USED wblock that stays at or above the lwm
	 * changes no state and no queue, only its live bytes (every rewrite
	 * of a record not in the current buffer).  A concurrent state change
	 * under the lock either changes inuse too (the CAS then fails and we
	 * look again) or is a defrag-lwm-pct sweep, whose queue accounting
	 * may then be off by this size until the wblock leaves the queue.
	 */
	if (state_of(w) == WBLOCK_USED) {
		uint32_t lwm = lwm_of(t);
		uint32_t old = wblock_inuse(w);

		while (old > size && old - size >= lwm && state_of(w) == WBLOCK_USED) {
			if (atomic_cas_relaxed(&w->inuse, &old, old - size)) {
				sharded_add(&t->used, -(int64_t)size);
				return false;
			}
		}
	}
	pthread_mutex_lock(&t->lock);
	/* Another fast path may still take bytes off a USED wblock above the
	 * lwm: decide on the value this subtraction left. */
	uint32_t left = atomic_sub(&w->inuse, size);
	sharded_add(&t->used, -(int64_t)size);
	if (w->queued)
		t->defrag_q_live -= size;
	switch (state_of(w)) {
	case WBLOCK_USED:
		if (left == 0)
			free_push(t, id);
		else if (left < lwm_of(t)) {
			defrag_push(t, id);
			queued_now = true;
		}
		break;
	case WBLOCK_EMPTYING:
		if (wblock_inuse(w) == 0)
			free_push(t, id);
		break;
	case WBLOCK_DEFRAG:
		if (wblock_inuse(w) != 0)
			break;
		if (w->queued) {
			/* Emptied while waiting: nothing left to move (once the
			 * copies an earlier, cut-short pass made are durable). */
			defrag_unlink(t, id);
			if (w->n_vac_dests == 0)
				free_push(t, id);
			else
				w->defrag_done = 1;
		} else if (w->defrag_done && w->n_vac_dests == 0) {
			free_push(t, id);
		}
		break;
	default:
		break;  /* RESERVED: the release decides */
	}
	pthread_mutex_unlock(&t->lock);
	return queued_now;
}

int
wblock_defrag_pop_locked(struct wblock_table *t, uint32_t queue_min, bool urgent, uint32_t *id)
{
	if (t->defrag_count == 0 || t->defrag_count <= queue_min)
		return -EAGAIN;
	if (!urgent && wblock_free_count_locked(t) > t->reserve + (t->n_wblocks - t->first) / 8) {
		uint32_t now = (uint32_t)(clock_mono_ns() / 1000000);

		/* Wrap-safe age of the oldest entry (the queue is FIFO). */
		if (now - wblock_get(t, t->defrag_head)->queued_ms < WBLOCK_DEFRAG_SETTLE_MS)
			return -EAGAIN;
	}
	*id = t->defrag_head;
	defrag_unlink(t, *id);
	wblock_get(t, *id)->active = 1;
	t->defrag_active++;
	return 0;
}

static void
defrag_settle(struct wblock_table *t, uint32_t id)
{
	struct wblock *w = wblock_get(t, id);

	if (state_of(w) != WBLOCK_DEFRAG || !w->defrag_done || w->n_vac_dests != 0)
		return;
	if (wblock_inuse(w) == 0) {
		free_push(t, id);
	} else {
		active_end(t, w);
		state_set(w, WBLOCK_EMPTYING);
	}
}

void
wblock_defrag_done_locked(struct wblock_table *t, uint32_t id)
{
	wblock_get(t, id)->defrag_done = 1;
	defrag_settle(t, id);
}

void
wblock_defrag_retry_locked(struct wblock_table *t, uint32_t id)
{
	struct wblock *w = wblock_get(t, id);

	if (state_of(w) != WBLOCK_DEFRAG || w->queued)
		return;
	if (wblock_inuse(w) == 0) {
		/* Everything it held was overwritten meanwhile. */
		w->defrag_done = 1;
		defrag_settle(t, id);
		return;
	}
	active_end(t, w);
	w->defrag_done = 0;
	defrag_push(t, id);
}

void
wblock_vacated_release_locked(struct wblock_table *t, uint32_t id)
{
	struct wblock *w = wblock_get(t, id);

	if (w->n_vac_dests > 0)
		w->n_vac_dests--;
	defrag_settle(t, id);
}

void
wblock_set_lwm_locked(struct wblock_table *t, uint32_t lwm_pct)
{
	uint32_t old = lwm_of(t), lwm = (uint32_t)((uint64_t)t->size * lwm_pct / 100);

	atomic_store_relaxed(&t->lwm_bytes, lwm);
	if (lwm <= old)
		return;
	for (uint32_t id = t->first; id < t->pristine; id++) {
		struct wblock *w = wblock_get(t, id);

		if (state_of(w) == WBLOCK_USED && wblock_inuse(w) > 0 && wblock_inuse(w) < lwm)
			defrag_push(t, id);
	}
}

void
wblock_rebuild_locked(struct wblock_table *t, uint32_t high_water)
{
	t->free_head = t->free_count = 0;
	t->defrag_head = t->defrag_tail = WBLOCK_NONE;
	t->defrag_count = 0;
	t->defrag_q_live = 0;
	t->defrag_active = 0;
	if (high_water < t->first)
		high_water = t->first;
	if (high_water > t->n_wblocks)
		high_water = t->n_wblocks;
	t->pristine = high_water;
	atomic_store_relaxed(&t->free_published, wblock_free_count_locked(t));
	for (uint32_t id = t->first; id < high_water; id++) {
		struct wblock *w = wblock_get(t, id);

		w->used_end = t->size;
		w->n_vac_dests = 0;
		w->active = 0;
		if (wblock_inuse(w) == 0)
			free_push(t, id);
		else if (wblock_inuse(w) < lwm_of(t))
			defrag_push(t, id);
		else
			state_set(w, WBLOCK_USED);
	}
}

void
wblock_space_add(const struct wblock_table *t, uint64_t *used, uint32_t *free_pct)
{
	uint32_t n = t->n_wblocks - t->first;
	uint32_t pct = (uint32_t)((uint64_t)wblock_free_published(t) * 100 / n);
	int64_t u = sharded_sum(&t->used);

	*used += u > 0 ? (uint64_t)u : 0;
	if (pct < *free_pct)
		*free_pct = pct;
}

void
wblock_stats_add_locked(const struct wblock_table *t, struct storage_stats *out)
{
	uint32_t n = t->n_wblocks - t->first, free_n = wblock_free_count_locked(t);
	uint32_t pct = (uint32_t)((uint64_t)free_n * 100 / n);

	out->used_bytes += (uint64_t)sharded_sum(&t->used);
	out->n_wblocks += n;
	out->free_wblocks += free_n;
	out->defrag_q += t->defrag_count;
	/* Defrag's wblocks come back whole once their records' new copies
	 * are written (those copies count in the destination wblocks). */
	out->pending_free_bytes += (uint64_t)t->defrag_count * t->size - t->defrag_q_live +
	    (uint64_t)t->defrag_active * t->size;
	out->defrag_reads += t->defrag_reads;
	if (pct < out->avail_pct)
		out->avail_pct = pct;
}
