/*
 * stats.h - the daemon's own counters (fuse_* in /.info/statistics).
 *
 * Every counter is one row of STATS_COUNTERS: the enum, the counting and
 * the statistics output all expand that table, so adding a counter is one
 * line.  Counting is per thread (a plain relaxed store into the thread's own
 * block, no shared cache line on the request path); a read sums the blocks.
 */
#ifndef RECFS_FUSE_STATS_H
#define RECFS_FUSE_STATS_H

#include <stdint.h>

/* X(name, help) */
#define STATS_COUNTERS(X) \
	X(fuse_lookup,       "lookup requests") \
	X(fuse_forget,       "forget and forget_multi entries") \
	X(fuse_getattr,      "getattr requests") \
	X(fuse_setattr,      "setattr requests (truncate, chmod, chown, utimens)") \
	X(fuse_mknod,        "mknod requests") \
	X(fuse_mkdir,        "mkdir requests (set creation)") \
	X(fuse_unlink,       "unlink requests") \
	X(fuse_rmdir,        "rmdir requests (set removal)") \
	X(fuse_rename,       "rename requests") \
	X(fuse_create,       "create requests") \
	X(fuse_open,         "open requests") \
	X(fuse_read,         "read requests") \
	X(fuse_write,        "write requests") \
	X(fuse_flush,        "flush requests (close)") \
	X(fuse_fsync,        "fsync requests") \
	X(fuse_release,      "release requests") \
	X(fuse_opendir,      "opendir requests") \
	X(fuse_readdir,      "readdir requests") \
	X(fuse_readdirplus,  "readdirplus requests") \
	X(fuse_releasedir,   "releasedir requests") \
	X(fuse_statfs,       "statfs requests") \
	X(fuse_getxattr,     "getxattr requests") \
	X(fuse_setxattr,     "setxattr requests") \
	X(fuse_listxattr,    "listxattr requests") \
	X(fuse_removexattr,  "removexattr requests") \
	X(fuse_other,        "requests refused without engine work (link, symlink, fallocate)") \
	X(fuse_read_bytes,   "bytes returned by read") \
	X(fuse_write_bytes,  "bytes accepted by write") \
	X(fuse_record_loads, "whole records read into an open-file buffer") \
	X(fuse_record_puts,  "whole records written from an open-file buffer (close, fsync)") \
	X(fuse_put_failures, "buffer writes that failed at close, fsync or release") \
	X(fuse_readdir_entries, "directory entries returned") \
	X(fuse_not_found,    "requests answered ENOENT or ENODATA") \
	X(fuse_errors,       "requests answered with any other error")

enum stats_counter {
#define X(name, help) STAT_##name,
	STATS_COUNTERS(X)
#undef X
	STAT_COUNT
};

/* Add n to a counter of the calling thread.  Never fails (a thread that
 * cannot get its block loses its counts). */
void stats_add(enum stats_counter c, uint64_t n);

static inline void
stats_inc(enum stats_counter c)
{
	stats_add(c, 1);
}

/* Sum of every thread's counts, including threads that have exited. */
void stats_sum(uint64_t out[STAT_COUNT]);

/* The counter's name ("fuse_lookup"). */
const char *stats_name(enum stats_counter c);

#endif
