/*
 * test_rebalance.c - partition versions and the rebalance of one partition
 * (src/cluster/rebalance.c): a table of situations (a fresh partition, a
 * node added, a node back from a restart, a node removed, a split healed,
 * a restarted whole cluster, a non-replica holding the only copy) with the
 * working master, sources, receivers, copies dropped at once and the
 * versions every node takes; the version encoding and isolation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cluster/rebalance.h"

#define K  0x123456789abcULL     /* the new cluster key */
#define K1 0x0000111122223333ULL /* older ones */
#define K2 0x0000444455556666ULL

#define NUL 0ULL
/* Constant forms of pversion_make (checked against it in test_pversion_encoding). */
#define PV(k, m, s) (((uint64_t)(k) << PVERSION_KEY_SHIFT) | ((m) ? PVERSION_MASTER : 0) | \
	((s) ? PVERSION_SUBSET : 0))
#define FM(k) PV((k), 1, 0)
#define F(k)  PV((k), 0, 0)
#define S(k)  PV((k), 0, 1)

#define B(i) (1ULL << (i))

struct row {
	const char *what;
	unsigned n, rf;
	uint8_t seq[4];
	uint64_t v[4];
	/* expected */
	bool fresh;
	unsigned wm;
	rebalance_nodes sources, receivers, drop_now;
	uint64_t after[4];
};

static const struct row rows[] = {
	{ "fresh partition: replicas take the final version at once",
	  3, 2, { 1, 2 }, { NUL, NUL, NUL },
	  true, 1, 0, 0, 0, { NUL, FM(K), F(K) } },
	{ "replicas in sync: no migration, versions advance",
	  3, 2, { 0, 1 }, { FM(K1), F(K1), NUL },
	  false, 0, 0, 0, 0, { FM(K), F(K), NUL } },
	{ "node added as final master: the old master serves and sends to it, the old prole drops now",
	  4, 2, { 3, 0 }, { FM(K1), F(K1), NUL, NUL },
	  false, 0, B(0), B(3), B(1), { FM(K), NUL, NUL, S(K) } },
	{ "node added as final master: a new prole with the same copy serves, the copies in sync off the replicas drop now",
	  4, 2, { 3, 2 }, { FM(K1), F(K1), F(K1), NUL },
	  false, 2, B(2), B(3), B(0) | B(1), { NUL, NUL, FM(K), S(K) } },
	{ "node added as prole: the master sends to it",
	  4, 2, { 0, 3 }, { FM(K1), F(K1), NUL, NUL },
	  false, 0, B(0), B(3), B(1), { FM(K), NUL, NUL, S(K) } },
	{ "node removed: the prole left serves, the new prole receives",
	  2, 2, { 1, 0 }, { NUL, F(K1) },
	  false, 1, B(1), B(0), 0, { S(K), FM(K) } },
	{ "restarted node (subset) as prole: a duplicate, both directions",
	  3, 2, { 0, 1 }, { FM(K2), S(K1), NUL },
	  false, 0, B(0) | B(1), B(0) | B(1), 0, { FM(K), S(K1), NUL } },
	{ "split healed: two full masters of other keys, all replicas receive",
	  3, 2, { 2, 0 }, { FM(K1), NUL, FM(K2) },
	  false, 2, B(0) | B(2), B(0) | B(2), 0, { S(K1), NUL, FM(K) } },
	{ "whole cluster restarted: subsets of one lineage, no migration",
	  2, 2, { 0, 1 }, { S(K1), S(K1) },
	  false, 0, 0, 0, 0, { FM(K), F(K) } },
	{ "only a non-replica has data: it serves as acting master",
	  3, 2, { 0, 1 }, { NUL, NUL, F(K1) },
	  false, 2, B(2), B(0) | B(1), 0, { S(K), S(K), FM(K) } },
	{ "a full copy beats a subset even later in the sequence",
	  3, 1, { 0 }, { S(K1), NUL, F(K2) },
	  false, 2, B(0) | B(2), B(0), 0, { S(K1), NUL, FM(K) } },
	{ "single node: its subset becomes final",
	  1, 1, { 0 }, { S(K1) },
	  false, 0, 0, 0, 0, { FM(K) } },
};

