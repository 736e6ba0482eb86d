/*
 * record.c - the in-memory record: bins storage and name rules (see
 * record.h; the flat format lives in record_format.c).
 *
 * Most records carry the file bin and a few xattrs, so RECORD_BINS_INLINE
 * bins sit inside struct record and decoding them allocates nothing.  Larger
 * records move to a heap array whose capacity is kept in a small header just
 * before the first bin, since struct record has no room for it.
 * Rejected: malloc_usable_size() as the capacity (glibc-only, and it lies
 * under some allocators); a bins capacity field (changes a struct layout that
 * other modules already embed).
 */
#include <errno.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "../base/bytes.h"
#include "record.h"

/* Sits in front of a heap bins array; sized to keep the bins aligned. */
struct bins_heap {
	alignas(max_align_t) size_t capacity;
};

static struct bins_heap *
bins_heap_of(struct bin *bins)
{
	return (struct bins_heap *)((char *)bins - sizeof(struct bins_heap));
}

void
record_init(struct record *r)
{
	memset(r, 0, sizeof(*r));
	r->bins = r->bins_inline;
}

void
record_release(struct record *r)
{
	if (r->bins != NULL && r->bins != r->bins_inline)
		free(bins_heap_of(r->bins));
	r->bins = r->bins_inline;
	r->n_bins = 0;
}

int
record_bins_reserve(struct record *r, size_t n)
{
	size_t capacity, want;
	struct bins_heap *h;
	struct bin *bins;

	if (n > RECORD_BINS_MAX)
		return -EINVAL;
	if (r->bins == NULL) /* zeroed rather than initialised */
		r->bins = r->bins_inline;
	if (r->bins == r->bins_inline)
		capacity = RECORD_BINS_INLINE;
	else
		capacity = bins_heap_of(r->bins)->capacity;
	if (n <= capacity)
		return 0;
	/* Doubling keeps adding bins one at a time linear overall. */
	want = capacity * 2 > n ? capacity * 2 : n;
	if (want > RECORD_BINS_MAX)
		want = RECORD_BINS_MAX;
	h = malloc(sizeof(*h) + want * sizeof(struct bin));
	if (h == NULL)
		return -ENOMEM;
	h->capacity = want;
	bins = (struct bin *)(h + 1);
	memcpy(bins, r->bins, r->n_bins * sizeof(struct bin));
	if (r->bins != r->bins_inline)
		free(bins_heap_of(r->bins));
	r->bins = bins;
	return 0;
}

const struct bin *
record_bin_find(const struct record *r, const char *name, size_t name_len)
{
	/* Linear: bins are few, and a name is at most 15 bytes. */
	for (uint16_t i = 0; i < r->n_bins; i++) {
		const struct bin *b = &r->bins[i];

		if (b->name_len == name_len && memcmp(b->name, name, name_len) == 0)
			return b;
	}
	return NULL;
}

/*
 * Keys and sets become path components under the mount, so they obey the
 * kernel's rules for a name: no '/', no NUL, not "." or "..".
 */
static int
record_path_name_check(const char *name, size_t len, size_t max)
{
	if (len == 0 || name == NULL)
		return -EINVAL;
	if (len > max)
		return -ENAMETOOLONG;
	if (memchr(name, '/', len) != NULL || memchr(name, '\0', len) != NULL)
		return -EINVAL;
	if (name[0] == '.' && (len == 1 || (len == 2 && name[1] == '.')))
		return -EINVAL;
	return 0;
}

int
record_key_check(const char *key, size_t len)
{
	return record_path_name_check(key, len, RECORD_KEY_MAX);
}

bool
record_key_is_internal(const char *key, size_t len)
{
	return len >= 2 && key != NULL && key[0] == '/';
}

/* "/d" + 16 hex (not 0) + "/" + a name, or "/k" + 16 hex (not 0) + "/" +
 * 8 hex + "." + 8 hex: the two forms the transaction layer writes. */
static bool
internal_key_well_formed(const char *key, size_t len)
{
	uint64_t id, v;

	if (len < 19 || len > RECORD_KEY_MAX || !hex_get(key + 2, 16, &id) || id == 0 || key[18] != '/')
		return false;
	if (key[1] == 'd')
		return record_key_check(key + 19, len - 19) == 0;
	return key[1] == 'k' && record_key_is_chunk(key, len) && hex_get(key + 19, 8, &v) &&
	    key[27] == '.' && hex_get(key + 28, 8, &v);
}

int
record_stored_key_check(const char *key, size_t len)
{
	if (record_key_is_internal(key, len))
		return internal_key_well_formed(key, len) ? 0 : -EINVAL;
	return record_key_check(key, len);
}

bool
record_mode_valid(uint32_t mode)
{
	uint32_t type = mode & RECORD_MODE_TYPE_MASK;

	if ((mode & ~(RECORD_MODE_TYPE_MASK | RECORD_MODE_PERM_MASK)) != 0)
		return false;
	return type == 0 || type == RECORD_MODE_DIR || type == RECORD_MODE_LINK;
}

int
record_set_name_check(const char *set, size_t len)
{
	return record_path_name_check(set, len, RECORD_SET_MAX);
}

int
record_bin_name_check(const char *name, size_t len)
{
	if (len == 0 || name == NULL)
		return -EINVAL;
	if (len > RECORD_BIN_NAME_MAX)
		return -ENAMETOOLONG;
	/* A bin is the xattr user.<bin>: no '.' keeps it apart from user.recfs.*. */
	if (memchr(name, '.', len) != NULL || memchr(name, '\0', len) != NULL)
		return -EINVAL;
	return 0;
}

int
record_version_cmp(const struct record_version *a, const struct record_version *b)
{
	if (a->last_update_ms != b->last_update_ms)
		return a->last_update_ms > b->last_update_ms ? 1 : -1;
	if (a->generation != b->generation) {
		uint16_t diff = (uint16_t)(a->generation - b->generation);

		/* Exactly 32768 apart: neither is newer, a tie. */
		if (diff == 0x8000)
			return 0;
		return diff < 0x8000 ? 1 : -1;
	}
	if (a->damaged != b->damaged)
		return a->damaged ? -1 : 1;
	return 0;
}
