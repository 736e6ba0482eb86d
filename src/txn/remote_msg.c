/*
 * remote_msg.c - the encodings of the data path's messages (remote.h):
 * proxy requests and answers.  Separate from remote.c so that the fuzz
 * target of the decoders links only these and the fabric's TLV codec.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../base/bytes.h"
#include "../cluster/rpc.h"
#include "../fabric/fabric.h"
#include "remote.h"

/* ---- encoding ------------------------------------------------------------ */

static void
put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void
attr_put(uint8_t *p, const struct record_attr *a)
{
	memcpy(p, a->digest.bytes, DIGEST_SIZE);
	p += DIGEST_SIZE;
	put_le(p, a->size, 8), p += 8;
	*p++ = a->has_meta;
	put_le(p, a->mode, 4), p += 4;
	put_le(p, a->uid, 4), p += 4;
	put_le(p, a->gid, 4), p += 4;
	put_le(p, (uint64_t)a->mtime_ns, 8), p += 8;
	put_le(p, (uint64_t)a->atime_ns, 8), p += 8;
	put_le(p, a->ino, 8), p += 8;
	put_le(p, a->last_update_ms, 8), p += 8;
	put_le(p, a->generation, 2), p += 2;
	put_le(p, a->void_time, 4), p += 4;
	put_le(p, a->partition, 4), p += 4;
	/* bit 0: damaged, bit 1: the head of a large file */
	*p = (uint8_t)(a->damaged | a->chunked << 1);
}

static int
attr_get(const uint8_t *p, struct record_attr *a)
{
	memset(a, 0, sizeof(*a));
	memcpy(a->digest.bytes, p, DIGEST_SIZE);
	p += DIGEST_SIZE;
	a->size = get_le(p, 8), p += 8;
	if (*p > 1)
		return -EBADMSG;
	a->has_meta = *p++;
	a->mode = (uint32_t)get_le(p, 4), p += 4;
	a->uid = (uint32_t)get_le(p, 4), p += 4;
	a->gid = (uint32_t)get_le(p, 4), p += 4;
	a->mtime_ns = (int64_t)get_le(p, 8), p += 8;
	a->atime_ns = (int64_t)get_le(p, 8), p += 8;
	a->ino = get_le(p, 8), p += 8;
	a->last_update_ms = get_le(p, 8), p += 8;
	a->generation = (uint16_t)get_le(p, 2), p += 2;
	a->void_time = (uint32_t)get_le(p, 4), p += 4;
	a->partition = (uint32_t)get_le(p, 4), p += 4;
	if (*p > 3 || a->partition >= PARTITION_COUNT)
		return -EBADMSG;
	a->damaged = *p & 1;
	a->chunked = (*p >> 1) & 1;
	return 0;
}

_Static_assert(TXN_ATTR_WIRE_SIZE == DIGEST_SIZE + 8 + 1 + 4 * 3 + 8 * 4 + 2 + 4 + 4 + 1,
    "attr wire size");

/*
 * Bin operations, packed: per op: name_len (u8, 1..RECORD_BIN_NAME_MAX),
 * name, flags (u8, TXN_BIN_*), type (u8), then for a put by type: INTEGER
 * and DOUBLE 8 bytes (little-endian; a double's bits), STRING and BLOB a
 * u32 length and the bytes; a remove carries no value.
 */
static size_t
bins_size(const struct txn_bin_op *b, size_t n)
{
	size_t s = 0;

	for (size_t i = 0; i < n; i++) {
		s += 3 + b[i].name_len;
		if (b[i].flags & TXN_BIN_REMOVE)
			continue;
		s += (b[i].type == BIN_STRING || b[i].type == BIN_BLOB) ? 4 + (size_t)b[i].len : 8;
	}
	return s;
}

