/*
 * inode.c - the node table and lookup counting (see inode.h).
 *
 * Design: records and set directories are kept in a hash table keyed by
 * (namespace, digest), split into 64 stripes, each with its own mutex and
 * its own bucket array that doubles when it fills.  A lookup touches one
 * stripe and never the engine's locks; no lock is global, so two worker
 * threads only meet when their digests fall in the same stripe.  The
 * digest is already uniformly random, so its bytes are the hash.
 *
 * Unlinked inodes stay in their bucket, flagged, until the kernel forgets
 * them: finds skip them, and freeing follows the same path for every
 * inode.  The root, namespace directories and /.info are static: built
 * once, never counted or freed.
 *
 * Rejected: one rwlock over one table (every lookup and forget would
 * write-lock it); nodeids as table indexes (needs a second map and a
 * generation scheme, a pointer is what passthrough_ll uses); keeping
 * record names in a fixed 320-byte array (a million cached inodes would
 * cost 320 MB).
 */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/atomic.h"
#include "base/clock.h"
#include "handle.h"
#include "info.h"
#include "inode.h"

#define INODE_STRIPES 64
#define INODE_BUCKETS_MIN 256

struct inode_stripe {
	pthread_mutex_t lock;
	struct inode **buckets;        /* protected by lock */
	size_t mask;                   /* buckets - 1; protected by lock */
	size_t count;                  /* inodes in this stripe; protected by lock */
} __attribute__((aligned(64)));

static struct inode_stripe stripes[INODE_STRIPES];
static uint64_t inode_total;       /* atomic: inodes in all stripes */

/*
 * The static tree: the root, namespace directories and everything under
 * /.info except the per-set statistics files.  Built by inode_table_init
 * into one pool (so nodeids stay valid), constant afterwards.  Each static
 * directory has an entry in dirs[] (its inode's slot) listing its children
 * in readdir order.
 */
struct static_dir {
	struct inode *dir;
	struct inode *parent;
	struct inode **child;           /* n entries */
	size_t n, cap;
};

static struct {
	struct inode *pool;             /* every static inode */
	size_t n_pool, cap_pool;
	struct static_dir *dirs;
	size_t n_dirs, cap_dirs;
	struct inode *root;
	unsigned n_ns;
	struct inode **ns_dirs;         /* n_ns: /<ns> */
} tree;

/* ---- hashing ------------------------------------------------------------- */

static inline uint64_t
inode_hash(const struct namespace *ns, const struct digest *d)
{
	uint64_t h;

	memcpy(&h, d->bytes + 12, sizeof(h));
	return h ^ ((uint64_t)(uintptr_t)ns >> 4) * 0x9e3779b97f4a7c15ULL;
}

static inline unsigned
inode_stripe_index(uint64_t h)
{
	return (unsigned)(h % INODE_STRIPES);
}

static inline size_t
inode_bucket(const struct inode_stripe *s, uint64_t h)
{
	return (size_t)(h / INODE_STRIPES) & s->mask;
}

/* Lock the stripe that currently holds ino.  Its stripe only changes in a
 * rename, under both stripe locks, so re-check after locking. */
static struct inode_stripe *
inode_stripe_lock(struct inode *ino)
{
	for (;;) {
		unsigned i = atomic_load_relaxed(&ino->stripe);
		struct inode_stripe *s = &stripes[i];

		pthread_mutex_lock(&s->lock);
		if (atomic_load_relaxed(&ino->stripe) == i)
			return s;
		pthread_mutex_unlock(&s->lock);
	}
}

/* Visible inode for (ns, d) in stripe s (locked). */
static struct inode *
stripe_find(struct inode_stripe *s, uint64_t h, const struct namespace *ns,
    const struct digest *d)
{
	for (struct inode *ino = s->buckets[inode_bucket(s, h)]; ino != NULL; ino = ino->hash_next)
		if (!ino->unlinked && ino->ns == ns && digest_compare(&ino->digest, d) == 0)
			return ino;
	return NULL;
}

/* Double the bucket array; on allocation failure keep the longer chains. */
static void
stripe_grow(struct inode_stripe *s)
{
	size_t n = (s->mask + 1) * 2;
	struct inode **b = calloc(n, sizeof(*b));

	if (b == NULL)
		return;
	for (size_t i = 0; i <= s->mask; i++) {
		struct inode *ino = s->buckets[i], *next;

		for (; ino != NULL; ino = next) {
			size_t j = (size_t)(inode_hash(ino->ns, &ino->digest) / INODE_STRIPES) & (n - 1);

			next = ino->hash_next;
			ino->hash_next = b[j];
			b[j] = ino;
		}
	}
	free(s->buckets);
	s->buckets = b;
	s->mask = n - 1;
}

