/*
 * txn_i.h - what txn.c and node.c share (private to txn/).
 */
#ifndef RECFS_TXN_TXN_I_H
#define RECFS_TXN_TXN_I_H

#include "../namespace/namespace.h"
#include "txn.h"

struct node {
	struct recfs_config *cfg;
	unsigned n_namespaces;
	struct namespace *namespaces[CONFIG_NS_MAX];
	uint64_t start_ms;           /* epoch ms at open */
};

#endif
