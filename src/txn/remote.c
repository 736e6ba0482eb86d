/*
 * remote.c - proxied operations and replica writes (remote.h; docs/cluster.md,
 * "Data path").
 *
 * Caller side: txn_remote_proxy sends an operation to its master and
 * fills the caller's answer from the reply; txn_remote_replicate sends a
 * stored record version to the partition's other replicas and waits for
 * all of them.  Server side: three rpc handlers on rpc's workers, which
 * hand the decoded request to txn.c (txn_proxy_serve, txn_replica_apply);
 * stats, reads, replica writes and proxied writes are first tried on the
 * fabric thread (rpc inline handlers: txn_proxy_serve_nowait,
 * txn_replica_apply_nowait, txn_proxy_write_nowait), which serve what
 * needs no device I/O and finds its record lock free, and defer the rest
 * to the workers.  A proxied write served there stays pending until its
 * replica's ack is read (proxy_write_inline, below) - unless its replica
 * is the caller: then the version goes back in the answer, without the
 * file content the caller sent, and the caller stores it as the replica
 * write it would have been (version_answer, version_apply).
 *
 * Workers and the proxy: a proxied write blocks its worker while the
 * master waits for its replicas, and those replica writes need workers on
 * the other nodes; any proxied operation may wait for duplicate holders
 * (duplicate resolution), whose answers need workers there too.  Two
 * nodes proxying to each other could fill every worker with proxied
 * operations waiting for requests queued behind them.  So at most
 * workers - TXN_REMOTE_WORKERS_SPARE proxied operations run on the
 * workers at once; one more is answered -EAGAIN, and its caller tries
 * again after 1, 2, 4 ... ms within its deadline; replica writes and
 * duplicate holders' answers (which never wait for another node) always
 * find a worker.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/atomic.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "../cluster/partition.h"
#include "../cluster/rpc.h"
#include "../fabric/fabric.h"
#include "chunk.h"
#include "remote.h"
#include "txn_i.h"

enum remote_stat {
	RS_proxy_sent, RS_proxy_completed, RS_proxy_failed, RS_proxy_timed_out, RS_proxy_rerouted,
	RS_proxy_received, RS_proxy_busy,
	RS_replica_sent, RS_replica_acked, RS_replica_failed, RS_replica_timed_out,
	RS_replica_received, RS_replica_applied, RS_replica_kept_older, RS_replica_returned,
	RS_COUNT
};

struct txn_remote {
	struct rpc *rpc;
	const uint32_t *transaction_max_ms;
	uint64_t self;              /* this node's id */
	uint32_t failover_ms;       /* a dead node out of the tables: heartbeat timeout + quiet period */
	struct node *node;          /* atomic */
	uint32_t proxy_running;     /* atomic: proxied operations running on the workers */
	uint32_t writes_pending;    /* atomic: proxied writes served on the fabric thread, not
	                             * yet answered (at most TXN_REMOTE_PENDING_MAX) */
	uint64_t stats[RS_COUNT];   /* atomic */
};

#define STAT(rm, s) atomic_inc(&(rm)->stats[RS_##s])

/* ---- caller side: proxy ---------------------------------------------------- */

int txn_remote_take_version = 1;

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
	case TXN_OP_RENAME_IN: return TXN_PROXY_RENAME_IN;
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

static int replica_run(struct txn_remote *rm, const uint8_t *req, size_t len,
    struct rpc_reply *reply, bool nowait, const struct digest *want, const struct txn_write *w);
static int replica_decoded(struct txn_remote *rm, struct namespace *ns, const uint8_t *flat,
    size_t flat_len, bool durable, const struct txn_op_id *idp, bool nowait,
    const struct digest *want);
static struct namespace *ns_of_name(struct txn_remote *rm, const uint8_t *name, size_t len);

/*
 * A write's answer that hands the version back (docs/cluster.md, "Write
 * path"): this node is the partition's other replica, the master stored
 * the version and sent it nowhere else, so the write succeeds only once it
 * is stored here too, as the replica write it would have been (the same
 * checks: this node a replica in its own table, stop-writes, IF_NEWER).
 * 0 (none, or stored/kept), else -EIO (the master's copy stays).
 */
