/*
 * test_index.c - the partition trees: order, removal, successor queries,
 * balance under many inserts/removes, the memory an entry costs, and
 * record locks (by exact digest).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>

#include "index/index.h"
#include "namespace/namespace.h"

static uint64_t rng_state = 88172645463325252ULL;

static uint64_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* A random digest that falls in partition pid. */
static void
digest_in_partition(struct digest *d, uint32_t pid)
{
	for (int i = 0; i < DIGEST_SIZE; i += 8) {
		uint64_t v = rng();
		memcpy(d->bytes + i, &v, (DIGEST_SIZE - i) < 8 ? (size_t)(DIGEST_SIZE - i) : 8);
	}
	d->bytes[0] = (uint8_t)pid;
	d->bytes[1] = (uint8_t)((d->bytes[1] & 0xF0) | ((pid >> 8) & 0x0F));
}

static int
count_black_height(const struct index_entry *h)
{
	if (h == NULL)
		return 1;
	int l = count_black_height(h->left), r = count_black_height(h->right);
	if (l < 0 || r < 0 || l != r)
		return -1;
	/* LLRB: no right-leaning red links, no two reds in a row. */
	if (h->right != NULL && h->right->red)
		return -1;
	if (h->red && h->left != NULL && h->left->red)
		return -1;
	return l + (h->red ? 0 : 1);
}

static void
test_index_insert_find_remove_keeps_balance(void **state)
{
	struct index *ix;
	enum { N = 5000 };
	static struct index_entry *entries[N];

	assert_int_equal(index_create(&ix), 0);
	struct index_partition *p = &ix->partitions[7];
	for (int i = 0; i < N; i++) {
		struct digest d;
		char key[32];
		int n = snprintf(key, sizeof(key), "key-%d", i);

		digest_in_partition(&d, 7);
		entries[i] = index_entry_alloc(ix, (uint16_t)(i % 3), &d, key, (size_t)n);
		assert_non_null(entries[i]);
		index_insert_locked(p, entries[i]);
	}
	assert_int_equal(p->count, N);
	for (int sp = 0; sp < INDEX_SPRIGS; sp++)
		assert_true(count_black_height(p->sprigs[sp]) > 0);
	for (int i = 0; i < N; i++)
		assert_ptr_equal(index_find_locked(p, entries[i]->set_id, &entries[i]->digest), entries[i]);
	/* Same digest, other set: not found. */
	assert_null(index_find_locked(p, 9, &entries[0]->digest));
	/* Remove every other entry; the rest stay findable and the tree balanced. */
	for (int i = 0; i < N; i += 2) {
		index_remove_locked(p, entries[i]);
		assert_true(count_black_height(p->sprigs[index_sprig_of(&entries[i]->digest)]) > 0);
	}
	for (int i = 0; i < N; i++) {
		struct index_entry *e = index_find_locked(p, entries[i]->set_id, &entries[i]->digest);
		if (i % 2 == 0)
			assert_null(e);
		else
			assert_ptr_equal(e, entries[i]);
	}
	assert_int_equal(p->count, N / 2);
	for (int i = 0; i < N; i += 2)
		index_entry_free(ix, entries[i]);
	index_destroy(ix, NULL, NULL);
}

static void
test_index_next_walks_one_set_in_digest_order(void **state)
{
	struct index *ix;
	enum { N = 600 };
	static struct index_entry *entries[N];

	assert_int_equal(index_create(&ix), 0);
	struct index_partition *p = &ix->partitions[100];
	for (int i = 0; i < N; i++) {
		struct digest d;

		digest_in_partition(&d, 100);
		entries[i] = index_entry_alloc(ix, (uint16_t)(1 + i % 2), &d, "k", 1);
		index_insert_locked(p, entries[i]);
	}
	int seen = 0;
	struct digest last;
	struct index_entry *e = index_next_locked(p, 2, NULL);
	while (e != NULL) {
		assert_int_equal(e->set_id, 2);
		if (seen > 0)
			assert_true(index_key_compare(2, &last, 2, &e->digest) < 0);
		last = e->digest;
		seen++;
		e = index_next_locked(p, 2, &e->digest);
	}
	assert_int_equal(seen, N / 2);
	/* Removing the entry a cursor stands on does not lose the next one. */
	struct index_entry *first = index_next_locked(p, 1, NULL);
	struct index_entry *second = index_next_locked(p, 1, &first->digest);
	struct digest cursor = first->digest;
	index_remove_locked(p, first);
	assert_ptr_equal(index_next_locked(p, 1, &cursor), second);
	index_entry_free(ix, first);
	assert_null(index_next_locked(p, 3, NULL));
	index_destroy(ix, NULL, NULL);
}