static int
bins_put(uint8_t *p, const struct txn_bin_op *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (b[i].name_len == 0 || b[i].name_len > RECORD_BIN_NAME_MAX || b[i].flags > 0xff)
			return -EINVAL;
		*p++ = (uint8_t)b[i].name_len;
		memcpy(p, b[i].name, b[i].name_len);
		p += b[i].name_len;
		*p++ = (uint8_t)b[i].flags;
		*p++ = b[i].type;
		if (b[i].flags & TXN_BIN_REMOVE)
			continue;
		if (b[i].type == BIN_STRING || b[i].type == BIN_BLOB) {
			put_le(p, b[i].len, 4), p += 4;
			if (b[i].len > 0)
				memcpy(p, b[i].data, b[i].len);
			p += b[i].len;
		} else if (b[i].type == BIN_DOUBLE) {
			uint64_t bits;

			memcpy(&bits, &b[i].dbl, 8);
			put_le(p, bits, 8), p += 8;
		} else {
			put_le(p, (uint64_t)b[i].integer, 8), p += 8;
		}
	}
	return 0;
}

#define BIN_FLAGS_KNOWN (TXN_BIN_REMOVE | TXN_BIN_CREATE | TXN_BIN_REPLACE)

static int
bins_get(const uint8_t *p, size_t len, struct txn_bin_op **out, size_t *n_out)
{
	const uint8_t *end = p + len;
	struct txn_bin_op *b = NULL;
	size_t n = 0, cap = 0;

	while (p < end) {
		struct txn_bin_op op = { 0 };

		if (end - p < 3)
			goto bad;
		op.name_len = *p++;
		if (op.name_len == 0 || op.name_len > RECORD_BIN_NAME_MAX ||
		    (size_t)(end - p) < op.name_len + 2)
			goto bad;
		op.name = (const char *)p;
		p += op.name_len;
		op.flags = *p++;
		op.type = *p++;
		if (op.flags & ~BIN_FLAGS_KNOWN)
			goto bad;
		if (!(op.flags & TXN_BIN_REMOVE)) {
			if (op.type == BIN_STRING || op.type == BIN_BLOB) {
				if (end - p < 4)
					goto bad;
				op.len = (uint32_t)get_le(p, 4), p += 4;
				if ((size_t)(end - p) < op.len)
					goto bad;
				op.data = p;
				p += op.len;
			} else if (op.type == BIN_INTEGER || op.type == BIN_DOUBLE) {
				uint64_t v;

				if (end - p < 8)
					goto bad;
				v = get_le(p, 8), p += 8;
				if (op.type == BIN_DOUBLE)
					memcpy(&op.dbl, &v, 8);
				else
					op.integer = (int64_t)v;
			} else {
				goto bad;
			}
		}
		if (n == cap) {
			size_t nc = cap ? 2 * cap : 4;
			struct txn_bin_op *nb;

			if (nc > RECORD_BINS_MAX)
				goto bad;
			nb = realloc(b, nc * sizeof(*b));
			if (nb == NULL) {
				free(b);
				return -ENOMEM;
			}
			b = nb;
			cap = nc;
		}
		b[n++] = op;
	}
	*out = b;
	*n_out = n;
	return 0;
bad:
	free(b);
	return -EBADMSG;
}

void
txn_op_id_put(uint8_t *p, const struct txn_op_id *id)
{
	le_put64(p, id->node);
	le_put64(p + 8, id->seq);
}

int
txn_op_id_get(const uint8_t *p, size_t len, struct txn_op_id *id)
{
	if (len != TXN_OP_ID_WIRE_SIZE)
		return -EBADMSG;
	id->node = le_get64(p);
	id->seq = le_get64(p + 8);
	return id->seq != 0 ? 0 : -EBADMSG;
}

/* ref: the file's content, the last field, by reference (its bytes are
 * not in *out: *tail, *tail_len). */
