/*
 * device_open.c - opening the files or raw devices of a device namespace
 * and checking that they belong together (see device_i.h).
 *
 * Rules, in the order they are checked:
 *   - a file is created if missing and grown (sparse) to filesize; a raw
 *     device is used whole; both are trimmed to a multiple of wbs;
 *   - cold-start-empty erases: files are recreated, devices get a zeroed
 *     header page;
 *   - an all-zero header page means a fresh device, formatted here only if
 *     every device of the namespace is fresh;
 *   - anything else must be a valid header of this namespace, this format
 *     version and write-block-size, and of a set of the same size in the
 *     same order, all with one signature.  Otherwise recfsd refuses to
 *     start and says which file and why: it never formats a device that
 *     holds data.
 *
 * Before any of that, each file or device is locked for this process
 * (base/file_lock.h) through a descriptor of its own, and a raw device is
 * then opened O_EXCL as well (which also keeps off a device that is
 * mounted, or held by a program that knows nothing of our locks).  A
 * second daemon on the same storage would interleave its writes with ours
 * and mark the file clean over records it never saw.  The lock descriptor
 * is closed last (device_destroy), after the final flush and the clean
 * mark; a holder that is shutting down is waited for, up to lock-wait
 * seconds.  cold-start-empty empties a file only once the lock is ours
 * (rejected: unlinking it first, which would also take the file from
 * under a daemon still using it).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/clock.h"
#include "../base/error.h"
#include "../base/file_lock.h"
#include "../base/log.h"
#include "device_i.h"

static struct device *
device_new(struct storage *st, uint32_t index, const char *path, uint32_t wbs)
{
	struct device *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return NULL;
	d->st = st;
	d->index = index;
	d->fd = -1;
	d->lock_fd = -1;
	d->wbs = wbs;
	d->defrag_source = WBLOCK_NONE;
	d->path = strdup(path);
	pthread_cond_init(&d->io_cv, NULL);
	pthread_cond_init(&d->durable_cv, NULL);
	pthread_cond_init(&d->space_cv, NULL);
	pthread_mutex_init(&d->defrag_lock, NULL);
	pthread_cond_init(&d->defrag_cv, NULL);
	if (d->path == NULL) {
		free(d);
		return NULL;
	}
	return d;
}

/*
 * Lock d->path for this process alone through d->lock_fd (kept open until
 * device_destroy); a missing file is created.  0, -EBUSY (logged, naming
 * the file and the holder) or -errno.
 */
static int
device_lock(struct storage *st, struct device *d)
{
	struct file_lock_holder h;
	char who[64];
	int rc;

	d->lock_fd = open(d->path, O_RDWR | O_CLOEXEC | (st->cfg->files_are_devices ? 0 : O_CREAT), 0600);
	if (d->lock_fd < 0)
		return -errno;
	rc = file_lock_acquire(d->lock_fd, d->path, st->cfg->lock_wait_s, NULL, NULL, &h);
	if (rc == -EBUSY) {
		log_error("device", "{%s} %s: in use by another recfsd (%s)%s; refusing to start",
		    st->ns_name, d->path, file_lock_holder_text(&h, who, sizeof(who)),
		    h.closing ? ", still shutting down after lock-wait" : "");
	} else if (rc != 0) {
		/* A file system without record locks: say so, run unprotected. */
		log_warn("device", "{%s} %s: cannot lock it (%s): nothing stops a second recfsd on it",
		    st->ns_name, d->path, recfs_strerror(rc));
		rc = 0;
	}
	return rc;
}

