/*
 * namespace.c - opening and closing a namespace, and the callbacks the
 * storage engine makes into it (see namespace.h).
 *
 * Relocation (defrag) follows the index's lock order: record lock, then the
 * partition lock to check the entry still points at the old copy, then the
 * engine's own locks inside storage_defrag_copy().  A record overwritten or
 * deleted meanwhile is simply not moved.
 */
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
namespace_entry_fill(struct index_entry *e, const struct record *r, const struct entry_info *info,
    storage_loc loc)
{
	e->loc = loc;
	e->generation = r->generation;
	e->last_update_ms = r->last_update_ms;
	e->void_time = r->void_time;
	e->size = info->file_len;
	e->has_bins = info->has_bins;
	e->has_ttl = info->has_ttl;
	e->tombstone = (r->flags & RECORD_F_TOMBSTONE) != 0;
	e->set_marker = (r->flags & RECORD_F_SET_MARKER) != 0;
	e->has_meta = (r->flags & RECORD_F_HAS_META) != 0;
	e->mode = (uint16_t)(r->meta.mode & 07777);
	e->uid = r->meta.uid;
	e->gid = r->meta.gid;
	e->mtime_ns = r->meta.mtime_ns;
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
	if (e->tombstone) {
		atomic_add(&ns->tombstones, (uint64_t)(int64_t)dir);
		atomic_add(&s->tombstones, (uint64_t)(int64_t)dir);
	} else {
		atomic_add(&ns->objects, (uint64_t)(int64_t)dir);
		atomic_add(&s->objects, (uint64_t)(int64_t)dir);
	}
	atomic_add(&s->data_bytes, (uint64_t)((int64_t)dir * bytes));
}

