/*
 * test_chunk.c - large files in the transaction layer (txn/chunk.h) on a
 * memory namespace: the chunk map's decoder refuses bad bytes, a commit is
 * copy-on-write (new chunk versions, the head, then the old versions
 * deleted), stat and listings show the file's size, delete and rename-over
 * drop chunks, rename keeps them, new content without a map makes the
 * record plain again, a chunk is read into the caller's buffer with no
 * copy, and the reclaimer deletes exactly the chunks no head names.
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

#include "base/clock.h"
#include "cluster/rpc.h"
#include "fabric/fabric.h"
#include "txn/chunk.h"
#include "txn/remote.h"
#include "txn/txn_i.h"   /* the namespace's counters */

#define CS 4096u

static struct recfs_config cfg;
static struct node *node;
static struct namespace *ns;

static int
setup(void **state)
{
	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.n_namespaces = 1;
	struct ns_config *n = &cfg.ns[0];
	strcpy(n->name, "test");
	strcpy(n->file_bin, "data");
	n->replication_factor = 1;
	n->stop_writes_used_pct = 70;
	n->stop_writes_avail_pct = 5;
	n->file_chunk_size = CS;
	/* the default age: the nsup thread's own passes never take the chunks
	 * these tests leave unnamed (the tests reclaim them themselves) */
	n->chunk_reclaim_age = 60;
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
	(void)state;
	node_close(node, true);
	return 0;
}

static struct txn_key
key(const char *k)
{
	return (struct txn_key){ "s", 1, k, strlen(k) };
}

static uint64_t
counter(const char *name)
{
	struct ns_counters c;

	namespace_counters(ns, &c);
	if (strcmp(name, "chunk_writes") == 0)
		return c.chunk_writes;
	if (strcmp(name, "chunk_reads") == 0)
		return c.chunk_reads;
	if (strcmp(name, "chunk_reclaim_skipped") == 0)
		return c.chunk_reclaim_skipped;
	if (strcmp(name, "chunk_reclaim_passes") == 0)
		return c.chunk_reclaim_passes;
	return c.chunks_reclaimed;
}

static bool
chunk_exists(uint64_t id, uint32_t index, uint32_t version)
{
	char k[TXN_CHUNK_KEY_LEN + 1];
	struct txn_key tk = { "s", 1, k, TXN_CHUNK_KEY_LEN };
	struct record_attr a;

	txn_chunk_key(k, id, index, version);
	return txn_stat(ns, &tk, &a) == 0;
}

/* The map the head at name holds now. */
static void
head_map(const char *name, struct txn_chunk_map *m)
{
	struct txn_key k = key(name);
	struct txn_record r;
	const struct bin *b;

	assert_int_equal(txn_read(ns, &k, &r), 0);
	b = txn_chunk_map_bin(&r.rec);
	assert_non_null(b);
	assert_int_equal(txn_chunk_map_decode(b->v.bytes.data, b->v.bytes.len, m), 0);
	txn_record_release(&r);
}

