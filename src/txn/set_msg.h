/*
 * set_msg.h - the bodies of the rpc operations that keep a namespace's
 * sets the same on every node (docs/cluster.md, "Sets and listings").
 *
 * One format for all of them: a header naming the namespace and the
 * operation's kind, then entries, each one set's state as its sender
 * knows it (name, live or removed, the last-update time of that state,
 * its directory metadata).  A merge message carries up to
 * SET_MSG_ENTRIES_MAX entries (a whole set table takes several), a check
 * message exactly one, a used message 0 or more.
 *
 * Wire format (little endian), never changed without a new version:
 *   u8 version (1), u8 kind, u8 ns_len (1..31), ns bytes, u16 n,
 *   n x { u8 name_len (1..63), name bytes, u8 flags (bit 0 live, bit 1
 *         has_meta, others 0), u64 lut_ms, u32 mode (<= 07777), u32 uid,
 *         u32 gid, i64 mtime_ns, i64 atime_ns }
 * and nothing after the last entry.
 *
 * Pure functions: no allocation, no lock; errors 0 or -errno.
 */
#ifndef RECFS_TXN_SET_MSG_H
#define RECFS_TXN_SET_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SET_MSG_VERSION 1
#define SET_MSG_NS_MAX 31          /* CONFIG_NAME_MAX */
#define SET_MSG_NAME_MAX 63        /* RECORD_SET_MAX */
#define SET_MSG_ENTRIES_MAX 1024
#define SET_MSG_HEADER_MAX (5 + SET_MSG_NS_MAX)
#define SET_MSG_ENTRY_MAX (38 + SET_MSG_NAME_MAX)
/* A buffer that takes any message. */
#define SET_MSG_MAX (SET_MSG_HEADER_MAX + SET_MSG_ENTRIES_MAX * SET_MSG_ENTRY_MAX)

/* Numbers are wire format, never renumbered or reused. */
enum set_msg_kind {
	SET_MSG_MERGE = 1,        /* take each entry if newer than what is here */
	SET_MSG_CHECK_EMPTY = 2,  /* one entry: -ENOTEMPTY if a live record of it is here */
	SET_MSG_CHECK_NAME = 3,   /* one entry: -EEXIST if a null-set record of that name is here */
	/* The sets without a marker that the sender holds records of (live,
	 * lut_ms: the set's ctime, mtime_ns), 0..SET_MSG_ENTRIES_MAX entries:
	 * USED replaces what the receiver knew of the sender's, USED_MORE
	 * (the next pages) adds to it. */
	SET_MSG_USED = 4,
	SET_MSG_USED_MORE = 5,
};

struct set_msg_entry {
	char name[SET_MSG_NAME_MAX + 1];   /* NUL-terminated */
	uint8_t len;
	bool live;                 /* false: removed at lut_ms */
	bool has_meta;             /* mode, uid, gid, atime stored (mkdir, chmod ...) */
	uint64_t lut_ms;           /* last-update time of this state (RECFS_EPOCH ms) */
	uint32_t mode, uid, gid;
	int64_t mtime_ns, atime_ns;
};

struct set_msg {
	uint8_t kind;
	char ns[SET_MSG_NS_MAX + 1];       /* NUL-terminated */
	uint16_t n;
	/* The entries, checked by set_msg_decode; read them with set_msg_entry_next. */
	const uint8_t *entries;
	size_t entries_len;
	size_t pos;                /* set_msg_entry_next's position */
};

/* Header of a message of kind for namespace ns, n entries to follow.
 * Returns the bytes written, or -EINVAL / -EMSGSIZE (cap too small). */
int set_msg_encode_header(uint8_t *buf, size_t cap, uint8_t kind, const char *ns, uint16_t n);
/* One entry; returns the bytes written, -EINVAL (a value the decoder
 * refuses), -EMSGSIZE. */
int set_msg_encode_entry(uint8_t *buf, size_t cap, const struct set_msg_entry *e);
/*
 * 0, or -EBADMSG: another version, an unknown kind, a length out of its
 * range, a name with '/' or NUL or "." / "..", a bad flag or mode, more
 * than SET_MSG_ENTRIES_MAX entries (a check: not exactly one), bytes
 * missing or left over.  Every entry is checked here.  Never reads outside
 * buf[0..len); m points into buf.
 */
int set_msg_decode(const uint8_t *buf, size_t len, struct set_msg *m);
/* The next entry of a decoded message: true and *e filled, false at the end. */
bool set_msg_entry_next(struct set_msg *m, struct set_msg_entry *e);

