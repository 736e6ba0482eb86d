/*
 * test_set_msg.c - the bodies of the cluster's set and listing operations
 * (src/txn/set_msg.c): every field survives encode and decode, extreme
 * values included; every malformed body is refused with -EBADMSG (a wrong
 * version or kind, a bad name, a length past the end, bytes left over, a
 * digest outside its partition, a count over the bound); every truncation
 * of a valid body is refused; encoders refuse what the decoder would.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "txn/set_msg.h"

static struct set_msg_entry
entry(const char *name, bool live, uint64_t lut)
{
	struct set_msg_entry e = { 0 };

	e.len = (uint8_t)strlen(name);
	memcpy(e.name, name, e.len);
	e.live = live;
	e.has_meta = live;
	e.lut_ms = lut;
	e.mode = 07777;
	e.uid = 0xffffffffu;
	e.gid = 12345;
	e.mtime_ns = INT64_MIN;
	e.atime_ns = INT64_MAX;
	return e;
}

/* A merge message of the entries; its length. */
static size_t
merge_msg(uint8_t *buf, size_t cap, const struct set_msg_entry *es, unsigned n)
{
	int hl = set_msg_encode_header(buf, cap, SET_MSG_MERGE, "test", (uint16_t)n);
	size_t len;

	assert_true(hl > 0);
	len = (size_t)hl;
	for (unsigned i = 0; i < n; i++) {
		int el = set_msg_encode_entry(buf + len, cap - len, &es[i]);

		assert_true(el > 0);
		len += (size_t)el;
	}
	return len;
}

static void
test_set_roundtrip(void **state)
{
	static uint8_t buf[SET_MSG_MAX];
	char longname[SET_MSG_NAME_MAX + 1];
	struct set_msg_entry es[3], got;
	struct set_msg m;
	size_t len;

	(void)state;
	memset(longname, 'x', SET_MSG_NAME_MAX);
	longname[SET_MSG_NAME_MAX] = '\0';
	es[0] = entry("alpha", true, 1);
	es[1] = entry("b", false, UINT64_MAX);
	es[2] = entry(longname, true, 42);
	es[2].has_meta = false;
	len = merge_msg(buf, sizeof(buf), es, 3);
	assert_int_equal(set_msg_decode(buf, len, &m), 0);
	assert_int_equal(m.kind, SET_MSG_MERGE);
	assert_string_equal(m.ns, "test");
	assert_int_equal(m.n, 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_true(set_msg_entry_next(&m, &got));
		assert_string_equal(got.name, es[i].name);
		assert_int_equal(got.len, es[i].len);
		assert_int_equal(got.live, es[i].live);
		assert_int_equal(got.has_meta, es[i].has_meta);
		assert_true(got.lut_ms == es[i].lut_ms);
		assert_int_equal(got.mode, es[i].mode);
		assert_int_equal(got.uid, es[i].uid);
		assert_int_equal(got.gid, es[i].gid);
		assert_true(got.mtime_ns == es[i].mtime_ns);
		assert_true(got.atime_ns == es[i].atime_ns);
	}
	assert_false(set_msg_entry_next(&m, &got));
	/* every truncation is refused */
	for (size_t cut = 0; cut < len; cut++)
		assert_int_equal(set_msg_decode(buf, cut, &m), -EBADMSG);
	/* an empty merge (a table with no set) decodes */
	len = merge_msg(buf, sizeof(buf), es, 0);
	assert_int_equal(set_msg_decode(buf, len, &m), 0);
	assert_false(set_msg_entry_next(&m, &got));
}

