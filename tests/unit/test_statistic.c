/*
 * test_statistic.c - the statistics table (base/statistic.h) and the
 * latency histograms (base/histogram.h): names that every consumer can
 * use as they are (file lines, Prometheus names, shell variables), no
 * duplicates within a file, and histogram buckets whose bounds are the
 * thresholds operators read (1 ms, 8 ms, 64 ms).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include <pthread.h>

#include "base/histogram.h"
#include "base/shard.h"
#include "base/statistic.h"

static void
test_statistic_names_are_identifiers_unique_per_file_and_documented(void **state)
{
	for (int s = 0; s < STAT_SECTION_COUNT; s++) {
		size_t n;
		const struct statistic *rows = statistic_rows((enum stat_section)s, &n);
		const struct stat_section_info *si = statistic_section((enum stat_section)s);

		assert_non_null(si);
		assert_true(n > 0);
		assert_int_equal(statistic_section_find(si->name), s);
		for (size_t i = 0; i < n; i++) {
			const char *c = rows[i].name;

			assert_int_equal((int)rows[i].section, s);
			/* [a-z][a-z0-9_]*: valid in name=value files and Prometheus */
			assert_true(c[0] >= 'a' && c[0] <= 'z');
			assert_int_equal(strspn(c, "abcdefghijklmnopqrstuvwxyz0123456789_"), strlen(c));
			assert_true(strlen(rows[i].help) > 5);
			assert_true(rows[i].help[strlen(rows[i].help) - 1] == '.');
			for (size_t j = 0; j < i; j++)
				assert_string_not_equal(rows[j].name, c);
		}
	}
	/* the two halves of .info/statistics share one file */
	size_t nn, nf;
	const struct statistic *node = statistic_rows(STAT_SECTION_NODE, &nn);
	const struct statistic *fuse = statistic_rows(STAT_SECTION_FUSE, &nf);
	for (size_t i = 0; i < nn; i++)
		for (size_t j = 0; j < nf; j++)
			assert_string_not_equal(node[i].name, fuse[j].name);
	assert_int_equal(statistic_section_find("NOPE"), -1);
}

static void
test_statistic_format_shows_bools_as_words(void **state)
{
	size_t n;
	const struct statistic *rows = statistic_rows(STAT_SECTION_CLUSTER, &n);
	char buf[32];

	for (size_t i = 0; i < n; i++) {
		if (rows[i].kind != STAT_BOOL)
			continue;
		statistic_format(&rows[i], 1, buf, sizeof(buf));
		assert_string_equal(buf, "true");
		statistic_format(&rows[i], 0, buf, sizeof(buf));
		assert_string_equal(buf, "false");
		assert_string_equal(statistic_metric_type(&rows[i]), "gauge");
	}
	rows = statistic_rows(STAT_SECTION_NAMESPACE, &n);
	statistic_format(&rows[STAT_NS_objects], 12345678901ULL, buf, sizeof(buf));
	assert_string_equal(buf, "12345678901");
	assert_string_equal(statistic_metric_type(&rows[STAT_NS_client_read_success]), "counter");
	assert_string_equal(statistic_metric_type(&rows[STAT_NS_objects]), "gauge");
	/* a time in microseconds (a counter of waits) is seconds in metrics,
	 * the unit not in the name */
	struct statistic us = { .name = "x_wait_time", .kind = STAT_COUNTER, .unit = "us", .help = "x." };
	struct stat_section_info si = { .prefix = "recfs_fuse_" };
	char name[64];

	statistic_metric_name(&us, &si, name, sizeof(name));
	assert_string_equal(name, "recfs_fuse_x_wait_time_seconds_total");
	statistic_metric_value(&us, 1234567, buf, sizeof(buf));
	assert_string_equal(buf, "1.234567");
	statistic_metric_value(&us, 1500, buf, sizeof(buf));
	assert_string_equal(buf, "0.0015");
}

