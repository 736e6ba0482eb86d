/*
 * test_heartbeat.c - the mesh heartbeat (src/cluster/heartbeat.c) with three
 * fabric + heartbeat instances in one process on 127.0.0.1: one seed each
 * is enough for every node to learn every other; a node whose pulses stop
 * (its connections stay up) is dead after interval x timeout-count and
 * alive again when they resume; a node that goes away entirely is dead
 * too.  Interval 50 ms, timeout-count 5 (250 ms).  Every wait is bounded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "fabric/fabric.h"
#include "net_fixture.h"

#define INTERVAL_MS 50
#define TIMEOUT_COUNT 5

struct node {
	struct net_node net;       /* fabric and heartbeat */
	pthread_mutex_t lock;
	int arrivals, departures;  /* protected by lock */
};

static void
on_change(void *arg, uint64_t node_id, bool alive)
{
	struct node *n = arg;

	(void)node_id;
	pthread_mutex_lock(&n->lock);
	if (alive)
		n->arrivals++;
	else
		n->departures++;
	pthread_mutex_unlock(&n->lock);
}

static int
departures(struct node *n)
{
	int v;

	pthread_mutex_lock(&n->lock);
	v = n->departures;
	pthread_mutex_unlock(&n->lock);
	return v;
}

static void
node_up_every(struct node *n, uint64_t id, uint32_t interval_ms)
{
	struct net_node_config cfg = {
		.id = id, .interval_ms = interval_ms, .timeout_count = TIMEOUT_COUNT,
		.on_change = on_change, .change_arg = n,
	};

	memset(n, 0, sizeof(*n));
	pthread_mutex_init(&n->lock, NULL);
	net_node_up(&n->net, &cfg);
}

static void
node_up(struct node *n, uint64_t id)
{
	node_up_every(n, id, INTERVAL_MS);
}

static void
node_down(struct node *n)
{
	net_node_down(&n->net);
	pthread_mutex_destroy(&n->lock);
}

/*
 * The adjacency field is the pulse's last: its 4-byte length sits 4 bytes
 * after its header start, i.e. at len - adjacency length - 4.  Rewrites it.
 */
static void
fabric_put32_test(uint8_t *buf, size_t len, uint32_t v)
{
	size_t at = len - (size_t)CLUSTER_NODES_MAX * 72 - 4;

	buf[at] = (uint8_t)(v >> 24);
	buf[at + 1] = (uint8_t)(v >> 16);
	buf[at + 2] = (uint8_t)(v >> 8);
	buf[at + 3] = (uint8_t)v;
}

static bool
sees_alive(struct node *n, uint64_t id)
{
	struct heartbeat_node_info info[8];
	unsigned i, k = heartbeat_nodes_get(n->net.hb, info, 8);

	for (i = 0; i < k && i < 8; i++)
		if (info[i].node_id == id)
			return info[i].alive;
	return false;
}

static void
test_heartbeat_one_seed_each_is_enough_for_a_full_mesh(void **state)
{
	struct node a, b, c;
	struct heartbeat_node_info info[8];
	struct net_stall_watch stall;
	uint64_t gap;
	unsigned i, k;

	(void)state;
	net_stall_watch_start(&stall);
	node_up(&a, 0xa1);
	node_up(&b, 0xb2);
	node_up(&c, 0xc3);
	/* a chain: c knows only b, b knows only a */
	assert_int_equal(heartbeat_seed_add(b.net.hb, a.net.address), 0);
	assert_int_equal(heartbeat_seed_add(c.net.hb, b.net.address), 0);
	heartbeat_cluster_key_set(a.net.hb, 0x1234);
	WAIT_FOR(heartbeat_alive_count(a.net.hb) == 2 && heartbeat_alive_count(b.net.hb) == 2 &&
	    heartbeat_alive_count(c.net.hb) == 2);
	/* c learnt a's address from b's adjacency list and dialed it */
	assert_true(sees_alive(&c, 0xa1) && sees_alive(&a, 0xc3));
	k = heartbeat_nodes_get(c.net.hb, info, 8);
	assert_int_equal(k, 2);
	for (i = 0; i < k; i++) {
		if (info[i].node_id == 0xa1) {
			assert_string_equal(info[i].address, a.net.address);
			assert_true(info[i].cluster_key == 0x1234);
		} else {
			assert_true(info[i].node_id == 0xb2);
			assert_string_equal(info[i].address, b.net.address);
		}
		assert_true(info[i].age_ms < INTERVAL_MS * TIMEOUT_COUNT);
	}
	/* everyone's adjacency lists fill up: the mesh is full */
	WAIT_FOR(heartbeat_nodes_get(a.net.hb, info, 8) == 2 && info[0].n_adjacent == 2 && info[1].n_adjacent == 2);
	/* nobody flapped - unless this process itself stalled for most of a
	 * heartbeat timeout (a busy CI machine), which makes departures right */
	gap = net_stall_watch_stop(&stall);
	if (gap < INTERVAL_MS * (TIMEOUT_COUNT - 1))
		assert_int_equal(departures(&a) + departures(&b) + departures(&c), 0);
	else
		print_message("the process stalled for %llu ms: departures (%d) not checked\n",
		    (unsigned long long)gap, departures(&a) + departures(&b) + departures(&c));
	node_down(&c);
	node_down(&b);
	node_down(&a);
}

