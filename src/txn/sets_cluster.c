/*
 * sets_cluster.c - the cluster side of sets (docs/cluster.md, "Sets and
 * listings"): rpc operation RPC_OP_SETS, whose body is a set message
 * (set_msg.h), and the thread that sends every set table to the other
 * nodes at each succession change.
 *
 * What a node knows of a set is its state: live (its marker, with the
 * directory's metadata) or removed, each with the last-update time of
 * that state.  A node takes another's state only when it is newer than
 * its own (txn_set_merge), so receiving one twice, late, or from several
 * nodes changes nothing more: mkdir, rmdir and chmod broadcasts and the
 * tables sent at every succession change can all arrive in any order.
 *
 * Threads: the handler runs on the rpc workers; txn_sets_send on the
 * caller's thread (a FUSE thread); the table thread waits on a condition
 * variable (no polling): woken by a succession change, by a send that a
 * node did not answer (then it tries again every SETS_RETRY_MS until every
 * node of the succession took the tables), and by stop.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/clock.h"
#include "../base/log.h"
#include "../cluster/cluster.h"
#include "../cluster/rpc.h"
#include "set_msg.h"
#include "txn_i.h"

/* A table that a node did not take is sent again after this (ms). */
#define SETS_RETRY_MS 1000

struct txn_sets {
	struct rpc *rpc;
	uint64_t self;
	pthread_mutex_t lock;          /* the fields below */
	pthread_cond_t cv;             /* CLOCK_MONOTONIC */
	struct node *node;
	uint64_t succession[CLUSTER_NODES_MAX];
	unsigned n;
	bool pending;                  /* tables to send */
	bool stop;
	pthread_t thread;
	bool started;
	uint8_t buf[SET_MSG_MAX];      /* the table thread's */
};

static struct namespace *
namespace_named(struct node *node, const char *name)
{
	for (unsigned i = 0; i < node_namespace_count(node); i++) {
		struct namespace *ns = node_namespace(node, i);

		if (strcmp(ns->name, name) == 0)
			return ns;
	}
	return NULL;
}

static int
sets_handler(void *arg, uint64_t from_node, const uint8_t *req, size_t len, struct rpc_reply *reply)
{
	struct txn_sets *s = arg;
	struct set_msg_entry e;
	struct namespace *ns;
	struct set_msg m;
	struct node *node;
	int rc = 0;

	(void)from_node;
	reply->len = 0;
	if (set_msg_decode(req, len, &m) != 0)
		return -EBADMSG;
	pthread_mutex_lock(&s->lock);
	node = s->node;
	pthread_mutex_unlock(&s->lock);
	/* The daemon closes the node only after rpc_stop joined the workers. */
	if (node == NULL)
		return -EAGAIN;
	ns = namespace_named(node, m.ns);
	if (ns == NULL)
		return -ENOENT;
	NS_COUNT_ADD(ns, set_changes_received, 1);
	while (set_msg_entry_next(&m, &e)) {
		int erc = m.kind == SET_MSG_MERGE ? txn_set_merge(ns, &e) : txn_set_check(ns, m.kind, &e);

		if (erc != 0 && rc == 0)
			rc = erc;
	}
	return rc;
}

/* Sends buf[0..len) to the other nodes of succession[0..n); the number of
 * nodes that did not answer.  *err: the first handler error. */
static unsigned
send_all(struct txn_sets *s, struct namespace *ns, const uint64_t *succession, unsigned n,
    const uint8_t *buf, size_t len, int *err)
{
	struct rpc_answer ans[RPC_GROUP_MAX];
	struct rpc_group g;
	unsigned k = 0, failed = 0;

	*err = 0;
	rpc_group_init(s->rpc, &g, 0);
	for (unsigned i = 0; i < n && k < RPC_GROUP_MAX; i++) {
		if (succession[i] == s->self || succession[i] == 0)
			continue;
		(void)rpc_group_send(&g, succession[i], RPC_OP_SETS, buf, len, &ans[k]);
		k++;
	}
	(void)rpc_group_wait(&g);
	for (unsigned i = 0; i < k; i++) {
		if (ans[i].rc != 0)
			failed++;
		else if (ans[i].err != 0 && *err == 0)
			*err = ans[i].err;
		rpc_answer_release(&ans[i]);
	}
	NS_COUNT_ADD(ns, set_changes_sent, k);
	if (failed > 0)
		NS_COUNT_ADD(ns, set_changes_failed, failed);
	return failed;
}

static void
kick_locked(struct txn_sets *s)
{
	s->pending = true;
	pthread_cond_signal(&s->cv);
}

