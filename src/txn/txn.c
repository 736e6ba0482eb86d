/*
 * txn.c - record transactions: stat, read, write, delete, rename, sets and
 * listings (see txn.h).
 *
 * Every transaction on a record runs under its record lock, so a
 * read-modify-write (keep other bins, apply a few changes, store a new
 * generation) is atomic with respect to other transactions on that record.
 * The write path avoids reading the old record whenever the index says
 * nothing of it must be kept: a file rewrite of a record with no other bins
 * and no TTL setting builds the new record from the request and the index
 * entry alone.
 *
 * Expired records (void time in the past) are invisible here at once, on
 * every engine; nsup (#shadow) reclaims their space later.
 *
 * Flow of every public record operation (docs/architecture.md, Routing):
 *   1. resolve: check the names, compute digest and partition into a
 *      struct txn_target (target_resolve; a set operation's target is its
 *      marker record).  No lookup, no set created: a bad name or a refused
 *      route leaves nothing behind;
 *   2. route: txn_route() says where it runs - here without a network;
 *      in a cluster from the partition table (the master: here, another
 *      node, or none now);
 *   3. dispatch(): the one place that acts on the answer - runs the local
 *      body (stat_record, write_record, ...), which finds the set, or for
 *      a write creates it, then takes the record lock; or sends the
 *      operation to the master (remote.c), whose commit sends each stored
 *      version to the other replicas (replica_flat, replica_send).
 * Rejected: routing inside each body (set creation and index lookups
 * would happen on a node that does not own the record).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/atomic.h"
#include "../base/bytes.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "../cluster/partition.h"
#include "chunk.h"
#include "remote.h"
#include "set_msg.h"
#include "txn_i.h"

#define COUNT(ns, name) NS_COUNT_ADD(ns, name, 1)

/* One operation's latency into the namespace's histogram (txn_i.h). */
static inline void
latency_add(const struct namespace *ns, enum stat_latency_ns op, uint64_t t0)
{
	histogram_add(&txn_namespace_of(ns)->latency[op], clock_mono_ns() - t0);
}

/* ---- helpers ------------------------------------------------------------ */

static bool
entry_expired(const struct index_entry *e, uint32_t now)
{
	return e->void_time != 0 && e->void_time <= now;
}

/* A record callers can see: not deleted, not a set marker, not expired. */
static bool
entry_visible(const struct index_entry *e, uint32_t now)
{
	return e != NULL && !e->tombstone && !e->set_marker && !entry_expired(e, now);
}

/* A record's inode number and explicit atime (0: none): from the side
 * table if its entry has extras, else the digest's number.  The entry's
 * record lock or partition lock held. */
static void
entry_extra(struct namespace *ns, const struct index_entry *e, uint64_t *ino, int64_t *atime_ns)
{
	*ino = 0;
	*atime_ns = 0;
	if (e->has_extra)
		index_extra_get(ns->index, &e->digest, ino, atime_ns);
	if (*ino == 0)
		*ino = digest_inode(&e->digest);
}

static void
attr_from_entry(struct namespace *ns, const struct index_entry *e, struct record_attr *a)
{
	entry_extra(ns, e, &a->ino, &a->atime_ns);
	a->digest = e->digest;
	a->size = e->size;
	a->damaged = e->damaged;
	a->chunked = e->chunked;
	a->has_meta = e->has_meta;
	a->mode = index_entry_mode(e);
	a->uid = e->uid;
	a->gid = e->gid;
	a->last_update_ms = e->last_update_ms;
	a->mtime_ns = e->has_meta ? e->mtime_ns : clock_epoch_ms_to_unix_ns(e->last_update_ms);
	a->generation = (uint16_t)e->generation;
	a->void_time = e->void_time;
	a->partition = digest_partition(&e->digest);
}

/* A target for k, names unchecked (set markers have the empty key). */
static void
target_fill(struct namespace *ns, const struct txn_key *k, struct txn_target *t)
{
	t->ns = ns;
	t->k = *k;
	digest_compute(&t->digest, k->set, k->set_len, k->key, k->key_len);
	t->partition = digest_partition(&t->digest);
}

/*
 * The first step of every public record operation: check the names and
 * compute the digest and partition.  Nothing is looked up or created, so an
 * operation refused here or by routing leaves no trace.  Key first, then
 * set (the errors callers have always seen).  A key may be internal.
 */
static int
target_resolve(struct namespace *ns, const struct txn_key *k, struct txn_target *t)
{
	/* A name, an entry of a tree directory inside a set (tree.c), or a
	 * large file's chunk (chunk.c): the internal keys (record.h) are this
	 * layer's own records; a file name never starts with '/'. */
	int rc = (k->set_len > 0 && tree_key_valid(k->key, k->key_len)) ||
	    record_key_is_chunk(k->key, k->key_len) ? 0 : record_key_check(k->key, k->key_len);

	if (rc == 0 && k->set_len > 0)
		rc = record_set_name_check(k->set, k->set_len);
	if (rc != 0)
		return rc;
	target_fill(ns, k, t);
	return 0;
}

/*
 * The first step of a local body: the target's set id.  With create the
 * set is added to the table if new (writes may create sets, as Aerospike's
 * do); otherwise a missing set is -ENOENT.  Starts loading the record's
 * index slots meanwhile.
 */
static int
target_set(const struct txn_target *t, bool create, uint16_t *set_id)
{
	struct set_table *sets = &t->ns->sets;

	index_prefetch(t->ns->index, &t->digest);
	*set_id = 0;
	if (t->k.set_len == 0)
		return 0;
	return create ? set_lookup_or_add(sets, t->k.set, t->k.set_len, set_id)
	    : set_lookup(sets, t->k.set, t->k.set_len, set_id);
}

static uint16_t
next_generation(uint16_t g)
{
	/* 16-bit, starts at 1, wraps past 0 (0 means "no record"). */
	return g == UINT16_MAX ? 1 : (uint16_t)(g + 1);
}

static uint64_t
next_lut(uint64_t old)
{
	uint64_t now = clock_epoch_ms();

	/* Never move backwards, so newest-copy rules hold across clock steps. */
	return now > old ? now : old + 1;
}

static uint32_t
void_time_for(const struct namespace *ns, int32_t ttl)
{
	uint32_t secs;

	if (ttl == RECORD_TTL_NEVER)
		return 0;
	secs = ttl > 0 ? (uint32_t)ttl : atomic_load_relaxed(&ns->cfg->default_ttl);
	return secs == 0 ? 0 : clock_epoch_s() + secs;
}

static const struct bin *
file_bin_of(const struct namespace *ns, const struct record *r)
{
	return record_bin_find(r, ns->cfg->file_bin, strlen(ns->cfg->file_bin));
}

/*
 * Stop-writes (docs/operations.md, Storage full), decided on the write path from the live counters
 * so that it engages at the threshold whatever the write rate (nsup's check
 * every 100 ms let a burst of 256 KiB writes run from 50% to storage full
 * first).  The lock-free figures (storage_space) say when the full test is
 * due - used at or past stop-writes-used-pct, or the fullest file or
 * stripe's free wblocks under stop-writes-avail-pct; the full test
 * (nsup_stop_writes_check: the same as nsup's, counting space on its way
 * back, under the stripe locks) then sets the flag, which every later write
 * sees at once.  nsup lifts it when space returns.  The avail test alone
 * can come out false (defrag is about to give space back), so it runs at
 * most once a millisecond: an overwrite load near full does not take every
 * stripe lock on every write.
 */
#define STOP_WRITES_RECHECK_NS 1000000

static bool
stop_writes(struct namespace *ns)
{
	struct txn_namespace *tn = txn_namespace_of(ns);
	struct storage_space sp;
	uint32_t max_used, min_avail;
	uint64_t now, last;

	if (atomic_load_relaxed(&tn->stop_writes))
		return true;
	max_used = atomic_load_relaxed(&ns->cfg->stop_writes_used_pct);
	min_avail = atomic_load_relaxed(&ns->cfg->stop_writes_avail_pct);
	storage_space(ns->storage, &sp);
	if (max_used > 0 && sp.used_bytes * 100 >= (uint64_t)max_used * sp.total_bytes)
		return nsup_stop_writes_check(ns);
	if (min_avail == 0 || sp.free_pct >= min_avail)
		return false;
	now = clock_mono_ns();
	last = atomic_load_relaxed(&tn->stop_writes_checked_ns);
	if (now - last < STOP_WRITES_RECHECK_NS ||
	    !atomic_cas_relaxed(&tn->stop_writes_checked_ns, &last, now))
		return false;
	return nsup_stop_writes_check(ns);
}

/*
 * Replication (docs/cluster.md, "Write path"): a record version stored at
 * its master goes, encoded, to the other replicas of its partition while
 * the record lock is held, and the write succeeds only when every one
 * answered OK.  Nothing to do without a network or at RF 1.  Set markers
 * are the cluster-wide set layer's (they are not sent here).
 */
/* id: the proxied operation storing r (NULL: none), told to the replicas. */
static int
replica_flat(struct namespace *ns, const struct record *r, bool durable,
    const struct txn_op_id *id, uint8_t **body, size_t *size)
{
	struct txn_namespace *x = txn_namespace_of(ns);
	struct partition_rsv rsv;
	size_t n;

	*body = NULL;
	*size = 0;
	if (atomic_load_acquire(&x->remote) == NULL || (r->flags & RECORD_F_SET_MARKER))
		return 0;
	partition_reserve(x->partitions, digest_partition(&r->digest), &rsv);
	n = rsv.n_replicas;
	partition_release(&rsv);
	if (n <= 1)
		return 0;
	return txn_remote_replica_msg(ns, r, durable || ns->cfg->storage.commit_to_device, id,
	    body, size);
}

/*
 * Operations routed again.  A write, delete or rename proxied to a master
 * that runs it, replicates it and goes down before its answer arrives is
 * routed again (dispatch) to the new master - a former replica, which
 * holds that version: run again, a create-only write would answer EEXIST
 * (the caller's own create failing as if someone else had made the file),
 * a delete or rename ENOENT, a rename-in with RENAME_NOREPLACE EEXIST,
 * any other write would be applied twice (a second generation and
 * last-update time for one operation).  So a proxied write, delete or
 * rename carries an id (struct txn_op_id) to its master and on in its
 * replica writes (a rename: of both names); master and replicas note (digest, id) in a small fixed
 * table (txn_namespace.recent) as they apply it, and an attempt marked as
 * routed again whose id the table holds for its digest is not run again:
 * it answers 0, as its first attempt did (a write: the record's
 * attributes now).  Operations run where they were called carry no id
 * (their node is their master: nothing to route again).  An entry pushed
 * out of its bucket meanwhile (TXN_RECENT_WAYS later operations on
 * digests of the bucket), or a new master that got the version by
 * migration only, gives the old behaviour: the attempt runs again.
 */
static struct txn_recent_op *
recent_bucket(struct txn_namespace *x, const struct digest *d)
{
	/* the digest's bytes are uniform; its first ones pick the partition */
	return &x->recent[(le_get32(d->bytes + DIGEST_SIZE - 4) %
	    (TXN_RECENT_OPS / TXN_RECENT_WAYS)) * TXN_RECENT_WAYS];
}

static bool
recent_op_same(const struct txn_recent_op *o, const struct digest *d, const struct txn_op_id *id)
{
	return o->id.seq == id->seq && o->id.node == id->node &&
	    memcmp(o->digest.bytes, d->bytes, DIGEST_SIZE) == 0;
}

/* id applied here to d (id NULL: nothing to note). */
static void
recent_op_note(struct namespace *ns, const struct digest *d, const struct txn_op_id *id)
{
	struct txn_namespace *x = txn_namespace_of(ns);
	struct txn_recent_op *b;
	unsigned i;

	if (id == NULL)
		return;
	b = recent_bucket(x, d);
	pthread_mutex_lock(&x->recent_lock);
	/* newest first; one already here (a replica write sent again) moves up */
	for (i = 0; i < TXN_RECENT_WAYS - 1 && !recent_op_same(&b[i], d, id); i++)
		;
	memmove(&b[1], &b[0], i * sizeof(*b));
	b[0].id = *id;
	b[0].digest = *d;
	pthread_mutex_unlock(&x->recent_lock);
}

/* An attempt routed again (retry) of operation id on d that ran here
 * already, as master or replica. */
static bool
recent_op_known(struct namespace *ns, const struct digest *d, const struct txn_op_id *id,
    bool retry)
{
	struct txn_namespace *x = txn_namespace_of(ns);
	const struct txn_recent_op *b;
	bool same = false;

	if (!retry || id == NULL)
		return false;
	b = recent_bucket(x, d);
	pthread_mutex_lock(&x->recent_lock);
	for (unsigned i = 0; i < TXN_RECENT_WAYS && !same; i++)
		same = recent_op_same(&b[i], d, id);
	pthread_mutex_unlock(&x->recent_lock);
	if (same)
		COUNT(ns, retries_applied_before);
	return same;
}

/* An operation's id, or NULL when it has none. */
static const struct txn_op_id *
op_id_of(const struct txn_op_id *id)
{
	return id->seq != 0 ? id : NULL;
}

/*
 * Before a record version is stored here (record lock held): in a cluster,
 * this node must still master its partition in the current table.  An
 * operation routed here under an older table may have waited for the
 * record lock (held by a write that waited for its replicas) while the
 * succession changed: it must not run at a node that is no longer the
 * master, beside the new one.  TXN_ENOTMASTER: the caller routes it again
 * once (dispatch, or the proxying node).  Set markers are every node's.
 */
static int
master_check(struct namespace *ns, const struct record *r)
{
	struct txn_namespace *x = txn_namespace_of(ns);
	struct partition_rsv rsv;
	bool mine;

	if (atomic_load_acquire(&x->remote) == NULL || (r->flags & RECORD_F_SET_MARKER))
		return 0;
	partition_reserve(x->partitions, digest_partition(&r->digest), &rsv);
	mine = rsv.am_master && rsv.cluster_key != 0;
	partition_release(&rsv);
	return mine ? 0 : TXN_ENOTMASTER;
}

/* Send body (from replica_flat; freed here), a version of a record of
 * partition pid, to the other replicas. */
static int
replica_send(struct namespace *ns, uint32_t pid, uint8_t *body, size_t size)
{
	struct txn_remote *rm = atomic_load_acquire(&txn_namespace_of(ns)->remote);
	int rc = 0;

	if (body != NULL && rm != NULL)
		rc = txn_remote_replicate(rm, ns, pid, body, size);
	free(body);
	return rc;
}

/*
 * Store r and point the index at it (namespace_apply, NS_APPLY_REPLACE:
 * counts, set times, the old copy's space released).  Called with the
 * record lock held.  e is the current entry (any state) or NULL.  On
 * success *out (if non-NULL) is filled.
 */
/* A write on the fabric thread (txn_proxy_write_nowait): the replica
 * message is handed back, not sent, and the record lock stays held. */
