/*
 * set_msg.h - the bodies of the rpc operations that keep a namespace's
 * sets the same on every node (docs/cluster.md, "Sets and listings").
 *
 * One format for all of them: a header naming the namespace and the
 * operation's kind, then entries, each one set's state as its sender
 * knows it (name, live or removed, the last-update time of that state,
 * its directory metadata).  A merge message carries up to
 * SET_MSG_ENTRIES_MAX entries (a whole set table takes several), a check
 * message exactly one.
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

#endif
