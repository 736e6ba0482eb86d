/*
 * chunk.c - large files: the head's chunk map, chunk reads, the
 * copy-on-write commit and the reclaimer of unnamed chunks (chunk.h).
 *
 * Design: a chunk is never overwritten in place.  A commit writes the
 * chunks it changes under a new version (the head's commit number + 1),
 * then rewrites the head naming them, then deletes what they replaced, so
 * the head's one record write is the commit point: a reader anywhere reads
 * the head and then only chunks that head names, which exist until a later
 * commit has replaced them (a reader that loses that race gets -ENOENT and
 * reads the head again).  Versions per chunk (not one per file) keep a
 * commit proportional to what it changed: appending to a 1 GiB log
 * rewrites its last chunk and the head, nothing else.
 *
 * Orphans (chunks no head names) come from a crash between the chunk
 * writes and the head write, or between the head write and the deletes,
 * and from failed deletes.  The reclaimer finds their owner by file id:
 * one pass collects the maps of the heads this node holds (4 bytes per
 * chunk), a second deletes the chunks those maps do not name, if older
 * than a grace period (a commit in progress writes chunks before its
 * head).  Rejected: a "/f" record per file with a back pointer to its head
 * (one more record write per rename and per file, and it can itself be
 * orphaned); overwriting chunks in place (a reader or a crash would see a
 * mix of two versions).
 *
 * Map bin layout (little-endian): magic "RCM1" (4), file id (8), size (8),
 * chunk size (4), commit (4), n (4), then n versions (4 each).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "../base/bytes.h"
#include "../base/log.h"
#include "chunk.h"
#include "txn_i.h"

#define MAP_MAGIC 0x314d4352u   /* "RCM1" */
#define MAP_HEADER 32

static uint64_t
chunks_for(uint64_t size, uint32_t chunk_size)
{
	return size / chunk_size + (size % chunk_size != 0);
}

uint64_t
txn_chunk_file_max(const struct namespace *ns, uint32_t chunk_size)
{
	uint64_t room = ns->max_record_size > TXN_CHUNK_HEAD_OVERHEAD ?
	    ns->max_record_size - TXN_CHUNK_HEAD_OVERHEAD : 0;

	return (room - MAP_HEADER) / 4 * chunk_size;
}

const struct bin *
txn_chunk_map_bin(const struct record *r)
{
	const struct bin *b = record_bin_find(r, TXN_CHUNK_MAP_BIN, TXN_CHUNK_MAP_BIN_LEN);

	return b != NULL && b->type == BIN_BLOB ? b : NULL;
}

int
txn_chunk_map_decode(const void *data, size_t len, struct txn_chunk_map *out)
{
	const uint8_t *p = data;
	uint64_t n;

	memset(out, 0, sizeof(*out));
	if (len < MAP_HEADER || le_get32(p) != MAP_MAGIC)
		return -EINVAL;
	out->file_id = le_get64(p + 4);
	out->size = le_get64(p + 12);
	out->chunk_size = le_get32(p + 20);
	out->commit = le_get32(p + 24);
	n = le_get32(p + 28);
	/* Everything a reader relies on, checked once here. */
	if (out->file_id == 0 || out->chunk_size == 0 || n != chunks_for(out->size, out->chunk_size) ||
	    len != MAP_HEADER + 4 * n)
		return -EINVAL;
	out->n = (uint32_t)n;
	out->versions = calloc(n ? n : 1, sizeof(uint32_t));
	if (out->versions == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		out->versions[i] = le_get32(p + MAP_HEADER + 4 * i);
		if (out->versions[i] > out->commit) {
			txn_chunk_map_free(out);
			return -EINVAL;
		}
	}
	return 0;
}

void
txn_chunk_map_free(struct txn_chunk_map *m)
{
	free(m->versions);
	memset(m, 0, sizeof(*m));
}

int
txn_chunk_map_copy(struct txn_chunk_map *dst, const struct txn_chunk_map *src)
{
	*dst = *src;
	dst->versions = calloc(src->n ? src->n : 1, sizeof(uint32_t));
	if (dst->versions == NULL)
		return -ENOMEM;
	if (src->n > 0)
		memcpy(dst->versions, src->versions, src->n * sizeof(uint32_t));
	return 0;
}

