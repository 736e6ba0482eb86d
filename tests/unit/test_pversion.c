/*
 * test_pversion.c - partition versions kept in the pmeta area of every
 * device and shadow file (docs/storage-format.md): they survive a restart,
 * a single-slot store changes those 16 bytes of each file and nothing else,
 * the header page and wblocks are never touched, a damaged slot or devices
 * that disagree read as 0 (logged with file and offset), a new format
 * starts with all 0 whatever the area held, a memory namespace without
 * shadow keeps nothing, and the copies of a dropped partition older than
 * its drop never load again, and a store of the table writes only the
 * pages that changed.  Prints what a whole-table and a one-slot store cost.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/crc32c.h"
#include "base/digest.h"
#include "base/log.h"
#include "namespace/namespace.h"
#include "record/record.h"
#include "storage/device_header.h"
#include "txn/txn.h"

#define FILESIZE (16u << 20)
#define WBS (1u << 20)
/* What a test compares of a file: the header area and the first wblock. */
#define SPAN (STORAGE_HEADER_SIZE + WBS)

/*
 * pwrite, wrapped (-Wl,--wrap=pwrite): while fail_pmeta_fd is a descriptor
 * of the file named fail_pmeta_path, a write into its pmeta area fails with
 * EIO, as a failing disk would.  Nothing else changes.
 */
static const char *fail_pmeta_path;
ssize_t __real_pwrite(int fd, const void *buf, size_t n, off_t off);
ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t off);

ssize_t
__wrap_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	const char *fail = __atomic_load_n(&fail_pmeta_path, __ATOMIC_ACQUIRE);

	if (fail != NULL && off >= DEVICE_PMETA_OFFSET && off < DEVICE_PMETA_OFFSET + DEVICE_PMETA_SIZE) {
		char link[64], target[400];
		ssize_t len;

		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		len = readlink(link, target, sizeof(target) - 1);
		if (len > 0) {
			target[len] = 0;
			if (strcmp(target, fail) == 0) {
				errno = EIO;
				return -1;
			}
		}
	}
	return __real_pwrite(fd, buf, n, off);
}

static char dir[256];
static char path[300], path2[300], logpath[320];
static struct recfs_config cfg;
static uint64_t table[STORAGE_PARTITIONS], got[STORAGE_PARTITIONS];

static void
config_device(unsigned n_files)
{
	config_free(&cfg);
	memset(&cfg, 0, sizeof(cfg));
	cfg.n_namespaces = 1;
	struct ns_config *n = &cfg.ns[0];
	strcpy(n->name, "pv");
	strcpy(n->file_bin, "data");
	n->replication_factor = 1;
	n->storage.type = STORAGE_DEVICE;
	n->storage.files[0] = strdup(path);
	if (n_files == 2)
		n->storage.files[1] = strdup(path2);
	n->storage.n_files = n_files;
	n->storage.filesize = FILESIZE;
	n->storage.write_block_size = WBS;
	n->storage.flush_max_ms = 100;
	n->storage.max_write_cache = 8u << 20;
	n->storage.defrag_lwm_pct = 50;
	n->storage.direct_io = true;
}

static void
config_memory(bool shadow)
{
	config_device(1);
	cfg.ns[0].storage.type = STORAGE_MEMORY;
	cfg.ns[0].storage.data_size = 8u << 20;
	if (!shadow) {
		free(cfg.ns[0].storage.files[0]);
		cfg.ns[0].storage.files[0] = NULL;
		cfg.ns[0].storage.n_files = 0;
	}
}

static int
setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/recfs-test-pversion-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/pv.dat", dir);
	snprintf(path2, sizeof(path2), "%s/pv2.dat", dir);
	snprintf(logpath, sizeof(logpath), "%s/log", dir);
	return 0;
}

static int
teardown(void **state)
{
	unlink(path);
	unlink(path2);
	unlink(logpath);
	rmdir(dir);
	config_free(&cfg);
	return 0;
}

static struct node *
open_node(struct namespace **ns)
{
	struct node *node = NULL;

	assert_int_equal(node_open(&node, &cfg), 0);
	*ns = node_namespace(node, 0);
	return node;
}

/* A table with versions in some partitions, 0 in the others. */
static void
table_fill(uint64_t *t, uint64_t seed)
{
	for (uint32_t p = 0; p < STORAGE_PARTITIONS; p++)
		t[p] = p % 3 == 0 ? 0 : (seed << 40) + (uint64_t)p * 1000003u + 1;
}

static uint8_t *
read_span(const char *file)
{
	uint8_t *buf = calloc(1, SPAN);
	int fd = open(file, O_RDONLY);

	assert_non_null(buf);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, SPAN, 0), SPAN);
	close(fd);
	return buf;
}