static void
stripe_insert(struct inode_stripe *s, unsigned index, uint64_t h, struct inode *ino)
{
	size_t j;

	if (s->count > s->mask)
		stripe_grow(s);
	j = inode_bucket(s, h);
	ino->hash_next = s->buckets[j];
	s->buckets[j] = ino;
	atomic_store_relaxed(&ino->stripe, (uint8_t)index);
	s->count++;
	atomic_inc(&inode_total);
}

static void
stripe_remove(struct inode_stripe *s, struct inode *ino)
{
	struct inode **pp = &s->buckets[inode_bucket(s, inode_hash(ino->ns, &ino->digest))];

	for (; *pp != NULL; pp = &(*pp)->hash_next) {
		if (*pp == ino) {
			*pp = ino->hash_next;
			s->count--;
			atomic_dec(&inode_total);
			return;
		}
	}
}

/* ---- allocation ---------------------------------------------------------- */

static struct inode *
inode_alloc(struct namespace *ns, enum inode_kind kind, const struct digest *d,
    const char *set, size_t set_len, const char *key, size_t key_len)
{
	struct inode *ino = calloc(1, sizeof(*ino));

	if (ino == NULL)
		return NULL;
	ino->name = malloc(set_len + key_len + 1);
	if (ino->name == NULL) {
		free(ino);
		return NULL;
	}
	memcpy(ino->name, set, set_len);
	memcpy(ino->name + set_len, key, key_len);
	ino->name[set_len + key_len] = '\0';
	ino->set_len = (uint8_t)set_len;
	ino->key_len = (uint16_t)key_len;
	ino->kind = (uint8_t)kind;
	if (kind == INODE_INFO_FILE)
		ino->info = INFO_SET;   /* the only dynamic statistics file */
	ino->ns = ns;
	ino->digest = *d;
	pthread_mutex_init(&ino->lock, NULL);
	return ino;
}

static void
inode_destroy(struct inode *ino)
{
	/* A thread may have replied under the lock and not yet released it. */
	pthread_mutex_lock(&ino->lock);
	pthread_mutex_unlock(&ino->lock);
	pthread_mutex_destroy(&ino->lock);
	handle_inode_fini(ino);
	info_inode_fini(ino);
	free(ino->orphan);
	free(ino->xprobe);  /* one allocation (xattr.c) */
	free(ino->name);
	free(ino);
}

/* ---- the static tree ----------------------------------------------------- */

/* A path's digest: a '/' can never be in a key created through the mount,
 * so these digests never name a record. */
static void
path_digest_of(struct digest *out, const char *path)
{
	digest_compute(out, NULL, 0, path, strlen(path));
}

static void
path_digest(struct digest *out, const char *a, const char *b, const char *c)
{
	char path[160];

	snprintf(path, sizeof(path), "/%s%s%s%s%s", a, b[0] ? "/" : "", b, c[0] ? "/" : "", c);
	path_digest_of(out, path);
}

/* A new static inode named name under parent (NULL for the root), whose
 * path is parent's path + "/" + name; dir: it gets a directory entry. */
static struct inode *
static_add(struct inode *parent, enum inode_kind kind, struct namespace *ns, const char *name,
    const char *path, bool dir)
{
	struct inode *ino;
	struct digest d;

	if (tree.n_pool == tree.cap_pool || (dir && tree.n_dirs == tree.cap_dirs))
		return NULL;  /* the counts in inode_table_init are wrong */
	ino = &tree.pool[tree.n_pool];
	ino->name = strdup(name);
	if (ino->name == NULL)
		return NULL;
	tree.n_pool++;
	path_digest_of(&d, path);
	ino->key_len = (uint16_t)strlen(name);
	ino->kind = (uint8_t)kind;
	ino->ns = ns;
	ino->is_static = true;
	ino->digest = d;
	pthread_mutex_init(&ino->lock, NULL);
	if (dir) {
		struct static_dir *sd = &tree.dirs[tree.n_dirs];

		ino->slot = (uint8_t)tree.n_dirs++;
		sd->dir = ino;
		sd->parent = parent != NULL ? parent : ino;
	}
	if (parent != NULL) {
		struct static_dir *pd = &tree.dirs[parent->slot];

		if (pd->n == pd->cap) {
			size_t cap = pd->cap ? pd->cap * 2 : 8;
			struct inode **c = realloc(pd->child, cap * sizeof(*c));

			if (c == NULL)
				return NULL;
			pd->child = c;
			pd->cap = cap;
		}
		pd->child[pd->n++] = ino;
	}
	return ino;
}