static void
test_chunk_map_decode_refuses_bad_bytes(void **state)
{
	uint8_t b[32 + 8] = { 0 };
	struct txn_chunk_map m;

	(void)state;
	/* magic "RCM1", id 7, size 5000, chunk size 4096, commit 2, n 2, versions 1 2 */
	memcpy(b, "RCM1", 4);
	b[4] = 7;
	b[12] = 5000 & 0xff;
	b[13] = 5000 >> 8;
	b[21] = 0x10;
	b[24] = 2;
	b[28] = 2;
	b[32] = 1;
	b[36] = 2;
	assert_int_equal(txn_chunk_map_decode(b, sizeof(b), &m), 0);
	assert_int_equal(m.n, 2);
	assert_int_equal(m.size, 5000);
	assert_int_equal(m.versions[1], 2);
	txn_chunk_map_free(&m);
	assert_int_equal(txn_chunk_map_decode(b, sizeof(b) - 4, &m), -EINVAL);  /* short */
	assert_int_equal(txn_chunk_map_decode(b, 31, &m), -EINVAL);
	b[36] = 3;                                                          /* version > commit */
	assert_int_equal(txn_chunk_map_decode(b, sizeof(b), &m), -EINVAL);
	b[36] = 2;
	b[13] = 0x30;                                                       /* size needs 4 chunks */
	assert_int_equal(txn_chunk_map_decode(b, sizeof(b), &m), -EINVAL);
	b[13] = 5000 >> 8;
	b[4] = 0;                                                           /* file id 0 */
	assert_int_equal(txn_chunk_map_decode(b, sizeof(b), &m), -EINVAL);
	b[4] = 7;
	b[0] = 'X';
	assert_int_equal(txn_chunk_map_decode(b, sizeof(b), &m), -EINVAL);
	assert_false(txn_chunk_key_parse("/k0000000000000000/00000000.00000001", 36, &m.file_id,
	    &m.n, &m.commit));
	assert_false(txn_chunk_key_parse("/kzz00000000000001/00000000.00000001", 36, &m.file_id,
	    &m.n, &m.commit));
}

static void
test_chunk_commit_is_copy_on_write(void **state)
{
	static char data[3 * CS + 100];
	char buf[CS];
	struct txn_key head = key("f");
	struct txn_chunk_map m = { .chunk_size = CS }, seen;
	struct txn_chunk_data d[4];
	struct txn_write w = { 0 };
	struct record_attr a;
	struct txn_cursor cur;
	struct txn_entry e[4];
	uint64_t writes = counter("chunk_writes");
	size_t got;

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)(i * 7);
	for (uint32_t i = 0; i < 4; i++)
		d[i] = (struct txn_chunk_data){ i, i < 3 ? CS : 100, data + i * CS };
	assert_int_equal(txn_chunk_commit(ns, &head, &m, sizeof(data), d, 4, &w, &a), 0);
	assert_int_not_equal(m.file_id, 0);
	assert_int_equal(m.commit, 1);
	assert_int_equal(m.n, 4);
	assert_int_equal(counter("chunk_writes") - writes, 4);
	assert_true(a.chunked);
	/* stat, read and listing show the file's size, not the head's */
	assert_int_equal(txn_stat(ns, &head, &a), 0);
	assert_true(a.chunked);
	assert_int_equal(a.size, sizeof(data));
	txn_cursor_init(&cur);
	assert_int_equal(txn_list(ns, "s", 1, &cur, e, 4), 1);  /* chunks are not names */
	assert_string_equal(e[0].key, "f");
	assert_int_equal(e[0].attr.size, sizeof(data));
	head_map("f", &seen);
	assert_int_equal(seen.file_id, m.file_id);
	for (uint32_t i = 0; i < 4; i++) {
		assert_int_equal(txn_chunk_read(ns, "s", 1, &seen, i, buf, &got), 0);
		assert_int_equal(got, i < 3 ? CS : 100);
		assert_memory_equal(buf, data + i * CS, got);
	}
	/* Change chunk 1, truncate to 2 chunks: chunk 1 gets version 2, the old
	 * version 1 of chunk 1 and chunks 2 and 3 go, chunk 0 stays. */
	memset(data + CS, 'x', CS);
	d[0] = (struct txn_chunk_data){ 1, CS, data + CS };
	assert_int_equal(txn_chunk_commit(ns, &head, &m, 2 * CS, d, 1, &w, NULL), 0);
	assert_int_equal(m.commit, 2);
	assert_int_equal(m.versions[0], 1);
	assert_int_equal(m.versions[1], 2);
	assert_true(chunk_exists(m.file_id, 0, 1));
	assert_true(chunk_exists(m.file_id, 1, 2));
	assert_false(chunk_exists(m.file_id, 1, 1));
	assert_false(chunk_exists(m.file_id, 2, 1));
	assert_false(chunk_exists(m.file_id, 3, 1));
	/* A reader holding the old map finds its replaced chunk gone: it
	 * reads the head again (fuse/handle.c), never a mix. */
	assert_int_equal(txn_chunk_read(ns, "s", 1, &seen, 1, buf, &got), -ENOENT);
	txn_chunk_map_free(&seen);
	assert_int_equal(txn_stat(ns, &head, &a), 0);
	assert_int_equal(a.size, 2 * CS);
	assert_int_equal(atomic_load_relaxed(&ns->chunk_objects), 2);
	txn_chunk_map_free(&m);
	assert_int_equal(txn_delete(ns, &head), 0);
	assert_int_equal(atomic_load_relaxed(&ns->chunk_objects), 0);
}

