/*
 * fabric.h - the node-to-node transport (docs/cluster.md).
 *
 * One TCP listener per node, persistent authenticated connections to peers,
 * and a message format of typed fields.  The fabric knows no records and no
 * cluster state: it moves messages between node ids.  Layers above it
 * (cluster/: heartbeat, membership, replication, migration) register a
 * handler per message type and send messages to a node id.
 *
 * Messages.  A message is a type (u16, enum fabric_msg_type) and a list of
 * fields, each a field id (u16), a field type (u8) and a value of a stated
 * length.  Field ids are per message type and never reused; a receiver
 * skips ids it does not know, so a newer sender can add fields.  A consumer
 * asks for the fields it needs; a duplicated field, or one of the wrong
 * type, is an error (-EBADMSG) and a missing one -ENOENT: the consumer
 * refuses such a message.
 *
 * Threads.  fabric_start() starts one event thread (epoll; idle = asleep
 * in epoll_wait, woken by sockets or the next timer; a send to a node with
 * nothing queued is written by the sending thread itself).  Every
 * handler and the peer callback run on that thread, with no fabric lock
 * held: they must not block (no storage I/O, no waiting for another
 * message) and must not call fabric_destroy(); they may call fabric_send().
 * fabric_send(), fabric_peer_add() and the getters are safe from any thread.
 *
 * Errors: 0 or -errno; RECFS_ECONFIG for a refused secret file.
 */
#ifndef RECFS_FABRIC_FABRIC_H
#define RECFS_FABRIC_FABRIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Wire protocol version: a peer speaking another one is refused. */
#define FABRIC_PROTOCOL_VERSION 2  /* 2: frame MACs are GMAC (1: HMAC-SHA256) */

/* Largest message (type + fields) a frame may carry after authentication.
 * A length prefix above it drops the connection.  Room for a record of the
 * largest write-block-size (8 MiB) and the request around it (data path). */
#define FABRIC_MSG_MAX (8 * 1024 * 1024 + 64 * 1024)
/* Largest message before authentication (hello, auth): strangers cannot
 * make a node allocate more than this. */
#define FABRIC_HANDSHAKE_MSG_MAX 1024
/* Default bound of the bytes queued for one peer (fabric_config). */
#define FABRIC_SEND_QUEUE_DEFAULT (4 * 1024 * 1024)
/* A connection that has not authenticated within this is dropped. */
#define FABRIC_HANDSHAKE_MS 3000
/* Reconnect backoff of outgoing connections: doubles from min to max. */
#define FABRIC_BACKOFF_MIN_MS 100
#define FABRIC_BACKOFF_MAX_MS 5000
/* Outgoing addresses a fabric keeps (seeds and addresses learnt). */
#define FABRIC_DIALERS_MAX 256
/* Secret file size bounds (bytes, trailing newline stripped). */
#define FABRIC_SECRET_MIN 16
#define FABRIC_SECRET_MAX 4096

/*
 * Message types.  Numbers are part of the wire format: NEVER reuse or
 * renumber one; retire a type by commenting it out.  1..15 belong to the
 * fabric itself; handlers can be registered for 16..FABRIC_MSG_TYPE_MAX-1.
 */
enum fabric_msg_type {
	FABRIC_MSG_HELLO = 1,       /* handshake: identity and nonce (fabric) */
	FABRIC_MSG_AUTH = 2,        /* handshake: proof of the secret (fabric) */
	FABRIC_MSG_REFUSE = 3,      /* "I am dropping you, because" (fabric) */
	FABRIC_MSG_HEARTBEAT = 16,  /* cluster/: heartbeat pulse */
	FABRIC_MSG_CLUSTERING = 17, /* cluster/: succession proposal (prepare/accept/reject/commit) */
	FABRIC_MSG_RPC = 18,        /* cluster/: request and answer (rpc.h) */
	FABRIC_MSG_TEST = 250,      /* unit tests and recfs-bench */
	FABRIC_MSG_TYPE_MAX = 256
};

/* Field types (u8 on the wire).  Never renumber. */
enum fabric_field_type {
	FABRIC_FIELD_U32 = 1,   /* 4 bytes, big-endian */
	FABRIC_FIELD_U64 = 2,   /* 8 bytes, big-endian */
	FABRIC_FIELD_BYTES = 3  /* any length (strings carry no NUL) */
};

/*
 * Field ids of the fabric's own messages.  NEVER reuse or renumber an id;
 * a retired field's id stays reserved here as a comment.
 */
