/*
 * fuzz_main.c - plain driver for fuzz targets, used when not building with
 * libFuzzer, so `make check` exercises the decoder under the sanitizers of
 * the build.
 *
 *   fuzz_record                  ~200k generated inputs, at most a few s
 *   fuzz_record -n N -t SECONDS  other bounds
 *   fuzz_record FILE...          replay inputs (e.g. a libFuzzer crash)
 *   fuzz_record --write-corpus DIR [N]  write N valid records as seeds
 *
 * Inputs come from a seeded PRNG, so a failure reproduces exactly: valid
 * records of random shape, then byte flips, interesting values in the
 * length fields, truncation, extension and splices.  Each input sits in a
 * heap buffer of exactly its size so ASan sees any over-read.
 *
 * Rejected: linking libFuzzer's own driver (needs clang; the default build
 * is gcc) and AFL++ (an external tool; scripts/fuzz.sh covers deep runs).
 */
#include <stdbool.h>

#define FUZZ_RNG_SEED 0x9e3779b97f4a7c15ULL
#include "fuzz_plain.h"
#include "record/record.h"

void fuzz_record_counts(unsigned long *decoded, unsigned long *parsed);

#define GEN_CAP (64 * 1024)
#define DEFAULT_ITERATIONS 200000
#define DEFAULT_SECONDS 4.0

static uint8_t value_pool[256];

/* A valid record of random shape, encoded into buf; returns its size. */
static size_t
gen_record(uint8_t *buf)
{
	static const char chars[] = "abcXYZ09._-~ /";
	static char set[RECORD_SET_MAX], key[RECORD_KEY_MAX];
	struct record r;
	uint32_t n_bins;
	long n;

	record_init(&r);
	r.flags = (uint8_t)rng_below(RECORD_F_KNOWN + 1);
	r.generation = (uint16_t)(1 + rng_below(UINT16_MAX));
	for (int i = 0; i < DIGEST_SIZE; i++)
		r.digest.bytes[i] = (uint8_t)rng();
	r.last_update_ms = rng();
	r.void_time = rng_below(4) == 0 ? 0 : (uint32_t)rng();
	r.ttl = (int32_t)rng_below(3) - 1;
	r.mark = rng_below(4) == 0 ? (uint16_t)rng() : 0;  /* a regain mark now and then */
	r.set_len = (uint8_t)(rng_below(2) ? rng_below(RECORD_SET_MAX + 1) : 0);
	for (int i = 0; i < r.set_len; i++)
		set[i] = chars[rng_below(sizeof(chars) - 1)];
	r.set = set;
	r.key_type = (uint8_t)rng_below(5);
	r.key_len = (uint16_t)(rng_below(8) == 0 ? rng_below(RECORD_KEY_MAX + 1) : rng_below(20));
	for (int i = 0; i < r.key_len; i++)
		key[i] = chars[rng_below(sizeof(chars) - 1)];
	r.key = key;
	if (r.flags & RECORD_F_HAS_META) {
		r.meta.mode = rng_below(07777 + 1);
		r.meta.uid = (uint32_t)rng();
		r.meta.gid = (uint32_t)rng();
		r.meta.mtime_ns = (int64_t)rng();
		r.meta.atime_ns = rng_below(2) ? (int64_t)rng() : 0;
		r.meta.ino = rng_below(2) ? rng() : 0;
	}
	n_bins = rng_below(16) == 0 ? rng_below(200) : rng_below(8);
	if (r.flags & RECORD_F_TOMBSTONE)
		n_bins = 0;
	if (record_bins_reserve(&r, n_bins) != 0)
		abort();
	for (uint32_t i = 0; i < n_bins; i++) {
		struct bin *b = &r.bins[i];

		memset(b, 0, sizeof(*b));
		b->name_len = (uint8_t)(1 + rng_below(RECORD_BIN_NAME_MAX));
		for (int k = 0; k < b->name_len; k++)
			b->name[k] = chars[rng_below(sizeof(chars) - 1)];
		b->type = (uint8_t)(BIN_INTEGER + rng_below(4));
		if (b->type == BIN_INTEGER || b->type == BIN_DOUBLE) {
			b->v.integer = (int64_t)rng();
		} else {
			b->v.bytes.len = rng_below(8) == 0 ? rng_below(sizeof(value_pool)) : rng_below(16);
			b->v.bytes.data = value_pool + rng_below(sizeof(value_pool) - b->v.bytes.len + 1);
		}
		r.n_bins = (uint16_t)(i + 1);
	}
	n = record_flat_encode(&r, buf, GEN_CAP);
	record_release(&r);
	if (n <= 0) {
		fprintf(stderr, "fuzz_main: generator made an unencodable record (%ld)\n", n);
		abort();
	}
	return (size_t)n;
}

static void
put_le(uint8_t *buf, size_t len, size_t off, uint64_t v, int width)
{
	for (int i = 0; i < width && off + i < len; i++)
		buf[off + i] = (uint8_t)(v >> (8 * i));
}

