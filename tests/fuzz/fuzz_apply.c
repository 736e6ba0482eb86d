/*
 * fuzz_apply.c - fuzz target for namespace_apply_flat: a record that
 * arrives encoded from another node (a replica write, a migrated copy),
 * applied to a memory namespace opened once.
 *
 * Input: one flags byte, then the bytes handed over as the record.  With
 * bit 0 of the flags set, the header check and the record CRC are sealed
 * again first (where the end offset allows), so that mutations reach the
 * decoder's field checks and the namespace's own (set name, key, digest)
 * instead of stopping at the CRC.  Whatever the bytes:
 *   - the answer is 1 (applied), 0 (the stored version is as new or
 *     newer), -EBADMSG (malformed), -EFBIG or -ENOSPC, never another;
 *   - applied, the bytes decode, and a live record that has not expired
 *     reads back through its set and key as exactly these bytes (the
 *     transaction layer finds it: the digest is its set and key's);
 *   - refused as malformed, nothing is stored (data_used_bytes unchanged);
 *   - no crash, leak or hang.
 * Seeds are valid records built here: plain, with POSIX meta and bins, in
 * a set, a set marker, a tombstone.
 */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/crc32c.h"
#include "base/digest.h"
#include "base/log.h"
#include "namespace/namespace.h"
#include "record/record.h"
#include "txn/txn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t fuzz_seed(unsigned i, uint8_t *buf, size_t cap);

const char fuzz_target_name[] = "fuzz_apply";