/* The configuration files of one directory: rows of sections a (and b). */
static int
static_add_config(struct inode *dir, const char *dir_path, struct namespace *ns,
    enum config_section a, enum config_section b)
{
	size_t n;
	const struct config_param *p = config_params(&n);

	for (size_t i = 0; i < n; i++) {
		char path[256];
		struct inode *f;

		if (p[i].section != a && p[i].section != b)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir_path, p[i].name);
		f = static_add(dir, INODE_INFO_FILE, ns, p[i].name, path, false);
		if (f == NULL)
			return -ENOMEM;
		f->info = INFO_CONFIG;
		f->slot = (uint8_t)i;
	}
	return 0;
}

/* The /.info/config/<section> directories (the YAML's top-level keys). */
static const struct {
	const char *name;
	enum config_section section;
} config_dirs[] = {
	{ "service", CONFIG_SERVICE },
	{ "logging", CONFIG_LOGGING },
	{ "fuse", CONFIG_FUSE },
	{ "network", CONFIG_NETWORK },
};

static int
static_tree_build(struct node *node)
{
	size_t n_params;
	struct inode *info, *nsdir, *sets, *config, *config_ns, *c;
	char path[256];

	(void)config_params(&n_params);
	tree.n_ns = node_namespace_count(node);
	/* root, .info, its files, namespace, sets, config, its section dirs and
	 * namespaces; per namespace: its directory, statistics file, sets
	 * directory and config directory; every parameter file. */
	tree.cap_pool = 6 + INFO_FILE_COUNT + 4 + 4 * (size_t)tree.n_ns +
	    n_params * (1 + (size_t)tree.n_ns);
	tree.cap_dirs = 6 + 4 + 3 * (size_t)tree.n_ns;
	if (tree.cap_dirs > UINT8_MAX + 1 || n_params > UINT8_MAX + 1)
		return -EINVAL;  /* slot is 8 bits: at most 32 namespaces are configured */
	tree.pool = calloc(tree.cap_pool, sizeof(*tree.pool));
	tree.dirs = calloc(tree.cap_dirs, sizeof(*tree.dirs));
	tree.ns_dirs = calloc(tree.n_ns ? tree.n_ns : 1, sizeof(*tree.ns_dirs));
	if (tree.pool == NULL || tree.dirs == NULL || tree.ns_dirs == NULL)
		return -ENOMEM;

	tree.root = static_add(NULL, INODE_ROOT, NULL, "", "/", true);
	if (tree.root == NULL)
		return -ENOMEM;
	/* Namespaces, then .info. */
	for (unsigned i = 0; i < tree.n_ns; i++) {
		struct namespace *ns = node_namespace(node, i);

		snprintf(path, sizeof(path), "/%s", namespace_name(ns));
		tree.ns_dirs[i] = static_add(tree.root, INODE_NAMESPACE, ns, namespace_name(ns), path,
		    true);
		if (tree.ns_dirs[i] == NULL)
			return -ENOMEM;
	}
	info = static_add(tree.root, INODE_INFO_ROOT, NULL, ".info", "/.info", true);
	if (info == NULL)
		return -ENOMEM;
	for (int i = 0; i < INFO_FILE_COUNT; i++) {
		snprintf(path, sizeof(path), "/.info/%s", info_file_name((enum info_file)i));
		c = static_add(info, INODE_INFO_FILE, NULL, info_file_name((enum info_file)i), path,
		    false);
		if (c == NULL)
			return -ENOMEM;
		c->info = (uint8_t)i;
	}
	nsdir = static_add(info, INODE_INFO_NSDIR, NULL, "namespace", "/.info/namespace", true);
	sets = static_add(info, INODE_INFO_SETS, NULL, "sets", "/.info/sets", true);
	config = static_add(info, INODE_INFO_DIR, NULL, "config", "/.info/config", true);
	if (nsdir == NULL || sets == NULL || config == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < sizeof(config_dirs) / sizeof(config_dirs[0]); i++) {
		snprintf(path, sizeof(path), "/.info/config/%s", config_dirs[i].name);
		c = static_add(config, INODE_INFO_DIR, NULL, config_dirs[i].name, path, true);
		if (c == NULL || static_add_config(c, path, NULL, config_dirs[i].section,
		    config_dirs[i].section) != 0)
			return -ENOMEM;
	}
	config_ns = static_add(config, INODE_INFO_DIR, NULL, "namespaces", "/.info/config/namespaces",
	    true);
	if (config_ns == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < tree.n_ns; i++) {
		struct namespace *ns = node_namespace(node, i);
		const char *name = namespace_name(ns);

		snprintf(path, sizeof(path), "/.info/namespace/%s", name);
		c = static_add(nsdir, INODE_INFO_FILE, ns, name, path, false);
		if (c == NULL)
			return -ENOMEM;
		c->info = INFO_NAMESPACE;
		snprintf(path, sizeof(path), "/.info/sets/%s", name);
		if (static_add(sets, INODE_INFO_SETS_NS, ns, name, path, true) == NULL)
			return -ENOMEM;
		/* Storage-engine parameters flattened into the namespace's folder. */
		snprintf(path, sizeof(path), "/.info/config/namespaces/%s", name);
		c = static_add(config_ns, INODE_INFO_DIR, ns, name, path, true);
		if (c == NULL || static_add_config(c, path, ns, CONFIG_NAMESPACE, CONFIG_STORAGE) != 0)
			return -ENOMEM;
	}
	return 0;
}

