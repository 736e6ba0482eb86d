/*
 * remote.h - the data path between nodes: proxied operations and replica
 * writes (docs/cluster.md, "Data path").  Private to txn/ (and its tests).
 *
 * Proxy: an operation whose partition another node masters is encoded
 * (namespace, set, key, kind and its parameters) and sent to that master
 * over rpc (RPC_OP_TXN_PROXY; reads and stats as RPC_OP_TXN_PROXY_READ,
 * which rpc does not cache); the master checks that it still masters the
 * partition (else it answers TXN_ENOTMASTER and the caller re-routes once)
 * and runs the local body.  The answer carries the errno (the rpc answer's
 * err), the record's attributes and, for a read, the record itself in the
 * flat record format.
 *
 * Duplicate resolution (docs/cluster.md): a working master that has not
 * yet received a duplicate holder's migration asks it, before serving a
 * record, for its copy (TXN_PROXY_DUPRES over RPC_OP_TXN_PROXY_READ: the
 * request of a read; the answer carries the flat record, tombstone
 * included, and no attributes, or -ENOENT), and applies it IF_NEWER.
 *
 * Replica writes: at the master every record version a client write,
 * delete, TTL or bin change stores is sent, as its flat bytes, to each
 * other replica of its partition in parallel (one rpc group) while the
 * record lock is held; the operation succeeds only when each answered OK.
 * A replica applies it IF_NEWER (namespace_apply_flat): an older or equal
 * version is kept and answered OK, so a retry is harmless.
 *
 * Encodings are fabric messages (fabric.h's TLV fields, bounds-checked
 * decoders) inside the rpc body.  Field ids are wire format: never reuse
 * or renumber one.
 */
#ifndef RECFS_TXN_REMOTE_H
#define RECFS_TXN_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/statistic.h"
#include "../cluster/rpc.h"   /* the operation numbers RPC_OP_TXN_* */
#include "txn.h"

/*
 * A client operation's id, the same in every attempt of it (txn.c
 * dispatch): the node that took it from its client, and that node's
 * counter (seq 0: no id).  A write, delete or rename sent to its master
 * carries it, and the master's replica writes of the versions it stored
 * carry it on, so that an attempt routed again after its master went down can tell
 * its own first attempt's version from anyone else's (txn.c, "Operations
 * routed again").  On the wire 16 bytes: node then seq, little-endian.
 */
struct txn_op_id {
	uint64_t node;
	uint64_t seq;
};
#define TXN_OP_ID_WIRE_SIZE 16
void txn_op_id_put(uint8_t *p, const struct txn_op_id *id);
/* 0, or -EBADMSG (not 16 bytes, or seq 0). */
int txn_op_id_get(const uint8_t *p, size_t len, struct txn_op_id *id);

/* "This node is not the partition's master / not one of its replicas
 * (any more)": only between nodes, never returned to a client. */
#define TXN_ENOTMASTER (-EREMCHG)

/* Kinds of a proxied operation (wire format). */
enum txn_proxy_kind {
	TXN_PROXY_STAT = 1,
	TXN_PROXY_READ = 2,
	TXN_PROXY_WRITE = 3,
	TXN_PROXY_DELETE = 4,
	TXN_PROXY_RENAME = 5,
	TXN_PROXY_SYNC = 6,
	TXN_PROXY_RENAME_IN = 7,   /* a rename across masters: this record becomes the key's */
	TXN_PROXY_DUPRES = 8,      /* duplicate resolution: the holder's copy, whatever its role */
};

