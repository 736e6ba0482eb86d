/*
 * fuzz_cold_start.c - fuzz target for the cold-start scan of a wblock image:
 * the device engine, or with FUZZ_SHADOW the memory engine with a shadow
 * file.  Both read the same images (device_cold_start.c).
 *
 * Each input is written as the wblock area of a storage file that has a
 * valid header (made once by the engine itself, the high-water mark set
 * past the input), then the real cold start runs through the public API:
 * node_open scans the file, every record listed in every set is read back,
 * node_close.  Whatever the bytes:
 *   - the namespace opens (damaged wblocks are skipped, never fatal);
 *   - every listed record reads back whole or is gone (-ENOENT: its key
 *     does not lead to it, e.g. an integer key type or a digest that is
 *     not its key's), or fails with RECFS_ECHECKSUM (EIO through the
 *     mount) when the cold start marked its newest copy damaged (stat
 *     says so) - never an error for a record not marked damaged, which
 *     would mean the scan indexed bytes whose checks fail;
 *   - what reads back is the copy listed (digest, generation, update time);
 *   - no crash, leak (LeakSanitizer at exit / libFuzzer per input) or hang
 *     (libFuzzer -timeout).
 * Each input costs a whole open and close (threads, io_uring, index, the
 * shadow's RAM): about 75 exec/s in the libFuzzer+ASan build on one core
 * of a busy machine, ~300/s in the plain build.  Slow next to the record
 * target's thousands, but it tests the scan as it runs, and the decoder
 * it calls has its own target; so no scan entry point is exposed.
 *
 * The input is placed from the first data wblock on (128 KiB wblocks), so
 * inputs longer than a wblock exercise records near and across the end of
 * one.  Seeds are wblock images of valid records built here (fuzz_seed).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/digest.h"
#include "base/error.h"
#include "base/log.h"
#include "record/record.h"
#include "storage/device_header.h"
#include "storage/storage.h"
#include "txn/txn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t fuzz_seed(unsigned i, uint8_t *buf, size_t cap);

#ifdef FUZZ_SHADOW
const char fuzz_target_name[] = "fuzz_scan_shadow";
#else
const char fuzz_target_name[] = "fuzz_scan_device";
#endif

#define WBS (128u * 1024)
#define FILESIZE (16ull << 20)
#define FIRST_WBLOCK (STORAGE_HEADER_SIZE / WBS)
#define MAX_WBLOCKS 4   /* of input: longer inputs are cut */

