/*
 * device_cold_start.c - rebuilding the index from the devices (SPEC 6.4).
 *
 * One thread per device reads its wblocks in order, from the first data
 * wblock up to the header's high-water mark, in wblock-sized reads kept
 * several deep with io_uring so the device, not the scan, is the limit.
 * Each wblock is walked at 16-byte (rblock) steps: a candidate that passes
 * the structural check and decodes with a good CRC is handed to the owner,
 * which keeps the newest copy per digest (last-update time, then
 * generation) and tells the engine whether to count its bytes as live.  A
 * candidate that fails its CRC is counted and logged with file and offset,
 * and the walk moves on 16 bytes (a torn write or damaged bytes never
 * become a record).  When every device is done, each wblock's state and
 * the free and defrag queues are rebuilt from the live bytes found.
 */
#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../base/clock.h"
#include "../base/error.h"
#include "../base/log.h"
#include "device_i.h"

#define SCAN_DEPTH 4
#define SCAN_PROGRESS_NS (5ULL * 1000000000ULL)
#define SCAN_LOG_CORRUPT_MAX 20

struct scan_slot {
	uint8_t *buf;
	uint32_t id;
	bool busy, done;
	int res;
};

static void
scan_wblock(struct storage *st, struct device *d, uint32_t id, const uint8_t *buf)
{
	uint32_t off = 0, live = 0;

	while (off + RECORD_FLAT_MIN_SIZE <= d->wbs) {
		uint32_t size, magic;
		struct record r;

		memcpy(&magic, buf + off, sizeof(magic));
		if (magic != RECORD_FLAT_MAGIC || record_flat_check(buf + off, d->wbs - off, &size) != 0) {
			off += RBLOCK_SIZE;
			continue;
		}
		int rc = record_flat_decode(buf + off, size, &r);
		if (rc != 0) {
			if (d->cs_corrupt++ < SCAN_LOG_CORRUPT_MAX)
				log_warn("device", "{%s} %s offset %" PRIu64 ": %s: record skipped",
				    st->ns_name, d->path, (uint64_t)id * d->wbs + off, recfs_strerror(rc));
			off += RBLOCK_SIZE;
			continue;
		}
		storage_loc loc = storage_loc_make(d->index, (uint64_t)id * d->wbs + off, size);
		/* Live bytes are summed here and added once per wblock: a copy
		 * replaced later in this same wblock is subtracted meanwhile, which
		 * the unsigned counts survive (they only need the final sum). */
		if (st->owner.load(st->owner.arg, st, &r, size, loc) > 0)
			live += size;
		record_release(&r);
		d->cs_records++;
		off += size;
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

static void *
scan_main(void *arg)
{
	struct device *d = arg;
	struct storage *st = d->st;
	struct scan_slot slots[SCAN_DEPTH];
	struct io_uring ring;
	uint32_t first = d->wt.first, end = d->hdr.high_water;
	uint32_t next_submit = first, next_done = first;
	uint64_t start = clock_mono_ns(), last_log = start;
	intptr_t rc = 0;

	if (end > d->wt.n_wblocks)
		end = d->wt.n_wblocks;
	if (end < first)
		end = first;
	memset(slots, 0, sizeof(slots));
	rc = io_uring_queue_init(SCAN_DEPTH * 2, &ring, 0);
	if (rc < 0)
		return (void *)rc;
	for (int i = 0; i < SCAN_DEPTH; i++)
		if (posix_memalign((void **)&slots[i].buf, DEVICE_IO_ALIGN, d->wbs) != 0)
			rc = -ENOMEM;
	while (rc == 0 && next_done < end) {
		/* Keep SCAN_DEPTH reads in flight. */
		while (next_submit < end && next_submit - next_done < SCAN_DEPTH) {
			struct scan_slot *s = &slots[next_submit % SCAN_DEPTH];
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

			if (sqe == NULL)
				break;
			s->id = next_submit;
			s->busy = true;
			s->done = false;
			/* Shadow mode: read into the wblock's resident image itself. */
			uint8_t *dst = d->resident ? d->resident_bufs[next_submit - first].data : s->buf;
			io_uring_prep_read(sqe, d->fd, dst, d->wbs, (uint64_t)next_submit * d->wbs);
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
			uint8_t *img = d->resident ? d->resident_bufs[want->id - first].data : want->buf;
			memset(img + want->res, 0, d->wbs - (uint32_t)want->res);
		}
		if (d->resident) {
			const uint8_t *img = d->resident_bufs[want->id - first].data;

			scan_wblock(st, d, want->id, img);
			keep_resident(d, want->id);
		} else {
			scan_wblock(st, d, want->id, want->buf);
		}
		d->cs_bytes += d->wbs;
		want->busy = false;
		next_done++;
		uint64_t now = clock_mono_ns();
		if (now - last_log >= SCAN_PROGRESS_NS) {
			double secs = (double)(now - start) / 1e9;

			log_info("device", "{%s} %s: cold start %u%% (%" PRIu64 " records, %.0f records/s)",
			    st->ns_name, d->path, (unsigned)((uint64_t)(next_done - first) * 100 / (end - first)),
			    d->cs_records, (double)d->cs_records / secs);
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
	if (rc == 0) {
		double secs = (double)(clock_mono_ns() - start) / 1e9;

		log_info("device", "{%s} %s: cold start scanned %u wblocks (%" PRIu64 " MiB) in %.2f s "
		    "(%.0f MiB/s): %" PRIu64 " records, %" PRIu64 " damaged", st->ns_name, d->path,
		    end - first, d->cs_bytes >> 20, secs, secs > 0 ? (double)d->cs_bytes / 1048576.0 / secs : 0,
		    d->cs_records, d->cs_corrupt);
	}
	return (void *)rc;
}

int
device_cold_start(struct storage *st, struct dev_engine *e)
{
	pthread_t threads[CONFIG_FILES_MAX];
	int rc = 0;

	if (!e->cold_started)
		return 0;
	for (uint32_t i = 0; i < e->n; i++) {
		int c = pthread_create(&threads[i], NULL, scan_main, e->devs[i]);

		if (c != 0) {
			/* Scan the rest on this thread. */
			threads[i] = 0;
			void *r = scan_main(e->devs[i]);
			if ((intptr_t)r != 0)
				rc = (int)(intptr_t)r;
		}
	}
	for (uint32_t i = 0; i < e->n; i++) {
		void *r = NULL;

		if (threads[i] != 0)
			pthread_join(threads[i], &r);
		if ((intptr_t)r != 0)
			rc = (int)(intptr_t)r;
	}
	if (rc != 0)
		return rc;
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
