/*
 * record.h - the record model and its flat on-storage format.
 *
 * A record is a digest plus metadata (generation, last-update time, void
 * time, TTL setting, set, key, POSIX metadata) and up to 32767 typed bins.
 * The file bin (named by the namespace's file-bin option) holds the file
 * content seen through the mount; the other bins are the user.* xattrs.
 *
 * Flat format (all integers little-endian; full description with rationale
 * in docs/storage-format.md):
 *
 *   off  size  field
 *     0     4  magic RECORD_FLAT_MAGIC
 *     4     4  size: bytes this record occupies on storage (multiple of 16)
 *     8     1  format version (RECORD_FLAT_VERSION)
 *     9     1  flags (RECORD_F_*)
 *    10     2  generation (never 0)
 *    12    20  digest
 *    32     8  last-update time, ms since 2010-01-01 (RECFS_EPOCH)
 *    40     4  void time, s since RECFS_EPOCH, 0 = never expires
 *    44     4  ttl setting (int32: 0 namespace default, -1 never, >0 seconds)
 *    48     1  set name length (0 = null set, else 1..63)
 *    49     1  key type (3 = string)
 *    50     2  key length (0..255)
 *    52     2  number of bins (0..32767)
 *    54     2  regain mark: 0, or the mark of the partition's regain this
 *              copy was stored under (docs/cluster.md, Dropping a copy)
 *    56     4  end offset E: where the end mark starts (E >= 64)
 *    60     4  header check: CRC32C of bytes [0, 60) (version 1: reserved, 0)
 *    64        set name bytes, key bytes,
 *              POSIX meta if RECORD_F_HAS_META (40 bytes: mode u32, uid u32,
 *              gid u32, meta check u32, mtime i64, atime i64, ino u64; the
 *              meta check is the CRC32C of set, key and the meta's other 36
 *              bytes; version 1: 24 bytes, reserved u32 = 0 for the meta
 *              check, no atime, no ino),
 *              bins: name length u8 (1..15), name, type u8, value
 *                    (INTEGER/DOUBLE: 8 bytes; STRING/BLOB: u32 length + bytes)
 *     E     4  end mark RECORD_FLAT_END_MARK
 *   E+4     4  CRC32C of bytes [0, E+4)
 *   E+8        zero padding up to size
 *
 * A reader trusts nothing: the checker rejects bad magic, version, size
 * bounds and end offsets; the decoder parses every field against E and the
 * verifier checks header check, end mark and CRC, so a torn or overwritten
 * record is detected, never returned.  The header check is separate from
 * the whole record's CRC so that a copy whose body is damaged still says
 * which record (digest) and which version of it (generation, last-update
 * time) it was: record_flat_header_check().  Writers always write the
 * current version (2); version 1 records are still read.
 */
#ifndef RECFS_RECORD_RECORD_H
#define RECFS_RECORD_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/digest.h"

#define RECORD_KEY_MAX 255
#define RECORD_SET_MAX 63
#define RECORD_BIN_NAME_MAX 15
/* The bin of a large file's head holding its chunk map (docs/storage-format.md).
 * Bin names starting with '/' are internal: never an xattr. */
#define RECORD_BIN_CHUNK_MAP "/chunks"
#define RECORD_BINS_MAX 32767
#define RECORD_BINS_INLINE 4

#define RECORD_FLAT_MAGIC 0x31435246u    /* "FRC1" */
#define RECORD_FLAT_END_MARK 0x444e4552u /* "REND" */
#define RECORD_FLAT_VERSION 2     /* what the encoder writes */
#define RECORD_FLAT_VERSION_MIN 1 /* the oldest the decoder reads */
#define RECORD_FLAT_HEADER_SIZE 64
#define RECORD_FLAT_MIN_SIZE 80          /* header + end mark + crc, rounded to 16 */
#define RBLOCK_SIZE 16
/* The latest last-update time the index keeps (40 bits of ms since
 * RECFS_EPOCH: until 2044). */
#define RECORD_LAST_UPDATE_MAX ((1ULL << 40) - 1)

/* Record flags (stored). */
#define RECORD_F_TOMBSTONE  0x01 /* durable delete marker: no bins */
#define RECORD_F_SET_MARKER 0x02 /* keeps a set alive while it is empty */
#define RECORD_F_HAS_META   0x04 /* POSIX meta present */
#define RECORD_F_KNOWN      0x07

/* TTL settings (Aerospike conventions). */
#define RECORD_TTL_DEFAULT 0
#define RECORD_TTL_NEVER (-1)

enum bin_type {
	BIN_INTEGER = 1,
	BIN_DOUBLE = 2,
	BIN_STRING = 3,
	BIN_BLOB = 4,
};

struct bin {
	char name[RECORD_BIN_NAME_MAX + 1]; /* NUL-terminated */
	uint8_t name_len;
	uint8_t type;                       /* enum bin_type */
	union {
		int64_t integer;
		double dbl;
		struct {
			const uint8_t *data;        /* not owned */
			uint32_t len;
		} bytes;
	} v;
};

