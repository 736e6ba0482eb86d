/*
 * rebalance.h - partition versions and the rebalance of one partition
 * (docs/cluster.md, "Rebalance and migration").
 *
 * A partition version is 64 bits, after Aerospike's:
 *
 *   bits 63..16  the low 48 bits of the cluster key of the change at which
 *                the version last advanced (0 with data: stored as 1)
 *   bit 1        subset: the copy may miss records (a node restarted or
 *                orphaned, a receiver still filling); clear = full
 *   bit 0        master: the copy was the working master's
 *
 * The null version (0) means "no data".  A node that restarts, or becomes
 * an orphan, isolates every version it holds (pversion_isolate: subset,
 * not master), so an old copy is never trusted as complete.
 *
 * rebalance_partition() is a pure function: every node runs it on the same
 * inputs (the versions every member sent in the exchange, the placement of
 * the succession) and gets the same plan, so no node has to tell another
 * what to do.  Rules (the table of tests/unit/test_rebalance.c):
 *   - no node has data: a fresh partition; every replica takes the final
 *     version (new key, full, master on the final master) at once;
 *   - else the working master (WM) is the node with the best version (full
 *     master > full > subset), ties to the replicas in sequence order, then
 *     the other nodes by succession index; a replica earlier in the
 *     sequence holding the same full version takes its place (so the final
 *     master serves at once when it already has the data);
 *   - duplicates: every other node with data whose version is not the WM's
 *     (ignoring the master bit): a copy that may hold records the WM lacks;
 *   - sources = WM + duplicates; receivers = every replica when there are
 *     duplicates, else the replicas whose version is not the WM's; a
 *     receiver expects one migration from every source but itself, a
 *     source sends to every receiver but itself;
 *   - no receiver: the replicas take the final version, non-replicas drop
 *     their copies at once;
 *   - else the WM takes (new key, full, master), receivers take a subset
 *     version of the new key (they fill), non-replicas that hold the WM's
 *     version are in drop_now (nothing there the WM lacks; the caller
 *     keeps them until the WM's copy has reached every receiver);
 *     a receiver that has received from all its sources takes the final
 *     version, a non-replica source drops its copy once it has sent to
 *     all its receivers and is no longer the WM.
 */
#ifndef RECFS_CLUSTER_REBALANCE_H
#define RECFS_CLUSTER_REBALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "partition.h"

#define PVERSION_MASTER 0x1ULL
#define PVERSION_SUBSET 0x2ULL
#define PVERSION_KEY_SHIFT 16

/* The version (cluster key, master, subset); never 0. */
uint64_t pversion_make(uint64_t cluster_key, bool master, bool subset);
static inline bool
pversion_has_data(uint64_t v)
{
	return (v >> PVERSION_KEY_SHIFT) != 0;
}
static inline bool
pversion_full(uint64_t v)
{
	return pversion_has_data(v) && !(v & PVERSION_SUBSET);
}
/* Restart or orphan: subset, not master (null stays null). */
uint64_t pversion_isolate(uint64_t v);
/* "0b1c2d3e4f50.mp" (m or -, then s subset or p full); "null" for 0.
 * buf holds at least 24 bytes. */
void pversion_format(uint64_t v, char *buf, size_t cap);

/* A node set: bit i = node index i of the succession (descending ids). */
typedef uint64_t rebalance_nodes;

struct rebalance_in {
	uint64_t cluster_key;            /* the new one */
	unsigned n;                      /* nodes in the succession, 1..PARTITION_NODES_MAX */
	unsigned rf;                     /* effective replication factor, 1..min(n, RF max) */
	const uint8_t *sequence;         /* the partition's first rf node indexes, master first */
	const uint64_t *versions;        /* [n]: each node's version of the partition */
};

struct rebalance_out {
	bool fresh;                      /* no node had data */
	unsigned working_master;         /* node index */
	rebalance_nodes replicas;        /* the final replicas */
	rebalance_nodes sources;         /* send to every receiver but themselves */
	rebalance_nodes receivers;       /* receive from every source but themselves */
	rebalance_nodes drop_now;        /* non-replicas that drop their copy now */
	uint64_t versions[PARTITION_NODES_MAX]; /* each node's version from now on */
};

/* The plan of one partition.  -EINVAL for inputs out of range. */
int rebalance_partition(const struct rebalance_in *in, struct rebalance_out *out);

/* Nodes in a set. */
static inline unsigned
rebalance_count(rebalance_nodes s)
{
	return (unsigned)__builtin_popcountll(s);
}

/* Migrations node i takes part in: as a receiver (one per source but
 * itself), as a source (one per receiver but itself). */
unsigned rebalance_rx(const struct rebalance_out *o, unsigned i);
unsigned rebalance_tx(const struct rebalance_out *o, unsigned i);

/* The version a node takes when its immigrations of the partition are
 * done: full, of the new key, master when it is the final master. */
uint64_t rebalance_final_version(uint64_t cluster_key, bool final_master);

#endif
