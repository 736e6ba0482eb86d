/*
 * test_memory.c - the memory engine through the storage interface:
 * writes and reads, space accounting, ENOSPC with the defrag reserve, and
 * defragmentation moving only the records the owner still points at;
 * copy_to_cold, which copies records that arrive encoded into RAM.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/copy.h"
#include "base/digest.h"
#include "storage/storage.h"

#define N_RECORDS 3000
#define VALUE_LEN 1000

/* The test is the owner: a table of where each record's current copy is. */
struct owner {
	pthread_mutex_t lock;
	storage_loc loc[N_RECORDS];
	struct digest digest[N_RECORDS];
	int relocated, stale;
};

static struct owner own = { .lock = PTHREAD_MUTEX_INITIALIZER };
static uint8_t value[VALUE_LEN];

static int
find_by_digest(const struct digest *d)
{
	for (int i = 0; i < N_RECORDS; i++)
		if (digest_compare(&own.digest[i], d) == 0)
			return i;
	return -1;
}

static int
test_relocate(void *arg, struct storage *st, const uint8_t *flat, uint32_t size, storage_loc old)
{
	int i, rc = 0;
	storage_loc new_loc;

	pthread_mutex_lock(&own.lock);
	i = find_by_digest(record_flat_digest(flat));
	if (i < 0 || own.loc[i] != old) {
		own.stale++;
		goto out;
	}
	rc = storage_defrag_copy(st, flat, size, &new_loc);
	if (rc == 0) {
		own.loc[i] = new_loc;
		storage_free(st, old);
		own.relocated++;
		rc = 1;
	}
out:
	pthread_mutex_unlock(&own.lock);
	return rc;
}

/* What the defrag thread's test_relocate counts and moves, read under the
 * lock it writes them under (TSan saw the plain reads race). */
static void
owner_counts(int *relocated, int *stale)
{
	pthread_mutex_lock(&own.lock);
	*relocated = own.relocated;
	*stale = own.stale;
	pthread_mutex_unlock(&own.lock);
}

static uint32_t
record_size_of(int i)
{
	pthread_mutex_lock(&own.lock);
	uint32_t size = storage_loc_size(own.loc[i]);
	pthread_mutex_unlock(&own.lock);
	return size;
}

static struct storage_config
small_config(uint64_t data_size)
{
	struct storage_config c = { 0 };

	c.type = STORAGE_MEMORY;
	c.data_size = data_size;
	c.write_block_size = 128 * 1024;
	c.defrag_lwm_pct = 50;
	c.defrag_sleep_us = 0;
	return c;
}

static void
make_record(struct record *r, int i, struct bin *b)
{
	static char keys[N_RECORDS][16];
	int n = snprintf(keys[i], sizeof(keys[i]), "k%d", i);

	record_init(r);
	digest_compute(&r->digest, "s", 1, keys[i], (size_t)n);
	r->generation = 1;
	r->last_update_ms = 1000;
	r->key_type = DIGEST_KEY_TYPE_STRING;
	r->set = "s";
	r->set_len = 1;
	r->key = keys[i];
	r->key_len = (uint16_t)n;
	memset(b, 0, sizeof(*b));
	memcpy(b->name, "data", 4);
	b->name_len = 4;
	b->type = BIN_BLOB;
	b->v.bytes.data = value;
	b->v.bytes.len = VALUE_LEN;
	r->bins = b;
	r->n_bins = 1;
}

static void
write_one(struct storage *st, int i)
{
	struct record r;
	struct bin b;
	storage_loc loc;

	make_record(&r, i, &b);
	value[0] = (uint8_t)i;
	assert_int_equal(storage_write(st, &r, (uint32_t)record_flat_size(&r), &loc), 0);
	pthread_mutex_lock(&own.lock);
	if (own.loc[i] != 0)
		storage_free(st, own.loc[i]);
	own.loc[i] = loc;
	own.digest[i] = r.digest;
	pthread_mutex_unlock(&own.lock);
}

static void
check_one(struct storage *st, int i)
{
	uint8_t buf[2048];
	struct record r;

	pthread_mutex_lock(&own.lock);
	storage_loc loc = own.loc[i];
	assert_int_equal(storage_read(st, loc, buf), 0);
	pthread_mutex_unlock(&own.lock);
	assert_int_equal(record_flat_decode(buf, storage_loc_size(loc), &r), 0);
	assert_int_equal(digest_compare(&r.digest, &own.digest[i]), 0);
	assert_int_equal(r.n_bins, 1);
	assert_int_equal(r.bins[0].v.bytes.len, VALUE_LEN);
	assert_int_equal(r.bins[0].v.bytes.data[0], (uint8_t)i);
	record_release(&r);
}

