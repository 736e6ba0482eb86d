/*
 * test_remote.c - the data path's messages (src/txn/remote_msg.c): a proxy
 * request of every kind and an answer encode and decode back to the same
 * values; anything malformed (truncated, a wrong type, a field missing,
 * twice or out of range, bins that do not parse) is -EBADMSG.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/rpc.h"
#include "fabric/fabric.h"
#include "txn/remote.h"

static const struct txn_bin_op bins[] = {
	{ .name = "user.tag", .name_len = 8, .flags = TXN_BIN_CREATE, .type = BIN_BLOB,
	  .data = "value\0with\xff" "bytes", .len = 16 },
	{ .name = "count", .name_len = 5, .type = BIN_INTEGER, .integer = -42 },
	{ .name = "ratio", .name_len = 5, .flags = TXN_BIN_REPLACE, .type = BIN_DOUBLE, .dbl = 0.125 },
	{ .name = "gone", .name_len = 4, .flags = TXN_BIN_REMOVE },
	{ .name = "s", .name_len = 1, .type = BIN_STRING, .data = "", .len = 0 },
};

/* Whether a message cut after n bytes ends at a field boundary (a whole
 * message with fewer fields, which may well decode). */
static bool
at_boundary(const uint8_t *m, size_t len, size_t n)
{
	size_t off = 2;

	while (off < n && off + 7 <= len)
		off += 7 + ((size_t)m[off + 3] << 24 | (size_t)m[off + 4] << 16 |
		    (size_t)m[off + 5] << 8 | m[off + 6]);
	return off == n;
}

static struct txn_proxy_req
full_write(void)
{
	struct txn_proxy_req q = {
		.kind = TXN_PROXY_WRITE, .ns = "test", .ns_len = 4,
		.k = { .set = "photos", .set_len = 6, .key = "a/b.jpg", .key_len = 7 },
		.has_write = true,
		.w = { .flags = TXN_CREATE_ONLY | TXN_DURABLE, .set_file = true,
		       .file_data = "file content", .file_len = 12, .set_size = true, .size = 99,
		       .set_mode = true, .mode = 0640, .set_uid = true, .uid = 1000,
		       .set_gid = true, .gid = 100, .set_mtime = true, .mtime_ns = -5,
		       .set_atime = true, .atime_ns = 1700000000123456789, .set_ttl = true,
		       .ttl = -1, .bins = bins, .n_bins = 5 },
	};

	return q;
}

