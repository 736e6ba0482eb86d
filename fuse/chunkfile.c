/*
 * chunkfile.c - the open-file state of a large file (see chunkfile.h).
 *
 * Design: dirty chunks are whole chunk buffers in a small array (at most
 * CHUNKFILE_DIRTY_FILE_BYTES before a commit, so a linear search is cheaper than
 * any tree); a partly written chunk is first read from its committed
 * version (read-modify-write of one chunk, never of the file).  Every
 * buffer is zero past the file's end, so an extension after a truncation
 * reads zeros, and a commit stores each chunk only up to the file's end.
 * The two clean chunks read last are kept: sequential reads smaller than
 * a chunk fetch each chunk once (the readahead of this layer; the kernel's
 * own readahead asks for up to max_readahead at a time), and a read that
 * spans two chunks is replied to from both buffers with no copy
 * (chunkfile_read_iov; the owner sends the reply under its lock).
 *
 * Chunk buffers come from a small pool (POOL_BYTES of free buffers of the
 * last chunk size used): a buffer freed by a commit is the next write's, with
 * no allocation and no zeroing when that write covers the whole chunk
 * (glibc would otherwise serve 512 KiB from its heaps after the first
 * frees and keep hundreds of MiB of them).
 *
 * Chunk-sized buffers of the layers below (a chunk encoded for the
 * engine, a chunk read from another node) are malloc'd and freed there,
 * per chunk (a chunk this node stores is read into the caller's buffer).  glibc
 * serves them from its heaps once its mmap threshold has risen past a chunk
 * (the first free of an mmap'd block raises it), one heap per thread that
 * touches them, and keeps what is freed: 60 MiB more RSS after a 1 GiB
 * write, growing with the bytes written.  So every CHUNK_TRIM_BYTES of
 * chunks moved (read or committed, all files) the thread that crosses the
 * mark returns the free heap pages to the kernel (malloc_trim: about a
 * millisecond per 32 MiB of chunks); RSS stays within the pool, the dirty
 * chunks and one trim interval.  Rejected: lowering the mmap threshold for
 * the whole daemon (every chunk buffer would be a fresh mmap, faulted and
 * zeroed page by page: slower, and a setting of the daemon, not of this
 * path).
 *
 * Prefetch: a read that moves a sequential reader's head (the highest
 * chunk read) forward queues background fetches of the chunks after it,
 * PREFETCH_AHEAD_BYTES of them (at least 2), each into a pool buffer of
 * the file's own slot, for PREFETCH_WORKERS fetcher threads; so the
 * storage reads of the next chunks overlap the reply of this one and the
 * kernel's next requests, several at once (a disk serves 1 MiB reads
 * faster with more of them in flight: fio on this project's VM, 0.94,
 * 1.18, 1.73 GB/s at depth 1, 2, 4).  A chunk's record is read straight
 * into the slot's buffer (txn_chunk_read_into: pool buffers are aligned
 * and a block larger than a chunk) and the reply points into it: no copy
 * of the chunk in user space, no chunk-sized allocation per chunk.  A
 * slot keeps its chunk after a read took it, until the head is
 * PREFETCH_BEHIND chunks past it: with a read-ahead
 * window (readahead.c) the kernel has several requests in flight, which
 * the daemon's threads answer in whatever order they get the inode lock
 * (chunk i after chunk i + 3).  When a taken chunk went into a clean
 * buffer instead (two of them), such a late request read it again from
 * storage, and a request behind the head counted as a jump that reused
 * the slots: with a 1 MiB window, 5% more chunk reads for `cat`, 45-120%
 * with 4 MiB.  A slot names the
 * chunk (file id, index, version) it holds; a read uses it only for that
 * exact chunk version (a commit since makes it stale: dropped).  A fetcher
 * touches only its slot (its own lock), never the file's state, so the
 * inode lock is not held while it fetches; chunkfile_free takes queued
 * fetches off the queue and waits for running ones.  A fetch that failed
 * is the reader's error (it counted and logged it: one failure, one
 * count).  Memory: PREFETCH_AHEAD_BYTES per file reading, and no prefetch
 * past PREFETCH_BYTES_MAX in the daemon.  Rejected: a thread per fetch
 * (what this was: a thread creation, a stack mapped and unmapped and an
 * arena per chunk).  More than 2 fetchers were rejected while each chunk
 * record was read into a buffer of its own (each fetcher's glibc arena
 * kept one: RSS); reading into the slot's buffer ended that.  A read
 * request that finds its chunk not in memory yet waits for it (counted:
 * fuse_chunk_read_waits, fuse_chunk_read_wait_time).
 *
 * Rejected: caching every chunk read (memory would follow the file's
 * size); a commit per write(2) (each 4 KiB write would rewrite a chunk and
 * the head).
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/atomic.h"
#include "base/clock.h"
#include "chunkfile.h"
#include "stats.h"

/* Bytes of chunks fetched ahead of one sequential reader (at least 2 chunks,
 * at most PREFETCH_SLOTS_MAX), in the daemon, and the fetching threads. */