static int
proxy_req_encode(const struct txn_proxy_req *q, bool ref, uint8_t **out, size_t *len,
    const uint8_t **tail, size_t *tail_len)
{
	const struct txn_write *w = q->has_write ? &q->w : NULL;
	size_t bl = w != NULL ? bins_size(w->bins, w->n_bins) : 0;
	size_t file = w != NULL && w->set_file ? w->file_len : 0;
	/* type; per field (22 at most) a 7-byte header and up to 8 bytes of
	 * value; the variable ones */
	size_t cap = 2 + 22 * 15 + TXN_OP_ID_WIRE_SIZE + TXN_ATTR_WIRE_SIZE + q->record_len +
	    q->ns_len + q->k.set_len +
	    q->k.key_len + q->to.set_len + q->to.key_len + file + bl;
	struct fabric_msg_writer fw;
	uint8_t *buf;
	int rc;

	*out = NULL;
	*tail = NULL;
	*tail_len = 0;
	if (cap > RPC_BODY_MAX)
		return -EMSGSIZE;
	if (ref)
		cap -= file;
	buf = malloc(cap);
	if (buf == NULL)
		return -ENOMEM;
	fabric_msg_writer_init(&fw, buf, cap, TXN_MSG_PROXY);
	fabric_msg_put_u32(&fw, TXN_PF_KIND, q->kind);
	fabric_msg_put_bytes(&fw, TXN_PF_NS, q->ns, q->ns_len);
	if (q->k.set_len > 0)
		fabric_msg_put_bytes(&fw, TXN_PF_SET, q->k.set, q->k.set_len);
	fabric_msg_put_bytes(&fw, TXN_PF_KEY, q->k.key, q->k.key_len);
	if (q->has_to) {
		if (q->to.set_len > 0)
			fabric_msg_put_bytes(&fw, TXN_PF_TO_SET, q->to.set, q->to.set_len);
		fabric_msg_put_bytes(&fw, TXN_PF_TO_KEY, q->to.key, q->to.key_len);
	}
	if (q->has_to || q->kind == TXN_PROXY_RENAME_IN)
		fabric_msg_put_u32(&fw, TXN_PF_RENAME_FLAGS, q->rename_flags);
	if (q->id.seq != 0) {
		uint8_t id[TXN_OP_ID_WIRE_SIZE];

		txn_op_id_put(id, &q->id);
		fabric_msg_put_bytes(&fw, TXN_PF_OP_ID, id, sizeof(id));
		if (q->retry)
			fabric_msg_put_u32(&fw, TXN_PF_RETRY, 1);
	}
	if (q->take_version && q->kind == TXN_PROXY_WRITE)
		fabric_msg_put_u32(&fw, TXN_PF_TAKE_VERSION, 1);
	if (q->kind == TXN_PROXY_RENAME_IN) {
		uint8_t a[TXN_ATTR_WIRE_SIZE];

		attr_put(a, &q->record_attr);
		fabric_msg_put_bytes(&fw, TXN_PF_RECORD, q->record, q->record_len);
		fabric_msg_put_bytes(&fw, TXN_PF_RECORD_ATTR, a, sizeof(a));
	}
	if (w != NULL) {
		uint32_t set = (w->set_file ? TXN_PW_FILE : 0) | (w->set_size ? TXN_PW_SIZE : 0) |
		    (w->set_mode ? TXN_PW_MODE : 0) | (w->set_uid ? TXN_PW_UID : 0) |
		    (w->set_gid ? TXN_PW_GID : 0) | (w->set_mtime ? TXN_PW_MTIME : 0) |
		    (w->set_atime ? TXN_PW_ATIME : 0) | (w->set_ttl ? TXN_PW_TTL : 0);

		fabric_msg_put_u32(&fw, TXN_PF_W_FLAGS, w->flags);
		fabric_msg_put_u32(&fw, TXN_PF_W_SET, set);
		if (w->set_size)
			fabric_msg_put_u64(&fw, TXN_PF_SIZE, w->size);
		if (w->set_mode)
			fabric_msg_put_u32(&fw, TXN_PF_MODE, w->mode);
		if (w->set_uid)
			fabric_msg_put_u32(&fw, TXN_PF_UID, w->uid);
		if (w->set_gid)
			fabric_msg_put_u32(&fw, TXN_PF_GID, w->gid);
		if (w->set_mtime)
			fabric_msg_put_u64(&fw, TXN_PF_MTIME, (uint64_t)w->mtime_ns);
		if (w->set_atime)
			fabric_msg_put_u64(&fw, TXN_PF_ATIME, (uint64_t)w->atime_ns);
		if (w->set_ttl)
			fabric_msg_put_u32(&fw, TXN_PF_TTL, (uint32_t)w->ttl);
		if (w->n_bins > 0) {
			uint8_t *p = malloc(bl);

			rc = p != NULL ? bins_put(p, w->bins, w->n_bins) : -ENOMEM;
			if (rc == 0)
				fabric_msg_put_bytes(&fw, TXN_PF_BINS, p, bl);
			free(p);
			if (rc != 0) {
				free(buf);
				return rc;
			}
		}
	}
	/* the content last, so that it can stay where it is */
	if (w != NULL && w->set_file && ref)
		fabric_msg_put_bytes_ref(&fw, TXN_PF_FILE, w->file_data, w->file_len);
	else if (w != NULL && w->set_file)
		fabric_msg_put_bytes(&fw, TXN_PF_FILE, w->file_data, w->file_len);
	if (fw.err != 0) {
		free(buf);
		return fw.err;
	}
	*out = buf;
	*len = fw.len;
	*tail = fw.tail;
	*tail_len = fw.tail_len;
	return 0;
}