static void
write_at(const char *file, uint64_t off, const void *buf, size_t len)
{
	int fd = open(file, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static uint64_t
slot_off(uint32_t pid)
{
	return DEVICE_PMETA_OFFSET + (uint64_t)pid * DEVICE_PMETA_SLOT;
}

/* Bytes of a and b that differ lie in [lo, hi): the first and last
 * differing offsets are returned through *first and *last (-1: none). */
static void
span_diff(const uint8_t *a, const uint8_t *b, long *first, long *last)
{
	*first = *last = -1;
	for (long i = 0; i < SPAN; i++)
		if (a[i] != b[i]) {
			if (*first < 0)
				*first = i;
			*last = i;
		}
}

/* The log goes to a fresh file from here; count lines in it with
 * log_capture_end_count (as many times as needed). */
static void
log_capture_begin(void)
{
	unlink(logpath);
	assert_int_equal(log_open(logpath, LOG_LEVEL_INFO), 0);
}

static int
log_capture_end_count(const char *what)
{
	char line[512];
	int n = 0;
	FILE *f;

	assert_int_equal(log_open("stderr", LOG_LEVEL_INFO), 0);
	f = fopen(logpath, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, what) != NULL && n++ == 0)
			printf("logged: %s", line);
	fclose(f);
	return n;
}

static void
assert_all_zero(const uint64_t *t)
{
	for (uint32_t p = 0; p < STORAGE_PARTITIONS; p++)
		if (t[p] != 0)
			fail_msg("partition %u: version %" PRIu64 ", expected 0", p, t[p]);
}

static void
assert_tables_equal(const uint64_t *want, const uint64_t *have)
{
	for (uint32_t p = 0; p < STORAGE_PARTITIONS; p++)
		if (want[p] != have[p])
			fail_msg("partition %u: version %" PRIu64 ", expected %" PRIu64, p, have[p], want[p]);
}

/*
 * Store the whole table, check that only the pmeta area of the file
 * changed and that every slot holds its version, then one slot: only its
 * 16 bytes change.  Prints the cost of both (median of a few).
 */
static void
store_and_check_bytes(struct namespace *ns, const char *file, const char *what)
{
	uint8_t *before = read_span(file), *after;
	uint64_t t0, whole_ns, one_ns[9];
	long first, last;

	table_fill(table, 7);
	t0 = clock_mono_ns();
	assert_int_equal(namespace_pversions_store(ns, table), 0);
	whole_ns = clock_mono_ns() - t0;
	after = read_span(file);
	span_diff(before, after, &first, &last);
	/* Some slots changed, all inside the pmeta area: not the header page
	 * below it, not the rest of the header area or a wblock above it. */
	assert_true(first >= DEVICE_PMETA_OFFSET);
	assert_true(last < DEVICE_PMETA_OFFSET + DEVICE_PMETA_SIZE);
	for (uint32_t p = 0; p < STORAGE_PARTITIONS; p++) {
		uint64_t v;

		assert_int_equal(device_pmeta_slot_decode(after + slot_off(p), &v), 0);
		assert_true(v == table[p]);
	}
	free(before);

	/* One slot, several times (timing): 16 bytes differ, at its offset. */
	before = after;
	for (int i = 0; i < 9; i++) {
		t0 = clock_mono_ns();
		assert_int_equal(namespace_pversion_store_one(ns, 1000, 4242 + (uint64_t)i), 0);
		one_ns[i] = clock_mono_ns() - t0;
	}
	table[1000] = 4242 + 8;
	after = read_span(file);
	span_diff(before, after, &first, &last);
	assert_true(first >= (long)slot_off(1000));
	assert_true(last < (long)slot_off(1001));
	free(before);
	free(after);
	for (int i = 1; i < 9; i++)         /* insertion sort: the median */
		for (int j = i; j > 0 && one_ns[j - 1] > one_ns[j]; j--) {
			uint64_t x = one_ns[j];
			one_ns[j] = one_ns[j - 1];
			one_ns[j - 1] = x;
		}
	printf("cost (%s): whole table %.3f ms, one slot %.3f ms (median of 9)\n", what,
	    (double)whole_ns / 1e6, (double)one_ns[4] / 1e6);
}

static void
test_pversion_device_table_survives_restart_and_touches_only_the_pmeta_area(void **state)
{
	struct namespace *ns;
	struct node *node;

	config_device(1);
	node = open_node(&ns);
	assert_int_equal(namespace_pversions_load(ns, got), 0);
	assert_all_zero(got);
	store_and_check_bytes(ns, path, "device file");
	assert_int_equal(namespace_pversions_load(ns, got), 0);
	assert_tables_equal(table, got);
	assert_int_equal(namespace_pversion_store_one(ns, STORAGE_PARTITIONS, 1), -EINVAL);
	node_close(node, true);

	node = open_node(&ns);
	assert_int_equal(namespace_pversions_load(ns, got), 0);
	assert_tables_equal(table, got);
	/* Versions do not disturb records or their cold start. */
	char k[8] = "key", v[16] = "value";
	struct txn_key key = { NULL, 0, k, 3 };
	struct txn_write w = { .flags = TXN_DURABLE, .set_file = true, .file_data = v, .file_len = 5 };
	assert_int_equal(txn_write(ns, &key, &w, NULL), 0);
	node_close(node, false);
	node = open_node(&ns);
	struct txn_record r;
	assert_int_equal(txn_read(ns, &key, &r), 0);
	txn_record_release(&r);
	assert_int_equal(namespace_pversions_load(ns, got), 0);
	assert_tables_equal(table, got);
	node_close(node, true);
}

static void
test_pversion_shadow_table_survives_restart(void **state)
{
	struct namespace *ns;
	struct node *node;

	config_memory(true);
	node = open_node(&ns);
	assert_int_equal(namespace_pversions_load(ns, got), 0);
	assert_all_zero(got);
	store_and_check_bytes(ns, path, "shadow file");
	node_close(node, true);
	node = open_node(&ns);
	assert_int_equal(namespace_pversions_load(ns, got), 0);
	assert_tables_equal(table, got);
	node_close(node, true);
}

static void
test_pversion_memory_without_shadow_keeps_nothing(void **state)
{
	struct namespace *ns;
	struct node *node;

	config_memory(false);
	node = open_node(&ns);
	table_fill(table, 3);
	memset(got, 0xff, sizeof(got));
	assert_int_equal(namespace_pversions_load(ns, got), 0);
	assert_all_zero(got);
	assert_int_equal(namespace_pversions_store(ns, table), 0);
	assert_int_equal(namespace_pversion_store_one(ns, 5, 9), 0);
	assert_int_equal(namespace_pversions_load(ns, got), 0);
	assert_all_zero(got);
	node_close(node, true);
}

static void
test_pversion_damaged_slot_loads_as_0_and_is_logged_with_file_and_offset(void **state)
{
	struct namespace *ns;
	struct node *node;
	uint8_t byte;
	char where[400];
	int fd;

	config_device(1);
	node = open_node(&ns);
	table_fill(table, 11);
	assert_int_equal(namespace_pversions_store(ns, table), 0);
	node_close(node, true);

	/* Flip one byte of partition 777's version. */
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &byte, 1, (off_t)slot_off(777) + 3), 1);
	byte ^= 0x10;
	assert_int_equal(pwrite(fd, &byte, 1, (off_t)slot_off(777) + 3), 1);
	close(fd);

	node = open_node(&ns);
	log_capture_begin();
	assert_int_equal(namespace_pversions_load(ns, got), 0);
	snprintf(where, sizeof(where), "%s: partition 777: version slot at offset %" PRIu64
	    " fails its CRC", path, slot_off(777));
	assert_int_equal(log_capture_end_count(where), 1);
	assert_int_equal(log_capture_end_count("fails its CRC"), 1);
	assert_int_equal(got[777], 0);
	got[777] = table[777];
	assert_tables_equal(table, got);
	/* Once: a second load says nothing new. */
	log_capture_begin();
	assert_int_equal(namespace_pversions_load(ns, got), 0);
	assert_int_equal(log_capture_end_count("fails its CRC"), 0);
	assert_int_equal(got[777], 0);
	/* Storing the slot again repairs it. */
	assert_int_equal(namespace_pversion_store_one(ns, 777, 5), 0);
	table[777] = 5;
	node_close(node, true);
	node = open_node(&ns);
	assert_int_equal(namespace_pversions_load(ns, got), 0);
	assert_tables_equal(table, got);
	node_close(node, true);
}

