/*
 * check_table.c - the digest table of recfs-check: for every record
 * (digest) the newest copy seen so far, chosen by the function cold start
 * uses, record_copy_is_newer (record.h: the later last-update time, then
 * the higher generation, wrap-aware); as in src/namespace/namespace.c:
 *   - a tie keeps the copy seen first, unless that one is damaged and the
 *     other intact (the same version: a copy defrag left behind);
 *   - a damaged copy with an intact header takes part like any copy; when
 *     it is the newest the record is damaged;
 *   - a newest tombstone "has an older copy" if any non-tombstone copy
 *     older than it was seen; one without is reclaimed by the next start;
 *   - whether an intact copy older than the newest was seen: what recfsd
 *     keeps when the newest copy is a torn write (recfs-check.c entry_torn).
 *
 * Open addressing with linear probing, at most half full; digests are
 * RIPEMD-160 output, so eight of their bytes are a good hash as they are.
 * Rejected: a sorted array of every copy (memory per copy, not per record,
 * and a sort of the whole device's worth of entries).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

_Static_assert(sizeof(struct check_entry) <= 48, "a table slot stays small");

#define TABLE_INITIAL 4096

static uint64_t
digest_hash(const struct digest *d)
{
	uint64_t h;

	/* Bytes 12..19: not the partition bits (0..1) nor the device spread (8..11). */
	memcpy(&h, d->bytes + 12, sizeof(h));
	return h;
}

static struct check_entry *
slot_of(struct check_entry *slots, uint64_t cap, const struct digest *d)
{
	for (uint64_t i = digest_hash(d) & (cap - 1);; i = (i + 1) & (cap - 1))
		if (!slots[i].used || memcmp(slots[i].digest.bytes, d->bytes, DIGEST_SIZE) == 0)
			return &slots[i];
}

int
check_table_init(struct check_table *t)
{
	t->cap = TABLE_INITIAL;
	t->n = 0;
	t->slots = calloc(t->cap, sizeof(*t->slots));
	return t->slots != NULL ? 0 : -ENOMEM;
}

void
check_table_fini(struct check_table *t)
{
	free(t->slots);
	t->slots = NULL;
	t->cap = t->n = 0;
}

static int
table_grow(struct check_table *t)
{
	uint64_t cap = t->cap * 2;
	struct check_entry *slots = calloc(cap, sizeof(*slots));

	if (slots == NULL)
		return -ENOMEM;
	for (uint64_t i = 0; i < t->cap; i++)
		if (t->slots[i].used)
			*slot_of(slots, cap, &t->slots[i].digest) = t->slots[i];
	free(t->slots);
	t->slots = slots;
	t->cap = cap;
	return 0;
}

static void
entry_set(struct check_entry *e, const struct record *r, bool damaged, uint16_t file,
    uint64_t offset, uint32_t size)
{
	e->damaged = damaged;
	e->generation = r->generation;
	e->flags = r->flags;
	e->void_time = r->void_time;
	e->last_update_ms = r->last_update_ms;
	e->offset = offset;
	e->rblocks = size / RBLOCK_SIZE;
	e->file = file;
}

int
check_table_merge(struct check_table *t, const struct record *r, bool damaged, uint16_t file,
    uint64_t offset, uint32_t size, bool *conflict, struct check_entry *other)
{
	struct check_entry *e;
	bool is_tomb = (r->flags & RECORD_F_TOMBSTONE) != 0;

	*conflict = false;
	if ((t->n + 1) * 2 > t->cap && table_grow(t) != 0)
		return -ENOMEM;
	e = slot_of(t->slots, t->cap, &r->digest);
	if (!e->used) {
		memset(e, 0, sizeof(*e));
		e->used = 1;
		e->digest = r->digest;
		entry_set(e, r, damaged, file, offset, size);
		t->n++;
		return CHECK_MERGE_NEW;
	}
	if (other != NULL)
		*other = *e;
	/*
	 * The engine orders copies by last-update time; the generation only
	 * breaks ties.  Copies written in one lifetime of a record agree on
	 * both (the engine never moves either backwards), so disagreement
	 * means the generation sequence restarted (a reclaimed tombstone) or
	 * wrapped: shown as information, the last-update time decides.
	 */
	if (r->generation != e->generation && r->last_update_ms != e->last_update_ms &&
	    record_copy_is_newer(r->generation, 0, e->generation, 0) !=
	    (r->last_update_ms > e->last_update_ms)) {
		*conflict = true;
		e->conflict = 1;
	}
	if (record_copy_is_newer(r->generation, r->last_update_ms, e->generation, e->last_update_ms) ||
	    (e->damaged && !damaged && r->generation == e->generation &&
	    r->last_update_ms == e->last_update_ms)) {
		bool older_live = !(e->flags & RECORD_F_TOMBSTONE) || e->older_live;
		bool older_intact = !e->damaged || e->older_intact;

		entry_set(e, r, damaged, file, offset, size);
		e->older_live = is_tomb && older_live;
		e->older_intact = older_intact;
		return CHECK_MERGE_NEWER;
	}
	if ((e->flags & RECORD_F_TOMBSTONE) && !is_tomb)
		e->older_live = 1;
	if (!damaged)
		e->older_intact = 1;
	return CHECK_MERGE_OLDER;
}

const struct check_entry *
check_table_find(const struct check_table *t, const struct digest *d)
{
	const struct check_entry *e = slot_of(t->slots, t->cap, d);

	return e->used ? e : NULL;
}

const char *
check_state_name(enum check_state s)
{
	switch (s) {
	case CHECK_LIVE: return "live";
	case CHECK_SUPERSEDED: return "superseded";
	case CHECK_TOMBSTONE: return "tombstone";
	case CHECK_EXPIRED: return "expired";
	case CHECK_SET_MARKER: return "set-marker";
	case CHECK_DAMAGED: return "damaged";
	}
	return "?";
}

enum check_state
check_entry_state(const struct check_entry *e, uint32_t now)
{
	/* A removed set's marker is a tombstone too: nothing keeps the set. */
	if (e->flags & RECORD_F_TOMBSTONE)
		return CHECK_TOMBSTONE;
	if (e->flags & RECORD_F_SET_MARKER)
		return CHECK_SET_MARKER;
	/* As the engine's entry_expired(): due at the void time itself. */
	if (e->void_time != 0 && e->void_time <= now)
		return CHECK_EXPIRED;
	return e->damaged ? CHECK_DAMAGED : CHECK_LIVE;
}
