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
 * Placement (partition_order_compute): per partition the score of every
 * node, then the best `depth` by selection (depth x N comparisons) or,
 * deeper than 8, an insertion sort of all N (about N^2/4); once per
 * succession change for all namespaces, since the hashes do not depend on
 * the namespace.  Applying it to a table copies RF node ids per partition
 * and publishes them; nothing is allocated, so an apply cannot fail
 * half-way.
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
	uint64_t working;          /* the working master, 0: rebalance pending */
	uint8_t n_replicas;
	uint8_t role;              /* enum partition_role */
	uint8_t state;             /* enum partition_state */
};

struct partition_table {
	char name[64];
	unsigned rf;                       /* configured replication factor: slots per list */
	struct partition_entry *entries;   /* PARTITION_COUNT */
	uint64_t *replicas;                /* PARTITION_COUNT x rf, seq-protected */

	pthread_mutex_t lock;              /* rebuilds; protects the fields below */
	bool hold;                         /* partition_table_hold */
	uint64_t self_id;                  /* self, read by reservations (atomic) */
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
	/* A cluster of one: everything here.  No other thread sees t yet. */
	t->self = self;
	t->self_id = self;
	t->n_nodes = 1;
	t->nodes[0] = self;
	for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++) {
		t->entries[pid].generation = 1;
		t->entries[pid].working = self;
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

/* ---- placement and rebuild -------------------------------------------------- */

int
partition_order_compute(struct partition_order *o, const uint64_t *succession, unsigned n,
    unsigned depth)
{
	uint64_t hashed[PARTITION_NODES_MAX];

	if (n < 1 || n > PARTITION_NODES_MAX || depth < 1 || depth > PARTITION_REPLICAS_MAX)
		return -EINVAL;
	memcpy(o->nodes, succession, n * sizeof(o->nodes[0]));
	qsort(o->nodes, n, sizeof(o->nodes[0]), desc);
	for (unsigned i = 0; i < n; i++)
		if (o->nodes[i] == 0 || (i > 0 && o->nodes[i] == o->nodes[i - 1]))
			return -EINVAL;
	for (unsigned i = 0; i < n; i++)
		hashed[i] = hash_u64(o->nodes[i]);
	o->n = n;
	o->depth = depth < n ? depth : n;
	for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++) {
		uint8_t b[4] = { (uint8_t)pid, (uint8_t)(pid >> 8), (uint8_t)(pid >> 16), (uint8_t)(pid >> 24) };
		uint64_t hashed_pid = partition_hash_fnv1a64(b, sizeof(b));
		uint64_t scores[PARTITION_NODES_MAX];
		uint8_t idx[PARTITION_NODES_MAX];

		for (unsigned i = 0; i < n; i++) {
			scores[i] = score(hashed[i], hashed_pid, i);
			idx[i] = (uint8_t)i;
		}
		/* highest scores first (the index bits make them distinct): the
		 * first depth by selection, or all by insertion when deep */
		if (o->depth <= 8) {
			for (unsigned k = 0; k < o->depth; k++) {
				unsigned best = k;

				for (unsigned i = k + 1; i < n; i++)
					if (scores[idx[i]] > scores[idx[best]])
						best = i;
				uint8_t t = idx[k];
				idx[k] = idx[best];
				idx[best] = t;
			}
		} else {
			for (unsigned i = 1; i < n; i++)
				for (unsigned j = i; j > 0 && scores[idx[j]] > scores[idx[j - 1]]; j--) {
					uint8_t t = idx[j];
					idx[j] = idx[j - 1];
					idx[j - 1] = t;
				}
		}
		memcpy(o->rank[pid], idx, o->depth);
	}
	return 0;
}

/*
 * The working master of an entry in a new table: the final master when the
 * table is not held or the node is alone; held, the last table's working
 * master while it is still a member, that table was a cluster's and no
 * node joined (it holds the data: it serves until the rebalance names
 * one), else none.  A node that joined may hold newer copies than the
 * last working master (the other side of a healed split, a node back from
 * isolation that served alone): kept, each side's last master went on
 * serving its own side's copy, and a delete of a record written on the
 * other side during the split answered ENOENT (split schedule, ASan).
 */
static uint64_t
working_after(const struct partition_table *tbl, const struct partition_entry *e,
    const struct partition_order *o, uint64_t cluster_key, uint64_t prev_key, bool joined,
    uint64_t final_master)
{
	uint64_t w;

	if (!tbl->hold || cluster_key == 0)
		return final_master;
	w = atomic_load_relaxed(&e->working);
	if (prev_key == 0 || w == 0 || joined)
		return 0;
	for (unsigned i = 0; i < o->n; i++)
		if (o->nodes[i] == w)
			return w;
	return 0;
}

