/*
 * set_msg.c - encoding and decoding of the set messages (set_msg.h).
 */
#include <errno.h>
#include <string.h>

#include "set_msg.h"

static void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void
put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t
get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* A namespace or set name as a path component: no '/', no NUL, not . or .. */
static bool
name_ok(const char *s, size_t len, size_t max)
{
	if (len == 0 || len > max)
		return false;
	if (memchr(s, '/', len) != NULL || memchr(s, '\0', len) != NULL)
		return false;
	return !((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'));
}

static bool
kind_ok(unsigned kind)
{
	return kind >= SET_MSG_MERGE && kind <= SET_MSG_CHECK_NAME;
}

int
set_msg_encode_header(uint8_t *buf, size_t cap, uint8_t kind, const char *ns, uint16_t n)
{
	size_t nl = strlen(ns);

	if (!kind_ok(kind) || !name_ok(ns, nl, SET_MSG_NS_MAX) || n > SET_MSG_ENTRIES_MAX ||
	    (kind != SET_MSG_MERGE && n != 1))
		return -EINVAL;
	if (cap < 5 + nl)
		return -EMSGSIZE;
	buf[0] = SET_MSG_VERSION;
	buf[1] = kind;
	buf[2] = (uint8_t)nl;
	memcpy(buf + 3, ns, nl);
	put16(buf + 3 + nl, n);
	return (int)(5 + nl);
}

int
set_msg_encode_entry(uint8_t *buf, size_t cap, const struct set_msg_entry *e)
{
	size_t need = 38 + (size_t)e->len;
	uint8_t *p;

	if (!name_ok(e->name, e->len, SET_MSG_NAME_MAX) || e->mode > 07777)
		return -EINVAL;
	if (cap < need)
		return -EMSGSIZE;
	buf[0] = e->len;
	memcpy(buf + 1, e->name, e->len);
	p = buf + 1 + e->len;
	p[0] = (uint8_t)((e->live ? 1 : 0) | (e->has_meta ? 2 : 0));
	put64(p + 1, e->lut_ms);
	put32(p + 9, e->mode);
	put32(p + 13, e->uid);
	put32(p + 17, e->gid);
	put64(p + 21, (uint64_t)e->mtime_ns);
	put64(p + 29, (uint64_t)e->atime_ns);
	return (int)need;
}

/* The entry at buf[0..len): its length, or 0 if it is not a valid one. */
static size_t
entry_parse(const uint8_t *buf, size_t len, struct set_msg_entry *e)
{
	size_t nl, need;
	const uint8_t *p;

	if (len < 1)
		return 0;
	nl = buf[0];
	need = 38 + nl;
	if (len < need || !name_ok((const char *)buf + 1, nl, SET_MSG_NAME_MAX))
		return 0;
	p = buf + 1 + nl;
	if ((p[0] & ~3u) != 0 || get32(p + 9) > 07777)
		return 0;
	if (e != NULL) {
		memcpy(e->name, buf + 1, nl);
		e->name[nl] = '\0';
		e->len = (uint8_t)nl;
		e->live = (p[0] & 1) != 0;
		e->has_meta = (p[0] & 2) != 0;
		e->lut_ms = get64(p + 1);
		e->mode = get32(p + 9);
		e->uid = get32(p + 13);
		e->gid = get32(p + 17);
		e->mtime_ns = (int64_t)get64(p + 21);
		e->atime_ns = (int64_t)get64(p + 29);
	}
	return need;
}

int
set_msg_decode(const uint8_t *buf, size_t len, struct set_msg *m)
{
	size_t nl, off;

	memset(m, 0, sizeof(*m));
	if (len < 5 || buf[0] != SET_MSG_VERSION || !kind_ok(buf[1]))
		return -EBADMSG;
	nl = buf[2];
	if (len < 5 + nl || !name_ok((const char *)buf + 3, nl, SET_MSG_NS_MAX))
		return -EBADMSG;
	m->kind = buf[1];
	memcpy(m->ns, buf + 3, nl);
	m->ns[nl] = '\0';
	m->n = (uint16_t)(buf[3 + nl] | buf[4 + nl] << 8);
	if (m->n > SET_MSG_ENTRIES_MAX || (m->kind != SET_MSG_MERGE && m->n != 1))
		return -EBADMSG;
	off = 5 + nl;
	m->entries = buf + off;
	for (unsigned i = 0; i < m->n; i++) {
		size_t el = entry_parse(buf + off, len - off, NULL);

		if (el == 0)
			return -EBADMSG;
		off += el;
	}
	if (off != len)
		return -EBADMSG;
	m->entries_len = len - (size_t)(m->entries - buf);
	return 0;
}

bool
set_msg_entry_next(struct set_msg *m, struct set_msg_entry *e)
{
	size_t el;

	if (m->pos >= m->entries_len)
		return false;
	el = entry_parse(m->entries + m->pos, m->entries_len - m->pos, e);
	if (el == 0)
		return false;
	m->pos += el;
	return true;
}
