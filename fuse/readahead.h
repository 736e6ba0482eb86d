/*
 * readahead.h - the mount's read-ahead window (fuse.read-ahead): the
 * kernel's readahead for a FUSE mount is its backing device info's
 * read_ahead_kb, which recfsd sets once the mount exists (docs/architecture.md,
 * Large files).
 */
#ifndef RECFS_FUSE_READAHEAD_H
#define RECFS_FUSE_READAHEAD_H

#include <stdint.h>

/*
 * Find the mount on mountpoint (its device numbers, from /proc/self/mountinfo:
 * no request to the mount, which cannot answer before the session loop runs)
 * and, when bytes > 0, write bytes / 1024 into its read_ahead_kb; logs what
 * was set.  Call after the mount and before the session loop answers the
 * kernel's INIT (see readahead.c).  Returns 0, or -errno: the mount was not
 * found, or the write was refused (not root: logged once, the kernel's
 * value stays).  Not thread-safe: main() only.
 */
int readahead_set(const char *mountpoint, uint64_t bytes);

/* The mount's read-ahead window in bytes as the kernel has it now (read
 * from sysfs), 0 before readahead_set found the mount or if unreadable.
 * Any thread. */
uint64_t readahead_bytes(void);

#endif
