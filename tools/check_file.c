/*
 * check_file.c - one storage file for recfs-check: open it read-only, read
 * and validate its header page, and walk its wblocks (see check.h).
 *
 * The walk is the cold start's (src/storage/device_cold_start.c): from the
 * first data wblock up to the header's high-water mark, each wblock read
 * whole and walked at 16-byte (rblock) steps.  A candidate that passes
 * record_flat_check, record_flat_verify and decodes is a record copy and
 * the walk jumps over it; so it does over a damaged copy whose header is
 * intact (record_flat_header_check); anything else moves on 16 bytes.
 * Unlike cold start, which only logs candidates that fail after the
 * structural check, the checker also reports a candidate that carries the
 * record magic and a format version it reads (1 or 2) but fails the
 * structural check: the bytes that begin a record were written, so a
 * header that no longer makes sense is damage (cold start silently skips
 * it, and the record is gone).
 *
 * Reads are plain buffered preads in chunks of several wblocks: the file
 * is read once, sequentially, and O_DIRECT would only add alignment rules.
 * Rejected: mmap (a damaged sector would be SIGBUS instead of an error we
 * can report with its offset).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "storage/storage.h"
#include "check.h"

/* The write-block-size limits of the configuration (docs/configuration.md):
 * a header outside them was not written by recfsd. */
#define CHECK_WBS_MIN (128u << 10)
#define CHECK_WBS_MAX (8u << 20)
/* Bytes per read: whole wblocks, about this much. */
#define CHECK_READ_CHUNK (8u << 20)

int
check_file_open(struct check_file *f, const char *path)
{
	struct stat sb;

	memset(f, 0, sizeof(*f));
	f->path = path;
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0)
		return -errno;
	if (fstat(f->fd, &sb) != 0)
		goto fail;
	if (S_ISBLK(sb.st_mode)) {
		if (ioctl(f->fd, BLKGETSIZE64, &f->size) != 0)
			goto fail;
		f->is_block = true;
	} else if (S_ISREG(sb.st_mode)) {
		f->size = (uint64_t)sb.st_size;
	} else {
		errno = S_ISDIR(sb.st_mode) ? EISDIR : ENOTBLK;
		goto fail;
	}
	/* One sequential pass: let the kernel read ahead generously. */
	posix_fadvise(f->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return 0;
fail:;
	int err = -errno;

	close(f->fd);
	f->fd = -1;
	return err;
}

void
check_file_close(struct check_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	free(f->live_bytes);
	f->live_bytes = NULL;
	free(f->pver);
	f->pver = NULL;
	free(f->pdrop);
	f->pdrop = NULL;
	free(f->pkeep);
	f->pkeep = NULL;
}

/* pread until len bytes or the end of the file: bytes read, or -errno. */
static int64_t
pread_most(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, buf + done, len - done, (off_t)(off + done));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (int64_t)done;
}

static void
invalid(struct check_file *f, const char *why)
{
	f->state = CHECK_FILE_INVALID;
	snprintf(f->why, sizeof(f->why), "%s", why);
}

int
check_file_pversions(struct check_file *f)
{
	uint32_t hv = f->hdr.version;
	uint8_t *area = calloc(1, DEVICE_PMETA_SIZE);
	int64_t got;

	f->pver = calloc(DEVICE_PMETA_SLOTS, sizeof(*f->pver));
	f->pdrop = calloc(DEVICE_PMETA_SLOTS, sizeof(*f->pdrop));
	f->pkeep = calloc(DEVICE_PMETA_SLOTS, sizeof(*f->pkeep));
	if (area == NULL || f->pver == NULL || f->pdrop == NULL || f->pkeep == NULL) {
		free(area);
		return -ENOMEM;
	}
	/* Format version 1 and 2 files keep 16-byte slots in the old area. */
	got = pread_most(f->fd, area, device_pmeta_area_size(hv), device_pmeta_area_offset(hv));
	if (got < 0) {
		free(area);
		return (int)got;
	}
	for (uint32_t p = 0; p < DEVICE_PMETA_SLOTS; p++) {
		struct device_pmeta s;

		if (device_pmeta_area_decode(area, hv, p, &s) != 0) {
			if (f->pver_bad < CHECK_PVER_LIST)
				f->pver_bad_pid[f->pver_bad] = p;
			f->pver_bad++;
			continue;
		}
		f->pver[p] = s.version;
		f->pdrop[p] = s.drop_ms;
		f->pkeep[p] = s.regained ? CHECK_KEEP(s.mark) : 0;
		if (s.version != 0)
			f->pver_set++;
		else if (s.drop_ms != 0)
			f->pdrop_set++;
		if (s.drop_ms != 0 && s.regained)
			f->pregained_set++;
	}
	free(area);
	return 0;
}

