/*
 * handle.c - one open-file state per record, shared by its handles (see
 * handle.h).
 *
 * Design: a record is stored as a whole, so its open-file state is a whole
 * copy of the content (struct filestate), kept on the inode and shared by
 * every handle of the record: the view of two descriptors a local file
 * system gives (a write through one is read through the other at once,
 * O_APPEND writers never overwrite each other, a truncate is seen by all).
 * It is stored with one txn_write when dirty: at close, fsync, the release
 * of a handle that wrote, and flush-max-ms after it became dirty (a timer
 * thread walks a list of dirty records).  A refused write (EFBIG) drops the
 * state's unsaved changes without touching the stored record.
 *
 * Readers of a record with no loaded state read a snapshot: the txn_record
 * of one txn_read, refcounted and shared by every reader of the same
 * generation, never copied, so each read(2) returns one whole stored
 * version.  The snapshot readers share is kept on the inode while a handle
 * is open, and checked against the record's generation (an index lookup)
 * before a new reader takes it.
 *
 * The kernel's page cache is per inode, so open() only sets keep_cache
 * when the inode's pages are known to hold exactly the record's current
 * generation: inode->pages tracks that (inode.h, enum inode_pages).
 * Write-only and O_APPEND handles use direct I/O (see handle_direct_io);
 * the kernel's O_APPEND offset comes from its cached size, which another
 * process's writes may have moved: the daemon puts O_APPEND writes at the
 * state's end itself.  Cached readers see other handles' writes because
 * every write invalidates the inode's cached attributes and
 * FUSE_CAP_AUTO_INVAL_DATA drops the pages when the mtime (unsaved mtime
 * included) moved.  A store tells the kernel to drop the inode's cached
 * attributes (ctime moved: fuse_lowlevel_notify_inval_inode, attributes
 * only, so no page lock is taken under a request).
 *
 * Locking: the state, the inode's handle list and its snapshot pointer are
 * protected by the inode lock, which is also held across the engine call
 * that stores the state, so a rename (same lock) never sends content to
 * the old name.  Snapshot reference counts are atomic: a reader takes one,
 * drops the lock, replies, and drops it, touching neither the handle nor
 * the inode after the reply (the kernel may release both as soon as it has
 * the data).  Reads of the state reply under the inode lock; release takes
 * that lock before it frees anything.  The flush list lock is a leaf,
 * taken under the inode lock; the timer never takes an inode lock while
 * holding it.
 *
 * Rejected: a private buffer per handle, stored at its close (what this
 * file did first: the last close won, and two shells appending with >>
 * lost lines); the page-cache writeback mode (the kernel would own size
 * and O_APPEND offsets, and store pages behind our back); writing through
 * on every write(2) (each 4 KiB write would rewrite the whole record).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/atomic.h"
#include "base/log.h"
#include "chunkfile.h"
#include "handle.h"
#include "info.h"
#include "stats.h"

/* Bytes of a stored record around its content: header, end mark and CRC,
 * POSIX metadata, the file bin's own header (docs/storage-format.md). */
#define RECORD_END_BYTES 8
#define RECORD_META_BYTES 24
#define RECORD_BIN_HEADER(name_len) (1 + (name_len) + 1)

/* One stored version of a record's content, shared by readers. */
struct snapshot {
	uint32_t refs;                /* atomic: a reply in flight holds one without any lock */
	uint16_t generation;
	uint64_t last_update_ms;
	bool have_rec;                /* rec holds a record (else: none was found) */
	bool foreign;                 /* read by name after the inode was unlinked */
	const char *data;             /* the file bin's bytes, inside rec.buf */
	size_t len;
	struct txn_record rec;
	/* A large file: its head's map (len is its size, data empty), and one
	 * state to read chunks through (a clean chunk cache; inode lock). */
	struct txn_chunk_map *map;
	struct chunkfile *cf;
};

/* The open-file state of a record (inode->fs); inode lock. */
struct filestate {
	char *data;                   /* len valid bytes, cap allocated */
	size_t len, cap;
	uint64_t limit;               /* largest content that surely fits max-record-size */
	int64_t mtime_ns;             /* last change (or utimens), Unix ns */
	int64_t dirty_since_ns;       /* when it became dirty (flush-max-ms) */
	bool loaded;                  /* data holds the content */
	bool dirty;                   /* data differs from the stored record */
	bool mtime_explicit;          /* mtime_ns set by utimens: stored with the content */
	bool privs_clear;             /* the mode has no set-ID bit a write must clear */
	struct chunkfile *cf;         /* a large file (chunkfile.h): data is unused, len
	                               * follows chunkfile_size */
};

static uint64_t handle_total;   /* atomic: open handles */

static bool
handle_writable(const struct handle *h)
{
	return (h->flags & O_ACCMODE) != O_RDONLY;
}

/* ---- snapshots ------------------------------------------------------------ */

static void
snapshot_hold(struct snapshot *s)
{
	atomic_inc(&s->refs);
}

/* Drop a reference; needs no lock, so a reader can drop the one it held
 * across its reply without touching the inode again. */
static void
snapshot_put(struct snapshot *s)
{
	if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	if (s->have_rec)
		txn_record_release(&s->rec);
	if (s->map != NULL) {
		txn_chunk_map_free(s->map);
		free(s->map);
	}
	chunkfile_free(s->cf);
	free(s);
}

/* A large file's head: keep its map; the content is in its chunks. */
static int
snapshot_map_load(struct inode *ino, struct snapshot *s)
{
	const struct bin *mb = txn_chunk_map_bin(&s->rec.rec);
	int rc;

	if (mb == NULL)
		return 0;
	s->map = calloc(1, sizeof(*s->map));
	if (s->map == NULL)
		return -ENOMEM;
	rc = txn_chunk_map_decode(mb->v.bytes.data, mb->v.bytes.len, s->map);
	if (rc == -EINVAL) {
		log_error("recfsd", "{%s} %.*s/%.*s: the chunk map of a large file does not decode",
		    namespace_name(ino->ns), (int)ino->set_len, ino->name, (int)ino->key_len,
		    ino->name + ino->set_len);
		rc = -EIO;
	}
	if (rc != 0)
		return rc;
	s->data = "";
	s->len = s->map->size;
	return chunkfile_from_map(&s->cf, s->map);
}

static int
snapshot_load(struct inode *ino, const struct txn_key *k, struct snapshot **out)
{
	struct snapshot *s = calloc(1, sizeof(*s));
	const struct bin *fb;
	int rc;

	if (s == NULL)
		return -ENOMEM;
	s->refs = 1;
	s->data = "";
	rc = txn_read(ino->ns, k, &s->rec);
	if (rc == -ENOENT) {
		/* Expired or deleted elsewhere: an empty file, as a local
		 * filesystem shows a file truncated by someone else. */
		*out = s;
		return 0;
	}
	if (rc != 0) {
		free(s);
		return rc;
	}
	s->have_rec = true;
	s->generation = s->rec.attr.generation;
	s->last_update_ms = s->rec.attr.last_update_ms;
	fb = s->rec.file_bin;
	if (fb != NULL && (fb->type == BIN_BLOB || fb->type == BIN_STRING)) {
		s->data = (const char *)fb->v.bytes.data;
		s->len = fb->v.bytes.len;
	}
	if ((rc = snapshot_map_load(ino, s)) != 0) {
		snapshot_put(s);
		return rc;
	}
	stats_inc(STAT_fuse_record_loads);
	*out = s;
	return 0;
}

/*
 * The snapshot of ino's record, with a reference for the caller: the one
 * readers share if it is still the record's generation, else a new one.
 * An unlinked inode keeps what it has; with nothing kept, it reads the
 * record its old name holds now (a reader racing a rename reads the new
 * version whole).  Inode lock held.
 */
static int
snapshot_get_locked(struct inode *ino, struct snapshot **out)
{
	struct snapshot *s = ino->snap;
	struct record_attr a;
	struct txn_key k;
	int rc;

	inode_key(ino, &k);
	if (s != NULL) {
		if (ino->unlinked)
			goto share;
		rc = txn_stat(ino->ns, &k, &a);
		if (rc == 0 && s->have_rec && !a.damaged && a.generation == s->generation &&
		    a.last_update_ms == s->last_update_ms)
			goto share;
		if (rc == -ENOENT && !s->have_rec)
			goto share;
	}
	rc = snapshot_load(ino, &k, &s);
	if (rc != 0)
		return rc;
	s->foreign = ino->unlinked;
	if (ino->snap != NULL)
		snapshot_put(ino->snap);
	ino->snap = s;              /* the inode's reference */
share:
	snapshot_hold(s);
	*out = s;
	return 0;
}

/* ---- the kernel's page cache ------------------------------------------------ */

