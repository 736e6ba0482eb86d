/*
 * txn_i.h - what txn.c and node.c share (private to txn/).
 */
#ifndef RECFS_TXN_TXN_I_H
#define RECFS_TXN_TXN_I_H

#include <pthread.h>

#include "../base/histogram.h"
#include "../namespace/namespace.h"
#include "txn.h"

/*
 * What the transaction layer keeps per namespace beyond struct namespace
 * (which belongs to namespace/): the latency histograms of its operations.
 * Found by the namespace's address in a small registry (txn_ns_extra), so
 * the txn_* functions keep taking just the namespace.
 */
struct txn_ns_extra {
	const struct namespace *ns;
	struct histogram latency[STAT_LAT_NS_COUNT];
};

struct node {
	struct recfs_config *cfg;
	unsigned n_namespaces;
	struct namespace *namespaces[CONFIG_NS_MAX];
	struct txn_ns_extra *extra[CONFIG_NS_MAX];   /* same index as namespaces */
	uint64_t start_ms;           /* epoch ms at open */
	pthread_mutex_t config_lock; /* serializes node_config_set (config_set_text wants one writer) */

	/* The ticker thread (node.c). */
	pthread_t ticker_thread;
	bool ticker_started;
	bool ticker_stop;            /* protected by ticker_lock */
	pthread_mutex_t ticker_lock;
	pthread_cond_t ticker_cv;    /* stop, or ticker-interval changed */

	/* The network side, when seeds are configured (txn_node_network_set). */
	pthread_mutex_t network_lock;
	struct txn_network *network; /* protected by network_lock */
};

/* network.c: the cluster state of a started network. */
void txn_network_cluster(struct txn_network *net, struct txn_cluster *out);
/* network.c: txn_node_fabric_values and txn_node_peers of a started network. */
void txn_network_values(struct txn_network *net, uint64_t *v);
/* network.c: txn_node_fabric_latencies of a started network (NULL: all empty). */
void txn_network_latencies(struct txn_network *net, struct histogram_snapshot *out);
unsigned txn_network_peers(struct txn_network *net, struct txn_peer *out, unsigned max);

/* The extra state of ns, or NULL for a namespace opened outside node_open. */
struct txn_ns_extra *txn_ns_extra(const struct namespace *ns);

/* nsup.c: the namespace supervisor thread. */
int nsup_start(struct namespace *ns);
void nsup_stop(struct namespace *ns);
void nsup_kick(struct namespace *ns);
/* Evaluate stop-writes now (storage_stats, stripe locks), set or lift the
 * flag (logged), and return it. */
bool nsup_stop_writes_check(struct namespace *ns);

/*
 * txn.c: reclaim the record (set_id, d) if, under its record lock, it is
 * still expired at `now` or (evict_below != 0) has a void time before
 * evict_below: a durable delete.  1 = reclaimed, 0 = not (changed
 * meanwhile), < 0 error.
 */
int txn_reclaim(struct namespace *ns, uint16_t set_id, const struct digest *d, uint32_t now,
    uint32_t evict_below);

/*
 * txn.c, at a clean shutdown (no client left): store in its marker each
 * set's mtime and ctime that moved since the marker was written (only
 * markers with metadata: see set_times_settle).  Errors are logged.
 */
void txn_sets_store_times(struct namespace *ns);

#endif
