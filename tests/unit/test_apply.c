/*
 * test_apply.c - applying a record that arrives encoded (replica writes,
 * migration): namespace_apply_flat and the storage op under it.
 *
 * One node with two namespaces, one on the memory engine and one on the
 * device engine (a file in a temporary directory).  Records written through
 * the transaction layer of one are read back as the bytes storage holds,
 * applied to the other, and compared there: content, xattrs (bins), mode,
 * owner, times, generation.  An older or equal version is refused and
 * counted; malformed bytes are -EBADMSG with nothing stored; the conflict
 * rule's table for a record deleted, reclaimed and recreated while a node
 * holding an old copy was away (migration).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/crc32c.h"
#include "namespace/namespace.h"
#include "txn/txn.h"

static char dir[256];
static char path[300];
static struct recfs_config cfg;
static struct node *node;
static struct namespace *mem, *dev;

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/recfs-test-apply-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/dev.dat", dir);
	memset(&cfg, 0, sizeof(cfg));
	cfg.n_namespaces = 2;

	struct ns_config *m = &cfg.ns[0], *d = &cfg.ns[1];

	strcpy(m->name, "mem");
	strcpy(m->file_bin, "data");
	m->replication_factor = 1;
	m->storage.type = STORAGE_MEMORY;
	m->storage.data_size = 16u << 20;
	m->storage.write_block_size = 128 * 1024;
	m->storage.defrag_lwm_pct = 50;

	strcpy(d->name, "dev");
	strcpy(d->file_bin, "data");
	d->replication_factor = 1;
	d->storage.type = STORAGE_DEVICE;
	d->storage.files[0] = strdup(path);
	d->storage.n_files = 1;
	d->storage.filesize = 32u << 20;
	d->storage.write_block_size = 128 * 1024;
	d->storage.flush_max_ms = 100;
	d->storage.max_write_cache = 8u << 20;
	d->storage.defrag_lwm_pct = 50;
	d->storage.direct_io = false;
	if (node_open(&node, &cfg) != 0)
		return -1;
	mem = node_namespace_find(node, "mem", 3);
	dev = node_namespace_find(node, "dev", 3);
	return mem == NULL || dev == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	node_close(node, true);
	unlink(path);
	rmdir(dir);
	config_free(&cfg);
	return 0;
}

static struct txn_key
key(const char *set, const char *k)
{
	return (struct txn_key){ set, set ? strlen(set) : 0, k, strlen(k) };
}

static uint64_t
ns_value(struct namespace *ns, int stat)
{
	uint64_t v[STAT_NS_COUNT];

	txn_namespace_values(ns, v);
	return v[stat];
}

/* The stored bytes of a record: a copy of what storage holds, *size long. */
static uint8_t *
stored_bytes(struct namespace *ns, const char *set, const char *k, uint32_t *size)
{
	struct txn_key tk = key(set, k);
	struct txn_record r;
	uint32_t le;
	uint8_t *copy;

	assert_int_equal(txn_read(ns, &tk, &r), 0);
	memcpy(&le, r.buf + 4, sizeof(le));
	*size = le32toh(le);
	copy = malloc(*size);
	assert_non_null(copy);
	memcpy(copy, r.buf, *size);
	txn_record_release(&r);
	return copy;
}

/* Write one record with content, two xattrs, a mode, an owner and an mtime. */
static void
write_full(struct namespace *ns, const char *set, const char *k, const char *content, int64_t mtime)
{
	struct txn_key tk = key(set, k);
	struct txn_bin_op bins[2] = {
		{ .name = "color", .name_len = 5, .type = BIN_STRING, .data = "blue", .len = 4 },
		{ .name = "blob", .name_len = 4, .type = BIN_BLOB, .data = "\0\1\2", .len = 3 },
	};
	struct txn_write w = { .set_file = true, .file_data = content, .file_len = strlen(content),
	    .set_mode = true, .mode = 0640, .set_uid = true, .uid = 1234, .set_gid = true,
	    .gid = 5678, .set_mtime = true, .mtime_ns = mtime, .bins = bins, .n_bins = 2 };

	assert_int_equal(txn_write(ns, &tk, &w, NULL), 0);
}

