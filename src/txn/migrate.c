/*
 * migrate.c - the exchange of partition versions, the rebalance and the
 * migration of partitions (docs/cluster.md, "Rebalance and migration").
 *
 * One instance per network (network.c).  Threads:
 *   - the control thread: after every cluster change it aborts what the
 *     old change planned, sends this node's versions to every member (the
 *     exchange, RPC_OP_MIGRATE EXCHANGE), waits until it has every
 *     member's for that cluster key, runs the rebalance of every partition
 *     (cluster/rebalance.c, the same plan on every node), publishes the
 *     working masters in the partition tables and queues the emigrations;
 *     it also runs the hand-overs (a final master that has received
 *     everything takes over from the acting master) and the drops of
 *     copies this node no longer needs;
 *   - up to migrate-threads emigration threads (nice +10; each pauses
 *     after a message while this node serves clients: tx_yield): each takes a
 *     queued (namespace, partition, receiver) and then more jobs of the
 *     same namespace, receiver and change, walks each partition
 *     (index_partition_walk: records and tombstones) into PARTS messages
 *     of flat records - a small partition whole in one section with START
 *     and DONE folded in, several per message, the records of several
 *     small ones read at once (tx_group) - up to MIG_WINDOW messages
 *     in flight; every message is an rpc call (deadline, retransmission,
 *     at most once) and checks the cluster key first;
 *   - the rpc workers run the handlers (receiver side), PARTS on the bulk
 *     workers (RPC_OP_MIGRATE_DATA); a START is answered on the fabric
 *     thread when it can be (migrate_try).
 * One lock (m->lock) guards the state below; no rpc call, storage I/O or
 * wait for another node happens under it.
 */
#include <errno.h>
#include <limits.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../base/atomic.h"
#include "../base/clock.h"
#include "../base/fault.h"
#include "../base/log.h"
#include "../cluster/partition.h"
#include "../cluster/rebalance.h"
#include "../cluster/rpc.h"
#include "migrate.h"
#include "migrate_msg.h"
#include "txn_i.h"

#define MIG_THREADS_MAX 8
#define MIG_BATCH_BYTES (1024u * 1024)    /* flat record bytes per INSERT (one record may be more) */
#define MIG_BATCH_RECORDS 256
#define MIG_SEC_OVERHEAD 64               /* a section's head in a PARTS, at most */
#define MIG_DROP_GATHER_MS 20             /* a drop waits this long for others still expected */
#define MIG_WINDOW 3                      /* PARTS messages in flight per emigration thread */
#define MIG_STREAM_PARTS 256              /* partitions a stream takes before the queue's order again */
#define MIG_RETRY_MS 100                  /* a START refused busy, a failed call: again after */
#define MIG_RETRY_MAX_MS 2000
#define MIG_YIELD_MAX_MS 100               /* a pause for clients at most (tx_yield) */
#define MIG_YIELD_SLICE_MS 20              /* work between two looks for clients */
#define MIG_SLEEP_MIN_US 1000              /* migrate-sleep: owed time slept once it is this much */

_Static_assert(MIGRATE_MSG_PARTITIONS == PARTITION_COUNT, "one partition count");
_Static_assert(MIG_BATCH_BYTES + 64 * 1024 < RPC_BODY_MAX, "a batch fits an rpc body");

enum {
	MIG_F_DROP_AFTER = 0x1,   /* a non-replica source: drop the copy once sent and not serving */
	MIG_F_DROPPING = 0x2,     /* a drop is queued or running */
	MIG_F_HANDOVER = 0x4,     /* a takeover or drop of this change is still to run here */
	MIG_F_WAIT_RELEASE = 0x8, /* a non-replica holding the working master's copy: drop on its RELEASE */
};

enum mig_work_kind { MIG_W_DROP, MIG_W_TAKEOVER, MIG_W_RELEASE };

struct mig_ns {
	struct namespace *ns;
	pthread_mutex_t store_lock;           /* versions stores: one at a time */
	pthread_cond_t persist_cv;            /* persist_file: a round ended (m->lock) */
	struct persist_req *persist_list;     /* filed, for the next round */
	bool persisting;                      /* a round runs (persist_round_locked) */
	uint64_t versions[PARTITION_COUNT];   /* this node's versions */
	uint64_t rx_from[PARTITION_COUNT];    /* node-index bits still to receive from */
	uint64_t rx_started[PARTITION_COUNT]; /* of those, started (counted in incoming) */
	uint64_t rx_done[PARTITION_COUNT];    /* node-index bits received from (this change) */
	uint16_t tx_left[PARTITION_COUNT];    /* emigrations of the partition still to finish */
	uint8_t flags[PARTITION_COUNT];
	uint64_t wm[PARTITION_COUNT];         /* working master (node id) */
	uint64_t fm[PARTITION_COUNT];         /* final master (node id) */
	bool replica[PARTITION_COUNT];
	/* This node the working master: bits (indexes of m->dup_nodes) of the
	 * duplicate holders it has not received from yet; they answer for
	 * each record before it is served (duplicate resolution). */
	uint64_t dups[PARTITION_COUNT];
	uint32_t n_dup_parts;                 /* partitions with dups != 0 */
	/* The working master: node-index bits of the non-replicas holding its
	 * copy, told (RELEASE) once it has sent the partition to every
	 * receiver.  Such a holder: the working master it waits for. */
	uint64_t release_to[PARTITION_COUNT];
	uint64_t release_from[PARTITION_COUNT];
	/* statistics: gauges under lock, counters atomic */
	uint64_t tx_initial, tx_remaining, rx_initial, rx_remaining, tx_active, rx_active;
	uint64_t handover_left;               /* partitions flagged MIG_F_HANDOVER */
	uint64_t records_tx, records_rx, fresh;
};

struct mig_job {
	unsigned ns;
	uint32_t pid;
	uint64_t dest;
	uint64_t key;
	uint64_t not_before;   /* monotonic ns */
	uint64_t run;          /* taken the run-th time (job_take_locked) */
	bool active;
};

struct mig_got {               /* a member's exchanged versions */
	uint64_t node, key;
	bool have[CONFIG_NS_MAX];
	uint64_t *v;               /* n_ns x PARTITION_COUNT */
};

struct mig_work {              /* for the control thread */
	unsigned ns;
	uint32_t pid;
	uint64_t key;
	enum mig_work_kind what;
};

struct txn_migrate {
	struct rpc *rpc;
	uint64_t self;
	const struct recfs_config *cfg;

	pthread_mutex_t lock;
	pthread_cond_t ctl_cv;     /* the control thread's work */
	pthread_cond_t job_cv;     /* emigration threads */
	pthread_cond_t got_cv;     /* exchange tables arrived */
	pthread_rwlock_t drop_lock; /* drops vs. the snapshot of a change */

	struct node *node;
	unsigned n_ns;
	struct mig_ns *mns;

	uint64_t key;              /* the cluster key of the last change */
	unsigned n;                /* its succession, descending */
	uint64_t nodes[PARTITION_NODES_MAX];
	uint64_t change_seq, done_seq;
	bool rebalanced;           /* the rebalance of key ran */
	bool all_done_logged;

	struct mig_got got[PARTITION_NODES_MAX];
	uint64_t *snap;            /* this node's versions as exchanged for snap_key (n_ns x 4096) */
	uint64_t snap_key;
	bool snap_valid;

	struct mig_job *jobs;
	size_t n_jobs, cap_jobs;
	uint64_t job_runs;
	/* Receivers that refused a section (busy: migrate-max-num-incoming,
	 * no space): no job to them starts before until (backoff doubling
	 * from MIG_RETRY_MS to MIG_RETRY_MAX_MS, reset by one that went). */
	struct { uint64_t node, until; uint32_t backoff_ms; } busy[PARTITION_NODES_MAX];
	unsigned incoming;

	struct mig_work *work;
	size_t n_work, cap_work;

	bool stop;
	bool started;
	struct node *kept_node;    /* the node mns describes (kept while detached) */
	bool republish;            /* attached again to the same change: publish the plan again */
	bool interrupted;          /* detached with migrations pending: the plan is redone */
	unsigned refused_logged;   /* emigrations refused as unexpected, logged this change */
	pthread_t ctl;
	pthread_t em[MIG_THREADS_MAX];
	pthread_t persister;       /* persist_main */
	pthread_cond_t persist_wake; /* the persister's: requests filed, a round ended, stop */
	bool persister_on;         /* it takes requests (persist_file) */
	struct partition_order *order;
	uint64_t dup_nodes[PARTITION_NODES_MAX]; /* the succession the dups bits index */
	unsigned dup_n;
};

/* ---- helpers ---------------------------------------------------------------- */

static uint64_t
mono_in_ms(uint32_t ms)
{
	return clock_mono_ns() + (uint64_t)ms * 1000000;
}

static void
cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t deadline_ns)
{
	struct timespec ts = { .tv_sec = (time_t)(deadline_ns / 1000000000u),
	    .tv_nsec = (long)(deadline_ns % 1000000000u) };

	pthread_cond_timedwait(cv, mu, &ts);
}

static void
mono_cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
}

