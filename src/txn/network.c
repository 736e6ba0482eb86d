/*
 * network.c - starting and stopping the node's network side: the fabric,
 * the heartbeat, clustering and the rpc layer (docs/cluster.md).
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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "../cluster/cluster.h"
#include "../cluster/rpc.h"
#include "../fabric/fabric.h"
#include "migrate.h"
#include "remote.h"
#include "txn_i.h"

struct txn_network {
	struct fabric *fabric;
	struct heartbeat *heartbeat;
	struct clustering *clustering;
	struct rpc *rpc;
	struct txn_remote *remote;   /* the data path's handlers and counters */
	struct txn_sets *sets;        /* sets_cluster.c */
	struct txn_migrate *migrate;  /* migrate.c */
	uint8_t secret[FABRIC_SECRET_MAX];

	/* The node whose partition tables follow the successions (txn_network_attach). */
	pthread_mutex_t attach_lock;  /* the two fields below; before clustering's lock */
	struct node *node;
	int64_t applied;              /* cluster_state.changes last applied, -1: none */
};

/*
 * Clustering's observer (fabric or clustering thread, no clustering lock
 * held): the attached node's partition tables for the installed succession.
 * A change the attach already covered (its state_get saw it or a later
 * one) is skipped, so the tables never go back to an older succession.
 */
static void
network_on_cluster_change(void *arg, const struct cluster_state *st)
{
	struct txn_network *n = arg;

	pthread_mutex_lock(&n->attach_lock);
	if (n->node != NULL && (int64_t)st->changes > n->applied) {
		txn_node_partitions_rebuild(n->node, st->succession, st->n, st->cluster_key);
		txn_migrate_change(n->migrate, st->succession, st->n, st->cluster_key);
		n->applied = (int64_t)st->changes;
	}
	pthread_mutex_unlock(&n->attach_lock);
	txn_sets_changed(n->sets, st->succession, st->n);
}

void
txn_network_attach(struct txn_network *n, struct node *node)
{
	struct cluster_state *st = node != NULL ? malloc(sizeof(*st)) : NULL;

	pthread_mutex_lock(&n->attach_lock);
	n->node = node;
	n->applied = -1;
	txn_remote_node_set(n->remote, node);
	/* Before the tables are rebuilt: held from now on (no working master
	 * until the rebalance names one). */
	txn_migrate_attach(n->migrate, node);
	if (st != NULL) {
		clustering_state_get(n->clustering, st);
		txn_node_partitions_rebuild(node, st->succession, st->n, st->cluster_key);
		txn_migrate_change(n->migrate, st->succession, st->n, st->cluster_key);
		n->applied = (int64_t)st->changes;
	} else if (node != NULL) {
		log_error("network", "out of memory: the partition tables wait for the next cluster change");
	}
	pthread_mutex_unlock(&n->attach_lock);
	txn_sets_attach(n->sets, node);
	free(st);
}

/* The fabric's peer callback (fabric thread): a node gone fails its rpc
 * calls at once instead of at their deadline. */