static void
test_memory_defrag_moves_only_live_records(void **state)
{
	struct storage_config cfg = small_config(32u << 20);
	struct storage_owner o = { .arg = NULL, .relocate = test_relocate };
	struct storage *st;
	struct storage_stats ss;
	int relocated = 0, stale = 0;

	memset(own.loc, 0, sizeof(own.loc));
	assert_int_equal(storage_open(&st, "t", &cfg, &o), 0);
	for (int i = 0; i < N_RECORDS; i++)
		write_one(st, i);
	storage_stats(st, &ss);
	assert_int_equal(ss.used_bytes, (uint64_t)N_RECORDS * record_size_of(0));
	/* Overwrite 3 of every 4 records: old wblocks fall to ~25% live. */
	for (int i = 0; i < N_RECORDS; i++)
		if (i % 4 != 0)
			write_one(st, i);
	/* Bounded wait for defrag to drain its queue. */
	for (int tries = 0; tries < 500; tries++) {
		storage_stats(st, &ss);
		owner_counts(&relocated, &stale);
		if (ss.defrag_q == 0 && ss.defrag_reads > 0 && relocated > 0)
			break;
		usleep(10000);
	}
	storage_stats(st, &ss);
	owner_counts(&relocated, &stale);
	printf("defrag: %llu wblocks read, %d records moved, %d stale copies skipped\n",
	    (unsigned long long)ss.defrag_reads, relocated, stale);
	assert_true(ss.defrag_reads > 0);
	assert_true(relocated > 0);
	assert_int_equal(ss.defrag_q, 0);
	/* Live bytes equal exactly the current copies; every record intact. */
	assert_int_equal(ss.used_bytes, (uint64_t)N_RECORDS * record_size_of(0));
	for (int i = 0; i < N_RECORDS; i++)
		check_one(st, i);
	storage_close(st, true);
}

static void
test_memory_full_gives_enospc_and_frees_recover(void **state)
{
	struct storage_config cfg = small_config(2u << 20);  /* 16 wblocks of 128K */
	struct storage_owner o = { .arg = NULL, .relocate = test_relocate };
	struct storage *st;
	int written = 0, rc = 0;

	memset(own.loc, 0, sizeof(own.loc));
	assert_int_equal(storage_open(&st, "t", &cfg, &o), 0);
	for (int i = 0; i < N_RECORDS; i++) {
		struct record r;
		struct bin b;
		storage_loc loc;

		make_record(&r, i, &b);
		value[0] = (uint8_t)i;
		pthread_mutex_lock(&own.lock);
		rc = storage_write(st, &r, (uint32_t)record_flat_size(&r), &loc);
		if (rc == 0) {
			own.loc[i] = loc;
			own.digest[i] = r.digest;
		}
		pthread_mutex_unlock(&own.lock);
		if (rc != 0)
			break;
		written++;
	}
	assert_int_equal(rc, -ENOSPC);
	/* 16 wblocks less the reserve of 2, ~125 records each. */
	assert_true(written > 1500 && written < 1800);
	/* What was stored is intact. */
	for (int i = 0; i < written; i++)
		check_one(st, i);
	/* Freeing space lets writes resume (under the owner lock: defrag may
	 * be moving these very records). */
	pthread_mutex_lock(&own.lock);
	for (int i = 0; i < written; i++) {
		storage_free(st, own.loc[i]);
		own.loc[i] = 0;
	}
	pthread_mutex_unlock(&own.lock);
	write_one(st, 0);
	check_one(st, 0);
	storage_close(st, true);
}

static void
test_memory_record_over_max_size_is_efbig(void **state)
{
	struct storage_config cfg = small_config(8u << 20);
	struct storage_owner o = { .relocate = test_relocate };
	struct storage *st;
	struct record r;
	struct bin b;
	storage_loc loc;
	static uint8_t big[200 * 1024];

	assert_int_equal(storage_open(&st, "t", &cfg, &o), 0);
	make_record(&r, 1, &b);
	b.v.bytes.data = big;
	b.v.bytes.len = sizeof(big);
	assert_int_equal(storage_write(st, &r, (uint32_t)record_flat_size(&r), &loc), -EFBIG);
	storage_close(st, false);
}

/* copy_to_cold copies exactly n bytes, whatever the alignment of either
 * side and the partial lines at the ends, below and above COPY_COLD_MIN,
 * and writes nothing past dst + n. */
static void
test_copy_to_cold_copies_exactly(void **state)
{
	(void)state;
	size_t cap = 3 * COPY_COLD_MIN + 256;
	uint8_t *src = malloc(cap), *dst = malloc(cap + 128);
	const size_t sizes[] = { 0, 1, 63, 64, 1000, COPY_COLD_MIN - 1, COPY_COLD_MIN,
		COPY_COLD_MIN + 1, 2 * COPY_COLD_MIN + 77, 3 * COPY_COLD_MIN };

	assert_non_null(src);
	assert_non_null(dst);
	for (size_t i = 0; i < cap; i++)
		src[i] = (uint8_t)(i * 131 + 7);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++)
		for (size_t doff = 0; doff < 64; doff += 13)
			for (size_t soff = 0; soff < 64; soff += 29) {
				size_t n = sizes[k];

				memset(dst, 0xa5, cap + 128);
				copy_to_cold(dst + doff, src + soff, n);
				assert_memory_equal(dst + doff, src + soff, n);
				for (size_t j = 0; j < doff; j++)
					assert_int_equal(dst[j], 0xa5);
				for (size_t j = doff + n; j < cap + 128; j++)
					assert_int_equal(dst[j], 0xa5);
			}
	free(src);
	free(dst);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_memory_defrag_moves_only_live_records),
		cmocka_unit_test(test_memory_full_gives_enospc_and_frees_recover),
		cmocka_unit_test(test_memory_record_over_max_size_is_efbig),
		cmocka_unit_test(test_copy_to_cold_copies_exactly),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
