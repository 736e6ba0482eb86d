/*
 * txn.h - the transaction layer: the only way into the engine.
 *
 * Callers (the FUSE daemon, recfs-bench, tests) name records by namespace,
 * set and key; this layer checks the names, computes the digest, decides
 * where the operation runs (txn_route: today always here; in a cluster the
 * record's master), takes the record lock, talks to the index and the
 * storage engine, and counts the outcome.  It is the one place that decides
 * "local or remote" (docs/architecture.md, Routing), so nothing above it
 * may include index, storage or namespace internals.
 *
 * Threads: every function may be called from any thread; concurrent calls
 * on the same record are serialised by its record lock.
 *
 * Errors (negative): -ENOENT (no such record or set), -EEXIST,
 * -ENAMETOOLONG / -EINVAL (bad names), -EFBIG (record over max-record-size),
 * -ENOSPC (stop-writes or storage full), -EIO / RECFS_ECHECKSUM (storage),
 * -ENODATA (bin missing), -ENOTEMPTY (rmdir of a non-empty set), -ENOMEM.
 */
#ifndef RECFS_TXN_TXN_H
#define RECFS_TXN_TXN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/digest.h"
#include "../base/error.h"
#include "../base/histogram.h"
#include "../base/statistic.h"
#include "../config/config.h"
#include "../record/record.h"

struct node;       /* the engine instance: every namespace of this daemon */
struct namespace;  /* one namespace (opaque here) */

/* ---- the node ---------------------------------------------------------- */

/*
 * Open every namespace of cfg (creating or loading storage).  cfg must
 * outlive the node; dynamic parameters are read from it live.
 * Returns 0 or a negative code (message logged).
 */
int node_open(struct node **out, struct recfs_config *cfg);
/* Stop background threads; clean = flush everything and mark storage clean. */
void node_close(struct node *node, bool clean);

/*
 * The network side (docs/cluster.md): when cfg names seeds, loads the
 * cluster secret, starts the fabric listener, the heartbeat, clustering and
 * the rpc workers, and dials the seeds; *out is then the handle, else NULL and nothing starts.
 * Errors (logged, naming the file or address): RECFS_ECONFIG (secret file
 * refused, node id 0), -EADDRINUSE and other listen errors, -ENOMEM.
 */
struct txn_network;
int txn_network_start(const struct recfs_config *cfg, uint64_t node_id, struct txn_network **out);
/* Stops and frees it (NULL: nothing).  Detach it from the node first.  The
 * other nodes are told (a last heartbeat flagged leaving), so they form
 * the cluster without this node at once. */
void txn_network_stop(struct txn_network *net);
/* The same without telling them: they notice only by the heartbeat's
 * silence, as after a crash (tests of a node that dies). */
void txn_network_stop_silently(struct txn_network *net);

/* One other node as .info/peers shows it: the heartbeat's view merged with
 * the fabric's by node id. */
struct txn_peer {
	uint64_t node_id;
	char address[64];          /* its fabric "ip:port" */
	bool heard;                /* the heartbeat has had a pulse from it */
	bool alive;                /* heartbeat: a pulse within the timeout */
	uint64_t age_ms;           /* since its last pulse (heard only) */
	bool connected;            /* an authenticated fabric connection now */
	uint64_t bytes_sent, bytes_received, msgs_sent, msgs_received;
	uint64_t connects, auth_failures;
	uint64_t queued_bytes;
};



/* The cluster as this node sees it (docs/cluster.md). */
#define TXN_CLUSTER_NODES_MAX 64
struct txn_cluster {
	uint64_t cluster_key;           /* 0: an orphan */
	uint64_t principal;             /* 0: an orphan */
	unsigned size;                  /* nodes in the succession (1 for an orphan) */
	uint64_t succession[TXN_CLUSTER_NODES_MAX]; /* principal first, descending */
	bool integrity;                 /* every node of the succession is alive */
	uint64_t change_epoch_ms;       /* the last change */
	char cause[160];                /* of the last change */
	uint64_t changes, proposals, proposals_aborted;
	uint64_t nodes_left_out;        /* muted members left out of proposals */
	uint64_t migrate_partitions_remaining; /* migrations to send or receive, all namespaces */
};

/* This node's id (the daemon's node-id, resolved): the partition tables
 * name it as the master of everything until a network says otherwise. */
