/*
 * rpc.c - request/answer over the fabric (rpc.h, docs/cluster.md "RPC").
 *
 * Caller side: a fixed table of call slots (calls_max).  A request id is
 * (sequence << RPC_SLOT_BITS) | slot, so an answer finds its slot at once
 * and an answer for an older call of the same slot does not match.  The
 * caller's own thread sleeps on its group's futex word (futex_wait_until)
 * and sends the retransmissions; the fabric thread only fills answers and
 * wakes it, after dropping the lock.
 * No rpc timer thread: an idle node sleeps.
 *
 * Server side: a hash of kept requests keyed by (origin, incarnation,
 * request id), a FIFO of queued ones for the workers and a FIFO of the
 * answered ones by answer time, so expiry (2 x transaction-max-ms) pops
 * from its head.  Entries are created on the fabric thread (a malloc and a
 * copy of the body, bounded by the queue's bounds), run by a worker, and
 * kept until they expire.
 *
 * One lock (rpc->lock) protects both sides; nothing blocks under it (no
 * handler runs and no message is sent while it is held: a kept answer is
 * copied out under it and sent after), so it is a leaf.
 *
 * Rejected: a retransmit thread scanning every few ms (Aerospike's): a
 * blocking caller's thread has nothing else to do and wakes exactly when
 * a retry is due; an unbounded answer cache evicted by age alone (a
 * flood of requests would grow it); forgetting the oldest request when
 * the table is full (a late copy of it would run twice: busy instead).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../base/atomic.h"
#include "../base/clock.h"
#include "../base/error.h"
#include "../base/log.h"
#include "rpc.h"

#define RPC_SLOT_BITS 20
#define RPC_SLOT_NONE UINT32_MAX
/* Nodes remembered as down (the fabric keeps at most 256 node ids). */
#define RPC_DOWN_MAX 256
/* An idle node expires kept answers this late at most, in batches. */
#define RPC_EXPIRY_SLACK_MS 100
/* The encoded fields around a body. */
#define RPC_MSG_OVERHEAD 128

struct rpc_slot {
	uint64_t id;             /* 0: free */
	uint64_t node;
	struct rpc_group *g;
	unsigned gi;             /* index in g */
	bool done;
	uint32_t op;
	const uint8_t *req;      /* the caller's, valid until rpc_group_wait returns */
	size_t req_len;
	const uint8_t *req2;     /* its second piece (rpc_group_send2), or NULL */
	size_t req2_len;
	uint64_t start_ns;
	uint64_t rx_start;        /* messages heard from node when the call started */
	uint64_t retry_until_ns; /* no retransmission after this */
	uint64_t next_retry_ns;
	uint32_t retry_ms;
	uint32_t copies;         /* copies sent (or being sent) */
	uint32_t busy;           /* busy answers: each says one copy did not run */
	uint64_t expect_inc;     /* the callee's incarnation when the first copy went (0: unknown) */
	uint32_t wake;           /* futex word of the group whose first call this is; bumped
	                          * under lock, read atomically (it outlives the call: a
	                          * late wake only wakes a later user spuriously) */
	uint32_t next_free;
	bool sending;            /* async: the timer thread sends a copy (lock dropped) */
	bool end_deferred;       /* async: ended meanwhile; the timer settles it after */
};

enum entry_state { ENTRY_QUEUED, ENTRY_RUNNING, ENTRY_ANSWERED };

struct rpc_entry {
	uint64_t origin, incarnation, request_id;
	struct rpc_entry *hash_next;
	struct rpc_entry *next;  /* in the queue, or in the answered list */
	enum entry_state state;
	uint32_t op;
	uint64_t deadline_ns;    /* local: arrival + the caller's budget */
	uint8_t *req;            /* queued or running */
	size_t req_len;
	uint32_t err;            /* answered: the handler's, positive */
	bool lost;               /* answered, body not kept */
	uint8_t *answer;
	size_t answer_len;
	uint64_t answered_ns;
};

struct rpc_op_entry {
	rpc_handler_fn fn;
	void *arg;
	unsigned flags;
	rpc_handler_fn try_fn;   /* tried on the fabric thread first (rpc_handler_inline_set) */
};

struct rpc {
	struct fabric *fabric;
	uint64_t node_id;
	uint64_t incarnation;
	const uint32_t *transaction_max_ms;
	unsigned n_workers, n_bulk, calls_max, queue_max, cache_max;
	size_t queue_bytes_max, cache_bytes_max;
	struct rpc_op_entry ops[RPC_OPS_MAX];  /* set before start, read-only after */

	pthread_mutex_t lock;
	bool stopping;                  /* protected by lock */

	/* caller side, protected by lock */
	struct rpc_slot *slots;
	uint32_t free_head;
	uint64_t seq;
	unsigned calls_in_flight;
	pthread_cond_t slot_cv;         /* a slot was freed */
	uint64_t down[RPC_DOWN_MAX];
	unsigned n_down;
	/* Each node's process as last heard of (its incarnation), for the
	 * copies of a call not to run at a restarted process. */
	struct { uint64_t node, incarnation; } known[RPC_DOWN_MAX];
	unsigned n_known;
	/* Silent nodes (rpc.h): the fabric's count of messages from the node
	 * when a call to it timed out with none heard; silent while the
	 * count has not moved. */
	struct { uint64_t node, rx; } silent[RPC_DOWN_MAX];
	unsigned n_silent;
	uint32_t silence_ms;
	bool lend;                      /* callers read their answers themselves */

	/* server side, protected by lock */
	struct rpc_entry **hash;
	size_t hash_mask;
	uint64_t hash_salt;             /* random, drawn at create */
	unsigned n_entries;
	struct rpc_entry *queue_head, *queue_tail;
	struct rpc_entry *bulk_head, *bulk_tail;  /* RPC_HANDLER_BULK ops: the bulk workers' */
	unsigned queue_len, in_progress;          /* queue_len, queue_bytes: both queues */
	size_t queue_bytes, bulk_bytes;
	struct rpc_entry *answered_head, *answered_tail;
	size_t cache_bytes;
	pthread_cond_t work_cv;         /* queued work, stop, or the next expiry */
	pthread_cond_t bulk_cv;         /* queued bulk work, stop */
	bool expiry_waiter;             /* an idle worker waits for the next expiry */

	pthread_t *workers;
	unsigned n_started;

	/* the fabric thread's inline handlers: their answer and its encoding */
	uint8_t *inline_reply;

	/* rpc_call_async and rpc_job_queue, protected by lock */
	unsigned n_async;               /* async calls in flight */
	struct rpc_group *async_done;   /* ended async calls whose done has not run */
	struct rpc_job *jobs_head, *jobs_tail;
	pthread_cond_t timer_cv;        /* an async call's first event is earlier */
	uint64_t timer_until_ns;        /* the timer sleeps until then; UINT64_MAX: untimed;
	                                 * 0: awake (it scans before it sleeps) */
	pthread_t timer;
	bool timer_started;

	struct rpc_stats stats;         /* protected by lock (the gauges are computed) */
	struct histogram latency;
};

/* ---- helpers ---------------------------------------------------------------- */

static void
cond_init_monotonic(pthread_cond_t *cv)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
}

static void
cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *m, uint64_t until_ns)
{
	struct timespec ts = { .tv_sec = (time_t)(until_ns / 1000000000u),
		.tv_nsec = (long)(until_ns % 1000000000u) };

	pthread_cond_timedwait(cv, m, &ts);
}

/*
 * A caller's sleep and its wake-up: a futex word in its first call's slot
 * rather than a condition variable, so that the fabric thread wakes the
 * caller after it dropped rpc->lock (a woken caller that finds the lock
 * still held sleeps again, and on 2 CPUs that was one more context switch
 * per call), and without a per-call condition variable to set up and tear
 * down.  The word is in the slot table, which outlives every call, so a
 * wake that arrives after its call ended is only a spurious wake-up of
 * the slot's next user, which checks its calls under the lock.
 */
static void
futex_wait_until(uint32_t *word, uint32_t seen, uint64_t until_ns)
{
	struct timespec ts = { .tv_sec = (time_t)(until_ns / 1000000000u),
		.tv_nsec = (long)(until_ns % 1000000000u) };

	/* absolute CLOCK_MONOTONIC deadline; EAGAIN (the word moved), EINTR
	 * and ETIMEDOUT all send the caller back to check its calls */
	(void)syscall(SYS_futex, word, FUTEX_WAIT_BITSET_PRIVATE, seen, &ts, NULL,
	    FUTEX_BITSET_MATCH_ANY);
}