struct posix_meta {
	uint32_t mode;      /* permission bits and type: record_mode_valid */
	uint32_t uid;
	uint32_t gid;
	int64_t mtime_ns;   /* ns since the Unix epoch */
	int64_t atime_ns;   /* ns since the Unix epoch; 0 = never set explicitly (v1: 0) */
	uint64_t ino;       /* the file's inode number kept with it; 0 = none (v1: 0) */
};

struct record {
	struct digest digest;
	uint16_t generation;
	uint8_t flags;            /* RECORD_F_* */
	uint8_t key_type;
	uint64_t last_update_ms;
	uint32_t void_time;
	int32_t ttl;
	const char *set;          /* not NUL-terminated; not owned */
	uint8_t set_len;
	const char *key;          /* not NUL-terminated; not owned */
	uint16_t key_len;
	struct posix_meta meta;   /* valid if flags & RECORD_F_HAS_META */
	uint16_t n_bins;
	uint16_t mark;            /* the stored copy's regain mark (0: none); the
	                           * storage engines set it, whatever it says here */
	struct bin *bins;         /* bins_inline or heap (record_release frees) */
	struct bin bins_inline[RECORD_BINS_INLINE];
};

/*
 * Zero a record and point bins at the inline array.  Do not copy a struct
 * record by assignment: the copy's bins would still point at the original's
 * bins_inline, and releasing either would go wrong.
 */
void record_init(struct record *r);
/* Free what record_flat_decode or record_bins_reserve allocated. */
void record_release(struct record *r);
/*
 * Make room for n bins (keeps existing ones).  0, -ENOMEM, or -EINVAL if
 * n > RECORD_BINS_MAX.
 */
int record_bins_reserve(struct record *r, size_t n);
/* The bin named name, or NULL. */
const struct bin *record_bin_find(const struct record *r, const char *name, size_t name_len);

/* Name rules: 0, -ENAMETOOLONG or -EINVAL. */
int record_key_check(const char *key, size_t len);
/*
 * Internal keys: a key that starts with '/' can never be a file name (a
 * name holds no '/'), so the transaction layer keeps its own records under
 * such keys (entries of directories inside sets, chunks of large files;
 * docs/storage-format.md, "Keys").  They are hidden from the listing of a
 * set's top level.  record_stored_key_check accepts a user key or a
 * well-formed internal one (a directory entry "/d" + 16 hex + "/" + a name,
 * or a chunk key): what a stored record may carry.
 */
bool record_key_is_internal(const char *key, size_t len);
/* A large file's chunk ("/k" + 16 hex + "/" + 8 hex + "." + 8 hex: 36 bytes;
 * docs/storage-format.md, Large files).  Cheap: the prefix and length. */
static inline bool
record_key_is_chunk(const char *key, size_t len)
{
	return len == 36 && key[0] == '/' && key[1] == 'k';
}
int record_stored_key_check(const char *key, size_t len);
/*
 * The metadata's mode: permission bits (07777) and a file type, 0 for a
 * regular file (every record written before types existed), or a directory
 * or symbolic link inside a set.
 */
#define RECORD_MODE_PERM_MASK 07777u
#define RECORD_MODE_TYPE_MASK 0170000u
#define RECORD_MODE_DIR       0040000u
#define RECORD_MODE_LINK      0120000u
bool record_mode_valid(uint32_t mode);
int record_set_name_check(const char *set, size_t len);
int record_bin_name_check(const char *name, size_t len);

/* Bytes the record occupies on storage (multiple of 16). */
size_t record_flat_size(const struct record *r);

/*
 * Encode r into dst (dst_size >= record_flat_size(r)).  Returns the size
 * written, or -EINVAL for a record that breaks the model's limits (lengths,
 * counts, types, flags, generation 0, an invalid mode, ttl < -1, a
 * tombstone with bins) or a dst_size that is too small.  Character rules
 * on names are not checked here: see record_*_check().
 * Padding bytes are zeroed.
 */
long record_flat_encode(const struct record *r, uint8_t *dst, size_t dst_size);
/* The same with the regain mark given (record_flat_encode writes r->mark). */
long record_flat_encode_mark(const struct record *r, uint16_t mark, uint8_t *dst, size_t dst_size);
/*
 * Give a whole, verified record (flat, as its size field says) the regain
 * mark mark: the field, its header check (version 2) and its CRC rewritten.
 */
void record_flat_set_mark(uint8_t *flat, uint16_t mark);

/*
 * Cheap structural check of a candidate record at src with avail bytes
 * readable: magic, version, size (multiple of 16, >= minimum, <= avail)
 * and end offset.  Stores the size in *size_out.  Used by scans.
 * Returns 0 or RECFS_EFORMAT.
 */
int record_flat_check(const uint8_t *src, size_t avail, uint32_t *size_out);

/*
 * Header check (version 2), end mark, CRC32C and zero padding of a record
 * that passed record_flat_check.  0 or RECFS_ECHECKSUM.
 */
int record_flat_verify(const uint8_t *src, uint32_t size);