void txn_node_id_set(struct node *node, uint64_t node_id);
/* Attaches the started network to the node (NULL detaches it) so that the
 * node's statistics and ticker line show the cluster and its partition
 * tables follow the cluster's successions (without one: this node alone). */
void txn_node_network_set(struct node *node, struct txn_network *net);
/* Fills out and returns true when the node runs a network; false for a
 * single node without seeds (it is its own cluster). */
bool txn_node_cluster(struct node *node, struct txn_cluster *out);
/* The STATISTICS_FABRIC rows of the node's network (v has STAT_FABRIC_COUNT
 * values; all 0 for a single node without seeds). */
void txn_node_fabric_values(struct node *node, uint64_t *v);
/* The STATISTICS_LATENCY_FABRIC histograms (out has STAT_LAT_FABRIC_COUNT;
 * all empty for a single node without seeds). */
void txn_node_fabric_latencies(struct node *node, struct histogram_snapshot *out);
/* .info/peers: fills up to max other nodes in node id order; returns how
 * many there are (0 without a network; -ENOMEM is reported as 0 peers). */
unsigned txn_node_peers(struct node *node, struct txn_peer *out, unsigned max);

unsigned node_namespace_count(const struct node *node);
struct namespace *node_namespace(struct node *node, unsigned i);
struct namespace *node_namespace_find(struct node *node, const char *name, size_t len);
const char *namespace_name(const struct namespace *ns);
/* The namespace's configuration (file-bin, default mode, ...). */
const struct ns_config *namespace_config(const struct namespace *ns);
/* Its index in the configuration's namespaces (cfg->ns[i]), for config_*_text. */
int namespace_config_index(const struct namespace *ns);

/*
 * Change one dynamic parameter at run time (the /.info/config files):
 * validated by config_set_text (-EINVAL: bad value, nothing changed;
 * -EACCES: static parameter; -ENOENT: no such parameter or namespace; err
 * gets the reason), logged with its old and new value, and applied: most
 * parameters are read live, storage-engine ones also reach the engine's
 * config_changed (defrag-lwm-pct re-sweeps the write blocks), a new
 * ticker-interval applies at once.  ns_index is -1 for service-level
 * sections.  Serialized internally; any thread.
 */
int node_config_set(struct node *node, int ns_index, enum config_section section,
    const char *name, const char *value, char *err, size_t err_size);

/* ---- records ----------------------------------------------------------- */

struct txn_key {
	const char *set;     /* set_len 0 = the null set */
	size_t set_len;
	const char *key;
	size_t key_len;
};

/* What stat(2) needs, served from the index without touching storage. */
struct record_attr {
	struct digest digest;
	uint64_t size;           /* file-bin length */
	bool has_meta;           /* mode/uid/gid/mtime were stored */
	uint32_t mode;           /* permission bits */
	uint32_t uid, gid;
	int64_t mtime_ns;        /* stored mtime, else last-update time */
	int64_t atime_ns;        /* explicitly set atime; 0 = none (show the mtime) */
	uint64_t ino;            /* st_ino: kept with the record (across renames and
	                          * restarts), else digest_inode(digest); sets: 0 */
	uint64_t last_update_ms; /* since RECFS_EPOCH */
	uint16_t generation;
	uint32_t void_time;      /* since RECFS_EPOCH, 0 = never */
	uint32_t partition;
	bool damaged;            /* the newest copy is damaged (cold start): reads fail
	                          * (RECFS_ECHECKSUM), size is 0; an overwrite, a
	                          * truncate to 0 or an unlink clears it */
	bool chunked;            /* the head of a large file (txn/chunk.h): size is the
	                          * file's, its content is in chunk records */
};

int txn_stat(struct namespace *ns, const struct txn_key *k, struct record_attr *out);

/* A whole record read from storage.  Owns buf; rec's strings and bins point into it. */
struct txn_record {
	struct record rec;
	uint8_t *buf;
	const struct bin *file_bin;  /* NULL if the record has no file bin */
	struct record_attr attr;
};

int txn_read(struct namespace *ns, const struct txn_key *k, struct txn_record *out);
/* As txn_read, but a record this node stores, of at most buf_size bytes, is
 * read into buf (aligned to TXN_READ_ALIGN: the device engine then reads a
 * record that starts its write block straight into it, with no copy) and
 * out->buf is NULL: rec's strings and bins point into buf, valid while the
 * caller keeps it.  A record read from another node, or a larger one, is
 * in out->buf as with txn_read. */