#define fuzz_assert(cond) do { \
		if (!(cond)) { \
			fprintf(stderr, "%s: %s:%d: %s\n", fuzz_target_name, __FILE__, __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

static struct recfs_config cfg;
static struct node *node;
static struct namespace *ns;

/* Outcomes: applied, not newer, malformed, other refusals (EFBIG, ENOSPC). */
static unsigned long n_applied, n_not_newer, n_malformed, n_other;

static void
close_node(void)
{
	printf("%s: %lu applied, %lu not newer, %lu malformed, %lu too big or no space\n",
	    fuzz_target_name, n_applied, n_not_newer, n_malformed, n_other);
	node_close(node, true);
	config_free(&cfg);
}

static void
init_once(void)
{
	struct ns_config *n = &cfg.ns[0];

	if (node != NULL)
		return;
	if (getenv("FUZZ_VERBOSE") == NULL)
		fuzz_assert(log_open("/dev/null", LOG_LEVEL_ERROR) == 0);
	memset(&cfg, 0, sizeof(cfg));
	cfg.n_namespaces = 1;
	strcpy(n->name, "fuzz");
	strcpy(n->file_bin, "data");
	n->replication_factor = 1;
	n->storage.type = STORAGE_MEMORY;
	n->storage.data_size = 64u << 20;
	n->storage.write_block_size = 1u << 20;
	/* No defrag: a relocation running beside an input would move
	 * data_used_bytes for a moment.  Emptied wblocks are freed anyway. */
	n->storage.defrag_lwm_pct = 0;
	fuzz_assert(node_open(&node, &cfg) == 0);
	ns = node_namespace_find(node, "fuzz", 4);
	fuzz_assert(ns != NULL);
	atexit(close_node);
}

static uint64_t
used_bytes(void)
{
	uint64_t v[STAT_NS_COUNT];

	txn_namespace_values(ns, v);
	return v[STAT_NS_data_used_bytes];
}

/* Seal the header check and the CRC again, as far as the bytes allow. */
static void
reseal(uint8_t *b, size_t len)
{
	uint32_t end, crc;

	if (len < RECORD_FLAT_HEADER_SIZE)
		return;
	crc = htole32(crc32c(0, b, 60));
	memcpy(b + 60, &crc, 4);
	memcpy(&end, b + 56, 4);
	end = le32toh(end);
	if (end < RECORD_FLAT_HEADER_SIZE || (uint64_t)end + 8 > len)
		return;
	crc = htole32(crc32c(0, b, (size_t)end + 4));
	memcpy(b + end + 4, &crc, 4);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *b;
	size_t len;
	uint64_t used;
	int rc;

	if (size < 1 || size - 1 > UINT32_MAX)
		return 0;
	init_once();
	len = size - 1;
	b = malloc(len > 0 ? len : 1);
	fuzz_assert(b != NULL);
	memcpy(b, data + 1, len);
	if (data[0] & 1)
		reseal(b, len);
	used = used_bytes();
	rc = namespace_apply_flat(ns, b, (uint32_t)len, false);
	fuzz_assert(rc == 1 || rc == 0 || rc == -EBADMSG || rc == -EFBIG || rc == -ENOSPC);
	n_applied += rc == 1;
	n_not_newer += rc == 0;
	n_malformed += rc == -EBADMSG;
	n_other += rc < 0 && rc != -EBADMSG;
	if (rc == -EBADMSG)
		fuzz_assert(used_bytes() == used);
	if (rc == 1) {
		struct record r;

		fuzz_assert(record_flat_decode(b, len, &r) == 0);
		/* Not about to expire between here and the read (1 s clock). */
		bool live = !(r.flags & (RECORD_F_TOMBSTONE | RECORD_F_SET_MARKER)) &&
		    (r.void_time == 0 || r.void_time > clock_epoch_s() + 2);
		if (live) {
			struct txn_key k = { r.set, r.set_len, r.key, r.key_len };
			struct txn_record t;

			fuzz_assert(txn_read(ns, &k, &t) == 0);
			fuzz_assert(memcmp(t.buf, b, len) == 0);
			txn_record_release(&t);
			/* Room for the next inputs. */
			fuzz_assert(txn_delete(ns, &k) == 0);
		}
		record_release(&r);
	}
	free(b);
	return 0;
}

/* ---- seeds: one flags byte (1: reseal), one valid record ---------------- */

static uint8_t value[2048];

static size_t
seed_record(uint8_t *buf, size_t cap, const char *set, const char *key, uint8_t flags,
    uint32_t value_len, bool extra_bins)
{
	struct record r;
	long n;

	for (size_t k = 0; k < sizeof(value); k++)
		value[k] = (uint8_t)(k * 31 + 7);
	record_init(&r);
	r.flags = flags;
	r.generation = 3;
	r.key_type = DIGEST_KEY_TYPE_STRING;
	r.last_update_ms = clock_epoch_ms();
	r.set = set;
	r.set_len = (uint8_t)strlen(set);
	r.key = key;
	r.key_len = (uint16_t)strlen(key);
	digest_compute(&r.digest, set, r.set_len, key, r.key_len);
	if (flags & RECORD_F_HAS_META) {
		r.meta.mode = 0640;
		r.meta.uid = 1000;
		r.meta.gid = 100;
		r.meta.mtime_ns = 1700000000000000000LL;
	}
	if (!(flags & (RECORD_F_TOMBSTONE | RECORD_F_SET_MARKER))) {
		struct bin *b = &r.bins_inline[0];

		strcpy(b->name, "data");
		b->name_len = 4;
		b->type = BIN_BLOB;
		b->v.bytes.data = value;
		b->v.bytes.len = value_len;
		r.n_bins = 1;
		if (extra_bins) {
			b = &r.bins_inline[1];
			strcpy(b->name, "color");
			b->name_len = 5;
			b->type = BIN_STRING;
			b->v.bytes.data = (const uint8_t *)"blue";
			b->v.bytes.len = 4;
			b = &r.bins_inline[2];
			strcpy(b->name, "n");
			b->name_len = 1;
			b->type = BIN_INTEGER;
			b->v.integer = 42;
			r.n_bins = 3;
		}
	}
	buf[0] = 1;
	n = record_flat_encode(&r, buf + 1, cap - 1);
	return n > 0 ? (size_t)n + 1 : 0;
}

size_t
fuzz_seed(unsigned i, uint8_t *buf, size_t cap)
{
	switch (i) {
	case 0:
		return seed_record(buf, cap, "", "plain", 0, 100, false);
	case 1:
		return seed_record(buf, cap, "photos", "a.jpg", RECORD_F_HAS_META, 1500, true);
	case 2:
		return seed_record(buf, cap, "photos", "", RECORD_F_SET_MARKER | RECORD_F_HAS_META, 0,
		    false);
	case 3:
		return seed_record(buf, cap, "docs", "gone", RECORD_F_TOMBSTONE, 0, false);
	case 4: { /* the same record, not resealed: the CRC must hold by itself */
		size_t n = seed_record(buf, cap, "docs", "kept", RECORD_F_HAS_META, 10, true);

		buf[0] = 0;
		return n;
	}
	default:
		return 0;
	}
}
