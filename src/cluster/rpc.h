/*
 * rpc.h - request/answer over the fabric, with deadlines, bounded state and
 * at-most-once execution (docs/cluster.md, "RPC").
 *
 * What the data path's proxy and replica writes share: a thread sends a
 * request to node X and blocks until X's answer comes or the deadline
 * passes; on X a handler that may block on storage runs on a worker
 * thread, never on the fabric thread; an op's inline handler, which never
 * blocks, may answer on the fabric thread instead (rpc_handler_inline_set).
 *
 * Caller side.  rpc_call() sends one request and waits; a group
 * (rpc_group_init, rpc_group_send ..., rpc_group_wait) sends several in
 * parallel (a master to every replica) and waits for all of them under one
 * deadline.  Each request carries a request id unique to this process
 * (with a random incarnation drawn at rpc_create, so a restarted node
 * never reuses an old id); an answer is matched by it and taken once: an
 * answer that arrives after its call ended (deadline, failure) or a second
 * copy is dropped and counted (rpc_late_answers), never given to another
 * call.  A request not answered is sent again after RPC_RETRY_MS, then
 * doubling, during the first transaction-max-ms of the call (a fabric
 * connection that dropped loses what was in flight); the other side runs
 * it at most once - also across a restart of the other side: every copy
 * carries the callee's incarnation the caller knew when it sent the first
 * one (learnt from the callee's requests and answers; forgotten when the
 * fabric reports the node down), and a process with another incarnation
 * refuses it unrun (ESTALE).  If that refused copy was the only one sent,
 * nothing ran: it is sent again at once to the new process; otherwise an
 * earlier copy may have run at the old one and the call fails -ESTALE
 * ("may have run"), never running twice.  A busy answer ends the call only when every copy sent
 * was answered busy (an answer does not say which copy it answers).  A node that
 * the fabric reports down, or that rpc_node_down() names, fails its calls
 * at once (-EHOSTDOWN), so the transaction layer can re-route well before
 * the deadline.  A node is silent when a call to it ran to its deadline,
 * at least silence_ms long, with no message at all from it meanwhile (a
 * stopped process, a cut link: a live node's heartbeat pulses arrive
 * every interval): until the fabric hears anything from it again, new
 * calls to it fail at once with -ETIMEDOUT instead of waiting the whole
 * deadline again, so one user operation that makes several calls (a
 * kernel lookup retried after a failed revalidation) waits one deadline,
 * not several.  At most calls_max calls are in flight per node; a caller
 * past that waits for a free slot, bounded by its deadline (-ETIMEDOUT).
 *
 * Server side.  A request is taken on the fabric thread into a bounded
 * queue (queue_max requests, queue_bytes_max bytes) served by a pool of
 * worker threads; when it is full the caller is answered busy (-EAGAIN)
 * instead of the node's memory growing.  A request still queued when the
 * caller's deadline has passed (the request carries the time it had left)
 * is dropped unexecuted (rpc_requests_expired).  At-most-once: requests are
 * kept by (origin node, origin incarnation, request id); a copy of one that
 * is queued or running is dropped, a copy of one that finished gets the
 * cached answer again.  Answers are kept for 2 x transaction-max-ms, at most
 * cache_max requests in all (past that, and no older entry expired, new
 * requests are answered busy: never forgotten early) and cache_bytes_max
 * bytes of answer bodies (an answer that does not fit is kept as "ran,
 * answer lost": a retry of it gets -EIO, and it is never run again).
 * Handlers registered RPC_HANDLER_IDEMPOTENT (reads) are not cached: a
 * retry after the answer was sent runs again.
 *
 * Answered later.  A handler (inline or a worker's) may leave its request
 * pending (RPC_PENDING) and answer it from another thread
 * (rpc_answer_pending), e.g. once an rpc_call_async it started has its
 * answer: the data path's proxied writes on memory storage end on the
 * thread that reads their replica's ack, with no worker woken and none
 * waiting; migration's receiver answers a partition's end once durable,
 * its bulk worker free meanwhile.  An async call has
 * no waiting thread: its done runs where its outcome is learnt, and the
 * timer thread (rpc-timer: asleep while none is in flight) sends its
 * retransmissions and ends it at its deadline.  Work that must block
 * (a continuation) is queued for a worker with rpc_job_queue.
 *
 * Threads: rpc_call and the group functions from any thread but the
 * fabric's (they block); rpc_call_async, rpc_answer_pending and
 * rpc_job_queue from any thread (they never block); handlers on the
 * workers, inline handlers on the fabric thread (the rpc lock not held);
 * rpc_peer_event from the fabric's peer callback; rpc_node_down and the
 * getters from any thread.
 * One lock guards both sides; it is a leaf: no handler runs, no message is
 * sent and no caller waits while it is held (callers sleep on their
 * group's futex word, or read their answer off the connection
 * (rpc_config.lend), with the lock released).  With lend, answers are
 * also handled on callers' threads.
 *
 * Errors: 0 or -errno.
 */
