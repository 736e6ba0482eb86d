/*
 * xattr.h - extended attributes of records (recfsd(8), EXTENDED ATTRIBUTES).
 *
 *   user.<bin>            a bin other than the file bin; setxattr stores a
 *                         BLOB bin, integer and double bins read as decimal
 *   user.recfs.generation record metadata, read-only (writes are accepted
 *   user.recfs.void_time  and ignored, so cp -a and rsync -X between
 *   user.recfs.last_update records succeed)
 *   user.recfs.digest
 *   user.recfs.partition
 *   user.recfs.master     the node id of the record's partition master
 *   user.recfs.replicas   the node ids of its replicas, master first,
 *                         comma-separated (16 hex digits each)
 *   user.recfs.ttl        remaining seconds, -1 = never expires; writing N > 0
 *                         sets a TTL of N seconds, 0 the namespace default,
 *                         -1 never
 *
 * Other namespaces (security.*, system.*, trusted.*): get answers ENODATA
 * from memory without touching the engine (the kernel asks for
 * security.capability before every write(2)); set and remove give
 * EOPNOTSUPP.
 *
 * xattr_get and xattr_list send the reply themselves and return 0, or
 * return a negative code with nothing sent; xattr_set and xattr_remove
 * return 0 or a negative code.
 */
#ifndef RECFS_FUSE_XATTR_H
#define RECFS_FUSE_XATTR_H

#include "inode.h"

int xattr_get(fuse_req_t req, struct inode *ino, const char *name, size_t size);
int xattr_list(fuse_req_t req, struct inode *ino, size_t size);
int xattr_set(struct inode *ino, const char *name, const char *value, size_t size, int flags);
int xattr_remove(struct inode *ino, const char *name);

#endif
