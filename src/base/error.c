/*
 * error.c - names for the engine's error codes (see error.h).
 */
#include <errno.h>
#include <string.h>

#include "error.h"

const char *
recfs_strerror(int err)
{
	switch (err) {
	case 0:                 return "success";
	case RECFS_ECHECKSUM:   return "checksum mismatch in stored record";
	case RECFS_EFORMAT:     return "malformed stored record or header";
	case RECFS_ECONFIG:     return "invalid configuration";
	case RECFS_EVERSION:    return "storage format version not supported";
	case RECFS_EFOREIGN:    return "storage belongs to another namespace";
	case RECFS_EGENERATION: return "record generation changed";
	}
	if (err < 0 && err > -RECFS_ERR_BASE)
		return strerror(-err);
	return "unknown error";
}

int
recfs_errno(int err)
{
	switch (err) {
	case RECFS_ECHECKSUM:
	case RECFS_EFORMAT:
	case RECFS_EVERSION:
	case RECFS_EFOREIGN:    return EIO;
	case RECFS_ECONFIG:     return EINVAL;
	case RECFS_EGENERATION: return ESTALE;
	}
	if (err < 0 && err > -RECFS_ERR_BASE)
		return -err;
	return err == 0 ? 0 : EIO;
}
