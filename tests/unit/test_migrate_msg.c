/*
 * test_migrate_msg.c - the bodies of RPC_OP_MIGRATE (src/txn/migrate_msg.c):
 * each kind round-trips; every truncation of a valid body, a record length
 * past the end, bytes after the last record, an unknown kind or version, a
 * name or partition out of range and a count of 0 are refused with
 * -EBADMSG; encoders refuse what the decoder would.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "txn/migrate_msg.h"

static uint8_t buf[MIGRATE_MSG_EXCHANGE_SIZE(MIGRATE_MSG_NS_MAX)];

/* An INSERT of partition 17 with two records ("abc", "z"). */
static size_t
insert_body(void)
{
	size_t count_off, off;
	int rc = migrate_msg_encode_insert(buf, sizeof(buf), 42, "test", 17, &count_off);

	assert_true(rc > 0);
	off = (size_t)rc;
	rc = migrate_msg_encode_record(buf + off, sizeof(buf) - off, (const uint8_t *)"abc", 3);
	assert_int_equal(rc, 7);
	off += (size_t)rc;
	rc = migrate_msg_encode_record(buf + off, sizeof(buf) - off, (const uint8_t *)"z", 1);
	off += (size_t)rc;
	migrate_msg_insert_count(buf, count_off, 2);
	return off;
}

static void
test_migrate_msg_round_trips(void **state)
{
	struct migrate_msg m;
	uint64_t v[MIGRATE_MSG_PARTITIONS];
	const uint8_t *rec;
	uint32_t rl;
	size_t off = 0, len;
	int rc;

	(void)state;
	for (uint32_t p = 0; p < MIGRATE_MSG_PARTITIONS; p++)
		v[p] = (uint64_t)p * 0x10001;
	rc = migrate_msg_encode_exchange(buf, sizeof(buf), 0xabcdef, "ns1", v);
	assert_int_equal(rc, MIGRATE_MSG_EXCHANGE_SIZE(3));
	assert_int_equal(migrate_msg_decode(buf, (size_t)rc, &m), 0);
	assert_int_equal(m.kind, MIGRATE_MSG_EXCHANGE);
	assert_int_equal(m.cluster_key, 0xabcdef);
	assert_string_equal(m.ns, "ns1");
	for (uint32_t p = 0; p < MIGRATE_MSG_PARTITIONS; p++)
		assert_int_equal(migrate_msg_version(&m, p), v[p]);

	for (uint8_t k = MIGRATE_MSG_START; k <= MIGRATE_MSG_RELEASE; k++) {
		if (k == MIGRATE_MSG_INSERT)
			continue;
		rc = migrate_msg_encode_pid(buf, sizeof(buf), k, 7, "test", 4095);
		assert_true(rc > 0);
		assert_int_equal(migrate_msg_decode(buf, (size_t)rc, &m), 0);
		assert_int_equal(m.kind, k);
		assert_int_equal(m.pid, 4095);
	}

	len = insert_body();
	assert_int_equal(migrate_msg_decode(buf, len, &m), 0);
	assert_int_equal(m.kind, MIGRATE_MSG_INSERT);
	assert_int_equal(m.pid, 17);
	assert_int_equal(m.n, 2);
	assert_int_equal(migrate_msg_record_next(&m, &off, &rec, &rl), 1);
	assert_int_equal(rl, 3);
	assert_memory_equal(rec, "abc", 3);
	assert_int_equal(migrate_msg_record_next(&m, &off, &rec, &rl), 1);
	assert_int_equal(rl, 1);
	assert_int_equal(migrate_msg_record_next(&m, &off, &rec, &rl), 0);
}

static void
test_migrate_msg_refuses_malformed(void **state)
{
	struct migrate_msg m;
	size_t len = insert_body();
	uint8_t *copy = malloc(len + 1);

	(void)state;
	assert_non_null(copy);
	/* every truncation, each in a buffer of exactly its size (ASan) */
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *t = malloc(cut > 0 ? cut : 1);

		memcpy(t, buf, cut);
		assert_int_equal(migrate_msg_decode(t, cut, &m), -EBADMSG);
		free(t);
	}
	/* a byte after the last record */
	memcpy(copy, buf, len);
	copy[len] = 0;
	assert_int_equal(migrate_msg_decode(copy, len + 1, &m), -EBADMSG);
	/* a count one too many, and 0 */
	memcpy(copy, buf, len);
	copy[11 + 4 + 4] = 3;
	assert_int_equal(migrate_msg_decode(copy, len, &m), -EBADMSG);
	copy[11 + 4 + 4] = 0;
	assert_int_equal(migrate_msg_decode(copy, len, &m), -EBADMSG);
	/* a record length past the end */
	memcpy(copy, buf, len);
	copy[11 + 4 + 8] = 200;
	assert_int_equal(migrate_msg_decode(copy, len, &m), -EBADMSG);
	/* version, kind, name length, partition */
	memcpy(copy, buf, len);
	copy[0] = 2;
	assert_int_equal(migrate_msg_decode(copy, len, &m), -EBADMSG);
	memcpy(copy, buf, len);
	copy[1] = 9;
	assert_int_equal(migrate_msg_decode(copy, len, &m), -EBADMSG);
	memcpy(copy, buf, len);
	copy[10] = 0;
	assert_int_equal(migrate_msg_decode(copy, len, &m), -EBADMSG);
	memcpy(copy, buf, len);
	copy[11 + 4 + 1] = 0x10;   /* pid 4096 + 17 */
	assert_int_equal(migrate_msg_decode(copy, len, &m), -EBADMSG);
	/* an EXCHANGE one version short, or one too long */
	static uint64_t v[MIGRATE_MSG_PARTITIONS];
	int el = migrate_msg_encode_exchange(buf, sizeof(buf), 5, "test", v);

	assert_int_equal(el, 15 + 8 * MIGRATE_MSG_PARTITIONS);
	assert_int_equal(migrate_msg_decode(buf, (size_t)el - 8, &m), -EBADMSG);
	assert_int_equal(migrate_msg_decode(buf, (size_t)el, &m), 0);
	free(copy);
}

static void
test_migrate_msg_encoders_refuse(void **state)
{
	uint8_t small[16];
	size_t off;

	(void)state;
	assert_int_equal(migrate_msg_encode_pid(buf, sizeof(buf), MIGRATE_MSG_START, 1, "", 0), -EINVAL);
	assert_int_equal(migrate_msg_encode_pid(buf, sizeof(buf), MIGRATE_MSG_START, 1,
	    "a-name-of-more-than-31-characters", 0), -EINVAL);
	assert_int_equal(migrate_msg_encode_pid(buf, sizeof(buf), MIGRATE_MSG_DONE, 1, "t", 4096), -EINVAL);
	assert_int_equal(migrate_msg_encode_pid(buf, sizeof(buf), MIGRATE_MSG_INSERT, 1, "t", 1), -EINVAL);
	assert_int_equal(migrate_msg_encode_insert(buf, sizeof(buf), 1, "t", 4096, &off), -EINVAL);
	assert_int_equal(migrate_msg_encode_record(buf, sizeof(buf), (const uint8_t *)"x", 0), -EINVAL);
	assert_int_equal(migrate_msg_encode_pid(small, 12, MIGRATE_MSG_DONE, 1, "t", 1), -EMSGSIZE);
	assert_int_equal(migrate_msg_encode_record(small, 4, (const uint8_t *)"x", 1), -EMSGSIZE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_migrate_msg_round_trips),
		cmocka_unit_test(test_migrate_msg_refuses_malformed),
		cmocka_unit_test(test_migrate_msg_encoders_refuse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