static void
sleep_us(uint32_t us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

/* Node index of id in the current succession, or -1.  Lock held. */
static int
node_index(const struct txn_migrate *m, uint64_t id)
{
	for (unsigned i = 0; i < m->n; i++)
		if (m->nodes[i] == id)
			return (int)i;
	return -1;
}

static int
ns_index(const struct txn_migrate *m, const char *name)
{
	for (unsigned i = 0; i < m->n_ns; i++)
		if (strcmp(m->mns[i].ns->name, name) == 0)
			return (int)i;
	return -1;
}

static struct partition_table *
table_of(struct mig_ns *x)
{
	return txn_namespace_of(x->ns)->partitions;
}

/* This node's state letter of partition pid.  Lock held. */
static enum partition_state
state_of(const struct mig_ns *x, uint32_t pid)
{
	if (x->replica[pid])
		return x->rx_from[pid] != 0 ? PARTITION_STATE_DESIRED : PARTITION_STATE_SYNC;
	return pversion_has_data(x->versions[pid]) || x->tx_left[pid] != 0 ? PARTITION_STATE_ZOMBIE
	    : PARTITION_STATE_ABSENT;
}

/*
 * The versions reach storage (namespace_pversion*_store: every device or
 * shadow file, durable) through versions_persist_all (and a drop's
 * namespace_pversion_drop), called without m->lock: under the namespace's
 * store_lock they store what x->versions holds then, so two stores of one
 * partition can never land in the wrong order.  A
 * memory namespace without shadow keeps them in memory only.
 */
static void
versions_persist_all(struct txn_migrate *m, struct mig_ns *x)
{
	uint64_t *v = malloc(PARTITION_COUNT * sizeof(*v));
	int rc;

	if (v == NULL)
		return;
	pthread_mutex_lock(&x->store_lock);
	pthread_mutex_lock(&m->lock);
	memcpy(v, x->versions, PARTITION_COUNT * sizeof(*v));
	pthread_mutex_unlock(&m->lock);
	rc = namespace_pversions_store(x->ns, v);
	pthread_mutex_unlock(&x->store_lock);
	free(v);
	if (rc != 0)
		log_warn("migrate", "{%s} partition versions cannot be stored: %s", x->ns->name,
		    recfs_strerror(rc));
}

/*
 * The end of a partition's migration from one sender (a DONE, a LAST
 * section) is answered 0 only once it is durable: the records received
 * (every record applied so far: storage_sync_all), then, when it completes
 * the partition, the partition's final version; only then is the end
 * taken (done_locked: rx_done, the version in x->versions, the counters).
 * A failed sync or store answers the error and leaves the partition
 * expected from that sender as it was: the sender keeps its copy and sends
 * the partition again (job_end_locked), and that run can complete it.
 *
 * The handler does not wait for it: it files a persist_req (the ends, the
 * section results to answer with, the request's rpc identity) and leaves
 * the request pending (RPC_PENDING), its worker free for the next message.
 * The persister thread (persist_main, one per node, serving the namespaces
 * in turn) runs a round per namespace for every request filed so far - one
 * sync of the records, then one store of x->versions with those ends'
 * final versions laid over it (none when no end brings one) - takes the
 * ends, and answers each request whose ends are all settled with the
 * round's result (rpc_answer_pending).  A version enters x->versions only
 * once stored (under store_lock, before any other store can copy the
 * table), so no store writes a version whose records are not durable yet
 * and a failed one is never reported as stored.  Without a persister (it
 * stopped: a detach) or an rpc identity, the handler's thread runs the
 * rounds itself and waits (persist_file).
 *
 * Bounds: a request waits at most a round and the one before it; each
 * holds MIGRATE_MSG_PARTS_MAX ends (a few KiB) and its rpc entry, and at
 * most MIG_THREADS_MAX x MIG_WINDOW of them per sender are in flight (the
 * senders' windows), within the rpc's kept requests (cache_max).
 */
struct persist_end {           /* a sender's end of a partition, to make durable */
	uint32_t pid;
	uint64_t bit;              /* the sender's */
	uint64_t v;                /* its final version, when version */
	bool version;              /* completing it: v goes into the round's store */
	bool open;
	unsigned sec;              /* its answer: the request's res[sec] */
};

struct persist_req {
	struct persist_req *next;
	int nsi;
	uint64_t key;              /* the change the ends belong to */
	struct rpc_pending pend;   /* when pending */
	bool pending;              /* the persister answers it; else a handler waits (done) */
	bool parts;                /* a PARTS (answered res[0..n_res)), else a DONE (res[0]) */
	bool done;
	unsigned n_res, n_ends, n_open;
	int res[MIGRATE_MSG_PARTS_MAX];
	struct persist_end ends[MIGRATE_MSG_PARTS_MAX];
};

/* Is partition pid still expected from the sender of bit in change key?
 * Lock held. */
static bool
end_expected(const struct txn_migrate *m, const struct mig_ns *x, uint64_t key, uint32_t pid,
    uint64_t bit)
{
	return m->key == key && m->rebalanced && (x->rx_from[pid] & bit) != 0;
}

/* The final versions of a round's open ends (batch) stored with
 * x->versions as it is; then in x->versions.  m->lock not held. */
static int
versions_store_round(struct txn_migrate *m, struct mig_ns *x, struct persist_req *batch)
{
	uint64_t *v = malloc(PARTITION_COUNT * sizeof(*v));
	bool any = false;
	int rc;

	if (v == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&x->store_lock);
	pthread_mutex_lock(&m->lock);
	memcpy(v, x->versions, PARTITION_COUNT * sizeof(*v));
	for (struct persist_req *r = batch; r != NULL; r = r->next)
		for (unsigned i = 0; r->key == m->key && i < r->n_ends; i++)
			if (r->ends[i].open && r->ends[i].version) {
				v[r->ends[i].pid] = r->ends[i].v;
				any = true;
			}
	pthread_mutex_unlock(&m->lock);
	rc = !any ? 0 : FAULT_POINT("migrate.versions_store");
	if (any && rc == 0)
		rc = namespace_pversions_store(x->ns, v);
	if (any && rc == 0) {
		pthread_mutex_lock(&m->lock);
		for (struct persist_req *r = batch; r != NULL; r = r->next)
			for (unsigned i = 0; r->key == m->key && i < r->n_ends; i++)
				if (r->ends[i].open && r->ends[i].version)
					x->versions[r->ends[i].pid] = r->ends[i].v;
		pthread_mutex_unlock(&m->lock);
	}
	pthread_mutex_unlock(&x->store_lock);
	free(v);
	if (rc != 0)
		log_warn("migrate", "{%s} partition versions cannot be stored: %s; the partitions they "
		    "complete are answered with that error", x->ns->name, recfs_strerror(rc));
	return rc;
}

static bool done_locked(struct txn_migrate *m, int nsi, uint32_t pid, uint64_t bit);

/*
 * One round for namespace nsi (none running): every request filed so far
 * made durable (records, then versions), its ends taken, each failed one's
 * answer set to the error.  An end whose partition the change no longer
 * expects (a change came in between) is left (answer 0: the new change
 * plans again).  One that became the partition's last during the round
 * (another sender's end taken) stays filed for the next round, with its
 * version.  The pending requests it settles are put on *answer (for
 * persist_answer, without the lock); a waiting handler's is marked done.
 * Lock held (let go during the sync and the store).
 */
static void
persist_round_locked(struct txn_migrate *m, int nsi, struct persist_req **answer)
{
	struct mig_ns *x = &m->mns[nsi];
	struct persist_req *batch = x->persist_list, *again = NULL, *next;
	unsigned failed = 0;
	uint32_t first_pid = 0;
	bool any = false;
	int rc;

	x->persist_list = NULL;
	x->persisting = true;
	for (struct persist_req *r = batch; r != NULL; r = r->next)
		for (unsigned i = 0; i < r->n_ends; i++) {
			struct persist_end *e = &r->ends[i];

			if (!e->open)
				continue;
			if (!end_expected(m, x, r->key, e->pid, e->bit)) {
				e->open = false;
				r->n_open--;
				continue;
			}
			e->version = (x->rx_from[e->pid] & ~e->bit) == 0;
			if (e->version) {
				e->v = rebalance_final_version(r->key, x->fm[e->pid] == m->self);
				any = true;
			}
		}
	pthread_mutex_unlock(&m->lock);
	rc = FAULT_POINT("migrate.records_sync");
	if (rc == 0)
		rc = storage_sync_all(x->ns->storage);
	if (rc != 0)
		log_warn("migrate", "{%s} received records cannot be made durable: %s; the "
		    "partitions they end are answered with that error", x->ns->name,
		    recfs_strerror(rc));
	else if (any)
		rc = versions_store_round(m, x, batch);
	pthread_mutex_lock(&m->lock);
	for (struct persist_req *r = batch; r != NULL; r = next) {
		next = r->next;
		for (unsigned i = 0; i < r->n_ends; i++) {
			struct persist_end *e = &r->ends[i];

			if (!e->open)
				continue;
			if (rc != 0) {
				r->res[e->sec] = rc;
				if (failed++ == 0)
					first_pid = e->pid;
			} else if (!end_expected(m, x, r->key, e->pid, e->bit)) {
				/* a change came in between: left to it */
			} else if (!e->version && (x->rx_from[e->pid] & ~e->bit) == 0) {
				continue;   /* now the last one: again, with its version */
			} else {
				(void)done_locked(m, nsi, e->pid, e->bit);
			}
			e->open = false;
			r->n_open--;
		}
		if (r->n_open > 0) {
			r->next = again;
			again = r;
		} else if (r->pending) {
			r->next = *answer;
			*answer = r;
		} else {
			r->next = NULL;
			r->done = true;   /* its handler's again */
		}
	}
	while (again != NULL) {
		struct persist_req *r = again;

		again = r->next;
		r->next = x->persist_list;
		x->persist_list = r;
	}
	x->persisting = false;
	pthread_cond_broadcast(&x->persist_cv);
	if (x->persist_list != NULL || m->stop)
		pthread_cond_signal(&m->persist_wake);
	if (failed > 0) {
		NS_COUNT_ADD(x->ns, migrate_rx_ends_failed, failed);
		log_warn("migrate", "{%s} %u partition ends (partition %u first) answered with an error: "
		    "%s; their senders keep their copies and send them again", x->ns->name, failed,
		    first_pid, recfs_strerror(rc));
	}
}

/* The answers of settled pending requests (a list), sent; they are freed.
 * Lock not held. */
static void
persist_answer(struct txn_migrate *m, struct persist_req *list)
{
	while (list != NULL) {
		struct persist_req *r = list;
		uint8_t body[4 * MIGRATE_MSG_PARTS_MAX];
		int len = 0;

		list = r->next;
		if (r->parts)
			len = migrate_msg_encode_parts_answer(body, sizeof(body), r->res, r->n_res);
		if (len < 0)
			rpc_answer_pending(m->rpc, &r->pend, len, NULL, 0);
		else
			rpc_answer_pending(m->rpc, &r->pend, r->parts ? 0 : r->res[0], body, (size_t)len);
		free(r);
	}
}

/*
 * r (its ends filled and open, n_open set) filed for the next round of its
 * namespace.  true: the persister answers it (pend's request is left
 * pending, r is the persister's); false: its rounds ran (here or on
 * another thread), r->res holds its answers, r is the caller's.  Lock not
 * held.
 */
static bool
persist_file(struct txn_migrate *m, struct persist_req *r, const struct rpc_pending *pend)
{
	struct mig_ns *x = &m->mns[r->nsi];
	struct persist_req *answer = NULL;

	pthread_mutex_lock(&m->lock);
	r->pending = pend != NULL && m->persister_on;
	if (r->pending)
		r->pend = *pend;
	r->done = false;
	r->next = x->persist_list;
	x->persist_list = r;
	if (r->pending) {
		if (!x->persisting)
			pthread_cond_signal(&m->persist_wake);
		pthread_mutex_unlock(&m->lock);
		return true;
	}
	while (!r->done) {
		if (x->persisting)
			pthread_cond_wait(&x->persist_cv, &m->lock);
		else
			persist_round_locked(m, r->nsi, &answer);
	}
	pthread_mutex_unlock(&m->lock);
	persist_answer(m, answer);
	return false;
}

/* A request for the ends of one message: n_res answers (0 so far). */
static struct persist_req *
persist_req_new(int nsi, uint64_t key, bool parts, unsigned n_res)
{
	struct persist_req *r = calloc(1, sizeof(*r));

	if (r != NULL) {
		r->nsi = nsi;
		r->key = key;
		r->parts = parts;
		r->n_res = n_res;
	}
	return r;
}

/*
 * The persister: the rounds of every namespace with requests filed, one
 * after another, until stopped with none filed nor running.  Lock held
 * while it looks (let go during a round's I/O and the answers).
 */
static void *
persist_main(void *arg)
{
	struct txn_migrate *m = arg;

	pthread_setname_np(pthread_self(), "migrate-persist");
	pthread_mutex_lock(&m->lock);
	for (;;) {
		struct persist_req *answer = NULL;
		bool ran = false, busy = false;

		for (unsigned j = 0; j < m->n_ns; j++) {
			struct mig_ns *x = &m->mns[j];

			if (x->persist_list != NULL && !x->persisting) {
				persist_round_locked(m, (int)j, &answer);
				ran = true;
			}
			busy |= x->persist_list != NULL || x->persisting;
		}
		if (answer != NULL) {
			pthread_mutex_unlock(&m->lock);
			persist_answer(m, answer);
			pthread_mutex_lock(&m->lock);
		}
		if (ran)
			continue;
		if (m->stop && !busy)
			break;
		pthread_cond_wait(&m->persist_wake, &m->lock);
	}
	m->persister_on = false;
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

/* Partition pid's duplicate holders still to resolve against.  Lock held. */
static void
dups_set(struct mig_ns *x, uint32_t pid, uint64_t bits)
{
	if ((x->dups[pid] != 0) != (bits != 0)) {
		if (bits != 0)
			x->n_dup_parts++;
		else
			x->n_dup_parts--;
		atomic_store_relaxed(&txn_namespace_of(x->ns)->dup_partitions, x->n_dup_parts);
	}
	x->dups[pid] = bits;
}

static void
pending_update(struct mig_ns *x)
{
	atomic_store_relaxed(&x->ns->migrations_pending, x->tx_remaining + x->rx_remaining);
}

static int
work_push(struct txn_migrate *m, unsigned ns, uint32_t pid, enum mig_work_kind what)
{
	if (m->n_work == m->cap_work) {
		size_t cap = m->cap_work ? m->cap_work * 2 : 64;
		struct mig_work *w = realloc(m->work, cap * sizeof(*w));

		if (w == NULL)
			return -ENOMEM;
		m->work = w;
		m->cap_work = cap;
	}
	m->work[m->n_work++] = (struct mig_work){ .ns = ns, .pid = pid, .key = m->key,
	    .what = what };
	pthread_cond_broadcast(&m->ctl_cv);
	return 0;
}

static int
job_push(struct txn_migrate *m, const struct mig_job *j)
{
	if (m->n_jobs == m->cap_jobs) {
		size_t cap = m->cap_jobs ? m->cap_jobs * 2 : 256;
		struct mig_job *n = realloc(m->jobs, cap * sizeof(*n));

		if (n == NULL)
			return -ENOMEM;
		m->jobs = n;
		m->cap_jobs = cap;
	}
	m->jobs[m->n_jobs++] = *j;
	return 0;
}

/* Log when every migration of the change is done.  Lock held. */
static void
check_all_done(struct txn_migrate *m)
{
	uint64_t left = 0;

	if (!m->rebalanced || m->all_done_logged)
		return;
	for (unsigned i = 0; i < m->n_ns; i++)
		left += m->mns[i].tx_remaining + m->mns[i].rx_remaining + m->mns[i].handover_left;
	if (left == 0) {
		m->all_done_logged = true;
		log_info("migrate", "all migrations of cluster-key %016" PRIx64 " done", m->key);
	}
}

/* Partition pid has a takeover or drop of this change still to run here:
 * it counts in migrate_partitions_remaining until handover_done.  Lock held. */
static void
handover_pending(struct mig_ns *x, uint32_t pid)
{
	if (!(x->flags[pid] & MIG_F_HANDOVER)) {
		x->flags[pid] |= MIG_F_HANDOVER;
		x->handover_left++;
	}
}

/* The takeover or drop of pid for key ran (or failed for good).  Lock held. */
static void
handover_done(struct txn_migrate *m, struct mig_ns *x, uint32_t pid, uint64_t key)
{
	if (m->key != key || !(x->flags[pid] & MIG_F_HANDOVER))
		return;
	x->flags[pid] &= (uint8_t)~MIG_F_HANDOVER;
	if (x->handover_left > 0)
		x->handover_left--;
	check_all_done(m);
}

/* ---- dropping a copy ------------------------------------------------------------ */

struct drop_batch {
	unsigned n;
	uint16_t set_id[MIG_BATCH_RECORDS];
	struct digest d[MIG_BATCH_RECORDS];
};

static int
drop_collect(void *arg, const struct index_entry *e)
{
	struct drop_batch *b = arg;

	/* A set's marker (and its tombstone) is on every node, whatever its
	 * partition: the cluster's sets are kept everywhere (docs/cluster.md,
	 * "Sets and listings"). */
	if (e->set_marker)
		return 0;
	b->set_id[b->n] = e->set_id;
	b->d[b->n] = e->digest;
	b->n++;
	return 0;
}

/* Drops the control thread takes from its queue at once (consecutive
 * ones, of one namespace and change). */
#define MIG_DROP_BATCH 256

/*
 * Every record and tombstone of the partitions pids[] (of namespace nsi)
 * leaves the index and storage (control thread), unless a new change came
 * meanwhile.  First the null versions and the drop time reach storage
 * (namespace_pversions_drop: one write and one sync for all of them): the
 * records' bytes stay on the device until defragmentation, and a cold
 * start skips those older than the drop, so a dropped copy never comes
 * back with a restart (docs/cluster.md, "Dropping a copy").  If that
 * store fails nothing is dropped (logged): the copies stay, as subset
 * copies the next change sweeps.  Each partition's handover is done at
 * the end.
 */
static void
drop_partitions(struct txn_migrate *m, unsigned nsi, const uint32_t *pids, unsigned n, uint64_t key)
{
	struct mig_ns *x = &m->mns[nsi];
	uint32_t go[MIG_DROP_BATCH];
	unsigned n_go = 0, n_cur = 0;
	int rc = 0;

	for (unsigned i = 0; i < n; i++) {
		struct index_walk_pos pos = { 0 };
		struct drop_batch probe;
		uint64_t until;
		bool had_version;

		pthread_mutex_lock(&m->lock);
		had_version = x->versions[pids[i]] != 0;
		pthread_mutex_unlock(&m->lock);
		probe.n = 0;
		if ((index_partition_walk(x->ns->index, pids[i], &pos, drop_collect, &probe,
		    MIG_BATCH_RECORDS) <= 0 || (probe.n == 0 && pos.done)) && !had_version)
			continue;   /* nothing here: the common case of a sweep */
		/* An operation that reserved the partition under the table
		 * before this change may still run here: let it end (bounded). */
		until = mono_in_ms(RPC_DEADLINE_DEFAULT_MS);
		while (partition_reservations(table_of(x), pids[i]) > 0 && clock_mono_ns() < until)
			sleep_us(1000);
		go[n_go++] = pids[i];
	}
	if (n_go > 0) {
		pthread_mutex_lock(&x->store_lock);
		pthread_mutex_lock(&m->lock);
		for (unsigned i = 0; i < n_go; i++)
			if (m->key == key && !x->replica[go[i]] && x->wm[go[i]] != m->self) {
				x->versions[go[i]] = 0;
				go[n_cur++] = go[i];
			}
		pthread_mutex_unlock(&m->lock);
		rc = namespace_pversions_drop(x->ns, go, n_cur, clock_epoch_ms());
		pthread_mutex_unlock(&x->store_lock);
		if (rc == 0 && n_cur > 0)
			log_info("migrate", "{%s} dropping the copies of %u partitions (partition %u first; not a "
			    "replica any more): their drop stored in one write of the partition versions",
			    x->ns->name, n_cur, go[0]);
	}
	if (rc != 0) {
		log_warn("migrate", "{%s} the drop of %u partitions (partition %u first) cannot be stored "
		    "(%s): the copies are kept", x->ns->name, n_cur, go[0], recfs_strerror(rc));
		pthread_mutex_lock(&m->lock);
		if (m->key == key)
			for (unsigned i = 0; i < n_cur; i++)
				x->flags[go[i]] &= (uint8_t)~MIG_F_DROPPING;
		pthread_mutex_unlock(&m->lock);
		n_cur = 0;
	}
	for (unsigned i = 0; i < n_cur; i++) {
		struct index_walk_pos pos = { 0 };
		uint32_t pid = go[i];
		uint64_t dropped = 0;
		bool current = true;

		while (!pos.done) {
			struct drop_batch b;
			int walked = 0;

			b.n = 0;
			pthread_rwlock_rdlock(&m->drop_lock);
			pthread_mutex_lock(&m->lock);
			current = m->key == key && !x->replica[pid] && x->wm[pid] != m->self;
			pthread_mutex_unlock(&m->lock);
			if (current)
				walked = index_partition_walk(x->ns->index, pid, &pos, drop_collect, &b,
				    MIG_BATCH_RECORDS);
			for (unsigned k = 0; k < b.n; k++)
				dropped += txn_drop_record(x->ns, b.set_id[k], &b.d[k]) == 1;
			pthread_rwlock_unlock(&m->drop_lock);
			if (!current || walked <= 0)
				break;
		}
		if (!current)
			continue;
		pthread_mutex_lock(&m->lock);
		if (m->key == key) {
			x->flags[pid] &= (uint8_t)~(MIG_F_DROPPING | MIG_F_DROP_AFTER);
			(void)partition_set_working(table_of(x), pid, key, x->wm[pid], state_of(x, pid));
		}
		pthread_mutex_unlock(&m->lock);
		if (dropped > 0)
			log_debug("migrate", "{%s} partition %u: dropped %" PRIu64 " records (not a replica)",
			    x->ns->name, pid, dropped);
	}
	pthread_mutex_lock(&m->lock);
	for (unsigned i = 0; i < n; i++)
		handover_done(m, x, pids[i], key);
	pthread_mutex_unlock(&m->lock);
}

/* ---- exchange and rebalance (control thread) ------------------------------------ */

static int got_store(struct txn_migrate *m, uint64_t from, const struct migrate_msg *msg, int nsi);

/* The slot of node id (allocated), or NULL.  Lock held. */
static struct mig_got *
got_slot(struct txn_migrate *m, uint64_t id)
{
	struct mig_got *free_slot = NULL;

	for (unsigned i = 0; i < PARTITION_NODES_MAX; i++) {
		if (m->got[i].node == id)
			return &m->got[i];
		if (free_slot == NULL && (m->got[i].node == 0 || node_index(m, m->got[i].node) < 0))
			free_slot = &m->got[i];
	}
	if (free_slot == NULL)
		return NULL;
	if (free_slot->v == NULL) {
		free_slot->v = calloc((size_t)m->n_ns * PARTITION_COUNT, sizeof(uint64_t));
		if (free_slot->v == NULL)
			return NULL;
	}
	free_slot->node = id;
	free_slot->key = 0;
	memset(free_slot->have, 0, sizeof(free_slot->have));
	return free_slot;
}

static bool
got_all(struct txn_migrate *m)
{
	for (unsigned i = 0; i < m->n; i++) {
		struct mig_got *g = NULL;

		if (m->nodes[i] == m->self)
			continue;
		for (unsigned k = 0; k < PARTITION_NODES_MAX && g == NULL; k++)
			if (m->got[k].node == m->nodes[i])
				g = &m->got[k];
		if (g == NULL || g->key != m->key)
			return false;
		for (unsigned j = 0; j < m->n_ns; j++)
			if (!g->have[j])
				return false;
	}
	return true;
}

/*
 * Send this node's versions (snap: n_ns x 4096) to every other member and
 * wait for all of theirs: 0, or -ESTALE when a newer change (or stop)
 * came first.  Retried with backoff while the change is current.
 */
static int
exchange(struct txn_migrate *m, uint64_t seq, uint64_t key, const uint64_t *nodes, unsigned n,
    const uint64_t *snap)
{
	size_t cap = MIGRATE_MSG_EXCHANGE_SIZE(MIGRATE_MSG_NS_MAX);
	uint8_t *buf = malloc(cap);
	uint64_t sent = 0, all = 0;
	uint32_t backoff = MIG_RETRY_MS;
	int rc = -ESTALE;

	if (buf == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++)
		if (nodes[i] != m->self)
			all |= 1ULL << i;
	for (;;) {
		bool stale;

		for (unsigned i = 0; i < n; i++) {
			if (!(all & ~sent & (1ULL << i)))
				continue;
			bool ok = true;

			for (unsigned j = 0; j < m->n_ns && ok; j++) {
				struct rpc_answer ans = { 0 };
				int len = migrate_msg_encode_exchange(buf, cap, key, m->mns[j].ns->name,
				    snap + (size_t)j * PARTITION_COUNT);

				struct migrate_msg back;

				ok = len > 0 && rpc_call(m->rpc, nodes[i], RPC_OP_MIGRATE, buf, (size_t)len, 0,
				    &ans) == 0 && (ans.err == 0 || ans.err == -ENOENT);
				/* its own versions for this key, if it has taken them */
				if (ok && ans.err == 0 && ans.len > 0 &&
				    migrate_msg_decode(ans.body, ans.len, &back) == 0 &&
				    back.kind == MIGRATE_MSG_EXCHANGE && back.cluster_key == key &&
				    strcmp(back.ns, m->mns[j].ns->name) == 0)
					(void)got_store(m, nodes[i], &back, (int)j);
				rpc_answer_release(&ans);
			}
			if (ok)
				sent |= 1ULL << i;
		}
		pthread_mutex_lock(&m->lock);
		stale = m->stop || m->change_seq != seq;
		if (!stale && sent == all && got_all(m)) {
			pthread_mutex_unlock(&m->lock);
			rc = 0;
			break;
		}
		if (!stale)
			cond_wait_until(&m->got_cv, &m->lock, mono_in_ms(backoff));
		stale = m->stop || m->change_seq != seq;
		pthread_mutex_unlock(&m->lock);
		if (stale)
			break;
		if (sent != all)
			backoff = backoff * 2 > MIG_RETRY_MAX_MS ? MIG_RETRY_MAX_MS : backoff * 2;
	}
	free(buf);
	return rc;
}

/* Everything the last change planned ends (a new change or an orphan).  Lock held. */
static void
abort_all(struct txn_migrate *m)
{
	for (unsigned j = 0; j < m->n_ns; j++) {
		struct mig_ns *x = &m->mns[j];

		memset(x->rx_from, 0, sizeof(x->rx_from));
		memset(x->rx_started, 0, sizeof(x->rx_started));
		memset(x->rx_done, 0, sizeof(x->rx_done));
		memset(x->tx_left, 0, sizeof(x->tx_left));
		for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++)
			x->flags[pid] = 0;
		x->tx_remaining = x->rx_remaining = x->tx_active = x->rx_active = 0;
		x->handover_left = 0;
		pending_update(x);
	}
	m->n_jobs = 0;
	m->n_work = 0;
	m->incoming = 0;
	memset(m->busy, 0, sizeof(m->busy));
	m->rebalanced = false;
	m->refused_logged = 0;
}

/* The rebalance of every namespace for the change (key, nodes): the same
 * plan as every other member computes.  snap: this node's versions as
 * exchanged. */
static void
rebalance(struct txn_migrate *m, uint64_t seq, uint64_t key, const uint64_t *snap)
{
	struct partition_order *o = m->order;
	unsigned depth = 1, n, self_i = 0;
	uint64_t *drops = NULL;
	size_t n_drops = 0;

	for (unsigned j = 0; j < m->n_ns; j++)
		if (m->mns[j].ns->cfg->replication_factor > depth)
			depth = m->mns[j].ns->cfg->replication_factor;
	pthread_mutex_lock(&m->lock);
	if (m->change_seq != seq || m->stop) {
		pthread_mutex_unlock(&m->lock);
		return;
	}
	if (partition_order_compute(o, m->nodes, m->n, depth > PARTITION_REPLICAS_MAX ?
	    PARTITION_REPLICAS_MAX : depth) != 0) {
		pthread_mutex_unlock(&m->lock);
		log_error("migrate", "cannot place partitions for %u nodes: no rebalance", m->n);
		return;
	}
	n = o->n;
	memcpy(m->dup_nodes, o->nodes, n * sizeof(m->dup_nodes[0]));
	m->dup_n = n;
	drops = malloc((size_t)m->n_ns * PARTITION_COUNT * sizeof(*drops));
	const uint64_t *vs[PARTITION_NODES_MAX];

	for (unsigned i = 0; i < n; i++) {
		vs[i] = NULL;
		if (o->nodes[i] == m->self) {
			self_i = i;
			vs[i] = snap;
			continue;
		}
		for (unsigned k = 0; k < PARTITION_NODES_MAX; k++)
			if (m->got[k].node == o->nodes[i] && m->got[k].key == key)
				vs[i] = m->got[k].v;
	}
	for (unsigned i = 0; i < n; i++)
		if (vs[i] == NULL) {   /* got_all said so: cannot happen */
			pthread_mutex_unlock(&m->lock);
			free(drops);
			log_error("migrate", "versions of node %016" PRIx64 " missing: no rebalance",
			    o->nodes[i]);
			return;
		}
	for (unsigned j = 0; j < m->n_ns; j++) {
		struct mig_ns *x = &m->mns[j];
		unsigned rf = x->ns->cfg->replication_factor < n ? x->ns->cfg->replication_factor : n;
		uint64_t tx = 0, rx = 0, fresh = 0;

		x->handover_left = 0;
		for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++) {
			uint64_t v[PARTITION_NODES_MAX];
			struct rebalance_in in = { .cluster_key = key, .n = n, .rf = rf,
			    .sequence = o->rank[pid], .versions = v };
			struct rebalance_out out;
			uint64_t me = 1ULL << self_i;

			for (unsigned i = 0; i < n; i++)
				v[i] = vs[i][(size_t)j * PARTITION_COUNT + pid];
			if (rebalance_partition(&in, &out) != 0)
				continue;
			x->versions[pid] = out.versions[self_i];
			x->wm[pid] = o->nodes[out.working_master];
			x->fm[pid] = o->nodes[o->rank[pid][0]];
			x->replica[pid] = (out.replicas & me) != 0;
			x->rx_from[pid] = rebalance_rx(&out, self_i) ? out.sources & ~me : 0;
			x->rx_started[pid] = 0;
			x->rx_done[pid] = 0;
			/* The working master serving before the duplicates reached it:
			 * it asks them for each record first (duplicate resolution). */
			dups_set(x, pid, out.working_master == self_i && out.receivers != 0
			    ? out.sources & ~me : 0);
			x->tx_left[pid] = (uint16_t)rebalance_tx(&out, self_i);
			x->flags[pid] = (out.sources & me) && !x->replica[pid] ? MIG_F_DROP_AFTER : 0;
			/* What is left here once the migrations are done - a
			 * non-replica source's drop, the final master's takeover,
			 * the drops below - counts in the remaining partitions. */
			if ((x->flags[pid] & MIG_F_DROP_AFTER) ||
			    (x->fm[pid] == m->self && x->wm[pid] != m->self))
				handover_pending(x, pid);
			/* rx_from is by node index of o->nodes, which is m->nodes' order */
			if (x->tx_left[pid] != 0)
				for (unsigned i = 0; i < n; i++)
					if ((out.receivers & ~me) & (1ULL << i))
						(void)job_push(m, &(struct mig_job){ .ns = j, .pid = pid,
						    .dest = o->nodes[i], .key = key });
			x->release_to[pid] = 0;
			x->release_from[pid] = 0;
			if (out.working_master == self_i && out.receivers != 0)
				x->release_to[pid] = out.drop_now & ~me;
			if ((out.drop_now & me) && out.receivers != 0) {
				/* The working master's copy is here too: kept (and
				 * announced, with its version, at the next change)
				 * until the working master has sent it to every
				 * receiver, so a source dying mid-partition never
				 * leaves the partition without a full copy. */
				x->versions[pid] = v[self_i];
				x->release_from[pid] = o->nodes[out.working_master];
				x->flags[pid] |= MIG_F_WAIT_RELEASE;
				handover_pending(x, pid);
			} else if ((out.drop_now & me) && drops != NULL) {
				x->flags[pid] |= MIG_F_DROPPING;
				handover_pending(x, pid);
				drops[n_drops++] = (uint64_t)j << 32 | pid;
			} else if (!x->replica[pid] && !(out.sources & me) && drops != NULL) {
				/* Nothing here by the exchange; but a write at this node
				 * while it kept serving during the exchange may have left
				 * a copy (its replicas got it): swept (cheap when empty). */
				handover_pending(x, pid);
				drops[n_drops++] = (uint64_t)j << 32 | pid;
			}
			if (x->release_to[pid] != 0 && x->tx_left[pid] == 0)
				(void)work_push(m, j, pid, MIG_W_RELEASE);
			tx += x->tx_left[pid];
			rx += rebalance_rx(&out, self_i);
			fresh += out.fresh && x->replica[pid];
			(void)partition_set_working(table_of(x), pid, key, x->wm[pid], state_of(x, pid));
		}
		x->tx_initial = x->tx_remaining = tx;
		x->rx_initial = x->rx_remaining = rx;
		x->tx_active = x->rx_active = 0;
		x->fresh = fresh;
		pending_update(x);
		log_info("migrate", "{%s} rebalanced: expected-migrations (%" PRIu64 ",%" PRIu64
		    ") fresh-partitions %" PRIu64, x->ns->name, tx, rx, fresh);
	}
	m->rebalanced = true;
	m->all_done_logged = false;
	check_all_done(m);
	pthread_cond_broadcast(&m->job_cv);
	pthread_mutex_unlock(&m->lock);
	for (unsigned j = 0; j < m->n_ns; j++) {
		txn_partitions_changed(m->mns[j].ns);
		versions_persist_all(m, &m->mns[j]);
	}
	/* in batches of one namespace: one store of their versions each */
	for (size_t k = 0; k < n_drops; ) {
		uint32_t pids[MIG_DROP_BATCH];
		unsigned nsi = (unsigned)(drops[k] >> 32), cnt = 0;

		while (k < n_drops && cnt < MIG_DROP_BATCH && (unsigned)(drops[k] >> 32) == nsi)
			pids[cnt++] = (uint32_t)drops[k++];
		drop_partitions(m, nsi, pids, cnt, key);
	}
	free(drops);
}