static void
test_pversion_new_format_and_cold_start_empty_give_all_0(void **state)
{
	struct namespace *ns;
	struct node *node;
	uint8_t *area = calloc(1, DEVICE_PMETA_SIZE);

	/* A file whose header page is zero but whose pmeta area holds valid
	 * slots (what erasing a raw device leaves: only its header page is
	 * cleared): the new format must not inherit them. */
	assert_non_null(area);
	for (uint32_t p = 0; p < STORAGE_PARTITIONS; p++)
		device_pmeta_slot_encode(100 + p, area + (size_t)p * DEVICE_PMETA_SLOT);
	int fd = open(path, O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, FILESIZE), 0);
	close(fd);
	write_at(path, DEVICE_PMETA_OFFSET, area, DEVICE_PMETA_SIZE);
	free(area);
	config_device(1);
	node = open_node(&ns);
	assert_int_equal(namespace_pversions_load(ns, got), 0);
	assert_all_zero(got);
	table_fill(table, 5);
	assert_int_equal(namespace_pversions_store(ns, table), 0);
	node_close(node, true);

	/* cold-start-empty: the erase empties the versions too. */
	cfg.ns[0].storage.cold_start_empty = true;
	node = open_node(&ns);
	assert_int_equal(namespace_pversions_load(ns, got), 0);
	assert_all_zero(got);
	node_close(node, true);
}

static void
test_pversion_devices_that_disagree_give_0_for_those_partitions(void **state)
{
	struct namespace *ns;
	struct node *node;
	uint8_t slot[DEVICE_PMETA_SLOT];
	uint8_t *a, *b;
	char where[700];

	config_device(2);
	node = open_node(&ns);
	table_fill(table, 13);
	assert_int_equal(namespace_pversions_store(ns, table), 0);
	node_close(node, true);
	/* Both files hold the same table. */
	a = read_span(path);
	b = read_span(path2);
	assert_memory_equal(a + DEVICE_PMETA_OFFSET, b + DEVICE_PMETA_OFFSET, DEVICE_PMETA_SIZE);
	free(a);
	free(b);

	/* The second device holds another valid version for 5 and 4000. */
	device_pmeta_slot_encode(table[5] + 1, slot);
	write_at(path2, slot_off(5), slot, sizeof(slot));
	device_pmeta_slot_encode(77, slot);
	write_at(path2, slot_off(4000), slot, sizeof(slot));

	node = open_node(&ns);
	log_capture_begin();
	assert_int_equal(namespace_pversions_load(ns, got), 0);
	snprintf(where, sizeof(where), "partition 5: version %" PRIu64 " in %s but %" PRIu64
	    " in %s (offset %" PRIu64 ")", table[5], path, table[5] + 1, path2, slot_off(5));
	assert_int_equal(log_capture_end_count(where), 1);
	assert_int_equal(log_capture_end_count("the partition counts as holding no data here"), 2);
	assert_int_equal(got[5], 0);
	assert_int_equal(got[4000], 0);
	got[5] = table[5];
	got[4000] = table[4000];
	assert_tables_equal(table, got);

	/* One slot stored rewrites its whole page on both devices from the
	 * table as loaded: they agree on 4000 again, at 0 (what the load
	 * said); 5, on another page, still differs (already logged: not
	 * again). */
	assert_int_equal(namespace_pversion_store_one(ns, 4001, 9), 0);
	log_capture_begin();
	assert_int_equal(namespace_pversions_load(ns, got), 0);
	assert_int_equal(log_capture_end_count("the partition counts as holding no data here"), 0);
	assert_int_equal(got[4000], 0);
	assert_int_equal(got[4001], 9);
	assert_int_equal(got[5], 0);
	assert_int_equal(got[6], table[6]);
	node_close(node, true);
}

static void
test_pversion_store_one_before_any_load_keeps_the_other_slots(void **state)
{
	struct namespace *ns;
	struct node *node;

	config_device(1);
	node = open_node(&ns);
	table_fill(table, 17);
	assert_int_equal(namespace_pversions_store(ns, table), 0);
	node_close(node, true);
	node = open_node(&ns);
	assert_int_equal(namespace_pversion_store_one(ns, 10, 123), 0);
	table[10] = 123;
	node_close(node, true);
	node = open_node(&ns);
	assert_int_equal(namespace_pversions_load(ns, got), 0);
	assert_tables_equal(table, got);
	node_close(node, true);
}

struct storer {
	struct namespace *ns;
	uint32_t first, step;
	int rc;
};

static void *
storer_main(void *arg)
{
	struct storer *s = arg;

	for (uint32_t p = s->first; p < STORAGE_PARTITIONS && s->rc == 0; p += s->step)
		s->rc = namespace_pversion_store_one(s->ns, p, 1000000 + p);
	return NULL;
}

static void
test_pversion_concurrent_single_stores_beside_record_writes_all_land(void **state)
{
	enum { THREADS = 4 };
	struct storer st[THREADS];
	pthread_t th[THREADS];
	struct namespace *ns;
	struct node *node;
	char k[32], v[600];

	/* Threads storing interleaved slots (several per 4 KiB page) while
	 * records are written and synced: every slot lands, records too. */
	config_device(2);
	node = open_node(&ns);
	memset(v, 'r', sizeof(v));
	for (int t = 0; t < THREADS; t++) {
		st[t] = (struct storer){ .ns = ns, .first = (uint32_t)t * 3, .step = 37 };
		assert_int_equal(pthread_create(&th[t], NULL, storer_main, &st[t]), 0);
	}
	for (int i = 0; i < 300; i++) {
		int n = snprintf(k, sizeof(k), "rec%d", i);
		struct txn_key key = { NULL, 0, k, (size_t)n };
		struct txn_write w = { .flags = i % 10 == 0 ? TXN_DURABLE : 0, .set_file = true,
		    .file_data = v, .file_len = sizeof(v) };

		assert_int_equal(txn_write(ns, &key, &w, NULL), 0);
	}
	for (int t = 0; t < THREADS; t++) {
		pthread_join(th[t], NULL);
		assert_int_equal(st[t].rc, 0);
	}
	memset(table, 0, sizeof(table));
	for (int t = 0; t < THREADS; t++)
		for (uint32_t p = st[t].first; p < STORAGE_PARTITIONS; p += st[t].step)
			table[p] = 1000000 + p;
	node_close(node, true);
	node = open_node(&ns);
	assert_int_equal(namespace_pversions_load(ns, got), 0);
	assert_tables_equal(table, got);
	for (int i = 0; i < 300; i++) {
		int n = snprintf(k, sizeof(k), "rec%d", i);
		struct txn_key key = { NULL, 0, k, (size_t)n };
		struct txn_record r;

		assert_int_equal(txn_read(ns, &key, &r), 0);
		txn_record_release(&r);
	}
	node_close(node, true);
}

