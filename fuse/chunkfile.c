/*
 * chunkfile.c - the open-file state of a large file (see chunkfile.h).
 *
 * Design: dirty chunks are whole chunk buffers in a small array (at most
 * CHUNKFILE_DIRTY_MAX before a commit, so a linear search is cheaper than
 * any tree); a partly written chunk is first read from its committed
 * version (read-modify-write of one chunk, never of the file).  Every
 * buffer is zero past the file's end, so an extension after a truncation
 * reads zeros, and a commit stores each chunk only up to the file's end.
 * One clean chunk is kept after a read: sequential reads smaller than a
 * chunk fetch each chunk once (the readahead of this layer; the kernel's
 * own readahead asks for up to max_readahead at a time).
 *
 * Chunk buffers come from a small pool (POOL_MAX free buffers of the last
 * chunk size used): a buffer freed by a commit is the next write's, with
 * no allocation and no zeroing when that write covers the whole chunk
 * (glibc would otherwise serve 512 KiB from its heaps after the first
 * frees and keep hundreds of MiB of them).
 *
 * Rejected: caching every chunk read (memory would follow the file's
 * size); a commit per write(2) (each 4 KiB write would rewrite a chunk and
 * the head).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/atomic.h"
#include "chunkfile.h"

struct chunk_buf {
	uint32_t index;
	char *data;                   /* chunk_size bytes, zero past the file's end */
};

struct chunkfile {
	struct txn_chunk_map map;     /* as committed */
	uint64_t size;                /* with unsaved changes */
	bool resized;                 /* the size changed since the commit */
	struct chunk_buf *dirty;      /* n_dirty of cap */
	unsigned n_dirty, cap;
	/* the clean chunk read last */
	char *clean;
	uint32_t clean_index, clean_version;
	bool clean_valid;
};

static uint64_t dirty_bytes;    /* atomic: dirty chunk buffers in the daemon */

/* Free chunk buffers, all of pool.size bytes (a leaf lock). */
#define POOL_MAX 32
static struct {
	pthread_mutex_t lock;
	size_t size;
	unsigned n;
	char *free[POOL_MAX];
} pool = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* A buffer of size bytes, zeroed if zero; NULL without memory. */
static char *
pool_get(size_t size, bool zero)
{
	char *p = NULL;

	pthread_mutex_lock(&pool.lock);
	if (pool.size == size && pool.n > 0)
		p = pool.free[--pool.n];
	pthread_mutex_unlock(&pool.lock);
	if (p == NULL)
		return zero ? calloc(1, size) : malloc(size);
	if (zero)
		memset(p, 0, size);
	return p;
}

static void
pool_put(char *p, size_t size)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&pool.lock);
	if (pool.size != size) {
		/* Another chunk size: the pool follows the latest. */
		while (pool.n > 0)
			free(pool.free[--pool.n]);
		pool.size = size;
	}
	if (pool.n < POOL_MAX) {
		pool.free[pool.n++] = p;
		p = NULL;
	}
	pthread_mutex_unlock(&pool.lock);
	free(p);
}

uint64_t
chunkfile_dirty_bytes(void)
{
	return atomic_load_relaxed(&dirty_bytes);
}

static uint32_t
chunk_size(const struct chunkfile *cf)
{
	return cf->map.chunk_size;
}

static void
dirty_drop(struct chunkfile *cf, unsigned i)
{
	pool_put(cf->dirty[i].data, chunk_size(cf));
	atomic_sub(&dirty_bytes, chunk_size(cf));
	cf->dirty[i] = cf->dirty[--cf->n_dirty];
}

static void
dirty_drop_all(struct chunkfile *cf)
{
	while (cf->n_dirty > 0)
		dirty_drop(cf, cf->n_dirty - 1);
}

static struct chunk_buf *
dirty_find(struct chunkfile *cf, uint32_t index)
{
	for (unsigned i = 0; i < cf->n_dirty; i++)
		if (cf->dirty[i].index == index)
			return &cf->dirty[i];
	return NULL;
}

/* A new dirty buffer for index, zero-filled unless the caller fills it
 * whole. */
static struct chunk_buf *
dirty_add(struct chunkfile *cf, uint32_t index, bool zero)
{
	struct chunk_buf *b;
	char *data;

	if (cf->n_dirty == cf->cap) {
		unsigned cap = cf->cap ? cf->cap * 2 : CHUNKFILE_DIRTY_MAX;
		struct chunk_buf *d = realloc(cf->dirty, cap * sizeof(*d));

		if (d == NULL)
			return NULL;
		cf->dirty = d;
		cf->cap = cap;
	}
	data = pool_get(chunk_size(cf), zero);
	if (data == NULL)
		return NULL;
	atomic_add(&dirty_bytes, chunk_size(cf));
	b = &cf->dirty[cf->n_dirty++];
	b->index = index;
	b->data = data;
	return b;
}

