/*
 * test_set_merge.c - the merge rule of the cluster's sets (txn.c:
 * txn_set_merge, txn_set_state, txn_set_check; docs/cluster.md "Sets and
 * listings"), table-driven on a memory namespace: a node takes another
 * node's state of a set only when it is newer than its own, so repeats
 * and late copies change nothing; a removal is refused while a live
 * record of the set is here, and remembered even for a set never seen.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "txn/set_msg.h"
#include "txn/txn.h"
#include "txn/txn_i.h"

static struct recfs_config cfg;
static struct node *node;
static struct namespace *ns;

static int
setup(void **state)
{
	struct ns_config *n = &cfg.ns[0];

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.n_namespaces = 1;
	strcpy(n->name, "test");
	strcpy(n->file_bin, "data");
	n->replication_factor = 1;
	n->stop_writes_used_pct = 70;
	n->stop_writes_avail_pct = 5;
	n->storage.type = STORAGE_MEMORY;
	n->storage.data_size = 16u << 20;
	n->storage.write_block_size = 128 * 1024;
	n->storage.defrag_lwm_pct = 50;
	if (node_open(&node, &cfg) != 0)
		return -1;
	ns = node_namespace_find(node, "test", 4);
	return ns == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	node_close(node, true);
	return 0;
}

enum step_kind { MERGE, CHECK_EMPTY, CHECK_NAME, PUT, DEL, PUT_NULL };

struct step {
	enum step_kind kind;
	const char *set;
	bool live;
	uint64_t lut;
	uint32_t mode;
	int want_rc;
	bool want_visible;    /* txn_set_exists afterwards */
	uint32_t want_mode;   /* when visible and non-zero: the set's mode */
};

static struct set_msg_entry
entry(const char *set, bool live, uint64_t lut, uint32_t mode)
{
	struct set_msg_entry e = { 0 };

	e.len = (uint8_t)strlen(set);
	memcpy(e.name, set, e.len);
	e.live = live;
	e.lut_ms = lut;
	e.has_meta = live && mode != 0;
	e.mode = mode;
	e.uid = 7;
	e.gid = 8;
	e.mtime_ns = 123456789;
	return e;
}