static int
any_entry(void *arg, const struct index_entry *e)
{
	(void)e;
	*(bool *)arg = true;
	return 1;
}

/* A change: abort, snapshot, exchange, rebalance (control thread). */
static void
handle_change(struct txn_migrate *m, uint64_t seq)
{
	uint64_t key, nodes[PARTITION_NODES_MAX];
	unsigned n;
	uint64_t *snap;

	/* No drop batch runs past this point with the old key. */
	pthread_rwlock_wrlock(&m->drop_lock);
	pthread_rwlock_unlock(&m->drop_lock);
	snap = malloc((size_t)m->n_ns * PARTITION_COUNT * sizeof(*snap));
	pthread_mutex_lock(&m->lock);
	if (m->change_seq != seq || snap == NULL) {
		pthread_mutex_unlock(&m->lock);
		free(snap);
		return;
	}
	abort_all(m);
	key = m->key;
	n = m->n;
	memcpy(nodes, m->nodes, n * sizeof(nodes[0]));
	pthread_mutex_unlock(&m->lock);
	/*
	 * A partition with no entry at all (no record, no tombstone, no
	 * marker) and no operation in it holds no data, whatever its version
	 * says: it goes into the exchange as null, so an empty partition never
	 * migrates (a node that formed a cluster alone would otherwise send
	 * every empty partition to the first node that joins).  The tables are
	 * held already: an operation that reserves now waits for the rebalance.
	 */
	uint8_t *empty = calloc((size_t)m->n_ns * PARTITION_COUNT, 1);

	for (unsigned j = 0; empty != NULL && j < m->n_ns; j++) {
		struct mig_ns *x = &m->mns[j];

		for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++) {
			struct index_walk_pos pos = { 0 };
			bool any = false;

			if (partition_reservations(table_of(x), pid) != 0)
				continue;
			(void)index_partition_walk(x->ns->index, pid, &pos, any_entry, &any, 1);
			empty[(size_t)j * PARTITION_COUNT + pid] = !any;
		}
	}
	pthread_mutex_lock(&m->lock);
	for (unsigned j = 0; j < m->n_ns; j++) {
		struct mig_ns *x = &m->mns[j];

		for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++) {
			if (empty != NULL && empty[(size_t)j * PARTITION_COUNT + pid])
				x->versions[pid] = 0;
			/* An orphan trusts no copy as complete. */
			if (key == 0)
				x->versions[pid] = pversion_isolate(x->versions[pid]);
			snap[(size_t)j * PARTITION_COUNT + pid] = x->versions[pid];
			if (key == 0)
				x->wm[pid] = m->self;
		}
	}
	if (m->snap != NULL) {
		memcpy(m->snap, snap, (size_t)m->n_ns * PARTITION_COUNT * sizeof(*snap));
		m->snap_key = key;
		m->snap_valid = key != 0;
	}
	pthread_mutex_unlock(&m->lock);
	free(empty);
	if (key == 0)
		for (unsigned j = 0; j < m->n_ns; j++)
			versions_persist_all(m, &m->mns[j]);
	log_debug("migrate", "change %" PRIu64 ": cluster-key %016" PRIx64 ", %u nodes: exchange", seq, key, n);
	if (key != 0 && exchange(m, seq, key, nodes, n, snap) == 0)
		rebalance(m, seq, key, snap);
	else
		log_debug("migrate", "change %" PRIu64 ": no rebalance (a newer change, or alone)", seq);
	free(snap);
}

/*
 * TAKEOVER (body) to the members in to[] other than the old acting master:
 * each that answers busy (not rebalanced yet, its queue full), slow or not
 * connected is asked again (backoff) while the change lasts and it is a
 * member; one that refuses it as stale or unexpected is left to the next
 * cluster change (logged).
 */