struct write_nowait {
	uint8_t *body;
	size_t size;
};

static int
commit_record(struct namespace *ns, uint16_t set_id, struct index_entry *e, struct record *r,
    const struct entry_info *ci, bool durable, const struct txn_op_id *id,
    struct record_attr *out, struct write_nowait *nw)
{
	size_t size = record_flat_size(r);
	storage_loc loc;
	int rc;

	if (size > ns->max_record_size) {
		COUNT(ns, fail_record_too_big);
		return -EFBIG;
	}
	rc = master_check(ns, r);
	if (rc != 0)
		return rc;
	/* In a cluster at RF 2+, the replica message first: the record is
	 * encoded once, into it, and stored from there (one CRC pass over a
	 * large record instead of two).  Without memory for it the write
	 * fails with nothing stored. */
	uint8_t *body;
	size_t body_size;

	rc = replica_flat(ns, r, durable, id, &body, &body_size);
	if (rc != 0)
		return -EIO;
	if (body != NULL && body_size >= size)
		rc = storage_write_encoded(ns->storage, body + body_size - size, (uint32_t)size, &loc);
	else if (body != NULL)
		rc = -EIO;
	else
		rc = storage_write(ns->storage, r, (uint32_t)size, &loc);
	if (rc == -ENOSPC)
		COUNT(ns, fail_out_of_space);
	if (rc != 0) {
		free(body);
		return rc;
	}
	/* commit-to-device: every write (deletes and renames too) returns only
	 * once durable; the engine groups concurrent syncs into one commit. */
	if (durable || ns->cfg->storage.commit_to_device) {
		rc = storage_sync(ns->storage, loc);
		if (rc != 0) {
			storage_free(ns->storage, loc);
			free(body);
			return rc;
		}
	}
	struct ns_apply a = { .mode = NS_APPLY_REPLACE, .set_id = set_id, .r = r, .info = ci,
	    .loc = loc, .e = e };

	rc = namespace_apply(ns, &a);
	if (rc < 0) {
		storage_free(ns->storage, loc);
		free(body);
		return rc;
	}
	/* The record lock keeps the entry as it is (entry_extra). */
	if (out != NULL)
		attr_from_entry(ns, a.e, out);
	recent_op_note(ns, &r->digest, id);
	/* Stored here: now on every other replica, or the caller gets EIO
	 * (this copy stays: no rollback, as Aerospike). */
	if (nw != NULL) {
		nw->body = body;
		nw->size = body_size;
		return 0;
	}
	rc = replica_send(ns, digest_partition(&r->digest), body, body_size);
	return rc != 0 ? -EIO : 0;
}

/*
 * The inode number of a record created now at digest d: the digest's own
 * (digest_inode: the same on every node, as before records kept one),
 * unless a renamed record kept that number - then another, so that two
 * live files never share one (tar, rsync -H and find would take them for
 * hard links).  Record lock of d held: a rename away from d, the only
 * usual way its number gets kept, holds it too.
 */
static uint64_t
ino_for_new(struct namespace *ns, const struct digest *d)
{
	uint64_t own = digest_inode(d), ino = own;

	for (unsigned i = 0; index_extra_ino_taken(ns->index, ino, d) && i < 64; i++)
		ino = index_extra_ino_alternative(own, i);
	return ino;
}

static struct index_entry *entry_get(struct namespace *ns, uint16_t set_id, const struct digest *d);

/* Remove an entry for good (non-persistent engines; expired copies). */
static void
drop_entry(struct namespace *ns, struct index_entry *e)
{
	struct index_partition *p = index_partition_of(ns->index, &e->digest);
	storage_loc loc;

	pthread_rwlock_wrlock(&p->lock);
	loc = e->loc;
	namespace_entry_count(ns, e, -1, storage_loc_size(loc));
	if (e->has_extra)
		index_extra_remove(ns->index, &e->digest);
	index_remove_locked(p, e);
	pthread_rwlock_unlock(&p->lock);
	storage_free(ns->storage, loc);
	index_entry_free(ns->index, e);
}

int
txn_drop_record(struct namespace *ns, uint16_t set_id, const struct digest *d)
{
	struct index_entry *e;
	int rc = 0;

	index_record_lock(ns->index, d);
	e = entry_get(ns, set_id, d);
	if (e != NULL) {
		drop_entry(ns, e);
		rc = 1;
	}
	index_record_unlock(ns->index, d);
	return rc;
}

/*
 * Delete the record of entry e (record lock held): on a persistent engine a
 * tombstone replaces it so a restart can never bring it back; on a memory
 * engine in a cluster too, so that a migration cannot bring back the copy
 * of a node that was away (the tomb raider reclaims it after
 * tomb-raider-eligible-age); otherwise the entry simply goes.
 */
static int
delete_entry(struct namespace *ns, struct index_entry *e, const char *set, uint8_t set_len,
    const struct txn_op_id *id)
{
	struct record r;
	struct entry_info ci = { 0 };

	record_init(&r);
	r.digest = e->digest;
	r.generation = next_generation((uint16_t)e->generation);
	r.last_update_ms = next_lut(e->last_update_ms);
	/* A set marker's tombstone stays a marker: it is not a record of the set. */
	r.flags = RECORD_F_TOMBSTONE | (e->set_marker ? RECORD_F_SET_MARKER : 0);
	r.key_type = DIGEST_KEY_TYPE_STRING;
	r.set = set;
	r.set_len = set_len;
	r.key = e->key;
	r.key_len = e->key_len;
	if (!ns->storage->persistent && atomic_load_acquire(&txn_namespace_of(ns)->remote) == NULL) {
		/* Alone: the entry goes, nothing would ever need the tombstone. */
		uint8_t *body;
		size_t body_size;
		int rc = master_check(ns, &r);

		if (rc == 0)
			rc = replica_flat(ns, &r, false, NULL, &body, &body_size);

		if (rc != 0)
			return rc;
		if (entry_visible(e, clock_epoch_s()) && !record_key_is_internal(e->key, e->key_len))
			set_times_touch(&ns->sets.sets[e->set_id], next_lut(e->last_update_ms));
		drop_entry(ns, e);
		return replica_send(ns, digest_partition(&r.digest), body, body_size) != 0 ? -EIO : 0;
	}
	return commit_record(ns, e->set_id, e, &r, &ci, false, id, NULL, NULL);
}

/* Look up the entry for d in set_id; caller holds the record lock, so the
 * pointer stays valid until it is released. */
static struct index_entry *
entry_get(struct namespace *ns, uint16_t set_id, const struct digest *d)
{
	struct index_partition *p = index_partition_of(ns->index, d);
	struct index_entry *e;

	pthread_rwlock_rdlock(&p->lock);
	e = index_find_locked(p, set_id, d);
	pthread_rwlock_unlock(&p->lock);
	return e;
}

/* Read the stored copy of e into the caller's buffer into (into_size
 * bytes, aligned to STORAGE_READ_ALIGN; *buf then NULL: nothing to free)
 * when it fits, else into a fresh buffer (*buf), and decode it. */
static int
entry_load_into(struct namespace *ns, const struct index_entry *e, struct record *r, uint8_t **buf,
    void *into, size_t into_size)
{
	uint32_t size = storage_loc_size(e->loc);
	int rc;

	/* Its newest copy is damaged (logged at cold start): never an older
	 * copy's content, never a read of bytes known bad. */
	if (e->damaged) {
		*buf = NULL;
		return RECFS_ECHECKSUM;
	}
	if (into != NULL && size <= into_size) {
		*buf = NULL;
		rc = storage_read(ns->storage, e->loc, into);
		return rc == 0 ? record_flat_decode_verified(into, size, r) : rc;
	}
	/* A large record (a chunk) aligned: the device engine reads it
	 * straight into the buffer (storage.h, STORAGE_READ_ALIGN). */
	if (size >= 64 * 1024) {
		if (posix_memalign((void **)buf, STORAGE_READ_ALIGN, size) != 0)
			*buf = NULL;
	} else {
		*buf = malloc(size);
	}
	if (*buf == NULL)
		return -ENOMEM;
	/* storage_read verified the checksum; decoding need not again. */
	rc = storage_read(ns->storage, e->loc, *buf);
	if (rc == 0)
		rc = record_flat_decode_verified(*buf, size, r);
	if (rc != 0) {
		free(*buf);
		*buf = NULL;
	}
	return rc;
}

_Static_assert(TXN_READ_ALIGN % STORAGE_READ_ALIGN == 0, "txn_read_into's buffers suit the engine");

static int
entry_load(struct namespace *ns, const struct index_entry *e, struct record *r, uint8_t **buf)
{
	return entry_load_into(ns, e, r, buf, NULL, 0);
}

/* A large file's head: its size is the map's (the index keeps the head's
 * own, empty, file bin).  r: the decoded head. */
static void
head_size_from(const struct record *r, struct record_attr *a)
{
	const struct bin *b = txn_chunk_map_bin(r);
	struct txn_chunk_map m;

	if (b == NULL || txn_chunk_map_decode(b->v.bytes.data, b->v.bytes.len, &m) != 0)
		return;  /* a bad map: size 0, and its reads fail (fuse/handle.c) */
	a->size = m.size;
	txn_chunk_map_free(&m);
}

/* The size of the large file whose head is (set_id, d), read from the head
 * (the record lock taken here): stat and listings of large files cost one
 * read of the head, those of every other record none. */
static void
head_size_fix(struct namespace *ns, uint16_t set_id, const struct digest *d, struct record_attr *a)
{
	struct index_entry *e;
	struct record r;
	uint8_t *buf = NULL;

	record_init(&r);
	index_record_lock(ns->index, d);
	e = entry_get(ns, set_id, d);
	if (e != NULL && e->chunked && entry_load(ns, e, &r, &buf) == 0)
		head_size_from(&r, a);
	index_record_unlock(ns->index, d);
	record_release(&r);
	free(buf);
}

/* ---- stat and read ------------------------------------------------------ */

/*
 * The local bodies.  Each takes a resolved target (txn_route said "here"),
 * finds or creates the set, and counts its outcome.
 */

static int
stat_record(const struct txn_target *t, struct record_attr *out)
{
	struct namespace *ns = t->ns;
	uint16_t set_id;
	int rc = target_set(t, false, &set_id);
	struct index_partition *p;
	struct index_entry *e;

	if (rc != 0) {
		if (rc == -ENOENT)
			COUNT(ns, client_lookup_not_found);
		return rc;
	}
	p = &ns->index->partitions[t->partition];
	pthread_rwlock_rdlock(&p->lock);
	e = index_find_locked(p, set_id, &t->digest);
	if (entry_visible(e, clock_epoch_s()))
		attr_from_entry(ns, e, out);
	else
		rc = -ENOENT;
	pthread_rwlock_unlock(&p->lock);
	if (rc == 0 && out->chunked)
		head_size_fix(ns, set_id, &t->digest, out);
	if (rc == 0)
		COUNT(ns, client_lookup_success);
	else
		COUNT(ns, client_lookup_not_found);
	return rc;
}

/* nowait (the fabric thread, memory storage): -EWOULDBLOCK, nothing
 * counted, when the record lock is taken or the record is large. */
static int
read_record(const struct txn_target *t, struct txn_record *out, bool nowait, void *into,
    size_t into_size)
{
	struct namespace *ns = t->ns;
	const struct digest *d = &t->digest;
	uint16_t set_id;
	struct index_entry *e;
	int rc = target_set(t, false, &set_id);

	if (rc != 0)
		goto count;
	if (!nowait)
		index_record_lock(ns->index, d);
	else if (!index_record_trylock(ns->index, d))
		return -EWOULDBLOCK;
	e = entry_get(ns, set_id, d);
	if (nowait && e != NULL && storage_loc_size(e->loc) > TXN_INLINE_MAX) {
		index_record_unlock(ns->index, d);
		return -EWOULDBLOCK;
	}
	if (!entry_visible(e, clock_epoch_s())) {
		rc = -ENOENT;
	} else {
		attr_from_entry(ns, e, &out->attr);
		rc = entry_load_into(ns, e, &out->rec, &out->buf, into, into_size);
	}
	index_record_unlock(ns->index, d);
	if (rc == 0)
		out->file_bin = file_bin_of(ns, &out->rec);
	if (rc == 0 && out->attr.chunked)
		head_size_from(&out->rec, &out->attr);
count:
	if (rc == 0)
		COUNT(ns, client_read_success);
	else if (rc == -ENOENT)
		COUNT(ns, client_read_not_found);
	else
		COUNT(ns, client_read_error);
	return rc;
}

void
txn_record_release(struct txn_record *r)
{
	record_release(&r->rec);
	free(r->buf);
	r->buf = NULL;
	r->file_bin = NULL;
}

/* ---- write -------------------------------------------------------------- */

static int
bin_index(const struct record *r, const char *name, size_t len)
{
	for (int i = 0; i < r->n_bins; i++)
		if (r->bins[i].name_len == len && memcmp(r->bins[i].name, name, len) == 0)
			return i;
	return -1;
}

static int
bin_set(struct record *r, const char *name, size_t len, uint8_t type, const void *data,
    uint32_t data_len, int64_t integer, double dbl)
{
	int i = bin_index(r, name, len);

	if (i < 0) {
		if (r->n_bins >= RECORD_BINS_MAX)
			return -ENOSPC;
		if (record_bins_reserve(r, (size_t)r->n_bins + 1) != 0)
			return -ENOMEM;
		i = r->n_bins++;
		memcpy(r->bins[i].name, name, len);
		r->bins[i].name[len] = '\0';
		r->bins[i].name_len = (uint8_t)len;
	}
	struct bin *b = &r->bins[i];
	b->type = type;
	if (type == BIN_INTEGER) {
		b->v.integer = integer;
	} else if (type == BIN_DOUBLE) {
		b->v.dbl = dbl;
	} else {
		b->v.bytes.data = data;
		b->v.bytes.len = data_len;
	}
	return 0;
}

static void
bin_remove_at(struct record *r, int i)
{
	memmove(&r->bins[i], &r->bins[i + 1], (size_t)(r->n_bins - i - 1) * sizeof(struct bin));
	r->n_bins--;
}

