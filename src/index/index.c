/*
 * index.c - partition trees and record locks (see index.h).
 *
 * Each partition is a left-leaning red-black tree (Sedgewick's LLRB): a
 * balanced tree in about a hundred lines, with no parent pointers, so an
 * entry pays 16 bytes of links.  Entries are the tree nodes; removal swaps
 * node positions rather than copying keys because entries have variable
 * size and outside pointers to them are protected by the record lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "index_slab.h"

/*
 * Order: set id, then digest.  Digests compare as three native words
 * (bytes 4..11, 12..19, 0..3) rather than memcmp: any total order serves,
 * and word compares cost a fraction of a byte-wise memcmp on the lookup
 * path.  Every user (find, insert, remove, listing cursors) goes through
 * this one function, so the order is the same everywhere.
 */
static inline int
entry_cmp(uint16_t set_id, const struct digest *d, const struct index_entry *e)
{
	uint64_t a, b;
	uint32_t x, y;

	if (set_id != e->set_id)
		return set_id < e->set_id ? -1 : 1;
	memcpy(&a, d->bytes + 4, 8);
	memcpy(&b, e->digest.bytes + 4, 8);
	if (a != b)
		return a < b ? -1 : 1;
	memcpy(&a, d->bytes + 12, 8);
	memcpy(&b, e->digest.bytes + 12, 8);
	if (a != b)
		return a < b ? -1 : 1;
	memcpy(&x, d->bytes, 4);
	memcpy(&y, e->digest.bytes, 4);
	return x == y ? 0 : x < y ? -1 : 1;
}

static inline bool
is_red(const struct index_entry *e)
{
	return e != NULL && e->red;
}

static struct index_entry *
rotate_left(struct index_entry *h)
{
	struct index_entry *x = h->right;

	h->right = x->left;
	x->left = h;
	x->red = h->red;
	h->red = 1;
	return x;
}

static struct index_entry *
rotate_right(struct index_entry *h)
{
	struct index_entry *x = h->left;

	h->left = x->right;
	x->right = h;
	x->red = h->red;
	h->red = 1;
	return x;
}

static void
flip_colors(struct index_entry *h)
{
	h->red = !h->red;
	h->left->red = !h->left->red;
	h->right->red = !h->right->red;
}

static struct index_entry *
fix_up(struct index_entry *h)
{
	if (is_red(h->right) && !is_red(h->left))
		h = rotate_left(h);
	if (is_red(h->left) && is_red(h->left->left))
		h = rotate_right(h);
	if (is_red(h->left) && is_red(h->right))
		flip_colors(h);
	return h;
}

static struct index_entry *
tree_insert(struct index_entry *h, struct index_entry *e)
{
	if (h == NULL) {
		e->left = e->right = NULL;
		e->red = 1;
		return e;
	}
	if (entry_cmp(e->set_id, &e->digest, h) < 0)
		h->left = tree_insert(h->left, e);
	else
		h->right = tree_insert(h->right, e);
	return fix_up(h);
}

static struct index_entry *
move_red_left(struct index_entry *h)
{
	flip_colors(h);
	if (is_red(h->right->left)) {
		h->right = rotate_right(h->right);
		h = rotate_left(h);
		flip_colors(h);
	}
	return h;
}

static struct index_entry *
move_red_right(struct index_entry *h)
{
	flip_colors(h);
	if (is_red(h->left->left)) {
		h = rotate_right(h);
		flip_colors(h);
	}
	return h;
}

static struct index_entry *
tree_remove_min(struct index_entry *h, struct index_entry **min)
{
	if (h->left == NULL) {
		*min = h;
		return NULL;
	}
	if (!is_red(h->left) && !is_red(h->left->left))
		h = move_red_left(h);
	h->left = tree_remove_min(h->left, min);
	return fix_up(h);
}

