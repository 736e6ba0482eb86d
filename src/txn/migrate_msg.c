/*
 * migrate_msg.c - the bodies of RPC_OP_MIGRATE (migrate_msg.h).
 */
#include <errno.h>
#include <string.h>

#include "../base/bytes.h"
#include "migrate_msg.h"

int
migrate_msg_encode_header(uint8_t *buf, size_t cap, uint8_t kind, uint64_t cluster_key, const char *ns)
{
	size_t nl = strlen(ns);

	if (nl < 1 || nl > MIGRATE_MSG_NS_MAX || kind < MIGRATE_MSG_EXCHANGE || kind > MIGRATE_MSG_RELEASE)
		return -EINVAL;
	if (cap < 11 + nl)
		return -EMSGSIZE;
	buf[0] = MIGRATE_MSG_VERSION;
	buf[1] = kind;
	le_put64(buf + 2, cluster_key);
	buf[10] = (uint8_t)nl;
	memcpy(buf + 11, ns, nl);
	return (int)(11 + nl);
}

int
migrate_msg_encode_exchange(uint8_t *buf, size_t cap, uint64_t cluster_key, const char *ns,
    const uint64_t *versions)
{
	int hl = migrate_msg_encode_header(buf, cap, MIGRATE_MSG_EXCHANGE, cluster_key, ns);

	if (hl < 0)
		return hl;
	if (cap - (size_t)hl < 8 * MIGRATE_MSG_PARTITIONS)
		return -EMSGSIZE;
	for (uint32_t p = 0; p < MIGRATE_MSG_PARTITIONS; p++)
		le_put64(buf + hl + 8 * p, versions[p]);
	return hl + 8 * MIGRATE_MSG_PARTITIONS;
}

int
migrate_msg_encode_pid(uint8_t *buf, size_t cap, uint8_t kind, uint64_t cluster_key, const char *ns,
    uint32_t pid)
{
	int hl;

	if (kind == MIGRATE_MSG_EXCHANGE || kind == MIGRATE_MSG_INSERT || pid >= MIGRATE_MSG_PARTITIONS)
		return -EINVAL;
	hl = migrate_msg_encode_header(buf, cap, kind, cluster_key, ns);
	if (hl < 0)
		return hl;
	if (cap - (size_t)hl < 4)
		return -EMSGSIZE;
	le_put32(buf + hl, pid);
	return hl + 4;
}

int
migrate_msg_encode_insert(uint8_t *buf, size_t cap, uint64_t cluster_key, const char *ns, uint32_t pid,
    size_t *count_off)
{
	int hl;

	if (pid >= MIGRATE_MSG_PARTITIONS)
		return -EINVAL;
	hl = migrate_msg_encode_header(buf, cap, MIGRATE_MSG_INSERT, cluster_key, ns);
	if (hl < 0)
		return hl;
	if (cap - (size_t)hl < 8)
		return -EMSGSIZE;
	le_put32(buf + hl, pid);
	le_put32(buf + hl + 4, 0);
	*count_off = (size_t)hl + 4;
	return hl + 8;
}

int
migrate_msg_encode_record(uint8_t *buf, size_t cap, const uint8_t *rec, uint32_t len)
{
	if (len == 0)
		return -EINVAL;
	if (cap < 4 || cap - 4 < len)
		return -EMSGSIZE;
	le_put32(buf, len);
	memcpy(buf + 4, rec, len);
	return (int)(4 + len);
}

void
migrate_msg_insert_count(uint8_t *buf, size_t count_off, uint32_t n)
{
	le_put32(buf + count_off, n);
}

int
migrate_msg_decode(const uint8_t *buf, size_t len, struct migrate_msg *out)
{
	size_t off, nl;

	memset(out, 0, sizeof(*out));
	if (len < 11 || buf[0] != MIGRATE_MSG_VERSION)
		return -EBADMSG;
	out->kind = buf[1];
	if (out->kind < MIGRATE_MSG_EXCHANGE || out->kind > MIGRATE_MSG_RELEASE)
		return -EBADMSG;
	out->cluster_key = le_get64(buf + 2);
	nl = buf[10];
	if (nl < 1 || nl > MIGRATE_MSG_NS_MAX || len - 11 < nl)
		return -EBADMSG;
	memcpy(out->ns, buf + 11, nl);
	out->ns[nl] = '\0';
	if (memchr(out->ns, '\0', nl) != NULL)
		return -EBADMSG;
	off = 11 + nl;
	if (out->kind == MIGRATE_MSG_EXCHANGE) {
		if (len - off != 8 * MIGRATE_MSG_PARTITIONS)
			return -EBADMSG;
		out->payload = buf + off;
		out->payload_len = len - off;
		return 0;
	}
	if (len - off < 4)
		return -EBADMSG;
	out->pid = le_get32(buf + off);
	off += 4;
	if (out->pid >= MIGRATE_MSG_PARTITIONS)
		return -EBADMSG;
	if (out->kind != MIGRATE_MSG_INSERT)
		return len == off ? 0 : -EBADMSG;
	if (len - off < 4)
		return -EBADMSG;
	out->n = le_get32(buf + off);
	off += 4;
	if (out->n < 1 || out->n > MIGRATE_MSG_RECORDS_MAX)
		return -EBADMSG;
	out->payload = buf + off;
	out->payload_len = len - off;
	/* every record's length within the bytes, nothing after the last */
	size_t p = 0;

	for (uint32_t i = 0; i < out->n; i++) {
		uint32_t rl;

		if (out->payload_len - p < 4)
			return -EBADMSG;
		rl = le_get32(out->payload + p);
		p += 4;
		if (rl == 0 || out->payload_len - p < rl)
			return -EBADMSG;
		p += rl;
	}
	return p == out->payload_len ? 0 : -EBADMSG;
}

uint64_t
migrate_msg_version(const struct migrate_msg *m, uint32_t pid)
{
	return le_get64(m->payload + 8 * (size_t)(pid & (MIGRATE_MSG_PARTITIONS - 1)));
}

int
migrate_msg_record_next(const struct migrate_msg *m, size_t *off, const uint8_t **rec, uint32_t *rec_len)
{
	uint32_t rl;

	if (*off >= m->payload_len)
		return 0;
	rl = le_get32(m->payload + *off);
	*rec = m->payload + *off + 4;
	*rec_len = rl;
	*off += 4 + (size_t)rl;
	return 1;
}
