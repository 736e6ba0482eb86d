/*
 * sets_cluster.c - the cluster side of sets (docs/cluster.md, "Sets and
 * listings"): rpc operation RPC_OP_SETS, whose body is a set message
 * (set_msg.h), and the thread that sends every set table to the other
 * nodes at each succession change; and listings across nodes (rpc
 * operation RPC_OP_LIST, txn_sets_list).
 *
 * What a node knows of a set is its state: live (its marker, with the
 * directory's metadata) or removed, each with the last-update time of
 * that state.  A node takes another's state only when it is newer than
 * its own (txn_set_merge), so receiving one twice, late, or from several
 * nodes changes nothing more: mkdir, rmdir and chmod broadcasts and the
 * tables sent at every succession change can all arrive in any order.
 * So a change made here whose send a node missed by going down or
 * restarting is done once that node is out of the succession or has
 * taken it again (settle_gone), not an EIO for a change that was made.
 * Checks before a change and listing pages change nothing where they run:
 * a node that cannot answer one yet is asked again under one policy
 * (ask_*, below), never an EIO at once nor a page with a node left out;
 * settle_gone sends a change again under the same policy.
 *
 * Threads: the handler runs on the rpc workers; txn_sets_send on the
 * caller's thread (a FUSE thread); the table thread waits on a condition
 * variable (no polling): woken by a succession change, by a send that a
 * node did not answer (then it tries again every SETS_RETRY_MS until every
 * node of the succession took the tables), and by stop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/atomic.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "../cluster/cluster.h"
#include "../cluster/rpc.h"
#include "set_msg.h"
#include "txn_i.h"

static void kick_locked(struct txn_sets *s);

void (*txn_sets_merge_test_hook)(void);

/* A table that a node did not take is sent again after this (ms). */
#define SETS_RETRY_MS 1000

struct txn_sets {
	struct rpc *rpc;
	uint64_t self;
	pthread_mutex_t lock;          /* the fields below */
	pthread_cond_t cv;             /* CLOCK_MONOTONIC: the table thread's */
	pthread_cond_t changed;        /* CLOCK_MONOTONIC: a new succession, or stop */
	struct node *node;
	uint64_t succession[CLUSTER_NODES_MAX];
	unsigned n;
	bool pending;                  /* tables to send */
	bool stop;
	pthread_t thread;
	bool started;
	/* Sets without a marker that other nodes hold records of, as each
	 * node last said (SET_MSG_USED): lock. */
	struct used_set *used;
	size_t n_used, cap_used;
	uint8_t buf[SET_MSG_MAX];      /* the table thread's */
};

/* One node's set of records only (sets_cluster.c "used" table). */
struct used_set {
	uint64_t node;
	const struct namespace *ns;
	char name[SET_MSG_NAME_MAX + 1];
	uint8_t len;
	uint64_t ctime_ms;
	int64_t mtime_ns;
};

/* At most this many entries per node and namespace (a set table's ids). */
#define USED_PER_NODE_MAX (SET_ID_MAX + 1)

/*
 * The namespace a request names, on the node the handlers serve: -EAGAIN
 * while no node is attached (the daemon closes the node only after
 * rpc_stop joined the workers), -ENOENT for a namespace it does not have.
 */
static int
handler_namespace(struct txn_sets *s, const char *name, struct namespace **out)
{
	struct node *node;

	pthread_mutex_lock(&s->lock);
	node = s->node;
	pthread_mutex_unlock(&s->lock);
	if (node == NULL)
		return -EAGAIN;
	*out = node_namespace_find(node, name, strlen(name));
	return *out != NULL ? 0 : -ENOENT;
}

/* What from_node says of its sets of records only (SET_MSG_USED: all of
 * them, replacing what it said before; _MORE: the next page). */
static int
used_take(struct txn_sets *s, const struct namespace *ns, uint64_t from_node, struct set_msg *m)
{
	struct set_msg_entry e;
	size_t had = 0;
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n_used;) {
		struct used_set *u = &s->used[i];

		if (u->node == from_node && u->ns == ns) {
			if (m->kind == SET_MSG_USED) {
				*u = s->used[--s->n_used];
				continue;
			}
			had++;
		}
		i++;
	}
	while (set_msg_entry_next(m, &e)) {
		if (had >= USED_PER_NODE_MAX) {
			rc = -ENOSPC;
			break;
		}
		if (s->n_used == s->cap_used) {
			size_t cap = s->cap_used ? s->cap_used * 2 : 64;
			struct used_set *v = realloc(s->used, cap * sizeof(*v));

			if (v == NULL) {
				rc = -ENOMEM;
				break;
			}
			s->used = v;
			s->cap_used = cap;
		}
		struct used_set *u = &s->used[s->n_used++];

		*u = (struct used_set){ .node = from_node, .ns = ns, .len = e.len,
		    .ctime_ms = e.lut_ms, .mtime_ns = e.mtime_ns };
		memcpy(u->name, e.name, e.len);
		had++;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static bool
in_succession_locked(const struct txn_sets *s, uint64_t node)
{
	for (unsigned i = 0; i < s->n; i++)
		if (s->succession[i] == node)
			return true;
	return false;
}

bool
txn_sets_used_elsewhere(struct txn_sets *s, const struct namespace *ns, const char *name,
    size_t len, uint64_t *ctime_ms, int64_t *mtime_ns)
{
	bool found = false;

	*ctime_ms = 0;
	*mtime_ns = 0;
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n_used; i++) {
		const struct used_set *u = &s->used[i];

		if (u->ns != ns || u->len != len || memcmp(u->name, name, len) != 0 ||
		    !in_succession_locked(s, u->node))
			continue;
		found = true;
		if (u->ctime_ms > *ctime_ms)
			*ctime_ms = u->ctime_ms;
		if (u->mtime_ns > *mtime_ns)
			*mtime_ns = u->mtime_ns;
	}
	pthread_mutex_unlock(&s->lock);
	return found;
}

