/*
 * error.h - one error space for the whole engine.
 *
 * Every engine function returns 0 on success or a negative code: either
 * -errno (ENOENT, ENOSPC, EFBIG, EIO, ...) or one of the project codes below,
 * which live in a reserved range so they can never collide with errno values.
 * recfs_strerror() names any of them; recfs_errno() turns a project code into
 * the errno a POSIX caller should see.  The FUSE layer is the one place that
 * turns a code into a reply.
 */
#ifndef RECFS_BASE_ERROR_H
#define RECFS_BASE_ERROR_H

#define RECFS_ERR_BASE 20000

enum recfs_error {
	RECFS_ECHECKSUM = -(RECFS_ERR_BASE + 1), /* stored bytes fail their CRC32C */
	RECFS_EFORMAT   = -(RECFS_ERR_BASE + 2), /* stored bytes are not a valid record/header */
	RECFS_ECONFIG   = -(RECFS_ERR_BASE + 3), /* configuration rejected */
	RECFS_EVERSION  = -(RECFS_ERR_BASE + 4), /* storage written by another format version */
	RECFS_EFOREIGN  = -(RECFS_ERR_BASE + 5), /* storage belongs to another namespace */
	RECFS_EGENERATION = -(RECFS_ERR_BASE + 6), /* generation check failed */
};

/* Human-readable text for 0, -errno or a project code.  Never NULL. */
const char *recfs_strerror(int err);

/* Positive errno for a code: project codes map to EIO/EINVAL/ESTALE. */
int recfs_errno(int err);

#endif
