/*
 * fuzz_migrate_msg.c - fuzz target for the decoder of the migration bodies
 * (src/txn/migrate_msg.c): what another node sends in an rpc request of
 * RPC_OP_MIGRATE (the exchange of versions, START, INSERT batches of
 * records, DONE, TAKEOVER, PARTS with their sections) and in the answer to
 * a PARTS (one result per section).  A body that decodes must keep the
 * decoder's promises (kind, name, partition, section and record counts,
 * flags, lengths) and encode back to the same bytes; every other input is
 * refused with -EBADMSG, never read outside the input (ASan).
 *
 * Built two ways: with clang -fsanitize=fuzzer by scripts/fuzz.sh (target
 * migrate_msg), and with tests/fuzz/fuzz_driver.c as a plain program that
 * `make check` runs: the seeds below, then mutations of them.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "txn/migrate_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t fuzz_seed(unsigned i, uint8_t *buf, size_t cap);
const char fuzz_target_name[] = "fuzz_migrate_msg";

#define fuzz_assert(cond) do { \
		if (!(cond)) { \
			fprintf(stderr, "fuzz_migrate_msg: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct migrate_msg m;
	int rc = migrate_msg_decode(data, size, &m);
	uint8_t *again;
	size_t off, count_off = 0;
	int hl;

	/* the same bytes as the answer to a PARTS of size / 4 sections */
	{
		int res[MIGRATE_MSG_PARTS_MAX];
		uint8_t back[4 * MIGRATE_MSG_PARTS_MAX];
		int arc = migrate_msg_decode_parts_answer(data, size, (uint32_t)(size / 4), res);

		fuzz_assert(arc == 0 || arc == -EBADMSG);
		if (arc == 0) {
			for (size_t i = 0; i < size / 4; i++)
				fuzz_assert(res[i] <= 0 && res[i] >= -65535);
			arc = migrate_msg_encode_parts_answer(back, sizeof(back), res, (uint32_t)(size / 4));
			fuzz_assert(arc >= 0 && (size_t)arc == size && memcmp(back, data, size) == 0);
		}
	}
	fuzz_assert(rc == 0 || rc == -EBADMSG);
	if (rc != 0)
		return 0;
	fuzz_assert(m.kind >= MIGRATE_MSG_EXCHANGE && m.kind <= MIGRATE_MSG_PARTS);
	fuzz_assert(strlen(m.ns) >= 1 && strlen(m.ns) <= MIGRATE_MSG_NS_MAX);
	fuzz_assert(m.pid < MIGRATE_MSG_PARTITIONS);
	again = malloc(size > 0 ? size : 1);
	fuzz_assert(again != NULL);
	switch (m.kind) {
	case MIGRATE_MSG_EXCHANGE: {
		uint64_t *v = malloc(8 * MIGRATE_MSG_PARTITIONS);

		fuzz_assert(v != NULL);
		for (uint32_t p = 0; p < MIGRATE_MSG_PARTITIONS; p++)
			v[p] = migrate_msg_version(&m, p);
		hl = migrate_msg_encode_exchange(again, size, m.cluster_key, m.ns, v);
		free(v);
		fuzz_assert(hl > 0 && (size_t)hl == size);
		break;
	}
	case MIGRATE_MSG_INSERT: {
		const uint8_t *rec;
		uint32_t rec_len, n = 0;
		size_t p = 0;

		fuzz_assert(m.n >= 1 && m.n <= MIGRATE_MSG_RECORDS_MAX);
		hl = migrate_msg_encode_insert(again, size, m.cluster_key, m.ns, m.pid, &count_off);
		fuzz_assert(hl > 0);
		off = (size_t)hl;
		while (migrate_msg_record_next(&m, &p, &rec, &rec_len)) {
			fuzz_assert(rec_len >= 1 && rec >= data && rec + rec_len <= data + size);
			rc = migrate_msg_encode_record(again + off, size - off, rec, rec_len);
			fuzz_assert(rc > 0);
			off += (size_t)rc;
			n++;
		}
		fuzz_assert(n == m.n && off == size);
		migrate_msg_insert_count(again, count_off, n);
		break;
	}
	case MIGRATE_MSG_PARTS: {
		struct migrate_msg sec;
		size_t p = 0, n_off;
		uint32_t count = 0;

		fuzz_assert(m.n >= 1 && m.n <= MIGRATE_MSG_PARTS_MAX);
		hl = migrate_msg_encode_parts(again, size, m.cluster_key, m.ns, &count_off);
		fuzz_assert(hl > 0);
		off = (size_t)hl;
		while (migrate_msg_part_next(&m, &p, &sec)) {
			const uint8_t *rec;
			uint32_t rec_len, n = 0;
			size_t q = 0;

			fuzz_assert(sec.pid < MIGRATE_MSG_PARTITIONS && sec.n <= MIGRATE_MSG_RECORDS_MAX);
			fuzz_assert((sec.flags & ~(MIGRATE_MSG_PART_FIRST | MIGRATE_MSG_PART_LAST)) == 0);
			fuzz_assert(sec.n > 0 || (sec.flags & MIGRATE_MSG_PART_LAST));
			rc = migrate_msg_encode_part_head(again + off, size - off, sec.pid, sec.flags, &n_off);
			fuzz_assert(rc == 9);
			n_off += off;
			off += (size_t)rc;
			while (migrate_msg_record_next(&sec, &q, &rec, &rec_len)) {
				fuzz_assert(rec_len >= 1 && rec >= data && rec + rec_len <= data + size);
				rc = migrate_msg_encode_record(again + off, size - off, rec, rec_len);
				fuzz_assert(rc > 0);
				off += (size_t)rc;
				n++;
			}
			fuzz_assert(n == sec.n);
			migrate_msg_insert_count(again, n_off, n);
			count++;
		}
		fuzz_assert(count == m.n && off == size);
		migrate_msg_parts_count(again, count_off, count);
		break;
	}
	default:
		hl = migrate_msg_encode_pid(again, size, m.kind, m.cluster_key, m.ns, m.pid);
		fuzz_assert(hl > 0 && (size_t)hl == size);
		break;
	}
	fuzz_assert(memcmp(again, data, size) == 0);
	free(again);
	return 0;
}

