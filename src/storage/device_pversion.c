/*
 * device_pversion.c - partition versions in the pmeta area of every device
 * or shadow file (slot format in device_header.h, docs/storage-format.md).
 *
 * The engine keeps the table it last read or wrote in RAM (pver, under
 * pver_lock): storing one slot rewrites the whole 4 KiB page that holds it
 * from that copy on every device, so the devices of a namespace converge on
 * one table even if they disagreed before.  The writes go straight to the
 * file (pwrite + fdatasync), beside the I/O thread: the pmeta area is never
 * part of a wblock and the I/O thread only ever writes the header page
 * below it, so the two never touch the same bytes.
 *
 * Reading is defensive: a slot that fails its CRC, or a partition whose
 * devices give different versions, is 0 ("no data here"), the answer that
 * can only make the cluster fetch a partition again, never trust a copy it
 * does not have.  Rejected: refusing to start on a bad slot (one flipped
 * byte would take the node's whole data out of service), and taking the
 * highest version when devices disagree (the device with the lower one may
 * be the one that missed records).
 *
 * Drops and regains (docs/cluster.md, Dropping a copy): a dropped
 * partition keeps its drop time for good; a version stored for it later is
 * its regain, which takes the next regain mark.  The write path
 * (device_copy_mark) gives a copy older than the drop the regain's mark,
 * and the cold start loads such a copy only if its mark is the slot's.
 * Rejected: clearing the drop time at the regain (the dropped copies load
 * again: a record deleted meanwhile comes back), and a regain epoch per
 * wblock (a wblock's tail keeps the previous life's records after a
 * partial flush, and a per-wblock table needs two ordered syncs).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/atomic.h"
#include "../base/error.h"
#include "../base/log.h"
#include "device_header.h"
#include "device_i.h"

/* Bad slots and disagreements logged one by one per load (then counted);
 * each partition once, until it is stored again (pver_logged). */
#define PVER_LOG_MAX 8

static int
pwrite_full(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, buf + done, len - done, (off_t)(off + done));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

/* First time partition p is found damaged or disagreeing since it was
 * last stored?  (Marks it.)  pver_lock held. */
static bool
pver_log_first(struct dev_engine *e, uint32_t p)
{
	uint64_t bit = 1ULL << (p % 64);
	bool first = !(e->pver_logged[p / 64] & bit);

	e->pver_logged[p / 64] |= bit;
	return first;
}

/* Read device d's slots into v (a bad slot: all 0, logged the first
 * time).  A device of format version 1 or 2 has its 16-byte slots in the
 * old area.  0 or -errno. */
static int
pver_read_device(struct storage *st, struct dev_engine *e, struct device *d, uint8_t *area,
    struct device_pmeta *v)
{
	uint32_t bad = 0, hv = d->hdr.version;
	uint64_t off = device_pmeta_area_offset(hv);
	uint32_t size = device_pmeta_area_size(hv);
	int rc = device_pread_full(d->fd, area, size, off);

	if (rc != 0) {
		log_error("device", "{%s} %s: cannot read the partition versions (offset %" PRIu64 ", %u "
		    "bytes): %s", st->ns_name, d->path, off, size, recfs_strerror(rc));
		return rc;
	}
	for (uint32_t p = 0; p < DEVICE_PMETA_SLOTS; p++) {
		if (device_pmeta_area_decode(area, hv, p, &v[p]) == 0 || e->pver_quiet ||
		    !pver_log_first(e, p))
			continue;
		if (bad++ < PVER_LOG_MAX)
			log_error("device", "{%s} %s: partition %u: version slot at offset %" PRIu64
			    " fails its CRC; the partition counts as holding no data here",
			    st->ns_name, d->path, p, off + (uint64_t)p * (size / DEVICE_PMETA_SLOTS));
	}
	if (bad > PVER_LOG_MAX && !e->pver_quiet)
		log_error("device", "{%s} %s: %u partition version slots fail their CRC (the first %u logged)",
		    st->ns_name, d->path, bad, PVER_LOG_MAX);
	return 0;
}

