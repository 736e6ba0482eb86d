/*
 * txn_i.h - what txn.c and node.c share (private to txn/).
 */
#ifndef RECFS_TXN_TXN_I_H
#define RECFS_TXN_TXN_I_H

#include <pthread.h>

#include "../base/histogram.h"
#include "../namespace/namespace.h"
#include "remote.h"   /* struct txn_op_id */
#include "txn.h"

/*
 * What the transaction layer keeps per namespace beyond struct namespace
 * (which belongs to namespace/): the latency histograms of its operations,
 * nsup's state, and the partition table.  node_open
 * allocates one per namespace and hangs it on the namespace's owner
 * pointer, so every txn_* function finds it with one load
 * (txn_namespace_of) while still taking just the namespace; node_close
 * frees it once the namespace's threads have stopped.
 * Rejected: a registry keyed by the namespace's address (a scan and a
 * global lock for what one pointer does); a global array by config index
 * (two nodes in one process, as in tests, would share it).
 */
struct partition_table;

struct txn_namespace {
	struct histogram latency[STAT_LAT_NS_COUNT];  /* first: 64-byte aligned shards */

	/* nsup (nsup.c): expiration, eviction, stop-writes. */
	bool stop_writes;                   /* atomic: writes fail with ENOSPC */
	uint64_t stop_writes_checked_ns;    /* atomic: the write path's last full test
	                                     * for stop-writes-avail-pct (txn.c) */
	bool hwm_breached;                  /* atomic: used space above evict-used-pct */
	uint32_t evict_void_time;           /* atomic: last eviction threshold (void time) */
	uint64_t nsup_cycle_ms;             /* atomic: duration of the last pass */
	pthread_t nsup_thread;
	bool nsup_started;
	bool nsup_stop;                     /* atomic; nsup_lock for the wake-up */
	pthread_mutex_t nsup_lock;
	pthread_cond_t nsup_cv;

	/* The partition table (partitions.c): created at open, rebuilt at
	 * every succession change. */
	struct partition_table *partitions;
	/* Signalled at every rebuild of the table: an operation waiting for
	 * a cluster (an orphan) or for a table without a dead node
	 * (txn_partition_wait_change) wakes up. */
	pthread_mutex_t table_lock;
	pthread_cond_t table_cv;             /* CLOCK_MONOTONIC */

	/* The data path to other nodes (remote.c) while a network is
	 * attached, else NULL (atomic): a single node reads one NULL pointer
	 * per operation and nothing else of the cluster. */
	struct txn_remote *remote;

	/* Duplicate resolution (migrate.c, docs/cluster.md "Duplicate
	 * resolution"): the migration instance while attached (atomic), and
	 * how many partitions this node serves as working master while
	 * duplicates of them are not yet received (atomic): 0 costs an
	 * operation one load. */
	struct txn_migrate *migrate;
	uint32_t dup_partitions;

	/* A network was attached once in this process (atomic): detached
	 * again (shutdown), the tomb raider does not act as a single node. */
	bool had_network;
	/* Tombstone reclaims between replicas (txn.c txn_raider_reclaim). */
	uint64_t reclaims_sent;             /* atomic */
	uint64_t reclaims_refused;          /* atomic */
	uint64_t reclaims_received;         /* atomic */
	/* Client operations begun here (txn.c dispatch) or served for
	 * another node's clients (remote.c: proxied operations, replica
	 * writes); atomic.  The emigration threads yield while it moves
	 * (migrate.c tx_yield, network.migrate-yield-pct). */
	uint64_t client_ops;

	/* The node that opened it (node_open): its network, for the cluster's
	 * set changes (sets_cluster.c). */
	struct node *node;

	/* The chunk reclaimer (chunk.c; docs/architecture.md "Large files"):
	 * moves of a large file's map away from a head this node runs - a
	 * rename, an unlinked file's handles taking it - begun and ended
	 * (atomic: a gather that saw a move begin or end meanwhile is not
	 * trusted), and the file ids whose chunks an unlinked file's open
	 * handles still read (hold_lock; one entry per hold). */
	/* Operations routed again (txn.c): per bucket (picked by digest) the
	 * last writes, deletes and renames with an id this node applied, as
	 * master or replica; calloc'd at open (pages touched only as they come). */
	pthread_mutex_t recent_lock;
	struct txn_recent_op *recent;        /* TXN_RECENT_OPS entries */