static void
test_proxy_request_roundtrip(void **state)
{
	struct txn_proxy_req q = full_write(), d;
	uint8_t *buf;
	size_t len;

	(void)state;
	{
		/* in two pieces: the content stays where it is, the last field;
		 * joined, the same message as encoded whole */
		uint8_t *whole, *head;
		const uint8_t *tail;
		size_t wl, hl, tl;

		assert_int_equal(txn_proxy_req_encode(&q, &whole, &wl), 0);
		assert_int_equal(txn_proxy_req_encode_split(&q, &head, &hl, &tail, &tl), 0);
		assert_ptr_equal(tail, q.w.file_data);
		assert_int_equal(tl, 12);
		assert_int_equal(hl + tl, wl);
		assert_memory_equal(head, whole, hl);
		assert_memory_equal(whole + hl, "file content", 12);
		free(whole);
		free(head);
	}
	assert_int_equal(txn_proxy_req_encode(&q, &buf, &len), 0);
	assert_int_equal(txn_proxy_req_decode(buf, len, &d), 0);
	assert_int_equal(d.kind, TXN_PROXY_WRITE);
	assert_int_equal(d.ns_len, 4);
	assert_memory_equal(d.ns, "test", 4);
	assert_int_equal(d.k.set_len, 6);
	assert_memory_equal(d.k.set, "photos", 6);
	assert_int_equal(d.k.key_len, 7);
	assert_memory_equal(d.k.key, "a/b.jpg", 7);
	assert_false(d.has_to);
	assert_true(d.has_write);
	assert_int_equal(d.w.flags, TXN_CREATE_ONLY | TXN_DURABLE);
	assert_true(d.w.set_file);
	assert_int_equal(d.w.file_len, 12);
	assert_memory_equal(d.w.file_data, "file content", 12);
	assert_true(d.w.set_size && d.w.size == 99);
	assert_true(d.w.set_mode && d.w.mode == 0640);
	assert_true(d.w.set_uid && d.w.uid == 1000);
	assert_true(d.w.set_gid && d.w.gid == 100);
	assert_true(d.w.set_mtime && d.w.mtime_ns == -5);
	assert_true(d.w.set_atime && d.w.atime_ns == 1700000000123456789);
	assert_true(d.w.set_ttl && d.w.ttl == -1);
	assert_int_equal(d.w.n_bins, 5);
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(d.w.bins[i].name_len, bins[i].name_len);
		assert_memory_equal(d.w.bins[i].name, bins[i].name, bins[i].name_len);
		assert_int_equal(d.w.bins[i].flags, bins[i].flags);
		if (bins[i].flags & TXN_BIN_REMOVE)
			continue;
		assert_int_equal(d.w.bins[i].type, bins[i].type);
		assert_int_equal(d.w.bins[i].len, bins[i].len);
		if (bins[i].len > 0)
			assert_memory_equal(d.w.bins[i].data, bins[i].data, bins[i].len);
		assert_true(d.w.bins[i].integer == bins[i].integer);
		assert_true(d.w.bins[i].dbl == bins[i].dbl);
	}
	txn_proxy_req_release(&d);

	/* Every prefix that cuts a field is refused, never read past (ASan: a
	 * copy of exactly that size); one at a boundary is a message with
	 * fewer fields, refused unless those were optional. */
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *part = malloc(cut ? cut : 1);
		int rc;

		memcpy(part, buf, cut);
		rc = txn_proxy_req_decode(part, cut, &d);
		if (!at_boundary(buf, len, cut))
			assert_int_equal(rc, -EBADMSG);
		else
			assert_true(rc == 0 || rc == -EBADMSG);
		txn_proxy_req_release(&d);
		free(part);
	}
	free(buf);

	/* A rename and a plain delete, null set. */
	struct txn_proxy_req r = { .kind = TXN_PROXY_RENAME, .ns = "ns", .ns_len = 2,
	    .k = { .key = "old", .key_len = 3 }, .has_to = true,
	    .to = { .set = "s2", .set_len = 2, .key = "new", .key_len = 3 },
	    .rename_flags = TXN_RENAME_NOREPLACE };

	assert_int_equal(txn_proxy_req_encode(&r, &buf, &len), 0);
	assert_int_equal(txn_proxy_req_decode(buf, len, &d), 0);
	assert_int_equal(d.kind, TXN_PROXY_RENAME);
	assert_int_equal(d.k.set_len, 0);
	assert_true(d.has_to);
	assert_memory_equal(d.to.set, "s2", 2);
	assert_memory_equal(d.to.key, "new", 3);
	assert_int_equal(d.rename_flags, TXN_RENAME_NOREPLACE);
	assert_false(d.has_write);
	txn_proxy_req_release(&d);
	free(buf);
	/* A rename-in: the record and what it showed travel. */
	struct txn_proxy_req ri = { .kind = TXN_PROXY_RENAME_IN, .ns = "ns", .ns_len = 2,
	    .k = { .key = "new", .key_len = 3 }, .rename_flags = TXN_RENAME_NOREPLACE,
	    .record = (const uint8_t *)"flat bytes", .record_len = 10,
	    .record_attr = { .ino = 77, .atime_ns = 5, .last_update_ms = 9, .partition = 3 } };

	assert_int_equal(txn_proxy_req_encode(&ri, &buf, &len), 0);
	assert_int_equal(txn_proxy_req_decode(buf, len, &d), 0);
	assert_int_equal(d.kind, TXN_PROXY_RENAME_IN);
	assert_false(d.has_to);
	assert_int_equal(d.rename_flags, TXN_RENAME_NOREPLACE);
	assert_int_equal(d.record_len, 10);
	assert_memory_equal(d.record, "flat bytes", 10);
	assert_memory_equal(&d.record_attr, &ri.record_attr, sizeof(ri.record_attr));
	txn_proxy_req_release(&d);
	free(buf);
	/* A delete's id and its retry mark travel. */
	struct txn_proxy_req dl = { .kind = TXN_PROXY_DELETE, .ns = "ns", .ns_len = 2,
	    .k = { .key = "gone", .key_len = 4 }, .id = { .node = 0xa1b2, .seq = 1ull << 60 },
	    .retry = true };

	assert_int_equal(txn_proxy_req_encode(&dl, &buf, &len), 0);
	assert_int_equal(txn_proxy_req_decode(buf, len, &d), 0);
	assert_int_equal(d.kind, TXN_PROXY_DELETE);
	assert_int_equal(d.id.node, 0xa1b2);
	assert_int_equal(d.id.seq, 1ull << 60);
	assert_true(d.retry);
	txn_proxy_req_release(&d);
	free(buf);
	dl.retry = false;
	assert_int_equal(txn_proxy_req_encode(&dl, &buf, &len), 0);
	assert_int_equal(txn_proxy_req_decode(buf, len, &d), 0);
	assert_int_equal(d.id.seq, 1ull << 60);
	assert_false(d.retry);
	txn_proxy_req_release(&d);
	free(buf);
	/* A write's id and retry mark travel too; split, the content is still
	 * the last field, by reference. */
	{
		struct txn_proxy_req wi = full_write();
		uint8_t *whole, *head;
		const uint8_t *tail;
		size_t wl, hl, tl;

		wi.id = (struct txn_op_id){ .node = 0xc0ffee, .seq = 42 };
		wi.retry = true;
		wi.take_version = true;
		assert_int_equal(txn_proxy_req_encode(&wi, &whole, &wl), 0);
		assert_int_equal(txn_proxy_req_encode_split(&wi, &head, &hl, &tail, &tl), 0);
		assert_ptr_equal(tail, wi.w.file_data);
		assert_int_equal(hl + tl, wl);
		assert_memory_equal(head, whole, hl);
		assert_int_equal(txn_proxy_req_decode(whole, wl, &d), 0);
		assert_int_equal(d.kind, TXN_PROXY_WRITE);
		assert_int_equal(d.id.node, 0xc0ffee);
		assert_int_equal(d.id.seq, 42);
		assert_true(d.retry);
		assert_true(d.take_version);
		assert_int_equal(d.w.flags, TXN_CREATE_ONLY | TXN_DURABLE);
		assert_memory_equal(d.w.file_data, "file content", 12);
		txn_proxy_req_release(&d);
		free(whole);
		free(head);
	}
	/* and a rename's */
	{
		struct txn_proxy_req rn = { .kind = TXN_PROXY_RENAME, .ns = "ns", .ns_len = 2,
		    .k = { .key = "old", .key_len = 3 }, .has_to = true,
		    .to = { .key = "new", .key_len = 3 }, .id = { .node = 7, .seq = 8 }, .retry = true };

		assert_int_equal(txn_proxy_req_encode(&rn, &buf, &len), 0);
		assert_int_equal(txn_proxy_req_decode(buf, len, &d), 0);
		assert_int_equal(d.kind, TXN_PROXY_RENAME);
		assert_int_equal(d.id.node, 7);
		assert_int_equal(d.id.seq, 8);
		assert_true(d.retry);
		txn_proxy_req_release(&d);
		free(buf);
	}
	for (uint32_t k = TXN_PROXY_STAT; k <= TXN_PROXY_DUPRES; k++) {
		struct txn_proxy_req s = { .kind = k, .ns = "n", .ns_len = 1,
		    .k = { .key = "k", .key_len = 1 } };

		if (k == TXN_PROXY_RENAME || k == TXN_PROXY_WRITE || k == TXN_PROXY_RENAME_IN)
			continue;
		assert_int_equal(txn_proxy_req_encode(&s, &buf, &len), 0);
		assert_int_equal(txn_proxy_req_decode(buf, len, &d), 0);
		assert_int_equal(d.kind, k);
		txn_proxy_req_release(&d);
		free(buf);
	}
}