/* A chunk read into the caller's buffer: its bytes are pointed at inside
 * the record read into that buffer (no copy), zeros past what it stores up
 * to span; a buffer too small for the record gets the bytes copied to its
 * start; a chunk gone is -ENOENT, bad arguments -EINVAL. */
static void
test_chunk_read_into_callers_buffer(void **state)
{
	static char data[CS + 100];
	struct txn_key head = key("into");
	struct txn_chunk_map m = { .chunk_size = CS };
	struct txn_chunk_data d[2] = { { 0, CS, data }, { 1, 100, data + CS } };
	struct txn_write w = { 0 };
	size_t size = txn_chunk_buf_size(CS);
	uint64_t reads = counter("chunk_reads");
	const char *at = NULL;
	char *buf, small[CS + 64];
	void *p = NULL;

	(void)state;
	assert_int_equal(size % TXN_READ_ALIGN, 0);
	assert_true(size >= CS + TXN_READ_ALIGN);
	assert_int_equal(posix_memalign(&p, TXN_READ_ALIGN, size), 0);
	buf = p;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)(i * 13 + 1);
	assert_int_equal(txn_chunk_commit(ns, &head, &m, sizeof(data), d, 2, &w, NULL), 0);
	assert_int_equal(txn_chunk_read_into(ns, "s", 1, m.file_id, 0, m.versions[0], 0, CS, CS, buf,
	    size, &at), 0);
	assert_true(at > buf && at + CS <= buf + size);  /* inside the record read into buf */
	assert_memory_equal(at, data, CS);
	/* The last chunk: 100 bytes, zeros after them up to span. */
	memset(buf, 'z', size);
	assert_int_equal(txn_chunk_read_into(ns, "s", 1, m.file_id, 1, m.versions[1], CS, 100, CS, buf,
	    size, &at), 0);
	assert_true(at > buf && at + CS <= buf + size);
	assert_memory_equal(at, data + CS, 100);
	for (size_t i = 100; i < CS; i++)
		assert_int_equal(at[i], 0);
	/* A buffer smaller than the record: copied to its start. */
	assert_int_equal(txn_chunk_read_into(ns, "s", 1, m.file_id, 0, m.versions[0], 0, CS, CS, small,
	    sizeof(small), &at), 0);
	assert_ptr_equal(at, small);
	assert_memory_equal(at, data, CS);
	assert_int_equal(counter("chunk_reads") - reads, 3);
	assert_int_equal(txn_chunk_read_into(ns, "s", 1, m.file_id, 0, m.versions[0] + 1, 0, CS, CS,
	    buf, size, &at), -ENOENT);
	assert_int_equal(txn_chunk_read_into(ns, "s", 1, m.file_id, 0, m.versions[0], 0, CS, CS - 1,
	    buf, size, &at), -EINVAL);
	assert_int_equal(txn_chunk_read_into(ns, "s", 1, m.file_id, 0, m.versions[0], 0, CS, size + 1,
	    buf, size, &at), -EINVAL);
	txn_chunk_map_free(&m);
	assert_int_equal(txn_delete(ns, &head), 0);
	free(buf);
}

