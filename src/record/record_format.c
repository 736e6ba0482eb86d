/*
 * record_format.c - the flat on-storage record format (layout in record.h,
 * rationale in docs/storage-format.md).
 *
 * Encoding runs once per write on a 1M records/s path: one pass over the
 * bins validates them and computes the end offset, a second pass copies
 * fields with memcpy, and one CRC32C pass covers everything up to and
 * including the end mark.  Nothing is allocated.
 *
 * Decoding reads bytes that may be torn, overwritten or hostile (it is
 * fuzzed), so it trusts no length: every read is bounded by the end offset
 * E, which itself was bounded by the size the caller says is readable.  The
 * format is canonical (minimal size, zero reserved fields and padding, the
 * header and meta checks matching their bytes), so decode followed by
 * encode reproduces a version 2 input byte for byte (a version 1 input
 * comes out as version 2), and every single-byte change to a record is
 * rejected: bytes before E+4 by the CRC, the CRC by itself, the padding by
 * the zero check.
 *
 * Version 2 adds two checks of parts of the record to the CRC of the whole:
 * the header check (CRC32C of header bytes [0, 60), at 60) and the meta
 * check (CRC32C of set, key and POSIX meta, inside the meta).  When the
 * bins are damaged, the header still says which record and which version
 * of it this copy was, and the meta what stat should show.  Rejected: the
 * header check also covering set, key and meta (one CRC fewer, but damage
 * there would then leave the copy unidentified; set and key are proven by
 * the digest anyway).
 *
 * Rejected: a varint encoding of lengths (smaller by a few bytes per record
 * but needs a parse to find the bins; records are rounded to 16 bytes
 * anyway); a CRC per bin (one pass over the record is cheaper and a record
 * is read whole).
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "../base/bytes.h"
#include "../base/crc32c.h"
#include "../base/error.h"
#include "record.h"

/* Header field offsets; the table in record.h is the reference. */
#define OFF_MAGIC        0
#define OFF_SIZE         4
#define OFF_VERSION      8
#define OFF_FLAGS        9
#define OFF_GENERATION  10
#define OFF_DIGEST      12
#define OFF_LAST_UPDATE 32
#define OFF_VOID_TIME   40
#define OFF_TTL         44
#define OFF_SET_LEN     48
#define OFF_KEY_TYPE    49
#define OFF_KEY_LEN     50
#define OFF_N_BINS      52
#define OFF_MARK        54 /* the copy's regain mark (was reserved, 0) */
#define OFF_END         56
#define OFF_HEADER_CRC  60 /* version 1: reserved, 0 */

/* POSIX meta: mode, uid, gid, meta check (v1: reserved), mtime_ns;
 * version 2 adds atime_ns and ino. */
#define META_SIZE_V1 24
#define META_SIZE    40
#define META_OFF_CHECK 12
#define TRAILER_SIZE  8 /* end mark + CRC32C */
#define KEY_TYPE_MAX  DIGEST_KEY_TYPE_BLOB
/* Smallest bin: name length, 1-byte name, type, empty string's length. */
#define BIN_MIN_SIZE  7

_Static_assert(RECORD_FLAT_MIN_SIZE ==
    ((RECORD_FLAT_HEADER_SIZE + TRAILER_SIZE + RBLOCK_SIZE - 1) & ~(RBLOCK_SIZE - 1)),
    "minimum record is an empty header plus the trailer, rounded to an rblock");
_Static_assert(OFF_HEADER_CRC + 4 == RECORD_FLAT_HEADER_SIZE, "header layout");

/* The header check: CRC32C of everything in the header before it. */
static inline uint32_t
header_crc(const uint8_t *src)
{
	return crc32c(0, src, OFF_HEADER_CRC);
}

/*
 * The meta check of version 2: CRC32C of set name, key and the meta bytes
 * other than the check itself, all of which precede the bins, so stat can
 * trust them when only the bins (the file content) are damaged.
 */
static inline uint32_t
meta_crc(const uint8_t *src, size_t meta_pos)
{
	uint32_t crc = crc32c(0, src + RECORD_FLAT_HEADER_SIZE,
	    meta_pos - RECORD_FLAT_HEADER_SIZE + META_OFF_CHECK);

	return crc32c(crc, src + meta_pos + META_OFF_CHECK + 4, META_SIZE - META_OFF_CHECK - 4);
}

