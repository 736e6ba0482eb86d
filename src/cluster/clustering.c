/*
 * clustering.c - who is in the cluster: principal, succession list and
 * cluster key, agreed in two phases (cluster.h, docs/cluster.md).
 *
 * Inputs: the heartbeat's view (alive nodes, their adjacency lists and
 * cluster keys), read every heartbeat interval by the clustering thread,
 * and the proposal messages, received on the fabric thread.  Output: the
 * installed state, read by clustering_state_get and pushed to observers.
 *
 * Candidates (the clique rule): this node and every alive node; while two
 * of them do not hear each other both ways, the one with the fewest
 * mutual links to the rest (the lowest id on a tie) is dropped, never this
 * node.  With the same view, every node computes the same set.  The
 * highest candidate is the principal.
 *
 * A muted candidate (it pulses, so it stays a candidate, but answers no
 * proposal) would make every proposal abort.  The principal counts, per
 * node, the proposals in a row it left unanswered; at MUTED_AFTER it is
 * left out of the principal's proposals for MUTED_QUANTA quanta, then
 * proposed again (one more miss leaves it out again, silently).  An answer
 * in time, or the heartbeat declaring it dead (it restarted or paused
 * past the timeout), forgets the count.
 *
 * Locks: c->lock protects the state; it is taken before the heartbeat's
 * and the fabric's locks (heartbeat_cluster_key_set, fabric_send), never
 * after.  c->notify_lock serialises observer calls and is taken before
 * c->lock.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "../base/clock.h"
#include "../base/log.h"
#include "cluster.h"

#define MS 1000000ULL
#define OBSERVERS_MAX 4
#define NOTIFY_QUEUE 16    /* changes waiting for the observers (a change takes a quantum) */
#define MUTED_AFTER 2      /* proposals in a row a member left unanswered: it is left out ... */
#define MUTED_QUANTA 8     /* ... for this many quanta, then proposed again */

/* A node that left proposals of this principal unanswered (docs/cluster.md). */
struct muted {
	uint64_t node_id;
	unsigned misses;      /* proposals in a row without an answer in time */
	uint64_t until_ns;    /* left out of proposals until then (misses >= MUTED_AFTER) */
};

struct clustering {
	struct fabric *fabric;
	struct heartbeat *hb;
	uint64_t node_id;
	uint64_t interval_ns, timeout_ns, quantum_ns;
	struct {
		clustering_observer_fn fn;
		void *arg;
	} observers[OBSERVERS_MAX];
	unsigned n_observers;

	pthread_mutex_t notify_lock;  /* serialises observer calls; before lock */

	pthread_mutex_t lock;         /* everything below */
	pthread_cond_t cond;
	bool stop, started, test_muted;
	uint32_t test_drop_op;        /* clustering_test_drop: ignore the next ... */
	unsigned test_drop_n;         /* ... test_drop_n messages of this op */
	pthread_t thread;
	uint64_t view_hash, view_changed_ns;
	uint64_t shrink_hash, shrink_since_ns; /* the departure-only view and since when */
	uint64_t aborted_ns;          /* the last proposal aborted (a departure waits from there) */
	struct cluster_state st;      /* installed (integrity filled by state_get) */
	struct cluster_state queue[NOTIFY_QUEUE]; /* changes not yet told to the observers */
	unsigned q_head, q_len;
	unsigned last_n;              /* the last cluster installed (an orphan keeps it), 0: none */
	uint64_t last_key;            /* its key */
	uint64_t last_list[CLUSTER_NODES_MAX];
	/* as principal: the proposal in flight */
	bool proposing;
	uint64_t prop_id, prop_key, prop_deadline_ns;
	unsigned prop_n;
	uint64_t prop_list[CLUSTER_NODES_MAX];
	bool prop_accepted[CLUSTER_NODES_MAX];
	/* as principal: the last proposal committed (its list and key are
	 * st's), re-sent to members whose pulses do not show its key */
	uint64_t commit_id, commit_ns, commit_until_ns;
	uint64_t commit_resent;       /* bit i: succession[i] was sent it again (logged once) */
	struct muted muted[CLUSTER_NODES_MAX]; /* alive nodes that missed proposals */
	unsigned n_muted;
	/* as member: the proposal accepted, waiting for its commit */
	bool pending;
	uint64_t pend_id, pend_key, pend_from, pend_deadline_ns;
	unsigned pend_n;
	uint64_t pend_list[CLUSTER_NODES_MAX];
};

/* The heartbeat's view and the candidates computed from it. */
struct view {
	unsigned n_alive;
	struct heartbeat_view_node alive[CLUSTER_NODES_MAX];
	unsigned n_cand;
	uint64_t cand[CLUSTER_NODES_MAX];    /* descending */
	uint64_t hash;                       /* of alive ids, keys, adjacency */
};

