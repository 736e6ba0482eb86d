/*
 * fabric_msg.c - the message codec: typed fields with stable ids.
 *
 * A message on the wire (docs/cluster.md, all integers big-endian):
 *   u16 type, then fields: u16 id, u8 field type, u32 length, value.
 * Every field carries its length, also the fixed-size ones, so a receiver
 * can skip a field of a type it does not know yet: ids and types can be
 * added without a protocol version change.
 *
 * Decoding trusts nothing: fabric_msg_decode() walks the fields once and
 * checks every length against the bytes present; the getters then scan the
 * checked bytes and report a field present twice as -EBADMSG, so a message
 * with two different node ids cannot be read as either.  Scanning per
 * getter is O(fields) - messages have a handful - and needs no array sized
 * by untrusted input.
 *
 * Rejected: Aerospike's layout (fixed-size types carry no length; an unknown
 * type cannot be skipped) and msgpack (a general decoder is more surface
 * than this needs).
 */
#include <errno.h>
#include <string.h>

#include "fabric.h"
#include "fabric_i.h"

#define FIELD_HEADER 7 /* id u16, type u8, length u32 */

void
fabric_msg_writer_init(struct fabric_msg_writer *w, void *buf, size_t cap, uint16_t type)
{
	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	w->err = 0;
	w->tail = NULL;
	w->tail_len = 0;
	w->tail2 = NULL;
	w->tail2_len = 0;
	if (cap < 2) {
		w->err = -EMSGSIZE;
		return;
	}
	fabric_put16(w->buf, type);
	w->len = 2;
}

static uint8_t *
field_begin(struct fabric_msg_writer *w, uint16_t id, uint8_t type, size_t len)
{
	uint8_t *p;

	if (w->err != 0)
		return NULL;
	if (w->tail != NULL) {
		w->err = -EINVAL;   /* a field after the one put by reference */
		return NULL;
	}
	if (len > UINT32_MAX || w->cap - w->len < FIELD_HEADER || w->cap - w->len - FIELD_HEADER < len) {
		w->err = -EMSGSIZE;
		return NULL;
	}
	p = w->buf + w->len;
	fabric_put16(p, id);
	p[2] = type;
	fabric_put32(p + 3, (uint32_t)len);
	w->len += FIELD_HEADER + len;
	return p + FIELD_HEADER;
}

void
fabric_msg_put_u32(struct fabric_msg_writer *w, uint16_t id, uint32_t v)
{
	uint8_t *p = field_begin(w, id, FABRIC_FIELD_U32, 4);

	if (p != NULL)
		fabric_put32(p, v);
}

void
fabric_msg_put_u64(struct fabric_msg_writer *w, uint16_t id, uint64_t v)
{
	uint8_t *p = field_begin(w, id, FABRIC_FIELD_U64, 8);

	if (p != NULL)
		fabric_put64(p, v);
}

void
fabric_msg_put_bytes(struct fabric_msg_writer *w, uint16_t id, const void *src, size_t len)
{
	uint8_t *p = field_begin(w, id, FABRIC_FIELD_BYTES, len);

	if (p != NULL && len != 0)
		memcpy(p, src, len);
}

uint8_t *
fabric_msg_put_space(struct fabric_msg_writer *w, uint16_t id, size_t len)
{
	return field_begin(w, id, FABRIC_FIELD_BYTES, len);
}

void
fabric_msg_put_bytes_ref2(struct fabric_msg_writer *w, uint16_t id, const void *src, size_t len,
    const void *src2, size_t len2)
{
	uint8_t *p;

	if (w->err != 0)
		return;
	if (w->tail != NULL) {
		w->err = -EINVAL;
		return;
	}
	if (len > UINT32_MAX || len2 > UINT32_MAX - len || w->cap - w->len < FIELD_HEADER) {
		w->err = -EMSGSIZE;
		return;
	}
	/* only the header goes into buf; the value follows it on the wire */
	p = w->buf + w->len;
	fabric_put16(p, id);
	p[2] = FABRIC_FIELD_BYTES;
	fabric_put32(p + 3, (uint32_t)(len + len2));
	w->len += FIELD_HEADER;
	if (len == 0) {
		src = src2;
		len = len2;
		len2 = 0;
	}
	if (len != 0) {
		w->tail = src;
		w->tail_len = len;
	}
	if (len2 != 0) {
		w->tail2 = src2;
		w->tail2_len = len2;
	}
}

void
fabric_msg_put_bytes_ref(struct fabric_msg_writer *w, uint16_t id, const void *src, size_t len)
{
	fabric_msg_put_bytes_ref2(w, id, src, len, NULL, 0);
}

int
fabric_msg_decode(const void *buf, size_t len, struct fabric_msg *m)
{
	const uint8_t *b = buf;
	size_t off;

	if (len < 2)
		return -EBADMSG;
	m->type = fabric_get16(b);
	m->fields = b + 2;
	m->fields_len = len - 2;
	for (off = 0; off < m->fields_len;) {
		const uint8_t *f = m->fields + off;
		uint8_t type;
		uint32_t flen;

		if (m->fields_len - off < FIELD_HEADER)
			return -EBADMSG;
		type = f[2];
		flen = fabric_get32(f + 3);
		if (m->fields_len - off - FIELD_HEADER < flen)
			return -EBADMSG;
		/* known fixed-size types must have their size; unknown types are skipped */
		if ((type == FABRIC_FIELD_U32 && flen != 4) || (type == FABRIC_FIELD_U64 && flen != 8))
			return -EBADMSG;
		off += FIELD_HEADER + flen;
	}
	return 0;
}

