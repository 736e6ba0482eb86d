/*
 * index.h - the primary index: per partition, a balanced tree of entries
 * keyed by (set id, digest), plus striped record locks.
 *
 * An entry holds everything stat(2) and a listing need (size, mode, owner,
 * mtime, generation, void time, key), so lookups never touch storage.
 * Entries are allocated from a slab (index_slab.c) so an entry costs its
 * size rounded to 8 bytes and nothing more: 82 bytes + key.  The sprig
 * roots cost a fixed 2 MiB per namespace (4096 x 64 pointers).
 *
 * Locking (see docs/architecture.md, "Threads and locks"):
 *   - the record lock (striped by digest) serialises whole transactions on
 *     one record: read-modify-write, storage write, index update;
 *   - the partition lock (rwlock) protects the tree shape and every entry
 *     field.  Readers (stat, listing) take it shared; an update of entry
 *     fields or the tree takes it exclusive, always while already holding
 *     the record lock.  Order: record lock -> partition lock -> storage locks.
 *
 * Ordering by set id within each tree makes listing a set cost its own size
 * (plus one probe per sprig), not the namespace's.  Rejected: a hash table per
 * partition (no stable order for listings across concurrent inserts) and
 * sorted arrays (O(n) inserts in big partitions).
 */
#ifndef RECFS_INDEX_INDEX_H
#define RECFS_INDEX_INDEX_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/atomic.h"
#include "../base/digest.h"
#include "../record/record.h"

struct index_entry {
	/* What a tree descent touches, together in the first 40 bytes. */
	struct index_entry *left, *right;   /* tree links */
	struct digest digest;
	uint16_t set_id;
	uint8_t key_len;
	/* The tree colour shares a byte with the slab class, not the record's
	 * bitfields below: rotations for other records rewrite it under the
	 * partition lock while this record's fields are read under its record
	 * lock alone, and bitfields in one word are one memory location (a
	 * data race; TSan saw it).  The slab class is only read once the entry
	 * has left the tree. */
	uint8_t slab_class : 7;
	uint8_t red : 1;
	/* The rest: what stat and the transaction layer read. */
	uint64_t loc;                        /* storage location (storage.h) */
	int64_t mtime_ns;                    /* stored mtime (valid if has_meta) */
	uint64_t last_update_ms : 40;
	uint64_t generation : 16;
	uint64_t has_meta : 1;               /* mode/uid/gid/mtime stored */
	uint64_t has_bins : 1;               /* bins other than the file bin */
	uint64_t tombstone : 1;              /* deleted: kept until reclaimed */
	uint64_t set_marker : 1;             /* the marker that keeps a set alive */
	uint64_t has_ttl : 1;                /* a TTL was set on the record (user.recfs.ttl) */
	uint64_t older_seen : 1;             /* cold start: an older copy exists on storage */
	uint64_t damaged : 1;                /* cold start: the newest copy's body is damaged:
	                                      * listed, stat works, reads fail (EIO) */
	uint64_t chunked : 1;                /* the head of a large file (its map bin) */
	uint32_t void_time;
	uint32_t size;                       /* file-bin length */
	uint32_t uid, gid;
	uint16_t mode : 12;                  /* permission bits (07777) */
	uint16_t has_extra : 1;              /* a kept inode number or an atime: index_extra_get */
	uint16_t mode_type : 2;              /* INDEX_TYPE_*: the mode's file type */
	uint16_t spare_mode_bits : 1;
	char key[];                          /* key_len bytes, not NUL-terminated */
};

#define INDEX_ENTRY_BASE_SIZE offsetof(struct index_entry, key)

/* An entry's file type (record.h RECORD_MODE_*) in two bits. */
#define INDEX_TYPE_FILE 0
#define INDEX_TYPE_DIR  1
#define INDEX_TYPE_LINK 2

static inline unsigned index_type_of_mode(uint32_t mode)
{
	return (mode & RECORD_MODE_TYPE_MASK) == RECORD_MODE_DIR ? INDEX_TYPE_DIR :
	    (mode & RECORD_MODE_TYPE_MASK) == RECORD_MODE_LINK ? INDEX_TYPE_LINK : INDEX_TYPE_FILE;
}

/* The entry's mode with its type (permission bits and RECORD_MODE_*). */
static inline uint32_t index_entry_mode(const struct index_entry *e)
{
	return (uint32_t)e->mode | (e->mode_type == INDEX_TYPE_DIR ? RECORD_MODE_DIR :
	    e->mode_type == INDEX_TYPE_LINK ? RECORD_MODE_LINK : 0);
}
#define INDEX_RECORD_LOCKS 4096
#define INDEX_RECORD_LOCK_SLOTS 4   /* records held at once per stripe */
#define INDEX_SPRIGS 64         /* trees per partition, by digest byte 2 */

struct index_slab;
struct index_extra_table;
struct index_dirs;

/*
 * A partition is INDEX_SPRIGS small trees ("sprigs"), chosen by digest
 * byte 2, so a lookup descends a tree of a few levels even with millions
 * of records (a deep tree costs a cache miss per level).  Order within a
 * partition: sprig, then set id, then digest.
 */
