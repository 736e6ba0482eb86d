/*
 * fuzz_driver.c - plain driver for the fuzz targets that build their seed
 * inputs in code (fuzz_cold_start.c, fuzz_config.c), used when not building
 * with libFuzzer, so `make check` runs the seeds and a bounded number of
 * mutations of them under the sanitizers of the build.
 *
 *   fuzz_X                        every seed, then mutations for ~2 s
 *   fuzz_X -n N -t SECONDS        other bounds on the mutations
 *   fuzz_X FILE...                replay inputs (e.g. a libFuzzer crash)
 *   fuzz_X --write-corpus DIR     write the seeds (scripts/fuzz.sh)
 *
 * A target provides LLVMFuzzerTestOneInput() and fuzz_seed(): seed i into
 * buf (at most cap bytes), its length, 0 past the last seed.  Mutations
 * come from a fixed-seed PRNG, so a failure reproduces exactly.  Each input
 * sits in a heap buffer of exactly its size so ASan sees any over-read.
 * tests/fuzz/fuzz_main.c is the record target's own driver (it generates
 * records rather than holding seeds).
 */
#include "fuzz_plain.h"

size_t fuzz_seed(unsigned i, uint8_t *buf, size_t cap);
extern const char fuzz_target_name[];

#define SEED_CAP (1024 * 1024)
#define MAX_SEEDS 32

/* One random change in place: bit flips, a byte run, truncation, a copy of
 * bytes from elsewhere in the input.  Returns the new length. */
static size_t
mutate(uint8_t *buf, size_t len, size_t cap)
{
	static const uint8_t interesting[] = { 0, 1, 0x7f, 0x80, 0xff, '\n', ':', ' ', '-', '#' };

	if (len == 0)
		return 0;
	switch (rng_below(5)) {
	case 0:
		for (size_t k = 1 + rng_below(8); k > 0; k--)
			buf[rng_below(len)] ^= (uint8_t)(1u << rng_below(8));
		break;
	case 1:
		for (size_t k = 1 + rng_below(4); k > 0; k--)
			buf[rng_below(len)] = interesting[rng_below(sizeof(interesting))];
		break;
	case 2:
		len = rng_below(len + 1);
		break;
	case 3: { /* copy a run from elsewhere (duplicates records, YAML lines) */
		size_t from = rng_below(len), n = 1 + rng_below(len - from);
		size_t at = rng_below(len + 1);

		if (at + n > cap)
			n = cap - at;
		memmove(buf + at, buf + from, n);
		if (at + n > len)
			len = at + n;
		break;
	}
	default: { /* insert a random byte */
		size_t at = rng_below(len + 1);

		if (len < cap) {
			memmove(buf + at + 1, buf + at, len - at);
			buf[at] = (uint8_t)rng();
			len++;
		}
		break;
	}
	}
	return len;
}

static int
write_corpus(const char *dir)
{
	static uint8_t buf[SEED_CAP];
	size_t len;

	for (unsigned i = 0; (len = fuzz_seed(i, buf, sizeof(buf))) > 0; i++)
		if (write_seed(fuzz_target_name, dir, i, buf, len) != 0)
			return 2;
	return 0;
}

int
main(int argc, char **argv)
{
	static uint8_t seeds[MAX_SEEDS][SEED_CAP / 4], buf[SEED_CAP];
	static size_t seed_len[MAX_SEEDS];
	unsigned n_seeds = 0;
	long iterations = 100000, i;
	double seconds = 2.0, start;
	int opt = 1;

	if (argc >= 3 && strcmp(argv[1], "--write-corpus") == 0)
		return write_corpus(argv[2]);
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
		return replay_files(fuzz_target_name, argc - opt, argv + opt);

	start = now_s();
	while (n_seeds < MAX_SEEDS &&
	    (seed_len[n_seeds] = fuzz_seed(n_seeds, seeds[n_seeds], sizeof(seeds[0]))) > 0) {
		run_exact(seeds[n_seeds], seed_len[n_seeds]);
		n_seeds++;
	}
	if (n_seeds == 0) {
		fprintf(stderr, "%s: no seeds\n", fuzz_target_name);
		return 1;
	}
	for (i = 0; i < iterations && now_s() - start < seconds; i++) {
		unsigned s = (unsigned)rng_below(n_seeds);
		size_t len = seed_len[s];

		memcpy(buf, seeds[s], len);
		for (size_t m = 1 + rng_below(3); m > 0; m--)
			len = mutate(buf, len, sizeof(buf));
		run_exact(buf, len);
	}
	printf("%s: %u seeds and %ld mutated inputs in %.2f s\n", fuzz_target_name, n_seeds, i,
	    now_s() - start);
	return 0;
}
