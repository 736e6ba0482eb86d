/*
 * cluster.h - the cluster layer (docs/cluster.md).
 *
 * Sits on the fabric (and, later, the namespaces) and below txn/.  Today:
 * the mesh heartbeat.  Clustering, the partition map, proxy/replication and
 * migration come in later steps.
 *
 * Heartbeat.  Every interval each node sends a pulse to every node it has
 * an authenticated fabric connection to: its node id, its fabric address,
 * its cluster key and its adjacency list (the nodes it hears, with their
 * fabric addresses).  A node dials every address it learns from a pulse, so
 * one seed is enough for the mesh to become full.  A node is alive from its
 * first pulse and dead after timeout_count intervals without one (a closed
 * connection alone does not kill it: a paused node and a cut link look the
 * same, silence).
 *
 * Threads: one heartbeat thread (pulses and the death check, every
 * interval); pulses are received on the fabric thread.  on_change runs on
 * either, with no heartbeat lock held, and must not block.
 */
#ifndef RECFS_CLUSTER_CLUSTER_H
#define RECFS_CLUSTER_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "../fabric/fabric.h"

/* Nodes a cluster can have (docs/cluster.md: 64). */
#define CLUSTER_NODES_MAX 64

/*
 * Pulse field ids (message FABRIC_MSG_HEARTBEAT).  Wire format: NEVER
 * reuse or renumber an id; a retired field stays here as a comment.
 */
enum heartbeat_field_id {
	HEARTBEAT_FIELD_NODE_ID = 1,        /* u64, must equal the fabric's authenticated id */
	HEARTBEAT_FIELD_ADDRESS = 2,        /* bytes, the sender's fabric "ip:port" */
	HEARTBEAT_FIELD_CLUSTER_KEY = 3,    /* u64, 0 = not in a cluster */
	HEARTBEAT_FIELD_ADJACENCY = 4       /* bytes: per node u64 id, u8 n, n bytes "ip:port" */
};

/* A pulse, decoded (heartbeat_pulse.c). */
struct heartbeat_adjacent {
	uint64_t node_id;
	char address[64];
};

struct heartbeat_pulse {
	uint64_t node_id;
	char address[64];
	uint64_t cluster_key;
	unsigned n_adjacent;
	struct heartbeat_adjacent adjacent[CLUSTER_NODES_MAX];
};

/* Largest encoded pulse. */
#define HEARTBEAT_PULSE_MAX (2 + 4 * 7 + 8 + 64 + 8 + CLUSTER_NODES_MAX * (8 + 1 + 63))

/*
 * 0, or -EBADMSG: a field missing, twice or of the wrong type, an empty or
 * NUL-holding or over-long address, a cut adjacency entry, more than
 * CLUSTER_NODES_MAX adjacent nodes.  Never reads outside m.
 */
int heartbeat_pulse_decode(const struct fabric_msg *m, struct heartbeat_pulse *p);
/* Into buf via w; 0 or -EMSGSIZE. */
int heartbeat_pulse_encode(const struct heartbeat_pulse *p, struct fabric_msg_writer *w, uint8_t *buf,
    size_t cap);

struct heartbeat;

/* A node became alive (first pulse) or dead (timeout_count intervals of silence). */
typedef void (*heartbeat_change_fn)(void *arg, uint64_t node_id, bool alive);

struct heartbeat_config {
	struct fabric *fabric;     /* created, not yet started: the pulse handler is registered */
	uint64_t node_id;          /* the fabric's node id */
	const char *address;       /* this node's fabric address, "ip:port", as peers dial it */
	uint32_t interval_ms;      /* heartbeat.interval-ms */
	uint32_t timeout_count;    /* heartbeat.timeout-count */
	heartbeat_change_fn on_change; /* may be NULL */
	void *arg;
};

/* Registers the pulse handler on the fabric (before fabric_start).
 * -EINVAL for a bad config, -ENOMEM. */
int heartbeat_create(const struct heartbeat_config *cfg, struct heartbeat **out);
/* Starts the heartbeat thread (again after a stop); the fabric may be
 * started before or after. */
int heartbeat_start(struct heartbeat *hb);
/* Stops sending pulses and checking deaths (joins the thread); pulses are
 * still received while the fabric runs. */
void heartbeat_stop(struct heartbeat *hb);
/* Frees it.  Shutdown order: heartbeat_stop, fabric_destroy (no more
 * pulses can arrive), heartbeat_destroy. */
void heartbeat_destroy(struct heartbeat *hb);
/* Dials a seed ("ip:port"); an unreachable one is retried by the fabric. */
int heartbeat_seed_add(struct heartbeat *hb, const char *address);
/* The cluster key carried by this node's pulses (clustering sets it). */
void heartbeat_cluster_key_set(struct heartbeat *hb, uint64_t key);

struct heartbeat_node_info {
	uint64_t node_id;
	char address[64];
	bool alive;
	uint64_t cluster_key;      /* from its last pulse */
	uint64_t age_ms;           /* since its last pulse */
	unsigned n_adjacent;       /* nodes in its last adjacency list */
};

/* Fills up to max known nodes (alive or dead, never this one); returns
 * how many are known. */
unsigned heartbeat_nodes_get(struct heartbeat *hb, struct heartbeat_node_info *out, unsigned max);
/* Alive nodes, this one not counted. */
unsigned heartbeat_alive_count(struct heartbeat *hb);

struct heartbeat_stats {
	uint64_t pulses_sent;       /* pulses queued to connected peers */
	uint64_t pulses_received;   /* well-formed pulses taken */
	uint64_t pulses_malformed;  /* pulses refused (bad fields, id not the sender's) */
	uint64_t arrivals;          /* nodes that became alive */
	uint64_t departures;        /* nodes declared dead (timeout-count missed intervals) */
	uint32_t nodes_known;       /* gauges: other nodes in the table, ... */
	uint32_t nodes_alive;       /* ... and those alive */
};

void heartbeat_stats_get(struct heartbeat *hb, struct heartbeat_stats *s);

#endif
