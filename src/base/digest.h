/*
 * digest.h - record digests and partition ids (Aerospike-compatible).
 *
 * digest = RIPEMD-160(set name bytes || key type byte || key bytes); keys
 * from the mount are strings (type 3).  The namespace is not part of the
 * digest.  partition id = little-endian u32 of digest bytes 0..3 & 0xFFF,
 * so the same set and key land in the same partition as in Aerospike.
 */
#ifndef RECFS_BASE_DIGEST_H
#define RECFS_BASE_DIGEST_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define DIGEST_SIZE 20
#define PARTITION_COUNT 4096
#define DIGEST_KEY_TYPE_INTEGER 1
#define DIGEST_KEY_TYPE_STRING 3
#define DIGEST_KEY_TYPE_BLOB 4

struct digest {
	uint8_t bytes[DIGEST_SIZE];
};

/* Digest of a string key in a set (set_len 0 = the null set). */
void digest_compute(struct digest *out, const char *set, size_t set_len,
    const char *key, size_t key_len);

/* Digest with an explicit key type byte (integer keys: 8-byte big-endian value). */
void digest_compute_typed(struct digest *out, const char *set, size_t set_len,
    uint8_t key_type, const void *key, size_t key_len);

static inline uint32_t digest_partition(const struct digest *d)
{
	return ((uint32_t)d->bytes[0] | ((uint32_t)d->bytes[1] << 8)) & (PARTITION_COUNT - 1);
}

static inline int digest_compare(const struct digest *a, const struct digest *b)
{
	return memcmp(a->bytes, b->bytes, DIGEST_SIZE);
}

/* Little-endian u32 of bytes 8..11: picks the device or stripe for a record. */
static inline uint32_t digest_spread(const struct digest *d)
{
	return (uint32_t)d->bytes[8] | ((uint32_t)d->bytes[9] << 8) |
	    ((uint32_t)d->bytes[10] << 16) | ((uint32_t)d->bytes[11] << 24);
}

/* 40 lowercase hex characters plus NUL. */
void digest_to_hex(const struct digest *d, char out[2 * DIGEST_SIZE + 1]);

/* Stable 64-bit inode number from a digest (never 0 or 1). */
uint64_t digest_inode(const struct digest *d);

#endif
