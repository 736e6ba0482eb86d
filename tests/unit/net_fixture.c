/*
 * net_fixture.c - shared set-up of the fabric, heartbeat and clustering
 * unit tests (net_fixture.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "net_fixture.h"

const uint8_t net_secret[NET_SECRET_LEN + 1] = "net-fixture-test-secret-012345678";

void
net_test_init(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
}

uint64_t
net_now_ms(void)
{
	return clock_mono_ns() / 1000000;
}

void
net_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

struct fabric_config
net_fabric_config(uint64_t id, uint16_t port)
{
	struct fabric_config fc = {
		.address = "127.0.0.1", .port = port, .node_id = id, .cluster_name = "test",
		.secret = net_secret, .secret_len = NET_SECRET_LEN,
	};

	return fc;
}

void
net_address(const struct fabric *f, char *buf, size_t cap)
{
	snprintf(buf, cap, "127.0.0.1:%u", fabric_port(f));
}

void
net_node_up(struct net_node *n, const struct net_node_config *cfg)
{
	struct fabric_config fc = net_fabric_config(cfg->id, cfg->port);
	struct heartbeat_config hc = {
		.node_id = cfg->id, .interval_ms = cfg->interval_ms, .timeout_count = cfg->timeout_count,
		.on_change = cfg->on_change, .arg = cfg->change_arg,
	};
	struct clustering_config cc = {
		.node_id = cfg->id, .interval_ms = cfg->interval_ms, .timeout_count = cfg->timeout_count,
	};

	memset(n, 0, sizeof(*n));
	n->id = cfg->id;
	assert_int_equal(fabric_create(&fc, &n->f), 0);
	n->port = fabric_port(n->f);
	net_address(n->f, n->address, sizeof(n->address));
	if (cfg->interval_ms > 0) {
		hc.fabric = n->f;
		hc.address = n->address;
		assert_int_equal(heartbeat_create(&hc, &n->hb), 0);
		if (cfg->clustering) {
			cc.fabric = n->f;
			cc.heartbeat = n->hb;
			assert_int_equal(clustering_create(&cc, &n->cl), 0);
			if (cfg->observer != NULL)
				assert_int_equal(clustering_observer_add(n->cl, cfg->observer, cfg->observer_arg), 0);
		}
	}
	assert_int_equal(fabric_start(n->f), 0);
	if (n->hb != NULL)
		assert_int_equal(heartbeat_start(n->hb), 0);
	if (n->cl != NULL)
		assert_int_equal(clustering_start(n->cl), 0);
	n->up = true;
}

void
net_node_down(struct net_node *n)
{
	if (!n->up)
		return;
	if (n->cl != NULL)
		clustering_stop(n->cl);
	if (n->hb != NULL)
		heartbeat_stop(n->hb);
	fabric_destroy(n->f);
	clustering_destroy(n->cl);
	heartbeat_destroy(n->hb);
	n->f = NULL;
	n->hb = NULL;
	n->cl = NULL;
	n->up = false;
}

static void *
stall_watch_main(void *arg)
{
	struct net_stall_watch *w = arg;
	uint64_t last = net_now_ms();

	while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
		uint64_t now;

		net_sleep_ms(5);
		now = net_now_ms();
		if (now - last > __atomic_load_n(&w->max_gap_ms, __ATOMIC_RELAXED))
			__atomic_store_n(&w->max_gap_ms, now - last, __ATOMIC_RELAXED);
		last = now;
	}
	return NULL;
}

void
net_stall_watch_start(struct net_stall_watch *w)
{
	memset(w, 0, sizeof(*w));
	assert_int_equal(pthread_create(&w->thread, NULL, stall_watch_main, w), 0);
}

uint64_t
net_stall_watch_stop(struct net_stall_watch *w)
{
	__atomic_store_n(&w->stop, 1, __ATOMIC_RELAXED);
	pthread_join(w->thread, NULL);
	return __atomic_load_n(&w->max_gap_ms, __ATOMIC_RELAXED);
}