static void
test_chunk_delete_and_rename(void **state)
{
	static char data[2 * CS];
	struct txn_key a = key("a"), b = key("b"), c = key("c");
	struct txn_chunk_map ma = { .chunk_size = CS }, mb = { .chunk_size = CS }, seen;
	struct txn_chunk_data d[2] = { { 0, CS, data }, { 1, CS, data + CS } };
	struct txn_write w = { 0 };
	struct txn_write small = { .set_file = true, .file_data = "tiny", .file_len = 4 };
	struct record_attr at;

	(void)state;
	memset(data, 'a', sizeof(data));
	assert_int_equal(txn_chunk_commit(ns, &a, &ma, sizeof(data), d, 2, &w, NULL), 0);
	assert_int_equal(txn_chunk_commit(ns, &b, &mb, sizeof(data), d, 2, &w, NULL), 0);
	assert_int_equal(atomic_load_relaxed(&ns->chunk_objects), 4);
	/* rename keeps the chunks (the head moves, keyed by file id) */
	assert_int_equal(txn_rename(ns, &a, &c, 0), 0);
	head_map("c", &seen);
	assert_int_equal(seen.file_id, ma.file_id);
	txn_chunk_map_free(&seen);
	assert_int_equal(atomic_load_relaxed(&ns->chunk_objects), 4);
	/* rename over another large file drops the replaced file's chunks */
	assert_int_equal(txn_rename(ns, &c, &b, 0), 0);
	assert_int_equal(atomic_load_relaxed(&ns->chunk_objects), 2);
	assert_false(chunk_exists(mb.file_id, 0, 1));
	assert_true(chunk_exists(ma.file_id, 0, 1));
	/* delete drops them all */
	assert_int_equal(txn_delete(ns, &b), 0);
	assert_int_equal(atomic_load_relaxed(&ns->chunk_objects), 0);
	/* new content without a map: a plain record again, its chunks dropped */
	assert_int_equal(txn_chunk_commit(ns, &a, &mb, sizeof(data), d, 2, &w, NULL), 0);
	assert_int_equal(txn_write(ns, &a, &small, &at), 0);
	assert_int_equal(txn_stat(ns, &a, &at), 0);
	assert_false(at.chunked);
	assert_int_equal(at.size, 4);
	assert_int_equal(atomic_load_relaxed(&ns->chunk_objects), 0);
	/* another file's map over a head (O_TRUNC, then written large
	 * again: a new file id) drops the old file's chunks */
	txn_chunk_map_free(&mb);
	mb = (struct txn_chunk_map){ .chunk_size = CS };
	assert_int_equal(txn_chunk_commit(ns, &a, &mb, sizeof(data), d, 2, &w, NULL), 0);
	txn_chunk_map_free(&ma);
	ma = (struct txn_chunk_map){ .chunk_size = CS };
	assert_int_equal(txn_chunk_commit(ns, &a, &ma, CS, d, 1, &w, NULL), 0);
	assert_int_not_equal(ma.file_id, mb.file_id);
	assert_int_equal(atomic_load_relaxed(&ns->chunk_objects), 1);
	assert_false(chunk_exists(mb.file_id, 0, 1));
	txn_chunk_map_free(&ma);
	txn_chunk_map_free(&mb);
	assert_int_equal(txn_chunk_reclaim(ns, clock_epoch_ms() + 1000), 0);
	assert_int_equal(txn_delete(ns, &a), 0);
	assert_int_equal(atomic_load_relaxed(&ns->chunk_objects), 0);
}