static void
notify_takeover(struct txn_migrate *m, struct mig_ns *x, const struct mig_work *w,
    const uint8_t *body, size_t len, uint64_t *to, unsigned n_to)
{
	for (uint32_t wait_ms = MIG_RETRY_MS; n_to > 0; ) {
		struct rpc_group g;
		struct rpc_answer ans[PARTITION_NODES_MAX];
		unsigned again = 0;

		memset(ans, 0, sizeof(ans));
		rpc_group_init(m->rpc, &g, 0);
		for (unsigned i = 0; i < n_to; i++)
			(void)rpc_group_send(&g, to[i], RPC_OP_MIGRATE, body, len, &ans[i]);
		(void)rpc_group_wait(&g);
		pthread_mutex_lock(&m->lock);
		for (unsigned i = 0; i < n_to; i++) {
			int rc = ans[i].rc != 0 ? ans[i].rc : ans[i].err;

			if (rc != 0 && rc != -ESTALE && rc != -EPROTO && rc != -EBADMSG &&
			    m->key == w->key && node_index(m, to[i]) >= 0)
				to[again++] = to[i];
			else if (rc != 0 && m->key == w->key)
				log_warn("migrate", "{%s} partition %u: node %016" PRIx64 " did not take "
				    "the takeover: %s", x->ns->name, w->pid, to[i], recfs_strerror(rc));
		}
		n_to = m->key == w->key && !m->stop ? again : 0;
		if (n_to > 0) {
			NS_COUNT_ADD(x->ns, migrate_takeover_notices_again, n_to);
			cond_wait_until(&m->ctl_cv, &m->lock, mono_in_ms(wait_ms));
		}
		n_to = m->key == w->key && !m->stop ? n_to : 0;
		pthread_mutex_unlock(&m->lock);
		for (unsigned i = 0; i < PARTITION_NODES_MAX; i++)
			rpc_answer_release(&ans[i]);
		wait_ms = wait_ms * 2 > MIG_RETRY_MAX_MS ? MIG_RETRY_MAX_MS : wait_ms * 2;
	}
}

/*
 * The final master has received everything: the acting master stops
 * serving (TAKEOVER to it first, so two nodes never serve at once), this
 * node serves, every other member learns it.
 */
static void
handle_takeover(struct txn_migrate *m, const struct mig_work *w)
{
	struct mig_ns *x = &m->mns[w->ns];
	uint8_t body[MIGRATE_MSG_HEADER_MAX + 4];
	int len = migrate_msg_encode_pid(body, sizeof(body), MIGRATE_MSG_TAKEOVER, w->key, x->ns->name, w->pid);
	uint64_t old, others[PARTITION_NODES_MAX];
	unsigned n_others = 0;

	if (len < 0)
		return;
	pthread_mutex_lock(&m->lock);
	if (m->key != w->key) {
		pthread_mutex_unlock(&m->lock);
		return;
	}
	old = x->wm[w->pid];
	for (unsigned i = 0; i < m->n; i++)
		if (m->nodes[i] != m->self && m->nodes[i] != old)
			others[n_others++] = m->nodes[i];
	pthread_mutex_unlock(&m->lock);
	for (uint32_t wait_ms = MIG_RETRY_MS; old != m->self && old != 0; ) {
		struct rpc_answer ans = { 0 };
		int rc = rpc_call(m->rpc, old, RPC_OP_MIGRATE, body, (size_t)len, 0, &ans);
		bool again;

		rc = rc != 0 ? rc : ans.err;
		rpc_answer_release(&ans);
		if (rc == 0)
			break;
		/* Busy, slow or not connected: asked again (backoff) while
		 * the change lasts and it is a member; refused as stale or
		 * unexpected: the next cluster change decides.  Until then
		 * the partition counts as remaining here. */
		again = rc != -ESTALE && rc != -EPROTO && rc != -EBADMSG;
		pthread_mutex_lock(&m->lock);
		if (again && m->key == w->key && !m->stop && node_index(m, old) >= 0)
			cond_wait_until(&m->ctl_cv, &m->lock, mono_in_ms(wait_ms));
		again = again && m->key == w->key && !m->stop && node_index(m, old) >= 0;
		pthread_mutex_unlock(&m->lock);
		if (!again) {
			log_warn("migrate", "{%s} partition %u: acting master %016" PRIx64 " did not hand "
			    "over: %s", x->ns->name, w->pid, old, recfs_strerror(rc));
			return;
		}
		wait_ms = wait_ms * 2 > MIG_RETRY_MAX_MS ? MIG_RETRY_MAX_MS : wait_ms * 2;
	}
	pthread_mutex_lock(&m->lock);
	if (m->key == w->key) {
		x->wm[w->pid] = m->self;
		(void)partition_set_working(table_of(x), w->pid, w->key, m->self, state_of(x, w->pid));
	}
	pthread_mutex_unlock(&m->lock);
	txn_partitions_changed(x->ns);
	/* The others learn it below.  One that has not rebalanced yet
	 * (answers busy: -EAGAIN), is busy or not connected is told again
	 * (backoff) while the change lasts and it is a member: told once and
	 * lost, it would send this partition's operations to the old acting
	 * master, which answers "not master", until the next cluster change
	 * (EIO at that node: docs/cluster.md, "Routing during migration").
	 * Until every member took it the partition counts as remaining. */
	notify_takeover(m, x, w, body, (size_t)len, others, n_others);
	pthread_mutex_lock(&m->lock);
	handover_done(m, x, w->pid, w->key);
	pthread_mutex_unlock(&m->lock);
}

/*
 * The working master has sent partition w->pid to every receiver: each
 * non-replica that kept the same copy (MIG_F_WAIT_RELEASE) may drop it
 * now.  One that is busy or does not answer is asked again (backoff) while
 * the change lasts and it is a member; until then it counts the partition
 * as remaining.
 */
static void
handle_release(struct txn_migrate *m, const struct mig_work *w)
{
	struct mig_ns *x = &m->mns[w->ns];
	uint8_t body[MIGRATE_MSG_HEADER_MAX + 4];
	int len = migrate_msg_encode_pid(body, sizeof(body), MIGRATE_MSG_RELEASE, w->key, x->ns->name, w->pid);
	uint64_t to[PARTITION_NODES_MAX];
	unsigned n_to = 0;

	if (len < 0)
		return;
	pthread_mutex_lock(&m->lock);
	if (m->key == w->key)
		for (unsigned i = 0; i < m->n; i++)
			if (x->release_to[w->pid] & (1ULL << i))
				to[n_to++] = m->nodes[i];
	pthread_mutex_unlock(&m->lock);
	for (uint32_t wait_ms = MIG_RETRY_MS; n_to > 0; ) {
		struct rpc_group g;
		struct rpc_answer ans[PARTITION_NODES_MAX];
		unsigned again = 0;

		memset(ans, 0, sizeof(ans));
		rpc_group_init(m->rpc, &g, 0);
		for (unsigned i = 0; i < n_to; i++)
			(void)rpc_group_send(&g, to[i], RPC_OP_MIGRATE, body, (size_t)len, &ans[i]);
		(void)rpc_group_wait(&g);
		pthread_mutex_lock(&m->lock);
		for (unsigned i = 0; i < n_to; i++) {
			int rc = ans[i].rc != 0 ? ans[i].rc : ans[i].err;

			if (rc != 0 && rc != -ESTALE && rc != -EPROTO && rc != -EBADMSG &&
			    m->key == w->key && node_index(m, to[i]) >= 0)
				to[again++] = to[i];
			else if (rc != 0)
				log_warn("migrate", "{%s} partition %u: node %016" PRIx64 " did not take the "
				    "release of its copy: %s", x->ns->name, w->pid, to[i], recfs_strerror(rc));
		}
		n_to = m->key == w->key && !m->stop ? again : 0;
		if (n_to > 0)
			cond_wait_until(&m->ctl_cv, &m->lock, mono_in_ms(wait_ms));
		n_to = m->key == w->key && !m->stop ? n_to : 0;
		pthread_mutex_unlock(&m->lock);
		for (unsigned i = 0; i < PARTITION_NODES_MAX; i++)
			rpc_answer_release(&ans[i]);
		wait_ms = wait_ms * 2 > MIG_RETRY_MAX_MS ? MIG_RETRY_MAX_MS : wait_ms * 2;
	}
}

/*
 * More drops of namespace ns are to come here in this change (lock held):
 * this node's emigrations still run (a non-replica source drops a copy once
 * sent), or a partition still waits for the RELEASE of its working master
 * or for the final master's TAKEOVER before its copy goes.
 */
static bool
drops_expected_locked(const struct txn_migrate *m, unsigned ns)
{
	const struct mig_ns *x = &m->mns[ns];

	if (x->tx_remaining > 0)
		return true;
	for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++)
		if ((x->flags[pid] & MIG_F_WAIT_RELEASE) ||
		    (x->flags[pid] & (MIG_F_DROP_AFTER | MIG_F_DROPPING)) == MIG_F_DROP_AFTER)
			return true;
	return false;
}