int
inode_table_init(struct node *node)
{
	for (int i = 0; i < INODE_STRIPES; i++) {
		pthread_mutex_init(&stripes[i].lock, NULL);
		stripes[i].buckets = calloc(INODE_BUCKETS_MIN, sizeof(struct inode *));
		if (stripes[i].buckets == NULL)
			return -ENOMEM;
		stripes[i].mask = INODE_BUCKETS_MIN - 1;
	}
	return static_tree_build(node);
}

void
inode_table_fini(void)
{
	for (int i = 0; i < INODE_STRIPES; i++) {
		struct inode_stripe *s = &stripes[i];

		for (size_t j = 0; s->buckets != NULL && j <= s->mask; j++) {
			struct inode *ino = s->buckets[j], *next;

			for (; ino != NULL; ino = next) {
				next = ino->hash_next;
				inode_destroy(ino);
			}
		}
		free(s->buckets);
		s->buckets = NULL;
		s->count = 0;
	}
	for (size_t i = 0; i < tree.n_pool; i++) {
		info_inode_fini(&tree.pool[i]);
		pthread_mutex_destroy(&tree.pool[i].lock);
		free(tree.pool[i].name);
	}
	for (size_t i = 0; i < tree.n_dirs; i++)
		free(tree.dirs[i].child);
	free(tree.pool);
	free(tree.dirs);
	free(tree.ns_dirs);
	memset(&tree, 0, sizeof(tree));
}

struct inode *
inode_root(void)
{
	return tree.root;
}

struct inode *
inode_static_nth(const struct inode *dir, size_t i)
{
	const struct static_dir *sd;

	if (!dir->is_static || dir->kind == INODE_NAMESPACE || dir->kind == INODE_INFO_FILE ||
	    dir->slot >= tree.n_dirs)
		return NULL;
	sd = &tree.dirs[dir->slot];
	return i < sd->n ? sd->child[i] : NULL;
}

struct inode *
inode_static_child(const struct inode *dir, const char *name, size_t len)
{
	struct inode *c;

	/* At most 32 namespaces and a few dozen files: a scan is cheapest. */
	for (size_t i = 0; (c = inode_static_nth(dir, i)) != NULL; i++)
		if (c->key_len == len && memcmp(c->name, name, len) == 0)
			return c;
	return NULL;
}

struct inode *
inode_parent_dir(const struct inode *dir)
{
	if (dir->kind == INODE_SET)
		return inode_namespace_dir(dir->ns);
	if (dir->is_static && dir->kind != INODE_INFO_FILE && dir->slot < tree.n_dirs)
		return tree.dirs[dir->slot].parent;
	return tree.root;
}

const char *
inode_static_name(const struct inode *ino)
{
	return ino->name;
}

