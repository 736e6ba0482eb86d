/*
 * storage_memory.c - the memory engine: records live in RAM stripes.
 *
 * data-size bytes of RAM are split into stripes (up to 8, chosen by digest
 * so concurrent writers rarely share a lock).  Each stripe is an image of
 * a storage file without its header: wblock ids start after the 8 MiB
 * header area so locations (and a future shadow file) line up with the
 * device engine's layout.  A write reserves space in the stripe's current
 * wblock and encodes the record straight into RAM under the stripe lock;
 * encoding under the lock (a memcpy and a CRC) is cheaper than tracking
 * in-flight writers the way a device write buffer must.  A record that
 * arrives encoded (replica writes, a master's replicated write, migration,
 * defrag) is copied in with copy_to_cold: the write blocks fill in order
 * over all of data-size, memory no cache holds, and a large record's
 * ordinary copy would cost about twice its non-temporal one.
 *
 * Defragmentation: one thread per namespace pops wblocks whose live bytes
 * fell below defrag-lwm-pct, hands each record to the owner (which moves it
 * only if the index still points there) and frees the wblock when empty.
 * Without persistence a moved record is "durable" at once, so the source
 * can be freed immediately.
 *
 * RAM is mapped with MAP_POPULATE at open: first touch of fresh memory is
 * slow on these machines and belongs at start-up, not on the write path.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../base/atomic.h"
#include "../base/clock.h"
#include "../base/copy.h"
#include "../base/error.h"
#include "../base/log.h"
#include "storage.h"
#include "wblock.h"

#define MEM_STRIPES_MAX 8
#define MEM_NONE UINT32_MAX

struct mem_stripe {
	struct wblock_table wt;      /* wt.lock also protects the fields below */
	uint8_t *base;               /* RAM of wblocks [wt.first, wt.n_wblocks) */
	uint32_t cur, cur_pos;       /* current write wblock and fill */
	uint32_t dcur, dpos;         /* current defrag destination */
	pthread_cond_t space_cv;     /* defrag freed a wblock */
	uint64_t writes;             /* wblocks filled by writes */
	uint64_t defrag_writes;      /* wblocks filled by defrag */
};

struct mem_engine {
	uint32_t n_stripes;
	uint32_t wbs;
	size_t stripe_bytes;
	struct mem_stripe stripes[MEM_STRIPES_MAX];
	pthread_t defrag_thread;
	bool defrag_started;
	bool defrag_stalled;         /* defrag thread: its last wblock found no space for copies */
	pthread_mutex_t defrag_lock; /* a leaf: defrag_kick may run under a stripe lock */
	pthread_cond_t defrag_cv;    /* signalled when a wblock is queued */
	bool stop;                   /* protected by defrag_lock */
	uint64_t kicks;              /* protected by defrag_lock: defrag_kick calls */
	uint64_t reads;              /* atomics */
	uint64_t defrag_records;
	uint64_t checksum_errors;
	uint64_t write_waits;        /* protected by the stripe locks (summed) */
};

#define MEM_SPACE_WAIT_MS 2000

static inline uint8_t *
stripe_addr(const struct mem_engine *m, const struct mem_stripe *s, uint64_t offset)
{
	return s->base + (offset - (uint64_t)s->wt.first * m->wbs);
}

static void
defrag_kick(struct mem_engine *m)
{
	pthread_mutex_lock(&m->defrag_lock);
	m->kicks++;
	pthread_cond_signal(&m->defrag_cv);
	pthread_mutex_unlock(&m->defrag_lock);
}

/* Place size bytes in the stripe's current (or defrag) wblock.  Called with
 * the stripe lock held; returns the file offset or -ENOSPC. */
static int64_t
stripe_reserve_locked(struct mem_engine *m, struct mem_stripe *s, uint32_t size, bool for_defrag,
    enum wblock_user user)
{
	uint32_t *cur = for_defrag ? &s->dcur : &s->cur;
	uint32_t *pos = for_defrag ? &s->dpos : &s->cur_pos;
	int rc;

