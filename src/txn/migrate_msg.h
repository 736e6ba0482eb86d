/*
 * migrate_msg.h - the bodies of the rpc operation RPC_OP_MIGRATE: the
 * exchange of partition versions and the migration of partitions
 * (docs/cluster.md, "Rebalance and migration").
 *
 * Wire format (little endian), never changed without a new version:
 *   u8 version (1), u8 kind, u64 cluster key, u8 ns_len (1..31), ns bytes,
 *   then by kind:
 *     EXCHANGE                u64 x 4096: the sender's version of every partition
 *     START, DONE, TAKEOVER   u32 pid (< 4096)
 *     INSERT                  u32 pid, u32 n (1..MIGRATE_MSG_RECORDS_MAX),
 *                             n x { u32 len (>= 1), len bytes: one flat record }
 *     PARTS                   u16 count (1..MIGRATE_MSG_PARTS_MAX), count x
 *                             { u32 pid, u8 flags (FIRST 0x1, LAST 0x2), u32 n
 *                             (0..MIGRATE_MSG_RECORDS_MAX; 0 only with LAST),
 *                             n records as in INSERT }: several partitions, or
 *                             part of one, with START (FIRST) and DONE (LAST)
 *                             folded in; its answer's body is count x u32: each
 *                             section's result, a positive errno or 0
 *   and nothing after.
 * The decoder checks every length against the bytes present; what a
 * record holds is checked where it is applied (namespace_apply_flat).
 *
 * Pure functions: no allocation, no lock; errors 0 or -errno.
 */
#ifndef RECFS_TXN_MIGRATE_MSG_H
#define RECFS_TXN_MIGRATE_MSG_H

#include <stddef.h>
#include <stdint.h>

#define MIGRATE_MSG_VERSION 1
#define MIGRATE_MSG_NS_MAX 31            /* CONFIG_NAME_MAX */
#define MIGRATE_MSG_PARTITIONS 4096      /* PARTITION_COUNT */
#define MIGRATE_MSG_RECORDS_MAX 4096
#define MIGRATE_MSG_PARTS_MAX 64         /* sections of one PARTS */
#define MIGRATE_MSG_PART_FIRST 0x1       /* PARTS section: the partition's first (START) */
#define MIGRATE_MSG_PART_LAST 0x2        /* PARTS section: its last (DONE) */
#define MIGRATE_MSG_HEADER_MAX (11 + MIGRATE_MSG_NS_MAX)
/* An EXCHANGE body. */
#define MIGRATE_MSG_EXCHANGE_SIZE(ns_len) (11 + (ns_len) + 8 * MIGRATE_MSG_PARTITIONS)

/* Numbers are wire format, never renumbered or reused. */
enum migrate_msg_kind {
	MIGRATE_MSG_EXCHANGE = 1,   /* the sender's versions for this cluster key */
	MIGRATE_MSG_START = 2,      /* the sender begins to send partition pid */
	MIGRATE_MSG_INSERT = 3,     /* a batch of records of partition pid */
	MIGRATE_MSG_DONE = 4,       /* the sender has sent all of partition pid */
	MIGRATE_MSG_TAKEOVER = 5,   /* the sender (final master) now serves partition pid */
	MIGRATE_MSG_RELEASE = 6,    /* the sender (working master) has sent pid to every receiver:
	                             * a non-replica holding the same copy drops it now */
	MIGRATE_MSG_PARTS = 7,      /* sections of records of one or more partitions */
};

struct migrate_msg {
	uint8_t kind;
	uint64_t cluster_key;
	char ns[MIGRATE_MSG_NS_MAX + 1];   /* NUL-terminated */
	uint32_t pid;                      /* START, INSERT, DONE, TAKEOVER; a PARTS section */
	uint32_t n;                        /* INSERT, a PARTS section: records; PARTS: sections */
	uint8_t flags;                     /* a PARTS section: MIGRATE_MSG_PART_* */
	/* EXCHANGE: 4096 x u64 (read with migrate_msg_version); INSERT and a
	 * PARTS section: the records (read with migrate_msg_record_next);
	 * PARTS: the sections (read with migrate_msg_part_next). */
	const uint8_t *payload;
	size_t payload_len;
};

/* 0, or -EBADMSG (another version, an unknown kind, a name or pid out of
 * range, a count or length that does not match the bytes). */
int migrate_msg_decode(const uint8_t *buf, size_t len, struct migrate_msg *out);
/* EXCHANGE: partition pid's version. */
uint64_t migrate_msg_version(const struct migrate_msg *m, uint32_t pid);
/* INSERT: the next record after *off (start at 0): 1 and *rec, *rec_len
 * filled, or 0 at the end. */
int migrate_msg_record_next(const struct migrate_msg *m, size_t *off, const uint8_t **rec,
    uint32_t *rec_len);

/* PARTS: the next section after *off (start at 0): 1 and *part filled
 * (kind PARTS, the message's key and name, pid, flags, n and its records
 * as payload, for migrate_msg_record_next), or 0 at the end. */
int migrate_msg_part_next(const struct migrate_msg *m, size_t *off, struct migrate_msg *part);

/* Encoders into buf (cap bytes): the header and what follows it.  The
 * length written, or -EMSGSIZE / -EINVAL (a name or pid out of range). */
int migrate_msg_encode_header(uint8_t *buf, size_t cap, uint8_t kind, uint64_t cluster_key,
    const char *ns);
/* EXCHANGE: header + versions. */
int migrate_msg_encode_exchange(uint8_t *buf, size_t cap, uint64_t cluster_key, const char *ns,
    const uint64_t *versions);
/* START, DONE, TAKEOVER: header + pid. */
int migrate_msg_encode_pid(uint8_t *buf, size_t cap, uint8_t kind, uint64_t cluster_key,
    const char *ns, uint32_t pid);
/* INSERT: header + pid + n (records appended with migrate_msg_encode_record,
 * then the count patched by migrate_msg_insert_count at count_off). */
int migrate_msg_encode_insert(uint8_t *buf, size_t cap, uint64_t cluster_key, const char *ns,
    uint32_t pid, size_t *count_off);
int migrate_msg_encode_record(uint8_t *buf, size_t cap, const uint8_t *rec, uint32_t len);
void migrate_msg_insert_count(uint8_t *buf, size_t count_off, uint32_t n);
/* PARTS: header + u16 count (patched with migrate_msg_parts_count at
 * *count_off), then sections: migrate_msg_encode_part_head (its n patched
 * with migrate_msg_insert_count at *n_off) and its records. */
int migrate_msg_encode_parts(uint8_t *buf, size_t cap, uint64_t cluster_key, const char *ns,
    size_t *count_off);
int migrate_msg_encode_part_head(uint8_t *buf, size_t cap, uint32_t pid, uint8_t flags, size_t *n_off);
void migrate_msg_parts_count(uint8_t *buf, size_t count_off, uint32_t count);
/* A PARTS answer: count results (0 or -errno each) into buf; the length
 * or -EMSGSIZE / -EINVAL.  Decoded: 0, or -EBADMSG (not count x u32, a
 * result over 65535); results[i] 0 or -errno. */
int migrate_msg_encode_parts_answer(uint8_t *buf, size_t cap, const int *results, uint32_t count);
int migrate_msg_decode_parts_answer(const uint8_t *buf, size_t len, uint32_t count, int *results);

#endif