/* A cached read of generation gen is about to fill pages. */
static void
pages_note_read_locked(struct inode *ino, uint16_t gen)
{
	if (ino->pages == INODE_PAGES_EMPTY) {
		ino->pages = INODE_PAGES_GEN;
		ino->page_gen = gen;
	} else if (ino->pages == INODE_PAGES_GEN && ino->page_gen != gen) {
		ino->pages = INODE_PAGES_MIXED;
	}
}

/* No record of the namespace can be larger than this. */
static uint64_t
content_max(const struct inode *ino)
{
	const struct ns_config *nc = namespace_config(ino->ns);
	uint64_t max = nc->storage.max_record_size;

	return max == 0 || max > nc->storage.write_block_size ? nc->storage.write_block_size : max;
}

/*
 * Largest content that surely fits max-record-size, given the record's key
 * and other bins (r, if read; else none, with POSIX metadata).  Writes
 * below it are only buffered; a write past it asks the engine at once
 * (handle_write), so EFBIG comes from the write that crosses the real
 * limit rather than from close.
 */
static uint64_t
content_limit(const struct inode *ino, const struct txn_record *r)
{
	const struct ns_config *nc = namespace_config(ino->ns);
	uint64_t max = content_max(ino);
	uint64_t base = RECORD_FLAT_HEADER_SIZE + ino->set_len + ino->key_len +
	    RECORD_META_BYTES + RECORD_BIN_HEADER(strlen(nc->file_bin)) + 4 + RECORD_END_BYTES;

	for (int i = 0; r != NULL && i < r->rec.n_bins; i++) {
		const struct bin *b = &r->rec.bins[i];

		if (b == r->file_bin)
			continue;
		base += RECORD_BIN_HEADER(b->name_len);
		base += b->type == BIN_INTEGER || b->type == BIN_DOUBLE ? 8 : 4 + (uint64_t)b->v.bytes.len;
	}
	return max > base ? max - base : 0;
}

/* ---- the open-file state ----------------------------------------------------- */

static struct filestate *
state_get_locked(struct inode *ino)
{
	if (ino->fs == NULL)
		ino->fs = calloc(1, sizeof(*ino->fs));
	return ino->fs;
}

static void
state_free_locked(struct inode *ino)
{
	if (ino->fs == NULL)
		return;
	free(ino->fs->data);
	chunkfile_free(ino->fs->cf);
	free(ino->fs);
	ino->fs = NULL;
}

static bool
state_holds_content(const struct inode *ino)
{
	return ino->fs != NULL && ino->fs->loaded;
}

static int
state_reserve(struct filestate *fs, size_t n)
{
	size_t cap = fs->cap ? fs->cap : 4096;
	char *p;

	if (n <= fs->cap)
		return 0;
	while (cap < n)
		cap *= 2;
	p = realloc(fs->data, cap);
	if (p == NULL)
		return -ENOMEM;
	fs->data = p;
	fs->cap = cap;
	return 0;
}

/* Set the length, zero-filling growth (truncate, sparse writes). */
static int
state_resize(struct filestate *fs, size_t n)
{
	int rc = state_reserve(fs, n);

	if (rc != 0)
		return rc;
	if (n > fs->len)
		memset(fs->data + fs->len, 0, n - fs->len);
	fs->len = n;
	return 0;
}

static int
state_fill(struct inode *ino, const struct snapshot *s)
{
	struct filestate *fs = ino->fs;
	int rc;

	if (s->map != NULL) {
		/* A large file: the map, not the content. */
		chunkfile_free(fs->cf);
		fs->cf = NULL;
		if ((rc = chunkfile_from_map(&fs->cf, s->map)) != 0)
			return rc;
		fs->len = (size_t)s->map->size;
		fs->loaded = true;
		fs->limit = UINT64_MAX;
		return 0;
	}
	rc = state_reserve(fs, s->len);
	if (rc != 0)
		return rc;
	if (s->len > 0)
		memcpy(fs->data, s->data, s->len);
	fs->len = s->len;
	fs->loaded = true;
	fs->limit = content_limit(ino, s->have_rec ? &s->rec : NULL);
	if (fs->limit < fs->len)
		fs->limit = fs->len;  /* it is stored, so it fits */
	return 0;
}

/* Make the inode's state hold the record's content (read-modify-write).
 * Inode lock held. */
static int
state_load_locked(struct inode *ino)
{
	struct snapshot *s;
	int rc;

	if (state_get_locked(ino) == NULL)
		return -ENOMEM;
	if (ino->fs->loaded)
		return 0;
	if (ino->unlinked && ino->snap == NULL) {
		ino->fs->len = 0;
		ino->fs->loaded = true;
		ino->fs->limit = content_limit(ino, NULL);
		return 0;
	}
	rc = snapshot_get_locked(ino, &s);
	if (rc != 0)
		return rc;
	rc = state_fill(ino, s);
	snapshot_put(s);
	return rc;
}

/* Drop every handle's own snapshot: the next read takes the current one. */
static void
snaps_reset_locked(struct inode *ino)
{
	for (struct handle *h = ino->handles; h != NULL; h = h->next) {
		if (h->snap != NULL) {
			snapshot_put(h->snap);
			h->snap = NULL;
		}
	}
}

static void flush_list_add_locked(struct inode *ino);

/* The state changed through h (NULL: by path): mtime, dirty, the timer. */
static void
state_changed_locked(struct inode *ino, struct handle *h)
{
	struct filestate *fs = ino->fs;

	fs->mtime_ns = recfsd_now_ns();
	fs->mtime_explicit = false;
	if (h != NULL) {
		h->wrote = true;
		h->store_error = 0;
	}
	/* An unlinked file keeps its data for its handles, but never stores it. */
	if (ino->unlinked)
		return;
	if (!fs->dirty) {
		fs->dirty = true;
		fs->dirty_since_ns = recfsd_now_ns();
	}
	flush_list_add_locked(ino);
}

/* Have the kernel ask for the attributes again (a store moved ctime). */
static void
notify_attr(const struct inode *ino)
{
	struct fuse_session *se = atomic_load_acquire(&recfsd.se);

	/* Attributes only (negative offset): no page is locked, so this is
	 * safe while the kernel waits for one of our replies. */
	if (se != NULL)
		(void)fuse_lowlevel_notify_inval_inode(se, inode_id(ino), -1, 0);
}

static int state_make_large_locked(struct inode *ino);

/* Store the state as the record's content; bound: a large file past its
 * bound on dirty chunks while being written (chunkfile_commit_bound: the
 * chunk being filled may stay dirty, and then so does the state).  Inode
 * lock held. */
static int
state_store_how_locked(struct inode *ino, bool durable, bool bound)
{
	struct filestate *fs = ino->fs;
	struct txn_write w = {
		.flags = durable ? TXN_DURABLE : 0,
		.set_file = true,
		.file_data = fs->data,
		.file_len = fs->len,
		/* Else the engine takes the store's time: a write's mtime. */
		.set_mtime = fs->mtime_explicit,
		.mtime_ns = fs->mtime_ns,
	};
	struct record_attr a;
	struct txn_key k;
	int rc;

	inode_key(ino, &k);
	rc = fs->cf == NULL ? txn_write(ino->ns, &k, &w, &a) : -EFBIG;
	/* Content that does not fit one record (the record's exact size is
	 * known only to the engine): a large file. */
	if (rc == -EFBIG && fs->cf == NULL && fs->len > 0 && !ino->unlinked &&
	    state_make_large_locked(ino) != 0)
		rc = -ENOMEM;
	if (rc == -EFBIG && fs->cf != NULL) {
		/* A large file: its dirty chunks, then its head (txn/chunk.h). */
		struct chunkfile_where at = { .ns = ino->ns, .key = k };

		w.set_file = false;
		rc = bound ? chunkfile_commit_bound(&at, fs->cf, &w, &a) : chunkfile_commit(&at, fs->cf, &w, &a);
		if (rc >= 0)
			stats_inc(STAT_fuse_large_commits);
		if (rc == 1) {
			/* Committed but the chunk being filled: still dirty. */
			stats_inc(STAT_fuse_record_puts);
			notify_attr(ino);
			return 0;
		}
	}
	if (rc != 0) {
		stats_inc(STAT_fuse_put_failures);
		return rc;
	}
	stats_inc(STAT_fuse_record_puts);
	fs->dirty = false;
	fs->mtime_explicit = false;
	if (fs->limit < fs->len)
		fs->limit = fs->len;
	/* Whatever any handle wrote is stored now. */
	for (struct handle *h = ino->handles; h != NULL; h = h->next) {
		h->wrote = false;
		h->store_error = 0;
	}
	notify_attr(ino);
	return 0;
}