static void
test_heartbeat_an_arrival_is_answered_by_a_pulse_at_once(void **state)
{
	struct node a, c;
	struct heartbeat_node_info info[8];
	uint64_t t0, took;

	(void)state;
	/* a pulses every 10 s (its first tick, at its start, finds no peer);
	 * c every interval, seeded with a */
	node_up_every(&a, 0xa1, 10000);
	node_up(&c, 0xc3);
	assert_int_equal(heartbeat_seed_add(c.net.hb, a.net.address), 0);
	WAIT_FOR(sees_alive(&a, 0xc3));
	t0 = net_now_ms();
	/* a answers c's first pulse at once: c hears a, and that a hears it,
	 * without waiting 10 s for a's next tick */
	WAIT_FOR(heartbeat_nodes_get(c.net.hb, info, 8) == 1 && info[0].alive && info[0].n_adjacent == 1);
	took = net_now_ms() - t0;
	print_message("an arrival answered by a pulse after %llu ms (the next tick: 10 s)\n", (unsigned long long)took);
	assert_true(took < 2 * INTERVAL_MS);
	node_down(&c);
	node_down(&a);
}

/* Nodes a1, b2 and c3, b and c seeded with a, until each sees the other two. */
static void
three_up(struct node *a, struct node *b, struct node *c)
{
	node_up(a, 0xa1);
	node_up(b, 0xb2);
	node_up(c, 0xc3);
	assert_int_equal(heartbeat_seed_add(b->net.hb, a->net.address), 0);
	assert_int_equal(heartbeat_seed_add(c->net.hb, a->net.address), 0);
	WAIT_FOR(heartbeat_alive_count(a->net.hb) == 2 && heartbeat_alive_count(b->net.hb) == 2 &&
	    heartbeat_alive_count(c->net.hb) == 2);
}

static void
test_heartbeat_silent_node_is_dead_after_timeout_and_back_when_pulses_resume(void **state)
{
	struct node a, b, c;
	uint64_t t0, took;

	(void)state;
	three_up(&a, &b, &c);

	/* c stops pulsing; its fabric connections stay up (a paused process) */
	heartbeat_stop(c.net.hb);
	t0 = net_now_ms();
	WAIT_FOR(!sees_alive(&a, 0xc3) && !sees_alive(&b, 0xc3));
	took = net_now_ms() - t0;
	print_message("silent node dead after %llu ms (timeout %d ms)\n", (unsigned long long)took,
	    INTERVAL_MS * TIMEOUT_COUNT);
	assert_true(took >= INTERVAL_MS * (TIMEOUT_COUNT - 1));
	assert_true(took < INTERVAL_MS * (TIMEOUT_COUNT + 10));
	assert_int_equal(departures(&a), 1);
	assert_true(sees_alive(&a, 0xb2)); /* the others are untouched */

	/* pulses resume: alive again */
	assert_int_equal(heartbeat_start(c.net.hb), 0);
	WAIT_FOR(sees_alive(&a, 0xc3) && sees_alive(&b, 0xc3));

	/* c goes away entirely */
	node_down(&c);
	WAIT_FOR(!sees_alive(&a, 0xc3) && !sees_alive(&b, 0xc3));
	assert_int_equal(departures(&a), 2);
	assert_int_equal(heartbeat_alive_count(a.net.hb), 1);
	{
		/* the statistics (.info/statistics heartbeat_*) say the same */
		struct heartbeat_stats hs;

		heartbeat_stats_get(a.net.hb, &hs);
		assert_int_equal(hs.departures, 2);
		assert_int_equal(hs.arrivals, 3);   /* b, c, c again */
		assert_int_equal(hs.nodes_known, 2);
		assert_int_equal(hs.nodes_alive, 1);
		assert_true(hs.pulses_sent >= 2 * (TIMEOUT_COUNT - 1));
		assert_true(hs.pulses_received >= hs.pulses_sent / 4);
		assert_int_equal(hs.pulses_malformed, 0);
	}
	node_down(&b);
	node_down(&a);
}

