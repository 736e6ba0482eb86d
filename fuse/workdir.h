/*
 * workdir.h - the daemon's lock on its work directory (one daemon per
 * store; docs/operations.md, "One daemon per store").
 *
 * WORKDIR/recfsd.lock is locked with base/file_lock.h for the daemon's
 * whole life, from before the cold start until after the storage is marked
 * clean (released by closing its descriptor, last of all, or by the
 * process's end).  Its text says who holds it and in which state, for the
 * next daemon and for people:
 *     pid 1234
 *     state starting | serving | closing | stopped
 *     mount /mnt/recfs
 * The file stays when the daemon exits (removing it would let a daemon
 * that opened it just before lock a file nobody else can find).
 */
#ifndef RECFS_FUSE_WORKDIR_H
#define RECFS_FUSE_WORKDIR_H

#include <stddef.h>

#define WORKDIR_LOCK_NAME "recfsd.lock"

/*
 * Lock the work directory dir (which exists).  A holder that is shutting
 * down (state closing, or serving on a mount point that is no longer
 * mounted: the moments right after fusermount3 -u) is waited for, up to
 * wait_s seconds, with one log line.  0 (also, with a warning, where the
 * file system has no record locks), or -EBUSY / -errno with a message in
 * err that names the lock file and the holder.
 */
int workdir_lock(const char *dir, unsigned wait_s, char *err, size_t err_size);
/* The lock file's state: "serving" (with the mount point) or "closing". */
void workdir_set_state(const char *state, const char *mountpoint);
/* Release: the very last step of a shutdown. */
void workdir_unlock(void);

#endif