enum fabric_field_id {
	FABRIC_FIELD_NODE_ID = 1,        /* HELLO: u64 sender's node id */
	FABRIC_FIELD_CLUSTER_NAME = 2,   /* HELLO: bytes */
	FABRIC_FIELD_NONCE = 3,          /* HELLO: bytes, 32 random bytes */
	FABRIC_FIELD_LISTEN_ADDRESS = 4, /* HELLO: bytes, sender's fabric address */
	FABRIC_FIELD_LISTEN_PORT = 5,    /* HELLO: u32, sender's fabric port */
	FABRIC_FIELD_PROOF = 6,          /* AUTH: bytes, HMAC-SHA256 proof */
	FABRIC_FIELD_REASON = 7          /* REFUSE: u32 enum fabric_refusal */
};

/* ---- message encoding ---------------------------------------------------- */

/*
 * Builds one message into a caller's buffer; no allocation.  The last field
 * may be put by reference (fabric_msg_put_bytes_ref): its value stays in the
 * caller's memory (tail, and a second piece tail2), and the message is
 * buf[0..len), tail[0..tail_len), tail2[0..tail2_len).
 */
struct fabric_msg_writer {
	uint8_t *buf;
	size_t cap;
	size_t len;
	int err;      /* first error: -EMSGSIZE when buf was too small */
	const uint8_t *tail;   /* the last field's value, by reference, or NULL */
	size_t tail_len;
	const uint8_t *tail2;  /* its second piece (after tail), or NULL */
	size_t tail2_len;
};

void fabric_msg_writer_init(struct fabric_msg_writer *w, void *buf, size_t cap, uint16_t type);
void fabric_msg_put_u32(struct fabric_msg_writer *w, uint16_t id, uint32_t v);
void fabric_msg_put_u64(struct fabric_msg_writer *w, uint16_t id, uint64_t v);
void fabric_msg_put_bytes(struct fabric_msg_writer *w, uint16_t id, const void *p, size_t len);
/* A bytes field whose value is not copied: only its header goes into buf, and
 * p must stay valid until the message is sent (fabric_send copies what it
 * keeps).  It must be the last field: a put after it is an error (-EINVAL). */
/* A bytes field of len bytes that the caller fills in place (no copy from
 * elsewhere): its value's address in buf, or NULL (w->err set). */
uint8_t *fabric_msg_put_space(struct fabric_msg_writer *w, uint16_t id, size_t len);
void fabric_msg_put_bytes_ref(struct fabric_msg_writer *w, uint16_t id, const void *p, size_t len);
/* The same for a value in two pieces, p then p2 (one field of len + len2). */
void fabric_msg_put_bytes_ref2(struct fabric_msg_writer *w, uint16_t id, const void *p, size_t len,
    const void *p2, size_t len2);

/* ---- message decoding ---------------------------------------------------- */

/* A decoded message; points into the bytes it was decoded from. */
struct fabric_msg {
	uint16_t type;
	const uint8_t *fields;   /* the encoded fields */
	size_t fields_len;
};

/*
 * Checks that buf[0..len) is one well-formed message: a type, then fields
 * whose headers and lengths all lie inside len, U32/U64 fields of exactly
 * 4/8 bytes.  Field ids and unknown field types are not judged (a consumer
 * skips what it does not know).  Returns 0 or -EBADMSG.
 */
int fabric_msg_decode(const void *buf, size_t len, struct fabric_msg *m);
/* 0, -ENOENT (absent) or -EBADMSG (wrong type, or present twice). */
int fabric_msg_get_u32(const struct fabric_msg *m, uint16_t id, uint32_t *v);
int fabric_msg_get_u64(const struct fabric_msg *m, uint16_t id, uint64_t *v);
int fabric_msg_get_bytes(const struct fabric_msg *m, uint16_t id, const uint8_t **p, size_t *len);

/* ---- secret ---------------------------------------------------------------- */

/*
 * Reads the cluster secret from path into out (trailing newlines stripped).
 * Refuses (RECFS_ECONFIG, logged with the file name and why) unless the
 * file is a regular file owned by the effective uid with no group/other
 * permission bits (0600 or stricter), FABRIC_SECRET_MIN..MAX bytes long.
 */
int fabric_secret_load(const char *path, uint8_t out[FABRIC_SECRET_MAX], size_t *len);

/* ---- the fabric ------------------------------------------------------------ */