static void
test_heartbeat_a_leaving_node_is_dead_at_once_and_back_as_an_arrival(void **state)
{
	struct node a, b, c;
	struct heartbeat_stats hs;
	uint64_t t0, took;

	(void)state;
	three_up(&a, &b, &c);

	/* c stops cleanly: both others declare it dead well before the timeout */
	heartbeat_leave(c.net.hb);          /* still running: not sent */
	heartbeat_stop(c.net.hb);
	t0 = net_now_ms();
	heartbeat_leave(c.net.hb);
	WAIT_FOR(!sees_alive(&a, 0xc3) && !sees_alive(&b, 0xc3));
	took = net_now_ms() - t0;
	print_message("leaving node dead after %llu ms (timeout %d ms)\n", (unsigned long long)took,
	    INTERVAL_MS * TIMEOUT_COUNT);
	assert_true(took < INTERVAL_MS * (TIMEOUT_COUNT - 1));
	assert_int_equal(departures(&a), 1);
	assert_int_equal(departures(&b), 1);
	assert_true(sees_alive(&a, 0xb2) && sees_alive(&b, 0xa1));
	heartbeat_stats_get(a.net.hb, &hs);
	assert_int_equal(hs.departures, 1);
	assert_int_equal(hs.departures_announced, 1);
	assert_int_equal(hs.pulses_malformed, 0);
	/* a second notice from a node already dead changes nothing */
	heartbeat_leave(c.net.hb);
	usleep(INTERVAL_MS * 1000);
	heartbeat_stats_get(a.net.hb, &hs);
	assert_int_equal(hs.departures_announced, 1);

	/* it pulses again: an ordinary arrival */
	assert_int_equal(heartbeat_start(c.net.hb), 0);
	WAIT_FOR(sees_alive(&a, 0xc3) && sees_alive(&b, 0xc3));
	heartbeat_stats_get(a.net.hb, &hs);
	assert_int_equal(hs.arrivals, 3);   /* b, c, c again */
	node_down(&c);
	node_down(&b);
	node_down(&a);
}

static void
test_heartbeat_pulse_roundtrips_and_bad_pulses_are_refused(void **state)
{
	static uint8_t buf[HEARTBEAT_PULSE_MAX];
	struct heartbeat_pulse p = { .node_id = 7, .cluster_key = 99, .n_adjacent = CLUSTER_NODES_MAX }, q;
	struct fabric_msg_writer w;
	struct fabric_msg m;
	unsigned i;
	size_t len;

	(void)state;
	/* the largest pulse fits HEARTBEAT_PULSE_MAX */
	memset(p.address, '1', 63);
	for (i = 0; i < CLUSTER_NODES_MAX; i++) {
		p.adjacent[i].node_id = 100 + i;
		memset(p.adjacent[i].address, '2', 63);
	}
	assert_int_equal(heartbeat_pulse_encode(&p, &w, buf, sizeof(buf)), 0);
	assert_int_equal(fabric_msg_decode(buf, w.len, &m), 0);
	assert_int_equal(heartbeat_pulse_decode(&m, &q), 0);
	assert_true(q.node_id == 7 && q.cluster_key == 99 && q.n_adjacent == CLUSTER_NODES_MAX);
	assert_true(q.adjacent[63].node_id == 163);
	assert_string_equal(q.adjacent[63].address, p.adjacent[63].address);
	/* an adjacency list cut anywhere inside an entry: refused */
	len = w.len;
	for (i = 1; i < 9 + 63; i++) {
		fabric_put32_test(buf, len, (uint32_t)(CLUSTER_NODES_MAX * 72 - i));
		assert_int_equal(fabric_msg_decode(buf, len - i, &m), 0);
		assert_int_equal(heartbeat_pulse_decode(&m, &q), -EBADMSG);
	}
	/* the leaving flag: absent is 0, 1 round-trips, anything else is refused */
	assert_false(q.leaving);
	p.n_adjacent = 1;
	p.leaving = true;
	assert_int_equal(heartbeat_pulse_encode(&p, &w, buf, sizeof(buf)), 0);
	assert_int_equal(fabric_msg_decode(buf, w.len, &m), 0);
	assert_int_equal(heartbeat_pulse_decode(&m, &q), 0);
	assert_true(q.leaving && q.node_id == 7 && q.n_adjacent == 1);
	p.leaving = false;
	assert_int_equal(heartbeat_pulse_encode(&p, &w, buf, sizeof(buf)), 0);
	fabric_msg_put_u32(&w, HEARTBEAT_FIELD_LEAVING, 2);
	assert_int_equal(fabric_msg_decode(buf, w.len, &m), 0);
	assert_int_equal(heartbeat_pulse_decode(&m, &q), -EBADMSG);
	/* a field missing: refused */
	fabric_msg_writer_init(&w, buf, sizeof(buf), FABRIC_MSG_HEARTBEAT);
	fabric_msg_put_u64(&w, HEARTBEAT_FIELD_NODE_ID, 7);
	assert_int_equal(fabric_msg_decode(buf, w.len, &m), 0);
	assert_int_equal(heartbeat_pulse_decode(&m, &q), -EBADMSG);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_heartbeat_pulse_roundtrips_and_bad_pulses_are_refused),
		cmocka_unit_test(test_heartbeat_one_seed_each_is_enough_for_a_full_mesh),
		cmocka_unit_test(test_heartbeat_an_arrival_is_answered_by_a_pulse_at_once),
		cmocka_unit_test(test_heartbeat_silent_node_is_dead_after_timeout_and_back_when_pulses_resume),
		cmocka_unit_test(test_heartbeat_a_leaving_node_is_dead_at_once_and_back_as_an_arrival),
	};

	net_test_init(argc, argv);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