static void
put(struct namespace *ns, const char *set, const char *k, const char *content)
{
	struct txn_key tk = key(set, k);
	struct txn_write w = { .set_file = true, .file_data = content, .file_len = strlen(content) };

	assert_int_equal(txn_write(ns, &tk, &w, NULL), 0);
}

/* The record reads the same in both namespaces, byte for byte. */
static void
assert_same_record(struct namespace *a, struct namespace *b, const char *set, const char *k)
{
	uint32_t sa, sb;
	uint8_t *fa = stored_bytes(a, set, k, &sa), *fb = stored_bytes(b, set, k, &sb);
	struct txn_key tk = key(set, k);
	struct record_attr ta, tb;

	assert_int_equal(sa, sb);
	assert_memory_equal(fa, fb, sa);
	assert_int_equal(txn_stat(a, &tk, &ta), 0);
	assert_int_equal(txn_stat(b, &tk, &tb), 0);
	assert_int_equal(ta.size, tb.size);
	assert_int_equal(ta.mode, tb.mode);
	assert_int_equal(ta.uid, tb.uid);
	assert_int_equal(ta.gid, tb.gid);
	assert_int_equal(ta.mtime_ns, tb.mtime_ns);
	assert_int_equal(ta.generation, tb.generation);
	assert_int_equal(ta.last_update_ms, tb.last_update_ms);
	assert_int_equal(ta.ino, tb.ino);
	free(fa);
	free(fb);
}

static void
copy_over(struct namespace *from, struct namespace *to, const char *set, const char *k)
{
	uint32_t size;
	uint8_t *flat = stored_bytes(from, set, k, &size);

	assert_int_equal(namespace_apply_flat(to, flat, size, false), 1);
	free(flat);
}

/* Records written on one engine, applied as bytes to the other, read back
 * identical there; the set comes with them; both directions. */
static void
test_apply_flat_copies_records_between_engines(void **state)
{
	(void)state;
	struct txn_key tk = key("photos", "a.jpg");
	struct txn_record r;
	uint64_t objects = ns_value(dev, STAT_NS_objects);

	write_full(mem, "photos", "a.jpg", "jpeg bytes", 1700000000123456789LL);
	write_full(mem, NULL, "top", "at the top", 1600000000000000000LL);
	/* Rewritten: generation 2, a later time. */
	put(mem, "photos", "b.png", "first");
	put(mem, "photos", "b.png", "second, longer");

	/* The set does not exist on the device namespace yet. */
	assert_int_equal(txn_read(dev, &tk, &r), -ENOENT);
	copy_over(mem, dev, "photos", "a.jpg");
	copy_over(mem, dev, NULL, "top");
	copy_over(mem, dev, "photos", "b.png");
	assert_same_record(mem, dev, "photos", "a.jpg");
	assert_same_record(mem, dev, NULL, "top");
	assert_same_record(mem, dev, "photos", "b.png");
	assert_int_equal(ns_value(dev, STAT_NS_objects), objects + 3);

	/* The xattrs arrived as bins. */
	assert_int_equal(txn_read(dev, &tk, &r), 0);
	const struct bin *color = record_bin_find(&r.rec, "color", 5);
	assert_non_null(color);
	assert_int_equal(color->v.bytes.len, 4);
	assert_memory_equal(color->v.bytes.data, "blue", 4);
	assert_non_null(record_bin_find(&r.rec, "blob", 4));
	txn_record_release(&r);

	/* And the other way: device to memory. */
	write_full(dev, "docs", "readme", "hello from the device", 1650000000000000000LL);
	copy_over(dev, mem, "docs", "readme");
	assert_same_record(dev, mem, "docs", "readme");

	/* A newer version replaces the copy: bytes are not appended to. */
	put(mem, "photos", "b.png", "third");
	uint64_t used = ns_value(dev, STAT_NS_data_used_bytes);
	uint32_t old_size, new_size;
	uint8_t *old_flat = stored_bytes(dev, "photos", "b.png", &old_size);

	copy_over(mem, dev, "photos", "b.png");
	free(stored_bytes(dev, "photos", "b.png", &new_size));
	assert_same_record(mem, dev, "photos", "b.png");
	assert_int_equal(ns_value(dev, STAT_NS_data_used_bytes), used - old_size + new_size);
	assert_int_equal(ns_value(dev, STAT_NS_objects), objects + 4);  /* docs/readme too */
	free(old_flat);
}