/* Open one file or device and find its usable size. */
static int
device_open_fd(struct storage *st, struct device *d)
{
	const struct storage_config *cfg = st->cfg;
	int flags = O_RDWR | O_CLOEXEC;
	struct stat sb;
	int rc;

	if (cfg->direct_io || cfg->files_are_devices)
		flags |= O_DIRECT;
	/* A raw device: exclusive as well (EBUSY while anyone else has it so). */
	flags |= cfg->files_are_devices ? O_EXCL : O_CREAT;
	rc = device_lock(st, d);
	if (rc != 0)
		return rc;
	if (cfg->cold_start_empty && !cfg->files_are_devices && ftruncate(d->lock_fd, 0) != 0)
		return -errno;
	d->fd = open(d->path, flags, 0600);
	if (d->fd < 0 && errno == EBUSY && (flags & O_EXCL)) {
		log_error("device", "{%s} %s: in use by another program (mounted, or opened exclusively "
		    "by something that is not recfsd); refusing to start", st->ns_name, d->path);
		return -EBUSY;
	}
	if (d->fd < 0 && errno == EINVAL && (flags & O_DIRECT)) {
		/* tmpfs and some others refuse O_DIRECT: say so, use the page cache. */
		log_warn("device", "{%s} %s: O_DIRECT not supported here, using buffered I/O",
		    st->ns_name, d->path);
		d->fd = open(d->path, flags & ~O_DIRECT, 0600);
	}
	if (d->fd < 0)
		return -errno;
	if (fstat(d->fd, &sb) != 0)
		return -errno;
	if (S_ISBLK(sb.st_mode)) {
		uint64_t bytes;

		if (ioctl(d->fd, BLKGETSIZE64, &bytes) != 0)
			return -errno;
		d->is_block = true;
		d->size = bytes;
		if (cfg->cold_start_empty) {
			uint8_t *zero;

			if (posix_memalign((void **)&zero, DEVICE_IO_ALIGN, DEVICE_HEADER_PAGE) != 0)
				return -ENOMEM;
			memset(zero, 0, DEVICE_HEADER_PAGE);
			ssize_t w = pwrite(d->fd, zero, DEVICE_HEADER_PAGE, 0);
			free(zero);
			if (w != DEVICE_HEADER_PAGE)
				return w < 0 ? -errno : -EIO;
			/* The rest still holds the old records: the new format
			 * zeroes each range before its high water passes it. */
			d->erased = true;
		}
	} else if (S_ISREG(sb.st_mode)) {
		if ((uint64_t)sb.st_size < cfg->filesize && ftruncate(d->fd, (off_t)cfg->filesize) != 0)
			return -errno;
		d->size = cfg->filesize;
	} else {
		return -ENOTBLK;
	}
	/* A shadow holds a memory namespace's data-size (its share of it): the
	 * RAM, not the file, is the limit. */
	if (d->resident && cfg->data_size > 0) {
		uint64_t share = STORAGE_HEADER_SIZE + cfg->data_size / cfg->n_files;

		if (share < d->size)
			d->size = share;
	}
	d->size -= d->size % d->wbs;
	return 0;
}

static int
device_read_header(struct storage *st, struct device *d, bool *fresh)
{
	uint8_t *page;
	char why[160];
	int rc;

	if (posix_memalign((void **)&page, DEVICE_IO_ALIGN, DEVICE_HEADER_PAGE) != 0)
		return -ENOMEM;
	rc = device_pread_full(d->fd, page, DEVICE_HEADER_PAGE, 0);
	if (rc == 0) {
		rc = device_header_decode(page, &d->hdr, why, sizeof(why));
		if (rc < 0)
			log_error("device", "{%s} %s: %s; refusing to use it (erase it, or set "
			    "cold-start-empty, to start empty)", st->ns_name, d->path, why);
	}
	free(page);
	*fresh = rc == 1;
	return rc < 0 ? rc : 0;
}

static int
device_alloc_state(struct storage *st, struct device *d)
{
	uint32_t n_wblocks = (uint32_t)(d->size / d->wbs);
	uint32_t first = STORAGE_HEADER_SIZE / d->wbs;
	uint32_t n = n_wblocks > first ? n_wblocks - first : 0;
	uint32_t reserve = n / 16;
	int rc;

	if (n < 4) {
		log_error("device", "{%s} %s: %" PRIu64 " bytes is too small (header %u bytes + "
		    "at least 4 wblocks of %u)", st->ns_name, d->path, d->size, STORAGE_HEADER_SIZE, d->wbs);
		return -EINVAL;
	}
	if (reserve < 2)
		reserve = 2;
	if (reserve > 8)
		reserve = 8;
	rc = wblock_table_init(&d->wt, first, n_wblocks, d->wbs, reserve, st->cfg->defrag_lwm_pct);
	if (rc != 0)
		return rc;
	d->attached = calloc(n, sizeof(*d->attached));
	if (d->attached == NULL ||
	    posix_memalign((void **)&d->stage_cur, DEVICE_IO_ALIGN, d->wbs) != 0 ||
	    posix_memalign((void **)&d->stage_dcur, DEVICE_IO_ALIGN, d->wbs) != 0)
		return -ENOMEM;
	d->defrag_n_bufs = DEFRAG_READ_BYTES / d->wbs;
	if (d->defrag_n_bufs < 2)
		d->defrag_n_bufs = 2;
	if (d->defrag_n_bufs > DEFRAG_BATCH)
		d->defrag_n_bufs = DEFRAG_BATCH;
	/* Resident (shadow) mode never reads a wblock back for defrag: its RAM
	 * image is walked in place. */
	for (uint32_t i = 0; i < d->defrag_n_bufs && !d->resident; i++)
		if (posix_memalign((void **)&d->defrag_bufs[i], DEVICE_IO_ALIGN, d->wbs) != 0)
			return -ENOMEM;
	if (d->resident) {
		/* Shadow mode: the namespace's RAM, mapped and touched now (first
		 * touch of fresh memory is slow: not on the write path), one
		 * buffer per wblock pointing into it. */
		size_t bytes = (size_t)n * d->wbs;
		void *ram = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_POPULATE, -1, 0);

		if (ram == MAP_FAILED)
			return -errno;
		d->resident_ram = ram;
		d->resident_bufs = calloc(n, sizeof(*d->resident_bufs));
		if (d->resident_bufs == NULL)
			return -ENOMEM;
		for (uint32_t i = 0; i < n; i++) {
			d->resident_bufs[i].data = d->resident_ram + (size_t)i * d->wbs;
			d->resident_bufs[i].wblock_id = first + i;
		}
	}
	return 0;
}

