/*
 * device_i.h - the device engine's internals, shared by storage_device.c
 * (write/read paths, I/O and defrag threads), device_open.c (opening and
 * checking devices) and device_cold_start.c (rebuilding the index).
 */
#ifndef RECFS_STORAGE_DEVICE_I_H
#define RECFS_STORAGE_DEVICE_I_H

#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "device_header.h"
#include "storage.h"
#include "wblock.h"

#define DEVICE_IO_ALIGN 4096
/* Defrag reads up to DEFRAG_READ_BYTES of queued wblocks at once (at
 * least 2, at most DEFRAG_BATCH wblocks): a virtual or flash device reads
 * faster with a deeper queue (fio, 1 MiB reads: ~680 MiB/s at depth 4,
 * ~900 at 64 on the development VM). */
#define DEFRAG_BATCH 16
#define DEFRAG_READ_BYTES (16u << 20)

/* A wblock's image in RAM: being filled, waiting for the device, or kept
 * after the write as post-write cache. */
struct dev_buf {
	uint8_t *data;             /* wbs bytes, DEVICE_IO_ALIGN-aligned */
	uint32_t wblock_id;
	uint32_t pos;              /* bytes filled */
	uint32_t flushed;          /* bytes known to be on the device */
	bool defrag;               /* a defrag destination */
	uint32_t *vacated;         /* defrag: source wblocks waiting for this buffer */
	uint32_t n_vacated, cap_vacated;
	uint32_t n_writers;        /* atomic: records being encoded into it right now */
	struct dev_buf *next;      /* write queue, post-write FIFO or spare pool */
	uint64_t queued_ns;        /* when it joined the write queue */
	bool in_pool_ram;          /* data lies in the device's pool_ram: never freed alone */
};

struct device {
	struct storage *st;
	uint32_t index;            /* file id in locations */
	char *path;
	int fd;
	int lock_fd;               /* holds the store lock (base/file_lock.h) until closed, last */
	bool is_block;
	bool erased;               /* a raw device cold-start-empty erased at open (header only) */
	bool resident;             /* memory engine with shadow: every wblock stays in RAM */
	uint8_t *resident_ram;     /* resident mode: all wblock images, mapped and touched at open */
	struct dev_buf *resident_bufs; /* resident mode: one buffer per wblock, into resident_ram */
	uint64_t size;             /* usable bytes (a multiple of wbs) */
	uint32_t wbs;
	struct device_header hdr;  /* io thread (high water) and open/close only */

	/* wt.lock protects the table and everything down to `failed`. */
	struct wblock_table wt;
	struct dev_buf **attached; /* [id - first]: RAM image of the wblock, or NULL */
	struct dev_buf *cur, *dcur;
	struct dev_buf *wq_head, *wq_tail;
	uint32_t wq_len;           /* full buffers waiting for the device (write_q) */
	uint32_t io_inflight;      /* buffers (and tails) the I/O thread took and is writing */
	struct dev_buf *pw_head, *pw_tail;
	uint32_t pw_len;           /* post-write cache */
	struct dev_buf *pool;
	uint32_t pool_len, n_bufs;
	uint8_t *pool_ram;         /* the buffers the caches need, mapped at open and
	                            * prefaulted from the cold start on */
	size_t pool_ram_bytes;
	uint64_t write_seq;        /* writes placed in buffers */
	uint64_t durable_seq;      /* writes known durable */
	uint64_t sync_target;      /* highest write_seq a syncer waits for */
	uint64_t error_seq;        /* writes up to here hit a device error */
	uint64_t last_flush_ns;
	uint32_t high_water;       /* copy of hdr.high_water for other threads */
	uint64_t writes, partial_writes, defrag_writes, write_errors, write_waits;
	uint64_t write_cache_timeouts;
	bool stop, io_exited, failed;
	bool flush_requested;      /* someone waits for space a flush frees */
	pthread_cond_t io_cv;      /* wakes the I/O thread */
	pthread_cond_t durable_cv; /* durable_seq moved */
	pthread_cond_t space_cv;   /* the write queue shrank */

	/* I/O thread only. */
	struct io_uring ring;
	bool ring_ready;
	uint8_t *stage_cur, *stage_dcur;
	pthread_t io_thread;
	bool io_started;

	/* Defrag thread only (defrag_lock, a leaf, guards defrag_stop and
	 * defrag_kicks; defrag_kick may be called with wt.lock held). */
	pthread_t defrag_thread;
	bool defrag_started, defrag_stop;
	uint64_t defrag_kicks;
	pthread_mutex_t defrag_lock;
	pthread_cond_t defrag_cv;
	struct io_uring defrag_ring;
	bool defrag_ring_ready;
	uint8_t *defrag_bufs[DEFRAG_BATCH]; /* wblock images, defrag_batch of them */
	bool defrag_stalled;       /* defrag thread: its last batch found no space for copies */
	uint32_t defrag_n_bufs;    /* wblocks per batch: DEFRAG_READ_BYTES / wbs, 2..DEFRAG_BATCH */
	uint32_t defrag_source;    /* wblock being defragmented, or WBLOCK_NONE */
	bool space_wanted;         /* atomic: writers wait for space (defrag: no pause) */

	/* Atomics. */
	uint64_t reads, cache_reads, read_errors, checksum_errors, defrag_records;

	/* Cold start counts (scan thread only). */
	uint64_t cs_records, cs_corrupt, cs_bytes;
	uint64_t cs_dropped;        /* copies of dropped partitions skipped (atomic) */
	uint64_t cs_newest_ms;     /* atomic max: newest last-update time of a copy
	                            * whose header is intact (torn-write window) */
};

