/*
 * test_shadow.c - the memory engine with a shadow file (docs/storage-format.md): records
 * served from RAM survive a clean restart and a SIGKILL (everything fsync'd
 * or written under commit-to-device), deletes stay deleted, and reads never
 * touch the shadow.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "txn/txn.h"

static char dir[256];
static char path[300];
static struct recfs_config cfg;

static void
config_shadow(uint64_t data_size)
{
	config_free(&cfg);
	memset(&cfg, 0, sizeof(cfg));
	cfg.n_namespaces = 1;
	struct ns_config *n = &cfg.ns[0];
	strcpy(n->name, "cache");
	strcpy(n->file_bin, "data");
	n->replication_factor = 1;
	n->storage.type = STORAGE_MEMORY;
	n->storage.data_size = data_size;
	n->storage.files[0] = strdup(path);
	n->storage.n_files = 1;
	n->storage.filesize = data_size * 2;
	n->storage.write_block_size = 1u << 20;
	n->storage.flush_max_ms = 100;
	n->storage.max_write_cache = 64u << 20;
	n->storage.defrag_lwm_pct = 50;
	n->storage.direct_io = true;
}

static int
setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/recfs-test-shadow-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/cache.shadow", dir);
	return 0;
}

static int
teardown(void **state)
{
	unlink(path);
	rmdir(dir);
	config_free(&cfg);
	return 0;
}

static struct txn_key
key_of(char *buf, int i)
{
	int n = snprintf(buf, 32, "r%07d", i);
	return (struct txn_key){ NULL, 0, buf, (size_t)n };
}

static int
put(struct namespace *ns, int i, int version, unsigned flags)
{
	char k[32], v[256];
	struct txn_key key = key_of(k, i);
	int n = snprintf(v, sizeof(v), "record %d version %d", i, version);
	struct txn_bin_op bin = { .name = "color", .name_len = 5, .type = BIN_BLOB,
	    .data = "blue", .len = 4 };
	struct txn_write w = { .flags = flags, .set_file = true, .file_data = v, .file_len = (size_t)n,
	    .set_mode = true, .mode = 0640, .set_uid = true, .uid = 1000, .set_gid = true, .gid = 100,
	    .bins = &bin, .n_bins = i % 3 == 0 };
	return txn_write(ns, &key, &w, NULL);
}

static int
check(struct namespace *ns, int i, int version)
{
	char k[32], v[256];
	struct txn_key key = key_of(k, i);
	struct txn_record r;
	int n = snprintf(v, sizeof(v), "record %d version %d", i, version);
	int rc = txn_read(ns, &key, &r);

	if (rc != 0)
		return rc;
	rc = r.file_bin == NULL || r.file_bin->v.bytes.len != (uint32_t)n ||
	    memcmp(r.file_bin->v.bytes.data, v, (size_t)n) != 0 || r.attr.mode != 0640 ||
	    r.attr.uid != 1000 || r.attr.gid != 100 ||
	    (i % 3 == 0) != (record_bin_find(&r.rec, "color", 5) != NULL);
	txn_record_release(&r);
	return rc;
}

struct stat_query {
	const char *name;
	char value[64];
};

static void
stat_pick(void *arg, const char *name, const char *value)
{
	struct stat_query *q = arg;

	if (strcmp(name, q->name) == 0)
		snprintf(q->value, sizeof(q->value), "%s", value);
}

static long
stat_value(struct namespace *ns, const char *name)
{
	struct stat_query q = { name, "-1" };

	txn_namespace_stats(ns, stat_pick, &q);
	return atol(q.value);
}

static void
test_shadow_100k_records_survive_clean_restart(void **state)
{
	struct node *node;
	struct namespace *ns;
	enum { N = 100000 };

	config_shadow(64u << 20);
	assert_int_equal(node_open(&node, &cfg), 0);
	ns = node_namespace(node, 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(put(ns, i, 1, 0), 0);
	for (int i = 0; i < N; i += 100) {
		char k[32];
		struct txn_key key = key_of(k, i);
		assert_int_equal(txn_delete(ns, &key), 0);
	}
	node_close(node, true);
	assert_int_equal(node_open(&node, &cfg), 0);
	ns = node_namespace(node, 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(check(ns, i, 1), i % 100 == 0 ? -ENOENT : 0);
	assert_int_equal(stat_value(ns, "objects"), N - N / 100);
	/* Served from RAM: no read ever went to the shadow. */
	assert_int_equal(stat_value(ns, "cache_read_pct"), 100);
	node_close(node, true);
}