void
txn_chunk_key(char *out, uint64_t id, uint32_t index, uint32_t version)
{
	snprintf(out, TXN_CHUNK_KEY_LEN + 1, "/k%016" PRIx64 "/%08" PRIx32 ".%08" PRIx32, id, index,
	    version);
}

static bool
hex_parse(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c >= '0' && c <= '9')
			v = v << 4 | (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v << 4 | (uint64_t)(c - 'a' + 10);
		else
			return false;
	}
	*out = v;
	return true;
}

bool
txn_chunk_key_parse(const char *key, size_t len, uint64_t *id, uint32_t *index, uint32_t *version)
{
	uint64_t i, v;

	if (len != TXN_CHUNK_KEY_LEN || key[0] != '/' || key[1] != 'k' || key[18] != '/' ||
	    key[27] != '.')
		return false;
	if (!hex_parse(key + 2, 16, id) || !hex_parse(key + 19, 8, &i) || !hex_parse(key + 28, 8, &v))
		return false;
	*index = (uint32_t)i;
	*version = (uint32_t)v;
	return *id != 0;
}

static struct txn_key
chunk_txn_key(const char *set, size_t set_len, const char *key)
{
	return (struct txn_key){ .set = set, .set_len = set_len, .key = key,
	    .key_len = TXN_CHUNK_KEY_LEN };
}

/* ---- reads ----------------------------------------------------------------- */

int
txn_chunk_read(struct namespace *ns, const char *set, size_t set_len,
    const struct txn_chunk_map *map, uint32_t index, void *buf, size_t *got)
{
	uint64_t start = (uint64_t)index * map->chunk_size;
	size_t want;

	if (index >= map->n)
		return -EINVAL;
	want = map->size - start < map->chunk_size ? (size_t)(map->size - start) : map->chunk_size;
	*got = want;
	if (map->versions[index] == 0) {
		memset(buf, 0, want);
		return 0;
	}
	return txn_chunk_read_version(ns, set, set_len, map->file_id, index, map->versions[index],
	    start, want, buf);
}

int
txn_chunk_read_version(struct namespace *ns, const char *set, size_t set_len, uint64_t file_id,
    uint32_t index, uint32_t version, uint64_t start, size_t want, void *buf)
{
	char key[TXN_CHUNK_KEY_LEN + 1];
	struct txn_record r;
	struct txn_key k;
	size_t have = 0;
	int rc;

	txn_chunk_key(key, file_id, index, version);
	k = chunk_txn_key(set, set_len, key);
	rc = txn_read(ns, &k, &r);
	if (rc == 0) {
		const struct bin *fb = r.file_bin;

		if (fb != NULL && (fb->type == BIN_BLOB || fb->type == BIN_STRING))
			have = fb->v.bytes.len < want ? fb->v.bytes.len : want;
		if (have > 0)
			memcpy(buf, fb->v.bytes.data, have);
		memset((char *)buf + have, 0, want - have);
		txn_record_release(&r);
		NS_COUNT_ADD(ns, chunk_reads, 1);
		return 0;
	}
	if (rc != -ENOENT) {
		NS_COUNT_ADD(ns, chunk_read_errors, 1);
		log_error("txn", "{%s} %.*s: chunk %s (bytes %" PRIu64 "..%" PRIu64 " of its file) "
		    "cannot be read: %s", ns->name, (int)set_len, set, key, start, start + want,
		    recfs_strerror(rc));
	}
	return rc;
}

/* ---- commits ------------------------------------------------------------- */

static int
map_encode(const struct txn_chunk_map *m, uint8_t **out, size_t *len)
{
	size_t n = MAP_HEADER + 4 * (size_t)m->n;
	uint8_t *p = malloc(n);

	if (p == NULL)
		return -ENOMEM;
	le_put32(p, MAP_MAGIC);
	le_put64(p + 4, m->file_id);
	le_put64(p + 12, m->size);
	le_put32(p + 20, m->chunk_size);
	le_put32(p + 24, m->commit);
	le_put32(p + 28, m->n);
	for (uint32_t i = 0; i < m->n; i++)
		le_put32(p + MAP_HEADER + 4 * i, m->versions[i]);
	*out = p;
	*len = n;
	return 0;
}