int
partition_table_apply(struct partition_table *tbl, uint64_t self, const struct partition_order *o,
    uint64_t cluster_key)
{
	unsigned n = o->n, rf = tbl->rf < n ? tbl->rf : n, masters = 0, proles = 0;
	uint64_t generation, prev_key;
	bool joined = false;

	if (n < 1 || n > PARTITION_NODES_MAX || o->depth < rf)
		return -EINVAL;
	pthread_mutex_lock(&tbl->lock);
	if (tbl->self == self && tbl->n_nodes == n && tbl->summary.cluster_key == cluster_key &&
	    memcmp(tbl->nodes, o->nodes, n * sizeof(o->nodes[0])) == 0) {
		pthread_mutex_unlock(&tbl->lock);
		return 0;
	}
	prev_key = tbl->summary.cluster_key;
	generation = tbl->summary.generation + 1;
	for (unsigned i = 0; i < n && !joined; i++) {
		bool known = false;

		for (unsigned j = 0; j < tbl->n_nodes && !known; j++)
			known = tbl->nodes[j] == o->nodes[i];
		joined = !known;
	}
	atomic_store_relaxed(&tbl->self_id, self);
	for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++) {
		struct partition_entry *e = &tbl->entries[pid];
		uint64_t *list = &tbl->replicas[(size_t)pid * tbl->rf];
		enum partition_role role = PARTITION_ROLE_NONE;
		uint32_t seq;

		for (unsigned k = 0; k < rf; k++)
			if (o->nodes[o->rank[pid][k]] == self)
				role = k == 0 ? PARTITION_ROLE_MASTER : PARTITION_ROLE_PROLE;
		masters += role == PARTITION_ROLE_MASTER;
		proles += role == PARTITION_ROLE_PROLE;

		/* publish: odd counter, the entry, even counter (partition.h) */
		seq = atomic_load_relaxed(&e->seq);
		atomic_store_relaxed(&e->seq, seq + 1);
		atomic_store_release(&e->cluster_key, cluster_key);
		atomic_store_release(&e->generation, generation);
		atomic_store_release(&e->working, working_after(tbl, e, o, cluster_key, prev_key, joined,
		    o->nodes[o->rank[pid][0]]));
		atomic_store_release(&e->n_replicas, (uint8_t)rf);
		atomic_store_release(&e->role, (uint8_t)role);
		atomic_store_release(&e->state, (uint8_t)(role == PARTITION_ROLE_NONE ?
		    PARTITION_STATE_ABSENT : PARTITION_STATE_SYNC));
		for (unsigned k = 0; k < rf; k++)
			atomic_store_release(&list[k], o->nodes[o->rank[pid][k]]);
		atomic_store_release(&e->seq, seq + 2);
	}
	tbl->self = self;
	tbl->n_nodes = n;
	memcpy(tbl->nodes, o->nodes, n * sizeof(o->nodes[0]));
	tbl->summary = (struct partition_summary){
		.cluster_key = cluster_key, .generation = generation, .n_nodes = n,
		.replication_factor = rf, .master_partitions = masters, .prole_partitions = proles,
	};
	pthread_mutex_unlock(&tbl->lock);
	log_info("partition", "{%s} rebalanced: cluster-key %016" PRIx64 " nodes %u replication-factor %u "
	    "master-partitions %u prole-partitions %u", tbl->name, cluster_key, n, rf, masters, proles);
	return 0;
}

void
partition_table_hold(struct partition_table *tbl, bool hold)
{
	pthread_mutex_lock(&tbl->lock);
	tbl->hold = hold;
	pthread_mutex_unlock(&tbl->lock);
}

int
partition_set_working(struct partition_table *tbl, uint32_t pid, uint64_t cluster_key, uint64_t wm,
    enum partition_state state)
{
	struct partition_entry *e = &tbl->entries[pid & (PARTITION_COUNT - 1)];
	uint32_t seq;
	int rc = -ESTALE;

	pthread_mutex_lock(&tbl->lock);
	if (tbl->summary.cluster_key == cluster_key) {
		seq = atomic_load_relaxed(&e->seq);
		atomic_store_relaxed(&e->seq, seq + 1);
		atomic_store_release(&e->working, wm);
		atomic_store_release(&e->state, (uint8_t)state);
		atomic_store_release(&e->seq, seq + 2);
		rc = 0;
	}
	pthread_mutex_unlock(&tbl->lock);
	return rc;
}

int
partition_table_rebuild(struct partition_table *tbl, uint64_t self, const uint64_t *succession,
    unsigned n, uint64_t cluster_key)
{
	struct partition_order *o = malloc(sizeof(*o));
	int rc;

	if (o == NULL)
		return -ENOMEM;
	rc = partition_order_compute(o, succession, n, tbl->rf);
	if (rc == 0)
		rc = partition_table_apply(tbl, self, o, cluster_key);
	free(o);
	return rc;
}

/* ---- reservations -------------------------------------------------------------- */

void
partition_reserve(struct partition_table *tbl, uint32_t pid, struct partition_rsv *out)
{
	struct partition_entry *e;
	const uint64_t *list;
	unsigned spins = 0;
	uint64_t self = atomic_load_relaxed(&tbl->self_id);

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
		out->master = atomic_load_acquire(&e->working);
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
		out->final_master = out->replicas[0];
		out->am_master = out->master != 0 && out->master == self;
		out->am_replica = role != PARTITION_ROLE_NONE && !out->am_master;
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