static int
name_cmp(const void *a, const void *b)
{
	const struct used_set *x = a, *y = b;
	int c = memcmp(x->name, y->name, x->len < y->len ? x->len : y->len);

	return c != 0 ? c : (int)x->len - (int)y->len;
}

int
txn_sets_used_foreach(struct txn_sets *s, const struct namespace *ns,
    int (*fn)(void *arg, const char *name, size_t len), void *arg)
{
	struct used_set *v = NULL;
	size_t n = 0;
	bool nomem;
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	if (s->n_used > 0)
		v = malloc(s->n_used * sizeof(*v));
	nomem = s->n_used > 0 && v == NULL;
	for (size_t i = 0; v != NULL && i < s->n_used; i++)
		if (s->used[i].ns == ns && in_succession_locked(s, s->used[i].node))
			v[n++] = s->used[i];
	pthread_mutex_unlock(&s->lock);
	if (nomem)
		return -ENOMEM;
	if (n > 1)
		qsort(v, n, sizeof(*v), name_cmp);
	for (size_t i = 0; i < n && rc == 0; i++)
		if (i == 0 || name_cmp(&v[i - 1], &v[i]) != 0)
			rc = fn(arg, v[i].name, v[i].len);
	free(v);
	return rc;
}

void
txn_sets_kick(struct txn_sets *s)
{
	pthread_mutex_lock(&s->lock);
	kick_locked(s);
	pthread_mutex_unlock(&s->lock);
}

static int
sets_handler(void *arg, uint64_t from_node, const uint8_t *req, size_t len, struct rpc_reply *reply)
{
	struct txn_sets *s = arg;
	struct set_msg_entry e;
	struct namespace *ns;
	struct set_msg m;
	int rc = 0;

	reply->len = 0;
	if (set_msg_decode(req, len, &m) != 0)
		return -EBADMSG;
	rc = handler_namespace(s, m.ns, &ns);
	if (rc != 0)
		return rc;
	NS_COUNT_ADD(ns, set_changes_received, 1);
	if (m.kind == SET_MSG_USED || m.kind == SET_MSG_USED_MORE)
		return used_take(s, ns, from_node, &m);
	while (set_msg_entry_next(&m, &e)) {
		int erc = m.kind == SET_MSG_MERGE ? txn_set_merge(ns, &e) : txn_set_check(ns, m.kind, &e);

		if (erc != 0 && rc == 0)
			rc = erc;
	}
	return rc;
}

/* A node that went down or restarted during a send (not one that was
 * silent: that one may still be a member, and stays a failure), or a
 * process just started that has no node attached yet. */
struct gone_node {
	uint64_t node;
	int rc;                        /* -EHOSTDOWN, -EHOSTUNREACH, -ESTALE; -EAGAIN: its answer */
};

/* Sends buf[0..len) to the other nodes of succession[0..n); the number of
 * nodes that did not answer.  *err: the first handler error.  gone (may
 * be NULL; room for CLUSTER_NODES_MAX): the nodes that went down or
 * restarted meanwhile, or answered -EAGAIN (*n_gone of them), not counted
 * in the result. */
static unsigned
send_all(struct txn_sets *s, struct namespace *ns, const uint64_t *succession, unsigned n,
    const uint8_t *buf, size_t len, int *err, struct gone_node *gone, unsigned *n_gone)
{
	struct rpc_answer ans[RPC_GROUP_MAX];
	uint64_t to[RPC_GROUP_MAX];
	struct rpc_group g;
	unsigned k = 0, failed = 0;

	*err = 0;
	if (n_gone != NULL)
		*n_gone = 0;
	rpc_group_init(s->rpc, &g, 0);
	for (unsigned i = 0; i < n && k < RPC_GROUP_MAX; i++) {
		if (succession[i] == s->self || succession[i] == 0)
			continue;
		to[k] = succession[i];
		(void)rpc_group_send(&g, succession[i], RPC_OP_SETS, buf, len, &ans[k]);
		k++;
	}
	(void)rpc_group_wait(&g);
	for (unsigned i = 0; i < k; i++) {
		int rc = ans[i].rc;

		if (gone != NULL && (rc == -EHOSTDOWN || rc == -EHOSTUNREACH || rc == -ESTALE))
			gone[(*n_gone)++] = (struct gone_node){ .node = to[i], .rc = rc };
		else if (rc != 0)
			failed++;
		else if (gone != NULL && ans[i].err == -EAGAIN)
			gone[(*n_gone)++] = (struct gone_node){ .node = to[i], .rc = -EAGAIN };
		else if (ans[i].err != 0 && *err == 0)
			*err = ans[i].err;
		rpc_answer_release(&ans[i]);
	}
	NS_COUNT_ADD(ns, set_changes_sent, k);
	if (failed + (n_gone != NULL ? *n_gone : 0) > 0)
		NS_COUNT_ADD(ns, set_changes_failed, failed + (n_gone != NULL ? *n_gone : 0));
	return failed;
}

