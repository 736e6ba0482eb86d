/*
 * fuzz_rpc_msg.c - fuzz target for the rpc message decoder (rpc_msg.c):
 * the bytes another node sends in a FABRIC_MSG_RPC message, after the
 * fabric has checked the frame.  The input is one message (u16 type, then
 * fields); whatever its type it is decoded as an rpc message.  A message
 * that decodes must satisfy the decoder's promises (ranges, body inside
 * the input) and encode back to one that decodes to the same values; every
 * other input must be refused with -EBADMSG, never read outside the input
 * (ASan).
 *
 * Built two ways: with clang -fsanitize=fuzzer by scripts/fuzz.sh (target
 * rpc_msg), and with tests/fuzz/fuzz_driver.c as a plain program that
 * `make check` runs: the seeds below, then mutations of them.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/rpc.h"
#include "fabric/fabric.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t fuzz_seed(unsigned i, uint8_t *buf, size_t cap);
const char fuzz_target_name[] = "fuzz_rpc_msg";

#define fuzz_assert(cond) do { \
		if (!(cond)) { \
			fprintf(stderr, "fuzz_rpc_msg: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t again[RPC_BODY_MAX + 128];
	struct fabric_msg m, m2;
	struct rpc_msg r, r2;
	struct fabric_msg_writer w;
	int rc;

	if (fabric_msg_decode(data, size, &m) != 0)
		return 0;
	m.type = FABRIC_MSG_RPC;
	rc = rpc_msg_decode(&m, &r);
	fuzz_assert(rc == 0 || rc == -EBADMSG);
	if (rc != 0)
		return 0;
	fuzz_assert(r.kind == RPC_KIND_REQUEST || r.kind == RPC_KIND_ANSWER);
	fuzz_assert(r.incarnation != 0 && r.request_id != 0);
	fuzz_assert(r.body_len <= RPC_BODY_MAX);
	if (r.body_len > 0)
		fuzz_assert(r.body >= data && r.body + r.body_len <= data + size);
	if (r.kind == RPC_KIND_REQUEST)
		fuzz_assert(r.op >= 1 && r.op < RPC_OPS_MAX && r.budget_ms >= 1 &&
		    r.budget_ms <= RPC_BUDGET_MAX_MS);
	else
		fuzz_assert(r.status <= RPC_ERRNO_MAX && r.err <= RPC_ERRNO_MAX);
	/* what decodes encodes back to the same values */
	fuzz_assert(rpc_msg_encode(&r, &w, again, sizeof(again)) == 0);
	fuzz_assert(fabric_msg_decode(again, w.len, &m2) == 0);
	fuzz_assert(rpc_msg_decode(&m2, &r2) == 0);
	fuzz_assert(r2.kind == r.kind && r2.incarnation == r.incarnation &&
	    r2.request_id == r.request_id && r2.op == r.op && r2.budget_ms == r.budget_ms &&
	    r2.status == r.status && r2.body_len == r.body_len);
	if (r.status == 0)
		fuzz_assert(r2.err == r.err);
	if (r.body_len > 0)
		fuzz_assert(memcmp(r2.body, r.body, r.body_len) == 0);
	return 0;
}

/* Valid requests and answers of every shape, and a few near misses. */
size_t
fuzz_seed(unsigned i, uint8_t *buf, size_t cap)
{
	static const uint8_t body[] = "a request body, with some bytes \x00\x01\xff in it";
	struct rpc_msg r = { .incarnation = 0x1122334455667788ull, .request_id = ((uint64_t)i << 20) | 3 };
	struct fabric_msg_writer w;

	switch (i) {
	case 0: case 1: case 2: case 3:
		r.kind = RPC_KIND_REQUEST;
		r.op = i == 0 ? RPC_OP_PING : RPC_OP_TEST + i;
		r.budget_ms = i == 3 ? RPC_BUDGET_MAX_MS : 1000;
		r.body = body;
		r.body_len = i == 1 ? 0 : i == 2 ? 1 : sizeof(body);
		break;
	case 4: case 5: case 6: case 7:
		r.kind = RPC_KIND_ANSWER;
		r.status = i == 5 ? EAGAIN : i == 6 ? EOPNOTSUPP : 0;
		r.err = i == 7 ? 20001 : i == 4 ? ENOENT : 0;
		r.body = body;
		r.body_len = i == 4 ? sizeof(body) : 0;
		break;
	case 8: /* fields of both kinds, and an unknown field id a newer node may add */
		fabric_msg_writer_init(&w, buf, cap, FABRIC_MSG_RPC);
		fabric_msg_put_u32(&w, RPC_FIELD_KIND, RPC_KIND_ANSWER);
		fabric_msg_put_u64(&w, RPC_FIELD_INCARNATION, 5);
		fabric_msg_put_u64(&w, RPC_FIELD_REQUEST_ID, 6);
		fabric_msg_put_u32(&w, RPC_FIELD_OP, 7);
		fabric_msg_put_u32(&w, RPC_FIELD_STATUS, 0);
		fabric_msg_put_u32(&w, RPC_FIELD_ERRNO, 5);
		fabric_msg_put_bytes(&w, 99, body, 8);
		return w.err == 0 ? w.len : 0;
	case 9: /* a request without its budget */
		fabric_msg_writer_init(&w, buf, cap, FABRIC_MSG_RPC);
		fabric_msg_put_u32(&w, RPC_FIELD_KIND, RPC_KIND_REQUEST);
		fabric_msg_put_u64(&w, RPC_FIELD_INCARNATION, 5);
		fabric_msg_put_u64(&w, RPC_FIELD_REQUEST_ID, 6);
		fabric_msg_put_u32(&w, RPC_FIELD_OP, 7);
		fabric_msg_put_bytes(&w, RPC_FIELD_BODY, body, sizeof(body));
		return w.err == 0 ? w.len : 0;
	default:
		return 0;
	}
	return rpc_msg_encode(&r, &w, buf, cap) == 0 ? w.len : 0;
}