/* Why a connection was dropped; each has a counter (fabric_stats). */
enum fabric_refusal {
	FABRIC_REFUSE_AUTH,            /* wrong secret: the proof did not verify */
	FABRIC_REFUSE_CLUSTER_NAME,    /* another cluster-name */
	FABRIC_REFUSE_VERSION,         /* another protocol version */
	FABRIC_REFUSE_MALFORMED,       /* bad magic/kind/fields, truncated frame */
	FABRIC_REFUSE_OVERSIZED,       /* length prefix above the bound */
	FABRIC_REFUSE_MAC,             /* a frame's MAC did not verify (tampered, replayed) */
	FABRIC_REFUSE_DUPLICATE_NODE,  /* node id = ours, or = another connected node's */
	FABRIC_REFUSE_TIMEOUT,         /* no authentication within FABRIC_HANDSHAKE_MS */
	FABRIC_REFUSE_TOO_MANY,        /* too many unauthenticated connections */
	FABRIC_REFUSE_TLS,             /* TLS handshake failed: no TLS, another CA, no certificate */
	FABRIC_REFUSE_COUNT
};

/* "auth", "cluster_name", ...: the counter suffix and the log word. */
const char *fabric_refusal_name(enum fabric_refusal r);

struct fabric;

/* Called on the fabric thread when a node becomes reachable (up) or stops
 * being reachable (its last authenticated connection closed and none came
 * back within 500 ms: crossed connections being sorted out are no
 * departure). */
typedef void (*fabric_peer_fn)(void *arg, uint64_t node_id, bool up);
/* Called on the fabric thread for each authenticated message of a type;
 * m is valid only during the call.  A message a borrower takes
 * (fabric_read_lent) is handed to its handler on the borrower's thread. */
typedef void (*fabric_handler_fn)(void *arg, uint64_t from_node, const struct fabric_msg *m);

struct fabric_config {
	const char *address;          /* listen address (numeric IPv4/IPv6) */
	uint16_t port;                /* 0: any free port (tests); see fabric_port() */
	uint64_t node_id;             /* this node's persistent id, not 0 */
	const char *cluster_name;
	const uint8_t *secret;        /* from fabric_secret_load; copied */
	size_t secret_len;
	size_t send_queue_max;        /* bytes per peer; 0 = FABRIC_SEND_QUEUE_DEFAULT */
	fabric_peer_fn on_peer;       /* may be NULL */
	void *arg;
	uint8_t protocol_version;     /* 0 = FABRIC_PROTOCOL_VERSION; tests only */
	uint32_t handshake_ms;        /* 0 = FABRIC_HANDSHAKE_MS; tests only */
	/*
	 * TLS (all three set; NULL = plaintext frames with MACs): every
	 * connection runs TLS 1.3, both sides present this PEM certificate
	 * (chain) and key, and the peer's certificate must be signed by the
	 * PEM CA file (mutual; no host name is checked: a node proves its
	 * membership with the cluster secret inside TLS, as without it).
	 * A peer without TLS or with a certificate of another CA is refused
	 * (FABRIC_REFUSE_TLS).
	 */
	const char *tls_cert_file;
	const char *tls_key_file;
	const char *tls_ca_file;
};

/* Binds the listener (errors: -EADDRINUSE ..., logged with the address;
 * RECFS_ECONFIG for a TLS file that is missing, unreadable or not a valid
 * PEM certificate/key/CA, logged with the file and why); no thread yet.  */
int fabric_create(const struct fabric_config *cfg, struct fabric **out);
/* Registers a handler; before fabric_start() only.  -EINVAL for types < 16. */
int fabric_handler_set(struct fabric *f, uint16_t type, fabric_handler_fn fn, void *arg);
int fabric_start(struct fabric *f);
/* Stops the thread, closes every connection, frees everything. */
void fabric_destroy(struct fabric *f);
/* The bound listen port. */
uint16_t fabric_port(const struct fabric *f);

/*
 * How long a connection may leave sent bytes unacknowledged (the heartbeat
 * sets its timeout here, before fabric_start; 0, the default: TCP's own,
 * about 15 minutes).  Every fabric socket gets TCP_USER_TIMEOUT = ms: a
 * connection that outlived a cut link (its bytes in TCP's retransmission
 * back-off, which doubles up to minutes) is closed within ms of its oldest
 * unacknowledged byte and redialed, rather than holding what is queued on
 * it until a retransmission happens to get through.  A peer that reads,
 * however slowly, is not closed by it; one whose receive window stays shut
 * for ms (it read nothing for that long: no pulse either) is, as Linux
 * applies the timeout to zero-window probing too.  A node that was
 * connected before is dialed at least once every ms (not backing off to
 * FABRIC_BACKOFF_MAX_MS), so a healed link is found again within that.
 * -EINVAL once started.
 */