	uint64_t chunk_moves_begun;
	uint64_t chunk_moves_ended;
	pthread_mutex_t chunk_hold_lock;
	uint64_t *chunk_holds;
	size_t n_chunk_holds, cap_chunk_holds;
};

/* Entries of txn_namespace.recent, in buckets of TXN_RECENT_WAYS picked by
 * digest, newest first: an operation routed again comes within about
 * transaction-max-ms of its first attempt; TXN_RECENT_WAYS later ones
 * whose digests pick the same bucket push it out (then the attempt runs
 * again, as without the table).  A bucket keeps up to that many
 * operations on one record (writers of one name through several nodes).
 * 40 bytes an entry, 320 KiB a namespace. */
#define TXN_RECENT_OPS 8192
#define TXN_RECENT_WAYS 4
struct txn_recent_op {
	struct txn_op_id id;                 /* seq 0: empty */
	struct digest digest;
};

/* A map moves (see chunk_moves_begun): around the move's steps. */
static inline void
txn_chunk_move_begin(struct txn_namespace *x)
{
	__atomic_add_fetch(&x->chunk_moves_begun, 1, __ATOMIC_SEQ_CST);
}

static inline void
txn_chunk_move_end(struct txn_namespace *x)
{
	__atomic_add_fetch(&x->chunk_moves_ended, 1, __ATOMIC_SEQ_CST);
}

/* The transaction layer's state of ns (every namespace comes from node_open). */
static inline struct txn_namespace *
txn_namespace_of(const struct namespace *ns)
{
	return ns->owner;
}

/* A client operation reaches ns (client_ops above). */
static inline void
txn_client_op(const struct namespace *ns)
{
	__atomic_add_fetch(&txn_namespace_of(ns)->client_ops, 1, __ATOMIC_RELAXED);
}