static void on_message(void *arg, uint64_t from, const struct fabric_msg *m);
static void *clustering_thread(void *arg);

uint64_t
clustering_quantum_ms(uint32_t interval_ms, uint32_t timeout_count)
{
	return (uint64_t)interval_ms * (timeout_count + 2);
}

static uint64_t
mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t
random_u64(void)
{
	uint64_t v = 0;

	while (v == 0) {
		if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
			v = mix(clock_mono_ns() ^ (uint64_t)clock_epoch_ms());
	}
	return v;
}

static int
desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? 1 : x > y ? -1 : 0;
}

static bool
list_has(const uint64_t *l, unsigned n, uint64_t id)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (l[i] == id)
			return true;
	return false;
}

static const struct heartbeat_view_node *
view_node(const struct view *v, uint64_t id)
{
	unsigned i;

	for (i = 0; i < v->n_alive; i++)
		if (v->alive[i].node_id == id)
			return &v->alive[i];
	return NULL;
}

/* i hears j (index 0 is this node, which hears every alive node). */
static bool
hears(const struct view *v, const uint64_t *ids, unsigned i, unsigned j)
{
	if (i == 0)
		return true;
	return list_has(v->alive[i - 1].adjacent, v->alive[i - 1].n_adjacent, ids[j]);
}

/* Reads the heartbeat's view and computes the candidates (the clique rule). */
static void
view_read(struct clustering *c, struct view *v)
{
	uint64_t ids[CLUSTER_NODES_MAX + 1];
	bool in[CLUSTER_NODES_MAX + 1];
	unsigned i, j, n;

	v->n_alive = heartbeat_view_get(c->hb, v->alive, CLUSTER_NODES_MAX - 1);
	n = v->n_alive + 1;
	ids[0] = c->node_id;
	v->hash = mix(c->node_id);
	for (i = 0; i < v->n_alive; i++) {
		uint64_t h = mix(v->alive[i].node_id) ^ mix(v->alive[i].cluster_key + 1);

		for (j = 0; j < v->alive[i].n_adjacent; j++)
			h += mix(v->alive[i].adjacent[j] ^ 0x5a5a);
		v->hash += mix(h);
		ids[i + 1] = v->alive[i].node_id;
	}
	for (i = 0; i < n; i++)
		in[i] = true;
	for (;;) {
		unsigned worst = 0, worst_links = 0, size = 0;

		for (i = 0; i < n; i++)
			size += in[i];
		for (i = 1; i < n; i++) {
			unsigned links = 0;

			if (!in[i])
				continue;
			for (j = 0; j < n; j++)
				if (j != i && in[j] && hears(v, ids, i, j) && hears(v, ids, j, i))
					links++;
			if (links < size - 1 && (worst == 0 || links < worst_links ||
			    (links == worst_links && ids[i] < ids[worst]))) {
				worst = i;
				worst_links = links;
			}
		}
		if (worst == 0)
			break;
		in[worst] = false;
	}
	v->n_cand = 0;
	for (i = 0; i < n; i++)
		if (in[i])
			v->cand[v->n_cand++] = ids[i];
	qsort(v->cand, v->n_cand, sizeof(v->cand[0]), desc);
}

/* Queues the installed state for the observers (caller holds c->lock). */
static void
enqueue(struct clustering *c)
{
	if (c->n_observers == 0)
		return;
	if (c->q_len == NOTIFY_QUEUE) {
		/* cannot happen at one change per quantum; the latest state wins */
		log_warn("clustering", "observers are %d changes behind; the oldest is dropped", NOTIFY_QUEUE);
		c->q_head = (c->q_head + 1) % NOTIFY_QUEUE;
		c->q_len--;
	}
	c->queue[(c->q_head + c->q_len) % NOTIFY_QUEUE] = c->st;
	c->queue[(c->q_head + c->q_len) % NOTIFY_QUEUE].integrity = c->st.role != CLUSTERING_ORPHAN;
	c->q_len++;
}

/* "0b, 0a" into buf: the ids of a not in b. */
static unsigned
list_minus(const uint64_t *a, unsigned na, const uint64_t *b, unsigned nb, char *buf, size_t cap)
{
	unsigned i, k = 0;
	size_t off = 0;

	buf[0] = '\0';
	for (i = 0; i < na; i++) {
		if (list_has(b, nb, a[i]))
			continue;
		if (off < cap)
			off += (size_t)snprintf(buf + off, cap - off, "%s%016" PRIx64, k ? "," : "", a[i]);
		k++;
	}
	return k;
}