static void
test_pversion_failed_write_on_one_device_is_an_error_and_reads_as_0(void **state)
{
	struct namespace *ns;
	struct node *node;
	uint64_t next[STORAGE_PARTITIONS];

	config_device(2);
	node = open_node(&ns);
	table_fill(table, 23);
	assert_int_equal(namespace_pversions_store(ns, table), 0);
	/* The second device's pmeta writes fail: the store says so. */
	table_fill(next, 29);
	log_capture_begin();
	__atomic_store_n(&fail_pmeta_path, path2, __ATOMIC_RELEASE);
	assert_int_equal(namespace_pversions_store(ns, next), -EIO);
	assert_int_equal(namespace_pversion_store_one(ns, 1, 5), -EIO);
	__atomic_store_n(&fail_pmeta_path, NULL, __ATOMIC_RELEASE);
	assert_int_equal(log_capture_end_count("pv2.dat: writing partition versions (offset 131072, 131072 bytes) "
	    "failed"), 1);
	assert_int_equal(log_capture_end_count("pv2.dat: writing partition versions (offset 131072, 4096 bytes) "
	    "failed"), 1);
	/* The devices now disagree wherever the tables differ: those read as
	 * 0, never as the version only one device took. */
	assert_int_equal(namespace_pversions_load(ns, got), 0);
	for (uint32_t p = 0; p < STORAGE_PARTITIONS; p++)
		if (got[p] != (p == 1 ? 0 : table[p] == next[p] ? table[p] : 0))
			fail_msg("partition %u: version %" PRIu64, p, got[p]);
	/* Once the disk works again a store makes them agree. */
	assert_int_equal(namespace_pversions_store(ns, next), 0);
	assert_int_equal(namespace_pversions_load(ns, got), 0);
	assert_tables_equal(next, got);
	node_close(node, true);
}

/*
 * A store of the table writes only the pages whose slots differ from what
 * the files hold (partition_version_pages); two slots in pages 3 and 20:
 * two pages, and the files hold the whole table (a restart loads it).  A
 * table equal to the stored one writes and syncs nothing.  After a failed
 * write the next store writes every page again, and after a load too.
 */
static void
test_pversion_store_writes_only_the_pages_that_changed(void **state)
{
	const uint32_t per_page = DEVICE_PMETA_PAGE_SLOTS, pages = DEVICE_PMETA_SIZE / 4096;
	struct namespace *ns;
	struct node *node;
	struct storage_stats ss;
	uint64_t pages0, syncs0;

	config_device(2);
	node = open_node(&ns);
	table_fill(table, 41);
	storage_stats(ns->storage, &ss);
	pages0 = ss.pversion_pages;
	assert_int_equal(namespace_pversions_store(ns, table), 0);
	storage_stats(ns->storage, &ss);
	assert_int_equal(ss.pversion_pages - pages0, pages);   /* nothing known yet: all */
	pages0 = ss.pversion_pages;
	syncs0 = ss.pversion_syncs;
	table[3 * per_page + 5] = 777;
	table[20 * per_page] = 0;
	table[20 * per_page + 1] = 888;
	assert_int_equal(namespace_pversions_store(ns, table), 0);
	storage_stats(ns->storage, &ss);
	assert_int_equal(ss.pversion_pages - pages0, 2);
	assert_int_equal(ss.pversion_syncs - syncs0, 2);       /* one per file */
	pages0 = ss.pversion_pages;
	syncs0 = ss.pversion_syncs;
	assert_int_equal(namespace_pversions_store(ns, table), 0);
	storage_stats(ns->storage, &ss);
	assert_int_equal(ss.pversion_pages - pages0, 0);
	assert_int_equal(ss.pversion_syncs - syncs0, 0);
	/* A failed write: what the files hold is unknown, all of it again. */
	table[100] = 999;
	__atomic_store_n(&fail_pmeta_path, path2, __ATOMIC_RELEASE);
	assert_int_equal(namespace_pversions_store(ns, table), -EIO);
	__atomic_store_n(&fail_pmeta_path, NULL, __ATOMIC_RELEASE);
	storage_stats(ns->storage, &ss);
	pages0 = ss.pversion_pages;
	assert_int_equal(namespace_pversions_store(ns, table), 0);
	storage_stats(ns->storage, &ss);
	assert_int_equal(ss.pversion_pages - pages0, pages);
	assert_int_equal(namespace_pversions_load(ns, got), 0);
	assert_tables_equal(table, got);
	/* A load: all of it again at the next store. */
	table[4000] = 1234;
	storage_stats(ns->storage, &ss);
	pages0 = ss.pversion_pages;
	assert_int_equal(namespace_pversions_store(ns, table), 0);
	storage_stats(ns->storage, &ss);
	assert_int_equal(ss.pversion_pages - pages0, pages);
	table[4001] = 4321;
	pages0 = ss.pversion_pages;
	assert_int_equal(namespace_pversions_store(ns, table), 0);
	storage_stats(ns->storage, &ss);
	assert_int_equal(ss.pversion_pages - pages0, 1);
	node_close(node, true);
	node = open_node(&ns);
	assert_int_equal(namespace_pversions_load(ns, got), 0);
	assert_tables_equal(table, got);
	node_close(node, true);
}

/* Run recfs-check (from the build tree) on the two files; its report in
 * out; returns its exit status. */
