/*
 * test_record.c - the record model and its flat format.
 *
 * Buffers handed to the decoder are allocated to their exact size so that
 * ASan builds catch any read past the end.  Tests that plant a specific
 * defect re-seal the CRC afterwards, so the decoder's structural checks are
 * what rejects the bytes, not the checksum.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/crc32c.h"
#include "base/digest.h"
#include "base/error.h"
#include "record/record.h"

/* Header offsets, from the layout table in record.h. */
#define OFF_SIZE 4
#define OFF_VERSION 8
#define OFF_FLAGS 9
#define OFF_GENERATION 10
#define OFF_TTL 44
#define OFF_SET_LEN 48
#define OFF_KEY_TYPE 49
#define OFF_KEY_LEN 50
#define OFF_N_BINS 52
#define OFF_RESERVED_1 54
#define OFF_END 56
#define OFF_RESERVED_2 60

static uint8_t blob_bytes[300];

static uint32_t
rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static void
wr16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}

static void
wr32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

/* Recompute end mark and CRC after a deliberate edit of the bytes. */
static void
reseal(uint8_t *buf)
{
	uint32_t end = rd32(buf + OFF_END);

	wr32(buf + end, RECORD_FLAT_END_MARK);
	wr32(buf + end + 4, crc32c(0, buf, end + 4));
}

/*
 * A record with n bins cycling through every type, optional set and meta.
 * Bins of more than RECORD_BINS_INLINE go to the heap: release afterwards.
 */
static void
make_record(struct record *r, int n_bins, bool with_set, bool with_meta, int32_t ttl,
    uint32_t void_time)
{
	static const char key[] = "photo-2024.jpg";

	record_init(r);
	digest_compute(&r->digest, with_set ? "pics" : NULL, with_set ? 4 : 0, key,
	    sizeof(key) - 1);
	r->generation = 7;
	r->key_type = DIGEST_KEY_TYPE_STRING;
	r->last_update_ms = 0x123456789aULL;
	r->void_time = void_time;
	r->ttl = ttl;
	if (with_set) {
		r->set = "pics";
		r->set_len = 4;
	}
	r->key = key;
	r->key_len = sizeof(key) - 1;
	if (with_meta) {
		r->flags |= RECORD_F_HAS_META;
		r->meta.mode = 0644;
		r->meta.uid = 1000;
		r->meta.gid = 100;
		r->meta.mtime_ns = 1700000000123456789LL;
	}
	assert_int_equal(record_bins_reserve(r, (size_t)n_bins), 0);
	for (int i = 0; i < n_bins; i++) {
		struct bin *b = &r->bins[i];

		memset(b, 0, sizeof(*b));
		b->name_len = (uint8_t)snprintf(b->name, sizeof(b->name), "bin%d", i);
		b->type = (uint8_t)(BIN_INTEGER + i % 4);
		switch (b->type) {
		case BIN_INTEGER:
			b->v.integer = i % 8 == 0 ? INT64_MIN + i : -(int64_t)i * 1000003;
			break;
		case BIN_DOUBLE:
			b->v.dbl = i % 3 == 0 ? -0.0 : i * 3.25;
			break;
		case BIN_STRING:
			b->v.bytes.data = (const uint8_t *)"hello, record";
			b->v.bytes.len = (uint32_t)(i % 14);
			break;
		case BIN_BLOB:
			b->v.bytes.data = blob_bytes;
			b->v.bytes.len = (uint32_t)(i * 7 % 300);
			break;
		}
		r->n_bins = (uint16_t)(i + 1);
	}
}

static void
assert_bytes_equal(const void *a, const void *b, size_t n)
{
	if (n > 0)
		assert_memory_equal(a, b, n);
}