static int
chunk_delete(struct namespace *ns, const char *set, size_t set_len, uint64_t id, uint32_t index,
    uint32_t version)
{
	char key[TXN_CHUNK_KEY_LEN + 1];
	struct txn_key k;

	txn_chunk_key(key, id, index, version);
	k = chunk_txn_key(set, set_len, key);
	return txn_delete(ns, &k);
}

int
txn_chunk_commit(struct namespace *ns, const struct txn_key *head, struct txn_chunk_map *map,
    uint64_t size, const struct txn_chunk_data *d, size_t n, const struct txn_write *w,
    struct record_attr *out)
{
	struct txn_chunk_map next = { 0 };
	struct txn_bin_op op = { .name = TXN_CHUNK_MAP_BIN, .name_len = TXN_CHUNK_MAP_BIN_LEN,
	    .type = BIN_BLOB };
	struct txn_write hw = *w;
	uint8_t *enc = NULL;
	size_t enc_len;
	int rc;

	if (map->chunk_size == 0)
		return -EINVAL;
	/* Its map must fit the head: refused before anything is written. */
	if (size > txn_chunk_file_max(ns, map->chunk_size)) {
		NS_COUNT_ADD(ns, fail_record_too_big, 1);
		return -EFBIG;
	}
	next.file_id = map->file_id;
	while (next.file_id == 0) {
		if (getrandom(&next.file_id, sizeof(next.file_id), 0) != sizeof(next.file_id))
			return -EIO;
	}
	next.size = size;
	next.chunk_size = map->chunk_size;
	next.commit = map->commit + 1;
	next.n = (uint32_t)chunks_for(size, map->chunk_size);
	next.versions = calloc(next.n ? next.n : 1, sizeof(uint32_t));
	if (next.versions == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < next.n && i < map->n; i++)
		next.versions[i] = map->versions[i];
	/* 1: the changed chunks, under new keys. */
	for (size_t i = 0; i < n; i++) {
		char key[TXN_CHUNK_KEY_LEN + 1];
		struct txn_write cw = { .flags = w->flags & TXN_DURABLE, .set_file = true,
		    .file_data = d[i].data, .file_len = d[i].len };
		struct txn_key k;

		if (d[i].index >= next.n || d[i].len > map->chunk_size) {
			rc = -EINVAL;
			goto out;
		}
		if (d[i].data == NULL) {
			next.versions[d[i].index] = 0;  /* a hole now: no record */
			continue;
		}
		txn_chunk_key(key, next.file_id, d[i].index, next.commit);
		k = chunk_txn_key(head->set, head->set_len, key);
		rc = txn_write(ns, &k, &cw, NULL);
		if (rc != 0)
			goto out;
		NS_COUNT_ADD(ns, chunk_writes, 1);
		next.versions[d[i].index] = next.commit;
	}
	/* 2: the head names them: the commit point. */
	rc = map_encode(&next, &enc, &enc_len);
	if (rc != 0)
		goto out;
	op.data = enc;
	op.len = (uint32_t)enc_len;
	hw.set_file = true;
	hw.file_data = NULL;
	hw.file_len = 0;
	hw.set_size = false;
	hw.bins = &op;
	hw.n_bins = 1;
	rc = txn_write(ns, head, &hw, out);
	if (rc != 0)
		goto out;
	if (out != NULL) {
		out->size = size;
		out->chunked = true;
	}
	/* 3: what the head no longer names (a failure is the reclaimer's). */
	for (uint32_t i = 0; i < map->n; i++) {
		if (map->versions[i] != 0 && (i >= next.n || next.versions[i] != map->versions[i]))
			(void)chunk_delete(ns, head->set, head->set_len, map->file_id, i,
			    map->versions[i]);
	}
	free(map->versions);
	*map = next;
	next.versions = NULL;
out:
	free(enc);
	free(next.versions);
	return rc;
}

