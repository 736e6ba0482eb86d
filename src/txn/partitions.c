/*
 * partitions.c - the node's partition tables, one per namespace
 * (cluster/partition.h, docs/cluster.md "Partitions").
 *
 * A table is created with its namespace (node_open) for a cluster of one:
 * this node alone, every partition mastered here, RF 1.  It is rebuilt
 * when the node learns its id (txn_node_id_set), when a network is
 * attached or detached, and at every succession change clustering
 * installs (network.c's observer, on a fabric or clustering thread).
 * Rebuilds are serialised by partitions_lock, so two callers cannot
 * interleave their namespaces; the placement is computed once per change
 * into one static order (128 KiB) and applied to every namespace.  The
 * network side drops a change older than one already applied (network.c).
 *
 * The table hangs off the namespace's struct txn_namespace (txn_i.h), so
 * the txn_* calls that take a namespace find it without the node.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "../base/atomic.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "../cluster/partition.h"
#include "txn_i.h"

_Static_assert(TXN_REPLICAS_MAX == PARTITION_REPLICAS_MAX, "one bound of replicas");

static pthread_mutex_t partitions_lock = PTHREAD_MUTEX_INITIALIZER; /* rebuilds of all nodes */
static struct partition_order order;   /* protected by partitions_lock: the last computed */

int
txn_partitions_open(struct node *node, unsigned i)
{
	struct namespace *ns = node->namespaces[i];

	return partition_table_create(ns->name, ns->cfg->replication_factor,
	    atomic_load_relaxed(&node->node_id),
	    &txn_namespace_of(ns)->partitions);
}

void
txn_partitions_close(struct txn_namespace *x)
{
	partition_table_destroy(x->partitions);
	x->partitions = NULL;
}

void
txn_node_partitions_rebuild(struct node *node, const uint64_t *succession, unsigned n, uint64_t key)
{
	uint64_t self = atomic_load_relaxed(&node->node_id);
	unsigned depth = 1;
	int rc;

	/* One placement for every namespace, as deep as the largest RF. */
	for (unsigned i = 0; i < node->n_namespaces; i++)
		if (node->namespaces[i]->cfg->replication_factor > depth)
			depth = node->namespaces[i]->cfg->replication_factor;
	pthread_mutex_lock(&partitions_lock);
	rc = partition_order_compute(&order, succession, n, depth);
	if (rc != 0)
		log_error("partition", "cannot place partitions on a succession of %u nodes: %s", n,
		    recfs_strerror(rc));
	for (unsigned i = 0; rc == 0 && i < node->n_namespaces; i++) {
		struct partition_table *t = txn_namespace_of(node->namespaces[i])->partitions;
		int arc = t != NULL ? partition_table_apply(t, self, &order, key) : 0;

		if (arc != 0)
			log_error("partition", "{%s} cannot rebuild the partition table for %u nodes: %s",
			    node->namespaces[i]->name, n, recfs_strerror(arc));
	}
	pthread_mutex_unlock(&partitions_lock);
	/* Operations waiting for a cluster or for a new table go on. */
	for (unsigned i = 0; i < node->n_namespaces; i++) {
		struct txn_namespace *x = txn_namespace_of(node->namespaces[i]);

		pthread_mutex_lock(&x->table_lock);
		pthread_cond_broadcast(&x->table_cv);
		pthread_mutex_unlock(&x->table_lock);
	}
}

int
txn_partition_wait_change(struct namespace *ns, uint32_t pid, uint64_t key, uint64_t deadline_ns)
{
	struct txn_namespace *x = txn_namespace_of(ns);
	struct partition_rsv r;
	int rc = -ETIMEDOUT;

	pthread_mutex_lock(&x->table_lock);
	for (;;) {
		struct timespec ts;

		/* Read under table_lock: a rebuild's broadcast comes after its
		 * table is written, so none is missed between check and wait. */
		partition_reserve(x->partitions, pid, &r);
		partition_release(&r);
		if (r.cluster_key != 0 && r.cluster_key != key) {
			rc = 0;
			break;
		}
		if (clock_mono_ns() >= deadline_ns)
			break;
		ts.tv_sec = (time_t)(deadline_ns / 1000000000u);
		ts.tv_nsec = (long)(deadline_ns % 1000000000u);
		pthread_cond_timedwait(&x->table_cv, &x->table_lock, &ts);
	}
	pthread_mutex_unlock(&x->table_lock);
	return rc;
}

