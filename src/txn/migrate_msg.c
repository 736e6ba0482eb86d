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

	if (nl < 1 || nl > MIGRATE_MSG_NS_MAX || kind < MIGRATE_MSG_EXCHANGE || kind > MIGRATE_MSG_PARTS)
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

	if (kind == MIGRATE_MSG_EXCHANGE || kind == MIGRATE_MSG_INSERT || kind == MIGRATE_MSG_PARTS ||
	    pid >= MIGRATE_MSG_PARTITIONS)
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
migrate_msg_encode_parts(uint8_t *buf, size_t cap, uint64_t cluster_key, const char *ns, size_t *count_off)
{
	int hl = migrate_msg_encode_header(buf, cap, MIGRATE_MSG_PARTS, cluster_key, ns);

	if (hl < 0)
		return hl;
	if (cap - (size_t)hl < 2)
		return -EMSGSIZE;
	le_put16(buf + hl, 0);
	*count_off = (size_t)hl;
	return hl + 2;
}

int
migrate_msg_encode_part_head(uint8_t *buf, size_t cap, uint32_t pid, uint8_t flags, size_t *n_off)
{
	if (pid >= MIGRATE_MSG_PARTITIONS ||
	    (flags & ~(MIGRATE_MSG_PART_FIRST | MIGRATE_MSG_PART_LAST)) != 0)
		return -EINVAL;
	if (cap < 9)
		return -EMSGSIZE;
	le_put32(buf, pid);
	buf[4] = flags;
	le_put32(buf + 5, 0);
	*n_off = 5;
	return 9;
}

void
migrate_msg_parts_count(uint8_t *buf, size_t count_off, uint32_t count)
{
	le_put16(buf + count_off, (uint16_t)count);
}

int
migrate_msg_encode_parts_answer(uint8_t *buf, size_t cap, const int *results, uint32_t count)
{
	if (count < 1 || count > MIGRATE_MSG_PARTS_MAX)
		return -EINVAL;
	if (cap < 4 * (size_t)count)
		return -EMSGSIZE;
	for (uint32_t i = 0; i < count; i++) {
		if (results[i] > 0 || results[i] < -65535)
			return -EINVAL;
		le_put32(buf + 4 * i, (uint32_t)-results[i]);
	}
	return (int)(4 * count);
}

int
migrate_msg_decode_parts_answer(const uint8_t *buf, size_t len, uint32_t count, int *results)
{
	if (count < 1 || count > MIGRATE_MSG_PARTS_MAX || len != 4 * (size_t)count)
		return -EBADMSG;
	for (uint32_t i = 0; i < count; i++) {
		uint32_t e = le_get32(buf + 4 * i);

		if (e > 65535)
			return -EBADMSG;
		results[i] = -(int)e;
	}
	return 0;
}

/* The records of a section or an INSERT: n of them fill [p, p + len)
 * exactly?  The bytes they take, or 0 when not. */
static size_t
records_span(const uint8_t *p, size_t len, uint32_t n)
{
	size_t q = 0;

	for (uint32_t i = 0; i < n; i++) {
		uint32_t rl;

		if (len - q < 4)
			return 0;
		rl = le_get32(p + q);
		q += 4;
		if (rl == 0 || len - q < rl)
			return 0;
		q += rl;
	}
	return q;
}

/* A PARTS section at p (len bytes left): its size, or 0 when malformed. */
static size_t
part_span(const uint8_t *p, size_t len, struct migrate_msg *part)
{
	size_t r;

	if (len < 9)
		return 0;
	part->pid = le_get32(p);
	part->flags = p[4];
	part->n = le_get32(p + 5);
	if (part->pid >= MIGRATE_MSG_PARTITIONS ||
	    (part->flags & ~(MIGRATE_MSG_PART_FIRST | MIGRATE_MSG_PART_LAST)) != 0 ||
	    part->n > MIGRATE_MSG_RECORDS_MAX || (part->n == 0 && !(part->flags & MIGRATE_MSG_PART_LAST)))
		return 0;
	r = records_span(p + 9, len - 9, part->n);
	if (r == 0 && part->n > 0)
		return 0;
	part->payload = p + 9;
	part->payload_len = r;
	return 9 + r;
}

int
migrate_msg_part_next(const struct migrate_msg *m, size_t *off, struct migrate_msg *part)
{
	size_t s;

	if (m->kind != MIGRATE_MSG_PARTS || *off >= m->payload_len)
		return 0;
	memset(part, 0, sizeof(*part));
	part->kind = MIGRATE_MSG_PARTS;
	part->cluster_key = m->cluster_key;
	memcpy(part->ns, m->ns, sizeof(part->ns));
	s = part_span(m->payload + *off, m->payload_len - *off, part);
	if (s == 0)   /* the decoder checked every section: cannot happen */
		return 0;
	*off += s;
	return 1;
}

int
migrate_msg_decode(const uint8_t *buf, size_t len, struct migrate_msg *out)
{
	size_t off, nl;

	memset(out, 0, sizeof(*out));
	if (len < 11 || buf[0] != MIGRATE_MSG_VERSION)
		return -EBADMSG;
	out->kind = buf[1];
	if (out->kind < MIGRATE_MSG_EXCHANGE || out->kind > MIGRATE_MSG_PARTS)
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
	if (out->kind == MIGRATE_MSG_PARTS) {
		size_t p = 0;

		if (len - off < 2)
			return -EBADMSG;
		out->n = le_get16(buf + off);
		off += 2;
		if (out->n < 1 || out->n > MIGRATE_MSG_PARTS_MAX)
			return -EBADMSG;
		out->payload = buf + off;
		out->payload_len = len - off;
		for (uint32_t i = 0; i < out->n; i++) {
			struct migrate_msg part;
			size_t s = part_span(out->payload + p, out->payload_len - p, &part);

			if (s == 0)
				return -EBADMSG;
			p += s;
		}
		return p == out->payload_len ? 0 : -EBADMSG;
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
	size_t p = records_span(out->payload, out->payload_len, out->n);

	return p != 0 && p == out->payload_len ? 0 : -EBADMSG;
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