static void
assert_records_equal(const struct record *a, const struct record *b)
{
	assert_memory_equal(a->digest.bytes, b->digest.bytes, DIGEST_SIZE);
	assert_int_equal(a->generation, b->generation);
	assert_int_equal(a->flags, b->flags);
	assert_int_equal(a->key_type, b->key_type);
	assert_int_equal(a->last_update_ms, b->last_update_ms);
	assert_int_equal(a->void_time, b->void_time);
	assert_int_equal(a->ttl, b->ttl);
	assert_int_equal(a->set_len, b->set_len);
	assert_bytes_equal(a->set, b->set, a->set_len);
	assert_int_equal(a->key_len, b->key_len);
	assert_bytes_equal(a->key, b->key, a->key_len);
	if (a->flags & RECORD_F_HAS_META) {
		assert_int_equal(a->meta.mode, b->meta.mode);
		assert_int_equal(a->meta.uid, b->meta.uid);
		assert_int_equal(a->meta.gid, b->meta.gid);
		assert_int_equal(a->meta.mtime_ns, b->meta.mtime_ns);
	}
	assert_int_equal(a->n_bins, b->n_bins);
	for (int i = 0; i < a->n_bins; i++) {
		const struct bin *x = &a->bins[i], *y = &b->bins[i];

		assert_int_equal(x->name_len, y->name_len);
		assert_memory_equal(x->name, y->name, x->name_len);
		assert_int_equal(y->name[y->name_len], '\0');
		assert_int_equal(x->type, y->type);
		if (x->type == BIN_INTEGER || x->type == BIN_DOUBLE) {
			/* Bits, not ==: -0.0 and NaN payloads must survive. */
			assert_memory_equal(&x->v.integer, &y->v.integer, 8);
		} else {
			assert_int_equal(x->v.bytes.len, y->v.bytes.len);
			assert_bytes_equal(x->v.bytes.data, y->v.bytes.data, x->v.bytes.len);
		}
	}
}

/* Encode r into an exact-size heap buffer; returns it, size in *size. */
static uint8_t *
encode_exact(const struct record *r, size_t *size)
{
	size_t n = record_flat_size(r);
	uint8_t *buf = malloc(n);
	long got;

	assert_non_null(buf);
	memset(buf, 0xa5, n); /* padding must be zeroed by encode, not by us */
	got = record_flat_encode(r, buf, n);
	assert_int_equal(got, (long)n);
	assert_int_equal(n % RBLOCK_SIZE, 0);
	assert_true(n >= RECORD_FLAT_MIN_SIZE);
	*size = n;
	return buf;
}

static void
assert_round_trip(const struct record *r)
{
	struct record d;
	size_t n;
	uint8_t *buf = encode_exact(r, &n);
	uint8_t *again;
	uint32_t size = 0;

	assert_int_equal(record_flat_check(buf, n, &size), 0);
	assert_int_equal(size, n);
	assert_int_equal(record_flat_verify(buf, size), 0);
	assert_int_equal(record_flat_decode(buf, n, &d), 0);
	assert_records_equal(r, &d);
	assert_memory_equal(record_flat_digest(buf)->bytes, r->digest.bytes, DIGEST_SIZE);
	/* The format is canonical: re-encoding gives the same bytes. */
	assert_int_equal(record_flat_size(&d), n);
	again = malloc(n);
	assert_non_null(again);
	assert_int_equal(record_flat_encode(&d, again, n), (long)n);
	assert_memory_equal(buf, again, n);
	free(again);
	record_release(&d);
	free(buf);
}

/* ---- round trips ------------------------------------------------------- */

static void
test_record_round_trips_every_shape(void **state)
{
	static const int bins[] = { 0, 1, 4, 5, 100 };
	static const int32_t ttls[] = { RECORD_TTL_DEFAULT, RECORD_TTL_NEVER, 86400 };
	static const uint32_t voids[] = { 0, 1, 0xfffffffeu };

	(void)state;
	for (size_t b = 0; b < sizeof(bins) / sizeof(bins[0]); b++)
		for (int set = 0; set < 2; set++)
			for (int meta = 0; meta < 2; meta++)
				for (size_t t = 0; t < 3; t++)
					for (size_t v = 0; v < 3; v++) {
						struct record r;

						make_record(&r, bins[b], set, meta, ttls[t], voids[v]);
						assert_round_trip(&r);
						record_release(&r);
					}
}

