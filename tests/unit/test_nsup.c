/*
 * test_nsup.c - expiration, eviction and stop-writes (docs/operations.md) through
 * the transaction layer, with nsup running every second.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "txn/txn.h"

static struct recfs_config cfg;
static char dir[256], path[300];

static void
config_memory(uint64_t data_size)
{
	config_free(&cfg);
	memset(&cfg, 0, sizeof(cfg));
	cfg.n_namespaces = 1;
	struct ns_config *n = &cfg.ns[0];
	strcpy(n->name, "ns");
	strcpy(n->file_bin, "data");
	n->replication_factor = 1;
	n->nsup_period = 1;
	n->stop_writes_used_pct = 90;
	n->stop_writes_avail_pct = 0;
	n->storage.type = STORAGE_MEMORY;
	n->storage.data_size = data_size;
	n->storage.write_block_size = 128 * 1024;
	n->storage.defrag_lwm_pct = 50;
}

struct stat_query {
	const char *name;
	long value;
};

static void
stat_pick(void *arg, const char *name, const char *value)
{
	struct stat_query *q = arg;

	/* BOOL statistics read true/false. */
	if (strcmp(name, q->name) == 0)
		q->value = strcmp(value, "true") == 0 ? 1 : atol(value);
}

static long
stat_value(struct namespace *ns, const char *name)
{
	struct stat_query q = { name, -1 };

	txn_namespace_stats(ns, stat_pick, &q);
	return q.value;
}

static int
put(struct namespace *ns, int i, int32_t ttl, size_t len)
{
	char k[32], v[8192];
	int n = snprintf(k, sizeof(k), "k%06d", i);
	struct txn_key key = { NULL, 0, k, (size_t)n };

	memset(v, 'a' + i % 26, len);
	struct txn_write w = { .set_file = true, .file_data = v, .file_len = len,
	    .set_ttl = ttl != 0, .ttl = ttl };
	return txn_write(ns, &key, &w, NULL);
}

static int
exists(struct namespace *ns, int i)
{
	char k[32];
	int n = snprintf(k, sizeof(k), "k%06d", i);
	struct txn_key key = { NULL, 0, k, (size_t)n };
	struct record_attr a;

	return txn_stat(ns, &key, &a) == 0;
}

/* Wait (bounded) until stat name reaches at least want. */
static long
wait_stat(struct namespace *ns, const char *name, long want, int max_ms)
{
	long v = stat_value(ns, name);

	for (int t = 0; t < max_ms / 20 && v < want; t++) {
		usleep(20000);
		v = stat_value(ns, name);
	}
	return v;
}

static void
test_nsup_ttl_record_vanishes_at_void_time_and_is_counted(void **state)
{
	struct node *node;
	struct namespace *ns;
	struct txn_record r;
	char k[] = "k000001";
	struct txn_key key = { NULL, 0, k, 7 };

	config_memory(32u << 20);
	assert_int_equal(node_open(&node, &cfg), 0);
	ns = node_namespace(node, 0);
	assert_int_equal(put(ns, 1, 2, 100), 0);       /* 2 s TTL */
	assert_int_equal(put(ns, 2, RECORD_TTL_NEVER, 100), 0);
	assert_int_equal(txn_read(ns, &key, &r), 0);
	assert_true(r.attr.void_time != 0);
	txn_record_release(&r);
	assert_true(exists(ns, 1));
	/* Invisible once its void time has passed (at most ~3 s from now)... */
	int t;
	for (t = 0; t < 400 && exists(ns, 1); t++)
		usleep(10000);
	assert_false(exists(ns, 1));
	assert_true(t >= 50);                          /* ... not before ~1 s */
	assert_int_equal(txn_read(ns, &key, &r), -ENOENT);
	/* ... and nsup reclaims and counts it; the no-TTL record stays. */
	assert_true(wait_stat(ns, "expired_objects", 1, 3000) >= 1);
	assert_int_equal(stat_value(ns, "objects"), 1);
	assert_true(exists(ns, 2));
	/* A write with TTL 0 takes the namespace default (none here). */
	assert_int_equal(put(ns, 3, 0, 100), 0);
	char k3[] = "k000003";
	struct txn_key key3 = { NULL, 0, k3, 7 };
	assert_int_equal(txn_read(ns, &key3, &r), 0);
	assert_int_equal(r.attr.void_time, 0);
	txn_record_release(&r);
	node_close(node, true);
}