static void
test_set_malformed(void **state)
{
	uint8_t buf[512], bad[512];
	struct set_msg_entry e = entry("alpha", true, 7);
	struct set_msg m;
	size_t len, name_at;
	int hl;

	(void)state;
	len = merge_msg(buf, sizeof(buf), &e, 1);
	name_at = 5 + 4 + 1;  /* header with "test", then the name's length byte */
#define MUTATE(off, val) do { \
		memcpy(bad, buf, len); \
		bad[off] = (uint8_t)(val); \
		assert_int_equal(set_msg_decode(bad, len, &m), -EBADMSG); \
	} while (0)
	MUTATE(0, 2);                    /* version */
	MUTATE(1, 0);                    /* kind */
	MUTATE(1, 9);
	MUTATE(2, 0);                    /* empty namespace name */
	MUTATE(2, 40);                   /* namespace name too long */
	MUTATE(3, '/');                  /* '/' in the namespace name */
	MUTATE(7, 2);                    /* n: 2 entries, one there */
	MUTATE(8, 0xff);                 /* n over the bound */
	MUTATE(name_at - 1, 0);          /* empty set name */
	MUTATE(name_at - 1, 64);         /* set name too long */
	MUTATE(name_at, '\0');           /* NUL in the name */
	MUTATE(name_at + 2, '/');        /* '/' in the name */
	MUTATE(name_at + 5, 4);          /* unknown flag */
	MUTATE(name_at + 5 + 10, 0x10);  /* mode over 07777 */
#undef MUTATE
	/* ".." is no set name */
	{
		struct set_msg_entry two = entry("ab", true, 7);
		size_t l2 = merge_msg(bad, sizeof(bad), &two, 1);

		assert_int_equal(set_msg_decode(bad, l2, &m), 0);
		bad[name_at] = '.';
		bad[name_at + 1] = '.';
		assert_int_equal(set_msg_decode(bad, l2, &m), -EBADMSG);
	}
	/* a byte left over */
	memcpy(bad, buf, len);
	bad[len] = 0;
	assert_int_equal(set_msg_decode(bad, len + 1, &m), -EBADMSG);
	/* a check carries exactly one entry */
	hl = set_msg_encode_header(bad, sizeof(bad), SET_MSG_CHECK_EMPTY, "test", 1);
	assert_int_equal(hl, 9);
	assert_int_equal(set_msg_encode_header(bad, sizeof(bad), SET_MSG_CHECK_NAME, "test", 2), -EINVAL);
	memcpy(buf + 1, (uint8_t[]){ SET_MSG_CHECK_EMPTY }, 1);
	assert_int_equal(set_msg_decode(buf, len, &m), 0);
	buf[7] = 0;   /* n = 0 */
	assert_int_equal(set_msg_decode(buf, 9, &m), -EBADMSG);
	/* encoders refuse what the decoder refuses */
	assert_int_equal(set_msg_encode_header(bad, sizeof(bad), SET_MSG_MERGE, "a/b", 0), -EINVAL);
	assert_int_equal(set_msg_encode_header(bad, 6, SET_MSG_MERGE, "test", 0), -EMSGSIZE);
	e.mode = 010000;
	assert_int_equal(set_msg_encode_entry(bad, sizeof(bad), &e), -EINVAL);
	e = entry("..", true, 1);
	assert_int_equal(set_msg_encode_entry(bad, sizeof(bad), &e), -EINVAL);
	e = entry("ok", true, 1);
	assert_int_equal(set_msg_encode_entry(bad, 10, &e), -EMSGSIZE);
}

static struct list_msg_request
request(void)
{
	struct list_msg_request r = { 0 };

	strcpy(r.ns, "test");
	strcpy(r.set, "recs");
	r.set_len = 4;
	r.partition = 4095;
	r.started = true;
	for (int i = 0; i < LIST_MSG_DIGEST; i++)
		r.digest[i] = (uint8_t)(0xa0 + i);
	r.max = LIST_MSG_ENTRIES_MAX;
	list_msg_mask_add(r.mask, 0);
	list_msg_mask_add(r.mask, 4095);
	list_msg_mask_add(r.mask, 1234);
	return r;
}

