/*
 * partition.h - the partition table of one namespace (docs/cluster.md,
 * Partitions).
 *
 * Each of a namespace's PARTITION_COUNT (4096) partitions gets an ordered
 * node list by rendezvous hashing over the succession list, as Aerospike
 * does: per node h_n = FNV-1a-64 of its id (8 bytes, little-endian), per
 * partition h_p = FNV-1a-64 of its id (4 bytes, little-endian); the score
 * of (node, partition) is the 64-bit Jenkins one-at-a-time hash of the 16
 * bytes h_n, h_p with its low 6 bits (log2 of CLUSTER_NODES_MAX) replaced
 * by the node's index in the succession (descending ids), so no two nodes
 * tie; nodes sorted by score, highest first.  The first RF nodes are the
 * partition's replicas, RF = min(replication-factor, cluster size); [0] is
 * the master.  Adding a node moves only the partitions where it scores
 * highest (about 1/N of them), removing one only those it held.
 *
 * Reservations.  Every operation reserves its partition: it gets a
 * consistent copy of the partition's replicas and cluster key and holds a
 * count the table can see (partition_reservations) until it releases.
 * Each partition is guarded by a sequence counter (a seqlock): the single
 * rebuilder makes it odd, rewrites the entry, makes it even; a reader
 * copies the entry between two reads of an even, unchanged counter, else
 * copies again.  A reservation is then one atomic increment, two loads of
 * the counter and the copy (tests/unit/test_partition.c measures it: tens
 * of nanoseconds), it never blocks on a rebuild, and a rebuild never waits
 * for readers.  A reservation sees one table's entry for its partition,
 * never a mix of two, and the cluster key tells which table that was;
 * different partitions may briefly come from different tables while a
 * rebuild runs (an operation touches one partition).
 * Rejected: a versioned table swapped by pointer with readers pinning the
 * version (a shared reference count on every operation, bouncing one cache
 * line between all threads, and a table freed only when its last reader
 * leaves); a read-write lock per partition (readers would write the lock
 * and wait for a rebuild).
 *
 * Threads: reserve, release, reservations and summary from any thread;
 * rebuilds are serialised by the table's lock (any thread).
 */
#ifndef RECFS_CLUSTER_PARTITION_H
#define RECFS_CLUSTER_PARTITION_H

#include <stdbool.h>
#include <stdint.h>

#include "../base/digest.h"

/* Replicas a partition can have: replication-factor's bound (configuration.md). */
#define PARTITION_REPLICAS_MAX 32
/* Nodes a succession can have (docs/cluster.md: 64, CLUSTER_NODES_MAX). */
#define PARTITION_NODES_MAX 64

/* This node's role in a partition. */
enum partition_role {
	PARTITION_ROLE_NONE = 0,     /* not one of its replicas */
	PARTITION_ROLE_MASTER = 1,   /* replicas[0] */
	PARTITION_ROLE_PROLE = 2     /* replicas[1..] (Aerospike's "prole") */
};

/*
 * A partition's state on this node, as Aerospike's partition-info letters:
 * SYNC ('S'): a replica with nothing to receive; ABSENT ('A'): not a
 * replica, holds no version; DESIRED ('D'): a replica still receiving
 * (migration, docs/cluster.md "Rebalance and migration"); ZOMBIE ('Z'): not
 * a replica but holding data (it serves or sends until the migration is
 * done, then drops it).
 */
enum partition_state {
	PARTITION_STATE_ABSENT = 0,
	PARTITION_STATE_SYNC = 1,
	PARTITION_STATE_DESIRED = 2,
	PARTITION_STATE_ZOMBIE = 3
};

struct partition_table;

/* A reservation: the copy taken by partition_reserve. */
struct partition_rsv {
	struct partition_table *tbl;   /* for partition_release */
	uint32_t pid;
	uint64_t cluster_key;          /* of the table the entry came from (0: alone, never clustered) */
	uint64_t generation;           /* rebuilds of the table up to that one (1 = the first) */
	uint64_t master;               /* the working master: where operations run (replicas[0]
	                                * unless a migration says otherwise); 0 while the
	                                * rebalance of a change is pending (a held table) */
	uint64_t final_master;         /* replicas[0] */
	unsigned n_replicas;           /* effective replication factor, >= 1 */
	uint64_t replicas[PARTITION_REPLICAS_MAX]; /* the final replicas, final master first */
	bool am_master;                /* this node is the working master */
	bool am_replica;               /* this node is one of replicas[] but not the working
	                                * master (a prole, or a final master still receiving) */
	enum partition_state state;
};