static inline uint64_t
round_to_rblock(uint64_t n)
{
	return (n + RBLOCK_SIZE - 1) & ~(uint64_t)(RBLOCK_SIZE - 1);
}

/* Stored bytes of one bin's value; unknown types are caught by the callers. */
static inline uint64_t
bin_value_size(const struct bin *b)
{
	if (b->type == BIN_STRING || b->type == BIN_BLOB)
		return 4 + (uint64_t)b->v.bytes.len;
	return 8;
}

/* Offset of the end mark: header, set, key, meta and bins. */
static uint64_t
record_flat_end(const struct record *r)
{
	uint64_t end = RECORD_FLAT_HEADER_SIZE + (uint64_t)r->set_len + r->key_len;

	if (r->flags & RECORD_F_HAS_META)
		end += META_SIZE;
	for (uint16_t i = 0; i < r->n_bins; i++)
		end += 2 + (uint64_t)r->bins[i].name_len + bin_value_size(&r->bins[i]);
	return end;
}

size_t
record_flat_size(const struct record *r)
{
	return (size_t)round_to_rblock(record_flat_end(r) + TRAILER_SIZE);
}

/*
 * The format's limits, the mirror of what the decoder accepts, so anything
 * decoded can be encoded again.  Name character rules (no '/', no '.') are
 * the callers' business: they are checked where names enter the system.
 */
static int
record_flat_limits(const struct record *r, uint64_t *end_out)
{
	uint64_t end = RECORD_FLAT_HEADER_SIZE + (uint64_t)r->set_len + r->key_len;

	if ((r->flags & ~RECORD_F_KNOWN) != 0 || r->generation == 0)
		return -EINVAL;
	if (r->set_len > RECORD_SET_MAX || (r->set_len > 0 && r->set == NULL))
		return -EINVAL;
	if (r->key_len > RECORD_KEY_MAX || (r->key_len > 0 && r->key == NULL) ||
	    r->key_type > KEY_TYPE_MAX)
		return -EINVAL;
	if (r->ttl < RECORD_TTL_NEVER)
		return -EINVAL;
	if (r->flags & RECORD_F_HAS_META) {
		if (!record_mode_valid(r->meta.mode))
			return -EINVAL;
		end += META_SIZE;
	}
	if (r->n_bins > RECORD_BINS_MAX || (r->n_bins > 0 && r->bins == NULL))
		return -EINVAL;
	if ((r->flags & RECORD_F_TOMBSTONE) && r->n_bins != 0)
		return -EINVAL;
	for (uint16_t i = 0; i < r->n_bins; i++) {
		const struct bin *b = &r->bins[i];

		if (b->name_len == 0 || b->name_len > RECORD_BIN_NAME_MAX ||
		    memchr(b->name, '\0', b->name_len) != NULL)
			return -EINVAL;
		if (b->type < BIN_INTEGER || b->type > BIN_BLOB)
			return -EINVAL;
		if ((b->type == BIN_STRING || b->type == BIN_BLOB) &&
		    b->v.bytes.len > 0 && b->v.bytes.data == NULL)
			return -EINVAL;
		end += 2 + (uint64_t)b->name_len + bin_value_size(b);
	}
	/* Sizes and offsets are stored as u32; encode returns a long. */
	if (round_to_rblock(end + TRAILER_SIZE) > UINT32_MAX ||
	    round_to_rblock(end + TRAILER_SIZE) > LONG_MAX)
		return -EINVAL;
	*end_out = end;
	return 0;
}

long
record_flat_encode(const struct record *r, uint8_t *dst, size_t dst_size)
{
	return record_flat_encode_mark(r, r->mark, dst, dst_size);
}

