/*
 * fuzz_record.c - fuzz target for the flat record decoder.
 *
 * Each input runs twice.  First as given: check, verify and decode must
 * agree with one another and never touch a byte past the input.  Then
 * "resealed": magic, version (1 when the input's version byte is odd, else
 * 2), size, meta check, header check, end mark, CRC and padding are patched
 * to match the end offset, so the bytes reach the field parser; random bytes
 * would almost never pass the CRC, leaving the parser unexplored.
 *
 * Whatever decodes must encode back to exactly the same bytes (the format
 * is canonical), which also checks the encoder against the decoder; a
 * version 1 record encodes as version 2, which must decode to the same
 * record and encode back to itself.  The header check must accept every
 * record that decodes, and say what the decoder says.
 *
 * Built two ways: with clang -fsanitize=fuzzer by scripts/fuzz.sh, and with
 * tests/fuzz/fuzz_main.c as a plain program that `make check` runs.
 */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/crc32c.h"
#include "base/error.h"
#include "record/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void fuzz_record_counts(unsigned long *decoded, unsigned long *parsed);

static unsigned long fuzz_decoded; /* inputs that decoded, either pass */
static unsigned long fuzz_parsed;  /* inputs that reached the field parser */

#define fuzz_assert(cond) do { \
		if (!(cond)) { \
			fprintf(stderr, "fuzz_record: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

static uint32_t
load_u32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static void
store_u32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void
fuzz_decode(const uint8_t *buf, size_t avail)
{
	struct record r;
	uint32_t size = 0;
	int check, verify = 0, err;

	check = record_flat_check(buf, avail, &size);
	if (check == 0) {
		struct record_flat_header h;

		fuzz_assert(size >= RECORD_FLAT_MIN_SIZE && size <= avail && size % 16 == 0);
		verify = record_flat_verify(buf, size);
		/* What a scan does with a copy whose body may be damaged: the
		 * salvage reads only [0, E) and proves the name by the digest. */
		if (record_flat_header_check(buf, size, &h) == 0) {
			struct digest d;
			unsigned parts = record_flat_salvage(buf, &h, &r);

			fuzz_assert(h.size == size && h.end + 8 <= size);
			fuzz_assert(r.n_bins == 0 && r.generation == h.generation);
			if (parts & RECORD_SALVAGE_NAME) {
				digest_compute_typed(&d, r.set, r.set_len, r.key_type, r.key, r.key_len);
				fuzz_assert(memcmp(d.bytes, h.digest.bytes, DIGEST_SIZE) == 0);
			}
			fuzz_assert(!(parts & RECORD_SALVAGE_META) || (r.flags & RECORD_F_HAS_META));
			record_release(&r);
		}
	}
	err = record_flat_decode(buf, avail, &r);
	/* decode = check + verify + parse, so it fails the same way first. */
	if (check != 0) {
		fuzz_assert(check == RECFS_EFORMAT && err == check);
	} else if (verify != 0) {
		fuzz_assert(verify == RECFS_ECHECKSUM && err == verify);
	} else {
		fuzz_parsed++;
		fuzz_assert(err == 0 || err == RECFS_EFORMAT || err == -ENOMEM);
	}
	if (err != 0) {
		fuzz_assert(r.n_bins == 0 && r.bins == r.bins_inline);
		record_release(&r);
		return;
	}

	fuzz_decoded++;
	fuzz_assert(r.generation != 0 && (r.flags & ~RECORD_F_KNOWN) == 0);
	fuzz_assert(!(r.flags & RECORD_F_TOMBSTONE) || r.n_bins == 0);
	{
		struct record_flat_header h;
		int hc = record_flat_header_check(buf, avail, &h);

		fuzz_assert(hc == (buf[8] >= 2 ? 0 : RECFS_EVERSION));
		fuzz_assert(memcmp(h.digest.bytes, r.digest.bytes, DIGEST_SIZE) == 0);
		fuzz_assert(h.generation == r.generation && h.last_update_ms == r.last_update_ms);
		fuzz_assert(h.size == size && h.flags == r.flags && h.n_bins == r.n_bins);
	}
	if (buf[8] >= 2) {
		uint8_t *out = malloc(size);
		long n;

		fuzz_assert(record_flat_size(&r) == size);
		fuzz_assert(out != NULL);
		n = record_flat_encode(&r, out, size);
		fuzz_assert(n == (long)size);
		fuzz_assert(memcmp(out, buf, size) == 0);
		free(out);
	} else {
		/* Read old, write new. */
		size_t n2 = record_flat_size(&r);
		uint8_t *out = malloc(n2), *again = malloc(n2);
		struct record r2;

		fuzz_assert(out != NULL && again != NULL);
		fuzz_assert(record_flat_encode(&r, out, n2) == (long)n2 && out[8] == RECORD_FLAT_VERSION);
		fuzz_assert(record_flat_decode(out, n2, &r2) == 0);
		fuzz_assert(r2.n_bins == r.n_bins && r2.generation == r.generation &&
		    r2.key_len == r.key_len && r2.meta.atime_ns == 0 && r2.meta.ino == 0);
		fuzz_assert(record_flat_encode(&r2, again, n2) == (long)n2);
		fuzz_assert(memcmp(out, again, n2) == 0);
		record_release(&r2);
		free(again);
		free(out);
	}
	record_release(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;
	uint32_t end;
	uint64_t rec_size;

	fuzz_decode(data, size);

	if (size < RECORD_FLAT_MIN_SIZE)
		return 0;
	end = load_u32(data + 56);
	rec_size = ((uint64_t)end + 8 + RBLOCK_SIZE - 1) & ~(uint64_t)(RBLOCK_SIZE - 1);
	if (end < RECORD_FLAT_HEADER_SIZE || rec_size > size)
		return 0;
	copy = malloc(size);
	fuzz_assert(copy != NULL);
	memcpy(copy, data, size);
	store_u32(copy, RECORD_FLAT_MAGIC);
	store_u32(copy + 4, (uint32_t)rec_size);
	copy[8] = (data[8] & 1) ? 1 : 2;
	if (copy[8] == 2) {
		/* The meta check (layout in record.h), then the header check. */
		size_t meta = RECORD_FLAT_HEADER_SIZE + (size_t)copy[48] +
		    (copy[50] | (size_t)copy[51] << 8);

		if ((copy[9] & RECORD_F_HAS_META) && meta + 40 <= end)
			store_u32(copy + meta + 12, crc32c(crc32c(0, copy + RECORD_FLAT_HEADER_SIZE,
			    meta - RECORD_FLAT_HEADER_SIZE + 12), copy + meta + 16, 24));
		store_u32(copy + 60, crc32c(0, copy, 60));
	}
	store_u32(copy + end, RECORD_FLAT_END_MARK);
	store_u32(copy + end + 4, crc32c(0, copy, (size_t)end + 4));
	memset(copy + end + 8, 0, rec_size - end - 8);
	fuzz_decode(copy, size);
	free(copy);
	return 0;
}

void
fuzz_record_counts(unsigned long *decoded, unsigned long *parsed)
{
	*decoded = fuzz_decoded;
	*parsed = fuzz_parsed;
}