static int
run_check(const char *args, char *out, size_t size)
{
	const char *top = getenv("top_builddir");
	char cmd[1200], self[512];
	size_t len = 0;
	ssize_t n;
	FILE *p;
	int st;

	if (top == NULL) {
		/* Run by hand: this binary is tests/unit/ of the build tree. */
		n = readlink("/proc/self/exe", self, sizeof(self) - 20);
		assert_true(n > 0);
		self[n] = 0;
		*strrchr(self, '/') = 0;
		strcat(self, "/../..");
		top = self;
	}
	snprintf(cmd, sizeof(cmd), "%s/recfs-check %s %s %s 2>&1", top, args, path, path2);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (len + 1 < size && fgets(out + len, (int)(size - len), p) != NULL)
		len += strlen(out + len);
	out[len] = 0;
	st = pclose(p);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void
test_pversion_recfs_check_reports_versions_damaged_slots_and_disagreement(void **state)
{
	static char out[16384];
	struct namespace *ns;
	struct node *node;
	uint8_t slot[DEVICE_PMETA_SLOT];
	char want[400];
	uint32_t n_set = 0;

	config_device(2);
	node = open_node(&ns);
	table_fill(table, 19);
	assert_int_equal(namespace_pversions_store(ns, table), 0);
	node_close(node, true);
	for (uint32_t p = 0; p < STORAGE_PARTITIONS; p++)
		n_set += table[p] != 0;
	assert_int_equal(run_check("", out, sizeof(out)), 0);
	printf("%s", out);
	snprintf(want, sizeof(want), "partition versions     %u of 4096 partitions with a version, "
	    "0 slots failing the CRC", n_set);
	if (strstr(out, want) == NULL)
		fail_msg("no '%s' in the report (printed above)", want);
	assert_null(strstr(out, "differs between the files"));

	/* A flipped byte in partition 2000's slot of the first file, and
	 * another valid version for partition 7 in the second. */
	uint8_t byte = 0x5a;
	write_at(path, slot_off(2000) + 9, &byte, 1);
	device_pmeta_slot_encode(1234, slot);
	write_at(path2, slot_off(7), slot, sizeof(slot));
	assert_int_equal(run_check("", out, sizeof(out)), 1);
	printf("%s", out);
	snprintf(want, sizeof(want), "partition versions     %u of 4096 partitions with a version, "
	    "1 slot failing the CRC", n_set - 1);
	if (strstr(out, want) == NULL)
		fail_msg("no '%s' in the report (printed above)", want);
	snprintf(want, sizeof(want), "DAMAGED: partition 2000: version slot at offset %" PRIu64
	    " fails its CRC", slot_off(2000));
	if (strstr(out, want) == NULL)
		fail_msg("no '%s' in the report (printed above)", want);
	/* 2000 differs too (0 against a version); 7 differs. */
	if (strstr(out, "warning: the partition version of 2 partitions (the first: 7) differs") == NULL)
		fail_msg("no disagreement warning in the report");
	if (strstr(out, "result: DAMAGED PARTITION VERSIONS: 1 slot failing the CRC") == NULL)
		fail_msg("no verdict in the report");
}

/* A key of the null set whose record lands in partition pid. */
static int
key_in(uint32_t pid, const char *prefix, char *k, size_t cap)
{
	for (int i = 0;; i++) {
		struct digest d;
		int n = snprintf(k, cap, "%s%d", prefix, i);

		digest_compute(&d, NULL, 0, k, (size_t)n);
		if (digest_partition(&d) == pid)
			return n;
	}
}

static void
put(struct namespace *ns, const char *k, int n)
{
	struct txn_key key = { NULL, 0, k, (size_t)n };
	struct txn_write w = { .set_file = true, .file_data = k, .file_len = (size_t)n };

	assert_int_equal(txn_write(ns, &key, &w, NULL), 0);
}

static int
get(struct namespace *ns, const char *k, int n)
{
	struct txn_key key = { NULL, 0, k, (size_t)n };
	struct txn_record r;
	int rc = txn_read(ns, &key, &r);

	if (rc == 0)
		txn_record_release(&r);
	return rc;
}

static void
sleep_ms(unsigned ms)
{
	usleep(ms * 1000);
}

/*
 * A partition dropped (namespace_pversion_drop) keeps its drop time in its
 * slot; a cold start skips its copies older than the drop (counted in
 * cold_start_dropped), loads a copy written there after the drop (a node
 * alone serving it again), and skips those copies too in a partition that
 * got a version again after its drop (a regain keeps the drop time: its
 * copies from before the drop are stale still).  A whole-table store with 0
 * for a dropped partition keeps its drop time.
 */
static void
dropped_partition_cold_start(bool shadow)
{
	enum { OLD = 5 };
	struct namespace *ns;
	struct node *node;
	struct storage_stats ss;
	char k[OLD][32], again[32], later[32], other[32];
	int kn[OLD], again_n, later_n, other_n;
	const uint32_t P = 77, Q = 1234, R = 2000, S = 3001;
	uint8_t *span;
	uint64_t v, drop_ms, syncs, one;
	struct device_pmeta sl;

	if (shadow)
		config_memory(true);
	else
		config_device(1);
	node = open_node(&ns);
	/* OLD records in P, one in Q (dropped then given a version again),
	 * one in R (never dropped). */
	for (int i = 0; i < OLD; i++) {
		char prefix[16];

		snprintf(prefix, sizeof(prefix), "p%d-", i);
		kn[i] = key_in(P, prefix, k[i], sizeof(k[i]));
		put(ns, k[i], kn[i]);
	}
	again_n = key_in(Q, "q", again, sizeof(again));
	put(ns, again, again_n);
	other_n = key_in(R, "r", other, sizeof(other));
	put(ns, other, other_n);
	/* Overwritten once: two copies of k[0] on the file. */
	put(ns, k[0], kn[0]);
	sleep_ms(20);      /* the drop is later than every copy's last-update time */
	drop_ms = clock_epoch_ms();
	/* One drop, then two at once (P and S, an empty partition): the two
	 * cost the syncs of one. */
	storage_stats(ns->storage, &ss);
	syncs = ss.pversion_syncs;
	assert_int_equal(namespace_pversion_drop(ns, Q, drop_ms), 0);
	storage_stats(ns->storage, &ss);
	one = ss.pversion_syncs - syncs;
	syncs = ss.pversion_syncs;
	assert_true(one >= 1);
	assert_int_equal(namespace_pversions_drop(ns, (const uint32_t[]){ P, S }, 2, drop_ms), 0);
	storage_stats(ns->storage, &ss);
	assert_int_equal(ss.pversion_syncs - syncs, one);
	assert_int_equal(namespace_pversions_drop(ns, (const uint32_t[]){ P, STORAGE_PARTITIONS }, 2,
	    drop_ms), -EINVAL);
	assert_int_equal(namespace_pversion_store_one(ns, Q, 4242), 0);
	/* A whole-table store with 0 for P keeps its drop. */
	table_fill(table, 3);
	table[P] = 0;
	table[S] = 0;
	table[Q] = 4242;
	assert_int_equal(namespace_pversions_store(ns, table), 0);
	sleep_ms(20);
	later_n = key_in(P, "later", later, sizeof(later));
	put(ns, later, later_n);    /* written in P after the drop */
	node_close(node, true);

	span = read_span(path);
	assert_int_equal(device_pmeta_slot_decode3(span + slot_off(P), &sl), 0);
	assert_int_equal(sl.version, 0);
	assert_true(sl.drop_ms > 0);
	assert_false(sl.regained);
	assert_int_equal(device_pmeta_slot_decode3(span + slot_off(Q), &sl), 0);
	assert_int_equal(sl.version, 4242);
	assert_int_equal(sl.drop_ms, drop_ms);
	assert_true(sl.regained);
	assert_int_equal(sl.mark, 1);
	assert_int_equal(device_pmeta_slot_decode3(span + slot_off(S), &sl), 0);
	assert_int_equal(sl.version, 0);
	assert_true(sl.drop_ms > 0);
	assert_int_equal(device_pmeta_slot_decode3(span + slot_off(R), &sl), 0);
	assert_int_equal(sl.version, table[R]);
	assert_int_equal(sl.drop_ms, 0);
	assert_int_equal(sl.mark, 0);
	/* The decoder without drop times reads a dropped slot as 0. */
	assert_int_equal(device_pmeta_slot_decode(span + slot_off(P), &v), 0);
	assert_int_equal(v, 0);
	free(span);

	node = open_node(&ns);
	storage_stats(ns->storage, &ss);
	/* OLD + 1 copies of P's old records (k[0] twice), skipped, and Q's
	 * copy from before its drop (regained since). */
	assert_int_equal(ss.cold_start_dropped, OLD + 2);
	for (int i = 0; i < OLD; i++)
		assert_int_equal(get(ns, k[i], kn[i]), -ENOENT);
	assert_int_equal(get(ns, later, later_n), 0);
	assert_int_equal(get(ns, again, again_n), -ENOENT);
	assert_int_equal(get(ns, other, other_n), 0);
	assert_int_equal(namespace_pversions_load(ns, got), 0);
	assert_tables_equal(table, got);
	node_close(node, true);
}

/* Version 3 slots: every field round trips, a flipped byte anywhere is a
 * CRC failure, unknown flags and reserved bytes are refused; zeros are
 * "version 0, never dropped".  A version 2 slot (16 bytes) reads as its
 * version or drop time, mark 0, not regained. */
static void
test_pversion_slot_v3_fields_crc_and_v2_slots(void **state)
{
	static const struct device_pmeta cases[] = {
		{ .version = 0x0102030405060708ULL },
		{ .drop_ms = 123456789 },
		{ .drop_ms = 123456789, .mark = 7 },
		{ .version = 99, .drop_ms = 5000, .mark = 0xffff, .regained = true },
		{ .version = 1, .drop_ms = 1, .mark = 1, .regained = true },
	};
	uint8_t slot[DEVICE_PMETA_SLOT], v2[DEVICE_PMETA_SLOT_V2];
	struct device_pmeta s;

	(void)state;
	memset(&s, 0, sizeof(s));
	device_pmeta_slot_encode3(&s, slot);
	for (size_t i = 0; i < sizeof(slot); i++)
		assert_int_equal(slot[i], 0);
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		device_pmeta_slot_encode3(&cases[c], slot);
		assert_int_equal(device_pmeta_slot_decode3(slot, &s), 0);
		assert_int_equal(s.version, cases[c].version);
		assert_int_equal(s.drop_ms, cases[c].drop_ms);
		assert_int_equal(s.mark, cases[c].mark);
		assert_int_equal(s.regained, cases[c].regained);
		for (size_t i = 0; i < sizeof(slot); i++) {
			slot[i] ^= 0x10;
			assert_int_equal(device_pmeta_slot_decode3(slot, &s), RECFS_ECHECKSUM);
			assert_int_equal(s.version, 0);
			assert_int_equal(s.drop_ms, 0);
			slot[i] ^= 0x10;
		}
	}
	/* A flag this build does not know, with a matching CRC. */
	device_pmeta_slot_encode3(&cases[3], slot);
	slot[20] |= 0x4;
	le_put32(slot + 28, crc32c(0, slot, 28));
	assert_int_equal(device_pmeta_slot_decode3(slot, &s), RECFS_ECHECKSUM);

	/* Version 2: a dropped slot and a version slot. */
	memset(v2, 0, sizeof(v2));
	le_put64(v2, 777000);
	le_put32(v2 + 8, DEVICE_PMETA_F_DROPPED_V2);
	le_put32(v2 + 12, crc32c(0, v2, 12));
	assert_int_equal(device_pmeta_slot_decode_v2(v2, &s), 0);
	assert_int_equal(s.version, 0);
	assert_int_equal(s.drop_ms, 777000);
	assert_int_equal(s.mark, 0);
	assert_false(s.regained);
	le_put32(v2 + 8, 0);
	le_put32(v2 + 12, crc32c(0, v2, 12));
	assert_int_equal(device_pmeta_slot_decode_v2(v2, &s), 0);
	assert_int_equal(s.version, 777000);
	assert_int_equal(s.drop_ms, 0);
	v2[3] ^= 1;
	assert_int_equal(device_pmeta_slot_decode_v2(v2, &s), RECFS_ECHECKSUM);
	assert_int_equal(device_pmeta_next_mark(0xffff), 1);
	assert_int_equal(device_pmeta_next_mark(0), 1);
	assert_int_equal(device_pmeta_next_mark(41), 42);
}