#ifndef RECFS_CLUSTER_RPC_H
#define RECFS_CLUSTER_RPC_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/histogram.h"
#include "../fabric/fabric.h"

/* Deadline when neither the call nor the configuration gives one (ms). */
#define RPC_DEADLINE_DEFAULT_MS 1000
/* Largest request or answer body: a message stays under FABRIC_MSG_MAX. */
#define RPC_BODY_MAX (FABRIC_MSG_MAX - 128)
/* Operation numbers are 1..RPC_OPS_MAX-1. */
#define RPC_OPS_MAX 64
/* A request not answered is sent again after this, then 2x, 4x ... */
#define RPC_RETRY_MS 200
/* Calls one group may hold (a master and its replicas: at most the cluster). */
#define RPC_GROUP_MAX 64
/* Largest deadline a request may carry (ms). */
#define RPC_BUDGET_MAX_MS 3600000
/* Largest errno or project code an answer may carry (positive). */
#define RPC_ERRNO_MAX 65535
/* Defaults of struct rpc_config. */
#define RPC_CALLS_MAX_DEFAULT 1024
#define RPC_WORKERS_DEFAULT 4
#define RPC_BULK_WORKERS_DEFAULT 2
#define RPC_QUEUE_MAX_DEFAULT 256
#define RPC_QUEUE_BYTES_DEFAULT (16u * 1024 * 1024)
#define RPC_CACHE_MAX_DEFAULT 65536
#define RPC_CACHE_BYTES_DEFAULT (16u * 1024 * 1024)

/*
 * Field ids of message FABRIC_MSG_RPC.  Wire format: NEVER reuse or
 * renumber an id; a retired field stays here as a comment.
 */
enum rpc_field_id {
	RPC_FIELD_KIND = 1,         /* u32 enum rpc_kind */
	RPC_FIELD_INCARNATION = 2,  /* u64, the calling process's random incarnation, not 0 */
	RPC_FIELD_REQUEST_ID = 3,   /* u64, unique within the incarnation, not 0 */
	RPC_FIELD_OP = 4,           /* u32 (REQUEST), 1..RPC_OPS_MAX-1 */
	RPC_FIELD_BUDGET_MS = 5,    /* u32 (REQUEST), ms the caller has left, 1..RPC_BUDGET_MAX_MS */
	RPC_FIELD_BODY = 6,         /* bytes, the request's or the answer's; absent = empty */
	RPC_FIELD_STATUS = 7,       /* u32 (ANSWER): 0 = the handler ran; else the caller's
	                             * error, positive: EAGAIN busy, EOPNOTSUPP no handler,
	                             * EIO ran but its answer was not kept */
	RPC_FIELD_ERRNO = 8,        /* u32 (ANSWER, status 0): the handler's result, positive */
	RPC_FIELD_PEER_INCARNATION = 9 /* u64: REQUEST: the callee's incarnation the caller
	                             * knew when it sent the first copy (absent: unknown);
	                             * ANSWER: the answering process's own */
};

/* Numbers are wire format, never renumbered. */
enum rpc_kind {
	RPC_KIND_REQUEST = 1,
	RPC_KIND_ANSWER = 2
};

