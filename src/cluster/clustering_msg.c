/*
 * clustering_msg.c - the codec of clustering's proposal messages
 * (cluster.h, docs/cluster.md).  Apart from clustering.c so that the
 * decoder, which reads bytes from other nodes, is fuzzed without threads
 * (tests/fuzz/fuzz_fabric_msg.c).
 */
#include <errno.h>
#include <string.h>

#include "cluster.h"

static uint64_t
get64(const uint8_t *p)
{
	uint64_t v = 0;
	unsigned i;

	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void
put64(uint8_t *p, uint64_t v)
{
	unsigned i;

	for (i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* A succession is 1..CLUSTER_NODES_MAX ids, strictly descending, none 0. */
static bool
succession_ok(const uint64_t *s, unsigned n)
{
	unsigned i;

	if (n == 0 || n > CLUSTER_NODES_MAX || s[n - 1] == 0)
		return false;
	for (i = 1; i < n; i++)
		if (s[i] >= s[i - 1])
			return false;
	return true;
}

int
clustering_msg_decode(const struct fabric_msg *m, struct clustering_msg *c)
{
	const uint8_t *p;
	size_t len;
	unsigned i;

	memset(c, 0, sizeof(*c));
	if (m->type != FABRIC_MSG_CLUSTERING ||
	    fabric_msg_get_u32(m, CLUSTERING_FIELD_OP, &c->op) != 0 ||
	    c->op < CLUSTERING_OP_PREPARE || c->op > CLUSTERING_OP_COMMIT ||
	    fabric_msg_get_u64(m, CLUSTERING_FIELD_PROPOSAL_ID, &c->proposal_id) != 0 || c->proposal_id == 0)
		return -EBADMSG;
	if (c->op == CLUSTERING_OP_PREPARE || c->op == CLUSTERING_OP_COMMIT) {
		if (fabric_msg_get_u64(m, CLUSTERING_FIELD_CLUSTER_KEY, &c->cluster_key) != 0 ||
		    c->cluster_key == 0)
			return -EBADMSG;
	}
	if (c->op == CLUSTERING_OP_PREPARE) {
		if (fabric_msg_get_bytes(m, CLUSTERING_FIELD_SUCCESSION, &p, &len) != 0 || len % 8 != 0 ||
		    len == 0 || len / 8 > CLUSTER_NODES_MAX)
			return -EBADMSG;
		c->n = (unsigned)(len / 8);
		for (i = 0; i < c->n; i++)
			c->succession[i] = get64(p + 8 * i);
		if (!succession_ok(c->succession, c->n))
			return -EBADMSG;
	}
	return 0;
}

int
clustering_msg_encode(const struct clustering_msg *c, struct fabric_msg_writer *w, uint8_t *buf,
    size_t cap)
{
	uint8_t list[CLUSTER_NODES_MAX * 8];
	unsigned i;

	if (c->op < CLUSTERING_OP_PREPARE || c->op > CLUSTERING_OP_COMMIT || c->proposal_id == 0 ||
	    ((c->op == CLUSTERING_OP_PREPARE || c->op == CLUSTERING_OP_COMMIT) && c->cluster_key == 0) ||
	    (c->op == CLUSTERING_OP_PREPARE && !succession_ok(c->succession, c->n)))
		return -EINVAL;
	fabric_msg_writer_init(w, buf, cap, FABRIC_MSG_CLUSTERING);
	fabric_msg_put_u32(w, CLUSTERING_FIELD_OP, c->op);
	fabric_msg_put_u64(w, CLUSTERING_FIELD_PROPOSAL_ID, c->proposal_id);
	if (c->op == CLUSTERING_OP_PREPARE || c->op == CLUSTERING_OP_COMMIT)
		fabric_msg_put_u64(w, CLUSTERING_FIELD_CLUSTER_KEY, c->cluster_key);
	if (c->op == CLUSTERING_OP_PREPARE) {
		for (i = 0; i < c->n; i++)
			put64(list + 8 * i, c->succession[i]);
		fabric_msg_put_bytes(w, CLUSTERING_FIELD_SUCCESSION, list, (size_t)c->n * 8);
	}
	return w->err;
}
