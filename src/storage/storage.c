/*
 * storage.c - engine selection and the parts every engine shares.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../base/digest.h"
#include "../base/log.h"
#include "device_header.h"
#include "storage.h"

_Static_assert(STORAGE_PARTITIONS == PARTITION_COUNT, "one version per partition");
_Static_assert(STORAGE_PARTITIONS == DEVICE_PMETA_SLOTS, "one pmeta slot per partition");

uint32_t
storage_max_record_size(const struct storage_config *cfg)
{
	uint64_t max = cfg->max_record_size;

	if (max == 0 || max > cfg->write_block_size)
		max = cfg->write_block_size;
	return (uint32_t)max;
}

int
storage_open(struct storage **out, const char *ns_name, struct storage_config *cfg,
    const struct storage_owner *owner)
{
	struct storage *st;
	int rc;

	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return -ENOMEM;
	st->ns_name = ns_name;
	st->cfg = cfg;
	st->owner = *owner;
	switch (cfg->type) {
	case STORAGE_MEMORY:
		/* Shadow files make a memory namespace persistent (docs/storage-format.md). */
		st->ops = cfg->n_files > 0 ? &storage_shadow_ops : &storage_memory_ops;
		break;
	case STORAGE_DEVICE:
		st->ops = &storage_device_ops;
		break;
	default:
		log_error("storage", "{%s} storage-engine type %d is not available in this build",
		    ns_name, (int)cfg->type);
		free(st);
		return -ENOTSUP;
	}
	/* Published before open: the cold start's callbacks into the owner
	 * may find the engine through *out (the owner's storage pointer). */
	*out = st;
	rc = st->ops->open(st);
	if (rc != 0) {
		*out = NULL;
		free(st);
		return rc;
	}
	return 0;
}

void
storage_close(struct storage *st, bool clean)
{
	if (st == NULL)
		return;
	st->ops->close(st, clean);
	free(st);
}

int
storage_write_flat(struct storage *st, const uint8_t *flat, uint32_t size, storage_loc *loc)
{
	struct record r;
	/* Every field parsed and every check verified, as a read would. */
	int rc = record_flat_accept(flat, size, storage_max_record_size(st->cfg), &r);

	if (rc != 0)
		return rc;
	record_release(&r);
	return st->ops->write_flat(st, flat, size, loc);
}

int
storage_write_encoded(struct storage *st, const uint8_t *flat, uint32_t size, storage_loc *loc)
{
	/* the engines bound the size (-EFBIG) and need only the header's
	 * digest and flags, which the caller's check or encoding vouches for */
	if (size < RECORD_FLAT_MIN_SIZE)
		return -EBADMSG;
	return st->ops->write_flat(st, flat, size, loc);
}

int
storage_pversions_load(struct storage *st, uint64_t out[STORAGE_PARTITIONS])
{
	memset(out, 0, sizeof(uint64_t) * STORAGE_PARTITIONS);
	if (st->ops->pversions_load == NULL)
		return 0;
	return st->ops->pversions_load(st, out);
}

int
storage_pversions_store(struct storage *st, const uint64_t v[STORAGE_PARTITIONS])
{
	if (st->ops->pversions_store == NULL)
		return 0;
	return st->ops->pversions_store(st, v);
}

int
storage_pversion_store_one(struct storage *st, uint32_t pid, uint64_t v)
{
	if (pid >= STORAGE_PARTITIONS)
		return -EINVAL;
	if (st->ops->pversion_store_one == NULL)
		return 0;
	return st->ops->pversion_store_one(st, pid, v);
}

int
storage_pversions_drop(struct storage *st, const uint32_t *pids, unsigned n, uint64_t drop_ms)
{
	for (unsigned i = 0; i < n; i++)
		if (pids[i] >= STORAGE_PARTITIONS)
			return -EINVAL;
	if (n == 0)
		return 0;
	if (st->ops->pversions_drop == NULL) {
		/* an engine without the batch: one at a time */
		for (unsigned i = 0; i < n; i++) {
			int rc = storage_pversion_drop(st, pids[i], drop_ms);

			if (rc != 0)
				return rc;
		}
		return 0;
	}
	return st->ops->pversions_drop(st, pids, n, drop_ms);
}

int
storage_pversion_drop(struct storage *st, uint32_t pid, uint64_t drop_ms)
{
	if (pid >= STORAGE_PARTITIONS)
		return -EINVAL;
	if (st->ops->pversion_drop == NULL)
		return 0;
	return st->ops->pversion_drop(st, pid, drop_ms);
}