static int
version_apply(struct txn_remote *rm, const struct txn_target *t, uint64_t master,
    const uint8_t *body, size_t len, const struct txn_write *w)
{
	struct rpc_reply none = { .buf = NULL };
	const uint8_t *ver;
	size_t ver_len;
	int rc = txn_proxy_ans_version(body, len, &ver, &ver_len);

	if (rc == -ENOENT)
		return 0;
	if (rc == 0)
		rc = replica_run(rm, ver, ver_len, &none, false, &t->digest, w);
	if (rc == 0)
		return 0;
	txn_eio_log(t->ns, t->partition, "master %016" PRIx64 " stored the write and handed its "
	    "version back to this replica, which could not store it: %s", master,
	    rc == TXN_ENOTMASTER ? "not a replica in this node's table" : recfs_strerror(rc));
	return -EIO;
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
	uint8_t *buf, *flat = NULL;
	const uint8_t *tail;
	size_t len, tail_len;
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
		/* where this node is the other replica, the master hands the
		 * version back instead of sending it here (version_apply) */
		q.take_version = atomic_load_relaxed(&txn_remote_take_version) != 0;
	}
	if (op->kind == TXN_OP_WRITE || op->kind == TXN_OP_DELETE || op->kind == TXN_OP_RENAME ||
	    op->kind == TXN_OP_RENAME_IN) {
		q.id = op->id;
		q.retry = op->retry && op->id.seq != 0;
	}
	if (op->kind == TXN_OP_RENAME_IN) {
		size_t n = record_flat_size(&op->rec->rec);
		long el;

		flat = malloc(n);
		if (flat == NULL)
			return -ENOMEM;
		el = record_flat_encode(&op->rec->rec, flat, n);
		if (el < 0) {
			free(flat);
			return (int)el;
		}
		q.record = flat;
		q.record_len = (size_t)el;
		q.record_attr = op->rec->attr;
		q.rename_flags = op->flags;
	}
	rpc_op = op->kind == TXN_OP_STAT || op->kind == TXN_OP_READ ? RPC_OP_TXN_PROXY_READ
	    : RPC_OP_TXN_PROXY;
	rc = txn_proxy_req_encode_split(&q, &buf, &len, &tail, &tail_len);
	free(flat);
	if (rc == -EMSGSIZE)
		return -EFBIG;
	if (rc != 0)
		return rc;
	for (uint32_t backoff = 1;; backoff *= 2) {
		struct rpc_answer ans = { 0 };
		uint32_t left = ms_left(deadline);

		if (left == 0) {
			STAT(rm, proxy_timed_out);
			txn_eio_log(t->ns, t->partition, "master %016" PRIx64 " stayed busy for "
			    "transaction-max-ms (%u ms)", master, txn_remote_deadline_ms(rm));
			rc = -EIO;
			break;
		}
		STAT(rm, proxy_sent);
		rc = rpc_call2(rm->rpc, master, rpc_op, buf, len, tail, tail_len, left, &ans);
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
			txn_eio_log(t->ns, t->partition, "master %016" PRIx64 " did not answer within "
			    "transaction-max-ms (%u ms)", master, txn_remote_deadline_ms(rm));
			rc = -EIO;
		} else if (rc == -EHOSTDOWN || rc == -EHOSTUNREACH) {
			STAT(rm, proxy_failed);
			rc = -EHOSTDOWN;
		} else if (rc != 0) {
			STAT(rm, proxy_failed);
			txn_eio_log(t->ns, t->partition, "the call to master %016" PRIx64 " failed: %s",
			    master, strerror(-rc));
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
				txn_eio_log(t->ns, t->partition, "master %016" PRIx64 " sent an answer that "
				    "does not decode", master);
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
			if (rc == 0 && op->kind == TXN_OP_WRITE)
				rc = version_apply(rm, t, master, ans.body, ans.len, op->w);
			if (rc != -EIO)
				STAT(rm, proxy_completed);
		}
		rpc_answer_release(&ans);
		break;
	}
	free(buf);
	return rc;
}

int
txn_remote_dup_fetch(struct txn_remote *rm, uint64_t holder, const struct txn_target *t,
    uint64_t deadline_ns, uint8_t **flat, size_t *len)
{
	struct txn_proxy_req q = {
		.kind = TXN_PROXY_DUPRES, .ns = t->ns->name, .ns_len = strlen(t->ns->name), .k = t->k,
	};
	uint8_t *buf;
	size_t blen;
	int rc;

	*flat = NULL;
	*len = 0;
	rc = txn_proxy_req_encode(&q, &buf, &blen);
	if (rc != 0)
		return -EIO;
	for (uint32_t backoff = 1;; backoff *= 2) {
		struct rpc_answer ans = { 0 };
		uint32_t left = ms_left(deadline_ns);
		bool has_attr;
		struct record_attr attr;
		const uint8_t *rec;
		size_t rec_len;

		if (left == 0) {
			STAT(rm, proxy_timed_out);
			rc = -EIO;
			break;
		}
		STAT(rm, proxy_sent);
		rc = rpc_call(rm->rpc, holder, RPC_OP_TXN_PROXY_READ, buf, blen, left, &ans);
		/* Busy, or no connection to it right now (a member: it may be
		 * reconnecting after a merge): again within the deadline. */
		if ((rc == 0 && ans.err == -EAGAIN) || rc == -EAGAIN || rc == -EHOSTDOWN ||
		    rc == -EHOSTUNREACH) {
			rpc_answer_release(&ans);
			if (rc == 0 || rc == -EAGAIN)
				STAT(rm, proxy_busy);
			else
				STAT(rm, proxy_failed);
			if (backoff > 64)
				backoff = 64;
			left = ms_left(deadline_ns);
			sleep_ms(backoff < left ? backoff : left);
			continue;
		}
		if (rc != 0) {
			if (rc == -ETIMEDOUT)
				STAT(rm, proxy_timed_out);
			else
				STAT(rm, proxy_failed);
			rc = -EIO;
		} else if (ans.err == -ENOENT) {
			STAT(rm, proxy_completed);
			rc = 0;
		} else if (ans.err != 0 ||
		    txn_proxy_ans_decode(ans.body, ans.len, &has_attr, &attr, &rec, &rec_len) != 0 ||
		    rec == NULL || rec_len == 0) {
			STAT(rm, proxy_failed);
			rc = -EIO;
		} else {
			*flat = malloc(rec_len);
			if (*flat == NULL) {
				rc = -ENOMEM;
			} else {
				memcpy(*flat, rec, rec_len);
				*len = rec_len;
				STAT(rm, proxy_completed);
				rc = 0;
			}
		}
		rpc_answer_release(&ans);
		break;
	}
	free(buf);
	return rc;
}

/* ---- caller side: replica writes ------------------------------------------ */