static void
test_index_entry_costs_under_100_bytes_plus_key(void **state)
{
	struct index *ix;
	enum { N = 500000 };
	const size_t key_len = 16;

	assert_int_equal(index_create(&ix), 0);
	for (int i = 0; i < N; i++) {
		struct digest d;
		char key[17];

		digest_in_partition(&d, (uint32_t)(rng() % PARTITION_COUNT));
		snprintf(key, sizeof(key), "%016d", i);
		struct index_entry *e = index_entry_alloc(ix, 0, &d, key, key_len);
		assert_non_null(e);
		index_insert_locked(&ix->partitions[digest_partition(&d)], e);
	}
	double per = (double)index_memory_bytes(ix) / N;
	double overhead = per - (double)key_len;
	printf("index: %d entries, %.1f bytes per record (%.1f + %zu-byte key), "
	    "fixed tables (%zu bytes) included\n", N, per, overhead, key_len,
	    sizeof(struct index));
	assert_true(overhead <= 100.0);
	assert_int_equal(index_entry_count(ix), N);
	index_destroy(ix, NULL, NULL);
}

/* The set table: lookups take no lock while another thread adds sets.
 * Every set a reader knows was added is found under its own id, with its
 * own name, and a name not added yet is never found. */
#define SET_TEST_N 3000

static struct set_table *set_tab;
static unsigned set_added;   /* atomic: sets 0..set_added-1 are in */

/* The side table of kept inode numbers and atimes (index_extra.c): values
 * come back by digest through growth and backward-shift deletes, and an
 * inode number kept by one record is "taken" for every other. */
static void
test_index_extra_keeps_values_and_knows_taken_inodes(void **state)
{
	enum { N = 5000 };
	static struct digest d[N];
	struct index *ix;
	uint64_t ino;
	int64_t at;

	assert_int_equal(index_create(&ix), 0);
	assert_false(index_extra_ino_taken(ix, 12345, &d[0]));
	for (int i = 0; i < N; i++) {
		digest_in_partition(&d[i], (uint32_t)i % PARTITION_COUNT);
		/* Even ones keep an inode number, every third an atime. */
		assert_int_equal(index_extra_put(ix, &d[i], i % 2 == 0 ? 1000 + (uint64_t)i : 0,
		    i % 3 == 0 ? 7 + i : 0), 0);
	}
	for (int i = 0; i < N; i += 4)
		index_extra_remove(ix, &d[i]);
	for (int i = 0; i < N; i++) {
		bool want = i % 4 != 0 && (i % 2 == 0 || i % 3 == 0);

		ino = 0;
		at = 0;
		assert_int_equal(index_extra_get(ix, &d[i], &ino, &at), want);
		if (want) {
			assert_int_equal(ino, i % 2 == 0 ? 1000 + (uint64_t)i : 0);
			assert_int_equal(at, i % 3 == 0 ? 7 + i : 0);
		}
		/* Taken: kept by a record other than the one asking. */
		if (i % 2 == 0) {
			assert_int_equal(index_extra_ino_taken(ix, 1000 + (uint64_t)i, &d[(i + 1) % N]),
			    i % 4 != 0);
			assert_false(index_extra_ino_taken(ix, 1000 + (uint64_t)i, &d[i]));
		}
	}
	/* A number handed to another record (a rename) leaves the old owner. */
	assert_int_equal(index_extra_put(ix, &d[1], 1002, 0), 0);
	index_extra_remove(ix, &d[2]);
	assert_true(index_extra_ino_taken(ix, 1002, &d[2]));
	assert_false(index_extra_ino_taken(ix, 1002, &d[1]));
	/* Both 0: nothing kept. */
	assert_int_equal(index_extra_put(ix, &d[1], 0, 0), 0);
	assert_false(index_extra_get(ix, &d[1], &ino, &at));
	assert_false(index_extra_ino_taken(ix, 1002, &d[2]));
	assert_true(index_extra_ino_alternative(5, 0) != 5 && index_extra_ino_alternative(5, 0) > 1);
	index_destroy(ix, NULL, NULL);
}