struct index_partition {
	pthread_rwlock_t lock;
	uint32_t count;                      /* entries: written under lock, atomic */
	struct index_entry *sprigs[INDEX_SPRIGS]; /* tree roots: written under lock, atomic */
	struct index_dirs *dirs;             /* the index's directory index (index_dir.c); constant */
};

static inline unsigned index_sprig_of(const struct digest *d)
{
	return d->bytes[2] % INDEX_SPRIGS;
}

/*
 * Record locks: a record is locked by its exact digest.  A stripe's mutex
 * is held only while its list of locked digests changes, never while a
 * record is locked, so a holder that waits for another node (a master
 * waiting for its replicas) holds up only operations on the same record:
 * with the mutex itself as the record lock, two masters each waiting for
 * a replica write at the other, of another record in the same stripe,
 * waited for each other until their deadline (EIO).  A stripe whose slots
 * are all taken makes one more record wait as a busy mutex did.
 */
struct index_record_stripe {
	pthread_mutex_t mutex;
	pthread_cond_t cond;                 /* a digest of this stripe was unlocked */
	uint32_t n_held, n_waiting;
	struct digest held[INDEX_RECORD_LOCK_SLOTS];
};

struct index {
	struct index_partition partitions[PARTITION_COUNT];
	struct index_record_stripe record_locks[INDEX_RECORD_LOCKS];
	struct index_slab *slab;
	struct index_extra_table *extra;     /* index_extra.c */
	struct index_dirs *dirs;             /* index_dir.c */
};

int index_create(struct index **out);
/* Calls fn on every entry (may be NULL), then frees everything. */
void index_destroy(struct index *ix, void (*fn)(void *arg, struct index_entry *e), void *arg);

static inline struct index_record_stripe *index_record_lock_of(struct index *ix,
    const struct digest *d)
{
	uint32_t h = (uint32_t)d->bytes[4] | ((uint32_t)d->bytes[5] << 8);
	return &ix->record_locks[h & (INDEX_RECORD_LOCKS - 1)];
}
void index_record_lock(struct index *ix, const struct digest *d);
/* Lock d unless another thread holds it (or its stripe is full): false. */
bool index_record_trylock(struct index *ix, const struct digest *d);
void index_record_unlock(struct index *ix, const struct digest *d);
/* Lock two records in a fixed order (the same digest locked once). */
void index_record_lock_pair(struct index *ix, const struct digest *a, const struct digest *b);
void index_record_unlock_pair(struct index *ix, const struct digest *a, const struct digest *b);

static inline struct index_partition *index_partition_of(struct index *ix, const struct digest *d)
{
	return &ix->partitions[digest_partition(d)];
}

/*
 * index_prefetch_early: the same without loading anything (for a lookup
 * further ahead, whose slot then is in the cache for index_prefetch).
 *
 * A hint that d is about to be looked up: start loading its record lock,
 * its partition's lock and tree slot, and the tree's root entry, so those
 * cache misses (the index is far larger than the caches) overlap with the
 * work before the lookup.  Reads the root without the lock: only an
 * address for the prefetch, never dereferenced.
 */
static inline void index_prefetch_early(struct index *ix, const struct digest *d)
{
	struct index_partition *p = index_partition_of(ix, d);

	__builtin_prefetch(index_record_lock_of(ix, d), 1);
	__builtin_prefetch(&p->lock, 1);
	__builtin_prefetch(&p->sprigs[index_sprig_of(d)]);
}

static inline void index_prefetch(struct index *ix, const struct digest *d)
{
	struct index_partition *p = index_partition_of(ix, d);
	struct index_entry *const *slot = &p->sprigs[index_sprig_of(d)];

	__builtin_prefetch(index_record_lock_of(ix, d), 1);
	__builtin_prefetch(&p->lock, 1);
	__builtin_prefetch(atomic_load_relaxed(slot));
}

/* Find under the partition lock (shared or exclusive) held by the caller. */
struct index_entry *index_find_locked(struct index_partition *p, uint16_t set_id, const struct digest *d);

/*
 * Allocate an entry (not yet in the tree) with its key copied in.
 * Returns NULL on allocation failure.
 */
struct index_entry *index_entry_alloc(struct index *ix, uint16_t set_id, const struct digest *d,
    const char *key, size_t key_len);
void index_entry_free(struct index *ix, struct index_entry *e);

/* Tree insert / remove under the partition lock held exclusive by the caller.
 * Insert requires that no entry with the same (set id, digest) exists.
 * An entry whose key is a directory entry ("/d" + id + "/" + name) also
 * enters / leaves the directory index (below). */
void index_insert_locked(struct index_partition *p, struct index_entry *e);
void index_remove_locked(struct index_partition *p, struct index_entry *e);

/*
 * First entry of set_id in partition p strictly after digest *after (or the
 * first of the set when after is NULL), in the partition's order (sprig,
 * then digest).  Caller holds the partition lock.
 */
