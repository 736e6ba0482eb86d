/*
 * remote.c - proxied operations and replica writes (remote.h; docs/cluster.md,
 * "Data path").
 *
 * Caller side: txn_remote_proxy sends an operation to its master and
 * fills the caller's answer from the reply; txn_remote_replicate sends a
 * stored record version to the partition's other replicas and waits for
 * all of them.  Server side: three rpc handlers on rpc's workers, which
 * hand the decoded request to txn.c (txn_proxy_serve, txn_replica_apply).
 *
 * Workers and the proxy: a proxied write blocks its worker while the
 * master waits for its replicas, and those replica writes need workers on
 * the other nodes.  Two nodes proxying writes to each other could fill
 * every worker with proxied writes waiting for replica writes queued
 * behind them.  So at most workers - TXN_REMOTE_WORKERS_SPARE proxied
 * writes run at once; one more is answered -EAGAIN, and its caller tries
 * again after 1, 2, 4 ... ms within its deadline; replica writes (which
 * never wait for another node) always find a worker.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/atomic.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "../cluster/partition.h"
#include "../cluster/rpc.h"
#include "../fabric/fabric.h"
#include "remote.h"
#include "txn_i.h"

enum remote_stat {
	RS_proxy_sent, RS_proxy_completed, RS_proxy_failed, RS_proxy_timed_out, RS_proxy_rerouted,
	RS_proxy_received, RS_proxy_busy,
	RS_replica_sent, RS_replica_acked, RS_replica_failed, RS_replica_timed_out,
	RS_replica_received, RS_replica_applied, RS_replica_kept_older,
	RS_COUNT
};

struct txn_remote {
	struct rpc *rpc;
	const uint32_t *transaction_max_ms;
	uint64_t self;              /* this node's id */
	uint32_t failover_ms;       /* a dead node out of the tables: heartbeat timeout + quiet period */
	struct node *node;          /* atomic */
	uint32_t proxy_running;     /* atomic: proxied writes running on the workers */
	uint64_t stats[RS_COUNT];   /* atomic */
};

#define STAT(rm, s) atomic_inc(&(rm)->stats[RS_##s])

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
	*p = a->damaged;
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
	if (*p > 1 || a->partition >= PARTITION_COUNT)
		return -EBADMSG;
	a->damaged = *p;
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

int
txn_proxy_req_encode(const struct txn_proxy_req *q, uint8_t **out, size_t *len)
{
	const struct txn_write *w = q->has_write ? &q->w : NULL;
	size_t bl = w != NULL ? bins_size(w->bins, w->n_bins) : 0;
	size_t cap = 2 + 20 * 8 + q->ns_len + q->k.set_len + q->k.key_len + q->to.set_len +
	    q->to.key_len + (w != NULL && w->set_file ? w->file_len : 0) + bl;
	struct fabric_msg_writer fw;
	uint8_t *buf;
	int rc;

	*out = NULL;
	if (cap > RPC_BODY_MAX)
		return -EMSGSIZE;
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
		fabric_msg_put_u32(&fw, TXN_PF_RENAME_FLAGS, q->rename_flags);
	}
	if (w != NULL) {
		uint32_t set = (w->set_file ? TXN_PW_FILE : 0) | (w->set_size ? TXN_PW_SIZE : 0) |
		    (w->set_mode ? TXN_PW_MODE : 0) | (w->set_uid ? TXN_PW_UID : 0) |
		    (w->set_gid ? TXN_PW_GID : 0) | (w->set_mtime ? TXN_PW_MTIME : 0) |
		    (w->set_atime ? TXN_PW_ATIME : 0) | (w->set_ttl ? TXN_PW_TTL : 0);

		fabric_msg_put_u32(&fw, TXN_PF_W_FLAGS, w->flags);
		fabric_msg_put_u32(&fw, TXN_PF_W_SET, set);
		if (w->set_file)
			fabric_msg_put_bytes(&fw, TXN_PF_FILE, w->file_data, w->file_len);
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
	if (fw.err != 0) {
		free(buf);
		return fw.err;
	}
	*out = buf;
	*len = fw.len;
	return 0;
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
	    q->kind > TXN_PROXY_SYNC)
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
	if (opt_u32(&m, TXN_PF_RENAME_FLAGS, &q->rename_flags, q->has_to) != 0 ||
	    (q->rename_flags & ~(uint32_t)TXN_RENAME_NOREPLACE))
		return -EBADMSG;
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