int fabric_ack_timeout_set(struct fabric *f, uint32_t ms);

/* Keeps a persistent outgoing connection to "host:port" (numeric address),
 * reconnected with backoff.  -EINVAL for a bad address, -EEXIST if known,
 * -ENOSPC past FABRIC_DIALERS_MAX addresses. */
int fabric_peer_add(struct fabric *f, const char *address);

/*
 * Sends an encoded message (from a writer) to a node; never blocks on
 * the network.  With nothing queued for the node the calling thread writes
 * it to the socket itself (non-blocking); otherwise it is copied into the
 * node's send queue for the event thread.
 * Returns 0, -EHOSTUNREACH (no such node has ever authenticated),
 * -ENOBUFS (the node's send queue is at its bound: back-pressure; the
 * caller retries later or drops), -EMSGSIZE (over FABRIC_MSG_MAX),
 * -EBADMSG (w->err set), -ENOMEM.
 * Messages to one node arrive in order while its connection lasts; a
 * connection drop loses what was in flight (no retransmission).  What is
 * queued while it has no connection goes out on the next one within the
 * grace period; once the node is reported down (on_peer) its queue is
 * dropped: a message is never delivered after its sender heard the node
 * was down.
 */
int fabric_send(struct fabric *f, uint64_t node_id, const struct fabric_msg_writer *w);

struct fabric_stats {
	uint64_t bytes_sent, bytes_received;  /* all fabric bytes, frames included
	                                       * (under TLS: before encryption) */
	uint64_t msgs_sent, msgs_received;    /* authenticated messages */
	uint64_t connects;                    /* connections authenticated */
	uint64_t connect_failures;            /* outgoing connect() that failed */
	uint64_t send_queue_full;             /* fabric_send() answered -ENOBUFS */
	uint64_t refused[FABRIC_REFUSE_COUNT];
	uint64_t refused_by_peer;             /* a peer sent REFUSE to us */
	uint64_t closed_ack_timeout;          /* closed: nothing acknowledged within the ack timeout */
	uint64_t send_queue_dropped;          /* queued for a peer, dropped when it was reported down */
	uint32_t peers_connected;             /* gauge */
};

struct fabric_peer_info {
	uint64_t node_id;
	char address[64];      /* "ip:port" of its listener, as it announced */
	bool connected;
	uint64_t bytes_sent, bytes_received, msgs_sent, msgs_received;
	uint64_t connects, auth_failures;
	size_t queued_bytes;
};

void fabric_stats_get(struct fabric *f, struct fabric_stats *s);
/* Fills up to max peers; returns how many peers exist. */
unsigned fabric_peers_get(struct fabric *f, struct fabric_peer_info *out, unsigned max);
/*
 * A caller waiting for a node's answer reads that node's connection
 * itself instead of sleeping while the fabric thread reads it and wakes
 * it: one thread woken per message instead of two.  take(arg, msg, len)
 * sees each message's bytes before they are verified (only to say whether
 * this thread handles it: true for the answers it and its like wait for);
 * a wanted message is verified and given to its type's handler on this
 * thread (so such a handler must be callable from any thread); at the
 * first message not wanted, the connection goes back to the fabric
 * thread, which handles it and what follows, in order.  Returns when
 * done(arg) is true, at until_ns (monotonic), at an error or end of the
 * connection (the fabric thread then closes it), or at such a message:
 * 0.  -EBUSY, nothing done: no such connection, TLS (one SSL object), or
 * the fabric thread or another caller is reading it - wait as usual.
 * done() is asked at least every 20 ms.  Not from the fabric thread.
 */
typedef bool (*fabric_take_fn)(void *arg, const uint8_t *msg, size_t len);
int fabric_read_lent(struct fabric *f, uint64_t node_id, uint64_t until_ns, fabric_take_fn take,
    bool (*done)(void *arg), void *arg);
/* Authenticated messages received from node_id so far (0: never
 * authenticated).  Any thread; the rpc layer tells a silent node by it. */
uint64_t fabric_peer_msgs_received(struct fabric *f, uint64_t node_id);

#endif