static int
apply_bin_ops(struct namespace *ns, struct record *r, const struct txn_write *w)
{
	for (size_t j = 0; j < w->n_bins; j++) {
		const struct txn_bin_op *op = &w->bins[j];
		int rc = record_bin_name_check(op->name, op->name_len), i;

		if (rc != 0)
			return rc;
		i = bin_index(r, op->name, op->name_len);
		if ((op->flags & (TXN_BIN_REMOVE | TXN_BIN_REPLACE)) && i < 0)
			return -ENODATA;
		if ((op->flags & TXN_BIN_CREATE) && i >= 0)
			return -EEXIST;
		if (op->flags & TXN_BIN_REMOVE) {
			bin_remove_at(r, i);
			continue;
		}
		if (op->type < BIN_INTEGER || op->type > BIN_BLOB)
			return -EINVAL;
		rc = bin_set(r, op->name, op->name_len, op->type, op->data, op->len, op->integer,
		    op->dbl);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static void map_of_entry(struct namespace *ns, const struct index_entry *e, struct txn_chunk_map *map);
static void victim_drop(struct namespace *ns, const struct txn_key *k, struct txn_chunk_map *victim,
    const struct record *now);

/* w's operation on a large file's chunk map bin (txn_chunk_commit gives
 * one, rename_across removes one), or NULL. */
static const struct txn_bin_op *
write_map_op(const struct txn_write *w)
{
	for (size_t i = 0; i < w->n_bins; i++)
		if (w->bins[i].name_len == sizeof(RECORD_BIN_CHUNK_MAP) - 1 &&
		    memcmp(w->bins[i].name, RECORD_BIN_CHUNK_MAP, w->bins[i].name_len) == 0)
			return &w->bins[i];
	return NULL;
}

/* id, retry: the operation's (see recent_bucket).  nw: on the fabric
 * thread (txn_proxy_write_nowait): -EWOULDBLOCK where it would wait, and
 * on success the lock stays held, not counted. */
static int
write_record(const struct txn_target *t, const struct txn_write *w, const struct txn_op_id *id,
    bool retry, struct record_attr *out, struct write_nowait *nw)
{
	struct namespace *ns = t->ns;
	const struct txn_key *k = &t->k;
	struct digest d = t->digest;
	uint16_t set_id;
	struct index_entry *e;
	struct record old, r;
	struct txn_chunk_map victim = { 0 };
	uint8_t *old_buf = NULL, *resized = NULL;
	const struct bin *old_file = NULL;
	bool exists, locked = false, known;
	uint32_t now = clock_epoch_s();
	const char *fb = ns->cfg->file_bin;
	size_t fb_len = strlen(fb);
	int rc;

	record_init(&old);
	record_init(&r);
	/* Routed again after its master went down, and its first attempt was
	 * applied here: answered as that one (see recent_bucket). */
	known = recent_op_known(ns, &d, id, retry);
	/* In stop-writes, writes and creates fail; deletes go on (docs/operations.md).
	 * Tested before the set is created: a refused write adds no set. */
	if (!known && stop_writes(ns)) {
		COUNT(ns, fail_stop_writes);
		rc = -ENOSPC;
		goto out;
	}
	rc = target_set(t, true, &set_id);
	if (rc != 0)
		goto out;
	/* A name in a namespace directory is a set or a null-set record, never both. */
	if (k->set_len == 0) {
		uint16_t sid;

		if (set_lookup(&ns->sets, k->key, k->key_len, &sid) == 0 &&
		    set_visible(&ns->sets.sets[sid])) {
			rc = -EEXIST;
			goto out;
		}
	}
	if (nw != NULL) {
		if (!index_record_trylock(ns->index, &d)) {
			rc = -EWOULDBLOCK;
			goto out;
		}
	} else {
		storage_wait_space(ns->storage, &d);
		index_record_lock(ns->index, &d);
	}
	locked = true;
	e = entry_get(ns, set_id, &d);
	exists = entry_visible(e, now);
	if (known) {
		/* the record as it is: that version, or what came after it */
		if (out != NULL && e != NULL) {
			attr_from_entry(ns, e, out);
		} else if (out != NULL) {
			memset(out, 0, sizeof(*out));
			out->digest = d;
			out->ino = digest_inode(&d);
			out->partition = t->partition;
		}
		rc = 0;
		goto out;
	}
	/* a large file's head: its chunks' fate is a worker's (victim_drop) */
	if (nw != NULL && e != NULL && e->chunked) {
		rc = -EWOULDBLOCK;
		goto out;
	}
	if ((w->flags & TXN_CREATE_ONLY) && exists) {
		COUNT(ns, fail_key_exists);
		rc = -EEXIST;
		goto out;
	}
	if ((w->flags & TXN_UPDATE_ONLY) && !exists) {
		rc = -ENOENT;
		goto out;
	}
	/*
	 * A damaged record takes only writes that replace its whole content
	 * (an overwrite, a truncate to 0), which clear the mark: anything that
	 * would keep part of the damaged copy (its bins, the rest of its
	 * content) fails as a read of it does.
	 */
	if (exists && e->damaged && !w->set_file && !(w->set_size && w->size == 0)) {
		rc = RECFS_ECHECKSUM;
		goto out;
	}
	/* Keep what the request does not replace: read the old copy only if
	 * it holds something the index does not. */
	bool need_old = exists && !e->damaged &&
	    (e->has_bins || e->has_ttl || (!w->set_file && e->size > 0));
	if (need_old) {
		rc = entry_load(ns, e, &old, &old_buf);
		if (rc != 0)
			goto out;
		old_file = file_bin_of(ns, &old);
		/* A large file's map: its chunks go if this write replaces the
		 * file by another (new content, another file's map), not when
		 * it only takes the map away (rename_across: the chunks are
		 * the new name's). */
		const struct bin *mb = txn_chunk_map_bin(&old);
		const struct txn_bin_op *mop = write_map_op(w);
		if (mb != NULL && !(mop != NULL && (mop->flags & TXN_BIN_REMOVE)))
			(void)txn_chunk_map_decode(mb->v.bytes.data, mb->v.bytes.len, &victim);
		for (int i = 0; i < old.n_bins; i++) {
			const struct bin *b = &old.bins[i];

			if (b == old_file)
				continue;
			rc = bin_set(&r, b->name, b->name_len, b->type, b->v.bytes.data,
			    b->v.bytes.len, b->v.integer, b->v.dbl);
			if (rc != 0)
				goto out;
		}
	}
	r.digest = d;
	r.key_type = DIGEST_KEY_TYPE_STRING;
	r.set = k->set;
	r.set_len = (uint8_t)k->set_len;
	r.key = k->key;
	r.key_len = (uint16_t)k->key_len;
	/* Generations continue across deletes and expiry (from the tombstone or
	 * expired entry), so a newer copy always wins on cold start. */
	r.generation = e != NULL ? next_generation((uint16_t)e->generation) : 1;
	r.last_update_ms = next_lut(e != NULL ? e->last_update_ms : 0);
	r.ttl = w->set_ttl ? w->ttl : (need_old ? old.ttl : RECORD_TTL_DEFAULT);
	r.void_time = void_time_for(ns, r.ttl);

	/* POSIX metadata: kept from the index entry, then the request's changes. */
	bool has_meta = exists && e->has_meta;
	uint64_t ino;
	int64_t atime = 0;
	if (exists)
		entry_extra(ns, e, &ino, &atime);
	else
		ino = ino_for_new(ns, &d);
	if (has_meta) {
		r.meta.mode = index_entry_mode(e);
		r.meta.uid = e->uid;
		r.meta.gid = e->gid;
		r.meta.mtime_ns = e->mtime_ns;
	}
	bool content_changed = w->set_file || w->set_size;
	/* An inode number other than the digest's is kept in the metadata. */
	bool own_ino = ino != digest_inode(&d);
	if (w->set_mode || w->set_uid || w->set_gid || w->set_mtime || w->set_atime || own_ino) {
		if (!has_meta) {
			/* First metadata on this record: start from the defaults. */
			r.meta.mode = 0644;
			r.meta.uid = 0;
			r.meta.gid = 0;
			r.meta.mtime_ns = exists ? clock_epoch_ms_to_unix_ns(e->last_update_ms)
			    : clock_epoch_ms_to_unix_ns(r.last_update_ms);
		}
		has_meta = true;
		/* A mode without a type (chmod) keeps the record's type. */
		if (w->set_mode)
			r.meta.mode = (w->mode & RECORD_MODE_TYPE_MASK) != 0 ?
			    w->mode & (RECORD_MODE_TYPE_MASK | RECORD_MODE_PERM_MASK) :
			    (r.meta.mode & RECORD_MODE_TYPE_MASK) | (w->mode & RECORD_MODE_PERM_MASK);
		if (w->set_uid)
			r.meta.uid = w->uid;
		if (w->set_gid)
			r.meta.gid = w->gid;
	}
	if (has_meta && content_changed && !w->set_mtime)
		r.meta.mtime_ns = clock_epoch_ms_to_unix_ns(r.last_update_ms);
	if (w->set_mtime)
		r.meta.mtime_ns = w->mtime_ns;
	r.meta.ino = ino;
	r.meta.atime_ns = w->set_atime ? w->atime_ns : atime;
	if (has_meta)
		r.flags |= RECORD_F_HAS_META;

	/* The file bin. */
	const void *content = NULL;
	uint64_t content_len = 0;
	if (w->set_file) {
		content = w->file_data;
		content_len = w->file_len;
	} else if (old_file != NULL && (old_file->type == BIN_BLOB || old_file->type == BIN_STRING)) {
		content = old_file->v.bytes.data;
		content_len = old_file->v.bytes.len;
	}
	if (w->set_size && w->size != content_len) {
		if (w->size > ns->max_record_size) {
			COUNT(ns, fail_record_too_big);
			rc = -EFBIG;
			goto out;
		}
		resized = calloc(1, w->size > 0 ? w->size : 1);
		if (resized == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		if (content_len > 0)
			memcpy(resized, content, content_len < w->size ? content_len : w->size);
		content = resized;
		content_len = w->size;
	}
	if (content_len > ns->max_record_size) {
		COUNT(ns, fail_record_too_big);
		rc = -EFBIG;
		goto out;
	}
	rc = bin_set(&r, fb, fb_len, BIN_BLOB, content, (uint32_t)content_len, 0, 0);
	/* New content given without a chunk map replaces a large file's
	 * content whole: the record is a small file again (its chunks are
	 * dropped after the write: victim_drop). */
	if (rc == 0 && content_changed && write_map_op(w) == NULL) {
		int mi = bin_index(&r, RECORD_BIN_CHUNK_MAP, sizeof(RECORD_BIN_CHUNK_MAP) - 1);

		if (mi >= 0)
			bin_remove_at(&r, mi);
	}
	if (rc == 0)
		rc = apply_bin_ops(ns, &r, w);
	if (rc != 0)
		goto out;

	/* The xattr ops may have touched the file bin by name: re-find it. */
	struct entry_info ci;
	namespace_entry_info(ns, &r, &ci);
	rc = commit_record(ns, set_id, e, &r, &ci, (w->flags & TXN_DURABLE) != 0, id, out, nw);
out:
	if (nw != NULL && rc == 0) {
		/* stored: the lock and the count are txn_proxy_write_end's */
		txn_chunk_map_free(&victim);
		record_release(&r);
		record_release(&old);
		free(old_buf);
		free(resized);
		return 0;
	}
	if (locked)
		index_record_unlock(ns->index, &d);
	if (rc == 0)
		victim_drop(ns, k, &victim, &r);
	txn_chunk_map_free(&victim);
	record_release(&r);
	record_release(&old);
	free(old_buf);
	free(resized);
	if (rc == 0)
		COUNT(ns, client_write_success);
	else if (rc != -EEXIST && rc != -ENOENT && rc != -ENODATA && rc != -EWOULDBLOCK)
		COUNT(ns, client_write_error);
	return rc;
}

/* ---- delete, rename, sync ----------------------------------------------- */

/* The chunk map of e (a head; record lock held); left empty if unreadable. */
static void
map_of_entry(struct namespace *ns, const struct index_entry *e, struct txn_chunk_map *map)
{
	struct record r;
	uint8_t *buf = NULL;
	const struct bin *b;

	record_init(&r);
	if (entry_load(ns, e, &r, &buf) == 0 && (b = txn_chunk_map_bin(&r)) != NULL)
		(void)txn_chunk_map_decode(b->v.bytes.data, b->v.bytes.len, map);
	record_release(&r);
	free(buf);
}

static int
delete_record(const struct txn_target *t, const struct txn_op *op)
{
	struct namespace *ns = t->ns;
	const struct digest *d = &t->digest;
	struct txn_chunk_map map = { 0 };
	uint16_t set_id;
	struct index_entry *e;
	int rc = target_set(t, false, &set_id);

	if (rc != 0)
		goto count;
	index_record_lock(ns->index, d);
	e = entry_get(ns, set_id, d);
	if (recent_op_known(ns, d, op_id_of(&op->id), op->retry)) {
		/* Routed again after its master went down, and its first
		 * attempt made the tombstone (see recent_bucket): done. */
		rc = 0;
	} else if (!entry_visible(e, clock_epoch_s())) {
		rc = -ENOENT;
	} else {
		/* A large file's chunks go with its head: the map first. */
		if (e->chunked && !e->damaged)
			map_of_entry(ns, e, &map);
		rc = delete_entry(ns, e, t->k.set, (uint8_t)t->k.set_len, op_id_of(&op->id));
	}
	index_record_unlock(ns->index, d);
	/* After the head (the commit point): a crash in between leaves
	 * unnamed chunks, the reclaimer's. */
	if (rc == 0 && map.n > 0)
		(void)txn_chunk_drop(ns, t->k.set, t->k.set_len, &map);
	txn_chunk_map_free(&map);
count:
	if (rc == 0)
		COUNT(ns, client_delete_success);
	else if (rc == -ENOENT)
		COUNT(ns, client_delete_not_found);
	else
		COUNT(ns, client_delete_error);
	return rc;
}

/* After a write or rename replaced a large file (victim: its map, if it
 * was one) by anything but the same file, its chunks go (no lock held). */
static void
victim_drop(struct namespace *ns, const struct txn_key *k, struct txn_chunk_map *victim,
    const struct record *now)
{
	const struct bin *b = now != NULL ? txn_chunk_map_bin(now) : NULL;
	struct txn_chunk_map m;
	bool same = false;

	if (b != NULL && txn_chunk_map_decode(b->v.bytes.data, b->v.bytes.len, &m) == 0) {
		same = m.file_id == victim->file_id;
		txn_chunk_map_free(&m);
	}
	if (victim->n > 0 && !same)
		(void)txn_chunk_drop(ns, k->set, k->set_len, victim);
	txn_chunk_map_free(victim);
}

/*
 * Store r, a record read under another name (last-update time from_lut,
 * inode number ino, atime atime), as the record of tt (its set tset; its
 * entry te in any state, or NULL; tt's record lock held): content, bins,
 * metadata and TTL setting travel; it is a new write of the target.
 */
static int
commit_renamed(const struct txn_target *tt, uint16_t tset, struct index_entry *te,
    struct record *r, uint64_t from_lut, uint64_t ino, int64_t atime, const struct txn_op_id *id,
    struct txn_chunk_map *victim)
{
	struct namespace *ns = tt->ns;
	const struct txn_key *to = &tt->k;
	struct entry_info ci;
	int rc;

	/* A large file replaced: its chunks go once the locks are released. */
	if (entry_visible(te, clock_epoch_s()) && te->chunked && !te->damaged)
		map_of_entry(ns, te, victim);
	r->digest = tt->digest;
	r->set = to->set;
	r->set_len = (uint8_t)to->set_len;
	r->key = to->key;
	r->key_len = (uint16_t)to->key_len;
	r->flags &= (uint8_t)~(RECORD_F_TOMBSTONE | RECORD_F_SET_MARKER);
	r->generation = te != NULL ? next_generation((uint16_t)te->generation) : 1;
	r->last_update_ms = next_lut(te != NULL ? te->last_update_ms : 0);
	if (r->last_update_ms < from_lut)
		r->last_update_ms = from_lut;
	if (!(r->flags & RECORD_F_HAS_META) && ino != digest_inode(&tt->digest)) {
		/* Metadata is where the number is kept: start it from what the
		 * record showed (the daemon's defaults: file-mode, its user). */
		r->flags |= RECORD_F_HAS_META;
		r->meta = (struct posix_meta){
			.mode = ns->root_cfg != NULL ? ns->root_cfg->file_mode & 07777 : 0644,
			.uid = (uint32_t)getuid(), .gid = (uint32_t)getgid(),
			.mtime_ns = clock_epoch_ms_to_unix_ns(from_lut) };
	}
	r->meta.ino = ino;
	r->meta.atime_ns = atime;
	namespace_entry_info(ns, r, &ci);
	rc = commit_record(ns, tset, te, r, &ci, false, id, NULL, NULL);
	if (rc == 0 && !record_key_is_internal(r->key, r->key_len))
		set_times_touch(&ns->sets.sets[tset], r->last_update_ms);
	return rc;
}

/*
 * The first half of a rename whose two names have different masters, at
 * the new name's master: src (the record as the old name's master read it;
 * its digest is the old name's) becomes the record of tt.  As
 * rename_record's checks: stop-writes, a null-set name that is a set,
 * TXN_RENAME_NOREPLACE.  id, retry: the operation's (see recent_bucket).
 */
static int
rename_in(const struct txn_target *tt, const struct txn_record *src, unsigned flags,
    const struct txn_op_id *id, bool retry)
{
	struct namespace *ns = tt->ns;
	struct index_entry *te;
	struct record r = src->rec;
	struct txn_chunk_map victim = { 0 };
	uint16_t tset;
	int rc;

	/* Routed again after its master went down, and its first attempt
	 * stored it here: done (see recent_bucket). */
	if (recent_op_known(ns, &tt->digest, id, retry))
		return 0;
	if (stop_writes(ns)) {
		COUNT(ns, fail_stop_writes);
		return -ENOSPC;
	}
	rc = target_set(tt, true, &tset);
	if (rc != 0)
		return rc;
	if (tt->k.set_len == 0) {
		uint16_t sid;

		if (set_lookup(&ns->sets, tt->k.key, tt->k.key_len, &sid) == 0 &&
		    set_visible(&ns->sets.sets[sid]))
			return -EEXIST;
	}
	storage_wait_space(ns->storage, &tt->digest);
	index_record_lock(ns->index, &tt->digest);
	te = entry_get(ns, tset, &tt->digest);
	if ((flags & TXN_RENAME_NOREPLACE) && entry_visible(te, clock_epoch_s())) {
		rc = -EEXIST;
	} else {
		/* The number the old name showed (txn_read's attributes). */
		rc = commit_renamed(tt, tset, te, &r, src->attr.last_update_ms, src->attr.ino,
		    src->attr.atime_ns, id, &victim);
	}
	index_record_unlock(ns->index, &tt->digest);
	if (rc == 0)
		victim_drop(ns, &tt->k, &victim, &r);
	txn_chunk_map_free(&victim);
	if (rc == 0)
		COUNT(ns, client_write_success);
	return rc;
}

/* id, retry: the operation's (see recent_bucket). */
static int
rename_record(const struct txn_target *tf, const struct txn_target *tt, unsigned flags,
    const struct txn_op_id *id, bool retry)
{
	struct namespace *ns = tf->ns;
	const struct txn_key *from = &tf->k, *to = &tt->k;
	struct digest fd = tf->digest, td = tt->digest;
	uint16_t fset, tset;
	struct index_entry *fe, *te;
	struct record r;
	struct txn_chunk_map victim = { 0 };
	uint8_t *buf = NULL;
	uint32_t now = clock_epoch_s();
	bool moved = false;
	int rc;

	/* Routed again after its master went down, and its first attempt
	 * deleted the old name here, after storing the new one: done (see
	 * recent_bucket). */
	if (recent_op_known(ns, &fd, id, retry))
		return 0;
	record_init(&r);
	rc = target_set(tf, false, &fset);
	if (rc != 0)
		return rc;
	/* Stop-writes before the target's set is created (see write_record). */
	if (stop_writes(ns)) {
		COUNT(ns, fail_stop_writes);
		return -ENOSPC;
	}
	rc = target_set(tt, true, &tset);
	if (rc != 0)
		return rc;
	if (digest_compare(&fd, &td) == 0)
		return stat_record(tf, &(struct record_attr){ 0 });
	if (to->set_len == 0) {
		uint16_t sid;

		if (set_lookup(&ns->sets, to->key, to->key_len, &sid) == 0 &&
		    set_visible(&ns->sets.sets[sid]))
			return -EEXIST;
	}
	storage_wait_space(ns->storage, &td);
	index_record_lock_pair(ns->index, &fd, &td);
	fe = entry_get(ns, fset, &fd);
	te = entry_get(ns, tset, &td);
	if (!entry_visible(fe, now)) {
		rc = -ENOENT;
		goto out;
	}
	if ((flags & TXN_RENAME_NOREPLACE) && entry_visible(te, now)) {
		rc = -EEXIST;
		goto out;
	}
	rc = entry_load(ns, fe, &r, &buf);
	if (rc != 0)
		goto out;
	/* The file keeps its inode number (recfsd(8), Renames: st_ino survives a rename). */
	uint64_t ino;
	int64_t atime;
	/* A large file's head changes partition: the chunk reclaimer's
	 * gather must not trust a walk that may have seen it at neither. */
	moved = fe->chunked;
	if (moved)
		txn_chunk_move_begin(txn_namespace_of(ns));
	entry_extra(ns, fe, &ino, &atime);
	rc = commit_renamed(tt, tset, te, &r, fe->last_update_ms, ino, atime, id, &victim);
	if (rc != 0)
		goto out;
	rc = delete_entry(ns, fe, from->set, (uint8_t)from->set_len, id);
	if (rc != 0)
		log_error("txn", "{%s} rename: old name left behind: %s", ns->name, recfs_strerror(rc));
out:
	if (moved)
		txn_chunk_move_end(txn_namespace_of(ns));
	index_record_unlock_pair(ns->index, &fd, &td);
	if (rc == 0)
		victim_drop(ns, to, &victim, &r);
	txn_chunk_map_free(&victim);
	record_release(&r);
	free(buf);
	if (rc == 0)
		COUNT(ns, client_write_success);
	return rc;
}

static int
sync_record(const struct txn_target *t)
{
	struct namespace *ns = t->ns;
	uint16_t set_id;
	struct index_entry *e;
	int rc = target_set(t, false, &set_id);

	if (rc != 0)
		return rc;
	index_record_lock(ns->index, &t->digest);
	e = entry_get(ns, set_id, &t->digest);
	if (!entry_visible(e, clock_epoch_s()))
		rc = -ENOENT;
	else
		rc = storage_sync(ns->storage, e->loc);
	index_record_unlock(ns->index, &t->digest);
	return rc;
}

int
txn_namespace_sync(struct namespace *ns)
{
	return storage_sync_all(ns->storage);
}

/* ---- sets --------------------------------------------------------------- */

/* Only mode, owner, mtime and atime can be stored for a set. */
static bool
set_write_valid(const struct txn_write *w)
{
	return !(w->flags || w->set_file || w->set_size || w->set_ttl || w->n_bins > 0);
}

static bool
set_write_has_meta(const struct txn_write *w)
{
	return w != NULL && (w->set_mode || w->set_uid || w->set_gid || w->set_mtime ||
	    w->set_atime);
}

/*
 * Write the marker of set set_id (its record lock held; e: its entry in
 * any state, or NULL) with last-update time lut, which becomes the set's
 * ctime.  Metadata: the live marker's (a new one starts with none), then
 * w's changes (w may be NULL); the stored mtime is w's, else a new set's
 * creation time, else the set's current mtime.
 */
static int
marker_write(struct namespace *ns, uint16_t set_id, const struct digest *d,
    struct index_entry *e, const struct txn_write *w, uint64_t lut, bool create)
{
	struct ns_set *s = &ns->sets.sets[set_id];
	struct entry_info ci = { 0 };
	struct record r;
	int rc;

	record_init(&r);
	r.digest = *d;
	r.flags = RECORD_F_SET_MARKER;
	r.key_type = DIGEST_KEY_TYPE_STRING;
	r.set = s->name;
	r.set_len = s->len;
	r.key = "";
	r.generation = e != NULL ? next_generation((uint16_t)e->generation) : 1;
	r.last_update_ms = lut;
	if (!create && e != NULL && e->set_marker && !e->tombstone && e->has_meta) {
		uint64_t ino;

		r.flags |= RECORD_F_HAS_META;
		r.meta.mode = e->mode;
		r.meta.uid = e->uid;
		r.meta.gid = e->gid;
		entry_extra(ns, e, &ino, &r.meta.atime_ns);
	} else if (set_write_has_meta(w)) {
		r.flags |= RECORD_F_HAS_META;
		r.meta.mode = 0755;
	}
	if (set_write_has_meta(w)) {
		if (w->set_mode)
			r.meta.mode = w->mode & 07777;
		if (w->set_uid)
			r.meta.uid = w->uid;
		if (w->set_gid)
			r.meta.gid = w->gid;
		if (w->set_atime)
			r.meta.atime_ns = w->atime_ns;
	}
	if (w != NULL && w->set_mtime)
		r.meta.mtime_ns = w->mtime_ns;
	else if (create)
		r.meta.mtime_ns = clock_epoch_ms_to_unix_ns(lut);
	else
		r.meta.mtime_ns = atomic_load_relaxed(&s->mtime_ns);
	rc = commit_record(ns, set_id, e, &r, &ci, false, NULL, NULL, NULL);
	if (rc == 0) {
		set_times_touch(s, lut);
		atomic_store_relaxed(&s->mtime_ns, r.meta.mtime_ns);
	}
	return rc;
}

/* The last-update time of a marker write made now (e: its entry or NULL):
 * after every change the set has seen, so that a cold start after a crash
 * knows which record copies are newer than the marker. */
static uint64_t
marker_lut(const struct ns_set *s, const struct index_entry *e)
{
	uint64_t old = atomic_load_relaxed(&s->ctime_ms);

	if (e != NULL && e->last_update_ms > old)
		old = e->last_update_ms;
	return next_lut(old);
}

/* The target of a set's marker: a record with an empty key in the set. */
static void
target_marker(struct namespace *ns, const char *set, size_t len, struct txn_target *t)
{
	struct txn_key mk = { .set = set, .set_len = len, .key = "", .key_len = 0 };

	target_fill(ns, &mk, t);
}

static int
set_create_local(const struct txn_target *t, const struct txn_write *w)
{
	struct namespace *ns = t->ns;
	struct txn_key nk = { .key = t->k.set, .key_len = t->k.set_len };
	struct txn_target nt;
	struct record_attr a;
	uint16_t set_id;
	struct index_entry *e;
	int rc;

	/* A null-set record with that name?  (Valid as a set name, valid as a
	 * key.)  Looked up here: cluster-wide sets will ask its master. */
	target_fill(ns, &nk, &nt);
	if (stat_record(&nt, &a) == 0)
		return -EEXIST;
	rc = target_set(t, true, &set_id);
	if (rc != 0)
		return rc;
	if (set_visible(&ns->sets.sets[set_id]))
		return -EEXIST;
	/* The marker: a record with an empty key that keeps the set alive. */
	index_record_lock(ns->index, &t->digest);
	e = entry_get(ns, set_id, &t->digest);
	rc = marker_write(ns, set_id, &t->digest, e, w, marker_lut(&ns->sets.sets[set_id], e),
	    true);
	index_record_unlock(ns->index, &t->digest);
	return rc;
}

static int
set_remove_local(const struct txn_target *t)
{
	struct namespace *ns = t->ns;
	uint16_t set_id;
	struct index_entry *e;
	struct ns_set *s;
	int rc = 0;

	if (target_set(t, false, &set_id) != 0)
		return -ENOENT;
	s = &ns->sets.sets[set_id];
	if (!set_visible(s))
		return -ENOENT;
	if (atomic_load_relaxed(&s->objects) > 0)
		return -ENOTEMPTY;
	index_record_lock(ns->index, &t->digest);
	e = entry_get(ns, set_id, &t->digest);
	if (e != NULL && e->set_marker && !e->tombstone) {
		/* After every change the set has seen: the removal's time, which
		 * the other nodes compare with their state (txn_set_merge). */
		uint64_t lut = marker_lut(s, e);

		rc = delete_entry(ns, e, t->k.set, (uint8_t)t->k.set_len, NULL);
		if (rc == 0)
			atomic_store_relaxed(&s->removed_ms, lut);
	}
	index_record_unlock(ns->index, &t->digest);
	return rc;
}

static struct txn_sets *sets_of(struct namespace *ns);

/*
 * A set that has no marker and no record here may still have records on
 * other nodes (a set made by a write, its records elsewhere): the sets
 * layer knows which, from what each node sends (docs/cluster.md, "Sets
 * and listings").  0 and its times (out: may be NULL), or -ENOENT.
 */
static int
set_elsewhere(struct namespace *ns, const char *set, size_t len, struct record_attr *out)
{
	struct txn_sets *ss;
	uint64_t ctime_ms;
	int64_t mtime_ns;

	if (atomic_load_acquire(&txn_namespace_of(ns)->remote) == NULL)
		return -ENOENT;   /* a single node */
	ss = sets_of(ns);
	if (ss == NULL || !txn_sets_used_elsewhere(ss, ns, set, len, &ctime_ms, &mtime_ns))
		return -ENOENT;
	if (out != NULL) {
		out->last_update_ms = ctime_ms;
		out->mtime_ns = mtime_ns;
	}
	return 0;
}

int
txn_set_exists(struct namespace *ns, const char *set, size_t len)
{
	uint16_t set_id;

	if (set_lookup(&ns->sets, set, len, &set_id) == 0 && set_visible(&ns->sets.sets[set_id]))
		return 0;
	return set_elsewhere(ns, set, len, NULL);
}

int
txn_set_stat(struct namespace *ns, const char *set, size_t len, struct record_attr *out)
{
	struct index_partition *p;
	struct index_entry *e;
	const struct ns_set *s;
	struct digest d;
	uint16_t set_id;

	memset(out, 0, sizeof(*out));
	if (len == 0 || len > RECORD_SET_MAX)
		return -ENOENT;
	if (set_lookup(&ns->sets, set, len, &set_id) != 0 || !set_visible(&ns->sets.sets[set_id]))
		return set_elsewhere(ns, set, len, out);
	s = &ns->sets.sets[set_id];
	digest_compute(&d, set, len, "", 0);
	p = index_partition_of(ns->index, &d);
	pthread_rwlock_rdlock(&p->lock);
	e = index_find_locked(p, set_id, &d);
	if (e != NULL && e->set_marker && !e->tombstone) {
		out->digest = e->digest;
		out->partition = digest_partition(&e->digest);
		out->generation = (uint16_t)e->generation;
		out->has_meta = e->has_meta;
		out->mode = e->mode;
		out->uid = e->uid;
		out->gid = e->gid;
		out->last_update_ms = e->last_update_ms;
		out->mtime_ns = clock_epoch_ms_to_unix_ns(e->last_update_ms);
		if (e->has_extra)
			index_extra_get(ns->index, &e->digest, &out->ino, &out->atime_ns);
		out->ino = 0;  /* a set's st_ino is its path's (fuse/inode.c) */
	}
	pthread_rwlock_unlock(&p->lock);
	/* The set's own times, once it has any (see namespace.h). */
	if (atomic_load_relaxed(&s->ctime_ms) != 0) {
		out->last_update_ms = atomic_load_relaxed(&s->ctime_ms);
		out->mtime_ns = atomic_load_relaxed(&s->mtime_ns);
	}
	return 0;
}

static int
set_update_local(const struct txn_target *t, const struct txn_write *w)
{
	struct namespace *ns = t->ns;
	const struct digest *d = &t->digest;
	struct index_entry *e;
	struct ns_set *s;
	uint16_t set_id;
	int rc;

	if (target_set(t, false, &set_id) != 0)
		return -ENOENT;
	s = &ns->sets.sets[set_id];
	if (!set_visible(s))
		return -ENOENT;
	if (stop_writes(ns)) {
		COUNT(ns, fail_stop_writes);
		return -ENOSPC;
	}
	storage_wait_space(ns->storage, d);
	index_record_lock(ns->index, d);
	/* Removed meanwhile?  (rmdir takes this record lock too.) */
	if (!set_visible(s)) {
		rc = -ENOENT;
	} else {
		e = entry_get(ns, set_id, d);
		rc = marker_write(ns, set_id, d, e, w, marker_lut(s, e), false);
	}
	index_record_unlock(ns->index, d);
	if (rc == 0)
		COUNT(ns, client_write_success);
	else if (rc != -ENOENT)
		COUNT(ns, client_write_error);
	return rc;
}

/* ---- the cluster's sets: the local side (sets_cluster.c sends them) ---- */

int
txn_set_state(struct namespace *ns, uint16_t set_id, struct set_msg_entry *out)
{
	struct ns_set *s = &ns->sets.sets[set_id];
	uint64_t removed = atomic_load_relaxed(&s->removed_ms);
	struct index_entry *e;
	struct digest d;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	memcpy(out->name, s->name, s->len);
	out->len = s->len;
	digest_compute(&d, s->name, s->len, "", 0);
	index_record_lock(ns->index, &d);
	e = entry_get(ns, set_id, &d);
	if (e != NULL && e->set_marker && !e->tombstone && e->last_update_ms > removed) {
		uint64_t ino;

		out->live = true;
		out->lut_ms = e->last_update_ms;
		out->has_meta = e->has_meta;
		out->mode = e->has_meta ? e->mode & 07777 : 0;
		out->uid = e->uid;
		out->gid = e->gid;
		out->mtime_ns = e->mtime_ns;
		entry_extra(ns, e, &ino, &out->atime_ns);
	} else if (e != NULL && e->set_marker && e->tombstone) {
		out->lut_ms = e->last_update_ms > removed ? e->last_update_ms : removed;
	} else if (removed != 0) {
		out->lut_ms = removed;
	} else {
		rc = -ENOENT;   /* no marker: a set of records alone is theirs to carry */
	}
	index_record_unlock(ns->index, &d);
	return rc;
}

int
txn_set_merge(struct namespace *ns, const struct set_msg_entry *m)
{
	struct index_entry *e;
	struct ns_set *s;
	struct digest d;
	uint64_t here;
	uint16_t set_id;
	int rc;

	if (record_set_name_check(m->name, m->len) != 0)
		return -EINVAL;
	/* A removal of a set never seen here is remembered too (the set gets
	 * an id, invisible): an older live state arriving later from a node
	 * that missed the removal must not bring it back. */
	rc = set_lookup_or_add(&ns->sets, m->name, m->len, &set_id);
	if (rc != 0)
		return rc;
	s = &ns->sets.sets[set_id];
	digest_compute(&d, m->name, m->len, "", 0);
	index_record_lock(ns->index, &d);
	e = entry_get(ns, set_id, &d);
	here = atomic_load_relaxed(&s->removed_ms);
	if (e != NULL && e->set_marker && e->last_update_ms > here)
		here = e->last_update_ms;
	if (m->lut_ms <= here) {
		rc = 0;   /* this node's state is as new or newer: a repeat, or late */
	} else if (m->live) {
		struct txn_write w = { 0 };

		if (m->has_meta) {
			w.set_mode = w.set_uid = w.set_gid = w.set_mtime = true;
			w.mode = m->mode;
			w.uid = m->uid;
			w.gid = m->gid;
			w.mtime_ns = m->mtime_ns;
			w.set_atime = m->atime_ns != 0;
			w.atime_ns = m->atime_ns;
		}
		rc = marker_write(ns, set_id, &d, e, m->has_meta ? &w : NULL, m->lut_ms, true);
	} else if (atomic_load_relaxed(&s->objects) > 0) {
		rc = -ENOTEMPTY;
	} else {
		if (e != NULL && e->set_marker && !e->tombstone)
			rc = delete_entry(ns, e, s->name, s->len, NULL);
		if (rc == 0)
			atomic_store_relaxed(&s->removed_ms, m->lut_ms);
	}
	index_record_unlock(ns->index, &d);
	return rc;
}

int
txn_set_check(struct namespace *ns, unsigned kind, const struct set_msg_entry *m)
{
	uint16_t set_id;

	if (kind == SET_MSG_CHECK_EMPTY) {
		if (set_lookup(&ns->sets, m->name, m->len, &set_id) != 0)
			return 0;
		return atomic_load_relaxed(&ns->sets.sets[set_id].objects) > 0 ? -ENOTEMPTY : 0;
	}
	if (kind == SET_MSG_CHECK_NAME) {
		struct txn_key nk = { .key = m->name, .key_len = m->len };
		struct txn_target nt;
		struct record_attr a;

		target_fill(ns, &nk, &nt);
		return stat_record(&nt, &a) == 0 ? -EEXIST : 0;
	}
	return -EINVAL;
}

void
txn_sets_store_times(struct namespace *ns)
{
	uint32_t n, stored = 0;

	if (!ns->storage->persistent)
		return;
	n = atomic_load_acquire(&ns->sets.n);
	for (uint32_t id = 1; id <= n; id++) {
		struct ns_set *s = &ns->sets.sets[id];
		struct index_entry *e;
		struct digest d;

		if (!set_visible(s))
			continue;
		digest_compute(&d, s->name, s->len, "", 0);
		index_record_lock(ns->index, &d);
		e = entry_get(ns, (uint16_t)id, &d);
		/* Markers without metadata are never rewritten: their set's times
		 * come from its records at the next start (set_times_settle). */
		if (e != NULL && e->set_marker && !e->tombstone && e->has_meta) {
			uint64_t ct = atomic_load_relaxed(&s->ctime_ms);

			if (ct > e->last_update_ms || atomic_load_relaxed(&s->mtime_ns) != e->mtime_ns) {
				uint64_t lut = ct > e->last_update_ms ? ct : e->last_update_ms + 1;
				int rc = marker_write(ns, (uint16_t)id, &d, e, NULL, lut, false);

				if (rc == 0)
					stored++;
				else
					log_warn("txn", "{%s} set %s: its mtime and ctime could not be "
					    "stored at shutdown (%s): after the restart they show its "
					    "last chmod, chown or touch", ns->name, s->name,
					    recfs_strerror(rc));
			}
		}
		index_record_unlock(ns->index, &d);
	}
	if (stored > 0)
		log_info("txn", "{%s} stored the times of %u sets", ns->name, stored);
}

static void
set_info_fill(const struct ns_set *s, struct txn_set_info *out)
{
	memcpy(out->name, s->name, sizeof(out->name));
	out->objects = atomic_load_relaxed(&s->objects);
	out->data_bytes = atomic_load_relaxed(&s->data_bytes);
	out->tombstones = atomic_load_relaxed(&s->tombstones);
}

struct set_elsewhere_walk {
	struct namespace *ns;
	int (*fn)(void *arg, const struct txn_set_info *info);
	void *arg;
};

/* A set another node holds records of: listed unless listed already (here
 * too), with this node's counts (none). */
static int
set_elsewhere_one(void *arg, const char *name, size_t len)
{
	struct set_elsewhere_walk *w = arg;
	struct txn_set_info info;
	uint16_t set_id;

	if (set_lookup(&w->ns->sets, name, len, &set_id) == 0 && set_visible(&w->ns->sets.sets[set_id]))
		return 0;
	memset(&info, 0, sizeof(info));
	memcpy(info.name, name, len);
	return w->fn(w->arg, &info);
}

int
txn_set_foreach(struct namespace *ns, int (*fn)(void *arg, const struct txn_set_info *info),
    void *arg)
{
	uint32_t n;

	n = atomic_load_acquire(&ns->sets.n);
	for (uint32_t id = 1; id <= n; id++) {
		struct txn_set_info info;

		if (!set_visible(&ns->sets.sets[id]))
			continue;
		set_info_fill(&ns->sets.sets[id], &info);
		int rc = fn(arg, &info);
		if (rc != 0)
			return rc;
	}
	/* And the sets of records only that other nodes hold records of. */
	if (atomic_load_acquire(&txn_namespace_of(ns)->remote) != NULL) {
		struct txn_sets *ss = sets_of(ns);
		struct set_elsewhere_walk w = { .ns = ns, .fn = fn, .arg = arg };

		if (ss != NULL)
			return txn_sets_used_foreach(ss, ns, set_elsewhere_one, &w);
	}
	return 0;
}

int
txn_set_info(struct namespace *ns, const char *set, size_t len, struct txn_set_info *out)
{
	uint16_t set_id;

	if (set_lookup(&ns->sets, set, len, &set_id) != 0 || !set_visible(&ns->sets.sets[set_id])) {
		/* Its records are elsewhere: none here. */
		if (len > RECORD_SET_MAX || set_elsewhere(ns, set, len, NULL) != 0)
			return -ENOENT;
		memset(out, 0, sizeof(*out));
		memcpy(out->name, set, len);
		return 0;
	}
	set_info_fill(&ns->sets.sets[set_id], out);
	return 0;
}

/* ---- listing ------------------------------------------------------------ */

/*
 * The records of set_id visible now, after cur, in the partitions of mask
 * (NULL: every partition), up to max; advances cur (done at the end).
 */
static size_t
list_walk(struct namespace *ns, uint16_t set_id, struct txn_cursor *cur, const uint8_t *mask,
    struct txn_entry *out, size_t max)
{
	uint32_t now = clock_epoch_s();
	size_t n = 0;

	while (!cur->done && n < max) {
		struct index_partition *p = &ns->index->partitions[cur->partition];
		struct index_entry *e = NULL;

		if (mask == NULL || list_msg_mask_has(mask, cur->partition)) {
			pthread_rwlock_rdlock(&p->lock);
			e = index_next_locked(p, set_id, cur->started ? &cur->last : NULL);
			while (e != NULL && n < max) {
				/* Internal keys (record.h) are the tree's, not names. */
				if (entry_visible(e, now) && !record_key_is_internal(e->key, e->key_len)) {
					struct txn_entry *t = &out[n++];

					memcpy(t->key, e->key, e->key_len);
					t->key[e->key_len] = '\0';
					t->key_len = e->key_len;
					attr_from_entry(ns, e, &t->attr);
				}
				cur->last = e->digest;
				cur->started = true;
				e = index_next_locked(p, set_id, &e->digest);
			}
			pthread_rwlock_unlock(&p->lock);
		}
		if (e == NULL) {
			/* Partition exhausted (or not asked for): move on. */
			cur->started = false;
			if (++cur->partition == PARTITION_COUNT)
				cur->done = true;
		}
	}
	return n;
}

/*
 * The same for the entries of directory dir (a tree directory inside
 * set_id): the directory index (index.h) gives their digests in (partition,
 * digest) order, each is then looked up under its partition lock.  Cost:
 * the directory's own entries, whatever the size of the set.
 */
static size_t
dir_walk(struct namespace *ns, uint16_t set_id, uint64_t dir, struct txn_cursor *cur,
    const uint8_t *mask, struct txn_entry *out, size_t max)
{
	uint32_t now = clock_epoch_s();
	struct digest dg[64];
	size_t n = 0;

	while (!cur->done && n < max) {
		size_t want = max - n < 64 ? max - n : 64;
		size_t k = index_dir_next(ns->index, dir, cur->partition,
		    cur->started ? &cur->last : NULL, mask, dg, want);

		if (k == 0) {
			cur->done = true;
			break;
		}
		for (size_t i = 0; i < k; i++) {
			struct index_partition *p = index_partition_of(ns->index, &dg[i]);
			struct index_entry *e;

			pthread_rwlock_rdlock(&p->lock);
			e = index_find_locked(p, set_id, &dg[i]);
			if (entry_visible(e, now)) {
				struct txn_entry *t = &out[n++];

				memcpy(t->key, e->key, e->key_len);
				t->key[e->key_len] = '\0';
				t->key_len = e->key_len;
				attr_from_entry(ns, e, &t->attr);
			}
			pthread_rwlock_unlock(&p->lock);
			cur->partition = digest_partition(&dg[i]);
			cur->last = dg[i];
			cur->started = true;
		}
	}
	return n;
}

int
txn_list_local(struct namespace *ns, const char *set, size_t set_len, uint64_t dir,
    struct txn_cursor *cur, const uint8_t *mask, struct txn_entry *out, size_t max)
{
	uint16_t set_id = 0;
	size_t n;

	if (set_len > 0 && set_lookup(&ns->sets, set, set_len, &set_id) != 0)
		return -ENOENT;
	n = dir != 0 ? dir_walk(ns, set_id, dir, cur, mask, out, max) :
	    list_walk(ns, set_id, cur, mask, out, max);
	for (size_t i = 0; i < n; i++)
		if (out[i].attr.chunked)
			head_size_fix(ns, set_id, &out[i].attr.digest, &out[i].attr);
	return (int)n;
}

static int
list_records(struct namespace *ns, const char *set, size_t set_len, uint64_t dir,
    struct txn_cursor *cur, struct txn_entry *out, size_t max)
{
	int n = txn_list_local(ns, set, set_len, dir, cur, NULL, out, max);

	if (n > 0)
		NS_COUNT_ADD(ns, client_list_records, (uint64_t)n);
	return n;
}

/* ---- reclaim (nsup) -------------------------------------------------- */

static int
reclaim_local(const struct txn_target *t, uint16_t set_id, uint32_t now, uint32_t evict_below)
{
	struct namespace *ns = t->ns;
	const struct digest *d = &t->digest;
	struct index_entry *e;
	int rc = 0;

	index_record_lock(ns->index, d);
	e = entry_get(ns, set_id, d);
	if (e != NULL && !e->tombstone && !e->set_marker && e->void_time != 0 &&
	    (e->void_time <= now || (evict_below != 0 && e->void_time < evict_below))) {
		const struct ns_set *s = &ns->sets.sets[set_id];

		rc = delete_entry(ns, e, set_id != 0 ? s->name : NULL, set_id != 0 ? s->len : 0, NULL);
		if (rc == 0)
			rc = 1;
	}
	index_record_unlock(ns->index, d);
	return rc;
}

/* ---- routing and the public entry points -------------------------------- */

enum txn_route (*txn_route_test_hook)(const struct txn_target *t);

enum txn_route
txn_route(const struct txn_target *t, struct partition_rsv *rsv)
{
	enum txn_route (*hook)(const struct txn_target *) = atomic_load_relaxed(&txn_route_test_hook);
	struct txn_namespace *x = txn_namespace_of(t->ns);
	struct txn_remote *rm;

	rsv->tbl = NULL;
	rsv->cluster_key = 0;
	if (hook != NULL)
		return hook(t);
	/* A single node: one load, nothing reserved. */
	rm = atomic_load_acquire(&x->remote);
	if (rm == NULL)
		return TXN_ROUTE_LOCAL;
	partition_reserve(x->partitions, t->partition, rsv);
	if (rsv->cluster_key == 0) {
		/* An orphan (its principal just died): its table says "master of
		 * everything", which is not true.  Wait for a cluster. */
		uint64_t deadline = clock_mono_ns() + (uint64_t)txn_remote_deadline_ms(rm) * 1000000;

		partition_release(rsv);
		rsv->tbl = NULL;
		if (txn_partition_wait_change(t->ns, t->partition, 0, deadline) != 0)
			return TXN_ROUTE_UNAVAILABLE;
		partition_reserve(x->partitions, t->partition, rsv);
		if (rsv->cluster_key == 0) {
			partition_release(rsv);
			rsv->tbl = NULL;
			return TXN_ROUTE_UNAVAILABLE;
		}
	}
	if (rsv->master == 0) {
		/* The rebalance of this change is pending (the exchange of
		 * versions, docs/cluster.md): no node is known to hold all of
		 * the partition yet.  Wait for it. */
		uint64_t deadline = clock_mono_ns() + (uint64_t)txn_remote_deadline_ms(rm) * 1000000;

		partition_release(rsv);
		rsv->tbl = NULL;
		if (txn_partition_wait_working(t->ns, t->partition, 0, deadline) != 0)
			return TXN_ROUTE_UNAVAILABLE;
		partition_reserve(x->partitions, t->partition, rsv);
		if (rsv->master == 0 || rsv->cluster_key == 0) {
			partition_release(rsv);
			rsv->tbl = NULL;
			return TXN_ROUTE_UNAVAILABLE;
		}
	}
	return rsv->am_master ? TXN_ROUTE_LOCAL : TXN_ROUTE_REMOTE;
}

/*
 * Duplicate resolution (docs/cluster.md, "Duplicate resolution"): while
 * this node serves partition t's as working master before the duplicate
 * holders' migrations reached it (a healed split, a node back with writes
 * this one missed), it asks each holder for its copy of the record and
 * applies it IF_NEWER (the conflict rule migration applies), so what it
 * serves next is never older than an acknowledged version.  Bounded by
 * transaction-max-ms: a holder that does not answer is EIO.
 */
static int
dup_resolve(const struct txn_target *t)
{
	struct txn_namespace *x = txn_namespace_of(t->ns);
	struct txn_remote *rm;
	struct txn_migrate *mg;
	uint64_t ids[PARTITION_NODES_MAX], deadline;
	unsigned n;

	if (atomic_load_relaxed(&x->dup_partitions) == 0)
		return 0;
	rm = atomic_load_acquire(&x->remote);
	mg = atomic_load_acquire(&x->migrate);
	if (rm == NULL || mg == NULL)
		return 0;
	n = txn_migrate_dups(mg, t->ns, t->partition, ids);
	if (n == 0)
		return 0;
	deadline = clock_mono_ns() + (uint64_t)txn_remote_deadline_ms(rm) * 1000000;
	NS_COUNT_ADD(t->ns, dup_res_run, 1);
	for (unsigned i = 0; i < n; i++) {
		uint8_t *flat;
		size_t len;
		int rc = txn_remote_dup_fetch(rm, ids[i], t, deadline, &flat, &len);

		if (rc != 0) {
			NS_COUNT_ADD(t->ns, dup_res_failed, 1);
			txn_eio_log(t->ns, t->partition, "duplicate resolution: holder %016" PRIx64
			    " did not answer within transaction-max-ms", ids[i]);
			return -EIO;
		}
		if (flat == NULL)
			continue;
		rc = len <= UINT32_MAX ? namespace_apply_flat(t->ns, flat, (uint32_t)len, false) : -EBADMSG;
		free(flat);
		if (rc == -EBADMSG) {
			log_warn("txn", "{%s} duplicate resolution: a malformed copy from %016" PRIx64
			    " ignored", t->ns->name, ids[i]);
			continue;
		}
		if (rc < 0) {
			NS_COUNT_ADD(t->ns, dup_res_failed, 1);
			return rc;
		}
		if (rc == 1)
			NS_COUNT_ADD(t->ns, dup_res_won, 1);
	}
	return 0;
}

int
txn_dup_copy(struct namespace *ns, const struct txn_key *k, bool nowait, uint8_t **flat,
    uint32_t *len)
{
	struct txn_target t;
	struct index_entry *e;
	uint16_t set_id;
	uint32_t size;
	int rc;

	*flat = NULL;
	*len = 0;
	if (nowait && ns->storage->persistent)
		return -EWOULDBLOCK;
	rc = target_resolve(ns, k, &t);
	if (rc == 0)
		rc = target_set(&t, false, &set_id);
	if (rc != 0)
		return rc;
	if (!nowait)
		index_record_lock(ns->index, &t.digest);
	else if (!index_record_trylock(ns->index, &t.digest))
		return -EWOULDBLOCK;
	e = entry_get(ns, set_id, &t.digest);
	if (e == NULL || e->damaged || e->set_marker) {
		rc = -ENOENT;
		goto out;
	}
	size = storage_loc_size(e->loc);
	if (nowait && size > TXN_INLINE_MAX) {
		rc = -EWOULDBLOCK;
		goto out;
	}
	*flat = malloc(size > 0 ? size : 1);
	if (*flat == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	rc = storage_read(ns->storage, e->loc, *flat);
	if (rc != 0) {
		free(*flat);
		*flat = NULL;
	} else {
		*len = size;
	}
out:
	index_record_unlock(ns->index, &t.digest);
	return rc;
}

/* Duplicate resolution of the record(s) an operation serves. */
static int
dup_resolve_op(const struct txn_target *t, const struct txn_op *op)
{
	int rc;

	switch (op->kind) {
	case TXN_OP_STAT:
	case TXN_OP_READ:
	case TXN_OP_WRITE:
	case TXN_OP_DELETE:
	case TXN_OP_RENAME_IN:
		return dup_resolve(t);
	case TXN_OP_RENAME:
		rc = dup_resolve(t);
		return rc == 0 ? dup_resolve(op->to) : rc;
	default:
		return 0;
	}
}

static int
run_local(const struct txn_target *t, const struct txn_op *op)
{
	switch (op->kind) {
	case TXN_OP_STAT:
		return stat_record(t, op->attr);
	case TXN_OP_READ:
		return read_record(t, op->rec, false, op->into, op->into_size);
	case TXN_OP_WRITE:
		return write_record(t, op->w, op_id_of(&op->id), op->retry, op->attr, NULL);
	case TXN_OP_DELETE:
		return delete_record(t, op);
	case TXN_OP_RENAME:
		return rename_record(t, op->to, op->flags, op_id_of(&op->id), op->retry);
	case TXN_OP_SYNC:
		return sync_record(t);
	case TXN_OP_SET_CREATE:
		return set_create_local(t, op->w);
	case TXN_OP_SET_REMOVE:
		return set_remove_local(t);
	case TXN_OP_SET_UPDATE:
		return set_update_local(t, op->w);
	case TXN_OP_RECLAIM:
		return reclaim_local(t, op->set_id, op->now, op->evict_below);
	case TXN_OP_RENAME_IN:
		return rename_in(t, op->rec, op->flags, op_id_of(&op->id), op->retry);
	}
	return -EINVAL;
}

/* An operation that failed before a body ran (bad name, no route) is
 * counted as the body would have counted that error. */
static void
count_unrouted(struct namespace *ns, enum txn_op_kind kind, int rc)
{
	switch (kind) {
	case TXN_OP_STAT:
		if (rc == -ENOENT)
			COUNT(ns, client_lookup_not_found);
		break;
	case TXN_OP_READ:
		if (rc == -ENOENT)
			COUNT(ns, client_read_not_found);
		else
			COUNT(ns, client_read_error);
		break;
	case TXN_OP_WRITE:
	case TXN_OP_SET_UPDATE:
		COUNT(ns, client_write_error);
		break;
	case TXN_OP_DELETE:
		if (rc == -ENOENT)
			COUNT(ns, client_delete_not_found);
		else
			COUNT(ns, client_delete_error);
		break;
	default:
		break;
	}
}

static bool
is_set_op(enum txn_op_kind k)
{
	return k == TXN_OP_SET_CREATE || k == TXN_OP_SET_REMOVE || k == TXN_OP_SET_UPDATE;
}

static int dispatch(const struct txn_target *t, const struct txn_op *op);

/* A set of records only appeared or went here (namespace_entry_count):
 * the other nodes are told (by the sets thread; no lock held here). */
static void
sets_used_flush(struct namespace *ns)
{
	if (atomic_load_relaxed(&ns->sets_used_changed) &&
	    atomic_load_acquire(&txn_namespace_of(ns)->remote) != NULL &&
	    atomic_exchange_relaxed(&ns->sets_used_changed, false)) {
		struct txn_sets *ss = sets_of(ns);

		if (ss != NULL)
			txn_sets_kick(ss);
	}
}

/*
 * A rename whose two names have different masters (docs/cluster.md,
 * "Rename"): read the old name (at its master), write its record under the
 * new name at the new name's master, then delete the old name at its
 * master.  The old name is never lost: it is deleted only once the new one
 * is stored (and replicated); if that delete fails, both names exist and
 * the error is returned, as when the local rename's delete fails.
 */
static int rename_across_steps(const struct txn_target *tf, const struct txn_op *op,
    struct txn_record *rec, int rc, bool chunked);

static int
rename_across(const struct txn_target *tf, const struct txn_op *op)
{
	struct txn_record rec;
	struct txn_op rd = { .kind = TXN_OP_READ, .rec = &rec };
	bool chunked;
	int rc;

	memset(&rec, 0, sizeof(rec));
	record_init(&rec.rec);
	rc = dispatch(tf, &rd);
	chunked = rc == 0 && rec.attr.chunked;
	/* The map moves from one master to another: a chunk reclaimer's
	 * gather running meanwhile could see it at neither (txn_i.h). */
	if (chunked)
		txn_chunk_move_begin(txn_namespace_of(tf->ns));
	rc = rename_across_steps(tf, op, &rec, rc, chunked);
	if (chunked)
		txn_chunk_move_end(txn_namespace_of(tf->ns));
	return rc;
}

static int
rename_across_steps(const struct txn_target *tf, const struct txn_op *op, struct txn_record *rec,
    int rc, bool chunked)
{
	struct txn_op in = { .kind = TXN_OP_RENAME_IN, .rec = rec, .flags = op->flags };
	struct txn_op del = { .kind = TXN_OP_DELETE };
	/* A large file's chunks now belong to the new name's head: the old
	 * head loses its map first, so that its delete leaves them. */
	struct txn_bin_op unmap_bin = { .name = RECORD_BIN_CHUNK_MAP,
	    .name_len = sizeof(RECORD_BIN_CHUNK_MAP) - 1, .flags = TXN_BIN_REMOVE };
	struct txn_write unmap_w = { .flags = TXN_UPDATE_ONLY, .bins = &unmap_bin, .n_bins = 1 };
	struct txn_op unmap = { .kind = TXN_OP_WRITE, .w = &unmap_w };

	if (rc == 0)
		rc = dispatch(op->to, &in);
	txn_record_release(rec);
	if (rc != 0)
		return rc;
	if (chunked && (rc = dispatch(tf, &unmap)) != 0) {
		/* Its delete would take the chunks the new name's head names. */
		if (rc == -ENOENT)
			return 0;
		log_error("txn", "{%s} rename across masters: the old name of a large file is left "
		    "behind: %s", tf->ns->name, recfs_strerror(rc));
		return rc;
	}
	rc = dispatch(tf, &del);
	if (rc == -ENOENT)   /* deleted meanwhile: the rename is done */
		rc = 0;
	if (rc != 0)
		log_error("txn", "{%s} rename across masters: old name left behind: %s", tf->ns->name,
		    recfs_strerror(rc));
	return rc;
}

static uint64_t eio_log_last_ns;      /* atomic: the last line's time */
static uint64_t eio_log_left_out;     /* atomic: lines not written since */

void
txn_eio_log(const struct namespace *ns, uint32_t pid, const char *fmt, ...)
{
	uint64_t now = clock_mono_ns(), last = atomic_load_relaxed(&eio_log_last_ns), n;
	char why[256];
	va_list ap;

	if ((last != 0 && now - last < 1000000000ull) ||
	    !__atomic_compare_exchange_n(&eio_log_last_ns, &last, now, false, __ATOMIC_RELAXED,
	    __ATOMIC_RELAXED)) {
		atomic_inc(&eio_log_left_out);
		return;
	}
	n = __atomic_exchange_n(&eio_log_left_out, 0, __ATOMIC_RELAXED);
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (n > 0)
		log_warn("txn", "{%s} an operation on partition %u failed (EIO): %s (and %" PRIu64
		    " more such failures in the last second, not logged)", ns->name, pid, why, n);
	else
		log_warn("txn", "{%s} an operation on partition %u failed (EIO): %s", ns->name, pid, why);
}

void
txn_eio_log_reset(void)
{
	atomic_store_relaxed(&eio_log_last_ns, 0);
}

/* Why txn_route found no master for t (it waited transaction-max-ms). */
static void
eio_log_unrouted(const struct txn_target *t, uint32_t ms)
{
	struct partition_rsv r;
	uint64_t key, master;

	partition_reserve(txn_namespace_of(t->ns)->partitions, t->partition, &r);
	key = r.cluster_key;
	master = r.master;
	partition_release(&r);
	if (key == 0)
		txn_eio_log(t->ns, t->partition, "this node is in no cluster (an orphan) and joined none "
		    "within transaction-max-ms (%u ms)", ms);
	else
		txn_eio_log(t->ns, t->partition, "no working master for it in the table of cluster key "
		    "%016" PRIx64 " within transaction-max-ms (%u ms)%s", key, ms,
		    master != 0 ? "; one is named now" : "");
}

/*
 * The one dispatch point: ask txn_route() where t runs (a rename: both
 * names), then run the local body or send the operation to the master
 * (remote.c).  Nothing before this point may look at the index or the set
 * table.  A master that answers "not master" (its table changed) or is
 * down (then after the next table, bounded by transaction-max-ms) gets the
 * operation routed again once; a second refusal is EIO.  A rename whose
 * names have different masters runs as rename_across.
 * Set operations run here (cluster-wide sets are their own layer's);
 * expiry and eviction (reclaim) only at the master.
 */
int (*txn_proxy_result_test_hook)(const struct txn_target *t, const struct txn_op *op, int rc);

/* A new operation id of this node (struct txn_op_id): a counter that
 * starts at the epoch ms << 20 at the first one, so a restarted node does
 * not reuse the ids of its previous process. */
static struct txn_op_id
op_id_new(struct txn_remote *rm)
{
	static uint64_t seq;
	uint64_t cur = atomic_load_relaxed(&seq);

	if (cur == 0) {
		uint64_t base = clock_epoch_ms() << 20;

		(void)atomic_cas_relaxed(&seq, &cur, base);
	}
	return (struct txn_op_id){ .node = txn_remote_self(rm), .seq = atomic_add(&seq, 1) };
}

static int
dispatch(const struct txn_target *t, const struct txn_op *op_in)
{
	struct txn_remote *rm = atomic_load_acquire(&txn_namespace_of(t->ns)->remote);
	struct txn_op o = *op_in;
	const struct txn_op *op = &o;
	int rc = -EIO;

	if (op->kind != TXN_OP_RECLAIM)
		txn_client_op(t->ns);
	for (int attempt = 0;; attempt++) {
		struct partition_rsv rsv, rsv_to = { .tbl = NULL };
		enum txn_route route = txn_route(t, &rsv);
		uint64_t key = rsv.cluster_key, refused = route == TXN_ROUTE_REMOTE ? rsv.master : 0;

		if (route != TXN_ROUTE_UNAVAILABLE && op->to != NULL) {
			enum txn_route r2 = txn_route(op->to, &rsv_to);

			if (r2 == TXN_ROUTE_UNAVAILABLE) {
				route = TXN_ROUTE_UNAVAILABLE;
			} else if (rsv.tbl != NULL && rsv_to.tbl != NULL && rsv.master != rsv_to.master) {
				partition_release(&rsv);
				partition_release(&rsv_to);
				return rename_across(t, op);
			}
		}
		if (route == TXN_ROUTE_REMOTE && is_set_op(op->kind))
			route = TXN_ROUTE_LOCAL;
		switch (route) {
		case TXN_ROUTE_LOCAL:
			rc = dup_resolve_op(t, op);
			if (rc == 0)
				rc = run_local(t, op);
			sets_used_flush(t->ns);
			break;
		case TXN_ROUTE_REMOTE:
			/* A write's, delete's or rename's id once it leaves this
			 * node, the same in every later attempt (see recent_bucket). */
			if ((o.kind == TXN_OP_WRITE || o.kind == TXN_OP_DELETE || o.kind == TXN_OP_RENAME ||
			    o.kind == TXN_OP_RENAME_IN) && o.id.seq == 0)
				o.id = op_id_new(rm);
			/* Expiry and eviction are the master's to do: not an error. */
			rc = op->kind == TXN_OP_RECLAIM ? 0 : txn_remote_proxy(rm, rsv.master, t, op);
			{
				int (*hook)(const struct txn_target *, const struct txn_op *, int) =
				    atomic_load_relaxed(&txn_proxy_result_test_hook);

				if (hook != NULL)
					rc = hook(t, op, rc);
			}
			break;
		case TXN_ROUTE_UNAVAILABLE:
			rc = op->kind == TXN_OP_RECLAIM ? 0 : -EIO;
			break;
		}
		partition_release(&rsv);
		partition_release(&rsv_to);
		if (route == TXN_ROUTE_UNAVAILABLE && rc != 0) {
			count_unrouted(t->ns, op->kind, rc);
			if (rc == -EIO && rm != NULL)
				eio_log_unrouted(t, txn_remote_deadline_ms(rm));
		}
		if (rc != TXN_ENOTMASTER && rc != -EHOSTDOWN)
			return rc;
		if (attempt > 1 || (attempt > 0 && rc == -EHOSTDOWN)) {
			if (rc == TXN_ENOTMASTER && refused == 0)
				txn_eio_log(t->ns, t->partition, "this node stopped being its master during "
				    "the operation a third time (cluster key %016" PRIx64 ")", key);
			else if (rc == TXN_ENOTMASTER)
				txn_eio_log(t->ns, t->partition, "master %016" PRIx64 " answered \"not master\" "
				    "a third time (table of cluster key %016" PRIx64 " here)", refused, key);
			else
				txn_eio_log(t->ns, t->partition, "master %016" PRIx64 " went down again "
				    "(table of cluster key %016" PRIx64 " here)", refused, key);
			return -EIO;
		}
		/* The master went down: wait (bounded) for the table without it;
		 * the operation may have run there (see recent_bucket). */
		if (rc == -EHOSTDOWN)
			o.retry = true;
		if (rc == -EHOSTDOWN &&
		    txn_partition_wait_change(t->ns, t->partition, key,
		    txn_remote_failover_deadline(rm)) != 0) {
			txn_eio_log(t->ns, t->partition, "master %016" PRIx64 " is down and no table "
			    "without it came in time (cluster key %016" PRIx64 " here)", refused, key);
			return -EIO;
		}
		/* It is no longer the working master (a migration ended, or a
		 * new table): wait (bounded) until this node's table names
		 * another. */
		if (rc == TXN_ENOTMASTER && refused != 0)
			(void)txn_partition_wait_working(t->ns, t->partition, refused, clock_mono_ns() +
			    (uint64_t)txn_remote_deadline_ms(rm) * 1000000);
	}
}

/* Resolve k, then dispatch op on it. */
static int
resolve_dispatch(struct namespace *ns, const struct txn_key *k, const struct txn_op *op)
{
	struct txn_target t;
	int rc = target_resolve(ns, k, &t);

	if (rc != 0) {
		count_unrouted(ns, op->kind, rc);
		return rc;
	}
	return dispatch(&t, op);
}

/*
 * Each operation is timed here, around the whole transaction (record lock
 * waits included: that is what a caller waits for), into the histograms
 * of .info/latencies.  Two monotonic clock reads (vDSO, tens of ns) per
 * operation.
 */
int
txn_stat(struct namespace *ns, const struct txn_key *k, struct record_attr *out)
{
	uint64_t t0 = clock_mono_ns();
	struct txn_op op = { .kind = TXN_OP_STAT, .attr = out };
	int rc = resolve_dispatch(ns, k, &op);

	latency_add(ns, STAT_LAT_NS_lookup, t0);
	return rc;
}

int
txn_read(struct namespace *ns, const struct txn_key *k, struct txn_record *out)
{
	return txn_read_into(ns, k, NULL, 0, out);
}

int
txn_read_into(struct namespace *ns, const struct txn_key *k, void *buf, size_t buf_size,
    struct txn_record *out)
{
	uint64_t t0 = clock_mono_ns();
	struct txn_op op = { .kind = TXN_OP_READ, .rec = out, .into = buf, .into_size = buf_size };
	int rc;

	/* Empty whatever happens, so that a release after a failure is safe. */
	memset(out, 0, sizeof(*out));
	record_init(&out->rec);
	rc = resolve_dispatch(ns, k, &op);
	latency_add(ns, STAT_LAT_NS_read, t0);
	return rc;
}

int
txn_write(struct namespace *ns, const struct txn_key *k, const struct txn_write *w,
    struct record_attr *out)
{
	uint64_t t0 = clock_mono_ns();
	struct txn_op op = { .kind = TXN_OP_WRITE, .w = w, .attr = out };
	int rc = resolve_dispatch(ns, k, &op);

	latency_add(ns, STAT_LAT_NS_write, t0);
	return rc;
}

int
txn_delete(struct namespace *ns, const struct txn_key *k)
{
	uint64_t t0 = clock_mono_ns();
	struct txn_op op = { .kind = TXN_OP_DELETE };
	int rc = resolve_dispatch(ns, k, &op);

	latency_add(ns, STAT_LAT_NS_delete, t0);
	return rc;
}

int
txn_rename(struct namespace *ns, const struct txn_key *from, const struct txn_key *to,
    unsigned flags)
{
	uint64_t t0 = clock_mono_ns();
	struct txn_target tf, tt;
	struct txn_op op = { .kind = TXN_OP_RENAME, .to = &tt, .flags = flags };
	/* Both names are checked (old first) before anything runs. */
	int rc = target_resolve(ns, from, &tf);

	if (rc == 0)
		rc = target_resolve(ns, to, &tt);
	if (rc == 0)
		rc = dispatch(&tf, &op);
	latency_add(ns, STAT_LAT_NS_rename, t0);
	return rc;
}

int
txn_sync(struct namespace *ns, const struct txn_key *k)
{
	struct txn_op op = { .kind = TXN_OP_SYNC };

	return resolve_dispatch(ns, k, &op);
}

/*
 * Set changes in a cluster (docs/cluster.md, "Sets and listings"): the
 * node that runs mkdir, rmdir or a set's chmod/chown/touch changes its own
 * table first, then sends the set's new state to every other node of the
 * succession and returns once all have taken it; the set tables sent at
 * every succession change repair a node that missed it.
 */
static struct txn_sets *
sets_of(struct namespace *ns)
{
	struct txn_namespace *x = txn_namespace_of(ns);
	struct txn_sets *s = NULL;

	if (x == NULL || x->node == NULL)
		return NULL;
	pthread_mutex_lock(&x->node->network_lock);
	if (x->node->network != NULL)
		s = txn_network_sets(x->node->network);
	pthread_mutex_unlock(&x->node->network_lock);
	return s;
}

static void
entry_of_name(struct set_msg_entry *e, const char *set, size_t len)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->name, set, len);
	e->len = (uint8_t)len;
	e->live = true;
}

/* The set's state here, sent to every other node after a local change. */
static int
set_broadcast(struct namespace *ns, struct txn_sets *ss, const char *set, size_t len,
    const char *what)
{
	struct set_msg_entry e;
	uint16_t set_id;
	int rc;

	if (set_lookup(&ns->sets, set, len, &set_id) != 0 || txn_set_state(ns, set_id, &e) != 0)
		return 0;
	rc = txn_sets_send(ss, ns, SET_MSG_MERGE, &e, 0);
	if (rc == -ENOTEMPTY) {
		/* rmdir raced with a record written on another node: removed
		 * here and wherever it was empty; that node keeps it. */
		log_warn("txn", "{%s} set %.*s: removed here, kept by a node where a record of it "
		    "was written meanwhile", ns->name, (int)len, set);
		rc = 0;
	} else if (rc != 0) {
		log_warn("txn", "{%s} set %.*s: %s done here and on the nodes that answered; the "
		    "others get it with the set tables sent again (%s)", ns->name, (int)len, set, what,
		    recfs_strerror(rc));
		rc = -EIO;
	}
	return rc;
}

/*
 * mkdir's name check in a cluster: a null-set record named like the set
 * (docs/cluster.md, "mkdir, rmdir, chmod of a set") is decided by the
 * working master of its partition, routed as an operation on that record
 * is (txn_route: an orphan waits for a cluster, a pending rebalance for
 * its working master, within transaction-max-ms; none by then: EIO, never
 * a set made over a name nobody could look at).  Here: 0, the local body
 * looks (set_create_local).  A master that went down and left the
 * succession during the check (txn_sets_send's -EHOSTDOWN) gets the check
 * routed again, once.
 */
static int
set_name_check(struct namespace *ns, struct txn_sets *ss, const char *set, size_t len)
{
	struct txn_key nk = { .key = set, .key_len = len };
	struct txn_remote *rm = atomic_load_acquire(&txn_namespace_of(ns)->remote);
	struct txn_target nt;
	struct set_msg_entry e;

	target_fill(ns, &nk, &nt);
	entry_of_name(&e, set, len);
	for (int attempt = 0;; attempt++) {
		struct partition_rsv rsv = { .tbl = NULL, .master = 0 };
		enum txn_route route = txn_route(&nt, &rsv);
		uint64_t master = rsv.master;
		int rc;

		partition_release(&rsv);
		if (route == TXN_ROUTE_UNAVAILABLE) {
			if (rm != NULL)
				eio_log_unrouted(&nt, txn_remote_deadline_ms(rm));
			return -EIO;
		}
		if (route == TXN_ROUTE_LOCAL)
			return 0;
		rc = txn_sets_send(ss, ns, SET_MSG_CHECK_NAME, &e, master);
		if (rc != -EHOSTDOWN)
			return rc;
		if (attempt > 0) {
			txn_eio_log(ns, nt.partition, "mkdir's name check: master %016" PRIx64 " went "
			    "down too (the second master asked)", master);
			return -EIO;
		}
	}
}

int
txn_set_create(struct namespace *ns, const char *set, size_t len, const struct txn_write *w)
{
	struct txn_op op = { .kind = TXN_OP_SET_CREATE, .w = w };
	struct txn_target t;
	struct txn_sets *ss;
	int rc = record_set_name_check(set, len);

	if (rc != 0)
		return rc;
	if (w != NULL && !set_write_valid(w))
		return -EINVAL;
	target_marker(ns, set, len, &t);
	ss = sets_of(ns);
	if (ss != NULL) {
		rc = set_name_check(ns, ss, set, len);
		if (rc != 0)
			return rc;
	}
	rc = dispatch(&t, &op);
	if (rc == 0 && ss != NULL)
		rc = set_broadcast(ns, ss, set, len, "mkdir");
	return rc;
}

int
txn_set_remove(struct namespace *ns, const char *set, size_t len)
{
	struct txn_op op = { .kind = TXN_OP_SET_REMOVE };
	struct txn_target t;
	struct txn_sets *ss;
	int rc = record_set_name_check(set, len);

	if (rc != 0)
		return rc;
	target_marker(ns, set, len, &t);
	ss = sets_of(ns);
	if (ss != NULL) {
		/* Not empty if any node holds a live record of it; asked
		 * before anything is removed anywhere. */
		struct set_msg_entry e;

		rc = txn_set_exists(ns, set, len);
		if (rc != 0)
			return rc;
		entry_of_name(&e, set, len);
		rc = txn_sets_send(ss, ns, SET_MSG_CHECK_EMPTY, &e, 0);
		if (rc != 0)
			return rc;
	}
	rc = dispatch(&t, &op);
	if (rc == 0 && ss != NULL)
		rc = set_broadcast(ns, ss, set, len, "rmdir");
	return rc;
}

int
txn_set_update(struct namespace *ns, const char *set, size_t len, const struct txn_write *w,
    struct record_attr *out)
{
	struct txn_op op = { .kind = TXN_OP_SET_UPDATE, .w = w };
	struct txn_target t;
	int rc;

	if (!set_write_valid(w))
		return -EINVAL;
	if (!set_write_has_meta(w))
		return out != NULL ? txn_set_stat(ns, set, len, out) : txn_set_exists(ns, set, len);
	if (len == 0 || len > RECORD_SET_MAX)
		return -ENOENT;
	target_marker(ns, set, len, &t);
	rc = dispatch(&t, &op);
	if (rc == 0) {
		struct txn_sets *ss = sets_of(ns);

		if (ss != NULL)
			rc = set_broadcast(ns, ss, set, len, "the change of its attributes");
	}
	if (rc == 0 && out != NULL)
		rc = txn_set_stat(ns, set, len, out);
	return rc;
}

int
txn_list(struct namespace *ns, const char *set, size_t set_len, struct txn_cursor *cur,
    struct txn_entry *out, size_t max)
{
	return txn_list_in(ns, set, set_len, 0, cur, out, max);
}

int
txn_list_in(struct namespace *ns, const char *set, size_t set_len, uint64_t dir,
    struct txn_cursor *cur, struct txn_entry *out, size_t max)
{
	uint64_t t0 = clock_mono_ns();
	struct txn_sets *ss = sets_of(ns);
	int rc;

	/* In a cluster each page is gathered from the partitions' masters. */
	if (ss != NULL)
		rc = txn_sets_list(ss, ns, set, set_len, dir, cur, out, max);
	else
		rc = list_records(ns, set, set_len, dir, cur, out, max);
	if (rc > 0 && ss != NULL)
		NS_COUNT_ADD(ns, client_list_records, (uint64_t)rc);
	latency_add(ns, STAT_LAT_NS_list, t0);
	return rc;
}

/* nsup found (set_id, d) expired or to evict: it goes only where its
 * record's deletes are decided (today: here; in a cluster: its master). */
int
txn_reclaim(struct namespace *ns, uint16_t set_id, const struct digest *d, uint32_t now,
    uint32_t evict_below)
{
	const struct ns_set *s = &ns->sets.sets[set_id];
	struct txn_op op = { .kind = TXN_OP_RECLAIM, .set_id = set_id, .now = now,
	    .evict_below = evict_below };
	struct txn_target t = { .ns = ns, .digest = *d, .partition = digest_partition(d) };

	if (set_id != 0) {
		t.k.set = s->name;
		t.k.set_len = s->len;
	}
	return dispatch(&t, &op);
}

/* The tomb raider asks whether it may drop tombstone t (namespace.h
 * raider_reclaim; its record lock held): alone, yes; in a cluster only
 * the partition's master decides, once every other replica dropped the
 * same tombstone or holds none (docs/cluster.md "Write path with
 * replication"). */
int
txn_raider_reclaim(struct namespace *ns, const struct ns_tomb *t)
{
	struct txn_namespace *x = txn_namespace_of(ns);
	struct txn_remote *rm = atomic_load_acquire(&x->remote);
	struct partition_rsv rsv;
	int rc;

	if (rm == NULL)   /* alone; or detached for now (shutdown): keep it */
		return atomic_load_relaxed(&x->had_network) ? -EAGAIN : 0;
	partition_reserve(x->partitions, digest_partition(&t->digest), &rsv);
	if (!rsv.am_master || rsv.cluster_key == 0)
		rc = NS_RAID_NOT_MINE;
	else
		rc = txn_remote_reclaim(rm, ns, &rsv, t);
	partition_release(&rsv);
	return rc;
}

/* ---- the remote side (remote.c's handlers) ------------------------------ */

/*
 * Reserve pid for an operation another node sent here: 0 when this node
 * masters it (an orphan first waits for a cluster, as txn_route does),
 * else TXN_ENOTMASTER.  Release rsv after.
 */
static int
reserve_master(struct namespace *ns, uint32_t pid, struct partition_rsv *rsv)
{
	struct txn_namespace *x = txn_namespace_of(ns);
	struct txn_remote *rm = atomic_load_acquire(&x->remote);

	partition_reserve(x->partitions, pid, rsv);
	if (rsv->cluster_key == 0 && rm != NULL) {
		partition_release(rsv);
		rsv->tbl = NULL;
		if (txn_partition_wait_change(ns, pid, 0, clock_mono_ns() +
		    (uint64_t)txn_remote_deadline_ms(rm) * 1000000) != 0)
			return TXN_ENOTMASTER;
		partition_reserve(x->partitions, pid, rsv);
	}
	if (rsv->master == 0 && rsv->cluster_key != 0 && rm != NULL) {
		/* The rebalance is pending: it may name this node. */
		partition_release(rsv);
		rsv->tbl = NULL;
		if (txn_partition_wait_working(ns, pid, 0, clock_mono_ns() +
		    (uint64_t)txn_remote_deadline_ms(rm) * 1000000) != 0)
			return TXN_ENOTMASTER;
		partition_reserve(x->partitions, pid, rsv);
	}
	return rsv->am_master && (rsv->cluster_key != 0 || rm == NULL) ? 0 : TXN_ENOTMASTER;
}

int
txn_proxy_serve(struct namespace *ns, const struct txn_proxy_req *q, struct record_attr *attr,
    struct txn_record *rec)
{
	struct txn_target t, tt;
	struct partition_rsv r1 = { .tbl = NULL }, r2 = { .tbl = NULL };
	struct txn_op op = { .attr = attr, .rec = rec, .flags = q->rename_flags, .id = q->id,
	    .retry = q->retry };
	int rc;

	switch (q->kind) {
	case TXN_PROXY_STAT: op.kind = TXN_OP_STAT; break;
	case TXN_PROXY_READ: op.kind = TXN_OP_READ; break;
	case TXN_PROXY_WRITE: op.kind = TXN_OP_WRITE; op.w = &q->w; break;
	case TXN_PROXY_DELETE: op.kind = TXN_OP_DELETE; break;
	case TXN_PROXY_RENAME: op.kind = TXN_OP_RENAME; op.to = &tt; break;
	case TXN_PROXY_SYNC: op.kind = TXN_OP_SYNC; break;
	case TXN_PROXY_RENAME_IN: op.kind = TXN_OP_RENAME_IN; break;
	default: return -EBADMSG;   /* TXN_PROXY_DUPRES: remote.c's */
	}
	if (op.kind == TXN_OP_RENAME_IN) {
		/* The record as the old name's master read it, and what it showed. */
		rec->buf = malloc(q->record_len > 0 ? q->record_len : 1);
		if (rec->buf == NULL)
			return -ENOMEM;
		memcpy(rec->buf, q->record, q->record_len);
		if (record_flat_decode(rec->buf, q->record_len, &rec->rec) != 0 ||
		    (rec->rec.flags & (RECORD_F_TOMBSTONE | RECORD_F_SET_MARKER)))
			return -EBADMSG;
		rec->attr = q->record_attr;
		op.rec = rec;
	}
	rc = target_resolve(ns, &q->k, &t);
	if (rc == 0 && op.to != NULL)
		rc = target_resolve(ns, &q->to, &tt);
	if (rc != 0)
		return rc;
	rc = reserve_master(ns, t.partition, &r1);
	if (rc == 0 && op.to != NULL)
		rc = reserve_master(ns, tt.partition, &r2);
	if (rc == 0)
		rc = dup_resolve_op(&t, &op);
	if (rc == 0)
		rc = run_local(&t, &op);
	partition_release(&r1);
	partition_release(&r2);
	sets_used_flush(ns);
	return rc;
}

/* nowait (the fabric thread): only what needs no device I/O and finds its
 * record lock free; else -EWOULDBLOCK with nothing changed. */
static int
replica_apply(struct namespace *ns, const uint8_t *flat, uint32_t size, bool durable, bool nowait,
    const struct txn_op_id *id)
{
	struct txn_namespace *x = txn_namespace_of(ns);
	struct record_flat_header h;
	struct partition_rsv rsv;
	int rc;

	if (record_flat_header_check(flat, size, &h) != 0)
		return -EBADMSG;
	/* a delete on memory drops the entry under a blocking lock below */
	if (nowait && (ns->storage->persistent || durable || ns->cfg->storage.commit_to_device ||
	    (h.flags & RECORD_F_TOMBSTONE) || size > TXN_INLINE_MAX))
		return -EWOULDBLOCK;
	partition_reserve(x->partitions, digest_partition(&h.digest), &rsv);
	if (!rsv.am_master && !rsv.am_replica) {
		rc = TXN_ENOTMASTER;
		goto out;
	}
	/* As a client write would be refused here (deletes go on). */
	if (!(h.flags & RECORD_F_TOMBSTONE) && stop_writes(ns)) {
		COUNT(ns, fail_stop_writes);
		rc = -ENOSPC;
		goto out;
	}
	rc = nowait ? namespace_apply_flat_nowait(ns, flat, size, false)
	    : namespace_apply_flat(ns, flat, size, durable);
	/* the version of a proxied write or delete, applied or already
	 * here: note its id (see recent_bucket) */
	if (rc >= 0)
		recent_op_note(ns, &h.digest, id);
	if (rc == 1 && (h.flags & RECORD_F_TOMBSTONE) && !ns->storage->persistent &&
	    atomic_load_acquire(&x->remote) == NULL) {
		/* Detached meanwhile (as the master's delete would be): drop it. */
		struct record r;
		uint16_t set_id = 0;

		if (record_flat_decode(flat, size, &r) == 0) {
			if (r.set_len == 0 || set_lookup(&ns->sets, r.set, r.set_len, &set_id) == 0) {
				struct index_entry *e;

				index_record_lock(ns->index, &h.digest);
				e = entry_get(ns, set_id, &h.digest);
				if (e != NULL && e->tombstone)
					drop_entry(ns, e);
				index_record_unlock(ns->index, &h.digest);
			}
			record_release(&r);
		}
	}
out:
	partition_release(&rsv);
	/* Not on the fabric thread (nowait): the network's locks are not
	 * taken there; the record's master tells the other nodes anyway. */
	if (!nowait)
		sets_used_flush(ns);
	return rc;
}

int
txn_proxy_serve_nowait(struct namespace *ns, const struct txn_proxy_req *q,
    struct record_attr *attr, struct txn_record *rec)
{
	struct txn_namespace *x = txn_namespace_of(ns);
	struct txn_target t;
	struct partition_rsv rsv;
	int rc;

	if ((q->kind != TXN_PROXY_STAT && q->kind != TXN_PROXY_READ) || ns->storage->persistent)
		return -EWOULDBLOCK;
	/* Duplicates to resolve first (an rpc call): a worker's job. */
	if (atomic_load_relaxed(&x->dup_partitions) != 0)
		return -EWOULDBLOCK;
	rc = target_resolve(ns, &q->k, &t);
	if (rc != 0)
		return rc;
	partition_reserve(x->partitions, t.partition, &rsv);
	if (rsv.cluster_key == 0 && atomic_load_acquire(&x->remote) != NULL)
		rc = -EWOULDBLOCK;   /* an orphan waits for a cluster (reserve_master) */
	else if (!rsv.am_master)
		rc = TXN_ENOTMASTER;
	else if (q->kind == TXN_PROXY_STAT)
		rc = stat_record(&t, attr);
	else
		rc = read_record(&t, rec, true, NULL, 0);
	partition_release(&rsv);
	return rc;
}

int
txn_replica_apply(struct namespace *ns, const uint8_t *flat, uint32_t size, bool durable,
    const struct txn_op_id *id)
{
	return replica_apply(ns, flat, size, durable, false, id);
}

int
txn_replica_apply_nowait(struct namespace *ns, const uint8_t *flat, uint32_t size, bool durable,
    const struct txn_op_id *id)
{
	return replica_apply(ns, flat, size, durable, true, id);
}

int
txn_proxy_write_nowait(struct namespace *ns, const struct txn_proxy_req *q,
    struct record_attr *attr, struct digest *d, uint32_t *pid, uint64_t *to, uint8_t **body,
    size_t *size)
{
	struct txn_namespace *x = txn_namespace_of(ns);
	struct txn_remote *rm = atomic_load_acquire(&x->remote);
	struct write_nowait nw = { NULL, 0 };
	struct txn_target t;
	struct partition_rsv rsv;
	uint16_t sid;
	unsigned others = 0;
	int rc;

	*body = NULL;
	*size = 0;
	*to = 0;
	if (q->kind != TXN_PROXY_WRITE || rm == NULL || q->retry || ns->storage->persistent ||
	    (q->w.flags & TXN_DURABLE) || ns->cfg->storage.commit_to_device ||
	    (q->w.set_file && q->w.file_len > TXN_INLINE_MAX) || write_map_op(&q->w) != NULL ||
	    atomic_load_relaxed(&x->dup_partitions) != 0)
		return -EWOULDBLOCK;
	rc = target_resolve(ns, &q->k, &t);
	if (rc != 0)
		return rc;
	/* a set this node does not know yet is added (and told) by a worker */
	if (q->k.set_len > 0 && set_lookup(&ns->sets, q->k.set, q->k.set_len, &sid) != 0)
		return -EWOULDBLOCK;
	partition_reserve(x->partitions, t.partition, &rsv);
	for (unsigned i = 0; i < rsv.n_replicas; i++)
		if (rsv.replicas[i] != txn_remote_self(rm)) {
			*to = rsv.replicas[i];
			others++;
		}
	/* anything but the plain case (an orphan, a pending rebalance, not the
	 * master: their waits and answers are a worker's), or RF > 2 */
	if (rsv.cluster_key == 0 || rsv.master == 0 || !rsv.am_master || others > 1)
		rc = -EWOULDBLOCK;
	else
		rc = write_record(&t, &q->w, op_id_of(&q->id), false, attr, &nw);
	partition_release(&rsv);
	if (rc != 0)
		return rc;
	*d = t.digest;
	*pid = t.partition;
	*body = nw.body;
	*size = nw.size;
	if (nw.body == NULL)
		*to = 0;
	return 0;
}

void
txn_proxy_write_end(struct namespace *ns, const struct digest *d, int rc)
{
	index_record_unlock(ns->index, d);
	if (rc == 0)
		COUNT(ns, client_write_success);
	else
		COUNT(ns, client_write_error);
}

bool
txn_sets_used_pending(struct namespace *ns)
{
	return atomic_load_relaxed(&ns->sets_used_changed);
}

void
txn_sets_used_flush(struct namespace *ns)
{
	sets_used_flush(ns);
}
