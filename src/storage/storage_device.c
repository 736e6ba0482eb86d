/*
 * storage_device.c - the device engine: records in wblocks on files or raw
 * block devices, written through RAM write buffers by an I/O thread.
 *
 * Per device: a wblock table, a current write buffer and a defrag buffer
 * (each a wblock-sized, 4 KiB-aligned RAM image of one wblock), a queue of
 * full buffers waiting to be written, a post-write cache of recently
 * written buffers kept readable from RAM, an I/O thread and a defrag
 * thread.  A record write is a reservation plus an encode into the current
 * buffer under the device lock; the client is answered once the record is
 * in RAM (and, with commit-to-device or fsync, once it is durable).
 *
 * The I/O thread works in batches: it takes every queued full buffer, and
 * when a flush is due (flush-max-ms, a sync waiter, a defrag buffer holding
 * vacated wblocks, shutdown) a copy of the unwritten tail of the current
 * buffers; it writes them with io_uring (O_DIRECT when direct-io) in the
 * order they were filled, each write started only once the one before it
 * completed (device_write_in_order: a process killed during a batch leaves
 * a prefix of it, never a large file's head without the chunks written
 * before it), then fdatasync()s, then marks every write placed before the
 * batch durable.
 * Concurrent fsync/commit-to-device waiters therefore share one device
 * write and one sync (group commit).  Before writing a wblock above the
 * header's high-water mark it raises the mark in the header, so cold start
 * never needs to scan further than the mark.
 *
 * A wblock stays RESERVED until its buffer is written, so defrag can never
 * free (and a writer reuse) a wblock whose buffer is still on its way to the
 * device.  A defragmented wblock is freed only once every buffer holding
 * records moved out of it is durable (n_vac_dests).
 *
 * Reads copy from a RAM buffer still attached to the wblock (current,
 * queued or post-write cached) or do one aligned pread of the record's
 * rblocks; either way the record's checksum is verified, and a mismatch is
 * an error for that record only, logged with file and offset.
 *
 * Rejected: one I/O thread per buffer (more threads than cores on this
 * hardware, and ordering of partial and full writes of one wblock would
 * need extra care); mmap of the device (no control over write-back, so no
 * durability promise).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "../base/atomic.h"
#include "../base/clock.h"
#include "../base/error.h"
#include "../base/fault.h"
#include "../base/file_lock.h"
#include "../base/log.h"
#include "device_header.h"
#include "device_i.h"
#include "storage.h"
#include "wblock.h"

#define WRITE_WAIT_MAX_MS 10000     /* writers wait this long for the write cache */
#define SPACE_WAIT_MAX_MS 2000      /* ... and this long for queued buffers to free space */
#define SYNC_WAIT_MAX_MS 60000
#define DEFRAG_FLUSH_MS 1000        /* tail-flush a defrag buffer holding vacated wblocks */
#define HIGH_WATER_STEP 64          /* header high-water raised this many wblocks ahead */
#define IO_BATCH_MAX 64
#define PREFAULT_CHUNK (4u << 20)   /* the prefault thread's step (it stops between steps) */
#define DEFRAG_STALL_MS 10          /* defrag's pause when it found no space for copies */

/* ---- small helpers ------------------------------------------------------ */

