/*
 * namespace.c - opening and closing a namespace, and the callbacks the
 * storage engine makes into it (see namespace.h).
 *
 * Relocation (defrag) follows the index's lock order: record lock, then the
 * partition lock to check the entry still points at the old copy, then the
 * engine's own locks inside storage_defrag_copy().  A record overwritten or
 * deleted meanwhile is simply not moved.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../base/atomic.h"
#include "../base/clock.h"
#include "../base/error.h"
#include "../base/log.h"
#include "namespace.h"

void
namespace_entry_fill(struct namespace *ns, struct index_entry *e, const struct record *r,
    const struct entry_info *info, storage_loc loc)
{
	bool meta = (r->flags & RECORD_F_HAS_META) != 0;
	uint64_t ino = meta ? r->meta.ino : 0;
	int64_t atime = meta ? r->meta.atime_ns : 0;

	e->loc = loc;
	e->generation = r->generation;
	e->last_update_ms = r->last_update_ms;
	e->void_time = r->void_time;
	e->size = info->file_len;
	e->has_bins = info->has_bins;
	e->has_ttl = info->has_ttl;
	e->chunked = info->chunked;
	e->tombstone = (r->flags & RECORD_F_TOMBSTONE) != 0;
	e->set_marker = (r->flags & RECORD_F_SET_MARKER) != 0;
	e->has_meta = (r->flags & RECORD_F_HAS_META) != 0;
	e->mode = (uint16_t)(r->meta.mode & 07777);
	e->mode_type = (r->flags & RECORD_F_HAS_META) ? index_type_of_mode(r->meta.mode) & 3 : 0;
	e->uid = r->meta.uid;
	e->gid = r->meta.gid;
	e->mtime_ns = r->meta.mtime_ns;
	e->damaged = info->damaged;
	/* The rare values go to the side table (index.h). */
	if (ino == digest_inode(&r->digest))
		ino = 0;
	if (atime == r->meta.mtime_ns)
		atime = 0;
	if (ino != 0 || atime != 0) {
		int rc = index_extra_put(ns->index, &e->digest, ino, atime);

		if (rc != 0)
			log_error("namespace", "{%s} no memory for a record's inode number or atime: "
			    "it shows the defaults until rewritten", ns->name);
		e->has_extra = rc == 0;
	} else if (e->has_extra) {
		index_extra_remove(ns->index, &e->digest);
		e->has_extra = 0;
	}
}

void
namespace_entry_count(struct namespace *ns, const struct index_entry *e, int dir, uint32_t bytes)
{
	struct ns_set *s = &ns->sets.sets[e->set_id];

	if (e->set_marker) {
		/* A live marker keeps its set visible while empty. */
		if (!e->tombstone)
			atomic_store_relaxed(&s->marker, dir > 0);
		return;
	}
	if (e->damaged && !e->tombstone)
		atomic_add(&ns->damaged_records, (uint64_t)(int64_t)dir);
	if (e->tombstone) {
		atomic_add(&ns->tombstones, (uint64_t)(int64_t)dir);
		atomic_add(&s->tombstones, (uint64_t)(int64_t)dir);
	} else {
		atomic_add(&ns->objects, (uint64_t)(int64_t)dir);
		uint64_t now = atomic_add(&s->objects, (uint64_t)(int64_t)dir);
		if (e->set_id != 0 && (dir > 0 ? now == 1 : now == 0) && !atomic_load_relaxed(&s->marker))
			atomic_store_relaxed(&ns->sets_used_changed, true);
		if (e->mode_type == INDEX_TYPE_DIR)
			atomic_add(&ns->objects_dirs, (uint64_t)(int64_t)dir);
		else if (e->mode_type == INDEX_TYPE_LINK)
			atomic_add(&ns->objects_links, (uint64_t)(int64_t)dir);
		if (record_key_is_chunk(e->key, e->key_len))
			atomic_add(&ns->chunk_objects, (uint64_t)(int64_t)dir);
	}
	atomic_add(&s->data_bytes, (uint64_t)((int64_t)dir * bytes));
}

/*
 * An entry's copy is being replaced (partition lock held exclusive): call
 * before namespace_entry_fill with the new copy's kind.  When the kind
 * stays the same (a record rewritten, the common case) only the set's byte
 * count moves - no shared counter is touched for nothing; otherwise (and
 * always when either copy is damaged) the old copy leaves and
 * namespace_entry_count(+1) must follow the fill.  Returns true when that
 * +1 is needed.
 */
static bool
entry_replace(struct namespace *ns, const struct index_entry *e, bool tombstone, bool set_marker,
    bool damaged, unsigned type, uint32_t old_bytes, uint32_t new_bytes)
{
	if (e->tombstone != tombstone || e->set_marker != set_marker || e->damaged || damaged ||
	    e->mode_type != type) {
		namespace_entry_count(ns, e, -1, old_bytes);
		return true;
	}
	if (!set_marker && old_bytes != new_bytes)
		atomic_add(&ns->sets.sets[e->set_id].data_bytes,
		    (uint64_t)((int64_t)new_bytes - (int64_t)old_bytes));
	return false;
}

/* A record callers can see: not deleted, not a set marker, not expired. */
static bool
entry_visible(const struct index_entry *e, uint32_t now)
{
	return e != NULL && !e->tombstone && !e->set_marker &&
	    !(e->void_time != 0 && e->void_time <= now);
}

/*
 * The one primitive (namespace.h).  Lock order as everywhere: record lock
 * (the caller's), partition lock, then storage_free after it is dropped.
 * Cold start (ns->loading) keeps the set times out: it settles them from
 * every copy at the end (set_times_seen, set_times_settle).
 */