int
chunkfile_from_map(struct chunkfile **out, const struct txn_chunk_map *m)
{
	struct chunkfile *cf = calloc(1, sizeof(*cf));
	int rc;

	if (cf == NULL)
		return -ENOMEM;
	rc = txn_chunk_map_copy(&cf->map, m);
	if (rc != 0) {
		free(cf);
		return rc;
	}
	cf->size = m->size;
	*out = cf;
	return 0;
}

int
chunkfile_from_content(struct chunkfile **out, uint32_t csize, const char *data, size_t len)
{
	struct txn_chunk_map m = { .chunk_size = csize };
	struct chunkfile *cf;
	int rc = chunkfile_from_map(&cf, &m);

	if (rc != 0)
		return rc;
	cf->size = len;
	cf->resized = true;
	for (size_t off = 0; off < len; off += csize) {
		struct chunk_buf *b = dirty_add(cf, (uint32_t)(off / csize), len - off < csize);

		if (b == NULL) {
			chunkfile_free(cf);
			return -ENOMEM;
		}
		memcpy(b->data, data + off, len - off < csize ? len - off : csize);
	}
	*out = cf;
	return 0;
}

void
chunkfile_free(struct chunkfile *cf)
{
	if (cf == NULL)
		return;
	dirty_drop_all(cf);
	free(cf->dirty);
	pool_put(cf->clean, chunk_size(cf));
	txn_chunk_map_free(&cf->map);
	free(cf);
}

uint32_t
chunkfile_chunk_size(const struct chunkfile *cf)
{
	return cf->map.chunk_size;
}

uint64_t
chunkfile_size(const struct chunkfile *cf)
{
	return cf->size;
}

bool
chunkfile_dirty(const struct chunkfile *cf)
{
	return cf->n_dirty > 0 || cf->resized;
}

bool
chunkfile_over_bound(const struct chunkfile *cf)
{
	return cf->n_dirty >= CHUNKFILE_DIRTY_MAX ||
	    (cf->n_dirty > 0 && chunkfile_dirty_bytes() >= CHUNKFILE_DIRTY_BYTES_MAX);
}

/*
 * The committed bytes of chunk index, up to the file's current end, into
 * buf (chunk_size bytes; zeros past them).  The clean chunk serves a
 * repeat; holes and chunks past the committed end are zeros.
 */
static int
committed_get(const struct chunkfile_where *at, struct chunkfile *cf, uint32_t index, char *buf)
{
	uint32_t cs = chunk_size(cf);
	uint64_t start = (uint64_t)index * cs;
	size_t got = 0, keep;
	int rc;

	if (index >= cf->map.n || cf->map.versions[index] == 0) {
		memset(buf, 0, cs);
		return 0;
	}
	if (cf->clean_valid && cf->clean_index == index &&
	    cf->clean_version == cf->map.versions[index]) {
		memcpy(buf, cf->clean, cs);
	} else {
		if (cf->clean == NULL && (cf->clean = pool_get(cs, false)) == NULL)
			return -ENOMEM;
		cf->clean_valid = false;
		rc = txn_chunk_read(at->ns, at->key.set, at->key.set_len, &cf->map, index, cf->clean, &got);
		if (rc != 0)
			return rc;
		memset(cf->clean + got, 0, cs - got);
		cf->clean_valid = true;
		cf->clean_index = index;
		cf->clean_version = cf->map.versions[index];
		memcpy(buf, cf->clean, cs);
	}
	/* Bytes past the current end (a truncation since) read as zeros. */
	keep = cf->size <= start ? 0 : cf->size - start < cs ? (size_t)(cf->size - start) : cs;
	memset(buf + keep, 0, cs - keep);
	return 0;
}

/* The dirty buffer of index, read from its committed version first unless
 * the caller overwrites it whole. */
static int
dirty_get(const struct chunkfile_where *at, struct chunkfile *cf, uint32_t index, bool whole,
    struct chunk_buf **out)
{
	struct chunk_buf *b = dirty_find(cf, index);
	int rc;

	if (b == NULL) {
		/* A chunk overwritten whole needs no zeros: the write fills it. */
		b = dirty_add(cf, index, !whole || cf->size <= (uint64_t)index * chunk_size(cf));
		if (b == NULL)
			return -ENOMEM;
		if (!whole && (rc = committed_get(at, cf, index, b->data)) != 0) {
			dirty_drop(cf, cf->n_dirty - 1);
			return rc;
		}
	}
	*out = b;
	return 0;
}