struct inode *
inode_namespace_dir(const struct namespace *ns)
{
	for (unsigned i = 0; i < tree.n_ns; i++)
		if (tree.ns_dirs[i]->ns == ns)
			return tree.ns_dirs[i];
	return NULL;
}

uint64_t
inode_ino(const struct inode *ino)
{
	return ino->kind == INODE_ROOT ? FUSE_ROOT_ID : digest_inode(&ino->digest);
}

static void
ns_to_timespec(int64_t ns, struct timespec *ts)
{
	/* Floor division: times before 1970 keep tv_nsec in [0, 1e9). */
	int64_t sec = ns / 1000000000LL, rem = ns % 1000000000LL;

	if (rem < 0) {
		rem += 1000000000LL;
		sec--;
	}
	ts->tv_sec = (time_t)sec;
	ts->tv_nsec = (long)rem;
}

/* S_IFREG, S_IFLNK or S_IFDIR: a record's type (a directory's inode stays one). */
static mode_t
inode_type_of(const struct inode *ino, const struct record_attr *a)
{
	if (ino->kind == INODE_TDIR)
		return S_IFDIR;
	if (a->has_meta && (a->mode & RECORD_MODE_TYPE_MASK) == RECORD_MODE_LINK)
		return S_IFLNK;
	return S_IFREG;
}

