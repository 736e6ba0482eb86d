/*
 * net_fixture.h - what the fabric, heartbeat, clustering and rpc unit tests
 * share (tests/unit/net_fixture.c): fabric configs on 127.0.0.1 with one
 * test secret, a node's stack (fabric, heartbeat, clustering) brought up
 * and down in the documented order, a monotonic clock in ms, and bounded
 * waits.  Include after <cmocka.h>.
 */
#ifndef RECFS_TESTS_UNIT_NET_FIXTURE_H
#define RECFS_TESTS_UNIT_NET_FIXTURE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"
#include "fabric/fabric.h"

/* The secret every test node shares (NET_SECRET_LEN bytes). */
extern const uint8_t net_secret[];
#define NET_SECRET_LEN 33

/* For main(): SIGPIPE ignored (a peer may close while we write), and
 * argv[1], if given, runs only the tests whose names match that glob (to
 * run one in a loop). */
void net_test_init(int argc, char **argv);

uint64_t net_now_ms(void);
void net_sleep_ms(unsigned ms);

/*
 * A stall watch: a thread that sleeps 5 ms at a time and keeps the longest
 * gap it saw between two wakes.  A machine busy enough to stall this
 * process (every thread) for a heartbeat timeout makes nodes declare each
 * other dead legitimately: a test that counts departures excuses them
 * only when the watch saw such a stall.
 */
struct net_stall_watch {
	pthread_t thread;
	int stop;            /* atomic */
	uint64_t max_gap_ms; /* atomic */
};
void net_stall_watch_start(struct net_stall_watch *w);
/* Stops the watch; the longest gap seen, in ms. */
uint64_t net_stall_watch_stop(struct net_stall_watch *w);

/*
 * Polls cond every 5 ms until it holds; fails the test after ms.  A test
 * file sets WAIT_MS (default 10 s) and uses WAIT_FOR(cond).
 */
#define NET_WAIT_FOR(cond, ms) do { \
		uint64_t t0_ = net_now_ms(); \
		while (!(cond)) { \
			if (net_now_ms() - t0_ > (ms)) \
				fail_msg("timed out waiting for: %s", #cond); \
			net_sleep_ms(5); \
		} \
	} while (0)
#ifndef WAIT_MS
#define WAIT_MS 10000
#endif
#define WAIT_FOR(cond) NET_WAIT_FOR(cond, WAIT_MS)

/* A fabric config listening on 127.0.0.1:port (0: a free port), cluster
 * "test", net_secret; the caller may change any field after. */
struct fabric_config net_fabric_config(uint64_t id, uint16_t port);
/* "127.0.0.1:port" of a created fabric into buf. */
void net_address(const struct fabric *f, char *buf, size_t cap);

/* One node's stack, as recfsd runs it (without storage). */
struct net_node {
	struct fabric *f;
	struct heartbeat *hb;        /* NULL: fabric only */
	struct clustering *cl;       /* NULL: no clustering */
	uint64_t id;
	uint16_t port;               /* bound */
	char address[32];            /* "127.0.0.1:port" */
	bool up;
};

struct net_node_config {
	uint64_t id;
	uint16_t port;               /* 0: a free one */
	uint32_t interval_ms;        /* heartbeat; 0: no heartbeat (and no clustering) */
	uint32_t timeout_count;
	heartbeat_change_fn on_change; /* may be NULL */
	void *change_arg;
	bool clustering;
	clustering_observer_fn observer; /* with clustering; may be NULL */
	void *observer_arg;
};

/* Creates and starts the stack (every step asserted). */
void net_node_up(struct net_node *n, const struct net_node_config *cfg);
/* Stops and frees it in the order cluster.h gives; nothing if not up. */
void net_node_down(struct net_node *n);

#endif
