/*
 * namespace.c - opening and closing a namespace, and the callbacks the
 * storage engine makes into it (see namespace.h).
 *
 * Relocation (defrag) follows the index's lock order: record lock, then the
 * partition lock to check the entry still points at the old copy, then the
 * engine's own locks inside storage_defrag_copy().  A record overwritten or
 * deleted meanwhile is simply not moved.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../base/error.h"
#include "../base/log.h"
#include "namespace.h"

/* Set name stored in a flat record (RECORD_F layout, record.h). */
static int
flat_set_id(struct namespace *ns, const uint8_t *flat, uint32_t size, uint16_t *set_id)
{
	uint8_t len = flat[48];

	if (len == 0) {
		*set_id = 0;
		return 0;
	}
	if (len > RECORD_SET_MAX || RECORD_FLAT_HEADER_SIZE + (uint32_t)len > size)
		return RECFS_EFORMAT;
	return set_lookup(&ns->sets, (const char *)flat + RECORD_FLAT_HEADER_SIZE, len, set_id);
}

static int
namespace_relocate(void *arg, struct storage *st, const uint8_t *flat, uint32_t size,
    storage_loc old_loc)
{
	struct namespace *ns = arg;
	const struct digest *d = record_flat_digest(flat);
	struct index_partition *p = index_partition_of(ns->index, d);
	struct index_entry *e;
	storage_loc new_loc;
	uint16_t set_id;
	int rc;

	if (flat_set_id(ns, flat, size, &set_id) != 0)
		return 0;  /* no such set: not a current copy */
	index_record_lock(ns->index, d);
	pthread_rwlock_rdlock(&p->lock);
	e = index_find_locked(p, set_id, d);
	bool current = e != NULL && e->loc == old_loc;
	pthread_rwlock_unlock(&p->lock);
	if (!current) {
		rc = 0;
		goto out;
	}
	rc = storage_defrag_copy(st, flat, size, &new_loc);
	if (rc != 0)
		goto out;
	pthread_rwlock_wrlock(&p->lock);
	e->loc = new_loc;
	pthread_rwlock_unlock(&p->lock);
	storage_free(st, old_loc);
	rc = 1;
out:
	index_record_unlock(ns->index, d);
	return rc;
}

int
namespace_open(struct namespace **out, struct ns_config *cfg)
{
	struct namespace *ns;
	struct storage_owner owner;
	int rc;

	ns = calloc(1, sizeof(*ns));
	if (ns == NULL)
		return -ENOMEM;
	memcpy(ns->name, cfg->name, sizeof(ns->name));
	ns->cfg = cfg;
	set_table_init(&ns->sets);
	rc = index_create(&ns->index);
	if (rc != 0)
		goto fail;
	ns->max_record_size = storage_max_record_size(&cfg->storage);
	owner = (struct storage_owner){ .arg = ns, .relocate = namespace_relocate };
	rc = storage_open(&ns->storage, ns->name, &cfg->storage, &owner);
	if (rc != 0)
		goto fail;
	log_info("namespace", "{%s} open: %s engine, max-record-size %u", ns->name,
	    ns->storage->ops->name, ns->max_record_size);
	*out = ns;
	return 0;
fail:
	index_destroy(ns->index, NULL, NULL);
	set_table_fini(&ns->sets);
	free(ns);
	return rc;
}

void
namespace_close(struct namespace *ns, bool clean)
{
	if (ns == NULL)
		return;
	/* Storage first: its threads call back into the index. */
	storage_close(ns->storage, clean);
	index_destroy(ns->index, NULL, NULL);
	set_table_fini(&ns->sets);
	log_info("namespace", "{%s} closed%s", ns->name, clean ? " cleanly" : "");
	free(ns);
}