/* The staleness rule, case by case. */
static void
test_pversion_copy_stale_rule_table(void **state)
{
	static const struct {
		uint64_t drop;
		bool regained;
		uint16_t slot_mark;
		uint64_t lut;
		uint16_t copy_mark;
		bool set_marker;
		bool stale;
	} t[] = {
		{ 0, false, 0, 10, 0, false, false },      /* never dropped */
		{ 0, true, 3, 10, 9, false, false },       /* never dropped, any mark */
		{ 100, false, 0, 99, 0, false, true },     /* older than the drop */
		{ 100, false, 0, 100, 0, false, false },   /* at the drop: newer */
		{ 100, false, 0, 101, 0, false, false },   /* after the drop */
		{ 100, false, 0, 99, 0, true, false },     /* a set marker */
		{ 100, false, 2, 99, 2, false, true },     /* mark of a regain that never reached the slot */
		{ 100, true, 2, 99, 2, false, false },     /* stored under the regain */
		{ 100, true, 2, 99, 0, false, true },      /* from before the drop */
		{ 100, true, 2, 99, 1, false, true },      /* from an earlier regain */
		{ 100, true, 2, 99, 3, false, true },      /* from a later regain never stored */
		{ 100, true, 2, 150, 0, false, false },    /* written after the drop */
		{ 100, true, 2, 99, 0, true, false },      /* a set marker */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (device_pmeta_copy_stale(t[i].drop, t[i].regained, t[i].slot_mark, t[i].lut, t[i].copy_mark,
		    t[i].set_marker) != t[i].stale)
			fail_msg("case %zu: stale should be %d", i, (int)t[i].stale);
}

/* The stored bytes of key k (a copy of what storage holds), *size long. */
static uint8_t *
stored_bytes(struct namespace *ns, const char *k, int n, uint32_t *size)
{
	struct txn_key key = { NULL, 0, k, (size_t)n };
	struct txn_record r;
	uint8_t *copy;

	assert_int_equal(txn_read(ns, &key, &r), 0);
	*size = (uint32_t)le_get32(r.buf + 4);
	copy = malloc(*size);
	assert_non_null(copy);
	memcpy(copy, r.buf, *size);
	txn_record_release(&r);
	return copy;
}

/*
 * A partition regained after a drop (a version stored again: the node is a
 * replica once more) keeps its drop time; the copies a migration brings it
 * that are older than the drop are stored with the regain's mark, which the
 * slot keeps, so a restart loads them and still skips the copies from
 * before the drop.  Q: regained, then copies arrive (one with a foreign
 * mark).  Q2: a copy arrives before the version store (its mark is chosen
 * then and kept by the store).  Q3: a copy arrives and the node stops
 * before any version store: stale, and the next regain takes a later mark.
 * R: never dropped: arriving bytes are stored as they are (mark 0), a
 * foreign mark cleared.
 */
static void
regained_partition_cold_start(bool shadow)
{
	const uint32_t Q = 1234, Q2 = 1500, Q3 = 2500, R = 2000;
	struct namespace *ns;
	struct node *node;
	struct storage_stats ss;
	char a[32], c[32], e[32], r1[32], r2[32], del[32];
	int an, cn, en, r1n, r2n, deln;
	uint8_t *fa, *fc, *fe, *fr1, *fr2, *back, *span;
	uint32_t sa, sc, se, sr1, sr2, sg;
	uint64_t drop_ms;
	struct device_pmeta sl;

	if (shadow)
		config_memory(true);
	else
		config_device(1);
	node = open_node(&ns);
	an = key_in(Q, "a", a, sizeof(a));
	deln = key_in(Q, "del", del, sizeof(del));
	cn = key_in(Q2, "c", c, sizeof(c));
	en = key_in(Q3, "e", e, sizeof(e));
	r1n = key_in(R, "r1-", r1, sizeof(r1));
	r2n = key_in(R, "r2-", r2, sizeof(r2));
	put(ns, a, an);
	put(ns, del, deln);
	put(ns, c, cn);
	put(ns, e, en);
	put(ns, r1, r1n);
	put(ns, r2, r2n);
	fa = stored_bytes(ns, a, an, &sa);
	fc = stored_bytes(ns, c, cn, &sc);
	fe = stored_bytes(ns, e, en, &se);
	fr1 = stored_bytes(ns, r1, r1n, &sr1);
	fr2 = stored_bytes(ns, r2, r2n, &sr2);
	sleep_ms(20);
	drop_ms = clock_epoch_ms();
	assert_int_equal(namespace_pversions_drop(ns, (const uint32_t[]){ Q, Q2, Q3 }, 3, drop_ms), 0);
	node_close(node, true);

	/* The drop's cold start: 4 stale copies (a, del, c, e; none of R). */
	node = open_node(&ns);
	storage_stats(ns->storage, &ss);
	assert_int_equal(ss.cold_start_dropped, 4);
	assert_int_equal(get(ns, a, an), -ENOENT);
	/* Q regained, then a's old copy arrives (with a foreign mark: 9);
	 * del does not (deleted meanwhile, its tombstone reclaimed). */
	assert_int_equal(namespace_pversion_store_one(ns, Q, 4242), 0);
	record_flat_set_mark(fa, 9);
	assert_int_equal(namespace_apply_flat(ns, fa, sa, false), 1);
	/* Q2: the copy first, the version store after. */
	assert_int_equal(namespace_apply_flat(ns, fc, sc, false), 1);
	assert_int_equal(namespace_pversion_store_one(ns, Q2, 4343), 0);
	/* Q3: a copy, no version store (the node stops first). */
	assert_int_equal(namespace_apply_flat(ns, fe, se, false), 1);
	/* R never dropped: r1 and r2 arrive newer (generation + 1), r2 with
	 * a foreign mark: r1 stored byte for byte, r2 with mark 0. */
	le_put16(fr1 + 10, (uint16_t)(le_get16(fr1 + 10) + 1));
	record_flat_set_mark(fr1, 0);
	assert_int_equal(namespace_apply_flat(ns, fr1, sr1, false), 1);
	back = stored_bytes(ns, r1, r1n, &sg);
	assert_int_equal(sg, sr1);
	assert_memory_equal(back, fr1, sr1);
	free(back);
	le_put16(fr2 + 10, (uint16_t)(le_get16(fr2 + 10) + 1));
	record_flat_set_mark(fr2, 9);
	assert_int_equal(namespace_apply_flat(ns, fr2, sr2, false), 1);
	assert_int_equal(record_flat_mark(fr2), 9);      /* the caller's bytes unchanged */
	back = stored_bytes(ns, r2, r2n, &sg);            /* read back: checks verified */
	record_flat_set_mark(fr2, 0);
	assert_memory_equal(back, fr2, sr2);
	free(back);
	/* a stored with Q's regain mark (1), its checks whole. */
	back = stored_bytes(ns, a, an, &sg);
	record_flat_set_mark(fa, 1);
	assert_memory_equal(back, fa, sa);
	free(back);
	back = stored_bytes(ns, c, cn, &sg);
	assert_int_equal(record_flat_mark(back), 1);
	free(back);
	node_close(node, true);

	span = read_span(path);
	assert_int_equal(device_pmeta_slot_decode3(span + slot_off(Q), &sl), 0);
	assert_int_equal(sl.version, 4242);
	assert_int_equal(sl.drop_ms, drop_ms);
	assert_int_equal(sl.mark, 1);
	assert_true(sl.regained);
	assert_int_equal(device_pmeta_slot_decode3(span + slot_off(Q2), &sl), 0);
	assert_int_equal(sl.version, 4343);
	assert_int_equal(sl.mark, 1);
	assert_true(sl.regained);
	assert_int_equal(device_pmeta_slot_decode3(span + slot_off(Q3), &sl), 0);
	assert_int_equal(sl.version, 0);
	assert_int_equal(sl.drop_ms, drop_ms);
	assert_int_equal(sl.mark, 0);
	assert_false(sl.regained);
	free(span);

	/* Stale: the copies of a, del, c and e from before the drop, and e's
	 * copy of the regain that never reached its slot. */
	node = open_node(&ns);
	storage_stats(ns->storage, &ss);
	assert_int_equal(ss.cold_start_dropped, 5);
	assert_int_equal(get(ns, a, an), 0);
	assert_int_equal(get(ns, c, cn), 0);
	assert_int_equal(get(ns, del, deln), -ENOENT);
	assert_int_equal(get(ns, e, en), -ENOENT);
	assert_int_equal(get(ns, r1, r1n), 0);
	assert_int_equal(get(ns, r2, r2n), 0);
	/* Q3 regained now: a mark after the one its stale copy carries. */
	assert_int_equal(namespace_pversion_store_one(ns, Q3, 4444), 0);
	assert_int_equal(namespace_apply_flat(ns, fe, se, false), 1);
	back = stored_bytes(ns, e, en, &sg);
	assert_int_equal(record_flat_mark(back), 2);
	free(back);
	node_close(node, false);

	/* e's copy of mark 1 is stale still (its wblock holds live copies);
	 * the wblock of the copies from before the drop may have been reused
	 * since (it held nothing live). */
	node = open_node(&ns);
	storage_stats(ns->storage, &ss);
	assert_true(ss.cold_start_dropped >= 1 && ss.cold_start_dropped <= 5);
	assert_int_equal(get(ns, e, en), 0);
	back = stored_bytes(ns, e, en, &sg);
	assert_int_equal(record_flat_mark(back), 2);
	free(back);
	assert_int_equal(get(ns, a, an), 0);
	assert_int_equal(get(ns, del, deln), -ENOENT);
	node_close(node, true);
	span = read_span(path);
	assert_int_equal(device_pmeta_slot_decode3(span + slot_off(Q3), &sl), 0);
	assert_int_equal(sl.mark, 2);
	assert_true(sl.regained);
	free(span);
	free(fa);
	free(fc);
	free(fe);
	free(fr1);
	free(fr2);
}

/*
 * A device of format version 2 (16-byte slots in the old area) still
 * opens: its versions and drop times are read from there (a dropped
 * partition's old copy is skipped), and opened for writing it becomes
 * version 3, its table in the new area, the drop time kept (mark 0, not
 * regained).  A later regain then works as on a new device.
 */
static void
test_pversion_version_2_device_is_read_and_rewritten_as_version_3(void **state)
{
	const uint32_t P = 77, V = 300;
	struct namespace *ns;
	struct node *node;
	struct storage_stats ss;
	struct device_header h;
	struct device_pmeta sl;
	uint8_t page[DEVICE_HEADER_PAGE], *span, *old;
	char k[32];
	int kn, fd;
	uint64_t drop_ms;

	(void)state;
	config_device(1);
	node = open_node(&ns);
	kn = key_in(P, "k", k, sizeof(k));
	put(ns, k, kn);
	node_close(node, true);
	sleep_ms(20);
	drop_ms = clock_epoch_ms();

	/* What a version 2 build leaves: header 2, slots in the old area. */
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, page, sizeof(page), 0), (ssize_t)sizeof(page));
	assert_int_equal(device_header_decode(page, &h, NULL, 0), 0);
	h.version = 2;
	device_header_encode(&h, page);
	assert_int_equal(pwrite(fd, page, sizeof(page), 0), (ssize_t)sizeof(page));
	old = calloc(1, DEVICE_PMETA_SIZE);
	assert_non_null(old);
	assert_int_equal(pwrite(fd, old, DEVICE_PMETA_SIZE, DEVICE_PMETA_OFFSET), DEVICE_PMETA_SIZE);
	le_put64(old + (size_t)P * DEVICE_PMETA_SLOT_V2, drop_ms);
	le_put32(old + (size_t)P * DEVICE_PMETA_SLOT_V2 + 8, DEVICE_PMETA_F_DROPPED_V2);
	le_put32(old + (size_t)P * DEVICE_PMETA_SLOT_V2 + 12, crc32c(0, old + (size_t)P * DEVICE_PMETA_SLOT_V2, 12));
	le_put64(old + (size_t)V * DEVICE_PMETA_SLOT_V2, 31337);
	le_put32(old + (size_t)V * DEVICE_PMETA_SLOT_V2 + 12, crc32c(0, old + (size_t)V * DEVICE_PMETA_SLOT_V2, 12));
	assert_int_equal(pwrite(fd, old, DEVICE_PMETA_SIZE_V2, DEVICE_PMETA_OFFSET_V2), DEVICE_PMETA_SIZE_V2);
	close(fd);
	free(old);

	node = open_node(&ns);
	storage_stats(ns->storage, &ss);
	assert_int_equal(ss.cold_start_dropped, 1);
	assert_int_equal(get(ns, k, kn), -ENOENT);
	assert_int_equal(namespace_pversions_load(ns, got), 0);
	assert_int_equal(got[V], 31337);
	assert_int_equal(got[P], 0);
	node_close(node, true);
	span = read_span(path);
	assert_int_equal(device_header_decode(span, &h, NULL, 0), 0);
	assert_int_equal(h.version, DEVICE_HEADER_VERSION);
	assert_int_equal(device_pmeta_slot_decode3(span + slot_off(P), &sl), 0);
	assert_int_equal(sl.version, 0);
	assert_int_equal(sl.drop_ms, drop_ms);
	assert_int_equal(sl.mark, 0);
	assert_false(sl.regained);
	assert_int_equal(device_pmeta_slot_decode3(span + slot_off(V), &sl), 0);
	assert_int_equal(sl.version, 31337);
	free(span);

	/* Regained on the version 3 device: a copy written since loads. */
	node = open_node(&ns);
	assert_int_equal(namespace_pversion_store_one(ns, P, 5), 0);
	put(ns, k, kn);
	node_close(node, true);
	node = open_node(&ns);
	storage_stats(ns->storage, &ss);
	assert_int_equal(get(ns, k, kn), 0);
	node_close(node, true);
}