long
record_flat_encode_mark(const struct record *r, uint16_t mark, uint8_t *dst, size_t dst_size)
{
	uint64_t end, size;
	uint8_t *p;
	int err;

	err = record_flat_limits(r, &end);
	if (err != 0)
		return err;
	size = round_to_rblock(end + TRAILER_SIZE);
	if (size > dst_size)
		return -EINVAL;

	le_put32(dst + OFF_MAGIC, RECORD_FLAT_MAGIC);
	le_put32(dst + OFF_SIZE, (uint32_t)size);
	dst[OFF_VERSION] = RECORD_FLAT_VERSION;
	dst[OFF_FLAGS] = r->flags;
	le_put16(dst + OFF_GENERATION, r->generation);
	memcpy(dst + OFF_DIGEST, r->digest.bytes, DIGEST_SIZE);
	le_put64(dst + OFF_LAST_UPDATE, r->last_update_ms);
	le_put32(dst + OFF_VOID_TIME, r->void_time);
	le_put32(dst + OFF_TTL, (uint32_t)r->ttl);
	dst[OFF_SET_LEN] = r->set_len;
	dst[OFF_KEY_TYPE] = r->key_type;
	le_put16(dst + OFF_KEY_LEN, r->key_len);
	le_put16(dst + OFF_N_BINS, r->n_bins);
	le_put16(dst + OFF_MARK, mark);
	le_put32(dst + OFF_END, (uint32_t)end);
	le_put32(dst + OFF_HEADER_CRC, header_crc(dst));

	p = dst + RECORD_FLAT_HEADER_SIZE;
	if (r->set_len > 0)
		memcpy(p, r->set, r->set_len);
	p += r->set_len;
	if (r->key_len > 0)
		memcpy(p, r->key, r->key_len);
	p += r->key_len;
	if (r->flags & RECORD_F_HAS_META) {
		le_put32(p, r->meta.mode);
		le_put32(p + 4, r->meta.uid);
		le_put32(p + 8, r->meta.gid);
		le_put64(p + 16, (uint64_t)r->meta.mtime_ns);
		le_put64(p + 24, (uint64_t)r->meta.atime_ns);
		le_put64(p + 32, r->meta.ino);
		le_put32(p + META_OFF_CHECK, meta_crc(dst, (size_t)(p - dst)));
		p += META_SIZE;
	}
	for (uint16_t i = 0; i < r->n_bins; i++) {
		const struct bin *b = &r->bins[i];

		*p++ = b->name_len;
		memcpy(p, b->name, b->name_len);
		p += b->name_len;
		*p++ = b->type;
		switch (b->type) {
		case BIN_INTEGER:
			le_put64(p, (uint64_t)b->v.integer);
			p += 8;
			break;
		case BIN_DOUBLE: {
			uint64_t bits;

			/* Bit copy: NaN payloads and -0.0 survive the trip. */
			memcpy(&bits, &b->v.dbl, 8);
			le_put64(p, bits);
			p += 8;
			break;
		}
		default: /* BIN_STRING, BIN_BLOB: limits() allowed nothing else */
			le_put32(p, b->v.bytes.len);
			p += 4;
			if (b->v.bytes.len > 0)
				memcpy(p, b->v.bytes.data, b->v.bytes.len);
			p += b->v.bytes.len;
			break;
		}
	}

	le_put32(dst + end, RECORD_FLAT_END_MARK);
	le_put32(dst + end + 4, crc32c(0, dst, end + 4));
	memset(dst + end + TRAILER_SIZE, 0, size - end - TRAILER_SIZE);
	return (long)size;
}

int
record_flat_check(const uint8_t *src, size_t avail, uint32_t *size_out)
{
	uint32_t size, end;

	if (avail < RECORD_FLAT_MIN_SIZE)
		return RECFS_EFORMAT;
	if (le_get32(src + OFF_MAGIC) != RECORD_FLAT_MAGIC ||
	    src[OFF_VERSION] < RECORD_FLAT_VERSION_MIN || src[OFF_VERSION] > RECORD_FLAT_VERSION)
		return RECFS_EFORMAT;
	size = le_get32(src + OFF_SIZE);
	end = le_get32(src + OFF_END);
	if (size % RBLOCK_SIZE != 0 || size < RECORD_FLAT_MIN_SIZE || size > avail)
		return RECFS_EFORMAT;
	/*
	 * The size must be exactly the one the end offset implies: a scan
	 * steps from record to record by size, and slack would let a torn
	 * record's tail pass for padding.
	 */
	if (end < RECORD_FLAT_HEADER_SIZE ||
	    round_to_rblock((uint64_t)end + TRAILER_SIZE) != size)
		return RECFS_EFORMAT;
	*size_out = size;
	return 0;
}