/* Valid bodies of each kind. */
size_t
fuzz_seed(unsigned i, uint8_t *buf, size_t cap)
{
	static const uint8_t rec1[] = "a flat record's bytes (not checked here)";
	static const uint8_t rec2[] = { 1 };
	size_t count_off;
	int rc;

	if (cap < MIGRATE_MSG_EXCHANGE_SIZE(MIGRATE_MSG_NS_MAX))
		return 0;
	switch (i) {
	case 0: {
		uint64_t v[MIGRATE_MSG_PARTITIONS];

		for (uint32_t p = 0; p < MIGRATE_MSG_PARTITIONS; p++)
			v[p] = p % 3 == 0 ? 0 : 0x123456789abcULL << 16 | (p & 3);
		rc = migrate_msg_encode_exchange(buf, cap, 0x0102030405060708ULL, "test", v);
		return rc > 0 ? (size_t)rc : 0;
	}
	case 1: case 3: case 4:
		rc = migrate_msg_encode_pid(buf, cap, i == 1 ? MIGRATE_MSG_START : i == 3 ? MIGRATE_MSG_DONE :
		    MIGRATE_MSG_TAKEOVER, 42, "ns-1", 4095);
		return rc > 0 ? (size_t)rc : 0;
	case 2: {
		size_t off;

		rc = migrate_msg_encode_insert(buf, cap, 42, "test", 17, &count_off);
		if (rc < 0)
			return 0;
		off = (size_t)rc;
		rc = migrate_msg_encode_record(buf + off, cap - off, rec1, sizeof(rec1));
		off += (size_t)rc;
		rc = migrate_msg_encode_record(buf + off, cap - off, rec2, sizeof(rec2));
		off += (size_t)rc;
		migrate_msg_insert_count(buf, count_off, 2);
		return off;
	}
	case 5: {
		/* PARTS: partition 17 whole, the start of 4095, the end of 5 */
		size_t off, n_off;

		rc = migrate_msg_encode_parts(buf, cap, 42, "test", &count_off);
		if (rc < 0)
			return 0;
		off = (size_t)rc;
		off += (size_t)migrate_msg_encode_part_head(buf + off, cap - off, 17,
		    MIGRATE_MSG_PART_FIRST | MIGRATE_MSG_PART_LAST, &n_off);
		n_off += off - 9;
		off += (size_t)migrate_msg_encode_record(buf + off, cap - off, rec1, sizeof(rec1));
		off += (size_t)migrate_msg_encode_record(buf + off, cap - off, rec2, sizeof(rec2));
		migrate_msg_insert_count(buf, n_off, 2);
		off += (size_t)migrate_msg_encode_part_head(buf + off, cap - off, 4095, MIGRATE_MSG_PART_FIRST,
		    &n_off);
		n_off += off - 9;
		off += (size_t)migrate_msg_encode_record(buf + off, cap - off, rec2, sizeof(rec2));
		migrate_msg_insert_count(buf, n_off, 1);
		off += (size_t)migrate_msg_encode_part_head(buf + off, cap - off, 5, MIGRATE_MSG_PART_LAST, &n_off);
		migrate_msg_parts_count(buf, count_off, 3);
		return off;
	}
	case 6: {
		/* a PARTS answer: three results */
		static const int res[3] = { 0, -EAGAIN, -EPROTO };

		rc = migrate_msg_encode_parts_answer(buf, cap, res, 3);
		return rc > 0 ? (size_t)rc : 0;
	}
	default:
		return 0;
	}
}