static void
deadline_after_ms(struct timespec *ts, uint64_t ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

static inline uint64_t
round_up(uint64_t n, uint64_t a)
{
	return (n + a - 1) & ~(a - 1);
}

static inline struct dev_buf **
attached_slot(struct device *d, uint32_t id)
{
	return &d->attached[id - d->wt.first];
}

/* ---- buffers ------------------------------------------------------------ */

static struct dev_buf *
buf_get_locked(struct device *d)
{
	struct dev_buf *b = d->pool;

	if (b != NULL) {
		d->pool = b->next;
		d->pool_len--;
	} else {
		b = calloc(1, sizeof(*b));
		if (b == NULL)
			return NULL;
		if (posix_memalign((void **)&b->data, DEVICE_IO_ALIGN, d->wbs) != 0) {
			free(b);
			return NULL;
		}
		d->n_bufs++;
	}
	/* Not zeroed here: the bytes past the last record are zeroed when the
	 * buffer is sealed (queue_full_locked) or copied for a partial write
	 * (take_tail_locked), so the device never gets stale bytes from the
	 * buffer's previous wblock, and nobody zeroes 1 MiB under the lock. */
	b->pos = b->flushed = 0;
	atomic_store_relaxed(&b->n_writers, 0);
	b->n_vacated = 0;
	b->next = NULL;
	return b;
}

/* Buffers a device may need at once: the write queue, the post-write
 * cache, the current and defrag buffers, a few in flight. */
static uint32_t
buf_pool_cap(const struct device *d)
{
	uint64_t bytes = atomic_load_relaxed(&d->st->cfg->max_write_cache) +
	    atomic_load_relaxed(&d->st->cfg->post_write_cache);

	return (uint32_t)(bytes / d->wbs) + 8;
}

static struct dev_buf *
buf_reset(struct dev_buf *b)
{
	b->pos = b->flushed = 0;
	atomic_store_relaxed(&b->n_writers, 0);
	b->n_vacated = 0;
	b->next = NULL;
	return b;
}

static void
buf_put_locked(struct device *d, struct dev_buf *b)
{
	/* Keep buffers once allocated (up to what the caches may need): a
	 * fresh 1 MiB buffer costs an mmap, page faults and zeroing, on the
	 * write path and under the device lock. */
	if (b->in_pool_ram || d->n_bufs <= buf_pool_cap(d)) {
		b->next = d->pool;
		d->pool = b;
		d->pool_len++;
		return;
	}
	free(b->vacated);
	free(b->data);
	free(b);
	d->n_bufs--;
}

static void
buf_free(struct dev_buf *b)
{
	if (b == NULL)
		return;
	free(b->vacated);
	if (!b->in_pool_ram)
		free(b->data);
	free(b);
}

/*
 * The buffers the write queue and the post-write cache will need (no more
 * than the device has wblocks), in one mapping made at open and faulted in
 * by an idle-priority thread from the cold start on: first touch of fresh memory costs
 * a page fault and zeroing per page (on a virtual machine also the host's
 * allocation, ~1 s for 320 MiB on the development VM), which would
 * otherwise land on the first writes, under the device lock.  As the
 * memory engine maps its RAM with MAP_POPULATE.  More buffers (a larger
 * cache set at run time) still come from the heap.
 */
static int
pool_ram_init(struct device *d)
{
	uint32_t n = buf_pool_cap(d);
	uint32_t wblocks = d->wt.n_wblocks - d->wt.first;

	if (n > wblocks + 8)
		n = wblocks + 8;
	d->pool_ram_bytes = (size_t)n * d->wbs;
	void *ram = mmap(NULL, d->pool_ram_bytes, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (ram == MAP_FAILED) {
		d->pool_ram_bytes = 0;
		return -errno;
	}
	d->pool_ram = ram;
	for (uint32_t i = 0; i < n; i++) {
		struct dev_buf *b = calloc(1, sizeof(*b));

		if (b == NULL)
			return -ENOMEM;
		b->data = d->pool_ram + (size_t)i * d->wbs;
		b->in_pool_ram = true;
		b->next = d->pool;
		d->pool = b;
		d->pool_len++;
		d->n_bufs++;
	}
	return 0;
}

/*
 * Faults the pools in, a few MiB at a time, from the cold start on (at
 * idle priority until the scan is done): MADV_POPULATE_WRITE changes no
 * byte, so writers may use the buffers meanwhile and open does not wait
 * for it (close stops it).  Kernels without it (before 5.14): the first
 * writes fault the pool in.
 */
static void *
prefault_main(void *arg)
{
	struct dev_engine *e = arg;
	struct sched_param sp = { 0 };

	pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
#ifdef MADV_POPULATE_WRITE
	for (uint32_t i = 0; i < e->n; i++) {
		struct device *d = e->devs[i];

		for (size_t off = 0; d->pool_ram != NULL && off < d->pool_ram_bytes; off += PREFAULT_CHUNK) {
			size_t len = d->pool_ram_bytes - off < PREFAULT_CHUNK ? d->pool_ram_bytes - off : PREFAULT_CHUNK;

			if (atomic_load_relaxed(&e->prefault_stop) ||
			    madvise(d->pool_ram + off, len, MADV_POPULATE_WRITE) != 0)
				return NULL;
		}
	}
#endif
	return NULL;
}

static void
queue_full_locked(struct device *d, struct dev_buf *b)
{
	/* Sealed: whatever the buffer held before past the last record. */
	memset(b->data + b->pos, 0, d->wbs - b->pos);
	b->next = NULL;
	b->queued_ns = clock_mono_ns();
	if (d->wq_tail != NULL)
		d->wq_tail->next = b;
	else
		d->wq_head = b;
	d->wq_tail = b;
	d->wq_len++;
	if (b->defrag)
		d->defrag_writes++;
	pthread_cond_signal(&d->io_cv);
}

/* Space is on its way back: buffers waiting for the device or being
 * written by the I/O thread (their records may have been overwritten
 * meanwhile; defrag sources wait for them), a defrag buffer holding
 * vacated wblocks, or (for client writes) wblocks queued for defrag or
 * taken by it and not yet given back (a batch may take the whole queue
 * while its reads are in flight).  Device lock held. */
static bool
space_pending_locked(const struct device *d, enum wblock_user user)
{
	if (d->wq_len > 0 || d->io_inflight > 0 || (d->dcur != NULL && d->dcur->n_vacated > 0))
		return true;
	return user != WBLOCK_FOR_DEFRAG && (d->wt.defrag_count > 0 || d->wt.defrag_active > 0);
}

/* Space for size bytes in the current (or defrag) buffer; returns the
 * device offset, -ENOSPC or -ENOMEM.  Device lock held; may wait for space
 * on its way (bounded) — that needs no record lock, so it cannot deadlock
 * with defrag. */
static int64_t
reserve_locked(struct device *d, uint32_t size, bool defrag, enum wblock_user user)
{
	struct dev_buf **cur = defrag ? &d->dcur : &d->cur;
	uint64_t until = 0;
	uint32_t id;
	int rc;

	while (*cur == NULL || (*cur)->pos + size > d->wbs) {
		if (*cur != NULL) {
			/* Full: on its way to the device now, whatever comes next. */
			queue_full_locked(d, *cur);
			*cur = NULL;
		}
		rc = wblock_alloc_locked(&d->wt, user, &id);
		if (rc == 0) {
			/* Resident (shadow) mode: the wblock's own RAM image. */
			struct dev_buf *nb = d->resident ? buf_reset(&d->resident_bufs[id - d->wt.first])
			    : buf_get_locked(d);

			if (nb == NULL) {
				/* Give the wblock back untouched. */
				wblock_release_locked(&d->wt, id);
				return -ENOMEM;
			}
			nb->wblock_id = id;
			nb->defrag = defrag;
			atomic_store_release(attached_slot(d, id), nb);
			*cur = nb;
			break;
		}
		if (rc != -ENOSPC || !space_pending_locked(d, user) || d->stop)
			return rc;
		uint64_t now = clock_mono_ns();
		if (until == 0) {
			until = now + SPACE_WAIT_MAX_MS * 1000000ULL;
			d->write_waits++;
		} else if (now >= until) {
			return -ENOSPC;
		}
		/* Have the I/O thread write what frees space now, not at the next
		 * flush-max-ms, and defrag skip its pause. */
		d->flush_requested = true;
		if (user != WBLOCK_FOR_DEFRAG)
			atomic_store_relaxed(&d->space_wanted, true);
		pthread_cond_signal(&d->io_cv);
		struct timespec deadline;
		deadline_after_ms(&deadline, 20);
		pthread_cond_timedwait(&d->space_cv, &d->wt.lock, &deadline);
		/* Another writer may have opened a buffer meanwhile: the loop
		 * condition takes it if the record fits. */
	}
	struct dev_buf *b = *cur;
	int64_t off = (int64_t)b->wblock_id * d->wbs + b->pos;
	b->pos += size;
	wblock_add_locked(&d->wt, b->wblock_id, size);
	wblock_get(&d->wt, b->wblock_id)->used_end = b->pos;
	return off;
}

/* The write queue is too deep: more buffers than max-write-cache allows,
 * or its oldest buffer waited longer than flush-max-ms (a crash may cost
 * at most that much acknowledged data: docs/operations.md, Durability). */
static bool
write_queue_behind_locked(struct device *d, uint32_t limit)
{
	uint32_t flush_ms = atomic_load_relaxed(&d->st->cfg->flush_max_ms);

	if (d->wq_len > limit)
		return true;
	return flush_ms > 0 && d->wq_head != NULL &&
	    clock_mono_ns() - d->wq_head->queued_ns > (uint64_t)flush_ms * 1000000ULL;
}

/* Writers wait while the write queue is behind; past a bounded wait the
 * write fails with EIO.  Device lock held. */
static int
wait_write_cache_locked(struct device *d)
{
	uint64_t cache = atomic_load_relaxed(&d->st->cfg->max_write_cache);
	uint32_t limit = (uint32_t)(cache / d->wbs);
	uint32_t quarter = (d->wt.n_wblocks - d->wt.first) / 4;
	struct timespec deadline;

	/* Never let queued buffers pin more than a quarter of a small device. */
	if (limit > quarter)
		limit = quarter;
	if (limit < 1)
		limit = 1;
	if (!write_queue_behind_locked(d, limit))
		return 0;
	d->write_waits++;
	deadline_after_ms(&deadline, WRITE_WAIT_MAX_MS);
	while (write_queue_behind_locked(d, limit) && !d->stop) {
		if (pthread_cond_timedwait(&d->space_cv, &d->wt.lock, &deadline) == ETIMEDOUT) {
			d->write_cache_timeouts++;
			log_warn("device", "{%s} %s: write queue too deep (%u buffers, max-write-cache allows %u)",
			    d->st->ns_name, d->path, d->wq_len, limit);
			return -EIO;
		}
	}
	return 0;
}

/* ---- the engine ops ----------------------------------------------------- */

static inline struct device *
device_for(struct dev_engine *e, const struct digest *dg)
{
	return e->devs[digest_spread(dg) % e->n];
}

/* Store a record of size bytes: r encoded, or flat copied as it is. */
static void defrag_kick(struct device *d);

static int
dev_store(struct storage *st, const struct digest *dg, bool tombstone, const struct record *r,
    const uint8_t *flat, uint32_t size, storage_loc *loc)
{
	struct dev_engine *e = st->priv;
	struct device *d = device_for(e, dg);
	int64_t off;
	int rc;

	if (size > storage_max_record_size(st->cfg))
		return -EFBIG;
	rc = FAULT_POINT("device.write");
	if (rc != 0)
		return rc;
	pthread_mutex_lock(&d->wt.lock);
	if (d->failed) {
		pthread_mutex_unlock(&d->wt.lock);
		return -EIO;
	}
	rc = wait_write_cache_locked(d);
	if (rc != 0) {
		pthread_mutex_unlock(&d->wt.lock);
		return rc;
	}
	off = reserve_locked(d, size, false, tombstone ? WBLOCK_FOR_DELETE : WBLOCK_FOR_WRITE);
	if (off < 0) {
		pthread_mutex_unlock(&d->wt.lock);
		return (int)off;
	}
	struct dev_buf *b = d->cur;
	uint8_t *dst = b->data + ((uint64_t)off - (uint64_t)b->wblock_id * d->wbs);
	/* Encode (or copy) outside the lock: the space is ours, and whoever writes the
	 * buffer out (or copies its tail) waits for n_writers to drop to 0. */
	atomic_add_acquire(&b->n_writers, 1);
	d->write_seq++;
	pthread_mutex_unlock(&d->wt.lock);
	long n = size;
	uint32_t pid = digest_partition(dg);

	/* The copy's regain mark (device_copy_mark): encoded, or patched in
	 * our copy of bytes that arrive with another (a foreign node's mark
	 * travels with migrated bytes; the caller's buffer is not ours). */
	if (r != NULL) {
		n = record_flat_encode_mark(r, device_copy_mark(e, pid, r->last_update_ms), dst, size);
	} else {
		uint16_t mark = device_copy_mark(e, pid, record_flat_last_update(flat));

		memcpy(dst, flat, size);
		if (__builtin_expect(record_flat_mark(dst) != mark, 0))
			record_flat_set_mark(dst, mark);
	}
	if (n < 0)
		memset(dst, 0, size);  /* never a half record on the device */
	atomic_sub_release(&b->n_writers, 1);
	if (n < 0) {
		if (wblock_free_bytes(&d->wt, (uint32_t)((uint64_t)off / d->wbs), size))
			defrag_kick(d);
		return (int)n;
	}
	*loc = storage_loc_make(d->index, (uint64_t)off, size);
	return 0;
}

static int
dev_write(struct storage *st, const struct record *r, uint32_t size, storage_loc *loc)
{
	return dev_store(st, &r->digest, (r->flags & RECORD_F_TOMBSTONE) != 0, r, NULL, size, loc);
}

static int
dev_write_flat(struct storage *st, const uint8_t *flat, uint32_t size, storage_loc *loc)
{
	return dev_store(st, record_flat_digest(flat), (flat[9] & RECORD_F_TOMBSTONE) != 0, NULL,
	    flat, size, loc);
}

/* An aligned bounce buffer per thread for direct reads. */
static pthread_key_t read_buf_key;
static pthread_once_t read_buf_once = PTHREAD_ONCE_INIT;

struct read_buf {
	uint8_t *data;
	size_t cap;
};

static void
read_buf_free(void *p)
{
	struct read_buf *rb = p;

	free(rb->data);
	free(rb);
}

static void
read_buf_key_init(void)
{
	pthread_key_create(&read_buf_key, read_buf_free);
}

static uint8_t *
read_buf_get(size_t len)
{
	struct read_buf *rb;

	pthread_once(&read_buf_once, read_buf_key_init);
	rb = pthread_getspecific(read_buf_key);
	if (rb == NULL) {
		rb = calloc(1, sizeof(*rb));
		if (rb == NULL)
			return NULL;
		pthread_setspecific(read_buf_key, rb);
	}
	if (rb->cap < len) {
		free(rb->data);
		rb->data = NULL;
		rb->cap = 0;
		if (posix_memalign((void **)&rb->data, DEVICE_IO_ALIGN, len) != 0)
			return NULL;
		rb->cap = len;
	}
	return rb->data;
}

int
device_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;  /* past the end: not a valid location */
		done += (size_t)n;
	}
	return 0;
}