int
txn_remote_replica_msg(const struct namespace *ns, const struct record *r, bool durable,
    const struct txn_op_id *id, uint8_t **body, size_t *len)
{
	/* exactly: the type, then the fields' headers (7 bytes) and values */
	size_t flat = record_flat_size(r), cap = 2 + 7 + strlen(ns->name) + 7 + 4 + 7 + flat +
	    (id != NULL ? 7 + TXN_OP_ID_WIRE_SIZE : 0);
	struct fabric_msg_writer fw;
	uint8_t *p;
	long n;

	*body = NULL;
	*len = 0;
	if (cap > RPC_BODY_MAX)
		return -EFBIG;
	p = malloc(cap);
	if (p == NULL)
		return -ENOMEM;
	fabric_msg_writer_init(&fw, p, cap, TXN_MSG_REPLICA);
	fabric_msg_put_bytes(&fw, TXN_RF_NS, ns->name, strlen(ns->name));
	fabric_msg_put_u32(&fw, TXN_RF_DURABLE, durable ? 1 : 0);
	if (id != NULL) {
		uint8_t b[TXN_OP_ID_WIRE_SIZE];

		txn_op_id_put(b, id);
		fabric_msg_put_bytes(&fw, TXN_RF_OP_ID, b, sizeof(b));
	}
	/* the record encoded where it is sent from: no copy of it */
	uint8_t *dst = fabric_msg_put_space(&fw, TXN_RF_RECORD, flat);

	n = dst != NULL ? record_flat_encode(r, dst, flat) : fw.err;
	if (n < 0 || (size_t)n != flat || fw.err != 0) {
		free(p);
		return n < 0 ? (int)n : -EFBIG;
	}
	*body = p;
	*len = fw.len;
	return 0;
}

/*
 * The rounds of a replica write from round first (0 or 1) on, done[0..
 * *n_done) the replicas that already took it.  Twice at most: the
 * replicas of the table now, then - when one is no longer a replica or
 * went down - those of the next table.
 */