int
txn_chunk_unmap(struct namespace *ns, const struct txn_key *k)
{
	struct txn_bin_op op = { .name = TXN_CHUNK_MAP_BIN, .name_len = TXN_CHUNK_MAP_BIN_LEN,
	    .flags = TXN_BIN_REMOVE };
	struct txn_write w = { .flags = TXN_UPDATE_ONLY, .bins = &op, .n_bins = 1 };

	return txn_write(ns, k, &w, NULL);
}

int
txn_chunk_remap(struct namespace *ns, const struct txn_key *k, const struct txn_chunk_map *map)
{
	struct txn_bin_op op = { .name = TXN_CHUNK_MAP_BIN, .name_len = TXN_CHUNK_MAP_BIN_LEN,
	    .type = BIN_BLOB };
	struct txn_write w = { .flags = TXN_UPDATE_ONLY, .bins = &op, .n_bins = 1 };
	uint8_t *enc;
	size_t len;
	int rc = map_encode(map, &enc, &len);

	if (rc != 0)
		return rc;
	op.data = enc;
	op.len = (uint32_t)len;
	rc = txn_write(ns, k, &w, NULL);
	free(enc);
	return rc;
}

unsigned
txn_chunk_drop(struct namespace *ns, const char *set, size_t set_len, const struct txn_chunk_map *map)
{
	unsigned done = 0;

	for (uint32_t i = 0; i < map->n; i++)
		if (map->versions[i] != 0 &&
		    chunk_delete(ns, set, set_len, map->file_id, i, map->versions[i]) == 0)
			done++;
	return done;
}

/* ---- the reclaimer --------------------------------------------------------- */

/* One head's map, found by file id (open addressing). */
struct reclaim_head {
	uint64_t id;
	struct txn_chunk_map map;
};

struct reclaim {
	struct namespace *ns;
	uint16_t set_id;
	uint64_t grace_before_ms;       /* chunks last written before this may go */
	struct reclaim_head *heads;
	size_t n_heads, cap;
	/* one walk step's findings, handled outside the partition lock */
	struct reclaim_found {
		char key[RECORD_KEY_MAX + 1];
		uint8_t key_len;
		uint64_t last_update_ms;
	} *found;
	size_t n_found, max_found;
	bool want_chunks;               /* pass 2 (else pass 1: heads) */
};

static struct reclaim_head *
reclaim_slot(struct reclaim *rc, uint64_t id)
{
	size_t i = (size_t)(id * 0x9e3779b97f4a7c15ull) & (rc->cap - 1);

	while (rc->heads[i].id != 0 && rc->heads[i].id != id)
		i = (i + 1) & (rc->cap - 1);
	return &rc->heads[i];
}

static int
reclaim_grow(struct reclaim *rc)
{
	size_t cap = rc->cap ? rc->cap * 2 : 64;
	struct reclaim_head *old = rc->heads, *h;
	size_t old_cap = rc->cap;

	rc->heads = calloc(cap, sizeof(*rc->heads));
	if (rc->heads == NULL) {
		rc->heads = old;
		return -ENOMEM;
	}
	rc->cap = cap;
	for (size_t i = 0; i < old_cap; i++) {
		if (old[i].id == 0)
			continue;
		h = reclaim_slot(rc, old[i].id);
		*h = old[i];
	}
	free(old);
	return 0;
}

/* Under the partition lock: note the set's heads (pass 1) or chunks (pass 2). */
static int
reclaim_visit(void *arg, const struct index_entry *e)
{
	struct reclaim *rc = arg;
	bool chunk_key = e->key_len == TXN_CHUNK_KEY_LEN && e->key[0] == '/' && e->key[1] == 'k';

	if (e->set_id != rc->set_id || e->tombstone || e->set_marker)
		return 0;
	if (rc->want_chunks ? !chunk_key : !e->chunked)
		return 0;
	if (rc->n_found == rc->max_found)
		return 1;
	struct reclaim_found *f = &rc->found[rc->n_found++];
	memcpy(f->key, e->key, e->key_len);
	f->key[e->key_len] = '\0';
	f->key_len = e->key_len;
	f->last_update_ms = e->last_update_ms;
	return 0;
}

