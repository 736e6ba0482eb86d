/*
 * fuzz_plain.h - what the plain (non-libFuzzer) fuzz drivers share: a
 * fixed-seed PRNG, so a failing run reproduces exactly; a clock for the
 * time bound; running one input from a heap buffer of exactly its size (so
 * ASan sees any over-read); replaying input files; writing one corpus file.
 *
 * Included by fuzz_main.c (record), fuzz_fabric_main.c (fabric messages)
 * and fuzz_driver.c (targets with seeds built in code); each defines
 * FUZZ_RNG_SEED first if it wants another sequence.  Everything is static
 * inline: a driver that does not use a helper gets no warning.
 */
#ifndef RECFS_FUZZ_PLAIN_H
#define RECFS_FUZZ_PLAIN_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef FUZZ_RNG_SEED
#define FUZZ_RNG_SEED 0x2545f4914f6cdd1dULL
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng_state = FUZZ_RNG_SEED;

/* xorshift64*: fast, and the same sequence on every machine. */
static inline uint64_t
rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

/* A number below n (0 when n is 0). */
static inline uint64_t
rng_below(uint64_t n)
{
	return n == 0 ? 0 : rng() % n;
}

static inline double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void
run_exact(const uint8_t *data, size_t len)
{
	uint8_t *exact = malloc(len ? len : 1);

	if (exact == NULL)
		abort();
	memcpy(exact, data, len);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
}

/* Runs each file named in argv (e.g. a libFuzzer crash); 0, or 2 on an error. */
static inline int
replay_files(const char *name, int argc, char **argv)
{
	static uint8_t buf[16 * 1024 * 1024];

	for (int i = 0; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		size_t len;

		if (f == NULL) {
			fprintf(stderr, "%s: %s: %s\n", name, argv[i], strerror(errno));
			return 2;
		}
		len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		run_exact(buf, len);
		printf("%s: %s: ok (%zu bytes)\n", name, argv[i], len);
	}
	return 0;
}

/* Writes DIR/seed-NNNN; 0, or 2 on an error (said on stderr). */
static inline int
write_seed(const char *name, const char *dir, unsigned long i, const uint8_t *buf, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/seed-%04lu", dir, i);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
		fprintf(stderr, "%s: %s: %s\n", name, path, strerror(errno));
		return 2;
	}
	return 0;
}

#endif