int
txn_proxy_req_encode(const struct txn_proxy_req *q, uint8_t **out, size_t *len)
{
	const uint8_t *tail;
	size_t tail_len;

	return proxy_req_encode(q, false, out, len, &tail, &tail_len);
}

int
txn_proxy_req_encode_split(const struct txn_proxy_req *q, uint8_t **out, size_t *len,
    const uint8_t **tail, size_t *tail_len)
{
	return proxy_req_encode(q, true, out, len, tail, tail_len);
}

/* An optional field: absent is fine (0 / false), twice or mistyped is not. */
static int
opt_bytes(const struct fabric_msg *m, uint16_t id, const uint8_t **p, size_t *len, bool *present)
{
	int rc = fabric_msg_get_bytes(m, id, p, len);

	*present = rc == 0;
	if (rc == -ENOENT) {
		*p = NULL;
		*len = 0;
		return 0;
	}
	return rc;
}

static int
opt_u32(const struct fabric_msg *m, uint16_t id, uint32_t *v, bool want)
{
	int rc = fabric_msg_get_u32(m, id, v);

	if (rc == -ENOENT)
		return want ? -EBADMSG : 0;
	if (rc == 0 && !want)
		return -EBADMSG;
	return rc;
}

static int
opt_u64(const struct fabric_msg *m, uint16_t id, uint64_t *v, bool want)
{
	int rc = fabric_msg_get_u64(m, id, v);

	if (rc == -ENOENT)
		return want ? -EBADMSG : 0;
	if (rc == 0 && !want)
		return -EBADMSG;
	return rc;
}