/*
 * Record bytes [off, off + size) of d into buf.  When off and buf are
 * aligned (a chunk record that starts its write block, read into an
 * aligned buffer: entry_load), its whole 4 KiB blocks go straight into buf
 * and only the last partial block through the bounce buffer, in one preadv:
 * a 1 MiB chunk is copied once less.  Anything else, or a short read, goes
 * whole through the bounce buffer and a copy.
 */
static int
dev_pread_record(struct device *d, uint64_t off, uint32_t size, uint8_t *buf)
{
	uint64_t a_off = off & ~(uint64_t)(DEVICE_IO_ALIGN - 1);
	size_t len = (size_t)(round_up(off + size, DEVICE_IO_ALIGN) - a_off);
	size_t head = size & ~(size_t)(DEVICE_IO_ALIGN - 1);
	uint8_t *tmp;
	int rc;

	if (a_off == off && head > 0 && (uintptr_t)buf % DEVICE_IO_ALIGN == 0 &&
	    DEVICE_IO_ALIGN % STORAGE_READ_ALIGN == 0) {
		size_t tail = len - head;  /* 0 or one block */
		struct iovec iov[2] = { { buf, head }, { NULL, tail } };
		ssize_t n;

		if (tail > 0 && (iov[1].iov_base = read_buf_get(tail)) == NULL)
			return -ENOMEM;
		do
			n = preadv(d->fd, iov, tail > 0 ? 2 : 1, (off_t)off);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			return -errno;
		if ((size_t)n == len) {
			if (tail > 0)
				memcpy(buf + head, iov[1].iov_base, size - head);
			return 0;
		}
	}
	tmp = read_buf_get(len);
	if (tmp == NULL)
		return -ENOMEM;
	rc = device_pread_full(d->fd, tmp, len, a_off);
	if (rc == 0)
		memcpy(buf, tmp + (off - a_off), size);
	return rc;
}

static int
dev_read(struct storage *st, storage_loc loc, uint8_t *buf)
{
	struct dev_engine *e = st->priv;
	uint32_t di = storage_loc_file(loc), size = storage_loc_size(loc), got;
	uint64_t off = storage_loc_offset(loc);
	struct device *d;
	struct dev_buf *b;
	int rc;

	if (di >= e->n)
		return RECFS_EFORMAT;
	d = e->devs[di];
	uint32_t id = (uint32_t)(off / d->wbs);
	if (id < d->wt.first || id >= d->wt.n_wblocks || off % d->wbs + size > d->wbs)
		return RECFS_EFORMAT;
	atomic_inc(&d->reads);
	if (d->resident) {
		/* Resident (shadow) mode: a wblock's RAM image is only replaced
		 * after the wblock was freed, and this record (its caller holds
		 * the record lock) keeps it from being freed: no lock needed. */
		b = atomic_load_acquire(attached_slot(d, id));
		if (b != NULL) {
			memcpy(buf, b->data + off % d->wbs, size);
			atomic_inc(&d->cache_reads);
			goto verify;
		}
	}
	pthread_mutex_lock(&d->wt.lock);
	b = *attached_slot(d, id);
	if (b != NULL) {
		memcpy(buf, b->data + off % d->wbs, size);
		pthread_mutex_unlock(&d->wt.lock);
		atomic_inc(&d->cache_reads);
	} else {
		pthread_mutex_unlock(&d->wt.lock);
		rc = FAULT_POINT("device.read");
		if (rc == 0)
			rc = dev_pread_record(d, off, size, buf);
		if (rc == -ENOMEM)
			return rc;
		if (rc != 0) {
			atomic_inc(&d->read_errors);
			log_error("device", "{%s} %s offset %" PRIu64 ": read failed: %s", st->ns_name,
			    d->path, off, recfs_strerror(rc));
			return -EIO;
		}
	}
verify:
	rc = record_flat_check(buf, size, &got);
	if (rc == 0 && got != size)
		rc = RECFS_EFORMAT;
	if (rc == 0)
		rc = record_flat_verify(buf, size);
	if (rc != 0) {
		atomic_inc(&d->checksum_errors);
		log_error("device", "{%s} %s offset %" PRIu64 ": record of %u bytes: %s", st->ns_name,
		    d->path, off, size, recfs_strerror(rc));
	}
	return rc;
}

/*
 * read_many: the reads of a batch that are not served from a write
 * buffer in RAM go to the device together, through an io_uring of the
 * calling thread (DEV_RING_ENTRIES, made at its first batch and closed
 * at its exit), each into its own aligned piece of the thread's bounce
 * buffer, then copied and verified as dev_read does.  One that comes
 * back short or failed is read again alone by dev_read (its error, its
 * log line).  Without io_uring (ENOSYS, a limit) every read is dev_read.
 * A migration's emigration thread reads its records this way: one pread
 * at a time it waited for each (1.5 ms a 128 KiB record on a busy disk)
 * while the disk could serve several.
 */
#define DEV_RING_ENTRIES 64

struct dev_ring {
	struct io_uring ring;
	bool ok;                   /* made (else: tried and failed) */
	uint8_t *buf;              /* aligned bounce buffer of the batch */
	size_t cap;
};

static pthread_key_t dev_ring_key;
static pthread_once_t dev_ring_once = PTHREAD_ONCE_INIT;

static void
dev_ring_free(void *p)
{
	struct dev_ring *r = p;

	if (r->ok)
		io_uring_queue_exit(&r->ring);
	free(r->buf);
	free(r);
}

static void
dev_ring_key_init(void)
{
	pthread_key_create(&dev_ring_key, dev_ring_free);
}

/* The calling thread's ring with a bounce buffer of at least len bytes,
 * or NULL (no memory, no io_uring). */
static struct dev_ring *
dev_ring_get(size_t len)
{
	struct dev_ring *r;

	pthread_once(&dev_ring_once, dev_ring_key_init);
	r = pthread_getspecific(dev_ring_key);
	if (r == NULL) {
		r = calloc(1, sizeof(*r));
		if (r == NULL)
			return NULL;
		r->ok = io_uring_queue_init(DEV_RING_ENTRIES, &r->ring, 0) == 0;
		if (pthread_setspecific(dev_ring_key, r) != 0) {
			dev_ring_free(r);
			return NULL;
		}
	}
	if (!r->ok)
		return NULL;
	if (r->cap < len) {
		free(r->buf);
		r->buf = NULL;
		r->cap = 0;
		if (posix_memalign((void **)&r->buf, DEVICE_IO_ALIGN, len) != 0)
			return NULL;
		r->cap = len;
	}
	return r;
}

/* The next completion (a signal does not end the wait): 0 or -errno. */
static int
dev_ring_reap(struct dev_ring *r, struct io_uring_cqe **cqe)
{
	int rc;

	do
		rc = io_uring_wait_cqe(&r->ring, cqe);
	while (rc == -EINTR);
	return rc;
}