static int
replicate_rounds(struct txn_remote *rm, struct namespace *ns, uint32_t pid, const uint8_t *body,
    size_t blen, int first, uint64_t *done, unsigned *n_done_io)
{
	struct txn_namespace *x = txn_namespace_of(ns);
	uint64_t deadline = clock_mono_ns() + (uint64_t)txn_remote_deadline_ms(rm) * 1000000;
	uint64_t node = rm->self;
	unsigned n_done = *n_done_io;
	int rc = 0;

	for (int round = first; round < 2; round++) {
		struct partition_rsv r;
		struct rpc_answer ans[PARTITION_REPLICAS_MAX];
		uint64_t to[PARTITION_REPLICAS_MAX];
		unsigned n = 0;
		bool again = false;
		struct rpc_group g;
		uint32_t left = ms_left(deadline);

		partition_reserve(x->partitions, pid, &r);
		if (r.master == 0 && r.cluster_key != 0) {
			/* A new table whose rebalance has not named the working
			 * master yet: wait for it (bounded), then decide. */
			partition_release(&r);
			(void)txn_partition_wait_working(ns, pid, 0, deadline);
			partition_reserve(x->partitions, pid, &r);
			left = ms_left(deadline);
		}
		if (!r.am_master) {
			/* The table changed under the write (it waited for a
			 * replica): this node is no longer the master, so it does
			 * not hand its version to the new one's replicas beside
			 * the new master's own writes.  The write fails. */
			partition_release(&r);
			rc = -EIO;
			break;
		}
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
	*n_done_io = n_done;
	return rc;
}

static void
replicate_failed_log(const struct namespace *ns, uint32_t pid, unsigned n_done)
{
	log_warn("txn", "{%s} a record version of partition %u reached %u replicas only: "
	    "the write fails (EIO) but stays here", ns->name, pid, n_done);
}

int
txn_remote_replicate(struct txn_remote *rm, struct namespace *ns, uint32_t pid, const uint8_t *body,
    size_t blen)
{
	uint64_t done[PARTITION_REPLICAS_MAX];
	unsigned n_done = 0;
	int rc = replicate_rounds(rm, ns, pid, body, blen, 0, done, &n_done);

	if (rc != 0)
		replicate_failed_log(ns, pid, n_done);
	return rc;
}

/* ---- caller side: tombstone reclaims ------------------------------------ */

int
txn_remote_reclaim(struct txn_remote *rm, struct namespace *ns, const struct partition_rsv *rsv,
    const struct ns_tomb *t)
{
	struct txn_namespace *x = txn_namespace_of(ns);
	const struct ns_set *set = &ns->sets.sets[t->set_id];
	struct rpc_answer ans[PARTITION_REPLICAS_MAX];
	uint8_t body[128 + CONFIG_NAME_MAX + RECORD_SET_MAX];
	struct fabric_msg_writer fw;
	struct rpc_group g;
	unsigned n = 0;
	int rc = 0;

	fabric_msg_writer_init(&fw, body, sizeof(body), TXN_MSG_RECLAIM);
	fabric_msg_put_bytes(&fw, TXN_CF_NS, ns->name, strlen(ns->name));
	if (t->set_id != 0)
		fabric_msg_put_bytes(&fw, TXN_CF_SET, set->name, set->len);
	fabric_msg_put_bytes(&fw, TXN_CF_DIGEST, t->digest.bytes, DIGEST_SIZE);
	fabric_msg_put_u32(&fw, TXN_CF_GENERATION, t->generation);
	fabric_msg_put_u64(&fw, TXN_CF_LUT, t->last_update_ms);
	if (fw.err != 0)
		return -EIO;
	for (unsigned i = 0; i < rsv->n_replicas; i++)
		n += rsv->replicas[i] != rm->self;
	if (n == 0)
		return 0;
	n = 0;
	memset(ans, 0, sizeof(ans));
	rpc_group_init(rm->rpc, &g, txn_remote_deadline_ms(rm));
	for (unsigned i = 0; i < rsv->n_replicas; i++) {
		if (rsv->replicas[i] == rm->self)
			continue;
		atomic_inc(&x->reclaims_sent);
		(void)rpc_group_send(&g, rsv->replicas[i], RPC_OP_TXN_RECLAIM, body, fw.len, &ans[n++]);
	}
	(void)rpc_group_wait(&g);
	for (unsigned i = 0; i < n; i++) {
		if (ans[i].rc == -ETIMEDOUT)
			rc = -ETIMEDOUT;
		else if (rc == 0 && ans[i].rc != 0)
			rc = -EIO;
		else if (rc == 0 && ans[i].err != 0)
			rc = ans[i].err == -EBUSY ? -EBUSY : -EIO;
		rpc_answer_release(&ans[i]);
	}
	if (rc != 0)
		atomic_inc(&x->reclaims_refused);
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

static struct namespace *
ns_of_name(struct txn_remote *rm, const uint8_t *name, size_t len)
{
	return remote_ns(rm, (const char *)name, len);
}

static int proxy_write_inline(struct txn_remote *rm, struct namespace *ns,
    const struct txn_proxy_req *q, uint64_t from, struct rpc_reply *reply);

/* A proxied operation; nowait: on the fabric thread (RPC_DEFER: not here). */
static int
proxy_run(struct txn_remote *rm, uint64_t from, const uint8_t *req, size_t len,
    struct rpc_reply *reply, bool nowait)
{
	struct txn_proxy_req q;
	struct namespace *ns;
	struct record_attr attr;
	struct txn_record rec;
	const uint8_t *flat = NULL;
	uint8_t *enc = NULL;
	size_t flat_len = 0;
	bool writes, has_attr;
	int rc;

	rc = txn_proxy_req_decode(req, len, &q);
	if (rc != 0) {
		STAT(rm, proxy_received);
		return rc;
	}
	ns = remote_ns(rm, q.ns, q.ns_len);
	if (ns == NULL) {
		STAT(rm, proxy_received);
		txn_proxy_req_release(&q);
		return TXN_ENOTMASTER;
	}
	txn_client_op(ns);
	if (q.kind == TXN_PROXY_DUPRES) {
		uint8_t *copy = NULL;
		uint32_t copy_len = 0;

		rc = txn_dup_copy(ns, &q.k, nowait, &copy, &copy_len);
		txn_proxy_req_release(&q);
		if (rc == -EWOULDBLOCK && nowait)
			return RPC_DEFER;
		STAT(rm, proxy_received);
		if (rc == 0 && txn_proxy_ans_encode(NULL, copy, copy_len, reply->buf, reply->cap,
		    &reply->len) != 0)
			rc = -EFBIG;
		free(copy);
		if (rc != 0)
			(void)txn_proxy_ans_encode(NULL, NULL, 0, reply->buf, reply->cap, &reply->len);
		return rc;
	}
	writes = q.kind != TXN_PROXY_STAT && q.kind != TXN_PROXY_READ;
	if (writes && nowait) {
		rc = q.kind == TXN_PROXY_WRITE ? proxy_write_inline(rm, ns, &q, from, reply) : RPC_DEFER;
		txn_proxy_req_release(&q);
		return rc;
	}
	/* On a worker a stat or read may wait for duplicate holders too
	 * (txn.c dup_resolve): counted with the writes. */
	if (!nowait) {
		uint32_t running = atomic_add(&rm->proxy_running, 1);

		if (running + TXN_REMOTE_WORKERS_SPARE > TXN_REMOTE_WORKERS) {
			STAT(rm, proxy_received);
			atomic_dec(&rm->proxy_running);
			txn_proxy_req_release(&q);
			return -EAGAIN;
		}
	}
	memset(&attr, 0, sizeof(attr));
	memset(&rec, 0, sizeof(rec));
	record_init(&rec.rec);
	rc = nowait ? txn_proxy_serve_nowait(ns, &q, &attr, &rec) : txn_proxy_serve(ns, &q, &attr, &rec);
	if (!nowait)
		atomic_dec(&rm->proxy_running);
	if (rc == -EWOULDBLOCK && nowait) {
		txn_record_release(&rec);
		txn_proxy_req_release(&q);
		return RPC_DEFER;
	}
	STAT(rm, proxy_received);
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
	/* Attributes for stat, read and write; a read's record. */
	has_attr = q.kind == TXN_PROXY_STAT || q.kind == TXN_PROXY_READ || q.kind == TXN_PROXY_WRITE;
	if (rc == 0 && txn_proxy_ans_encode(has_attr ? &attr : NULL, flat, flat_len, reply->buf,
	    reply->cap, &reply->len) != 0)
		rc = -EFBIG;
	txn_record_release(&rec);
	free(enc);
	txn_proxy_req_release(&q);
	/* an error's answer has no body: the caller gets rc alone */
	if (rc != 0)
		(void)txn_proxy_ans_encode(NULL, NULL, 0, reply->buf, reply->cap, &reply->len);
	return rc;
}

/*
 * A proxied write on the fabric thread (docs/cluster.md, "Write path"): the
 * master stores it (txn_proxy_write_nowait, its record lock kept), sends
 * the version to the one other replica with rpc_call_async and leaves the
 * request pending; the replica's answer completes it on the thread that
 * reads it - the record lock released, the proxied caller answered there -
 * so no worker is woken, and none waits for the ack.  Rare outcomes that
 * wait (a replica gone or no longer one: the next table; the table changed
 * before the send) continue on a worker (rpc_job_queue) with the blocking
 * rounds.  Ordering: the record lock is held from the store to the end, as
 * on a worker, so the next write of the record waits for it.
 */
/* Proxied writes pending at once (each holds its replica message, up to
 * TXN_INLINE_MAX + 1 KiB: 16 MiB at most); more go to the workers. */
#define TXN_REMOTE_PENDING_MAX 64

struct write_async {
	struct rpc_job job;
	struct txn_remote *rm;
	struct namespace *ns;
	struct rpc_pending pend;
	struct record_attr attr;
	struct digest d;
	uint32_t pid;
	uint64_t to;
	uint8_t *body;
	size_t size;
	uint64_t key;      /* the table the async round used */
	int first;         /* the worker's rounds start here (1: after the async one) */
};

/* The write's end: the record lock released, the caller answered. */
static void
write_async_end(struct write_async *a, int rc)
{
	uint8_t buf[256];
	size_t len = 0;

	txn_proxy_write_end(a->ns, &a->d, rc);
	if (rc == 0 && txn_proxy_ans_encode(&a->attr, NULL, 0, buf, sizeof(buf), &len) != 0)
		rc = -EFBIG;
	if (rc != 0)
		(void)txn_proxy_ans_encode(NULL, NULL, 0, buf, sizeof(buf), &len);
	rpc_answer_pending(a->rm->rpc, &a->pend, rc, buf, len);
	free(a->body);
	a->body = NULL;
}

/* A worker: a set of records that appeared is told to the others. */
static void
write_async_flush_job(void *arg, bool stopping)
{
	struct write_async *a = arg;

	if (!stopping)
		txn_sets_used_flush(a->ns);
	free(a);
}

/* The write counted done and a freed (after a worker told the others of
 * a set that appeared). */
static void
write_async_free(struct write_async *a)
{
	atomic_dec(&a->rm->writes_pending);
	if (txn_sets_used_pending(a->ns)) {
		a->job = (struct rpc_job){ .fn = write_async_flush_job, .arg = a };
		rpc_job_queue(a->rm->rpc, &a->job);
		return;
	}
	free(a);
}

/* The write answered by the handler itself (the version handed back):
 * the record lock released, the write counted, a freed (after a worker
 * told the others of a set that appeared, as write_async_finish). */
static void
write_async_end_quiet(struct write_async *a)
{
	txn_proxy_write_end(a->ns, &a->d, 0);
	free(a->body);
	a->body = NULL;
	write_async_free(a);
}

/* Ends a and frees it (a worker's job first when the sets must be told). */
static void
write_async_finish(struct write_async *a, int rc)
{
	write_async_end(a, rc);
	write_async_free(a);
}

/* A worker: the blocking rounds (the next table; or all of them). */
static void
write_async_job(void *arg, bool stopping)
{
	struct write_async *a = arg;
	uint64_t done[PARTITION_REPLICAS_MAX];
	unsigned n_done = 0;
	int rc = -EIO;

	if (!stopping) {
		rc = 0;
		if (a->first == 1 && txn_partition_wait_change(a->ns, a->pid, a->key,
		    txn_remote_failover_deadline(a->rm)) != 0)
			rc = -EIO;
		if (rc == 0)
			rc = replicate_rounds(a->rm, a->ns, a->pid, a->body, a->size, a->first, done,
			    &n_done);
	}
	if (rc != 0) {
		replicate_failed_log(a->ns, a->pid, n_done);
		rc = -EIO;
	}
	write_async_finish(a, rc);
}

static void
write_async_to_worker(struct write_async *a, int first)
{
	a->first = first;
	a->job = (struct rpc_job){ .fn = write_async_job, .arg = a };
	rpc_job_queue(a->rm->rpc, &a->job);
}

/* The replica's answer (or its failure, or the deadline). */
static void
write_async_done(void *arg, struct rpc_answer *ans)
{
	struct write_async *a = arg;
	int rc = -EIO;

	if (ans->rc == 0 && ans->err == 0) {
		STAT(a->rm, replica_acked);
		rc = 0;
	} else if (ans->rc == -ETIMEDOUT) {
		STAT(a->rm, replica_timed_out);
	} else if ((ans->rc == 0 && ans->err == TXN_ENOTMASTER) || ans->rc == -EHOSTDOWN ||
	    ans->rc == -EHOSTUNREACH) {
		/* the next table's replicas: a wait, so a worker's */
		STAT(a->rm, replica_failed);
		rpc_answer_release(ans);
		write_async_to_worker(a, 1);
		return;
	} else {
		STAT(a->rm, replica_failed);
	}
	rpc_answer_release(ans);
	if (rc != 0)
		replicate_failed_log(a->ns, a->pid, 0);
	write_async_finish(a, rc);
}

/* File content from this size on is left out of a version handed back. */
#define TXN_VERSION_HOLE_MIN 4096

/*
 * The answer handing a's version back to the caller q came from: its
 * replica write message, and when the stored file content is exactly the
 * request's (and large), that message without it: the record up to the
 * content, then the rest, with the offset (TXN_RF_CONTENT_AT).  The caller
 * puts its own content back; the record's CRC, which its apply checks,
 * proves the result is the stored bytes.  One crossing of the content per
 * write instead of two.  0 or -EFBIG (does not fit: not handed back).
 */
static int
version_answer(const struct namespace *ns, const struct txn_proxy_req *q,
    const struct write_async *a, struct rpc_reply *reply)
{
	const char *fbn = ns->cfg->file_bin;
	struct fabric_msg m;
	struct fabric_msg_writer fw;
	const uint8_t *name, *flat, *idb;
	size_t name_len, flat_len, id_len = 0, at = 0, cut = 0;
	uint32_t durable;
	struct record r;
	uint8_t *msg, *dst;
	int rc;

	if (q->w.set_file && q->w.file_len >= TXN_VERSION_HOLE_MIN &&
	    fabric_msg_decode(a->body, a->size, &m) == 0 &&
	    fabric_msg_get_bytes(&m, TXN_RF_NS, &name, &name_len) == 0 &&
	    fabric_msg_get_u32(&m, TXN_RF_DURABLE, &durable) == 0 &&
	    fabric_msg_get_bytes(&m, TXN_RF_RECORD, &flat, &flat_len) == 0 &&
	    fabric_msg_get_bytes(&m, TXN_RF_OP_ID, &idb, &id_len) != -EBADMSG &&
	    record_flat_decode_verified(flat, flat_len, &r) == 0) {
		const struct bin *b = record_bin_find(&r, fbn, strlen(fbn));

		if (b != NULL && b->type == BIN_BLOB && b->v.bytes.len == q->w.file_len &&
		    memcmp(b->v.bytes.data, q->w.file_data, q->w.file_len) == 0) {
			at = (size_t)(b->v.bytes.data - flat);
			cut = q->w.file_len;
		}
		record_release(&r);
	}
	if (cut == 0)
		return txn_proxy_ans_encode_version(&a->attr, a->body, a->size, reply->buf, reply->cap,
		    &reply->len) == 0 ? 0 : -EFBIG;
	/* the same message, its record holed (fields: 4 headers of 7 bytes) */
	msg = malloc(2 + 5 * 7 + name_len + 4 + TXN_OP_ID_WIRE_SIZE + 4 + flat_len - cut);
	if (msg == NULL)
		return -EFBIG;
	fabric_msg_writer_init(&fw, msg, 2 + 5 * 7 + name_len + 4 + TXN_OP_ID_WIRE_SIZE + 4 +
	    flat_len - cut, TXN_MSG_REPLICA);
	fabric_msg_put_bytes(&fw, TXN_RF_NS, name, name_len);
	fabric_msg_put_u32(&fw, TXN_RF_DURABLE, durable);
	if (id_len > 0)
		fabric_msg_put_bytes(&fw, TXN_RF_OP_ID, idb, id_len);
	fabric_msg_put_u32(&fw, TXN_RF_CONTENT_AT, (uint32_t)at);
	dst = fabric_msg_put_space(&fw, TXN_RF_RECORD, flat_len - cut);
	if (dst != NULL) {
		memcpy(dst, flat, at);
		memcpy(dst + at, flat + at + cut, flat_len - at - cut);
	}
	rc = fw.err != 0 || dst == NULL ? -EFBIG :
	    txn_proxy_ans_encode_version(&a->attr, msg, fw.len, reply->buf, reply->cap, &reply->len);
	free(msg);
	return rc == 0 ? 0 : -EFBIG;
}

/* The fabric thread: a proxied write.  RPC_DEFER, RPC_PENDING, or the
 * write's result (answered at once: no replica to wait for, the version
 * handed back to its caller, or refused). */
static int
proxy_write_inline(struct txn_remote *rm, struct namespace *ns, const struct txn_proxy_req *q,
    uint64_t from, struct rpc_reply *reply)
{
	struct write_async *a;
	struct partition_rsv r;
	unsigned others = 0;
	bool same;
	int rc;

	if (reply->pending == NULL)
		return RPC_DEFER;
	if (atomic_add(&rm->writes_pending, 1) > TXN_REMOTE_PENDING_MAX) {
		atomic_dec(&rm->writes_pending);
		return RPC_DEFER;
	}
	/* the write's state from the start (no memory: a worker's write) */
	a = calloc(1, sizeof(*a));
	rc = a == NULL ? -EWOULDBLOCK :
	    txn_proxy_write_nowait(ns, q, &a->attr, &a->d, &a->pid, &a->to, &a->body, &a->size);
	if (rc != 0) {
		atomic_dec(&rm->writes_pending);
		free(a);
	}
	if (rc == -EWOULDBLOCK)
		return RPC_DEFER;
	STAT(rm, proxy_received);
	if (rc != 0) {
		(void)txn_proxy_ans_encode(NULL, NULL, 0, reply->buf, reply->cap, &reply->len);
		return rc;
	}
	a->rm = rm;
	a->ns = ns;
	a->pend = *reply->pending;
	if (a->body == NULL) {
		/* no other replica: done now */
		write_async_finish(a, 0);
		return RPC_PENDING;
	}
	/* the table may have changed since the store: the same one, still
	 * naming this node master and that replica, or a worker's rounds */
	partition_reserve(txn_namespace_of(ns)->partitions, a->pid, &r);
	a->key = r.cluster_key;
	same = r.am_master && r.master != 0 && r.cluster_key != 0;
	for (unsigned i = 0; i < r.n_replicas; i++)
		if (r.replicas[i] != rm->self)
			others += r.replicas[i] == a->to ? 1 : 2;
	partition_release(&r);
	if (!same || others != 1) {
		write_async_to_worker(a, 0);
		return RPC_PENDING;
	}
	if (q->take_version && a->to == from && version_answer(ns, q, a, reply) == 0) {
		/* The other replica is the caller: the version goes back in the
		 * answer and the caller stores it (version_apply) - no message to
		 * it and back, no ack to wait for.  Ends here, lock released. */
		STAT(rm, replica_returned);
		/* One that carries the file's content (up to 256 KiB: a stream
		 * of them would crowd every other answer out of rpc's cache) is
		 * not kept for copies: a copy gets EIO and the write fails, never
		 * reported stored on the caller when it was not.  Without the
		 * content it is small and kept, as any answer. */
		reply->unkept = reply->len > TXN_VERSION_HOLE_MIN;
		write_async_end_quiet(a);
		return 0;
	}
	rc = rpc_call_async(rm->rpc, a->to, RPC_OP_TXN_REPLICA, a->body, a->size,
	    txn_remote_deadline_ms(rm), write_async_done, a);
	if (rc == -EAGAIN) {
		/* every call slot taken: a worker waits for one */
		write_async_to_worker(a, 0);
		return RPC_PENDING;
	}
	STAT(rm, replica_sent);
	if (rc != 0) {
		/* not sent (busy, down, silent): as its answer would say */
		struct rpc_answer ans = { .rc = rc };

		write_async_done(a, &ans);
	}
	return RPC_PENDING;
}

static int
handle_proxy(void *arg, uint64_t from, const uint8_t *req, size_t len, struct rpc_reply *reply)
{
	return proxy_run(arg, from, req, len, reply, false);
}

/* The fabric thread: a stat or read of a record in memory whose lock is free. */
static int
handle_proxy_inline(void *arg, uint64_t from, const uint8_t *req, size_t len,
    struct rpc_reply *reply)
{
	return proxy_run(arg, from, req, len, reply, true);
}

/* A replica write; nowait: on the fabric thread (RPC_DEFER: not here).
 * want (NULL: any): the record it must carry, and w the write whose file
 * content it may lack (TXN_RF_CONTENT_AT): a version handed back. */
static int
replica_run(struct txn_remote *rm, const uint8_t *req, size_t len, struct rpc_reply *reply,
    bool nowait, const struct digest *want, const struct txn_write *w)
{
	struct fabric_msg m;
	const uint8_t *name, *flat, *idb;
	uint8_t *whole = NULL;
	size_t name_len, flat_len, id_len;
	struct txn_op_id id = { 0 };
	uint32_t durable, at;
	int rc;

	reply->len = 0;
	if (fabric_msg_decode(req, len, &m) != 0 || m.type != TXN_MSG_REPLICA ||
	    fabric_msg_get_bytes(&m, TXN_RF_NS, &name, &name_len) != 0 ||
	    fabric_msg_get_u32(&m, TXN_RF_DURABLE, &durable) != 0 || durable > 1 ||
	    fabric_msg_get_bytes(&m, TXN_RF_RECORD, &flat, &flat_len) != 0 ||
	    flat_len > UINT32_MAX) {
		STAT(rm, replica_received);
		return -EBADMSG;
	}
	rc = fabric_msg_get_bytes(&m, TXN_RF_OP_ID, &idb, &id_len);
	if ((rc != 0 && rc != -ENOENT) || (rc == 0 && txn_op_id_get(idb, id_len, &id) != 0)) {
		STAT(rm, replica_received);
		return -EBADMSG;
	}
	/* A version handed back without the file's content: the caller's own
	 * goes back in (the record's CRC, checked by the apply, proves the
	 * bytes are the master's).  Never in a replica write proper. */
	rc = fabric_msg_get_u32(&m, TXN_RF_CONTENT_AT, &at);
	if (rc == 0 && (w == NULL || !w->set_file || at > flat_len ||
	    flat_len + w->file_len > UINT32_MAX)) {
		STAT(rm, replica_received);
		return -EBADMSG;
	}
	if (rc != 0 && rc != -ENOENT) {
		STAT(rm, replica_received);
		return -EBADMSG;
	}
	if (rc == 0) {
		whole = malloc(flat_len + w->file_len);
		if (whole == NULL)
			return -ENOMEM;
		memcpy(whole, flat, at);
		memcpy(whole + at, w->file_data, w->file_len);
		memcpy(whole + at + w->file_len, flat + at, flat_len - at);
		flat = whole;
		flat_len += w->file_len;
	}
	rc = replica_decoded(rm, ns_of_name(rm, name, name_len), flat, flat_len, durable != 0,
	    id.seq != 0 ? &id : NULL, nowait, want);
	free(whole);
	return rc;
}

/* The apply of a replica write's record (flat_len bytes at flat): see
 * replica_run. */
static int
replica_decoded(struct txn_remote *rm, struct namespace *ns, const uint8_t *flat, size_t flat_len,
    bool durable, const struct txn_op_id *idp, bool nowait, const struct digest *want)
{
	int rc;

	if (flat_len < RECORD_FLAT_MIN_SIZE) {
		STAT(rm, replica_received);
		return -EBADMSG;
	}
	if (want != NULL) {
		struct record_flat_header h;

		if (record_flat_header_check(flat, flat_len, &h) != 0 ||
		    memcmp(h.digest.bytes, want->bytes, DIGEST_SIZE) != 0) {
			STAT(rm, replica_received);
			return -EBADMSG;
		}
	}
	if (ns == NULL) {
		STAT(rm, replica_received);
		return TXN_ENOTMASTER;
	}
	txn_client_op(ns);
	rc = nowait ? txn_replica_apply_nowait(ns, flat, (uint32_t)flat_len, durable, idp)
	    : txn_replica_apply(ns, flat, (uint32_t)flat_len, durable, idp);
	if (rc == -EWOULDBLOCK && nowait)
		return RPC_DEFER;
	STAT(rm, replica_received);
	if (rc == 1)
		STAT(rm, replica_applied);
	else if (rc == 0)
		STAT(rm, replica_kept_older);
	return rc > 0 ? 0 : rc;
}

static int
handle_replica(void *arg, uint64_t from, const uint8_t *req, size_t len, struct rpc_reply *reply)
{
	(void)from;
	return replica_run(arg, req, len, reply, false, NULL, NULL);
}

/* The fabric thread: a version of a record in memory whose lock is free. */
static int
handle_replica_inline(void *arg, uint64_t from, const uint8_t *req, size_t len,
    struct rpc_reply *reply)
{
	(void)from;
	return replica_run(arg, req, len, reply, true, NULL, NULL);
}

static int
handle_reclaim(void *arg, uint64_t from, const uint8_t *req, size_t len, struct rpc_reply *reply)
{
	struct txn_remote *rm = arg;
	struct fabric_msg m;
	struct namespace *ns;
	struct ns_tomb t = { .set_id = 0 };
	const uint8_t *name, *set = NULL, *dig;
	size_t name_len, set_len = 0, dig_len;
	uint32_t gen;
	uint64_t lut;
	int rc;

	(void)from;
	reply->len = 0;
	if (fabric_msg_decode(req, len, &m) != 0 || m.type != TXN_MSG_RECLAIM ||
	    fabric_msg_get_bytes(&m, TXN_CF_NS, &name, &name_len) != 0 ||
	    fabric_msg_get_bytes(&m, TXN_CF_DIGEST, &dig, &dig_len) != 0 || dig_len != DIGEST_SIZE ||
	    fabric_msg_get_u32(&m, TXN_CF_GENERATION, &gen) != 0 || gen > UINT16_MAX ||
	    fabric_msg_get_u64(&m, TXN_CF_LUT, &lut) != 0)
		return -EBADMSG;
	rc = fabric_msg_get_bytes(&m, TXN_CF_SET, &set, &set_len);
	if (rc == -EBADMSG || (rc == 0 && (set_len == 0 || set_len > RECORD_SET_MAX)))
		return -EBADMSG;
	ns = remote_ns(rm, (const char *)name, name_len);
	if (ns == NULL)
		return TXN_ENOTMASTER;
	atomic_inc(&txn_namespace_of(ns)->reclaims_received);
	/* A set this node does not know: it holds no record of it. */
	if (set_len > 0 && set_lookup(&ns->sets, (const char *)set, set_len, &t.set_id) != 0)
		return 0;
	memcpy(t.digest.bytes, dig, DIGEST_SIZE);
	t.generation = (uint16_t)gen;
	t.last_update_ms = lut;
	rc = namespace_tomb_reclaim(ns, &t);
	return rc > 0 ? 0 : rc;
}

/* Another node's chunk reclaimer gathers (chunk.c encodes and decodes). */
static int
handle_chunks(void *arg, uint64_t from, const uint8_t *req, size_t len, struct rpc_reply *reply)
{
	struct txn_remote *rm = arg;
	struct fabric_msg m;
	const uint8_t *name;
	size_t name_len;
	struct namespace *ns;

	(void)from;
	reply->len = 0;
	if (fabric_msg_decode(req, len, &m) != 0 || m.type != TXN_MSG_CHUNKS ||
	    fabric_msg_get_bytes(&m, TXN_KF_NS, &name, &name_len) != 0)
		return -EBADMSG;
	ns = remote_ns(rm, (const char *)name, name_len);
	if (ns == NULL)
		return TXN_ENOTMASTER;
	return txn_chunk_serve(ns, req, len, reply);
}

int
txn_remote_call(struct txn_remote *rm, uint64_t node, uint32_t op, const void *req, size_t len,
    uint32_t min_ms, struct rpc_answer *ans)
{
	uint32_t ms = txn_remote_deadline_ms(rm);

	return rpc_call(rm->rpc, node, op, req, len, ms > min_ms ? ms : min_ms, ans);
}

uint64_t
txn_remote_self(const struct txn_remote *rm)
{
	return rm->self;
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
	if (rc == 0)   /* asked twice: the second finds nothing to drop */
		rc = rpc_handler_set(rpc, RPC_OP_TXN_RECLAIM, RPC_HANDLER_IDEMPOTENT, handle_reclaim, rm);
	if (rc == 0)   /* a gather only reads */
		rc = rpc_handler_set(rpc, RPC_OP_TXN_CHUNKS, RPC_HANDLER_IDEMPOTENT, handle_chunks, rm);
	/* served on the fabric thread when that cannot block (docs/cluster.md RPC) */
	if (rc == 0)
		rc = rpc_handler_inline_set(rpc, RPC_OP_TXN_PROXY_READ, handle_proxy_inline);
	if (rc == 0)
		rc = rpc_handler_inline_set(rpc, RPC_OP_TXN_PROXY, handle_proxy_inline);
	if (rc == 0)
		rc = rpc_handler_inline_set(rpc, RPC_OP_TXN_REPLICA, handle_replica_inline);
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
	v[STAT_FABRIC_replica_writes_returned] = atomic_load_relaxed(&rm->stats[RS_replica_returned]);
}