static void
kick_locked(struct txn_sets *s)
{
	s->pending = true;
	pthread_cond_signal(&s->cv);
}

/* ---- asking again: the one policy of the requests that change nothing ----
 *
 * A set check (SET_MSG_CHECK_*) and a page of a listing (RPC_OP_LIST)
 * change nothing where they run, so a node that could not run one yet is
 * simply asked again (docs/cluster.md, "Sets and listings"):
 *  - one that has no node attached yet (a process just started: its
 *    handlers answer -EAGAIN), one busy (rpc's -EAGAIN), a process that
 *    restarted after an earlier copy reached its predecessor (-ESTALE):
 *    after 10, 20, 40 ... ms, then every ASK_PAUSE_MAX_MS, within
 *    transaction-max-ms of the first send;
 *  - one the fabric reports down or never knew (-EHOSTDOWN,
 *    -EHOSTUNREACH): it may be restarting, so it is asked again likewise,
 *    but the bound becomes a write's wait for a master that went down
 *    (heartbeat timeout + quiet period + transaction-max-ms from then);
 *    once it is out of the succession the caller goes on without it (a
 *    check) or routes again (a listing, mkdir's name check);
 *  - anything else from the transport (-ETIMEDOUT: a silent node, still a
 *    member; -EIO, -ESHUTDOWN, -EOPNOTSUPP): the caller fails with EIO.
 * A pause ends early at a succession change (s->changed).
 */
#define ASK_PAUSE_MAX_MS 100

enum ask_outcome {
	ASK_ANSWERED,   /* the handler ran: its answer (err, body) */
	ASK_AGAIN,      /* not run yet: ask again */
	ASK_DOWN,       /* reported down: ask again until it leaves the succession */
	ASK_FAILED,     /* no answer to be had in time */
};

struct ask_policy {
	struct txn_sets *s;
	struct txn_remote *rm;         /* NULL: no data path (bounds by default) */
	uint64_t deadline;             /* monotonic ns */
	uint32_t pause_ms;             /* the next pause */
	bool down_seen;                /* the deadline is already the failover one */
	uint64_t who;                  /* the last node asked again, and why (logs) */
	int why;
};

static void
ask_begin(struct ask_policy *p, struct txn_sets *s, struct namespace *ns)
{
	p->s = s;
	p->rm = atomic_load_acquire(&txn_namespace_of(ns)->remote);
	p->deadline = clock_mono_ns() + (uint64_t)(p->rm != NULL ? txn_remote_deadline_ms(p->rm) :
	    RPC_DEADLINE_DEFAULT_MS) * 1000000;
	p->pause_ms = 10;
	p->down_seen = false;
	p->who = 0;
	p->why = 0;
}

/* A node was reported down: the bound becomes a write's wait for a master
 * that went down, from now (once). */
static void
ask_down_seen(struct ask_policy *p)
{
	if (!p->down_seen && p->rm != NULL) {
		uint64_t d = txn_remote_failover_deadline(p->rm);

		if (d > p->deadline)
			p->deadline = d;
	}
	p->down_seen = true;
}

/* What a's outcome asks of the caller; the handler's -EAGAIN (no node
 * attached yet) is not an answer either. */
static enum ask_outcome
ask_outcome(struct ask_policy *p, const struct rpc_answer *a)
{
	int rc = a->rc != 0 ? a->rc : a->err;

	if (rc == -EAGAIN || rc == -ESTALE)
		return ASK_AGAIN;
	if (a->rc == -EHOSTDOWN || a->rc == -EHOSTUNREACH) {
		ask_down_seen(p);
		return ASK_DOWN;
	}
	return a->rc != 0 ? ASK_FAILED : ASK_ANSWERED;
}

/* ms left before the deadline, at least 1 (an rpc group's budget). */
static uint32_t
ask_budget_ms(const struct ask_policy *p)
{
	uint64_t now = clock_mono_ns();

	return now + 1000000 < p->deadline ? (uint32_t)((p->deadline - now + 999999) / 1000000) : 1;
}

/* One round: buf sent to to[0..k) as RPC_OP_SETS within what is left of
 * p's deadline, their answers in ans[0..k) (each to be released). */
static void
ask_round(struct ask_policy *p, const uint64_t *to, unsigned k, const uint8_t *buf, size_t len,
    struct rpc_answer *ans)
{
	struct rpc_group g;

	rpc_group_init(p->s->rpc, &g, ask_budget_ms(p));
	for (unsigned i = 0; i < k; i++)
		(void)rpc_group_send(&g, to[i], RPC_OP_SETS, buf, len, &ans[i]);
	(void)rpc_group_wait(&g);
}