static void
test_record_round_trips_edge_values(void **state)
{
	static const uint8_t empty_blob[1];
	char set[RECORD_SET_MAX], key[RECORD_KEY_MAX];
	struct record r;

	(void)state;
	make_record(&r, 4, true, true, INT32_MAX, UINT32_MAX);
	r.generation = UINT16_MAX;
	r.last_update_ms = UINT64_MAX;
	r.meta.mode = 07777;
	r.meta.uid = UINT32_MAX;
	r.meta.mtime_ns = INT64_MIN;
	r.flags |= RECORD_F_SET_MARKER;
	r.bins[0].v.integer = INT64_MAX;
	r.bins[1].v.dbl = nan("0x5a5a");
	r.bins[2].v.bytes.len = 0;
	r.bins[2].v.bytes.data = NULL;
	r.bins[3].v.bytes.len = 0;
	r.bins[3].v.bytes.data = empty_blob;
	/* Longest set, key and bin name. */
	memset(set, 's', sizeof(set));
	memset(key, 'k', sizeof(key));
	r.set = set;
	r.set_len = RECORD_SET_MAX;
	r.key = key;
	r.key_len = RECORD_KEY_MAX;
	memcpy(r.bins[0].name, "fifteen-chars-x", 16);
	r.bins[0].name_len = RECORD_BIN_NAME_MAX;
	{
		/* An empty-bytes value decodes with data NULL: compare by hand. */
		size_t n;
		uint8_t *buf = encode_exact(&r, &n);
		struct record d;

		assert_int_equal(record_flat_decode(buf, n, &d), 0);
		assert_int_equal(d.bins[3].v.bytes.len, 0);
		r.bins[3].v.bytes.data = NULL;
		assert_records_equal(&r, &d);
		record_release(&d);
		free(buf);
	}
	assert_round_trip(&r);
	record_release(&r);
}

static void
test_record_tombstone_round_trips_with_no_bins(void **state)
{
	struct record r;

	(void)state;
	make_record(&r, 0, true, false, 0, 0);
	r.flags |= RECORD_F_TOMBSTONE;
	assert_round_trip(&r);
	assert_int_equal(record_flat_size(&r), 96); /* 64 + set 4 + key 14 + 8, rounded */
	record_release(&r);

	/* A tombstone cannot carry bins, in either direction. */
	make_record(&r, 2, false, false, 0, 0);
	r.flags |= RECORD_F_TOMBSTONE;
	{
		uint8_t buf[256], *enc;
		struct record d;
		size_t n;

		assert_int_equal(record_flat_encode(&r, buf, sizeof(buf)), -EINVAL);
		r.flags &= (uint8_t)~RECORD_F_TOMBSTONE;
		enc = encode_exact(&r, &n);

		enc[OFF_FLAGS] |= RECORD_F_TOMBSTONE;
		reseal(enc);
		assert_int_equal(record_flat_decode(enc, n, &d), RECFS_EFORMAT);
		free(enc);
	}
	record_release(&r);
}

static void
test_record_minimal_is_80_bytes(void **state)
{
	struct record r;
	uint8_t buf[RECORD_FLAT_MIN_SIZE];
	struct record d;

	(void)state;
	record_init(&r);
	r.generation = 1;
	assert_int_equal(record_flat_size(&r), RECORD_FLAT_MIN_SIZE);
	assert_int_equal(record_flat_encode(&r, buf, sizeof(buf)), RECORD_FLAT_MIN_SIZE);
	assert_int_equal(rd32(buf + OFF_END), 64);
	assert_int_equal(record_flat_decode(buf, sizeof(buf), &d), 0);
	assert_null(d.set);
	assert_null(d.key);
	assert_int_equal(d.n_bins, 0);
	record_release(&d);
}

static void
test_record_with_32767_bins_round_trips_and_32768_is_refused(void **state)
{
	struct record r;
	size_t n;
	uint8_t *buf;

	(void)state;
	record_init(&r);
	r.generation = 1;
	assert_int_equal(record_bins_reserve(&r, RECORD_BINS_MAX), 0);
	for (int i = 0; i < RECORD_BINS_MAX; i++) {
		struct bin *b = &r.bins[i];

		b->name_len = (uint8_t)snprintf(b->name, sizeof(b->name), "x%d", i);
		b->type = BIN_INTEGER;
		b->v.integer = i;
	}
	r.n_bins = RECORD_BINS_MAX;
	assert_round_trip(&r);
	assert_non_null(record_bin_find(&r, "x32766", 6));
	assert_int_equal(record_bin_find(&r, "x32766", 6)->v.integer, 32766);

	/* One more bin: the encoder refuses, and so does the decoder. */
	buf = encode_exact(&r, &n);
	assert_int_equal(record_bins_reserve(&r, RECORD_BINS_MAX + 1), -EINVAL);
	r.n_bins = RECORD_BINS_MAX + 1; /* lie: the array only has 32767 */
	assert_int_equal(record_flat_encode(&r, buf, n), -EINVAL);
	r.n_bins = RECORD_BINS_MAX;
	{
		struct record d;

		wr16(buf + OFF_N_BINS, RECORD_BINS_MAX + 1);
		reseal(buf);
		assert_int_equal(record_flat_decode(buf, n, &d), RECFS_EFORMAT);
	}
	free(buf);
	record_release(&r);
}