struct dev_engine {
	uint32_t n;
	uint32_t wbs;
	bool resident;             /* storage-engine memory with shadow files */
	struct device *devs[CONFIG_FILES_MAX];
	bool cold_started;         /* loaded records from existing devices */
	pthread_t prefault_thread; /* faults the pools' RAM in, from the cold start on */
	bool prefault_started;
	bool prefault_stop;        /* atomic: close asks it to end */
	/* Partition versions (device_pversion.c): the table last read or
	 * written, the same on every device.  pver_lock protects both. */
	pthread_mutex_t pver_lock;
	bool pver_known;           /* pver holds what the devices hold */
	bool pver_quiet;           /* a read that logs nothing (the cold start's) */
	uint64_t pver[STORAGE_PARTITIONS];
	/* Per partition, version 0: when its copy was dropped (clock_epoch_ms;
	 * records older than that on the devices are stale and the
	 * cold start skips them), else 0. */
	uint64_t pdrop[STORAGE_PARTITIONS];
	/* Per partition: the last regain mark given (device_header.h) and
	 * PMARK_F_*.  A store writes them under pver_lock and pmark_lock; the
	 * write path reads them (device_copy_mark) and may set
	 * PMARK_F_PENDING under pmark_lock alone. */
	uint16_t pmark[STORAGE_PARTITIONS];
	uint8_t pmflags[STORAGE_PARTITIONS];
	pthread_mutex_t pmark_lock;
	/* Cold start: the highest mark of a stale copy per partition (a
	 * regain that never reached its slot), atomic max. */
	uint16_t pmark_seen[STORAGE_PARTITIONS];
	/* Partitions whose damaged slot or disagreement was logged: once each
	 * until a store rewrites them (a bit per partition). */
	uint64_t pver_logged[STORAGE_PARTITIONS / 64];
	uint64_t pver_syncs;       /* atomic: fdatasync calls for the table */
	/* The pmeta area as last written and synced on every device
	 * (DEVICE_PMETA_SIZE bytes, aligned), valid once a whole-area write
	 * succeeded and until a read, a failed write or an erase: a store then
	 * writes only the pages that differ from it. */
	uint8_t *pver_image;
	bool pver_image_ok;
	uint64_t pver_pages_written; /* atomic: pmeta pages written by stores */
};

/* e->pmflags bits: the slot says regained; copies older than the drop were
 * stored with mark pmark before the slot said regained (a version store for
 * the partition is on its way: it keeps that mark). */
#define PMARK_F_REGAINED 0x1
#define PMARK_F_PENDING  0x2

/* device_open.c: open every configured file/device, size it, read and check
 * its header (fresh devices are formatted), allocate per-device state. */
int device_open_all(struct storage *st, struct dev_engine *e);
/* device_cold_start.c: scan every device (in parallel) up to its high-water
 * mark, hand each verified record to owner->load, rebuild wblock queues. */
int device_cold_start(struct storage *st, struct dev_engine *e);

/* device_pversion.c: the storage_pversion* ops (storage.h), and clearing
 * the pmeta area of a device being formatted (durable on return). */
int device_pversions_load(struct storage *st, uint64_t out[STORAGE_PARTITIONS]);
int device_pversions_store(struct storage *st, const uint64_t v[STORAGE_PARTITIONS]);
int device_pversion_store_one(struct storage *st, uint32_t pid, uint64_t v);
int device_pversion_drop(struct storage *st, uint32_t pid, uint64_t drop_ms);
int device_pversions_drop(struct storage *st, const uint32_t *pids, unsigned n, uint64_t drop_ms);
/* The cold start's read of the table (pver, pdrop): 0 or -errno (then
 * every partition loads, as before any drop). */
int device_pversions_cold_load(struct storage *st, struct dev_engine *e);
int device_pversions_erase(struct storage *st, struct device *d);
/* Before the devices' headers say version 3: the table written in the
 * version 3 area of every older device and synced.  0 or -errno. */
int device_pversions_upgrade(struct storage *st, struct dev_engine *e);
/* After the cold start: the marks of stale copies seen (pmark_seen) are
 * given out already; the next regain takes a later one. */
void device_pversions_marks_seen(struct dev_engine *e);
/*
 * The regain mark a copy of partition p last updated at lut_ms must carry
 * when stored now: 0 unless the partition has a drop time newer than the
 * copy (then the mark of the partition's regain, which a first such copy
 * starts if no version store has yet).  One load when never dropped.
 */
uint16_t device_copy_mark_slow(struct dev_engine *e, uint32_t p);
static inline uint16_t
device_copy_mark(struct dev_engine *e, uint32_t p, uint64_t lut_ms)
{
	uint64_t drop_ms = __atomic_load_n(&e->pdrop[p], __ATOMIC_RELAXED);

	if (__builtin_expect(drop_ms == 0 || lut_ms >= drop_ms, 1))
		return 0;
	return device_copy_mark_slow(e, p);
}

/* storage_device.c */
int device_header_write(struct device *d);
int device_pread_full(int fd, void *buf, size_t len, uint64_t off);

/* One write of an I/O batch (device_write_in_order). */
struct device_write {
	const void *src;
	uint64_t off;
	uint32_t len;
	int res;                  /* out: bytes written, or -errno (-ECANCELED: never started) */
};
/* Write w[0..n) through ring in their order: each write starts only once
 * the one before it completed (linked, and a full ring drains before more
 * go in), so a process killed during the batch leaves a prefix of it on the
 * device - never a later buffer (a large file's head) without an earlier
 * one (its chunks).  The first write that fails or comes up short stops the
 * rest (their res -ECANCELED).  0 or the first failure's -errno. */
int device_write_in_order(struct io_uring *ring, int fd, struct device_write *w, unsigned n);

extern const struct storage_ops storage_device_ops;
extern const struct storage_ops storage_shadow_ops;

#endif