static bool
ask_member(struct txn_sets *s, uint64_t node)
{
	bool in;

	pthread_mutex_lock(&s->lock);
	in = in_succession_locked(s, node);
	pthread_mutex_unlock(&s->lock);
	return in;
}

/* The pause before the next round (10, 20, 40 ... ms, then every
 * ASK_PAUSE_MAX_MS), cut short by a succession change.  false: the
 * deadline has passed (or this node stops): the caller fails. */
static bool
ask_pause(struct ask_policy *p)
{
	uint64_t now = clock_mono_ns(), until;
	struct timespec ts;
	bool stop;

	if (now >= p->deadline)
		return false;
	until = now + (uint64_t)p->pause_ms * 1000000;
	if (until > p->deadline)
		until = p->deadline;
	p->pause_ms = p->pause_ms < ASK_PAUSE_MAX_MS / 2 ? p->pause_ms * 2 : ASK_PAUSE_MAX_MS;
	ts.tv_sec = (time_t)(until / 1000000000u);
	ts.tv_nsec = (long)(until % 1000000000u);
	pthread_mutex_lock(&p->s->lock);
	if (!p->s->stop)
		(void)pthread_cond_timedwait(&p->s->changed, &p->s->lock, &ts);
	stop = p->s->stop;
	pthread_mutex_unlock(&p->s->lock);
	return !stop && clock_mono_ns() < p->deadline;
}

/*
 * A check before a change (SET_MSG_CHECK_*: it changes nothing) at the
 * other nodes of succession[0..n), asked again as the policy above says.
 * The first refusal a node answers (-ENOTEMPTY, -EEXIST) decides at once.
 * A node reported down that has left the succession: the check goes on
 * without it, or (reroute: the check of one node, mkdir's name check at a
 * partition's master) ends with -EHOSTDOWN for the caller to route it
 * again.  0 once every node answered that nothing there stops the change;
 * -EIO when one is silent (-ETIMEDOUT) or still could not run it by the
 * deadline: nothing was changed anywhere yet.
 */
static int
check_all(struct txn_sets *s, struct namespace *ns, const uint64_t *succession, unsigned n,
    const uint8_t *buf, size_t len, bool reroute)
{
	struct ask_policy p;
	uint64_t to[RPC_GROUP_MAX];
	unsigned k = 0;
	int why = 0;

	ask_begin(&p, s, ns);
	for (unsigned i = 0; i < n && k < RPC_GROUP_MAX; i++)
		if (succession[i] != s->self && succession[i] != 0)
			to[k++] = succession[i];
	while (k > 0) {
		struct rpc_answer ans[RPC_GROUP_MAX];
		uint64_t again[RPC_GROUP_MAX];
		unsigned n_again = 0, failed = 0, left = 0;
		int err = 0;

		ask_round(&p, to, k, buf, len, ans);
		for (unsigned i = 0; i < k; i++) {
			switch (ask_outcome(&p, &ans[i])) {
			case ASK_ANSWERED:
				if (ans[i].err != 0 && err == 0)
					err = ans[i].err;
				break;
			case ASK_DOWN:
				why = ans[i].rc;
				if (!ask_member(s, to[i])) {
					log_info("txn", "{%s} set check: node %016llx went down and is out of "
					    "the cluster now: %s", ns->name, (unsigned long long)to[i],
					    reroute ? "asked of the partition's next master" :
					    "decided by the nodes that are left");
					left++;
					break;
				}
				again[n_again++] = to[i];
				break;
			case ASK_AGAIN:
				why = ans[i].rc != 0 ? ans[i].rc : ans[i].err;
				again[n_again++] = to[i];
				break;
			case ASK_FAILED:
				why = ans[i].rc;
				failed++;
				break;
			}
			rpc_answer_release(&ans[i]);
		}
		NS_COUNT_ADD(ns, set_changes_sent, k);
		if (err != 0)
			return err;
		if (failed == 0 && left > 0 && reroute)
			return -EHOSTDOWN;
		if (failed == 0 && n_again == 0)
			return 0;
		if (failed == 0 && ask_pause(&p)) {
			memcpy(to, again, n_again * sizeof(to[0]));
			k = n_again;
			continue;
		}
		/* counted once, as not answered: a node asked again is not */
		NS_COUNT_ADD(ns, set_changes_failed, failed + n_again);
		log_warn("txn", "{%s} set check: %u node(s) did not answer in time (%s); nothing "
		    "changed", ns->name, failed + n_again, recfs_strerror(why));
		return -EIO;
	}
	return 0;
}

/*
 * After a change made here (SET_MSG_MERGE), the nodes that went down or
 * restarted while it was sent (gone[0..n_gone)): the change is done once
 * each is out of the succession (it gets the set tables at the change
 * that takes it back) or has taken it from a copy sent again - merging a
 * state twice changes nothing.  Sent again under the policy above (a
 * restarted process, -ESTALE: its predecessor may or may not have merged
 * it; one that has no node attached yet, -EAGAIN; one reported down while
 * it is still a member), within a write's wait for a master that went
 * down (heartbeat timeout + quiet period + transaction-max-ms).  0, the
 * first node's -errno answer, or -EIO when a node still did not take it
 * by then.
 */