/* ---- corruption -------------------------------------------------------- */

static void
assert_every_byte_flip_rejected(const struct record *r, bool all_masks)
{
	size_t n;
	uint8_t *buf = encode_exact(r, &n);
	static const uint8_t masks[] = { 0x01, 0x02, 0x10, 0x80, 0xff, 0x5a };

	for (size_t i = 0; i < n; i++) {
		int n_masks = all_masks ? 255 : (int)sizeof(masks);

		for (int m = 0; m < n_masks; m++) {
			uint8_t mask = all_masks ? (uint8_t)(m + 1) : masks[m];
			struct record d;
			uint32_t size;
			int check;

			buf[i] ^= mask;
			check = record_flat_check(buf, n, &size);
			if (check == 0)
				assert_int_equal(size, n); /* only E may move within its rblock */
			assert_true(check != 0 || record_flat_verify(buf, size) != 0);
			assert_int_not_equal(record_flat_decode(buf, n, &d), 0);
			buf[i] ^= mask;
		}
	}
	free(buf);
}

static void
test_record_every_single_byte_corruption_is_rejected(void **state)
{
	struct record r;

	(void)state;
	make_record(&r, 0, false, false, 0, 0); /* 96 bytes with padding */
	assert_every_byte_flip_rejected(&r, true);
	record_release(&r);
	make_record(&r, 5, true, true, -1, 99);
	assert_every_byte_flip_rejected(&r, true);
	record_release(&r);
	make_record(&r, 100, true, true, 3600, 1234);
	assert_every_byte_flip_rejected(&r, false);
	record_release(&r);
	make_record(&r, 0, true, false, 0, 0);
	r.flags |= RECORD_F_TOMBSTONE;
	assert_every_byte_flip_rejected(&r, true);
	record_release(&r);
}

static void
test_record_truncated_buffers_are_rejected(void **state)
{
	struct record r;
	size_t n;
	uint8_t *full;

	(void)state;
	make_record(&r, 5, true, true, 0, 0);
	full = encode_exact(&r, &n);
	for (size_t avail = 0; avail < n; avail++) {
		/* Exact-size copy: ASan flags any read past avail. */
		uint8_t *cut = malloc(avail ? avail : 1);
		struct record d;
		uint32_t size;

		memcpy(cut, full, avail);
		assert_int_equal(record_flat_check(cut, avail, &size), RECFS_EFORMAT);
		assert_int_equal(record_flat_decode(cut, avail, &d), RECFS_EFORMAT);
		free(cut);
	}
	free(full);
	record_release(&r);
}

