/*
 * partition.c - the partition table of one namespace (partition.h,
 * docs/cluster.md).
 *
 * The table is two arrays indexed by partition id: the entries (sequence
 * counter, reservation count, cluster key, generation, replica count,
 * role, state: 32 bytes) and the replica lists (rf slots of 8 bytes each,
 * rf the configured replication factor, so RF 2 costs 64 KiB per
 * namespace).  Both are written only by the rebuilder, under tbl->lock and
 * the entry's odd sequence counter; every field a reader touches is read
 * and written with the atomics of base/atomic.h (release stores, acquire
 * loads: on x86 plain moves), which orders the counter around the data
 * without fences and keeps the thread sanitizer quiet.
 *
 * Rebuild: the scores of one partition are computed for every node and
 * the best RF picked by selection (RF x N comparisons, at most 32 x 64),
 * then published; no allocation, so a rebuild cannot fail half-way.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/atomic.h"
#include "../base/log.h"
#include "partition.h"

/* Low bits of a score replaced by the node's succession index: log2(64). */
#define SCORE_INDEX_BITS 6
#define SCORE_INDEX_MASK ((1ULL << SCORE_INDEX_BITS) - 1)

_Static_assert(PARTITION_NODES_MAX <= (1 << SCORE_INDEX_BITS), "succession index fits the score's low bits");

struct partition_entry {
	uint32_t seq;              /* even: stable; odd: the rebuilder is rewriting it */
	uint32_t reservations;     /* held now (atomic, any thread) */
	uint64_t cluster_key;      /* the fields below: seq-protected */
	uint64_t generation;
	uint8_t n_replicas;
	uint8_t role;              /* enum partition_role */
	uint8_t state;             /* enum partition_state */
};

struct partition_table {
	char name[64];
	unsigned rf;                       /* configured replication factor: slots per list */
	struct partition_entry *entries;   /* PARTITION_COUNT */
	uint64_t *replicas;                /* PARTITION_COUNT x rf, seq-protected */
	uint64_t hashed_pid[PARTITION_COUNT]; /* FNV-1a-64 of each pid: fixed */

	pthread_mutex_t lock;              /* rebuilds; protects the fields below */
	uint64_t self;
	unsigned n_nodes;
	uint64_t nodes[PARTITION_NODES_MAX]; /* the last build's succession, descending */
	struct partition_summary summary;  /* copied out under lock */
};

/* ---- hashes ----------------------------------------------------------------- */

uint64_t
partition_hash_fnv1a64(const void *data, unsigned len)
{
	const uint8_t *p = data;
	uint64_t h = 0xcbf29ce484222325ULL;

	for (unsigned i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

uint64_t
partition_hash_jenkins64(const void *data, unsigned len)
{
	const uint8_t *p = data;
	uint64_t h = 0;

	for (unsigned i = 0; i < len; i++) {
		h += p[i];
		h += h << 10;
		h ^= h >> 6;
	}
	h += h << 3;
	h ^= h >> 11;
	h += h << 15;
	return h;
}

static void
put_le64(uint8_t *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
hash_u64(uint64_t v)
{
	uint8_t b[8];

	put_le64(b, v);
	return partition_hash_fnv1a64(b, sizeof(b));
}

/* Rendezvous score of the node at succession index i for a partition. */
static uint64_t
score(uint64_t hashed_node, uint64_t hashed_pid, unsigned i)
{
	uint8_t b[16];

	put_le64(b, hashed_node);
	put_le64(b + 8, hashed_pid);
	return (partition_hash_jenkins64(b, sizeof(b)) & ~SCORE_INDEX_MASK) | i;
}

static int
desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x > y ? -1 : x < y;
}

/* ---- create and destroy ------------------------------------------------------ */

int
partition_table_create(const char *name, unsigned rf, uint64_t self, struct partition_table **out)
{
	struct partition_table *t;

	*out = NULL;
	if (rf < 1 || rf > PARTITION_REPLICAS_MAX)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return -ENOMEM;
	t->entries = calloc(PARTITION_COUNT, sizeof(*t->entries));
	t->replicas = calloc((size_t)PARTITION_COUNT * rf, sizeof(*t->replicas));
	if (t->entries == NULL || t->replicas == NULL) {
		free(t->entries);
		free(t->replicas);
		free(t);
		return -ENOMEM;
	}
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->rf = rf;
	pthread_mutex_init(&t->lock, NULL);
	for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++) {
		uint8_t b[4] = { (uint8_t)pid, (uint8_t)(pid >> 8), (uint8_t)(pid >> 16), (uint8_t)(pid >> 24) };

		t->hashed_pid[pid] = partition_hash_fnv1a64(b, sizeof(b));
	}
	/* A cluster of one: everything here.  No other thread sees t yet. */
	t->self = self;
	t->n_nodes = 1;
	t->nodes[0] = self;
	for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++) {
		t->entries[pid].generation = 1;
		t->entries[pid].n_replicas = 1;
		t->entries[pid].role = PARTITION_ROLE_MASTER;
		t->entries[pid].state = PARTITION_STATE_SYNC;
		t->replicas[(size_t)pid * rf] = self;
	}
	t->summary = (struct partition_summary){
		.generation = 1, .n_nodes = 1, .replication_factor = 1,
		.master_partitions = PARTITION_COUNT,
	};
	*out = t;
	return 0;
}