static void *
set_reader(void *arg)
{
	unsigned seed = 7u + (unsigned)(uintptr_t)arg, checks = 0;
	char name[32];
	uint16_t id;

	for (unsigned long round = 0; round < 100000000ul; round++) {
		unsigned n = __atomic_load_n(&set_added, __ATOMIC_ACQUIRE);

		if (n > 0) {
			unsigned i = (seed = seed * 1103515245u + 12345u) % n;
			int len = snprintf(name, sizeof(name), "set-%u", i);

			if (set_lookup(set_tab, name, (size_t)len, &id) != 0 || id != i + 1 ||
			    strcmp(set_tab->sets[id].name, name) != 0)
				return (void *)1;
			checks++;
		}
		if (n < SET_TEST_N) {
			int len = snprintf(name, sizeof(name), "set-%u", SET_TEST_N + 5);

			if (set_lookup(set_tab, name, (size_t)len, &id) != -ENOENT)
				return (void *)1;
		}
		if (n == SET_TEST_N && checks > 1000)
			return NULL;
	}
	return (void *)1;   /* the adder never finished */
}

static void
test_set_lookups_run_lock_free_beside_adds(void **state)
{
	pthread_t th[2];
	char name[32];
	uint16_t id;

	(void)state;
	set_tab = calloc(1, sizeof(*set_tab));
	assert_non_null(set_tab);
	set_table_init(set_tab);
	for (uintptr_t i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, set_reader, (void *)i), 0);
	for (unsigned i = 0; i < SET_TEST_N; i++) {
		int len = snprintf(name, sizeof(name), "set-%u", i);

		assert_int_equal(set_lookup_or_add(set_tab, name, (size_t)len, &id), 0);
		assert_int_equal(id, i + 1);
		__atomic_store_n(&set_added, i + 1, __ATOMIC_RELEASE);
	}
	for (int i = 0; i < 2; i++) {
		void *bad = (void *)1;

		assert_int_equal(pthread_join(th[i], &bad), 0);
		assert_null(bad);
	}
	set_table_fini(set_tab);
	free(set_tab);
}

/* ---- the partition walk ---- */

enum { WALK_ORIG = 700, WALK_NEW = 400, WALK_PID = 42 };

struct walk_seen {
	int orig[WALK_ORIG], fresh[WALK_NEW];
	unsigned tombstones, markers, sets_mask;
	bool have_prev;
	uint16_t prev_set;
	struct digest prev;
	int stop_after;          /* > 0: fn answers non-zero at that many visits */
	int visits;
};

static int
walk_note(void *arg, const struct index_entry *e)
{
	struct walk_seen *w = arg;
	char key[16];
	int id;

	memcpy(key, e->key, e->key_len);
	key[e->key_len] = '\0';
	assert_int_equal(sscanf(key + 1, "%d", &id), 1);
	if (key[0] == 'o')
		w->orig[id]++;
	else
		w->fresh[id]++;
	w->tombstones += e->tombstone;
	w->markers += e->set_marker;
	w->sets_mask |= 1u << e->set_id;
	/* Strictly ascending in the partition's order, across calls too. */
	if (w->have_prev)
		assert_true(index_key_compare(w->prev_set, &w->prev, e->set_id, &e->digest) < 0);
	w->have_prev = true;
	w->prev_set = e->set_id;
	w->prev = e->digest;
	w->visits++;
	return w->stop_after > 0 && w->visits == w->stop_after ? 7 : 0;
}

