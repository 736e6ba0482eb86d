/*
 * heartbeat_pulse.c - the pulse codec: what a heartbeat carries (cluster.h,
 * docs/cluster.md).  Apart from heartbeat.c so that the decoder, which
 * reads bytes from other nodes, can be fuzzed without threads or sockets
 * (tests/fuzz/fuzz_fabric_msg.c).
 *
 * The adjacency list is one BYTES field of entries: u64 node id (big-
 * endian), u8 n, n bytes of "ip:port".  One field rather than one per node:
 * a field id per entry would break "each id once" for consumers.
 */
#include <errno.h>
#include <string.h>

#include "cluster.h"

static int
address_copy(char *dst, size_t cap, const uint8_t *src, size_t len)
{
	if (len == 0 || len >= cap || memchr(src, '\0', len) != NULL)
		return -EBADMSG;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return 0;
}

int
heartbeat_pulse_decode(const struct fabric_msg *m, struct heartbeat_pulse *p)
{
	const uint8_t *addr, *adj;
	size_t alen, adjlen, off = 0;
	uint32_t leaving = 0;
	int rc;

	if (m->type != FABRIC_MSG_HEARTBEAT ||
	    fabric_msg_get_u64(m, HEARTBEAT_FIELD_NODE_ID, &p->node_id) != 0 || p->node_id == 0 ||
	    fabric_msg_get_bytes(m, HEARTBEAT_FIELD_ADDRESS, &addr, &alen) != 0 ||
	    address_copy(p->address, sizeof(p->address), addr, alen) != 0 ||
	    fabric_msg_get_u64(m, HEARTBEAT_FIELD_CLUSTER_KEY, &p->cluster_key) != 0 ||
	    fabric_msg_get_bytes(m, HEARTBEAT_FIELD_ADJACENCY, &adj, &adjlen) != 0)
		return -EBADMSG;
	/* optional (absent: an ordinary pulse, as from a node without it) */
	rc = fabric_msg_get_u32(m, HEARTBEAT_FIELD_LEAVING, &leaving);
	if ((rc != 0 && rc != -ENOENT) || leaving > 1)
		return -EBADMSG;
	p->leaving = leaving == 1;
	p->n_adjacent = 0;
	while (off < adjlen) {
		struct heartbeat_adjacent *a = &p->adjacent[p->n_adjacent];
		uint8_t n;

		if (p->n_adjacent == CLUSTER_NODES_MAX || adjlen - off < 9)
			return -EBADMSG;
		a->node_id = 0;
		for (int k = 0; k < 8; k++)
			a->node_id = a->node_id << 8 | adj[off + (size_t)k];
		n = adj[off + 8];
		if (adjlen - off - 9 < n || a->node_id == 0 ||
		    address_copy(a->address, sizeof(a->address), adj + off + 9, n) != 0)
			return -EBADMSG;
		off += 9 + (size_t)n;
		p->n_adjacent++;
	}
	return 0;
}

int
heartbeat_pulse_encode(const struct heartbeat_pulse *p, struct fabric_msg_writer *w, uint8_t *buf,
    size_t cap)
{
	uint8_t adj[CLUSTER_NODES_MAX * (8 + 1 + 63)];
	size_t alen = 0;
	unsigned i;

	fabric_msg_writer_init(w, buf, cap, FABRIC_MSG_HEARTBEAT);
	fabric_msg_put_u64(w, HEARTBEAT_FIELD_NODE_ID, p->node_id);
	fabric_msg_put_bytes(w, HEARTBEAT_FIELD_ADDRESS, p->address, strlen(p->address));
	fabric_msg_put_u64(w, HEARTBEAT_FIELD_CLUSTER_KEY, p->cluster_key);
	for (i = 0; i < p->n_adjacent && i < CLUSTER_NODES_MAX; i++) {
		size_t n = strnlen(p->adjacent[i].address, 63);

		for (int k = 0; k < 8; k++)
			adj[alen + (size_t)k] = (uint8_t)(p->adjacent[i].node_id >> (56 - 8 * k));
		adj[alen + 8] = (uint8_t)n;
		memcpy(adj + alen + 9, p->adjacent[i].address, n);
		alen += 9 + n;
	}
	fabric_msg_put_bytes(w, HEARTBEAT_FIELD_ADJACENCY, adj, alen);
	if (p->leaving)
		fabric_msg_put_u32(w, HEARTBEAT_FIELD_LEAVING, 1);
	return w->err;
}
