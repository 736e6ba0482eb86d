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
#define OFF_MARK 54
#define OFF_END 56
#define OFF_HEADER_CRC 60
#define META_V2 40 /* POSIX meta of version 2 (version 1: 24) */
#define META_V1 24

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

static uint64_t
rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

/* Where the POSIX meta starts: after the header, set and key. */
static size_t
meta_pos(const uint8_t *buf)
{
	return 64 + (size_t)buf[OFF_SET_LEN] + (buf[OFF_KEY_LEN] | (size_t)buf[OFF_KEY_LEN + 1] << 8);
}

/* The meta check of version 2, computed here from the layout in record.h. */
static uint32_t
meta_check_of(const uint8_t *buf)
{
	size_t m = meta_pos(buf);
	uint32_t crc = crc32c(0, buf + 64, m - 64 + 12);

	return crc32c(crc, buf + m + 16, META_V2 - 16);
}

/*
 * Recompute the checks after a deliberate edit of the bytes: for version 2
 * the meta check (when the meta lies before E) and the header check, then
 * end mark and CRC.
 */
static void
reseal_checks(uint8_t *buf, bool meta_check)
{
	uint32_t end = rd32(buf + OFF_END);

	if (buf[OFF_VERSION] == 2) {
		if (meta_check && (buf[OFF_FLAGS] & RECORD_F_HAS_META) && meta_pos(buf) + META_V2 <= end)
			wr32(buf + meta_pos(buf) + 12, meta_check_of(buf));
		wr32(buf + OFF_HEADER_CRC, crc32c(0, buf, OFF_HEADER_CRC));
	}
	wr32(buf + end, RECORD_FLAT_END_MARK);
	wr32(buf + end + 4, crc32c(0, buf, end + 4));
}

static void
reseal(uint8_t *buf)
{
	reseal_checks(buf, true);
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
		r->meta.atime_ns = 1600000000987654321LL;
		r->meta.ino = 0x0123456789abcdefULL;
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
		assert_int_equal(a->meta.atime_ns, b->meta.atime_ns);
		assert_int_equal(a->meta.ino, b->meta.ino);
	}
	assert_int_equal(a->n_bins, b->n_bins);
	assert_int_equal(a->mark, b->mark);
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
	r.meta.atime_ns = INT64_MAX;
	r.meta.ino = UINT64_MAX;
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
#define BIN0 (BODY + META_V2)        /* first bin: "bin0", integer */
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
	{ "one bin more than stored", OFF_N_BINS, 2, 6 },
	{ "one bin fewer than stored", OFF_N_BINS, 2, 4 },
	{ "n_bins far past E", OFF_N_BINS, 2, RECORD_BINS_MAX },
	{ "file type bits in mode", BODY, 4, 0100644 },
	{ "FIFO type in mode", BODY, 4, 0010644 },
	{ "bits above the type in mode", BODY, 4, 01000644 },
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

/*
 * The regain mark (bytes 54-55, once reserved): any value is a valid
 * record, decode keeps it and encode writes it back (the round trip stays
 * byte for byte), the header check carries it, and record_flat_set_mark
 * gives stored bytes another one with their checks made whole again - the
 * same bytes record_flat_encode_mark makes.
 */
