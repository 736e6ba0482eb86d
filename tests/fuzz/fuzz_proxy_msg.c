/*
 * fuzz_proxy_msg.c - fuzz target for the data path's decoders
 * (src/txn/remote_msg.c): the body of a proxied operation or of its answer
 * as another node sends it.  The input is decoded as a proxy request and
 * as an answer.  What decodes must keep the decoder's promises (kinds and
 * lengths in range, pointers inside the input) and encode back to a
 * message that decodes to the same values; everything else must be
 * -EBADMSG, never a read outside the input (ASan).
 *
 * Built two ways: with clang -fsanitize=fuzzer by scripts/fuzz.sh (target
 * proxy_msg), and with tests/fuzz/fuzz_driver.c as a plain program that
 * `make check` runs: the seeds below, then mutations of them.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fabric/fabric.h"
#include "txn/remote.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t fuzz_seed(unsigned i, uint8_t *buf, size_t cap);
const char fuzz_target_name[] = "fuzz_proxy_msg";

#define fuzz_assert(cond) do { \
		if (!(cond)) { \
			fprintf(stderr, "fuzz_proxy_msg: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

static int
inside(const void *p, size_t n, const uint8_t *data, size_t size)
{
	return n == 0 || ((const uint8_t *)p >= data && (const uint8_t *)p + n <= data + size);
}

static void
same_key(const struct txn_key *a, const struct txn_key *b)
{
	fuzz_assert(a->set_len == b->set_len && a->key_len == b->key_len);
	fuzz_assert(a->set_len == 0 || memcmp(a->set, b->set, a->set_len) == 0);
	fuzz_assert(a->key_len == 0 || memcmp(a->key, b->key, a->key_len) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct txn_proxy_req q, q2;
	struct record_attr a, a2;
	const uint8_t *rec, *rec2;
	size_t rec_len, rec_len2, len;
	bool has_attr, has_attr2;
	uint8_t *buf;
	int rc;

	rc = txn_proxy_req_decode(data, size, &q);
	fuzz_assert(rc == 0 || rc == -EBADMSG || rc == -ENOMEM);
	if (rc == 0) {
		fuzz_assert(q.kind >= TXN_PROXY_STAT && q.kind <= TXN_PROXY_DUPRES);
		fuzz_assert((q.record != NULL) == (q.kind == TXN_PROXY_RENAME_IN));
		fuzz_assert(inside(q.record, q.record_len, data, size));
		fuzz_assert(q.ns_len > 0 && inside(q.ns, q.ns_len, data, size));
		fuzz_assert(inside(q.k.key, q.k.key_len, data, size));
		fuzz_assert(inside(q.k.set, q.k.set_len, data, size));
		fuzz_assert(q.has_to == (q.kind == TXN_PROXY_RENAME));
		fuzz_assert(q.has_write == (q.kind == TXN_PROXY_WRITE));
		if (q.has_write && q.w.set_file)
			fuzz_assert(inside(q.w.file_data, q.w.file_len, data, size));
		/* an operation id on a write, delete or rename only; a retry mark
		 * only with one */
		fuzz_assert(q.id.seq == 0 || q.kind == TXN_PROXY_WRITE || q.kind == TXN_PROXY_DELETE ||
		    q.kind == TXN_PROXY_RENAME || q.kind == TXN_PROXY_RENAME_IN);
		fuzz_assert(!q.retry || q.id.seq != 0);
		fuzz_assert(!q.take_version || q.kind == TXN_PROXY_WRITE);
		for (size_t i = 0; i < q.w.n_bins; i++) {
			fuzz_assert(q.w.bins[i].name_len >= 1 && q.w.bins[i].name_len <= RECORD_BIN_NAME_MAX);
			fuzz_assert(inside(q.w.bins[i].name, q.w.bins[i].name_len, data, size));
			fuzz_assert(inside(q.w.bins[i].data, q.w.bins[i].len, data, size));
		}
		/* what decodes encodes back to the same values */
		fuzz_assert(txn_proxy_req_encode(&q, &buf, &len) == 0);
		fuzz_assert(txn_proxy_req_decode(buf, len, &q2) == 0);
		fuzz_assert(q2.kind == q.kind && q2.ns_len == q.ns_len &&
		    memcmp(q2.ns, q.ns, q.ns_len) == 0);
		fuzz_assert(q2.id.node == q.id.node && q2.id.seq == q.id.seq && q2.retry == q.retry &&
		    q2.take_version == q.take_version);
		same_key(&q.k, &q2.k);
		if (q.has_to) {
			same_key(&q.to, &q2.to);
			fuzz_assert(q.rename_flags == q2.rename_flags);
		}
		fuzz_assert(q2.record_len == q.record_len &&
		    (q.record_len == 0 || memcmp(q2.record, q.record, q.record_len) == 0) &&
		    memcmp(&q2.record_attr, &q.record_attr, sizeof(q.record_attr)) == 0);
		fuzz_assert(q2.has_write == q.has_write && q2.w.flags == q.w.flags &&
		    q2.w.set_file == q.w.set_file && q2.w.file_len == q.w.file_len &&
		    q2.w.size == q.w.size && q2.w.mode == q.w.mode && q2.w.ttl == q.w.ttl &&
		    q2.w.mtime_ns == q.w.mtime_ns && q2.w.n_bins == q.w.n_bins);
		txn_proxy_req_release(&q2);
		free(buf);
	}
	txn_proxy_req_release(&q);

	rc = txn_proxy_ans_decode(data, size, &has_attr, &a, &rec, &rec_len);
	fuzz_assert(rc == 0 || rc == -EBADMSG);
	if (rc == 0) {
		fuzz_assert(rec == NULL || inside(rec, rec_len, data, size));
		if (has_attr)
			fuzz_assert(a.partition < PARTITION_COUNT);
		len = rec_len + 256;
		buf = malloc(len);
		fuzz_assert(buf != NULL);
		fuzz_assert(txn_proxy_ans_encode(has_attr ? &a : NULL, rec, rec_len, buf, len, &len) == 0);
		fuzz_assert(txn_proxy_ans_decode(buf, len, &has_attr2, &a2, &rec2, &rec_len2) == 0);
		fuzz_assert(has_attr2 == has_attr && rec_len2 == rec_len && (rec == NULL) == (rec2 == NULL));
		if (has_attr)
			fuzz_assert(memcmp(&a, &a2, sizeof(a)) == 0);
		if (rec_len > 0)
			fuzz_assert(memcmp(rec, rec2, rec_len) == 0);
		free(buf);
	}
	/* a write's answer handing the version back */
	rc = txn_proxy_ans_version(data, size, &rec, &rec_len);
	fuzz_assert(rc == 0 || rc == -ENOENT || rc == -EBADMSG);
	if (rc == 0) {
		fuzz_assert(inside(rec, rec_len, data, size));
		len = rec_len + 256;
		buf = malloc(len);
		fuzz_assert(buf != NULL);
		memset(&a, 0, sizeof(a));
		fuzz_assert(txn_proxy_ans_encode_version(&a, rec, rec_len, buf, len, &len) == 0);
		fuzz_assert(txn_proxy_ans_version(buf, len, &rec2, &rec_len2) == 0);
		fuzz_assert(rec_len2 == rec_len && (rec_len == 0 || memcmp(rec, rec2, rec_len) == 0));
		free(buf);
	}
	return 0;
}

