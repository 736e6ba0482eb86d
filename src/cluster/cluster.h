/*
 * cluster.h - the cluster layer (docs/cluster.md).
 *
 * Sits on the fabric (and, later, the namespaces) and below txn/.  Today:
 * the mesh heartbeat and clustering; the partition table is partition.h.
 * Proxy/replication and migration come in later steps.
 *
 * Heartbeat.  Every interval each node sends a pulse to every node it has
 * an authenticated fabric connection to: its node id, its fabric address,
 * its cluster key and its adjacency list (the nodes it hears, with their
 * fabric addresses).  A node dials every address it learns from a pulse, so
 * one seed is enough for the mesh to become full.  A node is alive from its
 * first pulse and dead after timeout_count intervals without one (a closed
 * connection alone does not kill it: a paused node and a cut link look the
 * same, silence), or at once when its last pulse says it is stopping
 * (heartbeat_leave, a clean stop).
 *
 * Threads: one heartbeat thread (pulses and the death check, every
 * interval, and one pulse at once when a node arrives); pulses are
 * received on the fabric thread.  on_change runs on
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
	HEARTBEAT_FIELD_ADJACENCY = 4,      /* bytes: per node u64 id, u8 n, n bytes "ip:port" */
	HEARTBEAT_FIELD_LEAVING = 5         /* u32, optional: 1 = the sender is stopping (its last
	                                     * pulse); nodes without it read an ordinary pulse */
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
	bool leaving;              /* HEARTBEAT_FIELD_LEAVING: the sender is stopping */
	unsigned n_adjacent;
	struct heartbeat_adjacent adjacent[CLUSTER_NODES_MAX];
};

/* Largest encoded pulse. */
#define HEARTBEAT_PULSE_MAX (2 + 5 * 7 + 8 + 64 + 8 + 4 + CLUSTER_NODES_MAX * (8 + 1 + 63))

/*
 * 0, or -EBADMSG: a field missing, twice or of the wrong type, an empty or
 * NUL-holding or over-long address, a cut adjacency entry, more than
 * CLUSTER_NODES_MAX adjacent nodes, a leaving flag other than 0 or 1.
 * Never reads outside m.
 */
int heartbeat_pulse_decode(const struct fabric_msg *m, struct heartbeat_pulse *p);
/* Into buf via w; 0 or -EMSGSIZE. */
int heartbeat_pulse_encode(const struct heartbeat_pulse *p, struct fabric_msg_writer *w, uint8_t *buf,
    size_t cap);

struct heartbeat;

/* A node became alive (first pulse) or dead (timeout_count intervals of
 * silence, or its notice that it is stopping). */
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
/* A clean stop, after heartbeat_stop and before the fabric closes: sends
 * every connected node a last pulse flagged leaving, so that it declares
 * this node departed at once rather than after the timeout.  Best effort
 * (a notice lost is the timeout again); pulses no more until a start. */
void heartbeat_leave(struct heartbeat *hb);
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
	bool announced;            /* dead by its own notice (age_ms: since the notice) */
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
	uint64_t departures;        /* nodes declared dead (timeout-count missed intervals, or a notice) */
	uint64_t departures_announced; /* ... of them by their notice that they stop */
	uint32_t nodes_known;       /* gauges: other nodes in the table, ... */
	uint32_t nodes_alive;       /* ... and those alive */
};

void heartbeat_stats_get(struct heartbeat *hb, struct heartbeat_stats *s);

/* An alive node as clustering sees it: its last pulse's key and adjacency. */
struct heartbeat_view_node {
	uint64_t node_id;
	uint64_t cluster_key;
	unsigned n_adjacent;
	uint64_t adjacent[CLUSTER_NODES_MAX];
};

/* Fills up to max alive nodes (never this one); returns how many were filled. */
unsigned heartbeat_view_get(struct heartbeat *hb, struct heartbeat_view_node *out, unsigned max);
/* Monotonic time (clock_mono_ns) of the last change of that view: a node
 * arrived or died, or a pulse brought another key or adjacency list; 0
 * before any. */
uint64_t heartbeat_view_changed_ns(struct heartbeat *hb);

/* Tests only: cut (blocked) or heal this node's heartbeat link to node_id:
 * pulses from it are ignored and none are sent to it.  Cutting both ends
 * makes the two nodes dead to each other while the fabric stays up. */
void heartbeat_test_block(struct heartbeat *hb, uint64_t node_id, bool blocked);

/* ---- clustering (clustering.c, clustering_msg.c) ---------------------------- */

/*
 * Clustering message field ids (message FABRIC_MSG_CLUSTERING).  Wire
 * format: NEVER reuse or renumber an id.
 */
enum clustering_field_id {
	CLUSTERING_FIELD_OP = 1,            /* u32 enum clustering_op */
	CLUSTERING_FIELD_PROPOSAL_ID = 2,   /* u64, random, not 0 */
	CLUSTERING_FIELD_CLUSTER_KEY = 3,   /* u64 (PREPARE, COMMIT), not 0 */
	CLUSTERING_FIELD_SUCCESSION = 4     /* bytes (PREPARE): n x u64 node id, descending */
};

