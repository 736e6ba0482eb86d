/*
 * index_slab.h - fixed-size-class allocator for index entries (private to index/).
 *
 * Entries are 82 bytes plus the key; malloc would add 8 bytes of header and
 * round to 16, which alone costs ~12% of an entry.  The slab rounds to 8
 * bytes and carves classes out of 1 MiB chunks.
 */
#ifndef RECFS_INDEX_INDEX_SLAB_H
#define RECFS_INDEX_INDEX_SLAB_H

#include <stddef.h>
#include <stdint.h>

struct index_slab;

struct index_slab *index_slab_create(void);
void index_slab_destroy(struct index_slab *s);
void *index_slab_alloc(struct index_slab *s, size_t size, uint8_t *class_out);
void index_slab_free(struct index_slab *s, void *p, uint8_t cls);
/* Bytes of chunks held (what the index costs in RAM). */
uint64_t index_slab_bytes(struct index_slab *s);

#endif