int
txn_proxy_req_decode(const uint8_t *buf, size_t len, struct txn_proxy_req *q)
{
	struct fabric_msg m;
	const uint8_t *p;
	size_t l;
	bool present;
	uint32_t set = 0, u = 0;
	uint64_t v = 0;
	int rc;

	memset(q, 0, sizeof(*q));
	if (fabric_msg_decode(buf, len, &m) != 0 || m.type != TXN_MSG_PROXY)
		return -EBADMSG;
	if (fabric_msg_get_u32(&m, TXN_PF_KIND, &q->kind) != 0 || q->kind < TXN_PROXY_STAT ||
	    q->kind > TXN_PROXY_DUPRES)
		return -EBADMSG;
	if (fabric_msg_get_bytes(&m, TXN_PF_NS, &p, &l) != 0 || l == 0 || l > CONFIG_NAME_MAX)
		return -EBADMSG;
	q->ns = (const char *)p;
	q->ns_len = l;
	if (opt_bytes(&m, TXN_PF_SET, &p, &l, &present) != 0 || l > RECORD_SET_MAX)
		return -EBADMSG;
	q->k.set = (const char *)p;
	q->k.set_len = l;
	if (fabric_msg_get_bytes(&m, TXN_PF_KEY, &p, &l) != 0 || l > RECORD_KEY_MAX)
		return -EBADMSG;
	q->k.key = (const char *)p;
	q->k.key_len = l;
	/* rename target: with a rename only */
	if (opt_bytes(&m, TXN_PF_TO_KEY, &p, &l, &q->has_to) != 0 || l > RECORD_KEY_MAX ||
	    q->has_to != (q->kind == TXN_PROXY_RENAME))
		return -EBADMSG;
	q->to.key = (const char *)p;
	q->to.key_len = l;
	if (opt_bytes(&m, TXN_PF_TO_SET, &p, &l, &present) != 0 || l > RECORD_SET_MAX ||
	    (present && !q->has_to))
		return -EBADMSG;
	q->to.set = (const char *)p;
	q->to.set_len = l;
	if (opt_u32(&m, TXN_PF_RENAME_FLAGS, &q->rename_flags,
	    q->has_to || q->kind == TXN_PROXY_RENAME_IN) != 0 ||
	    (q->rename_flags & ~(uint32_t)TXN_RENAME_NOREPLACE))
		return -EBADMSG;
	/* rename-in: the record and its attributes, with it only */
	if (opt_bytes(&m, TXN_PF_RECORD, &q->record, &q->record_len, &present) != 0 ||
	    present != (q->kind == TXN_PROXY_RENAME_IN))
		return -EBADMSG;
	if (opt_bytes(&m, TXN_PF_RECORD_ATTR, &p, &l, &present) != 0 ||
	    present != (q->kind == TXN_PROXY_RENAME_IN) ||
	    (present && (l != TXN_ATTR_WIRE_SIZE || attr_get(p, &q->record_attr) != 0)))
		return -EBADMSG;
	/* a write's, delete's or rename's id, and whether this is an attempt
	 * after its master went down */
	if (opt_bytes(&m, TXN_PF_OP_ID, &p, &l, &present) != 0 ||
	    (present && (q->kind == TXN_PROXY_STAT || q->kind == TXN_PROXY_READ ||
	    q->kind == TXN_PROXY_SYNC || q->kind == TXN_PROXY_DUPRES ||
	    txn_op_id_get(p, l, &q->id) != 0)))
		return -EBADMSG;
	rc = fabric_msg_get_u32(&m, TXN_PF_RETRY, &u);
	if (rc == 0 && (u != 1 || !present))
		return -EBADMSG;
	if (rc != 0 && rc != -ENOENT)
		return -EBADMSG;
	q->retry = rc == 0;
	/* a write only: its caller takes the version (remote.c) */
	rc = fabric_msg_get_u32(&m, TXN_PF_TAKE_VERSION, &u);
	if (rc == 0 && (u != 1 || q->kind != TXN_PROXY_WRITE))
		return -EBADMSG;
	if (rc != 0 && rc != -ENOENT)
		return -EBADMSG;
	q->take_version = rc == 0;
	u = 0;
	/* write parameters: with a write only */
	rc = fabric_msg_get_u32(&m, TXN_PF_W_FLAGS, &u);
	if (rc == -EBADMSG || (rc == 0) != (q->kind == TXN_PROXY_WRITE))
		return -EBADMSG;
	if (rc == -ENOENT) {
		/* none of the write's fields either */
		for (uint16_t id = TXN_PF_W_SET; id <= TXN_PF_BINS; id++)
			if (fabric_msg_get_bytes(&m, id, &p, &l) != -ENOENT)
				return -EBADMSG;
		return 0;
	}
	if (u & ~(uint32_t)(TXN_CREATE_ONLY | TXN_UPDATE_ONLY | TXN_DURABLE))
		return -EBADMSG;
	q->has_write = true;
	q->w.flags = u;
	if (fabric_msg_get_u32(&m, TXN_PF_W_SET, &set) != 0 || set > 0xff)
		return -EBADMSG;
	q->w.set_file = set & TXN_PW_FILE;
	if (opt_bytes(&m, TXN_PF_FILE, &p, &l, &present) != 0 || present != q->w.set_file)
		return -EBADMSG;
	q->w.file_data = p;
	q->w.file_len = l;
	q->w.set_size = set & TXN_PW_SIZE;
	if (opt_u64(&m, TXN_PF_SIZE, &q->w.size, q->w.set_size) != 0)
		return -EBADMSG;
	q->w.set_mode = set & TXN_PW_MODE;
	q->w.set_uid = set & TXN_PW_UID;
	q->w.set_gid = set & TXN_PW_GID;
	q->w.set_mtime = set & TXN_PW_MTIME;
	q->w.set_atime = set & TXN_PW_ATIME;
	q->w.set_ttl = set & TXN_PW_TTL;
	if (opt_u32(&m, TXN_PF_MODE, &q->w.mode, q->w.set_mode) != 0 ||
	    opt_u32(&m, TXN_PF_UID, &q->w.uid, q->w.set_uid) != 0 ||
	    opt_u32(&m, TXN_PF_GID, &q->w.gid, q->w.set_gid) != 0)
		return -EBADMSG;
	if (opt_u64(&m, TXN_PF_MTIME, &v, q->w.set_mtime) != 0)
		return -EBADMSG;
	q->w.mtime_ns = (int64_t)v;
	v = 0;
	if (opt_u64(&m, TXN_PF_ATIME, &v, q->w.set_atime) != 0)
		return -EBADMSG;
	q->w.atime_ns = (int64_t)v;
	u = 0;
	if (opt_u32(&m, TXN_PF_TTL, &u, q->w.set_ttl) != 0)
		return -EBADMSG;
	q->w.ttl = (int32_t)u;
	if (opt_bytes(&m, TXN_PF_BINS, &p, &l, &present) != 0)
		return -EBADMSG;
	if (present) {
		rc = bins_get(p, l, &q->bins, &q->w.n_bins);
		if (rc != 0)
			return rc;
		q->w.bins = q->bins;
	}
	return 0;
}

