/*
 * namespace.h - a namespace: its index, sets, storage engine and counters.
 *
 * Private to the engine: only the transaction layer (txn/) includes this.
 * The namespace owns the glue between index and storage: applying a
 * stored record version to the index (namespace_apply, for client writes,
 * cold-start loading, defrag relocation and records from other nodes), so
 * the storage engine never sees the index.
 */
#ifndef RECFS_NAMESPACE_NAMESPACE_H
#define RECFS_NAMESPACE_NAMESPACE_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "../base/atomic.h"
#include "../base/shard.h"
#include "../config/config.h"
#include "../index/index.h"
#include "../record/record.h"
#include "../storage/storage.h"

#define SET_ID_MAX 4095
#define SET_HASH_SLOTS 8192

/* Event counters of a namespace: name, help.  Expanded into the struct,
 * the statistics output and docs (docs/statistics.md: names follow Aerospike's). */
#define NS_COUNTERS(X) \
	X(client_read_success, "reads that returned a record") \
	X(client_read_not_found, "reads of a record that does not exist") \
	X(client_read_error, "reads that failed (storage error, checksum mismatch, out of memory)") \
	X(client_write_success, "record writes stored") \
	X(client_write_error, "record writes that failed") \
	X(client_delete_success, "records deleted") \
	X(client_delete_not_found, "deletes of a record that does not exist") \
	X(client_delete_error, "deletes that failed") \
	X(client_lookup_success, "metadata lookups (stat) answered from the index") \
	X(client_lookup_not_found, "metadata lookups of a missing record") \
	X(client_list_records, "records returned by listings") \
	X(fail_record_too_big, "writes refused because the record exceeds max-record-size") \
	X(fail_out_of_space, "writes refused for lack of storage space") \
	X(fail_key_exists, "create-only writes of an existing record") \
	X(fail_stop_writes, "writes refused because the namespace is in stop-writes") \
	X(expired_objects, "records reclaimed by nsup after their void time") \
	X(evicted_objects, "records evicted by nsup to keep used space under evict-used-pct") \
	X(apply_not_newer, "encoded record versions not stored: the stored one is as new or newer") \
	X(set_changes_sent, "set changes and checks sent to other nodes (one per node)") \
	X(set_changes_received, "set changes, checks and set-table entries received from other nodes") \
	X(set_changes_failed, "set changes and checks another node did not answer in time") \
	X(list_pages_sent, "listing pages asked of other nodes") \
	X(list_pages_received, "listing pages other nodes asked of this one") \
	X(migrate_msgs_refused, "migration messages refused: another cluster key, or a partition not expected from that node") \
	X(migrate_records_refused, "records of migration batches refused one by one: malformed, or of another partition") \
	X(migrate_rx_ends_failed, "partition ends received and answered with an error: records or version not durable") \
	X(migrate_takeover_notices_again, "takeover notices sent again to a member that had not taken one") \
	X(migrate_tx_yields, "pauses of emigration threads for client operations (migrate-yield-pct)") \
	X(migrate_tx_yield_time, "microseconds emigration threads paused for client operations") \
	X(dup_res_run, "operations that asked the duplicate holders of their partition first") \
	X(dup_res_won, "copies from duplicate holders newer than this node's, applied") \
	X(dup_res_failed, "duplicate resolutions that failed: a holder did not answer in time") \
	X(retries_applied_before, "writes, deletes and renames routed again that their first attempt had applied") \
	X(chunk_reads, "chunk records of large files read") \
	X(chunk_writes, "chunk records of large files written by commits") \
	X(chunk_read_errors, "chunk reads that failed other than for a missing chunk") \
	X(chunks_reclaimed, "chunks no head named, deleted by the reclaimer") \
	X(chunk_reclaim_passes, "passes of the chunk reclaimer") \
	X(chunk_reclaim_skipped, "chunk reclaimer passes that deleted nothing: the gather could not be trusted")

struct ns_counters {
#define X(name, help) uint64_t name;
	NS_COUNTERS(X)
#undef X
};

/* Add n to a counter of ns: into the calling thread's shard, so that two
 * CPUs counting writes do not bounce one cache line (base/shard.h). */
#define NS_COUNT_ADD(ns, name, n) atomic_add(&(ns)->counters[shard_self()].name, (n))

/*
 * A set is a directory, so it has a mode, an owner and times.  Mode, owner
 * and an explicitly set mtime are stored in its marker record (POSIX meta).
 * Its mtime and ctime also move when records are created, deleted or
 * renamed in it; writing the marker for each of those would double their
 * cost, so the times live here and reach the marker at a clean shutdown
 * (txn.c set_times_store); after a crash the cold start moves them to the
 * newest record copy of the set written after the marker (set_times_settle).
 * docs/architecture.md "Set directories" has the whole argument.
 */