/* Operations.  Numbers are wire format, never renumbered or reused. */
enum rpc_op {
	RPC_OP_PING = 1,    /* built in: answers with the request's body */
	RPC_OP_TXN_PROXY = 2,      /* txn/remote.c: an operation at its record's master */
	RPC_OP_TXN_PROXY_READ = 3, /* txn/remote.c: a stat or read at the master (idempotent) */
	RPC_OP_TXN_REPLICA = 4,    /* txn/remote.c: a record version for a replica */
	RPC_OP_TXN_RECLAIM = 5,    /* txn/remote.c: drop a tombstone its master reclaims */
	RPC_OP_TXN_CHUNKS = 6,     /* txn/remote.c, txn/chunk.c: the chunk reclaimer's gather */
	RPC_OP_SETS = 16,   /* txn/sets_cluster.c: set changes, checks, set tables (txn/set_msg.h) */
	RPC_OP_LIST = 17,   /* txn/sets_cluster.c: a page of a set's listing (txn/set_msg.h) */
	RPC_OP_MIGRATE = 18, /* txn/migrate.c: versions exchange and migration (txn/migrate_msg.h) */
	RPC_OP_MIGRATE_DATA = 19, /* txn/migrate.c: migration's PARTS messages, bulk work (the same bodies) */
	RPC_OP_TEST = 48    /* 48..63: unit tests and recfs-bench */
};

/* A message, decoded; body points into the message. */
struct rpc_msg {
	uint32_t kind;
	uint64_t incarnation;
	uint64_t request_id;
	uint32_t op;          /* REQUEST */
	uint32_t budget_ms;   /* REQUEST */
	uint32_t status;      /* ANSWER */
	uint32_t err;         /* ANSWER with status 0 */
	uint64_t peer_incarnation; /* 0: absent (RPC_FIELD_PEER_INCARNATION) */
	const uint8_t *body;
	size_t body_len;
	const uint8_t *body2;  /* encoding only: the body's second piece, after body */
	size_t body2_len;
};

/*
 * 0, or -EBADMSG: another message type, an unknown kind, a field missing,
 * twice or of the wrong type, an incarnation or request id of 0, an op,
 * budget, status or errno out of its range, a body over RPC_BODY_MAX.
 * Fields of the other kind are ignored.  Never reads outside m.
 */
int rpc_msg_decode(const struct fabric_msg *m, struct rpc_msg *r);
/* Into buf via w (cap: RPC_BODY_MAX + 128 takes any body); 0, -EINVAL (a
 * message the decoder would refuse) or -EMSGSIZE. */
int rpc_msg_encode(const struct rpc_msg *r, struct fabric_msg_writer *w, uint8_t *buf, size_t cap);
/* The same with the body by reference (fabric_msg_put_bytes_ref): buf holds
 * only the fields before it (RPC_MSG_HEAD_MAX bytes are enough), and r->body
 * must stay valid until the writer is sent. */
#define RPC_MSG_HEAD_MAX 128
int rpc_msg_encode_ref(const struct rpc_msg *r, struct fabric_msg_writer *w, uint8_t *buf,
    size_t cap);

/* ---- the rpc instance -------------------------------------------------------- */

struct rpc;

/* Where a handler writes its answer body: buf holds cap bytes
 * (RPC_BODY_MAX); set len. */
struct rpc_reply {
	uint8_t *buf;
	size_t cap;
	size_t len;
	const struct rpc_pending *pending;  /* the request's identity, for RPC_PENDING
	                                     * (inline and worker handlers) */
	bool unkept;                        /* the handler's: do not keep this answer's
	                                     * bytes for copies of the request (a copy
	                                     * gets EIO, "ran, answer lost"): large
	                                     * answers that would crowd the cache */
};

/*
 * A handler: runs on a worker thread, may block (storage), returns 0 or
 * -errno (any engine code), which the caller gets unchanged in
 * rpc_answer.err, with reply's bytes.  req is valid during the call.
 */
typedef int (*rpc_handler_fn)(void *arg, uint64_t from_node, const uint8_t *req, size_t len,
    struct rpc_reply *reply);

#define RPC_HANDLER_IDEMPOTENT 0x1u  /* running it twice is harmless: answers are not cached */
/* Background work (migration): its requests wait in a queue of their own,
 * served only by the bulk workers (rpc_config.bulk_workers), which run at
 * a lower CPU priority (nice +RPC_BULK_NICE): a client's request is never
 * queued behind them, and when the CPU is short the scheduler favours it.
 * Bulk requests may hold at most half of queue_bytes_max. */
