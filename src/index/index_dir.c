/*
 * index_dir.c - the directory index: directory id -> its entries in this
 * index (see index.h, "the directory index").
 *
 * Design: a hash table of directories, each with an array of pointers to
 * its index entries sorted by (partition, digest), the order of a listing
 * cursor.  A listing page is one binary search and a copy of up to a page
 * of digests; an entry created or removed is one binary search and a
 * memmove of the pointers after it (8 bytes each: a 100 000-entry
 * directory moves 800 kB at worst, about 0.1 ms).  The entry pointers stay
 * valid while they are listed here: an entry leaves the index (and this
 * table, in index_remove_locked) before it is freed, and its digest never
 * changes, so digests are read under this table's mutex alone.
 *
 * Rejected: a second tree per partition (every listing page would probe
 * all 4096 partitions, as a set listing does); keeping the entries' names
 * here (the index already has them; this would double the key memory).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../base/atomic.h"
#include "../base/bytes.h"
#include "../base/log.h"
#include "index.h"

#define DIRS_BUCKETS_MIN 64

struct dir_node {
	struct dir_node *next;         /* hash chain */
	uint64_t id;
	struct index_entry **v;        /* sorted by (partition, digest) */
	uint32_t n, cap;
};

struct index_dirs {
	pthread_mutex_t lock;
	struct dir_node **buckets;     /* protected by lock */
	size_t mask;                   /* buckets - 1 */
	size_t count;                  /* directories */
	uint64_t failures;             /* atomic */
};

bool
index_dir_key_id(const char *key, size_t len, uint64_t *id)
{
	uint64_t v;

	/* "/d" + 16 hex + "/" + a name of at least one byte. */
	if (len < 20 || key[0] != '/' || key[1] != 'd' || key[18] != '/' ||
	    !hex_get(key + 2, 16, &v) || v == 0)
		return false;
	*id = v;
	return true;
}

static size_t
dir_hash(uint64_t id)
{
	return (size_t)((id * 0x9e3779b97f4a7c15ULL) >> 17);
}

int
index_dirs_create(struct index_dirs **out)
{
	struct index_dirs *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return -ENOMEM;
	d->buckets = calloc(DIRS_BUCKETS_MIN, sizeof(*d->buckets));
	if (d->buckets == NULL) {
		free(d);
		return -ENOMEM;
	}
	d->mask = DIRS_BUCKETS_MIN - 1;
	pthread_mutex_init(&d->lock, NULL);
	*out = d;
	return 0;
}

void
index_dirs_destroy(struct index_dirs *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i <= d->mask; i++) {
		struct dir_node *n = d->buckets[i], *next;

		for (; n != NULL; n = next) {
			next = n->next;
			free(n->v);
			free(n);
		}
	}
	free(d->buckets);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

static struct dir_node *
dir_find(struct index_dirs *d, uint64_t id)
{
	struct dir_node *n = d->buckets[dir_hash(id) & d->mask];

	while (n != NULL && n->id != id)
		n = n->next;
	return n;
}

static void
dirs_grow(struct index_dirs *d)
{
	size_t nb = (d->mask + 1) * 2;
	struct dir_node **b = calloc(nb, sizeof(*b));

	if (b == NULL)
		return;  /* longer chains */
	for (size_t i = 0; i <= d->mask; i++) {
		struct dir_node *n = d->buckets[i], *next;

		for (; n != NULL; n = next) {
			size_t j = dir_hash(n->id) & (nb - 1);

			next = n->next;
			n->next = b[j];
			b[j] = n;
		}
	}
	free(d->buckets);
	d->buckets = b;
	d->mask = nb - 1;
}

/* (partition, digest) order. */
static int
pos_cmp(uint32_t pa, const struct digest *a, uint32_t pb, const struct digest *b)
{
	if (pa != pb)
		return pa < pb ? -1 : 1;
	return digest_compare(a, b);
}

