/*
 * copy.h - copying large buffers into memory that is not read again soon.
 *
 * The memory engine's write blocks are filled in order over the whole of
 * data-size (docs/architecture.md, Storage): a record stored there lands
 * in memory no cache holds, and an ordinary copy first reads every
 * destination line into the cache (read for ownership) and then evicts it
 * again - about twice the memory traffic of the copy itself, and a
 * working set thrown out of the cache for bytes nobody reads next.
 * Non-temporal stores write whole lines straight to memory instead.
 */
#ifndef RECFS_BASE_COPY_H
#define RECFS_BASE_COPY_H

#include <stddef.h>

/* Copies with non-temporal stores below COPY_COLD_MIN bytes: not worth
 * it for short copies, whose partial lines would stall the stores. */
#define COPY_COLD_MIN (16 * 1024)

/*
 * memcpy(dst, src, n) for a destination that is not read again soon.
 * From COPY_COLD_MIN bytes on (x86-64) the whole 64-byte lines of dst are
 * written with non-temporal stores (SSE2, which every x86-64 has), the
 * partial lines at its ends by memcpy; the stores are fenced before it
 * returns, so another thread that is handed dst afterwards (by a lock or
 * an atomic) sees them.  Elsewhere, below COPY_COLD_MIN, and in sanitizer
 * builds (which check memcpy's ranges, not intrinsics): memcpy.
 */
void copy_to_cold(void *dst, const void *src, size_t n);

#endif