static int
settle_gone(struct txn_sets *s, struct namespace *ns, const struct gone_node *gone, unsigned n_gone,
    const uint8_t *buf, size_t len)
{
	struct ask_policy p;
	uint64_t to[RPC_GROUP_MAX];
	bool down[RPC_GROUP_MAX];
	unsigned k = 0;

	ask_begin(&p, s, ns);
	ask_down_seen(&p);
	for (unsigned i = 0; i < n_gone && k < RPC_GROUP_MAX; i++, k++) {
		to[k] = gone[i].node;
		down[k] = gone[i].rc != -ESTALE && gone[i].rc != -EAGAIN;
	}
	for (;;) {
		struct rpc_answer ans[RPC_GROUP_MAX];
		bool more = ask_pause(&p);
		unsigned n = 0, failed = 0;
		int err = 0;

		for (unsigned i = 0; i < k; i++) {
			if (down[i] && !ask_member(s, to[i])) {
				log_info("txn", "{%s} node %016llx went down during a set change and is out "
				    "of the cluster now: it gets the set tables when it is back", ns->name,
				    (unsigned long long)to[i]);
				continue;
			}
			to[n] = to[i];
			down[n++] = down[i];
		}
		k = n;
		if (k == 0)
			return 0;
		if (!more)
			return -EIO;
		ask_round(&p, to, k, buf, len, ans);
		n = 0;
		for (unsigned i = 0; i < k; i++) {
			switch (ask_outcome(&p, &ans[i])) {
			case ASK_ANSWERED:
				if (ans[i].err != 0 && err == 0)
					err = ans[i].err;
				break;
			case ASK_AGAIN:
			case ASK_DOWN:
				to[n] = to[i];
				down[n++] = ans[i].rc == -EHOSTDOWN || ans[i].rc == -EHOSTUNREACH;
				break;
			case ASK_FAILED:
				failed++;
				break;
			}
			rpc_answer_release(&ans[i]);
		}
		NS_COUNT_ADD(ns, set_changes_sent, k);
		if (failed + n > 0)
			NS_COUNT_ADD(ns, set_changes_failed, failed + n);
		if (err != 0)
			return err;
		if (failed > 0)
			return -EIO;
		k = n;
		if (k == 0)
			return 0;
	}
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
	if (kind == SET_MSG_MERGE && to_node == 0) {
		void (*hook)(void) = atomic_load_relaxed(&txn_sets_merge_test_hook);

		if (hook != NULL)
			hook();
	}
	pthread_mutex_lock(&s->lock);
	n = s->n;
	memcpy(succession, s->succession, n * sizeof(succession[0]));
	pthread_mutex_unlock(&s->lock);
	if (to_node != 0) {
		succession[0] = to_node;
		n = 1;
	}
	if (kind == SET_MSG_CHECK_EMPTY || kind == SET_MSG_CHECK_NAME)
		return check_all(s, ns, succession, n, buf, (size_t)(len + elen), to_node != 0);
	{
		struct gone_node gone[CLUSTER_NODES_MAX];
		unsigned n_gone = 0;
		bool settle = kind == SET_MSG_MERGE && to_node == 0;
		int rc = 0;

		if (send_all(s, ns, succession, n, buf, (size_t)(len + elen), &err,
		    settle ? gone : NULL, settle ? &n_gone : NULL) > 0)
			rc = -EIO;
		else if (n_gone > 0)
			rc = settle_gone(s, ns, gone, n_gone, buf, (size_t)(len + elen));
		if (rc == -EIO) {
			pthread_mutex_lock(&s->lock);
			kick_locked(s);
			pthread_mutex_unlock(&s->lock);
			return -EIO;
		}
		return rc != 0 ? rc : err;
	}
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
		if (send_all(s, ns, succession, n, s->buf, len, &err, NULL, NULL) > 0)
			ok = false;
	}
	return ok;
}

/* The sets of records only here (no marker, records here), in pages, to
 * the other nodes: the first page replaces what they knew of this node's.
 * true when every node took every page. */