#define PREFETCH_AHEAD_BYTES (6u << 20)
#define PREFETCH_SLOTS_MAX 12
/* Chunks kept behind the highest one read: the kernel's readahead has
 * several requests in flight, and the daemon's threads may answer them
 * in any order (a request for chunk i after one for chunk i + 3). */
#define PREFETCH_BEHIND 4
#define PREFETCH_WORKERS 4
#define PREFETCH_BYTES_MAX (32ull << 20)

/* One chunk fetched ahead (its own lock: the fetching thread and the
 * file's owner share it). */
struct prefetch {
	pthread_mutex_t lock;
	pthread_cond_t done_cv;
	bool busy;                    /* a thread is fetching into it (under lock) */
	bool ready;                   /* data holds the chunk (under lock) */
	bool armed;                   /* owner only: started for the chunk below (kept once
	                               * fetched, until the slot is reused) */
	bool used;                    /* a read took the chunk (counted; under lock) */
	unsigned refs;                /* replies sent from data outside the owner's lock
	                               * (chunkfile_read_pin; under lock): not reused
	                               * or freed until 0 */
	bool queued;                  /* waiting for a fetcher (under fetchers.lock) */
	struct prefetch *next;        /* the fetchers' queue (under fetchers.lock) */
	int rc;                       /* the fetch's result (under lock) */
	uint64_t file_id;
	uint32_t index, version;
	char *data;                   /* a pool buffer: the chunk's record is read into it */
	const char *bytes;            /* the chunk's bytes in data (chunk_size of them) */
	/* the fetch's inputs (copied: the thread never reads the file) */
	struct namespace *ns;
	char set[RECORD_SET_MAX + 1];
	size_t set_len;
	uint64_t start;
	size_t want, cs;
};

struct chunk_buf {
	uint32_t index;
	uint32_t valid;               /* data holds [0, valid); zeros past it, not yet written */
	char *data;                   /* chunk_size bytes, zero past the file's end */
};

struct chunkfile {
	struct txn_chunk_map map;     /* as committed */
	uint64_t size;                /* with unsaved changes */
	uint64_t cut;                 /* the least size since the commit: committed
	                               * chunks from there on are gone (holes) */
	bool resized;                 /* the size changed since the commit */
	struct chunk_buf *dirty;      /* n_dirty of cap */
	unsigned n_dirty, cap;
	/* the two clean chunks read last, the latest first: a read that spans
	 * two chunks is replied to from both without a copy */
	struct clean_buf {
		char *data;           /* a pool buffer: the chunk's record is read into it */
		const char *bytes;    /* the chunk's bytes in data, chunk_size of them,
		                       * zero past what the chunk stores */
		uint32_t index, version;
		bool valid;
	} clean[2];
	/* the chunk the last write ended inside (a sequential writer is filling it) */
	uint32_t fill_index;
	bool fill_valid;
	/* sequential reading: the highest chunk read (the stream's head), the
	 * lowest chunk of the read being answered (its slots are not reused
	 * before the reply is sent), and chunks fetched ahead */
	uint32_t head;
	bool head_valid;
	uint32_t read_lo;
	struct prefetch *ahead[PREFETCH_SLOTS_MAX];
};

static uint64_t dirty_bytes;    /* atomic: dirty chunk buffers in the daemon */
static uint64_t moved_bytes;    /* atomic: chunk bytes read or committed, ever */
static uint64_t prefetch_bytes; /* atomic: buffers of chunks fetched ahead */
#define CHUNK_TRIM_BYTES (32ull << 20)

/* Free chunk buffers, all of pool.size bytes (a leaf lock). */
#define POOL_MAX 64
#define POOL_BYTES (16u << 20)
static struct {
	pthread_mutex_t lock;
	size_t size;
	unsigned n;
	char *free[POOL_MAX];
} pool = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* A buffer for chunks of size bytes (txn_chunk_buf_size of them, aligned
 * for txn_chunk_read_into), its first size bytes zeroed if zero; NULL
 * without memory. */
static char *
pool_get(size_t size, bool zero)
{
	char *p = NULL;

	pthread_mutex_lock(&pool.lock);
	if (pool.size == size && pool.n > 0)
		p = pool.free[--pool.n];
	pthread_mutex_unlock(&pool.lock);
	if (p == NULL) {
		void *q;

		if (posix_memalign(&q, TXN_READ_ALIGN, txn_chunk_buf_size((uint32_t)size)) != 0)
			return NULL;
		p = q;
	}
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
	if (pool.n < POOL_MAX && (pool.n + 1) * txn_chunk_buf_size((uint32_t)size) <= POOL_BYTES) {
		pool.free[pool.n++] = p;
		p = NULL;
	}
	pthread_mutex_unlock(&pool.lock);
	free(p);
}

