/*
 * test_migrate_msg.c - the bodies of RPC_OP_MIGRATE (src/txn/migrate_msg.c):
 * each kind round-trips; every truncation of a valid body, a record length
 * past the end, bytes after the last record, an unknown kind or version, a
 * name or partition out of range and a count of 0 are refused with
 * -EBADMSG; so are PARTS sections with an unknown flag, no records without
 * LAST, or a section count other than the sections present, and PARTS
 * answers of the wrong length; encoders refuse what the decoder would.
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
	copy[1] = 8;           /* not a kind of this build */
	assert_int_equal(migrate_msg_decode(copy, len, &m), -EBADMSG);
	copy[1] = 0;
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

/* A PARTS of three sections: partition 17 whole (FIRST|LAST, "abc" and
 * "z"), the start of 4095 (FIRST, "q"), the end of 5 (LAST, no record). */
static size_t
parts_body(void)
{
	size_t count_off, n_off, off;
	int rc = migrate_msg_encode_parts(buf, sizeof(buf), 42, "test", &count_off);

	assert_int_equal(rc, 11 + 4 + 2);
	off = (size_t)rc;
	rc = migrate_msg_encode_part_head(buf + off, sizeof(buf) - off, 17,
	    MIGRATE_MSG_PART_FIRST | MIGRATE_MSG_PART_LAST, &n_off);
	assert_int_equal(rc, 9);
	n_off += off;
	off += (size_t)rc;
	off += (size_t)migrate_msg_encode_record(buf + off, sizeof(buf) - off, (const uint8_t *)"abc", 3);
	off += (size_t)migrate_msg_encode_record(buf + off, sizeof(buf) - off, (const uint8_t *)"z", 1);
	migrate_msg_insert_count(buf, n_off, 2);
	rc = migrate_msg_encode_part_head(buf + off, sizeof(buf) - off, 4095, MIGRATE_MSG_PART_FIRST, &n_off);
	n_off += off;
	off += (size_t)rc;
	off += (size_t)migrate_msg_encode_record(buf + off, sizeof(buf) - off, (const uint8_t *)"q", 1);
	migrate_msg_insert_count(buf, n_off, 1);
	rc = migrate_msg_encode_part_head(buf + off, sizeof(buf) - off, 5, MIGRATE_MSG_PART_LAST, &n_off);
	off += (size_t)rc;
	migrate_msg_parts_count(buf, count_off, 3);
	return off;
}