	if (*cur == MEM_NONE || *pos + size > m->wbs) {
		uint32_t id;

		rc = wblock_alloc_locked(&s->wt, user, &id);
		if (rc != 0)
			return rc;
		if (*cur != MEM_NONE) {
			if (wblock_release_locked(&s->wt, *cur))
				defrag_kick(m);
			if (for_defrag)
				s->defrag_writes++;
			else
				s->writes++;
		}
		*cur = id;
		*pos = 0;
	}
	int64_t off = (int64_t)*cur * m->wbs + *pos;
	*pos += size;
	wblock_add_locked(&s->wt, *cur, size);
	wblock_get(&s->wt, *cur)->used_end = *pos;
	return off;
}

/* Store a record of size bytes: r encoded, or flat copied as it is. */
static int
mem_store(struct storage *st, const struct digest *d, bool tombstone, const struct record *r,
    const uint8_t *flat, uint32_t size, storage_loc *loc)
{
	struct mem_engine *m = st->priv;
	uint32_t si = digest_spread(d) % m->n_stripes;
	struct mem_stripe *s = &m->stripes[si];
	int64_t off;

	if (size > storage_max_record_size(st->cfg))
		return -EFBIG;
	pthread_mutex_lock(&s->wt.lock);
	off = stripe_reserve_locked(m, s, size, false,
	    tombstone ? WBLOCK_FOR_DELETE : WBLOCK_FOR_WRITE);
	if (off < 0) {
		pthread_mutex_unlock(&s->wt.lock);
		return (int)off;
	}
	long n = size;

	/* No regain marks here: nothing survives a restart to be told apart
	 * (bytes that arrive keep theirs; a device node replaces them). */
	if (r != NULL)
		n = record_flat_encode_mark(r, 0, stripe_addr(m, s, (uint64_t)off), size);
	else
		copy_to_cold(stripe_addr(m, s, (uint64_t)off), flat, size);
	pthread_mutex_unlock(&s->wt.lock);
	if (n < 0) {
		/* The space stays reserved but holds no live record. */
		if (wblock_free_bytes(&s->wt, (uint32_t)((uint64_t)off / m->wbs), size))
			defrag_kick(m);
		return (int)n;
	}
	*loc = storage_loc_make(si, (uint64_t)off, size);
	return 0;
}

static int
mem_write(struct storage *st, const struct record *r, uint32_t size, storage_loc *loc)
{
	return mem_store(st, &r->digest, (r->flags & RECORD_F_TOMBSTONE) != 0, r, NULL, size, loc);
}

static int
mem_write_flat(struct storage *st, const uint8_t *flat, uint32_t size, storage_loc *loc)
{
	return mem_store(st, record_flat_digest(flat), (flat[9] & RECORD_F_TOMBSTONE) != 0, NULL,
	    flat, size, loc);
}

static int
mem_read(struct storage *st, storage_loc loc, uint8_t *buf)
{
	struct mem_engine *m = st->priv;
	uint32_t si = storage_loc_file(loc), size = storage_loc_size(loc), got;
	uint64_t off = storage_loc_offset(loc);
	int rc;

	if (si >= m->n_stripes)
		return RECFS_EFORMAT;
	memcpy(buf, stripe_addr(m, &m->stripes[si], off), size);
	atomic_inc(&m->reads);
	rc = record_flat_check(buf, size, &got);
	if (rc == 0 && got != size)
		rc = RECFS_EFORMAT;
	if (rc == 0)
		rc = record_flat_verify(buf, size);
	if (rc != 0) {
		atomic_inc(&m->checksum_errors);
		log_error("storage", "{%s} stripe %u offset %llu: %s", st->ns_name, si,
		    (unsigned long long)off, recfs_strerror(rc));
	}
	return rc;
}

static void
mem_free(struct storage *st, storage_loc loc)
{
	struct mem_engine *m = st->priv;
	struct mem_stripe *s = &m->stripes[storage_loc_file(loc)];
	uint32_t id = (uint32_t)(storage_loc_offset(loc) / m->wbs);

	if (wblock_free_bytes(&s->wt, id, storage_loc_size(loc)))
		defrag_kick(m);
}

