/*
 * network.c - starting and stopping the node's network side: the fabric,
 * the heartbeat and clustering (docs/cluster.md).
 *
 * Only when the configuration names seeds: a node without them is a single
 * node, exactly as before the cluster, and opens no socket.  The daemon
 * calls this through txn.h (fuse/ reaches nothing below the transaction
 * layer); clustering and the data path will hang off the same handle.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "../cluster/cluster.h"
#include "../fabric/fabric.h"
#include "txn_i.h"

struct txn_network {
	struct fabric *fabric;
	struct heartbeat *heartbeat;
	struct clustering *clustering;
	uint8_t secret[FABRIC_SECRET_MAX];
};

/* "host:port" -> "ip:port" (the first address), or -EINVAL. */
static int
seed_resolve(const char *seed, char *out, size_t cap)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai = NULL;
	const char *colon = strrchr(seed, ':');
	char host[256], ip[64];
	int rc = -EINVAL;

	if (colon == NULL || (size_t)(colon - seed) >= sizeof(host))
		return -EINVAL;
	memcpy(host, seed, (size_t)(colon - seed));
	host[colon - seed] = '\0';
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
		return -EINVAL;
	if (ai->ai_family == AF_INET &&
	    inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, ip, sizeof(ip)) != NULL)
		rc = snprintf(out, cap, "%s%s", ip, colon) < (int)cap ? 0 : -EINVAL;
	else if (ai->ai_family == AF_INET6 &&
	    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, ip, sizeof(ip)) != NULL)
		rc = snprintf(out, cap, "[%s]%s", ip, colon) < (int)cap ? 0 : -EINVAL;
	freeaddrinfo(ai);
	return rc;
}

int
txn_network_start(const struct recfs_config *cfg, uint64_t node_id, struct txn_network **out)
{
	struct fabric_config fc = {
		.address = cfg->fabric_address, .port = (uint16_t)cfg->fabric_port,
		.node_id = node_id, .cluster_name = cfg->cluster_name,
	};
	struct heartbeat_config hc = {
		.node_id = node_id, .interval_ms = cfg->heartbeat_interval_ms,
		.timeout_count = cfg->heartbeat_timeout_count,
	};
	struct clustering_config cc = {
		.node_id = node_id, .interval_ms = cfg->heartbeat_interval_ms,
		.timeout_count = cfg->heartbeat_timeout_count,
	};
	struct txn_network *n;
	char address[80];
	unsigned i;
	int rc;

	*out = NULL;
	if (cfg->n_seeds == 0)
		return 0;
	if (node_id == 0) {
		log_error("network", "node id 0 cannot join a cluster; set service.node-id");
		return RECFS_ECONFIG;
	}
	n = calloc(1, sizeof(*n));
	if (n == NULL)
		return -ENOMEM;
	rc = fabric_secret_load(cfg->cluster_secret_file, n->secret, &fc.secret_len);
	if (rc != 0)
		goto fail;
	fc.secret = n->secret;
	rc = fabric_create(&fc, &n->fabric);
	if (rc != 0)
		goto fail;
	snprintf(address, sizeof(address), "%s:%u", cfg->fabric_address, fabric_port(n->fabric));
	hc.fabric = n->fabric;
	hc.address = address;
	rc = heartbeat_create(&hc, &n->heartbeat);
	if (rc != 0)
		goto fail;
	cc.fabric = n->fabric;
	cc.heartbeat = n->heartbeat;
	rc = clustering_create(&cc, &n->clustering);
	if (rc != 0)
		goto fail;
	rc = fabric_start(n->fabric);
	if (rc == 0)
		rc = heartbeat_start(n->heartbeat);
	if (rc == 0)
		rc = clustering_start(n->clustering);
	if (rc != 0) {
		log_error("network", "cannot start the fabric and heartbeat threads: %s", strerror(-rc));
		goto fail;
	}
	for (i = 0; i < cfg->n_seeds; i++) {
		char numeric[80];
		int src = heartbeat_seed_add(n->heartbeat, cfg->seeds[i]);

		/* a host name: resolved once, here (the fabric takes numeric addresses) */
		if (src == -EINVAL && seed_resolve(cfg->seeds[i], numeric, sizeof(numeric)) == 0)
			src = heartbeat_seed_add(n->heartbeat, numeric);
		if (src != 0)
			log_warn("network", "seed '%s': %s; not dialed", cfg->seeds[i],
			    src == -EINVAL ? "cannot resolve it" : strerror(-src));
	}
	log_info("network", "fabric listening on %s, node %016llx, cluster-name %s, %u seeds, "
	    "heartbeat %u ms x %u, quantum %llu ms", address, (unsigned long long)node_id,
	    cfg->cluster_name, cfg->n_seeds, cfg->heartbeat_interval_ms, cfg->heartbeat_timeout_count,
	    (unsigned long long)clustering_quantum_ms(cfg->heartbeat_interval_ms,
	    cfg->heartbeat_timeout_count));
	*out = n;
	return 0;
fail:
	txn_network_stop(n);
	return rc;
}

void
txn_network_cluster(struct txn_network *n, struct txn_cluster *out)
{
	struct cluster_state st;

	_Static_assert(TXN_CLUSTER_NODES_MAX == CLUSTER_NODES_MAX, "one bound of cluster nodes");
	clustering_state_get(n->clustering, &st);
	memset(out, 0, sizeof(*out));
	out->cluster_key = st.cluster_key;
	out->principal = st.principal;
	out->size = st.n;
	memcpy(out->succession, st.succession, st.n * sizeof(st.succession[0]));
	out->integrity = st.integrity;
	out->change_epoch_ms = st.change_epoch_ms;
	snprintf(out->cause, sizeof(out->cause), "%s", st.cause);
	out->changes = st.changes;
	out->proposals = st.proposals;
	out->proposals_aborted = st.proposals_aborted;
}

void
txn_network_stop(struct txn_network *n)
{
	if (n == NULL)
		return;
	if (n->clustering != NULL)
		clustering_stop(n->clustering);
	if (n->heartbeat != NULL)
		heartbeat_stop(n->heartbeat);
	fabric_destroy(n->fabric);
	clustering_destroy(n->clustering);
	heartbeat_destroy(n->heartbeat);
	memset(n->secret, 0, sizeof(n->secret));
	free(n);
}