static struct index_entry *
walk_add(struct index *ix, char kind, int id, uint16_t set_id)
{
	struct index_partition *p = &ix->partitions[WALK_PID];
	struct index_entry *e;
	struct digest d;
	char key[16];
	int n = snprintf(key, sizeof(key), "%c%d", kind, id);

	digest_in_partition(&d, WALK_PID);
	e = index_entry_alloc(ix, set_id, &d, key, (size_t)n);
	assert_non_null(e);
	pthread_rwlock_wrlock(&p->lock);
	index_insert_locked(p, e);
	pthread_rwlock_unlock(&p->lock);
	return e;
}

static void
test_index_partition_walk_visits_each_lasting_entry_once(void **state)
{
	static struct index_entry *orig[WALK_ORIG];
	static bool removed[WALK_ORIG];
	static struct walk_seen w;
	struct index_partition *p;
	struct index_walk_pos pos;
	struct index *ix;
	int n, calls = 0, added = 0;

	assert_int_equal(index_create(&ix), 0);
	p = &ix->partitions[WALK_PID];
	memset(&w, 0, sizeof(w));
	memset(removed, 0, sizeof(removed));
	/* Five sets (0 = the null set); every fourth entry a tombstone, the
	 * first of each set its marker. */
	for (int i = 0; i < WALK_ORIG; i++) {
		orig[i] = walk_add(ix, 'o', i, (uint16_t)(i % 5));
		orig[i]->tombstone = i % 4 == 3;
		orig[i]->set_marker = i < 5 && i > 0;
	}
	/* Another partition's entries are never visited. */
	struct digest other;
	digest_in_partition(&other, WALK_PID + 1);
	struct index_entry *stranger = index_entry_alloc(ix, 1, &other, "x0", 2);
	index_insert_locked(&ix->partitions[WALK_PID + 1], stranger);

	memset(&pos, 0, sizeof(pos));
	/* Chunks of 1..7; between chunks delete two old entries and add one
	 * new one (in old and new sets), as a migration sending each chunk
	 * would see. */
	while ((n = index_partition_walk(ix, WALK_PID, &pos, walk_note, &w,
	    (unsigned)(calls % 7 + 1))) > 0) {
		assert_true(n <= calls % 7 + 1);
		calls++;
		for (int k = 0; k < 2; k++) {
			int v = (int)(rng() % WALK_ORIG);

			if (!removed[v]) {
				pthread_rwlock_wrlock(&p->lock);
				index_remove_locked(p, orig[v]);
				pthread_rwlock_unlock(&p->lock);
				index_entry_free(ix, orig[v]);
				removed[v] = true;
			}
		}
		if (added < WALK_NEW) {
			walk_add(ix, 'n', added, (uint16_t)(added % 7));
			added++;
		}
	}
	assert_int_equal(n, 0);
	assert_true(pos.done);
	assert_true(calls > WALK_ORIG / 7);
	int lasting = 0;
	for (int i = 0; i < WALK_ORIG; i++) {
		if (!removed[i]) {
			assert_int_equal(w.orig[i], 1);   /* exactly once */
			lasting++;
		} else {
			assert_true(w.orig[i] <= 1);
		}
	}
	for (int i = 0; i < WALK_NEW; i++)
		assert_true(w.fresh[i] <= 1);
	assert_true(lasting > WALK_ORIG / 3);
	assert_true(w.tombstones > 0);
	assert_true(w.markers > 0);
	assert_int_equal(w.sets_mask & 0x1f, 0x1f);   /* every set, the null set too */
	/* A finished walk stays finished. */
	assert_int_equal(index_partition_walk(ix, WALK_PID, &pos, walk_note, &w, 5), 0);

	/* fn's non-zero answer stops the walk after that entry; the next
	 * call resumes after it. */
	struct index_walk_pos p2;
	memset(&p2, 0, sizeof(p2));
	memset(&w, 0, sizeof(w));
	w.stop_after = 3;
	assert_int_equal(index_partition_walk(ix, WALK_PID, &p2, walk_note, &w, 100), 3);
	w.stop_after = 0;
	int total = 3;
	while ((n = index_partition_walk(ix, WALK_PID, &p2, walk_note, &w, 100)) > 0)
		total += n;
	assert_int_equal(total, (int)p->count);
	index_destroy(ix, NULL, NULL);
}