int
namespace_apply(struct namespace *ns, struct ns_apply *a)
{
	struct index_partition *p;
	struct index_entry *e = a->e, *fresh = NULL;
	const struct record *r = a->r;

	a->prev_loc = 0;
	if (a->mode == NS_APPLY_RELOCATE) {
		bool current;

		p = index_partition_of(ns->index, &e->digest);
		pthread_rwlock_wrlock(&p->lock);
		current = e->loc == a->from;
		if (current)
			e->loc = a->loc;
		pthread_rwlock_unlock(&p->lock);
		if (!current)
			return 0;
		storage_free(ns->storage, a->from);
		return 1;
	}

	bool is_tomb = (r->flags & RECORD_F_TOMBSTONE) != 0;
	bool is_marker = (r->flags & RECORD_F_SET_MARKER) != 0;
	uint32_t size = storage_loc_size(a->loc);

	p = index_partition_of(ns->index, &r->digest);
	if (a->mode == NS_APPLY_IF_NEWER) {
		pthread_rwlock_rdlock(&p->lock);
		e = index_find_locked(p, a->set_id, &r->digest);
		pthread_rwlock_unlock(&p->lock);
		a->e = e;
		if (e != NULL) {
			struct record_version in = { r->last_update_ms, r->generation, a->info->damaged };
			struct record_version cur = { e->last_update_ms, (uint16_t)e->generation,
			    e->damaged };

			if (record_version_cmp(&in, &cur) <= 0) {
				/* A live copy older than the tombstone kept: the
				 * tombstone must stay while that copy is on storage
				 * (cold start, namespace_loaded). */
				if (e->tombstone && !is_tomb && !e->older_seen) {
					pthread_rwlock_wrlock(&p->lock);
					e->older_seen = 1;
					pthread_rwlock_unlock(&p->lock);
				}
				return 0;
			}
		}
	}

	bool was_visible = false;

	if (!atomic_load_relaxed(&ns->loading))
		was_visible = entry_visible(e, clock_epoch_s());
	if (e == NULL) {
		fresh = index_entry_alloc(ns->index, a->set_id, &r->digest, r->key, r->key_len);
		if (fresh == NULL)
			return -ENOMEM;
	}

	bool enter = true;

	pthread_rwlock_wrlock(&p->lock);
	if (e != NULL) {
		a->prev = (struct record_version){ e->last_update_ms, (uint16_t)e->generation,
		    e->damaged };
		a->prev_loc = e->loc;
		a->prev_tombstone = e->tombstone;
		enter = entry_replace(ns, e, is_tomb, is_marker, a->info->damaged,
		    (r->flags & RECORD_F_HAS_META) ? index_type_of_mode(r->meta.mode) : 0,
		    storage_loc_size(e->loc), size);
		/* A tombstone displacing a live copy (or a tombstone that had
		 * one): an older copy exists on storage (cold start). */
		if (a->mode == NS_APPLY_IF_NEWER)
			e->older_seen = is_tomb && (!e->tombstone || e->older_seen);
	} else {
		e = fresh;
		index_insert_locked(p, e);
	}
	namespace_entry_fill(ns, e, r, a->info, a->loc);
	if (enter)
		namespace_entry_count(ns, e, +1, size);
	pthread_rwlock_unlock(&p->lock);
	a->e = e;
	if (a->prev_loc != 0)
		storage_free(ns->storage, a->prev_loc);
	/* A record appearing in or leaving its set changes the set as a
	 * directory (rename touches the target's set itself: a replaced
	 * target stays visible).  Not a rewrite, and not an internal record
	 * (record.h: an entry of a directory inside the set moves that
	 * directory's times, not the set's). */
	if (!atomic_load_relaxed(&ns->loading) && !is_marker &&
	    was_visible != !is_tomb && !record_key_is_internal(r->key, r->key_len))
		set_times_touch(&ns->sets.sets[a->set_id], r->last_update_ms);
	return 1;
}

static int
apply_flat(struct namespace *ns, const uint8_t *flat, uint32_t size, bool durable, bool nowait)
{
	struct index_partition *p;
	struct index_entry *e;
	struct record r;
	struct entry_info info;
	struct digest d;
	uint16_t set_id = 0;
	storage_loc loc;
	int rc;

	rc = record_flat_accept(flat, size, ns->max_record_size, &r);
	if (rc != 0)
		return rc;
	/* What a client write would have refused, a time the index cannot
	 * hold, and a digest that is not its set and key's, are not a record
	 * of this store. */
	bool marker = (r.flags & RECORD_F_SET_MARKER) != 0;

	if (r.last_update_ms > RECORD_LAST_UPDATE_MAX ||
	    (r.set_len > 0 && record_set_name_check(r.set, r.set_len) != 0) ||
	    (marker ? r.key_len != 0 || r.set_len == 0 : record_stored_key_check(r.key, r.key_len) != 0) ||
	    r.key_type != DIGEST_KEY_TYPE_STRING) {
		rc = -EBADMSG;
		goto out;
	}
	digest_compute(&d, r.set, r.set_len, r.key, r.key_len);
	if (digest_compare(&d, &r.digest) != 0) {
		rc = -EBADMSG;
		goto out;
	}
	/* A record may bring its set, as a client write may create one. */
	if (r.set_len > 0) {
		rc = set_lookup_or_add(&ns->sets, r.set, r.set_len, &set_id);
		if (rc != 0)
			goto out;
	}
	namespace_entry_info(ns, &r, &info);

	p = index_partition_of(ns->index, &r.digest);
	if (!nowait) {
		index_record_lock(ns->index, &r.digest);
	} else if (!index_record_trylock(ns->index, &r.digest)) {
		rc = -EWOULDBLOCK;
		goto out;
	}
	pthread_rwlock_rdlock(&p->lock);
	e = index_find_locked(p, set_id, &r.digest);
	pthread_rwlock_unlock(&p->lock);
	if (e != NULL) {
		/* Decided before anything is written: an old version costs no
		 * storage.  The record lock keeps the entry as it is until
		 * namespace_apply decides the same again. */
		struct record_version in = { r.last_update_ms, r.generation, false };
		struct record_version cur = { e->last_update_ms, (uint16_t)e->generation, e->damaged };

		if (record_version_cmp(&in, &cur) <= 0) {
			NS_COUNT_ADD(ns, apply_not_newer, 1);
			rc = 0;
			goto unlock;
		}
	}
	/* accepted above (decoded, CRC verified): stored without a second pass */
	rc = storage_write_encoded(ns->storage, flat, size, &loc);
	if (rc != 0)
		goto unlock;
	if (durable || ns->cfg->storage.commit_to_device) {
		rc = storage_sync(ns->storage, loc);
		if (rc != 0) {
			storage_free(ns->storage, loc);
			goto unlock;
		}
	}
	struct ns_apply a = { .mode = NS_APPLY_IF_NEWER, .set_id = set_id, .r = &r, .info = &info,
	    .loc = loc };

	rc = namespace_apply(ns, &a);
	if (rc <= 0) {
		storage_free(ns->storage, loc);
		if (rc == 0)
			NS_COUNT_ADD(ns, apply_not_newer, 1);
	}
unlock:
	index_record_unlock(ns->index, &r.digest);
out:
	record_release(&r);
	return rc;
}

int
namespace_apply_flat(struct namespace *ns, const uint8_t *flat, uint32_t size, bool durable)
{
	return apply_flat(ns, flat, size, durable, false);
}