struct ns_set {
	char name[RECORD_SET_MAX + 1];
	uint8_t len;
	bool marker;             /* created by mkdir: exists while empty */
	uint64_t removed_ms;     /* atomic: last-update time of its last removal (rmdir
	                          * here or from another node), 0: none since the start */
	uint64_t objects;        /* atomic */
	uint64_t data_bytes;     /* atomic: storage bytes of its records */
	uint64_t tombstones;     /* atomic */
	int64_t mtime_ns;        /* atomic: the set's mtime (ns since the Unix epoch) */
	uint64_t ctime_ms;       /* atomic: its ctime, in last-update time (ms since RECFS_EPOCH) */
	uint64_t newest_ms;      /* atomic, cold start only: newest last-update time of a
	                          * record copy (tombstones too) of the set */
};

struct set_table {
	pthread_rwlock_t lock;              /* adding: exclusive; reading n and
	                                     * lookups: none (set.c) */
	uint32_t n;                         /* ids 1..n in use (0 = null set); atomic:
	                                     * written under lock, read without */
	struct ns_set sets[SET_ID_MAX + 1]; /* [0] = null set */
	uint16_t hash[SET_HASH_SLOTS];      /* open addressing, 0 = empty */
};

/* A tombstone as the tomb raider found it. */
struct ns_tomb {
	struct digest digest;
	uint16_t set_id;
	uint16_t generation;
	uint64_t last_update_ms;
};

struct raid;

struct namespace {
	char name[CONFIG_NAME_MAX + 1];
	struct ns_config *cfg;              /* live configuration */
	const struct recfs_config *root_cfg; /* the whole configuration (for config_get_text) */
	int cfg_index;                      /* this namespace's index in root_cfg->ns */
	struct index *index;
	struct set_table sets;
	struct storage *storage;
	uint32_t max_record_size;
	uint64_t objects;                   /* atomic: live records (markers excluded) */
	uint64_t tombstones;                /* atomic */
	uint64_t chunk_objects;             /* atomic: live chunks of large files */
	bool sets_used_changed;             /* atomic: a set without a marker got its first
	                                     * record or lost its last one here (the
	                                     * layer above tells the other nodes) */
	struct ns_counters counters[SHARDS]; /* atomics, by thread: NS_COUNT_ADD, namespace_counters */

	/* The layer above's own per-namespace state (the transaction layer's:
	 * latency histograms, nsup, the partition table), opaque here.  Set
	 * once by the owner right after namespace_open, before any other
	 * thread sees the namespace; read without a lock. */
	void *owner;

	/* The tomb raider (tomb_raider.c). */
	pthread_t raider_thread;
	bool raider_started;
	bool raider_stop;                   /* atomic; raider_lock for the wake-up */
	pthread_mutex_t raider_lock;
	pthread_cond_t raider_cv;
	uint64_t raider_passes;             /* atomic */
	uint64_t migrations_pending;        /* atomic: partitions still to send or receive
	                                     * (txn/migrate.c); the tomb raider waits for 0 */
	uint64_t tombstones_reclaimed;      /* atomic: dropped here, by this node's
	                                     * pass or at its master's request */
	/* Who decides a tombstone's reclaim (the layer above's; NULL: this
	 * node alone, as a single node).  Atomic: set after namespace_open. */
	int (*raider_reclaim)(struct namespace *ns, const struct ns_tomb *t);
	/* Atomic: a network was attached once (the layer above sets it): the
	 * tomb raider keeps each tombstone tomb-raider-eligible-age seconds
	 * at least, as an older copy may sit on a node away from the cluster. */
	bool clustered;
	/* The last pass's tombstones and whether an older copy was seen
	 * (tomb_raider.c struct raid), kept for namespace_tomb_reclaim. */
	pthread_mutex_t raid_clean_lock;
	struct raid *raid_clean;
	uint64_t cold_start_tombs;          /* atomic: tombstone copies the cold start met */
	bool loading;                       /* the cold start runs (namespace_open): set
	                                     * times are settled from every copy, not
	                                     * moved by each apply */

