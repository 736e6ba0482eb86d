/*
 * recfsd.h - what every part of the daemon shares: the engine handle and the
 * settings taken from the configuration once, at start-up.
 *
 * The daemon is a thin FUSE front end over the transaction layer
 * (src/txn/txn.h): it never includes index, storage or namespace headers, so
 * that when the cluster arrives txn stays the one place that decides "local
 * or remote".  Files, by concept:
 *
 *   recfsd.c  main: options, configuration, daemon start, signals, shutdown
 *   ops.c     the fuse_lowlevel_ops callbacks and the one errno reply point
 *   inode.c   the node table: nodeids, lookup counts, the static tree
 *   handle.c  open files: one shared state per record, snapshots, the flush timer
 *   dir.c     directory handles: streaming listings with stable offsets
 *   xattr.c   extended attributes: bins and record metadata
 *   info.c    the /.info tree: statistics, latencies, metrics, config files
 *   stats.c   the daemon's own fuse_* counters and request latencies
 *   workdir.c the work directory's lock (one daemon per store)
 *
 * Lock order (never take an earlier lock while holding a later one):
 *   dir handle lock -> inode lock (two: lower address first) -> table stripe
 *   lock (two: lower index first); the stats registry lock and the open-file
 *   flusher's list lock (handle.c) are leaves.
 *   Engine calls are made with at most the dir handle and inode locks held
 *   (the engine's own locks come after; a write to a .info/config file
 *   holds its inode lock across node_config_set).
 */
#ifndef RECFS_FUSE_RECFSD_H
#define RECFS_FUSE_RECFSD_H

#define FUSE_USE_VERSION 312

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "txn/txn.h"

struct fuse_session;

struct recfsd {
	struct recfs_config *cfg;
	struct node *node;
	double entry_timeout;       /* fuse.entry-timeout, seconds */
	double attr_timeout;        /* fuse.attr-timeout, seconds */
	uint32_t file_mode;         /* permission bits for records with no stored mode */
	uint32_t dir_mode;          /* permission bits of directories */
	uid_t uid;                  /* owner of directories and of records with no stored owner */
	gid_t gid;
	int64_t start_ns;           /* Unix ns: the times shown for directories */
	struct fuse_session *se;    /* while mounted, for notifications (atomic; NULL otherwise) */
};

/* Set up once by main() before the session starts; read-only afterwards. */
extern struct recfsd recfsd;

/* Wall clock in Unix nanoseconds (mtimes of writes). */
int64_t recfsd_now_ns(void);

#endif