static int
reclaim_note_head(struct reclaim *rc, const struct txn_key *k)
{
	struct txn_record r;
	struct txn_chunk_map m;
	const struct bin *b;
	struct reclaim_head *h;
	int err = txn_read(rc->ns, k, &r);

	if (err != 0)
		return err == -ENOENT ? 0 : err;
	b = txn_chunk_map_bin(&r.rec);
	err = b != NULL ? txn_chunk_map_decode(b->v.bytes.data, b->v.bytes.len, &m) : 0;
	txn_record_release(&r);
	if (b == NULL || err != 0)
		return err == -ENOMEM ? err : 0;  /* a bad map keeps its chunks: nothing is guessed */
	if ((rc->n_heads + 1) * 2 > rc->cap && (err = reclaim_grow(rc)) != 0) {
		txn_chunk_map_free(&m);
		return err;
	}
	h = reclaim_slot(rc, m.file_id);
	if (h->id == 0) {
		rc->n_heads++;
		h->id = m.file_id;
	} else {
		txn_chunk_map_free(&h->map);  /* a copy renamed meanwhile: the later read */
	}
	h->map = m;
	return 0;
}

/* Whether chunk (id, index, version) is named by a head collected, or may
 * belong to a commit in progress. */
static bool
reclaim_named(struct reclaim *rc, uint64_t id, uint32_t index, uint32_t version)
{
	struct reclaim_head *h = rc->cap ? reclaim_slot(rc, id) : NULL;

	if (h == NULL || h->id == 0)
		return false;
	if (version > h->map.commit)
		return false;  /* a commit that never reached its head (young ones are kept) */
	return index < h->map.n && h->map.versions[index] == version;
}

static long
reclaim_set(struct reclaim *rc, const char *set, size_t set_len)
{
	long done = 0;

	for (int pass = 0; pass < 2; pass++) {
		rc->want_chunks = pass == 1;
		for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++) {
			struct index_walk_pos pos = { 0 };

			while (!pos.done) {
				rc->n_found = 0;
				if (index_partition_walk(rc->ns->index, pid, &pos, reclaim_visit, rc,
				    256) <= 0)
					break;
				for (size_t i = 0; i < rc->n_found; i++) {
					struct reclaim_found *f = &rc->found[i];
					struct txn_key k = { .set = set, .set_len = set_len, .key = f->key,
					    .key_len = f->key_len };
					uint64_t id;
					uint32_t index, version;
					int err;

					if (pass == 0) {
						if ((err = reclaim_note_head(rc, &k)) != 0)
							return err;
						continue;
					}
					if (!txn_chunk_key_parse(f->key, f->key_len, &id, &index, &version) ||
					    f->last_update_ms >= rc->grace_before_ms ||
					    reclaim_named(rc, id, index, version))
						continue;
					if (txn_delete(rc->ns, &k) == 0) {
						NS_COUNT_ADD(rc->ns, chunks_reclaimed, 1);
						done++;
					}
				}
			}
		}
	}
	return done;
}

long
txn_chunk_reclaim(struct namespace *ns, uint64_t before_ms)
{
	struct reclaim rc = { .ns = ns, .max_found = 256, .grace_before_ms = before_ms };
	long done = 0;

	/* The heads of a cluster's other nodes are not in this index: there
	 * a chunk's owner could be missed, so only a node configured alone
	 * (no seeds: it never joins a cluster) reclaims. */
	if (ns->root_cfg == NULL || ns->root_cfg->n_seeds > 0 ||
	    atomic_load_relaxed(&ns->chunk_objects) == 0)
		return 0;
	rc.found = calloc(rc.max_found, sizeof(*rc.found));
	if (rc.found == NULL)
		return -ENOMEM;
	for (uint32_t s = 0; s <= atomic_load_relaxed(&ns->sets.n); s++) {
		const struct ns_set *set = &ns->sets.sets[s];
		long n;

		rc.set_id = (uint16_t)s;
		n = reclaim_set(&rc, set->name, set->len);
		for (size_t i = 0; i < rc.cap; i++)
			if (rc.heads[i].id != 0)
				txn_chunk_map_free(&rc.heads[i].map);
		free(rc.heads);
		rc.heads = NULL;
		rc.cap = rc.n_heads = 0;
		if (n < 0) {
			done = n;
			break;
		}
		done += n;
	}
	free(rc.found);
	return done;
}
