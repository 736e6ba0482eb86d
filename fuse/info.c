/*
 * info.c - snapshots of the /.info statistics files (see info.h).
 *
 * Why snapshots: the size of a statistics file is only known once it is
 * formatted.  The file is built whole at open and served from the handle
 * (direct_io, so read(2) returns exactly what we send), and built again
 * for getattr so st_size is the length cat will see: rsync and tar trust
 * st_size and would copy an empty file otherwise.
 *
 * Numbers move between that getattr and the open, so the snapshot getattr
 * measured is kept for a second and handed to the next open: what tar
 * reads is then exactly st_size bytes.
 *
 * Rejected: building lazily at read with st_size 0 (rsync and tar copy
 * nothing); a snapshot cached for long (the numbers would lag).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handle.h"
#include "info.h"
#include "inode.h"
#include "stats.h"

static const char *const info_names[INFO_FILE_COUNT] = {
#define X(e, name) name,
	INFO_FILES(X)
#undef X
};

static char info_node_id[32] = "0000000000000000";

/* How long a snapshot measured by getattr is handed to the next open. */
#define INFO_REUSE_NS 1000000000LL

struct info_cached {
	const struct inode *ino;       /* NULL: free slot */
	char *text;
	size_t len;
	int64_t built_ns;
};

static pthread_mutex_t info_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct info_cached info_cache[INFO_FILE_COUNT + CONFIG_NS_MAX];  /* protected by info_cache_lock */

/* A growing text buffer; err is sticky so callers check once at the end. */
struct sbuf {
	char *p;
	size_t len, cap;
	int err;
};

static void
sbuf_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->err != 0)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (p == NULL) {
			b->err = -ENOMEM;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sbuf_kv(struct sbuf *b, const char *name, const char *value)
{
	sbuf_add(b, name, strlen(name));
	sbuf_add(b, "=", 1);
	sbuf_add(b, value, strlen(value));
	sbuf_add(b, "\n", 1);
}

static void
sbuf_kv_u64(struct sbuf *b, const char *name, uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	sbuf_kv(b, name, buf);
}

/* txn_stat_fn: the engine's statistics become lines. */
static void
info_stat_line(void *arg, const char *name, const char *value)
{
	sbuf_kv(arg, name, value);
}

static void
info_statistics(struct sbuf *b)
{
	uint64_t counts[STAT_COUNT];

	txn_node_stats(recfsd.node, info_stat_line, b);
	stats_sum(counts);
	for (int i = 0; i < STAT_COUNT; i++)
		sbuf_kv_u64(b, stats_name((enum stats_counter)i), counts[i]);
	sbuf_kv_u64(b, "fuse_inodes", inode_count());
	sbuf_kv_u64(b, "fuse_open_handles", handle_count());
}

static void
info_namespaces(struct sbuf *b)
{
	unsigned n = node_namespace_count(recfsd.node);

	for (unsigned i = 0; i < n; i++) {
		const char *name = namespace_name(node_namespace(recfsd.node, i));

		sbuf_add(b, name, strlen(name));
		sbuf_add(b, "\n", 1);
	}
}

const char *
info_file_name(enum info_file f)
{
	return f < INFO_FILE_COUNT ? info_names[f] : "?";
}

void
info_set_node_id(const char *id)
{
	snprintf(info_node_id, sizeof(info_node_id), "%s", id);
}

static int
info_build(const struct inode *ino, char **out, size_t *len)
{
	struct sbuf b = { 0 };

	switch ((enum info_file)ino->info) {
	case INFO_STATISTICS:
		info_statistics(&b);
		break;
	case INFO_BUILD:
		sbuf_kv(&b, "version", RECFS_VERSION);
		sbuf_kv(&b, "fuse_library", fuse_pkgversion());
		break;
	case INFO_NODE:
		sbuf_kv(&b, "node_id", info_node_id);
		break;
	case INFO_NAMESPACES:
		info_namespaces(&b);
		break;
	case INFO_NAMESPACE:
		txn_namespace_stats(ino->ns, info_stat_line, &b);
		break;
	case INFO_SET: {
		struct txn_set_info si;
		int rc = txn_set_info(ino->ns, ino->name, ino->set_len, &si);

		if (rc != 0) {
			free(b.p);
			return rc;  /* the set is gone */
		}
		sbuf_kv_u64(&b, "objects", si.objects);
		sbuf_kv_u64(&b, "tombstones", si.tombstones);
		sbuf_kv_u64(&b, "data_used_bytes", si.data_bytes);
		break;
	}
	}
	sbuf_add(&b, "", 0);  /* an empty file still gets a buffer */
	if (b.err != 0) {
		free(b.p);
		return b.err;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

/* The snapshot last measured for an inode; protected by info_cache_lock. */
static struct info_cached *
info_cached_slot(const struct inode *ino)
{
	struct info_cached *free_slot = NULL;

	for (size_t i = 0; i < sizeof(info_cache) / sizeof(info_cache[0]); i++) {
		if (info_cache[i].ino == ino)
			return &info_cache[i];
		if (info_cache[i].ino == NULL && free_slot == NULL)
			free_slot = &info_cache[i];
	}
	return free_slot;
}

int
info_snapshot(const struct inode *ino, char **out, size_t *len)
{
	struct info_cached *c;
	int64_t now = recfsd_now_ns();

	/* Hand out the snapshot whose length stat just reported, if recent,
	 * so that tar and rsync read exactly st_size bytes. */
	pthread_mutex_lock(&info_cache_lock);
	c = info_cached_slot(ino);
	if (c != NULL && c->ino == ino && now - c->built_ns < INFO_REUSE_NS) {
		*out = malloc(c->len + 1);
		if (*out != NULL) {
			memcpy(*out, c->text, c->len + 1);
			*len = c->len;
			pthread_mutex_unlock(&info_cache_lock);
			return 0;
		}
	}
	pthread_mutex_unlock(&info_cache_lock);
	return info_build(ino, out, len);
}

size_t
info_size(const struct inode *ino)
{
	struct info_cached *c;
	char *p;
	size_t len;

	if (info_build(ino, &p, &len) != 0)
		return 0;
	pthread_mutex_lock(&info_cache_lock);
	c = info_cached_slot(ino);
	if (c != NULL) {
		free(c->text);
		c->ino = ino;
		c->text = p;
		c->len = len;
		c->built_ns = recfsd_now_ns();
		p = NULL;
	}
	pthread_mutex_unlock(&info_cache_lock);
	free(p);
	return len;
}

void
info_fini(void)
{
	for (size_t i = 0; i < sizeof(info_cache) / sizeof(info_cache[0]); i++) {
		free(info_cache[i].text);
		info_cache[i].text = NULL;
		info_cache[i].ino = NULL;
	}
}