#define RPC_HANDLER_BULK 0x2u
#define RPC_BULK_NICE 10

/* An inline handler's "not here": the request goes to a worker's handler. */
#define RPC_DEFER 1
/*
 * A handler's "answered later" (inline or on a worker): it copied
 * *reply->pending (the request's identity) and what it answers from (req
 * is not kept), and calls rpc_answer_pending exactly once, from any
 * thread, when its work is done (e.g. when another node's answer came:
 * rpc_call_async; migration's durable ends, txn/migrate.c).  A worker is
 * free again at once.  Meanwhile the request is kept as running: copies
 * of it are dropped, it runs once; it counts among the kept requests
 * (cache_max) until answered.
 */
#define RPC_PENDING 2

/* A request answered later (RPC_PENDING); a value, copied by the handler. */
struct rpc_pending {
	uint64_t origin, incarnation, request_id;
	uint32_t op;
};

struct rpc_config {
	struct fabric *fabric;        /* created, not yet started */
	uint64_t node_id;
	const uint32_t *transaction_max_ms; /* read live (atomically); NULL: RPC_DEADLINE_DEFAULT_MS */
	unsigned workers;             /* 0: RPC_WORKERS_DEFAULT */
	unsigned bulk_workers;        /* 0: RPC_BULK_WORKERS_DEFAULT; for RPC_HANDLER_BULK ops */
	unsigned calls_max;           /* 0: RPC_CALLS_MAX_DEFAULT; calls in flight */
	unsigned queue_max;           /* 0: RPC_QUEUE_MAX_DEFAULT; requests queued for the workers */
	size_t queue_bytes_max;       /* 0: RPC_QUEUE_BYTES_DEFAULT; their bodies */
	unsigned cache_max;           /* 0: RPC_CACHE_MAX_DEFAULT; requests kept (queued, running, answered) */
	size_t cache_bytes_max;       /* 0: RPC_CACHE_BYTES_DEFAULT; answer bodies kept */
	bool lend;                    /* a caller waiting for one answer reads it off the
	                               * node's connection itself (fabric_read_lent):
	                               * one thread woken per answer instead of two */
	uint32_t silence_ms;          /* 0: off; a timed-out call this long with nothing heard
	                               * from its node marks the node silent (above); more
	                               * than the heartbeat interval */
};

/* Registers the message handler on the fabric (before fabric_start) and
 * the built-in RPC_OP_PING.  -EINVAL (bad config), -ENOMEM. */
int rpc_create(const struct rpc_config *cfg, struct rpc **out);
/* Before rpc_start.  -EINVAL (op out of range), -EEXIST. */
int rpc_handler_set(struct rpc *rpc, uint32_t op, unsigned flags, rpc_handler_fn fn, void *arg);
/*
 * An inline handler for op (whose handler is set; before rpc_start): each
 * new request of op is first given to try_fn on the fabric thread, with
 * the message's body, so a request it can serve at once is answered
 * without a hop to a worker and back (docs/cluster.md, RPC).  try_fn must
 * not block: no storage I/O, no lock that a thread waiting for an rpc
 * answer may hold, no waiting for another message (it uses trylock where a
 * lock may be held long).  It returns what a handler returns (the same
 * caching rules apply), or RPC_DEFER, having changed nothing: the request
 * is then queued for fn on a worker as usual.  -EINVAL (op out of range or
 * without a handler, try_fn NULL), -EEXIST.
 */
int rpc_handler_inline_set(struct rpc *rpc, uint32_t op, rpc_handler_fn try_fn);
/*
 * The answer of a request its handler left pending (RPC_PENDING):
 * rc and body[0..len) as a handler's (the same caching rules; body is
 * copied).  Any thread but one holding rpc's lock; never blocks.  After
 * rpc_stop the answer is dropped (the request is settled all the same).
 */
void rpc_answer_pending(struct rpc *rpc, const struct rpc_pending *p, int rc, const uint8_t *body,
    size_t len);
/*
 * Work that may block, run on a client worker ahead of queued requests
 * (e.g. the rare continuation of something an inline handler started).
 * fn(arg, stopping): stopping is true when it runs at rpc_stop, after the
 * workers ended (it should then finish at once).  Never blocks; job is the
 * caller's (embedded in its state), untouched by rpc after fn starts.
 */
