/*
 * rpc_msg.c - the codec of rpc messages (rpc.h, docs/cluster.md "RPC").
 * Apart from rpc.c so that the decoder, which reads bytes from other
 * nodes, is fuzzed without threads (tests/fuzz/fuzz_fabric_msg.c).
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "rpc.h"

/* An optional bytes field: absent is empty. */
static int
get_body(const struct fabric_msg *m, struct rpc_msg *r)
{
	int rc = fabric_msg_get_bytes(m, RPC_FIELD_BODY, &r->body, &r->body_len);

	if (rc == -ENOENT) {
		r->body = NULL;
		r->body_len = 0;
		return 0;
	}
	if (rc != 0 || r->body_len > RPC_BODY_MAX)
		return -EBADMSG;
	return 0;
}

static bool
request_ok(const struct rpc_msg *r)
{
	return r->op >= 1 && r->op < RPC_OPS_MAX && r->budget_ms >= 1 && r->budget_ms <= RPC_BUDGET_MAX_MS;
}

static bool
answer_ok(const struct rpc_msg *r)
{
	return r->status <= RPC_ERRNO_MAX && r->err <= RPC_ERRNO_MAX;
}

int
rpc_msg_decode(const struct fabric_msg *m, struct rpc_msg *r)
{
	memset(r, 0, sizeof(*r));
	if (m->type != FABRIC_MSG_RPC ||
	    fabric_msg_get_u32(m, RPC_FIELD_KIND, &r->kind) != 0 ||
	    fabric_msg_get_u64(m, RPC_FIELD_INCARNATION, &r->incarnation) != 0 || r->incarnation == 0 ||
	    fabric_msg_get_u64(m, RPC_FIELD_REQUEST_ID, &r->request_id) != 0 || r->request_id == 0)
		return -EBADMSG;
	switch (r->kind) {
	case RPC_KIND_REQUEST:
		if (fabric_msg_get_u32(m, RPC_FIELD_OP, &r->op) != 0 ||
		    fabric_msg_get_u32(m, RPC_FIELD_BUDGET_MS, &r->budget_ms) != 0 || !request_ok(r))
			return -EBADMSG;
		break;
	case RPC_KIND_ANSWER:
		if (fabric_msg_get_u32(m, RPC_FIELD_STATUS, &r->status) != 0)
			return -EBADMSG;
		if (r->status == 0 && fabric_msg_get_u32(m, RPC_FIELD_ERRNO, &r->err) != 0)
			return -EBADMSG;
		if (!answer_ok(r))
			return -EBADMSG;
		break;
	default:
		return -EBADMSG;
	}
	if (fabric_msg_get_u64(m, RPC_FIELD_PEER_INCARNATION, &r->peer_incarnation) == -EBADMSG)
		return -EBADMSG;
	return get_body(m, r);
}

static int
encode(const struct rpc_msg *r, struct fabric_msg_writer *w, uint8_t *buf, size_t cap, bool ref)
{
	if (r->incarnation == 0 || r->request_id == 0 || r->body_len > RPC_BODY_MAX ||
	    r->body2_len > RPC_BODY_MAX - r->body_len ||
	    (r->kind == RPC_KIND_REQUEST && !request_ok(r)) ||
	    (r->kind == RPC_KIND_ANSWER && !answer_ok(r)) ||
	    (r->kind != RPC_KIND_REQUEST && r->kind != RPC_KIND_ANSWER))
		return -EINVAL;
	fabric_msg_writer_init(w, buf, cap, FABRIC_MSG_RPC);
	fabric_msg_put_u32(w, RPC_FIELD_KIND, r->kind);
	fabric_msg_put_u64(w, RPC_FIELD_INCARNATION, r->incarnation);
	fabric_msg_put_u64(w, RPC_FIELD_REQUEST_ID, r->request_id);
	if (r->kind == RPC_KIND_REQUEST) {
		fabric_msg_put_u32(w, RPC_FIELD_OP, r->op);
		fabric_msg_put_u32(w, RPC_FIELD_BUDGET_MS, r->budget_ms);
	} else {
		fabric_msg_put_u32(w, RPC_FIELD_STATUS, r->status);
		if (r->status == 0)
			fabric_msg_put_u32(w, RPC_FIELD_ERRNO, r->err);
	}
	if (r->peer_incarnation != 0)
		fabric_msg_put_u64(w, RPC_FIELD_PEER_INCARNATION, r->peer_incarnation);
	if (r->body_len + r->body2_len > 0 && ref) {
		fabric_msg_put_bytes_ref2(w, RPC_FIELD_BODY, r->body, r->body_len, r->body2,
		    r->body2_len);
	} else if (r->body2_len > 0) {
		uint8_t *p = fabric_msg_put_space(w, RPC_FIELD_BODY, r->body_len + r->body2_len);

		if (p != NULL) {
			memcpy(p, r->body, r->body_len);
			memcpy(p + r->body_len, r->body2, r->body2_len);
		}
	} else if (r->body_len > 0) {
		fabric_msg_put_bytes(w, RPC_FIELD_BODY, r->body, r->body_len);
	}
	return w->err;
}

int
rpc_msg_encode(const struct rpc_msg *r, struct fabric_msg_writer *w, uint8_t *buf, size_t cap)
{
	return encode(r, w, buf, cap, false);
}

int
rpc_msg_encode_ref(const struct rpc_msg *r, struct fabric_msg_writer *w, uint8_t *buf, size_t cap)
{
	return encode(r, w, buf, cap, true);
}