/* Requests of every kind (0..6), a write with every field and bins and an
 * operation id marked as routed again, a delete and a rename with an id,
 * answers (7, 9, 10). */
size_t
fuzz_seed(unsigned i, uint8_t *buf, size_t cap)
{
	static const struct txn_bin_op bins[] = {
		{ .name = "user.a", .name_len = 6, .flags = TXN_BIN_CREATE, .type = BIN_BLOB,
		  .data = "xattr", .len = 5 },
		{ .name = "n", .name_len = 1, .type = BIN_INTEGER, .integer = 7 },
		{ .name = "d", .name_len = 1, .type = BIN_DOUBLE, .dbl = 2.5 },
		{ .name = "gone", .name_len = 4, .flags = TXN_BIN_REMOVE },
	};
	struct txn_proxy_req q = { .ns = "test", .ns_len = 4,
	    .k = { .set = "set", .set_len = 3, .key = "key", .key_len = 3 } };
	struct record_attr a = { .size = 5, .has_meta = true, .mode = 0644, .partition = 17 };
	uint8_t *enc;
	size_t len;

	if (i < 7) {
		q.kind = TXN_PROXY_STAT + i;
		if (q.kind == TXN_PROXY_RENAME_IN) {
			q.record = (const uint8_t *)"a flat record would be here";
			q.record_len = 27;
			q.record_attr = a;
		}
		if (q.kind == TXN_PROXY_RENAME) {
			q.has_to = true;
			q.to = (struct txn_key){ .key = "new", .key_len = 3 };
			q.rename_flags = TXN_RENAME_NOREPLACE;
		}
		if (q.kind == TXN_PROXY_WRITE) {
			q.has_write = true;
			q.w = (struct txn_write){ .flags = TXN_DURABLE, .set_file = true,
			    .file_data = "content", .file_len = 7, .set_size = true, .size = 3,
			    .set_mode = true, .mode = 0600, .set_uid = true, .uid = 1, .set_gid = true,
			    .gid = 2, .set_mtime = true, .mtime_ns = 3, .set_atime = true, .atime_ns = 4,
			    .set_ttl = true, .ttl = 60, .bins = bins, .n_bins = 4 };
			q.id = (struct txn_op_id){ .node = 0xa1, .seq = 1ull << 40 };
			q.retry = true;
			q.take_version = true;
		}
		if (q.kind == TXN_PROXY_DELETE || q.kind == TXN_PROXY_RENAME)
			q.id = (struct txn_op_id){ .node = 0xb2, .seq = 5 };
		if (txn_proxy_req_encode(&q, &enc, &len) != 0 || len > cap)
			return 0;
		memcpy(buf, enc, len);
		free(enc);
		return len;
	}
	/* numbered without a gap: the seed writer stops at the first empty one */
	switch (i) {
	case 7:
		return txn_proxy_ans_encode(&a, NULL, 0, buf, cap, &len) == 0 ? len : 0;
	case 8:
		return txn_proxy_ans_encode(&a, (const uint8_t *)"record bytes", 12, buf, cap, &len) == 0
		    ? len : 0;
	case 9:
		return txn_proxy_ans_encode(NULL, NULL, 0, buf, cap, &len) == 0 ? len : 0;
	case 10:
		return txn_proxy_ans_encode_version(&a, (const uint8_t *)"a replica message", 17, buf,
		    cap, &len) == 0 ? len : 0;
	default:
		return 0;
	}
}