static void
dev_read_many(struct storage *st, unsigned n, const storage_loc *locs, uint8_t *const *bufs, int *rcs)
{
	struct dev_engine *e = st->priv;
	size_t total = 0, at = 0;
	struct dev_ring *r;
	unsigned done = 0;

	for (unsigned i = 0; i < n; i++) {
		uint64_t off = storage_loc_offset(locs[i]), a_off = off & ~(uint64_t)(DEVICE_IO_ALIGN - 1);

		total += (size_t)(round_up(off + storage_loc_size(locs[i]), DEVICE_IO_ALIGN) - a_off);
	}
	r = n > 1 ? dev_ring_get(total) : NULL;
	if (r == NULL) {
		for (unsigned i = 0; i < n; i++)
			rcs[i] = dev_read(st, locs[i], bufs[i]);
		return;
	}
	/* rcs[i]: 1 = in the ring, else dev_read's part to do (-EAGAIN) */
	while (done < n) {
		unsigned queued = 0, first = done;

		for (; done < n && queued < DEV_RING_ENTRIES; done++) {
			storage_loc loc = locs[done];
			uint32_t di = storage_loc_file(loc), size = storage_loc_size(loc);
			uint64_t off = storage_loc_offset(loc), a_off = off & ~(uint64_t)(DEVICE_IO_ALIGN - 1);
			size_t len = (size_t)(round_up(off + size, DEVICE_IO_ALIGN) - a_off);
			struct io_uring_sqe *sqe;
			struct device *d;
			uint32_t id;
			bool cached;

			rcs[done] = -EAGAIN;
			if (di >= e->n || e->devs[di]->resident)
				continue;   /* dev_read: an error, or a copy from RAM */
			d = e->devs[di];
			id = (uint32_t)(off / d->wbs);
			if (id < d->wt.first || id >= d->wt.n_wblocks || off % d->wbs + size > d->wbs)
				continue;
			pthread_mutex_lock(&d->wt.lock);
			cached = *attached_slot(d, id) != NULL;
			pthread_mutex_unlock(&d->wt.lock);
			if (cached || FAULT_POINT("device.read") != 0)
				continue;
			sqe = io_uring_get_sqe(&r->ring);
			if (sqe == NULL)
				break;
			io_uring_prep_read(sqe, d->fd, r->buf + at, (unsigned)len, a_off);
			io_uring_sqe_set_data(sqe, (void *)(uintptr_t)(((uint64_t)done << 32) | (uint32_t)at));
			rcs[done] = 1;
			at += len;
			queued++;
		}
		if (queued > 0 && io_uring_submit_and_wait(&r->ring, queued) < 0) {
			/* Not submitted: this thread's ring is given up (the reads
			 * of this round and later ones go one by one); its bounce
			 * buffer is kept until the thread ends, in case a read
			 * still lands in it. */
			io_uring_queue_exit(&r->ring);
			r->ok = false;
			queued = 0;
			for (unsigned i = first; i < done; i++)
				if (rcs[i] == 1)
					rcs[i] = -EAGAIN;
		}
		for (unsigned k = 0; k < queued; k++) {
			struct io_uring_cqe *cqe;
			unsigned i;
			size_t piece;
			uint64_t off, a_off;
			uint32_t size, got;
			int rc;

			if (dev_ring_reap(r, &cqe) != 0)
				break;
			i = (unsigned)((uintptr_t)io_uring_cqe_get_data(cqe) >> 32);
			piece = (uint32_t)(uintptr_t)io_uring_cqe_get_data(cqe);
			off = storage_loc_offset(locs[i]);
			a_off = off & ~(uint64_t)(DEVICE_IO_ALIGN - 1);
			size = storage_loc_size(locs[i]);
			rc = cqe->res;
			io_uring_cqe_seen(&r->ring, cqe);
			if (rc < 0 || (uint64_t)rc < off - a_off + size) {
				rcs[i] = -EAGAIN;   /* dev_read says what it is */
				continue;
			}
			atomic_inc(&e->devs[storage_loc_file(locs[i])]->reads);
			memcpy(bufs[i], r->buf + piece + (off - a_off), size);
			rc = record_flat_check(bufs[i], size, &got);
			if (rc == 0 && got != size)
				rc = RECFS_EFORMAT;
			if (rc == 0)
				rc = record_flat_verify(bufs[i], size);
			rcs[i] = rc == 0 ? 0 : -EAGAIN;   /* a bad one: dev_read counts and logs it */
		}
		/* anything not reaped yet (a wait that failed) must not land later */
		for (unsigned i = first; i < done; i++)
			if (rcs[i] == 1) {
				struct io_uring_cqe *cqe;

				if (dev_ring_reap(r, &cqe) == 0)
					io_uring_cqe_seen(&r->ring, cqe);
				rcs[i] = -EAGAIN;
			}
		at = 0;
		for (unsigned i = first; i < done; i++)
			if (rcs[i] == -EAGAIN)
				rcs[i] = dev_read(st, locs[i], bufs[i]);
	}
}

/* Cold start (owner->scanned): the copy at loc counts as live after all;
 * the wblock states are rebuilt from these counts afterwards. */
static void
dev_keep(struct storage *st, storage_loc loc)
{
	struct dev_engine *e = st->priv;
	struct device *d = e->devs[storage_loc_file(loc)];

	pthread_mutex_lock(&d->wt.lock);
	wblock_add_locked(&d->wt, (uint32_t)(storage_loc_offset(loc) / d->wbs), storage_loc_size(loc));
	pthread_mutex_unlock(&d->wt.lock);
}

static void
defrag_kick(struct device *d)
{
	pthread_mutex_lock(&d->defrag_lock);
	d->defrag_kicks++;
	pthread_cond_signal(&d->defrag_cv);
	pthread_mutex_unlock(&d->defrag_lock);
}

static void
dev_free(struct storage *st, storage_loc loc)
{
	struct dev_engine *e = st->priv;
	struct device *d = e->devs[storage_loc_file(loc)];

	if (wblock_free_bytes(&d->wt, (uint32_t)(storage_loc_offset(loc) / d->wbs), storage_loc_size(loc)))
		defrag_kick(d);
}

/* Wait until every write placed on d so far is durable. */
static int
device_sync(struct device *d)
{
	struct timespec deadline;
	int rc = 0;

	pthread_mutex_lock(&d->wt.lock);
	uint64_t target = d->write_seq;
	if (d->durable_seq < target) {
		if (d->sync_target < target)
			d->sync_target = target;
		pthread_cond_signal(&d->io_cv);
		deadline_after_ms(&deadline, SYNC_WAIT_MAX_MS);
		while (d->durable_seq < target && !d->io_exited) {
			if (pthread_cond_timedwait(&d->durable_cv, &d->wt.lock, &deadline) == ETIMEDOUT)
				break;
		}
		if (d->durable_seq < target)
			rc = -EIO;
	}
	if (rc == 0 && d->error_seq >= target && target > 0)
		rc = -EIO;
	pthread_mutex_unlock(&d->wt.lock);
	return rc;
}

static int
dev_sync_all(struct storage *st)
{
	struct dev_engine *e = st->priv;
	int rc = 0;

	for (uint32_t i = 0; i < e->n; i++) {
		int r = device_sync(e->devs[i]);

		if (r != 0)
			rc = r;
	}
	return rc;
}

static void
dev_wait_space(struct storage *st, const struct digest *dg)
{
	struct dev_engine *e = st->priv;
	struct device *d = device_for(e, dg);
	uint64_t until = 0;

	/* The common case, plenty of space, without the device lock. */
	if (wblock_free_published(&d->wt) > d->wt.reserve + 2)
		return;
	pthread_mutex_lock(&d->wt.lock);
	/* One wblock above the reserve is what a write may need. */
	while (wblock_free_count_locked(&d->wt) <= d->wt.reserve + 1 &&
	    space_pending_locked(d, WBLOCK_FOR_WRITE) && !d->stop) {
		struct timespec ts;
		uint64_t now = clock_mono_ns();

		if (until == 0) {
			until = now + SPACE_WAIT_MAX_MS * 1000000ULL;
			d->write_waits++;
		} else if (now >= until) {
			break;
		}
		d->flush_requested = true;
		atomic_store_relaxed(&d->space_wanted, true);
		pthread_cond_signal(&d->io_cv);
		deadline_after_ms(&ts, 20);
		pthread_cond_timedwait(&d->space_cv, &d->wt.lock, &ts);
	}
	pthread_mutex_unlock(&d->wt.lock);
}

static int
dev_sync(struct storage *st, storage_loc loc)
{
	struct dev_engine *e = st->priv;
	uint32_t di = storage_loc_file(loc);

	if (di >= e->n)
		return RECFS_EFORMAT;
	return device_sync(e->devs[di]);
}

static int
dev_defrag_copy(struct storage *st, const uint8_t *flat, uint32_t size, storage_loc *loc)
{
	struct dev_engine *e = st->priv;
	struct device *d = device_for(e, record_flat_digest(flat));
	int64_t off;

	pthread_mutex_lock(&d->wt.lock);
	off = d->failed ? -EIO : reserve_locked(d, size, true, WBLOCK_FOR_DEFRAG);
	if (off >= 0) {
		struct dev_buf *b = d->dcur;

		memcpy(b->data + ((uint64_t)off - (uint64_t)b->wblock_id * d->wbs), flat, size);
		d->write_seq++;
		/* Remember the source once per destination buffer: it may be freed
		 * only when this buffer is durable. */
		uint32_t src = d->defrag_source;
		if (src != WBLOCK_NONE && (b->n_vacated == 0 || b->vacated[b->n_vacated - 1] != src)) {
			if (b->n_vacated == b->cap_vacated) {
				uint32_t cap = b->cap_vacated ? b->cap_vacated * 2 : 16;
				uint32_t *v = realloc(b->vacated, cap * sizeof(*v));

				if (v == NULL) {
					pthread_mutex_unlock(&d->wt.lock);
					if (wblock_free_bytes(&d->wt, (uint32_t)((uint64_t)off / d->wbs), size))
						defrag_kick(d);
					return -ENOMEM;
				}
				b->vacated = v;
				b->cap_vacated = cap;
			}
			b->vacated[b->n_vacated++] = src;
			wblock_get(&d->wt, src)->n_vac_dests++;
		}
	}
	pthread_mutex_unlock(&d->wt.lock);
	if (off < 0)
		return (int)off;
	*loc = storage_loc_make(d->index, (uint64_t)off, size);
	atomic_inc(&d->defrag_records);
	return 0;
}

/* ---- the I/O thread ----------------------------------------------------- */

struct io_item {
	struct dev_buf *buf;       /* buffer written whole, or whose tail was copied */
	uint8_t *src;
	uint64_t off;
	uint32_t len;
	uint32_t tail_pos;         /* tails: the fill the copy covers */
	uint32_t tail_vacated;     /* tails: vacated entries the copy covers */
	bool tail;
};

static void
release_vacated_locked(struct device *d, struct dev_buf *b, uint32_t n)
{
	if (n == 0)
		return;
	for (uint32_t i = 0; i < n; i++)
		wblock_vacated_release_locked(&d->wt, b->vacated[i]);
	memmove(b->vacated, b->vacated + n, (b->n_vacated - n) * sizeof(uint32_t));
	b->n_vacated -= n;
}

