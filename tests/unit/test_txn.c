/*
 * test_txn.c - the transaction layer on a memory namespace: what a caller
 * of txn.h sees for writes, reads, deletes, renames, bins, sets, listings
 * and the errors of recfsd(8).
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

#include "base/atomic.h"
#include "base/clock.h"
#include "txn/txn.h"
#include "txn/txn_i.h"   /* the routing test hook, the set table */

static struct recfs_config cfg;
static struct node *node;
static struct namespace *ns;

static int
setup(void **state)
{
	memset(&cfg, 0, sizeof(cfg));
	cfg.n_namespaces = 1;
	struct ns_config *n = &cfg.ns[0];
	strcpy(n->name, "test");
	strcpy(n->file_bin, "data");
	n->replication_factor = 1;
	n->stop_writes_used_pct = 70;
	n->stop_writes_avail_pct = 5;
	n->storage.type = STORAGE_MEMORY;
	n->storage.data_size = 16u << 20;
	n->storage.write_block_size = 128 * 1024;
	n->storage.defrag_lwm_pct = 50;
	if (node_open(&node, &cfg) != 0)
		return -1;
	ns = node_namespace_find(node, "test", 4);
	return ns == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	node_close(node, true);
	return 0;
}

static struct txn_key
key(const char *set, const char *k)
{
	return (struct txn_key){ set, set ? strlen(set) : 0, k, strlen(k) };
}

static int
put(const char *set, const char *k, const char *content, unsigned flags)
{
	struct txn_key tk = key(set, k);
	struct txn_write w = { .flags = flags, .set_file = true, .file_data = content,
	    .file_len = strlen(content) };

	return txn_write(ns, &tk, &w, NULL);
}

static void
assert_content(const char *set, const char *k, const char *expect)
{
	struct txn_key tk = key(set, k);
	struct txn_record r;

	assert_int_equal(txn_read(ns, &tk, &r), 0);
	assert_non_null(r.file_bin);
	assert_int_equal(r.file_bin->v.bytes.len, strlen(expect));
	assert_memory_equal(r.file_bin->v.bytes.data, expect, strlen(expect));
	txn_record_release(&r);
}

static void
test_txn_write_read_and_generations(void **state)
{
	struct txn_key k = key(NULL, "hello");
	struct record_attr a;

	assert_int_equal(put(NULL, "hello", "one", TXN_CREATE_ONLY), 0);
	assert_content(NULL, "hello", "one");
	assert_int_equal(txn_stat(ns, &k, &a), 0);
	assert_int_equal(a.size, 3);
	assert_int_equal(a.generation, 1);
	assert_int_equal(put(NULL, "hello", "second", 0), 0);
	assert_int_equal(txn_stat(ns, &k, &a), 0);
	assert_int_equal(a.generation, 2);
	assert_int_equal(a.size, 6);
	assert_content(NULL, "hello", "second");
	assert_int_equal(put(NULL, "hello", "x", TXN_CREATE_ONLY), -EEXIST);
	assert_int_equal(put(NULL, "nope", "x", TXN_UPDATE_ONLY), -ENOENT);
	assert_int_equal(txn_delete(ns, &k), 0);
	assert_int_equal(txn_stat(ns, &k, &a), -ENOENT);
	assert_int_equal(txn_delete(ns, &k), -ENOENT);
}

static void
test_txn_names_are_checked(void **state)
{
	char long_key[300];

	memset(long_key, 'k', 256);
	long_key[256] = '\0';
	assert_int_equal(put(NULL, long_key, "x", 0), -ENAMETOOLONG);
	assert_int_equal(put(NULL, "..", "x", 0), -EINVAL);
	char long_set[80];
	memset(long_set, 's', 64);
	long_set[64] = '\0';
	assert_int_equal(txn_set_create(ns, long_set, 64, NULL), -ENAMETOOLONG);
	assert_int_equal(txn_set_create(ns, ".", 1, NULL), -EINVAL);
}

