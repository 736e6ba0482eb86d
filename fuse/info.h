/*
 * info.h - the /.info tree: statistics and configuration files (docs/statistics.md).
 *
 *   /.info/statistics          node statistics from the engine, then the
 *                              daemon's fuse_* counters, then the fabric's
 *                              and heartbeat's
 *   /.info/build, node         version; node id
 *   /.info/namespaces          one namespace name per line
 *   /.info/namespace/<ns>      the namespace's statistics and configuration
 *   /.info/sets/<ns>/<set>     one set's statistics
 *   /.info/latencies           latency histograms per operation
 *   /.info/metrics             all of it in the Prometheus text format
 *   /.info/cluster             the cluster as this node sees it
 *   /.info/peers               one line per other node known: heartbeat and
 *                              fabric connection (empty without network.seeds)
 *   /.info/partitions          one line per partition of each namespace:
 *                              this node's role and state, the replicas
 *   /.info/config/<section>/<name>, /.info/config/namespaces/<ns>/<name>
 *                              one file per configuration parameter
 *
 * Every statistic comes from the one table in base/statistic.h.  Files
 * are "name=value\n" lines (namespaces: one name per line; config files:
 * the value and a newline), built whole when opened (a consistent snapshot
 * kept in the handle) and when their size is asked for, so st_size matches
 * what cat returns.  Statistics files are read-only (0444); the file of a
 * dynamic parameter is 0644 and writing a value to it changes the
 * parameter (node_config_set: validated, logged, applied at once).
 */
#ifndef RECFS_FUSE_INFO_H
#define RECFS_FUSE_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct inode;
struct handle;

/* X(ENUM, "file name"): the files directly in /.info. */
#define INFO_FILES(X) \
	X(STATISTICS, "statistics") \
	X(BUILD,      "build") \
	X(NODE,       "node") \
	X(NAMESPACES, "namespaces") \
	X(LATENCIES,  "latencies") \
	X(METRICS,    "metrics") \
	X(CLUSTER,    "cluster") \
	X(PEERS,      "peers") \
	X(PARTITIONS, "partitions")

enum info_file {
#define X(e, name) INFO_##e,
	INFO_FILES(X)
#undef X
	INFO_FILE_COUNT,
	INFO_NAMESPACE = INFO_FILE_COUNT,   /* /.info/namespace/<ns> */
	INFO_SET,                           /* /.info/sets/<ns>/<set> */
	INFO_CONFIG,                        /* /.info/config/.../<name> */
};

const char *info_file_name(enum info_file f);

/* The content of an INODE_INFO_FILE for an open: the snapshot getattr just
 * measured if it is under a second old, else a new one.  *out is malloc'd
 * (caller frees).  Returns 0, -ENOENT (a set that is gone) or -ENOMEM. */
int info_snapshot(struct inode *ino, char **out, size_t *len);

/*
 * getattr's st_size for the process pid (0 = none known): while pid has a
 * read-only handle open on the file, the length of the snapshot that
 * handle reads (tar compares st_size before and after reading a file,
 * programs size buffers from fstat(2), which reaches us without the
 * handle); otherwise build a fresh snapshot, keep it for the next open and
 * return its length.  0 on failure.
 */
size_t info_size(struct inode *ino, pid_t pid);

/* A read-only handle opened by pid, holding a snapshot of len bytes,
 * opens / closes. */
void info_reader_open(struct inode *ino, pid_t pid, size_t len);
void info_reader_close(struct inode *ino, pid_t pid);

/* The file of a dynamic configuration parameter: may be opened for writing. */
bool info_writable(const struct inode *ino);

/*
 * Writes to a dynamic parameter's file (h opened for writing).  The bytes
 * collect in the handle; once they end with a newline (echo 40 > file), or
 * at flush/release otherwise, they are applied as the new value.  A value
 * that does not validate is -EINVAL from that write or flush, and changes
 * nothing.  info_write returns size or a negative code.
 */
long info_write(struct handle *h, const char *buf, size_t size, off_t off);
int info_flush(struct handle *h);

/* Drop what an inode keeps (teardown). */
void info_inode_fini(struct inode *ino);

/* The node id shown in /.info/node and /.info/cluster (set by main before
 * mounting); it also draws the single node's cluster key. */
void info_set_node_id(const char *id);

#endif