static void
test_histogram_buckets_meet_the_ms_thresholds(void **state)
{
	assert_int_equal(histogram_bucket(0), 0);
	assert_int_equal(histogram_bucket(999), 0);            /* < 1 us */
	assert_int_equal(histogram_bucket(1000), 1);           /* [1, 2) us */
	assert_int_equal(histogram_bucket(999999), 10);        /* [512, 1000) us */
	assert_int_equal(histogram_bucket(1000000), 11);       /* [1, 2) ms */
	assert_int_equal(histogram_bucket(7999999), 13);
	assert_int_equal(histogram_bucket(8000000), 14);       /* [8, 16) ms */
	assert_int_equal(histogram_bucket(64000000), 17);      /* [64, 128) ms */
	assert_int_equal(histogram_bucket(UINT64_MAX), HISTOGRAM_BUCKETS - 1);
	assert_int_equal(histogram_bucket_limit_us(0), 1);
	assert_int_equal(histogram_bucket_limit_us(9), 512);
	assert_int_equal(histogram_bucket_limit_us(10), 1000);
	assert_int_equal(histogram_bucket_limit_us(11), 2000);
	assert_int_equal(histogram_bucket_limit_us(HISTOGRAM_BUCKETS - 1), UINT64_MAX);
	/* every duration lies below its bucket's bound and at or above the previous one */
	for (uint64_t ns = 0; ns < 3000000000ULL; ns = ns * 3 + 7) {
		unsigned b = histogram_bucket(ns);

		assert_true(ns / 1000 < histogram_bucket_limit_us(b));
		if (b > 0)
			assert_true(ns / 1000 >= histogram_bucket_limit_us(b - 1));
	}
}

static void
test_histogram_percentiles_and_thresholds(void **state)
{
	static struct histogram h;
	struct histogram_snapshot s;

	histogram_read(&h, &s);
	assert_int_equal(s.count, 0);
	assert_int_equal(histogram_percentile_us(&s, 50), 0);
	/* 98 fast (3 us), 1 at 2 ms, 1 at 100 ms */
	for (int i = 0; i < 98; i++)
		histogram_add(&h, 3000);
	histogram_add(&h, 2000000);
	histogram_add(&h, 100000000);
	histogram_read(&h, &s);
	assert_int_equal(s.count, 100);
	assert_int_equal(s.sum_ns, 98 * 3000ULL + 2000000 + 100000000);
	assert_int_equal(histogram_percentile_us(&s, 50), 4);        /* [2, 4) us */
	assert_int_equal(histogram_percentile_us(&s, 99), 4000);     /* [2, 4) ms */
	assert_int_equal(histogram_percentile_us(&s, 99.9), 128000); /* [64, 128) ms */
	assert_true(histogram_at_least_ms_pct(&s, 1) > 1.99 && histogram_at_least_ms_pct(&s, 1) < 2.01);
	assert_true(histogram_at_least_ms_pct(&s, 8) > 0.99 && histogram_at_least_ms_pct(&s, 8) < 1.01);
	assert_true(histogram_at_least_ms_pct(&s, 64) > 0.99);
	assert_int_equal(histogram_count_below_us(&s, 4), 98);
	assert_int_equal(histogram_count_below_us(&s, 1000), 98);
	assert_int_equal(histogram_count_below_us(&s, 4000), 99);
}

/* Threads adding and subtracting through their shards: the sum is exact
 * once they are done, and each thread keeps one shard. */
#define SHARD_THREADS 4
#define SHARD_ROUNDS 20000

static struct sharded_counter shard_counter;

static void *
shard_worker(void *arg)
{
	unsigned first = shard_self();

	(void)arg;
	for (int i = 0; i < SHARD_ROUNDS; i++) {
		sharded_add(&shard_counter, 5);
		sharded_add(&shard_counter, -2);
		if (shard_self() != first)
			return (void *)1;
	}
	return first < SHARDS ? NULL : (void *)1;
}

static void
test_sharded_counter_sums_exactly_across_threads(void **state)
{
	pthread_t th[SHARD_THREADS];

	(void)state;
	for (int i = 0; i < SHARD_THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, shard_worker, NULL), 0);
	for (int i = 0; i < SHARD_THREADS; i++) {
		void *bad = (void *)1;

		assert_int_equal(pthread_join(th[i], &bad), 0);
		assert_null(bad);
	}
	assert_int_equal(sharded_sum(&shard_counter), (int64_t)SHARD_THREADS * SHARD_ROUNDS * 3);
	/* Threads land on more than one shard (round robin). */
	int used = 0;
	for (unsigned i = 0; i < SHARDS; i++)
		used += shard_counter.s[i].v != 0;
	assert_true(used >= 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_statistic_names_are_identifiers_unique_per_file_and_documented),
		cmocka_unit_test(test_statistic_format_shows_bools_as_words),
		cmocka_unit_test(test_histogram_buckets_meet_the_ms_thresholds),
		cmocka_unit_test(test_histogram_percentiles_and_thresholds),
		cmocka_unit_test(test_sharded_counter_sums_exactly_across_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