/* "123", or "0 (dropped at 456)", "7 (dropped at 456, regain mark 2)". */
static void
pver_describe(const struct device_pmeta *s, char *buf, size_t cap)
{
	if (s->drop_ms != 0 && s->regained)
		snprintf(buf, cap, "%" PRIu64 " (dropped at %" PRIu64 ", regain mark %u)", s->version,
		    s->drop_ms, s->mark);
	else if (s->drop_ms != 0)
		snprintf(buf, cap, "%" PRIu64 " (dropped at %" PRIu64 ")", s->version, s->drop_ms);
	else
		snprintf(buf, cap, "%" PRIu64, s->version);
}

static bool
pmeta_same(const struct device_pmeta *a, const struct device_pmeta *b)
{
	return a->version == b->version && a->drop_ms == b->drop_ms && a->mark == b->mark &&
	    a->regained == b->regained;
}

/* Partition p's slot into the RAM tables (pmark_lock taken here). */
static void
pver_ram_put(struct dev_engine *e, uint32_t p, const struct device_pmeta *s)
{
	pthread_mutex_lock(&e->pmark_lock);
	e->pver[p] = s->version;
	atomic_store_relaxed(&e->pmark[p], s->mark);
	__atomic_store_n(&e->pmflags[p], s->regained ? PMARK_F_REGAINED : 0, __ATOMIC_RELEASE);
	atomic_store_relaxed(&e->pdrop[p], s->drop_ms);
	pthread_mutex_unlock(&e->pmark_lock);
}

/* Read every device into the RAM tables (agreed slots, else all 0).  A
 * partition whose devices disagree loads its records (no drop: what the
 * store did before the drops).  pver_lock held. */
static int
pver_read_locked(struct storage *st, struct dev_engine *e)
{
	uint8_t *area;
	struct device_pmeta *out = calloc(2 * DEVICE_PMETA_SLOTS, sizeof(*out));
	struct device_pmeta *v = out + DEVICE_PMETA_SLOTS;
	static const struct device_pmeta none;
	uint32_t differ = 0;
	int rc = 0;

	if (out == NULL)
		return -ENOMEM;
	if (posix_memalign((void **)&area, DEVICE_IO_ALIGN, DEVICE_PMETA_SIZE) != 0) {
		free(out);
		return -ENOMEM;
	}
	/* what the devices hold is read again: the next store writes it all
	 * (devices that disagreed converge) */
	e->pver_image_ok = false;
	for (uint32_t i = 0; i < e->n && rc == 0; i++) {
		rc = pver_read_device(st, e, e->devs[i], area, i == 0 ? out : v);
		for (uint32_t p = 0; i > 0 && rc == 0 && p < DEVICE_PMETA_SLOTS; p++) {
			if (pmeta_same(&v[p], &out[p]))
				continue;
			/* Not again for a partition already logged (a damaged
			 * slot, an earlier device or an earlier load). */
			if (!e->pver_quiet && pver_log_first(e, p) && differ++ < PVER_LOG_MAX) {
				uint32_t hv = e->devs[i]->hdr.version;
				char a[96], b[96];

				pver_describe(&out[p], a, sizeof(a));
				pver_describe(&v[p], b, sizeof(b));
				log_error("device", "{%s} partition %u: version %s in %s but %s in %s (offset %"
				    PRIu64 "); the partition counts as holding no data here", st->ns_name, p, a,
				    e->devs[0]->path, b, e->devs[i]->path, device_pmeta_area_offset(hv) +
				    (uint64_t)p * (device_pmeta_area_size(hv) / DEVICE_PMETA_SLOTS));
			}
			memset(&out[p], 0, sizeof(out[p]));
		}
	}
	if (differ > PVER_LOG_MAX && !e->pver_quiet)
		log_error("device", "{%s} %u partition versions differ between devices (the first %u logged)",
		    st->ns_name, differ, PVER_LOG_MAX);
	for (uint32_t p = 0; p < DEVICE_PMETA_SLOTS; p++)
		pver_ram_put(e, p, rc == 0 ? &out[p] : &none);
	free(area);
	free(out);
	return rc;
}