/* ---- caller side: proxy ---------------------------------------------------- */

uint64_t
txn_remote_failover_deadline(struct txn_remote *rm)
{
	return clock_mono_ns() + ((uint64_t)rm->failover_ms + txn_remote_deadline_ms(rm)) * 1000000;
}

uint32_t
txn_remote_deadline_ms(struct txn_remote *rm)
{
	uint32_t ms = rm->transaction_max_ms != NULL ? atomic_load_relaxed(rm->transaction_max_ms) : 0;

	return ms != 0 ? ms : RPC_DEADLINE_DEFAULT_MS;
}

static uint32_t
ms_left(uint64_t deadline_ns)
{
	uint64_t now = clock_mono_ns();

	return now >= deadline_ns ? 0 : (uint32_t)((deadline_ns - now + 999999) / 1000000);
}

static void
sleep_ms(uint32_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static uint32_t
proxy_kind(enum txn_op_kind k)
{
	switch (k) {
	case TXN_OP_STAT: return TXN_PROXY_STAT;
	case TXN_OP_READ: return TXN_PROXY_READ;
	case TXN_OP_WRITE: return TXN_PROXY_WRITE;
	case TXN_OP_DELETE: return TXN_PROXY_DELETE;
	case TXN_OP_RENAME: return TXN_PROXY_RENAME;
	case TXN_OP_SYNC: return TXN_PROXY_SYNC;
	default: return 0;
	}
}

/* The answer's record into op->rec (a copy the caller owns). */
static int
answer_record(const struct namespace *ns, const uint8_t *flat, size_t len, struct txn_record *out)
{
	const char *fb = ns->cfg->file_bin;
	int rc;

	out->buf = malloc(len > 0 ? len : 1);
	if (out->buf == NULL)
		return -ENOMEM;
	memcpy(out->buf, flat, len);
	rc = record_flat_decode(out->buf, len, &out->rec);
	if (rc != 0) {
		free(out->buf);
		out->buf = NULL;
		record_init(&out->rec);
		return -EIO;
	}
	out->file_bin = record_bin_find(&out->rec, fb, strlen(fb));
	return 0;
}

int
txn_remote_proxy(struct txn_remote *rm, uint64_t master, const struct txn_target *t,
    const struct txn_op *op)
{
	struct txn_proxy_req q = {
		.kind = proxy_kind(op->kind), .ns = t->ns->name, .ns_len = strlen(t->ns->name),
		.k = t->k,
	};
	uint64_t deadline = clock_mono_ns() + (uint64_t)txn_remote_deadline_ms(rm) * 1000000;
	uint32_t rpc_op;
	uint8_t *buf;
	size_t len;
	int rc;

	if (q.kind == 0)
		return -EIO;
	if (op->kind == TXN_OP_RENAME) {
		q.has_to = true;
		q.to = op->to->k;
		q.rename_flags = op->flags;
	}
	if (op->kind == TXN_OP_WRITE) {
		q.has_write = true;
		q.w = *op->w;
	}
	rpc_op = op->kind == TXN_OP_STAT || op->kind == TXN_OP_READ ? RPC_OP_TXN_PROXY_READ
	    : RPC_OP_TXN_PROXY;
	rc = txn_proxy_req_encode(&q, &buf, &len);
	if (rc == -EMSGSIZE)
		return -EFBIG;
	if (rc != 0)
		return rc;
	for (uint32_t backoff = 1;; backoff *= 2) {
		struct rpc_answer ans = { 0 };
		uint32_t left = ms_left(deadline);

		if (left == 0) {
			STAT(rm, proxy_timed_out);
			rc = -EIO;
			break;
		}
		STAT(rm, proxy_sent);
		rc = rpc_call(rm->rpc, master, rpc_op, buf, len, left, &ans);
		if ((rc == 0 && ans.err == -EAGAIN) || rc == -EAGAIN) {
			/* the master is busy: not run; again shortly */
			rpc_answer_release(&ans);
			STAT(rm, proxy_busy);
			left = ms_left(deadline);
			sleep_ms(backoff < left ? backoff : left);
			continue;
		}
		if (rc == -ETIMEDOUT) {
			STAT(rm, proxy_timed_out);
			rc = -EIO;
		} else if (rc == -EHOSTDOWN || rc == -EHOSTUNREACH) {
			STAT(rm, proxy_failed);
			rc = -EHOSTDOWN;
		} else if (rc != 0) {
			STAT(rm, proxy_failed);
			rc = -EIO;
		} else if (ans.err == TXN_ENOTMASTER) {
			STAT(rm, proxy_rerouted);
			rc = TXN_ENOTMASTER;
		} else {
			bool has_attr;
			struct record_attr attr;
			const uint8_t *rec;
			size_t rec_len;

			rc = ans.err;
			if (txn_proxy_ans_decode(ans.body, ans.len, &has_attr, &attr, &rec, &rec_len) != 0) {
				STAT(rm, proxy_failed);
				rc = -EIO;
			} else if (rc == 0 && op->kind == TXN_OP_READ) {
				if (rec == NULL || !has_attr) {
					rc = -EIO;
				} else {
					op->rec->attr = attr;
					rc = answer_record(t->ns, rec, rec_len, op->rec);
				}
			} else if (rc == 0 && op->attr != NULL && has_attr) {
				*op->attr = attr;
			} else if (rc == 0 && op->attr != NULL && op->kind != TXN_OP_WRITE) {
				rc = -EIO;
			}
			if (rc != -EIO)
				STAT(rm, proxy_completed);
		}
		rpc_answer_release(&ans);
		break;
	}
	free(buf);
	return rc;
}

/* ---- caller side: replica writes ------------------------------------------ */

int
txn_remote_replicate(struct txn_remote *rm, struct namespace *ns, const uint8_t *flat,
    uint32_t size, bool durable)
{
	struct txn_namespace *x = txn_namespace_of(ns);
	uint32_t pid = digest_partition(record_flat_digest(flat));
	uint64_t deadline = clock_mono_ns() + (uint64_t)txn_remote_deadline_ms(rm) * 1000000;
	uint64_t node = rm->self;
	uint64_t done[PARTITION_REPLICAS_MAX];
	unsigned n_done = 0;
	uint8_t *body;
	size_t cap = 64 + strlen(ns->name) + size, blen;
	struct fabric_msg_writer fw;
	int rc = 0;

	body = malloc(cap);
	if (body == NULL)
		return -ENOMEM;
	fabric_msg_writer_init(&fw, body, cap, TXN_MSG_REPLICA);
	fabric_msg_put_bytes(&fw, TXN_RF_NS, ns->name, strlen(ns->name));
	fabric_msg_put_u32(&fw, TXN_RF_DURABLE, durable ? 1 : 0);
	fabric_msg_put_bytes(&fw, TXN_RF_RECORD, flat, size);
	blen = fw.len;
	if (fw.err != 0 || blen > RPC_BODY_MAX) {
		free(body);
		return -EFBIG;
	}
	/* Twice at most: the replicas of the table now, then - when one is no
	 * longer a replica or went down - those of the next table. */
	for (int round = 0; round < 2; round++) {
		struct partition_rsv r;
		struct rpc_answer ans[PARTITION_REPLICAS_MAX];
		uint64_t to[PARTITION_REPLICAS_MAX];
		unsigned n = 0;
		bool again = false;
		struct rpc_group g;
		uint32_t left = ms_left(deadline);

		partition_reserve(x->partitions, pid, &r);
		for (unsigned i = 0; i < r.n_replicas; i++) {
			bool skip = r.replicas[i] == node;

			for (unsigned j = 0; j < n_done && !skip; j++)
				skip = done[j] == r.replicas[i];
			if (!skip)
				to[n++] = r.replicas[i];
		}
		if (n == 0) {
			partition_release(&r);
			rc = 0;
			break;
		}
		if (left == 0) {
			partition_release(&r);
			rc = -EIO;
			break;
		}
		memset(ans, 0, sizeof(ans));
		rpc_group_init(rm->rpc, &g, left);
		for (unsigned i = 0; i < n; i++) {
			STAT(rm, replica_sent);
			(void)rpc_group_send(&g, to[i], RPC_OP_TXN_REPLICA, body, blen, &ans[i]);
		}
		(void)rpc_group_wait(&g);
		rc = 0;
		for (unsigned i = 0; i < n; i++) {
			if (ans[i].rc == 0 && ans[i].err == 0) {
				STAT(rm, replica_acked);
				done[n_done++] = to[i];
			} else if (ans[i].rc == -ETIMEDOUT) {
				STAT(rm, replica_timed_out);
				rc = -EIO;
			} else if ((ans[i].rc == 0 && ans[i].err == TXN_ENOTMASTER) ||
			    ans[i].rc == -EHOSTDOWN || ans[i].rc == -EHOSTUNREACH) {
				STAT(rm, replica_failed);
				again = true;
			} else {
				STAT(rm, replica_failed);
				rc = -EIO;
			}
			rpc_answer_release(&ans[i]);
		}
		if (rc == 0 && again) {
			/* Wait (bounded) for the table that no longer names it. */
			uint64_t key = r.cluster_key;

			partition_release(&r);
			if (round == 1 || txn_partition_wait_change(ns, pid, key,
			    txn_remote_failover_deadline(rm)) != 0) {
				rc = -EIO;
				break;
			}
			deadline = clock_mono_ns() + (uint64_t)txn_remote_deadline_ms(rm) * 1000000;
			continue;
		}
		partition_release(&r);
		break;
	}
	free(body);
	if (rc != 0)
		log_warn("txn", "{%s} a record version of partition %u reached %u replicas only: "
		    "the write fails (EIO) but stays here", ns->name, pid, n_done);
	return rc;
}

/* ---- server side -------------------------------------------------------- */

#define TXN_REMOTE_WORKERS_SPARE 4

static struct namespace *
remote_ns(struct txn_remote *rm, const char *name, size_t len)
{
	struct node *node = atomic_load_acquire(&rm->node);

	return node != NULL ? node_namespace_find(node, name, len) : NULL;
}

static int
handle_proxy(void *arg, uint64_t from, const uint8_t *req, size_t len, struct rpc_reply *reply)
{
	struct txn_remote *rm = arg;
	struct txn_proxy_req q;
	struct namespace *ns;
	struct record_attr attr;
	struct txn_record rec;
	const uint8_t *flat = NULL;
	uint8_t *enc = NULL;
	size_t flat_len = 0;
	bool writes;
	int rc;

	(void)from;
	STAT(rm, proxy_received);
	rc = txn_proxy_req_decode(req, len, &q);
	if (rc != 0)
		return rc;
	ns = remote_ns(rm, q.ns, q.ns_len);
	if (ns == NULL) {
		txn_proxy_req_release(&q);
		return TXN_ENOTMASTER;
	}
	writes = q.kind != TXN_PROXY_STAT && q.kind != TXN_PROXY_READ;
	if (writes) {
		uint32_t running = atomic_add(&rm->proxy_running, 1);

		if (running + TXN_REMOTE_WORKERS_SPARE > TXN_REMOTE_WORKERS) {
			atomic_dec(&rm->proxy_running);
			txn_proxy_req_release(&q);
			return -EAGAIN;
		}
	}
	memset(&attr, 0, sizeof(attr));
	memset(&rec, 0, sizeof(rec));
	record_init(&rec.rec);
	rc = txn_proxy_serve(ns, &q, &attr, &rec);
	if (writes)
		atomic_dec(&rm->proxy_running);
	if (rc == 0 && q.kind == TXN_PROXY_READ) {
		size_t sz = record_flat_size(&rec.rec);
		long n;

		enc = malloc(sz);
		n = enc != NULL ? record_flat_encode(&rec.rec, enc, sz) : -ENOMEM;
		if (n < 0) {
			rc = (int)n;
		} else {
			flat = enc;
			flat_len = (size_t)n;
		}
		attr = rec.attr;
	}
	if (rc == 0 && txn_proxy_ans_encode(q.kind == TXN_PROXY_DELETE || q.kind == TXN_PROXY_RENAME ||
	    q.kind == TXN_PROXY_SYNC ? NULL : &attr, flat, flat_len, reply->buf, reply->cap,
	    &reply->len) != 0)
		rc = -EFBIG;
	txn_record_release(&rec);
	free(enc);
	txn_proxy_req_release(&q);
	/* an error's answer has no body: the caller gets rc alone */
	if (rc != 0)
		(void)txn_proxy_ans_encode(NULL, NULL, 0, reply->buf, reply->cap, &reply->len);
	return rc;
}

static int
handle_replica(void *arg, uint64_t from, const uint8_t *req, size_t len, struct rpc_reply *reply)
{
	struct txn_remote *rm = arg;
	struct fabric_msg m;
	struct namespace *ns;
	const uint8_t *name, *flat;
	size_t name_len, flat_len;
	uint32_t durable;
	int rc;

	(void)from;
	reply->len = 0;
	STAT(rm, replica_received);
	if (fabric_msg_decode(req, len, &m) != 0 || m.type != TXN_MSG_REPLICA ||
	    fabric_msg_get_bytes(&m, TXN_RF_NS, &name, &name_len) != 0 ||
	    fabric_msg_get_u32(&m, TXN_RF_DURABLE, &durable) != 0 || durable > 1 ||
	    fabric_msg_get_bytes(&m, TXN_RF_RECORD, &flat, &flat_len) != 0 ||
	    flat_len < RECORD_FLAT_MIN_SIZE || flat_len > UINT32_MAX)
		return -EBADMSG;
	ns = remote_ns(rm, (const char *)name, name_len);
	if (ns == NULL)
		return TXN_ENOTMASTER;
	rc = txn_replica_apply(ns, flat, (uint32_t)flat_len, durable != 0);
	if (rc == 1)
		STAT(rm, replica_applied);
	else if (rc == 0)
		STAT(rm, replica_kept_older);
	return rc > 0 ? 0 : rc;
}

int
txn_remote_create(struct rpc *rpc, uint64_t self, const uint32_t *transaction_max_ms,
    uint32_t failover_ms, struct txn_remote **out)
{
	struct txn_remote *rm = calloc(1, sizeof(*rm));
	int rc;

	*out = NULL;
	if (rm == NULL)
		return -ENOMEM;
	rm->rpc = rpc;
	rm->self = self;
	rm->failover_ms = failover_ms;
	rm->transaction_max_ms = transaction_max_ms;
	rc = rpc_handler_set(rpc, RPC_OP_TXN_PROXY, 0, handle_proxy, rm);
	if (rc == 0)
		rc = rpc_handler_set(rpc, RPC_OP_TXN_PROXY_READ, RPC_HANDLER_IDEMPOTENT, handle_proxy, rm);
	if (rc == 0)
		rc = rpc_handler_set(rpc, RPC_OP_TXN_REPLICA, 0, handle_replica, rm);
	if (rc != 0) {
		free(rm);
		return rc;
	}
	*out = rm;
	return 0;
}

void
txn_remote_destroy(struct txn_remote *rm)
{
	free(rm);
}

void
txn_remote_node_set(struct txn_remote *rm, struct node *node)
{
	atomic_store_release(&rm->node, node);
}

void
txn_remote_values(struct txn_remote *rm, uint64_t *v)
{
	if (rm == NULL)
		return;
	v[STAT_FABRIC_proxy_sent] = atomic_load_relaxed(&rm->stats[RS_proxy_sent]);
	v[STAT_FABRIC_proxy_completed] = atomic_load_relaxed(&rm->stats[RS_proxy_completed]);
	v[STAT_FABRIC_proxy_failed] = atomic_load_relaxed(&rm->stats[RS_proxy_failed]);
	v[STAT_FABRIC_proxy_timed_out] = atomic_load_relaxed(&rm->stats[RS_proxy_timed_out]);
	v[STAT_FABRIC_proxy_rerouted] = atomic_load_relaxed(&rm->stats[RS_proxy_rerouted]);
	v[STAT_FABRIC_proxy_busy] = atomic_load_relaxed(&rm->stats[RS_proxy_busy]);
	v[STAT_FABRIC_proxy_received] = atomic_load_relaxed(&rm->stats[RS_proxy_received]);
	v[STAT_FABRIC_replica_writes_sent] = atomic_load_relaxed(&rm->stats[RS_replica_sent]);
	v[STAT_FABRIC_replica_writes_acked] = atomic_load_relaxed(&rm->stats[RS_replica_acked]);
	v[STAT_FABRIC_replica_writes_failed] = atomic_load_relaxed(&rm->stats[RS_replica_failed]);
	v[STAT_FABRIC_replica_writes_timed_out] = atomic_load_relaxed(&rm->stats[RS_replica_timed_out]);
	v[STAT_FABRIC_replica_writes_received] = atomic_load_relaxed(&rm->stats[RS_replica_received]);
	v[STAT_FABRIC_replica_writes_applied] = atomic_load_relaxed(&rm->stats[RS_replica_applied]);
	v[STAT_FABRIC_replica_writes_kept_older] =
	    atomic_load_relaxed(&rm->stats[RS_replica_kept_older]);
}
