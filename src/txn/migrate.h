/*
 * migrate.h - the exchange of partition versions, the rebalance and the
 * migration of partitions between nodes (migrate.c; docs/cluster.md,
 * "Rebalance and migration").  Private to txn/.
 */
#ifndef RECFS_TXN_MIGRATE_H
#define RECFS_TXN_MIGRATE_H

#include <stdint.h>

struct rpc;
struct node;
struct namespace;
struct recfs_config;
struct txn_migrate;

/* Registers RPC_OP_MIGRATE and RPC_OP_MIGRATE_DATA on rpc (before rpc_start).  cfg is read live
 * (migrate-threads, migrate-max-num-incoming, namespaces' migrate-sleep).
 * -ENOMEM, rpc_handler_set's errors. */
int txn_migrate_create(struct rpc *rpc, uint64_t self, const struct recfs_config *cfg,
    struct txn_migrate **out);
/* Joins its threads (node detached first). */
void txn_migrate_destroy(struct txn_migrate *m);
/* The node whose namespaces migrate (NULL: none; threads stopped, tables
 * no longer held).  Before the first change is given. */
void txn_migrate_attach(struct txn_migrate *m, struct node *node);
/* A succession change clustering installed (after the tables were
 * rebuilt for it): never blocks; the control thread does the rest. */
void txn_migrate_change(struct txn_migrate *m, const uint64_t *succession, unsigned n, uint64_t key);

struct txn_migrate_stats {
	uint64_t partitions_remaining;   /* node: every namespace's tx + rx remaining */
	uint64_t tx_initial, tx_remaining, tx_active;
	uint64_t rx_initial, rx_remaining, rx_active;
	uint64_t records_transmitted, records_received, fresh_partitions;
};

/* ns's migration statistics (and the node's remaining). */
void txn_migrate_values(struct txn_migrate *m, const struct namespace *ns, struct txn_migrate_stats *out);

#endif