/* n bytes of chunks were read or committed: past each CHUNK_TRIM_BYTES,
 * give the free heap pages back (see the top of the file). */
static void
chunk_moved(uint64_t n)
{
	uint64_t after = atomic_add(&moved_bytes, n);

	if ((after - n) / CHUNK_TRIM_BYTES != after / CHUNK_TRIM_BYTES)
		(void)malloc_trim(0);
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

/* Whether chunk index has a committed version this state still reads
 * (not a hole, not past a truncation since the commit). */
static bool
stored(const struct chunkfile *cf, uint32_t index)
{
	return index < cf->map.n && cf->map.versions[index] != 0 &&
	    (uint64_t)index * chunk_size(cf) < cf->cut;
}

/* Dirty chunks of cf before it is committed. */
static unsigned
dirty_max(const struct chunkfile *cf)
{
	uint32_t n = CHUNKFILE_DIRTY_FILE_BYTES / chunk_size(cf);

	return n < 2 ? 2 : n;
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
 * whole (the zeros are written lazily: dirty_zero_to). */
static struct chunk_buf *
dirty_add(struct chunkfile *cf, uint32_t index, bool zero)
{
	struct chunk_buf *b;
	char *data;

	if (cf->n_dirty == cf->cap) {
		unsigned cap = cf->cap ? cf->cap * 2 : dirty_max(cf);
		struct chunk_buf *d = realloc(cf->dirty, cap * sizeof(*d));

		if (d == NULL)
			return NULL;
		cf->dirty = d;
		cf->cap = cap;
	}
	data = pool_get(chunk_size(cf), false);
	if (data == NULL)
		return NULL;
	atomic_add(&dirty_bytes, chunk_size(cf));
	b = &cf->dirty[cf->n_dirty++];
	b->index = index;
	b->data = data;
	b->valid = zero ? 0 : chunk_size(cf);
	return b;
}

/* Make dirty buffer b hold its zeros up to byte end (before a read or a
 * commit of them, or a write past them): an appending writer fills a new
 * chunk with its writes and never zeroes what they cover. */
static void
dirty_zero_to(struct chunk_buf *b, size_t end)
{
	if (end > b->valid) {
		memset(b->data + b->valid, 0, end - b->valid);
		b->valid = (uint32_t)end;
	}
}

/* ---- prefetch ---------------------------------------------------------------- */

/* The fetchers: PREFETCH_WORKERS threads started at the first fetch ahead,
 * taking slots from a FIFO (under lock); chunkfile_quiesce stops them once
 * the queue is empty (a later fetch starts them again). */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	struct prefetch *head, *tail;
	unsigned n_workers;
	bool stop;
	pthread_t workers[PREFETCH_WORKERS];
} fetchers = { .lock = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

/* Fetch slot p's chunk; its result under its lock. */
static void
prefetch_run(struct prefetch *p)
{
	const char *bytes = NULL;
	int rc = txn_chunk_read_into(p->ns, p->set, p->set_len, p->file_id, p->index, p->version,
	    p->start, p->want, p->cs, p->data, txn_chunk_buf_size((uint32_t)p->cs), &bytes);

	pthread_mutex_lock(&p->lock);
	p->bytes = bytes;
	p->ready = rc == 0;
	p->rc = rc;
	p->busy = false;
	pthread_cond_broadcast(&p->done_cv);
	pthread_mutex_unlock(&p->lock);
	/* p may be freed from here on. */
}

static void *
prefetch_worker(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&fetchers.lock);
	for (;;) {
		struct prefetch *p = fetchers.head;

		if (p == NULL) {
			if (fetchers.stop)
				break;
			pthread_cond_wait(&fetchers.cv, &fetchers.lock);
			continue;
		}
		fetchers.head = p->next;
		if (fetchers.head == NULL)
			fetchers.tail = NULL;
		p->next = NULL;
		p->queued = false;
		pthread_mutex_unlock(&fetchers.lock);
		prefetch_run(p);
		pthread_mutex_lock(&fetchers.lock);
	}
	pthread_mutex_unlock(&fetchers.lock);
	return NULL;
}

/* Queue slot p (busy already); false if no fetcher runs (none could be
 * started): the reader fetches the chunk itself. */
static bool
prefetch_queue(struct prefetch *p)
{
	bool ok;

	pthread_mutex_lock(&fetchers.lock);
	while (fetchers.n_workers < PREFETCH_WORKERS && !fetchers.stop &&
	    pthread_create(&fetchers.workers[fetchers.n_workers], NULL, prefetch_worker, NULL) == 0)
		fetchers.n_workers++;
	ok = fetchers.n_workers > 0 && !fetchers.stop;
	if (ok) {
		p->queued = true;
		p->next = NULL;
		if (fetchers.tail != NULL)
			fetchers.tail->next = p;
		else
			fetchers.head = p;
		fetchers.tail = p;
		pthread_cond_signal(&fetchers.cv);
	}
	pthread_mutex_unlock(&fetchers.lock);
	return ok;
}

void
chunkfile_quiesce(void)
{
	unsigned n;

	/* The fetchers empty the queue, then end. */
	pthread_mutex_lock(&fetchers.lock);
	fetchers.stop = true;
	n = fetchers.n_workers;
	pthread_cond_broadcast(&fetchers.cv);
	pthread_mutex_unlock(&fetchers.lock);
	for (unsigned i = 0; i < n; i++)
		pthread_join(fetchers.workers[i], NULL);
	pthread_mutex_lock(&fetchers.lock);
	fetchers.n_workers = 0;
	fetchers.stop = false;
	pthread_mutex_unlock(&fetchers.lock);
}

/* Wait for slot p's fetch to end and the replies sent from it (the owner
 * may reuse it after); a fetch still queued is taken off the queue
 * instead. */
static void
prefetch_wait(struct prefetch *p)
{
	bool dequeued = false;

	pthread_mutex_lock(&fetchers.lock);
	if (p->queued) {
		struct prefetch **pp = &fetchers.head, *prev = NULL;

		while (*pp != p) {
			prev = *pp;
			pp = &(*pp)->next;
		}
		*pp = p->next;
		if (fetchers.tail == p)
			fetchers.tail = prev;
		p->next = NULL;
		p->queued = false;
		dequeued = true;
	}
	pthread_mutex_unlock(&fetchers.lock);
	pthread_mutex_lock(&p->lock);
	if (dequeued) {
		/* Never fetched: a reply pinned to it (chunkfile_pin_wait)
		 * wakes, finds it not ready and unpins; else both would wait
		 * for each other. */
		p->busy = false;
		p->ready = false;
		p->rc = 0;
		pthread_cond_broadcast(&p->done_cv);
	}
	while (p->busy || p->refs > 0)
		pthread_cond_wait(&p->done_cv, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

static void
prefetch_free_all(struct chunkfile *cf)
{
	for (unsigned i = 0; i < PREFETCH_SLOTS_MAX; i++) {
		struct prefetch *p = cf->ahead[i];

		if (p == NULL)
			continue;
		prefetch_wait(p);
		if (p->data != NULL) {
			pool_put(p->data, p->cs);
			atomic_sub(&prefetch_bytes, p->cs);
		}
		pthread_cond_destroy(&p->done_cv);
		pthread_mutex_destroy(&p->lock);
		free(p);
		cf->ahead[i] = NULL;
	}
}

/* Chunks fetched ahead of a sequential reader of cf: PREFETCH_AHEAD_BYTES
 * of them, at least 2, and room for the chunks kept behind. */
static unsigned
prefetch_depth(const struct chunkfile *cf)
{
	uint64_t n = PREFETCH_AHEAD_BYTES / chunk_size(cf);
	unsigned most = PREFETCH_SLOTS_MAX - PREFETCH_BEHIND - 1;

	return n < 2 ? 2 : n > most ? most : (unsigned)n;
}

/* The clean buffer holding chunk index as the map names it (made the
 * latest), or NULL. */
static const char *
clean_find(struct chunkfile *cf, uint32_t index)
{
	for (unsigned i = 0; i < 2; i++) {
		struct clean_buf c = cf->clean[i];

		if (c.valid && c.index == index && index < cf->map.n && c.version == cf->map.versions[index]) {
			if (i == 1) {
				cf->clean[1] = cf->clean[0];
				cf->clean[0] = c;
			}
			return c.bytes;
		}
	}
	return NULL;
}

/* Whether a clean buffer holds chunk index as the map names it (their
 * order unchanged: a reply may point into the older one). */
static bool
clean_holds(const struct chunkfile *cf, uint32_t index)
{
	for (unsigned i = 0; i < 2; i++)
		if (cf->clean[i].valid && cf->clean[i].index == index && index < cf->map.n &&
		    cf->clean[i].version == cf->map.versions[index])
			return true;
	return false;
}

/* Whether slot p was started for chunk index as the map names it now. */
static bool
prefetch_holds(const struct chunkfile *cf, const struct prefetch *p, uint32_t index)
{
	return p != NULL && p->armed && p->index == index && p->file_id == cf->map.file_id &&
	    index < cf->map.n && p->version == cf->map.versions[index];
}

/* A read request waited for a chunk from t0 (clock_mono_ns) until now. */
static void
read_waited(uint64_t t0)
{
	stats_inc(STAT_fuse_chunk_read_waits);
	stats_add(STAT_fuse_chunk_read_wait_time, (clock_mono_ns() - t0) / 1000);
}

/* p->lock held: until p's fetch (if one is running) is done; the wait is
 * counted. */
static void
prefetch_wait_locked(struct prefetch *p)
{
	if (p->busy) {
		uint64_t t0 = clock_mono_ns();

		while (p->busy)
			pthread_cond_wait(&p->done_cv, &p->lock);
		read_waited(t0);
	}
}

/* A read takes slot p's chunk: counted once (p's lock held); true the
 * first time (then chunk_moved, after the lock: it may trim the heaps). */
static bool
prefetch_used_locked(struct prefetch *p)
{
	if (p->used)
		return false;
	p->used = true;
	stats_inc(STAT_fuse_chunk_prefetches);
	return true;
}

/* The slot fetched ahead for chunk index as the map names it, or NULL. */
static struct prefetch *
prefetch_find(struct chunkfile *cf, uint32_t index)
{
	for (unsigned i = 0; i < PREFETCH_SLOTS_MAX; i++)
		if (prefetch_holds(cf, cf->ahead[i], index))
			return cf->ahead[i];
	return NULL;
}

/* Chunk index from a slot fetched ahead, into *out (valid while the slot
 * holds it: see prefetch_start): 1 if it was there, 0 if no slot holds it
 * or its fetch found the chunk gone (the reader reads it itself), or the
 * error of the fetch (counted and logged by it: a chunk that fails its
 * check is one failed read, not two).  The slot keeps the chunk: a read
 * that the kernel's readahead sent out of order, or the next request
 * over the same chunk, is served from it too. */
static int
prefetch_take(struct chunkfile *cf, uint32_t index, const char **out)
{
	struct prefetch *p = prefetch_find(cf, index);
	bool ok, first;
	int rc;

	if (p == NULL)
		return 0;
	pthread_mutex_lock(&p->lock);
	prefetch_wait_locked(p);   /* still being fetched: the reader waits for it */
	ok = p->ready;
	rc = p->rc;
	first = ok && prefetch_used_locked(p);
	pthread_mutex_unlock(&p->lock);
	if (first)
		chunk_moved(p->cs);
	if (!ok) {
		p->armed = false;
		return rc == -ENOENT || rc == 0 ? 0 : rc;
	}
	*out = p->bytes;
	return 1;
}

/* Start fetching chunk index ahead of a reader, if it is stored, not held
 * already and a slot is free: idle, holding a chunk a commit replaced, or
 * one the reader is past - more than PREFETCH_BEHIND behind its head and
 * below the read being answered (whose reply may point into it), or too
 * far ahead of the head (the reader went back). */
static void
prefetch_start(const struct chunkfile_where *at, struct chunkfile *cf, uint32_t index, unsigned depth)
{
	uint32_t cs = chunk_size(cf);
	unsigned slots = depth + PREFETCH_BEHIND + 1;
	struct prefetch *p = NULL;

	if (!stored(cf, index) || dirty_find(cf, index) != NULL ||
	    clean_holds(cf, index) || at->key.set_len > RECORD_SET_MAX)
		return;
	for (unsigned i = 0; i < slots; i++)
		if (prefetch_holds(cf, cf->ahead[i], index))
			return;
	for (unsigned i = 0; i < slots && p == NULL; i++) {
		struct prefetch *q = cf->ahead[i];

		if (q == NULL) {
			q = calloc(1, sizeof(*q));
			if (q == NULL)
				return;
			pthread_mutex_init(&q->lock, NULL);
			pthread_cond_init(&q->done_cv, NULL);
			q->cs = cs;
			cf->ahead[i] = q;
		}
		if (!q->armed || !prefetch_holds(cf, q, q->index) ||
		    (q->index < cf->read_lo && q->index + PREFETCH_BEHIND < cf->head) ||
		    q->index > cf->head + depth) {
			bool pinned;

			/* Not one a reply is being sent from (or waits for):
			 * the inode lock is not held waiting for it. */
			pthread_mutex_lock(&q->lock);
			pinned = q->refs > 0;
			pthread_mutex_unlock(&q->lock);
			if (!pinned)
				p = q;
		}
	}
	if (p == NULL)
		return;
	prefetch_wait(p);  /* a stale fetch still queued or running: its end */
	p->armed = false;
	p->used = false;   /* no fetch, no pin: no other thread reads it */
	if (p->data == NULL) {
		if (atomic_load_relaxed(&prefetch_bytes) >= PREFETCH_BYTES_MAX ||
		    (p->data = pool_get(cs, false)) == NULL)
			return;
		atomic_add(&prefetch_bytes, cs);
	}
	p->ns = at->ns;
	memcpy(p->set, at->key.set, at->key.set_len);
	p->set_len = at->key.set_len;
	p->file_id = cf->map.file_id;
	p->index = index;
	p->version = cf->map.versions[index];
	p->start = (uint64_t)index * cs;
	p->want = cf->map.size - p->start < cs ? (size_t)(cf->map.size - p->start) : cs;
	p->ready = false;
	p->rc = 0;
	p->busy = true;
	if (prefetch_queue(p))
		p->armed = true;
	else
		p->busy = false;  /* no fetcher: the reader fetches it itself */
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
	cf->cut = m->size;
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
		if (b->valid < (len - off < csize ? len - off : csize))
			b->valid = (uint32_t)(len - off < csize ? len - off : csize);
	}
	*out = cf;
	return 0;
}

void
chunkfile_free(struct chunkfile *cf)
{
	if (cf == NULL)
		return;
	prefetch_free_all(cf);
	dirty_drop_all(cf);
	free(cf->dirty);
	pool_put(cf->clean[0].data, chunk_size(cf));
	pool_put(cf->clean[1].data, chunk_size(cf));
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
	return cf->n_dirty >= dirty_max(cf) ||
	    (cf->n_dirty > 0 && chunkfile_dirty_bytes() >= CHUNKFILE_DIRTY_BYTES_MAX);
}

/*
 * A read(2) reads chunk index: a sequential reader's head moves forward,
 * and the chunks after it are fetched ahead.  Near the head (a few behind:
 * requests answered out of order; up to depth ahead: a request overtook
 * others) is still the same stream; anywhere else the reader jumped, and
 * the head follows it without fetching (a random reader).
 */
static void
reader_at(const struct chunkfile_where *at, struct chunkfile *cf, uint32_t index)
{
	unsigned depth = prefetch_depth(cf);
	bool near = cf->head_valid && index + 2 * PREFETCH_BEHIND >= cf->head &&
	    index <= cf->head + depth;

	if (!near || index > cf->head) {
		cf->head = index;
		cf->head_valid = true;
		for (uint32_t a = 1; near && a <= depth; a++)
			prefetch_start(at, cf, index + a, depth);
	}
}

/*
 * Chunk index as committed (stored: not a hole, below the committed end),
 * in a clean buffer: the latest one already, or one fetched ahead, or read
 * now into the older one (which the latest then replaces).  reading: a
 * read(2) asks, so a sequential reader's next chunks are fetched ahead.
 * The buffer stays valid until the next fetch but one.
 */
static int
clean_get(const struct chunkfile_where *at, struct chunkfile *cf, uint32_t index, bool reading,
    const char **out)
{
	uint32_t cs = chunk_size(cf);
	const char *data = clean_find(cf, index);
	const char *ahead = NULL;
	int rc = 0;

	if (data == NULL && reading)
		rc = prefetch_take(cf, index, &ahead);
	if (rc < 0)
		return rc;
	if (rc == 0 && data == NULL) {
		struct clean_buf c = cf->clean[1];
		uint64_t start = (uint64_t)index * cs, t0 = clock_mono_ns();
		size_t want = cf->map.size - start < cs ? (size_t)(cf->map.size - start) : cs;

		if (c.data == NULL && (c.data = pool_get(cs, false)) == NULL)
			return -ENOMEM;
		c.valid = false;
		cf->clean[1] = cf->clean[0];
		cf->clean[0] = c;
		rc = txn_chunk_read_into(at->ns, at->key.set, at->key.set_len, cf->map.file_id, index,
		    cf->map.versions[index], start, want, cs, c.data, txn_chunk_buf_size(cs), &data);
		if (reading)
			read_waited(t0);
		if (rc != 0)
			return rc;
		chunk_moved(cs);
		cf->clean[0] = (struct clean_buf){ .data = c.data, .bytes = data, .index = index,
		    .version = cf->map.versions[index], .valid = true };
	}
	if (reading)
		reader_at(at, cf, index);
	*out = ahead != NULL ? ahead : data;
	return 0;
}

/*
 * The committed bytes of chunk index, up to the file's current end, into
 * buf (chunk_size bytes; zeros past them).  The clean chunks serve a
 * repeat; holes and chunks past the committed end are zeros.
 */
static int
committed_get(const struct chunkfile_where *at, struct chunkfile *cf, uint32_t index, char *buf)
{
	uint32_t cs = chunk_size(cf);
	uint64_t start = (uint64_t)index * cs;
	const char *data;
	size_t keep;
	int rc;

	if (!stored(cf, index)) {
		memset(buf, 0, cs);
		return 0;
	}
	if ((rc = clean_get(at, cf, index, false, &data)) != 0)
		return rc;
	memcpy(buf, data, cs);
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
		if (!whole)
			b->valid = chunk_size(cf);
	}
	*out = b;
	return 0;
}

/* A static stretch of zeros for holes in a reply (never written: its pages
 * are the kernel's zero page). */
static char zeros_for_reply[1u << 20];

long
chunkfile_read_iov(const struct chunkfile_where *at, struct chunkfile *cf, struct iovec *iov,
    unsigned *n_iov, size_t size, uint64_t off)
{
	uint32_t cs = chunk_size(cf);
	size_t done = 0;
	unsigned n = 0;

	*n_iov = 0;
	if (off >= cf->size)
		return 0;
	if (size > cf->size - off)
		size = (size_t)(cf->size - off);
	if (size > 0 && (off + size - 1) / cs - off / cs >= CHUNKFILE_IOV_MAX)
		return -E2BIG;  /* more chunks than clean buffers: chunkfile_read */
	cf->read_lo = (uint32_t)(off / cs);
	while (done < size) {
		uint64_t pos = off + done;
		uint32_t index = (uint32_t)(pos / cs);
		size_t in = (size_t)(pos % cs), len = cs - in;
		struct chunk_buf *b = dirty_find(cf, index);
		const char *data;
		int rc;

		if (len > size - done)
			len = size - done;
		if (b != NULL) {
			dirty_zero_to(b, in + len);
			data = b->data + in;
		} else if (!stored(cf, index)) {
			if (len > sizeof(zeros_for_reply))
				return -E2BIG;
			data = zeros_for_reply;
		} else {
			if ((rc = clean_get(at, cf, index, true, &data)) != 0)
				return done > 0 ? (long)done : rc;
			data += in;
		}
		iov[n].iov_base = (void *)data;
		iov[n].iov_len = len;
		*n_iov = ++n;
		done += len;
	}
	return (long)done;
}

long
chunkfile_read_pin(const struct chunkfile_where *at, struct chunkfile *cf, struct chunkfile_pin *pin,
    size_t size, uint64_t off)
{
	uint32_t cs = chunk_size(cf);
	size_t done = 0;
	unsigned n = 0;

	pin->n = 0;
	if (off >= cf->size || size == 0)
		return -EAGAIN;
	if (size > cf->size - off)
		size = (size_t)(cf->size - off);
	if ((off + size - 1) / cs - off / cs >= CHUNKFILE_IOV_MAX)
		return -EAGAIN;
	/* Every chunk of the range in a slot fetched ahead (or being fetched). */
	for (uint64_t pos = off; pos < off + size; pos = (pos / cs + 1) * cs) {
		uint32_t index = (uint32_t)(pos / cs);

		if (!stored(cf, index) || dirty_find(cf, index) != NULL ||
		    (pin->slot[n] = prefetch_find(cf, index)) == NULL)
			return -EAGAIN;
		n++;
	}
	cf->read_lo = (uint32_t)(off / cs);
	n = 0;
	while (done < size) {
		uint64_t pos = off + done;
		uint32_t index = (uint32_t)(pos / cs);
		size_t in = (size_t)(pos % cs), len = cs - in;
		struct prefetch *p = pin->slot[n];

		if (len > size - done)
			len = size - done;
		pthread_mutex_lock(&p->lock);
		p->refs++;
		pthread_mutex_unlock(&p->lock);
		pin->in[n] = in;
		pin->len[n] = len;
		pin->n = ++n;
		reader_at(at, cf, index);
		done += len;
	}
	return (long)done;
}

int
chunkfile_pin_wait(struct chunkfile_pin *pin, struct iovec *iov, unsigned *n_iov)
{
	uint64_t moved = 0;
	int rc = 0;

	*n_iov = 0;
	for (unsigned i = 0; i < pin->n; i++) {
		struct prefetch *p = pin->slot[i];

		pthread_mutex_lock(&p->lock);
		prefetch_wait_locked(p);
		if (p->ready) {
			if (prefetch_used_locked(p))
				moved += p->cs;
			iov[i].iov_base = (void *)(p->bytes + pin->in[i]);
			iov[i].iov_len = pin->len[i];
		} else {
			rc = -EAGAIN;  /* its error, or gone: the reader's own path */
		}
		pthread_mutex_unlock(&p->lock);
	}
	if (moved > 0)
		chunk_moved(moved);
	if (rc == 0)
		*n_iov = pin->n;
	return rc;
}

void
chunkfile_unpin(struct chunkfile_pin *pin)
{
	for (unsigned i = 0; i < pin->n; i++) {
		struct prefetch *p = pin->slot[i];

		pthread_mutex_lock(&p->lock);
		if (--p->refs == 0)
			pthread_cond_broadcast(&p->done_cv);
		pthread_mutex_unlock(&p->lock);
		/* p may be freed from here on. */
	}
	pin->n = 0;
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
	cf->read_lo = (uint32_t)(off / cs);
	while (done < size) {
		uint64_t pos = off + done;
		uint32_t index = (uint32_t)(pos / cs);
		size_t in = (size_t)(pos % cs), n = cs - in;
		struct chunk_buf *b = dirty_find(cf, index);

		if (n > size - done)
			n = size - done;
		if (b != NULL) {
			dirty_zero_to(b, in + n);
			memcpy(buf + done, b->data + in, n);
		} else if (!stored(cf, index)) {
			memset(buf + done, 0, n);
		} else {
			const char *data;
			int rc = clean_get(at, cf, index, true, &data);

			if (rc != 0)
				return done > 0 ? (long)done : rc;
			memcpy(buf + done, data + in, n);
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
		dirty_zero_to(b, in);
		memcpy(b->data + in, buf + done, n);
		if (in + n > b->valid)
			b->valid = (uint32_t)(in + n);
		done += n;
		if (pos + n > cf->size) {
			cf->size = pos + n;
			cf->resized = true;
		}
	}
	cf->fill_valid = (off + size) % cs != 0;
	cf->fill_index = (uint32_t)((off + size) / cs);
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

		/* Committed chunks past the new end are gone, even if the file
		 * grows over them again before the commit. */
		if (size < cf->cut)
			cf->cut = size;
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
			dirty_zero_to(b, tail);
			memset(b->data + tail, 0, cs - tail);
			b->valid = cs;
		}
	}
	cf->size = size;
	cf->resized = true;
	return 0;
}