int
txn_sets_send(struct txn_sets *s, struct namespace *ns, unsigned kind,
    const struct set_msg_entry *e, uint64_t to_node)
{
	uint8_t buf[SET_MSG_HEADER_MAX + SET_MSG_ENTRY_MAX];
	uint64_t succession[CLUSTER_NODES_MAX];
	unsigned n;
	int len, elen, err;

	len = set_msg_encode_header(buf, sizeof(buf), (uint8_t)kind, ns->name, 1);
	if (len < 0)
		return len;
	elen = set_msg_encode_entry(buf + len, sizeof(buf) - (size_t)len, e);
	if (elen < 0)
		return elen;
	pthread_mutex_lock(&s->lock);
	n = s->n;
	memcpy(succession, s->succession, n * sizeof(succession[0]));
	pthread_mutex_unlock(&s->lock);
	if (to_node != 0) {
		succession[0] = to_node;
		n = 1;
	}
	if (send_all(s, ns, succession, n, buf, (size_t)(len + elen), &err) > 0) {
		pthread_mutex_lock(&s->lock);
		kick_locked(s);
		pthread_mutex_unlock(&s->lock);
		return -EIO;
	}
	return err;
}

/* One namespace's set table to the other nodes, in pages; true when every
 * node took every page. */
static bool
send_table(struct txn_sets *s, struct namespace *ns, const uint64_t *succession, unsigned n)
{
	uint32_t max_id = atomic_load_acquire(&ns->sets.n);
	uint32_t id = 1;
	bool ok = true;

	while (id <= max_id) {
		int hl = set_msg_encode_header(s->buf, sizeof(s->buf), SET_MSG_MERGE, ns->name, 0);
		size_t len;
		uint16_t k = 0;
		int err;

		if (hl < 0)
			return false;
		len = (size_t)hl;
		for (; id <= max_id && k < SET_MSG_ENTRIES_MAX; id++) {
			struct set_msg_entry e;
			int el;

			if (txn_set_state(ns, (uint16_t)id, &e) != 0)
				continue;
			el = set_msg_encode_entry(s->buf + len, sizeof(s->buf) - len, &e);
			if (el < 0)
				continue;
			len += (size_t)el;
			k++;
		}
		if (k == 0)
			break;
		/* the count, now known */
		(void)set_msg_encode_header(s->buf, sizeof(s->buf), SET_MSG_MERGE, ns->name, k);
		if (send_all(s, ns, succession, n, s->buf, len, &err) > 0)
			ok = false;
	}
	return ok;
}

static void *
sets_thread(void *arg)
{
	struct txn_sets *s = arg;
	uint64_t succession[CLUSTER_NODES_MAX];

	pthread_mutex_lock(&s->lock);
	for (;;) {
		struct node *node;
		unsigned n;
		bool ok = true;

		while (!s->stop && !(s->pending && s->node != NULL))
			pthread_cond_wait(&s->cv, &s->lock);
		if (s->stop)
			break;
		s->pending = false;
		node = s->node;
		n = s->n;
		memcpy(succession, s->succession, n * sizeof(succession[0]));
		pthread_mutex_unlock(&s->lock);
		if (n > 1)
			for (unsigned i = 0; i < node_namespace_count(node); i++)
				if (!send_table(s, node_namespace(node, i), succession, n))
					ok = false;
		pthread_mutex_lock(&s->lock);
		if (!ok && !s->stop) {
			struct timespec ts;

			/* Some node did not take it: again after a while (or at
			 * the next change, whichever comes first). */
			s->pending = true;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += SETS_RETRY_MS / 1000;
			ts.tv_nsec += (SETS_RETRY_MS % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			while (!s->stop)
				if (pthread_cond_timedwait(&s->cv, &s->lock, &ts) != 0)
					break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int
txn_sets_create(struct rpc *rpc, uint64_t self, struct txn_sets **out)
{
	struct txn_sets *s = calloc(1, sizeof(*s));
	pthread_condattr_t ca;
	int rc;

	*out = NULL;
	if (s == NULL)
		return -ENOMEM;
	s->rpc = rpc;
	s->self = self;
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);
	rc = rpc_handler_set(rpc, RPC_OP_SETS, RPC_HANDLER_IDEMPOTENT, sets_handler, s);
	if (rc == 0) {
		rc = -pthread_create(&s->thread, NULL, sets_thread, s);
		s->started = rc == 0;
	}
	if (rc != 0) {
		txn_sets_destroy(s);
		return rc;
	}
	*out = s;
	return 0;
}

void
txn_sets_attach(struct txn_sets *s, struct node *node)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	s->node = node;
	if (node != NULL)
		kick_locked(s);
	pthread_mutex_unlock(&s->lock);
}

void
txn_sets_changed(struct txn_sets *s, const uint64_t *succession, unsigned n)
{
	if (s == NULL)
		return;
	if (n > CLUSTER_NODES_MAX)
		n = CLUSTER_NODES_MAX;
	pthread_mutex_lock(&s->lock);
	memcpy(s->succession, succession, n * sizeof(succession[0]));
	s->n = n;
	kick_locked(s);
	pthread_mutex_unlock(&s->lock);
}

void
txn_sets_stop(struct txn_sets *s)
{
	if (s == NULL || !s->started)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	s->started = false;
}

void
txn_sets_destroy(struct txn_sets *s)
{
	if (s == NULL)
		return;
	txn_sets_stop(s);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
