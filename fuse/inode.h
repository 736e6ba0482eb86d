/*
 * inode.h - the daemon's nodes: what a FUSE nodeid stands for, and the
 * lookup counting that decides when a node may be freed.
 *
 * A nodeid is the address of a struct inode (FUSE_ROOT_ID for the root), as
 * libfuse's passthrough_ll does; st_ino is separate: a record's is kept with
 * it (record_attr.ino: stable across renames and restarts, the same on every
 * node of a cluster), a directory's comes from its path's digest.
 * Records and set directories live in a hash table keyed by (namespace,
 * digest); the root, namespace directories and the /.info tree are static.
 *
 * Lifetime: a dynamic inode lives while the kernel holds lookups on it
 * (nlookup, from entry replies, minus forgets) or the daemon holds
 * references (nref: open handles and short holds).  Both counts are
 * protected by the inode's table stripe lock; the inode is freed when both
 * reach 0.  Before freeing, the inode lock is taken once, so a thread that
 * replied under the lock and is still unlocking finishes first.
 */
#ifndef RECFS_FUSE_INODE_H
#define RECFS_FUSE_INODE_H

#include "recfsd.h"

#include <fuse_lowlevel.h>
#include <pthread.h>

enum inode_kind {
	INODE_ROOT,         /* the mount point */
	INODE_NAMESPACE,    /* /<ns>: sets and null-set records */
	INODE_SET,          /* /<ns>/<set>: records */
	INODE_RECORD,       /* a record: a regular file or a symbolic link (its mode type) */
	INODE_INFO_ROOT,    /* /.info */
	INODE_INFO_NSDIR,   /* /.info/namespace */
	INODE_INFO_SETS,    /* /.info/sets */
	INODE_INFO_SETS_NS, /* /.info/sets/<ns> */
	INODE_INFO_FILE,    /* a statistics or configuration file (info says which) */
	INODE_INFO_DIR,     /* /.info/config and the directories below it */
	INODE_TDIR,         /* a directory inside a set: its record (dir_id says its entries) */
};

struct handle;          /* handle.h */
struct snapshot;        /* handle.c */
struct filestate;       /* handle.c */
struct info_cached;     /* info.c */
struct xattr_probe;     /* xattr.c */
struct txn_chunk_map;   /* txn/chunk.h */

struct inode {
	struct inode *hash_next;      /* protected by the stripe lock */
	uint64_t nlookup;             /* protected by the stripe lock */
	uint32_t nref;                /* protected by the stripe lock */
	uint8_t stripe;               /* table stripe; changes under both stripe locks (rename) */
	uint8_t kind;                 /* enum inode_kind; constant */
	uint8_t info;                 /* enum info_file for INODE_INFO_FILE; constant */
	bool is_static;               /* never counted, never freed; constant */
	bool unlinked;                /* record deleted or replaced: invisible to finds;
	                               * set under the inode and stripe locks, read under either */
	uint8_t pages;                /* enum inode_pages: what the kernel's page cache holds; inode lock */
	union {
		uint8_t set_len;      /* records, sets, set statistics files: inode lock
		                       * (records: rename changes it) */
		uint8_t slot;         /* static inodes: their directory's entry in the static
		                       * tree (dirs), or the config table row (config files);
		                       * constant */
	};
	uint16_t key_len;             /* inode lock */
	uint16_t page_gen;            /* INODE_PAGES_GEN: that generation; inode lock */
	uint64_t kernel_size;         /* records: the size last sent to the kernel; inode lock */
	uint64_t dir_id;              /* INODE_TDIR: its directory id (txn.h, the tree); constant */
	int64_t meta_seen_ns;         /* records: when attributes with stored metadata were
	                               * last sent to the kernel (0: none); inode lock */
	struct namespace *ns;         /* constant (NULL for the root and /.info globals) */
	struct digest digest;         /* inode lock + stripe lock to change */
	char *name;                   /* set bytes then key bytes; inode lock */
	struct handle *handles;       /* open record handles (handle.h); inode lock */
	struct filestate *fs;         /* the open-file state all its handles share (handle.h); inode lock */
	struct inode *flush_next;     /* on the flush-max-ms list (handle.c): its lock */
	bool flush_listed;            /* on that list, holding a reference; inode lock */
	struct snapshot *snap;        /* the stored content readers share; inode lock */
	struct record_attr *orphan;   /* attributes kept after unlink for open handles; inode lock */
	struct txn_chunk_map *orphan_chunks; /* a large file unlinked or replaced under open
	                               * handles: the chunks they read, deleted at the last
	                               * release (handle.c); inode lock */
	int64_t writers_gone_ns;      /* when its last writable handle was released; inode lock */
	struct info_cached *info_cached; /* statistics files: the snapshot getattr measured (info.c); inode lock */
	struct xattr_probe *xprobe;   /* records: the value a size probe read (xattr.c); inode lock */
	pthread_mutex_t lock;
};

/* What the kernel's page cache of a record inode may hold (keep_cache). */
enum inode_pages {
	INODE_PAGES_MIXED = 0,        /* unknown: pages from several versions or unsaved writes */
	INODE_PAGES_EMPTY,            /* dropped at an open, and no handle was open to refill them */
	INODE_PAGES_GEN,              /* only pages of generation page_gen */
};

int inode_table_init(struct node *node);
/* Free every node; only once no request can run. */
void inode_table_fini(void);

struct inode *inode_root(void);