/* Installs a succession and key (caller holds c->lock). */
static void
install(struct clustering *c, const uint64_t *list, unsigned n, uint64_t key)
{
	struct cluster_state *st = &c->st;
	char came[CLUSTER_NODES_MAX * 17 + 1], went[CLUSTER_NODES_MAX * 17 + 1];
	/* compared with the last cluster, not with an orphan's interlude */
	const uint64_t *prev = c->last_n ? c->last_list : &c->node_id;
	unsigned n_came, n_went, prev_n = c->last_n ? c->last_n : 1;

	n_came = list_minus(list, n, prev, prev_n, came, sizeof(came));
	n_went = list_minus(prev, prev_n, list, n, went, sizeof(went));
	if (n_came == 0 && n_went == 0)
		snprintf(st->cause, sizeof(st->cause), n == 1 ? "formed alone" : "new cluster key, same nodes");
	else if (n_came >= 2 && prev_n >= 2 && n_went == 0)
		snprintf(st->cause, sizeof(st->cause), "merged: %u nodes joined", n_came);
	else if (n_came == 1 && n_went == 1)
		snprintf(st->cause, sizeof(st->cause), "node %.16s joined, node %.16s left", came, went);
	else if (n_came && n_went)
		snprintf(st->cause, sizeof(st->cause), "%u nodes joined, %u left", n_came, n_went);
	else if (n_came)
		snprintf(st->cause, sizeof(st->cause), n_came == 1 ? "node %.16s joined" : "%.0s%u nodes joined",
		    came, n_came);
	else
		snprintf(st->cause, sizeof(st->cause), n_went == 1 ? "node %.16s left" : "%.0s%u nodes left",
		    went, n_went);
	memcpy(c->last_list, list, n * sizeof(list[0]));
	c->last_n = n;
	c->last_key = key;
	c->commit_id = 0;   /* on_accept sets it for its own commit */
	memcpy(st->succession, list, n * sizeof(list[0]));
	st->n = n;
	st->cluster_key = key;
	st->principal = list[0];
	st->role = list[0] == c->node_id ? CLUSTERING_PRINCIPAL : CLUSTERING_MEMBER;
	st->change_epoch_ms = clock_epoch_ms();
	st->changes++;
	enqueue(c);
	/* the others' pulses carry the new key only after an interval: the
	 * quiet period starts again before anyone judges keys */
	c->view_changed_ns = clock_mono_ns();
	heartbeat_cluster_key_set(c->hb, key);
	log_info("clustering", "cluster key %016" PRIx64 ", %u nodes, principal %016" PRIx64
	    " (%s): came [%s] went [%s]", key, n, list[0], st->cause, came, went);
}

/* Becomes an orphan (caller holds c->lock). */
static void
orphan(struct clustering *c, const char *why)
{
	struct cluster_state *st = &c->st;
	char went[CLUSTER_NODES_MAX * 17 + 1];

	(void)list_minus(st->succession, st->n, &c->node_id, 1, went, sizeof(went));
	snprintf(st->cause, sizeof(st->cause), "orphaned: %s", why);
	st->n = 1;
	st->succession[0] = c->node_id;
	st->cluster_key = 0;
	st->principal = 0;
	st->role = CLUSTERING_ORPHAN;
	st->change_epoch_ms = clock_epoch_ms();
	st->changes++;
	enqueue(c);
	c->pending = false;
	c->commit_id = 0;
	c->view_changed_ns = clock_mono_ns();
	heartbeat_cluster_key_set(c->hb, 0);
	log_info("clustering", "orphan (%s): came [] went [%s]", why, went);
}

/* Tells the observers every queued change, in order. */
static void
notify(struct clustering *c)
{
	struct cluster_state st;
	unsigned i;

	pthread_mutex_lock(&c->notify_lock);
	for (;;) {
		pthread_mutex_lock(&c->lock);
		if (c->q_len == 0) {
			pthread_mutex_unlock(&c->lock);
			break;
		}
		st = c->queue[c->q_head];
		c->q_head = (c->q_head + 1) % NOTIFY_QUEUE;
		c->q_len--;
		pthread_mutex_unlock(&c->lock);
		for (i = 0; i < c->n_observers; i++)
			c->observers[i].fn(c->observers[i].arg, &st);
	}
	pthread_mutex_unlock(&c->notify_lock);
}

static void
send_op(struct clustering *c, uint64_t to, uint32_t op, uint64_t id, uint64_t key, const uint64_t *list,
    unsigned n)
{
	struct clustering_msg m = { .op = op, .proposal_id = id, .cluster_key = key, .n = n };
	uint8_t buf[CLUSTERING_MSG_MAX];
	struct fabric_msg_writer w;

	if (n > 0)
		memcpy(m.succession, list, n * sizeof(list[0]));
	if (clustering_msg_encode(&m, &w, buf, sizeof(buf)) == 0)
		(void)fabric_send(c->fabric, to, &w); /* lost: a proposal times out, a COMMIT is sent again */
}

