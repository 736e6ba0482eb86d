/*
 * test_digest.c - RIPEMD-160 digests, partition ids, inode numbers and
 * CRC32C (both implementations).
 *
 * The Aerospike vectors below are the expected digests published in the
 * Aerospike Python client's own test suite (test_validate_digest_* with
 * set "set"; the namespace is not hashed).  They were also recomputed
 * independently with `openssl dgst -rmd160` and Python's hashlib while
 * writing this test, e.g. printf 'set\003s' | openssl dgst -rmd160.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/ripemd.h>

#include "base/crc32c.h"
#include "base/digest.h"

static void
assert_digest_hex(const struct digest *d, const char *hex)
{
	char got[2 * DIGEST_SIZE + 1];

	digest_to_hex(d, got);
	assert_string_equal(got, hex);
}

static void
hex_to_digest(const char *hex, struct digest *d)
{
	for (int i = 0; i < DIGEST_SIZE; i++) {
		unsigned v;

		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		d->bytes[i] = (uint8_t)v;
	}
}

/* ---- RIPEMD-160 itself ------------------------------------------------- */

static void
test_ripemd160_standard_vectors(void **state)
{
	struct digest d;
	uint8_t raw[DIGEST_SIZE];

	(void)state;
	/* The empty message cannot go through our API (the type byte is always
	 * hashed), so check the library primitive we build on directly. */
	RIPEMD160((const unsigned char *)"", 0, raw);
	memcpy(d.bytes, raw, DIGEST_SIZE);
	assert_digest_hex(&d, "9c1185a5c5e9fc54612808977ee8f548b2258d31");

	/* set || type byte || key is one message: split vectors across the three. */
	digest_compute_typed(&d, "ab", 2, 'c', "", 0);
	assert_digest_hex(&d, "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc");
	digest_compute_typed(&d, NULL, 0, 'a', "bc", 2);
	assert_digest_hex(&d, "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc");
	digest_compute_typed(&d, "message", 7, ' ', "digest", 6);
	assert_digest_hex(&d, "5d0689ef49d2fae572b881b123a85ffa21595f36");
}

/* ---- Aerospike compatibility ------------------------------------------- */

static char *
repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static const struct {
	char c;
	size_t n;
	const char *string_hex; /* key type 3 */
	const char *blob_hex;   /* key type 4, NULL where none was published */
} repeated_keys[] = {
	{ 's', 0, "2819b1ff6e346a43b4f5f6b77a88bc3eaac22a83", NULL },
	{ 's', 1, "607cddba7cd111745ef0a3d783d57f0e83c8f311",
	    "ca2d96dc9a184d15a7fa2927565e844e9254e001" },
	{ 'a', 10, "5979fb32a80da070ff356f7695455592272e36c2",
	    "d10982327b2b04c7360579f252e164a75f83cd99" },
	{ 'm', 100, "f00ad7dbcb4bd8122d9681bca49b8c2ffd4beeed",
	    "475786aa4ee664532a7d1ea69cb02e4695fcdeed" },
	{ 't', 1000, "07ac412d4c33b8628ab147b8db244ce44ae527f8",
	    "5a32b507518a49bf47fdaa3deca53803f5b2e8c3" },
	{ '-', 10000, "b42e64afbfccb05912a609179228d9249ea1c1a0",
	    "ed65c63f7a1f8c6697eb3894b6409a95461fd982" },
	{ '+', 100000, "0a3e888c20bb8958537ddd4ba835e4070bd51740",
	    "fe19770c371774ba1a1532438d4851b8a773a9e6" },
};

static void
test_digest_matches_aerospike_string_and_blob_keys(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(repeated_keys) / sizeof(repeated_keys[0]); i++) {
		char *key = repeat(repeated_keys[i].c, repeated_keys[i].n);
		struct digest d;

		digest_compute(&d, "set", 3, key, repeated_keys[i].n);
		assert_digest_hex(&d, repeated_keys[i].string_hex);
		if (repeated_keys[i].blob_hex != NULL) {
			digest_compute_typed(&d, "set", 3, DIGEST_KEY_TYPE_BLOB, key,
			    repeated_keys[i].n);
			assert_digest_hex(&d, repeated_keys[i].blob_hex);
		}
		free(key);
	}
}