	/* Damaged records: entries whose newest copy's body is damaged. */
	uint64_t damaged_records;           /* atomic gauge (namespace_entry_count) */
	/* Objects by kind (namespace_entry_count): directories and symbolic
	 * links inside sets; atomic gauges. */
	uint64_t objects_dirs, objects_links;
	/* Cold start: damaged copies whose name is damaged too and whose
	 * record has no entry yet; settled when a copy of the record brings
	 * its name, or dropped by namespace_loaded.  Rare: a plain array. */
	pthread_mutex_t cs_unnamed_lock;
	struct cs_unnamed *cs_unnamed;
	size_t cs_unnamed_n, cs_unnamed_cap;
	uint64_t cs_unnamed_count;          /* atomic: cs_unnamed_n, read without the lock */
	/* Cold start: for each record whose newest copy so far is damaged,
	 * the best intact older copy met, in case the damaged one turns out
	 * to be a torn write (namespace.c, torn_settle).  One per record that
	 * had a damaged newest copy during the scan: a plain array. */
	pthread_mutex_t cs_torn_lock;
	struct cs_torn *cs_torn;
	size_t cs_torn_n, cs_torn_cap;
	uint64_t cold_start_torn_writes;    /* atomic: torn writes the last cold start
	                                     * dropped (previous version kept) */
};

/* What the index learns from a stored record besides its header. */
struct entry_info {
	uint32_t file_len;       /* file-bin length */
	bool has_bins;           /* bins other than the file bin */
	bool has_ttl;            /* a TTL setting other than the default */
	bool damaged;            /* the copy's body is damaged (only its header is known) */
	bool chunked;            /* the head of a large file: has the chunk map bin */
};

/* Copy a stored record's metadata into its index entry (record lock and
 * partition lock held exclusive), its kept inode number and atime into the
 * index's side table when they are not the defaults (the digest's inode
 * number; the mtime). */
void namespace_entry_fill(struct namespace *ns, struct index_entry *e, const struct record *r,
    const struct entry_info *info, storage_loc loc);
/* Account an entry entering (+1) or leaving (-1) the index: object and
 * tombstone counts, damaged records, set sizes, set markers. */
void namespace_entry_count(struct namespace *ns, const struct index_entry *e, int dir,
    uint32_t bytes);
/*
 * Applying a version of a record to the index: the one way a stored copy
 * becomes (or stops being) its record's current copy.  Every path that
 * stores a record goes through namespace_apply: the client commit
 * (txn.c commit_record), the cold start load, defrag relocation, and the
 * apply of encoded bytes (namespace_apply_flat: replica writes,
 * migration).  It does the index insert or update, the counts (objects,
 * tombstones, damaged records, set sizes and markers), the set's times, and
 * frees the displaced copy's storage.
 */
enum ns_apply_mode {
	/* The caller holds the record lock and built the next version from
	 * the current entry (a->e, NULL if none): it replaces it. */
	NS_APPLY_REPLACE,
	/* Cold start, replica write, migration: the version replaces the
	 * current one only if it wins by record_version_cmp (record.h);
	 * on a tie or an older version the stored one stays (returns 0). */
	NS_APPLY_IF_NEWER,
	/* Defrag: the same version moved from a->from to a->loc; applied
	 * only if the entry a->e still points at a->from (returns 0 if not). */
	NS_APPLY_RELOCATE,
};

struct ns_apply {
	enum ns_apply_mode mode;
	uint16_t set_id;
	const struct record *r;          /* REPLACE, IF_NEWER: the version (header fields,
	                                  * set, key, meta; bins are not looked at) */
	const struct entry_info *info;   /* REPLACE, IF_NEWER: what the index learns from r */
	storage_loc loc;                 /* where the version is stored */
	storage_loc from;                /* RELOCATE: where it was */
	/* In: REPLACE, RELOCATE: the record's entry (REPLACE: NULL if none);
	 * IF_NEWER: ignored (looked up).  Out: the record's entry. */
	struct index_entry *e;
	/* Out, when a version was displaced (REPLACE, IF_NEWER): its version,
	 * location (0: none, the entry is new; storage already freed) and
	 * kind. */
	struct record_version prev;
	storage_loc prev_loc;
	bool prev_tombstone;
};

/*
 * Apply a->r stored at a->loc (see enum ns_apply_mode), record lock of the
 * record held.  Returns 1 when the index points at a->loc, 0 when the
 * stored version stays (IF_NEWER: as new or newer; RELOCATE: the entry
 * moved meanwhile) - a->loc is then still the caller's to free or drop -
 * or -ENOMEM (no entry could be allocated; nothing changed).
 */
int namespace_apply(struct namespace *ns, struct ns_apply *a);

/*
 * Apply a record that arrives encoded (a replica write, a migrated copy):
 * flat, size bytes, one whole record as storage holds it.  Validated first
 * (record decoder, its set name, key and digest, a last-update time the
 * index can hold): malformed bytes are
 * -EBADMSG and nothing is stored.  Under the record's lock, if it wins over
 * the stored version (NS_APPLY_IF_NEWER, record_version_cmp) it is stored
 * (storage_write_encoded: the bytes are not checked twice; made durable
 * first when durable is set or the namespace commits to device) and
 * indexed: returns 1.  If the stored
 * version is as new or newer nothing is written, apply_not_newer counts it,
 * and it returns 0.  Otherwise -EFBIG, -ENOSPC (also: no set id left),
 * -ENOMEM or -EIO, with nothing changed.
 */