int
clustering_create(const struct clustering_config *cfg, struct clustering **out)
{
	struct clustering *c;
	pthread_condattr_t ca;
	int rc;

	if (cfg->fabric == NULL || cfg->heartbeat == NULL || cfg->node_id == 0 || cfg->interval_ms == 0 ||
	    cfg->timeout_count < 2)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->fabric = cfg->fabric;
	c->hb = cfg->heartbeat;
	c->node_id = cfg->node_id;
	c->interval_ns = (uint64_t)cfg->interval_ms * MS;
	c->timeout_ns = c->interval_ns * cfg->timeout_count;
	c->quantum_ns = clustering_quantum_ms(cfg->interval_ms, cfg->timeout_count) * MS;
	c->st.role = CLUSTERING_ORPHAN;
	c->st.n = 1;
	c->st.succession[0] = c->node_id;
	c->st.change_epoch_ms = clock_epoch_ms();
	snprintf(c->st.cause, sizeof(c->st.cause), "started");
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->notify_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &ca);
	pthread_condattr_destroy(&ca);
	rc = fabric_handler_set(cfg->fabric, FABRIC_MSG_CLUSTERING, on_message, c);
	if (rc != 0) {
		clustering_destroy(c);
		return rc;
	}
	*out = c;
	return 0;
}

int
clustering_observer_add(struct clustering *c, clustering_observer_fn fn, void *arg)
{
	if (c->n_observers == OBSERVERS_MAX)
		return -ENOSPC;
	c->observers[c->n_observers].fn = fn;
	c->observers[c->n_observers].arg = arg;
	c->n_observers++;
	return 0;
}

int
clustering_start(struct clustering *c)
{
	int rc;

	c->view_changed_ns = clock_mono_ns();
	rc = pthread_create(&c->thread, NULL, clustering_thread, c);
	if (rc != 0)
		return -rc;
	pthread_setname_np(c->thread, "clustering");
	c->started = true;
	return 0;
}

void
clustering_stop(struct clustering *c)
{
	if (!c->started)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	c->started = false;
	c->stop = false;
}

void
clustering_destroy(struct clustering *c)
{
	if (c == NULL)
		return;
	clustering_stop(c);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->notify_lock);
	free(c);
}

void
clustering_state_get(struct clustering *c, struct cluster_state *st)
{
	struct view *v = malloc(sizeof(*v));
	unsigned i;

	pthread_mutex_lock(&c->lock);
	*st = c->st;
	pthread_mutex_unlock(&c->lock);
	st->integrity = st->role != CLUSTERING_ORPHAN;
	if (v == NULL) {
		st->integrity = false;
		return;
	}
	v->n_alive = heartbeat_view_get(c->hb, v->alive, CLUSTER_NODES_MAX - 1);
	for (i = 0; i < st->n; i++)
		if (st->succession[i] != c->node_id && view_node(v, st->succession[i]) == NULL)
			st->integrity = false;
	free(v);
}

void
clustering_test_mute(struct clustering *c, bool muted)
{
	pthread_mutex_lock(&c->lock);
	c->test_muted = muted;
	pthread_mutex_unlock(&c->lock);
}

void
clustering_test_drop(struct clustering *c, uint32_t op, unsigned count)
{
	pthread_mutex_lock(&c->lock);
	c->test_drop_op = op;
	c->test_drop_n = count;
	pthread_mutex_unlock(&c->lock);
}

/* ---- muted members (c->lock held) ------------------------------------------ */

static struct muted *
muted_find(struct clustering *c, uint64_t id)
{
	unsigned i;

	for (i = 0; i < c->n_muted; i++)
		if (c->muted[i].node_id == id)
			return &c->muted[i];
	return NULL;
}

/* id did not answer the proposal in flight in time; true when it is left
 * out from now on (again). */
static bool
muted_miss(struct clustering *c, uint64_t id, uint64_t now)
{
	struct muted *m = muted_find(c, id);

	if (m == NULL) {
		if (c->n_muted == CLUSTER_NODES_MAX)
			return false; /* cannot happen: entries are alive nodes (muted_prune) */
		m = &c->muted[c->n_muted++];
		*m = (struct muted){ .node_id = id };
	}
	if (++m->misses < MUTED_AFTER)
		return false;
	m->until_ns = now + MUTED_QUANTA * c->quantum_ns;
	if (m->misses == MUTED_AFTER) {
		c->st.nodes_left_out++;
		log_warn("clustering", "node %016" PRIx64 " pulses but answered none of the last %d proposals: "
		    "left out of this node's proposals, proposed again every %llu ms until it answers",
		    id, MUTED_AFTER, (unsigned long long)(MUTED_QUANTA * c->quantum_ns / MS));
	}
	return true;
}