static void
test_migrate_msg_parts(void **state)
{
	struct migrate_msg m, sec;
	const uint8_t *rec;
	uint32_t rl;
	size_t len = parts_body(), off = 0, roff = 0;
	uint8_t *copy = malloc(len + 1);
	int res[3] = { 0, -EAGAIN, -EPROTO }, back[3];
	uint8_t ans[16];

	(void)state;
	assert_non_null(copy);
	assert_int_equal(migrate_msg_decode(buf, len, &m), 0);
	assert_int_equal(m.kind, MIGRATE_MSG_PARTS);
	assert_int_equal(m.cluster_key, 42);
	assert_string_equal(m.ns, "test");
	assert_int_equal(m.n, 3);
	assert_int_equal(migrate_msg_part_next(&m, &off, &sec), 1);
	assert_int_equal(sec.pid, 17);
	assert_int_equal(sec.flags, MIGRATE_MSG_PART_FIRST | MIGRATE_MSG_PART_LAST);
	assert_int_equal(sec.n, 2);
	assert_int_equal(sec.cluster_key, 42);
	assert_string_equal(sec.ns, "test");
	assert_int_equal(migrate_msg_record_next(&sec, &roff, &rec, &rl), 1);
	assert_int_equal(rl, 3);
	assert_memory_equal(rec, "abc", 3);
	assert_int_equal(migrate_msg_record_next(&sec, &roff, &rec, &rl), 1);
	assert_int_equal(rl, 1);
	assert_memory_equal(rec, "z", 1);
	assert_int_equal(migrate_msg_record_next(&sec, &roff, &rec, &rl), 0);
	assert_int_equal(migrate_msg_part_next(&m, &off, &sec), 1);
	assert_int_equal(sec.pid, 4095);
	assert_int_equal(sec.flags, MIGRATE_MSG_PART_FIRST);
	assert_int_equal(sec.n, 1);
	roff = 0;
	assert_int_equal(migrate_msg_record_next(&sec, &roff, &rec, &rl), 1);
	assert_memory_equal(rec, "q", 1);
	assert_int_equal(migrate_msg_record_next(&sec, &roff, &rec, &rl), 0);
	assert_int_equal(migrate_msg_part_next(&m, &off, &sec), 1);
	assert_int_equal(sec.pid, 5);
	assert_int_equal(sec.flags, MIGRATE_MSG_PART_LAST);
	assert_int_equal(sec.n, 0);
	roff = 0;
	assert_int_equal(migrate_msg_record_next(&sec, &roff, &rec, &rl), 0);
	assert_int_equal(migrate_msg_part_next(&m, &off, &sec), 0);

	/* every truncation, each in a buffer of exactly its size (ASan) */
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *t = malloc(cut > 0 ? cut : 1);

		memcpy(t, buf, cut);
		assert_int_equal(migrate_msg_decode(t, cut, &m), -EBADMSG);
		free(t);
	}
	/* a byte after the last section */
	memcpy(copy, buf, len);
	copy[len] = 0;
	assert_int_equal(migrate_msg_decode(copy, len + 1, &m), -EBADMSG);
	/* section counts: one fewer (bytes left over), one more, 0, past the most */
	assert_int_equal(buf[1], 7);   /* PARTS: wire number */
	const size_t cnt = 11 + 4, s1 = cnt + 2, s2 = s1 + 9 + 7 + 5, s3 = s2 + 9 + 5;
	const uint16_t counts[] = { 2, 4, 0, MIGRATE_MSG_PARTS_MAX + 1 };

	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		memcpy(copy, buf, len);
		copy[cnt] = (uint8_t)counts[i];
		copy[cnt + 1] = (uint8_t)(counts[i] >> 8);
		assert_int_equal(migrate_msg_decode(copy, len, &m), -EBADMSG);
	}
	/* an unknown flag; no records without LAST; a partition out of range;
	 * a record count one too many; a record length past the end */
	memcpy(copy, buf, len);
	copy[s1 + 4] |= 0x4;
	assert_int_equal(migrate_msg_decode(copy, len, &m), -EBADMSG);
	memcpy(copy, buf, len);
	copy[s3 + 4] = MIGRATE_MSG_PART_FIRST;
	assert_int_equal(migrate_msg_decode(copy, len, &m), -EBADMSG);
	copy[s3 + 4] = 0;
	assert_int_equal(migrate_msg_decode(copy, len, &m), -EBADMSG);
	memcpy(copy, buf, len);
	copy[s2 + 1] = 0x10;   /* 4095 + 4096 */
	assert_int_equal(migrate_msg_decode(copy, len, &m), -EBADMSG);
	memcpy(copy, buf, len);
	copy[s1 + 5] = 3;
	assert_int_equal(migrate_msg_decode(copy, len, &m), -EBADMSG);
	memcpy(copy, buf, len);
	copy[s2 + 9] = 2;      /* "q" claims 2 bytes: runs into the next section */
	assert_int_equal(migrate_msg_decode(copy, len, &m), -EBADMSG);
	memcpy(copy, buf, len);
	assert_int_equal(migrate_msg_decode(copy, len, &m), 0);
	free(copy);

	/* the answer: one result per section */
	assert_int_equal(migrate_msg_encode_parts_answer(ans, sizeof(ans), res, 3), 12);
	assert_int_equal(migrate_msg_decode_parts_answer(ans, 12, 3, back), 0);
	assert_int_equal(back[0], 0);
	assert_int_equal(back[1], -EAGAIN);
	assert_int_equal(back[2], -EPROTO);
	assert_int_equal(migrate_msg_decode_parts_answer(ans, 12, 2, back), -EBADMSG);
	assert_int_equal(migrate_msg_decode_parts_answer(ans, 8, 3, back), -EBADMSG);
	assert_int_equal(migrate_msg_decode_parts_answer(ans, 0, 0, back), -EBADMSG);
	ans[6] = 1;            /* the second result 65536 + EAGAIN */
	assert_int_equal(migrate_msg_decode_parts_answer(ans, 12, 3, back), -EBADMSG);
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
	assert_int_equal(migrate_msg_encode_pid(buf, sizeof(buf), MIGRATE_MSG_PARTS, 1, "t", 1), -EINVAL);
	assert_int_equal(migrate_msg_encode_part_head(buf, sizeof(buf), 4096, MIGRATE_MSG_PART_LAST, &off),
	    -EINVAL);
	assert_int_equal(migrate_msg_encode_part_head(buf, sizeof(buf), 1, 0x4, &off), -EINVAL);
	assert_int_equal(migrate_msg_encode_part_head(small, 8, 1, MIGRATE_MSG_PART_LAST, &off), -EMSGSIZE);
	assert_int_equal(migrate_msg_encode_parts(small, 13, 1, "t", &off), -EMSGSIZE);
	int one[2] = { 5, 0 };

	assert_int_equal(migrate_msg_encode_parts_answer(small, sizeof(small), one, 1), -EINVAL);
	assert_int_equal(migrate_msg_encode_parts_answer(small, sizeof(small), one + 1, 0), -EINVAL);
	assert_int_equal(migrate_msg_encode_parts_answer(small, 3, one + 1, 1), -EMSGSIZE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_migrate_msg_round_trips),
		cmocka_unit_test(test_migrate_msg_refuses_malformed),
		cmocka_unit_test(test_migrate_msg_parts),
		cmocka_unit_test(test_migrate_msg_encoders_refuse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