#define fuzz_assert(cond) do { \
		if (!(cond)) { \
			fprintf(stderr, "%s: %s:%d: %s\n", fuzz_target_name, __FILE__, __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

static char dir[256], path[300];
static uint8_t header_page[DEVICE_HEADER_PAGE];
static struct recfs_config cfg;

/* A fresh directory per input, removed after it: nothing is left behind
 * when libFuzzer ends the process without running atexit handlers. */
static void
make_dir(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/recfs-%s-XXXXXX", tmp != NULL ? tmp : "/tmp", fuzz_target_name);
	fuzz_assert(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/fuzz.dat", dir);
}

static void
remove_dir(void)
{
	unlink(path);
	rmdir(dir);
}

static void
config_make(void)
{
	struct ns_config *n = &cfg.ns[0];

	config_free(&cfg);
	memset(&cfg, 0, sizeof(cfg));
	cfg.n_namespaces = 1;
	strcpy(n->name, "fuzz");
	strcpy(n->file_bin, "data");
	n->replication_factor = 1;
#ifdef FUZZ_SHADOW
	n->storage.type = STORAGE_MEMORY;
	n->storage.data_size = FILESIZE;
#else
	n->storage.type = STORAGE_DEVICE;
#endif
	n->storage.files[0] = strdup(path);
	n->storage.n_files = 1;
	n->storage.filesize = FILESIZE;
	n->storage.write_block_size = WBS;
	n->storage.flush_max_ms = 100;
	n->storage.max_write_cache = 1u << 20;
	n->storage.defrag_lwm_pct = 50;
	n->storage.direct_io = false;   /* the file may be on tmpfs */
	fuzz_assert(n->storage.files[0] != NULL);
}

/* Once: a header the engine wrote itself. */
static void
init_once(void)
{
	static bool done;
	struct node *node;
	int fd;

	if (done)
		return;
	done = true;
	/* Damaged records are logged as errors: thousands of lines a second.
	 * FUZZ_VERBOSE=1 keeps the log on stderr. */
	if (getenv("FUZZ_VERBOSE") == NULL)
		fuzz_assert(log_open("/dev/null", LOG_LEVEL_ERROR) == 0);
	make_dir();
	config_make();
	fuzz_assert(node_open(&node, &cfg) == 0);
	node_close(node, true);
	fd = open(path, O_RDONLY);
	fuzz_assert(fd >= 0);
	fuzz_assert(pread(fd, header_page, sizeof(header_page), 0) == (ssize_t)sizeof(header_page));
	close(fd);
	remove_dir();
}

static void
write_image(const uint8_t *data, size_t size)
{
	struct device_header h;
	uint8_t page[DEVICE_HEADER_PAGE];
	size_t n_wblocks = (size + WBS - 1) / WBS;
	int fd;

	fuzz_assert(device_header_decode(header_page, &h, NULL, 0) == 0);
	h.high_water = (uint32_t)(FIRST_WBLOCK + n_wblocks);
	device_header_encode(&h, page);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	fuzz_assert(fd >= 0);
	fuzz_assert(pwrite(fd, page, sizeof(page), 0) == (ssize_t)sizeof(page));
	if (size > 0)
		fuzz_assert(pwrite(fd, data, size, (off_t)FIRST_WBLOCK * WBS) == (ssize_t)size);
	fuzz_assert(ftruncate(fd, (off_t)FILESIZE) == 0);
	fuzz_assert(close(fd) == 0);
}

static unsigned long fuzz_listed, fuzz_read;

/* Read back every record listed in one set (NULL = the null set). */
static void
check_set(struct namespace *ns, const char *set)
{
	static struct txn_entry entries[64];
	size_t set_len = set != NULL ? strlen(set) : 0;
	struct txn_cursor cur;
	int n;

	txn_cursor_init(&cur);
	while ((n = txn_list(ns, set, set_len, &cur, entries, 64)) > 0) {
		for (int i = 0; i < n; i++) {
			const struct txn_entry *e = &entries[i];
			struct txn_key k = { set, set_len, e->key, e->key_len };
			struct record_attr a;
			struct txn_record r;
			int rc_stat = txn_stat(ns, &k, &a);
			int rc = txn_read(ns, &k, &r);

			fuzz_listed++;
			/* What the key leads to (e itself, or a copy with the
			 * key's proper digest): marked damaged, it fails with
			 * RECFS_ECHECKSUM (EIO through the mount);
			 * otherwise it reads whole.  ENOENT: nothing there (or it
			 * expired between the two calls). */
			fuzz_assert(rc_stat == 0 || rc_stat == -ENOENT);
			if (rc_stat == 0 && a.damaged)
				fuzz_assert(rc == RECFS_ECHECKSUM || rc == -ENOENT);
			else
				fuzz_assert(rc == 0 || rc == -ENOENT);
			if (rc != 0)
				continue;
			fuzz_read++;
			/* The key may lead to another copy with the same key
			 * but its proper digest: only compare what it names. */
			if (digest_compare(&r.attr.digest, &e->attr.digest) == 0) {
				fuzz_assert(r.attr.generation == e->attr.generation);
				fuzz_assert(r.attr.last_update_ms == e->attr.last_update_ms);
				fuzz_assert(digest_compare(&r.rec.digest, &e->attr.digest) == 0);
			}
			fuzz_assert(record_flat_size(&r.rec) > 0);
			txn_record_release(&r);
		}
	}
	fuzz_assert(n == 0);
}

struct set_names {
	char names[64][RECORD_SET_MAX + 1];
	unsigned n;
};

static int
collect_set(void *arg, const struct txn_set_info *info)
{
	struct set_names *s = arg;

	if (s->n < 64)
		memcpy(s->names[s->n++], info->name, sizeof(info->name));
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct set_names sets;
	struct node *node;
	struct namespace *ns;

	init_once();
	if (size > MAX_WBLOCKS * WBS)
		size = MAX_WBLOCKS * WBS;
	make_dir();
	write_image(data, size);
	config_make();
	fuzz_assert(node_open(&node, &cfg) == 0);
	ns = node_namespace(node, 0);
	check_set(ns, NULL);
	sets.n = 0;
	fuzz_assert(txn_set_foreach(ns, collect_set, &sets) == 0);
	for (unsigned i = 0; i < sets.n; i++)
		if (sets.names[i][0] != '\0')
			check_set(ns, sets.names[i]);
	node_close(node, true);
	remove_dir();
	return 0;
}

/* ---- seeds: wblock images of valid records ----------------------------- */

static uint8_t value[4096];

/* Encode one record at buf + off; returns the new offset (unchanged if it
 * does not fit). */
static size_t
put_record(uint8_t *buf, size_t cap, size_t off, const char *set, const char *key, uint16_t gen,
    uint64_t lut, uint8_t flags, uint32_t value_len, uint32_t void_time)
{
	struct record r;
	long n;

	record_init(&r);
	r.flags = flags;
	r.generation = gen;
	r.key_type = 3;
	r.last_update_ms = lut;
	r.void_time = void_time;
	r.set = set;
	r.set_len = (uint8_t)strlen(set);
	r.key = key;
	r.key_len = (uint16_t)strlen(key);
	digest_compute(&r.digest, set, r.set_len, key, r.key_len);
	if (flags & RECORD_F_HAS_META) {
		r.meta.mode = 0640;
		r.meta.uid = 1000;
		r.meta.gid = 100;
		r.meta.mtime_ns = (int64_t)lut * 1000000;
	}
	if (!(flags & (RECORD_F_TOMBSTONE | RECORD_F_SET_MARKER))) {
		struct bin *b = &r.bins_inline[0];

		memset(b, 0, sizeof(*b));
		strcpy(b->name, "data");
		b->name_len = 4;
		b->type = BIN_BLOB;
		b->v.bytes.data = value;
		b->v.bytes.len = value_len;
		r.n_bins = 1;
		if (value_len % 3 == 0) {
			b = &r.bins_inline[1];
			memset(b, 0, sizeof(*b));
			strcpy(b->name, "user.n");
			b->name_len = 6;
			b->type = BIN_INTEGER;
			b->v.integer = (int64_t)value_len;
			r.n_bins = 2;
		}
	}
	n = record_flat_encode(&r, buf + off, cap - off);
	record_release(&r);
	return n > 0 ? off + (size_t)n : off;
}

size_t
fuzz_seed(unsigned i, uint8_t *buf, size_t cap)
{
	size_t off = 0;
	char key[32];

	for (size_t k = 0; k < sizeof(value); k++)
		value[k] = (uint8_t)(k * 31 + 7);
	if (cap > 2 * WBS)
		cap = 2 * WBS;
	memset(buf, 0, cap);
	switch (i) {
	case 0: /* a few plain records */
		for (int k = 0; k < 8; k++) {
			snprintf(key, sizeof(key), "file%d", k);
			off = put_record(buf, cap, off, "", key, 1, 1000 + k, RECORD_F_HAS_META,
			    (uint32_t)(k * 100), 0);
		}
		break;
	case 1: /* copies of one record: newer generation, newer update time */
		off = put_record(buf, cap, off, "", "a", 1, 1000, 0, 10, 0);
		off = put_record(buf, cap, off, "", "a", 2, 1000, 0, 20, 0);
		off = put_record(buf, cap, off, "", "a", 1, 2000, 0, 30, 0);
		off = put_record(buf, cap, off, "", "b", 5, 1000, 0, 40, 0);
		break;
	case 2: /* sets, a set marker, a tombstone over a live copy */
		off = put_record(buf, cap, off, "photos", "", 1, 900, RECORD_F_SET_MARKER, 0, 0);
		off = put_record(buf, cap, off, "photos", "x.jpg", 1, 1000, RECORD_F_HAS_META, 2000, 0);
		off = put_record(buf, cap, off, "docs", "y.txt", 1, 1000, 0, 50, 0);
		off = put_record(buf, cap, off, "docs", "y.txt", 2, 1100, RECORD_F_TOMBSTONE, 0, 0);
		off = put_record(buf, cap, off, "", "z", 3, 1200, 0, 0, 0);
		break;
	case 3: /* an expired record and one that expires far in the future */
		off = put_record(buf, cap, off, "", "old", 1, 1000, 0, 5, 1);
		off = put_record(buf, cap, off, "", "new", 1, 1000, 0, 5, 0xfffffff0u);
		break;
	case 4: /* garbage between records, a record at an odd rblock */
		off = put_record(buf, cap, off, "", "g1", 1, 1000, 0, 33, 0);
		memset(buf + off, 0x5a, 48);
		off += 48;
		off = put_record(buf, cap, off, "", "g2", 1, 1000, 0, 66, 0);
		break;
	case 5: /* records up to the end of the first wblock, one in the next */
		if (cap < WBS + 4096)
			return 0;
		off = WBS - 2 * 4096;
		off = put_record(buf, cap, off, "", "edge1", 1, 1000, 0, 3000, 0);
		off = put_record(buf, cap, off, "", "edge2", 1, 1000, 0, 3000, 0);
		off = put_record(buf, cap, WBS, "", "next", 1, 1000, 0, 100, 0);
		break;
	default:
		return 0;
	}
	return off;
}