static void
test_txn_bins_metadata_and_size_survive_rewrites(void **state)
{
	struct txn_key k = key(NULL, "meta");
	struct txn_bin_op op = { .name = "color", .name_len = 5, .type = BIN_BLOB,
	    .data = "blue", .len = 4 };
	struct txn_write w = { .set_mode = true, .mode = 0600, .set_uid = true, .uid = 42,
	    .set_gid = true, .gid = 7, .set_mtime = true, .mtime_ns = 1262304000123456789LL,
	    .bins = &op, .n_bins = 1 };
	struct record_attr a;
	struct txn_record r;

	assert_int_equal(put(NULL, "meta", "content", 0), 0);
	assert_int_equal(txn_write(ns, &k, &w, &a), 0);
	assert_int_equal(a.mode, 0600);
	assert_int_equal(a.uid, 42);
	assert_int_equal(a.mtime_ns, 1262304000123456789LL);
	/* XATTR_CREATE on an existing bin; XATTR_REPLACE / remove of a missing one. */
	struct txn_bin_op create = op;
	create.flags = TXN_BIN_CREATE;
	struct txn_write w2 = { .bins = &create, .n_bins = 1 };
	assert_int_equal(txn_write(ns, &k, &w2, NULL), -EEXIST);
	struct txn_bin_op rm = { .name = "nope", .name_len = 4, .flags = TXN_BIN_REMOVE };
	struct txn_write w3 = { .bins = &rm, .n_bins = 1 };
	assert_int_equal(txn_write(ns, &k, &w3, NULL), -ENODATA);
	struct txn_bin_op longname = { .name = "abcdefghijklmnop", .name_len = 16, .type = BIN_BLOB };
	struct txn_write w4 = { .bins = &longname, .n_bins = 1 };
	assert_int_equal(txn_write(ns, &k, &w4, NULL), -ENAMETOOLONG);
	/* A content rewrite keeps bins, owner and mode, and moves mtime. */
	assert_int_equal(put(NULL, "meta", "new content", 0), 0);
	assert_int_equal(txn_stat(ns, &k, &a), 0);
	assert_int_equal(a.mode, 0600);
	assert_int_equal(a.uid, 42);
	assert_int_equal(a.gid, 7);
	assert_true(a.mtime_ns > 1262304000123456789LL);
	assert_int_equal(txn_read(ns, &k, &r), 0);
	assert_int_equal(r.rec.n_bins, 2);
	txn_record_release(&r);
	/* Truncate without content: grows with zeros, shrinks. */
	struct txn_write t = { .set_size = true, .size = 20 };
	assert_int_equal(txn_write(ns, &k, &t, &a), 0);
	assert_int_equal(a.size, 20);
	assert_int_equal(txn_read(ns, &k, &r), 0);
	assert_memory_equal(r.file_bin->v.bytes.data, "new content\0\0\0\0\0\0\0\0\0", 20);
	txn_record_release(&r);
	t.size = 3;
	assert_int_equal(txn_write(ns, &k, &t, &a), 0);
	assert_content(NULL, "meta", "new");
	assert_int_equal(txn_delete(ns, &k), 0);
}

static void
test_txn_record_over_max_size_is_efbig_and_keeps_old(void **state)
{
	struct txn_key k = key(NULL, "big");
	size_t n = 200 * 1024;
	char *big = calloc(1, n);
	struct txn_write w = { .set_file = true, .file_data = big, .file_len = n };

	assert_int_equal(put(NULL, "big", "small", 0), 0);
	assert_int_equal(txn_write(ns, &k, &w, NULL), -EFBIG);
	assert_content(NULL, "big", "small");
	struct txn_write t = { .set_size = true, .size = n };
	assert_int_equal(txn_write(ns, &k, &t, NULL), -EFBIG);
	assert_content(NULL, "big", "small");
	free(big);
	assert_int_equal(txn_delete(ns, &k), 0);
}

static void
test_txn_rename_moves_and_respects_noreplace(void **state)
{
	struct txn_key a = key(NULL, "ra"), b = key(NULL, "rb");
	struct record_attr at;

	assert_int_equal(txn_set_create(ns, "rs", 2, NULL), 0);
	assert_int_equal(put(NULL, "ra", "A", 0), 0);
	assert_int_equal(put(NULL, "rb", "B", 0), 0);
	assert_int_equal(txn_rename(ns, &a, &b, TXN_RENAME_NOREPLACE), -EEXIST);
	assert_int_equal(txn_rename(ns, &a, &b, 0), 0);
	assert_int_equal(txn_stat(ns, &a, &at), -ENOENT);
	assert_content(NULL, "rb", "A");
	struct txn_key c = key("rs", "rc");
	assert_int_equal(txn_rename(ns, &b, &c, 0), 0);
	assert_content("rs", "rc", "A");
	assert_int_equal(txn_rename(ns, &a, &b, 0), -ENOENT);
	assert_int_equal(txn_delete(ns, &c), 0);
	assert_int_equal(txn_set_remove(ns, "rs", 2), 0);
}

static void
test_txn_sets_persist_empty_and_refuse_rmdir_when_full(void **state)
{
	struct txn_set_info info;
	struct record_attr a;

	assert_int_equal(txn_set_exists(ns, "fruit", 5), -ENOENT);
	assert_int_equal(txn_set_create(ns, "fruit", 5, NULL), 0);
	assert_int_equal(txn_set_create(ns, "fruit", 5, NULL), -EEXIST);
	assert_int_equal(txn_set_exists(ns, "fruit", 5), 0);
	assert_int_equal(txn_set_info(ns, "fruit", 5, &info), 0);
	assert_int_equal(info.objects, 0);
	assert_int_equal(put("fruit", "apple", "red", 0), 0);
	assert_int_equal(txn_set_info(ns, "fruit", 5, &info), 0);
	assert_int_equal(info.objects, 1);
	assert_int_equal(txn_set_remove(ns, "fruit", 5), -ENOTEMPTY);
	/* The same name cannot be both a set and a null-set record. */
	assert_int_equal(put(NULL, "fruit", "x", 0), -EEXIST);
	assert_int_equal(put(NULL, "plain", "x", 0), 0);
	assert_int_equal(txn_set_create(ns, "plain", 5, NULL), -EEXIST);
	struct txn_key apple = key("fruit", "apple"), plain = key(NULL, "plain");
	assert_int_equal(txn_delete(ns, &apple), 0);
	assert_int_equal(txn_delete(ns, &plain), 0);
	/* Empty again: still there until removed. */
	assert_int_equal(txn_set_exists(ns, "fruit", 5), 0);
	assert_int_equal(txn_stat(ns, &apple, &a), -ENOENT);
	assert_int_equal(txn_set_remove(ns, "fruit", 5), 0);
	assert_int_equal(txn_set_exists(ns, "fruit", 5), -ENOENT);
	assert_int_equal(txn_set_remove(ns, "fruit", 5), -ENOENT);
}