static void
test_rebalance_table(void **state)
{
	(void)state;
	for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
		const struct row *w = &rows[r];
		struct rebalance_in in = { .cluster_key = K, .n = w->n, .rf = w->rf, .sequence = w->seq,
		    .versions = w->v };
		struct rebalance_out o;

		print_message("row %zu: %s\n", r, w->what);
		assert_int_equal(rebalance_partition(&in, &o), 0);
		assert_int_equal(o.fresh, w->fresh);
		assert_int_equal(o.working_master, w->wm);
		assert_int_equal(o.sources, w->sources);
		assert_int_equal(o.receivers, w->receivers);
		assert_int_equal(o.drop_now, w->drop_now);
		for (unsigned i = 0; i < w->n; i++) {
			char a[32], b[32];

			pversion_format(o.versions[i], a, sizeof(a));
			pversion_format(w->after[i], b, sizeof(b));
			if (o.versions[i] != w->after[i])
				fail_msg("row %zu node %u: version %s, expected %s", r, i, a, b);
		}
		/* Every node computing it finds the same counts both ways. */
		unsigned tx = 0, rx = 0;

		for (unsigned i = 0; i < w->n; i++) {
			tx += rebalance_tx(&o, i);
			rx += rebalance_rx(&o, i);
		}
		assert_int_equal(tx, rx);
	}
}

static void
test_rebalance_counts(void **state)
{
	struct rebalance_in in = { .cluster_key = K, .n = 3, .rf = 2, .sequence = (const uint8_t[]){ 0, 1 },
	    .versions = (const uint64_t[]){ FM(K2), S(K1), NUL } };
	struct rebalance_out o;

	(void)state;
	assert_int_equal(rebalance_partition(&in, &o), 0);
	/* node 0 sends to 1 and receives from 1; node 2 takes no part */
	assert_int_equal(rebalance_tx(&o, 0), 1);
	assert_int_equal(rebalance_rx(&o, 0), 1);
	assert_int_equal(rebalance_tx(&o, 1), 1);
	assert_int_equal(rebalance_rx(&o, 1), 1);
	assert_int_equal(rebalance_tx(&o, 2), 0);
	assert_int_equal(rebalance_rx(&o, 2), 0);
}

static void
test_rebalance_bad_input(void **state)
{
	struct rebalance_out o;
	uint64_t v[2] = { 0, 0 };

	(void)state;
	assert_int_equal(rebalance_partition(&(struct rebalance_in){ .n = 0, .rf = 1,
	    .sequence = (const uint8_t[]){ 0 }, .versions = v }, &o), -EINVAL);
	assert_int_equal(rebalance_partition(&(struct rebalance_in){ .n = 2, .rf = 3,
	    .sequence = (const uint8_t[]){ 0, 1, 0 }, .versions = v }, &o), -EINVAL);
	assert_int_equal(rebalance_partition(&(struct rebalance_in){ .n = 2, .rf = 2,
	    .sequence = (const uint8_t[]){ 0, 0 }, .versions = v }, &o), -EINVAL);
	assert_int_equal(rebalance_partition(&(struct rebalance_in){ .n = 2, .rf = 1,
	    .sequence = (const uint8_t[]){ 5 }, .versions = v }, &o), -EINVAL);
}

static void
test_pversion_encoding(void **state)
{
	char buf[32];

	(void)state;
	assert_int_equal(pversion_make(K, true, false), FM(K));
	assert_int_equal(pversion_make(K1, false, false), F(K1));
	assert_int_equal(pversion_make(K2, false, true), S(K2));
	assert_false(pversion_has_data(0));
	assert_true(pversion_has_data(pversion_make(0, false, false)));   /* key 0 with data */
	assert_true(pversion_full(FM(K)));
	assert_false(pversion_full(S(K)));
	assert_int_equal(pversion_isolate(FM(K)), S(K));
	assert_int_equal(pversion_isolate(NUL), NUL);
	pversion_format(FM(K), buf, sizeof(buf));
	assert_string_equal(buf, "123456789abc.mp");
	pversion_format(S(K1), buf, sizeof(buf));
	assert_string_equal(buf, "111122223333.-s");
	pversion_format(NUL, buf, sizeof(buf));
	assert_string_equal(buf, "null");
	/* only the low 48 bits of the key */
	assert_int_equal(pversion_make(0xffff000000000005ULL, false, false) >> PVERSION_KEY_SHIFT, 5);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rebalance_table),
		cmocka_unit_test(test_rebalance_counts),
		cmocka_unit_test(test_rebalance_bad_input),
		cmocka_unit_test(test_pversion_encoding),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