static void
integer_digest(struct digest *d, const char *set, int64_t v)
{
	uint8_t be[8];

	/* Aerospike hashes integer keys as 8 big-endian bytes. */
	for (int i = 0; i < 8; i++)
		be[i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
	digest_compute_typed(d, set, set ? strlen(set) : 0, DIGEST_KEY_TYPE_INTEGER, be, 8);
}

static void
test_digest_matches_aerospike_integer_keys(void **state)
{
	static const struct {
		int64_t v;
		const char *hex;
	} vec[] = {
		{ -1, "22116d253745e29fc63fdf760b6e26f7e197e01d" },
		{ 0, "93d943aae37b017ad7e011b0c1d2e2143c2fb37d" },
		{ 1, "82d7213b469812947c109a6d341e3b5b1dedec1f" },
		{ -128, "93191e549f8f3548d7e2cfc958ddc8c65bcbe4c6" },
		{ 127, "a58f7d98bf60e10fe369c82030b1c9dee053def9" },
		{ 255, "5a7dd3ea237c30c8735b051524e66fd401a10f6a" },
		{ -32768, "7f41e9dd1f3fe3694be0430e04c8bfc7d51ec2af" },
		{ 32767, "309fc9c2619c4f65ff7f4cd82085c3ee7a31fc7c" },
		{ 65535, "3f0dd44352749a9fd5b7ec44213441ef54c46d57" },
		{ INT32_MIN, "d635a867b755f8f54cdc6275e6fb437df82a728c" },
		{ INT32_MAX, "fa8c47b8b898af1bbcb20af0d729ca68359a2645" },
		{ UINT32_MAX, "2cdf52bf5641027042b9cf9a499e509a58b330e2" },
		{ INT64_MIN, "7185c2a47fb02c996daed26b4e01b83240aee9d4" },
		{ INT64_MAX, "1698328974afa62c8e069860c1516f780d63dbb8" },
	};
	struct digest d;

	(void)state;
	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		integer_digest(&d, "set", vec[i].v);
		assert_digest_hex(&d, vec[i].hex);
	}
}

static void
test_digest_null_set_hashes_no_set_bytes(void **state)
{
	struct digest a, b;

	(void)state;
	integer_digest(&a, NULL, 1);
	assert_digest_hex(&a, "a443f05d05d962202b59abb402afae1737dbf66a");
	/* A non-NULL pointer with length 0 is the null set too. */
	integer_digest(&b, "", 1);
	assert_memory_equal(a.bytes, b.bytes, DIGEST_SIZE);
}

static void
test_digest_partition_is_low_12_bits_of_le_u32(void **state)
{
	struct digest d;

	(void)state;
	/* 607cdd...: bytes 0x60 0x7c -> 0x7c60 & 0xfff = 0xc60. */
	hex_to_digest("607cddba7cd111745ef0a3d783d57f0e83c8f311", &d);
	assert_int_equal(digest_partition(&d), 0xc60);
	digest_compute(&d, "set", 3, "s", 1);
	assert_int_equal(digest_partition(&d), 0xc60);
	hex_to_digest("ffffffff00000000000000000000000000000000", &d);
	assert_int_equal(digest_partition(&d), 4095);

	srand(7);
	for (int i = 0; i < 10000; i++) {
		char key[32];
		int n = snprintf(key, sizeof(key), "k%d-%d", i, rand());
		uint32_t le;

		digest_compute(&d, "myset", 5, key, (size_t)n);
		le = (uint32_t)d.bytes[0] | (uint32_t)d.bytes[1] << 8 |
		    (uint32_t)d.bytes[2] << 16 | (uint32_t)d.bytes[3] << 24;
		assert_int_equal(digest_partition(&d), le & 0xfff);
		assert_true(digest_partition(&d) < PARTITION_COUNT);
	}
}

static void
test_digest_to_hex_is_lowercase_and_terminated(void **state)
{
	struct digest d;
	char hex[2 * DIGEST_SIZE + 1];

	(void)state;
	hex_to_digest("0123456789abcdefABCDEF00ff10203040506070", &d);
	memset(hex, 'X', sizeof(hex));
	digest_to_hex(&d, hex);
	assert_string_equal(hex, "0123456789abcdefabcdef00ff10203040506070");
	assert_int_equal(hex[40], '\0');
}

static void
test_digest_inode_is_stable_and_never_0_or_1(void **state)
{
	struct digest d;

	(void)state;
	memset(&d, 0, sizeof(d));
	assert_true(digest_inode(&d) > 1);
	d.bytes[12] = 1;
	assert_true(digest_inode(&d) > 1);
	assert_int_not_equal(digest_inode(&d), (uint64_t)1 << 63);
	d.bytes[12] = 2;
	assert_int_equal(digest_inode(&d), 2);

	/* Little-endian u64 of bytes 12..19, ignoring the rest of the digest. */
	hex_to_digest("ffffffffffffffffffffffff0102030405060708", &d);
	assert_int_equal(digest_inode(&d), UINT64_C(0x0807060504030201));
	d.bytes[0] = 0;
	d.bytes[11] = 0;
	assert_int_equal(digest_inode(&d), UINT64_C(0x0807060504030201));

	/* Stable: a pure function of the digest. */
	digest_compute(&d, "set", 3, "file.txt", 8);
	assert_int_equal(digest_inode(&d), digest_inode(&d));
}

struct digest_thread_arg {
	struct digest expect[256];
	int failures;
};