int namespace_apply_flat(struct namespace *ns, const uint8_t *flat, uint32_t size, bool durable);
/* The same for a thread that must not wait (the fabric's, docs/cluster.md
 * RPC): -EWOULDBLOCK, nothing changed, when the record's lock is taken. */
int namespace_apply_flat_nowait(struct namespace *ns, const uint8_t *flat, uint32_t size,
    bool durable);

/* entry_info of a decoded record. */
void namespace_entry_info(const struct namespace *ns, const struct record *r,
    struct entry_info *out);

/* The counters of ns, its shards summed. */
void namespace_counters(const struct namespace *ns, struct ns_counters *out);

/*
 * Partition versions of this namespace on this node, kept durably by its
 * storage engine (storage_pversions_load/store, storage_pversion_store_one
 * in storage.h; docs/storage-format.md): 0 = no data for the partition.
 * A memory namespace without shadow files keeps none (load gives all 0,
 * stores return 0): it restarts empty.  Same returns as the storage calls.
 */
int namespace_pversions_load(struct namespace *ns, uint64_t out[STORAGE_PARTITIONS]);
int namespace_pversions_store(struct namespace *ns, const uint64_t v[STORAGE_PARTITIONS]);
int namespace_pversion_store_one(struct namespace *ns, uint32_t pid, uint64_t v);
/* This node's copy of pid is about to be dropped: version 0 and the drop
 * time, durably, so a cold start never loads the copies older than it
 * (storage_pversion_drop). */
int namespace_pversion_drop(struct namespace *ns, uint32_t pid, uint64_t drop_ms);
/* The same for the n partitions pids[], with one sync (storage_pversions_drop). */
int namespace_pversions_drop(struct namespace *ns, const uint32_t *pids, unsigned n, uint64_t drop_ms);

int namespace_open(struct namespace **out, struct ns_config *cfg);
void namespace_close(struct namespace *ns, bool clean);

/* Tomb raider thread (persistent engines; memory ones for the tombstones
 * they keep in a cluster). */
int tomb_raider_start(struct namespace *ns);
void tomb_raider_stop(struct namespace *ns);

/*
 * namespace->raider_reclaim returns, for a tombstone t that the pass found
 * with no older copy on storage (called under t's record lock, t still the
 * record's current version): 0 to drop it here (the caller made sure every
 * other copy of it goes too), NS_RAID_NOT_MINE when this node does not
 * decide it (kept, and remembered as checked for namespace_tomb_reclaim),
 * any other -errno to keep it until the next pass (-ETIMEDOUT: the pass
 * asks no more).  Set markers'
 * tombstones are each node's own and never go through it.
 */
#define NS_RAID_NOT_MINE (-EREMOTE)

/*
 * The node that decides asks this one to drop tombstone t: dropped (1)
 * only if t is still this record's current version here and this node's
 * last tomb raider pass saw no older copy of it on storage; 0 when this
 * node holds no version of the record; -EBUSY when it holds another
 * version, or t not yet checked by a pass, or an older copy was seen
 * (kept: the decider keeps its own and asks again after its next pass).
 */
int namespace_tomb_reclaim(struct namespace *ns, const struct ns_tomb *t);

/* Sets (set.c). */
void set_table_init(struct set_table *t);
void set_table_fini(struct set_table *t);
/* Id of an existing set name: 0 or -ENOENT. */
int set_lookup(struct set_table *t, const char *name, size_t len, uint16_t *id);
/* Id of name, adding it if new: 0 or -ENOSPC (4095 sets). */
int set_lookup_or_add(struct set_table *t, const char *name, size_t len, uint16_t *id);
/* The set's entries changed (a record created, deleted or renamed) by a
 * write with last-update time lut_ms: its mtime and ctime move there. */
void set_times_touch(struct ns_set *s, uint64_t lut_ms);
/* Cold start: a copy of one of the set's records with last-update time lut_ms. */
void set_times_seen(struct ns_set *s, uint64_t lut_ms);
/*
 * Cold start is over: each set's times from its marker entry m (NULL: none,
 * or not live) and the newest record copy seen.  After a clean shutdown the
 * marker's times are exact (set_times_store wrote them); after a crash a
 * record copy newer than the marker moves both times to it.
 */
void set_times_settle(struct ns_set *s, const struct index_entry *m, bool clean_start);

/* A set is visible while it has a marker or records. */
static inline bool set_visible(const struct ns_set *s)
{
	return atomic_load_relaxed(&s->marker) || atomic_load_relaxed(&s->objects) > 0;
}

#endif
