/*
 * ops.h - the FUSE low-level operations of recfsd.
 */
#ifndef RECFS_FUSE_OPS_H
#define RECFS_FUSE_OPS_H

#include "recfsd.h"

#include <fuse_lowlevel.h>

/* The operation table passed to fuse_session_new(). */
extern const struct fuse_lowlevel_ops ops_table;

#endif