/* What the last rebuild made (partition_table_summary). */
struct partition_summary {
	uint64_t cluster_key;
	uint64_t generation;
	unsigned n_nodes;                  /* in the succession */
	unsigned replication_factor;       /* effective: min(configured, n_nodes) */
	unsigned master_partitions;        /* partitions this node masters */
	unsigned prole_partitions;         /* partitions this node holds as a non-master replica */
};

/*
 * A table for the namespace `name` (copied; used in log lines) with the
 * configured replication factor rf (1..PARTITION_REPLICAS_MAX), built for
 * a cluster of one: self alone, cluster key 0, every partition mastered
 * here, nothing logged.  -EINVAL, -ENOMEM.
 */
int partition_table_create(const char *name, unsigned rf, uint64_t self, struct partition_table **out);
/* Frees it; no reservation may be held. */
void partition_table_destroy(struct partition_table *tbl);

/*
 * A succession's placement, computed once per change and applied to the
 * table of every namespace (the hashing does not depend on the
 * namespace): the nodes, descending, and per partition the first `depth`
 * nodes of its order, as indexes into nodes.  About 128 KiB: keep one
 * (static or allocated once), not on a stack.
 */
struct partition_order {
	unsigned n;                                       /* nodes */
	unsigned depth;                                   /* ranks kept: min(n, depth asked) */
	uint64_t nodes[PARTITION_NODES_MAX];              /* descending */
	uint8_t rank[PARTITION_COUNT][PARTITION_REPLICAS_MAX];
};

/*
 * The placement of a succession (n node ids, 1..PARTITION_NODES_MAX, in
 * any order: they are sorted descending first), keeping the first depth
 * (1..PARTITION_REPLICAS_MAX; the largest replication factor it will be
 * applied to) nodes of each partition.  -EINVAL (n or depth out of range,
 * a duplicate or 0 id).  Allocates nothing: 0.3 ms for 3 nodes, 5 ms for
 * 64 at depth 2.
 */
int partition_order_compute(struct partition_order *o, const uint64_t *succession, unsigned n,
    unsigned depth);

/*
 * Make the table the placement o with the cluster key, for this node's id
 * self.  When nothing differs from the last build (the same succession,
 * key and self) nothing happens; else every partition's entry is rewritten
 * (about 0.1 ms) and one line is logged: "{ns} rebalanced: cluster-key K
 * nodes N replication-factor R master-partitions M prole-partitions P".
 * -EINVAL (o keeps fewer ranks than the table's RF needs): unchanged.
 */
int partition_table_apply(struct partition_table *tbl, uint64_t self, const struct partition_order *o,
    uint64_t cluster_key);

/*
 * A held table (migration runs): every later apply with a cluster key keeps
 * each partition's working master of the last table if that table was a
 * cluster's, the node is still a member and no node joined (it holds the
 * data and serves until the rebalance names one; replica writes already go
 * to the new replicas; a node that joined may hold newer copies), else
 * leaves it without one (rsv.master 0: operations wait)
 * until partition_set_working names it, so no operation runs at a node
 * that may not have the data.  Unheld (the default), the working master is
 * replicas[0] at once.
 */
void partition_table_hold(struct partition_table *tbl, bool hold);

/*
 * The rebalance's outcome for partition pid: its working master wm and this
 * node's state, if the table is still the one of cluster_key (else
 * -ESTALE, nothing changed).  Any thread.
 */
int partition_set_working(struct partition_table *tbl, uint32_t pid, uint64_t cluster_key, uint64_t wm,
    enum partition_state state);

/* partition_order_compute then partition_table_apply, with an order of
 * its own: also -ENOMEM. */
int partition_table_rebuild(struct partition_table *tbl, uint64_t self, const uint64_t *succession,
    unsigned n, uint64_t cluster_key);

/* Reserve partition pid (taken modulo PARTITION_COUNT): *out gets a
 * consistent copy of its entry; release it with partition_release. */
void partition_reserve(struct partition_table *tbl, uint32_t pid, struct partition_rsv *out);
/* Ends the reservation (a NULL tbl in rsv: nothing). */
void partition_release(struct partition_rsv *rsv);
/* Reservations held now on partition pid. */
uint32_t partition_reservations(struct partition_table *tbl, uint32_t pid);

void partition_table_summary(struct partition_table *tbl, struct partition_summary *out);

/* The hashes of the placement, exposed for the unit test. */
uint64_t partition_hash_fnv1a64(const void *data, unsigned len);
uint64_t partition_hash_jenkins64(const void *data, unsigned len);

#endif
