/*
 * handle.h - open files: one open-file state per record, shared by all its
 * handles, stored as one record write.
 *
 * recfsd(8), Records: "all handles of one record on a node share one open-file state: a
 * write through one descriptor is visible to reads through the others at
 * once, O_APPEND writes from several processes each land at the end, and
 * close() (flush) writes the record as one record write and returns its
 * error".  So:
 *
 *   - the state (struct filestate, on the inode) holds the record's whole
 *     content, filled from the record when first needed (never, with
 *     O_TRUNC or a fresh create), changed by write, ftruncate, truncate
 *     and fallocate through any handle.  It exists while a writable handle
 *     of the record is open (or the record was unlinked under its handles,
 *     whose only copy it then is).
 *   - O_APPEND writes go to the state's end as the daemon knows it, never
 *     to the offset the kernel computed from its cached size.
 *   - when the state is dirty it is stored as one record write: at the
 *     flush (close) of any writable handle, at fsync (durably), at the
 *     release of a handle that wrote since the last store, and by a timer
 *     flush-max-ms after it became dirty (a file held open and written is
 *     stored anyway).  A store error is returned by the next close or
 *     fsync of each handle that wrote data the store held; a refused write
 *     (EFBIG) drops the unsaved changes of every handle and each handle
 *     that wrote gets EFBIG from its next close (the stored record stays
 *     as it was).
 *   - reads through any handle read the state when it holds the content;
 *     otherwise (no writer, or a writer that has neither read nor written
 *     yet) a read reads one snapshot of the stored record, taken at its
 *     first read and shared (refcounted, immutable) with the other readers
 *     of the same generation: a record with no writer is always read as
 *     one whole stored version.
 *
 * Memory: one state per record open for writing, at most the namespace's
 * max-record-size (content_max) each, so at most that times the number of
 * records open for writing (bounded by the kernel's open-file limits).  The
 * state is dropped when its last writable handle is released and nothing
 * is left unsaved (readers go back to shared snapshots), and in any case
 * with the last handle.  The common single writer costs what the old
 * per-handle buffer cost: one copy of the content, one store per close.
 *
 * While the state holds unsaved data, stat shows its size and mtime.  When
 * a record is unlinked or replaced, its state (loaded at that moment if it
 * was not) and its readers' snapshots stay with the open handles; nothing
 * they do afterwards is stored.
 *
 * Every function takes the inode lock itself unless it says "locked".
 * Returns are 0 (or a byte count) or a negative engine code.
 */
#ifndef RECFS_FUSE_HANDLE_H
#define RECFS_FUSE_HANDLE_H

#include <fcntl.h>

#include "inode.h"

struct snapshot;

enum handle_kind { HANDLE_RECORD, HANDLE_INFO };

struct handle {
	enum handle_kind kind;
	struct inode *inode;          /* held (nref) while the handle exists */
	int flags;                    /* open(2) flags */
	bool direct_io;               /* for the open reply: bypass the page cache */
	bool keep_cache;              /* for the open reply: cached pages are current */
	struct handle *next, *prev;   /* the inode's record handles; inode lock */
	/* record handles; inode lock: */
	struct snapshot *snap;        /* the stored version this handle reads while the
	                               * inode's state does not hold the content */
	bool wrote;                   /* changed the state since its last store */
	int error;                    /* its changes were dropped (EFBIG): the next flush says so */
	int store_error;              /* a store of its changes failed: each flush says so
	                               * until it writes again or a later store succeeds */
	/* /.info handles: the snapshot built at open; writes to a configuration
	 * file collect in data, len, cap and dirty */
	char *data;
	size_t len, cap;
	bool dirty;
	char *text;
	size_t text_len;
	pid_t opener;                 /* the process that opened it (info_size) */
};

/*
 * Whether a record handle opened with these flags bypasses the page cache.
 * Write-only handles do: the kernel's direct-I/O write path sends no
 * getxattr("security.capability") before each write(2) (one round trip
 * saved per write), and nothing reads through such a handle (mmap needs
 * read access), so no caching is lost.  O_APPEND handles do too: the
 * daemon puts their writes at the state's end, so a cached write would
 * leave the kernel's pages at the offset it guessed from its cached size.
 */
static inline bool
handle_direct_io(int flags)
{
	return (flags & O_ACCMODE) == O_WRONLY || (flags & O_APPEND);
}

