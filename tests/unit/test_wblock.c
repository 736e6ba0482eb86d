/*
 * test_wblock.c - wblock states, live-byte accounting, queues and the
 * defrag reserve.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>

#include "storage/storage.h"
#include "storage/wblock.h"

#define WBS (1u << 20)

static void
test_wblock_alloc_uses_free_queue_before_pristine(void **state)
{
	struct wblock_table t;
	uint32_t a, b, c;

	assert_int_equal(wblock_table_init(&t, 8, 18, WBS, 2, 50), 0);
	assert_int_equal(wblock_free_count_locked(&t), 10);
	assert_int_equal(wblock_alloc_locked(&t, WBLOCK_FOR_WRITE, &a), 0);
	assert_int_equal(a, 8);
	assert_int_equal(wblock_get(&t, a)->state, WBLOCK_RESERVED);
	/* Released with nothing live: straight back to the free queue. */
	wblock_release_locked(&t, a);
	assert_int_equal(wblock_get(&t, a)->state, WBLOCK_FREE);
	assert_int_equal(wblock_alloc_locked(&t, WBLOCK_FOR_WRITE, &b), 0);
	assert_int_equal(b, 8);
	assert_int_equal(wblock_alloc_locked(&t, WBLOCK_FOR_WRITE, &c), 0);
	assert_int_equal(c, 9);
	wblock_table_fini(&t);
}