void
partition_table_destroy(struct partition_table *tbl)
{
	if (tbl == NULL)
		return;
	pthread_mutex_destroy(&tbl->lock);
	free(tbl->entries);
	free(tbl->replicas);
	free(tbl);
}

/* ---- rebuild ----------------------------------------------------------------- */

int
partition_table_rebuild(struct partition_table *tbl, uint64_t self, const uint64_t *succession,
    unsigned n, uint64_t cluster_key)
{
	uint64_t nodes[PARTITION_NODES_MAX], hashed[PARTITION_NODES_MAX];
	unsigned rf, masters = 0, proles = 0;
	uint64_t generation;

	if (n < 1 || n > PARTITION_NODES_MAX)
		return -EINVAL;
	memcpy(nodes, succession, n * sizeof(nodes[0]));
	qsort(nodes, n, sizeof(nodes[0]), desc);
	for (unsigned i = 0; i < n; i++)
		if (nodes[i] == 0 || (i > 0 && nodes[i] == nodes[i - 1]))
			return -EINVAL;
	for (unsigned i = 0; i < n; i++)
		hashed[i] = hash_u64(nodes[i]);
	rf = tbl->rf < n ? tbl->rf : n;

	pthread_mutex_lock(&tbl->lock);
	if (tbl->self == self && tbl->n_nodes == n && tbl->summary.cluster_key == cluster_key &&
	    memcmp(tbl->nodes, nodes, n * sizeof(nodes[0])) == 0) {
		pthread_mutex_unlock(&tbl->lock);
		return 0;
	}
	generation = tbl->summary.generation + 1;
	for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++) {
		struct partition_entry *e = &tbl->entries[pid];
		uint64_t *list = &tbl->replicas[(size_t)pid * tbl->rf];
		uint64_t scores[PARTITION_NODES_MAX], pick[PARTITION_REPLICAS_MAX];
		bool taken[PARTITION_NODES_MAX] = { false };
		enum partition_role role = PARTITION_ROLE_NONE;
		uint32_t seq;

		for (unsigned i = 0; i < n; i++)
			scores[i] = score(hashed[i], tbl->hashed_pid[pid], i);
		/* the rf highest scores, highest first (the index bits make them distinct) */
		for (unsigned k = 0; k < rf; k++) {
			unsigned best = n;

			for (unsigned i = 0; i < n; i++)
				if (!taken[i] && (best == n || scores[i] > scores[best]))
					best = i;
			taken[best] = true;
			pick[k] = nodes[best];
			if (nodes[best] == self)
				role = k == 0 ? PARTITION_ROLE_MASTER : PARTITION_ROLE_PROLE;
		}
		masters += role == PARTITION_ROLE_MASTER;
		proles += role == PARTITION_ROLE_PROLE;

		/* publish: odd counter, the entry, even counter (partition.h) */
		seq = atomic_load_relaxed(&e->seq);
		atomic_store_relaxed(&e->seq, seq + 1);
		atomic_store_release(&e->cluster_key, cluster_key);
		atomic_store_release(&e->generation, generation);
		atomic_store_release(&e->n_replicas, (uint8_t)rf);
		atomic_store_release(&e->role, (uint8_t)role);
		atomic_store_release(&e->state, (uint8_t)(role == PARTITION_ROLE_NONE ?
		    PARTITION_STATE_ABSENT : PARTITION_STATE_SYNC));
		for (unsigned k = 0; k < rf; k++)
			atomic_store_release(&list[k], pick[k]);
		atomic_store_release(&e->seq, seq + 2);
	}
	tbl->self = self;
	tbl->n_nodes = n;
	memcpy(tbl->nodes, nodes, n * sizeof(nodes[0]));
	tbl->summary = (struct partition_summary){
		.cluster_key = cluster_key, .generation = generation, .n_nodes = n,
		.replication_factor = rf, .master_partitions = masters, .prole_partitions = proles,
	};
	pthread_mutex_unlock(&tbl->lock);
	log_info("partition", "{%s} rebalanced: cluster-key %016" PRIx64 " nodes %u replication-factor %u "
	    "master-partitions %u prole-partitions %u", tbl->name, cluster_key, n, rf, masters, proles);
	return 0;
}