static void
futex_wake_one(uint32_t *word)
{
	(void)syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* The group whose waiter is this thread, while it reads its answers off a
 * borrowed connection (rpc_group_wait): no one sleeps on that group's word
 * then (a group has one waiter), so an answer this thread hands itself
 * moves the word but makes no futex call. */
static __thread const struct rpc_group *reading_group;

static void
group_wake(const struct rpc_group *g, uint32_t *word)
{
	if (g != reading_group)
		futex_wake_one(word);
}

/* A call of g ended (under rpc->lock): its waiter's word moves; the
 * caller wakes it with futex_wake_one, preferably after unlocking. */
static uint32_t *
group_bump_locked(struct rpc_group *g)
{
	atomic_inc(g->wake);
	return g->wake;
}

static uint32_t
transaction_max_ms(const struct rpc *rpc)
{
	uint32_t v = rpc->transaction_max_ms != NULL ? atomic_load_relaxed(rpc->transaction_max_ms) : 0;

	return v != 0 ? v : RPC_DEADLINE_DEFAULT_MS;
}

static bool
node_is_down_locked(const struct rpc *rpc, uint64_t node)
{
	for (unsigned i = 0; i < rpc->n_down; i++)
		if (rpc->down[i] == node)
			return true;
	return false;
}

/* Encodes and sends (or queues) one message: the fields before the body
 * from the stack, the body from where it is (the fabric copies only what
 * it has to keep). */
static int
send_msg(struct rpc *rpc, uint64_t node, const struct rpc_msg *r)
{
	struct fabric_msg_writer w;
	uint8_t buf[RPC_MSG_HEAD_MAX];
	int rc = rpc_msg_encode_ref(r, &w, buf, sizeof(buf));

	return rc != 0 ? rc : fabric_send(rpc->fabric, node, &w);
}

/* An answer that carries no body (busy, no handler), from the stack. */
static void
send_status(struct rpc *rpc, uint64_t node, const struct rpc_msg *req, uint32_t status)
{
	struct rpc_msg a = { .kind = RPC_KIND_ANSWER, .incarnation = req->incarnation,
		.request_id = req->request_id, .status = status, .peer_incarnation = rpc->incarnation };
	(void)send_msg(rpc, node, &a);
}

/* ---- which process each node runs ------------------------------------------------ */

static uint64_t
known_get_locked(const struct rpc *rpc, uint64_t node)
{
	for (unsigned i = 0; i < rpc->n_known; i++)
		if (rpc->known[i].node == node)
			return rpc->known[i].incarnation;
	return 0;
}

/* node runs incarnation inc (0: forget it).  Full: the oldest entry goes
 * (a node not heard of in a while: its calls lose the restart check). */
static void
known_set_locked(struct rpc *rpc, uint64_t node, uint64_t inc)
{
	unsigned i;

	for (i = 0; i < rpc->n_known && rpc->known[i].node != node; i++)
		;
	if (i < rpc->n_known) {
		if (inc == 0)
			rpc->known[i] = rpc->known[--rpc->n_known];
		else
			rpc->known[i].incarnation = inc;
		return;
	}
	if (inc == 0)
		return;
	if (rpc->n_known == RPC_DOWN_MAX) {
		memmove(&rpc->known[0], &rpc->known[1], (RPC_DOWN_MAX - 1) * sizeof(rpc->known[0]));
		rpc->n_known--;
	}
	rpc->known[rpc->n_known].node = node;
	rpc->known[rpc->n_known].incarnation = inc;
	rpc->n_known++;
}

/* ---- silent nodes ---------------------------------------------------------------- */

/* Whether node is silent, given rx (the fabric's count of messages from
 * it, read without the lock); a count that moved forgets the mark. */
static bool
silent_check_locked(struct rpc *rpc, uint64_t node, uint64_t rx)
{
	for (unsigned i = 0; i < rpc->n_silent; i++) {
		if (rpc->silent[i].node != node)
			continue;
		if (rpc->silent[i].rx == rx)
			return true;
		rpc->silent[i] = rpc->silent[--rpc->n_silent];
		return false;
	}
	return false;
}

/* node is silent since the fabric counted rx messages from it (0: forget). */
static void
silent_set_locked(struct rpc *rpc, uint64_t node, uint64_t rx, bool on)
{
	unsigned i;

	for (i = 0; i < rpc->n_silent && rpc->silent[i].node != node; i++)
		;
	if (!on) {
		if (i < rpc->n_silent)
			rpc->silent[i] = rpc->silent[--rpc->n_silent];
		return;
	}
	if (i == rpc->n_silent) {
		if (rpc->n_silent == RPC_DOWN_MAX)
			return;   /* full: only the fast failure is lost */
		rpc->n_silent++;
	}
	rpc->silent[i].node = node;
	rpc->silent[i].rx = rx;
}

/* ---- caller side ---------------------------------------------------------------- */

/* Slot idx back to the free list (its call ended and was collected). */
static void
slot_free_locked(struct rpc *rpc, uint32_t idx)
{
	struct rpc_slot *s = &rpc->slots[idx];

	/* a late answer finds id 0 or another call's id */
	s->id = 0;
	s->g = NULL;
	s->req = NULL;
	s->req2 = NULL;
	s->next_free = rpc->free_head;
	rpc->free_head = idx;
	rpc->calls_in_flight--;
	pthread_cond_signal(&rpc->slot_cv);
}

/*
 * The async call in slot s ended (done set, its answer filled): the slot
 * is freed and the group queued for its done, which async_run_done runs
 * with the lock dropped.  While the timer thread sends a copy of it (the
 * request is read then), that thread settles it once the send returned.
 */
static void
async_end_locked(struct rpc *rpc, struct rpc_slot *s)
{
	struct rpc_group *g = s->g;

	if (s->sending) {
		s->end_deferred = true;
		return;
	}
	slot_free_locked(rpc, g->slot[0]);
	rpc->n_async--;
	g->done_next = rpc->async_done;
	rpc->async_done = g;
}

/* Runs the done of every ended async call (the lock not held). */
static void
async_run_done(struct rpc *rpc)
{
	struct rpc_group *g;

	pthread_mutex_lock(&rpc->lock);
	g = rpc->async_done;
	rpc->async_done = NULL;
	pthread_mutex_unlock(&rpc->lock);
	while (g != NULL) {
		struct rpc_group *next = g->done_next;

		g->done(g->done_arg, &g->own);
		free(g);
		g = next;
	}
}

/* Ends the call in slot s (not done yet) with rc; signals its group (an
 * async call's done runs at the caller's next async_run_done). */
static void
slot_fail_locked(struct rpc *rpc, struct rpc_slot *s, int rc)
{
	struct rpc_answer *ans = s->g->ans[s->gi];

	s->done = true;
	ans->rc = rc;
	s->g->n_done++;
	if (s->g->done != NULL) {
		async_end_locked(rpc, s);
		return;
	}
	/* rare paths (failures, shutdown): woken under the lock */
	futex_wake_one(group_bump_locked(s->g));
}

/*
 * A copy counted in s->copies could not be queued.  Busy answers end a
 * call only when every copy sent was refused (an answer does not say which
 * copy it is for, and a later copy may have been taken and run).
 */
static void
copy_not_sent_locked(struct rpc *rpc, struct rpc_slot *s)
{
	s->copies--;
	if (!s->done && s->busy > 0 && s->busy >= s->copies)
		slot_fail_locked(rpc, s, -EAGAIN);
}

/* Sends (again) the request of slot s, whose owner calls this without the lock. */
static int
slot_send(struct rpc *rpc, struct rpc_slot *s, uint64_t now, uint64_t deadline_ns)
{
	uint64_t left_ms = deadline_ns > now ? (deadline_ns - now + 999999) / 1000000 : 1;
	struct rpc_msg r = { .kind = RPC_KIND_REQUEST, .incarnation = rpc->incarnation,
		.request_id = s->id, .op = s->op, .body = s->req, .body_len = s->req_len,
		.body2 = s->req2, .body2_len = s->req2_len,
		.peer_incarnation = s->expect_inc };

	r.budget_ms = (uint32_t)(left_ms < 1 ? 1 : left_ms > RPC_BUDGET_MAX_MS ? RPC_BUDGET_MAX_MS : left_ms);
	return send_msg(rpc, s->node, &r);
}

void
rpc_answer_release(struct rpc_answer *a)
{
	if (a == NULL)
		return;
	free(a->body);
	a->body = NULL;
	a->len = 0;
}

void
rpc_group_init(struct rpc *rpc, struct rpc_group *g, uint32_t deadline_ms)
{
	memset(g, 0, offsetof(struct rpc_group, slot));
	g->rpc = rpc;
	if (deadline_ms == 0)
		deadline_ms = transaction_max_ms(rpc);
	g->deadline_ns = clock_mono_ns() + (uint64_t)deadline_ms * 1000000u;
}

/* A call that ended before it held a slot: counted in its group as done. */
static int
group_fail_now(struct rpc_group *g, struct rpc_answer *ans, int rc)
{
	g->slot[g->n] = RPC_SLOT_NONE;
	g->ans[g->n] = ans;
	g->n++;
	g->n_done++;
	ans->rc = rc;
	return rc;
}

int
rpc_group_send(struct rpc_group *g, uint64_t node_id, uint32_t op, const void *req, size_t len,
    struct rpc_answer *ans)
{
	return rpc_group_send2(g, node_id, op, req, len, NULL, 0, ans);
}

static int group_send(struct rpc_group *g, uint64_t node_id, uint32_t op, const void *req,
    size_t len, const void *req2, size_t len2, struct rpc_answer *ans, bool *slotted);

int
rpc_group_send2(struct rpc_group *g, uint64_t node_id, uint32_t op, const void *req, size_t len,
    const void *req2, size_t len2, struct rpc_answer *ans)
{
	bool slotted;

	return group_send(g, node_id, op, req, len, req2, len2, ans, &slotted);
}

/* *slotted: the call took a slot (an async call then always ends by its
 * done, also when this returns an error). */
static int
group_send(struct rpc_group *g, uint64_t node_id, uint32_t op, const void *req, size_t len,
    const void *req2, size_t len2, struct rpc_answer *ans, bool *slotted)
{
	struct rpc *rpc = g->rpc;
	struct rpc_slot *s;
	uint32_t idx;
	uint64_t now, rx, first;
	int rc;

	*slotted = false;
	memset(ans, 0, sizeof(*ans));
	if (g->n >= RPC_GROUP_MAX) {
		ans->rc = -ENOSPC;
		return -ENOSPC;
	}
	if (op == 0 || op >= RPC_OPS_MAX || node_id == 0 || node_id == rpc->node_id)
		return group_fail_now(g, ans, -EINVAL);
	if (len > RPC_BODY_MAX || len2 > RPC_BODY_MAX - len)
		return group_fail_now(g, ans, -EMSGSIZE);
	/* read outside rpc->lock, a leaf: the fabric's lock is not taken under it */
	rx = rpc->silence_ms != 0 ? fabric_peer_msgs_received(rpc->fabric, node_id) : 0;

	pthread_mutex_lock(&rpc->lock);
	rpc->stats.calls++;
	for (;;) {
		now = clock_mono_ns();
		rc = rpc->stopping ? -ESHUTDOWN : node_is_down_locked(rpc, node_id) ? -EHOSTDOWN :
		    now >= g->deadline_ns ? -ETIMEDOUT : 0;
		if (rc == 0 && rpc->silence_ms != 0 && silent_check_locked(rpc, node_id, rx)) {
			rc = -ETIMEDOUT;
			rpc->stats.calls_failed_silent++;
		}
		if (rc != 0 || rpc->free_head != RPC_SLOT_NONE)
			break;
		if (g->done != NULL) {
			/* an async caller never waits (the fabric thread) */
			rc = -EAGAIN;
			break;
		}
		/* every slot busy: wait for one, bounded by the deadline */
		cond_wait_until(&rpc->slot_cv, &rpc->lock, g->deadline_ns);
	}
	if (rc != 0) {
		if (rc == -ETIMEDOUT)
			rpc->stats.calls_timed_out++;
		else
			rpc->stats.calls_failed_fast++;
		pthread_mutex_unlock(&rpc->lock);
		return group_fail_now(g, ans, rc);
	}
	idx = rpc->free_head;
	s = &rpc->slots[idx];
	rpc->free_head = s->next_free;
	rpc->calls_in_flight++;
	s->id = (++rpc->seq << RPC_SLOT_BITS) | idx;
	s->node = node_id;
	s->g = g;
	s->gi = g->n;
	s->done = false;
	s->op = op;
	s->req = req;
	s->req_len = len;
	s->req2 = req2;
	s->req2_len = len2;
	s->start_ns = now;
	s->rx_start = rx;
	/* a copy sent later than this could outlive the other side's memory of it */
	s->retry_until_ns = now + (uint64_t)transaction_max_ms(rpc) * 1000000u;
	s->retry_ms = RPC_RETRY_MS;
	s->next_retry_ns = now + (uint64_t)RPC_RETRY_MS * 1000000u;
	s->copies = 1;
	s->busy = 0;
	s->expect_inc = known_get_locked(rpc, node_id);
	if (g->wake == NULL)
		g->wake = &s->wake;
	g->slot[g->n] = idx;
	g->ans[g->n] = ans;
	g->n++;
	*slotted = true;
	if (g->done != NULL) {
		s->sending = true;    /* its request is read below, without the lock */
		s->end_deferred = false;
		rpc->n_async++;
		rpc->stats.calls_async++;
	}
	pthread_mutex_unlock(&rpc->lock);

	/* the slot is this thread's until rpc_group_wait frees it (an async
	 * call's: until sending is cleared below) */
	rc = slot_send(rpc, s, now, g->deadline_ns);
	if (g->done != NULL) {
		/* g may end (and be freed) as soon as the lock is dropped */
		pthread_mutex_lock(&rpc->lock);
		if (rc != 0)
			copy_not_sent_locked(rpc, s);
		if (rc != 0 && !s->done && rc != -ENOBUFS) {
			if (rc == -EHOSTUNREACH)
				rpc->stats.calls_failed_fast++;
			slot_fail_locked(rpc, s, rc);
		}
		s->sending = false;
		/* The timer thread wakes for its deadline or first retransmission,
		 * told once it is sent: told before, it often woke to a call still
		 * being sent, which it looks at again a millisecond later - two
		 * wake-ups for a call that finds it idle, where a replica write
		 * ends in a fraction of that (the master's fabric thread sends
		 * one per RF 2 write it serves inline). */
		first = s->next_retry_ns < g->deadline_ns ? s->next_retry_ns : g->deadline_ns;
		if (!s->done && rpc->timer_until_ns != 0 && first < rpc->timer_until_ns)
			pthread_cond_signal(&rpc->timer_cv);
		if (s->end_deferred) {
			s->end_deferred = false;
			async_end_locked(rpc, s);
		}
		pthread_mutex_unlock(&rpc->lock);
		return 0;
	}
	if (rc != 0) {
		pthread_mutex_lock(&rpc->lock);
		copy_not_sent_locked(rpc, s);
		if (!s->done && rc != -ENOBUFS) {
			if (rc == -EHOSTUNREACH)
				rpc->stats.calls_failed_fast++;
			slot_fail_locked(rpc, s, rc);
		}
		pthread_mutex_unlock(&rpc->lock);
		/* -ENOBUFS: the node's queue is full; the retransmission tries again */
		return rc == -ENOBUFS ? 0 : rc;
	}
	return 0;
}

/* The node of g's one call not done, or 0 (several, or none). */
static uint64_t
group_last_node_locked(struct rpc *rpc, const struct rpc_group *g)
{
	uint64_t node = 0;

	if (g->n - g->n_done != 1)
		return 0;
	for (unsigned i = 0; i < g->n; i++)
		if (g->slot[i] != RPC_SLOT_NONE && !rpc->slots[g->slot[i]].done)
			node = rpc->slots[g->slot[i]].node;
	return node;
}

/* fabric_read_lent: every call of g ended. */
static bool
group_done(void *arg)
{
	struct rpc_group *g = arg;
	bool done;

	pthread_mutex_lock(&g->rpc->lock);
	done = g->n_done == g->n;
	pthread_mutex_unlock(&g->rpc->lock);
	return done;
}

/* fabric_read_lent: a waiting caller's thread handles rpc answers (any
 * call's: on_answer wakes its caller); requests go to the fabric thread,
 * where their handlers run. */
static bool
answer_take(void *arg, const uint8_t *msg, size_t len)
{
	struct fabric_msg m;
	struct rpc_msg r;

	(void)arg;
	return fabric_msg_decode(msg, len, &m) == 0 && m.type == FABRIC_MSG_RPC &&
	    rpc_msg_decode(&m, &r) == 0 && r.kind == RPC_KIND_ANSWER;
}

/*
 * g's deadline passed with calls unanswered: a node that has sent nothing
 * since such a call of at least silence_ms began is silent (rpc.h).  The
 * fabric's counts are read with rpc->lock dropped (it is a leaf).
 */
static void
group_mark_silent_locked(struct rpc *rpc, struct rpc_group *g)
{
	uint64_t node[RPC_GROUP_MAX], rx[RPC_GROUP_MAX];
	unsigned n = 0;
	uint64_t now = clock_mono_ns();

	for (unsigned i = 0; i < g->n; i++) {
		struct rpc_slot *s;

		if (g->slot[i] == RPC_SLOT_NONE)
			continue;
		s = &rpc->slots[g->slot[i]];
		if (!s->done && now - s->start_ns >= (uint64_t)rpc->silence_ms * 1000000u) {
			node[n] = s->node;
			rx[n++] = s->rx_start;
		}
	}
	if (n == 0)
		return;
	pthread_mutex_unlock(&rpc->lock);
	for (unsigned i = 0; i < n; i++)
		if (fabric_peer_msgs_received(rpc->fabric, node[i]) != rx[i])
			node[i] = 0;    /* heard from meanwhile: alive, only slow */
	pthread_mutex_lock(&rpc->lock);
	for (unsigned i = 0; i < n; i++)
		if (node[i] != 0)
			silent_set_locked(rpc, node[i], rx[i], true);
}

int
rpc_group_wait(struct rpc_group *g)
{
	struct rpc *rpc = g->rpc;
	struct rpc_slot *resend[RPC_GROUP_MAX];
	bool unsent[RPC_GROUP_MAX];
	int first = 0;

	pthread_mutex_lock(&rpc->lock);
	while (g->n_done < g->n) {
		uint64_t now = clock_mono_ns(), wake = g->deadline_ns;
		unsigned n_resend = 0;

		if (now >= g->deadline_ns)
			break;
		for (unsigned i = 0; i < g->n; i++) {
			struct rpc_slot *s;

			if (g->slot[i] == RPC_SLOT_NONE)
				continue;
			s = &rpc->slots[g->slot[i]];
			if (s->done || s->next_retry_ns >= s->retry_until_ns)
				continue;
			if (s->next_retry_ns <= now) {
				resend[n_resend++] = s;
				s->copies++;     /* before it can be answered */
				s->retry_ms *= 2;
				s->next_retry_ns = now + (uint64_t)s->retry_ms * 1000000u;
				rpc->stats.retransmits++;
			}
			if (s->next_retry_ns < wake && s->next_retry_ns < s->retry_until_ns)
				wake = s->next_retry_ns;
		}
		if (n_resend > 0) {
			pthread_mutex_unlock(&rpc->lock);
			for (unsigned i = 0; i < n_resend; i++)
				unsent[i] = slot_send(rpc, resend[i], now, g->deadline_ns) != 0;
			pthread_mutex_lock(&rpc->lock);
			for (unsigned i = 0; i < n_resend; i++)
				if (unsent[i])
					copy_not_sent_locked(rpc, resend[i]);
			continue;
		}
		{
			/* read under the lock: a call ending after this moves it */
			uint32_t seen = atomic_load_relaxed(g->wake);
			bool lent;
			uint64_t lend_node = rpc->lend ? group_last_node_locked(rpc, g) : 0;

			pthread_mutex_unlock(&rpc->lock);
			/* one answer left: read it off the connection, no fabric
			 * thread in between (else, or if that is not possible, sleep) */
			reading_group = g;
			lent = lend_node != 0 && fabric_read_lent(rpc->fabric, lend_node, wake, answer_take,
			    group_done, g) == 0;
			reading_group = NULL;
			if (!lent)
				futex_wait_until(g->wake, seen, wake);
			pthread_mutex_lock(&rpc->lock);
		}
	}
	if (rpc->silence_ms != 0 && g->n_done < g->n)
		group_mark_silent_locked(rpc, g);
	for (unsigned i = 0; i < g->n; i++) {
		struct rpc_slot *s;

		if (g->slot[i] == RPC_SLOT_NONE)
			continue;
		s = &rpc->slots[g->slot[i]];
		if (!s->done) {
			g->ans[i]->rc = -ETIMEDOUT;
			rpc->stats.calls_timed_out++;
		}
		slot_free_locked(rpc, g->slot[i]);
	}
	pthread_mutex_unlock(&rpc->lock);
	for (unsigned i = 0; i < g->n; i++)
		if (first == 0 && g->ans[i]->rc != 0)
			first = g->ans[i]->rc;
	return first;
}

int
rpc_call(struct rpc *rpc, uint64_t node_id, uint32_t op, const void *req, size_t len,
    uint32_t deadline_ms, struct rpc_answer *ans)
{
	return rpc_call2(rpc, node_id, op, req, len, NULL, 0, deadline_ms, ans);
}

int
rpc_call2(struct rpc *rpc, uint64_t node_id, uint32_t op, const void *req, size_t len,
    const void *req2, size_t len2, uint32_t deadline_ms, struct rpc_answer *ans)
{
	struct rpc_group g;

	rpc_group_init(rpc, &g, deadline_ms);
	(void)rpc_group_send2(&g, node_id, op, req, len, req2, len2, ans);
	(void)rpc_group_wait(&g);
	return ans->rc;
}

int
rpc_call_async(struct rpc *rpc, uint64_t node_id, uint32_t op, const void *req, size_t len,
    uint32_t deadline_ms, rpc_done_fn done, void *arg)
{
	struct rpc_group *g = malloc(sizeof(*g));
	bool slotted;
	int rc;

	if (g == NULL)
		return -ENOMEM;
	rpc_group_init(rpc, g, deadline_ms);
	g->done = done;
	g->done_arg = arg;
	g->done_next = NULL;
	memset(&g->own, 0, sizeof(g->own));
	g->own_wake = 0;
	rc = group_send(g, node_id, op, req, len, NULL, 0, &g->own, &slotted);
	if (!slotted) {
		free(g);
		return rc;
	}
	/* it may have ended already (a send that failed): its done runs here */
	async_run_done(rpc);
	return 0;
}

/* Fabric thread: an answer for one of our calls. */
static void
on_answer(struct rpc *rpc, uint64_t from, const struct rpc_msg *r)
{
	uint32_t idx = (uint32_t)(r->request_id & ((1u << RPC_SLOT_BITS) - 1));
	struct rpc_slot *s;
	struct rpc_answer *ans;
	struct rpc_group *g;
	uint64_t now = clock_mono_ns();
	uint32_t *w;

	pthread_mutex_lock(&rpc->lock);
	if (r->peer_incarnation != 0)
		known_set_locked(rpc, from, r->peer_incarnation);
	s = idx < rpc->calls_max ? &rpc->slots[idx] : NULL;
	if (s == NULL || r->incarnation != rpc->incarnation || s->id != r->request_id || s->done ||
	    s->node != from) {
		rpc->stats.late_answers++;
		pthread_mutex_unlock(&rpc->lock);
		return;
	}
	if (r->status == ESTALE && s->copies == 1 && r->peer_incarnation != 0 &&
	    now < s->retry_until_ns) {
		/* The only copy reached a process that is not the one it was
		 * meant for: nothing ran anywhere.  Sent again at once (by the
		 * caller's thread) to the process answering now. */
		s->expect_inc = r->peer_incarnation;
		s->copies = 0;
		s->next_retry_ns = now;
		s->retry_ms = RPC_RETRY_MS / 2;
		if (s->g->done != NULL) {
			/* an async call's copies are the timer thread's */
			pthread_cond_signal(&rpc->timer_cv);
			pthread_mutex_unlock(&rpc->lock);
			return;
		}
		g = s->g;
		w = group_bump_locked(g);
		pthread_mutex_unlock(&rpc->lock);
		group_wake(g, w);
		return;
	}
	if (r->status == ESTALE)
		rpc->stats.calls_peer_restarted++;
	if (r->status == EAGAIN && ++s->busy < s->copies) {
		/* this copy was refused; another one may still be taken */
		pthread_mutex_unlock(&rpc->lock);
		return;
	}
	ans = s->g->ans[s->gi];
	ans->rc = r->status != 0 ? -(int)r->status : 0;
	ans->err = -(int)r->err;
	if (r->status == 0 && r->body_len > 0) {
		ans->body = malloc(r->body_len);
		if (ans->body == NULL) {
			ans->rc = -ENOMEM;
		} else {
			memcpy(ans->body, r->body, r->body_len);
			ans->len = r->body_len;
		}
	}
	rpc->stats.calls_answered++;
	histogram_add(&rpc->latency, now - s->start_ns);
	s->done = true;
	s->g->n_done++;
	if (s->g->done != NULL) {
		/* no waiter: its done runs on this thread */
		async_end_locked(rpc, s);
		pthread_mutex_unlock(&rpc->lock);
		async_run_done(rpc);
		return;
	}
	g = s->g;
	w = group_bump_locked(g);
	pthread_mutex_unlock(&rpc->lock);
	/* after the unlock: the caller wakes to a free lock (none to wake
	 * when the caller is this thread, reading its own answer) */
	group_wake(g, w);
}

/* Fails the calls in flight to node (-EHOSTDOWN). */
static void
fail_node_locked(struct rpc *rpc, uint64_t node)
{
	for (unsigned i = 0; i < rpc->calls_max; i++) {
		struct rpc_slot *s = &rpc->slots[i];

		if (s->id != 0 && !s->done && s->node == node) {
			rpc->stats.calls_failed_fast++;
			slot_fail_locked(rpc, s, -EHOSTDOWN);
		}
	}
}

void
rpc_peer_event(struct rpc *rpc, uint64_t node_id, bool up)
{
	pthread_mutex_lock(&rpc->lock);
	/* a node that comes or goes is not silent any more: it is up, or
	 * its calls fail fast as down */
	silent_set_locked(rpc, node_id, 0, false);
	if (up) {
		for (unsigned i = 0; i < rpc->n_down; i++)
			if (rpc->down[i] == node_id) {
				rpc->down[i] = rpc->down[--rpc->n_down];
				break;
			}
	} else {
		/* a full table only loses the fast failure of new calls */
		if (!node_is_down_locked(rpc, node_id) && rpc->n_down < RPC_DOWN_MAX)
			rpc->down[rpc->n_down++] = node_id;
		/* whatever runs there next is a new process: unknown until heard */
		known_set_locked(rpc, node_id, 0);
		fail_node_locked(rpc, node_id);
	}
	pthread_mutex_unlock(&rpc->lock);
	async_run_done(rpc);
}

void
rpc_node_down(struct rpc *rpc, uint64_t node_id)
{
	pthread_mutex_lock(&rpc->lock);
	fail_node_locked(rpc, node_id);
	pthread_mutex_unlock(&rpc->lock);
	async_run_done(rpc);
}

/* ---- server side ------------------------------------------------------------------ */

static size_t
entry_hash(const struct rpc *rpc, uint64_t origin, uint64_t incarnation, uint64_t id)
{
	/* salted: a peer cannot choose ids that all land in one bucket */
	uint64_t h = (origin ^ rpc->hash_salt) * 0x9e3779b97f4a7c15ull ^
	    incarnation * 0xc2b2ae3d27d4eb4full ^ id;

	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return (size_t)h & rpc->hash_mask;
}

static struct rpc_entry *
entry_find_locked(struct rpc *rpc, uint64_t origin, const struct rpc_msg *r)
{
	struct rpc_entry *e = rpc->hash[entry_hash(rpc, origin, r->incarnation, r->request_id)];

	while (e != NULL && !(e->origin == origin && e->incarnation == r->incarnation &&
	    e->request_id == r->request_id))
		e = e->hash_next;
	return e;
}

/* Unhashes and frees e (in no list any more). */
static void
entry_remove_locked(struct rpc *rpc, struct rpc_entry *e)
{
	struct rpc_entry **p = &rpc->hash[entry_hash(rpc, e->origin, e->incarnation, e->request_id)];

	while (*p != e)
		p = &(*p)->hash_next;
	*p = e->hash_next;
	rpc->n_entries--;
	rpc->cache_bytes -= e->answer_len;
	free(e->req);
	free(e->answer);
	free(e);
}

static uint64_t
window_ns(const struct rpc *rpc)
{
	return 2 * (uint64_t)transaction_max_ms(rpc) * 1000000u;
}

/* Drops the answered requests older than the window. */
static void
expire_locked(struct rpc *rpc, uint64_t now)
{
	uint64_t w = window_ns(rpc);

	while (rpc->answered_head != NULL && rpc->answered_head->answered_ns + w <= now) {
		struct rpc_entry *e = rpc->answered_head;

		rpc->answered_head = e->next;
		if (rpc->answered_head == NULL)
			rpc->answered_tail = NULL;
		entry_remove_locked(rpc, e);
	}
}

/* The cached answer of e, encoded into a malloc'd buffer (*len), or NULL. */
static uint8_t *
cached_answer_locked(const struct rpc *rpc, const struct rpc_entry *e, const struct rpc_msg *r,
    size_t *len)
{
	struct rpc_msg a = { .kind = RPC_KIND_ANSWER, .incarnation = r->incarnation,
		.request_id = r->request_id, .status = e->lost ? EIO : 0, .err = e->err,
		.peer_incarnation = rpc->incarnation,
		.body = e->lost ? NULL : e->answer, .body_len = e->lost ? 0 : e->answer_len };
	size_t cap = a.body_len + RPC_MSG_OVERHEAD;
	uint8_t *buf = malloc(cap);
	struct fabric_msg_writer w;

	if (buf == NULL || rpc_msg_encode(&a, &w, buf, cap) != 0) {
		free(buf);
		return NULL;
	}
	*len = w.len;
	return buf;
}

/*
 * The handler of e ran with result *rc and answer reply: settles e (kept
 * answered for at-most-once, or forgotten for an idempotent op) and fills
 * *a, the answer to send (its body is reply's buffer).  Answered before
 * the answer leaves: a copy arriving meanwhile gets the kept answer, and
 * the gauges are settled when the caller has its answer.
 */
static void
entry_answer_locked(struct rpc *rpc, struct rpc_entry *e, unsigned flags, int *rc,
    struct rpc_reply *reply, struct rpc_msg *a)
{
	if (reply->len > reply->cap) {
		*rc = -EMSGSIZE;
		reply->len = 0;
	}
	if (*rc > 0 || -*rc > RPC_ERRNO_MAX)
		*rc = -EIO;
	*a = (struct rpc_msg){ .kind = RPC_KIND_ANSWER, .incarnation = e->incarnation,
		.request_id = e->request_id, .err = (uint32_t)-*rc, .body = reply->buf,
		.body_len = reply->len, .peer_incarnation = rpc->incarnation };
	free(e->req);
	e->req = NULL;
	rpc->in_progress--;
	if (flags & RPC_HANDLER_IDEMPOTENT) {
		entry_remove_locked(rpc, e);
		return;
	}
	e->state = ENTRY_ANSWERED;
	e->err = (uint32_t)-*rc;
	e->answered_ns = clock_mono_ns();
	if (reply->len > 0) {
		if (!reply->unkept && rpc->cache_bytes + reply->len <= rpc->cache_bytes_max)
			e->answer = malloc(reply->len);
		if (e->answer != NULL) {
			memcpy(e->answer, reply->buf, reply->len);
			e->answer_len = reply->len;
			rpc->cache_bytes += reply->len;
		} else {
			e->lost = true;
		}
	}
	if (rpc->answered_tail != NULL)
		rpc->answered_tail->next = e;
	else
		rpc->answered_head = e;
	rpc->answered_tail = e;
}

/*
 * Fabric thread: e (hashed, running) is a request for an op with an inline
 * handler; it runs here, with the message's body.  true: it ran and its
 * answer was sent from this thread (no worker, no wake-up); false: the
 * handler deferred it (RPC_DEFER), nothing changed, a worker runs it.
 */
static bool
run_inline(struct rpc *rpc, struct rpc_entry *e, uint64_t from, const struct rpc_msg *r)
{
	struct rpc_op_entry op = rpc->ops[r->op];
	struct rpc_pending pend = { .origin = from, .incarnation = e->incarnation,
		.request_id = e->request_id, .op = r->op };
	struct rpc_reply reply = { .buf = rpc->inline_reply, .cap = RPC_BODY_MAX, .pending = &pend };
	struct rpc_msg a;
	int rc = op.try_fn(op.arg, from, r->body, r->body_len, &reply);

	if (rc == RPC_DEFER)
		return false;
	pthread_mutex_lock(&rpc->lock);
	rpc->stats.requests_inline++;
	if (rc == RPC_PENDING) {
		/* kept running; rpc_answer_pending settles and answers it */
		rpc->stats.requests_pending++;
		pthread_mutex_unlock(&rpc->lock);
		return true;
	}
	entry_answer_locked(rpc, e, op.flags, &rc, &reply, &a);
	pthread_mutex_unlock(&rpc->lock);
	(void)send_msg(rpc, from, &a);
	return true;
}

void
rpc_answer_pending(struct rpc *rpc, const struct rpc_pending *p, int rc, const uint8_t *body,
    size_t len)
{
	struct rpc_msg key = { .incarnation = p->incarnation, .request_id = p->request_id };
	struct rpc_reply reply = { .buf = (uint8_t *)body, .cap = len, .len = len };
	struct rpc_entry *e;
	struct rpc_msg a;
	bool send;

	pthread_mutex_lock(&rpc->lock);
	e = entry_find_locked(rpc, p->origin, &key);
	if (e == NULL || e->state != ENTRY_RUNNING) {
		pthread_mutex_unlock(&rpc->lock);
		return;
	}
	entry_answer_locked(rpc, e, rpc->ops[p->op].flags, &rc, &reply, &a);
	send = !rpc->stopping;
	pthread_mutex_unlock(&rpc->lock);
	if (send)
		(void)send_msg(rpc, p->origin, &a);
}

void
rpc_job_queue(struct rpc *rpc, struct rpc_job *job)
{
	job->next = NULL;
	pthread_mutex_lock(&rpc->lock);
	if (rpc->jobs_tail != NULL)
		rpc->jobs_tail->next = job;
	else
		rpc->jobs_head = job;
	rpc->jobs_tail = job;
	pthread_mutex_unlock(&rpc->lock);
	pthread_cond_signal(&rpc->work_cv);
}

/* The first queued job, taken off the list, or NULL. */
static struct rpc_job *
job_take_locked(struct rpc *rpc)
{
	struct rpc_job *j = rpc->jobs_head;

	if (j != NULL) {
		rpc->jobs_head = j->next;
		if (rpc->jobs_head == NULL)
			rpc->jobs_tail = NULL;
	}
	return j;
}

/*
 * The timer thread: the deadlines and retransmissions of async calls (a
 * blocking caller does its own).  Asleep without a timeout when no async
 * call is in flight; else until the earliest event of one.  Sends with the
 * lock dropped, the slot marked sending (its end waits for the send).
 */
#define TIMER_RESEND_MAX 64
static void *
timer_main(void *arg)
{
	struct rpc *rpc = arg;

	pthread_mutex_lock(&rpc->lock);
	while (!rpc->stopping) {
		uint64_t now = clock_mono_ns(), next = UINT64_MAX;
		struct rpc_slot *resend[TIMER_RESEND_MAX];
		unsigned n_resend = 0;

		rpc->timer_until_ns = 0;
		for (unsigned i = 0; rpc->n_async > 0 && i < rpc->calls_max; i++) {
			struct rpc_slot *s = &rpc->slots[i];

			if (s->id == 0 || s->done || s->g == NULL || s->g->done == NULL)
				continue;
			if (s->sending) {
				/* another thread sends it now (briefly): looked at again
				 * in a millisecond, never forgotten */
				if (now + 1000000u < next)
					next = now + 1000000u;
				continue;
			}
			if (now >= s->g->deadline_ns) {
				rpc->stats.calls_timed_out++;
				slot_fail_locked(rpc, s, -ETIMEDOUT);
				continue;
			}
			if (s->next_retry_ns <= now && s->next_retry_ns < s->retry_until_ns &&
			    n_resend < TIMER_RESEND_MAX) {
				resend[n_resend++] = s;
				s->sending = true;
				s->copies++;
				s->retry_ms *= 2;
				s->next_retry_ns = now + (uint64_t)s->retry_ms * 1000000u;
				rpc->stats.retransmits++;
			}
			if (s->g->deadline_ns < next)
				next = s->g->deadline_ns;
			if (s->next_retry_ns < s->retry_until_ns && s->next_retry_ns < next)
				next = s->next_retry_ns;
		}
		if (n_resend > 0 || rpc->async_done != NULL) {
			int rc[TIMER_RESEND_MAX];

			pthread_mutex_unlock(&rpc->lock);
			for (unsigned i = 0; i < n_resend; i++)
				rc[i] = slot_send(rpc, resend[i], now, resend[i]->g->deadline_ns);
			pthread_mutex_lock(&rpc->lock);
			for (unsigned i = 0; i < n_resend; i++) {
				struct rpc_slot *s = resend[i];

				if (rc[i] != 0)
					copy_not_sent_locked(rpc, s);
				s->sending = false;
				if (s->end_deferred) {
					s->end_deferred = false;
					async_end_locked(rpc, s);
				}
			}
			pthread_mutex_unlock(&rpc->lock);
			async_run_done(rpc);
			pthread_mutex_lock(&rpc->lock);
			continue;
		}
		rpc->timer_until_ns = next;
		if (next == UINT64_MAX)
			pthread_cond_wait(&rpc->timer_cv, &rpc->lock);
		else
			cond_wait_until(&rpc->timer_cv, &rpc->lock, next);
	}
	pthread_mutex_unlock(&rpc->lock);
	return NULL;
}

/* No room in the worker queues for a request of len bytes of op (an
 * empty queue takes any one; bulk requests hold at most half the bytes). */
static bool
queue_full_locked(const struct rpc *rpc, uint32_t op, size_t len)
{
	if (rpc->ops[op].flags & RPC_HANDLER_BULK)
		return rpc->queue_len >= rpc->queue_max ||
		    (rpc->bulk_head != NULL && rpc->bulk_bytes + len > rpc->queue_bytes_max / 2);
	return rpc->queue_len >= rpc->queue_max ||
	    (rpc->queue_len > 0 && rpc->queue_bytes + len > rpc->queue_bytes_max);
}

/* Fabric thread: a request from another node.  Never blocks. */
static void
on_request(struct rpc *rpc, uint64_t from, const struct rpc_msg *r)
{
	uint64_t now = clock_mono_ns();
	struct rpc_entry *e;
	uint8_t *again = NULL;
	size_t again_len = 0;
	uint32_t status = 0;

	pthread_mutex_lock(&rpc->lock);
	if (rpc->stopping) {
		pthread_mutex_unlock(&rpc->lock);
		return;
	}
	rpc->stats.requests_received++;
	known_set_locked(rpc, from, r->incarnation);
	if (r->peer_incarnation != 0 && r->peer_incarnation != rpc->incarnation) {
		/* meant for this node's previous process, which may have run it */
		rpc->stats.requests_stale++;
		pthread_mutex_unlock(&rpc->lock);
		send_status(rpc, from, r, ESTALE);
		return;
	}
	expire_locked(rpc, now);
	e = entry_find_locked(rpc, from, r);
	if (e != NULL) {
		/* a copy: dropped while it runs, answered again once it ran */
		rpc->stats.requests_duplicate++;
		if (e->state == ENTRY_ANSWERED)
			again = cached_answer_locked(rpc, e, r, &again_len);
		pthread_mutex_unlock(&rpc->lock);
		if (again != NULL) {
			struct fabric_msg_writer w = { .buf = again, .cap = again_len, .len = again_len };

			(void)fabric_send(rpc->fabric, from, &w);
			free(again);
		}
		return;
	}
	if (rpc->ops[r->op].fn == NULL) {
		status = EOPNOTSUPP;
	} else if (rpc->n_entries >= rpc->cache_max ||
	    (rpc->ops[r->op].try_fn == NULL && queue_full_locked(rpc, r->op, r->body_len))) {
		rpc->stats.requests_busy++;
		status = EAGAIN;
	} else {
		e = calloc(1, sizeof(*e));
		if (e == NULL) {
			rpc->stats.requests_busy++;
			status = EAGAIN;
		}
	}
	if (status != 0) {
		pthread_mutex_unlock(&rpc->lock);
		send_status(rpc, from, r, status);
		return;
	}
	e->origin = from;
	e->incarnation = r->incarnation;
	e->request_id = r->request_id;
	e->op = r->op;
	e->deadline_ns = now + (uint64_t)r->budget_ms * 1000000u;
	{
		size_t h = entry_hash(rpc, from, r->incarnation, r->request_id);

		e->hash_next = rpc->hash[h];
		rpc->hash[h] = e;
	}
	rpc->n_entries++;
	rpc->in_progress++;
	if (rpc->ops[r->op].try_fn != NULL) {
		/* kept as running: a copy cannot arrive before it is answered
		 * (this thread takes them), and the body stays the message's */
		e->state = ENTRY_RUNNING;
		pthread_mutex_unlock(&rpc->lock);
		if (run_inline(rpc, e, from, r))
			return;
		pthread_mutex_lock(&rpc->lock);
	}
	/* for a worker: the body copied, within the queue's bounds (an op
	 * with an inline handler was not refused for a full queue above) */
	if (!queue_full_locked(rpc, r->op, r->body_len) && r->body_len > 0)
		e->req = malloc(r->body_len);
	if (queue_full_locked(rpc, r->op, r->body_len) || (r->body_len > 0 && e->req == NULL)) {
		rpc->in_progress--;
		entry_remove_locked(rpc, e);
		rpc->stats.requests_busy++;
		pthread_mutex_unlock(&rpc->lock);
		send_status(rpc, from, r, EAGAIN);
		return;
	}
	if (r->body_len > 0)
		memcpy(e->req, r->body, r->body_len);
	e->req_len = r->body_len;
	e->state = ENTRY_QUEUED;
	if (rpc->ops[r->op].flags & RPC_HANDLER_BULK) {
		if (rpc->bulk_tail != NULL)
			rpc->bulk_tail->next = e;
		else
			rpc->bulk_head = e;
		rpc->bulk_tail = e;
		rpc->bulk_bytes += e->req_len;
	} else {
		if (rpc->queue_tail != NULL)
			rpc->queue_tail->next = e;
		else
			rpc->queue_head = e;
		rpc->queue_tail = e;
	}
	rpc->queue_len++;
	rpc->queue_bytes += e->req_len;
	pthread_mutex_unlock(&rpc->lock);
	/* One wake-up, of a worker of the request's own queue, after the
	 * unlock: the worker wakes to a free lock (both condition variables
	 * live as long as rpc).  A signal under the lock as well woke a
	 * second worker to an empty queue, and a bulk request woke a client
	 * worker for nothing. */
	pthread_cond_signal((rpc->ops[r->op].flags & RPC_HANDLER_BULK) ? &rpc->bulk_cv : &rpc->work_cv);
}

static void
on_message(void *arg, uint64_t from, const struct fabric_msg *m)
{
	struct rpc *rpc = arg;
	struct rpc_msg r;

	if (rpc_msg_decode(m, &r) != 0) {
		pthread_mutex_lock(&rpc->lock);
		rpc->stats.msgs_malformed++;
		pthread_mutex_unlock(&rpc->lock);
		log_debug("rpc", "malformed rpc message from node %016llx dropped", (unsigned long long)from);
		return;
	}
	if (r.kind == RPC_KIND_REQUEST)
		on_request(rpc, from, &r);
	else
		on_answer(rpc, from, &r);
}

struct worker_arg {
	struct rpc *rpc;
	bool bulk;
};

/* One worker: runs queued requests and expires the old answers; a bulk
 * worker runs the bulk queue's, at a lower priority. */
static void *
worker_main(void *arg)
{
	struct worker_arg *wa = arg;
	struct rpc *rpc = wa->rpc;
	bool bulk = wa->bulk;
	struct rpc_entry **head = bulk ? &rpc->bulk_head : &rpc->queue_head;
	struct rpc_entry **tail = bulk ? &rpc->bulk_tail : &rpc->queue_tail;
	pthread_cond_t *cv = bulk ? &rpc->bulk_cv : &rpc->work_cv;
	uint8_t *reply_buf = malloc(RPC_BODY_MAX);

	free(wa);
	/* this thread only; failure (a sandbox) leaves it at the process's */
	if (bulk && setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), RPC_BULK_NICE) != 0)
		log_debug("rpc", "bulk worker: setpriority: %s", recfs_strerror(-errno));
	if (reply_buf == NULL) {
		log_error("rpc", "worker: out of memory; it stops");
		return NULL;
	}
	pthread_mutex_lock(&rpc->lock);
	while (!rpc->stopping) {
		uint64_t now = clock_mono_ns();
		struct rpc_reply reply = { .buf = reply_buf, .cap = RPC_BODY_MAX };
		struct rpc_pending pend;
		struct rpc_op_entry op;
		uint8_t *req;
		size_t req_len;
		struct rpc_entry *e;
		struct rpc_msg a;
		uint64_t origin;
		int rc;

		expire_locked(rpc, now);
		if (!bulk && rpc->jobs_head != NULL) {
			struct rpc_job *j = job_take_locked(rpc);

			pthread_mutex_unlock(&rpc->lock);
			j->fn(j->arg, false);
			pthread_mutex_lock(&rpc->lock);
			continue;
		}
		e = *head;
		if (e == NULL) {
			/* asleep; one worker wakes when the oldest kept answer
			 * expires (batched by RPC_EXPIRY_SLACK_MS), so an idle node
			 * forgets them without traffic and without a wake per answer */
			if (bulk) {
				pthread_cond_wait(cv, &rpc->lock);
			} else if (rpc->answered_head != NULL && !rpc->expiry_waiter) {
				rpc->expiry_waiter = true;
				cond_wait_until(&rpc->work_cv, &rpc->lock, rpc->answered_head->answered_ns +
				    window_ns(rpc) + (uint64_t)RPC_EXPIRY_SLACK_MS * 1000000u);
				rpc->expiry_waiter = false;
			} else {
				pthread_cond_wait(&rpc->work_cv, &rpc->lock);
			}
			continue;
		}
		*head = e->next;
		if (*head == NULL)
			*tail = NULL;
		e->next = NULL;
		rpc->queue_len--;
		rpc->queue_bytes -= e->req_len;
		if (bulk)
			rpc->bulk_bytes -= e->req_len;
		if (now > e->deadline_ns) {
			/* the caller has given up: never run, so a later copy may run */
			rpc->stats.requests_expired++;
			rpc->in_progress--;
			entry_remove_locked(rpc, e);
			continue;
		}
		e->state = ENTRY_RUNNING;
		op = rpc->ops[e->op];
		origin = e->origin;
		pend = (struct rpc_pending){ .origin = e->origin, .incarnation = e->incarnation,
			.request_id = e->request_id, .op = e->op };
		reply.pending = &pend;
		/* the body is this thread's while the handler runs: one it
		 * leaves pending may be answered (and e settled) before it
		 * returns */
		req = e->req;
		req_len = e->req_len;
		e->req = NULL;
		pthread_mutex_unlock(&rpc->lock);

		rc = op.fn(op.arg, origin, req, req_len, &reply);
		free(req);
		pthread_mutex_lock(&rpc->lock);
		if (rc == RPC_PENDING) {
			/* kept running (e may be answered, even gone, already):
			 * rpc_answer_pending settles it, from any thread */
			rpc->stats.requests_pending++;
			continue;
		}
		entry_answer_locked(rpc, e, op.flags, &rc, &reply, &a);
		pthread_mutex_unlock(&rpc->lock);
		/* a lost answer (full queue, dropped connection): the retry gets the kept one */
		(void)send_msg(rpc, origin, &a);
		pthread_mutex_lock(&rpc->lock);
	}
	pthread_mutex_unlock(&rpc->lock);
	free(reply_buf);
	return NULL;
}