static void
test_wblock_reserve_is_kept_for_defrag(void **state)
{
	struct wblock_table t;
	uint32_t id;

	assert_int_equal(wblock_table_init(&t, 8, 13, WBS, 2, 50), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(wblock_alloc_locked(&t, WBLOCK_FOR_WRITE, &id), 0);
	/* Two left: both reserved for defrag. */
	assert_int_equal(wblock_alloc_locked(&t, WBLOCK_FOR_WRITE, &id), -ENOSPC);
	assert_int_equal(wblock_alloc_locked(&t, WBLOCK_FOR_DEFRAG, &id), 0);
	assert_int_equal(wblock_alloc_locked(&t, WBLOCK_FOR_DEFRAG, &id), 0);
	assert_int_equal(wblock_alloc_locked(&t, WBLOCK_FOR_DEFRAG, &id), -ENOSPC);
	wblock_table_fini(&t);
}

static void
test_wblock_live_bytes_drive_state_changes(void **state)
{
	struct wblock_table t;
	uint32_t id, got;

	assert_int_equal(wblock_table_init(&t, 8, 18, WBS, 1, 50), 0);
	assert_int_equal(wblock_alloc_locked(&t, WBLOCK_FOR_WRITE, &id), 0);
	wblock_add_locked(&t, id, 600 * 1024);
	wblock_add_locked(&t, id, 300 * 1024);
	assert_int_equal(sharded_sum(&t.used), 900 * 1024);
	wblock_release_locked(&t, id);
	assert_int_equal(wblock_get(&t, id)->state, WBLOCK_USED);
	/* 900K -> 800K: still above the lwm (the lock-free path). */
	assert_false(wblock_free_bytes(&t, id, 100 * 1024));
	assert_int_equal(wblock_get(&t, id)->state, WBLOCK_USED);
	assert_int_equal(wblock_inuse(wblock_get(&t, id)), 800 * 1024);
	assert_int_equal(sharded_sum(&t.used), 800 * 1024);
	/* 800K -> 300K live: below the 512K lwm, queued for defrag. */
	wblock_free_bytes(&t, id, 500 * 1024);
	assert_int_equal(wblock_get(&t, id)->state, WBLOCK_DEFRAG);
	assert_int_equal(t.defrag_count, 1);
	assert_int_equal(t.defrag_reads, 1);
	/* queue-min: nothing popped while the queue is not longer than it. */
	assert_int_equal(wblock_defrag_pop_locked(&t, 1, true, &got), -EAGAIN);
	assert_int_equal(wblock_defrag_pop_locked(&t, 0, true, &got), 0);
	assert_int_equal(got, id);
	/* Defrag done but a record is still live (not movable): EMPTYING until freed. */
	assert_int_equal(t.defrag_active, 1);
	wblock_defrag_done_locked(&t, id);
	assert_int_equal(wblock_get(&t, id)->state, WBLOCK_EMPTYING);
	assert_int_equal(t.defrag_active, 0);
	wblock_free_bytes(&t, id, 300 * 1024);
	assert_int_equal(wblock_get(&t, id)->state, WBLOCK_FREE);
	assert_int_equal(sharded_sum(&t.used), 0);
	wblock_table_fini(&t);
}

static void
test_wblock_defrag_frees_only_after_destinations_durable(void **state)
{
	struct wblock_table t;
	uint32_t id, got;

	assert_int_equal(wblock_table_init(&t, 8, 18, WBS, 1, 50), 0);
	assert_int_equal(wblock_alloc_locked(&t, WBLOCK_FOR_WRITE, &id), 0);
	wblock_add_locked(&t, id, 100);
	wblock_release_locked(&t, id);
	assert_int_equal(wblock_get(&t, id)->state, WBLOCK_DEFRAG);
	struct storage_stats ss = { .avail_pct = 100 };
	wblock_stats_add_locked(&t, &ss);
	/* Queued: it gives back all but its 100 live bytes. */
	assert_int_equal(ss.pending_free_bytes, WBS - 100);
	assert_int_equal(wblock_defrag_pop_locked(&t, 0, true, &got), 0);
	/* Its record moved into a buffer that is not on the device yet. */
	wblock_get(&t, id)->n_vac_dests = 1;
	wblock_free_bytes(&t, id, 100);
	wblock_defrag_done_locked(&t, id);
	assert_int_equal(wblock_get(&t, id)->state, WBLOCK_DEFRAG);
	/* Not free yet, but on its way back: stop-writes counts it as
	 * available (nsup), the free count does not. */
	assert_int_equal(t.defrag_active, 1);
	ss = (struct storage_stats){ .avail_pct = 100 };
	wblock_stats_add_locked(&t, &ss);
	assert_int_equal(ss.pending_free_bytes, WBS);
	assert_int_equal(ss.free_wblocks, 9);
	wblock_vacated_release_locked(&t, id);
	assert_int_equal(wblock_get(&t, id)->state, WBLOCK_FREE);
	assert_int_equal(t.defrag_active, 0);
	ss = (struct storage_stats){ .avail_pct = 100 };
	wblock_stats_add_locked(&t, &ss);
	assert_int_equal(ss.pending_free_bytes, 0);
	assert_int_equal(ss.free_wblocks, 10);
	wblock_table_fini(&t);
}

/* A wblock written with bytes live (below the lwm), queued and taken by
 * defrag; returns its id. */
static uint32_t
taken_for_defrag(struct wblock_table *t, uint32_t bytes)
{
	uint32_t id, got;

	assert_int_equal(wblock_alloc_locked(t, WBLOCK_FOR_WRITE, &id), 0);
	wblock_add_locked(t, id, bytes);
	wblock_release_locked(t, id);
	assert_int_equal(wblock_defrag_pop_locked(t, 0, true, &got), 0);
	assert_int_equal(got, id);
	return id;
}

/* Defrag ran out of room part-way through a wblock: it goes back on the
 * queue, and is freed only once every record is out and the copies it
 * did make are durable. */
static void
test_wblock_defrag_retry_requeues_and_keeps_destinations_hold(void **state)
{
	struct wblock_table t;
	uint32_t id, got;

	assert_int_equal(wblock_table_init(&t, 8, 18, WBS, 1, 50), 0);
	id = taken_for_defrag(&t, 300);
	assert_int_equal(t.defrag_active, 1);
	/* One record of 100 bytes moved into a buffer not yet durable; no
	 * space for the other two. */
	wblock_get(&t, id)->n_vac_dests = 1;
	wblock_free_bytes(&t, id, 100);
	wblock_defrag_retry_locked(&t, id);
	assert_int_equal(wblock_get(&t, id)->state, WBLOCK_DEFRAG);
	assert_int_equal(t.defrag_count, 1);
	assert_int_equal(t.defrag_active, 0);
	assert_int_equal(wblock_get(&t, id)->defrag_done, 0);
	/* The destination became durable: nothing to free yet, 200 bytes live. */
	wblock_vacated_release_locked(&t, id);
	assert_int_equal(wblock_get(&t, id)->state, WBLOCK_DEFRAG);
	assert_int_equal(t.defrag_count, 1);
	/* The second pass moves the rest and the wblock comes back. */
	assert_int_equal(wblock_defrag_pop_locked(&t, 0, true, &got), 0);
	assert_int_equal(got, id);
	wblock_get(&t, id)->n_vac_dests = 1;
	wblock_free_bytes(&t, id, 200);
	wblock_defrag_done_locked(&t, id);
	assert_int_equal(wblock_get(&t, id)->state, WBLOCK_DEFRAG);
	wblock_vacated_release_locked(&t, id);
	assert_int_equal(wblock_get(&t, id)->state, WBLOCK_FREE);
	assert_int_equal(t.defrag_active, 0);
	assert_int_equal(t.defrag_count, 0);

	/* Requeued with a copy still in flight, then the client overwrites
	 * what it left: off the queue, but not free before that copy is
	 * durable. */
	id = taken_for_defrag(&t, 300);
	wblock_get(&t, id)->n_vac_dests = 1;
	wblock_free_bytes(&t, id, 100);
	wblock_defrag_retry_locked(&t, id);
	wblock_free_bytes(&t, id, 200);
	assert_int_equal(t.defrag_count, 0);
	assert_int_equal(wblock_get(&t, id)->state, WBLOCK_DEFRAG);
	wblock_vacated_release_locked(&t, id);
	assert_int_equal(wblock_get(&t, id)->state, WBLOCK_FREE);

	/* Everything overwritten while defrag held it: retry frees it. */
	id = taken_for_defrag(&t, 300);
	wblock_free_bytes(&t, id, 300);
	wblock_defrag_retry_locked(&t, id);
	assert_int_equal(wblock_get(&t, id)->state, WBLOCK_FREE);
	assert_int_equal(t.defrag_active, 0);
	assert_int_equal(t.defrag_count, 0);
	wblock_table_fini(&t);
}

static void
test_wblock_raising_lwm_sweeps_used_blocks(void **state)
{
	struct wblock_table t;
	uint32_t id;

	assert_int_equal(wblock_table_init(&t, 8, 18, WBS, 1, 50), 0);
	assert_int_equal(wblock_alloc_locked(&t, WBLOCK_FOR_WRITE, &id), 0);
	wblock_add_locked(&t, id, 700 * 1024);
	wblock_release_locked(&t, id);
	assert_int_equal(wblock_get(&t, id)->state, WBLOCK_USED);
	wblock_set_lwm_locked(&t, 80);
	assert_int_equal(wblock_get(&t, id)->state, WBLOCK_DEFRAG);
	assert_int_equal(t.defrag_count, 1);
	wblock_table_fini(&t);
}

/* A wblock that just crossed defrag-lwm-pct is left to empty by itself
 * for WBLOCK_DEFRAG_SETTLE_MS while space is plentiful; it is taken at
 * once when urgent or when space is short. */
static void
test_wblock_defrag_settles_while_space_is_plentiful(void **state)
{
	struct wblock_table t;
	uint32_t id, got, other[8];

	assert_int_equal(wblock_table_init(&t, 8, 48, WBS, 1, 50), 0);  /* 40 wblocks */
	assert_int_equal(wblock_alloc_locked(&t, WBLOCK_FOR_WRITE, &id), 0);
	wblock_add_locked(&t, id, 600 * 1024);
	wblock_release_locked(&t, id);
	/* 600K -> 300K live: queued, and the free_bytes call says so once. */
	assert_true(wblock_free_bytes(&t, id, 300 * 1024));
	assert_false(wblock_free_bytes(&t, id, 1024));
	assert_int_equal(t.defrag_count, 1);
	/* 39 of 40 free: too young to take... */
	assert_int_equal(wblock_defrag_pop_locked(&t, 0, false, &got), -EAGAIN);
	/* ... unless writers are short of space. */
	assert_int_equal(wblock_defrag_pop_locked(&t, 0, true, &got), 0);
	assert_int_equal(got, id);
	wblock_defrag_done_locked(&t, id);
	wblock_free_bytes(&t, id, 299 * 1024);
	assert_int_equal(wblock_get(&t, id)->state, WBLOCK_FREE);

	/* Queued again; then the settling time passes. */
	assert_int_equal(wblock_alloc_locked(&t, WBLOCK_FOR_WRITE, &id), 0);
	wblock_add_locked(&t, id, 600 * 1024);
	wblock_release_locked(&t, id);
	wblock_free_bytes(&t, id, 300 * 1024);
	assert_int_equal(wblock_defrag_pop_locked(&t, 0, false, &got), -EAGAIN);
	wblock_get(&t, id)->queued_ms -= WBLOCK_DEFRAG_SETTLE_MS;
	assert_int_equal(wblock_defrag_pop_locked(&t, 0, false, &got), 0);
	assert_int_equal(got, id);
	wblock_defrag_done_locked(&t, id);
	wblock_free_bytes(&t, id, 300 * 1024);

	/* Space short (free <= reserve + 1/8 of the wblocks): no settling. */
	for (int i = 0; i < 34; i++) {
		uint32_t x;

		assert_int_equal(wblock_alloc_locked(&t, WBLOCK_FOR_WRITE, &x), 0);
		wblock_add_locked(&t, x, WBS);
		wblock_release_locked(&t, x);
		if (i < 8)
			other[i] = x;
	}
	wblock_free_bytes(&t, other[0], WBS - 1024);  /* queued, just now */
	assert_true(wblock_free_count_locked(&t) <= t.reserve + 40 / 8);
	assert_int_equal(wblock_defrag_pop_locked(&t, 0, false, &got), 0);
	assert_int_equal(got, other[0]);
	wblock_table_fini(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wblock_alloc_uses_free_queue_before_pristine),
		cmocka_unit_test(test_wblock_reserve_is_kept_for_defrag),
		cmocka_unit_test(test_wblock_live_bytes_drive_state_changes),
		cmocka_unit_test(test_wblock_defrag_frees_only_after_destinations_durable),
		cmocka_unit_test(test_wblock_defrag_retry_requeues_and_keeps_destinations_hold),
		cmocka_unit_test(test_wblock_raising_lwm_sweeps_used_blocks),
		cmocka_unit_test(test_wblock_defrag_settles_while_space_is_plentiful),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