int
txn_partition_wait_working(struct namespace *ns, uint32_t pid, uint64_t not_master, uint64_t deadline_ns)
{
	struct txn_namespace *x = txn_namespace_of(ns);
	struct partition_rsv r;
	int rc = -ETIMEDOUT;

	pthread_mutex_lock(&x->table_lock);
	for (;;) {
		struct timespec ts;

		partition_reserve(x->partitions, pid, &r);
		partition_release(&r);
		if (r.cluster_key != 0 && r.master != 0 && r.master != not_master) {
			rc = 0;
			break;
		}
		if (clock_mono_ns() >= deadline_ns)
			break;
		ts.tv_sec = (time_t)(deadline_ns / 1000000000u);
		ts.tv_nsec = (long)(deadline_ns % 1000000000u);
		pthread_cond_timedwait(&x->table_cv, &x->table_lock, &ts);
	}
	pthread_mutex_unlock(&x->table_lock);
	return rc;
}

void
txn_partitions_changed(struct namespace *ns)
{
	struct txn_namespace *x = txn_namespace_of(ns);

	pthread_mutex_lock(&x->table_lock);
	pthread_cond_broadcast(&x->table_cv);
	pthread_mutex_unlock(&x->table_lock);
}

void
txn_node_id_set(struct node *node, uint64_t node_id)
{
	bool networked;

	pthread_mutex_lock(&node->network_lock);
	atomic_store_relaxed(&node->node_id, node_id);
	networked = node->network != NULL;
	pthread_mutex_unlock(&node->network_lock);
	/* With a network, clustering names the nodes (txn_node_network_set). */
	if (!networked && node_id != 0)
		txn_node_partitions_rebuild(node, &node_id, 1, 0);
}

int
txn_partition_get(struct namespace *ns, uint32_t pid, struct txn_partition *out)
{
	struct txn_namespace *x = txn_namespace_of(ns);
	struct partition_rsv r;

	if (x == NULL || x->partitions == NULL)
		return -ENOENT;
	partition_reserve(x->partitions, pid, &r);
	out->cluster_key = r.cluster_key;
	out->master = r.master;
	out->n_replicas = r.n_replicas;
	memcpy(out->replicas, r.replicas, r.n_replicas * sizeof(r.replicas[0]));
	out->am_master = r.am_master;
	out->am_replica = r.am_replica;
	out->state = "SADZ"[r.state == PARTITION_STATE_SYNC ? 0 : r.state == PARTITION_STATE_DESIRED ? 2 :
	    r.state == PARTITION_STATE_ZOMBIE ? 3 : 1];
	partition_release(&r);
	return 0;
}

void
txn_partition_values(const struct namespace *ns, uint64_t v[STAT_NS_COUNT])
{
	struct txn_namespace *x = txn_namespace_of(ns);
	struct partition_summary s = {
		.replication_factor = 1, .master_partitions = PARTITION_COUNT,  /* alone */
	};

	if (x != NULL && x->partitions != NULL)
		partition_table_summary(x->partitions, &s);
	v[STAT_NS_effective_replication_factor] = s.replication_factor;
	v[STAT_NS_master_partitions] = s.master_partitions;
	v[STAT_NS_prole_partitions] = s.prole_partitions;
	/* A node without a network migrates nothing. */
	v[STAT_NS_migrate_tx_partitions_initial] = v[STAT_NS_migrate_tx_partitions_remaining] = 0;
	v[STAT_NS_migrate_tx_partitions_active] = v[STAT_NS_migrate_rx_partitions_initial] = 0;
	v[STAT_NS_migrate_rx_partitions_remaining] = v[STAT_NS_migrate_rx_partitions_active] = 0;
	v[STAT_NS_migrate_records_transmitted] = v[STAT_NS_migrate_records_received] = 0;
	v[STAT_NS_migrate_fresh_partitions] = 0;
	if (x != NULL && x->node != NULL) {
		pthread_mutex_lock(&x->node->network_lock);
		if (x->node->network != NULL)
			txn_network_migrate_values(x->node->network, ns, v);
		pthread_mutex_unlock(&x->node->network_lock);
	}
}