static void
test_record_bad_header_fields_are_format_errors(void **state)
{
	/* size: not a multiple of 16, under the minimum, past avail. */
	static const uint32_t bad_sizes[] = { 0, 8, 64, 79, 81, 95, 97, 1u << 31, UINT32_MAX };
	/* end offset: before the body, past the record, huge. */
	static const uint32_t bad_ends[] = { 0, 63, 200, 0xfffffff8u, UINT32_MAX };
	struct record r, d;
	size_t n;
	uint8_t *buf, *big;
	uint32_t size, good_end;

	(void)state;
	make_record(&r, 1, true, false, 0, 0);
	buf = encode_exact(&r, &n);

	buf[0] ^= 1; /* magic */
	assert_int_equal(record_flat_check(buf, n, &size), RECFS_EFORMAT);
	assert_int_equal(record_flat_decode(buf, n, &d), RECFS_EFORMAT);
	buf[0] ^= 1;

	buf[OFF_VERSION] = RECORD_FLAT_VERSION + 1;
	reseal(buf);
	assert_int_equal(record_flat_decode(buf, n, &d), RECFS_EFORMAT);
	buf[OFF_VERSION] = RECORD_FLAT_VERSION;
	reseal(buf);
	assert_int_equal(record_flat_decode(buf, n, &d), 0);
	record_release(&d);

	for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
		wr32(buf + OFF_SIZE, bad_sizes[i]);
		reseal(buf);
		assert_int_equal(record_flat_check(buf, n, &size), RECFS_EFORMAT);
		assert_int_equal(record_flat_decode(buf, n, &d), RECFS_EFORMAT);
	}
	wr32(buf + OFF_SIZE, (uint32_t)n + 16);
	reseal(buf);
	big = calloc(1, n + 16);
	memcpy(big, buf, n);
	/* Readable, but larger than E implies: slack is refused. */
	assert_int_equal(record_flat_check(big, n + 16, &size), RECFS_EFORMAT);
	assert_int_equal(record_flat_decode(big, n + 16, &d), RECFS_EFORMAT);
	free(big);
	wr32(buf + OFF_SIZE, (uint32_t)n);
	reseal(buf);

	good_end = rd32(buf + OFF_END);
	for (size_t i = 0; i < sizeof(bad_ends) / sizeof(bad_ends[0]); i++) {
		wr32(buf + OFF_END, bad_ends[i]);
		assert_int_equal(record_flat_check(buf, n, &size), RECFS_EFORMAT);
		assert_int_equal(record_flat_decode(buf, n, &d), RECFS_EFORMAT);
		/* verify re-bounds E itself, for callers that skip the check */
		assert_int_equal(record_flat_verify(buf, (uint32_t)n), RECFS_ECHECKSUM);
	}
	wr32(buf + OFF_END, good_end);
	assert_int_equal(record_flat_decode(buf, n, &d), 0);
	record_release(&d);

	/* CRC and end mark mismatches are checksum errors. */
	buf[good_end] ^= 0x40;
	assert_int_equal(record_flat_verify(buf, (uint32_t)n), RECFS_ECHECKSUM);
	assert_int_equal(record_flat_decode(buf, n, &d), RECFS_ECHECKSUM);
	buf[good_end] ^= 0x40;
	buf[good_end + 5] ^= 0x01;
	assert_int_equal(record_flat_decode(buf, n, &d), RECFS_ECHECKSUM);
	buf[good_end + 5] ^= 0x01;
	buf[70] ^= 0x01; /* body byte under the CRC */
	assert_int_equal(record_flat_decode(buf, n, &d), RECFS_ECHECKSUM);
	buf[70] ^= 0x01;
	assert_int_equal(record_flat_decode(buf, n, &d), 0);
	record_release(&d);

	free(buf);
	record_release(&r);
}

/* Offsets into the body of make_record(5 bins, set, meta). */
#define BODY (64 + 4 + 14)           /* after set "pics" and the key */
#define BIN0 (BODY + 24)             /* first bin: "bin0", integer */
#define BIN2 (BIN0 + 1 + 4 + 1 + 8 + 1 + 4 + 1 + 8) /* "bin2", string */

/* One planted defect: store value (width bytes, little-endian) at off. */
struct planted_defect {
	const char *what;
	size_t off;
	int width;
	uint32_t value;
};

static const struct planted_defect planted_defects[] = {
	{ "unknown flag bit", OFF_FLAGS, 1, RECORD_F_HAS_META | 0x08 },
	{ "tombstone with bins", OFF_FLAGS, 1, RECORD_F_HAS_META | RECORD_F_TOMBSTONE },
	{ "meta flag cleared, meta bytes left", OFF_FLAGS, 1, 0 },
	{ "generation 0", OFF_GENERATION, 2, 0 },
	{ "set length 64", OFF_SET_LEN, 1, 64 },
	{ "set length 255", OFF_SET_LEN, 1, 255 },
	{ "key length 256", OFF_KEY_LEN, 2, 256 },
	{ "key length past E", OFF_KEY_LEN, 2, 250 },
	{ "key type 5", OFF_KEY_TYPE, 1, 5 },
	{ "ttl -2", OFF_TTL, 4, (uint32_t)-2 },
	{ "first reserved field", OFF_RESERVED_1 + 1, 1, 1 },
	{ "second reserved field", OFF_RESERVED_2 + 3, 1, 0x80 },
	{ "one bin more than stored", OFF_N_BINS, 2, 6 },
	{ "one bin fewer than stored", OFF_N_BINS, 2, 4 },
	{ "n_bins far past E", OFF_N_BINS, 2, RECORD_BINS_MAX },
	{ "file type bits in mode", BODY, 4, 0100644 },
	{ "meta reserved field", BODY + 12, 1, 1 },
	{ "bin name length 0", BIN0, 1, 0 },
	{ "bin name length 16", BIN0, 1, 16 },
	{ "bin name length 15 runs into the value", BIN0, 1, 15 },
	{ "NUL in a bin name", BIN0 + 2, 1, 0 },
	{ "bin type 0", BIN0 + 5, 1, 0 },
	{ "bin type 5", BIN0 + 5, 1, 5 },
	{ "string length past E", BIN2 + 6, 4, 10000 },
	{ "string length 4 GiB", BIN2 + 6, 4, UINT32_MAX },
	{ "string length short: bins end before E", BIN2 + 6, 4, 1 },
};