int
record_flat_verify(const uint8_t *src, uint32_t size)
{
	uint32_t end = le_get32(src + OFF_END);
	uint32_t crc;

	/* Re-bound E so a caller that skipped the check cannot make us overrun. */
	if (size < RECORD_FLAT_MIN_SIZE || end < RECORD_FLAT_HEADER_SIZE ||
	    (uint64_t)end + TRAILER_SIZE > size)
		return RECFS_ECHECKSUM;
	if (src[OFF_VERSION] >= 2 && le_get32(src + OFF_HEADER_CRC) != header_crc(src))
		return RECFS_ECHECKSUM;
	if (le_get32(src + end) != RECORD_FLAT_END_MARK)
		return RECFS_ECHECKSUM;
	crc = crc32c(0, src, (size_t)end + 4);
	if (le_get32(src + end + 4) != crc)
		return RECFS_ECHECKSUM;
	/* The padding is outside the CRC; it must still be what we wrote. */
	for (uint32_t i = end + TRAILER_SIZE; i < size; i++)
		if (src[i] != 0)
			return RECFS_ECHECKSUM;
	return 0;
}

static int record_flat_parse(const uint8_t *src, uint32_t end, struct record *r);

/* The header's own field rules, shared by the parser and the header check. */
static int
header_fields_check(uint8_t flags, uint16_t generation, uint8_t set_len, uint8_t key_type,
    uint16_t key_len, int32_t ttl, uint16_t n_bins)
{
	if ((flags & ~RECORD_F_KNOWN) != 0 || generation == 0)
		return RECFS_EFORMAT;
	if (set_len > RECORD_SET_MAX || key_len > RECORD_KEY_MAX ||
	    key_type > KEY_TYPE_MAX || ttl < RECORD_TTL_NEVER)
		return RECFS_EFORMAT;
	if (n_bins > RECORD_BINS_MAX || ((flags & RECORD_F_TOMBSTONE) && n_bins != 0))
		return RECFS_EFORMAT;
	return 0;
}

int
record_flat_header_check(const uint8_t *src, size_t avail, struct record_flat_header *h)
{
	uint32_t size;
	int err;

	err = record_flat_check(src, avail, &size);
	if (err != 0)
		return err;
	if (src[OFF_VERSION] >= 2 && le_get32(src + OFF_HEADER_CRC) != header_crc(src))
		return RECFS_ECHECKSUM;
	memset(h, 0, sizeof(*h));
	memcpy(h->digest.bytes, src + OFF_DIGEST, DIGEST_SIZE);
	h->version = src[OFF_VERSION];
	h->flags = src[OFF_FLAGS];
	h->key_type = src[OFF_KEY_TYPE];
	h->set_len = src[OFF_SET_LEN];
	h->generation = le_get16(src + OFF_GENERATION);
	h->key_len = le_get16(src + OFF_KEY_LEN);
	h->n_bins = le_get16(src + OFF_N_BINS);
	h->last_update_ms = le_get64(src + OFF_LAST_UPDATE);
	h->void_time = le_get32(src + OFF_VOID_TIME);
	h->ttl = (int32_t)le_get32(src + OFF_TTL);
	h->size = size;
	h->end = le_get32(src + OFF_END);
	err = header_fields_check(h->flags, h->generation, h->set_len, h->key_type, h->key_len,
	    h->ttl, h->n_bins);
	h->mark = le_get16(src + OFF_MARK);
	if (err != 0)
		return err;
	return h->version >= 2 ? 0 : RECFS_EVERSION;
}

void
record_flat_set_mark(uint8_t *flat, uint16_t mark)
{
	uint32_t end = le_get32(flat + OFF_END);

	le_put16(flat + OFF_MARK, mark);
	if (flat[OFF_VERSION] >= 2)
		le_put32(flat + OFF_HEADER_CRC, header_crc(flat));
	le_put32(flat + end + 4, crc32c(0, flat, (size_t)end + 4));
}