static void
test_list_request(void **state)
{
	uint8_t buf[LIST_MSG_REQUEST_MAX + 1], bad[LIST_MSG_REQUEST_MAX + 1];
	struct list_msg_request r = request(), got;
	int len;

	(void)state;
	len = list_msg_encode_request(buf, sizeof(buf), &r);
	assert_true(len > 0);
	assert_int_equal(list_msg_decode_request(buf, (size_t)len, &got), 0);
	assert_string_equal(got.ns, r.ns);
	assert_string_equal(got.set, r.set);
	assert_int_equal(got.set_len, r.set_len);
	assert_int_equal(got.partition, r.partition);
	assert_int_equal(got.started, r.started);
	assert_memory_equal(got.digest, r.digest, sizeof(r.digest));
	assert_int_equal(got.max, r.max);
	assert_memory_equal(got.mask, r.mask, sizeof(r.mask));
	assert_true(list_msg_mask_has(got.mask, 1234));
	assert_false(list_msg_mask_has(got.mask, 1235));
	for (int cut = 0; cut < len; cut++)
		assert_int_equal(list_msg_decode_request(buf, (size_t)cut, &got), -EBADMSG);
	buf[len] = 0;
	assert_int_equal(list_msg_decode_request(buf, (size_t)len + 1, &got), -EBADMSG);
	/* the null set: no set name */
	r.set_len = 0;
	r.set[0] = '\0';
	len = list_msg_encode_request(buf, sizeof(buf), &r);
	assert_int_equal(list_msg_decode_request(buf, (size_t)len, &got), 0);
	assert_int_equal(got.set_len, 0);
#define MUTATE(off, val) do { \
		memcpy(bad, buf, (size_t)len); \
		bad[off] = (uint8_t)(val); \
		assert_int_equal(list_msg_decode_request(bad, (size_t)len, &got), -EBADMSG); \
	} while (0)
	MUTATE(0, 0);          /* version */
	MUTATE(1, 0);          /* namespace name length */
	MUTATE(6, 70);         /* set name length over 63 */
	MUTATE(8, 0x10);       /* partition 4096 + ... */
	MUTATE(9, 2);          /* started not 0/1 */
	MUTATE(31, 0);         /* max 0 (1024: its high byte is 4) */
#undef MUTATE
	memcpy(bad, buf, (size_t)len);
	bad[30] = 1;           /* max 1025 */
	assert_int_equal(list_msg_decode_request(bad, (size_t)len, &got), -EBADMSG);
	r.max = 0;
	assert_int_equal(list_msg_encode_request(buf, sizeof(buf), &r), -EINVAL);
	r.max = 1;
	r.partition = 4096;
	assert_int_equal(list_msg_encode_request(buf, sizeof(buf), &r), -EINVAL);
	r.partition = 0;
	assert_int_equal(list_msg_encode_request(buf, 40, &r), -EMSGSIZE);
	/* A tree directory's listing carries its id (8 more bytes); 0 is never sent. */
	assert_int_equal(got.dir, 0);
	r.dir = 0x0123456789abcdefULL;
	len = list_msg_encode_request(buf, sizeof(buf), &r);
	assert_true(len > 0);
	assert_int_equal(list_msg_decode_request(buf, (size_t)len, &got), 0);
	assert_true(got.dir == 0x0123456789abcdefULL);
	for (int cut = 0; cut < len; cut++)
		assert_int_equal(list_msg_decode_request(buf, (size_t)cut, &got) == 0, cut == len - 8);
	memset(buf + len - 8, 0, 8);
	assert_int_equal(list_msg_decode_request(buf, (size_t)len, &got), -EBADMSG);
}

static struct list_msg_entry
list_entry(uint16_t partition, const char *key)
{
	struct list_msg_entry e = { 0 };

	e.partition = partition;
	e.digest[0] = (uint8_t)partition;
	e.digest[1] = (uint8_t)((partition >> 8) | 0xf0);   /* high bits are not the partition */
	e.digest[19] = 0x5a;
	e.key_len = (uint8_t)strlen(key);
	memcpy(e.key, key, e.key_len);
	e.size = UINT64_MAX;
	e.has_meta = true;
	e.damaged = true;
	e.mode = 0100644;
	e.uid = 1;
	e.gid = 2;
	e.mtime_ns = -1;
	e.atime_ns = 3;
	e.ino = 0x1122334455667788ull;
	e.lut_ms = 99;
	e.generation = 65535;
	e.void_time = 0xfffffffe;
	return e;
}