static void
test_record_malformed_fields_are_format_errors(void **state)
{
	struct record r;
	size_t n;
	uint8_t *buf;

	(void)state;
	make_record(&r, 5, true, true, 0, 0);
	/* The offsets above must point where we think they do. */
	buf = encode_exact(&r, &n);
	assert_int_equal(buf[BIN0], 4);
	assert_memory_equal(buf + BIN0 + 1, "bin0", 4);
	assert_int_equal(buf[BIN2], 4);
	assert_memory_equal(buf + BIN2 + 1, "bin2", 4);
	assert_int_equal(buf[BIN2 + 5], BIN_STRING);
	assert_int_equal(rd32(buf + BIN2 + 6), 2);
	free(buf);

	for (size_t i = 0; i < sizeof(planted_defects) / sizeof(planted_defects[0]); i++) {
		const struct planted_defect *p = &planted_defects[i];
		struct record d;
		uint32_t size;

		buf = encode_exact(&r, &n);
		for (int k = 0; k < p->width; k++)
			buf[p->off + (size_t)k] = (uint8_t)(p->value >> (8 * k));
		reseal(buf);
		/* The cheap checks pass: the parser has to catch it. */
		assert_int_equal(record_flat_check(buf, n, &size), 0);
		assert_int_equal(record_flat_verify(buf, size), 0);
		if (record_flat_decode(buf, n, &d) != RECFS_EFORMAT)
			fail_msg("planted defect not caught: %s", p->what);
		assert_int_equal(d.n_bins, 0); /* failure leaves r released */
		record_release(&d);
		free(buf);
	}
	record_release(&r);
}

static void
test_record_end_offset_must_close_the_bins(void **state)
{
	struct record r, d;
	size_t n;
	uint8_t *buf, *grown;
	uint32_t end;

	(void)state;
	/* Move E back by one byte inside the same rblock: bins overrun E. */
	make_record(&r, 1, false, false, 0, 0);
	buf = encode_exact(&r, &n);
	end = rd32(buf + OFF_END);
	assert_true((end + 8) % 16 != 1); /* still the same size after the move */
	wr32(buf + OFF_END, end - 1);
	memset(buf + end - 1, 0, n - (end - 1));
	reseal(buf);
	assert_int_equal(record_flat_decode(buf, n, &d), RECFS_EFORMAT);
	free(buf);

	/* Grow E with junk after the last bin: bins end before E. */
	buf = encode_exact(&r, &n);
	end = rd32(buf + OFF_END);
	grown = calloc(1, n + 16);
	memcpy(grown, buf, end);
	wr32(grown + OFF_END, end + 16);
	wr32(grown + OFF_SIZE, (uint32_t)n + 16);
	reseal(grown);
	assert_int_equal(record_flat_decode(grown, n + 16, &d), RECFS_EFORMAT);
	free(grown);
	free(buf);
	record_release(&r);
}