static void
test_nsup_stop_writes_refuses_writes_serves_reads_and_lifts(void **state)
{
	struct node *node;
	struct namespace *ns;
	int written = 0, rc = 0;

	config_memory(16u << 20);
	cfg.ns[0].stop_writes_used_pct = 50;
	assert_int_equal(node_open(&node, &cfg), 0);
	ns = node_namespace(node, 0);
	/* Write (paced, ~10 MB/s) until refused; nsup checks every 100 ms. */
	for (int i = 0; i < 20000; i++) {
		rc = put(ns, i, RECORD_TTL_NEVER, 4000);
		if (rc != 0)
			break;
		written++;
		if (i % 32 == 31)
			usleep(10000);
	}
	assert_int_equal(rc, -ENOSPC);
	assert_int_equal(stat_value(ns, "stop_writes"), 1);
	assert_true(stat_value(ns, "fail_stop_writes") >= 1);
	/* Reads and deletes go on. */
	for (int i = 0; i < written; i += 97)
		assert_true(exists(ns, i));
	for (int i = 0; i < written / 2; i++) {
		char k[32];
		int n = snprintf(k, sizeof(k), "k%06d", i);
		struct txn_key key = { NULL, 0, k, (size_t)n };
		assert_int_equal(txn_delete(ns, &key), 0);
	}
	/* Writes resume by themselves. */
	for (int t = 0; t < 300 && (rc = put(ns, 100000, RECORD_TTL_NEVER, 4000)) == -ENOSPC; t++)
		usleep(10000);
	assert_int_equal(rc, 0);
	assert_int_equal(stat_value(ns, "stop_writes"), 0);
	node_close(node, true);
}

static void
test_nsup_eviction_keeps_used_under_mark_and_spares_no_ttl(void **state)
{
	struct node *node;
	struct namespace *ns;

	config_memory(16u << 20);
	cfg.ns[0].evict_used_pct = 30;
	cfg.ns[0].stop_writes_used_pct = 90;
	assert_int_equal(node_open(&node, &cfg), 0);
	ns = node_namespace(node, 0);
	/* 200 records that never expire, then a steady load with TTLs. */
	for (int i = 0; i < 200; i++)
		assert_int_equal(put(ns, i, RECORD_TTL_NEVER, 4000), 0);
	for (int i = 200; i < 2200; i++) {
		assert_int_equal(put(ns, i, 100 + i, 4000), 0);
		if (i % 200 == 0)
			usleep(100000);
	}
	long total = stat_value(ns, "data_total_bytes");
	/* nsup brings used space back under evict-used-pct. */
	long used = stat_value(ns, "data_used_bytes");
	for (int t = 0; t < 300 && used > total * 30 / 100; t++) {
		usleep(10000);
		used = stat_value(ns, "data_used_bytes");
	}
	assert_true(used <= total * 30 / 100);
	assert_true(stat_value(ns, "evicted_objects") > 0);
	/* Soonest to expire went first; records without a TTL never. */
	for (int i = 0; i < 200; i++)
		assert_true(exists(ns, i));
	assert_false(exists(ns, 200));
	assert_true(exists(ns, 2199));
	node_close(node, true);
}

static void
test_nsup_expiry_on_device_is_a_durable_delete(void **state)
{
	struct node *node;
	struct namespace *ns;

	snprintf(dir, sizeof(dir), "/tmp/recfs-test-nsup-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/d.dat", dir);
	config_memory(0);
	cfg.ns[0].storage.type = STORAGE_DEVICE;
	cfg.ns[0].storage.files[0] = strdup(path);
	cfg.ns[0].storage.n_files = 1;
	cfg.ns[0].storage.filesize = 64u << 20;
	cfg.ns[0].storage.flush_max_ms = 100;
	cfg.ns[0].storage.max_write_cache = 8u << 20;
	cfg.ns[0].storage.direct_io = true;
	assert_int_equal(node_open(&node, &cfg), 0);
	ns = node_namespace(node, 0);
	assert_int_equal(put(ns, 1, RECORD_TTL_NEVER, 100), 0);
	assert_int_equal(put(ns, 1, 1, 100), 0);       /* newer copy, 1 s TTL */
	assert_true(wait_stat(ns, "expired_objects", 1, 4000) >= 1);
	/* Reclaimed with a tombstone: the older copy without a TTL can never
	 * win a cold start. */
	assert_int_equal(stat_value(ns, "tombstones"), 1);
	node_close(node, true);
	assert_int_equal(node_open(&node, &cfg), 0);
	ns = node_namespace(node, 0);
	assert_false(exists(ns, 1));
	node_close(node, true);
	unlink(path);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nsup_ttl_record_vanishes_at_void_time_and_is_counted),
		cmocka_unit_test(test_nsup_stop_writes_refuses_writes_serves_reads_and_lifts),
		cmocka_unit_test(test_nsup_eviction_keeps_used_under_mark_and_spares_no_ttl),
		cmocka_unit_test(test_nsup_expiry_on_device_is_a_durable_delete),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	config_free(&cfg);
	return rc;
}