struct rpc_job {
	void (*fn)(void *arg, bool stopping);
	void *arg;
	struct rpc_job *next;
};
void rpc_job_queue(struct rpc *rpc, struct rpc_job *job);
/* Starts the workers.  -errno of pthread_create. */
int rpc_start(struct rpc *rpc);
/* Fails every call in flight (-ESHUTDOWN) and refuses new ones, drops the
 * queued requests, joins the workers (a running handler finishes first).
 * Shutdown order: rpc_stop, fabric_destroy, rpc_destroy. */
void rpc_stop(struct rpc *rpc);
void rpc_destroy(struct rpc *rpc);

/* The fabric's peer callback (fabric_config.on_peer) forwards here: a node
 * that went down fails its calls in flight and new ones (-EHOSTDOWN) until
 * it is up again. */
void rpc_peer_event(struct rpc *rpc, uint64_t node_id, bool up);
/* The cluster says node_id is gone: its calls in flight fail now
 * (-EHOSTDOWN).  Later calls to it are sent as usual. */
void rpc_node_down(struct rpc *rpc, uint64_t node_id);

/* The outcome of one call.  body is malloc'd (NULL when empty): free it
 * with rpc_answer_release. */
struct rpc_answer {
	int rc;          /* 0: the handler ran (err, body); else why not (rpc_call's errors) */
	int err;         /* the handler's 0 or -errno */
	uint8_t *body;
	size_t len;
};

void rpc_answer_release(struct rpc_answer *a);

/*
 * Sends a request (op, req[0..len)) to node_id and waits for its answer
 * until deadline_ms from now (0: transaction-max-ms).  Returns ans->rc:
 * 0 (the handler ran: ans->err and ans->body are its answer), or
 *   -ETIMEDOUT   no answer within the deadline (the request may have run),
 *                or at once: the node is silent (not sent)
 *   -EHOSTDOWN   the node is down (fabric) or rpc_node_down named it
 *   -EHOSTUNREACH the fabric never knew the node
 *   -EAGAIN      the node is busy (its queue or request table is full; not
 *                run: every copy sent was refused)
 *   -EOPNOTSUPP  the node has no handler for op (not run)
 *   -EIO         it ran, but its answer was lost and not kept
 *   -EMSGSIZE    len > RPC_BODY_MAX;  -EINVAL  bad op or node;
 *   -ESHUTDOWN   rpc_stop;  -ENOMEM.
 */
int rpc_call(struct rpc *rpc, uint64_t node_id, uint32_t op, const void *req, size_t len,
    uint32_t deadline_ms, struct rpc_answer *ans);
/* The same with a request in two pieces, req then req2 (the handler gets
 * them joined): a large value is sent from where it is, not copied into
 * the request first.  len + len2 is the request's size. */
int rpc_call2(struct rpc *rpc, uint64_t node_id, uint32_t op, const void *req, size_t len,
    const void *req2, size_t len2, uint32_t deadline_ms, struct rpc_answer *ans);

/*
 * A call whose outcome is handed to done(arg, ans) instead of a waiting
 * thread: from the thread that reads the answer (the fabric's, or a caller
 * borrowing the connection), the one that learns the node is down, rpc's
 * timer thread (the deadline; retransmissions are sent from there too) or
 * rpc_stop.  done runs exactly once, without rpc's lock, must not block,
 * and owns ans (rpc_answer_release).  req must stay valid until done runs.
 * Returns 0, or the call's error at once (done is then not called).
 */
typedef void (*rpc_done_fn)(void *arg, struct rpc_answer *ans);
int rpc_call_async(struct rpc *rpc, uint64_t node_id, uint32_t op, const void *req, size_t len,
    uint32_t deadline_ms, rpc_done_fn done, void *arg);

/*
 * Several calls under one deadline, e.g. a replica write to every replica:
 *   rpc_group_init(rpc, &g, 0);
 *   for each replica: rpc_group_send(&g, node, op, req, len, &ans[i]);
 *   rpc_group_wait(&g);      -> every ans[i] filled
 * A group lives on the caller's stack; every rpc_group_init must be
 * followed by rpc_group_wait (even when a send failed).  The fields are
 * private to rpc.c.
 */