/* id answered the proposal in flight: its misses are forgotten. */
static void
muted_answered(struct clustering *c, uint64_t id)
{
	struct muted *m = muted_find(c, id);

	if (m == NULL)
		return;
	if (m->misses >= MUTED_AFTER)
		log_info("clustering", "node %016" PRIx64 " answers proposals again", id);
	*m = c->muted[--c->n_muted];
}

/* Nodes the heartbeat declared dead are forgotten: they come back as new. */
static void
muted_prune(struct clustering *c, const struct view *v)
{
	unsigned i = 0;

	while (i < c->n_muted) {
		if (view_node(v, c->muted[i].node_id) != NULL) {
			i++;
			continue;
		}
		if (c->muted[i].misses >= MUTED_AFTER)
			log_info("clustering", "node %016" PRIx64 " left out for unanswered proposals is dead; "
			    "proposed again when it is back", c->muted[i].node_id);
		c->muted[i] = c->muted[--c->n_muted];
	}
}

/* The principal's proposal: its candidates (descending) less the nodes
 * left out now; never this node.  The ids left out go to out[]. */
static unsigned
proposal_list(struct clustering *c, const struct view *v, uint64_t now, uint64_t *list, uint64_t *out,
    unsigned *n_out)
{
	unsigned i, n = 0;

	*n_out = 0;
	for (i = 0; i < v->n_cand; i++) {
		struct muted *m = muted_find(c, v->cand[i]);

		if (v->cand[i] != c->node_id && m != NULL && m->misses >= MUTED_AFTER && now < m->until_ns)
			out[(*n_out)++] = v->cand[i];
		else
			list[n++] = v->cand[i];
	}
	return n;
}

/* ---- messages (fabric thread) ------------------------------------------------ */

static void
on_prepare(struct clustering *c, uint64_t from, const struct clustering_msg *m, const struct view *v)
{
	unsigned i;
	bool ok = v->n_cand > 0 && v->cand[0] == from && m->succession[0] == from &&
	    list_has(m->succession, m->n, c->node_id);

	for (i = 0; ok && i < m->n; i++)
		if (m->succession[i] != c->node_id && view_node(v, m->succession[i]) == NULL)
			ok = false;
	if (!ok) {
		log_info("clustering", "proposal %016" PRIx64 " from %016" PRIx64 " rejected: "
		    "it is not the principal this node sees (%016" PRIx64 ") or names nodes it does not hear",
		    m->proposal_id, from, v->n_cand ? v->cand[0] : 0);
		send_op(c, from, CLUSTERING_OP_REJECT, m->proposal_id, 0, NULL, 0);
		return;
	}
	c->pending = true;
	c->pend_id = m->proposal_id;
	c->pend_key = m->cluster_key;
	c->pend_from = from;
	c->pend_n = m->n;
	memcpy(c->pend_list, m->succession, m->n * sizeof(m->succession[0]));
	c->pend_deadline_ns = clock_mono_ns() + 2 * c->quantum_ns;
	send_op(c, from, CLUSTERING_OP_ACCEPT, m->proposal_id, 0, NULL, 0);
}

static void
on_accept(struct clustering *c, uint64_t from, const struct clustering_msg *m)
{
	unsigned i, missing = 0;

	if (!c->proposing || m->proposal_id != c->prop_id)
		return;
	muted_answered(c, from);
	for (i = 0; i < c->prop_n; i++) {
		if (c->prop_list[i] == from)
			c->prop_accepted[i] = true;
		missing += !c->prop_accepted[i];
	}
	if (missing > 0)
		return;
	c->proposing = false;
	install(c, c->prop_list, c->prop_n, c->prop_key);
	for (i = 0; i < c->prop_n; i++)
		if (c->prop_list[i] != c->node_id)
			send_op(c, c->prop_list[i], CLUSTERING_OP_COMMIT, c->prop_id, c->prop_key, NULL, 0);
	/* a member keeps the proposal pending for 2 quanta from its accept:
	 * a COMMIT re-sent later than that would find nothing to install */
	c->commit_id = c->prop_id;
	c->commit_ns = clock_mono_ns();
	c->commit_until_ns = c->commit_ns + 2 * c->quantum_ns;
	c->commit_resent = 0;
}

/*
 * The principal's last commit sent again to every member whose pulse does
 * not show its key an interval after it was sent (lock held): a COMMIT lost
 * on the way (a connection replaced or dropped) would otherwise leave that
 * member outside the cluster that lists it until the next quiet quantum
 * (Aerospike re-sends its learn message until every member shows the new
 * key).  A member installs it only if it still holds that proposal pending;
 * one that already installed it, or accepted a newer one, ignores it.
 */