int
namespace_apply_flat_nowait(struct namespace *ns, const uint8_t *flat, uint32_t size,
    bool durable)
{
	return apply_flat(ns, flat, size, durable, true);
}

void
namespace_counters(const struct namespace *ns, struct ns_counters *out)
{
	*out = (struct ns_counters){ 0 };
	for (unsigned i = 0; i < SHARDS; i++) {
#define X(name, help) out->name += atomic_load_relaxed(&ns->counters[i].name);
		NS_COUNTERS(X)
#undef X
	}
}

int
namespace_pversions_load(struct namespace *ns, uint64_t out[STORAGE_PARTITIONS])
{
	return storage_pversions_load(ns->storage, out);
}

int
namespace_pversions_store(struct namespace *ns, const uint64_t v[STORAGE_PARTITIONS])
{
	return storage_pversions_store(ns->storage, v);
}

int
namespace_pversion_store_one(struct namespace *ns, uint32_t pid, uint64_t v)
{
	return storage_pversion_store_one(ns->storage, pid, v);
}

int
namespace_pversion_drop(struct namespace *ns, uint32_t pid, uint64_t drop_ms)
{
	return storage_pversion_drop(ns->storage, pid, drop_ms);
}

int
namespace_pversions_drop(struct namespace *ns, const uint32_t *pids, unsigned n, uint64_t drop_ms)
{
	return storage_pversions_drop(ns->storage, pids, n, drop_ms);
}

void
namespace_entry_info(const struct namespace *ns, const struct record *r, struct entry_info *out)
{
	const struct bin *fb = record_bin_find(r, ns->cfg->file_bin, strlen(ns->cfg->file_bin));

	out->file_len = fb != NULL && (fb->type == BIN_BLOB || fb->type == BIN_STRING)
	    ? fb->v.bytes.len : 0;
	out->has_bins = r->n_bins > (fb != NULL ? 1 : 0);
	out->has_ttl = r->ttl != RECORD_TTL_DEFAULT;
	out->damaged = false;
	/* The map's bin name (txn/chunk.h); internal bins start with '/'. */
	out->chunked = record_bin_find(r, RECORD_BIN_CHUNK_MAP, sizeof(RECORD_BIN_CHUNK_MAP) - 1) != NULL;
}

/*
 * Cold start: which copy of a record is newest is decided by
 * record_version_cmp (record.h) through namespace_apply (NS_APPLY_IF_NEWER),
 * the rule recfs-check reports with: the last-update time, then the
 * generation.  The time comes first because it
 * never moves backwards for a record while it is indexed (txn.c next_lut),
 * and a record written again after its tombstone was reclaimed is written
 * later than that tombstone (docs/storage-format.md, Cold start).  Rejected: generation first: a
 * reclaimed tombstone restarts the record's generation at 1,
 * so a stale tombstone left on storage would win over the new record at
 * the next cold start, and two copies 32768 writes apart compare
 * backwards.  A tie on both keeps the copy already indexed (defrag copies
 * are identical), unless that one is damaged and the other intact.
 */

/* A damaged copy waiting for its name (namespace.h, cs_unnamed). */
struct cs_unnamed {
	struct digest digest;
	uint16_t generation;
	uint8_t flags;
	int32_t ttl;
	uint64_t last_update_ms;
	uint32_t void_time;
	storage_loc loc;
};

/*
 * A record whose newest copy so far is damaged (namespace.h, cs_torn):
 * the best intact copy that copy displaced or that lost to it, and the
 * newest other damaged copy, so torn_settle can tell a torn write (the
 * previous version stays) from damage (the record stays damaged).
 */
struct cs_torn {
	struct digest digest;
	uint16_t set_id;
	uint16_t fb_gen, od_gen;
	uint64_t fb_lut, od_lut;
	storage_loc fallback;       /* best intact older copy, 0 = none met */
	storage_loc older_damaged;  /* newest older damaged copy, 0 = none met */
	/* torn_settle: the torn copy's version, which the copy torn_rewrite
	 * writes must be newer than. */
	uint16_t torn_gen;
	uint64_t torn_lut;
};

/* One copy of a record besides its current one. */
struct cs_copy {
	uint16_t generation;
	uint64_t last_update_ms;
	storage_loc loc;
	bool intact;                /* its body verified */
};

/*
 * Record lock held: e's current copy is damaged, other is a copy of the
 * same record that lost to it (or that it displaced), or NULL.  Remember
 * other if it is the best of its kind so far.  Only records with a damaged
 * newest copy get here: the list stays as small as they are few.  Out of
 * memory the record is left out, and a torn write of it reads EIO like a
 * damaged record (logged): never an older version served wrongly.
 */
static void
torn_note(struct namespace *ns, const struct index_entry *e, uint16_t set_id,
    const struct cs_copy *other)
{
	struct cs_torn *t = NULL;

	pthread_mutex_lock(&ns->cs_torn_lock);
	for (size_t i = 0; i < ns->cs_torn_n && t == NULL; i++)
		if (ns->cs_torn[i].set_id == set_id && digest_compare(&ns->cs_torn[i].digest, &e->digest) == 0)
			t = &ns->cs_torn[i];
	if (t == NULL) {
		if (ns->cs_torn_n == ns->cs_torn_cap) {
			size_t cap = ns->cs_torn_cap ? ns->cs_torn_cap * 2 : 16;
			struct cs_torn *v = realloc(ns->cs_torn, cap * sizeof(*v));

			if (v == NULL) {
				log_error("namespace", "{%s} cold start: no memory to remember the older "
				    "copies of a record whose newest copy is damaged: if it is a torn "
				    "write, the record reads EIO", ns->name);
				goto out;
			}
			ns->cs_torn = v;
			ns->cs_torn_cap = cap;
		}
		t = &ns->cs_torn[ns->cs_torn_n++];
		*t = (struct cs_torn){ .digest = e->digest, .set_id = set_id };
	}
	if (other == NULL) {
		/* Only listed. */
	} else if (other->intact) {
		if (t->fallback == 0 || record_copy_is_newer(other->generation, other->last_update_ms,
		    t->fb_gen, t->fb_lut)) {
			t->fallback = other->loc;
			t->fb_gen = other->generation;
			t->fb_lut = other->last_update_ms;
		}
	} else if (t->older_damaged == 0 || record_copy_is_newer(other->generation,
	    other->last_update_ms, t->od_gen, t->od_lut)) {
		t->older_damaged = other->loc;
		t->od_gen = other->generation;
		t->od_lut = other->last_update_ms;
	}
out:
	pthread_mutex_unlock(&ns->cs_torn_lock);
}