static void
test_list_answer(void **state)
{
	static uint8_t buf[LIST_MSG_ANSWER_MAX], bad[1024];
	char longkey[LIST_MSG_KEY_MAX + 1];
	struct list_msg_entry es[3], got;
	struct list_msg_answer a;
	size_t len;
	int rc;

	(void)state;
	memset(longkey, 'k', LIST_MSG_KEY_MAX);
	longkey[LIST_MSG_KEY_MAX] = '\0';
	es[0] = list_entry(0, "a");
	es[1] = list_entry(4095, longkey);
	es[2] = list_entry(77, "");
	rc = list_msg_encode_answer_header(buf, sizeof(buf), 3, true);
	assert_int_equal(rc, 4);
	len = 4;
	for (int i = 0; i < 3; i++) {
		rc = list_msg_encode_entry(buf + len, sizeof(buf) - len, &es[i]);
		assert_true(rc > 0);
		len += (size_t)rc;
	}
	assert_int_equal(list_msg_decode_answer(buf, len, &a), 0);
	assert_int_equal(a.n, 3);
	assert_true(a.done);
	for (int i = 0; i < 3; i++) {
		assert_true(list_msg_entry_next(&a, &got));
		assert_int_equal(got.partition, es[i].partition);
		assert_memory_equal(got.digest, es[i].digest, LIST_MSG_DIGEST);
		assert_string_equal(got.key, es[i].key);
		assert_int_equal(got.key_len, es[i].key_len);
		assert_true(got.size == es[i].size);
		assert_int_equal(got.has_meta, es[i].has_meta);
		assert_int_equal(got.damaged, es[i].damaged);
		assert_int_equal(got.mode, es[i].mode);
		assert_int_equal(got.uid, es[i].uid);
		assert_int_equal(got.gid, es[i].gid);
		assert_true(got.mtime_ns == es[i].mtime_ns);
		assert_true(got.atime_ns == es[i].atime_ns);
		assert_true(got.ino == es[i].ino);
		assert_true(got.lut_ms == es[i].lut_ms);
		assert_int_equal(got.generation, es[i].generation);
		assert_int_equal(got.void_time, es[i].void_time);
	}
	assert_false(list_msg_entry_next(&a, &got));
	for (size_t cut = 0; cut < len; cut++)
		assert_int_equal(list_msg_decode_answer(buf, cut, &a), -EBADMSG);
	/* malformed: a digest outside its partition, NUL in a key, a flag,
	 * done not 0/1, a count over the bound */
	memcpy(bad, buf, 4 + 83);
	bad[1] = 1;      /* one entry: the first */
	bad[2] = 0;
	assert_int_equal(list_msg_decode_answer(bad, 4 + 83, &a), 0);
	bad[4 + 2] ^= 1;
	assert_int_equal(list_msg_decode_answer(bad, 4 + 83, &a), -EBADMSG);
	bad[4 + 2] ^= 1;
	bad[4 + 23] = '\0';
	assert_int_equal(list_msg_decode_answer(bad, 4 + 83, &a), -EBADMSG);
	bad[4 + 23] = 'a';
	bad[4 + 24 + 8] = 4;
	assert_int_equal(list_msg_decode_answer(bad, 4 + 83, &a), -EBADMSG);
	bad[4 + 24 + 8] = 3;
	bad[3] = 2;
	assert_int_equal(list_msg_decode_answer(bad, 4 + 83, &a), -EBADMSG);
	bad[3] = 0;
	bad[1] = 0x01;
	bad[2] = 0x04;   /* 1025 */
	assert_int_equal(list_msg_decode_answer(bad, 4 + 83, &a), -EBADMSG);
	/* encoders refuse what the decoder refuses */
	es[0].partition = 1;
	assert_int_equal(list_msg_encode_entry(bad, sizeof(bad), &es[0]), -EINVAL);
	assert_int_equal(list_msg_encode_answer_header(bad, sizeof(bad), 1025, false), -EINVAL);
	assert_int_equal(list_msg_encode_entry(bad, 50, &es[2]), -EMSGSIZE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_roundtrip),
		cmocka_unit_test(test_set_malformed),
		cmocka_unit_test(test_list_request),
		cmocka_unit_test(test_list_answer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