static inline struct inode *
inode_of(fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? inode_root() : (struct inode *)(uintptr_t)ino;
}

static inline fuse_ino_t
inode_id(const struct inode *ino)
{
	return ino->kind == INODE_ROOT ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)ino;
}

static inline bool
inode_is_dir(const struct inode *ino)
{
	return ino->kind != INODE_RECORD && ino->kind != INODE_INFO_FILE;
}

/* Outside the inode and stripe locks: a snapshot that may turn true at once. */
static inline bool
inode_unlinked(const struct inode *ino)
{
	return __atomic_load_n(&ino->unlinked, __ATOMIC_RELAXED);
}

static inline bool
inode_is_info(const struct inode *ino)
{
	return ino->kind == INODE_INFO_ROOT || ino->kind == INODE_INFO_NSDIR ||
	    ino->kind == INODE_INFO_SETS || ino->kind == INODE_INFO_SETS_NS ||
	    ino->kind == INODE_INFO_FILE || ino->kind == INODE_INFO_DIR;
}

/* A directory whose entries never change while mounted (root, .info...). */
static inline bool
inode_is_static_dir(const struct inode *ino)
{
	return ino->kind == INODE_ROOT || ino->kind == INODE_INFO_ROOT ||
	    ino->kind == INODE_INFO_NSDIR || ino->kind == INODE_INFO_SETS ||
	    ino->kind == INODE_INFO_DIR;
}

/* Child `name` of a static directory (root, /.info and its static subdirectories), or NULL. */
struct inode *inode_static_child(const struct inode *dir, const char *name, size_t len);
/* The i-th child of a static directory (readdir order), or NULL past the end. */
struct inode *inode_static_nth(const struct inode *dir, size_t i);
/* The directory that holds directory dir ("..": the root for the root). */
struct inode *inode_parent_dir(const struct inode *dir);
/* Name of a static inode (as listed in its directory). */
const char *inode_static_name(const struct inode *ino);
/* The directory of namespace ns. */
struct inode *inode_namespace_dir(const struct namespace *ns);

/* st_ino of a directory or statistics file (records: record_attr.ino). */
uint64_t inode_ino(const struct inode *ino);

/*
 * struct stat of an inode.  a: the record's attributes (records), the set's
 * (set directories: txn_set_stat), or only a->size (statistics files); NULL
 * for the other directories.  Records and sets take mode, owner and mtime
 * from stored metadata, else the daemon's defaults.  A set given NULL gets
 * placeholder times (for a readdir entry only).  A record's size is noted
 * in ino->kernel_size, and whether it has stored metadata in
 * ino->meta_seen_ns (the caller holds its lock and sends st to the kernel).
 */
void inode_stat(struct inode *ino, const struct record_attr *a, struct stat *st);
/* A full entry reply for ino (the caller has counted the lookup). */
void inode_entry(struct inode *ino, const struct record_attr *a, struct fuse_entry_param *e);

/* Digest that names set directory `set` of ns (never a record's digest). */
void inode_set_digest(const struct namespace *ns, const char *set, size_t len, struct digest *out);
/* Digest that names statistics file /.info/sets/<ns>/<set>. */
void inode_set_info_digest(const struct namespace *ns, const char *set, size_t len,
    struct digest *out);

/*
 * Find or create the inode for (ns, digest) and count one kernel lookup.
 * kind is INODE_RECORD (set may be empty: the null set), INODE_SET (key
 * empty) or INODE_INFO_FILE (a set's statistics file; key empty).  Returns
 * NULL only when out of memory.
 */
struct inode *inode_get(struct namespace *ns, enum inode_kind kind, const struct digest *d,
    const char *set, size_t set_len, const char *key, size_t key_len);
/*
 * The same for a record of the tree (a file, a symbolic link or, with
 * a->mode's type, a directory whose id is dir_id), counting one kernel
 * lookup.  An inode left under that digest by a record of another kind or
 * another directory id (changed by another node) is unlinked first.
 */
struct inode *inode_get_tree(struct namespace *ns, const struct record_attr *a, const char *set,
    size_t set_len, const char *key, size_t key_len, uint64_t dir_id);
/* The inode for (ns, digest) if the table has one, with a hold taken; else NULL. */
struct inode *inode_find_hold(struct namespace *ns, const struct digest *d);
/* Take / drop a daemon reference (open handles, short holds). */
void inode_hold(struct inode *ino);
void inode_put(struct inode *ino);
/* Drop n kernel lookups (forget); no-op on static inodes. */
void inode_forget(struct inode *ino, uint64_t n);

/* The record's key (inode lock held; records and sets). */
void inode_key(const struct inode *ino, struct txn_key *k);

/* The record is gone (unlink, or replaced by a rename): mark it so finds
 * skip it and the name can get a new inode.  It stays in the table (freed
 * by forget and release as usual).  Inode lock held. */
void inode_unlink_locked(struct inode *ino);

/*
 * The record moved to a new name: replace the name and rehash under the new
 * digest.  Any other inode still hashed under the new digest is unlinked.
 * Inode lock held.  Returns 0 or -ENOMEM (then nothing changed).
 */
int inode_rename_locked(struct inode *ino, const struct digest *d, const char *set,
    size_t set_len, const char *key, size_t key_len);

/* Inodes in the table (records and sets the kernel knows). */
uint64_t inode_count(void);

/* Call fn on every record inode, unlinked ones too; only when no request can run. */
void inode_foreach_record(void (*fn)(struct inode *ino, void *arg), void *arg);

#endif