/* A set is a directory: mkdir's mode, owner and mtime are kept, chmod,
 * chown and utimens are stored, and its mtime and ctime move when records
 * appear in it or leave it, not when one is rewritten. */
static void
test_txn_set_keeps_mode_owner_and_times(void **state)
{
	struct txn_write mk = { .set_mode = true, .mode = 0750, .set_uid = true, .uid = 7,
	    .set_gid = true, .gid = 8, .set_mtime = true, .mtime_ns = 1000000000123LL };
	struct record_attr s, s2, r;
	struct txn_key f = key("dir", "f"), g = key("dir", "g"), out = key(NULL, "out");
	struct txn_write w = { .set_file = true, .file_data = "x", .file_len = 1 };

	assert_int_equal(txn_set_stat(ns, "dir", 3, &s), -ENOENT);
	assert_int_equal(txn_set_create(ns, "dir", 3, &mk), 0);
	assert_int_equal(txn_set_stat(ns, "dir", 3, &s), 0);
	assert_true(s.has_meta);
	assert_int_equal(s.mode, 0750);
	assert_int_equal(s.uid, 7);
	assert_int_equal(s.gid, 8);
	assert_int_equal(s.mtime_ns, 1000000000123LL);
	assert_true(s.last_update_ms > 0);

	/* A create moves both times to the record's last-update time. */
	assert_int_equal(txn_write(ns, &f, &w, &r), 0);
	assert_int_equal(txn_set_stat(ns, "dir", 3, &s2), 0);
	assert_int_equal(s2.last_update_ms, r.last_update_ms);
	assert_int_equal(s2.mtime_ns, clock_epoch_ms_to_unix_ns(r.last_update_ms));
	assert_true(s2.last_update_ms >= s.last_update_ms);
	assert_int_equal(s2.mode, 0750);
	/* A rewrite does not. */
	assert_int_equal(txn_write(ns, &f, &w, &r), 0);
	assert_int_equal(txn_set_stat(ns, "dir", 3, &s), 0);
	assert_int_equal(s.last_update_ms, s2.last_update_ms);
	assert_int_equal(s.mtime_ns, s2.mtime_ns);
	/* Rename in, rename out, delete: each moves them (to the change's
	 * last-update time: milliseconds, so maybe to the same value). */
	assert_int_equal(txn_rename(ns, &f, &g, 0), 0);
	assert_int_equal(txn_set_stat(ns, "dir", 3, &s2), 0);
	assert_true(s2.last_update_ms >= s.last_update_ms);
	assert_int_equal(txn_rename(ns, &g, &out, 0), 0);
	assert_int_equal(txn_set_stat(ns, "dir", 3, &s), 0);
	assert_true(s.last_update_ms >= s2.last_update_ms);
	assert_int_equal(txn_write(ns, &f, &w, NULL), 0);
	assert_int_equal(txn_set_stat(ns, "dir", 3, &s2), 0);
	assert_int_equal(txn_delete(ns, &f), 0);
	assert_int_equal(txn_set_stat(ns, "dir", 3, &s), 0);
	assert_true(s.last_update_ms >= s2.last_update_ms);
	assert_true(s.mtime_ns >= s2.mtime_ns);

	/* chmod: the mode is stored, the ctime moves, the mtime stays. */
	assert_int_equal(txn_set_update(ns, "dir", 3, &(struct txn_write){ .set_mode = true,
	    .mode = 0700 }, &s2), 0);
	assert_int_equal(s2.mode, 0700);
	assert_int_equal(s2.uid, 7);
	assert_int_equal(s2.mtime_ns, s.mtime_ns);
	assert_true(s2.last_update_ms >= s.last_update_ms);
	/* utimens to the past is kept as given. */
	assert_int_equal(txn_set_update(ns, "dir", 3, &(struct txn_write){ .set_mtime = true,
	    .mtime_ns = -5 }, &s), 0);
	assert_int_equal(s.mtime_ns, -5);
	assert_int_equal(s.mode, 0700);
	/* Only mode, owner and times belong to a set. */
	assert_int_equal(txn_set_update(ns, "dir", 3, &(struct txn_write){ .set_size = true },
	    NULL), -EINVAL);
	assert_int_equal(txn_set_update(ns, "nope", 4, &(struct txn_write){ .set_mode = true },
	    NULL), -ENOENT);
	/* A set made by writes alone has no metadata until it gets some. */
	struct txn_key h = key("implicit", "h");
	assert_int_equal(txn_write(ns, &h, &w, &r), 0);
	assert_int_equal(txn_set_stat(ns, "implicit", 8, &s), 0);
	assert_false(s.has_meta);
	assert_int_equal(s.last_update_ms, r.last_update_ms);
	assert_int_equal(txn_set_update(ns, "implicit", 8, &(struct txn_write){ .set_uid = true,
	    .uid = 42 }, &s), 0);
	assert_true(s.has_meta);
	assert_int_equal(s.uid, 42);
	assert_int_equal(s.mode, 0755);
	/* ...and then keeps it while empty (its marker). */
	assert_int_equal(txn_delete(ns, &h), 0);
	assert_int_equal(txn_set_exists(ns, "implicit", 8), 0);
}

