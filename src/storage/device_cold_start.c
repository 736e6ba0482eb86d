/*
 * device_cold_start.c - rebuilding the index from the devices (docs/storage-format.md,
 * Cold start).
 *
 * Each device is scanned by as many threads as there are CPUs for it (the
 * CPUs shared among the devices, at least one, at most SCAN_PARTS_MAX):
 * thread k of n reads every n-th wblock, in order, from the first data
 * wblock up to the header's high-water mark, in wblock-sized reads kept
 * several deep with io_uring, so the device, not the CPU checking and
 * indexing the records, is the limit.  Records of one digest met by two
 * threads meet under the record lock; which copy wins does not depend on
 * the order they come in.
 * Each wblock is walked at 16-byte (rblock) steps: a candidate that passes
 * the structural check and decodes with a good CRC is handed to the owner,
 * which keeps the newest copy per digest (last-update time, then
 * generation) and tells the engine whether to count its bytes as live.  A
 * candidate that fails its CRC is counted and logged with file and offset;
 * if its header is intact (record_flat_header_check) the owner still hears
 * of it, so a damaged newest copy is never replaced by an older one, and
 * the walk jumps over it; otherwise the walk moves on 16 bytes (a torn
 * write or damaged bytes never become a record).  When every device is
 * done, the owner settles torn writes (torn_window_set, owner->scanned),
 * then each wblock's state and the free and defrag queues are rebuilt from
 * the live bytes found.
 */
#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/atomic.h"
#include "../base/clock.h"
#include "../base/error.h"
#include "../base/log.h"
#include "device_i.h"

#define SCAN_DEPTH 4
#define SCAN_PARTS_MAX 4
#define SCAN_PROGRESS_NS (5ULL * 1000000000ULL)
#define SCAN_LOG_CORRUPT_MAX 20

struct scan_slot {
	uint8_t *buf;
	uint32_t id;
	bool busy, done;
	int res;
};

/* Records found ahead of the one being loaded (see scan_wblock). */
#define SCAN_AHEAD 64

/* Record offsets and sizes from *off on that pass the header check, up
 * to SCAN_AHEAD; *off moves past them (and past any garbage skipped). */
static unsigned
scan_find(const uint8_t *buf, uint32_t wbs, uint32_t *off, uint32_t *offs, uint32_t *sizes)
{
	unsigned n = 0;

	while (n < SCAN_AHEAD && *off + RECORD_FLAT_MIN_SIZE <= wbs) {
		uint32_t size, magic;

		memcpy(&magic, buf + *off, sizeof(magic));
		if (magic != RECORD_FLAT_MAGIC || record_flat_check(buf + *off, wbs - *off, &size) != 0) {
			*off += RBLOCK_SIZE;
			continue;
		}
		offs[n] = *off;
		sizes[n++] = size;
		*off += size;
	}
	return n;
}

/* A copy of a partition this node dropped, older than the drop and not
 * stored under the partition's regain: stale, skipped (counted, never live;
 * device_pversion.c keeps the drop times and marks; the rule is
 * device_pmeta_copy_stale).  A set's marker is kept on every node whatever
 * its partition, and a drop leaves it: never skipped.  The highest mark of
 * the stale copies is noted: a regain that began (its copies marked) but
 * never reached its slot, whose mark the next regain must not reuse. */