/* Sync every device after a write of the table.  pver_lock held. */
static int
pver_sync_locked(struct storage *st, struct dev_engine *e)
{
	int rc = 0;

	for (uint32_t i = 0; i < e->n && rc == 0; i++) {
		atomic_inc(&e->pver_syncs);
		if (fdatasync(e->devs[i]->fd) != 0) {
			rc = -errno;
			log_error("device", "{%s} %s: syncing partition versions failed: %s", st->ns_name,
			    e->devs[i]->path, recfs_strerror(rc));
		}
	}
	return rc;
}

/* len bytes of the pmeta area from byte off of it written to every device
 * (no sync).  pver_lock held. */
static int
pver_pwrite_locked(struct storage *st, struct dev_engine *e, const uint8_t *buf, size_t len, uint64_t off)
{
	int rc = 0;

	atomic_add(&e->pver_pages_written, (len + DEVICE_HEADER_PAGE - 1) / DEVICE_HEADER_PAGE);
	for (uint32_t i = 0; i < e->n && rc == 0; i++) {
		rc = pwrite_full(e->devs[i]->fd, buf, len, DEVICE_PMETA_OFFSET + off);
		if (rc != 0)
			log_error("device", "{%s} %s: writing partition versions (offset %" PRIu64 ", %zu "
			    "bytes) failed: %s", st->ns_name, e->devs[i]->path, DEVICE_PMETA_OFFSET + off,
			    len, recfs_strerror(rc));
	}
	return rc;
}

/* What the devices hold now (pver_image): bytes [off, off + len) are buf
 * (rc 0), or unknown (a failed write: the next store writes it all).
 * pver_lock held. */
static void
pver_image_update(struct dev_engine *e, const uint8_t *buf, size_t len, uint64_t off, int rc)
{
	if (rc != 0) {
		e->pver_image_ok = false;
		return;
	}
	if (e->pver_image == NULL &&
	    posix_memalign((void **)&e->pver_image, DEVICE_IO_ALIGN, DEVICE_PMETA_SIZE) != 0) {
		e->pver_image = NULL;
		e->pver_image_ok = false;
		return;
	}
	memcpy(e->pver_image + off, buf, len);
	if (off == 0 && len == DEVICE_PMETA_SIZE)
		e->pver_image_ok = true;
}

/* Write len bytes of the pmeta area from byte off of it to every device,
 * then sync every device.  pver_lock held. */
static int
pver_write_locked(struct storage *st, struct dev_engine *e, const uint8_t *buf, size_t len, uint64_t off)
{
	int rc = pver_pwrite_locked(st, e, buf, len, off);

	if (rc == 0)
		rc = pver_sync_locked(st, e);
	pver_image_update(e, buf, len, off, rc);
	return rc;
}

/* The whole area (encoded in area) stored, writing only the runs of pages
 * that differ from what the devices hold (pver_image, valid), then one sync
 * per device; nothing at all when none differs.  A store of the table
 * after a migration's partitions completed changes a few slots of its 128
 * KiB.  pver_lock held. */
static int
pver_write_changed_locked(struct storage *st, struct dev_engine *e, const uint8_t *area)
{
	const uint32_t pages = DEVICE_PMETA_SIZE / DEVICE_HEADER_PAGE;
	uint32_t pg = 0;
	bool any = false;
	int rc = 0;

	while (pg < pages && rc == 0) {
		uint32_t end;

		if (memcmp(area + (size_t)pg * DEVICE_HEADER_PAGE, e->pver_image + (size_t)pg * DEVICE_HEADER_PAGE,
		    DEVICE_HEADER_PAGE) == 0) {
			pg++;
			continue;
		}
		for (end = pg + 1; end < pages && memcmp(area + (size_t)end * DEVICE_HEADER_PAGE,
		    e->pver_image + (size_t)end * DEVICE_HEADER_PAGE, DEVICE_HEADER_PAGE) != 0; end++)
			;
		rc = pver_pwrite_locked(st, e, area + (size_t)pg * DEVICE_HEADER_PAGE,
		    (size_t)(end - pg) * DEVICE_HEADER_PAGE, (uint64_t)pg * DEVICE_HEADER_PAGE);
		any = true;
		pg = end;
	}
	if (rc == 0 && any)
		rc = pver_sync_locked(st, e);
	pver_image_update(e, area, DEVICE_PMETA_SIZE, 0, rc);
	return rc;
}