#define TXN_READ_ALIGN 4096
int txn_read_into(struct namespace *ns, const struct txn_key *k, void *buf, size_t buf_size,
    struct txn_record *out);
void txn_record_release(struct txn_record *r);

/* Write flags. */
#define TXN_CREATE_ONLY 0x01  /* -EEXIST if the record exists */
#define TXN_UPDATE_ONLY 0x02  /* -ENOENT if it does not */
#define TXN_DURABLE     0x04  /* return once durable on storage (fsync) */

/* Bin operation flags. */
#define TXN_BIN_REMOVE  0x01  /* remove the bin; -ENODATA if absent */
#define TXN_BIN_CREATE  0x02  /* -EEXIST if present (XATTR_CREATE) */
#define TXN_BIN_REPLACE 0x04  /* -ENODATA if absent (XATTR_REPLACE) */

struct txn_bin_op {
	const char *name;
	size_t name_len;
	unsigned flags;          /* TXN_BIN_* */
	uint8_t type;            /* enum bin_type, for puts */
	const void *data;        /* STRING/BLOB */
	uint32_t len;
	int64_t integer;
	double dbl;
};

/*
 * One record write: every field marked set_* replaces that part, the rest
 * of an existing record (other bins, metadata, TTL setting) is kept.  A new
 * record starts empty.  Every write stores a new generation and sets the
 * void time from the record's TTL setting (or the namespace default-ttl).
 */
struct txn_write {
	unsigned flags;                /* TXN_CREATE_ONLY | TXN_UPDATE_ONLY | TXN_DURABLE */
	bool set_file;                 /* replace file content */
	const void *file_data;
	size_t file_len;
	bool set_size;                 /* truncate/extend content (zero fill) */
	uint64_t size;
	bool set_mode;   uint32_t mode;
	bool set_uid;    uint32_t uid;
	bool set_gid;    uint32_t gid;
	bool set_mtime;  int64_t mtime_ns;
	bool set_atime;  int64_t atime_ns; /* stored; reads never update it (noatime) */
	bool set_ttl;    int32_t ttl;  /* RECORD_TTL_DEFAULT, RECORD_TTL_NEVER or seconds */
	const struct txn_bin_op *bins;
	size_t n_bins;
};

/* Write; on success *out (may be NULL) holds the new attributes. */
int txn_write(struct namespace *ns, const struct txn_key *k, const struct txn_write *w,
    struct record_attr *out);

/* Durable delete (a tombstone on persistent storage).  -ENOENT if missing. */
int txn_delete(struct namespace *ns, const struct txn_key *k);

/* Rename within a namespace: write new, then delete old.  Replaces an
 * existing target unless TXN_RENAME_NOREPLACE (then -EEXIST). */
#define TXN_RENAME_NOREPLACE 0x01
int txn_rename(struct namespace *ns, const struct txn_key *from, const struct txn_key *to,
    unsigned flags);

/* Make a record durable now (fsync).  -ENOENT if missing. */
int txn_sync(struct namespace *ns, const struct txn_key *k);

/* Make every write, delete, rename and set change made so far in the
 * namespace durable (fsync of a directory). */
int txn_namespace_sync(struct namespace *ns);

/* ---- sets -------------------------------------------------------------- */

/* Create a set (persists while empty).  -EEXIST if it exists or a null-set
 * record has that name.  w (may be NULL: none stored) gives its mode, owner
 * and mtime as txn_set_update takes them. */
int txn_set_create(struct namespace *ns, const char *set, size_t len, const struct txn_write *w);
/* Remove an empty set: -ENOTEMPTY, -ENOENT. */
int txn_set_remove(struct namespace *ns, const char *set, size_t len);
/* 0 if the set exists, else -ENOENT. */
int txn_set_exists(struct namespace *ns, const char *set, size_t len);

/*
 * A set's attributes, as a directory shows them: has_meta, mode, uid, gid,
 * atime_ns (stored by txn_set_create / txn_set_update; without has_meta the
 * caller shows its defaults), mtime_ns and last_update_ms (its ctime), which move
 * when records are created, deleted or renamed in it; digest and generation
 * are its marker's (zero if it has none).  Served from memory and the
 * index.  -ENOENT if the set does not exist.
 */