static int
mem_sync_all(struct storage *st)
{
	return 0;  /* nothing persistent without a shadow (#shadow) */
}

/* Writers slow to the pace defrag can keep (see storage.h wait_space). */
static void
mem_wait_space(struct storage *st, const struct digest *d)
{
	struct mem_engine *m = st->priv;
	struct mem_stripe *s = &m->stripes[digest_spread(d) % m->n_stripes];
	uint64_t until = 0;

	/* The common case, plenty of space, without the stripe lock. */
	if (wblock_free_published(&s->wt) > s->wt.reserve + 2)
		return;
	pthread_mutex_lock(&s->wt.lock);
	while (wblock_free_count_locked(&s->wt) <= s->wt.reserve + 1 && s->wt.defrag_count > 0) {
		struct timespec ts;
		uint64_t now = clock_mono_ns();

		if (until == 0) {
			until = now + MEM_SPACE_WAIT_MS * 1000000ULL;
			atomic_inc(&m->write_waits);
		} else if (now >= until) {
			break;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&s->space_cv, &s->wt.lock, &ts);
	}
	pthread_mutex_unlock(&s->wt.lock);
}

static int
mem_sync(struct storage *st, storage_loc loc)
{
	/* Nothing to make durable without a shadow (#shadow adds it). */
	return 0;
}

static int
mem_defrag_copy(struct storage *st, const uint8_t *flat, uint32_t size, storage_loc *loc)
{
	struct mem_engine *m = st->priv;
	uint32_t si = digest_spread(record_flat_digest(flat)) % m->n_stripes;
	struct mem_stripe *s = &m->stripes[si];
	int64_t off;

	pthread_mutex_lock(&s->wt.lock);
	off = stripe_reserve_locked(m, s, size, true, WBLOCK_FOR_DEFRAG);
	if (off >= 0)
		copy_to_cold(stripe_addr(m, s, (uint64_t)off), flat, size);
	pthread_mutex_unlock(&s->wt.lock);
	if (off < 0)
		return (int)off;
	*loc = storage_loc_make(si, (uint64_t)off, size);
	atomic_inc(&m->defrag_records);
	return 0;
}

/* Move the live records out of one wblock.  0, or the error that
 * stopped it (no space for the copies): the wblock then goes back on the
 * queue with what it still holds. */
static int
defrag_wblock(struct storage *st, uint32_t si, uint32_t id)
{
	struct mem_engine *m = st->priv;
	struct mem_stripe *s = &m->stripes[si];
	struct wblock *w;
	uint32_t end, off = 0;
	const uint8_t *base;
	int rc = 0;

	pthread_mutex_lock(&s->wt.lock);
	w = wblock_get(&s->wt, id);
	end = w->used_end;
	pthread_mutex_unlock(&s->wt.lock);
	base = stripe_addr(m, s, (uint64_t)id * m->wbs);
	/* The wblock is in DEFRAG state: nobody writes into it any more. */
	while (off + RECORD_FLAT_MIN_SIZE <= end && wblock_inuse(w) > 0) {
		uint32_t size;

		if (record_flat_check(base + off, end - off, &size) != 0) {
			off += RBLOCK_SIZE;
			continue;
		}
		rc = st->owner.relocate(st->owner.arg, st, base + off, size,
		    storage_loc_make(si, (uint64_t)id * m->wbs + off, size));
		if (rc < 0) {
			if (!m->defrag_stalled)
				log_warn("defrag", "{%s} stripe %u wblock %u offset %u: record not moved: %s; "
				    "defrag retries the wblock", st->ns_name, si, id, off, recfs_strerror(rc));
			break;
		}
		rc = 0;
		off += size;
	}
	m->defrag_stalled = rc < 0;
	pthread_mutex_lock(&s->wt.lock);
	if (rc < 0)
		wblock_defrag_retry_locked(&s->wt, id);
	else
		wblock_defrag_done_locked(&s->wt, id);
	pthread_cond_broadcast(&s->space_cv);
	pthread_mutex_unlock(&s->wt.lock);
	return rc;
}