static void
test_merge_table(void **state)
{
	static const struct step steps[] = {
		/* a set never seen: created with the sender's metadata */
		{ MERGE, "a", true, 100, 0750, 0, true, 0750 },
		/* the same again, and an older copy: nothing changes */
		{ MERGE, "a", true, 100, 0700, 0, true, 0750 },
		{ MERGE, "a", true, 50, 0700, 0, true, 0750 },
		/* a newer chmod */
		{ MERGE, "a", true, 200, 0711, 0, true, 0711 },
		/* a removal older than the live state: ignored */
		{ MERGE, "a", false, 150, 0, 0, true, 0711 },
		/* a newer removal */
		{ MERGE, "a", false, 300, 0, 0, false, 0 },
		{ MERGE, "a", false, 300, 0, 0, false, 0 },
		/* a live state older than the removal cannot bring it back */
		{ MERGE, "a", true, 250, 0755, 0, false, 0 },
		/* a newer mkdir does */
		{ MERGE, "a", true, 400, 0755, 0, true, 0755 },
		/* a removal while a live record of the set is here: refused */
		{ PUT, "a", false, 0, 0, 0, true, 0 },
		{ CHECK_EMPTY, "a", true, 0, 0, -ENOTEMPTY, true, 0 },
		{ MERGE, "a", false, 500, 0, -ENOTEMPTY, true, 0755 },
		{ DEL, "a", false, 0, 0, 0, true, 0 },
		{ CHECK_EMPTY, "a", true, 0, 0, 0, true, 0 },
		{ MERGE, "a", false, 500, 0, 0, false, 0 },
		/* a removal of a set never seen is remembered */
		{ MERGE, "ghost", false, 100, 0, 0, false, 0 },
		{ MERGE, "ghost", true, 90, 0755, 0, false, 0 },
		{ MERGE, "ghost", true, 110, 0701, 0, true, 0701 },
		/* without metadata: visible, default directory mode */
		{ MERGE, "plain", true, 10, 0, 0, true, 0 },
		/* a null-set record of that name is here: mkdir's check says so */
		{ PUT_NULL, "topname", false, 0, 0, 0, false, 0 },
		{ CHECK_NAME, "topname", true, 0, 0, -EEXIST, false, 0 },
		{ CHECK_NAME, "other", true, 0, 0, 0, false, 0 },
		{ CHECK_EMPTY, "nowhere", true, 0, 0, 0, false, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		const struct step *s = &steps[i];
		struct set_msg_entry e = entry(s->set, s->live, s->lut, s->mode);
		struct txn_key k = { s->set, strlen(s->set), "rec", 3 };
		struct txn_key nk = { NULL, 0, s->set, strlen(s->set) };
		struct txn_write w = { .set_file = true, .file_data = "x", .file_len = 1 };
		struct record_attr a;
		int rc = 0;

		switch (s->kind) {
		case MERGE:
			rc = txn_set_merge(ns, &e);
			break;
		case CHECK_EMPTY:
			rc = txn_set_check(ns, SET_MSG_CHECK_EMPTY, &e);
			break;
		case CHECK_NAME:
			rc = txn_set_check(ns, SET_MSG_CHECK_NAME, &e);
			break;
		case PUT:
			rc = txn_write(ns, &k, &w, NULL);
			break;
		case DEL:
			rc = txn_delete(ns, &k);
			break;
		case PUT_NULL:
			rc = txn_write(ns, &nk, &w, NULL);
			break;
		}
		if (rc != s->want_rc)
			fail_msg("step %zu (%s): rc %d, want %d", i, s->set, rc, s->want_rc);
		if (s->kind == CHECK_NAME || s->kind == PUT_NULL)
			continue;
		if ((txn_set_exists(ns, s->set, strlen(s->set)) == 0) != s->want_visible)
			fail_msg("step %zu (%s): visible %d, want %d", i, s->set, !s->want_visible,
			    s->want_visible);
		if (s->want_visible && s->want_mode != 0) {
			assert_int_equal(txn_set_stat(ns, s->set, strlen(s->set), &a), 0);
			if (a.mode != s->want_mode)
				fail_msg("step %zu (%s): mode %o, want %o", i, s->set, a.mode, s->want_mode);
			assert_int_equal(a.uid, 7);
		}
	}
}

/* What this node sends: a live state with the marker's time and metadata;
 * after rmdir, a removed state newer than it. */
static void
test_state_after_local_changes(void **state)
{
	struct txn_write w = { .set_mode = true, .mode = 0740 };
	struct set_msg_entry live, gone;
	uint16_t id;

	(void)state;
	assert_int_equal(txn_set_create(ns, "loc", 3, &w), 0);
	assert_int_equal(set_lookup(&ns->sets, "loc", 3, &id), 0);
	assert_int_equal(txn_set_state(ns, id, &live), 0);
	assert_true(live.live);
	assert_true(live.has_meta);
	assert_int_equal(live.mode, 0740);
	assert_true(live.lut_ms > 0);
	/* a copy of its own state changes nothing */
	assert_int_equal(txn_set_merge(ns, &live), 0);
	assert_int_equal(txn_set_remove(ns, "loc", 3), 0);
	assert_int_equal(txn_set_state(ns, id, &gone), 0);
	assert_false(gone.live);
	assert_true(gone.lut_ms > live.lut_ms);
	/* the old live state arriving late does not bring it back */
	assert_int_equal(txn_set_merge(ns, &live), 0);
	assert_int_equal(txn_set_exists(ns, "loc", 3), -ENOENT);
	/* a set of records alone (no mkdir) has no state to send */
	{
		struct txn_key k = { "recsonly", 8, "r", 1 };
		struct txn_write rw = { .set_file = true, .file_data = "x", .file_len = 1 };

		assert_int_equal(txn_write(ns, &k, &rw, NULL), 0);
		assert_int_equal(set_lookup(&ns->sets, "recsonly", 8, &id), 0);
		assert_int_equal(txn_set_state(ns, id, &live), -ENOENT);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_merge_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_after_local_changes, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