/* First index in n->v whose position is > (p, after), or >= (p, start of p) when after is NULL. */
static uint32_t
dir_upper(const struct dir_node *n, uint32_t p, const struct digest *after)
{
	uint32_t lo = 0, hi = n->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct digest *md = &n->v[mid]->digest;
		uint32_t mp = digest_partition(md);
		bool before = after != NULL ? pos_cmp(mp, md, p, after) <= 0 : mp < p;

		if (before)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void
index_dirs_add(struct index_dirs *d, struct index_entry *e)
{
	uint64_t id;
	struct dir_node *n;
	uint32_t i;

	if (d == NULL || !index_dir_key_id(e->key, e->key_len, &id))
		return;
	pthread_mutex_lock(&d->lock);
	n = dir_find(d, id);
	if (n == NULL) {
		n = calloc(1, sizeof(*n));
		if (n == NULL)
			goto fail;
		n->id = id;
		if (d->count > d->mask)
			dirs_grow(d);
		n->next = d->buckets[dir_hash(id) & d->mask];
		d->buckets[dir_hash(id) & d->mask] = n;
		d->count++;
	}
	if (n->n == n->cap) {
		uint32_t cap = n->cap ? n->cap * 2 : 4;
		struct index_entry **v = realloc(n->v, cap * sizeof(*v));

		if (v == NULL)
			goto fail;
		n->v = v;
		n->cap = cap;
	}
	i = dir_upper(n, digest_partition(&e->digest), &e->digest);
	memmove(&n->v[i + 1], &n->v[i], (n->n - i) * sizeof(*n->v));
	n->v[i] = e;
	n->n++;
	pthread_mutex_unlock(&d->lock);
	return;
fail:
	pthread_mutex_unlock(&d->lock);
	atomic_inc(&d->failures);
	log_error("index", "directory index: out of memory; an entry of directory %016llx "
	    "will not be listed until the next cold start", (unsigned long long)id);
}

void
index_dirs_remove(struct index_dirs *d, struct index_entry *e)
{
	uint64_t id;
	struct dir_node *n, **pp;

	if (d == NULL || !index_dir_key_id(e->key, e->key_len, &id))
		return;
	pthread_mutex_lock(&d->lock);
	n = dir_find(d, id);
	if (n != NULL) {
		uint32_t p = digest_partition(&e->digest);
		uint32_t i = dir_upper(n, p, NULL);

		/* Equal positions are the same digest: find this very entry. */
		while (i < n->n && n->v[i] != e &&
		    pos_cmp(digest_partition(&n->v[i]->digest), &n->v[i]->digest, p, &e->digest) <= 0)
			i++;
		if (i < n->n && n->v[i] == e) {
			memmove(&n->v[i], &n->v[i + 1], (n->n - i - 1) * sizeof(*n->v));
			n->n--;
		}
		if (n->n == 0) {
			for (pp = &d->buckets[dir_hash(id) & d->mask]; *pp != n; pp = &(*pp)->next)
				;
			*pp = n->next;
			free(n->v);
			free(n);
			d->count--;
		} else if (n->cap > 16 && n->n < n->cap / 4) {
			struct index_entry **v = realloc(n->v, (n->cap / 2) * sizeof(*v));

			if (v != NULL) {
				n->v = v;
				n->cap /= 2;
			}
		}
	}
	pthread_mutex_unlock(&d->lock);
}

size_t
index_dir_next(struct index *ix, uint64_t dir, uint32_t partition, const struct digest *after,
    const uint8_t *mask, struct digest *out, size_t max)
{
	struct index_dirs *d = ix->dirs;
	struct dir_node *n;
	size_t k = 0;

	pthread_mutex_lock(&d->lock);
	n = dir_find(d, dir);
	if (n != NULL) {
		for (uint32_t i = dir_upper(n, partition, after); i < n->n && k < max; i++) {
			const struct digest *dg = &n->v[i]->digest;
			uint32_t p = digest_partition(dg);

			if (mask != NULL && !((mask[p / 8] >> (p % 8)) & 1))
				continue;
			out[k++] = *dg;
		}
	}
	pthread_mutex_unlock(&d->lock);
	return k;
}

size_t
index_dir_entries(struct index *ix, uint64_t dir)
{
	struct dir_node *n;
	size_t k;

	pthread_mutex_lock(&ix->dirs->lock);
	n = dir_find(ix->dirs, dir);
	k = n != NULL ? n->n : 0;
	pthread_mutex_unlock(&ix->dirs->lock);
	return k;
}

size_t
index_dir_count(struct index *ix)
{
	size_t k;

	pthread_mutex_lock(&ix->dirs->lock);
	k = ix->dirs->count;
	pthread_mutex_unlock(&ix->dirs->lock);
	return k;
}

uint64_t
index_dir_failures(struct index *ix)
{
	return atomic_load_relaxed(&ix->dirs->failures);
}