static void *
defrag_main(void *arg)
{
	struct storage *st = arg;
	struct mem_engine *m = st->priv;

	for (;;) {
		bool worked = false, queued = false;

		pthread_mutex_lock(&m->defrag_lock);
		bool stop = m->stop;
		uint64_t kicks = m->kicks;
		pthread_mutex_unlock(&m->defrag_lock);
		if (stop)
			break;
		for (uint32_t si = 0; si < m->n_stripes; si++) {
			struct mem_stripe *s = &m->stripes[si];
			uint32_t id;
			int rc;

			pthread_mutex_lock(&s->wt.lock);
			/* Short of space, the table itself skips the settling time. */
			rc = wblock_defrag_pop_locked(&s->wt, atomic_load_relaxed(&st->cfg->defrag_queue_min),
			    false, &id);
			if (s->wt.defrag_count > 0)
				queued = true;
			pthread_mutex_unlock(&s->wt.lock);
			if (rc != 0)
				continue;
			worked = true;
			if (defrag_wblock(st, si, id) < 0) {
				/* No space for copies: let writers free some first. */
				struct timespec ts = { 0, 10 * 1000000L };
				nanosleep(&ts, NULL);
				continue;
			}
			uint32_t sleep_us = atomic_load_relaxed(&st->cfg->defrag_sleep_us);
			if (sleep_us > 0) {
				struct timespec ts = { sleep_us / 1000000, (long)(sleep_us % 1000000) * 1000 };
				nanosleep(&ts, NULL);
			}
		}
		if (!worked) {
			struct timespec ts;

			/*
			 * Nothing queued anywhere: sleep until a wblock is queued or the
			 * configuration changes (both kick; a kick since the scan
			 * began is not lost: kicks counts them).  Something queued but
			 * not yet to be taken (settling, defrag-queue-min): re-check
			 * in 50 ms.
			 */
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 50 * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_mutex_lock(&m->defrag_lock);
			if (!m->stop && m->kicks == kicks) {
				if (queued)
					pthread_cond_timedwait(&m->defrag_cv, &m->defrag_lock, &ts);
				else
					pthread_cond_wait(&m->defrag_cv, &m->defrag_lock);
			}
			pthread_mutex_unlock(&m->defrag_lock);
		}
	}
	return NULL;
}

static void mem_close(struct storage *st, bool clean);