void
inode_stat(struct inode *ino, const struct record_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_blksize = 4096;
	st->st_uid = recfsd.uid;
	st->st_gid = recfsd.gid;
	switch (ino->kind) {
	case INODE_RECORD:
	case INODE_TDIR:
		/* From the attributes, not the inode: the record keeps it. */
		st->st_ino = a->ino != 0 ? a->ino : digest_inode(&a->digest);
		st->st_mode = inode_type_of(ino, a) | (a->has_meta ? (a->mode & 07777) : recfsd.file_mode);
		st->st_nlink = ino->unlinked ? 0 : ino->kind == INODE_TDIR ? 2 : 1;
		if (a->has_meta) {
			st->st_uid = a->uid;
			st->st_gid = a->gid;
		}
		/* A directory's content is its id: show the usual block instead. */
		st->st_size = ino->kind == INODE_TDIR ? 4096 : (off_t)a->size;
		st->st_blocks = (blkcnt_t)((st->st_size + 511) / 512);
		ino->kernel_size = a->size;
		ino->meta_seen_ns = a->has_meta ? recfsd_now_ns() : 0;
		ns_to_timespec(a->mtime_ns, &st->st_mtim);
		/* Reads never update the atime (noatime); one set by utimensat is kept. */
		ns_to_timespec(a->atime_ns != 0 ? a->atime_ns : a->mtime_ns, &st->st_atim);
		ns_to_timespec(clock_epoch_ms_to_unix_ns(a->last_update_ms), &st->st_ctim);
		return;
	case INODE_INFO_FILE:
		st->st_ino = inode_ino(ino);
		/* Dynamic parameters are written through their files. */
		st->st_mode = S_IFREG | (info_writable(ino) ? 0644 : 0444);
		st->st_nlink = 1;
		st->st_size = a != NULL ? (off_t)a->size : 0;
		st->st_blocks = (st->st_size + 511) / 512;
		/* Fixed times: tar would call a file whose ctime moves while it
		 * reads "changed as we read it"; the content is new each open. */
		ns_to_timespec(recfsd.start_ns, &st->st_mtim);
		break;
	case INODE_SET:
		st->st_ino = inode_ino(ino);
		st->st_mode = S_IFDIR | recfsd.dir_mode;
		st->st_nlink = 2;
		if (a == NULL) {
			/* Only what a plain listing needs. */
			ns_to_timespec(recfsd.start_ns, &st->st_mtim);
			break;
		}
		if (a->has_meta) {
			st->st_mode = S_IFDIR | (a->mode & 07777);
			st->st_uid = a->uid;
			st->st_gid = a->gid;
		}
		ns_to_timespec(a->mtime_ns, &st->st_mtim);
		ns_to_timespec(a->atime_ns != 0 ? a->atime_ns : a->mtime_ns, &st->st_atim);
		ns_to_timespec(clock_epoch_ms_to_unix_ns(a->last_update_ms), &st->st_ctim);
		return;
	case INODE_INFO_ROOT:
	case INODE_INFO_NSDIR:
	case INODE_INFO_SETS:
	case INODE_INFO_SETS_NS:
	case INODE_INFO_DIR:
		st->st_ino = inode_ino(ino);
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		ns_to_timespec(recfsd.start_ns, &st->st_mtim);
		break;
	default:
		st->st_ino = inode_ino(ino);
		st->st_mode = S_IFDIR | recfsd.dir_mode;
		st->st_nlink = 2;
		ns_to_timespec(recfsd.start_ns, &st->st_mtim);
		break;
	}
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

void
inode_entry(struct inode *ino, const struct record_attr *a, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = inode_id(ino);
	e->generation = 1;
	inode_stat(ino, a, &e->attr);
	/* Statistics change all the time: never let the kernel cache their
	 * size.  The .info directories keep fixed attributes, so the kernel
	 * may cache those (a path walk to a stats file then asks once, for
	 * the file itself). */
	e->attr_timeout = ino->kind == INODE_INFO_FILE ? 0 : recfsd.attr_timeout;
	e->entry_timeout = recfsd.entry_timeout;
}

void
inode_set_digest(const struct namespace *ns, const char *set, size_t len, struct digest *out)
{
	char name[RECORD_SET_MAX + 1];

	len = len < sizeof(name) - 1 ? len : sizeof(name) - 1;
	memcpy(name, set, len);
	name[len] = '\0';
	path_digest(out, namespace_name(ns), name, "");
}

void
inode_set_info_digest(const struct namespace *ns, const char *set, size_t len, struct digest *out)
{
	char name[RECORD_SET_MAX + 1], sub[CONFIG_NAME_MAX + 8];

	len = len < sizeof(name) - 1 ? len : sizeof(name) - 1;
	memcpy(name, set, len);
	name[len] = '\0';
	snprintf(sub, sizeof(sub), "sets/%s", namespace_name(ns));
	path_digest(out, ".info", sub, name);
}

/* ---- counting ------------------------------------------------------------ */

static struct inode *
inode_get_id(struct namespace *ns, enum inode_kind kind, const struct digest *d,
    const char *set, size_t set_len, const char *key, size_t key_len, uint64_t dir_id);

struct inode *
inode_get(struct namespace *ns, enum inode_kind kind, const struct digest *d,
    const char *set, size_t set_len, const char *key, size_t key_len)
{
	return inode_get_id(ns, kind, d, set, set_len, key, key_len, 0);
}

/* inode_get; a new inode gets dir_id before anyone can see it. */
static struct inode *
inode_get_id(struct namespace *ns, enum inode_kind kind, const struct digest *d,
    const char *set, size_t set_len, const char *key, size_t key_len, uint64_t dir_id)
{
	uint64_t h = inode_hash(ns, d);
	unsigned si = inode_stripe_index(h);
	struct inode_stripe *s = &stripes[si];
	struct inode *ino, *fresh = NULL;

	pthread_mutex_lock(&s->lock);
	ino = stripe_find(s, h, ns, d);
	if (ino == NULL) {
		/* Allocate outside the stripe lock, then look again. */
		pthread_mutex_unlock(&s->lock);
		fresh = inode_alloc(ns, kind, d, set, set_len, key, key_len);
		if (fresh == NULL)
			return NULL;
		fresh->dir_id = dir_id;
		pthread_mutex_lock(&s->lock);
		ino = stripe_find(s, h, ns, d);
		if (ino == NULL) {
			stripe_insert(s, si, h, fresh);
			ino = fresh;
			fresh = NULL;
		}
	}
	ino->nlookup++;
	pthread_mutex_unlock(&s->lock);
	if (fresh != NULL)
		inode_destroy(fresh);
	return ino;
}

struct inode *
inode_get_tree(struct namespace *ns, const struct record_attr *a, const char *set,
    size_t set_len, const char *key, size_t key_len, uint64_t dir_id)
{
	bool is_dir = a->has_meta && (a->mode & RECORD_MODE_TYPE_MASK) == RECORD_MODE_DIR;
	enum inode_kind kind = is_dir ? INODE_TDIR : INODE_RECORD;

	for (int tries = 0; tries < 2; tries++) {
		struct inode *ino = inode_get_id(ns, kind, &a->digest, set, set_len, key, key_len,
		    is_dir ? dir_id : 0);

		if (ino == NULL)
			return NULL;
		if (ino->kind == kind && (!is_dir || ino->dir_id == dir_id))
			return ino;
		/* A stale inode of what was there before: retire it. */
		pthread_mutex_lock(&ino->lock);
		inode_unlink_locked(ino);
		pthread_mutex_unlock(&ino->lock);
		inode_forget(ino, 1);
	}
	return NULL;
}

struct inode *
inode_find_hold(struct namespace *ns, const struct digest *d)
{
	uint64_t h = inode_hash(ns, d);
	struct inode_stripe *s = &stripes[inode_stripe_index(h)];
	struct inode *ino;

	pthread_mutex_lock(&s->lock);
	ino = stripe_find(s, h, ns, d);
	if (ino != NULL)
		ino->nref++;
	pthread_mutex_unlock(&s->lock);
	return ino;
}

void
inode_hold(struct inode *ino)
{
	struct inode_stripe *s;

	if (ino->is_static)
		return;
	s = inode_stripe_lock(ino);
	ino->nref++;
	pthread_mutex_unlock(&s->lock);
}

/* Drop counts under the stripe lock; free when nothing refers to ino. */
static void
inode_release_counts(struct inode *ino, uint64_t lookups, uint32_t refs)
{
	struct inode_stripe *s = inode_stripe_lock(ino);
	bool dead;

	ino->nlookup -= lookups < ino->nlookup ? lookups : ino->nlookup;
	ino->nref -= refs < ino->nref ? refs : ino->nref;
	dead = ino->nlookup == 0 && ino->nref == 0;
	if (dead)
		stripe_remove(s, ino);
	pthread_mutex_unlock(&s->lock);
	if (dead)
		inode_destroy(ino);
}

void
inode_put(struct inode *ino)
{
	if (!ino->is_static)
		inode_release_counts(ino, 0, 1);
}

void
inode_forget(struct inode *ino, uint64_t n)
{
	if (!ino->is_static)
		inode_release_counts(ino, n, 0);
}

/* ---- names --------------------------------------------------------------- */

void
inode_key(const struct inode *ino, struct txn_key *k)
{
	k->set = ino->name;
	k->set_len = ino->set_len;
	k->key = ino->name + ino->set_len;
	k->key_len = ino->key_len;
}

void
inode_unlink_locked(struct inode *ino)
{
	struct inode_stripe *s;

	if (ino->is_static)
		return;
	s = inode_stripe_lock(ino);
	atomic_store_relaxed(&ino->unlinked, true);
	pthread_mutex_unlock(&s->lock);
}

int
inode_rename_locked(struct inode *ino, const struct digest *d, const char *set,
    size_t set_len, const char *key, size_t key_len)
{
	char *name = malloc(set_len + key_len + 1), *old;
	uint64_t h = inode_hash(ino->ns, d);
	unsigned from = ino->stripe, to = inode_stripe_index(h);
	struct inode *victim;

	if (name == NULL)
		return -ENOMEM;
	memcpy(name, set, set_len);
	memcpy(name + set_len, key, key_len);
	name[set_len + key_len] = '\0';
	/* Only a rename changes ino->stripe, and it holds the inode lock:
	 * reading it plainly here is safe.  Two stripes: lower index first. */
	pthread_mutex_lock(&stripes[from < to ? from : to].lock);
	if (from != to)
		pthread_mutex_lock(&stripes[from < to ? to : from].lock);
	victim = stripe_find(&stripes[to], h, ino->ns, d);
	if (victim != NULL && victim != ino)
		atomic_store_relaxed(&victim->unlinked, true);  /* the caller normally did this */
	stripe_remove(&stripes[from], ino);
	ino->digest = *d;
	stripe_insert(&stripes[to], to, h, ino);
	old = ino->name;
	ino->name = name;
	ino->set_len = (uint8_t)set_len;
	ino->key_len = (uint16_t)key_len;
	if (from != to)
		pthread_mutex_unlock(&stripes[from < to ? to : from].lock);
	pthread_mutex_unlock(&stripes[from < to ? from : to].lock);
	free(old);
	return 0;
}

uint64_t
inode_count(void)
{
	return atomic_load_relaxed(&inode_total);
}

void
inode_foreach_record(void (*fn)(struct inode *ino, void *arg), void *arg)
{
	for (int i = 0; i < INODE_STRIPES; i++) {
		struct inode_stripe *s = &stripes[i];

		for (size_t j = 0; s->buckets != NULL && j <= s->mask; j++)
			for (struct inode *ino = s->buckets[j]; ino != NULL; ino = ino->hash_next)
				if (ino->kind == INODE_RECORD)
					fn(ino, arg);
	}
}