static void
test_chunk_reclaim_deletes_only_unnamed_chunks(void **state)
{
	static char data[2 * CS];
	struct txn_key head = key("r");
	struct txn_chunk_map m = { .chunk_size = CS };
	struct txn_chunk_data d[2] = { { 0, CS, data }, { 1, CS, data + CS } };
	struct txn_write w = { 0 };
	struct txn_write cw = { .set_file = true, .file_data = data, .file_len = 10 };
	uint64_t r0 = counter("chunks_reclaimed");
	char k[TXN_CHUNK_KEY_LEN + 1];
	struct txn_key orphan = { "s", 1, k, TXN_CHUNK_KEY_LEN };

	(void)state;
	assert_int_equal(txn_chunk_commit(ns, &head, &m, sizeof(data), d, 2, &w, NULL), 0);
	/* a commit that never reached its head (version 2 > commit 1), and a
	 * chunk of a file with no head */
	txn_chunk_key(k, m.file_id, 0, 2);
	assert_int_equal(txn_write(ns, &orphan, &cw, NULL), 0);
	txn_chunk_key(k, 0x1234, 0, 1);
	assert_int_equal(txn_write(ns, &orphan, &cw, NULL), 0);
	assert_int_equal(atomic_load_relaxed(&ns->chunk_objects), 4);
	/* young ones are kept: a commit may be writing them */
	assert_int_equal(txn_chunk_reclaim(ns, clock_epoch_ms() - 60000), 0);
	assert_int_equal(atomic_load_relaxed(&ns->chunk_objects), 4);
	assert_int_equal(txn_chunk_reclaim(ns, clock_epoch_ms() + 1000), 2);
	assert_int_equal(counter("chunks_reclaimed") - r0, 2);
	assert_true(chunk_exists(m.file_id, 0, 1));
	assert_true(chunk_exists(m.file_id, 1, 1));
	assert_false(chunk_exists(m.file_id, 0, 2));
	assert_false(chunk_exists(0x1234, 0, 1));
	assert_int_equal(txn_delete(ns, &head), 0);
	assert_int_equal(atomic_load_relaxed(&ns->chunk_objects), 0);
	txn_chunk_map_free(&m);
}

/* An unlinked file's open handles hold its chunks (txn_chunk_unmap): the
 * reclaimer keeps them until the hold ends; a map moving while the
 * reclaimer gathers makes it skip the pass. */
static void
test_chunk_reclaim_keeps_held_chunks(void **state)
{
	static char data[2 * CS];
	struct txn_key head = key("held"), other = key("other");
	struct txn_chunk_map m = { .chunk_size = CS }, mo = { .chunk_size = CS };
	struct txn_chunk_data d[2] = { { 0, CS, data }, { 1, CS, data + CS } };
	struct txn_write w = { 0 };
	uint64_t r0 = counter("chunks_reclaimed"), s0 = counter("chunk_reclaim_skipped");
	uint64_t p0 = counter("chunk_reclaim_passes");
	struct txn_namespace *x = txn_namespace_of(ns);

	(void)state;
	assert_int_equal(txn_chunk_commit(ns, &head, &m, sizeof(data), d, 2, &w, NULL), 0);
	/* the head gives its map to the handles: no head names the chunks */
	assert_int_equal(txn_chunk_unmap(ns, &head, &m), 0);
	assert_int_equal(txn_chunk_reclaim(ns, clock_epoch_ms() + 1000), 0);
	assert_true(chunk_exists(m.file_id, 0, 1));
	assert_true(chunk_exists(m.file_id, 1, 1));
	/* given back (a failed unlink): named by the head again, not held */
	assert_int_equal(txn_chunk_remap(ns, &head, &m), 0);
	assert_int_equal(x->n_chunk_holds, 0);
	assert_int_equal(txn_chunk_reclaim(ns, clock_epoch_ms() + 1000), 0);
	assert_true(chunk_exists(m.file_id, 1, 1));
	/* taken again, then the hold ends without the drop (a drop that
	 * failed): the chunks are the reclaimer's */
	assert_int_equal(txn_chunk_unmap(ns, &head, &m), 0);
	txn_chunk_release(ns, m.file_id);
	/* a move in flight (a rename, an unlink of an open file): skipped */
	txn_chunk_move_begin(x);
	assert_int_equal(txn_chunk_reclaim(ns, clock_epoch_ms() + 1000), 0);
	/* this pass, and an nsup pass that came meanwhile may skip too */
	assert_true(counter("chunk_reclaim_skipped") - s0 >= 1);
	assert_true(chunk_exists(m.file_id, 0, 1));
	txn_chunk_move_end(x);
	/* another file's chunks stay named by their head */
	assert_int_equal(txn_chunk_commit(ns, &other, &mo, CS, d, 1, &w, NULL), 0);
	assert_int_equal(txn_chunk_reclaim(ns, clock_epoch_ms() + 1000), 2);
	assert_false(chunk_exists(m.file_id, 0, 1));
	assert_false(chunk_exists(m.file_id, 1, 1));
	assert_true(chunk_exists(mo.file_id, 0, 1));
	assert_int_equal(counter("chunks_reclaimed") - r0, 2);
	/* This test's 4, and the nsup thread's own pass at its start (its only
	 * one: nsup-period 0) if the thread first ran this late (a loaded
	 * machine: 5 once at load 16). */
	assert_in_range(counter("chunk_reclaim_passes") - p0, 4, 5);
	assert_int_equal(txn_delete(ns, &head), 0);
	assert_int_equal(txn_delete(ns, &other), 0);
	assert_int_equal(atomic_load_relaxed(&ns->chunk_objects), 0);
	txn_chunk_map_free(&m);
	txn_chunk_map_free(&mo);
}