static void
test_record_encode_refuses_what_breaks_the_limits(void **state)
{
	struct record r;
	uint8_t buf[4096];
	char long_key[RECORD_KEY_MAX + 1];

	(void)state;
	memset(long_key, 'k', sizeof(long_key));
#define EXPECT_EINVAL(mutate) do { \
		make_record(&r, 4, true, true, 0, 0); \
		mutate; \
		assert_int_equal(record_flat_encode(&r, buf, sizeof(buf)), -EINVAL); \
		record_release(&r); \
	} while (0)
	EXPECT_EINVAL(r.generation = 0);
	EXPECT_EINVAL(r.flags |= 0x80);
	EXPECT_EINVAL(r.set_len = RECORD_SET_MAX + 1);
	EXPECT_EINVAL((r.key = long_key, r.key_len = RECORD_KEY_MAX + 1));
	EXPECT_EINVAL(r.key_type = 9);
	EXPECT_EINVAL(r.ttl = -2);
	EXPECT_EINVAL(r.meta.mode = 0100644);
	EXPECT_EINVAL(r.bins[1].type = 0);
	EXPECT_EINVAL(r.bins[1].type = 7);
	EXPECT_EINVAL(r.bins[1].name_len = 0);
	EXPECT_EINVAL(r.bins[1].name_len = RECORD_BIN_NAME_MAX + 1);
	EXPECT_EINVAL(r.bins[1].name[1] = '\0');
	EXPECT_EINVAL((r.bins[2].v.bytes.data = NULL, r.bins[2].v.bytes.len = 3));
	EXPECT_EINVAL(r.flags |= RECORD_F_TOMBSTONE);
#undef EXPECT_EINVAL

	/* Too small a destination. */
	make_record(&r, 4, true, true, 0, 0);
	assert_int_equal(record_flat_encode(&r, buf, record_flat_size(&r) - 1), -EINVAL);
	assert_int_equal(record_flat_encode(&r, buf, record_flat_size(&r)),
	    (long)record_flat_size(&r));
	record_release(&r);

	/* Larger than a u32 can describe. */
	make_record(&r, 1, false, false, 0, 0);
	r.bins[0].type = BIN_BLOB;
	r.bins[0].v.bytes.data = blob_bytes;
	r.bins[0].v.bytes.len = UINT32_MAX - 16;
	assert_true(record_flat_size(&r) > UINT32_MAX);
	assert_int_equal(record_flat_encode(&r, buf, SIZE_MAX), -EINVAL);
	record_release(&r);
}

/* ---- the in-memory model ----------------------------------------------- */

static void
test_record_bins_grow_from_inline_to_heap_keeping_contents(void **state)
{
	struct record r;

	(void)state;
	record_init(&r);
	assert_ptr_equal(r.bins, r.bins_inline);
	assert_int_equal(record_bins_reserve(&r, RECORD_BINS_INLINE), 0);
	assert_ptr_equal(r.bins, r.bins_inline);
	/* Add bins one at a time, as an xattr writer would. */
	for (int i = 0; i < 40; i++) {
		assert_int_equal(record_bins_reserve(&r, (size_t)r.n_bins + 1), 0);
		r.bins[i].name_len = (uint8_t)snprintf(r.bins[i].name, 16, "a%d", i);
		r.bins[i].type = BIN_INTEGER;
		r.bins[i].v.integer = i * 11;
		r.n_bins++;
	}
	assert_ptr_not_equal(r.bins, r.bins_inline);
	for (int i = 0; i < 40; i++) {
		char name[16];
		int len = snprintf(name, sizeof(name), "a%d", i);
		const struct bin *b = record_bin_find(&r, name, (size_t)len);

		assert_non_null(b);
		assert_int_equal(b->v.integer, i * 11);
	}
	/* Shrinking requests keep what is there. */
	assert_int_equal(record_bins_reserve(&r, 2), 0);
	assert_int_equal(record_bin_find(&r, "a39", 3)->v.integer, 39 * 11);
	assert_null(record_bin_find(&r, "a40", 3));
	assert_null(record_bin_find(&r, "a3", 1)); /* prefix is not a match */
	assert_null(record_bin_find(&r, "a", 1));
	record_release(&r);
	assert_ptr_equal(r.bins, r.bins_inline);
	assert_int_equal(r.n_bins, 0);
	record_release(&r); /* twice is harmless */
}

static void
test_record_decode_of_many_bins_uses_heap_and_release_frees_it(void **state)
{
	struct record r, d;
	size_t n;
	uint8_t *buf;

	(void)state;
	make_record(&r, 5, false, false, 0, 0);
	buf = encode_exact(&r, &n);
	assert_int_equal(record_flat_decode(buf, n, &d), 0);
	assert_ptr_not_equal(d.bins, d.bins_inline);
	/* Values point into the source buffer, not copies. */
	assert_ptr_equal(d.key, (const char *)buf + 64);
	assert_true(d.bins[3].v.bytes.data > buf && d.bins[3].v.bytes.data < buf + n);
	record_release(&d); /* ASan/LSan report a leak if this does not free */
	free(buf);
	record_release(&r);
}

