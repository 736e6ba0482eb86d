/*
 * fuzz_pversion.c - fuzz target for reading the partition versions (the
 * pmeta area, docs/storage-format.md) of a device file.
 *
 * Each input is written as the pmeta area (up to 128 KiB of 32-byte slots,
 * the rest zero) of a device file that has a valid header (made once by the
 * engine itself); before that, every slot whose first byte is odd is
 * "resealed" (reserved fields 0, flags cut to the known one, CRC made to
 * match), so inputs hold valid versions, drop times and regain marks as
 * well as damaged slots.  Then through the public API: node_open, load,
 * one slot stored, load again, node_close.  Whatever the bytes:
 *   - the namespace opens and the load returns 0 (a damaged slot is never
 *     fatal);
 *   - each partition loads as what device_pmeta_slot_decode makes of its
 *     slot, 0 when that fails: nothing else is trusted;
 *   - storing one slot changes that partition only (the other slots of its
 *     page are rewritten from the table as loaded);
 *   - no crash, leak or hang.
 * Each input costs an open and a close (~100 exec/s in the plain build).
 */
#include <endian.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/crc32c.h"
#include "base/log.h"
#include "namespace/namespace.h"
#include "storage/device_header.h"
#include "storage/storage.h"
#include "txn/txn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t fuzz_seed(unsigned i, uint8_t *buf, size_t cap);

const char fuzz_target_name[] = "fuzz_pversion";

#define WBS (128u * 1024)
#define FILESIZE (16ull << 20)

#define fuzz_assert(cond) do { \
		if (!(cond)) { \
			fprintf(stderr, "%s: %s:%d: %s\n", fuzz_target_name, __FILE__, __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

static char dir[256], path[300];
static uint8_t header_page[DEVICE_HEADER_PAGE];
static struct recfs_config cfg;

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
	n->storage.type = STORAGE_DEVICE;
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
	/* Damaged slots are logged as errors.  FUZZ_VERBOSE=1 keeps them. */
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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t area[DEVICE_PMETA_SIZE];
	static uint64_t want[STORAGE_PARTITIONS], got[STORAGE_PARTITIONS];
	struct namespace *ns;
	struct node *node;
	uint32_t pid;
	int fd;

	init_once();
	memset(area, 0, sizeof(area));
	memcpy(area, data, size < sizeof(area) ? size : sizeof(area));
	for (uint32_t p = 0; p < STORAGE_PARTITIONS; p++) {
		uint8_t *s = area + (size_t)p * DEVICE_PMETA_SLOT;
		uint32_t crc;

		if (s[0] & 1) {
			memset(s + 18, 0, 2);
			s[20] &= DEVICE_PMETA_F_REGAINED;
			memset(s + 21, 0, 7);
			crc = htole32(crc32c(0, s, 28));
			memcpy(s + 28, &crc, 4);
		}
		if (device_pmeta_slot_decode(s, &want[p]) != 0)
			want[p] = 0;
	}
	make_dir();
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	fuzz_assert(fd >= 0);
	fuzz_assert(pwrite(fd, header_page, sizeof(header_page), 0) == (ssize_t)sizeof(header_page));
	fuzz_assert(pwrite(fd, area, sizeof(area), DEVICE_PMETA_OFFSET) == (ssize_t)sizeof(area));
	fuzz_assert(ftruncate(fd, (off_t)FILESIZE) == 0);
	fuzz_assert(close(fd) == 0);

	config_make();
	fuzz_assert(node_open(&node, &cfg) == 0);
	ns = node_namespace(node, 0);
	fuzz_assert(namespace_pversions_load(ns, got) == 0);
	fuzz_assert(memcmp(got, want, sizeof(got)) == 0);
	/* One slot, chosen by the input. */
	pid = size >= 2 ? (uint32_t)(data[0] | data[1] << 8) % STORAGE_PARTITIONS : 0;
	memcpy(&want[pid], area + 2, sizeof(want[pid]));
	want[pid] = le64toh(want[pid]);
	fuzz_assert(namespace_pversion_store_one(ns, pid, want[pid]) == 0);
	fuzz_assert(namespace_pversions_load(ns, got) == 0);
	fuzz_assert(memcmp(got, want, sizeof(got)) == 0);
	node_close(node, true);
	remove_dir();
	return 0;
}

/* ---- seeds --------------------------------------------------------------- */

size_t
fuzz_seed(unsigned i, uint8_t *buf, size_t cap)
{
	size_t n = cap < DEVICE_PMETA_SIZE ? cap : DEVICE_PMETA_SIZE;

	memset(buf, 0, n);
	switch (i) {
	case 0: /* every partition with a version */
		for (uint32_t p = 0; p < n / DEVICE_PMETA_SLOT; p++)
			device_pmeta_slot_encode(((uint64_t)p << 32) | (p * 2 + 1),
			    buf + (size_t)p * DEVICE_PMETA_SLOT);
		return n;
	case 1: /* a few, in the first page only */
		for (uint32_t p = 0; p < 40; p += 3)
			device_pmeta_slot_encode(1000 + p, buf + (size_t)p * DEVICE_PMETA_SLOT);
		return 40 * DEVICE_PMETA_SLOT;
	case 2: /* one slot */
		device_pmeta_slot_encode(0x0102030405060708ull, buf);
		return DEVICE_PMETA_SLOT;
	case 3: /* all zero: fresh */
		return DEVICE_HEADER_PAGE;
	case 4: /* dropped, regained and plain slots, mixed */
		for (uint32_t p = 0; p < 200 && (size_t)(p + 1) * DEVICE_PMETA_SLOT <= n; p++) {
			struct device_pmeta sl = {
				.version = p % 3 == 0 ? 0 : 500 + p,
				.drop_ms = p % 2 == 0 ? 1000000 + p : 0,
				.mark = (uint16_t)(p % 5),
				.regained = p % 3 != 0 && p % 2 == 0,
			};

			device_pmeta_slot_encode3(&sl, buf + (size_t)p * DEVICE_PMETA_SLOT);
		}
		return 200 * DEVICE_PMETA_SLOT;
	default:
		return 0;
	}
}
