/*
 * heartbeat.c - the mesh heartbeat over the fabric (cluster.h).
 *
 * Pulses go over the fabric's authenticated connections, so a pulse's
 * sender is known (its node id must equal the connection's); there is no
 * separate heartbeat socket as in Aerospike (docs/cluster.md says why).
 * A pulse carries the sender's adjacency list with fabric addresses, so a
 * node learns and dials nodes it has no seed for; Aerospike asks for the
 * addresses in a separate info request, one round trip more.
 *
 * Liveness is silence-based: a node is dead when no pulse came for
 * interval * timeout_count, whatever its connection does, so a paused
 * process, a cut link and a dead one are treated alike.  The one other
 * way is the node's own word: a clean stop sends a last pulse flagged
 * leaving (heartbeat_leave), and a node that gets it declares the sender
 * departed at once.  Only the sender can say it (the pulse's id must be
 * the connection's authenticated one); its next pulse is an arrival.  The same timeout
 * is the fabric's ack timeout (fabric_ack_timeout_set): a connection whose
 * bytes stay unacknowledged that long is closed and redialed, so pulses
 * are not held in TCP's retransmission back-off after a link heals.
 *
 * The node table keeps dead nodes (for .info/peers) up to 2 x
 * CLUSTER_NODES_MAX entries; when full, the longest-dead entry is reused,
 * and a pulse from one more node while all are alive is ignored.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/clock.h"
#include "../base/log.h"
#include "cluster.h"

#define TABLE_MAX (2 * CLUSTER_NODES_MAX)
#define MS 1000000ULL

struct hb_node {
	uint64_t node_id;
	char address[64];
	bool alive;
	uint64_t cluster_key;
	uint64_t last_ns;          /* monotonic time of its last pulse */
	bool announced;            /* dead by its notice that it stops */
	unsigned n_adjacent;
	uint64_t adjacent[CLUSTER_NODES_MAX]; /* its last adjacency list (ids) */
};

struct heartbeat {
	struct fabric *fabric;
	uint64_t node_id;
	char address[64];
	uint64_t interval_ns, timeout_ns;
	heartbeat_change_fn on_change;
	void *arg;

	pthread_mutex_t lock;      /* protects everything below; a leaf lock */
	pthread_cond_t cond;       /* wakes the thread: to stop, or to pulse now */
	bool stop, started;
	bool pulse_now;            /* a node arrived: pulse at once, not at the next tick */
	uint64_t view_changed_ns;  /* the last arrival, death, key or adjacency change */
	uint64_t cluster_key;
	struct heartbeat_stats stats;   /* counters; the gauges are computed */
	struct hb_node nodes[TABLE_MAX];
	unsigned n_nodes;
	uint64_t blocked[CLUSTER_NODES_MAX]; /* tests: links cut (heartbeat_test_block) */
	unsigned n_blocked;
	pthread_t thread;
};

/* Caller holds hb->lock. */
static bool
is_blocked(const struct heartbeat *hb, uint64_t id)
{
	unsigned i;

	for (i = 0; i < hb->n_blocked; i++)
		if (hb->blocked[i] == id)
			return true;
	return false;
}

static void on_pulse(void *arg, uint64_t from, const struct fabric_msg *m);
static void *heartbeat_thread(void *arg);