/* A peer's gather request that does not decode is refused, nothing read
 * outside it; a state request answers 32 bytes. */
static void
test_chunk_serve_refuses_bad_requests(void **state)
{
	uint8_t out[64], req[1024], mask[PARTITION_COUNT / 8] = { 0 };
	struct rpc_reply reply = { .buf = out, .cap = sizeof(out) };
	struct fabric_msg_writer fw;

	(void)state;
	assert_int_equal(txn_chunk_serve(ns, (const uint8_t *)"junk", 4, &reply), -EBADMSG);
	fabric_msg_writer_init(&fw, req, sizeof(req), TXN_MSG_CHUNKS);
	fabric_msg_put_bytes(&fw, TXN_KF_NS, "test", 4);
	fabric_msg_put_u32(&fw, TXN_KF_KIND, 1);
	assert_int_equal(txn_chunk_serve(ns, req, fw.len, &reply), 0);
	assert_int_equal(reply.len, 32);
	assert_int_equal(txn_chunk_serve(ns, req, fw.len - 1, &reply), -EBADMSG);
	/* heads: an unknown kind, no mask, a short mask, a partition past the last */
	fabric_msg_writer_init(&fw, req, sizeof(req), TXN_MSG_CHUNKS);
	fabric_msg_put_u32(&fw, TXN_KF_KIND, 9);
	assert_int_equal(txn_chunk_serve(ns, req, fw.len, &reply), -EBADMSG);
	fabric_msg_writer_init(&fw, req, sizeof(req), TXN_MSG_CHUNKS);
	fabric_msg_put_u32(&fw, TXN_KF_KIND, 2);
	fabric_msg_put_u32(&fw, TXN_KF_FROM, 0);
	assert_int_equal(txn_chunk_serve(ns, req, fw.len, &reply), -EBADMSG);
	fabric_msg_put_bytes(&fw, TXN_KF_MASK, mask, sizeof(mask) - 1);
	assert_int_equal(txn_chunk_serve(ns, req, fw.len, &reply), -EBADMSG);
	fabric_msg_writer_init(&fw, req, sizeof(req), TXN_MSG_CHUNKS);
	fabric_msg_put_u32(&fw, TXN_KF_KIND, 2);
	fabric_msg_put_u32(&fw, TXN_KF_FROM, PARTITION_COUNT);
	fabric_msg_put_bytes(&fw, TXN_KF_MASK, mask, sizeof(mask));
	assert_int_equal(txn_chunk_serve(ns, req, fw.len, &reply), -EBADMSG);
	/* a page of no partition: the end, no holds, no heads */
	fabric_msg_writer_init(&fw, req, sizeof(req), TXN_MSG_CHUNKS);
	fabric_msg_put_u32(&fw, TXN_KF_KIND, 2);
	fabric_msg_put_u32(&fw, TXN_KF_FROM, 0);
	fabric_msg_put_bytes(&fw, TXN_KF_MASK, mask, sizeof(mask));
	assert_int_equal(txn_chunk_serve(ns, req, fw.len, &reply), 0);
	assert_int_equal(reply.len, 8);
}