/* A full buffer's write ended: release its wblock, its vacated sources
 * (only if it reached the device: a failed write's records exist only in
 * RAM and in those sources, which then stay held), and keep it readable
 * from RAM while the post-write cache allows. */
static void
full_written_locked(struct device *d, struct dev_buf *b, bool written)
{
	if (written)
		release_vacated_locked(d, b, b->n_vacated);
	if (wblock_release_locked(&d->wt, b->wblock_id))
		defrag_kick(d);
	if (d->resident) {
		/* The RAM image is the data; the shadow only keeps it across restarts. */
		b->next = NULL;
		return;
	}
	if (!b->defrag && atomic_load_relaxed(&d->st->cfg->post_write_cache) >= d->wbs) {
		b->next = NULL;
		if (d->pw_tail != NULL)
			d->pw_tail->next = b;
		else
			d->pw_head = b;
		d->pw_tail = b;
		d->pw_len++;
	} else {
		if (*attached_slot(d, b->wblock_id) == b)
			*attached_slot(d, b->wblock_id) = NULL;
		buf_put_locked(d, b);
	}
	uint64_t limit = atomic_load_relaxed(&d->st->cfg->post_write_cache) / d->wbs;
	while (d->pw_len > limit) {
		struct dev_buf *old = d->pw_head;

		d->pw_head = old->next;
		if (d->pw_head == NULL)
			d->pw_tail = NULL;
		d->pw_len--;
		if (*attached_slot(d, old->wblock_id) == old)
			*attached_slot(d, old->wblock_id) = NULL;
		buf_put_locked(d, old);
	}
}

/*
 * Zero wblocks [from, to) of a raw device (BLKZEROOUT: the device's write-
 * zeroes or unmap where it has them; else zero pages written here).  Made
 * durable by the header write's sync that follows.
 */
static int
device_zero_range(struct device *d, uint32_t from, uint32_t to)
{
	uint64_t range[2] = { (uint64_t)from * d->wbs, (uint64_t)(to - from) * d->wbs };
	uint8_t *zero;
	int rc = 0;

	if (to <= from)
		return 0;
	if (ioctl(d->fd, BLKZEROOUT, range) == 0)
		return 0;
	if (posix_memalign((void **)&zero, DEVICE_IO_ALIGN, d->wbs) != 0)
		return -ENOMEM;
	memset(zero, 0, d->wbs);
	for (uint32_t id = from; id < to && rc == 0; id++)
		rc = pwrite(d->fd, zero, d->wbs, (off_t)id * d->wbs) == (ssize_t)d->wbs ? 0 :
		    errno ? -errno : -EIO;
	free(zero);
	if (rc != 0)
		log_error("device", "{%s} %s: zeroing erased wblocks %u..%u failed: %s", d->st->ns_name,
		    d->path, from, to - 1, recfs_strerror(rc));
	return rc;
}

/* Write the header page (high water, flags) and sync it. */
int
device_header_write(struct device *d)
{
	uint8_t *page;
	int rc = 0;

	if (posix_memalign((void **)&page, DEVICE_IO_ALIGN, DEVICE_HEADER_PAGE) != 0)
		return -ENOMEM;
	device_header_encode(&d->hdr, page);
	if (pwrite(d->fd, page, DEVICE_HEADER_PAGE, 0) != DEVICE_HEADER_PAGE)
		rc = errno ? -errno : -EIO;
	else if (fdatasync(d->fd) != 0)
		rc = -errno;
	free(page);
	if (rc != 0)
		log_error("device", "{%s} %s: header write failed: %s", d->st->ns_name, d->path,
		    recfs_strerror(rc));
	return rc;
}

int
device_write_in_order(struct io_uring *ring, int fd, struct device_write *w, unsigned n)
{
	unsigned done = 0;
	int rc = 0;

	for (unsigned i = 0; i < n; i++)
		w[i].res = -ECANCELED;
	while (done < n && rc == 0) {
		unsigned space = io_uring_sq_space_left(ring), group = n - done, reaped = 0;

		if (group > space)
			group = space;
		if (group == 0)
			return -EBUSY;    /* every earlier write was reaped: cannot happen */
		for (unsigned i = 0; i < group; i++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
			struct device_write *x = &w[done + i];

			io_uring_prep_write(sqe, fd, x->src, x->len, x->off);
			io_uring_sqe_set_data(sqe, x);
			if (i + 1 < group)
				sqe->flags |= IOSQE_IO_LINK;
		}
		while (reaped < group) {
			struct io_uring_cqe *cqe;
			int s = io_uring_submit_and_wait(ring, 1);

			if (s < 0 && s != -EINTR && s != -EAGAIN && s != -EBUSY)
				return s;
			while (reaped < group && io_uring_peek_cqe(ring, &cqe) == 0) {
				struct device_write *x = io_uring_cqe_get_data(cqe);

				x->res = cqe->res;
				if (rc == 0 && (cqe->res < 0 || (uint32_t)cqe->res != x->len))
					rc = cqe->res < 0 ? cqe->res : -EIO;
				io_uring_cqe_seen(ring, cqe);
				reaped++;
			}
		}
		done += group;
	}
	return rc;
}

static int
io_submit_and_wait(struct device *d, struct io_item *items, unsigned n)
{
	struct device_write w[IO_BATCH_MAX + 2];
	int rc;

	for (unsigned i = 0; i < n; i++)
		w[i] = (struct device_write){ .src = items[i].src, .off = items[i].off,
		    .len = items[i].len };
	rc = device_write_in_order(&d->ring, d->fd, w, n);
	for (unsigned i = 0; i < n && rc != 0; i++)
		if (w[i].res != -ECANCELED && (w[i].res < 0 || (uint32_t)w[i].res != w[i].len))
			log_error("device", "{%s} %s offset %" PRIu64 ": write of %u bytes failed: %s",
			    d->st->ns_name, d->path, w[i].off, w[i].len,
			    recfs_strerror(w[i].res < 0 ? w[i].res : -EIO));
	return rc;
}

static bool
tail_due_locked(struct device *d, uint64_t now_ns)
{
	uint32_t flush_ms = atomic_load_relaxed(&d->st->cfg->flush_max_ms);
	uint64_t since = (now_ns - d->last_flush_ns) / 1000000;
	bool cur_dirty = d->cur != NULL && d->cur->pos > d->cur->flushed;
	bool dcur_dirty = d->dcur != NULL && d->dcur->pos > d->dcur->flushed;

	if (d->sync_target > d->durable_seq || d->stop || d->flush_requested)
		return cur_dirty || dcur_dirty;
	if (flush_ms > 0 && since >= flush_ms && (cur_dirty || dcur_dirty))
		return true;
	return dcur_dirty && d->dcur->n_vacated > 0 && since >= DEFRAG_FLUSH_MS;
}

/* Wait for writers still encoding into b (they hold no lock; a record
 * encodes in microseconds). */
static void
buf_wait_writers(struct dev_buf *b)
{
	while (atomic_load_acquire(&b->n_writers) != 0)
		sched_yield();
}

static unsigned
take_tail_locked(struct device *d, struct dev_buf *b, uint8_t *stage, struct io_item *it)
{
	if (b == NULL || b->pos <= b->flushed)
		return 0;
	uint32_t start = b->flushed & ~(uint32_t)(DEVICE_IO_ALIGN - 1);
	uint32_t end = (uint32_t)round_up(b->pos, DEVICE_IO_ALIGN);

	/* Copy under the lock (no new reservations) once the records already
	 * reserved are whole; the copy's last page is zero past the fill. */
	buf_wait_writers(b);
	memcpy(stage, b->data + start, b->pos - start);
	memset(stage + (b->pos - start), 0, end - b->pos);
	it->buf = b;
	it->src = stage;
	it->off = (uint64_t)b->wblock_id * d->wbs + start;
	it->len = end - start;
	it->tail_pos = b->pos;
	it->tail_vacated = b->n_vacated;
	it->tail = true;
	return 1;
}