static void
commit_resend(struct clustering *c, const struct view *v, uint64_t now)
{
	char late[CLUSTER_NODES_MAX * 17 + 1];
	uint64_t first[CLUSTER_NODES_MAX];
	unsigned i, k = 0;

	/* (now was read before the lock: the commit may be later) */
	if (c->commit_id == 0 || c->st.role != CLUSTERING_PRINCIPAL || now >= c->commit_until_ns ||
	    now < c->commit_ns + 2 * c->interval_ns)
		return;
	for (i = 1; i < c->st.n; i++) {
		const struct heartbeat_view_node *e = view_node(v, c->st.succession[i]);

		if (e == NULL || e->cluster_key == c->st.cluster_key)
			continue;
		send_op(c, c->st.succession[i], CLUSTERING_OP_COMMIT, c->commit_id, c->st.cluster_key, NULL, 0);
		if (!(c->commit_resent & (1ULL << i)))
			first[k++] = c->st.succession[i];
		c->commit_resent |= 1ULL << i;
	}
	if (k > 0) {
		(void)list_minus(first, k, NULL, 0, late, sizeof(late));
		log_info("clustering", "proposal %016" PRIx64 " committed, but the pulses of [%s] do not show "
		    "key %016" PRIx64 ": COMMIT sent again", c->commit_id, late, c->st.cluster_key);
	}
}

static void
on_message(void *arg, uint64_t from, const struct fabric_msg *fm)
{
	struct clustering *c = arg;
	struct clustering_msg m;
	struct view *v = NULL;

	if (clustering_msg_decode(fm, &m) != 0) {
		log_warn("clustering", "node %016" PRIx64 " sent a malformed clustering message; ignored", from);
		return;
	}
	pthread_mutex_lock(&c->lock);
	if (c->test_drop_n > 0 && m.op == c->test_drop_op) {
		c->test_drop_n--;
		pthread_mutex_unlock(&c->lock);
		log_info("clustering", "test: message %u of proposal %016" PRIx64 " from %016" PRIx64 " dropped",
		    m.op, m.proposal_id, from);
		return;
	}
	pthread_mutex_unlock(&c->lock);
	if (m.op == CLUSTERING_OP_PREPARE) {
		v = malloc(sizeof(*v));
		if (v == NULL)
			return;
		view_read(c, v);
	}
	pthread_mutex_lock(&c->lock);
	switch (m.op) {
	case CLUSTERING_OP_PREPARE:
		if (!c->test_muted)
			on_prepare(c, from, &m, v);
		break;
	case CLUSTERING_OP_ACCEPT:
		on_accept(c, from, &m);
		break;
	case CLUSTERING_OP_REJECT:
		if (c->proposing && m.proposal_id == c->prop_id) {
			muted_answered(c, from);
			c->proposing = false;
			c->st.proposals_aborted++;
			c->shrink_since_ns = c->aborted_ns = clock_mono_ns(); /* a departure waits again */
			log_info("clustering", "proposal %016" PRIx64 " aborted: node %016" PRIx64 " rejected it",
			    m.proposal_id, from);
		}
		break;
	case CLUSTERING_OP_COMMIT:
		if (c->pending && m.proposal_id == c->pend_id && from == c->pend_from &&
		    m.cluster_key == c->pend_key) {
			c->pending = false;
			install(c, c->pend_list, c->pend_n, c->pend_key);
		}
		break;
	}
	pthread_mutex_unlock(&c->lock);
	free(v);
	notify(c);
}

/* ---- the clustering thread --------------------------------------------------- */

/*
 * A departure only (lock held): the candidates are a strict subset of the
 * last installed cluster, and every other candidate pulses that cluster's
 * key or 0 (it orphaned when the principal left).  Then the quiet period
 * runs from when this set of candidates was first seen, not from the last
 * adjacency or key change (the survivors dropping the dead from their
 * pulses, orphanings, Aerospike's skipped quantum intervals).  Returns a
 * hash of the candidates, 0 when it is not a departure only.
 */
static uint64_t
departure_only(const struct clustering *c, const struct view *v)
{
	uint64_t h = 0x6b1d;
	unsigned i;

	if (c->last_n == 0 || v->n_cand >= c->last_n)
		return 0;
	for (i = 0; i < v->n_cand; i++) {
		const struct heartbeat_view_node *e = view_node(v, v->cand[i]);

		if (!list_has(c->last_list, c->last_n, v->cand[i]))
			return 0;
		if (e != NULL && e->cluster_key != 0 && e->cluster_key != c->last_key)
			return 0;
		h = mix(h ^ v->cand[i]);
	}
	return h | 1;
}