static void
test_shadow_fsynced_and_committed_writes_survive_sigkill(void **state)
{
	int pipefd[2], status, acked = 0, v;
	pid_t pid;

	config_shadow(32u << 20);
	cfg.ns[0].storage.flush_max_ms = 60000;  /* only fsync/commit make it durable */
	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct node *node;

		close(pipefd[0]);
		if (node_open(&node, &cfg) != 0)
			_exit(2);
		struct namespace *ns = node_namespace(node, 0);
		for (int i = 0; i < 500; i++) {
			if (put(ns, i, 2, TXN_DURABLE) != 0)
				_exit(3);
			if (write(pipefd[1], &i, sizeof(i)) != sizeof(i))
				_exit(4);
		}
		/* A delete made durable by a later fsync'd write. */
		char k[32];
		struct txn_key key = key_of(k, 7);
		if (txn_delete(ns, &key) != 0 || put(ns, 9999, 2, TXN_DURABLE) != 0)
			_exit(5);
		int done = -1;
		if (write(pipefd[1], &done, sizeof(done)) != sizeof(done))
			_exit(6);
		for (int i = 0;; i++)
			put(ns, 10000 + i % 1000, 3, 0);
	}
	close(pipefd[1]);
	while (read(pipefd[0], &v, sizeof(v)) == sizeof(v)) {
		if (v < 0)
			break;
		acked++;
	}
	usleep(50 * 1000);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	close(pipefd[0]);
	assert_int_equal(acked, 500);

	struct node *node;
	assert_int_equal(node_open(&node, &cfg), 0);
	struct namespace *ns = node_namespace(node, 0);
	for (int i = 0; i < 500; i++)
		assert_int_equal(check(ns, i, 2), i == 7 ? -ENOENT : 0);
	assert_int_equal(check(ns, 9999, 2), 0);
	node_close(node, true);
}

/* Offset of the newest copy of key in the shadow file (newest-copy rule),
 * among copies whose header is intact; -1 if none. */
static off_t
find_newest_copy(const char *key)
{
	static uint8_t buf[1 << 20];
	int fd = open(path, O_RDONLY);
	off_t base = 0, best = -1;
	struct record_flat_header best_h;
	ssize_t n;

	assert_true(fd >= 0);
	while ((n = pread(fd, buf, sizeof(buf), base)) > 0) {
		for (ssize_t i = 0; i + RECORD_FLAT_MIN_SIZE <= n; i += 16) {
			struct record_flat_header h;

			if (record_flat_header_check(buf + i, (size_t)(n - i), &h) != 0 ||
			    h.key_len != strlen(key) || memcmp(buf + i + 64 + h.set_len, key, h.key_len) != 0)
				continue;
			if (best < 0 || record_copy_is_newer(h.generation, h.last_update_ms,
			    best_h.generation, best_h.last_update_ms)) {
				best = base + i;
				best_h = h;
			}
		}
		base += n;
	}
	close(fd);
	return best;
}

/* Issue 10 part 3 for the shadow: a damaged newest copy in the shadow file
 * marks the record damaged at the next start (EIO, never the older copy);
 * stat keeps the metadata the meta check proves; overwrite clears it. */
static void
test_shadow_damaged_newest_copy_never_hides_behind_an_older_one(void **state)
{
	struct node *node;
	struct namespace *ns;
	struct record_attr a;
	struct txn_record r;
	char k[32];
	struct txn_key key = key_of(k, 5);
	int fd;

	config_shadow(32u << 20);
	assert_int_equal(node_open(&node, &cfg), 0);
	ns = node_namespace(node, 0);
	for (int i = 0; i < 20; i++)
		assert_int_equal(put(ns, i, 1, TXN_DURABLE), 0);
	assert_int_equal(put(ns, 5, 2, TXN_DURABLE), 0);
	node_close(node, true);

	off_t at = find_newest_copy("r0000005");
	assert_true(at > 0);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	/* The content bytes: after header, key and the 40 bytes of meta. */
	assert_int_equal(pwrite(fd, "XXXX", 4, at + 64 + 8 + 40 + 8), 4);
	assert_int_equal(fsync(fd), 0);
	close(fd);

	assert_int_equal(node_open(&node, &cfg), 0);
	ns = node_namespace(node, 0);
	assert_int_equal(txn_read(ns, &key, &r), RECFS_ECHECKSUM);
	assert_int_equal(txn_stat(ns, &key, &a), 0);
	assert_int_equal(a.generation, 2);
	assert_int_equal(a.mode, 0640);
	assert_int_equal(a.uid, 1000);
	assert_int_equal(stat_value(ns, "damaged_records"), 1);
	assert_int_equal(check(ns, 4, 1), 0);
	assert_int_equal(check(ns, 6, 1), 0);
	assert_int_equal(put(ns, 5, 3, TXN_DURABLE), 0);
	assert_int_equal(check(ns, 5, 3), 0);
	assert_int_equal(stat_value(ns, "damaged_records"), 0);
	node_close(node, true);

	assert_int_equal(node_open(&node, &cfg), 0);
	ns = node_namespace(node, 0);
	assert_int_equal(check(ns, 5, 3), 0);
	assert_int_equal(stat_value(ns, "damaged_records"), 0);
	node_close(node, true);
}