struct node {
	struct recfs_config *cfg;
	unsigned n_namespaces;
	struct namespace *namespaces[CONFIG_NS_MAX];
	uint64_t node_id;            /* txn_node_id_set (0 until then); atomic */
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

/*
 * Routing (txn.c; docs/architecture.md, "Routing").  Every public record
 * operation first resolves what it names into a target - names checked,
 * digest and partition computed, nothing looked up or created - then asks
 * txn_route() where it runs, then runs the local body (which looks up, or
 * for a write creates, the set) or, once the cluster routes, sends it to
 * the record's master.
 */
struct txn_target {
	struct namespace *ns;
	struct txn_key k;            /* as the caller named it (set_len 0: the null
	                              * set; a set's marker: its set and key "";
	                              * reclaim: key NULL, only the digest) */
	struct digest digest;
	uint32_t partition;          /* digest_partition(&digest) */
};

enum txn_route {
	TXN_ROUTE_LOCAL,             /* this node runs it */
	TXN_ROUTE_UNAVAILABLE,       /* no node can run it now: the operation fails
	                              * with EIO and has changed nothing */
	TXN_ROUTE_REMOTE,            /* its master, rsv->master, runs it (proxy) */
};

struct partition_rsv;

/* Where t's operation runs.  Any thread.  Without a network: LOCAL at
 * once, nothing reserved (rsv->tbl NULL).  With one: t's partition is
 * reserved into *rsv (release it with partition_release) and an orphan
 * waits for a cluster, up to transaction-max-ms (then UNAVAILABLE). */
enum txn_route txn_route(const struct txn_target *t, struct partition_rsv *rsv);

/* What a public entry point asks dispatch() to run. */
enum txn_op_kind {
	TXN_OP_STAT, TXN_OP_READ, TXN_OP_WRITE, TXN_OP_DELETE, TXN_OP_RENAME, TXN_OP_SYNC,
	TXN_OP_SET_CREATE, TXN_OP_SET_REMOVE, TXN_OP_SET_UPDATE, TXN_OP_RECLAIM,
	TXN_OP_RENAME_IN,   /* a rename across masters, at the new name's master: rec becomes it */
};

struct txn_op {
	enum txn_op_kind kind;
	struct txn_op_id id;             /* write, delete, rename, rename-in, once proxied:
	                                  * see struct txn_op_id */
	bool retry;                      /* an attempt after one whose master went down */
	const struct txn_target *to;     /* rename: the new name */
	const struct txn_write *w;       /* write, set create, set update */
	struct record_attr *attr;        /* stat, write: the answer */
	struct txn_record *rec;          /* read: the answer; rename-in: the record */
	void *into;                      /* read: the caller's buffer for a local record
	                                  * of at most into_size bytes (txn_read_into) */
	size_t into_size;
	unsigned flags;                  /* rename */
	uint16_t set_id;                 /* reclaim: as nsup found it */
	uint32_t now, evict_below;       /* reclaim */
};

/* ---- the data path between nodes (remote.c, remote.h) ---- */

/* rpc worker threads of a node with a network. */
#define TXN_REMOTE_WORKERS 16
/* rpc bulk workers: applying received migration messages (network.c) */
#define TXN_MIGRATE_BULK_WORKERS 4

struct txn_remote;
struct txn_proxy_req;

/* Caller: run op at master.  The op's result, or TXN_ENOTMASTER (the
 * master says it is not: re-route), -EHOSTDOWN (the master is down: wait
 * for the next table), -EIO (no answer within transaction-max-ms, or a
 * malformed one), -EFBIG (too big to send). */
int txn_remote_proxy(struct txn_remote *rm, uint64_t master, const struct txn_target *t,
    const struct txn_op *op);
/* The replica write of record version r (op RPC_OP_TXN_REPLICA's body: the
 * namespace, durable, r in the flat record format encoded in place, and id
 * when not NULL: the proxied write or delete that stored it) in a malloc'd
 * *body of *len bytes.  The record is the last field: its encoding is the
 * body's last record_flat_size(r) bytes (the master stores those).  0,
 * -EFBIG (too big to send), -ENOMEM, or the encoder's -EINVAL. */
int txn_remote_replica_msg(const struct namespace *ns, const struct record *r, bool durable,
    const struct txn_op_id *id, uint8_t **body, size_t *len);
/* Master, record lock held: send a stored version's replica write (body,
 * from txn_remote_replica_msg) to the other replicas of partition pid and
 * wait for all.  0, or -EIO (one did not answer OK in time: the version
 * stays here). */
int txn_remote_replicate(struct txn_remote *rm, struct namespace *ns, uint32_t pid,
    const uint8_t *body, size_t blen);
/* Master, tombstone t's record lock held: ask the other replicas of its
 * partition (in the reservation rsv) to drop t.  0 when every one dropped
 * it or holds none; -EBUSY (one kept it), -ETIMEDOUT (one did not answer
 * in transaction-max-ms), -EIO. */
int txn_remote_reclaim(struct txn_remote *rm, struct namespace *ns, const struct partition_rsv *rsv,
    const struct ns_tomb *t);
/* The namespace's raider_reclaim (namespace.h): this node decides the
 * reclaims of the partitions it masters. */
int txn_raider_reclaim(struct namespace *ns, const struct ns_tomb *t);
/* txn.c, on an rpc worker: run a proxied operation if this node masters
 * its partition (else TXN_ENOTMASTER).  rec: a read's record. */
int txn_proxy_serve(struct namespace *ns, const struct txn_proxy_req *q, struct record_attr *attr,
    struct txn_record *rec);
/* txn.c, on an rpc worker: apply a replica write: 1 applied, 0 kept the
 * stored newer or equal version, TXN_ENOTMASTER (not a replica of its
 * partition), -errno.  id (NULL: none): the proxied operation that
 * stored it, noted on 0 and 1 (txn.c, "Operations routed again"). */
int txn_replica_apply(struct namespace *ns, const uint8_t *flat, uint32_t size, bool durable,
    const struct txn_op_id *id);
/*
 * The same two on the fabric thread (remote.c's inline handlers, which
 * must not block): only a stat or read, or a replica write that is not a
 * delete, of a namespace without persistent storage, not made durable,
 * whose record lock is free (trylock) and whose record is at most
 * TXN_INLINE_MAX bytes (the fabric thread's other sockets wait meanwhile);
 * anything else is -EWOULDBLOCK with nothing changed or counted, and goes
 * to a worker.
 */
#define TXN_INLINE_MAX (256u * 1024)
int txn_proxy_serve_nowait(struct namespace *ns, const struct txn_proxy_req *q,
    struct record_attr *attr, struct txn_record *rec);
int txn_replica_apply_nowait(struct namespace *ns, const uint8_t *flat, uint32_t size, bool durable,
    const struct txn_op_id *id);
/*
 * A proxied write on the fabric thread (docs/cluster.md, "Write path"):
 * only on a namespace without persistent storage, not durable, content up
 * to TXN_INLINE_MAX, a set this node knows, no large file's chunk map
 * involved, this node the working master with at most one other replica,
 * the record lock free (trylock), not an attempt routed again (q->retry:
 * rare, a worker's); else -EWOULDBLOCK with nothing changed.
 * On 0 the version is stored, *attr filled, the record lock of *d HELD
 * and *body (malloc'd; NULL: no replica to send to) the replica message
 * for the other replica *to of partition *pid; the caller ends it with
 * txn_proxy_write_end, from any thread.  Any other value is the write's
 * final result (the lock not held).
 */
int txn_proxy_write_nowait(struct namespace *ns, const struct txn_proxy_req *q,
    struct record_attr *attr, struct digest *d, uint32_t *pid, uint64_t *to, uint8_t **body,
    size_t *size);
/* The end of a txn_proxy_write_nowait that returned 0: the record lock of
 * d released, the write counted with rc (0, or -EIO: the replica did not
 * take it; the version stays here, as for any write). */
void txn_proxy_write_end(struct namespace *ns, const struct digest *d, int rc);
/* Whether a set of records only appeared or went here since the last
 * flush (then txn_sets_used_flush, off the fabric thread). */
bool txn_sets_used_pending(struct namespace *ns);
void txn_sets_used_flush(struct namespace *ns);
/* txn.c: an operation on partition pid fails with EIO for a reason no other
 * line gives: that reason at WARN ("{ns} an operation on partition N failed
 * (EIO): ..."), at most one line a second in the process; the lines left
 * out are counted in the next one. */
void txn_eio_log(const struct namespace *ns, uint32_t pid, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Tests: the next txn_eio_log line is written whenever the last one was. */
void txn_eio_log_reset(void);
/* remote.c: transaction-max-ms now, and the monotonic deadline (ns) of a
 * wait for the tables to drop a node that went down: heartbeat timeout +
 * quiet period + transaction-max-ms from now. */
uint32_t txn_remote_deadline_ms(struct txn_remote *rm);
uint64_t txn_remote_failover_deadline(struct txn_remote *rm);
/* partitions.c: wait until partition pid's table has a cluster key other
 * than key and 0, or deadline_ns (monotonic).  0 or -ETIMEDOUT. */
int txn_partition_wait_change(struct namespace *ns, uint32_t pid, uint64_t key,
    uint64_t deadline_ns);

/* partitions.c: wait until partition pid has a working master other than
 * not_master (0: any) in a table with a cluster key, or deadline_ns.  0 or
 * -ETIMEDOUT. */
int txn_partition_wait_working(struct namespace *ns, uint32_t pid, uint64_t not_master,
    uint64_t deadline_ns);
/* partitions.c: wake the operations waiting for ns's tables (a working
 * master changed). */
void txn_partitions_changed(struct namespace *ns);

/* migrate.c: the duplicate holders this node must ask for their copy of a
 * record of pid before serving it (it is the working master and has not
 * received their migration yet); only members of the current succession.
 * Their node ids into ids (PARTITION_NODES_MAX), their count. */
struct txn_migrate;
unsigned txn_migrate_dups(struct txn_migrate *m, const struct namespace *ns, uint32_t pid,
    uint64_t *ids);
/* remote.c: holder's copy of t's record, tombstone included (malloc'd flat
 * bytes into *flat, NULL when it has none), asked by duplicate resolution
 * before deadline_ns (monotonic).  0, or -EIO (no answer in time, a
 * malformed one, an error). */
int txn_remote_dup_fetch(struct txn_remote *rm, uint64_t holder, const struct txn_target *t,
    uint64_t deadline_ns, uint8_t **flat, size_t *len);
/* txn.c, for a holder's rpc handler: this node's stored copy of k's record
 * whatever its role (record or tombstone), malloc'd flat bytes; -ENOENT
 * when none.  nowait (the fabric thread): -EWOULDBLOCK when that needs a
 * device read or a held record lock or the record is over TXN_INLINE_MAX. */
int txn_dup_copy(struct namespace *ns, const struct txn_key *k, bool nowait, uint8_t **flat,
    uint32_t *len);

/* txn.c: drop the copy of (set_id, d) here for good, record or tombstone
 * (a partition this node no longer holds, migrate.c): 1 dropped, 0 none. */
int txn_drop_record(struct namespace *ns, uint16_t set_id, const struct digest *d);

/* Tests only: when set (atomically), dispatch passes a proxied operation's
 * result through it (a test can lose an answer, as a master that went down
 * right after it ran the operation would). */
extern int (*txn_proxy_result_test_hook)(const struct txn_target *t, const struct txn_op *op, int rc);

/* Tests only: when set (atomically), txn_sets_send calls it before it sends
 * the state of a set changed here (a test can stop a node's network then,
 * as a node that dies during a mkdir or rmdir). */
extern void (*txn_sets_merge_test_hook)(void);

/* Tests only: when set (atomically), txn_route returns its answer (nothing reserved), so a
 * test can see that a refused route leaves nothing behind. */
extern enum txn_route (*txn_route_test_hook)(const struct txn_target *t);

/* network.c: the migrate_* rows of ns (migrate.c) of a started network. */
void txn_network_migrate_values(struct txn_network *net, const struct namespace *ns,
    uint64_t v[STAT_NS_COUNT]);
/* network.c: the cluster state of a started network. */
void txn_network_cluster(struct txn_network *net, struct txn_cluster *out);
/* network.c: txn_node_fabric_values and txn_node_peers of a started network. */
void txn_network_values(struct txn_network *net, uint64_t *v);
/* network.c: txn_node_fabric_latencies of a started network (NULL: all empty). */
void txn_network_latencies(struct txn_network *net, struct histogram_snapshot *out);
unsigned txn_network_peers(struct txn_network *net, struct txn_peer *out, unsigned max);

/* partitions.c: the namespace's partition table (node_open, node_close). */
int txn_partitions_open(struct node *node, unsigned i);
void txn_partitions_close(struct txn_namespace *x);
/* partitions.c: rebuild every namespace's table for a succession (any
 * order) and cluster key; errors are logged. */
void txn_node_partitions_rebuild(struct node *node, const uint64_t *succession, unsigned n,
    uint64_t cluster_key);
/* partitions.c: the STAT_NS rows of the partition table. */
void txn_partition_values(const struct namespace *ns, uint64_t v[STAT_NS_COUNT]);
/* network.c: the node whose tables follow the network's successions (NULL:
 * none); with a node, they are rebuilt for the installed state at once. */
void txn_network_attach(struct txn_network *net, struct node *node);
/* network.c: the data path instance and the rpc instance of a started network. */
struct txn_remote *txn_network_remote(struct txn_network *net);
struct rpc;
struct rpc *txn_network_rpc(struct txn_network *net);

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

/* ---- the cluster's sets (sets_cluster.c, docs/cluster.md "Sets and listings") ---- */

struct rpc;
struct set_msg_entry;
struct txn_sets;

/* txn.c: a set's state as this node knows it (live marker, or removed and
 * when).  -ENOENT: nothing to say (no marker, no removal seen). */
int txn_set_state(struct namespace *ns, uint16_t set_id, struct set_msg_entry *out);
/* txn.c: take another node's state of a set if it is newer than this
 * node's (idempotent).  0; -ENOTEMPTY: a removal not taken, live records
 * of the set are here; other -errno of the marker write. */
int txn_set_merge(struct namespace *ns, const struct set_msg_entry *e);
/* txn.c: SET_MSG_CHECK_EMPTY (-ENOTEMPTY: live records of the set here)
 * or SET_MSG_CHECK_NAME (-EEXIST: a null-set record of that name here). */
int txn_set_check(struct namespace *ns, unsigned kind, const struct set_msg_entry *e);

/* txn.c: the records of a set (set_len 0: the null set) visible here, after
 * cur, in the partitions of mask (NULL: all), up to max; advances cur.
 * dir 0: the set's top level (internal keys left out); else the entries of
 * that tree directory (full "/d..." keys), from the directory index.
 * Returns the number filled, -ENOENT (no such set here).  Counts nothing. */
int txn_list_local(struct namespace *ns, const char *set, size_t set_len, uint64_t dir,
    struct txn_cursor *cur, const uint8_t *mask, struct txn_entry *out, size_t max);
/* tree.c: k is the key of an entry of a tree directory ("/d" + 16 hex
 * digits of a non-zero id + "/" + a name that record_key_check accepts). */
bool tree_key_valid(const char *key, size_t len);
/* txn.c: txn_list of the top level (dir 0) or of a tree directory (tree.c). */
int txn_list_in(struct namespace *ns, const char *set, size_t set_len, uint64_t dir,
    struct txn_cursor *cur, struct txn_entry *out, size_t max);

/* sets_cluster.c: registers the set operations on rpc (before rpc_start)
 * and starts the thread that sends the set tables.  -ENOMEM, -EEXIST. */
int txn_sets_create(struct rpc *rpc, uint64_t self, struct txn_sets **out);
/* The node whose namespaces the set operations serve (NULL: none; its
 * requests are answered -EAGAIN). */
void txn_sets_attach(struct txn_sets *s, struct node *node);
/* A new succession (clustering's observer; does not block): every node's
 * set tables are sent to the others. */
void txn_sets_changed(struct txn_sets *s, const uint64_t *succession, unsigned n);
/* Stops the thread (before rpc_stop); then destroy (after rpc_stop). */
void txn_sets_stop(struct txn_sets *s);
void txn_sets_destroy(struct txn_sets *s);
/*
 * Sends one set message of kind about e to every other node of the
 * current succession (to_node != 0: to that node only), in parallel,
 * within transaction-max-ms.  0 when every node answered 0; else the
 * first node's -errno answer (-ENOTEMPTY, -EEXIST ...), or -EIO when a
 * node did not answer (then the set tables are sent again soon).  A
 * SET_MSG_MERGE to every node: a node that went down meanwhile is waited
 * out of the succession, one that restarted is sent it again.  A check
 * (SET_MSG_CHECK_*): a node that has no node attached yet (just started),
 * is busy or restarted is asked again within transaction-max-ms, one
 * reported down until it leaves the succession (bounded as a write waits
 * for a master that went down), then -EIO; a node out of the succession
 * then is left out, except that a check sent to to_node alone returns
 * -EHOSTDOWN (route it again); the first refusal decides at once
 * (docs/cluster.md, "mkdir, rmdir, chmod of a set").
 */
int txn_sets_send(struct txn_sets *s, struct namespace *ns, unsigned kind,
    const struct set_msg_entry *e, uint64_t to_node);
/*
 * sets_cluster.c: one page of a listing in a cluster: each node that
 * masters partitions at or after cur (this node's partition table) is
 * asked once, in parallel, for its records there; the answers are merged
 * in listing order (partition, then the master's index order) and cut at
 * max.  txn_list's contract (txn.h).  A node that cannot answer yet (just
 * started, busy, restarted, reported down) is asked again - the page
 * routed again after a succession change - as a set check is
 * (txn_sets_send); -EIO past that bound, when a node is silent or answers
 * malformed: never a shorter page.  -ENOENT when the set is on no node.
 */
int txn_sets_list(struct txn_sets *s, struct namespace *ns, const char *set, size_t set_len,
    uint64_t dir,
    struct txn_cursor *cur, struct txn_entry *out, size_t max);
/* The sets table thread sends everything again soon (a set of records
 * only appeared or went here: namespace->sets_used_changed). */
void txn_sets_kick(struct txn_sets *s);
/* Whether another node of the succession said it holds records of set
 * name (no marker): true, with the newest ctime and mtime they gave. */
bool txn_sets_used_elsewhere(struct txn_sets *s, const struct namespace *ns, const char *name,
    size_t len, uint64_t *ctime_ms, int64_t *mtime_ns);
/* fn for each set name other nodes of the succession hold records of
 * (each once, sorted); stops at fn's first non-zero, returned. */
int txn_sets_used_foreach(struct txn_sets *s, const struct namespace *ns,
    int (*fn)(void *arg, const char *name, size_t len), void *arg);
/* network.c: the set side of a started network. */
struct txn_sets *txn_network_sets(struct txn_network *net);

#endif