static void *
control_main(void *arg)
{
	struct txn_migrate *m = arg;

	uint64_t gather_until = 0;    /* the first queued drop waits for others until */

	pthread_setname_np(pthread_self(), "migrate");
	pthread_mutex_lock(&m->lock);
	for (;;) {
		while (!m->stop && m->change_seq == m->done_seq && m->n_work == 0 && !m->republish)
			pthread_cond_wait(&m->ctl_cv, &m->lock);
		if (m->stop)
			break;
		if (m->republish && m->change_seq == m->done_seq) {
			/* The same change as before a detach: the tables get the
			 * plan's working masters and states again. */
			m->republish = false;
			for (unsigned j = 0; j < m->n_ns; j++)
				for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++)
					(void)partition_set_working(table_of(&m->mns[j]), pid, m->key,
					    m->mns[j].wm[pid], state_of(&m->mns[j], pid));
			pthread_mutex_unlock(&m->lock);
			for (unsigned j = 0; j < m->n_ns; j++)
				txn_partitions_changed(m->mns[j].ns);
			pthread_mutex_lock(&m->lock);
			continue;
		}
		if (m->change_seq != m->done_seq) {
			uint64_t seq = m->change_seq;

			pthread_mutex_unlock(&m->lock);
			handle_change(m, seq);
			pthread_mutex_lock(&m->lock);
			if (m->change_seq == seq)
				m->done_seq = seq;
			continue;
		}
		/* A drop while more drops of that change are expected here
		 * (this node's emigrations still run, or partitions wait for
		 * their RELEASE or TAKEOVER) waits up to MIG_DROP_GATHER_MS for
		 * the others: one store and sync of the versions for all of
		 * them (each message's answer ends a few partitions; one sync
		 * each cost ~160 syncs a second per source in a join, flushes
		 * the disk's reads waited behind).  When only this node's
		 * emigrations counted, the RELEASEs that came after them were
		 * stored 1 to 7 at a time under load (t_migrate_drop). */
		if (m->work[0].what == MIG_W_DROP && m->work[0].key == m->key &&
		    m->n_work < MIG_DROP_BATCH / 2 && drops_expected_locked(m, m->work[0].ns)) {
			uint64_t now = clock_mono_ns();

			if (gather_until == 0)
				gather_until = now + (uint64_t)MIG_DROP_GATHER_MS * 1000000;
			if (now < gather_until) {
				cond_wait_until(&m->ctl_cv, &m->lock, gather_until);
				continue;
			}
		}
		gather_until = 0;
		struct mig_work w = m->work[0];
		uint32_t drops[MIG_DROP_BATCH];
		unsigned n_drops = 0, kept = 0;

		/* A drop takes the other drops queued (same namespace and
		 * change) with it: their versions are stored together.  The
		 * hand-overs between them keep their order; none of them is
		 * for a partition dropped here (a node drops only a partition
		 * it neither serves nor keeps). */
		for (unsigned k = 1; k < m->n_work; k++) {
			if (w.what == MIG_W_DROP && n_drops + 1 < MIG_DROP_BATCH &&
			    m->work[k].what == MIG_W_DROP && m->work[k].ns == w.ns && m->work[k].key == w.key)
				drops[1 + n_drops++] = m->work[k].pid;
			else
				m->work[kept++] = m->work[k];
		}
		m->n_work = kept;
		if (w.what == MIG_W_DROP) {
			drops[0] = w.pid;
			n_drops++;
		}
		if (w.key != m->key)
			continue;
		pthread_mutex_unlock(&m->lock);
		if (w.what == MIG_W_TAKEOVER)
			handle_takeover(m, &w);
		else if (w.what == MIG_W_RELEASE)
			handle_release(m, &w);
		else
			drop_partitions(m, w.ns, drops, n_drops, w.key);
		pthread_mutex_lock(&m->lock);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

/* ---- emigration ----------------------------------------------------------------- */

struct tx_ref {
	storage_loc loc;           /* where it was when collected: the read order */
	uint16_t set_id;
	uint8_t part;              /* tx_group: the partition's place in the group */
	struct digest d;
};

struct tx_collect {
	unsigned n;
	uint32_t bytes, limit;     /* stop once bytes reach limit */
	uint8_t part;              /* what tx_collect_one gives each entry */
	struct tx_ref r[MIG_BATCH_RECORDS];
	/* tx_read_batch: each record as tx_read_one gives it (length, 0, or
	 * TX_UNREAD), at off[i] of buf (cap bytes) */
	int res[MIG_BATCH_RECORDS];
	size_t off[MIG_BATCH_RECORDS];
	uint8_t *buf;
	size_t cap;
};

static int
tx_collect_one(void *arg, const struct index_entry *e)
{
	struct tx_collect *c = arg;

	c->r[c->n].loc = e->loc;
	c->r[c->n].set_id = e->set_id;
	c->r[c->n].part = c->part;
	c->r[c->n].d = e->digest;
	c->n++;
	c->bytes += storage_loc_size(e->loc);
	return c->bytes >= c->limit;
}

#define TX_UNREAD INT_MIN        /* tx_read_batch left this record to tx_read_one */

/* The stored copy of (set_id, d) appended to buf as a record of an INSERT:
 * its length, or 0 when it is gone or damaged, or -errno. */
static int
tx_read_one(struct namespace *ns, uint16_t set_id, const struct digest *d, uint8_t *buf, size_t cap)
{
	struct index_partition *p = index_partition_of(ns->index, d);
	struct index_entry *e;
	storage_loc loc = 0;
	bool ok = false;
	int rc = 0;

	index_record_lock(ns->index, d);
	pthread_rwlock_rdlock(&p->lock);
	e = index_find_locked(p, set_id, d);
	if (e != NULL && !e->damaged) {
		loc = e->loc;
		ok = true;
	}
	pthread_rwlock_unlock(&p->lock);
	if (ok) {
		uint32_t size = storage_loc_size(loc);

		if (cap < 4 || cap - 4 < size) {
			rc = -EMSGSIZE;
		} else {
			rc = storage_read(ns->storage, loc, buf + 4);
			if (rc == 0) {
				buf[0] = (uint8_t)size;
				buf[1] = (uint8_t)(size >> 8);
				buf[2] = (uint8_t)(size >> 16);
				buf[3] = (uint8_t)(size >> 24);
				rc = (int)(4 + size);
			} else {
				log_warn("migrate", "{%s} a record of partition %u cannot be read: %s; not sent",
				    ns->name, digest_partition(d), recfs_strerror(rc));
				rc = 0;
			}
		}
	}
	index_record_unlock(ns->index, d);
	return rc;
}

/* Record i of c into buf (cap bytes): the copy read ahead, or read now if
 * the batch left it (TX_UNREAD).  Its size, 0, -EMSGSIZE or -errno. */
static int
tx_take(struct namespace *ns, const struct tx_collect *c, size_t i, uint8_t *buf, size_t cap)
{
	int r;

	if (c->res[i] == TX_UNREAD)
		return tx_read_one(ns, c->r[i].set_id, &c->r[i].d, buf, cap);
	if ((size_t)c->res[i] > cap)
		return -EMSGSIZE;
	if ((r = c->res[i]) > 0)
		memcpy(buf, c->buf + c->off[i], (size_t)r);
	return r;
}

/*
 * The records of batch c read at once (storage_read_many: the device reads
 * of all of them in flight together, where tx_read_one waits for each),
 * each as tx_read_one reads it: under its record lock, taken here without
 * waiting (a record another thread holds, or one that does not fit c->buf,
 * is left TX_UNREAD for tx_read_one after these locks are given back: a
 * thread holding several record locks never waits for one).
 */
static void
tx_read_batch(struct namespace *ns, struct tx_collect *c)
{
	storage_loc locs[MIG_BATCH_RECORDS];
	uint8_t *bufs[MIG_BATCH_RECORDS];
	unsigned idx[MIG_BATCH_RECORDS], k = 0;
	int rcs[MIG_BATCH_RECORDS];
	bool locked[MIG_BATCH_RECORDS];
	size_t at = 0;

	for (unsigned i = 0; i < c->n; i++) {
		const struct digest *d = &c->r[i].d;
		struct index_partition *p = index_partition_of(ns->index, d);
		struct index_entry *e;
		storage_loc loc = 0;
		bool ok = false;

		c->res[i] = TX_UNREAD;
		locked[i] = index_record_trylock(ns->index, d);
		if (!locked[i])
			continue;
		pthread_rwlock_rdlock(&p->lock);
		e = index_find_locked(p, c->r[i].set_id, d);
		if (e != NULL && !e->damaged) {
			loc = e->loc;
			ok = true;
		}
		pthread_rwlock_unlock(&p->lock);
		if (!ok) {
			c->res[i] = 0;     /* gone: nothing to send */
			continue;
		}
		if (c->cap - at < 4 || c->cap - at - 4 < storage_loc_size(loc))
			continue;          /* tx_read_one, alone */
		c->off[i] = at;
		locs[k] = loc;
		bufs[k] = c->buf + at + 4;
		idx[k++] = i;
		at += 4 + (size_t)storage_loc_size(loc);
	}
	storage_read_many(ns->storage, k, locs, bufs, rcs);
	for (unsigned j = 0; j < k; j++) {
		unsigned i = idx[j];
		uint32_t size = storage_loc_size(locs[j]);
		uint8_t *b = c->buf + c->off[i];

		if (rcs[j] != 0) {
			log_warn("migrate", "{%s} a record of partition %u cannot be read: %s; not sent",
			    ns->name, digest_partition(&c->r[i].d), recfs_strerror(rcs[j]));
			c->res[i] = 0;
			continue;
		}
		b[0] = (uint8_t)size;
		b[1] = (uint8_t)(size >> 8);
		b[2] = (uint8_t)(size >> 16);
		b[3] = (uint8_t)(size >> 24);
		c->res[i] = (int)(4 + size);
	}
	for (unsigned i = 0; i < c->n; i++)
		if (locked[i])
			index_record_unlock(ns->index, &c->r[i].d);
}

static bool
job_current(struct txn_migrate *m, const struct mig_job *j)
{
	bool cur;

	pthread_mutex_lock(&m->lock);
	cur = !m->stop && m->key == j->key;
	pthread_mutex_unlock(&m->lock);
	return cur;
}

/* One call, retried while the job's change is current: 0, -ESTALE, or
 * the handler's error other than busy (-EPROTO: the receiver does not
 * expect it); the answer of the call that ended it in *out (release it). */
static int
tx_call(struct txn_migrate *m, const struct mig_job *j, const uint8_t *body, size_t len,
    struct rpc_answer *out)
{
	uint32_t backoff = MIG_RETRY_MS;

	memset(out, 0, sizeof(*out));
	for (;;) {
		int rc;

		if (!job_current(m, j))
			return -ESTALE;
		rc = rpc_call(m->rpc, j->dest, RPC_OP_MIGRATE_DATA, body, len, 0, out);
		if (rc == 0)
			rc = out->err;
		if (rc == 0 || rc == -EPROTO || rc == -ESTALE)
			return rc;
		rpc_answer_release(out);
		/* busy, not ready, gone, no space: later (a change ends it) */
		pthread_mutex_lock(&m->lock);
		if (!m->stop && m->key == j->key)
			cond_wait_until(&m->job_cv, &m->lock, mono_in_ms(backoff));
		pthread_mutex_unlock(&m->lock);
		backoff = backoff * 2 > MIG_RETRY_MAX_MS ? MIG_RETRY_MAX_MS : backoff * 2;
	}
}

/*
 * The sender's side of PARTS (docs/cluster.md, "Migration protocol").  An
 * emigration thread takes a job and then, while the message being filled
 * has room, more jobs of the same namespace, receiver and change: a stream.
 * Each partition becomes one or more sections of PARTS messages, up to
 * MIG_WINDOW messages in flight.  A partition that fits what is left of
 * the message is one section, FIRST|LAST (START, records and DONE in one
 * call).  A larger one opens with a FIRST section that the thread waits
 * for (the receiver may refuse it busy: migrate-max-num-incoming), then
 * streams its middle sections, and waits for every one of them before
 * its LAST section goes: the receiver then acknowledges a LAST only with
 * every record of the partition applied.  Every job ends once per run
 * (job_end_locked): sent, refused (not expected there), stale, or queued
 * again.
 */
static void tx_finished(struct txn_migrate *m, const struct mig_job *j);

static int
loc_cmp(const void *a, const void *b)
{
	storage_loc x = ((const struct tx_ref *)a)->loc, y = ((const struct tx_ref *)b)->loc;

	return storage_loc_offset(x) < storage_loc_offset(y) ? -1 : storage_loc_offset(x) > storage_loc_offset(y);
}

struct tx_sec {
	struct mig_job j;          /* the run the section belongs to */
	uint32_t n;                /* records */
	uint8_t flags;
};

struct tx_msg {
	uint8_t *buf;
	size_t len, count_off;
	unsigned n_sec;
	struct tx_sec sec[MIGRATE_MSG_PARTS_MAX];
	bool inflight;
	struct rpc_group g;
	struct rpc_answer ans;
};

struct tx_stream {
	struct txn_migrate *m;
	unsigned idx;              /* the emigration thread's */
	struct mig_job j;          /* the partition being read (ns, dest, key: the stream's) */
	struct tx_msg msg[MIG_WINDOW];
	unsigned cur;              /* the message being filled */
	struct tx_collect *c;
	int part_rc;               /* a section of j's run came back failed */
	uint64_t ops_seen;         /* client operations counted at the last look (tx_yield) */
	uint64_t work_t0;          /* monotonic ns: the thread works since */
	uint64_t *sleep_owed_us;   /* migrate-sleep not slept yet (the thread's) */
};

/* What an emigration thread carries from one stream to the next: the
 * migrate-sleep it owes and where it stands in tx_yield's slice (a stream
 * can be shorter than the slice: small partitions, a fast move). */
struct tx_carry {
	uint64_t sleep_owed_us;
	uint64_t ops_seen, work_t0;
};

/* Lock held: when jobs to node may start (0: now). */
static uint64_t
dest_until_locked(const struct txn_migrate *m, uint64_t node)
{
	for (unsigned i = 0; i < PARTITION_NODES_MAX; i++)
		if (m->busy[i].node == node)
			return m->busy[i].until;
	return 0;
}

/* Lock held: node refused (busy) or took a section (ok). */
static void
dest_busy_locked(struct txn_migrate *m, uint64_t node, bool busy)
{
	unsigned i, free_i = PARTITION_NODES_MAX;

	for (i = 0; i < PARTITION_NODES_MAX && m->busy[i].node != node; i++)
		if (free_i == PARTITION_NODES_MAX && m->busy[i].node == 0)
			free_i = i;
	if (i == PARTITION_NODES_MAX) {
		if (!busy || free_i == PARTITION_NODES_MAX)
			return;
		i = free_i;
		m->busy[i].node = node;
		m->busy[i].backoff_ms = 0;
	}
	if (!busy) {
		m->busy[i].node = 0;
		return;
	}
	m->busy[i].backoff_ms = m->busy[i].backoff_ms == 0 ? MIG_RETRY_MS :
	    m->busy[i].backoff_ms * 2 > MIG_RETRY_MAX_MS ? MIG_RETRY_MAX_MS : m->busy[i].backoff_ms * 2;
	m->busy[i].until = mono_in_ms(m->busy[i].backoff_ms);
}

/* Lock held: the queue index of j's run, or m->n_jobs. */
static size_t
job_find_locked(const struct txn_migrate *m, const struct mig_job *j)
{
	for (size_t k = 0; k < m->n_jobs; k++)
		if (m->jobs[k].active && m->jobs[k].run == j->run && m->jobs[k].ns == j->ns &&
		    m->jobs[k].pid == j->pid && m->jobs[k].dest == j->dest && m->jobs[k].key == j->key)
			return k;
	return m->n_jobs;
}

/* Lock held: job k runs (run id into *j). */
static void
job_take_locked(struct txn_migrate *m, size_t k, struct mig_job *j)
{
	m->jobs[k].active = true;
	m->jobs[k].run = ++m->job_runs;
	*j = m->jobs[k];
	m->mns[j->ns].tx_active++;
}

/* Lock held: j's run ended with rc: 0 sent, -EPROTO not expected there
 * (both end the emigration for good), -ESTALE (the change is over), any
 * other error: queued again, after MIG_RETRY_MS.  A run that ended
 * already (or a change since) is left alone. */
static void
job_end_locked(struct txn_migrate *m, const struct mig_job *j, int rc)
{
	size_t k = job_find_locked(m, j);
	struct mig_ns *x = &m->mns[j->ns];

	if (k == m->n_jobs)
		return;
	if (x->tx_active > 0)
		x->tx_active--;
	if (rc != 0 && rc != -EPROTO && rc != -ESTALE && m->key == j->key && !m->stop) {
		/* the receiver refused it: none to it for a while (no storage
		 * read for a receiver that is paused or full) */
		m->jobs[k].active = false;
		m->jobs[k].not_before = mono_in_ms(MIG_RETRY_MS);
		dest_busy_locked(m, j->dest, true);
		pthread_cond_broadcast(&m->job_cv);
		return;
	}
	if (rc == 0)
		dest_busy_locked(m, j->dest, false);
	if (rc == -EPROTO && m->refused_logged++ < 8)
		log_warn("migrate", "{%s} partition %u: node %016" PRIx64 " does not expect it; "
		    "not sent%s", x->ns->name, j->pid, j->dest,
		    m->refused_logged == 8 ? " (no more of these lines until the next change)" : "");
	if (rc == 0 || rc == -EPROTO)
		tx_finished(m, j);
	m->jobs[k] = m->jobs[--m->n_jobs];
}

/* Lock held: the next ready job of the stream's namespace, receiver and
 * change, taken into *j; false when none. */
static bool
job_next_locked(struct txn_migrate *m, const struct tx_stream *s, struct mig_job *j)
{
	uint64_t now = clock_mono_ns();

	if (m->stop || m->key != s->j.key || s->idx >= atomic_load_relaxed(&m->cfg->migrate_threads) ||
	    dest_until_locked(m, s->j.dest) > now)
		return false;
	for (size_t k = 0; k < m->n_jobs; k++)
		if (!m->jobs[k].active && m->jobs[k].not_before <= now && m->jobs[k].ns == s->j.ns &&
		    m->jobs[k].dest == s->j.dest && m->jobs[k].key == s->j.key) {
			job_take_locked(m, k, j);
			return true;
		}
	return false;
}

/* Wait for t's answer (a call that failed for a passing reason is made
 * again, tx_call) and end the runs its sections complete or fail. */
static void
tx_msg_wait(struct tx_stream *s, struct tx_msg *t)
{
	struct txn_migrate *m = s->m;
	int res[MIGRATE_MSG_PARTS_MAX];
	int rc;

	if (!t->inflight)
		return;
	(void)rpc_group_wait(&t->g);
	t->inflight = false;
	rc = t->ans.rc != 0 ? t->ans.rc : t->ans.err;
	if (rc != 0 && rc != -EPROTO && rc != -ESTALE) {
		rpc_answer_release(&t->ans);
		rc = tx_call(m, &t->sec[0].j, t->buf, t->len, &t->ans);
	}
	if (rc == 0 && migrate_msg_decode_parts_answer(t->ans.body, t->ans.len, t->n_sec, res) != 0) {
		log_warn("migrate", "node %016" PRIx64 " answered a migration message with %zu bytes, "
		    "not %u results: sent again later", t->sec[0].j.dest, t->ans.len, t->n_sec);
		rc = -EAGAIN;
	}
	rpc_answer_release(&t->ans);
	pthread_mutex_lock(&m->lock);
	for (unsigned i = 0; i < t->n_sec; i++) {
		const struct tx_sec *sec = &t->sec[i];
		int r = rc != 0 ? rc : res[i];

		if (r == 0)
			atomic_add(&m->mns[sec->j.ns].records_tx, sec->n);
		if (r != 0 || (sec->flags & MIGRATE_MSG_PART_LAST))
			job_end_locked(m, &sec->j, r);
		if (r != 0 && sec->j.run == s->j.run && s->part_rc == 0)
			s->part_rc = r;
	}
	pthread_mutex_unlock(&m->lock);
	t->n_sec = 0;
	t->len = 0;
}

/* Every message in flight answered. */
static void
tx_drain(struct tx_stream *s)
{
	for (unsigned i = 1; i <= MIG_WINDOW; i++)
		tx_msg_wait(s, &s->msg[(s->cur + i) % MIG_WINDOW]);
}

/* Client operations counted on this node's namespaces (txn_client_op). */
static uint64_t
client_ops_sum(const struct txn_migrate *m)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < m->n_ns; i++)
		n += atomic_load_relaxed(&txn_namespace_of(m->mns[i].ns)->client_ops);
	return n;
}

/*
 * Clients first (network.migrate-yield-pct; docs/cluster.md, "Throttles"):
 * once the thread has worked MIG_YIELD_SLICE_MS since its last pause, if
 * this node served client operations meanwhile, it waits for its
 * messages in flight and pauses for that percent of the time it worked
 * (reading, filling, the waits for the window and that last wait), at
 * most MIG_YIELD_MAX_MS.  With nothing in flight during the pause, the
 * move's work stops on every node (the senders' reads, both fabric
 * threads, the receiver's bulk workers): a pause with messages still in
 * flight only took the place of the wait for the window whenever the
 * receiver was the slower end (runs of an earlier version: the rate
 * barely moved).  The cap keeps the move going under any client load;
 * no client operation, no pause.
 */
static void
tx_yield(struct tx_stream *s)
{
	struct txn_migrate *m = s->m;
	uint32_t pct = atomic_load_relaxed(&m->cfg->migrate_yield_pct);
	uint64_t ops, now = clock_mono_ns(), pause_ns;

	if (pct == 0 || now <= s->work_t0) {
		s->ops_seen = client_ops_sum(m);
		s->work_t0 = now;
		return;
	}
	if (now - s->work_t0 < (uint64_t)MIG_YIELD_SLICE_MS * 1000000)
		return;
	ops = client_ops_sum(m);
	if (ops == s->ops_seen) {
		s->work_t0 = now;
		return;
	}
	tx_drain(s);
	now = clock_mono_ns();
	pause_ns = (now - s->work_t0) / 100 * pct;
	if (pause_ns > (uint64_t)MIG_YIELD_MAX_MS * 1000000)
		pause_ns = (uint64_t)MIG_YIELD_MAX_MS * 1000000;
	if (pause_ns >= 1000) {
		struct timespec ts = { .tv_sec = (time_t)(pause_ns / 1000000000),
		    .tv_nsec = (long)(pause_ns % 1000000000) };
		struct namespace *ns = m->mns[s->j.ns].ns;

		nanosleep(&ts, NULL);
		NS_COUNT_ADD(ns, migrate_tx_yields, 1);
		NS_COUNT_ADD(ns, migrate_tx_yield_time, pause_ns / 1000);
	}
	s->ops_seen = client_ops_sum(m);
	s->work_t0 = clock_mono_ns();
}

/* The message being filled goes (if it holds a section), the thread
 * yields to clients (tx_yield); the next one is free once its earlier
 * call is answered. */
static void
tx_flush(struct tx_stream *s)
{
	struct tx_msg *t = &s->msg[s->cur];

	if (t->n_sec == 0)
		return;
	migrate_msg_parts_count(t->buf, t->count_off, t->n_sec);
	memset(&t->ans, 0, sizeof(t->ans));
	rpc_group_init(s->m->rpc, &t->g, 0);
	(void)rpc_group_send(&t->g, s->j.dest, RPC_OP_MIGRATE_DATA, t->buf, t->len, &t->ans);
	t->inflight = true;
	s->cur = (s->cur + 1) % MIG_WINDOW;
	tx_yield(s);
	tx_msg_wait(s, &s->msg[s->cur]);
}