/* Torn writes in the shadow file (see test_device): after an unclean stop
 * a damaged newest copy written in the last flush-max-ms + 1 s is a write
 * the crash tore: the previous version is served, not EIO; a record with
 * no older copy is absent; after a clean stop the same damage is EIO. */
static void
test_shadow_torn_write_after_unclean_stop_keeps_the_previous_version(void **state)
{
	for (int clean = 0; clean < 2; clean++) {
		struct node *node;
		struct namespace *ns;
		struct record_attr a;
		struct txn_record r;
		char k5[32], k30[32];
		struct txn_key key5 = key_of(k5, 5), key30 = key_of(k30, 30);
		int fd;

		unlink(path);
		config_shadow(32u << 20);
		assert_int_equal(node_open(&node, &cfg), 0);
		ns = node_namespace(node, 0);
		for (int i = 0; i < 20; i++)
			assert_int_equal(put(ns, i, 1, TXN_DURABLE), 0);
		/* Not acknowledged as durable, but in the shadow file at the stop. */
		assert_int_equal(put(ns, 5, 2, 0), 0);
		assert_int_equal(put(ns, 30, 1, 0), 0);
		assert_int_equal(txn_namespace_sync(ns), 0);
		node_close(node, clean);

		off_t at5 = find_newest_copy("r0000005"), at30 = find_newest_copy("r0000030");
		assert_true(at5 > 0 && at30 > 0);
		fd = open(path, O_WRONLY);
		assert_true(fd >= 0);
		assert_int_equal(pwrite(fd, "XXXX", 4, at5 + 64 + 8 + 40 + 8), 4);
		assert_int_equal(pwrite(fd, "XXXX", 4, at30 + 64 + 8 + 40 + 8), 4);
		assert_int_equal(fsync(fd), 0);
		close(fd);

		assert_int_equal(node_open(&node, &cfg), 0);
		ns = node_namespace(node, 0);
		if (!clean) {
			assert_int_equal(check(ns, 5, 1), 0);
			assert_int_equal(txn_stat(ns, &key30, &a), -ENOENT);
			assert_int_equal(stat_value(ns, "damaged_records"), 0);
			assert_int_equal(stat_value(ns, "cold_start_torn_writes"), 2);
		} else {
			assert_int_equal(txn_read(ns, &key5, &r), RECFS_ECHECKSUM);
			assert_int_equal(txn_read(ns, &key30, &r), RECFS_ECHECKSUM);
			assert_int_equal(stat_value(ns, "damaged_records"), 2);
			assert_int_equal(stat_value(ns, "cold_start_torn_writes"), 0);
		}
		assert_int_equal(check(ns, 6, 1), 0);
		node_close(node, true);

		/* And so after a clean restart. */
		assert_int_equal(node_open(&node, &cfg), 0);
		ns = node_namespace(node, 0);
		assert_int_equal(stat_value(ns, "damaged_records"), clean ? 2 : 0);
		if (!clean) {
			assert_int_equal(check(ns, 5, 1), 0);
			assert_int_equal(txn_stat(ns, &key30, &a), -ENOENT);
		}
		node_close(node, true);
	}
}

static void
test_shadow_reports_its_write_queue(void **state)
{
	struct node *node;
	struct namespace *ns;

	config_shadow(32u << 20);
	assert_int_equal(node_open(&node, &cfg), 0);
	ns = node_namespace(node, 0);
	assert_int_equal(put(ns, 1, 1, 0), 0);
	/* The queue is the shadow's: write_q is a device namespace's. */
	assert_true(stat_value(ns, "shadow_write_q") >= 0);
	assert_int_equal(stat_value(ns, "write_q"), 0);
	assert_int_equal(stat_value(ns, "stop_writes"), 0);
	node_close(node, true);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_shadow_100k_records_survive_clean_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shadow_fsynced_and_committed_writes_survive_sigkill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shadow_reports_its_write_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shadow_damaged_newest_copy_never_hides_behind_an_older_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shadow_torn_write_after_unclean_stop_keeps_the_previous_version, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