/* The directory index: entries of "/d<id>/name" keys, by directory, in
 * (partition, digest) order; other keys are not in it; removal leaves it. */
static void
test_index_dir_lists_one_directory_in_cursor_order(void **state)
{
	struct index *ix;
	struct index_entry *e[300];
	struct digest out[400];
	uint64_t a = 0x00000000000000a1ULL, b = 0xfedcba9876543210ULL, id;
	char key[64];
	size_t n;

	(void)state;
	assert_int_equal(index_create(&ix), 0);
	assert_true(index_dir_key_id("/d00000000000000a1/x", 20, &id) && id == a);
	assert_false(index_dir_key_id("/d00000000000000a1/", 19, &id));   /* no name */
	assert_false(index_dir_key_id("/d0000000000000000/x", 20, &id));  /* id 0 */
	assert_false(index_dir_key_id("/k00000000000000a1/x", 20, &id));  /* a chunk */
	assert_false(index_dir_key_id("/d00000000000000A1/x", 20, &id));  /* upper case */
	for (int i = 0; i < 300; i++) {
		struct digest d;
		int len;

		/* 200 entries of a, 50 of b, 50 plain keys; few partitions, so
		 * several entries share one. */
		digest_in_partition(&d, (uint32_t)(rng() % 40));
		if (i < 200)
			len = snprintf(key, sizeof(key), "/d%016llx/n%d", (unsigned long long)a, i);
		else if (i < 250)
			len = snprintf(key, sizeof(key), "/d%016llx/n%d", (unsigned long long)b, i);
		else
			len = snprintf(key, sizeof(key), "plain%d", i);
		e[i] = index_entry_alloc(ix, 1, &d, key, (size_t)len);
		assert_non_null(e[i]);
		index_insert_locked(&ix->partitions[digest_partition(&d)], e[i]);
	}
	assert_int_equal(index_dir_count(ix), 2);
	assert_int_equal(index_dir_entries(ix, a), 200);
	assert_int_equal(index_dir_entries(ix, b), 50);
	n = index_dir_next(ix, a, 0, NULL, NULL, out, 400);
	assert_int_equal(n, 200);
	for (size_t i = 1; i < n; i++) {
		uint32_t p0 = digest_partition(&out[i - 1]), p1 = digest_partition(&out[i]);

		assert_true(p0 < p1 || (p0 == p1 && digest_compare(&out[i - 1], &out[i]) < 0));
	}
	/* Resume after entry 99: the other 100, the same ones. */
	{
		struct digest rest[200];
		size_t m = index_dir_next(ix, a, digest_partition(&out[99]), &out[99], NULL, rest, 200);

		assert_int_equal(m, 100);
		assert_memory_equal(rest, &out[100], 100 * sizeof(*rest));
	}
	/* A mask: only partition 7's. */
	{
		uint8_t mask[PARTITION_COUNT / 8] = { 0 };
		size_t m, want = 0;

		mask[0] = 0x80;
		for (size_t i = 0; i < n; i++)
			want += digest_partition(&out[i]) == 7;
		m = index_dir_next(ix, a, 0, NULL, mask, out, 400);
		assert_int_equal(m, want);
		for (size_t i = 0; i < m; i++)
			assert_int_equal(digest_partition(&out[i]), 7);
	}
	for (int i = 0; i < 300; i++) {
		index_remove_locked(&ix->partitions[digest_partition(&e[i]->digest)], e[i]);
		if (i == 199)
			assert_int_equal(index_dir_entries(ix, a), 0);
		index_entry_free(ix, e[i]);
	}
	assert_int_equal(index_dir_count(ix), 0);
	assert_int_equal(index_dir_next(ix, b, 0, NULL, NULL, out, 400), 0);
	assert_int_equal(index_dir_failures(ix), 0);
	index_destroy(ix, NULL, NULL);
}

struct lock_waiter {
	struct index *ix;
	struct digest d;
	int done;   /* atomic */
};