static bool
dropped_copy(struct storage *st, struct device *d, const uint8_t *flat, uint32_t flags, uint64_t lut_ms)
{
	struct dev_engine *e = st->priv;
	uint32_t p = digest_partition(record_flat_digest(flat));
	uint16_t mark = record_flat_mark(flat);

	if (!device_pmeta_copy_stale(e->pdrop[p], (e->pmflags[p] & PMARK_F_REGAINED) != 0, e->pmark[p],
	    lut_ms, mark, (flags & RECORD_F_SET_MARKER) != 0))
		return false;
	__atomic_add_fetch(&d->cs_dropped, 1, __ATOMIC_RELAXED);
	if (mark != 0) {
		uint16_t cur = __atomic_load_n(&e->pmark_seen[p], __ATOMIC_RELAXED);

		while (mark > cur && !__atomic_compare_exchange_n(&e->pmark_seen[p], &cur, mark, false,
		    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			;
	}
	return true;
}

/* A copy with an intact header written at lut_ms is on d. */
static void
newest_seen(struct device *d, uint64_t lut_ms)
{
	uint64_t cur = __atomic_load_n(&d->cs_newest_ms, __ATOMIC_RELAXED);

	while (lut_ms > cur && !__atomic_compare_exchange_n(&d->cs_newest_ms, &cur, lut_ms, false,
	    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

/*
 * Verify, decode and load every record of one wblock image.  Records are
 * found a batch at a time so the owner can be told about the next ones
 * (hint): their index lookups' cache misses then overlap with this one's
 * work, which matters as the index grows far beyond the caches.
 */
static void
scan_wblock(struct storage *st, struct device *d, uint32_t id, const uint8_t *buf)
{
	uint32_t offs[SCAN_AHEAD], sizes[SCAN_AHEAD];
	uint32_t pos = 0, live = 0;
	unsigned n;

	while ((n = scan_find(buf, d->wbs, &pos, offs, sizes)) > 0) {
		if (st->owner.hint != NULL) {
			for (unsigned j = 0; j < n && j < 2; j++)
				st->owner.hint(st->owner.arg, record_flat_digest(buf + offs[j]), false);
			st->owner.hint(st->owner.arg, record_flat_digest(buf + offs[0]), true);
		}
		for (unsigned j = 0; j < n; j++) {
			uint32_t off = offs[j], size = sizes[j];
			struct record r;

			if (st->owner.hint != NULL) {
				if (j + 2 < n)
					st->owner.hint(st->owner.arg, record_flat_digest(buf + offs[j + 2]), false);
				if (j + 1 < n)
					st->owner.hint(st->owner.arg, record_flat_digest(buf + offs[j + 1]), true);
			}
			int rc = record_flat_decode(buf + off, size, &r);
			storage_loc loc = storage_loc_make(d->index, (uint64_t)id * d->wbs + off, size);
			if (rc != 0) {
				struct record_flat_header h;
				bool header_ok = record_flat_header_check(buf + off, size, &h) == 0;

				if (__atomic_fetch_add(&d->cs_corrupt, 1, __ATOMIC_RELAXED) < SCAN_LOG_CORRUPT_MAX)
					log_warn("device", "{%s} %s offset %" PRIu64 ": %s: %s", st->ns_name,
					    d->path, (uint64_t)id * d->wbs + off, recfs_strerror(rc), header_ok
					    ? "body damaged, header intact: the newest-copy rule decides"
					    : "record skipped");
				if (!header_ok) {
					/* As if it were garbage: look for records from its
					 * next rblock on (what follows was found trusting it). */
					pos = off + RBLOCK_SIZE;
					break;
				}
				/* The header is proven, its size too: the copy takes
				 * part in the newest-copy rule like any other. */
				newest_seen(d, h.last_update_ms);
				if (dropped_copy(st, d, buf + off, h.flags, h.last_update_ms))
					continue;
				if (st->owner.load_damaged != NULL) {
					unsigned parts = record_flat_salvage(buf + off, &h, &r);

					if (st->owner.load_damaged(st->owner.arg, st, &r, parts, size, loc) > 0)
						live += size;
					record_release(&r);
				}
				continue;
			}
			/* Live bytes are summed here and added once per wblock: a copy
			 * replaced later in this same wblock is subtracted meanwhile, which
			 * the unsigned counts survive (they only need the final sum). */
			newest_seen(d, r.last_update_ms);
			if (dropped_copy(st, d, buf + off, r.flags, r.last_update_ms)) {
				record_release(&r);
				continue;
			}
			if (st->owner.load(st->owner.arg, st, &r, size, loc) > 0)
				live += size;
			record_release(&r);
			__atomic_add_fetch(&d->cs_records, 1, __ATOMIC_RELAXED);
		}
	}
	if (live > 0) {
		pthread_mutex_lock(&d->wt.lock);
		wblock_add_locked(&d->wt, id, live);
		pthread_mutex_unlock(&d->wt.lock);
	}
}

/* Shadow mode: the wblock was read straight into its resident RAM image;
 * it is attached (readable) from now on. */
static void
keep_resident(struct device *d, uint32_t id)
{
	struct dev_buf *b = &d->resident_bufs[id - d->wt.first];

	b->pos = b->flushed = d->wbs;
	__atomic_store_n(&d->attached[id - d->wt.first], b, __ATOMIC_RELEASE);
}

/* One scan thread's share of a device: wblocks first + part, + n_parts, ... */
struct scan_part {
	struct device *d;
	uint32_t part, n_parts;
	uint32_t first, end;       /* the device's whole scan range */
	uint64_t start_ns;
	pthread_t thread;
	bool started;
	intptr_t rc;
};

static void *
scan_main(void *arg)
{
	struct scan_part *sp = arg;
	struct device *d = sp->d;
	struct storage *st = d->st;
	struct scan_slot slots[SCAN_DEPTH];
	struct io_uring ring;
	uint32_t first = sp->first, end = sp->end, step = sp->n_parts;
	/* Positions in this part's sequence: wblock first + part + i * step. */
	uint32_t count = end - first > sp->part ? (end - first - sp->part + step - 1) / step : 0;
	uint32_t next_submit = 0, next_done = 0;
	uint64_t last_log = sp->start_ns;
	intptr_t rc = 0;

	memset(slots, 0, sizeof(slots));
	rc = io_uring_queue_init(SCAN_DEPTH * 2, &ring, 0);
	if (rc < 0) {
		sp->rc = rc;
		return NULL;
	}
	for (int i = 0; i < SCAN_DEPTH; i++)
		if (posix_memalign((void **)&slots[i].buf, DEVICE_IO_ALIGN, d->wbs) != 0)
			rc = -ENOMEM;
	while (rc == 0 && next_done < count) {
		/* Keep SCAN_DEPTH reads in flight. */
		while (next_submit < count && next_submit - next_done < SCAN_DEPTH) {
			struct scan_slot *s = &slots[next_submit % SCAN_DEPTH];
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			uint32_t id = first + sp->part + next_submit * step;

			if (sqe == NULL)
				break;
			s->id = id;
			s->busy = true;
			s->done = false;
			/* Shadow mode: read into the wblock's resident image itself. */
			uint8_t *dst = d->resident ? d->resident_bufs[id - d->wt.first].data : s->buf;
			io_uring_prep_read(sqe, d->fd, dst, d->wbs, (uint64_t)id * d->wbs);
			io_uring_sqe_set_data(sqe, s);
			next_submit++;
		}
		io_uring_submit(&ring);
		struct scan_slot *want = &slots[next_done % SCAN_DEPTH];
		while (!want->done) {
			struct io_uring_cqe *cqe;
			int w = io_uring_wait_cqe(&ring, &cqe);

			if (w == -EINTR)
				continue;
			if (w < 0) {
				rc = w;
				break;
			}
			struct scan_slot *s = io_uring_cqe_get_data(cqe);
			s->res = cqe->res;
			s->done = true;
			io_uring_cqe_seen(&ring, cqe);
		}
		if (rc != 0)
			break;
		if (want->res != (int)d->wbs) {
			/* A short read past a sparse end reads as zeros; an error is fatal. */
			if (want->res < 0) {
				rc = want->res;
				log_error("device", "{%s} %s wblock %u: read failed: %s", st->ns_name, d->path,
				    want->id, recfs_strerror((int)rc));
				break;
			}
			uint8_t *img = d->resident ? d->resident_bufs[want->id - d->wt.first].data : want->buf;
			memset(img + want->res, 0, d->wbs - (uint32_t)want->res);
		}
		if (d->resident) {
			const uint8_t *img = d->resident_bufs[want->id - d->wt.first].data;

			scan_wblock(st, d, want->id, img);
			keep_resident(d, want->id);
		} else {
			scan_wblock(st, d, want->id, want->buf);
		}
		uint64_t bytes = __atomic_add_fetch(&d->cs_bytes, d->wbs, __ATOMIC_RELAXED);
		want->busy = false;
		next_done++;
		uint64_t now = clock_mono_ns();
		if (sp->part == 0 && now - last_log >= SCAN_PROGRESS_NS) {
			double secs = (double)(now - sp->start_ns) / 1e9;
			uint64_t records = __atomic_load_n(&d->cs_records, __ATOMIC_RELAXED);

			log_info("device", "{%s} %s: cold start %u%% (%" PRIu64 " records, %.0f records/s)",
			    st->ns_name, d->path, (unsigned)(bytes / d->wbs * 100 / (end - first)),
			    records, (double)records / secs);
			last_log = now;
		}
	}
	/* Drain reads still in flight before their buffers go away. */
	while (next_submit > next_done) {
		struct io_uring_cqe *cqe;

		if (io_uring_wait_cqe(&ring, &cqe) < 0)
			break;
		io_uring_cqe_seen(&ring, cqe);
		next_done++;
	}
	io_uring_queue_exit(&ring);
	for (int i = 0; i < SCAN_DEPTH; i++)
		free(slots[i].buf);
	sp->rc = rc;
	return NULL;
}

/*
 * Every copy has been seen: which copies may be writes torn by an unclean
 * stop (storage.h, torn_from_ms).  Only a device whose header was not
 * marked clean can hold one, and only among the writes of its last
 * flush-max-ms before the stop: those were not yet forced to the device
 * (a durable write's acknowledgement waits for its fdatasync, which a torn
 * copy never got).  The window is measured back from the newest copy on
 * the device (the last write that reached it), and a second is added for
 * the flusher's lateness and the clock steps between writes; with
 * flush-max-ms 0 (buffers written only when full) that second is all: a
 * damaged copy older than it is reported as damaged, never hidden.
 */
static void
torn_window_set(struct storage *st, struct dev_engine *e)
{
	uint32_t w = atomic_load_relaxed(&st->cfg->flush_max_ms) + 1000;

	st->torn_window_ms = w;
	for (uint32_t i = 0; i < e->n; i++) {
		struct device *d = e->devs[i];
		uint64_t newest = __atomic_load_n(&d->cs_newest_ms, __ATOMIC_RELAXED);

		st->torn_from_ms[i] = 0;
		if (!(d->hdr.flags & DEVICE_F_CLEAN) && newest > 0)
			st->torn_from_ms[i] = newest > w ? newest - w : 1;
	}
}

int
device_cold_start(struct storage *st, struct dev_engine *e)
{
	struct scan_part (*parts)[SCAN_PARTS_MAX];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	uint32_t n_parts;
	int rc = 0;

	if (!e->cold_started)
		return 0;
	/* The partitions dropped here, when, and their regains: their older
	 * copies are skipped.  Unreadable: every copy loads (as before any
	 * drop; the tables are left all 0). */
	(void)device_pversions_cold_load(st, e);
	/* The CPUs shared among the devices (each device at least one thread). */
	n_parts = cpus > (long)e->n ? (uint32_t)(cpus / (long)e->n) : 1;
	if (n_parts > SCAN_PARTS_MAX)
		n_parts = SCAN_PARTS_MAX;
	parts = calloc(e->n, sizeof(*parts));
	if (parts == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < e->n; i++) {
		struct device *d = e->devs[i];
		uint32_t first = d->wt.first, end = d->hdr.high_water;

		if (end > d->wt.n_wblocks)
			end = d->wt.n_wblocks;
		if (end < first)
			end = first;
		for (uint32_t k = 0; k < n_parts; k++)
			parts[i][k] = (struct scan_part){ .d = d, .part = k, .n_parts = n_parts,
			    .first = first, .end = end, .start_ns = clock_mono_ns() };
	}
	for (uint32_t i = 0; i < e->n; i++) {
		for (uint32_t k = 0; k < n_parts; k++) {
			struct scan_part *sp = &parts[i][k];

			sp->started = pthread_create(&sp->thread, NULL, scan_main, sp) == 0;
			if (sp->started)
				pthread_setname_np(sp->thread, "cold-start");
			else
				scan_main(sp);  /* this thread does that share */
		}
	}
	for (uint32_t i = 0; i < e->n; i++) {
		struct device *d = e->devs[i];
		int dev_rc = 0;

		for (uint32_t k = 0; k < n_parts; k++) {
			struct scan_part *sp = &parts[i][k];

			if (sp->started)
				pthread_join(sp->thread, NULL);
			if (sp->rc != 0)
				dev_rc = (int)sp->rc;
		}
		if (dev_rc != 0) {
			rc = dev_rc;
			continue;
		}
		double secs = (double)(clock_mono_ns() - parts[i][0].start_ns) / 1e9;

		log_info("device", "{%s} %s: cold start scanned %u wblocks (%" PRIu64 " MiB) in %.2f s "
		    "(%.0f MiB/s, %u threads): %" PRIu64 " records, %" PRIu64 " damaged, %" PRIu64
		    " of dropped partitions skipped", st->ns_name,
		    d->path, parts[i][0].end - parts[i][0].first, d->cs_bytes >> 20, secs,
		    secs > 0 ? (double)d->cs_bytes / 1048576.0 / secs : 0, n_parts, d->cs_records,
		    d->cs_corrupt, d->cs_dropped);
	}
	free(parts);
	if (rc != 0)
		return rc;
	torn_window_set(st, e);
	if (st->owner.scanned != NULL)
		st->owner.scanned(st->owner.arg, st);
	for (uint32_t i = 0; i < e->n; i++) {
		struct device *d = e->devs[i];

		pthread_mutex_lock(&d->wt.lock);
		wblock_rebuild_locked(&d->wt, d->hdr.high_water);
		d->high_water = d->hdr.high_water;
		log_info("device", "{%s} %s: wblocks: %u free, %u to defrag, %" PRIu64
		    " live bytes, high water %u", st->ns_name, d->path, wblock_free_count_locked(&d->wt),
		    d->wt.defrag_count, (uint64_t)sharded_sum(&d->wt.used), d->hdr.high_water);
		pthread_mutex_unlock(&d->wt.lock);
	}
	return 0;
}