/*
 * When the last of the departed nodes (in the last cluster, not among the
 * candidates) went: its last pulse + the timeout, as the heartbeat judges
 * it, whatever the phase of the clustering thread's ticks; now for a node
 * still alive but left out by the clique rule (a one-way link).  A node
 * that announced its stop went a quantum less one interval before its
 * notice: every node got the notice at once, so the quiet period is one
 * interval (for the others' notices to arrive), not a quantum.
 */
static uint64_t
departure_ns(struct clustering *c, const struct view *v, uint64_t now)
{
	enum { TABLE = 2 * CLUSTER_NODES_MAX };
	struct heartbeat_node_info *t = malloc(TABLE * sizeof(*t));
	uint64_t latest = 0;
	unsigned i, j, n;

	if (t == NULL)
		return now;
	n = heartbeat_nodes_get(c->hb, t, TABLE);
	for (i = 0; i < c->last_n; i++) {
		uint64_t id = c->last_list[i], at = now;

		if (id == c->node_id || list_has(v->cand, v->n_cand, id))
			continue;
		for (j = 0; j < n && j < TABLE; j++) {
			if (t[j].node_id == id && !t[j].alive) {
				uint64_t last = now - (t[j].age_ms * MS < now ? t[j].age_ms * MS : now);

				at = last + c->timeout_ns < now ? last + c->timeout_ns : now;
				if (t[j].announced)
					at = last > c->quantum_ns - c->interval_ns ?
					    last - (c->quantum_ns - c->interval_ns) : 1;
			}
		}
		if (at > latest)
			latest = at;
	}
	free(t);
	return latest ? latest : now;
}

/* Does the installed state differ from what the principal would propose
 * (list: its candidates less the nodes left out)? (lock held) */
static bool
needs_proposal(struct clustering *c, const struct view *v, const uint64_t *list, unsigned n)
{
	unsigned i;

	if (c->st.role != CLUSTERING_PRINCIPAL || c->st.n != n)
		return true;
	for (i = 0; i < n; i++) {
		const struct heartbeat_view_node *e = view_node(v, list[i]);

		if (c->st.succession[i] != list[i])
			return true;
		if (e != NULL && e->cluster_key != c->st.cluster_key)
			return true;  /* a member missed the commit, or moved on */
	}
	return false;
}

static void
tick(struct clustering *c, struct view *v)
{
	uint64_t now, shrink, list[CLUSTER_NODES_MAX], out[CLUSTER_NODES_MAX];
	unsigned i, n, n_out;
	bool quiet;

	view_read(c, v);
	now = clock_mono_ns();
	pthread_mutex_lock(&c->lock);
	if (v->hash != c->view_hash) {
		/* the quiet period runs from the pulse that changed the view,
		 * not from this tick (never before an install or an abort) */
		uint64_t at = heartbeat_view_changed_ns(c->hb);

		c->view_hash = v->hash;
		if (at > now)
			at = now;
		if (at > c->view_changed_ns)
			c->view_changed_ns = at;
	}
	/* now was read before the lock: an install (a COMMIT on the fabric
	 * thread) in between sets view_changed_ns after it, and the
	 * difference would wrap to "quiet" - with v read before the install,
	 * a member then took its principal's pre-install key for "moved to
	 * another cluster key" and went orphan 2 ms after joining (seen under
	 * TSan: test_data_path, a new key formed a quantum later) */
	quiet = now >= c->view_changed_ns && now - c->view_changed_ns >= c->quantum_ns;
	muted_prune(c, v);
	shrink = departure_only(c, v);
	if (shrink != c->shrink_hash) {
		c->shrink_hash = shrink;
		c->shrink_since_ns = shrink ? departure_ns(c, v, now) : now;
		if (c->shrink_since_ns < c->aborted_ns)
			c->shrink_since_ns = c->aborted_ns;
	}
	if (c->pending && now > c->pend_deadline_ns) {
		log_info("clustering", "proposal %016" PRIx64 " from %016" PRIx64 " never committed; dropped",
		    c->pend_id, c->pend_from);
		c->pending = false;
	}
	if (c->proposing && now >= c->prop_deadline_ns) {
		char late[CLUSTER_NODES_MAX * 17 + 1];
		uint64_t missing[CLUSTER_NODES_MAX];
		unsigned k = 0;
		bool left_out = false;

		for (i = 0; i < c->prop_n; i++) {
			if (!c->prop_accepted[i]) {
				missing[k++] = c->prop_list[i];
				left_out |= muted_miss(c, c->prop_list[i], now);
			}
		}
		(void)list_minus(missing, k, NULL, 0, late, sizeof(late));
		log_info("clustering", "proposal %016" PRIx64 " aborted: no answer in %llu ms from [%s]; %s",
		    c->prop_id, (unsigned long long)(c->quantum_ns / MS), late,
		    left_out ? "proposed again without the nodes left out" : "retried after the next quantum");
		c->proposing = false;
		c->st.proposals_aborted++;
		if (!left_out) {
			/* wait a quantum again; after leaving a muted node out,
			 * the view that was quiet is proposed at once without it */
			c->view_changed_ns = now;
			c->shrink_since_ns = c->aborted_ns = now;
			quiet = false;
		}
	}
	/* a member whose principal died, or went on without it, is an orphan */
	if (c->st.role == CLUSTERING_MEMBER) {
		const struct heartbeat_view_node *p = view_node(v, c->st.principal);
		char why[80];

		if (p == NULL) {
			snprintf(why, sizeof(why), "principal %016" PRIx64 " left", c->st.principal);
			orphan(c, why);
		} else if (quiet && p->cluster_key != c->st.cluster_key) {
			snprintf(why, sizeof(why), "principal %016" PRIx64 " moved to another cluster key",
			    c->st.principal);
			orphan(c, why);
		}
	}
	if (shrink != 0 && now - c->shrink_since_ns >= c->quantum_ns && !c->proposing)
		quiet = true;  /* a departure only: a quantum since the set was first seen */
	if (!c->proposing)
		commit_resend(c, v, now);
	n = proposal_list(c, v, now, list, out, &n_out);
	if (v->cand[0] == c->node_id && quiet && !c->proposing && needs_proposal(c, v, list, n)) {
		c->pending = false;
		c->st.proposals++;
		if (n == 1) {
			install(c, list, 1, random_u64());
		} else {
			char left[CLUSTER_NODES_MAX * 17 + 1];

			c->proposing = true;
			c->prop_id = random_u64();
			c->prop_key = random_u64();
			c->prop_n = n;
			memcpy(c->prop_list, list, n * sizeof(list[0]));
			for (i = 0; i < c->prop_n; i++)
				c->prop_accepted[i] = c->prop_list[i] == c->node_id;
			c->prop_deadline_ns = now + c->quantum_ns;
			(void)list_minus(out, n_out, NULL, 0, left, sizeof(left));
			log_info("clustering", "proposing %u nodes, proposal %016" PRIx64 "%s%s%s", c->prop_n,
			    c->prop_id, n_out ? " (left out, answering no proposal: " : "", left, n_out ? ")" : "");
			for (i = 1; i < c->prop_n; i++)
				send_op(c, c->prop_list[i], CLUSTERING_OP_PREPARE, c->prop_id, c->prop_key,
				    c->prop_list, c->prop_n);
		}
	}
	pthread_mutex_unlock(&c->lock);
	notify(c);
}