/* Field ids of a proxy request (inner message type TXN_MSG_PROXY). */
enum txn_proxy_field {
	TXN_PF_KIND = 1,        /* u32 enum txn_proxy_kind */
	TXN_PF_NS = 2,          /* bytes: namespace name */
	TXN_PF_SET = 3,         /* bytes (absent: the null set) */
	TXN_PF_KEY = 4,         /* bytes */
	TXN_PF_TO_SET = 5,      /* bytes, rename */
	TXN_PF_TO_KEY = 6,      /* bytes, rename (present: a rename target) */
	TXN_PF_RENAME_FLAGS = 7,/* u32 */
	TXN_PF_W_FLAGS = 8,     /* u32 TXN_CREATE_ONLY | ... (present: a write) */
	TXN_PF_W_SET = 9,       /* u32 bit mask of TXN_PW_* */
	TXN_PF_FILE = 10,       /* bytes, with TXN_PW_FILE */
	TXN_PF_SIZE = 11,       /* u64 */
	TXN_PF_MODE = 12,       /* u32 */
	TXN_PF_UID = 13,        /* u32 */
	TXN_PF_GID = 14,        /* u32 */
	TXN_PF_MTIME = 15,      /* u64 (int64 ns) */
	TXN_PF_ATIME = 16,      /* u64 (int64 ns) */
	TXN_PF_TTL = 17,        /* u32 (int32) */
	TXN_PF_BINS = 18,       /* bytes: the bin operations, packed (remote_msg.c) */
	TXN_PF_RECORD = 19,     /* bytes, rename-in: the old name's record, flat */
	TXN_PF_RECORD_ATTR = 20,/* bytes, rename-in: what it showed (TXN_ATTR_WIRE_SIZE) */
	TXN_PF_OP_ID = 21,      /* bytes, TXN_OP_ID_WIRE_SIZE, write, delete, rename or
	                         * rename-in (optional): its id */
	TXN_PF_RETRY = 22,      /* u32 1, with TXN_PF_OP_ID (optional): an attempt after
	                         * one whose master went down */
	TXN_PF_TAKE_VERSION = 23,/* u32 1, write (optional): the caller stores the version
	                         * itself when it is the partition's other replica (the
	                         * answer's TXN_AF_VERSION; docs/cluster.md, Write path) */
};

/* Field ids of a proxy answer (TXN_MSG_ANSWER) and of a replica write (TXN_MSG_REPLICA). */
enum txn_answer_field {
	TXN_AF_ATTR = 1,        /* bytes, TXN_ATTR_WIRE_SIZE: struct record_attr */
	TXN_AF_RECORD = 2,      /* bytes: a flat record (read) */
	TXN_RF_NS = 3,          /* replica write: bytes, namespace name */
	TXN_RF_DURABLE = 4,     /* replica write: u32 0/1 */
	TXN_RF_RECORD = 5,      /* replica write: bytes, the flat record */
	TXN_RF_OP_ID = 6,       /* replica write (optional): bytes, TXN_OP_ID_WIRE_SIZE,
	                         * the id of the proxied operation that stored it */
	TXN_AF_VERSION = 7,     /* write answer (optional): bytes, a replica write message
	                         * (TXN_MSG_REPLICA) the caller applies as the partition's
	                         * other replica; the master sent it nowhere else */
	TXN_RF_CONTENT_AT = 8,  /* u32, in a version handed back only (optional): the
	                         * record lacks the file's content, which is the caller's
	                         * own (its request's) and belongs at this offset */
};

#define TXN_MSG_PROXY 1
#define TXN_MSG_ANSWER 2
#define TXN_MSG_REPLICA 3
#define TXN_MSG_RECLAIM 4

/* Field ids of a tombstone reclaim (TXN_MSG_RECLAIM): the master asks a
 * replica to drop this tombstone if it is still its current version. */
enum txn_reclaim_field {
	TXN_CF_NS = 1,          /* bytes: namespace name */
	TXN_CF_SET = 2,         /* bytes (absent: the null set) */
	TXN_CF_DIGEST = 3,      /* bytes, 20 */
	TXN_CF_GENERATION = 4,  /* u32 (16 bits) */
	TXN_CF_LUT = 5,         /* u64: last-update time, ms since the recfs epoch */
};
#define TXN_ATTR_WIRE_SIZE 84

/* The chunk reclaimer's gather (TXN_MSG_CHUNKS over RPC_OP_TXN_CHUNKS,
 * chunk.c): a node's state, or a page of the heads of the partitions
 * named, from one partition on. */
#define TXN_MSG_CHUNKS 5
enum txn_chunks_field {
	TXN_KF_NS = 1,          /* bytes: namespace name */
	TXN_KF_KIND = 2,        /* u32: 1 state, 2 heads */
	TXN_KF_FROM = 3,        /* u32: heads: the first partition of the page */
	TXN_KF_MASK = 4,        /* bytes, PARTITION_COUNT / 8: heads: the partitions asked for */
};

/* The TXN_PW_* bits of TXN_PF_W_SET. */
#define TXN_PW_FILE  0x01
#define TXN_PW_SIZE  0x02
#define TXN_PW_MODE  0x04
#define TXN_PW_UID   0x08
#define TXN_PW_GID   0x10
#define TXN_PW_MTIME 0x20
#define TXN_PW_ATIME 0x40
#define TXN_PW_TTL   0x80