/* ---- reservations -------------------------------------------------------------- */

void
partition_reserve(struct partition_table *tbl, uint32_t pid, struct partition_rsv *out)
{
	struct partition_entry *e;
	const uint64_t *list;
	unsigned spins = 0;

	pid &= PARTITION_COUNT - 1;
	e = &tbl->entries[pid];
	list = &tbl->replicas[(size_t)pid * tbl->rf];
	atomic_inc(&e->reservations);
	out->tbl = tbl;
	out->pid = pid;
	for (;;) {
		uint32_t seq = atomic_load_acquire(&e->seq);
		unsigned n;
		uint8_t role;

		if (seq & 1) {
			/* the rebuilder is in this entry for a few stores */
			if (++spins % 64 == 0)
				sched_yield();
			continue;
		}
		out->cluster_key = atomic_load_acquire(&e->cluster_key);
		out->generation = atomic_load_acquire(&e->generation);
		n = atomic_load_acquire(&e->n_replicas);
		role = atomic_load_acquire(&e->role);
		out->state = (enum partition_state)atomic_load_acquire(&e->state);
		if (n > tbl->rf)
			n = tbl->rf;   /* a torn read: retried below */
		for (unsigned k = 0; k < n; k++)
			out->replicas[k] = atomic_load_acquire(&list[k]);
		if (atomic_load_relaxed(&e->seq) != seq || n == 0)
			continue;
		out->n_replicas = n;
		out->master = out->replicas[0];
		out->am_master = role == PARTITION_ROLE_MASTER;
		out->am_replica = role == PARTITION_ROLE_PROLE;
		return;
	}
}

void
partition_release(struct partition_rsv *rsv)
{
	if (rsv->tbl == NULL)
		return;
	atomic_dec(&rsv->tbl->entries[rsv->pid].reservations);
	rsv->tbl = NULL;
}

uint32_t
partition_reservations(struct partition_table *tbl, uint32_t pid)
{
	return atomic_load_relaxed(&tbl->entries[pid & (PARTITION_COUNT - 1)].reservations);
}

void
partition_table_summary(struct partition_table *tbl, struct partition_summary *out)
{
	pthread_mutex_lock(&tbl->lock);
	*out = tbl->summary;
	pthread_mutex_unlock(&tbl->lock);
}