/* A section of s->j opens in the message being filled: 0, or -errno. */
static int
tx_sec_open(struct tx_stream *s, uint8_t flags, size_t *n_off)
{
	struct tx_msg *t = &s->msg[s->cur];
	struct mig_ns *x = &s->m->mns[s->j.ns];
	int hl;

	if (t->n_sec == MIGRATE_MSG_PARTS_MAX)
		tx_flush(s);
	t = &s->msg[s->cur];
	if (t->len == 0) {
		hl = migrate_msg_encode_parts(t->buf, RPC_BODY_MAX, s->j.key, x->ns->name, &t->count_off);
		if (hl < 0)
			return hl;
		t->len = (size_t)hl;
	}
	hl = migrate_msg_encode_part_head(t->buf + t->len, RPC_BODY_MAX - t->len, s->j.pid, flags, n_off);
	if (hl < 0)
		return hl;
	*n_off += t->len;
	t->len += (size_t)hl;
	t->sec[t->n_sec++] = (struct tx_sec){ .j = s->j, .n = 0, .flags = flags };
	return 0;
}

/*
 * Partition s->j into the stream: 0 when its last section is in a
 * message (sent or being filled; the run ends with that message's
 * answer), else the run's error (the caller ends it).  A section left
 * open in the message being filled is taken back on an error.
 */
static int
tx_partition(struct tx_stream *s)
{
	struct txn_migrate *m = s->m;
	struct namespace *ns = m->mns[s->j.ns].ns;
	struct index_walk_pos pos = { 0 };
	struct tx_collect *c = s->c;
	struct tx_msg *t;
	struct tx_sec *sec = NULL;
	size_t n_off = 0, sec_start = 0;
	bool sent_some = false;   /* sections of it went: the next is not FIRST */
	bool whole = false;       /* all of it in the first batch: never split */
	int rc = 0;

	s->part_rc = 0;
	c->part = 0;
	while (!pos.done && rc == 0) {
		uint32_t sleep = atomic_load_relaxed(&ns->cfg->migrate_sleep_us);
		int walked;

		if (!job_current(m, &s->j)) {
			rc = -ESTALE;
			break;
		}
		/* The first batch up to a whole message: a partition that fits
		 * one goes whole in one section (no wait for the window), in a
		 * message of its own if it does not fit what is left of the one
		 * being filled.  Later batches: what is left of the message, at
		 * least one record. */
		t = &s->msg[s->cur];
		c->n = 0;
		c->bytes = 0;
		c->limit = !pos.started ? MIG_BATCH_BYTES : t->len < MIG_BATCH_BYTES ?
		    (uint32_t)(MIG_BATCH_BYTES - t->len) : 1;
		walked = index_partition_walk(ns->index, s->j.pid, &pos, tx_collect_one, c, MIG_BATCH_RECORDS);
		if (walked < 0)
			rc = walked;
		if (walked <= 0)
			break;
		if (!sent_some && sec == NULL && pos.done && c->bytes <= MIG_BATCH_BYTES) {
			whole = true;
			if (t->n_sec > 0 && t->len + MIG_SEC_OVERHEAD + c->bytes + 4ull * c->n > MIG_BATCH_BYTES)
				tx_flush(s);
		}
		/* read in storage order: neighbours in a write block come together */
		qsort(c->r, c->n, sizeof(c->r[0]), loc_cmp);
		tx_read_batch(ns, c);
		for (unsigned i = 0; i < c->n && rc == 0; i++) {
			bool full;
			int r;

			if (sec == NULL) {
				rc = tx_sec_open(s, sent_some ? 0 : MIGRATE_MSG_PART_FIRST, &n_off);
				if (rc != 0)
					break;
				t = &s->msg[s->cur];
				sec = &t->sec[t->n_sec - 1];
				sec_start = n_off - 5;
			}
			t = &s->msg[s->cur];
			r = tx_take(ns, c, i, t->buf + t->len, RPC_BODY_MAX - t->len);
			if (r == -EMSGSIZE) {
				if (sec->n == 0 && t->n_sec == 1) {
					rc = r;   /* larger than any message: cannot happen */
					break;
				}
				full = true;
				i--;      /* it goes in the next message */
			} else if (r < 0) {
				rc = r;
				break;
			} else {
				if (r > 0) {
					t->len += (size_t)r;
					migrate_msg_insert_count(t->buf, n_off, ++sec->n);
				}
				/* full with more of the partition to come */
				full = !whole && t->len >= MIG_BATCH_BYTES && (i + 1 < c->n || !pos.done);
			}
			if (!full)
				continue;
			/* The section goes without LAST (an empty one not at all);
			 * a FIRST is waited for - the receiver may refuse it busy -
			 * before more of the partition goes. */
			bool first = false;

			if (sec->n == 0) {
				t->len = sec_start;
				t->n_sec--;
			} else {
				first = !sent_some;
				sent_some = true;
			}
			sec = NULL;
			tx_flush(s);
			if (first)
				tx_drain(s);
			rc = s->part_rc;
		}
		/* migrate-sleep: per record sent, slept once it adds up to
		 * MIG_SLEEP_MIN_US (a batch's few us cost a timer wake-up of
		 * ~1 ms here: a cap on the rate, not the throttle asked) */
		if (rc == 0 && sleep > 0 && c->n > 0) {
			*s->sleep_owed_us += (uint64_t)sleep * c->n;
			if (*s->sleep_owed_us >= MIG_SLEEP_MIN_US) {
				sleep_us(*s->sleep_owed_us > UINT32_MAX ? UINT32_MAX : (uint32_t)*s->sleep_owed_us);
				*s->sleep_owed_us = 0;
			}
		}
	}
	if (rc == 0 && sent_some) {
		/* every earlier section of the partition applied before its LAST */
		tx_drain(s);
		rc = s->part_rc;
	}
	t = &s->msg[s->cur];
	if (rc != 0) {
		if (sec != NULL) {
			t->len = sec_start;
			t->n_sec--;
		}
		return rc;
	}
	if (sec == NULL) {
		/* nothing (more) to read: an empty section carries the LAST */
		rc = tx_sec_open(s, sent_some ? 0 : MIGRATE_MSG_PART_FIRST, &n_off);
		if (rc != 0)
			return rc;
		t = &s->msg[s->cur];
		sec = &t->sec[t->n_sec - 1];
	}
	sec->flags |= MIGRATE_MSG_PART_LAST;
	t->buf[n_off - 1] = sec->flags;
	if (t->len >= MIG_BATCH_BYTES)
		tx_flush(s);
	return 0;
}

#define TX_NOT_SMALL 1           /* tx_group: s->j is not whole in one walk */

/* Lock not held: the runs g[from, n) end with rc. */
static void
tx_group_end(struct txn_migrate *m, const struct mig_job *g, unsigned from, unsigned n, int rc)
{
	pthread_mutex_lock(&m->lock);
	for (unsigned p = from; p < n; p++)
		job_end_locked(m, &g[p], rc);
	pthread_mutex_unlock(&m->lock);
}

/*
 * Small partitions read together: s->j and then the next ready jobs of
 * the stream, each walked whole into one batch while the batch holds at
 * most a message's worth of bytes (and MIG_BATCH_RECORDS entries); all
 * their records are read in one storage_read_many, then each partition
 * becomes one FIRST|LAST section, as tx_partition makes of a small one
 * (a partition that does not fit what is left of the message opens the
 * next one).  Read one partition at a time, the 2-3 records of each cost
 * the emigration thread a wait for the disk: about half its time in a
 * join.  A job that does not fit the batch is handed back in *left (the
 * next group starts with it); TX_NOT_SMALL when s->j itself is not whole
 * in one walk (tx_partition sends it).  Every run of the group ends once,
 * as tx_partition's do: 0 (its sections are in messages) or -ESTALE.
 */
static int
tx_group(struct tx_stream *s, unsigned *parts, struct mig_job *left, bool *has_left)
{
	struct txn_migrate *m = s->m;
	struct namespace *ns = m->mns[s->j.ns].ns;
	struct tx_collect *c = s->c;
	struct mig_job g[MIGRATE_MSG_PARTS_MAX];
	uint64_t need[MIGRATE_MSG_PARTS_MAX];
	uint32_t sleep = atomic_load_relaxed(&ns->cfg->migrate_sleep_us);
	unsigned k = 0;
	uint64_t total = 0;
	int rc = 0;

	*has_left = false;
	c->n = 0;
	c->bytes = 0;
	g[0] = s->j;
	for (;;) {
		struct index_walk_pos pos = { 0 };
		unsigned n0 = c->n;
		uint32_t b0 = c->bytes;
		int walked;

		if (!job_current(m, &g[k])) {
			tx_group_end(m, g, 0, k + 1, -ESTALE);
			return -ESTALE;
		}
		c->part = (uint8_t)k;
		c->limit = b0 + MIG_BATCH_BYTES;
		walked = index_partition_walk(ns->index, g[k].pid, &pos, tx_collect_one, c,
		    MIG_BATCH_RECORDS - n0);
		need[k] = MIG_SEC_OVERHEAD + (uint64_t)(c->bytes - b0) + 4ull * (c->n - n0);
		if (walked < 0 || !pos.done || c->bytes - b0 > MIG_BATCH_BYTES ||
		    (k > 0 && total + need[k] > MIG_BATCH_BYTES)) {
			/* not whole in one message's walk (tx_partition splits it), or
			 * over the batch: first in the next */
			c->n = n0;
			c->bytes = b0;
			if (k == 0)
				return TX_NOT_SMALL;
			*left = g[k];
			*has_left = true;
			break;
		}
		total += need[k++];
		if (k == MIGRATE_MSG_PARTS_MAX || c->n >= MIG_BATCH_RECORDS || total >= MIG_BATCH_BYTES ||
		    *parts + k >= MIG_STREAM_PARTS)
			break;
		pthread_mutex_lock(&m->lock);
		bool more = job_next_locked(m, s, &g[k]);
		pthread_mutex_unlock(&m->lock);
		if (!more)
			break;
	}
	/* read in storage order: neighbours in a write block come together */
	qsort(c->r, c->n, sizeof(c->r[0]), loc_cmp);
	tx_read_batch(ns, c);
	for (unsigned p = 0; p < k; p++) {
		struct tx_msg *t = &s->msg[s->cur];
		struct tx_sec *sec;
		size_t n_off, sec_start;
		unsigned n_rec = 0;

		if (!job_current(m, &g[p])) {
			tx_group_end(m, g, p, k, -ESTALE);
			return -ESTALE;
		}
		s->j = g[p];
		s->part_rc = 0;
		if (t->n_sec > 0 && t->len + need[p] > MIG_BATCH_BYTES)
			tx_flush(s);
		rc = tx_sec_open(s, MIGRATE_MSG_PART_FIRST, &n_off);
		if (rc != 0) {
			tx_group_end(m, g, p, p + 1, rc);
			continue;
		}
		t = &s->msg[s->cur];
		sec = &t->sec[t->n_sec - 1];
		sec_start = n_off - 5;
		for (unsigned i = 0; i < c->n && rc == 0; i++) {
			int r;

			if (c->r[i].part != p)
				continue;
			n_rec++;
			r = tx_take(ns, c, i, t->buf + t->len, RPC_BODY_MAX - t->len);
			if (r < 0) {
				rc = r;   /* the section is taken back, the run ends with it */
			} else if (r > 0) {
				t->len += (size_t)r;
				migrate_msg_insert_count(t->buf, n_off, ++sec->n);
			}
		}
		if (rc != 0) {
			t->len = sec_start;
			t->n_sec--;
			tx_group_end(m, g, p, p + 1, rc);
			rc = 0;
			continue;
		}
		sec->flags |= MIGRATE_MSG_PART_LAST;
		t->buf[n_off - 1] = sec->flags;
		(*parts)++;
		if (t->len >= MIG_BATCH_BYTES)
			tx_flush(s);
		/* migrate-sleep, as tx_partition owes it */
		if (sleep > 0 && n_rec > 0) {
			*s->sleep_owed_us += (uint64_t)sleep * n_rec;
			if (*s->sleep_owed_us >= MIG_SLEEP_MIN_US) {
				sleep_us(*s->sleep_owed_us > UINT32_MAX ? UINT32_MAX : (uint32_t)*s->sleep_owed_us);
				*s->sleep_owed_us = 0;
			}
		}
	}
	return 0;
}

/* A stream that begins with job j (taken): until no job of its namespace,
 * receiver and change is ready, or MIG_STREAM_PARTS partitions. */
static void
tx_stream_run(struct txn_migrate *m, unsigned idx, const struct mig_job *j, struct tx_carry *carry)
{
	struct tx_stream *s = calloc(1, sizeof(*s));
	unsigned parts = 0;
	bool more = true;

	if (s != NULL)
		s->c = calloc(1, sizeof(*s->c));
	/* a batch's records read at once: a message's worth and one record
	 * (virtual: only what a batch fills is ever touched) */
	if (s != NULL && s->c != NULL && (s->c->buf = malloc(RPC_BODY_MAX)) != NULL)
		s->c->cap = RPC_BODY_MAX;
	for (unsigned i = 0; s != NULL && s->c != NULL && i < MIG_WINDOW; i++)
		if ((s->msg[i].buf = malloc(RPC_BODY_MAX)) == NULL)
			break;
	if (s == NULL || s->c == NULL || s->msg[MIG_WINDOW - 1].buf == NULL) {
		pthread_mutex_lock(&m->lock);
		job_end_locked(m, j, -ENOMEM);
		pthread_mutex_unlock(&m->lock);
		more = false;
	} else {
		s->m = m;
		s->idx = idx;
		s->j = *j;
		s->sleep_owed_us = &carry->sleep_owed_us;
		s->ops_seen = carry->ops_seen;
		s->work_t0 = carry->work_t0;
	}
	while (more) {
		struct mig_job left;
		bool has_left = false;
		int rc = tx_group(s, &parts, &left, &has_left);

		if (rc == TX_NOT_SMALL) {
			rc = tx_partition(s);
			parts++;
			pthread_mutex_lock(&m->lock);
			if (rc != 0)
				job_end_locked(m, &s->j, rc);
			pthread_mutex_unlock(&m->lock);
		}
		pthread_mutex_lock(&m->lock);
		if (has_left && rc == -ESTALE)
			job_end_locked(m, &left, rc);
		if (has_left && rc != -ESTALE) {
			s->j = left;
			more = true;
		} else {
			more = rc != -ESTALE && parts < MIG_STREAM_PARTS && job_next_locked(m, s, &s->j);
		}
		pthread_mutex_unlock(&m->lock);
	}
	if (s != NULL && s->c != NULL && s->msg[MIG_WINDOW - 1].buf != NULL) {
		tx_flush(s);
		tx_drain(s);
		carry->ops_seen = s->ops_seen;
		carry->work_t0 = s->work_t0;
	}
	for (unsigned i = 0; s != NULL && i < MIG_WINDOW; i++)
		free(s->msg[i].buf);
	if (s != NULL && s->c != NULL)
		free(s->c->buf);
	if (s != NULL)
		free(s->c);
	free(s);
}

/* An emigration ended for good (sent, or refused as unexpected).  Lock held. */
static void
tx_finished(struct txn_migrate *m, const struct mig_job *j)
{
	struct mig_ns *x = &m->mns[j->ns];

	if (m->key != j->key)
		return;
	if (x->tx_left[j->pid] > 0)
		x->tx_left[j->pid]--;
	if (x->tx_remaining > 0)
		x->tx_remaining--;
	pending_update(x);
	if (x->tx_left[j->pid] == 0 && x->release_to[j->pid] != 0)
		(void)work_push(m, j->ns, j->pid, MIG_W_RELEASE);
	if (x->tx_left[j->pid] == 0 && (x->flags[j->pid] & MIG_F_DROP_AFTER) && x->wm[j->pid] != m->self &&
	    !(x->flags[j->pid] & MIG_F_DROPPING)) {
		x->flags[j->pid] |= MIG_F_DROPPING;
		(void)work_push(m, j->ns, j->pid, MIG_W_DROP);
	}
	(void)partition_set_working(table_of(x), j->pid, j->key, x->wm[j->pid], state_of(x, j->pid));
	check_all_done(m);
}

struct em_arg {
	struct txn_migrate *m;
	unsigned idx;
};