/* A proxy request, decoded: pointers into the message, bins allocated. */
struct txn_proxy_req {
	uint32_t kind;
	const char *ns;
	size_t ns_len;
	struct txn_key k;
	bool has_to;
	struct txn_key to;
	uint32_t rename_flags;
	bool has_write;
	struct txn_write w;
	struct txn_bin_op *bins;   /* w.bins (malloc'd; txn_proxy_req_release) */
	const uint8_t *record;     /* rename-in (rename_flags too) */
	size_t record_len;
	struct record_attr record_attr;
	struct txn_op_id id;       /* a write's, delete's or rename's (seq 0: none) */
	bool retry;                /* with id: an attempt after its master went down */
	bool take_version;         /* a write: the caller stores the replica's copy itself */
};

/* Encode q into a malloc'd buffer (*out, *len).  0, -EMSGSIZE (over the rpc
 * body bound), -ENOMEM. */
int txn_proxy_req_encode(const struct txn_proxy_req *q, uint8_t **out, size_t *len);
/* The same message in two pieces: *out (malloc'd, *len bytes) then the
 * file's content where it is (*tail, *tail_len; NULL when it has none): the
 * content is the last field, sent by reference (rpc_call2), not copied. */
int txn_proxy_req_encode_split(const struct txn_proxy_req *q, uint8_t **out, size_t *len,
    const uint8_t **tail, size_t *tail_len);
/* Decode buf into q (pointers into buf).  0, -EBADMSG (anything malformed:
 * a field missing, twice, of the wrong type or out of range, bins that do
 * not parse), -ENOMEM.  Never reads outside buf.  Release q after. */
int txn_proxy_req_decode(const uint8_t *buf, size_t len, struct txn_proxy_req *q);
void txn_proxy_req_release(struct txn_proxy_req *q);

/* The answer body: attr (may be NULL) and a flat record (rec NULL: none). */
int txn_proxy_ans_encode(const struct record_attr *attr, const uint8_t *rec, size_t rec_len,
    uint8_t *buf, size_t cap, size_t *len);
/* 0 or -EBADMSG; *rec NULL when absent; has_attr false when absent. */
int txn_proxy_ans_decode(const uint8_t *buf, size_t len, bool *has_attr, struct record_attr *attr,
    const uint8_t **rec, size_t *rec_len);
/* A write's answer handing the version back to its caller (the partition's
 * other replica): attr and ver (a TXN_MSG_REPLICA body, ver_len bytes). */
int txn_proxy_ans_encode_version(const struct record_attr *attr, const uint8_t *ver,
    size_t ver_len, uint8_t *buf, size_t cap, size_t *len);
/* The answer's version (pointing into buf): 0, -ENOENT (none), -EBADMSG. */
int txn_proxy_ans_version(const uint8_t *buf, size_t len, const uint8_t **ver, size_t *ver_len);

/* ---- the instance (network.c creates it) --------------------------------- */

struct rpc;
struct node;
struct txn_remote;

/* Registers the three handlers on rpc (before rpc_start). */
int txn_remote_create(struct rpc *rpc, uint64_t self, const uint32_t *transaction_max_ms,
    uint32_t failover_ms, struct txn_remote **out);
void txn_remote_destroy(struct txn_remote *rm);
/* The node the handlers serve (NULL: none; they answer TXN_ENOTMASTER). */
void txn_remote_node_set(struct txn_remote *rm, struct node *node);
/* One request to node (op, within transaction-max-ms or min_ms, the
 * longer); rpc_call's results. */
struct rpc_answer;
int txn_remote_call(struct txn_remote *rm, uint64_t node, uint32_t op, const void *req, size_t len,
    uint32_t min_ms, struct rpc_answer *ans);
/* This node's id. */
uint64_t txn_remote_self(const struct txn_remote *rm);
/* Atomic, 1 (the default): proxied writes ask their master to hand the
 * version back when this node is the partition's other replica
 * (TXN_PF_TAKE_VERSION).  Tests set 0 to run the replica-write round of a
 * two-node cluster. */
extern int txn_remote_take_version;
/* The STAT_FABRIC rows of the data path. */
void txn_remote_values(struct txn_remote *rm, uint64_t *v);

#endif