int
record_flat_accept(const uint8_t *flat, uint32_t size, uint32_t max, struct record *r)
{
	int rc;

	if (size < RECORD_FLAT_MIN_SIZE || le_get32(flat + 4) != size)
		return -EBADMSG;
	if (size > max)
		return -EFBIG;
	rc = record_flat_decode(flat, size, r);
	return rc == 0 || rc == -ENOMEM ? rc : -EBADMSG;
}

int
record_flat_decode(const uint8_t *src, size_t avail, struct record *r)
{
	uint32_t size;
	int err;

	/* r is overwritten, not released: it may hold garbage on entry. */
	record_init(r);
	err = record_flat_check(src, avail, &size);
	if (err == 0)
		err = record_flat_verify(src, size);
	if (err == 0)
		err = record_flat_parse(src, le_get32(src + OFF_END), r);
	if (err != 0)
		record_release(r);
	return err;
}

int
record_flat_decode_verified(const uint8_t *src, size_t avail, struct record *r)
{
	uint32_t size;
	int err;

	record_init(r);
	err = record_flat_check(src, avail, &size);
	if (err == 0)
		err = record_flat_parse(src, le_get32(src + OFF_END), r);
	if (err != 0)
		record_release(r);
	return err;
}

unsigned
record_flat_salvage(const uint8_t *src, const struct record_flat_header *h, struct record *r)
{
	size_t pos = RECORD_FLAT_HEADER_SIZE;
	unsigned parts = 0;
	struct digest d;

	record_init(r);
	r->digest = h->digest;
	r->generation = h->generation;
	r->flags = h->flags & (uint8_t)~RECORD_F_HAS_META;
	r->key_type = h->key_type;
	r->last_update_ms = h->last_update_ms;
	r->void_time = h->void_time;
	r->ttl = h->ttl;
	if ((size_t)h->set_len + h->key_len > h->end - pos)
		return 0;
	digest_compute_typed(&d, (const char *)src + pos, h->set_len, h->key_type,
	    src + pos + h->set_len, h->key_len);
	if (memcmp(d.bytes, h->digest.bytes, DIGEST_SIZE) != 0)
		return 0;
	r->set_len = h->set_len;
	r->set = h->set_len > 0 ? (const char *)src + pos : NULL;
	r->key_len = h->key_len;
	r->key = h->key_len > 0 ? (const char *)src + pos + h->set_len : NULL;
	parts |= RECORD_SALVAGE_NAME;
	pos += (size_t)h->set_len + h->key_len;
	if ((h->flags & RECORD_F_HAS_META) && h->version >= 2 && META_SIZE <= h->end - pos &&
	    le_get32(src + pos + META_OFF_CHECK) == meta_crc(src, pos) &&
	    record_mode_valid(le_get32(src + pos))) {
		r->meta.mode = le_get32(src + pos);
		r->meta.uid = le_get32(src + pos + 4);
		r->meta.gid = le_get32(src + pos + 8);
		r->meta.mtime_ns = (int64_t)le_get64(src + pos + 16);
		r->meta.atime_ns = (int64_t)le_get64(src + pos + 24);
		r->meta.ino = le_get64(src + pos + 32);
		r->flags |= RECORD_F_HAS_META;
		parts |= RECORD_SALVAGE_META;
	}
	return parts;
}

/*
 * Parse a record whose end offset E was bounded by check/verify.  Invariant:
 * pos <= end, so "len > end - pos" never wraps.
 */