bool
namespace_entry_replace(struct namespace *ns, const struct index_entry *e, bool tombstone,
    bool set_marker, uint32_t old_bytes, uint32_t new_bytes)
{
	if (e->tombstone != tombstone || e->set_marker != set_marker) {
		namespace_entry_count(ns, e, -1, old_bytes);
		return true;
	}
	if (!set_marker && old_bytes != new_bytes)
		atomic_add(&ns->sets.sets[e->set_id].data_bytes,
		    (uint64_t)((int64_t)new_bytes - (int64_t)old_bytes));
	return false;
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

void
namespace_entry_info(const struct namespace *ns, const struct record *r, struct entry_info *out)
{
	const struct bin *fb = record_bin_find(r, ns->cfg->file_bin, strlen(ns->cfg->file_bin));

	out->file_len = fb != NULL && (fb->type == BIN_BLOB || fb->type == BIN_STRING)
	    ? fb->v.bytes.len : 0;
	out->has_bins = r->n_bins > (fb != NULL ? 1 : 0);
	out->has_ttl = r->ttl != RECORD_TTL_DEFAULT;
}

/*
 * Is copy a (generation ga, last-update la) newer than b?  The last-update
 * time decides: it never moves backwards for a record while it is indexed
 * (txn.c next_lut), and a record written again after its tombstone was
 * reclaimed is written later than that tombstone.  The generation only
 * breaks ties (wrap-aware, 16 bits).  Rejected: generation first, as SPEC
 * 6.4 words it: a reclaimed tombstone restarts the record's generation at
 * 1, so a stale tombstone left on storage would win over the new record at
 * the next cold start, and two copies 32768 writes apart compare backwards.
 * A tie on both keeps the copy already indexed (defrag copies are identical).
 */
static bool
copy_is_newer(uint16_t ga, uint64_t la, uint16_t gb, uint64_t lb)
{
	if (la != lb)
		return la > lb;
	uint16_t diff = (uint16_t)(ga - gb);
	return diff != 0 && diff < 0x8000;
}

/*
 * Cold start: one verified copy of a record.  Keep it if it is the newest
 * copy seen so far (returns 1: the engine counts its bytes as live), else
 * ignore it (0).  Newest = latest last-update time (see copy_is_newer).
 * Expired copies and tombstones are kept like any other
 * during the scan, so an older copy found later can never win over them;
 * namespace_loaded() settles them once every copy has been seen.
 */
static int
namespace_load(void *arg, struct storage *st, const struct record *r, uint32_t size,
    storage_loc loc)
{
	struct namespace *ns = arg;
	struct index_partition *p = index_partition_of(ns->index, &r->digest);
	struct index_entry *e;
	struct entry_info info;
	uint16_t set_id = 0;
	bool is_tomb = (r->flags & RECORD_F_TOMBSTONE) != 0;
	int rc = 0;

	if (r->set_len > 0 && set_lookup_or_add(&ns->sets, r->set, r->set_len, &set_id) != 0) {
		log_warn("namespace", "{%s} cold start: too many sets, record skipped", ns->name);
		return 0;
	}
	if (is_tomb)
		atomic_inc(&ns->cold_start_tombs);
	namespace_entry_info(ns, r, &info);
	index_record_lock(ns->index, &r->digest);
	pthread_rwlock_rdlock(&p->lock);
	e = index_find_locked(p, set_id, &r->digest);
	pthread_rwlock_unlock(&p->lock);
	if (e == NULL) {
		e = index_entry_alloc(ns->index, set_id, &r->digest, r->key, r->key_len);
		if (e == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		pthread_rwlock_wrlock(&p->lock);
		namespace_entry_fill(e, r, &info, loc);
		index_insert_locked(p, e);
		namespace_entry_count(ns, e, +1, size);
		pthread_rwlock_unlock(&p->lock);
		rc = 1;
	} else if (copy_is_newer(r->generation, r->last_update_ms, (uint16_t)e->generation,
	    e->last_update_ms)) {
		storage_loc old = e->loc;
		bool older_live = !e->tombstone || e->older_seen;

		pthread_rwlock_wrlock(&p->lock);
		namespace_entry_count(ns, e, -1, storage_loc_size(old));
		namespace_entry_fill(e, r, &info, loc);
		e->older_seen = is_tomb && older_live;
		namespace_entry_count(ns, e, +1, size);
		pthread_rwlock_unlock(&p->lock);
		storage_free(st, old);
		rc = 1;
	} else if (e->tombstone && !is_tomb) {
		/* An older live copy is still on storage: the tombstone must stay. */
		pthread_rwlock_wrlock(&p->lock);
		e->older_seen = 1;
		pthread_rwlock_unlock(&p->lock);
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

/* Cold start is over: a tombstone no older copy was found for has done
 * its job and is dropped (its bytes freed).  Runs before any client. */
static void
namespace_loaded(void *arg, struct storage *st)
{
	struct namespace *ns = arg;
	uint64_t dropped = 0;

	struct index_entry **victims = NULL;
	size_t cap = 0;

	/* No tombstone met (set markers included): nothing to look for (the
	 * walk visits every entry, a cache miss each on a large index). */
	for (uint32_t pid = 0; pid < PARTITION_COUNT && atomic_load_relaxed(&ns->cold_start_tombs) > 0; pid++) {
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
	log_info("namespace", "{%s} cold start done: %" PRIu64 " records, %" PRIu64
	    " tombstones kept, %" PRIu64 " tombstones reclaimed", ns->name,
	    atomic_load_relaxed(&ns->objects), atomic_load_relaxed(&ns->tombstones), dropped);
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

	if (flat_set_id(ns, flat, size, &set_id) != 0)
		return 0;  /* no such set: not a current copy */
	index_record_lock(ns->index, d);
	pthread_rwlock_rdlock(&p->lock);
	e = index_find_locked(p, set_id, d);
	bool current = e != NULL && e->loc == old_loc;
	pthread_rwlock_unlock(&p->lock);
	if (!current) {
		rc = 0;
		goto out;
	}
	rc = storage_defrag_copy(st, flat, size, &new_loc);
	if (rc != 0)
		goto out;
	pthread_rwlock_wrlock(&p->lock);
	e->loc = new_loc;
	pthread_rwlock_unlock(&p->lock);
	storage_free(st, old_loc);
	rc = 1;
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
	set_table_init(&ns->sets);
	rc = index_create(&ns->index);
	if (rc != 0)
		goto fail;
	ns->max_record_size = storage_max_record_size(&cfg->storage);
	owner = (struct storage_owner){ .arg = ns, .relocate = namespace_relocate,
	    .load = namespace_load, .hint = namespace_hint, .loaded = namespace_loaded };
	rc = storage_open(&ns->storage, ns->name, &cfg->storage, &owner);
	if (rc != 0)
		goto fail;
	if (ns->storage->persistent && ns->storage->ops->scan != NULL) {
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
	log_info("namespace", "{%s} closed%s", ns->name, clean ? " cleanly" : "");
	free(ns);
}