/* st_ino is kept with the record: the same after renames, another one for
 * a new record at a renamed record's old name, back to the digest's when
 * it comes home.  An explicit atime is kept; reads leave it. */
static void
test_txn_inode_number_follows_renames_and_atime_is_kept(void **state)
{
	struct txn_key a = key("in", "a"), b = key("in", "b"), c = key(NULL, "c");
	struct txn_write meta = { .set_file = true, .file_data = "x", .file_len = 1,
	    .set_mode = true, .mode = 0600 };
	struct txn_write plain = { .set_file = true, .file_data = "y", .file_len = 1 };
	struct record_attr ra, rb, rc2, rn;
	struct txn_record rec;

	assert_int_equal(txn_write(ns, &a, &meta, &ra), 0);
	assert_int_equal(ra.ino, digest_inode(&ra.digest));
	assert_int_equal(ra.atime_ns, 0);
	assert_int_equal(txn_rename(ns, &a, &b, 0), 0);
	assert_int_equal(txn_stat(ns, &b, &rb), 0);
	assert_int_equal(rb.ino, ra.ino);
	assert_true(rb.ino != digest_inode(&rb.digest));
	/* A new record at the old name: the digest's number is taken. */
	assert_int_equal(txn_write(ns, &a, &plain, &rn), 0);
	assert_true(rn.ino != ra.ino);
	assert_true(rn.ino > 1);
	/* It stays its own across rewrites (kept in its metadata). */
	assert_int_equal(txn_write(ns, &a, &plain, &rn), 0);
	assert_true(rn.ino != ra.ino);
	assert_int_equal(txn_stat(ns, &a, &rc2), 0);
	assert_int_equal(rc2.ino, rn.ino);
	/* Listings show the kept number. */
	struct txn_cursor cur;
	struct txn_entry ents[8];
	int n;
	txn_cursor_init(&cur);
	n = txn_list(ns, "in", 2, &cur, ents, 8);
	assert_int_equal(n, 2);
	for (int i = 0; i < n; i++)
		assert_int_equal(ents[i].attr.ino, strcmp(ents[i].key, "b") == 0 ? ra.ino : rn.ino);
	/* Into the null set, then over an existing record. */
	assert_int_equal(txn_rename(ns, &b, &c, 0), 0);
	assert_int_equal(txn_stat(ns, &c, &rc2), 0);
	assert_int_equal(rc2.ino, ra.ino);
	assert_int_equal(txn_delete(ns, &a), 0);
	assert_int_equal(txn_rename(ns, &c, &a, 0), 0);
	assert_int_equal(txn_stat(ns, &a, &rc2), 0);
	assert_int_equal(rc2.ino, ra.ino);  /* home again: the digest's own */
	assert_int_equal(rc2.ino, digest_inode(&rc2.digest));
	/* A record written without metadata keeps its number through a rename too. */
	struct txn_key p = key("in", "p"), q = key("in", "q");
	struct record_attr rp, rq;
	assert_int_equal(txn_write(ns, &p, &plain, &rp), 0);
	assert_false(rp.has_meta);
	assert_int_equal(txn_rename(ns, &p, &q, 0), 0);
	assert_int_equal(txn_stat(ns, &q, &rq), 0);
	assert_int_equal(rq.ino, rp.ino);
	assert_int_equal(rq.mtime_ns, rp.mtime_ns);

	/* atime: stored when set, kept by rewrites and renames, read leaves it. */
	assert_int_equal(txn_write(ns, &q, &(struct txn_write){ .set_atime = true,
	    .atime_ns = 1000000000000000000LL }, &rq), 0);
	assert_int_equal(rq.atime_ns, 1000000000000000000LL);
	assert_int_equal(rq.mtime_ns, rp.mtime_ns);
	assert_int_equal(txn_read(ns, &q, &rec), 0);
	txn_record_release(&rec);
	assert_int_equal(txn_write(ns, &q, &plain, NULL), 0);
	assert_int_equal(txn_rename(ns, &q, &p, 0), 0);
	assert_int_equal(txn_stat(ns, &p, &rp), 0);
	assert_int_equal(rp.atime_ns, 1000000000000000000LL);
	assert_int_equal(rp.ino, rq.ino);
}