static void
test_record_regain_mark_round_trips_and_is_patched_with_valid_checks(void **state)
{
	static const uint16_t marks[] = { 1, 0x0201, 0xffff };
	struct record r, d;
	struct record_flat_header h;
	size_t n;
	uint8_t *buf, *want;

	(void)state;
	make_record(&r, 5, true, true, 0, 0);
	for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
		r.mark = marks[i];
		buf = encode_exact(&r, &n);
		assert_int_equal(buf[OFF_MARK] | buf[OFF_MARK + 1] << 8, marks[i]);
		assert_int_equal(record_flat_mark(buf), marks[i]);
		assert_int_equal(record_flat_decode(buf, n, &d), 0);
		assert_int_equal(d.mark, marks[i]);
		assert_records_equal(&r, &d);
		want = malloc(n);
		assert_non_null(want);
		assert_int_equal(record_flat_encode(&d, want, n), (long)n);
		assert_memory_equal(want, buf, n);
		record_release(&d);
		assert_int_equal(record_flat_header_check(buf, n, &h), 0);
		assert_int_equal(h.mark, marks[i]);
		/* Patched to 0 and back: valid each time, the encoder's bytes. */
		record_flat_set_mark(buf, 0);
		assert_int_equal(record_flat_decode(buf, n, &d), 0);
		assert_int_equal(d.mark, 0);
		record_release(&d);
		assert_int_equal(record_flat_encode_mark(&r, 0, want, n), (long)n);
		assert_memory_equal(want, buf, n);
		record_flat_set_mark(buf, marks[i]);
		assert_int_equal(record_flat_encode(&r, want, n), (long)n);
		assert_memory_equal(want, buf, n);
		/* A changed mark without new checks is damage, not a mark. */
		buf[OFF_MARK] ^= 0x40;
		assert_int_equal(record_flat_decode(buf, n, &d), RECFS_ECHECKSUM);
		record_release(&d);
		free(want);
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
	EXPECT_EINVAL(r.meta.mode = 0060644);  /* block device: refused by design */
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

/* ---- version 2: header check, meta check, atime and ino; version 1 ----- */

/*
 * A version 1 encoder, kept here: the same record as the version 2 image
 * v2 (n bytes) as a version 1 writer laid it out (no header check, 24-byte
 * meta with a zero reserved field, no atime, no ino).  Exact-size heap
 * buffer, size in *n1.
 */
static uint8_t *
to_v1(const uint8_t *v2, size_t *n1)
{
	uint32_t end2 = rd32(v2 + OFF_END);
	bool meta = (v2[OFF_FLAGS] & RECORD_F_HAS_META) != 0;
	size_t m = meta_pos(v2);
	uint32_t end1 = end2 - (meta ? META_V2 - META_V1 : 0);
	size_t size1 = ((size_t)end1 + 8 + 15) & ~(size_t)15;
	uint8_t *v1 = calloc(1, size1);

	assert_non_null(v1);
	memcpy(v1, v2, m);
	if (meta) {
		memcpy(v1 + m, v2 + m, META_V1);
		wr32(v1 + m + 12, 0);
		memcpy(v1 + m + META_V1, v2 + m + META_V2, end2 - m - META_V2);
	} else {
		memcpy(v1 + m, v2 + m, end2 - m);
	}
	v1[OFF_VERSION] = 1;
	wr32(v1 + OFF_SIZE, (uint32_t)size1);
	wr32(v1 + OFF_END, end1);
	wr32(v1 + OFF_HEADER_CRC, 0);
	reseal(v1);
	*n1 = size1;
	return v1;
}

static void
test_record_v2_keeps_atime_and_ino_and_checks_its_header(void **state)
{
	struct record r, d;
	size_t n;
	uint8_t *buf;

	(void)state;
	make_record(&r, 5, true, true, 0, 0);
	buf = encode_exact(&r, &n);
	assert_int_equal(buf[OFF_VERSION], 2);
	assert_int_equal(RECORD_FLAT_VERSION, 2);
	/* The header check is the CRC32C of the 60 bytes before it. */
	assert_int_equal(rd32(buf + OFF_HEADER_CRC), crc32c(0, buf, 60));
	/* Meta: mode, uid, gid, meta check, mtime, atime, ino. */
	assert_int_equal(rd32(buf + BODY), 0644);
	assert_int_equal(rd32(buf + BODY + 12), meta_check_of(buf));
	assert_int_equal(rd64(buf + BODY + 16), 1700000000123456789ULL);
	assert_int_equal(rd64(buf + BODY + 24), 1600000000987654321ULL);
	assert_int_equal(rd64(buf + BODY + 32), 0x0123456789abcdefULL);
	assert_int_equal(buf[BIN0], 4); /* the bins follow the 40 bytes of meta */
	assert_memory_equal(buf + BIN0 + 1, "bin0", 4);
	assert_int_equal(record_flat_decode(buf, n, &d), 0);
	assert_int_equal(d.meta.atime_ns, 1600000000987654321LL);
	assert_int_equal(d.meta.ino, 0x0123456789abcdefULL);
	record_release(&d);
	free(buf);

	/* atime and ino round trip at their extremes, 0 included. */
	r.meta.atime_ns = 0;
	r.meta.ino = 0;
	assert_round_trip(&r);
	r.meta.atime_ns = INT64_MIN;
	r.meta.ino = UINT64_MAX;
	assert_round_trip(&r);
	record_release(&r);
}

/* The example record of docs/storage-format.md, as version 1 wrote it. */
static const uint8_t doc_v1_example[96] = {
	0x46, 0x52, 0x43, 0x31, 0x60, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x1a, 0xbd, 0xe3, 0xeb,
	0x90, 0xea, 0x36, 0x96, 0x88, 0x09, 0x64, 0x01, 0xaf, 0xbb, 0x25, 0xdc, 0xb3, 0x45, 0x55, 0x59,
	0x3e, 0x2d, 0x1c, 0x0b, 0x5a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
	0x04, 0x03, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00, 0x56, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x70, 0x69, 0x63, 0x73, 0x61, 0x2e, 0x74, 0x78, 0x74, 0x04, 0x64, 0x61, 0x74, 0x61, 0x04, 0x03,
	0x00, 0x00, 0x00, 0x68, 0x69, 0x0a, 0x52, 0x45, 0x4e, 0x44, 0x79, 0xf0, 0x35, 0x50, 0x00, 0x00,
};

static void
test_record_v1_records_still_decode(void **state)
{
	struct record_flat_header h;
	struct record r, d, d2;
	struct digest dg;
	uint8_t *v1 = malloc(sizeof(doc_v1_example)), *v2, *again;
	size_t n, n1;

	(void)state;
	/* Bytes a version 1 writer left on storage. */
	memcpy(v1, doc_v1_example, sizeof(doc_v1_example));
	assert_int_equal(record_flat_decode(v1, sizeof(doc_v1_example), &d), 0);
	assert_int_equal(d.generation, 1);
	assert_int_equal(d.set_len, 4);
	assert_memory_equal(d.set, "pics", 4);
	assert_int_equal(d.key_len, 5);
	assert_memory_equal(d.key, "a.txt", 5);
	digest_compute(&dg, "pics", 4, "a.txt", 5);
	assert_memory_equal(d.digest.bytes, dg.bytes, DIGEST_SIZE);
	assert_int_equal(d.n_bins, 1);
	assert_int_equal(d.bins[0].v.bytes.len, 3);
	assert_memory_equal(d.bins[0].v.bytes.data, "hi\n", 3);
	/* No header check of its own: the header is said to be unproven. */
	assert_int_equal(record_flat_header_check(v1, sizeof(doc_v1_example), &h), RECFS_EVERSION);
	assert_int_equal(h.version, 1);
	assert_int_equal(h.generation, 1);
	/* Read old, write new: it encodes as version 2 and reads back the same. */
	n = record_flat_size(&d);
	again = malloc(n);
	assert_int_equal(record_flat_encode(&d, again, n), (long)n);
	assert_int_equal(again[OFF_VERSION], 2);
	assert_int_equal(record_flat_decode(again, n, &d2), 0);
	assert_records_equal(&d, &d2);
	record_release(&d2);
	record_release(&d);
	free(again);
	free(v1);

	/* Every shape, through the version 1 encoder kept above. */
	for (int meta = 0; meta < 2; meta++) {
		for (int set = 0; set < 2; set++) {
			make_record(&r, 5, set, meta, RECORD_TTL_NEVER, 77);
			v2 = encode_exact(&r, &n);
			v1 = to_v1(v2, &n1);
			assert_int_equal(n1 <= n, true);
			assert_int_equal(record_flat_decode(v1, n1, &d), 0);
			/* Version 1 has no atime or ino: they read as 0. */
			r.meta.atime_ns = 0;
			r.meta.ino = 0;
			assert_records_equal(&r, &d);
			if (meta) {
				assert_int_equal(d.meta.atime_ns, 0);
				assert_int_equal(d.meta.ino, 0);
			}
			record_release(&d);
			assert_int_equal(record_flat_header_check(v1, n1, &h), RECFS_EVERSION);
			/* Version 1's reserved fields are still checked. */
			v1[OFF_HEADER_CRC + 1] = 1;
			reseal(v1);
			assert_int_equal(record_flat_decode(v1, n1, &d), RECFS_EFORMAT);
			v1[OFF_HEADER_CRC + 1] = 0;
			if (meta) {
				v1[meta_pos(v1) + 12] = 1;
				reseal(v1);
				assert_int_equal(record_flat_decode(v1, n1, &d), RECFS_EFORMAT);
				v1[meta_pos(v1) + 12] = 0;
			}
			reseal(v1);
			assert_int_equal(record_flat_decode(v1, n1, &d), 0);
			record_release(&d);
			free(v1);
			free(v2);
			record_release(&r);
		}
	}

	/* A damaged version 1 record is still caught byte by byte. */
	make_record(&r, 2, true, true, 0, 0);
	v2 = encode_exact(&r, &n);
	v1 = to_v1(v2, &n1);
	for (size_t i = 0; i < n1; i++) {
		for (int m = 1; m < 256; m += 17) {
			v1[i] ^= (uint8_t)m;
			assert_int_not_equal(record_flat_decode(v1, n1, &d), 0);
			v1[i] ^= (uint8_t)m;
		}
	}
	free(v1);
	free(v2);
	record_release(&r);
}

static void
assert_header_says(const struct record_flat_header *h, const struct record *r, size_t n)
{
	assert_memory_equal(h->digest.bytes, r->digest.bytes, DIGEST_SIZE);
	assert_int_equal(h->version, 2);
	assert_int_equal(h->generation, r->generation);
	assert_int_equal(h->last_update_ms, r->last_update_ms);
	assert_int_equal(h->void_time, r->void_time);
	assert_int_equal(h->ttl, r->ttl);
	assert_int_equal(h->flags, r->flags);
	assert_int_equal(h->set_len, r->set_len);
	assert_int_equal(h->key_len, r->key_len);
	assert_int_equal(h->n_bins, r->n_bins);
	assert_int_equal(h->size, n);
}

/* A copy whose body is damaged still says which record and which version
 * of it it was; one whose header is damaged says nothing. */
static void
test_record_damaged_body_keeps_a_checked_header(void **state)
{
	struct record_flat_header h;
	struct record r, d;
	size_t n;
	uint8_t *buf;

	(void)state;
	make_record(&r, 5, true, true, 3600, 1234);
	buf = encode_exact(&r, &n);
	assert_int_equal(record_flat_header_check(buf, n, &h), 0);
	assert_header_says(&h, &r, n);

	/* Every byte after the header: the record is refused, the header holds. */
	for (size_t i = RECORD_FLAT_HEADER_SIZE; i < n; i++) {
		buf[i] ^= 0x20;
		assert_int_not_equal(record_flat_decode(buf, n, &d), 0);
		memset(&h, 0xee, sizeof(h));
		assert_int_equal(record_flat_header_check(buf, n, &h), 0);
		assert_header_says(&h, &r, n);
		buf[i] ^= 0x20;
	}

	/* Every byte of the header, every bit: refused by the check (a
	 * structure that no longer holds) or by the header check. */
	for (size_t i = 0; i < RECORD_FLAT_HEADER_SIZE; i++) {
		for (int bit = 0; bit < 8; bit++) {
			int rc;

			buf[i] ^= (uint8_t)(1u << bit);
			rc = record_flat_header_check(buf, n, &h);
			assert_true(rc == RECFS_EFORMAT || rc == RECFS_ECHECKSUM);
			assert_int_not_equal(record_flat_decode(buf, n, &d), 0);
			buf[i] ^= (uint8_t)(1u << bit);
		}
	}
	/* A damaged digest, generation or time is the header check's to catch. */
	buf[12] ^= 1;
	assert_int_equal(record_flat_header_check(buf, n, &h), RECFS_ECHECKSUM);
	assert_int_equal(record_flat_verify(buf, (uint32_t)n), RECFS_ECHECKSUM);
	buf[12] ^= 1;
	buf[33] ^= 1;
	assert_int_equal(record_flat_header_check(buf, n, &h), RECFS_ECHECKSUM);
	buf[33] ^= 1;

	/* Header fields out of range under a good header check are malformed. */
	wr16(buf + OFF_GENERATION, 0);
	reseal(buf);
	assert_int_equal(record_flat_header_check(buf, n, &h), RECFS_EFORMAT);
	free(buf);
	record_release(&r);
}

/* What a damaged copy can still prove: its name by the digest, its meta by
 * the meta check; nothing of the bins. */
static void
test_record_salvage_proves_name_and_meta_apart_from_the_bins(void **state)
{
	struct record_flat_header h;
	struct record r, d;
	size_t n;
	uint8_t *buf;

	(void)state;
	make_record(&r, 5, true, true, 3600, 1234);
	buf = encode_exact(&r, &n);
	buf[BIN2 + 8] ^= 0x40;         /* a bin byte: the CRC fails */
	assert_int_equal(record_flat_decode(buf, n, &d), RECFS_ECHECKSUM);
	assert_int_equal(record_flat_header_check(buf, n, &h), 0);
	assert_int_equal(record_flat_salvage(buf, &h, &d), RECORD_SALVAGE_NAME | RECORD_SALVAGE_META);
	assert_int_equal(d.n_bins, 0);
	assert_int_equal(d.generation, 7);
	assert_int_equal(d.last_update_ms, r.last_update_ms);
	assert_int_equal(d.ttl, 3600);
	assert_int_equal(d.set_len, 4);
	assert_memory_equal(d.set, "pics", 4);
	assert_int_equal(d.key_len, r.key_len);
	assert_memory_equal(d.key, r.key, r.key_len);
	assert_int_equal(d.flags, RECORD_F_HAS_META);
	assert_int_equal(d.meta.mode, 0644);
	assert_int_equal(d.meta.uid, 1000);
	assert_int_equal(d.meta.mtime_ns, r.meta.mtime_ns);
	assert_int_equal(d.meta.atime_ns, r.meta.atime_ns);
	assert_int_equal(d.meta.ino, r.meta.ino);
	record_release(&d);
	buf[BIN2 + 8] ^= 0x40;

	/* A meta byte: the name still holds, the meta does not. */
	buf[BODY + 5] ^= 0x01;
	assert_int_equal(record_flat_header_check(buf, n, &h), 0);
	assert_int_equal(record_flat_salvage(buf, &h, &d), RECORD_SALVAGE_NAME);
	assert_int_equal(d.flags & RECORD_F_HAS_META, 0);
	assert_int_equal(d.meta.uid, 0);
	record_release(&d);
	buf[BODY + 5] ^= 0x01;

	/* A key byte: neither (the meta check covers the key too). */
	buf[64 + 4 + 3] ^= 0x01;
	assert_int_equal(record_flat_header_check(buf, n, &h), 0);
	assert_int_equal(record_flat_salvage(buf, &h, &d), 0);
	assert_null(d.key);
	assert_int_equal(d.generation, 7);
	record_release(&d);
	free(buf);
	record_release(&r);
}

/* Under a good CRC, a header check or meta check that does not match the
 * bytes is malformed: the format stays canonical. */
static void
test_record_v2_checks_must_match_even_under_a_good_crc(void **state)
{
	struct record r, d;
	size_t n;
	uint8_t *buf;

	(void)state;
	make_record(&r, 5, true, true, 0, 0);
	buf = encode_exact(&r, &n);
	buf[OFF_HEADER_CRC] ^= 1;
	reseal_checks(buf, true);      /* puts the header check right again */
	assert_int_equal(record_flat_decode(buf, n, &d), 0);
	record_release(&d);
	buf[OFF_HEADER_CRC] ^= 1;
	wr32(buf + rd32(buf + OFF_END) + 4, crc32c(0, buf, rd32(buf + OFF_END) + 4));
	assert_int_equal(record_flat_verify(buf, (uint32_t)n), RECFS_ECHECKSUM);
	assert_int_equal(record_flat_decode(buf, n, &d), RECFS_ECHECKSUM);
	reseal(buf);

	buf[BODY + 12] ^= 1;           /* the meta check */
	reseal_checks(buf, false);
	assert_int_equal(record_flat_verify(buf, (uint32_t)n), 0);
	assert_int_equal(record_flat_decode(buf, n, &d), RECFS_EFORMAT);
	assert_int_equal(record_flat_decode_verified(buf, n, &d), RECFS_EFORMAT);
	buf[BODY + 12] ^= 1;
	reseal(buf);
	assert_int_equal(record_flat_decode(buf, n, &d), 0);
	record_release(&d);
	/* The meta check covers set, key and meta: a key byte changed with
	 * the header and whole CRC resealed is still caught by it. */
	buf[64 + 4] ^= 1;
	reseal_checks(buf, false);
	assert_int_equal(record_flat_decode(buf, n, &d), RECFS_EFORMAT);
	free(buf);
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
	/* Internal keys start with '/': never a name, but storable. */
	assert_true(record_key_is_internal("/d0000000000000001/a", 20));
	assert_false(record_key_is_internal("/", 1));
	assert_false(record_key_is_internal("a/b", 3));
	assert_int_equal(record_stored_key_check("/d0000000000000001/a", 20), 0);
	assert_int_equal(record_stored_key_check("/k\0x", 4), -EINVAL);
	assert_int_equal(record_stored_key_check("a/b", 3), -EINVAL);
	assert_int_equal(record_stored_key_check("file", 4), 0);
	/* Only the two internal forms recfs writes are storable (a peer's or a
	 * damaged file's "/gn" was stored and then unreachable, fuzz_apply). */
	assert_int_equal(record_stored_key_check("/k0000000000000001/00000002.00000003", 36), 0);
	assert_int_equal(record_stored_key_check("/gn", 3), -EINVAL);
	assert_int_equal(record_stored_key_check("/d0000000000000000/a", 20), -EINVAL);
	assert_int_equal(record_stored_key_check("/d000000000000000g/a", 20), -EINVAL);
	assert_int_equal(record_stored_key_check("/d0000000000000001/", 19), -EINVAL);
	assert_int_equal(record_stored_key_check("/d0000000000000001/a/b", 22), -EINVAL);
	assert_int_equal(record_stored_key_check("/d0000000000000001x..", 21), -EINVAL);
	assert_int_equal(record_stored_key_check("/k0000000000000001/00000002-00000003", 36), -EINVAL);
	assert_int_equal(record_stored_key_check("/k0000000000000001/00000002.0000003", 35), -EINVAL);
	memcpy(name, "/d0000000000000001/", 19);
	assert_int_equal(record_stored_key_check(name, RECORD_KEY_MAX), 0);
	assert_int_equal(record_stored_key_check(name, RECORD_KEY_MAX + 1), -EINVAL);
	name[0] = '/';
	name[1] = 'x';
	assert_int_equal(record_stored_key_check(name, RECORD_KEY_MAX), -EINVAL);
}

/* A directory or a symbolic link inside a set round-trips its type. */
static void
test_record_mode_carries_dir_and_link_types(void **state)
{
	static const uint32_t modes[] = { 0644, RECORD_MODE_DIR | 0755, RECORD_MODE_LINK | 0777 };
	struct record r, d;
	uint8_t buf[4096];

	(void)state;
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		make_record(&r, 1, true, true, 0, 0);
		r.meta.mode = modes[i];
		int n = record_flat_encode(&r, buf, sizeof(buf));
		assert_true(n > 0);
		assert_int_equal(record_flat_decode(buf, (size_t)n, &d), 0);
		assert_int_equal(d.meta.mode, modes[i]);
		record_release(&d);
		record_release(&r);
	}
	assert_true(record_mode_valid(0));
	assert_false(record_mode_valid(0140755));   /* socket */
	assert_false(record_mode_valid(0020644));   /* character device */
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

/*
 * The conflict rule (record_version_cmp), row by row: what wins between two
 * versions of a record, and that the answer is antisymmetric (b against a
 * gives the opposite).  A tombstone is an ordinary version here: it wins or
 * loses by its time and generation alone.
 */
static void
test_record_version_cmp_table(void **state)
{
	(void)state;
	static const struct {
		const char *what;
		struct record_version a, b;
		int expect;   /* sign of record_version_cmp(a, b) */
	} rows[] = {
		{ "equal", { 1000, 5, false }, { 1000, 5, false }, 0 },
		{ "later time wins", { 1001, 5, false }, { 1000, 5, false }, 1 },
		{ "earlier time loses", { 999, 5, false }, { 1000, 5, false }, -1 },
		{ "time wins over a higher generation", { 1001, 1, false }, { 1000, 9, false }, 1 },
		{ "time wins over a generation just wrapped", { 1000, 65535, false }, { 999, 1, false }, 1 },
		{ "same time: higher generation", { 1000, 6, false }, { 1000, 5, false }, 1 },
		{ "same time: lower generation", { 1000, 4, false }, { 1000, 5, false }, -1 },
		{ "same time: generation wrapped past 65535 to 1", { 1000, 1, false }, { 1000, 65535, false }, 1 },
		{ "same time: 2 beats 65534", { 1000, 2, false }, { 1000, 65534, false }, 1 },
		{ "same time: 32767 ahead is newer", { 1000, 32768, false }, { 1000, 1, false }, 1 },
		{ "same time: 32768 apart is a tie", { 1000, 32769, false }, { 1000, 1, false }, 0 },
		{ "same time: 32769 ahead is older", { 1000, 32770, false }, { 1000, 1, false }, -1 },
		{ "tombstone after the live copy (same time, next generation)", { 1000, 8, false }, { 1000, 7, false }, 1 },
		{ "tombstone with a reset generation, later time", { 2000, 1, false }, { 1000, 300, false }, 1 },
		{ "same version: intact beats damaged", { 1000, 5, false }, { 1000, 5, true }, 1 },
		{ "same version: damaged loses", { 1000, 5, true }, { 1000, 5, false }, -1 },
		{ "both damaged: tie", { 1000, 5, true }, { 1000, 5, true }, 0 },
		{ "damaged but newer wins", { 1001, 5, true }, { 1000, 5, false }, 1 },
		{ "damaged with a higher generation wins", { 1000, 6, true }, { 1000, 5, false }, 1 },
		{ "40-bit times compare whole", { 1ULL << 39, 1, false }, { (1ULL << 39) - 1, 2, false }, 1 },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int ab = record_version_cmp(&rows[i].a, &rows[i].b);
		int ba = record_version_cmp(&rows[i].b, &rows[i].a);
		int sab = (ab > 0) - (ab < 0), sba = (ba > 0) - (ba < 0);

		if (sab != rows[i].expect || sba != -rows[i].expect)
			fail_msg("row %zu (%s): cmp(a, b) = %d, cmp(b, a) = %d, expected %d", i,
			    rows[i].what, ab, ba, rows[i].expect);
		/* The boolean form agrees for intact copies. */
		if (!rows[i].a.damaged && !rows[i].b.damaged)
			assert_int_equal(record_copy_is_newer(rows[i].a.generation,
			    rows[i].a.last_update_ms, rows[i].b.generation, rows[i].b.last_update_ms),
			    rows[i].expect > 0);
	}
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
		cmocka_unit_test(test_record_regain_mark_round_trips_and_is_patched_with_valid_checks),
		cmocka_unit_test(test_record_end_offset_must_close_the_bins),
		cmocka_unit_test(test_record_encode_refuses_what_breaks_the_limits),
		cmocka_unit_test(test_record_v2_keeps_atime_and_ino_and_checks_its_header),
		cmocka_unit_test(test_record_v1_records_still_decode),
		cmocka_unit_test(test_record_damaged_body_keeps_a_checked_header),
		cmocka_unit_test(test_record_v2_checks_must_match_even_under_a_good_crc),
		cmocka_unit_test(test_record_salvage_proves_name_and_meta_apart_from_the_bins),
		cmocka_unit_test(test_record_bins_grow_from_inline_to_heap_keeping_contents),
		cmocka_unit_test(test_record_decode_of_many_bins_uses_heap_and_release_frees_it),
		cmocka_unit_test(test_record_key_names_follow_path_rules),
		cmocka_unit_test(test_record_mode_carries_dir_and_link_types),
		cmocka_unit_test(test_record_set_names_follow_path_rules),
		cmocka_unit_test(test_record_bin_names_are_short_without_dots),
		cmocka_unit_test(test_record_version_cmp_table),
	};

	for (size_t i = 0; i < sizeof(blob_bytes); i++)
		blob_bytes[i] = (uint8_t)(i * 131 + 7);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
