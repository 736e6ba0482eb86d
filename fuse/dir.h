/*
 * dir.h - directory handles: listings streamed from the engine.
 *
 * A listing is a sequence numbered from 0: first the directory's fixed
 * entries (namespaces and .info at the root, statistics files, or the sets
 * of a namespace, snapshotted at open and at rewind), then its records in
 * the engine's (partition, digest) order.  The offset the kernel gets back
 * for an entry is its number + 1, and the handle keeps the engine position
 * after each of the last DIR_WINDOW entries, so a repeated offset resumes
 * at exactly the right record whatever was created or deleted meanwhile.
 * Memory per handle is bounded (one batch of records, one window),
 * whatever the size of the set.
 */
#ifndef RECFS_FUSE_DIR_H
#define RECFS_FUSE_DIR_H

#include "inode.h"

struct dir_handle;

/* Open a directory inode.  Errors: -ENOENT (set removed), -ENOMEM. */
int dir_open(struct inode *ino, struct dir_handle **out);
/*
 * Answer readdir (plus = readdirplus: attributes, and one kernel lookup
 * counted per entry sent) with entries from offset off.  Sends the reply
 * itself and returns 0, or returns a negative code with nothing sent (an
 * error is only reported when no entry could be given).
 */
int dir_read(fuse_req_t req, struct dir_handle *d, size_t size, off_t off, bool plus);
void dir_release(struct dir_handle *d);
/* At exit, the session over: releases the handles its kernel still held
 * open (a session ended by a signal releases none). */
void dir_release_all(void);

#endif