#define LIST_N 3000

static void
test_txn_list_survives_concurrent_changes(void **state)
{
	static char seen[LIST_N];
	struct txn_cursor cur;
	struct txn_entry batch[7];
	char k[32];
	int n, total = 0, created = 0;

	memset(seen, 0, sizeof(seen));
	assert_int_equal(txn_set_create(ns, "many", 4, NULL), 0);
	for (int i = 0; i < LIST_N; i++) {
		snprintf(k, sizeof(k), "r%05d", i);
		assert_int_equal(put("many", k, "v", 0), 0);
	}
	txn_cursor_init(&cur);
	/* Delete odd records and create new ones while listing in small batches. */
	int step = 0;
	while ((n = txn_list(ns, "many", 4, &cur, batch, 7)) > 0) {
		for (int j = 0; j < n; j++) {
			int id;
			if (sscanf(batch[j].key, "r%05d", &id) == 1) {
				assert_int_equal(seen[id], 0);   /* never repeated */
				seen[id] = 1;
			}
			total++;
		}
		if (step < LIST_N / 2) {
			int victim = 2 * step + 1;
			struct txn_key vk;
			snprintf(k, sizeof(k), "r%05d", victim);
			vk = key("many", k);
			assert_int_equal(txn_delete(ns, &vk), 0);
			snprintf(k, sizeof(k), "new%05d", step);
			assert_int_equal(put("many", k, "n", 0), 0);
			created++;
			step++;
		}
	}
	assert_int_equal(n, 0);
	/* Every record that existed throughout (the even ones) was listed. */
	for (int i = 0; i < LIST_N; i += 2)
		assert_int_equal(seen[i], 1);
	assert_true(total >= LIST_N / 2);
	struct txn_set_info info;
	assert_int_equal(txn_set_info(ns, "many", 4, &info), 0);
	assert_int_equal(info.objects, LIST_N - step + created);
}

static void
stat_collect(void *arg, const char *name, const char *value)
{
	char *buf = arg;

	if (strlen(buf) + strlen(name) + strlen(value) + 3 < 8192) {
		strcat(buf, name);
		strcat(buf, "=");
		strcat(buf, value);
		strcat(buf, "\n");
	}
}

static long
stat_get(const char *text, const char *name)
{
	char pat[80];
	const char *p;

	snprintf(pat, sizeof(pat), "\n%s=", name);
	p = strstr(text, pat);
	return p == NULL ? -1 : atol(p + strlen(pat));
}

static void
test_txn_counters_move(void **state)
{
	static char before[8192], after[8192];
	struct txn_key k = key(NULL, "counted");
	struct txn_record r;

	before[0] = '\n';
	before[1] = '\0';
	txn_namespace_stats(ns, stat_collect, before);
	assert_int_equal(put(NULL, "counted", "abc", 0), 0);
	assert_int_equal(txn_read(ns, &k, &r), 0);
	txn_record_release(&r);
	assert_int_equal(txn_delete(ns, &k), 0);
	after[0] = '\n';
	after[1] = '\0';
	txn_namespace_stats(ns, stat_collect, after);
	assert_int_equal(stat_get(after, "client_write_success") - stat_get(before, "client_write_success"), 1);
	assert_int_equal(stat_get(after, "client_read_success") - stat_get(before, "client_read_success"), 1);
	assert_int_equal(stat_get(after, "client_delete_success") - stat_get(before, "client_delete_success"), 1);
	assert_true(stat_get(after, "data_total_bytes") > 0);
	assert_true(stat_get(after, "objects") >= 0);
}

/* Every row of the NODE and NAMESPACE sections gets a value (a row the
 * engine forgets would keep the poison). */
static void
test_txn_statistics_fill_every_row(void **state)
{
	uint64_t nsv[STAT_NS_COUNT], nodev[STAT_NODE_COUNT];

	memset(nsv, 0xff, sizeof(nsv));
	memset(nodev, 0xff, sizeof(nodev));
	txn_namespace_values(ns, nsv);
	txn_node_values(node, nodev);
	for (int i = 0; i < STAT_NS_COUNT; i++)
		assert_true(nsv[i] != UINT64_MAX);
	for (int i = 0; i < STAT_NODE_COUNT; i++)
		assert_true(nodev[i] != UINT64_MAX);
	assert_int_equal(nodev[STAT_NODE_namespaces], 1);
	assert_int_equal(nodev[STAT_NODE_objects], nsv[STAT_NS_objects]);
}

/* The outcome counters a mount can hardly reach (the kernel answers a
 * missing name or an O_EXCL create of an existing one itself). */
