/*
 * index_slab.c - size-class allocator for index entries (see index_slab.h).
 *
 * Class c holds objects of (c + 1) * 8 bytes.  Each class has a free list
 * threaded through freed objects and a current chunk to carve from, under
 * its own mutex; entries are only allocated on inserts, so contention is
 * spread over the classes keys fall into.  Chunks are never returned to the
 * system (index memory stays at its high-water mark, as Aerospike's arena
 * does); freed objects are reused.
 */
#include <pthread.h>
#include <stdlib.h>

#include "../base/atomic.h"
#include "index_slab.h"

#define SLAB_GRAIN 8
#define SLAB_CLASSES 48            /* up to 384 bytes: 82 + 255 fits */
#define SLAB_CHUNK (1u << 20)

struct slab_chunk {
	struct slab_chunk *next;
};

struct slab_class {
	pthread_mutex_t lock;
	void *free_list;               /* protected by lock */
	char *carve, *carve_end;       /* protected by lock */
};

struct index_slab {
	struct slab_class classes[SLAB_CLASSES];
	pthread_mutex_t chunks_lock;
	struct slab_chunk *chunks;     /* protected by chunks_lock */
	uint64_t bytes;                /* atomic */
};

struct index_slab *
index_slab_create(void)
{
	struct index_slab *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	for (int i = 0; i < SLAB_CLASSES; i++)
		pthread_mutex_init(&s->classes[i].lock, NULL);
	pthread_mutex_init(&s->chunks_lock, NULL);
	return s;
}

void
index_slab_destroy(struct index_slab *s)
{
	if (s == NULL)
		return;
	while (s->chunks != NULL) {
		struct slab_chunk *c = s->chunks;

		s->chunks = c->next;
		free(c);
	}
	for (int i = 0; i < SLAB_CLASSES; i++)
		pthread_mutex_destroy(&s->classes[i].lock);
	pthread_mutex_destroy(&s->chunks_lock);
	free(s);
}

void *
index_slab_alloc(struct index_slab *s, size_t size, uint8_t *class_out)
{
	size_t cls = (size + SLAB_GRAIN - 1) / SLAB_GRAIN - 1;
	size_t obj = (cls + 1) * SLAB_GRAIN;
	struct slab_class *c;
	void *p;

	if (cls >= SLAB_CLASSES)
		return NULL;
	c = &s->classes[cls];
	pthread_mutex_lock(&c->lock);
	if (c->free_list != NULL) {
		p = c->free_list;
		c->free_list = *(void **)p;
	} else {
		if (c->carve == NULL || c->carve + obj > c->carve_end) {
			struct slab_chunk *chunk = malloc(SLAB_CHUNK);

			if (chunk == NULL) {
				pthread_mutex_unlock(&c->lock);
				return NULL;
			}
			pthread_mutex_lock(&s->chunks_lock);
			chunk->next = s->chunks;
			s->chunks = chunk;
			pthread_mutex_unlock(&s->chunks_lock);
			atomic_add(&s->bytes, SLAB_CHUNK);
			/* Objects start 8-aligned after the chunk link. */
			c->carve = (char *)(chunk + 1);
			c->carve_end = (char *)chunk + SLAB_CHUNK;
		}
		p = c->carve;
		c->carve += obj;
	}
	pthread_mutex_unlock(&c->lock);
	*class_out = (uint8_t)cls;
	return p;
}

void
index_slab_free(struct index_slab *s, void *p, uint8_t cls)
{
	struct slab_class *c = &s->classes[cls];

	pthread_mutex_lock(&c->lock);
	*(void **)p = c->free_list;
	c->free_list = p;
	pthread_mutex_unlock(&c->lock);
}

uint64_t
index_slab_bytes(struct index_slab *s)
{
	return atomic_load_relaxed(&s->bytes);
}