/* Take the waiting damaged copy of d out of the list, if there is one. */
static bool
unnamed_take(struct namespace *ns, const struct digest *d, struct cs_unnamed *out)
{
	bool found = false;

	if (atomic_load_relaxed(&ns->cs_unnamed_count) == 0)
		return false;
	pthread_mutex_lock(&ns->cs_unnamed_lock);
	for (size_t i = 0; i < ns->cs_unnamed_n; i++) {
		if (digest_compare(&ns->cs_unnamed[i].digest, d) == 0) {
			*out = ns->cs_unnamed[i];
			ns->cs_unnamed[i] = ns->cs_unnamed[--ns->cs_unnamed_n];
			atomic_store_relaxed(&ns->cs_unnamed_count, ns->cs_unnamed_n);
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&ns->cs_unnamed_lock);
	return found;
}

/* What the index keeps of a damaged copy: its header, the meta if proven. */
static void
damaged_info(const struct record *r, struct entry_info *info)
{
	*info = (struct entry_info){ .has_ttl = r->ttl != RECORD_TTL_DEFAULT,
	    .damaged = !(r->flags & (RECORD_F_TOMBSTONE | RECORD_F_SET_MARKER)) };
}

/*
 * The copy r (at loc; info from it) against the entry of its record in
 * set set_id, record lock held: namespace_apply keeps it if it wins over
 * the newest copy seen so far (returns 1: the engine counts its bytes as
 * live), else it is ignored (0).  Expired copies, tombstones and damaged copies are kept
 * like any other during the scan, so an older copy found later can never
 * win over them; namespace_loaded() settles them once every copy has been
 * seen.
 */
static int
load_copy_locked(struct namespace *ns, const struct record *r, const struct entry_info *info,
    bool intact, uint16_t set_id, storage_loc loc)
{
	struct ns_apply a = { .mode = NS_APPLY_IF_NEWER, .set_id = set_id, .r = r, .info = info,
	    .loc = loc };
	struct index_entry *e;
	struct cs_unnamed u;
	int rc;

	/* Every copy of a record of the set may say when the set last changed
	 * (set_times_settle). */
	if (!(r->flags & RECORD_F_SET_MARKER))
		set_times_seen(&ns->sets.sets[set_id], r->last_update_ms);
	rc = namespace_apply(ns, &a);
	if (rc < 0)
		return rc;
	e = a.e;
	if (rc == 1 && e->damaged) {
		/* A damaged copy won: what it displaced may be needed back (a
		 * record met first through a damaged copy: none older yet). */
		struct cs_copy prev = { a.prev.generation, a.prev.last_update_ms, a.prev_loc,
		    !a.prev.damaged };

		torn_note(ns, e, set_id, a.prev_loc != 0 ? &prev : NULL);
	} else if (rc == 0 && e->damaged) {
		/* An older copy of a record whose newest copy is damaged. */
		struct cs_copy older = { r->generation, r->last_update_ms, loc, intact };

		torn_note(ns, e, set_id, &older);
	}

	/* A damaged copy of this record that could not say its name: the
	 * record has one now; the newer of the two stays. */
	if (unnamed_take(ns, &r->digest, &u)) {
		struct record d;
		struct entry_info di;
		struct ns_apply b = { .mode = NS_APPLY_IF_NEWER, .set_id = set_id, .r = &d,
		    .info = &di, .loc = u.loc };

		record_init(&d);
		d.digest = u.digest;
		d.generation = u.generation;
		d.flags = u.flags & (uint8_t)~RECORD_F_HAS_META;
		d.ttl = u.ttl;
		d.last_update_ms = u.last_update_ms;
		d.void_time = u.void_time;
		damaged_info(&d, &di);
		if (namespace_apply(ns, &b) == 1) {
			struct cs_copy prev = { b.prev.generation, b.prev.last_update_ms, b.prev_loc,
			    !b.prev.damaged };

			if (b.e->damaged)
				torn_note(ns, b.e, set_id, &prev);
		} else {
			struct cs_copy older = { u.generation, u.last_update_ms, u.loc, false };

			storage_free(ns->storage, u.loc);
			if (e->damaged)
				torn_note(ns, e, set_id, &older);
		}
	}
	return rc;
}

/* Cold start: one verified copy of a record (see load_copy_locked). */
static int
namespace_load(void *arg, struct storage *st, const struct record *r, uint32_t size,
    storage_loc loc)
{
	struct namespace *ns = arg;
	struct entry_info info;
	uint16_t set_id = 0;
	int rc;

	if (r->set_len > 0 && set_lookup_or_add(&ns->sets, r->set, r->set_len, &set_id) != 0) {
		log_warn("namespace", "{%s} cold start: too many sets, record skipped", ns->name);
		return 0;
	}
	if (r->flags & RECORD_F_TOMBSTONE)
		atomic_inc(&ns->cold_start_tombs);
	namespace_entry_info(ns, r, &info);
	index_record_lock(ns->index, &r->digest);
	rc = load_copy_locked(ns, r, &info, true, set_id, loc);
	index_record_unlock(ns->index, &r->digest);
	return rc;
}

/*
 * Cold start: a copy whose header is intact but whose body is damaged
 * (r from record_flat_salvage: header fields, name and meta if proven).
 * It takes part in the newest-copy rule like any copy: when it is newer
 * than every intact copy, the record is marked damaged instead of an
 * older copy passing for its content.  A damaged tombstone or set marker
 * says all it has to say in its header: it counts as one, not damaged.
 * Without a proven name, the record's entry (any set) gives it; without
 * an entry yet, the copy waits in cs_unnamed for a copy that brings the
 * name (load_copy_locked), else namespace_loaded drops it.
 */
static int
namespace_load_damaged(void *arg, struct storage *st, const struct record *r, unsigned parts,
    uint32_t size, storage_loc loc)
{
	struct namespace *ns = arg;
	struct entry_info info;
	uint16_t set_id = 0;
	int rc = 0;

	damaged_info(r, &info);
	if (parts & RECORD_SALVAGE_NAME) {
		if (r->set_len > 0 && set_lookup_or_add(&ns->sets, r->set, r->set_len, &set_id) != 0)
			return 0;
		if (r->flags & RECORD_F_TOMBSTONE)
			atomic_inc(&ns->cold_start_tombs);
		index_record_lock(ns->index, &r->digest);
		rc = load_copy_locked(ns, r, &info, false, set_id, loc);
		index_record_unlock(ns->index, &r->digest);
		return rc;
	}

	struct index_partition *p = index_partition_of(ns->index, &r->digest);
	struct index_entry *e = NULL;

	index_record_lock(ns->index, &r->digest);
	uint32_t n_sets = atomic_load_acquire(&ns->sets.n);
	pthread_rwlock_rdlock(&p->lock);
	for (uint32_t id = 0; id <= n_sets && e == NULL; id++)
		if ((e = index_find_locked(p, (uint16_t)id, &r->digest)) != NULL)
			set_id = (uint16_t)id;
	pthread_rwlock_unlock(&p->lock);
	if (e != NULL) {
		if (r->flags & RECORD_F_TOMBSTONE)
			atomic_inc(&ns->cold_start_tombs);
		rc = load_copy_locked(ns, r, &info, false, set_id, loc);
		goto out;
	}
	struct cs_unnamed u = { .digest = r->digest, .generation = r->generation,
	    .flags = r->flags, .ttl = r->ttl, .last_update_ms = r->last_update_ms,
	    .void_time = r->void_time, .loc = loc };
	struct cs_unnamed prev;
	storage_loc drop = 0;

	if (unnamed_take(ns, &r->digest, &prev)) {
		/* Two nameless damaged copies: the newer waits, the other goes. */
		if (!record_copy_is_newer(u.generation, u.last_update_ms, prev.generation,
		    prev.last_update_ms)) {
			drop = u.loc;
			u = prev;
		} else {
			drop = prev.loc;
		}
	}
	pthread_mutex_lock(&ns->cs_unnamed_lock);
	if (ns->cs_unnamed_n == ns->cs_unnamed_cap) {
		size_t cap = ns->cs_unnamed_cap ? ns->cs_unnamed_cap * 2 : 16;
		struct cs_unnamed *v = realloc(ns->cs_unnamed, cap * sizeof(*v));

		if (v == NULL) {
			pthread_mutex_unlock(&ns->cs_unnamed_lock);
			rc = -ENOMEM;
			goto out;
		}
		ns->cs_unnamed = v;
		ns->cs_unnamed_cap = cap;
	}
	ns->cs_unnamed[ns->cs_unnamed_n++] = u;
	atomic_store_relaxed(&ns->cs_unnamed_count, ns->cs_unnamed_n);
	pthread_mutex_unlock(&ns->cs_unnamed_lock);
	if (drop == loc)
		rc = 0;
	else {
		rc = 1;
		if (drop != 0)
			storage_free(st, drop);
	}
out:
	index_record_unlock(ns->index, &r->digest);
	return rc;
}

static void
namespace_hint(void *arg, const struct digest *d, bool near)
{
	struct namespace *ns = arg;

	if (near)
		index_prefetch(ns->index, d);
	else
		index_prefetch_early(ns->index, d);
}

/* Cold start is over: each set's mtime and ctime from its marker and the
 * newest copy of its records (set_times_settle). */
static void
namespace_sets_settle(struct namespace *ns, bool clean_start)
{
	for (uint32_t id = 1; id <= atomic_load_acquire(&ns->sets.n); id++) {
		struct ns_set *s = &ns->sets.sets[id];
		struct index_partition *p;
		struct index_entry *m;
		struct digest d;

		digest_compute(&d, s->name, s->len, "", 0);
		p = index_partition_of(ns->index, &d);
		pthread_rwlock_rdlock(&p->lock);
		m = index_find_locked(p, (uint16_t)id, &d);
		if (m != NULL && (!m->set_marker || m->tombstone))
			m = NULL;
		set_times_settle(s, m, clean_start);
		pthread_rwlock_unlock(&p->lock);
	}
}

/* Cold start is over: a tombstone no older copy was found for has done
 * its job and is dropped (its bytes freed).  Runs before any client. */
/* The file a location is on, for messages. */
static const char *
loc_file(const struct namespace *ns, storage_loc loc)
{
	uint32_t f = storage_loc_file(loc);

	return f < ns->cfg->storage.n_files ? ns->cfg->storage.files[f] : "(RAM)";
}

#define DAMAGED_LOG_MAX 20

/*
 * Cold start is over.  Damaged copies still without a name had no other
 * copy at all: the record is lost (as when its header is damaged), their
 * bytes are freed.  Each record whose newest copy is damaged is logged once
 * (the first DAMAGED_LOG_MAX, then a count), with file and offset.
 */
static void
damaged_settle(struct namespace *ns, struct storage *st)
{
	uint64_t logged = 0, n_damaged = atomic_load_relaxed(&ns->damaged_records);

	pthread_mutex_lock(&ns->cs_unnamed_lock);
	for (size_t i = 0; i < ns->cs_unnamed_n; i++) {
		const struct cs_unnamed *u = &ns->cs_unnamed[i];

		log_error("namespace", "{%s} %s offset %" PRIu64 ": damaged record (generation %u) "
		    "whose set and key are damaged too, and no other copy of it: lost", ns->name,
		    loc_file(ns, u->loc), storage_loc_offset(u->loc), u->generation);
		storage_free(st, u->loc);
	}
	free(ns->cs_unnamed);
	ns->cs_unnamed = NULL;
	ns->cs_unnamed_n = ns->cs_unnamed_cap = 0;
	atomic_store_relaxed(&ns->cs_unnamed_count, 0);
	pthread_mutex_unlock(&ns->cs_unnamed_lock);

	uint32_t n_sets = atomic_load_acquire(&ns->sets.n);
	for (uint32_t pid = 0; pid < PARTITION_COUNT && n_damaged > 0 && logged < DAMAGED_LOG_MAX;
	    pid++) {
		struct index_partition *p = &ns->index->partitions[pid];

		pthread_rwlock_rdlock(&p->lock);
		for (uint32_t set_id = 0; set_id <= n_sets && logged < DAMAGED_LOG_MAX; set_id++) {
			for (struct index_entry *e = index_next_locked(p, (uint16_t)set_id, NULL);
			    e != NULL && logged < DAMAGED_LOG_MAX;
			    e = index_next_locked(p, (uint16_t)set_id, &e->digest)) {
				if (!e->damaged || e->tombstone)
					continue;
				const struct ns_set *set = &ns->sets.sets[e->set_id];

				log_error("namespace", "{%s} %s offset %" PRIu64 ": record %s%s%.*s "
				    "(generation %u): its newest copy is damaged; reads return EIO "
				    "until it is overwritten or unlinked", ns->name, loc_file(ns, e->loc),
				    storage_loc_offset(e->loc), e->set_id != 0 ? set->name : "",
				    e->set_id != 0 ? "/" : "", (int)e->key_len, e->key,
				    (unsigned)e->generation);
				logged++;
			}
		}
		pthread_rwlock_unlock(&p->lock);
	}
	if (n_damaged > logged)
		log_error("namespace", "{%s} %" PRIu64 " records are damaged (%" PRIu64 " logged above)",
		    ns->name, n_damaged, logged);
}

/*
 * Cold start, every copy seen, before the engine rebuilds its free space:
 * a damaged newest copy that a crash may have torn (storage_may_be_torn:
 * the device was not shut down cleanly and the copy was written within
 * flush-max-ms + 1 s of its newest write) was never acknowledged as
 * durable, so it is dropped as if the write had been lost and the record
 * keeps its best intact older copy, re-read and indexed here (its bytes
 * live again, the torn copy's not).  Without one the record never existed
 * durably: it becomes a tombstone (its copy the torn one, whose header
 * says all a tombstone needs) so that it is absent.  A damaged copy that
 * no crash explains (older than the window, or on a device shut down
 * cleanly) between the torn one and the previous version keeps the record
 * damaged.  Returns 1 when the record's torn write was dropped (*t then
 * says what torn_rewrite must write over).
 */
static int
torn_settle(struct namespace *ns, struct storage *st, struct cs_torn *t, uint64_t *logged)
{
	struct index_partition *p = index_partition_of(ns->index, &t->digest);
	struct index_entry *e;
	uint8_t *buf = NULL;
	struct record rec;
	int done = 0;

	record_init(&rec);
	index_record_lock(ns->index, &t->digest);
	pthread_rwlock_rdlock(&p->lock);
	e = index_find_locked(p, t->set_id, &t->digest);
	pthread_rwlock_unlock(&p->lock);
	if (e == NULL || !e->damaged || e->tombstone ||
	    !storage_may_be_torn(st, e->loc, e->last_update_ms))
		goto out;
	if (t->older_damaged != 0 && !storage_may_be_torn(st, t->older_damaged, t->od_lut) &&
	    (t->fallback == 0 || record_copy_is_newer(t->od_gen, t->od_lut, t->fb_gen, t->fb_lut)))
		goto out;  /* real damage under the torn write: stays damaged */

	storage_loc torn = e->loc;
	const struct ns_set *set = &ns->sets.sets[t->set_id];
	char name[RECORD_SET_MAX + RECORD_KEY_MAX + 2];

	t->torn_gen = (uint16_t)e->generation;
	t->torn_lut = e->last_update_ms;
	snprintf(name, sizeof(name), "%s%s%.*s", t->set_id != 0 ? set->name : "",
	    t->set_id != 0 ? "/" : "", (int)e->key_len, e->key);
	if (t->fallback != 0) {
		struct entry_info info;
		int rc = -ENOMEM;

		buf = malloc(storage_loc_size(t->fallback));
		if (buf != NULL)
			rc = storage_read(st, t->fallback, buf);
		if (rc == 0)
			rc = record_flat_decode(buf, storage_loc_size(t->fallback), &rec);
		if (rc != 0) {
			log_error("namespace", "{%s} %s offset %" PRIu64 ": torn write of record %s, but "
			    "its previous version at offset %" PRIu64 " cannot be read (%s): the record "
			    "stays damaged", ns->name, loc_file(ns, torn), storage_loc_offset(torn), name,
			    storage_loc_offset(t->fallback), recfs_strerror(rc));
			goto out;
		}
		namespace_entry_info(ns, &rec, &info);
		/* The previous version replaces the torn one (whose bytes are
		 * freed). */
		struct ns_apply a = { .mode = NS_APPLY_REPLACE, .set_id = t->set_id, .r = &rec,
		    .info = &info, .loc = t->fallback, .e = e };

		(void)namespace_apply(ns, &a);  /* e exists: cannot fail */
		pthread_rwlock_wrlock(&p->lock);
		/* A tombstone kept: older copies may be on storage still. */
		e->older_seen = (rec.flags & RECORD_F_TOMBSTONE) != 0;
		pthread_rwlock_unlock(&p->lock);
		storage_keep(st, t->fallback);
	} else {
		struct record d;
		struct entry_info di = { 0 };

		record_init(&d);
		d.digest = e->digest;
		d.generation = (uint16_t)e->generation;
		d.last_update_ms = e->last_update_ms;
		d.flags = RECORD_F_TOMBSTONE;
		pthread_rwlock_wrlock(&p->lock);
		namespace_entry_count(ns, e, -1, storage_loc_size(torn));
		namespace_entry_fill(ns, e, &d, &di, torn);
		e->older_seen = 1;  /* torn_rewrite replaces it, the tomb raider reclaims it */
		namespace_entry_count(ns, e, +1, storage_loc_size(torn));
		pthread_rwlock_unlock(&p->lock);
	}
	if ((*logged)++ < DAMAGED_LOG_MAX)
		log_warn("namespace", "{%s} torn write at %s offset %" PRIu64 " (record %s, generation "
		    "%u), not acknowledged as durable (unclean shutdown, written in its last %u ms): %s",
		    ns->name, loc_file(ns, torn), storage_loc_offset(torn), name, (unsigned)t->torn_gen,
		    st->torn_window_ms, t->fallback != 0 ? "previous version kept"
		    : "no previous version, the record is absent");
	done = 1;
out:
	index_record_unlock(ns->index, &t->digest);
	record_release(&rec);
	free(buf);
	return done;
}

/* The owner's scanned callback: torn writes (torn_settle), also those of
 * nameless damaged copies no other copy named (they had none: dropped).
 * The records settled stay in cs_torn for torn_rewrite. */
static void
namespace_scanned(void *arg, struct storage *st)
{
	struct namespace *ns = arg;
	uint64_t torn = 0, logged = 0;

	pthread_mutex_lock(&ns->cs_unnamed_lock);
	for (size_t i = 0; i < ns->cs_unnamed_n;) {
		const struct cs_unnamed *u = &ns->cs_unnamed[i];

		if (!storage_may_be_torn(st, u->loc, u->last_update_ms)) {
			i++;
			continue;
		}
		if (logged++ < DAMAGED_LOG_MAX)
			log_warn("namespace", "{%s} torn write at %s offset %" PRIu64 " (generation %u, "
			    "set and key torn too), not acknowledged as durable (unclean shutdown, "
			    "written in its last %u ms): no previous version, dropped", ns->name,
			    loc_file(ns, u->loc), storage_loc_offset(u->loc), u->generation,
			    st->torn_window_ms);
		storage_free(st, u->loc);
		ns->cs_unnamed[i] = ns->cs_unnamed[--ns->cs_unnamed_n];
		torn++;
	}
	atomic_store_relaxed(&ns->cs_unnamed_count, ns->cs_unnamed_n);
	pthread_mutex_unlock(&ns->cs_unnamed_lock);

	/* The list is taken out, so no record lock is taken under its lock
	 * (the scan takes them the other way round; no scan runs now). */
	struct cs_torn *v;
	size_t n, kept = 0;

	pthread_mutex_lock(&ns->cs_torn_lock);
	v = ns->cs_torn;
	n = ns->cs_torn_n;
	ns->cs_torn = NULL;
	ns->cs_torn_n = ns->cs_torn_cap = 0;
	pthread_mutex_unlock(&ns->cs_torn_lock);
	for (size_t i = 0; i < n; i++) {
		if (torn_settle(ns, st, &v[i], &logged) > 0) {
			v[kept++] = v[i];
			torn++;
		}
	}
	pthread_mutex_lock(&ns->cs_torn_lock);
	ns->cs_torn = v;
	ns->cs_torn_n = kept;
	ns->cs_torn_cap = n;
	pthread_mutex_unlock(&ns->cs_torn_lock);
	if (torn > DAMAGED_LOG_MAX)
		log_warn("namespace", "{%s} %" PRIu64 " torn writes dropped (%d logged above)",
		    ns->name, torn, DAMAGED_LOG_MAX);
	atomic_store_relaxed(&ns->cold_start_torn_writes, torn);
}

/*
 * The write path runs: the torn copy of each record torn_settle settled is
 * still on storage and, newer than what replaced it, would win at the next
 * cold start (damaged, after a clean shutdown).  Store the record's current
 * version again (its content or a tombstone), newer than the torn copy,
 * and make that durable.  Failing that, the next cold start after a clean
 * shutdown may find the record damaged again: logged.
 */
static void
torn_rewrite(struct namespace *ns, struct storage *st)
{
	bool wrote = false;
	struct cs_torn *v;
	size_t n;

	pthread_mutex_lock(&ns->cs_torn_lock);
	v = ns->cs_torn;
	n = ns->cs_torn_n;
	ns->cs_torn = NULL;
	ns->cs_torn_n = ns->cs_torn_cap = 0;
	pthread_mutex_unlock(&ns->cs_torn_lock);
	for (size_t i = 0; i < n; i++) {
		const struct cs_torn *t = &v[i];
		struct index_partition *p = index_partition_of(ns->index, &t->digest);
		const struct ns_set *set = &ns->sets.sets[t->set_id];
		struct index_entry *e;
		uint8_t *buf = NULL;
		struct record r;
		storage_loc old = 0, loc;
		int rc = 0;

		record_init(&r);
		index_record_lock(ns->index, &t->digest);
		pthread_rwlock_rdlock(&p->lock);
		e = index_find_locked(p, t->set_id, &t->digest);
		pthread_rwlock_unlock(&p->lock);
		if (e == NULL)
			goto next;
		old = e->loc;
		if (e->tombstone) {
			r.digest = e->digest;
			r.flags = RECORD_F_TOMBSTONE;
			r.key_type = DIGEST_KEY_TYPE_STRING;
			r.set = t->set_id != 0 ? set->name : NULL;
			r.set_len = t->set_id != 0 ? set->len : 0;
			r.key = e->key;
			r.key_len = e->key_len;
		} else {
			buf = malloc(storage_loc_size(old));
			rc = buf == NULL ? -ENOMEM : storage_read(st, old, buf);
			if (rc == 0)
				rc = record_flat_decode(buf, storage_loc_size(old), &r);
			if (rc != 0)
				goto next;
		}
		r.generation = t->torn_gen == UINT16_MAX ? 1 : (uint16_t)(t->torn_gen + 1);
		r.last_update_ms = clock_epoch_ms();
		if (r.last_update_ms <= t->torn_lut)
			r.last_update_ms = t->torn_lut + 1;
		if (r.last_update_ms <= e->last_update_ms)
			r.last_update_ms = e->last_update_ms + 1;
		uint32_t size = (uint32_t)record_flat_size(&r);
		struct entry_info info;

		rc = storage_write(st, &r, size, &loc);
		if (rc != 0)
			goto next;
		if (e->tombstone)
			info = (struct entry_info){ 0 };
		else
			namespace_entry_info(ns, &r, &info);
		struct ns_apply a = { .mode = NS_APPLY_REPLACE, .set_id = t->set_id, .r = &r,
		    .info = &info, .loc = loc, .e = e };

		(void)namespace_apply(ns, &a);  /* e exists: cannot fail */
		wrote = true;
next:
		if (rc != 0)
			log_error("namespace", "{%s} torn write of a record at %s offset %" PRIu64
			    ": storing its previous version again failed (%s); after a clean shutdown "
			    "the next cold start may find it damaged", ns->name,
			    loc_file(ns, old), storage_loc_offset(old), recfs_strerror(rc));
		index_record_unlock(ns->index, &t->digest);
		record_release(&r);
		free(buf);
	}
	free(v);
	if (wrote && storage_sync_all(st) != 0)
		log_error("namespace", "{%s} the records stored again after torn writes are not "
		    "durable yet (sync failed)", ns->name);
}

static void
namespace_loaded(void *arg, struct storage *st)
{
	struct namespace *ns = arg;
	uint64_t dropped = 0;

	torn_rewrite(ns, st);
	damaged_settle(ns, st);

	struct index_entry **victims = NULL;
	size_t cap = 0;

	/* No tombstone met (set markers included): nothing to look for (the
	 * walk visits every entry, a cache miss each on a large index).  In a
	 * cluster a tombstone with no older copy here may still be all that
	 * keeps a node that was away from bringing its older copy back: only
	 * the tomb raider reclaims it there (its age, the master asking every
	 * replica; tomb_raider.c). */
	bool reclaim = !atomic_load_relaxed(&ns->clustered);

	for (uint32_t pid = 0; reclaim && pid < PARTITION_COUNT && atomic_load_relaxed(&ns->cold_start_tombs) > 0; pid++) {
		struct index_partition *p = &ns->index->partitions[pid];
		size_t n = 0;

		pthread_rwlock_wrlock(&p->lock);
		for (uint32_t set_id = 0; set_id <= atomic_load_acquire(&ns->sets.n); set_id++) {
			for (struct index_entry *e = index_next_locked(p, (uint16_t)set_id, NULL); e != NULL;
			    e = index_next_locked(p, (uint16_t)set_id, &e->digest)) {
				if (!e->tombstone || e->older_seen)
					continue;
				if (n == cap) {
					size_t ncap = cap ? cap * 2 : 64;
					struct index_entry **v = realloc(victims, ncap * sizeof(*v));

					if (v == NULL)
						break;  /* kept: reclaimed at the next start */
					victims = v;
					cap = ncap;
				}
				victims[n++] = e;
			}
		}
		for (size_t i = 0; i < n; i++) {
			namespace_entry_count(ns, victims[i], -1, storage_loc_size(victims[i]->loc));
			index_remove_locked(p, victims[i]);
		}
		pthread_rwlock_unlock(&p->lock);
		for (size_t i = 0; i < n; i++) {
			storage_free(st, victims[i]->loc);
			index_entry_free(ns->index, victims[i]);
		}
		dropped += n;
	}
	free(victims);
	atomic_add(&ns->tombstones_reclaimed, dropped);
	namespace_sets_settle(ns, st->clean_start);
	log_info("namespace", "{%s} cold start done: %" PRIu64 " records, %" PRIu64
	    " tombstones kept, %" PRIu64 " tombstones reclaimed, %" PRIu64 " damaged", ns->name,
	    atomic_load_relaxed(&ns->objects), atomic_load_relaxed(&ns->tombstones), dropped,
	    atomic_load_relaxed(&ns->damaged_records));
}

/* Set name stored in a flat record (RECORD_F layout, record.h). */
static int
flat_set_id(struct namespace *ns, const uint8_t *flat, uint32_t size, uint16_t *set_id)
{
	uint8_t len = flat[48];

	if (len == 0) {
		*set_id = 0;
		return 0;
	}
	if (len > RECORD_SET_MAX || RECORD_FLAT_HEADER_SIZE + (uint32_t)len > size)
		return RECFS_EFORMAT;
	return set_lookup(&ns->sets, (const char *)flat + RECORD_FLAT_HEADER_SIZE, len, set_id);
}

static int
namespace_relocate(void *arg, struct storage *st, const uint8_t *flat, uint32_t size,
    storage_loc old_loc)
{
	struct namespace *ns = arg;
	const struct digest *d = record_flat_digest(flat);
	struct index_partition *p = index_partition_of(ns->index, d);
	struct index_entry *e;
	storage_loc new_loc;
	uint16_t set_id;
	int rc;

	bool named = flat_set_id(ns, flat, size, &set_id) == 0;

	/* A damaged current copy may have a damaged set name: find it by its
	 * location in every set (only while damaged records exist). */
	if (!named && atomic_load_relaxed(&ns->damaged_records) == 0)
		return 0;  /* no such set: not a current copy */
	index_record_lock(ns->index, d);
	pthread_rwlock_rdlock(&p->lock);
	e = named ? index_find_locked(p, set_id, d) : NULL;
	bool current = e != NULL && e->loc == old_loc;
	if (!current && atomic_load_relaxed(&ns->damaged_records) > 0) {
		uint32_t n_sets = atomic_load_acquire(&ns->sets.n);

		for (uint32_t id = 0; id <= n_sets && !current; id++) {
			e = index_find_locked(p, (uint16_t)id, d);
			current = e != NULL && e->loc == old_loc;
		}
	}
	pthread_rwlock_unlock(&p->lock);
	if (!current) {
		rc = 0;
		goto out;
	}
	rc = storage_defrag_copy(st, flat, size, &new_loc);
	if (rc != 0)
		goto out;
	struct ns_apply a = { .mode = NS_APPLY_RELOCATE, .loc = new_loc, .from = old_loc, .e = e };

	rc = namespace_apply(ns, &a);
	if (rc == 0)
		storage_free(st, new_loc);  /* cannot happen: the record lock is held */
out:
	index_record_unlock(ns->index, d);
	return rc;
}

int
namespace_open(struct namespace **out, struct ns_config *cfg)
{
	struct namespace *ns;
	struct storage_owner owner;
	int rc;

	ns = calloc(1, sizeof(*ns));
	if (ns == NULL)
		return -ENOMEM;
	memcpy(ns->name, cfg->name, sizeof(ns->name));
	ns->cfg = cfg;
	atomic_store_relaxed(&ns->clustered, cfg->clustered);
	set_table_init(&ns->sets);
	pthread_mutex_init(&ns->cs_unnamed_lock, NULL);
	pthread_mutex_init(&ns->cs_torn_lock, NULL);
	pthread_mutex_init(&ns->raid_clean_lock, NULL);
	rc = index_create(&ns->index);
	if (rc != 0)
		goto fail;
	ns->max_record_size = storage_max_record_size(&cfg->storage);
	owner = (struct storage_owner){ .arg = ns, .relocate = namespace_relocate,
	    .load = namespace_load, .load_damaged = namespace_load_damaged, .hint = namespace_hint,
	    .scanned = namespace_scanned, .loaded = namespace_loaded };
	atomic_store_relaxed(&ns->loading, true);
	rc = storage_open(&ns->storage, ns->name, &cfg->storage, &owner);
	atomic_store_relaxed(&ns->loading, false);
	if (rc != 0)
		goto fail;
	/* A memory engine keeps tombstones only in a cluster (the layer
	 * above's deletes): the raider reclaims those, with no storage to scan. */
	if (!ns->storage->persistent || ns->storage->ops->scan != NULL) {
		rc = tomb_raider_start(ns);
		if (rc != 0) {
			storage_close(ns->storage, false);
			goto fail;
		}
	}
	log_info("namespace", "{%s} open: %s engine, max-record-size %u", ns->name,
	    ns->storage->ops->name, ns->max_record_size);
	*out = ns;
	return 0;
fail:
	index_destroy(ns->index, NULL, NULL);
	set_table_fini(&ns->sets);
	free(ns->cs_unnamed);
	pthread_mutex_destroy(&ns->cs_unnamed_lock);
	free(ns->cs_torn);
	pthread_mutex_destroy(&ns->cs_torn_lock);
	pthread_mutex_destroy(&ns->raid_clean_lock);
	free(ns);
	return rc;
}

void
namespace_close(struct namespace *ns, bool clean)
{
	if (ns == NULL)
		return;
	/* Background threads first, then storage: its threads call back into
	 * the index. */
	tomb_raider_stop(ns);
	storage_close(ns->storage, clean);
	index_destroy(ns->index, NULL, NULL);
	set_table_fini(&ns->sets);
	free(ns->cs_unnamed);
	pthread_mutex_destroy(&ns->cs_unnamed_lock);
	free(ns->cs_torn);
	pthread_mutex_destroy(&ns->cs_torn_lock);
	pthread_mutex_destroy(&ns->raid_clean_lock);
	log_info("namespace", "{%s} closed%s", ns->name, clean ? " cleanly" : "");
	free(ns);
}