static int
state_store_locked(struct inode *ino, bool durable)
{
	return state_store_how_locked(ino, durable, false);
}

/*
 * A store of the state failed (close, fsync, the timer): every handle whose
 * changes it held reports err at its next close or fsync.  The state is not
 * stored behind the users' backs later (recfsd(8): close returns the error);
 * a later change stores it whole again.  Inode lock held.
 */
static void
state_store_failed_locked(struct inode *ino, int err)
{
	ino->fs->dirty = false;
	for (struct handle *h = ino->handles; h != NULL; h = h->next) {
		if (h->wrote) {
			h->store_error = err;
			h->wrote = false;
		}
	}
}

/*
 * The content would grow past max-record-size.  Ask the engine anyway: a
 * size change it refuses before storing anything, so the refusal is
 * counted where every write is counted (fail_record_too_big).  Returns the
 * engine's error (-EFBIG).  Inode lock held.
 */
static int
content_refuse_locked(struct inode *ino, uint64_t size)
{
	struct txn_write w = { .flags = TXN_UPDATE_ONLY, .set_size = true, .size = size };
	struct txn_key k;
	int rc;

	if (ino->unlinked)
		return -EFBIG;  /* the name may be another record's by now */
	inode_key(ino, &k);
	rc = txn_write(ino->ns, &k, &w, NULL);
	return rc == 0 || rc == -ENOENT ? -EFBIG : rc;
}

/*
 * A write was refused: drop the state's unsaved changes, so that close
 * stores nothing and the record keeps its stored content (recfsd(8),
 * ERRORS: nothing already stored is lost), and have the next flush of every handle whose
 * changes were dropped (and of h) report err.  An unlinked file keeps its
 * content: it is the only copy.  Inode lock held.
 */
static void
state_discard_locked(struct inode *ino, struct handle *h, int err)
{
	struct filestate *fs = ino->fs;

	h->error = err;
	for (struct handle *o = ino->handles; o != NULL; o = o->next) {
		if (o->wrote)
			o->error = err;
		o->wrote = false;
	}
	if (ino->unlinked)
		return;
	fs->len = 0;
	fs->loaded = false;
	fs->dirty = false;
	fs->mtime_explicit = false;
	chunkfile_free(fs->cf);
	fs->cf = NULL;
	/* Reads go back to the stored record (which an early store may have
	 * changed since a reader took its snapshot). */
	snaps_reset_locked(ino);
}

/*
 * A write by a user without CAP_FSETID clears set-user-ID, and
 * set-group-ID when group execute is set (as the kernel does for cached
 * writes; its direct-I/O path leaves that to us).  Checked once per state
 * until a chmod.  Inode lock held.
 */
static int setattr_meta_defaults(struct inode *ino, const struct txn_key *k, struct txn_write *w);