/* Finds the one field with this id; -EBADMSG if it is there twice or has
 * another type. */
static int
field_find(const struct fabric_msg *m, uint16_t id, uint8_t type, const uint8_t **val, size_t *vlen)
{
	size_t off;
	int found = 0;

	for (off = 0; off + FIELD_HEADER <= m->fields_len;) {
		const uint8_t *f = m->fields + off;
		uint32_t flen = fabric_get32(f + 3);

		if (flen > m->fields_len - off - FIELD_HEADER)
			return -EBADMSG; /* not from fabric_msg_decode */
		if (fabric_get16(f) == id) {
			if (found || f[2] != type)
				return -EBADMSG;
			found = 1;
			*val = f + FIELD_HEADER;
			*vlen = flen;
		}
		off += FIELD_HEADER + flen;
	}
	return found ? 0 : -ENOENT;
}

int
fabric_msg_get_u32(const struct fabric_msg *m, uint16_t id, uint32_t *v)
{
	const uint8_t *p;
	size_t len;
	int rc = field_find(m, id, FABRIC_FIELD_U32, &p, &len);

	if (rc == 0)
		*v = fabric_get32(p);
	return rc;
}

int
fabric_msg_get_u64(const struct fabric_msg *m, uint16_t id, uint64_t *v)
{
	const uint8_t *p;
	size_t len;
	int rc = field_find(m, id, FABRIC_FIELD_U64, &p, &len);

	if (rc == 0)
		*v = fabric_get64(p);
	return rc;
}

int
fabric_msg_get_bytes(const struct fabric_msg *m, uint16_t id, const uint8_t **p, size_t *len)
{
	return field_find(m, id, FABRIC_FIELD_BYTES, p, len);
}

/* ---- frames ---------------------------------------------------------------- */

int
fabric_frame_header_parse(const uint8_t hdr[FABRIC_FRAME_HEADER], uint8_t version, uint8_t *kind,
    uint32_t *len)
{
	if (fabric_get16(hdr) != FABRIC_FRAME_MAGIC)
		return -EBADMSG;
	/* the version first: another version may have other kinds */
	if (hdr[2] != version)
		return -EPROTONOSUPPORT;
	*kind = hdr[3];
	*len = fabric_get32(hdr + 4);
	if (*kind < FABRIC_KIND_HELLO || *kind > FABRIC_KIND_MSG)
		return -EBADMSG;
	return 0;
}

void
fabric_frame_header_write(uint8_t hdr[FABRIC_FRAME_HEADER], uint8_t version, uint8_t kind, uint32_t len)
{
	fabric_put16(hdr, FABRIC_FRAME_MAGIC);
	hdr[2] = version;
	hdr[3] = kind;
	fabric_put32(hdr + 4, len);
}

int
fabric_hello_parse(const struct fabric_msg *m, struct fabric_hello *h)
{
	const uint8_t *p;
	size_t len;
	uint32_t port;

	if (m->type != FABRIC_MSG_HELLO)
		return -EBADMSG;
	if (fabric_msg_get_u64(m, FABRIC_FIELD_NODE_ID, &h->node_id) != 0 || h->node_id == 0)
		return -EBADMSG;
	if (fabric_msg_get_bytes(m, FABRIC_FIELD_CLUSTER_NAME, &p, &len) != 0 ||
	    len >= sizeof(h->cluster_name))
		return -EBADMSG;
	memcpy(h->cluster_name, p, len);
	h->cluster_name[len] = '\0';
	if (memchr(h->cluster_name, '\0', len) != NULL)
		return -EBADMSG;
	if (fabric_msg_get_bytes(m, FABRIC_FIELD_NONCE, &p, &len) != 0 || len != FABRIC_NONCE_LEN)
		return -EBADMSG;
	memcpy(h->nonce, p, len);
	if (fabric_msg_get_bytes(m, FABRIC_FIELD_LISTEN_ADDRESS, &p, &len) != 0 ||
	    len >= sizeof(h->listen_address) || memchr(p, '\0', len) != NULL)
		return -EBADMSG;
	memcpy(h->listen_address, p, len);
	h->listen_address[len] = '\0';
	if (fabric_msg_get_u32(m, FABRIC_FIELD_LISTEN_PORT, &port) != 0 || port > 65535)
		return -EBADMSG;
	h->listen_port = (uint16_t)port;
	return 0;
}

int
fabric_hello_encode(const struct fabric_hello *h, void *buf, size_t cap)
{
	struct fabric_msg_writer w;

	fabric_msg_writer_init(&w, buf, cap, FABRIC_MSG_HELLO);
	fabric_msg_put_u64(&w, FABRIC_FIELD_NODE_ID, h->node_id);
	fabric_msg_put_bytes(&w, FABRIC_FIELD_CLUSTER_NAME, h->cluster_name, strlen(h->cluster_name));
	fabric_msg_put_bytes(&w, FABRIC_FIELD_NONCE, h->nonce, FABRIC_NONCE_LEN);
	fabric_msg_put_bytes(&w, FABRIC_FIELD_LISTEN_ADDRESS, h->listen_address, strlen(h->listen_address));
	fabric_msg_put_u32(&w, FABRIC_FIELD_LISTEN_PORT, h->listen_port);
	return w.err != 0 ? w.err : (int)w.len;
}