/* An older version, and the same version again (a retried replica write),
 * are refused, counted in apply_not_newer, and change nothing. */
static void
test_apply_flat_refuses_older_versions(void **state)
{
	(void)state;
	uint32_t s1, s2, s3;
	uint8_t *v1, *v2, *v3;

	put(mem, "hist", "rec", "version one");
	v1 = stored_bytes(mem, "hist", "rec", &s1);
	put(mem, "hist", "rec", "version two");
	v2 = stored_bytes(mem, "hist", "rec", &s2);
	put(mem, "hist", "rec", "version three!");
	v3 = stored_bytes(mem, "hist", "rec", &s3);

	struct namespace *targets[2] = { dev, mem };

	for (int t = 0; t < 2; t++) {
		struct namespace *ns = targets[t];

		if (ns == dev)
			assert_int_equal(namespace_apply_flat(ns, v2, s2, true), 1);
		uint64_t used = ns_value(ns, STAT_NS_data_used_bytes);
		uint64_t refused = ns_value(ns, STAT_NS_apply_not_newer);
		uint64_t objects = ns_value(ns, STAT_NS_objects);
		uint8_t *before;
		uint32_t sb;

		before = stored_bytes(ns, "hist", "rec", &sb);
		/* dev holds version two, mem version three. */
		assert_int_equal(namespace_apply_flat(ns, v1, s1, false), 0);
		assert_int_equal(namespace_apply_flat(ns, ns == dev ? v2 : v3,
		    ns == dev ? s2 : s3, false), 0);
		assert_int_equal(ns_value(ns, STAT_NS_apply_not_newer), refused + 2);
		assert_int_equal(ns_value(ns, STAT_NS_data_used_bytes), used);
		assert_int_equal(ns_value(ns, STAT_NS_objects), objects);

		uint32_t sa;
		uint8_t *after = stored_bytes(ns, "hist", "rec", &sa);

		assert_int_equal(sa, sb);
		assert_memory_equal(after, before, sa);
		free(after);
		free(before);
	}
	/* The newer one still goes in. */
	assert_int_equal(namespace_apply_flat(dev, v3, s3, false), 1);
	assert_same_record(mem, dev, "hist", "rec");
	free(v1);
	free(v2);
	free(v3);
}

/* A tombstone newer than the record deletes it; an older record version
 * arriving after the tombstone does not bring it back. */