static void *
io_main(void *arg)
{
	struct device *d = arg;
	struct io_item items[IO_BATCH_MAX + 2];

	pthread_mutex_lock(&d->wt.lock);
	for (;;) {
		uint64_t now = clock_mono_ns();
		bool tails = tail_due_locked(d, now);

		if (d->wq_len == 0 && !tails) {
			if (d->stop)
				break;
			struct timespec ts;
			deadline_after_ms(&ts, 50);
			pthread_cond_timedwait(&d->io_cv, &d->wt.lock, &ts);
			continue;
		}
		/* Take a batch. */
		unsigned n = 0;
		uint32_t max_id = 0;
		while (d->wq_head != NULL && n < IO_BATCH_MAX) {
			struct dev_buf *b = d->wq_head;

			d->wq_head = b->next;
			if (d->wq_head == NULL)
				d->wq_tail = NULL;
			d->wq_len--;
			items[n] = (struct io_item){ .buf = b, .src = b->data,
			    .off = (uint64_t)b->wblock_id * d->wbs, .len = d->wbs };
			if (b->wblock_id > max_id)
				max_id = b->wblock_id;
			n++;
		}
		bool tails_taken = false;
		if (tails || d->wq_len == 0) {
			unsigned t0 = n;

			if (tail_due_locked(d, now)) {
				n += take_tail_locked(d, d->cur, d->stage_cur, &items[n]);
				n += take_tail_locked(d, d->dcur, d->stage_dcur, &items[n]);
				tails_taken = true;
			}
			for (unsigned i = t0; i < n; i++)
				if (items[i].buf->wblock_id > max_id)
					max_id = items[i].buf->wblock_id;
			if (n > t0)
				d->last_flush_ns = now;
			d->flush_requested = false;
		}
		/* What this batch makes durable: every write placed so far only if
		 * it holds all of them - the whole queue and both current buffers'
		 * tails (clean tails count).  A batch of full buffers alone, or one
		 * that left part of the queue, moves nothing: a sync waiter's record
		 * may be in what is left. */
		bool clean_tails = (d->cur == NULL || d->cur->pos == d->cur->flushed) &&
		    (d->dcur == NULL || d->dcur->pos == d->dcur->flushed);
		bool complete = d->wq_len == 0 && (tails_taken || clean_tails);
		d->io_inflight = n;
		uint64_t target = complete ? d->write_seq : d->durable_seq;
		uint32_t hw = d->high_water;
		pthread_mutex_unlock(&d->wt.lock);

		int rc = 0;
		if (n > 0 && max_id >= hw) {
			/* Raise the high-water mark before any data lands above it. */
			uint32_t new_hw = max_id + 1 + HIGH_WATER_STEP;

			if (new_hw > d->wt.n_wblocks)
				new_hw = d->wt.n_wblocks;
			if (d->hdr.flags & DEVICE_F_STALE) {
				/* An erased device: the old records the mark is about
				 * to cover must not meet the next cold start. */
				rc = device_zero_range(d, hw, new_hw);
				if (rc == 0 && new_hw == d->wt.n_wblocks)
					d->hdr.flags &= ~DEVICE_F_STALE;
			}
			if (rc == 0) {
				d->hdr.high_water = new_hw;
				rc = device_header_write(d);
			}
			if (rc == 0) {
				pthread_mutex_lock(&d->wt.lock);
				d->high_water = new_hw;
				pthread_mutex_unlock(&d->wt.lock);
			}
		}
		/* Full buffers may still have writers encoding their last records. */
		for (unsigned i = 0; i < n; i++)
			if (!items[i].tail)
				buf_wait_writers(items[i].buf);
		if (rc == 0 && n > 0)
			rc = FAULT_POINT("device.flush");
		if (rc == 0 && n > 0)
			rc = io_submit_and_wait(d, items, n);
		if (rc == 0 && n > 0 && fdatasync(d->fd) != 0)
			rc = -errno;

		pthread_mutex_lock(&d->wt.lock);
		if (rc != 0) {
			/* Every write placed so far is at risk: its syncers get EIO. */
			d->write_errors++;
			d->error_seq = target = d->write_seq;
			log_error("device", "{%s} %s: device write failed (%s): acknowledged writes since the "
			    "last flush may be lost; the device refuses further writes", d->st->ns_name,
			    d->path, recfs_strerror(rc));
			d->failed = true;
		}
		for (unsigned i = 0; i < n; i++) {
			struct io_item *it = &items[i];

			if (it->tail) {
				if (it->buf->flushed < it->tail_pos)
					it->buf->flushed = it->tail_pos;
				if (rc == 0)
					release_vacated_locked(d, it->buf, it->tail_vacated);
				d->partial_writes++;
			} else {
				full_written_locked(d, it->buf, rc == 0);
				d->writes++;
			}
		}
		d->io_inflight = 0;
		if (d->durable_seq < target)
			d->durable_seq = target;
		pthread_cond_broadcast(&d->durable_cv);
		pthread_cond_broadcast(&d->space_cv);
	}
	d->io_exited = true;
	pthread_cond_broadcast(&d->durable_cv);
	pthread_mutex_unlock(&d->wt.lock);
	return NULL;
}

/* ---- defragmentation ---------------------------------------------------- */

/*
 * The defrag thread takes up to defrag_n_bufs queued wblocks at a time and
 * reads those not in RAM together through its own io_uring, so the device
 * sees a queue of reads rather than one 1 MiB read at a time; then it moves
 * each wblock's live records.  It pauses defrag-sleep after a batch, unless
 * writers are waiting for the space it makes.
 */

struct defrag_slot {
	uint32_t id;
	uint32_t end;              /* bytes of records to walk */
	const uint8_t *img;        /* the wblock's bytes */
	bool in_ram, done;
	int res;
};

/* Move the live records of wblock id (its bytes in img) to defrag
 * buffers.  0, or the error that stopped it (no space for the copies):
 * the wblock then goes back on the queue with what it still holds. */
static int
defrag_scan(struct storage *st, struct device *d, uint32_t id, const uint8_t *img, uint32_t end)
{
	struct wblock *w = wblock_get(&d->wt, id);
	uint32_t off = 0;
	int rc = 0;

	d->defrag_source = id;
	while (off + RECORD_FLAT_MIN_SIZE <= end && wblock_inuse(w) > 0) {
		uint32_t size;

		if (record_flat_check(img + off, end - off, &size) != 0) {
			off += RBLOCK_SIZE;
			continue;
		}
		rc = st->owner.relocate(st->owner.arg, st, img + off, size,
		    storage_loc_make(d->index, (uint64_t)id * d->wbs + off, size));
		if (rc < 0) {
			if (!d->defrag_stalled)
				log_warn("defrag", "{%s} %s offset %" PRIu64 ": record not moved: %s; "
				    "defrag retries its wblocks when space comes back", st->ns_name,
				    d->path, (uint64_t)id * d->wbs + off, recfs_strerror(rc));
			break;
		}
		rc = 0;
		off += size;
	}
	d->defrag_source = WBLOCK_NONE;
	pthread_mutex_lock(&d->wt.lock);
	if (rc < 0)
		wblock_defrag_retry_locked(&d->wt, id);
	else
		wblock_defrag_done_locked(&d->wt, id);
	pthread_cond_broadcast(&d->space_cv);
	pthread_mutex_unlock(&d->wt.lock);
	return rc;
}

/* Defragment up to defrag_n_bufs wblocks; returns how many were taken. */
static unsigned
defrag_batch(struct storage *st, struct device *d)
{
	struct defrag_slot slots[DEFRAG_BATCH];
	uint32_t queue_min = atomic_load_relaxed(&st->cfg->defrag_queue_min);
	unsigned n = 0, pending = 0;
	bool stalled = false;

	/* Writers waiting for space: no settling time for queued wblocks. */
	bool urgent = atomic_load_relaxed(&d->space_wanted);

	pthread_mutex_lock(&d->wt.lock);
	/* A device that failed a write takes no more: moving records would
	 * only free wblocks whose records may be nowhere else. */
	while (!d->failed && n < d->defrag_n_bufs && wblock_defrag_pop_locked(&d->wt, queue_min, urgent, &slots[n].id) == 0) {
		struct defrag_slot *sl = &slots[n];
		struct wblock *w = wblock_get(&d->wt, sl->id);
		struct dev_buf *b = *attached_slot(d, sl->id);

		sl->end = w->used_end ? w->used_end : d->wbs;
		sl->in_ram = b != NULL;
		sl->done = sl->in_ram || wblock_inuse(w) == 0;
		sl->res = 0;
		sl->img = d->defrag_bufs[n];
		/* Resident (shadow) mode: the wblock's own RAM image, which
		 * nothing writes while it waits for defrag, is walked in place
		 * (no copy of up to write-block-size bytes under the lock
		 * writers need).  A post-write-cache buffer may be recycled once
		 * the lock is dropped: copied. */
		if (d->resident) {
			/* Every wblock with records has its image attached; without
			 * one there is nothing to walk (and no read buffer). */
			sl->img = sl->in_ram ? b->data : NULL;
			sl->end = sl->in_ram ? sl->end : 0;
			sl->done = true;
		} else if (sl->in_ram)
			memcpy(d->defrag_bufs[n], b->data, sl->end);
		n++;
	}
	pthread_mutex_unlock(&d->wt.lock);
	/* The device part, all at once. */
	for (unsigned i = 0; i < n; i++) {
		struct io_uring_sqe *sqe;

		if (slots[i].done || (sqe = io_uring_get_sqe(&d->defrag_ring)) == NULL)
			continue;
		io_uring_prep_read(sqe, d->fd, d->defrag_bufs[i], d->wbs, (uint64_t)slots[i].id * d->wbs);
		io_uring_sqe_set_data(sqe, &slots[i]);
		pending++;
	}
	if (pending > 0)
		io_uring_submit(&d->defrag_ring);
	while (pending > 0) {
		struct io_uring_cqe *cqe;
		int w = io_uring_wait_cqe(&d->defrag_ring, &cqe);

		if (w == -EINTR)
			continue;
		if (w < 0)
			break;
		struct defrag_slot *sl = io_uring_cqe_get_data(cqe);
		sl->res = cqe->res;
		sl->done = true;
		io_uring_cqe_seen(&d->defrag_ring, cqe);
		pending--;
	}
	for (unsigned i = 0; i < n; i++) {
		struct defrag_slot *sl = &slots[i];

		if (!sl->in_ram && sl->res != (int)d->wbs && sl->res != 0) {
			atomic_inc(&d->read_errors);
			log_error("defrag", "{%s} %s wblock %u: read failed: %s", st->ns_name, d->path,
			    sl->id, recfs_strerror(sl->res < 0 ? sl->res : -EIO));
			/* Not scanned: its records stay where they are. */
			pthread_mutex_lock(&d->wt.lock);
			wblock_defrag_done_locked(&d->wt, sl->id);
			pthread_mutex_unlock(&d->wt.lock);
			continue;
		}
		if (stalled) {
			/* No space for copies: the rest waits on the queue too. */
			pthread_mutex_lock(&d->wt.lock);
			wblock_defrag_retry_locked(&d->wt, sl->id);
			pthread_mutex_unlock(&d->wt.lock);
			continue;
		}
		stalled = defrag_scan(st, d, sl->id, sl->img, sl->res == 0 && !sl->in_ram ? 0 : sl->end) < 0;
	}
	d->defrag_stalled = stalled;
	return n;
}