/* Encode slots [first, first + n) of the RAM tables into buf. */
static void
pver_encode(struct dev_engine *e, uint32_t first, uint32_t n, uint8_t *buf)
{
	pthread_mutex_lock(&e->pmark_lock);
	for (uint32_t p = 0; p < n; p++) {
		uint32_t q = first + p;
		struct device_pmeta s = {
			.version = e->pver[q], .drop_ms = e->pdrop[q], .mark = e->pmark[q],
			/* a pending regain is not in the slot until its version is */
			.regained = (e->pmflags[q] & PMARK_F_REGAINED) != 0,
		};

		device_pmeta_slot_encode3(&s, buf + (size_t)p * DEVICE_PMETA_SLOT);
	}
	pthread_mutex_unlock(&e->pmark_lock);
}

/*
 * Partition p gets version v in the RAM tables.  A version for a partition
 * with a drop time is its regain: the drop time stays (the copies older
 * than it stay stale), and the copies stored from now on under it carry a
 * new mark, which the slot keeps (one a write already started, if any:
 * PMARK_F_PENDING).  Stored again while regained: the same mark.  pver_lock
 * held.
 */
static void
pver_set(struct dev_engine *e, uint32_t p, uint64_t v)
{
	pthread_mutex_lock(&e->pmark_lock);
	e->pver[p] = v;
	if (v != 0 && e->pdrop[p] != 0 && !(e->pmflags[p] & PMARK_F_REGAINED)) {
		if (!(e->pmflags[p] & PMARK_F_PENDING))
			atomic_store_relaxed(&e->pmark[p], device_pmeta_next_mark(e->pmark[p]));
		__atomic_store_n(&e->pmflags[p], PMARK_F_REGAINED, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&e->pmark_lock);
}

/* Partition p dropped at drop_ms in the RAM tables: version 0, not
 * regained, its mark kept (the next regain takes a later one).  pver_lock
 * held. */
static void
pver_drop(struct dev_engine *e, uint32_t p, uint64_t drop_ms)
{
	pthread_mutex_lock(&e->pmark_lock);
	e->pver[p] = 0;
	__atomic_store_n(&e->pmflags[p], 0, __ATOMIC_RELEASE);
	atomic_store_relaxed(&e->pdrop[p], drop_ms);
	pthread_mutex_unlock(&e->pmark_lock);
}

uint16_t
device_copy_mark_slow(struct dev_engine *e, uint32_t p)
{
	uint16_t mark;

	/* The regain's mark is set (every copy a migration brings after the
	 * first): no lock.  The mark is stored before the flag. */
	if (__atomic_load_n(&e->pmflags[p], __ATOMIC_ACQUIRE) & (PMARK_F_REGAINED | PMARK_F_PENDING))
		return atomic_load_relaxed(&e->pmark[p]);
	pthread_mutex_lock(&e->pmark_lock);
	/* A copy older than the drop stored before the version store of its
	 * regain (a migration that started first): the regain's mark is
	 * chosen now.  Should the node stop before the slot says regained,
	 * the copy is stale, as it was before the regain. */
	if (!(e->pmflags[p] & (PMARK_F_REGAINED | PMARK_F_PENDING))) {
		atomic_store_relaxed(&e->pmark[p], device_pmeta_next_mark(e->pmark[p]));
		__atomic_store_n(&e->pmflags[p], (uint8_t)(e->pmflags[p] | PMARK_F_PENDING), __ATOMIC_RELEASE);
	}
	mark = e->pmark[p];
	pthread_mutex_unlock(&e->pmark_lock);
	return mark;
}

void
device_pversions_marks_seen(struct dev_engine *e)
{
	pthread_mutex_lock(&e->pmark_lock);
	for (uint32_t p = 0; p < STORAGE_PARTITIONS; p++) {
		if (e->pmark_seen[p] > e->pmark[p] && !(e->pmflags[p] & PMARK_F_REGAINED))
			e->pmark[p] = e->pmark_seen[p];
		e->pmark_seen[p] = 0;
	}
	pthread_mutex_unlock(&e->pmark_lock);
}

int
device_pversions_load(struct storage *st, uint64_t out[STORAGE_PARTITIONS])
{
	struct dev_engine *e = st->priv;
	int rc;

	pthread_mutex_lock(&e->pver_lock);
	rc = pver_read_locked(st, e);
	e->pver_known = rc == 0;
	memcpy(out, e->pver, sizeof(e->pver));
	pthread_mutex_unlock(&e->pver_lock);
	return rc;
}

int
device_pversions_store(struct storage *st, const uint64_t v[STORAGE_PARTITIONS])
{
	struct dev_engine *e = st->priv;
	uint8_t *area;
	int rc;

	if (posix_memalign((void **)&area, DEVICE_IO_ALIGN, DEVICE_PMETA_SIZE) != 0)
		return -ENOMEM;
	pthread_mutex_lock(&e->pver_lock);
	/* The drop times come from the devices when nothing read them yet. */
	rc = e->pver_known ? 0 : pver_read_locked(st, e);
	if (rc != 0) {
		pthread_mutex_unlock(&e->pver_lock);
		free(area);
		return rc;
	}
	for (uint32_t p = 0; p < DEVICE_PMETA_SLOTS; p++)
		pver_set(e, p, v[p]);
	memset(e->pver_logged, 0, sizeof(e->pver_logged));
	e->pver_known = true;
	pver_encode(e, 0, DEVICE_PMETA_SLOTS, area);
	if (e->pver_image_ok)
		rc = pver_write_changed_locked(st, e, area);
	else
		rc = pver_write_locked(st, e, area, DEVICE_PMETA_SIZE, 0);
	pthread_mutex_unlock(&e->pver_lock);
	free(area);
	return rc;
}

/* Store one slot: version v, or (v 0, drop_ms not 0) the drop time. */
/* The slots a page write does not change come from the RAM table: read it
 * first if nothing has loaded or stored it yet.  0 or -errno. */
static int
pver_known_locked(struct storage *st, struct dev_engine *e)
{
	int rc;

	if (e->pver_known)
		return 0;
	rc = pver_read_locked(st, e);
	e->pver_known = rc == 0;
	return rc;
}

/* Slots [lo, hi) (whole pages) encoded into buf and written: the pages are
 * rewritten whole, so their slots are whole again. */
static int
pver_write_pages_locked(struct storage *st, struct dev_engine *e, uint32_t lo, uint32_t hi,
    uint8_t *buf)
{
	for (uint32_t p = lo; p < hi; p++)
		e->pver_logged[p / 64] &= ~(1ULL << (p % 64));
	pver_encode(e, lo, hi - lo, buf);
	return pver_write_locked(st, e, buf, (size_t)(hi - lo) * DEVICE_PMETA_SLOT,
	    (uint64_t)lo * DEVICE_PMETA_SLOT);
}

static int
pver_store_slot(struct storage *st, uint32_t pid, uint64_t v, uint64_t drop_ms)
{
	struct dev_engine *e = st->priv;
	uint32_t first = pid - pid % DEVICE_PMETA_PAGE_SLOTS;
	uint8_t *page;
	int rc = 0;

	if (pid >= STORAGE_PARTITIONS)
		return -EINVAL;
	if (posix_memalign((void **)&page, DEVICE_IO_ALIGN, DEVICE_HEADER_PAGE) != 0)
		return -ENOMEM;
	pthread_mutex_lock(&e->pver_lock);
	rc = pver_known_locked(st, e);
	if (rc == 0) {
		if (v == 0 && drop_ms != 0)
			pver_drop(e, pid, drop_ms);
		else
			pver_set(e, pid, v);
		rc = pver_write_pages_locked(st, e, first, first + DEVICE_PMETA_PAGE_SLOTS, page);
	}
	pthread_mutex_unlock(&e->pver_lock);
	free(page);
	return rc;
}

int
device_pversion_store_one(struct storage *st, uint32_t pid, uint64_t v)
{
	return pver_store_slot(st, pid, v, 0);
}

int
device_pversion_drop(struct storage *st, uint32_t pid, uint64_t drop_ms)
{
	return pver_store_slot(st, pid, 0, drop_ms != 0 ? drop_ms : 1);
}

/* The pages of the table that hold pids' slots, rewritten with version 0
 * and the drop time for each: one write of the span from the first page
 * to the last, one sync per device. */
int
device_pversions_drop(struct storage *st, const uint32_t *pids, unsigned n, uint64_t drop_ms)
{
	struct dev_engine *e = st->priv;
	uint32_t lo = STORAGE_PARTITIONS, hi = 0;
	uint8_t *area;
	int rc;

	if (posix_memalign((void **)&area, DEVICE_IO_ALIGN, DEVICE_PMETA_SIZE) != 0)
		return -ENOMEM;
	pthread_mutex_lock(&e->pver_lock);
	rc = pver_known_locked(st, e);
	if (rc == 0) {
		for (unsigned i = 0; i < n; i++) {
			uint32_t p = pids[i];

			pver_drop(e, p, drop_ms != 0 ? drop_ms : 1);
			lo = p < lo ? p : lo;
			hi = p > hi ? p : hi;
		}
		lo -= lo % DEVICE_PMETA_PAGE_SLOTS;
		hi = hi - hi % DEVICE_PMETA_PAGE_SLOTS + DEVICE_PMETA_PAGE_SLOTS;
		rc = pver_write_pages_locked(st, e, lo, hi, area);
	}
	pthread_mutex_unlock(&e->pver_lock);
	free(area);
	return rc;
}

int
device_pversions_cold_load(struct storage *st, struct dev_engine *e)
{
	int rc;

	/* Quiet: the first load (the cluster's) logs what is damaged. */
	pthread_mutex_lock(&e->pver_lock);
	e->pver_quiet = true;
	rc = pver_read_locked(st, e);
	e->pver_quiet = false;
	e->pver_known = rc == 0;
	pthread_mutex_unlock(&e->pver_lock);
	return rc;
}

int
device_pversions_erase(struct storage *st, struct device *d)
{
	uint8_t *area;
	int rc;

	if (posix_memalign((void **)&area, DEVICE_IO_ALIGN, DEVICE_PMETA_SIZE) != 0)
		return -ENOMEM;
	memset(area, 0, DEVICE_PMETA_SIZE);
	((struct dev_engine *)st->priv)->pver_image_ok = false;
	rc = pwrite_full(d->fd, area, DEVICE_PMETA_SIZE, DEVICE_PMETA_OFFSET);
	if (rc == 0 && fdatasync(d->fd) != 0)
		rc = -errno;
	if (rc != 0)
		log_error("device", "{%s} %s: clearing the partition versions failed: %s", st->ns_name,
		    d->path, recfs_strerror(rc));
	free(area);
	return rc;
}

int
device_pversions_upgrade(struct storage *st, struct dev_engine *e)
{
	uint8_t *area = NULL;
	int rc = 0;

	pthread_mutex_lock(&e->pver_lock);
	for (uint32_t i = 0; i < e->n && rc == 0; i++) {
		struct device *d = e->devs[i];

		if (d->hdr.version >= 3)
			continue;
		e->pver_image_ok = false;
		if (area == NULL) {
			rc = pver_known_locked(st, e);
			if (rc == 0 && posix_memalign((void **)&area, DEVICE_IO_ALIGN, DEVICE_PMETA_SIZE) != 0)
				rc = -ENOMEM;
			if (rc != 0)
				break;
			pver_encode(e, 0, DEVICE_PMETA_SLOTS, area);
		}
		rc = pwrite_full(d->fd, area, DEVICE_PMETA_SIZE, DEVICE_PMETA_OFFSET);
		if (rc == 0 && fdatasync(d->fd) != 0)
			rc = -errno;
		if (rc != 0)
			log_error("device", "{%s} %s: writing the partition versions in the format version 3 "
			    "area failed: %s", st->ns_name, d->path, recfs_strerror(rc));
	}
	pthread_mutex_unlock(&e->pver_lock);
	free(area);
	return rc;
}