static void
test_apply_flat_tombstone_deletes(void **state)
{
	(void)state;
	struct txn_key tk = key("gone", "soon");
	struct txn_record rr;
	struct record r;
	uint32_t live_size;
	uint8_t *live;

	put(mem, "gone", "soon", "still here");
	copy_over(mem, dev, "gone", "soon");
	live = stored_bytes(mem, "gone", "soon", &live_size);

	uint64_t objects = ns_value(dev, STAT_NS_objects);
	uint64_t tombs = ns_value(dev, STAT_NS_tombstones);
	struct record_attr at;

	assert_int_equal(txn_stat(dev, &tk, &at), 0);
	record_init(&r);
	digest_compute(&r.digest, "gone", 4, "soon", 4);
	r.generation = (uint16_t)(at.generation + 1);
	r.last_update_ms = at.last_update_ms + 1;
	r.flags = RECORD_F_TOMBSTONE;
	r.key_type = DIGEST_KEY_TYPE_STRING;
	r.set = "gone";
	r.set_len = 4;
	r.key = "soon";
	r.key_len = 4;

	size_t size = record_flat_size(&r);
	uint8_t *flat = malloc(size);

	assert_non_null(flat);
	assert_int_equal(record_flat_encode(&r, flat, size), (long)size);
	assert_int_equal(namespace_apply_flat(dev, flat, (uint32_t)size, false), 1);
	assert_int_equal(txn_read(dev, &tk, &rr), -ENOENT);
	assert_int_equal(ns_value(dev, STAT_NS_objects), objects - 1);
	assert_int_equal(ns_value(dev, STAT_NS_tombstones), tombs + 1);
	/* The live version again (late): refused. */
	assert_int_equal(namespace_apply_flat(dev, live, live_size, false), 0);
	assert_int_equal(txn_read(dev, &tk, &rr), -ENOENT);
	free(flat);
	free(live);
}

/* A hand-made version of ("mig", key): a tombstone, or content in the file bin. */
static uint8_t *
version_flat(const char *k, uint64_t lut, uint16_t gen, bool tomb, const char *content, uint32_t *size)
{
	struct record r;
	size_t n;
	uint8_t *flat;

	record_init(&r);
	digest_compute(&r.digest, "mig", 3, k, strlen(k));
	r.generation = gen;
	r.last_update_ms = lut;
	r.flags = tomb ? RECORD_F_TOMBSTONE : 0;
	r.key_type = DIGEST_KEY_TYPE_STRING;
	r.set = "mig";
	r.set_len = 3;
	r.key = k;
	r.key_len = (uint16_t)strlen(k);
	if (!tomb) {
		r.n_bins = 1;
		strcpy(r.bins[0].name, "data");
		r.bins[0].name_len = 4;
		r.bins[0].type = BIN_BLOB;
		r.bins[0].v.bytes.data = (const uint8_t *)content;
		r.bins[0].v.bytes.len = (uint32_t)strlen(content);
	}
	n = record_flat_size(&r);
	flat = malloc(n);
	assert_non_null(flat);
	assert_int_equal(record_flat_encode(&r, flat, n), (long)n);
	*size = (uint32_t)n;
	return flat;
}

/*
 * The one conflict rule, as migration meets it (a table): a record was
 * written (OLD: generation 1), deleted (TOMB: generation 2), its tombstone
 * reclaimed, and the name created again (NEW: generation 1 again, a later
 * time) while a node holding OLD was away.  Whatever a node holds and
 * whatever arrives, the later last-update time wins, then the higher
 * generation: the away node's OLD never displaces NEW or TOMB, and NEW
 * displaces both although its generation is lower.  Without any copy
 * (the tombstone reclaimed and nothing recreated) an arriving OLD is
 * stored: the tombstone is the only guard, which is why the tomb raider
 * waits while migrations are pending.
 */