/* Apply one random mutation in place; returns the new length (<= cap). */
static size_t
mutate(uint8_t *buf, size_t len, size_t cap)
{
	static const uint64_t interesting[] = {
		0, 1, 2, 7, 8, 15, 16, 63, 64, 65, 79, 80, 127, 128, 255, 256,
		0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff,
	};
	static const int fields[][2] = { /* offset, width: the length fields */
		{ 4, 4 }, { 9, 1 }, { 10, 2 }, { 44, 4 }, { 48, 1 }, { 49, 1 },
		{ 50, 2 }, { 52, 2 }, { 54, 2 }, { 56, 4 }, { 60, 4 },
	};

	switch (rng_below(7)) {
	case 0: /* flip bits in a few bytes */
		for (uint32_t k = 1 + rng_below(4); k > 0 && len > 0; k--)
			buf[rng_below((uint32_t)len)] ^= (uint8_t)(1 + rng_below(255));
		break;
	case 1: { /* interesting value into a header field */
		uint32_t f = rng_below(sizeof(fields) / sizeof(fields[0]));
		uint64_t v = interesting[rng_below(sizeof(interesting) / sizeof(interesting[0]))];

		if (rng_below(3) == 0)
			v = len + rng_below(33) - 16;
		put_le(buf, len, (size_t)fields[f][0], v, fields[f][1]);
		break;
	}
	case 2: /* interesting value anywhere (lengths inside the body) */
		if (len > 0)
			put_le(buf, len, rng_below((uint32_t)len),
			    interesting[rng_below(sizeof(interesting) / sizeof(interesting[0]))],
			    1 << rng_below(3));
		break;
	case 3: /* truncate */
		len = rng_below((uint32_t)len + 1);
		break;
	case 4: /* extend with random bytes */
		for (uint32_t k = 1 + rng_below(32); k > 0 && len < cap; k--)
			buf[len++] = (uint8_t)rng();
		break;
	case 5: { /* splice: a valid record's tail over ours */
		static uint8_t other[GEN_CAP];
		size_t olen = gen_record(other);
		size_t at = rng_below((uint32_t)len + 1), from = rng_below((uint32_t)olen);
		size_t n = olen - from;

		if (at + n > cap)
			n = cap - at;
		memcpy(buf + at, other + from, n);
		if (at + n > len)
			len = at + n;
		break;
	}
	default: /* insert or delete a byte in the body, shifting the rest */
		if (len > 64 && len < cap) {
			size_t at = 64 + rng_below((uint32_t)(len - 64));

			if (rng_below(2)) {
				memmove(buf + at + 1, buf + at, len - at);
				buf[at] = (uint8_t)rng();
				len++;
			} else {
				memmove(buf + at, buf + at + 1, len - at - 1);
				len--;
			}
		}
		break;
	}
	return len;
}

static int
write_corpus(const char *dir, long count)
{
	static uint8_t buf[GEN_CAP];

	for (long i = 0; i < count; i++)
		if (write_seed("fuzz_main", dir, (unsigned long)i, buf, gen_record(buf)) != 0)
			return 2;
	return 0;
}

int
main(int argc, char **argv)
{
	static uint8_t buf[GEN_CAP];
	long iterations = DEFAULT_ITERATIONS, i;
	double seconds = DEFAULT_SECONDS, start;
	unsigned long decoded, parsed;
	size_t len = 0;
	int opt = 1;

	for (size_t k = 0; k < sizeof(value_pool); k++)
		value_pool[k] = (uint8_t)(k * 37 + 11);
	if (argc >= 3 && strcmp(argv[1], "--write-corpus") == 0)
		return write_corpus(argv[2], argc >= 4 ? atol(argv[3]) : 64);
	while (opt + 1 < argc && argv[opt][0] == '-') {
		if (strcmp(argv[opt], "-n") == 0)
			iterations = atol(argv[opt + 1]);
		else if (strcmp(argv[opt], "-t") == 0)
			seconds = atof(argv[opt + 1]);
		else
			break;
		opt += 2;
	}
	if (opt < argc)
		return replay_files("fuzz_main", argc - opt, argv + opt);

	start = now_s();
	for (i = 0; i < iterations; i++) {
		/* Every few inputs start from a fresh valid record. */
		if (len == 0 || rng_below(4) == 0)
			len = gen_record(buf);
		for (uint32_t m = rng_below(4); m > 0; m--)
			len = mutate(buf, len, sizeof(buf));
		run_exact(buf, len);
		if ((i & 1023) == 1023 && now_s() - start > seconds) {
			i++;
			break;
		}
	}
	fuzz_record_counts(&decoded, &parsed);
	printf("fuzz_record: %ld inputs in %.2f s: %lu reached the parser, %lu decoded\n",
	    i, now_s() - start, parsed, decoded);
	/* A generator that stopped making valid records would test nothing. */
	if (decoded < (unsigned long)i / 10 || parsed < (unsigned long)i / 4) {
		fprintf(stderr, "fuzz_record: too few inputs reached the decoder\n");
		return 1;
	}
	return 0;
}