/* Commit the dirty chunks but the one of index hold (UINT32_MAX: none)
 * with the file's size as size (cf->size, or where hold starts). */
static int
commit_some(const struct chunkfile_where *at, struct chunkfile *cf, const struct txn_write *w,
    struct record_attr *out, uint32_t hold, uint64_t size)
{
	uint32_t cs = chunk_size(cf);
	uint32_t first_cut = (uint32_t)((cf->cut + cs - 1) / cs);
	size_t cut_n = first_cut < cf->map.n ? cf->map.n - first_cut : 0;
	struct txn_chunk_data *d = calloc(cf->n_dirty + cut_n + 1, sizeof(*d));
	size_t n = 0, written;
	int rc;

	if (d == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < cf->n_dirty; i++) {
		uint64_t start = (uint64_t)cf->dirty[i].index * cs;

		if (start >= size || cf->dirty[i].index == hold)
			continue;  /* cut off by a truncation, or held back */
		d[n].index = cf->dirty[i].index;
		d[n].data = cf->dirty[i].data;
		dirty_zero_to(&cf->dirty[i], size - start < cs ? (size_t)(size - start) : cs);
		d[n].len = size - start < cs ? (uint32_t)(size - start) : cs;
		n++;
	}
	written = n;
	/* Committed chunks a truncation cut off that the file (grown again)
	 * still covers and no write replaced: holes now. */
	for (uint32_t i = first_cut; i < cf->map.n && (uint64_t)i * cs < size; i++)
		if (cf->map.versions[i] != 0 && i != hold && dirty_find(cf, i) == NULL)
			d[n++] = (struct txn_chunk_data){ .index = i, .len = 0, .data = NULL };
	rc = txn_chunk_commit(at->ns, &at->key, &cf->map, size, d, n, w, out);
	free(d);
	if (rc != 0)
		return rc;
	n = written;
	for (unsigned i = cf->n_dirty; i-- > 0;)
		if (cf->dirty[i].index != hold)
			dirty_drop(cf, i);
	cf->resized = size != cf->size;
	cf->cut = size;
	chunk_moved((uint64_t)n * cs);
	return 0;
}

int
chunkfile_commit(const struct chunkfile_where *at, struct chunkfile *cf, const struct txn_write *w,
    struct record_attr *out)
{
	return commit_some(at, cf, w, out, UINT32_MAX, cf->size);
}

int
chunkfile_commit_bound(const struct chunkfile_where *at, struct chunkfile *cf, const struct txn_write *w,
    struct record_attr *out)
{
	uint32_t cs = chunk_size(cf);
	uint64_t start = (uint64_t)cf->fill_index * cs;
	int rc;

	/* Held back only where the commit is then the file's prefix: the
	 * last chunk, wholly past the committed end (nothing older there). */
	if (!cf->fill_valid || cf->n_dirty < 2 || dirty_find(cf, cf->fill_index) == NULL ||
	    start < cf->map.size || cf->size <= start || cf->size - start > cs)
		return chunkfile_commit(at, cf, w, out);
	rc = commit_some(at, cf, w, out, cf->fill_index, start);
	return rc != 0 ? rc : 1;
}

void
chunkfile_discard(struct chunkfile *cf)
{
	dirty_drop_all(cf);
	cf->size = cf->map.size;
	cf->cut = cf->map.size;
	cf->resized = false;
}