static void
test_apply_rule_table_deleted_reclaimed_recreated(void **state)
{
	enum { NONE, OLD, TOMB, NEW };
	static const struct {
		int held, arrives, rc, after;
	} rows[] = {
		{ OLD, NEW, 1, NEW },     /* the away node learns the recreated record */
		{ NEW, OLD, 0, NEW },     /* its old copy does not come back */
		{ OLD, TOMB, 1, TOMB },   /* the delete reaches it */
		{ TOMB, OLD, 0, TOMB },   /* and its old copy stays deleted */
		{ TOMB, NEW, 1, NEW },    /* a later create beats the tombstone (lower generation) */
		{ NEW, TOMB, 0, NEW },    /* an older tombstone does not delete it */
		{ NEW, NEW, 0, NEW },     /* the same version twice: kept once */
		{ NONE, OLD, 1, OLD },    /* nothing held: stored */
	};
	const uint64_t t0 = 1000000;
	const char *content[] = { NULL, "old content", NULL, "recreated" };
	struct namespace *targets[2] = { mem, dev };

	(void)state;
	for (int t = 0; t < 2; t++) {
		for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
			char k[32];
			uint8_t *v[4] = { NULL };
			uint32_t sz[4] = { 0 };
			struct txn_key tk;
			struct txn_record rr;

			snprintf(k, sizeof(k), "rule%zu", i);
			tk = key("mig", k);
			v[OLD] = version_flat(k, t0, 1, false, content[OLD], &sz[OLD]);
			v[TOMB] = version_flat(k, t0 + 100, 2, true, NULL, &sz[TOMB]);
			v[NEW] = version_flat(k, t0 + 200, 1, false, content[NEW], &sz[NEW]);
			if (rows[i].held != NONE)
				assert_int_equal(namespace_apply_flat(targets[t], v[rows[i].held], sz[rows[i].held],
				    false), 1);
			assert_int_equal(namespace_apply_flat(targets[t], v[rows[i].arrives], sz[rows[i].arrives],
			    false), rows[i].rc);
			if (rows[i].after == TOMB) {
				assert_int_equal(txn_read(targets[t], &tk, &rr), -ENOENT);
			} else {
				const struct bin *fb;

				assert_int_equal(txn_read(targets[t], &tk, &rr), 0);
				fb = record_bin_find(&rr.rec, "data", 4);
				assert_non_null(fb);
				assert_int_equal(fb->v.bytes.len, strlen(content[rows[i].after]));
				assert_memory_equal(fb->v.bytes.data, content[rows[i].after], fb->v.bytes.len);
				txn_record_release(&rr);
			}
			for (int j = 0; j < 4; j++)
				free(v[j]);
		}
	}
}

/* Malformed bytes: -EBADMSG, nothing stored, no space taken, no set made. */
static void
test_apply_flat_rejects_malformed_bytes(void **state)
{
	(void)state;
	uint32_t size;
	uint8_t *good;
	struct namespace *targets[2] = { mem, dev };

	put(mem, "src", "good", "a perfectly good record");
	good = stored_bytes(mem, "src", "good", &size);

	/* A record whose digest is not its set and key's, with every check
	 * sealed (the encoder computes them). */
	struct record r;
	uint8_t liar[256];
	long liar_size;

	record_init(&r);
	digest_compute(&r.digest, "src", 3, "other", 5);
	r.generation = 1;
	r.last_update_ms = clock_epoch_ms();
	r.key_type = DIGEST_KEY_TYPE_STRING;
	r.set = "bogus";
	r.set_len = 5;
	r.key = "good";
	r.key_len = 4;
	liar_size = record_flat_encode(&r, liar, sizeof(liar));
	assert_true(liar_size > 0);

	/* A name no client write could make ("a/b" is not a key). */
	uint8_t slash[256];
	long slash_size;

	r.set = "src";
	r.set_len = 3;
	r.key = "a/b";
	r.key_len = 3;
	digest_compute(&r.digest, "src", 3, "a/b", 3);
	slash_size = record_flat_encode(&r, slash, sizeof(slash));
	assert_true(slash_size > 0);

	/* A last-update time past what the index keeps (40 bits). */
	uint8_t future[256];
	long future_size;

	r.key = "later";
	r.key_len = 5;
	digest_compute(&r.digest, "src", 3, "later", 5);
	r.last_update_ms = RECORD_LAST_UPDATE_MAX + 1;
	future_size = record_flat_encode(&r, future, sizeof(future));
	assert_true(future_size > 0);

	for (int t = 0; t < 2; t++) {
		struct namespace *ns = targets[t];
		uint64_t used = ns_value(ns, STAT_NS_data_used_bytes);
		uint64_t objects = ns_value(ns, STAT_NS_objects);
		uint64_t refused = ns_value(ns, STAT_NS_apply_not_newer);
		uint8_t *bad = malloc(size);
		uint16_t set_id;

		assert_non_null(bad);
		/* Random bytes. */
		for (uint32_t i = 0; i < size; i++)
			bad[i] = (uint8_t)(i * 37 + 11);
		assert_int_equal(namespace_apply_flat(ns, bad, size, false), -EBADMSG);
		/* One byte of the content flipped (the CRC no longer holds). */
		memcpy(bad, good, size);
		bad[size / 2] ^= 0x40;
		assert_int_equal(namespace_apply_flat(ns, bad, size, false), -EBADMSG);
		/* Cut short, and longer than the record says. */
		assert_int_equal(namespace_apply_flat(ns, good, size - 16, false), -EBADMSG);
		assert_int_equal(namespace_apply_flat(ns, good, 40, false), -EBADMSG);
		free(bad);
		bad = calloc(1, size + 16);
		assert_non_null(bad);
		memcpy(bad, good, size);
		assert_int_equal(namespace_apply_flat(ns, bad, size + 16, false), -EBADMSG);
		free(bad);
		assert_int_equal(namespace_apply_flat(ns, liar, (uint32_t)liar_size, false), -EBADMSG);
		assert_int_equal(namespace_apply_flat(ns, slash, (uint32_t)slash_size, false),
		    -EBADMSG);
		assert_int_equal(namespace_apply_flat(ns, future, (uint32_t)future_size, false),
		    -EBADMSG);
		/* The storage op alone refuses them too. */
		storage_loc loc = 0;

		assert_int_equal(storage_write_flat(ns->storage, good, size - 16, &loc), -EBADMSG);
		assert_int_equal(loc, 0);

		assert_int_equal(ns_value(ns, STAT_NS_data_used_bytes), used);
		assert_int_equal(ns_value(ns, STAT_NS_objects), objects);
		assert_int_equal(ns_value(ns, STAT_NS_apply_not_newer), refused);
		assert_int_equal(set_lookup(&ns->sets, "bogus", 5, &set_id), -ENOENT);
	}
	free(good);
}

