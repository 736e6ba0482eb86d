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
 * it gathers the maps of every head of the namespace from every
 * partition's master (4 bytes per chunk) and the file ids open handles
 * hold, then deletes the chunks of the partitions this node masters that
 * nothing named, if older than chunk-reclaim-age (a commit in progress
 * writes chunks before its head); a gather that may have missed a head
 * deletes nothing (docs/architecture.md, "Large files").  Rejected: a
 * "/f" record per file with a back pointer to its head (one more record
 * write per rename and per file, and it can itself be orphaned);
 * overwriting chunks in place (a reader or a crash would see a mix of two
 * versions).
 *
 * Map bin layout (little-endian): magic "RCM1" (4), file id (8), size (8),
 * chunk size (4), commit (4), n (4), then n versions (4 each).
 */
#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "../base/bytes.h"
#include "../base/atomic.h"
#include "../base/log.h"
#include "../cluster/rpc.h"
#include "../fabric/fabric.h"
#include "chunk.h"
#include "remote.h"
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

bool
txn_chunk_key_parse(const char *key, size_t len, uint64_t *id, uint32_t *index, uint32_t *version)
{
	uint64_t i, v;

	if (len != TXN_CHUNK_KEY_LEN || key[0] != '/' || key[1] != 'k' || key[18] != '/' ||
	    key[27] != '.')
		return false;
	if (!hex_get(key + 2, 16, id) || !hex_get(key + 19, 8, &i) || !hex_get(key + 28, 8, &v))
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

/* A chunk read that failed other than by its absence is counted and logged
 * (naming the file's byte range); rc back. */
static int
chunk_read_failed(struct namespace *ns, const char *set, size_t set_len, const char *key,
    uint64_t start, size_t want, int rc)
{
	if (rc != -ENOENT) {
		NS_COUNT_ADD(ns, chunk_read_errors, 1);
		log_error("txn", "{%s} %.*s: chunk %s (bytes %" PRIu64 "..%" PRIu64 " of its file) "
		    "cannot be read: %s", ns->name, (int)set_len, set, key, start, start + want,
		    recfs_strerror(rc));
	}
	return rc;
}

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
	return chunk_read_failed(ns, set, set_len, key, start, want, rc);
}

size_t
txn_chunk_buf_size(uint32_t chunk_size)
{
	/* A chunk record's header, key and bin name take far less than one
	 * block (its record fills a write block with chunks of the default
	 * size); a larger one is copied. */
	return ((size_t)chunk_size + 2 * TXN_READ_ALIGN - 1) / TXN_READ_ALIGN * TXN_READ_ALIGN;
}