/*
 * The moment, before the next tick, that needs a tick of its own (lock
 * held): the end of the quiet period or of a departure only's quantum, or
 * the deadline of the proposal in flight; UINT64_MAX when none.
 */
static uint64_t
early_due(const struct clustering *c)
{
	uint64_t due = UINT64_MAX;

	if (c->shrink_hash != 0 && !c->proposing)
		due = c->shrink_since_ns + c->quantum_ns;
	if (c->proposing && c->prop_deadline_ns < due)
		due = c->prop_deadline_ns;
	if (!c->proposing && c->view_changed_ns + c->quantum_ns < due)
		due = c->view_changed_ns + c->quantum_ns;   /* the end of the quiet period */
	return due;
}

static void *
clustering_thread(void *arg)
{
	struct clustering *c = arg;
	struct view *v = malloc(sizeof(*v));
	struct timespec ts;

	if (v == NULL) {
		log_error("clustering", "out of memory: clustering does not run");
		return NULL;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	pthread_mutex_lock(&c->lock);
	while (!c->stop) {
		pthread_mutex_unlock(&c->lock);
		tick(c, v);
		pthread_mutex_lock(&c->lock);
		ts.tv_nsec += (long)(c->interval_ns % 1000000000ULL);
		ts.tv_sec += (time_t)(c->interval_ns / 1000000000ULL) + ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		for (;;) {
			/* one more tick at the end of a quiet period or of a
			 * departure's quantum, or at a proposal's deadline, not up
			 * to an interval later */
			uint64_t next = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
			uint64_t due = early_due(c);
			bool early = due > clock_mono_ns() && due < next;
			struct timespec until = ts;

			if (early) {
				until.tv_sec = (time_t)(due / 1000000000ULL);
				until.tv_nsec = (long)(due % 1000000000ULL);
			}
			while (!c->stop && pthread_cond_timedwait(&c->cond, &c->lock, &until) != ETIMEDOUT)
				;
			if (c->stop || !early)
				break;
			pthread_mutex_unlock(&c->lock);
			tick(c, v);
			pthread_mutex_lock(&c->lock);
		}
	}
	pthread_mutex_unlock(&c->lock);
	free(v);
	return NULL;
}