static void *
digest_thread(void *p)
{
	struct digest_thread_arg *a = p;

	for (int round = 0; round < 200; round++)
		for (int i = 0; i < 256; i++) {
			char key[16];
			int n = snprintf(key, sizeof(key), "key-%d", i);
			struct digest d;

			digest_compute(&d, "s", 1, key, (size_t)n);
			if (digest_compare(&d, &a->expect[i]) != 0)
				a->failures++;
		}
	return NULL;
}

static void
test_digest_is_thread_safe(void **state)
{
	struct digest_thread_arg args[4];
	pthread_t th[4];

	(void)state;
	for (int t = 0; t < 4; t++) {
		args[t].failures = 0;
		for (int i = 0; i < 256; i++) {
			char key[16];
			int n = snprintf(key, sizeof(key), "key-%d", i);

			digest_compute(&args[t].expect[i], "s", 1, key, (size_t)n);
		}
	}
	for (int t = 0; t < 4; t++)
		assert_int_equal(pthread_create(&th[t], NULL, digest_thread, &args[t]), 0);
	for (int t = 0; t < 4; t++) {
		pthread_join(th[t], NULL);
		assert_int_equal(args[t].failures, 0);
	}
}

/* ---- CRC32C ------------------------------------------------------------ */

static void
test_crc32c_known_vectors(void **state)
{
	uint8_t buf[32];

	(void)state;
	assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(crc32c(0, "", 0), 0);
	/* RFC 3720 (iSCSI) appendix B.4. */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(crc32c(0, buf, 32), 0x8A9136AAu);
	memset(buf, 0xff, sizeof(buf));
	assert_int_equal(crc32c(0, buf, 32), 0x62A8AB43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	assert_int_equal(crc32c(0, buf, 32), 0x46DD794Eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	assert_int_equal(crc32c(0, buf, 32), 0x113FDB5Cu);

	assert_int_equal(crc32c_sw(0, "123456789", 9), 0xE3069283u);
	if (crc32c_hw_available())
		assert_int_equal(crc32c_hw(0, "123456789", 9), 0xE3069283u);
}

static void
test_crc32c_continues_across_calls(void **state)
{
	const char *s = "The quick brown fox jumps over the lazy dog, twice over.";
	size_t n = strlen(s);
	uint32_t whole = crc32c(0, s, n);

	(void)state;
	for (size_t cut = 0; cut <= n; cut++) {
		assert_int_equal(crc32c(crc32c(0, s, cut), s + cut, n - cut), whole);
		assert_int_equal(crc32c_sw(crc32c_sw(0, s, cut), s + cut, n - cut), whole);
	}
}

static void
test_crc32c_hw_and_table_agree_on_all_lengths_and_alignments(void **state)
{
	/* Lengths up to 1300 cover the three-stripe rounds of 384 bytes
	 * (none, one, several) with every tail length. */
	enum { MAXLEN = 1300 };
	uint8_t *buf = malloc(MAXLEN + 16);
	uint32_t seed = 12345;

	(void)state;
	assert_non_null(buf);
	for (size_t i = 0; i < MAXLEN + 16; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 16);
	}
	if (!crc32c_hw_available())
		print_message("crc32c: no SSE4.2 on this CPU, only the table path runs\n");
	for (size_t off = 0; off < 16; off++)
		for (size_t len = 0; len <= MAXLEN; len += off < 2 ? 1 : 7) {
			uint32_t sw = crc32c_sw(0, buf + off, len);

			assert_int_equal(crc32c(0, buf + off, len), sw);
			assert_int_equal(crc32c(0xdeadbeef, buf + off, len),
			    crc32c_sw(0xdeadbeef, buf + off, len));
			if (crc32c_hw_available()) {
				assert_int_equal(crc32c_hw(0, buf + off, len), sw);
				assert_int_equal(crc32c_hw(0xdeadbeef, buf + off, len),
				    crc32c_sw(0xdeadbeef, buf + off, len));
			}
		}
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ripemd160_standard_vectors),
		cmocka_unit_test(test_digest_matches_aerospike_string_and_blob_keys),
		cmocka_unit_test(test_digest_matches_aerospike_integer_keys),
		cmocka_unit_test(test_digest_null_set_hashes_no_set_bytes),
		cmocka_unit_test(test_digest_partition_is_low_12_bits_of_le_u32),
		cmocka_unit_test(test_digest_to_hex_is_lowercase_and_terminated),
		cmocka_unit_test(test_digest_inode_is_stable_and_never_0_or_1),
		cmocka_unit_test(test_digest_is_thread_safe),
		cmocka_unit_test(test_crc32c_known_vectors),
		cmocka_unit_test(test_crc32c_continues_across_calls),
		cmocka_unit_test(test_crc32c_hw_and_table_agree_on_all_lengths_and_alignments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
