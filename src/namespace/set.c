/*
 * set.c - a namespace's set table: names to 12-bit ids (see namespace.h).
 *
 * Ids are never reused while the daemon runs (Aerospike does the same), so
 * an id in an index entry always names the same set.  Adding a set takes
 * the table's rwlock exclusive; lookups take no lock at all (every write
 * resolves its set, and a shared lock's counter is one cache line bounced
 * between all writing CPUs).  That is safe because the table only grows:
 * an entry's name is written before its id is published into the hash
 * slot (release), a lookup reads the slot with acquire, and neither names
 * nor slots change afterwards.
 */
#include <errno.h>
#include <string.h>

#include "../base/atomic.h"
#include "../base/clock.h"
#include "namespace.h"

static uint32_t
set_hash(const char *name, size_t len)
{
	uint32_t h = 2166136261u;   /* FNV-1a */

	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)name[i]) * 16777619u;
	return h;
}

void
set_table_init(struct set_table *t)
{
	memset(t, 0, sizeof(*t));
	pthread_rwlock_init(&t->lock, NULL);
}

void
set_table_fini(struct set_table *t)
{
	pthread_rwlock_destroy(&t->lock);
}

/* Lock-free for lookups (see the top); adders hold the lock exclusive. */
static int
find_locked(struct set_table *t, const char *name, size_t len, uint32_t *slot)
{
	uint32_t i = set_hash(name, len) & (SET_HASH_SLOTS - 1);

	for (;;) {
		uint16_t id = atomic_load_acquire(&t->hash[i]);

		if (id == 0) {
			*slot = i;
			return -ENOENT;
		}
		if (t->sets[id].len == len && memcmp(t->sets[id].name, name, len) == 0) {
			*slot = i;
			return id;
		}
		i = (i + 1) & (SET_HASH_SLOTS - 1);
	}
}

int
set_lookup(struct set_table *t, const char *name, size_t len, uint16_t *id)
{
	uint32_t slot;
	int rc;

	rc = find_locked(t, name, len, &slot);
	if (rc < 0)
		return rc;
	*id = (uint16_t)rc;
	return 0;
}

int
set_lookup_or_add(struct set_table *t, const char *name, size_t len, uint16_t *id)
{
	uint32_t slot;
	int rc;

	if (set_lookup(t, name, len, id) == 0)
		return 0;
	pthread_rwlock_wrlock(&t->lock);
	rc = find_locked(t, name, len, &slot);
	if (rc < 0) {
		uint32_t n = atomic_load_relaxed(&t->n);

		if (n >= SET_ID_MAX) {
			pthread_rwlock_unlock(&t->lock);
			return -ENOSPC;
		}
		rc = (int)n + 1;
		memcpy(t->sets[rc].name, name, len);
		t->sets[rc].name[len] = '\0';
		t->sets[rc].len = (uint8_t)len;
		/* Published with release, like the hash slot: a walker of
		 * ids 1..n (nsup, the tomb raider) reads n without the lock. */
		atomic_store_release(&t->n, (uint32_t)rc);
		atomic_store_release(&t->hash[slot], (uint16_t)rc);
	}
	pthread_rwlock_unlock(&t->lock);
	*id = (uint16_t)rc;
	return 0;
}

/* ---- set times (namespace.h, docs/architecture.md "Set directories") ---- */

void
set_times_touch(struct ns_set *s, uint64_t lut_ms)
{
	uint64_t c = atomic_load_relaxed(&s->ctime_ms);

	/* Two changes racing may leave the mtime at the earlier one, a
	 * millisecond apart; the ctime only moves forward. */
	atomic_store_relaxed(&s->mtime_ns, clock_epoch_ms_to_unix_ns(lut_ms));
	while (c < lut_ms && !atomic_cas(&s->ctime_ms, &c, lut_ms))
		;
}

void
set_times_seen(struct ns_set *s, uint64_t lut_ms)
{
	uint64_t n = atomic_load_relaxed(&s->newest_ms);

	/* Scan threads mostly read: a store only for a newer copy. */
	while (n < lut_ms && !atomic_cas(&s->newest_ms, &n, lut_ms))
		;
}

void
set_times_settle(struct ns_set *s, const struct index_entry *m, bool clean_start)
{
	uint64_t newest = atomic_load_relaxed(&s->newest_ms), c = newest;
	int64_t mt = clock_epoch_ms_to_unix_ns(newest);

	if (m != NULL) {
		/* A marker with metadata was rewritten at the clean shutdown if
		 * the times had moved since it was written: then it is exact,
		 * and a newer copy only means a record's content was rewritten.
		 * A crash, or a marker without metadata (never rewritten), lets
		 * the newest record copy written after it speak. */
		bool exact = clean_start && m->has_meta;

		if (exact || newest <= m->last_update_ms) {
			c = m->last_update_ms;
			mt = m->has_meta ? m->mtime_ns : clock_epoch_ms_to_unix_ns(c);
		}
	}
	atomic_store_relaxed(&s->ctime_ms, c);
	atomic_store_relaxed(&s->mtime_ns, mt);
	atomic_store_relaxed(&s->newest_ms, 0);
}