long
chunkfile_read(const struct chunkfile_where *at, struct chunkfile *cf, char *buf, size_t size,
    uint64_t off)
{
	uint32_t cs = chunk_size(cf);
	size_t done = 0;

	if (off >= cf->size)
		return 0;
	if (size > cf->size - off)
		size = (size_t)(cf->size - off);
	while (done < size) {
		uint64_t pos = off + done;
		uint32_t index = (uint32_t)(pos / cs);
		size_t in = (size_t)(pos % cs), n = cs - in;
		struct chunk_buf *b = dirty_find(cf, index);

		if (n > size - done)
			n = size - done;
		if (b != NULL) {
			memcpy(buf + done, b->data + in, n);
		} else if (index >= cf->map.n || cf->map.versions[index] == 0) {
			memset(buf + done, 0, n);
		} else {
			int rc;

			if (!(cf->clean_valid && cf->clean_index == index &&
			    cf->clean_version == cf->map.versions[index])) {
				size_t got;

				if (cf->clean == NULL && (cf->clean = pool_get(cs, false)) == NULL)
					return -ENOMEM;
				cf->clean_valid = false;
				rc = txn_chunk_read(at->ns, at->key.set, at->key.set_len, &cf->map, index,
				    cf->clean, &got);
				if (rc != 0)
					return done > 0 ? (long)done : rc;
				memset(cf->clean + got, 0, cs - got);
				cf->clean_valid = true;
				cf->clean_index = index;
				cf->clean_version = cf->map.versions[index];
			}
			memcpy(buf + done, cf->clean + in, n);
		}
		done += n;
	}
	return (long)done;
}

long
chunkfile_write(const struct chunkfile_where *at, struct chunkfile *cf, const char *buf, size_t size,
    uint64_t off)
{
	uint32_t cs = chunk_size(cf);
	size_t done = 0;
	int rc;

	/* A gap between the end and off reads as zeros: buffers are zero past
	 * the end, holes and chunks past the committed end too. */
	while (done < size) {
		uint64_t pos = off + done;
		uint32_t index = (uint32_t)(pos / cs);
		size_t in = (size_t)(pos % cs), n = cs - in;
		struct chunk_buf *b;

		if (n > size - done)
			n = size - done;
		/* Whole when it covers the chunk, or everything of it that exists. */
		rc = dirty_get(at, cf, index, n == cs || (uint64_t)index * cs >= cf->size, &b);
		if (rc != 0)
			return done > 0 ? (long)done : rc;
		memcpy(b->data + in, buf + done, n);
		done += n;
		if (pos + n > cf->size) {
			cf->size = pos + n;
			cf->resized = true;
		}
	}
	return (long)size;
}

int
chunkfile_zero(const struct chunkfile_where *at, struct chunkfile *cf, uint64_t off, uint64_t len)
{
	static const char zeros[65536];

	if (off >= cf->size)
		return 0;
	if (len > cf->size - off)
		len = cf->size - off;
	while (len > 0) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		long rc = chunkfile_write(at, cf, zeros, n, off);

		if (rc < 0)
			return (int)rc;
		off += n;
		len -= n;
	}
	return 0;
}

int
chunkfile_resize(const struct chunkfile_where *at, struct chunkfile *cf, uint64_t size)
{
	uint32_t cs = chunk_size(cf);

	if (size < cf->size) {
		uint32_t n = (uint32_t)((size + cs - 1) / cs);
		size_t tail = (size_t)(size % cs);

		for (unsigned i = cf->n_dirty; i-- > 0;)
			if (cf->dirty[i].index >= n)
				dirty_drop(cf, i);
		/* The new last chunk keeps bytes past the new end: zero them
		 * (a later extension reads zeros there). */
		if (tail != 0) {
			struct chunk_buf *b;
			uint64_t old = cf->size;
			int rc;

			cf->size = size;
			rc = dirty_get(at, cf, n - 1, false, &b);
			if (rc != 0) {
				cf->size = old;
				return rc;
			}
			memset(b->data + tail, 0, cs - tail);
		}
	}
	cf->size = size;
	cf->resized = true;
	return 0;
}

int
chunkfile_commit(const struct chunkfile_where *at, struct chunkfile *cf, const struct txn_write *w,
    struct record_attr *out)
{
	uint32_t cs = chunk_size(cf);
	struct txn_chunk_data *d = calloc(cf->n_dirty ? cf->n_dirty : 1, sizeof(*d));
	size_t n = 0;
	int rc;

	if (d == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < cf->n_dirty; i++) {
		uint64_t start = (uint64_t)cf->dirty[i].index * cs;

		if (start >= cf->size)
			continue;  /* cut off by a truncation */
		d[n].index = cf->dirty[i].index;
		d[n].data = cf->dirty[i].data;
		d[n].len = cf->size - start < cs ? (uint32_t)(cf->size - start) : cs;
		n++;
	}
	rc = txn_chunk_commit(at->ns, &at->key, &cf->map, cf->size, d, n, w, out);
	free(d);
	if (rc != 0)
		return rc;
	dirty_drop_all(cf);
	cf->resized = false;
	return 0;
}

void
chunkfile_discard(struct chunkfile *cf)
{
	dirty_drop_all(cf);
	cf->size = cf->map.size;
	cf->resized = false;
}