static int
mem_open(struct storage *st)
{
	struct storage_config *cfg = st->cfg;
	struct mem_engine *m;
	uint32_t wbs = cfg->write_block_size, first = STORAGE_HEADER_SIZE / wbs;
	uint64_t n_total = cfg->data_size / wbs;
	int rc = 0;

	if (wbs == 0 || (wbs & (wbs - 1)) != 0 || n_total < 4) {
		log_error("storage", "{%s} data-size %llu too small for write-block-size %u",
		    st->ns_name, (unsigned long long)cfg->data_size, wbs);
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	st->priv = m;
	m->wbs = wbs;
	m->n_stripes = (uint32_t)(n_total / 32);
	if (m->n_stripes < 1)
		m->n_stripes = 1;
	if (m->n_stripes > MEM_STRIPES_MAX)
		m->n_stripes = MEM_STRIPES_MAX;
	uint32_t per_stripe = (uint32_t)(n_total / m->n_stripes);
	uint32_t reserve = per_stripe >= 16 ? 2 : 1;
	m->stripe_bytes = (size_t)per_stripe * wbs;
	pthread_mutex_init(&m->defrag_lock, NULL);
	pthread_cond_init(&m->defrag_cv, NULL);
	for (uint32_t i = 0; i < m->n_stripes; i++) {
		struct mem_stripe *s = &m->stripes[i];

		s->cur = s->dcur = MEM_NONE;
		pthread_cond_init(&s->space_cv, NULL);
		rc = wblock_table_init(&s->wt, first, first + per_stripe, wbs, reserve, cfg->defrag_lwm_pct);
		if (rc != 0)
			goto fail;
		s->base = mmap(NULL, m->stripe_bytes, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_POPULATE, -1, 0);
		if (s->base == MAP_FAILED) {
			s->base = NULL;
			rc = -errno;
			goto fail;
		}
	}
	rc = pthread_create(&m->defrag_thread, NULL, defrag_main, st);
	if (rc != 0) {
		rc = -rc;
		goto fail;
	}
	pthread_setname_np(m->defrag_thread, "defrag");
	m->defrag_started = true;
	log_info("storage", "{%s} memory engine: %llu bytes in %u stripes of %u wblocks of %u bytes",
	    st->ns_name, (unsigned long long)m->stripe_bytes * m->n_stripes, m->n_stripes,
	    per_stripe, wbs);
	return 0;
fail:
	log_error("storage", "{%s} memory engine: %s", st->ns_name, recfs_strerror(rc));
	mem_close(st, false);
	return rc;
}

static void
mem_close(struct storage *st, bool clean)
{
	struct mem_engine *m = st->priv;

	if (m == NULL)
		return;
	if (m->defrag_started) {
		pthread_mutex_lock(&m->defrag_lock);
		m->stop = true;
		pthread_cond_signal(&m->defrag_cv);
		pthread_mutex_unlock(&m->defrag_lock);
		pthread_join(m->defrag_thread, NULL);
	}
	for (uint32_t i = 0; i < m->n_stripes; i++) {
		struct mem_stripe *s = &m->stripes[i];

		if (s->base != NULL)
			munmap(s->base, m->stripe_bytes);
		if (s->wt.blocks != NULL)
			wblock_table_fini(&s->wt);
		pthread_cond_destroy(&s->space_cv);
	}
	pthread_mutex_destroy(&m->defrag_lock);
	pthread_cond_destroy(&m->defrag_cv);
	free(m);
	st->priv = NULL;
}

static void
mem_stats(struct storage *st, struct storage_stats *out)
{
	struct mem_engine *m = st->priv;

	*out = (struct storage_stats){ 0 };
	out->avail_pct = 100;
	for (uint32_t i = 0; i < m->n_stripes; i++) {
		struct mem_stripe *s = &m->stripes[i];

		pthread_mutex_lock(&s->wt.lock);
		wblock_stats_add_locked(&s->wt, out);
		out->defrag_writes += s->defrag_writes;
		out->writes += s->writes;
		pthread_mutex_unlock(&s->wt.lock);
	}
	out->total_bytes = (uint64_t)m->stripe_bytes * m->n_stripes;
	out->reads = atomic_load_relaxed(&m->reads);
	out->cache_reads = out->reads;
	out->checksum_errors = atomic_load_relaxed(&m->checksum_errors);
	out->defrag_records = atomic_load_relaxed(&m->defrag_records);
	out->write_waits = atomic_load_relaxed(&m->write_waits);
}

static void
mem_space(struct storage *st, struct storage_space *out)
{
	struct mem_engine *m = st->priv;

	*out = (struct storage_space){ .free_pct = 100 };
	for (uint32_t i = 0; i < m->n_stripes; i++)
		wblock_space_add(&m->stripes[i].wt, &out->used_bytes, &out->free_pct);
	out->total_bytes = (uint64_t)m->stripe_bytes * m->n_stripes;
}

static void
mem_config_changed(struct storage *st)
{
	struct mem_engine *m = st->priv;

	for (uint32_t i = 0; i < m->n_stripes; i++) {
		pthread_mutex_lock(&m->stripes[i].wt.lock);
		wblock_set_lwm_locked(&m->stripes[i].wt, atomic_load_relaxed(&st->cfg->defrag_lwm_pct));
		pthread_mutex_unlock(&m->stripes[i].wt.lock);
	}
	defrag_kick(m);
}

const struct storage_ops storage_memory_ops = {
	.name = "memory",
	.open = mem_open,
	.close = mem_close,
	.write = mem_write,
	.write_flat = mem_write_flat,
	.read = mem_read,
	.free = mem_free,
	.sync = mem_sync,
	.sync_all = mem_sync_all,
	.wait_space = mem_wait_space,
	.defrag_copy = mem_defrag_copy,
	.stats = mem_stats,
	.space = mem_space,
	.config_changed = mem_config_changed,
};