static void
test_pversion_regained_partition_loads_its_marked_copies_only_device(void **state)
{
	regained_partition_cold_start(false);
}

static void
test_pversion_regained_partition_loads_its_marked_copies_only_shadow(void **state)
{
	regained_partition_cold_start(true);
}

static void
test_pversion_dropped_partition_copies_never_load_again_device(void **state)
{
	dropped_partition_cold_start(false);
}

static void
test_pversion_dropped_partition_copies_never_load_again_shadow(void **state)
{
	dropped_partition_cold_start(true);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pversion_device_table_survives_restart_and_touches_only_the_pmeta_area, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pversion_shadow_table_survives_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pversion_memory_without_shadow_keeps_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pversion_damaged_slot_loads_as_0_and_is_logged_with_file_and_offset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pversion_new_format_and_cold_start_empty_give_all_0, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pversion_devices_that_disagree_give_0_for_those_partitions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pversion_store_one_before_any_load_keeps_the_other_slots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pversion_concurrent_single_stores_beside_record_writes_all_land, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pversion_failed_write_on_one_device_is_an_error_and_reads_as_0, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pversion_store_writes_only_the_pages_that_changed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pversion_recfs_check_reports_versions_damaged_slots_and_disagreement, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pversion_dropped_partition_copies_never_load_again_device, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pversion_dropped_partition_copies_never_load_again_shadow, setup, teardown),
		cmocka_unit_test(test_pversion_slot_v3_fields_crc_and_v2_slots),
		cmocka_unit_test(test_pversion_copy_stale_rule_table),
		cmocka_unit_test_setup_teardown(test_pversion_version_2_device_is_read_and_rewritten_as_version_3, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pversion_regained_partition_loads_its_marked_copies_only_device, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pversion_regained_partition_loads_its_marked_copies_only_shadow, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
