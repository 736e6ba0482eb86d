/*
 * fuzz_chunk_map.c - fuzz target for what the transaction layer reads back
 * of a large file (src/txn/chunk.c): a head's chunk map bin (stored bytes,
 * or a record a peer replicated or migrated) and a chunk record's key (the
 * reclaimer and recfs-check parse every key they meet), and a page of the
 * reclaimer's gather (another node's answer: held file ids and heads'
 * maps).  The first byte picks the decoder (mod 3: 0 the map, 1 the key,
 * 2 the page; the next byte of a page is the partition it was asked
 * from, x 16), the rest is the input.  A map that decodes keeps the
 * decoder's promises (a non-zero file id, as many chunks as the size
 * needs, no version past the commit number); a key that parses prints
 * back to the same bytes; a page that decodes names a next partition past
 * the one asked and no more ids than its bytes hold; every other input is
 * refused, never read outside the input (ASan).
 *
 * Built two ways: with clang -fsanitize=fuzzer by scripts/fuzz.sh (target
 * chunk_map), and with tests/fuzz/fuzz_driver.c as a plain program that
 * `make check` runs: the seeds below, then mutations of them.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "txn/chunk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t fuzz_seed(unsigned i, uint8_t *buf, size_t cap);
const char fuzz_target_name[] = "fuzz_chunk_map";

#define fuzz_assert(cond) do { \
		if (!(cond)) { \
			fprintf(stderr, "fuzz_chunk_map: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

static void
one_map(const uint8_t *p, size_t len)
{
	struct txn_chunk_map m;
	int rc = txn_chunk_map_decode(p, len, &m);

	fuzz_assert(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
	if (rc != 0)
		return;
	fuzz_assert(m.file_id != 0 && m.chunk_size != 0);
	fuzz_assert((uint64_t)m.n == m.size / m.chunk_size + (m.size % m.chunk_size != 0));
	fuzz_assert(len == 32 + 4 * (size_t)m.n);
	for (uint32_t i = 0; i < m.n; i++)
		fuzz_assert(m.versions[i] <= m.commit);
	txn_chunk_map_free(&m);
}

static void
one_key(const uint8_t *p, size_t len)
{
	char key[TXN_CHUNK_KEY_LEN + 1];
	uint64_t id;
	uint32_t index, version;

	if (!txn_chunk_key_parse((const char *)p, len, &id, &index, &version))
		return;
	fuzz_assert(id != 0 && len == TXN_CHUNK_KEY_LEN);
	txn_chunk_key(key, id, index, version);
	fuzz_assert(memcmp(key, p, len) == 0);
}

static void
one_page(const uint8_t *p, size_t len)
{
	uint32_t from, next;
	size_t ids, held;
	int rc;

	if (len < 1)
		return;
	from = (uint32_t)p[0] * 16;
	rc = txn_chunk_page_decode(p + 1, len - 1, from, &next, &ids, &held);
	fuzz_assert(rc == 0 || rc == -EBADMSG || rc == -ENOMEM || rc == -E2BIG);
	if (rc != 0)
		return;
	fuzz_assert(next > from && next <= 4096);
	fuzz_assert(held <= ids && ids <= (len - 1) / 8);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] % 3 == 0)
		one_map(data + 1, size - 1);
	else if (data[0] % 3 == 1)
		one_key(data + 1, size - 1);
	else
		one_page(data + 1, size - 1);
	return 0;
}

static void
put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A map of 3 chunks (one a hole), a chunk key, and a gather page asked
 * from partition 32: up to 4096, one held id, two heads (one of them the
 * held file's, 2 chunks; the other 1). */
size_t
fuzz_seed(unsigned i, uint8_t *buf, size_t cap)
{
	if (i == 0 && cap >= 1 + 32 + 12) {
		memset(buf, 0, 1 + 32 + 12);
		buf[0] = 0;
		memcpy(buf + 1, "RCM1", 4);
		put32(buf + 1 + 4, 0x1234567);      /* file id (low half) */
		put32(buf + 1 + 12, 1200000);       /* size (low half) */
		put32(buf + 1 + 20, 524288);        /* chunk size */
		put32(buf + 1 + 24, 5);             /* commit */
		put32(buf + 1 + 28, 3);             /* n */
		put32(buf + 1 + 32, 5);
		put32(buf + 1 + 40, 2);             /* chunk 1 is a hole */
		return 1 + 32 + 12;
	}
	if (i == 1 && cap >= 1 + TXN_CHUNK_KEY_LEN + 1) {
		buf[0] = 1;
		txn_chunk_key((char *)buf + 1, 0x3f9c0e7a12b4d5e6ull, 42, 7);
		return 1 + TXN_CHUNK_KEY_LEN;
	}
	if (i == 2 && cap >= 2 + 8 + 8 + 2 * 12 + 3 * 4) {
		uint8_t *p = buf + 2;

		buf[0] = 2;
		buf[1] = 2;                         /* asked from partition 32 */
		put32(p, 4096);
		put32(p + 4, 1);
		put64(p + 8, 0x77);                 /* held */
		put64(p + 16, 0x77);
		put32(p + 24, 2);
		put32(p + 28, 3);
		put32(p + 32, 0);
		put64(p + 36, 0x99);
		put32(p + 44, 1);
		put32(p + 48, 1);
		return 2 + 52;
	}
	return 0;
}