static void *
defrag_main(void *arg)
{
	struct device *d = arg;
	struct storage *st = d->st;

	for (;;) {
		pthread_mutex_lock(&d->defrag_lock);
		bool stop = d->defrag_stop;
		uint64_t kicks = d->defrag_kicks;
		pthread_mutex_unlock(&d->defrag_lock);
		if (stop)
			break;
		if (defrag_batch(st, d) > 0) {
			uint32_t us = atomic_load_relaxed(&st->cfg->defrag_sleep_us);

			if (d->defrag_stalled) {
				/* Its wblocks are queued again: space first (a copy
				 * already waited for what was on its way). */
				struct timespec ts = { 0, DEFRAG_STALL_MS * 1000000L };
				nanosleep(&ts, NULL);
				continue;
			}
			/* Writers short of space: no pause, they wait for us. */
			bool wanted = atomic_exchange_relaxed(&d->space_wanted, false);
			if (us > 0 && !wanted) {
				struct timespec ts = { us / 1000000, (long)(us % 1000000) * 1000 };
				nanosleep(&ts, NULL);
			}
			continue;
		}
		/*
		 * Nothing to take.  Nothing queued at all: sleep until a wblock is
		 * queued or the configuration changes (both kick; a kick since this
		 * round began is not lost: kicks counts them).  Something queued
		 * but not to be taken yet (settling, defrag-queue-min): re-check
		 * in 50 ms.
		 */
		struct timespec ts;
		pthread_mutex_lock(&d->wt.lock);
		bool queued = d->wt.defrag_count > 0;
		pthread_mutex_unlock(&d->wt.lock);
		deadline_after_ms(&ts, 50);
		pthread_mutex_lock(&d->defrag_lock);
		if (!d->defrag_stop && d->defrag_kicks == kicks) {
			if (queued)
				pthread_cond_timedwait(&d->defrag_cv, &d->defrag_lock, &ts);
			else
				pthread_cond_wait(&d->defrag_cv, &d->defrag_lock);
		}
		pthread_mutex_unlock(&d->defrag_lock);
	}
	return NULL;
}

/* ---- open and close ----------------------------------------------------- */

static void
device_destroy(struct device *d)
{
	if (d == NULL)
		return;
	if (d->fd >= 0)
		close(d->fd);
	if (d->resident) {
		/* Every buffer is a wblock's resident image, in resident_bufs (the
		 * current ones too; the write queue was drained at close). */
		for (uint32_t i = 0; d->resident_bufs != NULL && i < d->wt.n_wblocks - d->wt.first; i++)
			free(d->resident_bufs[i].vacated);
		free(d->resident_bufs);
		if (d->resident_ram != NULL)
			munmap(d->resident_ram, (size_t)(d->wt.n_wblocks - d->wt.first) * d->wbs);
		d->cur = d->dcur = NULL;
		d->wq_head = NULL;
	}
	if (d->ring_ready)
		io_uring_queue_exit(&d->ring);
	if (d->defrag_ring_ready)
		io_uring_queue_exit(&d->defrag_ring);
	buf_free(d->cur);
	buf_free(d->dcur);
	while (d->wq_head != NULL) {
		struct dev_buf *b = d->wq_head;
		d->wq_head = b->next;
		buf_free(b);
	}
	while (d->pw_head != NULL) {
		struct dev_buf *b = d->pw_head;
		d->pw_head = b->next;
		buf_free(b);
	}
	while (d->pool != NULL) {
		struct dev_buf *b = d->pool;
		d->pool = b->next;
		buf_free(b);
	}
	if (d->pool_ram != NULL)
		munmap(d->pool_ram, d->pool_ram_bytes);
	free(d->attached);
	free(d->stage_cur);
	free(d->stage_dcur);
	for (int i = 0; i < DEFRAG_BATCH; i++)
		free(d->defrag_bufs[i]);
	if (d->wt.blocks != NULL)
		wblock_table_fini(&d->wt);
	pthread_cond_destroy(&d->io_cv);
	pthread_cond_destroy(&d->durable_cv);
	pthread_cond_destroy(&d->space_cv);
	pthread_mutex_destroy(&d->defrag_lock);
	pthread_cond_destroy(&d->defrag_cv);
	/* Last: the lock goes once everything above is done. */
	if (d->lock_fd >= 0)
		close(d->lock_fd);
	free(d->path);
	free(d);
}

static void dev_close(struct storage *st, bool clean);

static int
dev_open(struct storage *st)
{
	struct storage_config *cfg = st->cfg;
	struct dev_engine *e;
	int rc;

	if (cfg->n_files == 0) {
		log_error("device", "{%s} no files or devices configured", st->ns_name);
		return -EINVAL;
	}
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return -ENOMEM;
	pthread_mutex_init(&e->pver_lock, NULL);
	pthread_mutex_init(&e->pmark_lock, NULL);
	st->priv = e;
	st->persistent = true;
	e->wbs = cfg->write_block_size;
	e->resident = st->ops == &storage_shadow_ops;
	rc = device_open_all(st, e);
	if (rc != 0)
		goto fail;
	if (!e->resident) {
		for (uint32_t i = 0; i < e->n && rc == 0; i++)
			rc = pool_ram_init(e->devs[i]);
		if (rc != 0)
			goto fail;
		/* Without the thread the first writes fault the pool in. */
		e->prefault_started = pthread_create(&e->prefault_thread, NULL, prefault_main, e) == 0;
		if (e->prefault_started)
			pthread_setname_np(e->prefault_thread, "prefault");
	}
	rc = device_cold_start(st, e);
	if (e->prefault_started) {
		/* The scan is done: the rest of the pools at normal priority,
		 * beside the first writes rather than under their lock. */
		struct sched_param sp = { 0 };

		pthread_setschedparam(e->prefault_thread, SCHED_OTHER, &sp);
	}
	if (rc != 0)
		goto fail;
	device_pversions_marks_seen(e);
	/* The table in the version 3 area before a header says 3. */
	rc = device_pversions_upgrade(st, e);
	if (rc != 0)
		goto fail;
	for (uint32_t i = 0; i < e->n; i++) {
		struct device *d = e->devs[i];

		d->hdr.flags &= ~DEVICE_F_CLEAN;
		d->hdr.opens++;
		/* Read old, write new: from now on it may hold version 2 records
		 * with regain marks, and its table is in the version 3 area. */
		d->hdr.version = DEVICE_HEADER_VERSION;
		rc = device_header_write(d);
		if (rc != 0)
			goto fail;
		rc = -io_uring_queue_init(16, &d->ring, 0);
		if (rc != 0) {
			log_error("device", "{%s} io_uring: %s", st->ns_name, recfs_strerror(rc));
			goto fail;
		}
		d->ring_ready = true;
		rc = -io_uring_queue_init(DEFRAG_BATCH * 2, &d->defrag_ring, 0);
		if (rc != 0) {
			log_error("device", "{%s} io_uring: %s", st->ns_name, recfs_strerror(rc));
			goto fail;
		}
		d->defrag_ring_ready = true;
		d->last_flush_ns = clock_mono_ns();
		rc = -pthread_create(&d->io_thread, NULL, io_main, d);
		if (rc != 0)
			goto fail;
		pthread_setname_np(d->io_thread, "wblock-io");
		d->io_started = true;
		rc = -pthread_create(&d->defrag_thread, NULL, defrag_main, d);
		if (rc != 0)
			goto fail;
		pthread_setname_np(d->defrag_thread, "defrag");
		d->defrag_started = true;
	}
	/* The owner finishes the cold start (tombstones, expired records): the
	 * write path is running now. */
	if (e->cold_started && st->owner.loaded != NULL)
		st->owner.loaded(st->owner.arg, st);
	return 0;
fail:
	dev_close(st, false);
	return rc;
}