/* e must be in the tree rooted at h. */
static struct index_entry *
tree_remove(struct index_entry *h, struct index_entry *e)
{
	if (entry_cmp(e->set_id, &e->digest, h) < 0) {
		if (!is_red(h->left) && !is_red(h->left->left))
			h = move_red_left(h);
		h->left = tree_remove(h->left, e);
	} else {
		if (is_red(h->left))
			h = rotate_right(h);
		if (h == e && h->right == NULL)
			return NULL;
		if (!is_red(h->right) && !is_red(h->right->left))
			h = move_red_right(h);
		if (h == e) {
			struct index_entry *min;

			/* Put the right subtree's minimum where e was. */
			h->right = tree_remove_min(h->right, &min);
			min->left = h->left;
			min->right = h->right;
			min->red = h->red;
			h = min;
		} else {
			h->right = tree_remove(h->right, e);
		}
	}
	return fix_up(h);
}

int
index_create(struct index **out)
{
	struct index *ix = calloc(1, sizeof(*ix));

	if (ix == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < PARTITION_COUNT; i++)
		pthread_rwlock_init(&ix->partitions[i].lock, NULL);
	for (size_t i = 0; i < INDEX_RECORD_LOCKS; i++) {
		pthread_mutex_init(&ix->record_locks[i].mutex, NULL);
		pthread_cond_init(&ix->record_locks[i].cond, NULL);
	}
	ix->slab = index_slab_create();
	if (ix->slab == NULL || index_extra_create(&ix->extra) != 0 ||
	    index_dirs_create(&ix->dirs) != 0) {
		index_slab_destroy(ix->slab);
		index_extra_destroy(ix->extra);
		free(ix);
		return -ENOMEM;
	}
	for (size_t i = 0; i < PARTITION_COUNT; i++)
		ix->partitions[i].dirs = ix->dirs;
	*out = ix;
	return 0;
}

static void
tree_destroy(struct index *ix, struct index_entry *h, void (*fn)(void *, struct index_entry *), void *arg)
{
	while (h != NULL) {
		struct index_entry *right = h->right;

		tree_destroy(ix, h->left, fn, arg);
		if (fn != NULL)
			fn(arg, h);
		index_entry_free(ix, h);
		h = right;
	}
}

void
index_destroy(struct index *ix, void (*fn)(void *arg, struct index_entry *e), void *arg)
{
	if (ix == NULL)
		return;
	for (size_t i = 0; i < PARTITION_COUNT; i++) {
		for (size_t s = 0; s < INDEX_SPRIGS; s++)
			tree_destroy(ix, atomic_load_relaxed(&ix->partitions[i].sprigs[s]), fn, arg);
		pthread_rwlock_destroy(&ix->partitions[i].lock);
	}
	for (size_t i = 0; i < INDEX_RECORD_LOCKS; i++) {
		pthread_mutex_destroy(&ix->record_locks[i].mutex);
		pthread_cond_destroy(&ix->record_locks[i].cond);
	}
	index_slab_destroy(ix->slab);
	index_extra_destroy(ix->extra);
	index_dirs_destroy(ix->dirs);
	free(ix);
}

/* s->mutex held: d is locked by someone, or no slot is free for it. */
static bool
stripe_busy_locked(const struct index_record_stripe *s, const struct digest *d)
{
	if (s->n_held == INDEX_RECORD_LOCK_SLOTS)
		return true;
	for (uint32_t i = 0; i < s->n_held; i++)
		if (memcmp(s->held[i].bytes, d->bytes, DIGEST_SIZE) == 0)
			return true;
	return false;
}

void
index_record_lock(struct index *ix, const struct digest *d)
{
	struct index_record_stripe *s = index_record_lock_of(ix, d);

	pthread_mutex_lock(&s->mutex);
	while (stripe_busy_locked(s, d)) {
		s->n_waiting++;
		pthread_cond_wait(&s->cond, &s->mutex);
		s->n_waiting--;
	}
	s->held[s->n_held++] = *d;
	pthread_mutex_unlock(&s->mutex);
}

