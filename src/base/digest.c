/*
 * digest.c - RIPEMD-160 record digests (see digest.h).
 *
 * The digest must match Aerospike's byte for byte, so the same set and key
 * land in the same partition: RIPEMD-160 over the set name, one key type
 * byte, then the key bytes (docs/storage-format.md).
 *
 * OpenSSL's low-level RIPEMD160_Init/Update/Final is used although OpenSSL 3
 * deprecates it.  Measured on the build machine for a short set and key
 * (one 64-byte block): low-level ~210-250 ns, EVP with a fetched method and
 * a reused context ~340 ns, EVP with a context created per call ~750 ns.  The
 * digest is computed on every lookup by name, a 1M ops/s path, so the EVP
 * overhead is real.  The low-level context lives on the stack, which also
 * makes the function thread-safe with no shared state.
 * Rejected: a per-thread cached EVP context (still slower, and a thread-exit
 * destructor to free it); our own RIPEMD-160 (crypto code we would own).
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <openssl/ripemd.h>

#include "digest.h"

_Static_assert(RIPEMD160_DIGEST_LENGTH == DIGEST_SIZE, "digest is RIPEMD-160");

void
digest_compute(struct digest *out, const char *set, size_t set_len,
    const char *key, size_t key_len)
{
	digest_compute_typed(out, set, set_len, DIGEST_KEY_TYPE_STRING, key, key_len);
}

void
digest_compute_typed(struct digest *out, const char *set, size_t set_len,
    uint8_t key_type, const void *key, size_t key_len)
{
	RIPEMD160_CTX ctx;

	RIPEMD160_Init(&ctx);
	/* The null set contributes no bytes at all, not even a separator. */
	if (set_len > 0)
		RIPEMD160_Update(&ctx, set, set_len);
	RIPEMD160_Update(&ctx, &key_type, 1);
	if (key_len > 0)
		RIPEMD160_Update(&ctx, key, key_len);
	RIPEMD160_Final(out->bytes, &ctx);
}

void
digest_to_hex(const struct digest *d, char out[2 * DIGEST_SIZE + 1])
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < DIGEST_SIZE; i++) {
		out[2 * i] = hex[d->bytes[i] >> 4];
		out[2 * i + 1] = hex[d->bytes[i] & 0xf];
	}
	out[2 * DIGEST_SIZE] = '\0';
}

uint64_t
digest_inode(const struct digest *d)
{
	uint64_t ino = 0;

	/*
	 * Bytes 12..19 are independent of the partition (bytes 0..1) and the
	 * device choice (8..11), so inodes do not cluster by either.
	 */
	for (int i = 19; i >= 12; i--)
		ino = (ino << 8) | d->bytes[i];
	/*
	 * 0 is not a valid inode and 1 is the FUSE root.  Setting the top bit
	 * keeps the mapping stable; a clash with a record whose value really is
	 * 2^63 or 2^63+1 is as unlikely as any other 64-bit inode clash.
	 */
	if (ino < 2)
		ino |= UINT64_C(1) << 63;
	return ino;
}