/*
 * storage_write_encoded (what namespace_apply_flat and a master's
 * replicated write store through, with no second decode and CRC pass):
 * the bytes are stored as they are, on both engines, and read back
 * verified; only the size is judged.
 */
static void
test_storage_write_encoded_stores_bytes_as_they_are(void **state)
{
	(void)state;
	uint32_t size;
	uint8_t *flat;

	put(mem, "enc", "big", "content stored once, as encoded");
	flat = stored_bytes(mem, "enc", "big", &size);
	for (int t = 0; t < 2; t++) {
		struct namespace *ns = t == 0 ? mem : dev;
		storage_loc loc = 0;
		uint8_t *back = malloc(size);

		assert_non_null(back);
		assert_int_equal(storage_write_encoded(ns->storage, flat, size, &loc), 0);
		assert_int_equal(storage_loc_size(loc), size);
		assert_int_equal(storage_read(ns->storage, loc, back), 0);
		assert_memory_equal(back, flat, size);
		storage_free(ns->storage, loc);
		/* shorter than any record, or past the largest the engine takes */
		loc = 0;
		assert_int_equal(storage_write_encoded(ns->storage, flat, 16, &loc), -EBADMSG);
		assert_int_equal(storage_write_encoded(ns->storage, flat,
		    storage_max_record_size(&ns->cfg->storage) + RBLOCK_SIZE, &loc), -EFBIG);
		assert_int_equal(loc, 0);
		free(back);
	}
	free(flat);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_apply_flat_copies_records_between_engines),
		cmocka_unit_test(test_apply_flat_refuses_older_versions),
		cmocka_unit_test(test_apply_flat_tombstone_deletes),
		cmocka_unit_test(test_apply_rule_table_deleted_reclaimed_recreated),
		cmocka_unit_test(test_apply_flat_rejects_malformed_bytes),
		cmocka_unit_test(test_storage_write_encoded_stores_bytes_as_they_are),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