static void
test_record_key_names_follow_path_rules(void **state)
{
	char name[300];

	(void)state;
	memset(name, 'k', sizeof(name));
	assert_int_equal(record_key_check("a", 1), 0);
	assert_int_equal(record_key_check("file.txt", 8), 0);
	assert_int_equal(record_key_check("...", 3), 0);
	assert_int_equal(record_key_check(".hidden", 7), 0);
	assert_int_equal(record_key_check(name, RECORD_KEY_MAX), 0);
	assert_int_equal(record_key_check(name, RECORD_KEY_MAX + 1), -ENAMETOOLONG);
	assert_int_equal(record_key_check("", 0), -EINVAL);
	assert_int_equal(record_key_check(".", 1), -EINVAL);
	assert_int_equal(record_key_check("..", 2), -EINVAL);
	assert_int_equal(record_key_check("a/b", 3), -EINVAL);
	assert_int_equal(record_key_check("/", 1), -EINVAL);
	assert_int_equal(record_key_check("a\0b", 3), -EINVAL);
	/* Length counts, not the C string: ".." followed by more is fine. */
	assert_int_equal(record_key_check("..x", 3), 0);
	assert_int_equal(record_key_check("..", 1), -EINVAL);
}

static void
test_record_set_names_follow_path_rules(void **state)
{
	char name[100];

	(void)state;
	memset(name, 's', sizeof(name));
	assert_int_equal(record_set_name_check("users", 5), 0);
	assert_int_equal(record_set_name_check(name, RECORD_SET_MAX), 0);
	assert_int_equal(record_set_name_check(name, RECORD_SET_MAX + 1), -ENAMETOOLONG);
	assert_int_equal(record_set_name_check("", 0), -EINVAL);
	assert_int_equal(record_set_name_check(".", 1), -EINVAL);
	assert_int_equal(record_set_name_check("..", 2), -EINVAL);
	assert_int_equal(record_set_name_check("a/b", 3), -EINVAL);
	assert_int_equal(record_set_name_check("a\0", 2), -EINVAL);
	assert_int_equal(record_set_name_check("a.b", 3), 0);
}

static void
test_record_bin_names_are_short_without_dots(void **state)
{
	(void)state;
	assert_int_equal(record_bin_name_check("data", 4), 0);
	assert_int_equal(record_bin_name_check("a/b", 3), 0);
	assert_int_equal(record_bin_name_check("fifteen-chars-x", 15), 0);
	assert_int_equal(record_bin_name_check("sixteen-chars-xx", 16), -ENAMETOOLONG);
	assert_int_equal(record_bin_name_check("", 0), -EINVAL);
	assert_int_equal(record_bin_name_check("a.b", 3), -EINVAL);
	assert_int_equal(record_bin_name_check(".", 1), -EINVAL);
	assert_int_equal(record_bin_name_check("a\0b", 3), -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_round_trips_every_shape),
		cmocka_unit_test(test_record_round_trips_edge_values),
		cmocka_unit_test(test_record_tombstone_round_trips_with_no_bins),
		cmocka_unit_test(test_record_minimal_is_80_bytes),
		cmocka_unit_test(test_record_with_32767_bins_round_trips_and_32768_is_refused),
		cmocka_unit_test(test_record_every_single_byte_corruption_is_rejected),
		cmocka_unit_test(test_record_truncated_buffers_are_rejected),
		cmocka_unit_test(test_record_bad_header_fields_are_format_errors),
		cmocka_unit_test(test_record_malformed_fields_are_format_errors),
		cmocka_unit_test(test_record_end_offset_must_close_the_bins),
		cmocka_unit_test(test_record_encode_refuses_what_breaks_the_limits),
		cmocka_unit_test(test_record_bins_grow_from_inline_to_heap_keeping_contents),
		cmocka_unit_test(test_record_decode_of_many_bins_uses_heap_and_release_frees_it),
		cmocka_unit_test(test_record_key_names_follow_path_rules),
		cmocka_unit_test(test_record_set_names_follow_path_rules),
		cmocka_unit_test(test_record_bin_names_are_short_without_dots),
	};

	for (size_t i = 0; i < sizeof(blob_bytes); i++)
		blob_bytes[i] = (uint8_t)(i * 131 + 7);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