int txn_set_stat(struct namespace *ns, const char *set, size_t len, struct record_attr *out);
/*
 * Store a set's mode, owner, mtime and atime (chmod, chown, utimens on its
 * directory): only w's set_mode, set_uid, set_gid, set_mtime and set_atime
 * may be given (anything else: -EINVAL); its ctime moves.  They are kept in its
 * marker record, so a set created by writes alone (no mkdir) gets one and
 * from then on persists while empty.  A set with no stored metadata starts
 * from 0755, uid 0, gid 0: give every field the first time to store others.
 * On success *out (may be NULL) holds txn_set_stat's answer.  -ENOENT,
 * -ENOSPC (stop-writes, storage full), -EIO.
 */
int txn_set_update(struct namespace *ns, const char *set, size_t len, const struct txn_write *w,
    struct record_attr *out);

struct txn_set_info {
	char name[RECORD_SET_MAX + 1];
	uint64_t objects;
	uint64_t data_bytes;     /* bytes its records occupy on storage */
	uint64_t tombstones;
};
/* Calls fn for each set (empty ones too), in id order; stops if fn returns non-zero. */
int txn_set_foreach(struct namespace *ns, int (*fn)(void *arg, const struct txn_set_info *info), void *arg);
int txn_set_info(struct namespace *ns, const char *set, size_t len, struct txn_set_info *out);

/* ---- listing ----------------------------------------------------------- */

/*
 * A listing position: a plain value the caller keeps (copyable).  Order is
 * partition, then digest, so records that exist throughout a listing are
 * returned exactly once however many are created or deleted meanwhile.
 */
struct txn_cursor {
	uint32_t partition;
	struct digest last;
	bool started;            /* last is valid */
	bool done;
};

struct txn_entry {
	char key[RECORD_KEY_MAX + 1];   /* NUL-terminated */
	uint16_t key_len;
	struct record_attr attr;
};

static inline void txn_cursor_init(struct txn_cursor *c)
{
	memset(c, 0, sizeof(*c));
}

/* Up to max records of the set after cur; advances cur.  Returns the number
 * filled (0 = end) or a negative code.  Memory use is bounded by max. */
int txn_list(struct namespace *ns, const char *set, size_t set_len, struct txn_cursor *cur,
    struct txn_entry *out, size_t max);

/* ---- the tree: directories and symbolic links inside sets (tree.c) ------ */

/*
 * A directory inside a set is a record of mode type RECORD_MODE_DIR whose
 * content is its directory id (16 lowercase hex digits of a random non-zero
 * 64-bit number); its entries are the set's records keyed "/d" + that id +
 * "/" + name, so a lookup is one record lookup and a rename of a directory
 * rewrites its own record only.  The top level of a set has no id (0): its
 * entries keep their plain names.  A symbolic link is a record of mode type
 * RECORD_MODE_LINK whose content is its target.  docs/architecture.md, "The
 * tree".
 */
#define TXN_DIR_KEY_PREFIX 19   /* "/d" + 16 hex digits + "/" */
/* The longest name inside a tree directory (the top level of a set: 255). */
#define TXN_DIR_NAME_MAX (RECORD_KEY_MAX - TXN_DIR_KEY_PREFIX)
/* The longest symbolic link target (PATH_MAX without its NUL). */
#define TXN_LINK_MAX 4095

/*
 * The key of entry name in directory dir of set (dir 0: the set's top
 * level, or the null set's when set_len is 0: the name itself).  buf has
 * RECORD_KEY_MAX + 1 bytes and must outlive k.  -ENAMETOOLONG (a name over
 * 255 bytes, or over TXN_DIR_NAME_MAX inside a tree directory), -EINVAL
 * (".", "..", a '/', a NUL; dir != 0 in the null set).
 */
int txn_tree_key(const char *set, size_t set_len, uint64_t dir, const char *name, size_t len,
    char *buf, struct txn_key *k);

/*
 * mkdir: a new directory record at k (set_len > 0), with w's permission
 * bits, owner and mtime (only those), and a new id (*id).  *out (may be
 * NULL) its attributes.  -EEXIST, and txn_write's errors.
 */
int txn_dir_create(struct namespace *ns, const struct txn_key *k, const struct txn_write *w,
    uint64_t *id, struct record_attr *out);
/* The id of the directory at k (one record read), its attributes in *out
 * (may be NULL).  -ENOENT, -ENOTDIR (not a directory), -EIO (no valid id). */
int txn_dir_open(struct namespace *ns, const struct txn_key *k, uint64_t *id,
    struct record_attr *out);