static void *
lock_waiter(void *arg)
{
	struct lock_waiter *w = arg;

	index_record_lock(w->ix, &w->d);
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	index_record_unlock(w->ix, &w->d);
	return NULL;
}

static void
nap_ms(unsigned ms)
{
	struct timespec ts = { 0, (long)ms * 1000000 };

	nanosleep(&ts, NULL);
}

/* A thread locking `want` is still waiting after 50 ms, and gets it once
 * this thread unlocks `held`. */
static void
waits_until_unlock(struct index *ix, const struct digest *want, const struct digest *held)
{
	struct lock_waiter w = { .ix = ix, .d = *want };
	pthread_t th;

	assert_int_equal(pthread_create(&th, NULL, lock_waiter, &w), 0);
	nap_ms(50);
	assert_int_equal(__atomic_load_n(&w.done, __ATOMIC_ACQUIRE), 0);
	index_record_unlock(ix, held);
	pthread_join(th, NULL);
	assert_int_equal(w.done, 1);
}

/*
 * A record lock locks the exact digest: records whose locks share a stripe
 * are locked at once by different holders (up to the stripe's slots; one
 * more waits for a slot), the same digest waits for its holder, and a
 * trylock fails only on the same digest or a full stripe.
 */
static void
test_record_locks_lock_the_exact_digest(void **state)
{
	struct index *ix;
	struct digest d[INDEX_RECORD_LOCK_SLOTS + 1];

	(void)state;
	assert_int_equal(index_create(&ix), 0);
	for (unsigned i = 0; i <= INDEX_RECORD_LOCK_SLOTS; i++) {
		digest_in_partition(&d[i], 7);
		d[i].bytes[4] = 0x34;    /* the stripe: bytes 4 and 5 */
		d[i].bytes[5] = 0x12;
		d[i].bytes[19] = (uint8_t)i;
		assert_ptr_equal(index_record_lock_of(ix, &d[i]), index_record_lock_of(ix, &d[0]));
	}
	/* this thread holds d[0]: another digest of the stripe is free */
	index_record_lock(ix, &d[0]);
	assert_true(index_record_trylock(ix, &d[1]));
	index_record_unlock(ix, &d[1]);
	/* the same digest is not, and a locker of it waits for the unlock */
	waits_until_unlock(ix, &d[0], &d[0]);
	/* all slots taken: one more digest waits for a slot */
	for (unsigned i = 0; i < INDEX_RECORD_LOCK_SLOTS; i++)
		index_record_lock(ix, &d[i]);
	assert_false(index_record_trylock(ix, &d[INDEX_RECORD_LOCK_SLOTS]));
	waits_until_unlock(ix, &d[INDEX_RECORD_LOCK_SLOTS], &d[2]);
	/* a pair of one digest is locked once */
	index_record_unlock(ix, &d[0]);
	index_record_lock_pair(ix, &d[0], &d[0]);
	index_record_unlock_pair(ix, &d[0], &d[0]);
	for (unsigned i = 0; i < INDEX_RECORD_LOCK_SLOTS; i++)
		if (i != 0 && i != 2)
			index_record_unlock(ix, &d[i]);
	for (unsigned i = 0; i <= INDEX_RECORD_LOCK_SLOTS; i++) {
		assert_true(index_record_trylock(ix, &d[i]));
		index_record_unlock(ix, &d[i]);
	}
	index_destroy(ix, NULL, NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_index_insert_find_remove_keeps_balance),
		cmocka_unit_test(test_index_next_walks_one_set_in_digest_order),
		cmocka_unit_test(test_index_entry_costs_under_100_bytes_plus_key),
		cmocka_unit_test(test_index_extra_keeps_values_and_knows_taken_inodes),
		cmocka_unit_test(test_set_lookups_run_lock_free_beside_adds),
		cmocka_unit_test(test_index_partition_walk_visits_each_lasting_entry_once),
		cmocka_unit_test(test_index_dir_lists_one_directory_in_cursor_order),
		cmocka_unit_test(test_record_locks_lock_the_exact_digest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