static int
record_flat_parse(const uint8_t *src, uint32_t end, struct record *r)
{
	size_t pos = RECORD_FLAT_HEADER_SIZE;
	uint8_t version = src[OFF_VERSION];
	size_t meta_size = version >= 2 ? META_SIZE : META_SIZE_V1;
	uint16_t n_bins;
	int err;

	r->flags = src[OFF_FLAGS];
	r->generation = le_get16(src + OFF_GENERATION);
	memcpy(r->digest.bytes, src + OFF_DIGEST, DIGEST_SIZE);
	r->last_update_ms = le_get64(src + OFF_LAST_UPDATE);
	r->void_time = le_get32(src + OFF_VOID_TIME);
	r->ttl = (int32_t)le_get32(src + OFF_TTL);
	r->set_len = src[OFF_SET_LEN];
	r->key_type = src[OFF_KEY_TYPE];
	r->key_len = le_get16(src + OFF_KEY_LEN);
	/* r->n_bins counts bins parsed so far; it stays 0 until one is whole. */
	n_bins = le_get16(src + OFF_N_BINS);

	err = header_fields_check(r->flags, r->generation, r->set_len, r->key_type, r->key_len,
	    r->ttl, n_bins);
	if (err != 0)
		return err;
	r->mark = le_get16(src + OFF_MARK);
	/* Version 2's header check is verified with the CRC; version 1 has a
	 * reserved field there. */
	if (version < 2 && le_get32(src + OFF_HEADER_CRC) != 0)
		return RECFS_EFORMAT;

	if ((size_t)r->set_len + r->key_len > end - pos)
		return RECFS_EFORMAT;
	r->set = r->set_len > 0 ? (const char *)src + pos : NULL;
	pos += r->set_len;
	r->key = r->key_len > 0 ? (const char *)src + pos : NULL;
	pos += r->key_len;

	if (r->flags & RECORD_F_HAS_META) {
		uint32_t check;

		if (meta_size > end - pos)
			return RECFS_EFORMAT;
		check = le_get32(src + pos + META_OFF_CHECK);
		r->meta.mode = le_get32(src + pos);
		r->meta.uid = le_get32(src + pos + 4);
		r->meta.gid = le_get32(src + pos + 8);
		r->meta.mtime_ns = (int64_t)le_get64(src + pos + 16);
		if (version >= 2) {
			r->meta.atime_ns = (int64_t)le_get64(src + pos + 24);
			r->meta.ino = le_get64(src + pos + 32);
		}
		if (!record_mode_valid(r->meta.mode) ||
		    check != (version >= 2 ? meta_crc(src, pos) : 0))
			return RECFS_EFORMAT;
		pos += meta_size;
	}

	/* Refuse a bin count the bytes cannot hold before allocating for it. */
	if ((size_t)n_bins * BIN_MIN_SIZE > end - pos)
		return RECFS_EFORMAT;
	err = record_bins_reserve(r, n_bins);
	if (err != 0)
		return err;

	for (uint16_t i = 0; i < n_bins; i++) {
		struct bin *b = &r->bins[i];
		size_t name_len;
		uint32_t len;

		if (end - pos < 2)
			return RECFS_EFORMAT;
		name_len = src[pos++];
		if (name_len == 0 || name_len > RECORD_BIN_NAME_MAX || name_len + 1 > end - pos)
			return RECFS_EFORMAT;
		if (memchr(src + pos, '\0', name_len) != NULL)
			return RECFS_EFORMAT;
		memcpy(b->name, src + pos, name_len);
		b->name[name_len] = '\0';
		b->name_len = (uint8_t)name_len;
		pos += name_len;
		b->type = src[pos++];
		switch (b->type) {
		case BIN_INTEGER:
		case BIN_DOUBLE:
			if (end - pos < 8)
				return RECFS_EFORMAT;
			if (b->type == BIN_INTEGER) {
				b->v.integer = (int64_t)le_get64(src + pos);
			} else {
				uint64_t bits = le_get64(src + pos);

				memcpy(&b->v.dbl, &bits, 8);
			}
			pos += 8;
			break;
		case BIN_STRING:
		case BIN_BLOB:
			if (end - pos < 4)
				return RECFS_EFORMAT;
			len = le_get32(src + pos);
			pos += 4;
			if (len > end - pos)
				return RECFS_EFORMAT;
			b->v.bytes.data = len > 0 ? src + pos : NULL;
			b->v.bytes.len = len;
			pos += len;
			break;
		default:
			return RECFS_EFORMAT;
		}
		r->n_bins = i + 1;
	}
	/* Bins must fill the body exactly: no trailing bytes hide before E. */
	if (pos != end)
		return RECFS_EFORMAT;
	return 0;
}