/* Operations: numbers are wire format, never renumbered. */
enum clustering_op {
	CLUSTERING_OP_PREPARE = 1,  /* principal -> members: proposal id, key, succession */
	CLUSTERING_OP_ACCEPT = 2,   /* member -> principal: proposal id */
	CLUSTERING_OP_REJECT = 3,   /* member -> principal: proposal id */
	CLUSTERING_OP_COMMIT = 4    /* principal -> members: proposal id, key */
};

struct clustering_msg {
	uint32_t op;
	uint64_t proposal_id;
	uint64_t cluster_key;            /* PREPARE, COMMIT */
	unsigned n;                      /* PREPARE: succession length, 1..CLUSTER_NODES_MAX */
	uint64_t succession[CLUSTER_NODES_MAX];
};

/* Largest encoded clustering message. */
#define CLUSTERING_MSG_MAX (2 + 4 * 7 + 4 + 8 + 8 + CLUSTER_NODES_MAX * 8)

/*
 * 0, or -EBADMSG: another message type, an unknown op, a field missing,
 * twice or of the wrong type, a proposal id or key of 0, a succession
 * that is empty, longer than CLUSTER_NODES_MAX, not a multiple of 8 bytes,
 * not strictly descending or holding node id 0.  Never reads outside m.
 */
int clustering_msg_decode(const struct fabric_msg *m, struct clustering_msg *c);
/* Into buf via w; 0 or -EMSGSIZE / -EINVAL (a message the decoder would refuse). */
int clustering_msg_encode(const struct clustering_msg *c, struct fabric_msg_writer *w, uint8_t *buf,
    size_t cap);

/*
 * Clustering.  Every node computes, from the heartbeat's view, its
 * candidates: itself and the alive nodes that all hear each other
 * (docs/cluster.md: the clique rule).  The candidate with the highest node
 * id is the principal.  When the candidates have not changed for a
 * quantum and differ from the installed succession (or a member shows
 * another cluster key), the principal proposes the succession (the
 * candidates, descending) with a new random cluster key in two phases:
 * PREPARE to every member; every member ACCEPTs; then COMMIT, and each
 * installs (the COMMIT is sent again, every interval for up to 2 quanta,
 * to a member whose pulse does not show the new key).  A member that does
 * not accept in time aborts the proposal, retried after the next quantum;
 * one that answered none of 2 proposals in a row is left out of the
 * principal's proposals for 8 quanta (st->nodes_left_out).  A node whose
 * principal died or left it is an orphan (cluster key 0, size 1) until a
 * principal takes it in or it forms its own cluster.
 */
struct clustering;

enum clustering_role { CLUSTERING_ORPHAN, CLUSTERING_PRINCIPAL, CLUSTERING_MEMBER };

struct cluster_state {
	uint64_t cluster_key;            /* 0: orphan */
	uint64_t principal;              /* 0: orphan */
	enum clustering_role role;
	unsigned n;                      /* 1 for an orphan (itself) */
	uint64_t succession[CLUSTER_NODES_MAX]; /* descending, principal first */
	bool integrity;                  /* every node of the succession is alive (clustering_state_get) */
	uint64_t change_epoch_ms;        /* wall time of the last change */
	char cause[160];                 /* of the last change: "node 00..0b joined", ... */
	uint64_t changes;                /* successions installed (and orphanings) so far */
	uint64_t proposals, proposals_aborted; /* as principal */
	uint64_t nodes_left_out;         /* as principal: members left out for answering no proposal */
};

/*
 * Observer: called once for every change of the installed state (a
 * committed succession and key, or becoming an orphan), in the order they
 * were installed (st->changes counts them), on a fabric or clustering
 * thread with no clustering lock held.  st->integrity is true unless an
 * orphan.  Must not block and must not call clustering_destroy.
 */
typedef void (*clustering_observer_fn)(void *arg, const struct cluster_state *st);

struct clustering_config {
	struct fabric *fabric;        /* created, not yet started */
	struct heartbeat *heartbeat;  /* of the same node */
	uint64_t node_id;
	uint32_t interval_ms;         /* heartbeat.interval-ms */
	uint32_t timeout_count;       /* heartbeat.timeout-count */
};

/* quantum = interval_ms x (timeout_count + 2) (docs/cluster.md). */
uint64_t clustering_quantum_ms(uint32_t interval_ms, uint32_t timeout_count);

/* Registers the message handler (before fabric_start).  -EINVAL, -ENOMEM. */
int clustering_create(const struct clustering_config *cfg, struct clustering **out);
/* Up to 4 observers; -ENOSPC past that.  Before clustering_start. */
int clustering_observer_add(struct clustering *c, clustering_observer_fn fn, void *arg);
int clustering_start(struct clustering *c);
/* Joins the thread; the node keeps its installed state. */
void clustering_stop(struct clustering *c);
/* Shutdown order: clustering_stop, heartbeat_stop, fabric_destroy,
 * clustering_destroy, heartbeat_destroy. */
void clustering_destroy(struct clustering *c);
/* The installed state, integrity computed now. */
void clustering_state_get(struct clustering *c, struct cluster_state *st);
/* Tests only: a muted node receives proposals but never answers them (a
 * member that died mid-proposal, while its pulses still come). */
void clustering_test_mute(struct clustering *c, bool muted);
/* Tests only: the node ignores the next count clustering messages of op
 * (enum clustering_op) it receives, as if lost on the way. */
void clustering_test_drop(struct clustering *c, uint32_t op, unsigned count);

#endif