/* ---- listings (rpc operation RPC_OP_LIST) --------------------------------------
 *
 * A page of a set's listing, asked of one node for the partitions the
 * caller's partition table says it masters (a bitmap), after a cursor.
 * Request:
 *   u8 version (1), u8 ns_len (1..31), ns, u8 set_len (0..63; 0: the null
 *   set), set, u16 partition (< 4096), u8 started (0/1), 20 bytes digest,
 *   u16 max (1..LIST_MSG_ENTRIES_MAX), 512 bytes partition bitmap
 *   (bit p of byte p/8), nothing after.
 * Answer:
 *   u8 version (1), u16 n (<= LIST_MSG_ENTRIES_MAX), u8 done (0/1: nothing
 *   after the last entry in those partitions),
 *   n x { u16 partition, 20 bytes digest (its partition is that one),
 *         u8 key_len, key (no NUL), u64 size, u8 flags (bit 0 has_meta,
 *         bit 1 damaged), u32 mode, u32 uid, u32 gid, i64 mtime_ns,
 *         i64 atime_ns, u64 ino, u64 lut_ms, u16 generation, u32 void_time }
 *   in listing order (partition, then the index's order), nothing after.
 */
#define LIST_MSG_ENTRIES_MAX 1024
#define LIST_MSG_PARTITIONS 4096    /* PARTITION_COUNT */
#define LIST_MSG_MASK_BYTES (LIST_MSG_PARTITIONS / 8)
#define LIST_MSG_DIGEST 20          /* DIGEST_SIZE */
#define LIST_MSG_KEY_MAX 255        /* RECORD_KEY_MAX */
#define LIST_MSG_REQUEST_MAX (40 + SET_MSG_NS_MAX + SET_MSG_NAME_MAX + LIST_MSG_MASK_BYTES)
#define LIST_MSG_ENTRY_MAX (82 + LIST_MSG_KEY_MAX)
#define LIST_MSG_ANSWER_MAX (4 + LIST_MSG_ENTRIES_MAX * LIST_MSG_ENTRY_MAX)

struct list_msg_request {
	char ns[SET_MSG_NS_MAX + 1];
	char set[SET_MSG_NAME_MAX + 1];
	uint8_t set_len;
	uint16_t partition;
	bool started;
	uint8_t digest[LIST_MSG_DIGEST];
	uint16_t max;
	uint8_t mask[LIST_MSG_MASK_BYTES];
	uint64_t dir;      /* 0: the set's top level; else a tree directory's id
	                    * (8 bytes after the mask, only when non-zero) */
};

struct list_msg_entry {
	uint16_t partition;
	uint8_t digest[LIST_MSG_DIGEST];
	char key[LIST_MSG_KEY_MAX + 1];    /* NUL-terminated */
	uint8_t key_len;
	uint64_t size;
	bool has_meta, damaged;
	uint32_t mode, uid, gid;
	int64_t mtime_ns, atime_ns;
	uint64_t ino, lut_ms;
	uint16_t generation;
	uint32_t void_time;
};

/* An answer, decoded and checked; entries with list_msg_entry_next. */
struct list_msg_answer {
	uint16_t n;
	bool done;
	const uint8_t *entries;
	size_t entries_len;
	size_t pos;
};

static inline bool
list_msg_mask_has(const uint8_t *mask, unsigned p)
{
	return (mask[p / 8] >> (p % 8)) & 1;
}

static inline void
list_msg_mask_add(uint8_t *mask, unsigned p)
{
	mask[p / 8] |= (uint8_t)(1u << (p % 8));
}

/* Bytes written, -EINVAL (a value the decoder refuses), -EMSGSIZE. */
int list_msg_encode_request(uint8_t *buf, size_t cap, const struct list_msg_request *r);
/* 0 or -EBADMSG (as set_msg_decode: every field checked, nothing left over). */
int list_msg_decode_request(const uint8_t *buf, size_t len, struct list_msg_request *r);
/* The answer's header (n entries to follow): bytes written or -EMSGSIZE. */
int list_msg_encode_answer_header(uint8_t *buf, size_t cap, uint16_t n, bool done);
/* One entry: bytes written, -EINVAL, -EMSGSIZE. */
int list_msg_encode_entry(uint8_t *buf, size_t cap, const struct list_msg_entry *e);
/* 0 or -EBADMSG: a length out of range, a digest not in its partition, a
 * key with NUL, a bad flag, bytes missing or left over. */
int list_msg_decode_answer(const uint8_t *buf, size_t len, struct list_msg_answer *a);
/* The next entry of a decoded answer: true and *e filled, false at the end. */
bool list_msg_entry_next(struct list_msg_answer *a, struct list_msg_entry *e);

#endif