struct rpc_group {
	struct rpc *rpc;
	uint64_t deadline_ns;    /* monotonic */
	unsigned n;
	unsigned n_done;         /* protected by rpc's lock */
	uint32_t *wake;          /* futex word its waiter sleeps on: its first call's slot's
	                          * (rpc.c); bumped, under rpc's lock, when a call ends */
	rpc_done_fn done;        /* rpc_call_async: the group is rpc's, of one call */
	void *done_arg;
	struct rpc_group *done_next; /* ended, its done not yet run (rpc's lock) */
	struct rpc_answer own;   /* rpc_call_async: the answer */
	uint32_t own_wake;
	uint32_t slot[RPC_GROUP_MAX];
	struct rpc_answer *ans[RPC_GROUP_MAX];
};

void rpc_group_init(struct rpc *rpc, struct rpc_group *g, uint32_t deadline_ms);
/* Starts one call; its outcome lands in *ans at rpc_group_wait.  req must
 * stay valid until rpc_group_wait returns (retransmissions send it again).
 * Returns 0, or the call's error at once (also in ans->rc); -ENOSPC past
 * RPC_GROUP_MAX calls.  May wait for a free call slot (calls_max), up to
 * the group's deadline. */
int rpc_group_send(struct rpc_group *g, uint64_t node_id, uint32_t op, const void *req, size_t len,
    struct rpc_answer *ans);
/* The same with a request in two pieces (rpc_call2); both stay valid until
 * rpc_group_wait returns. */
int rpc_group_send2(struct rpc_group *g, uint64_t node_id, uint32_t op, const void *req,
    size_t len, const void *req2, size_t len2, struct rpc_answer *ans);
/* Waits until every call ended or the deadline passed (those get
 * -ETIMEDOUT).  Returns 0 when every call's rc is 0, else the first
 * call's non-zero rc. */
int rpc_group_wait(struct rpc_group *g);

struct rpc_stats {
	uint64_t calls;               /* calls started (rpc_call, rpc_group_send) */
	uint64_t calls_answered;      /* calls that got their answer (busy and no-handler included) */
	uint64_t calls_timed_out;     /* no answer within the deadline */
	uint64_t calls_failed_fast;   /* node down or unknown, shutdown: failed before the deadline */
	uint64_t calls_failed_silent; /* failed at once (-ETIMEDOUT): the node is silent (above) */
	uint64_t retransmits;         /* requests sent again (no answer after RPC_RETRY_MS x 2^k) */
	uint64_t late_answers;        /* answers that matched no waiting call: late, twice, unknown */
	uint64_t requests_received;   /* requests taken from the fabric (copies included) */
	uint64_t requests_duplicate;  /* copies of a queued, running or answered request */
	uint64_t requests_busy;       /* requests refused: queue or table full */
	uint64_t requests_expired;    /* queued requests dropped: the caller's deadline had passed */
	uint64_t requests_inline;     /* requests served on the fabric thread (inline handlers) */
	uint64_t requests_pending;    /* answered later (RPC_PENDING, rpc_answer_pending): inline or a worker's */
	uint64_t calls_async;         /* calls started with rpc_call_async */
	uint64_t msgs_malformed;      /* rpc messages that did not decode (dropped) */
	uint64_t requests_stale;      /* requests refused unrun: meant for this node's previous process */
	uint64_t calls_peer_restarted; /* calls failed -ESTALE: the callee restarted after a copy
	                               * was sent (the first copy may have run there) */
	uint32_t calls_in_flight;     /* gauges: calls waiting for an answer, ... */
	uint32_t requests_in_progress; /* ... requests queued or running, ... */
	uint32_t requests_kept;       /* ... requests kept for at-most-once (queued, running, answered) */
};

void rpc_stats_get(struct rpc *rpc, struct rpc_stats *s);
/* Latency of the calls that got an answer, from the first send. */
void rpc_latency_get(struct rpc *rpc, struct histogram_snapshot *out);
/* This process's incarnation (tests: to forge a duplicate request). */
uint64_t rpc_incarnation(struct rpc *rpc);

#endif
