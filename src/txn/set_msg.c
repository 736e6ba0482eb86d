/*
 * set_msg.c - encoding and decoding of the set messages (set_msg.h).
 */
#include <errno.h>
#include <string.h>

#include "../base/bytes.h"
#include "set_msg.h"

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
	return kind >= SET_MSG_MERGE && kind <= SET_MSG_USED_MORE;
}

static bool
set_msg_is_check(unsigned kind)
{
	return kind == SET_MSG_CHECK_EMPTY || kind == SET_MSG_CHECK_NAME;
}

int
set_msg_encode_header(uint8_t *buf, size_t cap, uint8_t kind, const char *ns, uint16_t n)
{
	size_t nl = strlen(ns);

	if (!kind_ok(kind) || !name_ok(ns, nl, SET_MSG_NS_MAX) || n > SET_MSG_ENTRIES_MAX ||
	    (set_msg_is_check(kind) && n != 1))
		return -EINVAL;
	if (cap < 5 + nl)
		return -EMSGSIZE;
	buf[0] = SET_MSG_VERSION;
	buf[1] = kind;
	buf[2] = (uint8_t)nl;
	memcpy(buf + 3, ns, nl);
	le_put16(buf + 3 + nl, n);
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
	le_put64(p + 1, e->lut_ms);
	le_put32(p + 9, e->mode);
	le_put32(p + 13, e->uid);
	le_put32(p + 17, e->gid);
	le_put64(p + 21, (uint64_t)e->mtime_ns);
	le_put64(p + 29, (uint64_t)e->atime_ns);
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
	if ((p[0] & ~3u) != 0 || le_get32(p + 9) > 07777)
		return 0;
	if (e != NULL) {
		memcpy(e->name, buf + 1, nl);
		e->name[nl] = '\0';
		e->len = (uint8_t)nl;
		e->live = (p[0] & 1) != 0;
		e->has_meta = (p[0] & 2) != 0;
		e->lut_ms = le_get64(p + 1);
		e->mode = le_get32(p + 9);
		e->uid = le_get32(p + 13);
		e->gid = le_get32(p + 17);
		e->mtime_ns = (int64_t)le_get64(p + 21);
		e->atime_ns = (int64_t)le_get64(p + 29);
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
	if (m->n > SET_MSG_ENTRIES_MAX || (set_msg_is_check(m->kind) && m->n != 1))
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

/* ---- listings ------------------------------------------------------------- */

static unsigned
digest_part(const uint8_t *d)
{
	return ((unsigned)d[0] | (unsigned)d[1] << 8) & (LIST_MSG_PARTITIONS - 1);
}

int
list_msg_encode_request(uint8_t *buf, size_t cap, const struct list_msg_request *r)
{
	size_t nl = strlen(r->ns), need;
	uint8_t *p;

	if (!name_ok(r->ns, nl, SET_MSG_NS_MAX) || r->partition >= LIST_MSG_PARTITIONS ||
	    r->max == 0 || r->max > LIST_MSG_ENTRIES_MAX ||
	    (r->set_len > 0 && !name_ok(r->set, r->set_len, SET_MSG_NAME_MAX)))
		return -EINVAL;
	need = 2 + nl + 1 + r->set_len + 2 + 1 + LIST_MSG_DIGEST + 2 + LIST_MSG_MASK_BYTES +
	    (r->dir != 0 ? 8 : 0);
	if (cap < need)
		return -EMSGSIZE;
	p = buf;
	*p++ = SET_MSG_VERSION;
	*p++ = (uint8_t)nl;
	memcpy(p, r->ns, nl);
	p += nl;
	*p++ = r->set_len;
	memcpy(p, r->set, r->set_len);
	p += r->set_len;
	le_put16(p, r->partition);
	p += 2;
	*p++ = r->started ? 1 : 0;
	memcpy(p, r->digest, LIST_MSG_DIGEST);
	p += LIST_MSG_DIGEST;
	le_put16(p, r->max);
	p += 2;
	memcpy(p, r->mask, LIST_MSG_MASK_BYTES);
	p += LIST_MSG_MASK_BYTES;
	if (r->dir != 0) {
		le_put32(p, (uint32_t)r->dir);
		le_put32(p + 4, (uint32_t)(r->dir >> 32));
	}
	return (int)need;
}

int
list_msg_decode_request(const uint8_t *buf, size_t len, struct list_msg_request *r)
{
	size_t nl, sl, off;

	memset(r, 0, sizeof(*r));
	if (len < 3 || buf[0] != SET_MSG_VERSION)
		return -EBADMSG;
	nl = buf[1];
	if (len < 3 + nl || !name_ok((const char *)buf + 2, nl, SET_MSG_NS_MAX))
		return -EBADMSG;
	memcpy(r->ns, buf + 2, nl);
	off = 2 + nl;
	sl = buf[off++];
	if (sl > SET_MSG_NAME_MAX || len < off + sl ||
	    (sl > 0 && !name_ok((const char *)buf + off, sl, SET_MSG_NAME_MAX)))
		return -EBADMSG;
	memcpy(r->set, buf + off, sl);
	r->set_len = (uint8_t)sl;
	off += sl;
	size_t base = off + 2 + 1 + LIST_MSG_DIGEST + 2 + LIST_MSG_MASK_BYTES;

	if (len != base && len != base + 8)
		return -EBADMSG;
	r->partition = le_get16(buf + off);
	off += 2;
	if (r->partition >= LIST_MSG_PARTITIONS || buf[off] > 1)
		return -EBADMSG;
	r->started = buf[off++] == 1;
	memcpy(r->digest, buf + off, LIST_MSG_DIGEST);
	off += LIST_MSG_DIGEST;
	r->max = le_get16(buf + off);
	off += 2;
	if (r->max == 0 || r->max > LIST_MSG_ENTRIES_MAX)
		return -EBADMSG;
	memcpy(r->mask, buf + off, LIST_MSG_MASK_BYTES);
	off += LIST_MSG_MASK_BYTES;
	if (len == base + 8) {
		r->dir = (uint64_t)le_get32(buf + off) | (uint64_t)le_get32(buf + off + 4) << 32;
		if (r->dir == 0)
			return -EBADMSG;
	}
	return 0;
}

int
list_msg_encode_answer_header(uint8_t *buf, size_t cap, uint16_t n, bool done)
{
	if (n > LIST_MSG_ENTRIES_MAX)
		return -EINVAL;
	if (cap < 4)
		return -EMSGSIZE;
	buf[0] = SET_MSG_VERSION;
	le_put16(buf + 1, n);
	buf[3] = done ? 1 : 0;
	return 4;
}

int
list_msg_encode_entry(uint8_t *buf, size_t cap, const struct list_msg_entry *e)
{
	size_t need = 82 + (size_t)e->key_len;
	uint8_t *p;

	if (e->partition >= LIST_MSG_PARTITIONS || digest_part(e->digest) != e->partition ||
	    memchr(e->key, '\0', e->key_len) != NULL)
		return -EINVAL;
	if (cap < need)
		return -EMSGSIZE;
	le_put16(buf, e->partition);
	memcpy(buf + 2, e->digest, LIST_MSG_DIGEST);
	buf[22] = e->key_len;
	memcpy(buf + 23, e->key, e->key_len);
	p = buf + 23 + e->key_len;
	le_put64(p, e->size);
	p[8] = (uint8_t)((e->has_meta ? 1 : 0) | (e->damaged ? 2 : 0));
	le_put32(p + 9, e->mode);
	le_put32(p + 13, e->uid);
	le_put32(p + 17, e->gid);
	le_put64(p + 21, (uint64_t)e->mtime_ns);
	le_put64(p + 29, (uint64_t)e->atime_ns);
	le_put64(p + 37, e->ino);
	le_put64(p + 45, e->lut_ms);
	le_put16(p + 53, e->generation);
	le_put32(p + 55, e->void_time);
	return (int)need;
}

/* The entry at buf[0..len): its length, or 0 if it is not a valid one. */
static size_t
list_entry_parse(const uint8_t *buf, size_t len, struct list_msg_entry *e)
{
	size_t kl, need;
	const uint8_t *p;

	if (len < 23)
		return 0;
	kl = buf[22];
	need = 82 + kl;
	if (len < need || le_get16(buf) >= LIST_MSG_PARTITIONS || digest_part(buf + 2) != le_get16(buf) ||
	    memchr(buf + 23, '\0', kl) != NULL)
		return 0;
	p = buf + 23 + kl;
	if ((p[8] & ~3u) != 0)
		return 0;
	if (e != NULL) {
		e->partition = le_get16(buf);
		memcpy(e->digest, buf + 2, LIST_MSG_DIGEST);
		memcpy(e->key, buf + 23, kl);
		e->key[kl] = '\0';
		e->key_len = (uint8_t)kl;
		e->size = le_get64(p);
		e->has_meta = (p[8] & 1) != 0;
		e->damaged = (p[8] & 2) != 0;
		e->mode = le_get32(p + 9);
		e->uid = le_get32(p + 13);
		e->gid = le_get32(p + 17);
		e->mtime_ns = (int64_t)le_get64(p + 21);
		e->atime_ns = (int64_t)le_get64(p + 29);
		e->ino = le_get64(p + 37);
		e->lut_ms = le_get64(p + 45);
		e->generation = le_get16(p + 53);
		e->void_time = le_get32(p + 55);
	}
	return need;
}

int
list_msg_decode_answer(const uint8_t *buf, size_t len, struct list_msg_answer *a)
{
	size_t off = 4;

	memset(a, 0, sizeof(*a));
	if (len < 4 || buf[0] != SET_MSG_VERSION || buf[3] > 1)
		return -EBADMSG;
	a->n = le_get16(buf + 1);
	a->done = buf[3] == 1;
	if (a->n > LIST_MSG_ENTRIES_MAX)
		return -EBADMSG;
	for (unsigned i = 0; i < a->n; i++) {
		size_t el = list_entry_parse(buf + off, len - off, NULL);

		if (el == 0)
			return -EBADMSG;
		off += el;
	}
	if (off != len)
		return -EBADMSG;
	a->entries = buf + 4;
	a->entries_len = len - 4;
	return 0;
}

bool
list_msg_entry_next(struct list_msg_answer *a, struct list_msg_entry *e)
{
	size_t el;

	if (a->pos >= a->entries_len)
		return false;
	el = list_entry_parse(a->entries + a->pos, a->entries_len - a->pos, e);
	if (el == 0)
		return false;
	a->pos += el;
	return true;
}