int
check_file_header(struct check_file *f, bool all)
{
	uint8_t page[DEVICE_HEADER_PAGE];
	char why[160];
	int64_t got;
	int rc;

	got = pread_most(f->fd, page, sizeof(page), 0);
	if (got < 0)
		return (int)got;
	if (got < (int64_t)sizeof(page)) {
		/* Too short to be formatted: a zero-length or tiny file. */
		bool zero = true;

		for (int64_t i = 0; i < got && zero; i++)
			zero = page[i] == 0;
		if (zero) {
			f->state = CHECK_FILE_EMPTY;
			return 0;
		}
		invalid(f, "not a recfs storage file (shorter than a header page)");
		return 0;
	}
	rc = device_header_decode(page, &f->hdr, why, sizeof(why));
	if (rc == 1) {
		f->state = CHECK_FILE_EMPTY;
		return 0;
	}
	if (rc != 0) {
		invalid(f, why);
		return 0;
	}
	/* What the decoder leaves to the engine's configuration. */
	uint32_t wbs = f->hdr.write_block_size;
	if (wbs < CHECK_WBS_MIN || wbs > CHECK_WBS_MAX) {
		snprintf(why, sizeof(why), "write-block-size %u in the header is outside %u..%u", wbs,
		    CHECK_WBS_MIN, CHECK_WBS_MAX);
		invalid(f, why);
		return 0;
	}
	f->first = STORAGE_HEADER_SIZE / wbs;
	f->n_wblocks = (uint32_t)(f->size / wbs);
	if (f->hdr.high_water < f->first) {
		snprintf(why, sizeof(why), "high-water mark %u lies inside the header area (first data "
		    "wblock is %u)", f->hdr.high_water, f->first);
		invalid(f, why);
		return 0;
	}
	if (f->hdr.high_water > f->n_wblocks) {
		/* The engine refuses such a file; scan what is there. */
		snprintf(why, sizeof(why), "file is shorter (%" PRIu64 " bytes, %u wblocks) than its "
		    "high-water mark %u: truncated?", f->size, f->n_wblocks, f->hdr.high_water);
		snprintf(f->why, sizeof(f->why), "%s", why);
		f->short_file = true;
	}
	f->state = CHECK_FILE_VALID;
	rc = check_file_pversions(f);
	if (rc != 0)
		return rc;
	f->scan_end = all ? f->n_wblocks : f->hdr.high_water;
	if (f->scan_end > f->n_wblocks)
		f->scan_end = f->n_wblocks;
	if (f->scan_end < f->first)
		f->scan_end = f->first;
	return 0;
}

/* The drop time recfsd applies to a copy of digest d written at lut_ms
 * with regain mark mark (flags: its RECORD_F_*) if the copy is stale by it
 * (device_header.h, device_pmeta_copy_stale, as in cold start), else 0. */
static uint64_t
copy_drop_ms(const struct check_file *f, const struct digest *d, uint64_t lut_ms, uint16_t mark,
    uint8_t flags)
{
	uint32_t p, keep;
	uint64_t drop_ms;

	if (f->set_drop == NULL)
		return 0;
	p = digest_partition(d) % DEVICE_PMETA_SLOTS;
	drop_ms = f->set_drop[p];
	keep = f->set_keep != NULL ? f->set_keep[p] : 0;
	return device_pmeta_copy_stale(drop_ms, keep != 0, (uint16_t)keep, lut_ms, mark,
	    (flags & RECORD_F_SET_MARKER) != 0) ? drop_ms : 0;
}