static void
put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

/* Another node's heads page: what decodes, and what is refused. */
static void
test_chunk_page_decode(void **state)
{
	uint8_t p[52];
	uint32_t next;
	size_t ids, held;

	(void)state;
	put32(p, 4096);
	put32(p + 4, 1);
	put64(p + 8, 0x77);                 /* held */
	put64(p + 16, 0x77);                /* a head of the held file: 2 chunks */
	put32(p + 24, 2);
	put32(p + 28, 3);
	put32(p + 32, 0);
	put64(p + 36, 0x99);                /* another: 1 chunk */
	put32(p + 44, 1);
	put32(p + 48, 1);
	assert_int_equal(txn_chunk_page_decode(p, sizeof(p), 32, &next, &ids, &held), 0);
	assert_int_equal(next, 4096);
	assert_int_equal(ids, 2);
	assert_int_equal(held, 1);
	/* every truncation inside a field is refused */
	for (size_t len = 0; len < sizeof(p); len++)
		if (len != 16 && len != 36)   /* whole entries: a shorter page */
			assert_int_equal(txn_chunk_page_decode(p, len, 32, &next, &ids, &held), -EBADMSG);
	/* the next partition not past the one asked, or past the last */
	assert_int_equal(txn_chunk_page_decode(p, sizeof(p), 4096, &next, &ids, &held), -EBADMSG);
	put32(p, 4097);
	assert_int_equal(txn_chunk_page_decode(p, sizeof(p), 0, &next, &ids, &held), -EBADMSG);
	put32(p, 4096);
	/* more held ids or versions than the bytes hold; a file id 0 */
	put32(p + 4, 7);
	assert_int_equal(txn_chunk_page_decode(p, sizeof(p), 0, &next, &ids, &held), -EBADMSG);
	put32(p + 4, 1);
	put32(p + 44, 2);
	assert_int_equal(txn_chunk_page_decode(p, sizeof(p), 0, &next, &ids, &held), -EBADMSG);
	put32(p + 44, 1);
	put64(p + 36, 0);
	assert_int_equal(txn_chunk_page_decode(p, sizeof(p), 0, &next, &ids, &held), -EBADMSG);
	put64(p + 36, 0x99);
	/* the maps one pass may hold are bounded: a page of valid heads past
	 * the bound is refused, not kept */
	txn_chunk_gather_max_bytes = 40;
	assert_int_equal(txn_chunk_page_decode(p, sizeof(p), 32, &next, &ids, &held), -E2BIG);
	txn_chunk_gather_max_bytes = 4096;
	assert_int_equal(txn_chunk_page_decode(p, sizeof(p), 32, &next, &ids, &held), 0);
	txn_chunk_gather_max_bytes = (size_t)256 << 20;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chunk_map_decode_refuses_bad_bytes),
		cmocka_unit_test(test_chunk_commit_is_copy_on_write),
		cmocka_unit_test(test_chunk_read_into_callers_buffer),
		cmocka_unit_test(test_chunk_delete_and_rename),
		cmocka_unit_test(test_chunk_reclaim_deletes_only_unnamed_chunks),
		cmocka_unit_test(test_chunk_reclaim_keeps_held_chunks),
		cmocka_unit_test(test_chunk_serve_refuses_bad_requests),
		cmocka_unit_test(test_chunk_page_decode),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
