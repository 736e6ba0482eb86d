/*
 * fuzz_set_msg.c - fuzz target for the decoders of the cluster's set and
 * listing bodies (src/txn/set_msg.c): what another node sends in an rpc
 * request of RPC_OP_SETS or RPC_OP_LIST, and the answer of RPC_OP_LIST.
 * The first byte picks the decoder (0: set message, 1: listing request,
 * 2: listing answer), the rest is the body.  A body that decodes must
 * keep the decoder's promises (ranges, names, partitions) and encode back
 * to the same bytes; every other input is refused with -EBADMSG, never
 * read outside the input (ASan).
 *
 * Built two ways: with clang -fsanitize=fuzzer by scripts/fuzz.sh (target
 * set_msg), and with tests/fuzz/fuzz_driver.c as a plain program that
 * `make check` runs: the seeds below, then mutations of them.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "txn/set_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t fuzz_seed(unsigned i, uint8_t *buf, size_t cap);
const char fuzz_target_name[] = "fuzz_set_msg";

#define fuzz_assert(cond) do { \
		if (!(cond)) { \
			fprintf(stderr, "fuzz_set_msg: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

static uint8_t again[LIST_MSG_ANSWER_MAX > SET_MSG_MAX ? LIST_MSG_ANSWER_MAX : SET_MSG_MAX];

static void
one_set_msg(const uint8_t *body, size_t len)
{
	struct set_msg m;
	struct set_msg_entry e;
	int rc = set_msg_decode(body, len, &m), hl;
	size_t off;
	unsigned n = 0;

	fuzz_assert(rc == 0 || rc == -EBADMSG);
	if (rc != 0)
		return;
	fuzz_assert(m.kind >= SET_MSG_MERGE && m.kind <= SET_MSG_USED_MORE);
	fuzz_assert(m.n <= SET_MSG_ENTRIES_MAX &&
	    (m.kind == SET_MSG_MERGE || m.kind >= SET_MSG_USED || m.n == 1));
	hl = set_msg_encode_header(again, sizeof(again), m.kind, m.ns, m.n);
	fuzz_assert(hl > 0);
	off = (size_t)hl;
	while (set_msg_entry_next(&m, &e)) {
		int el;

		fuzz_assert(e.len >= 1 && e.len <= SET_MSG_NAME_MAX && strlen(e.name) == e.len);
		fuzz_assert(strchr(e.name, '/') == NULL && e.mode <= 07777);
		el = set_msg_encode_entry(again + off, sizeof(again) - off, &e);
		fuzz_assert(el > 0);
		off += (size_t)el;
		n++;
	}
	fuzz_assert(n == m.n);
	fuzz_assert(off == len && memcmp(again, body, len) == 0);
}

static void
one_list_request(const uint8_t *body, size_t len)
{
	struct list_msg_request r;
	int rc = list_msg_decode_request(body, len, &r);

	fuzz_assert(rc == 0 || rc == -EBADMSG);
	if (rc != 0)
		return;
	fuzz_assert(r.partition < LIST_MSG_PARTITIONS && r.max >= 1 && r.max <= LIST_MSG_ENTRIES_MAX);
	fuzz_assert(r.set_len <= SET_MSG_NAME_MAX && strlen(r.set) == r.set_len);
	rc = list_msg_encode_request(again, sizeof(again), &r);
	fuzz_assert(rc > 0 && (size_t)rc == len && memcmp(again, body, len) == 0);
}

static void
one_list_answer(const uint8_t *body, size_t len)
{
	struct list_msg_answer a;
	struct list_msg_entry e;
	int rc = list_msg_decode_answer(body, len, &a);
	size_t off;
	unsigned n = 0;

	fuzz_assert(rc == 0 || rc == -EBADMSG);
	if (rc != 0)
		return;
	fuzz_assert(a.n <= LIST_MSG_ENTRIES_MAX);
	rc = list_msg_encode_answer_header(again, sizeof(again), a.n, a.done);
	fuzz_assert(rc == 4);
	off = 4;
	while (list_msg_entry_next(&a, &e)) {
		fuzz_assert(e.partition < LIST_MSG_PARTITIONS && strlen(e.key) == e.key_len);
		rc = list_msg_encode_entry(again + off, sizeof(again) - off, &e);
		fuzz_assert(rc > 0);
		off += (size_t)rc;
		n++;
	}
	fuzz_assert(n == a.n);
	fuzz_assert(off == len && memcmp(again, body, len) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		one_set_msg(data + 1, size - 1);
		break;
	case 1:
		one_list_request(data + 1, size - 1);
		break;
	default:
		one_list_answer(data + 1, size - 1);
		break;
	}
	return 0;
}

/* Valid bodies of each kind. */
size_t
fuzz_seed(unsigned i, uint8_t *buf, size_t cap)
{
	struct set_msg_entry se = { .name = "photos", .len = 6, .live = true, .has_meta = true,
	    .lut_ms = 123456789, .mode = 0750, .uid = 1000, .gid = 1000, .mtime_ns = 5, .atime_ns = 6 };
	struct list_msg_request r = { .ns = "test", .set = "photos", .set_len = 6, .partition = 17,
	    .started = true, .max = 64 };
	struct list_msg_entry le = { .partition = 0x0102, .key = "cat.jpg", .key_len = 7,
	    .size = 4096, .has_meta = true, .mode = 0100644, .ino = 77, .lut_ms = 9, .generation = 3 };
	int rc, n;
	size_t len;

	if (cap < 2048)
		return 0;
	buf[0] = (uint8_t)(i % 3);
	switch (i) {
	case 0: case 3:
		n = i == 0 ? 2 : 1;
		rc = set_msg_encode_header(buf + 1, cap - 1, i == 0 ? SET_MSG_MERGE : SET_MSG_CHECK_EMPTY,
		    "test", (uint16_t)n);
		len = 1 + (size_t)rc;
		for (int k = 0; k < n; k++) {
			se.live = k == 0;
			rc = set_msg_encode_entry(buf + len, cap - len, &se);
			len += (size_t)rc;
		}
		return len;
	case 1: case 4:
		r.set_len = i == 4 ? 0 : r.set_len;
		list_msg_mask_add(r.mask, 17);
		list_msg_mask_add(r.mask, 4000);
		rc = list_msg_encode_request(buf + 1, cap - 1, &r);
		return rc > 0 ? 1 + (size_t)rc : 0;
	case 2: case 5:
		n = i == 2 ? 2 : 0;
		rc = list_msg_encode_answer_header(buf + 1, cap - 1, (uint16_t)n, i == 5);
		len = 1 + (size_t)rc;
		le.digest[0] = 0x02;
		le.digest[1] = 0x01;
		for (int k = 0; k < n; k++) {
			rc = list_msg_encode_entry(buf + len, cap - len, &le);
			len += (size_t)rc;
		}
		return len;
	default:
		return 0;
	}
}