/*
 * Open a record.  O_TRUNC on a writable open empties the shared state and
 * marks it dirty (": > f" stores an empty record with no write), stored at
 * the first close like any change (the release that follows a close
 * reaches us asynchronously, too late for a reader that opens right after
 * close(2) returned).  As on a local file system, "cmd > f" whose cmd then
 * fails with EFBIG leaves f empty (the shell closed its first descriptor
 * after dup2, which stored the truncation).
 * fresh = the record was just created empty.  check_damaged: a damaged
 * record (its newest copy's body is damaged) fails with -EIO, as its reads
 * would, before the kernel can take its unknown size (0) for an empty
 * file.  A read-only open takes the handle's snapshot now, so one engine
 * call (a read, or a stat when the inode's shared snapshot is still the
 * record's generation) serves the damaged check, keep_cache and every
 * read(2) of the handle: it reads the version that was stored when it
 * opened (close-to-open).  When the kernel's pages hold one generation
 * and no snapshot is shared, a stat comes first: pages of the stored
 * generation serve the reads (keep_cache), with no content sent.  Any other open asks the engine at most once (a
 * stat, for the damaged check and keep_cache).  Sets h->direct_io and
 * h->keep_cache for the reply.  Errors: -ESTALE (the record was replaced
 * after the kernel looked it up: the kernel looks again and retries),
 * -EIO (damaged), the engine's read errors, -ENOMEM.
 */
int handle_open(struct inode *ino, int flags, bool fresh, bool check_damaged,
    struct handle **out);
/* Open a /.info file for process pid: the snapshot is built now and kept
 * in the handle.
 * A dynamic parameter's file may be open for writing (info.h: info_write);
 * its writes collect in data/len/dirty. */
int handle_open_info(struct inode *ino, int flags, pid_t pid, struct handle **out);

/* Reply to a read (loading on first use).  Sends the reply itself on
 * success; returns a negative code otherwise. */
int handle_read(fuse_req_t req, struct handle *h, size_t size, off_t off);
/*
 * Copy data into the record's state at off (with O_APPEND: at the state's
 * end, whatever off the kernel sent).  Returns the count, or -EFBIG when
 * the record would exceed max-record-size: then the state's unsaved changes
 * are dropped (the stored record stays as it was) and the next flush of
 * every handle that wrote reports EFBIG.  kill_privs: the writer may not
 * keep set-user-ID / set-group-ID bits (it is not root): they are cleared
 * as the kernel clears them on a local file system (set-group-ID only with
 * group execute).
 */
long handle_write(struct handle *h, const char *buf, size_t size, off_t off, bool kill_privs);
/*
 * fallocate(2) through a writable handle: mode 0 extends the content with
 * zeros to off + len, FALLOC_FL_KEEP_SIZE changes nothing (content is not
 * preallocated), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE zeroes
 * [off, off + len) within the content.  Stored at close like a write.
 * -EFBIG when off + len is past max-record-size (nothing changes),
 * -EOPNOTSUPP for other modes, -EBADF on a handle not open for writing.
 */
int handle_fallocate(struct handle *h, int mode, off_t off, off_t len);
/* Store the state if dirty (close); durable = fsync: also wait for storage. */
int handle_flush(struct handle *h, bool durable);
/* Last use of a handle: store what it left unsaved (errors are logged), free it. */
void handle_release(struct handle *h);

/*
 * setattr on a record: mode, owner and mtime are written at once.  A size
 * change through a writable handle (ftruncate: h) changes the shared state
 * and is stored at close like a write; a truncate by path is stored at once
 * (into the state too, when one holds the content).  An mtime set while the
 * state holds unsaved data is also stored with it at close (cp -a writes,
 * sets times, then closes).  *out receives the new attributes.
 */
int handle_setattr(struct inode *ino, struct handle *h, struct txn_write *w,
    struct record_attr *out);

/* Attributes of a record inode for getattr: from the engine, or what was
 * kept at unlink; size and mtime follow unsaved data.  -ESTALE when the
 * record is gone and no handle holds it (the kernel looks the name up
 * again).  Inode lock held. */
int handle_attr_locked(struct inode *ino, struct record_attr *out);
/* Make listed or looked-up attributes follow unsaved data.  Inode lock held. */
void handle_attr_adjust_locked(const struct inode *ino, struct record_attr *a);

/*
 * The record of ino is about to be deleted or replaced: open handles load
 * what they have not read yet (they keep it), and its attributes are kept.
 * A large file's chunks are kept for them instead (its head gives up its
 * map: one more engine call; the last release deletes them).
 * Inode lock held.
 */
int handle_orphan_prepare_locked(struct inode *ino);
/* After the delete succeeded: mark the inode unlinked; nothing of its
 * handles will be stored.  Inode lock held. */
void handle_orphan_commit_locked(struct inode *ino);
/* After the delete or rename failed: a large file's head gets back the
 * chunk map prepare took away for its handles.  Inode lock held. */
void handle_orphan_abort_locked(struct inode *ino);

/*
 * The flush-max-ms timer: a thread that stores states dirty for longer than
 * their namespace's flush-max-ms (0: never by time).  Start once the inode
 * table is up; stop before handle_flush_all.
 */
int handle_timer_start(void);
void handle_timer_stop(void);
/* Store every unsaved state (shutdown, after the session loop). */
void handle_flush_all(void);
/* Drop what an inode keeps for its handles (inode teardown). */
void handle_inode_fini(struct inode *ino);
/* Open handles (gauge). */
uint64_t handle_count(void);

#endif