static int
kill_privs_locked(struct inode *ino)
{
	struct txn_write w = { .flags = TXN_UPDATE_ONLY };
	struct record_attr a;
	struct txn_key k;
	uint32_t mode;
	int rc;

	if (ino->fs->privs_clear || ino->unlinked)
		return 0;
	inode_key(ino, &k);
	rc = txn_stat(ino->ns, &k, &a);
	if (rc != 0)
		return rc == -ENOENT ? 0 : rc;
	mode = a.has_meta ? a.mode : recfsd.file_mode;
	w.mode = mode & 07777 & ~(uint32_t)S_ISUID;
	if ((mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		w.mode &= ~(uint32_t)S_ISGID;
	if (w.mode != (mode & 07777)) {
		w.set_mode = true;
		rc = setattr_meta_defaults(ino, &k, &w);
		if (rc == 0)
			rc = txn_write(ino->ns, &k, &w, NULL);
		if (rc != 0)
			return rc;
		notify_attr(ino);
	}
	ino->fs->privs_clear = true;
	return 0;
}

/* ---- handles ------------------------------------------------------------------- */

/* How long after its last writer a record's readers still read directly. */
#define WRITERS_SETTLE_NS 1000000000LL

/*
 * Whether writers are at work on ino.  They move the kernel's idea of the
 * file size as they write (and O_TRUNC sets it to 0), and cached reads
 * stop there or read zeros past the version they read; so a reader opened
 * meanwhile reads directly what the daemon has.  A second after the last
 * writer the kernel has the stored size again (writes invalidate its
 * attributes, and the next read asks): then readers use the page cache
 * (and shared mmap) again.  Inode lock held.
 */
static bool
writers_active_locked(const struct inode *ino)
{
	for (const struct handle *o = ino->handles; o != NULL; o = o->next)
		if (handle_writable(o))
			return true;
	return ino->writers_gone_ns != 0 &&
	    recfsd_now_ns() - ino->writers_gone_ns < WRITERS_SETTLE_NS;
}

static int state_set_size_locked(struct inode *ino, uint64_t size);

int
handle_open(struct inode *ino, int flags, bool fresh, bool check_damaged, struct handle **out)
{
	struct handle *h = calloc(1, sizeof(*h));
	bool writable = (flags & O_ACCMODE) != O_RDONLY;
	bool trunc = writable && (flags & O_TRUNC);
	int rc = 0;

	if (h == NULL)
		return -ENOMEM;
	h->kind = HANDLE_RECORD;
	h->inode = ino;
	h->flags = flags;
	h->direct_io = handle_direct_io(flags);
	pthread_mutex_lock(&ino->lock);
	if (ino->unlinked) {
		/*
		 * Replaced or deleted after the kernel looked it up.  A writer
		 * gets ESTALE: the kernel looks the name up again and retries
		 * the open, so it writes the record the name has now.  A reader
		 * reads what the inode kept, or the record its name holds now;
		 * then the kernel's cached size may be another version's, so
		 * its reads bypass the page cache.
		 */
		if (writable) {
			rc = -ESTALE;
			goto out;
		}
		if (!state_holds_content(ino) && (ino->snap == NULL || ino->snap->foreign))
			h->direct_io = true;
	}
	if (!writable && !h->direct_io && writers_active_locked(ino))
		h->direct_io = true;
	if (writable && state_get_locked(ino) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (fresh && writable && !ino->fs->loaded) {
		/* Just created empty: nothing to read. */
		ino->fs->loaded = true;
		ino->fs->len = 0;
		ino->fs->limit = content_limit(ino, NULL);
	}
	if (trunc) {
		struct filestate *fs = ino->fs;

		/* A large file truncated so is stored as a small one, whose
		 * write drops its chunks (txn.c); unless its state is loaded. */
		if (!fs->loaded) {
			fs->loaded = true;
			fs->limit = content_limit(ino, NULL);
		}
		if (fs->cf != NULL && (rc = state_set_size_locked(ino, 0)) != 0)
			goto out;
		if (fs->len > 0 || !fresh) {
			/* A record created by this open is stored empty already. */
			fs->len = 0;
			state_changed_locked(ino, NULL);
		}
	} else if (!writable && !(flags & O_TRUNC) && !ino->unlinked && !state_holds_content(ino)) {
		uint64_t size = ino->kernel_size;

		if (!h->direct_io && ino->pages == INODE_PAGES_GEN && ino->snap == NULL) {
			/* The kernel's pages may be the stored version: a stat
			 * tells, and then they serve the reads (no content sent). */
			struct record_attr a;
			struct txn_key k;

			inode_key(ino, &k);
			rc = txn_stat(ino->ns, &k, &a);
			if (rc == 0 && a.damaged) {
				rc = -EIO;
				goto out;
			}
			h->keep_cache = rc == 0 && a.generation == ino->page_gen;
			size = a.size;
			rc = 0;
		}
		if (!h->keep_cache) {
			/* A reader: its snapshot now (handle.h).  A damaged
			 * record fails to read (RECFS_ECHECKSUM, EIO to the user). */
			rc = snapshot_get_locked(ino, &h->snap);
			if (rc != 0)
				goto out;
			if (!h->direct_io && ino->pages == INODE_PAGES_GEN)
				h->keep_cache = h->snap->have_rec &&
				    h->snap->generation == ino->page_gen;
			size = h->snap->len;
		}
		/* Stored elsewhere since the kernel last heard: its cached size
		 * (kept for attr-timeout) would cut cached reads short, so have
		 * it ask again (a stat, only then).  Not when the record is
		 * gone (expired or deleted elsewhere): the reads return end of
		 * file whatever size the kernel holds, and its getattr would
		 * fail the reader with ENOENT, where an open file truncated by
		 * someone else reads empty. */
		if (size != ino->kernel_size && (h->snap == NULL || h->snap->have_rec))
			notify_attr(ino);
	} else {
		bool want_gen = !h->direct_io && ino->pages == INODE_PAGES_GEN &&
		    !state_holds_content(ino);
		struct record_attr a;
		struct txn_key k;
		int src = -ENOENT;

		/* One stat for both questions. */
		inode_key(ino, &k);
		if (check_damaged || want_gen)
			src = txn_stat(ino->ns, &k, &a);
		if (check_damaged && src == 0 && a.damaged) {
			rc = -EIO;
			goto out;
		}
		if (want_gen && src == 0)
			h->keep_cache = a.generation == ino->page_gen;
	}
	/* Without keep_cache the kernel drops the inode's pages at this open;
	 * handles already open may refill them with their own versions. */
	if (!h->keep_cache)
		ino->pages = ino->handles == NULL ? INODE_PAGES_EMPTY : INODE_PAGES_MIXED;
	h->next = ino->handles;
	if (ino->handles != NULL)
		ino->handles->prev = h;
	ino->handles = h;
out:
	pthread_mutex_unlock(&ino->lock);
	if (rc != 0) {
		if (h->snap != NULL)
			snapshot_put(h->snap);
		free(h);
		return rc;
	}
	inode_hold(ino);
	atomic_inc(&handle_total);
	*out = h;
	return 0;
}

int
handle_open_info(struct inode *ino, int flags, pid_t pid, struct handle **out)
{
	struct handle *h = calloc(1, sizeof(*h));
	int rc;

	if (h == NULL)
		return -ENOMEM;
	h->kind = HANDLE_INFO;
	h->inode = ino;
	h->flags = flags;
	h->direct_io = true;  /* the size is only known once built */
	rc = info_snapshot(ino, &h->text, &h->text_len);
	if (rc != 0) {
		free(h);
		return rc;
	}
	h->opener = pid;
	if ((flags & O_ACCMODE) == O_RDONLY)
		info_reader_open(ino, pid, h->text_len);
	atomic_inc(&handle_total);
	*out = h;
	return 0;
}

static size_t
read_count(size_t len, size_t size, off_t off)
{
	if ((uint64_t)off >= len)
		return 0;
	return len - (size_t)off < size ? len - (size_t)off : size;
}

/*
 * Read size bytes at off of a large file from cf into a reply: straight
 * from its chunk buffers (fuse_reply_iov, sent while the inode lock keeps
 * them), or, for a range over more chunks than that, through a copy.
 * Returns 0 (replied), or the error to reply with.  Inode lock held.
 */
static long
reply_chunks_locked(fuse_req_t req, struct inode *ino, struct chunkfile *cf, size_t size, off_t off)
{
	struct chunkfile_where at = { .ns = ino->ns };
	struct iovec iov[CHUNKFILE_IOV_MAX];
	unsigned n_iov;
	char *buf;
	long n;

	inode_key(ino, &at.key);
	n = chunkfile_read_iov(&at, cf, iov, &n_iov, size, (uint64_t)off);
	if (n >= 0) {
		stats_add(STAT_fuse_read_bytes, (uint64_t)n);
		fuse_reply_iov(req, iov, (int)n_iov);
		return 0;
	}
	if (n != -E2BIG)
		return n;
	buf = malloc(size ? size : 1);
	if (buf == NULL)
		return -ENOMEM;
	n = chunkfile_read(&at, cf, buf, size, (uint64_t)off);
	if (n >= 0) {
		stats_add(STAT_fuse_read_bytes, (uint64_t)n);
		fuse_reply_buf(req, buf, (size_t)n);
		n = 0;
	}
	free(buf);
	return n;
}

/*
 * Reply to a read of a reader's snapshot of a large file (no write changes
 * it) from chunks fetched ahead without holding the inode lock while their
 * fetches end and the reply is sent (chunkfile_read_pin): the kernel's
 * other request on the file (its read-ahead beside the reader's) is not
 * kept waiting behind them.  0: replied, the inode unlocked; else nothing
 * replied and the inode locked again (the caller's path under the lock).
 * Nothing here touches the handle after the reply.
 */
static int
reply_pinned_locked(fuse_req_t req, struct inode *ino, struct chunkfile *cf, size_t size, off_t off)
{
	struct chunkfile_where at = { .ns = ino->ns };
	struct chunkfile_pin pin;
	struct iovec iov[CHUNKFILE_IOV_MAX];
	unsigned n_iov;
	long n;

	inode_key(ino, &at.key);
	n = chunkfile_read_pin(&at, cf, &pin, size, (uint64_t)off);
	if (n < 0)
		return (int)n;
	pthread_mutex_unlock(&ino->lock);
	if (chunkfile_pin_wait(&pin, iov, &n_iov) == 0) {
		stats_add(STAT_fuse_read_bytes, (uint64_t)n);
		fuse_reply_iov(req, iov, (int)n_iov);
		chunkfile_unpin(&pin);
		return 0;
	}
	chunkfile_unpin(&pin);
	pthread_mutex_lock(&ino->lock);
	return -EAGAIN;
}

/* A failed read of a large file: EIO for a chunk that fails its check, or
 * one gone under an unlinked file's handles. */
static int
read_chunks_error(long n)
{
	return n == RECFS_ECHECKSUM || n == -ENOENT ? -EIO : (int)n;
}

/* Reply to a read of a large file from cf; unlocks the inode. */
static int
read_chunks_locked(fuse_req_t req, struct inode *ino, struct chunkfile *cf, size_t size, off_t off)
{
	long n = reply_chunks_locked(req, ino, cf, size, off);

	pthread_mutex_unlock(&ino->lock);
	return n < 0 ? read_chunks_error(n) : 0;
}

/*
 * A reader's snapshot of a large file: its chunks.  A chunk gone (a
 * commit since replaced it and deleted the old version) means a newer
 * version is stored: the reader moves to it, as a reader of a small file
 * does at its next open.  Inode lock held; unlocks it.
 */
static int
read_snapshot_chunks_locked(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	struct inode *ino = h->inode;
	long n = -ENOMEM;

	for (int tries = 0; tries < 3; tries++) {
		n = reply_chunks_locked(req, ino, h->snap->cf, size, off);
		if (n != -ENOENT || ino->unlinked)
			break;
		snapshot_put(h->snap);
		h->snap = NULL;
		n = snapshot_get_locked(ino, &h->snap);
		if (n != 0)
			break;
		if (h->snap->map == NULL) {
			/* Now a small file: its bytes (the snapshot is kept
			 * by the handle while the lock is held). */
			size_t c = read_count(h->snap->len, size, off);

			stats_add(STAT_fuse_read_bytes, c);
			fuse_reply_buf(req, c ? h->snap->data + off : NULL, c);
			n = 0;
			break;
		}
		n = -ENOENT;
	}
	pthread_mutex_unlock(&ino->lock);
	return n < 0 ? read_chunks_error(n) : 0;
}

int
handle_read(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	struct inode *ino = h->inode;
	struct snapshot *s;
	bool pinned_tried;
	size_t n;
	int rc;

	if (h->kind == HANDLE_INFO) {
		/* From a copy: the handle may be released the moment the
		 * kernel has the reply, before fuse_reply_buf returns. */
		char *copy;

		n = read_count(h->text_len, size, off);
		copy = malloc(n ? n : 1);
		if (copy == NULL)
			return -ENOMEM;
		if (n > 0)
			memcpy(copy, h->text + off, n);
		stats_add(STAT_fuse_read_bytes, n);
		fuse_reply_buf(req, copy, n);
		free(copy);
		return 0;
	}
	pthread_mutex_lock(&ino->lock);
	pinned_tried = false;
again:
	if (state_holds_content(ino) && ino->fs->cf != NULL) {
		if (!h->direct_io)
			ino->pages = INODE_PAGES_MIXED;
		return read_chunks_locked(req, ino, ino->fs->cf, size, off);
	}
	if (state_holds_content(ino)) {
		/* The shared state, which writes through other handles may
		 * be changing: reply under the lock. */
		const struct filestate *fs = ino->fs;

		if (!h->direct_io)
			ino->pages = INODE_PAGES_MIXED;  /* unsaved data may enter the cache */
		n = read_count(fs->len, size, off);
		stats_add(STAT_fuse_read_bytes, n);
		fuse_reply_buf(req, n ? fs->data + off : NULL, n);
		pthread_mutex_unlock(&ino->lock);
		return 0;
	}
	if (h->snap == NULL) {
		rc = snapshot_get_locked(ino, &h->snap);
		if (rc != 0) {
			pthread_mutex_unlock(&ino->lock);
			return rc;
		}
	}
	s = h->snap;
	if (s->map != NULL) {
		/* A large file: its chunks, read through the snapshot's state
		 * under the inode lock (its clean chunk is shared). */
		if (!h->direct_io)
			pages_note_read_locked(ino, s->generation);
		if (!pinned_tried) {
			/* Once: on failure the lock was released meanwhile (the
			 * state and the snapshot are looked at again). */
			pinned_tried = true;
			if (reply_pinned_locked(req, ino, s->cf, size, off) == 0)
				return 0;
			goto again;
		}
		return read_snapshot_chunks_locked(req, h, size, off);
	}
	/* Our own reference across the reply: the kernel may release the
	 * handle as soon as it has the data, before fuse_reply_buf returns. */
	snapshot_hold(s);
	if (!h->direct_io)
		pages_note_read_locked(ino, s->generation);
	pthread_mutex_unlock(&ino->lock);
	/* Immutable: no lock needed to send it; nothing here touches the
	 * handle or the inode after the reply. */
	n = read_count(s->len, size, off);
	stats_add(STAT_fuse_read_bytes, n);
	fuse_reply_buf(req, n ? s->data + off : NULL, n);
	snapshot_put(s);
	return 0;
}

/*
 * The content grew to end, past what surely fits: the engine decides now
 * (a store), so the write that crosses the real limit is the one that
 * fails.  Returns -EFBIG (then the caller drops the changes) or 0 (other
 * store errors: the state stays dirty, close retries and reports).  Inode
 * lock held.
 */
static int
state_check_limit_locked(struct inode *ino, uint64_t end)
{
	int rc;

	if (end <= ino->fs->limit || ino->unlinked)
		return 0;
	rc = state_store_locked(ino, false);
	return rc == -EFBIG ? rc : 0;
}

/* The largest file ino can grow to: what its head's chunk map can name. */
static uint64_t
file_max(const struct inode *ino)
{
	uint32_t cs = ino->fs->cf != NULL ? chunkfile_chunk_size(ino->fs->cf) :
	    namespace_config(ino->ns)->file_chunk_size;

	return txn_chunk_file_max(ino->ns, cs);
}

/* The file outgrows one record: its content so far becomes dirty chunks. */
static int
state_make_large_locked(struct inode *ino)
{
	struct filestate *fs = ino->fs;
	uint32_t cs = namespace_config(ino->ns)->file_chunk_size;
	int rc;

	if (fs->cf != NULL)
		return 0;
	rc = chunkfile_from_content(&fs->cf, cs, fs->data, fs->len);
	if (rc != 0)
		return rc;
	free(fs->data);
	fs->data = NULL;
	fs->cap = 0;
	fs->limit = UINT64_MAX;
	return 0;
}

/*
 * A write to a large file (or one that makes the file large): only the
 * chunks it covers change.  Past the bound on dirty chunks the file is
 * committed now, as at close (its error is this write's).  Inode lock held.
 */
static long
write_large_locked(struct inode *ino, struct handle *h, const char *buf, size_t size, uint64_t off)
{
	struct filestate *fs = ino->fs;
	struct chunkfile_where at = { .ns = ino->ns };
	long rc;

	if (off + size > file_max(ino) || off + size < off)
		return -EFBIG;  /* past what a head's chunk map can name: nothing changes */
	if ((rc = state_make_large_locked(ino)) != 0)
		return rc;
	if (ino->unlinked && chunkfile_over_bound(fs->cf))
		return -EFBIG;  /* never stored again: only memory could hold it */
	inode_key(ino, &at.key);
	rc = chunkfile_write(&at, fs->cf, buf, size, off);
	if (rc < 0)
		return rc;
	fs->len = (size_t)chunkfile_size(fs->cf);
	state_changed_locked(ino, h);
	if (!h->direct_io)
		ino->pages = INODE_PAGES_MIXED;
	stats_add(STAT_fuse_write_bytes, (uint64_t)rc);
	if (!ino->unlinked && chunkfile_over_bound(fs->cf)) {
		int src = state_store_how_locked(ino, false, true);

		if (src != 0) {
			state_store_failed_locked(ino, src);
			return src;
		}
	}
	return rc;
}

long
handle_write(struct handle *h, const char *buf, size_t size, off_t off, bool kill_privs)
{
	struct inode *ino = h->inode;
	struct filestate *fs;
	uint64_t end;
	long rc;

	if (h->kind == HANDLE_INFO)
		return info_write(h, buf, size, off);  /* a configuration file */
	if (!handle_writable(h))
		return -EBADF;
	pthread_mutex_lock(&ino->lock);
	if ((rc = state_load_locked(ino)) != 0)
		goto out;
	fs = ino->fs;
	if (kill_privs && (rc = kill_privs_locked(ino)) != 0)
		goto out;
	/* The end as the daemon knows it: the kernel's offset for an
	 * O_APPEND write comes from its cached size, which other handles'
	 * writes may have moved since. */
	if (h->flags & O_APPEND)
		off = (off_t)fs->len;
	end = (uint64_t)off + size;
	if (off >= 0 && (fs->cf != NULL || (end > fs->limit && !ino->unlinked))) {
		rc = write_large_locked(ino, h, buf, size, (uint64_t)off);
		goto out;
	}
	if (off < 0 || end > content_max(ino)) {
		rc = content_refuse_locked(ino, end);
		state_discard_locked(ino, h, (int)rc);
		goto out;
	}
	rc = state_reserve(fs, (size_t)end);
	if (rc != 0)
		goto out;
	if ((size_t)off > fs->len)
		memset(fs->data + fs->len, 0, (size_t)off - fs->len);
	memcpy(fs->data + off, buf, size);
	if (end > fs->len)
		fs->len = (size_t)end;
	state_changed_locked(ino, h);
	if (!h->direct_io)
		ino->pages = INODE_PAGES_MIXED;  /* the kernel cached unsaved bytes */
	rc = state_check_limit_locked(ino, end);
	if (rc != 0) {
		state_discard_locked(ino, h, (int)rc);
		goto out;
	}
	rc = (long)size;
	stats_add(STAT_fuse_write_bytes, size);
out:
	pthread_mutex_unlock(&ino->lock);
	return rc;
}

/* A size change of the state: a large file's chunks, a small file's
 * buffer, or the buffer becoming chunks when the size outgrows a record.
 * Inode lock held, state loaded. */
static int
state_set_size_locked(struct inode *ino, uint64_t size)
{
	struct filestate *fs = ino->fs;
	struct chunkfile_where at = { .ns = ino->ns };
	int rc;

	if (fs->cf == NULL && (size <= fs->limit || ino->unlinked)) {
		if (size > content_max(ino))
			return content_refuse_locked(ino, size);
		return state_resize(fs, (size_t)size);
	}
	if (size > file_max(ino))
		return -EFBIG;  /* a failed truncate changes nothing */
	if ((rc = state_make_large_locked(ino)) != 0)
		return rc;
	inode_key(ino, &at.key);
	rc = chunkfile_resize(&at, fs->cf, size);
	if (rc == 0)
		fs->len = (size_t)size;
	return rc;
}

int
handle_fallocate(struct handle *h, int mode, off_t off, off_t len)
{
	struct inode *ino = h->inode;
	struct filestate *fs;
	uint64_t end;
	int rc;

	if (h->kind != HANDLE_RECORD)
		return -EOPNOTSUPP;
	if (!handle_writable(h))
		return -EBADF;
	if (mode != 0 && mode != FALLOC_FL_KEEP_SIZE &&
	    mode != (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE))
		return -EOPNOTSUPP;
	if (off < 0 || len <= 0)
		return -EINVAL;
	end = (uint64_t)off + (uint64_t)len;
	pthread_mutex_lock(&ino->lock);
	rc = 0;
	if (mode == FALLOC_FL_KEEP_SIZE)
		goto out;  /* nothing to preallocate: a record is written whole */
	if ((rc = state_load_locked(ino)) != 0)
		goto out;
	fs = ino->fs;
	if (fs->cf != NULL && mode != 0) {
		struct chunkfile_where at = { .ns = ino->ns };

		inode_key(ino, &at.key);
		rc = chunkfile_zero(&at, fs->cf, (uint64_t)off, (uint64_t)len);
		if (rc == 0)
			state_changed_locked(ino, h);
		goto out;
	}
	if (mode == 0) {
		size_t old = fs->len;

		if (end <= old)
			goto out;
		if (fs->cf != NULL || (end > fs->limit && !ino->unlinked)) {
			rc = state_set_size_locked(ino, end);
			if (rc == 0)
				state_changed_locked(ino, h);
			goto out;
		}
		if (end > content_max(ino)) {
			/* As a failed truncate: nothing changes. */
			rc = content_refuse_locked(ino, end);
			goto out;
		}
		rc = state_resize(fs, (size_t)end);
		if (rc != 0)
			goto out;
		state_changed_locked(ino, h);
		rc = state_check_limit_locked(ino, end);
		if (rc != 0) {
			/* Refused: back to what it was (only zeros were added). */
			fs->len = old;
			goto out;
		}
	} else {
		/* Punch a hole: zeros within the content, the size stays. */
		if ((uint64_t)off >= fs->len)
			goto out;
		if (end > fs->len)
			end = fs->len;
		memset(fs->data + off, 0, (size_t)(end - (uint64_t)off));
		state_changed_locked(ino, h);
	}
	if (!h->direct_io)
		ino->pages = INODE_PAGES_MIXED;
out:
	pthread_mutex_unlock(&ino->lock);
	return rc;
}

int
handle_flush(struct handle *h, bool durable)
{
	struct inode *ino = h->inode;
	struct txn_key k;
	int rc = 0;

	if (h->kind == HANDLE_INFO)
		return info_flush(h);
	pthread_mutex_lock(&ino->lock);
	if (h->error != 0) {
		/* Its changes were refused and dropped: close(2) must not
		 * look like success. */
		rc = h->error;
		h->error = 0;
	} else if (ino->unlinked) {
		rc = 0;
	} else if (ino->fs != NULL && ino->fs->dirty) {
		/* Dirty, whoever wrote: any close stores it (recfsd(8), Records). */
		rc = state_store_locked(ino, durable);
		if (rc != 0)
			state_store_failed_locked(ino, rc);
	} else if (h->store_error != 0) {
		rc = h->store_error;
	} else if (durable) {
		/* Clean: the last store may still sit in a write buffer. */
		inode_key(ino, &k);
		rc = txn_sync(ino->ns, &k);
		if (rc == -ENOENT)
			rc = 0;
	}
	pthread_mutex_unlock(&ino->lock);
	return rc;
}

static bool
writable_handles_locked(const struct inode *ino)
{
	for (const struct handle *o = ino->handles; o != NULL; o = o->next)
		if (handle_writable(o))
			return true;
	return false;
}

static void orphan_drop_chunks_locked(struct inode *ino);

void
handle_release(struct handle *h)
{
	struct inode *ino = h->inode;

	atomic_dec(&handle_total);
	if (h->kind == HANDLE_INFO) {
		int rc = info_flush(h);

		if (rc != 0)
			log_warn("recfsd", ".info/config/.../%s: value written without close refused: %s",
			    ino->name, recfs_strerror(rc));
		if ((h->flags & O_ACCMODE) == O_RDONLY)
			info_reader_close(ino, h->opener);
		free(h->data);
		free(h->text);
		free(h);
		return;
	}
	pthread_mutex_lock(&ino->lock);
	if (h->prev != NULL)
		h->prev->next = h->next;
	else
		ino->handles = h->next;
	if (h->next != NULL)
		h->next->prev = h->prev;
	if (ino->fs != NULL && ino->fs->dirty && !ino->unlinked &&
	    (h->wrote || !writable_handles_locked(ino))) {
		/* Written after its last close (mmap), a truncation with
		 * nothing written, a failed close, or the last writer gone
		 * with changes of a handle that never closed: nobody is left
		 * to tell about a failure. */
		int rc = state_store_locked(ino, false);

		if (rc != 0) {
			state_store_failed_locked(ino, rc);
			log_error("recfsd", "{%s} %.*s/%.*s: unsaved data lost at release: %s",
			    namespace_name(ino->ns), (int)ino->set_len, ino->name, (int)ino->key_len,
			    ino->name + ino->set_len, recfs_strerror(rc));
		}
	}
	if (handle_writable(h))
		ino->writers_gone_ns = recfsd_now_ns();
	if (h->snap != NULL)
		snapshot_put(h->snap);
	/* No writer left and nothing unsaved: readers go back to snapshots
	 * of the stored record (an unlinked record's state is its only copy). */
	if (ino->fs != NULL && !ino->fs->dirty && !ino->unlinked && !writable_handles_locked(ino)) {
		state_free_locked(ino);
		snaps_reset_locked(ino);
	}
	/* Nothing open: keep no copy of the record in memory. */
	if (ino->handles == NULL) {
		if (ino->unlinked)
			orphan_drop_chunks_locked(ino);
		state_free_locked(ino);
		if (ino->snap != NULL) {
			snapshot_put(ino->snap);
			ino->snap = NULL;
		}
	}
	pthread_mutex_unlock(&ino->lock);
	free(h);
	inode_put(ino);
}

/* ---- attributes ------------------------------------------------------------------ */

void
handle_attr_adjust_locked(const struct inode *ino, struct record_attr *a)
{
	const struct filestate *fs = ino->fs;

	if (fs != NULL && fs->loaded && (fs->dirty || ino->unlinked)) {
		a->size = fs->len;
		a->mtime_ns = fs->mtime_ns;
	}
}

int
handle_attr_locked(struct inode *ino, struct record_attr *out)
{
	struct txn_key k;
	int rc;

	if (ino->unlinked) {
		/* No handle kept it: have the kernel look the name up again. */
		if (ino->orphan == NULL)
			return -ESTALE;
		*out = *ino->orphan;
	} else {
		inode_key(ino, &k);
		rc = txn_stat(ino->ns, &k, out);
		/*
		 * Deleted since the kernel looked the name up (through another
		 * node, which this one is not told of), and no handle holds
		 * it: as above.  The kernel checks a file's attributes before
		 * it opens a name it holds (default_permissions), so ENOENT
		 * here would fail an open(O_CREAT) of that name; with ESTALE
		 * the kernel's lookup again finds no name and creates it (and
		 * stat, open without O_CREAT, truncate, access and getxattr by
		 * path still answer ENOENT).  A file open here keeps ENOENT:
		 * an fstat is not retried.
		 */
		if (rc == -ENOENT && ino->handles == NULL)
			return -ESTALE;
		if (rc != 0)
			return rc;
	}
	handle_attr_adjust_locked(ino, out);
	return 0;
}

/* setattr on an unlinked inode: only the kept attributes and state change. */
static int
setattr_orphan_locked(struct inode *ino, struct handle *h, const struct txn_write *w,
    struct record_attr *out)
{
	struct record_attr *a = ino->orphan;
	int rc;

	if (a == NULL)
		return -ESTALE;  /* no handle kept it: the kernel looks the name up again */
	if (w->set_size && h != NULL) {
		if ((rc = state_load_locked(ino)) != 0)
			return rc;
		rc = state_set_size_locked(ino, w->size);
		if (rc != 0)
			return rc;
		state_changed_locked(ino, h);
	}
	if (w->set_mode)
		a->mode = w->mode & 07777;
	if (w->set_uid)
		a->uid = w->uid;
	if (w->set_gid)
		a->gid = w->gid;
	if (w->set_mtime)
		a->mtime_ns = w->mtime_ns;
	if (w->set_atime)
		a->atime_ns = w->atime_ns;
	a->has_meta = a->has_meta || w->set_mode || w->set_uid || w->set_gid || w->set_mtime ||
	    w->set_atime;
	*out = *a;
	handle_attr_adjust_locked(ino, out);
	return 0;
}

/* Fill in what a first metadata write needs: a record with none shows the
 * daemon's defaults, and the engine would start from others (0644, root). */
static int
setattr_meta_defaults(struct inode *ino, const struct txn_key *k, struct txn_write *w)
{
	struct record_attr cur;
	int rc;

	if (!(w->set_mode || w->set_uid || w->set_gid || w->set_mtime || w->set_atime))
		return 0;
	/* Attributes with metadata went to the kernel within attr-timeout
	 * (the lookup or getattr just before a chmod, touch or utimens):
	 * nothing to fill in, and no stat.  A record keeps its metadata
	 * across every write; the kernel checks permissions against the
	 * same attributes for as long. */
	if (ino->meta_seen_ns != 0 &&
	    recfsd_now_ns() - ino->meta_seen_ns <= (int64_t)(recfsd.attr_timeout * 1e9))
		return 0;
	rc = txn_stat(ino->ns, k, &cur);
	if (rc != 0 || cur.has_meta)
		return rc;
	if (!w->set_mode) {
		w->set_mode = true;
		w->mode = recfsd.file_mode;
	}
	if (!w->set_uid) {
		w->set_uid = true;
		w->uid = recfsd.uid;
	}
	if (!w->set_gid) {
		w->set_gid = true;
		w->gid = recfsd.gid;
	}
	if (!w->set_mtime) {
		w->set_mtime = true;
		w->mtime_ns = cur.mtime_ns;
	}
	return 0;
}

/* A truncate by path that must go through the state: the file is large
 * (its chunks change), or becomes large. */
static bool
size_needs_state(struct inode *ino, const struct txn_key *k, const struct txn_write *w)
{
	struct record_attr a;

	if (w->size > content_limit(ino, NULL))
		return true;
	return txn_stat(ino->ns, k, &a) == 0 && a.chunked;
}

int
handle_setattr(struct inode *ino, struct handle *h, struct txn_write *w, struct record_attr *out)
{
	struct txn_key k;
	int rc;

	if (h != NULL && (h->kind != HANDLE_RECORD || !handle_writable(h)))
		h = NULL;
	pthread_mutex_lock(&ino->lock);
	if (ino->unlinked) {
		rc = setattr_orphan_locked(ino, h, w, out);
		goto out;
	}
	inode_key(ino, &k);
	rc = setattr_meta_defaults(ino, &k, w);
	if (rc != 0)
		goto out;
	if (ino->fs != NULL && (w->set_mode || w->set_uid || w->set_gid))
		ino->fs->privs_clear = false;  /* check again at the next write */
	if (w->set_size && (h != NULL || state_holds_content(ino) || size_needs_state(ino, &k, w))) {
		/* ftruncate: the shared state, stored at close like a write;
		 * a truncate by path of a record whose state holds the
		 * content (or of a large file, or one it makes large)
		 * changes the state too, and is stored now. */
		if ((rc = state_load_locked(ino)) != 0)
			goto out;
		/* A failed truncate changes nothing, state included. */
		rc = state_set_size_locked(ino, w->size);
		if (rc != 0)
			goto out;
		state_changed_locked(ino, h);
		if (!(h != NULL && h->direct_io))
			ino->pages = INODE_PAGES_MIXED;
		w->set_size = false;
		if (h == NULL)
			rc = state_store_locked(ino, false);
		/* A large file truncated by path with nothing open: its
		 * state was only for this truncate. */
		if (h == NULL && ino->handles == NULL)
			state_free_locked(ino);
		if (rc != 0)
			goto out;
	}
	/* utimens while data waits for close: the close keeps this mtime
	 * (cp -a writes, sets times, then closes). */
	if (w->set_mtime && ino->fs != NULL && ino->fs->dirty) {
		ino->fs->mtime_ns = w->mtime_ns;
		ino->fs->mtime_explicit = true;
	}
	if (w->set_mode || w->set_uid || w->set_gid || w->set_mtime || w->set_atime ||
	    w->set_size) {
		/* Attributes (and a truncate by path) now; the stored content
		 * otherwise stays as it is. */
		w->flags |= TXN_UPDATE_ONLY;
		rc = txn_write(ino->ns, &k, w, out);
		/* A truncate by path changed the stored content: readers read
		 * it from their next read on, as on a local file system. */
		if (rc == 0 && w->set_size)
			snaps_reset_locked(ino);
	} else {
		rc = txn_stat(ino->ns, &k, out);
	}
	if (rc == 0)
		handle_attr_adjust_locked(ino, out);
out:
	pthread_mutex_unlock(&ino->lock);
	return rc;
}

/* ---- unlink and rename victims ------------------------------------------------- */

/*
 * A large file about to be unlinked or replaced while handles read it: its
 * chunks must outlive its name (a local file's blocks live until the last
 * close).  The head gives its map up first (txn_chunk_unmap), so that the
 * delete or rename leaves the chunks; the inode keeps the map and the last
 * release deletes them (a crash leaves them to the reclaimer).  The
 * handles read through their snapshots and state, which hold the map.
 * Inode lock held.
 */
static int
orphan_keep_chunks_locked(struct inode *ino, const struct txn_key *k)
{
	struct snapshot *s;
	int rc;

	if (!ino->orphan->chunked || ino->orphan_chunks != NULL)
		return 0;
	if ((rc = snapshot_get_locked(ino, &s)) != 0)
		return rc;
	if (s->map == NULL) {
		snapshot_put(s);
		return 0;
	}
	ino->orphan_chunks = malloc(sizeof(*ino->orphan_chunks));
	rc = ino->orphan_chunks == NULL ? -ENOMEM : txn_chunk_map_copy(ino->orphan_chunks, s->map);
	snapshot_put(s);
	if (rc == 0)
		rc = txn_chunk_unmap(ino->ns, k, ino->orphan_chunks);
	if (rc != 0) {
		if (ino->orphan_chunks != NULL)
			txn_chunk_map_free(ino->orphan_chunks);
		free(ino->orphan_chunks);
		ino->orphan_chunks = NULL;
	}
	return rc;
}

/* The last handle of an unlinked large file is gone: its chunks go. */
static void
orphan_drop_chunks_locked(struct inode *ino)
{
	if (ino->orphan_chunks == NULL)
		return;
	(void)txn_chunk_drop(ino->ns, ino->name, ino->set_len, ino->orphan_chunks);
	txn_chunk_release(ino->ns, ino->orphan_chunks->file_id);
	txn_chunk_map_free(ino->orphan_chunks);
	free(ino->orphan_chunks);
	ino->orphan_chunks = NULL;
}

int
handle_orphan_prepare_locked(struct inode *ino)
{
	struct snapshot *s = NULL;
	struct txn_key k;
	int rc = 0;

	if (ino->handles == NULL || ino->unlinked)
		return 0;  /* no open handle: nothing to keep */
	if (ino->orphan == NULL) {
		ino->orphan = malloc(sizeof(*ino->orphan));
		if (ino->orphan == NULL)
			return -ENOMEM;
	}
	inode_key(ino, &k);
	rc = txn_stat(ino->ns, &k, ino->orphan);
	if (rc != 0)
		return rc;
	/* A state gets the content now: it is going. */
	if (ino->fs != NULL && (rc = state_load_locked(ino)) != 0)
		return rc;
	if (state_holds_content(ino))
		return 0;  /* every handle reads the state */
	/* Readers that read nothing yet get the content now. */
	for (struct handle *h = ino->handles; h != NULL; h = h->next) {
		if (h->snap != NULL)
			continue;
		if (s == NULL && (rc = snapshot_get_locked(ino, &s)) != 0)
			return rc;
		snapshot_hold(s);
		h->snap = s;
	}
	if (s != NULL)
		snapshot_put(s);
	return orphan_keep_chunks_locked(ino, &k);
}

void
handle_orphan_abort_locked(struct inode *ino)
{
	struct txn_key k;

	if (ino->orphan_chunks == NULL || ino->unlinked)
		return;
	/* The unlink or rename failed: the head names its chunks again. */
	inode_key(ino, &k);
	if (txn_chunk_remap(ino->ns, &k, ino->orphan_chunks) != 0)
		log_error("recfsd", "{%s} %.*s/%.*s: a large file's chunk map could not be restored "
		    "after a failed unlink or rename", namespace_name(ino->ns), (int)ino->set_len,
		    ino->name, (int)ino->key_len, ino->name + ino->set_len);
	txn_chunk_map_free(ino->orphan_chunks);
	free(ino->orphan_chunks);
	ino->orphan_chunks = NULL;
}

void
handle_orphan_commit_locked(struct inode *ino)
{
	/* Nothing its handles hold will be stored any more. */
	if (ino->fs != NULL)
		ino->fs->dirty = false;
	for (struct handle *h = ino->handles; h != NULL; h = h->next)
		h->wrote = false;
	inode_unlink_locked(ino);
}

/* ---- the flush-max-ms timer ------------------------------------------------------- */

/*
 * The timer thread sleeps until the earliest time a listed record is due
 * (list_due) and then looks at the whole list once; a record put on the
 * list wakes it only when it is due before the thread means to look
 * (wake_at), so a stream of files written and closed within flush-max-ms
 * costs no wake-up per file: the first one's wakes it once, and the
 * records closed meanwhile leave the list at its next look.  Each listed
 * record is held, so the list also gets a look once it is FLUSH_LOOK_LEN
 * long, or twice as long as the last look left it (amortized: one inode
 * lock per record listed), which bounds what closed files keep in memory.
 */
#define FLUSH_LOOK_LEN 1024
static struct {
	pthread_mutex_t lock;         /* a leaf: taken under inode locks */
	pthread_cond_t cond;          /* CLOCK_MONOTONIC */
	struct inode *list;           /* records with a dirty state, each held */
	int64_t list_due;             /* earliest due time on list (wall ns); INT64_MAX: none */
	int64_t wake_at;              /* the thread sleeps until then (INT64_MAX: until
	                               * woken); 0 while it runs or has been woken */
	size_t n_listed;              /* records on list */
	size_t look_len;              /* a look is due when n_listed reaches it */
	bool stop;
	bool started;
	pthread_t thread;
} flusher = { .lock = PTHREAD_MUTEX_INITIALIZER, .list_due = INT64_MAX,
	.look_len = FLUSH_LOOK_LEN };

/* ino (held) onto the list, due at wall-clock time due.  flusher.lock held. */
static void
flusher_push_locked(struct inode *ino, int64_t due)
{
	ino->flush_next = flusher.list;
	flusher.list = ino;
	flusher.n_listed++;
	if (due < flusher.list_due)
		flusher.list_due = due;
	/* only a thread that sleeps past this record's time, or a list
	 * grown to its look length, wakes it */
	if (flusher.started && flusher.wake_at != 0 &&
	    (due < flusher.wake_at || flusher.n_listed >= flusher.look_len)) {
		flusher.wake_at = 0;
		pthread_cond_signal(&flusher.cond);
	}
}

/* Put ino on the timer's list (with a reference) unless it is there.  Inode lock held. */
static void
flush_list_add_locked(struct inode *ino)
{
	uint32_t ms;
	int64_t due;

	if (ino->flush_listed)
		return;
	ino->flush_listed = true;
	inode_hold(ino);  /* stripe lock: after the inode lock, as the lock order says */
	/* when flush_due_one would store it (0: it looks again after 1 s) */
	ms = atomic_load_relaxed(&namespace_config(ino->ns)->storage.flush_max_ms);
	due = ino->fs != NULL && ms != 0 ? ino->fs->dirty_since_ns + (int64_t)ms * 1000000 :
	    recfsd_now_ns() + 1000000000LL;
	pthread_mutex_lock(&flusher.lock);
	flusher_push_locked(ino, due);
	pthread_mutex_unlock(&flusher.lock);
}

static int64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/*
 * One record of the list: store its state if it has been dirty for
 * flush-max-ms.  Returns when to look again (wall-clock ns), or 0 when it
 * leaves the list (clean, gone or stored).
 */
static int64_t
flush_due_one(struct inode *ino)
{
	int64_t again = 0, now = recfsd_now_ns();
	struct filestate *fs;

	pthread_mutex_lock(&ino->lock);
	fs = ino->fs;
	if (fs != NULL && fs->dirty && !ino->unlinked) {
		uint32_t ms = atomic_load_relaxed(&namespace_config(ino->ns)->storage.flush_max_ms);

		if (ms == 0) {
			again = now + 1000000000LL;  /* dynamic: look again later */
		} else if (now - fs->dirty_since_ns >= (int64_t)ms * 1000000) {
			int rc = state_store_locked(ino, false);

			stats_inc(STAT_fuse_timed_stores);
			if (rc != 0) {
				state_store_failed_locked(ino, rc);
				log_warn("recfsd", "{%s} %.*s/%.*s: storing an open file after flush-max-ms: %s",
				    namespace_name(ino->ns), (int)ino->set_len, ino->name,
				    (int)ino->key_len, ino->name + ino->set_len, recfs_strerror(rc));
			}
		} else {
			again = fs->dirty_since_ns + (int64_t)ms * 1000000;
		}
	}
	if (again != 0) {
		pthread_mutex_lock(&flusher.lock);
		flusher_push_locked(ino, again);
		pthread_mutex_unlock(&flusher.lock);
	} else {
		ino->flush_listed = false;
	}
	pthread_mutex_unlock(&ino->lock);
	if (again == 0)
		inode_put(ino);
	return again;
}

static void *
flush_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&flusher.lock);
	while (!flusher.stop) {
		struct inode *take = flusher.list, *next;
		int64_t now = recfsd_now_ns(), wait_ns;
		struct timespec ts;

		if (take == NULL) {
			flusher.wake_at = INT64_MAX;
			pthread_cond_wait(&flusher.cond, &flusher.lock);
			flusher.wake_at = 0;
			continue;
		}
		if (flusher.list_due > now && flusher.n_listed < flusher.look_len) {
			/* Sleep until the first is due (one due earlier wakes us). */
			wait_ns = flusher.list_due - now;
			if (wait_ns < 10000000)
				wait_ns = 10000000;
			flusher.wake_at = now + wait_ns;
			wait_ns += mono_ns();
			ts.tv_sec = wait_ns / 1000000000LL;
			ts.tv_nsec = wait_ns % 1000000000LL;
			pthread_cond_timedwait(&flusher.cond, &flusher.lock, &ts);
			flusher.wake_at = 0;
			continue;    /* due now, or an earlier one came */
		}
		flusher.list = NULL;
		flusher.list_due = INT64_MAX;
		flusher.n_listed = 0;
		pthread_mutex_unlock(&flusher.lock);
		/* each one goes back on the list (flusher_push_locked) if not done */
		for (; take != NULL; take = next) {
			next = take->flush_next;
			(void)flush_due_one(take);
		}
		pthread_mutex_lock(&flusher.lock);
		flusher.look_len = flusher.n_listed * 2 > FLUSH_LOOK_LEN ? flusher.n_listed * 2 :
		    FLUSH_LOOK_LEN;
	}
	pthread_mutex_unlock(&flusher.lock);
	return NULL;
}

int
handle_timer_start(void)
{
	pthread_condattr_t ca;
	int rc;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = pthread_cond_init(&flusher.cond, &ca);
	pthread_condattr_destroy(&ca);
	if (rc != 0)
		return -rc;
	flusher.stop = false;
	pthread_mutex_lock(&flusher.lock);
	rc = pthread_create(&flusher.thread, NULL, flush_main, NULL);
	flusher.started = rc == 0;
	if (rc == 0)
		pthread_setname_np(flusher.thread, "flush-timer");
	pthread_mutex_unlock(&flusher.lock);
	if (rc != 0) {
		pthread_cond_destroy(&flusher.cond);
		return -rc;
	}
	return 0;
}

void
handle_timer_stop(void)
{
	struct inode *ino, *next;

	if (!flusher.started)
		return;
	pthread_mutex_lock(&flusher.lock);
	flusher.stop = true;
	pthread_cond_signal(&flusher.cond);
	pthread_mutex_unlock(&flusher.lock);
	pthread_join(flusher.thread, NULL);
	pthread_mutex_lock(&flusher.lock);
	flusher.started = false;
	pthread_mutex_unlock(&flusher.lock);
	/* Let go of the records still listed (handle_flush_all stores them). */
	pthread_mutex_lock(&flusher.lock);
	ino = flusher.list;
	flusher.list = NULL;
	flusher.list_due = INT64_MAX;
	flusher.n_listed = 0;
	pthread_mutex_unlock(&flusher.lock);
	for (; ino != NULL; ino = next) {
		next = ino->flush_next;
		pthread_mutex_lock(&ino->lock);
		ino->flush_listed = false;
		pthread_mutex_unlock(&ino->lock);
		inode_put(ino);
	}
	pthread_cond_destroy(&flusher.cond);
}

/* ---- shutdown and teardown ------------------------------------------------------- */

struct flush_count {
	unsigned stored, failed;
};

static void
flush_one(struct inode *ino, void *arg)
{
	struct flush_count *n = arg;
	int rc;

	pthread_mutex_lock(&ino->lock);
	if (ino->fs != NULL && ino->fs->dirty && !ino->unlinked) {
		rc = state_store_locked(ino, false);
		if (rc == 0) {
			n->stored++;
		} else {
			ino->fs->dirty = false;
			n->failed++;
			log_error("recfsd", "{%s} %.*s/%.*s: unsaved data lost at shutdown: %s",
			    namespace_name(ino->ns), (int)ino->set_len, ino->name, (int)ino->key_len,
			    ino->name + ino->set_len, recfs_strerror(rc));
		}
	}
	pthread_mutex_unlock(&ino->lock);
}

void
handle_flush_all(void)
{
	struct flush_count n = { 0 };

	inode_foreach_record(flush_one, &n);
	/* No large-file chunk is fetched ahead past this point. */
	chunkfile_quiesce();
	if (n.stored > 0)
		log_info("recfsd", "stored %u open files with unsaved data at shutdown", n.stored);
	if (n.failed > 0)
		log_error("recfsd", "%u open files could not be stored at shutdown", n.failed);
}

void
handle_inode_fini(struct inode *ino)
{
	struct handle *h, *next;

	/* At shutdown handles may still be open (the kernel releases nothing
	 * once the session is gone). */
	for (h = ino->handles; h != NULL; h = next) {
		next = h->next;
		if (h->snap != NULL)
			snapshot_put(h->snap);
		free(h);
	}
	ino->handles = NULL;
	state_free_locked(ino);
	if (ino->snap != NULL)
		snapshot_put(ino->snap);
	ino->snap = NULL;
	/* At shutdown: an unlinked large file's chunks are the reclaimer's. */
	if (ino->orphan_chunks != NULL) {
		txn_chunk_map_free(ino->orphan_chunks);
		free(ino->orphan_chunks);
		ino->orphan_chunks = NULL;
	}
}

uint64_t
handle_count(void)
{
	return atomic_load_relaxed(&handle_total);
}