int
heartbeat_create(const struct heartbeat_config *cfg, struct heartbeat **out)
{
	struct heartbeat *hb;
	pthread_condattr_t ca;
	int rc;

	if (cfg->fabric == NULL || cfg->node_id == 0 || cfg->address == NULL ||
	    strlen(cfg->address) >= sizeof(hb->address) || cfg->interval_ms == 0 || cfg->timeout_count < 2)
		return -EINVAL;
	hb = calloc(1, sizeof(*hb));
	if (hb == NULL)
		return -ENOMEM;
	hb->fabric = cfg->fabric;
	hb->node_id = cfg->node_id;
	snprintf(hb->address, sizeof(hb->address), "%s", cfg->address);
	hb->interval_ns = (uint64_t)cfg->interval_ms * MS;
	hb->timeout_ns = hb->interval_ns * cfg->timeout_count;
	hb->on_change = cfg->on_change;
	hb->arg = cfg->arg;
	pthread_mutex_init(&hb->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the thread's deadlines */
	pthread_cond_init(&hb->cond, &ca);
	pthread_condattr_destroy(&ca);
	rc = fabric_handler_set(cfg->fabric, FABRIC_MSG_HEARTBEAT, on_pulse, hb);
	/* a connection silent to TCP that long is dropped and redialed, not
	 * left in retransmission back-off (a healed split merges at once) */
	if (rc == 0)
		rc = fabric_ack_timeout_set(cfg->fabric, (uint32_t)(hb->timeout_ns / MS));
	if (rc != 0) {
		heartbeat_destroy(hb);
		return rc;
	}
	*out = hb;
	return 0;
}

int
heartbeat_start(struct heartbeat *hb)
{
	int rc = pthread_create(&hb->thread, NULL, heartbeat_thread, hb);

	if (rc != 0)
		return -rc;
	pthread_setname_np(hb->thread, "heartbeat");
	hb->started = true;
	return 0;
}

void
heartbeat_stop(struct heartbeat *hb)
{
	if (!hb->started)
		return;
	pthread_mutex_lock(&hb->lock);
	hb->stop = true;
	pthread_cond_signal(&hb->cond);
	pthread_mutex_unlock(&hb->lock);
	pthread_join(hb->thread, NULL);
	hb->started = false;
	hb->stop = false;
}

void
heartbeat_destroy(struct heartbeat *hb)
{
	if (hb == NULL)
		return;
	heartbeat_stop(hb);
	pthread_cond_destroy(&hb->cond);
	pthread_mutex_destroy(&hb->lock);
	free(hb);
}

int
heartbeat_seed_add(struct heartbeat *hb, const char *address)
{
	int rc = fabric_peer_add(hb->fabric, address);

	return rc == -EEXIST ? 0 : rc;
}

void
heartbeat_cluster_key_set(struct heartbeat *hb, uint64_t key)
{
	pthread_mutex_lock(&hb->lock);
	hb->cluster_key = key;
	pthread_mutex_unlock(&hb->lock);
}

unsigned
heartbeat_nodes_get(struct heartbeat *hb, struct heartbeat_node_info *out, unsigned max)
{
	uint64_t now = clock_mono_ns();
	unsigned i, n;

	pthread_mutex_lock(&hb->lock);
	n = hb->n_nodes;
	for (i = 0; i < n && i < max; i++) {
		const struct hb_node *e = &hb->nodes[i];

		out[i].node_id = e->node_id;
		snprintf(out[i].address, sizeof(out[i].address), "%s", e->address);
		out[i].alive = e->alive;
		out[i].cluster_key = e->cluster_key;
		out[i].age_ms = (now - e->last_ns) / MS;
		out[i].n_adjacent = e->n_adjacent;
		out[i].announced = !e->alive && e->announced;
	}
	pthread_mutex_unlock(&hb->lock);
	return n;
}

unsigned
heartbeat_view_get(struct heartbeat *hb, struct heartbeat_view_node *out, unsigned max)
{
	unsigned i, n = 0;

	pthread_mutex_lock(&hb->lock);
	for (i = 0; i < hb->n_nodes && n < max; i++) {
		const struct hb_node *e = &hb->nodes[i];

		if (!e->alive)
			continue;
		out[n].node_id = e->node_id;
		out[n].cluster_key = e->cluster_key;
		out[n].n_adjacent = e->n_adjacent;
		memcpy(out[n].adjacent, e->adjacent, e->n_adjacent * sizeof(e->adjacent[0]));
		n++;
	}
	pthread_mutex_unlock(&hb->lock);
	return n;
}

void
heartbeat_test_block(struct heartbeat *hb, uint64_t node_id, bool blocked)
{
	unsigned i;

	pthread_mutex_lock(&hb->lock);
	for (i = 0; i < hb->n_blocked; i++)
		if (hb->blocked[i] == node_id)
			break;
	if (blocked && i == hb->n_blocked && hb->n_blocked < CLUSTER_NODES_MAX)
		hb->blocked[hb->n_blocked++] = node_id;
	else if (!blocked && i < hb->n_blocked)
		hb->blocked[i] = hb->blocked[--hb->n_blocked];
	pthread_mutex_unlock(&hb->lock);
}

uint64_t
heartbeat_view_changed_ns(struct heartbeat *hb)
{
	uint64_t t;

	pthread_mutex_lock(&hb->lock);
	t = hb->view_changed_ns;
	pthread_mutex_unlock(&hb->lock);
	return t;
}

unsigned
heartbeat_alive_count(struct heartbeat *hb)
{
	unsigned i, n = 0;

	pthread_mutex_lock(&hb->lock);
	for (i = 0; i < hb->n_nodes; i++)
		n += hb->nodes[i].alive;
	pthread_mutex_unlock(&hb->lock);
	return n;
}

void
heartbeat_stats_get(struct heartbeat *hb, struct heartbeat_stats *s)
{
	unsigned i;

	pthread_mutex_lock(&hb->lock);
	*s = hb->stats;
	s->nodes_known = hb->n_nodes;
	s->nodes_alive = 0;
	for (i = 0; i < hb->n_nodes; i++)
		s->nodes_alive += hb->nodes[i].alive;
	pthread_mutex_unlock(&hb->lock);
}

/* ---- receiving (fabric thread) -------------------------------------------- */

static struct hb_node *
node_find(struct heartbeat *hb, uint64_t node_id)
{
	unsigned i;

	for (i = 0; i < hb->n_nodes; i++)
		if (hb->nodes[i].node_id == node_id)
			return &hb->nodes[i];
	return NULL;
}

/* A slot for a new node: a free one, else the longest-dead; NULL if all alive. */
static struct hb_node *
node_slot(struct heartbeat *hb)
{
	struct hb_node *oldest = NULL;
	unsigned i, alive = 0;

	for (i = 0; i < hb->n_nodes; i++)
		alive += hb->nodes[i].alive;
	if (alive >= CLUSTER_NODES_MAX - 1)
		return NULL; /* the cluster is full */
	if (hb->n_nodes < TABLE_MAX)
		return &hb->nodes[hb->n_nodes++];
	for (i = 0; i < hb->n_nodes; i++)
		if (!hb->nodes[i].alive && (oldest == NULL || hb->nodes[i].last_ns < oldest->last_ns))
			oldest = &hb->nodes[i];
	return oldest;
}

static void
on_pulse(void *arg, uint64_t from, const struct fabric_msg *m)
{
	struct heartbeat *hb = arg;
	struct heartbeat_pulse pulse;
	struct heartbeat_adjacent dial[CLUSTER_NODES_MAX];
	struct hb_node *e;
	unsigned i, n_dial = 0;
	bool arrived = false, changed;
	uint64_t id;

	if (heartbeat_pulse_decode(m, &pulse) != 0 || pulse.node_id != from) {
		pthread_mutex_lock(&hb->lock);
		hb->stats.pulses_malformed++;
		pthread_mutex_unlock(&hb->lock);
		log_warn("heartbeat", "node %016llx sent a malformed pulse; ignored", (unsigned long long)from);
		return;
	}
	id = pulse.node_id;
	pthread_mutex_lock(&hb->lock);
	if (is_blocked(hb, id)) {
		pthread_mutex_unlock(&hb->lock);
		return;
	}
	e = node_find(hb, id);
	if (pulse.leaving) {
		/* it stops: departed now, as if its silence had lasted the
		 * timeout (a node unknown or dead already: nothing to do) */
		bool departed = e != NULL && e->alive;

		hb->stats.pulses_received++;
		if (departed) {
			e->alive = false;
			e->announced = true;
			e->last_ns = clock_mono_ns();
			hb->stats.departures++;
			hb->stats.departures_announced++;
			hb->view_changed_ns = e->last_ns;
		}
		pthread_mutex_unlock(&hb->lock);
		if (departed) {
			log_info("heartbeat", "node %016llx departed: it is stopping", (unsigned long long)id);
			if (hb->on_change != NULL)
				hb->on_change(hb->arg, id, false);
		}
		return;
	}
	if (e == NULL) {
		e = node_slot(hb);
		if (e == NULL) {
			pthread_mutex_unlock(&hb->lock);
			log_warn("heartbeat", "node %016llx ignored: the cluster has %d nodes already",
			    (unsigned long long)id, CLUSTER_NODES_MAX);
			return;
		}
		memset(e, 0, sizeof(*e));
		e->node_id = id;
	}
	arrived = !e->alive;
	hb->stats.pulses_received++;
	hb->stats.arrivals += arrived;
	e->alive = true;
	e->announced = false;
	e->last_ns = clock_mono_ns();
	snprintf(e->address, sizeof(e->address), "%s", pulse.address);
	changed = arrived || e->cluster_key != pulse.cluster_key || e->n_adjacent != pulse.n_adjacent;
	e->cluster_key = pulse.cluster_key;
	e->n_adjacent = pulse.n_adjacent;
	for (i = 0; i < pulse.n_adjacent; i++) {
		changed |= e->adjacent[i] != pulse.adjacent[i].node_id;
		e->adjacent[i] = pulse.adjacent[i].node_id;
	}
	if (changed)
		hb->view_changed_ns = e->last_ns;
	if (arrived) {
		/* the others learn of it from this node's adjacency list one
		 * pulse sooner, and it learns that this node hears it */
		hb->pulse_now = true;
		pthread_cond_signal(&hb->cond);
	}
	/* nodes it hears that this one does not: dial them */
	for (i = 0; i < pulse.n_adjacent; i++) {
		struct hb_node *k = node_find(hb, pulse.adjacent[i].node_id);

		if (pulse.adjacent[i].node_id != hb->node_id && (k == NULL || !k->alive))
			dial[n_dial++] = pulse.adjacent[i];
	}
	pthread_mutex_unlock(&hb->lock);
	if (arrived) {
		log_info("heartbeat", "node %016llx at %s arrived", (unsigned long long)id, pulse.address);
		if (hb->on_change != NULL)
			hb->on_change(hb->arg, id, true);
	}
	for (i = 0; i < n_dial; i++) {
		int rc = fabric_peer_add(hb->fabric, dial[i].address);

		if (rc == 0)
			log_info("heartbeat", "dialing node %016llx at %s (learnt from %016llx)",
			    (unsigned long long)dial[i].node_id, dial[i].address, (unsigned long long)id);
		else if (rc != -EEXIST)
			log_warn("heartbeat", "node %016llx announced node %016llx at '%s': %s",
			    (unsigned long long)id, (unsigned long long)dial[i].node_id, dial[i].address,
			    strerror(-rc));
	}
}

/* ---- the heartbeat thread ---------------------------------------------------- */

/* Encodes this node's pulse (leaving: its last); 0 or -EMSGSIZE. */
static int
pulse_build(struct heartbeat *hb, struct fabric_msg_writer *w, uint8_t *buf, size_t cap, bool leaving)
{
	struct heartbeat_pulse p = { .node_id = hb->node_id, .leaving = leaving };
	unsigned i;

	snprintf(p.address, sizeof(p.address), "%s", hb->address);
	pthread_mutex_lock(&hb->lock);
	p.cluster_key = hb->cluster_key;
	for (i = 0; i < hb->n_nodes && p.n_adjacent < CLUSTER_NODES_MAX; i++) {
		if (!hb->nodes[i].alive)
			continue;
		p.adjacent[p.n_adjacent].node_id = hb->nodes[i].node_id;
		snprintf(p.adjacent[p.n_adjacent].address, sizeof(p.adjacent[0].address), "%s",
		    hb->nodes[i].address);
		p.n_adjacent++;
	}
	pthread_mutex_unlock(&hb->lock);
	return heartbeat_pulse_encode(&p, w, buf, cap);
}

/* Pulses every connected node (leaving: the last pulse); returns how many
 * were sent. */
static unsigned
pulse_all(struct heartbeat *hb, bool leaving)
{
	struct fabric_peer_info peers[TABLE_MAX];
	uint8_t buf[HEARTBEAT_PULSE_MAX];
	struct fabric_msg_writer w;
	unsigned i, n, n_sent = 0;

	if (pulse_build(hb, &w, buf, sizeof(buf), leaving) == 0) {
		n = fabric_peers_get(hb->fabric, peers, TABLE_MAX);
		for (i = 0; i < n && i < TABLE_MAX; i++) {
			/* a full queue: the peer is slow; its silence will tell */
			bool blocked;

			pthread_mutex_lock(&hb->lock);
			blocked = is_blocked(hb, peers[i].node_id);
			pthread_mutex_unlock(&hb->lock);
			if (peers[i].connected && !blocked &&
			    fabric_send(hb->fabric, peers[i].node_id, &w) == 0)
				n_sent++;
		}
	}
	return n_sent;
}

void
heartbeat_leave(struct heartbeat *hb)
{
	unsigned n_sent;

	if (hb == NULL || hb->started)
		return;     /* a pulse after it would be an arrival again */
	n_sent = pulse_all(hb, true);
	pthread_mutex_lock(&hb->lock);
	hb->stats.pulses_sent += n_sent;
	pthread_mutex_unlock(&hb->lock);
	log_info("heartbeat", "told %u nodes that this node is stopping", n_sent);
}

/* Pulses every connected node; with deaths, also marks the silent ones dead. */
static void
tick(struct heartbeat *hb, bool deaths)
{
	uint64_t dead[TABLE_MAX], now;
	unsigned i, n_dead = 0, n_sent;

	n_sent = pulse_all(hb, false);
	pthread_mutex_lock(&hb->lock);
	/* read under the lock: a pulse taken meanwhile (the fabric thread) is
	 * not later than now - it was, and now - last_ns wrapped: a node that
	 * had just arrived was declared departed at once (ASan, t_cluster_leave) */
	now = clock_mono_ns();
	hb->stats.pulses_sent += n_sent;
	for (i = 0; deaths && i < hb->n_nodes; i++) {
		struct hb_node *e = &hb->nodes[i];

		if (e->alive && now - e->last_ns > hb->timeout_ns) {
			e->alive = false;
			dead[n_dead++] = e->node_id;
		}
	}
	hb->stats.departures += n_dead;
	if (n_dead > 0)
		hb->view_changed_ns = now;
	pthread_mutex_unlock(&hb->lock);
	for (i = 0; i < n_dead; i++) {
		log_info("heartbeat", "node %016llx departed: no pulse for %llu ms",
		    (unsigned long long)dead[i], (unsigned long long)(hb->timeout_ns / MS));
		if (hb->on_change != NULL)
			hb->on_change(hb->arg, dead[i], false);
	}
}

static void *
heartbeat_thread(void *arg)
{
	struct heartbeat *hb = arg;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	pthread_mutex_lock(&hb->lock);
	while (!hb->stop) {
		hb->pulse_now = false;
		pthread_mutex_unlock(&hb->lock);
		tick(hb, true);
		pthread_mutex_lock(&hb->lock);
		/* absolute deadlines: pulses do not drift by the tick's own time */
		ts.tv_nsec += (long)(hb->interval_ns % 1000000000ULL);
		ts.tv_sec += (time_t)(hb->interval_ns / 1000000000ULL) + ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		for (;;) {
			while (!hb->stop && !hb->pulse_now &&
			    pthread_cond_timedwait(&hb->cond, &hb->lock, &ts) != ETIMEDOUT)
				;
			if (hb->stop || !hb->pulse_now)
				break;
			/* an arrival: one pulse now, the schedule unchanged (at
			 * most one per arrival, and arrivals need a death first) */
			hb->pulse_now = false;
			pthread_mutex_unlock(&hb->lock);
			tick(hb, false);
			pthread_mutex_lock(&hb->lock);
		}
	}
	pthread_mutex_unlock(&hb->lock);
	return NULL;
}