bool
index_record_trylock(struct index *ix, const struct digest *d)
{
	struct index_record_stripe *s = index_record_lock_of(ix, d);
	bool busy;

	/* the mutex is held only for a list change: worth waiting for */
	pthread_mutex_lock(&s->mutex);
	busy = stripe_busy_locked(s, d);
	if (!busy)
		s->held[s->n_held++] = *d;
	pthread_mutex_unlock(&s->mutex);
	return !busy;
}

void
index_record_unlock(struct index *ix, const struct digest *d)
{
	struct index_record_stripe *s = index_record_lock_of(ix, d);

	pthread_mutex_lock(&s->mutex);
	for (uint32_t i = 0; i < s->n_held; i++) {
		if (memcmp(s->held[i].bytes, d->bytes, DIGEST_SIZE) == 0) {
			s->held[i] = s->held[--s->n_held];
			break;
		}
	}
	/* waiters of different digests share the stripe's condition */
	if (s->n_waiting > 0)
		pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mutex);
}

void
index_record_lock_pair(struct index *ix, const struct digest *a, const struct digest *b)
{
	int c = memcmp(a->bytes, b->bytes, DIGEST_SIZE);

	if (c == 0) {
		index_record_lock(ix, a);
	} else if (c < 0) {
		index_record_lock(ix, a);
		index_record_lock(ix, b);
	} else {
		index_record_lock(ix, b);
		index_record_lock(ix, a);
	}
}

void
index_record_unlock_pair(struct index *ix, const struct digest *a, const struct digest *b)
{
	index_record_unlock(ix, a);
	if (memcmp(a->bytes, b->bytes, DIGEST_SIZE) != 0)
		index_record_unlock(ix, b);
}

struct index_entry *
index_find_locked(struct index_partition *p, uint16_t set_id, const struct digest *d)
{
	struct index_entry *h = atomic_load_relaxed(&p->sprigs[index_sprig_of(d)]);

	while (h != NULL) {
		int c = entry_cmp(set_id, d, h);

		if (c == 0)
			return h;
		h = c < 0 ? h->left : h->right;
	}
	return NULL;
}

struct index_entry *
index_entry_alloc(struct index *ix, uint16_t set_id, const struct digest *d, const char *key,
    size_t key_len)
{
	uint8_t cls;
	struct index_entry *e = index_slab_alloc(ix->slab, INDEX_ENTRY_BASE_SIZE + key_len, &cls);

	if (e == NULL)
		return NULL;
	memset(e, 0, INDEX_ENTRY_BASE_SIZE);
	e->slab_class = cls;
	e->set_id = set_id;
	e->digest = *d;
	e->key_len = (uint8_t)key_len;
	if (key_len > 0)
		memcpy(e->key, key, key_len);
	return e;
}

void
index_entry_free(struct index *ix, struct index_entry *e)
{
	index_slab_free(ix->slab, e, e->slab_class);
}

/* Roots and counts change under the partition lock held exclusive, and
 * are read without it (index_prefetch, index_entry_count): every access
 * is atomic (base/atomic.h).  Only the lock holder writes, so a relaxed
 * load and store is enough for the count. */
void
index_insert_locked(struct index_partition *p, struct index_entry *e)
{
	struct index_entry **root = &p->sprigs[index_sprig_of(&e->digest)];
	struct index_entry *h = tree_insert(atomic_load_relaxed(root), e);

	h->red = 0;
	atomic_store_relaxed(root, h);
	atomic_store_relaxed(&p->count, atomic_load_relaxed(&p->count) + 1);
	if (e->key_len > 0 && e->key[0] == '/')
		index_dirs_add(p->dirs, e);
}

void
index_remove_locked(struct index_partition *p, struct index_entry *e)
{
	struct index_entry **root = &p->sprigs[index_sprig_of(&e->digest)];
	struct index_entry *h = atomic_load_relaxed(root);

	/* LLRB removal starts by making the root red if both children are black. */
	if (!is_red(h->left) && !is_red(h->right))
		h->red = 1;
	h = tree_remove(h, e);
	if (h != NULL)
		h->red = 0;
	atomic_store_relaxed(root, h);
	atomic_store_relaxed(&p->count, atomic_load_relaxed(&p->count) - 1);
	e->left = e->right = NULL;
	if (e->key_len > 0 && e->key[0] == '/')
		index_dirs_remove(p->dirs, e);
}