static void
test_txn_not_found_and_exists_counters_move(void **state)
{
	uint64_t a[STAT_NS_COUNT], b[STAT_NS_COUNT];
	struct txn_key k = key(NULL, "nf-counted"), none = key(NULL, "never-written");
	struct txn_record r;
	struct record_attr at;

	txn_namespace_values(ns, a);
	assert_int_equal(txn_read(ns, &none, &r), -ENOENT);
	assert_int_equal(txn_delete(ns, &none), -ENOENT);
	assert_int_equal(txn_stat(ns, &none, &at), -ENOENT);
	assert_int_equal(put(NULL, "nf-counted", "x", TXN_CREATE_ONLY), 0);
	assert_int_equal(put(NULL, "nf-counted", "y", TXN_CREATE_ONLY), -EEXIST);
	assert_int_equal(txn_delete(ns, &k), 0);
	txn_namespace_values(ns, b);
	assert_int_equal(b[STAT_NS_client_read_not_found] - a[STAT_NS_client_read_not_found], 1);
	assert_int_equal(b[STAT_NS_client_delete_not_found] - a[STAT_NS_client_delete_not_found], 1);
	assert_int_equal(b[STAT_NS_client_lookup_not_found] - a[STAT_NS_client_lookup_not_found], 1);
	assert_int_equal(b[STAT_NS_fail_key_exists] - a[STAT_NS_fail_key_exists], 1);
	assert_int_equal(b[STAT_NS_client_write_success] - a[STAT_NS_client_write_success], 1);
}

/* Each transaction lands in its operation's latency histogram. */
static void
test_txn_latencies_count_each_operation(void **state)
{
	struct histogram_snapshot a[STAT_LAT_NS_COUNT], b[STAT_LAT_NS_COUNT];
	struct txn_key k = key(NULL, "timed"), k2 = key(NULL, "timed2");
	struct txn_entry e[8];
	struct txn_cursor cur;
	struct txn_record r;
	struct record_attr at;

	txn_namespace_latencies(ns, a);
	assert_int_equal(put(NULL, "timed", "abc", 0), 0);
	assert_int_equal(txn_read(ns, &k, &r), 0);
	txn_record_release(&r);
	assert_int_equal(txn_stat(ns, &k, &at), 0);
	assert_int_equal(txn_rename(ns, &k, &k2, 0), 0);
	txn_cursor_init(&cur);
	assert_true(txn_list(ns, "", 0, &cur, e, 8) >= 1);
	assert_int_equal(txn_delete(ns, &k2), 0);
	txn_namespace_latencies(ns, b);
	for (int i = 0; i < STAT_LAT_NS_COUNT; i++)
		assert_true(b[i].count > a[i].count);
	assert_int_equal(b[STAT_LAT_NS_write].count - a[STAT_LAT_NS_write].count, 1);
	assert_int_equal(b[STAT_LAT_NS_delete].count - a[STAT_LAT_NS_delete].count, 1);
	assert_true(b[STAT_LAT_NS_read].sum_ns > a[STAT_LAT_NS_read].sum_ns);
}

/* node_config_set: a dynamic value changes at once, a bad one and a static
 * parameter change nothing. */
static void
test_txn_config_set_validates_and_applies(void **state)
{
	char err[256], v[64];

	/* The node's threads read these live (relaxed atomics, as
	 * config_set_text writes them): a plain store here would race. */
	atomic_store_relaxed(&cfg.ns[0].storage.max_write_cache, 64u << 20); /* cross-field rules hold */
	atomic_store_relaxed(&cfg.ns[0].nsup_period, 120);
	assert_int_equal(node_config_set(node, 0, CONFIG_STORAGE, "defrag-lwm-pct", "30\n", err,
	    sizeof(err)), 0);
	assert_int_equal(cfg.ns[0].storage.defrag_lwm_pct, 30);
	assert_int_equal(node_config_set(node, 0, CONFIG_STORAGE, "defrag-lwm-pct", "101", err,
	    sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "defrag-lwm-pct"));
	assert_int_equal(cfg.ns[0].storage.defrag_lwm_pct, 30);
	assert_int_equal(node_config_set(node, 0, CONFIG_STORAGE, "write-block-size", "256K", err,
	    sizeof(err)), -EACCES);
	assert_int_equal(node_config_set(node, 3, CONFIG_STORAGE, "defrag-lwm-pct", "10", err,
	    sizeof(err)), -ENOENT);
	assert_int_equal(node_config_set(node, -1, CONFIG_SERVICE, "ticker-interval", "0", err,
	    sizeof(err)), 0);
	assert_int_equal(config_get_text(&cfg, -1, CONFIG_SERVICE, "ticker-interval", v, sizeof(v)), 0);
	assert_string_equal(v, "0");
	assert_int_equal(node_config_set(node, 0, CONFIG_NAMESPACE, "default-ttl", "100", err,
	    sizeof(err)), 0);
	assert_int_equal(cfg.ns[0].default_ttl, 100);
	assert_int_equal(node_config_set(node, 0, CONFIG_NAMESPACE, "default-ttl", "0", err,
	    sizeof(err)), 0);
	assert_int_equal(node_config_set(node, 0, CONFIG_STORAGE, "defrag-lwm-pct", "50", err,
	    sizeof(err)), 0);
}

/* ---- routing: resolve first, route, then run ---- */