void
txn_proxy_req_release(struct txn_proxy_req *q)
{
	free(q->bins);
	q->bins = NULL;
	q->w.bins = NULL;
}

int
txn_proxy_ans_encode(const struct record_attr *attr, const uint8_t *rec, size_t rec_len,
    uint8_t *buf, size_t cap, size_t *len)
{
	struct fabric_msg_writer fw;
	uint8_t a[TXN_ATTR_WIRE_SIZE];

	fabric_msg_writer_init(&fw, buf, cap, TXN_MSG_ANSWER);
	if (attr != NULL) {
		attr_put(a, attr);
		fabric_msg_put_bytes(&fw, TXN_AF_ATTR, a, sizeof(a));
	}
	if (rec != NULL)
		fabric_msg_put_bytes(&fw, TXN_AF_RECORD, rec, rec_len);
	*len = fw.len;
	return fw.err;
}

int
txn_proxy_ans_decode(const uint8_t *buf, size_t len, bool *has_attr, struct record_attr *attr,
    const uint8_t **rec, size_t *rec_len)
{
	struct fabric_msg m;
	const uint8_t *p;
	size_t l;
	bool present;

	*has_attr = false;
	*rec = NULL;
	*rec_len = 0;
	if (fabric_msg_decode(buf, len, &m) != 0 || m.type != TXN_MSG_ANSWER)
		return -EBADMSG;
	if (opt_bytes(&m, TXN_AF_ATTR, &p, &l, &present) != 0)
		return -EBADMSG;
	if (present) {
		if (l != TXN_ATTR_WIRE_SIZE || attr_get(p, attr) != 0)
			return -EBADMSG;
		*has_attr = true;
	}
	if (opt_bytes(&m, TXN_AF_RECORD, &p, &l, &present) != 0)
		return -EBADMSG;
	if (present) {
		*rec = p;
		*rec_len = l;
	}
	return 0;
}


int
txn_proxy_ans_encode_version(const struct record_attr *attr, const uint8_t *ver, size_t ver_len,
    uint8_t *buf, size_t cap, size_t *len)
{
	struct fabric_msg_writer fw;
	uint8_t a[TXN_ATTR_WIRE_SIZE];

	fabric_msg_writer_init(&fw, buf, cap, TXN_MSG_ANSWER);
	attr_put(a, attr);
	fabric_msg_put_bytes(&fw, TXN_AF_ATTR, a, sizeof(a));
	fabric_msg_put_bytes(&fw, TXN_AF_VERSION, ver, ver_len);
	*len = fw.len;
	return fw.err;
}

int
txn_proxy_ans_version(const uint8_t *buf, size_t len, const uint8_t **ver, size_t *ver_len)
{
	struct fabric_msg m;

	*ver = NULL;
	*ver_len = 0;
	if (fabric_msg_decode(buf, len, &m) != 0 || m.type != TXN_MSG_ANSWER)
		return -EBADMSG;
	return fabric_msg_get_bytes(&m, TXN_AF_VERSION, ver, ver_len);
}