struct index_entry *index_next_locked(struct index_partition *p, uint16_t set_id,
    const struct digest *after);

/*
 * A position in a walk of one partition (index_partition_walk): a plain
 * value the caller keeps between calls (zero it to start).
 */
struct index_walk_pos {
	struct digest last;      /* the last entry visited (valid if started) */
	uint16_t set_id;         /* its set id */
	bool started;
	bool done;               /* the partition has no entry after the position */
};

/*
 * Visit up to max entries of partition pid after pos, whatever their set,
 * tombstones and set markers included, in the partition's order (sprig,
 * set id, digest), and advance pos past them.  Takes the partition lock
 * shared for the call and none between calls, so the caller can drop
 * everything, do work (send over the network) and resume: every entry
 * present throughout a walk is visited exactly once, however many are
 * created or deleted between calls (an entry created behind the position
 * is not visited).  fn runs under the partition lock: it must not block
 * or take the partition lock or a record lock; it returns 0 to go on, or
 * non-zero to stop after this entry.
 * Returns the number of entries visited (0: none was left), or fn's
 * answer when it is negative; pos->done is set once the partition is
 * exhausted.
 */
int index_partition_walk(struct index *ix, uint32_t pid, struct index_walk_pos *pos,
    int (*fn)(void *arg, const struct index_entry *e), void *arg, unsigned max);

/* The order index_next_locked walks a set in, within one partition:
 * < 0, 0, > 0. */
int index_key_compare(uint16_t set_a, const struct digest *a, uint16_t set_b, const struct digest *b);

/*
 * The side table of values few entries have (index_extra.c): a record's
 * kept inode number when it differs from digest_inode(digest) (it was
 * renamed), and an atime set explicitly to something else than its mtime.
 * An entry with either has has_extra set.  Callers hold the entry's record
 * lock and partition lock (exclusive to change, shared to read); the table
 * has its own leaf locks.
 */
int index_extra_create(struct index_extra_table **out);
void index_extra_destroy(struct index_extra_table *t);
/* Set d's values (ino 0: the digest's own, atime 0: none; both 0 removes).
 * 0 or -ENOMEM (then d has none). */
int index_extra_put(struct index *ix, const struct digest *d, uint64_t ino, int64_t atime_ns);
/* d's values, if it has any. */
bool index_extra_get(struct index *ix, const struct digest *d, uint64_t *ino, int64_t *atime_ns);
void index_extra_remove(struct index *ix, const struct digest *d);
/* Does a record other than d keep inode number ino?  (No lock when none
 * keeps one.) */
bool index_extra_ino_taken(struct index *ix, uint64_t ino, const struct digest *d);
/* The attempt-th other candidate for an inode number that is taken. */
uint64_t index_extra_ino_alternative(uint64_t ino, unsigned attempt);
uint64_t index_extra_bytes(const struct index *ix);

/* What the index costs in RAM: the slab's chunks plus the fixed tables
 * (partition locks, sprig roots, record locks). */
uint64_t index_memory_bytes(struct index *ix);
uint64_t index_entry_count(struct index *ix);

/* ---- the directory index (index_dir.c) ------------------------------------
 *
 * A secondary index: directory id -> the entries of this index whose key
 * is "/d" + 16 hex digits of that id + "/" + name (the entries of a
 * directory inside a set), kept in (partition, digest) order, so that
 * listing one directory costs its own entries, not its set's.  Maintained
 * by index_insert_locked / index_remove_locked (so a cold start rebuilds
 * it as it fills the index); tombstones and expired entries stay in it as
 * they stay in the index, and the caller filters them.  Memory: one
 * pointer per entry (8 bytes, up to twice that while a directory's array
 * has room to grow) plus 48 bytes per directory.  Its own mutex, taken
 * inside the partition lock by the hooks (a leaf lock): readers copy
 * digests out under it and look the entries up afterwards.
 */

/* The directory id of a directory-entry key, or false. */
bool index_dir_key_id(const char *key, size_t len, uint64_t *id);

/*
 * Up to max digests of directory dir's entries after position (partition,
 * *after) (after NULL: from the start of that partition), in (partition,
 * digest) order, skipping partitions for which mask (may be NULL: all)
 * has no bit.  Returns the number copied to out.
 */
size_t index_dir_next(struct index *ix, uint64_t dir, uint32_t partition,
    const struct digest *after, const uint8_t *mask, struct digest *out, size_t max);

/* Entries of directory dir in this index (tombstones too) and directories known. */
size_t index_dir_entries(struct index *ix, uint64_t dir);
size_t index_dir_count(struct index *ix);
/* Insertions the directory index could not record for lack of memory (logged). */
uint64_t index_dir_failures(struct index *ix);

int index_dirs_create(struct index_dirs **out);
void index_dirs_destroy(struct index_dirs *d);
void index_dirs_add(struct index_dirs *d, struct index_entry *e);
void index_dirs_remove(struct index_dirs *d, struct index_entry *e);

#endif