int
txn_chunk_read_into(struct namespace *ns, const char *set, size_t set_len, uint64_t file_id,
    uint32_t index, uint32_t version, uint64_t start, size_t want, size_t span, void *buf,
    size_t buf_size, const char **data)
{
	char key[TXN_CHUNK_KEY_LEN + 1];
	char *b = buf, *at = b;
	const char *src = NULL;
	struct txn_record r;
	struct txn_key k;
	size_t have = 0;
	int rc;

	if (span < want || span > buf_size)
		return -EINVAL;
	txn_chunk_key(key, file_id, index, version);
	k = chunk_txn_key(set, set_len, key);
	rc = txn_read_into(ns, &k, buf, buf_size, &r);
	if (rc == 0) {
		const struct bin *fb = r.file_bin;

		if (fb != NULL && (fb->type == BIN_BLOB || fb->type == BIN_STRING)) {
			have = fb->v.bytes.len < want ? fb->v.bytes.len : want;
			src = (const char *)fb->v.bytes.data;
		}
		/* In buf already (read into it) with room for span: no copy. */
		if (have > 0 && (uintptr_t)src >= (uintptr_t)b &&
		    (uintptr_t)src - (uintptr_t)b <= buf_size - span)
			at = (char *)src;
		else if (have > 0)
			memmove(at, src, have);
		txn_record_release(&r);
		memset(at + have, 0, span - have);
		*data = at;
		NS_COUNT_ADD(ns, chunk_reads, 1);
		return 0;
	}
	return chunk_read_failed(ns, set, set_len, key, start, want, rc);
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

/* ---- holds: chunks an unlinked file's open handles still read ------------ */

static int
hold_add(struct txn_namespace *x, uint64_t id)
{
	int rc = 0;

	pthread_mutex_lock(&x->chunk_hold_lock);
	if (x->n_chunk_holds == x->cap_chunk_holds) {
		size_t cap = x->cap_chunk_holds ? x->cap_chunk_holds * 2 : 16;
		uint64_t *v = realloc(x->chunk_holds, cap * sizeof(*v));

		if (v == NULL)
			rc = -ENOMEM;
		else {
			x->chunk_holds = v;
			x->cap_chunk_holds = cap;
		}
	}
	if (rc == 0)
		x->chunk_holds[x->n_chunk_holds++] = id;
	pthread_mutex_unlock(&x->chunk_hold_lock);
	return rc;
}

static void
hold_remove(struct txn_namespace *x, uint64_t id)
{
	pthread_mutex_lock(&x->chunk_hold_lock);
	for (size_t i = 0; i < x->n_chunk_holds; i++)
		if (x->chunk_holds[i] == id) {
			x->chunk_holds[i] = x->chunk_holds[--x->n_chunk_holds];
			break;
		}
	pthread_mutex_unlock(&x->chunk_hold_lock);
}

/*
 * The map leaves the head: a move (txn_i.h) around the hold and the write,
 * so that a reclaimer gather running meanwhile, which could have read the
 * head after the write and this node's holds before the hold, is not
 * trusted.
 */
int
txn_chunk_unmap(struct namespace *ns, const struct txn_key *k, const struct txn_chunk_map *map)
{
	struct txn_namespace *x = txn_namespace_of(ns);
	struct txn_bin_op op = { .name = TXN_CHUNK_MAP_BIN, .name_len = TXN_CHUNK_MAP_BIN_LEN,
	    .flags = TXN_BIN_REMOVE };
	struct txn_write w = { .flags = TXN_UPDATE_ONLY, .bins = &op, .n_bins = 1 };
	int rc;

	if (x == NULL)
		return txn_write(ns, k, &w, NULL);
	txn_chunk_move_begin(x);
	rc = hold_add(x, map->file_id);
	if (rc == 0 && (rc = txn_write(ns, k, &w, NULL)) != 0)
		hold_remove(x, map->file_id);
	txn_chunk_move_end(x);
	return rc;
}

int
txn_chunk_remap(struct namespace *ns, const struct txn_key *k, const struct txn_chunk_map *map)
{
	struct txn_namespace *x = txn_namespace_of(ns);
	struct txn_bin_op op = { .name = TXN_CHUNK_MAP_BIN, .name_len = TXN_CHUNK_MAP_BIN_LEN,
	    .type = BIN_BLOB };
	struct txn_write w = { .flags = TXN_UPDATE_ONLY, .bins = &op, .n_bins = 1 };
	uint8_t *enc;
	size_t len;
	int rc = map_encode(map, &enc, &len);

	if (x != NULL)
		txn_chunk_move_begin(x);
	if (rc == 0) {
		op.data = enc;
		op.len = (uint32_t)len;
		rc = txn_write(ns, k, &w, NULL);
		free(enc);
	}
	/* Named by the head again, or (failed) the reclaimer's. */
	if (x != NULL) {
		hold_remove(x, map->file_id);
		txn_chunk_move_end(x);
	}
	return rc;
}

void
txn_chunk_release(struct namespace *ns, uint64_t file_id)
{
	struct txn_namespace *x = txn_namespace_of(ns);

	if (x != NULL)
		hold_remove(x, file_id);
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

/*
 * What the heads name, by file id (open addressing): the maps of the heads
 * found with that id (two while a rename across masters has written the
 * new name and not yet deleted the old one), or "held" (an unlinked file's
 * open handles read it: every chunk of the file is kept).
 */
struct named_map {
	struct named_map *next;
	uint32_t n;
	uint32_t v[];
};

struct named {
	uint64_t id;
	bool held;
	struct named_map *maps;
};

struct named_set {
	struct named *slots;
	size_t n, cap;
	size_t bytes;      /* of the maps held, at most txn_chunk_gather_max_bytes */
};

/* What one gather may hold of the heads' maps (about 16,000 files of 4 GiB
 * with 1020K chunks): past it the pass is skipped, so a peer's pages, each
 * of them valid, cannot grow this node's memory beyond it. */
size_t txn_chunk_gather_max_bytes = (size_t)256 << 20;

static struct named *
named_slot(struct named_set *ns, uint64_t id)
{
	size_t i = (size_t)(id * 0x9e3779b97f4a7c15ull) & (ns->cap - 1);

	while (ns->slots[i].id != 0 && ns->slots[i].id != id)
		i = (i + 1) & (ns->cap - 1);
	return &ns->slots[i];
}

static void
named_free(struct named_set *ns)
{
	for (size_t i = 0; i < ns->cap; i++)
		for (struct named_map *m = ns->slots[i].maps, *next; m != NULL; m = next) {
			next = m->next;
			free(m);
		}
	free(ns->slots);
	memset(ns, 0, sizeof(*ns));
}

/* The entry of id, created if new; NULL: -ENOMEM. */
static struct named *
named_get(struct named_set *ns, uint64_t id)
{
	struct named *e;

	if ((ns->n + 1) * 2 > ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 64;
		struct named_set next = { .slots = calloc(cap, sizeof(struct named)), .cap = cap };

		if (next.slots == NULL)
			return NULL;
		for (size_t i = 0; i < ns->cap; i++)
			if (ns->slots[i].id != 0)
				*named_slot(&next, ns->slots[i].id) = ns->slots[i];
		next.n = ns->n;
		free(ns->slots);
		*ns = next;
	}
	e = named_slot(ns, id);
	if (e->id == 0) {
		e->id = id;
		ns->n++;
	}
	return e;
}

static bool
named_has(struct named_set *ns, uint64_t id, uint32_t index, uint32_t version)
{
	const struct named *e = ns->cap ? named_slot(ns, id) : NULL;

	if (e == NULL || e->id == 0)
		return false;
	if (e->held)
		return true;
	for (const struct named_map *m = e->maps; m != NULL; m = m->next)
		if (index < m->n && m->v[index] == version)
			return true;
	return false;
}

/*
 * The gather's answers (RPC_OP_TXN_CHUNKS; this node's own share goes
 * through the same encoding).  Little-endian.
 *   state (kind 1): cluster key (8), partitions still to migrate (8),
 *     map moves begun (8), ended (8);
 *   heads (kind 2): the first partition not covered (4; PARTITION_COUNT:
 *     all), n held file ids (4), the ids (8 each), then to the end of the
 *     body one entry per head: file id (8), n (4), n versions (4 each).
 * A page stops after the partition that takes it past PAGE_SOFT_MAX; a
 * partition whose heads do not fit a body fails the gather (-EMSGSIZE).
 */
#define KIND_STATE 1
#define KIND_HEADS 2
#define STATE_LEN 32
#define PAGE_SOFT_MAX (1u << 20)
#define MASK_LEN (PARTITION_COUNT / 8)
/* A heads page walks the index of the partitions asked until it has 1 MiB
 * of heads: on a node of many records, longer than an operation. */
#define HEADS_DEADLINE_MS 10000

struct gather_state {
	uint64_t cluster_key, migrating, begun, ended;
};

static void
state_local(struct namespace *ns, struct gather_state *st)
{
	struct txn_namespace *x = txn_namespace_of(ns);
	struct txn_partition tp;

	st->cluster_key = txn_partition_get(ns, 0, &tp) == 0 ? tp.cluster_key : 0;
	st->migrating = atomic_load_relaxed(&ns->migrations_pending);
	/* begun first: a move between the two loads shows as one in flight */
	st->begun = x != NULL ? __atomic_load_n(&x->chunk_moves_begun, __ATOMIC_SEQ_CST) : 0;
	st->ended = x != NULL ? __atomic_load_n(&x->chunk_moves_ended, __ATOMIC_SEQ_CST) : 0;
}

/* One walk step's findings, handled outside the partition lock. */
struct found {
	uint16_t set_id;
	uint8_t key_len;
	char key[RECORD_KEY_MAX + 1];
	uint64_t last_update_ms;
};

struct walk {
	struct found *found;
	size_t n_found, max_found;
	bool want_chunks;               /* chunk records, else heads */
};

#define WALK_BATCH 256

/* Under the partition lock: note the heads or the chunks of every set. */
static int
walk_visit(void *arg, const struct index_entry *e)
{
	struct walk *w = arg;
	bool chunk_key = e->key_len == TXN_CHUNK_KEY_LEN && e->key[0] == '/' && e->key[1] == 'k';

	if (e->tombstone || e->set_marker)
		return 0;
	if (w->want_chunks ? !chunk_key : !e->chunked)
		return 0;
	if (w->n_found == w->max_found)
		return 1;
	struct found *f = &w->found[w->n_found++];
	f->set_id = e->set_id;
	memcpy(f->key, e->key, e->key_len);
	f->key[e->key_len] = '\0';
	f->key_len = e->key_len;
	f->last_update_ms = e->last_update_ms;
	return 0;
}

static struct txn_key
found_key(struct namespace *ns, const struct found *f)
{
	const struct ns_set *set = &ns->sets.sets[f->set_id];

	return (struct txn_key){ .set = set->name, .set_len = set->len, .key = f->key,
	    .key_len = f->key_len };
}

/* Head k's map appended at buf[*len..cap): 0, or -ENOSPC (nothing
 * appended), errors of txn_read (-ENOENT: gone meanwhile, nothing to
 * append).  A head whose map does not decode is an error: its chunks
 * cannot be told from orphans, so nothing is reclaimed. */
static int
head_append(struct namespace *ns, const struct txn_key *k, uint8_t *buf, size_t cap, size_t *len)
{
	struct txn_record r;
	struct txn_chunk_map m;
	const struct bin *b;
	int err = txn_read(ns, k, &r);

	if (err != 0)
		return err;
	b = txn_chunk_map_bin(&r.rec);
	err = b != NULL ? txn_chunk_map_decode(b->v.bytes.data, b->v.bytes.len, &m) : 0;
	txn_record_release(&r);
	if (b == NULL)
		return 0;   /* no map (any more): names nothing */
	if (err != 0) {
		if (err == -EINVAL)
			log_warn("txn", "{%s} %.*s/%.*s: the chunk map of a large file does not decode: "
			    "no chunk is reclaimed", ns->name, (int)k->set_len, k->set,
			    (int)k->key_len, k->key);
		return err;
	}
	if (cap - *len < 16 + 4 * (size_t)m.n) {
		txn_chunk_map_free(&m);
		return -ENOSPC;
	}
	le_put64(buf + *len, m.file_id);
	le_put32(buf + *len + 8, m.n);
	for (uint32_t i = 0; i < m.n; i++)
		le_put32(buf + *len + 12 + 4 * i, m.versions[i]);
	*len += 12 + 4 * (size_t)m.n;
	txn_chunk_map_free(&m);
	return 0;
}

/*
 * A page of the heads of the partitions in mask from partition from on,
 * with this node's held file ids, into buf (cap bytes).  check_master: a
 * partition in mask this node is not the working master of is
 * TXN_ENOTMASTER (the asker's table is not this node's).
 */
static int
heads_page(struct namespace *ns, const uint8_t *mask, uint32_t from, bool check_master,
    uint8_t *buf, size_t cap, size_t *len)
{
	struct txn_namespace *x = txn_namespace_of(ns);
	struct walk w = { .max_found = WALK_BATCH };
	size_t off = 8, first = 0;
	uint32_t n_held = 0, pid;
	int rc = 0;

	if (cap < 8)
		return -EMSGSIZE;
	if (x != NULL) {
		pthread_mutex_lock(&x->chunk_hold_lock);
		if (x->n_chunk_holds * 8 > cap - off) {
			rc = -EMSGSIZE;
		} else {
			for (size_t i = 0; i < x->n_chunk_holds; i++)
				le_put64(buf + off + 8 * i, x->chunk_holds[i]);
			n_held = (uint32_t)x->n_chunk_holds;
			off += 8 * (size_t)n_held;
		}
		pthread_mutex_unlock(&x->chunk_hold_lock);
		if (rc != 0)
			return rc;
	}
	w.found = malloc(w.max_found * sizeof(*w.found));
	if (w.found == NULL)
		return -ENOMEM;
	first = off;
	for (pid = from; pid < PARTITION_COUNT && rc == 0; pid++) {
		struct index_walk_pos pos = { 0 };
		size_t at = off;

		if (!(mask[pid / 8] & (1u << (pid % 8))))
			continue;
		if (at > first && at >= PAGE_SOFT_MAX)
			break;   /* the next page starts here */
		if (check_master) {
			struct txn_partition tp;

			if (txn_partition_get(ns, pid, &tp) != 0 || !tp.am_master) {
				rc = TXN_ENOTMASTER;
				break;
			}
		}
		while (!pos.done && rc == 0) {
			w.n_found = 0;
			if (index_partition_walk(ns->index, pid, &pos, walk_visit, &w, WALK_BATCH) <= 0)
				break;
			for (size_t i = 0; i < w.n_found && rc == 0; i++) {
				struct txn_key k = found_key(ns, &w.found[i]);

				rc = head_append(ns, &k, buf, cap, &off);
				if (rc == -ENOENT)
					rc = 0;   /* deleted meanwhile */
			}
		}
		if (rc == -ENOSPC) {
			/* This partition goes into the next page, alone if need be. */
			off = at;
			rc = at > first ? 0 : -EMSGSIZE;
			break;
		}
	}
	free(w.found);
	if (rc != 0)
		return rc;
	le_put32(buf, pid);
	le_put32(buf + 4, n_held);
	*len = off;
	return 0;
}

/* A heads page into set; *next: the partition the next page starts at. */
static int
heads_take(struct named_set *set, const uint8_t *p, size_t len, uint32_t from, uint32_t *next)
{
	uint32_t n_held;
	size_t off;

	if (len < 8)
		return -EBADMSG;
	*next = le_get32(p);
	n_held = le_get32(p + 4);
	if (*next <= from || *next > PARTITION_COUNT || n_held > (len - 8) / 8)
		return -EBADMSG;
	off = 8;
	for (uint32_t i = 0; i < n_held; i++, off += 8) {
		uint64_t id = le_get64(p + off);
		struct named *e;

		if (id == 0)
			return -EBADMSG;
		if ((e = named_get(set, id)) == NULL)
			return -ENOMEM;
		e->held = true;
	}
	while (off < len) {
		uint64_t id;
		uint32_t n;
		struct named_map *m;
		struct named *e;

		if (len - off < 12)
			return -EBADMSG;
		id = le_get64(p + off);
		n = le_get32(p + off + 8);
		off += 12;
		if (id == 0 || n > (len - off) / 4)
			return -EBADMSG;
		if (set->bytes + sizeof(*m) + 4 * (size_t)n > txn_chunk_gather_max_bytes)
			return -E2BIG;
		set->bytes += sizeof(*m) + 4 * (size_t)n;
		m = malloc(sizeof(*m) + 4 * (size_t)n);
		if (m == NULL || (e = named_get(set, id)) == NULL) {
			free(m);
			return -ENOMEM;
		}
		m->n = n;
		for (uint32_t i = 0; i < n; i++)
			m->v[i] = le_get32(p + off + 4 * i);
		off += 4 * (size_t)n;
		m->next = e->maps;
		e->maps = m;
	}
	return 0;
}

int
txn_chunk_page_decode(const uint8_t *p, size_t len, uint32_t from, uint32_t *next,
    size_t *n_ids, size_t *n_held)
{
	struct named_set set = { 0 };
	int rc = heads_take(&set, p, len, from, next);

	*n_ids = set.n;
	*n_held = 0;
	for (size_t i = 0; i < set.cap; i++)
		*n_held += set.slots[i].id != 0 && set.slots[i].held;
	named_free(&set);
	return rc;
}

/* The rpc's server side (remote.c found the namespace). */
int
txn_chunk_serve(struct namespace *ns, const uint8_t *req, size_t len, struct rpc_reply *reply)
{
	struct fabric_msg m;
	const uint8_t *mask;
	size_t mask_len;
	uint32_t kind, from = 0;

	reply->len = 0;
	if (fabric_msg_decode(req, len, &m) != 0 || m.type != TXN_MSG_CHUNKS ||
	    fabric_msg_get_u32(&m, TXN_KF_KIND, &kind) != 0)
		return -EBADMSG;
	if (kind == KIND_STATE) {
		struct gather_state st;

		if (reply->cap < STATE_LEN)
			return -EMSGSIZE;
		state_local(ns, &st);
		le_put64(reply->buf, st.cluster_key);
		le_put64(reply->buf + 8, st.migrating);
		le_put64(reply->buf + 16, st.begun);
		le_put64(reply->buf + 24, st.ended);
		reply->len = STATE_LEN;
		return 0;
	}
	if (kind != KIND_HEADS || fabric_msg_get_u32(&m, TXN_KF_FROM, &from) != 0 ||
	    from >= PARTITION_COUNT || fabric_msg_get_bytes(&m, TXN_KF_MASK, &mask, &mask_len) != 0 ||
	    mask_len != MASK_LEN)
		return -EBADMSG;
	return heads_page(ns, mask, from, true, reply->buf, reply->cap, &reply->len);
}

/* One node of the gather: who it is and the partitions it masters. */
struct gather_node {
	uint64_t id;                    /* 0: this node */
	uint8_t mask[MASK_LEN];
	struct gather_state st;
};

struct gather {
	struct namespace *ns;
	struct txn_remote *rm;          /* NULL: a node without a network */
	uint64_t cluster_key;           /* of the table the masks come from */
	struct gather_node nodes[TXN_CLUSTER_NODES_MAX];
	unsigned n;
	struct named_set named;
	uint8_t *page;                  /* this node's own pages */
};

/* A request to node i; its answer in *ans (release it). */
static int
gather_call(struct gather *g, unsigned i, uint32_t kind, uint32_t from, struct rpc_answer *ans)
{
	uint8_t body[128 + CONFIG_NAME_MAX + MASK_LEN];
	struct fabric_msg_writer fw;
	int rc;

	fabric_msg_writer_init(&fw, body, sizeof(body), TXN_MSG_CHUNKS);
	fabric_msg_put_bytes(&fw, TXN_KF_NS, g->ns->name, strlen(g->ns->name));
	fabric_msg_put_u32(&fw, TXN_KF_KIND, kind);
	if (kind == KIND_HEADS) {
		fabric_msg_put_u32(&fw, TXN_KF_FROM, from);
		fabric_msg_put_bytes(&fw, TXN_KF_MASK, g->nodes[i].mask, MASK_LEN);
	}
	if (fw.err != 0)
		return -EIO;
	rc = txn_remote_call(g->rm, g->nodes[i].id, RPC_OP_TXN_CHUNKS, body, fw.len,
	    kind == KIND_HEADS ? HEADS_DEADLINE_MS : 0, ans);
	if (rc == 0 && ans->rc != 0)
		rc = ans->rc;
	if (rc == 0 && ans->err != 0)
		rc = ans->err;
	if (rc != 0)
		log_debug("txn", "{%s} chunk reclaim: node %016llx did not answer: %s", g->ns->name,
		    (unsigned long long)g->nodes[i].id, recfs_strerror(rc));
	return rc;
}

/* Every node's state into nodes[].st. */
static int
gather_states(struct gather *g, struct gather_state *out)
{
	for (unsigned i = 0; i < g->n; i++) {
		struct rpc_answer ans = { 0 };
		int rc = 0;

		if (g->nodes[i].id == 0) {
			state_local(g->ns, &out[i]);
			continue;
		}
		rc = gather_call(g, i, KIND_STATE, 0, &ans);
		if (rc == 0 && ans.len != STATE_LEN)
			rc = -EBADMSG;
		if (rc == 0) {
			out[i].cluster_key = le_get64(ans.body);
			out[i].migrating = le_get64(ans.body + 8);
			out[i].begun = le_get64(ans.body + 16);
			out[i].ended = le_get64(ans.body + 24);
		}
		rpc_answer_release(&ans);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Every node's heads, page by page, into g->named. */
static int
gather_heads(struct gather *g)
{
	for (unsigned i = 0; i < g->n; i++) {
		uint32_t from = 0;

		/* A node that masters nothing still says what it holds. */
		while (from < PARTITION_COUNT) {
			struct rpc_answer ans = { 0 };
			size_t len = 0;
			uint32_t next = 0;
			int rc;

			if (g->nodes[i].id == 0) {
				rc = heads_page(g->ns, g->nodes[i].mask, from, g->rm != NULL, g->page,
				    RPC_BODY_MAX, &len);
				if (rc == 0)
					rc = heads_take(&g->named, g->page, len, from, &next);
			} else {
				rc = gather_call(g, i, KIND_HEADS, from, &ans);
				if (rc == 0)
					rc = heads_take(&g->named, ans.body, ans.len, from, &next);
				rpc_answer_release(&ans);
			}
			if (rc != 0)
				return rc;
			from = next;
		}
	}
	return 0;
}

/* The nodes and what each masters, from this node's table: -EAGAIN while
 * the table has a partition without master or is not the cluster's. */
static int
gather_plan(struct gather *g)
{
	struct txn_namespace *x = txn_namespace_of(g->ns);
	struct txn_cluster cl = { .size = 0 };

	g->n = 1;   /* nodes[0]: this node */
	if (g->rm == NULL) {
		memset(g->nodes[0].mask, 0xff, MASK_LEN);
		return 0;
	}
	pthread_mutex_lock(&x->node->network_lock);
	if (x->node->network != NULL)
		txn_network_cluster(x->node->network, &cl);
	pthread_mutex_unlock(&x->node->network_lock);
	if (cl.size == 0 || cl.cluster_key == 0)
		return -EAGAIN;
	g->cluster_key = cl.cluster_key;
	for (unsigned i = 0; i < cl.size && i < TXN_CLUSTER_NODES_MAX; i++)
		if (cl.succession[i] != txn_remote_self(g->rm))
			g->nodes[g->n++].id = cl.succession[i];
	for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++) {
		struct txn_partition tp;
		unsigned i;

		if (txn_partition_get(g->ns, pid, &tp) != 0 || tp.master == 0 ||
		    tp.cluster_key != g->cluster_key)
			return -EAGAIN;
		if (tp.am_master || tp.master == txn_remote_self(g->rm)) {
			i = 0;
		} else {
			for (i = 1; i < g->n && g->nodes[i].id != tp.master; i++)
				;
			if (i == g->n)
				return -EAGAIN;   /* a master outside the succession */
		}
		g->nodes[i].mask[pid / 8] |= (uint8_t)(1u << (pid % 8));
	}
	return 0;
}

/*
 * The gather: every node's state, every node's heads and holds, every
 * node's state again.  0 when it can be trusted: one cluster key
 * throughout (the table's), nothing migrating, and on every node no map
 * move in flight at the first state and none begun by the second (a head
 * renamed across partitions or masters, or a map taken by an unlinked
 * file's handles, during the gather could have been seen at neither
 * place).  -EAGAIN otherwise.
 */
static int
gather_run(struct gather *g)
{
	struct gather_state *before = calloc(2 * TXN_CLUSTER_NODES_MAX, sizeof(*before));
	struct gather_state *after = before + TXN_CLUSTER_NODES_MAX;
	int rc;

	if (before == NULL)
		return -ENOMEM;
	rc = gather_states(g, before);
	for (unsigned i = 0; rc == 0 && i < g->n; i++)
		if (before[i].cluster_key != g->cluster_key || before[i].migrating != 0 ||
		    before[i].begun != before[i].ended)
			rc = -EAGAIN;
	if (rc == 0)
		rc = gather_heads(g);
	if (rc == 0)
		rc = gather_states(g, after);
	for (unsigned i = 0; rc == 0 && i < g->n; i++)
		if (after[i].cluster_key != g->cluster_key || after[i].migrating != 0 ||
		    after[i].begun != before[i].begun)
			rc = -EAGAIN;
	free(before);
	return rc;
}

/* The chunks of the partitions this node masters that nothing named and
 * that are older than before_ms, deleted (through the routed layer). */
static long
reclaim_chunks(struct gather *g, uint64_t before_ms)
{
	struct walk w = { .max_found = WALK_BATCH, .want_chunks = true };
	long done = 0;

	w.found = malloc(w.max_found * sizeof(*w.found));
	if (w.found == NULL)
		return -ENOMEM;
	for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++) {
		struct index_walk_pos pos = { 0 };

		if (g->rm != NULL) {
			struct txn_partition tp;

			if (txn_partition_get(g->ns, pid, &tp) != 0 ||
			    tp.cluster_key != g->cluster_key)
				break;   /* the cluster changed: the next pass */
			if (!tp.am_master)
				continue;
		}
		while (!pos.done) {
			w.n_found = 0;
			if (index_partition_walk(g->ns->index, pid, &pos, walk_visit, &w, WALK_BATCH) <= 0)
				break;
			for (size_t i = 0; i < w.n_found; i++) {
				struct found *f = &w.found[i];
				struct txn_key k = found_key(g->ns, f);
				uint64_t id;
				uint32_t index, version;

				if (!txn_chunk_key_parse(f->key, f->key_len, &id, &index, &version) ||
				    f->last_update_ms >= before_ms ||
				    named_has(&g->named, id, index, version))
					continue;
				if (txn_delete(g->ns, &k) == 0) {
					NS_COUNT_ADD(g->ns, chunks_reclaimed, 1);
					done++;
				}
			}
		}
	}
	free(w.found);
	return done;
}

long
txn_chunk_reclaim(struct namespace *ns, uint64_t before_ms)
{
	struct txn_namespace *x = txn_namespace_of(ns);
	struct gather *g;
	long rc;

	if (x == NULL || atomic_load_relaxed(&ns->chunk_objects) == 0)
		return 0;
	g = calloc(1, sizeof(*g));
	if (g == NULL)
		return -ENOMEM;
	g->ns = ns;
	g->rm = atomic_load_acquire(&x->remote);
	g->page = malloc(RPC_BODY_MAX);
	if (g->page == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	NS_COUNT_ADD(ns, chunk_reclaim_passes, 1);
	/* A node with seeds whose network is not attached (yet, or any more)
	 * cannot ask the others. */
	if (g->rm == NULL && (ns->root_cfg == NULL || ns->root_cfg->n_seeds > 0)) {
		rc = -EAGAIN;
	} else {
		rc = gather_plan(g);
		if (rc == 0)
			rc = gather_run(g);
	}
	if (rc == 0) {
		rc = reclaim_chunks(g, before_ms);
	} else if (rc == -EAGAIN || rc == TXN_ENOTMASTER || rc == -EHOSTDOWN ||
	    rc == -ETIMEDOUT || rc == -EIO || rc == -EBADMSG) {
		/* Not now: the next pass gathers again. */
		NS_COUNT_ADD(ns, chunk_reclaim_skipped, 1);
		rc = 0;
	} else {
		if (rc == -E2BIG)
			log_warn("txn", "{%s} chunk reclaim: the heads of large files need more than %zu MiB "
			    "to gather; orphaned chunks are not reclaimed", ns->name, txn_chunk_gather_max_bytes >> 20);
		NS_COUNT_ADD(ns, chunk_reclaim_skipped, 1);
	}
out:
	named_free(&g->named);
	free(g->page);
	free(g);
	return rc;
}