static void
network_on_peer(void *arg, uint64_t node_id, bool up)
{
	struct txn_network *n = arg;

	rpc_peer_event(n->rpc, node_id, up);
}

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
		.node_id = node_id, .cluster_name = cfg->cluster_name, .on_peer = network_on_peer,
	};
	struct heartbeat_config hc = {
		.node_id = node_id, .interval_ms = cfg->heartbeat_interval_ms,
		.timeout_count = cfg->heartbeat_timeout_count,
	};
	struct clustering_config cc = {
		.node_id = node_id, .interval_ms = cfg->heartbeat_interval_ms,
		.timeout_count = cfg->heartbeat_timeout_count,
	};
	struct rpc_config rc_cfg = {
		.node_id = node_id, .transaction_max_ms = &cfg->transaction_max_ms,
		.workers = TXN_REMOTE_WORKERS,
		/* received migration messages (PARTS) that complete partitions
		 * while a store of the version table runs share the next one:
		 * the more are applied at once, the fewer stores per MB */
		.bulk_workers = TXN_MIGRATE_BULK_WORKERS,
		/* a live node pulses every interval: two without a word is silence */
		.silence_ms = 2 * cfg->heartbeat_interval_ms,
		/* a proxied call's or a replica write's caller reads its answer */
		.lend = true,
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
	pthread_mutex_init(&n->attach_lock, NULL);
	n->applied = -1;
	rc = fabric_secret_load(cfg->cluster_secret_file, n->secret, &fc.secret_len);
	if (rc != 0)
		goto fail;
	fc.secret = n->secret;
	fc.arg = n;
	if (cfg->tls_certificate[0] != '\0') {
		fc.tls_cert_file = cfg->tls_certificate;
		fc.tls_key_file = cfg->tls_key;
		fc.tls_ca_file = cfg->tls_ca;
	}
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
	rc = clustering_observer_add(n->clustering, network_on_cluster_change, n);
	if (rc != 0)
		goto fail;
	rc_cfg.fabric = n->fabric;
	rc = rpc_create(&rc_cfg, &n->rpc);
	if (rc != 0)
		goto fail;
	rc = txn_remote_create(n->rpc, node_id, &cfg->transaction_max_ms,
	    (uint32_t)(cfg->heartbeat_interval_ms * cfg->heartbeat_timeout_count +
	    clustering_quantum_ms(cfg->heartbeat_interval_ms, cfg->heartbeat_timeout_count)),
	    &n->remote);
	if (rc != 0)
		goto fail;
	rc = txn_sets_create(n->rpc, node_id, &n->sets);
	if (rc != 0)
		goto fail;
	rc = txn_migrate_create(n->rpc, node_id, cfg, &n->migrate);
	if (rc != 0)
		goto fail;
	rc = rpc_start(n->rpc);
	if (rc == 0)
		rc = fabric_start(n->fabric);
	if (rc == 0)
		rc = heartbeat_start(n->heartbeat);
	if (rc == 0)
		rc = clustering_start(n->clustering);
	if (rc != 0) {
		log_error("network", "cannot start the fabric, heartbeat and rpc threads: %s", strerror(-rc));
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
	out->nodes_left_out = st.nodes_left_out;
	{
		struct txn_migrate_stats ms;

		txn_migrate_values(n->migrate, NULL, &ms);
		out->migrate_partitions_remaining = ms.partitions_remaining;
	}
}

void
txn_network_migrate_values(struct txn_network *n, const struct namespace *ns, uint64_t v[STAT_NS_COUNT])
{
	struct txn_migrate_stats ms;

	txn_migrate_values(n->migrate, ns, &ms);
	v[STAT_NS_migrate_tx_partitions_initial] = ms.tx_initial;
	v[STAT_NS_migrate_tx_partitions_remaining] = ms.tx_remaining;
	v[STAT_NS_migrate_tx_partitions_active] = ms.tx_active;
	v[STAT_NS_migrate_rx_partitions_initial] = ms.rx_initial;
	v[STAT_NS_migrate_rx_partitions_remaining] = ms.rx_remaining;
	v[STAT_NS_migrate_rx_partitions_active] = ms.rx_active;
	v[STAT_NS_migrate_records_transmitted] = ms.records_transmitted;
	v[STAT_NS_migrate_records_received] = ms.records_received;
	v[STAT_NS_migrate_fresh_partitions] = ms.fresh_partitions;
}

struct txn_sets *
txn_network_sets(struct txn_network *n)
{
	return n->sets;
}

static void
network_stop(struct txn_network *n, bool announce)
{
	if (n == NULL)
		return;
	if (n->clustering != NULL)
		clustering_stop(n->clustering);
	if (n->heartbeat != NULL) {
		/* the others declare this node departed now, not after the
		 * heartbeat timeout (its replicas' writes fail no longer) */
		heartbeat_stop(n->heartbeat);
		if (announce)
			heartbeat_leave(n->heartbeat);
	}
	/* Migration's threads end first; its handlers may still be running
	 * on rpc workers until rpc_stop has joined them (callers waiting on
	 * other nodes fail -ESHUTDOWN, workers finish), so its state goes
	 * only then (TSan saw a handler lock the destroyed mutex). */
	txn_migrate_attach(n->migrate, NULL);
	rpc_stop(n->rpc);
	txn_migrate_destroy(n->migrate);
	txn_sets_destroy(n->sets);
	fabric_destroy(n->fabric);
	rpc_destroy(n->rpc);
	txn_remote_destroy(n->remote);
	clustering_destroy(n->clustering);
	heartbeat_destroy(n->heartbeat);
	memset(n->secret, 0, sizeof(n->secret));
	pthread_mutex_destroy(&n->attach_lock);
	free(n);
}

void
txn_network_stop(struct txn_network *n)
{
	network_stop(n, true);
}

void
txn_network_stop_silently(struct txn_network *n)
{
	network_stop(n, false);
}

void
txn_network_values(struct txn_network *n, uint64_t *v)
{
	struct fabric_stats fs;
	struct heartbeat_stats hs;
	struct rpc_stats rs;

	memset(v, 0, STAT_FABRIC_COUNT * sizeof(*v));
	if (n == NULL)
		return;
	fabric_stats_get(n->fabric, &fs);
	heartbeat_stats_get(n->heartbeat, &hs);
	rpc_stats_get(n->rpc, &rs);
	v[STAT_FABRIC_fabric_sent_bytes] = fs.bytes_sent;
	v[STAT_FABRIC_fabric_received_bytes] = fs.bytes_received;
	v[STAT_FABRIC_fabric_msgs_sent] = fs.msgs_sent;
	v[STAT_FABRIC_fabric_msgs_received] = fs.msgs_received;
	v[STAT_FABRIC_fabric_connects] = fs.connects;
	v[STAT_FABRIC_fabric_connect_failures] = fs.connect_failures;
	v[STAT_FABRIC_fabric_send_queue_full] = fs.send_queue_full;
	v[STAT_FABRIC_fabric_send_queue_dropped] = fs.send_queue_dropped;
	v[STAT_FABRIC_fabric_refused_auth] = fs.refused[FABRIC_REFUSE_AUTH];
	v[STAT_FABRIC_fabric_refused_cluster_name] = fs.refused[FABRIC_REFUSE_CLUSTER_NAME];
	v[STAT_FABRIC_fabric_refused_version] = fs.refused[FABRIC_REFUSE_VERSION];
	v[STAT_FABRIC_fabric_refused_malformed] = fs.refused[FABRIC_REFUSE_MALFORMED];
	v[STAT_FABRIC_fabric_refused_oversized] = fs.refused[FABRIC_REFUSE_OVERSIZED];
	v[STAT_FABRIC_fabric_refused_mac] = fs.refused[FABRIC_REFUSE_MAC];
	v[STAT_FABRIC_fabric_refused_duplicate_node] = fs.refused[FABRIC_REFUSE_DUPLICATE_NODE];
	v[STAT_FABRIC_fabric_refused_timeout] = fs.refused[FABRIC_REFUSE_TIMEOUT];
	v[STAT_FABRIC_fabric_refused_too_many] = fs.refused[FABRIC_REFUSE_TOO_MANY];
	v[STAT_FABRIC_fabric_refused_tls] = fs.refused[FABRIC_REFUSE_TLS];
	v[STAT_FABRIC_fabric_refused_by_peer] = fs.refused_by_peer;
	v[STAT_FABRIC_fabric_closed_ack_timeout] = fs.closed_ack_timeout;
	v[STAT_FABRIC_fabric_peers_connected] = fs.peers_connected;
	v[STAT_FABRIC_heartbeat_pulses_sent] = hs.pulses_sent;
	v[STAT_FABRIC_heartbeat_pulses_received] = hs.pulses_received;
	v[STAT_FABRIC_heartbeat_pulses_malformed] = hs.pulses_malformed;
	v[STAT_FABRIC_heartbeat_arrivals] = hs.arrivals;
	v[STAT_FABRIC_heartbeat_departures] = hs.departures;
	v[STAT_FABRIC_heartbeat_departures_announced] = hs.departures_announced;
	v[STAT_FABRIC_heartbeat_nodes_known] = hs.nodes_known;
	v[STAT_FABRIC_heartbeat_nodes_alive] = hs.nodes_alive;
	v[STAT_FABRIC_rpc_calls] = rs.calls;
	v[STAT_FABRIC_rpc_calls_answered] = rs.calls_answered;
	v[STAT_FABRIC_rpc_calls_timed_out] = rs.calls_timed_out;
	v[STAT_FABRIC_rpc_calls_failed_fast] = rs.calls_failed_fast;
	v[STAT_FABRIC_rpc_calls_failed_silent] = rs.calls_failed_silent;
	v[STAT_FABRIC_rpc_retransmits] = rs.retransmits;
	v[STAT_FABRIC_rpc_late_answers] = rs.late_answers;
	v[STAT_FABRIC_rpc_calls_in_flight] = rs.calls_in_flight;
	v[STAT_FABRIC_rpc_requests_received] = rs.requests_received;
	v[STAT_FABRIC_rpc_requests_duplicate] = rs.requests_duplicate;
	v[STAT_FABRIC_rpc_requests_busy] = rs.requests_busy;
	v[STAT_FABRIC_rpc_requests_expired] = rs.requests_expired;
	v[STAT_FABRIC_rpc_requests_inline] = rs.requests_inline;
	v[STAT_FABRIC_rpc_requests_pending] = rs.requests_pending;
	v[STAT_FABRIC_rpc_calls_async] = rs.calls_async;
	v[STAT_FABRIC_rpc_requests_in_progress] = rs.requests_in_progress;
	v[STAT_FABRIC_rpc_requests_kept] = rs.requests_kept;
	v[STAT_FABRIC_rpc_msgs_malformed] = rs.msgs_malformed;
	v[STAT_FABRIC_rpc_requests_stale] = rs.requests_stale;
	v[STAT_FABRIC_rpc_calls_peer_restarted] = rs.calls_peer_restarted;
	txn_remote_values(n->remote, v);
}

struct txn_remote *
txn_network_remote(struct txn_network *n)
{
	return n->remote;
}

struct rpc *
txn_network_rpc(struct txn_network *n)
{
	return n->rpc;
}

void
txn_network_latencies(struct txn_network *n, struct histogram_snapshot *out)
{
	memset(out, 0, STAT_LAT_FABRIC_COUNT * sizeof(*out));
	if (n == NULL)
		return;
	rpc_latency_get(n->rpc, &out[STAT_LAT_FABRIC_rpc]);
}

#define PEERS_MAX (2 * CLUSTER_NODES_MAX + FABRIC_DIALERS_MAX)

static int
peer_cmp(const void *a, const void *b)
{
	const struct txn_peer *x = a, *y = b;

	return x->node_id < y->node_id ? -1 : x->node_id > y->node_id;
}

/* The entry of node_id in out[0..*n), added if absent (NULL when full). */
static struct txn_peer *
peer_entry(struct txn_peer *out, unsigned *n, unsigned max, uint64_t node_id)
{
	for (unsigned i = 0; i < *n; i++)
		if (out[i].node_id == node_id)
			return &out[i];
	if (*n >= max)
		return NULL;
	memset(&out[*n], 0, sizeof(out[*n]));
	out[*n].node_id = node_id;
	return &out[(*n)++];
}

unsigned
txn_network_peers(struct txn_network *n, struct txn_peer *out, unsigned max)
{
	struct heartbeat_node_info *hb;
	struct fabric_peer_info *fp;
	struct txn_peer *all, *e;
	unsigned n_hb, n_fp, n_all = 0;

	if (n == NULL)
		return 0;
	hb = calloc(PEERS_MAX, sizeof(*hb));
	fp = calloc(PEERS_MAX, sizeof(*fp));
	all = calloc(PEERS_MAX, sizeof(*all));
	if (hb == NULL || fp == NULL || all == NULL) {
		free(hb);
		free(fp);
		free(all);
		return 0;
	}
	n_hb = heartbeat_nodes_get(n->heartbeat, hb, PEERS_MAX);
	n_fp = fabric_peers_get(n->fabric, fp, PEERS_MAX);
	for (unsigned i = 0; i < n_hb && i < PEERS_MAX; i++) {
		e = peer_entry(all, &n_all, PEERS_MAX, hb[i].node_id);
		if (e == NULL)
			break;
		snprintf(e->address, sizeof(e->address), "%s", hb[i].address);
		e->heard = true;
		e->alive = hb[i].alive;
		e->age_ms = hb[i].age_ms;
	}
	for (unsigned i = 0; i < n_fp && i < PEERS_MAX; i++) {
		e = peer_entry(all, &n_all, PEERS_MAX, fp[i].node_id);
		if (e == NULL)
			break;
		if (e->address[0] == '\0')
			snprintf(e->address, sizeof(e->address), "%s", fp[i].address);
		e->connected = fp[i].connected;
		e->bytes_sent = fp[i].bytes_sent;
		e->bytes_received = fp[i].bytes_received;
		e->msgs_sent = fp[i].msgs_sent;
		e->msgs_received = fp[i].msgs_received;
		e->connects = fp[i].connects;
		e->auth_failures = fp[i].auth_failures;
		e->queued_bytes = fp[i].queued_bytes;
	}
	qsort(all, n_all, sizeof(*all), peer_cmp);
	memcpy(out, all, (n_all < max ? n_all : max) * sizeof(*out));
	free(hb);
	free(fp);
	free(all);
	return n_all;
}
