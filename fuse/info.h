/*
 * info.h - the /.info tree: read-only statistics files (SPEC section 8).
 *
 *   /.info/statistics          node statistics from the engine, then the
 *                              daemon's fuse_* counters (stats.h)
 *   /.info/build               version
 *   /.info/node                node id
 *   /.info/namespaces          one namespace name per line
 *   /.info/namespace/<ns>      the namespace's statistics and configuration
 *   /.info/sets/<ns>/<set>     one set's objects, tombstones, data_used_bytes
 *
 * Every file is "name=value\n" lines (namespaces: one name per line), built
 * whole when it is opened (a consistent snapshot kept in the handle) and
 * when its size is asked for, so st_size matches what cat returns.
 */
#ifndef RECFS_FUSE_INFO_H
#define RECFS_FUSE_INFO_H

#include <stddef.h>

struct inode;

/* X(ENUM, "file name") */
#define INFO_FILES(X) \
	X(STATISTICS, "statistics") \
	X(BUILD,      "build") \
	X(NODE,       "node") \
	X(NAMESPACES, "namespaces")

enum info_file {
#define X(e, name) INFO_##e,
	INFO_FILES(X)
#undef X
	INFO_FILE_COUNT,
	INFO_NAMESPACE = INFO_FILE_COUNT,   /* /.info/namespace/<ns> */
	INFO_SET,                           /* /.info/sets/<ns>/<set> */
};

const char *info_file_name(enum info_file f);

/* The content of an INODE_INFO_FILE for an open: the snapshot getattr just
 * measured if it is under a second old, else a new one.  *out is malloc'd
 * (caller frees).  Returns 0 or -ENOMEM. */
int info_snapshot(const struct inode *ino, char **out, size_t *len);

/* Build a fresh snapshot, keep it for the next open, return its length
 * (getattr's st_size); 0 on failure. */
size_t info_size(const struct inode *ino);

/* Free the kept snapshots (shutdown). */
void info_fini(void);

/* The node id shown in /.info/node (set by main before mounting). */
void info_set_node_id(const char *id);

#endif
