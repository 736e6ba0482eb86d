/*
 * index_extra.c - what a few index entries carry beyond struct index_entry
 * (see index.h): a kept inode number that differs from the one the digest
 * gives (a renamed record), and an explicitly set access time.
 *
 * Why a side table: every record pays for every byte of its entry (the target
 * in docs/benchmarks.md: index + key within 100 bytes per record), and these values are rare: a
 * record only has an inode number of its own once it was renamed, and an
 * atime only when one was set to something other than its mtime.  An entry
 * with either has its has_extra bit set, and only then is this table asked.
 *
 * Two maps, each split into 64 stripes with their own mutex (a leaf lock:
 * taken under the partition lock, never the other way):
 *   - by digest: digest -> (ino, atime), for stat and listings;
 *   - by inode number: ino -> digest, for the kept inode numbers only, so
 *     that a record created at a renamed record's old name does not take
 *     the inode number the renamed one kept (tar, rsync -H and find would
 *     see two live files with one st_ino as hard links).
 * Each stripe is an open-addressing table (linear probing, deletion by
 * backward shift) that doubles when three quarters full: 40 bytes a slot,
 * no allocation per value.  Rejected: keying by entry address (an entry
 * freed before its value is removed would leave a dangling key), one lock
 * over the table (every create asks the by-inode map once any record was
 * renamed).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../base/atomic.h"
#include "index.h"

#define EXTRA_STRIPES 64
#define EXTRA_SLOTS_MIN 16

/* A slot: empty when ino and atime_ns are both 0 (a stored value never is). */
struct extra_slot {
	struct digest digest;
	uint64_t ino;
	int64_t atime_ns;
};

struct extra_stripe {
	pthread_mutex_t lock;
	struct extra_slot *slots;      /* cap slots; protected by lock */
	size_t cap, n;                 /* protected by lock */
} __attribute__((aligned(64)));

struct index_extra_table {
	struct extra_stripe by_digest[EXTRA_STRIPES];
	struct extra_stripe by_ino[EXTRA_STRIPES];
	uint64_t kept_inos;            /* atomic: entries of by_ino */
	uint64_t bytes;                /* atomic: slot arrays */
};