/* Walk one wblock image (buf, wbs bytes) at file offset base. */
static int
walk_wblock(struct check_file *f, const uint8_t *buf, uint64_t base, check_item_fn fn, void *arg)
{
	uint32_t wbs = f->hdr.write_block_size, off = 0;
	int rc;

	while (off + RECORD_FLAT_MIN_SIZE <= wbs) {
		const uint8_t *p = buf + off;
		struct check_item it = { .offset = base + off, .raw = p, .raw_avail = wbs - off };
		uint32_t size, magic;
		struct record r;

		memcpy(&magic, p, sizeof(magic));
		if (le32toh(magic) != RECORD_FLAT_MAGIC || p[8] < RECORD_FLAT_VERSION_MIN ||
		    p[8] > RECORD_FLAT_VERSION) {
			off += RBLOCK_SIZE;
			continue;
		}
		if (record_flat_check(p, wbs - off, &size) != 0) {
			it.kind = CHECK_ITEM_CORRUPT;
			it.why = "record header damaged (size or end offset out of bounds)";
			rc = fn(arg, f, &it);
			if (rc != 0)
				return rc;
			off += RBLOCK_SIZE;
			continue;
		}
		it.size = size;
		it.has_digest = true;
		memcpy(&it.digest, record_flat_digest(p), sizeof(it.digest));
		rc = record_flat_verify(p, size);
		if (rc == 0) {
			rc = record_flat_decode(p, size, &r);
			if (rc == -ENOMEM)
				return rc;
			/* Good CRC, bad fields: written wrong, not damaged later. */
			it.why = "malformed record (checksum good, fields invalid)";
		} else {
			it.why = "checksum mismatch (end mark, CRC32C or padding)";
		}
		if (rc != 0) {
			struct record_flat_header h;
			struct record sal;

			it.kind = CHECK_ITEM_CORRUPT;
			/* As cold start: an intact header still says which record
			 * and version this copy is, and the walk jumps over it. */
			it.header_ok = record_flat_header_check(p, size, &h) == 0;
			if (it.header_ok) {
				it.salvage_parts = record_flat_salvage(p, &h, &sal);
				it.salvage = &sal;
				it.drop_ms = copy_drop_ms(f, &it.digest, h.last_update_ms, h.mark, h.flags);
			}
			rc = fn(arg, f, &it);
			if (it.header_ok)
				record_release(&sal);
			if (rc != 0)
				return rc;
			off += it.header_ok ? size : RBLOCK_SIZE;
			continue;
		}
		it.kind = CHECK_ITEM_RECORD;
		it.rec = &r;
		it.drop_ms = copy_drop_ms(f, &r.digest, r.last_update_ms, r.mark, r.flags);
		if (it.drop_ms != 0)
			it.kind = CHECK_ITEM_DROPPED;
		rc = fn(arg, f, &it);
		record_release(&r);
		if (rc != 0)
			return rc;
		off += size;
	}
	return 0;
}

int
check_file_walk(struct check_file *f, check_item_fn fn, void *arg)
{
	uint32_t wbs = f->hdr.write_block_size;
	uint32_t per_read = CHECK_READ_CHUNK / wbs;
	uint8_t *buf;
	int rc = 0;

	if (per_read == 0)
		per_read = 1;
	buf = malloc((size_t)per_read * wbs);
	if (buf == NULL)
		return -ENOMEM;
	for (uint32_t id = f->first; id < f->scan_end && rc == 0;) {
		uint32_t n = f->scan_end - id < per_read ? f->scan_end - id : per_read;
		uint64_t off = (uint64_t)id * wbs;
		int64_t got = pread_most(f->fd, buf, (size_t)n * wbs, off);

		if (got < 0) {
			/* Retry wblock by wblock so one bad sector costs one wblock. */
			if (n > 1) {
				per_read = 1;
				continue;
			}
			char why[96];
			struct check_item it = { .kind = CHECK_ITEM_READ_ERROR, .offset = off,
			    .size = wbs, .why = why };

			snprintf(why, sizeof(why), "wblock %u unreadable: %s", id,
			    recfs_strerror((int)got));
			rc = fn(arg, f, &it);
			id++;
			continue;
		}
		/* Past the end reads as zeros, as in cold start. */
		if ((uint64_t)got < (uint64_t)n * wbs)
			memset(buf + got, 0, (size_t)n * wbs - (size_t)got);
		for (uint32_t i = 0; i < n && rc == 0; i++)
			rc = walk_wblock(f, buf + (size_t)i * wbs, off + (uint64_t)i * wbs, fn, arg);
		id += n;
	}
	free(buf);
	return rc;
}