static void *
emigrate_main(void *arg)
{
	struct em_arg *a = arg;
	struct txn_migrate *m = a->m;
	unsigned idx = a->idx;
	struct tx_carry carry = { 0 };
	bool idle = true;          /* waited for work: the yield slice starts again */

	free(a);
	pthread_setname_np(pthread_self(), "migrate-tx");
	/* Background work: when the CPU is short, clients' threads go first
	 * (as the receivers' bulk rpc workers; this thread only). */
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), RPC_BULK_NICE) != 0)
		log_debug("migrate", "emigration thread: setpriority: %s", recfs_strerror(-errno));
	pthread_mutex_lock(&m->lock);
	while (!m->stop) {
		uint64_t now = clock_mono_ns(), next = UINT64_MAX;
		size_t k;
		bool paused = idx >= atomic_load_relaxed(&m->cfg->migrate_threads);

		for (k = 0; !paused && k < m->n_jobs; k++) {
			uint64_t at;

			if (m->jobs[k].active)
				continue;
			at = dest_until_locked(m, m->jobs[k].dest);
			at = at > m->jobs[k].not_before ? at : m->jobs[k].not_before;
			if (at <= now)
				break;
			if (at < next)
				next = at;
		}
		if (paused || k == m->n_jobs) {
			/* Paused with work waiting: look at migrate-threads again
			 * each second (a change of it wakes no one). */
			if (paused && m->n_jobs > 0 && next == UINT64_MAX)
				next = mono_in_ms(1000);
			if (next == UINT64_MAX)
				pthread_cond_wait(&m->job_cv, &m->lock);
			else
				cond_wait_until(&m->job_cv, &m->lock, next);
			idle = true;
			continue;
		}
		struct mig_job j;

		job_take_locked(m, k, &j);
		pthread_mutex_unlock(&m->lock);
		if (idle) {
			carry.ops_seen = client_ops_sum(m);
			carry.work_t0 = clock_mono_ns();
			idle = false;
		}
		tx_stream_run(m, idx, &j, &carry);
		pthread_mutex_lock(&m->lock);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

/* ---- receiver side (rpc workers) --------------------------------------------- */

static int
got_store(struct txn_migrate *m, uint64_t from, const struct migrate_msg *msg, int nsi)
{
	struct mig_got *g;

	pthread_mutex_lock(&m->lock);
	g = got_slot(m, from);
	if (g == NULL) {
		pthread_mutex_unlock(&m->lock);
		return -ENOMEM;
	}
	bool changed = g->key != msg->cluster_key || !g->have[nsi];

	if (g->key != msg->cluster_key) {
		g->key = msg->cluster_key;
		memset(g->have, 0, sizeof(g->have));
	}
	for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++) {
		uint64_t v = migrate_msg_version(msg, pid);

		changed |= g->v[(size_t)nsi * PARTITION_COUNT + pid] != v;
		g->v[(size_t)nsi * PARTITION_COUNT + pid] = v;
	}
	g->have[nsi] = true;
	if (changed && msg->cluster_key == m->key && m->rebalanced)
		log_warn("migrate", "node %016" PRIx64 " sent other versions for cluster-key %016" PRIx64
		    " after this node's rebalance: kept for the next change", from, m->key);
	log_debug("migrate", "versions of %016" PRIx64 " for cluster-key %016" PRIx64 " (mine %016" PRIx64
	    ")", from, msg->cluster_key, m->key);
	pthread_cond_broadcast(&m->got_cv);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

/* An EXCHANGE: stored, and answered with this node's own versions for that
 * key when it has taken them (so a sender that lost what this node sent
 * earlier - it was detached and attached again - has them at once). */
static int
on_exchange(struct txn_migrate *m, uint64_t from, const struct migrate_msg *msg, int nsi,
    struct rpc_reply *reply)
{
	int rc = got_store(m, from, msg, nsi);

	if (rc != 0)
		return rc;
	pthread_mutex_lock(&m->lock);
	if (m->snap_valid && m->snap_key == msg->cluster_key && m->snap != NULL) {
		int len = migrate_msg_encode_exchange(reply->buf, reply->cap, m->snap_key,
		    m->mns[nsi].ns->name, m->snap + (size_t)nsi * PARTITION_COUNT);

		reply->len = len > 0 ? (size_t)len : 0;
	}
	pthread_mutex_unlock(&m->lock);
	return 0;
}

/* The sender's bit if this node expects partition pid from it now, else
 * an error: -EAGAIN (this node has not rebalanced for that key yet),
 * -ESTALE (another key), -EPROTO (not expected).  Lock held. */
static int
expected(struct txn_migrate *m, uint64_t from, const struct migrate_msg *msg, int nsi, uint64_t *bit)
{
	int i;

	if (msg->cluster_key != m->key)
		return m->rebalanced ? -ESTALE : -EAGAIN;
	if (!m->rebalanced)
		return -EAGAIN;
	i = node_index(m, from);
	if (i < 0 || !(m->mns[nsi].rx_from[msg->pid] & (1ULL << i)))
		return -EPROTO;
	*bit = 1ULL << i;
	return 0;
}

static int apply_records(struct txn_migrate *m, uint64_t from, const struct migrate_msg *msg, int nsi);

static int
on_insert(struct txn_migrate *m, uint64_t from, const struct migrate_msg *msg, int nsi)
{
	uint64_t bit;
	int rc;

	pthread_mutex_lock(&m->lock);
	rc = expected(m, from, msg, nsi, &bit);
	if (rc == 0 && !(m->mns[nsi].rx_started[msg->pid] & bit))
		rc = -EPROTO;
	pthread_mutex_unlock(&m->lock);
	return rc != 0 ? rc : apply_records(m, from, msg, nsi);
}

/* START: a place among the incoming partitions.  Lock held. */
static int
start_locked(struct txn_migrate *m, uint64_t from, const struct migrate_msg *msg, int nsi)
{
	struct mig_ns *x = &m->mns[nsi];
	uint64_t bit;
	int rc;

	rc = expected(m, from, msg, nsi, &bit);
	if (rc == 0 && !(x->rx_started[msg->pid] & bit)) {
		if (m->incoming >= atomic_load_relaxed(&m->cfg->migrate_max_num_incoming)) {
			rc = -EAGAIN;
		} else {
			m->incoming++;
			x->rx_active++;
			x->rx_started[msg->pid] |= bit;
		}
	}
	return rc;
}

static int
on_start(struct txn_migrate *m, uint64_t from, const struct migrate_msg *msg, int nsi)
{
	int rc;

	pthread_mutex_lock(&m->lock);
	rc = start_locked(m, from, msg, nsi);
	pthread_mutex_unlock(&m->lock);
	return rc;
}

/* Partition pid received whole from the sender of bit, durable
 * (persist_round_locked): true when that completes it (its final version, stored
 * already, into x->versions).  Lock held. */
static bool
done_locked(struct txn_migrate *m, int nsi, uint32_t pid, uint64_t bit)
{
	struct mig_ns *x = &m->mns[nsi];
	bool complete = false;

	x->rx_from[pid] &= ~bit;
	x->rx_done[pid] |= bit;
	dups_set(x, pid, x->dups[pid] & ~bit);
	if (x->rx_started[pid] & bit) {
		x->rx_started[pid] &= ~bit;
		if (m->incoming > 0)
			m->incoming--;
		if (x->rx_active > 0)
			x->rx_active--;
	}
	if (x->rx_remaining > 0)
		x->rx_remaining--;
	if (x->rx_from[pid] == 0) {
		/* Everything received: the final version. */
		x->versions[pid] = rebalance_final_version(m->key, x->fm[pid] == m->self);
		complete = true;
		if (x->fm[pid] == m->self && x->wm[pid] != m->self)
			(void)work_push(m, (unsigned)nsi, pid, MIG_W_TAKEOVER);
	}
	pending_update(x);
	(void)partition_set_working(table_of(x), pid, m->key, x->wm[pid], state_of(x, pid));
	check_all_done(m);
	return complete;
}

/* Did the sender from already send all of partition pid (this change)?
 * Lock held. */
static bool
done_already(const struct txn_migrate *m, uint64_t from, const struct migrate_msg *msg, int nsi)
{
	int i = node_index(m, from);

	return msg->cluster_key == m->key && m->rebalanced && i >= 0 &&
	    (m->mns[nsi].rx_done[msg->pid] & (1ULL << i)) != 0;
}

static int
on_done(struct txn_migrate *m, uint64_t from, const struct migrate_msg *msg, int nsi,
    const struct rpc_pending *pend)
{
	struct persist_req *r;
	uint64_t bit;
	int rc;

	pthread_mutex_lock(&m->lock);
	rc = expected(m, from, msg, nsi, &bit);
	if (rc == -EPROTO && done_already(m, from, msg, nsi))
		rc = 1;   /* a DONE again (the sender restarted its emigration): done already */
	pthread_mutex_unlock(&m->lock);
	if (rc != 0)
		return rc > 0 ? 0 : rc;
	r = persist_req_new(nsi, msg->cluster_key, false, 1);
	if (r == NULL)
		return -ENOMEM;
	r->ends[0] = (struct persist_end){ .pid = msg->pid, .bit = bit, .open = true, .sec = 0 };
	r->n_ends = r->n_open = 1;
	if (persist_file(m, r, pend))
		return RPC_PENDING;
	rc = r->res[0];
	free(r);
	return rc;
}

/* The records of an INSERT or a PARTS section, applied: 0, or the error
 * of one that could not be (no space, I/O: the sender tries again). */
static int
apply_records(struct txn_migrate *m, uint64_t from, const struct migrate_msg *msg, int nsi)
{
	struct mig_ns *x = &m->mns[nsi];
	const uint8_t *rec;
	uint32_t rec_len;
	size_t off = 0;
	uint64_t received = 0, refused = 0;
	int rc = 0;

	while (migrate_msg_record_next(msg, &off, &rec, &rec_len)) {
		struct record_flat_header h;
		int arc;

		if (record_flat_header_check(rec, rec_len, &h) != 0 ||
		    digest_partition(&h.digest) != msg->pid) {
			refused++;
			continue;
		}
		arc = namespace_apply_flat(x->ns, rec, rec_len, false);
		if (arc == -EBADMSG) {
			refused++;
			continue;
		}
		if (arc < 0) {
			rc = arc;
			break;
		}
		received++;
	}
	atomic_add(&x->records_rx, received);
	if (refused > 0) {
		NS_COUNT_ADD(x->ns, migrate_records_refused, refused);
		log_warn("migrate", "{%s} partition %u: %" PRIu64 " records from %016" PRIx64
		    " refused (malformed, or of another partition)", x->ns->name, msg->pid, refused, from);
	}
	return rc;
}

/*
 * One section of a PARTS: its result.  FIRST starts the partition: it
 * takes a place among the incoming partitions (migrate-max-num-incoming),
 * or -EAGAIN; a section that is also LAST (the whole partition in one
 * call) gives it back at the end of this call.  A section without FIRST needs the partition
 * started; LAST ends it as DONE does: *end is then filled, the end to make
 * durable before the answer (persist_file).  A LAST again after the
 * partition ended (the sender did not get the answer) is 0, not applied
 * again.
 */
static int
on_part(struct txn_migrate *m, uint64_t from, const struct migrate_msg *sec, int nsi,
    struct persist_end *end, bool *is_end)
{
	struct mig_ns *x = &m->mns[nsi];
	bool first = sec->flags & MIGRATE_MSG_PART_FIRST, last = sec->flags & MIGRATE_MSG_PART_LAST;
	bool whole = false;
	uint64_t bit;
	int rc;

	pthread_mutex_lock(&m->lock);
	rc = expected(m, from, sec, nsi, &bit);
	if (rc == -EPROTO && last && done_already(m, from, sec, nsi)) {
		pthread_mutex_unlock(&m->lock);
		return 0;
	}
	if (rc == 0 && !(x->rx_started[sec->pid] & bit)) {
		if (!first) {
			rc = -EPROTO;
		} else if (m->incoming >= atomic_load_relaxed(&m->cfg->migrate_max_num_incoming)) {
			rc = -EAGAIN;
		} else {
			m->incoming++;
			x->rx_active++;
			if (last)
				whole = true;
			else
				x->rx_started[sec->pid] |= bit;
		}
	}
	pthread_mutex_unlock(&m->lock);
	if (rc != 0)
		return rc;
	rc = apply_records(m, from, sec, nsi);
	pthread_mutex_lock(&m->lock);
	if (whole && m->key == sec->cluster_key) {
		if (m->incoming > 0)
			m->incoming--;
		if (x->rx_active > 0)
			x->rx_active--;
	}
	/* the change may have ended meanwhile: then nothing to end here */
	if (rc == 0 && last && expected(m, from, sec, nsi, &bit) == 0) {
		*end = (struct persist_end){ .pid = sec->pid, .bit = bit, .open = true };
		*is_end = true;
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

/* PARTS: each section in order; the ends it brings made durable and taken
 * (one round of the persister for all: persist_file) before the answer
 * goes, a section whose end could not be answered with the error.  Left
 * pending (the persister answers) when it brings an end and pend is set. */
static int
on_parts(struct txn_migrate *m, uint64_t from, const struct migrate_msg *msg, int nsi,
    struct rpc_reply *reply)
{
	struct migrate_msg sec;
	int res[MIGRATE_MSG_PARTS_MAX];
	struct persist_end ends[MIGRATE_MSG_PARTS_MAX];
	unsigned n = 0, n_ends = 0, refused = 0;
	size_t off = 0;
	int len;

	while (n < MIGRATE_MSG_PARTS_MAX && migrate_msg_part_next(msg, &off, &sec)) {
		bool is_end = false;

		res[n] = on_part(m, from, &sec, nsi, &ends[n_ends], &is_end);
		refused += res[n] == -ESTALE || res[n] == -EPROTO;
		if (is_end)
			ends[n_ends++].sec = n;
		n++;
	}
	if (refused > 0) {
		NS_COUNT_ADD(m->mns[nsi].ns, migrate_msgs_refused, refused);
		log_debug("migrate", "{%s} %u of %u sections of a migration message from %016" PRIx64
		    " refused (another cluster key, or not expected from that node)", msg->ns, refused,
		    n, from);
	}
	if (n_ends > 0) {
		struct persist_req *r = persist_req_new(nsi, msg->cluster_key, true, n);

		if (r == NULL) {
			for (unsigned i = 0; i < n_ends; i++)
				res[ends[i].sec] = -ENOMEM;
		} else {
			memcpy(r->res, res, n * sizeof(res[0]));
			memcpy(r->ends, ends, n_ends * sizeof(ends[0]));
			r->n_ends = r->n_open = n_ends;
			if (persist_file(m, r, reply->pending))
				return RPC_PENDING;
			memcpy(res, r->res, n * sizeof(res[0]));
			free(r);
		}
	}
	len = migrate_msg_encode_parts_answer(reply->buf, reply->cap, res, n);
	if (len < 0)
		return len;
	reply->len = (size_t)len;
	return 0;
}

static int
on_takeover(struct txn_migrate *m, uint64_t from, const struct migrate_msg *msg, int nsi)
{
	struct mig_ns *x = &m->mns[nsi];
	uint32_t pid = msg->pid;
	int rc = 0;

	pthread_mutex_lock(&m->lock);
	if (msg->cluster_key != m->key || !m->rebalanced) {
		rc = msg->cluster_key != m->key ? -ESTALE : -EAGAIN;
	} else if (from != x->fm[pid]) {
		rc = -EPROTO;
	} else {
		x->wm[pid] = from;
		dups_set(x, pid, 0);
		if (x->tx_left[pid] == 0 && (x->flags[pid] & MIG_F_DROP_AFTER) && !(x->flags[pid] & MIG_F_DROPPING)) {
			x->flags[pid] |= MIG_F_DROPPING;
			(void)work_push(m, (unsigned)nsi, pid, MIG_W_DROP);
		}
		(void)partition_set_working(table_of(x), pid, m->key, from, state_of(x, pid));
	}
	pthread_mutex_unlock(&m->lock);
	if (rc == 0)
		txn_partitions_changed(x->ns);
	return rc;
}

/* RELEASE: the working master's copy of pid reached every receiver. */
static int
on_release(struct txn_migrate *m, uint64_t from, const struct migrate_msg *msg, int nsi)
{
	struct mig_ns *x = &m->mns[nsi];
	uint32_t pid = msg->pid;
	int rc = 0;

	pthread_mutex_lock(&m->lock);
	if (msg->cluster_key != m->key || !m->rebalanced) {
		rc = msg->cluster_key != m->key ? -ESTALE : -EAGAIN;
	} else if (from != x->release_from[pid]) {
		rc = -EPROTO;
	} else if (x->flags[pid] & MIG_F_WAIT_RELEASE) {
		x->flags[pid] &= (uint8_t)~MIG_F_WAIT_RELEASE;
		x->flags[pid] |= MIG_F_DROPPING;
		(void)work_push(m, (unsigned)nsi, pid, MIG_W_DROP);
	}   /* else: a copy of a RELEASE already taken */
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static int
migrate_handler(void *arg, uint64_t from, const uint8_t *req, size_t len, struct rpc_reply *reply)
{
	struct txn_migrate *m = arg;
	struct migrate_msg msg;
	bool attached;
	int nsi;

	if (migrate_msg_decode(req, len, &msg) != 0) {
		log_warn("migrate", "a malformed migration message from %016" PRIx64 " refused", from);
		return -EBADMSG;
	}
	/* m->node read under the lock only: txn_migrate_attach sets it while
	 * the rpc workers already run (TSan, a node restarted in a test) */
	pthread_mutex_lock(&m->lock);
	attached = m->node != NULL;
	nsi = attached ? ns_index(m, msg.ns) : -1;
	pthread_mutex_unlock(&m->lock);
	if (nsi < 0)
		return attached ? -ENOENT : -EAGAIN;
	int rc = -EBADMSG;

	switch (msg.kind) {
	case MIGRATE_MSG_EXCHANGE: rc = on_exchange(m, from, &msg, nsi, reply); break;
	case MIGRATE_MSG_START: rc = on_start(m, from, &msg, nsi); break;
	case MIGRATE_MSG_INSERT: rc = on_insert(m, from, &msg, nsi); break;
	case MIGRATE_MSG_DONE: rc = on_done(m, from, &msg, nsi, reply->pending); break;
	case MIGRATE_MSG_TAKEOVER: rc = on_takeover(m, from, &msg, nsi); break;
	case MIGRATE_MSG_PARTS: rc = on_parts(m, from, &msg, nsi, reply); break;
	case MIGRATE_MSG_RELEASE: rc = on_release(m, from, &msg, nsi); break;
	}
	if (rc == -ESTALE || rc == -EPROTO) {
		struct namespace *ns;

		pthread_mutex_lock(&m->lock);
		ns = nsi < (int)m->n_ns ? m->mns[nsi].ns : NULL;
		pthread_mutex_unlock(&m->lock);
		if (ns != NULL)
			NS_COUNT_ADD(ns, migrate_msgs_refused, 1);
		log_debug("migrate", "{%s} a migration message (kind %u, partition %u) from %016" PRIx64
		    " refused: %s", msg.ns, msg.kind, msg.pid, from, rc == -ESTALE ? "another cluster key" :
		    "not expected from that node");
	}
	return rc;
}

/*
 * The inline handler (fabric thread, rpc.h): a START, which only takes a
 * place among the incoming partitions, is answered here, saving the
 * receiver's hop to a worker and back once per partition; every other
 * kind, a START while m->lock is busy, and a START refused as stale or
 * unexpected (counted and logged by the worker's handler) go to a worker.
 */
static int
migrate_try(void *arg, uint64_t from, const uint8_t *req, size_t len, struct rpc_reply *reply)
{
	struct txn_migrate *m = arg;
	struct migrate_msg msg;
	int nsi, rc = RPC_DEFER;

	(void)reply;
	if (len < 2 || req[1] != MIGRATE_MSG_START || migrate_msg_decode(req, len, &msg) != 0 ||
	    msg.kind != MIGRATE_MSG_START)
		return RPC_DEFER;
	if (pthread_mutex_trylock(&m->lock) != 0)
		return RPC_DEFER;
	nsi = m->node != NULL ? ns_index(m, msg.ns) : -1;
	if (nsi >= 0) {
		rc = start_locked(m, from, &msg, nsi);
		if (rc == -ESTALE || rc == -EPROTO)
			rc = RPC_DEFER;
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

/* ---- the instance --------------------------------------------------------------- */

int
txn_migrate_create(struct rpc *rpc, uint64_t self, const struct recfs_config *cfg, struct txn_migrate **out)
{
	struct txn_migrate *m = calloc(1, sizeof(*m));
	int rc;

	*out = NULL;
	if (m == NULL)
		return -ENOMEM;
	m->order = malloc(sizeof(*m->order));
	if (m->order == NULL) {
		free(m);
		return -ENOMEM;
	}
	m->rpc = rpc;
	m->self = self;
	m->cfg = cfg;
	pthread_mutex_init(&m->lock, NULL);
	mono_cond_init(&m->ctl_cv);
	mono_cond_init(&m->job_cv);
	mono_cond_init(&m->got_cv);
	pthread_cond_init(&m->persist_wake, NULL);
	pthread_rwlock_init(&m->drop_lock, NULL);
	/* control (exchange, hand-over) at once; PARTS, the records, as bulk
	 * work apart from the clients' requests (rpc.h) */
	rc = rpc_handler_set(rpc, RPC_OP_MIGRATE, 0, migrate_handler, m);
	if (rc == 0)
		rc = rpc_handler_set(rpc, RPC_OP_MIGRATE_DATA, RPC_HANDLER_BULK, migrate_handler, m);
	if (rc == 0)
		rc = rpc_handler_inline_set(rpc, RPC_OP_MIGRATE, migrate_try);
	if (rc != 0) {
		txn_migrate_destroy(m);
		return rc;
	}
	*out = m;
	return 0;
}

/* What this node holds at attach: every partition with an index entry
 * gets a subset version (a copy from before the start is never trusted as
 * complete). */
static int
first_collect(void *arg, const struct index_entry *e)
{
	if (e->set_marker)   /* on every node (drop_collect) */
		return 0;
	*(bool *)arg = true;
	return 1;
}

/* Forget the plan and the namespaces (another node, or destroy).  Lock held,
 * threads stopped. */
static void
reset_state(struct txn_migrate *m)
{
	if (m->mns == NULL)
		return;
	abort_all(m);
	for (unsigned j = 0; j < m->n_ns; j++) {
		atomic_store_relaxed(&m->mns[j].ns->migrations_pending, 0);
		atomic_store_relaxed(&txn_namespace_of(m->mns[j].ns)->dup_partitions, 0);
		atomic_store_release(&txn_namespace_of(m->mns[j].ns)->migrate, NULL);
		pthread_mutex_destroy(&m->mns[j].store_lock);
		pthread_cond_destroy(&m->mns[j].persist_cv);
	}
	free(m->mns);
	m->mns = NULL;
	free(m->snap);
	m->snap = NULL;
	m->snap_valid = false;
	m->n_ns = 0;
	for (unsigned i = 0; i < PARTITION_NODES_MAX; i++) {
		free(m->got[i].v);
		m->got[i] = (struct mig_got){ 0 };
	}
	m->kept_node = NULL;
}

static void start_threads(struct txn_migrate *m);

static void
stop_threads(struct txn_migrate *m)
{
	if (!m->started)
		return;
	pthread_mutex_lock(&m->lock);
	m->stop = true;
	pthread_cond_broadcast(&m->ctl_cv);
	pthread_cond_broadcast(&m->job_cv);
	pthread_cond_broadcast(&m->got_cv);
	pthread_cond_broadcast(&m->persist_wake);
	pthread_mutex_unlock(&m->lock);
	pthread_join(m->ctl, NULL);
	for (unsigned i = 0; i < MIG_THREADS_MAX; i++)
		pthread_join(m->em[i], NULL);
	/* last: it answers what the handlers filed (its rounds end) */
	pthread_join(m->persister, NULL);
	m->started = false;
}

void
txn_migrate_attach(struct txn_migrate *m, struct node *node)
{
	if (m == NULL)
		return;
	stop_threads(m);
	pthread_mutex_lock(&m->lock);
	if (m->node != NULL) {
		/* Detached: the plan is kept (the node may come back to the same
		 * change); emigrations in flight ended with the threads. */
		for (unsigned j = 0; j < m->n_ns; j++) {
			partition_table_hold(table_of(&m->mns[j]), false);
			if (m->mns[j].tx_remaining + m->mns[j].rx_remaining != 0)
				m->interrupted = true;
		}
		m->node = NULL;
	}
	m->stop = false;
	if (node != NULL && node == m->kept_node && m->mns != NULL) {
		for (unsigned j = 0; j < m->n_ns; j++)
			partition_table_hold(table_of(&m->mns[j]), true);
		m->node = node;
		pthread_mutex_unlock(&m->lock);
		start_threads(m);
		return;
	}
	if (node != NULL)
		reset_state(m);
	pthread_mutex_unlock(&m->lock);
	if (node == NULL)
		return;
	struct mig_ns *mns = calloc(node->n_namespaces ? node->n_namespaces : 1, sizeof(*mns));

	if (mns == NULL) {
		log_error("migrate", "out of memory: no migration");
		return;
	}
	for (unsigned j = 0; j < node->n_namespaces; j++) {
		struct mig_ns *x = &mns[j];
		unsigned loaded = 0, found = 0;

		x->ns = node->namespaces[j];
		pthread_mutex_init(&x->store_lock, NULL);
		pthread_cond_init(&x->persist_cv, NULL);
		if (namespace_pversions_load(x->ns, x->versions) != 0)
			memset(x->versions, 0, sizeof(x->versions));
		for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++) {
			struct index_walk_pos pos = { 0 };
			bool any = false;

			/* What was stored is never trusted as complete (a
			 * restart); records without a version (a store written
			 * alone, before any cluster) are a copy all the same. */
			x->versions[pid] = pversion_isolate(x->versions[pid]);
			loaded += pversion_has_data(x->versions[pid]);
			if (!pversion_has_data(x->versions[pid])) {
				(void)index_partition_walk(x->ns->index, pid, &pos, first_collect, &any, UINT_MAX);
				if (any) {
					x->versions[pid] = pversion_make(0, false, true);
					found++;
				}
			}
			x->wm[pid] = m->self;
		}
		if (loaded + found > 0)
			log_info("migrate", "{%s} %u partitions with a stored version, %u more holding records: "
			    "subsets until the cluster's rebalance", x->ns->name, loaded, found);
		partition_table_hold(txn_namespace_of(x->ns)->partitions, true);
	}
	pthread_mutex_lock(&m->lock);
	m->snap = calloc((size_t)(node->n_namespaces ? node->n_namespaces : 1) * PARTITION_COUNT,
	    sizeof(*m->snap));
	m->snap_valid = false;
	m->mns = mns;
	m->n_ns = node->n_namespaces;
	m->dup_n = 0;
	for (unsigned j = 0; j < m->n_ns; j++)
		atomic_store_release(&txn_namespace_of(mns[j].ns)->migrate, m);
	m->node = node;
	m->kept_node = node;
	m->rebalanced = false;
	m->key = 0;
	m->n = 0;
	pthread_mutex_unlock(&m->lock);
	start_threads(m);
}

static void
start_threads(struct txn_migrate *m)
{
	if (m->started)
		return;
	if (pthread_create(&m->ctl, NULL, control_main, m) != 0) {
		log_error("migrate", "cannot start the migration thread: no migration");
		return;
	}
	for (unsigned i = 0; i < MIG_THREADS_MAX; i++) {
		struct em_arg *a = malloc(sizeof(*a));

		if (a != NULL) {
			a->m = m;
			a->idx = i;
		}
		if (a == NULL || pthread_create(&m->em[i], NULL, emigrate_main, a) != 0) {
			free(a);
			log_error("migrate", "cannot start the emigration threads");
			abort();
		}
	}
	pthread_mutex_lock(&m->lock);
	m->persister_on = true;
	pthread_mutex_unlock(&m->lock);
	if (pthread_create(&m->persister, NULL, persist_main, m) != 0) {
		log_error("migrate", "cannot start the persister thread");
		abort();
	}
	m->started = true;
}

void
txn_migrate_change(struct txn_migrate *m, const uint64_t *succession, unsigned n, uint64_t key)
{
	uint64_t sorted[PARTITION_NODES_MAX];

	if (m == NULL || n > PARTITION_NODES_MAX)
		return;
	memcpy(sorted, succession, n * sizeof(sorted[0]));
	/* descending, as the placement orders them */
	for (unsigned i = 1; i < n; i++)
		for (unsigned k = i; k > 0 && sorted[k] > sorted[k - 1]; k--) {
			uint64_t t = sorted[k];
			sorted[k] = sorted[k - 1];
			sorted[k - 1] = t;
		}
	pthread_mutex_lock(&m->lock);
	if (m->rebalanced && !m->interrupted && key != 0 && key == m->key && n == m->n &&
	    memcmp(m->nodes, sorted, n * sizeof(sorted[0])) == 0) {
		/* attached again to the change already planned */
		m->republish = true;
		pthread_cond_broadcast(&m->ctl_cv);
		pthread_mutex_unlock(&m->lock);
		return;
	}
	m->interrupted = false;
	m->key = key;
	m->n = n;
	memcpy(m->nodes, sorted, n * sizeof(sorted[0]));
	m->rebalanced = false;
	m->change_seq++;
	pthread_cond_broadcast(&m->ctl_cv);
	pthread_cond_broadcast(&m->job_cv);
	pthread_cond_broadcast(&m->got_cv);
	pthread_mutex_unlock(&m->lock);
}

void
txn_migrate_destroy(struct txn_migrate *m)
{
	if (m == NULL)
		return;
	txn_migrate_attach(m, NULL);
	pthread_mutex_lock(&m->lock);
	reset_state(m);
	pthread_mutex_unlock(&m->lock);
	pthread_rwlock_destroy(&m->drop_lock);
	pthread_cond_destroy(&m->ctl_cv);
	pthread_cond_destroy(&m->job_cv);
	pthread_cond_destroy(&m->got_cv);
	pthread_cond_destroy(&m->persist_wake);
	pthread_mutex_destroy(&m->lock);
	free(m->jobs);
	free(m->work);
	free(m->order);
	free(m);
}

unsigned
txn_migrate_dups(struct txn_migrate *m, const struct namespace *ns, uint32_t pid, uint64_t *ids)
{
	unsigned k = 0;

	if (m == NULL || pid >= PARTITION_COUNT)
		return 0;
	pthread_mutex_lock(&m->lock);
	for (unsigned j = 0; j < m->n_ns; j++) {
		const struct mig_ns *x = &m->mns[j];

		if (x->ns != ns || x->dups[pid] == 0)
			continue;
		/* A holder no longer a member is skipped: what it alone holds
		 * is out of reach (AP), as with a split. */
		for (unsigned i = 0; i < m->dup_n; i++) {
			if (!(x->dups[pid] & (1ULL << i)))
				continue;
			for (unsigned c = 0; c < m->n; c++)
				if (m->nodes[c] == m->dup_nodes[i] && m->dup_nodes[i] != m->self) {
					ids[k++] = m->dup_nodes[i];
					break;
				}
		}
	}
	pthread_mutex_unlock(&m->lock);
	return k;
}

void
txn_migrate_values(struct txn_migrate *m, const struct namespace *ns, struct txn_migrate_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (m == NULL)
		return;
	pthread_mutex_lock(&m->lock);
	for (unsigned j = 0; j < m->n_ns; j++) {
		struct mig_ns *x = &m->mns[j];

		out->partitions_remaining += x->tx_remaining + x->rx_remaining + x->handover_left;
		/* A change still in its exchange: its work is not known yet. */
		if (m->key != 0 && !m->rebalanced)
			out->partitions_remaining++;
		if (x->ns != ns)
			continue;
		out->tx_initial = x->tx_initial;
		out->tx_remaining = x->tx_remaining;
		out->tx_active = x->tx_active;
		out->rx_initial = x->rx_initial;
		out->rx_remaining = x->rx_remaining;
		out->rx_active = x->rx_active;
		out->records_transmitted = atomic_load_relaxed(&x->records_tx);
		out->records_received = atomic_load_relaxed(&x->records_rx);
		out->fresh_partitions = x->fresh;
	}
	pthread_mutex_unlock(&m->lock);
}