static struct txn_target routed[4];
static unsigned n_routed;
static const char *refuse_set;   /* refuse only targets in this set; NULL: all */

static enum txn_route
route_refuse(const struct txn_target *t)
{
	if (n_routed < 4)
		routed[n_routed] = *t;
	n_routed++;
	if (refuse_set != NULL &&
	    (t->k.set_len != strlen(refuse_set) || memcmp(t->k.set, refuse_set, t->k.set_len) != 0))
		return TXN_ROUTE_LOCAL;
	return TXN_ROUTE_UNAVAILABLE;
}

/* The set table has never heard of set: nothing was created for it. */
static void
assert_no_set(const char *set)
{
	uint16_t id;

	assert_int_equal(txn_set_exists(ns, set, strlen(set)), -ENOENT);
	assert_int_equal(set_lookup(&ns->sets, set, strlen(set), &id), -ENOENT);
}

static long
ns_stat(const char *name)
{
	static char text[8192];

	text[0] = '\n';
	text[1] = '\0';
	txn_namespace_stats(ns, stat_collect, text);
	return stat_get(text, name);
}

static void
test_txn_refused_operations_leave_no_set_and_no_record(void **state)
{
	char long_key[300];
	struct txn_key k = key("r_fresh", "k"), kk = key("r_keep", "k");
	struct txn_key to = key("r_new", "k2"), kn = key(NULL, "r_null");
	struct record_attr a;
	struct txn_record rec;
	struct digest d;
	long errors;

	/* A bad key is refused before the set is looked at. */
	memset(long_key, 'k', 256);
	long_key[256] = '\0';
	assert_int_equal(put("r_fresh", long_key, "x", 0), -ENAMETOOLONG);
	assert_int_equal(put("r_fresh", "..", "x", 0), -EINVAL);
	assert_no_set("r_fresh");

	assert_int_equal(put("r_keep", "k", "kept", 0), 0);
	assert_int_equal(put(NULL, "r_null", "kept", 0), 0);
	errors = ns_stat("client_write_error");

	/* No route: every operation fails with EIO and changes nothing. */
	n_routed = 0;
	refuse_set = NULL;
	atomic_store_relaxed(&txn_route_test_hook, route_refuse);
	assert_int_equal(put("r_fresh", "k", "x", 0), -EIO);
	/* The route was asked with the record's digest and partition. */
	assert_int_equal(n_routed, 1);
	digest_compute(&d, "r_fresh", 7, "k", 1);
	assert_memory_equal(&routed[0].digest, &d, sizeof(d));
	assert_int_equal(routed[0].partition, digest_partition(&d));
	assert_int_equal(routed[0].k.key_len, 1);
	assert_ptr_equal(routed[0].ns, ns);
	assert_int_equal(ns_stat("client_write_error"), errors + 1);
	assert_int_equal(txn_stat(ns, &kk, &a), -EIO);
	assert_int_equal(txn_read(ns, &kk, &rec), -EIO);
	txn_record_release(&rec);
	assert_int_equal(txn_delete(ns, &kk), -EIO);
	assert_int_equal(txn_sync(ns, &kk), -EIO);
	assert_int_equal(txn_rename(ns, &kk, &to, 0), -EIO);
	assert_int_equal(txn_set_create(ns, "r_dir", 5, NULL), -EIO);
	assert_int_equal(txn_set_remove(ns, "r_keep", 6), -EIO);
	struct txn_write chmod = { .set_mode = true, .mode = 0700 };
	assert_int_equal(txn_set_update(ns, "r_keep", 6, &chmod, NULL), -EIO);
	/* nsup's reclaim of a record it may not delete here: skipped, not an error. */
	struct txn_key kt = key(NULL, "r_ttl");
	struct txn_write tw = { .set_file = true, .file_data = "t", .file_len = 1, .set_ttl = true,
	    .ttl = 100 };
	atomic_store_relaxed(&txn_route_test_hook, NULL);
	assert_int_equal(txn_write(ns, &kt, &tw, &a), 0);
	atomic_store_relaxed(&txn_route_test_hook, route_refuse);
	assert_int_equal(txn_reclaim(ns, 0, &a.digest, a.void_time + 1, 0), 0);
	/* A rename is refused when either name has no route. */
	refuse_set = "r_new";
	assert_int_equal(txn_rename(ns, &kn, &to, 0), -EIO);
	atomic_store_relaxed(&txn_route_test_hook, NULL);
	assert_int_equal(txn_stat(ns, &kt, &a), 0);
	assert_int_equal(txn_reclaim(ns, 0, &a.digest, a.void_time + 1, 0), 1);
	assert_int_equal(txn_stat(ns, &kt, &a), -ENOENT);
	assert_int_equal(txn_set_stat(ns, "r_keep", 6, &a), 0);
	assert_false(a.has_meta);

	assert_no_set("r_fresh");
	assert_no_set("r_new");
	assert_no_set("r_dir");
	assert_int_equal(txn_stat(ns, &k, &a), -ENOENT);
	assert_content("r_keep", "k", "kept");
	assert_content(NULL, "r_null", "kept");
	assert_int_equal(txn_stat(ns, &to, &a), -ENOENT);

	/* Stop-writes refuses a write before its set is created. */
	static char big[64 * 1024];
	struct txn_write bw = { .set_file = true, .file_data = big, .file_len = sizeof(big) };
	struct txn_key bk = key("r_keep", "big");
	atomic_store_relaxed(&cfg.ns[0].stop_writes_used_pct, 1);
	for (int i = 0; i < 4; i++)
		(void)txn_write(ns, &bk, &bw, NULL);   /* rewrites fill wblocks too */
	assert_int_equal(put("r_fresh", "k", "x", 0), -ENOSPC);
	assert_no_set("r_fresh");
	atomic_store_relaxed(&cfg.ns[0].stop_writes_used_pct, 70);
	assert_false(nsup_stop_writes_check(ns));
	(void)txn_delete(ns, &bk);
	assert_int_equal(txn_delete(ns, &kk), 0);
	assert_int_equal(txn_delete(ns, &kn), 0);
}