static void
dev_close(struct storage *st, bool clean)
{
	struct dev_engine *e = st->priv;

	if (e == NULL)
		return;
	/* A daemon starting on this storage now waits for us (lock-wait). */
	for (uint32_t i = 0; i < e->n; i++)
		if (e->devs[i] != NULL && e->devs[i]->lock_fd >= 0)
			(void)file_lock_mark_closing(e->devs[i]->lock_fd);
	if (e->prefault_started) {
		/* Before the pools are unmapped. */
		atomic_store_relaxed(&e->prefault_stop, true);
		pthread_join(e->prefault_thread, NULL);
		e->prefault_started = false;
	}
	for (uint32_t i = 0; i < e->n; i++) {
		struct device *d = e->devs[i];

		if (d == NULL)
			continue;
		if (d->defrag_started) {
			pthread_mutex_lock(&d->defrag_lock);
			d->defrag_stop = true;
			pthread_cond_signal(&d->defrag_cv);
			pthread_mutex_unlock(&d->defrag_lock);
			pthread_join(d->defrag_thread, NULL);
		}
		if (d->io_started) {
			/* Everything in RAM goes to the device, then the thread ends. */
			pthread_mutex_lock(&d->wt.lock);
			if (d->cur != NULL && d->cur->pos > 0) {
				queue_full_locked(d, d->cur);
				d->cur = NULL;
			}
			if (d->dcur != NULL && d->dcur->pos > 0) {
				queue_full_locked(d, d->dcur);
				d->dcur = NULL;
			}
			d->stop = true;
			pthread_cond_broadcast(&d->io_cv);
			pthread_cond_broadcast(&d->space_cv);
			pthread_mutex_unlock(&d->wt.lock);
			pthread_join(d->io_thread, NULL);
			if (clean && !d->failed) {
				d->hdr.flags |= DEVICE_F_CLEAN;
				if (device_header_write(d) == 0)
					log_info("device", "{%s} %s: closed cleanly", st->ns_name, d->path);
			}
		}
		device_destroy(d);
		e->devs[i] = NULL;
	}
	pthread_mutex_destroy(&e->pver_lock);
	pthread_mutex_destroy(&e->pmark_lock);
	free(e->pver_image);
	free(e);
	st->priv = NULL;
}

static void
dev_stats(struct storage *st, struct storage_stats *out)
{
	struct dev_engine *e = st->priv;

	*out = (struct storage_stats){ 0 };
	out->avail_pct = 100;
	out->shadow = e->resident;
	for (uint32_t i = 0; i < e->n; i++) {
		struct device *d = e->devs[i];

		pthread_mutex_lock(&d->wt.lock);
		wblock_stats_add_locked(&d->wt, out);
		/* Superseded bytes of buffers waiting for the device come
		 * back (free or through defrag) once written. */
		for (const struct dev_buf *b = d->wq_head; b != NULL; b = b->next)
			out->pending_free_bytes += d->wbs - wblock_inuse(wblock_get(&d->wt, b->wblock_id));
		out->defrag_writes += d->defrag_writes;
		out->write_q += d->wq_len;
		out->writes += d->writes;
		out->partial_writes += d->partial_writes;
		out->write_errors += d->write_errors;
		out->write_waits += d->write_waits;
		pthread_mutex_unlock(&d->wt.lock);
		out->total_bytes += (uint64_t)d->wt.n_wblocks * d->wbs;
		out->reads += atomic_load_relaxed(&d->reads);
		out->cache_reads += atomic_load_relaxed(&d->cache_reads);
		out->read_errors += atomic_load_relaxed(&d->read_errors);
		out->checksum_errors += atomic_load_relaxed(&d->checksum_errors);
		out->defrag_records += atomic_load_relaxed(&d->defrag_records);
		out->cold_start_dropped += atomic_load_relaxed(&d->cs_dropped);
	}
	out->pversion_syncs = atomic_load_relaxed(&e->pver_syncs);
	out->pversion_pages = atomic_load_relaxed(&e->pver_pages_written);
}

static void
dev_space(struct storage *st, struct storage_space *out)
{
	struct dev_engine *e = st->priv;

	*out = (struct storage_space){ .free_pct = 100 };
	for (uint32_t i = 0; i < e->n; i++) {
		struct device *d = e->devs[i];

		wblock_space_add(&d->wt, &out->used_bytes, &out->free_pct);
		out->total_bytes += (uint64_t)d->wt.n_wblocks * d->wbs;
	}
}

static void
dev_config_changed(struct storage *st)
{
	struct dev_engine *e = st->priv;

	for (uint32_t i = 0; i < e->n; i++) {
		struct device *d = e->devs[i];

		pthread_mutex_lock(&d->wt.lock);
		wblock_set_lwm_locked(&d->wt, atomic_load_relaxed(&st->cfg->defrag_lwm_pct));
		pthread_cond_broadcast(&d->space_cv);
		pthread_mutex_unlock(&d->wt.lock);
		defrag_kick(d);
	}
}

/* Every record in one wblock image that verifies or has an intact header
 * (a damaged copy still proves an older copy of its record exists). */
static void
scan_image(const uint8_t *img, uint32_t wbs, void (*fn)(void *arg, const uint8_t *flat, uint32_t size),
    void *arg)
{
	for (uint32_t off = 0; off + RECORD_FLAT_MIN_SIZE <= wbs;) {
		uint32_t size;

		struct record_flat_header h;

		if (record_flat_check(img + off, wbs - off, &size) != 0 ||
		    (record_flat_verify(img + off, size) != 0 &&
		    record_flat_header_check(img + off, size, &h) != 0)) {
			off += RBLOCK_SIZE;
			continue;
		}
		fn(arg, img + off, size);
		off += size;
	}
}

static int
dev_scan(struct storage *st, void (*fn)(void *arg, const uint8_t *flat, uint32_t size), void *arg,
    const bool *stop)
{
	struct dev_engine *e = st->priv;
	uint8_t *buf, *ram;
	int rc = 0;

	if (posix_memalign((void **)&buf, DEVICE_IO_ALIGN, e->wbs) != 0)
		return -ENOMEM;
	if (posix_memalign((void **)&ram, DEVICE_IO_ALIGN, e->wbs) != 0) {
		free(buf);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < e->n && rc == 0; i++) {
		struct device *d = e->devs[i];

		for (uint32_t id = d->wt.first; rc == 0; id++) {
			pthread_mutex_lock(&d->wt.lock);
			uint32_t end = d->high_water;
			struct dev_buf *b = id < end ? *attached_slot(d, id) : NULL;
			bool in_ram = b != NULL;
			if (in_ram) {
				/* What the device will hold: the filled part, zeros after. */
				memcpy(ram, b->data, b->pos);
				memset(ram + b->pos, 0, d->wbs - b->pos);
			}
			pthread_mutex_unlock(&d->wt.lock);
			if (id >= end || atomic_load_relaxed(stop))
				break;
			/* The device itself, always: until a RAM image is written out
			 * whole, the device still holds the wblock's older records. */
			rc = device_pread_full(d->fd, buf, d->wbs, (uint64_t)id * d->wbs);
			if (rc == 0)
				scan_image(buf, d->wbs, fn, arg);
			if (rc == 0 && in_ram)
				scan_image(ram, d->wbs, fn, arg);
			/* A background pass: leave the device to the clients. */
			struct timespec ts = { 0, 200 * 1000 };
			nanosleep(&ts, NULL);
		}
	}
	free(buf);
	free(ram);
	return rc;
}

const struct storage_ops storage_device_ops = {
	.name = "device",
	.open = dev_open,
	.close = dev_close,
	.write = dev_write,
	.write_flat = dev_write_flat,
	.read = dev_read,
	.read_many = dev_read_many,
	.free = dev_free,
	.sync = dev_sync,
	.sync_all = dev_sync_all,
	.wait_space = dev_wait_space,
	.defrag_copy = dev_defrag_copy,
	.stats = dev_stats,
	.space = dev_space,
	.scan = dev_scan,
	.config_changed = dev_config_changed,
	.keep = dev_keep,
	.pversions_load = device_pversions_load,
	.pversions_store = device_pversions_store,
	.pversion_store_one = device_pversion_store_one,
	.pversion_drop = device_pversion_drop,
	.pversions_drop = device_pversions_drop,
};

/*
 * The memory engine with shadow files (docs/storage-format.md): the same engine with
 * every wblock resident in RAM.  Writes land in the wblock's RAM image and
 * the I/O thread is the shadow writer (same offsets, same group commit);
 * reads and defrag never touch the shadow; cold start reads the shadow back
 * into RAM with the device engine's rules.  Rejected: a second engine with
 * its own shadow queue, which would repeat every durability rule above.
 */
const struct storage_ops storage_shadow_ops = {
	.name = "memory (shadow)",
	.open = dev_open,
	.close = dev_close,
	.write = dev_write,
	.write_flat = dev_write_flat,
	.read = dev_read,
	.free = dev_free,
	.sync = dev_sync,
	.sync_all = dev_sync_all,
	.wait_space = dev_wait_space,
	.defrag_copy = dev_defrag_copy,
	.stats = dev_stats,
	.space = dev_space,
	.scan = dev_scan,
	.config_changed = dev_config_changed,
	.keep = dev_keep,
	.pversions_load = device_pversions_load,
	.pversions_store = device_pversions_store,
	.pversion_store_one = device_pversion_store_one,
	.pversion_drop = device_pversion_drop,
	.pversions_drop = device_pversions_drop,
};