/* What the fixed header of a stored record says (record_flat_header_check). */
struct record_flat_header {
	struct digest digest;
	uint8_t version;
	uint8_t flags;            /* RECORD_F_* */
	uint8_t key_type;
	uint8_t set_len;
	uint16_t generation;
	uint16_t key_len;
	uint16_t n_bins;
	uint64_t last_update_ms;
	uint32_t void_time;
	int32_t ttl;
	uint32_t size;            /* bytes on storage */
	uint32_t end;             /* end offset E */
	uint16_t mark;            /* regain mark */
};

/*
 * The header alone: record_flat_check, then the header check of version 2
 * and the header's own field rules (flags, generation, lengths, ttl), so a
 * copy whose body is damaged still says which record and which version of
 * it it is.  Fills *h on 0.  Returns 0, RECFS_EFORMAT (not a record start,
 * or a field out of range), RECFS_ECHECKSUM (the header check does not
 * match: the header is damaged) or RECFS_EVERSION (a version 1 record,
 * which has no header check of its own: *h is filled but unproven).
 */
int record_flat_header_check(const uint8_t *src, size_t avail, struct record_flat_header *h);

/*
 * Full decode: check + verify + parse.  Strings and bin values point into
 * src, which must outlive r.  Call record_release(r) afterwards.
 * r need not be initialised (it is overwritten, not released); on failure
 * it is left empty and released.
 * Returns 0, RECFS_EFORMAT, RECFS_ECHECKSUM or -ENOMEM.
 */
int record_flat_decode(const uint8_t *src, size_t avail, struct record *r);

/*
 * The same for bytes whose CRC the caller verified a moment ago (the storage
 * engines verify every read): everything but the CRC pass.
 */
int record_flat_decode_verified(const uint8_t *src, size_t avail, struct record *r);

/*
 * Bytes that arrive as one encoded record (a replica write, migration):
 * exactly one whole record of size bytes, as its own size field says, that
 * record_flat_decode accepts, and no larger than max.  0 with r decoded
 * (record_release(r) afterwards), -EBADMSG for anything malformed, -EFBIG
 * past max, -ENOMEM.
 */
int record_flat_accept(const uint8_t *flat, uint32_t size, uint32_t max, struct record *r);

/* What record_flat_salvage could prove besides the header. */
#define RECORD_SALVAGE_NAME 0x1 /* set and key: their digest is the header's */
#define RECORD_SALVAGE_META 0x2 /* POSIX meta: the meta check matches */

/*
 * A copy whose header passed record_flat_header_check (h) but whose body
 * did not verify: fill r with what can still be trusted.  Header fields
 * always (flags without RECORD_F_HAS_META unless the meta is proven, no
 * bins); set and key (pointing into src) when the digest computed from
 * them is the header's; the POSIX meta when the meta check matches.
 * Returns the RECORD_SALVAGE_* bits proven.  Reads only [0, h->end).
 */
unsigned record_flat_salvage(const uint8_t *src, const struct record_flat_header *h,
    struct record *r);

/*
 * A version of a record, as the conflict rule sees it: what a copy's
 * header says (generation, last-update time) and whether its body is
 * intact.
 */
struct record_version {
	uint64_t last_update_ms;
	uint16_t generation;
	bool damaged;             /* the copy's body is damaged (cold start) */
};

/*
 * The conflict rule, the one place it is decided: which of two versions of
 * a record wins (cold start of every engine, the namespace's apply of a
 * replica write or a migrated copy, recfs-check).  > 0: a wins, < 0: b
 * wins, 0: a tie (the caller keeps the version it already has).
 *
 *   1. the later last-update time wins;
 *   2. equal times: the higher generation, compared wrap-aware on 16 bits
 *      (a difference below 32768 counts as newer, so 2 beats 65535);
 *   3. equal both: an intact copy beats a damaged one (defrag left the
 *      same version behind intact);
 *   4. otherwise a tie.
 *
 * This is Aerospike's last-update-time conflict resolution (the policy its
 * replica writes always use), not its default for migrations, which puts a
 * directly compared generation first.  Why the time comes first here:
 * docs/storage-format.md, Cold start (a reclaimed tombstone restarts the
 * generation at 1).
 */
int record_version_cmp(const struct record_version *a, const struct record_version *b);

/* Is copy a (generation ga, last-update time la) newer than copy b, both
 * intact?  record_version_cmp > 0. */
static inline bool record_copy_is_newer(uint16_t ga, uint64_t la, uint16_t gb, uint64_t lb)
{
	struct record_version a = { .last_update_ms = la, .generation = ga };
	struct record_version b = { .last_update_ms = lb, .generation = gb };

	return record_version_cmp(&a, &b) > 0;
}

/* The rule above in words, for messages (recfs-check). */
#define RECORD_NEWEST_COPY_RULE \
	"the copy with the later last-update time, then the higher generation"

/* Header fields of a stored record without a full decode (for scans). */
static inline const struct digest *record_flat_digest(const uint8_t *src)
{
	return (const struct digest *)(src + 12);
}
static inline uint64_t record_flat_last_update(const uint8_t *src)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | src[32 + i];
	return v;
}
static inline uint16_t record_flat_mark(const uint8_t *src)
{
	return (uint16_t)(src[54] | src[55] << 8);
}

#endif