/* A page of directory dir of set (dir 0: the set's top level), as
 * txn_list; each entry's key is its name.  In a cluster one round trip per
 * node per page, as txn_list. */
int txn_dir_list(struct namespace *ns, const char *set, size_t set_len, uint64_t dir,
    struct txn_cursor *cur, struct txn_entry *out, size_t max);
/* rmdir of the directory at k: -ENOTEMPTY (any entry on any node),
 * -ENOTDIR, -ENOENT, and txn_delete's errors. */
int txn_dir_remove(struct namespace *ns, const struct txn_key *k);
/*
 * rename of a tree entry (file, directory or link) from -> to: POSIX's type
 * rules (a directory replaces only an empty directory: -ENOTDIR,
 * -ENOTEMPTY; anything else may not replace a directory: -EISDIR), a
 * directory stays in its set (-EXDEV), then txn_rename.  Renaming a
 * directory rewrites its own record only.
 */
int txn_tree_rename(struct namespace *ns, const struct txn_key *from, const struct txn_key *to,
    unsigned flags);
/* symlink: a new link record at k with target (1..TXN_LINK_MAX bytes;
 * longer: -ENAMETOOLONG), owner and mtime from w.  -EEXIST. */
int txn_link_create(struct namespace *ns, const struct txn_key *k, const char *target,
    size_t len, const struct txn_write *w, struct record_attr *out);
/* readlink: the target of the link at k into buf (cap bytes, not
 * NUL-terminated), its length in *len.  -EINVAL (not a link), -ENOENT. */
int txn_link_read(struct namespace *ns, const struct txn_key *k, char *buf, size_t cap,
    size_t *len);

/* ---- partitions -------------------------------------------------------- */

/* Replicas a partition can have (replication-factor's bound). */
#define TXN_REPLICAS_MAX 32

/* Where a partition lives (docs/cluster.md, Partitions). */
struct txn_partition {
	uint64_t cluster_key;          /* of the table it came from; 0: alone */
	uint64_t master;               /* node id of the working master, where its operations
	                                * run: replicas[0] unless a migration is filling it;
	                                * 0 while the rebalance of a change is pending */
	unsigned n_replicas;           /* the effective replication factor */
	uint64_t replicas[TXN_REPLICAS_MAX]; /* the final replicas, final master first */
	bool am_master;                /* this node is the working master */
	bool am_replica;               /* this node is one of its replicas, not the working master */
	char state;                    /* here: 'S' a replica holding its data, 'D' a replica still
	                                * receiving, 'Z' not a replica but holding data, 'A' not a
	                                * replica, no data */
};

/* A consistent copy of partition pid's placement (pid = record_attr.partition).
 * -ENOENT for a namespace opened outside node_open. */
int txn_partition_get(struct namespace *ns, uint32_t pid, struct txn_partition *out);

/* ---- statistics -------------------------------------------------------- */

/*
 * The rows are in base/statistic.h.  The *_values functions fill one value
 * per row of their section, indexed by its enum (STAT_NODE_*, STAT_NS_*);
 * they take no engine-wide lock (atomics, and each storage stripe's lock
 * for a few loads), so reading statistics never holds up writers.
 */
void txn_node_values(struct node *node, uint64_t out[STAT_NODE_COUNT]);
void txn_namespace_values(struct namespace *ns, uint64_t out[STAT_NS_COUNT]);
/* Latency histograms of the namespace's transactions, indexed by STAT_LAT_NS_*. */
void txn_namespace_latencies(struct namespace *ns,
    struct histogram_snapshot out[STAT_LAT_NS_COUNT]);

/* Called once per statistic with its name and value as text. */
typedef void (*txn_stat_fn)(void *arg, const char *name, const char *value);

/* Node-wide statistics as text (the NODE rows). */
void txn_node_stats(struct node *node, txn_stat_fn fn, void *arg);
/* Namespace statistics as text, followed by its effective configuration. */
void txn_namespace_stats(struct namespace *ns, txn_stat_fn fn, void *arg);
/* Only the effective configuration (namespace and storage-engine rows). */
void txn_namespace_config(struct namespace *ns, txn_stat_fn fn, void *arg);
/* Filesystem sizes for statfs. */
struct txn_space {
	uint64_t total_bytes;
	uint64_t used_bytes;
	uint64_t avail_bytes;
	uint64_t objects;
	uint64_t max_objects;   /* rough capacity for df -i */
};
void txn_namespace_space(struct namespace *ns, struct txn_space *out);

#endif