static uint64_t
mix64(uint64_t x)
{
	/* splitmix64's finaliser */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t
digest_hash(const struct digest *d)
{
	uint64_t h;

	/* Uniform already; bytes 12..19 are also the derived inode number. */
	memcpy(&h, d->bytes + 4, sizeof(h));
	return h;
}

static bool
slot_empty(const struct extra_slot *s)
{
	return s->ino == 0 && s->atime_ns == 0;
}

static uint64_t
slot_hash(const struct extra_slot *s, bool by_ino)
{
	return by_ino ? mix64(s->ino) : digest_hash(&s->digest);
}

static bool
slot_matches(const struct extra_slot *s, bool by_ino, const struct digest *d, uint64_t ino)
{
	return by_ino ? s->ino == ino : memcmp(&s->digest, d, sizeof(*d)) == 0;
}

/* Index of the slot for the key, or of the empty slot where it would go. */
static size_t
stripe_find(const struct extra_stripe *st, bool by_ino, uint64_t h, const struct digest *d,
    uint64_t ino)
{
	size_t i = (size_t)(h / EXTRA_STRIPES) & (st->cap - 1);

	while (!slot_empty(&st->slots[i]) && !slot_matches(&st->slots[i], by_ino, d, ino))
		i = (i + 1) & (st->cap - 1);
	return i;
}

static int
stripe_grow(struct index_extra_table *t, struct extra_stripe *st, bool by_ino)
{
	size_t cap = st->cap ? st->cap * 2 : EXTRA_SLOTS_MIN;
	struct extra_slot *old = st->slots, *slots = calloc(cap, sizeof(*slots));
	size_t old_cap = st->cap;

	if (slots == NULL)
		return -ENOMEM;
	st->slots = slots;
	st->cap = cap;
	for (size_t i = 0; i < old_cap; i++) {
		if (slot_empty(&old[i]))
			continue;
		size_t j = stripe_find(st, by_ino, slot_hash(&old[i], by_ino), &old[i].digest,
		    old[i].ino);
		st->slots[j] = old[i];
	}
	free(old);
	atomic_add(&t->bytes, (uint64_t)(cap - old_cap) * sizeof(struct extra_slot));
	return 0;
}

/* Remove slot i, moving later slots of the same run back (no tombstones). */
static void
stripe_remove_at(struct extra_stripe *st, bool by_ino, size_t i)
{
	size_t j = i;

	memset(&st->slots[i], 0, sizeof(st->slots[i]));
	st->n--;
	for (;;) {
		j = (j + 1) & (st->cap - 1);
		if (slot_empty(&st->slots[j]))
			return;
		size_t home = (size_t)(slot_hash(&st->slots[j], by_ino) / EXTRA_STRIPES) &
		    (st->cap - 1);
		/* Move j into the hole i if its home is not in (i, j]. */
		bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (!stays) {
			st->slots[i] = st->slots[j];
			memset(&st->slots[j], 0, sizeof(st->slots[j]));
			i = j;
		}
	}
}

static struct extra_stripe *
digest_stripe(struct index_extra_table *t, const struct digest *d, uint64_t *h)
{
	*h = digest_hash(d);
	return &t->by_digest[*h % EXTRA_STRIPES];
}

static struct extra_stripe *
ino_stripe(struct index_extra_table *t, uint64_t ino, uint64_t *h)
{
	*h = mix64(ino);
	return &t->by_ino[*h % EXTRA_STRIPES];
}

/* ---- the by-inode map ----------------------------------------------------- */

static int
ino_put(struct index_extra_table *t, uint64_t ino, const struct digest *d)
{
	uint64_t h;
	struct extra_stripe *st = ino_stripe(t, ino, &h);
	int rc = 0;

	pthread_mutex_lock(&st->lock);
	if ((st->n + 1) * 4 > st->cap * 3)
		rc = stripe_grow(t, st, true);
	if (rc == 0) {
		size_t i = stripe_find(st, true, h, d, ino);

		if (slot_empty(&st->slots[i])) {
			st->n++;
			atomic_inc(&t->kept_inos);
		}
		st->slots[i] = (struct extra_slot){ .digest = *d, .ino = ino };
	}
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/* Drop ino's owner if it is d (another record may have taken it since). */
static void
ino_remove(struct index_extra_table *t, uint64_t ino, const struct digest *d)
{
	uint64_t h;
	struct extra_stripe *st = ino_stripe(t, ino, &h);

	pthread_mutex_lock(&st->lock);
	if (st->cap > 0) {
		size_t i = stripe_find(st, true, h, d, ino);

		if (!slot_empty(&st->slots[i]) &&
		    memcmp(&st->slots[i].digest, d, sizeof(*d)) == 0) {
			stripe_remove_at(st, true, i);
			atomic_dec(&t->kept_inos);
		}
	}
	pthread_mutex_unlock(&st->lock);
}

/* ---- public --------------------------------------------------------------- */

int
index_extra_create(struct index_extra_table **out)
{
	struct index_extra_table *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -ENOMEM;
	for (int i = 0; i < EXTRA_STRIPES; i++) {
		pthread_mutex_init(&t->by_digest[i].lock, NULL);
		pthread_mutex_init(&t->by_ino[i].lock, NULL);
	}
	*out = t;
	return 0;
}

void
index_extra_destroy(struct index_extra_table *t)
{
	if (t == NULL)
		return;
	for (int i = 0; i < EXTRA_STRIPES; i++) {
		pthread_mutex_destroy(&t->by_digest[i].lock);
		pthread_mutex_destroy(&t->by_ino[i].lock);
		free(t->by_digest[i].slots);
		free(t->by_ino[i].slots);
	}
	free(t);
}

int
index_extra_put(struct index *ix, const struct digest *d, uint64_t ino, int64_t atime_ns)
{
	struct index_extra_table *t = ix->extra;
	uint64_t h, old_ino = 0;
	struct extra_stripe *st = digest_stripe(t, d, &h);
	int rc = 0;

	if (ino == 0 && atime_ns == 0) {
		index_extra_remove(ix, d);
		return 0;
	}
	pthread_mutex_lock(&st->lock);
	if ((st->n + 1) * 4 > st->cap * 3)
		rc = stripe_grow(t, st, false);
	if (rc == 0) {
		size_t i = stripe_find(st, false, h, d, 0);

		if (slot_empty(&st->slots[i]))
			st->n++;
		else
			old_ino = st->slots[i].ino;
		st->slots[i] = (struct extra_slot){ .digest = *d, .ino = ino, .atime_ns = atime_ns };
	}
	pthread_mutex_unlock(&st->lock);
	if (rc != 0)
		return rc;
	/* Lock order: never two stripes at once. */
	if (old_ino != 0 && old_ino != ino)
		ino_remove(t, old_ino, d);
	if (ino != 0 && ino != old_ino && (rc = ino_put(t, ino, d)) != 0) {
		index_extra_remove(ix, d);
		return rc;
	}
	return 0;
}

bool
index_extra_get(struct index *ix, const struct digest *d, uint64_t *ino, int64_t *atime_ns)
{
	uint64_t h;
	struct extra_stripe *st = digest_stripe(ix->extra, d, &h);
	bool found = false;

	pthread_mutex_lock(&st->lock);
	if (st->cap > 0) {
		size_t i = stripe_find(st, false, h, d, 0);

		if (!slot_empty(&st->slots[i])) {
			*ino = st->slots[i].ino;
			*atime_ns = st->slots[i].atime_ns;
			found = true;
		}
	}
	pthread_mutex_unlock(&st->lock);
	return found;
}

void
index_extra_remove(struct index *ix, const struct digest *d)
{
	struct index_extra_table *t = ix->extra;
	uint64_t h, ino = 0;
	struct extra_stripe *st = digest_stripe(t, d, &h);

	pthread_mutex_lock(&st->lock);
	if (st->cap > 0) {
		size_t i = stripe_find(st, false, h, d, 0);

		if (!slot_empty(&st->slots[i])) {
			ino = st->slots[i].ino;
			stripe_remove_at(st, false, i);
		}
	}
	pthread_mutex_unlock(&st->lock);
	if (ino != 0)
		ino_remove(t, ino, d);
}

bool
index_extra_ino_taken(struct index *ix, uint64_t ino, const struct digest *d)
{
	struct index_extra_table *t = ix->extra;
	uint64_t h;
	struct extra_stripe *st;
	bool taken = false;

	/* No record keeps an inode number of its own: the common case, no lock. */
	if (atomic_load_relaxed(&t->kept_inos) == 0)
		return false;
	st = ino_stripe(t, ino, &h);
	pthread_mutex_lock(&st->lock);
	if (st->cap > 0) {
		size_t i = stripe_find(st, true, h, d, ino);

		taken = !slot_empty(&st->slots[i]) &&
		    memcmp(&st->slots[i].digest, d, sizeof(*d)) != 0;
	}
	pthread_mutex_unlock(&st->lock);
	return taken;
}

uint64_t
index_extra_ino_alternative(uint64_t ino, unsigned attempt)
{
	uint64_t v = mix64(ino + 0x9e3779b97f4a7c15ULL * (attempt + 1));

	/* 0 is no inode, 1 the mount's root (as digest_inode avoids them). */
	return v < 2 ? v + (1ULL << 63) : v;
}

uint64_t
index_extra_bytes(const struct index *ix)
{
	return sizeof(*ix->extra) + atomic_load_relaxed(&ix->extra->bytes);
}