/* Encode a message of type t with the fields the caller adds. */
#define MSG(t) uint8_t mb[512]; struct fabric_msg_writer w; \
	fabric_msg_writer_init(&w, mb, sizeof(mb), t)

static void
test_proxy_request_malformed(void **state)
{
	struct txn_proxy_req d;
	(void)state;

	{	/* a valid minimal one, to be sure the cases below differ by one thing */
		MSG(TXN_MSG_PROXY);
		fabric_msg_put_u32(&w, TXN_PF_KIND, TXN_PROXY_STAT);
		fabric_msg_put_bytes(&w, TXN_PF_NS, "n", 1);
		fabric_msg_put_bytes(&w, TXN_PF_KEY, "k", 1);
		assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), 0);
		txn_proxy_req_release(&d);
		/* a field twice */
		fabric_msg_put_bytes(&w, TXN_PF_KEY, "k", 1);
		assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), -EBADMSG);
	}
	{	/* another message type */
		MSG(TXN_MSG_ANSWER);
		fabric_msg_put_u32(&w, TXN_PF_KIND, TXN_PROXY_STAT);
		fabric_msg_put_bytes(&w, TXN_PF_NS, "n", 1);
		fabric_msg_put_bytes(&w, TXN_PF_KEY, "k", 1);
		assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), -EBADMSG);
	}
	{	/* kind out of range */
		MSG(TXN_MSG_PROXY);
		fabric_msg_put_u32(&w, TXN_PF_KIND, TXN_PROXY_DUPRES + 1);
		fabric_msg_put_bytes(&w, TXN_PF_NS, "n", 1);
		fabric_msg_put_bytes(&w, TXN_PF_KEY, "k", 1);
		assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), -EBADMSG);
	}
	{	/* no namespace */
		MSG(TXN_MSG_PROXY);
		fabric_msg_put_u32(&w, TXN_PF_KIND, TXN_PROXY_STAT);
		fabric_msg_put_bytes(&w, TXN_PF_KEY, "k", 1);
		assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), -EBADMSG);
	}
	{	/* key of the wrong field type */
		MSG(TXN_MSG_PROXY);
		fabric_msg_put_u32(&w, TXN_PF_KIND, TXN_PROXY_STAT);
		fabric_msg_put_bytes(&w, TXN_PF_NS, "n", 1);
		fabric_msg_put_u32(&w, TXN_PF_KEY, 1);
		assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), -EBADMSG);
	}
	{	/* a record on a delete; a rename-in without its record */
		MSG(TXN_MSG_PROXY);
		fabric_msg_put_u32(&w, TXN_PF_KIND, TXN_PROXY_DELETE);
		fabric_msg_put_bytes(&w, TXN_PF_NS, "n", 1);
		fabric_msg_put_bytes(&w, TXN_PF_KEY, "k", 1);
		fabric_msg_put_bytes(&w, TXN_PF_RECORD, "x", 1);
		assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), -EBADMSG);
		mb[2 + 7 + 3] = TXN_PROXY_RENAME_IN;
		fabric_msg_put_u32(&w, TXN_PF_RENAME_FLAGS, 0);
		assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), -EBADMSG);  /* no attributes */
	}
	{	/* a duplicate resolution carries a key only: no record, no write, no target */
		MSG(TXN_MSG_PROXY);
		fabric_msg_put_u32(&w, TXN_PF_KIND, TXN_PROXY_DUPRES);
		fabric_msg_put_bytes(&w, TXN_PF_NS, "n", 1);
		fabric_msg_put_bytes(&w, TXN_PF_SET, "s", 1);
		fabric_msg_put_bytes(&w, TXN_PF_KEY, "k", 1);
		assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), 0);
		assert_int_equal(d.kind, TXN_PROXY_DUPRES);
		assert_int_equal(d.k.set_len, 1);
		txn_proxy_req_release(&d);
		fabric_msg_put_bytes(&w, TXN_PF_RECORD, "x", 1);
		assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), -EBADMSG);
	}
	{	/* a delete's id: 16 bytes, seq not 0, on a delete only; retry only with it */
		static const uint8_t id[16] = { 1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0 };
		static const uint8_t id0[16] = { 1 };
		uint8_t bad[3][512];
		size_t bad_len[3];

		MSG(TXN_MSG_PROXY);
		fabric_msg_put_u32(&w, TXN_PF_KIND, TXN_PROXY_DELETE);
		fabric_msg_put_bytes(&w, TXN_PF_NS, "n", 1);
		fabric_msg_put_bytes(&w, TXN_PF_KEY, "k", 1);
		for (int i = 0; i < 3; i++) {
			struct fabric_msg_writer b = w;

			b.buf = bad[i];
			memcpy(bad[i], mb, w.len);
			if (i == 0)
				fabric_msg_put_bytes(&b, TXN_PF_OP_ID, id, 15);
			else if (i == 1)
				fabric_msg_put_bytes(&b, TXN_PF_OP_ID, id0, 16);
			else
				fabric_msg_put_u32(&b, TXN_PF_RETRY, 1);
			bad_len[i] = b.len;
			assert_int_equal(txn_proxy_req_decode(bad[i], bad_len[i], &d), -EBADMSG);
		}
		fabric_msg_put_bytes(&w, TXN_PF_OP_ID, id, 16);
		assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), 0);
		assert_int_equal(d.id.seq, 7);
		assert_false(d.retry);
		txn_proxy_req_release(&d);
		mb[2 + 7 + 3] = TXN_PROXY_STAT;      /* an id on a stat */
		assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), -EBADMSG);
		mb[2 + 7 + 3] = TXN_PROXY_READ;      /* on a read */
		assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), -EBADMSG);
		mb[2 + 7 + 3] = TXN_PROXY_SYNC;      /* on a sync */
		assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), -EBADMSG);
		mb[2 + 7 + 3] = TXN_PROXY_DELETE;
		fabric_msg_put_u32(&w, TXN_PF_RETRY, 2);
		assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), -EBADMSG);
	}
	{	/* a write's id: 16 bytes exactly (15 or 17: refused), seq not 0;
		 * retry only with it */
		static const uint8_t id[17] = { 2, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0 };
		static const uint8_t id0[16] = { 2 };
		uint8_t bad[4][512];

		MSG(TXN_MSG_PROXY);
		fabric_msg_put_u32(&w, TXN_PF_KIND, TXN_PROXY_WRITE);
		fabric_msg_put_bytes(&w, TXN_PF_NS, "n", 1);
		fabric_msg_put_bytes(&w, TXN_PF_KEY, "k", 1);
		fabric_msg_put_u32(&w, TXN_PF_W_FLAGS, TXN_CREATE_ONLY);
		fabric_msg_put_u32(&w, TXN_PF_W_SET, 0);
		assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), 0);
		assert_int_equal(d.id.seq, 0);
		assert_false(d.retry);
		txn_proxy_req_release(&d);
		for (int i = 0; i < 4; i++) {
			struct fabric_msg_writer b = w;

			b.buf = bad[i];
			memcpy(bad[i], mb, w.len);
			if (i < 2)
				fabric_msg_put_bytes(&b, TXN_PF_OP_ID, id, i == 0 ? 15 : 17);
			else if (i == 2)
				fabric_msg_put_bytes(&b, TXN_PF_OP_ID, id0, 16);
			else
				fabric_msg_put_u32(&b, TXN_PF_RETRY, 1);
			assert_int_equal(b.err, 0);
			assert_int_equal(txn_proxy_req_decode(bad[i], b.len, &d), -EBADMSG);
		}
		fabric_msg_put_bytes(&w, TXN_PF_OP_ID, id, 16);
		fabric_msg_put_u32(&w, TXN_PF_RETRY, 1);
		assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), 0);
		assert_int_equal(d.id.node, 2);
		assert_int_equal(d.id.seq, 9);
		assert_true(d.retry);
		assert_false(d.take_version);
		assert_int_equal(d.w.flags, TXN_CREATE_ONLY);
		txn_proxy_req_release(&d);
		/* the version asked back: 1 on a write only */
		{
			struct fabric_msg_writer b = w;

			b.buf = bad[0];
			memcpy(bad[0], mb, w.len);
			fabric_msg_put_u32(&b, TXN_PF_TAKE_VERSION, 2);
			assert_int_equal(txn_proxy_req_decode(bad[0], b.len, &d), -EBADMSG);
		}
		fabric_msg_put_u32(&w, TXN_PF_TAKE_VERSION, 1);
		assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), 0);
		assert_true(d.take_version);
		txn_proxy_req_release(&d);
		mb[2 + 7 + 3] = TXN_PROXY_DELETE;   /* on a delete (refused before its write fields are looked at) */
		assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), -EBADMSG);
		mb[2 + 7 + 3] = TXN_PROXY_WRITE;
	}
	{	/* write fields on a delete */
		MSG(TXN_MSG_PROXY);
		fabric_msg_put_u32(&w, TXN_PF_KIND, TXN_PROXY_DELETE);
		fabric_msg_put_bytes(&w, TXN_PF_NS, "n", 1);
		fabric_msg_put_bytes(&w, TXN_PF_KEY, "k", 1);
		fabric_msg_put_bytes(&w, TXN_PF_FILE, "x", 1);
		assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), -EBADMSG);
	}
	{	/* a write without its flags; a rename without its target */
		MSG(TXN_MSG_PROXY);
		fabric_msg_put_u32(&w, TXN_PF_KIND, TXN_PROXY_WRITE);
		fabric_msg_put_bytes(&w, TXN_PF_NS, "n", 1);
		fabric_msg_put_bytes(&w, TXN_PF_KEY, "k", 1);
		assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), -EBADMSG);
		mb[2 + 7 + 3] = TXN_PROXY_RENAME;   /* type, field header, the kind (u32 BE): its last byte */
		assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), -EBADMSG);
	}
	{	/* a write saying it sets the mode without the mode; unknown flags */
		MSG(TXN_MSG_PROXY);
		fabric_msg_put_u32(&w, TXN_PF_KIND, TXN_PROXY_WRITE);
		fabric_msg_put_bytes(&w, TXN_PF_NS, "n", 1);
		fabric_msg_put_bytes(&w, TXN_PF_KEY, "k", 1);
		fabric_msg_put_u32(&w, TXN_PF_W_FLAGS, 0);
		fabric_msg_put_u32(&w, TXN_PF_W_SET, TXN_PW_MODE);
		assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), -EBADMSG);
		fabric_msg_put_u32(&w, TXN_PF_MODE, 0600);
		assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), 0);
		txn_proxy_req_release(&d);
		fabric_msg_put_u32(&w, TXN_PF_UID, 1);   /* a value not announced */
		assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), -EBADMSG);
	}
	{	/* bins that do not parse: a name too long, an unknown type, a length past the end */
		static const uint8_t long_name[] = { 16, 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a',
		    'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 0, 1, 0, 0, 0, 0, 0, 0, 0, 0 };
		static const uint8_t bad_type[] = { 1, 'a', 0, 9, 0,0,0,0,0,0,0,0 };
		static const uint8_t past_end[] = { 1, 'a', 0, BIN_BLOB, 200, 0, 0, 0, 'x' };
		static const uint8_t bad_flag[] = { 1, 'a', 0x80, BIN_INTEGER, 0,0,0,0,0,0,0,0 };
		const uint8_t *cases[] = { long_name, bad_type, past_end, bad_flag };
		size_t lens[] = { sizeof(long_name), sizeof(bad_type), sizeof(past_end), sizeof(bad_flag) };

		for (int i = 0; i < 4; i++) {
			MSG(TXN_MSG_PROXY);
			fabric_msg_put_u32(&w, TXN_PF_KIND, TXN_PROXY_WRITE);
			fabric_msg_put_bytes(&w, TXN_PF_NS, "n", 1);
			fabric_msg_put_bytes(&w, TXN_PF_KEY, "k", 1);
			fabric_msg_put_u32(&w, TXN_PF_W_FLAGS, 0);
			fabric_msg_put_u32(&w, TXN_PF_W_SET, 0);
			fabric_msg_put_bytes(&w, TXN_PF_BINS, cases[i], lens[i]);
			assert_int_equal(txn_proxy_req_decode(mb, w.len, &d), -EBADMSG);
		}
	}
	/* not a message at all */
	assert_int_equal(txn_proxy_req_decode((const uint8_t *)"\x00", 1, &d), -EBADMSG);
}