static bool
send_used(struct txn_sets *s, struct namespace *ns, const uint64_t *succession, unsigned n)
{
	uint32_t max_id = atomic_load_acquire(&ns->sets.n);
	uint32_t id = 1;
	bool ok = true, first = true;

	while (first || id <= max_id) {
		uint8_t kind = first ? SET_MSG_USED : SET_MSG_USED_MORE;
		int hl = set_msg_encode_header(s->buf, sizeof(s->buf), kind, ns->name, 0);
		size_t len;
		uint16_t k = 0;
		int err;

		if (hl < 0)
			return false;
		len = (size_t)hl;
		for (; id <= max_id && k < SET_MSG_ENTRIES_MAX; id++) {
			const struct ns_set *set = &ns->sets.sets[id];
			struct set_msg_entry e = { .live = true };
			int el;

			if (atomic_load_relaxed(&set->marker) || atomic_load_relaxed(&set->objects) == 0)
				continue;
			memcpy(e.name, set->name, set->len);
			e.len = set->len;
			e.lut_ms = atomic_load_relaxed(&set->ctime_ms);
			e.mtime_ns = atomic_load_relaxed(&set->mtime_ns);
			el = set_msg_encode_entry(s->buf + len, sizeof(s->buf) - len, &e);
			if (el < 0)
				continue;
			len += (size_t)el;
			k++;
		}
		if (k == 0 && !first)
			break;
		(void)set_msg_encode_header(s->buf, sizeof(s->buf), kind, ns->name, k);
		if (send_all(s, ns, succession, n, s->buf, len, &err, NULL, NULL) > 0)
			ok = false;
		first = false;
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
				if (!send_table(s, node_namespace(node, i), succession, n) ||
				    !send_used(s, node_namespace(node, i), succession, n))
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

/* ---- listings ------------------------------------------------------------------ */

static void
entry_to_msg(const struct txn_entry *t, struct list_msg_entry *m)
{
	const struct record_attr *a = &t->attr;

	memset(m, 0, sizeof(*m));
	m->partition = (uint16_t)a->partition;
	memcpy(m->digest, a->digest.bytes, LIST_MSG_DIGEST);
	memcpy(m->key, t->key, t->key_len);
	m->key_len = (uint8_t)t->key_len;
	m->size = a->size;
	m->has_meta = a->has_meta;
	m->damaged = a->damaged;
	m->mode = a->mode;
	m->uid = a->uid;
	m->gid = a->gid;
	m->mtime_ns = a->mtime_ns;
	m->atime_ns = a->atime_ns;
	m->ino = a->ino;
	m->lut_ms = a->last_update_ms;
	m->generation = a->generation;
	m->void_time = a->void_time;
}

static void
entry_from_msg(const struct list_msg_entry *m, struct txn_entry *t)
{
	struct record_attr *a = &t->attr;

	memset(t, 0, sizeof(*t));
	memcpy(t->key, m->key, m->key_len);
	t->key[m->key_len] = '\0';
	t->key_len = m->key_len;
	memcpy(a->digest.bytes, m->digest, LIST_MSG_DIGEST);
	a->partition = m->partition;
	a->size = m->size;
	a->has_meta = m->has_meta;
	a->damaged = m->damaged;
	a->mode = m->mode;
	a->uid = m->uid;
	a->gid = m->gid;
	a->mtime_ns = m->mtime_ns;
	a->atime_ns = m->atime_ns;
	a->ino = m->ino;
	a->last_update_ms = m->lut_ms;
	a->generation = m->generation;
	a->void_time = m->void_time;
}

static int
list_handler(void *arg, uint64_t from_node, const uint8_t *req, size_t len, struct rpc_reply *reply)
{
	struct txn_sets *s = arg;
	struct list_msg_request r;
	struct txn_cursor cur = { 0 };
	struct txn_entry *ents;
	struct namespace *ns;
	size_t off;
	int n, rc;

	(void)from_node;
	reply->len = 0;
	if (list_msg_decode_request(req, len, &r) != 0)
		return -EBADMSG;
	rc = handler_namespace(s, r.ns, &ns);
	if (rc != 0)
		return rc;
	NS_COUNT_ADD(ns, list_pages_received, 1);
	ents = malloc(r.max * sizeof(*ents));
	if (ents == NULL)
		return -ENOMEM;
	cur.partition = r.partition;
	cur.started = r.started;
	memcpy(cur.last.bytes, r.digest, LIST_MSG_DIGEST);
	n = txn_list_local(ns, r.set, r.set_len, r.dir, &cur, r.mask, ents, r.max);
	if (n < 0) {
		free(ents);
		return n;
	}
	rc = list_msg_encode_answer_header(reply->buf, reply->cap, (uint16_t)n, cur.done);
	off = rc > 0 ? (size_t)rc : 0;
	for (int i = 0; rc > 0 && i < n; i++) {
		struct list_msg_entry m;

		entry_to_msg(&ents[i], &m);
		rc = list_msg_encode_entry(reply->buf + off, reply->cap - off, &m);
		if (rc > 0)
			off += (size_t)rc;
	}
	free(ents);
	if (rc < 0)
		return -EIO;
	reply->len = off;
	return 0;
}

/* One source of a page: this node's entries or one node's answer. */
struct list_stream {
	uint64_t node;                 /* 0: this node */
	uint8_t mask[LIST_MSG_MASK_BYTES];
	struct txn_entry *local;       /* this node: its entries */
	size_t n_local, i_local;
	struct list_msg_answer ans;    /* another node */
	struct list_msg_entry next;    /* its entry at the head */
	bool has_next;
	bool done;                     /* nothing after its last entry */
	bool missing;                  /* -ENOENT: the set is not there */
};

static bool
stream_head(struct list_stream *st, uint32_t *partition)
{
	if (st->node == 0) {
		if (st->i_local >= st->n_local)
			return false;
		*partition = st->local[st->i_local].attr.partition;
		return true;
	}
	if (!st->has_next)
		return false;
	*partition = st->next.partition;
	return true;
}

static void
stream_take(struct list_stream *st, struct txn_entry *out)
{
	if (st->node == 0) {
		*out = st->local[st->i_local++];
		return;
	}
	entry_from_msg(&st->next, out);
	st->has_next = list_msg_entry_next(&st->ans, &st->next);
}

/*
 * One attempt at a page (txn_sets_list): the number of entries, -errno, or
 * LIST_ASK_AGAIN when a node could not answer yet (ask_outcome: AGAIN or
 * DOWN; nothing is taken from the other nodes' answers then, the cursor
 * is unchanged).  The waits for a cluster or a working master end at
 * p->deadline.
 */
#define LIST_ASK_AGAIN 1000000

static int
list_page(struct txn_sets *s, struct namespace *ns, const char *set, size_t set_len,
    uint64_t dir, struct txn_cursor *cur, struct txn_entry *out, size_t max, struct ask_policy *pol)
{
	struct list_stream *st = NULL;
	struct rpc_answer *ans = NULL;
	uint8_t *reqs = NULL;
	struct rpc_group g;
	unsigned n_st = 1, n_remote, missing = 0;
	size_t n = 0;
	uint32_t last_part = 0;
	bool group = false, all_done = true;
	int rc = 0, req_len[CLUSTER_NODES_MAX];

	st = calloc(CLUSTER_NODES_MAX, sizeof(*st));
	ans = calloc(CLUSTER_NODES_MAX, sizeof(*ans));
	reqs = malloc((size_t)CLUSTER_NODES_MAX * LIST_MSG_REQUEST_MAX);
	if (st == NULL || ans == NULL || reqs == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	/* Who masters each partition from the cursor on (stream 0: here). */
	for (uint32_t p = cur->partition; p < PARTITION_COUNT; p++) {
		struct txn_partition tp = { .cluster_key = 0 };
		int grc = txn_partition_get(ns, p, &tp);
		unsigned k;

		if (grc == 0 && tp.cluster_key == 0 && pol->rm != NULL) {
			/* An orphan (its principal just died): its table says
			 * "master of everything", which is not true.  Wait for a
			 * cluster, as an operation does (txn_route). */
			(void)txn_partition_wait_change(ns, p, 0, pol->deadline);
			grc = txn_partition_get(ns, p, &tp);
		}
		if (grc == 0 && tp.master == 0 && tp.cluster_key != 0) {
			/* The rebalance of a change is pending (docs/cluster.md,
			 * "Rebalance and migration"): wait for it, as an operation does. */
			(void)txn_partition_wait_working(ns, p, 0, pol->deadline);
			grc = txn_partition_get(ns, p, &tp);
		}
		if (grc != 0 || tp.master == 0 || (tp.cluster_key == 0 && pol->rm != NULL)) {
			txn_eio_log(ns, p, "listing: no working master for it in time (%s)",
			    tp.cluster_key == 0 ? "this node is in no cluster" : "rebalance pending");
			rc = -EIO;
			goto out;
		}
		if (tp.am_master || tp.master == s->self) {
			k = 0;
		} else {
			for (k = 1; k < n_st && st[k].node != tp.master; k++)
				;
			if (k == n_st) {
				if (n_st == CLUSTER_NODES_MAX || n_st > RPC_GROUP_MAX) {
					rc = -EIO;
					goto out;
				}
				st[n_st++].node = tp.master;
			}
		}
		list_msg_mask_add(st[k].mask, p);
	}
	n_remote = n_st - 1;
	/* Every other node at once, then this node's share meanwhile. */
	if (n_remote > 0) {
		rpc_group_init(s->rpc, &g, ask_budget_ms(pol));
		group = true;
		for (unsigned k = 1; k < n_st; k++) {
			struct list_msg_request r = { 0 };
			uint8_t *b = reqs + (size_t)(k - 1) * LIST_MSG_REQUEST_MAX;

			snprintf(r.ns, sizeof(r.ns), "%s", ns->name);
			memcpy(r.set, set, set_len);
			r.set_len = (uint8_t)set_len;
			r.partition = (uint16_t)cur->partition;
			r.started = cur->started;
			memcpy(r.digest, cur->last.bytes, LIST_MSG_DIGEST);
			r.max = (uint16_t)max;
			r.dir = dir;
			memcpy(r.mask, st[k].mask, sizeof(r.mask));
			req_len[k - 1] = list_msg_encode_request(b, LIST_MSG_REQUEST_MAX, &r);
			if (req_len[k - 1] < 0) {
				ans[k - 1].rc = req_len[k - 1];
				continue;
			}
			(void)rpc_group_send(&g, st[k].node, RPC_OP_LIST, b, (size_t)req_len[k - 1],
			    &ans[k - 1]);
		}
		NS_COUNT_ADD(ns, list_pages_sent, n_remote);
	}
	{
		struct txn_cursor lc = *cur;
		int ln;

		st[0].local = malloc(max * sizeof(*st[0].local));
		if (st[0].local == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		ln = txn_list_local(ns, set, set_len, dir, &lc, st[0].mask, st[0].local, max);
		if (ln == -ENOENT) {
			st[0].missing = true;
			st[0].done = true;
			missing++;
		} else if (ln < 0) {
			rc = ln;
			goto out;
		} else {
			st[0].n_local = (size_t)ln;
			st[0].done = lc.done;
		}
	}
	if (group) {
		group = false;
		(void)rpc_group_wait(&g);
		for (unsigned k = 1; k < n_st; k++) {
			struct rpc_answer *a = &ans[k - 1];
			enum ask_outcome o = ask_outcome(pol, a);

			if (o == ASK_AGAIN || o == ASK_DOWN) {
				/* asked again, the whole page (routed again if the
				 * table changed meanwhile), unless one failed */
				pol->why = a->rc != 0 ? a->rc : a->err;
				pol->who = st[k].node;
				if (rc == 0)
					rc = LIST_ASK_AGAIN;
			} else if (a->rc != 0) {
				log_warn("txn", "{%s} listing: node %016llx did not answer (%s)", ns->name,
				    (unsigned long long)st[k].node, recfs_strerror(a->rc));
				rc = -EIO;
			} else if (a->err == -ENOENT) {
				st[k].missing = true;
				st[k].done = true;
				missing++;
			} else if (a->err != 0 || list_msg_decode_answer(a->body, a->len, &st[k].ans) != 0) {
				log_warn("txn", "{%s} listing: node %016llx answered %s", ns->name,
				    (unsigned long long)st[k].node,
				    a->err != 0 ? recfs_strerror(a->err) : "a malformed page");
				rc = -EIO;
			} else {
				st[k].done = st[k].ans.done;
				st[k].has_next = list_msg_entry_next(&st[k].ans, &st[k].next);
			}
		}
		if (rc != 0)
			goto out;
	}
	if (missing == n_st) {
		rc = -ENOENT;
		goto out;
	}
	/* Merge: streams cover disjoint partitions, each in listing order. */
	while (n < max) {
		unsigned best = n_st;
		uint32_t bp = 0, p;

		for (unsigned k = 0; k < n_st; k++)
			if (stream_head(&st[k], &p) && (best == n_st || p < bp)) {
				best = k;
				bp = p;
			}
		if (best == n_st)
			break;
		/* An entry outside what that node was asked for, or out of
		 * order: the page cannot be trusted. */
		if (bp < last_part || bp < cur->partition || !list_msg_mask_has(st[best].mask, bp)) {
			txn_eio_log(ns, bp, "listing: node %016llx sent an entry it was not asked for or "
			    "out of order", (unsigned long long)st[best].node);
			rc = -EIO;
			goto out;
		}
		last_part = bp;
		stream_take(&st[best], &out[n++]);
		/* A node that has more than it sent ends the page at its last
		 * entry: the next page starts there for every node, so nothing
		 * of its after that entry is skipped by another's later ones. */
		if (!st[best].done && !stream_head(&st[best], &p))
			break;
	}
	for (unsigned k = 0; k < n_st; k++) {
		uint32_t p;

		if (!st[k].done || stream_head(&st[k], &p))
			all_done = false;
	}
	if (n > 0) {
		cur->partition = out[n - 1].attr.partition;
		cur->last = out[n - 1].attr.digest;
		cur->started = true;
	}
	if (all_done)
		cur->done = true;
	else if (n == 0) {
		txn_eio_log(ns, cur->partition, "listing: a node said \"more\" and sent nothing");
		rc = -EIO;
	}
out:
	if (group)
		(void)rpc_group_wait(&g);
	for (unsigned k = 0; ans != NULL && k + 1 < n_st; k++)
		rpc_answer_release(&ans[k]);
	if (st != NULL)
		free(st[0].local);
	free(st);
	free(ans);
	free(reqs);
	return rc != 0 ? rc : (int)n;
}

int
txn_sets_list(struct txn_sets *s, struct namespace *ns, const char *set, size_t set_len,
    uint64_t dir, struct txn_cursor *cur, struct txn_entry *out, size_t max)
{
	struct ask_policy p;
	int rc;

	if (cur->done || max == 0)
		return 0;
	if (max > LIST_MSG_ENTRIES_MAX)
		max = LIST_MSG_ENTRIES_MAX;
	ask_begin(&p, s, ns);
	while ((rc = list_page(s, ns, set, set_len, dir, cur, out, max, &p)) == LIST_ASK_AGAIN) {
		if (!ask_pause(&p)) {
			txn_eio_log(ns, cur->partition, "listing: node %016llx could not answer in time "
			    "(%s)", (unsigned long long)p.who, recfs_strerror(p.why));
			return -EIO;
		}
	}
	return rc;
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
	pthread_cond_init(&s->changed, &ca);
	pthread_condattr_destroy(&ca);
	rc = rpc_handler_set(rpc, RPC_OP_SETS, RPC_HANDLER_IDEMPOTENT, sets_handler, s);
	if (rc == 0)
		rc = rpc_handler_set(rpc, RPC_OP_LIST, RPC_HANDLER_IDEMPOTENT, list_handler, s);
	if (rc == 0) {
		rc = -pthread_create(&s->thread, NULL, sets_thread, s);
		s->started = rc == 0;
		if (rc == 0)
			pthread_setname_np(s->thread, "sets");
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
	pthread_cond_broadcast(&s->changed);
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
	pthread_cond_broadcast(&s->changed);
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
	pthread_cond_destroy(&s->changed);
	pthread_mutex_destroy(&s->lock);
	free(s->used);
	free(s);
}