/* Smallest entry of set_id in one tree after *after (or from the start). */
static struct index_entry *
tree_next(struct index_entry *h, uint16_t set_id, const struct digest *after)
{
	static const struct digest zero;
	struct index_entry *best = NULL;
	const struct digest *key = after != NULL ? after : &zero;

	while (h != NULL) {
		int c = entry_cmp(set_id, key, h);

		/* Strictly greater after a position; greater or equal from the start. */
		if (c < 0 || (c == 0 && after == NULL)) {
			best = h;
			h = h->left;
		} else {
			h = h->right;
		}
	}
	return best != NULL && best->set_id == set_id ? best : NULL;
}

struct index_entry *
index_next_locked(struct index_partition *p, uint16_t set_id, const struct digest *after)
{
	unsigned s = after != NULL ? index_sprig_of(after) : 0;

	for (; s < INDEX_SPRIGS; s++, after = NULL) {
		struct index_entry *e = tree_next(atomic_load_relaxed(&p->sprigs[s]), set_id, after);

		if (e != NULL)
			return e;
	}
	return NULL;
}

/* Smallest entry of one tree after (set_id, *after), any set; the
 * tree's first when after is NULL. */
static struct index_entry *
tree_after(struct index_entry *h, uint16_t set_id, const struct digest *after)
{
	struct index_entry *best = NULL;

	while (h != NULL) {
		if (after == NULL || entry_cmp(set_id, after, h) < 0) {
			best = h;
			h = h->left;
		} else {
			h = h->right;
		}
	}
	return best;
}

int
index_partition_walk(struct index *ix, uint32_t pid, struct index_walk_pos *pos,
    int (*fn)(void *arg, const struct index_entry *e), void *arg, unsigned max)
{
	struct index_partition *p = &ix->partitions[pid];
	unsigned s = pos->started ? index_sprig_of(&pos->last) : 0, n = 0;
	const struct digest *after = pos->started ? &pos->last : NULL;
	int rc = 0;

	if (pos->done || max == 0)
		return 0;
	pthread_rwlock_rdlock(&p->lock);
	while (n < max && s < INDEX_SPRIGS) {
		struct index_entry *e = tree_after(atomic_load_relaxed(&p->sprigs[s]), pos->set_id,
		    after);

		if (e == NULL) {
			/* This sprig is done: the next starts from its first entry. */
			s++;
			after = NULL;
			continue;
		}
		pos->last = e->digest;
		pos->set_id = e->set_id;
		pos->started = true;
		after = &pos->last;
		n++;
		rc = fn(arg, e);
		if (rc != 0)
			break;
	}
	pthread_rwlock_unlock(&p->lock);
	if (s == INDEX_SPRIGS)
		pos->done = true;
	return rc < 0 ? rc : (int)n;
}

int
index_key_compare(uint16_t set_a, const struct digest *a, uint16_t set_b, const struct digest *b)
{
	struct index_entry probe;
	unsigned sa = index_sprig_of(a), sb = index_sprig_of(b);

	if (sa != sb)
		return sa < sb ? -1 : 1;
	probe.set_id = set_b;
	probe.digest = *b;
	return entry_cmp(set_a, a, &probe);
}

uint64_t
index_memory_bytes(struct index *ix)
{
	return index_slab_bytes(ix->slab) + sizeof(*ix) + index_extra_bytes(ix);
}

uint64_t
index_entry_count(struct index *ix)
{
	uint64_t n = 0;

	for (size_t i = 0; i < PARTITION_COUNT; i++)
		n += atomic_load_relaxed(&ix->partitions[i].count);
	return n;
}