static void
test_proxy_answer_roundtrip_and_malformed(void **state)
{
	struct record_attr a = { .size = 12345, .has_meta = true, .mode = 0755, .uid = 7, .gid = 8,
	    .mtime_ns = -1, .atime_ns = 99, .ino = 0xdeadbeefcafe, .last_update_ms = 1234567890123,
	    .generation = 65535, .void_time = 77, .partition = 4095, .damaged = true }, b;
	uint8_t buf[512];
	const uint8_t *rec;
	size_t len, rec_len;
	bool has_attr;

	(void)state;
	memset(a.digest.bytes, 0xab, sizeof(a.digest.bytes));
	assert_int_equal(txn_proxy_ans_encode(&a, (const uint8_t *)"flat", 4, buf, sizeof(buf), &len), 0);
	assert_int_equal(txn_proxy_ans_decode(buf, len, &has_attr, &b, &rec, &rec_len), 0);
	assert_true(has_attr);
	assert_memory_equal(&a, &b, sizeof(a));
	assert_int_equal(rec_len, 4);
	assert_memory_equal(rec, "flat", 4);
	for (size_t cut = 0; cut < len; cut++)
		if (!at_boundary(buf, len, cut))
			assert_int_equal(txn_proxy_ans_decode(buf, cut, &has_attr, &b, &rec, &rec_len),
			    -EBADMSG);
	/* empty answer: neither */
	assert_int_equal(txn_proxy_ans_encode(NULL, NULL, 0, buf, sizeof(buf), &len), 0);
	assert_int_equal(txn_proxy_ans_decode(buf, len, &has_attr, &b, &rec, &rec_len), 0);
	assert_false(has_attr);
	assert_null(rec);
	/* an attribute of the wrong size, a partition out of range */
	{
		MSG(TXN_MSG_ANSWER);
		fabric_msg_put_bytes(&w, TXN_AF_ATTR, "short", 5);
		assert_int_equal(txn_proxy_ans_decode(mb, w.len, &has_attr, &b, &rec, &rec_len), -EBADMSG);
	}
	a.partition = 4096;
	assert_int_equal(txn_proxy_ans_encode(&a, NULL, 0, buf, sizeof(buf), &len), 0);
	assert_int_equal(txn_proxy_ans_decode(buf, len, &has_attr, &b, &rec, &rec_len), -EBADMSG);
	/* a write's answer with its version handed back; none in the others */
	a.partition = 17;
	assert_int_equal(txn_proxy_ans_encode_version(&a, (const uint8_t *)"replica msg", 11, buf,
	    sizeof(buf), &len), 0);
	assert_int_equal(txn_proxy_ans_decode(buf, len, &has_attr, &b, &rec, &rec_len), 0);
	assert_true(has_attr);
	assert_memory_equal(&a, &b, sizeof(a));
	assert_null(rec);
	assert_int_equal(txn_proxy_ans_version(buf, len, &rec, &rec_len), 0);
	assert_int_equal(rec_len, 11);
	assert_memory_equal(rec, "replica msg", 11);
	for (size_t cut = 0; cut < len; cut++)
		if (!at_boundary(buf, len, cut))
			assert_int_equal(txn_proxy_ans_version(buf, cut, &rec, &rec_len), -EBADMSG);
	assert_int_equal(txn_proxy_ans_encode(&a, NULL, 0, buf, sizeof(buf), &len), 0);
	assert_int_equal(txn_proxy_ans_version(buf, len, &rec, &rec_len), -ENOENT);
	{
		MSG(TXN_MSG_ANSWER);
		fabric_msg_put_u32(&w, TXN_AF_VERSION, 1);   /* the wrong type */
		assert_int_equal(txn_proxy_ans_version(mb, w.len, &rec, &rec_len), -EBADMSG);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_proxy_request_roundtrip),
		cmocka_unit_test(test_proxy_request_malformed),
		cmocka_unit_test(test_proxy_answer_roundtrip_and_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