/* The built-in RPC_OP_PING: the body comes back. */
static int
ping_handler(void *arg, uint64_t from, const uint8_t *req, size_t len, struct rpc_reply *reply)
{
	(void)arg;
	(void)from;
	if (len > reply->cap)
		return -EMSGSIZE;
	if (len > 0)
		memcpy(reply->buf, req, len);
	reply->len = len;
	return 0;
}

/* ---- the instance ---------------------------------------------------------------- */

int
rpc_create(const struct rpc_config *cfg, struct rpc **out)
{
	struct rpc *rpc;
	size_t buckets = 1;
	int rc;

	*out = NULL;
	if (cfg->fabric == NULL || cfg->node_id == 0 || cfg->calls_max > (1u << RPC_SLOT_BITS))
		return -EINVAL;
	rpc = calloc(1, sizeof(*rpc));
	if (rpc == NULL)
		return -ENOMEM;
	rpc->fabric = cfg->fabric;
	rpc->node_id = cfg->node_id;
	rpc->transaction_max_ms = cfg->transaction_max_ms;
	rpc->n_workers = cfg->workers != 0 ? cfg->workers : RPC_WORKERS_DEFAULT;
	rpc->n_bulk = cfg->bulk_workers != 0 ? cfg->bulk_workers : RPC_BULK_WORKERS_DEFAULT;
	rpc->calls_max = cfg->calls_max != 0 ? cfg->calls_max : RPC_CALLS_MAX_DEFAULT;
	rpc->queue_max = cfg->queue_max != 0 ? cfg->queue_max : RPC_QUEUE_MAX_DEFAULT;
	rpc->queue_bytes_max = cfg->queue_bytes_max != 0 ? cfg->queue_bytes_max : RPC_QUEUE_BYTES_DEFAULT;
	rpc->cache_max = cfg->cache_max != 0 ? cfg->cache_max : RPC_CACHE_MAX_DEFAULT;
	rpc->cache_bytes_max = cfg->cache_bytes_max != 0 ? cfg->cache_bytes_max : RPC_CACHE_BYTES_DEFAULT;
	rpc->silence_ms = cfg->silence_ms;
	rpc->lend = cfg->lend;
	/* never 0: a restarted node must not match its predecessor's ids */
	while (rpc->incarnation == 0)
		if (getrandom(&rpc->incarnation, sizeof(rpc->incarnation), 0) != sizeof(rpc->incarnation))
			rpc->incarnation = clock_mono_ns() ^ ((uint64_t)getpid() << 32);
	rpc->hash_salt = rpc->incarnation * 0xd6e8feb86659fd93ull;
	while (buckets < rpc->cache_max)
		buckets <<= 1;
	rpc->hash_mask = buckets - 1;
	rpc->hash = calloc(buckets, sizeof(*rpc->hash));
	rpc->slots = calloc(rpc->calls_max, sizeof(*rpc->slots));
	rpc->workers = calloc(rpc->n_workers + rpc->n_bulk, sizeof(*rpc->workers));
	/* address space: only what the largest inline answer touched is resident */
	rpc->inline_reply = malloc(RPC_BODY_MAX);
	if (rpc->hash == NULL || rpc->slots == NULL || rpc->workers == NULL ||
	    rpc->inline_reply == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	for (uint32_t i = 0; i < rpc->calls_max; i++)
		rpc->slots[i].next_free = i + 1 < rpc->calls_max ? i + 1 : RPC_SLOT_NONE;
	rpc->free_head = 0;
	pthread_mutex_init(&rpc->lock, NULL);
	cond_init_monotonic(&rpc->slot_cv);
	cond_init_monotonic(&rpc->work_cv);
	cond_init_monotonic(&rpc->bulk_cv);
	cond_init_monotonic(&rpc->timer_cv);
	rpc->timer_until_ns = UINT64_MAX;
	rpc->ops[RPC_OP_PING] = (struct rpc_op_entry){ ping_handler, NULL, RPC_HANDLER_IDEMPOTENT,
		ping_handler };
	rc = fabric_handler_set(rpc->fabric, FABRIC_MSG_RPC, on_message, rpc);
	if (rc != 0) {
		pthread_mutex_destroy(&rpc->lock);
		pthread_cond_destroy(&rpc->slot_cv);
		pthread_cond_destroy(&rpc->work_cv);
		pthread_cond_destroy(&rpc->bulk_cv);
		pthread_cond_destroy(&rpc->timer_cv);
		goto fail;
	}
	*out = rpc;
	return 0;
fail:
	free(rpc->hash);
	free(rpc->slots);
	free(rpc->workers);
	free(rpc->inline_reply);
	free(rpc);
	return rc;
}

int
rpc_handler_set(struct rpc *rpc, uint32_t op, unsigned flags, rpc_handler_fn fn, void *arg)
{
	if (op == 0 || op >= RPC_OPS_MAX || fn == NULL)
		return -EINVAL;
	if (rpc->ops[op].fn != NULL)
		return -EEXIST;
	rpc->ops[op] = (struct rpc_op_entry){ fn, arg, flags };
	return 0;
}

int
rpc_handler_inline_set(struct rpc *rpc, uint32_t op, rpc_handler_fn try_fn)
{
	if (op == 0 || op >= RPC_OPS_MAX || try_fn == NULL || rpc->ops[op].fn == NULL)
		return -EINVAL;
	if (rpc->ops[op].try_fn != NULL)
		return -EEXIST;
	rpc->ops[op].try_fn = try_fn;
	return 0;
}

int
rpc_start(struct rpc *rpc)
{
	int rc;

	if (!rpc->timer_started) {
		rc = pthread_create(&rpc->timer, NULL, timer_main, rpc);
		if (rc != 0)
			return -rc;
		pthread_setname_np(rpc->timer, "rpc-timer");
		rpc->timer_started = true;
	}
	while (rpc->n_started < rpc->n_workers + rpc->n_bulk) {
		struct worker_arg *wa = malloc(sizeof(*wa));
		bool bulk = rpc->n_started >= rpc->n_workers;

		if (wa == NULL)
			return -ENOMEM;
		wa->rpc = rpc;
		wa->bulk = bulk;   /* wa is the thread's (it frees it) */
		rc = pthread_create(&rpc->workers[rpc->n_started], NULL, worker_main, wa);
		if (rc != 0) {
			free(wa);
			return -rc;
		}
		pthread_setname_np(rpc->workers[rpc->n_started], bulk ? "rpc-bulk" : "rpc");
		rpc->n_started++;
	}
	return 0;
}

void
rpc_stop(struct rpc *rpc)
{
	if (rpc == NULL)
		return;
	pthread_mutex_lock(&rpc->lock);
	rpc->stopping = true;
	for (unsigned i = 0; i < rpc->calls_max; i++) {
		struct rpc_slot *s = &rpc->slots[i];

		if (s->id != 0 && !s->done) {
			rpc->stats.calls_failed_fast++;
			slot_fail_locked(rpc, s, -ESHUTDOWN);
		}
	}
	pthread_cond_broadcast(&rpc->slot_cv);
	pthread_cond_broadcast(&rpc->work_cv);
	pthread_cond_broadcast(&rpc->bulk_cv);
	pthread_cond_broadcast(&rpc->timer_cv);
	pthread_mutex_unlock(&rpc->lock);
	async_run_done(rpc);
	for (unsigned i = 0; i < rpc->n_started; i++)
		pthread_join(rpc->workers[i], NULL);
	rpc->n_started = 0;
	if (rpc->timer_started) {
		pthread_join(rpc->timer, NULL);
		rpc->timer_started = false;
	}
	/* what is still queued or ended: settled here, told that rpc stops */
	for (;;) {
		struct rpc_job *j;

		async_run_done(rpc);
		pthread_mutex_lock(&rpc->lock);
		j = job_take_locked(rpc);
		pthread_mutex_unlock(&rpc->lock);
		if (j == NULL)
			break;
		j->fn(j->arg, true);
	}
}

void
rpc_destroy(struct rpc *rpc)
{
	if (rpc == NULL)
		return;
	for (size_t b = 0; b <= rpc->hash_mask; b++) {
		struct rpc_entry *e = rpc->hash[b], *next;

		for (; e != NULL; e = next) {
			next = e->hash_next;
			free(e->req);
			free(e->answer);
			free(e);
		}
	}
	pthread_mutex_destroy(&rpc->lock);
	pthread_cond_destroy(&rpc->slot_cv);
	pthread_cond_destroy(&rpc->work_cv);
	pthread_cond_destroy(&rpc->bulk_cv);
	pthread_cond_destroy(&rpc->timer_cv);
	free(rpc->hash);
	free(rpc->slots);
	free(rpc->workers);
	free(rpc->inline_reply);
	free(rpc);
}

void
rpc_stats_get(struct rpc *rpc, struct rpc_stats *s)
{
	pthread_mutex_lock(&rpc->lock);
	*s = rpc->stats;
	s->calls_in_flight = rpc->calls_in_flight;
	s->requests_in_progress = rpc->in_progress;
	s->requests_kept = rpc->n_entries;
	pthread_mutex_unlock(&rpc->lock);
}

void
rpc_latency_get(struct rpc *rpc, struct histogram_snapshot *out)
{
	histogram_read(&rpc->latency, out);
}

uint64_t
rpc_incarnation(struct rpc *rpc)
{
	return rpc->incarnation;
}