/* Two nodes in one process (as tests and recfs-bench run them), each with
 * a namespace named "test": each keeps its own histograms and nsup. */
static void
test_txn_second_node_keeps_its_own_latencies_and_nsup(void **state)
{
	static struct recfs_config cfg2;
	struct histogram_snapshot a[STAT_LAT_NS_COUNT], b[STAT_LAT_NS_COUNT];
	struct histogram_snapshot a2[STAT_LAT_NS_COUNT], b2[STAT_LAT_NS_COUNT];
	uint64_t v[STAT_NS_COUNT];
	struct node *node2;
	struct namespace *ns2;

	cfg2 = cfg;
	assert_int_equal(node_open(&node2, &cfg2), 0);
	ns2 = node_namespace_find(node2, "test", 4);
	assert_non_null(ns2);
	assert_ptr_not_equal(txn_namespace_of(ns2), txn_namespace_of(ns));
	txn_namespace_latencies(ns, a);
	txn_namespace_latencies(ns2, a2);
	struct txn_key k = key(NULL, "second");
	struct txn_write w = { .set_file = true, .file_data = "x", .file_len = 1 };
	assert_int_equal(txn_write(ns2, &k, &w, NULL), 0);
	assert_int_equal(txn_delete(ns2, &k), 0);
	txn_namespace_latencies(ns, b);
	txn_namespace_latencies(ns2, b2);
	assert_int_equal(b2[STAT_LAT_NS_write].count - a2[STAT_LAT_NS_write].count, 1);
	assert_int_equal(b2[STAT_LAT_NS_delete].count - a2[STAT_LAT_NS_delete].count, 1);
	assert_int_equal(b[STAT_LAT_NS_write].count, a[STAT_LAT_NS_write].count);
	assert_int_equal(b[STAT_LAT_NS_delete].count, a[STAT_LAT_NS_delete].count);
	/* Stop-writes is the namespace's own: the second node's, forced on,
	 * leaves the first writing. */
	atomic_store_relaxed(&cfg2.ns[0].stop_writes_used_pct, 1);
	atomic_store_relaxed(&cfg2.ns[0].stop_writes_avail_pct, 100);
	assert_true(nsup_stop_writes_check(ns2));
	assert_int_equal(txn_write(ns2, &k, &w, NULL), -ENOSPC);
	txn_namespace_values(ns2, v);
	assert_int_equal(v[STAT_NS_stop_writes], 1);
	txn_namespace_values(ns, v);
	assert_int_equal(v[STAT_NS_stop_writes], 0);
	assert_int_equal(put(NULL, "first", "y", 0), 0);
	struct txn_key fk = key(NULL, "first");
	assert_int_equal(txn_delete(ns, &fk), 0);
	node_close(node2, false);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_txn_write_read_and_generations),
		cmocka_unit_test(test_txn_names_are_checked),
		cmocka_unit_test(test_txn_bins_metadata_and_size_survive_rewrites),
		cmocka_unit_test(test_txn_record_over_max_size_is_efbig_and_keeps_old),
		cmocka_unit_test(test_txn_rename_moves_and_respects_noreplace),
		cmocka_unit_test(test_txn_sets_persist_empty_and_refuse_rmdir_when_full),
		cmocka_unit_test(test_txn_set_keeps_mode_owner_and_times),
		cmocka_unit_test(test_txn_inode_number_follows_renames_and_atime_is_kept),
		cmocka_unit_test(test_txn_list_survives_concurrent_changes),
		cmocka_unit_test(test_txn_counters_move),
		cmocka_unit_test(test_txn_statistics_fill_every_row),
		cmocka_unit_test(test_txn_not_found_and_exists_counters_move),
		cmocka_unit_test(test_txn_latencies_count_each_operation),
		cmocka_unit_test(test_txn_config_set_validates_and_applies),
		cmocka_unit_test(test_txn_refused_operations_leave_no_set_and_no_record),
		cmocka_unit_test(test_txn_second_node_keeps_its_own_latencies_and_nsup),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