int
device_open_all(struct storage *st, struct dev_engine *e)
{
	const struct storage_config *cfg = st->cfg;
	uint32_t n_fresh = 0, n_unclean = 0;
	uint64_t signature = 0;
	int rc;

	for (uint32_t i = 0; i < cfg->n_files; i++) {
		struct device *d = device_new(st, i, cfg->files[i], e->wbs);
		bool fresh;

		if (d == NULL)
			return -ENOMEM;
		d->resident = e->resident;
		e->devs[i] = d;
		e->n = i + 1;
		rc = device_open_fd(st, d);
		if (rc != 0) {
			if (rc != -EBUSY)   /* logged with its holder */
				log_error("device", "{%s} %s: cannot open: %s", st->ns_name, d->path,
				    recfs_strerror(rc));
			return rc;
		}
		rc = device_read_header(st, d, &fresh);
		if (rc != 0)
			return rc;
		if (fresh) {
			n_fresh++;
		} else {
			const char *why = NULL;

			if (strcmp(d->hdr.ns_name, st->ns_name) != 0) {
				log_error("device", "{%s} %s belongs to namespace '%s'; refusing to use it",
				    st->ns_name, d->path, d->hdr.ns_name);
				return RECFS_EFOREIGN;
			}
			if (d->hdr.write_block_size != e->wbs)
				why = "it was written with another write-block-size";
			else if (d->hdr.n_devices != cfg->n_files)
				why = "it belongs to a set with another number of devices";
			else if (d->hdr.device_index != i)
				why = "the order of the files/devices changed";
			else if (d->hdr.high_water > d->size / e->wbs)
				why = "it is now smaller than the data it holds (filesize was reduced)";
			else if (signature != 0 && d->hdr.signature != signature)
				why = "it belongs to another set of devices (signature differs)";
			if (why != NULL) {
				log_error("device", "{%s} %s: %s (header: write-block-size %u, device %u of %u); "
				    "refusing to start", st->ns_name, d->path, why, d->hdr.write_block_size,
				    d->hdr.device_index + 1, d->hdr.n_devices);
				return RECFS_ECONFIG;
			}
			signature = d->hdr.signature;
			if (!(d->hdr.flags & DEVICE_F_CLEAN)) {
				n_unclean++;
				log_warn("device", "{%s} %s was not shut down cleanly: the cold start will "
				    "verify every record", st->ns_name, d->path);
			}
		}
		rc = device_alloc_state(st, d);
		if (rc != 0)
			return rc;
	}
	if (n_fresh > 0 && n_fresh < e->n) {
		log_error("device", "{%s} %u of %u devices are empty and the others hold data: a "
		    "device was added or replaced; refusing to start", st->ns_name, n_fresh, e->n);
		return RECFS_ECONFIG;
	}
	if (n_fresh == e->n) {
		/* Every device is new: format the set. */
		while (signature == 0)
			if (getrandom(&signature, sizeof(signature), 0) != sizeof(signature))
				signature = clock_mono_ns() ^ (uint64_t)getpid() << 32;
		for (uint32_t i = 0; i < e->n; i++) {
			struct device *d = e->devs[i];

			d->hdr = (struct device_header){
				.version = DEVICE_HEADER_VERSION,
				.write_block_size = e->wbs,
				.n_devices = e->n,
				.device_index = i,
				.signature = signature,
				.device_size = d->size,
				.high_water = d->wt.first,
				.created_ms = clock_epoch_ms(),
			};
			if (d->erased)
				d->hdr.flags |= DEVICE_F_STALE;
			/* No partition holds data on a new format, whatever an
			 * erased one left in the pmeta area; durable before the
			 * header that makes the device valid is written. */
			rc = device_pversions_erase(st, d);
			if (rc != 0)
				return rc;
			d->high_water = d->wt.first;
			snprintf(d->hdr.ns_name, sizeof(d->hdr.ns_name), "%s", st->ns_name);
			log_info("device", "{%s} %s: new, %" PRIu64 " bytes, %u wblocks of %u bytes",
			    st->ns_name, d->path, d->size, d->wt.n_wblocks - d->wt.first, e->wbs);
		}
		e->cold_started = false;
	} else {
		e->cold_started = true;
		st->clean_start = n_unclean == 0;
	}
	return 0;
}
